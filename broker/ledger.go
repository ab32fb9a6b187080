package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/dp/zcdp"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// The privacy ledger bounds what all dp tables together can reveal about
// any household. Every dp table touching a commune spends its ρ in that
// commune's ledger; a household lives in one commune, so its total
// privacy loss (zCDP composes by adding ρ) is at most what its commune's
// ledger ever spent, which the national cap bounds. Inside each commune's
// ledger every project and every researcher has a share: no one project
// or researcher can spend more of any commune than its share, so the cap
// is shared among many. Researchers publish, so losses add up across
// researchers: the cap, not the shares, is the guarantee.
//
// The ledger is stored as debits (storage.LedgerDebit, one per release,
// never changed or removed), each appended in the same transaction as the
// release's audit event, which carries the same amounts: an auditor can
// add the ledger up from the log alone, and a vault restored or replayed
// from an older copy cannot have spent less without its log losing the
// releases too, which verifying the log against its signed checkpoints
// shows.

// Default shares, in millionths of ρ. A change needs a proposal and an
// approver's approval (ProposeShare, ApproveShare).
const (
	DefaultTableRho        zcdp.Rho = 20_000    // 0.02: each dp table unless it names its own
	DefaultCommuneCap      zcdp.Rho = 2_000_000 // 2: every dp table touching a commune, all researchers together
	DefaultResearcherShare zcdp.Rho = 400_000   // 0.4: one researcher, all their projects
	DefaultProjectShare    zcdp.Rho = 200_000   // 0.2: one project, all its researchers
)

// Share kinds.
const (
	ShareCommune    = "commune"    // the national cap, the same for every commune
	ShareResearcher = "researcher" // one researcher's share of each commune
	ShareProject    = "project"    // one project's share of each commune
)

// proposalLife is how long a share proposal may wait for its approval.
const proposalLife = 7 * 24 * time.Hour

// Audit actions of the ledger.
const (
	actionShareProposal = "ledger.propose"
	actionShareApproval = string(policy.ApproveShare) // "ledger.approve"
	actionLedgerRead    = "ledger.read"
)

type ledgerKey struct{ kind, holder string }

func (k ledgerKey) String() string {
	if k.kind == ShareCommune {
		return "commune cap"
	}
	return k.kind + " " + k.holder
}

// ledgerState is the ledger folded from the stored debits: for each
// ledger (the cap's, each project's, each researcher's), the ρ debited at
// each area (its subtree's communes all spent it).
type ledgerState struct {
	mu    sync.Mutex
	upTo  int64 // debits folded through this audit index
	spent map[ledgerKey]map[area.Code]zcdp.Rho
}

func newLedgerState() *ledgerState {
	return &ledgerState{upTo: -1, spent: map[ledgerKey]map[area.Code]zcdp.Rho{}}
}

// catchUp folds the debits stored since the last fold. It runs inside the
// release's write transaction (writes are serialized), so what it then
// checks includes every debit committed before — on every instance.
func (l *ledgerState) catchUp(tx storage.ReadTx) error {
	return tx.LedgerDebits(l.upTo, func(d storage.LedgerDebit) (bool, error) {
		for _, k := range debitKeys(d.Project, string(d.Researcher)) {
			m := l.spent[k]
			if m == nil {
				m = map[area.Code]zcdp.Rho{}
				l.spent[k] = m
			}
			for _, a := range d.Areas {
				m[area.Code(a)] += zcdp.Rho(d.Rho)
			}
		}
		l.upTo = max(l.upTo, d.AuditIndex)
		return true, nil
	})
}

func debitKeys(project, researcher string) []ledgerKey {
	return []ledgerKey{{ShareCommune, ""}, {ShareProject, project}, {ShareResearcher, researcher}}
}

// worst is the most ledger k has spent in any one commune under areas
// (each with its subtree), and where. A commune's spending is what was
// debited at it and at every area above it; debits are never negative, so
// the worst commune lies under the deepest debited area, or is any
// commune of areas when nothing below them was debited.
func (l *ledgerState) worst(tree *area.Tree, k ledgerKey, areas []area.Code) (zcdp.Rho, area.Code) {
	m := l.spent[k]
	var best zcdp.Rho
	var at area.Code
	for _, t := range areas {
		var above zcdp.Rho
		path := tree.Path(t)
		for _, a := range path {
			above += m[a] // t itself included
		}
		top, where := above, t
		for a, x := range m {
			if x == 0 || a == t {
				continue
			}
			p := tree.Path(a)
			if len(p) <= len(path) || p[len(path)-1] != t {
				continue // not strictly under t
			}
			sum := above
			for _, b := range p[len(path):] {
				sum += m[b]
			}
			if sum > top || (sum == top && a < where) {
				top, where = sum, a
			}
		}
		if top > best || at == "" {
			best, at = top, where
		}
	}
	return best, at
}

