package tables

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/dp"
	"github.com/censusvault/censusvault/broker/dp/zcdp"
	"github.com/censusvault/censusvault/broker/sdc"
)

// Custom tables — the researcher's own rows, columns, filters and areas —
// are released under zero-concentrated differential privacy (zCDP), the
// household being the unit of privacy: adding or removing one household
// (all its persons and answers) changes the distribution of a released
// table by at most the table's ρ; changing a household's answers, its
// presence known, by at most 2ρ (its old and new contributions are both
// non-negative, so the squared L2 change is at most 2Δ²). See the
// README's "Custom tables under differential privacy" for the guarantee
// and what it does not cover.
//
// How a dp table is made, in order:
//
//  1. The true inner cells (no margins) are computed as of the point,
//     each household bounded: a person table counts at most PersonCap of
//     a household's persons (the first ones, in form order, that the
//     filters keep); a sum takes each record's value rounded to whole
//     units and within the variable's bounds, so one household adds at
//     most PersonCap·bound to a person sum and bound to a household sum.
//  2. Every inner cell gets discrete Gaussian noise N_Z(0, σ²) with
//     σ² = Δ²/(2ρ), Δ the household's largest possible L2 change of the
//     inner cells (PersonCap for a person count, 1 for a household
//     count, the bounds above for sums). A sum or mean spends half its ρ
//     on the cells' counts and half on their sums.
//  3. Post-processing, which costs no privacy: inner counts (and sums of
//     non-negative variables) are clamped at 0; margins are the sums of
//     the post-processed inner cells, so a table adds up; means are noisy
//     sums over noisy counts; a cell whose noisy count is below SmallCell
//     is suppressed, and every cell is when the noisy total is below
//     MinUniverse. No rule looks at a true count.
//
// The noise comes from a ChaCha8 stream keyed by the release's seed, which
// the broker derives from a vault secret and the canonical query (Plan.
// Query). Cells draw their noise in the canonical order of their
// dimensions (sorted by name), so asking for the same cells laid out
// differently (rows and columns swapped or reordered) draws the same noise.

// DPFormat names the layout of a released dp table.
const DPFormat = "censusvault.dp-table/v1"

// DPMethod names the disclosure control of dp tables.
const DPMethod = "zero-concentrated differential privacy: discrete Gaussian noise (Canonne–Kamath–Steinke), the household as the unit"

// DPParams are the fixed parameters of dp tables. They are recorded in
// every release (Canonical), so a replay uses the same.
type DPParams struct {
	Version     int // 1
	PersonCap   int // persons of one household counted in a person table
	SmallCell   int // a cell whose noisy count is below it is suppressed
	MinUniverse int // every cell is suppressed when the noisy total is below it
	MaxDims     int
	MaxCells    int // margins included
}

// DefaultDPParams: at most 8 persons of a household counted (households
// average 3.6 persons; larger ones than 8 are rare, and the noise grows
// with the cap), suppression below 10 and a noisy universe of 100, the
// shape limits of cell-key tables.
func DefaultDPParams() DPParams {
	return DPParams{Version: 1, PersonCap: 8, SmallCell: 10, MinUniverse: 100, MaxDims: 4, MaxCells: 50000}
}

// Validate reports whether p is usable.
func (p DPParams) Validate() error {
	switch {
	case p.Version != 1:
		return fmt.Errorf("tables: dp parameters version %d: this build knows 1", p.Version)
	case p.PersonCap < 1 || p.PersonCap > 50:
		return fmt.Errorf("tables: dp person cap %d not in 1..50", p.PersonCap)
	case p.SmallCell < 0 || p.SmallCell > 1000:
		return fmt.Errorf("tables: dp small-cell threshold %d not in 0..1000", p.SmallCell)
	case p.MinUniverse < 0 || p.MinUniverse > 100000:
		return fmt.Errorf("tables: dp minimum universe %d not in 0..100000", p.MinUniverse)
	}
	return p.shape().Validate()
}

