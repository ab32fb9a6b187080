package form_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker/form"
)

// exprForm is testdata/exprform.json: a form with every member of issue
// 14 — code_set fields, relevant (from the same list, from the household,
// on a select-many), constraints with and without a message, person and
// household checks, roles.
func exprForm(t testing.TB) *form.Form {
	t.Helper()
	b, err := os.ReadFile("testdata/exprform.json")
	if err != nil {
		t.Fatal(err)
	}
	f, err := form.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// exprBase is a fixed valid household of exprForm.
func exprBase() doc {
	return doc{
		"id": "6f1c3a52-8d4e-4b7a-9c21-0e5d7f3b8a64", "form": "exprtest", "form_version": 2, "area": "42.436.18070.001",
		"household_no": 7, "interviewed_at": "2029-04-03T10:00:00+07:00",
		"household": doc{"head_name": "Lê Thị Hoa", "rooms": 3, "sleeping_rooms": 1, "water": []any{3, 1}, "has_toilet": 1,
			"toilet_type": 2, "rent": 0, "note": "corner house"},
		"persons": []any{doc{"full_name": "Lê Thị Hoa", "relationship": 1, "sex": 2, "birth_year": 1980, "worked": 1, "hours": 40, "children": 2}},
	}
}

// exprDoc draws household i of seed for exprForm: valid by construction,
// across what the form accepts (every relevant both ways, optional fields
// absent or null, sets of every size in any order, bounds), written from
// the form's rules as a reader of the file would apply them rather than
// by asking the validator.
func exprDoc(t testing.TB, f *form.Form, seed int64, i int) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(seed), uint64(i)+1000))
	hf, pf := fieldDefs(f)
	opt := func(obj doc, name string, v any) { // absent, null or v
		switch r.IntN(4) {
		case 0:
		case 1:
			obj[name] = nil
		default:
			obj[name] = v
		}
	}
	absent := func(obj doc, name string) { // a field that is not relevant: absent or null
		if r.IntN(2) == 0 {
			obj[name] = nil
		}
	}
	subset := func(codes []int, k int) []any {
		c := slices.Clone(codes)
		r.Shuffle(len(c), func(a, b int) { c[a], c[b] = c[b], c[a] })
		out := make([]any, k)
		for j := range out {
			out[j] = c[j]
		}
		return out
	}
	census := time.Date(2029, 4, 1, 0, 0, 0, 0, time.FixedZone("", 7*3600))
	m := doc{
		"id":             fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", r.Uint32(), r.IntN(1<<16), r.IntN(1<<12), r.IntN(1<<12), r.Int64N(1<<48)),
		"form":           "exprtest",
		"form_version":   2,
		"area":           schemaEAs[r.IntN(len(schemaEAs))].Code,
		"household_no":   1 + i,
		"interviewed_at": census.Add(-90*24*time.Hour + time.Duration(r.Int64N(int64(100*24*time.Hour)))).Format(time.RFC3339),
	}
	h := doc{"head_name": validValue(r, hf["head_name"])}
	phone := r.IntN(2) == 0
	if phone {
		h["phone"] = validValue(r, hf["phone"])
	} else {
		absent(h, "phone")
	}
	toilet := 1 + r.IntN(2)
	h["has_toilet"] = toilet
	rooms := r.IntN(31)
	if toilet == 1 && rooms == 0 {
		rooms = 1 // check toilet_rooms
	}
	h["rooms"] = rooms
	opt(h, "sleeping_rooms", []int{0, rooms, r.IntN(rooms + 1)}[r.IntN(3)])
	water := subset([]int{1, 2, 3, 5, 9}, 1+r.IntN(4)) // check water_count: at most 4
	h["water"] = water
	if slices.Contains(water, any(9)) {
		h["water_other"] = validValue(r, hf["water_other"])
	} else {
		absent(h, "water_other")
	}
	if toilet == 1 {
		opt(h, "toilet_type", 1+r.IntN(2))
	} else {
		absent(h, "toilet_type")
	}
	var rent float64
	switch r.IntN(6) {
	case 0:
		absent(h, "rent")
	case 1:
		h["rent"] = json.Number([]string{"0", "0.0", "-0", "10", "1e1", "100000.5", "1.000005e5"}[r.IntN(7)])
		rent, _ = h["rent"].(json.Number).Float64()
	default:
		rent = 10 + r.Float64()*(100000.5-10)
		h["rent"] = json.Number([]string{fmt.Sprintf("%.3f", rent), fmt.Sprintf("%e", rent)}[r.IntN(2)])
	}
	note := func() string {
		rs := []rune(validValue(r, hf["note"]).(string))
		for len(rs) < 3 { // constraint: at least 3 characters
			rs = append(rs, 'x')
		}
		return string(rs)
	}
	if rent >= 50000 { // check rent_note
		h["note"] = note()
	} else {
		opt(h, "note", note())
	}
	m["household"] = h

	n := 1 + r.IntN(8)
	if r.IntN(20) == 0 {
		n = form.MaxPersons
	}
	ps := make([]any, n)
	for k := range ps {
		p := doc{"full_name": validValue(r, pf["full_name"])}
		rel := 1
		if k > 0 {
			rel = 1 + r.IntN(4)
		}
		p["relationship"] = rel
		sex := 1 + r.IntN(2)
		p["sex"] = sex
		by := 1900 + r.IntN(130)
		if rel == 1 && 2029-by < 15 { // check head_age
			by = 2014 - r.IntN(115)
		}
		p["birth_year"] = by
		age := 2029 - by
		opt(p, "birth_month", 1+r.IntN(12))
		if age >= 15 {
			worked := 1 + r.IntN(2)
			p["worked"] = worked
			if worked == 1 {
				p["hours"] = []int{1, 140, 1 + r.IntN(140)}[r.IntN(3)]
				absent(p, "activities")
			} else {
				absent(p, "hours")
				if r.IntN(4) == 0 {
					opt(p, "activities", []any{6}) // constraint: "none" alone
				} else {
					opt(p, "activities", subset([]int{1, 2, 3, 4, 5}, 1+r.IntN(5)))
				}
			}
		} else {
			for _, name := range []string{"worked", "hours", "activities"} {
				absent(p, name)
			}
		}
		if sex == 2 && age >= 15 {
			opt(p, "children", min(20, r.IntN(age/2+1))) // constraint: children * 2 <= age
		} else {
			absent(p, "children")
		}
		if phone {
			opt(p, "uses_phone", 1+r.IntN(2))
		} else {
			absent(p, "uses_phone")
		}
		ps[k] = p
	}
	m["persons"] = ps
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// freeFields are the fields of f that no expression reads and that have
// no relevant or constraint: any valid value of their type keeps a valid
// household valid.
func freeFields(f *form.Form) map[string]bool {
	named := map[string]bool{}
	ref := regexp.MustCompile(`\$\{([a-z0-9_]+)\}`)
	note := func(e string) {
		for _, m := range ref.FindAllStringSubmatch(e, -1) {
			named[m[1]] = true
		}
	}
	for _, c := range f.Checks {
		note(c.Expr)
	}
	for _, fd := range slices.Concat(f.Household, f.Person) {
		note(fd.Relevant)
		note(fd.Constraint)
	}
	free := map[string]bool{}
	for _, fd := range slices.Concat(f.Household, f.Person) {
		if fd.Relevant == "" && fd.Constraint == "" && !named[fd.Name] {
			free[fd.Name] = true
		}
	}
	return free
}

