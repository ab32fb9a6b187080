package tables

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/censusvault/censusvault/broker/sdc"
)

// acc accumulates one cell: contributors, the sum of their record keys
// modulo 2^32, and the sum of the measured variable in thousandths; for
// a ckp/v2 sum or mean also the sum of absolute contributions and the
// two largest of them, in thousandths. Integer sums make the result
// independent of the order records are added in, so a table is the same
// whatever the number of workers.
type acc struct {
	n     int64
	key   uint32
	milli int64
	abs   int64
	top   top
}

// cell is a as sdc takes it.
func (a *acc) cell() sdc.Cell {
	return sdc.Cell{Count: a.n, Key: a.key, Sum: float64(a.milli) / 1000, AbsSum: float64(a.abs) / 1000,
		Top: [2]float64{float64(a.top[0]) / 1000, float64(a.top[1]) / 1000}}
}

// top is the two largest absolute contributions to a cell, largest
// first, in thousandths (0 for a missing one).
type top [2]int64

// note adds a contribution of absolute value a.
func (t *top) note(a int64) {
	switch {
	case a > t[0]:
		t[0], t[1] = a, t[0]
	case a > t[1]:
		t[1] = a
	}
}

// merge makes t the top two of the union of the contributions t and u
// summarize: the top two of a union are among the top two of its parts.
func (t *top) merge(u top) {
	t.note(u[0])
	t.note(u[1])
}

// part is one worker's accumulators: counts and key sums packed in 8
// bytes a cell so that a 30,000-cell table stays in the core's cache, and
// sums only when a measure needs them — v1 the sum alone, v2 the sum, the
// absolute sum and the top two together, so that adding a contribution
// touches one cache line. A count fits in 32 bits: the cache holds at
// most 2^32-1 persons.
type part struct {
	cells []cellAcc
	milli []int64  // v1 sums and means; nil otherwise
	mag   []magAcc // v2 sums and means; nil otherwise
}

// magAcc is a cell's measure under v2, in thousandths.
type magAcc struct {
	milli, abs int64
	top        top
}

// add adds a contribution.
func (m *magAcc) add(milli int64) {
	m.milli += milli
	a := max(milli, -milli)
	m.abs += a
	m.top.note(a)
}

type cellAcc struct {
	n   uint32
	key uint32
}

// Cell is one released cell.
type Cell struct {
	Count      int64   // perturbed count (measure count)
	Value      float64 // perturbed sum or mean (measures sum, mean)
	Suppressed bool
}

// Table is a released table: the plan it answers and its cells, row
// block major: cell (r, c) is Cells[r*width+c], r = R and c = C being the
// margins (totals over the row block and the column block).
type Table struct {
	Plan  *Plan
	Cells []Cell
	// dpCanon is a dp table's released values in canonical order
	// (ResultDigest).
	dpCanon []byte
}

// chunk is how many households one unit of parallel work covers.
const chunk = 1 << 16

// Run computes the plan's table as of p.Norm.AsOf and applies disclosure
// control: cell-key perturbation of every cell, margins included, from
// its own contributors; then the small-cell rule. A universe smaller than
// the minimum is refused without computing cells; the refusal does not
// say how small it is.
func (c *Cache) Run(p *Plan) (*Table, error) {
	pt, err := sdc.NewPTable(p.params)
	if err != nil {
		return nil, err
	}
	total, u, err := c.aggregate(p)
	if err != nil {
		return nil, err
	}
	// A standard table's universe is its area, which the catalogue admits
	// by planned households: it is never refused on a true count (a
	// refusal that depends on who was counted tells who was counted).
	if p.std == nil && u < int64(p.params.MinUniverse) {
		return nil, invalidf("the table's universe after filtering is below the minimum of %d %s: widen the filter or the areas", p.params.MinUniverse, p.unit)
	}
	t := &Table{Plan: p, Cells: make([]Cell, len(total))}
	for i := range total {
		a := &total[i]
		switch p.op {
		case "count":
			v, sup := pt.ReleaseCount(sdc.Cell{Count: a.n, Key: a.key})
			t.Cells[i] = Cell{Count: v, Suppressed: sup}
		case "sum":
			v, sup := pt.ReleaseSum(a.cell(), p.measure.bound)
			t.Cells[i] = Cell{Value: v, Suppressed: sup}
		case "mean":
			v, sup := pt.ReleaseMean(a.cell(), p.measure.bound)
			t.Cells[i] = Cell{Value: v, Suppressed: sup}
		}
	}
	return t, nil
}

