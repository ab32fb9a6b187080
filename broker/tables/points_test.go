package tables

import (
	"fmt"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker/area"
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

// TestSupersessionIsOneChange: 15 corrections and 5 new households are
// 20 changed households, not 35.
func TestSupersessionIsOneChange(t *testing.T) {
	l := newPointLog(t)
	first := l.deposit("E11", 40)
	s1, _ := l.freeze(nil, 20)
	l.deposit("E11", 15, first[:15]...)
	l.deposit("E12", 4)
	if s, rep := l.freeze(s1, 20); rep.Advanced != 0 {
		t.Fatalf("19 changed households advanced C1 (k = 20): %+v", rep)
	} else {
		s1 = s
	}
	l.deposit("E12", 1)
	if _, rep := l.freeze(s1, 20); rep.Advanced != 1 {
		t.Fatalf("20 changed households did not advance C1: %+v", rep)
	}
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
