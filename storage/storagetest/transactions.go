package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
)

// testUpdateAtomic: an Update whose fn fails keeps none of its writes, of
// any kind, new rows and changed ones alike, and returns fn's error.
func testUpdateAtomic(t *testing.T, s storage.Store) {
	update(t, s, func(tx storage.Tx) error {
		_, err := tx.AppendAudit(appendEvent("setup"))
		return errors.Join(err,
			tx.PutMeta("policy_sha256", "old"),
			tx.InsertUser(&storage.User{Name: "alice", TokenHash: tokenHash("a"), CreatedAt: at(1, 0), Recipient: "age1kept"}),
			tx.InsertSubmission(submission("kept", "E1", 1)),
			tx.PutKey(&storage.Key{Purpose: "ingest", Version: 1, Wrapped: []byte("k1"), CreatedAt: at(1, 0)}),
			tx.AddDeposited("E1", 1),
			tx.PutDataKey(&storage.DataKey{Class: "identifying", Commune: "C1", Version: 1, Wrapped: []byte("kept-dek"), CreatedAt: at(1, 0)}),
			tx.PutDataKey(&storage.DataKey{Class: "identifying", Commune: "C2", Version: 1, Wrapped: []byte("kept-dek2"), CreatedAt: at(1, 0)}),
		)
	})
	before := auditLog(t, s)

	abort := errors.New("storagetest: abort after writing")
	err := s.Update(t.Context(), func(tx storage.Tx) error {
		_, err := tx.AppendAudit(appendEvent("doomed"))
		if err := errors.Join(err,
			tx.PutMeta("policy_sha256", "new"),
			tx.PutMeta("added", "x"),
			tx.InsertAreas([]storage.Area{{Code: "VN", Level: "nation", Name: "Việt Nam"}}),
			tx.InsertUser(&storage.User{Name: "bob", TokenHash: tokenHash("b"), CreatedAt: at(1, 0),
				Grants: []storage.Grant{{Role: "admin", Area: "VN"}}}),
			tx.AddGrant("alice", storage.Grant{Role: "auditor", Area: "VN"}),
			tx.AddGrant("alice", storage.Grant{Role: "researcher", Area: "VN", Project: "p-1"}),
			tx.SetRecipient("alice", "age1doomed"),
			tx.RevokeUser("alice", at(2, 0)),
			tx.MarkSuperseded("kept", "doomed"),
			tx.InsertSubmission(submission("doomed", "E1", 1)),
			tx.AddDeposited("E1", 5),
			tx.AddDeposited("E2", 1),
			tx.PutDataKey(&storage.DataKey{Class: "analytic", Commune: "C1", Version: 1, Wrapped: []byte("dek"), CreatedAt: at(1, 0)}),
			tx.PutKey(&storage.Key{Purpose: "ingest", Version: 2, Wrapped: []byte("k2"), CreatedAt: at(1, 0)}),
			tx.RetireKey("ingest", 1, at(3, 0)),
			tx.RewrapKey("ingest", 1, []byte("k1-rewrapped")),
			tx.RewrapDataKey("identifying", "C1", 1, []byte("rewrapped-dek")),
		); err != nil {
			return fmt.Errorf("a write failed before the deliberate abort: %w", err)
		}
		if n, err := tx.ShredDataKeys("identifying", []string{"C2"}, at(4, 0)); err != nil || n != 1 {
			return fmt.Errorf("a write failed before the deliberate abort: ShredDataKeys = %d, %v", n, err)
		}
		return abort
	})
	if !errors.Is(err, abort) {
		t.Fatalf("Update: err = %v, want %v", err, abort)
	}

	if after := auditLog(t, s); len(after) != len(before) {
		t.Errorf("audit log has %d records after the abort, want %d", len(after), len(before))
	}
	view(t, s, func(tx storage.ReadTx) error {
		var problems []string
		note := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
		if v, err := tx.Meta("policy_sha256"); err != nil || v != "old" {
			note("Meta(policy_sha256) = %q, %v", v, err)
		}
		if _, err := tx.Meta("added"); !errors.Is(err, storage.ErrNotFound) {
			note("Meta(added): err = %v", err)
		}
		if a, err := tx.Areas(); err != nil || len(a) != 0 {
			note("Areas = %v, %v", a, err)
		}
		if _, err := tx.User("bob"); !errors.Is(err, storage.ErrNotFound) {
			note("User(bob): err = %v", err)
		}
		if u, err := tx.User("alice"); err != nil || len(u.Grants) != 0 || !u.RevokedAt.IsZero() || u.Recipient != "age1kept" {
			note("User(alice) = %+v, %v", u, err)
		}
		if _, err := tx.Submission("doomed"); !errors.Is(err, storage.ErrNotFound) {
			note("Submission(doomed): err = %v", err)
		}
		if cur, err := tx.CurrentSubmission("E1", 1); err != nil || cur.ID != "kept" || cur.SupersededBy != "" {
			note("CurrentSubmission(E1, 1) = %+v, %v", cur, err)
		}
		if d, err := tx.Deposited([]string{"E1", "E2"}); err != nil || len(d) != 1 || d["E1"] != 1 {
			note("Deposited = %v, %v", d, err)
		}
		if _, err := tx.DataKey("analytic", "C1", 1); !errors.Is(err, storage.ErrNotFound) {
			note("DataKey: err = %v", err)
		}
		if k, err := tx.Keys("ingest"); err != nil || len(k) != 1 || !k[0].NotAfter.IsZero() || string(k[0].Wrapped) != "k1" {
			note("Keys(ingest) = %+v, %v", k, err)
		}
		if k, err := tx.DataKey("identifying", "C1", 1); err != nil || string(k.Wrapped) != "kept-dek" {
			note("DataKey(identifying, C1, 1) = %+v, %v; want the wrapping before the rewrap", k, err)
		}
		if k, err := tx.DataKey("identifying", "C2", 1); err != nil || string(k.Wrapped) != "kept-dek2" || !k.ShreddedAt.IsZero() {
			note("DataKey(identifying, C2, 1) = %+v, %v; want it live", k, err)
		}
		for _, p := range problems {
			t.Errorf("a write of the aborted Update is visible: %s", p)
		}
		return nil
	})
}

