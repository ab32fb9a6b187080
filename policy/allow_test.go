package policy_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/censusvault/censusvault/policy"
)

// testParents is a small slice of the census tree: nation VN, province 42
// (Hà Tĩnh), districts 436 and 437, communes 18070 and 18073 (siblings
// under 436) and 18100 (under 437), and EAs under each commune. The EA
// code 18070-0010 shares a prefix with 18070-001 to catch prefix matching.
var testParents = map[string]string{
	"42":         "VN",
	"436":        "42",
	"437":        "42",
	"18070":      "436",
	"18073":      "436",
	"18100":      "437",
	"18070-001":  "18070",
	"18070-002":  "18070",
	"18070-0010": "18070",
	"18073-001":  "18073",
	"18100-001":  "18100",
}

// pathTo returns the area path of code, root first.
func pathTo(code string) []string {
	var path []string
	for c := code; c != ""; c = testParents[c] {
		path = append(path, c)
	}
	slices.Reverse(path)
	return path
}

func newDefault(t testing.TB) *policy.Engine {
	t.Helper()
	e, err := policy.New(policy.Options{})
	if err != nil {
		t.Fatalf("New(default): %v", err)
	}
	return e
}

func grant(role policy.Role, area string) policy.Grant { return policy.Grant{Role: role, Area: area} }
func deny(role policy.Role, area string) policy.Grant {
	return policy.Grant{Role: role, Area: area, Deny: true}
}

