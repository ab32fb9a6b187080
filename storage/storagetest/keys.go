package storagetest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
)

// dek is a data key fixture whose wrapped bytes name it, so a row that
// comes back with another row's bytes shows.
func dek(class, commune string, version, hour int) *storage.DataKey {
	return &storage.DataKey{
		Class:     class,
		Commune:   commune,
		Version:   version,
		Wrapped:   fmt.Appendf(nil, "wrapped %s/%s/%d", class, commune, version),
		CreatedAt: at(hour, version),
	}
}

// putDEKs stores keys in one Update.
func putDEKs(t *testing.T, s storage.Store, keys []*storage.DataKey) {
	t.Helper()
	update(t, s, func(tx storage.Tx) error {
		for _, k := range keys {
			if err := tx.PutDataKey(k); err != nil {
				return fmt.Errorf("PutDataKey(%s/%s/%d): %w", k.Class, k.Commune, k.Version, err)
			}
		}
		return nil
	})
}

// shred runs ShredDataKeys in its own Update and returns its count.
func shred(t *testing.T, s storage.Store, class string, communes []string, when time.Time) int {
	t.Helper()
	var n int
	update(t, s, func(tx storage.Tx) error {
		var err error
		n, err = tx.ShredDataKeys(class, communes, when)
		return err
	})
	return n
}

// diffDEK lists how got differs from want.
func diffDEK(got, want *storage.DataKey) []string {
	var d []string
	if got.Class != want.Class || got.Commune != want.Commune || got.Version != want.Version {
		d = append(d, fmt.Sprintf("row %s/%s/%d, want %s/%s/%d", got.Class, got.Commune, got.Version, want.Class, want.Commune, want.Version))
	}
	if !bytes.Equal(got.Wrapped, want.Wrapped) {
		d = append(d, fmt.Sprintf("Wrapped = %q, want %q", got.Wrapped, want.Wrapped))
	}
	for _, e := range []error{
		checkTime("CreatedAt", got.CreatedAt, want.CreatedAt),
		checkTime("ShreddedAt", got.ShreddedAt, want.ShreddedAt),
	} {
		if e != nil {
			d = append(d, e.Error())
		}
	}
	return d
}

// checkDEKs compares every stored data key, read one by one with DataKey,
// with want.
func checkDEKs(t *testing.T, s storage.Store, want []*storage.DataKey) {
	t.Helper()
	view(t, s, func(tx storage.ReadTx) error {
		for _, w := range want {
			got, err := tx.DataKey(w.Class, w.Commune, w.Version)
			if err != nil {
				t.Errorf("DataKey(%s, %s, %d): %v", w.Class, w.Commune, w.Version, err)
				continue
			}
			if d := diffDEK(got, w); d != nil {
				t.Errorf("DataKey(%s, %s, %d): %v", w.Class, w.Commune, w.Version, d)
			}
		}
		return nil
	})
}

// tombstone is what k becomes when shredded at when.
func tombstone(k *storage.DataKey, when time.Time) *storage.DataKey {
	c := *k
	c.Wrapped = nil
	c.ShreddedAt = when
	return &c
}

// keyOrder is the order DataKeys promises: class, commune (bytes), version.
func keyOrder(a, b *storage.DataKey) int {
	return cmp.Or(cmp.Compare(a.Class, b.Class), cmp.Compare(a.Commune, b.Commune), cmp.Compare(a.Version, b.Version))
}

