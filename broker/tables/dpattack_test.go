package tables

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/dp/zcdp"
	"github.com/censusvault/censusvault/broker/form"
)

// Issue 12's acceptance: the attacks of issue 11 rerun against custom
// tables under zCDP ("dp mode"), now that researchers have free filters
// again — the moved cell, tracker combinations, as-of differencing between
// daily points, sums, threshold probing, two projects of one researcher,
// repeats and equivalent rewrites. Each runs on the generated area of
// attackarea_test.go against at least 500 targets, four times like the
// attacks of issue 11 (verdict in attack_test.go): with the protection
// and without, each on the true world and on the baseline world where
// every target household's attribute is redrawn from its commune.
//
// The protection is dp at the default per-table ρ (0.02) with the
// broker's seed rule: the seed is an HMAC, under the vault secret (here a
// fixed test secret), of the canonical query (Plan.QueryBytes), so the same
// question always gets the same noise. Without it:
//
//   - for the attacks that read a target off the noise (moved cell,
//     tracker, as-of, sums, threshold probing), the same tables released
//     with their noise removed (noiseless: the same plan at a ρ so large
//     that every draw is 0), everything else — person cap, whole units,
//     clamping, margins, suppression on the released values — as dp does
//     it: suppression then reads true counts;
//   - for two projects and repeats, whose protection is the seed rule, a
//     seed that also takes the project or the repeat's number, so that
//     each release of the same question draws fresh noise.
//
// The researcher is a determined one: they know each target's commune,
// EA, household size and the characteristics the filters use, they know
// what the target's neighbours are (the prior: the distribution of the
// attribute over the other households of the target's commune in the
// world attacked — the baseline world's own draw is what the baseline
// attack starts from), and they bet on the value with the highest
// posterior: that prior times the likelihood of what the tables show,
// the released differences being taken as Gaussian with the variance
// each table states. With the noise gone the likelihood is a spike and
// the bet is the value read; under dp it is almost flat and the bet is
// what the neighbours say.
//
// Each attack uses the tables it needs for one target (two or three,
// one question's probes, or the repeats); what a researcher can ask of
// a commune in all is the broker's ledger's matter, not tested here.

const (
	// dpAttackRho is the default per-table ρ.
	dpAttackRho = "0.02"
	// dpRepeats is how many times the repeat attack asks each of its
	// tables.
	dpRepeats = 100
	// dpQuestions is how many values the threshold attack asks about
	// per target.
	dpQuestions = 3
)

// dpAttackSecret stands for the vault secret the broker keys seeds with.
var dpAttackSecret = []byte("dpattack_test: a fixed stand-in for the vault secret")

// dpSeed is the broker's seed rule: HMAC-SHA256 of the canonical query
// under the vault secret.
func dpSeed(p *Plan) [32]byte { return dpSeedWith(p, nil) }

// dpSeedWith is the seed rule with extra mixed in (a project, a repeat's
// number): the rule without the protection, fresh noise per extra.
func dpSeedWith(p *Plan, extra []byte) [32]byte {
	m := hmac.New(sha256.New, dpAttackSecret)
	m.Write(p.QueryBytes())
	if extra != nil {
		m.Write([]byte{0})
		m.Write(extra)
	}
	var s [32]byte
	copy(s[:], m.Sum(nil))
	return s
}

// noiseless is p with its noise removed: the same plan (person cap,
// whole units, post-processing, suppression on the released values) at
// a ρ of 10¹², which makes every σ² below 10⁻⁴, so that every draw is 0.
func noiseless(p *Plan) *Plan {
	q, d := *p, *p.dp
	d.rho = zcdp.Rho(1_000_000_000_000 * zcdp.RhoScale)
	q.dp = &d
	return &q
}

// dpRelease releases p as the broker does (seed rule), or with its noise
// removed.
func dpRelease(t testing.TB, c *Cache, p *Plan, off bool) *Table {
	t.Helper()
	if off {
		return mustRunDP(t, c, noiseless(p), dpSeed(p))
	}
	return mustRunDP(t, c, p, dpSeed(p))
}

// dpVariance is the noise variance a plan states for its counts and its
// sums (0 for a count table).
func dpVariance(t testing.TB, p *Plan) (count, sum float64) {
	t.Helper()
	c, s, err := p.dpSigma2()
	if err != nil {
		t.Fatal(err)
	}
	count, _ = c.Float64()
	if s != nil {
		sum, _ = s.Float64()
	}
	return count, sum
}

// scheduledAt is the scheduled (daily) point as of audit index asOf.
func scheduledAt(asOf int64) DPPoint {
	return DPPoint{Name: fmt.Sprintf("daily-%d", asOf), AsOf: asOf, Digest: fmt.Sprintf("sha256:state-%d", asOf)}
}

// dpWorld is a world the attacks run on: its submissions, and caches of
// it — the whole area, each district, and for each isolated target the
// households of its district with its value of its isolating variable.
// A cache holding every record a table keeps answers the table as the
// whole cache does, faster (the attacks check it on their first target);
// each has the whole sequence's audit indexes.
type dpWorld struct {
	name     string
	subs     []*form.Submission
	hs       []Household
	whole    *Cache
	district map[area.Code]*Cache
	subset   map[subsetKey]*Cache
	// byCommune counts each attribute's values by commune.
	byCommune map[string]map[area.Code]map[string]float64
}

// subsetKey names the households of a district with value x of v.
type subsetKey struct {
	district area.Code
	v, x     string
}

