package tables

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/sdc"
)

// trueCells returns the true cells of a count request as of asOf.
func trueCells(t testing.TB, c *Cache, r *Request, proj Project, asOf int64) ([]acc, int64) {
	t.Helper()
	p := mustCompile(t, c, r, proj, sdc.DefaultParams(), FormatJSON, asOf)
	cells, u, err := c.aggregate(p)
	if err != nil {
		t.Fatal(err)
	}
	return cells, u
}

// TestSupersede checks that a correction replaces the household it
// supersedes from its own point of the deposit sequence on, and not
// before.
func TestSupersede(t *testing.T) {
	f := shared(t)
	hs := f.hs[:300]
	c := newTestCache(t, f.tree, hs)
	old := hs[50]
	last := c.UpTo()
	otherEA := eaOf(f.tree, areasAt(f.tree, area.Province)[5])
	for _, h := range hs {
		if h.EA == string(otherEA) {
			t.Fatalf("test setup: %s already holds a household", otherEA)
		}
	}

	// A correction in the same EA: three women.
	fix1 := hhWith(last+2, area.Code(old.EA), 500_001, person(2, 1970), person(2, 1995), person(2, 2001))
	fix1.SupersedesIndex = old.AuditIndex
	// A second correction of the first, which moves the household.
	fix2 := hhWith(last+4, otherEA, 500_002, person(1, 1960), person(1, 1990))
	fix2.SupersedesIndex = fix1.AuditIndex
	// A correction of a submission never appended (its key was shredded):
	// it ends nothing.
	orphan := hhWith(last+6, otherEA, 500_003, person(1, 1980))
	orphan.SupersedesIndex = old.AuditIndex + 1
	if err := c.Append([]Household{fix1, fix2, orphan}, orphan.AuditIndex); err != nil {
		t.Fatal(err)
	}

	bySex := func(ea area.Code, asOf int64) (n [3]int64, key uint32, households int64) {
		r := countReq(Persons, []string{"sex"}, nil)
		r.Filter = map[string][]string{FilterArea: {string(ea)}}
		cells, _ := trueCells(t, c, r, f.proj, asOf)
		hr := countReq(Households, []string{"province"}, nil)
		hr.Filter = r.Filter
		hcells, _ := trueCells(t, c, hr, f.proj, asOf)
		return [3]int64{cells[0].n, cells[1].n, cells[2].n}, cells[2].key, hcells[len(hcells)-1].n
	}
	// Under v2 a correction keeps its chain's first keys (old's).
	keys := func(h Household) uint32 { return sdc.CellKey(v2ChainKeys(t, c.schema, h, old)...) }
	ownKeys := func(h Household) uint32 { return sdc.CellKey(v2PersonKeys(t, c.schema, h)...) }
	var oldSex [3]int64
	for _, s := range f.subs[50].Persons {
		x, _ := s["sex"].Int()
		oldSex[x-1]++
		oldSex[2]++
	}

	for _, k := range []struct {
		name  string
		asOf  int64
		ea    area.Code
		sexes [3]int64
		key   uint32
		hh    int64
	}{
		{"before the old one", old.AuditIndex - 1, area.Code(old.EA), [3]int64{}, 0, 0},
		{"the old one", old.AuditIndex, area.Code(old.EA), oldSex, keys(old), 1},
		{"just before the first correction", fix1.AuditIndex - 1, area.Code(old.EA), oldSex, keys(old), 1},
		{"the first correction", fix1.AuditIndex, area.Code(old.EA), [3]int64{0, 3, 3}, keys(fix1), 1},
		{"just before the second", fix2.AuditIndex - 1, area.Code(old.EA), [3]int64{0, 3, 3}, keys(fix1), 1},
		{"the second, old EA", fix2.AuditIndex, area.Code(old.EA), [3]int64{}, 0, 0},
		{"the second, new EA", fix2.AuditIndex, otherEA, [3]int64{2, 0, 2}, keys(fix2), 1},
		{"the orphan correction adds", orphan.AuditIndex, otherEA, [3]int64{3, 0, 3}, keys(fix2) + ownKeys(orphan), 2},
	} {
		sexes, key, households := bySex(k.ea, k.asOf)
		if sexes != k.sexes || key != k.key || households != k.hh {
			t.Errorf("%s (as of %d, %s): persons by sex %v key %d households %d; want %v key %d households %d",
				k.name, k.asOf, k.ea, sexes, key, households, k.sexes, k.key, k.hh)
		}
	}

	// Nationally: the corrections replace, never add.
	total := func(asOf int64) int64 {
		cells, _ := trueCells(t, c, countReq(Persons, []string{"sex"}, nil), f.proj, asOf)
		return cells[len(cells)-1].n
	}
	base := total(last)
	if got := total(fix1.AuditIndex); got != base-oldSex[2]+3 {
		t.Errorf("after the first correction %d persons, want %d", got, base-oldSex[2]+3)
	}
	if got := total(orphan.AuditIndex); got != base-oldSex[2]+2+1 {
		t.Errorf("after all corrections %d persons, want %d", got, base-oldSex[2]+3)
	}
}

