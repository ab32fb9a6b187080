// Package sqlite is the embedded default store: one SQLite file (through
// modernc.org/sqlite, pure Go) in the data directory.
//
// Durability: the database runs in WAL mode with synchronous=FULL, and
// every write transaction is BEGIN IMMEDIATE, so an Update that returned
// nil survives a crash or power loss. Writes go through one committer
// goroutine that gathers the Updates waiting while the previous commit
// syncs and commits them together (group commit), each in its own
// savepoint, so one failing Update does not undo its neighbours. Reads use
// a separate pool of connections and never block writes.
//
// Open upgrades an older database in place, applying the missing steps of
// the schema in one transaction, and refuses a newer one. The writer runs
// with secure_delete, and Compact (storage.Compactor) clears what a
// shredded or rewrapped key leaves in the write-ahead log and old pages.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/internal/batch"
	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"
)

// FileName is the database file inside the data directory.
const FileName = "vault.db"

// SchemaVersion is the schema this binary writes. Opening a database with
// a newer schema fails rather than risk misreading it; an older one is
// upgraded.
const SchemaVersion = 12

// migrations are the steps of the schema, in order: step i (from 0)
// brings a database from version i to i+1. A released step is never
// edited, since a database at version i was made by exactly the first i
// steps; a change is a new step.
func migrations() []string {
	return []string{
		schemaV1,
		// Version 2: crypto-shredding leaves a tombstone; "" is live.
		`ALTER TABLE data_keys ADD COLUMN shredded_at TEXT NOT NULL DEFAULT ''`,
		// Version 3: research projects and their cell budgets.
		schemaV3Projects,
		// Version 4: research tables (per-project grants, recipients,
		// reading submissions in audit order).
		schemaV4Research,
		// Version 5: the audit log's Merkle tree (stored hashes),
		// signed checkpoints, pruning, and triggers that keep the audit
		// tables append-only.
		schemaV5AuditTree,
		// Version 6: publication points, immutable once stored.
		schemaV6ReleasePoints,
		// Version 7: the privacy ledger (debits, append-only; share
		// changes, approved once).
		schemaV7Ledger,
		// Version 8: record opens, counted against the hourly cap of
		// the review views.
		schemaV8RecordOpens,
		// Version 9: the grant log (append-only) and proposed grant
		// changes (confirmed once).
		schemaV9GrantLog,
		// Version 10: extracts for the processing centre (environments,
		// append-only but for their retirement; proposals, approved
		// once).
		schemaV10Extracts,
		// Version 11: forms an administrator added (replaced only while
		// no submission uses them), and submissions indexed by form.
		schemaV11Forms,
		// Version 12: revisions of the area tree (append-only).
		schemaV12AreaRevisions,
	}
}

// Options configure Open.
type Options struct {
	// Path of the database file. Required.
	Path string
	// Create allows creating a new database; otherwise the file must exist.
	Create bool
	// MaxBatch bounds how many Updates one commit carries; default 256.
	MaxBatch int
	// BusyTimeout is how long a write waits for another process holding
	// the write lock; default 10 s.
	BusyTimeout time.Duration
}

// Store is a storage.Store on one SQLite file.
type Store struct {
	w, r     *sql.DB
	ops      chan *op
	maxBatch int
	// mu guards closed. Update holds it shared until its op is queued,
	// so once Close has set closed under the exclusive lock no op can
	// join the queue after the committer has drained it.
	mu        sync.RWMutex
	closed    bool
	closing   chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

var (
	_ storage.Store     = (*Store)(nil)
	_ storage.Compactor = (*Store)(nil)
)

type op struct {
	ctx  context.Context
	fn   func(storage.Tx) error
	done chan error
}

// Open opens (or with Create, creates) the database and brings its schema
// to SchemaVersion.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Path == "" {
		return nil, errors.New("sqlite: no database path")
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 10 * time.Second
	}
	if _, err := os.Stat(o.Path); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
		if !o.Create {
			return nil, fmt.Errorf("sqlite: no vault database at %s (run `censusvault init` first, or pass the right --data)", o.Path)
		}
		if err := os.MkdirAll(filepath.Dir(o.Path), 0o700); err != nil {
			return nil, fmt.Errorf("sqlite: failed to create data directory: %w", err)
		}
		// Create the file 0600 before SQLite does, so it never exists
		// with wider permissions.
		f, err := os.OpenFile(o.Path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("sqlite: failed to create database: %w", err)
		}
		f.Close()
	}
	dsn := func(txlock string, extra ...string) string {
		q := url.Values{}
		q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", o.BusyTimeout.Milliseconds()))
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Add("_pragma", "foreign_keys(1)")
		for _, p := range extra {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", txlock)
		q.Set("_time_format", "sqlite")
		return "file:" + (&url.URL{Path: o.Path}).EscapedPath() + "?" + q.Encode()
	}
	w, err := sql.Open("sqlite", dsn("immediate", "secure_delete(1)"))
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	r, err := sql.Open("sqlite", dsn("deferred", "query_only(1)"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	s := &Store{
		w: w, r: r,
		ops:      make(chan *op, 1024),
		maxBatch: o.MaxBatch,
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	go s.committer()
	return s, nil
}

// Close waits for queued Updates to finish and closes the database. Later
// calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.closing)
		s.mu.Unlock()
		<-s.done
		s.closeErr = errors.Join(s.r.Close(), s.w.Close())
	})
	return s.closeErr
}