// isolatedHH is a household that is the only one of its EA with its value
// x of household variable v, x being common in the rest of its district
// (at least 100 other households): filters on v and on areas isolate it
// in tables whose other cells are large.
type isolatedHH struct {
	hh       int
	v, x     string
	notX     []string // the other codes of v
	district area.Code
	rest     []string  // the district but the household's EA: its other communes, its commune's other EAs
	ea       area.Code // its EA
}

// dpAttacks is what the dp attacks share: their targets and the two
// worlds, built once.
type dpAttacks struct {
	a         *attackArea
	byCommune map[area.Code][]int // households of each commune
	district  []area.Code         // of each household
	moved     []personRef         // persons unique in their commune by sex and birth year
	isolated  []isolatedHH
	block     []int // consecutive deposits
	first     []int // first deposits of their EA
	worlds    [2]*dpWorld
}

var (
	dpAttacksOnce sync.Once
	dpAttacksV    *dpAttacks
)

// theDPAttacks builds the targets and worlds once per test binary.
func theDPAttacks(t testing.TB) *dpAttacks {
	t.Helper()
	a := theAttackArea(t)
	dpAttacksOnce.Do(func() { dpAttacksV = buildDPAttacks(t, a) })
	if dpAttacksV == nil {
		t.Fatal("the dp attacks' worlds could not be built (see the first test that failed)")
	}
	return dpAttacksV
}

// The household variables that isolate targets (water_source is what
// the repeat attacks guess).
var isolatingVars = []string{"dwelling_type", "tenure", "electricity", "toilet_type"}

func buildDPAttacks(t testing.TB, a *attackArea) *dpAttacks {
	s := &dpAttacks{a: a, byCommune: map[area.Code][]int{}, district: make([]area.Code, len(a.commune))}
	for i, c := range a.commune {
		s.byCommune[c] = append(s.byCommune[c], i)
		s.district[i], _ = a.tree.Ancestor(c, area.District)
	}
	s.moved = a.uniquePersons()
	s.isolated = s.isolatedHouseholds(t)
	s.block = a.block()
	s.first = a.firstDeposits()

	// One baseline world for all the attacks: every target household's
	// ethnicity, religion, floor area and water source redrawn from its
	// commune (each attack reads one of them).
	var union []int
	for _, r := range s.moved {
		union = append(union, r.hh)
	}
	for _, h := range s.isolated {
		union = append(union, h.hh)
	}
	union = append(append(union, s.block...), s.first...)
	slices.Sort(union)
	union = slices.Compact(union)
	edits := map[int]*form.Submission{}
	for k, field := range []string{"ethnicity", "religion", "floor_area_m2", "water_source"} {
		get, set := householdField(field)
		if k >= 2 {
			get, set = householdValue(field)
		}
		for i, sub := range a.baseline(union, 12+uint64(k), get, set) {
			if e, ok := edits[i]; ok {
				v, _ := get(sub)
				set(e, v)
			} else {
				edits[i] = sub
			}
		}
	}
	base := slices.Clone(a.subs)
	for i, sub := range edits {
		base[i] = sub
	}
	baseHs := a.world(t, edits)
	s.worlds[0] = s.newWorld(t, "true", a.subs, a.hs, a.trueCache(t))
	s.worlds[1] = s.newWorld(t, "baseline", base, baseHs, newTestCache(t, a.tree, baseHs))
	return s
}

// householdValue reads and writes a household field.
func householdValue(field string) (func(*form.Submission) (form.Value, bool), func(*form.Submission, form.Value)) {
	get := func(s *form.Submission) (form.Value, bool) {
		v := s.Household[field]
		return v, !v.IsZero()
	}
	set := func(s *form.Submission, v form.Value) { s.Household[field] = v }
	return get, set
}

func (s *dpAttacks) newWorld(t testing.TB, name string, subs []*form.Submission, hs []Household, whole *Cache) *dpWorld {
	a := s.a
	w := &dpWorld{name: name, subs: subs, hs: hs, whole: whole, district: map[area.Code]*Cache{}, subset: map[subsetKey]*Cache{},
		byCommune: map[string]map[area.Code]map[string]float64{}}
	for attr, get := range dpAttributes {
		m := map[area.Code]map[string]float64{}
		for i, sub := range subs {
			if v, ok := get(sub); ok {
				c := a.commune[i]
				if m[c] == nil {
					m[c] = map[string]float64{}
				}
				m[c][v]++
			}
		}
		w.byCommune[attr] = m
	}
	want := map[subsetKey]bool{}
	for _, h := range s.isolated {
		want[subsetKey{h.district, h.v, h.x}] = true
	}
	parts := map[subsetKey][]Household{}
	for i := range hs {
		d := s.district[i]
		parts[subsetKey{district: d}] = append(parts[subsetKey{district: d}], hs[i])
		for _, v := range isolatingVars {
			x, _ := hhCode(v)(subs[i])
			if k := (subsetKey{d, v, x}); want[k] {
				parts[k] = append(parts[k], hs[i])
			}
		}
	}
	for k, part := range parts {
		c := newTestCache(t, a.tree, nil)
		if err := c.Append(part, int64(len(hs))); err != nil {
			t.Fatal(err)
		}
		if k.v == "" {
			w.district[k.district] = c
		} else {
			w.subset[k] = c
		}
	}
	return w
}

// agrees checks that cache c, a part of world w, releases request r as
// w's whole cache does (with the protection on or off), and that with the
// noise removed the release is the true table.
func (w *dpWorld) agrees(t testing.TB, c *Cache, r *Request, proj Project, pt DPPoint, off bool) {
	t.Helper()
	p := mustCompileDP(t, c, r, proj, pt)
	x := dpRelease(t, c, p, off)
	y := dpRelease(t, w.whole, mustCompileDP(t, w.whole, r, proj, pt), off)
	if x.ResultDigest() != y.ResultDigest() {
		t.Fatalf("%s world: a part of the census released %s otherwise than the whole census", w.name, r.Filter)
	}
	if !off {
		return
	}
	truth, _, err := c.aggregate(p)
	if err != nil {
		t.Fatal(err)
	}
	for i, cell := range x.Cells {
		if cell.Count != truth[i].n || (p.op == "sum" && cell.Value != float64(truth[i].milli/1000)) {
			t.Fatalf("%s world: with the noise removed, cell %d of %s is not the true cell", w.name, i, p.Describe())
		}
	}
}

