package sdc

import (
	"math"
)

// row is one perturbation distribution: offsets[i] applies to keys in
// [upper[i-1], upper[i]). Zero-probability offsets are left out entirely.
type row struct {
	offsets []int64
	upper   []uint64
}

func (r *row) lookup(key uint32) int64 {
	k := uint64(key)
	for i, u := range r.upper {
		if k < u {
			return r.offsets[i]
		}
	}
	return r.offsets[len(r.offsets)-1] // unreachable: the last bound is 2^32
}

// PTable is a perturbation table: for a true count n and a cell key, the
// noise. See the package documentation for its construction.
type PTable struct {
	p    Params
	rows []row // rows[n] for n < SmallCell; rows[SmallCell] for all n ≥ SmallCell
}

// NewPTable builds the perturbation table for p.
func NewPTable(p Params) (*PTable, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	d := p.MaxNoise
	w := make([]float64, d+1) // w[k] for k = 1..D
	var sw, swk2 float64
	for k := 1; k <= d; k++ {
		w[k] = float64(d + 1 - k)
		sw += w[k]
		swk2 += w[k] * float64(k*k)
	}
	sq2 := swk2 / sw

	t := &PTable{p: p, rows: make([]row, p.SmallCell+1)}
	t.rows[0] = makeRow(map[int]float64{0: 1}, d)
	for n := 1; n < p.SmallCell; n++ {
		m := min(d, n)
		var sPosW, sPosKW, sNegW, sNegKW float64
		for k := 1; k <= d; k++ {
			sPosW += w[k]
			sPosKW += float64(k) * w[k]
			if k <= m {
				sNegW += w[k]
				sNegKW += float64(k) * w[k]
			}
		}
		// α·sPosKW = β·sNegKW (mean zero); α·sPosW + β·sNegW = 1.
		alpha := 1 / (sPosW + sNegW*sPosKW/sNegKW)
		beta := alpha * sPosKW / sNegKW
		probs := map[int]float64{}
		for k := 1; k <= d; k++ {
			probs[k] = alpha * w[k]
			if k <= m {
				probs[-k] = beta * w[k]
			}
		}
		t.rows[n] = makeRow(probs, d)
	}
	probs := map[int]float64{}
	v := p.Variance
	if v <= sq2 {
		c := v / sq2
		probs[0] = 1 - c
		for k := 1; k <= d; k++ {
			probs[k] = c * w[k] / (2 * sw)
			probs[-k] = probs[k]
		}
	} else {
		c := (v - sq2) / (float64(d*d) - sq2)
		for k := 1; k <= d; k++ {
			probs[k] = (1 - c) * w[k] / (2 * sw)
			probs[-k] = probs[k]
		}
		probs[d] += c / 2
		probs[-d] += c / 2
	}
	t.rows[p.SmallCell] = makeRow(probs, d)
	return t, nil
}

// makeRow cuts the cumulative distribution over offsets -d..d into key
// ranges, in offset order.
func makeRow(probs map[int]float64, d int) row {
	var r row
	cum := 0.0
	for off := -d; off <= d; off++ {
		pr := probs[off]
		if pr <= 0 {
			continue
		}
		cum += pr
		r.offsets = append(r.offsets, int64(off))
		r.upper = append(r.upper, uint64(math.Round(cum*float64(Modulus))))
	}
	r.upper[len(r.upper)-1] = Modulus
	return r
}

// Params returns the parameters the table was built from.
func (t *PTable) Params() Params { return t.p }

// Perturb returns the perturbed value of the true count n for a cell with
// the given key. n must be ≥ 0; a negative n (never a real count) yields 0.
func (t *PTable) Perturb(n int64, cellKey uint32) int64 {
	if n <= 0 {
		return 0
	}
	i := min(n, int64(len(t.rows)-1))
	return n + t.rows[i].lookup(cellKey)
}

// CellKey returns the key of a cell with the given contributors: the sum of
// their record keys modulo 2^32, so it does not depend on their order.
func CellKey(recordKeys ...uint32) uint32 {
	var k uint32
	for _, r := range recordKeys {
		k += r // wraps modulo 2^32 by definition
	}
	return k
}

// Cell accumulates one table cell as contributors stream past.
type Cell struct {
	Count int64   // true number of contributors
	Key   uint32  // sum of their record keys modulo 2^32
	Sum   float64 // true sum of the measured variable
	// Top are the two largest absolute contributions, largest first (0
	// for a missing one): v2 scales a sum's noise by Top[0] and applies
	// the dominance rule with both. v1 ignores them.
	Top [2]float64
	// AbsSum is the sum of the absolute contributions (Sum itself when
	// none is negative): the total the dominance rule measures the
	// largest two against. v1 ignores it.
	AbsSum float64
}

