package broker_test

// FINDING 6 (low, information leak): Broker.Proposals
// (broker/grants.go) shows every grant proposal of the vault to any
// caller allowed grant.confirm ANYWHERE (anyGrantAllows): an approver of
// one commune reads who is being made team leader, processor or
// researcher where, nationwide, and who proposed it. ConfirmGrant itself
// is scoped to the grant's area; the list is not. Suggested fix: filter
// like ExtractsFor — a grant proposal whose area is in the caller's
// grant.confirm scope (Subtree), a policy proposal only for the root.
//
//   go test ./broker/ -run 'TestRedteam13ProposalsUnscoped' -count=1
// Fixed: it passed once the hole was closed (it failed before).

import (
	"context"
	"testing"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
)

func TestRedteam13ProposalsUnscoped(t *testing.T) {
	av := newAdminVault(t)
	ctx := context.Background()
	tok, err := av.b.AddUser(ctx, actor, broker.NewUser{Name: "approver-a", Role: policy.Approver, Area: communeA})
	if err != nil {
		t.Fatal(err)
	}
	av.tokens["approver-a"] = tok.Reveal()
	res := av.add(broker.NewUser{Name: "tl-b", Role: policy.TeamLeader, Area: communeB})
	// approver-a may not confirm it (outside its commune) ...
	if _, err := av.b.ConfirmGrant(ctx, av.caller("approver-a"), res.Pending[0]); broker.KindOf(err) != broker.Permission {
		t.Fatalf("approver of %s confirms a grant at %s: %v", communeA, communeB, err)
	}
	// ... but is shown it.
	ps, err := av.b.Proposals(ctx, broker.APIOperator(av.caller("approver-a")))
	if err != nil {
		t.Logf("refused: %v (protection holds)", err)
		return
	}
	for _, p := range ps {
		if p.User == "tl-b" {
			t.Fatalf("HOLE: the approver of commune %s is shown proposal %d: %s %s@%s for %s, proposed by %s", communeA, p.Seq, p.Kind, p.Grant.Role, p.Grant.Area, p.User, p.ProposedBy)
		}
	}
}
