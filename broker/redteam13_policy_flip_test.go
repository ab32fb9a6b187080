package broker_test

// FINDING 2 (high): whether a grant waits for an approver is decided by
// the role policy in force at the moment of the grant
// (needsConfirm → Engine.RevealsData, broker/admin.go), not by the role.
// An administrator has an approver confirm a NARROWER role policy (team
// leaders lose their record views — looks harmless, it only takes
// access away), grants team_leader to a user whose token it holds (now
// immediate: team_leader "reveals nothing"), then has the default policy
// confirmed back (looks harmless: "restore the default"). The team
// leader grant, never confirmed by anyone, now reads records. The issue
// names the data roles (team_leader, supervisor, researcher, processor)
// whose grants need an approver; the code asks the policy of the moment.
//
//   go test ./broker/ -run 'TestRedteam13PolicyFlip' -count=1
// Fixed: it passed once the hole was closed (it failed before).

import (
	"context"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
)

func TestRedteam13PolicyFlipUnconfirmedTeamLeader(t *testing.T) {
	av := newAdminVault(t)
	ctx := context.Background()
	// Every HTTP request authenticates anew, under the policy in force.
	admin := func() broker.Operator { return broker.APIOperator(av.caller("admin-1")) }
	id := av.deposit(ea(communeA, 1))

	// 1. A narrower policy: team leaders keep list and review but
	// open nothing. An approver confirms: it only takes access away.
	narrow := policy.DefaultPolicy()
	for _, l := range []string{"p, team_leader, submission.read_identifying, allow\n", "p, team_leader, submission.read_analytic, allow\n",
		"p, team_leader, submission.read_operational, allow\n"} {
		narrow = strings.Replace(narrow, l, "", 1)
	}
	ch, err := av.b.ProposePolicy(ctx, admin(), narrow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := av.b.ConfirmGrant(ctx, av.approver, ch.Proposal); err != nil {
		t.Fatal(err)
	}
	// 2. A team leader whose token goes to the admin: immediate now.
	mallory, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	// Defence in depth: even with the field office's key in the
	// attacker's hands (the office colludes), the attack must fail.
	if err := av.b.SetTokenRecipient(ctx, broker.HostOperator(actor), mallory.Recipient().String()); err != nil {
		t.Fatal(err)
	}
	res, err := av.b.ImportUsers(ctx, admin(), []broker.NewUser{{Name: "sock", Role: policy.TeamLeader, Area: communeA}}, mallory.Recipient().String())
	if err != nil {
		t.Fatal(err)
	}
	(&adminVault{keyVault: av.keyVault, office: mallory}).open(res.Sealed)
	// 3. Back to the default policy: confirmed by the other approver.
	ch, err = av.b.ProposePolicy(ctx, admin(), policy.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := av.b.ConfirmGrant(ctx, av.approver2, ch.Proposal); err != nil {
		t.Fatal(err)
	}
	// 4. The sock puppet reads.
	view, err := av.b.OpenSubmission(ctx, av.caller("sock"), id)
	if err != nil {
		t.Logf("sock cannot open: %v (protection holds)", err)
		return
	}
	t.Fatalf("HOLE: team_leader grant of sock was never confirmed (import: active %d, pending %v) yet sock, whose token the admin holds, opened %s: classes %v, head_name %s",
		res.Active, res.Pending, id, view.Classes, view.Fields["identifying"].Household["head_name"])
}
