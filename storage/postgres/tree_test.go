package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/postgres"
	"github.com/censusvault/censusvault/storage/postgres/pgtest"
	"github.com/censusvault/censusvault/storage/storagetest"
	"github.com/jackc/pgx/v5"
)

// guardTriggers are the triggers of migration 5 that keep the audit
// tables append-only, with their tables.
var guardTriggers = [][2]string{
	{"audit_events_prune_only", "audit_events"}, {"audit_events_no_delete", "audit_events"},
	{"audit_events_no_truncate", "audit_events"},
	{"audit_hashes_no_update", "audit_hashes"}, {"audit_hashes_no_delete", "audit_hashes"},
	{"audit_hashes_no_truncate", "audit_hashes"},
	{"audit_checkpoints_no_update", "audit_checkpoints"}, {"audit_checkpoints_no_delete", "audit_checkpoints"},
	{"audit_checkpoints_no_truncate", "audit_checkpoints"},
}

// TestAuditGuards: the database refuses changes to the audit tables made
// behind the store's back, TRUNCATE (which fires no delete trigger) and
// an upsert's UPDATE included, until an operator drops the triggers.
func TestAuditGuards(t *testing.T) {
	s, exec := guarded(t)
	var drop []string
	for _, g := range guardTriggers {
		drop = append(drop, fmt.Sprintf("DROP TRIGGER %s ON %s", g[0], g[1]))
	}
	storagetest.RunAuditGuards(t, s, storagetest.Raw{
		Exec: exec,
		Refused: []string{
			`INSERT INTO audit_events(idx, event, leaf_hash, chain_hash)
				SELECT idx, event, chain_hash, leaf_hash FROM audit_events WHERE idx = 2
				ON CONFLICT (idx) DO UPDATE SET leaf_hash = EXCLUDED.leaf_hash`,
			// A pruned event is NULL, not another value.
			`UPDATE audit_events SET event = ''::bytea WHERE idx = 0`,
			`TRUNCATE audit_checkpoints`,
			`TRUNCATE audit_hashes`,
			`TRUNCATE audit_events`,
		},
		DropGuards: drop,
	})
}