// fingerprint is everything a table can see of a cache as of its UpTo.
func fingerprint(t testing.TB, c *Cache, proj Project) string {
	t.Helper()
	if c.UpTo() < 0 {
		return "empty"
	}
	var b strings.Builder
	for _, r := range []*Request{
		countReq(Persons, []string{"province"}, []string{"sex", "age_group5"}),
		countReq(Households, []string{"province"}, []string{"tenure"}),
	} {
		cells, u := trueCells(t, c, r, proj, c.UpTo())
		for _, a := range cells {
			b.WriteString(itoa(a.n) + "/" + itoa(int64(a.key)) + " ")
		}
		b.WriteString(itoa(u) + "\n")
	}
	return b.String()
}

// TestAppendErrors checks that a batch with a bad household is refused
// whole: the cache is as before, and a later good batch goes in.
func TestAppendErrors(t *testing.T) {
	f := shared(t)
	c := newTestCache(t, f.tree, f.hs[:200])
	last := c.UpTo()
	ea := area.Code(f.hs[0].EA)
	good := func(idx int64) Household { return hhWith(idx, ea, int(idx), person(1, 1980), person(2, 1982)) }
	superseding := good(last + 4)
	superseding.SupersedesIndex = f.hs[10].AuditIndex
	const secret = "987654321"

	type tc struct {
		name       string
		batch      []Household
		upTo       int64
		outOfOrder bool
	}
	bad := func(h Household, mut func(*Household)) Household { mut(&h); return h }
	cases := []tc{
		{"index goes back", []Household{good(last + 2), superseding, good(last + 3)}, 0, true},
		{"index repeats", []Household{good(last + 2), good(last + 2)}, 0, true},
		{"index not after the cache", []Household{good(last)}, 0, true},
		{"index before the cache", []Household{good(5)}, 0, true},
		{"unknown EA", []Household{good(last + 2), superseding, bad(good(last+6), func(h *Household) { h.EA = "ZZ-404" })}, 0, false},
		{"EA is a province", []Household{good(last + 2), bad(good(last+4), func(h *Household) { h.EA = string(areasAt(f.tree, area.Province)[0]) })}, 0, false},
		{"EA is empty", []Household{bad(good(last+2), func(h *Household) { h.EA = "" })}, 0, false},
		{"fewer person keys", []Household{good(last + 2), superseding, bad(good(last+6), func(h *Household) { h.PersonKeys = h.PersonKeys[:1] })}, 0, false},
		{"more person keys", []Household{good(last + 2), bad(good(last+4), func(h *Household) { h.PersonKeys = append(h.PersonKeys, 7) })}, 0, false},
		{"no person keys", []Household{bad(good(last+2), func(h *Household) { h.PersonKeys = nil })}, 0, false},
	}
	for _, a := range []string{
		``,
		`{}`,
		`null`,
		`{"household":{}}`,
		`{"household":{},"persons":[}`,
		`{"household":{},"persons":[{}]`,
		`{"household":{},"persons":[{}]}x`,
		`{"household":{},"persons":[{}]} `,
		` {"household":{},"persons":[{}]}`,
		`{"persons":[{}],"household":{}}`,
		`{"household":{"dwelling_type":` + secret + `x},"persons":[{}]}`,
		`{"household":{"dwelling_type":1.2.3},"persons":[{}]}`,
		`{"household":{"dwelling_type":true},"persons":[{}]}`,
		`{"household":{"dwelling_type":[[1]]},"persons":[{}]}`, // a code set's array is flat
		`{"household":{"dwelling_type":["1"]},"persons":[{}]}`, // of numbers
		`{"household":{"dwelling_type":-},"persons":[{}]}`,
		`{"household":{"dwelling_type":1e999},"persons":[{}]}`,
		`{"household":{"dwelling_type"},"persons":[{}]}`,
		`{"household":{"dwelling_type":1,},"persons":[{}]}`,
		`{"household":{},"persons":[{"sex":1},]}`,
		`{"household":{},"persons":[{"sex":"` + secret,
		`{"household":{},"persons":[{"sex":1}{"sex":2}]}`,
	} {
		cases = append(cases, tc{"analytic " + a, []Household{good(last + 2), superseding,
			bad(good(last+6), func(h *Household) { h.Analytic = []byte(a); h.PersonKeys = h.PersonKeys[:1] })}, 0, false})
	}

	want := fingerprint(t, c, f.proj)
	wantH, wantP, _ := c.Size()
	for _, k := range cases {
		upTo := k.upTo
		if upTo == 0 {
			upTo = last + 100
		}
		err := c.Append(k.batch, upTo)
		if err == nil {
			t.Errorf("%s: appended", k.name)
			continue
		}
		if errors.Is(err, ErrOutOfOrder) != k.outOfOrder {
			t.Errorf("%s: %v; ErrOutOfOrder %v, want %v", k.name, err, errors.Is(err, ErrOutOfOrder), k.outOfOrder)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error quotes a field value: %v", k.name, err)
		}
		if c.UpTo() != last {
			t.Errorf("%s: UpTo %d after a refused batch, was %d", k.name, c.UpTo(), last)
		}
		if h, p, _ := c.Size(); h != wantH || p != wantP {
			t.Errorf("%s: %d households, %d persons after a refused batch; was %d, %d", k.name, h, p, wantH, wantP)
		}
		if got := fingerprint(t, c, f.proj); got != want {
			t.Errorf("%s: the tables changed after a refused batch", k.name)
		}
		// No household of the cache was ended by a correction of the
		// refused batch (as of UpTo that would not show yet).
		c.mu.RLock()
		for h, r := range c.hRemoved {
			if r != notAlive {
				t.Errorf("%s: household %d ended at %d by a refused batch", k.name, c.hAdded[h], r)
			}
		}
		c.mu.RUnlock()
	}

	// The same indexes go in afterwards: nothing of the refused batches
	// was kept.
	if err := c.Append([]Household{good(last + 2), superseding, good(last + 6)}, last+6); err != nil {
		t.Fatalf("a good batch after refused ones: %v", err)
	}
	if h, p, _ := c.Size(); h != wantH+3 || p != wantP+6 {
		t.Errorf("%d households, %d persons; want %d, %d", h, p, wantH+3, wantP+6)
	}
	if fingerprint(t, c, f.proj) == want {
		t.Error("a good batch changed no table")
	}

	// upTo marks the sequence read through: a household at or below it
	// is out of order afterwards, and UpTo never goes back.
	if err := c.Append(nil, last+50); err != nil || c.UpTo() != last+50 {
		t.Fatalf("Append(nil, %d): %v, UpTo %d", last+50, err, c.UpTo())
	}
	if err := c.Append([]Household{good(last + 40)}, last+40); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("a household below the mark: %v, want ErrOutOfOrder", err)
	}
	if err := c.Append(nil, 3); err != nil || c.UpTo() != last+50 {
		t.Errorf("Append(nil, 3): %v, UpTo %d; want it unchanged at %d", err, c.UpTo(), last+50)
	}
}

