package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/censusvault/censusvault/storage"
)

// readUser reads one user by name and by token hash, failing the test
// when the two differ or either fails.
func readUser(t *testing.T, s storage.Store, name string) *storage.User {
	t.Helper()
	var u *storage.User
	view(t, s, func(tx storage.ReadTx) error {
		var err error
		if u, err = tx.User(name); err != nil {
			return fmt.Errorf("User(%q): %w", name, err)
		}
		byToken, err := tx.UserByTokenHash(u.TokenHash)
		if err != nil {
			return fmt.Errorf("UserByTokenHash of %s: %w", name, err)
		}
		if d := diffUser(byToken, u); d != nil {
			t.Errorf("UserByTokenHash of %s differs from User: %v", name, d)
		}
		return nil
	})
	return u
}

// testGrantProjects: a grant's project is part of what makes it unique,
// so one (role, area, deny) may be granted for several projects; grants
// read back in (role, area, deny, project) order, strings in byte order,
// also across Grants' pages.
func testGrantProjects(t *testing.T, s storage.Store) {
	researcher := func(deny bool, project string) storage.Grant {
		return storage.Grant{Role: "researcher", Area: "P01", Deny: deny, Project: project}
	}
	rhea := &storage.User{
		Name: "rhea", TokenHash: tokenHash("rhea-token"), CreatedAt: at(8, 0),
		// Unordered on purpose. "Zeta" sorts before "alpha" in byte
		// order, after it in most locales.
		Grants: []storage.Grant{
			researcher(false, "p-2"),
			researcher(true, "p-2"),
			researcher(false, ""),
			researcher(false, "alpha"),
			researcher(false, "Zeta"),
			{Role: "auditor", Area: "VN", Project: "p-2"},
		},
	}
	ann := &storage.User{Name: "ann", TokenHash: tokenHash("ann-token"), CreatedAt: at(8, 1),
		Grants: []storage.Grant{researcher(false, "p-2")}}
	update(t, s, func(tx storage.Tx) error { return errors.Join(tx.InsertUser(rhea), tx.InsertUser(ann)) })

	wantRhea := *rhea
	wantRhea.Grants = []storage.Grant{
		{Role: "auditor", Area: "VN", Project: "p-2"},
		researcher(false, ""),
		researcher(false, "Zeta"),
		researcher(false, "alpha"),
		researcher(false, "p-2"),
		researcher(true, "p-2"),
	}
	if d := diffUser(readUser(t, s, "rhea"), &wantRhea); d != nil {
		t.Errorf("User(rhea): %v", d)
	}

	for _, g := range []storage.Grant{researcher(false, "alpha"), researcher(false, ""), researcher(true, "p-2")} {
		err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.AddGrant("rhea", g) })
		if !errors.Is(err, storage.ErrConflict) {
			t.Errorf("AddGrant of an existing grant %+v: err = %v, want ErrConflict", g, err)
		}
	}
	twice := &storage.User{Name: "tess", TokenHash: tokenHash("tess-token"), CreatedAt: at(8, 2),
		Grants: []storage.Grant{researcher(false, "p-9"), researcher(false, "p-9")}}
	if err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.InsertUser(twice) }); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("InsertUser with the same grant twice: err = %v, want ErrConflict", err)
	}
	view(t, s, func(tx storage.ReadTx) error {
		if _, err := tx.User("tess"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("User(tess) after a refused InsertUser: err = %v, want ErrNotFound", err)
		}
		return nil
	})

	// A new project for the same (role, area, deny) is a new grant.
	update(t, s, func(tx storage.Tx) error { return tx.AddGrant("rhea", researcher(true, "")) })
	wantRhea.Grants = append(wantRhea.Grants[:5:5], researcher(true, ""), researcher(true, "p-2"))
	if d := diffUser(readUser(t, s, "rhea"), &wantRhea); d != nil {
		t.Errorf("User(rhea) after AddGrant: %v", d)
	}

	// More grants than a page of Grants, differing only in project: a
	// keyset that left the project out would skip or repeat them.
	const many = 1100
	bulk := &storage.User{Name: "bulk", TokenHash: tokenHash("bulk-token"), CreatedAt: at(8, 3)}
	for i := range many {
		// Inserted in reverse: the order comes from the store.
		bulk.Grants = append(bulk.Grants, researcher(false, fmt.Sprintf("p%04d", many-1-i)))
	}
	update(t, s, func(tx storage.Tx) error { return tx.InsertUser(bulk) })

	type row struct {
		user string
		g    storage.Grant
	}
	var want []row
	for _, g := range ann.Grants {
		want = append(want, row{"ann", g})
	}
	for i := range many {
		want = append(want, row{"bulk", researcher(false, fmt.Sprintf("p%04d", i))})
	}
	for _, g := range wantRhea.Grants {
		want = append(want, row{"rhea", g})
	}
	view(t, s, func(tx storage.ReadTx) error {
		var got []row
		if err := tx.Grants(func(u string, g storage.Grant) error {
			got = append(got, row{u, g})
			return nil
		}); err != nil {
			return err
		}
		if len(got) != len(want) {
			t.Errorf("Grants returned %d grants, want %d", len(got), len(want))
		}
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Errorf("Grants[%d] = %+v, want %+v", i, got[i], want[i])
				break
			}
		}
		return nil
	})
	u := readUser(t, s, "bulk")
	if len(u.Grants) != many || u.Grants[0].Project != "p0000" || u.Grants[many-1].Project != fmt.Sprintf("p%04d", many-1) {
		t.Errorf("User(bulk) has %d grants, want %d in project order", len(u.Grants), many)
	}
}