// aggregate computes the true cells of p (margins included) and the
// universe: the number of records that went into the table.
func (c *Cache) aggregate(p *Plan) ([]acc, int64, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if p.Norm.AsOf > c.upTo {
		return nil, 0, fmt.Errorf("tables: the cache holds deposits through %d, not %d", c.upTo, p.Norm.AsOf)
	}
	for _, a := range p.eaAsOf {
		if a > c.upTo {
			return nil, 0, fmt.Errorf("tables: the cache holds deposits through %d, not %d", c.upTo, a)
		}
	}
	nh := len(c.hAdded)
	v2 := p.params.Version >= sdc.V2
	workers := max(min(runtime.GOMAXPROCS(0), 8, (nh+chunk-1)/chunk), 1)
	cells := p.Cells()
	parts := make([]part, workers)
	universe := make([]int64, workers)
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range workers {
		parts[w].cells = make([]cellAcc, cells)
		switch {
		case p.measure != nil && v2:
			parts[w].mag = make([]magAcc, cells)
		case p.measure != nil:
			parts[w].milli = make([]int64, cells)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				lo := next
				next += chunk
				mu.Unlock()
				if lo >= nh {
					return
				}
				universe[w] += c.scan(p, &parts[w], lo, min(lo+chunk, nh))
			}
		}()
	}
	wg.Wait()
	total := sumParts(parts, cells)
	var u int64
	for _, x := range universe {
		u += x
	}
	margins(p, total, p.measure != nil && v2)
	return total, u, nil
}

// sumParts adds up the workers' accumulators into cells: counts, keys
// and sums add; the top two of a cell are the top two of the workers'
// top twos.
func sumParts(parts []part, cells int) []acc {
	total := make([]acc, cells)
	for _, pt := range parts {
		for i, a := range pt.cells {
			total[i].n += int64(a.n)
			total[i].key += a.key
		}
		for i, m := range pt.milli {
			total[i].milli += m
		}
		for i := range pt.mag {
			m := &pt.mag[i]
			total[i].milli += m.milli
			total[i].abs += m.abs
			total[i].top.merge(m.top)
		}
	}
	return total
}

// margins fills the margin cells from the inner ones. Counts, key sums
// (modulo 2^32) and integer sums are all additive, and the top two
// contributions of a union are the top two of its parts' top twos, so a
// margin gets exactly the count, cell key, sum and top contributions it
// would get from adding its contributors one by one — every record of the
// universe is in exactly one inner cell — and is then perturbed as a cell
// of its own. mag says whether the cells hold v2 measures (absolute sums
// and top twos): counts and v1 sums do not spend time merging zeros.
func margins(p *Plan, cells []acc, mag bool) {
	w := p.width()
	R, hasCols := p.R, len(p.cols) > 0
	addTo := func(dst, src *acc) {
		dst.n += src.n
		dst.key += src.key
		dst.milli += src.milli
		if mag {
			dst.top.merge(src.top)
			dst.abs += src.abs
		}
	}
	inner := w
	if hasCols {
		inner = p.C
	}
	for r := range R {
		for c := range inner {
			a := &cells[r*w+c]
			if hasCols {
				addTo(&cells[r*w+p.C], a) // row margin
				addTo(&cells[R*w+c], a)   // column margin
			}
			addTo(&cells[R*w+w-1], a) // grand total
		}
	}
}

