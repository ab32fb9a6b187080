package form_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker/form"
)

// FuzzDecodeValidate checks that Decode and ValidateAt never panic, that
// they refuse with *form.Error only, and that an accepted submission
// survives Split → Join → Split byte for byte. Submissions are validated
// against census2019 and against the test form of code sets, relevants,
// constraints and checks (testdata/exprform.json, seeds of its households
// added here).
func FuzzDecodeValidate(f *testing.F) {
	forms := fuzzForms(f)
	for seed := range int64(4) {
		f.Add(exprDoc(f, forms[1], seed, int(seed)))
	}
	f.Add(encodeDoc(f, exprBase()))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := form.Decode(b)
		if err != nil {
			var fe *form.Error
			if !errors.As(err, &fe) || len(fe.Problems) == 0 {
				t.Fatalf("Decode error %T: %v", err, err)
			}
			return
		}
		var def *form.Form
		for _, g := range forms {
			err := g.ValidateAt(s, clockOf(g))
			if err == nil {
				def = g
				continue
			}
			var fe *form.Error
			if !errors.As(err, &fe) || len(fe.Problems) == 0 {
				t.Fatalf("Validate error %T: %v", err, err)
			}
		}
		if def == nil {
			return
		}
		parts, err := def.Split(s)
		if err != nil {
			t.Fatalf("Split of a valid submission: %v", err)
		}
		h, ps, err := def.Join(parts)
		if err != nil {
			t.Fatalf("Join of Split: %v", err)
		}
		s2 := *s
		s2.Household, s2.Persons = h, ps
		parts2, err := def.Split(&s2)
		if err != nil {
			t.Fatalf("Split of Join: %v", err)
		}
		for _, c := range form.Classes() {
			if !bytes.Equal(parts[c], parts2[c]) {
				t.Fatalf("%s part changed:\n%s\n%s", c, parts[c], parts2[c])
			}
		}
	})
}

// TestFuzzSeeds keeps the seed corpus meaningful: valid_* seeds must pass
// Decode and Validate (so the round trip is exercised), the others must not.
func TestFuzzSeeds(t *testing.T) {
	dir := "testdata/fuzz/FuzzDecodeValidate"
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 5 {
		t.Fatalf("only %d seeds", len(entries))
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lit, ok := strings.CutPrefix(strings.TrimSpace(string(raw)), "go test fuzz v1\n[]byte(")
		if !ok || !strings.HasSuffix(lit, ")") {
			t.Fatalf("%s: not a fuzz corpus file", e.Name())
		}
		body, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		accepted := false
		for _, f := range fuzzForms(t) {
			s, err := form.Decode([]byte(body))
			accepted = accepted || err == nil && f.ValidateAt(s, clockOf(f)) == nil
		}
		if valid := strings.HasPrefix(e.Name(), "valid_"); valid != accepted {
			t.Errorf("%s: accepted %v", e.Name(), accepted)
		}
	}
}

// fuzzForms are the forms the fuzz targets validate against: census2019
// and the test form of issue 14's members.
func fuzzForms(t testing.TB) []*form.Form {
	return []*form.Form{form.Default(), exprForm(t)}
}

// FuzzParse reads arbitrary bytes as a JSON form definition. Parse never
// panics; a form it accepts has a JSON Schema that is JSON, reads back
// from its own JSON encoding to the same schema, and validates (without
// panicking, refusing with *form.Error only) the households of the seeds.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"census2019.json", "testdata/exprform.json"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(schemaForm))
	for _, e := range []string{
		"${a} = 1", "selected(${cs}, '7') and count-selected(${cs}) <= 2", "if(${a} > 0, ${a} div 0, -${a}) != 3",
		"string-length(${s}) mod 2 = 1 or not(${s} = 'x')", strings.Repeat("(", 32) + "${a} = 1" + strings.Repeat(")", 32),
	} {
		f.Add([]byte(exprDef(e, ". >= ${a} and selected(${q}, 3)")))
	}
	f.Add([]byte(`{"name":"r","version":1,"census_moment":"2029-04-01T00:00:00+07:00","household":[{"name":"h","type":"date","class":"analytic"}],
	"person":[{"name":"y","type":"int","class":"analytic","min":1900,"max":2029,"role":"birth_year"},
	{"name":"m","type":"int","class":"analytic","min":1,"max":12,"role":"birth_month","relevant":"${y} > 1950"}]}`))
	subs := [][]byte{encodeDoc(f, exprBase()), exprSubmission(map[string]any{"one": 1, "a": 2.5, "s": "x", "cs": []int{1, 7}}, map[string]any{"p": 3, "q": []int{3}})}
	if b, err := os.ReadFile("testdata/household.json"); err == nil {
		subs = append(subs, b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := form.Parse(b)
		if err != nil {
			return
		}
		sch, err := g.JSONSchema()
		if err != nil || !json.Valid(sch) {
			t.Fatalf("JSONSchema of a parsed form: %v", err)
		}
		def, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		again, err := form.Parse(def)
		if err != nil {
			t.Fatalf("the form's own JSON does not parse: %v", err)
		}
		if sch2, _ := again.JSONSchema(); !bytes.Equal(sch, sch2) {
			t.Fatal("the form's own JSON gives another schema")
		}
		for _, sb := range subs {
			s, err := form.Decode(sb)
			if err != nil {
				t.Fatal(err)
			}
			if err := g.ValidateAt(s, now); err != nil {
				var fe *form.Error
				if !errors.As(err, &fe) {
					t.Fatalf("Validate error %T: %v", err, err)
				}
			}
		}
	})
}

// FuzzExpr puts arbitrary text in the expression test bed (a household
// check, and a person field's constraint) and validates households with
// every kind of value, present and absent: parsing refuses or accepts,
// evaluation never panics.
func FuzzExpr(f *testing.F) {
	for _, e := range []string{
		"${a} = 1", "${a} div ${b} > 0", "-(-(${b})) mod 0 = 0", "selected(${cs}, '7')", "count-selected(${cs}) = 2",
		"string-length(${s}) > 2", "if(${c} = 1, ${a}, ${b}) <= 3", "${d} = '2019-01-01' and not(${s} != 'x')",
		"(${a} + ${b}) * 2 >= ${one} or ${c} != 2", ". > ${a}",
	} {
		f.Add(e)
	}
	households := []map[string]any{
		{"one": 1},
		{"one": 0, "a": 0, "b": 0, "s": "", "c": 1, "cs": []int{1}},
		{"one": 9, "a": -999.5, "b": 1000, "s": "Đức😀", "d": "2019-01-01", "c": 2, "cs": []int{7, 2, 1}},
		{"one": 1, "a": "x", "b": 1.5, "s": 3, "c": []int{1}, "cs": 1},
	}
	f.Fuzz(func(t *testing.T, e string) {
		for _, def := range []string{exprDef(e, ""), exprDef("${one} = 1", e)} {
			g, err := form.Parse([]byte(def))
			if err != nil {
				continue
			}
			for _, h := range households {
				s, err := form.Decode(exprSubmission(h, map[string]any{"p": 5, "q": []int{1, 3}}))
				if err != nil {
					t.Fatal(err)
				}
				if err := g.ValidateAt(s, now); err != nil {
					var fe *form.Error
					if !errors.As(err, &fe) {
						t.Fatalf("Validate error %T: %v", err, err)
					}
				}
			}
		}
	})
}
