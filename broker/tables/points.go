package tables

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/internal/strictjson"
)

// DefaultPointK is the fewest households an area must have changed by
// since the previous publication point to be seen at its new state.
const DefaultPointK = 100

// PointState is the frozen state of a publication point: for every area
// at the catalogue's finest level, the point of the deposit sequence its
// households are seen as of, and what they were when frozen.
//
// The rule it keeps (the k-rule): between two consecutive points, every
// area at Level either keeps its previous state unchanged, or moves on
// to its new state with every catalogue table that changed at all
// changed by at least K of its households — a household counting for a
// table when what it adds to that table's cells differs: new households,
// households shredded, and corrections that change what the table shows
// (a correction of a name or a phone changes no table and counts for
// none; a household corrected twice counts once). A standard table is
// asked of an area at Level or above, so any two releases of the same
// table at two points differ, in every finest area, by at least K
// households' contributions or not at all: "the same table as of a and
// a−1" no longer isolates one deposit, nor does one deposit hidden among
// corrections that change nothing.
type PointState struct {
	Level area.Level
	K     int64
	Areas []AreaState // by Code, in byte order
}

// AreaState is one area's frozen state at a point.
type AreaState struct {
	Code area.Code `json:"code"`
	// AsOf is the point of the deposit sequence its households are seen
	// as of; -1: none yet (fewer than K have ever been deposited).
	AsOf int64 `json:"as_of"`
	// Households is how many were current at AsOf when it was frozen,
	// and Check the sum of their audit indexes modulo 2^64: a shred
	// that later removed some of them shows as a mismatch.
	Households int64  `json:"households"`
	Check      uint64 `json:"check"`
}

// pointFile is PointState's stored form.
type pointFile struct {
	Format string      `json:"format"`
	Level  string      `json:"level"`
	K      int64       `json:"k"`
	Areas  []AreaState `json:"areas"`
}

const pointFormat = "censusvault.point/v1"

// Encode returns the state's canonical bytes (stored with the point; its
// digest goes into every release made at it).
func (s *PointState) Encode() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	if err := enc.Encode(pointFile{Format: pointFormat, Level: s.Level.String(), K: s.K, Areas: s.Areas}); err != nil {
		panic("tables: point state does not encode: " + err.Error()) // strings and integers only
	}
	return b.Bytes()
}