// scan adds households [lo, hi) to cells and returns how many records
// (persons or households) it added.
//
// Under ckp/v2 a household's head (Cache.hHead) is counted under the
// household's record key instead of their own: a cell of heads then has
// the key, and so the noise, of the same cell of their households. And a
// household and its persons keep the keys of their chain's first
// submission (Cache.hRoot): the n-th person of a corrected household
// keeps the key of the n-th person of the first one, so a correction
// changes the noise only of cells whose contributors it changed. Under
// v1 every record keeps its own submission's keys, as releases made then
// did.
func (c *Cache) scan(p *Plan, pt *part, lo, hi int) int64 {
	cells, millis, mags := pt.cells, pt.milli, pt.mag
	measured := millis != nil || mags != nil
	asOf := p.Norm.AsOf
	width := p.width()
	persons := p.unit == Persons
	personCap := -1 // no cap
	if p.dp != nil {
		personCap = p.dp.personCp
	}
	// Whose keys: under v2 the ones Append worked out (the chain's
	// first, the head under the household's), under v1 each record's own.
	hKeys, pKeys := c.hKey, c.pKey
	if p.params.Version >= sdc.V2 {
		hKeys, pKeys = c.hKey2, c.pKey2
	}
	var n int64

	// measure adds a contribution to cell i's measure.
	measure := func(i int, milli int64) {
		if mags != nil {
			mags[i].add(milli)
		} else {
			millis[i] += milli
		}
	}

	// Only inner cells are accumulated here; margins are added up from
	// them afterwards (see margins).
	add := func(r, col int, key uint32, milli int64) {
		i := r*width + col
		cells[i].n++
		cells[i].key += key
		if measured {
			measure(i, milli)
		}
	}

	for h := lo; h < hi; h++ {
		ea := c.hEA[h]
		if !p.universe[ea] {
			continue
		}
		if p.eaAsOf != nil {
			asOf = p.eaAsOf[ea]
		}
		if c.hAdded[h] > asOf || c.hRemoved[h] <= asOf {
			continue
		}
		hu := uint32(h)
		keep := true
		for k := range p.filters {
			f := &p.filters[k]
			if f.src == srcHousehold && !f.allow[c.hCols[f.col].get(hu)] {
				keep = false
				break
			}
		}
		if !keep {
			continue
		}
		// The household's part of the row and column indexes.
		rBase, okR := c.blockBase(p.rows, hu, ea)
		cBase, okC := c.blockBase(p.cols, hu, ea)
		if !okR || !okC {
			continue
		}
		if !persons {
			milli, ok := c.measureOf(p, hu, 0)
			if !ok {
				continue
			}
			add(rBase, cBase, hKeys[h], milli)
			n++
			continue
		}
		taken := 0 // persons of this household counted so far
	person:
		for i := c.hFirst[h]; i < c.hFirst[h+1]; i++ {
			if taken == personCap {
				break // a dp table counts at most personCap persons of a household
			}
			for k := range p.filters {
				f := &p.filters[k]
				switch f.src {
				case srcPerson:
					if !f.allow[c.pCols[f.col].get(i)] {
						continue person
					}
				case srcAgeBand:
					b := c.band(i)
					if b < 0 || !f.allow[b] {
						continue person
					}
				}
			}
			r, ok := c.personPart(p.rows, rBase, i)
			if !ok {
				continue
			}
			col, ok := c.personPart(p.cols, cBase, i)
			if !ok {
				continue
			}
			j := r*width + col
			if measured {
				milli, ok := c.measureOf(p, hu, i)
				if !ok {
					continue
				}
				measure(j, milli)
			}
			cells[j].n++
			cells[j].key += pKeys[i]
			n++
			taken++
		}
	}
	return n
}

// blockBase is the index within a block (rows or cols) of its household
// and area dimensions, person dimensions counting 0; false if the
// household has no category in one of them.
func (c *Cache) blockBase(ds []dim, h uint32, ea int32) (int, bool) {
	idx := 0
	for k := range ds {
		d := &ds[k]
		idx *= d.n
		var cat int32
		switch d.src {
		case srcHousehold:
			cat = d.catOf[c.hCols[d.col].get(h)]
		case srcArea:
			cat = d.catOf[ea]
		default:
			continue
		}
		if cat < 0 {
			return 0, false
		}
		idx += int(cat)
	}
	return idx, true
}

// personPart adds the person dimensions of person i to a block's base
// index.
func (c *Cache) personPart(ds []dim, base int, i uint32) (int, bool) {
	if len(ds) == 0 {
		return base, true
	}
	idx, mul := base, 1
	for k := len(ds) - 1; k >= 0; k-- {
		d := &ds[k]
		var cat int32
		switch d.src {
		case srcPerson:
			cat = d.catOf[c.pCols[d.col].get(i)]
		case srcAgeBand:
			b := c.band(i)
			if b < 0 {
				return 0, false
			}
			cat = d.catOf[b]
		default:
			mul *= d.n
			continue
		}
		if cat < 0 {
			return 0, false
		}
		idx += int(cat) * mul
		mul *= d.n
	}
	return idx, true
}

// band is person i's five-year age band, or -1.
func (c *Cache) band(i uint32) int {
	a := int(c.pAge[i])
	if a == 0 {
		return -1
	}
	return min((a-1)/5, AgeGroup5Bands-1)
}

// measureOf is the measured value of a record in thousandths; false if
// the record has none (it is then left out of the table).
func (c *Cache) measureOf(p *Plan, h, i uint32) (int64, bool) {
	v := p.measure
	if v == nil {
		return 0, true
	}
	row := h
	cols := c.hCols
	if v.level == personLevel {
		row, cols = i, c.pCols
	}
	var x float64
	switch v.kind {
	case derivedAge:
		a := c.pAge[i]
		if a == 0 {
			return 0, false
		}
		x = float64(a - 1)
	case numeric:
		x = cols[v.col].f[row]
		if math.IsNaN(x) {
			return 0, false
		}
	default:
		k := cols[v.col].get(row)
		if k == 0 {
			return 0, false
		}
		x = float64(v.values[k-1])
	}
	if p.dp != nil {
		// A dp sum adds whole units, each record within the variable's
		// bounds: what the noise is scaled to.
		b := float64(p.dp.bound)
		return int64(min(max(math.Round(x), -b), b)) * 1000, true
	}
	return int64(math.Round(x * 1000)), true
}
