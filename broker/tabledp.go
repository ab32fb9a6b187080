package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/tables"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/storage"
)

// Scheduled points: dp tables are computed at the day's scheduled point
// (or at a publication point named with as_of). The day's point is made
// by the first dp request of that day, in the census's time zone, as of
// the deposits then in; every later request of the day uses it, on every
// instance, so the same question asked twice that day is the same query.
const (
	scheduledPrefix = "daily-"
	schedulerActor  = "system:scheduler"
	actionSchedule  = "release_point.schedule"
)

// scheduledState is the stored state of every scheduled point: it
// freezes nothing per area (the k-rule is the standard tables'; the
// ledger covers differencing between dp tables).
var scheduledState = []byte(`{"format":"censusvault.scheduled-point/v1"}` + "\n")

// dpRepeatChanged is what a repeat that no longer computes to the same
// values returns from the release transaction.
var errDPRepeatChanged = errors.New("the repeat no longer computes to the released values")

// requestDP releases a custom table under differential privacy (see
// tables.CompileDP): project and point checks, policy for every area
// covered, the noisy table from the query's seed, then in one
// transaction the ledger check, the debit and the audit event. A repeat
// of a query already charged is released again without a debit, if it
// still computes to the same values.
func (b *Broker) requestDP(ctx context.Context, c *Caller, ev *audit.Event, req *tables.Request, o TableOpts) (*TableRelease, error) {
	invalid, deny := b.tableRefusers(ctx, ev)
	if req.Rho == "" {
		req.Rho = DefaultTableRho.String()
	}
	in, err := b.readTableInputs(ctx, c, ev, req, o, true)
	if err != nil {
		return nil, err
	}
	proj, point, recipient, shreds := in.proj, in.point, in.recipient, in.shreds
	now := b.now().UTC()
	if req.Point != "" && point == nil {
		return nil, invalid(fmt.Sprintf("no point %q (GET /v1/release-points lists the publication and scheduled points)", clip(req.Point)))
	}
	if point == nil {
		if point, err = b.scheduledPoint(ctx); err != nil {
			return nil, err
		}
	}
	at := tables.DPPoint{Name: point.Name, AsOf: point.AsOf, Digest: digestOf(point.State), Shreds: shreds}
	if !point.Scheduled {
		if at.State, err = tables.ParsePointState(point.State); err != nil {
			return nil, errorf(Internal, err, "publication point %s's stored state does not read", point.Name)
		}
	}

	cache, err := b.tableCache(ctx, ev)
	if err != nil {
		return nil, err
	}
	plan, err := cache.CompileDP(req, tables.Project{ID: proj.ID, Areas: proj.Areas, Variables: proj.Variables}, at, tables.DefaultDPParams(), o.Format)
	if err := b.admitPlan(ctx, c, ev, plan, err, proj.ID); err != nil {
		return nil, err
	}

	tab, err := b.runDP(cache, plan)
	if err != nil {
		return nil, errorf(Internal, err, "failed to compute the table")
	}
	plain := tab.Render()
	digest := digestOf(plain)
	result := tab.ResultDigest()
	cells := int64(plan.Cells())
	areas := cache.LedgerAreas(plan)
	rho := plan.Rho()

	var rec storage.AuditRecord
	var remaining int64
	var refusal *ledgerRefusal
	repeat := false
	b.ledger.mu.Lock()
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		refusal, repeat = nil, false
		prev, err := tx.LedgerDebitOf(plan.Query())
		switch {
		case err == nil:
			if prev.Result != result {
				return errDPRepeatChanged
			}
			repeat = true
			p, err := tx.Project(proj.ID)
			if err != nil {
				return err
			}
			remaining = p.Budget - p.Spent
			ev.Outcome, ev.ReleaseDigest = "ok", digest
			ev.Reason = fmt.Sprintf("%s; a repeat of the query released at audit event %d: the same values, no new debit", plan.Describe(), prev.AuditIndex)
			rec, err = appendEvent(tx, ev)
			return err
		case !errors.Is(err, storage.ErrNotFound):
			return err
		}
		checks, err := b.checkLedgers(tx, areas, proj.ID, string(c.User), rho)
		if errors.As(err, &refusal) {
			return err
		}
		if err != nil {
			return err
		}
		if remaining, err = tx.DebitProject(proj.ID, cells); err != nil {
			return err
		}
		ev.Outcome, ev.ReleaseDigest = "ok", digest
		ev.Reason = fmt.Sprintf("%s; %s; debited %d cells, %d left", plan.Describe(), describeCharge(rho, areas, checks), cells, remaining)
		if rec, err = appendEvent(tx, ev); err != nil {
			return err
		}
		codes := make([]string, len(areas))
		for i, a := range areas {
			codes[i] = string(a)
		}
		return tx.InsertLedgerDebit(&storage.LedgerDebit{AuditIndex: rec.Index, Query: plan.Query(), Result: result, Areas: codes,
			Project: proj.ID, Researcher: string(c.User), Rho: int64(rho), At: now})
	})
	b.ledger.mu.Unlock()
	switch {
	case refusal != nil:
		ev.ReleaseDigest = ""
		msg := refusal.Error() + ": ask for a smaller ρ or fewer areas, or ask an admin to propose a larger share (an approver must approve it; GET /v1/ledger shows the shares)"
		ev.Outcome, ev.Reason = "denied", "dp: refused: "+refusal.Error()
		if ev.Decision == "" || ev.Decision == "allow" {
			ev.Decision = "deny"
		}
		return nil, b.refuse(ctx, ev, &Error{Kind: Permission, Code: "privacy_budget_exhausted", Msg: msg})
	case errors.Is(err, errDPRepeatChanged):
		// The query names the shreds under its areas, so the same query
		// computing to other values means stored data changed some other
		// way (or a shred raced this request): fail closed, and say
		// nothing a researcher could read about the data.
		ev.ReleaseDigest = ""
		b.log.Error("dp table: a query answered before no longer computes to the values released; nothing released", "query", plan.Query(), "point", point.Name)
		ev.Outcome, ev.Reason = "error", "a repeat no longer computes to the released values: nothing released"
		return nil, b.refuse(ctx, ev, &Error{Kind: Internal, Code: "dp_result_mismatch",
			Msg: "the vault could not answer this question again as it answered it before; nothing was released and the operator is told: try again later"})
	case errors.Is(err, storage.ErrBudgetExhausted):
		ev.ReleaseDigest = ""
		return nil, deny(fmt.Sprintf("project %s's cell budget cannot cover this table's %d cells (see `censusvault project show %s`)", proj.ID, cells, proj.ID))
	case errors.Is(err, storage.ErrConflict):
		// The same query was charged by a concurrent request: ask again
		// and it is a repeat.
		ev.ReleaseDigest = ""
		msg := "the same query was being answered for someone else at the same moment: send the request again (it will not be charged twice)"
		ev.Outcome, ev.Reason = "conflict", msg
		return nil, b.refuse(ctx, ev, &Error{Kind: Conflict, Code: "dp_query_race", Msg: msg})
	case err != nil:
		return nil, errorf(Unavailable, err, "the release could not be logged; nothing was released")
	}
	out := &TableRelease{Body: plain, ContentType: contentType(o.Format), Digest: digest, AuditIndex: rec.Index, AsOf: point.AsOf, Point: point.Name,
		Remaining: remaining, DP: true, Rho: rho.String(), Repeat: repeat}
	if !repeat {
		out.Cells = int(cells)
	}
	if o.Encrypt {
		enc, err := crypto.EncryptTo(recipient, plain)
		if err != nil {
			return nil, errorf(Internal, err, "failed to encrypt the table to the registered recipient")
		}
		out.Body, out.Encrypted = enc, true
	}
	return out, nil
}

