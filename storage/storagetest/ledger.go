package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
)

// debit is a fixture ledger debit. Its areas are neither sorted nor
// unique, and hold a non-ASCII code, so a backend that sorts, dedupes or
// mangles them is caught.
func debit(query string, auditIndex int64) *storage.LedgerDebit {
	return &storage.LedgerDebit{
		AuditIndex: auditIndex,
		Query:      query,
		Result:     "result-of-" + query,
		Areas:      []string{"0" + query, "01.02", "01", "01.02", "Đà-" + query},
		Project:    "proj-" + query,
		Researcher: "researcher-" + query,
		Rho:        1_000_000 + auditIndex,
		At:         at(int(auditIndex%24), 123456789),
	}
}

// diffDebit lists how got differs from want.
func diffDebit(got, want *storage.LedgerDebit) []string {
	var d []string
	if got.Query != want.Query || got.Result != want.Result || got.Project != want.Project || got.Researcher != want.Researcher {
		d = append(d, fmt.Sprintf("Query/Result/Project/Researcher = %q/%q/%q/%q, want %q/%q/%q/%q",
			got.Query, got.Result, got.Project, got.Researcher, want.Query, want.Result, want.Project, want.Researcher))
	}
	if got.AuditIndex != want.AuditIndex || got.Rho != want.Rho {
		d = append(d, fmt.Sprintf("AuditIndex/Rho = %d/%d, want %d/%d", got.AuditIndex, got.Rho, want.AuditIndex, want.Rho))
	}
	if !slices.Equal(got.Areas, want.Areas) {
		d = append(d, fmt.Sprintf("Areas = %q, want %q", got.Areas, want.Areas))
	}
	if err := checkTime("At", got.At, want.At); err != nil {
		d = append(d, err.Error())
	}
	return d
}

// readDebits lists the debits after an audit index in a View.
func readDebits(t *testing.T, s storage.Store, after int64) []storage.LedgerDebit {
	t.Helper()
	return readAll(t, s, func(tx storage.ReadTx, fn func(storage.LedgerDebit) (bool, error)) error {
		return tx.LedgerDebits(after, fn)
	})
}

// debitQueries are the Queries of ds, in order.
func debitQueries(ds []storage.LedgerDebit) []string {
	return fields(ds, func(d storage.LedgerDebit) string { return d.Query })
}

// ledgerState is everything the store reads of the ledger, for checking
// that a refused write changed nothing.
func ledgerState(t *testing.T, s storage.Store, queries ...string) string {
	t.Helper()
	var b strings.Builder
	for _, d := range readDebits(t, s, -1) {
		fmt.Fprintf(&b, "debit %q audit %d result %q areas %q project %q researcher %q rho %d at %v\n",
			d.Query, d.AuditIndex, d.Result, d.Areas, d.Project, d.Researcher, d.Rho, d.At)
	}
	view(t, s, func(tx storage.ReadTx) error {
		for _, q := range queries {
			d, err := tx.LedgerDebitOf(q)
			switch {
			case errors.Is(err, storage.ErrNotFound):
				fmt.Fprintf(&b, "no debit of %q\n", q)
			case err != nil:
				return err
			default:
				fmt.Fprintf(&b, "debit of %q: audit %d rho %d\n", q, d.AuditIndex, d.Rho)
			}
		}
		return nil
	})
	for _, c := range readShares(t, s) {
		fmt.Fprintf(&b, "share %d %q %q rho %d %q proposed by %q at %v audit %d approved by %q at %v audit %d\n",
			c.Seq, c.Kind, c.Holder, c.Rho, c.Reason, c.ProposedBy, c.ProposedAt, c.ProposalAudit,
			c.ApprovedBy, c.ApprovedAt, c.ApprovalAudit)
	}
	return b.String()
}

