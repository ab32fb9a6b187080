package policy_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/policy"
)

// pathOf is pathTo, but nil for a code outside testParents' tree, as the
// broker's tree answers for an unknown code.
func pathOf(code string) []string {
	if code != "VN" && testParents[code] == "" {
		return nil
	}
	return pathTo(code)
}

// descendants lists code and every area under it in testParents' tree.
func descendants(code string) []string {
	out := []string{code}
	for c := range testParents {
		p := pathTo(c)
		if slices.Contains(p[:len(p)-1], code) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// The attack of issue 10, finding 1: a researcher granted district 437
// with a deny on one of its EAs asks for the EA's parent. Allow at the
// parent says yes (no grant on its path denies); Subtree must say no.
func TestScopeSubtreeSeesDenyBelow(t *testing.T) {
	e := newDefault(t)
	ctx := context.Background()
	s := policy.Subject{User: "r", Grants: []policy.Grant{grant(policy.Researcher, "436"), deny(policy.Researcher, "18073-001")}}
	parent := pathTo("18073")
	d, err := e.Allow(ctx, s, policy.RequestTable, policy.Resource{Path: parent})
	if err != nil || !d.Allow {
		t.Fatalf("Allow at the parent = %+v, %v; the attack needs it allowed", d, err)
	}
	sc, err := e.Scope(s, policy.RequestTable, "")
	if err != nil {
		t.Fatal(err)
	}
	sd, err := sc.Subtree(parent, pathOf)
	if err != nil {
		t.Fatal(err)
	}
	if sd.Allow {
		t.Fatalf("Subtree(18073) allowed although 18073-001 is denied: %+v", sd)
	}
	if !strings.Contains(sd.Rule, "18073-001") {
		t.Errorf("rule %q does not name the denied area", sd.Rule)
	}
	for _, ok := range []string{"18070", "436"} {
		if ok == "436" {
			// 436 contains 18073-001: refused too.
			if d, _ := sc.Subtree(pathTo(ok), pathOf); d.Allow {
				t.Errorf("Subtree(436) allowed with a deny inside")
			}
			continue
		}
		if d, _ := sc.Subtree(pathTo(ok), pathOf); !d.Allow {
			t.Errorf("Subtree(%s) refused: %s", ok, d.Rule)
		}
	}
	if got := sc.Denied(); !slices.Equal(got, []string{"18073-001"}) {
		t.Errorf("Denied = %v", got)
	}
	if got := sc.Roots(pathOf); !slices.Equal(got, []string{"436"}) {
		t.Errorf("Roots = %v", got)
	}
}

// TestScopeAgainstAllow checks Scope against an oracle made of Allow
// alone, over random grant sets: Subtree(a) must be true exactly when
// Allow is true at a and at every area under it; At(a) must equal Allow;
// Denied must be the areas where Allow is false although an allowing
// grant sits on their path or at them; Roots must be allowed areas.
func TestScopeAgainstAllow(t *testing.T) {
	e := newDefault(t)
	ctx := context.Background()
	areas := append([]string{"VN"}, descendants("VN")[1:]...)
	areas = slices.Compact(append(areas, "VN"))
	roles := policy.Roles()
	rng := rand.New(rand.NewPCG(10, 2026))
	for trial := 0; trial < 3000; trial++ {
		var gs []policy.Grant
		for n := 1 + rng.IntN(4); n > 0; n-- {
			g := policy.Grant{Role: roles[rng.IntN(len(roles))], Area: areas[rng.IntN(len(areas))], Deny: rng.IntN(3) == 0}
			if rng.IntN(4) == 0 {
				g.Project = []string{"p1", "p2"}[rng.IntN(2)]
			}
			gs = append(gs, g)
		}
		s := policy.Subject{User: "u", Grants: gs}
		for _, a := range policy.Actions() {
			project := []string{"", "p1"}[rng.IntN(2)]
			sc, err := e.Scope(s, a, project)
			if err != nil {
				t.Fatal(err)
			}
			allow := func(code string) bool {
				d, err := e.Allow(ctx, s, a, policy.Resource{Path: pathTo(code), Project: project})
				if err != nil {
					t.Fatal(err)
				}
				return d.Allow
			}
			for _, code := range areas {
				at, err := sc.At(pathTo(code))
				if err != nil {
					t.Fatal(err)
				}
				if at.Allow != allow(code) {
					t.Fatalf("%v %s %s: At = %v, Allow = %v", gs, a, code, at.Allow, !at.Allow)
				}
				want := true
				for _, d := range descendants(code) {
					want = want && allow(d)
				}
				sub, err := sc.Subtree(pathTo(code), pathOf)
				if err != nil {
					t.Fatal(err)
				}
				if sub.Allow != want {
					t.Fatalf("grants %v, %s, project %q, area %s: Subtree = %v (%s), oracle %v", gs, a, project, code, sub.Allow, sub.Rule, want)
				}
			}
			for _, r := range sc.Roots(pathOf) {
				if !allow(r) {
					t.Fatalf("grants %v, %s: root %s is not allowed", gs, a, r)
				}
			}
			for _, dn := range sc.Denied() {
				for _, d := range descendants(dn) {
					if allow(d) {
						t.Fatalf("grants %v, %s: %s is under denied %s but allowed", gs, a, d, dn)
					}
				}
			}
		}
	}
}
