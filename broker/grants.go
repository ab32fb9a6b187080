package broker

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// Changes of grants and role policy over the API, proposals and their
// confirmation by an approver, token reissue and the last-admin rule. See
// admin.go for the invariants.

// GrantChange is the outcome of a change of grants or role policy: in
// force now, or a proposal waiting for an approver.
type GrantChange struct {
	Active   bool
	Proposal int64 // the proposal's Seq when !Active
}

// ChangeGrant gives user grant g (remove: takes it away). Over the API a
// change that could widen access to data is a proposal (see
// needsConfirm); the host operator's changes hold at once. Removing or
// denying the last admin is refused (409 last_admin).
func (b *Broker) ChangeGrant(ctx context.Context, op Operator, user UserID, g policy.Grant, remove bool) (*GrantChange, error) {
	kind := "grant"
	if g.Deny {
		kind = "deny"
	}
	action := "user.grant"
	if remove {
		action = "user.ungrant"
	}
	ev, err := b.authorizeAdmin(ctx, op, action, []string{"user:" + string(user), kind + ":" + grantText(g)})
	if err != nil {
		return nil, err
	}
	if err := b.checkGrant(g); err != nil {
		return nil, b.refused(ctx, op, ev, err)
	}
	ev.Area = g.Area
	now := b.now().UTC()
	ev.Time = now
	pending := !op.host() && needsConfirm(b.engineFor(op.caller), g, remove)
	out := &GrantChange{Active: !pending}
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		u, err := tx.User(string(user))
		if err != nil {
			return err
		}
		if !u.RevokedAt.IsZero() {
			return errorf(Conflict, nil, "user %s is revoked: grants of a revoked user change nothing", user)
		}
		held := false
		for _, x := range u.Grants {
			held = held || policyGrant(x) == g
		}
		if !remove && !g.Deny && !op.host() && !pending {
			roles, err := pendingDataRoles(tx, now)
			if err != nil {
				return err
			}
			if roles[g.Role] {
				pending = true
				out.Active = false
			}
		}
		if remove && !op.host() && unmasks(g, u.Grants) {
			// The trust grant blocks data actions of the user's other
			// grants: taking it away gives data.
			pending = true
			out.Active = false
		}
		switch {
		case remove && !held:
			return errorf(NotFound, nil, "user %s does not hold %s %s", user, kind, grantText(g))
		case !remove && held:
			return errorf(Conflict, nil, "user %s already holds %s %s", user, kind, grantText(g))
		case !remove && !g.Deny:
			if err := checkGrantProject(tx, g.Project); err != nil {
				return err
			}
		}
		if pending {
			ev.Action = "grant.propose"
			rec, err := appendEvent(tx, ev)
			if err != nil {
				return err
			}
			op := storage.GrantOpGrant
			if remove {
				op = storage.GrantOpUngrant
			}
			p := &storage.GrantProposal{Kind: op, User: string(user), Grant: storageGrant(g), Reason: action,
				ProposedBy: ev.Actor, ProposedAt: now, ProposalAudit: rec.Index}
			if err := tx.ProposeGrant(p); err != nil {
				return err
			}
			out.Proposal = p.Seq
			return nil
		}
		change := policyChange{op: storage.GrantOpGrant, user: string(user), grant: g}
		if remove {
			change.op = storage.GrantOpUngrant
		}
		if err := checkLastAdmin(tx, b.engine.Load(), b.pathOf(string(b.tree.Root())), change, now); err != nil {
			return err
		}
		_, err = commitChange(tx, ev, change)
		return err
	})
	if err := adminErr(err, user); err != nil {
		return nil, b.refused(ctx, op, ev, err)
	}
	return out, nil
}

// adminErr turns a store error of an administrative change into the
// broker's.
func adminErr(err error, user UserID) error {
	var pe *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, storage.ErrNotFound):
		return errorf(NotFound, nil, "no user %s", user)
	case errors.Is(err, storage.ErrConflict):
		return errorf(Conflict, err, "the change clashes with what is stored: look again with `censusvault user show %s`", user)
	default:
		return errorf(Unavailable, err, "failed to store the change")
	}
}

