package form_test

import (
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker/form"
)

func TestDefaultForm(t *testing.T) {
	f := form.Default()
	if f.Name != "census2019" || f.Version != 1 {
		t.Fatalf("Default is %s v%d", f.Name, f.Version)
	}
	type want struct {
		typ      string
		class    form.Class
		required bool
	}
	household := map[string]want{
		"head_name":     {form.TypeString, form.Identifying, true},
		"address":       {form.TypeString, form.Identifying, false},
		"phone":         {form.TypePhone, form.Identifying, false},
		"dwelling_type": {form.TypeCode, form.Analytic, false},
		"floor_area_m2": {form.TypeDecimal, form.Analytic, false},
		"water_source":  {form.TypeCode, form.Analytic, false},
		"electricity":   {form.TypeCode, form.Analytic, false},
	}
	person := map[string]want{
		"full_name":       {form.TypeString, form.Identifying, true},
		"relationship":    {form.TypeCode, form.Analytic, true},
		"sex":             {form.TypeCode, form.Analytic, true},
		"birth_year":      {form.TypeInt, form.Analytic, true},
		"birth_month":     {form.TypeInt, form.Analytic, false},
		"ethnicity":       {form.TypeCode, form.Analytic, false},
		"religion":        {form.TypeCode, form.Analytic, false},
		"education_level": {form.TypeCode, form.Analytic, false},
		"marital_status":  {form.TypeCode, form.Analytic, false},
	}
	check := func(list string, fields []form.Field, wants map[string]want) map[string]form.Field {
		byName := map[string]form.Field{}
		for _, fd := range fields {
			byName[fd.Name] = fd
			if fd.Label == "" {
				t.Errorf("%s.%s has no label", list, fd.Name)
			}
			if fd.Type == form.TypeCode {
				has1 := false
				for _, c := range fd.Codes {
					has1 = has1 || c.Code == 1
				}
				if !has1 {
					t.Errorf("%s.%s: codes lack 1", list, fd.Name)
				}
			}
		}
		for name, w := range wants {
			fd, ok := byName[name]
			if !ok {
				t.Errorf("%s.%s missing", list, name)
				continue
			}
			if fd.Type != w.typ || fd.Class != w.class || fd.Required != w.required {
				t.Errorf("%s.%s = %s/%s/required=%v, want %s/%s/%v", list, name, fd.Type, fd.Class, fd.Required, w.typ, w.class, w.required)
			}
		}
		return byName
	}
	check("household", f.Household, household)
	p := check("person", f.Person, person)

	codes := func(fd form.Field) map[int]string {
		m := map[int]string{}
		for _, c := range fd.Codes {
			m[c.Code] = c.Label
		}
		return m
	}
	sex := codes(p["sex"])
	if len(sex) != 2 || !strings.Contains(sex[1], "male") || !strings.Contains(sex[2], "female") {
		t.Errorf("sex codes = %v", sex)
	}
	eth := codes(p["ethnicity"])
	if len(eth) != 55 || !strings.HasPrefix(eth[1], "Kinh") {
		t.Errorf("ethnicity: %d codes, 1 = %q", len(eth), eth[1])
	}
	for c := 1; c <= 55; c++ {
		if eth[c] == "" {
			t.Errorf("ethnicity code %d missing", c)
		}
	}
	by := p["birth_year"]
	if *by.Min != 1900 || *by.Max != 2019 {
		t.Errorf("birth_year range %v–%v", *by.Min, *by.Max)
	}
	bm := p["birth_month"]
	if *bm.Min != 1 || *bm.Max != 12 {
		t.Errorf("birth_month range %v–%v", *bm.Min, *bm.Max)
	}

	// Default returns an independent Form each time.
	g := form.Default()
	g.Household[0].Name = "changed"
	if form.Default().Household[0].Name == "changed" {
		t.Error("Default shares state between calls")
	}
}

