package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// Explain answers why the policy allows or refuses a user an action at
// an area: now, or at a past audit event under the policy as it stood
// then, rebuilt from the grant log (policylog.go) and checked against the
// hash the event carries. Admins and auditors ask (policy.explain at the
// area); every question is audited.

// Explanation is the answer.
type Explanation struct {
	User    string
	Action  string // the policy action evaluated
	Area    string
	Project string
	Allow   bool
	// Rule is the grant and role-policy rule that decided, e.g.
	// "grant team_leader@18070; p, enumerator, submission.deposit,
	// allow", or why nothing allowed.
	Rule  string
	Roles []string // the roles of the user's grants on the area's path
	// Grants are every grant the user held under the policy evaluated.
	Grants     []policy.Grant
	PolicyHash string // the hash of the policy evaluated

	// For a past event (Event >= 0):
	Event    int64
	Recorded string // the decision the event recorded: allow, deny or ""
	// HashMatches: the policy rebuilt from the grant log has the hash
	// the event carries. When false the answer is not trustworthy: the
	// log or the event was tampered with, or the event predates the log.
	HashMatches bool
	// Agrees: the re-evaluated decision is the recorded one.
	Agrees bool
	Note   string
}

// eventActions maps the audit actions that are not policy actions to the
// policy action that decided them.
var eventActions = map[string]policy.Action{
	"audit.export": policy.ReadAudit,
	"table.replay": policy.RequestTable,
}

// Explain evaluates the policy in force for user, action and area.
func (b *Broker) Explain(ctx context.Context, op Operator, user UserID, action policy.Action, area AreaCode, project string) (*Explanation, error) {
	if _, err := policy.ParseAction(string(action)); err != nil {
		return nil, errorf(Invalid, nil, "%v", err)
	}
	path := b.pathOf(string(area))
	if path == nil {
		return nil, errorf(Invalid, nil, "no area %q", clip(string(area)))
	}
	ev, err := b.authorizeExplain(ctx, op, area, []string{"user:" + string(user)})
	if err != nil {
		return nil, err
	}
	var u *storage.User
	var hash string
	err = b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		if u, err = tx.User(string(user)); err != nil {
			return err
		}
		hash, err = tx.Meta(metaPolicyHash)
		return err
	})
	whole := b.explainsWholeTree(ctx, op)
	switch {
	case errors.Is(err, storage.ErrNotFound) && whole:
		return nil, b.refused(ctx, op, ev, errorf(NotFound, nil, "no user %s", user))
	case errors.Is(err, storage.ErrNotFound):
		// Answered like a user with no grant on the area's path, so that
		// an auditor of one province cannot tell who exists elsewhere.
		u, err = &storage.User{Name: string(user)}, nil
	}
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read the user")
	}
	x := &Explanation{User: string(user), Action: string(action), Area: string(area), Project: project, Event: -1, PolicyHash: hash}
	for _, g := range u.Grants {
		x.Grants = append(x.Grants, policyGrant(g))
	}
	if err := decide(ctx, b.engineFor(op.caller), x, path); err != nil {
		return nil, err
	}
	onPath := len(x.Grants) > 0
	if !whole {
		x.Grants, onPath = grantsOnPath(x.Grants, path)
	}
	switch {
	case !onPath:
		// Nothing said of a user who holds nothing here.
	case !u.RevokedAt.IsZero():
		x.Note = "the user's token is revoked: whatever the policy says, requests fail authentication"
	case !u.ExpiresAt.IsZero() && !b.now().Before(u.ExpiresAt):
		x.Note = "the user's token has expired: whatever the policy says, requests fail authentication"
	}
	ev.Reason = fmt.Sprintf("explain %s at %s: %s", action, area, map[bool]string{true: "allow", false: "deny"}[x.Allow])
	if err := b.logAllowed(ctx, ev); err != nil {
		return nil, err
	}
	return x, nil
}

