package broker_test

// Second red team of issue 13: attacks on the fixes that the vault
// stops. Each test is the attack; it fails if the protection is gone.

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// TestRedteam13bReissueToAnotherUsersRecipient: a colluding researcher
// has its own recipient registered on the host (for its tables). The
// admin asks for the approver's token, and a team leader's, to be
// reissued to that recipient: "the user's own" is the reissued user's,
// never another's. Refused 403 recipient_not_registered; the old tokens
// still work and no new one was made.
func TestRedteam13bReissueToAnotherUsersRecipient(t *testing.T) {
	av := newAdminVault(t)
	ctx := context.Background()
	res, err := av.b.ImportUsers(ctx, broker.HostOperator(actor), []broker.NewUser{{Name: "tl-1", Role: policy.TeamLeader, Area: communeA}}, av.office.Recipient().String())
	if err != nil {
		t.Fatal(err)
	}
	av.open(res.Sealed)
	tok, err := av.b.AddUser(ctx, actor, broker.NewUser{Name: "res-1", Role: policy.Enumerator, Area: communeB})
	if err != nil {
		t.Fatal(err)
	}
	av.tokens["res-1"] = tok.Reveal()
	colluder, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if err := av.b.SetRecipient(ctx, actor, "res-1", colluder.Recipient().String()); err != nil {
		t.Fatal(err)
	}
	for _, victim := range []broker.UserID{"approver-1", "tl-1"} {
		sealed, err := av.b.Reissue(ctx, broker.APIOperator(av.admin), victim, colluder.Recipient().String())
		if broker.ErrorCodeOf(err) != "recipient_not_registered" {
			t.Fatalf("the admin reissues %s's token to the colluder's registered recipient: %d bytes, %v; want 403 recipient_not_registered", victim, len(sealed), err)
		}
		// The old token still authenticates: nothing was replaced.
		av.caller(string(victim))
	}
}

// TestRedteam13bUngrantDeny: a deny grant that keeps a team
// leader away from one EA is removed by the admin: the removal waits for
// an approver, the admin cannot confirm it, and until an approver does
// the EA stays closed.
func TestRedteam13bUngrantDeny(t *testing.T) {
	av := newAdminVault(t)
	ctx := context.Background()
	id := av.deposit(ea(communeA, 1))
	host := broker.HostOperator(actor)
	tok, err := av.b.AddUser(ctx, actor, broker.NewUser{Name: "tl-x", Role: policy.TeamLeader, Area: communeA})
	if err != nil {
		t.Fatal(err)
	}
	av.tokens["tl-x"] = tok.Reveal()
	deny := policy.Grant{Role: policy.TeamLeader, Area: ea(communeA, 1), Deny: true}
	if _, err := av.b.ChangeGrant(ctx, host, "tl-x", deny, false); err != nil {
		t.Fatal(err)
	}
	if _, err := av.b.OpenSubmission(ctx, av.caller("tl-x"), id); broker.KindOf(err) != broker.Permission {
		t.Fatalf("the denied EA opens before the attack: %v", err)
	}
	ch, err := av.b.ChangeGrant(ctx, broker.APIOperator(av.admin), "tl-x", deny, true)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Active {
		t.Fatal("the admin removed a deny at once: it must wait for an approver")
	}
	if _, err := av.b.OpenSubmission(ctx, av.caller("tl-x"), id); broker.KindOf(err) != broker.Permission {
		t.Fatalf("the denied EA opens while the removal waits: %v", err)
	}
	if _, err := av.b.ConfirmGrant(ctx, av.admin, ch.Proposal); broker.KindOf(err) != broker.Permission {
		t.Fatalf("the admin confirms its own removal: %v", err)
	}
	if _, err := av.b.OpenSubmission(ctx, av.caller("tl-x"), id); broker.KindOf(err) != broker.Permission {
		t.Fatalf("the denied EA opens after the admin's confirmation attempt: %v", err)
	}
}

// TestRedteam13bAuditorExplainsRootEvents: an auditor of one commune
// asks explain about events whose area is the root (the field office's
// token recipient being registered, a role policy proposal, an
// administrator's list of users): each is refused exactly like an index
// past the head, naming no area, so the auditor learns neither what they
// are nor whether they exist.
func TestRedteam13bAuditorExplainsRootEvents(t *testing.T) {
	av := newAdminVault(t)
	ctx := context.Background()
	tok, err := av.b.AddUser(ctx, actor, broker.NewUser{Name: "aud-a", Role: policy.Auditor, Area: communeA})
	if err != nil {
		t.Fatal(err)
	}
	av.tokens["aud-a"] = tok.Reveal()
	if _, err := av.b.ProposePolicy(ctx, broker.APIOperator(av.admin), policy.DefaultPolicy()+"\np, steering, submission.list, allow\n"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := av.b.ListUsers(ctx, broker.APIOperator(av.admin), "", 10); err != nil {
		t.Fatal(err)
	}
	aud := broker.APIOperator(av.caller("aud-a"))
	var root []int64
	var head int64
	err = av.store.View(ctx, func(tx storage.ReadTx) error {
		return tx.AuditRecords(0, 1<<20, func(r storage.AuditRecord) (bool, error) {
			e, err := audit.Decode(r.Event)
			if err != nil {
				return false, err
			}
			if e.Area == keyNation {
				root = append(root, r.Index)
			}
			head = r.Index + 1
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(root) < 3 {
		t.Fatalf("only %d events at the root", len(root))
	}
	want := func(i int64) string {
		return fmt.Sprintf("not permitted to explain audit event %d (an admin, or an auditor of the area the event is about, may)", i)
	}
	for _, i := range append(root, head, head+1000) {
		x, err := av.b.ExplainEvent(ctx, aud, i)
		if broker.KindOf(err) != broker.Permission || !strings.HasSuffix(err.Error(), ": "+want(i)) {
			t.Fatalf("the commune's auditor explains event %d (root or beyond): %+v, %v", i, x, err)
		}
	}
}
