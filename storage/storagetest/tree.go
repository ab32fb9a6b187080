package storagetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
)

// treeHash is the fixture hash stored at stored-hash index i: distinct
// per index, so a hash read from the wrong index shows.
func treeHash(i int64) [32]byte {
	return sha256.Sum256(fmt.Appendf(nil, "stored hash %d", i))
}

// treeHashes are the fixture hashes at first, first+1, …, first+n-1.
func treeHashes(first int64, n int) [][32]byte {
	hs := make([][32]byte, n)
	for i := range hs {
		hs[i] = treeHash(first + int64(i))
	}
	return hs
}

// hashesPerLeaf is how many hashes tlog stores with leaf i: its own and
// one per subtree it completes (1 + the trailing one bits of i).
func hashesPerLeaf(i int64) int {
	return 1 + bits.TrailingZeros64(^uint64(i))
}

// appendLeaf appends event with the hashes a tree would store with it,
// at the next stored-hash index.
func appendLeaf(tx storage.Tx, event string) (storage.AuditRecord, error) {
	next, err := tx.AuditHashCount()
	if err != nil {
		return storage.AuditRecord{}, err
	}
	return tx.AppendAudit(func(h storage.AuditHead) (storage.AuditRecord, error) {
		r := chain(h, []byte(event))
		r.HashIndex = next
		r.Hashes = treeHashes(next, hashesPerLeaf(h.Next))
		return r, nil
	})
}

// hashCount reads AuditHashCount in a View.
func hashCount(t *testing.T, s storage.Store) int64 {
	t.Helper()
	var n int64
	view(t, s, func(tx storage.ReadTx) (err error) {
		n, err = tx.AuditHashCount()
		return err
	})
	return n
}

// checkHashes checks that indexes 0..n-1 hold their fixture hashes and
// that n holds none.
func checkHashes(t *testing.T, s storage.Store, n int64) {
	t.Helper()
	if got := hashCount(t, s); got != n {
		t.Errorf("AuditHashCount = %d, want %d", got, n)
	}
	all := make([]int64, n)
	for i := range all {
		all[i] = int64(i)
	}
	view(t, s, func(tx storage.ReadTx) error {
		got, err := tx.AuditHashes(all)
		if err != nil {
			t.Errorf("AuditHashes(0..%d): %v", n-1, err)
			return nil
		}
		if want := treeHashes(0, int(n)); !slices.Equal(got, want) {
			t.Errorf("AuditHashes(0..%d) differ from the stored fixtures", n-1)
		}
		if _, err := tx.AuditHashes([]int64{n}); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("AuditHashes(%d), past the last stored: err = %v, want ErrNotFound", n, err)
		}
		return nil
	})
}

