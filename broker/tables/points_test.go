package tables

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/sdc"
)

// pointTree is a nation of one province, two districts and three
// communes of two EAs each.
func pointTree(t testing.TB) *area.Tree {
	t.Helper()
	csv := "code,parent,level,name,planned_households\n" +
		"VN,,nation,Nation,\n" +
		"P1,VN,province,P1,\n" +
		"D1,P1,district,D1,\n" +
		"D2,P1,district,D2,\n" +
		"C1,D1,commune,C1,\n" +
		"C2,D1,commune,C2,\n" +
		"C3,D2,commune,C3,\n" +
		"E11,C1,ea,E11,150\n" +
		"E12,C1,ea,E12,150\n" +
		"E21,C2,ea,E21,150\n" +
		"E22,C2,ea,E22,150\n" +
		"E31,C3,ea,E31,150\n" +
		"E32,C3,ea,E32,150\n"
	tr, err := area.Load(strings.NewReader(csv))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// pointLog deposits households one at a time into a cache, at audit
// indexes 1, 2, 3, …
type pointLog struct {
	t    testing.TB
	c    *Cache
	next int64
	seed int
}

func newPointLog(t testing.TB) *pointLog {
	return &pointLog{t: t, c: newTestCache(t, pointTree(t), nil), next: 1}
}

// deposit adds n households to ea (supersedes: the audit index each
// replaces, or none) and returns their audit indexes.
func (l *pointLog) deposit(ea area.Code, n int, supersedes ...int64) []int64 {
	l.t.Helper()
	var hs []Household
	var idx []int64
	for i := range n {
		l.seed++
		h := hhWith(l.next, ea, l.seed, person(1+l.seed%2, 1980))
		if i < len(supersedes) {
			h.SupersedesIndex = supersedes[i]
		}
		hs = append(hs, h)
		idx = append(idx, l.next)
		l.next++
	}
	if err := l.c.Append(hs, l.next-1); err != nil {
		l.t.Fatal(err)
	}
	return idx
}

func (l *pointLog) freeze(prev *PointState, k int64) (*PointState, FreezeReport) {
	l.t.Helper()
	s, rep, err := l.c.Freeze(prev, area.Commune, k)
	if err != nil {
		l.t.Fatal(err)
	}
	return s, rep
}

// alive is what a table at s sees of commune code: its current
// households' audit indexes.
func (l *pointLog) alive(s *PointState, code area.Code) map[int64]bool {
	out := map[int64]bool{}
	asOf := l.c.eaAsOf(s)
	g := l.c.geo
	ci := g.index[code]
	for h := range l.c.hAdded {
		ea := l.c.hEA[h]
		if !g.within(ea, ci) {
			continue
		}
		a := asOf[ea]
		if l.c.hAdded[h] <= a && l.c.hRemoved[h] > a {
			out[l.c.hAdded[h]] = true
		}
	}
	return out
}

// TestPointsDifferByKOrNothing is the as-of differencing attack at its
// root: deposits arrive one at a time and a point is made after every
// one, as an approver who wanted to help a researcher would. Between any
// two consecutive points, every commune either shows no change or a
// change of at least k households — so the same table at the two points
// never isolates a handful of deposits. With the rule off (k = 1), the
// points differ by exactly one household, which is the attack.
func TestPointsDifferByKOrNothing(t *testing.T) {
	const k = 20
	for _, tc := range []struct {
		k        int64
		wantSafe bool
	}{{k, true}, {1, false}} {
		t.Run(fmt.Sprintf("k=%d", tc.k), func(t *testing.T) {
			l := newPointLog(t)
			var prev *PointState
			minDiff := int64(1 << 62)
			eas := []area.Code{"E11", "E21", "E12", "E31", "E22"}
			var recent []int64
			for step := range 200 {
				ea := eas[step%len(eas)]
				if step%7 == 3 && len(recent) > 0 {
					// A supersession: a household corrected.
					old := recent[0]
					recent = recent[1:]
					recent = append(recent, l.deposit(ea, 1, old)...)
				} else {
					recent = append(recent, l.deposit(ea, 1)...)
				}
				s, _ := l.freeze(prev, tc.k)
				for _, code := range []area.Code{"C1", "C2", "C3"} {
					before, after := map[int64]bool{}, l.alive(s, code)
					if prev != nil {
						before = l.alive(prev, code)
					}
					// Households that changed: a new one, or a corrected
					// one (its replacement is new, itself gone).
					var added, removed int64
					for i := range after {
						if !before[i] {
							added++
						}
					}
					for i := range before {
						if !after[i] {
							removed++
						}
					}
					if d := max(added, removed); d > 0 {
						minDiff = min(minDiff, d)
					}
				}
				prev = s
			}
			if tc.wantSafe && minDiff < tc.k {
				t.Fatalf("two consecutive points differ by %d households in a commune; the k-rule allows 0 or ≥ %d", minDiff, tc.k)
			}
			if !tc.wantSafe && minDiff != 1 {
				t.Fatalf("without the rule, points should differ by single households (the attack); smallest difference %d", minDiff)
			}
		})
	}
}

func TestFreezeFirstPointAndKept(t *testing.T) {
	l := newPointLog(t)
	l.deposit("E11", 30) // C1: 30
	l.deposit("E21", 5)  // C2: 5
	s1, rep := l.freeze(nil, 20)
	if rep.Areas != 3 || rep.Advanced != 1 || rep.Kept != 2 || rep.Changed != 1 {
		t.Fatalf("first point: %+v, want 3 areas, C1 advanced, C2 (changed) and C3 kept", rep)
	}
	if got := len(l.alive(s1, "C1")); got != 30 {
		t.Fatalf("C1 at the first point: %d households, want 30", got)
	}
	if got := len(l.alive(s1, "C2")); got != 0 {
		t.Fatalf("C2 (5 households, below k) at the first point: %d households, want none", got)
	}
	l.deposit("E22", 16) // C2: 21 since nothing
	l.deposit("E12", 19) // C1: 19 since s1
	s2, rep := l.freeze(s1, 20)
	if rep.Advanced != 1 || len(l.alive(s2, "C2")) != 21 || len(l.alive(s2, "C1")) != 30 {
		t.Fatalf("second point: %+v; C1 %d (want 30, kept), C2 %d (want 21)", rep, len(l.alive(s2, "C1")), len(l.alive(s2, "C2")))
	}
	// The state round-trips and its digest is stable.
	back, err := ParsePointState(s2.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if back.Digest() != s2.Digest() {
		t.Fatal("digest changed through Encode/Parse")
	}
	if _, err := ParsePointState(append([]byte(" "), s2.Encode()...)); err == nil {
		t.Fatal("a non-canonical state was accepted")
	}
}

// correct re-deposits the households at olds in ea as corrections:
// the same analytic part (a correction of identifying fields only), or
// with each person's sex flipped; it returns the corrections' audit
// indexes.
func (l *pointLog) correct(ea area.Code, olds []int64, flip bool) []int64 {
	l.t.Helper()
	var hs []Household
	var idx []int64
	for _, old := range olds {
		o, ok := l.c.find(old)
		if !ok {
			l.t.Fatalf("no household at %d", old)
		}
		sex := l.c.pCols[l.c.schema.vars["sex"].col].get(l.c.hFirst[o]) // category index+1: 1 male, 2 female
		if flip {
			sex = 3 - sex
		}
		l.seed++
		h := hhWith(l.next, ea, l.seed, person(sex, 1980))
		h.SupersedesIndex = old
		hs = append(hs, h)
		idx = append(idx, l.next)
		l.next++
	}
	if err := l.c.Append(hs, l.next-1); err != nil {
		l.t.Fatal(err)
	}
	return idx
}

// TestCorrectionsCountPerTable is the red team's attack on the k-rule
// (TestRedTeam11CorrectionsCountTowardK at scale): corrections that
// change nothing a table shows must not make up the k households an
// area needs to move on, or one new household among 100 such
// corrections is alone in every table's difference. An area moves on
// only when every catalogue table that changed at all changed by at
// least k households.
func TestCorrectionsCountPerTable(t *testing.T) {
	l := newPointLog(t)
	first := l.deposit("E11", 40)
	s1, _ := l.freeze(nil, 20)

	// 40 identifying-only corrections and one new household: one
	// household changed.
	again := l.correct("E11", first[:20], false)
	l.correct("E11", again, false) // the same households again: chains of corrections
	l.deposit("E12", 1)
	s2, rep := l.freeze(s1, 20)
	if rep.Advanced != 0 {
		t.Fatalf("40 corrections that change nothing and one new household advanced C1 (k = 20): %+v", rep)
	}
	// 15 corrections of sex and 4 more new households: the tables of
	// persons by sex changed by 20, the tables of households by 5.
	l.correct("E11", first[20:35], true)
	l.deposit("E12", 4)
	s3, rep := l.freeze(s2, 20)
	if rep.Advanced != 0 || rep.Changed != 1 {
		t.Fatalf("households tables changed by 5 households, yet C1 advanced (k = 20): %+v", rep)
	}
	// 15 more new households: every table that changed did by ≥ 20.
	l.deposit("E12", 15)
	if _, rep := l.freeze(s3, 20); rep.Advanced != 1 {
		t.Fatalf("every table of C1 changed by at least 20 households, yet it was kept: %+v", rep)
	}
	// Without the per-table rule (a supersession counting as a change
	// whatever it changed), the first point would have moved: that is
	// what TestPointsDifferByKOrNothing and this test guard.
}

// TestShredMakesPointStale: households a point froze that can no longer
// be read (their commune's analytic key was shredded, so the cache is
// rebuilt without them) make the point stale for tables covering them,
// and count as changes for the next point.
func TestShredMakesPointStale(t *testing.T) {
	l := newPointLog(t)
	l.deposit("E11", 30)
	l.deposit("E31", 30)
	s1, _ := l.freeze(nil, 20)
	if st, err := l.c.Stale(s1, s1.Digest(), "VN"); err != nil || len(st) != 0 {
		t.Fatalf("fresh point stale: %v %v", st, err)
	}
	// Rebuild the cache without C3's households, as a shred does.
	var keep []Household
	for h := range l.c.hAdded {
		if l.c.geo.codes[l.c.hEA[h]] == "E11" {
			keep = append(keep, hhWith(l.c.hAdded[h], "E11", h+1, person(1, 1980)))
		}
	}
	c2 := newTestCache(t, pointTree(t), keep)
	if err := c2.Append(nil, l.c.UpTo()); err != nil {
		t.Fatal(err)
	}
	st, err := c2.Stale(s1, s1.Digest(), "VN")
	if err != nil || len(st) != 1 || st[0] != "C3" {
		t.Fatalf("after C3's shred, stale areas %v (%v), want [C3]", st, err)
	}
	if st, _ := c2.Stale(s1, s1.Digest(), "D1"); len(st) != 0 {
		t.Fatalf("D1 holds no shredded household but is stale: %v", st)
	}
	s2, rep, err := c2.Freeze(s1, area.Commune, 20)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Advanced != 1 || len(s2.Areas) != 3 {
		t.Fatalf("30 shredded households in C3 did not count as a change: %+v", rep)
	}
	if st, _ := c2.Stale(s2, s2.Digest(), "VN"); len(st) != 0 {
		t.Fatalf("the point after the shred is stale: %v", st)
	}
}

func TestFreezeRefusesBadArguments(t *testing.T) {
	l := newPointLog(t)
	if _, _, err := l.c.Freeze(nil, area.EA, 100); err == nil {
		t.Fatal("froze at EA level")
	}
	if _, _, err := l.c.Freeze(nil, area.Commune, 0); err == nil {
		t.Fatal("froze with k = 0")
	}
	s, _ := l.freeze(nil, 5)
	if _, _, err := l.c.Freeze(s, area.District, 5); err == nil {
		t.Fatal("froze districts after a point of communes")
	}
}

// TestCorrectionKeepsNoise: under ckp/v2 a correction that changes
// nothing a table shows keeps every cell's noise (its records keep the
// keys of their chain's first submission), so re-depositing households
// cannot redraw the noise of unchanged cells for a researcher to average
// across points. Under v1 (old releases, replayed) records keyed by
// their own submission redraw it — that is the attack.
func TestCorrectionKeepsNoise(t *testing.T) {
	l := newPointLog(t)
	var first []int64
	for _, ea := range []area.Code{"E11", "E12", "E21", "E22", "E31"} {
		first = append(first, l.deposit(ea, 60)...)
	}
	before := l.c.UpTo()
	again := l.correct("E11", first[:60], false)
	l.correct("E11", again[:30], false)
	after := l.c.UpTo()
	proj := Project{ID: "p", Areas: []string{"VN"}, Variables: l.c.schema.Variables()}
	req := countReq(Persons, []string{"sex"}, []string{"district"})
	for _, tc := range []struct {
		name   string
		params sdc.Params
		same   bool
	}{{"v2", sdc.DefaultParams(), true}, {"v1", sdc.DefaultParamsV1(), false}} {
		t.Run(tc.name, func(t *testing.T) {
			var got [2][]Cell
			for k, asOf := range []int64{before, after} {
				tab := mustRun(t, l.c, mustCompile(t, l.c, req, proj, tc.params, FormatJSON, asOf))
				got[k] = tab.Cells
			}
			same := slices.Equal(got[0], got[1])
			if same != tc.same {
				t.Fatalf("cells before and after 90 identifying-only corrections equal: %v, want %v\nbefore %v\nafter  %v", same, tc.same, got[0], got[1])
			}
		})
	}
}
