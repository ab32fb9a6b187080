package storagetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
)

// grantModel and grantPolicy stand for a role policy: multi-line text
// with quotes and Vietnamese, which must come back byte for byte.
const (
	grantModel  = "[request_definition]\nr = sub, act, res\n\n[policy_effect]\ne = some(where (p.eft == allow)) && !some(where (p.eft == deny))\n"
	grantPolicy = "p, enumerator, submission.deposit, allow\n# \"tổ trưởng\" = team leader\np, team_leader, submission.review, allow\n"
)

// logGrant is a grant or ungrant entry of the grant log at audit index
// idx; its Seq is 99, which AppendGrantLog must overwrite.
func logGrant(op storage.GrantOp, user string, g storage.Grant, idx int64) *storage.GrantLogEntry {
	return &storage.GrantLogEntry{Seq: 99, AuditIndex: idx, At: at(14, int(idx)), Op: op, User: user, Grant: g,
		PolicyHash: fmt.Sprintf("%064x", idx)}
}

// logPolicy is a policy or start entry of the grant log at audit index
// idx.
func logPolicy(op storage.GrantOp, idx int64) *storage.GrantLogEntry {
	return &storage.GrantLogEntry{Seq: 99, AuditIndex: idx, At: at(14, int(idx)), Op: op, Model: grantModel,
		Policy: fmt.Sprintf("%s# version %d\n", grantPolicy, idx), PolicyHash: fmt.Sprintf("%064x", idx)}
}

// diffGrantLogEntry lists how got differs from want.
func diffGrantLogEntry(got, want storage.GrantLogEntry) []string {
	var d []string
	if got.Seq != want.Seq || got.AuditIndex != want.AuditIndex || got.Op != want.Op || got.User != want.User ||
		got.Grant != want.Grant || got.PolicyHash != want.PolicyHash {
		d = append(d, fmt.Sprintf("entry = %d/%d/%s/%q/%+v/%s, want %d/%d/%s/%q/%+v/%s",
			got.Seq, got.AuditIndex, got.Op, got.User, got.Grant, got.PolicyHash,
			want.Seq, want.AuditIndex, want.Op, want.User, want.Grant, want.PolicyHash))
	}
	if got.Model != want.Model || got.Policy != want.Policy {
		d = append(d, fmt.Sprintf("entry %d: Model, Policy = %q, %q; want %q, %q", want.Seq, got.Model, got.Policy, want.Model, want.Policy))
	}
	if e := checkTime("At", got.At, want.At); e != nil {
		d = append(d, fmt.Sprintf("entry %d: %v", want.Seq, e))
	}
	return d
}

// readGrantLog reads the grant log after Seq after.
func readGrantLog(t *testing.T, s storage.Store, after int64) []storage.GrantLogEntry {
	t.Helper()
	return readAll(t, s, func(tx storage.ReadTx, fn func(storage.GrantLogEntry) (bool, error)) error {
		return tx.GrantLog(after, fn)
	})
}

// checkGrantLog checks that the whole log is want.
func checkGrantLog(t *testing.T, s storage.Store, when string, want ...storage.GrantLogEntry) {
	t.Helper()
	got := readGrantLog(t, s, 0)
	if len(got) != len(want) {
		t.Fatalf("%s: the grant log has %d entries, want %d: %+v", when, len(got), len(want), got)
	}
	for i := range want {
		if d := diffGrantLogEntry(got[i], want[i]); d != nil {
			t.Errorf("%s: %v", when, d)
		}
	}
}

// grantProposal is a proposal of a grant or ungrant; its Seq is 99,
// which ProposeGrant must overwrite.
func grantProposal(kind storage.GrantOp, user string, g storage.Grant, idx int64) *storage.GrantProposal {
	return &storage.GrantProposal{Seq: 99, Kind: kind, User: user, Grant: g, Reason: "needs " + g.Role,
		ProposedBy: "admin-1", ProposedAt: at(15, int(idx)), ProposalAudit: idx}
}

// policyProposal is a proposal of a new role policy.
func policyProposal(idx int64) *storage.GrantProposal {
	return &storage.GrantProposal{Seq: 99, Kind: storage.GrantOpPolicy, Model: grantModel, Policy: grantPolicy,
		Reason: "processors may download extracts", ProposedBy: "admin-1", ProposedAt: at(15, int(idx)), ProposalAudit: idx}
}

// diffGrantProposal lists how got differs from want.
func diffGrantProposal(got, want storage.GrantProposal) []string {
	var d []string
	if got.Seq != want.Seq || got.Kind != want.Kind || got.User != want.User || got.Grant != want.Grant ||
		got.Model != want.Model || got.Policy != want.Policy || got.Reason != want.Reason ||
		got.ProposedBy != want.ProposedBy || got.ProposalAudit != want.ProposalAudit ||
		got.ConfirmedBy != want.ConfirmedBy || got.ConfirmAudit != want.ConfirmAudit {
		d = append(d, fmt.Sprintf("proposal = %+v, want %+v", got, want))
	}
	for _, e := range []error{checkTime("ProposedAt", got.ProposedAt, want.ProposedAt), checkTime("ConfirmedAt", got.ConfirmedAt, want.ConfirmedAt)} {
		if e != nil {
			d = append(d, fmt.Sprintf("proposal %d: %v", want.Seq, e))
		}
	}
	return d
}

func readGrantProposals(t *testing.T, s storage.Store) []storage.GrantProposal {
	t.Helper()
	return readAll(t, s, func(tx storage.ReadTx, fn func(storage.GrantProposal) (bool, error)) error {
		return tx.GrantProposals(fn)
	})
}