// testLedgerDebits: an empty store has none; debits read back every field
// (areas in their order, times in UTC) by query and in the listing, which
// is in AuditIndex order, not insertion or query order, and holds only
// those after the given index; a listing's fn may use the transaction
// and stops when asked.
func testLedgerDebits(t *testing.T, s storage.Store) {
	view(t, s, func(tx storage.ReadTx) error {
		if _, err := tx.LedgerDebitOf("nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("LedgerDebitOf an unknown query: err = %v, want ErrNotFound", err)
		}
		n := 0
		err := tx.LedgerDebits(-1, func(storage.LedgerDebit) (bool, error) { n++; return true, nil })
		if err != nil || n != 0 {
			t.Errorf("LedgerDebits of an empty store: %d rows, %v", n, err)
		}
		return nil
	})

	// Inserted neither in audit order nor in query order; two in one
	// Update.
	fixtures := []*storage.LedgerDebit{debit("m", 30), debit("z", 10), debit("a", 20), debit("b", 40)}
	update(t, s, func(tx storage.Tx) error { return tx.InsertLedgerDebit(fixtures[0]) })
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(tx.InsertLedgerDebit(fixtures[1]), tx.InsertLedgerDebit(fixtures[2]))
	})
	update(t, s, func(tx storage.Tx) error { return tx.InsertLedgerDebit(fixtures[3]) })
	want := map[string]*storage.LedgerDebit{}
	for _, d := range fixtures {
		want[d.Query] = d
	}

	view(t, s, func(tx storage.ReadTx) error {
		for q, w := range want {
			got, err := tx.LedgerDebitOf(q)
			if err != nil {
				t.Errorf("LedgerDebitOf(%s): %v", q, err)
				continue
			}
			if d := diffDebit(got, w); d != nil {
				t.Errorf("debit %s: %v", q, d)
			}
		}
		return nil
	})
	for _, c := range []struct {
		after int64
		want  []string
	}{
		{-1, []string{"z", "a", "m", "b"}},
		{0, []string{"z", "a", "m", "b"}},
		{9, []string{"z", "a", "m", "b"}},
		{10, []string{"a", "m", "b"}},
		{15, []string{"a", "m", "b"}},
		{30, []string{"b"}},
		{40, nil},
		{1 << 40, nil},
	} {
		listed := readDebits(t, s, c.after)
		if got := debitQueries(listed); !slices.Equal(got, c.want) {
			t.Errorf("LedgerDebits(after %d) = %q, want %q", c.after, got, c.want)
		}
		for _, d := range listed {
			if diff := diffDebit(&d, want[d.Query]); diff != nil {
				t.Errorf("LedgerDebits(after %d) row %s: %v", c.after, d.Query, diff)
			}
		}
	}

	// Stopping early, an error from fn, and fn using the transaction.
	n := 0
	view(t, s, func(tx storage.ReadTx) error {
		return tx.LedgerDebits(-1, func(storage.LedgerDebit) (bool, error) { n++; return n < 2, nil })
	})
	if n != 2 {
		t.Errorf("LedgerDebits went on after fn returned false: %d calls", n)
	}
	stop := errors.New("storagetest: stop")
	if err := s.View(t.Context(), func(tx storage.ReadTx) error {
		return tx.LedgerDebits(-1, func(storage.LedgerDebit) (bool, error) { return true, stop })
	}); !errors.Is(err, stop) {
		t.Errorf("LedgerDebits with a failing fn: err = %v, want fn's", err)
	}
	view(t, s, func(tx storage.ReadTx) error {
		return tx.LedgerDebits(-1, func(d storage.LedgerDebit) (bool, error) {
			again, err := tx.LedgerDebitOf(d.Query)
			if err != nil {
				return false, fmt.Errorf("LedgerDebitOf inside LedgerDebits: %w", err)
			}
			if again.AuditIndex != d.AuditIndex {
				t.Errorf("LedgerDebitOf(%s) inside LedgerDebits has audit index %d, want %d", d.Query, again.AuditIndex, d.AuditIndex)
			}
			return true, nil
		})
	})
}

