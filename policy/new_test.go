package policy_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/policy"
)

func TestRoles(t *testing.T) {
	want := []policy.Role{"enumerator", "team_leader", "supervisor", "steering", "researcher", "processor", "auditor", "admin", "approver"}
	if got := policy.Roles(); !slices.Equal(got, want) {
		t.Fatalf("Roles() = %q, want %q", got, want)
	}
	policy.Roles()[0] = "tampered"
	if policy.Roles()[0] != policy.Enumerator {
		t.Fatal("Roles() returns a shared slice")
	}
	for _, r := range want {
		got, err := policy.ParseRole(string(r))
		if err != nil || got != r {
			t.Errorf("ParseRole(%q) = %q, %v", r, got, err)
		}
	}
	for _, bad := range []string{"", "Admin", "admin ", "mayor", "team-leader"} {
		_, err := policy.ParseRole(bad)
		if !errors.Is(err, policy.ErrUnknownRole) {
			t.Errorf("ParseRole(%q) err = %v, want ErrUnknownRole", bad, err)
			continue
		}
		for _, r := range want {
			if !strings.Contains(err.Error(), string(r)) {
				t.Errorf("ParseRole error %q does not name valid role %q", err, r)
			}
		}
	}
}

func TestActions(t *testing.T) {
	want := []policy.Action{
		"submission.deposit", "submission.supersede_any", "submission.read", "receipt.read",
		"progress.read", "audit.read", "table.request", "admin.manage", "release_point.create",
		"ledger.approve", "submission.list", "submission.read_identifying", "submission.read_analytic",
		"submission.read_operational", "submission.review", "extract.propose", "extract.approve",
		"extract.download", "extract.identifying", "extract.analytic", "extract.operational",
		"grant.confirm", "policy.explain", "form.add", "form.confirm",
	}
	if got := policy.Actions(); !slices.Equal(got, want) {
		t.Fatalf("Actions() = %q, want %q", got, want)
	}
	for _, a := range want {
		if got, err := policy.ParseAction(string(a)); err != nil || got != a {
			t.Errorf("ParseAction(%q) = %q, %v", a, got, err)
		}
	}
	_, err := policy.ParseAction("submission.delete")
	if !errors.Is(err, policy.ErrUnknownAction) || !strings.Contains(err.Error(), "table.request") {
		t.Errorf("ParseAction(unknown) err = %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	const okModel = "[request_definition]\nr = sub, act\n[policy_definition]\np = sub, act, eft\n[role_definition]\ng = _, _\n" +
		"[policy_effect]\ne = some(where (p.eft == allow)) && !some(where (p.eft == deny))\n[matchers]\nm = g(r.sub, p.sub) && r.act == p.act\n"
	withModel := func(old, new string) string {
		if !strings.Contains(okModel, old) {
			panic("test model lacks " + old)
		}
		return strings.Replace(okModel, old, new, 1)
	}
	tests := []struct {
		name    string
		model   string
		policy  string
		wantErr []error
	}{
		{"unknown role in p", "", "p, mayor, progress.read, allow", []error{policy.ErrInvalidPolicy, policy.ErrUnknownRole}},
		{"role with wrong case", "", "p, Admin, admin.manage, allow", []error{policy.ErrInvalidPolicy, policy.ErrUnknownRole}},
		{"unknown action in p", "", "p, admin, users.delete, allow", []error{policy.ErrInvalidPolicy, policy.ErrUnknownAction}},
		{"unknown role in g child", "", "g, mayor, enumerator", []error{policy.ErrInvalidPolicy, policy.ErrUnknownRole}},
		{"unknown role in g parent", "", "g, team_leader, mayor", []error{policy.ErrInvalidPolicy, policy.ErrUnknownRole}},
		{"bad effect", "", "p, admin, admin.manage, permit", []error{policy.ErrInvalidPolicy}},
		{"effect with wrong case", "", "p, admin, admin.manage, Allow", []error{policy.ErrInvalidPolicy}},
		{"p with 3 fields", "", "p, admin, admin.manage", []error{policy.ErrInvalidPolicy}},
		{"p with 5 fields", "", "p, admin, admin.manage, allow, extra", []error{policy.ErrInvalidPolicy}},
		{"g with 2 fields", "", "g, team_leader", []error{policy.ErrInvalidPolicy}},
		{"g with domain", "", "g, team_leader, enumerator, 18070", []error{policy.ErrInvalidPolicy}},
		{"empty field", "", "p, , admin.manage, allow", []error{policy.ErrInvalidPolicy}},
		{"trailing comma", "", "p, admin, admin.manage, allow,", []error{policy.ErrInvalidPolicy}},
		{"unknown rule type", "", "p2, admin, admin.manage, allow", []error{policy.ErrInvalidPolicy}},
		{"not csv", "", "admin may manage", []error{policy.ErrInvalidPolicy}},
		{"bad line after good ones", "", "p, admin, admin.manage, allow\n\n# c\np, admin, admin.manage", []error{policy.ErrInvalidPolicy}},
		{"inheritance cycle", "", "g, team_leader, enumerator\ng, enumerator, team_leader", []error{policy.ErrInvalidPolicy}},
		{"self inheritance", "", "g, admin, admin", []error{policy.ErrInvalidPolicy}},
		{"oversized policy", "", strings.Repeat("p, admin, admin.manage, allow\n", policy.MaxPolicyBytes/29+1), []error{policy.ErrInvalidPolicy}},
		{"model garbage", "not a model", "", []error{policy.ErrInvalidModel}},
		{"model without matchers", strings.Split(okModel, "[matchers]")[0], "", []error{policy.ErrInvalidModel}},
		{"model request with object", withModel("r = sub, act", "r = sub, obj, act"), "", []error{policy.ErrInvalidModel}},
		{"model policy without eft", withModel("p = sub, act, eft", "p = sub, act"), "", []error{policy.ErrInvalidModel}},
		{"model role with domain", withModel("g = _, _", "g = _, _, _"), "", []error{policy.ErrInvalidModel}},
		{"model allow-override effect ignores deny", withModel(" && !some(where (p.eft == deny))", ""), "", []error{policy.ErrInvalidModel}},
		{"model priority effect", withModel("some(where (p.eft == allow)) && !some(where (p.eft == deny))", "priority(p.eft) || deny"), "", []error{policy.ErrInvalidModel}},
		{"model second policy type", withModel("p = sub, act, eft", "p = sub, act, eft\np2 = sub, act, eft"), "", []error{policy.ErrInvalidModel}},
		{"model matcher calls unknown function", withModel("m = g(r.sub, p.sub) && r.act == p.act", "m = nosuch(r.sub, p.sub)"), "", []error{policy.ErrInvalidModel}},
		{"g rules without role definition", withModel("[role_definition]\ng = _, _\n", "") + "", "g, team_leader, enumerator\np, admin, admin.manage, allow", []error{policy.ErrInvalidPolicy}},
		{"oversized model", okModel + "# " + strings.Repeat("x", policy.MaxModelBytes), "", []error{policy.ErrInvalidModel}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := policy.New(policy.Options{Model: tt.model, Policy: tt.policy})
			if err == nil {
				t.Fatalf("New accepted it (hash %s)", e.Hash())
			}
			for _, want := range tt.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("err = %v, want errors.Is %v", err, want)
				}
			}
		})
	}
}

