package httpapi_test

import (
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/policy"
)

// The attacks of finding 3: flooding the audit log. Each test runs on the
// broker's fake clock, which stands still unless a test moves it, so
// every bucket holds exactly its burst.

// summed adds up the counts a summary reason lists after "by network: " (or
// another list head), and its "and N more from M others".
func summed(t *testing.T, list string) (total int64, listed int) {
	t.Helper()
	for _, m := range regexp.MustCompile(`(?:^|, )[^,]+?: (\d+)`).FindAllStringSubmatch(list, -1) {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		total += n
		listed++
	}
	if m := regexp.MustCompile(` and (\d+) more from \d+ others`).FindStringSubmatch(list); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		total += n
	}
	return total, listed
}

// TestAuthFloodFromManyNetworks: 3,000 bad tokens, each from an address
// of its own /24, write at most the global bucket's burst of events one
// by one, then one summary per window that still counts every failure.
func TestAuthFloodFromManyNetworks(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	def := broker.DefaultLimits()
	ctx := t.Context()
	bad := "Bearer " + strings.Repeat("C", 43)
	const n = 3000
	head := v.auditHead()
	for i := range n {
		src := fmt.Sprintf("10.%d.%d.7", i/256, i%256)
		if _, err := v.B.Authenticate(ctx, bad, src); broker.KindOf(err) != broker.Unauthenticated {
			t.Fatalf("bad token from %s: %v, want unauthenticated", src, err)
		}
	}
	during := v.eventsSince(head)
	if len(during) != def.AuthFailBurst {
		t.Errorf("%d failures from %d networks wrote %d events at once, want the global burst, %d", n, n, len(during), def.AuthFailBurst)
	}
	for _, e := range during {
		if e.Action != "auth.authenticate" || e.Outcome != "unauthenticated" || !strings.Contains(e.Reason, "(from 10.") {
			t.Errorf("event %s/%s %q, want a failed authentication naming its address", e.Action, e.Outcome, e.Reason)
		}
	}
	head = v.auditHead()
	if err := v.B.Close(ctx); err != nil {
		t.Fatal(err)
	}
	after := v.eventsSince(head)
	if len(after) != 1 {
		t.Fatalf("the window's end wrote %d events, want one summary", len(after))
	}
	s := after[0]
	if s.Action != "auth.authenticate" || s.Actor != "anonymous" || s.Decision != "deny" {
		t.Errorf("summary %s by %s (%s)", s.Action, s.Actor, s.Decision)
	}
	_, list, ok := strings.Cut(s.Reason, "by network: ")
	if !ok || !strings.HasPrefix(s.Reason, fmt.Sprint(n-def.AuthFailBurst, " failed authentications")) {
		t.Fatalf("summary reason %q, want the %d failures not logged, by network", s.Reason, n-def.AuthFailBurst)
	}
	total, listed := summed(t, list)
	if total != n-int64(def.AuthFailBurst) || listed > 20 || listed == 0 {
		t.Errorf("summary lists %d networks summing (with the rest) to %d, want at most 20 summing to %d: %q", listed, total, n-def.AuthFailBurst, s.Reason)
	}
	if !strings.Contains(list, ".0/24: 1") {
		t.Errorf("summary does not count by /24 network: %q", list)
	}
	// A second later the bucket holds AuthFailRate tokens again.
	v.Clock.Advance(time.Second)
	head = v.auditHead()
	for i := range 20 {
		v.B.Authenticate(ctx, bad, fmt.Sprintf("172.16.%d.1", i))
	}
	if got := v.auditHead() - head; got != int64(def.AuthFailRate) {
		t.Errorf("a second later, 20 failures from new networks wrote %d events, want %g", got, def.AuthFailRate)
	}
}