// testLedgerDebitRefusals: a query is charged once: a second debit of it
// is ErrConflict, the first is kept whole, and the Update that swallows
// the conflict goes on and stores another debit; a debit with an empty
// field, no areas, an empty area code, a ρ that is not positive or a
// zero time is refused and changes nothing.
func testLedgerDebitRefusals(t *testing.T, s storage.Store) {
	first := debit("q", 5)
	update(t, s, func(tx storage.Tx) error { return tx.InsertLedgerDebit(first) })

	again := debit("q", 6)
	again.Rho = 1
	again.Areas = []string{"99"}
	again.Result = "another-result"
	var dupErr error
	next := debit("next", 7)
	update(t, s, func(tx storage.Tx) error {
		dupErr = tx.InsertLedgerDebit(again)
		return tx.InsertLedgerDebit(next)
	})
	if !errors.Is(dupErr, storage.ErrConflict) {
		t.Errorf("InsertLedgerDebit of a charged query: err = %v, want ErrConflict", dupErr)
	}
	view(t, s, func(tx storage.ReadTx) error {
		got, err := tx.LedgerDebitOf("q")
		if err != nil {
			return err
		}
		if d := diffDebit(got, first); d != nil {
			t.Errorf("after a refused second debit of the query: %v", d)
		}
		return nil
	})
	if got := debitQueries(readDebits(t, s, -1)); !slices.Equal(got, []string{"q", "next"}) {
		t.Errorf("after a refused duplicate the ledger holds %q, want q and next", got)
	}

	before := ledgerState(t, s, "q", "next", "bad")
	for what, bad := range map[string]func(*storage.LedgerDebit){
		"no query":           func(d *storage.LedgerDebit) { d.Query = "" },
		"no result":          func(d *storage.LedgerDebit) { d.Result = "" },
		"no project":         func(d *storage.LedgerDebit) { d.Project = "" },
		"no researcher":      func(d *storage.LedgerDebit) { d.Researcher = "" },
		"nil areas":          func(d *storage.LedgerDebit) { d.Areas = nil },
		"empty areas":        func(d *storage.LedgerDebit) { d.Areas = []string{} },
		"an empty area code": func(d *storage.LedgerDebit) { d.Areas = []string{"01", ""} },
		"zero rho":           func(d *storage.LedgerDebit) { d.Rho = 0 },
		"negative rho":       func(d *storage.LedgerDebit) { d.Rho = -5 },
		"zero time":          func(d *storage.LedgerDebit) { d.At = time.Time{} },
		"negative audit":     func(d *storage.LedgerDebit) { d.AuditIndex = -1 },
	} {
		d := debit("bad", 8)
		bad(d)
		if err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.InsertLedgerDebit(d) }); err == nil {
			t.Errorf("InsertLedgerDebit of a debit with %s: no error", what)
		}
		if got := ledgerState(t, s, "q", "next", "bad"); got != before {
			t.Errorf("a refused debit with %s changed the ledger:\n%s\nwant\n%s", what, got, before)
		}
	}
}

// share is a fixture proposed share change. Its Seq is set to a value
// ProposeShare must overwrite.
func share(kind, holder string, rho int64) *storage.ShareChange {
	return &storage.ShareChange{
		Seq:           99,
		Kind:          kind,
		Holder:        holder,
		Rho:           rho,
		Reason:        "raise for " + kind,
		ProposedBy:    "alice",
		ProposedAt:    at(9, 987654321),
		ProposalAudit: rho % 1000,
	}
}

