package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker/tables"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// Publication point defaults: an area is seen at a new state only when at
// least DefaultPointK of its households changed, and points are at least
// DefaultPointInterval apart (a census makes few: one a week at most).
const (
	DefaultPointK        = tables.DefaultPointK
	DefaultPointInterval = 7 * 24 * time.Hour
)

// Audit actions of publication points.
const (
	actionPointCreate = string(policy.CreateReleasePoint) // "release_point.create"
	actionPointList   = "release_point.list"
	actionCatalogue   = "catalogue.read"
)

// ReleasePointInfo, CatalogueInfo and StandardTableInfo are wire types
// (the client shares them).
type (
	ReleasePointInfo  = wire.ReleasePoint
	CatalogueInfo     = wire.Catalogue
	StandardTableInfo = wire.StandardTable
)

func pointInfo(p *storage.ReleasePoint, s *tables.PointState) ReleasePointInfo {
	return ReleasePointInfo{Name: p.Name, Seq: p.Seq, AsOf: p.AsOf, Created: p.CreatedAt, CreatedBy: p.CreatedBy, Level: s.Level.String(), K: s.K}
}

// CreateReleasePoint makes the next publication point, as the operator on
// the vault host (`censusvault release-point create`).
func (b *Broker) CreateReleasePoint(ctx context.Context, actor, name string) (*ReleasePointInfo, error) {
	ev := &audit.Event{Time: b.now().UTC(), Actor: actor, Roles: []string{}, Action: actionPointCreate, Area: string(b.tree.Root()),
		Decision: "allow", Rule: "operator with access to the data directory and the key provider"}
	return b.createPoint(ctx, ev, name)
}

// CreateReleasePointAs makes the next publication point for an approver
// over HTTP: the caller needs release_point.create over the whole tree.
func (b *Broker) CreateReleasePointAs(ctx context.Context, c *Caller, name string) (*ReleasePointInfo, error) {
	sc, err := b.scope(c, policy.CreateReleasePoint, "")
	if err != nil {
		return nil, err
	}
	d, err := sc.Subtree(b.tree.PathStrings(b.tree.Root()), b.pathOf)
	if err != nil {
		return nil, errorf(Internal, err, "policy failed")
	}
	ev := b.event(c, actionPointCreate, d)
	ev.Area = string(b.tree.Root())
	if !d.Allow {
		ev.Decision, ev.Outcome = "deny", "denied"
		ev.Resources = []string{"release_point:" + clip(name)}
		return nil, b.refuse(ctx, ev, errorf(Permission, nil, "not permitted to create publication points: an approver grant over the whole area tree is needed"))
	}
	if b.administers(ctx, c) {
		// The approver is the second pair of eyes on the administration:
		// someone who may administer never is, whatever else they hold.
		ev.Decision, ev.Outcome, ev.Resources = "deny", "denied", []string{"release_point:" + clip(name)}
		return nil, b.refuse(ctx, ev, &Error{Kind: Permission, Code: "four_eyes", Msg: "you may administer the vault: an administrator never makes publication points, even holding an approver grant"})
	}
	return b.createPoint(ctx, ev, name)
}

