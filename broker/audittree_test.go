package broker_test

// The verifiable audit log through the broker: every event is a leaf of
// the log's Merkle tree, logs from before the tree are backfilled,
// checkpoints are signed (on demand and by Run), and proofs, exports,
// pruning, verification and search all hold up — and VerifyAudit names
// the event where someone with the database file changed the log. The
// PostgreSQL variants are in audittree_pg_test.go.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/sqlite"
	"github.com/google/uuid"
)

// ---- helpers shared with audittree_pg_test.go

// auditVault is a key-test vault with auditors: "aud" over the nation,
// "aud-a" over commune A only, and a second enumerator.
type auditVault struct {
	*keyVault
	aud, audA, enum2 *broker.Caller
}

func newAuditVault(t testing.TB) *auditVault {
	t.Helper()
	kv := newKeyVault(t, keyVaultOpts{})
	for _, u := range []broker.NewUser{
		{Name: "aud", Role: policy.Auditor, Area: keyNation},
		{Name: "aud-a", Role: policy.Auditor, Area: communeA},
		{Name: "enum2", Role: policy.Enumerator, Area: keyDistrict},
	} {
		tok, err := kv.b.AddUser(context.Background(), actor, u)
		if err != nil {
			t.Fatal(err)
		}
		kv.tokens[string(u.Name)] = tok.Reveal()
	}
	return &auditVault{keyVault: kv, aud: kv.caller("aud"), audA: kv.caller("aud-a"), enum2: kv.caller("enum2")}
}

