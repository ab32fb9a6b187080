package form_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker/form"
)

func TestSplit(t *testing.T) {
	f := form.Default()
	b := mutate(t, func(m map[string]any) {
		hh(m)["floor_area_m2"] = json.Number("65.50")
		hh(m)["address"] = "Số 12 \"ngõ\" 4 \\ <phường> & Bắc Hồng"
		delete(person(m, 4), "response_type")
	})
	s := mustDecode(t, b)
	parts, err := f.Split(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 3 {
		t.Fatalf("%d parts", len(parts))
	}
	wantIdent := `{"household":{"address":"Số 12 \"ngõ\" 4 \\ <phường> & Bắc Hồng","head_name":"Nguyễn Văn Hùng","phone":"0912345678"},` +
		`"persons":[{"full_name":"Nguyễn Văn Hùng"},{"full_name":"Trần Thị Lan"},{"full_name":"Nguyễn Thị Mai"},` +
		`{"full_name":"Nguyễn Văn Nam"},{"full_name":"Nguyễn Minh Khôi"},{"full_name":"Lê Thị Tám"}]}`
	if got := string(parts[form.Identifying]); got != wantIdent {
		t.Errorf("identifying part\n got %s\nwant %s", got, wantIdent)
	}
	wantOps := `{"household":{"respondent_no":2,"visit_count":1},"persons":[{"response_type":2},{"response_type":1},{"response_type":2},{"response_type":2},{},{"response_type":2}]}`
	if got := string(parts[form.Operational]); got != wantOps {
		t.Errorf("operational part\n got %s\nwant %s", got, wantOps)
	}
	an := string(parts[form.Analytic])
	if !strings.HasPrefix(an, `{"household":{"dwelling_type":2,"electricity":1,"floor_area_m2":65.5,"tenure":1,"toilet_type":1,"water_source":3},"persons":[{"birth_month":3,"birth_year":1968,`) {
		t.Errorf("analytic part %s", an)
	}
	for c, p := range parts {
		if !json.Valid(p) {
			t.Errorf("%s part is not valid JSON", c)
		}
		if c != form.Identifying && (strings.Contains(string(p), "Nguyễn") || strings.Contains(string(p), "0912345678")) {
			t.Errorf("%s part holds identifying data", c)
		}
	}
}

func TestSplitNormalizes(t *testing.T) {
	f := form.Default()
	variants := [][]byte{
		householdJSON(t),
		mutate(t, func(m map[string]any) {
			hh(m)["floor_area_m2"] = json.Number("6.55e1")
			hh(m)["address"] = "Số 12, ngõ 4, tổ dân phố 1, phường Bắc Hồng"
			person(m, 0)["birth_year"] = json.Number("1968")
		}),
		bytes.Replace(householdJSON(t), []byte(`"Số 12,`), []byte(`"S\u1ed1 12,`), 1),
		bytes.Replace(householdJSON(t), []byte(`65.5`), []byte(`65.500`), 1),
	}
	var first map[form.Class][]byte
	for i, b := range variants {
		parts, err := f.Split(mustDecode(t, b))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = parts
			continue
		}
		for _, c := range form.Classes() {
			if !bytes.Equal(parts[c], first[c]) {
				t.Errorf("variant %d: %s part differs:\n%s\n%s", i, c, parts[c], first[c])
			}
		}
	}
}

func TestSplitRefusesInvalid(t *testing.T) {
	f := form.Default()
	s := mustDecode(t, mutate(t, func(m map[string]any) { hh(m)["colour"] = "blue" }))
	_, err := f.Split(s)
	if ps := problems(t, err); !hasProblem(ps, "household.colour: unknown field") {
		t.Errorf("problems %q", ps)
	}
}

func TestSplitJoinRoundTrip(t *testing.T) {
	f := form.Default()
	s := mustDecode(t, householdJSON(t))
	parts, err := f.Split(s)
	if err != nil {
		t.Fatal(err)
	}
	h, ps, err := f.Join(parts)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h, s.Household) {
		t.Errorf("household differs:\n got %v\nwant %v", rawMap(h), rawMap(s.Household))
	}
	if !reflect.DeepEqual(ps, s.Persons) {
		t.Errorf("persons differ")
	}

	// A subset of classes gives only those fields, persons still aligned.
	h, ps, err = f.Join(map[form.Class][]byte{form.Analytic: parts[form.Analytic]})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := h["head_name"]; ok {
		t.Error("identifying field in an analytic-only join")
	}
	if len(ps) != 6 || len(ps[0]) == 0 {
		t.Fatalf("persons %d", len(ps))
	}
	if sex, _ := ps[1]["sex"].Int(); sex != 2 {
		t.Errorf("persons[1].sex = %d", sex)
	}
	if _, ok := ps[1]["full_name"]; ok {
		t.Error("full_name in an analytic-only join")
	}
}

func rawMap(m map[string]form.Value) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = string(v.Raw())
	}
	return out
}

