package httpapi_test

// Standard tables at publication points over HTTP (issue 11), each test
// written as the attack it stops.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
)

// A researcher knows a neighbour's household — its EA, that the head was
// born in 1968 — and asks for persons by religion filtered down to it:
// a table of one person. Behind free filters cell-key noise lets a
// determined researcher isolate one person, so a custom table (rows,
// cols, filters, measures or units of the caller's own) is answered only
// under differential privacy: as a dp table (X-Censusvault-Rho, the dp
// format, its ρ charged to the privacy ledger and logged), never as a
// standard table's cell-key perturbation; the same query again is the
// same bytes (no fresh noise to average away). A custom request that is
// malformed or outside the project is refused, logged, and spends
// neither budget nor ledger.
func TestCustomTablesOnlyUnderDP(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	ctx := t.Context()
	v.loadSynthetic(tableHouseholds)
	if err := v.B.AddProject(ctx, "cli:test", broker.NewProject{
		ID: "rel-2019", Title: "Religion", Purpose: "religion by age", Areas: []broker.AreaCode{district},
		Variables: []string{"religion", "sex", "age_group5", "birth_year", "relationship"}, Expires: start.AddDate(1, 0, 0), Budget: 100_000,
	}); err != nil {
		t.Fatal(err)
	}
	tok, err := v.B.AddUser(ctx, "cli:test", broker.NewUser{Name: "res-rel", Role: policy.Researcher, Area: district, Project: "rel-2019"})
	if err != nil {
		t.Fatal(err)
	}
	v.Tokens["res-rel"] = tok.Reveal()
	v.makePoint("p1")
	day := "daily-" + v.Clock.Now().Format(time.DateOnly)
	spentCap := func() string {
		l, _ := v.getLedger("auditor")
		return share(l, "commune", "").Spent
	}

	p := `"project": "rel-2019", "purpose": "religion of the head born 1968"`
	const released = http.StatusOK
	for _, tc := range []struct {
		what, body string
		status     int
		code, says string // of a refusal
		point      string // of a release
	}{
		{"one person's religion", `{` + p + `, "rows": ["religion"], "filter": {"area": ["` + eaA1 + `"], "birth_year": [1968], "relationship": [1]}}`, released, "", "", day},
		{"free-form, another form", `{` + p + `, "rows": ["sex"], "cols": ["age_group5"], "filter": {"area": ["` + communeA + `"]}}`, released, "", "", day},
		{"free-form at a publication point", `{` + p + `, "rows": ["religion"], "as_of": "p1"}`, released, "", "", "p1"},
		{"free-form of its own ρ", `{` + p + `, "rows": ["religion"], "filter": {"area": ["` + communeA + `"]}, "rho": "0.05"}`, released, "", "", day},
		{"cols alone", `{` + p + `, "cols": ["religion"]}`, 400, "invalid", "rows", ""},
		{"an empty filter", `{` + p + `, "filter": {}}`, 400, "invalid", "rows", ""},
		{"a sum of codes", `{` + p + `, "measure": {"sum": "religion"}}`, 400, "invalid", "rows", ""},
		{"a unit alone", `{` + p + `, "unit": "households"}`, 400, "invalid", "rows", ""},
		{"empty rows", `{` + p + `, "rows": []}`, 400, "invalid", "rows", ""},
		{"ρ alone", `{` + p + `, "rho": "0.02"}`, 400, "invalid", "rows", ""},
		{"ρ of 1000", `{` + p + `, "rows": ["religion"], "rho": "1000"}`, 400, "invalid", "rho", ""},
		{"free-form with a standard table's area", `{` + p + `, "rows": ["religion"], "area": "` + communeA + `"}`, 400, "invalid", "send one or the other", ""},
		{"an identifying row", `{` + p + `, "rows": ["head_name"]}`, 403, "permission_denied", "identifying", ""},
		{"a variable the project lacks", `{` + p + `, "rows": ["religion"], "filter": {"ethnicity": [1]}}`, 403, "permission_denied", "not among project", ""},
		{"an unknown point", `{` + p + `, "rows": ["religion"], "as_of": "p9"}`, 400, "invalid", "GET /v1/release-points", ""},
	} {
		p0, err := v.B.Project(ctx, "rel-2019")
		if err != nil {
			t.Fatal(err)
		}
		cap0 := spentCap()
		var r *response
		ev := v.oneEventOf("table.request", func() { r = v.postTable("res-rel", "", tc.body, nil) })
		if r.Status != tc.status {
			t.Errorf("%s: %d %.300s, want %d", tc.what, r.Status, r.Body, tc.status)
			continue
		}
		p1, err := v.B.Project(ctx, "rel-2019")
		if err != nil {
			t.Fatal(err)
		}
		if tc.status != released {
			msg, _ := r.ErrorBody(t)
			if r.Code(t) != tc.code || !strings.Contains(msg, tc.says) {
				t.Errorf("%s: %s, want code %s saying %q", tc.what, r.Body, tc.code, tc.says)
			}
			if r.Header.Get("X-Censusvault-Table-Digest") != "" || r.Header.Get("X-Censusvault-Rho") != "" || bytes.Contains(r.Body, []byte("cells")) {
				t.Errorf("%s: the refusal carries a table", tc.what)
			}
			if ev.Outcome == "ok" || ev.ReleaseDigest != "" || ev.Actor != "user:res-rel" {
				t.Errorf("%s: event %s/%s by %s, digest %q; want a logged refusal", tc.what, ev.Decision, ev.Outcome, ev.Actor, ev.ReleaseDigest)
			}
			if p1.Spent != p0.Spent || spentCap() != cap0 {
				t.Errorf("%s: the refusal spent budget (%d → %d) or ρ (%s → %s)", tc.what, p0.Spent, p1.Spent, cap0, spentCap())
			}
			continue
		}
		var tab struct {
			Table   string `json:"table"`
			Point   string `json:"point"`
			Control struct {
				Method  string  `json:"method"`
				Rho     string  `json:"rho"`
				Epsilon float64 `json:"epsilon"`
			} `json:"disclosure_control"`
		}
		r.JSON(t, &tab)
		rho := r.Header.Get("X-Censusvault-Rho")
		if rho == "" || tab.Table != "censusvault.dp-table/v1" || tab.Control.Rho != rho || tab.Control.Epsilon <= 0 ||
			!strings.Contains(tab.Control.Method, "differential privacy") || tab.Point != tc.point || r.Header.Get("X-Censusvault-Point") != tc.point {
			t.Errorf("%s: released as %q at %q (header %q), ρ %q (header %q), method %q: want a dp table at %s",
				tc.what, tab.Table, tab.Point, r.Header.Get("X-Censusvault-Point"), tab.Control.Rho, rho, tab.Control.Method, tc.point)
		}
		if ev.Outcome != "ok" || ev.ReleaseDigest != sha(r.Body) || !strings.Contains(ev.Reason, "dp: charged ρ="+rho) {
			t.Errorf("%s: event %s, digest %q, reason %q: want the release and its charge logged", tc.what, ev.Outcome, ev.ReleaseDigest, ev.Reason)
		}
		if p1.Spent <= p0.Spent || spentCap() == cap0 {
			t.Errorf("%s: the release spent no budget (%d → %d) or ρ (%s → %s)", tc.what, p0.Spent, p1.Spent, cap0, spentCap())
		}
		// Again: the same bytes, nothing spent.
		again := v.postTable("res-rel", "", tc.body, nil)
		if again.Status != http.StatusOK || !bytes.Equal(again.Body, r.Body) || again.Header.Get("X-Censusvault-Repeat") != "true" || spentCap() == cap0 {
			t.Errorf("%s again: %d, same bytes %v, repeat %q", tc.what, again.Status, bytes.Equal(again.Body, r.Body), again.Header.Get("X-Censusvault-Repeat"))
		}
		if p2, err := v.B.Project(ctx, "rel-2019"); err != nil || p2.Spent != p1.Spent {
			t.Errorf("%s again: the repeat spent budget", tc.what)
		}
	}
	// The day's point was made once, by the vault itself.
	var made []string
	for _, e := range v.eventsSince(0) {
		if e.Action == "release_point.schedule" {
			made = append(made, e.Actor+" "+strings.Join(e.Resources, ","))
		}
	}
	if len(made) != 1 || made[0] != "system:scheduler release_point:"+day {
		t.Errorf("scheduled points made: %v, want %s once", made, day)
	}
}

