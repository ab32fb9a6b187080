-- Version 6: publication points, immutable once stored.
--
-- A point is the frozen state standard tables are computed at; the
-- tables published at it must stay computable from the same state, so a
-- stored point never changes. The triggers refuse every UPDATE (an
-- INSERT … ON CONFLICT DO UPDATE is one too), DELETE and TRUNCATE. The
-- CHECKs hold what InsertReleasePoint promises (a point has a name, a
-- time and a state) against a statement that skipped it. Names are
-- ordered in byte order ("C"), as in SQLite. A state of about a megabyte
-- is stored out of line (TOAST), so reading the other columns stays
-- cheap.
CREATE TABLE release_points (
	seq         BIGINT PRIMARY KEY CHECK (seq > 0),
	name        TEXT COLLATE "C" NOT NULL UNIQUE CHECK (name <> ''),
	as_of       BIGINT NOT NULL,
	created_at  TEXT NOT NULL CHECK (created_at <> ''),
	created_by  TEXT NOT NULL,
	audit_index BIGINT NOT NULL CHECK (audit_index >= 0),
	state       BYTEA NOT NULL CHECK (octet_length(state) > 0)
);

CREATE FUNCTION censusvault_release_points_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'release_points is immutable: % refused', TG_OP
		USING HINT = 'a stored publication point is never changed or removed; create a new point instead';
END
$$;

CREATE TRIGGER release_points_no_update BEFORE UPDATE ON release_points
	FOR EACH ROW EXECUTE FUNCTION censusvault_release_points_immutable();
CREATE TRIGGER release_points_no_delete BEFORE DELETE ON release_points
	FOR EACH ROW EXECUTE FUNCTION censusvault_release_points_immutable();
CREATE TRIGGER release_points_no_truncate BEFORE TRUNCATE ON release_points
	FOR EACH STATEMENT EXECUTE FUNCTION censusvault_release_points_immutable();
