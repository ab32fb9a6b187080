package sqlite_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/sqlite"
)

// schemaOf lists the database's tables and indexes as SQLite stores them.
// sameSchemaAsNew checks that the (upgraded) database at path has exactly
// the schema a new database gets.
func sameSchemaAsNew(t *testing.T, path string) {
	t.Helper()
	fresh := dbPath(t)
	open(t, sqlite.Options{Path: fresh, Create: true}).Close()
	if got, want := schemaOf(t, path), schemaOf(t, fresh); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("schema of the upgraded database:\n%s\nwant that of a new one:\n%s", got, want)
	}
}

// queryPlan returns SQLite's EXPLAIN QUERY PLAN of q, one step a line.
func queryPlan(t *testing.T, db *sql.DB, q string, args ...any) string {
	t.Helper()
	rows, err := db.Query(`EXPLAIN QUERY PLAN `+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "\n")
}

func schemaOf(t *testing.T, path string) []string {
	t.Helper()
	rows, err := peer(t, path).Query(`SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_master ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUpgradeFromV1: a database made by the first release (its schema
// text is kept in testdata) opens with its data intact at the current
// schema version, even when two processes open it at once, and ends up
// with exactly the schema of a database made new.
func TestUpgradeFromV1(t *testing.T) {
	v1, err := os.ReadFile(filepath.Join("testdata", "schema_v1.sql"))
	if err != nil {
		t.Fatal(err)
	}
	path := dbPath(t)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	// As the first release made them: in WAL mode.
	old, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2019, 4, 1, 9, 30, 0, 123456789, time.UTC).Format(time.RFC3339Nano)
	for _, q := range []string{
		string(v1),
		`INSERT INTO meta(key, value) VALUES ('schema_version', '1'), ('policy_sha256', 'abc')`,
		`INSERT INTO data_keys(class, commune, version, wrapped, created_at) VALUES
			('identifying', 'C00001', 1, X'00010203', '` + created + `'),
			('analytic', 'C00001', 1, X'0405', '` + created + `')`,
		`INSERT INTO keys(purpose, version, wrapped, created_at, not_after) VALUES ('ingest', 1, X'07', '` + created + `', '')`,
		`INSERT INTO users(name, token_hash, created_at, expires_at, revoked_at) VALUES ('alice', 'hash-a', '` + created + `', '', '')`,
		`INSERT INTO grants(user, role, area, deny) VALUES ('alice', 'auditor', 'VN', 0)`,
	} {
		if _, err := old.Exec(q); err != nil {
			t.Fatalf("building the version 1 database: %v", err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	const openers = 2
	var wg sync.WaitGroup
	stores := make([]*sqlite.Store, openers)
	errs := make([]error, openers)
	for i := range openers {
		wg.Go(func() { stores[i], errs[i] = sqlite.Open(context.Background(), sqlite.Options{Path: path}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open #%d of a version 1 database: %v", i, err)
		}
		defer stores[i].Close()
	}
	s := stores[0]
	err = s.View(context.Background(), func(tx storage.ReadTx) error {
		if v, err := tx.Meta("schema_version"); err != nil || v != fmt.Sprint(sqlite.SchemaVersion) {
			t.Errorf("schema_version = %q, %v; want %d", v, err, sqlite.SchemaVersion)
		}
		if v, err := tx.Meta("policy_sha256"); err != nil || v != "abc" {
			t.Errorf("Meta(policy_sha256) = %q, %v; want abc", v, err)
		}
		var got []storage.DataKey
		if err := tx.DataKeys(func(k storage.DataKey) (bool, error) { got = append(got, k); return true, nil }); err != nil {
			return err
		}
		if len(got) != 2 || got[0].Class != "analytic" || !bytes.Equal(got[0].Wrapped, []byte{4, 5}) ||
			got[1].Class != "identifying" || !bytes.Equal(got[1].Wrapped, []byte{0, 1, 2, 3}) {
			t.Errorf("DataKeys after the upgrade = %+v", got)
		}
		for _, k := range got {
			if !k.ShreddedAt.IsZero() || k.CreatedAt.Format(time.RFC3339Nano) != created {
				t.Errorf("DataKey %s after the upgrade: CreatedAt %v, ShreddedAt %v; want %s and live", k.Class, k.CreatedAt, k.ShreddedAt, created)
			}
		}
		if k, err := tx.Keys("ingest"); err != nil || len(k) != 1 || !bytes.Equal(k[0].Wrapped, []byte{7}) {
			t.Errorf("Keys(ingest) after the upgrade = %+v, %v", k, err)
		}
		if u, err := tx.User("alice"); err != nil || len(u.Grants) != 1 || u.Grants[0] != (storage.Grant{Role: "auditor", Area: "VN"}) {
			t.Errorf("User(alice) after the upgrade = %+v, %v; want its one grant, for every request", u, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The new column works on upgraded rows.
	var n int
	if err := s.Update(context.Background(), func(tx storage.Tx) (err error) {
		n, err = tx.ShredDataKeys("identifying", []string{"C00001"}, time.Now())
		return err
	}); err != nil || n != 1 {
		t.Errorf("ShredDataKeys on an upgraded database = %d, %v; want 1", n, err)
	}
	for _, st := range stores {
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}

	sameSchemaAsNew(t, path)
}

// pattern is 64 bytes that occur nowhere by chance: a stand-in for a
// wrapped key whose traces Compact must remove.
func pattern(name string) []byte {
	a := sha256.Sum256([]byte("storage/sqlite test pattern " + name))
	b := sha256.Sum256(a[:])
	return append(a[:], b[:]...)
}

// filesHolding names the files of dir (the database, its write-ahead log
// and its shared-memory index, whatever else is there) that contain p.
func filesHolding(t *testing.T, dir string, p []byte) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, p); i >= 0 {
			found = append(found, fmt.Sprintf("%s at offset %d", e.Name(), i))
		}
	}
	return found
}

// TestCompactErasesOldKeyBytes: after ShredDataKeys (and RewrapDataKey,
// which replaces a wrapping) and Compact, the old wrapped bytes are in no
// file of the data directory, whether they were still in the write-ahead
// log or already in the database file; the live keys' bytes still are.
// The test first checks that the old bytes are on disk before Compact, so
// that it would notice a Compact that does nothing.
func TestCompactErasesOldKeyBytes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reopen bool // close and reopen before shredding: the keys move from the log into the file
	}{
		{"InLog", false},
		{"InFile", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := dbPath(t)
			dir := filepath.Dir(path)
			shredded, replaced, rewrapped, kept := pattern("shredded"), pattern("replaced"), pattern("rewrapped"), pattern("kept")
			s, err := sqlite.Open(ctx, sqlite.Options{Path: path, Create: true})
			if err != nil {
				t.Fatal(err)
			}
			put := func(class, commune string, wrapped []byte) func(storage.Tx) error {
				return func(tx storage.Tx) error {
					return tx.PutDataKey(&storage.DataKey{Class: class, Commune: commune, Version: 1, Wrapped: wrapped, CreatedAt: time.Now()})
				}
			}
			for _, fn := range []func(storage.Tx) error{
				put("identifying", "C1", shredded),
				put("identifying", "C2", kept),
				put("analytic", "C1", replaced),
				deposit("s1", 1),
			} {
				if err := s.Update(ctx, fn); err != nil {
					t.Fatal(err)
				}
			}
			if tc.reopen {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if s, err = sqlite.Open(ctx, sqlite.Options{Path: path}); err != nil {
					t.Fatal(err)
				}
			}
			defer s.Close()
			var n int
			if err := s.Update(ctx, func(tx storage.Tx) (err error) {
				if n, err = tx.ShredDataKeys("identifying", []string{"C1"}, time.Now()); err != nil {
					return err
				}
				return tx.RewrapDataKey("analytic", "C1", 1, rewrapped)
			}); err != nil || n != 1 {
				t.Fatalf("ShredDataKeys = %d, %v", n, err)
			}

			for name, p := range map[string][]byte{"shredded": shredded, "replaced": replaced} {
				if len(filesHolding(t, dir, p)) == 0 {
					t.Fatalf("the %s key's bytes are on no file even before Compact: this test cannot tell whether Compact works", name)
				}
			}
			if err := s.Compact(ctx); err != nil {
				t.Fatalf("Compact: %v", err)
			}
			check := func(when string) {
				for name, p := range map[string][]byte{"shredded": shredded, "replaced": replaced} {
					if f := filesHolding(t, dir, p); f != nil {
						t.Errorf("%s: the %s key's old bytes are still in %v", when, name, f)
					}
				}
				// The live keys are found: the files were read.
				for name, p := range map[string][]byte{"kept": kept, "rewrapped": rewrapped} {
					if len(filesHolding(t, dir, p)) == 0 {
						t.Errorf("%s: the %s key's bytes are in no file: the test reads the wrong files", when, name)
					}
				}
			}
			check("after Compact")
			// Compact left the store working.
			if err := s.Update(ctx, deposit("s2", 2)); err != nil {
				t.Fatalf("Update after Compact: %v", err)
			}
			if !stored(t, s, "s1") || !stored(t, s, "s2") {
				t.Error("a submission is missing after Compact")
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			check("after Close")
		})
	}
}

// TestCompactWaitsForReaders: a View reading an old snapshot holds the
// write-ahead log: Compact waits for it up to the busy timeout, then
// fails with ErrUnavailable, and succeeds once the View has ended.
func TestCompactWaitsForReaders(t *testing.T) {
	ctx := context.Background()
	s := open(t, sqlite.Options{Path: dbPath(t), Create: true, BusyTimeout: 200 * time.Millisecond})
	if err := s.Update(ctx, deposit("s1", 1)); err != nil {
		t.Fatal(err)
	}
	reading, release := make(chan struct{}), make(chan struct{})
	viewDone := make(chan error, 1)
	go func() {
		viewDone <- s.View(ctx, func(tx storage.ReadTx) error {
			_, err := tx.Submission("s1") // takes the snapshot
			close(reading)
			<-release
			return err
		})
	}()
	<-reading
	if err := s.Update(ctx, deposit("s2", 2)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := s.Compact(ctx)
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Compact while a View holds an old snapshot: err = %v, want ErrUnavailable", err)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond || waited > 5*time.Second {
		t.Errorf("Compact gave up after %v, want about the busy timeout (200ms)", waited)
	}
	close(release)
	if err := <-viewDone; err != nil {
		t.Fatalf("View: %v", err)
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatalf("Compact once the View ended: %v", err)
	}
	if !stored(t, s, "s2") {
		t.Error("s2 missing after Compact")
	}
}

// Crypto-shredding: the DEKs of one class for a commune are destroyed,
// the rows stay as tombstones, and Compact removes the old bytes from the
// database's files.
func ExampleStore_Compact() {
	dir, err := os.MkdirTemp("", "censusvault-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	s, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(dir, sqlite.FileName), Create: true})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	var n int
	err = s.Update(ctx, func(tx storage.Tx) error {
		for v := 1; v <= 2; v++ {
			if err := tx.PutDataKey(&storage.DataKey{Class: "identifying", Commune: "C00001", Version: v,
				Wrapped: []byte("wrapped DEK"), CreatedAt: time.Now()}); err != nil {
				return err
			}
		}
		var err error
		n, err = tx.ShredDataKeys("identifying", []string{"C00001"}, time.Now())
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("shredded", n)
	if err := s.Compact(ctx); err != nil {
		log.Fatal(err)
	}
	err = s.View(ctx, func(tx storage.ReadTx) error {
		k, err := tx.DataKey("identifying", "C00001", 2)
		if err != nil {
			return err
		}
		fmt.Println("tombstone:", !k.ShreddedAt.IsZero(), len(k.Wrapped))
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// shredded 2
	// tombstone: true 0
}

// BenchmarkCompact measures how long Compact holds the writer (Updates
// wait for it) on a vault of 5,000 submissions, about 12 MB.
func BenchmarkCompact(b *testing.B) {
	ctx := context.Background()
	path := dbPath(b)
	s := open(b, sqlite.Options{Path: path, Create: true})
	const subs, perUpdate = 5000, 500
	for i := 0; i < subs; i += perUpdate {
		if err := s.Update(ctx, func(tx storage.Tx) error {
			for j := i; j < i+perUpdate; j++ {
				if err := deposit(fmt.Sprint("s", j), int64(j))(tx); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if err := s.Compact(ctx); err != nil {
			b.Fatal(err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size())/1e6, "MB")
}
