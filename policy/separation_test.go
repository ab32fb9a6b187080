package policy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/policy"
)

// TestRevealsData: the roles whose grants an approver must confirm are
// the ones the role policy lets see field values or tables — derived
// from the policy, so a role given a reading permission by a loaded
// policy becomes a data role at once.
func TestRevealsData(t *testing.T) {
	e := newDefault(t)
	want := map[policy.Role]bool{policy.TeamLeader: true, policy.Supervisor: true, policy.Researcher: true, policy.Processor: true}
	for _, r := range policy.Roles() {
		if got := e.RevealsData(r); got != want[r] {
			t.Errorf("RevealsData(%s) = %v, want %v", r, got, want[r])
		}
	}
	if e.RevealsData("mayor") {
		t.Error("an unknown role reveals data")
	}
	// The attack: a policy that quietly lets steering read analytic
	// fields makes steering a data role, whose grants need confirming.
	e2, err := policy.New(policy.Options{Policy: policy.DefaultPolicy() + "\np, steering, submission.read_analytic, allow\n"})
	if err != nil {
		t.Fatal(err)
	}
	if !e2.RevealsData(policy.Steering) {
		t.Error("steering with submission.read_analytic does not count as a data role")
	}
	// Enumerators deposit but see nothing back.
	e3, err := policy.New(policy.Options{Policy: "p, enumerator, submission.deposit, allow\n"})
	if err != nil {
		t.Fatal(err)
	}
	if e3.RevealsData(policy.Enumerator) {
		t.Error("a write-only role counts as revealing data")
	}
}

// TestTrustViolations is the attack of an administrator who loads a role
// policy letting trust roles see data: every such permission is named,
// and the default policy has none.
func TestTrustViolations(t *testing.T) {
	if v := newDefault(t).TrustViolations(); len(v) != 0 {
		t.Fatalf("default policy: %q", v)
	}
	base := policy.DefaultPolicy()
	for _, line := range []string{"p, admin, submission.read_identifying, deny", "p, approver, extract.download, deny", "p, auditor, table.request, deny"} {
		if !strings.Contains(base, line) {
			t.Fatalf("default policy lacks %q", line)
		}
	}
	// Dropping the deny lines alone gives nothing (no allow rule); an
	// allow the attacker adds for admin (and one inherited by auditor
	// from team_leader) is caught.
	var kept []string
	for _, l := range strings.Split(base, "\n") {
		if strings.HasPrefix(l, "p, admin,") && strings.HasSuffix(l, "deny") || strings.HasPrefix(l, "p, auditor,") && strings.HasSuffix(l, "deny") {
			continue
		}
		kept = append(kept, l)
	}
	hostile := strings.Join(kept, "\n") + "\np, admin, submission.read_identifying, allow\ng, auditor, team_leader\n"
	e, err := policy.New(policy.Options{Policy: hostile})
	if err != nil {
		t.Fatal(err)
	}
	got := e.TrustViolations()
	for _, want := range []string{"admin submission.read_identifying", "auditor submission.list", "auditor submission.deposit"} {
		if !slices.Contains(got, want) {
			t.Errorf("TrustViolations() = %q, lacks %q", got, want)
		}
	}
	for _, v := range got {
		if strings.HasPrefix(v, "approver ") {
			t.Errorf("approver still denied, yet %q reported", v)
		}
	}
}

// TestAdminNeverSecondEyes is the attack of an administrator who loads a
// role policy letting admins confirm grants (or form versions, approve
// extracts, ledger shares, publication points): confirming what a second administrator
// of their own making proposed would make four eyes two. Each is a
// violation.
func TestAdminNeverSecondEyes(t *testing.T) {
	for _, a := range []policy.Action{policy.ConfirmGrant, policy.ApproveExtract, policy.ApproveShare, policy.CreateReleasePoint, policy.ConfirmForm} {
		e, err := policy.New(policy.Options{Policy: policy.DefaultPolicy() + "\np, admin, " + string(a) + ", allow\n"})
		if err != nil {
			t.Fatal(err)
		}
		if v := e.TrustViolations(); !slices.Contains(v, "admin "+string(a)) {
			t.Errorf("admin allowed %s: violations %q", a, v)
		}
	}
}

// TestIsDataRoleByName: the census's data roles stay data roles under a
// role policy that takes their reading away (else an administrator could
// narrow the policy, grant one unconfirmed, and widen it back).
func TestIsDataRoleByName(t *testing.T) {
	narrow, err := policy.New(policy.Options{Policy: "p, enumerator, submission.deposit, allow\n"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []policy.Role{policy.TeamLeader, policy.Supervisor, policy.Researcher, policy.Processor} {
		if narrow.RevealsData(r) || !narrow.IsDataRole(r) {
			t.Errorf("%s under a policy giving it nothing: reveals %v, data role %v; want false, true", r, narrow.RevealsData(r), narrow.IsDataRole(r))
		}
	}
	if narrow.IsDataRole(policy.Steering) || !newDefault(t).IsDataRole(policy.TeamLeader) {
		t.Error("steering a data role under a policy giving it nothing, or team_leader not one by default")
	}
	for _, r := range []policy.Role{policy.Admin, policy.Auditor, policy.Approver} {
		if !policy.IsTrustRole(r) {
			t.Errorf("%s is not a trust role", r)
		}
	}
	if policy.IsTrustRole(policy.TeamLeader) {
		t.Error("team_leader is a trust role")
	}
}