// ExplainEvent re-evaluates the decision of audit event index under the
// policy in force when it was made.
func (b *Broker) ExplainEvent(ctx context.Context, op Operator, index int64) (*Explanation, error) {
	if index < 0 {
		return nil, errorf(Invalid, nil, "event index %d: give an index ≥ 0", index)
	}
	var e *audit.Event
	var pol *policyAt
	var rebuildErr error
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		if err := tx.AuditRecords(index, 1, func(r storage.AuditRecord) (bool, error) {
			if r.Index != index {
				return false, nil
			}
			if r.Pruned {
				return false, errorf(Gone, nil, "the body of event %d was pruned after its retention; only its hashes remain", index)
			}
			var err error
			e, err = audit.Decode(r.Event)
			return false, err
		}); err != nil {
			return err
		}
		if e == nil {
			return nil
		}
		pol, rebuildErr = rebuildPolicy(tx, index)
		if errors.Is(rebuildErr, errBeforeLog) {
			return nil
		}
		return rebuildErr
	})
	var pe *Error
	switch {
	case errors.As(err, &pe) && pe.Kind == Gone:
	case errors.As(err, &pe):
		return nil, pe
	case err != nil:
		return nil, errorf(Unavailable, err, "failed to read the audit log")
	}
	if e == nil {
		// No such event, or a pruned one: told only to whoever may ask
		// at the root. Anyone else would learn the log's live size,
		// which no answer reveals.
		ev, aerr := b.authorizeExplain(ctx, op, b.tree.Root(), []string{fmt.Sprintf("audit_event:%d", index)})
		if aerr != nil {
			return nil, eventRefusal(aerr, index)
		}
		if err == nil {
			err = errorf(NotFound, nil, "no audit event %d", index)
		}
		return nil, b.refused(ctx, op, ev, err)
	}
	area := AreaCode(e.Area)
	if b.pathOf(e.Area) == nil {
		area = b.tree.Root()
	}
	ev, err := b.authorizeExplain(ctx, op, area, []string{fmt.Sprintf("audit_event:%d", index)})
	if err != nil {
		return nil, eventRefusal(err, index)
	}
	x := &Explanation{Area: e.Area, Event: index, Recorded: e.Decision, PolicyHash: e.PolicyHash}
	x.User, _ = strings.CutPrefix(e.Actor, "user:")
	for _, r := range e.Resources {
		if p, ok := strings.CutPrefix(r, "project:"); ok {
			x.Project = p
		}
	}
	action, err := policy.ParseAction(e.Action)
	if mapped, ok := eventActions[e.Action]; err != nil && ok {
		action, err = mapped, nil
	}
	x.Action = string(action)
	finish := func() (*Explanation, error) {
		ev.Reason = fmt.Sprintf("explain event %d: hash %s, %s", index,
			map[bool]string{true: "matches", false: "differs"}[x.HashMatches], map[bool]string{true: "agrees", false: "does not agree"}[x.Agrees])
		if err := b.logAllowed(ctx, ev); err != nil {
			return nil, err
		}
		return x, nil
	}
	switch {
	case errors.Is(rebuildErr, errBeforeLog):
		x.Note = fmt.Sprintf("event %d is older than the grant log (it starts at event %d): the policy then cannot be rebuilt", index, pol.Start)
		return finish()
	case !strings.HasPrefix(e.Actor, "user:"):
		x.Note = fmt.Sprintf("event %d was made by %s, not a user the policy decides for (rule: %s)", index, e.Actor, e.Rule)
		x.HashMatches = pol.Hash == e.PolicyHash
		return finish()
	case err != nil:
		x.Action = e.Action
		x.Note = fmt.Sprintf("%s is decided by the broker's own rule, not one policy action (recorded rule: %s)", e.Action, e.Rule)
		x.HashMatches = pol.Hash == e.PolicyHash
		return finish()
	}
	x.HashMatches = pol.Hash == e.PolicyHash
	x.PolicyHash = pol.Hash
	eng, err := policy.New(policy.Options{Model: pol.Model, Policy: pol.Policy})
	if err != nil {
		return nil, errorf(Internal, err, "the grant log's role policy does not load")
	}
	x.Grants = pol.Grants[x.User]
	path := b.pathOf(e.Area)
	if path == nil {
		x.Note = fmt.Sprintf("area %q of the event is not in the area tree", clip(e.Area))
		return finish()
	}
	if err := decide(ctx, eng, x, path); err != nil {
		return nil, err
	}
	if !b.explainsWholeTree(ctx, op) {
		x.Grants, _ = grantsOnPath(x.Grants, path)
	}
	x.Agrees = (x.Recorded == "allow") == x.Allow
	if !x.HashMatches {
		x.Note = "the policy rebuilt from the grant log does not have the hash the event carries: the grant log or the event is not what was written — verify the audit log (`censusvault audit verify`)"
	}
	return finish()
}

