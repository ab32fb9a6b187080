package broker

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/sdc"
	"github.com/censusvault/censusvault/broker/synth"
	"github.com/censusvault/censusvault/broker/tables"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/sqlite"
)

// replayActor is the operator of the replay tests.
const replayActor = "cli:replaytest"

// ckpV1 is the sdc parameter text of releases made before ckp/v2: what
// the audit log of an older vault holds.
const ckpV1 = "ckp/v1 D=2 V=1 js=10 dims=4 cells=50000 universe=100 modulus=4294967296"

// replayVault is a broker on a new SQLite vault of one district (four
// communes of two EAs, 1,280 planned households) holding 300 synthetic
// households, a project "fert" over the district and its researcher;
// load deposits n more synthetic households.
func replayVault(t *testing.T) (b *Broker, rita *Caller, load func(n int)) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	var csv strings.Builder
	csv.WriteString("code,parent,level,name,planned_households\nVN,,nation,Việt Nam,\n42,VN,province,Tỉnh Hà Tĩnh,\n437,42,district,Thị xã Hồng Lĩnh,\n")
	for _, c := range []string{"18070", "18073", "18076", "18079"} {
		fmt.Fprintf(&csv, "%s,437,commune,Phường %s,\n", c, c)
		for e := 1; e <= 2; e++ {
			fmt.Fprintf(&csv, "%s-%02d,%s,ea,Địa bàn %02d,160\n", c, e, c, e)
		}
	}
	tree, err := area.Load(strings.NewReader(csv.String()))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := agekey.Create(filepath.Join(dir, agekey.FileName))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(dir, sqlite.FileName), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := Init(ctx, InitOpts{Store: st, Keys: keys, Areas: tree, Name: "replay.test", Actor: replayActor}); err != nil {
		t.Fatal(err)
	}
	b, err = New(ctx, Opts{Store: st, Keys: keys, PointK: 5, PointInterval: -1, Limits: Limits{UserRate: -1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	g, err := synth.New(synth.Opts{Seed: 3, EAs: synth.EAs(tree)})
	if err != nil {
		t.Fatal(err)
	}
	loaded := 0
	load = func(n int) {
		t.Helper()
		for i := loaded; i < loaded+n; i++ {
			hh, _, err := g.Household(i)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.IngestSynthetic(ctx, replayActor, hh); err != nil {
				t.Fatal(err)
			}
		}
		loaded += n
	}
	load(300)
	p := NewProject{ID: "fert", Title: "Fertility", Purpose: "fertility by age", Areas: []AreaCode{"437"},
		Variables: []string{"sex", "age_group5", "age"}, Expires: b.now().AddDate(0, 6, 0), Budget: 100000}
	if err := b.AddProject(ctx, replayActor, p); err != nil {
		t.Fatal(err)
	}
	tok, err := b.AddUser(ctx, replayActor, NewUser{Name: "rita", Role: policy.Researcher, Area: "VN", Project: "fert"})
	if err != nil {
		t.Fatal(err)
	}
	rita, err = b.Authenticate(ctx, "Bearer "+tok.Reveal(), "test")
	if err != nil {
		t.Fatal(err)
	}
	return b, rita, load
}

// releaseFreeForm releases a free-form table as the broker did before the
// catalogue, under ckp/v1: the request compiled by tables.Cache.Compile
// as of asOf, rendered, the project debited and the event (its Request
// the normalized free-form request) appended through the broker's own
// append path. It returns the event's index and the released bytes.
func releaseFreeForm(t *testing.T, b *Broker, c *Caller, body, format string, asOf int64) (int64, []byte) {
	t.Helper()
	ctx := context.Background()
	params, err := sdc.ParseCanonical(ckpV1)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := b.refreshTables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req, err := tables.ParseRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	var proj *storage.Project
	if err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		proj, err = tx.Project(req.Project)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	plan, err := cache.Compile(req, tables.Project{ID: proj.ID, Areas: proj.Areas, Variables: proj.Variables}, params, format, asOf)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := cache.Run(plan)
	if err != nil {
		t.Fatal(err)
	}
	plain := tab.Render()
	ev := b.event(c, actionTable, policy.Decision{Allow: true, Rule: "researcher grant (as released before the catalogue)"})
	ev.Area = string(b.commonAncestor(plan.Areas))
	ev.Resources = []string{"project:" + proj.ID}
	ev.Purpose = req.Purpose
	ev.Request = plan.Norm.Encode()
	ev.Outcome, ev.ReleaseDigest = "ok", digestOf(plain)
	var rec storage.AuditRecord
	if err := b.store.Update(ctx, func(tx storage.Tx) error {
		remaining, err := tx.DebitProject(proj.ID, int64(plan.Cells()))
		if err != nil {
			return err
		}
		ev.Reason = fmt.Sprintf("%s; debited %d cells, %d left", plan.Describe(), plan.Cells(), remaining)
		rec, err = appendEvent(tx, ev)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ev.Request, `"as_of":`) || !strings.Contains(ev.Request, `"sdc":"ckp/v1 `) {
		t.Fatalf("not a ckp/v1 free-form request as the old log holds it: %s", ev.Request)
	}
	return rec.Index, plain
}

// appendReleaseEvent appends a copy of the release event at index with
// its Request replaced, as one who could write the log directly would.
func appendReleaseEvent(t *testing.T, b *Broker, index int64, request string) int64 {
	t.Helper()
	ctx := context.Background()
	var raw []byte
	if err := b.store.View(ctx, func(tx storage.ReadTx) error {
		return tx.AuditRecords(index, 1, func(r storage.AuditRecord) (bool, error) {
			raw = r.Event
			return false, nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	ev, err := audit.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	ev.Request = request
	var rec storage.AuditRecord
	if err := b.store.Update(ctx, func(tx storage.Tx) error {
		var err error
		rec, err = appendEvent(tx, ev)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return rec.Index
}

// TestReplayAcrossTheCatalogue: migration. Free-form releases made before
// the catalogue (ckp/v1 normalized requests, as an older vault's log
// holds them: as of the latest deposit and as of an earlier one, a count
// in JSON and a mean in CSV) still replay byte for byte after later
// deposits, as free-form ones (no point); a standard release replays at
// its point, whose frozen state later deposits do not move; and a replay
// whose event names a point state other than the point's stored one — a
// log or a store altered to pass one point's release off as another's —
// is refused, not matched.
func TestReplayAcrossTheCatalogue(t *testing.T) {
	ctx := context.Background()
	b, rita, load := replayVault(t)
	cache, err := b.refreshTables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	latest := cache.UpTo()

	type release struct {
		index int64
		body  []byte
		asOf  int64
	}
	var old []release
	for _, r := range []struct {
		body, format string
		asOf         int64
	}{
		{`{"project":"fert","purpose":"fertility by age","rows":["commune"],"cols":["sex","age_group5"]}`, tables.FormatJSON, latest},
		{`{"project":"fert","purpose":"mean age","rows":["sex"],"filter":{"area":["18070"]},"measure":{"mean":"age"}}`, tables.FormatCSV, latest - 100},
	} {
		i, body := releaseFreeForm(t, b, rita, r.body, r.format, r.asOf)
		old = append(old, release{i, body, r.asOf})
	}

	// Made after the free-form releases, as an upgraded vault would.
	if _, err := b.CreateReleasePoint(ctx, replayActor, "p1"); err != nil {
		t.Fatal(err)
	}
	std, err := b.RequestTable(ctx, rita, []byte(`{"project":"fert","purpose":"p","table":"population_age5_sex","area":"437","as_of":"p1"}`), TableOpts{})
	if err != nil {
		t.Fatal(err)
	}
	// Deposits after every release: each replays as of its own point.
	load(80) // ten households an EA: every commune moves
	for _, r := range old {
		res, err := b.ReplayTable(ctx, replayActor, r.index)
		if err != nil {
			t.Fatalf("replay of the free-form release %d: %v", r.index, err)
		}
		if !res.Match || !bytes.Equal(res.Table, r.body) || res.Point != "" || res.AsOf != r.asOf {
			t.Errorf("free-form release %d: match %v, same bytes %v, point %q, as of %d (want %d)", r.index, res.Match, bytes.Equal(res.Table, r.body), res.Point, res.AsOf, r.asOf)
		}
	}
	res, err := b.ReplayTable(ctx, replayActor, std.AuditIndex)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Match || !bytes.Equal(res.Table, std.Body) || res.Point != "p1" || res.AsOf != std.AsOf {
		t.Errorf("standard release: match %v, point %q, as of %d (want %d)", res.Match, res.Point, res.AsOf, std.AsOf)
	}

	// The release's request names p1 and p1's state digest. Another
	// state digest, or another point's name under p1's digest, is
	// refused.
	p2, err := b.CreateReleasePoint(ctx, replayActor, "p2")
	if err != nil {
		t.Fatal(err)
	}
	var evRaw []byte
	var p2State []byte
	if err := b.store.View(ctx, func(tx storage.ReadTx) error {
		p, err := tx.ReleasePoint(p2.Name)
		if err != nil {
			return err
		}
		p2State = p.State
		return tx.AuditRecords(std.AuditIndex, 1, func(r storage.AuditRecord) (bool, error) {
			evRaw = r.Event
			return false, nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	ev, err := audit.Decode(evRaw)
	if err != nil {
		t.Fatal(err)
	}
	norm, err := tables.ParseStandardNorm(ev.Request)
	if err != nil {
		t.Fatal(err)
	}
	otherState := *norm
	otherState.PointState = digestOf(p2State)
	if otherState.PointState == norm.PointState {
		t.Fatal("p1 and p2 have one state: the test needs two")
	}
	otherName := *norm
	otherName.Point = "p2"
	for what, n := range map[string]*tables.StandardNorm{"another state's digest": &otherState, "another point's name": &otherName} {
		idx := appendReleaseEvent(t, b, std.AuditIndex, n.Encode())
		before := auditNext(t, b)
		res, err := b.ReplayTable(ctx, replayActor, idx)
		if err == nil {
			t.Errorf("replay of a release naming %s: match %v", what, res.Match)
			continue
		}
		if KindOf(err) != Internal || !strings.Contains(err.Error(), "the store was altered") {
			t.Errorf("replay of a release naming %s: %v", what, err)
		}
		if auditNext(t, b) != before {
			t.Errorf("a refused replay (%s) was logged as a replay", what)
		}
	}
}

// auditNext is the index the next audit event will get.
func auditNext(t *testing.T, b *Broker) int64 {
	t.Helper()
	var h storage.AuditHead
	if err := b.store.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		h, err = tx.AuditHead()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return h.Next
}