// TestRoles: census2019 and the test form name their birth fields by
// role; a role goes only on an analytic int person field, once, with a
// birth month within 1…12, and a form has a birth year or an age.
func TestRoles(t *testing.T) {
	for _, f := range []*form.Form{form.Default(), exprForm(t)} {
		by, ok1 := f.RoleField(form.RoleBirthYear)
		bm, ok2 := f.RoleField(form.RoleBirthMonth)
		_, ok3 := f.RoleField(form.RoleAge)
		if by != "birth_year" || bm != "birth_month" || !ok1 || !ok2 || ok3 {
			t.Errorf("%s roles: %q %v, %q %v, age %v", f.Name, by, ok1, bm, ok2, ok3)
		}
	}
	def := func(moment string, person ...string) string {
		if moment != "" {
			moment = `"census_moment":"` + moment + `",`
		}
		return `{"name":"r","version":1,` + moment + `"household":[{"name":"h","type":"date","class":"analytic"}],"person":[` + strings.Join(person, ",") + `]}`
	}
	const m = "2029-04-01T00:00:00+07:00"
	field := func(name, typ, class, extra string) string {
		rng := ""
		if typ == "int" {
			rng = `,"min":1,"max":12`
		}
		return `{"name":"` + name + `","type":"` + typ + `","class":"` + class + `"` + rng + extra + `}`
	}
	for _, tc := range []struct{ def, msg string }{
		{def(m, field("y", "int", "analytic", `,"role":"birth_year"`)), ""},
		{def(m, field("y", "int", "analytic", `,"role":"birth_year"`), field("mo", "int", "analytic", `,"role":"birth_month"`)), ""},
		{def("", field("a", "int", "analytic", `,"role":"age"`)), ""},
		{def(m, field("y", "int", "identifying", `,"role":"birth_year"`)), `form r: person field "y": role birth_year is only for an analytic int field of the person list`},
		{def(m, field("y", "decimal", "analytic", `,"min":1,"max":2,"role":"birth_year"`)), "role birth_year is only for an analytic int field"},
		{def(m, field("y", "code", "analytic", `,"codes":[{"code":1,"label":"x"}],"role":"age"`)), "role age is only for an analytic int field"},
		{`{"name":"r","version":1,"household":[{"name":"h","type":"int","class":"analytic","min":0,"max":9,"role":"age"}],"person":[{"name":"p","type":"date","class":"analytic"}]}`,
			`form r: household field "h": role age is only for an analytic int field of the person list`},
		{def(m, field("y", "int", "analytic", `,"role":"year"`)), `unknown role "year"`},
		{def(m, field("y", "int", "analytic", `,"role":"birth_year"`), field("z", "int", "analytic", `,"role":"birth_year"`)), `form r: person field "z": role birth_year is already on field "y"`},
		{def(m, field("y", "int", "analytic", `,"role":"birth_year"`), `{"name":"mo","type":"int","class":"analytic","min":0,"max":12,"role":"birth_month"}`), `person field "mo": role birth_month needs min and max within 1 and 12`},
		{def(m, field("y", "int", "analytic", `,"role":"birth_year"`), `{"name":"mo","type":"int","class":"analytic","min":1,"max":13,"role":"birth_month"}`), "role birth_month needs min and max within 1 and 12"},
		{def(m, field("mo", "int", "analytic", `,"role":"birth_month"`)), `person field "mo" has role birth_month but no field has role birth_year`},
		{def(m, field("y", "int", "analytic", `,"role":"birth_year"`), field("a", "int", "analytic", `,"role":"age"`)), `form r: person field "a" has role age and field "y" role birth_year: give a form one or the other`},
		{def("", field("y", "int", "analytic", `,"role":"birth_year"`)), ""},
		{def(m, `{"name":"a","type":"int","class":"analytic","min":-1,"max":120,"role":"age"}`), "role age needs a min of 0 or more"},
	} {
		_, err := form.Parse([]byte(tc.def))
		switch {
		case tc.msg == "" && err != nil:
			t.Errorf("%s: %v", tc.def, err)
		case tc.msg != "" && (err == nil || !strings.Contains(err.Error(), tc.msg)):
			t.Errorf("%s: error %v, want %q", tc.def, err, tc.msg)
		}
	}
}

