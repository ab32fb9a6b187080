package tables

import (
	"testing"

	"github.com/censusvault/censusvault/broker/area"
)

// TestDifferencing checks that two universes differing by exactly one
// person do not give that person away: the difference of the released
// cells is not the true difference (1) most of the time, and is unbiased
// over many trials (so a differencing attack learns nothing on average).
//
// The trials: the census, then one more single-person household in every
// district; a district × sex table as of before and after those
// deposits. Each district's cell of the new person's sex, and its
// margin, hold exactly one more person after.
func TestDifferencing(t *testing.T) {
	f := shared(t)
	c := newTestCache(t, f.tree, f.hs)
	before := c.UpTo()
	type target struct {
		district area.Code
		sex      string
	}
	var extras []Household
	var targets []target
	for j, d := range areasAt(f.tree, area.District) {
		sex := 1 + j%2
		extras = append(extras, hhWith(before+2+2*int64(j), eaOf(f.tree, d), 1_000_000+j, person(sex, 1950+j%60)))
		targets = append(targets, target{d, []string{"1", "2"}[sex-1]})
	}
	if err := c.Append(extras, extras[len(extras)-1].AuditIndex); err != nil {
		t.Fatal(err)
	}
	after := c.UpTo()
	r := countReq(Persons, []string{"district"}, []string{"sex"})
	t0, truth0 := release(t, c, r, f.proj, before)
	t1, truth1 := release(t, c, r, f.proj, after)

	type stats struct {
		trials, exact int
		bias          float64
	}
	var inner, margin stats
	for _, tg := range targets {
		for _, col := range []string{tg.sex, Margin} {
			st := &inner
			if col == Margin {
				st = &margin
			}
			i := cellIndex(t, t0, []string{string(tg.district)}, []string{col})
			if j := cellIndex(t, t1, []string{string(tg.district)}, []string{col}); j != i {
				t.Fatalf("cell %s × %s moved from %d to %d", tg.district, col, i, j)
			}
			if truth1[i].n != truth0[i].n+1 {
				t.Fatalf("cell %s × %s: true %d then %d; the trial needs exactly one more person", tg.district, col, truth0[i].n, truth1[i].n)
			}
			a, b := t0.Cells[i], t1.Cells[i]
			if a.Suppressed || b.Suppressed {
				continue
			}
			st.trials++
			d := b.Count - a.Count
			if d == 1 {
				st.exact++
			}
			st.bias += float64(d - 1)
		}
	}
	for name, st := range map[string]stats{"inner cells": inner, "margins": margin} {
		mean := st.bias / float64(st.trials)
		t.Logf("%s: %d trials, released difference = true difference in %d (%.0f%%), mean error %+.3f",
			name, st.trials, st.exact, 100*float64(st.exact)/float64(st.trials), mean)
		if st.trials < 200 {
			t.Fatalf("%s: only %d trials", name, st.trials)
		}
		if 2*st.exact >= st.trials {
			t.Errorf("%s: the released difference is the true one in %d of %d trials: one person shows", name, st.exact, st.trials)
		}
		if mean < -0.3 || mean > 0.3 {
			t.Errorf("%s: released differences are biased by %+.3f on average", name, mean)
		}
	}
}