func TestAllow(t *testing.T) {
	e := newDefault(t)
	tests := []struct {
		name      string
		grants    []policy.Grant
		action    policy.Action
		target    string
		wantAllow bool
		wantRule  string // exact
		wantRoles []string
	}{
		{
			name:   "enumerator deposits in own EA",
			grants: []policy.Grant{grant(policy.Enumerator, "18070-001")}, action: policy.Deposit, target: "18070-001",
			wantAllow: true, wantRule: "grant enumerator@18070-001; p, enumerator, submission.deposit, allow", wantRoles: []string{"enumerator"},
		},
		{
			name:   "enumerator not in the neighbouring EA",
			grants: []policy.Grant{grant(policy.Enumerator, "18070-001")}, action: policy.Deposit, target: "18070-002",
			wantRule: "no grant covers 18070-002 for submission.deposit",
		},
		{
			name:   "grant on a code that is a prefix of the target does not cover it",
			grants: []policy.Grant{grant(policy.Enumerator, "18070-001")}, action: policy.Deposit, target: "18070-0010",
			wantRule: "no grant covers 18070-0010 for submission.deposit",
		},
		{
			name:   "commune grant covers an EA below (inherited enumerator permission)",
			grants: []policy.Grant{grant(policy.TeamLeader, "18070")}, action: policy.Deposit, target: "18070-002",
			wantAllow: true, wantRule: "grant team_leader@18070; p, enumerator, submission.deposit, allow", wantRoles: []string{"team_leader"},
		},
		{
			name:   "commune grant covers the commune itself",
			grants: []policy.Grant{grant(policy.TeamLeader, "18070")}, action: policy.ReadProgress, target: "18070",
			wantAllow: true, wantRule: "grant team_leader@18070; p, enumerator, progress.read, allow", wantRoles: []string{"team_leader"},
		},
		{
			name:   "commune grant does not cover its parent district",
			grants: []policy.Grant{grant(policy.TeamLeader, "18070")}, action: policy.ReadProgress, target: "436",
			wantRule: "no grant covers 436 for progress.read",
		},
		{
			name:   "commune grant does not cover the sibling commune's EA",
			grants: []policy.Grant{grant(policy.TeamLeader, "18070")}, action: policy.Deposit, target: "18073-001",
			wantRule: "no grant covers 18073-001 for submission.deposit",
		},
		{
			name:   "team leader's own permission",
			grants: []policy.Grant{grant(policy.TeamLeader, "18070")}, action: policy.SupersedeAny, target: "18070-001",
			wantAllow: true, wantRule: "grant team_leader@18070; p, team_leader, submission.supersede_any, allow", wantRoles: []string{"team_leader"},
		},
		{
			name:   "inheritance goes one way: enumerator may not supersede",
			grants: []policy.Grant{grant(policy.Enumerator, "18070-001")}, action: policy.SupersedeAny, target: "18070-001",
			wantRule: "role(s) enumerator not permitted submission.supersede_any", wantRoles: []string{"enumerator"},
		},
		{
			name:   "deny grant at a district beats an allow at the nation",
			grants: []policy.Grant{grant(policy.Steering, "VN"), deny(policy.Steering, "436")}, action: policy.ReadProgress, target: "18073-001",
			wantRule: "deny-grant steering@436 revokes p, steering, progress.read, allow", wantRoles: []string{"steering"},
		},
		{
			name:   "deny grant order in the subject does not matter",
			grants: []policy.Grant{deny(policy.Steering, "436"), grant(policy.Steering, "VN")}, action: policy.ReadProgress, target: "18073-001",
			wantRule: "deny-grant steering@436 revokes p, steering, progress.read, allow", wantRoles: []string{"steering"},
		},
		{
			name:   "deny grant at a district leaves the other district allowed",
			grants: []policy.Grant{grant(policy.Steering, "VN"), deny(policy.Steering, "436")}, action: policy.ReadProgress, target: "18100-001",
			wantAllow: true, wantRule: "grant steering@VN; p, steering, progress.read, allow", wantRoles: []string{"steering"},
		},
		{
			name:   "deny grant on an inherited role revokes the inheritor's permission",
			grants: []policy.Grant{grant(policy.TeamLeader, "18070"), deny(policy.Enumerator, "436")}, action: policy.Deposit, target: "18070-001",
			wantRule: "deny-grant enumerator@436 revokes p, enumerator, submission.deposit, allow", wantRoles: []string{"enumerator", "team_leader"},
		},
		{
			name:   "deny grant of a role lacking the permission changes nothing",
			grants: []policy.Grant{grant(policy.Supervisor, "VN"), deny(policy.Researcher, "436")}, action: policy.ReadProgress, target: "18070-001",
			wantAllow: true, wantRule: "grant supervisor@VN; p, supervisor, progress.read, allow", wantRoles: []string{"researcher", "supervisor"},
		},
		{
			name:   "deny grant alone is not an allow",
			grants: []policy.Grant{deny(policy.Supervisor, "VN")}, action: policy.ReadProgress, target: "18070-001",
			wantRule: "deny-grant supervisor@VN revokes p, supervisor, progress.read, allow", wantRoles: []string{"supervisor"},
		},
		{
			name:   "admin grant at the nation blocks a team leader's deposit",
			grants: []policy.Grant{grant(policy.TeamLeader, "18070"), grant(policy.Admin, "VN")}, action: policy.Deposit, target: "18070-001",
			wantRule: "grant admin@VN; p, admin, submission.deposit, deny", wantRoles: []string{"admin", "team_leader"},
		},
		{
			name:   "admin administers",
			grants: []policy.Grant{grant(policy.Admin, "VN")}, action: policy.Administer, target: "VN",
			wantAllow: true, wantRule: "grant admin@VN; p, admin, admin.manage, allow", wantRoles: []string{"admin"},
		},
		{
			name:   "auditor reads the audit log of a subtree",
			grants: []policy.Grant{grant(policy.Auditor, "42")}, action: policy.ReadAudit, target: "18100",
			wantAllow: true, wantRule: "grant auditor@42; p, auditor, audit.read, allow", wantRoles: []string{"auditor"},
		},
		{
			name:   "researcher requests tables, not progress",
			grants: []policy.Grant{grant(policy.Researcher, "42")}, action: policy.ReadProgress, target: "436",
			wantRule: "role(s) researcher not permitted progress.read", wantRoles: []string{"researcher"},
		},
		{
			name:   "nobody reads submissions yet",
			grants: []policy.Grant{grant(policy.TeamLeader, "18070"), grant(policy.Supervisor, "436")}, action: policy.ReadSubmission, target: "18070-001",
			wantRule: "role(s) supervisor, team_leader not permitted submission.read", wantRoles: []string{"supervisor", "team_leader"},
		},
		{
			name:   "roles deduplicated; only grants on the path count",
			grants: []policy.Grant{grant(policy.Enumerator, "18070-001"), grant(policy.Enumerator, "18070"), grant(policy.Supervisor, "437")}, action: policy.Deposit, target: "18070-001",
			wantAllow: true, wantRule: "grant enumerator@18070; p, enumerator, submission.deposit, allow", wantRoles: []string{"enumerator"},
		},
		{
			name:   "no grants at all",
			action: policy.ReadProgress, target: "VN",
			wantRule: "no grant covers VN for progress.read",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := policy.Subject{User: "u1", Grants: tt.grants}
			d, err := e.Allow(context.Background(), s, tt.action, policy.Resource{Path: pathTo(tt.target)})
			if err != nil {
				t.Fatalf("Allow: %v", err)
			}
			if d.Allow != tt.wantAllow {
				t.Errorf("Allow = %v, want %v (rule %q)", d.Allow, tt.wantAllow, d.Rule)
			}
			if d.Rule != tt.wantRule {
				t.Errorf("Rule = %q, want %q", d.Rule, tt.wantRule)
			}
			if !slices.Equal(d.Roles, tt.wantRoles) {
				t.Errorf("Roles = %q, want %q", d.Roles, tt.wantRoles)
			}
		})
	}
}

