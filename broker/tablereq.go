package broker

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/sdc"
	"github.com/censusvault/censusvault/broker/tables"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// Audit actions of the table broker.
const (
	actionTable  = string(policy.RequestTable) // "table.request"
	actionReplay = "table.replay"
)

// refreshPage is how many submissions one refresh step reads, opens and
// appends to the table cache.
const refreshPage = 2048

// tableState is the table engine's column cache and what keeps it
// current. The cache is built on the first table request (or replay) and
// then refreshed incrementally before each: only submissions deposited
// since are read and opened. It is built anew when the table form's
// versions change (tableform.go).
type tableState struct {
	name   string // the table form (tableform.go)
	params sdc.Params

	formMu sync.Mutex                // one read of the table form at a time (tableForm)
	form   atomic.Pointer[tableForm] // the table form as last read

	// gen counts resets. A reset only bumps it, so that a shred never
	// waits for a cache build (minutes on a national census); a build or
	// refresh that sees it move starts over.
	gen       atomic.Int64
	shredSeen atomic.Int64 // analytic data-key tombstones seen (forgetShredded)

	mu       sync.Mutex // one build or refresh at a time; guards the fields below
	cache    *tables.Cache
	cacheGen int64 // gen the cache was started at
	unread   int64 // submissions whose analytic part could not be opened (shredded) or is of another form
	progress func(households int)
}

func newTableState(params *sdc.Params) (*tableState, error) {
	p := sdc.DefaultParams()
	if params != nil {
		p = *params
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &tableState{params: p}, nil
}

// resetTables drops the table cache: the next request rebuilds it. Called
// when analytic data keys are shredded, so that nothing decrypted under
// them outlives them in memory.
func (b *Broker) resetTables() { b.tables.gen.Add(1) }

// SetTableProgress installs a callback told how many households the
// table cache holds while it is built (for the CLI's progress line).
func (b *Broker) SetTableProgress(fn func(households int)) {
	b.tables.mu.Lock()
	b.tables.progress = fn
	b.tables.mu.Unlock()
}

// refreshTables brings the cache up to the latest deposit and returns it,
// built anew first if the table form's versions changed; its schema
// (Cache.Schema) is the table form's latest version's.
func (b *Broker) refreshTables(ctx context.Context) (*tables.Cache, error) {
	ts := b.tables
	ts.mu.Lock()
	defer ts.mu.Unlock()
	// Read under ts.mu, so that the cache never goes back to an older
	// schema than one a request before used.
	schema, err := b.tableSchema(ctx)
	if err != nil {
		return nil, err
	}
	var c *tables.Cache
	var after int64
	rows := make([]storage.SubmissionRow, 0, refreshPage)
	for {
		if g := ts.gen.Load(); ts.cache == nil || ts.cacheGen != g || ts.cache.Schema() != schema {
			// First use, analytic keys were shredded, or the table
			// form has another version: start afresh. Every area there
			// ever was: households stay under the EA they were
			// deposited in, retired or not (areas.go). The tree of a
			// point's revision is b.GeographyAt's.
			nc, err := tables.NewCache(schema, b.tree.geo().All())
			if err != nil {
				return nil, errorf(Internal, err, "failed to set up the table engine")
			}
			ts.cache, ts.cacheGen, ts.unread = nc, g, 0
			c, after = nc, nc.UpTo()
		} else if c == nil {
			c, after = ts.cache, ts.cache.UpTo()
		}
		rows = rows[:0]
		err := b.store.View(ctx, func(tx storage.ReadTx) error {
			rows = rows[:0]
			return tx.SubmissionsSince(after, string(crypto.Analytic), func(r storage.SubmissionRow) (bool, error) {
				rows = append(rows, r)
				return len(rows) < refreshPage, nil
			})
		})
		if err != nil {
			return nil, errorf(Unavailable, err, "failed to read submissions for the table engine")
		}
		if len(rows) == 0 {
			if ts.gen.Load() != ts.cacheGen {
				continue // reset while we read: rebuild
			}
			return c, nil
		}
		hs, unread, err := b.openRows(ctx, c.Schema(), rows)
		if err != nil {
			return nil, err
		}
		last := rows[len(rows)-1].AuditIndex
		if err := c.Append(hs, last); err != nil {
			return nil, errorf(Internal, err, "failed to add submissions to the table engine")
		}
		for i := range hs {
			clear(hs[i].Analytic)
		}
		ts.unread += unread
		after = last
		if ts.progress != nil {
			h, _, _ := c.Size()
			ts.progress(h)
		}
	}
}

// openRows opens the analytic parts of rows and derives their record
// keys, on every core. Parts that cannot be opened because their data key
// was shredded, or that belong to a form the engine does not tabulate
// (another form than the table form, or a version after s's: the next
// refresh reads the registry again and rebuilds), are left out and
// counted.
func (b *Broker) openRows(ctx context.Context, s *tables.Schema, rows []storage.SubmissionRow) ([]tables.Household, int64, error) {
	out := make([]tables.Household, len(rows))
	skip := make([]bool, len(rows))
	errs := make([]error, len(rows))
	workers := max(1, min(runtime.GOMAXPROCS(0), 8))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(rows); i += workers {
				h, ok, err := b.openRow(ctx, s, &rows[i])
				out[i], skip[i], errs[i] = h, !ok, err
			}
		}()
	}
	wg.Wait()
	var unread int64
	kept := out[:0]
	for i := range rows {
		if errs[i] != nil {
			return nil, 0, errs[i]
		}
		if skip[i] {
			unread++
			continue
		}
		kept = append(kept, out[i])
	}
	return kept, unread, nil
}

