package tables

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/sdc"
)

func renderOf(t testing.TB, c *Cache, r *Request, proj Project, format string, asOf int64) (*Table, []byte) {
	t.Helper()
	tab := mustRun(t, c, mustCompile(t, c, r, proj, sdc.DefaultParams(), format, asOf))
	return tab, tab.Render()
}

// TestIdenticalBytes checks that a release depends only on the
// normalized request and the data as of its point: compiled again, on a
// new cache, or after more deposits, it is the same bytes.
func TestIdenticalBytes(t *testing.T) {
	f := shared(t)
	hs := f.hs[:6000]
	c1 := newTestCache(t, f.tree, hs[:5000])
	asOf1 := c1.UpTo()
	reqs := []*Request{
		{Project: "p", Unit: Persons, Rows: []string{"province"}, Cols: []string{"sex", "age_group5"},
			Filter: map[string][]string{"marital_status": {"2", "1"}}, Measure: Measure{Op: "count"}},
		{Project: "p", Unit: Households, Rows: []string{"tenure"}, Cols: []string{"dwelling_type"}, Measure: Measure{Op: "sum", Var: "floor_area_m2"}},
		{Project: "p", Unit: Persons, Rows: []string{"district"}, Measure: Measure{Op: "mean", Var: "age"}},
	}
	formats := []string{FormatJSON, FormatCSV}
	first := map[[2]int][]byte{}
	firstCells := map[[2]int][]Cell{}
	for i, r := range reqs {
		for j, format := range formats {
			p := mustCompile(t, c1, r, f.proj, sdc.DefaultParams(), format, asOf1)
			a, b := mustRun(t, c1, p), mustRun(t, c1, p)
			if !bytes.Equal(a.Render(), b.Render()) {
				t.Errorf("%s %s: one plan run twice gives different bytes", p.Describe(), format)
			}
			_, again := renderOf(t, c1, r, f.proj, format, asOf1)
			if !bytes.Equal(a.Render(), again) {
				t.Errorf("%s %s: compiled twice, different bytes", p.Describe(), format)
			}
			first[[2]int{i, j}] = a.Render()
			firstCells[[2]int{i, j}] = a.Cells
		}
	}

	// A new cache of the same households.
	c2 := newTestCache(t, f.tree, hs[:5000])
	for i, r := range reqs {
		for j, format := range formats {
			if _, b := renderOf(t, c2, r, f.proj, format, asOf1); !bytes.Equal(b, first[[2]int{i, j}]) {
				t.Errorf("request %d %s: a new cache of the same households gives different bytes", i, format)
			}
		}
	}

	// More deposits: as of the earlier point, the same bytes; as of the
	// new one, other numbers.
	if err := c2.Append(hs[5000:], hs[len(hs)-1].AuditIndex); err != nil {
		t.Fatal(err)
	}
	if c2.UpTo() <= asOf1 {
		t.Fatalf("UpTo %d after appending, was %d", c2.UpTo(), asOf1)
	}
	for i, r := range reqs {
		for j, format := range formats {
			if _, b := renderOf(t, c2, r, f.proj, format, asOf1); !bytes.Equal(b, first[[2]int{i, j}]) {
				t.Errorf("request %d %s: as of %d after more deposits, different bytes", i, format, asOf1)
			}
			tab, b := renderOf(t, c2, r, f.proj, format, c2.UpTo())
			if bytes.Equal(b, first[[2]int{i, j}]) {
				t.Errorf("request %d %s: as of the new point, the same bytes", i, format)
			}
			if reflect.DeepEqual(tab.Cells, firstCells[[2]int{i, j}]) {
				t.Errorf("request %d %s: 1000 more households and not one cell changed", i, format)
			}
		}
	}

	// The purpose is not part of the release.
	for _, format := range formats {
		r := cloneRequest(reqs[0])
		r.Purpose = "first reason"
		_, a := renderOf(t, c1, r, f.proj, format, asOf1)
		r.Purpose = "second reason"
		_, b := renderOf(t, c1, r, f.proj, format, asOf1)
		if !bytes.Equal(a, b) || bytes.Contains(a, []byte("reason")) {
			t.Errorf("%s: the purpose changes or appears in the release", format)
		}
	}
}