// checkLastAdmin refuses a change after which nobody could administer
// the vault: no user, unrevoked and unexpired, whose grants allow
// admin.manage at the root. change is applied to a copy of the grants
// (revoke: a grant op of "" for user revokes the user). now is the
// broker's clock, which decides who has expired.
func checkLastAdmin(tx storage.ReadTx, eng *policy.Engine, rootPath []string, change policyChange, now time.Time) error {
	switch change.op {
	case storage.GrantOpGrant:
		if !change.grant.Deny || change.grant.Role != policy.Admin {
			return nil // adding an allow, or denying another role, leaves every admin
		}
	case storage.GrantOpUngrant:
		if change.grant.Role != policy.Admin || change.grant.Deny {
			return nil
		}
	case "":
		u, err := tx.User(change.user)
		if err != nil {
			return err
		}
		admin := false
		for _, g := range u.Grants {
			admin = admin || (g.Role == string(policy.Admin) && !g.Deny)
		}
		if !admin {
			return nil
		}
	default:
		return nil
	}
	admins := func(apply bool) (int, error) {
		n := 0
		byUser := map[string][]policy.Grant{}
		if err := tx.Grants(func(user string, g storage.Grant) error {
			byUser[user] = append(byUser[user], policyGrant(g))
			return nil
		}); err != nil {
			return 0, err
		}
		if apply {
			switch change.op {
			case storage.GrantOpGrant:
				byUser[change.user] = append(byUser[change.user], change.grant)
			case storage.GrantOpUngrant:
				gs := byUser[change.user]
				for i, g := range gs {
					if g == change.grant {
						byUser[change.user] = append(gs[:i:i], gs[i+1:]...)
						break
					}
				}
			case "":
				delete(byUser, change.user)
			}
		}
		for user, gs := range byUser {
			holds := false
			for _, g := range gs {
				holds = holds || g.Role == policy.Admin
			}
			if !holds {
				continue
			}
			u, err := tx.User(user)
			if err != nil {
				return 0, err
			}
			if !u.RevokedAt.IsZero() || (!u.ExpiresAt.IsZero() && !now.Before(u.ExpiresAt)) {
				continue
			}
			d, err := eng.Allow(context.Background(), policy.Subject{User: user, Grants: gs}, policy.Administer, policy.Resource{Path: rootPath})
			if err != nil {
				return 0, err
			}
			if d.Allow {
				n++
			}
		}
		return n, nil
	}
	before, err := admins(false)
	if err != nil || before == 0 {
		return err // no administrator now: nothing to protect
	}
	after, err := admins(true)
	if err != nil {
		return err
	}
	if after == 0 {
		return &Error{Kind: Conflict, Code: "last_admin", Msg: "this would leave nobody able to administer the vault: add another admin first"}
	}
	return nil
}

// RevokeAs ends a user's token now, as op (the API's DELETE of a user).
// The last admin cannot be revoked.
func (b *Broker) RevokeAs(ctx context.Context, op Operator, user UserID) error {
	ev, err := b.authorizeAdmin(ctx, op, "user.revoke", []string{"user:" + string(user)})
	if err != nil {
		return err
	}
	now := b.now().UTC()
	ev.Time = now
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		if err := checkLastAdmin(tx, b.engine.Load(), b.pathOf(string(b.tree.Root())), policyChange{user: string(user)}, now); err != nil {
			return err
		}
		if err := tx.RevokeUser(string(user), now); err != nil {
			return err
		}
		_, err := appendEvent(tx, ev)
		return err
	})
	return b.refused(ctx, op, ev, adminErr(err, user))
}

