package tables

import (
	"strconv"
	"testing"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/sdc"
)

func allVars(s *Schema) []string { return s.Variables() }

// TestAggregateMatchesBruteForce checks the engine's true cells, margins
// included, against a direct count over the decoded submissions.
func TestAggregateMatchesBruteForce(t *testing.T) {
	tr := national(t)
	hs, subs := synthHouseholds(t, tr, 3000)
	c := newTestCache(t, tr, hs)
	proj := Project{ID: "p", Areas: []string{"VN"}, Variables: allVars(c.schema)}
	req := &Request{Project: "p", Unit: Persons, Rows: []string{"province"}, Cols: []string{"sex", "age_group5"}, Measure: Measure{Op: "count"}}
	p, err := c.Compile(req, proj, sdc.DefaultParams(), FormatJSON, c.UpTo())
	if err != nil {
		t.Fatal(err)
	}
	got, u, err := c.aggregate(p)
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ prov, sex, band string }
	want := map[key]int64{}
	var persons int64
	for _, s := range subs {
		prov, _ := tr.Ancestor(area.Code(s.Area), area.Province)
		for _, m := range s.Persons {
			sex, _ := m["sex"].Int()
			by, _ := m["birth_year"].Int()
			bm, _ := m["birth_month"].Int()
			b, ok := AgeGroup5(c.schema.census, int(by), int(bm))
			if !ok {
				continue
			}
			persons++
			for _, k := range []key{
				{string(prov), strconv.Itoa(int(sex)), AgeGroup5Label(b)},
				{string(prov), "*", "*"}, {"*", strconv.Itoa(int(sex)), AgeGroup5Label(b)}, {"*", "*", "*"},
			} {
				want[k]++
			}
		}
	}
	if u != persons {
		t.Errorf("universe %d, want %d", u, persons)
	}
	tab := &Table{Plan: p, Cells: make([]Cell, len(got))}
	var checked int
	for i, a := range got {
		row, col := tab.cellCats(i)
		k := key{row[0], col[0], col[1]}
		if (col[0] == "*") != (col[1] == "*") {
			t.Fatalf("cell %d: half a margin %v", i, col)
		}
		if a.n != want[k] {
			t.Errorf("cell %v: %d, want %d", k, a.n, want[k])
		}
		checked++
	}
	if checked != p.Cells() || p.Cells() != (63+1)*(2*21+1) {
		t.Errorf("%d cells checked, plan says %d", checked, p.Cells())
	}
	_ = form.Analytic
}

// TestFilteredDimensionKeepsOnlyItsCategories: a dimension that is also
// filtered has only the kept categories, so the table spends no budget
// on structurally empty cells, and its counts are those of the full
// table's matching cells.
func TestFilteredDimensionKeepsOnlyItsCategories(t *testing.T) {
	tr := national(t)
	hs, _ := synthHouseholds(t, tr, 3000)
	c := newTestCache(t, tr, hs)
	proj := Project{ID: "p", Areas: []string{"VN"}, Variables: allVars(c.schema)}
	full, err := c.Compile(&Request{Project: "p", Unit: Persons, Rows: []string{"age_group5"}, Cols: []string{"ethnicity"}, Measure: Measure{Op: "count"}},
		proj, sdc.DefaultParams(), FormatJSON, c.UpTo())
	if err != nil {
		t.Fatal(err)
	}
	part, err := c.Compile(&Request{Project: "p", Unit: Persons, Rows: []string{"age_group5"}, Cols: []string{"ethnicity"}, Measure: Measure{Op: "count"},
		Filter: map[string][]string{"age_group5": {"20-24", "15-19"}, "ethnicity": {"1", "3"}}}, proj, sdc.DefaultParams(), FormatJSON, c.UpTo())
	if err != nil {
		t.Fatal(err)
	}
	if part.R != 2 || part.C != 2 || part.Cells() != 9 {
		t.Fatalf("filtered table is %d×%d (%d cells), want 2×2 (9)", part.R, part.C, part.Cells())
	}
	if got := part.rows[0].values; got[0] != "15-19" || got[1] != "20-24" {
		t.Errorf("row categories %v", got)
	}
	if got := part.cols[0].values; got[0] != "1" || got[1] != "3" {
		t.Errorf("col categories %v", got)
	}
	fc, _, err := c.aggregate(full)
	if err != nil {
		t.Fatal(err)
	}
	pc, _, err := c.aggregate(part)
	if err != nil {
		t.Fatal(err)
	}
	ft, pt := &Table{Plan: full}, &Table{Plan: part}
	want := map[[2]string]acc{}
	for i, a := range fc {
		r, col := ft.cellCats(i)
		want[[2]string{r[0], col[0]}] = a
	}
	for i, a := range pc {
		r, col := pt.cellCats(i)
		if r[0] == Margin || col[0] == Margin {
			continue
		}
		if w := want[[2]string{r[0], col[0]}]; a != w {
			t.Errorf("cell %s,%s: %+v, want %+v", r[0], col[0], a, w)
		}
	}
}
