package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// Revisions of the area tree (issue 14).
//
// The areas stored at init are revision 0; every later revision is a
// document (broker/area.ParseRevision) stored whole in the append-only
// area_revisions, and the tree in force is revision 0 with every stored
// revision applied in order. Sealed rows never change: a submission
// keeps the EA it was deposited in, and whatever decides by area — the
// scope of a view or a review, progress, extracts, a deposit — first asks
// the Geography which EA in force its household belongs to now.
//
// Invariants:
//   - One transaction stores the revision, appends its audit event
//     ("areas.revise": the number, the document's SHA-256, counts) and
//     moves the grants on retired EAs through the grant log: all or
//     nothing.
//   - A revision never widens what anyone may do: a grant or deny on a
//     split EA goes to each new EA; a deny on a merged EA goes to the
//     merged one; an allow on some but not all EAs of a merge is refused.
//   - A revision orphans nothing: it is refused while a split's ranges
//     leave out a household number stored there, a pending grant
//     proposal names a retired EA, or an open project covers one.
//   - Every request reads the stored revision number with the token
//     (Authenticate) and takes up a revision another instance stored,
//     as it does the role policy.
//   - A deposit names one household: under whichever of its aliases
//     (area.Geography.Aliases) a household was deposited, it has at most
//     one current submission. A deposit decided under a revision that is
//     no longer the latest is refused (Unavailable, retry) rather than
//     checked against the wrong aliases.

// metaAreaRevision is the number of the latest revision of the area
// tree: what every request compares with the one it holds.
const metaAreaRevision = "area_revision"

// actionAreasRevise is the audit action of a revision.
const actionAreasRevise = "areas.revise"

// liveTree is the area tree in force, replaced whole when a revision is
// taken up (made here or on another instance). Its methods read the tree
// in force at the call; a use case that must read one revision
// throughout takes geo() once.
type liveTree struct {
	g  atomic.Pointer[area.Geography]
	mu sync.Mutex // serializes taking up revisions
}

func (t *liveTree) geo() *area.Geography { return t.g.Load() }

// The *area.Tree reads the broker makes, of the tree in force.
func (t *liveTree) Root() area.Code                   { return t.geo().Tree().Root() }
func (t *liveTree) Get(c area.Code) (area.Area, bool) { return t.geo().Tree().Get(c) }
func (t *liveTree) Path(c area.Code) []area.Code      { return t.geo().Tree().Path(c) }
func (t *liveTree) PathStrings(c area.Code) []string {
	return t.geo().Tree().PathStrings(c)
}
func (t *liveTree) Ancestor(c area.Code, l area.Level) (area.Code, bool) {
	return t.geo().Tree().Ancestor(c, l)
}
func (t *liveTree) Children(c area.Code) []area.Code { return t.geo().Tree().Children(c) }
func (t *liveTree) Contains(ancestor, c area.Code) bool {
	return t.geo().Tree().Contains(ancestor, c)
}
func (t *liveTree) Walk(c area.Code, depth int, fn func(a area.Area, depthBelow int) bool) {
	t.geo().Tree().Walk(c, depth, fn)
}

// Geography is the area tree in force with the mapping of retired EAs.
func (b *Broker) Geography() *area.Geography { return b.tree.geo() }

// loadGeography builds the geography of revision upTo (-1: the latest)
// from the store: the areas of init and the stored revisions.
func loadGeography(tx storage.ReadTx, upTo int64) (*area.Geography, error) {
	rows, err := tx.Areas()
	if err != nil {
		return nil, err
	}
	t, err := treeFromRows(rows)
	if err != nil {
		return nil, fmt.Errorf("stored areas: %w", err)
	}
	g := area.Start(t)
	return g, applyStored(tx, &g, upTo)
}

// applyStored applies to *g the stored revisions after it, up to upTo
// (-1: all).
func applyStored(tx storage.ReadTx, g **area.Geography, upTo int64) error {
	return tx.AreaRevisions((*g).Revision(), func(r storage.AreaRevision) (bool, error) {
		if upTo >= 0 && r.Number > upTo {
			return false, nil
		}
		if r.Number != (*g).Revision()+1 {
			return false, fmt.Errorf("stored area revision %d follows revision %d", r.Number, (*g).Revision())
		}
		rev, err := area.ParseRevision(r.Document)
		if err != nil {
			return false, fmt.Errorf("stored area revision %d: %w", r.Number, err)
		}
		next, _, err := (*g).Apply(rev)
		if err != nil {
			return false, fmt.Errorf("stored area revision %d: %w", r.Number, err)
		}
		*g = next
		return true, nil
	})
}