// testDataKeysList: DataKeys lists every row, tombstones too, in (class,
// commune, version) order with strings in byte order and versions as
// numbers, across more rows than a page (backends page by a few hundred);
// it stops exactly where fn says, passes fn's error on, and fn may use
// the transaction, writes included.
func testDataKeysList(t *testing.T, s storage.Store) {
	view(t, s, func(tx storage.ReadTx) error {
		return tx.DataKeys(func(k storage.DataKey) (bool, error) {
			t.Errorf("DataKeys of an empty store gave %s/%s/%d", k.Class, k.Commune, k.Version)
			return true, nil
		})
	})

	// Byte order puts "C1" < "C10" < "C2" < "c0" < "Ç"; a locale's
	// collation would not. Versions 2 < 10 as numbers, not as text.
	communes := []string{"C1", "C10", "C2", "c0", "Ç"}
	for i := range 170 {
		communes = append(communes, fmt.Sprintf("K%03d", i))
	}
	var want []*storage.DataKey
	for _, class := range []string{"identifying", "analytic"} {
		for _, c := range communes {
			for _, v := range []int{10, 1, 2} {
				want = append(want, dek(class, c, v, 6))
			}
		}
	}
	total := len(want) // 1050: past two pages of 500, four of 256
	// Stored in a scrambled order: the order must come from DataKeys.
	scrambled := make([]*storage.DataKey, total)
	for i := range want {
		scrambled[i] = want[(i*7919)%total] // 7919 is prime and does not divide 1050
	}
	putDEKs(t, s, scrambled)
	shredAt := at(12, 345)
	if n := shred(t, s, "identifying", []string{"C2", "K005"}, shredAt); n != 6 {
		t.Fatalf("ShredDataKeys gave %d, want 6", n)
	}
	for i, k := range want {
		if k.Class == "identifying" && (k.Commune == "C2" || k.Commune == "K005") {
			want[i] = tombstone(k, shredAt)
		}
	}
	slices.SortFunc(want, keyOrder)

	view(t, s, func(tx storage.ReadTx) error {
		var got []storage.DataKey
		if err := tx.DataKeys(func(k storage.DataKey) (bool, error) {
			got = append(got, k)
			// The transaction is usable mid-iteration.
			again, err := tx.DataKey(k.Class, k.Commune, k.Version)
			if err != nil {
				return false, fmt.Errorf("DataKey inside DataKeys: %w", err)
			}
			if d := diffDEK(again, &k); d != nil {
				return false, fmt.Errorf("DataKey inside DataKeys differs from the row listed: %v", d)
			}
			return true, nil
		}); err != nil {
			t.Fatalf("DataKeys: %v", err)
		}
		if len(got) != total {
			t.Errorf("DataKeys gave %d rows, want %d", len(got), total)
		}
		for i := range min(len(got), total) {
			if d := diffDEK(&got[i], want[i]); d != nil {
				t.Fatalf("DataKeys row %d: %v", i, d)
			}
		}

		for _, stop := range []int{1, 255, 256, 257, 499, 500, 501, total - 1, total} {
			n := 0
			var last storage.DataKey
			if err := tx.DataKeys(func(k storage.DataKey) (bool, error) {
				n++
				last = k
				return n < stop, nil
			}); err != nil {
				t.Fatalf("DataKeys stopping after %d: %v", stop, err)
			}
			if n != stop || diffDEK(&last, want[stop-1]) != nil {
				t.Errorf("DataKeys stopping after %d: called fn %d times, last %s/%s/%d", stop, n, last.Class, last.Commune, last.Version)
			}
		}

		boom := errors.New("storagetest: fn failed")
		n := 0
		err := tx.DataKeys(func(storage.DataKey) (bool, error) {
			n++
			if n == 600 {
				return true, boom
			}
			return true, nil
		})
		if !errors.Is(err, boom) || n != 600 {
			t.Errorf("DataKeys with fn failing at row 600: err = %v after %d calls, want fn's error after 600", err, n)
		}
		return nil
	})

	// A rewrap pass: list and rewrap in one Update, every live row once.
	var visited, rewrapped int
	update(t, s, func(tx storage.Tx) error {
		visited, rewrapped = 0, 0
		return tx.DataKeys(func(k storage.DataKey) (bool, error) {
			visited++
			if !k.ShreddedAt.IsZero() {
				return true, nil
			}
			rewrapped++
			return true, tx.RewrapDataKey(k.Class, k.Commune, k.Version, append([]byte("re:"), k.Wrapped...))
		})
	})
	if visited != total || rewrapped != total-6 {
		t.Errorf("rewrap pass visited %d rows and rewrapped %d, want %d and %d", visited, rewrapped, total, total-6)
	}
	for _, k := range want {
		if k.ShreddedAt.IsZero() {
			k.Wrapped = append([]byte("re:"), k.Wrapped...)
		}
	}
	checkDEKs(t, s, want)
}