// checkGrantProposals checks that GrantProposals gives want, and
// GrantProposal each of them.
func checkGrantProposals(t *testing.T, s storage.Store, when string, want ...storage.GrantProposal) {
	t.Helper()
	got := readGrantProposals(t, s)
	if len(got) != len(want) {
		t.Fatalf("%s: %d grant proposals, want %d: %+v", when, len(got), len(want), got)
	}
	for i := range want {
		if d := diffGrantProposal(got[i], want[i]); d != nil {
			t.Errorf("%s: GrantProposals: %v", when, d)
		}
	}
	view(t, s, func(tx storage.ReadTx) error {
		for _, w := range want {
			p, err := tx.GrantProposal(w.Seq)
			if err != nil {
				t.Errorf("%s: GrantProposal(%d): %v", when, w.Seq, err)
				continue
			}
			if d := diffGrantProposal(*p, w); d != nil {
				t.Errorf("%s: GrantProposal(%d): %v", when, w.Seq, d)
			}
		}
		return nil
	})
}

// sortGrants orders grants as the store gives them: by role, area, deny
// (false first), project, strings in byte order.
func sortGrants(gs []storage.Grant) {
	slices.SortFunc(gs, func(a, b storage.Grant) int {
		deny := func(g storage.Grant) int {
			if g.Deny {
				return 1
			}
			return 0
		}
		return cmp.Or(strings.Compare(a.Role, b.Role), strings.Compare(a.Area, b.Area),
			cmp.Compare(deny(a), deny(b)), strings.Compare(a.Project, b.Project))
	})
}

// listUsers reads Users(after, limit).
func listUsers(t *testing.T, s storage.Store, after string, limit int) []storage.User {
	t.Helper()
	return readAll(t, s, func(tx storage.ReadTx, fn func(storage.User) (bool, error)) error {
		return tx.Users(after, limit, fn)
	})
}

// testUsersList: Users lists users in byte order of their names (upper
// case before lower, ASCII before Vietnamese, not a dictionary's order),
// each with its grants in User's order, after a name (one stored or
// not) and up to a limit, across more users than any backend reads at
// once; fn may write in the transaction between reads, and stopping or
// failing ends the listing.
func testUsersList(t *testing.T, s storage.Store) {
	if got := listUsers(t, s, "", 0); len(got) != 0 {
		t.Fatalf("Users of an empty store: %+v", got)
	}
	names := []string{"Zed", "a b", "a-b", "aa", "alice", "Ánh", "ông", "đức"}
	for i := range 600 {
		names = append(names, fmt.Sprintf("u%04d", i))
	}
	want := make(map[string]*storage.User)
	var users []*storage.User
	for i, n := range names {
		u := &storage.User{Name: n, TokenHash: tokenHash("token " + n), CreatedAt: at(8, i), Recipient: fmt.Sprint("age1-", i%2)}
		if i%5 == 1 {
			u.ExpiresAt = at(20, i)
		}
		// Grants unordered on purpose; some users have none.
		for j := range i % 4 {
			u.Grants = append(u.Grants, storage.Grant{Role: []string{"supervisor", "enumerator", "auditor"}[j%3],
				Area: fmt.Sprintf("E%02d", 9-j), Deny: j == 2, Project: []string{"", "p2", "p1"}[j%3]})
		}
		users = append(users, u)
		w := *u
		w.Grants = slices.Clone(u.Grants)
		sortGrants(w.Grants)
		want[n] = &w
	}
	// Inserted in reverse, so insertion order is not name order.
	update(t, s, func(tx storage.Tx) error {
		var err error
		for _, u := range slices.Backward(users) {
			err = errors.Join(err, tx.InsertUser(u))
		}
		return err
	})
	sorted := slices.Clone(names)
	slices.Sort(sorted)

	check := func(what string, got []storage.User, wantNames []string) {
		t.Helper()
		gotNames := fields(got, func(u storage.User) string { return u.Name })
		if !slices.Equal(gotNames, wantNames) {
			t.Errorf("%s: %d users %q…, want %d %q…", what, len(gotNames), gotNames[:min(len(gotNames), 10)],
				len(wantNames), wantNames[:min(len(wantNames), 10)])
			return
		}
		for _, u := range got {
			if d := diffUser(&u, want[u.Name]); d != nil {
				t.Errorf("%s: user %q: %v", what, u.Name, d)
			}
		}
	}
	check(`Users("", 0)`, listUsers(t, s, "", 0), sorted)
	if sorted[0] != "Zed" || sorted[len(sorted)-1] != "đức" {
		t.Fatalf("the fixture's byte order is not what testUsersList expects: %q … %q", sorted[0], sorted[len(sorted)-1])
	}
	check(`Users(a stored name, 0)`, listUsers(t, s, sorted[300], 0), sorted[301:])
	check(`Users(a name not stored, 0)`, listUsers(t, s, "u0300a", 0), sorted[slices.Index(sorted, "u0301"):])
	check(`Users(past the last, 0)`, listUsers(t, s, "đức", 0), nil)
	for _, limit := range []int{1, 3, 255, 256, 257, 300, len(sorted), len(sorted) + 5, -1} {
		n := len(sorted)
		if limit > 0 {
			n = min(limit, n)
		}
		check(fmt.Sprintf(`Users("", %d)`, limit), listUsers(t, s, "", limit), sorted[:n])
	}
	check(`Users(a stored name, 300)`, listUsers(t, s, sorted[100], 300), sorted[101:401])

	// fn writes in the transaction, on every user, between reads.
	seen := 0
	update(t, s, func(tx storage.Tx) error {
		seen = 0
		return tx.Users("", 0, func(u storage.User) (bool, error) {
			seen++
			return true, tx.SetRecipient(u.Name, "age1-seen")
		})
	})
	if seen != len(sorted) {
		t.Errorf("Users with a writing fn saw %d users, want %d", seen, len(sorted))
	}
	for _, u := range listUsers(t, s, "", 0) {
		if u.Recipient != "age1-seen" {
			t.Errorf("user %q has recipient %q after fn set it", u.Name, u.Recipient)
			break
		}
	}

	n := 0
	view(t, s, func(tx storage.ReadTx) error {
		n = 0
		return tx.Users("", 0, func(storage.User) (bool, error) { n++; return n < 2, nil })
	})
	if n != 2 {
		t.Errorf("Users went on after fn returned false: %d calls", n)
	}
	stop := errors.New("storagetest: stop")
	if err := s.View(t.Context(), func(tx storage.ReadTx) error {
		return tx.Users("", 0, func(storage.User) (bool, error) { return true, stop })
	}); !errors.Is(err, stop) {
		t.Errorf("Users with a failing fn: err = %v, want fn's", err)
	}
}

