package tables

import (
	"bytes"
	"crypto/sha256"
	"math"
	"slices"
	"testing"

	"github.com/censusvault/censusvault/broker/area"
)

// scheduled is a scheduled point at the fixture's end.
func scheduled(f *fixture) DPPoint {
	return DPPoint{Name: "daily-test", AsOf: f.asOf, Digest: "sha256:point"}
}

func mustCompileDP(t testing.TB, c *Cache, r *Request, proj Project, pt DPPoint) *Plan {
	t.Helper()
	if r.Rho == "" {
		r.Rho = "0.02"
	}
	p, err := c.CompileDP(r, proj, pt, DefaultDPParams(), FormatJSON)
	if err != nil {
		t.Fatalf("CompileDP(rows %v cols %v filter %v): %v", r.Rows, r.Cols, r.Filter, err)
	}
	return p
}

func mustRunDP(t testing.TB, c *Cache, p *Plan, seed [32]byte) *Table {
	t.Helper()
	tab, err := c.RunDP(p, seed)
	if err != nil {
		t.Fatalf("RunDP(%s): %v", p.Describe(), err)
	}
	return tab
}

func seedOf(p *Plan) [32]byte { return sha256.Sum256(p.QueryBytes()) }

func TestDPDeterministicPerQuery(t *testing.T) {
	f := shared(t)
	c := f.cache
	r := countReq(Persons, []string{"religion"}, []string{"sex"})
	p := mustCompileDP(t, c, r, f.proj, scheduled(f))
	a := mustRunDP(t, c, p, seedOf(p))
	b := mustRunDP(t, c, mustCompileDP(t, c, countReq(Persons, []string{"religion"}, []string{"sex"}), f.proj, scheduled(f)), seedOf(p))
	if !bytes.Equal(a.Render(), b.Render()) {
		t.Fatal("the same query with the same seed released different bytes")
	}
	var other [32]byte
	other[0] = 1
	o := mustRunDP(t, c, p, other)
	if bytes.Equal(a.Render(), o.Render()) {
		t.Fatal("another seed drew the same noise")
	}
	// A point that sees other data is another query; one that sees the
	// same data (the next day's, nothing deposited between) is not.
	pt := scheduled(f)
	pt.AsOf -= 2
	if p2 := mustCompileDP(t, c, countReq(Persons, []string{"religion"}, []string{"sex"}), f.proj, pt); p2.Query() == p.Query() {
		t.Fatal("the same table at an earlier point has the same query")
	}
	pt = scheduled(f)
	pt.Name = "daily-next"
	if p2 := mustCompileDP(t, c, countReq(Persons, []string{"religion"}, []string{"sex"}), f.proj, pt); p2.Query() != p.Query() {
		t.Fatal("the same table at a point seeing the same data is another query: fresh noise for nothing new")
	}
}