// shape is the cell-key parameters whose shape limits Compile applies.
func (p DPParams) shape() sdc.Params {
	s := sdc.DefaultParamsV1()
	s.MaxDims, s.MaxCells = p.MaxDims, p.MaxCells
	return s
}

// Canonical is the parameters as the audit log keeps them.
func (p DPParams) Canonical() string {
	return fmt.Sprintf("dp/v%d;person_cap=%d;small_cell=%d;min_universe=%d;max_dims=%d;max_cells=%d",
		p.Version, p.PersonCap, p.SmallCell, p.MinUniverse, p.MaxDims, p.MaxCells)
}

// ParseDPParams reads what Canonical wrote, and nothing else.
func ParseDPParams(s string) (DPParams, error) {
	var p DPParams
	if _, err := fmt.Sscanf(s, "dp/v%d;person_cap=%d;small_cell=%d;min_universe=%d;max_dims=%d;max_cells=%d",
		&p.Version, &p.PersonCap, &p.SmallCell, &p.MinUniverse, &p.MaxDims, &p.MaxCells); err != nil || p.Canonical() != s {
		return DPParams{}, fmt.Errorf("tables: %q are not dp parameters", clip(s))
	}
	return p, p.Validate()
}

// DPNorm is the canonical record of a dp table release: what the audit
// log keeps and what a replay recomputes from. Areas are the areas the
// table covers as compiled (each inside the project); PointState is the
// digest of the point's stored state.
type DPNorm struct {
	Areas      []string            `json:"areas"`
	Cols       []string            `json:"cols"`
	DP         string              `json:"dp"`
	Filter     map[string][]string `json:"filter"`
	Format     string              `json:"format"`
	Measure    Measure             `json:"measure"`
	Point      string              `json:"point"`
	PointState string              `json:"point_state"`
	Project    string              `json:"project"`
	Rho        string              `json:"rho"`
	Rows       []string            `json:"rows"`
	// Shreds are the analytic shreds under the table's areas when it was
	// asked ("COMMUNE@UNIXNANO"): part of the query (see DPPoint.Shreds).
	Shreds []string `json:"shreds"`
	Unit   Unit     `json:"unit"`
}

// Encode returns the canonical bytes (keys sorted, no spaces).
func (n *DPNorm) Encode() string { return canonicalJSON(n) }

// ParseDPNorm reads what Encode wrote.
func ParseDPNorm(s string) (*DPNorm, error) {
	return parseCanonical[DPNorm](s, "a normalized dp table request")
}

// Request returns the request a replay compiles: the recorded one, its
// areas as an area filter.
func (n *DPNorm) Request() *Request {
	f := make(map[string][]string, len(n.Filter)+1)
	for k, v := range n.Filter {
		f[k] = slices.Clone(v)
	}
	f[FilterArea] = slices.Clone(n.Areas)
	return &Request{Project: n.Project, Unit: n.Unit, Rows: slices.Clone(n.Rows), Cols: slices.Clone(n.Cols),
		Filter: f, Measure: n.Measure, Point: n.Point, Rho: n.Rho, custom: true}
}

// dpQuery is what decides a dp table's noise and charge: the cells asked
// for, whatever their layout, the researcher, project or format. Two
// requests with the same query are the same question, answered with the
// same noise and charged once.
type dpQuery struct {
	Areas   []string            `json:"areas"` // canonical cover
	DP      string              `json:"dp"`
	Dims    []string            `json:"dims"` // rows and cols, sorted
	Filter  map[string][]string `json:"filter"`
	Measure Measure             `json:"measure"`
	Point   string              `json:"point"` // pointIdentity
	Rho     string              `json:"rho"`
	Shreds  []string            `json:"shreds"`
	Unit    Unit                `json:"unit"`
}

