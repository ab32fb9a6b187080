package broker

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/censusvault/censusvault/audit"
)

// Limits bound how fast callers can make the vault work and write audit
// events, so that nobody can flood the log. Each is a token bucket on the
// broker's clock: Rate tokens a second, up to Burst at once. Zero fields
// take DefaultLimits' values; a negative Rate turns that limit off. They
// hold per broker: instances behind one load balancer each allow as much.
//
// Whatever is not logged one by one is counted, and the counts are
// written as one summary event per window (Opts.AuthWin), so the log
// still says how many requests were refused, by whom or from where.
type Limits struct {
	// UserRate and UserBurst limit each authenticated user's requests on
	// every authenticated route. Past them a request is refused with 429
	// (code rate_limited) and Retry-After, before any work; the first
	// refusal of a window is logged, the others of that window in one
	// summary.
	UserRate  float64
	UserBurst int
	// RefusalRate and RefusalBurst limit the refusal events (denied,
	// invalid, not found, rate limited …) of authenticated callers
	// written one by one, over all users together. Past them refusals
	// are still refused, but counted by actor and by action into one
	// summary event per window.
	RefusalRate  float64
	RefusalBurst int
	// AuthFailRate and AuthFailBurst limit the events of failed
	// authentications written one by one, over all sources together.
	// Sources are counted by network (/24 for IPv4, /64 for IPv6): the
	// first failure of a network in a window is logged, its others in a
	// summary at the window's end; past the bucket, failures are counted
	// by network into one summary event per window.
	AuthFailRate  float64
	AuthFailBurst int
}

// DefaultLimits are the limits of a census, chosen for its traffic: an
// enumerator deposits a few households an hour, but a device back online
// after two weeks without a network flushes an outbox of 200–300 at once
// (UserBurst 300 takes it without one refusal), and nothing a person does
// needs more than 5 requests a second sustained (a dashboard polls
// progress every few seconds, an auditor pages the log 1,000 events a
// request). Refusals of a whole national census (expired tokens, devices
// out of their area, supersede conflicts) stay well under 100 a second,
// and failed authentications under 5. See the README for the events a
// second an attacker can cause with them.
func DefaultLimits() Limits {
	return Limits{UserRate: 5, UserBurst: 300, RefusalRate: 100, RefusalBurst: 1000, AuthFailRate: 5, AuthFailBurst: 100}
}

// withDefaults fills zero fields and checks the rest.
func (l Limits) withDefaults() (Limits, error) {
	d := DefaultLimits()
	for _, f := range []struct {
		name     string
		rate     *float64
		burst    *int
		defRate  float64
		defBurst int
	}{
		{"user", &l.UserRate, &l.UserBurst, d.UserRate, d.UserBurst},
		{"refusal", &l.RefusalRate, &l.RefusalBurst, d.RefusalRate, d.RefusalBurst},
		{"auth-fail", &l.AuthFailRate, &l.AuthFailBurst, d.AuthFailRate, d.AuthFailBurst},
	} {
		if math.IsNaN(*f.rate) || math.IsInf(*f.rate, 0) {
			return l, fmt.Errorf("%s rate limit: %v is not a number of events a second", f.name, *f.rate)
		}
		if *f.burst < 0 {
			return l, fmt.Errorf("%s rate limit: burst %d is negative", f.name, *f.burst)
		}
		if *f.rate == 0 {
			*f.rate = f.defRate
		}
		if *f.burst == 0 {
			*f.burst = f.defBurst
		}
	}
	return l, nil
}

// bucket is a token bucket; its owner holds the lock.
type bucket struct {
	tokens float64
	last   time.Time // zero: never used (full)
}

// take takes a token if there is one; otherwise wait is how long until
// there will be. A negative rate never runs out.
func (k *bucket) take(now time.Time, rate float64, burst int) (ok bool, wait time.Duration) {
	if rate < 0 {
		return true, 0
	}
	k.fill(now, rate, burst)
	if k.tokens >= 1 {
		k.tokens--
		return true, 0
	}
	return false, time.Duration((1 - k.tokens) / rate * float64(time.Second))
}

// fill adds the tokens earned since last (none if the clock went back).
func (k *bucket) fill(now time.Time, rate float64, burst int) {
	switch {
	case k.last.IsZero():
		k.tokens, k.last = float64(burst), now
	case now.After(k.last):
		k.tokens = min(float64(burst), k.tokens+now.Sub(k.last).Seconds()*rate)
		k.last = now
	}
}

