package broker_test

// FINDING 10 (low): two approvers confirming one proposal at once — the
// loser is answered 409 with the generic code "conflict" and the message
// "the change clashes with what is stored: look again with `censusvault
// user show …`" instead of 409 proposal_confirmed (what the same request
// gets a second later), and its audit event's reason is err.Error() of
// the broker error, which includes the server-only detail: the SQL
// constraint text ("UNIQUE constraint failed: grants.user, grants.role,
// …"). broker/grants.go ConfirmGrant: the Update adds the grant
// (commitChange) before tx.ConfirmGrant, so the grants table's
// uniqueness refuses first, adminErr maps it to a generic Conflict, and
// the refusal records `ev.Reason = err.Error()`. Suggested fix: call
// tx.ConfirmGrant first in the transaction (or map ErrConflict there to
// proposal_confirmed), and record the safe message (e.Msg) as refused()
// does.
//
//   go test ./broker/ -run 'TestRedteam13ConfirmRaceCodeAndDetail' -count=1
// Fixed: it passed once the hole was closed (it failed before).

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
)

func TestRedteam13ConfirmRaceCodeAndDetail(t *testing.T) {
	av := newAdminVault(t)
	ctx := context.Background()
	var callers []*broker.Caller
	for i := 1; i <= 5; i++ {
		name := fmt.Sprintf("approver-x%d", i)
		tok, err := av.b.AddUser(ctx, actor, broker.NewUser{Name: broker.UserID(name), Role: policy.Approver, Area: keyNation})
		if err != nil {
			t.Fatal(err)
		}
		av.tokens[name] = tok.Reveal()
		callers = append(callers, av.caller(name))
	}
	res := av.add(broker.NewUser{Name: "tl-race", Role: policy.TeamLeader, Area: communeA})
	h := av.auditHead()
	errs := make([]error, len(callers))
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = av.b.ConfirmGrant(ctx, callers[i], res.Pending[0]) }()
	}
	wg.Wait()
	var problems []string
	for _, err := range errs {
		if err != nil && errCode(err) != "proposal_confirmed" {
			problems = append(problems, fmt.Sprintf("loser answered %s: %q", errCode(err), err.(*broker.Error).Msg))
		}
	}
	for _, e := range av.events(h, "grant.confirm") {
		if strings.Contains(e.Reason, "constraint") {
			problems = append(problems, fmt.Sprintf("audit event %d reason holds the store's detail: %q", e.Index, e.Reason))
		}
	}
	if len(problems) > 0 {
		t.Fatalf("HOLE (low):\n  %s", strings.Join(problems[:min(len(problems), 4)], "\n  "))
	}
}
