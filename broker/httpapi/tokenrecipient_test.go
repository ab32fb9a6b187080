package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/censusvault/censusvault/broker/wire"
)

// Where the tokens an administrator makes over HTTP go (issue 13, red
// team): only to the field office's recipient, which the host operator
// registers, or for a reissue to the user's own registered recipient. An
// administrator who could name its own key would hold the token of every
// team leader, processor or approver it creates or reissues, and act as
// them. Each attack below is one audited refusal that changes nothing.

// recipientState is what the attacks below must leave as it was: the
// users, the policy, the registered recipient and the tokens of tl-a and
// the approver.
type recipientState struct {
	users         int
	policyHash    string
	office        string
	tlA, approver string
}

func (v *vault) recipientState() recipientState {
	v.t.Helper()
	office, err := v.B.TokenRecipient(context.Background())
	if err != nil {
		v.t.Fatal(err)
	}
	return recipientState{users: v.userCount(), policyHash: v.policyHash(), office: office, tlA: v.Tokens["tl-a"], approver: v.Tokens["approver"]}
}

// mustBeUnchanged fails unless the state is before's and the tokens of
// tl-a and the approver still work.
func (v *vault) mustBeUnchanged(what string, before recipientState) {
	v.t.Helper()
	if now := v.recipientState(); now != before {
		v.t.Errorf("%s changed the vault: %+v, was %+v", what, now, before)
	}
	for _, u := range []string{"tl-a", "approver"} {
		if r := v.get(u, "/v1/progress?area="+communeA); r.Status == http.StatusUnauthorized {
			v.t.Errorf("%s: %s's token no longer works", what, u)
		}
	}
}

// refusedOnce fails unless fn made exactly one audit event, of action,
// and it records a refusal: authorized then refused (or invalid), or
// denied to a caller who may not administer.
func (v *vault) refusedOnce(what, action string, fn func()) {
	v.t.Helper()
	ev := v.oneEvent(fn)
	ok := map[string]string{"refused": "allow", "invalid": "", "denied": "deny"}
	if want, found := ok[ev.Outcome]; ev.Action != action || !found || ev.Decision != want {
		v.t.Errorf("%s: event %s/%s/%s, want one refusal of %s", what, ev.Action, ev.Decision, ev.Outcome, action)
	}
}

