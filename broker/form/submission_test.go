package form_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker/form"
)

func TestDecodeValid(t *testing.T) {
	f := form.Default()
	s, err := decodeValidate(f, householdJSON(t))
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != "6f1c3a52-8d4e-4b7a-9c21-0e5d7f3b8a64" || s.Form != "census2019" || s.FormVersion != 1 ||
		s.Area != "18070.001" || s.HouseholdNo != 37 || s.Supersedes != "" {
		t.Errorf("decoded %+v", s)
	}
	if want := time.Date(2019, 4, 5, 2, 30, 0, 0, time.UTC); !s.InterviewedAt.Equal(want) {
		t.Errorf("interviewed_at = %v", s.InterviewedAt)
	}
	if len(s.Persons) != 6 {
		t.Fatalf("%d persons", len(s.Persons))
	}
	if name, ok := s.Household["head_name"].Text(); !ok || name != "Nguyễn Văn Hùng" {
		t.Errorf("head_name = %q, %v", name, ok)
	}
	if y, ok := s.Persons[5]["birth_year"].Int(); !ok || y != 1941 {
		t.Errorf("birth_year = %d, %v", y, ok)
	}
	if a, ok := s.Household["floor_area_m2"].Float(); !ok || a != 65.5 {
		t.Errorf("floor_area_m2 = %v, %v", a, ok)
	}
	if _, ok := s.Persons[3]["birth_month"]; ok {
		t.Error("absent birth_month present")
	}
}

func TestDecodeCanonicalizes(t *testing.T) {
	b := mutate(t, func(m map[string]any) {
		m["id"] = "6F1C3A52-8D4E-4B7A-9C21-0E5D7F3B8A64"
		m["supersedes"] = "0A000000-0000-4000-8000-000000000001"
		hh(m)["address"] = nil // null is absent
	})
	s, err := decodeValidate(form.Default(), b)
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != "6f1c3a52-8d4e-4b7a-9c21-0e5d7f3b8a64" || s.Supersedes != "0a000000-0000-4000-8000-000000000001" {
		t.Errorf("ids not canonical: %q %q", s.ID, s.Supersedes)
	}
	if _, ok := s.Household["address"]; ok {
		t.Error("null address present")
	}
	// supersedes: null is the same as absent.
	b = mutate(t, func(m map[string]any) { m["supersedes"] = nil })
	if s, err := decodeValidate(form.Default(), b); err != nil || s.Supersedes != "" {
		t.Errorf("supersedes null: %v %q", err, s.Supersedes)
	}
}

