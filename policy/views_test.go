package policy_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/policy"
)

// viewActions are the actions of review views: listing submissions and
// revealing each field class of one.
var viewActions = []policy.Action{policy.ListSubmissions, policy.ReadIdentifying, policy.ReadAnalytic, policy.ReadOperational}

// TestReviewViewGrants: with the default policy a team leader lists and
// opens every class, a supervisor lists and opens the analytic class only
// (issue 13), and no other role any of it — each only in the subtree of
// the grant. Nobody holds the umbrella submission.read.
func TestReviewViewGrants(t *testing.T) {
	e := newDefault(t)
	ctx := context.Background()
	want := map[policy.Role][]policy.Action{
		policy.TeamLeader: viewActions,
		policy.Supervisor: {policy.ListSubmissions, policy.ReadAnalytic},
	}
	inside := descendants("436")
	for _, r := range policy.Roles() {
		s := policy.Subject{User: "u", Grants: []policy.Grant{grant(r, "436")}}
		for _, a := range append([]policy.Action{policy.ReadSubmission}, viewActions...) {
			for _, area := range allAreas() {
				d, err := e.Allow(ctx, s, a, policy.Resource{Path: pathTo(area)})
				if err != nil {
					t.Fatal(err)
				}
				if w := slices.Contains(want[r], a) && slices.Contains(inside, area); d.Allow != w {
					t.Errorf("%s@436 %s at %s: Allow = %v (%s), want %v", r, a, area, d.Allow, d.Rule, w)
				}
			}
		}
	}
}

// TestTrustRoleWithTeamLeaderGetsNoRecord is the attack of an admin, an
// auditor or an approver who also holds team leader and supervisor
// grants over the whole country (given by a colleague, or to himself):
// wherever the trust grant reaches, no submission is listed and no class
// of one revealed, and the refusal is the trust role's own deny rule.
func TestTrustRoleWithTeamLeaderGetsNoRecord(t *testing.T) {
	e := newDefault(t)
	ctx := context.Background()
	for _, trust := range []policy.Role{policy.Admin, policy.Auditor, policy.Approver} {
		for _, where := range []string{"VN", "436", "18070", "18070-001"} {
			s := policy.Subject{User: "u", Grants: []policy.Grant{
				grant(policy.TeamLeader, "VN"), grant(policy.Supervisor, "VN"), grant(trust, where),
			}}
			for _, a := range viewActions {
				sc, err := e.Scope(s, a, "")
				if err != nil {
					t.Fatal(err)
				}
				if d, err := sc.Subtree(pathTo(where), pathOf); err != nil || d.Allow {
					t.Errorf("%s@%s with team leader grants: %s on the subtree of %s allowed (%s)", trust, where, a, where, d.Rule)
				}
				for _, area := range descendants(where) {
					d, err := e.Allow(ctx, s, a, policy.Resource{Path: pathTo(area)})
					if err != nil {
						t.Fatal(err)
					}
					want := "grant " + string(trust) + "@" + where + "; p, " + string(trust) + ", " + string(a) + ", deny"
					if d.Allow || d.Rule != want {
						t.Errorf("%s@%s with team leader grants, %s at %s: Allow = %v (%s), want refused by %q", trust, where, a, area, d.Allow, d.Rule, want)
					}
				}
			}
		}
	}
}

// TestSupervisorNeverIdentifyingOrOperational is the attack of a
// supervisor who wants names or the operational record (visit counts, who
// answered): granted at the root, and holding every other role that sees
// any data (steering, researcher for a project, enumerator) as well, it
// is refused the identifying and the operational class at every area, has
// no scope for either, and still lists and opens the analytic class
// (issue 13).
func TestSupervisorNeverIdentifyingOrOperational(t *testing.T) {
	e := newDefault(t)
	ctx := context.Background()
	subjects := map[string][]policy.Grant{
		"supervisor": {grant(policy.Supervisor, "VN")},
		"supervisor who is also steering, researcher and enumerator": {
			grant(policy.Supervisor, "VN"), grant(policy.Steering, "VN"),
			{Role: policy.Researcher, Area: "VN", Project: "p1"}, grant(policy.Enumerator, "18070-001"),
		},
	}
	for name, grants := range subjects {
		s := policy.Subject{User: "sup", Grants: grants}
		for _, project := range []string{"", "p1"} {
			for _, a := range []policy.Action{policy.ReadIdentifying, policy.ReadOperational} {
				sc, err := e.Scope(s, a, project)
				if err != nil {
					t.Fatal(err)
				}
				if roots := sc.Roots(pathOf); len(roots) != 0 {
					t.Errorf("%s (project %q): %s scope %v, want none", name, project, a, roots)
				}
			}
			for _, area := range allAreas() {
				for _, a := range []policy.Action{policy.ReadIdentifying, policy.ReadOperational} {
					d, err := e.Allow(ctx, s, a, policy.Resource{Path: pathTo(area), Project: project})
					if err != nil {
						t.Fatal(err)
					}
					if d.Allow {
						t.Errorf("%s (project %q) opens the class of %s at %s: %s", name, project, a, area, d.Rule)
					}
				}
				for _, a := range []policy.Action{policy.ReadAnalytic, policy.ListSubmissions} {
					if d, _ := e.Allow(ctx, s, a, policy.Resource{Path: pathTo(area), Project: project}); !d.Allow {
						t.Errorf("%s (project %q) refused %s at %s: %s", name, project, a, area, d.Rule)
					}
				}
			}
		}
	}
}