// shares are the ledger shares in force: the latest approved change of
// each, the defaults for the rest.
type shares struct {
	set     map[ledgerKey]zcdp.Rho
	changes []storage.ShareChange
}

func readShares(tx storage.ReadTx) (*shares, error) {
	s := &shares{set: map[ledgerKey]zcdp.Rho{}}
	var approved []storage.ShareChange
	err := tx.ShareChanges(func(c storage.ShareChange) (bool, error) {
		s.changes = append(s.changes, c)
		if c.ApprovedBy != "" {
			approved = append(approved, c)
		}
		return true, nil
	})
	slices.SortFunc(approved, func(a, b storage.ShareChange) int { return cmp.Compare(a.ApprovalAudit, b.ApprovalAudit) })
	for _, c := range approved {
		s.set[ledgerKey{c.Kind, c.Holder}] = zcdp.Rho(c.Rho)
	}
	return s, err
}

func (s *shares) of(k ledgerKey) zcdp.Rho {
	if r, ok := s.set[k]; ok {
		return r
	}
	switch k.kind {
	case ShareCommune:
		return DefaultCommuneCap
	case ShareProject:
		return DefaultProjectShare
	}
	return DefaultResearcherShare
}

// ledgerRefusal is a dp table the ledger cannot pay for.
type ledgerRefusal struct {
	key          ledgerKey
	at           area.Code
	spent, share zcdp.Rho
	rho          zcdp.Rho
}

func (r *ledgerRefusal) Error() string {
	return fmt.Sprintf("the %s cannot pay ρ=%s for a table touching commune(s) under %s: spent %s of %s there", r.key, r.rho, r.at, r.spent, r.share)
}

// ledgerCheck is one ledger's state for a charge: what it spent in its
// worst commune under the table's areas, and its share.
type ledgerCheck struct {
	key          ledgerKey
	at           area.Code
	spent, share zcdp.Rho
}

// checkLedgers catches the ledger up inside tx and checks that every
// ledger the charge goes to can pay rho in every commune under areas.
func (b *Broker) checkLedgers(tx storage.ReadTx, areas []area.Code, project, researcher string, rho zcdp.Rho) ([]ledgerCheck, error) {
	if err := b.ledger.catchUp(tx); err != nil {
		return nil, err
	}
	sh, err := readShares(tx)
	if err != nil {
		return nil, err
	}
	var out []ledgerCheck
	for _, k := range debitKeys(project, researcher) {
		spent, at := b.ledger.worst(b.tree.geo().Tree(), k, areas)
		share := sh.of(k)
		if spent+rho > share {
			return nil, &ledgerRefusal{key: k, at: at, spent: spent, share: share, rho: rho}
		}
		out = append(out, ledgerCheck{key: k, at: at, spent: spent + rho, share: share})
	}
	return out, nil
}

// describeCharge is the ledger part of a release's audit reason: the
// amounts, never a value.
func describeCharge(rho zcdp.Rho, areas []area.Code, checks []ledgerCheck) string {
	var b strings.Builder
	fmt.Fprintf(&b, "dp: charged ρ=%s (ε=%.2f at δ=%g) to the communes of %s", rho, rho.Epsilon(zcdp.Delta), zcdp.Delta, joinCodes(areas))
	for _, c := range checks {
		fmt.Fprintf(&b, "; %s now %s of %s at %s", c.key, c.spent, c.share, c.at)
	}
	return b.String()
}

func joinCodes(cs []area.Code) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return strings.Join(s, ",")
}

// Wire types of the ledger.
type (
	LedgerInfo  = wire.Ledger
	ShareInfo   = wire.Share
	ShareChange = wire.ShareChange
)

// Ledger reports the shares and what each has spent in its worst commune,
// and the proposals, for the operator on the vault host.
func (b *Broker) Ledger(ctx context.Context) (*LedgerInfo, error) {
	return b.ledgerInfo(ctx, func(ledgerKey) bool { return true })
}