// TestAuthFloodFromOneIPv6Network: one /64 holds 2^64 addresses, so
// counting by address is no limit; counted by network, 3,000 of them
// write one event and one summary.
func TestAuthFloodFromOneIPv6Network(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	ctx := t.Context()
	bad := "Bearer " + strings.Repeat("D", 43)
	const n = 3000
	head := v.auditHead()
	for i := range n {
		src := fmt.Sprintf("2001:db8:7:9:%x:%x:%x:1", i*7919%65536, i, i*31%65536)
		v.B.Authenticate(ctx, bad, src)
	}
	if err := v.B.Close(ctx); err != nil {
		t.Fatal(err)
	}
	evs := v.eventsSince(head)
	var reasons []string
	for _, e := range evs {
		reasons = append(reasons, e.Reason)
	}
	if len(evs) != 2 {
		t.Fatalf("%d failures from one /64 wrote %d events, want 2 (the first, and a summary): %q", n, len(evs), reasons)
	}
	if want := fmt.Sprint(n-1, " more failed authentications from 2001:db8:7:9::/64"); !strings.Contains(evs[1].Reason, want) {
		t.Errorf("summary %q, want it to say %q", evs[1].Reason, want)
	}
	// An IPv4-mapped address is its IPv4 network.
	head = v.auditHead()
	v.B.Authenticate(ctx, bad, "::ffff:192.0.2.1")
	v.B.Authenticate(ctx, bad, "192.0.2.200")
	if evs := v.eventsSince(head); len(evs) != 1 || !strings.Contains(evs[0].Reason, "from 192.0.2.1)") {
		t.Errorf("two failures in 192.0.2.0/24 (one IPv4-mapped) wrote %d events, want 1", len(evs))
	}
}

// TestUserRateLimit: one token hammering an allowed route gets its burst,
// then 429 rate_limited with Retry-After, and writes one event for all
// its refusals of the window plus one summary, not one per request.
func TestUserRateLimit(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	def := broker.DefaultLimits()
	path := "/v1/progress?area=" + eaA1
	const n = 400
	head := v.auditHead()
	status := map[int]int{}
	var limited *response
	for range n {
		r := v.get("enum-a1", path)
		status[r.Status]++
		if r.Status == http.StatusTooManyRequests && limited == nil {
			limited = r
		}
	}
	if status[200] != def.UserBurst || status[429] != n-def.UserBurst {
		t.Fatalf("%d requests at once: %v, want %d × 200 then 429", n, status, def.UserBurst)
	}
	if c := limited.Code(t); c != "rate_limited" {
		t.Errorf("429 code %q, want rate_limited", c)
	}
	limited.ErrorBody(t)
	if ra, err := strconv.Atoi(limited.Header.Get("Retry-After")); err != nil || ra < 1 || float64(ra) > 1/def.UserRate+1 {
		t.Errorf("Retry-After %q, want the whole seconds until a token (1)", limited.Header.Get("Retry-After"))
	}
	// Another user is not held back.
	if r := v.get("enum-a2", "/v1/progress?area="+eaA2); r.Status != http.StatusOK {
		t.Errorf("another user while enum-a1 is limited: %d", r.Status)
	}
	count := func(evs []*audit.Event) (ok, rl int, rlEv []*audit.Event) {
		for _, e := range evs {
			switch {
			case e.Actor == "user:enum-a1" && e.Outcome == "ok":
				ok++
			case e.Actor == "user:enum-a1" && e.Outcome == "rate_limited":
				rl++
				rlEv = append(rlEv, e)
			}
		}
		return
	}
	ok, rl, _ := count(v.eventsSince(head))
	if ok != def.UserBurst || rl != 1 {
		t.Errorf("events: %d allowed, %d rate-limited; want %d and 1", ok, rl, def.UserBurst)
	}
	head = v.auditHead()
	if err := v.B.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, rl, evs := count(v.eventsSince(head))
	if rl != 1 || !strings.Contains(evs[0].Reason, fmt.Sprint(n-def.UserBurst-1, " more requests refused")) {
		t.Fatalf("the window's end wrote %d rate-limit events (%v), want one summary of the %d others", rl, evs, n-def.UserBurst-1)
	}
	if evs[0].Decision != "deny" || len(evs[0].Roles) == 0 {
		t.Errorf("summary %s with roles %v", evs[0].Decision, evs[0].Roles)
	}
	// A second later, UserRate requests pass again.
	v.Clock.Advance(time.Second)
	status = map[int]int{}
	for range int(def.UserRate) + 1 {
		status[v.get("enum-a1", path).Status]++
	}
	if status[200] != int(def.UserRate) || status[429] != 1 {
		t.Errorf("a second later: %v, want %g × 200 and one 429", status, def.UserRate)
	}
	// The limit comes before the work: a deposit refused 429 stores
	// nothing.
	m := household(eaA1, 9)
	if r := v.deposit("enum-a1", v.seal(encode(t, m))); r.Status != http.StatusTooManyRequests {
		t.Errorf("deposit while limited: %d, want 429", r.Status)
	}
	v.mustNotBeStored(m["id"].(string))
}