// TestAdminTokenRecipient: the procedure — nothing is made over the API
// before the host operator registers the field office's recipient; then
// a request names none and the field office's identity opens the
// tokens — and the attacks of an administrator on it.
func TestAdminTokenRecipient(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	ctx := t.Context()
	office, rogue, own := newOffice(t), newOffice(t), newOffice(t)
	officeR, rogueR := office.Recipient().String(), rogue.Recipient().String()
	admin := v.Client("admin")

	// Before the host operator registers it: no token can be made over
	// the API, and the refusal says who does what next.
	if r, err := admin.TokenRecipient(ctx); err != nil || r != "" {
		t.Fatalf("the token recipient before any is registered: %q, %v", r, err)
	}
	before := v.recipientState()
	for _, rq := range []struct{ what, method, path, body, action string }{
		{"add a user", "POST", "/v1/admin/users", `{"name": "n-1", "role": "enumerator", "area": "` + eaA1 + `"}`, "user.add"},
		{"import", "POST", "/v1/admin/users/import", "user,role,area\nn-2,enumerator," + eaA1 + "\n", "user.add"},
		{"reissue", "POST", "/v1/admin/users/tl-a/reissue", "", "user.reissue"},
	} {
		var r *response
		v.refusedOnce(rq.what+" with none registered", rq.action, func() { r = v.adminReq("admin", rq.method, rq.path, rq.body) })
		mustStatus(t, rq.what+" with none registered", r, http.StatusConflict, "no_token_recipient")
		if msg, _ := r.ErrorBody(t); !strings.Contains(msg, "censusvault user token-recipient") {
			t.Errorf("%s with none registered: %q does not say how the host operator registers it", rq.what, msg)
		}
		v.mustBeUnchanged(rq.what+" with none registered", before)
	}

	// The admin registers its own key as the field office's: refused,
	// host only, audited; nothing registered. Whoever may not
	// administer is refused before that.
	for _, who := range []string{"admin", "auditor", "approver"} {
		var r *response
		v.refusedOnce(who+" sets the token recipient", "user.token_recipient", func() {
			r = v.adminReq(who, "POST", "/v1/admin/token-recipient", `{"recipient": "`+rogueR+`"}`)
		})
		code := map[bool]string{true: "host_only", false: "permission_denied"}[who == "admin"]
		mustStatus(t, who+" sets the token recipient", r, http.StatusForbidden, code)
		v.mustBeUnchanged(who+" sets the token recipient", before)
	}
	var r *response
	v.refusedOnce("admin clears the token recipient", "user.token_recipient", func() {
		r = v.adminReq("admin", "POST", "/v1/admin/token-recipient", `{"recipient": ""}`)
	})
	mustStatus(t, "admin clears the token recipient", r, http.StatusForbidden, "host_only")

	// The user's own registered recipient, with no field office's: a
	// reissue goes to it, and the user's identity alone opens it.
	if err := v.B.SetRecipient(ctx, "cli:test", "tl-b", own.Recipient().String()); err != nil {
		t.Fatal(err)
	}
	r = v.adminReq("admin", "POST", "/v1/admin/users/tl-b/reissue", "")
	mustStatus(t, "reissue to the user's own recipient", r, http.StatusOK, "")
	mustRecipient(t, "reissue to the user's own recipient", r, own)
	if _, err := age.Decrypt(bytes.NewReader(r.Body), rogue); err == nil {
		t.Error("another identity opens a reissue to the user's own recipient")
	}
	v.openSealed(r, own)

	// The host operator registers the field office's recipient.
	v.registerOffice(office)
	ev := v.oneEvent(func() { r = v.adminReq("admin", "GET", "/v1/admin/token-recipient", "") })
	mustStatus(t, "read the token recipient", r, http.StatusOK, "")
	var tr wire.TokenRecipient
	r.JSON(t, &tr)
	if tr.Recipient != officeR || ev.Action != "user.token_recipient_read" || ev.Decision != "allow" || ev.Actor != "user:admin" {
		t.Errorf("read the token recipient: %s, event %s/%s by %s", r.Body, ev.Action, ev.Decision, ev.Actor)
	}
	for _, who := range []string{"auditor", "approver", "tl-a"} {
		ev := v.oneEvent(func() { r = v.adminReq(who, "GET", "/v1/admin/token-recipient", "") })
		mustStatus(t, who+" reads the token recipient", r, http.StatusForbidden, "permission_denied")
		if ev.Action != "user.token_recipient_read" || ev.Decision != "deny" {
			t.Errorf("%s reads the token recipient: event %s/%s", who, ev.Action, ev.Decision)
		}
	}

	// The attacks: the admin names its own key for a new team leader (in
	// one user, and in an import), for the reissue of a team leader and
	// of the approver, and for a user whose own recipient is registered;
	// and replaces the field office's.
	before = v.recipientState()
	for _, rq := range []struct{ what, method, path, body, action string }{
		{"a new team leader to the admin's key", "POST", "/v1/admin/users",
			fmt.Sprintf(`{"name": "tl-sock", "role": "team_leader", "area": %q, "recipient": %q}`, communeA, rogueR), "user.add"},
		{"an import to the admin's key", "POST", "/v1/admin/users/import?recipient=" + url.QueryEscape(rogueR),
			"user,role,area\nproc-sock,processor," + district + "\n", "user.add"},
		{"tl-a's reissue to the admin's key", "POST", "/v1/admin/users/tl-a/reissue", `{"recipient": "` + rogueR + `"}`, "user.reissue"},
		{"the approver's reissue to the admin's key", "POST", "/v1/admin/users/approver/reissue", `{"recipient": "` + rogueR + `"}`, "user.reissue"},
		{"tl-a's reissue to tl-b's own key", "POST", "/v1/admin/users/tl-a/reissue", `{"recipient": "` + own.Recipient().String() + `"}`, "user.reissue"},
	} {
		var r *response
		v.refusedOnce(rq.what, rq.action, func() { r = v.adminReq("admin", rq.method, rq.path, rq.body) })
		if r.Status != http.StatusForbidden || r.Code(t) != "recipient_not_registered" {
			t.Errorf("%s: %d %.80s, want 403 recipient_not_registered", rq.what, r.Status, r.Body)
		}
		v.mustBeUnchanged(rq.what, before)
	}
	// Not a recipient at all (its key in capitals, a secret key): a
	// bad request, said as such.
	for _, bad := range []string{strings.ToUpper(rogueR), rogue.String()} {
		v.refusedOnce("a reissue to a bad recipient", "user.reissue", func() {
			r = v.adminReq("admin", "POST", "/v1/admin/users/tl-a/reissue", `{"recipient": "`+bad+`"}`)
		})
		mustStatus(t, "a reissue to a bad recipient", r, http.StatusBadRequest, "invalid")
		if bytes.Contains(r.Body, []byte(bad)) {
			t.Errorf("a reissue to a bad recipient echoes it: %s", r.Body)
		}
		v.mustBeUnchanged("a reissue to a bad recipient", before)
	}
	r = v.adminReq("admin", "POST", "/v1/admin/token-recipient", `{"recipient": "`+rogueR+`"}`)
	mustStatus(t, "the admin replaces the field office's recipient", r, http.StatusForbidden, "host_only")
	v.mustBeUnchanged("the admin replaces the field office's recipient", before)

	// Naming none: the field office's; its identity opens the tokens,
	// the admin's does not. Naming the field office's, or for a reissue
	// the user's own, is allowed.
	r = v.adminReq("admin", "POST", "/v1/admin/users", fmt.Sprintf(`{"name": "tl-new", "role": "team_leader", "area": %q}`, communeA))
	mustStatus(t, "a new team leader, naming no recipient", r, http.StatusCreated, "")
	mustRecipient(t, "a new team leader, naming no recipient", r, office)
	if _, err := age.Decrypt(bytes.NewReader(r.Body), rogue); err == nil {
		t.Error("the admin's identity opens the new team leader's token")
	}
	if rows := v.openSealed(r, office); len(rows) != 1 || rows[0][0] != "tl-new" {
		t.Errorf("the new team leader's token: %v", rows)
	}
	file := "user,role,area\nimp-1,enumerator," + eaA1 + "\n"
	nt, err := admin.ImportUsers(ctx, strings.NewReader(file), int64(len(file)), "")
	if err != nil || nt.Recipient != officeR[:wire.RecipientPrefixLen] {
		t.Fatalf("the client imports naming no recipient: %+v, %v", nt, err)
	}
	if _, err := age.Decrypt(bytes.NewReader(nt.Sealed), office); err != nil {
		t.Errorf("the field office cannot open the client's import: %v", err)
	}
	nt, err = admin.AddUser(ctx, wire.NewUser{Name: "enum-new", Role: "enumerator", Area: eaA1, Recipient: officeR})
	if err != nil || nt.Recipient != officeR[:wire.RecipientPrefixLen] {
		t.Fatalf("the client adds a user naming the field office's recipient: %+v, %v", nt, err)
	}
	if _, err := admin.AddUser(ctx, wire.NewUser{Name: "tl-sock", Role: "team_leader", Area: communeA, Recipient: rogueR}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("the client adds a user to the admin's key: %v", err)
	}
	nt, err = admin.ReissueToken(ctx, "tl-b", own.Recipient().String())
	if err != nil || nt.Recipient != own.Recipient().String()[:wire.RecipientPrefixLen] {
		t.Fatalf("the client reissues to the user's own recipient: %+v, %v", nt, err)
	}
	nt, err = admin.ReissueToken(ctx, "tl-b", "")
	if err != nil || nt.Recipient != officeR[:wire.RecipientPrefixLen] {
		t.Fatalf("the client reissues naming no recipient: %+v, %v", nt, err)
	}
	if _, err := age.Decrypt(bytes.NewReader(nt.Sealed), office); err != nil {
		t.Errorf("the field office cannot open a reissue naming no recipient: %v", err)
	}
	if r, err := v.B.TokenRecipient(ctx); err != nil || r != officeR {
		t.Errorf("the field office's recipient at the end: %q, %v", r, err)
	}
}
