-- Version 3: research projects and their cell budgets.
--
-- Times are TEXT as everywhere else ("" is zero: an open project has
-- closed_at ''). The CHECKs keep the ledger sane even against a
-- statement that forgot DebitProject's guard. Ids are ordered in byte
-- order ("C"), as in SQLite.
CREATE TABLE projects (
	id         TEXT COLLATE "C" PRIMARY KEY,
	title      TEXT NOT NULL,
	purpose    TEXT NOT NULL,
	areas      TEXT[] NOT NULL,
	variables  TEXT[] NOT NULL,
	expires_at TEXT NOT NULL,
	budget     BIGINT NOT NULL CHECK (budget > 0),
	spent      BIGINT NOT NULL CHECK (spent >= 0 AND spent <= budget),
	created_at TEXT NOT NULL,
	closed_at  TEXT NOT NULL
);