func (b *Broker) openRow(ctx context.Context, s *tables.Schema, r *storage.SubmissionRow) (tables.Household, bool, error) {
	if name, version := s.Form(); len(r.Sealed.Data) == 0 || r.Form != name || r.FormVersion > version {
		return tables.Household{}, false, nil
	}
	kid := crypto.DataKeyID{Class: crypto.Analytic, Commune: r.Commune, Version: r.Sealed.KeyVersion}
	ad := crypto.AD{Submission: r.ID, Form: r.Form, FormVersion: r.FormVersion, Area: r.Area, HouseholdNo: r.HouseholdNo}
	var plain []byte
	var err error
	for attempt := 0; ; attempt++ {
		plain, err = b.keyring.Open(kid, r.Sealed.Data, ad)
		if !errors.Is(err, crypto.ErrKeyNotLoaded) || attempt == 2 {
			break
		}
		if err := b.loadDEK(ctx, kid); err != nil {
			if KindOf(err) == Gone {
				return tables.Household{}, false, nil
			}
			return tables.Household{}, false, err
		}
	}
	if err != nil {
		if errors.Is(err, crypto.ErrDecrypt) {
			return tables.Household{}, false, b.tableDataCorrupt(r, "do not authenticate", err)
		}
		return tables.Household{}, false, errorf(Unavailable, err, "failed to open analytic fields for the table engine")
	}
	n, err := tables.CountPersons(plain)
	if err != nil {
		clear(plain)
		return tables.Household{}, false, b.tableDataCorrupt(r, "do not decode", err)
	}
	h := tables.Household{
		AuditIndex: r.AuditIndex, SupersedesIndex: r.SupersedesIndex, EA: r.Area,
		Key: b.RecordKey(SubmissionID(r.ID), 0), PersonKeys: make([]uint32, n), Analytic: plain,
	}
	for p := range n {
		h.PersonKeys[p] = b.RecordKey(SubmissionID(r.ID), p+1)
	}
	return h, true, nil
}

