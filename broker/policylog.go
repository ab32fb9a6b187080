package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// The policy in force and its history (issue 13).
//
// The policy in force is the role policy (Casbin model and rules, stored
// in meta) and every user's grants (stored with the users). Its hash,
// policy.PolicyHash of the two, is stamped on every audit event. Every
// change of either is also an entry of the append-only grant log, made in
// the transaction that changes it and carrying the audit index of the
// event that records the change and the hash after it. Replaying the log
// up to an event therefore rebuilds the policy that event was decided
// under, and the rebuilt hash must equal the one the event carries
// (Explain checks it).
//
// Invariants:
//   - One transaction changes grants or role policy, recomputes the hash,
//     appends the audit event and appends the grant log entries: all or
//     nothing.
//   - Every request holds one engine for its whole life (Caller.eng, taken
//     at Authenticate), and Authenticate compares the stored engine hash
//     with it: a role policy confirmed through one instance holds for the
//     next request on every instance, as grants (read per request) do.
//   - The role policy is pinned: a vault made with the built-in default
//     stores its text, so a new binary with a different default changes
//     nothing until an administrator proposes it and an approver confirms.

// engineFor is the role policy c's request is decided under: the engine
// taken when c was authenticated, or the one in force for a caller made
// otherwise (tests, the CLI).
func (b *Broker) engineFor(c *Caller) *policy.Engine {
	if c != nil && c.eng != nil {
		return c.eng
	}
	return b.engine.Load()
}

// syncEngine makes the engine in force the stored one when hash (read
// from meta policy_engine in the caller's transaction) differs from it.
func (b *Broker) syncEngine(ctx context.Context, hash string) error {
	if hash == "" || hash == b.engine.Load().Hash() {
		return nil
	}
	var model, csv string
	if err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		if model, err = tx.Meta(metaPolicyModel); err != nil {
			return err
		}
		csv, err = tx.Meta(metaPolicyCSV)
		return err
	}); err != nil {
		return errorf(Unavailable, err, "failed to read the role policy")
	}
	eng, err := policy.New(policy.Options{Model: model, Policy: csv})
	if err != nil {
		return errorf(Internal, err, "the stored role policy does not load")
	}
	b.engine.Store(eng)
	return nil
}

// storedEngine is the role policy stored in tx.
func storedEngine(tx storage.ReadTx) (*policy.Engine, string, string, error) {
	model, err := tx.Meta(metaPolicyModel)
	if err != nil {
		return nil, "", "", err
	}
	csv, err := tx.Meta(metaPolicyCSV)
	if err != nil {
		return nil, "", "", err
	}
	eng, err := policy.New(policy.Options{Model: model, Policy: csv})
	if err != nil {
		return nil, "", "", fmt.Errorf("stored role policy: %w", err)
	}
	return eng, model, csv, nil
}

// updatePolicyHash recomputes the digest of all grants and the policy hash
// that every later audit event carries, under the role policy stored in
// tx (not the one this process holds: another instance may have changed
// it), and returns the new hash.
func updatePolicyHash(tx storage.Tx) (string, error) {
	engHash, err := tx.Meta(metaPolicyEngine)
	if errors.Is(err, storage.ErrNotFound) {
		// A vault whose grant log has not started yet (ensureGrantLog).
		eng, _, _, err2 := storedEngine(tx)
		if err2 != nil {
			return "", err2
		}
		engHash, err = eng.Hash(), nil
	}
	if err != nil {
		return "", err
	}
	d := newGrantsDigest()
	if err := tx.Grants(func(user string, g storage.Grant) error {
		d.add(policy.GrantLine(user, policyGrant(g)))
		return nil
	}); err != nil {
		return "", err
	}
	digest := d.sum()
	if err := tx.PutMeta(metaGrantsDigest, digest); err != nil {
		return "", err
	}
	h := policy.PolicyHash(engHash, digest)
	return h, tx.PutMeta(metaPolicyHash, h)
}

func policyGrant(g storage.Grant) policy.Grant {
	return policy.Grant{Role: policy.Role(g.Role), Area: g.Area, Deny: g.Deny, Project: g.Project}
}

func storageGrant(g policy.Grant) storage.Grant {
	return storage.Grant{Role: string(g.Role), Area: g.Area, Deny: g.Deny, Project: g.Project}
}

