package form_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker/form"
)

// exprDef is a form whose household check "t" is expr (and whose person
// field "p" has the constraint pc, if any): the expressions' test bed.
func exprDef(expr, pc string) string {
	c := ""
	if pc != "" {
		b, _ := json.Marshal(pc)
		c = `,"constraint":` + string(b)
	}
	e, _ := json.Marshal(expr)
	return `{"name":"ex","version":1,
	"household":[
	  {"name":"one","type":"int","class":"analytic","min":0,"max":9,"required":true},
	  {"name":"a","type":"decimal","class":"analytic","min":-1000,"max":1000},
	  {"name":"b","type":"int","class":"analytic","min":-1000,"max":1000},
	  {"name":"s","type":"string","class":"analytic","max_len":50},
	  {"name":"d","type":"date","class":"analytic"},
	  {"name":"c","type":"code","class":"analytic","codes":[{"code":1,"label":"x"},{"code":2,"label":"y"}]},
	  {"name":"cs","type":"code_set","class":"analytic","codes":[{"code":1,"label":"x"},{"code":2,"label":"y"},{"code":7,"label":"z"}]}],
	"person":[
	  {"name":"p","type":"int","class":"analytic","min":0,"max":200` + c + `},
	  {"name":"q","type":"code_set","class":"analytic","codes":[{"code":1,"label":"x"},{"code":3,"label":"y"}]}],
	"checks":[{"id":"t","scope":"household","expr":` + string(e) + `}]}`
}