// tableDataCorrupt is the failure of a stored submission the table
// engine cannot read. Tables fail closed: one silently missing household
// would make every table that covers it wrong. The submission's id goes to
// the operator's log only: the researcher, whose table may not even cover
// it, learns nothing of other households.
func (b *Broker) tableDataCorrupt(r *storage.SubmissionRow, what string, err error) *Error {
	b.log.Error("table engine: stored analytic fields "+what+"; no table can be computed until the submission is repaired or removed",
		"submission", r.ID, "audit_index", r.AuditIndex, "err", err)
	return &Error{Kind: Internal, Code: "table_data_corrupt",
		Msg: "the table engine found stored data that fails its integrity check; no table can be computed until the vault operator repairs it",
		Err: fmt.Errorf("analytic fields of submission %s (audit index %d) %s: %w", r.ID, r.AuditIndex, what, err)}
}

// TableRelease is a released table.
type TableRelease struct {
	Body        []byte // the table, or its age encryption when Encrypted
	ContentType string // of the plaintext table: application/json or text/csv
	Encrypted   bool
	Digest      string // "sha256:" + hex SHA-256 of the plaintext table, as logged
	AuditIndex  int64  // the release's audit event
	AsOf        int64  // the deposit sequence point its publication point was made at
	Point       string // the publication point
	Cells       int    // cells released (and debited), margins included
	Remaining   int64
	// DP says the table is a custom one under differential privacy, Rho
	// its ρ; Repeat that it repeats a query charged before, so nothing
	// was debited.
	DP     bool
	Rho    string
	Repeat bool
}

// TableOpts are a table request's transport options.
type TableOpts struct {
	Format  string // tables.FormatJSON or tables.FormatCSV
	Encrypt bool   // encrypt to the caller's registered recipient
	// ContentLength is the body's declared size (0 or -1 when unknown):
	// over tables.MaxRequestBytes the request is refused before its body
	// is read, so that nobody waits for a body that will be refused.
	ContentLength int64
}

// TableParams returns the disclosure-control parameters in force.
func (b *Broker) TableParams() sdc.Params { return b.tables.params }

