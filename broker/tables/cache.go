package tables

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/untrusted"
)

// Household is one deposited submission as the cache takes it: where and
// when it was deposited, its record keys and its opened analytic part.
type Household struct {
	AuditIndex      int64  // its place in the deposit sequence
	SupersedesIndex int64  // AuditIndex of the submission it replaced, or -1
	EA              string // area code of its EA
	Key             uint32 // record key of the household (person 0)
	// PersonKeys are the persons' record keys, in form order; there must
	// be one per person of Analytic.
	PersonKeys []uint32
	// Analytic is the canonical analytic part as form.Split makes it:
	// {"household":{…},"persons":[{…},…]}.
	Analytic []byte
}

// column holds one coded variable (index+1, 0 for absent) in the
// narrowest type its categories fit, or one numeric variable (NaN for
// absent).
type column struct {
	u8  []uint8
	u16 []uint16
	f   []float64
}

func newColumn(v *variable) column {
	switch {
	case v.kind == numeric:
		return column{f: []float64{}}
	case len(v.values) < math.MaxUint8:
		return column{u8: []uint8{}}
	default:
		return column{u16: []uint16{}}
	}
}

// get returns the stored category index+1 (0: absent) of row i.
func (c *column) get(i uint32) int {
	if c.u8 != nil {
		return int(c.u8[i])
	}
	return int(c.u16[i])
}

func (c *column) push(v int) {
	if c.u8 != nil {
		c.u8 = append(c.u8, uint8(v))
	} else {
		c.u16 = append(c.u16, uint16(v))
	}
}

func (c *column) truncate(n int) {
	switch {
	case c.f != nil:
		c.f = c.f[:n]
	case c.u8 != nil:
		c.u8 = c.u8[:n]
	default:
		c.u16 = c.u16[:n]
	}
}

func (c *column) bytes() int64 {
	return int64(cap(c.u8)) + 2*int64(cap(c.u16)) + 8*int64(cap(c.f))
}

// notAlive marks a household not superseded yet.
const notAlive = math.MaxInt64

// Cache is the engine's column store: the analytic variables of every
// deposited household and person, decoded once and held in memory only
// (never written anywhere), with each household's place in the deposit
// sequence so that a table can be computed as of any earlier point.
// Households are appended in deposit order. Safe for concurrent use:
// tables read under a shared lock while Append takes it exclusively.
type Cache struct {
	schema *Schema
	geo    *geo

	mu   sync.RWMutex
	upTo int64 // deposit sequence read through: the highest AuditIndex offered (or the caller's mark)

	// Households, in AuditIndex order.
	hAdded   []int64 // AuditIndex
	hRemoved []int64 // AuditIndex of the submission that replaced it, or notAlive
	hEA      []int32 // area index of the EA
	hKey     []uint32
	hFirst   []uint32 // its persons are [hFirst[h], hFirst[h+1]); one more entry than households
	// hHead is 1 + the place within the household of its head (the
	// first person with the schema's head code), 0 for none: ckp/v2
	// tables count that person under hKey (see Cache.scan).
	hHead []uint8
	// hPrev is the household this one replaced (a correction), -1 for
	// none; hRoot the first of its chain of corrections (itself for an
	// original). Under ckp/v2 a household and its persons keep the record
	// keys of their chain's first submission: a correction that changes
	// nothing a table shows changes none of its noise either, so
	// re-depositing households cannot redraw the noise of unchanged cells
	// to be averaged away (see Cache.scan).
	hPrev []int32
	hRoot []uint32
	// hKey2 and pKey2 are the ckp/v2 keys, worked out once on Append so
	// that a scan reads them as it reads v1's: a household's is its
	// chain's first household's key, a person's the key of the person
	// in the same place of the chain's first household (their own if it
	// had fewer), and the head's the household's v2 key.
	hKey2 []uint32
	pKey2 []uint32
	hCols []column

	// Persons, household by household.
	pKey  []uint32
	pAge  []uint8 // age+1, 0 when it cannot be computed
	pCols []column

	scratch parseScratch

	// staleMu guards stale: per publication point (by its state's
	// digest), the areas at its level found stale (Stale). Appending
	// never changes it — a household appended is after every point, and
	// a supersession ends a household after every point too — and a
	// shred rebuilds the cache, so it holds for the cache's life.
	staleMu sync.Mutex
	stale   map[string][]int32
}