func TestNewAcceptsCustom(t *testing.T) {
	// A model without inheritance and a policy giving supervisors deposit.
	model := "[request_definition]\nr = sub, act\n[policy_definition]\np = sub, act, eft\n" +
		"[policy_effect]\ne = some(where (p.eft == allow)) && !some(where (p.eft == deny))\n[matchers]\nm = r.sub == p.sub && r.act == p.act\n"
	e, err := policy.New(policy.Options{Model: model, Policy: "p, supervisor, submission.deposit, allow\r\np, team_leader, progress.read, allow"})
	if err != nil {
		t.Fatal(err)
	}
	path := policy.Resource{Path: []string{"VN", "436"}}
	d, err := e.Allow(context.Background(), policy.Subject{Grants: []policy.Grant{grant(policy.Supervisor, "VN")}}, policy.Deposit, path)
	if err != nil || !d.Allow {
		t.Fatalf("custom allow: %+v, %v", d, err)
	}
	// Without a g rule, team_leader no longer inherits enumerator.
	d, err = e.Allow(context.Background(), policy.Subject{Grants: []policy.Grant{grant(policy.TeamLeader, "VN")}}, policy.Deposit, path)
	if err != nil || d.Allow {
		t.Fatalf("team_leader allowed deposit without inheritance: %+v, %v", d, err)
	}
}