// diffShare lists how got differs from want.
func diffShare(got, want *storage.ShareChange) []string {
	var d []string
	if got.Seq != want.Seq || got.Rho != want.Rho || got.ProposalAudit != want.ProposalAudit || got.ApprovalAudit != want.ApprovalAudit {
		d = append(d, fmt.Sprintf("Seq/Rho/ProposalAudit/ApprovalAudit = %d/%d/%d/%d, want %d/%d/%d/%d",
			got.Seq, got.Rho, got.ProposalAudit, got.ApprovalAudit, want.Seq, want.Rho, want.ProposalAudit, want.ApprovalAudit))
	}
	if got.Kind != want.Kind || got.Holder != want.Holder || got.Reason != want.Reason ||
		got.ProposedBy != want.ProposedBy || got.ApprovedBy != want.ApprovedBy {
		d = append(d, fmt.Sprintf("Kind/Holder/Reason/ProposedBy/ApprovedBy = %q/%q/%q/%q/%q, want %q/%q/%q/%q/%q",
			got.Kind, got.Holder, got.Reason, got.ProposedBy, got.ApprovedBy,
			want.Kind, want.Holder, want.Reason, want.ProposedBy, want.ApprovedBy))
	}
	for _, err := range []error{checkTime("ProposedAt", got.ProposedAt, want.ProposedAt), checkTime("ApprovedAt", got.ApprovedAt, want.ApprovedAt)} {
		if err != nil {
			d = append(d, err.Error())
		}
	}
	return d
}

// readShares lists every share change in a View.
func readShares(t *testing.T, s storage.Store) []storage.ShareChange {
	t.Helper()
	return readAll(t, s, storage.ReadTx.ShareChanges)
}

// checkShares checks that the store holds exactly want, in Seq order.
func checkShares(t *testing.T, s storage.Store, when string, want ...storage.ShareChange) {
	t.Helper()
	got := readShares(t, s)
	if len(got) != len(want) {
		t.Errorf("%s: ShareChanges listed %d changes, want %d", when, len(got), len(want))
		return
	}
	for i := range got {
		if d := diffShare(&got[i], &want[i]); d != nil {
			t.Errorf("%s: share change %d: %v", when, i, d)
		}
	}
}

