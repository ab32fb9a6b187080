package httpapi_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"filippo.io/age"
	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/httpapi"
	"github.com/censusvault/censusvault/broker/testdeadline"
	"github.com/censusvault/censusvault/policy"
)

// Red-team attacks on the protections of issue 10, against a running
// vault. Attacks the vault withstands stay as regression tests; an attack
// that succeeds is kept with t.Skip("red team finding: …") so the tree
// stays green until it is fixed.

// TestRedTeam10ExpiredTokenHiddenInNetworkWindow: the holder of a stolen
// token that was revoked or has expired keeps trying it. Failures of one
// network after its first in a window are only counted, and the summary
// keeps the reason of the last one only: an attacker who opens the window
// with a garbage token and closes it with another leaves no trace that the
// user's token was tried — neither the user's name nor "expired".
func TestRedTeam10ExpiredTokenHiddenInNetworkWindow(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	v.Clock.Advance(2 * time.Hour) // enum-expiring's token has expired
	garbage := "Bearer " + strings.Repeat("C", 43)
	head := v.auditHead()
	if r := v.do("GET", "/v1/progress", garbage, nil, nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("garbage token: %d", r.Status)
	}
	for range 50 {
		if r := v.get("enum-expiring", "/v1/progress"); r.Status != http.StatusUnauthorized {
			t.Fatalf("expired token: %d", r.Status)
		}
	}
	v.do("GET", "/v1/progress", garbage, nil, nil)
	if err := v.B.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, e := range v.eventsSince(head) {
		if e.Actor == "user:enum-expiring" || strings.Contains(e.Reason, "enum-expiring") || strings.Contains(e.Reason, "expired") {
			return
		}
		reasons = append(reasons, e.Actor+": "+e.Reason)
	}
	t.Errorf("50 uses of enum-expiring's expired token left no event naming the user or the expiry: %q", reasons)
}

// TestRedTeam10RefusalSummaryHidesActors: the README promises that a
// flood past the refusal ceiling hides refusals' details "but never their
// actors: the summary names them". The summary names the 20 largest
// actors only; 21 noisy tokens push a quiet actor into "N more from M
// others".
func TestRedTeam10RefusalSummaryHidesActors(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{limits: broker.Limits{RefusalRate: 0.001, RefusalBurst: 1}})
	for i := range 21 {
		name := fmt.Sprintf("noise-%02d", i)
		tok, err := v.B.AddUser(t.Context(), "cli:test", broker.NewUser{Name: broker.UserID(name), Role: policy.Enumerator, Area: eaB1})
		if err != nil {
			t.Fatal(err)
		}
		v.Tokens[name] = tok.Reveal()
	}
	v.get("noise-00", "/v1/progress?area="+communeA) // takes the ceiling's burst
	for i := range 21 {
		for range 3 {
			v.get(fmt.Sprintf("noise-%02d", i), "/v1/progress?area="+communeA)
		}
	}
	head := v.auditHead()
	if r := v.get("enum-b1", "/v1/progress?area="+communeA); r.Status != http.StatusForbidden {
		t.Fatalf("quiet actor's refusal: %d", r.Status)
	}
	if err := v.B.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, e := range v.eventsSince(head) {
		if strings.Contains(e.Reason, "user:enum-b1") || e.Actor == "user:enum-b1" {
			return
		}
		t.Logf("event %s: %s", e.Action, e.Reason)
	}
	t.Error("enum-b1's refusal is in no event and the summary does not name it")
}

// TestRedTeam10ForwardedForIgnoredWithoutProxy: without trusted proxies,
// X-Forwarded-For must not make one host look like many networks (each of
// which would get its first failure logged).
func TestRedTeam10ForwardedForIgnoredWithoutProxy(t *testing.T) {
	t.Parallel()
	// The control: behind a trusted proxy, each forwarded /24 is a network
	// of its own, and the attack would write one event per request.
	if n := forwardedFailures(t, newVault(t, vaultOpts{trustProxy: true})); len(n) != 50 {
		t.Fatalf("control: with a trusted proxy 50 forwarded networks wrote %d events, want 50", len(n))
	}
	v := newVault(t, vaultOpts{})
	evs := forwardedFailures(t, v)
	if len(evs) != 1 || !strings.Contains(evs[0].Reason, "from 127.0.0.1") {
		var rs []string
		for _, e := range evs {
			rs = append(rs, e.Reason)
		}
		t.Fatalf("50 failures with spoofed X-Forwarded-For from one host wrote %d events, want 1 from 127.0.0.1: %q", len(evs), rs)
	}
}