// LedgerFor reports the ledger to a caller: admins, approvers and
// auditors see every share; a researcher the cap, their own share and
// their projects'.
func (b *Broker) LedgerFor(ctx context.Context, c *Caller) (*LedgerInfo, error) {
	ev := b.event(c, actionLedgerRead, policy.Decision{})
	ev.Area = string(b.tree.Root())
	all := false
	projects := map[string]bool{}
	researcher := false
	for _, g := range c.Grants {
		switch {
		case g.Deny:
		case g.Role == policy.Admin || g.Role == policy.Approver || g.Role == policy.Auditor:
			all = true
		case g.Role == policy.Researcher:
			researcher = true
			projects[g.Project] = true
		}
	}
	if !all && !researcher {
		ev.Decision, ev.Outcome, ev.Rule = "deny", "denied", "no admin, approver, auditor or researcher grant"
		return nil, b.refuse(ctx, ev, errorf(Permission, nil, "the privacy ledger is shown to researchers, admins, approvers and auditors"))
	}
	info, err := b.ledgerInfo(ctx, func(k ledgerKey) bool {
		return all || k.kind == ShareCommune || (k.kind == ShareResearcher && k.holder == string(c.User)) || (k.kind == ShareProject && projects[k.holder])
	})
	if err != nil {
		return nil, err
	}
	ev.Decision, ev.Outcome, ev.Rule = "allow", "ok", "grant of a role the ledger is shown to"
	if err := b.record(ctx, ev); err != nil {
		return nil, err
	}
	return info, nil
}

func (b *Broker) ledgerInfo(ctx context.Context, show func(ledgerKey) bool) (*LedgerInfo, error) {
	var sh *shares
	var projects []string
	b.ledger.mu.Lock()
	defer b.ledger.mu.Unlock()
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		if err := b.ledger.catchUp(tx); err != nil {
			return err
		}
		var err error
		if sh, err = readShares(tx); err != nil {
			return err
		}
		return tx.Projects(func(p storage.Project) (bool, error) {
			projects = append(projects, p.ID)
			return true, nil
		})
	})
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read the privacy ledger")
	}
	keys := map[ledgerKey]bool{{ShareCommune, ""}: true}
	for k := range b.ledger.spent {
		keys[k] = true
	}
	for k := range sh.set {
		keys[k] = true
	}
	for _, p := range projects {
		keys[ledgerKey{ShareProject, p}] = true
	}
	root := []area.Code{b.tree.Root()}
	info := &LedgerInfo{TableRho: DefaultTableRho.String(), Delta: zcdp.Delta, Shares: []ShareInfo{}, Changes: []ShareChange{}}
	for k := range keys {
		if !show(k) {
			continue
		}
		share := sh.of(k)
		spent, at := b.ledger.worst(b.tree.geo().Tree(), k, root)
		_, set := sh.set[k]
		info.Shares = append(info.Shares, ShareInfo{
			Kind: k.kind, Holder: k.holder, Rho: share.String(), Epsilon: round2(share.Epsilon(zcdp.Delta)), Default: !set,
			Spent: spent.String(), SpentEpsilon: round2(spent.Epsilon(zcdp.Delta)), WorstArea: string(at),
			Tables: int64((share - spent) / DefaultTableRho),
		})
	}
	slices.SortFunc(info.Shares, func(a, b ShareInfo) int {
		return cmp.Or(cmp.Compare(kindOrder(a.Kind), kindOrder(b.Kind)), cmp.Compare(a.Holder, b.Holder))
	})
	for _, c := range sh.changes {
		if show(ledgerKey{c.Kind, c.Holder}) {
			info.Changes = append(info.Changes, shareChangeInfo(c))
		}
	}
	return info, nil
}

func kindOrder(k string) int {
	switch k {
	case ShareCommune:
		return 0
	case ShareResearcher:
		return 1
	}
	return 2
}

func round2(x float64) float64 { return float64(int64(x*100+0.5)) / 100 }

func shareChangeInfo(c storage.ShareChange) ShareChange {
	r := zcdp.Rho(c.Rho)
	return ShareChange{Seq: c.Seq, Kind: c.Kind, Holder: c.Holder, Rho: r.String(), Epsilon: round2(r.Epsilon(zcdp.Delta)), Reason: c.Reason,
		ProposedBy: c.ProposedBy, ProposedAt: c.ProposedAt, ApprovedBy: c.ApprovedBy, ApprovedAt: c.ApprovedAt}
}