func (s *dpAttacks) districtOf(i int) area.Code { return s.district[i] }

// isolatedHouseholds picks attackTargets households, with a seed, among
// those that are the only one of their EA with their value x of some
// isolating variable, x held by at least 100 other households of the
// district (the variable where it is held by most is taken).
func (s *dpAttacks) isolatedHouseholds(t testing.TB) []isolatedHH {
	a := s.a
	code := func(i int, v string) int64 {
		x, _ := a.subs[i].Household[v].Int()
		return x
	}
	type key struct {
		at area.Code
		v  string
		x  int64
	}
	n := map[key]int{}
	for i, sub := range a.subs {
		for _, v := range isolatingVars {
			n[key{area.Code(sub.Area), v, code(i, v)}]++
			n[key{s.districtOf(i), v, code(i, v)}]++
		}
	}
	var out []isolatedHH
	for i, sub := range a.subs {
		ea := area.Code(sub.Area)
		best, pad := "", 0
		for _, v := range isolatingVars {
			x := code(i, v)
			if x == 0 || n[key{ea, v, x}] != 1 {
				continue
			}
			if m := n[key{s.districtOf(i), v, x}] - 1; m >= 100 && m > pad {
				best, pad = v, m
			}
		}
		if best == "" {
			continue
		}
		h := isolatedHH{hh: i, v: best, x: strconv.FormatInt(code(i, best), 10), district: s.districtOf(i), ea: ea}
		for _, c := range a.schema.vars[best].values {
			if cs := strconv.FormatInt(c, 10); cs != h.x {
				h.notX = append(h.notX, cs)
			}
		}
		for _, comm := range a.tree.Children(h.district) {
			if comm != a.commune[i] {
				h.rest = append(h.rest, string(comm))
				continue
			}
			for _, e := range a.tree.Children(comm) {
				if e != ea {
					h.rest = append(h.rest, string(e))
				}
			}
		}
		out = append(out, h)
	}
	rng := rand.New(rand.NewPCG(attackSeed, 0x15014ed))
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	if len(out) < attackTargets {
		t.Fatalf("only %d isolated households; the attacks need %d", len(out), attackTargets)
	}
	return out[:attackTargets]
}

// The attributes the attacks guess, as the priors read them.
var dpAttributes = map[string]func(*form.Submission) (string, bool){
	"ethnicity":     headCode("ethnicity"),
	"religion":      headCode("religion"),
	"water_source":  hhCode("water_source"),
	"floor_area_m2": floorArea,
}

// floorArea reads a household's floor area in whole m², as a dp sum
// adds it.
func floorArea(s *form.Submission) (string, bool) {
	x, ok := s.Household["floor_area_m2"].Float()
	return strconv.FormatInt(int64(math.Round(x)), 10), ok
}

// prior is what the researcher knows of household i's attribute before
// any table: its value over the other households of i's commune in world
// w, counted.
func (s *dpAttacks) prior(w *dpWorld, i int, attr string) map[string]float64 {
	out := maps.Clone(w.byCommune[attr][s.a.commune[i]])
	if v, ok := dpAttributes[attr](w.subs[i]); ok {
		if out[v]--; out[v] == 0 {
			delete(out, v)
		}
	}
	return out
}

// headCode reads a person field of the household's head (synth gives
// every person of a household the head's ethnicity and religion).
func headCode(field string) func(*form.Submission) (string, bool) {
	return func(s *form.Submission) (string, bool) {
		v, ok := s.Persons[0][field].Int()
		return strconv.FormatInt(v, 10), ok
	}
}

// hhCode reads a household code field.
func hhCode(field string) func(*form.Submission) (string, bool) {
	return func(s *form.Submission) (string, bool) {
		v, ok := s.Household[field].Int()
		return strconv.FormatInt(v, 10), ok
	}
}

// evidence is what the tables say of one candidate value: a difference
// that is N(mu, s2) if the target has the value, N(0, s2) if not.
type evidence struct{ d, s2 float64 }

// bet is the researcher's guess: the candidate of highest posterior, the
// prior being the neighbours' counts plus ½ (every candidate of prior or
// evidence) and the likelihood ratio of each candidate's evidence.
func bet(prior map[string]float64, ev map[string]evidence, mu float64) string {
	cands := slices.Sorted(maps.Keys(prior))
	for v := range ev {
		if _, ok := prior[v]; !ok {
			cands = append(cands, v)
		}
	}
	slices.Sort(cands)
	best, score := "", math.Inf(-1)
	for _, v := range cands {
		sc := math.Log(prior[v] + 0.5)
		if e, ok := ev[v]; ok {
			sc += (mu*e.d - mu*mu/2) / e.s2
		}
		if sc > score {
			best, score = v, sc
		}
	}
	return best
}

// rowCells is a table's inner cells of column col (none: a table of rows
// only), by their first row category.
func rowCells(tab *Table, col ...string) map[string]Cell {
	out := map[string]Cell{}
	for i, c := range tab.Cells {
		r, cc := tab.cellCats(i)
		if r[0] == Margin || !slices.Equal(cc, col) {
			continue
		}
		out[r[0]] = c
	}
	return out
}