// forwardedFailures sends 50 bad tokens, each claiming another /24 in
// X-Forwarded-For and X-Real-IP, and returns the events they wrote.
func forwardedFailures(t *testing.T, v *vault) []*audit.Event {
	garbage := "Bearer " + strings.Repeat("E", 43)
	head := v.auditHead()
	for i := range 50 {
		xff := map[string]string{"X-Forwarded-For": fmt.Sprintf("10.%d.0.1", i), "X-Real-IP": fmt.Sprintf("10.%d.0.2", i)}
		if r := v.do("GET", "/v1/progress", garbage, nil, xff); r.Status != http.StatusUnauthorized {
			t.Fatalf("request %d: %d", i, r.Status)
		}
	}
	return v.eventsSince(head)
}

// TestRedTeam10OneTokenBoundAcrossRoutes: one token mixes requests that
// fail in every way it can (unknown routes, HEAD/OPTIONS, 404s of
// authenticated routes, undecodable queries, denied routes, bad bodies)
// to write more events than its allowance. Its events stay within its
// burst, one refusal event, and one summary.
func TestRedTeam10OneTokenBoundAcrossRoutes(t *testing.T) {
	t.Parallel()
	const burst = 30
	// The control: without the per-user limit the same requests write
	// one event each on every authenticated route.
	if n := mixedRequests(t, newVault(t, vaultOpts{limits: broker.Limits{UserRate: -1}})); n < 200 {
		t.Fatalf("control: without the limit 300 mixed requests wrote %d events of their user, want most of 300", n)
	}
	if n := mixedRequests(t, newVault(t, vaultOpts{limits: broker.Limits{UserRate: 0.001, UserBurst: burst}})); n > burst+2 {
		t.Errorf("300 mixed requests of one token wrote %d events, want at most its burst %d + 2", n, burst)
	}
}

// mixedRequests sends 300 requests of enum-a1 that fail in every way,
// closes the broker (writing summaries) and counts enum-a1's events.
func mixedRequests(t *testing.T, v *vault) int {
	tok := "Bearer " + v.Tokens["enum-a1"]
	uuid0 := "00000000-0000-4000-8000-000000000009"
	reqs := []struct{ method, path, body string }{
		{"GET", "/v1/nope", ""},
		{"HEAD", "/v1/progress", ""},
		{"OPTIONS", "/v1/progress", ""},
		{"GET", "/v1/receipts/" + uuid0, ""},
		{"GET", "/v1/receipts/" + uuid0 + "/proof", ""},
		{"GET", "/v1/receipts/not-a-uuid/proof?x=1", ""},
		{"GET", "/v1/progress?area=%zz&depth=x", ""},
		{"GET", "/v1/audit/events?actor=%ff", ""},
		{"GET", "/v1/audit/export", ""},
		{"POST", "/v1/tables", "{"},
		{"POST", "/v1/submissions", "not age"},
		{"GET", "/v1/submissions/" + uuid0, ""},
	}
	head := v.auditHead()
	for i := range 300 {
		rq := reqs[i%len(reqs)]
		var body io.Reader
		if rq.body != "" {
			body = strings.NewReader(rq.body)
		}
		v.do(rq.method, rq.path, tok, body, nil)
	}
	if err := v.B.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range v.eventsSince(head) {
		if e.Actor == "user:enum-a1" {
			n++
		}
	}
	return n
}