func TestParseErrors(t *testing.T) {
	const fieldsOK = `"person":[{"name":"full_name","type":"string","class":"identifying","max_len":10}]`
	def := func(household string) string {
		return `{"name":"f","version":1,"household":[` + household + `],` + fieldsOK + `}`
	}
	tests := []struct {
		name string
		def  string
		msg  string
	}{
		{"not json", `{`, "failed to parse"},
		{"unknown key", `{"name":"f","version":1,"colour":1,"household":[],"person":[]}`, "unknown key"},
		{"unknown field key", def(`{"name":"a","type":"int","class":"analytic","min":1,"max":2,"step":1}`), "unknown key"},
		{"trailing data", def(`{"name":"a","type":"int","class":"analytic","min":1,"max":2}`) + `{}`, "data after"},
		{"duplicate key", `{"name":"f","name":"g","version":1,"household":[],"person":[]}`, "name: key given twice"},
		{"case-folded key", `{"NAME":"f","version":1,"household":[],"person":[]}`, `write "name"`},
		{"control character in a label", def(`{"name":"a","type":"int","class":"analytic","min":1,"max":2,"label":"x\u001b[2J"}`), "control character U+001B"},
		{"bad form name", `{"name":"Census 2019","version":1,"household":[],"person":[]}`, "name"},
		{"version 0", `{"name":"f","version":0,"household":[],"person":[]}`, "version"},
		{"no household fields", def(``), "no household fields"},
		{"bad field name", def(`{"name":"Head Name","type":"string","class":"identifying","max_len":9}`), "name must be"},
		{"duplicate field", def(`{"name":"a","type":"string","class":"identifying","max_len":9},{"name":"a","type":"string","class":"analytic","max_len":9}`), "defined twice"},
		{"unknown type", def(`{"name":"a","type":"bool","class":"analytic"}`), `unknown type "bool"`},
		{"unknown class", def(`{"name":"a","type":"string","class":"secret","max_len":9}`), `unknown class "secret"`},
		{"string without max_len", def(`{"name":"a","type":"string","class":"analytic"}`), "max_len must be between 1 and 1000"},
		{"string max_len too big", def(`{"name":"a","type":"string","class":"analytic","max_len":1001}`), "max_len must be between"},
		{"int without range", def(`{"name":"a","type":"int","class":"analytic","min":1}`), "min and max are required"},
		{"min above max", def(`{"name":"a","type":"decimal","class":"analytic","min":5,"max":4}`), "min is larger than max"},
		{"fractional int bound", def(`{"name":"a","type":"int","class":"analytic","min":0.5,"max":4}`), "whole numbers"},
		{"huge bound", def(`{"name":"a","type":"decimal","class":"analytic","min":0,"max":1e300}`), "within"},
		{"code without codes", def(`{"name":"a","type":"code","class":"analytic"}`), "needs 1 to 1000 codes"},
		{"quantitative code", def(`{"name":"a","type":"code","class":"analytic","codes":[{"code":1,"label":"x"},{"code":2,"label":"y"}],"quantitative":true}`), "quantitative is only for"},
		{"quantitative operational", def(`{"name":"a","type":"int","class":"operational","min":1,"max":9,"quantitative":true}`), "quantitative is only for"},
		{"head_code on a household field", def(`{"name":"a","type":"code","class":"analytic","codes":[{"code":1,"label":"x"}],"head_code":1}`), "head_code is only for"},
		{"codes without 1", def(`{"name":"a","type":"code","class":"analytic","codes":[{"code":2,"label":"x"}]}`), "codes must include 1"},
		{"duplicate code", def(`{"name":"a","type":"code","class":"analytic","codes":[{"code":1,"label":"x"},{"code":1,"label":"y"}]}`), "code 1 listed twice"},
		{"negative code", def(`{"name":"a","type":"code","class":"analytic","codes":[{"code":1,"label":"x"},{"code":-1,"label":"y"}]}`), "outside"},
		{"code too big", def(`{"name":"a","type":"code","class":"analytic","codes":[{"code":1,"label":"x"},{"code":10000,"label":"y"}]}`), "outside"},
		{"code without label", def(`{"name":"a","type":"code","class":"analytic","codes":[{"code":1,"label":""}]}`), "needs a label"},
		{"max_len on int", def(`{"name":"a","type":"int","class":"analytic","min":1,"max":2,"max_len":3}`), "max_len is only for string"},
		{"range on string", def(`{"name":"a","type":"string","class":"analytic","max_len":3,"min":1}`), "only for int and decimal"},
		{"codes on int", def(`{"name":"a","type":"int","class":"analytic","min":1,"max":2,"codes":[{"code":1,"label":"x"}]}`), "codes are only for code and code_set fields"},
		{"range on phone", def(`{"name":"a","type":"phone","class":"identifying","max":3}`), "only for int and decimal"},
		{"bad label", def(`{"name":"a","type":"date","class":"analytic","label":"` + strings.Repeat("x", 301) + `"}`), "label"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := form.Parse([]byte(tc.def))
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
		})
	}
	if _, err := form.Parse([]byte(def(`{"name":"a","type":"date","class":"analytic"}`))); err != nil {
		t.Errorf("minimal valid form: %v", err)
	}
	if _, err := form.Parse(make([]byte, 1<<20+1)); err == nil {
		t.Error("Parse accepted a definition over 1 MiB")
	}
}

