package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
)

// The authorization matrix of the routes of policy administration and
// explain (issue 13 parts 5 and 6): every role of the policy
// (newMatrixVault's subjects: each granted at the commune and at the
// root, with and without a deny below) on every route, and on the routes
// decided at an area, every target of matrixTargets. Each answer and
// each request's own audit event is compared with an oracle written from
// DESIGN.md's table of roles — the admin administers "users, roles,
// areas, keys, policy", the approver confirms what others propose, the
// auditor reads and explains the policy; everyone else is refused; where
// tokens go (the field office's recipient) is the host operator's alone,
// refused to every role — and the oracle itself is checked against the
// default role policy, so that a policy giving another role one of these
// actions fails here first.

// adminOracle is who may use each group of routes.
var adminOracle = map[string][]policy.Role{
	"administer": {policy.Admin},
	"proposals":  {policy.Admin, policy.Approver},
	"confirm":    {policy.Approver},
	"policy":     {policy.Admin, policy.Auditor},
	"explain":    {policy.Admin, policy.Auditor},
	// host: registering the field office's token recipient. No role,
	// whatever the policy: an admin is answered host_only.
	"host": {},
}

// adminOracleActions are the policy actions that decide each group: a
// role is in the group's oracle exactly when the default policy allows
// it one of them at the root.
var adminOracleActions = map[string][]policy.Action{
	"administer": {policy.Administer},
	"proposals":  {policy.Administer, policy.ConfirmGrant},
	"confirm":    {policy.ConfirmGrant},
	"policy":     {policy.ExplainPolicy},
	"explain":    {policy.ExplainPolicy},
	"host":       nil,
}