// RequestTable runs one researcher's table request (body: the JSON
// request, read up to tables.MaxRequestBytes+1 so that an oversize body is
// refused and audited here) end to end: parse,
// project checks (open, not expired, variables, areas), policy for every
// area the table covers under the project, computation as of a point of
// the deposit sequence, disclosure control, then the budget debit and the
// audit event (with the normalized request and the SHA-256 of the released
// plaintext) in one transaction. Nothing is released unless that commits.
// Every refusal is audited too.
func (b *Broker) RequestTable(ctx context.Context, c *Caller, body []byte, o TableOpts) (*TableRelease, error) {
	ev := b.event(c, actionTable, policy.Decision{})
	ev.Area = string(b.tree.Root())
	invalid, deny := b.tableRefusers(ctx, ev)
	if o.Format == "" {
		o.Format = tables.FormatJSON
	}
	if len(body) > tables.MaxRequestBytes || o.ContentLength > tables.MaxRequestBytes {
		ev.Outcome, ev.Reason = "too_large", fmt.Sprintf("body over %d bytes", tables.MaxRequestBytes)
		return nil, b.refuse(ctx, ev, errorf(TooLarge, nil, "table request body over %d bytes", tables.MaxRequestBytes))
	}
	req, err := tables.ParseRequest(body)
	if err != nil {
		return nil, invalid(err.Error())
	}
	if req.Project == "" {
		return nil, invalid("a table request names its project")
	}
	if !projectIDRE.MatchString(req.Project) {
		return nil, invalid("project id " + clip(req.Project) + " is not a project id")
	}
	ev.Resources = []string{"project:" + req.Project}
	if err := checkText("purpose", req.Purpose); err != nil {
		return nil, invalid("a table request states its purpose: " + err.Error())
	}
	ev.Purpose = req.Purpose

	// The caller may request tables at all (a researcher grant for this
	// project, or one without a project).
	d0 := b.anyGrantAllowsFor(ctx, c, policy.RequestTable, req.Project)
	ev.Rule, ev.Roles = d0.Rule, nonNil(d0.Roles, c.roleNames())
	if !d0.Allow {
		ev.Decision = "deny"
		return nil, deny("not permitted to request tables for project " + req.Project)
	}
	if req.Custom() {
		if req.Table != "" || req.Area != "" {
			return nil, invalid("a custom table takes rows, cols, filter, measure, unit and rho; \"table\" and \"area\" name a standard table of the catalogue: send one or the other")
		}
		return b.requestDP(ctx, c, ev, req, o)
	}
	if req.Table == "" {
		return nil, invalid("a table request names a standard table: {\"table\": ID, \"area\": CODE} (GET /v1/catalogue lists them)")
	}
	if req.Area == "" {
		return nil, invalid("a standard table request names the area it is for (\"area\": CODE)")
	}
	// A table form without a catalogue has no standard tables: say so
	// before anything else (checked again with the cache's schema).
	if s, err := b.tableSchemaFor(ctx, ev); err != nil {
		return nil, err
	} else if _, nocat := standardCatalogue(s); nocat != nil {
		ev.Outcome, ev.Reason = "refused", nocat.Msg
		return nil, b.refuse(ctx, ev, nocat)
	}

	in, err := b.readTableInputs(ctx, c, ev, req, o, false)
	if err != nil {
		return nil, err
	}
	proj, point, recipient := in.proj, in.point, in.recipient
	if point == nil {
		if req.Point == "" {
			return nil, invalid("no publication point has been made yet: standard tables are computed at one (an approver makes it with `censusvault release-point create NAME`)")
		}
		return nil, invalid(fmt.Sprintf("no publication point %q (GET /v1/release-points lists them)", clip(req.Point)))
	}
	if point.Scheduled {
		return nil, invalid(fmt.Sprintf("%s is a scheduled point of dp tables: standard tables are computed at publication points only (GET /v1/release-points lists them)", point.Name))
	}
	ps, err := tables.ParsePointState(point.State)
	if err != nil {
		return nil, errorf(Internal, err, "publication point %s's stored state does not read", point.Name)
	}
	cache, err := b.tableCache(ctx, ev)
	if err != nil {
		return nil, err
	}
	cat, nocat := standardCatalogue(cache.Schema())
	if nocat != nil {
		ev.Outcome, ev.Reason = "refused", nocat.Msg
		return nil, b.refuse(ctx, ev, nocat)
	}
	plan, err := cache.CompileStandard(cat,
		tables.StandardRequest{Project: req.Project, Table: req.Table, Area: area.Code(req.Area), Point: point.Name},
		tables.Project{ID: proj.ID, Areas: proj.Areas, Variables: proj.Variables}, ps, digestOf(point.State), b.tables.params, o.Format)
	if err := b.admitPlan(ctx, c, ev, plan, err, proj.ID); err != nil {
		return nil, err
	}

	// A point whose frozen households were since shredded no longer
	// computes what was released at it: differencing the two would show
	// the shredded households.
	stale, err := cache.Stale(ps, digestOf(point.State), area.Code(req.Area))
	if err != nil {
		return nil, errorf(Internal, err, "failed to check the publication point")
	}
	if len(stale) > 0 {
		msg := fmt.Sprintf("publication point %s no longer holds what it froze for %s (analytic keys were shredded since, under %d area(s)): ask at a later point", point.Name, req.Area, len(stale))
		ev.Outcome, ev.Reason = "refused", msg
		return nil, b.refuse(ctx, ev, &Error{Kind: Conflict, Code: "point_stale", Msg: msg})
	}

	tab, err := cache.Run(plan)
	var re *tables.RequestError
	if errors.As(err, &re) {
		return nil, invalid(re.Msg)
	}
	if err != nil {
		return nil, errorf(Internal, err, "failed to compute the table")
	}
	plain := tab.Render()
	sum := sha256.Sum256(plain)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	cells := int64(plan.Cells())

	var rec storage.AuditRecord
	var remaining int64
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		var err error
		if remaining, err = tx.DebitProject(proj.ID, cells); err != nil {
			return err
		}
		ev.Outcome, ev.ReleaseDigest = "ok", digest
		ev.Reason = fmt.Sprintf("%s; debited %d cells, %d left", plan.Describe(), cells, remaining)
		rec, err = appendEvent(tx, ev)
		return err
	})
	if errors.Is(err, storage.ErrBudgetExhausted) {
		ev.ReleaseDigest = ""
		return nil, deny(fmt.Sprintf("project %s's cell budget cannot cover this table's %d cells (see `censusvault project show %s`)", proj.ID, cells, proj.ID))
	}
	if err != nil {
		return nil, errorf(Unavailable, err, "the release could not be logged; nothing was released")
	}
	out := &TableRelease{Body: plain, ContentType: contentType(o.Format), Digest: digest, AuditIndex: rec.Index, AsOf: point.AsOf, Point: point.Name, Cells: int(cells), Remaining: remaining}
	if o.Encrypt {
		enc, err := crypto.EncryptTo(recipient, plain)
		if err != nil {
			return nil, errorf(Internal, err, "failed to encrypt the table to the registered recipient")
		}
		out.Body, out.Encrypted = enc, true
	}
	return out, nil
}