// TestParseNewMembers: what compile refuses of checks, code sets, titles
// and messages, each error naming the form and what to fix.
func TestParseNewMembers(t *testing.T) {
	const person = `"person":[{"name":"p","type":"int","class":"analytic","min":0,"max":9}]`
	def := func(household, rest string) string {
		return `{"name":"f","version":1,"household":[` + household + `],` + person + rest + `}`
	}
	const hf = `{"name":"a","type":"int","class":"analytic","min":0,"max":9}`
	checks := func(cs string) string { return def(hf, `,"checks":[`+cs+`]`) }
	long := func(n int) string { return `"` + strings.Repeat("x", n) + `"` }
	for _, tc := range []struct{ def, msg string }{
		{checks(`{"id":"ok","scope":"household","expr":"${a} > 1"},{"id":"ok2","scope":"person","expr":"${p} > ${a}","message":"p above a"}`), ""},
		{checks(`{"id":"Bad","scope":"household","expr":"${a} > 1"}`), "form f: check 1: id must be 1 to 64 of a-z 0-9 _"},
		{checks(`{"id":"","scope":"household","expr":"${a} > 1"}`), "form f: check 1: id must be"},
		{checks(`{"id":"x","scope":"household","expr":"${a} > 1"},{"id":"x","scope":"person","expr":"${p} > 1"}`), `form f: check "x": id given twice`},
		{checks(`{"id":"x","scope":"area","expr":"${a} > 1"}`), `form f: check "x": scope must be household or person`},
		{checks(`{"id":"x","scope":"household","expr":"${p} > 1"}`), `form f: check "x": expr: at character 1: ${p} is a person field`},
		{checks(`{"id":"x","scope":"household","expr":"${a} > 1","message":` + long(301) + `}`), `form f: check "x": message must be valid UTF-8 of at most 300 bytes`},
		{checks(`{"id":"x","scope":"household","expr":"${a} > 1","colour":1}`), "unknown key"},
		{def(`{"name":"s","type":"code_set","class":"analytic"}`, ""), `household field "s": a code_set field needs 1 to 1000 codes`},
		{def(`{"name":"s","type":"code_set","class":"analytic","codes":[{"code":2,"label":"x"}]}`, ""), `household field "s": codes must include 1`},
		{def(`{"name":"s","type":"code_set","class":"analytic","codes":[{"code":1,"label":"x"},{"code":1,"label":"y"}]}`, ""), "code 1 listed twice"},
		{def(`{"name":"s","type":"code_set","class":"analytic","codes":[{"code":1,"label":"x"}],"min":1,"max":2}`, ""), "min and max are only for int and decimal fields"},
		{def(`{"name":"s","type":"code_set","class":"analytic","codes":[{"code":1,"label":"x"}],"quantitative":true}`, ""), "quantitative is only for"},
		{def(`{"name":"s","type":"code_set","class":"analytic","codes":[{"code":1,"label":"x"}]}`, ""), ""},
		{def(hf, `,"title":`+long(301)), "form f: title must be valid UTF-8 of at most 300 bytes"},
		{def(hf, `,"title":"Điều tra"`), ""},
		{def(`{"name":"a","type":"int","class":"analytic","min":0,"max":9,"relevant":`+long(1001)+`}`, ""), `household field "a": relevant longer than 1000 bytes`},
	} {
		_, err := form.Parse([]byte(tc.def))
		switch {
		case tc.msg == "" && err != nil:
			t.Errorf("%.80s: %v", tc.def, err)
		case tc.msg != "" && (err == nil || !strings.Contains(err.Error(), tc.msg)):
			t.Errorf("%.80s: error %v, want %q", tc.def, err, tc.msg)
		}
	}
	many := ""
	for i := range form.MaxChecks + 1 {
		if i > 0 {
			many += ","
		}
		many += fmt.Sprintf(`{"id":"c%d","scope":"household","expr":"${a} > 1"}`, i)
	}
	if _, err := form.Parse([]byte(checks(many))); err == nil || !strings.Contains(err.Error(), "more than 100 checks") {
		t.Errorf("101 checks: %v", err)
	}
}