// testRemoveGrant: RemoveGrant removes the one grant equal in role,
// area, deny and project, and nothing else; a grant the user does not
// hold (differing in deny or project only included) or an unknown user
// is ErrNotFound, changes nothing and leaves the Update usable.
func testRemoveGrant(t *testing.T, s storage.Store) {
	alice := &storage.User{Name: "alice", TokenHash: tokenHash("a"), CreatedAt: at(8, 0), Grants: []storage.Grant{
		{Role: "enumerator", Area: "E1"},
		{Role: "enumerator", Area: "E1", Deny: true},
		{Role: "researcher", Area: "P01", Project: "p1"},
		{Role: "researcher", Area: "P01", Project: "p2"},
	}}
	bob := &storage.User{Name: "bob", TokenHash: tokenHash("b"), CreatedAt: at(8, 1), Grants: []storage.Grant{{Role: "enumerator", Area: "E1"}}}
	update(t, s, func(tx storage.Tx) error { return errors.Join(tx.InsertUser(alice), tx.InsertUser(bob)) })

	refused := map[string]error{}
	update(t, s, func(tx storage.Tx) error {
		if err := tx.RemoveGrant("alice", storage.Grant{Role: "enumerator", Area: "E1"}); err != nil {
			return err
		}
		for what, rm := range map[string]func() error{
			"removed already":         func() error { return tx.RemoveGrant("alice", storage.Grant{Role: "enumerator", Area: "E1"}) },
			"another project":         func() error { return tx.RemoveGrant("alice", storage.Grant{Role: "researcher", Area: "P01"}) },
			"another area":            func() error { return tx.RemoveGrant("alice", storage.Grant{Role: "enumerator", Area: "E2"}) },
			"another role":            func() error { return tx.RemoveGrant("alice", storage.Grant{Role: "auditor", Area: "E1", Deny: true}) },
			"a deny held as an allow": func() error { return tx.RemoveGrant("bob", storage.Grant{Role: "enumerator", Area: "E1", Deny: true}) },
			"an unknown user":         func() error { return tx.RemoveGrant("mallory", storage.Grant{Role: "enumerator", Area: "E1"}) },
			"another user's grant": func() error {
				return tx.RemoveGrant("bob", storage.Grant{Role: "researcher", Area: "P01", Project: "p1"})
			},
			"a user named by no grant": func() error { return tx.RemoveGrant("", storage.Grant{Role: "enumerator", Area: "E1"}) },
		} {
			refused[what] = rm()
		}
		return tx.RemoveGrant("alice", storage.Grant{Role: "researcher", Area: "P01", Project: "p2"})
	})
	for what, err := range refused {
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("RemoveGrant of %s: err = %v, want ErrNotFound", what, err)
		}
	}
	wantAlice := []storage.Grant{{Role: "enumerator", Area: "E1", Deny: true}, {Role: "researcher", Area: "P01", Project: "p1"}}
	view(t, s, func(tx storage.ReadTx) error {
		for name, want := range map[string][]storage.Grant{"alice": wantAlice, "bob": bob.Grants} {
			u, err := tx.User(name)
			if err != nil || fmt.Sprint(u.Grants) != fmt.Sprint(want) {
				t.Errorf("after RemoveGrant, User(%s) grants = %v, %v; want %v", name, u.Grants, err, want)
			}
		}
		var all []string
		if err := tx.Grants(func(user string, g storage.Grant) error {
			all = append(all, fmt.Sprintf("%s %v", user, g))
			return nil
		}); err != nil {
			return err
		}
		if want := []string{"alice {enumerator E1 true }", "alice {researcher P01 false p1}", "bob {enumerator E1 false }"}; !slices.Equal(all, want) {
			t.Errorf("after RemoveGrant, Grants = %q, want %q", all, want)
		}
		return nil
	})
	// A removed grant can be given again.
	update(t, s, func(tx storage.Tx) error { return tx.AddGrant("alice", storage.Grant{Role: "enumerator", Area: "E1"}) })
}