// testAuditHashes: the hashes of a record are stored with it and read
// back by index, in the order asked, duplicates included; a missing
// index is ErrNotFound naming the first one missing; the count is the
// next index; a record without hashes stores none; a record whose
// HashIndex is taken or leaves a gap stores nothing at all.
func testAuditHashes(t *testing.T, s storage.Store) {
	if n := hashCount(t, s); n != 0 {
		t.Fatalf("AuditHashCount of an empty store = %d", n)
	}
	view(t, s, func(tx storage.ReadTx) error {
		if hs, err := tx.AuditHashes(nil); err != nil || len(hs) != 0 {
			t.Errorf("AuditHashes(none) = %d hashes, %v; want none, nil", len(hs), err)
		}
		if _, err := tx.AuditHashes([]int64{0}); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("AuditHashes([0]) of an empty store: err = %v, want ErrNotFound", err)
		}
		return nil
	})
	// Three records in one Update (the hash index moves within it, and
	// the Update reads its own hashes), then five in their own.
	var total int64
	update(t, s, func(tx storage.Tx) error {
		for i := range 3 {
			r, err := appendLeaf(tx, fmt.Sprintf("event %d", i))
			if err != nil {
				return err
			}
			if r.HashIndex != total || len(r.Hashes) != hashesPerLeaf(int64(i)) {
				return fmt.Errorf("AppendAudit returned HashIndex %d with %d hashes, want %d with %d",
					r.HashIndex, len(r.Hashes), total, hashesPerLeaf(int64(i)))
			}
			total += int64(len(r.Hashes))
			got, err := tx.AuditHashes([]int64{total - 1})
			if err != nil || got[0] != treeHash(total-1) {
				return fmt.Errorf("the Update does not read the hash it stored at %d: %v", total-1, err)
			}
		}
		return nil
	})
	for i := 3; i < 8; i++ {
		update(t, s, func(tx storage.Tx) error {
			r, err := appendLeaf(tx, fmt.Sprintf("event %d", i))
			total += int64(len(r.Hashes))
			return err
		})
	}
	// tlog stores 2n - popcount(n) hashes for n leaves.
	if want := int64(2*8 - bits.OnesCount(8)); total != want {
		t.Fatalf("8 leaves stored %d hashes, want %d", total, want)
	}
	checkHashes(t, s, total)

	view(t, s, func(tx storage.ReadTx) error {
		ask := []int64{9, 0, 9, 14, 3, 0}
		got, err := tx.AuditHashes(ask)
		if err != nil {
			t.Errorf("AuditHashes(%v): %v", ask, err)
			return nil
		}
		for i, x := range ask {
			if got[i] != treeHash(x) {
				t.Errorf("AuditHashes(%v)[%d] is not the hash at %d", ask, i, x)
			}
		}
		for _, tc := range []struct {
			ask     []int64
			missing int64
		}{
			{[]int64{total}, total},
			{[]int64{0, 1, total + 7, 2, total}, total + 7},
			{[]int64{-1}, -1},
			{[]int64{3, 1 << 40}, 1 << 40},
		} {
			_, err := tx.AuditHashes(tc.ask)
			if !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), fmt.Sprintf("index %d", tc.missing)) {
				t.Errorf("AuditHashes(%v): err = %v, want ErrNotFound naming index %d", tc.ask, err, tc.missing)
			}
		}
		return nil
	})

	// A record without hashes (a caller from before the tree) stores
	// none; the next index is unchanged.
	update(t, s, func(tx storage.Tx) error {
		_, err := tx.AppendAudit(appendEvent("no hashes"))
		return err
	})
	if n := hashCount(t, s); n != total {
		t.Errorf("after a record without hashes AuditHashCount = %d, want %d", n, total)
	}

	// Refused records store nothing: neither the event nor any hash.
	before := auditLog(t, s)
	for _, tc := range []struct {
		name      string
		hashIndex int64
		event     string
		pruned    bool
		conflict  bool
	}{
		{"HashIndex taken", total - 1, "x", false, true},
		{"HashIndex 0 taken", 0, "x", false, true},
		{"HashIndex leaves a gap", total + 1, "x", false, false},
		{"HashIndex negative", -1, "x", false, false},
		{"empty event", total, "", false, false},
		{"marked pruned", total, "x", true, false},
	} {
		err := s.Update(t.Context(), func(tx storage.Tx) error {
			_, err := tx.AppendAudit(func(h storage.AuditHead) (storage.AuditRecord, error) {
				r := chain(h, []byte(tc.event))
				r.HashIndex, r.Hashes, r.Pruned = tc.hashIndex, treeHashes(tc.hashIndex, 2), tc.pruned
				return r, nil
			})
			return err
		})
		switch {
		case err == nil:
			t.Errorf("%s: AppendAudit succeeded", tc.name)
		case tc.conflict != errors.Is(err, storage.ErrConflict):
			t.Errorf("%s: err = %v; ErrConflict %v", tc.name, err, tc.conflict)
		}
	}
	if after := auditLog(t, s); !slices.EqualFunc(after, before, equalRecord) {
		t.Errorf("refused appends changed the log from %d to %d records", len(before), len(after))
	}
	checkHashes(t, s, total)

	// An Update that fails after appending keeps none of its hashes, and
	// the next one starts where the failed one did.
	abort := errors.New("storagetest: abort")
	err := s.Update(t.Context(), func(tx storage.Tx) error {
		if _, err := appendLeaf(tx, "rolled back"); err != nil {
			return err
		}
		return abort
	})
	if !errors.Is(err, abort) {
		t.Fatalf("Update = %v, want its own error", err)
	}
	checkHashes(t, s, total)
	update(t, s, func(tx storage.Tx) error {
		r, err := appendLeaf(tx, "after the rollback")
		if err == nil && r.HashIndex != total {
			err = fmt.Errorf("HashIndex %d, want %d", r.HashIndex, total)
		}
		total += int64(len(r.Hashes))
		return err
	})
	checkHashes(t, s, total)
	if err := verifyChain(auditLog(t, s)); err != nil {
		t.Error(err)
	}
}

