package httpapi_test

// Tests for the low-severity findings of the red team (issue 10, point
// 7), each written as the attack it stops.

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker/client"
	"github.com/censusvault/censusvault/broker/tables"
	"github.com/censusvault/censusvault/broker/testdeadline"
)

// A researcher declares a 100 MB table request body and sends none: the
// vault must refuse at once (413, audited), not hold the connection open
// waiting for a body it will refuse. rawRequest never sends a body and
// waits for the answer only until shortly before the test's deadline.
func TestTablesDeclaredOversizeRefusedWithoutBody(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	began := time.Now()
	var (
		resp *http.Response
		body []byte
	)
	ev := v.oneEvent(func() {
		_, resp, body = rawRequest(t, v, fmt.Sprintf("POST /v1/tables HTTP/1.1\nHost: vault\nAuthorization: Bearer %s\n"+
			"Content-Type: application/json\nContent-Length: %d\n", v.Tokens["researcher"], 100<<20))
	})
	t.Logf("declared 100 MB body refused in %v, no body byte sent", time.Since(began))
	r := &response{Status: resp.StatusCode, Header: resp.Header, Body: body}
	if r.Status != http.StatusRequestEntityTooLarge || r.Code(t) != "too_large" {
		t.Errorf("answer %d %s, want 413 too_large", r.Status, r.Body)
	}
	if ev.Action != "table.request" || ev.Outcome != "too_large" {
		t.Errorf("event %s/%s, want table.request/too_large", ev.Action, ev.Outcome)
	}

	// A body of unknown length (chunked) over the limit is cut off after
	// one byte more than the limit and refused the same way.
	ev = v.oneEvent(func() {
		over := io.MultiReader(strings.NewReader(countTable), strings.NewReader(strings.Repeat(" ", tables.MaxRequestBytes)))
		r = v.do(http.MethodPost, "/v1/tables", "Bearer "+v.Tokens["researcher"], over, nil)
	})
	if r.Status != http.StatusRequestEntityTooLarge || r.Code(t) != "too_large" || ev.Outcome != "too_large" {
		t.Errorf("chunked oversize body: %d %s, event %s", r.Status, r.Body, ev.Outcome)
	}
}

// The Authorization scheme is case-insensitive (RFC 7235): a client that
// writes "bearer" is not locked out; other schemes still are.
func TestBearerSchemeCaseInsensitive(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	tok := v.Tokens["tl-a"]
	for _, scheme := range []string{"Bearer", "bearer", "BEARER", "bEaReR"} {
		if r := v.do(http.MethodGet, "/v1/progress?area="+communeA, scheme+" "+tok, nil, nil); r.Status != http.StatusOK {
			t.Errorf("%s <token>: %d, want 200: %s", scheme, r.Status, r.Body)
		}
	}
	for _, auth := range []string{"Basic " + tok, "Bearerx " + tok, "Bearer", tok} {
		if r := v.do(http.MethodGet, "/v1/progress?area="+communeA, auth, nil, nil); r.Status != http.StatusUnauthorized {
			t.Errorf("Authorization %.12q…: %d, want 401", auth, r.Status)
		}
	}
}

// Every authenticated answer, success or error, tells caches not to keep
// it: a shared proxy or a browser must not hand a receipt, a progress
// report or audit events to the next user.
func TestAuthenticatedAnswersAreNotCached(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	rc := v.receipt(v.deposit("enum-a1", v.seal(encode(t, household(eaA1, 1)))), http.StatusCreated)
	for _, k := range []struct {
		name   string
		r      *response
		status int
	}{
		{"receipt", v.get("enum-a1", "/v1/receipts/"+string(rc.SubmissionID)), 200},
		{"receipt of someone else", v.get("enum-a2", "/v1/receipts/"+string(rc.SubmissionID)), 404},
		{"receipt proof", v.get("enum-a1", "/v1/receipts/"+string(rc.SubmissionID)+"/proof"), 200},
		{"progress", v.get("tl-a", "/v1/progress?area="+communeA), 200},
		{"progress outside", v.get("tl-a", "/v1/progress?area="+communeB), 403},
		{"audit events", v.get("auditor", "/v1/audit/events?limit=5"), 200},
		{"audit events refused", v.get("enum-a1", "/v1/audit/events"), 403},
		{"audit export", v.get("auditor", "/v1/audit/export"), 200},
		{"no token", v.do(http.MethodGet, "/v1/progress?area="+communeA, "", nil, nil), 401},
		{"table refused", v.postTable("researcher", "", "{", nil), 400},
	} {
		if k.r.Status != k.status {
			t.Errorf("%s: %d, want %d: %s", k.name, k.r.Status, k.status, k.r.Body)
		}
		if cc := k.r.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", k.name, cc)
		}
	}
}