// testRewrap: RewrapDataKey and RewrapKey replace the wrapped bytes of one
// row and nothing else; unknown rows, and shredded data keys, are
// ErrNotFound; empty bytes are refused.
func testRewrap(t *testing.T, s storage.Store) {
	deks := []*storage.DataKey{
		dek("identifying", "C1", 1, 6),
		dek("identifying", "C1", 2, 7),
		dek("analytic", "C1", 1, 8),
		dek("identifying", "C2", 1, 9),
	}
	putDEKs(t, s, deks)
	mk := func(purpose string, v int) *storage.Key {
		return &storage.Key{Purpose: purpose, Version: v, Wrapped: binary(byte(v), 64), CreatedAt: at(5, v)}
	}
	keys := []*storage.Key{mk("ingest", 1), mk("ingest", 2), mk("receipt-signing", 1)}
	keys[0].NotAfter = at(20, 1)
	update(t, s, func(tx storage.Tx) error {
		for _, k := range keys {
			if err := tx.PutKey(k); err != nil {
				return err
			}
		}
		return nil
	})

	update(t, s, func(tx storage.Tx) error {
		if err := tx.RewrapDataKey("identifying", "C1", 2, binary(99, 300)); err != nil {
			return err
		}
		// Read your writes.
		if k, err := tx.DataKey("identifying", "C1", 2); err != nil || !bytes.Equal(k.Wrapped, binary(99, 300)) {
			return fmt.Errorf("DataKey after RewrapDataKey in the same Update = %+v, %v", k, err)
		}
		return tx.RewrapKey("ingest", 1, binary(77, 90))
	})
	deks[1].Wrapped = binary(99, 300)
	checkDEKs(t, s, deks)
	keys[0].Wrapped = binary(77, 90)
	view(t, s, func(tx storage.ReadTx) error {
		for _, purpose := range []string{"ingest", "receipt-signing"} {
			got, err := tx.Keys(purpose)
			if err != nil {
				return err
			}
			for _, g := range got {
				i := slices.IndexFunc(keys, func(k *storage.Key) bool { return k.Purpose == purpose && k.Version == g.Version })
				if i < 0 {
					t.Errorf("Keys(%s) gave version %d, which was never put", purpose, g.Version)
					continue
				}
				w := keys[i]
				if !bytes.Equal(g.Wrapped, w.Wrapped) {
					t.Errorf("Keys(%s) version %d: Wrapped = %.16x…, want %.16x…", purpose, g.Version, g.Wrapped, w.Wrapped)
				}
				if err := errors.Join(checkTime("CreatedAt", g.CreatedAt, w.CreatedAt), checkTime("NotAfter", g.NotAfter, w.NotAfter)); err != nil {
					t.Errorf("Keys(%s) version %d: %v", purpose, g.Version, err)
				}
			}
		}
		return nil
	})

	if n := shred(t, s, "identifying", []string{"C2"}, at(13, 0)); n != 1 {
		t.Fatalf("ShredDataKeys = %d, want 1", n)
	}
	deks[3] = tombstone(deks[3], at(13, 0))
	for _, miss := range []struct {
		class, commune string
		version        int
	}{
		{"identifying", "C1", 0}, // one before the oldest
		{"identifying", "C1", 3}, // one past the newest
		{"analytic", "C1", 2},
		{"analytic", "C2", 1},    // class not stored for that commune
		{"identifying", "C2", 1}, // shredded
		{"Identifying", "C1", 1}, // case matters
	} {
		err := s.Update(t.Context(), func(tx storage.Tx) error {
			return tx.RewrapDataKey(miss.class, miss.commune, miss.version, []byte("new"))
		})
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("RewrapDataKey%v: err = %v, want ErrNotFound", miss, err)
		}
	}
	for _, miss := range []struct {
		purpose string
		version int
	}{{"ingest", 0}, {"ingest", 3}, {"receipt-signing", 2}, {"unknown", 1}} {
		err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.RewrapKey(miss.purpose, miss.version, []byte("new")) })
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("RewrapKey%v: err = %v, want ErrNotFound", miss, err)
		}
	}
	for name, fn := range map[string]func(storage.Tx) error{
		"RewrapDataKey with nil":   func(tx storage.Tx) error { return tx.RewrapDataKey("identifying", "C1", 1, nil) },
		"RewrapDataKey with empty": func(tx storage.Tx) error { return tx.RewrapDataKey("identifying", "C1", 1, []byte{}) },
		"RewrapKey with nil":       func(tx storage.Tx) error { return tx.RewrapKey("ingest", 2, nil) },
		"PutDataKey with nil": func(tx storage.Tx) error {
			return tx.PutDataKey(&storage.DataKey{Class: "analytic", Commune: "C9", Version: 1, CreatedAt: at(1, 0)})
		},
		"PutDataKey of a tombstone": func(tx storage.Tx) error {
			return tx.PutDataKey(tombstone(dek("analytic", "C9", 1, 1), at(2, 0)))
		},
	} {
		if err := s.Update(t.Context(), fn); err == nil {
			t.Errorf("%s: succeeded, want an error (empty wrapped bytes look like a tombstone)", name)
		}
	}
	// The refusals changed nothing.
	checkDEKs(t, s, deks)
	view(t, s, func(tx storage.ReadTx) error {
		if _, err := tx.DataKey("analytic", "C9", 1); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("DataKey(analytic, C9, 1): err = %v; a refused PutDataKey stored it", err)
		}
		if k, err := tx.Keys("ingest"); err != nil || len(k) != 2 || !bytes.Equal(k[0].Wrapped, keys[1].Wrapped) {
			t.Errorf("Keys(ingest) = %+v, %v; a refused RewrapKey changed them", k, err)
		}
		return nil
	})
}