// TestRenderContent checks what a release holds: the request, as_of and
// the disclosure-control parameters; no time, no budget, nothing about
// the requester; suppressed cells without a value.
func TestRenderContent(t *testing.T) {
	f := shared(t)
	r := &Request{Project: "p", Purpose: "study of tenure", Unit: Persons, Rows: []string{"province"}, Cols: []string{"sex", "age_group5"},
		Filter: map[string][]string{"tenure": {"1"}}, Measure: Measure{Op: "count"}}
	params := sdc.DefaultParams()
	timeLike := regexp.MustCompile(`\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}|\b1[6-9]\d{8}\b`)

	// JSON.
	tab, b := renderOf(t, f.cache, r, f.proj, FormatJSON, f.asOf)
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("JSON release does not parse: %v", err)
	}
	var keys []string
	for k := range doc {
		keys = append(keys, k)
	}
	wantKeys := []string{"as_of", "cells", "cols", "disclosure_control", "filter", "margin", "measure", "project", "rows", "table", "unit"}
	if !sameSet(keys, wantKeys) {
		t.Errorf("top-level keys %v, want %v", keys, wantKeys)
	}
	walkKeys(doc, func(k string) {
		for _, bad := range []string{"time", "date", "budget", "epsilon", "purpose", "user", "requester", "researcher", "remaining"} {
			if strings.Contains(strings.ToLower(k), bad) {
				t.Errorf("release has key %q", k)
			}
		}
	})
	if m := timeLike.Find(b); m != nil {
		t.Errorf("release holds something like a time: %s", m)
	}
	if bytes.Contains(b, []byte("tenure study")) || bytes.Contains(b, []byte("study of")) {
		t.Error("release holds the purpose")
	}
	if n, _ := doc["as_of"].(json.Number).Int64(); n != f.asOf {
		t.Errorf("as_of %v, want %d", doc["as_of"], f.asOf)
	}
	dc, _ := doc["disclosure_control"].(map[string]any)
	if dc["params"] != params.Canonical() {
		t.Errorf("disclosure_control.params %v, want %q", dc["params"], params.Canonical())
	}
	for k, want := range map[string]string{"max_noise": "2", "variance": "1", "small_cell": "10", "max_dims": "4", "max_cells": "50000", "min_universe": "100"} {
		if got, _ := dc[k].(json.Number); string(got) != want {
			t.Errorf("disclosure_control.%s = %v, want %s", k, dc[k], want)
		}
	}
	if doc["table"] != TableFormat || doc["project"] != "p" || doc["unit"] != "persons" || doc["measure"] != "count" || doc["margin"] != Margin {
		t.Errorf("release header: table %v project %v unit %v measure %v margin %v", doc["table"], doc["project"], doc["unit"], doc["measure"], doc["margin"])
	}
	cells, _ := doc["cells"].([]any)
	if len(cells) != len(tab.Cells) || len(cells) != tab.Plan.Cells() {
		t.Fatalf("%d cells rendered, table has %d, plan %d", len(cells), len(tab.Cells), tab.Plan.Cells())
	}
	var suppressed int
	for i, x := range cells {
		cell := x.(map[string]any)
		row, col := tab.cellCats(i)
		if !reflect.DeepEqual(strs(cell["row"]), row) || !reflect.DeepEqual(strs(cell["col"]), col) {
			t.Fatalf("cell %d is %v × %v, want %v × %v", i, cell["row"], cell["col"], row, col)
		}
		v, hasValue := cell["value"]
		if tab.Cells[i].Suppressed {
			suppressed++
			if hasValue || cell["suppressed"] != true {
				t.Errorf("suppressed cell %d rendered as %v", i, cell)
			}
			continue
		}
		if _, ok := cell["suppressed"]; ok || v.(json.Number).String() != strconv.FormatInt(tab.Cells[i].Count, 10) {
			t.Errorf("cell %d rendered as %v, want value %d", i, cell, tab.Cells[i].Count)
		}
	}
	if suppressed == 0 || suppressed == len(cells) {
		t.Errorf("%d of %d cells suppressed: the test needs both kinds", suppressed, len(cells))
	}

	// CSV: the same cells.
	_, cb := renderOf(t, f.cache, r, f.proj, FormatCSV, f.asOf)
	lines := strings.SplitAfter(string(cb), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "# "+TableFormat) || !strings.HasPrefix(lines[1], "# ") {
		t.Fatalf("CSV does not start with two comment lines: %q", lines[:min(3, len(lines))])
	}
	if !strings.Contains(lines[0], "as_of="+strconv.FormatInt(f.asOf, 10)) || !strings.Contains(lines[1], params.Canonical()) {
		t.Errorf("CSV comments lack as_of or the parameters: %q %q", lines[0], lines[1])
	}
	if m := timeLike.FindString(lines[0] + lines[1]); m != "" || strings.Contains(lines[0]+lines[1], "budget") || strings.Contains(string(cb), "study") {
		t.Errorf("CSV comments hold a time, a budget or the purpose: %q %q", lines[0], lines[1])
	}
	recs, err := csv.NewReader(strings.NewReader(strings.Join(lines[2:], ""))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(recs[0], []string{"province", "sex", "age_group5", "value", "status"}) {
		t.Errorf("CSV header %v", recs[0])
	}
	if len(recs)-1 != len(tab.Cells) {
		t.Fatalf("%d CSV lines for %d cells", len(recs)-1, len(tab.Cells))
	}
	for i, rec := range recs[1:] {
		row, col := tab.cellCats(i)
		if !reflect.DeepEqual(rec[:3], append(row, col...)) {
			t.Fatalf("CSV line %d is %v", i, rec)
		}
		want := []string{strconv.FormatInt(tab.Cells[i].Count, 10), ""}
		if tab.Cells[i].Suppressed {
			want = []string{"", "suppressed"}
		}
		if !reflect.DeepEqual(rec[3:], want) {
			t.Errorf("CSV cell %d: %v, want %v", i, rec[3:], want)
		}
	}
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return len(a) == len(b)
}

