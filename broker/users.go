package broker

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

var userNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// NewUser describes a user to add.
type NewUser struct {
	Name    UserID
	Role    policy.Role
	Area    AreaCode
	Project string // research project of a researcher grant; required for researchers, refused for other roles
	// Expires is when the token stops working; zero: after the
	// lifetime of Role (TokenLifetimes). Over the API a later time than
	// that is cut to it; the host operator's holds.
	Expires time.Time
	// NoExpiry gives a token that never expires: the host operator only
	// (service accounts), refused over the API.
	NoExpiry bool
}

// AddUser adds a user with one grant and returns their bearer token,
// which exists only in the return value: the store keeps its SHA-256.
// actor is who does it ("cli:root"); the change is audited and changes
// the policy hash.
func (b *Broker) AddUser(ctx context.Context, actor string, u NewUser) (crypto.Token, error) {
	if !userNameRE.MatchString(string(u.Name)) {
		return crypto.Token{}, errorf(Invalid, nil, "user name %q: use 1–64 lowercase letters, digits, '.', '_' or '-'", u.Name)
	}
	if err := b.checkGrant(policy.Grant{Role: u.Role, Area: string(u.Area), Project: u.Project}); err != nil {
		return crypto.Token{}, err
	}
	now := b.now().UTC()
	if !u.Expires.IsZero() && !u.Expires.After(now) {
		return crypto.Token{}, errorf(Invalid, nil, "expiry %s is in the past", u.Expires.Format(time.RFC3339))
	}
	tok, err := crypto.NewToken()
	if err != nil {
		return crypto.Token{}, errorf(Internal, err, "failed to make a token")
	}
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		if err := checkGrantProject(tx, u.Project); err != nil {
			return err
		}
		lifetimes, err := tokenLifetimes(tx)
		if err != nil {
			return err
		}
		if !u.NoExpiry && u.Expires.IsZero() {
			u.Expires = now.Add(lifetimes[u.Role])
		}
		if err := checkNewUserName(tx, u.Name); err != nil {
			return err
		}
		if err := tx.InsertUser(&storage.User{
			Name: string(u.Name), TokenHash: tok.Digest().Hex(), CreatedAt: now, ExpiresAt: u.Expires,
			Grants: []storage.Grant{{Role: string(u.Role), Area: string(u.Area), Project: u.Project}},
		}); err != nil {
			return err
		}
		reason := "no expiry"
		if !u.Expires.IsZero() {
			reason = "expires " + u.Expires.UTC().Format(time.RFC3339)
		}
		g := policy.Grant{Role: u.Role, Area: string(u.Area), Project: u.Project}
		_, err = logChange(tx, &audit.Event{
			Time: now, Actor: actor, Roles: []string{}, Action: "user.add", Area: string(u.Area),
			Resources: []string{"user:" + string(u.Name), "grant:" + grantText(g)},
			Decision:  "allow", Rule: "operator with access to the data directory", Reason: reason, Outcome: "ok",
		}, policyChange{op: storage.GrantOpGrant, user: string(u.Name), grant: g})
		return err
	})
	var pe *Error
	if errors.As(err, &pe) {
		return crypto.Token{}, pe
	}
	if errors.Is(err, storage.ErrConflict) {
		return crypto.Token{}, errorf(Conflict, nil, "user %s already exists", u.Name)
	}
	if err != nil {
		return crypto.Token{}, errorf(Unavailable, err, "failed to store the user")
	}
	return tok, nil
}

// checkNewUserName refuses a name already taken, saying what to do
// instead. A revoked user's name is never given to anyone again, not even
// to the same person: "user:NAME" in the audit log must always mean one
// token holder, and a revoked token must stay dead.
func checkNewUserName(tx storage.ReadTx, name UserID) error {
	prev, err := tx.User(string(name))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil
	case err != nil:
		return err
	case !prev.RevokedAt.IsZero():
		return errorf(Conflict, nil, "user %s was revoked on %s, and names are never reused (the audit log's user:%s must stay one token holder): add the user under a new name, e.g. %s-2",
			name, prev.RevokedAt.UTC().Format(time.DateOnly), name, name)
	default:
		return errorf(Conflict, nil, "user %s already exists: give them another role with `censusvault user grant %s --role ROLE --area CODE`, or end their token with `censusvault user revoke %s`", name, name, name)
	}
}

// Grant gives an existing user another role at an area, or with deny
// takes a role away in a subtree.
func (b *Broker) Grant(ctx context.Context, actor string, user UserID, g policy.Grant) error {
	_, err := b.ChangeGrant(ctx, HostOperator(actor), user, g, false)
	return err
}

// RevokeUser ends a user's token now.
func (b *Broker) RevokeUser(ctx context.Context, actor string, user UserID) error {
	return revokeUser(ctx, b.store, actor, user, b.now().UTC())
}

// Revoke ends a user's token now with nothing but the store: it needs no
// key provider and no Broker (whose New unwraps the signing keys), so that
// a stolen token can be locked out while the key provider — HashiCorp
// Vault sealed or unreachable, an age identity file unreadable — is down.
// The revocation is audited like every CLI change.
func Revoke(ctx context.Context, st storage.Store, actor string, user UserID) error {
	return revokeUser(ctx, st, actor, user, time.Now().UTC())
}