// testReadYourWrites: inside an Update, reads see that Update's writes.
func testReadYourWrites(t *testing.T, s storage.Store) {
	err := s.Update(t.Context(), func(tx storage.Tx) error {
		sub := submission("s1", "E1", 1)
		if err := tx.InsertSubmission(sub); err != nil {
			return err
		}
		if got, err := tx.CurrentSubmission("E1", 1); err != nil || got.ID != "s1" {
			return fmt.Errorf("CurrentSubmission after InsertSubmission = %v, %v", got, err)
		}
		if err := tx.PutMeta("k", "v"); err != nil {
			return err
		}
		if v, err := tx.Meta("k"); err != nil || v != "v" {
			return fmt.Errorf("Meta after PutMeta = %q, %v", v, err)
		}
		if err := tx.AddDeposited("E1", 2); err != nil {
			return err
		}
		if d, err := tx.Deposited([]string{"E1"}); err != nil || d["E1"] != 2 {
			return fmt.Errorf("Deposited after AddDeposited = %v, %v", d, err)
		}
		rec, err := tx.AppendAudit(appendEvent("e0"))
		if err != nil {
			return err
		}
		if h, err := tx.AuditHead(); err != nil || h.Next != 1 || h.ChainHash != rec.ChainHash {
			return fmt.Errorf("AuditHead after AppendAudit = %+v, %v", h, err)
		}
		// A second append in the same Update builds on the first.
		rec2, err := tx.AppendAudit(func(h storage.AuditHead) (storage.AuditRecord, error) {
			if h.Next != 1 || h.ChainHash != rec.ChainHash {
				return storage.AuditRecord{}, fmt.Errorf("second append was given head %+v", h)
			}
			return chain(h, []byte("e1")), nil
		})
		if err != nil {
			return err
		}
		if rec2.Index != 1 {
			return fmt.Errorf("second append stored index %d", rec2.Index)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyChain(auditLog(t, s)); err != nil {
		t.Error(err)
	}
}

// testConcurrency: many writers at once, as the ingest endpoint sees them.
// Every Update appends an audit record built from the head it is given
// and stores a submission naming that record. Writers must be serialized
// so that the log stays gap-free and each record's chain is built on its
// predecessor's; one writer's failures must not take its neighbours (which
// a backend may commit in the same batch) down with it.
func testConcurrency(t *testing.T, s storage.Store) {
	const (
		writers   = 32
		perWriter = 20
		// Writer 0 runs a quarter more Updates, every fifth of which
		// fails after writing, so it too commits perWriter of them.
		failEvery = 5
	)
	abort := errors.New("storagetest: deliberate failure")
	type outcome struct {
		id  string
		rec storage.AuditRecord
		err error
	}
	results := make([][]outcome, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := perWriter
			if w == 0 {
				n = perWriter * failEvery / (failEvery - 1)
			}
			for i := range n {
				fail := w == 0 && i%failEvery == failEvery-1
				id := fmt.Sprintf("w%02d-%02d", w, i)
				var rec storage.AuditRecord
				err := s.Update(t.Context(), func(tx storage.Tx) error {
					r, err := tx.AppendAudit(appendEvent("deposit " + id))
					if err != nil {
						return err
					}
					sub := submission(id, fmt.Sprintf("EA%02d", w), int64(i))
					sub.AuditIndex = r.Index
					if err := tx.InsertSubmission(sub); err != nil {
						return err
					}
					rec = r
					if fail {
						return abort
					}
					return nil
				})
				if fail && !errors.Is(err, abort) || !fail && err != nil {
					t.Errorf("Update %s: err = %v", id, err)
				}
				results[w] = append(results[w], outcome{id, rec, err})
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	recs := auditLog(t, s)
	if len(recs) != writers*perWriter {
		t.Errorf("audit log has %d records, want %d", len(recs), writers*perWriter)
	}
	if err := verifyChain(recs); err != nil {
		t.Fatal(err)
	}
	view(t, s, func(tx storage.ReadTx) error {
		committed := 0
		for _, rs := range results {
			for _, o := range rs {
				got, err := tx.Submission(o.id)
				if o.err != nil {
					if !errors.Is(err, storage.ErrNotFound) {
						t.Errorf("failed Update %s left its submission: err = %v", o.id, err)
					}
					continue
				}
				committed++
				if err != nil {
					t.Errorf("Submission(%s) of a committed Update: %v", o.id, err)
					continue
				}
				i := o.rec.Index
				if i < 0 || i >= int64(len(recs)) {
					t.Errorf("Update %s got audit index %d, outside the log", o.id, i)
					continue
				}
				if !equalRecord(recs[i], o.rec) {
					t.Errorf("record %d is not the one Update %s built", i, o.id)
				}
				if got.AuditIndex != i {
					t.Errorf("Submission(%s).AuditIndex = %d, want %d", o.id, got.AuditIndex, i)
				}
			}
		}
		if committed != len(recs) {
			t.Errorf("%d Updates committed but the log has %d records", committed, len(recs))
		}
		h, err := tx.AuditHead()
		if err != nil {
			return err
		}
		if n := int64(len(recs)); h.Next != n || n > 0 && h.ChainHash != recs[n-1].ChainHash {
			t.Errorf("AuditHead = %+v after %d records", h, n)
		}
		return nil
	})
}

// testViewSnapshot: a View reads one consistent snapshot, even while an
// Update commits in the middle of it, and does not hold that Update up.
func testViewSnapshot(t *testing.T, s storage.Store) {
	update(t, s, func(tx storage.Tx) error {
		_, err := tx.AppendAudit(appendEvent("before"))
		return errors.Join(err, tx.PutMeta("phase", "before"),
			tx.InsertAreas([]storage.Area{{Code: "VN", Level: "nation"}}))
	})
	err := s.View(t.Context(), func(tx storage.ReadTx) error {
		if v, err := tx.Meta("phase"); err != nil || v != "before" {
			return fmt.Errorf("Meta(phase) = %q, %v", v, err)
		}
		done := make(chan error, 1)
		go func() {
			done <- s.Update(context.Background(), func(tx storage.Tx) error {
				_, err := tx.AppendAudit(appendEvent("during"))
				return errors.Join(err, tx.PutMeta("phase", "after"),
					tx.InsertAreas([]storage.Area{{Code: "P01", Parent: "VN", Level: "province"}}),
					tx.InsertSubmission(submission("s1", "E1", 1)))
			})
		}()
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("concurrent Update: %w", err)
			}
		case <-time.After(15 * time.Second):
			return errors.New("an Update did not commit while a View was open: Views must not block writers")
		}
		var problems []string
		if v, err := tx.Meta("phase"); err != nil || v != "before" {
			problems = append(problems, fmt.Sprintf("Meta(phase) = %q, %v", v, err))
		}
		if a, err := tx.Areas(); err != nil || len(a) != 1 {
			problems = append(problems, fmt.Sprintf("Areas = %v, %v", a, err))
		}
		if _, err := tx.Submission("s1"); !errors.Is(err, storage.ErrNotFound) {
			problems = append(problems, fmt.Sprintf("Submission(s1): err = %v", err))
		}
		if h, err := tx.AuditHead(); err != nil || h.Next != 1 {
			problems = append(problems, fmt.Sprintf("AuditHead = %+v, %v", h, err))
		}
		n := 0
		if err := tx.AuditRecords(0, 0, func(storage.AuditRecord) (bool, error) { n++; return true, nil }); err != nil || n != 1 {
			problems = append(problems, fmt.Sprintf("AuditRecords saw %d records, %v", n, err))
		}
		if len(problems) > 0 {
			return fmt.Errorf("the View saw a write committed after its first read: %v", problems)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	view(t, s, func(tx storage.ReadTx) error {
		if v, err := tx.Meta("phase"); err != nil || v != "after" {
			t.Errorf("a View after the Update: Meta(phase) = %q, %v", v, err)
		}
		return nil
	})

	stop := errors.New("storagetest: view callback failed")
	if err := s.View(t.Context(), func(storage.ReadTx) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("View: err = %v, want its callback's %v", err, stop)
	}
}

// testViewCannotWrite: a View is handed a ReadTx. A backend whose ReadTx
// also has the write methods must still refuse the write.
func testViewCannotWrite(t *testing.T, s storage.Store) {
	var writeErr error
	writable := false
	view(t, s, func(rtx storage.ReadTx) error {
		if tx, ok := rtx.(storage.Tx); ok {
			writable = true
			writeErr = tx.PutMeta("sneaked", "in")
		}
		return nil
	})
	if writable && writeErr == nil {
		t.Error("a write through a View's transaction succeeded")
	}
	view(t, s, func(tx storage.ReadTx) error {
		if v, err := tx.Meta("sneaked"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("a write through a View is visible: Meta = %q, %v", v, err)
		}
		return nil
	})
}

// testCanceledContext: an Update whose context is already done reports it
// and writes nothing.
func testCanceledContext(t *testing.T, s storage.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := s.Update(ctx, func(tx storage.Tx) error { return tx.PutMeta("canceled", "yes") })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update with a canceled context: err = %v, want context.Canceled", err)
	}
	view(t, s, func(tx storage.ReadTx) error {
		if v, err := tx.Meta("canceled"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("a canceled Update wrote: Meta = %q, %v", v, err)
		}
		return nil
	})
	// The store is still usable.
	update(t, s, func(tx storage.Tx) error { return tx.PutMeta("after", "yes") })
}

func testClosed(t *testing.T, s storage.Store) {
	update(t, s, func(tx storage.Tx) error { return tx.PutMeta("k", "v") })
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	called := false
	err := s.Update(context.Background(), func(tx storage.Tx) error {
		called = true
		return tx.PutMeta("k", "after close")
	})
	if !errors.Is(err, storage.ErrClosed) || called {
		t.Errorf("Update after Close: err = %v, fn called: %v; want ErrClosed without calling fn", err, called)
	}
	err = s.View(context.Background(), func(storage.ReadTx) error {
		called = true
		return nil
	})
	if !errors.Is(err, storage.ErrClosed) || called {
		t.Errorf("View after Close: err = %v, fn called: %v; want ErrClosed without calling fn", err, called)
	}
}

// testRefusedWriteKeepsTransaction: a write refused with ErrConflict or
// ErrNotFound fails alone. The Update may go on and commit its other
// writes, as code that tries a write and falls back expects; the refused
// writes change nothing. (A backend on which a failed statement aborts the
// whole transaction must detect these refusals without raising them.)
func testRefusedWriteKeepsTransaction(t *testing.T, s storage.Store) {
	alice := &storage.User{Name: "alice", TokenHash: tokenHash("a"), CreatedAt: at(1, 0),
		Grants: []storage.Grant{{Role: "auditor", Area: "VN"}, {Role: "researcher", Area: "VN", Project: "p-1"}}}
	kept := submission("kept", "E1", 1)
	dek := &storage.DataKey{Class: "analytic", Commune: "C1", Version: 1, Wrapped: []byte("dek"), CreatedAt: at(1, 0)}
	key := &storage.Key{Purpose: "ingest", Version: 1, Wrapped: []byte("k1"), CreatedAt: at(1, 0)}
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(
			tx.InsertAreas([]storage.Area{{Code: "VN", Level: "nation", Name: "Việt Nam"}}),
			tx.InsertUser(alice),
			tx.InsertSubmission(kept),
			tx.PutDataKey(dek),
			tx.PutKey(key),
		)
	})

	var problems []string
	err := s.Update(t.Context(), func(tx storage.Tx) error {
		refuse := func(name string, want, err error) {
			if !errors.Is(err, want) {
				problems = append(problems, fmt.Sprintf("%s: err = %v, want %v", name, err, want))
			}
		}
		other := *kept
		other.ID = "other"
		dupDEK, dupKey := *dek, *key
		dupDEK.Wrapped, dupKey.Wrapped = []byte("other"), []byte("other")
		refuse("InsertAreas of an existing code", storage.ErrConflict,
			tx.InsertAreas([]storage.Area{{Code: "VN", Level: "nation", Name: "again"}}))
		refuse("InsertUser of an existing name", storage.ErrConflict,
			tx.InsertUser(&storage.User{Name: "alice", TokenHash: tokenHash("b"), CreatedAt: at(2, 0)}))
		refuse("InsertUser of an existing token hash", storage.ErrConflict,
			tx.InsertUser(&storage.User{Name: "bob", TokenHash: tokenHash("a"), CreatedAt: at(2, 0)}))
		refuse("AddGrant of an existing grant", storage.ErrConflict,
			tx.AddGrant("alice", storage.Grant{Role: "auditor", Area: "VN"}))
		refuse("AddGrant of an existing project grant", storage.ErrConflict,
			tx.AddGrant("alice", storage.Grant{Role: "researcher", Area: "VN", Project: "p-1"}))
		refuse("InsertSubmission of an existing id", storage.ErrConflict, tx.InsertSubmission(kept))
		refuse("InsertSubmission of a current household", storage.ErrConflict, tx.InsertSubmission(&other))
		refuse("PutDataKey of an existing version", storage.ErrConflict, tx.PutDataKey(&dupDEK))
		refuse("PutKey of an existing version", storage.ErrConflict, tx.PutKey(&dupKey))
		refuse("RevokeUser of an unknown user", storage.ErrNotFound, tx.RevokeUser("mallory", at(3, 0)))
		refuse("SetRecipient of an unknown user", storage.ErrNotFound, tx.SetRecipient("mallory", "age1x"))
		refuse("RetireKey of an unknown version", storage.ErrNotFound, tx.RetireKey("ingest", 2, at(3, 0)))
		refuse("MarkSuperseded of an unknown id", storage.ErrNotFound, tx.MarkSuperseded("unknown", "kept"))
		refuse("RewrapDataKey of an unknown version", storage.ErrNotFound, tx.RewrapDataKey("analytic", "C1", 2, []byte("other")))
		refuse("RewrapKey of an unknown version", storage.ErrNotFound, tx.RewrapKey("ingest", 2, []byte("other")))
		// And the transaction goes on.
		_, err := tx.AppendAudit(appendEvent("after the refusals"))
		return errors.Join(err, tx.PutMeta("after", "yes"), tx.InsertSubmission(submission("next", "E1", 2)))
	})
	for _, p := range problems {
		t.Error(p)
	}
	if err != nil {
		t.Fatalf("Update that went on after refused writes: %v", err)
	}
	if n := len(auditLog(t, s)); n != 1 {
		t.Errorf("audit log has %d records, want 1", n)
	}
	view(t, s, func(tx storage.ReadTx) error {
		if v, err := tx.Meta("after"); err != nil || v != "yes" {
			t.Errorf("Meta(after) = %q, %v; want the write after the refusals", v, err)
		}
		if _, err := tx.Submission("next"); err != nil {
			t.Errorf("Submission(next): %v; want the write after the refusals", err)
		}
		if got, err := tx.Submission("kept"); err != nil || diffSubmission(got, kept) != nil {
			t.Errorf("Submission(kept) = %v, %v; a refused write changed it", got, err)
		}
		if _, err := tx.Submission("other"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Submission(other): err = %v; a refused write stored it", err)
		}
		if a, err := tx.Areas(); err != nil || len(a) != 1 || a[0].Name != "Việt Nam" {
			t.Errorf("Areas = %v, %v; a refused write changed them", a, err)
		}
		if u, err := tx.User("alice"); err != nil || diffUser(u, alice) != nil {
			t.Errorf("User(alice) = %+v, %v; a refused write changed it", u, err)
		}
		if _, err := tx.User("bob"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("User(bob): err = %v; a refused write stored it", err)
		}
		if k, err := tx.DataKey("analytic", "C1", 1); err != nil || string(k.Wrapped) != "dek" {
			t.Errorf("DataKey = %+v, %v; a refused write changed it", k, err)
		}
		if k, err := tx.Keys("ingest"); err != nil || len(k) != 1 || string(k[0].Wrapped) != "k1" || !k[0].NotAfter.IsZero() {
			t.Errorf("Keys(ingest) = %+v, %v; a refused write changed them", k, err)
		}
		return nil
	})
}