// testReplaceToken: ReplaceToken gives a user a new token hash and
// expiry, and the old hash then finds no one; the user keeps everything
// else, a revocation included (a new token does not undo a revocation).
// A hash another user holds is ErrConflict, an unknown user
// ErrNotFound, an empty hash an error; each changes nothing and leaves
// the Update usable. A hash given up can be taken by another user.
func testReplaceToken(t *testing.T, s storage.Store) {
	alice := &storage.User{Name: "alice", TokenHash: tokenHash("a"), CreatedAt: at(8, 0), ExpiresAt: at(20, 0), Recipient: "age1a",
		Grants: []storage.Grant{{Role: "auditor", Area: "VN"}}}
	bob := &storage.User{Name: "bob", TokenHash: tokenHash("b"), CreatedAt: at(8, 1)}
	carol := &storage.User{Name: "carol", TokenHash: tokenHash("c"), CreatedAt: at(8, 2), RevokedAt: at(9, 0)}
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(tx.InsertUser(alice), tx.InsertUser(bob), tx.InsertUser(carol))
	})

	var conflict, conflictNew, unknown, empty error
	update(t, s, func(tx storage.Tx) error {
		if err := tx.ReplaceToken("alice", tokenHash("a2"), at(21, 5)); err != nil {
			return err
		}
		conflict = tx.ReplaceToken("alice", tokenHash("b"), at(22, 0))
		conflictNew = tx.ReplaceToken("bob", tokenHash("a2"), at(22, 0))
		unknown = tx.ReplaceToken("mallory", tokenHash("m"), at(22, 0))
		empty = tx.ReplaceToken("bob", "", at(22, 0))
		return errors.Join(tx.ReplaceToken("bob", tokenHash("b2"), time.Time{}), tx.ReplaceToken("carol", tokenHash("c2"), at(23, 0)))
	})
	if !errors.Is(conflict, storage.ErrConflict) || !errors.Is(conflictNew, storage.ErrConflict) {
		t.Errorf("ReplaceToken with another user's hash: err = %v, %v; want ErrConflict", conflict, conflictNew)
	}
	if !errors.Is(unknown, storage.ErrNotFound) {
		t.Errorf("ReplaceToken of an unknown user: err = %v, want ErrNotFound", unknown)
	}
	if empty == nil {
		t.Error("ReplaceToken with an empty hash: no error")
	}
	wantAlice, wantBob, wantCarol := *alice, *bob, *carol
	wantAlice.TokenHash, wantAlice.ExpiresAt = tokenHash("a2"), at(21, 5)
	wantBob.TokenHash = tokenHash("b2")
	wantCarol.TokenHash, wantCarol.ExpiresAt = tokenHash("c2"), at(23, 0)
	view(t, s, func(tx storage.ReadTx) error {
		for _, old := range []string{"a", "b", "c"} {
			if u, err := tx.UserByTokenHash(tokenHash(old)); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("the replaced token %q still finds %+v, %v", old, u, err)
			}
		}
		for _, want := range []*storage.User{&wantAlice, &wantBob, &wantCarol} {
			u, err := tx.UserByTokenHash(want.TokenHash)
			if err != nil {
				t.Errorf("UserByTokenHash of %s's new token: %v", want.Name, err)
				continue
			}
			if d := diffUser(u, want); d != nil {
				t.Errorf("after ReplaceToken, %s: %v", want.Name, d)
			}
		}
		return nil
	})
	// alice's old hash is free: bob may take it.
	update(t, s, func(tx storage.Tx) error { return tx.ReplaceToken("bob", tokenHash("a"), time.Time{}) })
	view(t, s, func(tx storage.ReadTx) error {
		if u, err := tx.UserByTokenHash(tokenHash("a")); err != nil || u.Name != "bob" {
			t.Errorf("a given-up hash taken by bob finds %+v, %v", u, err)
		}
		return nil
	})
}