// TestDPEquivalentRewrites is the averaging attack: asking for the same
// cells written differently, to get independent noise to average away.
// Every rewrite must be the same query, drawing the same noise.
func TestDPEquivalentRewrites(t *testing.T) {
	f := shared(t)
	c := f.cache
	prov := areasAt(f.tree, area.Province)[0]
	districts := f.tree.Children(prov)
	base := &Request{Project: "p", Unit: Persons, Rows: []string{"religion", "sex"}, Measure: Measure{Op: "count"},
		Filter: map[string][]string{"area": {string(prov)}, "literacy": {"1"}}}
	rewrites := map[string]*Request{
		"dimensions reordered": {Project: "p", Unit: Persons, Rows: []string{"sex", "religion"}, Measure: Measure{Op: "count"},
			Filter: map[string][]string{"area": {string(prov)}, "literacy": {"1"}}},
		"rows and cols": {Project: "p", Unit: Persons, Rows: []string{"sex"}, Cols: []string{"religion"}, Measure: Measure{Op: "count"},
			Filter: map[string][]string{"area": {string(prov)}, "literacy": {"1"}}},
		"code spelt 01": {Project: "p", Unit: Persons, Rows: []string{"religion", "sex"}, Measure: Measure{Op: "count"},
			Filter: map[string][]string{"area": {string(prov)}, "literacy": {"01", "+1"}}},
		"province as its districts": {Project: "p", Unit: Persons, Rows: []string{"religion", "sex"}, Measure: Measure{Op: "count"},
			Filter: map[string][]string{"area": codes(districts), "literacy": {"1"}}},
		"with a dimension of one category": {Project: "p", Unit: Persons, Rows: []string{"religion", "sex"}, Cols: []string{"province"}, Measure: Measure{Op: "count"},
			Filter: map[string][]string{"area": {string(prov)}, "literacy": {"1"}}},
		"with a filter keeping every sex": {Project: "p", Unit: Persons, Rows: []string{"religion", "sex"}, Measure: Measure{Op: "count"},
			Filter: map[string][]string{"area": {string(prov)}, "literacy": {"1"}, "sex": {"2", "1"}}},
	}
	p0 := mustCompileDP(t, c, base, f.proj, scheduled(f))
	t0 := mustRunDP(t, c, p0, seedOf(p0))
	for name, r := range rewrites {
		p := mustCompileDP(t, c, r, f.proj, scheduled(f))
		if p.Query() != p0.Query() {
			t.Errorf("%s: a different query (%s vs %s): it would draw new noise", name, p.QueryBytes(), p0.QueryBytes())
			continue
		}
		if got := mustRunDP(t, c, p, seedOf(p)); got.ResultDigest() != t0.ResultDigest() {
			t.Errorf("%s: the same query released other values", name)
		}
	}
	// And a real change is a different query.
	r := &Request{Project: "p", Unit: Persons, Rows: []string{"religion", "sex"}, Measure: Measure{Op: "count"},
		Filter: map[string][]string{"area": {string(prov)}, "literacy": {"2"}}}
	if p := mustCompileDP(t, c, r, f.proj, scheduled(f)); p.Query() == p0.Query() {
		t.Fatal("another filter is the same query")
	}
}

func codes(cs []area.Code) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	return out
}

// TestDPTableAddsUp checks the post-processing: inner cells are
// non-negative integers and margins are sums of the released inner cells.
func TestDPTableAddsUp(t *testing.T) {
	f := shared(t)
	c := f.cache
	p := mustCompileDP(t, c, countReq(Persons, []string{"province"}, []string{"religion"}), f.proj, scheduled(f))
	tab := mustRunDP(t, c, p, seedOf(p))
	w := p.width()
	for r := range p.R + 1 {
		var rowSum int64
		for col := range p.C {
			v := tab.Cells[r*w+col].Count
			if v < 0 {
				t.Fatalf("cell (%d,%d) is negative: %d", r, col, v)
			}
			rowSum += v
		}
		if got := tab.Cells[r*w+p.C].Count; got != rowSum {
			t.Fatalf("row %d's margin is %d, its cells add to %d", r, got, rowSum)
		}
	}
	for col := range p.C + 1 {
		var colSum int64
		for r := range p.R {
			colSum += tab.Cells[r*w+col].Count
		}
		if got := tab.Cells[p.R*w+col].Count; got != colSum {
			t.Fatalf("column %d's margin is %d, its cells add to %d", col, got, colSum)
		}
	}
}

// TestDPNoiseScale checks that the released cells carry noise of the
// stated variance: the differences from the true counts of a table whose
// cells are far from zero have the discrete Gaussian's variance
// Δ²/(2ρ), Δ = the person cap.
func TestDPNoiseScale(t *testing.T) {
	f := shared(t)
	c := f.cache
	r := countReq(Persons, []string{"province", "sex"}, nil)
	r.Rho = "0.5"
	p := mustCompileDP(t, c, r, f.proj, scheduled(f))
	truth, _, err := c.aggregate(p)
	if err != nil {
		t.Fatal(err)
	}
	want := float64(DefaultDPParams().PersonCap*DefaultDPParams().PersonCap) / (2 * 0.5)
	var sum, sq float64
	var n int
	for s := range 40 {
		var seed [32]byte
		seed[0], seed[1] = byte(s), 7
		tab := mustRunDP(t, c, p, seed)
		for i := range p.R {
			if truth[i].n < 200 {
				continue
			}
			d := float64(tab.Cells[i].Count - truth[i].n)
			sum += d
			sq += d * d
			n++
		}
	}
	mean := sum / float64(n)
	v := sq/float64(n) - mean*mean
	t.Logf("%d cells: noise mean %.3f, variance %.1f (σ² = %.1f)", n, mean, v, want)
	if n < 3000 {
		t.Fatalf("only %d cells far from zero", n)
	}
	if math.Abs(v-want)/want > 0.1 || math.Abs(mean) > 4*math.Sqrt(want/float64(n)) {
		t.Fatalf("noise variance %.1f, mean %.3f; want σ² = %.1f and mean 0", v, mean, want)
	}
}

