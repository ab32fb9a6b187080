package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/httpapi"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
)

// Policy administration and explain over HTTP (issue 13 parts 5 and 6),
// attacked: who may administer, what leaves the vault of a new token
// (only its age encryption, to the field office's recipient that the
// host operator registered, or the user's own — never to one only the
// request names), that a bad request changes nothing and is recorded,
// that every answer is no-store, and what a caller who may not explain
// learns of the audit log (nothing).

// adminReq sends one request as user and checks what every answer of
// the admin routes holds: Cache-Control no-store, and nothing of any
// token the test knows — neither a token nor its stored digest — in the
// body or a header (an age ciphertext holds none in the clear).
func (v *vault) adminReq(user, method, path, body string) *response {
	v.t.Helper()
	var rd io.Reader
	hdr := map[string]string{}
	if body != "" {
		rd = strings.NewReader(body)
		hdr["Content-Type"] = "application/json"
		if !strings.HasPrefix(body, "{") {
			hdr["Content-Type"] = "text/csv"
		}
	}
	auth := ""
	if user != "" {
		auth = "Bearer " + v.Tokens[user]
	}
	r := v.do(method, path, auth, rd, hdr)
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		v.t.Errorf("%s %s as %s: Cache-Control %q, want no-store", method, path, user, cc)
	}
	v.noTokenIn(r, method+" "+path)
	return r
}

// noTokenIn fails if r shows a token the test knows, or its digest.
func (v *vault) noTokenIn(r *response, what string) {
	v.t.Helper()
	var hdrs []byte
	for k, vals := range r.Header {
		hdrs = append(hdrs, k+": "+strings.Join(vals, ",")+"\n"...)
	}
	for name, tok := range v.Tokens {
		d, err := crypto.ParseTokenDigest(tok)
		if err != nil {
			v.t.Fatalf("token of %s: %v", name, err)
		}
		for _, s := range []string{tok, d.Hex()} {
			if bytes.Contains(r.Body, []byte(s)) || bytes.Contains(hdrs, []byte(s)) {
				v.t.Errorf("%s shows %s's token (or its digest)", what, name)
			}
		}
	}
}

// office is the field office's age identity: the tokens of the users an
// administrator makes are encrypted to it.
func newOffice(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// registerOffice registers id's recipient as the field office's, as the
// host operator does (`censusvault user token-recipient`) before any
// token is made over the API.
func (v *vault) registerOffice(id *age.X25519Identity) {
	v.t.Helper()
	if err := v.B.SetTokenRecipient(context.Background(), broker.HostOperator("cli:test"), id.Recipient().String()); err != nil {
		v.t.Fatal(err)
	}
}

// mustRecipient fails unless r says its tokens are encrypted to id.
func mustRecipient(t testing.TB, what string, r *response, id *age.X25519Identity) {
	t.Helper()
	if got, want := r.Header.Get(wire.HeaderRecipient), id.Recipient().String()[:wire.RecipientPrefixLen]; got != want {
		t.Errorf("%s: %s %q, want %q", what, wire.HeaderRecipient, got, want)
	}
}

// openSealed decrypts an answer of new tokens with id, checks its
// header line, notes each token in v.Tokens and returns the rows.
func (v *vault) openSealed(r *response, id age.Identity) [][]string {
	v.t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/octet-stream" {
		v.t.Fatalf("new tokens answered as %q", ct)
	}
	pr, err := age.Decrypt(bytes.NewReader(r.Body), id)
	if err != nil {
		v.t.Fatalf("the recipient's identity cannot decrypt the tokens: %v", err)
	}
	plain, err := io.ReadAll(pr)
	if err != nil {
		v.t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(plain)).ReadAll()
	if err != nil || len(recs) < 2 || strings.Join(recs[0], ",") != "user,token,role,area,expires" {
		v.t.Fatalf("decrypted tokens: %q (%v)", plain, err)
	}
	for _, rec := range recs[1:] {
		v.Tokens[rec[0]] = rec[1]
	}
	return recs[1:]
}

// mustStatus fails unless r has status st (and, for an error, code).
func mustStatus(t testing.TB, what string, r *response, st int, code string) {
	t.Helper()
	if r.Status != st {
		t.Fatalf("%s: %d %s, want %d %s", what, r.Status, r.Body, st, code)
	}
	if code != "" {
		if got := r.Code(t); got != code {
			t.Fatalf("%s: code %q, want %q: %s", what, got, code, r.Body)
		}
		r.ErrorBody(t)
	}
}

// userCount is how many users the store holds.
func (v *vault) userCount() int {
	v.t.Helper()
	var n int
	if err := v.rawDB().QueryRow(`SELECT count(*) FROM users`).Scan(&n); err != nil {
		v.t.Fatal(err)
	}
	return n
}