// tableInputs is what a table request reads of the store before it
// computes anything.
type tableInputs struct {
	proj      *storage.Project
	point     *storage.ReleasePoint // nil: no point of the name asked (or none yet)
	recipient string                // the caller's, when the table is to be encrypted
	shreds    map[area.Code]int64   // analytic shreds (dp tables only)
}

// readTableInputs reads, in one snapshot, the request's project, the
// point it names (none named: for a standard table the latest
// publication point, for a dp table none — the day's scheduled point is
// found or made later), the caller's recipient when the table is to be
// encrypted and, for a dp table, the analytic shreds; and refuses,
// audited with ev, a project that is unknown, closed or expired and
// encryption without a registered recipient.
func (b *Broker) readTableInputs(ctx context.Context, c *Caller, ev *audit.Event, req *tables.Request, o TableOpts, dp bool) (*tableInputs, error) {
	invalid, deny := b.tableRefusers(ctx, ev)
	in := &tableInputs{}
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		if in.proj, err = tx.Project(req.Project); err != nil {
			return err
		}
		if dp {
			if in.shreds, err = analyticShreds(tx); err != nil {
				return err
			}
		}
		switch {
		case req.Point != "":
			in.point, err = tx.ReleasePoint(req.Point)
		case !dp:
			in.point, err = tx.LatestReleasePoint()
		}
		if errors.Is(err, storage.ErrNotFound) {
			in.point, err = nil, nil
		}
		if err != nil {
			return err
		}
		if o.Encrypt {
			u, err := tx.User(string(c.User))
			if err != nil {
				return err
			}
			in.recipient = u.Recipient
		}
		return nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		if in.proj == nil {
			return nil, deny("no project " + req.Project)
		}
		return nil, errorf(Unavailable, err, "the caller's user record is missing")
	}
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read the project")
	}
	now := b.now().UTC()
	switch {
	case !in.proj.ClosedAt.IsZero():
		return nil, deny(fmt.Sprintf("project %s was closed on %s", in.proj.ID, in.proj.ClosedAt.Format(time.DateOnly)))
	case !now.Before(in.proj.Expires):
		return nil, deny(fmt.Sprintf("project %s expired on %s", in.proj.ID, in.proj.Expires.Format(time.DateOnly)))
	case o.Encrypt && in.recipient == "":
		return nil, invalid("encrypted output was asked for, but no recipient is registered for " + string(c.User) + ": an admin registers one with `censusvault user set-recipient " + string(c.User) + " age1…`")
	}
	return in, nil
}