func walkKeys(x any, fn func(string)) {
	switch v := x.(type) {
	case map[string]any:
		for k, y := range v {
			fn(k)
			walkKeys(y, fn)
		}
	case []any:
		for _, y := range v {
			walkKeys(y, fn)
		}
	}
}

func strs(x any) []string {
	a, _ := x.([]any)
	out := []string{}
	for _, y := range a {
		s, _ := y.(string)
		out = append(out, s)
	}
	return out
}

// TestMarginsAreOwnCells checks that a margin is perturbed from its own
// contributors, not added up from released inner cells.
func TestMarginsAreOwnCells(t *testing.T) {
	f := shared(t)
	pt := defaultPTable(t)
	tab, truth := release(t, f.cache, countReq(Persons, []string{"district"}, []string{"sex"}), f.proj, f.asOf)
	p := tab.Plan
	w := p.width()
	if p.C != 2 || w != 3 {
		t.Fatalf("district × sex has C=%d", p.C)
	}
	var rows, differ, perturbed, compared int
	for r := 0; r <= p.R; r++ {
		m := r*w + p.C
		// True margins are exact: the count and key of their row.
		var n int64
		var key uint32
		for c := 0; c < p.C; c++ {
			n += truth[r*w+c].n
			key += truth[r*w+c].key
		}
		if truth[m].n != n || truth[m].key != key {
			t.Fatalf("row %d: true margin %d (key %d), inner cells add up to %d (key %d)", r, truth[m].n, truth[m].key, n, key)
		}
		mc := tab.Cells[m]
		if mc.Suppressed {
			continue
		}
		rows++
		if d := mc.Count - truth[m].n; d < -2 || d > 2 {
			t.Errorf("row %d: margin %d for a true %d", r, mc.Count, truth[m].n)
		} else if d != 0 {
			perturbed++
		}
		if mc.Count != pt.Perturb(truth[m].n, truth[m].key) {
			t.Errorf("row %d: margin %d, its own cell key gives %d", r, mc.Count, pt.Perturb(truth[m].n, truth[m].key))
		}
		a, b := tab.Cells[r*w], tab.Cells[r*w+1]
		if a.Suppressed || b.Suppressed {
			continue
		}
		compared++
		if mc.Count != a.Count+b.Count {
			differ++
		}
	}
	// Column margins and the total too.
	for c := 0; c <= p.C; c++ {
		i := p.R*w + c
		if tab.Cells[i].Suppressed || tab.Cells[i].Count != pt.Perturb(truth[i].n, truth[i].key) {
			t.Errorf("column margin %d: %+v for a true %d", c, tab.Cells[i], truth[i].n)
		}
	}
	t.Logf("%d districts: %d margins perturbed; %d of %d differ from the sum of their released cells", rows, perturbed, differ, compared)
	if compared < 300 {
		t.Fatalf("only %d districts with both inner cells released", compared)
	}
	if 2*differ <= compared {
		t.Errorf("only %d of %d district margins differ from the sum of their released cells: margins look derived", differ, compared)
	}
	if 3*perturbed < rows {
		t.Errorf("only %d of %d margins differ from their true count: margins look unperturbed", perturbed, rows)
	}
}