// TestAdminUsers: an administrator makes users over HTTP; their tokens
// come back only encrypted to the recipient named, and work; a data role
// holds only once an approver confirms; the list shows no token; reissue
// ends the old token; the last admin cannot be revoked.
func TestAdminUsers(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	office := newOffice(t)
	rcpt := office.Recipient().String()
	v.registerOffice(office)
	addBody := func(name, role, area, extra string) string {
		return fmt.Sprintf(`{"name": %q, "role": %q, "area": %q, "recipient": %q%s}`, name, role, area, rcpt, extra)
	}

	// An enumerator holds at once; the token works.
	var r *response
	ev := v.oneEvent(func() {
		r = v.adminReq("admin", "POST", "/v1/admin/users", addBody("enum-new", "enumerator", eaA1, ""))
	})
	mustStatus(t, "add an enumerator", r, http.StatusCreated, "")
	if r.Header.Get(wire.HeaderUsers) != "1" || r.Header.Get(wire.HeaderActive) != "1" || r.Header.Get(wire.HeaderPending) != "" {
		t.Errorf("add an enumerator: headers %v", r.Header)
	}
	mustRecipient(t, "add an enumerator", r, office)
	if ev.Action != "user.add" || ev.Decision != "allow" || ev.Actor != "user:admin" || strings.Join(ev.Resources, " ") != "user:enum-new grant:enumerator@"+eaA1 {
		t.Errorf("add an enumerator: event %+v", ev)
	}
	rows := v.openSealed(r, office)
	if len(rows) != 1 || rows[0][0] != "enum-new" || rows[0][2] != "enumerator" || rows[0][4] != start.Add(60*24*time.Hour).Format(time.RFC3339) {
		t.Errorf("the sealed token: %v, want enum-new expiring after the enumerators' 60 days", rows)
	}
	if r := v.get("enum-new", "/v1/progress?area="+eaA1); r.Status != http.StatusOK {
		t.Errorf("the new enumerator's token: %d %s", r.Status, r.Body)
	}
	// The token is not in the clear anywhere the request left a trace.
	for _, e := range v.auditRecords(0) {
		if bytes.Contains(e.Event, []byte(v.Tokens["enum-new"])) {
			t.Fatalf("audit event %d holds the new token", e.Index)
		}
	}

	// A team leader is a data role: the user exists but can do nothing
	// until an approver — not the admin — confirms.
	// Naming no recipient: the field office's.
	r = v.adminReq("admin", "POST", "/v1/admin/users", fmt.Sprintf(`{"name": "tl-new", "role": "team_leader", "area": %q, "expires": "10d"}`, communeA))
	mustStatus(t, "add a team leader", r, http.StatusCreated, "")
	mustRecipient(t, "add a team leader naming no recipient", r, office)
	seq := r.Header.Get(wire.HeaderPending)
	if r.Header.Get(wire.HeaderActive) != "0" || seq == "" {
		t.Fatalf("add a team leader: active %q, pending %q", r.Header.Get(wire.HeaderActive), seq)
	}
	if rows := v.openSealed(r, office); rows[0][4] != start.Add(10*24*time.Hour).Format(time.RFC3339) {
		t.Errorf("expires 10d counted from the vault's clock: %v", rows[0])
	}
	if r, _ := v.list("tl-new", "area="+communeA); r.Status != http.StatusForbidden {
		t.Fatalf("an unconfirmed team leader lists submissions: %d", r.Status)
	}
	r = v.adminReq("admin", "GET", "/v1/admin/users/tl-new", "")
	var u wire.User
	r.JSON(t, &u)
	if len(u.Grants) != 0 || len(u.Pending) != 1 || u.Pending[0] != (wire.Grant{Role: "team_leader", Area: communeA}) {
		t.Errorf("GET the unconfirmed team leader: %s", r.Body)
	}
	for _, who := range []string{"admin", "tl-new", "auditor"} {
		ev := v.oneEvent(func() { r = v.adminReq(who, "POST", "/v1/admin/proposals/"+seq+"/confirm", "") })
		mustStatus(t, who+" confirms", r, http.StatusForbidden, "permission_denied")
		if ev.Action != "grant.confirm" || ev.Outcome != "denied" {
			t.Errorf("%s confirms: event %s/%s", who, ev.Action, ev.Outcome)
		}
	}
	r = v.adminReq("approver", "POST", "/v1/admin/proposals/"+seq+"/confirm", "")
	mustStatus(t, "the approver confirms", r, http.StatusOK, "")
	var p wire.Proposal
	r.JSON(t, &p)
	if p.Status != wire.ProposalConfirmed || p.ConfirmedBy != "user:approver" || p.ProposedBy != "user:admin" || p.User != "tl-new" {
		t.Errorf("confirmed proposal: %s", r.Body)
	}
	if r, _ := v.list("tl-new", "area="+communeA); r.Status != http.StatusOK {
		t.Errorf("a confirmed team leader lists: %d %s", r.Status, r.Body)
	}
	mustStatus(t, "confirm twice", v.adminReq("approver", "POST", "/v1/admin/proposals/"+seq+"/confirm", ""), http.StatusConflict, "proposal_confirmed")
	mustStatus(t, "confirm an unknown proposal", v.adminReq("approver", "POST", "/v1/admin/proposals/999/confirm", ""), http.StatusNotFound, "no_such_proposal")
	mustStatus(t, "confirm with a body", v.adminReq("approver", "POST", "/v1/admin/proposals/"+seq+"/confirm", `{"yes": true}`), http.StatusBadRequest, "invalid")
	mustStatus(t, "confirm seq 01", v.adminReq("approver", "POST", "/v1/admin/proposals/01/confirm", ""), http.StatusBadRequest, "invalid")

	// An import: all users in one answer, the supervisor pending; no
	// recipient named, the field office's.
	file := "user,role,area,expires\nimp-1,enumerator," + eaA1 + ",\nimp-2,enumerator," + eaA2 + ",10d\nimp-sup,supervisor," + district + ",\n"
	r = v.adminReq("admin", "POST", "/v1/admin/users/import", file)
	mustStatus(t, "import", r, http.StatusCreated, "")
	mustRecipient(t, "import", r, office)
	if r.Header.Get(wire.HeaderUsers) != "3" || r.Header.Get(wire.HeaderActive) != "2" || strings.Count(r.Header.Get(wire.HeaderPending), ",") != 0 || r.Header.Get(wire.HeaderPending) == "" {
		t.Errorf("import headers: %v", r.Header)
	}
	if rows := v.openSealed(r, office); len(rows) != 3 || rows[1][0] != "imp-2" || rows[1][4] != start.Add(10*24*time.Hour).Format(time.RFC3339) {
		t.Errorf("imported tokens: %v", rows)
	}
	for _, name := range []string{"imp-1", "imp-2"} {
		if r := v.get(name, "/v1/progress?area="+communeA); r.Status != http.StatusOK && r.Status != http.StatusForbidden {
			t.Errorf("%s's token does not authenticate: %d", name, r.Status)
		}
	}

	// The list, page by page: every user, never a token or digest.
	names := map[string]bool{}
	after := ""
	for page := 0; ; page++ {
		q := "?limit=7"
		if after != "" {
			q += "&after=" + after
		}
		var l wire.UserList
		ev := v.oneEvent(func() { r = v.adminReq("admin", "GET", "/v1/admin/users"+q, "") })
		mustStatus(t, "list users", r, http.StatusOK, "")
		if ev.Action != "user.list" || ev.Decision != "allow" {
			t.Errorf("list users: event %s/%s", ev.Action, ev.Decision)
		}
		r.JSON(t, &l)
		for _, u := range l.Users {
			names[u.Name] = true
		}
		if l.Next == nil {
			break
		}
		if after = *l.Next; page > 10 || len(l.Users) != 7 {
			t.Fatalf("page %d: %d users, next %q", page, len(l.Users), after)
		}
	}
	if n := v.userCount(); len(names) != n || !names["imp-sup"] || !names["admin"] {
		t.Errorf("the list holds %d users, the store %d", len(names), n)
	}

	// Reissue: the old token ends, the new one works.
	old := v.Tokens["imp-1"]
	r = v.adminReq("admin", "POST", "/v1/admin/users/imp-1/reissue", `{"recipient": "`+rcpt+`"}`)
	mustStatus(t, "reissue", r, http.StatusOK, "")
	mustRecipient(t, "reissue", r, office)
	v.openSealed(r, office)
	// With no body: the field office's recipient.
	old = v.Tokens["imp-1"]
	r = v.adminReq("admin", "POST", "/v1/admin/users/imp-1/reissue", "")
	mustStatus(t, "reissue with no body", r, http.StatusOK, "")
	mustRecipient(t, "reissue with no body", r, office)
	v.openSealed(r, office)
	if r := v.do("GET", "/v1/progress?area="+eaA1, "Bearer "+old, nil, nil); r.Status != http.StatusUnauthorized {
		t.Errorf("the old token after a reissue: %d", r.Status)
	}
	if r := v.get("imp-1", "/v1/progress?area="+eaA1); r.Status != http.StatusOK {
		t.Errorf("the reissued token: %d %s", r.Status, r.Body)
	}

	// Revoke: the token ends now; the last admin stays.
	ev = v.oneEvent(func() { r = v.adminReq("admin", "DELETE", "/v1/admin/users/imp-2", "") })
	mustStatus(t, "revoke", r, http.StatusNoContent, "")
	if ev.Action != "user.revoke" || strings.Join(ev.Resources, "") != "user:imp-2" {
		t.Errorf("revoke: event %+v", ev)
	}
	if r := v.get("imp-2", "/v1/progress?area="+eaA2); r.Status != http.StatusUnauthorized {
		t.Errorf("a revoked token: %d", r.Status)
	}
	ev = v.oneEvent(func() { r = v.adminReq("admin", "DELETE", "/v1/admin/users/admin", "") })
	mustStatus(t, "revoke the last admin", r, http.StatusConflict, "last_admin")
	if ev.Action != "user.revoke" || ev.Outcome != "refused" || ev.Decision != "allow" {
		t.Errorf("revoking the last admin: event %s/%s/%s", ev.Action, ev.Decision, ev.Outcome)
	}
	mustStatus(t, "revoke an unknown user", v.adminReq("admin", "DELETE", "/v1/admin/users/nobody", ""), http.StatusNotFound, "not_found")

	// A user named like a route: "import" is a user like any other.
	r = v.adminReq("admin", "POST", "/v1/admin/users", addBody("import", "steering", communeA, ""))
	mustStatus(t, "add user import", r, http.StatusCreated, "")
	v.openSealed(r, office)
	r = v.adminReq("admin", "POST", "/v1/admin/users/import/reissue", `{}`)
	mustStatus(t, "reissue user import", r, http.StatusOK, "")
	if rows := v.openSealed(r, office); rows[0][0] != "import" {
		t.Errorf("reissue of user import: %v", rows)
	}
	mustStatus(t, "revoke user import", v.adminReq("admin", "DELETE", "/v1/admin/users/import", ""), http.StatusNoContent, "")
}

