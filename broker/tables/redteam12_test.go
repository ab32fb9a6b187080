package tables

// Red team of issue 12 (dp tables): the attacks on the engine that it
// stops, each written as the attack.

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker/area"
)

// rt12Cells maps each cell of a table (margins included) to its count,
// keyed by its categories named by variable ("var=value", sorted), so
// that tables laid out differently compare cell by cell.
func rt12Cells(tab *Table) map[string]Cell {
	p := tab.Plan
	out := map[string]Cell{}
	for i, c := range tab.Cells {
		row, col := tab.cellCats(i)
		var k []string
		for j, d := range p.rows {
			k = append(k, d.name+"="+row[j])
		}
		for j, d := range p.cols {
			k = append(k, d.name+"="+col[j])
		}
		slices.Sort(k)
		out[strings.Join(k, "|")] = c
	}
	return out
}

// TestRT12LayoutsDrawTheSameNoise is the averaging attack through the
// layout: the same four dimensions split between rows and columns in
// every way and order. Each must be the same query and put the same
// noisy count in the same cell (found by its categories, not by the
// canonical order under test); else each layout would be fresh noise on
// the same cells, or a repeat would be refused on a layout.
func TestRT12LayoutsDrawTheSameNoise(t *testing.T) {
	f := shared(t)
	c := f.cache
	prov := areasAt(f.tree, area.Province)[0]
	vars := []string{"sex", "literacy", "age_group5", "marital_status"}
	layouts := [][2][]string{
		{vars, nil},
		{{"marital_status", "age_group5", "literacy", "sex"}, nil},
		{{"sex", "literacy"}, {"age_group5", "marital_status"}},
		{{"age_group5"}, {"marital_status", "sex", "literacy"}},
		{{"literacy", "marital_status", "sex"}, {"age_group5"}},
		{{"marital_status", "sex"}, {"literacy", "age_group5"}},
	}
	var q0 string
	var cells0 map[string]Cell
	var digest0 string
	for k, l := range layouts {
		r := &Request{Project: "p", Unit: Persons, Rows: l[0], Cols: l[1], Measure: Measure{Op: "count"},
			Filter: map[string][]string{"area": {string(prov)}}}
		p := mustCompileDP(t, c, r, f.proj, scheduled(f))
		tab := mustRunDP(t, c, p, seedOf(p))
		cells := rt12Cells(tab)
		if k == 0 {
			q0, cells0, digest0 = p.Query(), cells, tab.ResultDigest()
			continue
		}
		if p.Query() != q0 {
			t.Fatalf("layout %v: another query", l)
		}
		if tab.ResultDigest() != digest0 {
			t.Errorf("layout %v: another result digest", l)
		}
		n := 0
		for key, cell := range cells {
			if strings.Contains(key, "="+Margin) {
				continue // margins depend on the layout
			}
			c0, ok := cells0[key]
			if !ok {
				t.Fatalf("layout %v: cell %s not in the first layout", l, key)
			}
			if c0 != cell {
				t.Fatalf("layout %v: cell %s released %+v, %+v in the first layout: other noise on the same cell", l, key, cell, c0)
			}
			n++
		}
		if n == 0 {
			t.Fatal("no cells compared")
		}
	}
}

// TestRT12PersonCapHolds is the attack on the household bound: a
// household of 14 persons (more than the cap of 8) in every kind of
// person table — counts by a person dimension, with person and age
// filters that keep a different subset, with an area dimension, sums
// of age. No table may take more than 8 of its persons, nor more than
// 8·bound of age.
func TestRT12PersonCapHolds(t *testing.T) {
	tr := national(t)
	ea := eaOf(tr, areasAt(tr, area.Commune)[0])
	var ps []map[string]int
	for i := range 14 {
		p := person(1+i%2, 1930+5*i)
		p["literacy"] = 1 + i%2
		ps = append(ps, p)
	}
	c := newTestCache(t, tr, []Household{hhWith(10, ea, 1, ps...)})
	proj := Project{ID: "p", Areas: []string{string(tr.Root())}, Variables: c.schema.Variables()}
	pt := DPPoint{Name: "daily-test", AsOf: c.UpTo(), Digest: "sha256:point"}
	bound := int64(c.schema.vars[VarAge].bound + 1)
	reqs := []*Request{
		{Rows: []string{"sex"}},
		{Rows: []string{"age_group5"}, Cols: []string{"sex"}},
		{Rows: []string{"sex"}, Filter: map[string][]string{"sex": {"2"}}},
		{Rows: []string{"literacy"}, Filter: map[string][]string{"age_group5": {"0-4", "5-9", "10-14", "15-19", "20-24", "25-29", "30-34", "35-39", "40-44"}}},
		{Rows: []string{"commune", "sex"}},
		{Rows: []string{"ea"}, Cols: []string{"age_group5"}, Filter: map[string][]string{"literacy": {"1"}}},
		{Rows: []string{"sex"}, Measure: Measure{Op: "sum", Var: VarAge}},
		{Rows: []string{"literacy"}, Measure: Measure{Op: "mean", Var: VarAge}, Filter: map[string][]string{"sex": {"1"}}},
	}
	for _, r := range reqs {
		r.Project, r.Unit = "p", Persons
		if r.Measure.Op == "" {
			r.Measure = Measure{Op: "count"}
		}
		if r.Filter == nil {
			r.Filter = map[string][]string{}
		}
		r.Filter["area"] = []string{string(ea)}
		p := mustCompileDP(t, c, r, proj, pt)
		truth, _, err := c.aggregate(p)
		if err != nil {
			t.Fatal(err)
		}
		total := truth[len(truth)-1]
		if total.n > 8 {
			t.Errorf("%s: one household counted %d times (cap 8)", p.Describe(), total.n)
		}
		if total.milli/1000 > 8*bound {
			t.Errorf("%s: one household added %d to a sum (cap 8·%d)", p.Describe(), total.milli/1000, bound)
		}
		var l2 int64
		for i := range p.R * max(p.C, 1) {
			row, col := i/max(p.C, 1), i%max(p.C, 1)
			x := truth[row*p.width()+col].n
			l2 += x * x
		}
		if l2 > p.dp.sqCount {
			t.Errorf("%s: one household's L2² on the inner counts is %d, the noise's Δ² %d", p.Describe(), l2, p.dp.sqCount)
		}
	}
}

