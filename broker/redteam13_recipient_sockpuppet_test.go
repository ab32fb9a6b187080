package broker_test

// FINDING 3 (high, fixed): the recipient a new user's token was
// encrypted to was whatever the administrator's request named, so an
// administrator could make an approver ("carol") whose token it held and
// from then on confirm its own data grants: four eyes, one person. Now a
// token made over the API goes only to the field office's recipient,
// registered on the vault host (or, for a reissue, the user's own).

import (
	"context"
	"testing"

	"filippo.io/age"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
)

// TestRedteam13RecipientSockPuppetApprover: the administrator names its
// own key for a new approver's token, for a new team leader's, and for a
// reissue of an existing approver's; each is refused
// (recipient_not_registered), audited, and no user is made.
func TestRedteam13RecipientSockPuppetApprover(t *testing.T) {
	av := newAdminVault(t)
	ctx := context.Background()
	admin := broker.APIOperator(av.admin)
	mallory, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	before := av.auditHead()
	for _, u := range []broker.NewUser{{Name: "carol", Role: policy.Approver, Area: keyNation}, {Name: "sock", Role: policy.TeamLeader, Area: communeA}} {
		if _, err := av.b.ImportUsers(ctx, admin, []broker.NewUser{u}, mallory.Recipient().String()); errCode(err) != "recipient_not_registered" {
			t.Fatalf("new %s with the admin's own recipient: %v, want recipient_not_registered", u.Name, err)
		}
		if _, err := av.b.User(ctx, u.Name); broker.KindOf(err) != broker.NotFound {
			t.Fatalf("a refused import made user %s: %v", u.Name, err)
		}
	}
	if _, err := av.b.Reissue(ctx, admin, "approver-2", mallory.Recipient().String()); errCode(err) != "recipient_not_registered" {
		t.Fatalf("reissue of an approver's token to the admin's key: %v", err)
	}
	// The host operator cannot be impersonated over the API either.
	if err := av.b.SetTokenRecipient(ctx, admin, mallory.Recipient().String()); errCode(err) != "host_only" {
		t.Fatalf("the admin registers its own key as the field office's: %v", err)
	}
	if evs := av.events(before, "user.add", "user.reissue", "user.token_recipient"); len(evs) != 4 {
		t.Fatalf("%d refusal events, want 4 (one per request)", len(evs))
	} else {
		for _, e := range evs {
			if e.Outcome == "ok" {
				t.Fatalf("a refused request logged as ok: %+v", e)
			}
		}
	}
	// With no recipient named, the field office's is used.
	res, err := av.b.ImportUsers(ctx, admin, []broker.NewUser{{Name: "enum-ok", Role: policy.Enumerator, Area: communeA}}, "")
	if err != nil {
		t.Fatal(err)
	}
	av.open(res.Sealed)
	av.caller("enum-ok")
}