// testShred: ShredDataKeys destroys every version of one class's DEKs for
// the communes given and nothing else, counts what it destroyed, is
// idempotent, leaves tombstones that DataKey returns and PutDataKey
// cannot overwrite.
func testShred(t *testing.T, s storage.Store) {
	var all []*storage.DataKey
	for _, class := range []string{"identifying", "analytic"} {
		for _, c := range []string{"C1", "C2", "C3"} {
			for v := 1; v <= 3; v++ {
				all = append(all, dek(class, c, v, 6))
			}
		}
	}
	putDEKs(t, s, all)
	shredded := func(class string, communes ...string) func(*storage.DataKey) bool {
		return func(k *storage.DataKey) bool { return k.Class == class && slices.Contains(communes, k.Commune) }
	}
	apply := func(match func(*storage.DataKey) bool, when time.Time) {
		for i, k := range all {
			if match(k) && k.ShreddedAt.IsZero() {
				all[i] = tombstone(k, when)
			}
		}
	}

	first := at(12, 345)
	var inTx *storage.DataKey
	update(t, s, func(tx storage.Tx) error {
		// An unknown commune and a repeated one change nothing more.
		n, err := tx.ShredDataKeys("identifying", []string{"C1", "C3", "C9", "C1"}, first)
		if err != nil {
			return err
		}
		if n != 6 {
			return fmt.Errorf("ShredDataKeys(identifying, C1 C3 C9 C1) = %d, want 6", n)
		}
		inTx, err = tx.DataKey("identifying", "C3", 2)
		return err
	})
	apply(shredded("identifying", "C1", "C3"), first)
	if d := diffDEK(inTx, tombstone(dek("identifying", "C3", 2, 6), first)); d != nil {
		t.Errorf("DataKey after ShredDataKeys in the same Update: %v", d)
	}
	checkDEKs(t, s, all)

	if n := shred(t, s, "identifying", []string{"C1", "C3"}, at(14, 0)); n != 0 {
		t.Errorf("second ShredDataKeys of the same communes = %d, want 0", n)
	}
	// C1 keeps its first ShreddedAt; C2 is destroyed now.
	second := at(15, 0)
	if n := shred(t, s, "identifying", []string{"C1", "C2"}, second); n != 3 {
		t.Errorf("ShredDataKeys(identifying, C1 C2) = %d, want 3 (C1 was already shredded)", n)
	}
	apply(shredded("identifying", "C2"), second)
	for _, tc := range []struct {
		class    string
		communes []string
	}{{"identifying", nil}, {"analytic", []string{}}, {"", []string{"C1"}}, {"unknown", []string{"C1", "C2", "C3"}}} {
		if n := shred(t, s, tc.class, tc.communes, at(16, 0)); n != 0 {
			t.Errorf("ShredDataKeys(%q, %q) = %d, want 0", tc.class, tc.communes, n)
		}
	}
	err := s.Update(t.Context(), func(tx storage.Tx) error {
		_, err := tx.ShredDataKeys("analytic", []string{"C1"}, time.Time{})
		return err
	})
	if err == nil {
		t.Error("ShredDataKeys with a zero time succeeded: the zero ShreddedAt means live")
	}
	for _, k := range all {
		dup := dek(k.Class, k.Commune, k.Version, 23)
		err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.PutDataKey(dup) })
		if !errors.Is(err, storage.ErrConflict) {
			t.Errorf("PutDataKey(%s/%s/%d) over a stored or shredded key: err = %v, want ErrConflict", k.Class, k.Commune, k.Version, err)
		}
	}
	checkDEKs(t, s, all)

	// Many communes: past any chunking of the list, with keys at the
	// chunks' edges.
	var many []string
	var edge []*storage.DataKey
	for i := range 1001 {
		c := fmt.Sprintf("M%04d", i)
		many = append(many, c)
		if slices.Contains([]int{0, 255, 256, 499, 500, 501, 999, 1000}, i) {
			edge = append(edge, dek("analytic", c, 1, 7))
		}
	}
	putDEKs(t, s, edge)
	if n := shred(t, s, "analytic", many, first); n != len(edge) {
		t.Errorf("ShredDataKeys of %d communes = %d, want %d", len(many), n, len(edge))
	}
	for i, k := range edge {
		edge[i] = tombstone(k, first)
	}
	checkDEKs(t, s, append(edge, all...))
}