// syncAreas takes up the revisions stored after the one in force when
// stored (meta area_revision, read in the caller's transaction) differs
// from it; "" or equal: nothing to do.
func (b *Broker) syncAreas(ctx context.Context, stored string) error {
	if stored == "" || stored == strconv.FormatInt(b.tree.geo().Revision(), 10) {
		return nil
	}
	return b.reloadAreas(ctx)
}

// reloadAreas takes up every revision stored after the one in force.
func (b *Broker) reloadAreas(ctx context.Context) error {
	b.tree.mu.Lock()
	defer b.tree.mu.Unlock()
	g := b.tree.geo()
	if err := b.store.View(ctx, func(tx storage.ReadTx) error { return applyStored(tx, &g, -1) }); err != nil {
		return errorf(Unavailable, err, "failed to read the revisions of the area tree")
	}
	b.install(g)
	return nil
}

// install puts g in force if it is newer than the one in force, and
// drops the table engine's cache, whose areas are those of the tree.
func (b *Broker) install(g *area.Geography) {
	for {
		cur := b.tree.geo()
		if cur != nil && cur.Revision() >= g.Revision() {
			return
		}
		if b.tree.g.CompareAndSwap(cur, g) {
			if cur != nil && b.tables != nil {
				b.resetTables()
			}
			return
		}
	}
}

// storedAreaRevision is meta area_revision in tx, "" if none was stored.
func storedAreaRevision(tx storage.ReadTx) (string, error) {
	v, err := tx.Meta(metaAreaRevision)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	return v, err
}

// revisionAt is the revision of the area tree in force at audit event
// index: the number of stored revisions recorded at or before it. A
// table released at a point (or replayed) reads the tree of the revision
// its point recorded; extracts read the one at their proposal.
func revisionAt(tx storage.ReadTx, index int64) (int64, error) {
	var n int64
	err := tx.AreaRevisions(0, func(r storage.AreaRevision) (bool, error) {
		if r.AuditIndex > index {
			return false, nil
		}
		n = r.Number
		return true, nil
	})
	return n, err
}

// geoAt is the geography of revision rev: the one in force, or rebuilt
// from the store (the last one rebuilt is kept).
func (b *Broker) geoAt(ctx context.Context, rev int64) (*area.Geography, error) {
	if g := b.tree.geo(); g.Revision() == rev {
		return g, nil
	}
	b.atMu.Lock()
	defer b.atMu.Unlock()
	if b.atGeo != nil && b.atGeo.Revision() == rev {
		return b.atGeo, nil
	}
	var g *area.Geography
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		g, err = loadGeography(tx, rev)
		return err
	})
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to rebuild revision %d of the area tree", rev)
	}
	if g.Revision() != rev {
		return nil, errorf(Internal, nil, "the area tree has no revision %d (the latest is %d)", rev, g.Revision())
	}
	b.atGeo = g
	return g, nil
}

// GeographyAt is the geography in force at audit event index (see
// revisionAt): what a table replayed at a point made then reads.
func (b *Broker) GeographyAt(ctx context.Context, index int64) (*area.Geography, error) {
	var rev int64
	if err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		rev, err = revisionAt(tx, index)
		return err
	}); err != nil {
		return nil, errorf(Unavailable, err, "failed to read the revisions of the area tree")
	}
	return b.geoAt(ctx, rev)
}

// submissionEA is the EA in force that household hh, deposited under
// EA code, belongs to ("" if none: a number a split left out).
func submissionEA(g *area.Geography, code string, hh int64) string {
	ea, ok := g.EA(area.Code(code), hh)
	if !ok {
		return ""
	}
	return string(ea)
}

// submissionPath is the path, in the tree in force, of the EA a stored
// submission's household belongs to now: where policy decides about it
// (nil if it belongs to none).
func (b *Broker) submissionPath(code string, hh int64) []string {
	g := b.tree.geo()
	ea := submissionEA(g, code, hh)
	if ea == "" {
		return nil
	}
	return g.Tree().PathStrings(area.Code(ea))
}