// TestDPPersonCap checks that a person table counts at most PersonCap
// persons of one household: without the cap one household could move a
// cell by its whole size, past what the noise is scaled to.
func TestDPPersonCap(t *testing.T) {
	tr := national(t)
	ea := eaOf(tr, areasAt(tr, area.Commune)[0])
	var persons []map[string]int
	for range 12 {
		persons = append(persons, person(1, 1980))
	}
	big := hhWith(10, ea, 1, persons...)
	c := newTestCache(t, tr, []Household{big})
	proj := Project{ID: "p", Areas: []string{string(tr.Root())}, Variables: c.schema.Variables()}
	p := mustCompileDP(t, c, countReq(Persons, []string{"sex"}, nil), proj, DPPoint{Name: "x", AsOf: c.UpTo(), Digest: "d"})
	truth, _, err := c.aggregate(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, capK := truth[len(truth)-1].n, int64(DefaultDPParams().PersonCap); got != capK {
		t.Fatalf("a household of 12 persons counts %d in a dp table; the cap is %d", got, capK)
	}
	// A cell-key table counts them all.
	cp, err := c.Compile(countReq(Persons, []string{"sex"}, nil), proj, DefaultDPParams().shape(), FormatJSON, c.UpTo())
	if err != nil {
		t.Fatal(err)
	}
	if truth, _, _ := c.aggregate(cp); truth[len(truth)-1].n != 12 {
		t.Fatalf("the cell-key table counts %d of 12", truth[len(truth)-1].n)
	}
}

// TestDPRefusals: sums of codes and malformed ρ are refused.
func TestDPRefusals(t *testing.T) {
	f := shared(t)
	c := f.cache
	for name, r := range map[string]*Request{
		"sum of a code": {Project: "p", Unit: Persons, Rows: []string{"sex"}, Measure: Measure{Op: "sum", Var: "religion"}, Rho: "0.02"},
		"rho zero":      {Project: "p", Unit: Persons, Rows: []string{"sex"}, Measure: Measure{Op: "count"}, Rho: "0"},
		"rho exponent":  {Project: "p", Unit: Persons, Rows: []string{"sex"}, Measure: Measure{Op: "count"}, Rho: "1e-2"},
		"rho negative":  {Project: "p", Unit: Persons, Rows: []string{"sex"}, Measure: Measure{Op: "count"}, Rho: "-1"},
	} {
		if _, err := c.CompileDP(r, f.proj, scheduled(f), DefaultDPParams(), FormatJSON); err == nil {
			t.Errorf("%s: compiled", name)
		} else {
			requestError(t, err)
		}
	}
}

// TestDPUniverseOnNoisyTotal: a table whose noisy total is under the
// minimum universe has every cell suppressed — and the decision reads the
// noisy total, never the true one, so it tells nothing beyond the noise.
func TestDPUniverseOnNoisyTotal(t *testing.T) {
	f := shared(t)
	c := f.cache
	ea := eaOf(f.tree, areasAt(f.tree, area.Commune)[3])
	r := &Request{Project: "p", Unit: Households, Rows: []string{"dwelling_type"}, Measure: Measure{Op: "count"},
		Filter: map[string][]string{"area": {string(ea)}}, Rho: "0.02"}
	p := mustCompileDP(t, c, r, f.proj, scheduled(f))
	truth, _, _ := c.aggregate(p)
	if truth[len(truth)-1].n >= 100 {
		t.Skip("the EA is not small")
	}
	seen := map[bool]int{}
	for s := range 200 {
		var seed [32]byte
		seed[0], seed[1] = byte(s), byte(s>>8)
		tab := mustRunDP(t, c, p, seed)
		total := tab.Cells[len(tab.Cells)-1]
		seen[total.Suppressed]++
		if total.Count >= 100 && slices.ContainsFunc(tab.Cells, func(c Cell) bool { return c.Suppressed && c.Count >= 10 }) {
			t.Fatal("a cell of a table whose noisy total is above the minimum was suppressed though its noisy count is above the small-cell threshold")
		}
	}
	// σ = 1/√0.04 = 5 for a household count: a tiny EA's total (a few
	// households) almost never reaches 100: the table is suppressed.
	if seen[true] == 0 {
		t.Fatal("a tiny area's table was never suppressed")
	}
}