// testSetRecipient: a user's recipient is stored by InsertUser, set and
// cleared by SetRecipient, and read by User and UserByTokenHash; an
// unknown user is ErrNotFound and changes nothing.
func testSetRecipient(t *testing.T, s storage.Store) {
	const (
		r1 = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq"
		r2 = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"
	)
	alice := &storage.User{Name: "alice", TokenHash: tokenHash("a"), CreatedAt: at(8, 0), Recipient: r1,
		Grants: []storage.Grant{{Role: "researcher", Area: "VN", Project: "p-1"}}}
	bob := &storage.User{Name: "bob", TokenHash: tokenHash("b"), CreatedAt: at(8, 1), ExpiresAt: at(20, 0)}
	update(t, s, func(tx storage.Tx) error { return errors.Join(tx.InsertUser(alice), tx.InsertUser(bob)) })
	check := func(when string, want ...*storage.User) {
		t.Helper()
		for _, w := range want {
			if d := diffUser(readUser(t, s, w.Name), w); d != nil {
				t.Errorf("User(%s) %s: %v", w.Name, when, d)
			}
		}
	}
	check("after InsertUser", alice, bob)

	update(t, s, func(tx storage.Tx) error { return tx.SetRecipient("bob", r2) })
	wantBob := *bob
	wantBob.Recipient = r2
	check("after SetRecipient(bob)", alice, &wantBob)

	update(t, s, func(tx storage.Tx) error { return tx.SetRecipient("alice", r2) })
	wantAlice := *alice
	wantAlice.Recipient = r2
	check("after SetRecipient(alice) replaced it", &wantAlice, &wantBob)

	update(t, s, func(tx storage.Tx) error { return tx.SetRecipient("alice", "") })
	wantAlice.Recipient = ""
	check("after SetRecipient(alice, \"\") cleared it", &wantAlice, &wantBob)

	err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.SetRecipient("mallory", r1) })
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("SetRecipient of an unknown user: err = %v, want ErrNotFound", err)
	}
	view(t, s, func(tx storage.ReadTx) error {
		if _, err := tx.User("mallory"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("User(mallory) after SetRecipient of an unknown user: err = %v, want ErrNotFound", err)
		}
		return nil
	})
	check("after SetRecipient of an unknown user", &wantAlice, &wantBob)
}

// deposit appends the audit record of sub and stores sub with that
// record's index, as the broker does in one Update.
func deposit(tx storage.Tx, sub *storage.Submission) error {
	r, err := tx.AppendAudit(appendEvent("deposit " + sub.ID))
	if err != nil {
		return err
	}
	sub.AuditIndex = r.Index
	return tx.InsertSubmission(sub)
}

// smallSubmission is a submission whose sealed parts are a few bytes
// that name it, so that rows mixed up between submissions show.
func smallSubmission(id, area string, householdNo int64, identKV, analyticKV int) *storage.Submission {
	sub := submission(id, area, householdNo)
	sub.Operational = nil
	sub.Sealed = nil
	if identKV > 0 {
		sub.Sealed = append(sub.Sealed, storage.Sealed{Class: "identifying", KeyVersion: identKV, Data: []byte("ident\x00" + id)})
	}
	if analyticKV > 0 {
		sub.Sealed = append(sub.Sealed, storage.Sealed{Class: "analytic", KeyVersion: analyticKV, Data: []byte("analytic\x00" + id)})
	}
	return sub
}

