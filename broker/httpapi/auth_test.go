package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/crypto"
)

// flushAuth writes out pending auth-failure summaries, so that the next
// failure from an address is logged at once.
func (v *vault) flushAuth() {
	v.t.Helper()
	if err := v.B.Close(context.Background()); err != nil {
		v.t.Fatal(err)
	}
}

// check401 checks an answer is a proper 401 and the one event it appended
// records the failure without the token.
func check401(t *testing.T, r *response, ev *audit.Event, actor, why, token string) {
	t.Helper()
	if r.Status != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401: %s", r.Status, r.Body)
	}
	if wa := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(wa, "Bearer") {
		t.Errorf("WWW-Authenticate %q, want a Bearer challenge", wa)
	}
	r.ErrorBody(t)
	if ev.Action != "auth.authenticate" || ev.Outcome != "unauthenticated" || ev.Decision != "deny" {
		t.Errorf("event %s/%s/%s, want auth.authenticate/unauthenticated/deny", ev.Action, ev.Outcome, ev.Decision)
	}
	if ev.Actor != actor {
		t.Errorf("event actor %q, want %q", ev.Actor, actor)
	}
	if !strings.Contains(ev.Reason, why) || !strings.Contains(ev.Reason, "127.0.0.1") {
		t.Errorf("event reason %q, want it to say %q and the source address", ev.Reason, why)
	}
	b, _ := ev.Encode()
	if token != "" && strings.Contains(string(b), token) {
		t.Errorf("the event holds the presented token: %s", b)
	}
	if d, err := crypto.ParseTokenDigest(token); err == nil && strings.Contains(string(b), d.Hex()) {
		t.Errorf("the event holds the token's digest: %s", b)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	progress := "/v1/progress?area=" + eaA2

	t.Run("bad credentials: 401 with WWW-Authenticate, logged without the token", func(t *testing.T) {
		v := v.in(t)
		valid := v.Tokens["enum-a2"]
		for _, k := range []struct {
			name, header, why string
		}{
			{"missing header", "", "no bearer token"},
			{"other scheme", "Basic ZW51bS1hMjpwYXNzd29yZA==", "no bearer token"},
			{"token without scheme", valid, "no bearer token"},
			{"empty bearer", "Bearer ", "no bearer token"},
			{"malformed token", "Bearer not-a-token-Zyxwvu", "malformed token"},
			{"token one character short", "Bearer " + valid[:len(valid)-1], "malformed token"},
			{"token one character long", "Bearer " + valid + "A", "malformed token"},
			{"unknown token", "Bearer " + strings.Repeat("A", 43), "unknown token"},
			{"another vault's token", "Bearer " + newToken(t), "unknown token"},
		} {
			v.flushAuth()
			var r *response
			ev := v.oneEvent(func() { r = v.do(http.MethodGet, progress, k.header, nil, nil) })
			tok, _ := strings.CutPrefix(k.header, "Bearer ")
			check401(t, r, ev, "anonymous", k.why, tok)
		}
	})

	t.Run("every authenticated route needs a token; public ones do not", func(t *testing.T) {
		v := v.in(t)
		for _, k := range []struct {
			method, path string
			status       int
		}{
			{"POST", "/v1/submissions", 401},
			{"GET", "/v1/submissions/" + "00000000-0000-4000-8000-000000000001", 401},
			{"GET", "/v1/receipts/" + "00000000-0000-4000-8000-000000000001", 401},
			{"GET", progress, 401},
			{"GET", "/v1/audit/events", 401},
			{"GET", "/healthz", 200},
			{"GET", "/v1/ingest/recipient", 200},
			{"GET", "/v1/keys/receipt", 200},
			{"GET", "/v1/keys/audit", 200},
		} {
			if r := v.do(k.method, k.path, "", nil, nil); r.Status != k.status {
				t.Errorf("%s %s without a token: %d, want %d", k.method, k.path, r.Status, k.status)
			}
		}
	})

	t.Run("revoked while the server runs: the next request is 401", func(t *testing.T) {
		v := v.in(t)
		tok := v.Tokens["enum-b2"]
		if r := v.get("enum-b2", "/v1/progress?area="+eaB2); r.Status != http.StatusOK {
			t.Fatalf("before revocation: %d", r.Status)
		}
		ev := v.oneEvent(func() {
			if err := v.B.RevokeUser(t.Context(), "cli:test", "enum-b2"); err != nil {
				t.Fatal(err)
			}
		})
		if ev.Action != "user.revoke" || ev.Actor != "cli:test" {
			t.Errorf("revocation event %s by %s", ev.Action, ev.Actor)
		}
		v.flushAuth()
		var r *response
		ev = v.oneEvent(func() { r = v.get("enum-b2", "/v1/progress?area="+eaB2) })
		check401(t, r, ev, "user:enum-b2", "revoked", tok)
		// A revoked enumerator cannot deposit either.
		if r := v.deposit("enum-b2", v.seal(encode(t, household(eaB2, 1)))); r.Status != http.StatusUnauthorized {
			t.Errorf("deposit with a revoked token: %d, want 401", r.Status)
		}
	})

	t.Run("expiry: valid until the second before, 401 from then on", func(t *testing.T) {
		v := v.in(t)
		tok := v.Tokens["enum-expiring"]
		expires := start.Add(time.Hour)
		for _, k := range []struct {
			at     time.Time
			status int
		}{
			{expires.Add(-time.Second), 200},
			{expires, 401},
			{expires.Add(time.Second), 401},
		} {
			v.Clock.Advance(k.at.Sub(v.Clock.Now()))
			v.flushAuth()
			var r *response
			ev := v.oneEvent(func() { r = v.get("enum-expiring", progress) })
			if k.status == 200 {
				if r.Status != 200 || ev.Outcome != "ok" {
					t.Errorf("at %s: %d/%s, want 200/ok", k.at.Format(time.TimeOnly), r.Status, ev.Outcome)
				}
				continue
			}
			check401(t, r, ev, "user:enum-expiring", "expired", tok)
		}
	})
}

