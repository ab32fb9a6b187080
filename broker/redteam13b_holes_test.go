package broker_test

// Second red team of issue 13: holes found (failing tests, kept outside
// the tree in /tmp/cv/redteam13b/).

import (
	"context"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
)

// TestRedteam13bGrantWhileWideningPolicyPending: a role that reveals
// data only under a proposed (not yet confirmed) role policy is granted
// at once, so the grant never meets an approver. The admin proposes a
// policy letting steering open submissions, then — while it waits —
// grants steering@communeA to an ordinary user (an enumerator it
// colludes with, who has its own token). The approver confirms the
// policy (it sees a hash; from then on a steering grant would wait), and
// the colluder reads names.
func TestRedteam13bGrantWhileWideningPolicyPending(t *testing.T) {
	av := newAdminVault(t)
	ctx := context.Background()
	id := av.deposit(ea(communeA, 1))
	tok, err := av.b.AddUser(ctx, actor, broker.NewUser{Name: "enum-c", Role: policy.Enumerator, Area: broker.AreaCode(ea(communeA, 2))})
	if err != nil {
		t.Fatal(err)
	}
	av.tokens["enum-c"] = tok.Reveal()
	admin := broker.APIOperator(av.admin)
	wider := policy.DefaultPolicy() + "\np, steering, submission.list, allow\np, steering, submission.read_identifying, allow\n"
	ch, err := av.b.ProposePolicy(ctx, admin, wider)
	if err != nil {
		t.Fatal(err)
	}
	g, err := av.b.ChangeGrant(ctx, admin, "enum-c", policy.Grant{Role: policy.Steering, Area: communeA}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !g.Active {
		t.Logf("the steering grant waits for an approver (proposal %d): protection holds", g.Proposal)
		return
	}
	if _, err := av.b.ConfirmGrant(ctx, av.approver, ch.Proposal); err != nil {
		t.Logf("the policy's confirmation is refused: %v (protection holds)", err)
		return
	}
	// Opening a record is stopped by the open cap (steering has none by
	// default: a vault whose operator set one would let it through);
	// the review list of the commune is not.
	if _, err := av.b.OpenSubmission(ctx, av.caller("enum-c"), id); err == nil {
		t.Errorf("HOLE: the colluder opened %s", id)
	} else {
		t.Logf("open: %v", err)
	}
	list, err := av.b.ListSubmissions(ctx, av.caller("enum-c"), communeA, broker.ListOpts{})
	if err != nil {
		t.Logf("the colluder cannot list: %v (protection holds)", err)
		return
	}
	t.Fatalf("HOLE: steering granted unconfirmed while a policy making it a data role waited; after the approver confirmed the policy the colluder lists commune %s's submissions (%d rows)", communeA, len(list.Submissions))
}

// TestRedteam13bAdminApproverCreatesReleasePoint: ConfirmGrant,
// ApproveExtract and ApproveShare refuse a caller who may administer,
// CreateReleasePointAs does not. An admin whose approver grant one
// approver confirmed makes publication points alone.
func TestRedteam13bAdminApproverCreatesReleasePoint(t *testing.T) {
	av := newAdminVault(t)
	ctx := context.Background()
	av.deposit(ea(communeA, 1))
	ch, err := av.b.ChangeGrant(ctx, broker.APIOperator(av.admin), "admin-1", policy.Grant{Role: policy.Approver, Area: keyNation}, false)
	if err != nil {
		t.Logf("approver grant to an admin refused: %v (protection holds)", err)
		return
	}
	if _, err := av.b.ConfirmGrant(ctx, av.approver, ch.Proposal); err != nil {
		t.Logf("confirmation refused: %v (protection holds)", err)
		return
	}
	both := av.caller("admin-1")
	p, err := av.b.CreateReleasePointAs(ctx, both, "2026-admin")
	if err != nil {
		if !strings.Contains(broker.ErrorCodeOf(err), "four_eyes") {
			t.Logf("refused with %s: %v", broker.ErrorCodeOf(err), err)
		}
		return
	}
	t.Fatalf("HOLE: an administrator holding an approver grant created publication point %s (seq %d) alone: release_point.create is a four-eyes action", p.Name, p.Seq)
}