// TestUpgradeFromV4: a database at schema version 4 with an audit log
// migrates to version 5 with its records intact and unpruned and no tree
// hashes; the hashes can then be backfilled, new records carry theirs,
// old records can be pruned (event no longer NOT NULL), and the guards
// hold.
func TestUpgradeFromV4(t *testing.T) {
	ctx := context.Background()
	dsn := oldDatabase(t, 4, "")
	// Three records chained as the broker does, and the head after them.
	var prev [32]byte
	var want []storage.AuditRecord
	for i := range 3 {
		ev := fmt.Appendf(nil, `{"index":%d}`, i)
		leaf := sha256.Sum256(append([]byte{0}, ev...))
		r := storage.AuditRecord{Index: int64(i), Event: ev, LeafHash: leaf, ChainHash: sha256.Sum256(append(prev[:], leaf[:]...))}
		sql(t, dsn, `INSERT INTO audit_events(idx, event, leaf_hash, chain_hash) VALUES ($1, $2, $3, $4)`,
			r.Index, r.Event, r.LeafHash[:], r.ChainHash[:])
		want = append(want, r)
		prev = r.ChainHash
	}
	sql(t, dsn, `UPDATE audit_head SET next = 3, chain_hash = $1 WHERE id = 1`, prev[:])

	migrateFrom(t, dsn, 4)

	s := open(t, postgres.Options{DSN: dsn, MaxConns: 2})
	// auditLog of this package checks a chain of its own kind: read as is.
	readLog := func() []storage.AuditRecord {
		t.Helper()
		var recs []storage.AuditRecord
		if err := s.View(ctx, func(tx storage.ReadTx) error {
			return tx.AuditRecords(0, 0, func(r storage.AuditRecord) (bool, error) { recs = append(recs, r); return true, nil })
		}); err != nil {
			t.Fatal(err)
		}
		return recs
	}
	got := readLog()
	if len(got) != len(want) {
		t.Fatalf("%d records after the upgrade, want %d", len(got), len(want))
	}
	for i, r := range got {
		w := want[i]
		if r.Index != w.Index || string(r.Event) != string(w.Event) || r.LeafHash != w.LeafHash || r.ChainHash != w.ChainHash || r.Pruned {
			t.Errorf("record %d after the upgrade = %+v, want %+v", i, r, w)
		}
	}
	err := s.View(ctx, func(tx storage.ReadTx) error {
		if n, err := tx.AuditHashCount(); err != nil || n != 0 {
			t.Errorf("AuditHashCount after the upgrade = %d, %v; want 0", n, err)
		}
		if _, err := tx.LatestCheckpoint(); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("LatestCheckpoint after the upgrade: err = %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	hash := func(i int64) [32]byte { return sha256.Sum256(fmt.Appendf(nil, "h%d", i)) }
	err = s.Update(ctx, func(tx storage.Tx) error {
		if err := tx.PutAuditHashes(0, [][32]byte{hash(0), hash(1), hash(2), hash(3)}); err != nil {
			return err
		}
		if _, err := tx.AppendAudit(func(h storage.AuditHead) (storage.AuditRecord, error) {
			if h.Next != 3 || h.ChainHash != prev {
				return storage.AuditRecord{}, fmt.Errorf("head after the upgrade = %+v", h)
			}
			leaf := sha256.Sum256([]byte("\x00new"))
			return storage.AuditRecord{Index: 3, Event: []byte("new"), LeafHash: leaf, ChainHash: sha256.Sum256(append(prev[:], leaf[:]...)),
				HashIndex: 4, Hashes: [][32]byte{hash(4), hash(5), hash(6)}}, nil
		}); err != nil {
			return err
		}
		if err := tx.PutCheckpoint(4, []byte("signed note"), time.Now()); err != nil {
			return err
		}
		n, err := tx.PruneAuditEvents(3)
		if err == nil && n != 3 {
			err = fmt.Errorf("PruneAuditEvents(3) = %d, want 3", n)
		}
		return err
	})
	if err != nil {
		t.Fatalf("using the upgraded database: %v", err)
	}
	got = readLog()
	if len(got) != 4 || !got[0].Pruned || got[0].Event != nil || !got[2].Pruned || got[3].Pruned || string(got[3].Event) != "new" || got[2].ChainHash != prev {
		t.Errorf("log after backfill, append and prune = %+v", got)
	}
	err = s.View(ctx, func(tx storage.ReadTx) error {
		hs, err := tx.AuditHashes([]int64{6, 0, 3})
		if err != nil || hs[0] != hash(6) || hs[1] != hash(0) || hs[2] != hash(3) {
			t.Errorf("AuditHashes after backfill and append: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c := conn(t, dsn)
	if _, err := c.Exec(ctx, `DELETE FROM audit_events WHERE idx = 3`); err == nil {
		t.Error("the upgraded database let a record be deleted")
	}
}

// TestAuditHashesPlan: on a table of many hashes, AuditHashes is one
// statement whose every index is a seek of the primary key, not a scan.
func TestAuditHashesPlan(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	if _, _, err := postgres.Migrate(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	sql(t, dsn, `INSERT INTO audit_hashes(idx, hash) SELECT i, sha256(int8send(i)) FROM generate_series(0, 49999) i;
		ANALYZE audit_hashes`)
	c := conn(t, dsn)
	ask := make([]int64, 40)
	for i := range ask {
		ask[i] = int64(i * 1237)
	}
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		if _, err := c.Exec(ctx, `SET plan_cache_mode = `+mode); err != nil {
			t.Fatal(err)
		}
		rows, err := c.Query(ctx, `EXPLAIN `+postgres.AuditHashesQuery, ask)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		if !strings.Contains(plan, "Index Scan using audit_hashes_pkey on audit_hashes") || strings.Contains(plan, "Seq Scan") {
			t.Errorf("plan of AuditHashes with %s:\n%s\nwant a primary key seek per index", mode, plan)
		}
	}
}
