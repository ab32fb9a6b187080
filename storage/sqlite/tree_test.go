package sqlite_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/sqlite"
	"github.com/censusvault/censusvault/storage/storagetest"
)

// guardTriggers are the triggers of schema version 5 that keep the audit
// tables append-only.
var guardTriggers = []string{
	"audit_events_no_replace", "audit_events_prune_only", "audit_events_no_delete",
	"audit_hashes_no_replace", "audit_hashes_no_update", "audit_hashes_no_delete",
	"audit_checkpoints_no_replace", "audit_checkpoints_no_update", "audit_checkpoints_no_delete",
}

// TestAuditGuards: the database refuses changes to the audit tables made
// behind the store's back, INSERT OR REPLACE (a delete that fires no
// delete trigger) included, until an operator drops the triggers.
func TestAuditGuards(t *testing.T) {
	s, exec := guarded(t)
	var drop []string
	for _, name := range guardTriggers {
		drop = append(drop, "DROP TRIGGER "+name)
	}
	storagetest.RunAuditGuards(t, s, storagetest.Raw{
		Exec: exec,
		Refused: []string{
			`INSERT OR REPLACE INTO audit_events(idx, event, leaf_hash, chain_hash)
				SELECT idx, event, chain_hash, leaf_hash FROM audit_events WHERE idx = 2`,
			`REPLACE INTO audit_hashes(idx, hash) SELECT 2, hash FROM audit_hashes WHERE idx = 3`,
			`INSERT OR REPLACE INTO audit_checkpoints(size, note, created_at) VALUES (6, X'00', '')`,
			// A pruned event is empty, not another value.
			`UPDATE audit_events SET event = X'00' WHERE idx = 0`,
		},
		DropGuards: drop,
	})
}

// TestUpgradeFromV4: a database at schema version 4 with an audit log
// opens at version 5 with its records intact and unpruned and no tree
// hashes; the hashes can then be backfilled, new records carry theirs,
// old records can be pruned, and the guards hold. The schema is that of
// a database made new.
func TestUpgradeFromV4(t *testing.T) {
	path := dbPath(t)
	old := oldDatabase(t, path, 4)
	// Three records chained as the broker does.
	var prev [32]byte
	var want []storage.AuditRecord
	for i := range 3 {
		ev := fmt.Appendf(nil, `{"index":%d}`, i)
		leaf := sha256.Sum256(append([]byte{0}, ev...))
		r := storage.AuditRecord{Index: int64(i), Event: ev, LeafHash: leaf, ChainHash: sha256.Sum256(append(prev[:], leaf[:]...))}
		if _, err := old.Exec(`INSERT INTO audit_events(idx, event, leaf_hash, chain_hash) VALUES (?, ?, ?, ?)`,
			r.Index, r.Event, r.LeafHash[:], r.ChainHash[:]); err != nil {
			t.Fatal(err)
		}
		want = append(want, r)
		prev = r.ChainHash
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	s := open(t, sqlite.Options{Path: path})
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
		if v, err := tx.Meta("schema_version"); err != nil || v != fmt.Sprint(sqlite.SchemaVersion) {
			t.Errorf("schema_version = %q, %v; want %d", v, err, sqlite.SchemaVersion)
		}
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

	// Backfill (3 leaves store 4 hashes), append with hashes, checkpoint,
	// prune the old records.
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
	if len(got) != 4 || !got[0].Pruned || !got[2].Pruned || got[3].Pruned || string(got[3].Event) != "new" || got[2].ChainHash != prev {
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
	if _, err := peer(t, path).Exec(`DELETE FROM audit_events WHERE idx = 3`); err == nil {
		t.Error("the upgraded database let a record be deleted")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	sameSchemaAsNew(t, path)
}

// TestAuditHashesPlan: AuditHashes is one statement whose every index is
// a seek of the primary key, not a scan of the hashes.
func TestAuditHashesPlan(t *testing.T) {
	path := dbPath(t)
	open(t, sqlite.Options{Path: path, Create: true}).Close()
	text := queryPlan(t, peer(t, path), sqlite.AuditHashesQuery, "[1,5,9]")
	if !strings.Contains(text, "SEARCH audit_hashes USING INTEGER PRIMARY KEY (rowid=?)") || strings.Contains(text, "SCAN audit_hashes") {
		t.Errorf("plan of AuditHashes:\n%s\nwant a primary key seek per index", text)
	}
}
