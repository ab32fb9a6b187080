package postgres_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/storage/postgres"
	"github.com/censusvault/censusvault/storage/postgres/pgtest"
	"github.com/jackc/pgx/v5"
)

// conn is a second connection to dsn, behind the store's back, as an
// operator's psql would have; it is closed when the test ends.
func conn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// oldDatabase builds by hand a test database at schema version version:
// the first version migration files, schema_migrations listing them, then
// the extra statements (none when extra is empty). It returns its DSN.
func oldDatabase(t *testing.T, version int, extra string) string {
	t.Helper()
	dsn := pgtest.DSN(t)
	var script strings.Builder
	for v := 1; v <= version; v++ {
		names, err := filepath.Glob(filepath.Join("migrations", fmt.Sprintf("%04d_*.sql", v)))
		if err != nil || len(names) != 1 {
			t.Fatalf("migration file %04d_*.sql: %v, %v", v, names, err)
		}
		b, err := os.ReadFile(names[0])
		if err != nil {
			t.Fatal(err)
		}
		script.Write(b)
		script.WriteString(";\n")
	}
	script.WriteString("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);\n")
	var rows []string
	for v := 1; v <= version; v++ {
		rows = append(rows, fmt.Sprintf("(%d, 'then')", v))
	}
	script.WriteString("INSERT INTO schema_migrations VALUES " + strings.Join(rows, ", "))
	if extra != "" {
		script.WriteString(";\n" + extra)
	}
	sql(t, dsn, script.String())
	return dsn
}

// migrateFrom migrates the database at dsn, at schema version version,
// and checks that Migrate reports version and postgres.SchemaVersion and
// that schema_migrations then lists every version.
func migrateFrom(t *testing.T, dsn string, version int) {
	t.Helper()
	from, to, err := postgres.Migrate(context.Background(), dsn)
	if err != nil || from != version || to != postgres.SchemaVersion {
		t.Fatalf("Migrate of a version %d database = %d, %d, %v; want %d, %d", version, from, to, err, version, postgres.SchemaVersion)
	}
	if vs := schemaVersions(t, dsn); fmt.Sprint(vs) != fmt.Sprint(allVersions()) {
		t.Errorf("schema_migrations = %v, want %v", vs, allVersions())
	}
}

// upgradeFrom builds a database at schema version version with the extra
// statements (see oldDatabase), migrates it (see migrateFrom) and opens
// the store on it. It returns the store (closed when the test ends) and
// the DSN.
func upgradeFrom(t *testing.T, version int, extra string) (*postgres.Store, string) {
	t.Helper()
	dsn := oldDatabase(t, version, extra)
	migrateFrom(t, dsn, version)
	return open(t, postgres.Options{DSN: dsn, MaxConns: 2}), dsn
}

// guarded opens a store on a fresh test database and returns it with
// exec, which runs a statement behind the store's back on a connection
// of its own, as the guard tests need.
func guarded(t *testing.T) (*postgres.Store, func(q string) error) {
	t.Helper()
	dsn := pgtest.DSN(t)
	s := open(t, postgres.Options{DSN: dsn, MaxConns: 2})
	c := conn(t, dsn)
	return s, func(q string) error { _, err := c.Exec(context.Background(), q); return err }
}