// newToken makes a well-formed token no vault knows.
func newToken(t *testing.T) string {
	tok, err := crypto.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	return tok.Reveal()
}

func TestAuthRateLimit(t *testing.T) {
	t.Parallel()
	const win = 10 * time.Second
	v := newVault(t, vaultOpts{authWin: win, trustProxy: true})
	bad := "Bearer " + strings.Repeat("B", 43)
	from := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip} }
	const src, src2 = "198.51.100.7", "203.0.113.9"

	authEvents := func(evs []*audit.Event) (out []*audit.Event) {
		for _, e := range evs {
			if e.Action == "auth.authenticate" {
				out = append(out, e)
			}
		}
		return out
	}

	head := v.auditHead()
	for range 50 {
		if r := v.do(http.MethodGet, "/v1/progress", bad, nil, from(src)); r.Status != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", r.Status)
		}
	}
	evs := v.eventsSince(head)
	if len(evs) != 1 || !strings.Contains(evs[0].Reason, src) {
		t.Fatalf("50 failures from one address appended %d events, want exactly 1 naming %s", len(evs), src)
	}

	// Another address is its own bucket.
	head = v.auditHead()
	for range 3 {
		v.do(http.MethodGet, "/v1/progress", bad, nil, from(src2))
	}
	if evs := v.eventsSince(head); len(evs) != 1 || !strings.Contains(evs[0].Reason, src2) {
		t.Errorf("3 failures from a second address appended %d events, want 1", len(evs))
	}

	// After the window, the flush (Close, or the broker's periodic Run)
	// writes one summary per address: 49 more after the one logged at
	// once.
	v.Clock.Advance(win + time.Second)
	head = v.auditHead()
	if err := v.B.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	evs = v.eventsSince(head)
	var summaries []string
	for _, e := range evs {
		summaries = append(summaries, e.Reason)
		if e.Action != "auth.authenticate" || e.Outcome != "unauthenticated" || e.Actor != "anonymous" {
			t.Errorf("summary %s/%s by %s", e.Action, e.Outcome, e.Actor)
		}
	}
	if len(evs) != 2 {
		t.Fatalf("flush appended %d events, want 2 (one per address): %q", len(evs), summaries)
	}
	for ip, n := range map[string]string{src: "49 more", src2: "2 more"} {
		found := false
		for _, s := range summaries {
			found = found || strings.Contains(s, ip) && strings.Contains(s, n)
		}
		if !found {
			t.Errorf("no summary saying %q for %s in %q", n, ip, summaries)
		}
	}
	head = v.auditHead()
	if err := v.B.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := v.auditHead() - head; n != 0 {
		t.Errorf("a second flush appended %d events, want 0", n)
	}

	// Without a flush: the first failure of a new window is logged at
	// once, those inside the window are counted, and the first failure
	// after the window brings their summary along with itself.
	head = v.auditHead()
	for range 6 {
		v.do(http.MethodGet, "/v1/progress", bad, nil, from(src))
	}
	if n := v.auditHead() - head; n != 1 {
		t.Errorf("6 failures in a new window appended %d events, want 1", n)
	}
	v.Clock.Advance(win - time.Second)
	head = v.auditHead()
	v.do(http.MethodGet, "/v1/progress", bad, nil, from(src))
	if n := v.auditHead() - head; n != 0 {
		t.Errorf("a failure a second before the window ends appended %d events, want 0", n)
	}
	v.Clock.Advance(time.Second)
	head = v.auditHead()
	v.do(http.MethodGet, "/v1/progress", bad, nil, from(src))
	evs = authEvents(v.eventsSince(head))
	if len(evs) != 2 {
		t.Fatalf("the first failure after the window appended %d events, want its summary and itself", len(evs))
	}
	if !strings.Contains(evs[0].Reason, "6 more") || !strings.Contains(evs[0].Reason, src) {
		t.Errorf("summary reason %q, want \"6 more\" from %s", evs[0].Reason, src)
	}
	if strings.Contains(evs[1].Reason, "more") {
		t.Errorf("the new failure's event reads %q, want a single failure", evs[1].Reason)
	}
}

func TestAuthSpoofedForwardedFor(t *testing.T) {
	t.Parallel()
	// No trusted proxies: X-Forwarded-For must not make each request a
	// new source, or anyone could flood the log past the rate limit.
	v := newVault(t, vaultOpts{})
	head := v.auditHead()
	for i := range 20 {
		v.do(http.MethodGet, "/v1/progress", "Bearer x", nil, map[string]string{
			"X-Forwarded-For": fmt.Sprintf("192.0.2.%d", i+1), "X-Real-IP": fmt.Sprintf("192.0.2.%d", i+1),
		})
	}
	evs := v.eventsSince(head)
	if len(evs) != 1 {
		t.Fatalf("20 failures with spoofed forwarding headers appended %d events, want 1", len(evs))
	}
	if !strings.Contains(evs[0].Reason, "127.0.0.1") || strings.Contains(evs[0].Reason, "192.0.2.") {
		t.Errorf("event reason %q: want the real peer address, not a spoofed one", evs[0].Reason)
	}
}