// testCompact: a store that is a storage.Compactor compacts while Updates
// go on, and keeps every row, tombstones too, and its audit log.
func testCompact(t *testing.T, s storage.Store) {
	c, ok := s.(storage.Compactor)
	if !ok {
		t.Skip("not a storage.Compactor")
	}
	if err := c.Compact(t.Context()); err != nil {
		t.Fatalf("Compact of an empty store: %v", err)
	}
	keys := []*storage.DataKey{dek("identifying", "C1", 1, 6), dek("identifying", "C2", 1, 6), dek("analytic", "C1", 1, 6)}
	putDEKs(t, s, keys)
	update(t, s, func(tx storage.Tx) error {
		_, err := tx.AppendAudit(appendEvent("shred"))
		return errors.Join(err, tx.InsertSubmission(submission("s1", "E1", 1)),
			tx.PutKey(&storage.Key{Purpose: "ingest", Version: 1, Wrapped: []byte("k1"), CreatedAt: at(1, 0)}))
	})
	if n := shred(t, s, "identifying", []string{"C1"}, at(12, 0)); n != 1 {
		t.Fatalf("ShredDataKeys = %d, want 1", n)
	}
	keys[0] = tombstone(keys[0], at(12, 0))
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(tx.RewrapDataKey("analytic", "C1", 1, []byte("rewrapped")), tx.RewrapKey("ingest", 1, []byte("k1'")))
	})
	keys[2].Wrapped = []byte("rewrapped")

	// Updates go on while Compact runs, and all of them commit.
	const writers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				errs <- s.Update(t.Context(), func(tx storage.Tx) error {
					return tx.PutDataKey(dek("analytic", fmt.Sprintf("W%d", w), i+1, 9))
				})
			}
		})
	}
	for range 2 {
		if err := c.Compact(t.Context()); err != nil {
			t.Errorf("Compact: %v", err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Update during Compact: %v", err)
		}
	}
	checkDEKs(t, s, keys)
	view(t, s, func(tx storage.ReadTx) error {
		n := 0
		if err := tx.DataKeys(func(storage.DataKey) (bool, error) { n++; return true, nil }); err != nil {
			return err
		}
		if want := len(keys) + writers*each; n != want {
			t.Errorf("DataKeys after Compact gave %d rows, want %d", n, want)
		}
		if got, err := tx.Submission("s1"); err != nil || diffSubmission(got, submission("s1", "E1", 1)) != nil {
			t.Errorf("Submission(s1) after Compact = %+v, %v", got, err)
		}
		if k, err := tx.Keys("ingest"); err != nil || len(k) != 1 || string(k[0].Wrapped) != "k1'" {
			t.Errorf("Keys(ingest) after Compact = %+v, %v", k, err)
		}
		return nil
	})
	if err := verifyChain(auditLog(t, s)); err != nil {
		t.Errorf("audit log after Compact: %v", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Compact(ctx); err == nil {
		t.Error("Compact with a canceled context succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Compact(t.Context()); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Compact after Close: err = %v, want ErrClosed", err)
	}
}
