package area_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker/area"
)

func mustParse(t testing.TB, doc string) *area.Revision {
	t.Helper()
	r, err := area.ParseRevision([]byte(doc))
	if err != nil {
		t.Fatalf("ParseRevision: %v", err)
	}
	return r
}

func mustApply(t testing.TB, g *area.Geography, doc string) (*area.Geography, *area.Outcome) {
	t.Helper()
	next, out, err := g.Apply(mustParse(t, doc))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return next, out
}

const splitDoc = `{"note": "listing found two villages in EA 1", "changes": [
 {"op": "split", "code": "18070.001", "into": [
   {"code": "18070.011", "name": "Tổ 1 bắc", "planned": 70, "households": "1-150"},
   {"code": "18070.012", "name": "Tổ 1 nam", "planned": 60, "households": "151-"}]}]}`

func TestRevisionSplit(t *testing.T) {
	g0 := area.Start(mustLoad(t, small))
	g1, out := mustApply(t, g0, splitDoc)
	if g1.Revision() != 1 || out.Revision != 1 || out.Split != 1 {
		t.Fatalf("revision %d, outcome %+v", g1.Revision(), out)
	}
	want := []area.Retirement{{Code: "18070.001", Change: 0, Op: area.OpSplit, Into: []area.Code{"18070.011", "18070.012"}}}
	if !reflect.DeepEqual(out.Retired, want) {
		t.Errorf("retired %+v, want %+v", out.Retired, want)
	}
	if len(out.Orphans) != 0 {
		t.Errorf("orphans %+v with an open last range", out.Orphans)
	}
	tr := g1.Tree()
	if _, ok := tr.Get("18070.001"); ok {
		t.Error("the split EA is still in the tree in force")
	}
	if got := tr.Children("18070"); !reflect.DeepEqual(got, []area.Code{"18070.011", "18070.012", "18070.002"}) {
		t.Errorf("children %v: the new EAs go where the old one was", got)
	}
	if a, _ := tr.Get("18070"); a.Planned != 70+60+95 {
		t.Errorf("commune plan %d", a.Planned)
	}
	// Every area there ever was, the retired one without a plan.
	if a, ok := g1.All().Get("18070.001"); !ok || a.Planned != 0 || a.Parent != "18070" {
		t.Errorf("retired EA in All: %+v %v", a, ok)
	}
	if a, _ := g1.All().Get("18070"); a.Planned != 70+60+95 {
		t.Errorf("commune plan in All %d: a retired EA must not count", a.Planned)
	}
	for _, c := range []struct {
		code area.Code
		hh   int64
		want area.Code
	}{
		{"18070.001", 1, "18070.011"}, {"18070.001", 150, "18070.011"}, {"18070.001", 151, "18070.012"},
		{"18070.001", area.MaxHouseholdNo, "18070.012"}, {"18070.011", 900, "18070.011"}, {"18070.002", 3, "18070.002"},
	} {
		if got, ok := g1.EA(c.code, c.hh); !ok || got != c.want {
			t.Errorf("EA(%s, %d) = %s %v, want %s", c.code, c.hh, got, ok, c.want)
		}
	}
	if _, ok := g1.EA("nowhere", 1); ok {
		t.Error("EA of an unknown code")
	}
	// Revision 0 is unchanged: trees are immutable.
	if _, ok := g0.Tree().Get("18070.001"); !ok || g0.Revision() != 0 {
		t.Error("Apply changed the geography it was given")
	}
	if got := g1.Sources("18070.012"); !reflect.DeepEqual(got, []area.HouseholdRange{{Code: "18070.001", From: 151, To: area.MaxHouseholdNo}}) {
		t.Errorf("sources %+v", got)
	}
	if got := g1.Aliases("18070.011", 7); !reflect.DeepEqual(got, []area.Code{"18070.001", "18070.011"}) {
		t.Errorf("aliases %v", got)
	}
	if got := g1.Aliases("18070.011", 200); !reflect.DeepEqual(got, []area.Code{"18070.011"}) {
		t.Errorf("aliases of a number outside the range it took %v", got)
	}
}