// TestSeparationOfDuties checks that an admin, auditor or approver grant
// on the path denies every data action, even to a user who also holds the
// field or research role that would allow it, and that the reason is the
// deny rule.
func TestSeparationOfDuties(t *testing.T) {
	e := newDefault(t)
	dataActions := []policy.Action{policy.Deposit, policy.SupersedeAny, policy.ReadSubmission, policy.ReadReceipt, policy.RequestTable,
		policy.ListSubmissions, policy.ReadIdentifying, policy.ReadAnalytic, policy.ReadOperational, policy.ReviewSubmission}
	for _, trust := range []policy.Role{policy.Admin, policy.Auditor, policy.Approver} {
		for _, a := range dataActions {
			for _, where := range []string{"VN", "436", "18070-001"} {
				s := policy.Subject{User: "u", Grants: []policy.Grant{
					grant(policy.TeamLeader, "VN"), grant(policy.Researcher, "VN"), grant(trust, where),
				}}
				d, err := e.Allow(context.Background(), s, a, policy.Resource{Path: pathTo("18070-001")})
				if err != nil {
					t.Fatal(err)
				}
				want := "grant " + string(trust) + "@" + where + "; p, " + string(trust) + ", " + string(a) + ", deny"
				if d.Allow || d.Rule != want {
					t.Errorf("%s@%s %s: Allow=%v Rule=%q, want deny by %q", trust, where, a, d.Allow, d.Rule, want)
				}
			}
			// Outside the trust grant's subtree the other roles decide.
			s := policy.Subject{User: "u", Grants: []policy.Grant{grant(policy.TeamLeader, "VN"), grant(trust, "437")}}
			d, err := e.Allow(context.Background(), s, policy.Deposit, policy.Resource{Path: pathTo("18070-001")})
			if err != nil {
				t.Fatal(err)
			}
			if !d.Allow {
				t.Errorf("%s@437 should not affect 18070-001: %q", trust, d.Rule)
			}
		}
	}
}

// TestDefaultPolicyDeniesOnlyLeafRoles guards the inheritance trap: a deny
// rule on a role another role inherits would reach the inheritor too.
func TestDefaultPolicyDeniesOnlyLeafRoles(t *testing.T) {
	inherited := map[string]bool{}
	var denied []string
	for _, line := range strings.Split(policy.DefaultPolicy(), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Split(line, ",")
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		switch {
		case f[0] == "g" && len(f) == 3:
			inherited[f[2]] = true
		case f[0] == "p" && len(f) == 4 && f[3] == "deny":
			denied = append(denied, f[1])
		}
	}
	if len(inherited) == 0 || len(denied) == 0 {
		t.Fatalf("default policy has no g rule or no deny rule: inherited=%v denied=%v", inherited, denied)
	}
	for _, r := range denied {
		if inherited[r] {
			t.Errorf("deny rule on %q, which another role inherits", r)
		}
	}
}

