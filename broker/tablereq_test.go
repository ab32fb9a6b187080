package broker_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/synth"
	"github.com/censusvault/censusvault/broker/tables"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/sqlite"
)

// tableAreas is the key tests' tree (the same codes) with the planned
// households the catalogue asks of its tables, so that each table is
// permitted at some areas and refused at others: commune A (600 planned)
// takes every commune table, 18079 (400) the population tables, commune B
// (200) the broad age table only, 18076 (80) none; the district, the
// province and the nation (1,280) take every district table and none of
// the national ones (20,000).
func tableAreas() string {
	planned := map[string]int{communeA: 300, communeB: 100, "18076": 40, "18079": 200} // per EA
	var b strings.Builder
	b.WriteString("code,parent,level,name,planned_households\nVN,,nation,Việt Nam,\n42,VN,province,Tỉnh Hà Tĩnh,\n437,42,district,Thị xã Hồng Lĩnh,\n")
	for _, c := range keyCommunes {
		fmt.Fprintf(&b, "%s,437,commune,Phường %s,\n", c, c)
		for e := 1; e <= 2; e++ {
			fmt.Fprintf(&b, "%s-%02d,%s,ea,Địa bàn %02d,%d\n", c, e, c, e, planned[c])
		}
	}
	return b.String()
}

// tablePointK is the table vaults' publication point k: small, so that a
// few hundred test households move every commune.
const tablePointK = 5

// tableVault is a key-test vault on tableAreas holding synthetic
// households, a project "fert" over the district, researchers granted on
// it and an approver ("appr", over the whole tree) who makes publication
// points.
type tableVault struct {
	*keyVault
	gen *synth.Generator
	n   int // households loaded so far
}

// newTableVault is newBareTableVault with publication point "p1" made
// after the households were loaded.
func newTableVault(t *testing.T, households int) *tableVault {
	t.Helper()
	tv := newBareTableVault(t, households, broker.Opts{PointK: tablePointK, PointInterval: -1})
	tv.point("p1")
	return tv
}

// newBareTableVault is a table vault whose broker runs with o's
// publication point rules and clock (o.Store, o.Keys and o.Limits are
// set here), holding households synthetic households and no point yet.
func newBareTableVault(t testing.TB, households int, o broker.Opts) *tableVault {
	t.Helper()
	kv := newKeyVault(t, keyVaultOpts{areas: tableAreas()})
	o.Limits = broker.Limits{UserRate: -1} // as keyVault's own broker
	kv.b = kv.openWith(o)
	kv.enum, kv.steer = kv.caller("enum"), kv.caller("steering")
	g, err := synth.New(synth.Opts{Seed: 7, EAs: synth.EAs(kv.b.Tree())})
	if err != nil {
		t.Fatal(err)
	}
	tv := &tableVault{keyVault: kv, gen: g}
	tv.load(households)
	ctx := context.Background()
	p := validProject("fert")
	p.Areas = []broker.AreaCode{keyDistrict}
	p.Variables = []string{"sex", "age_group5", "age", "ethnicity", "tenure", "dwelling_type", "floor_area_m2"}
	if err := kv.b.AddProject(ctx, actor, p); err != nil {
		t.Fatal(err)
	}
	other := validProject("other")
	if err := kv.b.AddProject(ctx, actor, other); err != nil {
		t.Fatal(err)
	}
	for _, u := range []broker.NewUser{
		{Name: "rita", Role: policy.Researcher, Area: keyNation, Project: "fert"},
		{Name: "otto", Role: policy.Researcher, Area: keyNation, Project: "other"},
		{Name: "nara", Role: policy.Researcher, Area: broker.AreaCode(communeA), Project: "fert"},
		{Name: "appr", Role: policy.Approver, Area: keyNation},
	} {
		tok, err := kv.b.AddUser(ctx, actor, u)
		if err != nil {
			t.Fatal(err)
		}
		kv.tokens[string(u.Name)] = tok.Reveal()
	}
	return tv
}

func (tv *tableVault) load(n int) {
	tv.t.Helper()
	for i := tv.n; i < tv.n+n; i++ {
		b, _, err := tv.gen.Household(i)
		if err != nil {
			tv.t.Fatal(err)
		}
		if _, err := tv.b.IngestSynthetic(context.Background(), actor, b); err != nil {
			tv.t.Fatal(err)
		}
	}
	tv.n += n
}