// tableRefusers returns the two refusals of a table request, each
// audited with ev: a malformed request, and one policy or the project
// refuses.
func (b *Broker) tableRefusers(ctx context.Context, ev *audit.Event) (invalid, deny func(msg string) error) {
	invalid = func(msg string) error {
		ev.Outcome, ev.Reason = "invalid", msg
		return b.refuse(ctx, ev, errorf(Invalid, nil, "%s", msg))
	}
	deny = func(msg string) error {
		if ev.Decision == "" || ev.Decision == "allow" {
			ev.Decision = "deny"
		}
		ev.Outcome, ev.Reason = "denied", msg
		return b.refuse(ctx, ev, errorf(Permission, nil, "%s", msg))
	}
	return invalid, deny
}

// tableCache is the table engine's cache brought up to date for a
// request; its failure is recorded with ev.
func (b *Broker) tableCache(ctx context.Context, ev *audit.Event) (*tables.Cache, error) {
	cache, err := b.refreshTables(ctx)
	if err != nil {
		ev.Outcome, ev.Reason = "error", "table engine unavailable"
		if rerr := b.record(ctx, ev); rerr != nil {
			return nil, rerr
		}
		return nil, err
	}
	return cache, nil
}

// admitPlan turns what compiling a table request gave (plan, err) into
// the request's answer so far: a malformed request or one outside the
// project refused (audited with ev), or the plan recorded in ev and its
// cover authorized (authorizeCover).
func (b *Broker) admitPlan(ctx context.Context, c *Caller, ev *audit.Event, plan *tables.Plan, err error, project string) error {
	invalid, deny := b.tableRefusers(ctx, ev)
	var re *tables.RequestError
	if errors.As(err, &re) {
		if re.Denied {
			return deny(re.Msg)
		}
		return invalid(re.Msg)
	}
	if err != nil {
		return errorf(Internal, err, "failed to compile the table request")
	}
	ev.Request = plan.Encode()
	return b.authorizeCover(ctx, c, ev, plan, project)
}

// authorizeCover checks policy for the whole subtree of every area the
// table covers, under its project: a table whose cover holds a denied
// area anywhere is refused, since the same table over the allowed parts
// subtracted from it would isolate the denied area. The release is then
// recorded at the lowest area holding all of its cover, so an auditor
// sees it only if that whole subtree is in scope.
func (b *Broker) authorizeCover(ctx context.Context, c *Caller, ev *audit.Event, plan *tables.Plan, project string) error {
	_, deny := b.tableRefusers(ctx, ev)
	sc, err := b.scope(c, policy.RequestTable, project)
	if err != nil {
		return err
	}
	for _, a := range plan.Areas {
		d, err := sc.Subtree(b.tree.PathStrings(a), b.pathOf)
		if err != nil {
			return errorf(Internal, err, "policy failed")
		}
		ev.Rule, ev.Roles = d.Rule, nonNil(d.Roles, c.roleNames())
		if !d.Allow {
			ev.Decision, ev.Area = "deny", string(a)
			return deny(fmt.Sprintf("not permitted to request tables for area %s under project %s (the whole area, everything under it included, must be in your scope)", a, project))
		}
	}
	ev.Decision = "allow"
	ev.Area = string(b.commonAncestor(plan.Areas))
	return nil
}

func contentType(format string) string {
	if format == tables.FormatCSV {
		return "text/csv; charset=utf-8"
	}
	return "application/json"
}

func nonNil(a, b []string) []string {
	if len(a) > 0 {
		return a
	}
	if b == nil {
		return []string{}
	}
	return b
}

// ReplayResult is what `censusvault table replay` reports.
type ReplayResult struct {
	Index   int64
	Project string
	AsOf    int64
	Point   string // the publication point of a standard table; "" for a free-form one
	Logged  string // digest in the audit event
	Digest  string // digest of the recomputed table
	Match   bool
	Table   []byte // the recomputed plaintext table
	Unread  int64  // submissions the engine could not open (shredded keys)
}

