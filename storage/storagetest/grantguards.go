package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
)

// grantGuardedStatements are the changes to the grant log and the grant
// proposals the database must refuse, in an order where each still
// changes something if let through. The fixture (RunGrantGuards) has log
// entries 1 (start) to 5 (policy), 2 and 3 grants, 4 an ungrant; and
// proposals 1 and 3 pending (3 a policy), 2, 4 and 5 confirmed.
var grantGuardedStatements = []string{
	// A change of the policy in force erased, forged or moved.
	`UPDATE grant_log SET role = 'admin' WHERE seq = 2`,
	`UPDATE grant_log SET area = 'VN' WHERE seq = 2`,
	`UPDATE grant_log SET deny = true WHERE seq = 2`,
	`UPDATE grant_log SET user_name = 'mallory' WHERE seq = 3`,
	`UPDATE grant_log SET project = 'other' WHERE seq = 3`,
	`UPDATE grant_log SET op = 'grant' WHERE seq = 4`,
	`UPDATE grant_log SET policy = 'p, admin, submission.open, allow' WHERE seq = 5`,
	`UPDATE grant_log SET model = model || ' ' WHERE seq = 1`,
	`UPDATE grant_log SET policy_hash = 'forged' WHERE seq = 3`,
	`UPDATE grant_log SET audit_index = 100 WHERE seq = 3`,
	`UPDATE grant_log SET at = '2020-01-01T00:00:00Z' WHERE seq = 3`,
	`UPDATE grant_log SET seq = 10 WHERE seq = 5`,
	`DELETE FROM grant_log WHERE seq = 4`,
	// A proposal deleted, changed pending or confirmed, its confirmation
	// replaced or withdrawn, and a confirmation that changes something
	// else on the way.
	`DELETE FROM grant_proposals WHERE seq = 4`,
	`UPDATE grant_proposals SET role = 'admin' WHERE seq = 1`,
	`UPDATE grant_proposals SET area = 'VN' WHERE seq = 2`,
	`UPDATE grant_proposals SET confirmed_by = 'mallory', confirmed_at = '2020-01-01T00:00:00Z', confirm_audit = 99 WHERE seq = 2`,
	`UPDATE grant_proposals SET confirmed_by = '', confirmed_at = '', confirm_audit = 0 WHERE seq = 5`,
	`UPDATE grant_proposals SET confirmed_by = 'carol', confirmed_at = '2020-01-01T00:00:00Z', confirm_audit = 7, role = 'admin' WHERE seq = 1`,
	`UPDATE grant_proposals SET confirmed_by = 'carol', confirmed_at = '2020-01-01T00:00:00Z', confirm_audit = 7, area = 'VN' WHERE seq = 1`,
	`UPDATE grant_proposals SET confirmed_by = 'carol', confirmed_at = '2020-01-01T00:00:00Z', confirm_audit = 7, user_name = 'mallory' WHERE seq = 1`,
	`UPDATE grant_proposals SET confirmed_by = 'carol', confirmed_at = '2020-01-01T00:00:00Z', confirm_audit = 7, deny = true WHERE seq = 1`,
	`UPDATE grant_proposals SET confirmed_by = 'carol', confirmed_at = '2020-01-01T00:00:00Z', confirm_audit = 7, project = 'p9' WHERE seq = 1`,
	`UPDATE grant_proposals SET confirmed_by = 'carol', confirmed_at = '2020-01-01T00:00:00Z', confirm_audit = 7, kind = 'ungrant' WHERE seq = 1`,
	`UPDATE grant_proposals SET confirmed_by = 'carol', confirmed_at = '2020-01-01T00:00:00Z', confirm_audit = 7, reason = 'other' WHERE seq = 1`,
	`UPDATE grant_proposals SET confirmed_by = 'carol', confirmed_at = '2020-01-01T00:00:00Z', confirm_audit = 7, proposed_by = 'carol' WHERE seq = 1`,
	`UPDATE grant_proposals SET confirmed_by = 'carol', confirmed_at = '2020-01-01T00:00:00Z', confirm_audit = 7, proposed_at = '2020-01-01T00:00:00Z' WHERE seq = 1`,
	`UPDATE grant_proposals SET confirmed_by = 'carol', confirmed_at = '2020-01-01T00:00:00Z', confirm_audit = 7, proposal_audit = 1 WHERE seq = 1`,
	`UPDATE grant_proposals SET confirmed_by = 'carol', confirmed_at = '2020-01-01T00:00:00Z', confirm_audit = 7, seq = 10 WHERE seq = 1`,
	`UPDATE grant_proposals SET confirmed_by = 'carol', confirmed_at = '2020-01-01T00:00:00Z', confirm_audit = 7, policy = 'p, admin, submission.open, allow' WHERE seq = 3`,
	`UPDATE grant_proposals SET confirmed_by = 'carol', confirmed_at = '2020-01-01T00:00:00Z', confirm_audit = 7, model = model || ' ' WHERE seq = 3`,
	`UPDATE grant_proposals SET reason = 'other' WHERE seq = 3`,
}

