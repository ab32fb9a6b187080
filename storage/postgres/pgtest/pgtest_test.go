package pgtest_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/storage/postgres/pgtest"
	"github.com/jackc/pgx/v5"
)

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestDSN: each call makes its own empty database, gone after the test.
func TestDSN(t *testing.T) {
	var names []string
	outer := t
	t.Run("inner", func(t *testing.T) {
		for range 2 {
			dsn := pgtest.DSN(t)
			c := connect(outer, dsn) // still open when the database is dropped
			var name string
			var tables int
			if err := c.QueryRow(context.Background(), `SELECT current_database(),
				(SELECT count(*) FROM pg_tables WHERE schemaname = 'public')`).Scan(&name, &tables); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(name, "cv_") || tables != 0 {
				t.Errorf("database %q with %d tables, want a fresh cv_ one", name, tables)
			}
			if _, err := c.Exec(context.Background(), `CREATE TABLE t (x int)`); err != nil {
				t.Fatal(err)
			}
			names = append(names, name)
		}
	})
	if len(names) != 2 || names[0] == names[1] {
		t.Fatalf("databases %v, want two distinct ones", names)
	}
	admin := connect(t, serverDSN())
	var left int
	if err := admin.QueryRow(context.Background(), `SELECT count(*) FROM pg_database WHERE datname = ANY($1)`, names).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d of the test's databases are left after it ended", left)
	}
}

func serverDSN() string {
	// The same server pgtest uses; DSN has made sure it is reachable.
	if s := strings.TrimSpace(os.Getenv("CENSUSVAULT_TEST_PG")); s != "" {
		return s
	}
	return pgtest.DefaultServer
}

func TestTerminateConnections(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := connect(t, dsn), connect(t, dsn)
	if n := pgtest.TerminateConnections(t, dsn); n != 2 {
		t.Errorf("TerminateConnections = %d, want 2", n)
	}
	for _, c := range []*pgx.Conn{a, b} {
		if _, err := c.Exec(context.Background(), `SELECT 1`); err == nil {
			t.Error("a terminated connection still works")
		}
	}
	if n := pgtest.TerminateConnections(t, dsn); n != 0 {
		t.Errorf("TerminateConnections with none open = %d, want 0", n)
	}
	c := connect(t, dsn)
	if _, err := c.Exec(context.Background(), `SELECT 1`); err != nil {
		t.Errorf("a new connection after TerminateConnections: %v", err)
	}
}
