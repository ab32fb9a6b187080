package tables

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"sync"
	"testing"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/sdc"
)

var (
	fuzzOnce  sync.Once
	fuzzC     *Cache
	fuzzProj  Project
	fuzzSeeds [][]byte // analytic parts of synthetic households
)

// fuzzFixture is a small cache (400 households) on the national tree and
// a project of two provinces that lists every analytic variable and, by
// mistake, an identifying one.
func fuzzFixture(t testing.TB) (*Cache, Project) {
	fuzzOnce.Do(func() {
		tr := national(t)
		hs, _ := synthHouseholds(t, tr, 400)
		fuzzC = newTestCache(t, tr, hs)
		provs := areasAt(tr, area.Province)
		fuzzProj = Project{ID: "p", Areas: []string{string(provs[0]), string(provs[1])},
			Variables: append(fuzzC.schema.Variables(), "head_name")}
		for _, h := range hs[:8] {
			fuzzSeeds = append(fuzzSeeds, h.Analytic)
		}
	})
	if fuzzC == nil {
		t.Fatal("fuzz fixture not built")
	}
	return fuzzC, fuzzProj
}

// FuzzParseRequest checks that no request body makes the engine panic,
// that every refusal of a parsed request is a *RequestError, and that an
// accepted request normalizes, replays to the same normalized request,
// and runs or is refused cleanly.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"project":"p","rows":["sex"]}`,
		`{"project":"p","unit":"households","rows":["province"],"cols":["tenure"],"measure":{"sum":"floor_area_m2"}}`,
		`{"project":"p","rows":["district","sex"],"cols":["age_group5"],"filter":{"area":["01"],"marital_status":[2,"1"]},"measure":{"mean":"age"},"as_of":100}`,
		`{"project":"p","rows":["ea"],"cols":["birth_year"]}`,
		`{"project":"p","rows":["head_name"]}`,
		`{"project":"p","rows":["sex"],"filter":{"area":["02","0101"],"age_group5":["100+","0-4"]}}`,
		`{"project":"p","rows":["commune"],"filter":{"sex":["01"]},"purpose":"x"}`,
		`{"project":"p","rows":["nation"]}`,
		`{"project":"p","rows":["sex"]}}`,
		`{"project":"p","rows":[],"cols":["sex"]}`,
		`{"project":"p","rows":["sex"],"measure":{"sum":"sex"},"as_of":-1}`,
		`{"project":"p","unit":"households","rows":["water_source"],"cols":["electricity","toilet_type","dwelling_type"]}`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	c, proj := fuzzFixture(f)
	params := sdc.DefaultParams()
	params.MinUniverse = 1 // so that most tables run and render
	f.Fuzz(func(t *testing.T, body []byte, asCSV bool) {
		r, err := ParseRequest(body)
		if err != nil {
			if r != nil {
				t.Fatal("ParseRequest returned a request with its error")
			}
			return
		}
		if len(body) > MaxRequestBytes {
			t.Fatalf("ParseRequest accepted %d bytes", len(body))
		}
		format := FormatJSON
		if asCSV {
			format = FormatCSV
		}
		asOf := c.UpTo()
		p, err := c.Compile(r, proj, params, format, asOf)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("Compile refused with %T %v, not a *RequestError", err, err)
			}
			if p != nil {
				t.Fatal("Compile returned a plan with its error")
			}
			return
		}
		s := p.Norm.Encode()
		n, err := ParseNormalized(s)
		if err != nil {
			t.Fatalf("ParseNormalized(Encode()) = %v for %s", err, s)
		}
		if !reflect.DeepEqual(*n, p.Norm) || n.Encode() != s {
			t.Fatalf("normalized request does not round-trip: %s", s)
		}
		back := &Request{Project: n.Project, Unit: n.Unit, Rows: n.Rows, Cols: n.Cols, Filter: n.Filter, Measure: n.Measure}
		p2, err := c.Compile(back, proj, params, n.Format, n.AsOf)
		if err != nil {
			t.Fatalf("replaying %s: %v", s, err)
		}
		if p2.Norm.Encode() != s {
			t.Fatalf("replay normalizes to %s, not %s", p2.Norm.Encode(), s)
		}
		if p.Cells() > params.MaxCells || len(p.rows)+len(p.cols) > params.MaxDims {
			t.Fatalf("plan of %d cells, %d dimensions compiled", p.Cells(), len(p.rows)+len(p.cols))
		}
		tab, err := c.Run(p)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("Run refused with %T %v", err, err)
			}
			return
		}
		if len(tab.Cells) != p.Cells() {
			t.Fatalf("%d cells for a plan of %d", len(tab.Cells), p.Cells())
		}
		out := tab.Render()
		if format == FormatJSON && !json.Valid(out) {
			t.Fatalf("rendered JSON is not valid: %.200s", out)
		}
	})
}