// rowOf is what SubmissionsSince returns of sub for class.
func rowOf(sub *storage.Submission, supersedes int64, class string) storage.SubmissionRow {
	r := storage.SubmissionRow{
		ID: sub.ID, Area: sub.Area, Commune: sub.Commune, HouseholdNo: sub.HouseholdNo,
		Form: sub.Form, FormVersion: sub.FormVersion, AuditIndex: sub.AuditIndex, SupersedesIndex: supersedes,
	}
	for _, p := range sub.Sealed {
		if p.Class == class {
			r.Sealed = p
		}
	}
	return r
}

// diffRow lists how got differs from want. A part the submission does
// not have must come back with empty Data; its class and key version are
// not looked at.
func diffRow(got, want storage.SubmissionRow) []string {
	var d []string
	if got.ID != want.ID || got.Area != want.Area || got.Commune != want.Commune || got.HouseholdNo != want.HouseholdNo ||
		got.Form != want.Form || got.FormVersion != want.FormVersion {
		d = append(d, fmt.Sprintf("id/area/commune/household/form/version = %s/%s/%s/%d/%s/%d, want %s/%s/%s/%d/%s/%d",
			got.ID, got.Area, got.Commune, got.HouseholdNo, got.Form, got.FormVersion,
			want.ID, want.Area, want.Commune, want.HouseholdNo, want.Form, want.FormVersion))
	}
	if got.AuditIndex != want.AuditIndex || got.SupersedesIndex != want.SupersedesIndex {
		d = append(d, fmt.Sprintf("AuditIndex/SupersedesIndex = %d/%d, want %d/%d",
			got.AuditIndex, got.SupersedesIndex, want.AuditIndex, want.SupersedesIndex))
	}
	if len(want.Sealed.Data) == 0 {
		if len(got.Sealed.Data) != 0 {
			d = append(d, fmt.Sprintf("Sealed has %d bytes, want none: the submission has no part of that class", len(got.Sealed.Data)))
		}
	} else if got.Sealed.Class != want.Sealed.Class || got.Sealed.KeyVersion != want.Sealed.KeyVersion ||
		!bytes.Equal(got.Sealed.Data, want.Sealed.Data) {
		d = append(d, fmt.Sprintf("Sealed = %s v%d %q, want %s v%d %q", got.Sealed.Class, got.Sealed.KeyVersion, got.Sealed.Data,
			want.Sealed.Class, want.Sealed.KeyVersion, want.Sealed.Data))
	}
	return d
}