// Reissue gives a user a new token, age-encrypted to recipient (a CSV
// like ImportUsers'), and ends the old one at once. The new token
// expires after the lifetime of the user's first grant's role. A revoked
// user stays revoked: add them under a new name.
func (b *Broker) Reissue(ctx context.Context, op Operator, user UserID, recipient string) ([]byte, error) {
	ev, err := b.authorizeAdmin(ctx, op, "user.reissue", []string{"user:" + string(user)})
	if err != nil {
		return nil, err
	}
	var own string
	if err := b.store.View(ctx, func(tx storage.ReadTx) error {
		u, err := tx.User(string(user))
		if err == nil {
			own = u.Recipient
		}
		return nil
	}); err != nil {
		return nil, errorf(Unavailable, err, "failed to read the user")
	}
	recipient, err = b.tokenRecipientFor(ctx, op, recipient, own)
	if err != nil {
		return nil, b.refused(ctx, op, ev, err)
	}
	tok, err := crypto.NewToken()
	if err != nil {
		return nil, errorf(Internal, err, "failed to make a token")
	}
	now := b.now().UTC()
	ev.Time = now
	var exp time.Time
	var role policy.Role
	var area string
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		u, err := tx.User(string(user))
		if err != nil {
			return err
		}
		if !u.RevokedAt.IsZero() {
			return errorf(Conflict, nil, "user %s was revoked; names are never reused: add the person under a new name", user)
		}
		lifetimes, err := tokenLifetimes(tx)
		if err != nil {
			return err
		}
		role, area = policy.Enumerator, string(b.tree.Root())
		var pending []storage.GrantProposal
		if len(u.Grants) == 0 {
			// A user whose first grant waits for an approver.
			if err := tx.GrantProposals(func(p storage.GrantProposal) (bool, error) {
				if p.User == u.Name && p.Kind == storage.GrantOpGrant {
					pending = append(pending, p)
				}
				return true, nil
			}); err != nil {
				return err
			}
		}
		switch {
		case len(u.Grants) > 0:
			role, area = policy.Role(u.Grants[0].Role), u.Grants[0].Area
		case len(pending) > 0:
			role, area = policy.Role(pending[0].Grant.Role), pending[0].Grant.Area
		}
		exp = now.Add(lifetimes[role])
		if err := tx.ReplaceToken(string(user), tok.Digest().Hex(), exp); err != nil {
			return err
		}
		ev.Reason = "new token; the old one no longer works; expires " + exp.Format(time.RFC3339)
		_, err = appendEvent(tx, ev)
		return err
	})
	if err := adminErr(err, user); err != nil {
		return nil, b.refused(ctx, op, ev, err)
	}
	var out bytes.Buffer
	w := csv.NewWriter(&out)
	_ = w.Write([]string{"user", "token", "role", "area", "expires"})
	_ = w.Write([]string{string(user), tok.Reveal(), string(role), area, exp.Format(time.RFC3339)})
	w.Flush()
	sealed, err := crypto.EncryptTo(recipient, out.Bytes())
	clear(out.Bytes())
	if err != nil {
		return nil, errorf(Internal, err, "the token was replaced but could not be encrypted: reissue it again")
	}
	return sealed, nil
}

// Proposal is a change waiting for (or confirmed by) an approver.
type Proposal struct {
	Seq         int64
	Kind        string // grant, ungrant, policy
	User        string
	Grant       policy.Grant
	PolicyHash  string // policy: the proposed role policy's engine hash
	ProposedBy  string
	ProposedAt  time.Time
	ConfirmedBy string
	ConfirmedAt time.Time
	Expired     bool
	// Widens (a role policy) lists the roles that would reveal data
	// under it and do not now: the approver gives data to every holder.
	Widens []string
}