// policyChange is one change of grants or role policy, for commitChange.
type policyChange struct {
	op    storage.GrantOp
	user  string
	grant policy.Grant
	// model, csv: the new role policy (op policy, start).
	model, csv string
}

// commitChange applies changes in tx, recomputes the policy hash,
// appends ev (which then carries the new hash) and logs each change in
// the grant log under ev's index. It is the one way grants and role
// policy change.
func commitChange(tx storage.Tx, ev *audit.Event, changes ...policyChange) (storage.AuditRecord, error) {
	for _, c := range changes {
		switch c.op {
		case storage.GrantOpGrant:
			if err := tx.AddGrant(c.user, storageGrant(c.grant)); err != nil {
				return storage.AuditRecord{}, err
			}
		case storage.GrantOpUngrant:
			if err := tx.RemoveGrant(c.user, storageGrant(c.grant)); err != nil {
				return storage.AuditRecord{}, err
			}
		case storage.GrantOpPolicy, storage.GrantOpStart:
			eng, err := policy.New(policy.Options{Model: c.model, Policy: c.csv})
			if err != nil {
				return storage.AuditRecord{}, errorf(Invalid, nil, "%v", err)
			}
			for k, v := range map[string]string{metaPolicyModel: c.model, metaPolicyCSV: c.csv, metaPolicyEngine: eng.Hash()} {
				if err := tx.PutMeta(k, v); err != nil {
					return storage.AuditRecord{}, err
				}
			}
		}
	}
	return logChange(tx, ev, changes...)
}

// logChange recomputes the policy hash after changes already made in tx
// (a user inserted with its grants), appends ev and logs the changes.
func logChange(tx storage.Tx, ev *audit.Event, changes ...policyChange) (storage.AuditRecord, error) {
	hash, err := updatePolicyHash(tx)
	if err != nil {
		return storage.AuditRecord{}, err
	}
	rec, err := appendEvent(tx, ev)
	if err != nil {
		return rec, err
	}
	for _, c := range changes {
		e := &storage.GrantLogEntry{AuditIndex: rec.Index, At: ev.Time, Op: c.op, User: c.user, Grant: storageGrant(c.grant),
			Model: c.model, Policy: c.csv, PolicyHash: hash}
		if err := tx.AppendGrantLog(e); err != nil {
			return rec, fmt.Errorf("grant log: %w", err)
		}
	}
	return rec, nil
}

// ensureGrantLog starts the grant log of a vault made before it existed
// (one event, "policy.log_start", with the role policy and every grant
// held then), and pins the role policy text of a vault that stored the
// built-in default as "": from now on the role policy changes only by an
// explicit, logged change. It does nothing when the log has started.
func ensureGrantLog(ctx context.Context, st storage.Store, now time.Time) error {
	started := func(tx storage.ReadTx) (bool, error) {
		found := false
		err := tx.GrantLog(0, func(storage.GrantLogEntry) (bool, error) {
			found = true
			return false, nil
		})
		return found, err
	}
	var done bool
	if err := st.View(ctx, func(tx storage.ReadTx) error {
		var err error
		done, err = started(tx)
		return err
	}); err != nil || done {
		return err
	}
	return st.Update(ctx, func(tx storage.Tx) error {
		if done, err := started(tx); err != nil || done {
			return err // another instance started it first
		}
		_, model, csv, err := storedEngine(tx)
		if err != nil {
			return err
		}
		if model == "" {
			model = policy.DefaultModel()
		}
		if csv == "" {
			csv = policy.DefaultPolicy()
		}
		changes := []policyChange{{op: storage.GrantOpStart, model: model, csv: csv}}
		if err := tx.Grants(func(user string, g storage.Grant) error {
			changes = append(changes, policyChange{op: storage.GrantOpGrant, user: user, grant: policyGrant(g)})
			return nil
		}); err != nil {
			return err
		}
		root, err := rootArea(tx)
		if err != nil {
			return err
		}
		ev := &audit.Event{Time: now.UTC(), Actor: "vault", Roles: []string{}, Action: "policy.log_start", Area: root,
			Decision: "allow", Rule: "the grant log starts: policy changes from here on can be explained",
			Reason: fmt.Sprintf("%d grants", len(changes)-1), Outcome: "ok"}
		// The grants are in the store already: put the pinned role
		// policy in force, then log all of it.
		if _, err := commitChange(tx, ev, changes[0]); err != nil {
			return err
		}
		// commitChange logged the start entry; log the grants under the
		// same event, with the same hash.
		hash, err := tx.Meta(metaPolicyHash)
		if err != nil {
			return err
		}
		for _, c := range changes[1:] {
			if err := tx.AppendGrantLog(&storage.GrantLogEntry{AuditIndex: ev.Index, At: ev.Time, Op: c.op, User: c.user,
				Grant: storageGrant(c.grant), PolicyHash: hash}); err != nil {
				return fmt.Errorf("grant log: %w", err)
			}
		}
		return nil
	})
}