// FuzzParseAnalytic checks that the analytic decoder never panics, does
// not depend on what it decoded before, and, on valid JSON, agrees with
// encoding/json on every tabulated number.
func FuzzParseAnalytic(f *testing.F) {
	fuzzFixture(f)
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	for _, s := range []string{
		`{"household":{},"persons":[]}`,
		`{"household":{"dwelling_type":1,"floor_area_m2":35.5},"persons":[{"sex":2,"birth_year":1990}]}`,
		`{"household":{"floor_area_m2":-1e3,"note":"a \"quoted\" \\ string"},"persons":[{},{"sex":1}]}`,
		`{"household":{"dwelling_type":12345678901234567890},"persons":[{"birth_year":-0}]}`,
		`{"household":{"dwelling_type":1},"persons":[{"sex":1},`,
		`{"household":{"dwelling_type":1.5e2},"persons":[{"sex":"1"}]}`,
	} {
		f.Add([]byte(s))
	}
	s, err := NewSchema(form.Default())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fresh, used parseScratch
		fresh.init(s)
		used.init(s)
		_ = used.parse(fuzzSeeds[len(b)%len(fuzzSeeds)])
		_ = used.parse([]byte(`{"household":{"tenure":2},"persons":[{"sex":1},{"sex":2},{"sex":1}]`))
		err := fresh.parse(b)
		err2 := used.parse(b)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("a used decoder says %v, a fresh one %v", err2, err)
		}
		if err != nil {
			if !errors.Is(err, errSyntax) {
				t.Fatalf("error %v is not a syntax error", err)
			}
			return
		}
		same := func(x, y []float64) bool {
			if len(x) != len(y) {
				return false
			}
			for i := range x {
				if x[i] != y[i] && !(math.IsNaN(x[i]) && math.IsNaN(y[i])) {
					return false
				}
			}
			return true
		}
		if !same(fresh.household, used.household) || len(fresh.persons) != len(used.persons) {
			t.Fatalf("a used decoder reads %v (%d persons), a fresh one %v (%d)", used.household, len(used.persons), fresh.household, len(fresh.persons))
		}
		for i := range fresh.persons {
			if !same(fresh.persons[i], used.persons[i]) {
				t.Fatalf("person %d: a used decoder reads %v, a fresh one %v", i, used.persons[i], fresh.persons[i])
			}
		}

		// Against encoding/json, on valid JSON without escapes (the
		// decoder does not unescape keys).
		if !json.Valid(b) || bytes.IndexByte(b, '\\') >= 0 {
			return
		}
		var doc struct {
			Household map[string]any   `json:"household"`
			Persons   []map[string]any `json:"persons"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			return // e.g. a number out of float64 range
		}
		check := func(where string, idx map[string]int, got []float64, m map[string]any) {
			for name, i := range idx {
				v, ok := m[name]
				switch x := v.(type) {
				case float64:
					if got[i] != x {
						t.Fatalf("%s %s: decoded %v, encoding/json %v", where, name, got[i], x)
					}
				case string:
					// A string value is skipped; with duplicate keys
					// either may win.
				default:
					if ok {
						t.Fatalf("%s %s: decoded %v from a %T", where, name, got[i], v)
					}
					if !math.IsNaN(got[i]) {
						t.Fatalf("%s %s: decoded %v, absent in the input", where, name, got[i])
					}
				}
			}
		}
		check("household", fresh.hhIndex, fresh.household, doc.Household)
		if len(doc.Persons) != len(fresh.persons) {
			t.Fatalf("decoded %d persons, encoding/json %d", len(fresh.persons), len(doc.Persons))
		}
		for i := range doc.Persons {
			check("person", fresh.pIndex, fresh.persons[i], doc.Persons[i])
		}
	})
}
