package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/httpapi"
	"github.com/censusvault/censusvault/broker/testdeadline"
)

// TestDroppedConnectionKeepsRefusalEvent is the attack of finding 2: a
// client sends a request it knows will be refused and closes its socket at
// once, so that the server cancels the request's context while the
// refusal is being decided and recorded. Every such request must still
// leave its audit event. The server here lets each request go on only once
// its context is cancelled — the worst timing for the vault, which the
// attack reaches by chance on a live server — so the test does not depend
// on a race.
func TestDroppedConnectionKeepsRefusalEvent(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	h, err := httpapi.New(httpapi.Opts{Broker: v.B, TrustedProxies: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := testdeadline.Of(t)
	finished := make(chan struct{}, 1024)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { finished <- struct{}{} }()
		// Read the body first: net/http notices the closed connection
		// (and cancels the context) only once the body is consumed.
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		select {
		case <-r.Context().Done():
		case <-time.After(time.Until(deadline)):
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()

	const n = 20
	uuid0 := "00000000-0000-4000-8000-000000000001"
	routes := []struct {
		user, method, path, body string
	}{
		{"researcher", "POST", "/v1/submissions", "not age"},                // may not deposit
		{"enum-a1", "GET", "/v1/submissions/" + uuid0, ""},                  // nobody may read one
		{"enum-a2", "GET", "/v1/receipts/" + uuid0, ""},                     // not theirs
		{"enum-a3", "GET", "/v1/receipts/" + uuid0 + "/proof", ""},          // not theirs
		{"enum-b1", "GET", "/v1/progress?area=" + communeA, ""},             // outside their area
		{"enum-b2", "GET", "/v1/audit/events", ""},                          // not an auditor
		{"tl-a", "GET", "/v1/audit/export", ""},                             // not an auditor
		{"tl-b", "POST", "/v1/tables", `{"project":"` + testProject + `"}`}, // not a researcher
	}
	send := func(method, path, authorization, body string, hdr ...string) {
		t.Helper()
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		var req strings.Builder
		fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: vault\r\nAuthorization: %s\r\nContent-Length: %d\r\n", method, path, authorization, len(body))
		for _, h := range hdr {
			req.WriteString(h + "\r\n")
		}
		req.WriteString("\r\n" + body)
		if _, err := io.WriteString(conn, req.String()); err != nil {
			t.Fatal(err)
		}
		conn.Close() // at once: the attacker does not wait for the answer
	}

	head := v.auditHead()
	sent := 0
	for _, r := range routes {
		for range n {
			send(r.method, r.path, "Bearer "+v.Tokens[r.user], r.body)
			sent++
		}
	}
	// Unauthenticated, each from its own /24, so that each is logged at
	// once rather than summarized.
	for i := range n {
		send("GET", "/v1/progress", "Bearer "+strings.Repeat("A", 43), "", fmt.Sprintf("X-Forwarded-For: 198.18.%d.1", i))
		sent++
	}
	for i := range sent {
		select {
		case <-finished:
		case <-time.After(time.Until(deadline)):
			t.Fatalf("only %d of %d requests were handled before the test's deadline", i, sent)
		}
	}

	byActor := map[string]int{}
	for _, e := range v.eventsSince(head) {
		if e.Outcome == "ok" || e.Decision == "allow" {
			t.Errorf("a refused request's event reads %s/%s/%s", e.Action, e.Decision, e.Outcome)
		}
		byActor[e.Actor]++
	}
	for _, r := range routes {
		if got := byActor["user:"+r.user]; got != n {
			t.Errorf("%s %s as %s, each connection closed at once: %d events, want %d", r.method, r.path, r.user, got, n)
		}
	}
	if got := byActor["anonymous"]; got != n {
		t.Errorf("bad tokens from %d networks, each connection closed at once: %d events, want %d", n, got, n)
	}
	if f := v.B.AuditFailures(); f != 0 {
		t.Errorf("AuditFailures() = %d, want 0", f)
	}
}

// TestRefusalRecordedAfterCancel: the broker itself records a refusal
// whose context was cancelled before it was decided (a caller of the
// broker other than the HTTP API, or a server shutting down), and says
// so with the refusal, not with Unavailable.
func TestRefusalRecordedAfterCancel(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	caller, err := v.B.Authenticate(t.Context(), "Bearer "+v.Tokens["enum-b1"], "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ev := v.oneEvent(func() {
		_, err = v.B.Progress(ctx, caller, communeA, 0)
	})
	if broker.KindOf(err) != broker.Permission {
		t.Errorf("progress outside the caller's area with a cancelled context: %v, want permission denied", err)
	}
	if ev.Actor != "user:enum-b1" || ev.Decision != "deny" || ev.Outcome != "denied" {
		t.Errorf("event %s %s/%s, want enum-b1's denial", ev.Actor, ev.Decision, ev.Outcome)
	}
}

// TestUnrecordableRefusal: a refusal the audit log cannot record is
// answered 503 (code "unavailable", Retry-After), never with the
// refusal's own status, and each one is counted in AuditFailures.
func TestUnrecordableRefusal(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	if _, err := v.rawDB().Exec(`CREATE TRIGGER no_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'audit disk full'); END`); err != nil {
		t.Fatal(err)
	}
	before := v.B.AuditFailures()
	const n = 3
	for range n {
		r := v.get("enum-b1", "/v1/progress?area="+communeA)
		if r.Status != http.StatusServiceUnavailable || r.Code(t) != "unavailable" || r.Header.Get("Retry-After") == "" {
			t.Errorf("a denial the log cannot record: %d %s (Retry-After %q), want 503 unavailable with Retry-After", r.Status, r.Body, r.Header.Get("Retry-After"))
		}
	}
	if got := v.B.AuditFailures() - before; got != n {
		t.Errorf("AuditFailures grew by %d, want %d", got, n)
	}
}