// differences combines tables row by row with signs (+1, −1), for the rows
// released in every one of them, with noise variance s2 each.
func differences(tabs []*Table, signs []float64, s2 float64, col ...string) map[string]evidence {
	rows := make([]map[string]Cell, len(tabs))
	for k, tab := range tabs {
		rows[k] = rowCells(tab, col...)
	}
	out := map[string]evidence{}
	for r := range rows[0] {
		var d float64
		ok := true
		for k := range tabs {
			c, has := rows[k][r]
			if !has || c.Suppressed {
				ok = false
				break
			}
			d += signs[k] * float64(c.Count)
		}
		if ok {
			out[r] = evidence{d, s2 * float64(len(tabs))}
		}
	}
	return out
}

// personsOf is how many of a household's persons a dp person table counts
// (the researcher knows the household's size).
func personsOf(s *form.Submission) float64 {
	return float64(min(len(s.Persons), DefaultDPParams().PersonCap))
}

// dpReq is a dp request of project proj at the default ρ.
func dpReq(proj string, unit Unit, rows, cols []string, filter map[string][]string, m Measure) *Request {
	return &Request{Project: proj, Unit: unit, Rows: rows, Cols: cols, Filter: filter, Measure: m, Rho: dpAttackRho, custom: true}
}

var dpCount = Measure{Op: "count"}

// fourRuns runs attack on the two worlds with the protection on and off:
// [on, off][true, baseline].
func (s *dpAttacks) fourRuns(attack func(w *dpWorld, off bool) tally) [2][2]tally {
	var res [2][2]tally
	for oi, off := range []bool{false, true} {
		for wi, w := range s.worlds {
			res[oi][wi] = attack(w, off)
		}
	}
	return res
}

// TestDPAttackMovedCell is the cell that moved (issue 11's weakness 2)
// against dp tables with free filters: religion × sex in the target's
// commune, of persons born in any year, and of persons born in any year
// but the target's; the targets (600) are persons unique in their commune
// by sex and birth year, so the two tables differ by the target alone, in
// the cell of their religion and sex. The researcher bets on the religion
// whose cell moved, weighing the difference of each religion's cells of
// the target's sex (noise variance 2σ², σ = 40 for a person count at
// ρ 0.02) against what the neighbours say.
func TestDPAttackMovedCell(t *testing.T) {
	t.Parallel()
	s := theDPAttacks(t)
	a := s.a
	res := s.fourRuns(func(w *dpWorld, off bool) tally {
		var res tally
		for k, r := range s.moved {
			sub := a.subs[r.hh] // what the researcher knows of the target: sex, birth year, commune
			sexN, _ := personInt(sub, r.p, "sex")
			year, _ := personInt(sub, r.p, "birth_year")
			sex := strconv.FormatInt(sexN, 10)
			comm := a.commune[r.hh]
			c := w.district[s.districtOf(r.hh)]
			free := func(without ...int64) *Request {
				f := map[string][]string{FilterArea: {string(comm)}}
				for y := int64(1900); y <= 2019; y++ {
					if !slices.Contains(without, y) {
						f["birth_year"] = append(f["birth_year"], strconv.FormatInt(y, 10))
					}
				}
				return dpReq(a.proj.ID, Persons, []string{"religion"}, []string{"sex"}, f, dpCount)
			}
			pt := scheduledAt(c.UpTo())
			if k == 0 {
				w.agrees(t, c, free(year), a.proj, pt, off)
			}
			with, without := mustCompileDP(t, c, free(), a.proj, pt), mustCompileDP(t, c, free(year), a.proj, pt)
			s2, _ := dpVariance(t, noiselessIf(with, off))
			ev := differences([]*Table{dpRelease(t, c, with, off), dpRelease(t, c, without, off)}, []float64{1, -1}, s2, sex)
			guess := bet(s.prior(w, r.hh, "religion"), ev, 1)
			code, _ := personInt(sub, r.p, "religion")
			res.add(guess == strconv.FormatInt(code, 10))
		}
		return res
	})
	verdict(t, "dp: cell that moved, free filters (religion of persons unique in commune × sex × birth year)", res[0][0], res[0][1], res[1][0], res[1][1])
}

// noiselessIf is noiseless(p) when off: the variance the release states.
func noiselessIf(p *Plan, off bool) *Plan {
	if off {
		return noiseless(p)
	}
	return p
}

// TestDPAttackTracker is a tracker: three tables of persons by ethnicity
// whose filters are each broad — the target's district; the district
// without the target's value of an isolating variable; the rest of the
// district (its other communes, the commune's other EAs) with that value,
// held by at least 100 households there — and whose combination
// all − not − rest is the households of the target's EA with that value:
// the target alone (600 isolated households). No table has a small
// universe or, mostly, small cells, so the suppression rules do not stop
// it; the noise does. The researcher bets on the ethnicity whose combined
// cells hold the household's persons (variance 3σ², σ = 40), against what
// the neighbours say.
func TestDPAttackTracker(t *testing.T) {
	t.Parallel()
	s := theDPAttacks(t)
	a := s.a
	res := s.fourRuns(func(w *dpWorld, off bool) tally {
		var res tally
		for k, h := range s.isolated {
			c := w.district[h.district]
			pt := scheduledAt(c.UpTo())
			compile := func(f map[string][]string) *Plan {
				return mustCompileDP(t, c, dpReq(a.proj.ID, Persons, []string{"ethnicity"}, nil, f, dpCount), a.proj, pt)
			}
			all := compile(map[string][]string{FilterArea: {string(h.district)}})
			not := compile(map[string][]string{FilterArea: {string(h.district)}, h.v: h.notX})
			rest := compile(map[string][]string{FilterArea: h.rest, h.v: {h.x}})
			if k == 0 {
				w.agrees(t, c, dpReq(a.proj.ID, Persons, []string{"ethnicity"}, nil, map[string][]string{FilterArea: h.rest, h.v: {h.x}}, dpCount), a.proj, pt, off)
			}
			s2, _ := dpVariance(t, noiselessIf(all, off))
			ev := differences([]*Table{dpRelease(t, c, all, off), dpRelease(t, c, not, off), dpRelease(t, c, rest, off)}, []float64{1, -1, -1}, s2)
			guess := bet(s.prior(w, h.hh, "ethnicity"), ev, personsOf(a.subs[h.hh]))
			res.add(guess == strconv.FormatInt(headInt(a.subs[h.hh], "ethnicity"), 10))
		}
		return res
	})
	verdict(t, "dp: tracker (ethnicity of isolated households, three broad tables)", res[0][0], res[0][1], res[1][0], res[1][1])
}