// TestDenyBelowTeamLeaderHidesViews: a team leader of commune 18070 with
// a deny grant on one of its EAs lists and opens nothing there, keeps the
// rest of the commune, and the commune as a whole is not in scope.
func TestDenyBelowTeamLeaderHidesViews(t *testing.T) {
	e := newDefault(t)
	ctx := context.Background()
	s := policy.Subject{User: "tl", Grants: []policy.Grant{grant(policy.TeamLeader, "18070"), deny(policy.TeamLeader, "18070-001")}}
	for _, a := range viewActions {
		d, err := e.Allow(ctx, s, a, policy.Resource{Path: pathTo("18070-001")})
		if err != nil {
			t.Fatal(err)
		}
		if want := "deny-grant team_leader@18070-001 revokes p, team_leader, " + string(a) + ", allow"; d.Allow || d.Rule != want {
			t.Errorf("%s at the denied EA: Allow = %v (%s), want refused by %q", a, d.Allow, d.Rule, want)
		}
		for _, area := range []string{"18070-002", "18070-0010"} {
			if d, _ := e.Allow(ctx, s, a, policy.Resource{Path: pathTo(area)}); !d.Allow {
				t.Errorf("%s at %s (not denied): %s", a, area, d.Rule)
			}
		}
		sc, err := e.Scope(s, a, "")
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := sc.Subtree(pathTo("18070"), pathOf); d.Allow {
			t.Errorf("%s on the whole commune allowed despite the deny below: %s", a, d.Rule)
		}
		if got := sc.Denied(); !slices.Equal(got, []string{"18070-001"}) {
			t.Errorf("%s: Denied() = %v, want [18070-001]", a, got)
		}
	}
}

// TestPolicyBeforeViewsStillLoads: a vault made before review views
// stored a policy that names submission.read (in its deny lines) and none
// of the view actions. It still loads, and gives nobody a view: a team
// leader of such a vault lists and opens nothing until the policy is
// replaced.
func TestPolicyBeforeViewsStillLoads(t *testing.T) {
	var old []string
	for _, line := range strings.Split(policy.DefaultPolicy(), "\n") {
		if strings.Contains(line, "submission.list") || strings.Contains(line, "submission.read_") {
			continue
		}
		old = append(old, line)
	}
	text := strings.Join(old, "\n")
	if !strings.Contains(text, "p, admin, submission.read, deny") {
		t.Fatal("the default policy no longer names submission.read: the old policy this test rebuilds would differ")
	}
	e, err := policy.New(policy.Options{Policy: text})
	if err != nil {
		t.Fatalf("a policy stored before views does not load: %v", err)
	}
	s := policy.Subject{User: "tl", Grants: []policy.Grant{grant(policy.TeamLeader, "VN")}}
	for _, a := range append([]policy.Action{policy.ReadSubmission}, viewActions...) {
		d, err := e.Allow(context.Background(), s, a, policy.Resource{Path: pathTo("18070-001")})
		if err != nil || d.Allow {
			t.Errorf("old policy, team leader %s: Allow = %v (%s), %v; want no", a, d.Allow, d.Rule, err)
		}
	}
}

// TestReviewGrants is the attack of every role but a team leader's or a
// supervisor's on submission.review (issue 13): an enumerator marking its
// own deposit accepted, a steering member, a researcher, or a trust role
// holding team leader grants as well. Only team leaders and supervisors
// review, and only in the subtree of their grant.
func TestReviewGrants(t *testing.T) {
	e := newDefault(t)
	ctx := context.Background()
	inside := descendants("436")
	for _, r := range policy.Roles() {
		s := policy.Subject{User: "u", Grants: []policy.Grant{grant(r, "436")}}
		for _, area := range allAreas() {
			d, err := e.Allow(ctx, s, policy.ReviewSubmission, policy.Resource{Path: pathTo(area)})
			if err != nil {
				t.Fatal(err)
			}
			want := (r == policy.TeamLeader || r == policy.Supervisor) && slices.Contains(inside, area)
			if d.Allow != want {
				t.Errorf("%s@436 reviews at %s: Allow = %v (%s), want %v", r, area, d.Allow, d.Rule, want)
			}
		}
	}
	for _, trust := range []policy.Role{policy.Admin, policy.Auditor, policy.Approver} {
		s := policy.Subject{User: "u", Grants: []policy.Grant{grant(policy.TeamLeader, "VN"), grant(policy.Supervisor, "VN"), grant(trust, "VN")}}
		if d, _ := e.Allow(ctx, s, policy.ReviewSubmission, policy.Resource{Path: pathTo("18070-001")}); d.Allow {
			t.Errorf("%s with team leader and supervisor grants reviews: %s", trust, d.Rule)
		}
	}
}