// currentHousehold is the current submission of household hh of EA code
// under any code the household may be stored under; ErrNotFound if none.
func currentHousehold(tx storage.ReadTx, g *area.Geography, code string, hh int64) (*storage.Submission, error) {
	for _, a := range g.Aliases(area.Code(code), hh) {
		s, err := tx.CurrentSubmission(string(a), hh)
		if !errors.Is(err, storage.ErrNotFound) {
			return s, err
		}
	}
	return nil, storage.ErrNotFound
}

// errAreasRevised: the tree changed while a change decided under the old
// one was being committed.
var errAreasRevised = &Error{Kind: Unavailable, Code: "area_tree_changed",
	Msg: "the area tree was revised while the request was decided; nothing was stored: send it again"}

// checkRevision refuses (errAreasRevised) to commit in tx what was
// decided under g when a newer revision is stored.
func checkRevision(tx storage.ReadTx, g *area.Geography) error {
	v, err := storedAreaRevision(tx)
	if err != nil {
		return err
	}
	if v != "" && v != strconv.FormatInt(g.Revision(), 10) {
		return errAreasRevised
	}
	return nil
}

// AreaRevision is the outcome of a revision of the area tree.
type AreaRevision struct {
	Revision                                 int64
	SHA256                                   string // of the document
	AuditIndex                               int64
	Added, Renamed, Replanned, Split, Merged int
	// GrantsMoved is how many grants the revision removed from retired
	// EAs; GrantsAdded how many it gave on the new ones.
	GrantsMoved, GrantsAdded int
}

// ReviseAreas applies a revision document to the area tree, as op
// (admin.manage over the whole tree). The document is checked alone
// (area.ParseRevision), then against the tree in force (Geography.Apply),
// then against what is stored (orphaned households, grants that would
// widen, pending proposals and open projects on retired EAs); a refusal
// says which change and what to do. Audited, allowed or refused.
func (b *Broker) ReviseAreas(ctx context.Context, op Operator, doc []byte) (*AreaRevision, error) {
	sum := sha256.Sum256(doc)
	digest := hex.EncodeToString(sum[:])
	ev, err := b.authorizeAdmin(ctx, op, actionAreasRevise, nil)
	if err != nil {
		return nil, err
	}
	invalid := func(err error) error {
		return b.refused(ctx, op, ev, &Error{Kind: Invalid, Code: "area_revision_invalid", Msg: err.Error()})
	}
	rev, err := area.ParseRevision(doc)
	if err != nil {
		return nil, invalid(err)
	}
	for try := 0; ; try++ {
		if err := b.reloadAreas(ctx); err != nil {
			return nil, err
		}
		g := b.tree.geo()
		next, out, err := g.Apply(rev)
		if err != nil {
			return nil, invalid(err)
		}
		res, err := b.commitRevision(ctx, ev, g, next, rev, out, doc, digest)
		if errors.Is(err, errAreasRevised) && try < 3 {
			continue // another instance stored one meanwhile: apply to it
		}
		if err != nil {
			return nil, b.refused(ctx, op, ev, adminErr(err, ""))
		}
		b.install(next)
		return res, nil
	}
}