// TestDPAttackAsOfDifferencing is as-of differencing (issue 11's
// weakness 1) between scheduled daily points: the same table — persons
// of the target's commune by ethnicity — at a point just before the
// target's deposit and one just after (the most favourable case: the
// target the only deposit between two points), for 600 consecutive
// deposits. The two releases are two queries (their points differ), with
// independent noise; their difference is the target household's persons
// in its ethnicity's row.
func TestDPAttackAsOfDifferencing(t *testing.T) {
	t.Parallel()
	s := theDPAttacks(t)
	a := s.a
	res := s.fourRuns(func(w *dpWorld, off bool) tally {
		var res tally
		for k, i := range s.block {
			comm := a.commune[i]
			c := w.district[s.districtOf(i)]
			at := func(asOf int64) *Plan {
				return mustCompileDP(t, c, dpReq(a.proj.ID, Persons, []string{"ethnicity"}, nil, map[string][]string{FilterArea: {string(comm)}}, dpCount), a.proj, scheduledAt(asOf))
			}
			before, after := at(int64(i)), at(int64(i+1))
			if k == 0 {
				w.agrees(t, c, dpReq(a.proj.ID, Persons, []string{"ethnicity"}, nil, map[string][]string{FilterArea: {string(comm)}}, dpCount), a.proj, scheduledAt(int64(i+1)), off)
			}
			if before.Query() == after.Query() {
				t.Fatal("two points are one query")
			}
			s2, _ := dpVariance(t, noiselessIf(before, off))
			ev := differences([]*Table{dpRelease(t, c, after, off), dpRelease(t, c, before, off)}, []float64{1, -1}, s2)
			guess := bet(s.prior(w, i, "ethnicity"), ev, personsOf(a.subs[i]))
			res.add(guess == strconv.FormatInt(headInt(a.subs[i], "ethnicity"), 10))
		}
		return res
	})
	verdict(t, "dp: as-of differencing between daily points (ethnicity of households)", res[0][0], res[0][1], res[1][0], res[1][1])
}

// TestDPAttackSums is sums (issue 11's weakness 3) with a filter: the sum
// of floor area by EA over the target's commune, with and without
// households of the target's value of an isolating variable; in the
// target's EA the two differ by the target's floor area alone (600
// isolated households). The researcher bets on the floor area, in whole
// m² (what a dp sum adds up), of highest posterior: the neighbours' floor
// areas as the prior, the difference of the two sums as evidence
// (variance 2σ², σ ≈ 70,711 m² for a household sum of a variable bounded
// by 10,000 at ρ/2 = 0.01). A target is read when the bet is its floor
// area to the m².
func TestDPAttackSums(t *testing.T) {
	t.Parallel()
	s := theDPAttacks(t)
	a := s.a
	m := Measure{Op: "sum", Var: "floor_area_m2"}
	res := s.fourRuns(func(w *dpWorld, off bool) tally {
		var res tally
		for k, h := range s.isolated {
			comm := a.commune[h.hh]
			c := w.district[h.district]
			pt := scheduledAt(c.UpTo())
			with := mustCompileDP(t, c, dpReq(a.proj.ID, Households, []string{"ea"}, nil, map[string][]string{FilterArea: {string(comm)}}, m), a.proj, pt)
			without := mustCompileDP(t, c, dpReq(a.proj.ID, Households, []string{"ea"}, nil, map[string][]string{FilterArea: {string(comm)}, h.v: h.notX}, m), a.proj, pt)
			if k == 0 {
				w.agrees(t, c, dpReq(a.proj.ID, Households, []string{"ea"}, nil, map[string][]string{FilterArea: {string(comm)}, h.v: h.notX}, m), a.proj, pt, off)
			}
			_, s2 := dpVariance(t, noiselessIf(with, off))
			x, y := rowCells(dpRelease(t, c, with, off))[string(h.ea)], rowCells(dpRelease(t, c, without, off))[string(h.ea)]
			// The posterior over whole m² from 1 to 10,000: the
			// neighbours' counts (plus 1/100) times the likelihood of the
			// difference of the two sums (variance 2σ²).
			var logPrior [10001]float64
			for i := range logPrior {
				logPrior[i] = math.Log(0.01)
			}
			for v, n := range s.prior(w, h.hh, "floor_area_m2") {
				if x, err := strconv.Atoi(v); err == nil && x >= 1 && x <= 10000 {
					logPrior[x] = math.Log(n + 0.01)
				}
			}
			guess, score := 0, math.Inf(-1)
			for v := 1; v <= 10000; v++ {
				sc := logPrior[v]
				if !x.Suppressed && !y.Suppressed {
					d := x.Value - y.Value - float64(v)
					sc -= d * d / (4 * s2)
				}
				if sc > score {
					guess, score = v, sc
				}
			}
			truth, _ := floorArea(a.subs[h.hh])
			res.add(strconv.Itoa(guess) == truth)
		}
		return res
	})
	verdict(t, "dp: sums with a filter (floor area of isolated households, to the m²)", res[0][0], res[0][1], res[1][0], res[1][1])
}

