package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/sqlite"
)

// oldDatabase builds by hand, at path, a database at schema version
// version: the first version migrations, schema_version set to it, then
// the extra statements. It returns the connection still open, for rows
// that are not SQL literals; the caller closes it before opening the
// store.
func oldDatabase(t *testing.T, path string, version int, extra ...string) *sql.DB {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	old, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	var stmts []string
	for _, m := range sqlite.Migrations()[:version] {
		stmts = append(stmts, strings.Split(m, ";\n")...)
	}
	stmts = append(stmts, fmt.Sprintf(`INSERT INTO meta(key, value) VALUES ('schema_version', '%d')`, version))
	stmts = append(stmts, extra...)
	for _, q := range stmts {
		if strings.TrimSpace(q) == "" {
			continue
		}
		if _, err := old.Exec(q); err != nil {
			t.Fatalf("building the version %d database: %v", version, err)
		}
	}
	return old
}

// upgradeFrom builds a database at schema version version with the extra
// statements (see oldDatabase), opens it with the store, which upgrades
// it, and checks that its schema_version then reads sqlite.SchemaVersion.
// It returns the store (closed when the test ends) and the database's
// path.
func upgradeFrom(t *testing.T, version int, extra ...string) (*sqlite.Store, string) {
	t.Helper()
	path := dbPath(t)
	if err := oldDatabase(t, path, version, extra...).Close(); err != nil {
		t.Fatal(err)
	}
	s := open(t, sqlite.Options{Path: path})
	checkSchemaVersion(t, s)
	return s, path
}

// checkSchemaVersion checks that s's schema_version reads
// sqlite.SchemaVersion.
func checkSchemaVersion(t *testing.T, s *sqlite.Store) {
	t.Helper()
	if err := s.View(context.Background(), func(tx storage.ReadTx) error {
		if v, err := tx.Meta("schema_version"); err != nil || v != fmt.Sprint(sqlite.SchemaVersion) {
			t.Errorf("schema_version = %q, %v; want %d", v, err, sqlite.SchemaVersion)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// guarded opens a store on a new database and returns it with exec,
// which runs a statement behind the store's back on a peer connection,
// as the guard tests need.
func guarded(t *testing.T) (*sqlite.Store, func(q string) error) {
	t.Helper()
	path := dbPath(t)
	s := open(t, sqlite.Options{Path: path, Create: true})
	db := peer(t, path)
	return s, func(q string) error { _, err := db.Exec(q); return err }
}