// Update implements storage.Store.
func (s *Store) Update(ctx context.Context, fn func(storage.Tx) error) error {
	o := &op{ctx: ctx, fn: fn, done: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return storage.ErrClosed
	}
	select {
	case s.ops <- o:
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
	s.mu.RUnlock()
	// Once queued, wait for the outcome even if ctx ends: the caller must
	// not report failure for something that may have committed.
	return <-o.done
}

// View implements storage.Store.
func (s *Store) View(ctx context.Context, fn func(storage.ReadTx) error) error {
	if s.isClosed() {
		return storage.ErrClosed
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		if s.isClosed() {
			return storage.ErrClosed // closed while waiting for a connection
		}
		return classify(err)
	}
	defer tx.Rollback()
	return fn(&txn{ctx: ctx, tx: tx})
}

// Compact implements storage.Compactor: it makes sure the bytes of rows
// overwritten or deleted (shredded data keys, the old wrapping of
// rewrapped keys, pruned audit events) are gone from the database file
// and its write-ahead log.
//
// The writer runs with secure_delete, so SQLite zeroes what it frees
// inside the database file; but the file keeps the old image of a page
// until a checkpoint copies the new one over it, and the write-ahead log
// keeps old images until it is overwritten. Compact therefore
// checkpoints and truncates the log, rebuilds the file (VACUUM), and
// checkpoints and truncates again, since VACUUM itself writes through
// the log. It runs on the writer's one connection, outside any
// transaction, so Updates wait for it (and it for the batch being
// committed): a VACUUM rewrites the whole file, which on a large vault
// takes a while. A View still reading keeps the log from being reset;
// past the busy timeout Compact gives up with ErrUnavailable and may be
// retried (what it did so far is harmless).
//
// Copies outside the data directory are beyond it: backups, and blocks
// the file system or the disk freed but has not overwritten yet. VACUUM
// builds its copy in a temporary file (deleted afterwards) that holds
// only live rows.
func (s *Store) Compact(ctx context.Context) error {
	if s.isClosed() {
		return storage.ErrClosed
	}
	// Taking the writer's only connection serializes Compact with the
	// committer, which needs it for every batch.
	c, err := s.w.Conn(ctx)
	if err != nil {
		if s.isClosed() {
			return storage.ErrClosed
		}
		return fmt.Errorf("sqlite: compact: %w", classify(err))
	}
	defer c.Close()
	checkpoint := func() error {
		var busy, log, done int
		if err := c.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &log, &done); err != nil {
			return fmt.Errorf("sqlite: compact: checkpoint failed: %w", classify(err))
		}
		if busy != 0 {
			return fmt.Errorf("%w: sqlite: compact: a reader kept the write-ahead log busy past the busy timeout; retry", storage.ErrUnavailable)
		}
		return nil
	}
	if err := checkpoint(); err != nil {
		return err
	}
	if _, err := c.ExecContext(ctx, `VACUUM`); err != nil {
		return fmt.Errorf("sqlite: compact: VACUUM failed: %w", classify(err))
	}
	return checkpoint()
}

func (s *Store) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

func (s *Store) committer() {
	defer close(s.done)
	batch.Run(s.ops, s.closing, s.maxBatch, s.commit)
}

