package broker_test

// The table form (issue 14): the vault tabulates one form name with all
// its versions, through the latest version's schema, on every instance;
// a vault made for lfs2026 tabulates lfs2026 by its roles and refuses
// the standard tables it has no catalogue for.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/synth"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage/postgres"
	"github.com/censusvault/censusvault/storage/postgres/pgtest"
	"github.com/censusvault/censusvault/storage/sqlite"
	"github.com/google/uuid"
)

// dpTable is a released dp table's dimensions and cells, as JSON.
type dpTable struct {
	Rows []struct {
		Var string `json:"var"`
	} `json:"rows"`
	Cols []struct {
		Var string `json:"var"`
	} `json:"cols"`
	Cells []struct {
		Row        []string `json:"row"`
		Col        []string `json:"col"`
		Value      *float64 `json:"value"`
		Suppressed bool     `json:"suppressed"`
	} `json:"cells"`
}

func readDP(t *testing.T, r *broker.TableRelease) *dpTable {
	t.Helper()
	var tab dpTable
	if err := json.Unmarshal(r.Body, &tab); err != nil {
		t.Fatal(err)
	}
	return &tab
}

// value is the released value of the cell whose first row category is
// row and whose columns are the margin (-1: suppressed).
func (d *dpTable) value(row string) float64 {
	for _, c := range d.Cells {
		if c.Row[0] == row && (len(c.Col) == 0 || c.Col[0] == "*") {
			if c.Value == nil {
				return -1
			}
			return *c.Value
		}
	}
	return -1
}

// requestOn asks b for a table as user.
func (kv *keyVault) requestOn(b *broker.Broker, user, body string) (*broker.TableRelease, error) {
	kv.t.Helper()
	c, err := b.Authenticate(context.Background(), "Bearer "+kv.tokens[user], "test")
	if err != nil {
		kv.t.Fatal(err)
	}
	return b.RequestTable(context.Background(), c, []byte(body), broker.TableOpts{})
}

// TestTableFormVersionOnOtherInstance: census2019 v1 households are
// tabulated by ethnicity on instance B; an administrator adds version 2
// (ethnicity identifying, a new analytic field, disability) through
// instance A. On B — which has not run, listened or been asked about
// forms since it started — the next request by ethnicity is refused,
// although the v1 households sealed ethnicity as analytic: the
// reclassification holds on old data at once, on every instance. The
// standard catalogue, written for v1 and naming ethnicity, no longer
// fits (no_catalogue); a project may no longer name ethnicity and may
// name disability, which tabulates over v2's households, v1's being not
// stated. Seen failing with the schema built from the oldest version,
// and with the table form read from the registry's memory instead of the
// store.
func TestTableFormVersionOnOtherInstance(t *testing.T) {
	ctx := context.Background()
	tv := newTableVault(t, 150)
	clock := &testClock{t: time.Now()}
	instB := tv.openWith(broker.Opts{Limits: broker.Limits{UserRate: -1}, Now: clock.now})
	const byEthnicity = `{"project":"fert","purpose":"ethnic groups","rows":["ethnicity"],"filter":{"area":["437"]}}`
	if _, err := tv.requestOn(instB, "rita", byEthnicity); err != nil {
		t.Fatalf("by ethnicity under v1: %v", err)
	}
	if _, err := tv.requestOn(instB, "rita", countBySexAge); err != nil {
		t.Fatalf("a standard table under v1: %v", err)
	}

	if _, err := tv.b.AddForm(ctx, broker.HostOperator(actor), "census2019-v2.json", census2019v2(t)); err != nil {
		t.Fatal(err)
	}
	const v2Households = 120 // of 3 persons: enough to stand out of dp noise (sd 40 a cell)
	for i := range v2Households {
		if _, err := tv.b.IngestSynthetic(ctx, actor, formHousehold(uuid.NewString(), ea(communeA, 1), 5000+i, 2, map[string]any{"disability": 1})); err != nil {
			t.Fatal(err)
		}
	}

	from := tv.auditHead()
	for name, b := range map[string]*broker.Broker{"B": instB, "A": tv.b} {
		_, err := tv.requestOn(b, "rita", byEthnicity)
		if broker.KindOf(err) != broker.Permission || !strings.Contains(err.Error(), "identifying") {
			t.Errorf("instance %s, by ethnicity after v2 made it identifying: %v", name, err)
		}
		if _, err := tv.requestOn(b, "rita", countBySexAge); errCode(err) != "no_catalogue" || !strings.Contains(err.Error(), "ethnicity") {
			t.Errorf("instance %s, a standard table of catalogue v1 (written for v1, naming ethnicity): %v", name, err)
		}
	}
	for _, e := range tv.events(from, "table.request") {
		if e.Outcome == "ok" || e.ReleaseDigest != "" {
			t.Errorf("a refused table was logged as released: %+v", e)
		}
	}
	if _, err := instB.CatalogueFor(ctx, tv.caller("rita")); errCode(err) != "no_catalogue" {
		t.Errorf("the catalogue after v2: %v", err)
	}
	if _, err := instB.CreateReleasePointAs(ctx, tv.caller("appr"), "p2"); errCode(err) != "no_catalogue" {
		t.Errorf("a publication point after v2: %v", err)
	}

	// Projects: ethnicity is identifying now; disability is a variable.
	eth := validProject("eth")
	if err := instB.AddProject(ctx, actor, eth); broker.KindOf(err) != broker.Invalid || !strings.Contains(err.Error(), "identifying") {
		t.Errorf("a project naming ethnicity after v2: %v", err)
	}
	if vars := instB.ProjectVariables(ctx); slices.Contains(vars, "ethnicity") || !slices.Contains(vars, "disability") {
		t.Errorf("project variables after v2: %v", vars)
	}
	dis := validProject("dis")
	dis.Areas, dis.Variables = []broker.AreaCode{keyDistrict}, []string{"sex", "disability"}
	if err := instB.AddProject(ctx, actor, dis); err != nil {
		t.Fatal(err)
	}
	tv.addUser(broker.NewUser{Name: "dora", Role: policy.Researcher, Area: keyNation, Project: "dis"})
	// The next day, whose scheduled point holds v2's households.
	clock.set(clock.now().Add(24 * time.Hour))
	r, err := tv.requestOn(instB, "dora", `{"project":"dis","purpose":"disability","rows":["disability"],"filter":{"area":["437"]}}`)
	if err != nil {
		t.Fatal(err)
	}
	tab := readDP(t, r)
	// True counts: code 1, 360 (v2's persons); code 2, none; not
	// stated, v1's persons (150 households, about 540).
	if yes, no, notStated := tab.value("1"), tab.value("2"), tab.value("not_stated"); yes < 160 || no > 160 || notStated < 300 {
		t.Errorf("persons by disability: code 1 %v, 2 %v, not stated %v\n%s", yes, no, notStated, r.Body)
	}
}

