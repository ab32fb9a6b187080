package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// Review views (issue 13): team leaders and supervisors list the
// submissions of their scope (metadata only) and open one at a time,
// seeing the field classes their role may see at its EA, within an
// hourly cap of opens per user. Enumerators list their own deposits.
//
// Invariants:
//   - No answer holds more than one submission's fields: a list carries
//     metadata only, an open one submission.
//   - What an open reveals is decided by policy, per class, at the
//     submission's EA (submission.read_identifying, _analytic,
//     _operational); nothing is revealed without at least one.
//   - An open is counted (storage RecordOpen) and audited (one event,
//     the submission as resource, the classes revealed as reason) in the
//     transaction that checks the cap, so two instances on one store can
//     never together exceed it, and nothing is released before both are
//     durable.
//   - No field value reaches a log, an error or an audit event.

// Types of the review views; wire types (the device SDK shares them).
type (
	SubmissionMeta = wire.SubmissionMeta
	SubmissionList = wire.SubmissionList
	SubmissionView = wire.SubmissionView
)

// DefaultOpenCaps are the hourly caps of record opens per role when
// Opts.OpenCaps names none: a team leader checks the interviews of a
// commune, a supervisor samples those of a district.
func DefaultOpenCaps() map[policy.Role]int {
	return map[policy.Role]int{policy.TeamLeader: 60, policy.Supervisor: 200}
}

// OpenWindow is the window the caps count opens in; opens older than
// openRetention are pruned from the store (the audit log keeps them).
const (
	OpenWindow     = time.Hour
	openRetention  = 24 * time.Hour
	openPruneEvery = time.Minute
)

// MaxListScan bounds how many stored rows one page of a list looks at
// once it has a place to go on from, so that a sparse filter (the
// superseded submissions of a province) answers in bounded time: the page
// then holds what matched so far and Next says where to go on.
const MaxListScan = 100_000

// openCaps is o over DefaultOpenCaps, checked.
func openCaps(o map[policy.Role]int) (map[policy.Role]int, error) {
	caps := DefaultOpenCaps()
	for r, n := range o {
		if _, err := policy.ParseRole(string(r)); err != nil {
			return nil, fmt.Errorf("open caps: %w", err)
		}
		if n < 0 {
			return nil, fmt.Errorf("open caps: the cap of %s is %d; give 0 or more opens an hour", r, n)
		}
		caps[r] = n
	}
	return caps, nil
}

// ListOpts are a review list's options.
type ListOpts struct {
	// Status keeps current (the default, for ""), superseded or all
	// submissions (wire.StatusCurrent, StatusSuperseded, StatusAll).
	Status string
	// After lists submissions whose Index is greater: the Next of the
	// previous page. 0 (or -1) starts at the first, which is never at
	// index 0 (the vault's creation is).
	After int64
	// Limit is the page size, 1…wire.MaxListLimit; 0 means
	// wire.DefaultListLimit.
	Limit int
	// Mine lists the caller's own deposits instead of an area's: for an
	// enumerator, allowed wherever it may read its receipts.
	Mine bool
}