// full reports whether the bucket would be full at now (so forgetting it
// changes nothing).
func (k *bucket) full(now time.Time, rate float64, burst int) bool {
	return rate < 0 || k.last.IsZero() || k.tokens+now.Sub(k.last).Seconds()*rate >= float64(burst)
}

// tally counts events not written one by one, by key, for a summary. It
// keeps at most maxTallyKeys keys; counts of further keys are only summed.
type tally struct {
	n     map[string]int64
	total int64
	lost  int64 // counted under no key: the map was full
	// every: keep every key (actors: registered users, bounded by the
	// user table), so a summary can name them all.
	every bool
}

// maxTallyKeys bounds a tally's memory (unless every).
const maxTallyKeys = 10000

// summaryListed is how many keys a summary names; the rest are summed.
const summaryListed = 20

func (t *tally) add(key string, n int64) {
	if t.n == nil {
		t.n = map[string]int64{}
	}
	t.total += n
	if _, ok := t.n[key]; ok || t.every || len(t.n) < maxTallyKeys {
		t.n[key] += n
	} else {
		t.lost += n
	}
}

// sorted lists the keys, largest count first (then by name).
func (t *tally) sorted() []string {
	keys := make([]string, 0, len(t.n))
	for k := range t.n {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(cmp.Compare(t.n[b], t.n[a]), strings.Compare(a, b)) })
	return keys
}

// String lists the largest counts, then sums the rest: "a: 9, b: 4 and
// 12 more from 7 others".
func (t *tally) String() string {
	keys := t.sorted()
	var sb strings.Builder
	for i, k := range keys[:min(len(keys), summaryListed)] {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "%s: %d", k, t.n[k])
	}
	if rest := keys[min(len(keys), summaryListed):]; len(rest) > 0 || t.lost > 0 {
		var n int64
		for _, k := range rest {
			n += t.n[k]
		}
		fmt.Fprintf(&sb, " and %d more from %d others", n+t.lost, len(rest))
		if t.lost > 0 {
			sb.WriteString(" (and others not told apart)")
		}
	}
	return sb.String()
}

// all lists every key with its count, largest first, in parts of at
// most partBytes bytes each ("a: 9, b: 4"), so that summaries naming
// every key stay within an audit event's size.
func (t *tally) all(partBytes int) []string {
	keys := t.sorted()
	var parts []string
	var sb strings.Builder
	for _, k := range keys {
		item := fmt.Sprintf("%s: %d", k, t.n[k])
		if sb.Len() > 0 && sb.Len()+2+len(item) > partBytes {
			parts = append(parts, sb.String())
			sb.Reset()
		}
		if sb.Len() > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(item)
	}
	if sb.Len() > 0 {
		parts = append(parts, sb.String())
	}
	return parts
}

// summaryPartBytes bounds the list of actors one summary event carries
// (an audit event holds at most audit.MaxEventSize bytes).
const summaryPartBytes = 64 << 10

// limiter holds the state of the three limits of Limits.
type limiter struct {
	lim Limits
	win time.Duration

	mu sync.Mutex
	// Failed authentications.
	authBucket bucket
	networks   map[string]*netWindow // networks with a failure logged in their window
	authOver   tally                 // by network: failures past the bucket
	authOverAt time.Time             // start of authOver's window
	// Users.
	users map[UserID]*userState
	// Refusals of authenticated callers.
	refBucket  bucket
	refActors  tally
	refActions tally
	refOverAt  time.Time
}

// netWindow is a network whose first failure in the window was logged.
type netWindow struct {
	start      time.Time
	suppressed int64
	last       string // the last suppressed failure: why, and from which address
}

// userState is a user's bucket, and their window of refusals by it.
type userState struct {
	bucket
	limitedAt time.Time // the first refusal of the open window; zero: none
	refused   int64     // refusals after the first in that window
	actor     string
	roles     []string
}

// maxNetworks bounds the networks whose windows are kept; past it, a new
// network's failures are counted into the overflow summary.
const maxNetworks = 10000