func (b *Broker) createPoint(ctx context.Context, ev *audit.Event, name string) (*ReleasePointInfo, error) {
	ev.Resources = []string{"release_point:" + clip(name)}
	refuse := func(k Kind, code, msg string) error {
		ev.Outcome, ev.Reason = map[Kind]string{Invalid: "invalid", Conflict: "conflict"}[k], msg
		if ev.Outcome == "" {
			ev.Outcome = "refused"
		}
		return b.refuse(ctx, ev, &Error{Kind: k, Code: code, Msg: msg})
	}
	if strings.HasPrefix(name, scheduledPrefix) {
		return nil, refuse(Invalid, "invalid_point_name", fmt.Sprintf("point names starting with %q are the scheduled points of dp tables, made by the vault itself: choose another name (e.g. 2019-04-15)", scheduledPrefix))
	}
	if !projectIDRE.MatchString(name) {
		return nil, refuse(Invalid, "invalid_point_name", fmt.Sprintf("point name %q: use 1–64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. 2019-04-15)", clip(name)))
	}
	// A point freezes areas at the finest level of the table form's
	// catalogue: without one there are no standard tables to make
	// points for (dp tables use the scheduled points). Checked here
	// before the cache is built, and below with the cache's schema.
	noCatalogue := func(s *tables.Schema) (*tables.Catalogue, error) {
		cat, nocat := standardCatalogue(s)
		if nocat != nil {
			ev.Outcome, ev.Reason = "refused", nocat.Msg
			return nil, b.refuse(ctx, ev, nocat)
		}
		return cat, nil
	}
	s, err := b.tableSchemaFor(ctx, ev)
	if err != nil {
		return nil, err
	}
	if _, err := noCatalogue(s); err != nil {
		return nil, err
	}
	var prevRow *storage.ReleasePoint
	err = b.store.View(ctx, func(tx storage.ReadTx) error {
		p, err := tx.LatestReleasePoint()
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		prevRow = p
		return err
	})
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read the publication points")
	}
	var prev *tables.PointState
	now := b.now().UTC()
	if prevRow != nil {
		if prev, err = tables.ParsePointState(prevRow.State); err != nil {
			return nil, errorf(Internal, err, "publication point %s's stored state does not read", prevRow.Name)
		}
		if next := prevRow.CreatedAt.Add(b.pointInterval); now.Before(next) {
			return nil, refuse(Conflict, "point_too_soon", fmt.Sprintf("the last publication point, %s, was made %s; the next may be made from %s (points are at least %s apart)",
				prevRow.Name, prevRow.CreatedAt.Format(time.RFC3339), next.Format(time.RFC3339), b.pointInterval))
		}
		if b.pointK < prev.K {
			// Two points would then differ by fewer households than the
			// series promised so far.
			return nil, refuse(Conflict, "point_k_lowered", fmt.Sprintf("the last publication point, %s, kept k = %d households; a point with k = %d would let areas differ from it by fewer: make points with --point-k %d or more",
				prevRow.Name, prev.K, b.pointK, prev.K))
		}
	}
	cache, err := b.refreshTables(ctx)
	if err != nil {
		return nil, err
	}
	cat, err := noCatalogue(cache.Schema())
	if err != nil {
		return nil, err
	}
	level := cat.Finest()
	state, rep, err := cache.Freeze(prev, level, b.pointK)
	if err != nil {
		return nil, errorf(Internal, err, "failed to freeze the publication point")
	}
	row := &storage.ReleasePoint{Name: name, AsOf: cache.UpTo(), CreatedAt: now, CreatedBy: ev.Actor, State: state.Encode()}
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		// Another point made since we read the latest would break the
		// chain the k-rule is counted along.
		latest, err := tx.LatestReleasePoint()
		switch {
		case errors.Is(err, storage.ErrNotFound):
			if prevRow != nil {
				return errPointRace
			}
		case err != nil:
			return err
		case prevRow == nil || latest.Seq != prevRow.Seq:
			return errPointRace
		}
		ev.Outcome = "ok"
		ev.Reason = fmt.Sprintf("point %s frozen at deposit point %d, %s level, k = %d: %d of %d areas at a new state, %d kept (%d of them changed by fewer than k households); state %s",
			name, row.AsOf, level, b.pointK, rep.Advanced, rep.Areas, rep.Kept, rep.Changed, state.Digest())
		rec, err := appendEvent(tx, ev)
		if err != nil {
			return err
		}
		row.AuditIndex = rec.Index
		return tx.InsertReleasePoint(row)
	})
	switch {
	case errors.Is(err, errPointRace):
		return nil, refuse(Conflict, "point_race", "another publication point was made at the same moment; list them (`censusvault release-point list`) before making another")
	case errors.Is(err, storage.ErrConflict):
		return nil, refuse(Conflict, "point_exists", fmt.Sprintf("a publication point named %s exists; points are never replaced: choose another name", name))
	case err != nil:
		return nil, errorf(Unavailable, err, "the publication point could not be stored and logged; nothing was made")
	}
	info := pointInfo(row, state)
	info.Areas, info.Advanced, info.Kept = rep.Areas, rep.Advanced, rep.Kept
	return &info, nil
}