// ProposeShare proposes a new value for one ledger share. An admin may
// propose any; a researcher their own researcher share or the share of a
// project they hold a grant for. Nothing changes until an approver who is
// not the proposer approves it (ApproveShare).
func (b *Broker) ProposeShare(ctx context.Context, c *Caller, kind, holder, rho, reason string) (*ShareChange, error) {
	ev := b.event(c, actionShareProposal, policy.Decision{})
	ev.Area = string(b.tree.Root())
	ev.Resources = []string{"ledger:" + clip(kind) + "/" + clip(holder)}
	invalid := func(msg string) (*ShareChange, error) {
		ev.Outcome, ev.Reason = "invalid", msg
		return nil, b.refuse(ctx, ev, errorf(Invalid, nil, "%s", msg))
	}
	r, err := zcdp.ParseRho(rho)
	if err != nil {
		return invalid("rho: " + err.Error())
	}
	if err := checkText("reason", reason); err != nil || strings.TrimSpace(reason) == "" {
		return invalid("a share change states its reason (a sentence, at most 500 bytes)")
	}
	switch kind {
	case ShareCommune:
		if holder != "" {
			return invalid("the commune cap is the same for every commune: it names no holder")
		}
	case ShareProject:
		if !projectIDRE.MatchString(holder) {
			return invalid("a project share names its project")
		}
	case ShareResearcher:
		if holder == "" || len(holder) > 64 {
			return invalid("a researcher share names its researcher")
		}
	default:
		return invalid(fmt.Sprintf("share kind %q: commune, researcher or project", clip(kind)))
	}
	admin := false
	may := false
	for _, g := range c.Grants {
		if g.Deny {
			continue
		}
		switch {
		case g.Role == policy.Admin:
			admin = true
		case g.Role == policy.Researcher && kind == ShareResearcher && holder == string(c.User):
			may = true
		case g.Role == policy.Researcher && kind == ShareProject && g.Project == holder:
			may = true
		}
	}
	if admin {
		d := b.anyGrantAllows(ctx, c, policy.Administer)
		admin = d.Allow
	}
	if !admin && !may {
		ev.Decision, ev.Outcome, ev.Rule = "deny", "denied", "neither an admin nor the researcher of that share"
		return nil, b.refuse(ctx, ev, errorf(Permission, nil, "only an admin, or the researcher whose share it is (their own or their project's), may propose a share change"))
	}
	ev.Decision, ev.Rule = "allow", map[bool]string{true: "admin", false: "researcher of the share"}[admin]
	now := b.now().UTC()
	ch := &storage.ShareChange{Kind: kind, Holder: holder, Rho: int64(r), Reason: reason, ProposedBy: string(c.User), ProposedAt: now}
	ev.Outcome = "ok"
	ev.Reason = fmt.Sprintf("proposed %s share %s ρ=%s (ε=%.2f at δ=%g); waits for an approver", kind, holder, r, r.Epsilon(zcdp.Delta), zcdp.Delta)
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		switch kind {
		case ShareProject:
			if _, err := tx.Project(holder); err != nil {
				return err
			}
		case ShareResearcher:
			// A share for a name nobody holds would wait for whoever is
			// given that name later.
			u, err := tx.User(holder)
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(u.Grants, func(g storage.Grant) bool { return g.Role == string(policy.Researcher) && !g.Deny }) {
				return errNotResearcher
			}
		}
		rec, err := appendEvent(tx, ev)
		if err != nil {
			return err
		}
		ch.ProposalAudit = rec.Index
		return tx.ProposeShare(ch)
	})
	switch {
	case errors.Is(err, storage.ErrNotFound) && kind == ShareProject:
		return invalid("no project " + holder)
	case errors.Is(err, storage.ErrNotFound), errors.Is(err, errNotResearcher):
		return invalid("no researcher " + clip(holder) + ": a researcher share is proposed for a user who holds a researcher grant")
	case err != nil:
		return nil, errorf(Unavailable, err, "the proposal could not be stored; nothing changed")
	}
	out := shareChangeInfo(*ch)
	return &out, nil
}

var (
	errNotResearcher = errors.New("not a researcher")
	errSuperseded    = errors.New("a later proposal for the same share was approved")
)