func newLimiter(lim Limits, win time.Duration) (*limiter, error) {
	lim, err := lim.withDefaults()
	if err != nil {
		return nil, err
	}
	if win <= 0 {
		return nil, errors.New("the rate limits' window must be positive")
	}
	return &limiter{lim: lim, win: win, networks: map[string]*netWindow{}, users: map[UserID]*userState{}, refActors: tally{every: true}}, nil
}

// network is the network a source address is counted by: its /24 (IPv4)
// or /64 (IPv6), the least one host or one customer of a provider has,
// and shown the address itself.
func network(source string) (network, shown string) {
	a, err := netip.ParseAddr(source)
	if err != nil {
		ap, err := netip.ParseAddrPort(source)
		if err != nil {
			return "(not an IP address)", "(not an IP address)"
		}
		a = ap.Addr()
	}
	a = a.Unmap().WithZone("")
	bits := 64
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return p.String(), a.String()
}

// authFailure decides how a failed authentication from source is logged:
// logNow, at once (the first of its network in the window, while the
// global bucket lasts); otherwise it is counted. events are summaries now
// due.
func (l *limiter) authFailure(now time.Time, source, why string) (logNow bool, shown string, events []*audit.Event) {
	netw, shown := network(source)
	l.mu.Lock()
	defer l.mu.Unlock()
	events = l.authOverDue(now, false)
	if w, ok := l.networks[netw]; ok {
		if now.Sub(w.start) < l.win {
			w.suppressed++
			w.last = why + ", from " + shown
			return false, shown, events
		}
		events = append(events, l.closeNetwork(now, netw, w)...)
	}
	if len(l.networks) < maxNetworks {
		if ok, _ := l.authBucket.take(now, l.lim.AuthFailRate, l.lim.AuthFailBurst); ok {
			l.networks[netw] = &netWindow{start: now}
			return true, shown, events
		}
	}
	l.overAuth(now, netw, 1)
	return false, shown, events
}

// overAuth counts failures of a network past the global bucket.
func (l *limiter) overAuth(now time.Time, netw string, n int64) {
	if l.authOver.total == 0 {
		l.authOverAt = now
	}
	l.authOver.add(netw, n)
}

// closeNetwork ends a network's window: the summary of its suppressed
// failures, if the global bucket allows one; otherwise they go to the
// overflow summary.
func (l *limiter) closeNetwork(now time.Time, netw string, w *netWindow) []*audit.Event {
	delete(l.networks, netw)
	if w.suppressed == 0 {
		return nil
	}
	if ok, _ := l.authBucket.take(now, l.lim.AuthFailRate, l.lim.AuthFailBurst); !ok {
		l.overAuth(now, netw, w.suppressed)
		return nil
	}
	return []*audit.Event{authEvent(now, "anonymous", fmt.Sprintf("%d more failed authentications from %s within %s of the first (last: %s)", w.suppressed, netw, l.win, w.last))}
}

// authOverDue is the overflow summary of failed authentications, once its
// window is over (or now, if final).
func (l *limiter) authOverDue(now time.Time, final bool) []*audit.Event {
	if l.authOver.total == 0 || !final && now.Sub(l.authOverAt) < l.win {
		return nil
	}
	ev := authEvent(now, "anonymous", fmt.Sprintf("%d failed authentications in %s past the limit of %g events a second (burst %d) over all sources, not logged one by one; by network: %s",
		l.authOver.total, l.win, l.lim.AuthFailRate, l.lim.AuthFailBurst, l.authOver.String()))
	l.authOver = tally{}
	return []*audit.Event{ev}
}

func authEvent(now time.Time, actor, reason string) *audit.Event {
	return &audit.Event{
		Time: now.UTC(), Actor: actor, Roles: []string{}, Action: "auth.authenticate",
		Decision: "deny", Rule: "authentication", Reason: reason, Outcome: "unauthenticated",
	}
}