// cellsOf returns a JSON table's cells member, as bytes.
func cellsOf(t *testing.T, r *response) string {
	t.Helper()
	var tab struct {
		Cells json.RawMessage `json:"cells"`
	}
	r.JSON(t, &tab)
	return string(tab.Cells)
}

// An enumerator deposits a few late households (say, one family whose
// answers a researcher knows), and a researcher differences the district
// table at the point before them with the table at the point after. The
// k-rule keeps every commune that changed by fewer than k households at
// its previous state, so the two tables have the same cells; the table at
// the earlier point stays byte for byte what it was; the headers name the
// point and the deposit point each was computed at. The control vault,
// with k = 1, shows the same deposits do change the table.
func TestStandardTablesAtPointsHideFewDeposits(t *testing.T) {
	t.Parallel()
	late := func(v *vault) {
		for i := range 3 {
			v.receipt(v.deposit("enum-a3", v.seal(encode(v.t, household(eaA3, 950+i)))), http.StatusCreated)
		}
	}
	v := newVault(t, vaultOpts{})
	v.loadSynthetic(tableHouseholds)
	p1 := v.makePoint("p1")
	t1 := v.postTable("researcher", "", countTable, nil)
	if t1.Status != http.StatusOK {
		t.Fatalf("table at p1: %d %s", t1.Status, t1.Body)
	}
	late(v)
	p2 := v.makePoint("p2")
	if p2.AsOf <= p1.AsOf || p2.Advanced != 0 || p2.Kept != 2 {
		t.Errorf("p2 %+v: want both communes kept at p1's state (3 households changed, k = %d)", p2, p2.K)
	}
	t2 := v.postTable("researcher", "", countTable, nil)
	if t2.Status != http.StatusOK {
		t.Fatalf("table at p2: %d %s", t2.Status, t2.Body)
	}
	if t2.Header.Get("X-Censusvault-Point") != "p2" || headerInt(t, t2, "X-Censusvault-As-Of") != p2.AsOf ||
		t1.Header.Get("X-Censusvault-Point") != "p1" || headerInt(t, t1, "X-Censusvault-As-Of") != p1.AsOf {
		t.Errorf("headers: p1 table at %s/%s, p2 table at %s/%s; points made at %d and %d",
			t1.Header.Get("X-Censusvault-Point"), t1.Header.Get("X-Censusvault-As-Of"), t2.Header.Get("X-Censusvault-Point"), t2.Header.Get("X-Censusvault-As-Of"), p1.AsOf, p2.AsOf)
	}
	if cellsOf(t, t1) != cellsOf(t, t2) {
		t.Errorf("the tables at p1 and p2 differ: 3 late households show by differencing")
	}
	again := v.postTable("researcher", "", stdTable(testProject, "population_age_broad_sex", district, "p1"), nil)
	if again.Status != http.StatusOK {
		t.Fatalf("as_of p1: %d %s", again.Status, again.Body)
	}
	if !bytes.Equal(again.Body, t1.Body) || again.Header.Get("X-Censusvault-Point") != "p1" || headerInt(t, again, "X-Censusvault-As-Of") != p1.AsOf {
		t.Errorf("the table as of p1, asked again after p2, is not the one released at p1")
	}

	// Control: with k = 1 the same three households move the table.
	c := newVault(t, vaultOpts{pointK: 1})
	c.loadSynthetic(tableHouseholds)
	c.makePoint("p1")
	c1 := c.postTable("researcher", "", countTable, nil)
	late(c)
	if p := c.makePoint("p2"); p.Advanced != 1 {
		t.Errorf("control p2 %+v: want commune A at its new state", p)
	}
	c2 := c.postTable("researcher", "", countTable, nil)
	if c1.Status != http.StatusOK || c2.Status != http.StatusOK || cellsOf(t, c1) == cellsOf(t, c2) {
		t.Errorf("control: with k = 1 the tables before and after 3 deposits are the same (%d, %d): the attack above tests nothing", c1.Status, c2.Status)
	}
}

