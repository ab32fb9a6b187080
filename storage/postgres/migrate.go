package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// SchemaVersion is the newest schema this binary knows. Opening a database
// whose schema is newer fails rather than risk misreading it.
const SchemaVersion = 12

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one step of the schema, applied once, in version order.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations lists the embedded files, named NNNN_what.sql, in order. A
// file set that does not run 1..SchemaVersion without a gap is a build
// mistake, caught by the package's tests.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("postgres: migration file %q is not named NNNN_what.sql", e.Name())
		}
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("postgres: migrations are not numbered 1..n without gaps: %s", m.name)
		}
	}
	if len(ms) != SchemaVersion {
		return nil, fmt.Errorf("postgres: %d migration files for schema version %d", len(ms), SchemaVersion)
	}
	return ms, nil
}

// migrationLock is the advisory lock key that serializes migrations, so
// instances starting together on a fresh database do not race to create
// it. ("cvmigrat" as a big-endian int64.)
const migrationLock int64 = 0x63766d6967726174

// Migrate brings the database at dsn to SchemaVersion and reports the
// version before and after. It is idempotent, and what Open does before
// serving; `censusvault migrate` calls it on its own.
func Migrate(ctx context.Context, dsn string) (from, to int, err error) {
	cfg, _, err := parseDSN(dsn)
	if err != nil {
		return 0, 0, err
	}
	c, err := connect(ctx, cfg.ConnConfig)
	if err != nil {
		return 0, 0, err
	}
	defer closeConn(c)
	return migrate(ctx, c)
}

// migrate applies the missing migrations on c in one transaction that
// holds the migration lock: either all of them are applied or none.
func migrate(ctx context.Context, c *pgx.Conn) (from, to int, err error) {
	ms, err := migrations()
	if err != nil {
		return 0, 0, err
	}
	var enc string
	if err := c.QueryRow(ctx, `SELECT current_setting('server_encoding')`).Scan(&enc); err != nil {
		return 0, 0, fmt.Errorf("postgres: failed to read the database encoding: %w", classify(err))
	}
	if enc != "UTF8" {
		// Area names and user names are Unicode; another encoding would
		// refuse or mangle them.
		return 0, 0, fmt.Errorf("postgres: the database's encoding is %s, censusvault needs UTF8 (CREATE DATABASE … ENCODING 'UTF8')", enc)
	}
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return 0, 0, fmt.Errorf("postgres: failed to begin migration: %w", classify(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return 0, 0, fmt.Errorf("postgres: failed to take the migration lock: %w", classify(err))
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at TEXT NOT NULL
	)`); err != nil {
		return 0, 0, fmt.Errorf("postgres: failed to create schema_migrations: %w", classify(err))
	}
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&from); err != nil {
		return 0, 0, fmt.Errorf("postgres: failed to read the schema version: %w", classify(err))
	}
	if from > SchemaVersion {
		return from, from, fmt.Errorf("postgres: database schema version %d is newer than this binary knows (%d): upgrade censusvault", from, SchemaVersion)
	}
	for _, m := range ms[from:] {
		// No arguments: pgx sends it as one simple query, which may hold
		// several statements.
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return from, from, fmt.Errorf("postgres: migration %s failed: %w", m.name, classify(err))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES ($1, $2)`,
			m.version, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
			return from, from, fmt.Errorf("postgres: failed to record migration %s: %w", m.name, classify(err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return from, from, fmt.Errorf("postgres: failed to commit the migration: %w", classify(err))
	}
	return from, SchemaVersion, nil
}