// commit runs a batch of Updates in one transaction, each in a savepoint.
//
// fn's statements run under the committer's context, not the caller's: a
// context that ends mid-statement makes SQLite interrupt it, and an
// interrupted write can roll back the whole transaction, neighbours and
// all. The caller's context is only checked before its fn starts.
func (s *Store) commit(batch []*op) {
	results := make([]error, len(batch))
	finish := func() {
		for i, o := range batch {
			o.done <- results[i]
		}
	}
	ctx := context.Background()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		err = classify(err)
		for i := range results {
			results[i] = err
		}
		finish()
		return
	}
	t := &txn{ctx: ctx, tx: tx}
	committed := 0
	// broken is set when a savepoint statement fails. Then SQLite has
	// already rolled the whole transaction back (a full disk, an I/O
	// error, an interrupt, RAISE(ROLLBACK)), undoing the Updates before
	// it, and a further SAVEPOINT would silently start a new transaction
	// that commits on its own.
	var broken error
	for i, o := range batch {
		if err := o.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if _, err := tx.ExecContext(ctx, "SAVEPOINT u"); err != nil {
			broken = err
			break
		}
		err := runFn(o.fn, t)
		if err != nil {
			results[i] = err
			if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO u"); rerr != nil {
				broken = rerr
				break
			}
		}
		if _, err := tx.ExecContext(ctx, "RELEASE u"); err != nil {
			if results[i] == nil {
				results[i] = fmt.Errorf("sqlite: failed to release savepoint: %w", classify(err))
			}
			broken = err
			break
		}
		if results[i] == nil {
			committed++
		}
	}
	if broken != nil {
		tx.Rollback()
		err := fmt.Errorf("%w: the write transaction was rolled back by a failure in its batch (%v); nothing was written",
			storage.ErrUnavailable, broken)
		for i := range results {
			if results[i] == nil {
				results[i] = err
			}
		}
		finish()
		return
	}
	if committed == 0 {
		tx.Rollback()
		finish()
		return
	}
	if err := tx.Commit(); err != nil {
		err = fmt.Errorf("sqlite: commit failed: %w", classify(err))
		for i := range results {
			if results[i] == nil {
				results[i] = err
			}
		}
	}
	finish()
}

func runFn(fn func(storage.Tx) error, t *txn) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sqlite: update panicked: %v", r)
		}
	}()
	return fn(t)
}

// classify maps driver errors onto storage's sentinels.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite3.Error
	if errors.As(err, &se) {
		// Only uniqueness is a conflict. Other constraint failures (a
		// trigger's RAISE(ABORT), NOT NULL, a foreign key) are not the
		// caller's duplicate and must not be reported as one.
		switch se.Code() {
		case sqlite3lib.SQLITE_CONSTRAINT_UNIQUE, sqlite3lib.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %v", storage.ErrConflict, err)
		}
		switch se.Code() & 0xff {
		case sqlite3lib.SQLITE_BUSY, sqlite3lib.SQLITE_LOCKED, sqlite3lib.SQLITE_FULL,
			sqlite3lib.SQLITE_IOERR, sqlite3lib.SQLITE_CANTOPEN:
			return fmt.Errorf("%w: %v", storage.ErrUnavailable, err)
		}
	}
	if errors.Is(err, sql.ErrConnDone) {
		return fmt.Errorf("%w: %v", storage.ErrUnavailable, err)
	}
	return err
}

// migrate applies the missing migrations in one transaction: either all
// of them are applied or none. The transaction is BEGIN IMMEDIATE (the
// writer's), so it holds the write lock from the start, and two processes
// opening one old database together do not both upgrade it: the second
// reads the version the first left.
func (s *Store) migrate(ctx context.Context) error {
	ms := migrations()
	if len(ms) != SchemaVersion {
		return fmt.Errorf("sqlite: %d migrations for schema version %d", len(ms), SchemaVersion)
	}
	// Most Opens find the schema up to date: they need no write lock.
	v, err := schemaVersion(ctx, s.w)
	if err != nil {
		return err
	}
	if v == SchemaVersion {
		return nil
	}
	if v > SchemaVersion {
		return newerSchema(v)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: %w", classify(err))
	}
	defer tx.Rollback()
	if v, err = schemaVersion(ctx, tx); err != nil {
		return err
	}
	if v > SchemaVersion {
		return newerSchema(v)
	}
	if v == SchemaVersion {
		return nil
	}
	for i, m := range ms[v:] {
		for _, q := range strings.Split(m, ";\n") {
			if strings.TrimSpace(q) == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("sqlite: migration to schema version %d failed: %w", v+i+1, classify(err))
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES('schema_version', ?)
		ON CONFLICT(key) DO UPDATE SET value=excluded.value`, strconv.Itoa(SchemaVersion)); err != nil {
		return fmt.Errorf("sqlite: failed to record the schema version: %w", classify(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: failed to commit the migration: %w", classify(err))
	}
	return nil
}

func newerSchema(v int) error {
	return fmt.Errorf("sqlite: database schema version %d is newer than this binary knows (%d): upgrade censusvault", v, SchemaVersion)
}

// schemaVersion reads the database's schema version: 0 for a database
// with no tables yet.
func schemaVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var tables int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'`).Scan(&tables); err != nil {
		return 0, fmt.Errorf("sqlite: failed to read schema: %w", classify(err))
	}
	if tables == 0 {
		return 0, nil
	}
	var text string
	if err := q.QueryRowContext(ctx, `SELECT value FROM meta WHERE key='schema_version'`).Scan(&text); err != nil {
		return 0, fmt.Errorf("sqlite: failed to read schema version: %w", classify(err))
	}
	v, err := strconv.Atoi(text)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("sqlite: the database's schema version %.32q is not a version number", text)
	}
	return v, nil
}