// TestRevisionCompose: split, split again, merge: the mapping follows
// every step, and a merge ends a household number's aliases.
func TestRevisionCompose(t *testing.T) {
	g1, _ := mustApply(t, area.Start(mustLoad(t, small)), splitDoc)
	g2, _ := mustApply(t, g1, `{"note": "n", "changes": [
	 {"op": "split", "code": "18070.011", "into": [
	   {"code": "18070.021", "name": "a", "planned": 30, "households": "1-80"},
	   {"code": "18070.022", "name": "b", "planned": 40, "households": "81-"}]},
	 {"op": "rename", "code": "18070", "name": "Phường Bắc Hồng mới"},
	 {"op": "plan", "code": "18070.002", "planned": 99}]}`)
	g3, out := mustApply(t, g2, `{"note": "n", "changes": [
	 {"op": "merge", "codes": ["18070.022", "18070.012"], "into": {"code": "18070.030", "name": "c", "planned": 100}}]}`)
	if out.Merged != 1 || len(out.Retired) != 2 {
		t.Fatalf("outcome %+v", out)
	}
	for _, c := range []struct {
		code area.Code
		hh   int64
		want area.Code
	}{
		{"18070.001", 5, "18070.021"}, {"18070.001", 100, "18070.030"}, {"18070.001", 400, "18070.030"},
		{"18070.011", 5, "18070.021"}, {"18070.011", 120, "18070.030"}, {"18070.012", 3, "18070.030"},
	} {
		if got, ok := g3.EA(c.code, c.hh); !ok || got != c.want {
			t.Errorf("EA(%s, %d) = %s %v, want %s", c.code, c.hh, got, ok, c.want)
		}
	}
	if got := g3.Aliases("18070.001", 5); !reflect.DeepEqual(got, []area.Code{"18070.001", "18070.011", "18070.021"}) {
		t.Errorf("aliases %v", got)
	}
	// 100 went 001 → 011 → 022, then 022 was merged: 030's household 100
	// is another household.
	if got := g3.Aliases("18070.030", 100); !reflect.DeepEqual(got, []area.Code{"18070.030"}) {
		t.Errorf("aliases after a merge %v", got)
	}
	if got := g3.Aliases("18070.001", 100); !reflect.DeepEqual(got, []area.Code{"18070.001", "18070.011", "18070.022"}) {
		t.Errorf("aliases up to a merge %v", got)
	}
	want := []area.HouseholdRange{
		{Code: "18070.001", From: 81, To: 150}, {Code: "18070.001", From: 151, To: area.MaxHouseholdNo},
		{Code: "18070.011", From: 81, To: area.MaxHouseholdNo},
		{Code: "18070.012", From: 1, To: area.MaxHouseholdNo},
		{Code: "18070.022", From: 1, To: area.MaxHouseholdNo},
	}
	if got := g3.Sources("18070.030"); !reflect.DeepEqual(got, want) {
		t.Errorf("sources\n got %+v\nwant %+v", got, want)
	}
	if a, _ := g3.Tree().Get("18070"); a.Name != "Phường Bắc Hồng mới" || a.Planned != 30+100+99 {
		t.Errorf("commune %+v", a)
	}
	if got := g3.RetiredCodes(); !reflect.DeepEqual(got, []area.Code{"18070.001", "18070.011", "18070.012", "18070.022"}) {
		t.Errorf("retired %v", got)
	}
}

// TestRevisionOrphans: a split whose ranges leave numbers out names them
// (the caller refuses the revision if anything is stored there), also
// for households of an EA split before.
func TestRevisionOrphans(t *testing.T) {
	g1, _ := mustApply(t, area.Start(mustLoad(t, small)), splitDoc)
	_, out := mustApply(t, g1, `{"note": "n", "changes": [
	 {"op": "rename", "code": "18070.002", "name": "x"},
	 {"op": "split", "code": "18070.012", "into": [
	   {"code": "18070.041", "name": "a", "planned": 1, "households": "151-200"},
	   {"code": "18070.042", "name": "b", "planned": 1, "households": "301-400"}]}]}`)
	o := func(code area.Code, from, to int64) area.Orphan {
		return area.Orphan{HouseholdRange: area.HouseholdRange{Code: code, From: from, To: to}, EA: "18070.012", Change: 1}
	}
	want := []area.Orphan{
		o("18070.001", 201, 300), o("18070.001", 401, area.MaxHouseholdNo),
		o("18070.012", 1, 150), o("18070.012", 201, 300), o("18070.012", 401, area.MaxHouseholdNo),
	}
	if !reflect.DeepEqual(out.Orphans, want) {
		t.Errorf("orphans\n got %+v\nwant %+v", out.Orphans, want)
	}
}