func TestAdminOracleIsThePolicy(t *testing.T) {
	t.Parallel()
	eng, err := policy.New(policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for group, actions := range adminOracleActions {
		for _, r := range policy.Roles() {
			allowed := false
			for _, a := range actions {
				d, err := eng.Allow(context.Background(), policy.Subject{User: "u", Grants: []policy.Grant{{Role: r, Area: "VN"}}}, a, policy.Resource{Path: []string{"VN"}})
				if err != nil {
					t.Fatal(err)
				}
				allowed = allowed || d.Allow
			}
			if want := slices.Contains(adminOracle[group], r); allowed != want {
				t.Errorf("%s: the default policy allows %s %v, the oracle says %v", group, r, allowed, want)
			}
		}
	}
}

func TestAdminAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	v, subjects := newMatrixVault(t)
	ctx := t.Context()
	office := newOffice(t)
	rcpt := office.Recipient().String()
	v.registerOffice(office)
	may := func(s matrixSubject, group string) bool { return slices.Contains(adminOracle[group], s.role) }
	// Over the whole tree: the routes of administration and of the
	// policy are decided at the root, and a deny anywhere below takes
	// part of it away.
	whole := func(s matrixSubject) bool { return s.inScope("VN") && !s.coversDenied("VN") }

	// The target of administration, and one user created at each target
	// area whose creation event is the past decision explained there.
	if _, err := v.B.AddUser(ctx, "cli:test", broker.NewUser{Name: "m-target", Role: policy.Enumerator, Area: "18070-01"}); err != nil {
		t.Fatal(err)
	}
	eventAt := map[string]int64{}
	for i, tg := range matrixTargets {
		head := v.auditHead()
		if _, err := v.B.AddUser(ctx, "cli:test", broker.NewUser{Name: broker.UserID(fmt.Sprintf("ev-%d", i)), Role: policy.Steering, Area: broker.AreaCode(tg.area)}); err != nil {
			t.Fatal(err)
		}
		eventAt[tg.area] = head
	}
	adminCaller, err := v.B.Authenticate(ctx, "Bearer "+v.Tokens["m-admin-vn"], "test")
	if err != nil {
		t.Fatal(err)
	}

	check := func(t *testing.T, s matrixSubject, what string, r *response, ev *audit.Event, allowed bool, okStatus int, action, allowedAction string) {
		t.Helper()
		want := map[bool]int{true: okStatus, false: http.StatusForbidden}[allowed]
		if r.Status != want {
			t.Errorf("%s %s: %d, want %d: %s", s.name, what, r.Status, want, r.Body)
			return
		}
		if !allowed {
			if r.Code(t) != "permission_denied" {
				t.Errorf("%s %s: code %s", s.name, what, r.Body)
			}
			if ev.Action != action || ev.Decision != "deny" || ev.Outcome != "denied" || ev.Actor != "user:"+s.name {
				t.Errorf("%s %s: audit event %s/%s/%s by %s, want %s/deny/denied", s.name, what, ev.Action, ev.Decision, ev.Outcome, ev.Actor, action)
			}
			return
		}
		if ev.Action != allowedAction || ev.Decision != "allow" || ev.Outcome != "ok" || ev.Actor != "user:"+s.name {
			t.Errorf("%s %s: audit event %s/%s/%s by %s, want %s/allow/ok", s.name, what, ev.Action, ev.Decision, ev.Outcome, ev.Actor, allowedAction)
		}
	}
	// req sends one request and returns its answer and its one event.
	req := func(v *vault, s matrixSubject, method, path, body string) (*response, *audit.Event) {
		var r *response
		ev := v.oneEvent(func() { r = v.adminReq(s.name, method, path, body) })
		return r, ev
	}

	t.Run("administration", func(t *testing.T) {
		wider := policy.DefaultPolicy() + "\np, steering, submission.list, allow\n"
		for _, s := range subjects {
			v := v.in(t)
			allowed := may(s, "administer") && whole(s)
			newUser := "n-" + s.name
			for _, rq := range []struct {
				method, path, body string
				ok                 int
				action, okAction   string
			}{
				{"GET", "/v1/admin/users?limit=5", "", 200, "user.list", "user.list"},
				{"GET", "/v1/admin/users/m-target", "", 200, "user.show", "user.show"},
				{"POST", "/v1/admin/users", fmt.Sprintf(`{"name": %q, "role": "enumerator", "area": "18070-01", "recipient": %q}`, newUser, rcpt), 201, "user.add", "user.add"},
				{"POST", "/v1/admin/users/import?recipient=" + url.QueryEscape(rcpt), "user,role,area\ni-" + s.name + ",steering,18070\n", 201, "user.add", "user.add"},
				{"POST", "/v1/admin/users/m-target/reissue", `{"recipient": "` + rcpt + `"}`, 200, "user.reissue", "user.reissue"},
				{"DELETE", "/v1/admin/users/" + newUser, "", 204, "user.revoke", "user.revoke"},
				{"POST", "/v1/admin/grants", grantBody("m-target", "steering", "18070", false), 201, "user.grant", "user.grant"},
				{"DELETE", "/v1/admin/grants", grantBody("m-target", "steering", "18070", false), 200, "user.ungrant", "user.ungrant"},
				{"POST", "/v1/admin/grants", grantBody("m-target", "supervisor", "18070", false), 202, "user.grant", "grant.propose"},
				{"POST", "/v1/admin/policy", wider, 202, "policy.load", "policy.propose"},
				{"GET", "/v1/admin/lifetimes", "", 200, "user.lifetimes_read", "user.lifetimes_read"},
				{"POST", "/v1/admin/lifetimes", `{"lifetimes": {"steering": "365d"}}`, 200, "user.lifetimes", "user.lifetimes"},
				{"GET", "/v1/admin/token-recipient", "", 200, "user.token_recipient_read", "user.token_recipient_read"},
				{"POST", "/v1/admin/areas/revisions", `{"note": "m", "changes": [{"op": "plan", "code": "18070-02", "planned": 9}]}`, 201, "areas.revise", "areas.revise"},
			} {
				r, ev := req(v, s, rq.method, rq.path, rq.body)
				check(t, s, rq.method+" "+rq.path, r, ev, allowed, rq.ok, rq.action, rq.okAction)
				if allowed && r.Status/100 == 2 && r.Header.Get("Content-Type") == "application/octet-stream" {
					v.openSealed(r, office)
				}
			}
		}
	})

	t.Run("token recipient", func(t *testing.T) {
		// Registering it is refused to everyone over the API: whoever
		// may administer is told host_only (allowed, then refused),
		// the others permission_denied; the field office's stays.
		rogue := newOffice(t).Recipient().String()
		for _, s := range subjects {
			v := v.in(t)
			admin := may(s, "administer") && whole(s)
			if may(s, "host") {
				t.Fatalf("the oracle lets %s register the token recipient", s.name)
			}
			r, ev := req(v, s, "POST", "/v1/admin/token-recipient", `{"recipient": "`+rogue+`"}`)
			code, decision, outcome := "permission_denied", "deny", "denied"
			if admin {
				code, decision, outcome = "host_only", "allow", "refused"
			}
			if r.Status != http.StatusForbidden || r.Code(t) != code {
				t.Errorf("%s registers a token recipient: %d %s, want 403 %s", s.name, r.Status, r.Body, code)
			}
			if ev.Action != "user.token_recipient" || ev.Decision != decision || ev.Outcome != outcome || ev.Actor != "user:"+s.name {
				t.Errorf("%s registers a token recipient: event %s/%s/%s, want user.token_recipient/%s/%s", s.name, ev.Action, ev.Decision, ev.Outcome, decision, outcome)
			}
			if got, err := v.B.TokenRecipient(ctx); err != nil || got != rcpt {
				t.Fatalf("after %s's attempt the token recipient is %q (%v)", s.name, got, err)
			}
		}
	})

	t.Run("policy and grants", func(t *testing.T) {
		for _, s := range subjects {
			v := v.in(t)
			allowed := may(s, "policy") && whole(s)
			for _, path := range []string{"/v1/admin/policy", "/v1/admin/grants"} {
				r, ev := req(v, s, "GET", path, "")
				check(t, s, "GET "+path, r, ev, allowed, 200, "policy.read", "policy.read")
			}
		}
	})

	t.Run("proposals", func(t *testing.T) {
		// An approver lists the proposals wherever it may confirm one:
		// every approver subject may somewhere.
		for _, s := range subjects {
			v := v.in(t)
			allowed := may(s, "proposals") && (s.role != policy.Admin || whole(s))
			r, ev := req(v, s, "GET", "/v1/admin/proposals", "")
			check(t, s, "GET /v1/admin/proposals", r, ev, allowed, 200, "grant.proposals", "grant.proposals")
		}
	})

	t.Run("confirm", func(t *testing.T) {
		// A proposal of a supervisor grant at each target, made by the
		// admin for a user of its own: an approver confirms it where the
		// whole area is in its scope.
		for _, s := range subjects {
			grantee := broker.UserID("g-" + s.name)
			if _, err := v.B.AddUser(ctx, "cli:test", broker.NewUser{Name: grantee, Role: policy.Steering, Area: "VN"}); err != nil {
				t.Fatal(err)
			}
			for _, tg := range matrixTargets {
				v := v.in(t)
				ch, err := v.B.ChangeGrant(ctx, broker.APIOperator(adminCaller), grantee, policy.Grant{Role: policy.Supervisor, Area: tg.area}, false)
				if err != nil || ch.Active {
					t.Fatalf("proposal of supervisor at %s: %+v, %v", tg.area, ch, err)
				}
				allowed := may(s, "confirm") && s.inScope(tg.area) && !s.coversDenied(tg.area)
				r, ev := req(v, s, "POST", fmt.Sprintf("/v1/admin/proposals/%d/confirm", ch.Proposal), "")
				check(t, s, fmt.Sprintf("confirms a grant at %s (%s)", tg.area, tg.rel), r, ev, allowed, 200, "grant.confirm", "grant.confirm")
			}
		}
	})

	t.Run("explain", func(t *testing.T) {
		// Explain is decided at the area asked about, now or that of the
		// past event: the area itself in scope.
		for _, s := range subjects {
			for _, tg := range matrixTargets {
				v := v.in(t)
				allowed := may(s, "explain") && s.inScope(tg.area)
				r, ev := req(v, s, "GET", "/v1/policy/explain?user=m-target&action=progress.read&area="+tg.area, "")
				check(t, s, "explains at "+tg.area+" ("+tg.rel+")", r, ev, allowed, 200, "policy.explain", "policy.explain")
				if ev.Area != tg.area {
					t.Errorf("%s explains at %s: event at %s", s.name, tg.area, ev.Area)
				}
				r, ev = req(v, s, "GET", fmt.Sprintf("/v1/policy/explain?event=%d", eventAt[tg.area]), "")
				check(t, s, "explains the event at "+tg.area+" ("+tg.rel+")", r, ev, allowed, 200, "policy.explain", "policy.explain")
				if allowed && !strings.Contains(string(r.Body), `"hash_matches":true`) {
					t.Errorf("%s explains the event at %s: %s", s.name, tg.area, r.Body)
				}
			}
		}
	})
}