// TestDPAttackThresholdProbe is threshold probing (issue 11's weakness
// 4) against dp's suppression: a table whose released total is below the
// minimum universe (100) has every cell suppressed, and the researcher
// uses that as an oracle. Targets are 600 households first deposited in
// their EA (until the EA's second deposit it holds them alone). To ask
// "is the target's ethnicity v?" the researcher counts heads of
// household (relationship 1: one a household) of ethnicity v in a pool
// of other EAs: doubling and halving over pool prefixes finds one that
// reaches 100 before the EA's second deposit, halving over as-of points
// the deposit at which it does, so that just before it the pool holds
// 99; the pool with the target's EA is then released if and only if the
// target's head is of ethnicity v. The researcher checks the oracle
// before trusting it (the pool alone suppressed just before the crossing
// and released at it; the pool with the target's EA suppressed before
// the target's deposit and released at the crossing), asks about the
// neighbours' likeliest ethnicity, then if not about the next one, up to
// dpQuestions, and bets on the first confirmed, else on the likeliest not
// ruled out (one question costs about 30 probes, each a table). Under dp the
// suppression reads the noisy total; with the noise removed it reads the
// true count, as issue 11's universe check did.
func TestDPAttackThresholdProbe(t *testing.T) {
	t.Parallel()
	s := theDPAttacks(t)
	var probes [2][2]probeStats
	res := s.fourRuns(func(w *dpWorld, off bool) tally {
		r, n := s.thresholdProbe(t, w, off)
		probes[b2i(off)][slices.Index(s.worlds[:], w)] = n
		return r
	})
	t.Logf("probes asked (questions the oracle answered): protected %d (%d) and %d (%d), protection off %d (%d) and %d (%d)",
		probes[0][0].probes, probes[0][0].tested, probes[0][1].probes, probes[0][1].tested, probes[1][0].probes, probes[1][0].tested, probes[1][1].probes, probes[1][1].tested)
	verdict(t, "dp: threshold probing of the minimum universe (ethnicity of households, first in their EA)", res[0][0], res[0][1], res[1][0], res[1][1])
}

// thresholdProbe runs TestDPAttackThresholdProbe's attack on world w. The
// probes of a target ask as of points before its EA's second deposit
// only, so they run on a cache holding the deposits up to there, which
// answers them as the whole census would: targets are taken in that order
// and the cache grows.
func (s *dpAttacks) thresholdProbe(t testing.TB, w *dpWorld, off bool) (tally, probeStats) {
	a := s.a
	targets := slices.Clone(s.first)
	slices.SortFunc(targets, func(x, y int) int { return cmp.Compare(a.windowEnd(x), a.windowEnd(y)) })
	c := newTestCache(t, a.tree, nil)
	probes, tested := 0, 0
	answered := func(areas []string, v string, asOf int64) bool {
		probes++
		p := mustCompileDP(t, c, dpReq(a.proj.ID, Persons, []string{"sex"}, nil,
			map[string][]string{FilterArea: areas, "relationship": {"1"}, "ethnicity": {v}}, dpCount), a.proj, scheduledAt(asOf))
		tab := dpRelease(t, c, p, off)
		return !tab.Cells[len(tab.Cells)-1].Suppressed
	}
	eas := areasAt(a.tree, area.EA)
	var res tally
	for _, i := range targets {
		ea := area.Code(a.subs[i].Area)
		at, end := int64(i+1), int64(a.windowEnd(i))
		if up := max(c.UpTo(), 0); up < end {
			if err := c.Append(w.hs[up:end], end); err != nil {
				t.Fatal(err)
			}
		}
		pool := newPool(a.tree, slices.DeleteFunc(slices.Clone(eas), func(x area.Code) bool { return x == ea }))
		// is reports whether the target's ethnicity is v; false if the
		// oracle cannot tell.
		is := func(v string) (yes, ok bool) {
			if answered(pool.prefix(1), v, at) {
				return false, false
			}
			hi := 1
			for hi < pool.len() && !answered(pool.prefix(hi), v, end) {
				hi = min(2*hi, pool.len())
			}
			if hi == pool.len() && !answered(pool.prefix(hi), v, end) {
				return false, false
			}
			lo := hi / 2
			j := lo + 1 + sort.Search(hi-lo-1, func(k int) bool { return answered(pool.prefix(lo+1+k), v, end) })
			if answered(pool.prefix(j), v, at) {
				return false, false
			}
			cross := at + 1 + int64(sort.Search(int(end-at), func(k int) bool { return answered(pool.prefix(j), v, at+1+int64(k)) }))
			if cross > end {
				return false, false
			}
			with := append(pool.prefix(j), string(ea))
			// The checks: what must hold if the releases follow the counts.
			if answered(pool.prefix(j), v, cross-1) || !answered(pool.prefix(j), v, cross) ||
				answered(with, v, at-1) || !answered(with, v, cross) {
				return false, false
			}
			return answered(with, v, cross-1), true
		}
		prior := s.prior(w, i, "ethnicity")
		cands := slices.Sorted(maps.Keys(prior))
		slices.SortStableFunc(cands, func(x, y string) int { return cmp.Compare(prior[y], prior[x]) })
		for q := 0; q < dpQuestions && len(cands) > 1; q++ {
			yes, ok := is(cands[0])
			if ok {
				tested++
			}
			if !ok || yes {
				break
			}
			cands = cands[1:]
		}
		res.add(cands[0] == strconv.FormatInt(headInt(a.subs[i], "ethnicity"), 10))
	}
	return res, probeStats{probes, tested}
}