// schemaV1 is the first schema, exactly as released: databases at
// version 1 were made by it.
const schemaV1 = `
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
`

// schemaV3Projects adds research projects. Areas and variables are JSON
// arrays of strings; the CHECKs keep the ledger sane even against a
// statement that forgot DebitProject's guard.
const schemaV3Projects = `
CREATE TABLE projects (
	id         TEXT PRIMARY KEY,
	title      TEXT NOT NULL,
	purpose    TEXT NOT NULL,
	areas      TEXT NOT NULL,
	variables  TEXT NOT NULL,
	expires_at TEXT NOT NULL,
	budget     INTEGER NOT NULL CHECK (budget > 0),
	spent      INTEGER NOT NULL CHECK (spent >= 0 AND spent <= budget),
	created_at TEXT NOT NULL,
	closed_at  TEXT NOT NULL
) WITHOUT ROWID;
`

// schemaV4Research is what research tables need:
//   - users get the age recipient their tables may be encrypted to ("":
//     none);
//   - a grant may hold for one research project only ("": every request),
//     so the project joins grants' primary key. SQLite cannot change a
//     primary key in place: the table is rebuilt (new table, copy, drop,
//     rename), which keeps its name and its reference to users. No table
//     references grants, so dropping the old one checks no foreign key;
//   - submissions are read in audit_index order (SubmissionsSince), a
//     range of this index rather than a scan of the table.
//
// On a large vault the index is built while the upgrade holds the write
// lock: Open takes as long as one pass over the submissions.
const schemaV4Research = `
ALTER TABLE users ADD COLUMN recipient TEXT NOT NULL DEFAULT '';
CREATE TABLE grants_v4 (
	user    TEXT NOT NULL REFERENCES users(name),
	role    TEXT NOT NULL,
	area    TEXT NOT NULL,
	deny    INTEGER NOT NULL,
	project TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (user, role, area, deny, project)
) WITHOUT ROWID;
INSERT INTO grants_v4(user, role, area, deny, project) SELECT user, role, area, deny, '' FROM grants;
DROP TABLE grants;
ALTER TABLE grants_v4 RENAME TO grants;
CREATE INDEX submissions_audit_index ON submissions(audit_index);
`