// Digest is "sha256:" and the hex SHA-256 of Encode.
func (s *PointState) Digest() string {
	sum := sha256.Sum256(s.Encode())
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParsePointState reads what Encode wrote, strictly.
func ParsePointState(b []byte) (*PointState, error) {
	var f pointFile
	if err := strictjson.Decode(bytes.TrimSuffix(b, []byte("\n")), &f); err != nil {
		return nil, fmt.Errorf("not a publication point's state: %s", jsonProblem(err))
	}
	if f.Format != pointFormat {
		return nil, fmt.Errorf("publication point state format %q, this version reads %s", clip(f.Format), pointFormat)
	}
	lv, err := area.ParseLevel(f.Level)
	if err != nil || lv == area.EA {
		return nil, fmt.Errorf("publication point state: level %q is not a table level", clip(f.Level))
	}
	if f.K < 1 {
		return nil, fmt.Errorf("publication point state: k %d below 1", f.K)
	}
	if !slices.IsSortedFunc(f.Areas, func(a, b AreaState) int { return cmpCode(a.Code, b.Code) }) {
		return nil, fmt.Errorf("publication point state: areas out of order")
	}
	s := &PointState{Level: lv, K: f.K, Areas: f.Areas}
	if s.Areas == nil {
		s.Areas = []AreaState{}
	}
	if !bytes.Equal(s.Encode(), b) {
		return nil, fmt.Errorf("publication point state is not in canonical form")
	}
	return s, nil
}

func cmpCode(a, b area.Code) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// area returns the state of code, or the empty state (never frozen).
func (s *PointState) area(code area.Code) AreaState {
	if s != nil {
		if i, ok := slices.BinarySearchFunc(s.Areas, code, func(a AreaState, c area.Code) int { return cmpCode(a.Code, c) }); ok {
			return s.Areas[i]
		}
	}
	return AreaState{Code: code, AsOf: -1}
}

// FreezeReport says what a new point changed.
type FreezeReport struct {
	Areas    int // areas at the point's level
	Advanced int // seen at their new state
	Kept     int // kept at their previous state (changed by fewer than K)
	Changed  int // of the kept, those that had changed at all
}

// Freeze makes the next publication point's state from the cache as of
// its latest deposit, the previous point's state (nil for the first
// point: every area then starts from nothing) and k, at the given level
// (the catalogue's finest), judging changes by the tables of the latest
// embedded catalogue. It keeps the k-rule (see PointState). It reads
// only the cache; the caller stores the result.
func (c *Cache) Freeze(prev *PointState, level area.Level, k int64) (*PointState, FreezeReport, error) {
	if level == area.EA || level < area.Nation || level > area.EA {
		return nil, FreezeReport{}, fmt.Errorf("tables: a publication point freezes areas at a table level, not %s", level)
	}
	if k < 1 {
		return nil, FreezeReport{}, fmt.Errorf("tables: k %d below 1", k)
	}
	if prev != nil && prev.Level != level {
		return nil, FreezeReport{}, fmt.Errorf("tables: the previous point froze %ss, this one would freeze %ss: a catalogue whose finest level changed needs a new series of points", prev.Level, level)
	}
	cat, err := c.schema.Catalogue()
	if err != nil {
		return nil, FreezeReport{}, err
	}
	pr, err := newProfiler(c, cat)
	if err != nil {
		return nil, FreezeReport{}, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	g := c.geo
	now := c.upTo
	nt := len(pr.plans)

	// The areas at level, and each one's previous state.
	slot := make([]int32, len(g.codes)) // area index -> slot, for areas at level
	var prevState []AreaState
	for i := range g.codes {
		slot[i] = -1
		if g.levels[i] == level {
			slot[i] = int32(len(prevState))
			prevState = append(prevState, prev.area(g.codes[i]))
		}
	}
	type tally struct {
		prevSeen, nowCount  int64
		prevCheck, nowCheck uint64
		removed, corrected  int64
	}
	ts := make([]tally, len(prevState))
	// changed[s*nt+t]: households of area s whose contribution to
	// catalogue table t differs between the previous state and now.
	changed := make([]int64, len(prevState)*nt)
	var a, b []cellContribution
	for h := range c.hAdded {
		ea := c.hEA[h]
		s := slot[g.eaAnc[ea][level]]
		if s < 0 {
			continue
		}
		t := &ts[s]
		before := prevState[s].AsOf
		wasAlive := c.hAdded[h] <= before && c.hRemoved[h] > before
		isAlive := c.hRemoved[h] > now
		idx := uint64(c.hAdded[h])
		if wasAlive {
			t.prevSeen++
			t.prevCheck += idx
		}
		if isAlive {
			t.nowCount++
			t.nowCheck += idx
		}
		switch {
		case wasAlive && !isAlive:
			t.removed++
		case isAlive && !wasAlive:
			// New, or the last of a chain of corrections: compare it
			// with the household of its chain the previous state held.
			old := c.hPrev[h]
			for old >= 0 && c.hAdded[old] > before {
				old = c.hPrev[old]
			}
			if old >= 0 {
				t.corrected++
			}
			for ti := range nt {
				a = pr.profile(ti, h, a[:0])
				b = b[:0]
				if old >= 0 {
					b = pr.profile(ti, int(old), b)
				}
				if !slices.Equal(a, b) {
					changed[s*int32(nt)+int32(ti)]++
				}
			}
		}
	}
	out := &PointState{Level: level, K: k, Areas: make([]AreaState, 0, len(prevState))}
	var rep FreezeReport
	for s, ps := range prevState {
		t := &ts[s]
		// Households of the previous state that can no longer be read
		// (their key was shredded), and any it held that no correction
		// now stands for, changed every table.
		gone := ps.Households - t.prevSeen
		if gone < 0 {
			gone = -gone
		}
		if gone == 0 && t.prevCheck != ps.Check {
			gone = 1
		}
		gone += max(t.removed-t.corrected, 0)
		// The area moves on only if every table that changed at all
		// changed by at least k households: a table that changed by
		// fewer would, differenced across the two points, show them.
		some, few := false, false
		for ti := range nt {
			d := changed[s*nt+ti] + gone
			switch {
			case d >= k:
				some = true
			case d > 0:
				few = true
			}
		}
		rep.Areas++
		switch {
		case some && !few:
			out.Areas = append(out.Areas, AreaState{Code: ps.Code, AsOf: now, Households: t.nowCount, Check: t.nowCheck})
			rep.Advanced++
		default:
			// Kept as it was: as it is now readable, so that the new
			// point is itself consistent.
			out.Areas = append(out.Areas, AreaState{Code: ps.Code, AsOf: ps.AsOf, Households: t.prevSeen, Check: t.prevCheck})
			rep.Kept++
			if some || few {
				rep.Changed++
			}
		}
	}
	slices.SortFunc(out.Areas, func(a, b AreaState) int { return cmpCode(a.Code, b.Code) })
	return out, rep, nil
}

// Stale lists the areas at or under at (at or above the point's level)
// whose frozen households can no longer all be read — their analytic key
// was shredded after the point was made — so that a table at this point
// would no longer be what was released at it. An area added to the tree
// after the point is not stale: it is seen as of nothing. digest is the
// point state's (Digest); the answer is worked out once per point and
// cache.
func (c *Cache) Stale(s *PointState, digest string, at area.Code) ([]area.Code, error) {
	g := c.geo
	ai, ok := g.index[at]
	if !ok {
		return nil, fmt.Errorf("tables: no area %s", at)
	}
	if g.levels[ai] > s.Level {
		return nil, fmt.Errorf("tables: area %s is below the point's level %s", at, s.Level)
	}
	c.staleMu.Lock()
	stale, ok := c.stale[digest]
	c.staleMu.Unlock()
	if !ok {
		stale = c.staleAreas(s)
		c.staleMu.Lock()
		if c.stale == nil {
			c.stale = map[string][]int32{}
		}
		c.stale[digest] = stale
		c.staleMu.Unlock()
	}
	var out []area.Code
	for _, i := range stale {
		if g.within(i, ai) {
			out = append(out, g.codes[i])
		}
	}
	return out, nil
}

// staleAreas is every area at s's level whose frozen households are not
// all readable, by area index.
func (c *Cache) staleAreas(s *PointState) []int32 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	g := c.geo
	slot := make([]int32, len(g.codes))
	var want []AreaState
	var idx []int32
	for i := range g.codes {
		slot[i] = -1
		if g.levels[i] == s.Level {
			slot[i] = int32(len(want))
			want = append(want, s.area(g.codes[i]))
			idx = append(idx, int32(i))
		}
	}
	seen := make([]int64, len(want))
	check := make([]uint64, len(want))
	for h := range c.hAdded {
		k := slot[g.eaAnc[c.hEA[h]][s.Level]]
		if k < 0 {
			continue
		}
		a := want[k].AsOf
		if c.hAdded[h] <= a && c.hRemoved[h] > a {
			seen[k]++
			check[k] += uint64(c.hAdded[h])
		}
	}
	var out []int32
	for k, w := range want {
		if seen[k] != w.Households || check[k] != w.Check {
			out = append(out, idx[k])
		}
	}
	return out
}

// eaAsOf is the as-of point of every EA (by area index) under s: its
// frozen area's. Areas not at or under the point's level get -1.
func (c *Cache) eaAsOf(s *PointState) []int64 {
	g := c.geo
	out := make([]int64, len(g.codes))
	for i := range g.codes {
		out[i] = -1
		if g.levels[i] == area.EA {
			out[i] = s.area(g.codes[g.eaAnc[i][s.Level]]).AsOf
		}
	}
	return out
}

// cellContribution is one record's contribution to a table: the cell it
// falls in and, for a sum or mean, its value in thousandths.
type cellContribution struct {
	cell  int64
	milli int64
}

// profiler says how a household contributes to each catalogue table, so
// that Freeze can tell which tables a correction changed.
type profiler struct {
	c     *Cache
	plans []*Plan
}

func newProfiler(c *Cache, cat *Catalogue) (*profiler, error) {
	pr := &profiler{c: c}
	for _, t := range cat.Tables {
		p := &Plan{unit: t.Unit, op: t.Measure.Op}
		var err error
		if p.rows, p.R, err = cat.buildBlock(t.Rows); err != nil {
			return nil, err
		}
		if p.cols, p.C, err = cat.buildBlock(t.Cols); err != nil {
			return nil, err
		}
		if len(p.cols) == 0 {
			p.C = 0
		}
		if t.Measure.Op != "count" {
			p.measure = c.schema.vars[t.Measure.Var]
		}
		pr.plans = append(pr.plans, p)
	}
	return pr, nil
}

// profile appends household h's contributions to table ti to buf, in a
// canonical order: two households with the same profile add the same to
// every cell of the table.
func (pr *profiler) profile(ti, h int, buf []cellContribution) []cellContribution {
	c, p := pr.c, pr.plans[ti]
	hu, ea := uint32(h), c.hEA[h]
	rBase, okR := c.blockBase(p.rows, hu, ea)
	cBase, okC := c.blockBase(p.cols, hu, ea)
	if !okR || !okC {
		return buf
	}
	w := p.width()
	if p.unit == Households {
		if m, ok := c.measureOf(p, hu, 0); ok {
			buf = append(buf, cellContribution{int64(rBase*w + cBase), m})
		}
		return buf
	}
	for i := c.hFirst[h]; i < c.hFirst[h+1]; i++ {
		r, ok := c.personPart(p.rows, rBase, i)
		if !ok {
			continue
		}
		col, ok := c.personPart(p.cols, cBase, i)
		if !ok {
			continue
		}
		m, ok := c.measureOf(p, hu, i)
		if !ok {
			continue
		}
		buf = append(buf, cellContribution{int64(r*w + col), m})
	}
	slices.SortFunc(buf, func(x, y cellContribution) int {
		if x.cell != y.cell {
			return cmpInt(x.cell, y.cell)
		}
		return cmpInt(x.milli, y.milli)
	})
	return buf
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
