package broker_test

// FINDING 8 (medium-high): an administrator can hold, or reach, the
// second pair of eyes. (a) TestRedteam13AdminApproverWithSecondAdmin:
// one approver's confirmation of "approver for admin-1" (nothing refuses
// a trust role to a holder of another) plus a second admin identity made
// at once make four eyes one person. (b) TestRedteam13PolicyLetsAdminConfirm:
// the refusal of a hostile role policy
// (Engine.TrustViolations, policy/separation.go, used by ProposePolicy)
// checks only the DATA actions for admin, auditor and approver. A policy
// that lets admin perform the second-pair-of-eyes actions —
// grant.confirm, extract.approve, ledger.approve, release_point.create —
// is accepted (it then only needs one approver's confirmation of a
// policy hash). Since an admin can create a second admin at once with a
// token to itself, four eyes becomes one person: admin-9 proposes, admin-1
// confirms. Suggested fix: TrustViolations also refuses admin holding any
// of ConfirmGrant, ApproveExtract, ApproveShare, CreateReleasePoint (and
// approver holding admin.manage), and ConfirmGrant refuses a confirmer
// who holds admin.manage at the root.
//
//   go test ./broker/ -run 'TestRedteam13(PolicyLetsAdminConfirm|AdminApproverWithSecondAdmin)' -count=1
// Both FAIL today.

import (
	"context"
	"testing"

	"filippo.io/age"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
)

func TestRedteam13PolicyLetsAdminConfirm(t *testing.T) {
	av := newAdminVault(t)
	ctx := context.Background()
	id := av.deposit(ea(communeA, 1))
	admin := func() broker.Operator { return broker.APIOperator(av.caller("admin-1")) }
	ch, err := av.b.ProposePolicy(ctx, admin(), policy.DefaultPolicy()+"\np, admin, grant.confirm, allow\n")
	if err != nil {
		t.Logf("policy refused: %v (protection holds)", err)
		return
	}
	if _, err := av.b.ConfirmGrant(ctx, av.approver, ch.Proposal); err != nil {
		t.Fatal(err)
	}
	mallory, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	// Defence in depth: even with the field office's key in the
	// attacker's hands (the office colludes), the attack must fail.
	if err := av.b.SetTokenRecipient(ctx, broker.HostOperator(actor), mallory.Recipient().String()); err != nil {
		t.Fatal(err)
	}
	mine := &adminVault{keyVault: av.keyVault, office: mallory}
	res, err := av.b.ImportUsers(ctx, admin(), []broker.NewUser{{Name: "admin-9", Role: policy.Admin, Area: keyNation}}, mallory.Recipient().String())
	if err != nil {
		t.Fatal(err)
	}
	mine.open(res.Sealed)
	res, err = av.b.ImportUsers(ctx, broker.APIOperator(av.caller("admin-9")), []broker.NewUser{{Name: "sock", Role: policy.TeamLeader, Area: communeA}}, mallory.Recipient().String())
	if err != nil {
		t.Fatal(err)
	}
	mine.open(res.Sealed)
	if _, err := av.b.ConfirmGrant(ctx, av.caller("admin-1"), res.Pending[0]); err != nil {
		t.Logf("admin-1 cannot confirm: %v (protection holds)", err)
		return
	}
	view, err := av.b.OpenSubmission(ctx, av.caller("sock"), id)
	if err != nil {
		t.Logf("sock cannot open: %v", err)
		return
	}
	t.Fatalf("HOLE: a policy letting admins confirm grants was accepted; admin-1 confirmed what its own second admin proposed; sock opened %s: %v", id, view.Classes)
}

// TestRedteam13AdminApproverWithSecondAdmin: the same without any policy
// change. One approver confirms "approver@VN for admin-1" (nothing
// refuses a trust role to someone holding another: ChangeGrant and
// ConfirmGrant check only proposer ≠ confirmer ≠ grantee). admin-1 then
// creates admin-9 (immediate, token to itself); admin-9 proposes a team
// leader grant for a sock puppet; admin-1 confirms it as approver.
// TestAdminCannotReachDataByCreatingUser shows one person holding both
// cannot confirm its own proposal; a second admin identity defeats that.
func TestRedteam13AdminApproverWithSecondAdmin(t *testing.T) {
	av := newAdminVault(t)
	ctx := context.Background()
	id := av.deposit(ea(communeA, 1))
	admin := func() broker.Operator { return broker.APIOperator(av.caller("admin-1")) }
	ch, err := av.b.ChangeGrant(ctx, admin(), "admin-1", policy.Grant{Role: policy.Approver, Area: keyNation}, false)
	if err != nil {
		t.Logf("approver grant to an admin refused: %v (protection holds)", err)
		return
	}
	if _, err := av.b.ConfirmGrant(ctx, av.approver, ch.Proposal); err != nil {
		t.Logf("confirmation refused: %v (protection holds)", err)
		return
	}
	mallory, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	// Defence in depth: even with the field office's key in the
	// attacker's hands (the office colludes), the attack must fail.
	if err := av.b.SetTokenRecipient(ctx, broker.HostOperator(actor), mallory.Recipient().String()); err != nil {
		t.Fatal(err)
	}
	mine := &adminVault{keyVault: av.keyVault, office: mallory}
	res, err := av.b.ImportUsers(ctx, admin(), []broker.NewUser{{Name: "admin-9", Role: policy.Admin, Area: keyNation}}, mallory.Recipient().String())
	if err != nil {
		t.Fatal(err)
	}
	mine.open(res.Sealed)
	res, err = av.b.ImportUsers(ctx, broker.APIOperator(av.caller("admin-9")), []broker.NewUser{{Name: "sock", Role: policy.TeamLeader, Area: communeA}}, mallory.Recipient().String())
	if err != nil {
		t.Fatal(err)
	}
	mine.open(res.Sealed)
	if _, err := av.b.ConfirmGrant(ctx, av.caller("admin-1"), res.Pending[0]); err != nil {
		t.Logf("admin-1 cannot confirm: %v (protection holds)", err)
		return
	}
	view, err := av.b.OpenSubmission(ctx, av.caller("sock"), id)
	if err != nil {
		t.Logf("sock cannot open: %v", err)
		return
	}
	t.Fatalf("HOLE: admin-1, made approver too, confirmed what its own second admin proposed; sock opened %s: %v", id, view.Classes)
}