// schemaV5AuditTree makes the audit log a Merkle tree and guards it:
//   - audit_hashes holds the tree's hashes by stored-hash index, and
//     audit_checkpoints the signed notes of its roots by tree size;
//   - a pruned record keeps its row with an empty event (audit_events.
//     event stays NOT NULL: SQLite cannot drop that without copying the
//     whole log; AppendAudit refuses an empty event, so empty means
//     pruned);
//   - triggers refuse every change to the three tables other than an
//     insert of a new row and emptying an event: no DELETE, no UPDATE
//     of audit_events but one that empties event and keeps idx and both
//     hashes), and no INSERT over a stored key, which INSERT OR REPLACE
//     would otherwise turn into a delete that fires no trigger.
//
// No existing row is rewritten, so the upgrade is quick on any log.
// The statements are split on ";\n": a trigger's body stays on one line.
const schemaV5AuditTree = `
CREATE TABLE audit_hashes (
	idx  INTEGER PRIMARY KEY CHECK (idx >= 0),
	hash BLOB NOT NULL CHECK (typeof(hash) = 'blob' AND length(hash) = 32)
);
CREATE TABLE audit_checkpoints (
	size       INTEGER PRIMARY KEY CHECK (size > 0),
	note       BLOB NOT NULL CHECK (typeof(note) = 'blob' AND length(note) > 0),
	created_at TEXT NOT NULL
);
CREATE TRIGGER audit_events_no_replace BEFORE INSERT ON audit_events
	WHEN EXISTS (SELECT 1 FROM audit_events WHERE idx = NEW.idx)
	BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: a stored record cannot be replaced'); END;
CREATE TRIGGER audit_events_prune_only BEFORE UPDATE ON audit_events
	WHEN NEW.idx IS NOT OLD.idx OR NEW.leaf_hash IS NOT OLD.leaf_hash OR NEW.chain_hash IS NOT OLD.chain_hash
		OR (NEW.event IS NOT OLD.event AND NEW.event IS NOT X'')
	BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: a stored record can only have its event pruned'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
	BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: a stored record cannot be deleted'); END;
CREATE TRIGGER audit_hashes_no_replace BEFORE INSERT ON audit_hashes
	WHEN EXISTS (SELECT 1 FROM audit_hashes WHERE idx = NEW.idx)
	BEGIN SELECT RAISE(ABORT, 'audit_hashes is append-only: a stored hash cannot be replaced'); END;
CREATE TRIGGER audit_hashes_no_update BEFORE UPDATE ON audit_hashes
	BEGIN SELECT RAISE(ABORT, 'audit_hashes is append-only: a stored hash cannot be changed'); END;
CREATE TRIGGER audit_hashes_no_delete BEFORE DELETE ON audit_hashes
	BEGIN SELECT RAISE(ABORT, 'audit_hashes is append-only: a stored hash cannot be deleted'); END;
CREATE TRIGGER audit_checkpoints_no_replace BEFORE INSERT ON audit_checkpoints
	WHEN EXISTS (SELECT 1 FROM audit_checkpoints WHERE size = NEW.size)
	BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only: a stored checkpoint cannot be replaced'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
	BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only: a stored checkpoint cannot be changed'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
	BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only: a stored checkpoint cannot be deleted'); END;
`

// schemaV6ReleasePoints adds publication points. A point never changes
// once stored: the tables published at it must stay computable from the
// same frozen state. Triggers refuse UPDATE and DELETE, and an INSERT
// over a stored seq or name, which INSERT OR REPLACE would otherwise
// turn into a delete that fires no trigger. The CHECKs hold what
// InsertReleasePoint promises (a point has a name, a time and a state)
// against a statement that skipped it. name is compared in byte order
// (BINARY), as the broker's names are ASCII.
const schemaV6ReleasePoints = `
CREATE TABLE release_points (
	seq         INTEGER PRIMARY KEY CHECK (seq > 0),
	name        TEXT NOT NULL UNIQUE CHECK (length(name) > 0),
	as_of       INTEGER NOT NULL,
	created_at  TEXT NOT NULL CHECK (length(created_at) > 0),
	created_by  TEXT NOT NULL,
	audit_index INTEGER NOT NULL CHECK (audit_index >= 0),
	state       BLOB NOT NULL CHECK (typeof(state) = 'blob' AND length(state) > 0)
);
CREATE TRIGGER release_points_no_replace BEFORE INSERT ON release_points
	WHEN EXISTS (SELECT 1 FROM release_points WHERE seq = NEW.seq OR name = NEW.name)
	BEGIN SELECT RAISE(ABORT, 'release_points is immutable: a stored point cannot be replaced'); END;
CREATE TRIGGER release_points_no_update BEFORE UPDATE ON release_points
	BEGIN SELECT RAISE(ABORT, 'release_points is immutable: a stored point cannot be changed'); END;
CREATE TRIGGER release_points_no_delete BEFORE DELETE ON release_points
	BEGIN SELECT RAISE(ABORT, 'release_points is immutable: a stored point cannot be deleted'); END;
`

