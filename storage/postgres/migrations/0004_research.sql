-- Version 4: what research tables need.

-- The age recipient a user's research tables may be encrypted to; ""
-- for none.
ALTER TABLE users ADD COLUMN recipient TEXT NOT NULL DEFAULT '';

-- A grant may hold for one research project only ("" for every request),
-- so the project joins the primary key. It collates "C" like the other
-- columns of grants: grants are read (and hashed by the broker) in
-- ("user", role, area, deny, project) byte order.
ALTER TABLE grants ADD COLUMN project TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE grants
	DROP CONSTRAINT grants_pkey,
	ADD PRIMARY KEY ("user", role, area, deny, project);

-- SubmissionsSince reads submissions in audit_index order, a page at a
-- time: each page is a range of this index rather than a scan of the
-- table. On a large vault building it holds writers off for one pass over
-- the submissions (a migration runs in one transaction, so it cannot be
-- built CONCURRENTLY).
CREATE INDEX submissions_audit_index ON submissions(audit_index);