// ListSubmissions lists, as metadata only, the submissions under code in
// the caller's effective scope for submission.list (allowed subtrees minus
// denied ones), in deposit order, a page at a time. The caller must be
// allowed submission.list at code or somewhere under it. With opts.Mine
// (and no code) it lists the caller's own deposits in the EAs where it may
// read their receipts. One audit event records the call (the area, the
// options and how many rows went out; never an id).
func (b *Broker) ListSubmissions(ctx context.Context, c *Caller, code AreaCode, opts ListOpts) (*SubmissionList, error) {
	action := string(policy.ListSubmissions)
	ev := b.event(c, action, policy.Decision{})
	invalid := func(msg string) error {
		ev.Outcome, ev.Reason = "invalid", msg
		return b.refuse(ctx, ev, errorf(Invalid, nil, "%s", msg))
	}
	switch opts.Status {
	case "":
		opts.Status = wire.StatusCurrent
	case wire.StatusCurrent, wire.StatusSuperseded, wire.StatusAll:
	default:
		return nil, invalid("status must be current, superseded or all")
	}
	switch {
	case opts.Limit == 0:
		opts.Limit = wire.DefaultListLimit
	case opts.Limit < 0 || opts.Limit > wire.MaxListLimit:
		return nil, invalid(fmt.Sprintf("limit must be between 1 and %d", wire.MaxListLimit))
	}
	if opts.After < -1 {
		return nil, invalid("after must be the next of a previous page (a whole number ≥ 0)")
	}
	if opts.After == 0 {
		opts.After = -1
	}
	if opts.Mine {
		if code != "" {
			return nil, invalid("mine lists your own submissions wherever they are: give no area with it")
		}
		return b.listMine(ctx, c, opts)
	}
	if code == "" {
		return nil, invalid("give the area to list (area=CODE), or mine=1 for your own submissions")
	}
	if !area.ValidCode(code) {
		return nil, invalid(fmt.Sprintf("area must be an area code ([A-Za-z0-9._-], at most %d characters)", area.MaxCodeLen))
	}
	ev.Area = string(code)
	path := b.tree.PathStrings(code)
	if path == nil {
		ev.Outcome, ev.Reason = "invalid", "unknown area"
		return nil, b.refuse(ctx, ev, errorf(NotFound, nil, "no area %s", code))
	}
	sc, err := b.scope(c, policy.ListSubmissions, "")
	if err != nil {
		return nil, err
	}

	// The EAs under code in scope, and their communes: storage reads
	// those communes only, and rows of an EA outside the scope (a denied
	// subtree inside an allowed commune) are dropped.
	eas := map[string]bool{}
	var communes []string
	seenCommune := map[string]bool{}
	stack := append([]string(nil), path[:len(path)-1]...)
	base := len(stack)
	var policyErr error
	b.tree.Walk(code, -1, func(a area.Area, depth int) bool {
		stack = append(stack[:base+depth], string(a.Code))
		if a.Level != area.EA {
			return true
		}
		d, err := sc.At(stack)
		if err != nil {
			policyErr = err
			return false
		}
		if !d.Allow {
			return true
		}
		eas[string(a.Code)] = true
		if com, ok := b.tree.Ancestor(a.Code, area.Commune); ok && !seenCommune[string(com)] {
			seenCommune[string(com)] = true
			communes = append(communes, string(com))
		}
		return true
	})
	if policyErr != nil {
		return nil, errorf(Internal, policyErr, "policy failed")
	}
	d, err := sc.At(path)
	if err != nil {
		return nil, errorf(Internal, err, "policy failed")
	}
	if !d.Allow && len(eas) > 0 {
		// Allowed only below the area: the decision is the grant's
		// under it that allows.
		for _, root := range sc.Roots(b.pathOf) {
			if b.tree.Contains(code, AreaCode(root)) {
				if rd, err := sc.At(b.pathOf(root)); err == nil && rd.Allow {
					d = rd
					d.Rule += " (below " + string(code) + ")"
					break
				}
			}
		}
	}
	ev = b.event(c, action, d)
	ev.Area = string(code)
	if !d.Allow {
		ev.Outcome = "denied"
		return nil, b.refuse(ctx, ev, errorf(Permission, nil, "not permitted to list submissions of area %s", code))
	}
	list := &SubmissionList{Area: code, Status: opts.Status}
	f := storage.SubmissionFilter{Communes: communes, Current: opts.Status == wire.StatusCurrent, After: opts.After}
	if f.Communes == nil {
		f.Communes = []string{}
	}
	// A review's note is free text a team leader wrote while seeing every
	// class, so it may name people: it is shown only to callers who may
	// see the identifying class at the EA (a supervisor sees the status
	// and reason code, not the note). The enumerator reads its own.
	notes, err := b.scope(c, policy.ReadIdentifying, "")
	if err != nil {
		return nil, err
	}
	noteOK := map[string]bool{}
	if err := b.listRows(ctx, f, opts, func(ea string) bool { return eas[ea] }, list); err != nil {
		return nil, err
	}
	for i := range list.Submissions {
		sm := &list.Submissions[i]
		if sm.Review == nil || sm.Review.Note == "" {
			continue
		}
		ea := submissionEA(b.tree.geo(), string(sm.EA), sm.HouseholdNo)
		ok, seen := noteOK[ea]
		if !seen {
			d, err := notes.At(b.pathOf(ea))
			ok = err == nil && d.Allow
			noteOK[ea] = ok
		}
		if !ok {
			sm.Review.Note = ""
		}
	}
	ev.Outcome = "ok"
	ev.Reason = listReason(opts, list)
	if err := b.record(ctx, ev); err != nil {
		return nil, err
	}
	return list, nil
}