// TestAdminUsersRefused: whoever may not administer is refused, before
// any body is read; bad requests change nothing, say what is wrong
// without echoing a secret, and are each one audit event.
func TestAdminUsersRefused(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	office := newOffice(t)
	rcpt := office.Recipient().String()
	v.registerOffice(office)
	users := v.userCount()
	good := fmt.Sprintf(`{"name": "x-1", "role": "enumerator", "area": %q, "recipient": %q}`, eaA1, rcpt)
	file := "user,role,area\nx-2,enumerator," + eaA1 + "\n"

	// Every role but admin, and no token at all.
	for _, who := range []string{"enum-a1", "tl-a", "supervisor", "steering-vn", "researcher", "auditor", "approver"} {
		for _, rq := range []struct{ method, path, body string }{
			{"GET", "/v1/admin/users", ""},
			{"GET", "/v1/admin/users/enum-a1", ""},
			{"POST", "/v1/admin/users", good},
			{"POST", "/v1/admin/users/import?recipient=" + url.QueryEscape(rcpt), file},
			{"POST", "/v1/admin/users/enum-a1/reissue", `{"recipient": "` + rcpt + `"}`},
			{"DELETE", "/v1/admin/users/enum-a1", ""},
			// A refused caller is refused before its input is looked
			// at: a malformed body or name answers the same 403.
			{"POST", "/v1/admin/users", `{"name": `},
			{"DELETE", "/v1/admin/users/Not%20A%20Name", ""},
		} {
			var r *response
			ev := v.oneEvent(func() { r = v.adminReq(who, rq.method, rq.path, rq.body) })
			mustStatus(t, who+" "+rq.method+" "+rq.path, r, http.StatusForbidden, "permission_denied")
			if ev.Decision != "deny" || ev.Outcome != "denied" || ev.Actor != "user:"+who {
				t.Errorf("%s %s %s: event %+v", who, rq.method, rq.path, ev)
			}
		}
	}
	r := v.adminReq("", "POST", "/v1/admin/users", good)
	mustStatus(t, "no token", r, http.StatusUnauthorized, "unauthenticated")

	// A declared body of 12.8 MB is answered without a byte of it read
	// (net/http itself waits for the rest of a body under 256 KiB):
	// refused (403) to whoever may not administer, whatever its size, and
	// too large (413) for more than an import may hold.
	for _, tc := range []struct {
		who  string
		size int64
		st   int
	}{{"enum-a1", httpapi.MaxImportBody, http.StatusForbidden}, {"auditor", httpapi.MaxImportBody + 1, http.StatusForbidden}, {"admin", httpapi.MaxImportBody + 1, http.StatusRequestEntityTooLarge}} {
		if st := v.declareBody(tc.who, "/v1/admin/users/import?recipient="+url.QueryEscape(rcpt), tc.size); st != tc.st {
			t.Errorf("%s declares a body of %d bytes: %d, want %d before it is sent", tc.who, tc.size, st, tc.st)
		}
	}

	secret := "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
	for _, tc := range []struct {
		what, method, path, body, says string
	}{
		{"a duplicate key", "POST", "/v1/admin/users", `{"name": "x-1", "name": "x-9", "role": "enumerator", "area": "` + eaA1 + `", "recipient": "` + rcpt + `"}`, "name"},
		{"a key in another case", "POST", "/v1/admin/users", `{"Name": "x-1", "role": "enumerator", "area": "` + eaA1 + `", "recipient": "` + rcpt + `"}`, "Name"},
		{"an unknown key", "POST", "/v1/admin/users", `{"name": "x-1", "token": "t", "role": "enumerator", "area": "` + eaA1 + `", "recipient": "` + rcpt + `"}`, "token"},
		{"a number for a name", "POST", "/v1/admin/users", `{"name": 5, "role": "enumerator", "area": "` + eaA1 + `", "recipient": "` + rcpt + `"}`, "wrong type"},
		{"a bad name", "POST", "/v1/admin/users", `{"name": "Lan Anh", "role": "enumerator", "area": "` + eaA1 + `", "recipient": "` + rcpt + `"}`, "user names are"},
		{"a bad role", "POST", "/v1/admin/users", `{"name": "x-1", "role": "mayor", "area": "` + eaA1 + `", "recipient": "` + rcpt + `"}`, "team_leader"},
		{"an unknown area", "POST", "/v1/admin/users", `{"name": "x-1", "role": "enumerator", "area": "99999", "recipient": "` + rcpt + `"}`, "99999"},
		{"a bad expiry", "POST", "/v1/admin/users", `{"name": "x-1", "role": "enumerator", "area": "` + eaA1 + `", "expires": "soon", "recipient": "` + rcpt + `"}`, "soon"},
		{"a past expiry", "POST", "/v1/admin/users", `{"name": "x-1", "role": "enumerator", "area": "` + eaA1 + `", "expires": "2001-01-01T00:00:00Z", "recipient": "` + rcpt + `"}`, "past"},
		{"a secret key for a recipient", "POST", "/v1/admin/users", `{"name": "x-1", "role": "enumerator", "area": "` + eaA1 + `", "recipient": "` + secret + `"}`, "secret key"},
		{"a researcher without a project", "POST", "/v1/admin/users", `{"name": "x-1", "role": "researcher", "area": "` + district + `", "recipient": "` + rcpt + `"}`, "project"},
		{"an existing user", "POST", "/v1/admin/users", `{"name": "enum-a1", "role": "enumerator", "area": "` + eaA1 + `", "recipient": "` + rcpt + `"}`, "already exists"},
		{"a query string", "POST", "/v1/admin/users?dry=1", good, "dry"},
		{"an import naming the recipient twice", "POST", "/v1/admin/users/import?recipient=" + url.QueryEscape(rcpt) + "&recipient=" + url.QueryEscape(rcpt), file, "once"},
		{"an import with another parameter", "POST", "/v1/admin/users/import?recipient=" + url.QueryEscape(rcpt) + "&x=1", file, "x"},
		{"an import with a bad third row", "POST", "/v1/admin/users/import?recipient=" + url.QueryEscape(rcpt), "user,role,area\nx-3,enumerator," + eaA1 + "\nx-4,enumerator," + eaA1 + "\nx-5,enumerator,99999\n", "user 3"},
		{"an import without header", "POST", "/v1/admin/users/import?recipient=" + url.QueryEscape(rcpt), "x-3,enumerator," + eaA1 + "\n", "column"},
		{"an import of an existing user", "POST", "/v1/admin/users/import?recipient=" + url.QueryEscape(rcpt), "user,role,area\nx-3,enumerator," + eaA1 + "\nenum-a1,enumerator," + eaA1 + "\n", "exists"},
		{"an empty import", "POST", "/v1/admin/users/import?recipient=" + url.QueryEscape(rcpt), "user,role,area\n", "no users"},
		{"an import to a secret key", "POST", "/v1/admin/users/import?recipient=" + secret, file, "secret key"},
		{"a reissue with a malformed body", "POST", "/v1/admin/users/enum-a1/reissue", `{"recipient": `, "recipient"},
		{"a reissue of nobody", "POST", "/v1/admin/users/nobody/reissue", `{"recipient": "` + rcpt + `"}`, "nobody"},
		{"a revoke with a body", "DELETE", "/v1/admin/users/enum-a1", `{"why": "x"}`, "no body"},
		{"a bad user name", "DELETE", "/v1/admin/users/Enum%1b", "", "user names are"},
		{"a body over the limit", "POST", "/v1/admin/users", `{"name": "` + strings.Repeat("a", 7000) + `"}`, "over"},
		{"50,001 users", "POST", "/v1/admin/users/import?recipient=" + url.QueryEscape(rcpt), bigImport(broker.MaxImportUsers + 1), "more than 50000"},
		{"a limit of 0", "GET", "/v1/admin/users?limit=0", "", "limit"},
		{"a limit of 1001", "GET", "/v1/admin/users?limit=1001", "", "limit"},
	} {
		before, hash := v.auditHead(), v.policyHash()
		old := v.Tokens["enum-a1"]
		r := v.adminReq("admin", tc.method, tc.path, tc.body)
		if r.Status/100 != 4 {
			t.Errorf("%s: %d %s, want a 4xx", tc.what, r.Status, r.Body)
			continue
		}
		if tc.says == "over" || strings.HasPrefix(tc.says, "more than") {
			mustStatus(t, tc.what, r, http.StatusRequestEntityTooLarge, "too_large")
		}
		msg, _ := r.ErrorBody(t)
		if !strings.Contains(msg, tc.says) {
			t.Errorf("%s: %q does not say %q", tc.what, msg, tc.says)
		}
		evs := v.eventsSince(before)
		if len(evs) != 1 || evs[0].Decision == "deny" || evs[0].Outcome == "ok" {
			t.Errorf("%s: %d events, want one refusal: %+v", tc.what, len(evs), evs)
		}
		if bytes.Contains(r.Body, []byte("QQQQQQQQ")) || (len(evs) > 0 && strings.Contains(evs[0].Reason, "QQQQQQQQ")) {
			t.Errorf("%s: the secret key is echoed", tc.what)
		}
		if n := v.userCount(); n != users || v.policyHash() != hash {
			t.Errorf("%s: the store holds %d users (was %d), policy hash changed %v", tc.what, n, users, v.policyHash() != hash)
		}
		if r := v.do("GET", "/v1/progress?area="+eaA1, "Bearer "+old, nil, nil); r.Status != http.StatusOK {
			t.Errorf("%s: enum-a1's token no longer works", tc.what)
		}
	}
}