var errPointRace = errors.New("a publication point was made concurrently")

// ReleasePoints lists the publication points and the scheduled points
// of dp tables, oldest first.
func (b *Broker) ReleasePoints(ctx context.Context) ([]ReleasePointInfo, error) {
	var out []ReleasePointInfo
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		return tx.ReleasePoints(func(p storage.ReleasePoint) (bool, error) {
			if p.Scheduled {
				out = append(out, ReleasePointInfo{Name: p.Name, Seq: p.Seq, AsOf: p.AsOf, Created: p.CreatedAt, CreatedBy: p.CreatedBy, Scheduled: true})
				return true, nil
			}
			s, err := tables.ParsePointState(p.State)
			if err != nil {
				return false, fmt.Errorf("publication point %s's stored state does not read: %w", p.Name, err)
			}
			out = append(out, pointInfo(&p, s))
			return true, nil
		})
	})
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read the publication points")
	}
	if out == nil {
		out = []ReleasePointInfo{}
	}
	return out, nil
}

// ReleasePointsFor is ReleasePoints for an authenticated caller: points
// are public facts, so any caller may list them; the request is audited.
func (b *Broker) ReleasePointsFor(ctx context.Context, c *Caller) ([]ReleasePointInfo, error) {
	out, err := b.ReleasePoints(ctx)
	if err != nil {
		return nil, err
	}
	ev := b.event(c, actionPointList, policy.Decision{Allow: true, Rule: "publication points are public"})
	ev.Area, ev.Outcome = string(b.tree.Root()), "ok"
	if err := b.record(ctx, ev); err != nil {
		return nil, err
	}
	return out, nil
}

// Catalogue returns the standard tables' catalogue in force: the latest
// written for the table form's latest version. NotFound (no_catalogue)
// if there is none.
func (b *Broker) Catalogue(ctx context.Context) (*CatalogueInfo, error) {
	s, err := b.tableSchema(ctx)
	if err != nil {
		return nil, err
	}
	cat, nocat := standardCatalogue(s)
	if nocat != nil {
		return nil, nocat
	}
	return catalogueInfo(cat), nil
}

// CatalogueFor is Catalogue for an authenticated caller, audited.
func (b *Broker) CatalogueFor(ctx context.Context, c *Caller) (*CatalogueInfo, error) {
	ev := b.event(c, actionCatalogue, policy.Decision{Allow: true, Rule: "the catalogue is public"})
	ev.Area = string(b.tree.Root())
	out, err := b.Catalogue(ctx)
	var e *Error
	if errors.As(err, &e) && (e.Code == "no_catalogue" || e.Code == "table_form_unusable") {
		ev.Outcome, ev.Reason = "refused", e.Msg
		return nil, b.refuse(ctx, ev, e)
	}
	if err != nil {
		return nil, err
	}
	ev.Outcome = "ok"
	if err := b.record(ctx, ev); err != nil {
		return nil, err
	}
	return out, nil
}

func catalogueInfo(c *tables.Catalogue) *CatalogueInfo {
	out := &CatalogueInfo{Version: c.Version, Form: c.Form, FormVersion: c.FormVersion, Tables: []StandardTableInfo{}}
	for _, t := range c.Tables {
		m, _ := t.Measure.MarshalJSON() // "count" or {"sum": VAR}: always encodes
		ti := StandardTableInfo{ID: t.ID, Title: t.Title, Unit: string(t.Unit), Rows: nonNilStrings(t.Rows), Cols: nonNilStrings(t.Cols), Measure: m, MinPlanned: t.MinPlanned}
		for _, l := range t.Levels {
			ti.Levels = append(ti.Levels, l.String())
		}
		out.Tables = append(out.Tables, ti)
	}
	return out
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