func TestAllowMalformedInput(t *testing.T) {
	e := newDefault(t)
	ok := []policy.Grant{grant(policy.Enumerator, "VN")}
	deep := func(n int) []string {
		p := make([]string, n)
		for i := range p {
			p[i] = "a" + strings.Repeat("x", i%3)
		}
		return p
	}
	manyGrants := func(n int) []policy.Grant {
		g := make([]policy.Grant, n)
		for i := range g {
			g[i] = grant(policy.Enumerator, "VN")
		}
		return g
	}
	tests := []struct {
		name    string
		grants  []policy.Grant
		action  policy.Action
		path    []string
		wantErr error // nil: must succeed
	}{
		{"nil path", ok, policy.Deposit, nil, policy.ErrInvalidResource},
		{"empty path", ok, policy.Deposit, []string{}, policy.ErrInvalidResource},
		{"empty area in path", ok, policy.Deposit, []string{"VN", ""}, policy.ErrInvalidResource},
		{"unknown action", ok, "submission.delete", []string{"VN"}, policy.ErrUnknownAction},
		{"empty action", ok, "", []string{"VN"}, policy.ErrUnknownAction},
		{"unknown grant role", []policy.Grant{grant("mayor", "VN")}, policy.Deposit, []string{"VN"}, policy.ErrUnknownRole},
		{"unknown grant role is a subject error", []policy.Grant{grant("mayor", "VN")}, policy.Deposit, []string{"VN"}, policy.ErrInvalidSubject},
		{"unknown role off the path still rejected", []policy.Grant{grant("Admin", "elsewhere")}, policy.Deposit, []string{"VN"}, policy.ErrUnknownRole},
		{"grant without area", []policy.Grant{grant(policy.Enumerator, "")}, policy.Deposit, []string{"VN"}, policy.ErrInvalidSubject},
		{"path depth max-1", ok, policy.Deposit, deep(policy.MaxPathDepth - 1), nil},
		{"path depth max", ok, policy.Deposit, deep(policy.MaxPathDepth), nil},
		{"path depth max+1", ok, policy.Deposit, deep(policy.MaxPathDepth + 1), policy.ErrInvalidResource},
		{"area code max-1", ok, policy.Deposit, []string{strings.Repeat("1", policy.MaxAreaCodeLen-1)}, nil},
		{"area code max", ok, policy.Deposit, []string{strings.Repeat("1", policy.MaxAreaCodeLen)}, nil},
		{"area code max+1", ok, policy.Deposit, []string{strings.Repeat("1", policy.MaxAreaCodeLen+1)}, policy.ErrInvalidResource},
		{"grants max-1", manyGrants(policy.MaxGrants - 1), policy.Deposit, []string{"VN"}, nil},
		{"grants max", manyGrants(policy.MaxGrants), policy.Deposit, []string{"VN"}, nil},
		{"grants max+1", manyGrants(policy.MaxGrants + 1), policy.Deposit, []string{"VN"}, policy.ErrInvalidSubject},
		{"grant project max", []policy.Grant{{Role: policy.Researcher, Area: "VN", Project: strings.Repeat("p", policy.MaxProjectLen)}}, policy.RequestTable, []string{"VN"}, nil},
		{"grant project max+1", []policy.Grant{{Role: policy.Researcher, Area: "VN", Project: strings.Repeat("p", policy.MaxProjectLen+1)}}, policy.RequestTable, []string{"VN"}, policy.ErrInvalidSubject},
		{"grant project max+1 off the path still rejected", []policy.Grant{ok[0], {Role: policy.Researcher, Area: "elsewhere", Project: strings.Repeat("p", policy.MaxProjectLen+1)}}, policy.Deposit, []string{"VN"}, policy.ErrInvalidSubject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := e.Allow(context.Background(), policy.Subject{User: "u", Grants: tt.grants}, tt.action, policy.Resource{Path: tt.path})
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Allow: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if d.Allow {
				t.Error("malformed input allowed")
			}
		})
	}
}