// household is a submission to the expression bed with these household
// answers (and one person with these).
func exprSubmission(hh, p map[string]any) []byte {
	if p == nil {
		p = map[string]any{}
	}
	m := map[string]any{
		"id": "6f1c3a52-8d4e-4b7a-9c21-0e5d7f3b8a64", "form": "ex", "form_version": 1, "area": "a1", "household_no": 1,
		"interviewed_at": "2019-04-05T09:30:00+07:00", "household": hh, "persons": []any{p},
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// evalCheck reports whether expr holds for the household answers hh, as
// the check "${one} = 1 and (expr)" ("one" is always set, so the check
// is never skipped as naming only absent fields).
func evalCheck(t *testing.T, expr string, hh map[string]any) bool {
	t.Helper()
	f, err := form.Parse([]byte(exprDef("${one} = 1 and ("+expr+")", "")))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	if _, ok := hh["one"]; !ok {
		hh["one"] = 1
	}
	_, err = decodeValidate(f, exprSubmission(hh, nil))
	if err == nil {
		return true
	}
	ps := problems(t, err)
	if len(ps) != 1 || ps[0] != "check t: not met" {
		t.Fatalf("%s: problems %q", expr, ps)
	}
	return false
}

func TestExprEval(t *testing.T) {
	type vals = map[string]any
	tests := []struct {
		expr string
		hh   vals
		want bool
	}{
		// Arithmetic and precedence.
		{"${one} + 2 * 3 = 7", nil, true},
		{"(${one} + 2) * 3 = 9", nil, true},
		{"7 div 2 = 3.5", nil, true},
		{"7 mod 3 = 1 and -7 mod 3 = -1", nil, true},
		{"- - 3 = 3 and -${one} = -1", nil, true},
		{"1 - 2 - 3 = -4", nil, true},
		{"${a} * 2 = 3", vals{"a": 1.5}, true},
		{"${a} < ${b}", vals{"a": 1.5, "b": 2}, true},
		{".5 + 0.5 = ${one}", nil, true},
		// Comparisons with absent values are false, whatever the operator.
		{"${a} = 1", nil, false},
		{"${a} != 1", nil, false},
		{"${a} < 1 or ${a} >= 1", nil, false},
		{"not(${a} = 1)", nil, true},
		{"${a} + 1 > 0", nil, false},
		{"-${a} < 0 or -${a} >= 0", nil, false},
		// Division or mod by zero is absent, so the comparison is false.
		{"${one} div 0 > 0 or ${one} div 0 <= 0", nil, false},
		{"${one} mod 0 = 0 or ${one} mod 0 != 0", nil, false},
		{"${b} div ${b} = 1", vals{"b": 0}, false},
		{"not(${one} div 0 = 1)", nil, true},
		// Beyond float64 is absent too.
		{"${a}" + strings.Repeat(" * 100000000000000000000", 16) + " > 0", vals{"a": 1}, false},
		{"${a}" + strings.Repeat(" * 100000000000000000000", 15) + " > 0", vals{"a": 1}, true},
		// Strings.
		{"${s} = 'abc' and ${s} != \"abd\"", vals{"s": "abc"}, true},
		{"string-length(${s}) = 4", vals{"s": "Đức😀"}, true},
		{"string-length(${s}) = 0", nil, true},
		{"${d} = '2019-02-03'", vals{"d": "2019-02-03"}, true},
		// Code fields compare as numbers, also with a quoted code.
		{"${c} = 2 and ${c} = '2' and selected(${c}, '2') and not(selected(${c}, 1))", vals{"c": 2}, true},
		{"selected(${c}, 1)", nil, false},
		// Code sets.
		{"selected(${cs}, '7') and selected(${cs}, 1) and not(selected(${cs}, 2))", vals{"cs": []int{7, 1}}, true},
		{"count-selected(${cs}) = 3", vals{"cs": []int{2, 7, 1}}, true},
		{"count-selected(${cs}) = 0 and not(selected(${cs}, 1))", nil, true},
		// if() and logic.
		{"if(${one} = 1, 'y', 'n') = 'y'", nil, true},
		{"if(${a} > 0, ${a}, 0 - ${a}) = 3", vals{"a": -3}, true},
		{"if(${a} > 0, 1, 2) = 2", nil, true},
		{"${one} = 1 or ${one} div 0 = 1", nil, true},
		{"${one} = 2 and ${one} = 1", nil, false},
		{"(${one} = 1) = (${one} > 0)", nil, true},
		{"${one} = 1 = (2 = 2)", nil, true},
	}
	for _, tc := range tests {
		hh := tc.hh
		if hh == nil {
			hh = vals{}
		}
		if got := evalCheck(t, tc.expr, hh); got != tc.want {
			t.Errorf("%s with %v: %v, want %v", tc.expr, tc.hh, got, tc.want)
		}
	}
}

// TestCheckAllAbsent: a check whose fields are all absent holds (and one
// with a present field is evaluated).
func TestCheckAllAbsent(t *testing.T) {
	f, err := form.Parse([]byte(exprDef("${a} > 0", "")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeValidate(f, exprSubmission(map[string]any{"one": 1}, nil)); err != nil {
		t.Errorf("check over absent fields: %v", err)
	}
	_, err = decodeValidate(f, exprSubmission(map[string]any{"one": 1, "a": -1}, nil))
	if ps := problems(t, err); len(ps) != 1 || ps[0] != "check t: not met" {
		t.Errorf("problems %q", ps)
	}
}

func TestExprParseErrors(t *testing.T) {
	tests := []struct{ expr, msg string }{
		{"", "expr is required"},
		{"${one}", "must be a condition"},
		{"${one} + 1", "must be a condition"},
		{"${nope} = 1", `at character 1: unknown field ${nope}`},
		{"${one} = 1 and ${nope} = 1", `at character 16: unknown field ${nope}`},
		{"'Đức' = ${nope}", `at character 9: unknown field ${nope}`},
		{"${p} = 1", `${p} is a person field; a household expression may name household fields only`},
		{"${One} = 1", "field reference must be ${name}"},
		{"${one = 1", "field reference without its closing }"},
		{"$one = 1", `"$" must start a field reference`},
		{". = 1", `"." (the value) is only for a field's constraint`},
		{"${one} = 1 and", "expected a value, found end of expression"},
		{"${one} = (1", `expected ")"`},
		{"${one} = 1)", `unexpected ")"`},
		{"${one} == 1", "expected a value"},
		{"${one} ! 1", `"!" must be followed by "="`},
		{"${one} = 1 && ${one} = 2", "unexpected character"},
		{"${one} = 'abc", "string without its closing quote"},
		{"foo(${one}) = 1", "unknown function"},
		{"true()", "unknown function"},
		{"not(${one})", "not() needs a condition"},
		{"not(${one} = 1, ${one} = 2)", "not takes 1 argument(s), not 2"},
		{"selected(${cs})", "selected takes 2 argument(s), not 1"},
		{"selected(${a}, 1)", "selected() needs a code or select-many field first"},
		{"selected(${cs}, 3)", "selected() needs one of ${cs}'s codes second"},
		{"selected(${cs}, 'x')", "selected() needs one of ${cs}'s codes second"},
		{"selected(${cs}, ${c})", "selected() needs one of ${cs}'s codes second"},
		{"count-selected(${c}) = 1", "count-selected() needs a select-many field"},
		{"string-length(${one}) = 1", "string-length() needs a string"},
		{"${cs} = 1", "a select-many field can only be read with selected() or count-selected()"},
		{"${s} < 'b'", "a string can only be compared with = or !="},
		{"${s} = 1", "compares a number with a string"},
		{"${one} = 'x'", "compares a number with a string"},
		{"${s} + 1 = 2", "arithmetic needs numbers"},
		{"(${one} = 1) < (${one} = 2)", "a condition can only be compared with = or !="},
		{"${one} = 1 and 2", `"and" needs conditions on both sides`},
		{"${one} or ${one} = 1", `"or" needs conditions on both sides`},
		{"if(${one}, 1, 2) = 1", "if() needs a condition first"},
		{"if(${one} = 1, 1, 'a') = 1", "if() needs two values of the same type"},
		{"${c} = 3", "3 is not a code of ${c}"},
		{"${c} != '5'", "5 is not a code of ${c}"},
		{"1 = 1", "expr names no field"},
		{"${one} = 1e5", "unexpected"},
		{"${one} = 1" + strings.Repeat(" ", 1000), "longer than 1000 bytes"},
		{"${one} = " + strings.Repeat("(", 33) + "1" + strings.Repeat(")", 33), "at character 42: nested more than 32 deep"},
		{"${one} = " + strings.Repeat("-", 33) + "1", "nested more than 32 deep"},
		{strings.Repeat("not(", 33) + "${one} = 1" + strings.Repeat(")", 33), "nested more than 32 deep"},
	}
	for _, tc := range tests {
		_, err := form.Parse([]byte(exprDef(tc.expr, "")))
		if err == nil {
			t.Errorf("%q: Parse succeeded", tc.expr)
			continue
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: error %q does not contain %q", tc.expr, err, tc.msg)
		}
		if !strings.HasPrefix(err.Error(), `form ex: check "t": `) {
			t.Errorf("%q: error %q does not name the form and check", tc.expr, err)
		}
	}
	// At the bounds, and everything a definition may say in 1000 bytes.
	for _, ok := range []string{
		"${one} = " + strings.Repeat("(", 32) + "1" + strings.Repeat(")", 32),
		"${one} = 1" + strings.Repeat(" ", 1000-len("${one} = 1")),
		"${one} = 1" + strings.Repeat(" or ${one} = 1", (1000-10)/14),
	} {
		if _, err := form.Parse([]byte(exprDef(ok, ""))); err != nil {
			t.Errorf("%.40q…: %v", ok, err)
		}
	}
}

// TestExprHugeDefinition is the attack the bounds stop: a definition of a
// megabyte that is one expression nested half a million deep is refused
// at once, by its length, not parsed until the stack gives out.
func TestExprHugeDefinition(t *testing.T) {
	n := (1<<20 - 2000) / 2
	e := "${one} = " + strings.Repeat("(", n) + "1" + strings.Repeat(")", n)
	start := time.Now()
	_, err := form.Parse([]byte(exprDef(e, "")))
	if err == nil || !strings.Contains(err.Error(), "longer than 1000 bytes") {
		t.Errorf("Parse: %v", err)
	}
	if d := time.Since(start); d > time.Until(deadlineOf(t))/2 {
		t.Errorf("refusing took %v", d)
	}
}

func deadlineOf(t *testing.T) time.Time {
	if d, ok := t.Deadline(); ok {
		return d
	}
	return time.Now().Add(time.Minute)
}

// TestExprScopes: a person field's expressions may name person and
// household fields (the person's own first), a household field's only
// household fields; "." is the field's own value, in constraints only; a
// relevant may not name its own field, nor depend on itself through
// others.
func TestExprScopes(t *testing.T) {
	def := func(hhExtra, pExtra string) string {
		return `{"name":"sc","version":1,
		"household":[{"name":"n","type":"int","class":"analytic","min":0,"max":9},
		             {"name":"h","type":"int","class":"analytic","min":0,"max":9` + hhExtra + `}],
		"person":[{"name":"n","type":"int","class":"analytic","min":0,"max":9},
		          {"name":"m","type":"int","class":"analytic","min":0,"max":9` + pExtra + `}]}`
	}
	for _, tc := range []struct{ hh, p, msg string }{
		{`,"relevant":"${m} = 1"`, "", `form sc: household field "h": relevant: at character 1: ${m} is a person field`},
		{`,"constraint":". = ${m}"`, "", `form sc: household field "h": constraint: at character 5: ${m} is a person field`},
		{`,"relevant":". = 1"`, "", `form sc: household field "h": relevant: at character 1: "." (the value) is only for a field's constraint`},
		{`,"relevant":"${h} = 1"`, "", `form sc: household field "h": relevant: at character 1: a field's relevant cannot name the field itself`},
		{`,"relevant":"${n} = 1"`, "", ""},
		{"", `,"relevant":"${h} = 1 and ${n} = 2"`, ""},
		{"", `,"relevant":"${m} = 1"`, `form sc: person field "m": relevant: at character 1: a field's relevant cannot name the field itself`},
		{"", `,"constraint":". != ${n} and . < ${h}"`, ""},
		{"", `,"constraint":"${nope} = 1"`, `form sc: person field "m": constraint: at character 1: unknown field ${nope}`},
		{"", `,"constraint_message":"x"`, `form sc: person field "m": constraint_message without a constraint`},
		{"", `,"constraint":"${m} > 1","constraint_message":"` + strings.Repeat("x", 301) + `"`, `form sc: person field "m": constraint_message must be valid UTF-8 of at most 300 bytes`},
	} {
		_, err := form.Parse([]byte(def(tc.hh, tc.p)))
		switch {
		case tc.msg == "" && err != nil:
			t.Errorf("%s %s: %v", tc.hh, tc.p, err)
		case tc.msg != "" && (err == nil || !strings.Contains(err.Error(), tc.msg)):
			t.Errorf("%s %s: error %v, want %q", tc.hh, tc.p, err, tc.msg)
		}
	}
	// In person scope ${n} is the person's n, not the household's.
	f, err := form.Parse([]byte(def("", `,"constraint":". = ${n}"`)))
	if err != nil {
		t.Fatal(err)
	}
	b := []byte(`{"id":"6f1c3a52-8d4e-4b7a-9c21-0e5d7f3b8a64","form":"sc","form_version":1,"area":"a","household_no":1,"interviewed_at":"2019-04-05T09:30:00Z",
	"household":{"n":5},"persons":[{"n":3,"m":3},{"n":4,"m":5}]}`)
	_, err = decodeValidate(f, b)
	if ps := problems(t, err); len(ps) != 1 || ps[0] != "persons[1].m: constraint not met" {
		t.Errorf("problems %q", ps)
	}
	// A circle through two fields' relevants.
	circle := `{"name":"sc","version":1,"household":[
	  {"name":"a","type":"int","class":"analytic","min":0,"max":9,"relevant":"${b} = 1"},
	  {"name":"b","type":"int","class":"analytic","min":0,"max":9,"relevant":"${c} = 1"},
	  {"name":"c","type":"int","class":"analytic","min":0,"max":9,"relevant":"${a} = 1"}],
	  "person":[{"name":"n","type":"int","class":"analytic","min":0,"max":9}]}`
	if _, err := form.Parse([]byte(circle)); err == nil || !strings.Contains(err.Error(), "its relevant depends on itself") {
		t.Errorf("circle: %v", err)
	}
}

// TestRelevantAndRequired: a value where the relevant does not hold is
// "not relevant", a required field is required only where it holds, and a
// constraint is checked only on present, well-typed values.
func TestRelevantAndRequired(t *testing.T) {
	f := exprForm(t)
	base := func(change func(m doc)) []byte {
		m := exprBase()
		change(m)
		return encodeDoc(t, m)
	}
	setPerson := func(m doc, p doc) { m["persons"] = []any{p} }
	adult := func(extra doc) doc {
		p := doc{"full_name": "Lê Thị Hoa", "relationship": 1, "sex": 1, "birth_year": 1980, "worked": 1, "hours": 40}
		for k, v := range extra {
			if v == nil {
				delete(p, k)
			} else {
				p[k] = v
			}
		}
		return p
	}
	tests := []struct {
		name   string
		change func(m doc)
		want   []string // exactly these problems; nil: valid
	}{
		{"adult who worked", func(m doc) { setPerson(m, adult(nil)) }, nil},
		{"required where relevant", func(m doc) { setPerson(m, adult(doc{"hours": nil})) }, []string{"persons[0].hours: required"}},
		{"not required where not relevant", func(m doc) { setPerson(m, adult(doc{"worked": 2, "hours": nil})) }, nil},
		{"value where not relevant", func(m doc) { setPerson(m, adult(doc{"worked": 2})) }, []string{"persons[0].hours: not relevant"}},
		{"not relevant is said before its type", func(m doc) { setPerson(m, adult(doc{"worked": 2, "hours": "many"})) }, []string{"persons[0].hours: not relevant"}},
		{"null where not relevant", func(m doc) { p := adult(doc{"worked": 2, "hours": nil}); p["hours"] = nil; setPerson(m, p) }, nil},
		{"child", func(m doc) {
			setPerson(m, adult(doc{"relationship": 3, "birth_year": 2015, "worked": nil, "hours": nil}))
			m["persons"] = append([]any{adult(nil)}, m["persons"].([]any)...)
		}, nil},
		{"child who worked", func(m doc) {
			setPerson(m, adult(nil))
			m["persons"] = append(m["persons"].([]any), adult(doc{"relationship": 3, "birth_year": 2015}))
		}, []string{"persons[1].worked: not relevant"}},
		{"relevant from the household", func(m doc) { delete(hh(m), "phone"); p := adult(nil); p["uses_phone"] = 1; setPerson(m, p) }, []string{"persons[0].uses_phone: not relevant"}},
		{"relevant from the household holds", func(m doc) { hh(m)["phone"] = "0912345678"; p := adult(nil); p["uses_phone"] = 1; setPerson(m, p) }, nil},
		{"select-many relevant", func(m doc) { hh(m)["water"] = []any{9, 1}; delete(hh(m), "water_other") }, []string{"household.water_other: required"}},
		{"select-many relevant not", func(m doc) { hh(m)["water"] = []any{1}; hh(m)["water_other"] = "river" }, []string{"household.water_other: not relevant"}},
		{"constraint with message", func(m doc) { hh(m)["rooms"] = 2; hh(m)["sleeping_rooms"] = 3 }, []string{"household.sleeping_rooms: more sleeping rooms than rooms"}},
		{"constraint without message", func(m doc) { hh(m)["note"] = "ab" }, []string{"household.note: constraint not met"}},
		{"constraint on a bad value is not evaluated", func(m doc) { hh(m)["note"] = "" }, []string{"household.note: must not be blank"}},
		{"constraint on a set", func(m doc) { setPerson(m, adult(doc{"worked": 2, "hours": nil, "activities": []any{6, 1}})) }, []string{"persons[0].activities: 'none' goes alone"}},
		{"constraint on a set holds", func(m doc) { setPerson(m, adult(doc{"worked": 2, "hours": nil, "activities": []any{6}})) }, nil},
		{"person check", func(m doc) {
			setPerson(m, adult(nil))
			m["persons"] = append(m["persons"].([]any), adult(doc{"birth_year": 2020, "worked": nil, "hours": nil}))
		}, []string{"persons[1]: check head_age: the head of household is at least 15"}},
		{"household checks", func(m doc) {
			hh(m)["has_toilet"] = 1
			hh(m)["rooms"] = 0
			delete(hh(m), "sleeping_rooms")
			hh(m)["rent"] = 50000
			delete(hh(m), "note")
		}, []string{"check toilet_rooms: a household with a toilet has a room", "check rent_note: not met"}},
		{"check on a set", func(m doc) { hh(m)["water"] = []any{1, 2, 3, 5, 9}; hh(m)["water_other"] = "river" }, []string{"check water_count: at most four sources of water"}},
		{"check over absent fields holds", func(m doc) { delete(hh(m), "rent"); delete(hh(m), "note") }, nil},
	}
	for _, tc := range tests {
		_, err := decodeValidateAt(f, base(tc.change))
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		ps := problems(t, err)
		if fmt.Sprint(ps) != fmt.Sprint(tc.want) {
			t.Errorf("%s: problems %q, want %q", tc.name, ps, tc.want)
		}
	}
}

// decodeValidateAt validates at a time within f's fieldwork.
func decodeValidateAt(f *form.Form, b []byte) (*form.Submission, error) {
	s, err := form.Decode(b)
	if err != nil {
		return nil, err
	}
	return s, f.ValidateAt(s, clockOf(f))
}