func TestDecodeEscapes(t *testing.T) {
	body := bytes.Replace(householdJSON(t), []byte(`"Nguyễn Văn Hùng",`),
		[]byte(`"Nguy\u1ec5n V\u0103n \"H\u00f9ng\" \ud83d\ude00 \/ \\",`), 1)
	s, err := decodeValidate(form.Default(), body)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Household["head_name"].Text(); got != `Nguyễn Văn "Hùng" 😀 / \` {
		t.Errorf("head_name = %q", got)
	}
}

func persons(n int) func(m map[string]any) {
	return func(m map[string]any) {
		ps := make([]any, n)
		for i := range ps {
			ps[i] = simplePerson()
		}
		m["persons"] = ps
		delete(hh(m), "respondent_no")
	}
}

// manyCodes is an array of n ones.
func manyCodes(n int) []any {
	a := make([]any, n)
	for i := range a {
		a[i] = 1
	}
	return a
}

func TestInvalidSubmissions(t *testing.T) {
	f := form.Default()
	valid := string(householdJSON(t))
	replace := func(old, new string) []byte {
		if !strings.Contains(valid, old) {
			t.Fatalf("test data lacks %q", old)
		}
		return []byte(strings.Replace(valid, old, new, 1))
	}
	tests := []struct {
		name string
		body []byte
		want string // one of the problems; a trailing … matches a prefix
	}{
		// Shape (Decode).
		{"empty body", nil, "invalid JSON at byte 0: expected '{'"},
		{"not an object", []byte(`[1]`), "invalid JSON at byte 0: expected '{'"},
		{"unknown top-level field", mutate(t, func(m map[string]any) { m["colour"] = "blue" }), `unknown top-level field "colour"`},
		{"unknown top-level odd name", mutate(t, func(m map[string]any) { m["Tên"] = 1 }), "unknown top-level field (invalid name)"},
		{"missing id", mutate(t, func(m map[string]any) { delete(m, "id") }), "id: required"},
		{"missing household", mutate(t, func(m map[string]any) { delete(m, "household") }), "household: required"},
		{"duplicate top-level key", replace(`"form": "census2019",`, `"form": "census2019", "form": "census2019",`), "form: duplicate key"},
		{"duplicate household key", replace(`"tenure": 1,`, `"tenure": 1, "tenure": 1,`), "household.tenure: duplicate key"},
		{"duplicate key after null", replace(`"tenure": 1,`, `"tenure": null, "tenure": 1,`), "household.tenure: duplicate key"},
		{"trailing garbage", append(householdJSON(t), []byte("x")...), "trailing data after the submission"},
		{"second object", append(householdJSON(t), []byte("{}")...), "trailing data after the submission"},
		{"trailing comma", replace(`"respondent_no": 2`, `"respondent_no": 2,`), "invalid JSON at byte …"},
		{"nested object as value", mutate(t, func(m map[string]any) { hh(m)["address"] = map[string]any{"street": "x"} }), "household.address: must be a string, number, null or array of numbers"},
		{"boolean value", mutate(t, func(m map[string]any) { hh(m)["electricity"] = true }), "household.electricity: must be a string, number, null or array of numbers"},
		{"nested array", mutate(t, func(m map[string]any) { person(m, 1)["sex"] = []any{[]any{2}} }), "persons[1].sex: an array may hold numbers (codes) only"},
		{"string in an array", mutate(t, func(m map[string]any) { person(m, 1)["sex"] = []any{"2"} }), "persons[1].sex: an array may hold numbers (codes) only"},
		{"null in an array", mutate(t, func(m map[string]any) { person(m, 1)["sex"] = []any{nil} }), "persons[1].sex: an array may hold numbers (codes) only"},
		{"object in an array", mutate(t, func(m map[string]any) { person(m, 1)["sex"] = []any{map[string]any{}} }), "persons[1].sex: an array may hold numbers (codes) only"},
		{"array too long", mutate(t, func(m map[string]any) { person(m, 1)["sex"] = manyCodes(form.MaxCodes + 1) }), "persons[1].sex: more than 1000 items"},
		{"array trailing comma", replace(`"tenure": 1,`, `"tenure": [1,],`), "invalid JSON at byte …"},
		{"array unterminated", replace(`"tenure": 1,`, `"tenure": [1 2],`), "invalid JSON at byte …"},
		{"array on top", mutate(t, func(m map[string]any) { m["area"] = []any{1} }), "area: must be a string, number or null"},
		{"array for a code", mutate(t, func(m map[string]any) { person(m, 1)["sex"] = []any{2} }), "persons[1].sex: must be a number"},
		{"array for a string", mutate(t, func(m map[string]any) { hh(m)["address"] = []any{2} }), "household.address: must be a string"},
		{"unknown household field with null", mutate(t, func(m map[string]any) { hh(m)["colour"] = nil }), "household.colour: unknown field"},
		{"unknown person field with null", mutate(t, func(m map[string]any) { person(m, 4)["nickname"] = nil }), "persons[4].nickname: unknown field"},
		{"odd key with null", mutate(t, func(m map[string]any) { person(m, 4)["Tên"] = nil }), "persons[4]: invalid field name"},
		{"floor area a hair above max", replace(`"floor_area_m2": 65.5`, `"floor_area_m2": 10000.0000000000001`), "household.floor_area_m2: must be between 1 and 10000"},
		{"floor area a hair below min", replace(`"floor_area_m2": 65.5`, `"floor_area_m2": 0.99999999999999999999`), "household.floor_area_m2: must be between 1 and 10000"},
		{"floor area far beyond", replace(`"floor_area_m2": 65.5`, `"floor_area_m2": 1e999999999999999999999999999999999999`), "household.floor_area_m2: must be between 1 and 10000"},
		{"household not object", mutate(t, func(m map[string]any) { m["household"] = "x" }), "household: must be an object"},
		{"persons not array", mutate(t, func(m map[string]any) { m["persons"] = map[string]any{} }), "persons: must be an array of objects"},
		{"person not object", mutate(t, func(m map[string]any) { m["persons"] = []any{1} }), "persons[0]: must be an object"},
		{"no persons", mutate(t, persons(0)), "persons: at least 1 person required"},
		{"51 persons", mutate(t, persons(51)), "persons: more than 50"},
		{"bad UUID", mutate(t, func(m map[string]any) { m["id"] = "6f1c3a52-8d4e-4b7a-9c21-0e5d7f3b8a6" }), "id: must be a UUID…"},
		{"UUID without dashes", mutate(t, func(m map[string]any) { m["id"] = "6f1c3a528d4e4b7a9c210e5d7f3b8a64" }), "id: must be a UUID…"},
		{"nil UUID", mutate(t, func(m map[string]any) { m["id"] = "00000000-0000-0000-0000-000000000000" }), "id: must be a UUID…"},
		{"numeric id", mutate(t, func(m map[string]any) { m["id"] = 5 }), "id: must be a UUID…"},
		{"bad supersedes", mutate(t, func(m map[string]any) { m["supersedes"] = "yesterday" }), "supersedes: must be a UUID or null"},
		{"bad time", mutate(t, func(m map[string]any) { m["interviewed_at"] = "2019-04-05 09:30" }), "interviewed_at: must be an RFC 3339 time"},
		{"time without zone", mutate(t, func(m map[string]any) { m["interviewed_at"] = "2019-04-05T09:30:00" }), "interviewed_at: must be an RFC 3339 time"},
		{"impossible time", mutate(t, func(m map[string]any) { m["interviewed_at"] = "2019-02-30T09:30:00Z" }), "interviewed_at: must be an RFC 3339 time"},
		{"string version", mutate(t, func(m map[string]any) { m["form_version"] = "1" }), "form_version: must be a whole number from 1 to 1000000"},
		{"fractional version", mutate(t, func(m map[string]any) { m["form_version"] = json.Number("1.0") }), "form_version: must be a whole number from 1 to 1000000"},
		{"household_no 0", mutate(t, func(m map[string]any) { m["household_no"] = 0 }), "household_no: must be a whole number from 1 to 1000000000"},
		{"bad area code", mutate(t, func(m map[string]any) { m["area"] = "18070/001" }), "area: must be an area code"},
		{"bad form name", mutate(t, func(m map[string]any) { m["form"] = "Census 2019" }), "form: must be a form name"},
		{"invalid field name", mutate(t, func(m map[string]any) { hh(m)["Head Name"] = "x" }), "household: invalid field name"},
		{"leading zero", replace(`"tenure": 1,`, `"tenure": 01,`), "invalid JSON at byte …"},
		{"bad escape", replace(`"Trần Thị Lan"`, `"Trần \x Lan"`), "invalid JSON at byte …"},
		{"lone surrogate", replace(`"Trần Thị Lan"`, `"Trần \ud800 Lan"`), "invalid JSON at byte …"},
		{"raw control char", replace(`"Trần Thị Lan"`, "\"Trần\tLan\""), "invalid JSON at byte …"},
		{"invalid UTF-8", replace(`"Trần Thị Lan"`, "\"Tr\xff Lan\""), "invalid JSON at byte …"},
		{"unterminated", []byte(`{"id": "6f1c3a52`), "invalid JSON at byte …"},
		{"huge number", replace(`"tenure": 1,`, `"tenure": 1`+strings.Repeat("0", 50)+`,`), "household.tenure: number longer than 40 characters"},
		{"huge string", mutate(t, func(m map[string]any) { hh(m)["address"] = strings.Repeat("x", form.MaxString+1) }), "household.address: longer than 4096 bytes"},

		// Answers (Validate).
		{"form mismatch", mutate(t, func(m map[string]any) { m["form"] = "census2029" }), "form: must be census2019 version 1"},
		{"version mismatch", mutate(t, func(m map[string]any) { m["form_version"] = 2 }), "form: must be census2019 version 1"},
		{"unknown household field", mutate(t, func(m map[string]any) { hh(m)["colour"] = "blue" }), "household.colour: unknown field"},
		{"unknown person field", mutate(t, func(m map[string]any) { person(m, 4)["nickname"] = "Bi" }), "persons[4].nickname: unknown field"},
		{"bad code", mutate(t, func(m map[string]any) { person(m, 2)["sex"] = 3 }), "persons[2].sex: code not allowed"},
		{"code 0", mutate(t, func(m map[string]any) { person(m, 2)["ethnicity"] = 0 }), "persons[2].ethnicity: code not allowed"},
		{"code 56", mutate(t, func(m map[string]any) { person(m, 2)["ethnicity"] = 56 }), "persons[2].ethnicity: code not allowed"},
		{"negative code", mutate(t, func(m map[string]any) { person(m, 2)["religion"] = -1 }), "persons[2].religion: code not allowed"},
		{"birth_year 1899", mutate(t, func(m map[string]any) { person(m, 0)["birth_year"] = 1899 }), "persons[0].birth_year: must be between 1900 and 2019"},
		{"birth_year 2020", mutate(t, func(m map[string]any) { person(m, 0)["birth_year"] = 2020 }), "persons[0].birth_year: must be between 1900 and 2019"},
		{"birth_month 13", mutate(t, func(m map[string]any) { person(m, 0)["birth_month"] = 13 }), "persons[0].birth_month: must be between 1 and 12"},
		{"birth_month 99", mutate(t, func(m map[string]any) { person(m, 0)["birth_month"] = 99 }), "persons[0].birth_month: must be between 1 and 12"},
		{"floor area 0.5", mutate(t, func(m map[string]any) { hh(m)["floor_area_m2"] = 0.5 }), "household.floor_area_m2: must be between 1 and 10000"},
		{"floor area 10000.01", mutate(t, func(m map[string]any) { hh(m)["floor_area_m2"] = 10000.01 }), "household.floor_area_m2: must be between 1 and 10000"},
		{"floor area overflow", mutate(t, func(m map[string]any) { hh(m)["floor_area_m2"] = json.Number("1e999") }), "household.floor_area_m2: must be between 1 and 10000"},
		{"missing head_name", mutate(t, func(m map[string]any) { delete(hh(m), "head_name") }), "household.head_name: required"},
		{"null head_name", mutate(t, func(m map[string]any) { hh(m)["head_name"] = nil }), "household.head_name: required"},
		{"missing sex", mutate(t, func(m map[string]any) { delete(person(m, 3), "sex") }), "persons[3].sex: required"},
		{"string for int", mutate(t, func(m map[string]any) { person(m, 0)["birth_year"] = "1968" }), "persons[0].birth_year: must be a number"},
		{"1.5 for int", mutate(t, func(m map[string]any) { person(m, 0)["birth_year"] = 1968.5 }), "persons[0].birth_year: must be a whole number"},
		{"1e3 for int", mutate(t, func(m map[string]any) { hh(m)["visit_count"] = json.Number("1e1") }), "household.visit_count: must be a whole number"},
		{"1.0 for code", mutate(t, func(m map[string]any) { person(m, 0)["sex"] = json.Number("1.0") }), "persons[0].sex: must be a whole number"},
		{"string for code", mutate(t, func(m map[string]any) { person(m, 0)["sex"] = "1" }), "persons[0].sex: must be a number"},
		{"number for string", mutate(t, func(m map[string]any) { hh(m)["head_name"] = 7 }), "household.head_name: must be a string"},
		{"blank string", mutate(t, func(m map[string]any) { hh(m)["head_name"] = " \u00a0 " }), "household.head_name: must not be blank"},
		{"empty string", mutate(t, func(m map[string]any) { hh(m)["address"] = "" }), "household.address: must not be blank"},
		{"escaped control char", mutate(t, func(m map[string]any) { hh(m)["address"] = "a\nb" }), "household.address: must not contain control characters"},
		{"name 101 chars", mutate(t, func(m map[string]any) { hh(m)["head_name"] = strings.Repeat("Đ", 101) }), "household.head_name: longer than 100 characters"},
		{"bad phone", mutate(t, func(m map[string]any) { hh(m)["phone"] = "091-234-5678" }), "household.phone: must be a phone number (9 to 11 digits, optionally after +84)"},
		{"short phone", mutate(t, func(m map[string]any) { hh(m)["phone"] = "12345678" }), "household.phone: must be a phone number…"},
		{"long phone", mutate(t, func(m map[string]any) { hh(m)["phone"] = "+84123456789012" }), "household.phone: must be a phone number…"},
		{"numeric phone", mutate(t, func(m map[string]any) { hh(m)["phone"] = 912345678 }), "household.phone: must be a string"},
		{"future interview", mutate(t, func(m map[string]any) { m["interviewed_at"] = now.Add(24*time.Hour + time.Second).Format(time.RFC3339) }), "interviewed_at: more than a day in the future"},
		{"supersedes itself", mutate(t, func(m map[string]any) { m["supersedes"] = m["id"] }), "supersedes: must not be the submission's own id"},
		// census2019's census date is 2019-04-01: interviews from
		// 2018-12-30 (92 days before) on.
		{"interview in year 0000", mutate(t, func(m map[string]any) { m["interviewed_at"] = "0000-01-01T00:00:00Z" }), "interviewed_at: before 2018-12-30, too early for form census2019"},
		{"interview in 1999", mutate(t, func(m map[string]any) { m["interviewed_at"] = "1999-12-31T23:59:59+07:00" }), "interviewed_at: before 2018-12-30…"},
		{"interview a second too early", mutate(t, func(m map[string]any) { m["interviewed_at"] = "2018-12-29T23:59:59+07:00" }), "interviewed_at: before 2018-12-30…"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeValidate(f, tc.body)
			ps := problems(t, err)
			if !hasProblem(ps, tc.want) {
				t.Errorf("problems %q lack %q", ps, tc.want)
			}
		})
	}
}