// lfsForms are the forms of an lfs2026 vault: the built-in ones, and
// lfs2026 v1 if it is not one of them yet.
func lfsForms(t *testing.T) []*form.Form {
	t.Helper()
	forms := form.Embedded()
	if slices.ContainsFunc(forms, func(f *form.Form) bool { return f.Name == "lfs2026" }) {
		return forms
	}
	b, err := os.ReadFile(filepath.Join("form", "lfs2026.json"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := form.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return append(forms, f)
}

// lfsSubmission is an lfs2026 household in ea whose members have the
// given sexes and ages (the first heads it): workers with hours, others
// looking for work (with job search methods, a code set), children.
func lfsSubmission(ea string, no int, sexAge ...[2]int) []byte {
	var persons []any
	for i, sa := range sexAge {
		sex, age := sa[0], sa[1]
		p := map[string]any{"full_name": fmt.Sprintf("Thành viên %d", i), "relationship": min(i+1, 3), "sex": sex, "age": age, "response_type": 1}
		if age >= 5 {
			p["education_level"] = 1 + age%6
		}
		switch {
		case age < 15:
		case age%2 == 0:
			p["worked_last_week"], p["status_in_employment"], p["occupation_group"], p["hours_worked"] = 1, 1+age%3, 1+age%10, 20+age%50
		default:
			p["worked_last_week"], p["temporarily_absent"], p["available_to_work"] = 2, 2, 1
			p["job_search_methods"] = []int{1 + age%6, 1 + (age+3)%6}
		}
		persons = append(persons, p)
	}
	b, err := json.Marshal(map[string]any{
		"id": uuid.NewString(), "form": "lfs2026", "form_version": 1, "area": ea, "household_no": no,
		"interviewed_at": "2026-07-05T09:00:00+07:00",
		"household":      map[string]any{"head_name": "Chủ hộ", "dwelling_owned": 1 + no%2, "rotation_group": 1 + no%4, "interview_mode": 1},
		"persons":        persons,
	})
	if err != nil {
		panic(err)
	}
	return b
}

// TestLFSVault: a vault made with table form lfs2026 (init refuses an
// unknown one) tabulates lfs2026 deposits — ages by the age role, code
// sets in them — by sex and age_group5 under dp, refuses standard
// tables (no catalogue is written for lfs2026: no_catalogue, audited)
// and leaves census2019 deposits out of its tables. A broker without
// lfs2026 among its forms refuses to open the vault.
func TestLFSVault(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tree, err := area.Load(strings.NewReader(tableAreas()))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := agekey.Create(filepath.Join(dir, agekey.FileName))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(dir, sqlite.FileName), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	forms := lfsForms(t)
	init := broker.InitOpts{Store: st, Keys: kp, Areas: tree, Actor: actor, Forms: forms, TableForm: "lfs2099"}
	if err := broker.Init(ctx, init); err == nil || !strings.Contains(err.Error(), `"lfs2099"`) || !strings.Contains(err.Error(), "lfs2026") {
		t.Fatalf("init with an unknown table form: %v", err)
	}
	init.TableForm = "lfs2026"
	if err := broker.Init(ctx, init); err != nil {
		t.Fatal(err)
	}
	if len(forms) > len(form.Embedded()) {
		// lfs2026 is not built in yet: a binary without it cannot
		// tabulate this vault, and says so.
		if _, err := broker.New(ctx, broker.Opts{Store: st, Keys: kp}); err == nil || !strings.Contains(err.Error(), "lfs2026") {
			t.Errorf("a broker without lfs2026 opened an lfs2026 vault: %v", err)
		}
	}
	kv := &keyVault{t: t, dir: dir, store: st, keys: kp, tokens: map[string]string{}}
	kv.b = kv.openWith(broker.Opts{Forms: forms, Limits: broker.Limits{UserRate: -1}})

	// Fifty households of four, and one census2019 household.
	for i := range 50 {
		members := [][2]int{{1 + i%2, 20 + i%50}, {2 - i%2, 18 + (i*7)%60}, {1 + (i/2)%2, i % 15}, {2, 15 + (i*3)%80}}
		if _, err := kv.b.IngestSynthetic(ctx, actor, lfsSubmission(ea(keyCommunes[i%4], 1+i%2), 100+i, members...)); err != nil {
			t.Fatalf("lfs2026 household %d: %v", i, err)
		}
	}
	if _, err := kv.b.IngestSynthetic(ctx, actor, exHousehold(uuid.NewString(), ea(communeA, 1), 900, 2, "")); err != nil {
		t.Fatalf("a census2019 household in an lfs2026 vault: %v", err)
	}

	vars := kv.b.ProjectVariables(ctx)
	for _, v := range []string{"sex", "age", "age_group5", "hours_worked", "dwelling_owned"} {
		if !slices.Contains(vars, v) {
			t.Errorf("project variables lack %s: %v", v, vars)
		}
	}
	for _, v := range []string{"job_search_methods", "full_name", "rotation_group", "birth_year", "ethnicity"} {
		if slices.Contains(vars, v) {
			t.Errorf("project variables hold %s: %v", v, vars)
		}
	}
	bad := validProject("census")
	if err := kv.b.AddProject(ctx, actor, bad); broker.KindOf(err) != broker.Invalid || !strings.Contains(err.Error(), "lfs2026") {
		t.Errorf("a project naming census2019's variables: %v", err)
	}
	p := validProject("lfs")
	p.Areas, p.Variables = []broker.AreaCode{keyDistrict}, []string{"sex", "age_group5", "hours_worked"}
	if err := kv.b.AddProject(ctx, actor, p); err != nil {
		t.Fatal(err)
	}
	for _, u := range []broker.NewUser{
		{Name: "rita", Role: policy.Researcher, Area: keyNation, Project: "lfs"},
		{Name: "appr", Role: policy.Approver, Area: keyNation},
	} {
		tok, err := kv.b.AddUser(ctx, actor, u)
		if err != nil {
			t.Fatal(err)
		}
		kv.tokens[string(u.Name)] = tok.Reveal()
	}

	from := kv.auditHead()
	r, err := kv.requestOn(kv.b, "rita", `{"project":"lfs","purpose":"labour force by age","rows":["sex"],"cols":["age_group5"],"filter":{"area":["437"]}}`)
	if err != nil {
		t.Fatalf("persons by sex and age_group5: %v", err)
	}
	tab := readDP(t, r)
	if !r.DP || len(tab.Rows) != 1 || tab.Rows[0].Var != "sex" || len(tab.Cols) != 1 || tab.Cols[0].Var != "age_group5" {
		t.Fatalf("release: dp %v, %s", r.DP, r.Body)
	}
	if h, persons, _ := kv.b.TableCacheSize(); h != 50 || persons != 200 {
		t.Errorf("the table cache holds %d households, %d persons; want lfs2026's 50 and 200 (census2019's left out)", h, persons)
	}
	if res, err := kv.b.ReplayTable(ctx, "cli:auditor", r.AuditIndex); err != nil || !res.Match {
		t.Errorf("replay: %v", err)
	}
	if _, err := kv.requestOn(kv.b, "rita", `{"project":"lfs","purpose":"x","rows":["job_search_methods"],"filter":{"area":["437"]}}`); broker.KindOf(err) != broker.Invalid {
		t.Errorf("a table by a code set: %v", err)
	}

	// No standard tables: refused with the code, audited.
	std := stdRequest("lfs", "population_age5_sex", "437", "")
	if _, err := kv.requestOn(kv.b, "rita", std); errCode(err) != "no_catalogue" || !strings.Contains(err.Error(), "lfs2026") {
		t.Errorf("a standard table of an lfs2026 vault: %v", err)
	}
	if _, err := kv.b.CreateReleasePointAs(ctx, kv.caller("appr"), "p1"); errCode(err) != "no_catalogue" {
		t.Errorf("a publication point of an lfs2026 vault: %v", err)
	}
	if _, err := kv.b.CatalogueFor(ctx, kv.caller("rita")); errCode(err) != "no_catalogue" {
		t.Errorf("the catalogue of an lfs2026 vault: %v", err)
	}
	var outcomes []string
	for _, e := range kv.events(from, "table.request", "release_point.create", "catalogue.read") {
		outcomes = append(outcomes, e.Action+" "+e.Outcome)
	}
	if got := strings.Join(outcomes, ", "); got != "table.request ok, table.request invalid, table.request refused, release_point.create refused, catalogue.read refused" {
		t.Errorf("audit: %s", got)
	}
}

// TestTableFormVersionOnOtherPGInstance is the reclassification on
// another instance on PostgreSQL, each instance with its own connections:
// instance B tabulates v1 households by ethnicity; once A adds v2
// (ethnicity identifying) B refuses the same table at the next request,
// without Run or a notification.
func TestTableFormVersionOnOtherPGInstance(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	tree, err := area.Load(strings.NewReader(tableAreas()))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := agekey.Create(filepath.Join(t.TempDir(), agekey.FileName))
	if err != nil {
		t.Fatal(err)
	}
	open := func() *postgres.Store {
		st, err := postgres.Open(ctx, postgres.Options{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	stA, stB := open(), open()
	if err := broker.Init(ctx, broker.InitOpts{Store: stA, Keys: kp, Areas: tree, Actor: actor}); err != nil {
		t.Fatal(err)
	}
	lim := broker.Limits{UserRate: -1, RefusalBurst: 1 << 20}
	a, err := broker.New(ctx, broker.Opts{Store: stA, Keys: kp, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	bb, err := broker.New(ctx, broker.Opts{Store: stB, Keys: kp, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	g, err := synth.New(synth.Opts{Seed: 7, EAs: synth.EAs(a.Tree())})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		b, _, err := g.Household(i)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.IngestSynthetic(ctx, actor, b); err != nil {
			t.Fatal(err)
		}
	}
	p := validProject("fert")
	p.Areas = []broker.AreaCode{keyDistrict}
	if err := a.AddProject(ctx, actor, p); err != nil {
		t.Fatal(err)
	}
	tok, err := a.AddUser(ctx, actor, broker.NewUser{Name: "rita", Role: policy.Researcher, Area: keyNation, Project: "fert"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := bb.Authenticate(ctx, "Bearer "+tok.Reveal(), "test")
	if err != nil {
		t.Fatal(err)
	}
	const byEthnicity = `{"project":"fert","purpose":"ethnic groups","rows":["ethnicity"],"filter":{"area":["437"]}}`
	if _, err := bb.RequestTable(ctx, c, []byte(byEthnicity), broker.TableOpts{}); err != nil {
		t.Fatalf("by ethnicity under v1 on B: %v", err)
	}
	if _, err := a.AddForm(ctx, broker.HostOperator(actor), "census2019-v2.json", census2019v2(t)); err != nil {
		t.Fatal(err)
	}
	_, err = bb.RequestTable(ctx, c, []byte(byEthnicity), broker.TableOpts{})
	if broker.KindOf(err) != broker.Permission || !strings.Contains(err.Error(), "identifying") {
		t.Errorf("by ethnicity on B after A added v2: %v", err)
	}
}
