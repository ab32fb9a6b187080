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
			b, ok := AgeGroup5(int(by), int(bm))
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