// admitUser takes a token of c's bucket. Refused, wait is when to retry;
// events are what to log (the first refusal of a window, summaries due),
// each already past the refusal ceiling.
func (l *limiter) admitUser(now time.Time, c *Caller) (ok bool, wait time.Duration, events []*audit.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	events = l.refOverDue(now, false)
	st := l.users[c.User]
	if st == nil {
		st = &userState{}
		l.users[c.User] = st
	}
	st.actor, st.roles = c.actor(), c.roleNames()
	if !st.limitedAt.IsZero() && now.Sub(st.limitedAt) >= l.win {
		events = append(events, l.closeUser(now, st)...)
	}
	ok, wait = st.take(now, l.lim.UserRate, l.lim.UserBurst)
	if ok {
		return true, 0, events
	}
	if !st.limitedAt.IsZero() {
		st.refused++
		return false, wait, events
	}
	st.limitedAt = now
	ev := l.userEvent(now, st, fmt.Sprintf("over the limit of %g requests a second (burst %d): refused with 429 until the rate drops; further refusals within %s are summarized", l.lim.UserRate, l.lim.UserBurst, l.win))
	if l.admitRefusal(now, ev) {
		events = append(events, ev)
	}
	return false, wait, events
}

func (l *limiter) userEvent(now time.Time, st *userState, reason string) *audit.Event {
	return &audit.Event{
		Time: now.UTC(), Actor: st.actor, Roles: st.roles, Action: "auth.authenticate",
		Decision: "deny", Rule: "rate limit", Reason: reason, Outcome: "rate_limited",
	}
}

// closeUser ends a user's window of refusals, with a summary of those
// after the first.
func (l *limiter) closeUser(now time.Time, st *userState) []*audit.Event {
	n := st.refused
	st.limitedAt, st.refused = time.Time{}, 0
	if n == 0 {
		return nil
	}
	ev := l.userEvent(now, st, fmt.Sprintf("%d more requests refused by the rate limit (%g a second, burst %d) within %s of the first", n, l.lim.UserRate, l.lim.UserBurst, l.win))
	if !l.admitRefusal(now, ev) {
		return nil
	}
	return []*audit.Event{ev}
}

// admitRefusal takes a token of the refusal ceiling for ev, or counts ev
// into the overflow summary.
func (l *limiter) admitRefusal(now time.Time, ev *audit.Event) bool {
	if ok, _ := l.refBucket.take(now, l.lim.RefusalRate, l.lim.RefusalBurst); ok {
		return true
	}
	if l.refActors.total == 0 {
		l.refOverAt = now
	}
	l.refActors.add(ev.Actor, 1)
	l.refActions.add(ev.Action+"/"+cmp.Or(ev.Outcome, "-"), 1)
	return false
}

// refOverDue is the overflow summary of refusals, once its window is over
// (or now, if final).
func (l *limiter) refOverDue(now time.Time, final bool) []*audit.Event {
	if l.refActors.total == 0 || !final && now.Sub(l.refOverAt) < l.win {
		return nil
	}
	// Every actor is named, in as many events as it takes: a flood of
	// refusals must not hide who else was refused in it.
	parts := l.refActors.all(summaryPartBytes)
	var evs []*audit.Event
	for i, actors := range parts {
		part := ""
		if len(parts) > 1 {
			part = fmt.Sprintf(" (part %d of %d)", i+1, len(parts))
		}
		evs = append(evs, &audit.Event{
			Time: now.UTC(), Actor: "vault", Roles: []string{}, Action: "audit.summary",
			Decision: "deny", Rule: "refusal ceiling", Outcome: "summarized",
			Reason: fmt.Sprintf("%d refusals in %s past the limit of %g refusal events a second (burst %d) over all users, refused without an event each%s; by action: %s; by actor: %s",
				l.refActors.total, l.win, l.lim.RefusalRate, l.lim.RefusalBurst, part, l.refActions.String(), actors),
		})
	}
	l.refActors, l.refActions = tally{every: true}, tally{}
	return evs
}

// due returns the summaries of windows that have closed (all of them if
// final), and forgets users whose buckets are full again.
func (l *limiter) due(now time.Time, final bool) []*audit.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var events []*audit.Event
	for netw, w := range l.networks {
		if final || now.Sub(w.start) >= l.win {
			events = append(events, l.closeNetwork(now, netw, w)...)
		}
	}
	events = append(events, l.authOverDue(now, final)...)
	for u, st := range l.users {
		if !st.limitedAt.IsZero() && (final || now.Sub(st.limitedAt) >= l.win) {
			events = append(events, l.closeUser(now, st)...)
		}
		if st.limitedAt.IsZero() && st.full(now, l.lim.UserRate, l.lim.UserBurst) {
			delete(l.users, u)
		}
	}
	return append(events, l.refOverDue(now, final)...)
}
