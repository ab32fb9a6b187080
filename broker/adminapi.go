package broker

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// What the HTTP API and the CLI need around the administration use cases
// (admin.go, grants.go, explain.go): the broker's clock for relative
// expiries, the user-name rule, an authorization made before a request
// body is read, the administrator's reads of one user and of the token
// lifetimes, and the record of a request refused after it was authorized
// — so that over the API every administrative request, allowed or
// refused, is one audit event.

// Now is the broker's clock: what a relative expiry ("30d") of a new
// user counts from.
func (b *Broker) Now() time.Time { return b.now() }

// ValidUserName reports whether name is a user name: 1–64 lowercase
// letters, digits, '.', '_' or '-', starting with a letter or a digit.
func ValidUserName(name string) bool { return userNameRE.MatchString(name) }

// MayAdminister refuses, and audits as action, a caller who may not
// administer the vault (admin.manage over the whole area tree). The HTTP
// API asks it before it reads an administrative request's body, which may
// be megabytes (an import), and before it checks the request, so that
// whoever may not administer learns nothing but "not permitted"; the use
// case then decides again. An allowed caller is not recorded here: the use
// case records the request.
func (b *Broker) MayAdminister(ctx context.Context, c *Caller, action string) error {
	_, err := b.authorizeAdmin(ctx, APIOperator(c), action, nil)
	return err
}

// refused records ev, the event of an API caller's administrative request
// refused after it was authorized (a bad grant, an unknown user, the last
// admin …), with the refusal's message as its reason, and returns err. A
// failure that decided nothing (the store unavailable, a bug) is returned
// unrecorded, and so are the host operator's refusals, as none of the
// CLI's are. A nil err is nil.
func (b *Broker) refused(ctx context.Context, op Operator, ev *audit.Event, err error) error {
	var e *Error
	if err == nil || op.host() || ev == nil || !errors.As(err, &e) {
		return err
	}
	switch e.Kind {
	case Invalid:
		ev.Outcome = "invalid"
	case NotFound, Conflict, TooLarge, Gone, Permission:
		ev.Outcome = "refused"
	default:
		return err
	}
	ev.Reason = e.Msg
	return b.refuse(ctx, ev, e)
}

// UserAs describes one user to an administrator (admin.manage over the
// whole tree): grants, the grants proposed for them and waiting for an
// approver, expiry, revocation and recipient — never a token. Audited
// over the API.
func (b *Broker) UserAs(ctx context.Context, op Operator, name UserID) (*UserInfo, error) {
	ev, err := b.authorizeAdmin(ctx, op, "user.show", []string{"user:" + string(name)})
	if err != nil {
		return nil, err
	}
	var info *UserInfo
	now := b.now()
	err = b.store.View(ctx, func(tx storage.ReadTx) error {
		u, err := tx.User(string(name))
		if err != nil {
			return err
		}
		info = &UserInfo{Name: name, Recipient: u.Recipient, Expires: u.ExpiresAt, Revoked: u.RevokedAt}
		for _, g := range u.Grants {
			info.Grants = append(info.Grants, policyGrant(g))
		}
		return tx.GrantProposals(func(p storage.GrantProposal) (bool, error) {
			if p.User == u.Name && p.Kind == storage.GrantOpGrant && p.ConfirmedBy == "" && now.Sub(p.ProposedAt) <= proposalLife {
				info.Pending = append(info.Pending, policyGrant(p.Grant))
			}
			return true, nil
		})
	})
	if err := adminErr(err, name); err != nil {
		return nil, b.refused(ctx, op, ev, err)
	}
	if !op.host() {
		if err := b.logAllowed(ctx, ev); err != nil {
			return nil, err
		}
	}
	return info, nil
}