// commitRevision checks out against what is stored and stores the
// revision, its event and the grants it moves, in one transaction.
func (b *Broker) commitRevision(ctx context.Context, ev *audit.Event, g, next *area.Geography, rev *area.Revision, out *area.Outcome,
	doc []byte, digest string) (*AreaRevision, error) {
	res := &AreaRevision{Revision: next.Revision(), SHA256: digest, Added: out.Added, Renamed: out.Renamed,
		Replanned: out.Replanned, Split: out.Split, Merged: out.Merged}
	retired := map[string]bool{}
	for _, r := range out.Retired {
		retired[string(r.Code)] = true
	}
	now := b.now().UTC()
	err := b.store.Update(ctx, func(tx storage.Tx) error {
		*res = AreaRevision{Revision: res.Revision, SHA256: digest, Added: out.Added, Renamed: out.Renamed,
			Replanned: out.Replanned, Split: out.Split, Merged: out.Merged}
		if err := checkRevision(tx, g); err != nil {
			return err
		}
		// Current submissions only: a superseded one belongs to the
		// household of its current successor, which is stored under the
		// same number and a code of the same household (Aliases), so it
		// is orphaned only with it.
		for _, o := range out.Orphans {
			n, err := tx.HouseholdsIn(string(o.Code), o.From, o.To)
			if err != nil {
				return err
			}
			if n > 0 {
				r := area.Range{From: o.From, To: o.To}
				// Whether, not how many: an administrator learns no
				// more of the data than the refusal needs.
				return &Error{Kind: Conflict, Code: "households_orphaned", Msg: fmt.Sprintf(
					"changes[%d] (split of %s): households deposited under %s have numbers in %s, which the split's ranges leave out: give every household a new EA (the last range may be open-ended, \"151-\")",
					o.Change, o.EA, o.Code, r)}
			}
		}
		if err := checkProposals(tx, retired, now); err != nil {
			return err
		}
		if err := checkProjects(tx, retired); err != nil {
			return err
		}
		changes, err := moveGrants(tx, out)
		if err != nil {
			return err
		}
		for _, c := range changes {
			if c.op == storage.GrantOpUngrant {
				res.GrantsMoved++
			} else {
				res.GrantsAdded++
			}
		}
		ev.Time = now
		ev.Area = string(next.Tree().Root())
		ev.Resources = []string{"area_revision:" + strconv.FormatInt(next.Revision(), 10)}
		ev.Outcome = "ok"
		ev.Reason = fmt.Sprintf("revision %d, sha256 %s: %d added, %d renamed, %d re-planned, %d split, %d merged; %d grants moved to %d",
			next.Revision(), digest, out.Added, out.Renamed, out.Replanned, out.Split, out.Merged, res.GrantsMoved, res.GrantsAdded)
		var rec storage.AuditRecord
		if len(changes) > 0 {
			rec, err = commitChange(tx, ev, changes...)
		} else {
			rec, err = appendEvent(tx, ev)
		}
		if err != nil {
			return err
		}
		res.AuditIndex = rec.Index
		if err := tx.AppendAreaRevision(&storage.AreaRevision{Number: next.Revision(), At: now, AuditIndex: rec.Index,
			Document: doc, SHA256: digest}); err != nil {
			if errors.Is(err, storage.ErrConflict) {
				return errAreasRevised
			}
			return err
		}
		return tx.PutMeta(metaAreaRevision, strconv.FormatInt(next.Revision(), 10))
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// checkProposals refuses a revision that retires an EA a pending grant
// proposal names: confirmed later, it would grant an area that is gone.
func checkProposals(tx storage.ReadTx, retired map[string]bool, now time.Time) error {
	return tx.GrantProposals(func(p storage.GrantProposal) (bool, error) {
		if p.Kind == storage.GrantOpPolicy || p.ConfirmedBy != "" || now.Sub(p.ProposedAt) > proposalLife || !retired[p.Grant.Area] {
			return true, nil
		}
		return false, &Error{Kind: Conflict, Code: "area_in_use", Msg: fmt.Sprintf(
			"grant proposal %d (%s of user %s) names EA %s, which the revision retires: have an approver confirm it first (the grant then moves with the revision) or wait until it expires, then apply the revision again",
			p.Seq, grantText(policyGrant(p.Grant)), p.User, p.Grant.Area)}
	})
}

// checkProjects refuses a revision that retires an EA an open research
// project covers.
func checkProjects(tx storage.ReadTx, retired map[string]bool) error {
	return tx.Projects(func(p storage.Project) (bool, error) {
		if !p.ClosedAt.IsZero() {
			return true, nil
		}
		for _, a := range p.Areas {
			if retired[a] {
				return false, &Error{Kind: Conflict, Code: "area_in_use", Msg: fmt.Sprintf(
					"research project %s covers EA %s, which the revision retires: close the project (`censusvault project close %s`) and add it again over the new EAs or their commune, then apply the revision again",
					p.ID, a, p.ID)}
			}
		}
		return true, nil
	})
}

// moveGrants is the grant changes of out: every grant and deny on a
// split EA goes to each new EA; a deny on a merged EA goes to the merged
// one, and so does an allow held on every EA of the merge, while an
// allow held on some only would widen to the others' households and is
// refused. Retirements apply in document order, so a grant moved by a
// split can be merged by a later change.
func moveGrants(tx storage.ReadTx, out *area.Outcome) ([]policyChange, error) {
	retired := map[string]bool{}
	for _, r := range out.Retired {
		retired[string(r.Code)] = true
	}
	before := map[string][]policy.Grant{} // users with a grant on a retired EA: all their grants
	if err := tx.Grants(func(user string, g storage.Grant) error {
		before[user] = append(before[user], policyGrant(g))
		return nil
	}); err != nil {
		return nil, err
	}
	held := map[string]map[policy.Grant]bool{}
	for user, gs := range before {
		touched := false
		for _, g := range gs {
			touched = touched || retired[g.Area]
		}
		if !touched {
			delete(before, user)
			continue
		}
		held[user] = map[policy.Grant]bool{}
		for _, g := range gs {
			held[user][g] = true
		}
	}
	users := slices.Sorted(maps.Keys(held))
	merged := map[area.Code]bool{} // the merged EAs done
	for _, r := range out.Retired {
		switch r.Op {
		case area.OpSplit:
			for _, user := range users {
				for g := range held[user] {
					if g.Area != string(r.Code) {
						continue
					}
					delete(held[user], g)
					for _, to := range r.Into {
						g.Area = string(to)
						held[user][g] = true
					}
				}
			}
		case area.OpMerge:
			into := r.Into[0]
			if merged[into] {
				continue
			}
			merged[into] = true
			for _, user := range users {
				on := map[policy.Grant][]string{} // the grant, area blanked → the merged EAs it is held on
				for g := range held[user] {
					if slices.Contains(r.With, area.Code(g.Area)) {
						a := g.Area
						delete(held[user], g)
						g.Area = ""
						on[g] = append(on[g], a)
					}
				}
				for _, g := range slices.SortedFunc(maps.Keys(on), func(x, y policy.Grant) int {
					return strings.Compare(grantText(x)+strconv.FormatBool(x.Deny), grantText(y)+strconv.FormatBool(y.Deny))
				}) {
					if !g.Deny && len(on[g]) < len(r.With) {
						var missing []string
						for _, w := range r.With {
							if !slices.Contains(on[g], string(w)) {
								missing = append(missing, string(w))
							}
						}
						slices.Sort(on[g])
						return nil, &Error{Kind: Conflict, Code: "grant_would_widen", Msg: fmt.Sprintf(
							"changes[%d] (merge into %s): user %s holds %s at %s but not at %s: the merged EA would give it those households too; grant it %s there as well, or remove the grant at %s, then apply the revision again",
							r.Change, into, user, roleText(g), strings.Join(on[g], ", "), strings.Join(missing, ", "), roleText(g), strings.Join(on[g], ", "))}
					}
					g.Area = string(into)
					held[user][g] = true
				}
			}
		}
	}
	var ungrants, grants []policyChange
	for _, user := range users {
		for _, g := range before[user] {
			if !held[user][g] {
				ungrants = append(ungrants, policyChange{op: storage.GrantOpUngrant, user: user, grant: g})
			}
		}
		var added []policy.Grant
		for g := range held[user] {
			if !slices.Contains(before[user], g) {
				added = append(added, g)
			}
		}
		slices.SortFunc(added, func(x, y policy.Grant) int {
			return strings.Compare(policy.GrantLine(user, x), policy.GrantLine(user, y))
		})
		for _, g := range added {
			grants = append(grants, policyChange{op: storage.GrantOpGrant, user: user, grant: g})
		}
	}
	return append(ungrants, grants...), nil
}

// roleText is a grant's role in words, with its project and whether it
// is a deny: "team_leader", "researcher for project p".
func roleText(g policy.Grant) string {
	s := string(g.Role)
	if g.Project != "" {
		s += " for project " + g.Project
	}
	return s
}

// Wire is r as the API answers it.
func (r *AreaRevision) Wire() wire.AreaRevision {
	return wire.AreaRevision{Revision: r.Revision, SHA256: r.SHA256, AuditIndex: r.AuditIndex, Added: r.Added, Renamed: r.Renamed,
		Replanned: r.Replanned, Split: r.Split, Merged: r.Merged, GrantsMoved: r.GrantsMoved, GrantsAdded: r.GrantsAdded}
}