// TestPerturbationProperties checks the released counts against the true
// ones on several tables.
func TestPerturbationProperties(t *testing.T) {
	f := shared(t)
	pt := defaultPTable(t)
	var zeros, suppressedZeros int
	for _, r := range []*Request{
		countReq(Persons, []string{"district"}, []string{"sex", "age_group5"}),
		countReq(Persons, []string{"ethnicity"}, []string{"religion"}),
		countReq(Households, []string{"province"}, []string{"toilet_type"}),
	} {
		tab, truth := release(t, f.cache, r, f.proj, f.asOf)
		var sup int
		for i, c := range tab.Cells {
			a := truth[i]
			if a.n == 0 {
				zeros++
				if !c.Suppressed || c.Count != 0 {
					t.Errorf("%s cell %d: true 0 released as %+v", tab.Plan.Describe(), i, c)
				} else {
					suppressedZeros++
				}
			}
			if c.Suppressed {
				sup++
				if c.Count != 0 || c.Value != 0 {
					t.Errorf("cell %d: suppressed but holds %+v", i, c)
				}
				if v := pt.Perturb(a.n, a.key); v >= 10 {
					t.Errorf("cell %d: suppressed though its perturbed count is %d", i, v)
				}
				continue
			}
			if c.Count < 10 {
				t.Errorf("cell %d: released %d, below the small-cell threshold", i, c.Count)
			}
			if d := c.Count - a.n; d < -2 || d > 2 {
				t.Errorf("cell %d: released %d for a true %d", i, c.Count, a.n)
			}
			if c.Count != pt.Perturb(a.n, a.key) {
				t.Errorf("cell %d: released %d, the perturbation table gives %d", i, c.Count, pt.Perturb(a.n, a.key))
			}
		}
		if sup == 0 {
			t.Errorf("%s: no suppressed cell in a fine table", tab.Plan.Describe())
		}
	}
	if zeros == 0 {
		t.Error("no true zero among the cells: the zero check did not run")
	}
}

// TestSameContributorsSameValue checks that a cell with the same
// contributors gets the same released value whatever request yields it.
func TestSameContributorsSameValue(t *testing.T) {
	f := shared(t)
	c := f.cache
	byProv, _ := release(t, c, countReq(Persons, []string{"province"}, []string{"sex"}), f.proj, f.asOf)
	transposed, _ := release(t, c, countReq(Persons, []string{"sex"}, []string{"province"}), f.proj, f.asOf)
	provOnly, _ := release(t, c, countReq(Persons, []string{"province"}, nil), f.proj, f.asOf)
	sumReq := &Request{Project: "p", Unit: Persons, Rows: []string{"province"}, Cols: []string{"sex"}, Measure: Measure{Op: "sum", Var: "age"}}
	sums, _ := release(t, c, sumReq, f.proj, f.asOf)
	var compared int
	for _, prov := range areasAt(f.tree, area.Province) {
		r := countReq(Persons, []string{"sex"}, nil)
		r.Filter = map[string][]string{FilterArea: {string(prov)}}
		one, _ := release(t, c, r, f.proj, f.asOf)
		s := cloneRequest(sumReq)
		s.Rows, s.Cols, s.Filter = []string{"sex"}, nil, r.Filter
		oneSum, _ := release(t, c, s, f.proj, f.asOf)
		for _, sex := range []string{"1", "2", Margin} {
			want := one.Cells[cellIndex(t, one, []string{sex}, nil)]
			for name, got := range map[string]Cell{
				"province × sex":        byProv.Cells[cellIndex(t, byProv, []string{string(prov)}, []string{sex})],
				"sex × province":        transposed.Cells[cellIndex(t, transposed, []string{sex}, []string{string(prov)})],
				"sex, filter by area":   want,
				"province (sex margin)": provOnly.Cells[cellIndex(t, provOnly, []string{string(prov)}, nil)],
			} {
				if name == "province (sex margin)" && sex != Margin {
					continue
				}
				if got != want {
					t.Errorf("province %s sex %s: %s gives %+v, filter by area %+v", prov, sex, name, got, want)
				}
				compared++
			}
			ws := oneSum.Cells[cellIndex(t, oneSum, []string{sex}, nil)]
			if gs := sums.Cells[cellIndex(t, sums, []string{string(prov)}, []string{sex})]; gs != ws {
				t.Errorf("province %s sex %s: sum of age %+v in the province table, %+v filtered", prov, sex, gs, ws)
			}
		}
	}
	if compared < 63*3 {
		t.Errorf("only %d comparisons", compared)
	}
}