// testAuditHashesConcurrent: concurrent Updates append records with
// hashes, a third of them failing after their append (with group commit,
// inside a batch beside the others): the hashes stay dense and each
// committed record's hashes are where it was told.
func testAuditHashesConcurrent(t *testing.T, s storage.Store) {
	const writers, each = 6, 8
	abort := errors.New("storagetest: abort")
	var mu sync.Mutex
	committed := map[int64]int{} // HashIndex → number of hashes
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				var rec storage.AuditRecord
				fail := (w+i)%3 == 0
				err := s.Update(t.Context(), func(tx storage.Tx) error {
					var err error
					if rec, err = appendLeaf(tx, fmt.Sprintf("writer %d event %d", w, i)); err != nil {
						return err
					}
					if fail {
						return abort
					}
					return nil
				})
				switch {
				case fail && !errors.Is(err, abort):
					errs <- fmt.Errorf("failing Update = %v, want its own error", err)
				case !fail && err != nil:
					errs <- err
				case !fail:
					mu.Lock()
					committed[rec.HashIndex] = len(rec.Hashes)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// appendLeaf sized each record's hashes by its leaf index, so the
	// committed records, in log order, must tile 0..count exactly.
	recs := auditLog(t, s)
	var next int64
	for _, r := range recs {
		n, ok := committed[next]
		if !ok {
			t.Fatalf("record %d: no committed record's hashes start at %d", r.Index, next)
		}
		if n != hashesPerLeaf(r.Index) {
			t.Errorf("record %d stored %d hashes, want %d", r.Index, n, hashesPerLeaf(r.Index))
		}
		next += int64(n)
	}
	if len(recs) != len(committed) {
		t.Errorf("%d records, %d committed appends", len(recs), len(committed))
	}
	checkHashes(t, s, next)
}

// testPutAuditHashes: a log written without hashes gets them backfilled
// in chunks; an index already stored is ErrConflict, a gap an error,
// and neither stores anything; appends then go on after the backfill.
func testPutAuditHashes(t *testing.T, s storage.Store) {
	update(t, s, func(tx storage.Tx) error {
		for i := range 5 {
			if _, err := tx.AppendAudit(appendEvent(fmt.Sprintf("old event %d", i))); err != nil {
				return err
			}
		}
		return nil
	})
	if n := hashCount(t, s); n != 0 {
		t.Fatalf("AuditHashCount of a log without hashes = %d", n)
	}
	// 300 hashes: more than one statement's worth in a backend that
	// chunks them.
	update(t, s, func(tx storage.Tx) error {
		if err := tx.PutAuditHashes(0, treeHashes(0, 3)); err != nil {
			return err
		}
		if err := tx.PutAuditHashes(3, treeHashes(3, 297)); err != nil {
			return err
		}
		if n, err := tx.AuditHashCount(); err != nil || n != 300 {
			return fmt.Errorf("AuditHashCount in the backfilling Update = %d, %v; want 300", n, err)
		}
		return tx.PutAuditHashes(300, nil) // nothing to do
	})
	checkHashes(t, s, 300)

	for _, tc := range []struct {
		name     string
		first    int64
		conflict bool
	}{
		{"first stored", 0, true},
		{"last stored", 299, true},
		{"gap", 301, false},
		{"negative", -1, false},
	} {
		err := s.Update(t.Context(), func(tx storage.Tx) error {
			return tx.PutAuditHashes(tc.first, treeHashes(tc.first+1000, 4))
		})
		switch {
		case err == nil:
			t.Errorf("PutAuditHashes(%s, %d) succeeded", tc.name, tc.first)
		case tc.conflict != errors.Is(err, storage.ErrConflict):
			t.Errorf("PutAuditHashes(%s, %d): err = %v; ErrConflict %v", tc.name, tc.first, err, tc.conflict)
		}
	}
	// The refused call failed alone: the Update that made it can go on.
	update(t, s, func(tx storage.Tx) error {
		if err := tx.PutAuditHashes(1, treeHashes(1000, 1)); !errors.Is(err, storage.ErrConflict) {
			return fmt.Errorf("PutAuditHashes over index 1: err = %v, want ErrConflict", err)
		}
		return tx.PutAuditHashes(300, treeHashes(300, 2))
	})
	checkHashes(t, s, 302)
	update(t, s, func(tx storage.Tx) error {
		r, err := appendLeaf(tx, "after the backfill")
		if err == nil && r.HashIndex != 302 {
			err = fmt.Errorf("HashIndex %d, want 302", r.HashIndex)
		}
		return err
	})
	checkHashes(t, s, 302+int64(hashesPerLeaf(5)))
}

// testCheckpoints: checkpoints are stored once per size and found by
// size, as the latest, and as the smallest covering an index.
func testCheckpoints(t *testing.T, s storage.Store) {
	note := func(size int64) []byte { return append(binary(byte(size), 40), fmt.Sprintf("size %d", size)...) }
	view(t, s, func(tx storage.ReadTx) error {
		if _, err := tx.LatestCheckpoint(); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("LatestCheckpoint of an empty store: err = %v, want ErrNotFound", err)
		}
		if _, err := tx.CheckpointCovering(0); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("CheckpointCovering(0) of an empty store: err = %v, want ErrNotFound", err)
		}
		if _, err := tx.Checkpoint(1); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Checkpoint(1) of an empty store: err = %v, want ErrNotFound", err)
		}
		return nil
	})
	update(t, s, func(tx storage.Tx) error {
		for i := range 10 {
			if _, err := tx.AppendAudit(appendEvent(fmt.Sprintf("event %d", i))); err != nil {
				return err
			}
		}
		return nil
	})
	when := map[int64]int{7: 1, 3: 2, 10: 3}
	for _, size := range []int64{7, 3, 10} {
		update(t, s, func(tx storage.Tx) error { return tx.PutCheckpoint(size, note(size), at(when[size], 123456789)) })
	}
	read := func(fn func(storage.ReadTx) (*storage.Checkpoint, error)) (*storage.Checkpoint, error) {
		var c *storage.Checkpoint
		err := s.View(t.Context(), func(tx storage.ReadTx) (err error) {
			c, err = fn(tx)
			return err
		})
		return c, err
	}
	check := func(what string, c *storage.Checkpoint, err error, size int64) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v, want the checkpoint of size %d", what, err, size)
			return
		}
		if c.Size != size || !bytes.Equal(c.Note, note(size)) {
			t.Errorf("%s = size %d note %q, want size %d note %q", what, c.Size, c.Note, size, note(size))
		}
		if err := checkTime("CreatedAt", c.CreatedAt, at(when[size], 123456789)); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	for _, size := range []int64{3, 7, 10} {
		c, err := read(func(tx storage.ReadTx) (*storage.Checkpoint, error) { return tx.Checkpoint(size) })
		check(fmt.Sprintf("Checkpoint(%d)", size), c, err, size)
	}
	c, err := read(func(tx storage.ReadTx) (*storage.Checkpoint, error) { return tx.LatestCheckpoint() })
	check("LatestCheckpoint", c, err, 10)
	for _, tc := range []struct{ index, size int64 }{
		{-1, 3}, {0, 3}, {2, 3}, {3, 7}, {6, 7}, {7, 10}, {9, 10}, {10, 0}, {11, 0},
	} {
		c, err := read(func(tx storage.ReadTx) (*storage.Checkpoint, error) { return tx.CheckpointCovering(tc.index) })
		if tc.size == 0 {
			if !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("CheckpointCovering(%d) = %+v, %v; want ErrNotFound", tc.index, c, err)
			}
			continue
		}
		check(fmt.Sprintf("CheckpointCovering(%d)", tc.index), c, err, tc.size)
	}
	for _, size := range []int64{1, 5, 11} {
		if _, err := read(func(tx storage.ReadTx) (*storage.Checkpoint, error) { return tx.Checkpoint(size) }); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Checkpoint(%d), never put: err = %v, want ErrNotFound", size, err)
		}
	}

	// Refused: a size that exists (ErrConflict, the first note kept), a
	// tree larger than the log or empty, an empty note, a zero time.
	for _, tc := range []struct {
		name     string
		size     int64
		note     []byte
		zero     bool
		conflict bool
	}{
		{"size exists", 7, []byte("another note"), false, true},
		{"larger than the log", 11, []byte("n"), false, false},
		{"empty tree", 0, []byte("n"), false, false},
		{"negative size", -3, []byte("n"), false, false},
		{"empty note", 8, nil, false, false},
		{"zero time", 8, []byte("n"), true, false},
	} {
		when := at(5, 0)
		if tc.zero {
			when = time.Time{}
		}
		err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.PutCheckpoint(tc.size, tc.note, when) })
		switch {
		case err == nil:
			t.Errorf("PutCheckpoint(%s) succeeded", tc.name)
		case tc.conflict != errors.Is(err, storage.ErrConflict):
			t.Errorf("PutCheckpoint(%s): err = %v; ErrConflict %v", tc.name, err, tc.conflict)
		}
	}
	c, err = read(func(tx storage.ReadTx) (*storage.Checkpoint, error) { return tx.Checkpoint(7) })
	check("Checkpoint(7) after a refused second put", c, err, 7)
	if _, err := read(func(tx storage.ReadTx) (*storage.Checkpoint, error) { return tx.Checkpoint(8) }); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Checkpoint(8) after refused puts: err = %v, want ErrNotFound", err)
	}
	// A refused put fails alone; the Update goes on and reads its own.
	update(t, s, func(tx storage.Tx) error {
		if err := tx.PutCheckpoint(3, note(3), at(1, 0)); !errors.Is(err, storage.ErrConflict) {
			return fmt.Errorf("PutCheckpoint(3) again: err = %v, want ErrConflict", err)
		}
		when[9] = 4
		if err := tx.PutCheckpoint(9, note(9), at(4, 123456789)); err != nil {
			return err
		}
		c, err := tx.CheckpointCovering(8)
		if err != nil || c.Size != 9 {
			return fmt.Errorf("CheckpointCovering(8) in the Update that put 9 = %+v, %v", c, err)
		}
		return nil
	})
	c, err = read(func(tx storage.ReadTx) (*storage.Checkpoint, error) { return tx.CheckpointCovering(7) })
	check("CheckpointCovering(7) after putting 9", c, err, 9)
}