// Whether a standard table may be asked of an area depends only on the
// catalogue and the area's planned households, never on what was
// deposited: a refusal that depended on the data (too few persons, an
// empty cell) would tell the caller about the data. The same requests
// against a vault with no deposits and one with 1400 households (twice
// what every EA plans) get the same answers, refusals byte for byte —
// including a commune that holds more deposited households than the
// table's minimum but plans fewer, and one that plans exactly the
// minimum.
func TestStandardTableRefusalsIgnoreData(t *testing.T) {
	t.Parallel()
	empty := newVault(t, vaultOpts{areas: matrixAreas})
	full := newVault(t, vaultOpts{areas: matrixAreas})
	full.loadSynthetic(1400) // 200 households in every EA
	for _, v := range []*vault{empty, full} {
		v.Clock.Advance(start.AddDate(0, 0, 21).Sub(v.Clock.Now())) // the same clock in both
		v.makePoint("p1")
	}
	// matrixAreas plans 100 households per EA: 18070 plans 300 (600
	// deposited in full), 18073 200 (400 deposited), 437 500.
	for _, tc := range []struct {
		what, table, area, asOf string
		status                  int
		says                    string
	}{
		{"a commune planning exactly the minimum", "population_age5_sex", "18070", "", 200, ""},
		{"a commune planning fewer than the minimum, with more deposited", "population_age5_sex", "18073", "", 400, "at least 300 planned households; area 18073 has 200 planned"},
		{"the district", "population_age5_sex", "437", "", 200, ""},
		{"a smaller table's minimum", "population_age_broad_sex", "18073", "", 200, ""},
		{"a commune, for a table published down to districts", "households_water_source", "18070", "", 400, "levels nation, province, district, not at commune"},
		{"a district below the table's minimum", "households_water_source", "437", "", 400, "at least 1000 planned households; area 437 has 500 planned"},
		{"a district, for a table published at provinces", "population_religion_sex", "437", "", 400, "levels nation, province, not at district"},
		{"an EA", "population_age_broad_sex", "18070-01", "", 400, "not at ea"},
		{"an unknown point", "population_age_broad_sex", "18070", "p0", 400, `no publication point "p0"`},
	} {
		var answers []*response
		for i, v := range []*vault{empty, full} {
			r := v.postTable("researcher", "", stdTable(testProject, tc.table, tc.area, tc.asOf), nil)
			if r.Status != tc.status {
				t.Errorf("%s (%s of %s), %s: %d %s, want %d", tc.what, tc.table, tc.area, []string{"no deposits", "1400 households"}[i], r.Status, r.Body, tc.status)
			}
			answers = append(answers, r)
		}
		if tc.status == 200 {
			continue
		}
		if !bytes.Equal(answers[0].Body, answers[1].Body) {
			t.Errorf("%s: the refusal depends on the data:\n  no deposits: %s\n  1400:        %s", tc.what, answers[0].Body, answers[1].Body)
		}
		if msg, _ := answers[0].ErrorBody(t); !strings.Contains(msg, tc.says) {
			t.Errorf("%s: message %q does not say %q", tc.what, msg, tc.says)
		}
	}
}
