package tables

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/sdc"
)

// fixtureHouseholds is the size of the shared synthetic census: about
// 72,000 persons over the national tree (one household per EA, so a
// single EA is always far below the minimum universe).
const fixtureHouseholds = 20000

// fixture is a synthetic census shared by the tests. Its cache must be
// treated as read-only: tests that append build their own cache.
type fixture struct {
	tree  *area.Tree
	hs    []Household
	subs  []*form.Submission
	cache *Cache
	asOf  int64   // the cache's UpTo
	proj  Project // all variables, the whole nation
}

var (
	fxOnce sync.Once
	fx     *fixture
)

func shared(t testing.TB) *fixture {
	t.Helper()
	fxOnce.Do(func() {
		tr := national(t)
		hs, subs := synthHouseholds(t, tr, fixtureHouseholds)
		c := newTestCache(t, tr, hs)
		fx = &fixture{tree: tr, hs: hs, subs: subs, cache: c, asOf: c.UpTo(),
			proj: Project{ID: "p", Areas: []string{string(tr.Root())}, Variables: c.schema.Variables()}}
	})
	if fx == nil {
		t.Fatal("the shared synthetic census could not be built (see the first test that failed)")
	}
	return fx
}

// countReq is a count request of project "p".
func countReq(unit Unit, rows, cols []string) *Request {
	return &Request{Project: "p", Unit: unit, Rows: rows, Cols: cols, Measure: Measure{Op: "count"}}
}

func mustCompile(t testing.TB, c *Cache, r *Request, proj Project, params sdc.Params, format string, asOf int64) *Plan {
	t.Helper()
	p, err := c.Compile(r, proj, params, format, asOf)
	if err != nil {
		t.Fatalf("Compile(rows %v cols %v filter %v): %v", r.Rows, r.Cols, r.Filter, err)
	}
	return p
}

func mustRun(t testing.TB, c *Cache, p *Plan) *Table {
	t.Helper()
	tab, err := c.Run(p)
	if err != nil {
		t.Fatalf("Run(%s): %v", p.Describe(), err)
	}
	return tab
}

// release compiles and runs r on c with the default parameters, and
// returns the released table and its true cells.
func release(t testing.TB, c *Cache, r *Request, proj Project, asOf int64) (*Table, []acc) {
	t.Helper()
	p := mustCompile(t, c, r, proj, sdc.DefaultParams(), FormatJSON, asOf)
	tab := mustRun(t, c, p)
	truth, _, err := c.aggregate(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(truth) != len(tab.Cells) {
		t.Fatalf("%d true cells, %d released", len(truth), len(tab.Cells))
	}
	return tab, truth
}

// cellIndex finds the cell whose categories are row and col (Margin for
// a block total).
func cellIndex(t testing.TB, tab *Table, row, col []string) int {
	t.Helper()
	for i := range tab.Cells {
		r, c := tab.cellCats(i)
		if strings.Join(r, "\x00") == strings.Join(row, "\x00") && strings.Join(c, "\x00") == strings.Join(col, "\x00") {
			return i
		}
	}
	t.Fatalf("no cell %v × %v", row, col)
	return -1
}

func defaultPTable(t testing.TB) *sdc.PTable {
	t.Helper()
	pt, err := sdc.NewPTable(sdc.DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	return pt
}

func requestError(t testing.TB, err error) *RequestError {
	t.Helper()
	var re *RequestError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a *RequestError", err, err)
	}
	return re
}

// eaOf returns the first EA below area a, in tree order.
func eaOf(tr *area.Tree, a area.Code) area.Code {
	for {
		x, _ := tr.Get(a)
		if x.Level == area.EA {
			return a
		}
		a = tr.Children(a)[0]
	}
}

// areasAt lists the areas of a level, in tree order.
func areasAt(tr *area.Tree, lv area.Level) []area.Code {
	var out []area.Code
	tr.Walk(tr.Root(), int(lv), func(a area.Area, _ int) bool {
		if a.Level == lv {
			out = append(out, a.Code)
		}
		return true
	})
	return out
}

// analytic builds an analytic part with the given household fields and
// persons (each a map of field to number).
func analytic(hh map[string]int, persons ...map[string]int) []byte {
	obj := func(m map[string]int) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys) // as form.Split writes them
		var b strings.Builder
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%q:%d", k, m[k])
		}
		b.WriteByte('}')
		return b.String()
	}
	var b strings.Builder
	b.WriteString(`{"household":` + obj(hh) + `,"persons":[`)
	for i, p := range persons {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(obj(p))
	}
	b.WriteString("]}")
	return []byte(b.String())
}

// person is a minimal analytic person.
func person(sex, birthYear int) map[string]int {
	return map[string]int{"sex": sex, "birth_year": birthYear, "birth_month": 6, "relationship": 1}
}

// hhWith makes a household at audit index idx in ea, with persons, keys
// derived from seed.
func hhWith(idx int64, ea area.Code, seed int, persons ...map[string]int) Household {
	h := Household{AuditIndex: idx, SupersedesIndex: -1, EA: string(ea), Key: testKey(seed, 0),
		Analytic: analytic(map[string]int{"dwelling_type": 1}, persons...)}
	for p := range persons {
		h.PersonKeys = append(h.PersonKeys, testKey(seed, p+1))
	}
	return h
}
