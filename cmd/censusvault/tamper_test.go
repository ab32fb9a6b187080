package main_test

// Tampering with the audit log by someone who can drop the database's
// append-only triggers, on SQLite and on PostgreSQL: every change is
// found, by `audit verify --data` when the store contradicts itself, and
// by an auditor's witness (a checkpoint and an export kept outside the
// vault) when it does not.

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker/testdeadline"
	"github.com/censusvault/censusvault/storage/postgres/pgtest"
	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", to tamper as an attacker would
)

// backend is a store the tamper tests run on.
type backend struct {
	name string
	// vault initializes a vault: its data directory and store flags.
	vault func(t *testing.T) (dir string, store []string)
	// clone copies a stopped vault.
	clone func(t *testing.T, dir string, store []string) (string, []string)
	// db opens the vault's database directly.
	db func(t *testing.T, dir string, store []string) *sql.DB
	// sql adapts a statement written with $N placeholders.
	sql func(string) string
	// dropTrigger drops one of the store's append-only triggers.
	dropTrigger func(name, table string) string
	// head moves the store's audit head, if it keeps one apart from
	// the events.
	head func(tx *sql.Tx, next int64, chain []byte) error
}

var sqliteBackend = backend{
	name: "sqlite",
	vault: func(t *testing.T) (string, []string) {
		return newVault(t), nil
	},
	clone: func(t *testing.T, dir string, store []string) (string, []string) {
		to := filepath.Join(t.TempDir(), "vault")
		copyDir(t, dir, to)
		return to, nil
	},
	db: func(t *testing.T, dir string, _ []string) *sql.DB {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "vault.db")+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		t.Cleanup(func() { db.Close() })
		return db
	},
	sql:         func(s string) string { return strings.ReplaceAll(s, "$", "?") },
	dropTrigger: func(name, _ string) string { return "DROP TRIGGER " + name },
	head:        func(*sql.Tx, int64, []byte) error { return nil }, // the head is the last event
}

var postgresBackend = backend{
	name: "postgres",
	vault: func(t *testing.T) (string, []string) {
		dsn, dir := pgVault(t)
		return dir, []string{"--store", dsn}
	},
	clone: func(t *testing.T, dir string, store []string) (string, []string) {
		to := filepath.Join(t.TempDir(), "vault")
		copyDir(t, dir, to) // the key-provider identities
		return to, []string{"--store", cloneDatabase(t, store[1])}
	},
	db: func(t *testing.T, _ string, store []string) *sql.DB {
		db, err := sql.Open("pgx", store[1])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	},
	sql:         func(s string) string { return s },
	dropTrigger: func(name, table string) string { return "DROP TRIGGER " + name + " ON " + table },
	head: func(tx *sql.Tx, next int64, chain []byte) error {
		_, err := tx.Exec(`UPDATE audit_head SET next = $1, chain_hash = $2 WHERE id = 1`, next, chain)
		return err
	},
}