// testShareChanges: an empty store has none; proposals get Seq 1, 2, …
// whatever the caller set, read back every field pending (the commune
// cap's empty holder included); an approval is recorded with its
// approver, time (in UTC) and audit event and leaves the others pending;
// approving twice is ErrConflict and keeps the first approval, an
// unknown Seq is ErrNotFound, and the Update that swallows either goes
// on; refused proposals take no Seq and refused approvals change
// nothing; the listing stops when asked.
func testShareChanges(t *testing.T, s storage.Store) {
	checkShares(t, s, "an empty store")

	fixtures := []*storage.ShareChange{
		share("commune-cap", "", 2_000_000),
		share("project", "proj-1", 500_000),
		share("researcher", "bob", 250_001),
	}
	var want []storage.ShareChange
	for i, c := range fixtures {
		update(t, s, func(tx storage.Tx) error { return tx.ProposeShare(c) })
		if c.Seq != int64(i+1) {
			t.Errorf("ProposeShare(%s) set Seq %d, want %d", c.Kind, c.Seq, i+1)
		}
		w := *c
		w.Seq = int64(i + 1)
		want = append(want, w)
	}
	checkShares(t, s, "three proposals", want...)

	approvedAt := at(10, 5)
	update(t, s, func(tx storage.Tx) error { return tx.ApproveShare(2, "carol", approvedAt, 77) })
	want[1].ApprovedBy, want[1].ApprovedAt, want[1].ApprovalAudit = "carol", approvedAt, 77
	checkShares(t, s, "after approving Seq 2", want...)

	// A second approval, and one of an unknown Seq, are refused; the
	// Update goes on and proposes another change.
	var twiceErr, unknownErr error
	fourth := share("project", "proj-2", 300_000)
	update(t, s, func(tx storage.Tx) error {
		twiceErr = tx.ApproveShare(2, "dave", at(12, 0), 88)
		unknownErr = tx.ApproveShare(9, "dave", at(12, 0), 89)
		return tx.ProposeShare(fourth)
	})
	if !errors.Is(twiceErr, storage.ErrConflict) {
		t.Errorf("ApproveShare of an approved change: err = %v, want ErrConflict", twiceErr)
	}
	if !errors.Is(unknownErr, storage.ErrNotFound) {
		t.Errorf("ApproveShare of an unknown Seq: err = %v, want ErrNotFound", unknownErr)
	}
	if fourth.Seq != 4 {
		t.Errorf("the proposal after refused approvals got Seq %d, want 4", fourth.Seq)
	}
	w := *fourth
	want = append(want, w)
	checkShares(t, s, "after refused approvals", want...)

	// Refused proposals take no Seq and store nothing.
	for what, bad := range map[string]func(*storage.ShareChange){
		"no kind":             func(c *storage.ShareChange) { c.Kind = "" },
		"no proposer":         func(c *storage.ShareChange) { c.ProposedBy = "" },
		"no reason":           func(c *storage.ShareChange) { c.Reason = "" },
		"zero rho":            func(c *storage.ShareChange) { c.Rho = 0 },
		"negative rho":        func(c *storage.ShareChange) { c.Rho = -1 },
		"zero time":           func(c *storage.ShareChange) { c.ProposedAt = time.Time{} },
		"negative audit":      func(c *storage.ShareChange) { c.ProposalAudit = -1 },
		"an approver":         func(c *storage.ShareChange) { c.ApprovedBy = "carol" },
		"an approval time":    func(c *storage.ShareChange) { c.ApprovedAt = at(13, 0) },
		"an approval's audit": func(c *storage.ShareChange) { c.ApprovalAudit = 5 },
	} {
		c := share("project", "proj-3", 100)
		bad(c)
		if err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.ProposeShare(c) }); err == nil {
			t.Errorf("ProposeShare of a change with %s: no error", what)
		}
		if c.Seq != 99 {
			t.Errorf("a refused ProposeShare with %s set Seq %d", what, c.Seq)
		}
	}
	// Refused approvals change nothing.
	for what, approve := range map[string]func(storage.Tx) error{
		"no approver":    func(tx storage.Tx) error { return tx.ApproveShare(1, "", at(13, 0), 90) },
		"a zero time":    func(tx storage.Tx) error { return tx.ApproveShare(1, "carol", time.Time{}, 90) },
		"negative audit": func(tx storage.Tx) error { return tx.ApproveShare(1, "carol", at(13, 0), -1) },
	} {
		if err := s.Update(t.Context(), approve); err == nil {
			t.Errorf("ApproveShare with %s: no error", what)
		}
	}
	checkShares(t, s, "after refused proposals and approvals", want...)
	fifth := share("researcher", "erin", 42)
	update(t, s, func(tx storage.Tx) error { return tx.ProposeShare(fifth) })
	if fifth.Seq != 5 {
		t.Errorf("the proposal after refused ones got Seq %d, want 5", fifth.Seq)
	}

	// Stopping early, and an error from fn.
	n := 0
	view(t, s, func(tx storage.ReadTx) error {
		return tx.ShareChanges(func(storage.ShareChange) (bool, error) { n++; return n < 2, nil })
	})
	if n != 2 {
		t.Errorf("ShareChanges went on after fn returned false: %d calls", n)
	}
	stop := errors.New("storagetest: stop")
	if err := s.View(t.Context(), func(tx storage.ReadTx) error {
		return tx.ShareChanges(func(storage.ShareChange) (bool, error) { return true, stop })
	}); !errors.Is(err, stop) {
		t.Errorf("ShareChanges with a failing fn: err = %v, want fn's", err)
	}
}