func TestValidBoundaries(t *testing.T) {
	f := form.Default()
	tests := []struct {
		name   string
		change func(m map[string]any)
	}{
		{"1 person", persons(1)},
		{"49 persons", persons(49)},
		{"50 persons", persons(50)},
		{"birth_year 1900", func(m map[string]any) { person(m, 0)["birth_year"] = 1900 }},
		{"birth_year 2019", func(m map[string]any) { person(m, 0)["birth_year"] = 2019 }},
		{"floor area 1", func(m map[string]any) { hh(m)["floor_area_m2"] = 1 }},
		{"floor area 10000", func(m map[string]any) { hh(m)["floor_area_m2"] = json.Number("1e4") }},
		{"floor area 10000 written long", func(m map[string]any) { hh(m)["floor_area_m2"] = json.Number("10000.000000000000000000000") }},
		{"floor area 10000 as 0.1e5", func(m map[string]any) { hh(m)["floor_area_m2"] = json.Number("0.1E+5") }},
		{"floor area a hair below max", func(m map[string]any) { hh(m)["floor_area_m2"] = json.Number("9999.9999999999999999999") }},
		{"floor area a hair above min", func(m map[string]any) { hh(m)["floor_area_m2"] = json.Number("1.000000000000000000001") }},
		{"floor area 1 as 100e-2", func(m map[string]any) { hh(m)["floor_area_m2"] = json.Number("100e-2") }},
		{"ethnicity 55", func(m map[string]any) { person(m, 0)["ethnicity"] = 55 }},
		{"name 100 chars", func(m map[string]any) { hh(m)["head_name"] = strings.Repeat("Đ", 100) }},
		{"phone +84", func(m map[string]any) { hh(m)["phone"] = "+84912345678" }},
		{"phone 9 digits", func(m map[string]any) { hh(m)["phone"] = "912345678" }},
		{"phone 11 digits", func(m map[string]any) { hh(m)["phone"] = "02393856789" }},
		{"interview a day ahead", func(m map[string]any) { m["interviewed_at"] = now.Add(24 * time.Hour).Format(time.RFC3339) }},
		{"interview 92 days before the census moment", func(m map[string]any) { m["interviewed_at"] = "2018-12-30T00:00:00+07:00" }},
		{"fractional seconds", func(m map[string]any) { m["interviewed_at"] = "2019-04-05T09:30:00.123+07:00" }},
		{"optional fields absent", func(m map[string]any) {
			m["household"] = map[string]any{"head_name": "X"}
			m["persons"] = []any{map[string]any{"full_name": "X", "relationship": 1, "sex": 2, "birth_year": 1950}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeValidate(f, mutate(t, tc.change)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestBodySizeBoundary(t *testing.T) {
	f := form.Default()
	base := householdJSON(t)
	for _, size := range []int{form.MaxBody - 1, form.MaxBody, form.MaxBody + 1} {
		body := append(append([]byte(nil), base...), bytes.Repeat([]byte(" "), size-len(base))...)
		_, err := decodeValidate(f, body)
		if size <= form.MaxBody && err != nil {
			t.Errorf("%d bytes: %v", size, err)
		}
		if size > form.MaxBody && !hasProblem(problems(t, err), "body larger than 1048576 bytes") {
			t.Errorf("%d bytes: %v", size, err)
		}
	}
}

func TestProblemsListedAndCapped(t *testing.T) {
	f := form.Default()
	b := mutate(t, func(m map[string]any) {
		delete(hh(m), "head_name")
		hh(m)["dwelling_type"] = 9
		person(m, 0)["sex"] = 9
		person(m, 5)["birth_year"] = "old"
	})
	ps := problems(t, f.ValidateAt(mustDecode(t, b), now))
	want := []string{"household.head_name: required", "household.dwelling_type: code not allowed",
		"persons[0].sex: code not allowed", "persons[5].birth_year: must be a number"}
	if strings.Join(ps, "|") != strings.Join(want, "|") {
		t.Errorf("problems %q, want %q", ps, want)
	}

	// Every person wrong: the list stops at MaxProblems and says so.
	b = mutate(t, func(m map[string]any) {
		ps := make([]any, 50)
		for i := range ps {
			ps[i] = map[string]any{"full_name": "x", "relationship": 1, "sex": 7, "birth_year": 2000}
		}
		m["persons"] = ps
	})
	ps = problems(t, f.ValidateAt(mustDecode(t, b), now))
	if len(ps) != form.MaxProblems+1 || !strings.HasPrefix(ps[form.MaxProblems], "more problems not listed") {
		t.Errorf("%d problems, last %q", len(ps), ps[len(ps)-1])
	}
}

func mustDecode(t testing.TB, b []byte) *form.Submission {
	t.Helper()
	s, err := form.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestValidateHandMade(t *testing.T) {
	f := form.Default()
	good := mustDecode(t, householdJSON(t))
	tests := []struct {
		name   string
		change func(s *form.Submission)
		want   string
	}{
		{"upper-case id", func(s *form.Submission) { s.ID = strings.ToUpper(s.ID) }, "id: must be a canonical UUID"},
		{"empty area", func(s *form.Submission) { s.Area = "" }, "area: must be an area code"},
		{"zero time", func(s *form.Submission) { s.InterviewedAt = time.Time{} }, "interviewed_at: required"},
		{"no persons", func(s *form.Submission) { s.Persons = nil }, "persons: at least 1 person required"},
		{"51 persons", func(s *form.Submission) {
			for len(s.Persons) < 51 {
				s.Persons = append(s.Persons, s.Persons[1])
			}
		}, "persons: more than 50"},
		{"nil household", func(s *form.Submission) { s.Household = nil }, "household.head_name: required"},
		{"zero value", func(s *form.Submission) { s.Household["head_name"] = form.Value{} }, "household.head_name: required"},
		{"invalid UTF-8", func(s *form.Submission) { s.Household["head_name"] = form.StringValue("a\xffb") }, "household.head_name: must be valid UTF-8"},
		{"odd key", func(s *form.Submission) { s.Household["Tên chủ hộ"] = form.StringValue("x") }, "household: unknown field (invalid name)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := *good
			s.Household = clone(good.Household)
			s.Persons = append([]map[string]form.Value(nil), good.Persons...)
			tc.change(&s)
			ps := problems(t, f.ValidateAt(&s, now))
			if !hasProblem(ps, tc.want) {
				t.Errorf("problems %q lack %q", ps, tc.want)
			}
		})
	}
	if err := f.ValidateAt(nil, now); err == nil {
		t.Error("nil submission validated")
	}
	if err := f.Validate(good); err != nil {
		t.Errorf("Validate with the real clock: %v", err)
	}
}

func clone(m map[string]form.Value) map[string]form.Value {
	c := make(map[string]form.Value, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// TestDateField uses a form with a date field (the default has none).
func TestDateField(t *testing.T) {
	f, err := form.Parse([]byte(`{"name":"listing","version":3,
		"household":[{"name":"listed_on","type":"date","class":"operational","required":true}],
		"person":[{"name":"age","type":"int","class":"analytic","min":0,"max":130}]}`))
	if err != nil {
		t.Fatal(err)
	}
	body := func(date string) []byte {
		return []byte(fmt.Sprintf(`{"id":"6f1c3a52-8d4e-4b7a-9c21-0e5d7f3b8a64","form":"listing","form_version":3,
			"area":"A1","household_no":1,"interviewed_at":"2019-04-01T08:00:00Z",
			"household":{"listed_on":%s},"persons":[{"age":30}]}`, date))
	}
	for date, want := range map[string]string{
		`"2019-02-28"`: "",
		`"2020-02-29"`: "",
		`"2019-02-29"`: "household.listed_on: must be a date (YYYY-MM-DD)",
		`"2019-2-28"`:  "household.listed_on: must be a date (YYYY-MM-DD)",
		`"28/02/2019"`: "household.listed_on: must be a date (YYYY-MM-DD)",
		`20190228`:     "household.listed_on: must be a string",
	} {
		_, err := decodeValidate(f, body(date))
		if want == "" {
			if err != nil {
				t.Errorf("%s: %v", date, err)
			}
			continue
		}
		if ps := problems(t, err); !hasProblem(ps, want) {
			t.Errorf("%s: problems %q lack %q", date, ps, want)
		}
	}
}

// TestErrorsNeverContainValues puts one distinctive value everywhere it can
// be wrong and checks that no error repeats it.
func TestErrorsNeverContainValues(t *testing.T) {
	const secret = "Nguyễn Văn Độc Nhất"
	pieces := []string{secret, "Độc Nhất", "Nguyễn", "Nhất"}
	f := form.Default()
	bodies := map[string][]byte{
		"id":             mutate(t, func(m map[string]any) { m["id"] = secret }),
		"supersedes":     mutate(t, func(m map[string]any) { m["supersedes"] = secret }),
		"form":           mutate(t, func(m map[string]any) { m["form"] = secret }),
		"form_version":   mutate(t, func(m map[string]any) { m["form_version"] = secret }),
		"area":           mutate(t, func(m map[string]any) { m["area"] = secret }),
		"household_no":   mutate(t, func(m map[string]any) { m["household_no"] = secret }),
		"interviewed_at": mutate(t, func(m map[string]any) { m["interviewed_at"] = secret }),
		"household":      mutate(t, func(m map[string]any) { m["household"] = secret }),
		"persons":        mutate(t, func(m map[string]any) { m["persons"] = secret }),
		"person":         mutate(t, func(m map[string]any) { m["persons"] = []any{secret} }),
		"key":            mutate(t, func(m map[string]any) { m[secret] = 1 }),
		"household key":  mutate(t, func(m map[string]any) { hh(m)[secret] = 1 }),
		"person key":     mutate(t, func(m map[string]any) { person(m, 0)[secret] = 1 }),
		"code":           mutate(t, func(m map[string]any) { person(m, 0)["sex"] = secret }),
		"int":            mutate(t, func(m map[string]any) { person(m, 0)["birth_year"] = secret }),
		"decimal":        mutate(t, func(m map[string]any) { hh(m)["floor_area_m2"] = secret }),
		"phone":          mutate(t, func(m map[string]any) { hh(m)["phone"] = secret }),
		"long string":    mutate(t, func(m map[string]any) { hh(m)["head_name"] = strings.Repeat(secret, 10) }),
		"control":        mutate(t, func(m map[string]any) { hh(m)["address"] = secret + "\x01" }),
		"huge string":    mutate(t, func(m map[string]any) { hh(m)["address"] = strings.Repeat(secret, 400) }),
		"nested":         mutate(t, func(m map[string]any) { hh(m)["address"] = map[string]any{"x": secret} }),
		"unterminated":   []byte(`{"id":"` + secret),
		"bad escape":     []byte(`{"id":"` + secret + `\q"}`),
		"invalid utf8":   []byte(`{"id":"` + secret + "\xff\"}"),
		"trailing":       append(householdJSON(t), []byte(secret)...),
	}
	for name, b := range bodies {
		_, err := decodeValidate(f, b)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		for _, p := range pieces {
			if strings.Contains(err.Error(), p) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), p) {
				t.Errorf("%s: error %q contains %q", name, err, p)
			}
		}
	}
	// The test form's code sets, relevants, constraints and checks.
	g := exprForm(t)
	ex := func(change func(m doc)) []byte {
		m := exprBase()
		change(m)
		return encodeDoc(t, m)
	}
	for name, b := range map[string][]byte{
		"string in a set":    ex(func(m doc) { hh(m)["water"] = []any{secret} }),
		"object in a set":    ex(func(m doc) { hh(m)["water"] = []any{doc{"x": secret}} }),
		"set for a string":   ex(func(m doc) { hh(m)["head_name"] = []any{1, secret} }),
		"not relevant":       ex(func(m doc) { hh(m)["water_other"] = secret }),
		"constraint":         ex(func(m doc) { hh(m)["note"] = secret[:2] }),
		"key with null":      ex(func(m doc) { hh(m)[secret] = nil }),
		"failed check":       ex(func(m doc) { hh(m)["rent"] = 60000; delete(hh(m), "note"); hh(m)["head_name"] = secret }),
		"set as a code":      ex(func(m doc) { person(m, 0)["sex"] = []any{json.Number("9" + strings.Repeat("0", 38))} }),
		"not relevant typed": ex(func(m doc) { person(m, 0)["uses_phone"] = secret }),
	} {
		_, err := decodeValidateAt(g, b)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		for _, p := range append(pieces, "900000") {
			if strings.Contains(err.Error(), p) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), p) {
				t.Errorf("%s: error %q contains %q", name, err, p)
			}
		}
	}
	// Join errors too.
	_, _, err := f.Join(map[form.Class][]byte{form.Identifying: []byte(`{"household":{"head_name":7,"phone":"` + secret + `"},"persons":[{}]}`)})
	if err == nil || strings.Contains(err.Error(), "Nhất") {
		t.Errorf("Join error %v", err)
	}
}

// A form without a census date still refuses implausible interview
// times: nothing before 2000.
func TestInterviewTimeWithoutCensusMoment(t *testing.T) {
	d := form.Default()
	d.CensusMoment = ""
	def, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	f, err := form.Parse(def)
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []string{"0000-01-01T00:00:00Z", "1999-12-31T23:59:59Z"} {
		_, err := decodeValidate(f, mutate(t, func(m map[string]any) { m["interviewed_at"] = at }))
		if ps := problems(t, err); !hasProblem(ps, "interviewed_at: before 2000-01-01, too early for form census2019") {
			t.Errorf("interviewed_at %s: problems %q", at, ps)
		}
	}
	if _, err := decodeValidate(f, mutate(t, func(m map[string]any) { m["interviewed_at"] = "2000-01-01T00:00:00Z" })); err != nil {
		t.Errorf("2000-01-01: %v", err)
	}
	for _, bad := range []string{"2019-04-01", "2019-02-30T00:00:00+07:00", "1999-04-01T00:00:00Z", "2101-01-01T00:00:00Z", "2019-04-01T00:00:00", "01/04/2019"} {
		d := form.Default()
		d.CensusMoment = bad
		def, _ := json.Marshal(d)
		if _, err := form.Parse(def); err == nil || !strings.Contains(err.Error(), "census_moment") {
			t.Errorf("census_moment %q: %v", bad, err)
		}
	}
	if m, ok := form.Default().Census(); !ok || !m.Equal(time.Date(2019, 3, 31, 17, 0, 0, 0, time.UTC)) {
		t.Errorf("census2019's moment = %v, %v; want 2019-04-01 00:00 +07", m, ok)
	}
}

// TestDecimalBoundsExact: a decimal is within its bounds exactly as the
// literal says, compared as math/big reads it (what the JSON Schema's
// minimum and maximum mean), whatever float64 would round it to; and a
// literal of 40 characters with a huge exponent is decided at once.
func TestDecimalBoundsExact(t *testing.T) {
	f, err := form.Parse([]byte(`{"name":"dec","version":1,
	"household":[{"name":"x","type":"decimal","class":"analytic","min":-10.1,"max":99.5}],
	"person":[{"name":"p","type":"int","class":"analytic","min":0,"max":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	lo, _ := new(big.Rat).SetString("-10.1")
	hi, _ := new(big.Rat).SetString("99.5")
	accepted := func(lit string) bool {
		t.Helper()
		b := []byte(`{"id":"6f1c3a52-8d4e-4b7a-9c21-0e5d7f3b8a64","form":"dec","form_version":1,"area":"a","household_no":1,
		"interviewed_at":"2019-04-05T09:30:00Z","household":{"x":` + lit + `},"persons":[{}]}`)
		_, err := decodeValidate(f, b)
		return err == nil
	}
	r := rand.New(rand.NewPCG(14, 2))
	for _, base := range []string{"99.5", "-10.1", "0", "99.4", "-10.2", "100"} {
		for range 300 {
			// A bound (or near one) nudged in a far digit, written plain
			// or as 0.digits e exponent, within Decode's 40 characters.
			x, _ := new(big.Rat).SetString(base)
			nudge, _ := new(big.Rat).SetString(fmt.Sprintf("%de-%d", r.IntN(2001)-1000, 1+r.IntN(25)))
			x.Add(x, nudge)
			lit := x.FloatString(30)
			if r.IntN(2) == 0 {
				sign, abs := "", lit
				if strings.HasPrefix(lit, "-") {
					sign, abs = "-", lit[1:]
				}
				intPart, frac, _ := strings.Cut(abs, ".")
				lit = sign + "0." + intPart + frac + "e" + fmt.Sprint(len(intPart))
			}
			if len(lit) > 40 {
				lit = lit[:40]
				if strings.HasSuffix(lit, ".") {
					lit = lit[:39]
				}
			}
			x, ok := new(big.Rat).SetString(lit)
			if !ok {
				t.Fatalf("big.Rat cannot read %s", lit)
			}
			want := x.Cmp(lo) >= 0 && x.Cmp(hi) <= 0
			if got := accepted(lit); got != want {
				t.Errorf("%s: accepted %v, want %v", lit, got, want)
			}
		}
	}
	// Exponents beyond what big.Rat reads quickly.
	for lit, want := range map[string]bool{
		"1e-999999999999999999999999999999999":    true,
		"-1e-99999999999999999999999999999999999": true,
		"0e99999999999999999999999999999999999":   true,
		"-0":                                      true,
		"0.0e0":                                   true,
		"99.5e0":                                  true,
		"9.95E+1":                                 true,
		"0.0000000000000000000000000000000000001":  true,
		"-10.100000000000000000000000000000000000": true,
		"-10.100000000000000000000000000000000001": false,
		"99.50000000000000000000000000000000001":   false,
		"1e99999999999999999999999999999999999999": false,
		"-1e9999999999999999999999999999999999999": false,
		"-1e-999999999999999999999999999999999999": true,
		"1e18446744073709551617":                   false, // 10^(2^64+1): an exponent that wraps in int64 reads as 10
		"-1e18446744073709551617":                  false,
		"5e-18446744073709551615":                  true,
	} {
		if got := accepted(lit); got != want {
			t.Errorf("%s: accepted %v, want %v", lit, got, want)
		}
	}
}