// grantReplay replays the grant log, entry by entry: the role policy
// and the grants in force after each, and their policy hash. Explain
// rebuilds the past with it and audit verify checks the log with it.
type grantReplay struct {
	model, rules string
	engineHash   string
	grants       map[string][]policy.Grant // by user
	lines        []string                  // policy.GrantLine of every grant, sorted
}

func newGrantReplay() *grantReplay { return &grantReplay{grants: map[string][]policy.Grant{}} }

// apply replays one entry. It refuses one that cannot follow what came
// before — a grant held twice, the removal of one not held, a role
// policy that does not load — which only an altered log holds.
func (r *grantReplay) apply(e storage.GrantLogEntry) error {
	switch e.Op {
	case storage.GrantOpStart, storage.GrantOpPolicy:
		eng, err := policy.New(policy.Options{Model: e.Model, Policy: e.Policy})
		if err != nil {
			return fmt.Errorf("the role policy of grant log entry %d does not load: %v", e.Seq, err)
		}
		r.model, r.rules, r.engineHash = e.Model, e.Policy, eng.Hash()
	case storage.GrantOpGrant, storage.GrantOpUngrant:
		g := policyGrant(e.Grant)
		l := policy.GrantLine(e.User, g)
		i, held := slices.BinarySearch(r.lines, l)
		switch {
		case e.Op == storage.GrantOpGrant && held:
			return fmt.Errorf("grant log entry %d grants %s, which was held already", e.Seq, l)
		case e.Op == storage.GrantOpGrant:
			r.lines = slices.Insert(r.lines, i, l)
			r.grants[e.User] = append(r.grants[e.User], g)
		case !held:
			return fmt.Errorf("grant log entry %d removes %s, which was not held", e.Seq, l)
		default:
			r.lines = slices.Delete(r.lines, i, i+1)
			r.grants[e.User] = slices.DeleteFunc(r.grants[e.User], func(x policy.Grant) bool { return x == g })
		}
	default:
		return fmt.Errorf("grant log entry %d has op %q", e.Seq, e.Op)
	}
	return nil
}

// hash is the policy hash of the replayed state, as updatePolicyHash
// computes it from the store.
func (r *grantReplay) hash() string {
	return policy.PolicyHash(r.engineHash, digestSorted(r.lines))
}

// policyAt is the policy in force at one audit event, rebuilt from the
// grant log.
type policyAt struct {
	Index  int64 // the audit event
	Model  string
	Policy string
	Grants map[string][]policy.Grant // by user
	Hash   string                    // policy.PolicyHash of the rebuilt policy
	Start  int64                     // the audit index where the log starts
}

// errBeforeLog: the event is older than the grant log.
var errBeforeLog = errors.New("before the grant log")

// rebuildPolicy replays the grant log up to and including audit event
// index.
func rebuildPolicy(tx storage.ReadTx, index int64) (*policyAt, error) {
	p := &policyAt{Index: index, Start: -1}
	r := newGrantReplay()
	err := tx.GrantLog(0, func(e storage.GrantLogEntry) (bool, error) {
		if p.Start < 0 {
			p.Start = e.AuditIndex
		}
		if e.AuditIndex > index {
			return false, nil
		}
		return true, r.apply(e)
	})
	if err != nil {
		return nil, fmt.Errorf("the grant log does not replay (run `censusvault audit verify`): %w", err)
	}
	if p.Start < 0 || index < p.Start {
		return p, errBeforeLog
	}
	p.Model, p.Policy, p.Grants, p.Hash = r.model, r.rules, r.grants, r.hash()
	return p, nil
}

// storedEngineHash is the stored role policy's hash, "" if unknown.
func storedEngineHash(ctx context.Context, st storage.Store) string {
	var h string
	_ = st.View(ctx, func(tx storage.ReadTx) error {
		h, _ = tx.Meta(metaPolicyEngine)
		return nil
	})
	return h
}