// testShareSeq: Seqs stay 1, 2, … without a gap or a repeat when two
// Updates propose at once and when an Update that proposed one is rolled
// back (its Seq is the next proposal's).
func testShareSeq(t *testing.T, s storage.Store) {
	a, b := share("project", "a", 10), share("project", "b", 11)
	errs := make(chan error, 2)
	for _, c := range []*storage.ShareChange{a, b} {
		go func() {
			errs <- s.Update(t.Context(), func(tx storage.Tx) error { return tx.ProposeShare(c) })
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("racing ProposeShare: %v", err)
		}
	}
	if got := []int64{min(a.Seq, b.Seq), max(a.Seq, b.Seq)}; !slices.Equal(got, []int64{1, 2}) {
		t.Errorf("two racing Updates got Seqs %d, %d; want 1 and 2", a.Seq, b.Seq)
	}
	rolledBack := errors.New("storagetest: roll back")
	if err := s.Update(t.Context(), func(tx storage.Tx) error {
		if err := tx.ProposeShare(share("project", "gone", 12)); err != nil {
			return err
		}
		return rolledBack
	}); !errors.Is(err, rolledBack) {
		t.Fatalf("Update: err = %v, want its fn's", err)
	}
	c := share("project", "c", 13)
	update(t, s, func(tx storage.Tx) error { return tx.ProposeShare(c) })
	if c.Seq != 3 {
		t.Errorf("the proposal after a rolled-back one got Seq %d, want 3", c.Seq)
	}
	var holders []string
	for _, c := range readShares(t, s) {
		holders = append(holders, fmt.Sprintf("%d:%s", c.Seq, c.Holder))
	}
	want := []string{fmt.Sprintf("%d:a", a.Seq), fmt.Sprintf("%d:b", b.Seq), "3:c"}
	slices.Sort(want[:2])
	if !slices.Equal(holders, want) {
		t.Errorf("stored share changes %q, want %q", holders, want)
	}
}

// ledgerGuardedStatements are the changes to the ledger the database
// must refuse, in an order where each still changes something if let
// through. The fixture (RunLedgerGuards) has debits q1, q2 and q3, and
// share changes 1 and 3 pending, 2, 4 and 5 approved.
var ledgerGuardedStatements = []string{
	// Spent budget given back, or moved to another holder or time.
	`DELETE FROM ledger_debits WHERE query = 'q3'`,
	`UPDATE ledger_debits SET rho = 1 WHERE query = 'q1'`,
	`UPDATE ledger_debits SET areas = '["99"]' WHERE query = 'q1'`,
	`UPDATE ledger_debits SET project = 'other' WHERE query = 'q2'`,
	`UPDATE ledger_debits SET researcher = 'other' WHERE query = 'q2'`,
	`UPDATE ledger_debits SET result = 'forged' WHERE query = 'q2'`,
	`UPDATE ledger_debits SET audit_index = 100 WHERE query = 'q2'`,
	`UPDATE ledger_debits SET at = '2020-01-01T00:00:00Z' WHERE query = 'q2'`,
	`UPDATE ledger_debits SET query = 'q9' WHERE query = 'q2'`,
	// A share change deleted, its ρ changed pending or approved, an
	// approval replaced or withdrawn, and an approval that changes
	// something else on the way.
	`DELETE FROM ledger_shares WHERE seq = 4`,
	`UPDATE ledger_shares SET rho = rho * 2 WHERE seq = 1`,
	`UPDATE ledger_shares SET rho = rho * 2 WHERE seq = 2`,
	`UPDATE ledger_shares SET approved_by = 'mallory', approved_at = '2020-01-01T00:00:00Z', approval_audit = 99 WHERE seq = 2`,
	`UPDATE ledger_shares SET approved_by = '', approved_at = '', approval_audit = 0 WHERE seq = 5`,
	`UPDATE ledger_shares SET approved_by = 'carol', approved_at = '2020-01-01T00:00:00Z', approval_audit = 7, rho = rho + 1 WHERE seq = 3`,
	`UPDATE ledger_shares SET approved_by = 'carol', approved_at = '2020-01-01T00:00:00Z', approval_audit = 7, proposed_by = 'carol' WHERE seq = 1`,
	`UPDATE ledger_shares SET approved_by = 'carol', approved_at = '2020-01-01T00:00:00Z', approval_audit = 7, holder = 'mallory' WHERE seq = 1`,
	`UPDATE ledger_shares SET approved_by = 'carol', approved_at = '2020-01-01T00:00:00Z', approval_audit = 7, kind = 'other' WHERE seq = 1`,
	`UPDATE ledger_shares SET approved_by = 'carol', approved_at = '2020-01-01T00:00:00Z', approval_audit = 7, reason = 'other' WHERE seq = 1`,
	`UPDATE ledger_shares SET approved_by = 'carol', approved_at = '2020-01-01T00:00:00Z', approval_audit = 7, proposed_at = '2020-01-01T00:00:00Z' WHERE seq = 1`,
	`UPDATE ledger_shares SET approved_by = 'carol', approved_at = '2020-01-01T00:00:00Z', approval_audit = 7, proposal_audit = 1 WHERE seq = 1`,
	`UPDATE ledger_shares SET approved_by = 'carol', approved_at = '2020-01-01T00:00:00Z', approval_audit = 7, seq = 10 WHERE seq = 1`,
	`UPDATE ledger_shares SET reason = 'other' WHERE seq = 3`,
}