// TestMeanAbsolutePerturbation measures the noise on cells of true count
// at least 10 over a generated census.
func TestMeanAbsolutePerturbation(t *testing.T) {
	f := shared(t)
	var sum, cells float64
	for _, r := range []*Request{
		countReq(Persons, []string{"district"}, []string{"sex", "age_group5"}),
		countReq(Persons, []string{"province"}, []string{"sex", "age_group5"}),
		countReq(Persons, []string{"district"}, []string{"sex"}),
		countReq(Persons, []string{"province"}, []string{"ethnicity"}),
		countReq(Persons, []string{"district"}, []string{"relationship"}),
		countReq(Households, []string{"district"}, []string{"tenure"}),
	} {
		tab, truth := release(t, f.cache, r, f.proj, f.asOf)
		for i, c := range tab.Cells {
			// From 12 up a cell is never suppressed (noise ≥ -2), so the
			// released cells alone give the measure, unbiased.
			if truth[i].n < 12 {
				continue
			}
			if c.Suppressed {
				t.Fatalf("cell %d of true count %d suppressed", i, truth[i].n)
			}
			sum += math.Abs(float64(c.Count - truth[i].n))
			cells++
		}
	}
	mean := sum / cells
	t.Logf("mean absolute perturbation %.4f over %.0f cells of true count ≥ 12 (expected 2/3)", mean, cells)
	if cells < 2000 {
		t.Fatalf("only %.0f cells measured", cells)
	}
	if mean > 2 {
		t.Errorf("mean absolute perturbation %.3f > 2", mean)
	}
	// With D=2, V=1 the large-count noise is 0 half the time, ±1 a third
	// and ±2 a sixth: 2/3. Far from it, the noise is not what the
	// parameters say.
	if mean < 0.55 || mean > 0.8 {
		t.Errorf("mean absolute perturbation %.3f, expected about 0.667", mean)
	}
}

var twoDecimals = regexp.MustCompile(`^-?[0-9]+\.[0-9]{2}$`)