// pointIdentity is what of a point decides the data a dp table sees: a
// publication point's frozen state (its per-area as-of points), a
// scheduled point's deposit point. Two points that see the same data
// ask the same question — the same table at the next day's point with
// nothing deposited between is a repeat, not new noise.
func pointIdentity(p DPPoint) string {
	if p.State != nil {
		return "state:" + p.Digest
	}
	return "as_of:" + strconv.FormatInt(p.AsOf, 10)
}

// DPPoint is the point a dp table is computed at: a publication point
// (State set: each area frozen at its own point) or a scheduled one
// (State nil: everything as of AsOf).
type DPPoint struct {
	Name   string
	AsOf   int64
	Digest string      // of the point's stored state
	State  *PointState // nil for a scheduled point
	// Shreds are the communes whose analytic keys were shredded, each
	// with the time of its latest shred (Unix nanoseconds): what a point
	// saw changes when keys under it are shredded, so the shreds under a
	// table's areas are part of its query. A question asked again after a
	// shred is a new question, with fresh noise, charged — never the same
	// noise over other data, and never a refusal that would tell whether
	// the shredded households were in its cells.
	Shreds map[area.Code]int64
}

// dpPlan is what a dp table adds to a plan.
type dpPlan struct {
	norm     DPNorm
	query    []byte // canonical dpQuery
	params   DPParams
	rho      zcdp.Rho
	canon    []int32 // inner cell (row-major layout, margins excluded) -> canonical index
	sqCount  int64   // Δ² of the counts
	sqSum    int64   // Δ² of the sums (sum and mean)
	bound    int64   // a record's largest magnitude in whole units (sum and mean)
	nonNeg   bool    // the measured variable is never negative
	cover    []area.Code
	personCp int
}

// CompileDP checks a custom request against the schema, the project and
// the dp parameters, and prepares it as a dp table at point with budget
// rho (the request's own, or the default the caller put in r.Rho).
func (c *Cache) CompileDP(r *Request, proj Project, point DPPoint, params DPParams, format string) (*Plan, error) {
	if err := params.Validate(); err != nil {
		return nil, err
	}
	rho, err := zcdp.ParseRho(r.Rho)
	if err != nil {
		return nil, invalidf("rho: %v", err)
	}
	if point.Name == "" || point.Digest == "" {
		return nil, fmt.Errorf("tables: a dp table needs a point")
	}
	p, err := c.Compile(r, proj, params.shape(), format, point.AsOf)
	if err != nil {
		return nil, err
	}
	if p.measure != nil && !p.measure.quantitative {
		return nil, deniedf("measure %s of %q: only quantitative variables are summed or averaged (%s); a sum of codes reads them back",
			p.op, p.measure.name, quantitativeList(c.schema))
	}
	if point.State != nil {
		p.eaAsOf = c.eaAsOf(point.State)
	}
	d := &dpPlan{params: params, rho: rho, personCp: params.PersonCap}
	areas := make([]string, len(p.Areas))
	for i, a := range p.Areas {
		areas[i] = string(a)
	}
	filter := make(map[string][]string, len(p.Norm.Filter))
	for k, v := range p.Norm.Filter {
		if k != FilterArea {
			filter[k] = v
		}
	}
	d.norm = DPNorm{
		Areas: areas, Cols: p.Norm.Cols, DP: params.Canonical(), Filter: filter, Format: format,
		Measure: p.Norm.Measure, Point: point.Name, PointState: point.Digest, Project: proj.ID,
		Rho: rho.String(), Rows: p.Norm.Rows, Unit: p.unit,
	}

	// Sensitivities: what one household can change the inner cells by.
	perHH := int64(1)
	if p.unit == Persons {
		perHH = int64(params.PersonCap)
	}
	d.sqCount = perHH * perHH
	if p.measure != nil {
		d.bound = int64(math.Ceil(p.measure.bound))
		d.nonNeg = p.measure.nonNeg
		s := perHH * d.bound
		if s <= 0 || s > 1<<30 {
			return nil, invalidf("measure %q: its bounds are too wide to sum under dp", p.measure.name)
		}
		d.sqSum = s * s
	}

	// The query: the canonical cover, the dimensions as a set, the filter
	// without filters that keep everything, the shreds under the cover.
	d.cover = c.canonicalCover(p.universe)
	d.norm.Shreds = c.shredsUnder(p.universe, point.Shreds)
	q := dpQuery{DP: d.norm.DP, Measure: d.norm.Measure, Point: pointIdentity(point), Rho: d.norm.Rho, Unit: p.unit, Filter: map[string][]string{}, Shreds: d.norm.Shreds}
	// A dimension of one category (an area level the cover lies within,
	// a variable filtered to one code) adds a label, not a cell: the
	// table without it asks the same cells.
	for _, ds := range [][]dim{p.rows, p.cols} {
		for _, dd := range ds {
			if dd.n > 1 {
				q.Dims = append(q.Dims, dd.name)
			}
		}
	}
	slices.Sort(q.Dims)
	for _, a := range d.cover {
		q.Areas = append(q.Areas, string(a))
	}
	for k, v := range filter {
		if !c.keepsAll(k, v) {
			q.Filter[k] = v
		}
	}
	d.query = []byte(canonicalJSON(&q))
	d.canon = canonicalOrder(p)
	p.dp = d
	return p, nil
}

