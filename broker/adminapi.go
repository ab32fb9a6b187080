package broker

import (
	"context"
	"errors"
	"time"

	"github.com/censusvault/censusvault/audit"
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
	case NotFound, Conflict, TooLarge, Gone:
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