// cloneDatabase copies a PostgreSQL database nobody is connected to
// (CREATE DATABASE … TEMPLATE) into a new one, dropped when the test
// ends, and returns the copy's DSN.
func cloneDatabase(t *testing.T, dsn string) string {
	t.Helper()
	server := os.Getenv("CENSUSVAULT_TEST_PG")
	if server == "" {
		server = pgtest.DefaultServer
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	var rb [8]byte
	rand.Read(rb[:])
	name := "cv_" + hex.EncodeToString(rb[:]) // pgtest's prefix: its tools may clean it up
	ctx, cancel := context.WithDeadline(context.Background(), testdeadline.Of(t))
	defer cancel()
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	// A server process that served the source may still be on its way
	// out for a moment after its client left.
	for attempt := 0; ; attempt++ {
		_, err = admin.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE `+pgx.Identifier{cfg.Database}.Sanitize())
		if err == nil || attempt == 50 || !strings.Contains(err.Error(), "being accessed by other users") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("failed to copy database %s: %v", cfg.Database, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithDeadline(context.Background(), testdeadline.Of(t))
		defer cancel()
		c, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("failed to drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// appendOnlyTriggers are the triggers that keep the audit tables
// append-only, on both stores.
var appendOnlyTriggers = [][2]string{
	{"audit_events_prune_only", "audit_events"},
	{"audit_events_no_delete", "audit_events"},
	{"audit_hashes_no_update", "audit_hashes"},
	{"audit_hashes_no_delete", "audit_hashes"},
	{"audit_checkpoints_no_update", "audit_checkpoints"},
	{"audit_checkpoints_no_delete", "audit_checkpoints"},
}

// tamper runs change in a transaction: first with the store's triggers in
// place, which must refuse it, then with them dropped.
func tamper(t *testing.T, b backend, db *sql.DB, change func(tx *sql.Tx) error) {
	t.Helper()
	run := func() error {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if err := change(tx); err != nil {
			tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	if err := run(); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("the store let the audit log be changed (%v)", err)
	}
	for _, tr := range appendOnlyTriggers {
		if _, err := db.Exec(b.dropTrigger(tr[0], tr[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := run(); err != nil {
		t.Fatalf("tampering: %v", err)
	}
}

type row struct {
	event, leaf, chain []byte
}

func readRow(tx *sql.Tx, b backend, idx int64) (row, error) {
	var r row
	err := tx.QueryRow(b.sql(`SELECT event, leaf_hash, chain_hash FROM audit_events WHERE idx = $1`), idx).Scan(&r.event, &r.leaf, &r.chain)
	return r, err
}

func writeRow(tx *sql.Tx, b backend, idx int64, r row) error {
	res, err := tx.Exec(b.sql(`UPDATE audit_events SET event = $1, leaf_hash = $2, chain_hash = $3 WHERE idx = $4`), r.event, r.leaf, r.chain, idx)
	if err == nil {
		if n, _ := res.RowsAffected(); n != 1 {
			err = fmt.Errorf("updated %d rows", n)
		}
	}
	return err
}

// truncate removes the events from index k on, their tree hashes and the
// checkpoints that cover them, leaving a log that is consistent in itself.
func truncate(b backend, k int64) func(tx *sql.Tx) error {
	return func(tx *sql.Tx) error {
		last, err := readRow(tx, b, k-1)
		if err != nil {
			return err
		}
		for _, s := range []struct {
			q   string
			arg int64
		}{
			{`DELETE FROM audit_events WHERE idx >= $1`, k},
			{`DELETE FROM audit_hashes WHERE idx >= $1`, audit.StoredHashIndex(k)},
			{`DELETE FROM audit_checkpoints WHERE size > $1`, k},
		} {
			if _, err := tx.Exec(b.sql(s.q), s.arg); err != nil {
				return err
			}
		}
		return b.head(tx, k, last.chain)
	}
}

func TestAuditTamperSQLite(t *testing.T) {
	t.Parallel()
	testAuditTamper(t, sqliteBackend)
}

func TestAuditTamperPostgres(t *testing.T) {
	t.Parallel()
	testAuditTamper(t, postgresBackend)
}

func testAuditTamper(t *testing.T, b backend) {
	// A vault with events and checkpoints; a witness keeps the latest
	// checkpoint and the export of its tree outside the vault.
	dir, store := b.vault(t)
	base := newCVVault(t, dir, store...)
	s := base.serve(t)
	var w int64
	for range 3 {
		rc := base.deposit(t, s, 3)
		w = rc.AuditIndex + 1
		waitCheckpoint(t, s, w)
	}
	oldCP := base.path("old.cp")
	mustCV(t, "audit", "checkpoint", "--server", s.base, "--key", base.key, "--out", oldCP)
	if got := signedSize(t, readFile(t, oldCP)); got != w {
		t.Fatalf("the witness's checkpoint has size %d, want %d", got, w)
	}
	oldExport := base.path("old.jsonl")
	mustCV(t, "audit", "export", "--server", s.base, "--token-file", base.auditor, "--size", fmt.Sprint(w), "--out", oldExport)
	mustCV(t, "audit", "verify", oldExport, "--key", base.key, "--checkpoint", oldCP)
	s.stop(t)
	k := w - 5 // a deposit, under several checkpoints

	// fork gives a case a copy of the vault, sharing the witness's files.
	fork := func(t *testing.T) *cvVault {
		c := *base
		c.dir, c.store = b.clone(t, base.dir, base.store)
		c.witness = t.TempDir()
		mustCV(t, append([]string{"audit", "verify", "--data", c.dir, "--key", c.key}, c.store...)...)
		return &c
	}
	verifyStore := func(c *cvVault, extra ...string) []string {
		return append(append([]string{"audit", "verify", "--data", c.dir}, c.store...), extra...)
	}

	// (a)–(c): the store contradicts itself, and a fresh export of the
	// witness's tree does not match the witness's checkpoint.
	for _, tc := range []struct {
		name          string
		change        func(tx *sql.Tx) error
		store, export string // the problem each verification names
	}{
		{"one byte of an event changed", func(tx *sql.Tx) error {
			r, err := readRow(tx, b, k)
			if err != nil {
				return err
			}
			i := bytes.Index(r.event, []byte(`"action":"`))
			if i < 0 {
				return errors.New("no action in the event")
			}
			r.event[i+len(`"action":"`)] ^= 1
			return writeRow(tx, b, k, r)
		}, "leaf hash mismatch", "leaf hash mismatch"},
		{"an event deleted", func(tx *sql.Tx) error {
			_, err := tx.Exec(b.sql(`DELETE FROM audit_events WHERE idx = $1`), k)
			return err
		}, "missing or out of order", "truncated"},
		{"two events swapped", func(tx *sql.Tx) error {
			r1, err := readRow(tx, b, k)
			if err != nil {
				return err
			}
			r2, err := readRow(tx, b, k+2)
			if err != nil {
				return err
			}
			if err := writeRow(tx, b, k, r2); err != nil {
				return err
			}
			return writeRow(tx, b, k+2, r1)
		}, "event moved", "event moved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fork(t)
			tamper(t, b, b.db(t, c.dir, c.store), tc.change)
			event := fmt.Sprintf("audit event %d:", k)
			wantExit(t, 1, []string{"BROKEN", event, tc.store}, verifyStore(c)...)

			s := c.serve(t)
			fresh := c.path("fresh.jsonl")
			r := cv(t, "audit", "export", "--server", s.base, "--token-file", c.auditor, "--size", fmt.Sprint(w), "--out", fresh)
			s.stop(t)
			if r.code != 0 {
				// The vault could not export its broken log whole: what
				// it sent is kept, and is the evidence.
				if !strings.Contains(r.stderr, "cut short") || !strings.Contains(r.stderr, fresh+".partial") {
					t.Fatalf("export failed without keeping what arrived:\n%s", r)
				}
				fresh += ".partial"
			}
			wantExit(t, 1, []string{"BROKEN", event, tc.export}, "audit", "verify", fresh, "--key", c.key, "--checkpoint", oldCP)
			// The witness's own export still verifies.
			mustCV(t, "audit", "verify", oldExport, "--key", c.key, "--checkpoint", oldCP)
		})
	}

	// (d) The tail cut off, with its tree hashes and checkpoints: the
	// store is consistent in itself, so only the witness can tell.
	t.Run("the tail truncated", func(t *testing.T) {
		c := fork(t)
		tamper(t, b, b.db(t, c.dir, c.store), truncate(b, k))
		mustCV(t, verifyStore(c, "--key", c.key)...)

		s := c.serve(t)
		waitCheckpoint(t, s, k)
		wantExit(t, 1, []string{"ROLLBACK", "not saved"}, "audit", "checkpoint", "--server", s.base, "--key", c.key, "--previous", oldCP, "--out", c.path("refused.cp"))
		if _, err := os.Stat(c.path("refused.cp")); err == nil {
			t.Error("a rolled-back checkpoint was saved")
		}
		newCP, newExport := c.path("new.cp"), c.path("new.jsonl")
		mustCV(t, "audit", "checkpoint", "--server", s.base, "--key", c.key, "--out", newCP)
		mustCV(t, "audit", "export", "--server", s.base, "--token-file", c.auditor, "--size", fmt.Sprint(k), "--out", newExport)
		s.stop(t)
		// On its own the new export is fine; against the witness it is a
		// rollback.
		mustCV(t, "audit", "verify", newExport, "--key", c.key, "--checkpoint", newCP)
		wantExit(t, 1, []string{"BROKEN", fmt.Sprintf("audit event %d:", k), "shorter than a checkpoint seen before", "rolled back"},
			"audit", "verify", newExport, "--key", c.key, "--checkpoint", newCP, "--previous", oldCP)
	})

	// (e) The log rewritten from index k on and its checkpoints signed
	// again with the vault's own key, as its operator can: the store and
	// the new export are consistent, only the witness shows the fork.
	t.Run("the log rewritten and signed again", func(t *testing.T) {
		c := fork(t)
		tamper(t, b, b.db(t, c.dir, c.store), truncate(b, k))
		s := c.serve(t)
		rc := c.deposit(t, s, int(w-k)+2) // other events, past the witness's size
		size := rc.AuditIndex + 1
		if size <= w {
			t.Fatalf("the rewritten log has %d events, not more than the witness's %d", size, w)
		}
		waitCheckpoint(t, s, size)
		wantExit(t, 1, []string{"FORK", "not saved"}, "audit", "checkpoint", "--server", s.base, "--key", c.key, "--previous", oldCP, "--out", c.path("refused.cp"))
		newCP, newExport := c.path("new.cp"), c.path("new.jsonl")
		mustCV(t, "audit", "checkpoint", "--server", s.base, "--key", c.key, "--out", newCP)
		mustCV(t, "audit", "export", "--server", s.base, "--token-file", c.auditor, "--size", fmt.Sprint(size), "--out", newExport)
		s.stop(t)
		mustCV(t, verifyStore(c, "--key", c.key)...)
		mustCV(t, "audit", "verify", newExport, "--key", c.key, "--checkpoint", newCP)
		wantExit(t, 1, []string{"BROKEN", fmt.Sprintf("audit event %d:", w-1), "fork"},
			"audit", "verify", newExport, "--key", c.key, "--checkpoint", newCP, "--previous", oldCP)
	})
}