// schemaV7Ledger adds the privacy ledger, and marks the scheduled points
// of dp tables among the release points (release_points.scheduled):
//   - ledger_debits holds each charge of a differentially private table,
//     one per query digest (the primary key; WITHOUT ROWID, so there is
//     no other key an INSERT OR REPLACE could replace over). Budget once
//     spent stays spent: triggers refuse every UPDATE and DELETE, and an
//     INSERT over a stored query, which INSERT OR REPLACE would
//     otherwise turn into a delete that fires no trigger. areas is a
//     JSON array of area codes, in the caller's order;
//   - ledger_shares holds proposed changes of a share and their
//     approval. Triggers refuse DELETE, an INSERT over a stored seq, and
//     every UPDATE but the approval of a pending change: one that sets
//     a non-empty approved_by on a row whose approved_by is empty and
//     leaves every column but approved_by, approved_at and
//     approval_audit as it was.
//
// The CHECKs hold what InsertLedgerDebit and ProposeShare promise
// against a statement that skipped them; the last one keeps a change
// either wholly pending or wholly approved. Nothing existing is
// rewritten, so the upgrade is quick.
const schemaV7Ledger = `
ALTER TABLE release_points ADD COLUMN scheduled INTEGER NOT NULL DEFAULT 0 CHECK (scheduled IN (0, 1));
CREATE TABLE ledger_debits (
	query       TEXT PRIMARY KEY CHECK (length(query) > 0),
	audit_index INTEGER NOT NULL CHECK (audit_index >= 0),
	result      TEXT NOT NULL CHECK (length(result) > 0),
	areas       TEXT NOT NULL CHECK (json_valid(areas) AND json_type(areas) = 'array' AND json_array_length(areas) > 0),
	project     TEXT NOT NULL CHECK (length(project) > 0),
	researcher  TEXT NOT NULL CHECK (length(researcher) > 0),
	rho         INTEGER NOT NULL CHECK (typeof(rho) = 'integer' AND rho > 0),
	at          TEXT NOT NULL CHECK (length(at) > 0)
) WITHOUT ROWID;
CREATE INDEX ledger_debits_audit_index ON ledger_debits(audit_index);
CREATE TRIGGER ledger_debits_no_replace BEFORE INSERT ON ledger_debits
	WHEN EXISTS (SELECT 1 FROM ledger_debits WHERE query = NEW.query)
	BEGIN SELECT RAISE(ABORT, 'ledger_debits is append-only: a stored debit cannot be replaced'); END;
CREATE TRIGGER ledger_debits_no_update BEFORE UPDATE ON ledger_debits
	BEGIN SELECT RAISE(ABORT, 'ledger_debits is append-only: a stored debit cannot be changed'); END;
CREATE TRIGGER ledger_debits_no_delete BEFORE DELETE ON ledger_debits
	BEGIN SELECT RAISE(ABORT, 'ledger_debits is append-only: a stored debit cannot be deleted'); END;
CREATE TABLE ledger_shares (
	seq            INTEGER PRIMARY KEY CHECK (seq > 0),
	kind           TEXT NOT NULL CHECK (length(kind) > 0),
	holder         TEXT NOT NULL,
	rho            INTEGER NOT NULL CHECK (typeof(rho) = 'integer' AND rho > 0),
	reason         TEXT NOT NULL CHECK (length(reason) > 0),
	proposed_by    TEXT NOT NULL CHECK (length(proposed_by) > 0),
	proposed_at    TEXT NOT NULL CHECK (length(proposed_at) > 0),
	proposal_audit INTEGER NOT NULL CHECK (proposal_audit >= 0),
	approved_by    TEXT NOT NULL DEFAULT '',
	approved_at    TEXT NOT NULL DEFAULT '',
	approval_audit INTEGER NOT NULL DEFAULT 0 CHECK (approval_audit >= 0),
	CHECK ((approved_by = '' AND approved_at = '' AND approval_audit = 0) OR (approved_by <> '' AND approved_at <> ''))
);
CREATE TRIGGER ledger_shares_no_replace BEFORE INSERT ON ledger_shares
	WHEN EXISTS (SELECT 1 FROM ledger_shares WHERE seq = NEW.seq)
	BEGIN SELECT RAISE(ABORT, 'ledger_shares: a stored share change cannot be replaced'); END;
CREATE TRIGGER ledger_shares_approve_only BEFORE UPDATE ON ledger_shares
	WHEN OLD.approved_by <> '' OR NEW.approved_by = ''
		OR NEW.seq IS NOT OLD.seq OR NEW.kind IS NOT OLD.kind OR NEW.holder IS NOT OLD.holder
		OR NEW.rho IS NOT OLD.rho OR NEW.reason IS NOT OLD.reason OR NEW.proposed_by IS NOT OLD.proposed_by
		OR NEW.proposed_at IS NOT OLD.proposed_at OR NEW.proposal_audit IS NOT OLD.proposal_audit
	BEGIN SELECT RAISE(ABORT, 'ledger_shares: a share change can only be approved, once, and is otherwise never changed'); END;
CREATE TRIGGER ledger_shares_no_delete BEFORE DELETE ON ledger_shares
	BEGIN SELECT RAISE(ABORT, 'ledger_shares: a stored share change cannot be deleted'); END;
`