// Proposals lists the proposals, pending first then confirmed, newest
// last (admin or approver). Audited over the API.
func (b *Broker) Proposals(ctx context.Context, op Operator) ([]Proposal, error) {
	var ev *audit.Event
	// visible: everything for the host and administrators; for an
	// approver only what it could confirm — grants at areas in its
	// grant.confirm scope, role policies if that covers the whole tree.
	visible := func(storage.GrantProposal) bool { return true }
	if !op.host() {
		// Administrators and approvers see proposals; an approver needs
		// them to confirm.
		if d := b.anyGrantAllows(ctx, op.caller, policy.ConfirmGrant); d.Allow && !b.administers(ctx, op.caller) {
			ev = b.event(op.caller, "grant.proposals", d)
			ev.Area, ev.Outcome = string(b.tree.Root()), "ok"
			sc, err := b.scope(op.caller, policy.ConfirmGrant, "")
			if err != nil {
				return nil, err
			}
			visible = func(p storage.GrantProposal) bool {
				path := b.pathOf(p.Grant.Area)
				if p.Kind == storage.GrantOpPolicy || path == nil {
					path = b.pathOf(string(b.tree.Root()))
				}
				d, err := sc.Subtree(path, b.pathOf)
				return err == nil && d.Allow
			}
		} else {
			var err error
			if ev, err = b.authorizeAdmin(ctx, op, "grant.proposals", nil); err != nil {
				return nil, err
			}
		}
	}
	var out []Proposal
	now := b.now()
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		return tx.GrantProposals(func(p storage.GrantProposal) (bool, error) {
			if visible(p) {
				x := proposalOf(p, now)
				if p.Kind == storage.GrantOpPolicy {
					x.Widens = widens(b.engine.Load(), p.Model, p.Policy)
				}
				out = append(out, x)
			}
			return true, nil
		})
	})
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read the proposals")
	}
	if ev != nil {
		if err := b.logAllowed(ctx, ev); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// proposalOf is a stored proposal as Proposals lists it.
func proposalOf(p storage.GrantProposal, now time.Time) Proposal {
	x := Proposal{Seq: p.Seq, Kind: string(p.Kind), User: p.User, Grant: policyGrant(p.Grant), ProposedBy: p.ProposedBy,
		ProposedAt: p.ProposedAt, ConfirmedBy: p.ConfirmedBy, ConfirmedAt: p.ConfirmedAt,
		Expired: p.ConfirmedBy == "" && now.Sub(p.ProposedAt) > proposalLife}
	if p.Kind == storage.GrantOpPolicy {
		if eng, err := policy.New(policy.Options{Model: p.Model, Policy: p.Policy}); err == nil {
			x.PolicyHash = eng.Hash()
		}
	}
	return x
}

// ConfirmGrant confirms, as an approver, a change someone else proposed:
// it then holds. Refused to the proposer and to the user the grant is
// for (403 four_eyes), twice (409 proposal_confirmed), after a week (409
// proposal_expired), for a revoked user (409).
func (b *Broker) ConfirmGrant(ctx context.Context, c *Caller, seq int64) (*Proposal, error) {
	var p *storage.GrantProposal
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		p, err = tx.GrantProposal(seq)
		return err
	})
	at := b.tree.Root()
	if err == nil && p.Kind != storage.GrantOpPolicy && b.pathOf(p.Grant.Area) != nil {
		at = AreaCode(p.Grant.Area)
	}
	ev, aerr := b.authorizeAt(ctx, APIOperator(c), policy.ConfirmGrant, "grant.confirm", at, []string{fmt.Sprintf("grant_proposal:%d", seq)})
	if aerr != nil {
		return nil, aerr
	}
	refusal := func(k Kind, code, msg string) (*Proposal, error) {
		ev.Outcome, ev.Reason = "refused", msg
		return nil, b.refuse(ctx, ev, &Error{Kind: k, Code: code, Msg: msg})
	}
	now := b.now().UTC()
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return refusal(NotFound, "no_such_proposal", fmt.Sprintf("no proposal %d (`censusvault policy proposals` lists them)", seq))
	case err != nil:
		return nil, errorf(Unavailable, err, "failed to read the proposal")
	case p.ConfirmedBy != "":
		return refusal(Conflict, "proposal_confirmed", fmt.Sprintf("proposal %d was confirmed by %s already", seq, p.ConfirmedBy))
	case p.ProposedBy == c.actor():
		return refusal(Permission, "four_eyes", "you proposed this change: another person, an approver, must confirm it")
	case p.User == string(c.User):
		return refusal(Permission, "four_eyes", "this grant is for you: another approver must confirm it")
	case b.administers(ctx, c):
		return refusal(Permission, "four_eyes", "you may administer the vault: an administrator is never the second pair of eyes on what administrators propose")
	case now.Sub(p.ProposedAt) > proposalLife:
		return refusal(Conflict, "proposal_expired", fmt.Sprintf("proposal %d is over %s old: propose it again", seq, proposalLife))
	}
	change := policyChange{op: p.Kind, user: p.User, grant: policyGrant(p.Grant), model: p.Model, csv: p.Policy}
	if p.Kind == storage.GrantOpPolicy {
		ev.Resources = append(ev.Resources, "policy:"+shortHash(p.Model, p.Policy))
	} else {
		kind := "grant"
		if p.Grant.Deny {
			kind = "deny"
		}
		ev.Resources = append(ev.Resources, "user:"+p.User, kind+":"+grantText(policyGrant(p.Grant)))
	}
	ev.Time = now
	ev.Reason = fmt.Sprintf("confirmed %s proposed by %s", p.Kind, p.ProposedBy)
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		// Again inside the transaction (writers are serialized): another
		// confirmation may have landed since the read above.
		again, err := tx.GrantProposal(seq)
		if err != nil {
			return err
		}
		if again.ConfirmedBy != "" {
			return &Error{Kind: Conflict, Code: "proposal_confirmed", Msg: fmt.Sprintf("proposal %d was confirmed by %s already", seq, again.ConfirmedBy)}
		}
		if p.Kind != storage.GrantOpPolicy {
			u, err := tx.User(p.User)
			if err != nil {
				return err
			}
			if !u.RevokedAt.IsZero() {
				return &Error{Kind: Conflict, Code: "user_revoked", Msg: fmt.Sprintf("user %s was revoked since the proposal", p.User)}
			}
			if p.Kind == storage.GrantOpGrant && !p.Grant.Deny {
				if err := checkGrantProject(tx, p.Grant.Project); err != nil {
					return err
				}
			}
		}
		rec, err := commitChange(tx, ev, change)
		if err != nil {
			return err
		}
		return tx.ConfirmGrant(seq, c.actor(), now, rec.Index)
	})
	if err := adminErr(err, UserID(p.User)); err != nil {
		// Logged with the broker's message, never a store error's text
		// (which may quote SQL).
		return nil, b.refused(ctx, APIOperator(c), ev, err)
	}
	if p.Kind == storage.GrantOpPolicy {
		if err := b.syncEngine(ctx, storedEngineHash(ctx, b.store)); err != nil {
			return nil, err
		}
	}
	out := proposalOf(*p, now)
	out.ConfirmedBy, out.ConfirmedAt, out.Expired = c.actor(), now, false
	return &out, nil
}

