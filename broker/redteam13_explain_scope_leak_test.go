package broker_test

// FINDING 5 (medium, information leak): an auditor scoped to one
// province learns, through explain, about people and areas outside it.
//   - Explain (broker/explain.go) authorizes policy.explain at the area
//     asked, then answers with EVERY grant of the named user
//     (Explanation.Grants), wherever they are, and 404 "no user X" for a
//     name that does not exist: the scoped auditor enumerates the vault's
//     users and maps every team leader, processor and approver of the
//     country by asking about its own province.
//   - ExplainEvent of an event in its scope answers the actor's grants
//     everywhere too (pol.Grants[x.User]).
//   - The Note says whether a user outside the scope is revoked or
//     expired.
// Suggested fix: answer only the grants whose area is in the caller's
// scope for policy.explain (or on the asked area's path), and answer a
// user unknown and a user with no grant in scope alike.
//
//   go test ./broker/ -run 'TestRedteam13ExplainLeaksOutsideScope' -count=1
// Fixed: it passed once the hole was closed (it failed before).

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
)

// rt13TwoProvinces is keyAreas with a second province (Hà Nội, 01) of
// one district, one commune and one EA.
func rt13TwoProvinces() string {
	return keyAreas() + "01,VN,province,Thành phố Hà Nội,\n001,01,district,Quận Ba Đình,\n00001,001,commune,Phường Phúc Xá,\n00001-01,00001,ea,Địa bàn 01,40\n"
}

func TestRedteam13ExplainLeaksOutsideScope(t *testing.T) {
	kv := newKeyVault(t, keyVaultOpts{areas: rt13TwoProvinces()})
	ctx := context.Background()
	for _, u := range []broker.NewUser{
		{Name: "auditor-42", Role: policy.Auditor, Area: "42"},
		{Name: "tl-hanoi", Role: policy.TeamLeader, Area: "00001"},
		{Name: "both", Role: policy.Enumerator, Area: keyDistrict},
	} {
		tok, err := kv.b.AddUser(ctx, actor, u)
		if err != nil {
			t.Fatal(err)
		}
		kv.tokens[string(u.Name)] = tok.Reveal()
	}
	if err := kv.b.Grant(ctx, actor, "both", policy.Grant{Role: policy.Processor, Area: "01"}); err != nil {
		t.Fatal(err)
	}
	aud := broker.APIOperator(kv.caller("auditor-42"))
	var leaks []string

	// A Hà Nội team leader, asked about at Hà Tĩnh.
	x, err := kv.b.Explain(ctx, aud, "tl-hanoi", policy.ReadIdentifying, "42", "")
	if err == nil {
		for _, g := range x.Grants {
			if g.Area == "00001" {
				leaks = append(leaks, fmt.Sprintf("Explain(tl-hanoi at 42) shows grant %s@%s", g.Role, g.Area))
			}
		}
	}
	// Who exists: 404 for nobody, 200 for the Hà Nội team leader.
	_, errNobody := kv.b.Explain(ctx, aud, "nobody-at-all", policy.ReadIdentifying, "42", "")
	if broker.KindOf(errNobody) == broker.NotFound && err == nil {
		leaks = append(leaks, "Explain answers 404 for an unknown user and 200 for a user of another province (a user-name oracle)")
	}
	// A past event of its province, made by a user who also works in
	// Hà Nội.
	kv.enum = kv.caller("both")
	if _, err := kv.tryDeposit(kv.b, ea(communeA, 1)); err != nil {
		t.Fatal(err)
	}
	evs := kv.events(0, "submission.deposit")
	px, err := kv.b.ExplainEvent(ctx, aud, evs[len(evs)-1].Index)
	if err == nil {
		for _, g := range px.Grants {
			if g.Area == "01" {
				leaks = append(leaks, fmt.Sprintf("ExplainEvent(%d) shows grant %s@%s", px.Event, g.Role, g.Area))
			}
		}
	}
	if len(leaks) > 0 {
		t.Fatalf("HOLE: an auditor of province 42 learns about province 01:\n  %s", strings.Join(leaks, "\n  "))
	}
}