// listMine is ListSubmissions of the caller's own deposits: where the
// caller may read its receipts (an enumerator's grants), the broker
// checking that each is its own.
func (b *Broker) listMine(ctx context.Context, c *Caller, opts ListOpts) (*SubmissionList, error) {
	action := string(policy.ListSubmissions)
	sc, err := b.scope(c, policy.ReadReceipt, "")
	if err != nil {
		return nil, err
	}
	roots := sc.Roots(b.pathOf)
	if len(roots) == 0 {
		ev := b.event(c, action, b.anyGrantAllows(ctx, c, policy.ReadReceipt))
		ev.Outcome, ev.Reason = "denied", "mine"
		return nil, b.refuse(ctx, ev, errorf(Permission, nil, "not permitted to list your submissions: only roles that deposit have submissions of their own"))
	}
	codes := make([]AreaCode, len(roots))
	for i, r := range roots {
		codes[i] = AreaCode(r)
	}
	d, err := sc.At(b.pathOf(roots[0]))
	if err != nil {
		return nil, errorf(Internal, err, "policy failed")
	}
	ev := b.event(c, action, d)
	ev.Area = string(b.commonAncestor(codes))
	inScope := map[string]bool{}
	var policyErr error
	keep := func(ea string) bool {
		ok, seen := inScope[ea]
		if !seen {
			d, err := sc.At(b.pathOf(ea))
			if err != nil && policyErr == nil {
				policyErr = err
			}
			ok = err == nil && d.Allow
			inScope[ea] = ok
		}
		return ok
	}
	list := &SubmissionList{Mine: true, Status: opts.Status}
	f := storage.SubmissionFilter{Depositor: string(c.User), Current: opts.Status == wire.StatusCurrent, After: opts.After}
	if err := b.listRows(ctx, f, opts, keep, list); err != nil {
		return nil, err
	}
	if policyErr != nil {
		return nil, errorf(Internal, policyErr, "policy failed")
	}
	ev.Outcome = "ok"
	ev.Reason = listReason(opts, list)
	if err := b.record(ctx, ev); err != nil {
		return nil, err
	}
	return list, nil
}

// listRows reads one page of f into list: rows of EAs inScope keeps
// and of the status asked, at most opts.Limit, with list.Next set when
// there may be more. Next is only ever the index of a row in scope, so a
// cursor never tells of a submission outside it. inScope is asked about
// the EA in force each row's household belongs to (areas.go), never a
// retired one.
func (b *Broker) listRows(ctx context.Context, f storage.SubmissionFilter, opts ListOpts, inScope func(ea string) bool, list *SubmissionList) error {
	g := b.tree.geo()
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		list.Submissions = []SubmissionMeta{}
		list.Next = nil
		scanned, lastInScope := 0, f.After
		return tx.ListSubmissions(f, func(m storage.SubmissionMeta) (bool, error) {
			if m.AuditIndex <= f.After {
				return true, nil // the cursor is exclusive, whatever a backend hands back
			}
			scanned++
			if ea := submissionEA(g, m.Area, m.HouseholdNo); ea != "" && inScope(ea) {
				superseded := m.SupersededBy != ""
				if opts.Status == wire.StatusAll || superseded == (opts.Status == wire.StatusSuperseded) {
					if len(list.Submissions) == opts.Limit {
						next := list.Submissions[len(list.Submissions)-1].Index
						list.Next = &next
						return false, nil
					}
					list.Submissions = append(list.Submissions, metaOf(m))
				}
				lastInScope = m.AuditIndex
			}
			if scanned >= MaxListScan && lastInScope > f.After {
				next := lastInScope
				list.Next = &next
				return false, nil
			}
			return true, nil
		})
	})
	if err != nil {
		return errorf(Unavailable, err, "the vault database is unavailable; try again later")
	}
	return nil
}