// Add adds one contributor with its record key and value.
func (c *Cell) Add(recordKey uint32, value float64) {
	c.Count++
	c.Key += recordKey
	c.Sum += value
	a := math.Abs(value)
	c.AbsSum += a
	switch {
	case a > c.Top[0]:
		c.Top[0], c.Top[1] = a, c.Top[0]
	case a > c.Top[1]:
		c.Top[1] = a
	}
}

// ReleaseCount perturbs the cell's count, then applies the small-cell rule.
// A suppressed cell's value is 0 and must not be published. It is the same
// under v1 and v2.
func (t *PTable) ReleaseCount(c Cell) (value int64, suppressed bool) {
	v := t.Perturb(c.Count, c.Key)
	if v < int64(t.p.SmallCell) {
		return 0, true
	}
	return v, false
}

// sumNoise is v1's s in [-1, 1]: the large-n row's noise at a remixed
// key, divided by D.
func (t *PTable) sumNoise(key uint32) float64 {
	e := t.rows[len(t.rows)-1].lookup(fmix32(key))
	return float64(e) / float64(t.p.MaxNoise)
}

// MagnitudeNoise is v2's u for a cell key: h = fmix32(key); the sign is
// h's top bit (set: negative) and |u| = ½ + ½·(h's low 31 bits)/2^31, so
// |u| is spread evenly over [½, 1) in steps of 2^-32 and u is never 0.
// Over uniform keys u has mean 0, E|u| = ¾ and variance 7/12. Exported
// so that an auditor can recompute a v2 sum from the true cell.
func MagnitudeNoise(key uint32) float64 {
	h := fmix32(key)
	u := 0.5 + float64(h&0x7fffffff)/(1<<32)
	if h&0x80000000 != 0 {
		return -u
	}
	return u
}

// fmix32 is MurmurHash3's finalizer, a bijection of uint32: a uniform key
// stays uniform, but sum noise no longer moves in step with count noise.
func fmix32(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// ReleaseSum returns the cell's perturbed sum.
//
// v1: the sum plus noise scaled to bound, the most one contributor can
// add: Sum + bound·e/D.
//
// v2: Sum + m·Top[0]·MagnitudeNoise(Key); bound plays no part in the
// value. The sum is also suppressed when it is dominated (the p% rule:
// AbsSum - Top[0] - Top[1] < p/100·Top[0]).
//
// Under both it is suppressed with the count, and also (failing closed)
// when bound is not positive and finite or the sum is not finite; under
// v2 also when Top or AbsSum are not finite.
func (t *PTable) ReleaseSum(c Cell, bound float64) (value float64, suppressed bool) {
	if _, sup := t.ReleaseCount(c); sup || !finitePositive(bound) || !finite(c.Sum) {
		return 0, true
	}
	if t.p.Version == V1 {
		return c.Sum + bound*t.sumNoise(c.Key), false
	}
	if !finite(c.Top[0]) || !finite(c.Top[1]) || !finite(c.AbsSum) || t.Dominated(c) {
		return 0, true
	}
	return c.Sum + t.p.Magnitude*c.Top[0]*MagnitudeNoise(c.Key), false
}

// Dominated reports whether v2's p% rule withholds the cell's sum: what
// the contributors other than the two largest add up to (in absolute
// value) is less than p% of the largest, so the second largest, knowing
// their own value, could estimate the largest to within p%. A cell with
// one or two contributors with a non-zero value is always dominated; a
// cell whose contributions are all zero is not (there is nothing to
// estimate). A cell whose Top and AbsSum cannot be those of its Sum and
// Count — left unset by a caller, say, which would otherwise release the
// sum without noise — counts as dominated, failing closed. Under v1 it is
// always false: v1 had no such rule.
func (t *PTable) Dominated(c Cell) bool {
	if t.p.Version == V1 {
		return false
	}
	const slack = 1 + 1e-9 // float sums of the same values in another order
	n := float64(max(c.Count, 0))
	switch {
	case c.Top[0] < c.Top[1] || c.Top[1] < 0,
		c.AbsSum*slack < math.Abs(c.Sum), // |Σ x| ≤ Σ |x|
		c.Top[0]*n*slack < c.AbsSum,      // the largest is at least the average
		c.AbsSum*slack < c.Top[0]+c.Top[1]:
		return true
	}
	rest := c.AbsSum - c.Top[0] - c.Top[1]
	return rest < t.p.Dominance/100*c.Top[0] || (c.Count <= 2 && c.Top[0] > 0)
}

// ReleaseMean returns the perturbed sum divided by the perturbed count,
// suppressed whenever either is.
func (t *PTable) ReleaseMean(c Cell, bound float64) (value float64, suppressed bool) {
	n, sup := t.ReleaseCount(c)
	if sup {
		return 0, true
	}
	s, sup := t.ReleaseSum(c, bound)
	if sup {
		return 0, true
	}
	return s / float64(n), false
}

func finitePositive(x float64) bool { return x > 0 && !math.IsInf(x, 0) && !math.IsNaN(x) }

func finite(x float64) bool { return !math.IsInf(x, 0) && !math.IsNaN(x) }
