package broker

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// Caller is an authenticated user and the grants they hold.
type Caller struct {
	User   UserID
	Grants []policy.Grant
}

func (c *Caller) actor() string { return "user:" + string(c.User) }

func (c *Caller) subject() policy.Subject {
	return policy.Subject{User: string(c.User), Grants: c.Grants}
}

func (c *Caller) roleNames() []string {
	seen := map[string]bool{}
	var out []string
	for _, g := range c.Grants {
		if !g.Deny && !seen[string(g.Role)] {
			seen[string(g.Role)] = true
			out = append(out, string(g.Role))
		}
	}
	sort.Strings(out)
	if out == nil {
		out = []string{}
	}
	return out
}

// Authenticate checks a bearer token (the Authorization header's value)
// and returns the caller. Unknown, malformed, expired and revoked tokens
// are Unauthenticated; they are audited, at most one event per source
// address per window plus a summary, so nobody can flood the log.
func (b *Broker) Authenticate(ctx context.Context, authorization, source string) (*Caller, error) {
	fail := func(user, why string) error {
		b.authFailure(ctx, source, user, why)
		return errorf(Unauthenticated, nil, "a valid bearer token is required")
	}
	scheme, tok, ok := strings.Cut(authorization, " ")
	ok = ok && strings.EqualFold(scheme, "Bearer") // RFC 7235: the scheme is case-insensitive
	if !ok || tok == "" {
		return nil, fail("", "no bearer token")
	}
	digest, err := crypto.ParseTokenDigest(strings.TrimSpace(tok))
	if err != nil {
		return nil, fail("", "malformed token")
	}
	var u *storage.User
	err = b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		u, err = tx.UserByTokenHash(digest.Hex())
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fail("", "unknown token")
	}
	if err != nil {
		return nil, errorf(Unavailable, err, "the vault database is unavailable; try again later")
	}
	stored, err := hex.DecodeString(u.TokenHash)
	if err != nil || len(stored) != len(crypto.TokenDigest{}) {
		return nil, fail(u.Name, "corrupt stored token digest")
	}
	if !digest.Equal(crypto.TokenDigest(stored)) {
		return nil, fail("", "unknown token")
	}
	now := b.now()
	if !u.RevokedAt.IsZero() && !now.Before(u.RevokedAt) {
		return nil, fail(u.Name, "token revoked")
	}
	if !u.ExpiresAt.IsZero() && !now.Before(u.ExpiresAt) {
		return nil, fail(u.Name, "token expired")
	}
	c := &Caller{User: UserID(u.Name)}
	for _, g := range u.Grants {
		c.Grants = append(c.Grants, policy.Grant{Role: policy.Role(g.Role), Area: g.Area, Deny: g.Deny, Project: g.Project})
	}
	return c, nil
}

// authLimiter keeps per-source counts of authentication failures. The
// first failure of a source in a window is logged at once; the rest are
// counted and logged as one summary event when the window closes.
type authLimiter struct {
	mu      sync.Mutex
	window  time.Duration
	sources map[string]*authWindow
}

type authWindow struct {
	start      time.Time
	suppressed int
	lastWhy    string
}

// maxSources bounds the limiter's memory; past it, new sources share one
// bucket.
const maxSources = 10000

func newAuthLimiter(w time.Duration) *authLimiter {
	return &authLimiter{window: w, sources: map[string]*authWindow{}}
}

func (b *Broker) authFailure(ctx context.Context, source, user, why string) {
	now := b.now()
	l := b.authFail
	l.mu.Lock()
	key := source
	if _, ok := l.sources[key]; !ok && len(l.sources) >= maxSources {
		key = "(other sources)"
	}
	w, ok := l.sources[key]
	var summary *audit.Event
	if ok && now.Sub(w.start) >= l.window {
		summary = l.summary(now, key, w)
		ok = false
	}
	logNow := !ok
	if !ok {
		w = &authWindow{start: now}
		l.sources[key] = w
	} else {
		w.suppressed++
		w.lastWhy = why
	}
	l.mu.Unlock()
	if summary != nil {
		b.record(ctx, summary)
	}
	if logNow {
		actor := "anonymous"
		if user != "" {
			actor = "user:" + user
		}
		b.record(ctx, &audit.Event{
			Time: now.UTC(), Actor: actor, Roles: []string{}, Action: "auth.authenticate",
			Decision: "deny", Rule: "authentication", Reason: fmt.Sprintf("%s (from %s)", why, source),
			Outcome: "unauthenticated",
		})
	}
}

func (l *authLimiter) summary(now time.Time, source string, w *authWindow) *audit.Event {
	if w.suppressed == 0 {
		return nil
	}
	return &audit.Event{
		Time: now.UTC(), Actor: "anonymous", Roles: []string{}, Action: "auth.authenticate",
		Decision: "deny", Rule: "authentication",
		Reason:  fmt.Sprintf("%d more failed authentications from %s within %s of the first (last: %s)", w.suppressed, source, l.window, w.lastWhy),
		Outcome: "unauthenticated",
	}
}

// flushAuthFailures writes summaries of windows that have closed (all of
// them if final).
func (b *Broker) flushAuthFailures(ctx context.Context, final bool) error {
	now := b.now()
	l := b.authFail
	l.mu.Lock()
	var events []*audit.Event
	for src, w := range l.sources {
		if final || now.Sub(w.start) >= l.window {
			if ev := l.summary(now, src, w); ev != nil {
				events = append(events, ev)
			}
			delete(l.sources, src)
		}
	}
	l.mu.Unlock()
	var errs []error
	for _, ev := range events {
		errs = append(errs, b.record(ctx, ev))
	}
	return errors.Join(errs...)
}