// TestParseAnalyticValues checks the analytic decoder against the
// submissions it was split from.
func TestParseAnalyticValues(t *testing.T) {
	f := shared(t)
	s := f.cache.schema
	var ps parseScratch
	ps.init(s)
	for i := range 300 {
		if err := ps.parse(f.hs[i].Analytic); err != nil {
			t.Fatalf("household %d: %v", i, err)
		}
		sub := f.subs[i]
		check := func(where string, cols []*variable, got []float64, m map[string]form.Value) {
			for j, v := range cols {
				want := math.NaN()
				if x, ok := m[v.name].Float(); ok {
					want = x
				}
				if !(got[j] == want || math.IsNaN(got[j]) && math.IsNaN(want)) {
					t.Errorf("household %d %s %s: %v, want %v", i, where, v.name, got[j], want)
				}
			}
		}
		check("household", s.hhCols, ps.household, sub.Household)
		if len(ps.persons) != len(sub.Persons) {
			t.Fatalf("household %d: %d persons, want %d", i, len(ps.persons), len(sub.Persons))
		}
		for p := range sub.Persons {
			check("person", s.pCols, ps.persons[p], sub.Persons[p])
		}
	}
}

// TestRunWhileAppending checks that tables as of a fixed point stay the
// same bytes while deposits are appended concurrently.
func TestRunWhileAppending(t *testing.T) {
	f := shared(t)
	c := newTestCache(t, f.tree, f.hs[:2000])
	asOf := c.UpTo()
	r := countReq(Persons, []string{"province"}, []string{"sex"})
	_, want := renderOf(t, c, r, f.proj, FormatCSV, asOf)
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 2000; i < 4000; i += 100 {
			if err := c.Append(f.hs[i:i+100], f.hs[i+99].AuditIndex); err != nil {
				errs <- err
				return
			}
		}
	}()
	for range 30 {
		tab, err := c.Run(mustCompile(t, c, r, f.proj, sdc.DefaultParams(), FormatCSV, asOf))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tab.Render(), want) {
			t.Fatal("a table as of a fixed point changed while appending")
		}
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if h, _, _ := c.Size(); h != 4000 {
		t.Errorf("%d households after appending, want 4000", h)
	}
	_, now := renderOf(t, c, r, f.proj, FormatCSV, c.UpTo())
	if reflect.DeepEqual(now, want) {
		t.Error("2000 more households changed nothing")
	}
}