func listReason(opts ListOpts, list *SubmissionList) string {
	r := fmt.Sprintf("status %s, after %d, limit %d: %d submissions", opts.Status, max(opts.After, 0), opts.Limit, len(list.Submissions))
	if opts.Mine {
		r = "mine, " + r
	}
	if list.Next != nil {
		r += ", more"
	}
	return r
}

func metaOf(m storage.SubmissionMeta) SubmissionMeta {
	st := wire.StatusCurrent
	if m.SupersededBy != "" {
		st = wire.StatusSuperseded
	}
	sm := SubmissionMeta{
		ID: SubmissionID(m.ID), EA: AreaCode(m.Area), HouseholdNo: m.HouseholdNo, Form: m.Form, FormVersion: m.FormVersion,
		Enumerator: m.Depositor, InterviewedAt: m.InterviewedAt.UTC(), ReceivedAt: m.ReceivedAt.UTC(),
		Supersedes: SubmissionID(m.Supersedes), SupersededBy: SubmissionID(m.SupersededBy), Status: st, Index: m.AuditIndex,
	}
	if r := m.Review; r.Status != "" {
		sm.Review = &wire.Review{Status: r.Status, Reason: r.Reason, Note: r.Note, Reviewer: r.Reviewer, At: r.At.UTC(), Index: r.AuditIndex}
	}
	return sm
}

// viewClasses are the field classes an open may reveal, in the order a
// view lists them, with the action that reveals each.
var viewClasses = []struct {
	class  form.Class
	action policy.Action
}{
	{form.Identifying, policy.ReadIdentifying},
	{form.Analytic, policy.ReadAnalytic},
	{form.Operational, policy.ReadOperational},
}

// errOpenCapped rolls back the transaction of an open past its cap.
var errOpenCapped = errors.New("open cap reached")