// TestHeadCode checks the marker of the household head: census2019 has
// it on relationship (code 1, "Chủ hộ"), and a definition may only put
// it, once, on an analytic code field of the person list, as one of its
// codes.
func TestHeadCode(t *testing.T) {
	field, code, ok := form.Default().Head()
	if !ok || field != "relationship" || code != 1 {
		t.Errorf("census2019 head: %q %d %v, want relationship 1", field, code, ok)
	}
	const hh = `"household":[{"name":"a","type":"date","class":"analytic"}]`
	rel := func(extra string) string {
		return `{"name":"rel","type":"code","class":"analytic","codes":[{"code":0,"label":"x"},{"code":1,"label":"head"},{"code":2,"label":"y"}]` + extra + `}`
	}
	def := func(person ...string) string {
		return `{"name":"f","version":1,` + hh + `,"person":[` + strings.Join(person, ",") + `]}`
	}
	for _, tc := range []struct {
		name, def, msg string
	}{
		{"not a code", def(`{"name":"n","type":"int","class":"analytic","min":0,"max":9,"head_code":1}`), "head_code is only for"},
		{"identifying", def(strings.Replace(rel(`,"head_code":1`), "analytic", "identifying", 1)), "head_code is only for"},
		{"not a code of the field", def(rel(`,"head_code":3`)), "must be one of the field's codes"},
		{"negative", def(rel(`,"head_code":-1`)), "must be one of the field's codes"},
		{"two fields", def(rel(`,"head_code":1`), strings.Replace(rel(`,"head_code":2`), `"rel"`, `"rel2"`, 1)), "both have a head_code"},
	} {
		if _, err := form.Parse([]byte(tc.def)); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: Parse error %v, want one containing %q", tc.name, err, tc.msg)
		}
	}
	for want, d := range map[int]string{0: def(rel(`,"head_code":0`)), 2: def(rel(`,"head_code":2`))} {
		f, err := form.Parse([]byte(d))
		if err != nil {
			t.Fatal(err)
		}
		if field, code, ok := f.Head(); !ok || field != "rel" || code != want {
			t.Errorf("Head() = %q %d %v, want rel %d", field, code, ok, want)
		}
	}
	f, err := form.Parse([]byte(def(rel(""))))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := f.Head(); ok {
		t.Error("a form without head_code has a head")
	}
}

func TestRegistry(t *testing.T) {
	f := form.Default()
	g, err := form.Parse([]byte(`{"name":"census2019","version":2,"household":[{"name":"a","type":"date","class":"analytic"}],"person":[{"name":"b","type":"date","class":"analytic"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := form.NewRegistry(f, g)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := r.Get("census2019", 1); !ok || got != f {
		t.Error("Get v1 failed")
	}
	if got, ok := r.Get("census2019", 2); !ok || got != g {
		t.Error("Get v2 failed")
	}
	for _, k := range []struct {
		name string
		v    int
	}{{"census2019", 3}, {"census2019", 0}, {"other", 1}, {"", 1}} {
		if _, ok := r.Get(k.name, k.v); ok {
			t.Errorf("Get(%q, %d) found a form", k.name, k.v)
		}
	}
	if _, err := form.NewRegistry(f, form.Default()); err == nil {
		t.Error("NewRegistry accepted the same name and version twice")
	}
	if _, err := form.NewRegistry(f, nil); err == nil {
		t.Error("NewRegistry accepted nil")
	}
	bad := &form.Form{Name: "x", Version: 1}
	if _, err := form.NewRegistry(bad); err == nil {
		t.Error("NewRegistry accepted a form without fields")
	}
}

// TestHandMadeForm checks that a Form built without Parse is checked and
// works the same.
func TestHandMadeForm(t *testing.T) {
	d := form.Default()
	hand := &form.Form{Name: d.Name, Version: d.Version, Household: d.Household, Person: d.Person}
	s, err := form.Decode(householdJSON(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := hand.ValidateAt(s, now); err != nil {
		t.Fatal(err)
	}
	a, err := hand.Split(s)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := d.Split(s)
	for _, c := range form.Classes() {
		if string(a[c]) != string(b[c]) {
			t.Errorf("%s part differs", c)
		}
	}
	broken := &form.Form{Name: "x", Version: 1}
	if err := broken.ValidateAt(s, now); err == nil {
		t.Error("a form without fields validated a submission")
	}
}