// TestRevisionApplyRefusals: what only the tree can say, each naming the
// change.
func TestRevisionApplyRefusals(t *testing.T) {
	g1, _ := mustApply(t, area.Start(mustLoad(t, small)), splitDoc)
	ch := func(s string) string {
		return `{"note": "n", "changes": [{"op": "plan", "code": "18070.002", "planned": 1}, ` + s + `]}`
	}
	for _, c := range []struct{ doc, want string }{
		{ch(`{"op": "add", "code": "18070.001", "parent": "18070", "level": "ea", "name": "x", "planned": 1}`), "changes[1] (add): code 18070.001 belonged to an EA retired"},
		{ch(`{"op": "add", "code": "18070.002", "parent": "18070", "level": "ea", "name": "x", "planned": 1}`), "changes[1] (add): area 18070.002 exists already"},
		{ch(`{"op": "add", "code": "x1", "parent": "437", "level": "ea", "name": "x", "planned": 1}`), "parent 437 is a district: the parent of a ea must be a commune"},
		{ch(`{"op": "add", "code": "x1", "parent": "nope", "level": "commune", "name": "x"}`), "no area nope to add x1 under"},
		{ch(`{"op": "rename", "code": "18070.001", "name": "x"}`), "changes[1] (rename): EA 18070.001 was retired"},
		{ch(`{"op": "plan", "code": "18070", "planned": 3}`), "18070 is a commune: only an EA has planned households"},
		{ch(`{"op": "split", "code": "18070", "into": [{"code": "a", "name": "a", "planned": 1, "households": "1-5"}, {"code": "b", "name": "b", "planned": 1, "households": "6-"}]}`), "only an EA can be split"},
		{ch(`{"op": "split", "code": "18070.002", "into": [{"code": "a", "name": "a", "planned": 1, "households": "1-5"}, {"code": "18070.011", "name": "b", "planned": 1, "households": "6-"}]}`), "changes[1] (split): into[1]: area 18070.011 exists already"},
		{ch(`{"op": "merge", "codes": ["18070.002", "18073.001"], "into": {"code": "m", "name": "m", "planned": 1}}`), "changes[1] (merge): codes[1]: 18073.001 is under 18073, 18070.002 under 18070: only EAs of one commune"},
		{ch(`{"op": "merge", "codes": ["18070.011", "18070.001"], "into": {"code": "m", "name": "m", "planned": 1}}`), "codes[1]: EA 18070.001 was retired"},
		{ch(`{"op": "merge", "codes": ["18070.011", "18070.012"], "into": {"code": "18070.001", "name": "m", "planned": 1}}`), "into: code 18070.001 belonged to an EA retired"},
		// A code added earlier in the same document is in use.
		{`{"note": "n", "changes": [{"op": "add", "code": "z", "parent": "18070", "level": "ea", "name": "z", "planned": 1},
		  {"op": "add", "code": "z", "parent": "18073", "level": "ea", "name": "z", "planned": 1}]}`, "changes[1] (add): area z exists already"},
	} {
		_, _, err := g1.Apply(mustParse(t, c.doc))
		var re *area.RevisionError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Apply(%s):\n got %v\nwant …%s…", c.doc, err, c.want)
		}
	}
	// Areas added and then used by later changes of the same document.
	g2, out := mustApply(t, g1, `{"note": "n", "changes": [
	 {"op": "add", "code": "18099", "parent": "437", "level": "commune", "name": "Xã mới"},
	 {"op": "add", "code": "18099.001", "parent": "18099", "level": "ea", "name": "Thôn 1", "planned": 40},
	 {"op": "add", "code": "18099.002", "parent": "18099", "level": "ea", "name": "Thôn 2", "planned": 2},
	 {"op": "merge", "codes": ["18099.001", "18099.002"], "into": {"code": "18099.003", "name": "Thôn 1-2", "planned": 42}}]}`)
	if out.Added != 3 || out.Merged != 1 || len(out.Orphans) != 0 {
		t.Errorf("outcome %+v", out)
	}
	if p := g2.Tree().Path("18099.003"); !reflect.DeepEqual(p, []area.Code{"VN", "42", "437", "18099", "18099.003"}) {
		t.Errorf("path %v", p)
	}
	if a, _ := g2.Tree().Get("437"); a.Planned != 70+60+95+101+42 {
		t.Errorf("district plan %d", a.Planned)
	}
}