// ReplayTable recomputes the table released by audit event index from
// the normalized request the event holds, as of the same point, with the
// same disclosure-control parameters, and compares its SHA-256 with the
// logged digest. It checks no project state (a closed project's releases
// can be replayed) and debits nothing. The replay itself is audited
// ("table.replay"). A mismatch means the data as of that point changed
// (a shredded commune's records can no longer be opened) or the log or
// the engine did: the result says which digests differ, never a value.
func (b *Broker) ReplayTable(ctx context.Context, actor string, index int64) (*ReplayResult, error) {
	var raw []byte
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		return tx.AuditRecords(index, 1, func(r storage.AuditRecord) (bool, error) {
			if r.Index == index {
				raw = r.Event
			}
			return false, nil
		})
	})
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read the audit log")
	}
	if raw == nil {
		return nil, errorf(NotFound, nil, "no audit event %d", index)
	}
	ev, err := audit.Decode(raw)
	if err != nil {
		return nil, errorf(Internal, err, "audit event %d does not decode: verify the log (`censusvault audit verify`)", index)
	}
	if ev.Action != actionTable || ev.Request == "" || ev.ReleaseDigest == "" {
		return nil, errorf(Invalid, nil, "audit event %d is not a released table (action %s, outcome %s)", index, ev.Action, ev.Outcome)
	}
	if std, err := tables.ParseStandardNorm(ev.Request); err == nil {
		return b.replayStandard(ctx, actor, index, ev, std)
	}
	if n, err := tables.ParseDPNorm(ev.Request); err == nil {
		return b.replayDP(ctx, actor, index, ev, n)
	}
	norm, err := tables.ParseNormalized(ev.Request)
	if err != nil {
		return nil, errorf(Internal, err, "audit event %d: %v", index, err)
	}
	params, err := sdc.ParseCanonical(norm.SDC)
	if err != nil {
		return nil, errorf(Internal, err, "audit event %d: %v", index, err)
	}
	var proj *storage.Project
	if err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		proj, err = tx.Project(norm.Project)
		return err
	}); err != nil {
		return nil, errorf(Unavailable, err, "failed to read project %s", norm.Project)
	}
	cache, err := b.refreshTables(ctx)
	if err != nil {
		return nil, err
	}
	req := &tables.Request{Project: norm.Project, Unit: norm.Unit, Rows: norm.Rows, Cols: norm.Cols, Filter: norm.Filter, Measure: norm.Measure}
	plan, err := cache.Compile(req, tables.Project{ID: proj.ID, Areas: proj.Areas, Variables: proj.Variables}, params, norm.Format, norm.AsOf)
	if err != nil {
		return nil, errorf(Internal, err, "audit event %d's request no longer compiles", index)
	}
	res := &ReplayResult{Index: index, Project: norm.Project, AsOf: norm.AsOf, Logged: ev.ReleaseDigest}
	return b.finishReplay(ctx, actor, ev, res, cache, plan)
}

// replayStandard recomputes a standard table release: the catalogue
// version, table, area and publication point it recorded, with the
// parameters it recorded, the point's stored state checked against the
// digest in the event.
func (b *Broker) replayStandard(ctx context.Context, actor string, index int64, ev *audit.Event, std *tables.StandardNorm) (*ReplayResult, error) {
	params, err := sdc.ParseCanonical(std.SDC)
	if err != nil {
		return nil, errorf(Internal, err, "audit event %d: %v", index, err)
	}
	proj, point, err := b.replayInputs(ctx, std.Project, std.Point, std.PointState)
	if err != nil {
		return nil, err
	}
	ps, err := tables.ParsePointState(point.State)
	if err != nil {
		return nil, errorf(Internal, err, "publication point %s's stored state does not read", std.Point)
	}
	cache, err := b.refreshTables(ctx)
	if err != nil {
		return nil, err
	}
	cat, err := tables.StandardCatalogue(cache.Schema(), std.Catalogue)
	if err != nil {
		return nil, errorf(Internal, err, "audit event %d names catalogue version %d, which this build does not hold for the table form's latest version", index, std.Catalogue)
	}
	plan, err := cache.CompileStandard(cat, tables.StandardRequest{Project: std.Project, Table: std.Table, Area: area.Code(std.Area), Point: std.Point},
		tables.Project{ID: proj.ID, Areas: proj.Areas, Variables: proj.Variables}, ps, std.PointState, params, std.Format)
	if err != nil {
		return nil, errorf(Internal, err, "audit event %d's request no longer compiles", index)
	}
	res := &ReplayResult{Index: index, Project: std.Project, AsOf: point.AsOf, Point: std.Point, Logged: ev.ReleaseDigest}
	return b.finishReplay(ctx, actor, ev, res, cache, plan)
}

