package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
)

// metaOf is what ListSubmissions returns of sub.
func metaOf(sub *storage.Submission) storage.SubmissionMeta {
	return storage.SubmissionMeta{
		ID: sub.ID, Area: sub.Area, Commune: sub.Commune, HouseholdNo: sub.HouseholdNo,
		Form: sub.Form, FormVersion: sub.FormVersion, InterviewedAt: sub.InterviewedAt, ReceivedAt: sub.ReceivedAt,
		Depositor: sub.Depositor, Supersedes: sub.Supersedes, SupersededBy: sub.SupersededBy, AuditIndex: sub.AuditIndex,
	}
}

// diffMeta lists how got differs from want; times must be the same
// instants, in UTC.
func diffMeta(got, want storage.SubmissionMeta) []string {
	var d []string
	if got.ID != want.ID || got.Area != want.Area || got.Commune != want.Commune || got.HouseholdNo != want.HouseholdNo ||
		got.Form != want.Form || got.FormVersion != want.FormVersion {
		d = append(d, fmt.Sprintf("id/area/commune/household/form/version = %s/%s/%q/%d/%s/%d, want %s/%s/%q/%d/%s/%d",
			got.ID, got.Area, got.Commune, got.HouseholdNo, got.Form, got.FormVersion,
			want.ID, want.Area, want.Commune, want.HouseholdNo, want.Form, want.FormVersion))
	}
	if got.Depositor != want.Depositor || got.Supersedes != want.Supersedes || got.SupersededBy != want.SupersededBy {
		d = append(d, fmt.Sprintf("depositor/supersedes/superseded by = %q/%q/%q, want %q/%q/%q",
			got.Depositor, got.Supersedes, got.SupersededBy, want.Depositor, want.Supersedes, want.SupersededBy))
	}
	if got.AuditIndex != want.AuditIndex {
		d = append(d, fmt.Sprintf("AuditIndex = %d, want %d", got.AuditIndex, want.AuditIndex))
	}
	d = append(d, diffReview(got.Review, want.Review)...)
	for _, e := range []error{
		checkTime("InterviewedAt", got.InterviewedAt, want.InterviewedAt),
		checkTime("ReceivedAt", got.ReceivedAt, want.ReceivedAt),
	} {
		if e != nil {
			d = append(d, e.Error())
		}
	}
	return d
}

// ListAll runs ListSubmissions(f) and collects every row it gives.
func ListAll(tx storage.ReadTx, f storage.SubmissionFilter) ([]storage.SubmissionMeta, error) {
	var got []storage.SubmissionMeta
	err := tx.ListSubmissions(f, func(m storage.SubmissionMeta) (bool, error) {
		got = append(got, m)
		return true, nil
	})
	return got, err
}

// compareMetas reports how the rows of a list differ from want, order
// included.
func compareMetas(t *testing.T, what string, got, want []storage.SubmissionMeta) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s returned %d rows, want %d", what, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if d := diffMeta(got[i], want[i]); d != nil {
			t.Errorf("%s: row %d (%s): %v", what, i, want[i].ID, d)
			return
		}
	}
}

// filterMetas is what ListSubmissions(f) must return of subs, which are
// in audit order.
func filterMetas(subs []*storage.Submission, f storage.SubmissionFilter) []storage.SubmissionMeta {
	var out []storage.SubmissionMeta
	for _, sub := range subs {
		switch {
		case sub.AuditIndex <= f.After,
			f.Communes != nil && !slices.Contains(f.Communes, sub.Commune),
			f.Depositor != "" && sub.Depositor != f.Depositor,
			f.Current && sub.SupersededBy != "":
			continue
		}
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
		out = append(out, metaOf(sub))
	}
	return out
}