// TestRefusalCeiling: many tokens, each within its own allowance, are
// refused; past the ceiling over all users the refusals are still
// refused, but logged as one summary per window instead of one event
// each.
func TestRefusalCeiling(t *testing.T) {
	t.Parallel()
	lim := broker.Limits{RefusalRate: 10, RefusalBurst: 50}
	v := newVault(t, vaultOpts{limits: lim})
	const users, each = 20, 10
	for i := range users {
		name := fmt.Sprintf("flood-%02d", i)
		tok, err := v.B.AddUser(t.Context(), "cli:test", broker.NewUser{Name: broker.UserID(name), Role: policy.Enumerator, Area: eaB1})
		if err != nil {
			t.Fatal(err)
		}
		v.Tokens[name] = tok.Reveal()
	}
	head := v.auditHead()
	for i := range users * each {
		if r := v.get(fmt.Sprintf("flood-%02d", i%users), "/v1/progress?area="+communeA); r.Status != http.StatusForbidden {
			t.Fatalf("refused request %d: %d, want 403 whether or not it is logged", i, r.Status)
		}
	}
	if got := v.auditHead() - head; got != int64(lim.RefusalBurst) {
		t.Errorf("%d refusals by %d users wrote %d events, want the ceiling's burst, %d", users*each, users, got, lim.RefusalBurst)
	}
	head = v.auditHead()
	if err := v.B.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	evs := v.eventsSince(head)
	if len(evs) != 1 {
		t.Fatalf("the window's end wrote %d events, want one summary", len(evs))
	}
	s := evs[0]
	if s.Action != "audit.summary" || s.Outcome != "summarized" || s.Decision != "deny" {
		t.Errorf("summary %s/%s/%s", s.Action, s.Decision, s.Outcome)
	}
	rest := int64(users*each - lim.RefusalBurst)
	_, lists, _ := strings.Cut(s.Reason, "by action: ")
	actions, actors, _ := strings.Cut(lists, "; by actor: ")
	if !strings.HasPrefix(s.Reason, fmt.Sprint(rest, " refusals")) {
		t.Errorf("summary %q, want it to count the %d refusals not logged", s.Reason, rest)
	}
	if total, listed := summed(t, actors); total != rest || listed != users {
		t.Errorf("by actor: %d listed, summing to %d; want %d summing to %d: %q", listed, total, users, rest, actors)
	}
	if actions != fmt.Sprint("progress.read/denied: ", rest) {
		t.Errorf("by action: %q, want progress.read/denied: %d", actions, rest)
	}
	// A second later, RefusalRate refusals are logged one by one again.
	v.Clock.Advance(time.Second)
	head = v.auditHead()
	for i := range 20 {
		v.get(fmt.Sprintf("flood-%02d", i), "/v1/progress?area="+communeA)
	}
	if got := v.auditHead() - head; got != int64(lim.RefusalRate) {
		t.Errorf("a second later, 20 refusals wrote %d events, want %g", got, lim.RefusalRate)
	}
}

// TestLimitsValidated: limits that mean nothing are refused by New, not
// taken for "no limit" or a default.
func TestLimitsValidated(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	kp, err := agekey.Load(filepath.Join(v.Dir, agekey.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []broker.Limits{
		{UserRate: math.NaN()},
		{RefusalRate: math.Inf(1)},
		{AuthFailBurst: -1},
	} {
		if _, err := broker.New(t.Context(), broker.Opts{Store: v.Store, Keys: kp, Limits: l}); err == nil || !strings.Contains(err.Error(), "rate limit") {
			t.Errorf("New with limits %+v: %v, want an error naming the rate limit", l, err)
		}
	}
}