func revokeUser(ctx context.Context, st storage.Store, actor string, user UserID, now time.Time) error {
	err := st.Update(ctx, func(tx storage.Tx) error {
		root, err := rootArea(tx)
		if err != nil {
			return err
		}
		eng, _, _, err := storedEngine(tx)
		if err != nil {
			return err
		}
		if err := checkLastAdmin(tx, eng, []string{root}, policyChange{user: string(user)}, now); err != nil {
			return err
		}
		if err := tx.RevokeUser(string(user), now); err != nil {
			return err
		}
		_, err = appendEvent(tx, &audit.Event{
			Time: now, Actor: actor, Roles: []string{}, Action: "user.revoke", Area: root,
			Resources: []string{"user:" + string(user)},
			Decision:  "allow", Rule: "operator with access to the data directory", Outcome: "ok",
		})
		return err
	})
	var pe *Error
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, storage.ErrNotFound):
		return errorf(NotFound, err, "no user %s", user)
	case err != nil:
		return errorf(Unavailable, err, "failed to revoke the user")
	}
	return nil
}

// rootArea is the stored area tree's root, for events about the whole
// vault written without a Broker.
func rootArea(tx storage.ReadTx) (string, error) {
	areas, err := tx.Areas()
	if err != nil {
		return "", err
	}
	for _, a := range areas {
		if a.Parent == "" {
			return a.Code, nil
		}
	}
	return "", errors.New("the stored area tree has no root")
}

func (b *Broker) checkGrant(g policy.Grant) error {
	if _, err := policy.ParseRole(string(g.Role)); err != nil {
		return errorf(Invalid, nil, "%v", err)
	}
	a, ok := b.tree.Get(AreaCode(g.Area))
	if !ok {
		return errorf(Invalid, nil, "no area %q (areas come from the areas file given to init)", g.Area)
	}
	if g.Role == policy.Admin && a.Code != b.tree.Root() {
		return errorf(Invalid, nil, "admin is a global role: grant it at the root area %s", b.tree.Root())
	}
	switch {
	case g.Project != "" && g.Role != policy.Researcher:
		return errorf(Invalid, nil, "only researcher grants name a project; %s is granted by area alone", g.Role)
	case g.Project != "" && !projectIDRE.MatchString(g.Project):
		return errorf(Invalid, nil, "project id %q is not a project id", clip(g.Project))
	case g.Role == policy.Researcher && !g.Deny && g.Project == "":
		return errorf(Invalid, nil, "a researcher is granted on a project: add --project ID (see `censusvault project list`)")
	}
	return nil
}

// checkGrantProject checks, in the granting transaction, that a grant's
// project exists and is open.
func checkGrantProject(tx storage.ReadTx, id string) error {
	if id == "" {
		return nil
	}
	p, err := tx.Project(id)
	if errors.Is(err, storage.ErrNotFound) {
		return errorf(Invalid, nil, "no project %s: register it first with `censusvault project add`", id)
	}
	if err != nil {
		return err
	}
	if !p.ClosedAt.IsZero() {
		return errorf(Invalid, nil, "project %s is closed", id)
	}
	return nil
}

// grantText is a grant as audit resources name it: "researcher@01/project:p1".
func grantText(g policy.Grant) string {
	s := string(g.Role) + "@" + g.Area
	if g.Project != "" {
		s += "/project:" + g.Project
	}
	return s
}

// optionalRecipient checks an age recipient given to register ("" to
// remove one) and returns it as ParseRecipient writes it.
func optionalRecipient(recipient string) (string, error) {
	if recipient == "" {
		return "", nil
	}
	r, err := crypto.ParseRecipient(recipient)
	if err != nil {
		return "", errorf(Invalid, nil, "%v", err)
	}
	return r, nil
}

// SetRecipient registers (or with "" removes) the age recipient a user's
// research tables are encrypted to when they ask for ?encrypt=1. Audited
// as "user.set_recipient"; the recipient is a public key, so the event
// names it.
func (b *Broker) SetRecipient(ctx context.Context, actor string, user UserID, recipient string) error {
	recipient, err := optionalRecipient(recipient)
	if err != nil {
		return err
	}
	now := b.now().UTC()
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		if err := tx.SetRecipient(string(user), recipient); err != nil {
			return err
		}
		reason := "recipient removed"
		if recipient != "" {
			reason = "recipient " + recipient
			if len(reason) > 80 {
				reason = reason[:80] + "…"
			}
		}
		_, err := appendEvent(tx, &audit.Event{
			Time: now, Actor: actor, Roles: []string{}, Action: "user.set_recipient", Area: string(b.tree.Root()),
			Resources: []string{"user:" + string(user)},
			Decision:  "allow", Rule: "operator with access to the data directory", Reason: reason, Outcome: "ok",
		})
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return errorf(NotFound, err, "no user %s", user)
	}
	if err != nil {
		return errorf(Unavailable, err, "failed to store the recipient")
	}
	return nil
}

// UserInfo is what `user list` shows: never a token or digest.
type UserInfo struct {
	Name      UserID
	Recipient string // age recipient for encrypted tables; "" if none
	Grants    []policy.Grant
	Expires   time.Time
	Revoked   time.Time
	Pending   []policy.Grant // grants proposed, waiting for an approver
}

// User describes one user.
func (b *Broker) User(ctx context.Context, name UserID) (*UserInfo, error) {
	var u *storage.User
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		u, err = tx.User(string(name))
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errorf(NotFound, err, "no user %s", name)
	}
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read user")
	}
	info := &UserInfo{Name: name, Recipient: u.Recipient, Expires: u.ExpiresAt, Revoked: u.RevokedAt}
	for _, g := range u.Grants {
		info.Grants = append(info.Grants, policy.Grant{Role: policy.Role(g.Role), Area: g.Area, Deny: g.Deny, Project: g.Project})
	}
	return info, nil
}
