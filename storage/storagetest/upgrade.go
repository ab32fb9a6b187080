package storagetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
)

// IDs are the ids of ms, in order, joined by spaces.
func IDs(ms []storage.SubmissionMeta) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.ID)
	}
	return strings.Join(s, " ")
}

// CheckUpgradeFromV7 checks a store upgraded from a database at schema
// version 7 that held one audit record (index 0) and two submissions of
// E1/C1: s1 (audit index 0, received 2019-04-01T10:00:00.5Z, superseded
// by s2) and s2 (audit index 1, superseding s1). Both are kept with no
// record opens; the submissions list, and opens can then be recorded,
// counted and pruned.
func CheckUpgradeFromV7(t *testing.T, s storage.Store) {
	t.Helper()
	ctx := context.Background()
	err := s.View(ctx, func(tx storage.ReadTx) error {
		if h, err := tx.AuditHead(); err != nil || h.Next != 1 {
			t.Errorf("AuditHead after the upgrade = %+v, %v; want the one record kept", h, err)
		}
		got, err := ListAll(tx, storage.SubmissionFilter{After: -1})
		if err != nil || IDs(got) != "s1 s2" || got[0].SupersededBy != "s2" || got[1].Supersedes != "s1" ||
			!got[0].ReceivedAt.Equal(time.Date(2019, time.April, 1, 10, 0, 0, 5e8, time.UTC)) {
			t.Errorf("ListSubmissions after the upgrade = %+v, %v", got, err)
		}
		if got, err := ListAll(tx, storage.SubmissionFilter{After: -1, Current: true}); err != nil || IDs(got) != "s2" {
			t.Errorf("ListSubmissions(current) after the upgrade = %q, %v; want s2", IDs(got), err)
		}
		if n, err := tx.OpensSince("alice", time.Time{}); err != nil || n != 0 {
			t.Errorf("OpensSince after the upgrade = %d, %v; want 0", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := s.Update(ctx, func(tx storage.Tx) error {
		return errors.Join(tx.RecordOpen("alice", "s1", now.Add(-2*time.Hour)), tx.RecordOpen("alice", "s2", now))
	}); err != nil {
		t.Fatalf("recording opens on the upgraded database: %v", err)
	}
	var pruned, left int64
	if err := s.Update(ctx, func(tx storage.Tx) error {
		var err error
		if pruned, err = tx.PruneOpens(now.Add(-time.Hour)); err != nil {
			return err
		}
		left, err = tx.OpensSince("alice", now.Add(-time.Hour))
		return err
	}); err != nil || pruned != 1 || left != 1 {
		t.Errorf("PruneOpens, OpensSince on the upgraded database = %d, %d, %v; want 1, 1", pruned, left, err)
	}
	// Reviews, new in version 8, can be stored and are listed.
	if err := s.Update(ctx, func(tx storage.Tx) error {
		return tx.InsertReview(&storage.Review{AuditIndex: 2, Submission: "s2", Status: storage.ReviewRejected,
			Reason: "incomplete", Reviewer: "tl", At: now})
	}); err != nil {
		t.Errorf("InsertReview on the upgraded database: %v", err)
	}
	err = s.View(ctx, func(tx storage.ReadTx) error {
		got, err := ListAll(tx, storage.SubmissionFilter{After: -1})
		if err != nil || len(got) != 2 || got[0].Review.Status != "" || got[1].Review.Status != storage.ReviewRejected {
			t.Errorf("ListSubmissions after a review on the upgraded database = %+v, %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// CheckUpgradeFromV6 checks a store upgraded from a database at schema
// version 6 that held one audit record (index 0) and one publication
// point, "first": both are kept and the ledger is empty; a debit and a
// share change can then be stored, and exec (a statement run behind the
// store's back) is refused a deletion of debits and a change of shares.
func CheckUpgradeFromV6(t *testing.T, s storage.Store, exec func(q string) error) {
	t.Helper()
	ctx := context.Background()
	err := s.View(ctx, func(tx storage.ReadTx) error {
		if h, err := tx.AuditHead(); err != nil || h.Next != 1 {
			t.Errorf("AuditHead after the upgrade = %+v, %v; want the one record kept", h, err)
		}
		if p, err := tx.LatestReleasePoint(); err != nil || p.Name != "first" {
			t.Errorf("LatestReleasePoint after the upgrade = %+v, %v; want the point kept", p, err)
		}
		n := 0
		err := tx.LedgerDebits(-1, func(storage.LedgerDebit) (bool, error) { n++; return true, nil })
		if err2 := tx.ShareChanges(func(storage.ShareChange) (bool, error) { n++; return true, nil }); err != nil || err2 != nil || n != 0 {
			t.Errorf("the upgraded ledger holds %d rows (%v, %v), want none", n, err, err2)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	d := &storage.LedgerDebit{AuditIndex: 1, Query: "q", Result: "r", Areas: []string{"01"}, Project: "p",
		Researcher: "bob", Rho: 5, At: time.Now()}
	c := &storage.ShareChange{Kind: "project", Holder: "p", Rho: 10, Reason: "why", ProposedBy: "alice",
		ProposedAt: time.Now(), ProposalAudit: 2}
	if err := s.Update(ctx, func(tx storage.Tx) error {
		return errors.Join(tx.InsertLedgerDebit(d), tx.ProposeShare(c))
	}); err != nil || c.Seq != 1 {
		t.Fatalf("the ledger on the upgraded database: Seq %d, %v", c.Seq, err)
	}
	for _, q := range []string{`DELETE FROM ledger_debits`, `UPDATE ledger_shares SET rho = 1`} {
		if err := exec(q); err == nil {
			t.Errorf("the upgraded database let through: %s", q)
		}
	}
}

// CheckUpgradeFromV5 checks a store upgraded from a database at schema
// version 5 that held one audit record (index 0): it is kept and there
// is no publication point; a point can then be made, and exec (a
// statement run behind the store's back) is refused its deletion.
func CheckUpgradeFromV5(t *testing.T, s storage.Store, exec func(q string) error) {
	t.Helper()
	ctx := context.Background()
	err := s.View(ctx, func(tx storage.ReadTx) error {
		if h, err := tx.AuditHead(); err != nil || h.Next != 1 {
			t.Errorf("AuditHead after the upgrade = %+v, %v; want the one record kept", h, err)
		}
		if _, err := tx.LatestReleasePoint(); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("LatestReleasePoint after the upgrade: err = %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p := &storage.ReleasePoint{Name: "first", AsOf: 0, CreatedAt: time.Now(), CreatedBy: "approver", AuditIndex: 1, State: []byte("{}")}
	if err := s.Update(ctx, func(tx storage.Tx) error { return tx.InsertReleasePoint(p) }); err != nil || p.Seq != 1 {
		t.Fatalf("InsertReleasePoint on the upgraded database: Seq %d, %v", p.Seq, err)
	}
	if err := exec(`DELETE FROM release_points`); err == nil {
		t.Error("the upgraded database let a publication point be deleted")
	}
}

// CheckListReadsNoSealedPart checks that ListSubmissions reads no column
// a review list must not read. s holds the three submissions s1, s2 and
// s3 of a backend's test fixtures (commune C00001, depositor
// enumerator-07). It marks s1 superseded by s3, lists them, closes s and
// calls reopen, which drops every such column (the sealed parts, the
// operational fields, the receipt and the payload digest) behind the
// store's back and opens the store again. Then reading a whole submission
// must fail (the columns are gone) while the list, whole and filtered, is
// as before.
func CheckListReadsNoSealedPart(t *testing.T, s storage.Store, reopen func() storage.Store) {
	t.Helper()
	ctx := context.Background()
	if err := s.Update(ctx, func(tx storage.Tx) error { return tx.MarkSuperseded("s1", "s3") }); err != nil {
		t.Fatal(err)
	}
	var want []storage.SubmissionMeta
	if err := s.View(ctx, func(tx storage.ReadTx) (err error) {
		want, err = ListAll(tx, storage.SubmissionFilter{After: -1})
		return err
	}); err != nil || len(want) != 3 {
		t.Fatalf("ListSubmissions before the columns are dropped = %d rows, %v", len(want), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen()
	err := s.View(ctx, func(tx storage.ReadTx) error {
		if _, err := tx.Submission("s2"); err == nil {
			t.Errorf("Submission read a row whose sealed columns were dropped: the test proves nothing")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A new transaction: the failed read may have ended the first one
	// (PostgreSQL aborts a transaction at its first error).
	err = s.View(ctx, func(tx storage.ReadTx) error {
		got, err := ListAll(tx, storage.SubmissionFilter{After: -1})
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("ListSubmissions without the sealed columns = %+v, %v; want %+v", got, err, want)
		}
		for _, tc := range []struct {
			f    storage.SubmissionFilter
			want string
		}{
			{storage.SubmissionFilter{After: -1, Communes: []string{"C00001", "C2"}}, "s1 s2 s3"},
			{storage.SubmissionFilter{After: -1, Current: true, Depositor: "enumerator-07", Limit: 5}, "s2 s3"},
		} {
			if got, err := ListAll(tx, tc.f); err != nil || IDs(got) != tc.want {
				t.Errorf("ListSubmissions(%+v) without the sealed columns = %q, %v; want %s", tc.f, IDs(got), err, tc.want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
