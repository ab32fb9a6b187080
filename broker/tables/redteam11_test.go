package tables

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/sdc"
)

// Red team of issue 11 (engine level). Each test is an attack that
// succeeds today and FAILS; it passes once the weakness it names is
// fixed.

// rt11Tree: two provinces; P1 holds communes C1 and C2 (district D1),
// P2 holds C3. Every EA plans 25,000 households, so every table of the
// catalogue is permitted at every level (religion needs 20,000 at a
// province).
func rt11Tree(t testing.TB) *area.Tree {
	t.Helper()
	csv := "code,parent,level,name,planned_households\n" +
		"VN,,nation,Nation,\n" +
		"P1,VN,province,P1,\n" +
		"P2,VN,province,P2,\n" +
		"D1,P1,district,D1,\n" +
		"D2,P2,district,D2,\n" +
		"C1,D1,commune,C1,\n" +
		"C2,D1,commune,C2,\n" +
		"C3,D2,commune,C3,\n" +
		"E1,C1,ea,E1,25000\n" +
		"E2,C2,ea,E2,25000\n" +
		"E3,C3,ea,E3,25000\n"
	tr, err := area.Load(strings.NewReader(csv))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// rt11Commune is how religion and dwelling type are distributed in a
// commune (clustered: each commune has its own mix, as in Viet Nam).
type rt11Commune struct {
	ea        area.Code
	religion  []float64 // P(code 1+i)
	dwelling  []float64 // P(code 1+i)
	household int       // households at the start
}

var rt11Communes = []rt11Commune{
	{"E1", []float64{.30, .45, .15, .05, .03, .02}, []float64{.10, .55, .25, .07, .03}, 2000},
	{"E2", []float64{.25, .15, .60}, []float64{.60, .30, .10}, 1500},
	{"E3", []float64{.40, .10, 0, .50}, []float64{.20, .20, .20, .20, .20}, 2000},
}

func rt11Draw(r *rand.Rand, p []float64) int {
	x := r.Float64()
	for i, q := range p {
		if x < q {
			return i + 1
		}
		x -= q
	}
	return len(p)
}

// rt11World deposits households into a cache one by one.
type rt11World struct {
	t    testing.TB
	c    *Cache
	r    *rand.Rand
	next int64
	seed int
	// alive are C1's current households: audit index → analytic part.
	alive map[int64][]byte
}

func (w *rt11World) household(ea area.Code, religion, dwelling int, supersedes int64, analyticPart []byte) (Household, []byte) {
	w.seed++
	if analyticPart == nil {
		n := 1 + w.r.IntN(5)
		var ps []map[string]int
		for i := range n {
			rel := 2
			if i == 0 {
				rel = 1
			}
			ps = append(ps, map[string]int{"sex": 1 + w.r.IntN(2), "birth_year": 1940 + w.r.IntN(75), "birth_month": 1 + w.r.IntN(12), "relationship": rel, "religion": religion})
		}
		analyticPart = analytic(map[string]int{"dwelling_type": dwelling}, ps...)
	}
	h := Household{AuditIndex: w.next, SupersedesIndex: supersedes, EA: string(ea), Key: testKey(w.seed, 0), Analytic: analyticPart}
	persons := strings.Count(string(analyticPart), `"relationship"`)
	for p := range persons {
		h.PersonKeys = append(h.PersonKeys, testKey(w.seed, p+1))
	}
	w.next++
	return h, analyticPart
}

func (w *rt11World) append(hs ...Household) {
	w.t.Helper()
	if err := w.c.Append(hs, w.next-1); err != nil {
		w.t.Fatal(err)
	}
}

// TestRedTeam11CorrectionsCountTowardK is the as-of differencing attack
// through the k-rule's count of corrections.
//
// The k-rule counts a supersession as a changed household, whatever it
// changed. Corrections of identifying fields only (a name's spelling, a
// phone number, an address: the commonest corrections of a census) are
// re-deposits whose analytic part is byte for byte the same. So when 100
// households of a commune are corrected that way and one new household
// (the target) arrives, the commune advances — 101 "changed households" —
// but every table's true counts differ between the two points by the
// target's household alone. The corrected households get new record keys,
// so the noise of the cells they touch is drawn again; the difference of
// each cell is the target's contribution plus the difference of two
// independent draws (variance 2, never more than 4). Over the levels
// that see the change (the commune, its district, province and the
// nation for a commune-level table; the province and the nation for
// religion, in a week when the province's other communes were kept) and
// the margins (perturbed from their own contributors, so independently
// again), a likelihood under the published noise distribution picks the
// target's category out.
//
// Measured over 400 targets, each the one new household of a point whose
// other 100 changes are such corrections: religion (from
// population_religion_sex at the province and the nation) and dwelling
// type (households_dwelling_type at commune, district, province and
// nation) against the commune's majority as the guess without the
// tables. The acceptance of issue 11 allows the attack 5 points over that.
//
// Suggested fix: count a supersession toward k only if its analytic part
// differs from the one it replaces — better, per variable, since a
// correction of floor area is no change to a table of religion — and let
// a correction that changes nothing analytic keep its predecessor's
// record keys (key the record on the household's first submission), so
// that it neither moves the noise nor counts.
func TestRedTeam11CorrectionsCountTowardK(t *testing.T) {
	tr := rt11Tree(t)
	s, err := NewSchema(form.Default())
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCache(s, tr)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := StandardCatalogue(s, 0)
	if err != nil {
		t.Fatal(err)
	}
	proj := Project{ID: "p", Areas: []string{"VN"}, Variables: s.Variables()}
	params := sdc.DefaultParams()
	w := &rt11World{t: t, c: c, r: rand.New(rand.NewPCG(11, 2019)), next: 1, alive: map[int64][]byte{}}
	var c1 []int64 // C1's current households, by audit index
	for _, cm := range rt11Communes {
		var hs []Household
		for range cm.household {
			h, a := w.household(cm.ea, rt11Draw(w.r, cm.religion), rt11Draw(w.r, cm.dwelling), -1, nil)
			hs = append(hs, h)
			if cm.ea == "E1" {
				c1 = append(c1, h.AuditIndex)
				w.alive[h.AuditIndex] = a
			}
		}
		w.append(hs...)
	}
	prev, rep, err := c.Freeze(nil, area.Commune, DefaultPointK)
	if err != nil || rep.Advanced != 3 {
		t.Fatalf("first point: %+v %v", rep, err)
	}
	table := func(id string, at area.Code, ps *PointState) *Table {
		t.Helper()
		p, err := c.CompileStandard(cat, StandardRequest{Project: "p", Table: id, Area: at, Point: "x"}, proj, ps, ps.Digest(), params, FormatJSON)
		if err != nil {
			t.Fatalf("%s at %s: %v", id, at, err)
		}
		return mustRun(t, c, p)
	}
	// The attacker's decoder: the noise of a cell of count ≥ js is public
	// (P(0) = 1/2, P(±1) = 1/6, P(±2) = 1/12), so the change of a cell
	// whose contributors were redrawn is the target's contribution plus
	// the difference of two such draws. loglik scores the hypothesis
	// "the target adds s[r][k] to cell (r, k)" against the observed
	// changes, cells suppressed in either release left out; the prior is
	// the commune's mix (what the attacker would guess without tables).
	one := map[int64]float64{-2: 1. / 12, -1: 1. / 6, 0: .5, 1: 1. / 6, 2: 1. / 12}
	diff := map[int64]float64{}
	for a, pa := range one {
		for b, pb := range one {
			diff[a-b] += pa * pb
		}
	}
	loglik := func(a, b *Table, s func(r, k int) int64) float64 {
		width := b.Plan.width()
		var ll float64
		for r := range b.Plan.R + 1 {
			for k := range width {
				x, y := a.Cells[r*width+k], b.Cells[r*width+k]
				if x.Suppressed || y.Suppressed {
					continue
				}
				ll += math.Log(max(diff[y.Count-x.Count-s(r, k)], 1e-6))
			}
		}
		return ll
	}
	decode := func(prior []float64, tabs [][2]*Table, s func(cat, r, k int) int64) int {
		best, bestLL := 0, math.Inf(-1)
		for cat := range prior {
			if prior[cat] == 0 {
				continue
			}
			ll := math.Log(prior[cat])
			for _, ab := range tabs {
				ll += loglik(ab[0], ab[1], func(r, k int) int64 { return s(cat, r, k) })
			}
			if ll > bestLL {
				best, bestLL = cat, ll
			}
		}
		return best + 1
	}

	const targets = 400
	var relRight, dwRight, relBase, dwBase int
	c1Rel, c1Dw := rt11Communes[0].religion, rt11Communes[0].dwelling
	for range targets {
		// 100 corrections of identifying fields only: the same analytic
		// part, re-deposited (new submission, new record keys).
		var batch []Household
		w.r.Shuffle(len(c1), func(i, j int) { c1[i], c1[j] = c1[j], c1[i] })
		for i := range DefaultPointK {
			old := c1[i]
			h, a := w.household("E1", 0, 0, old, w.alive[old])
			delete(w.alive, old)
			w.alive[h.AuditIndex] = a
			c1[i] = h.AuditIndex
			batch = append(batch, h)
		}
		// The target: one new household. The attacker knows its
		// composition (how many men and women: population_head_age_sex
		// of the commune at the two points shows it the same way) and
		// wants its religion and dwelling type.
		rel, dw := rt11Draw(w.r, c1Rel), rt11Draw(w.r, c1Dw)
		h, a := w.household("E1", rel, dw, -1, nil)
		men := int64(strings.Count(string(a), `"sex":1`))
		women := int64(strings.Count(string(a), `"sex":2`))
		c1 = append(c1, h.AuditIndex)
		w.alive[h.AuditIndex] = a
		batch = append(batch, h)
		w.append(batch...)

		next, rep, err := c.Freeze(prev, area.Commune, DefaultPointK)
		if err != nil {
			t.Fatal(err)
		}
		relBase += b2i(rel == 2) // C1's majority: Buddhism, dwelling type 2
		dwBase += b2i(dw == 2)
		if rep.Advanced != 1 {
			// The fix: C1 is kept, the two points show the same C1 and
			// the attacker is left with the majority guess.
			relRight += b2i(rel == 2)
			dwRight += b2i(dw == 2)
			prev = next
			continue
		}
		var relTabs, dwTabs [][2]*Table
		for _, at := range []area.Code{"P1", "VN"} {
			relTabs = append(relTabs, [2]*Table{table("population_religion_sex", at, prev), table("population_religion_sex", at, next)})
		}
		for _, at := range []area.Code{"C1", "D1", "P1", "VN"} {
			dwTabs = append(dwTabs, [2]*Table{table("households_dwelling_type", at, prev), table("households_dwelling_type", at, next)})
		}
		// religion_major's rows are codes 1-6 then other; sex columns
		// male, female, margin; the last row is the margin over
		// religions, which the target enters whatever its religion.
		R := relTabs[0][1].Plan.R
		relGuess := decode(c1Rel, relTabs, func(cat, r, k int) int64 {
			if r != cat && r != R {
				return 0
			}
			return [3]int64{men, women, men + women}[k]
		})
		dwR := dwTabs[0][1].Plan.R
		dwGuess := decode(c1Dw, dwTabs, func(cat, r, k int) int64 {
			return b2i64(r == cat || r == dwR)
		})
		relRight += b2i(relGuess == rel)
		dwRight += b2i(dwGuess == dw)
		prev = next
	}
	pct := func(n int) float64 { return 100 * float64(n) / targets }
	t.Logf("religion of a new household: attack %.1f%%, commune majority %.1f%%; dwelling type: attack %.1f%%, majority %.1f%% (%d targets, each the one new household among %d identifying-only corrections)",
		pct(relRight), pct(relBase), pct(dwRight), pct(dwBase), targets, DefaultPointK)
	if pct(relRight) > pct(relBase)+5 || pct(dwRight) > pct(dwBase)+5 {
		t.Errorf("the k-rule counts corrections that change nothing analytic: two points 'differ by ≥ %d households' but their tables differ by one, whose religion comes back %.1f%% right (majority guess %.1f%%) and dwelling type %.1f%% (majority %.1f%%)",
			DefaultPointK, pct(relRight), pct(relBase), pct(dwRight), pct(dwBase))
	}
}

func b2i64(b bool) int64 { return int64(b2i(b)) }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