// testSubmissionsSince: every submission past an audit index, in audit
// order across several pages, superseded ones included with the index of
// what they replaced, with only the sealed part of the class asked for;
// fn may stop, fail, and use the transaction between rows.
func testSubmissionsSince(t *testing.T, s storage.Store) {
	const bulk = 2500 // more than two pages of any backend's
	a := smallSubmission("a", "E1", 1, 1, 1)
	b := smallSubmission("b", "E1", 2, 2, 0) // identifying only
	c := smallSubmission("c", "E2", 1, 0, 3) // analytic only
	a2 := smallSubmission("a2", "E1", 1, 4, 5)
	a2.Supersedes = "a"
	a3 := smallSubmission("a3", "E1", 1, 6, 0)
	a3.Supersedes = "a2"
	var others []*storage.Submission
	for i := range bulk {
		sub := smallSubmission(fmt.Sprintf("bulk-%04d", i), "E9", int64(i+1), 7, 8)
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
		return errors.Join(err, deposit(tx, c))
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
	if a.AuditIndex != 1 || b.AuditIndex != 2 || c.AuditIndex != 4 || a3.AuditIndex != bulk+6 {
		t.Fatalf("fixture audit indexes a %d, b %d, c %d, a3 %d; want 1, 2, 4, %d", a.AuditIndex, b.AuditIndex, c.AuditIndex, a3.AuditIndex, bulk+6)
	}

	want := func(after int64, class string) []storage.SubmissionRow {
		var rows []storage.SubmissionRow
		add := func(sub *storage.Submission, supersedes int64) {
			if sub.AuditIndex > after {
				rows = append(rows, rowOf(sub, supersedes, class))
			}
		}
		add(a, -1)
		add(b, -1)
		add(c, -1)
		for _, sub := range others {
			add(sub, -1)
		}
		add(a2, a.AuditIndex)
		add(a3, a2.AuditIndex)
		return rows
	}
	since := func(tx storage.ReadTx, after int64, class string) ([]storage.SubmissionRow, error) {
		var got []storage.SubmissionRow
		err := tx.SubmissionsSince(after, class, func(r storage.SubmissionRow) (bool, error) {
			got = append(got, r)
			return true, nil
		})
		return got, err
	}
	compare := func(what string, got, want []storage.SubmissionRow) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s returned %d rows, want %d", what, len(got), len(want))
		}
		for i := range min(len(got), len(want)) {
			if d := diffRow(got[i], want[i]); d != nil {
				t.Errorf("%s: row %d (%s): %v", what, i, want[i].ID, d)
				return
			}
		}
	}
	view(t, s, func(tx storage.ReadTx) error {
		for _, class := range []string{"identifying", "analytic"} {
			for _, after := range []int64{-1, 0, 1, 2, 3, 4, 1000, bulk + 3, bulk + 4, bulk + 5, bulk + 6, 1 << 40} {
				got, err := since(tx, after, class)
				if err != nil {
					return fmt.Errorf("SubmissionsSince(%d, %s): %w", after, class, err)
				}
				compare(fmt.Sprintf("SubmissionsSince(%d, %s)", after, class), got, want(after, class))
			}
		}
		return nil
	})

	for _, class := range []string{"", "operational", "Identifying", "ident"} {
		calls := 0
		err := s.View(t.Context(), func(tx storage.ReadTx) error {
			return tx.SubmissionsSince(-1, class, func(storage.SubmissionRow) (bool, error) { calls++; return true, nil })
		})
		if err == nil || calls != 0 {
			t.Errorf("SubmissionsSince of class %q: err = %v after %d rows, want an error and no rows", class, err, calls)
		}
	}

	// fn stops the walk, on the first page or a later one; fn's error is
	// returned and ends the walk.
	checkStopAndFail(t, s, "SubmissionsSince", func(tx storage.ReadTx, fn func() (bool, error)) error {
		return tx.SubmissionsSince(-1, "analytic", func(storage.SubmissionRow) (bool, error) { return fn() })
	}, func(tx storage.ReadTx, fn func() (bool, error)) error {
		return tx.SubmissionsSince(-1, "identifying", func(storage.SubmissionRow) (bool, error) { return fn() })
	})

	// fn may use the transaction, on every page: reads in a View, writes
	// too in an Update (which then sees them).
	checkReadsInFn(t, s, "SubmissionsSince", bulk+5, func(tx storage.ReadTx, visit func(string, int64) (bool, error)) error {
		return tx.SubmissionsSince(-1, "identifying", func(r storage.SubmissionRow) (bool, error) {
			return visit(r.ID, r.AuditIndex)
		})
	})
	abort := errors.New("storagetest: abort after writing")
	err := s.Update(t.Context(), func(tx storage.Tx) error {
		n := 0
		if err := tx.SubmissionsSince(bulk, "analytic", func(r storage.SubmissionRow) (bool, error) {
			if n++; n%500 == 1 {
				if err := tx.PutMeta("seen", r.ID); err != nil {
					return false, fmt.Errorf("PutMeta inside SubmissionsSince's fn: %w", err)
				}
			}
			return true, nil
		}); err != nil {
			return err
		}
		if n != 6 {
			return fmt.Errorf("SubmissionsSince(%d) in an Update called fn %d times, want 6", bulk, n)
		}
		// Its own insert is visible to the Update's next walk.
		d := smallSubmission("d", "E3", 1, 9, 9)
		if err := deposit(tx, d); err != nil {
			return err
		}
		var last storage.SubmissionRow
		if err := tx.SubmissionsSince(a3.AuditIndex, "analytic", func(r storage.SubmissionRow) (bool, error) {
			last = r
			return true, nil
		}); err != nil {
			return err
		}
		if diff := diffRow(last, rowOf(d, -1, "analytic")); diff != nil {
			return fmt.Errorf("SubmissionsSince in the Update that inserted d: %v", diff)
		}
		return abort
	})
	if !errors.Is(err, abort) {
		t.Errorf("Update reading SubmissionsSince and writing in its fn: err = %v, want %v", err, abort)
	}
}

// checkStopAndFail checks that a listing (name) stops when its fn
// returns false, on the first page or a later one (stop runs the listing
// in tx, calling fn for each row), and that an error of fn is returned
// and ends the listing at once (fail runs a listing of at least 1200
// rows).
func checkStopAndFail(t *testing.T, s storage.Store, name string, stop, fail func(tx storage.ReadTx, fn func() (bool, error)) error) {
	t.Helper()
	for _, stopAt := range []int{1, 1000, 1500} {
		calls := 0
		view(t, s, func(tx storage.ReadTx) error {
			return stop(tx, func() (bool, error) {
				calls++
				return calls < stopAt, nil
			})
		})
		if calls != stopAt {
			t.Errorf("%s whose fn returns false at row %d called it %d times", name, stopAt, calls)
		}
	}
	boom := errors.New("storagetest: stop with an error")
	calls := 0
	err := s.View(t.Context(), func(tx storage.ReadTx) error {
		return fail(tx, func() (bool, error) {
			calls++
			if calls == 1200 {
				return true, boom
			}
			return true, nil
		})
	})
	if !errors.Is(err, boom) || calls != 1200 {
		t.Errorf("%s whose fn fails at row 1200: err = %v after %d calls, want its error after 1200", name, err, calls)
	}
}

