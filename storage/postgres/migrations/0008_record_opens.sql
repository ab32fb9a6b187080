-- Version 8: record opens, counted against the hourly cap of the review
-- views.
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