// TestRedTeam10BodyCutKeepsEvent: a client declares a body, sends part
// of it and hangs up. The refusal (the body could not be read) must still
// be recorded, on the deposit and the table routes.
func TestRedTeam10BodyCutKeepsEvent(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	deadline := testdeadline.Of(t)
	for _, rt := range []struct{ user, path, want string }{
		{"enum-a1", "/v1/submissions", "submission.deposit"},
		{"researcher", "/v1/tables", string(policy.RequestTable)},
	} {
		head := v.auditHead()
		conn, err := net.Dial("tcp", v.Server.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: vault\r\nAuthorization: Bearer %s\r\nContent-Type: application/octet-stream\r\nContent-Length: 30000\r\n\r\n%s",
			rt.path, v.Tokens[rt.user], strings.Repeat("x", 1000))
		conn.Close()
		var evs []*audit.Event
		for time.Now().Before(deadline) {
			if evs = v.eventsSince(head); len(evs) > 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if len(evs) != 1 || evs[0].Actor != "user:"+rt.user || evs[0].Outcome != "invalid" {
			var got []string
			for _, e := range evs {
				got = append(got, e.Actor+" "+e.Action+" "+e.Decision+"/"+e.Outcome+": "+e.Reason)
			}
			t.Errorf("%s cut mid-body: %d events %q, want one refusal by %s", rt.path, len(evs), got, rt.user)
		} else if evs[0].Action != rt.want {
			t.Errorf("%s: event action %s, want %s", rt.path, evs[0].Action, rt.want)
		}
	}
}

// TestRedTeam10ReceiptProofOfAnother: the proof route tells the audit
// index of a deposit (and so how many events came before it); nobody but
// the depositor may have it, not even an enumerator of the same EA.
func TestRedTeam10ReceiptProofOfAnother(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	m := household(eaA1, 1)
	rc := v.receipt(v.deposit("enum-a1", v.seal(encode(t, m))), http.StatusCreated)
	id := m["id"].(string)
	_ = rc
	for _, u := range []string{"enum-a1-bis", "enum-a2", "tl-a", "supervisor", "auditor", "researcher"} {
		r := v.get(u, "/v1/receipts/"+id+"/proof")
		if r.Status == http.StatusOK || strings.Contains(string(r.Body), "checkpoint") || strings.Contains(string(r.Body), "index") || r.Header.Get("X-Censusvault-Audit-Index") != "" {
			t.Errorf("%s asking enum-a1's receipt proof: %d %s", u, r.Status, r.Body)
		}
		r.ErrorBody(t)
	}
}

// TestRedTeam10ProgressUndecodableQuery: audit search was made strict
// about undecodable query pairs; progress still drops them silently, so
// ?area=%zz answers the caller's default area instead of 400.
func TestRedTeam10ProgressUndecodableQuery(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	for _, q := range []string{"area=%zz", "area=%ff", "area=" + eaA1 + "&area=" + eaB1, "arae=" + eaB1} {
		r := v.get("steering-town", "/v1/progress?"+q)
		if r.Status != http.StatusBadRequest {
			t.Errorf("progress ?%s: %d, want 400 invalid", q, r.Status)
		}
	}
}

// TestRedTeam10ProgressInvalidUTF8Area: ?area=%ff must not put invalid
// UTF-8 into the audit log (events are hashed as they are written).
func TestRedTeam10ProgressInvalidUTF8Area(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	head := v.auditHead()
	r := v.get("steering-town", "/v1/progress?area=%ff%1b%5b2J")
	if r.Status == http.StatusOK {
		t.Errorf("progress of an undecodable area: 200")
	}
	for _, rec := range v.auditRecords(head) {
		if !utf8.Valid(rec.Event) || strings.Contains(string(rec.Event), `\u001b`) {
			t.Errorf("event %d holds invalid UTF-8 or an escape: %q", rec.Index, rec.Event)
		}
	}
}

// TestRedTeam10TableJSONFolding: encoding/json folds keys by Unicode
// simple folding (ſ U+017F matches s, K U+212A matches k); nested
// duplicates (measure, filter) are the other way to smuggle a second value.
// A standard request's keys (table, area, as_of) are read as strictly as
// the free-form ones were: a folded "area" must not pass for a second
// area, nor a folded "aſ_of" for the point. The vault has a point, so a
// request that got past the reader would be computed.
func TestRedTeam10TableJSONFolding(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	v.makePoint("p1")
	p := `"project": "` + testProject + `"`
	tab := `"table": "population_age_broad_sex", "area": "` + district + `"`
	for name, body := range map[string]string{
		"long s in rows":        `{` + p + `, "purpose": "a", "rowſ": ["sex"]}`,
		"long s in purpose":     `{` + p + `, "purpoſe": "a", "rows": ["sex"]}`,
		"duplicate in measure":  `{` + p + `, "purpose": "a", "rows": ["sex"], "measure": {"sum": "age", "sum": "age"}}`,
		"duplicate in filter":   `{` + p + `, "purpose": "a", "rows": ["sex"], "filter": {"sex": [1], "sex": [2]}}`,
		"duplicate nested deep": `{` + p + `, "purpose": "a", "rows": ["sex"], "filter": {"area": ["18070"]}, "filter": {}}`,
		"kelvin in unit value":  `{` + p + `, "purpose": "a", "rows": ["sex"], "unit": "household", "uniT": "person"}`,
		"long s in as_of":       `{` + p + `, "purpose": "a", ` + tab + `, "aſ_of": "p1"}`,
		"folded table":          `{` + p + `, "purpose": "a", ` + tab + `, "Table": "population_religion_sex"}`,
		"folded area":           `{` + p + `, "purpose": "a", ` + tab + `, "AREA": "` + communeA + `"}`,
		"duplicate table":       `{` + p + `, "purpose": "a", ` + tab + `, "table": "population_religion_sex"}`,
	} {
		r := v.postTable("researcher", "", body, nil)
		if r.Status != http.StatusBadRequest || r.Code(t) != "invalid" {
			t.Errorf("%s: %d %s, want 400 invalid", name, r.Status, r.Body)
		}
	}
}

// TestRedTeam10BearerWhitespace: a tab is not the scheme's separator
// (RFC 7235: one or more spaces); a token with a tab or a space inside is
// refused, not trimmed into a valid one.
func TestRedTeam10BearerWhitespace(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	tok := v.Tokens["enum-a1"]
	for _, h := range []string{"Bearer\t" + tok, tok[:10] + " " + tok[10:], "Bearer " + tok[:10] + "\t" + tok[10:], "Bearer" + tok, "Bearer: " + tok} {
		r := v.do("GET", "/v1/progress?area="+eaA1, h, nil, nil)
		if r.Status != http.StatusUnauthorized || r.Code(t) != "unauthenticated" {
			t.Errorf("Authorization %q…: %d", h[:8], r.Status)
		}
	}
	if r := v.do("GET", "/v1/progress?area="+eaA1, "bEaReR   "+tok, nil, nil); r.Status != http.StatusOK {
		t.Errorf("scheme in mixed case with several spaces: %d", r.Status)
	}
}

// TestRedTeam10TableEncryptDroppedSilently: a researcher asks for an
// encrypted table, but the encrypt pair does not decode (a stray %, a
// semicolon a proxy or script appended) or is misspelt: the route drops
// the pair silently and releases the table in plain text, where audit
// search now refuses such a query with 400.
func TestRedTeam10TableEncryptDroppedSilently(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	v.loadSynthetic(tableHouseholds)
	v.makePoint("p1")
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.B.SetRecipient(t.Context(), "cli:test", "researcher", id.Recipient().String()); err != nil {
		t.Fatal(err)
	}
	// The premise: the request itself is released (in plain text without
	// encrypt, encrypted with it), so a refusal below is the query's.
	if r := v.postTable("researcher", "", countTable, nil); r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("control, no query: %d %s", r.Status, r.Body)
	}
	if r := v.postTable("researcher", "?encrypt=1", countTable, nil); r.Status != http.StatusOK || r.Header.Get("Content-Type") != httpapi.ContentTypeAge {
		t.Fatalf("control, ?encrypt=1: %d %s", r.Status, r.Header.Get("Content-Type"))
	}
	for _, q := range []string{"?encrypt=1%zz", "?encrypt=1;", "?encrpyt=1", "?encrypt=1&encrypt=%zz"} {
		r := v.postTable("researcher", q, countTable, nil)
		if r.Status == http.StatusOK && r.Header.Get("Content-Type") != httpapi.ContentTypeAge {
			t.Errorf("POST /v1/tables%s: 200 %s in plain text, want 400 (or the table encrypted)", q, r.Header.Get("Content-Type"))
		}
	}
}