// TokenLifetimesAs are the token lifetimes in force, per role, as an
// administrator reads them (admin.manage over the whole tree; audited
// over the API).
func (b *Broker) TokenLifetimesAs(ctx context.Context, op Operator) (map[policy.Role]time.Duration, error) {
	ev, err := b.authorizeAdmin(ctx, op, "user.lifetimes_read", nil)
	if err != nil {
		return nil, err
	}
	out, err := b.TokenLifetimes(ctx)
	if err != nil {
		return nil, err
	}
	if !op.host() {
		if err := b.logAllowed(ctx, ev); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// TokenRecipientAs is the field office's registered token recipient
// (TokenRecipient) as an administrator reads it (admin.manage over the
// whole tree; audited over the API). Only the host operator changes it.
func (b *Broker) TokenRecipientAs(ctx context.Context, op Operator) (string, error) {
	ev, err := b.authorizeAdmin(ctx, op, "user.token_recipient_read", nil)
	if err != nil {
		return "", err
	}
	r, err := b.TokenRecipient(ctx)
	if err != nil {
		return "", err
	}
	if !op.host() {
		if err := b.logAllowed(ctx, ev); err != nil {
			return "", err
		}
	}
	return r, nil
}

// ImportCSV is ImportUsers of a user file in ParseUserCSV's format, its
// relative expiries counted from the broker's clock. A file that does not
// parse is refused after op is authorized (and, over the API, audited as
// one event, like every refused import).
func (b *Broker) ImportCSV(ctx context.Context, op Operator, data []byte, recipient string) (*UserImport, error) {
	ev, err := b.authorizeAdmin(ctx, op, "user.add", nil)
	if err != nil {
		return nil, err
	}
	rows, err := ParseUserCSV(data, b.now())
	if err != nil {
		return nil, b.refused(ctx, op, ev, err)
	}
	res, err := b.importUsers(ctx, op, ev, rows, recipient)
	if err != nil {
		return nil, b.refused(ctx, op, ev, err)
	}
	return res, nil
}

// The administration's answers as they cross the network (package wire),
// for the HTTP API and the CLI alike.

func wireGrant(g policy.Grant) wire.Grant {
	return wire.Grant{Role: string(g.Role), Area: g.Area, Deny: g.Deny, Project: g.Project}
}

func wireGrants(gs []policy.Grant) []wire.Grant {
	out := make([]wire.Grant, 0, len(gs))
	for _, g := range gs {
		out = append(out, wireGrant(g))
	}
	return out
}

// Wire is u as an administrator sees it: never a token.
func (u UserInfo) Wire() wire.User {
	out := wire.User{Name: string(u.Name), Grants: wireGrants(u.Grants), Recipient: u.Recipient, Expires: u.Expires, Revoked: u.Revoked}
	if len(u.Pending) > 0 {
		out.Pending = wireGrants(u.Pending)
	}
	return out
}

// Wire is p with its status: pending, confirmed or expired.
func (p Proposal) Wire() wire.Proposal {
	out := wire.Proposal{Seq: p.Seq, Kind: p.Kind, User: p.User, Status: wire.ProposalPending, PolicyHash: p.PolicyHash,
		ProposedBy: p.ProposedBy, ProposedAt: p.ProposedAt, ConfirmedBy: p.ConfirmedBy, ConfirmedAt: p.ConfirmedAt, Widens: p.Widens}
	if p.Kind != string(storage.GrantOpPolicy) {
		g := wireGrant(p.Grant)
		out.Grant = &g
	}
	switch {
	case p.ConfirmedBy != "":
		out.Status = wire.ProposalConfirmed
	case p.Expired:
		out.Status = wire.ProposalExpired
	}
	return out
}

// WireProposals is ps on the wire.
func WireProposals(ps []Proposal) []wire.Proposal {
	out := make([]wire.Proposal, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Wire())
	}
	return out
}

// Wire is the role policy and the grants of p: what GET /v1/admin/policy
// and GET /v1/admin/grants answer.
func (p *PolicyInfo) Wire() (wire.Policy, wire.Grants) {
	pol := wire.Policy{Model: p.Model, Rules: p.Rules, EngineHash: p.EngineHash, PolicyHash: p.PolicyHash,
		Users: p.Users, Grants: len(p.Grants), Pending: len(p.Pending)}
	gs := wire.Grants{PolicyHash: p.PolicyHash, Grants: make([]wire.UserGrant, 0, len(p.Grants)), Pending: WireProposals(p.Pending)}
	for _, g := range p.Grants {
		gs.Grants = append(gs.Grants, wire.UserGrant{User: g.User, Role: string(g.Grant.Role), Area: g.Grant.Area, Deny: g.Grant.Deny, Project: g.Grant.Project})
	}
	return pol, gs
}

// Wire is x on the wire; a past event's findings in Event.
func (x *Explanation) Wire() wire.Explanation {
	out := wire.Explanation{User: x.User, Action: x.Action, Area: x.Area, Project: x.Project, Allow: x.Allow, Rule: x.Rule,
		Roles: x.Roles, Grants: wireGrants(x.Grants), PolicyHash: x.PolicyHash, Note: x.Note}
	if out.Roles == nil {
		out.Roles = []string{}
	}
	if x.Event >= 0 {
		out.Event = &wire.PastDecision{Index: x.Event, Recorded: x.Recorded, HashMatches: x.HashMatches, Agrees: x.Agrees}
	}
	return out
}

// WireLifetimes are token lifetimes on the wire, every role of
// policy.Roles named.
func WireLifetimes(l map[policy.Role]time.Duration) wire.TokenLifetimes {
	out := wire.TokenLifetimes{Lifetimes: map[string]string{}}
	for _, r := range policy.Roles() {
		out.Lifetimes[string(r)] = FormatLifetime(l[r])
	}
	return out
}

// FormatLifetime writes a lifetime as ParseLifetime reads it: whole days
// ("60d"), else whole hours ("36h"), else a Go duration.
func FormatLifetime(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d > 0 && d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	case d > 0 && d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	}
	return d.String()
}

// TooLarge records a request refused, before it reached a use case,
// because its body is over the route's limit, and returns its error (413
// too_large).
func (b *Broker) TooLarge(ctx context.Context, c *Caller, action, msg string) error {
	ev := b.event(c, action, policy.Decision{})
	ev.Outcome, ev.Reason = "invalid", msg
	return b.refuse(ctx, ev, errorf(TooLarge, nil, "%s", msg))
}