// NewCache makes an empty cache for the areas of t and the variables of s.
func NewCache(s *Schema, t *area.Tree) (*Cache, error) {
	g, err := newGeo(t)
	if err != nil {
		return nil, err
	}
	c := &Cache{schema: s, geo: g, upTo: -1, hFirst: []uint32{0}}
	for _, v := range s.hhCols {
		c.hCols = append(c.hCols, newColumn(v))
	}
	for _, v := range s.pCols {
		c.pCols = append(c.pCols, newColumn(v))
	}
	c.scratch.init(s)
	return c, nil
}

// Schema is the schema the cache reads households through.
func (c *Cache) Schema() *Schema { return c.schema }

// UpTo returns the point of the deposit sequence the cache holds every
// household through (-1 when it holds none).
func (c *Cache) UpTo() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.upTo
}

// Size reports the households and persons held, and the bytes of their
// columns.
func (c *Cache) Size() (households, persons int, bytes int64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	bytes = 8*int64(cap(c.hAdded)+cap(c.hRemoved)) + 4*int64(cap(c.hEA)+cap(c.hKey)+cap(c.hFirst)+cap(c.pKey)) + int64(cap(c.pAge)+cap(c.hHead)) + 4*int64(cap(c.hPrev)+cap(c.hRoot)+cap(c.hKey2)+cap(c.pKey2))
	for i := range c.hCols {
		bytes += c.hCols[i].bytes()
	}
	for i := range c.pCols {
		bytes += c.pCols[i].bytes()
	}
	return len(c.hAdded), len(c.pKey), bytes
}

// ErrOutOfOrder is returned by Append for a household not after the last
// one appended.
var ErrOutOfOrder = errors.New("tables: households must be appended in deposit order")

// Append adds households, which must come in increasing AuditIndex order
// after everything appended before, then marks the cache as holding the
// deposit sequence through upTo (≥ the last AuditIndex; pass the last
// AuditIndex if unsure). A household that supersedes one in the cache
// ends that one's life at its own AuditIndex. A household that fails to
// decode is an error and nothing of the batch is kept.
func (c *Cache) Append(batch []Household, upTo int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	nh, np := len(c.hAdded), len(c.pKey)
	last := c.upTo
	var removed []int // households whose hRemoved was set, to undo
	fail := func(err error) error {
		c.truncate(nh, np)
		for _, h := range removed {
			c.hRemoved[h] = notAlive
		}
		return err
	}
	for i := range batch {
		h := &batch[i]
		if h.AuditIndex <= last {
			return fail(fmt.Errorf("%w: %d after %d", ErrOutOfOrder, h.AuditIndex, last))
		}
		last = h.AuditIndex
		ea, ok := c.geo.ea(h.EA)
		if !ok {
			return fail(fmt.Errorf("tables: household at %d: %q is not an EA of the area tree", h.AuditIndex, clip(h.EA)))
		}
		if err := c.appendOne(h, ea); err != nil {
			return fail(fmt.Errorf("tables: household at %d: %w", h.AuditIndex, err))
		}
		if h.SupersedesIndex >= 0 {
			if old, ok := c.find(h.SupersedesIndex); ok && c.hRemoved[old] == notAlive {
				c.hRemoved[old] = h.AuditIndex
				removed = append(removed, old)
				n := len(c.hAdded) - 1
				c.hPrev[n], c.hRoot[n] = int32(old), c.hRoot[old]
				c.setKeys2(n)
			}
			// Not found: the replaced household was never readable (its
			// data key was shredded), so nothing to end.
		}
	}
	if upTo < last {
		upTo = last
	}
	c.upTo = upTo
	return nil
}

// find returns the household appended with AuditIndex idx.
func (c *Cache) find(idx int64) (int, bool) {
	h := sort.Search(len(c.hAdded), func(i int) bool { return c.hAdded[i] >= idx })
	return h, h < len(c.hAdded) && c.hAdded[h] == idx
}

func (c *Cache) truncate(nh, np int) {
	c.hAdded, c.hRemoved, c.hEA, c.hKey, c.hHead = c.hAdded[:nh], c.hRemoved[:nh], c.hEA[:nh], c.hKey[:nh], c.hHead[:nh]
	c.hPrev, c.hRoot, c.hKey2 = c.hPrev[:nh], c.hRoot[:nh], c.hKey2[:nh]
	c.hFirst = c.hFirst[:nh+1]
	for i := range c.hCols {
		c.hCols[i].truncate(nh)
	}
	c.pKey, c.pAge, c.pKey2 = c.pKey[:np], c.pAge[:np], c.pKey2[:np]
	for i := range c.pCols {
		c.pCols[i].truncate(np)
	}
}