// schemaV8RecordOpens adds the record opens of the review views: one row
// per submission a user opened, counted by user over the last hour
// (OpensSince, a range of the index) and removed after a day
// (PruneOpens). at is in Unix nanoseconds (see boundNanos): unlike the
// RFC 3339 text of other tables, it sorts as time does. The audit log,
// not this table, is the lasting record of an open. Nothing existing is
// rewritten, so the upgrade is quick.
//
// It adds the reviews too: one row per review of a submission (accepted
// or rejected, a reason code, a note for the enumerator), keyed by its
// audit event. Reviews are append-only: triggers refuse every UPDATE and
// DELETE, and an INSERT over a stored audit index (which INSERT OR
// REPLACE would otherwise turn into a delete that fires no trigger). A
// submission's review is its latest (reviews_submission).
const schemaV8RecordOpens = `
CREATE TABLE record_opens (
	user_name  TEXT NOT NULL CHECK (length(user_name) > 0),
	submission TEXT NOT NULL CHECK (length(submission) > 0),
	at         INTEGER NOT NULL CHECK (typeof(at) = 'integer')
);
CREATE INDEX record_opens_user_at ON record_opens(user_name, at);
CREATE TABLE reviews (
	audit_index INTEGER PRIMARY KEY CHECK (audit_index >= 0),
	submission  TEXT NOT NULL CHECK (length(submission) > 0),
	status      TEXT NOT NULL CHECK (status IN ('accepted', 'rejected')),
	reason      TEXT NOT NULL CHECK (length(reason) > 0),
	note        TEXT NOT NULL,
	reviewer    TEXT NOT NULL CHECK (length(reviewer) > 0),
	at          TEXT NOT NULL CHECK (length(at) > 0)
);
CREATE INDEX reviews_submission ON reviews(submission, audit_index);
CREATE TRIGGER reviews_no_replace BEFORE INSERT ON reviews
	WHEN EXISTS (SELECT 1 FROM reviews WHERE audit_index = NEW.audit_index)
	BEGIN SELECT RAISE(ABORT, 'reviews is append-only: a stored review cannot be replaced'); END;
CREATE TRIGGER reviews_no_update BEFORE UPDATE ON reviews
	BEGIN SELECT RAISE(ABORT, 'reviews is append-only: a stored review cannot be changed'); END;
CREATE TRIGGER reviews_no_delete BEFORE DELETE ON reviews
	BEGIN SELECT RAISE(ABORT, 'reviews is append-only: a stored review cannot be deleted'); END;
`

