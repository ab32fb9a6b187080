-- Schema version 1 of storage/sqlite exactly as released: TestUpgradeFromV1
-- builds the databases of that release from it. Never edit this file.
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS areas (
	seq     INTEGER PRIMARY KEY,
	code    TEXT NOT NULL UNIQUE,
	parent  TEXT NOT NULL,
	level   TEXT NOT NULL,
	name    TEXT NOT NULL,
	planned INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
	name       TEXT PRIMARY KEY,
	token_hash TEXT NOT NULL UNIQUE,
	created_at TEXT NOT NULL,
	expires_at TEXT NOT NULL,
	revoked_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS grants (
	user TEXT NOT NULL REFERENCES users(name),
	role TEXT NOT NULL,
	area TEXT NOT NULL,
	deny INTEGER NOT NULL,
	PRIMARY KEY (user, role, area, deny)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS submissions (
	id             TEXT PRIMARY KEY,
	area           TEXT NOT NULL,
	commune        TEXT NOT NULL,
	household_no   INTEGER NOT NULL,
	form           TEXT NOT NULL,
	form_version   INTEGER NOT NULL,
	interviewed_at TEXT NOT NULL,
	received_at    TEXT NOT NULL,
	depositor      TEXT NOT NULL,
	payload_sha256 TEXT NOT NULL,
	supersedes     TEXT NOT NULL,
	superseded_by  TEXT,
	operational    BLOB,
	ident_kv       INTEGER,
	ident          BLOB,
	analytic_kv    INTEGER,
	analytic       BLOB,
	audit_index    INTEGER NOT NULL,
	receipt        BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS submissions_current
	ON submissions(area, household_no) WHERE superseded_by IS NULL;
CREATE TABLE IF NOT EXISTS deposited (
	ea TEXT PRIMARY KEY,
	n  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS data_keys (
	class      TEXT NOT NULL,
	commune    TEXT NOT NULL,
	version    INTEGER NOT NULL,
	wrapped    BLOB NOT NULL,
	created_at TEXT NOT NULL,
	PRIMARY KEY (class, commune, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS keys (
	purpose    TEXT NOT NULL,
	version    INTEGER NOT NULL,
	wrapped    BLOB NOT NULL,
	created_at TEXT NOT NULL,
	not_after  TEXT NOT NULL,
	PRIMARY KEY (purpose, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_events (
	idx        INTEGER PRIMARY KEY,
	event      BLOB NOT NULL,
	leaf_hash  BLOB NOT NULL,
	chain_hash BLOB NOT NULL
);