// OpenSubmission opens one submission for review: the classes policy
// allows the caller at its EA, each decided on its own. None allowed (or
// no such submission: the same answer) is Permission. The open is
// counted against the caller's hourly cap (the largest of its roles' that
// allow it, Opts.OpenCaps) and audited in one transaction; at the cap it
// is RateLimited with when to retry, audited, and nothing is revealed.
// Classes whose data keys were shredded are listed as gone; if nothing
// else is left to reveal the answer is Gone.
func (b *Broker) OpenSubmission(ctx context.Context, c *Caller, id SubmissionID) (*SubmissionView, error) {
	action := string(policy.ReadSubmission) // the umbrella name record opens are logged under
	if err := b.checkID(ctx, c, action, id); err != nil {
		return nil, err
	}
	forbidden := errorf(Permission, nil, "not permitted to read submission %s", id)
	now := b.now().UTC()
	var s *storage.Submission
	var opened int64 // the caller's opens in the window, before this one
	shredded := map[form.Class]bool{}
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		if s, err = tx.Submission(string(id)); err != nil {
			return err
		}
		for _, p := range s.Sealed {
			k, err := tx.DataKey(p.Class, s.Commune, p.KeyVersion)
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			if k != nil && !k.ShreddedAt.IsZero() {
				shredded[form.Class(p.Class)] = true
			}
		}
		opened, err = tx.OpensSince(string(c.User), now.Add(-OpenWindow))
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		ev := b.event(c, action, policy.Decision{Rule: "no such submission"})
		ev.Resources = []string{"submission:" + string(id)}
		ev.Outcome = "denied"
		return nil, b.refuse(ctx, ev, forbidden)
	}
	if err != nil {
		return nil, errorf(Unavailable, err, "the vault database is unavailable; try again later")
	}

	// One decision per class, at the EA its household belongs to now.
	path := b.submissionPath(s.Area, s.HouseholdNo)
	if path == nil {
		ev := b.event(c, action, policy.Decision{Rule: "the submission's household belongs to no area in force"})
		ev.Resources = []string{"submission:" + string(id)}
		ev.Outcome = "denied"
		return nil, b.refuse(ctx, ev, forbidden)
	}
	var allowed []form.Class
	var rules []string
	var d policy.Decision
	for _, vc := range viewClasses {
		cd, err := b.engineFor(c).Allow(ctx, c.subject(), vc.action, policy.Resource{Path: path})
		if err != nil {
			return nil, errorf(Internal, err, "policy failed")
		}
		if cd.Allow {
			allowed = append(allowed, vc.class)
			d.Allow = true
		}
		rules = append(rules, string(vc.class)+": "+cd.Rule)
		d.Roles = cd.Roles
	}
	d.Rule = strings.Join(rules, "; ")
	ev := b.event(c, action, d)
	ev.Area = s.Area
	ev.Resources = []string{"submission:" + string(id)}
	if !d.Allow {
		ev.Outcome = "denied"
		return nil, b.refuse(ctx, ev, forbidden)
	}
	// At the cap already: refused before any key is touched (the
	// transaction below decides for good).
	ev.Time = now
	capRole, capN := b.openCap(ctx, c, path, allowed)
	if opened >= int64(capN) {
		return nil, b.refuseCapped(ctx, c, ev, capRole, capN, now)
	}

	// Open the allowed classes in memory; the shredded ones are gone.
	f, ok := b.forms.Get(s.Form, s.FormVersion)
	if !ok {
		return nil, errorf(Internal, nil, "submission %s uses unknown form %s v%d", id, s.Form, s.FormVersion)
	}
	parts := map[form.Class][]byte{}
	defer func() {
		for _, p := range parts {
			clear(p)
		}
	}()
	var gone []string
	for _, cl := range allowed {
		if cl == form.Operational {
			parts[cl] = s.Operational
			continue
		}
		if shredded[cl] {
			gone = append(gone, string(cl))
			continue
		}
		plain, err := b.openPart(ctx, s, crypto.Class(cl))
		if KindOf(err) == Gone {
			gone = append(gone, string(cl))
			continue
		}
		if err != nil {
			return nil, err
		}
		parts[cl] = plain
	}
	view := &SubmissionView{Submission: metaOf(storage.SubmissionMeta{
		ID: s.ID, Area: s.Area, Commune: s.Commune, HouseholdNo: s.HouseholdNo, Form: s.Form, FormVersion: s.FormVersion,
		InterviewedAt: s.InterviewedAt, ReceivedAt: s.ReceivedAt, Depositor: s.Depositor,
		Supersedes: s.Supersedes, SupersededBy: s.SupersededBy, AuditIndex: s.AuditIndex,
	}), Classes: []string{}, Fields: map[string]wire.ClassFields{}, Gone: gone}
	persons := -1
	for _, vc := range viewClasses {
		p, ok := parts[vc.class]
		if !ok {
			continue
		}
		cf, err := classFields(f, vc.class, p)
		if err == nil && persons >= 0 && len(cf.Persons) != persons && len(p) > 0 {
			err = fmt.Errorf("%s part has %d persons, another part %d", vc.class, len(cf.Persons), persons)
		}
		if err != nil {
			b.log.Error("stored submission fields do not decode", "submission", string(id), "class", string(vc.class), "err", err)
			return nil, &Error{Kind: Internal, Code: "submission_corrupt", Err: err,
				Msg: "the stored submission fails its integrity check; the vault operator must repair it"}
		}
		if len(p) > 0 {
			persons = len(cf.Persons)
		}
		view.Classes = append(view.Classes, string(vc.class))
		view.Fields[string(vc.class)] = cf
	}
	if len(gone) > 0 {
		ev.Reason = "gone (data keys shredded): " + strings.Join(gone, ", ")
	}
	if len(view.Classes) == 0 {
		ev.Outcome = "gone"
		if err := b.record(ctx, ev); err != nil {
			return nil, err
		}
		return nil, errorf(Gone, nil, "the %s fields of submission %s are unreadable: their data keys were shredded", strings.Join(gone, " and "), id)
	}

	// The cap, the count and the event: one transaction.
	revealed := "revealed " + strings.Join(view.Classes, ", ")
	if ev.Reason != "" {
		revealed += "; " + ev.Reason
	}
	prune := now.Sub(time.Unix(0, b.openPruned.Load())) >= openPruneEvery
	actx, cancel := auditContext(ctx)
	defer cancel()
	err = b.store.Update(actx, func(tx storage.Tx) error {
		n, err := tx.OpensSince(string(c.User), now.Add(-OpenWindow))
		if err != nil {
			return err
		}
		if n >= int64(capN) {
			return errOpenCapped
		}
		if err := tx.RecordOpen(string(c.User), string(id), now); err != nil {
			return err
		}
		if prune {
			if _, err := tx.PruneOpens(now.Add(-openRetention)); err != nil {
				return err
			}
		}
		ev.Outcome, ev.Reason = "ok", revealed
		_, err = appendEvent(tx, ev)
		return err
	})
	if errors.Is(err, errOpenCapped) {
		// Another open of the caller's, on this instance or another,
		// took the last place meanwhile.
		clear(view.Fields)
		return nil, b.refuseCapped(ctx, c, ev, capRole, capN, now)
	}
	if err != nil {
		b.auditFailures.Add(1)
		b.log.Error("failed to record a record open", "err", err)
		return nil, errorf(Unavailable, err, "the audit log could not be written; nothing was revealed, try again later")
	}
	if prune {
		b.openPruned.Store(now.UnixNano())
	}
	return view, nil
}