// schemaV9GrantLog adds the grant log and the proposed grant changes:
//   - grant_log holds every change of the policy in force (a grant, an
//     ungrant, a role policy, the start of the log), so the policy at
//     any audit event can be rebuilt from it. It is append-only:
//     triggers refuse every UPDATE and DELETE, and an INSERT over a
//     stored seq, which INSERT OR REPLACE would otherwise turn into a
//     delete that fires no trigger;
//   - grant_proposals holds the changes an administrator proposed and
//     their confirmation by an approver. Triggers refuse DELETE, an
//     INSERT over a stored seq, and every UPDATE but the confirmation of
//     a pending proposal: one that sets a non-empty confirmed_by on a row
//     whose confirmed_by is empty and leaves every column but
//     confirmed_by, confirmed_at and confirm_audit as it was.
//
// The CHECKs hold what AppendGrantLog and ProposeGrant promise against a
// statement that skipped them: a grant or ungrant names a user, a role
// and an area and carries no policy; a policy (or start) carries a model
// and a policy and names no user or grant; a proposal is wholly pending
// or wholly confirmed. Nothing existing is rewritten, so the upgrade is
// quick.
const schemaV9GrantLog = `
CREATE TABLE grant_log (
	seq         INTEGER PRIMARY KEY CHECK (seq > 0),
	audit_index INTEGER NOT NULL CHECK (audit_index >= 0),
	at          TEXT NOT NULL CHECK (length(at) > 0),
	op          TEXT NOT NULL CHECK (op IN ('grant', 'ungrant', 'policy', 'start')),
	user_name   TEXT NOT NULL,
	role        TEXT NOT NULL,
	area        TEXT NOT NULL,
	deny        INTEGER NOT NULL CHECK (deny IN (0, 1)),
	project     TEXT NOT NULL,
	model       TEXT NOT NULL,
	policy      TEXT NOT NULL,
	policy_hash TEXT NOT NULL CHECK (length(policy_hash) > 0),
	CHECK (CASE WHEN op IN ('grant', 'ungrant')
		THEN length(user_name) > 0 AND length(role) > 0 AND length(area) > 0 AND model = '' AND policy = ''
		ELSE length(model) > 0 AND length(policy) > 0 AND user_name = '' AND role = '' AND area = '' AND deny = 0 AND project = '' END)
);
CREATE TRIGGER grant_log_no_replace BEFORE INSERT ON grant_log
	WHEN EXISTS (SELECT 1 FROM grant_log WHERE seq = NEW.seq)
	BEGIN SELECT RAISE(ABORT, 'grant_log is append-only: a stored entry cannot be replaced'); END;
CREATE TRIGGER grant_log_no_update BEFORE UPDATE ON grant_log
	BEGIN SELECT RAISE(ABORT, 'grant_log is append-only: a stored entry cannot be changed'); END;
CREATE TRIGGER grant_log_no_delete BEFORE DELETE ON grant_log
	BEGIN SELECT RAISE(ABORT, 'grant_log is append-only: a stored entry cannot be deleted'); END;
CREATE TABLE grant_proposals (
	seq            INTEGER PRIMARY KEY CHECK (seq > 0),
	kind           TEXT NOT NULL CHECK (kind IN ('grant', 'ungrant', 'policy')),
	user_name      TEXT NOT NULL,
	role           TEXT NOT NULL,
	area           TEXT NOT NULL,
	deny           INTEGER NOT NULL CHECK (deny IN (0, 1)),
	project        TEXT NOT NULL,
	model          TEXT NOT NULL,
	policy         TEXT NOT NULL,
	reason         TEXT NOT NULL,
	proposed_by    TEXT NOT NULL CHECK (length(proposed_by) > 0),
	proposed_at    TEXT NOT NULL CHECK (length(proposed_at) > 0),
	proposal_audit INTEGER NOT NULL CHECK (proposal_audit >= 0),
	confirmed_by   TEXT NOT NULL DEFAULT '',
	confirmed_at   TEXT NOT NULL DEFAULT '',
	confirm_audit  INTEGER NOT NULL DEFAULT 0 CHECK (confirm_audit >= 0),
	CHECK (CASE WHEN kind IN ('grant', 'ungrant')
		THEN length(user_name) > 0 AND length(role) > 0 AND length(area) > 0 AND model = '' AND policy = ''
		ELSE length(model) > 0 AND length(policy) > 0 AND user_name = '' AND role = '' AND area = '' AND deny = 0 AND project = '' END),
	CHECK ((confirmed_by = '' AND confirmed_at = '' AND confirm_audit = 0) OR (confirmed_by <> '' AND confirmed_at <> ''))
);
CREATE TRIGGER grant_proposals_no_replace BEFORE INSERT ON grant_proposals
	WHEN EXISTS (SELECT 1 FROM grant_proposals WHERE seq = NEW.seq)
	BEGIN SELECT RAISE(ABORT, 'grant_proposals: a stored proposal cannot be replaced'); END;
CREATE TRIGGER grant_proposals_confirm_only BEFORE UPDATE ON grant_proposals
	WHEN OLD.confirmed_by <> '' OR NEW.confirmed_by = ''
		OR NEW.seq IS NOT OLD.seq OR NEW.kind IS NOT OLD.kind OR NEW.user_name IS NOT OLD.user_name
		OR NEW.role IS NOT OLD.role OR NEW.area IS NOT OLD.area OR NEW.deny IS NOT OLD.deny
		OR NEW.project IS NOT OLD.project OR NEW.model IS NOT OLD.model OR NEW.policy IS NOT OLD.policy
		OR NEW.reason IS NOT OLD.reason OR NEW.proposed_by IS NOT OLD.proposed_by
		OR NEW.proposed_at IS NOT OLD.proposed_at OR NEW.proposal_audit IS NOT OLD.proposal_audit
	BEGIN SELECT RAISE(ABORT, 'grant_proposals: a proposal can only be confirmed, once, and is otherwise never changed'); END;
CREATE TRIGGER grant_proposals_no_delete BEFORE DELETE ON grant_proposals
	BEGIN SELECT RAISE(ABORT, 'grant_proposals: a stored proposal cannot be deleted'); END;
`