// point makes publication point name as the approver.
func (tv *tableVault) point(name string) *broker.ReleasePointInfo {
	tv.t.Helper()
	p, err := tv.b.CreateReleasePointAs(context.Background(), tv.caller("appr"), name)
	if err != nil {
		tv.t.Fatalf("publication point %s: %v", name, err)
	}
	return p
}

func (tv *tableVault) request(user, body string, o broker.TableOpts) (*broker.TableRelease, error) {
	return tv.b.RequestTable(context.Background(), tv.caller(user), []byte(body), o)
}

// stdRequest is the body asking project's standard table id for area at
// point ("": the latest).
func stdRequest(project, id, area, point string) string {
	m := map[string]string{"project": project, "purpose": "p", "table": id, "area": area}
	if point != "" {
		m["as_of"] = point
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// countBySexAge asks for the population by five-year age group and sex of
// the district, at the latest point.
const countBySexAge = `{"project":"fert","purpose":"fertility by age","table":"population_age5_sex","area":"437"}`

// errCode is the broker error's machine code ("" for another error).
func errCode(err error) string {
	var e *broker.Error
	if errors.As(err, &e) {
		return e.ErrorCode()
	}
	return ""
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestRequestTableReleases: a standard table at a publication point is
// released as the catalogue fixes it, debited and logged with its
// catalogue version, table, area, point and the point state's digest; the
// same request gives the same bytes, a later point (after new deposits)
// other bytes, the earlier point still the first bytes; every release
// replays.
func TestRequestTableReleases(t *testing.T) {
	tv := newTableVault(t, 400)
	before := tv.auditHead()
	spent := func() int64 {
		p, err := tv.b.Project(context.Background(), "fert")
		if err != nil {
			t.Fatal(err)
		}
		return p.Spent
	}
	r1, err := tv.request("rita", countBySexAge, broker.TableOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Digest != digestOf(r1.Body) || r1.Encrypted || r1.ContentType != "application/json" || r1.Point != "p1" {
		t.Errorf("release %+v", r1)
	}
	wantCells := (21 + 1) * (2 + 1) // five-year age groups by sex, margins included
	if r1.Cells != wantCells || spent() != int64(wantCells) {
		t.Errorf("cells %d, spent %d; want %d", r1.Cells, spent(), wantCells)
	}
	var doc struct {
		Table string `json:"table"`
		ID    string `json:"id"`
		Point string `json:"point"`
		Area  struct {
			Code, Level string
		} `json:"area"`
		Cells []struct {
			Row, Col   []string
			Value      *int64
			Suppressed bool
		} `json:"cells"`
	}
	if err := json.Unmarshal(r1.Body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Table != tables.StandardFormat || doc.ID != "population_age5_sex" || doc.Point != "p1" ||
		doc.Area.Code != keyDistrict || doc.Area.Level != "district" || len(doc.Cells) != wantCells {
		t.Errorf("table %q %q at %q for %+v with %d cells", doc.Table, doc.ID, doc.Point, doc.Area, len(doc.Cells))
	}
	for _, bad := range []string{"2026", "2025", "budget", "spent", "rita", "Nguyễn"} {
		if bytes.Contains(r1.Body, []byte(bad)) {
			t.Errorf("released table contains %q", bad)
		}
	}
	var stateDigest string
	if err := tv.store.View(context.Background(), func(tx storage.ReadTx) error {
		p, err := tx.ReleasePoint("p1")
		if err == nil {
			stateDigest = digestOf(p.State)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	evs := tv.events(before, "table.request")
	if len(evs) != 1 {
		t.Fatalf("%d table events", len(evs))
	}
	ev := evs[0]
	if ev.Decision != "allow" || ev.Outcome != "ok" || ev.ReleaseDigest != r1.Digest || ev.Purpose != "fertility by age" ||
		ev.Actor != "user:rita" || ev.Index != r1.AuditIndex || ev.Area != keyDistrict {
		t.Errorf("event %+v", ev)
	}
	for _, want := range []string{`"catalogue":1`, `"table":"population_age5_sex"`, `"area":"437"`, `"point":"p1"`, `"point_state":"` + stateDigest + `"`, "ckp/v2 "} {
		if !strings.Contains(ev.Request, want) {
			t.Errorf("logged request %s lacks %s", ev.Request, want)
		}
	}

	// The same request again: the same bytes, another debit.
	r2, err := tv.request("rita", countBySexAge, broker.TableOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r1.Body, r2.Body) || r2.AuditIndex == r1.AuditIndex {
		t.Error("the same request twice gave different bytes")
	}
	if spent() != 2*int64(wantCells) {
		t.Errorf("spent %d after two tables", spent())
	}

	// New deposits and a new point move the latest; the old point gives
	// the old bytes (as_of names a point now, where it was an audit index).
	tv.load(50)
	tv.point("p2")
	r3, err := tv.request("rita", countBySexAge, broker.TableOpts{})
	if err != nil {
		t.Fatal(err)
	}
	atP1 := func(b []byte) []byte { return bytes.Replace(b, []byte(`"point":"p2"`), []byte(`"point":"p1"`), 1) }
	if r3.Point != "p2" || r3.AsOf <= r1.AsOf || bytes.Equal(atP1(r3.Body), r1.Body) {
		t.Errorf("after 50 more households and point p2: point %s as of %d (was %d), same bytes %v", r3.Point, r3.AsOf, r1.AsOf, bytes.Equal(atP1(r3.Body), r1.Body))
	}
	old := stdRequest("fert", "population_age5_sex", keyDistrict, "p1")
	r4, err := tv.request("rita", old, broker.TableOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if r4.Point != "p1" || r4.AsOf != r1.AsOf || !bytes.Equal(r4.Body, r1.Body) {
		t.Error("the request at the first point did not reproduce the first table")
	}

	// CSV, and replay of every release.
	r5, err := tv.request("rita", countBySexAge, broker.TableOpts{Format: tables.FormatCSV})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(r5.Body, []byte("# "+tables.StandardFormat)) || !strings.HasPrefix(r5.ContentType, "text/csv") {
		t.Errorf("csv starts %q", r5.Body[:40])
	}
	for _, r := range []*broker.TableRelease{r1, r3, r4, r5} {
		res, err := tv.b.ReplayTable(context.Background(), "cli:auditor", r.AuditIndex)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Match || res.Digest != r.Digest || !bytes.Equal(res.Table, r.Body) || res.Point != r.Point || res.AsOf != r.AsOf {
			t.Errorf("replay of %d: match %v, %s vs %s, point %q vs %q", r.AuditIndex, res.Match, res.Digest, r.Digest, res.Point, r.Point)
		}
	}
	if evs := tv.events(before, "table.replay"); len(evs) != 4 || evs[0].Outcome != "match" {
		t.Errorf("replay events %d", len(evs))
	}
	if _, err := tv.b.ReplayTable(context.Background(), "cli:auditor", 0); broker.KindOf(err) != broker.Invalid {
		t.Errorf("replay of a non-table event: %v", err)
	}
}

// TestRequestTableRefusals: every refusal is the right kind and code,
// says why, releases nothing, debits nothing, and is in the audit log.
// The free-form refusals of before (identifying, operational or unlisted
// dimensions and filters, too many dimensions, sums of codes, a small
// universe after filtering) now all meet custom_tables_off, and the
// standard table's own refusals stand in their place: an unknown table,
// a level or an area size the catalogue does not permit, an area outside
// the project, a table using a variable the project lacks, an unknown
// point or an audit index as as_of.
func TestRequestTableRefusals(t *testing.T) {
	tv := newTableVault(t, 300)
	ctx := context.Background()
	if err := tv.b.AddProject(ctx, actor, func() broker.NewProject {
		p := validProject("tiny")
		p.Areas, p.Budget = []broker.AreaCode{keyDistrict}, 10
		return p
	}()); err != nil {
		t.Fatal(err)
	}
	if err := tv.b.Grant(ctx, actor, "rita", policy.Grant{Role: policy.Researcher, Area: keyNation, Project: "tiny"}); err != nil {
		t.Fatal(err)
	}
	big := `{"project":"fert","purpose":"x","table":"population_age5_sex","area":"437","as_of":"` + strings.Repeat("p", 70000) + `"}`
	std := func(project, id, area string) string { return stdRequest(project, id, area, "") }
	for _, c := range []struct {
		name, user, body string
		kind             broker.Kind
		code, msg        string
	}{
		{"identifying row", "rita", `{"project":"fert","purpose":"p","rows":["head_name"]}`, broker.Permission, "permission_denied", "identifying field"},
		{"identifying filter", "rita", `{"project":"fert","purpose":"p","rows":["sex"],"filter":{"phone":[1]}}`, broker.Permission, "permission_denied", "identifying field"},
		{"sum of a code", "rita", `{"project":"fert","purpose":"p","rows":["sex"],"measure":{"sum":"ethnicity"}}`, broker.Permission, "permission_denied", "only quantitative variables"},
		{"unit only", "rita", `{"project":"fert","purpose":"p","unit":"households"}`, broker.Invalid, "invalid", "rows: name at least one"},
		{"malformed rho", "rita", `{"project":"fert","purpose":"p","rows":["sex"],"rho":"1e-3"}`, broker.Invalid, "invalid", "rho"},
		{"custom table at an unknown point", "rita", `{"project":"fert","purpose":"p","rows":["sex"],"as_of":"p9"}`, broker.Invalid, "invalid", `no point "p9"`},
		{"custom table outside the project", "rita", `{"project":"fert","purpose":"p","rows":["sex"],"filter":{"area":["42"]}}`, broker.Permission, "permission_denied", "outside project fert"},
		{"standard table with rows", "rita", `{"project":"fert","purpose":"p","table":"population_age5_sex","area":"437","rows":["ethnicity"]}`, broker.Invalid, "invalid", "send one or the other"},
		{"unlisted variable", "rita", std("fert", "population_head_age_sex", keyDistrict), broker.Permission, "permission_denied", `uses "relationship", which is not among project fert's variables`},
		{"foreign project", "rita", std("other", "population_age5_sex", keyDistrict), broker.Permission, "permission_denied", "not permitted"},
		{"area outside the project", "otto", std("other", "population_age5_sex", "42"), broker.Permission, "permission_denied", "outside project other"},
		{"grant narrower than the table", "nara", countBySexAge, broker.Permission, "permission_denied", "not permitted to request tables for area 437"},
		{"other project's researcher", "otto", countBySexAge, broker.Permission, "permission_denied", "not permitted to request tables for project fert"},
		{"enumerator", "enum", countBySexAge, broker.Permission, "permission_denied", "not permitted"},
		{"approver", "appr", countBySexAge, broker.Permission, "permission_denied", "not permitted"},
		{"no project", "rita", `{"purpose":"p","table":"population_age5_sex","area":"437"}`, broker.Invalid, "invalid", "names its project"},
		{"unknown project", "rita", std("nope", "population_age5_sex", keyDistrict), broker.Permission, "permission_denied", "not permitted"},
		{"no purpose", "rita", `{"project":"fert","table":"population_age5_sex","area":"437"}`, broker.Invalid, "invalid", "purpose"},
		{"unknown field", "rita", `{"project":"fert","purpose":"p","table":"population_age5_sex","area":"437","limit":5}`, broker.Invalid, "invalid", `unknown key "limit"`},
		{"no table", "rita", `{"project":"fert","purpose":"p","area":"437"}`, broker.Invalid, "invalid", "names a standard table"},
		{"no area", "rita", `{"project":"fert","purpose":"p","table":"population_age5_sex"}`, broker.Invalid, "invalid", "names the area"},
		{"unknown table", "rita", std("fert", "population_by_name", keyDistrict), broker.Invalid, "invalid", `no standard table "population_by_name"`},
		{"unknown area", "rita", std("fert", "population_age5_sex", "99999"), broker.Invalid, "invalid", "no such area"},
		{"level not published", "rita", std("fert", "population_ethnicity_major_sex", communeA), broker.Invalid, "invalid", "published for areas at levels nation, province, district, not at commune"},
		{"EA", "rita", std("fert", "population_age5_sex", ea(communeA, 1)), broker.Invalid, "invalid", "not at ea"},
		{"area too small", "rita", std("fert", "population_age5_sex", communeB), broker.Invalid, "invalid", "at least 300 planned households; area 18073 has 200 planned"},
		{"as_of an audit index", "rita", `{"project":"fert","purpose":"p","table":"population_age5_sex","area":"437","as_of":17}`, broker.Invalid, "invalid", "not an audit index"},
		{"unknown point", "rita", stdRequest("fert", "population_age5_sex", keyDistrict, "p9"), broker.Invalid, "invalid", `no publication point "p9"`},
		{"oversize", "rita", big, broker.TooLarge, "too_large", "over"},
		{"budget", "rita", std("tiny", "population_age_broad_sex", keyDistrict), broker.Permission, "permission_denied", "budget cannot cover this table's 12 cells"},
		{"encrypt without recipient", "rita", countBySexAge, broker.Invalid, "invalid", "set-recipient"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := tv.auditHead()
			p0, _ := tv.b.Project(ctx, "fert")
			t0, _ := tv.b.Project(ctx, "tiny")
			r, err := tv.request(c.user, c.body, broker.TableOpts{Encrypt: c.name == "encrypt without recipient"})
			if err == nil {
				t.Fatalf("released %d bytes", len(r.Body))
			}
			if broker.KindOf(err) != c.kind || errCode(err) != c.code || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("err = %v (%v, %s), want %v (%s) containing %q", err, broker.KindOf(err), errCode(err), c.kind, c.code, c.msg)
			}
			// (A custom request may first make the day's scheduled point,
			// logged as release_point.schedule.)
			evs := tv.events(before, "table.request")
			if len(evs) != 1 || evs[0].Action != "table.request" || evs[0].ReleaseDigest != "" || evs[0].Outcome == "ok" {
				t.Fatalf("audit: %d events %s", len(evs), showEvents(evs))
			}
			if c.kind == broker.Permission && (evs[0].Decision != "deny" || evs[0].Outcome != "denied") {
				t.Errorf("decision %q, outcome %q", evs[0].Decision, evs[0].Outcome)
			}
			if p1, _ := tv.b.Project(ctx, "fert"); p1.Spent != p0.Spent {
				t.Errorf("spent moved %d → %d", p0.Spent, p1.Spent)
			}
			if t1, _ := tv.b.Project(ctx, "tiny"); t1.Spent != t0.Spent {
				t.Errorf("tiny's spent moved %d → %d", t0.Spent, t1.Spent)
			}
		})
	}

	// Closed and expired projects.
	if _, err := tv.request("rita", countBySexAge, broker.TableOpts{}); err != nil {
		t.Fatal(err)
	}
	later, err := broker.New(ctx, broker.Opts{Store: tv.store, Keys: tv.keys, Now: func() time.Time { return time.Now().Add(365 * 24 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { later.Close(ctx) })
	if _, err := later.RequestTable(ctx, tv.caller("rita"), []byte(countBySexAge), broker.TableOpts{}); broker.KindOf(err) != broker.Permission || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired project: %v", err)
	}
	if err := tv.b.CloseProject(ctx, actor, "fert"); err != nil {
		t.Fatal(err)
	}
	if _, err := tv.request("rita", countBySexAge, broker.TableOpts{}); broker.KindOf(err) != broker.Permission || !strings.Contains(err.Error(), "closed") {
		t.Errorf("closed project: %v", err)
	}
}

// TestRequestTableBudget: a budget runs out exactly and then refuses;
// the ledger shows it.
func TestRequestTableBudget(t *testing.T) {
	tv := newTableVault(t, 300)
	ctx := context.Background()
	const cells = (3 + 1) * (2 + 1) // broad age groups by sex, margins included
	p := validProject("small")
	p.Areas, p.Budget = []broker.AreaCode{keyDistrict}, 3*cells-1
	if err := tv.b.AddProject(ctx, actor, p); err != nil {
		t.Fatal(err)
	}
	if err := tv.b.Grant(ctx, actor, "rita", policy.Grant{Role: policy.Researcher, Area: keyNation, Project: "small"}); err != nil {
		t.Fatal(err)
	}
	req := stdRequest("small", "population_age_broad_sex", keyDistrict, "p1")
	for i := range 2 {
		r, err := tv.request("rita", req, broker.TableOpts{})
		if err != nil {
			t.Fatalf("table %d: %v", i, err)
		}
		if r.Cells != cells || r.Remaining != int64(3*cells-1-cells*(i+1)) {
			t.Errorf("table %d: cells %d remaining %d", i, r.Cells, r.Remaining)
		}
	}
	if _, err := tv.request("rita", req, broker.TableOpts{}); broker.KindOf(err) != broker.Permission || !strings.Contains(err.Error(), "budget") {
		t.Fatalf("third table: %v", err)
	}
	info, _ := tv.b.Project(ctx, "small")
	if info.Spent != 2*cells || info.Remaining != cells-1 {
		t.Errorf("ledger spent %d remaining %d", info.Spent, info.Remaining)
	}
}

// TestRequestTableEncrypted: ?encrypt=1 gives an age file for the
// researcher's registered recipient whose plaintext has the logged digest.
func TestRequestTableEncrypted(t *testing.T) {
	tv := newTableVault(t, 300)
	ctx := context.Background()
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if err := tv.b.SetRecipient(ctx, actor, "rita", "not a key"); broker.KindOf(err) != broker.Invalid {
		t.Errorf("bad recipient: %v", err)
	}
	if err := tv.b.SetRecipient(ctx, actor, "nobody", id.Recipient().String()); broker.KindOf(err) != broker.NotFound {
		t.Errorf("unknown user: %v", err)
	}
	if err := tv.b.SetRecipient(ctx, actor, "rita", id.Recipient().String()); err != nil {
		t.Fatal(err)
	}
	u, _ := tv.b.User(ctx, "rita")
	if u.Recipient != id.Recipient().String() {
		t.Error("recipient not stored")
	}
	r, err := tv.request("rita", countBySexAge, broker.TableOpts{Encrypt: true})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Encrypted || bytes.Contains(r.Body, []byte(`"cells"`)) {
		t.Fatal("not encrypted")
	}
	rd, err := age.Decrypt(bytes.NewReader(r.Body), id)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(rd)
	if digestOf(plain) != r.Digest {
		t.Error("decrypted table does not have the logged digest")
	}
	clear, err := tv.request("rita", countBySexAge, broker.TableOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(clear.Body, plain) {
		t.Error("encrypted and clear releases differ")
	}
}

// grandTotal is the margin-by-margin cell of a released JSON table.
func grandTotal(t testing.TB, body []byte) int64 {
	t.Helper()
	var doc struct {
		Cells []struct {
			Row, Col []string
			Value    *int64
		}
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range doc.Cells {
		if slices.Equal(c.Row, []string{tables.Margin}) && slices.Equal(c.Col, []string{tables.Margin}) && c.Value != nil {
			return *c.Value
		}
	}
	t.Fatal("no released grand total")
	return 0
}

// TestTablesAfterShred: shredding a commune's analytic keys makes every
// point frozen before the shred stale for the areas holding that commune
// (point_stale, refused and audited, nothing debited: differencing the
// old point against the data as it now reads would show the shredded
// households), while the same point still answers for other communes; a
// point made after the shred answers without the commune's persons; and
// a replay of an earlier release reports the mismatch instead of
// pretending.
func TestTablesAfterShred(t *testing.T) {
	tv := newTableVault(t, 400)
	ctx := context.Background()
	district := stdRequest("fert", "population_age_broad_sex", keyDistrict, "p1")
	otherCommune := stdRequest("fert", "population_age_broad_sex", communeB, "p1")
	r, err := tv.request("rita", countBySexAge, broker.TableOpts{})
	if err != nil {
		t.Fatal(err)
	}
	rd, err := tv.request("rita", district, broker.TableOpts{})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := tv.request("rita", otherCommune, broker.TableOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tv.b.Shred(ctx, actor, crypto.Analytic, communeA); err != nil {
		t.Fatal(err)
	}

	before := tv.auditHead()
	p0, _ := tv.b.Project(ctx, "fert")
	for _, body := range []string{district, countBySexAge} {
		_, err := tv.request("rita", body, broker.TableOpts{})
		if broker.KindOf(err) != broker.Conflict || errCode(err) != "point_stale" || !strings.Contains(err.Error(), "ask at a later point") {
			t.Errorf("%s after the shred: %v (%s), want point_stale", body, err, errCode(err))
		}
	}
	evs := tv.events(before)
	if len(evs) != 2 || evs[0].Action != "table.request" || evs[0].Outcome != "refused" || evs[0].ReleaseDigest != "" || evs[1].Outcome != "refused" {
		t.Errorf("audit of the stale requests: %s", showEvents(evs))
	}
	if p1, _ := tv.b.Project(ctx, "fert"); p1.Spent != p0.Spent {
		t.Errorf("a stale refusal debited %d cells", p1.Spent-p0.Spent)
	}
	// Commune B's households were not shredded: p1 still holds for it.
	if rb2, err := tv.request("rita", otherCommune, broker.TableOpts{}); err != nil || !bytes.Equal(rb2.Body, rb.Body) {
		t.Errorf("commune %s at p1 after another commune's shred: %v", communeB, err)
	}

	tv.point("p2")
	rd2, err := tv.request("rita", stdRequest("fert", "population_age_broad_sex", keyDistrict, "p2"), broker.TableOpts{})
	if err != nil {
		t.Fatalf("a point made after the shred: %v", err)
	}
	if before, after := grandTotal(t, rd.Body), grandTotal(t, rd2.Body); after >= before-50 {
		t.Errorf("total %d at p1, %d at p2 after the shred: commune %s's persons still counted", before, after, communeA)
	}

	res, err := tv.b.ReplayTable(ctx, "cli:auditor", r.AuditIndex)
	if err != nil {
		t.Fatal(err)
	}
	if res.Match || res.Unread == 0 || res.Point != "p1" {
		t.Errorf("replay after shred: match %v, unread %d, point %q", res.Match, res.Unread, res.Point)
	}
	_ = audit.Version
}

// TestShredNoticedWithoutNotifications: a broker on SQLite (a `serve`)
// notices a shred made by another process (the CLI) on the same file
// within a few seconds — its poll reads the store's shred count — and
// stops answering from the commune's frozen households: a point made
// before the shred is stale for it.
func TestShredNoticedWithoutNotifications(t *testing.T) {
	tv := newTableVault(t, 300)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(tv.dir, sqlite.FileName)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	serve, err := broker.New(ctx, broker.Opts{Store: st, Keys: tv.keys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { serve.Close(ctx) })
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go serve.Run(runCtx)
	c, err := serve.Authenticate(ctx, "Bearer "+tv.tokens["rita"], "test")
	if err != nil {
		t.Fatal(err)
	}
	req := []byte(stdRequest("fert", "population_age_broad_sex", communeA, "p1"))
	released := func() bool { // does the serve broker still answer for commune A at p1?
		_, err := serve.RequestTable(ctx, c, req, broker.TableOpts{})
		switch {
		case err == nil:
			return true
		case errCode(err) == "point_stale":
			return false
		}
		t.Fatal(err)
		return false
	}
	if !released() {
		t.Fatalf("commune %s not answered before the shred", communeA)
	}
	if _, err := tv.b.Shred(ctx, actor, crypto.Analytic, communeA); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(6 * time.Second)
	for released() {
		if time.Now().After(deadline) {
			t.Fatalf("the other process still answers for commune %s at a point made before its analytic keys were shredded, 6 s after", communeA)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestRequestTableQuotesNamesSafely: a long non-ASCII table id or area
// code quoted back (shortened) in the refusal keeps the audit event valid
// UTF-8, so the refusal is a logged 400, not a 503.
func TestRequestTableQuotesNamesSafely(t *testing.T) {
	tv := newTableVault(t, 150)
	name := strings.Repeat("ệ", 30) // 3 bytes a rune: a 40-byte cut falls inside one
	for _, body := range []string{
		stdRequest("fert", name, keyDistrict, ""),
		stdRequest("fert", "population_age5_sex", name, ""),
		stdRequest("fert", "population_age5_sex", keyDistrict, name),
	} {
		before := tv.auditHead()
		_, err := tv.request("rita", body, broker.TableOpts{})
		if broker.KindOf(err) != broker.Invalid {
			t.Fatalf("err = %v (%v), want Invalid", err, broker.KindOf(err))
		}
		if evs := tv.events(before, "table.request"); len(evs) != 1 || evs[0].Outcome != "invalid" {
			t.Fatalf("audit: %s", showEvents(evs))
		}
	}
}

// TestRequestTableQuantitativeMeasures: the catalogue's mean of a
// quantitative amount (floor area by dwelling type) is released, with
// values, not counts.
func TestRequestTableQuantitativeMeasures(t *testing.T) {
	tv := newTableVault(t, 300)
	r, err := tv.request("rita", stdRequest("fert", "households_floor_area_dwelling_type", keyDistrict, ""), broker.TableOpts{})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Unit    string          `json:"unit"`
		Measure json.RawMessage `json:"measure"`
		Cells   []struct {
			Value *float64
		}
	}
	if err := json.Unmarshal(r.Body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Unit != "households" || string(doc.Measure) != `{"mean":"floor_area_m2"}` {
		t.Errorf("unit %q, measure %s", doc.Unit, doc.Measure)
	}
	released := 0
	for _, c := range doc.Cells {
		if c.Value != nil {
			released++
			if *c.Value <= 0 {
				t.Errorf("mean floor area %v", *c.Value)
			}
		}
	}
	if released == 0 {
		t.Error("no mean released")
	}
}