// testGrantLog: AppendGrantLog stores every op with its fields byte for
// byte and assigns Seq 1, 2, … whatever Seq held; GrantLog reads after
// a Seq, in Seq order, across more entries than any backend reads at
// once, with fn free to write between reads. Entries an op does not
// allow (a field missing, one another op needs, an unknown op, a zero
// time, a negative audit index, no policy hash) are refused, take no
// Seq and store nothing.
func testGrantLog(t *testing.T, s storage.Store) {
	checkGrantLog(t, s, "an empty store")
	fixtures := []*storage.GrantLogEntry{
		logPolicy(storage.GrantOpStart, 0),
		logGrant(storage.GrantOpGrant, "alice", storage.Grant{Role: "enumerator", Area: "E1"}, 0),
		logGrant(storage.GrantOpGrant, "bob", storage.Grant{Role: "researcher", Area: "P01", Deny: true, Project: "p1"}, 0),
		logPolicy(storage.GrantOpPolicy, 3),
		logGrant(storage.GrantOpUngrant, "alice", storage.Grant{Role: "enumerator", Area: "E1"}, 4),
		logGrant(storage.GrantOpGrant, "Ánh", storage.Grant{Role: "team_leader", Area: "C1"}, 5),
	}
	var want []storage.GrantLogEntry
	// The start and the grants held then are one audit event's: one
	// Update.
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(tx.AppendGrantLog(fixtures[0]), tx.AppendGrantLog(fixtures[1]), tx.AppendGrantLog(fixtures[2]))
	})
	for _, e := range fixtures[3:] {
		update(t, s, func(tx storage.Tx) error { return tx.AppendGrantLog(e) })
	}
	for i, e := range fixtures {
		if e.Seq != int64(i+1) {
			t.Errorf("AppendGrantLog(%s of audit index %d) set Seq %d, want %d", e.Op, e.AuditIndex, e.Seq, i+1)
		}
		w := *e
		w.Seq = int64(i + 1)
		want = append(want, w)
	}
	checkGrantLog(t, s, "six entries", want...)
	for after, first := range map[int64]int{-1: 0, 0: 0, 3: 3, 5: 5, 6: 6, 100: 6} {
		got := fields(readGrantLog(t, s, after), func(e storage.GrantLogEntry) int64 { return e.Seq })
		wantSeqs := fields(want[first:], func(e storage.GrantLogEntry) int64 { return e.Seq })
		if !slices.Equal(got, wantSeqs) {
			t.Errorf("GrantLog(%d) = Seqs %v, want %v", after, got, wantSeqs)
		}
	}

	g := storage.Grant{Role: "enumerator", Area: "E1"}
	for what, e := range map[string]*storage.GrantLogEntry{
		"an unknown op":             {Seq: 99, AuditIndex: 1, At: at(1, 0), Op: "revoke", User: "a", Grant: g, PolicyHash: "h"},
		"no op":                     {Seq: 99, AuditIndex: 1, At: at(1, 0), User: "a", Grant: g, PolicyHash: "h"},
		"a zero time":               {Seq: 99, AuditIndex: 1, Op: storage.GrantOpGrant, User: "a", Grant: g, PolicyHash: "h"},
		"a negative audit index":    {Seq: 99, AuditIndex: -1, At: at(1, 0), Op: storage.GrantOpGrant, User: "a", Grant: g, PolicyHash: "h"},
		"no policy hash":            {Seq: 99, AuditIndex: 1, At: at(1, 0), Op: storage.GrantOpGrant, User: "a", Grant: g},
		"a grant of no user":        {Seq: 99, AuditIndex: 1, At: at(1, 0), Op: storage.GrantOpGrant, Grant: g, PolicyHash: "h"},
		"a grant of no role":        {Seq: 99, AuditIndex: 1, At: at(1, 0), Op: storage.GrantOpGrant, User: "a", Grant: storage.Grant{Area: "E1"}, PolicyHash: "h"},
		"a grant of no area":        {Seq: 99, AuditIndex: 1, At: at(1, 0), Op: storage.GrantOpGrant, User: "a", Grant: storage.Grant{Role: "x"}, PolicyHash: "h"},
		"an ungrant of no user":     {Seq: 99, AuditIndex: 1, At: at(1, 0), Op: storage.GrantOpUngrant, Grant: g, PolicyHash: "h"},
		"a grant with a model":      {Seq: 99, AuditIndex: 1, At: at(1, 0), Op: storage.GrantOpGrant, User: "a", Grant: g, Model: grantModel, PolicyHash: "h"},
		"an ungrant with a policy":  {Seq: 99, AuditIndex: 1, At: at(1, 0), Op: storage.GrantOpUngrant, User: "a", Grant: g, Policy: grantPolicy, PolicyHash: "h"},
		"a policy with no model":    {Seq: 99, AuditIndex: 1, At: at(1, 0), Op: storage.GrantOpPolicy, Policy: grantPolicy, PolicyHash: "h"},
		"a policy with no policy":   {Seq: 99, AuditIndex: 1, At: at(1, 0), Op: storage.GrantOpPolicy, Model: grantModel, PolicyHash: "h"},
		"a start with no policy":    {Seq: 99, AuditIndex: 1, At: at(1, 0), Op: storage.GrantOpStart, Model: grantModel, PolicyHash: "h"},
		"a policy naming a user":    {Seq: 99, AuditIndex: 1, At: at(1, 0), Op: storage.GrantOpPolicy, User: "a", Model: grantModel, Policy: grantPolicy, PolicyHash: "h"},
		"a start with a grant":      {Seq: 99, AuditIndex: 1, At: at(1, 0), Op: storage.GrantOpStart, Grant: g, Model: grantModel, Policy: grantPolicy, PolicyHash: "h"},
		"a policy with a deny":      {Seq: 99, AuditIndex: 1, At: at(1, 0), Op: storage.GrantOpPolicy, Grant: storage.Grant{Deny: true}, Model: grantModel, Policy: grantPolicy, PolicyHash: "h"},
		"a policy with a project":   {Seq: 99, AuditIndex: 1, At: at(1, 0), Op: storage.GrantOpPolicy, Grant: storage.Grant{Project: "p"}, Model: grantModel, Policy: grantPolicy, PolicyHash: "h"},
		"an ungrant of no area":     {Seq: 99, AuditIndex: 1, At: at(1, 0), Op: storage.GrantOpUngrant, User: "a", Grant: storage.Grant{Role: "x"}, PolicyHash: "h"},
		"a grant op in upper case":  {Seq: 99, AuditIndex: 1, At: at(1, 0), Op: "GRANT", User: "a", Grant: g, PolicyHash: "h"},
		"a start naming a user":     {Seq: 99, AuditIndex: 1, At: at(1, 0), Op: storage.GrantOpStart, User: "a", Model: grantModel, Policy: grantPolicy, PolicyHash: "h"},
		"a policy with no hash too": {Seq: 99, AuditIndex: 1, At: at(1, 0), Op: storage.GrantOpPolicy, Model: grantModel, Policy: grantPolicy},
	} {
		if err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.AppendGrantLog(e) }); err == nil {
			t.Errorf("AppendGrantLog of %s: no error", what)
		} else if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrConflict) {
			t.Errorf("AppendGrantLog of %s: err = %v, want a plain error", what, err)
		}
		if e.Seq != 99 {
			t.Errorf("a refused AppendGrantLog of %s set Seq %d", what, e.Seq)
		}
	}
	checkGrantLog(t, s, "after refused entries", want...)

	// More entries than a page, in one Update: Seqs stay dense.
	update(t, s, func(tx storage.Tx) error {
		for i := range 600 {
			e := logGrant(storage.GrantOpGrant, fmt.Sprintf("u%04d", i), g, int64(10+i))
			if err := tx.AppendGrantLog(e); err != nil {
				return err
			}
			if e.Seq != int64(7+i) {
				return fmt.Errorf("entry %d of the 600 got Seq %d, want %d", i, e.Seq, 7+i)
			}
		}
		return nil
	})
	all := readGrantLog(t, s, 0)
	for i, e := range all {
		if e.Seq != int64(i+1) {
			t.Fatalf("GrantLog's entry %d has Seq %d: not in Seq order or not dense", i, e.Seq)
		}
	}
	if len(all) != 606 || all[6].User != "u0000" || all[605].User != "u0599" {
		t.Fatalf("GrantLog after 600 more entries: %d entries", len(all))
	}
	if got := readGrantLog(t, s, 300); len(got) != 306 || got[0].Seq != 301 {
		t.Errorf("GrantLog(300) gave %d entries from Seq %d; want 306 from 301", len(got), got[0].Seq)
	}

	// fn writes in the transaction between reads.
	seen := 0
	update(t, s, func(tx storage.Tx) error {
		seen = 0
		return tx.GrantLog(0, func(e storage.GrantLogEntry) (bool, error) {
			seen++
			return true, tx.PutMeta("grant log seen", fmt.Sprint(e.Seq))
		})
	})
	if seen != 606 {
		t.Errorf("GrantLog with a writing fn saw %d entries, want 606", seen)
	}
	n := 0
	view(t, s, func(tx storage.ReadTx) error {
		n = 0
		return tx.GrantLog(0, func(storage.GrantLogEntry) (bool, error) { n++; return n < 2, nil })
	})
	if n != 2 {
		t.Errorf("GrantLog went on after fn returned false: %d calls", n)
	}
	stop := errors.New("storagetest: stop")
	if err := s.View(t.Context(), func(tx storage.ReadTx) error {
		return tx.GrantLog(0, func(storage.GrantLogEntry) (bool, error) { return true, stop })
	}); !errors.Is(err, stop) {
		t.Errorf("GrantLog with a failing fn: err = %v, want fn's", err)
	}
}

