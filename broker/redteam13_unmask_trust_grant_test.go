package broker_test

// FINDING 4 (high): removing a grant of a trust role (admin, auditor,
// approver) takes effect at once (needsConfirm, broker/admin.go: a
// removal waits only when it removes a deny), yet such a grant works as
// a deny: the role policy denies admin/auditor/approver every data action,
// "so holding such a grant on a path also blocks data actions of other
// roles there" (policy package doc). An approver will confirm a data
// grant to an administrator because it looks inert ("admins never see
// data"); the administrator then ungrants its own admin grant (a second
// admin, which it can create at once with a token to itself, keeps the
// last-admin rule happy) and reads as team leader — and can be made admin
// again at once afterwards. Same with an approver's or auditor's grant
// masking a processor or team leader grant.
//
//   go test ./broker/ -run 'TestRedteam13UnmaskByUngrantingTrustRole' -count=1
// Fixed: it passed once the hole was closed (it failed before).

import (
	"context"
	"testing"

	"filippo.io/age"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
)

func TestRedteam13UnmaskByUngrantingTrustRole(t *testing.T) {
	av := newAdminVault(t)
	ctx := context.Background()
	admin := broker.APIOperator(av.admin)
	id := av.deposit(ea(communeA, 1))

	// 1. A team leader grant for the admin itself: it waits, and an
	// approver confirms it — it gives the admin nothing while it is an
	// admin.
	ch, err := av.b.ChangeGrant(ctx, admin, "admin-1", policy.Grant{Role: policy.TeamLeader, Area: communeA}, false)
	if err != nil || ch.Active {
		t.Fatalf("grant: %+v, %v", ch, err)
	}
	if _, err := av.b.ConfirmGrant(ctx, av.approver, ch.Proposal); err != nil {
		t.Fatal(err)
	}
	if _, err := av.b.OpenSubmission(ctx, av.caller("admin-1"), id); broker.KindOf(err) != broker.Permission {
		t.Fatalf("while admin: %v", err)
	}
	// 2. A second admin whose token the admin holds: admin is not a
	// data role, so it holds at once.
	mallory, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	// Defence in depth: even with the field office's key in the
	// attacker's hands (the office colludes), the attack must fail.
	if err := av.b.SetTokenRecipient(ctx, broker.HostOperator(actor), mallory.Recipient().String()); err != nil {
		t.Fatal(err)
	}
	res, err := av.b.ImportUsers(ctx, admin, []broker.NewUser{{Name: "admin-9", Role: policy.Admin, Area: keyNation}}, mallory.Recipient().String())
	if err != nil || res.Active != 1 {
		t.Fatalf("second admin: %+v, %v", res, err)
	}
	(&adminVault{keyVault: av.keyVault, office: mallory}).open(res.Sealed)
	// 3. The admin drops its own admin grant: a removal of an allow,
	// in force at once.
	ch, err = av.b.ChangeGrant(ctx, admin, "admin-1", policy.Grant{Role: policy.Admin, Area: keyNation}, true)
	if err != nil {
		t.Logf("ungrant refused: %v (protection holds)", err)
		return
	}
	if !ch.Active {
		t.Logf("ungrant waits for an approver (proposal %d): protection holds", ch.Proposal)
		return
	}
	view, err := av.b.OpenSubmission(ctx, av.caller("admin-1"), id)
	if err != nil {
		t.Logf("open refused: %v (protection holds)", err)
		return
	}
	// 4. And admin again, at once, through the second admin.
	back, err := av.b.ChangeGrant(ctx, broker.APIOperator(av.caller("admin-9")), "admin-1", policy.Grant{Role: policy.Admin, Area: keyNation}, false)
	t.Fatalf("HOLE: admin-1 ungranted its own admin grant (no approver) and opened %s as team leader: %v, head_name %s; re-made admin at once: %+v, %v",
		id, view.Classes, view.Fields["identifying"].Household["head_name"], back, err)
}
