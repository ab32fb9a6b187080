package broker

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// Caller is an authenticated user and the grants they hold.
type Caller struct {
	User   UserID
	Grants []policy.Grant
	eng    *policy.Engine // the role policy at authentication; nil: the one in force
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
// and returns the caller, once per request: it also takes a token of the
// caller's rate limit (RateLimited past it). Unknown, malformed, expired
// and revoked tokens are Unauthenticated; they are audited within the
// limits of Limits (one event per network and window while the global
// bucket lasts, the rest in summaries), so nobody can flood the log.
func (b *Broker) Authenticate(ctx context.Context, authorization, source string) (*Caller, error) {
	fail := func(user, why string) error {
		if err := b.authFailure(ctx, source, user, why); err != nil {
			return err // a refusal the log could not record: Unavailable
		}
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
	var engHash, areaRev string
	err = b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		if u, err = tx.UserByTokenHash(digest.Hex()); err != nil {
			return err
		}
		// The role policy in force, read with the grants: one confirmed
		// on another instance holds from this request on.
		engHash, err = tx.Meta(metaPolicyEngine)
		if errors.Is(err, storage.ErrNotFound) {
			err = nil
		}
		if err != nil {
			return err
		}
		// And the revision of the area tree, for the same reason.
		areaRev, err = storedAreaRevision(tx)
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
	if err := b.syncEngine(ctx, engHash); err != nil {
		return nil, err
	}
	if err := b.syncAreas(ctx, areaRev); err != nil {
		return nil, err
	}
	c := &Caller{User: UserID(u.Name), eng: b.engine.Load()}
	for _, g := range u.Grants {
		c.Grants = append(c.Grants, policy.Grant{Role: policy.Role(g.Role), Area: g.Area, Deny: g.Deny, Project: g.Project})
	}
	if err := b.admit(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// authFailure logs a failed authentication from source (see Limits: one
// event at once per network and window, while the global bucket lasts;
// the others counted into summaries). An error means the event that had
// to be written could not be.
func (b *Broker) authFailure(ctx context.Context, source, user, why string) error {
	now := b.now()
	if user != "" {
		// A registered user's token that no longer works (revoked,
		// expired): a stolen token in use. Logged under its user, one
		// event each within the refusal ceiling and past it counted by
		// actor — never folded into an anonymous per-network count,
		// where the user would vanish.
		_, shown := network(source)
		return b.logRefusal(ctx, authEvent(now, "user:"+user, fmt.Sprintf("%s (from %s)", why, shown)))
	}
	logNow, shown, summaries := b.limits.authFailure(now, source, why)
	for _, ev := range summaries {
		b.record(ctx, ev)
	}
	if !logNow {
		return nil
	}
	return b.record(ctx, authEvent(now, "anonymous", fmt.Sprintf("%s (from %s)", why, shown)))
}

// admit takes a token of the caller's rate limit: refused, the request is
// RateLimited, with when to retry.
func (b *Broker) admit(ctx context.Context, c *Caller) error {
	ok, wait, events := b.limits.admitUser(b.now(), c)
	var err error
	for _, ev := range events {
		err = errors.Join(err, b.record(ctx, ev))
	}
	if ok {
		return nil
	}
	if err != nil {
		return err // the refusal could not be logged
	}
	return &Error{Kind: RateLimited, RetryAfter: wait,
		Msg: fmt.Sprintf("too many requests: at most %g a second (bursts of %d) per user; retry after the time in Retry-After", b.limits.lim.UserRate, b.limits.lim.UserBurst)}
}

// logRefusal writes the event of a refused request, unless the refusal
// ceiling is reached: then the refusal is counted into the next summary.
func (b *Broker) logRefusal(ctx context.Context, ev *audit.Event) error {
	now := b.now()
	l := b.limits
	l.mu.Lock()
	summaries := l.refOverDue(now, false)
	admitted := l.admitRefusal(now, ev)
	l.mu.Unlock()
	for _, s := range summaries {
		b.record(ctx, s)
	}
	if !admitted {
		return nil
	}
	return b.record(ctx, ev)
}

// flushLimits writes the summaries of the rate limits' windows that have
// closed (all of them if final).
func (b *Broker) flushLimits(ctx context.Context, final bool) error {
	var errs []error
	for _, ev := range b.limits.due(b.now(), final) {
		errs = append(errs, b.record(ctx, ev))
	}
	return errors.Join(errs...)
}