func (c *Cache) appendOne(h *Household, ea int32) error {
	s := &c.scratch
	if err := s.parse(h.Analytic); err != nil {
		return err
	}
	if len(s.persons) != len(h.PersonKeys) {
		return fmt.Errorf("%d persons but %d person keys", len(s.persons), len(h.PersonKeys))
	}
	if len(c.pKey)+len(s.persons) > math.MaxUint32 {
		return errors.New("the cache is full")
	}
	c.hAdded = append(c.hAdded, h.AuditIndex)
	c.hRemoved = append(c.hRemoved, notAlive)
	c.hEA = append(c.hEA, ea)
	c.hKey = append(c.hKey, h.Key)
	for i, v := range c.schema.hhCols {
		pushValue(&c.hCols[i], v, s.household[i])
	}
	sc := c.schema
	head := 0
	for p, vals := range s.persons {
		if sc.head != nil && head == 0 && p < math.MaxUint8 && vals[sc.head.col] == float64(sc.headCode) {
			head = p + 1
		}
		c.pKey = append(c.pKey, h.PersonKeys[p])
		for i, v := range sc.pCols {
			pushValue(&c.pCols[i], v, vals[i])
		}
		c.pAge = append(c.pAge, sc.ageOf(vals))
	}
	c.hFirst = append(c.hFirst, uint32(len(c.pKey)))
	c.hHead = append(c.hHead, uint8(head))
	c.hPrev = append(c.hPrev, -1)
	c.hRoot = append(c.hRoot, uint32(len(c.hAdded)-1))
	c.hKey2 = append(c.hKey2, h.Key)
	c.pKey2 = append(c.pKey2, c.pKey[c.hFirst[len(c.hFirst)-2]:]...)
	c.setKeys2(len(c.hAdded) - 1)
	return nil
}

// pushValue stores x (NaN: absent) in v's column. A value outside the
// schema's codes or range is stored as absent: the form validated it on
// deposit, so this only happens for a household of an older version of
// the form, and a sum's bounds (what its noise is scaled to) hold only
// for values within the range.
func pushValue(col *column, v *variable, x float64) {
	if v.kind == numeric {
		if !v.accepts(x) {
			x = math.NaN()
		}
		col.f = append(col.f, x)
		return
	}
	k := 0
	if !math.IsNaN(x) && x == math.Trunc(x) {
		k = v.category(int64(x)) + 1
	}
	col.push(k)
}

// accepts reports whether x is a value of v: one of a coded variable's
// categories, or a whole number (int) within a numeric variable's range.
func (v *variable) accepts(x float64) bool {
	switch {
	case math.IsNaN(x):
		return false
	case v.kind == numeric:
		return x >= v.min && x <= v.max && (!v.isInt || x == math.Trunc(x))
	default:
		return x == math.Trunc(x) && v.category(int64(x)) >= 0
	}
}

// ageOf is a person's age in completed years plus one (0: none) from the
// fields with age roles, whichever the form has (see NewSchema), as the
// cache stores it: a value the schema does not accept counts as absent.
func (s *Schema) ageOf(vals []float64) uint8 {
	switch {
	case s.ageField != nil:
		x := vals[s.ageField.col]
		if s.ageField.accepts(x) && x >= 0 && x < math.MaxUint8 {
			return uint8(x) + 1
		}
	case s.birthYear != nil:
		by := vals[s.birthYear.col]
		if !s.birthYear.accepts(by) {
			return 0
		}
		m := 0
		if s.birthMon != nil {
			if bm := vals[s.birthMon.col]; s.birthMon.accepts(bm) {
				m = int(bm)
			}
		}
		if a, ok := Age(s.census, int(by), m); ok && a < math.MaxUint8 {
			return uint8(a + 1)
		}
	}
	return 0
}

// clip shortens what a client sent before it is quoted in a message,
// cutting on a rune boundary so the message stays valid UTF-8 (it goes
// into the audit log, which refuses anything else).
func clip(s string) string { return untrusted.Clip(s, 40) }

// setKeys2 works out household h's ckp/v2 keys from its chain's first
// household (hRoot) and its head (hHead).
func (c *Cache) setKeys2(h int) {
	r := c.hRoot[h]
	c.hKey2[h] = c.hKey[r]
	first, n := c.hFirst[h], c.hFirst[h+1]-c.hFirst[h]
	rFirst, rn := c.hFirst[r], c.hFirst[r+1]-c.hFirst[r]
	for pos := range n {
		k := c.pKey[first+pos]
		if pos < rn {
			k = c.pKey[rFirst+pos]
		}
		c.pKey2[first+pos] = k
	}
	if hd := c.hHead[h]; hd != 0 {
		c.pKey2[first+uint32(hd)-1] = c.hKey2[h]
	}
}