// refuseCapped refuses an open past the caller's hourly cap: audited
// (outcome rate_limited), RateLimited with when to retry.
func (b *Broker) refuseCapped(ctx context.Context, c *Caller, ev *audit.Event, capRole policy.Role, capN int, now time.Time) error {
	ev.Outcome = "rate_limited"
	ev.Reason = fmt.Sprintf("hourly cap of record opens reached (%d for %s); nothing revealed", capN, capRole)
	e := &Error{Kind: RateLimited, Msg: fmt.Sprintf("you have opened %d submissions in the last hour, the most your role (%s) may; retry after the time in Retry-After", capN, capRole)}
	if capN == 0 {
		e.Msg = "your role may open no submissions (no hourly cap of record opens is set for it); ask the vault operator"
	} else {
		e.RetryAfter = b.openRetryAfter(ctx, c.User, now, capN)
	}
	return b.refuse(ctx, ev, e)
}

// openPart opens one sealed class of s.
func (b *Broker) openPart(ctx context.Context, s *storage.Submission, class crypto.Class) ([]byte, error) {
	for _, p := range s.Sealed {
		if p.Class != string(class) {
			continue
		}
		kid := crypto.DataKeyID{Class: class, Commune: s.Commune, Version: p.KeyVersion}
		ad := crypto.AD{Submission: s.ID, Form: s.Form, FormVersion: s.FormVersion, Area: s.Area, HouseholdNo: s.HouseholdNo}
		var plain []byte
		var err error
		for attempt := 0; ; attempt++ {
			plain, err = b.keyring.Open(kid, p.Data, ad)
			if !errors.Is(err, crypto.ErrKeyNotLoaded) || attempt == 2 {
				break
			}
			if err := b.loadDEK(ctx, kid); err != nil {
				return nil, err
			}
		}
		if errors.Is(err, crypto.ErrDecrypt) {
			b.log.Error("stored submission fields do not authenticate", "submission", s.ID, "class", string(class), "err", err)
			return nil, &Error{Kind: Internal, Code: "submission_corrupt", Err: err,
				Msg: "the stored submission fails its integrity check; the vault operator must repair it"}
		}
		if err != nil {
			return nil, errorf(Unavailable, err, "failed to open the %s fields; try again later", class)
		}
		return plain, nil
	}
	return nil, &Error{Kind: Internal, Code: "submission_corrupt", Err: fmt.Errorf("submission %s has no %s part", s.ID, class),
		Msg: "the stored submission fails its integrity check; the vault operator must repair it"}
}