// testGrantProposals: ProposeGrant stores grants, ungrants (the removal
// of a deny) and policies pending with Seq 1, 2, …; ConfirmGrant
// confirms a pending one once: a second confirmation is ErrConflict and
// keeps the first, an unknown Seq ErrNotFound, and either leaves the
// Update usable. Malformed proposals and confirmations are refused and
// change nothing.
func testGrantProposals(t *testing.T, s storage.Store) {
	checkGrantProposals(t, s, "an empty store")
	view(t, s, func(tx storage.ReadTx) error {
		if _, err := tx.GrantProposal(1); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GrantProposal(1) of an empty store: err = %v, want ErrNotFound", err)
		}
		return nil
	})
	fixtures := []*storage.GrantProposal{
		grantProposal(storage.GrantOpGrant, "alice", storage.Grant{Role: "team_leader", Area: "C1"}, 3),
		grantProposal(storage.GrantOpUngrant, "bob", storage.Grant{Role: "researcher", Area: "P01", Deny: true, Project: "p1"}, 4),
		policyProposal(5),
	}
	var want []storage.GrantProposal
	for i, p := range fixtures {
		update(t, s, func(tx storage.Tx) error { return tx.ProposeGrant(p) })
		if p.Seq != int64(i+1) {
			t.Errorf("ProposeGrant(%s) set Seq %d, want %d", p.Kind, p.Seq, i+1)
		}
		w := *p
		w.Seq = int64(i + 1)
		want = append(want, w)
	}
	checkGrantProposals(t, s, "three proposals", want...)

	update(t, s, func(tx storage.Tx) error { return tx.ConfirmGrant(2, "carol", at(16, 5), 77) })
	want[1].ConfirmedBy, want[1].ConfirmedAt, want[1].ConfirmAudit = "carol", at(16, 5), 77
	checkGrantProposals(t, s, "after confirming Seq 2", want...)

	var twice, unknown error
	fourth := grantProposal(storage.GrantOpGrant, "dave", storage.Grant{Role: "supervisor", Area: "D1"}, 8)
	update(t, s, func(tx storage.Tx) error {
		twice = tx.ConfirmGrant(2, "dave", at(17, 0), 88)
		unknown = tx.ConfirmGrant(9, "dave", at(17, 0), 89)
		return tx.ProposeGrant(fourth)
	})
	if !errors.Is(twice, storage.ErrConflict) {
		t.Errorf("ConfirmGrant of a confirmed proposal: err = %v, want ErrConflict", twice)
	}
	if !errors.Is(unknown, storage.ErrNotFound) {
		t.Errorf("ConfirmGrant of an unknown Seq: err = %v, want ErrNotFound", unknown)
	}
	if fourth.Seq != 4 {
		t.Errorf("the proposal after refused confirmations got Seq %d, want 4", fourth.Seq)
	}
	want = append(want, *fourth)
	checkGrantProposals(t, s, "after refused confirmations", want...)

	g := storage.Grant{Role: "team_leader", Area: "C1"}
	for what, bad := range map[string]func(*storage.GrantProposal){
		"kind start":             func(p *storage.GrantProposal) { p.Kind = storage.GrantOpStart },
		"no kind":                func(p *storage.GrantProposal) { p.Kind = "" },
		"an unknown kind":        func(p *storage.GrantProposal) { p.Kind = "promote" },
		"no proposer":            func(p *storage.GrantProposal) { p.ProposedBy = "" },
		"a zero time":            func(p *storage.GrantProposal) { p.ProposedAt = time.Time{} },
		"a negative audit index": func(p *storage.GrantProposal) { p.ProposalAudit = -1 },
		"a confirmer":            func(p *storage.GrantProposal) { p.ConfirmedBy = "carol" },
		"a confirmation time":    func(p *storage.GrantProposal) { p.ConfirmedAt = at(18, 0) },
		"a confirmation's audit": func(p *storage.GrantProposal) { p.ConfirmAudit = 5 },
		"no user":                func(p *storage.GrantProposal) { p.User = "" },
		"no role":                func(p *storage.GrantProposal) { p.Grant.Role = "" },
		"no area":                func(p *storage.GrantProposal) { p.Grant.Area = "" },
		"a model on a grant":     func(p *storage.GrantProposal) { p.Model = grantModel },
		"a policy on a grant":    func(p *storage.GrantProposal) { p.Policy = grantPolicy },
		"a policy of no model":   func(p *storage.GrantProposal) { *p = *policyProposal(1); p.Model = "" },
		"a policy of no text":    func(p *storage.GrantProposal) { *p = *policyProposal(1); p.Policy = "" },
		"a policy naming a user": func(p *storage.GrantProposal) { *p = *policyProposal(1); p.User = "alice" },
		"a policy with a grant":  func(p *storage.GrantProposal) { *p = *policyProposal(1); p.Grant = g },
	} {
		p := grantProposal(storage.GrantOpGrant, "erin", g, 9)
		bad(p)
		if err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.ProposeGrant(p) }); err == nil {
			t.Errorf("ProposeGrant with %s: no error", what)
		} else if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrConflict) {
			t.Errorf("ProposeGrant with %s: err = %v, want a plain error", what, err)
		}
		if p.Seq != 99 {
			t.Errorf("a refused ProposeGrant with %s set Seq %d", what, p.Seq)
		}
	}
	for what, confirm := range map[string]func(storage.Tx) error{
		"no confirmer":           func(tx storage.Tx) error { return tx.ConfirmGrant(1, "", at(18, 0), 90) },
		"a zero time":            func(tx storage.Tx) error { return tx.ConfirmGrant(1, "carol", time.Time{}, 90) },
		"a negative audit index": func(tx storage.Tx) error { return tx.ConfirmGrant(1, "carol", at(18, 0), -1) },
	} {
		if err := s.Update(t.Context(), confirm); err == nil {
			t.Errorf("ConfirmGrant with %s: no error", what)
		}
	}
	checkGrantProposals(t, s, "after refused proposals and confirmations", want...)
	fifth := policyProposal(10)
	update(t, s, func(tx storage.Tx) error { return tx.ProposeGrant(fifth) })
	if fifth.Seq != 5 {
		t.Errorf("the proposal after refused ones got Seq %d, want 5", fifth.Seq)
	}

	n := 0
	view(t, s, func(tx storage.ReadTx) error {
		n = 0
		return tx.GrantProposals(func(storage.GrantProposal) (bool, error) { n++; return n < 2, nil })
	})
	if n != 2 {
		t.Errorf("GrantProposals went on after fn returned false: %d calls", n)
	}
	stop := errors.New("storagetest: stop")
	if err := s.View(t.Context(), func(tx storage.ReadTx) error {
		return tx.GrantProposals(func(storage.GrantProposal) (bool, error) { return true, stop })
	}); !errors.Is(err, stop) {
		t.Errorf("GrantProposals with a failing fn: err = %v, want fn's", err)
	}
}