// declareBody sends the headers of a POST as user declaring a body of
// size bytes, sends none of it, and returns the status answered.
func (v *vault) declareBody(user, path string, size int64) int {
	v.t.Helper()
	conn, err := net.Dial("tcp", v.Server.Listener.Addr().String())
	if err != nil {
		v.t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: vault\r\nAuthorization: Bearer %s\r\nContent-Type: text/csv\r\nContent-Length: %d\r\n\r\n", path, v.Tokens[user], size)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		v.t.Fatalf("no answer before the body: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// bigImport is a user file of n enumerators.
func bigImport(n int) string {
	var b strings.Builder
	b.WriteString("user,role,area\n")
	for i := range n {
		fmt.Fprintf(&b, "u%06d,enumerator,%s\n", i, eaA1)
	}
	return b.String()
}

// grantBody is a POST/DELETE /v1/admin/grants body.
func grantBody(user, role, area string, deny bool) string {
	return fmt.Sprintf(`{"user": %q, "role": %q, "area": %q, "deny": %v}`, user, role, area, deny)
}

// TestAdminGrants: grants that reveal nothing hold at once, grants of
// data roles and removed denies wait for an approver, denies hold at
// once, the last admin stays, and bad bodies change nothing.
func TestAdminGrants(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	hash := v.policyHash()
	var r *response
	ev := v.oneEvent(func() {
		r = v.adminReq("admin", "POST", "/v1/admin/grants", grantBody("enum-a1", "steering", communeA, false))
	})
	mustStatus(t, "grant steering", r, http.StatusCreated, "")
	if string(bytes.TrimSpace(r.Body)) != `{"active":true}` || ev.Action != "user.grant" || v.policyHash() == hash || ev.PolicyHash != v.policyHash() {
		t.Errorf("grant steering: %s, event %s, policy hash changed %v", r.Body, ev.Action, v.policyHash() != hash)
	}
	mustStatus(t, "grant it again", v.adminReq("admin", "POST", "/v1/admin/grants", grantBody("enum-a1", "steering", communeA, false)), http.StatusConflict, "conflict")

	// A supervisor grant waits.
	r = v.adminReq("admin", "POST", "/v1/admin/grants", grantBody("steering-a", "supervisor", communeA, false))
	mustStatus(t, "grant supervisor", r, http.StatusAccepted, "")
	var ch wire.GrantChange
	r.JSON(t, &ch)
	if ch.Active || ch.Proposal < 1 {
		t.Fatalf("grant supervisor: %s", r.Body)
	}
	if r, _ := v.list("steering-a", "area="+communeA); r.Status != http.StatusForbidden {
		t.Errorf("an unconfirmed supervisor grant lets steering-a list: %d", r.Status)
	}
	// The auditor reads the grants and what waits; the approver the
	// proposals.
	r = v.adminReq("auditor", "GET", "/v1/admin/grants", "")
	mustStatus(t, "the auditor reads the grants", r, http.StatusOK, "")
	var gs wire.Grants
	r.JSON(t, &gs)
	if gs.PolicyHash != v.policyHash() || len(gs.Pending) != 1 || gs.Pending[0].Seq != ch.Proposal || gs.Pending[0].Grant == nil || gs.Pending[0].Grant.Role != "supervisor" {
		t.Errorf("grants: %s", r.Body)
	}
	found := false
	for _, g := range gs.Grants {
		found = found || g == (wire.UserGrant{User: "enum-a1", Role: "steering", Area: communeA})
	}
	if !found {
		t.Errorf("the grants do not list enum-a1's steering grant: %s", r.Body)
	}
	r = v.adminReq("approver", "GET", "/v1/admin/proposals", "")
	mustStatus(t, "the approver lists proposals", r, http.StatusOK, "")
	var ps wire.Proposals
	r.JSON(t, &ps)
	if len(ps.Proposals) != 1 || ps.Proposals[0].Status != wire.ProposalPending || ps.Proposals[0].User != "steering-a" {
		t.Errorf("proposals: %s", r.Body)
	}

	// A deny holds at once; removing it waits for an approver.
	v.depositAs("enum-a1", household(eaA1, 1))
	r = v.adminReq("admin", "POST", "/v1/admin/grants", grantBody("enum-a1", "enumerator", eaA1, true))
	mustStatus(t, "deny", r, http.StatusCreated, "")
	if r := v.deposit("enum-a1", v.seal(encode(t, household(eaA1, 2)))); r.Status != http.StatusForbidden {
		t.Errorf("a denied enumerator deposits: %d", r.Status)
	}
	r = v.adminReq("admin", "DELETE", "/v1/admin/grants", grantBody("enum-a1", "enumerator", eaA1, true))
	mustStatus(t, "remove the deny", r, http.StatusAccepted, "")
	if r := v.deposit("enum-a1", v.seal(encode(t, household(eaA1, 3)))); r.Status != http.StatusForbidden {
		t.Errorf("the deny's removal held before its confirmation: %d", r.Status)
	}
	r.JSON(t, &ch)
	mustStatus(t, "confirm the removal", v.adminReq("approver", "POST", fmt.Sprintf("/v1/admin/proposals/%d/confirm", ch.Proposal), ""), http.StatusOK, "")
	if r := v.deposit("enum-a1", v.seal(encode(t, household(eaA1, 4)))); r.Status != http.StatusCreated {
		t.Errorf("after the removal was confirmed: %d %s", r.Status, r.Body)
	}

	r = v.adminReq("admin", "DELETE", "/v1/admin/grants", grantBody("enum-a1", "steering", communeA, false))
	mustStatus(t, "ungrant steering", r, http.StatusOK, "")
	mustStatus(t, "ungrant it again", v.adminReq("admin", "DELETE", "/v1/admin/grants", grantBody("enum-a1", "steering", communeA, false)), http.StatusNotFound, "not_found")
	mustStatus(t, "ungrant the last admin", v.adminReq("admin", "DELETE", "/v1/admin/grants", grantBody("admin", "admin", nation, false)), http.StatusConflict, "last_admin")
	mustStatus(t, "deny the last admin", v.adminReq("admin", "POST", "/v1/admin/grants", grantBody("admin", "admin", nation, true)), http.StatusConflict, "last_admin")

	for _, tc := range []struct{ what, method, body string }{
		{"an unknown user", "POST", grantBody("nobody", "steering", communeA, false)},
		{"an unknown role", "POST", grantBody("enum-a1", "mayor", communeA, false)},
		{"an unknown area", "POST", grantBody("enum-a1", "steering", "99999", false)},
		{"admin below the root", "POST", grantBody("enum-a1", "admin", communeA, false)},
		{"deny as a string", "POST", `{"user": "enum-a1", "role": "steering", "area": "18070", "deny": "true"}`},
		{"no area", "DELETE", `{"user": "enum-a1", "role": "steering"}`},
		{"an extra key", "POST", `{"user": "enum-a1", "role": "steering", "area": "18070", "confirmed": true}`},
		{"a project on a field role", "POST", `{"user": "enum-a1", "role": "steering", "area": "18070", "project": "hl-2019"}`},
	} {
		before, hash := v.auditHead(), v.policyHash()
		r := v.adminReq("admin", tc.method, "/v1/admin/grants", tc.body)
		if r.Status != http.StatusBadRequest && r.Status != http.StatusNotFound {
			t.Errorf("%s: %d %s", tc.what, r.Status, r.Body)
		}
		r.ErrorBody(t)
		if evs := v.eventsSince(before); len(evs) != 1 || evs[0].Outcome == "ok" || v.policyHash() != hash {
			t.Errorf("%s: %d events, policy hash changed %v", tc.what, len(evs), v.policyHash() != hash)
		}
	}
}

// TestAdminPolicy: the role policy read by an auditor, replaced only
// when an approver confirms; one letting a trust role see data is
// refused outright.
func TestAdminPolicy(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	var r *response
	ev := v.oneEvent(func() { r = v.adminReq("auditor", "GET", "/v1/admin/policy", "") })
	mustStatus(t, "the auditor reads the policy", r, http.StatusOK, "")
	var pol wire.Policy
	r.JSON(t, &pol)
	if pol.Rules != policy.DefaultPolicy() || pol.PolicyHash != v.policyHash() || len(pol.EngineHash) != 64 || pol.Model == "" || pol.Grants < len(testUsers) {
		t.Errorf("the policy: hash %s (stored %s), %d grants", pol.PolicyHash, v.policyHash(), pol.Grants)
	}
	if ev.Action != "policy.read" || ev.Decision != "allow" {
		t.Errorf("policy read: event %s/%s", ev.Action, ev.Decision)
	}
	for _, who := range []string{"approver", "enum-a1", "researcher"} {
		mustStatus(t, who+" reads the policy", v.adminReq(who, "GET", "/v1/admin/policy", ""), http.StatusForbidden, "permission_denied")
	}

	hostile := strings.Replace(policy.DefaultPolicy(), "p, admin, submission.read_identifying, deny\n", "p, admin, submission.read_identifying, allow\n", 1)
	before := v.auditHead()
	mustStatus(t, "a hostile policy", v.adminReq("admin", "POST", "/v1/admin/policy", hostile), http.StatusBadRequest, "trust_role_data")
	mustStatus(t, "the same policy", v.adminReq("admin", "POST", "/v1/admin/policy", policy.DefaultPolicy()), http.StatusConflict, "no_change")
	mustStatus(t, "an auditor proposes", v.adminReq("auditor", "POST", "/v1/admin/policy", hostile), http.StatusForbidden, "permission_denied")
	mustStatus(t, "rules that do not load", v.adminReq("admin", "POST", "/v1/admin/policy", "p, admin\n"), http.StatusBadRequest, "invalid")
	mustStatus(t, "no rules", v.adminReq("admin", "POST", "/v1/admin/policy", ""), http.StatusBadRequest, "invalid")
	if n := len(v.eventsSince(before)); n != 5 {
		t.Errorf("five refused proposals: %d events", n)
	}

	wider := policy.DefaultPolicy() + "\np, steering, submission.list, allow\n"
	r = v.adminReq("admin", "POST", "/v1/admin/policy", wider)
	mustStatus(t, "propose", r, http.StatusAccepted, "")
	var ch wire.GrantChange
	r.JSON(t, &ch)
	if r, _ := v.list("steering-a", "area="+communeA); r.Status != http.StatusForbidden {
		t.Errorf("a proposed policy held before its confirmation: %d", r.Status)
	}
	r = v.adminReq("admin", "GET", "/v1/admin/proposals", "")
	var ps wire.Proposals
	r.JSON(t, &ps)
	if len(ps.Proposals) != 1 || ps.Proposals[0].Kind != "policy" || ps.Proposals[0].Grant != nil || len(ps.Proposals[0].PolicyHash) != 64 {
		t.Errorf("the policy proposal: %s", r.Body)
	}
	mustStatus(t, "confirm", v.adminReq("approver", "POST", fmt.Sprintf("/v1/admin/proposals/%d/confirm", ch.Proposal), ""), http.StatusOK, "")
	if r, _ := v.list("steering-a", "area="+communeA); r.Status != http.StatusOK {
		t.Errorf("the confirmed policy does not hold: %d %s", r.Status, r.Body)
	}
	r = v.adminReq("admin", "GET", "/v1/admin/policy", "")
	r.JSON(t, &pol)
	if pol.Rules != wider || pol.EngineHash != ps.Proposals[0].PolicyHash {
		t.Errorf("the policy in force after the confirmation: engine %s, proposed %s", pol.EngineHash, ps.Proposals[0].PolicyHash)
	}
}

// TestAdminLifetimes: new tokens' lifetimes per role, read and changed
// by an admin; a new user's token expires by the changed lifetime.
func TestAdminLifetimes(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	r := v.adminReq("admin", "GET", "/v1/admin/lifetimes", "")
	mustStatus(t, "read the lifetimes", r, http.StatusOK, "")
	var l wire.TokenLifetimes
	r.JSON(t, &l)
	if l.Lifetimes["enumerator"] != "60d" || l.Lifetimes["admin"] != "90d" || len(l.Lifetimes) != len(policy.Roles()) {
		t.Errorf("lifetimes: %s", r.Body)
	}
	mustStatus(t, "the auditor reads the lifetimes", v.adminReq("auditor", "GET", "/v1/admin/lifetimes", ""), http.StatusForbidden, "permission_denied")
	r = v.adminReq("admin", "POST", "/v1/admin/lifetimes", `{"lifetimes": {"enumerator": "40d", "steering": "36h"}}`)
	mustStatus(t, "change the lifetimes", r, http.StatusOK, "")
	r.JSON(t, &l)
	if l.Lifetimes["enumerator"] != "40d" || l.Lifetimes["steering"] != "36h" || l.Lifetimes["admin"] != "90d" {
		t.Errorf("lifetimes after the change: %s", r.Body)
	}
	office := newOffice(t)
	v.registerOffice(office)
	r = v.adminReq("admin", "POST", "/v1/admin/users", fmt.Sprintf(`{"name": "e-40", "role": "enumerator", "area": %q}`, eaA1))
	mustStatus(t, "add", r, http.StatusCreated, "")
	if rows := v.openSealed(r, office); rows[0][4] != start.Add(40*24*time.Hour).Format(time.RFC3339) {
		t.Errorf("a new enumerator's token expires %s, want 40 days on", rows[0][4])
	}
	for _, body := range []string{`{"lifetimes": {"enumerator": "30m"}}`, `{"lifetimes": {"mayor": "1d"}}`, `{"lifetimes": {}}`, `{"lifetimes": {"enumerator": 40}}`} {
		before := v.auditHead()
		mustStatus(t, body, v.adminReq("admin", "POST", "/v1/admin/lifetimes", body), http.StatusBadRequest, "invalid")
		if evs := v.eventsSince(before); len(evs) != 1 || evs[0].Outcome != "invalid" {
			t.Errorf("%s: events %+v", body, evs)
		}
	}
}

// TestExplainHTTP: why a deposit was allowed yesterday and is refused
// today; and what a caller who may not explain learns of the audit log:
// nothing — the same answer for an event that exists, one outside its
// scope and one that does not.
func TestExplainHTTP(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	v.depositAs("enum-a1", household(eaA1, 1))
	dep := int64(-1)
	for _, e := range v.eventsSince(0) {
		if e.Action == string(policy.Deposit) && e.Decision == "allow" {
			dep = e.Index
		}
	}
	mustStatus(t, "deny", v.adminReq("admin", "POST", "/v1/admin/grants", grantBody("enum-a1", "enumerator", eaA1, true)), http.StatusCreated, "")

	var r *response
	ev := v.oneEvent(func() {
		r = v.adminReq("auditor", "GET", "/v1/policy/explain?user=enum-a1&action=submission.deposit&area="+eaA1, "")
	})
	mustStatus(t, "explain now", r, http.StatusOK, "")
	var now wire.Explanation
	r.JSON(t, &now)
	if now.Allow || !strings.Contains(now.Rule, "deny") || now.Event != nil || now.PolicyHash != v.policyHash() || len(now.Grants) != 2 {
		t.Errorf("explain now: %s", r.Body)
	}
	if ev.Action != "policy.explain" || ev.Area != eaA1 || strings.Join(ev.Resources, "") != "user:enum-a1" {
		t.Errorf("explain now: event %+v", ev)
	}
	r = v.adminReq("admin", "GET", fmt.Sprintf("/v1/policy/explain?event=%d", dep), "")
	mustStatus(t, "explain the deposit", r, http.StatusOK, "")
	var past wire.Explanation
	r.JSON(t, &past)
	if !past.Allow || past.Event == nil || !past.Event.HashMatches || !past.Event.Agrees || past.Event.Recorded != "allow" ||
		!strings.Contains(past.Rule, "grant enumerator@"+eaA1) || past.PolicyHash == now.PolicyHash {
		t.Errorf("explain the deposit: %s", r.Body)
	}

	// An enumerator (and a team leader of the other ward) may not ask:
	// an event that exists, and one that does not, answer alike.
	head := v.auditHead()
	for _, who := range []string{"enum-a1", "tl-b"} {
		var bodies []string
		for _, idx := range []int64{dep, head + 1000} {
			var r *response
			ev := v.oneEvent(func() { r = v.adminReq(who, "GET", fmt.Sprintf("/v1/policy/explain?event=%d", idx), "") })
			mustStatus(t, fmt.Sprintf("%s explains event %d", who, idx), r, http.StatusForbidden, "permission_denied")
			if ev.Decision != "deny" {
				t.Errorf("%s explains event %d: event %s/%s", who, idx, ev.Action, ev.Decision)
			}
			bodies = append(bodies, strings.ReplaceAll(string(r.Body), strconv.FormatInt(idx, 10), "N"))
		}
		if bodies[0] != bodies[1] {
			t.Errorf("%s: an existing event and one past the log's end answer differently:\n%s\n%s", who, bodies[0], bodies[1])
		}
	}
	mustStatus(t, "the auditor explains an event past the end", v.adminReq("auditor", "GET", fmt.Sprintf("/v1/policy/explain?event=%d", head+1000), ""), http.StatusNotFound, "not_found")

	for _, q := range []string{
		"event=1&user=enum-a1", "user=enum-a1&action=submission.deposit", "user=enum-a1&action=nope&area=" + eaA1,
		"user=enum-a1&action=submission.deposit&area=99999", "user=Enum&action=submission.deposit&area=" + eaA1, "event=-1", "event=01", "colour=red",
	} {
		before := v.auditHead()
		mustStatus(t, "explain?"+q, v.adminReq("auditor", "GET", "/v1/policy/explain?"+q, ""), http.StatusBadRequest, "invalid")
		if evs := v.eventsSince(before); len(evs) != 1 || evs[0].Outcome != "invalid" {
			t.Errorf("explain?%s: events %+v", q, evs)
		}
	}
	mustStatus(t, "explain an unknown user", v.adminReq("auditor", "GET", "/v1/policy/explain?user=nobody&action=submission.deposit&area="+eaA1, ""), http.StatusNotFound, "not_found")
}