// probeStats counts a threshold attack's probes and the questions its
// oracle answered (its checks passed).
type probeStats struct{ probes, tested int }

// twoTables is the pair of household tables the project and repeat
// attacks ask, by water source: the target's district and the rest of it
// (its other communes, the commune's other EAs), both restricted to the
// target's value of its isolating variable (at least 100 households); the
// first minus the second is the target household alone.
func (s *dpAttacks) twoTables(proj string, h isolatedHH) (*Request, *Request) {
	return dpReq(proj, Households, []string{"water_source"}, nil, map[string][]string{FilterArea: {string(h.district)}, h.v: {h.x}}, dpCount),
		dpReq(proj, Households, []string{"water_source"}, nil, map[string][]string{FilterArea: h.rest, h.v: {h.x}}, dpCount)
}

// averaged is the researcher's evidence from repeated releases of the
// pair: for each water source, the mean over the distinct releases of
// the difference of its two released cells (0 when suppressed), with
// variance 2σ² over their number. Identical releases count once: they
// carry one draw of noise.
func averaged(pairs [][2]*Table, s2 float64) map[string]evidence {
	seen := map[[2]string]bool{}
	sum := map[string]float64{}
	n := 0
	for _, pr := range pairs {
		k := [2]string{pr[0].ResultDigest(), pr[1].ResultDigest()}
		if seen[k] {
			continue
		}
		seen[k] = true
		n++
		x, y := rowCells(pr[0]), rowCells(pr[1])
		for r, c := range x {
			sum[r] += float64(released(c) - released(y[r]))
		}
	}
	out := map[string]evidence{}
	for r, d := range sum {
		out[r] = evidence{d / float64(n), 2 * s2 / float64(n)}
	}
	return out
}

// TestDPAttackTwoProjects is one researcher on two projects over the same
// areas (issue 11's weakness 5): the same pair of tables asked in each
// project, the two releases averaged. The query leaves out the project,
// so the seed rule gives both projects the same noise, and the average is
// one release: each pair of releases must be identical. Without the
// protection (the seed taking the project too) the two releases carry
// independent noise.
//
// Two draws halve the noise variance only: at ρ 0.02 (σ = 5 for a
// household count) the average does not read a target either, so this
// test checks the bound with the protection and that the releases are
// identical — which fails if the seed takes the project — and logs the
// attack without the protection, which does not show a 15-point gain.
func TestDPAttackTwoProjects(t *testing.T) {
	t.Parallel()
	s := theDPAttacks(t)
	a := s.a
	second := Project{ID: "second", Areas: a.proj.Areas, Variables: a.proj.Variables}
	var differ [2]int
	res := s.fourRuns(func(w *dpWorld, off bool) tally {
		var res tally
		nd := 0
		for k, h := range s.isolated {
			c := w.subset[subsetKey{h.district, h.v, h.x}]
			pt := scheduledAt(c.UpTo())
			var pairs [][2]*Table
			var s2 float64
			for _, proj := range []Project{a.proj, second} {
				r1, r2 := s.twoTables(proj.ID, h)
				if k == 0 {
					w.agrees(t, c, r1, proj, pt, false)
					w.agrees(t, c, r2, proj, pt, false)
				}
				p1, p2 := mustCompileDP(t, c, r1, proj, pt), mustCompileDP(t, c, r2, proj, pt)
				s2, _ = dpVariance(t, p1)
				seed1, seed2 := dpSeed(p1), dpSeed(p2)
				if off {
					seed1, seed2 = dpSeedWith(p1, []byte(proj.ID)), dpSeedWith(p2, []byte(proj.ID))
				}
				pairs = append(pairs, [2]*Table{mustRunDP(t, c, p1, seed1), mustRunDP(t, c, p2, seed2)})
			}
			if pairs[0][0].ResultDigest() != pairs[1][0].ResultDigest() || pairs[0][1].ResultDigest() != pairs[1][1].ResultDigest() {
				nd++
			}
			guess := bet(s.prior(w, h.hh, "water_source"), averaged(pairs, s2), 1)
			truth, _ := hhCode("water_source")(a.subs[h.hh])
			res.add(guess == truth)
		}
		differ[b2i(off)] += nd
		return res
	})
	prot, protBase, off, offBase := res[0][0], res[0][1], res[1][0], res[1][1]
	t.Logf("dp: two projects (water source of isolated households): protected %.1f%% (baseline %.1f%%), protection off %.1f%% (baseline %.1f%%), %d targets; releases that differ between the projects: %d protected, %d off",
		prot.pct(), protBase.pct(), off.pct(), offBase.pct(), prot.n, differ[0], differ[1])
	if prot.n < 500 {
		t.Fatalf("only %d targets", prot.n)
	}
	if differ[0] != 0 {
		t.Errorf("two projects asking the same tables got different releases for %d of %d targets' pairs (in the two worlds): averaging them gets closer to the truth", differ[0], 2*prot.n)
	}
	if differ[1] == 0 {
		t.Error("with the project in the seed the two projects' releases never differ: the test no longer shows what the seed rule stops")
	}
	if g := prot.pct() - protBase.pct(); g > maxGain {
		t.Errorf("with the protection the attack is right %.1f points more often than on the baseline world (at most %.0f)", g, maxGain)
	}
}