// testListSubmissions: the metadata of the submissions a filter keeps —
// by commune (nil: all; empty: none; however many), depositor, current —
// past an audit index, in audit order, up to a limit, across several
// pages; fn may stop, fail, and use the transaction between rows.
func testListSubmissions(t *testing.T, s storage.Store) {
	const bulk = 2500 // more than two pages of any backend's
	// Communes differing only in case, or with quotes and accents, are
	// other communes: a filter matches names exactly.
	const quoted = `Xã "Đông" 'A'`
	mk := func(id, area, commune, depositor string, hh int64) *storage.Submission {
		sub := smallSubmission(id, area, hh, 1, 1)
		sub.Commune, sub.Depositor = commune, depositor
		return sub
	}
	a := mk("a", "E1", "C1", "enum-a", 1)
	a.InterviewedAt = time.Date(2019, time.April, 2, 8, 0, 0, 1, ict)
	b := mk("b", "E2", "C2", "enum-b", 1)
	c := mk("c", "E3", "c1", "enum-a", 1)
	c.Operational = []byte(`{"status":"refused"}`)
	d := mk("d", "E4", quoted, "enum-b", 1)
	a2 := mk("a2", "E1", "C1", "enum-c", 1)
	a2.Supersedes = "a"
	a2.ReceivedAt = time.Date(2019, time.April, 3, 23, 59, 59, 999999999, time.UTC)
	a3 := mk("a3", "E1", "C1", "enum-a", 1)
	a3.Supersedes = "a2"
	var others []*storage.Submission
	for i := range bulk {
		sub := mk(fmt.Sprintf("bulk-%04d", i), fmt.Sprintf("E9%d", i%7), fmt.Sprintf("C%d", 1+i%3),
			fmt.Sprintf("enum-%c", 'a'+i%5), int64(i+1))
		sub.FormVersion = 1 + i%4
		others = append(others, sub)
	}

	// Audit records that are not deposits leave gaps in the submissions'
	// indexes: 0 and 3 here.
	update(t, s, func(tx storage.Tx) error {
		_, err := tx.AppendAudit(appendEvent("setup"))
		return errors.Join(err, deposit(tx, a), deposit(tx, b))
	})
	update(t, s, func(tx storage.Tx) error {
		_, err := tx.AppendAudit(appendEvent("user.add"))
		return errors.Join(err, deposit(tx, c), deposit(tx, d))
	})
	for i := 0; i < bulk; i += 500 {
		update(t, s, func(tx storage.Tx) error {
			for _, sub := range others[i : i+500] {
				if err := deposit(tx, sub); err != nil {
					return err
				}
			}
			return nil
		})
	}
	update(t, s, func(tx storage.Tx) error { return errors.Join(tx.MarkSuperseded("a", "a2"), deposit(tx, a2)) })
	update(t, s, func(tx storage.Tx) error { return errors.Join(tx.MarkSuperseded("a2", "a3"), deposit(tx, a3)) })
	a.SupersededBy, a2.SupersededBy = "a2", "a3"
	if a.AuditIndex != 1 || b.AuditIndex != 2 || c.AuditIndex != 4 || d.AuditIndex != 5 || a3.AuditIndex != bulk+7 {
		t.Fatalf("fixture audit indexes a %d, b %d, c %d, d %d, a3 %d; want 1, 2, 4, 5, %d",
			a.AuditIndex, b.AuditIndex, c.AuditIndex, d.AuditIndex, a3.AuditIndex, bulk+7)
	}
	all := append(append([]*storage.Submission{a, b, c, d}, others...), a2, a3)

	// many is thousands of communes, two of them stored.
	var many []string
	for i := range 5000 {
		many = append(many, fmt.Sprintf("C%d-none", i))
	}
	many[1234], many[4321] = "C2", quoted
	filters := []storage.SubmissionFilter{
		{After: -1},
		{After: -1, Communes: []string{}},
		{After: -1, Communes: []string{"C1"}},
		{After: -1, Communes: []string{"C3", "c1", "nowhere"}},
		{After: -1, Communes: []string{quoted}},
		{After: -1, Communes: []string{"C1", "C1"}},
		{After: -1, Communes: many},
		{After: -1, Communes: []string{"Xã"}},
		{After: -1, Depositor: "enum-a"},
		{After: -1, Depositor: "ENUM-A"},
		{After: -1, Depositor: "nobody"},
		{After: -1, Current: true},
		{After: -1, Current: true, Communes: []string{"C1"}, Depositor: "enum-a"},
		{After: -1, Current: true, Communes: []string{"C1"}, Depositor: "enum-c"},
		{After: -1, Communes: []string{}, Depositor: "enum-a"},
		{After: 0}, {After: 1}, {After: 2}, {After: 3}, {After: 1000}, {After: bulk + 5},
		{After: bulk + 6}, {After: bulk + 7}, {After: 1 << 40},
		{After: -1, Limit: 1}, {After: -1, Limit: 999}, {After: -1, Limit: 1000}, {After: -1, Limit: 1001},
		{After: -1, Limit: 2001}, {After: -1, Limit: bulk + 100}, {After: -1, Limit: -5},
		{After: 2, Limit: 1500, Communes: []string{"C2"}},
		{After: 700, Limit: 1200, Depositor: "enum-b", Current: true},
		{After: bulk + 5, Limit: 1, Communes: []string{"C1"}},
	}
	view(t, s, func(tx storage.ReadTx) error {
		for _, f := range filters {
			got, err := ListAll(tx, f)
			if err != nil {
				return fmt.Errorf("ListSubmissions(%s): %w", showFilter(f), err)
			}
			compareMetas(t, "ListSubmissions("+showFilter(f)+")", got, filterMetas(all, f))
		}
		return nil
	})
	// The fixture exercises each filter: none of these is trivially met.
	for _, tc := range []struct {
		f    storage.SubmissionFilter
		want int
	}{
		{storage.SubmissionFilter{After: -1}, bulk + 6},
		{storage.SubmissionFilter{After: -1, Communes: []string{"C1"}}, bulk/3 + 1 + 3},
		{storage.SubmissionFilter{After: -1, Communes: many}, bulk/3 + 2}, // b, d and the bulk of C2
		{storage.SubmissionFilter{After: -1, Current: true}, bulk + 4},
		{storage.SubmissionFilter{After: -1, Depositor: "enum-c"}, bulk/5 + 1},
	} {
		if n := len(filterMetas(all, tc.f)); n != tc.want {
			t.Fatalf("the fixture has %d rows for %s, want %d", n, showFilter(tc.f), tc.want)
		}
	}

	// fn stops the walk, on the first page or a later one; fn's error is
	// returned and ends the walk.
	checkStopAndFail(t, s, "ListSubmissions", func(tx storage.ReadTx, fn func() (bool, error)) error {
		return tx.ListSubmissions(storage.SubmissionFilter{After: -1}, func(storage.SubmissionMeta) (bool, error) { return fn() })
	}, func(tx storage.ReadTx, fn func() (bool, error)) error {
		return tx.ListSubmissions(storage.SubmissionFilter{After: -1, Communes: []string{"C1", "C2", "C3"}},
			func(storage.SubmissionMeta) (bool, error) { return fn() })
	})

	// fn may use the transaction, on every page: reads in a View, writes
	// too in an Update (which then sees them).
	checkReadsInFn(t, s, "ListSubmissions", bulk+6, func(tx storage.ReadTx, visit func(string, int64) (bool, error)) error {
		return tx.ListSubmissions(storage.SubmissionFilter{After: -1}, func(m storage.SubmissionMeta) (bool, error) {
			return visit(m.ID, m.AuditIndex)
		})
	})
	abort := errors.New("storagetest: abort after writing")
	err := s.Update(t.Context(), func(tx storage.Tx) error {
		n := 0
		if err := tx.ListSubmissions(storage.SubmissionFilter{After: -1}, func(m storage.SubmissionMeta) (bool, error) {
			if n++; n%500 == 1 {
				if err := tx.RecordOpen("reviewer", m.ID, at(11, n)); err != nil {
					return false, fmt.Errorf("RecordOpen inside ListSubmissions' fn: %w", err)
				}
			}
			return true, nil
		}); err != nil {
			return err
		}
		if opens, err := tx.OpensSince("reviewer", time.Time{}); err != nil || opens != (bulk+6+499)/500 {
			return fmt.Errorf("OpensSince after opens recorded during ListSubmissions = %d, %v; want %d", opens, err, (bulk+6+499)/500)
		}
		// Its own insert is visible to the Update's next walk.
		e := mk("e", "E5", "C7", "enum-z", 1)
		if err := deposit(tx, e); err != nil {
			return err
		}
		got, err := ListAll(tx, storage.SubmissionFilter{After: -1, Communes: []string{"C7"}})
		if err != nil {
			return err
		}
		if len(got) != 1 || diffMeta(got[0], metaOf(e)) != nil {
			return fmt.Errorf("ListSubmissions in the Update that inserted e = %+v", got)
		}
		return abort
	})
	if !errors.Is(err, abort) {
		t.Errorf("Update reading ListSubmissions and writing in its fn: err = %v, want %v", err, abort)
	}
	view(t, s, func(tx storage.ReadTx) error {
		if n, err := tx.OpensSince("reviewer", time.Time{}); err != nil || n != 0 {
			t.Errorf("OpensSince after the Update that recorded opens was rolled back = %d, %v; want 0", n, err)
		}
		return nil
	})
}

