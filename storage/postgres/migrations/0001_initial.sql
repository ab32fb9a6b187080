-- Version 1: the schema of storage/sqlite, in PostgreSQL types, plus the
-- audit head row that serializes writers across broker instances.
--
-- Times are TEXT in RFC 3339 with nanoseconds, as in SQLite: timestamptz
-- keeps microseconds and the contract promises nanoseconds. The zero time
-- is the empty string.

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

CREATE TABLE areas (
	-- Areas come back in insertion order; writers are serialized by the
	-- audit head lock, so sequence order is commit order.
	seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	code    TEXT NOT NULL UNIQUE,
	parent  TEXT NOT NULL,
	level   TEXT NOT NULL,
	name    TEXT NOT NULL,
	planned BIGINT NOT NULL
);

CREATE TABLE users (
	name       TEXT PRIMARY KEY,
	token_hash TEXT NOT NULL UNIQUE,
	created_at TEXT NOT NULL,
	expires_at TEXT NOT NULL,
	revoked_at TEXT NOT NULL
);

-- Grants are read in (user, role, area, deny) order and the broker hashes
-- them in that order: byte order ("C"), as in SQLite, so the digest does
-- not depend on the database's locale or the C library's collation tables.
CREATE TABLE grants (
	"user" TEXT COLLATE "C" NOT NULL REFERENCES users(name),
	role   TEXT COLLATE "C" NOT NULL,
	area   TEXT COLLATE "C" NOT NULL,
	deny   BOOLEAN NOT NULL,
	PRIMARY KEY ("user", role, area, deny)
);

CREATE TABLE submissions (
	id             TEXT PRIMARY KEY,
	area           TEXT NOT NULL,
	commune        TEXT NOT NULL,
	household_no   BIGINT NOT NULL,
	form           TEXT NOT NULL,
	form_version   INTEGER NOT NULL,
	interviewed_at TEXT NOT NULL,
	received_at    TEXT NOT NULL,
	depositor      TEXT NOT NULL,
	payload_sha256 TEXT NOT NULL,
	supersedes     TEXT NOT NULL,
	superseded_by  TEXT,
	operational    BYTEA,
	ident_kv       INTEGER,
	ident          BYTEA,
	analytic_kv    INTEGER,
	analytic       BYTEA,
	audit_index    BIGINT NOT NULL,
	receipt        BYTEA NOT NULL
);

-- At most one current submission per household.
CREATE UNIQUE INDEX submissions_current
	ON submissions(area, household_no) WHERE superseded_by IS NULL;

CREATE TABLE deposited (
	ea TEXT PRIMARY KEY,
	n  BIGINT NOT NULL
);

CREATE TABLE data_keys (
	class      TEXT NOT NULL,
	commune    TEXT NOT NULL,
	version    INTEGER NOT NULL,
	wrapped    BYTEA NOT NULL,
	created_at TEXT NOT NULL,
	PRIMARY KEY (class, commune, version)
);

CREATE TABLE keys (
	purpose    TEXT NOT NULL,
	version    INTEGER NOT NULL,
	wrapped    BYTEA NOT NULL,
	created_at TEXT NOT NULL,
	not_after  TEXT NOT NULL,
	PRIMARY KEY (purpose, version)
);

CREATE TABLE audit_events (
	idx        BIGINT PRIMARY KEY,
	event      BYTEA NOT NULL,
	leaf_hash  BYTEA NOT NULL CHECK (octet_length(leaf_hash) = 32),
	chain_hash BYTEA NOT NULL CHECK (octet_length(chain_hash) = 32)
);

-- The position of the next audit record. Every write transaction locks
-- this one row first: that serializes writers across all instances on the
-- database, so the log has one chain with no fork and no gap, and since no
-- writer holds another row lock before it, writers cannot deadlock.
CREATE TABLE audit_head (
	id         SMALLINT PRIMARY KEY CHECK (id = 1),
	next       BIGINT NOT NULL,
	chain_hash BYTEA NOT NULL CHECK (octet_length(chain_hash) = 32)
);
INSERT INTO audit_head(id, next, chain_hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));