// TestParseRevisionRefusals: every refusal of the document alone names
// the change and what to fix.
func TestParseRevisionRefusals(t *testing.T) {
	one := func(c string) string { return `{"note": "n", "changes": [` + c + `]}` }
	for _, c := range []struct{ doc, want string }{
		{`{"changes": [{"op": "plan", "code": "a", "planned": 1}]}`, `"note" is required`},
		{`{"note": "n", "changes": []}`, `"changes" is required`},
		{`{"note": "n", "changes": [], "extra": 1}`, `unknown key "extra"`},
		{`{"note": "n", "note": "m", "changes": []}`, "key given twice"},
		{`{"note": "n", "changes": [`, "area revision: "},
		{one(`{"op": "move", "code": "a"}`), `changes[0]: unknown op "move"`},
		{one(`{"code": "a"}`), `changes[0]: "op" is required`},
		{one(`{"op": "rename", "code": "a", "name": "b", "parent": "c"}`), `changes[0] (rename): rename does not take "parent" (a rename takes code, name): remove it`},
		{one(`{"op": "rename", "code": "a"}`), `changes[0] (rename): "name" is required`},
		{one(`{"op": "rename", "code": "a b", "name": "x"}`), `code "a b": want 1 to 32`},
		{one(`{"op": "rename", "code": "a", "name": " x"}`), "leading or trailing white space"},
		{one(`{"op": "plan", "code": "a", "planned": -1}`), "planned must not be negative"},
		{one(`{"op": "plan", "code": "a", "planned": 1.5}`), `"planned" has the wrong type`},
		{one(`{"op": "plan", "code": "a", "planned": "7"}`), `has the wrong type`},
		{one(`{"op": "add", "code": "a", "parent": "p", "level": "town", "name": "x"}`), `unknown level "town"`},
		{one(`{"op": "add", "code": "a", "parent": "p", "level": "nation", "name": "x"}`), "a nation cannot be added"},
		{one(`{"op": "add", "code": "a", "parent": "p", "level": "ea", "name": "x"}`), `an EA needs "planned"`},
		{one(`{"op": "add", "code": "a", "parent": "p", "level": "commune", "name": "x", "planned": 0}`), `only an EA has "planned"`},
		{one(`{"op": "split", "code": "a", "into": [{"code": "b", "name": "b", "planned": 1, "households": "1-"}]}`), "a split makes 2 to 100 EAs, not 1"},
		{one(`{"op": "split", "code": "a", "into": {"code": "b"}}`), "changes[0] (split): into: "},
		{one(`{"op": "split", "code": "a", "into": [{"code": "b", "name": "b", "planned": 1, "households": "1-150"}, {"code": "c", "name": "c", "planned": 1, "households": "150-"}]}`),
			"into[1]: households 150- overlap those of b (1-150)"},
		{one(`{"op": "split", "code": "a", "into": [{"code": "b", "name": "b", "planned": 1, "households": "1-9"}, {"code": "b", "name": "c", "planned": 1, "households": "10-"}]}`), "into[1]: code b is given twice"},
		{one(`{"op": "split", "code": "a", "into": [{"code": "a", "name": "b", "planned": 1, "households": "1-9"}, {"code": "b", "name": "c", "planned": 1, "households": "10-"}]}`), "into[0]: a new EA needs a new code"},
		{one(`{"op": "split", "code": "a", "into": [{"code": "b", "name": "b", "planned": 1}, {"code": "c", "name": "c", "planned": 1, "households": "10-"}]}`), `into[0]: "households" of b is required`},
		{one(`{"op": "split", "code": "a", "into": [{"code": "b", "name": "b", "planned": 1, "households": "1-9", "extra": 1}, {"code": "c", "name": "c", "planned": 1, "households": "10-"}]}`), `unknown key "extra"`},
		{one(`{"op": "merge", "codes": ["a", "b"], "into": {"code": "c", "name": "c", "planned": 1, "households": "1-"}}`), `a merge takes every household of the merged EAs: remove "households"`},
		{one(`{"op": "merge", "codes": ["a", "a"], "into": {"code": "c", "name": "c", "planned": 1}}`), "codes[1]: a is given twice"},
		{one(`{"op": "merge", "codes": ["a"], "into": {"code": "c", "name": "c", "planned": 1}}`), "a merge joins 2 to 100 EAs, not 1"},
		{one(`{"op": "merge", "codes": ["a", "b"], "into": {"code": "a", "name": "c", "planned": 1}}`), "into: the merged EA needs a new code"},
		{one(`{"op": "merge", "codes": ["a", "b"], "into": [{"code": "c", "name": "c", "planned": 1}]}`), "changes[0] (merge): into: "},
	} {
		_, err := area.ParseRevision([]byte(c.doc))
		var re *area.RevisionError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseRevision(%s):\n got %v\nwant …%s…", c.doc, err, c.want)
		}
	}
	// Two changes: the index is the second's.
	_, err := area.ParseRevision([]byte(`{"note": "n", "changes": [{"op": "plan", "code": "a", "planned": 1}, {"op": "plan", "code": "a"}]}`))
	if err == nil || !strings.HasPrefix(err.Error(), `area revision: changes[1] (plan): "planned" is required`) {
		t.Errorf("second change: %v", err)
	}
}