func showFilter(f storage.SubmissionFilter) string {
	communes := "nil"
	if f.Communes != nil {
		communes = fmt.Sprintf("%d communes", len(f.Communes))
		if len(f.Communes) < 5 {
			communes = fmt.Sprintf("%q", f.Communes)
		}
	}
	return fmt.Sprintf("communes %s, depositor %q, current %v, after %d, limit %d", communes, f.Depositor, f.Current, f.After, f.Limit)
}

// testListSubmissionsTies: submissions sharing an audit index (the
// contract does not forbid it) are each listed once, even when they fill
// more than a page, and a limit counts each once.
func testListSubmissionsTies(t *testing.T, s storage.Store) {
	const tied = 1200
	insertTies(t, s, tied)
	for _, tc := range []struct {
		after int64
		limit int
		n     int
	}{{-1, 0, tied + 2}, {3, 0, tied + 1}, {6, 0, tied + 1}, {7, 0, 1}, {9, 0, 0}, {-1, 1100, 1100}, {3, 1201, 1201}} {
		checkOnceInOrder(t, s, fmt.Sprintf("ListSubmissions(after %d, limit %d)", tc.after, tc.limit), tc.after, tc.n,
			func(tx storage.ReadTx, visit func(string, int64) (bool, error)) error {
				return tx.ListSubmissions(storage.SubmissionFilter{After: tc.after, Limit: tc.limit}, func(m storage.SubmissionMeta) (bool, error) {
					return visit(m.ID, m.AuditIndex)
				})
			})
	}
}

