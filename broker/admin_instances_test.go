package broker_test

import (
	"context"
	"testing"

	"filippo.io/age"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
)

// TestPolicyChangeSeenBySecondInstance: on PostgreSQL, a role policy and
// a grant confirmed through one instance hold on the very next request
// through another: the request reads the role policy's hash with its
// grants, so there is no window in which the other instance decides
// under the old policy (the acceptance asks within a second; it is at
// once). The attack it stops: a permission withdrawn on one instance
// still honoured by another.
func TestPolicyChangeSeenBySecondInstance(t *testing.T) {
	ctx := context.Background()
	a, bb := twoInstances(t)
	tokens := map[string]string{}
	for _, u := range []broker.NewUser{
		{Name: "admin-1", Role: policy.Admin, Area: keyNation},
		{Name: "approver-1", Role: policy.Approver, Area: keyNation},
		{Name: "steering", Role: policy.Steering, Area: keyNation},
	} {
		tok, err := a.AddUser(ctx, actor, u)
		if err != nil {
			t.Fatal(err)
		}
		tokens[string(u.Name)] = tok.Reveal()
	}
	on := func(b *broker.Broker, user string) *broker.Caller {
		t.Helper()
		c, err := b.Authenticate(ctx, "Bearer "+tokens[user], "test")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// B has decided under the default policy before the change.
	if _, err := bb.ListSubmissions(ctx, on(bb, "steering"), keyDistrict, broker.ListOpts{}); broker.KindOf(err) != broker.Permission {
		t.Fatalf("steering lists before the change: %v", err)
	}
	ch, err := a.ProposePolicy(ctx, broker.APIOperator(on(a, "admin-1")), policy.DefaultPolicy()+"\np, steering, submission.list, allow\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.ConfirmGrant(ctx, on(a, "approver-1"), ch.Proposal); err != nil {
		t.Fatal(err)
	}
	if _, err := bb.ListSubmissions(ctx, on(bb, "steering"), keyDistrict, broker.ListOpts{}); err != nil {
		t.Fatalf("instance B on the next request after the policy was confirmed on A: %v", err)
	}
	// And back: withdrawn on A, refused on B at once.
	ch, err = a.ProposePolicy(ctx, broker.APIOperator(on(a, "admin-1")), policy.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.ConfirmGrant(ctx, on(a, "approver-1"), ch.Proposal); err != nil {
		t.Fatal(err)
	}
	if _, err := bb.ListSubmissions(ctx, on(bb, "steering"), keyDistrict, broker.ListOpts{}); broker.KindOf(err) != broker.Permission {
		t.Fatalf("instance B still honours the withdrawn permission: %v", err)
	}
	// A grant confirmed on A holds on B at once too.
	office, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetTokenRecipient(ctx, broker.HostOperator(actor), office.Recipient().String()); err != nil {
		t.Fatal(err)
	}
	res, err := a.ImportUsers(ctx, broker.APIOperator(on(a, "admin-1")), []broker.NewUser{{Name: "tl-1", Role: policy.TeamLeader, Area: communeA}}, office.Recipient().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.ConfirmGrant(ctx, on(a, "approver-1"), res.Pending[0]); err != nil {
		t.Fatal(err)
	}
	for name, tok := range (&adminVault{keyVault: &keyVault{t: t, tokens: tokens}, office: office}).open(res.Sealed) {
		tokens[name] = tok
	}
	if _, err := bb.ListSubmissions(ctx, on(bb, "tl-1"), communeA, broker.ListOpts{}); err != nil {
		t.Fatalf("the confirmed team leader on instance B: %v", err)
	}
}