// TestAllowConcurrent runs decisions from several goroutines (meaningful
// under -race) and checks each against the sequential answer.
func TestAllowConcurrent(t *testing.T) {
	e := newDefault(t)
	subjects := []policy.Subject{
		{User: "a", Grants: []policy.Grant{grant(policy.TeamLeader, "18070")}},
		{User: "b", Grants: []policy.Grant{grant(policy.Steering, "VN"), deny(policy.Steering, "436")}},
		{User: "c", Grants: []policy.Grant{grant(policy.Admin, "VN"), grant(policy.Enumerator, "18070-001")}},
	}
	targets := []string{"18070-001", "18073-001", "18100-001", "436"}
	type key struct{ s, a, t int }
	want := map[key]policy.Decision{}
	actions := policy.Actions()
	for si, s := range subjects {
		for ai, a := range actions {
			for ti, tg := range targets {
				d, err := e.Allow(context.Background(), s, a, policy.Resource{Path: pathTo(tg)})
				if err != nil {
					t.Fatal(err)
				}
				want[key{si, ai, ti}] = d
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				k := key{(i + w) % len(subjects), (i * 7) % len(actions), (i / 3) % len(targets)}
				d, err := e.Allow(context.Background(), subjects[k.s], actions[k.a], policy.Resource{Path: pathTo(targets[k.t])})
				w := want[k]
				if err != nil || d.Allow != w.Allow || d.Rule != w.Rule || !slices.Equal(d.Roles, w.Roles) {
					select {
					case errs <- d.Rule + " != " + w.Rule:
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error("concurrent decision differs:", msg)
	}
}

func TestDecisionRolesNotShared(t *testing.T) {
	e := newDefault(t)
	s := policy.Subject{User: "u", Grants: []policy.Grant{grant(policy.Supervisor, "VN")}}
	d1, _ := e.Allow(context.Background(), s, policy.ReadProgress, policy.Resource{Path: []string{"VN"}})
	d1.Roles[0] = "tampered"
	d2, _ := e.Allow(context.Background(), s, policy.ReadProgress, policy.Resource{Path: []string{"VN"}})
	if d2.Roles[0] != "supervisor" {
		t.Fatalf("Roles slice is shared between decisions: %q", d2.Roles)
	}
}

func projectGrant(role policy.Role, area, project string) policy.Grant {
	return policy.Grant{Role: role, Area: area, Project: project}
}
func projectDeny(role policy.Role, area, project string) policy.Grant {
	return policy.Grant{Role: role, Area: area, Project: project, Deny: true}
}

// TestAllowProjects checks project-scoped grants: a grant with a project
// counts only for requests about that project; one without counts for
// every request.
func TestAllowProjects(t *testing.T) {
	e := newDefault(t)
	const req = policy.RequestTable
	tests := []struct {
		name      string
		grants    []policy.Grant
		action    policy.Action
		path      []string
		project   string
		wantAllow bool
		wantRule  string // exact
		wantRoles []string
	}{
		{
			name:   "researcher at the root for p1 requests for p1",
			grants: []policy.Grant{projectGrant(policy.Researcher, "VN", "p1")}, action: req, path: pathTo("18070-001"), project: "p1",
			wantAllow: true, wantRule: "grant researcher@VN project p1; p, researcher, table.request, allow", wantRoles: []string{"researcher"},
		},
		{
			name:   "researcher for p1 may not request for p2",
			grants: []policy.Grant{projectGrant(policy.Researcher, "VN", "p1")}, action: req, path: pathTo("18070-001"), project: "p2",
			wantRule: "no grant covers 18070-001 for table.request",
		},
		{
			name:   "researcher for p1 may not request outside any project",
			grants: []policy.Grant{projectGrant(policy.Researcher, "VN", "p1")}, action: req, path: pathTo("18070-001"), project: "",
			wantRule: "no grant covers 18070-001 for table.request",
		},
		{
			name:   "project names are compared exactly",
			grants: []policy.Grant{projectGrant(policy.Researcher, "VN", "p1")}, action: req, path: pathTo("436"), project: "P1",
			wantRule: "no grant covers 436 for table.request",
		},
		{
			name:   "province grant for p1 covers its subtree",
			grants: []policy.Grant{projectGrant(policy.Researcher, "42", "p1")}, action: req, path: pathTo("18100"), project: "p1",
			wantAllow: true, wantRule: "grant researcher@42 project p1; p, researcher, table.request, allow", wantRoles: []string{"researcher"},
		},
		{
			name:   "province grant for p1 does not cover another province",
			grants: []policy.Grant{projectGrant(policy.Researcher, "42", "p1")}, action: req, path: []string{"VN", "44", "452"}, project: "p1",
			wantRule: "no grant covers 452 for table.request",
		},
		{
			name:   "province grant for p1 does not cover the nation",
			grants: []policy.Grant{projectGrant(policy.Researcher, "42", "p1")}, action: req, path: pathTo("VN"), project: "p1",
			wantRule: "no grant covers VN for table.request",
		},
		{
			name: "deny grant for p1 beats the allow for p1",
			grants: []policy.Grant{
				projectGrant(policy.Researcher, "VN", "p1"), projectGrant(policy.Researcher, "VN", "p2"), projectDeny(policy.Researcher, "436", "p1"),
			},
			action: req, path: pathTo("18070-001"), project: "p1",
			wantRule: "deny-grant researcher@436 project p1 revokes p, researcher, table.request, allow", wantRoles: []string{"researcher"},
		},
		{
			name: "deny grant for p1 leaves p2 allowed",
			grants: []policy.Grant{
				projectGrant(policy.Researcher, "VN", "p1"), projectGrant(policy.Researcher, "VN", "p2"), projectDeny(policy.Researcher, "436", "p1"),
			},
			action: req, path: pathTo("18070-001"), project: "p2",
			wantAllow: true, wantRule: "grant researcher@VN project p2; p, researcher, table.request, allow", wantRoles: []string{"researcher"},
		},
		{
			name:   "deny grant for p1 does not touch a grant without a project in p2",
			grants: []policy.Grant{grant(policy.Researcher, "VN"), projectDeny(policy.Researcher, "436", "p1")}, action: req, path: pathTo("18070-001"), project: "p2",
			wantAllow: true, wantRule: "grant researcher@VN; p, researcher, table.request, allow", wantRoles: []string{"researcher"},
		},
		{
			name:   "deny grant without a project denies in p1",
			grants: []policy.Grant{projectGrant(policy.Researcher, "VN", "p1"), deny(policy.Researcher, "436")}, action: req, path: pathTo("18070-001"), project: "p1",
			wantRule: "deny-grant researcher@436 revokes p, researcher, table.request, allow", wantRoles: []string{"researcher"},
		},
		{
			name:   "deny grant without a project only in its subtree",
			grants: []policy.Grant{projectGrant(policy.Researcher, "VN", "p1"), deny(policy.Researcher, "436")}, action: req, path: pathTo("18100-001"), project: "p1",
			wantAllow: true, wantRule: "grant researcher@VN project p1; p, researcher, table.request, allow", wantRoles: []string{"researcher"},
		},
		{
			name:   "grant without a project holds in a project",
			grants: []policy.Grant{grant(policy.Researcher, "42")}, action: req, path: pathTo("18070"), project: "p1",
			wantAllow: true, wantRule: "grant researcher@42; p, researcher, table.request, allow", wantRoles: []string{"researcher"},
		},
		{
			name:   "admin grant without a project blocks a researcher's project grant",
			grants: []policy.Grant{projectGrant(policy.Researcher, "VN", "p1"), grant(policy.Admin, "436")}, action: req, path: pathTo("18070-001"), project: "p1",
			wantRule: "grant admin@436; p, admin, table.request, deny", wantRoles: []string{"admin", "researcher"},
		},
		{
			name:   "auditor grant without a project blocks a researcher's project grant",
			grants: []policy.Grant{grant(policy.Auditor, "VN"), projectGrant(policy.Researcher, "42", "p1")}, action: req, path: pathTo("18070"), project: "p1",
			wantRule: "grant auditor@VN; p, auditor, table.request, deny", wantRoles: []string{"auditor", "researcher"},
		},
		{
			name:   "admin grant for another project is ignored",
			grants: []policy.Grant{projectGrant(policy.Researcher, "VN", "p1"), projectGrant(policy.Admin, "VN", "p2")}, action: req, path: pathTo("18070"), project: "p1",
			wantAllow: true, wantRule: "grant researcher@VN project p1; p, researcher, table.request, allow", wantRoles: []string{"researcher"},
		},
		{
			name:   "roles leave out grants for other projects",
			grants: []policy.Grant{projectGrant(policy.Researcher, "VN", "p2"), grant(policy.Supervisor, "42")}, action: policy.ReadProgress, path: pathTo("436"), project: "p1",
			wantAllow: true, wantRule: "grant supervisor@42; p, supervisor, progress.read, allow", wantRoles: []string{"supervisor"},
		},
		{
			name:   "roles leave out project grants for a request about no project",
			grants: []policy.Grant{projectGrant(policy.Researcher, "VN", "p1"), grant(policy.Supervisor, "42")}, action: req, path: pathTo("436"),
			wantRule: "role(s) supervisor not permitted table.request", wantRoles: []string{"supervisor"},
		},
		{
			name:   "a project name that is not plain is quoted in the rule",
			grants: []policy.Grant{projectGrant(policy.Researcher, "VN", "di cư; 2019")}, action: req, path: pathTo("42"), project: "di cư; 2019",
			wantAllow: true, wantRule: `grant researcher@VN project "di cư; 2019"; p, researcher, table.request, allow`, wantRoles: []string{"researcher"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := policy.Subject{User: "r1", Grants: tt.grants}
			d, err := e.Allow(context.Background(), s, tt.action, policy.Resource{Path: tt.path, Project: tt.project})
			if err != nil {
				t.Fatalf("Allow: %v", err)
			}
			if d.Allow != tt.wantAllow {
				t.Errorf("Allow = %v, want %v (rule %q)", d.Allow, tt.wantAllow, d.Rule)
			}
			if d.Rule != tt.wantRule {
				t.Errorf("Rule = %q, want %q", d.Rule, tt.wantRule)
			}
			if !slices.Equal(d.Roles, tt.wantRoles) {
				t.Errorf("Roles = %q, want %q", d.Roles, tt.wantRoles)
			}
		})
	}
}

func TestAllowProjectNameBounds(t *testing.T) {
	e := newDefault(t)
	for _, n := range []int{policy.MaxProjectLen - 1, policy.MaxProjectLen, policy.MaxProjectLen + 1} {
		name := strings.Repeat("p", n)
		s := policy.Subject{User: "r", Grants: []policy.Grant{projectGrant(policy.Researcher, "VN", name)}}
		// The same name on both sides: the grant holds when the name is
		// within bounds.
		d, err := e.Allow(context.Background(), s, policy.RequestTable, policy.Resource{Path: []string{"VN"}, Project: name})
		if n <= policy.MaxProjectLen {
			if err != nil || !d.Allow {
				t.Errorf("project of %d bytes: Allow = %v, %v; want allowed", n, d.Allow, err)
			}
			continue
		}
		if !errors.Is(err, policy.ErrInvalidResource) || d.Allow {
			t.Errorf("resource project of %d bytes: Allow = %v, %v; want ErrInvalidResource", n, d.Allow, err)
		}
		if strings.Contains(err.Error(), name) {
			t.Errorf("error quotes the project name: %v", err)
		}
		// A too long grant project is a subject error, whatever the
		// request is about.
		_, err = e.Allow(context.Background(), s, policy.RequestTable, policy.Resource{Path: []string{"VN"}, Project: "p1"})
		if !errors.Is(err, policy.ErrInvalidSubject) {
			t.Errorf("grant project of %d bytes: err = %v, want ErrInvalidSubject", n, err)
		}
	}
}