// TestSumAndMean checks perturbed sums and means: within the variable's
// bound of the truth and, under v2, between m·x(1)/2 and m·x(1) of it;
// suppressed with the count or when dominated; rendered with two
// decimals.
func TestSumAndMean(t *testing.T) {
	f := shared(t)
	pt := defaultPTable(t)
	c := f.cache
	for _, k := range []struct {
		req   *Request
		bound float64
		count *Request // the count table over the same contributors
	}{
		{&Request{Project: "p", Unit: Households, Rows: []string{"province"}, Cols: []string{"tenure"}, Measure: Measure{Op: "sum", Var: "floor_area_m2"}},
			10000, countReq(Households, []string{"province"}, []string{"tenure"})},
		{&Request{Project: "p", Unit: Persons, Rows: []string{"province"}, Cols: []string{"sex", "marital_status"}, Measure: Measure{Op: "mean", Var: "age"}},
			119, countReq(Persons, []string{"province"}, []string{"sex", "marital_status"})},
		{&Request{Project: "p", Unit: Persons, Rows: []string{"province"}, Cols: []string{"age_group5"}, Measure: Measure{Op: "sum", Var: "age"}},
			119, countReq(Persons, []string{"province"}, []string{"age_group5"})},
	} {
		tab, truth := release(t, c, k.req, f.proj, f.asOf)
		counts, ctruth := release(t, c, k.count, f.proj, f.asOf)
		if tab.Plan.measure.bound != k.bound {
			t.Errorf("%s: bound %v, want %v", tab.Plan.Describe(), tab.Plan.measure.bound, k.bound)
		}
		var released, moved, suppressed int
		for i, cell := range tab.Cells {
			a := truth[i]
			if a.n != ctruth[i].n || a.key != ctruth[i].key {
				t.Fatalf("cell %d: the measure table has %d contributors, the count table %d", i, a.n, ctruth[i].n)
			}
			dominated := pt.Dominated(a.cell())
			if cell.Suppressed != (counts.Cells[i].Suppressed || dominated) {
				t.Errorf("%s cell %d: suppressed %v, its count suppressed %v, dominated %v", tab.Plan.Describe(), i, cell.Suppressed, counts.Cells[i].Suppressed, dominated)
			}
			if cell.Suppressed {
				suppressed++
				if cell.Value != 0 {
					t.Errorf("cell %d: suppressed but holds %v", i, cell.Value)
				}
				continue
			}
			released++
			sum := float64(a.milli) / 1000
			got := cell.Value
			if k.req.Measure.Op == "mean" {
				got *= float64(counts.Cells[i].Count) // the perturbed sum
			}
			if d := math.Abs(got - sum); d > k.bound*(1+1e-9) {
				t.Errorf("%s cell %d: released sum %.3f for a true %.3f (bound %v)", tab.Plan.Describe(), i, got, sum, k.bound)
			} else if d > 0.01 {
				moved++
			}
			if x1, m := float64(a.top[0])/1000, sdc.DefaultParams().Magnitude; k.req.Measure.Op == "sum" {
				if d := math.Abs(cell.Value - sum); d < m*x1/2*(1-1e-9) || d >= m*x1 {
					t.Errorf("%s cell %d: sum noise %.3f outside [m·x(1)/2, m·x(1)) = [%.3f, %.3f)", tab.Plan.Describe(), i, d, m*x1/2, m*x1)
				}
			}
		}
		t.Logf("%s: %d released (%d perturbed), %d suppressed", tab.Plan.Describe(), released, moved, suppressed)
		if released < 50 || suppressed == 0 {
			t.Errorf("%s: %d released, %d suppressed: the test needs both", tab.Plan.Describe(), released, suppressed)
		}
		if 3*moved < released {
			t.Errorf("%s: only %d of %d released values perturbed", tab.Plan.Describe(), moved, released)
		}

		// Rendered with two decimals, in JSON and CSV.
		var doc struct {
			Cells []struct {
				Value      *json.Number `json:"value"`
				Suppressed bool         `json:"suppressed"`
			} `json:"cells"`
		}
		dec := json.NewDecoder(bytes.NewReader(tab.Render()))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		for i, cell := range doc.Cells {
			if cell.Suppressed != tab.Cells[i].Suppressed || (cell.Value == nil) != cell.Suppressed {
				t.Fatalf("JSON cell %d: %+v", i, cell)
			}
			if cell.Value != nil && (!twoDecimals.MatchString(cell.Value.String()) || cell.Value.String() != strconv.FormatFloat(tab.Cells[i].Value, 'f', 2, 64)) {
				t.Errorf("JSON cell %d value %s, want %.2f with 2 decimals", i, cell.Value, tab.Cells[i].Value)
			}
		}
		p := mustCompile(t, c, k.req, f.proj, sdc.DefaultParams(), FormatCSV, f.asOf)
		cb := mustRun(t, c, p).Render()
		lines := strings.SplitN(string(cb), "\n", 3)
		recs, err := csv.NewReader(strings.NewReader(lines[2])).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs[1:] {
			v := rec[len(rec)-2]
			if v != "" && !twoDecimals.MatchString(v) {
				t.Errorf("CSV value %q, want 2 decimals", v)
			}
		}
	}

	// The same contributors: a sum is the same whatever table it is in;
	// the mean follows the count's noise and the sum's.
	mr := &Request{Project: "p", Unit: Persons, Rows: []string{"sex"}, Measure: Measure{Op: "mean", Var: "age"}}
	mt, mtruth := release(t, c, mr, f.proj, f.asOf)
	for i, cell := range mt.Cells {
		want, sup := pt.ReleaseMean(mtruth[i].cell(), 119)
		if cell.Suppressed != sup || cell.Value != want {
			t.Errorf("mean cell %d: %+v, want %v (suppressed %v)", i, cell, want, sup)
		}
	}
}
