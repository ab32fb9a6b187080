-- Version 12: revisions of the area tree (storage.AreaRevision).
--
-- area_revisions holds every revision document as given, numbered 1, 2,
-- … without a gap; the areas of init stay revision 0. It is append-only:
-- the triggers refuse every UPDATE (an INSERT … ON CONFLICT DO UPDATE is
-- one too), DELETE and TRUNCATE, and an INSERT of any number but the
-- next. Writers are serialized by the audit head's lock and run in READ
-- COMMITTED, so the trigger's look at the highest number sees every
-- revision committed before it.
--
-- The CHECKs hold what AppendAreaRevision promises against a statement
-- that skipped it, the SHA-256 of the document included.
CREATE TABLE area_revisions (
	number      BIGINT PRIMARY KEY CHECK (number > 0),
	at          TEXT NOT NULL CHECK (at <> ''),
	audit_index BIGINT NOT NULL CHECK (audit_index >= 0),
	document    BYTEA NOT NULL CHECK (length(document) > 0),
	sha256      TEXT NOT NULL CHECK (sha256 = encode(sha256(document), 'hex'))
);

CREATE FUNCTION censusvault_area_revisions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	-- Nested, so NEW is read only for a row INSERT (it is NULL for a
	-- statement's TRUNCATE trigger).
	IF TG_OP = 'INSERT' THEN
		IF NEW.number = (SELECT coalesce(max(number), 0) + 1 FROM area_revisions) THEN
			RETURN NEW;
		END IF;
	END IF;
	RAISE EXCEPTION 'area_revisions is append-only: % refused', TG_OP
		USING HINT = 'a revision takes the next number and is never changed or removed; store a new revision instead';
END
$$;

CREATE TRIGGER area_revisions_next_only BEFORE INSERT ON area_revisions
	FOR EACH ROW EXECUTE FUNCTION censusvault_area_revisions_append_only();
CREATE TRIGGER area_revisions_no_update BEFORE UPDATE ON area_revisions
	FOR EACH ROW EXECUTE FUNCTION censusvault_area_revisions_append_only();
CREATE TRIGGER area_revisions_no_delete BEFORE DELETE ON area_revisions
	FOR EACH ROW EXECUTE FUNCTION censusvault_area_revisions_append_only();
CREATE TRIGGER area_revisions_no_truncate BEFORE TRUNCATE ON area_revisions
	FOR EACH STATEMENT EXECUTE FUNCTION censusvault_area_revisions_append_only();