func TestParseRange(t *testing.T) {
	doc := func(r string) string {
		return fmt.Sprintf(`{"note": "n", "changes": [{"op": "split", "code": "a", "into": [{"code": "b", "name": "b", "planned": 1, "households": %q}, {"code": "c", "name": "c", "planned": 1, "households": "1-1"}]}]}`, r)
	}
	for r, want := range map[string]area.Range{
		"2-2": {From: 2, To: 2}, "2-": {From: 2, To: area.MaxHouseholdNo}, "7-1000000000": {From: 7, To: area.MaxHouseholdNo},
	} {
		rev, err := area.ParseRevision([]byte(doc(r)))
		if err != nil || rev.Changes[0].Parts[0].Households != want {
			t.Errorf("%q: %v %+v", r, err, rev)
		}
	}
	for _, r := range []string{"", "1", "-5", "0-5", "01-5", "5-4", "1-1000000001", "+1-2", "1 -2", "1-2-3", "a-b", "99999999999-"} {
		if _, err := area.ParseRevision([]byte(doc(r))); err == nil || !strings.Contains(err.Error(), "households of b") {
			t.Errorf("%q: %v", r, err)
		}
	}
}

// FuzzRevision: ParseRevision and Apply never panic, refusals are
// *RevisionError, and after an accepted revision every household of
// every code there ever was belongs to an EA in force, or to none only
// where the Outcome said so.
func FuzzRevision(f *testing.F) {
	f.Add([]byte(splitDoc))
	f.Add([]byte(`{"note": "n", "changes": [{"op": "merge", "codes": ["18070.001", "18070.002"], "into": {"code": "m", "name": "m", "planned": 1}}]}`))
	f.Add([]byte(`{"note": "n", "changes": [{"op": "split", "code": "18100.002", "into": [{"code": "b", "name": "b", "planned": 1, "households": "3-9"}, {"code": "c", "name": "c", "planned": 1, "households": "12-"}]}]}`))
	g0 := area.Start(mustLoad(f, small))
	g1, _ := mustApply(f, g0, splitDoc)
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := area.ParseRevision(in)
		var re *area.RevisionError
		if err != nil {
			if !errors.As(err, &re) {
				t.Fatalf("error %T: %v", err, err)
			}
			return
		}
		g2, out, err := g1.Apply(r)
		if err != nil {
			if !errors.As(err, &re) {
				t.Fatalf("Apply error %T: %v", err, err)
			}
			return
		}
		g1.All().Walk(g1.All().Root(), -1, func(a area.Area, _ int) bool {
			if a.Level != area.EA {
				return true
			}
			for _, hh := range []int64{1, 150, 151, 10_000, area.MaxHouseholdNo} {
				ea, ok := g2.EA(a.Code, hh)
				if !ok {
					orphan := false
					for _, o := range out.Orphans {
						orphan = orphan || (o.Code == a.Code && hh >= o.From && hh <= o.To)
					}
					if !orphan && g1.Retired(a.Code) == g2.Retired(a.Code) {
						// gaps of a code retired before are not new
						if _, before := g1.EA(a.Code, hh); !before {
							continue
						}
					}
					if !orphan {
						t.Fatalf("household %d of %s has no EA and is not an orphan", hh, a.Code)
					}
					continue
				}
				if x, found := g2.Tree().Get(ea); !found || x.Level != area.EA {
					t.Fatalf("household %d of %s maps to %s, not an EA in force", hh, a.Code, ea)
				}
			}
			return true
		})
	})
}