// administers reports whether c may administer the vault (admin.manage
// at the root under the role policy c's request holds).
// A caller the policy cannot decide for (malformed grants) counts as
// one who may: the four-eyes checks that ask fail closed, as
// ApproveExtract's does.
func (b *Broker) administers(ctx context.Context, c *Caller) bool {
	d, err := b.engineFor(c).Allow(ctx, c.subject(), policy.Administer, policy.Resource{Path: b.pathOf(string(b.tree.Root()))})
	return err != nil || d.Allow
}

// shortHash names a role policy in audit resources.
func shortHash(model, csv string) string {
	eng, err := policy.New(policy.Options{Model: model, Policy: csv})
	if err != nil {
		return "invalid"
	}
	return eng.Hash()[:16]
}

// ProposePolicy proposes a new role policy (the rules text; the model
// stays). Refused if it does not load, equals the one in force, or lets
// admin, auditor or approver touch data (400 trust_role_data). Over the
// API it waits for an approver; the host operator's holds at once.
func (b *Broker) ProposePolicy(ctx context.Context, op Operator, rules string) (*GrantChange, error) {
	ev, err := b.authorizeAdmin(ctx, op, "policy.load", nil)
	if err != nil {
		return nil, err
	}
	now := b.now().UTC()
	ev.Time = now
	out := &GrantChange{Active: op.host()}
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		cur, model, _, err := storedEngine(tx)
		if err != nil {
			return err
		}
		eng, err := policy.New(policy.Options{Model: model, Policy: rules})
		if err != nil {
			return errorf(Invalid, nil, "%v", err)
		}
		if v := eng.TrustViolations(); len(v) > 0 {
			return &Error{Kind: Invalid, Code: "trust_role_data", Msg: fmt.Sprintf("the policy lets trust roles touch data (%s): admins, auditors and approvers never see data", joinMax(v, 5))}
		}
		if eng.Hash() == cur.Hash() {
			return &Error{Kind: Conflict, Code: "no_change", Msg: "the role policy in force is this one already"}
		}
		ev.Resources = []string{"policy:" + eng.Hash()[:16]}
		ev.Reason = fmt.Sprintf("role policy %s replaces %s", eng.Hash()[:16], cur.Hash()[:16])
		if op.host() {
			_, err := commitChange(tx, ev, policyChange{op: storage.GrantOpPolicy, model: model, csv: rules})
			return err
		}
		ev.Action = "policy.propose"
		rec, err := appendEvent(tx, ev)
		if err != nil {
			return err
		}
		p := &storage.GrantProposal{Kind: storage.GrantOpPolicy, Model: model, Policy: rules, Reason: "role policy",
			ProposedBy: ev.Actor, ProposedAt: now, ProposalAudit: rec.Index}
		if err := tx.ProposeGrant(p); err != nil {
			return err
		}
		out.Proposal = p.Seq
		return nil
	})
	if err := adminErr(err, ""); err != nil {
		return nil, b.refused(ctx, op, ev, err)
	}
	if out.Active {
		if err := b.syncEngine(ctx, storedEngineHash(ctx, b.store)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func joinMax(v []string, n int) string {
	if len(v) <= n {
		return fmt.Sprint(v)
	}
	return fmt.Sprint(v[:n]) + fmt.Sprintf(" and %d more", len(v)-n)
}

// PolicyInfo is the policy in force, as `policy show` and export show it.
type PolicyInfo struct {
	Model      string
	Rules      string // the role policy text, as loaded
	EngineHash string // of model and rules
	PolicyHash string // of those and every grant: what audit events carry
	Users      int
	Grants     []UserGrant
	// Pending are the proposals waiting for an approver (not expired).
	Pending []Proposal
}

// UserGrant is one grant of one user.
type UserGrant struct {
	User  string
	Grant policy.Grant
}

// Policy returns the policy in force and the proposals waiting for an
// approver (admin or auditor over the API, audited).
func (b *Broker) Policy(ctx context.Context, op Operator) (*PolicyInfo, error) {
	var ev *audit.Event
	if !op.host() {
		sc, err := b.scope(op.caller, policy.ExplainPolicy, "")
		if err != nil {
			return nil, err
		}
		d, err := sc.Subtree(b.pathOf(string(b.tree.Root())), b.pathOf)
		if err != nil {
			return nil, errorf(Internal, err, "policy failed")
		}
		ev = b.event(op.caller, "policy.read", d)
		ev.Area = string(b.tree.Root())
		if !d.Allow {
			ev.Decision, ev.Outcome = "deny", "denied"
			return nil, b.refuse(ctx, ev, errorf(Permission, nil, "not permitted: policy.explain over the whole tree is needed to read the policy"))
		}
		ev.Outcome = "ok"
	}
	info := &PolicyInfo{}
	users := map[string]bool{}
	now := b.now()
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		eng, model, rules, err := storedEngine(tx)
		if err != nil {
			return err
		}
		info.Model, info.Rules, info.EngineHash = model, rules, eng.Hash()
		if info.PolicyHash, err = tx.Meta(metaPolicyHash); err != nil {
			return err
		}
		if err := tx.GrantProposals(func(p storage.GrantProposal) (bool, error) {
			if x := proposalOf(p, now); x.ConfirmedBy == "" && !x.Expired {
				info.Pending = append(info.Pending, x)
			}
			return true, nil
		}); err != nil {
			return err
		}
		return tx.Grants(func(user string, g storage.Grant) error {
			users[user] = true
			info.Grants = append(info.Grants, UserGrant{User: user, Grant: policyGrant(g)})
			return nil
		})
	})
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read the policy")
	}
	info.Users = len(users)
	if ev != nil {
		if err := b.logAllowed(ctx, ev); err != nil {
			return nil, err
		}
	}
	return info, nil
}