// auditRecords is every stored audit record, in index order.
func auditRecords(t testing.TB, s storage.Store) []storage.AuditRecord {
	t.Helper()
	var out []storage.AuditRecord
	if err := s.View(context.Background(), func(tx storage.ReadTx) error {
		out = out[:0]
		return tx.AuditRecords(0, 0, func(r storage.AuditRecord) (bool, error) {
			r.Event = bytes.Clone(r.Event)
			out = append(out, r)
			return true, nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	for i, r := range out {
		if r.Index != int64(i) {
			t.Fatalf("stored audit record %d has index %d", i, r.Index)
		}
	}
	return out
}

func auditHeadOf(t testing.TB, s storage.Store) int64 {
	t.Helper()
	var h storage.AuditHead
	if err := s.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		h, err = tx.AuditHead()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return h.Next
}

func hashCount(t testing.TB, s storage.Store) int64 {
	t.Helper()
	var n int64
	if err := s.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		n, err = tx.AuditHashCount()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// storedHash reads the stored tree hash at stored-hash index i.
func storedHash(t testing.TB, s storage.Store, i int64) [32]byte {
	t.Helper()
	var h [][32]byte
	if err := s.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		h, err = tx.AuditHashes([]int64{i})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return h[0]
}

// storedRoot is the root of the tree of the first size events, from the
// stored tree hashes.
func storedRoot(t testing.TB, s storage.Store, size int64) [32]byte {
	t.Helper()
	var root [32]byte
	if err := s.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		root, err = audit.TreeRoot(size, audit.HashReaderFunc(tx.AuditHashes))
		return err
	}); err != nil {
		t.Fatalf("TreeRoot(%d) from the stored hashes: %v", size, err)
	}
	return root
}

// leafRoot is the root of the first size leaves, computed from the leaf
// hashes alone.
func leafRoot(recs []storage.AuditRecord, size int64) [32]byte {
	var tb audit.TreeBuilder
	for _, r := range recs[:size] {
		tb.Add(r.LeafHash)
	}
	return tb.Root()
}

// checkpointSizes lists the stored checkpoints' sizes, smallest first.
func checkpointSizes(t testing.TB, s storage.Store) []int64 {
	t.Helper()
	var out []int64
	if err := s.View(context.Background(), func(tx storage.ReadTx) error {
		out = out[:0]
		for at := int64(-1); ; {
			c, err := tx.CheckpointCovering(at)
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			out = append(out, c.Size)
			at = c.Size
		}
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func decodeRecord(t testing.TB, r storage.AuditRecord) *audit.Event {
	t.Helper()
	e, err := audit.Decode(r.Event)
	if err != nil {
		t.Fatalf("audit event %d: %v", r.Index, err)
	}
	return e
}

// eventsFrom decodes the unpruned events from index from on.
func eventsFrom(t testing.TB, s storage.Store, from int64) []*audit.Event {
	t.Helper()
	var out []*audit.Event
	for _, r := range auditRecords(t, s)[from:] {
		if !r.Pruned {
			out = append(out, decodeRecord(t, r))
		}
	}
	return out
}

// findEvent is the first event from index from on with this action and
// actor ("" matches any actor), or nil.
func findEvent(t testing.TB, s storage.Store, from int64, action, actor string) *audit.Event {
	t.Helper()
	for _, e := range eventsFrom(t, s, from) {
		if e.Action == action && (actor == "" || e.Actor == actor) {
			return e
		}
	}
	return nil
}

// origin is the name of a note verifier key, which is the log's origin.
func origin(verifierKey string) string {
	name, _, _ := strings.Cut(verifierKey, "+")
	return name
}

func wantKind(t testing.TB, err error, k broker.Kind, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %v", what, k)
	}
	if broker.KindOf(err) != k {
		t.Fatalf("%s: %v (kind %v), want kind %v", what, err, broker.KindOf(err), k)
	}
}

// wantVerifyError checks that err is an *audit.VerifyError at index.
func wantVerifyError(t testing.TB, err error, index int64, what string) {
	t.Helper()
	var ve *audit.VerifyError
	if !errors.As(err, &ve) {
		t.Errorf("%s: VerifyAudit = %v, want an *audit.VerifyError at event %d", what, err, index)
		return
	}
	if ve.Index != index {
		t.Errorf("%s: VerifyAudit names event %d (%v), want event %d", what, ve.Index, ve, index)
	}
}

// legacyEvent is a filler event of the kind appendRaw writes.
func legacyEvent(i int64) *audit.Event {
	return &audit.Event{
		Time:  time.Date(2019, 4, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second),
		Actor: "cli:legacy", Roles: []string{}, Action: "legacy.test", Area: keyNation,
		Resources: []string{}, Decision: "allow", Rule: "test", Outcome: "ok",
	}
}

// appendRaw appends n events made by mk straight to the store, as an
// old binary did (tree false: no tree hashes, as before schema 5) or as
// the broker does (tree true: with the tree hashes each leaf adds).
func appendRaw(t testing.TB, s storage.Store, n int, tree bool, mk func(i int64) *audit.Event) {
	t.Helper()
	if err := appendRawErr(s, n, tree, mk); err != nil {
		t.Fatalf("appending %d raw audit events: %v", n, err)
	}
}

func appendRawErr(s storage.Store, n int, tree bool, mk func(i int64) *audit.Event) error {
	// Hashes this call stored are read from memory, others from the store.
	mine := map[int64][32]byte{}
	for done := 0; done < n; {
		k := min(n-done, 4000)
		err := s.Update(context.Background(), func(tx storage.Tx) error {
			reader := audit.HashReaderFunc(func(indexes []int64) ([][32]byte, error) {
				out := make([][32]byte, len(indexes))
				for i, x := range indexes {
					h, ok := mine[x]
					if !ok {
						got, err := tx.AuditHashes([]int64{x})
						if err != nil {
							return nil, err
						}
						h = got[0]
					}
					out[i] = h
				}
				return out, nil
			})
			for range k {
				rec, err := tx.AppendAudit(func(h storage.AuditHead) (storage.AuditRecord, error) {
					ev := mk(h.Next)
					ev.Index = h.Next
					r, err := audit.Seal(h.ChainHash, ev)
					if err != nil {
						return storage.AuditRecord{}, err
					}
					rec := storage.AuditRecord{Index: r.Index, Event: r.Event, LeafHash: r.LeafHash, ChainHash: r.ChainHash}
					if tree {
						if rec.Hashes, err = audit.StoredHashes(r.Index, r.LeafHash, reader); err != nil {
							return storage.AuditRecord{}, err
						}
						rec.HashIndex = audit.StoredHashIndex(r.Index)
					}
					return rec, nil
				})
				if err != nil {
					return err
				}
				for j, h := range rec.Hashes {
					mine[rec.HashIndex+int64(j)] = h
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		done += k
	}
	return nil
}

// bulkSQLite appends n legacy events with their tree hashes to a SQLite
// vault through its database file, many rows a statement: what
// appendRaw does, fast enough for a log of MaxAuditScan events.
func bulkSQLite(t testing.TB, s storage.Store, db *sql.DB, n int) {
	t.Helper()
	var head storage.AuditHead
	mine := map[int64][32]byte{}
	if err := s.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		if head, err = tx.AuditHead(); err != nil {
			return err
		}
		count, err := tx.AuditHashCount()
		if err != nil {
			return err
		}
		idx := make([]int64, count)
		for i := range idx {
			idx[i] = int64(i)
		}
		hs, err := tx.AuditHashes(idx)
		for i, h := range hs {
			mine[int64(i)] = h
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	reader := audit.HashReaderFunc(func(indexes []int64) ([][32]byte, error) {
		out := make([][32]byte, len(indexes))
		for i, x := range indexes {
			out[i] = mine[x]
		}
		return out, nil
	})
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	const rows = 200
	var evArgs, hArgs []any
	flush := func() {
		if len(evArgs) > 0 {
			if _, err := tx.Exec(`INSERT INTO audit_events(idx, event, leaf_hash, chain_hash) VALUES (?, ?, ?, ?)`+strings.Repeat(", (?, ?, ?, ?)", len(evArgs)/4-1), evArgs...); err != nil {
				t.Fatal(err)
			}
		}
		for len(hArgs) > 0 {
			k := min(len(hArgs), 2*rows)
			if _, err := tx.Exec(`INSERT INTO audit_hashes(idx, hash) VALUES (?, ?)`+strings.Repeat(", (?, ?)", k/2-1), hArgs[:k]...); err != nil {
				t.Fatal(err)
			}
			hArgs = hArgs[k:]
		}
		evArgs, hArgs = evArgs[:0], hArgs[:0]
	}
	for range n {
		ev := legacyEvent(head.Next)
		ev.Index = head.Next
		r, err := audit.Seal(head.ChainHash, ev)
		if err != nil {
			t.Fatal(err)
		}
		hs, err := audit.StoredHashes(r.Index, r.LeafHash, reader)
		if err != nil {
			t.Fatal(err)
		}
		at := audit.StoredHashIndex(r.Index)
		for j, h := range hs {
			mine[at+int64(j)] = h
			hArgs = append(hArgs, at+int64(j), h[:])
		}
		evArgs = append(evArgs, r.Index, r.Event, r.LeafHash[:], r.ChainHash[:])
		head = storage.AuditHead{Next: r.Index + 1, ChainHash: r.ChainHash}
		if len(evArgs) == 4*rows {
			flush()
		}
	}
	flush()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// rawSQLite opens the vault's database file directly, as an operator
// with access to the data directory can.
func rawSQLite(t testing.TB, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// sqliteAuditGuards are the triggers of storage/sqlite's schema 5 that
// keep the audit tables append-only.
var sqliteAuditGuards = []string{
	"audit_events_no_replace", "audit_events_prune_only", "audit_events_no_delete",
	"audit_hashes_no_replace", "audit_hashes_no_update", "audit_hashes_no_delete",
	"audit_checkpoints_no_replace", "audit_checkpoints_no_update", "audit_checkpoints_no_delete",
}

func dropSQLiteGuards(t testing.TB, db *sql.DB) {
	t.Helper()
	for _, g := range sqliteAuditGuards {
		if _, err := db.Exec("DROP TRIGGER " + g); err != nil {
			t.Fatalf("DROP TRIGGER %s: %v", g, err)
		}
	}
}

// auditSigner loads the vault's own audit key, as someone holding the
// key provider could, to forge checkpoints with it.
func auditSigner(t testing.TB, s storage.Store, keys crypto.KeyProvider) *crypto.Signer {
	t.Helper()
	var ks []storage.Key
	if err := s.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		ks, err = tx.Keys("audit-signer")
		return err
	}); err != nil || len(ks) == 0 {
		t.Fatalf("audit key: %v (%d stored)", err, len(ks))
	}
	sg, err := crypto.LoadSigner(context.Background(), keys, ks[0].Wrapped)
	if err != nil {
		t.Fatal(err)
	}
	return sg
}

// otherSigner is a signer of another key under the same name.
func otherSigner(t testing.TB, name string) *crypto.Signer {
	t.Helper()
	kp, err := agekey.Create(filepath.Join(t.TempDir(), agekey.FileName))
	if err != nil {
		t.Fatal(err)
	}
	sg, _, err := crypto.GenerateSigner(context.Background(), kp, name)
	if err != nil {
		t.Fatal(err)
	}
	return sg
}

func signCheckpoint(t testing.TB, sg *crypto.Signer, size int64, root [32]byte) []byte {
	t.Helper()
	note, err := sg.Sign(audit.Checkpoint{Origin: sg.Name(), Size: size, Root: root}.Body())
	if err != nil {
		t.Fatal(err)
	}
	return note
}

// openCheckpoint opens a checkpoint with the broker's verifier key and
// checks that its origin is the key's name.
func openCheckpoint(t testing.TB, b *broker.Broker, note []byte) audit.Checkpoint {
	t.Helper()
	c, err := audit.OpenCheckpoint(note, b.AuditVerifierKey())
	if err != nil {
		t.Fatalf("OpenCheckpoint with the vault's verifier key: %v", err)
	}
	if c.Origin != origin(b.AuditVerifierKey()) {
		t.Fatalf("checkpoint origin %q, want the audit key's name %q", c.Origin, origin(b.AuditVerifierKey()))
	}
	return c
}

func makeCheckpoint(t testing.TB, b *broker.Broker) *broker.Checkpoint {
	t.Helper()
	cp, err := b.MakeCheckpoint(context.Background())
	if err != nil {
		t.Fatalf("MakeCheckpoint: %v", err)
	}
	return cp
}

// checkInclusion proves leaves of recs against cp through b.
func checkInclusion(t testing.TB, b *broker.Broker, recs []storage.AuditRecord, cp *broker.Checkpoint, indexes ...int64) {
	t.Helper()
	for _, i := range indexes {
		proof, err := b.InclusionProof(context.Background(), i, cp.Size)
		if err != nil {
			t.Fatalf("InclusionProof(%d, %d): %v", i, cp.Size, err)
		}
		if err := audit.CheckInclusion(proof, cp.Size, cp.Root, i, recs[i].LeafHash); err != nil {
			t.Errorf("inclusion proof of event %d in the checkpoint of size %d: %v", i, cp.Size, err)
		}
		if i+1 < cp.Size && audit.CheckInclusion(proof, cp.Size, cp.Root, i, recs[i+1].LeafHash) == nil {
			t.Errorf("the proof of event %d also proves event %d's leaf", i, i+1)
		}
	}
}

func checkConsistency(t testing.TB, b *broker.Broker, old, cur *broker.Checkpoint) {
	t.Helper()
	proof, err := b.ConsistencyProof(context.Background(), old.Size, cur.Size)
	if err != nil {
		t.Fatalf("ConsistencyProof(%d, %d): %v", old.Size, cur.Size, err)
	}
	if err := audit.CheckConsistency(proof, cur.Size, cur.Root, old.Size, old.Root); err != nil {
		t.Errorf("consistency proof from %d to %d: %v", old.Size, cur.Size, err)
	}
}

// testClock is a settable Opts.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// openWith starts another broker on the vault's store with o's clock
// and checkpoint settings.
func (kv *keyVault) openWith(o broker.Opts) *broker.Broker {
	kv.t.Helper()
	o.Store, o.Keys = kv.store, kv.keys
	b, err := broker.New(context.Background(), o)
	if err != nil {
		kv.t.Fatalf("broker.New: %v", err)
	}
	kv.t.Cleanup(func() { b.Close(context.Background()) })
	return b
}

// invalid appends one event (a refused malformed request) through b.
func invalid(t testing.TB, b *broker.Broker, c *broker.Caller) {
	t.Helper()
	if err := b.Invalid(context.Background(), c, "test.audit", "a filler event"); broker.KindOf(err) != broker.Invalid {
		t.Fatalf("Invalid: %v", err)
	}
}

// ---- 1. every event is a leaf

// TestAuditTreeCoversEveryEvent: after deposits, users and a research
// table, the stored tree has every event as a leaf (its root at every
// size equals the root of the leaf hashes), proofs of inclusion and
// consistency verify against signed checkpoints, and the checkpoint
// opens with the vault's verifier key.
func TestAuditTreeCoversEveryEvent(t *testing.T) {
	ctx := context.Background()
	tv := newTableVault(t, 30)
	kv := tv.keyVault
	kv.no = 1 << 20 // after the synthetic households' numbers
	for _, c := range keyCommunes {
		kv.deposit(ea(c, 1))
	}
	if _, err := tv.request("rita", countBySexAge, broker.TableOpts{}); err != nil {
		t.Fatalf("RequestTable: %v", err)
	}
	recs := auditRecords(t, kv.store)
	n := int64(len(recs))
	if n < 30 {
		t.Fatalf("only %d events", n)
	}
	if got, want := hashCount(t, kv.store), audit.StoredHashCount(n); got != want {
		t.Fatalf("the store holds %d tree hashes for %d events, want %d", got, n, want)
	}
	for size := int64(1); size <= n; size++ {
		if got, want := storedRoot(t, kv.store, size), leafRoot(recs, size); got != want {
			t.Fatalf("stored tree root at size %d differs from the root of the first %d leaf hashes", size, size)
		}
	}

	cp1 := makeCheckpoint(t, kv.b)
	if cp1.Size != n || cp1.Root != leafRoot(recs, n) {
		t.Fatalf("checkpoint size %d, want %d, and its root must be the leaves' root", cp1.Size, n)
	}
	c := openCheckpoint(t, kv.b, cp1.Note)
	if c.Size != cp1.Size || c.Root != cp1.Root {
		t.Errorf("the signed note says size %d, MakeCheckpoint %d (or the roots differ)", c.Size, cp1.Size)
	}
	checkInclusion(t, kv.b, recs, cp1, 0, 1, n/3, n/2, n-2, n-1)

	for _, c := range keyCommunes[:2] {
		kv.deposit(ea(c, 2))
	}
	invalid(t, kv.b, kv.enum)
	cp2 := makeCheckpoint(t, kv.b)
	recs = auditRecords(t, kv.store)
	if cp2.Size != int64(len(recs)) || cp2.Size <= cp1.Size || cp2.Root != leafRoot(recs, cp2.Size) {
		t.Fatalf("second checkpoint: size %d (first %d, log %d)", cp2.Size, cp1.Size, len(recs))
	}
	checkConsistency(t, kv.b, cp1, cp2)
	checkInclusion(t, kv.b, recs, cp2, 0, n-1, n, cp2.Size-1)
	// A proof against the old checkpoint still verifies after growth.
	checkInclusion(t, kv.b, recs, cp1, n/2)
	// The consistency proof does not join unrelated roots.
	proof, _ := kv.b.ConsistencyProof(ctx, cp1.Size, cp2.Size)
	if audit.CheckConsistency(proof, cp2.Size, cp2.Root, cp1.Size, leafRoot(recs, cp1.Size-1)) == nil {
		t.Error("the consistency proof verifies against a wrong old root")
	}

	for _, bad := range []struct {
		index, size int64
		kind        broker.Kind
	}{
		{-1, 3, broker.Invalid}, {3, 3, broker.Invalid}, {0, 0, broker.Invalid},
		{0, cp2.Size + 1, broker.NotFound},
	} {
		_, err := kv.b.InclusionProof(ctx, bad.index, bad.size)
		wantKind(t, err, bad.kind, fmt.Sprintf("InclusionProof(%d, %d)", bad.index, bad.size))
	}
	for _, bad := range []struct {
		old, cur int64
		kind     broker.Kind
	}{
		{0, 3, broker.Invalid}, {4, 3, broker.Invalid}, {1, cp2.Size + 1, broker.NotFound},
	} {
		_, err := kv.b.ConsistencyProof(ctx, bad.old, bad.cur)
		wantKind(t, err, bad.kind, fmt.Sprintf("ConsistencyProof(%d, %d)", bad.old, bad.cur))
	}
}

// ---- 2. backfill

// TestAuditTreeBackfill: a vault whose events have no tree hashes (as
// schema 5 finds a log written before it) cannot take appends; New
// rebuilds the tree page by page, telling TreeProgress, and then proofs
// verify, the log verifies, and appends work.
func TestAuditTreeBackfill(t *testing.T) {
	ctx := context.Background()
	kv := newKeyVault(t, keyVaultOpts{})
	kv.deposit(ea(communeA, 1))
	kv.deposit(ea(communeB, 2))
	db := rawSQLite(t, kv.dir)
	for _, q := range []string{`DROP TRIGGER audit_hashes_no_delete`, `DELETE FROM audit_hashes`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	appendRaw(t, kv.store, 2*8192+100, false, legacyEvent)
	head := auditHeadOf(t, kv.store)
	if hashCount(t, kv.store) != 0 {
		t.Fatal("tree hashes left")
	}
	// Not tampering: a tree not built yet.
	_, err := broker.VerifyAudit(ctx, kv.store, "", nil)
	var ve *audit.VerifyError
	if err == nil || errors.As(err, &ve) || !strings.Contains(err.Error(), "censusvault migrate") {
		t.Errorf("VerifyAudit of a log without its tree: %v; want an error saying to run `censusvault migrate`, not a VerifyError", err)
	}
	// The old broker cannot append: every append needs the tree.
	if err := kv.b.Invalid(ctx, kv.enum, "test.audit", "filler"); broker.KindOf(err) != broker.Unavailable {
		t.Fatalf("an append to a log without its tree: %v, want Unavailable", err)
	}
	if got := auditHeadOf(t, kv.store); got != head {
		t.Fatalf("a failed append moved the head from %d to %d", head, got)
	}

	var calls [][2]int64
	b := kv.openWith(broker.Opts{TreeProgress: func(done, total int64) { calls = append(calls, [2]int64{done, total}) }})
	if len(calls) < 3 {
		t.Fatalf("TreeProgress called %d times for %d events, want one call per page of 8192 (%v)", len(calls), head, calls)
	}
	for i, c := range calls {
		if c[1] != head {
			t.Errorf("TreeProgress call %d: total %d, want %d", i, c[1], head)
		}
		if i > 0 && c[0] <= calls[i-1][0] {
			t.Errorf("TreeProgress went from %d to %d", calls[i-1][0], c[0])
		}
	}
	if last := calls[len(calls)-1]; last != [2]int64{head, head} {
		t.Errorf("last TreeProgress call %v, want [%d %d]", last, head, head)
	}
	if got, want := hashCount(t, kv.store), audit.StoredHashCount(head); got != want {
		t.Fatalf("after backfill the store holds %d tree hashes, want %d", got, want)
	}
	recs := auditRecords(t, kv.store)
	for _, size := range []int64{1, 2, 8191, 8192, 8193, 16384, head - 1, head} {
		if storedRoot(t, kv.store, size) != leafRoot(recs, size) {
			t.Errorf("backfilled tree root at size %d differs from the leaves' root", size)
		}
	}
	res, err := broker.VerifyAudit(ctx, kv.store, b.AuditVerifierKey(), nil)
	if err != nil || res.Events != head || res.Root != leafRoot(recs, head) {
		t.Fatalf("VerifyAudit after backfill: %+v, %v", res, err)
	}
	cp := makeCheckpoint(t, b)
	if cp.Size != head {
		t.Fatalf("checkpoint size %d, want %d", cp.Size, head)
	}
	checkInclusion(t, b, recs, cp, 0, 8191, 8192, head-1)

	// New appends extend the rebuilt tree.
	if _, err := kv.tryDeposit(b, ea(communeA, 2)); err != nil {
		t.Fatalf("deposit after backfill: %v", err)
	}
	recs = auditRecords(t, kv.store)
	cp2 := makeCheckpoint(t, b)
	if cp2.Size != int64(len(recs)) || cp2.Root != leafRoot(recs, cp2.Size) {
		t.Fatalf("checkpoint after backfill and a deposit: size %d, log %d", cp2.Size, len(recs))
	}
	checkConsistency(t, b, cp, cp2)
	checkInclusion(t, b, recs, cp2, head)
	if _, err := broker.VerifyAudit(ctx, kv.store, b.AuditVerifierKey(), nil); err != nil {
		t.Fatalf("VerifyAudit after appends: %v", err)
	}

	// With the tree complete, New has nothing to do.
	calls = nil
	kv.openWith(broker.Opts{TreeProgress: func(done, total int64) { calls = append(calls, [2]int64{done, total}) }})
	if len(calls) != 0 {
		t.Errorf("TreeProgress on a complete tree: %v, want no call (nothing written)", calls)
	}
}

// TestAuditTreeBackfillResumes: a backfill cut short (some pages stored)
// goes on from the first leaf without hashes; a hash count that is no
// tree size's is refused and changes nothing.
func TestAuditTreeBackfillResumes(t *testing.T) {
	kv := newKeyVault(t, keyVaultOpts{})
	appendRaw(t, kv.store, 12000, true, legacyEvent)
	head := auditHeadOf(t, kv.store)
	db := rawSQLite(t, kv.dir)
	if _, err := db.Exec(`DROP TRIGGER audit_hashes_no_delete`); err != nil {
		t.Fatal(err)
	}
	const kept = 5000
	if _, err := db.Exec(`DELETE FROM audit_hashes WHERE idx >= ?`, audit.StoredHashCount(kept)); err != nil {
		t.Fatal(err)
	}
	// As `censusvault migrate` does, before any start.
	var calls [][2]int64
	if err := broker.BackfillTree(context.Background(), kv.store, func(done, total int64) { calls = append(calls, [2]int64{done, total}) }); err != nil {
		t.Fatalf("BackfillTree: %v", err)
	}
	b := kv.openWith(broker.Opts{TreeProgress: func(done, total int64) { t.Errorf("New after BackfillTree rebuilt more: [%d %d]", done, total) }})
	if len(calls) == 0 || calls[0] != [2]int64{min(kept+8192, head), head} || calls[len(calls)-1] != [2]int64{head, head} {
		t.Errorf("TreeProgress %v: want the backfill to resume at leaf %d (first call [%d %d], last [%d %d])", calls, kept, min(kept+8192, head), head, head, head)
	}
	recs := auditRecords(t, kv.store)
	if _, err := broker.VerifyAudit(context.Background(), kv.store, b.AuditVerifierKey(), nil); err != nil {
		t.Fatalf("VerifyAudit after a resumed backfill: %v", err)
	}
	if storedRoot(t, kv.store, head) != leafRoot(recs, head) {
		t.Error("resumed backfill: wrong root")
	}

	// A count that no tree size has: part of a leaf's hashes deleted.
	var bad int64
	for s := int64(kept); ; s++ {
		if audit.StoredHashCount(s)+1 < audit.StoredHashCount(s+1) {
			bad = audit.StoredHashCount(s) + 1
			break
		}
	}
	if _, err := db.Exec(`DELETE FROM audit_hashes WHERE idx >= ?`, bad); err != nil {
		t.Fatal(err)
	}
	_, err := broker.New(context.Background(), broker.Opts{Store: kv.store, Keys: kv.keys})
	if err == nil || !strings.Contains(err.Error(), "tree hashes") {
		t.Fatalf("New over %d tree hashes (no tree size's count): %v, want an error about the tree hashes", bad, err)
	}
	if got := hashCount(t, kv.store); got != bad {
		t.Errorf("a refused backfill changed the hash count from %d to %d", bad, got)
	}
}

// ---- 3. checkpoints

// TestMakeCheckpointNoDuplicate: with no new event MakeCheckpoint gives
// back the latest checkpoint (same note, nothing stored); checkpoints
// are not events.
func TestMakeCheckpointNoDuplicate(t *testing.T) {
	ctx := context.Background()
	kv := newKeyVault(t, keyVaultOpts{})
	head := kv.auditHead()
	cp1 := makeCheckpoint(t, kv.b)
	cp2 := makeCheckpoint(t, kv.b)
	if cp1.Size != head || cp2.Size != head || !bytes.Equal(cp1.Note, cp2.Note) {
		t.Fatalf("two checkpoints with no event between: sizes %d and %d (log %d), notes equal %v", cp1.Size, cp2.Size, head, bytes.Equal(cp1.Note, cp2.Note))
	}
	if got := checkpointSizes(t, kv.store); !slices.Equal(got, []int64{head}) {
		t.Errorf("stored checkpoints %v, want [%d]", got, head)
	}
	if got := kv.auditHead(); got != head {
		t.Errorf("making checkpoints moved the audit head from %d to %d", head, got)
	}
	latest, err := kv.b.LatestCheckpoint(ctx)
	if err != nil || !bytes.Equal(latest.Note, cp1.Note) {
		t.Errorf("LatestCheckpoint: %v, note equal %v", err, err == nil && bytes.Equal(latest.Note, cp1.Note))
	}
	invalid(t, kv.b, kv.enum)
	cp3 := makeCheckpoint(t, kv.b)
	if cp3.Size != head+1 {
		t.Errorf("checkpoint after one event: size %d, want %d", cp3.Size, head+1)
	}
	if got := checkpointSizes(t, kv.store); !slices.Equal(got, []int64{head, head + 1}) {
		t.Errorf("stored checkpoints %v, want [%d %d]", got, head, head+1)
	}
}

// waitCheckpoint waits until the latest checkpoint covers size events.
func waitCheckpoint(t testing.TB, s storage.Store, size int64, within time.Duration) (time.Duration, bool) {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if cs := checkpointSizes(t, s); len(cs) > 0 && cs[len(cs)-1] >= size {
			return time.Since(start), true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start), false
}

// TestCheckpointLoop: Run signs a checkpoint within about CheckpointEvery
// of new events, none while nothing happens, and one as soon as
// CheckpointEvents events were appended.
func TestCheckpointLoop(t *testing.T) {
	t.Run("every", func(t *testing.T) {
		kv := newKeyVault(t, keyVaultOpts{})
		b := kv.openWith(broker.Opts{CheckpointEvery: 200 * time.Millisecond, CheckpointEvents: 1 << 40})
		base := makeCheckpoint(t, b).Size
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go b.Run(ctx)
		time.Sleep(600 * time.Millisecond)
		if got := checkpointSizes(t, kv.store); !slices.Equal(got, []int64{base}) {
			t.Fatalf("checkpoints %v with no new event, want only [%d]", got, base)
		}
		invalid(t, kv.b, kv.enum)
		took, ok := waitCheckpoint(t, kv.store, base+1, 3*time.Second)
		if !ok {
			t.Fatalf("no checkpoint of the new event %v after it, with CheckpointEvery 200ms", took)
		}
		if took > time.Second {
			t.Errorf("the checkpoint came %v after the event, want within ~2×CheckpointEvery (200ms)", took)
		}
	})
	t.Run("events", func(t *testing.T) {
		kv := newKeyVault(t, keyVaultOpts{})
		b := kv.openWith(broker.Opts{CheckpointEvery: time.Hour, CheckpointEvents: 5})
		base := makeCheckpoint(t, b).Size
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go b.Run(ctx)
		for range 4 {
			invalid(t, kv.b, kv.enum)
		}
		time.Sleep(1500 * time.Millisecond)
		if got := checkpointSizes(t, kv.store); !slices.Equal(got, []int64{base}) {
			t.Fatalf("checkpoints %v after 4 of CheckpointEvents=5 events, want only [%d]", got, base)
		}
		invalid(t, kv.b, kv.enum)
		if took, ok := waitCheckpoint(t, kv.store, base+5, 3*time.Second); !ok {
			t.Fatalf("no checkpoint %v after the 5th event with CheckpointEvents=5", took)
		}
		if got := checkpointSizes(t, kv.store); !slices.Equal(got, []int64{base, base + 5}) {
			t.Errorf("checkpoints %v, want [%d %d]", got, base, base+5)
		}
	})
}

// ---- 4. receipts

// TestProveReceipt: the depositor proves their deposit is in the log
// against a signed checkpoint (a new one if none covers it yet); others
// get NotFound; every request is audited.
func TestProveReceipt(t *testing.T) {
	ctx := context.Background()
	av := newAuditVault(t)
	kv := av.keyVault
	id := kv.deposit(ea(communeA, 1))
	r, err := kv.b.ReceiptOf(ctx, kv.enum, id)
	if err != nil {
		t.Fatal(err)
	}
	from := kv.auditHead()
	p, err := kv.b.ProveReceipt(ctx, kv.enum, id)
	if err != nil {
		t.Fatalf("ProveReceipt: %v", err)
	}
	c := openCheckpoint(t, kv.b, p.Checkpoint)
	recs := auditRecords(t, kv.store)
	leaf, _ := base64.StdEncoding.DecodeString(r.LeafHash)
	if p.Index != r.AuditIndex || !bytes.Equal(p.LeafHash[:], leaf) || p.LeafHash != recs[p.Index].LeafHash {
		t.Fatalf("proof for index %d leaf %x; receipt says index %d leaf %s", p.Index, p.LeafHash, r.AuditIndex, r.LeafHash)
	}
	if c.Size <= p.Index {
		t.Fatalf("checkpoint of size %d does not cover event %d", c.Size, p.Index)
	}
	if err := audit.CheckInclusion(p.Hashes, c.Size, c.Root, p.Index, p.LeafHash); err != nil {
		t.Fatalf("the receipt's proof does not verify: %v", err)
	}
	if audit.CheckInclusion(p.Hashes, c.Size, c.Root, p.Index, recs[p.Index-1].LeafHash) == nil {
		t.Fatal("the receipt's proof also proves another leaf")
	}
	if e := findEvent(t, kv.store, from, string(policy.ReadReceipt), "user:enum"); e == nil || e.Outcome != "ok" || !slices.Contains(e.Resources, "submission:"+string(id)) {
		t.Errorf("ProveReceipt not audited as an ok receipt.read of the submission: %+v", e)
	}

	// Others: NotFound, and the refusal is logged.
	for _, who := range []struct {
		c    *broker.Caller
		name string
	}{{av.enum2, "enum2"}, {av.aud, "aud"}, {kv.steer, "steering"}} {
		from := kv.auditHead()
		_, err := kv.b.ProveReceipt(ctx, who.c, id)
		wantKind(t, err, broker.NotFound, "ProveReceipt by "+who.name)
		if e := findEvent(t, kv.store, from, string(policy.ReadReceipt), "user:"+who.name); e == nil || e.Outcome != "denied" || e.Decision != "deny" {
			t.Errorf("refused ProveReceipt by %s not logged as denied: %+v", who.name, e)
		}
	}
	_, err = kv.b.ProveReceipt(ctx, kv.enum, broker.SubmissionID(uuid.NewString()))
	wantKind(t, err, broker.NotFound, "ProveReceipt of an unknown submission")
	_, err = kv.b.ProveReceipt(ctx, kv.enum, "not-a-uuid")
	wantKind(t, err, broker.Invalid, "ProveReceipt of a malformed id")

	// A deposit after the latest checkpoint gets a new one.
	cp := makeCheckpoint(t, kv.b)
	id2 := kv.deposit(ea(communeB, 1))
	p2, err := kv.b.ProveReceipt(ctx, kv.enum, id2)
	if err != nil {
		t.Fatal(err)
	}
	c2 := openCheckpoint(t, kv.b, p2.Checkpoint)
	if p2.Index < cp.Size || c2.Size <= p2.Index {
		t.Fatalf("deposit at %d after the checkpoint of size %d: proved against size %d", p2.Index, cp.Size, c2.Size)
	}
	if err := audit.CheckInclusion(p2.Hashes, c2.Size, c2.Root, p2.Index, p2.LeafHash); err != nil {
		t.Fatalf("proof of a deposit made after the latest checkpoint: %v", err)
	}
	if cs := checkpointSizes(t, kv.store); cs[len(cs)-1] != c2.Size {
		t.Errorf("the new checkpoint (size %d) is not stored: %v", c2.Size, cs)
	}
	checkConsistency(t, kv.b, &broker.Checkpoint{Size: c.Size, Root: c.Root}, &broker.Checkpoint{Size: c2.Size, Root: c2.Root})
}

// ---- 5. export

type exportLine struct {
	Index    int64           `json:"index"`
	Event    json.RawMessage `json:"event"`
	Withheld string          `json:"withheld"`
}

// exportLines parses an export's leaf lines (the checkpoint line is
// skipped: VerifyExport checks it).
func exportLines(t testing.TB, b []byte) []exportLine {
	t.Helper()
	var out []exportLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, audit.MaxEventSize+1024)
	for first := true; sc.Scan(); first = false {
		if first {
			continue
		}
		var l exportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("export line %d: %v", len(out)+2, err)
		}
		out = append(out, l)
	}
	return out
}

func export(t testing.TB, b *broker.Broker, c *broker.Caller, size int64) (*broker.Checkpoint, []byte) {
	t.Helper()
	var buf bytes.Buffer
	cp, err := b.ExportAudit(context.Background(), c, size, &buf)
	if err != nil {
		t.Fatalf("ExportAudit: %v", err)
	}
	return cp, buf.Bytes()
}

func verifyExport(t testing.TB, b *broker.Broker, data []byte, o audit.ExportOpts) *audit.ExportResult {
	t.Helper()
	o.VerifierKey = b.AuditVerifierKey()
	res, err := audit.VerifyExport(bytes.NewReader(data), o)
	if err != nil {
		t.Fatalf("VerifyExport: %v", err)
	}
	return res
}

func (av *auditVault) fillAreas(t testing.TB) {
	t.Helper()
	for _, c := range keyCommunes {
		av.deposit(ea(c, 1))
		av.deposit(ea(c, 2))
	}
	invalid(t, av.b, av.enum)
}

// inSubtree: is area a (an event's Area) in the subtree of root?
func inSubtree(b *broker.Broker, a string, root string) bool {
	return slices.Contains(b.Tree().PathStrings(broker.AreaCode(a)), root)
}

// TestExportAudit: a global auditor's export holds every event and
// verifies; a commune auditor's withholds what is out of scope and still
// verifies; exports are audited; an enumerator is refused, and logged.
func TestExportAudit(t *testing.T) {
	ctx := context.Background()
	av := newAuditVault(t)
	av.fillAreas(t)
	old := makeCheckpoint(t, av.b)
	av.deposit(ea(communeA, 1))
	makeCheckpoint(t, av.b) // the latest then covers every event (see TestExportAuditLatest)

	head := av.auditHead()
	cp, data := export(t, av.b, av.aud, 0)
	recs := auditRecords(t, av.store)
	if cp.Size < head {
		t.Fatalf("the export covers %d events; %d were in the log before it", cp.Size, head)
	}
	res := verifyExport(t, av.b, data, audit.ExportOpts{Checkpoint: cp.Note, Previous: [][]byte{old.Note}})
	if res.Size != cp.Size || res.Events != cp.Size || res.Withheld != 0 || res.Root != leafRoot(recs, cp.Size) || res.Previous != 2 {
		t.Fatalf("global export: %+v, want all %d events, the leaves' root, extending 2 checkpoints", res, cp.Size)
	}
	lines := exportLines(t, data)
	if int64(len(lines)) != cp.Size {
		t.Fatalf("%d export lines, want %d", len(lines), cp.Size)
	}
	for i, l := range lines {
		if !bytes.Equal(l.Event, recs[i].Event) {
			t.Fatalf("export line of event %d does not carry the stored bytes", i)
		}
	}
	e := findEvent(t, av.store, head, "audit.export", "user:aud")
	if e == nil || e.Outcome != "ok" || !slices.Equal(e.Resources, []string{fmt.Sprintf("checkpoint:%d", cp.Size)}) {
		t.Errorf("the export is not audited as ok with its checkpoint: %+v", e)
	}

	// An older checkpoint, by size.
	cpOld, dataOld := export(t, av.b, av.aud, old.Size)
	if resOld := verifyExport(t, av.b, dataOld, audit.ExportOpts{Checkpoint: old.Note}); cpOld.Size != old.Size || resOld.Events != old.Size {
		t.Errorf("export at the old checkpoint: size %d, %d events, want %d", cpOld.Size, resOld.Events, old.Size)
	}
	from := av.auditHead()
	var buf bytes.Buffer
	_, err := av.b.ExportAudit(ctx, av.aud, head+1000, &buf)
	wantKind(t, err, broker.NotFound, "ExportAudit at a size with no checkpoint")
	if e := findEvent(t, av.store, from, "audit.export", "user:aud"); e == nil || e.Outcome != "invalid" || buf.Len() != 0 {
		t.Errorf("export of a missing checkpoint: event %+v, %d bytes written", e, buf.Len())
	}

	// Commune A's auditor.
	cpA, dataA := export(t, av.b, av.audA, cp.Size)
	resA := verifyExport(t, av.b, dataA, audit.ExportOpts{Checkpoint: cp.Note})
	var visible, withheld int64
	for i, l := range exportLines(t, dataA) {
		in := inSubtree(av.b, decodeRecord(t, recs[i]).Area, communeA)
		switch {
		case l.Withheld == "" && !in:
			t.Errorf("commune A's auditor sees event %d, outside commune A", i)
		case l.Withheld == "" && !bytes.Equal(l.Event, recs[i].Event):
			t.Errorf("event %d exported with other bytes", i)
		case l.Withheld != "" && in:
			t.Errorf("event %d of commune A withheld from its auditor", i)
		case l.Withheld != "" && l.Withheld != string(audit.WithheldOutOfScope):
			t.Errorf("event %d withheld as %q, want out_of_scope", i, l.Withheld)
		}
		if l.Withheld == "" {
			visible++
		} else {
			withheld++
		}
	}
	if cpA.Size != cp.Size || resA.Events != visible || resA.Withheld != withheld || visible < 3 || withheld < 6 || resA.Root != cp.Root {
		t.Errorf("scoped export: %+v; %d visible, %d withheld", resA, visible, withheld)
	}

	// Refused.
	from = av.auditHead()
	buf.Reset()
	_, err = av.b.ExportAudit(ctx, av.enum, 0, &buf)
	wantKind(t, err, broker.Permission, "ExportAudit by an enumerator")
	if buf.Len() != 0 {
		t.Errorf("a refused export wrote %d bytes", buf.Len())
	}
	if e := findEvent(t, av.store, from, "audit.export", "user:enum"); e == nil || e.Outcome != "denied" || e.Decision != "deny" {
		t.Errorf("refused export not logged as denied: %+v", e)
	}
}

// TestExportAuditLatest: size 0 exports the latest stored checkpoint
// (Run's loop keeps it within CheckpointEvery of the log's end), and
// signs the first one if there is none, covering every event.
func TestExportAuditLatest(t *testing.T) {
	av := newAuditVault(t)
	av.deposit(ea(communeA, 1))
	head := av.auditHead()
	first, data := export(t, av.b, av.aud, 0)
	if first.Size != head || verifyExport(t, av.b, data, audit.ExportOpts{}).Events != head {
		t.Fatalf("the first export signed a checkpoint of %d events, want all %d", first.Size, head)
	}
	if got := checkpointSizes(t, av.store); !slices.Equal(got, []int64{head}) {
		t.Errorf("checkpoints %v, want [%d]", got, head)
	}
	av.deposit(ea(communeB, 1))
	again, data := export(t, av.b, av.aud, 0)
	if again.Size != first.Size || verifyExport(t, av.b, data, audit.ExportOpts{Checkpoint: first.Note}).Size != first.Size {
		t.Errorf("export of the latest: size %d, want the stored checkpoint's %d", again.Size, first.Size)
	}
	cp := makeCheckpoint(t, av.b)
	latest, data := export(t, av.b, av.aud, 0)
	if latest.Size != cp.Size || verifyExport(t, av.b, data, audit.ExportOpts{Checkpoint: cp.Note, Previous: [][]byte{first.Note}}).Size != cp.Size {
		t.Errorf("export after a new checkpoint of %d: size %d", cp.Size, latest.Size)
	}
}

// ---- 6. pruning

// TestPruneAudit: pruning removes the bodies of checkpointed events only,
// keeps their hashes, is itself logged, and everything still verifies.
func TestPruneAudit(t *testing.T) {
	ctx := context.Background()
	av := newAuditVault(t)
	av.fillAreas(t)
	cp0 := makeCheckpoint(t, av.b)
	before := auditRecords(t, av.store)
	proofs := map[int64][][32]byte{}
	for _, i := range []int64{2, 5, 11} {
		p, err := av.b.InclusionProof(ctx, i, cp0.Size)
		if err != nil {
			t.Fatal(err)
		}
		proofs[i] = p
	}
	invalid(t, av.b, av.enum)
	head := av.auditHead()

	for _, bad := range []int64{-1, head + 1} {
		_, err := av.b.PruneAudit(ctx, actor, bad)
		wantKind(t, err, broker.Invalid, fmt.Sprintf("PruneAudit(%d) of a log of %d", bad, head))
	}
	for _, r := range auditRecords(t, av.store) {
		if r.Pruned {
			t.Fatalf("a refused prune removed event %d", r.Index)
		}
	}

	const cut = 12
	n, err := av.b.PruneAudit(ctx, actor, cut)
	if err != nil || n != cut {
		t.Fatalf("PruneAudit(%d) = %d, %v", cut, n, err)
	}
	if n, err := av.b.PruneAudit(ctx, actor, cut); err != nil || n != 0 {
		t.Errorf("PruneAudit(%d) again = %d, %v; want 0", cut, n, err)
	}
	after := auditRecords(t, av.store)
	for i, r := range after[:len(before)] {
		if r.LeafHash != before[i].LeafHash || r.ChainHash != before[i].ChainHash {
			t.Fatalf("pruning changed the hashes of event %d", i)
		}
		if r.Pruned != (i < cut) || (r.Event == nil) != (i < cut) {
			t.Errorf("event %d: pruned %v (body %d bytes), want pruned %v", i, r.Pruned, len(r.Event), i < cut)
		}
	}
	e := findEvent(t, av.store, head, "audit.prune", actor)
	if e == nil || !slices.Contains(e.Resources, fmt.Sprintf("audit:0+%d", cut)) {
		t.Fatalf("the prune is not logged with its range: %+v", e)
	}

	res, err := broker.VerifyAudit(ctx, av.store, av.b.AuditVerifierKey(), nil)
	if err != nil || res.Pruned != cut || res.Events != int64(len(after)) || res.Checkpoints < 2 {
		t.Fatalf("VerifyAudit after pruning: %+v, %v; want %d events, %d pruned, ≥2 checkpoints", res, err, len(after), cut)
	}

	cp, data := export(t, av.b, av.aud, 0)
	xr := verifyExport(t, av.b, data, audit.ExportOpts{Previous: [][]byte{cp0.Note}})
	if xr.Withheld != cut {
		t.Errorf("export after pruning withholds %d leaves, want %d", xr.Withheld, cut)
	}
	for i, l := range exportLines(t, data) {
		if (l.Withheld == string(audit.WithheldPruned)) != (i < cut) {
			t.Errorf("export line of event %d: withheld %q", i, l.Withheld)
		}
	}

	// Proofs from before still verify, and the same proofs come again.
	for i, p := range proofs {
		if err := audit.CheckInclusion(p, cp0.Size, cp0.Root, i, before[i].LeafHash); err != nil {
			t.Errorf("old proof of pruned event %d: %v", i, err)
		}
		again, err := av.b.InclusionProof(ctx, i, cp0.Size)
		if err != nil || !slices.Equal(again, p) {
			t.Errorf("InclusionProof(%d, %d) after pruning: %v, same proof %v", i, cp0.Size, err, slices.Equal(again, p))
		}
	}
	checkInclusion(t, av.b, after, cp, 0, cut-1, cut)

	page, err := av.b.AuditEvents(ctx, av.aud, broker.AuditQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) == 0 {
		t.Fatal("AuditEvents after pruning: nothing")
	}
	for _, b := range page.Events {
		if e, err := audit.Decode(b); err != nil || e.Index < cut {
			t.Fatalf("AuditEvents returned event %v (err %v), pruned below %d", e.Index, err, cut)
		}
	}
	if e, _ := audit.Decode(page.Events[0]); e.Index != cut {
		t.Errorf("AuditEvents starts at %d, want %d (the first unpruned)", e.Index, cut)
	}
}

// TestPruneIndex: the first event at or after a time, skipping pruned
// ones; the log's size when none is.
func TestPruneIndex(t *testing.T) {
	ctx := context.Background()
	kv := newKeyVault(t, keyVaultOpts{})
	clock := &testClock{}
	b := kv.openWith(broker.Opts{Now: clock.now})
	t0 := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	var at []int64
	for i := range 3 {
		clock.set(t0.Add(time.Duration(i) * time.Hour))
		at = append(at, kv.auditHead())
		invalid(t, b, nil)
	}
	head := kv.auditHead()
	for _, c := range []struct {
		t    time.Time
		want int64
	}{
		{time.Time{}, 0},
		{t0.Add(-time.Nanosecond), at[0]},
		{t0, at[0]},
		{t0.Add(time.Nanosecond), at[1]},
		{t0.Add(time.Hour), at[1]},
		{t0.Add(90 * time.Minute), at[2]},
		{t0.Add(2 * time.Hour), at[2]},
		{t0.Add(3 * time.Hour), head},
	} {
		got, err := broker.PruneIndex(ctx, kv.store, c.t)
		if err != nil || got != c.want {
			t.Errorf("PruneIndex(%v) = %d, %v; want %d", c.t, got, err, c.want)
		}
	}
	clock.set(t0.Add(5 * time.Hour))
	if _, err := b.PruneAudit(ctx, actor, at[1]); err != nil {
		t.Fatal(err)
	}
	if got, err := broker.PruneIndex(ctx, kv.store, time.Time{}); err != nil || got != at[1] {
		t.Errorf("PruneIndex(zero) after pruning below %d = %d, %v", at[1], got, err)
	}
}

// ---- 7. tampering

// tamperVault is a vault VerifyAudit is run on after someone with the
// database changed it, on either backend.
type tamperVault struct {
	store storage.Store
	b     *broker.Broker
	keys  crypto.KeyProvider
	exec  func(q string, args ...any) error // raw SQL with ? placeholders
	drop  func(t testing.TB)                // drops the append-only triggers
}

func sqliteTamperVault(t *testing.T) *tamperVault {
	kv := newKeyVault(t, keyVaultOpts{})
	db := rawSQLite(t, kv.dir)
	return &tamperVault{
		store: kv.store, b: kv.b, keys: kv.keys,
		exec: func(q string, args ...any) error { _, err := db.Exec(q, args...); return err },
		drop: func(t testing.TB) { dropSQLiteGuards(t, db) },
	}
}

// fill writes deposits and filler events, a checkpoint at s1, more, a
// checkpoint at s2 and a few events after it.
func (tv *tamperVault) fill(t testing.TB) (s1, s2 int64) {
	t.Helper()
	ctx := context.Background()
	for i := range 8 {
		if _, err := tv.b.IngestSynthetic(ctx, actor, household(uuid.NewString(), ea(keyCommunes[i%4], 1+i/4), 100+i)); err != nil {
			t.Fatal(err)
		}
	}
	s1 = makeCheckpoint(t, tv.b).Size
	for range 6 {
		invalid(t, tv.b, nil)
	}
	s2 = makeCheckpoint(t, tv.b).Size
	for range 3 {
		invalid(t, tv.b, nil)
	}
	return s1, s2
}

func (tv *tamperVault) mustExec(t testing.TB, q string, args ...any) {
	t.Helper()
	if err := tv.exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

type tamperCase struct {
	name string
	// tamper changes the store and returns the event VerifyAudit must
	// name.
	tamper func(t testing.TB, tv *tamperVault, recs []storage.AuditRecord, s1, s2 int64) int64
	// keyOnly: only a check of the signature finds it (VerifyAudit
	// without the verifier key passes).
	keyOnly bool
	hint    string // what VerifyAudit must do to find it
}

var tamperCases = []tamperCase{
	{name: "one byte of an event", tamper: func(t testing.TB, tv *tamperVault, recs []storage.AuditRecord, s1, s2 int64) int64 {
		i := s1 - 3 // a deposit
		ev := bytes.Clone(recs[i].Event)
		k := bytes.Index(ev, []byte(`"actor":"`)) + len(`"actor":"`)
		ev[k] ^= 1 // "cli:…" → "bli:…"
		tv.mustExec(t, `UPDATE audit_events SET event = ? WHERE idx = ?`, ev, i)
		return i
	}},
	{name: "an event deleted", tamper: func(t testing.TB, tv *tamperVault, recs []storage.AuditRecord, s1, s2 int64) int64 {
		tv.mustExec(t, `DELETE FROM audit_events WHERE idx = ?`, s1+2)
		return s1 + 2
	}},
	{name: "two events swapped", tamper: func(t testing.TB, tv *tamperVault, recs []storage.AuditRecord, s1, s2 int64) int64 {
		i := s1 - 4
		set := `UPDATE audit_events SET event = ?, leaf_hash = ?, chain_hash = ? WHERE idx = ?`
		a, b := recs[i], recs[i+1]
		tv.mustExec(t, set, b.Event, b.LeafHash[:], b.ChainHash[:], i)
		tv.mustExec(t, set, a.Event, a.LeafHash[:], a.ChainHash[:], i+1)
		return i
	}},
	{name: "two event bodies swapped", tamper: func(t testing.TB, tv *tamperVault, recs []storage.AuditRecord, s1, s2 int64) int64 {
		i := s1 + 1
		tv.mustExec(t, `UPDATE audit_events SET event = ? WHERE idx = ?`, recs[i+1].Event, i)
		tv.mustExec(t, `UPDATE audit_events SET event = ? WHERE idx = ?`, recs[i].Event, i+1)
		return i
	}},
	{name: "a leaf's stored tree hash", tamper: func(t testing.TB, tv *tamperVault, recs []storage.AuditRecord, s1, s2 int64) int64 {
		j := s1 + 1
		k := audit.StoredHashIndex(j)
		h := storedHash(t, tv.store, k)
		h[7] ^= 0x40
		tv.mustExec(t, `UPDATE audit_hashes SET hash = ? WHERE idx = ?`, h[:], k)
		return j
	}},
	{name: "a subtree's stored tree hash", tamper: func(t testing.TB, tv *tamperVault, recs []storage.AuditRecord, s1, s2 int64) int64 {
		j := int64(5)
		for audit.StoredHashCount(j+1)-audit.StoredHashIndex(j) < 3 {
			j++ // a leaf completing two subtrees or more
		}
		k := audit.StoredHashIndex(j) + 2
		h := storedHash(t, tv.store, k)
		h[0] ^= 1
		tv.mustExec(t, `UPDATE audit_hashes SET hash = ? WHERE idx = ?`, h[:], k)
		return j
	}},
	{name: "a checkpoint signed by another key", keyOnly: true, tamper: func(t testing.TB, tv *tamperVault, recs []storage.AuditRecord, s1, s2 int64) int64 {
		sg := otherSigner(t, origin(tv.b.AuditVerifierKey()))
		tv.mustExec(t, `UPDATE audit_checkpoints SET note = ? WHERE size = ?`, signCheckpoint(t, sg, s1, leafRoot(recs, s1)), s1)
		return s1 - 1
	}},
	{name: "a checkpoint with a wrong root", tamper: func(t testing.TB, tv *tamperVault, recs []storage.AuditRecord, s1, s2 int64) int64 {
		sg := auditSigner(t, tv.store, tv.keys)
		tv.mustExec(t, `UPDATE audit_checkpoints SET note = ? WHERE size = ?`, signCheckpoint(t, sg, s2, leafRoot(recs, s2-1)), s2)
		return s2 - 1
	}},
	{name: "the log truncated under a checkpoint", hint: "a stored checkpoint larger than the log (its last events deleted) must be reported at the first missing index; VerifyAudit only checks checkpoints whose size is within the log", tamper: func(t testing.TB, tv *tamperVault, recs []storage.AuditRecord, s1, s2 int64) int64 {
		cut := s2 - 2
		tv.mustExec(t, `DELETE FROM audit_events WHERE idx >= ?`, cut)
		tv.mustExec(t, `DELETE FROM audit_hashes WHERE idx >= ?`, audit.StoredHashIndex(cut))
		return cut
	}},
}

// runTamperCases runs every tamper case on a vault of its own.
func runTamperCases(t *testing.T, open func(t *testing.T) *tamperVault) {
	for _, c := range tamperCases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			ctx := context.Background()
			tv := open(t)
			s1, s2 := tv.fill(t)
			key := tv.b.AuditVerifierKey()
			recs := auditRecords(t, tv.store)
			res, err := broker.VerifyAudit(ctx, tv.store, key, nil)
			if err != nil || res.Events != int64(len(recs)) || res.Checkpoints != 2 || res.Root != leafRoot(recs, int64(len(recs))) {
				t.Fatalf("VerifyAudit before tampering: %+v, %v", res, err)
			}
			tv.drop(t)
			want := c.tamper(t, tv, recs, s1, s2)
			what := c.name
			if c.hint != "" {
				what += " (" + c.hint + ")"
			}
			_, err = broker.VerifyAudit(ctx, tv.store, key, nil)
			wantVerifyError(t, err, want, what+", with the verifier key")
			_, err = broker.VerifyAudit(ctx, tv.store, "", nil)
			if c.keyOnly {
				if err != nil {
					t.Errorf("%s, without the verifier key: %v, want no error (the root is right)", c.name, err)
				}
			} else {
				wantVerifyError(t, err, want, what+", without the verifier key")
			}
		})
	}
}

func TestVerifyAuditTamperSQLite(t *testing.T) {
	runTamperCases(t, sqliteTamperVault)
}

// TestVerifyAuditCheckpointAtChunkBoundary: VerifyAudit reads the log in
// chunks of 4096 events; a checkpoint whose size is a chunk's end must
// not stop the checkpoints of the next chunk from being checked.
func TestVerifyAuditCheckpointAtChunkBoundary(t *testing.T) {
	ctx := context.Background()
	tv := sqliteTamperVault(t)
	appendRaw(t, tv.store, int(4096-auditHeadOf(t, tv.store)), true, legacyEvent)
	if s := makeCheckpoint(t, tv.b).Size; s != 4096 {
		t.Fatalf("checkpoint size %d", s)
	}
	appendRaw(t, tv.store, 100, true, legacyEvent)
	s2 := makeCheckpoint(t, tv.b).Size
	key := tv.b.AuditVerifierKey()
	res, err := broker.VerifyAudit(ctx, tv.store, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Checkpoints != 2 {
		t.Errorf("VerifyAudit checked %d checkpoints of sizes 4096 and %d, want 2: after a checkpoint ending a chunk (verifyChunk 4096), the next chunk asks CheckpointCovering(from-1) and gets that checkpoint again, which never matches and hides every later one", res.Checkpoints, s2)
	}
	recs := auditRecords(t, tv.store)
	tv.drop(t)
	tv.mustExec(t, `UPDATE audit_checkpoints SET note = ? WHERE size = ?`, signCheckpoint(t, auditSigner(t, tv.store, tv.keys), s2, leafRoot(recs, s2-1)), s2)
	_, err = broker.VerifyAudit(ctx, tv.store, key, nil)
	wantVerifyError(t, err, s2-1, "a wrong root in the checkpoint after one at a chunk boundary")
}

// ---- 8. search

// TestAuditEventsFilters: each filter narrows to exactly the events it
// names, against an independent reading of the log.
func TestAuditEventsFilters(t *testing.T) {
	ctx := context.Background()
	av := newAuditVault(t)
	clock := &testClock{}
	b := av.openWith(broker.Opts{Now: clock.now})
	t0 := time.Date(2031, 5, 6, 7, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	step := 0
	next := func() { clock.set(at(step)); step++ }
	deposit := func(c *broker.Caller, ea string) broker.SubmissionID {
		next()
		av.no++
		id := uuid.NewString()
		ct := av.encrypt(household(id, ea, av.no))
		if _, err := b.Deposit(ctx, c, int64(len(ct)), bytes.NewReader(ct)); err != nil {
			t.Fatal(err)
		}
		return broker.SubmissionID(id)
	}
	dep1 := deposit(av.enum, ea(communeA, 1))
	deposit(av.enum, ea(communeA, 2))
	deposit(av.enum, ea(communeB, 1))
	next()
	if _, err := b.ReceiptOf(ctx, av.enum, dep1); err != nil {
		t.Fatal(err)
	}
	next()
	if _, err := b.ReceiptOf(ctx, av.enum2, dep1); broker.KindOf(err) != broker.NotFound {
		t.Fatal(err)
	}
	next()
	invalid(t, b, av.enum2)
	next()
	if _, err := b.AddUser(ctx, "cli:filter", broker.NewUser{Name: "late", Role: policy.Supervisor, Area: communeB}); err != nil {
		t.Fatal(err)
	}
	deposit(av.enum2, ea(communeB, 2))

	head := av.auditHead()
	var all []*audit.Event
	for _, r := range auditRecords(t, av.store) {
		all = append(all, decodeRecord(t, r))
	}
	type query struct {
		name string
		q    broker.AuditQuery
		want func(e *audit.Event) bool
	}
	for _, c := range []query{
		{"actor", broker.AuditQuery{Actor: "user:enum2"}, func(e *audit.Event) bool { return e.Actor == "user:enum2" }},
		{"role", broker.AuditQuery{Role: "enumerator"}, func(e *audit.Event) bool { return slices.Contains(e.Roles, "enumerator") }},
		{"action", broker.AuditQuery{Action: "submission.deposit"}, func(e *audit.Event) bool { return e.Action == "submission.deposit" }},
		{"area commune", broker.AuditQuery{Area: communeA}, func(e *audit.Event) bool { return inSubtree(b, e.Area, communeA) }},
		{"area district", broker.AuditQuery{Area: keyDistrict}, func(e *audit.Event) bool { return inSubtree(b, e.Area, keyDistrict) }},
		{"decision deny", broker.AuditQuery{Decision: "deny"}, func(e *audit.Event) bool { return e.Decision == "deny" }},
		{"decision allow+action", broker.AuditQuery{Decision: "allow", Action: "receipt.read"}, func(e *audit.Event) bool {
			return e.Decision == "allow" && e.Action == "receipt.read"
		}},
		{"outcome", broker.AuditQuery{Outcome: "invalid"}, func(e *audit.Event) bool { return e.Outcome == "invalid" }},
		{"resource", broker.AuditQuery{Resource: "submission:" + string(dep1)}, func(e *audit.Event) bool {
			return slices.Contains(e.Resources, "submission:"+string(dep1))
		}},
		{"since", broker.AuditQuery{Since: at(3)}, func(e *audit.Event) bool { return !e.Time.Before(at(3)) }},
		{"until", broker.AuditQuery{Until: at(3)}, func(e *audit.Event) bool { return e.Time.Before(at(3)) }},
		{"since+until", broker.AuditQuery{Since: at(1), Until: at(4)}, func(e *audit.Event) bool { return !e.Time.Before(at(1)) && e.Time.Before(at(4)) }},
		{"action+area", broker.AuditQuery{Action: "submission.deposit", Area: communeB}, func(e *audit.Event) bool {
			return e.Action == "submission.deposit" && inSubtree(b, e.Area, communeB)
		}},
	} {
		name := "filter " + c.name
		var want []int64
		for _, e := range all {
			if c.want(e) {
				want = append(want, e.Index)
			}
		}
		if len(want) == 0 || len(want) == len(all) {
			t.Fatalf("%s: %d of %d events match; the test needs a filter that narrows", name, len(want), len(all))
		}
		q := c.q
		q.Limit = 1000
		page, err := b.AuditEvents(ctx, av.aud, q)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got []int64
		for _, raw := range page.Events {
			e, err := audit.Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			if !c.want(e) {
				t.Errorf("%s returned event %d, which does not match", name, e.Index)
			}
			if e.Index < head {
				got = append(got, e.Index)
			} else if e.Action != string(policy.ReadAudit) {
				t.Errorf("%s returned event %d (%s) appended after the test's events", name, e.Index, e.Action)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: events %v, want %v", name, got, want)
		}
		if page.Next != -1 {
			t.Errorf("%s: Next %d at the end of the log, want -1", name, page.Next)
		}
	}

	// The query itself is logged, with its filters.
	from := av.auditHead()
	if _, err := b.AuditEvents(ctx, av.aud, broker.AuditQuery{Action: "submission.deposit", Area: communeA}); err != nil {
		t.Fatal(err)
	}
	if e := findEvent(t, av.store, from, string(policy.ReadAudit), "user:aud"); e == nil ||
		!slices.Contains(e.Resources, "filter:action=submission.deposit") || !slices.Contains(e.Resources, "filter:area="+communeA) {
		t.Errorf("the search is not logged with its filters: %+v", e)
	}
	_, err := b.AuditEvents(ctx, av.aud, broker.AuditQuery{Area: "99999"})
	wantKind(t, err, broker.Invalid, "AuditEvents in an unknown area")
	from = av.auditHead()
	_, err = b.AuditEvents(ctx, av.enum, broker.AuditQuery{})
	wantKind(t, err, broker.Permission, "AuditEvents by an enumerator")
	if e := findEvent(t, av.store, from, string(policy.ReadAudit), "user:enum"); e == nil || e.Outcome != "denied" {
		t.Errorf("refused search not logged as denied: %+v", e)
	}
	// Commune A's auditor sees only commune A's events.
	page, err := b.AuditEvents(ctx, av.audA, broker.AuditQuery{Action: "submission.deposit", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, raw := range page.Events {
		e, _ := audit.Decode(raw)
		if !inSubtree(b, e.Area, communeA) {
			t.Errorf("commune A's auditor sees event %d in %s", e.Index, e.Area)
		}
		n++
	}
	if n != 2 {
		t.Errorf("commune A's auditor sees %d deposits, want 2", n)
	}
}

// TestAuditEventsPaging: pages follow Next to the end (-1) without loss
// or repetition; limits are clamped; From bounds are checked.
func TestAuditEventsPaging(t *testing.T) {
	ctx := context.Background()
	av := newAuditVault(t)
	av.fillAreas(t)
	head := av.auditHead()
	var want []int64
	for _, e := range eventsFrom(t, av.store, 0) {
		if e.Action == "submission.deposit" {
			want = append(want, e.Index)
		}
	}
	var got []int64
	pages := 0
	for from := int64(0); from != -1; pages++ {
		page, err := av.b.AuditEvents(ctx, av.aud, broker.AuditQuery{From: from, Limit: 3, Action: "submission.deposit"})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) > 3 {
			t.Fatalf("page of %d events with Limit 3", len(page.Events))
		}
		for _, raw := range page.Events {
			e, _ := audit.Decode(raw)
			got = append(got, e.Index)
		}
		if page.Next != -1 {
			last := got[len(got)-1]
			if len(page.Events) != 3 || page.Next != last+1 {
				t.Fatalf("page from %d: %d events, last %d, Next %d; want a full page and Next just after it", from, len(page.Events), last, page.Next)
			}
		}
		from = page.Next
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged deposits %v, want %v", got, want)
	}

	appendRaw(t, av.store, 150, true, legacyEvent)
	for _, limit := range []int{0, 5000} {
		page, err := av.b.AuditEvents(ctx, av.aud, broker.AuditQuery{Limit: limit, Action: "legacy.test"})
		if err != nil {
			t.Fatal(err)
		}
		// The raw events follow the audit.read events of the loop above.
		var first, last int64 = -1, -1
		for _, raw := range page.Events {
			e, _ := audit.Decode(raw)
			if first < 0 {
				first = e.Index
			}
			last = e.Index
		}
		if len(page.Events) != 100 || page.Next != last+1 || last-first != 99 {
			t.Errorf("Limit %d: %d events (%d…%d), Next %d; want the default 100 and Next after them", limit, len(page.Events), first, last, page.Next)
		}
	}
	page, err := av.b.AuditEvents(ctx, av.aud, broker.AuditQuery{From: head + 10000})
	if err != nil || len(page.Events) != 0 || page.Next != -1 {
		t.Errorf("From beyond the log: %v events, Next %v, %v", len(page.Events), page.Next, err)
	}
	_, err = av.b.AuditEvents(ctx, av.aud, broker.AuditQuery{From: -1})
	wantKind(t, err, broker.Invalid, "AuditEvents from -1")
}

// TestAuditEventsScanBound: a filter matching nothing looks at
// MaxAuditScan events, then answers with what it found (nothing) and
// Next where to go on.
func TestAuditEventsScanBound(t *testing.T) {
	ctx := context.Background()
	av := newAuditVault(t)
	var want int // the setup's events by actor, all before the bound
	for _, e := range eventsFrom(t, av.store, 0) {
		if e.Actor == actor {
			want++
		}
	}
	bulkSQLite(t, av.store, rawSQLite(t, av.dir), broker.MaxAuditScan+50)
	from := int64(3)
	page, err := av.b.AuditEvents(ctx, av.aud, broker.AuditQuery{From: from, Actor: "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 0 || page.Next != from+broker.MaxAuditScan {
		t.Fatalf("a search matching nothing: %d events, Next %d; want none and Next %d (From + MaxAuditScan)", len(page.Events), page.Next, from+broker.MaxAuditScan)
	}
	page, err = av.b.AuditEvents(ctx, av.aud, broker.AuditQuery{From: page.Next, Actor: "nobody"})
	if err != nil || len(page.Events) != 0 || page.Next != -1 {
		t.Fatalf("the rest of the log: %d events, Next %d, %v; want the end (-1)", len(page.Events), page.Next, err)
	}
	// Matches found before the bound come back with Next.
	page, err = av.b.AuditEvents(ctx, av.aud, broker.AuditQuery{Actor: actor, Limit: 1000})
	if err != nil || len(page.Events) != want || want == 0 || page.Next != broker.MaxAuditScan {
		t.Errorf("a search whose matches are all early: %d events, Next %d, %v; want %d and Next %d", len(page.Events), page.Next, err, want, broker.MaxAuditScan)
	}
}

// ---- 9. benchmark

// BenchmarkAuditAppendConcurrent measures the audit log's appends under
// concurrent deposits (16 goroutines, SQLite, group commit): each
// deposit appends one event with its Merkle tree hashes in the deposit's
// transaction. The store/… cases isolate the append itself: an event
// with its tree hashes (what the broker does) against the chain only.
func BenchmarkAuditAppendConcurrent(b *testing.B) {
	par := max(1, (16+runtime.GOMAXPROCS(0)-1)/runtime.GOMAXPROCS(0))
	b.Run("deposit", func(b *testing.B) {
		ctx := context.Background()
		kv := newKeyVault(b, keyVaultOpts{})
		bodies := make([][]byte, b.N)
		for i := range bodies {
			bodies[i] = household(uuid.NewString(), ea(keyCommunes[i%4], 1+i%2), i+1)
		}
		head := kv.auditHead()
		var next atomic.Int64
		b.SetParallelism(par)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := kv.b.IngestSynthetic(ctx, actor, bodies[next.Add(1)-1]); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deposits/s")
		b.ReportMetric(float64(kv.auditHead()-head)/b.Elapsed().Seconds(), "events/s")
	})
	for _, tree := range []bool{true, false} {
		name := map[bool]string{true: "store/tree", false: "store/chain-only"}[tree]
		b.Run(name, func(b *testing.B) {
			st, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(b.TempDir(), sqlite.FileName), Create: true})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := appendRawErr(st, 1, tree, legacyEvent); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
		})
	}
}

// TestVerifyAuditLiveLog: verifying a log that keeps growing (events
// appended and checkpoints signed meanwhile, as under a running serve)
// reports no false truncation or missing events.
func TestVerifyAuditLiveLog(t *testing.T) {
	kv := newKeyVault(t, keyVaultOpts{})
	ctx := context.Background()
	for range 50 {
		kv.deposit(ea(communeA, 1))
	}
	if _, err := kv.b.MakeCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	// 300 deposits, each followed by a checkpoint, while the log is
	// verified over and over.
	done := make(chan error, 1)
	go func() {
		defer close(done)
		for i := range 300 {
			if _, err := kv.tryDeposit(kv.b, ea(communeB, 1+i%2)); err != nil {
				done <- err
				return
			}
			if _, err := kv.b.MakeCheckpoint(ctx); err != nil {
				done <- err
				return
			}
		}
	}()
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
		}
		if _, err := broker.VerifyAudit(ctx, kv.store, kv.b.AuditVerifierKey(), nil); err != nil {
			t.Fatalf("verifying a live log: %v", err)
		}
	}
}

// TestVerifyAuditLogGrowsDuringVerification: events appended and a
// checkpoint signed while a verification is under way (here from its
// progress callback, deterministically) are not mistaken for a truncated
// log: the log is checked as it was when verification started.
func TestVerifyAuditLogGrowsDuringVerification(t *testing.T) {
	kv := newKeyVault(t, keyVaultOpts{})
	ctx := context.Background()
	appendRaw(t, kv.store, 25000, true, func(i int64) *audit.Event {
		return &audit.Event{Time: time.Now(), Actor: "cli:test", Action: "test.bulk", Outcome: "ok"}
	})
	if _, err := kv.b.MakeCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	grew := 0
	_, err := broker.VerifyAudit(ctx, kv.store, kv.b.AuditVerifierKey(), func(int64) {
		for range 3 {
			kv.deposit(ea(communeA, 1))
		}
		if _, err := kv.b.MakeCheckpoint(ctx); err != nil {
			t.Error(err)
		}
		grew++
	})
	if err != nil {
		t.Fatalf("verifying while the log grows: %v", err)
	}
	if grew == 0 {
		t.Fatal("the progress callback never ran: the test did not grow the log")
	}
	if _, err := broker.VerifyAudit(ctx, kv.store, kv.b.AuditVerifierKey(), nil); err != nil {
		t.Fatalf("afterwards: %v", err)
	}
}