// checkReadsInFn checks, in a View, that the fn of a listing (name) may
// read from the transaction on every page: walk runs the listing in tx
// and calls visit with each row's id and audit index; every 250th row,
// visit reads that submission and finds the row's audit index. The
// listing must call fn want times.
func checkReadsInFn(t *testing.T, s storage.Store, name string, want int,
	walk func(tx storage.ReadTx, visit func(id string, auditIndex int64) (bool, error)) error) {
	t.Helper()
	view(t, s, func(tx storage.ReadTx) error {
		n := 0
		err := walk(tx, func(id string, auditIndex int64) (bool, error) {
			if n++; n%250 == 1 {
				sub, err := tx.Submission(id)
				if err != nil {
					return false, fmt.Errorf("Submission(%s) inside the fn of %s: %w", id, name, err)
				}
				if sub.AuditIndex != auditIndex {
					return false, fmt.Errorf("Submission(%s).AuditIndex = %d inside fn, the row says %d", id, sub.AuditIndex, auditIndex)
				}
			}
			return true, nil
		})
		if err == nil && n != want {
			err = fmt.Errorf("%s called fn %d times, want %d", name, n, want)
		}
		return err
	})
}

// insertTies inserts tied submissions sharing audit index 7, between
// "before" (audit index 3) and "after" (audit index 9).
func insertTies(t *testing.T, s storage.Store, tied int) {
	t.Helper()
	update(t, s, func(tx storage.Tx) error {
		for i := range tied {
			sub := smallSubmission(fmt.Sprintf("t%04d", i), "E1", int64(i), 1, 1)
			sub.AuditIndex = 7
			if err := tx.InsertSubmission(sub); err != nil {
				return err
			}
		}
		before, after := smallSubmission("before", "E2", 1, 1, 1), smallSubmission("after", "E2", 2, 1, 1)
		before.AuditIndex, after.AuditIndex = 3, 9
		return errors.Join(tx.InsertSubmission(before), tx.InsertSubmission(after))
	})
}

// checkOnceInOrder checks, in a View, that a listing (what) past audit
// index after gives want distinct submissions, none twice, in audit
// order and all past after: walk runs the listing in tx and calls visit
// with each row's id and audit index.
func checkOnceInOrder(t *testing.T, s storage.Store, what string, after int64, want int,
	walk func(tx storage.ReadTx, visit func(id string, auditIndex int64) (bool, error)) error) {
	t.Helper()
	seen := make(map[string]bool)
	prev := int64(-1)
	var problems []string
	view(t, s, func(tx storage.ReadTx) error {
		return walk(tx, func(id string, auditIndex int64) (bool, error) {
			if seen[id] {
				problems = append(problems, id+" twice")
			}
			if auditIndex < prev || auditIndex <= after {
				problems = append(problems, fmt.Sprintf("%s at audit index %d after %d", id, auditIndex, prev))
			}
			seen[id], prev = true, auditIndex
			return true, nil
		})
	})
	if len(seen) != want || problems != nil {
		t.Errorf("%s returned %d submissions, want %d; %.5q", what, len(seen), want, problems)
	}
}

// testSubmissionsSinceTies: submissions sharing an audit index (the
// contract does not forbid it) are each returned once, even when they
// fill more than a page.
func testSubmissionsSinceTies(t *testing.T, s storage.Store) {
	const tied = 1200
	insertTies(t, s, tied)
	for _, tc := range []struct {
		after int64
		n     int
	}{{-1, tied + 2}, {3, tied + 1}, {6, tied + 1}, {7, 1}, {9, 0}} {
		checkOnceInOrder(t, s, fmt.Sprintf("SubmissionsSince(%d)", tc.after), tc.after, tc.n,
			func(tx storage.ReadTx, visit func(string, int64) (bool, error)) error {
				return tx.SubmissionsSince(tc.after, "analytic", func(r storage.SubmissionRow) (bool, error) {
					return visit(r.ID, r.AuditIndex)
				})
			})
	}
}