// TestPolicyDenyOnInheritedRole shows why the default policy avoids deny
// rules on inherited roles: a custom deny on enumerator reaches team_leader.
func TestPolicyDenyOnInheritedRole(t *testing.T) {
	e, err := policy.New(policy.Options{Policy: "g, team_leader, enumerator\np, team_leader, submission.read, allow\np, enumerator, submission.read, deny"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Allow(context.Background(), policy.Subject{Grants: []policy.Grant{grant(policy.TeamLeader, "VN")}}, policy.ReadSubmission, policy.Resource{Path: []string{"VN"}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Allow || d.Rule != "grant team_leader@VN; p, enumerator, submission.read, deny" {
		t.Fatalf("got %+v, want the inherited deny to win", d)
	}
}

func TestHash(t *testing.T) {
	base := newDefault(t)
	if len(base.Hash()) != 64 {
		t.Fatalf("Hash %q is not hex SHA-256", base.Hash())
	}
	sum := sha256.Sum256(base.Canonical())
	if base.Hash() != hex.EncodeToString(sum[:]) {
		t.Fatal("Hash is not SHA-256 of Canonical")
	}
	c := base.Canonical()
	c[0] ^= 0xff
	if sum2 := sha256.Sum256(base.Canonical()); sum2 != sum {
		t.Fatal("Canonical returns the engine's own buffer")
	}

	// Reverse the policy lines, pad them, add comments and duplicates.
	lines := strings.Split(policy.DefaultPolicy(), "\n")
	slices.Reverse(lines)
	var shuffled []string
	for _, l := range lines {
		shuffled = append(shuffled, "  "+strings.ReplaceAll(l, ", ", " ,\t")+"  ")
		if strings.HasPrefix(l, "p,") {
			shuffled = append(shuffled, l+" # again")
		}
	}
	reformattedModel := strings.NewReplacer(" = ", "=", "&&", "  &&\t", "# ", "#  ").Replace(policy.DefaultModel())
	same := []struct {
		name string
		opts policy.Options
	}{
		{"explicit defaults", policy.Options{Model: policy.DefaultModel(), Policy: policy.DefaultPolicy()}},
		{"reordered, padded, commented, duplicated policy", policy.Options{Policy: strings.Join(shuffled, "\r\n")}},
		{"reformatted model", policy.Options{Model: reformattedModel}},
	}
	for _, tt := range same {
		e, err := policy.New(tt.opts)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if e.Hash() != base.Hash() {
			t.Errorf("%s: hash changed:\n%s\nvs\n%s", tt.name, e.Canonical(), base.Canonical())
		}
	}

	different := []struct {
		name string
		opts policy.Options
	}{
		{"one rule removed", policy.Options{Policy: strings.Replace(policy.DefaultPolicy(), "p, steering, progress.read, allow", "", 1)}},
		{"effect flipped", policy.Options{Policy: strings.Replace(policy.DefaultPolicy(), "p, admin, table.request, deny", "p, admin, table.request, allow", 1)}},
		{"rule added", policy.Options{Policy: policy.DefaultPolicy() + "\np, researcher, progress.read, allow"}},
		{"inheritance removed", policy.Options{Policy: strings.Replace(policy.DefaultPolicy(), "g, team_leader, enumerator", "", 1)}},
		{"matcher changed", policy.Options{Model: strings.Replace(policy.DefaultModel(), "g(r.sub, p.sub)", "r.sub == p.sub", 1)}},
	}
	seen := map[string]string{base.Hash(): "default"}
	for _, tt := range different {
		e, err := policy.New(tt.opts)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if prev, dup := seen[e.Hash()]; dup {
			t.Errorf("%s: same hash as %s", tt.name, prev)
		}
		seen[e.Hash()] = tt.name
	}
}

func TestGrantLine(t *testing.T) {
	tests := []struct {
		user string
		g    policy.Grant
		want string
	}{
		{"alice", grant(policy.TeamLeader, "18070"), "grant, alice, team_leader, 18070, allow"},
		{"bob@gso.gov.vn", deny(policy.Enumerator, "18073-001"), "grant, bob@gso.gov.vn, enumerator, 18073-001, deny"},
		{"", grant(policy.Admin, "VN"), `grant, "", admin, VN, allow`},
		{"a, b", grant(policy.Admin, "VN"), `grant, "a, b", admin, VN, allow`},
		{"Nguyễn", grant(policy.Admin, "VN"), `grant, "Nguyễn", admin, VN, allow`},
		{"x\ngrant, y", grant(policy.Admin, "VN"), `grant, "x\ngrant, y", admin, VN, allow`},
		// A project is a sixth field; without one the line is unchanged.
		{"bob", policy.Grant{Role: policy.Researcher, Area: "42", Project: "p-2019-17"}, "grant, bob, researcher, 42, allow, p-2019-17"},
		{"bob", policy.Grant{Role: policy.Researcher, Area: "42", Project: "p1", Deny: true}, "grant, bob, researcher, 42, deny, p1"},
		{"bob", policy.Grant{Role: policy.Researcher, Area: "42", Project: "di cư, 2019"}, `grant, bob, researcher, 42, allow, "di cư, 2019"`},
		{"bob", policy.Grant{Role: policy.Researcher, Area: "42", Project: ""}, "grant, bob, researcher, 42, allow"},
	}
	for _, tt := range tests {
		if got := policy.GrantLine(tt.user, tt.g); got != tt.want {
			t.Errorf("GrantLine(%q, %+v) = %q, want %q", tt.user, tt.g, got, tt.want)
		}
	}
	// Field boundaries cannot be forged by commas in a value.
	a := policy.GrantLine("a, admin", policy.Grant{Role: "VN", Area: "x"})
	b := policy.GrantLine("a", policy.Grant{Role: "admin, VN", Area: "x"})
	if a == b {
		t.Errorf("distinct grants share the line %q", a)
	}
	// Nor by a project that looks like more fields, or an area that
	// looks like an effect and a project.
	distinct := []struct {
		user string
		g    policy.Grant
	}{
		{"a", policy.Grant{Role: policy.Researcher, Area: "42", Project: "p1"}},
		{"a", policy.Grant{Role: policy.Researcher, Area: "42, allow, p1"}},
		{"a", policy.Grant{Role: policy.Researcher, Area: "42", Project: "p1, x"}},
		{"a", policy.Grant{Role: policy.Researcher, Area: "42", Project: `"p1"`}},
		{"a", policy.Grant{Role: policy.Researcher, Area: "42", Project: "allow"}},
		{"a", policy.Grant{Role: policy.Researcher, Area: "42", Project: "allow", Deny: true}},
		{"a", policy.Grant{Role: policy.Researcher, Area: "42", Deny: true}},
		{"a", policy.Grant{Role: policy.Researcher, Area: "42"}},
	}
	lines := map[string]int{}
	for i, d := range distinct {
		l := policy.GrantLine(d.user, d.g)
		if j, dup := lines[l]; dup {
			t.Errorf("grants %d and %d share the line %q", j, i, l)
		}
		lines[l] = i
	}
}

func TestPolicyHash(t *testing.T) {
	// Recompute from the construction documented on PolicyHash, as an
	// offline verifier would.
	doc := func(eh, gd string) string {
		h := sha256.New()
		h.Write([]byte("censusvault/policy-hash/v1\x00"))
		for _, s := range []string{eh, gd} {
			h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(s))))
			h.Write([]byte(s))
		}
		return hex.EncodeToString(h.Sum(nil))
	}
	e := newDefault(t)
	if got, want := policy.PolicyHash(e.Hash(), "abc"), doc(e.Hash(), "abc"); got != want {
		t.Fatalf("PolicyHash = %s, documented construction gives %s", got, want)
	}
	pairs := [][2]string{{"ab", "c"}, {"a", "bc"}, {"", "abc"}, {"abc", ""}, {"", ""}}
	seen := map[string][2]string{}
	for _, p := range pairs {
		h := policy.PolicyHash(p[0], p[1])
		if prev, dup := seen[h]; dup {
			t.Errorf("PolicyHash%q == PolicyHash%q", p, prev)
		}
		seen[h] = p
	}
}