// testGrantSeq: the Seqs of the grant log and of grant proposals stay 1,
// 2, … without a gap or a repeat when two Updates append at once and
// when an Update that appended is rolled back (its Seq is the next
// one's).
func testGrantSeq(t *testing.T, s storage.Store) {
	g := storage.Grant{Role: "enumerator", Area: "E1"}
	entries := []*storage.GrantLogEntry{logGrant(storage.GrantOpGrant, "a", g, 1), logGrant(storage.GrantOpGrant, "b", g, 2)}
	proposals := []*storage.GrantProposal{grantProposal(storage.GrantOpGrant, "a", g, 1), grantProposal(storage.GrantOpGrant, "b", g, 2)}
	errs := make(chan error, 2)
	for i := range 2 {
		go func() {
			errs <- s.Update(t.Context(), func(tx storage.Tx) error {
				return errors.Join(tx.AppendGrantLog(entries[i]), tx.ProposeGrant(proposals[i]))
			})
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("racing AppendGrantLog and ProposeGrant: %v", err)
		}
	}
	for _, got := range [][]int64{{entries[0].Seq, entries[1].Seq}, {proposals[0].Seq, proposals[1].Seq}} {
		if slices.Sort(got); !slices.Equal(got, []int64{1, 2}) {
			t.Errorf("two racing Updates got Seqs %v; want 1 and 2", got)
		}
	}
	rolledBack := errors.New("storagetest: roll back")
	if err := s.Update(t.Context(), func(tx storage.Tx) error {
		if err := errors.Join(tx.AppendGrantLog(logGrant(storage.GrantOpGrant, "gone", g, 3)),
			tx.ProposeGrant(grantProposal(storage.GrantOpGrant, "gone", g, 3))); err != nil {
			return err
		}
		return rolledBack
	}); !errors.Is(err, rolledBack) {
		t.Fatalf("Update: err = %v, want its fn's", err)
	}
	c, p := logGrant(storage.GrantOpGrant, "c", g, 4), grantProposal(storage.GrantOpGrant, "c", g, 4)
	update(t, s, func(tx storage.Tx) error { return errors.Join(tx.AppendGrantLog(c), tx.ProposeGrant(p)) })
	if c.Seq != 3 || p.Seq != 3 {
		t.Errorf("after a rolled-back Update, the next entry and proposal got Seqs %d, %d; want 3, 3", c.Seq, p.Seq)
	}
	users := func(seq func(int) int64, user func(int) string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("%d:%s", seq(i), user(i)))
		}
		return out
	}
	log, props := readGrantLog(t, s, 0), readGrantProposals(t, s)
	wantLog := []string{fmt.Sprintf("%d:a", entries[0].Seq), fmt.Sprintf("%d:b", entries[1].Seq), "3:c"}
	slices.Sort(wantLog[:2])
	if got := users(func(i int) int64 { return log[i].Seq }, func(i int) string { return log[i].User }, len(log)); !slices.Equal(got, wantLog) {
		t.Errorf("grant log %q, want %q", got, wantLog)
	}
	wantProps := []string{fmt.Sprintf("%d:a", proposals[0].Seq), fmt.Sprintf("%d:b", proposals[1].Seq), "3:c"}
	slices.Sort(wantProps[:2])
	if got := users(func(i int) int64 { return props[i].Seq }, func(i int) string { return props[i].User }, len(props)); !slices.Equal(got, wantProps) {
		t.Errorf("grant proposals %q, want %q", got, wantProps)
	}
}