// Audit search must not turn a malformed filter into no filter (the whole
// log) nor into a 503 that records nothing: it is a 400, and the refusal is
// in the log.
func TestAuditSearchStrictQuery(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	for _, q := range []string{
		"actor=%zz",           // not URL encoding: was dropped, answering the whole log
		"actor=%ff",           // not UTF-8 once decoded: was a 503 and no event
		"actor=enum-a1&%zz=1", // an undecodable key
		"%ff=1",               // a key that is not UTF-8
		"actor=a;b",           // a semicolon is not a separator
	} {
		var r *response
		ev := v.oneEvent(func() { r = v.get("auditor", "/v1/audit/events?"+q) })
		if r.Status != http.StatusBadRequest || r.Code(t) != "invalid" {
			t.Errorf("?%s: %d %.200s, want 400 invalid", q, r.Status, r.Body)
		}
		if ev.Action != "audit.read" || ev.Outcome != "invalid" || ev.Actor != "user:auditor" {
			t.Errorf("?%s: event %s/%s by %s, want audit.read/invalid by user:auditor", q, ev.Action, ev.Outcome, ev.Actor)
		}
	}
	// A well-formed filter still works.
	if r := v.get("auditor", "/v1/audit/events?actor=enum-a1&limit=5"); r.Status != http.StatusOK {
		t.Errorf("a valid filter: %d %s", r.Status, r.Body)
	}
}

// countingTransport counts the requests a client sends.
type countingTransport struct {
	rt http.RoundTripper
	n  atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}