// analyticShreds is every commune whose analytic keys were shredded,
// with the time of its latest shred (Unix nanoseconds): part of a dp
// table's query (tables.DPPoint.Shreds). Data keys are read in class
// order, analytic first: the scan stops at the first other class.
func analyticShreds(tx storage.ReadTx) (map[area.Code]int64, error) {
	out := map[area.Code]int64{}
	err := tx.DataKeys(func(k storage.DataKey) (bool, error) {
		if k.Class != string(crypto.Analytic) {
			return k.Class < string(crypto.Analytic), nil
		}
		if !k.ShreddedAt.IsZero() {
			out[area.Code(k.Commune)] = max(out[area.Code(k.Commune)], k.ShreddedAt.UnixNano())
		}
		return true, nil
	})
	return out, err
}

// runDP computes a dp plan with its seed, which lives only for the call.
func (b *Broker) runDP(cache *tables.Cache, plan *tables.Plan) (*tables.Table, error) {
	seed := b.recordKeys.NoiseSeed(plan.QueryBytes())
	defer clear(seed[:])
	return cache.RunDP(plan, seed)
}

// scheduledPoint returns the day's scheduled point, making it if it does
// not exist yet: as of the deposits the table engine holds now. Two
// instances making it at once agree on the one stored first.
func (b *Broker) scheduledPoint(ctx context.Context) (*storage.ReleasePoint, error) {
	s, err := b.tableSchema(ctx)
	if err != nil {
		return nil, err
	}
	now := b.now().UTC()
	name := scheduledPrefix + now.In(s.Census().Location()).Format(time.DateOnly)
	read := func() (*storage.ReleasePoint, error) {
		var p *storage.ReleasePoint
		err := b.store.View(ctx, func(tx storage.ReadTx) error {
			var err error
			p, err = tx.ReleasePoint(name)
			return err
		})
		return p, err
	}
	p, err := read()
	if err == nil {
		return p, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, errorf(Unavailable, err, "failed to read the scheduled points")
	}
	cache, err := b.refreshTables(ctx)
	if err != nil {
		return nil, err
	}
	row := &storage.ReleasePoint{Name: name, AsOf: cache.UpTo(), CreatedAt: now, CreatedBy: schedulerActor, State: scheduledState, Scheduled: true}
	ev := &audit.Event{Time: now, Actor: schedulerActor, Roles: []string{}, Action: actionSchedule, Area: string(b.tree.Root()),
		Resources: []string{"release_point:" + name}, Decision: "allow", Rule: "the day's first dp table request makes the day's scheduled point",
		Outcome: "ok", Reason: fmt.Sprintf("scheduled point %s at deposit point %d", name, row.AsOf)}
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		rec, err := appendEvent(tx, ev)
		if err != nil {
			return err
		}
		row.AuditIndex = rec.Index
		return tx.InsertReleasePoint(row)
	})
	if errors.Is(err, storage.ErrConflict) {
		if p, err = read(); err == nil {
			return p, nil
		}
	}
	if err != nil {
		return nil, errorf(Unavailable, err, "the day's scheduled point could not be stored and logged")
	}
	return row, nil
}