// testListSubmissionsLargeSealed: submissions with sealed parts and
// operational fields of megabytes list as those without: the list is
// their metadata alone. (Each backend's tests also show that its list
// reads no sealed, operational or receipt column.)
func testListSubmissionsLargeSealed(t *testing.T, s storage.Store) {
	var subs []*storage.Submission
	for i := range 3 {
		sub := submission(fmt.Sprintf("big-%d", i), "E1", int64(i+1))
		sub.Sealed[0].Data = binary(byte(i), 3<<20)
		sub.Sealed[1].Data = binary(byte(i+1), 3<<20)
		sub.Operational = append([]byte(`{"notes":"`), append(make([]byte, 1<<20), `"}`...)...)
		for j := 10; j < len(sub.Operational)-2; j++ {
			sub.Operational[j] = 'x'
		}
		sub.Receipt = binary(byte(i+2), 1<<20)
		subs = append(subs, sub)
	}
	small := smallSubmission("small", "E1", 9, 0, 0)
	subs = append(subs, small)
	for _, sub := range subs {
		update(t, s, func(tx storage.Tx) error { return deposit(tx, sub) })
	}
	view(t, s, func(tx storage.ReadTx) error {
		got, err := ListAll(tx, storage.SubmissionFilter{After: -1})
		if err != nil {
			return fmt.Errorf("ListSubmissions: %w", err)
		}
		compareMetas(t, "ListSubmissions of submissions with large sealed parts", got, filterMetas(subs, storage.SubmissionFilter{After: -1}))
		return nil
	})
}