// A stored receipt damaged on disk is a permanent fault: answering it as
// 503 (retry later) made a device that re-sends its deposit retry forever.
// The vault answers 500 receipt_corrupt, logs the failure, and the Go
// client does not retry it.
func TestCorruptReceiptIsPermanent(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	plain := encode(t, household(eaA1, 1))
	rc := v.receipt(v.deposit("enum-a1", v.seal(plain)), http.StatusCreated)
	db := v.rawDB()
	if _, err := db.Exec(`UPDATE submissions SET receipt = ? WHERE id = ?`, []byte(`{"submission_id": 42`), string(rc.SubmissionID)); err != nil {
		t.Fatal(err)
	}

	var r *response
	ev := v.oneEvent(func() { r = v.get("enum-a1", "/v1/receipts/"+string(rc.SubmissionID)) })
	if r.Status != http.StatusInternalServerError || r.Code(t) != "receipt_corrupt" {
		t.Errorf("receipt: %d %s, want 500 receipt_corrupt", r.Status, r.Body)
	}
	if ev.Action != "receipt.read" || ev.Outcome != "error" {
		t.Errorf("receipt event %s/%s, want receipt.read/error", ev.Action, ev.Outcome)
	}

	// The device did not get its receipt and sends the same submission
	// again, with the client's default retries.
	ct := &countingTransport{rt: v.Server.Client().Transport}
	c, err := client.New(client.Opts{BaseURL: v.URL, Token: v.Tokens["enum-a1"], HTTP: &http.Client{Transport: ct}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Retries == 0 {
		t.Fatal("the client's default retries are off: the test proves nothing")
	}
	var se *client.StatusError
	ev = v.oneEvent(func() { _, err = c.Deposit(testdeadline.Context(t), v.seal(plain)) })
	if !errors.As(err, &se) || se.Status != http.StatusInternalServerError || se.Code != "receipt_corrupt" || se.Temporary() {
		t.Errorf("re-deposit: %v, want a permanent 500 receipt_corrupt", err)
	}
	if n := ct.n.Load(); n != 1 {
		t.Errorf("the client sent the deposit %d times, want once (no retry of a permanent fault)", n)
	}
	if ev.Action != "submission.deposit" || ev.Outcome != "error" {
		t.Errorf("re-deposit event %s/%s, want submission.deposit/error", ev.Action, ev.Outcome)
	}
}

// One stored household whose sealed analytic fields no longer
// authenticate (flipped on disk) must not tell a researcher anything about
// other households: the table fails closed (a table silently missing a
// household is wrong), with a generic message and a stable code, and the
// submission's id is nowhere in the answer.
func TestCorruptSealedRowFailsTablesWithoutNamingIt(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	v.receipt(v.deposit("enum-a1", v.seal(encode(t, household(eaA1, 1)))), http.StatusCreated)
	// The point is made before the damaged row is deposited: the table
	// engine opens that row when the table is asked for.
	v.makePoint("p1")
	outside := v.receipt(v.deposit("enum-b1", v.seal(encode(t, household(eaB1, 1)))), http.StatusCreated)
	db := v.rawDB()
	var blob []byte
	if err := db.QueryRow(`SELECT analytic FROM submissions WHERE id = ?`, string(outside.SubmissionID)).Scan(&blob); err != nil {
		t.Fatal(err)
	}
	blob[len(blob)-1] ^= 1
	if _, err := db.Exec(`UPDATE submissions SET analytic = ? WHERE id = ?`, blob, string(outside.SubmissionID)); err != nil {
		t.Fatal(err)
	}

	// The researcher asks for a standard table of commune A only; the
	// damaged row is in commune B.
	req := stdTable(testProject, "population_age_broad_sex", communeA, "")
	var r *response
	ev := v.oneEvent(func() { r = v.postTable("researcher", "", req, nil) })
	if r.Status != http.StatusInternalServerError || r.Code(t) != "table_data_corrupt" {
		t.Errorf("table: %d %s, want 500 table_data_corrupt", r.Status, r.Body)
	}
	for _, leak := range []string{string(outside.SubmissionID), eaB1, communeB} {
		if strings.Contains(string(r.Body), leak) {
			t.Errorf("the answer names %s, from outside the requested area: %s", leak, r.Body)
		}
	}
	if ev.Outcome != "error" || ev.ReleaseDigest != "" || strings.Contains(ev.Reason, string(outside.SubmissionID)) {
		t.Errorf("event %s %q digest %q: want an error, no release, no submission id", ev.Outcome, ev.Reason, ev.ReleaseDigest)
	}
}

// Table requests are read strictly: what encoding/json would silently
// reinterpret (a duplicate key, a case-folded key, invalid UTF-8) is
// refused, and a purpose carrying terminal escapes or NUL never reaches
// the audit log.
func TestTableRequestStrictJSON(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	p := `"project": "` + testProject + `"`
	tab := `"table": "population_age_broad_sex", "area": "` + district + `"`
	for _, tc := range []struct{ name, body, says string }{
		{"duplicate key", `{` + p + `, "purpose": "a", ` + tab + `, "area": "` + communeA + `"}`, "area: key given twice"},
		{"duplicate as_of", `{` + p + `, "purpose": "a", ` + tab + `, "as_of": "p1", "as_of": "p2"}`, "as_of: key given twice"},
		{"case-folded key", `{"PROJECT": "` + testProject + `", "purpose": "a", ` + tab + `}`, `write "project"`},
		{"invalid UTF-8", `{` + p + `, "purpose": "caf` + "\xe9" + `", ` + tab + `}`, "not valid UTF-8"},
		{"unpaired surrogate", `{` + p + `, "purpose": "a\udc00", ` + tab + `}`, "not valid UTF-8"},
		{"NUL in purpose", `{` + p + `, "purpose": "ok\u0000hidden", ` + tab + `}`, "purpose: control character U+0000"},
		{"ANSI escape in purpose", `{` + p + `, "purpose": "\u001b[2J\u001b[31mfake log line", ` + tab + `}`, "purpose: control character U+001B"},
		{"raw ESC in purpose", `{` + p + `, "purpose": "x` + "\x1b" + `[2J", ` + tab + `}`, "JSON syntax error"},
		{"ANSI escape in the point", `{` + p + `, "purpose": "a", ` + tab + `, "as_of": "p\u001b[2J"}`, "as_of: control character U+001B"},
	} {
		var r *response
		ev := v.oneEvent(func() { r = v.postTable("researcher", "", tc.body, nil) })
		msg, _ := r.ErrorBody(t)
		if r.Status != http.StatusBadRequest || r.Code(t) != "invalid" || !strings.Contains(msg, tc.says) {
			t.Errorf("%s: %d %s, want 400 invalid saying %q", tc.name, r.Status, r.Body, tc.says)
		}
		if ev.Outcome != "invalid" || ev.Purpose != "" || strings.ContainsAny(ev.Reason, "\x00\x1b") {
			t.Errorf("%s: event %s purpose %q reason %q", tc.name, ev.Outcome, ev.Purpose, ev.Reason)
		}
	}
	for _, rec := range v.auditRecords(0) {
		if strings.ContainsAny(string(rec.Event), "\x00\x1b") || strings.Contains(string(rec.Event), `\u001b`) || strings.Contains(string(rec.Event), `\u0000`) {
			t.Errorf("audit record %d holds a control character: %q", rec.Index, rec.Event)
		}
	}
}