// TestRT12SumsAreClipped is the attack of an outlier: a household whose
// floor area is far outside the form's bounds (a record of another
// version, or a bug upstream) must add no more than the bound to a dp
// sum, or its presence would show through the noise scaled to the bound.
// Since issue 14 the cache stores such a value as absent (a value the
// latest version of the form does not accept), so it adds nothing; the
// sum's clip stays behind it.
func TestRT12SumsAreClipped(t *testing.T) {
	tr := national(t)
	ea := eaOf(tr, areasAt(tr, area.Commune)[0])
	h := hhWith(10, ea, 1, person(1, 1980))
	h.Analytic = analytic(map[string]int{"dwelling_type": 1, "floor_area_m2": 50_000_000}, person(1, 1980))
	c := newTestCache(t, tr, []Household{h})
	proj := Project{ID: "p", Areas: []string{string(tr.Root())}, Variables: c.schema.Variables()}
	r := &Request{Project: "p", Unit: Households, Rows: []string{"dwelling_type"}, Measure: Measure{Op: "sum", Var: "floor_area_m2"},
		Filter: map[string][]string{"area": {string(ea)}}}
	p := mustCompileDP(t, c, r, proj, DPPoint{Name: "daily-test", AsOf: c.UpTo(), Digest: "sha256:point"})
	truth, _, err := c.aggregate(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := truth[len(truth)-1].milli / 1000; got > p.dp.bound || got < 0 {
		t.Fatalf("an outlier household added %d to a dp sum bounded by %d per household", got, p.dp.bound)
	}
}

// TestRT12FiltersThatDropRecordsAreNotNoFilter: a filter is dropped from
// the query only when it keeps every record. Listing every code of an
// optional variable drops its "not stated" records, and listing every
// age band drops persons whose age is unknown: each is other cells, so
// it must be another query — were it the same, the repeat check would
// refuse it as "changed data" whenever such records exist (a refusal
// that tells they exist).
func TestRT12FiltersThatDropRecordsAreNotNoFilter(t *testing.T) {
	f := shared(t)
	c := f.cache
	prov := string(areasAt(f.tree, area.Province)[0])
	base := func() *Request {
		return &Request{Project: "p", Unit: Persons, Rows: []string{"sex"}, Measure: Measure{Op: "count"}, Filter: map[string][]string{"area": {prov}}}
	}
	p0 := mustCompileDP(t, c, base(), f.proj, scheduled(f))
	eth := c.schema.vars["ethnicity"]
	if eth.required {
		t.Fatal("ethnicity is required in this form: pick another optional variable")
	}
	var all []string
	for _, x := range eth.values {
		all = append(all, fmt.Sprint(x))
	}
	var bands []string
	for b := range AgeGroup5Bands {
		bands = append(bands, AgeGroup5Label(b))
	}
	for name, vals := range map[string][]string{"ethnicity": all, VarAgeGroup5: bands} {
		r := base()
		r.Filter[name] = vals
		if p := mustCompileDP(t, c, r, f.proj, scheduled(f)); p.Query() == p0.Query() {
			t.Errorf("a filter listing every %s category (which drops records without one) is the same query as none", name)
		}
	}
	// While a filter listing every code of a required variable is none.
	r := base()
	r.Filter["sex"] = []string{"2", "1"}
	if p := mustCompileDP(t, c, r, f.proj, scheduled(f)); p.Query() != p0.Query() {
		t.Error("a filter listing both sexes is another query")
	}
}

// TestRT12HouseholdTablesRefusePersonFilters: a household table counts
// each household once, whatever its persons; the scan applies person
// and age filters only to persons, so a household table with one would
// silently ignore it — the same cells under another query, each asking
// drawing fresh noise on them, and an answer that is not what was asked.
// It is refused.
func TestRT12HouseholdTablesRefusePersonFilters(t *testing.T) {
	f := shared(t)
	for _, filter := range []map[string][]string{{"sex": {"1"}}, {VarAgeGroup5: {"0-4"}}} {
		r := &Request{Project: "p", Unit: Households, Rows: []string{"tenure"}, Measure: Measure{Op: "count"}, Filter: filter, Rho: "0.02"}
		if _, err := f.cache.CompileDP(r, f.proj, scheduled(f), DefaultDPParams(), FormatJSON); err == nil {
			t.Errorf("a household table with person filter %v compiled", filter)
		}
	}
}