// replayInputs reads the project and the point a release recorded, and
// checks the point's stored state against the digest the release
// recorded: a replay proves it used the same frozen state.
func (b *Broker) replayInputs(ctx context.Context, project, pointName, stateDigest string) (*storage.Project, *storage.ReleasePoint, error) {
	var proj *storage.Project
	var point *storage.ReleasePoint
	if err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		if proj, err = tx.Project(project); err != nil {
			return err
		}
		point, err = tx.ReleasePoint(pointName)
		return err
	}); err != nil {
		return nil, nil, errorf(Unavailable, err, "failed to read project %s and point %s", project, pointName)
	}
	if got := digestOf(point.State); got != stateDigest {
		return nil, nil, errorf(Internal, nil, "point %s's stored state is %s, the release recorded %s: the store was altered", pointName, got, stateDigest)
	}
	return proj, point, nil
}

// digestOf is "sha256:" and the hex SHA-256 of b.
func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// finishReplay checks that the recompiled request is the logged one,
// recomputes the table, compares it with the logged digest and audits
// the replay.
func (b *Broker) finishReplay(ctx context.Context, actor string, ev *audit.Event, res *ReplayResult, cache *tables.Cache, plan *tables.Plan) (*ReplayResult, error) {
	index := res.Index
	if plan.Encode() != ev.Request {
		return nil, errorf(Internal, nil, "audit event %d's request does not normalize to itself", index)
	}
	b.tables.mu.Lock()
	res.Unread = b.tables.unread
	b.tables.mu.Unlock()
	var tab *tables.Table
	var err error
	if plan.DP() {
		tab, err = b.runDP(cache, plan)
	} else {
		tab, err = cache.Run(plan)
	}
	if err != nil {
		return nil, errorf(Internal, err, "audit event %d's table no longer computes", index)
	}
	res.Table = tab.Render()
	res.Digest = digestOf(res.Table)
	res.Match = res.Digest == res.Logged
	if plan.DP() && !res.Match {
		// The same seed over other data: the released table minus this
		// one would be the difference of the data, without noise.
		clear(res.Table)
		res.Table = nil
	}
	rev := &audit.Event{
		Time: b.now().UTC(), Actor: actor, Roles: []string{}, Action: actionReplay, Area: cmp.Or(ev.Area, string(b.tree.Root())),
		Resources: []string{fmt.Sprintf("audit:%d", index), "project:" + res.Project},
		Decision:  "allow", Rule: "operator with access to the data directory and the key provider",
		Outcome: map[bool]string{true: "match", false: "mismatch"}[res.Match], ReleaseDigest: res.Digest,
	}
	if err := b.record(ctx, rev); err != nil {
		return nil, err
	}
	return res, nil
}

// TableCacheSize reports what the table cache holds (households, persons,
// bytes of columns); zeros before its first use.
func (b *Broker) TableCacheSize() (households, persons int, bytes int64) {
	b.tables.mu.Lock()
	c := b.tables.cache
	b.tables.mu.Unlock()
	if c == nil {
		return 0, 0, 0
	}
	return c.Size()
}

// WarmTables builds or refreshes the table cache now (the first table
// request would otherwise pay for it).
func (b *Broker) WarmTables(ctx context.Context) error {
	_, err := b.refreshTables(ctx)
	return err
}