// replayDP recomputes a dp table release: the recorded request at the
// recorded point, the point's stored state checked against the digest in
// the event, with the seed of the same query.
func (b *Broker) replayDP(ctx context.Context, actor string, index int64, ev *audit.Event, n *tables.DPNorm) (*ReplayResult, error) {
	params, err := tables.ParseDPParams(n.DP)
	if err != nil {
		return nil, errorf(Internal, err, "audit event %d: %v", index, err)
	}
	proj, point, err := b.replayInputs(ctx, n.Project, n.Point, n.PointState)
	if err != nil {
		return nil, err
	}
	shreds, err := tables.ParseShreds(n.Shreds)
	if err != nil {
		return nil, errorf(Internal, err, "audit event %d", index)
	}
	at := tables.DPPoint{Name: point.Name, AsOf: point.AsOf, Digest: n.PointState, Shreds: shreds}
	if !point.Scheduled {
		if at.State, err = tables.ParsePointState(point.State); err != nil {
			return nil, errorf(Internal, err, "publication point %s's stored state does not read", n.Point)
		}
	}
	cache, err := b.refreshTables(ctx)
	if err != nil {
		return nil, err
	}
	plan, err := cache.CompileDP(n.Request(), tables.Project{ID: proj.ID, Areas: proj.Areas, Variables: proj.Variables}, at, params, n.Format)
	if err != nil {
		return nil, errorf(Internal, err, "audit event %d's request no longer compiles", index)
	}
	res := &ReplayResult{Index: index, Project: n.Project, AsOf: point.AsOf, Point: n.Point, Logged: ev.ReleaseDigest}
	return b.finishReplay(ctx, actor, ev, res, cache, plan)
}