// TestCodeSetValues: a code_set answer is a flat array of distinct
// allowed codes, at least one; Split writes it sorted and Join reads it
// back.
func TestCodeSetValues(t *testing.T) {
	f := exprForm(t)
	for _, tc := range []struct {
		water any
		want  string // "" valid
	}{
		{[]any{3, 1}, ""},
		{[]any{json.Number("1")}, ""},
		{json.RawMessage(`[ 5 ,2 ]`), ""},
		{[]any{}, "household.water: must hold at least one code"},
		{[]any{1, 1}, "household.water: code given twice"},
		{json.RawMessage(`[1, -0, 0]`), "household.water: code not allowed"},
		{[]any{4}, "household.water: code not allowed"},
		{[]any{json.Number("1.0")}, "household.water: codes must be whole numbers"},
		{[]any{json.Number("1e0")}, "household.water: codes must be whole numbers"},
		{[]any{json.Number("99999999999999999999")}, "household.water: codes must be whole numbers"},
		{json.Number("1"), "household.water: must be an array of codes"},
		{"1", "household.water: must be an array of codes"},
	} {
		m := exprBase()
		hh(m)["water"] = tc.water
		_, err := decodeValidateAt(f, encodeDoc(t, m))
		if tc.want == "" {
			if err != nil {
				t.Errorf("%v: %v", tc.water, err)
			}
			continue
		}
		if ps := problems(t, err); len(ps) != 1 || ps[0] != tc.want {
			t.Errorf("%v: problems %q, want %q", tc.water, ps, tc.want)
		}
	}
	m := exprBase()
	hh(m)["water"] = json.RawMessage(`[9, 5,1 ]`)
	hh(m)["water_other"] = "river"
	s, err := decodeValidateAt(f, encodeDoc(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if codes, ok := s.Household["water"].Codes(); !ok || fmt.Sprint(codes) != "[9 5 1]" {
		t.Errorf("Codes() = %v %v", codes, ok)
	}
	if _, ok := s.Household["rooms"].Codes(); ok {
		t.Error("Codes() of a number")
	}
	if _, ok := s.Household["water"].Int(); ok {
		t.Error("Int() of a code set")
	}
	parts, err := f.Split(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"water":[1,5,9]`; !strings.Contains(string(parts[form.Analytic]), want) {
		t.Errorf("analytic part %s lacks %s", parts[form.Analytic], want)
	}
	h, _, err := f.Join(parts)
	if err != nil {
		t.Fatal(err)
	}
	if string(h["water"].Raw()) != "[1,5,9]" {
		t.Errorf("joined water %s", h["water"].Raw())
	}
	if v := form.CodeSetValue(3, 1); string(v.Raw()) != "[3,1]" || fmt.Sprint(v) != "form.Value(redacted)" {
		t.Errorf("CodeSetValue: %s %v", v.Raw(), v)
	}
}
