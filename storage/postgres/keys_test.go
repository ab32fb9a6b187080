package postgres_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/postgres"
	"github.com/censusvault/censusvault/storage/postgres/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestUpgradeFromV1: a database at schema version 1 (made by migration 1
// alone, as the first release did) migrates to the current version with
// its data intact; data keys are then listed in byte order whatever the
// database's locale.
func TestUpgradeFromV1(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	v1, err := os.ReadFile(filepath.Join("migrations", "0001_initial.sql"))
	if err != nil {
		t.Fatal(err)
	}
	// What migrate did in the first release: the migration, recorded.
	sql(t, dsn, string(v1)+`;
		CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);
		INSERT INTO schema_migrations VALUES (1, 'then');
		INSERT INTO data_keys(class, commune, version, wrapped, created_at) VALUES
			('identifying', 'a', 1, '\x0001', '2019-04-01T09:30:00.123456789Z'),
			('identifying', 'B', 1, '\x0203', '2019-04-01T09:30:00.123456789Z');
		INSERT INTO keys(purpose, version, wrapped, created_at, not_after) VALUES ('ingest', 1, '\x07', '2019-04-01T09:30:00Z', '')`)

	from, to, err := postgres.Migrate(ctx, dsn)
	if err != nil || from != 1 || to != postgres.SchemaVersion {
		t.Fatalf("Migrate of a version 1 database = %d, %d, %v; want 1, %d", from, to, err, postgres.SchemaVersion)
	}
	if vs := schemaVersions(t, dsn); fmt.Sprint(vs) != fmt.Sprint(allVersions()) {
		t.Errorf("schema_migrations = %v, want %v", vs, allVersions())
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, `SELECT column_name || ' ' || coalesce(collation_name, '-') FROM information_schema.columns
		WHERE table_name = 'data_keys' AND column_name IN ('class', 'commune') ORDER BY column_name`)
	if err != nil {
		t.Fatal(err)
	}
	if cols, err := pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || fmt.Sprint(cols) != "[class C commune C]" {
		t.Errorf("data_keys collations = %v, %v; want byte order (C) for class and commune", cols, err)
	}

	s := open(t, postgres.Options{DSN: dsn, MaxConns: 2})
	err = s.View(ctx, func(tx storage.ReadTx) error {
		var got []storage.DataKey
		if err := tx.DataKeys(func(k storage.DataKey) (bool, error) { got = append(got, k); return true, nil }); err != nil {
			return err
		}
		if len(got) != 2 || got[0].Commune != "B" || !bytes.Equal(got[0].Wrapped, []byte{2, 3}) ||
			got[1].Commune != "a" || !bytes.Equal(got[1].Wrapped, []byte{0, 1}) {
			t.Errorf("DataKeys after the upgrade = %+v; want B then a (byte order), bytes intact", got)
		}
		for _, k := range got {
			if !k.ShreddedAt.IsZero() || k.CreatedAt.Nanosecond() != 123456789 {
				t.Errorf("DataKey %s after the upgrade: CreatedAt %v, ShreddedAt %v", k.Commune, k.CreatedAt, k.ShreddedAt)
			}
		}
		if k, err := tx.Keys("ingest"); err != nil || len(k) != 1 || !bytes.Equal(k[0].Wrapped, []byte{7}) {
			t.Errorf("Keys(ingest) after the upgrade = %+v, %v", k, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.Update(ctx, func(tx storage.Tx) (err error) {
		n, err = tx.ShredDataKeys("identifying", []string{"a", "B"}, time.Now())
		return err
	}); err != nil || n != 2 {
		t.Errorf("ShredDataKeys on an upgraded database = %d, %v; want 2", n, err)
	}
}

// pattern is 64 bytes that occur nowhere by chance.
func pattern(name string) []byte {
	a := sha256.Sum256([]byte("storage/postgres test pattern " + name))
	b := sha256.Sum256(a[:])
	return append(a[:], b[:]...)
}

// inTableFile reports whether p is in the file that holds table's rows,
// read by the server after a CHECKPOINT has written its pages out. It
// needs a superuser (pg_read_binary_file); the test is skipped without.
func inTableFile(t *testing.T, c *pgx.Conn, table string, p []byte) bool {
	t.Helper()
	ctx := context.Background()
	if _, err := c.Exec(ctx, `CHECKPOINT`); err != nil {
		skipIfDenied(t, err)
		t.Fatal(err)
	}
	var found bool
	err := c.QueryRow(ctx, `SELECT position($1::bytea IN pg_read_binary_file(pg_relation_filepath($2::regclass))) > 0`, p, table).Scan(&found)
	if err != nil {
		skipIfDenied(t, err)
		t.Fatal(err)
	}
	return found
}

func skipIfDenied(t *testing.T, err error) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42501" { // insufficient_privilege
		t.Skipf("reading the table's file needs a superuser: %v", err)
	}
}

// TestCompactRewritesKeyTables: after ShredDataKeys and RewrapKey the old
// bytes stay in the tables' files as dead row versions; Compact rewrites
// both tables, and the new files hold only the live bytes. (The WAL still
// holds the old ones: Compact's documentation says so.)
func TestCompactRewritesKeyTables(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	s := open(t, postgres.Options{DSN: dsn, MaxConns: 3})
	shredded, kept, oldKey, newKey := pattern("shredded"), pattern("kept"), pattern("old key"), pattern("new key")
	if err := s.Update(ctx, func(tx storage.Tx) error {
		return errors.Join(
			tx.PutDataKey(&storage.DataKey{Class: "identifying", Commune: "C1", Version: 1, Wrapped: shredded, CreatedAt: time.Now()}),
			tx.PutDataKey(&storage.DataKey{Class: "identifying", Commune: "C2", Version: 1, Wrapped: kept, CreatedAt: time.Now()}),
			tx.PutKey(&storage.Key{Purpose: "ingest", Version: 1, Wrapped: oldKey, CreatedAt: time.Now()}),
		)
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx storage.Tx) error {
		n, err := tx.ShredDataKeys("identifying", []string{"C1"}, time.Now())
		if err == nil && n != 1 {
			err = fmt.Errorf("ShredDataKeys = %d, want 1", n)
		}
		return errors.Join(err, tx.RewrapKey("ingest", 1, newKey))
	}); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, f := range []struct {
		table string
		p     []byte
	}{{"data_keys", shredded}, {"keys", oldKey}} {
		if !inTableFile(t, c, f.table, f.p) {
			t.Fatalf("the old bytes are not in %s's file even before Compact: this test cannot tell whether Compact works", f.table)
		}
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	for _, f := range []struct {
		table string
		p     []byte
		want  bool
	}{{"data_keys", shredded, false}, {"keys", oldKey, false}, {"data_keys", kept, true}, {"keys", newKey, true}} {
		if got := inTableFile(t, c, f.table, f.p); got != f.want {
			t.Errorf("after Compact: bytes %.8x… in %s's file: %v, want %v", f.p, f.table, got, f.want)
		}
	}
}

// TestCompactLockTimeout: a transaction holding a lock on data_keys keeps
// Compact from its exclusive lock; Compact gives up with ErrUnavailable
// rather than stall every writer queued behind it, and works once the
// lock is free.
func TestCompactLockTimeout(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	// Compact waits at most a quarter of WriteTimeout: 500ms.
	s := open(t, postgres.Options{DSN: dsn, MaxConns: 3, WriteTimeout: 2 * time.Second})
	// READ COMMITTED and no write: the transaction holds the lock but
	// neither a snapshot nor a transaction id, so Compact does not wait
	// for it to end before trying the lock.
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `BEGIN ISOLATION LEVEL READ COMMITTED; LOCK TABLE data_keys IN ACCESS SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = s.Compact(ctx)
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "lock") {
		t.Errorf("Compact while data_keys is locked: err = %v, want ErrUnavailable naming the lock", err)
	}
	if waited := time.Since(start); waited < 400*time.Millisecond || waited > 5*time.Second {
		t.Errorf("Compact gave up after %v, want about 500ms", waited)
	}
	if _, err := c.Exec(ctx, `COMMIT`); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatalf("Compact once the lock is free: %v", err)
	}
}

// TestCompactWaitsForOlderTransactions: a transaction that began before
// the shredding could still read the old row versions, so VACUUM would
// keep them. Compact waits for it, up to WriteTimeout, then fails with
// ErrUnavailable naming it; once it has ended, Compact removes the bytes.
func TestCompactWaitsForOlderTransactions(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	s := open(t, postgres.Options{DSN: dsn, MaxConns: 3, WriteTimeout: time.Second})
	secret := pattern("older transactions")
	if err := s.Update(ctx, func(tx storage.Tx) error {
		return tx.PutDataKey(&storage.DataKey{Class: "identifying", Commune: "C1", Version: 1, Wrapped: secret, CreatedAt: time.Now()})
	}); err != nil {
		t.Fatal(err)
	}
	reading, release := make(chan struct{}), make(chan struct{})
	viewDone := make(chan error, 1)
	go func() {
		viewDone <- s.View(ctx, func(tx storage.ReadTx) error {
			_, err := tx.Meta("anything") // takes the snapshot, and no lock on the key tables
			if errors.Is(err, storage.ErrNotFound) {
				err = nil
			}
			close(reading)
			<-release
			return err
		})
	}()
	<-reading
	if err := s.Update(ctx, func(tx storage.Tx) error {
		_, err := tx.ShredDataKeys("identifying", []string{"C1"}, time.Now())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := s.Compact(ctx)
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "session") {
		t.Errorf("Compact while an older View is open: err = %v, want ErrUnavailable naming the session", err)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond || waited > 10*time.Second {
		t.Errorf("Compact gave up after %v, want about WriteTimeout (1s)", waited)
	}
	close(release)
	if err := <-viewDone; err != nil {
		t.Fatalf("View: %v", err)
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatalf("Compact once the View ended: %v", err)
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if inTableFile(t, c, "data_keys", secret) {
		t.Error("after Compact, the shredded key's bytes are still in data_keys's file")
	}
}
