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
// area at Level either changed by at least K households — deposits,
// supersessions (a household and its replacement are one change) and
// households whose analytic key was shredded — or keeps its previous
// state unchanged. A standard table is asked of an
// area at Level or above, so any two releases of the same table at two
// points differ by whole groups of at least K households in every finest
// area, never by a handful: "the same table as of a and a−1" no longer
// isolates one deposit.
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
// (the catalogue's finest). It keeps the k-rule (see PointState). It
// reads only the cache; the caller stores the result.
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
	c.mu.RLock()
	defer c.mu.RUnlock()
	g := c.geo
	now := c.upTo

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
		added, removed      int64 // between the previous state (as seen now) and now
		prevSeen, nowCount  int64
		prevCheck, nowCheck uint64
	}
	ts := make([]tally, len(prevState))
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
		case isAlive && !wasAlive:
			t.added++
		case wasAlive && !isAlive:
			t.removed++
		}
	}
	out := &PointState{Level: level, K: k, Areas: make([]AreaState, 0, len(prevState))}
	var rep FreezeReport
	for s, ps := range prevState {
		t := &ts[s]
		// Households of the previous state that can no longer be read
		// (their key was shredded) count as changes too.
		gone := ps.Households - t.prevSeen
		if gone < 0 {
			gone = -gone
		}
		if gone == 0 && t.prevCheck != ps.Check {
			gone = 1
		}
		// A supersession ends one household and starts its
		// replacement: one household changed, not two. Every household
		// the previous state held and now does not was superseded, so it
		// ends a chain whose last member is among the added.
		diff := max(t.added, t.removed) + gone
		rep.Areas++
		switch {
		case diff >= k:
			out.Areas = append(out.Areas, AreaState{Code: ps.Code, AsOf: now, Households: t.nowCount, Check: t.nowCheck})
			rep.Advanced++
		default:
			// Kept as it was: as it is now readable, so that the new
			// point is itself consistent.
			out.Areas = append(out.Areas, AreaState{Code: ps.Code, AsOf: ps.AsOf, Households: t.prevSeen, Check: t.prevCheck})
			rep.Kept++
			if diff > 0 {
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
