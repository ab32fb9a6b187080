-- Version 8: record opens, counted against the hourly cap of the review
-- views, and the reviews of submissions (below).
--
-- One row per submission a user opened, counted by user over the last
-- hour (OpensSince, a range of record_opens_user_at) and removed after a
-- day (PruneOpens). at is in Unix nanoseconds: unlike the RFC 3339 text
-- of other tables it sorts as time does, and it is compared in SQL. The
-- audit log, not this table, is the lasting record of an open. Nothing
-- existing is rewritten, so the upgrade is quick.
CREATE TABLE record_opens (
	user_name  TEXT COLLATE "C" NOT NULL CHECK (user_name <> ''),
	submission TEXT NOT NULL CHECK (submission <> ''),
	at         BIGINT NOT NULL
);
CREATE INDEX record_opens_user_at ON record_opens(user_name, at);

-- Reviews of submissions (issue 13): one row per review, keyed by its
-- audit event; a submission's review is its latest (reviews_submission).
-- The note is for the enumerator and may name people: it is kept here,
-- never in the audit log. Reviews are append-only: triggers refuse every
-- UPDATE, DELETE and TRUNCATE, so a later review is a new row.
CREATE TABLE reviews (
	audit_index BIGINT PRIMARY KEY CHECK (audit_index >= 0),
	submission  TEXT NOT NULL CHECK (submission <> ''),
	status      TEXT NOT NULL CHECK (status IN ('accepted', 'rejected')),
	reason      TEXT NOT NULL CHECK (reason <> ''),
	note        TEXT NOT NULL,
	reviewer    TEXT NOT NULL CHECK (reviewer <> ''),
	at          TEXT NOT NULL CHECK (at <> '')
);
CREATE INDEX reviews_submission ON reviews(submission, audit_index);

CREATE FUNCTION censusvault_reviews_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'reviews is append-only: % refused', TG_OP
		USING HINT = 'a stored review is never changed or removed; review the submission again instead';
END
$$;

CREATE TRIGGER reviews_no_update BEFORE UPDATE ON reviews
	FOR EACH ROW EXECUTE FUNCTION censusvault_reviews_append_only();
CREATE TRIGGER reviews_no_delete BEFORE DELETE ON reviews
	FOR EACH ROW EXECUTE FUNCTION censusvault_reviews_append_only();
CREATE TRIGGER reviews_no_truncate BEFORE TRUNCATE ON reviews
	FOR EACH STATEMENT EXECUTE FUNCTION censusvault_reviews_append_only();