// classFields decodes one class's part strictly (the form's fields of
// that class, valid values) into its wire form. An empty part (a
// submission stored without operational fields) has none.
func classFields(f *form.Form, class form.Class, part []byte) (wire.ClassFields, error) {
	cf := wire.ClassFields{Household: map[string]json.RawMessage{}, Persons: []map[string]json.RawMessage{}}
	if len(part) == 0 {
		return cf, nil
	}
	hh, persons, err := f.Join(map[form.Class][]byte{class: part})
	if err != nil {
		return cf, err
	}
	for k, v := range hh {
		cf.Household[k] = v.Raw()
	}
	for _, p := range persons {
		m := make(map[string]json.RawMessage, len(p))
		for k, v := range p {
			m[k] = v.Raw()
		}
		cf.Persons = append(cf.Persons, m)
	}
	return cf, nil
}

// openCap is the hourly cap of opens of c at path: the largest cap among
// c's roles whose own grants allow one of the classes revealed, and that
// role (for the messages).
func (b *Broker) openCap(ctx context.Context, c *Caller, path []string, classes []form.Class) (policy.Role, int) {
	best, bestN := policy.Role(""), -1
	seen := map[policy.Role]bool{}
	for _, g := range c.Grants {
		r := g.Role
		if g.Deny || seen[r] {
			continue
		}
		seen[r] = true
		var own []policy.Grant
		for _, h := range c.Grants {
			if h.Role == r {
				own = append(own, h)
			}
		}
		allows := false
		for _, vc := range viewClasses {
			if !containsClass(classes, vc.class) {
				continue
			}
			d, err := b.engineFor(c).Allow(ctx, policy.Subject{User: string(c.User), Grants: own}, vc.action, policy.Resource{Path: path})
			if err == nil && d.Allow {
				allows = true
				break
			}
		}
		if n := b.openCaps[r]; allows && n > bestN {
			best, bestN = r, n
		}
	}
	return best, max(bestN, 0)
}

func containsClass(list []form.Class, c form.Class) bool {
	for _, x := range list {
		if x == c {
			return true
		}
	}
	return false
}

// openRetryAfter is how long until user, at the cap now, may open again
// if it opens nothing meanwhile: until the oldest open that keeps the
// window full leaves it. It searches the stored opens' times to the
// second with OpensSince; if the store cannot say, the whole window.
func (b *Broker) openRetryAfter(ctx context.Context, user UserID, now time.Time, capN int) time.Duration {
	var t time.Time
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		full := func(since time.Time) (bool, error) {
			n, err := tx.OpensSince(string(user), since)
			return n >= int64(capN), err
		}
		lo, hi := now.Add(-OpenWindow), now
		if ok, err := full(hi); err != nil || ok {
			t = hi
			return err
		}
		// full(lo) holds (the cap was reached), full(hi) does not: the
		// last since that keeps the window full lies in [lo, hi).
		for hi.Sub(lo) > time.Second {
			mid := lo.Add(hi.Sub(lo) / 2)
			ok, err := full(mid)
			if err != nil {
				return err
			}
			if ok {
				lo = mid
			} else {
				hi = mid
			}
		}
		t = lo
		return nil
	})
	if err != nil {
		return OpenWindow
	}
	return min(max(t.Add(OpenWindow+time.Second).Sub(now), time.Second), OpenWindow)
}