// testPruneAuditEvents: pruning removes the bodies below an index and
// nothing else; pruned records read as Pruned with no event; it is
// idempotent, and the log goes on.
func testPruneAuditEvents(t *testing.T, s storage.Store) {
	update(t, s, func(tx storage.Tx) error {
		for i := range 6 {
			if _, err := appendLeaf(tx, fmt.Sprintf("event %d", i)); err != nil {
				return err
			}
		}
		return nil
	})
	before := auditLog(t, s)
	hashes := hashCount(t, s)
	var head storage.AuditHead
	view(t, s, func(tx storage.ReadTx) (err error) { head, err = tx.AuditHead(); return err })

	prune := func(before int64) int64 {
		t.Helper()
		var n int64
		update(t, s, func(tx storage.Tx) (err error) { n, err = tx.PruneAuditEvents(before); return err })
		return n
	}
	// checkLog checks that the first pruned records are pruned and the
	// rest untouched.
	checkLog := func(pruned int) {
		t.Helper()
		got := auditLog(t, s)
		if len(got) != len(before) {
			t.Fatalf("%d records after pruning, want %d", len(got), len(before))
		}
		for i, r := range got {
			b := before[i]
			if r.Index != b.Index || r.LeafHash != b.LeafHash || r.ChainHash != b.ChainHash {
				t.Errorf("record %d: index or hashes changed by pruning", i)
			}
			if i < pruned {
				if !r.Pruned || r.Event != nil {
					t.Errorf("record %d: Pruned %v, event %q; want pruned with no event", i, r.Pruned, r.Event)
				}
			} else if r.Pruned || !bytes.Equal(r.Event, b.Event) {
				t.Errorf("record %d: Pruned %v, event %q; want untouched %q", i, r.Pruned, r.Event, b.Event)
			}
		}
		checkHashes(t, s, hashes)
		var h storage.AuditHead
		view(t, s, func(tx storage.ReadTx) (err error) { h, err = tx.AuditHead(); return err })
		if h != head {
			t.Errorf("AuditHead after pruning = %+v, want %+v", h, head)
		}
	}

	for _, b := range []int64{0, -1} {
		if n := prune(b); n != 0 {
			t.Errorf("PruneAuditEvents(%d) = %d, want 0", b, n)
		}
	}
	checkLog(0)
	// A prune in an Update that fails is undone.
	abort := errors.New("storagetest: abort")
	if err := s.Update(t.Context(), func(tx storage.Tx) error {
		if n, err := tx.PruneAuditEvents(6); err != nil || n != 6 {
			return fmt.Errorf("PruneAuditEvents(6) = %d, %v; want 6", n, err)
		}
		return abort
	}); !errors.Is(err, abort) {
		t.Fatalf("Update = %v, want its own error", err)
	}
	checkLog(0)

	if n := prune(3); n != 3 {
		t.Errorf("PruneAuditEvents(3) = %d, want 3", n)
	}
	checkLog(3)
	if n := prune(3); n != 0 {
		t.Errorf("PruneAuditEvents(3) again = %d, want 0", n)
	}
	if n := prune(2); n != 0 {
		t.Errorf("PruneAuditEvents(2) after 3 = %d, want 0", n)
	}
	checkLog(3)
	if n := prune(5); n != 2 {
		t.Errorf("PruneAuditEvents(5) after 3 = %d, want 2", n)
	}
	checkLog(5)

	// The log goes on: a new record chains onto the pruned ones.
	update(t, s, func(tx storage.Tx) error {
		_, err := appendLeaf(tx, "after pruning")
		return err
	})
	got := auditLog(t, s)
	if len(got) != 7 || got[6].Pruned || string(got[6].Event) != "after pruning" ||
		got[6].ChainHash != sha256.Sum256(append(got[5].ChainHash[:], got[6].LeafHash[:]...)) {
		t.Errorf("the record appended after pruning is %+v", got[len(got)-1])
	}
	// Past the head prunes what exists.
	if n := prune(100); n != 2 {
		t.Errorf("PruneAuditEvents(100) of 7 records, 5 pruned = %d, want 2", n)
	}
	view(t, s, func(tx storage.ReadTx) error {
		n := 0
		err := tx.AuditRecords(0, 0, func(r storage.AuditRecord) (bool, error) {
			if !r.Pruned || r.Event != nil {
				t.Errorf("record %d not pruned after PruneAuditEvents(100)", r.Index)
			}
			n++
			return true, nil
		})
		if err != nil || n != 7 {
			t.Errorf("AuditRecords after pruning everything: %d records, %v; want 7", n, err)
		}
		return nil
	})
}
