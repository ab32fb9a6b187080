package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/censusvault/censusvault/storage"
)

func testAuditAppend(t *testing.T, s storage.Store) {
	view(t, s, func(tx storage.ReadTx) error {
		if h, err := tx.AuditHead(); err != nil || h != (storage.AuditHead{}) {
			t.Errorf("AuditHead of an empty log = %+v, %v; want {0, zero}", h, err)
		}
		return nil
	})
	var want []storage.AuditRecord
	var heads []storage.AuditHead
	for i := range 4 {
		var stored storage.AuditRecord
		update(t, s, func(tx storage.Tx) error {
			var err error
			stored, err = tx.AppendAudit(func(h storage.AuditHead) (storage.AuditRecord, error) {
				heads = append(heads[:i], h)
				return chain(h, fmt.Appendf(nil, "event %d", i)), nil
			})
			return err
		})
		if stored.Index != int64(i) {
			t.Errorf("AppendAudit #%d returned index %d", i, stored.Index)
		}
		want = append(want, stored)
	}
	for i, h := range heads {
		wantHead := storage.AuditHead{Next: int64(i)}
		if i > 0 {
			wantHead.ChainHash = want[i-1].ChainHash
		}
		if h != wantHead {
			t.Errorf("append #%d was given head %+v, want %+v", i, h, wantHead)
		}
	}
	got := auditLog(t, s)
	if !slices.EqualFunc(got, want, equalRecord) {
		t.Errorf("AuditRecords = %v, want %v", got, want)
	}
	if err := verifyChain(got); err != nil {
		t.Error(err)
	}
	view(t, s, func(tx storage.ReadTx) error {
		h, err := tx.AuditHead()
		if err != nil {
			return err
		}
		if wantHead := (storage.AuditHead{Next: 4, ChainHash: want[3].ChainHash}); h != wantHead {
			t.Errorf("AuditHead = %+v, want %+v", h, wantHead)
		}
		return nil
	})
}

// testAuditRejects: a record that is not built on the head it was given,
// or a build that fails, stores nothing, not even the Update's other
// writes.
func testAuditRejects(t *testing.T, s storage.Store) {
	buildErr := errors.New("storagetest: cannot encode event")
	try := func(name string, build func(storage.AuditHead) (storage.AuditRecord, error), wantErr error) {
		t.Helper()
		before := auditLog(t, s)
		err := s.Update(t.Context(), func(tx storage.Tx) error {
			if err := tx.PutMeta("rejected", name); err != nil {
				return err
			}
			_, err := tx.AppendAudit(build)
			return err
		})
		switch {
		case err == nil:
			t.Errorf("%s: Update succeeded", name)
		case wantErr != nil && !errors.Is(err, wantErr):
			t.Errorf("%s: err = %v, want %v", name, err, wantErr)
		}
		if after := auditLog(t, s); !slices.EqualFunc(after, before, equalRecord) {
			t.Errorf("%s: the log changed from %d to %d records", name, len(before), len(after))
		}
		view(t, s, func(tx storage.ReadTx) error {
			if v, err := tx.Meta("rejected"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("%s: the Update's other write is visible: Meta = %q, %v", name, v, err)
			}
			return nil
		})
	}
	shifted := func(delta int64) func(storage.AuditHead) (storage.AuditRecord, error) {
		return func(h storage.AuditHead) (storage.AuditRecord, error) {
			r := chain(h, []byte("misplaced"))
			r.Index += delta
			return r, nil
		}
	}
	failing := func(storage.AuditHead) (storage.AuditRecord, error) { return storage.AuditRecord{}, buildErr }

	// On the empty log, then past two records: n-1 and n+1 around head.Next.
	for _, stage := range []string{"empty log", "two records"} {
		try(stage+": index head.Next-1", shifted(-1), nil)
		try(stage+": index head.Next+1", shifted(+1), nil)
		try(stage+": build fails", failing, buildErr)
		if stage == "empty log" {
			update(t, s, func(tx storage.Tx) error {
				_, err1 := tx.AppendAudit(appendEvent("first"))
				_, err2 := tx.AppendAudit(appendEvent("second"))
				return errors.Join(err1, err2)
			})
		}
	}
	got := auditLog(t, s)
	if len(got) != 2 {
		t.Fatalf("log has %d records, want 2", len(got))
	}
	if err := verifyChain(got); err != nil {
		t.Error(err)
	}
}

func testAuditRecords(t *testing.T, s storage.Store) {
	const n = 6
	update(t, s, func(tx storage.Tx) error {
		for i := range n {
			if _, err := tx.AppendAudit(appendEvent(fmt.Sprintf("event %d", i))); err != nil {
				return err
			}
		}
		return nil
	})
	indexes := func(from int64, limit, stopAfter int) ([]int64, error) {
		var got []int64
		err := s.View(t.Context(), func(tx storage.ReadTx) error {
			return tx.AuditRecords(from, limit, func(r storage.AuditRecord) (bool, error) {
				got = append(got, r.Index)
				return stopAfter <= 0 || len(got) < stopAfter, nil
			})
		})
		return got, err
	}
	for _, tc := range []struct {
		from      int64
		limit     int
		stopAfter int
		want      []int64
	}{
		{0, 0, 0, []int64{0, 1, 2, 3, 4, 5}},
		{0, -1, 0, []int64{0, 1, 2, 3, 4, 5}},
		{0, 1, 0, []int64{0}},
		{0, 2, 0, []int64{0, 1}},
		{2, 0, 0, []int64{2, 3, 4, 5}},
		{2, 3, 0, []int64{2, 3, 4}},
		{4, 3, 0, []int64{4, 5}},
		{n - 1, 0, 0, []int64{n - 1}},
		{n, 0, 0, nil},
		{n + 1, 0, 0, nil},
		{0, 0, 1, []int64{0}},
		{1, 0, 3, []int64{1, 2, 3}},
		{1, 2, 3, []int64{1, 2}},
	} {
		got, err := indexes(tc.from, tc.limit, tc.stopAfter)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("AuditRecords(from %d, limit %d, stop after %d) = %v, %v; want %v",
				tc.from, tc.limit, tc.stopAfter, got, err, tc.want)
		}
	}

	stop := errors.New("storagetest: reader gave up")
	calls := 0
	err := s.View(t.Context(), func(tx storage.ReadTx) error {
		return tx.AuditRecords(0, 0, func(storage.AuditRecord) (bool, error) {
			calls++
			return true, stop
		})
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("AuditRecords with a failing callback: err = %v after %d calls, want its error after 1", err, calls)
	}

	recs := auditLog(t, s)
	if err := verifyChain(recs); err != nil {
		t.Error(err)
	}
	for i, r := range recs {
		if want := fmt.Sprintf("event %d", i); string(r.Event) != want {
			t.Errorf("record %d event = %q, want %q", i, r.Event, want)
		}
	}
}

func equalRecord(a, b storage.AuditRecord) bool {
	return a.Index == b.Index && string(a.Event) == string(b.Event) &&
		a.LeafHash == b.LeafHash && a.ChainHash == b.ChainHash
}