// rewrites are equivalent ways of writing a request: the filter's codes
// spelt otherwise or repeated, the areas named otherwise (a commune as its
// EAs, with one of them again, in another order), and either format.
func (s *dpAttacks) rewrites(r *Request) []struct {
	r      *Request
	format string
} {
	var out []struct {
		r      *Request
		format string
	}
	areas := r.Filter[FilterArea]
	var asEAs []string
	for _, code := range areas {
		if lv, _ := s.a.tree.Get(area.Code(code)); lv.Level == area.Commune {
			for _, e := range s.a.tree.Children(area.Code(code)) {
				asEAs = append(asEAs, string(e))
			}
		} else {
			asEAs = append(asEAs, code)
		}
	}
	variants := []func(f map[string][]string){
		func(f map[string][]string) {},
		func(f map[string][]string) {
			for k, vs := range f {
				if k != FilterArea {
					f[k] = []string{"0" + vs[0], "+" + vs[0]}
				}
			}
		},
		func(f map[string][]string) { f[FilterArea] = slices.Clone(asEAs) },
		func(f map[string][]string) {
			f[FilterArea] = append(slices.Clone(areas), asEAs[len(asEAs)-1])
			slices.Reverse(f[FilterArea])
		},
		func(f map[string][]string) {
			x := slices.Clone(asEAs)
			slices.Reverse(x)
			f[FilterArea] = append(x, asEAs[0])
		},
	}
	for _, format := range []string{FormatJSON, FormatCSV} {
		for _, v := range variants {
			f := map[string][]string{}
			for k, vs := range r.Filter {
				f[k] = slices.Clone(vs)
			}
			v(f)
			q := *r
			q.Filter = f
			out = append(out, struct {
				r      *Request
				format string
			}{&q, format})
		}
	}
	return out
}

// TestDPAttackRepeats is repeats and equivalent rewrites: the researcher
// asks the pair of tables of the two-projects attack dpRepeats (100)
// times each, in turn in each of ten equivalent ways (rewrites), and
// averages the releases. Every rewrite is the same canonical query, so
// the seed rule gives every repeat the same noise: the 100 releases are
// one, and the average reads nothing (every rewrite must compile to the
// same query and every release of a table must be the same). Without the
// protection (a fresh seed per repeat) the average of 100 independent
// releases has a noise of σ/10 (σ = 5 for a household count), and reads
// the target.
func TestDPAttackRepeats(t *testing.T) {
	t.Parallel()
	s := theDPAttacks(t)
	a := s.a
	var drew, redraws [2]int
	res := s.fourRuns(func(w *dpWorld, off bool) tally {
		var res tally
		fresh, redrawn, rewritten := 0, 0, 0
		for k, h := range s.isolated {
			c := w.subset[subsetKey{h.district, h.v, h.x}]
			pt := scheduledAt(c.UpTo())
			r1, r2 := s.twoTables(a.proj.ID, h)
			if k == 0 {
				w.agrees(t, c, r1, a.proj, pt, false)
				w.agrees(t, c, r2, a.proj, pt, false)
			}
			var plans [2][]*Plan
			for k, r := range []*Request{r1, r2} {
				for _, rw := range s.rewrites(r) {
					p, err := c.CompileDP(rw.r, a.proj, pt, DefaultDPParams(), rw.format)
					if err != nil {
						t.Fatal(err)
					}
					plans[k] = append(plans[k], p)
				}
			}
			s2, _ := dpVariance(t, plans[0][0])
			// Each rewrite's plan is released once per seed: RunDP is
			// deterministic, so asking the same plan with the same seed
			// again is that release again.
			type run struct {
				p    *Plan
				seed [32]byte
			}
			memo := map[run]*Table{}
			get := func(p *Plan, seed [32]byte) *Table {
				if tab, ok := memo[run{p, seed}]; ok {
					return tab
				}
				tab := mustRunDP(t, c, p, seed)
				memo[run{p, seed}] = tab
				return tab
			}
			pairs := make([][2]*Table, dpRepeats)
			distinct := [2]map[string]bool{{}, {}}
			for k := range dpRepeats {
				for j := range 2 {
					p := plans[j][k%len(plans[j])]
					seed := dpSeed(p)
					if off {
						var n [8]byte
						binary.BigEndian.PutUint64(n[:], uint64(k))
						seed = dpSeedWith(p, n[:])
					}
					pairs[k][j] = get(p, seed)
					distinct[j][pairs[k][j].ResultDigest()] = true
				}
			}
			if len(distinct[0]) != 1 || len(distinct[1]) != 1 {
				redrawn++
			}
			fresh += len(distinct[0]) + len(distinct[1])
			for j := range 2 {
				for _, p := range plans[j][1:] {
					if p.Query() != plans[j][0].Query() {
						rewritten++
					}
				}
			}
			guess := bet(s.prior(w, h.hh, "water_source"), averaged(pairs, s2), 1)
			truth, _ := hhCode("water_source")(a.subs[h.hh])
			res.add(guess == truth)
		}
		drew[b2i(off)] += fresh
		redraws[b2i(off)] += redrawn
		if rewritten > 0 {
			t.Errorf("%s world: %d equivalent rewrites of a table compiled to another query: they draw new noise", w.name, rewritten)
		}
		return res
	})
	t.Logf("different releases among %d asks of 2 tables × %d targets × 2 worlds: %d protected, %d off", dpRepeats, len(s.isolated), drew[0], drew[1])
	if redraws[0] > 0 {
		t.Errorf("for %d of %d targets' tables (in the two worlds), asking again or another equivalent way released other values: averaging them reads the target", redraws[0], 2*len(s.isolated))
	}
	verdict(t, fmt.Sprintf("dp: %d repeats and equivalent rewrites, averaged (water source of isolated households)", dpRepeats), res[0][0], res[0][1], res[1][0], res[1][1])
}