// testRecordOpens: OpensSince counts one user's opens at or after a
// time — an open exactly at since counts, one a nanosecond before does
// not, whatever the zones and however many digits the seconds have;
// every open counts, of the same submission too; other users' opens do
// not. An open is stored only with its Update, and one without a user,
// a submission or a time is refused.
func testRecordOpens(t *testing.T, s storage.Store) {
	base := time.Date(2019, time.April, 1, 10, 0, 0, 0, time.UTC)
	opens := []struct {
		user, sub string
		at        time.Time
	}{
		{"alice", "s1", base.In(ict)},
		// Half a second later: written as text, ".5Z" sorts before
		// "Z", and a whole second before it.
		{"alice", "s2", base.Add(500 * time.Millisecond)},
		{"alice", "s2", base.Add(30 * time.Minute).In(ict)},
		{"alice", "s3", base.Add(time.Hour - time.Nanosecond)},
		{"bob", "s1", base.Add(10 * time.Minute)},
		{"alicia", "s1", base.Add(10 * time.Minute)},
		{"Alice", "s1", base.Add(10 * time.Minute)},
	}
	update(t, s, func(tx storage.Tx) error {
		var errs []error
		for _, o := range opens {
			errs = append(errs, tx.RecordOpen(o.user, o.sub, o.at))
		}
		// Read in the same Update, as the cap is checked before the next
		// open is recorded.
		if n, err := tx.OpensSince("alice", base); err != nil || n != 4 {
			errs = append(errs, fmt.Errorf("OpensSince(alice) in the Update that recorded the opens = %d, %v; want 4", n, err))
		}
		return errors.Join(errs...)
	})
	for _, tc := range []struct {
		user  string
		since time.Time
		want  int64
	}{
		{"alice", time.Time{}, 4},
		{"alice", base.Add(-time.Hour), 4},
		{"alice", base.In(ict), 4},
		{"alice", base.Add(time.Nanosecond), 3},
		{"alice", base.Add(100 * time.Millisecond), 3},
		{"alice", base.Add(500 * time.Millisecond), 3},
		{"alice", base.Add(500*time.Millisecond + time.Nanosecond), 2},
		{"alice", base.Add(time.Second), 2},
		{"alice", base.Add(30 * time.Minute), 2},
		{"alice", base.Add(time.Hour - time.Nanosecond).In(ict), 1},
		{"alice", base.Add(time.Hour), 0},
		{"alice", time.Date(9999, time.December, 31, 0, 0, 0, 0, time.UTC), 0},
		// Far from the present: in Unix nanoseconds, which a backend may
		// store, 1000 and 2500 wrap round to 2169 and 1915.
		{"alice", time.Date(1000, time.January, 1, 0, 0, 0, 0, time.UTC), 4},
		{"alice", time.Date(2500, time.January, 1, 0, 0, 0, 0, time.UTC), 0},
		{"bob", base, 1},
		{"bob", base.Add(10*time.Minute + 1), 0},
		{"alicia", time.Time{}, 1},
		{"Alice", time.Time{}, 1},
		{"carol", time.Time{}, 0},
		{"", time.Time{}, 0},
	} {
		view(t, s, func(tx storage.ReadTx) error {
			if n, err := tx.OpensSince(tc.user, tc.since); err != nil || n != tc.want {
				t.Errorf("OpensSince(%q, %v) = %d, %v; want %d", tc.user, tc.since, n, err, tc.want)
			}
			return nil
		})
	}

	for _, bad := range []struct {
		user, sub string
		at        time.Time
	}{
		{"", "s1", base},
		{"carol", "", base},
		{"carol", "s1", time.Time{}},
	} {
		var recordErr error
		update(t, s, func(tx storage.Tx) error {
			recordErr = tx.RecordOpen(bad.user, bad.sub, bad.at)
			return nil
		})
		if recordErr == nil {
			t.Errorf("RecordOpen(%q, %q, %v) was accepted", bad.user, bad.sub, bad.at)
		}
	}
	// An open far from the present is refused, or else counted at its
	// own instant.
	for _, far := range []time.Time{
		time.Date(1000, time.January, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2500, time.January, 1, 0, 0, 0, 0, time.UTC),
	} {
		user := fmt.Sprintf("dave-%d", far.Year())
		var recordErr error
		update(t, s, func(tx storage.Tx) error {
			recordErr = tx.RecordOpen(user, "s1", far)
			return nil
		})
		view(t, s, func(tx storage.ReadTx) error {
			n, err := tx.OpensSince(user, time.Time{})
			at, err2 := tx.OpensSince(user, far)
			after, err3 := tx.OpensSince(user, far.Add(time.Nanosecond))
			if err := errors.Join(err, err2, err3); err != nil {
				return err
			}
			if want := map[bool]int64{true: 0, false: 1}[recordErr != nil]; n != want || at != want || after != 0 {
				t.Errorf("an open in %d (RecordOpen: %v) counts %d in all, %d since it, %d since a nanosecond later; want %d, %d, 0",
					far.Year(), recordErr, n, at, after, want, want)
			}
			return nil
		})
	}

	// An Update that fails keeps none of its opens: they go with the
	// open's audit event or not at all.
	rolledBack := errors.New("storagetest: roll back")
	err := s.Update(t.Context(), func(tx storage.Tx) error {
		return errors.Join(tx.RecordOpen("carol", "s1", base), rolledBack)
	})
	if !errors.Is(err, rolledBack) {
		t.Errorf("Update recording an open and failing: err = %v", err)
	}
	view(t, s, func(tx storage.ReadTx) error {
		for _, user := range []string{"carol", ""} {
			if n, err := tx.OpensSince(user, time.Time{}); err != nil || n != 0 {
				t.Errorf("OpensSince(%q) after refused and rolled back opens = %d, %v; want 0", user, n, err)
			}
		}
		return nil
	})
}

