// Package pgtest gives tests a database of their own on the PostgreSQL
// server the test run points at.
//
// Every test gets a fresh database, not a schema: NOTIFY channels and
// advisory locks are database-wide, so tests sharing a database would see
// each other's. The server comes from CENSUSVAULT_TEST_PG (default
// postgres://postgres@127.0.0.1:5432/test, trust auth). When it cannot be
// reached a test is skipped, except under CI=true, where it fails: CI must
// not pass by testing nothing.
//
// Tests cut connections with TerminateConnections; they never stop the
// server, which other packages' tests share.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultServer is the server used when CENSUSVAULT_TEST_PG is unset.
const DefaultServer = "postgres://postgres@127.0.0.1:5432/test"

// prefix starts the name of every database DSN makes.
const prefix = "cv_"

// server is the DSN of the database tests connect to for administration.
func server() string {
	if s := os.Getenv("CENSUSVAULT_TEST_PG"); s != "" {
		return s
	}
	return DefaultServer
}

// admin connects to the administration database, or skips (fails on CI)
// the test when the server is unreachable.
func admin(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, server())
	if err != nil {
		msg := fmt.Sprintf("pgtest: PostgreSQL unreachable (set CENSUSVAULT_TEST_PG to a server where tests may create databases): %v", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return c
}

// DSN returns the DSN of a fresh, empty database made for this test
// (CREATE DATABASE cv_<random>) and dropped, with any connections left to
// it, when the test ends.
func DSN(t testing.TB) string {
	t.Helper()
	var b [8]byte
	rand.Read(b[:])
	name := prefix + hex.EncodeToString(b[:])
	c := admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer c.Close(ctx)
	// template0: no session is ever connected to it, so concurrent test
	// runs never find the template "being accessed by other users".
	if _, err := c.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE template0 ENCODING 'UTF8'`); err != nil {
		t.Fatalf("pgtest: failed to create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		c := admin(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: failed to drop database %s: %v", name, err)
		}
	})
	return withDatabase(t, server(), name)
}

// withDatabase is dsn pointing at database name instead.
func withDatabase(t testing.TB, dsn, name string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("pgtest: CENSUSVAULT_TEST_PG is not a valid URL")
		}
		u.Path = "/" + name
		return u.String()
	}
	// keyword=value: a later keyword overrides an earlier one.
	return dsn + " dbname=" + name
}

// TerminateConnections ends every connection to the database of dsn
// except the caller's own (pg_terminate_backend), as a crash of the
// network or a failover would, and reports how many it ended. It waits
// (up to 5 s each) until those server processes have exited, so a client
// that uses its connection afterwards finds it gone. It never stops the
// server.
func TerminateConnections(t testing.TB, dsn string) int {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("pgtest: bad DSN: %v", err)
	}
	if !strings.HasPrefix(cfg.Database, prefix) {
		// Only databases DSN made: never another test run's or a
		// developer's.
		t.Fatalf("pgtest: refusing to cut connections to %q, which pgtest did not create", cfg.Database)
	}
	c := admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, `SELECT count(*) FILTER (WHERE ended) FROM (
			SELECT pg_terminate_backend(pid, 5000) AS ended FROM pg_stat_activity
			WHERE datname = $1 AND pid <> pg_backend_pid()
		) AS t`, cfg.Database).Scan(&n); err != nil {
		t.Fatalf("pgtest: failed to terminate connections: %v", err)
	}
	return n
}