// ApproveShare approves a pending share proposal: the caller needs
// ledger.approve over the whole area tree, must not be its proposer, and
// the proposal must be under a week old. The audit event says the share's
// resulting ρ and ε.
func (b *Broker) ApproveShare(ctx context.Context, c *Caller, seq int64) (*ShareChange, error) {
	sc, err := b.scope(c, policy.ApproveShare, "")
	if err != nil {
		return nil, err
	}
	d, err := sc.Subtree(b.tree.PathStrings(b.tree.Root()), b.pathOf)
	if err != nil {
		return nil, errorf(Internal, err, "policy failed")
	}
	ev := b.event(c, actionShareApproval, d)
	ev.Area = string(b.tree.Root())
	ev.Resources = []string{fmt.Sprintf("ledger_change:%d", seq)}
	if !d.Allow {
		ev.Decision, ev.Outcome = "deny", "denied"
		return nil, b.refuse(ctx, ev, errorf(Permission, nil, "not permitted to approve share changes: an approver grant over the whole area tree is needed"))
	}
	var ch *storage.ShareChange
	var newer int64 // the latest approved change of the same share, if proposed after this one
	refusal := func(k Kind, code, msg string) (*ShareChange, error) {
		ev.Outcome, ev.Reason = "refused", msg
		return nil, b.refuse(ctx, ev, &Error{Kind: k, Code: code, Msg: msg})
	}
	var all []storage.ShareChange
	err = b.store.View(ctx, func(tx storage.ReadTx) error {
		return tx.ShareChanges(func(x storage.ShareChange) (bool, error) {
			all = append(all, x)
			return true, nil
		})
	})
	for i := range all {
		if all[i].Seq == seq {
			ch = &all[i]
		}
	}
	if ch != nil {
		for _, x := range all {
			if x.Kind == ch.Kind && x.Holder == ch.Holder && x.Seq > seq && x.ApprovedBy != "" {
				newer = x.Seq
			}
		}
	}
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read the share proposals")
	}
	now := b.now().UTC()
	switch {
	case ch == nil:
		return refusal(NotFound, "no_such_proposal", fmt.Sprintf("no share proposal %d (GET /v1/ledger lists them)", seq))
	case ch.ApprovedBy != "":
		return refusal(Conflict, "proposal_approved", fmt.Sprintf("share proposal %d was approved by %s already", seq, ch.ApprovedBy))
	case ch.ProposedBy == string(c.User):
		return refusal(Permission, "four_eyes", "you proposed this change: another person, an approver, must approve it")
	case b.administers(ctx, c):
		return refusal(Permission, "four_eyes", "you may administer the vault: an administrator is never the second pair of eyes")
	case now.Sub(ch.ProposedAt) > proposalLife:
		return refusal(Conflict, "proposal_expired", fmt.Sprintf("share proposal %d is over %s old: propose it again", seq, proposalLife))
	case newer != 0:
		// Approving it now would undo a later decision about the same
		// share.
		return refusal(Conflict, "proposal_superseded", fmt.Sprintf("share proposal %d was overtaken by proposal %d for the same share, approved since: propose it again if it still holds", seq, newer))
	}
	r := zcdp.Rho(ch.Rho)
	ev.Decision, ev.Outcome = "allow", "ok"
	ev.Reason = fmt.Sprintf("approved %s share %s proposed by %s: now ρ=%s, ε=%.2f at δ=%g", ch.Kind, ch.Holder, ch.ProposedBy, r, r.Epsilon(zcdp.Delta), zcdp.Delta)
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		// Again inside the transaction: another approval may have landed
		// since the read above.
		err := tx.ShareChanges(func(x storage.ShareChange) (bool, error) {
			if x.Kind == ch.Kind && x.Holder == ch.Holder && x.Seq > seq && x.ApprovedBy != "" {
				newer = x.Seq
				return false, errSuperseded
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		rec, err := appendEvent(tx, ev)
		if err != nil {
			return err
		}
		if err := tx.ApproveShare(seq, string(c.User), now, rec.Index); err != nil {
			return err
		}
		ch.ApprovedBy, ch.ApprovedAt, ch.ApprovalAudit = string(c.User), now, rec.Index
		return nil
	})
	if errors.Is(err, storage.ErrConflict) {
		return refusal(Conflict, "proposal_approved", fmt.Sprintf("share proposal %d was approved by someone else meanwhile", seq))
	}
	if errors.Is(err, errSuperseded) {
		return refusal(Conflict, "proposal_superseded", fmt.Sprintf("share proposal %d was overtaken by proposal %d for the same share, approved meanwhile: propose it again if it still holds", seq, newer))
	}
	if err != nil {
		return nil, errorf(Unavailable, err, "the approval could not be stored; nothing changed")
	}
	out := shareChangeInfo(*ch)
	return &out, nil
}
