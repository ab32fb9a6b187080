package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/google/uuid"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// MaxProgressDepth bounds how many levels below the asked area a progress
// report lists.
const MaxProgressDepth = 4

// ProgressRow and ProgressReport are wire types (the device SDK shares
// them).
type (
	ProgressRow    = wire.ProgressRow
	ProgressReport = wire.ProgressReport
)

// Progress reports current households against plan for an area and its
// descendants down to depth levels below it (an empty code means the top
// of the caller's first allowed subtree, in the order the store lists its
// grants: by role, then area). It is operational data, exact, never
// microdata; the caller must be allowed progress.read on the area itself.
func (b *Broker) Progress(ctx context.Context, c *Caller, code AreaCode, depth int) (*ProgressReport, error) {
	ev := b.event(c, string(policy.ReadProgress), policy.Decision{})
	sc, err := b.scope(c, policy.ReadProgress, "")
	if err != nil {
		return nil, err
	}
	if code == "" {
		if roots := sc.Roots(b.pathOf); len(roots) > 0 {
			code = AreaCode(roots[0])
		} else {
			ev = b.event(c, string(policy.ReadProgress), b.anyGrantAllows(ctx, c, policy.ReadProgress))
			ev.Outcome = "denied"
			return nil, b.refuse(ctx, ev, errorf(Permission, nil, "not permitted to read progress"))
		}
	}
	if !area.ValidCode(code) {
		ev.Outcome, ev.Reason = "invalid", "malformed area code"
		return nil, b.refuse(ctx, ev, errorf(Invalid, nil, "area must be an area code ([A-Za-z0-9._-], at most %d characters)", area.MaxCodeLen))
	}
	ev.Area = string(code)
	if depth < 0 || depth > MaxProgressDepth {
		ev.Outcome, ev.Reason = "invalid", "depth out of range"
		return nil, b.refuse(ctx, ev, errorf(Invalid, nil, "depth must be between 0 and %d", MaxProgressDepth))
	}
	// One revision of the area tree throughout (areas.go).
	g := b.tree.geo()
	tree := g.Tree()
	path := tree.PathStrings(code)
	if path == nil {
		ev.Outcome, ev.Reason = "invalid", "unknown area"
		if g.Retired(code) {
			return nil, b.refuse(ctx, ev, errorf(NotFound, nil, "no area %s: a revision of the area tree retired it (its households count in the EAs it became)", code))
		}
		return nil, b.refuse(ctx, ev, errorf(NotFound, nil, "no area %s", code))
	}
	d, err := sc.At(path)
	if err != nil {
		return nil, errorf(Internal, err, "policy failed")
	}
	ev = b.event(c, string(policy.ReadProgress), d)
	ev.Area = string(code)
	if !d.Allow {
		ev.Outcome = "denied"
		return nil, b.refuse(ctx, ev, errorf(Permission, nil, "not permitted to read progress of area %s", code))
	}

	// The subtrees the caller is denied inside the asked area are left
	// out: their rows are omitted, and every row above one counts only
	// the allowed areas under it and is marked partial, so no row minus
	// its listed children gives a denied area's count or plan.
	denied := map[AreaCode]bool{}
	for _, a := range sc.Denied() {
		denied[AreaCode(a)] = true
	}

	// One pass over the subtree: its EAs' counts, then a roll-up from the
	// leaves (pre-order reversed visits children before parents).
	var sub []area.Area
	var eas []string
	excluded := map[AreaCode]bool{}
	var cut []AreaCode // the tops of the excluded subtrees
	tree.Walk(code, math.MaxInt, func(a area.Area, _ int) bool {
		if a.Code != code && excluded[a.Parent] {
			excluded[a.Code] = true
			return true
		}
		if denied[a.Code] {
			excluded[a.Code] = true
			cut = append(cut, a.Code)
			return true
		}
		sub = append(sub, a)
		if a.Level == area.EA {
			eas = append(eas, string(a.Code))
		}
		return true
	})
	var counts map[string]int64
	err = b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		if counts, err = tx.Deposited(eas); err != nil {
			return err
		}
		if counts == nil {
			counts = map[string]int64{}
		}
		// Households deposited under EAs a revision retired count in
		// the EA their number belongs to now.
		for _, ea := range eas {
			for _, src := range g.Sources(AreaCode(ea)) {
				n, err := tx.HouseholdsIn(string(src.Code), src.From, src.To)
				if err != nil {
					return err
				}
				if n > 0 {
					counts[ea] += n
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, errorf(Unavailable, err, "the vault database is unavailable; try again later")
	}
	total := make(map[AreaCode]int64, len(sub))
	planned := make(map[AreaCode]int64, len(sub))
	partial := make(map[AreaCode]bool)
	for _, a := range cut {
		for p := tree.PathStrings(a); len(p) > 1; p = p[:len(p)-1] {
			partial[AreaCode(p[len(p)-2])] = true
		}
	}
	for i := len(sub) - 1; i >= 0; i-- {
		a := sub[i]
		if a.Level == area.EA {
			total[a.Code] += counts[string(a.Code)]
			planned[a.Code] += a.Planned
		}
		if a.Code != code {
			total[a.Parent] += total[a.Code]
			planned[a.Parent] += planned[a.Code]
		}
	}
	rep := &ProgressReport{Area: code, Depth: depth, Rows: []ProgressRow{}}
	tree.Walk(code, depth, func(a area.Area, _ int) bool {
		if excluded[a.Code] {
			return true
		}
		n, pl := total[a.Code], a.Planned
		if partial[a.Code] {
			pl = planned[a.Code]
		}
		rep.Rows = append(rep.Rows, ProgressRow{
			Area: a.Code, Name: a.Name, Level: a.Level.String(), Planned: pl, Deposited: n,
			Percent: percent(n, pl), Partial: partial[a.Code],
		})
		return true
	})
	ev.Outcome = "ok"
	ev.Reason = fmt.Sprintf("depth %d, %d rows", depth, len(rep.Rows))
	if len(cut) > 0 {
		ev.Reason += ", denied subtrees left out"
	}
	if err := b.record(ctx, ev); err != nil {
		return nil, err
	}
	return rep, nil
}

func percent(n, planned int64) float64 {
	if planned <= 0 {
		return 0
	}
	return math.Round(float64(n)*10000/float64(planned)) / 100
}

// ReceiptOf returns the receipt of a submission the caller deposited. An
// enumerator who lost the network after depositing can fetch it; nobody
// else can (unknown and foreign ids look the same).
func (b *Broker) ReceiptOf(ctx context.Context, c *Caller, id SubmissionID) (*Receipt, error) {
	if err := b.checkID(ctx, c, string(policy.ReadReceipt), id); err != nil {
		return nil, err
	}
	var s *storage.Submission
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		s, err = tx.Submission(string(id))
		return err
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, errorf(Unavailable, err, "the vault database is unavailable; try again later")
	}
	d := policy.Decision{Rule: "receipts are shown to their depositor only"}
	if s != nil && s.Depositor == string(c.User) {
		d, err = b.engineFor(c).Allow(ctx, c.subject(), policy.ReadReceipt, policy.Resource{Path: b.submissionPath(s.Area, s.HouseholdNo)})
		if err != nil {
			return nil, errorf(Internal, err, "policy failed")
		}
	}
	ev := b.event(c, string(policy.ReadReceipt), d)
	ev.Decision = map[bool]string{true: "allow", false: "deny"}[d.Allow]
	ev.Resources = []string{"submission:" + string(id)}
	if s != nil {
		ev.Area = s.Area
	}
	if !d.Allow {
		ev.Outcome = "denied"
		return nil, b.refuse(ctx, ev, errorf(NotFound, nil, "no receipt of yours for submission %s", id))
	}
	var r Receipt
	if err := json.Unmarshal(s.Receipt, &r); err != nil {
		b.log.Error("stored receipt is corrupt", "submission", string(id), "err", err)
		ev.Outcome, ev.Reason = "error", "stored receipt is corrupt"
		b.record(ctx, ev)
		return nil, receiptCorrupt(fmt.Errorf("%w: %v", errReceiptCorrupt, err))
	}
	ev.Outcome = "ok"
	if err := b.record(ctx, ev); err != nil {
		return nil, err
	}
	return &r, nil
}

// checkID refuses (and logs, without the id) anything that is not a
// canonical lowercase UUID, so caller-chosen text never reaches the log
// unbounded.
func (b *Broker) checkID(ctx context.Context, c *Caller, action string, id SubmissionID) error {
	u, err := uuid.Parse(string(id))
	if err == nil && u.String() == string(id) {
		return nil
	}
	return b.Invalid(ctx, c, action, "submission id must be a lowercase UUID")
}