// testGrantWatch: on a store that is a storage.Watcher, RemoveGrant and
// ReplaceToken announce TopicUsers (every instance must stop honouring a
// removed grant or a replaced token) and AppendGrantLog TopicMeta (the
// policy in force changed), each only if its Update commits; proposing
// and confirming announce nothing, since neither changes what is in
// force.
func testGrantWatch(t *testing.T, s storage.Store) {
	w, ok := s.(storage.Watcher)
	if !ok {
		t.Skip("not a storage.Watcher: its users poll")
	}
	g := storage.Grant{Role: "enumerator", Area: "E1"}
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(tx.InsertUser(&storage.User{Name: "alice", TokenHash: tokenHash("a"), CreatedAt: at(1, 0), Grants: []storage.Grant{g}}),
			tx.ProposeGrant(grantProposal(storage.GrantOpGrant, "alice", storage.Grant{Role: "team_leader", Area: "C1"}, 1)))
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	topics := make(chan string, 1000)
	done := make(chan error, 1)
	go func() {
		done <- w.Watch(ctx, func(topic string) {
			select {
			case topics <- topic:
			default:
			}
		})
	}()
	// Pings are keys, a topic none of the steps announces.
	deadline := time.Now().Add(10 * time.Second)
	for v := 1; ; v++ {
		if time.Now().After(deadline) {
			t.Fatal("no notification 10s after Watch started, while keys changed every 100ms")
		}
		update(t, s, func(tx storage.Tx) error {
			return tx.PutKey(&storage.Key{Purpose: "ping", Version: v, Wrapped: []byte("k"), CreatedAt: at(1, v)})
		})
		select {
		case <-topics:
		case err := <-done:
			t.Fatalf("Watch returned early: %v", err)
		case <-time.After(100 * time.Millisecond):
			continue
		}
		break
	}

	abort := errors.New("storagetest: abort")
	steps := []struct {
		topic  string // "" announces nothing
		commit bool
		fn     func(storage.Tx) error
	}{
		{"", false, func(tx storage.Tx) error { return tx.RemoveGrant("alice", g) }},
		{storage.TopicUsers, true, func(tx storage.Tx) error { return tx.RemoveGrant("alice", g) }},
		{"", false, func(tx storage.Tx) error { return tx.ReplaceToken("alice", tokenHash("a2"), time.Time{}) }},
		{storage.TopicUsers, true, func(tx storage.Tx) error { return tx.ReplaceToken("alice", tokenHash("a2"), time.Time{}) }},
		{"", false, func(tx storage.Tx) error { return tx.AppendGrantLog(logPolicy(storage.GrantOpPolicy, 2)) }},
		{storage.TopicMeta, true, func(tx storage.Tx) error { return tx.AppendGrantLog(logPolicy(storage.GrantOpPolicy, 2)) }},
		{"", true, func(tx storage.Tx) error { return tx.ProposeGrant(policyProposal(3)) }},
		{"", true, func(tx storage.Tx) error { return tx.ConfirmGrant(1, "carol", at(2, 0), 4) }},
		// Last, so that anything a silent step announced arrives before it.
		{storage.TopicUsers, true, func(tx storage.Tx) error { return tx.AddGrant("alice", g) }},
	}
	var want []string
	for _, st := range steps {
		if !st.commit {
			if err := s.Update(t.Context(), func(tx storage.Tx) error {
				if err := st.fn(tx); err != nil {
					return fmt.Errorf("a write failed before the deliberate abort: %w", err)
				}
				return abort
			}); !errors.Is(err, abort) {
				t.Fatalf("Update: err = %v, want %v", err, abort)
			}
			continue
		}
		update(t, s, st.fn)
		if st.topic != "" {
			want = append(want, st.topic)
		}
	}
	var got []string
	timeout := time.After(10 * time.Second)
	for len(got) < len(want) {
		select {
		case topic := <-topics:
			if topic != storage.TopicKeys {
				got = append(got, topic)
			}
		case err := <-done:
			t.Fatalf("Watch returned early: %v", err)
		case <-timeout:
			t.Fatalf("after 10s, notified %v; want %v", got, want)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("notified %v, want %v (an aborted Update, a proposal and a confirmation notify nothing)", got, want)
	}
}