// ListUsers lists users by name after after, at most limit (1…1000,
// default 100), with their grants and pending proposals: never a token.
// Audited over the API.
func (b *Broker) ListUsers(ctx context.Context, op Operator, after string, limit int) ([]UserInfo, string, error) {
	ev, err := b.authorizeAdmin(ctx, op, "user.list", nil)
	if err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	var out []UserInfo
	next := ""
	err = b.store.View(ctx, func(tx storage.ReadTx) error {
		pending := map[string][]policy.Grant{}
		now := b.now()
		if err := tx.GrantProposals(func(p storage.GrantProposal) (bool, error) {
			if p.ConfirmedBy == "" && p.Kind == storage.GrantOpGrant && now.Sub(p.ProposedAt) <= proposalLife {
				pending[p.User] = append(pending[p.User], policyGrant(p.Grant))
			}
			return true, nil
		}); err != nil {
			return err
		}
		return tx.Users(after, limit+1, func(u storage.User) (bool, error) {
			if len(out) == limit {
				next = string(out[len(out)-1].Name)
				return false, nil
			}
			info := UserInfo{Name: UserID(u.Name), Recipient: u.Recipient, Expires: u.ExpiresAt, Revoked: u.RevokedAt, Pending: pending[u.Name]}
			for _, g := range u.Grants {
				info.Grants = append(info.Grants, policyGrant(g))
			}
			out = append(out, info)
			return true, nil
		})
	})
	if err != nil {
		return nil, "", errorf(Unavailable, err, "failed to list users")
	}
	if !op.host() {
		if err := b.logAllowed(ctx, ev); err != nil {
			return nil, "", err
		}
	}
	return out, next, nil
}

// ErrorCodeOf is the stable machine code of a broker error, Internal's
// for any other error.
func ErrorCodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.ErrorCode()
	}
	return Internal.Code()
}
