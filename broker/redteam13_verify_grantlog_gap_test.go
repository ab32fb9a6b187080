package broker_test

// FINDING 7 (medium, tamper evidence): `audit verify` (verifyGrantLog,
// broker/policyverify.go) checks that each grant-log entry's policy hash
// is the one its event carries and that replaying the WHOLE log ends at
// the last entry's hash. It does not replay up to each event, nor check
// that every event that changed the policy hash has entries. Someone past
// the triggers who deletes (or rewrites alike) a grant entry and the
// later ungrant entry that cancels it — erasing from the grant log the
// window in which a user held a grant — passes verify: the final state
// and every remaining entry's hash are unchanged. Explain still notices
// (the events of the window no longer match: HashMatches false), so it
// does not lie; but the operator's verify says all is well.
// Suggested fix: in verifyGrantLog, replay incrementally and compare the
// rebuilt hash with the event's at every event that has entries, and
// walk the audit events: wherever PolicyHash changes between consecutive
// events, the later one must have grant-log entries (policy.log_start
// excepted).
//
//   go test ./broker/ -run 'TestRedteam13VerifyMissesErasedGrantWindow' -count=1
// Fixed: it passed once the hole was closed (it failed before).

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage/sqlite"
)

func TestRedteam13VerifyMissesErasedGrantWindow(t *testing.T) {
	av := newAdminVault(t)
	ctx := context.Background()
	admin := broker.APIOperator(av.admin)
	// A window: steering may deposit in commune A, deposits, loses it.
	g := policy.Grant{Role: policy.Enumerator, Area: communeA}
	if ch, err := av.b.ChangeGrant(ctx, admin, "steering", g, false); err != nil || !ch.Active {
		t.Fatalf("grant: %+v, %v", ch, err)
	}
	av.enum = av.caller("steering")
	if _, err := av.tryDeposit(av.b, ea(communeA, 1)); err != nil {
		t.Fatal(err)
	}
	evs := av.events(0, "submission.deposit")
	dep := evs[len(evs)-1]
	if _, err := av.b.ChangeGrant(ctx, admin, "steering", g, true); err != nil {
		t.Fatal(err)
	}
	if _, err := broker.VerifyAudit(ctx, av.store, av.b.AuditVerifierKey(), nil); err != nil {
		t.Fatalf("untouched: %v", err)
	}
	// Erase the window from the grant log.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(av.dir, sqlite.FileName)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{`DROP TRIGGER grant_log_no_delete`, `DELETE FROM grant_log WHERE user_name = 'steering' AND area = '` + communeA + `'`} {
		r, err := db.ExecContext(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if n, _ := r.RowsAffected(); q[0] == 'D' && q[1] == 'E' && n != 2 {
			t.Fatalf("%d entries deleted, want 2", n)
		}
	}
	x, err := av.b.ExplainEvent(ctx, broker.APIOperator(av.auditor), dep.Index)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("explain of the deposit in the erased window: allow %v, hash matches %v (explain notices)", x.Allow, x.HashMatches)
	res, err := broker.VerifyAudit(ctx, av.store, av.b.AuditVerifierKey(), nil)
	if err == nil {
		t.Fatalf("HOLE: audit verify passes (%d grant log entries) after the grant and ungrant of steering's enumerator@%s were deleted from the grant log", res.GrantLogEntries, communeA)
	}
}
