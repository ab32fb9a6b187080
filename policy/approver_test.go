package policy_test

import (
	"context"
	"slices"
	"testing"

	"github.com/censusvault/censusvault/policy"
)

// allAreas is every area of testParents' tree, the root included.
func allAreas() []string { return descendants("VN") }

// TestApproverSeesNoData is the attack of an approver (issue 11) who
// wants data: with a grant at the root, and with the researcher,
// enumerator and team leader grants a person might hold as well, the
// approver token asks to request a table (for the project the researcher
// grant is for), deposit, supersede, read a receipt, read a submission,
// list submissions or open any field class of one, at every area. Every answer is no, through Allow and
// through Scope (no subtree, no root to answer from), and the grant
// that refuses is the approver's deny rule: the same person's other
// roles are blocked wherever the approver grant reaches, as an admin's
// or auditor's would be.
func TestApproverSeesNoData(t *testing.T) {
	e := newDefault(t)
	ctx := context.Background()
	dataActions := policy.DataActions()
	subjects := map[string][]policy.Grant{
		"approver alone": {grant(policy.Approver, "VN")},
		"approver who is also researcher, team leader and enumerator": {
			grant(policy.Approver, "VN"),
			{Role: policy.Researcher, Area: "VN", Project: "p1"},
			grant(policy.TeamLeader, "VN"), grant(policy.Enumerator, "18070-001"), grant(policy.Processor, "VN"),
		},
	}
	for name, grants := range subjects {
		s := policy.Subject{User: "approver-1", Grants: grants}
		for _, a := range dataActions {
			for _, project := range []string{"", "p1"} {
				sc, err := e.Scope(s, a, project)
				if err != nil {
					t.Fatal(err)
				}
				if roots := sc.Roots(pathOf); len(roots) != 0 {
					t.Errorf("%s, %s (project %q): Scope roots %v, want none", name, a, project, roots)
				}
				if sub, err := sc.Subtree(pathTo("VN"), pathOf); err != nil || sub.Allow {
					t.Errorf("%s, %s (project %q): Subtree(VN) = %v (%s), %v; want no", name, a, project, sub.Allow, sub.Rule, err)
				}
				for _, area := range allAreas() {
					d, err := e.Allow(ctx, s, a, policy.Resource{Path: pathTo(area), Project: project})
					if err != nil {
						t.Fatal(err)
					}
					if d.Allow {
						t.Errorf("%s may %s at %s (project %q): %s", name, a, area, project, d.Rule)
						continue
					}
					if len(grants) > 1 {
						want := "grant approver@VN; p, approver, " + string(a) + ", deny"
						if d.Rule != want {
							t.Errorf("%s, %s at %s (project %q): refused by %q, want the approver's deny rule %q", name, a, area, project, d.Rule, want)
						}
					}
				}
			}
		}
	}
}

// TestApproverOnlyCreatesReleasePoints: an approver at the root may do
// nothing but create publication points, approve ledger share changes
// and extracts, and confirm grants and form versions: not administer, read the audit log or progress, nor any data
// action.
func TestApproverOnlyCreatesReleasePoints(t *testing.T) {
	e := newDefault(t)
	s := policy.Subject{User: "approver-1", Grants: []policy.Grant{grant(policy.Approver, "VN")}}
	for _, a := range policy.Actions() {
		d, err := e.Allow(context.Background(), s, a, policy.Resource{Path: pathTo("VN")})
		if err != nil {
			t.Fatal(err)
		}
		want := a == policy.CreateReleasePoint || a == policy.ApproveShare || a == policy.ApproveExtract || a == policy.ConfirmGrant || a == policy.ConfirmForm
		if d.Allow != want {
			t.Errorf("approver@VN %s: Allow = %v (%s), want %v", a, d.Allow, d.Rule, want)
		}
	}
}

// TestOnlyApproverCreatesReleasePoint is the attack of an admin who
// freezes a publication point himself instead of asking the second pair
// of eyes: an admin at the root may not create one, nor may any other
// role but the approver, at any area. An approver may, within the
// subtree of the grant only, and a deny grant takes it away.
func TestOnlyApproverCreatesReleasePoint(t *testing.T) {
	e := newDefault(t)
	ctx := context.Background()
	allow := func(grants []policy.Grant, area string) policy.Decision {
		t.Helper()
		d, err := e.Allow(ctx, policy.Subject{User: "u", Grants: grants}, policy.CreateReleasePoint, policy.Resource{Path: pathTo(area)})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, r := range policy.Roles() {
		if r == policy.Approver {
			continue
		}
		for _, area := range allAreas() {
			if d := allow([]policy.Grant{grant(r, "VN")}, area); d.Allow {
				t.Errorf("%s@VN may create a publication point at %s: %s", r, area, d.Rule)
			}
		}
	}
	if d := allow([]policy.Grant{grant(policy.Admin, "VN")}, "VN"); d.Rule != "role(s) admin not permitted release_point.create" {
		t.Errorf("admin@VN creating a point: refused by %q, want for lack of the permission", d.Rule)
	}
	// Every role but approver together is still no.
	var others []policy.Grant
	for _, r := range policy.Roles() {
		if r != policy.Approver {
			others = append(others, grant(r, "VN"))
		}
	}
	if d := allow(others, "VN"); d.Allow {
		t.Errorf("every other role together may create a point: %s", d.Rule)
	}

	if d := allow([]policy.Grant{grant(policy.Approver, "VN")}, "VN"); !d.Allow || d.Rule != "grant approver@VN; p, approver, release_point.create, allow" {
		t.Errorf("approver@VN creating a point at VN: Allow = %v, rule %q", d.Allow, d.Rule)
	}
	// A subtree approver: inside only.
	sub := []policy.Grant{grant(policy.Approver, "436")}
	inside := descendants("436")
	for _, area := range allAreas() {
		if d := allow(sub, area); d.Allow != slices.Contains(inside, area) {
			t.Errorf("approver@436 creating a point at %s: Allow = %v (%s)", area, d.Allow, d.Rule)
		}
	}
	withDeny := []policy.Grant{grant(policy.Approver, "VN"), deny(policy.Approver, "436")}
	if d := allow(withDeny, "18070"); d.Allow || d.Rule != "deny-grant approver@436 revokes p, approver, release_point.create, allow" {
		t.Errorf("approver@VN with a deny at 436 creating a point at 18070: Allow = %v, rule %q", d.Allow, d.Rule)
	}
	if d := allow(withDeny, "437"); !d.Allow {
		t.Errorf("approver@VN with a deny at 436 creating a point at 437: refused by %q", d.Rule)
	}
}