// eventRefusal is the refusal to explain event index, naming neither the
// area the event is about nor whether it exists: one answer for every
// event a caller may not explain.
func eventRefusal(err error, index int64) error {
	if KindOf(err) != Permission {
		return err
	}
	return errorf(Permission, nil, "not permitted to explain audit event %d (an admin, or an auditor of the area the event is about, may)", index)
}

// explainsWholeTree reports whether op may explain decisions anywhere
// (the host, an admin, a national auditor): only such a caller is told
// of grants off the area's path and of users who do not exist.
func (b *Broker) explainsWholeTree(ctx context.Context, op Operator) bool {
	if op.host() {
		return true
	}
	sc, err := b.scope(op.caller, policy.ExplainPolicy, "")
	if err != nil {
		return false
	}
	d, err := sc.Subtree(b.pathOf(string(b.tree.Root())), b.pathOf)
	return err == nil && d.Allow
}

// grantsOnPath keeps the grants at the areas of path (root first, the
// area last): the ones that decide there. An auditor of one province is
// not shown what a user holds in another.
func grantsOnPath(gs []policy.Grant, path []string) ([]policy.Grant, bool) {
	out := []policy.Grant{}
	for _, g := range gs {
		for _, a := range path {
			if g.Area == a {
				out = append(out, g)
				break
			}
		}
	}
	return out, len(out) > 0
}

// decide fills x's decision: for opening a submission (logged under the
// umbrella submission.read) the three field classes, allowed if any is.
func decide(ctx context.Context, eng *policy.Engine, x *Explanation, path []string) error {
	s := policy.Subject{User: x.User, Grants: x.Grants}
	r := policy.Resource{Path: path, Project: x.Project}
	actions := []policy.Action{policy.Action(x.Action)}
	if x.Action == string(policy.ReadSubmission) {
		actions = []policy.Action{policy.ReadIdentifying, policy.ReadAnalytic, policy.ReadOperational}
	}
	var rules []string
	for _, a := range actions {
		d, err := eng.Allow(ctx, s, a, r)
		if err != nil {
			return errorf(Invalid, nil, "%v", err)
		}
		x.Allow = x.Allow || d.Allow
		x.Roles = d.Roles
		rules = append(rules, d.Rule)
	}
	x.Rule = strings.Join(rules, " | ")
	if x.Rule == "" {
		x.Rule = "no grant of the user covers the area"
	}
	return nil
}

// authorizeExplain checks policy.explain at area.
func (b *Broker) authorizeExplain(ctx context.Context, op Operator, area AreaCode, resources []string) (*audit.Event, error) {
	if op.host() {
		return b.authorizeAt(ctx, op, policy.ExplainPolicy, string(policy.ExplainPolicy), area, resources)
	}
	c := op.caller
	d, err := b.engineFor(c).Allow(ctx, c.subject(), policy.ExplainPolicy, policy.Resource{Path: b.pathOf(string(area))})
	if err != nil {
		return nil, errorf(Internal, err, "policy failed")
	}
	ev := b.event(c, string(policy.ExplainPolicy), d)
	ev.Area, ev.Resources = string(area), resources
	if !d.Allow {
		ev.Decision, ev.Outcome = "deny", "denied"
		return nil, b.refuse(ctx, ev, errorf(Permission, nil, "not permitted to explain decisions at %s", area))
	}
	ev.Outcome = "ok"
	return ev, nil
}

// logAllowed appends the event of an allowed read in its own
// transaction: nothing is answered unless it is logged.
func (b *Broker) logAllowed(ctx context.Context, ev *audit.Event) error {
	err := b.store.Update(ctx, func(tx storage.Tx) error {
		_, err := appendEvent(tx, ev)
		return err
	})
	if err != nil {
		return errorf(Unavailable, err, "the audit log is unavailable; nothing was answered")
	}
	return nil
}