func TestJoinErrors(t *testing.T) {
	f := form.Default()
	parts, err := f.Split(mustDecode(t, householdJSON(t)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		parts map[form.Class][]byte
		want  string
	}{
		{"no parts", map[form.Class][]byte{}, "no parts to join"},
		{"unknown class", map[form.Class][]byte{"secret": []byte(`{}`)}, "unknown class in parts"},
		{"wrong class", map[form.Class][]byte{form.Analytic: parts[form.Identifying]}, "analytic part: household.address: not a analytic field"},
		{"unknown field", map[form.Class][]byte{form.Analytic: []byte(`{"household":{"colour":1},"persons":[{}]}`)}, "analytic part: household.colour: unknown field"},
		{"bad value", map[form.Class][]byte{form.Analytic: []byte(`{"household":{"tenure":9},"persons":[{}]}`)}, "analytic part: household.tenure: code not allowed"},
		{"person count", map[form.Class][]byte{form.Analytic: parts[form.Analytic], form.Operational: []byte(`{"household":{},"persons":[{}]}`)}, "operational part: 1 persons, other parts have 6"},
		{"missing persons", map[form.Class][]byte{form.Analytic: []byte(`{"household":{}}`)}, "analytic part: household and persons are required"},
		{"extra key", map[form.Class][]byte{form.Analytic: []byte(`{"household":{},"persons":[{}],"x":1}`)}, "analytic part: only household and persons, once each, are allowed"},
		{"duplicate household", map[form.Class][]byte{form.Analytic: []byte(`{"household":{},"household":{},"persons":[{}]}`)}, "analytic part: only household and persons, once each, are allowed"},
		{"trailing", map[form.Class][]byte{form.Analytic: []byte(`{"household":{},"persons":[{}]}x`)}, "analytic part: trailing data"},
		{"nested", map[form.Class][]byte{form.Analytic: []byte(`{"household":{"tenure":{}},"persons":[{}]}`)}, "analytic part: household.tenure: must be a string, number, null or array of numbers"},
		{"unknown field with null", map[form.Class][]byte{form.Analytic: []byte(`{"household":{"colour":null},"persons":[{}]}`)}, "analytic part: household.colour: unknown field"},
		{"other class with null", map[form.Class][]byte{form.Analytic: []byte(`{"household":{},"persons":[{"full_name":null}]}`)}, "analytic part: persons[0].full_name: not a analytic field"},
		{"array for a code", map[form.Class][]byte{form.Analytic: []byte(`{"household":{"tenure":[1]},"persons":[{}]}`)}, "analytic part: household.tenure: must be a number"},
		{"duplicate field", map[form.Class][]byte{form.Analytic: []byte(`{"household":{"tenure":1,"tenure":2},"persons":[{}]}`)}, "analytic part: household.tenure: duplicate key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := f.Join(tc.parts)
			if ps := problems(t, err); !hasProblem(ps, tc.want) {
				t.Errorf("problems %q lack %q", ps, tc.want)
			}
		})
	}
}

func TestValue(t *testing.T) {
	s := form.StringValue("Nguyễn Văn Độc Nhất")
	n := form.IntValue(-42)
	d, err := form.NumberValue("35.5")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "1.", "01", "+1", "1e", "NaN", "0x10", "1 ", strings.Repeat("1", 41)} {
		if _, err := form.NumberValue(bad); err == nil {
			t.Errorf("NumberValue(%q) succeeded", bad)
		}
	}
	if txt, ok := s.Text(); !ok || txt != "Nguyễn Văn Độc Nhất" {
		t.Error("Text")
	}
	if _, ok := s.Int(); ok {
		t.Error("string Int")
	}
	if _, ok := n.Text(); ok {
		t.Error("number Text")
	}
	if v, ok := n.Int(); !ok || v != -42 {
		t.Error("Int")
	}
	if _, ok := d.Int(); ok {
		t.Error("35.5 Int")
	}
	if v, ok := d.Float(); !ok || v != 35.5 {
		t.Error("Float")
	}
	if string(s.Raw()) != `"Nguyễn Văn Độc Nhất"` || string(n.Raw()) != "-42" || string((form.Value{}).Raw()) != "null" {
		t.Error("Raw")
	}
	if !(form.Value{}).IsZero() || s.IsZero() {
		t.Error("IsZero")
	}
	if got := string(form.StringValue("a\"b\\c\nd\x01é\xff").Raw()); got != `"a\"b\\c\nd\u0001é\ufffd"` {
		t.Errorf("Raw escaping = %s", got)
	}
	j, err := json.Marshal(map[string]form.Value{"name": s, "n": n})
	if err != nil || string(j) != `{"n":-42,"name":"Nguyễn Văn Độc Nhất"}` {
		t.Errorf("MarshalJSON = %s, %v", j, err)
	}
	// Printing never shows the content, whatever the verb or nesting.
	sub := &form.Submission{Household: map[string]form.Value{"head_name": s}, Persons: []map[string]form.Value{{"full_name": s}}}
	for _, out := range []string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q %x %d", s, s, s, s, s, s, s),
		fmt.Sprintf("%v %+v", sub, sub), fmt.Sprintf("%#v", *sub), s.String(), s.GoString(),
	} {
		if strings.Contains(out, "Nhất") || strings.Contains(out, "Nguy") {
			t.Errorf("printed value: %s", out)
		}
	}
}