// RunLedgerGuards checks, on s (a fresh store) and raw (its database),
// that the database itself keeps the privacy ledger: it refuses deleting
// a debit or changing any of its fields, and deleting a share change or
// changing it otherwise than by approving it once (an approval that
// changes another field, a second approval and a withdrawn one
// included), while letting the one allowed approval through. raw.Refused
// (the backend's own ways in, such as INSERT OR REPLACE, an upsert or
// TRUNCATE) run after the common statements; they may name debit q1 and
// share change 2, which are still there after them. A refused statement
// leaves the ledger as it was. Once the guards are dropped
// (raw.DropGuards) every statement goes through and changes it: so the
// guards, not some other failure, refused them.
func RunLedgerGuards(t *testing.T, s storage.Store, raw Raw) {
	t.Helper()
	update(t, s, func(tx storage.Tx) error {
		err := errors.Join(tx.InsertLedgerDebit(debit("q1", 1)), tx.InsertLedgerDebit(debit("q2", 2)),
			tx.InsertLedgerDebit(debit("q3", 3)))
		for _, c := range []*storage.ShareChange{
			share("commune-cap", "", 4_000_000), share("project", "p", 1_000_000), share("researcher", "r", 500_000),
			share("project", "p2", 700_000), share("project", "p3", 800_000),
		} {
			err = errors.Join(err, tx.ProposeShare(c))
		}
		return errors.Join(err, tx.ApproveShare(2, "carol", at(5, 0), 20), tx.ApproveShare(4, "carol", at(5, 0), 21))
	})
	read := func() string {
		t.Helper()
		return ledgerState(t, s, "q1", "q2", "q3", "q9")
	}
	// The one change the guards allow, made behind the store's back: a
	// pending change approved, nothing else touched.
	before := read()
	if err := raw.Exec(`UPDATE ledger_shares SET approved_by = 'dave', approved_at = '2019-04-01T00:00:00Z', approval_audit = 22 WHERE seq = 5`); err != nil {
		t.Fatalf("the database refused the approval of a pending share change: %v", err)
	}
	if read() == before {
		t.Fatal("approving a pending share change in SQL changed nothing")
	}
	want := read()
	if strings.Count(want, "debit \"") != 3 || strings.Count(want, "share ") != 5 || strings.Count(want, "approved by \"\"") != 2 {
		t.Fatalf("the fixture is not what RunLedgerGuards expects:\n%s", want)
	}

	checkGuards(t, raw, append(slices.Clone(ledgerGuardedStatements), raw.Refused...), read, "the privacy ledger")
}