// RunGrantGuards checks, on s (a fresh store) and raw (its database),
// that the database itself keeps the grant log append-only (no entry
// deleted or any of its fields changed, so the policy in force at an
// audit event cannot be rewritten behind the log's back) and lets a
// grant proposal change only by being confirmed once (not deleted, not
// changed pending or confirmed, not confirmed again or unconfirmed, not
// confirmed with another field changed), while letting the one allowed
// confirmation through. raw.Refused (the backend's own ways in, such as
// INSERT OR REPLACE, an upsert or TRUNCATE) run after the common
// statements; they may name log entry 2 and proposal 2, which are still
// there after them. A refused statement leaves both tables as they were;
// once the guards are dropped (raw.DropGuards) every statement goes
// through and changes them: so the guards, not some other failure,
// refused them.
func RunGrantGuards(t *testing.T, s storage.Store, raw Raw) {
	t.Helper()
	update(t, s, func(tx storage.Tx) error {
		err := errors.Join(
			tx.AppendGrantLog(logPolicy(storage.GrantOpStart, 1)),
			tx.AppendGrantLog(logGrant(storage.GrantOpGrant, "alice", storage.Grant{Role: "enumerator", Area: "E1"}, 1)),
			tx.AppendGrantLog(logGrant(storage.GrantOpGrant, "bob", storage.Grant{Role: "researcher", Area: "P01", Project: "p1"}, 2)),
			tx.AppendGrantLog(logGrant(storage.GrantOpUngrant, "alice", storage.Grant{Role: "enumerator", Area: "E1"}, 3)),
			tx.AppendGrantLog(logPolicy(storage.GrantOpPolicy, 4)))
		for _, p := range []*storage.GrantProposal{
			grantProposal(storage.GrantOpGrant, "alice", storage.Grant{Role: "team_leader", Area: "C1"}, 5),
			grantProposal(storage.GrantOpUngrant, "bob", storage.Grant{Role: "enumerator", Area: "E1", Deny: true}, 6),
			policyProposal(7),
			grantProposal(storage.GrantOpGrant, "carol", storage.Grant{Role: "supervisor", Area: "D1"}, 8),
			grantProposal(storage.GrantOpGrant, "dave", storage.Grant{Role: "supervisor", Area: "D2"}, 9),
		} {
			err = errors.Join(err, tx.ProposeGrant(p))
		}
		return errors.Join(err, tx.ConfirmGrant(2, "carol", at(16, 0), 20), tx.ConfirmGrant(4, "erin", at(16, 1), 21))
	})
	read := func() string {
		t.Helper()
		var b strings.Builder
		for _, e := range readGrantLog(t, s, 0) {
			fmt.Fprintf(&b, "entry %d %d %s %s %q %+v %q %q %s\n", e.Seq, e.AuditIndex, e.At.Format(time.RFC3339Nano), e.Op, e.User, e.Grant,
				e.Model, e.Policy, e.PolicyHash)
		}
		for _, p := range readGrantProposals(t, s) {
			fmt.Fprintf(&b, "proposal %d %s %q %+v %q %q %q by %q at %s (%d) confirmed by %q at %s (%d)\n", p.Seq, p.Kind, p.User, p.Grant,
				p.Model, p.Policy, p.Reason, p.ProposedBy, p.ProposedAt.Format(time.RFC3339Nano), p.ProposalAudit,
				p.ConfirmedBy, p.ConfirmedAt.Format(time.RFC3339Nano), p.ConfirmAudit)
		}
		return b.String()
	}
	// The one change the guards allow, made behind the store's back: a
	// pending proposal confirmed, nothing else touched.
	before := read()
	if err := raw.Exec(`UPDATE grant_proposals SET confirmed_by = 'frank', confirmed_at = '2019-04-01T00:00:00Z', confirm_audit = 22 WHERE seq = 5`); err != nil {
		t.Fatalf("the database refused the confirmation of a pending grant proposal: %v", err)
	}
	if read() == before {
		t.Fatal("confirming a pending grant proposal in SQL changed nothing")
	}
	want := read()
	if strings.Count(want, "entry ") != 5 || strings.Count(want, "proposal ") != 5 || strings.Count(want, `confirmed by ""`) != 2 {
		t.Fatalf("the fixture is not what RunGrantGuards expects:\n%s", want)
	}
	checkGuards(t, raw, append(slices.Clone(grantGuardedStatements), raw.Refused...), read, "the grant log or proposals")
}