// shredsUnder lists the shreds of communes holding an EA of the
// universe, as "COMMUNE@UNIXNANO", sorted.
func (c *Cache) shredsUnder(universe []bool, shreds map[area.Code]int64) []string {
	g := c.geo
	out := []string{}
	for code, at := range shreds {
		i, ok := g.index[code]
		if !ok {
			continue
		}
		for k := i; k < g.end[i]; k++ {
			if g.levels[k] == area.EA && universe[k] {
				out = append(out, string(code)+"@"+strconv.FormatInt(at, 10))
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// ParseShreds reads DPNorm.Shreds back into DPPoint.Shreds (for replay).
func ParseShreds(list []string) (map[area.Code]int64, error) {
	out := make(map[area.Code]int64, len(list))
	for _, e := range list {
		code, at, ok := strings.Cut(e, "@")
		n, err := strconv.ParseInt(at, 10, 64)
		if !ok || err != nil || code == "" {
			return nil, fmt.Errorf("tables: shred %q is not COMMUNE@UNIXNANO", clip(e))
		}
		out[area.Code(code)] = n
	}
	return out, nil
}

func quantitativeList(s *Schema) string {
	var q []string
	for _, name := range s.order {
		if s.vars[name].quantitative {
			q = append(q, name)
		}
	}
	return fmt.Sprint(q)
}

// keepsAll reports whether a filter on variable name keeps every record:
// it lists every code of a variable every record has. Such a filter is
// the same question as none.
func (c *Cache) keepsAll(name string, vals []string) bool {
	v, ok := c.schema.vars[name]
	if !ok || v.kind != coded || !v.required || len(vals) != len(v.values) {
		return false
	}
	for i, x := range v.values {
		if vals[i] != strconv.FormatInt(x, 10) {
			// vals are sorted as strings; compare as a set.
			return slices.Equal(sortedCodes(vals), sortedInts(v.values))
		}
	}
	return true
}

func sortedCodes(vals []string) []string { return slices.Sorted(slices.Values(vals)) }

func sortedInts(xs []int64) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = strconv.FormatInt(x, 10)
	}
	slices.Sort(out)
	return out
}

// canonicalCover is the smallest set of areas whose EAs are exactly the
// universe's: an area whose every child is wholly covered stands for its
// children, so "the district" and "each of its communes" are one cover.
func (c *Cache) canonicalCover(universe []bool) []area.Code {
	g := c.geo
	full := make([]bool, len(g.codes))
	// Children come after their parent in tree order: walk backwards, so
	// every child is decided before its parent.
	for i := len(g.codes) - 1; i >= 0; i-- {
		if g.levels[i] == area.EA {
			full[i] = universe[i]
			continue
		}
		hasChild, all := false, true
		for k := int32(i) + 1; k < g.end[i]; k = g.end[k] {
			hasChild = true
			if !full[k] {
				all = false
				break
			}
		}
		full[i] = hasChild && all
	}
	var out []area.Code
	for i := int32(0); i < int32(len(g.codes)); {
		if full[i] {
			out = append(out, g.codes[i])
			i = g.end[i]
			continue
		}
		i++
	}
	return out
}

// canonicalOrder maps each inner cell of p's layout to its index in the
// canonical order: p's dimensions sorted by name, the first the most
// significant.
func canonicalOrder(p *Plan) []int32 {
	type dimRef struct {
		name   string
		n      int
		stride int // in the layout
	}
	var ds []dimRef
	width := p.C
	if len(p.cols) == 0 {
		width = 1
	}
	s := width
	for k := len(p.rows) - 1; k >= 0; k-- {
		ds = append(ds, dimRef{name: p.rows[k].name, n: p.rows[k].n, stride: s})
		s *= p.rows[k].n
	}
	s = 1
	for k := len(p.cols) - 1; k >= 0; k-- {
		ds = append(ds, dimRef{name: p.cols[k].name, n: p.cols[k].n, stride: s})
		s *= p.cols[k].n
	}
	slices.SortFunc(ds, func(a, b dimRef) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	inner := p.R * width
	out := make([]int32, inner)
	for i := range inner {
		k := 0
		for _, d := range ds {
			k = k*d.n + (i/d.stride)%d.n
		}
		out[i] = int32(k)
	}
	return out
}

// DP reports whether p is a dp table.
func (p *Plan) DP() bool { return p.dp != nil }

// Query is the digest of p's canonical query ("sha256:" and hex): the
// identity a repeat is recognized by, and never the seed.
func (p *Plan) Query() string {
	sum := sha256.Sum256(p.dp.query)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// QueryBytes is the canonical query the seed is derived from.
func (p *Plan) QueryBytes() []byte { return slices.Clone(p.dp.query) }

// Rho is the table's zCDP ρ.
func (p *Plan) Rho() zcdp.Rho { return p.dp.rho }

// LedgerAreas are the areas whose communes the table touches, each with
// its subtree, none below a commune: an EA's table is charged to its
// whole commune.
func (c *Cache) LedgerAreas(p *Plan) []area.Code {
	g := c.geo
	var out []area.Code
	for _, a := range p.dp.cover {
		i := g.index[a]
		if g.levels[i] > area.Commune {
			ea := i
			for g.levels[ea] != area.EA {
				ea++
			}
			a = g.codes[g.eaAnc[ea][area.Commune]]
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// DPNoise is the noise scale of a plan, for the table's header: the
// discrete Gaussian σ² of its counts and of its sums (nil for a count).
func (p *Plan) dpSigma2() (count, sum *big.Rat, err error) {
	d := p.dp
	rc := d.rho.Rat()
	if d.sqSum > 0 {
		rc.Quo(rc, big.NewRat(2, 1))
	}
	if count, err = dp.Sigma2ForRho(d.sqCount, rc); err != nil {
		return nil, nil, err
	}
	if d.sqSum > 0 {
		if sum, err = dp.Sigma2ForRho(d.sqSum, rc); err != nil {
			return nil, nil, err
		}
	}
	return count, sum, nil
}

// RunDP computes p's table as of its point and releases it under zCDP with
// noise drawn from seed (see the package comment above CompileDP). The
// same plan and seed always give the same table.
func (c *Cache) RunDP(p *Plan, seed [32]byte) (*Table, error) {
	d := p.dp
	if d == nil {
		return nil, fmt.Errorf("tables: RunDP of a plan that is not a dp table")
	}
	s2c, s2s, err := p.dpSigma2()
	if err != nil {
		return nil, err
	}
	total, _, err := c.aggregate(p)
	if err != nil {
		return nil, err
	}
	w := p.width()
	innerW := w
	if len(p.cols) > 0 {
		innerW = p.C
	}
	inner := p.R * innerW

	// Noise, in canonical order: counts from the seed's stream, sums from
	// a second stream keyed from it.
	countNoise, err := drawNoise(seed, 0, s2c, inner)
	if err != nil {
		return nil, err
	}
	var sumNoise []int64
	if s2s != nil {
		if sumNoise, err = drawNoise(seed, 1, s2s, inner); err != nil {
			return nil, err
		}
	}

	counts := make([]int64, len(total))
	sums := make([]int64, len(total))
	for r := range p.R {
		for col := range innerW {
			i := r*w + col
			k := d.canon[r*innerW+col]
			counts[i] = max(0, total[i].n+countNoise[k])
			if sumNoise != nil {
				s := total[i].milli/1000 + sumNoise[k]
				if d.nonNeg {
					s = max(0, s)
				}
				sums[i] = s
			}
		}
	}
	// Margins: sums of the post-processed inner cells.
	for r := range p.R {
		for col := range innerW {
			i := r*w + col
			if len(p.cols) > 0 {
				counts[r*w+p.C] += counts[i]
				sums[r*w+p.C] += sums[i]
				counts[p.R*w+col] += counts[i]
				sums[p.R*w+col] += sums[i]
			}
			counts[p.R*w+w-1] += counts[i]
			sums[p.R*w+w-1] += sums[i]
		}
	}

	t := &Table{Plan: p, Cells: make([]Cell, len(total))}
	all := counts[len(counts)-1] < int64(d.params.MinUniverse)
	for i := range t.Cells {
		cell := Cell{Count: counts[i], Suppressed: all || counts[i] < int64(d.params.SmallCell)}
		switch p.op {
		case "sum":
			cell.Value = float64(sums[i])
		case "mean":
			if counts[i] > 0 {
				cell.Value = float64(sums[i]) / float64(counts[i])
			} else {
				cell.Suppressed = true
			}
		}
		t.Cells[i] = cell
	}
	t.dpCanon = canonCells(d, p, counts, sums, innerW)
	return t, nil
}

// drawNoise draws n values of N_Z(0, σ²) from the stream of seed and
// label: label 0 is the seed itself, others a SHA-256 of it, so the
// streams of counts and sums are independent.
func drawNoise(seed [32]byte, label byte, sigma2 *big.Rat, n int) ([]int64, error) {
	g, err := dp.NewGaussian(sigma2)
	if err != nil {
		return nil, err
	}
	key := seed
	if label != 0 {
		key = sha256.Sum256(append([]byte{'c', 'v', 's', label}, seed[:]...))
	}
	st := dp.NewStream(key)
	out := make([]int64, n)
	for k := range out {
		out[k] = g.Draw(st)
	}
	return out, nil
}

// canonCells is the digest input of a dp table's released values: its
// post-processed inner counts and sums in canonical order, whatever the
// layout, so a repeat laid out differently is recognized as the same
// answer.
func canonCells(d *dpPlan, p *Plan, counts, sums []int64, innerW int) []byte {
	w := p.width()
	n := p.R * innerW
	cc := make([]int64, n)
	ss := make([]int64, n)
	for r := range p.R {
		for col := range innerW {
			k := d.canon[r*innerW+col]
			cc[k], ss[k] = counts[r*w+col], sums[r*w+col]
		}
	}
	b := make([]byte, 0, 16*n)
	for k := range n {
		b = binary.BigEndian.AppendUint64(b, uint64(cc[k]))
		b = binary.BigEndian.AppendUint64(b, uint64(ss[k]))
	}
	return b
}

// ResultDigest is the digest of a dp table's values ("sha256:" and hex),
// the same for every layout and format of the same query.
func (t *Table) ResultDigest() string {
	sum := sha256.Sum256(t.dpCanon)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// dpJSON writes a dp table: the request as recorded (areas, point, ρ),
// the noise it carries, then the dimensions and cells as a cell-key table
// has them.
func (t *Table) dpJSON() []byte {
	p := t.Plan
	n := &p.dp.norm
	var b bytes.Buffer
	b.WriteString(`{"table":`)
	b.Write(js(DPFormat))
	b.WriteString(`,"project":`)
	b.Write(js(n.Project))
	b.WriteString(`,"point":`)
	b.Write(js(n.Point))
	b.WriteString(`,"areas":`)
	writeStrings(&b, n.Areas)
	b.WriteString(`,"unit":`)
	b.Write(js(string(n.Unit)))
	m, _ := n.Measure.MarshalJSON()
	b.WriteString(`,"measure":`)
	b.Write(m)
	f, _ := json.Marshal(n.Filter)
	b.WriteString(`,"filter":`)
	b.Write(f)
	t.writeDims(&b)
	b.WriteString(`,"margin":`)
	b.Write(js(Margin))
	b.WriteString(`,"disclosure_control":{"method":`)
	b.Write(js(DPMethod))
	b.WriteString(`,"rho":`)
	b.Write(js(n.Rho))
	fmt.Fprintf(&b, `,"epsilon":%s,"delta":%s`, strconv.FormatFloat(p.dp.rho.Epsilon(zcdp.Delta), 'f', 3, 64), strconv.FormatFloat(zcdp.Delta, 'g', -1, 64))
	sc, ss, _ := p.dpSigma2() // compiled, so it computes
	fmt.Fprintf(&b, `,"noise_sd_count":%s`, sdString(sc))
	if ss != nil {
		fmt.Fprintf(&b, `,"noise_sd_sum":%s`, sdString(ss))
	}
	pa := p.dp.params
	fmt.Fprintf(&b, `,"person_cap":%d,"small_cell":%d,"min_universe":%d,"params":`, pa.PersonCap, pa.SmallCell, pa.MinUniverse)
	b.Write(js(pa.Canonical()))
	b.WriteString(`}`)
	t.writeCells(&b)
	return b.Bytes()
}

// dpCSV is dpJSON's CSV: '#' comment lines with the request and the
// noise, then the cells as a cell-key table's CSV has them.
func (t *Table) dpCSV() []byte {
	p := t.Plan
	n := &p.dp.norm
	var b bytes.Buffer
	m, _ := n.Measure.MarshalJSON()
	f, _ := json.Marshal(n.Filter)
	fmt.Fprintf(&b, "# %s project=%s point=%s areas=%s unit=%s measure=%s filter=%s margin=%s\n",
		DPFormat, n.Project, n.Point, strings.Join(n.Areas, ","), n.Unit, m, f, Margin)
	sc, ss, _ := p.dpSigma2()
	fmt.Fprintf(&b, "# disclosure control: %s; rho=%s epsilon=%s delta=%s noise_sd_count=%s",
		DPMethod, n.Rho, strconv.FormatFloat(p.dp.rho.Epsilon(zcdp.Delta), 'f', 3, 64), strconv.FormatFloat(zcdp.Delta, 'g', -1, 64), sdString(sc))
	if ss != nil {
		fmt.Fprintf(&b, " noise_sd_sum=%s", sdString(ss))
	}
	fmt.Fprintf(&b, "; %s\n", p.dp.params.Canonical())
	w := csv.NewWriter(&b)
	t.writeCSVCells(w)
	w.Flush()
	return b.Bytes()
}

// sdString is √σ² to two decimals, for people to read.
func sdString(s2 *big.Rat) string {
	f, _ := s2.Float64()
	return strconv.FormatFloat(math.Sqrt(f), 'f', 2, 64)
}