// testPruneOpens: PruneOpens removes every user's opens stored before
// its time (not one at it) and says how many; again it removes nothing
// more. The count of what is left changes accordingly.
func testPruneOpens(t *testing.T, s storage.Store) {
	base := time.Date(2019, time.April, 2, 10, 0, 0, 0, time.UTC)
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(
			tx.RecordOpen("alice", "s1", base.Add(-25*time.Hour)),
			tx.RecordOpen("alice", "s2", base.Add(-24*time.Hour-time.Nanosecond)),
			tx.RecordOpen("bob", "s1", base.Add(-24*time.Hour-500*time.Millisecond).In(ict)),
			tx.RecordOpen("alice", "s3", base.Add(-24*time.Hour)),
			tx.RecordOpen("bob", "s2", base.Add(-time.Hour)),
			tx.RecordOpen("alice", "s4", base),
		)
	})
	prune := func(before time.Time) int64 {
		t.Helper()
		var n int64
		update(t, s, func(tx storage.Tx) error {
			var err error
			n, err = tx.PruneOpens(before)
			return err
		})
		return n
	}
	count := func(user string) int64 {
		t.Helper()
		var n int64
		view(t, s, func(tx storage.ReadTx) error {
			var err error
			n, err = tx.OpensSince(user, time.Time{})
			return err
		})
		return n
	}
	for _, before := range []time.Time{{}, time.Date(1000, time.January, 1, 0, 0, 0, 0, time.UTC)} {
		if n := prune(before); n != 0 {
			t.Errorf("PruneOpens(%v) removed %d, want 0", before, n)
		}
	}
	if n := prune(base.Add(-24 * time.Hour).In(ict)); n != 3 {
		t.Errorf("PruneOpens(a day before) removed %d, want 3", n)
	}
	if a, b := count("alice"), count("bob"); a != 2 || b != 1 {
		t.Errorf("after pruning, alice has %d opens and bob %d; want 2 and 1", a, b)
	}
	if n := prune(base.Add(-24 * time.Hour)); n != 0 {
		t.Errorf("PruneOpens again removed %d, want 0", n)
	}
	rolledBack := errors.New("storagetest: roll back")
	err := s.Update(t.Context(), func(tx storage.Tx) error {
		n, err := tx.PruneOpens(base.Add(time.Hour))
		if err != nil || n != 3 {
			return fmt.Errorf("PruneOpens of all = %d, %v; want 3", n, err)
		}
		return rolledBack
	})
	if !errors.Is(err, rolledBack) {
		t.Errorf("Update pruning and failing: err = %v", err)
	}
	if a := count("alice"); a != 2 {
		t.Errorf("after a rolled back prune alice has %d opens, want 2", a)
	}
	if n := prune(time.Date(9999, time.January, 1, 0, 0, 0, 0, time.UTC)); n != 3 {
		t.Errorf("PruneOpens(far future) removed %d, want 3", n)
	}
	if a, b := count("alice"), count("bob"); a != 0 || b != 0 {
		t.Errorf("after pruning all, alice has %d opens and bob %d", a, b)
	}
}