// CheckUpgradeFromV8 checks a store upgraded from a database at schema
// version 8 that held users alice (token hash "aa…", grants auditor at
// VN and enumerator at E1 denied, in that order) and bob (token hash
// "bb…", revoked, no grants). Both are kept with their grants, listed by
// Users; the grant log and the proposals are empty; and after the
// upgrade the log starts at Seq 1, proposals can be made and confirmed,
// and grants removed and tokens replaced.
func CheckUpgradeFromV8(t *testing.T, s storage.Store) {
	t.Helper()
	ctx := context.Background()
	aliceGrants := []storage.Grant{{Role: "auditor", Area: "VN"}, {Role: "enumerator", Area: "E1", Deny: true}}
	err := s.View(ctx, func(tx storage.ReadTx) error {
		var got []string
		if err := tx.Users("", 0, func(u storage.User) (bool, error) {
			got = append(got, fmt.Sprintf("%s %s %v revoked %v", u.Name, u.TokenHash[:2], u.Grants, !u.RevokedAt.IsZero()))
			return true, nil
		}); err != nil {
			return err
		}
		want := []string{fmt.Sprintf("alice aa %v revoked false", aliceGrants), "bob bb [] revoked true"}
		if !slices.Equal(got, want) {
			t.Errorf("Users after the upgrade = %q, want %q", got, want)
		}
		if u, err := tx.UserByTokenHash(strings.Repeat("a", 64)); err != nil || u.Name != "alice" {
			t.Errorf("UserByTokenHash after the upgrade = %+v, %v; want alice", u, err)
		}
		n := 0
		if err := tx.GrantLog(0, func(storage.GrantLogEntry) (bool, error) { n++; return true, nil }); err != nil {
			return err
		}
		if err := tx.GrantProposals(func(storage.GrantProposal) (bool, error) { n++; return true, nil }); err != nil {
			return err
		}
		if n != 0 {
			t.Errorf("the upgraded database has %d grant log entries and proposals, want none", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	start := logPolicy(storage.GrantOpStart, 1)
	held := []*storage.GrantLogEntry{
		logGrant(storage.GrantOpGrant, "alice", aliceGrants[0], 1),
		logGrant(storage.GrantOpGrant, "alice", aliceGrants[1], 1),
	}
	p := grantProposal(storage.GrantOpUngrant, "alice", aliceGrants[1], 2)
	if err := s.Update(ctx, func(tx storage.Tx) error {
		return errors.Join(tx.AppendGrantLog(start), tx.AppendGrantLog(held[0]), tx.AppendGrantLog(held[1]), tx.ProposeGrant(p))
	}); err != nil {
		t.Fatalf("starting the grant log on the upgraded database: %v", err)
	}
	if start.Seq != 1 || held[1].Seq != 3 || p.Seq != 1 {
		t.Errorf("on the upgraded database the log started at Seq %d (its third %d) and the first proposal got %d; want 1, 3, 1",
			start.Seq, held[1].Seq, p.Seq)
	}
	if err := s.Update(ctx, func(tx storage.Tx) error {
		return errors.Join(tx.ConfirmGrant(p.Seq, "carol", time.Now(), 3), tx.RemoveGrant("alice", aliceGrants[1]),
			tx.ReplaceToken("bob", strings.Repeat("c", 64), time.Time{}))
	}); err != nil {
		t.Fatalf("confirming, removing a grant and replacing a token on the upgraded database: %v", err)
	}
	err = s.View(ctx, func(tx storage.ReadTx) error {
		if u, err := tx.User("alice"); err != nil || fmt.Sprint(u.Grants) != fmt.Sprint(aliceGrants[:1]) {
			t.Errorf("alice after RemoveGrant on the upgraded database = %+v, %v", u, err)
		}
		if u, err := tx.UserByTokenHash(strings.Repeat("c", 64)); err != nil || u.Name != "bob" || u.RevokedAt.IsZero() {
			t.Errorf("bob after ReplaceToken on the upgraded database = %+v, %v; want bob, still revoked", u, err)
		}
		if got, err := tx.GrantProposal(p.Seq); err != nil || got.ConfirmedBy != "carol" {
			t.Errorf("GrantProposal after ConfirmGrant on the upgraded database = %+v, %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
