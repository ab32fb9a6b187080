package tables

// The table engine reads the form definition (issue 14): variables,
// bands and bounds come from the fields and their roles, never from
// census2019's names, and a household of any version of the table form
// is read through the latest version's schema.

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/sdc"
)

// lfsForm is the labour-force survey form lfs2026 v1 (the second
// example form): age by role age, a code_set, relevants.
func lfsForm(t testing.TB) *form.Form {
	t.Helper()
	b, err := os.ReadFile("../form/lfs2026.json")
	if err != nil {
		t.Fatal(err)
	}
	f, err := form.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// lfsPerson is one member of an lfs2026 household: a worker (with
// hours), someone out of work looking for a job (with job search
// methods, the code_set) or a child.
func lfsPerson(i, sex, age int) map[string]any {
	rel := 3
	if i == 0 {
		rel = 1
	}
	p := map[string]any{"full_name": "Người " + fmt.Sprint(i), "relationship": rel, "sex": sex, "age": age, "response_type": 1}
	if age >= 5 {
		p["education_level"] = 1 + age%6
	}
	switch {
	case age < 15:
	case age%2 == 0:
		p["worked_last_week"], p["status_in_employment"], p["occupation_group"], p["hours_worked"] = 1, 1+age%3, 1+age%10, 20+age%50
	default:
		p["worked_last_week"], p["temporarily_absent"], p["available_to_work"] = 2, 2, 1
		p["job_search_methods"] = []int{1 + age%6, 1 + (age+2)%6}
	}
	return p
}

// lfsHousehold is a valid lfs2026 submission in ea whose persons have
// the given sexes and ages (the first heads it and must be 15 or older).
func lfsHousehold(t testing.TB, f *form.Form, n int, ea string, sexAge ...[2]int) *form.Submission {
	t.Helper()
	var persons []map[string]any
	for i, sa := range sexAge {
		persons = append(persons, lfsPerson(i, sa[0], sa[1]))
	}
	doc := map[string]any{
		"id": fmt.Sprintf("00000000-0000-4000-8000-%012d", n), "form": f.Name, "form_version": f.Version,
		"area": ea, "household_no": n + 1, "interviewed_at": "2026-07-05T09:00:00+07:00",
		"household": map[string]any{"head_name": "Chủ hộ", "dwelling_owned": 1 + n%2, "rotation_group": 1 + n%4, "interview_mode": 1},
		"persons":   persons,
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := form.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// analyticOf is the analytic part of s as the vault seals it.
func analyticOf(t testing.TB, f *form.Form, s *form.Submission) []byte {
	t.Helper()
	parts, err := f.Split(s)
	if err != nil {
		t.Fatal(err)
	}
	return parts[form.Analytic]
}

// TestParseSkipsCodeSets: an lfs2026 household whose analytic part holds
// a code_set (a JSON array of codes) is read, its other values are, and
// the set is no variable. Reading it as "not canonical JSON" made every
// such household table_data_corrupt, and with it every table.
func TestParseSkipsCodeSets(t *testing.T) {
	f := lfsForm(t)
	sub := lfsHousehold(t, f, 1, "E1", [2]int{1, 40}, [2]int{2, 33}, [2]int{1, 9})
	b := analyticOf(t, f, sub)
	if !strings.Contains(string(b), `"job_search_methods":[`) {
		t.Fatalf("test setup: no code set in %s", b)
	}
	if n, err := CountPersons(b); err != nil || n != 3 {
		t.Fatalf("CountPersons = %d, %v; want 3", n, err)
	}
	s, err := NewSchema(f)
	if err != nil {
		t.Fatal(err)
	}
	var ps parseScratch
	ps.init(s)
	if err := ps.parse(b); err != nil {
		t.Fatalf("parse: %v", err)
	}
	if _, ok := s.vars["job_search_methods"]; ok {
		t.Error("a code_set is a table variable (multi-response tables are not built yet)")
	}
	ages := []float64{40, 33, 9}
	for p, row := range ps.persons {
		if got := row[s.vars["age"].col]; got != ages[p] {
			t.Errorf("person %d: age %v, want %v", p, got, ages[p])
		}
		if got := row[s.vars["available_to_work"].col]; (p == 1) != (got == 1) {
			t.Errorf("person %d: available_to_work %v (the value after the code set)", p, got)
		}
	}
	// Only flat arrays of numbers are skipped: anything else in an
	// array is not what Split writes, and fails closed.
	for _, bad := range []string{`["x"]`, `[[1]]`, `[1,]`, `[1 2]`, `[`, `[{}]`, `[1,"a"]`} {
		corrupt := strings.Replace(string(b), `"job_search_methods":[`, `"job_search_methods":`+bad+`,"x":[`, 1)
		if err := ps.parse([]byte(corrupt)); err == nil {
			t.Errorf("parse accepts the array %s", bad)
		}
	}
	for _, good := range []string{`[]`, `[1]`, `[-1,2.5,3e2]`} {
		ok := strings.Replace(string(b), `"job_search_methods":[`, `"job_search_methods":`+good+`,"x":[`, 1)
		if err := ps.parse([]byte(ok)); err != nil {
			t.Errorf("parse refuses the array %s: %v", good, err)
		}
	}
}

// formAs is the canonical definition of f changed by edit (a map of its
// JSON), parsed.
func formAs(t testing.TB, f *form.Form, edit func(def map[string]any)) *form.Form {
	t.Helper()
	b, err := f.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	var def map[string]any
	if err := json.Unmarshal(b, &def); err != nil {
		t.Fatal(err)
	}
	edit(def)
	if b, err = json.Marshal(def); err != nil {
		t.Fatal(err)
	}
	out, err := form.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fieldOf is the field named name of list ("household", "person") in a
// definition's JSON.
func fieldOf(t testing.TB, def map[string]any, list, name string) map[string]any {
	t.Helper()
	for _, f := range def[list].([]any) {
		if fd := f.(map[string]any); fd["name"] == name {
			return fd
		}
	}
	t.Fatalf("no %s field %s", list, name)
	return nil
}

// TestSchemaAgesFromRoles: age and age_group5 come from the fields with
// roles, whatever their names — a birth year (and month) at the census
// moment, or an age — and a form with no role has no age variables.
func TestSchemaAgesFromRoles(t *testing.T) {
	has := func(s *Schema, name string) bool { _, ok := s.vars[name]; return ok }

	census, err := NewSchema(form.Default())
	if err != nil {
		t.Fatal(err)
	}
	if !census.Ages() || census.vars[VarAge].kind != derivedAge || census.vars[VarAgeGroup5].kind != derivedBand {
		t.Errorf("census2019: ages %v, age %+v", census.Ages(), census.vars[VarAge])
	}

	// The birth fields renamed: the roles still say what they are.
	renamed := formAs(t, form.Default(), func(def map[string]any) {
		fieldOf(t, def, "person", "birth_year")["name"] = "yob"
		fieldOf(t, def, "person", "birth_month")["name"] = "mob"
	})
	s, err := NewSchema(renamed)
	if err != nil {
		t.Fatalf("birth fields renamed: %v", err)
	}
	if !has(s, VarAgeGroup5) || !has(s, VarAge) || s.birthYear.name != "yob" || s.birthMon.name != "mob" {
		t.Errorf("birth fields renamed: variables %v", s.order)
	}
	if s.vars[VarAge].bound != census.vars[VarAge].bound {
		t.Errorf("birth fields renamed: age bound %v, want %v", s.vars[VarAge].bound, census.vars[VarAge].bound)
	}

	// No roles: no ages, and fields named like census2019's birth
	// fields are plain variables.
	noRoles := formAs(t, form.Default(), func(def map[string]any) {
		delete(fieldOf(t, def, "person", "birth_year"), "role")
		delete(fieldOf(t, def, "person", "birth_month"), "role")
	})
	if s, err = NewSchema(noRoles); err != nil {
		t.Fatalf("no roles: %v", err)
	}
	if s.Ages() || has(s, VarAgeGroup5) || has(s, VarAge) || !has(s, "birth_year") {
		t.Errorf("no roles: ages %v, variables %v", s.Ages(), s.order)
	}
	if _, err := s.Catalogue(); err == nil {
		t.Error("census2019 without ages: the catalogue, whose tables use age_group5, loads")
	}
	ps := parseScratch{}
	ps.init(s)
	if age := s.ageOf(make([]float64, len(s.pCols))); age != 0 {
		t.Errorf("no roles: an age %d", age)
	}

	// lfs2026: the role-age field is named age, and is the age variable.
	lfs, err := NewSchema(lfsForm(t))
	if err != nil {
		t.Fatal(err)
	}
	if v := lfs.vars[VarAge]; v == nil || v != lfs.ageField || v.kind != coded || !v.quantitative || v.bound != 110 || !has(lfs, VarAgeGroup5) {
		t.Errorf("lfs2026: age %+v, variables %v", lfs.vars[VarAge], lfs.order)
	}
	if lfs.Quantitative("hours_worked") != true || lfs.vars["hours_worked"].required {
		t.Error("lfs2026: hours_worked, relevant to workers only, has no \"not stated\"")
	}
	if !lfs.vars["sex"].required {
		t.Error("lfs2026: sex, required everywhere, has a \"not stated\"")
	}
	if _, err := lfs.Catalogue(); !errors.Is(err, ErrNoCatalogue) {
		t.Errorf("lfs2026's catalogue: %v", err)
	}
	// An age field under another name: age is derived from it.
	years, err := NewSchema(formAs(t, lfsForm(t), func(def map[string]any) {
		fieldOf(t, def, "person", "age")["name"] = "age_years"
		for _, c := range def["checks"].([]any) {
			c.(map[string]any)["expr"] = strings.ReplaceAll(c.(map[string]any)["expr"].(string), "${age}", "${age_years}")
		}
		for _, f := range def["person"].([]any) {
			if r, ok := f.(map[string]any)["relevant"].(string); ok {
				f.(map[string]any)["relevant"] = strings.ReplaceAll(r, "${age}", "${age_years}")
			}
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if v := years.vars[VarAge]; v == nil || v.kind != derivedAge || v.bound != 110 || years.ageField.name != "age_years" {
		t.Errorf("age_years: age %+v", v)
	}

	// What the engine cannot tabulate is refused, saying why.
	for _, c := range []struct {
		name string
		f    *form.Form
		want string
	}{
		{"an analytic field named age beside a birth year", formAs(t, form.Default(), func(def map[string]any) {
			def["person"] = append(def["person"].([]any), map[string]any{"name": "age", "type": "int", "class": "analytic", "min": 0, "max": 120})
		}), "has the name of a variable derived from ages"},
		{"an analytic field named age_group5", formAs(t, lfsForm(t), func(def map[string]any) {
			def["person"] = append(def["person"].([]any), map[string]any{"name": "age_group5", "type": "int", "class": "analytic", "min": 0, "max": 20})
		}), "has the name of a variable derived from ages"},
		{"a birth year without a census moment", formAs(t, form.Default(), func(def map[string]any) {
			delete(def, "census_moment")
		}), "has no census_moment"},
		{"one name analytic in both lists", formAs(t, form.Default(), func(def map[string]any) {
			def["household"] = append(def["household"].([]any), map[string]any{"name": "sex", "type": "code", "class": "analytic",
				"codes": []any{map[string]any{"code": 1, "label": "a"}}})
		}), "both the household and the person list"},
	} {
		if _, err := NewSchema(c.f); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error saying %q", c.name, err, c.want)
		}
	}
}

// tinyTree is one EA per commune in two communes.
func tinyTree(t testing.TB) *area.Tree {
	t.Helper()
	tr, err := area.Load(strings.NewReader("code,parent,level,name,planned_households\n" +
		"VN,,nation,Nation,\nP1,VN,province,P1,\nD1,P1,district,D1,\nC1,D1,commune,C1,\nC2,D1,commune,C2,\n" +
		"E1,C1,ea,E1,500\nE2,C2,ea,E2,500\n"))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// household is s as the cache takes it, at audit index idx.
func household(t testing.TB, f *form.Form, s *form.Submission, idx int64) Household {
	t.Helper()
	h := Household{AuditIndex: idx, SupersedesIndex: -1, EA: s.Area, Key: testKey(int(idx), 0), Analytic: analyticOf(t, f, s)}
	for p := range s.Persons {
		h.PersonKeys = append(h.PersonKeys, testKey(int(idx), p+1))
	}
	return h
}

// cellCounts is the true counts of a table's inner cells, nonzero ones,
// by their categories ("1|0-4" for sex 1, band 0-4).
func cellCounts(t testing.TB, c *Cache, r *Request, proj Project) map[string]int64 {
	t.Helper()
	p := mustCompile(t, c, r, proj, sdc.DefaultParams(), FormatJSON, c.UpTo())
	cells, _, err := c.aggregate(p)
	if err != nil {
		t.Fatal(err)
	}
	tab := &Table{Plan: p} // for its cells' categories
	out := map[string]int64{}
	for i, a := range cells {
		rows, cols := tab.cellCats(i)
		key := append(rows, cols...)
		if a.n == 0 || slices.Contains(key, Margin) {
			continue
		}
		out[strings.Join(key, "|")] = a.n
	}
	return out
}

// TestLFSTabulatesByAgeRole: lfs2026 households (ages given directly,
// code sets present) tabulate by sex and age_group5.
func TestLFSTabulatesByAgeRole(t *testing.T) {
	f := lfsForm(t)
	s, err := NewSchema(f)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCache(s, tinyTree(t))
	if err != nil {
		t.Fatal(err)
	}
	people := [][][2]int{
		{{1, 40}, {2, 38}, {1, 9}, {2, 3}},
		{{2, 67}, {1, 71}},
		{{1, 22}, {1, 19}, {2, 104}},
	}
	var hs []Household
	want := map[string]int64{}
	for i, sa := range people {
		hs = append(hs, household(t, f, lfsHousehold(t, f, i, []string{"E1", "E2"}[i%2], sa...), int64(10+i)))
		for _, p := range sa {
			want[fmt.Sprintf("%d|%s", p[0], AgeGroup5Label(min(p[1]/5, AgeGroup5Bands-1)))]++
		}
	}
	if err := c.Append(hs, hs[len(hs)-1].AuditIndex); err != nil {
		t.Fatal(err)
	}
	proj := Project{ID: "p", Areas: []string{"VN"}, Variables: s.Variables()}
	got := cellCounts(t, c, countReq(Persons, []string{"sex"}, []string{VarAgeGroup5}), proj)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("persons by sex and age_group5: %v, want %v", got, want)
	}
	// The age itself is a measure and a dimension.
	if _, err := c.Compile(&Request{Project: "p", Unit: Persons, Rows: []string{"sex"}, Measure: Measure{Op: "mean", Var: "age"}}, proj, sdc.DefaultParams(), FormatJSON, c.UpTo()); err != nil {
		t.Errorf("mean age: %v", err)
	}
	// The code set is not a variable.
	if _, err := c.Compile(countReq(Persons, []string{"job_search_methods"}, nil), proj, sdc.DefaultParams(), FormatJSON, c.UpTo()); err == nil {
		t.Error("a table by a code_set compiles")
	}
}

// TestSchemaReadsOlderVersions: households of census2019 v1 read through
// the schema of a v2 that makes ethnicity identifying, adds a required
// analytic field, drops a religion code and narrows floor_area_m2. The
// reclassification holds on the old households at once (ethnicity is no
// variable, whatever v1 sealed as analytic); the new field is "not
// stated" for them (not dropped from its tables); a value v2 does not
// accept is absent (a sum's bound holds).
func TestSchemaReadsOlderVersions(t *testing.T) {
	v1 := form.Default()
	v2 := formAs(t, v1, func(def map[string]any) {
		def["version"] = 2
		fieldOf(t, def, "person", "ethnicity")["class"] = "identifying"
		rel := fieldOf(t, def, "person", "relationship")
		rel["codes"] = rel["codes"].([]any)[:len(rel["codes"].([]any))-1] // 11 (other) is gone
		fieldOf(t, def, "household", "floor_area_m2")["max"] = 60
		def["person"] = append(def["person"].([]any), map[string]any{"name": "disability", "type": "code", "class": "analytic", "required": true,
			"codes": []any{map[string]any{"code": 1, "label": "yes"}, map[string]any{"code": 2, "label": "no"}}})
	})
	s, err := NewSchema(v2, v1)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.vars["ethnicity"]; ok || s.closed["ethnicity"] != form.Identifying {
		t.Fatalf("ethnicity in v2's schema: %v", s.order)
	}
	if s.vars["disability"].required || !s.vars["sex"].required || s.vars["relationship"].required {
		t.Errorf("required: disability %v (new in v2), sex %v (required in both), relationship %v (v1 has a code v2 lacks)",
			s.vars["disability"].required, s.vars["sex"].required, s.vars["relationship"].required)
	}
	if alone, err := NewSchema(v2); err != nil || !alone.vars["disability"].required || !alone.vars["relationship"].required {
		t.Errorf("v2 alone: disability and relationship not required, %v", err)
	}

	b, err := os.ReadFile("../form/testdata/household.json")
	if err != nil {
		t.Fatal(err)
	}
	old, err := form.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	old.Area = "E1"
	old.Persons[5]["relationship"] = form.IntValue(11)
	hOld := household(t, v1, old, 10)
	if !strings.Contains(string(hOld.Analytic), `"ethnicity":1`) || !strings.Contains(string(hOld.Analytic), `"floor_area_m2":65.5`) {
		t.Fatalf("test setup: v1's analytic part %s", hOld.Analytic)
	}
	newer := *old
	newer.FormVersion, newer.HouseholdNo, newer.Area = 2, 38, "E2"
	newer.Persons = nil
	for i, p := range old.Persons {
		q := maps.Clone(p)
		q["disability"] = form.IntValue(int64(1 + i%2))
		if i == 5 {
			q["relationship"] = form.IntValue(10) // v2 has no 11
		}
		newer.Persons = append(newer.Persons, q)
	}
	newer.Household = maps.Clone(old.Household)
	newer.Household["floor_area_m2"] = form.IntValue(48)
	hNew := household(t, v2, &newer, 12)

	c, err := NewCache(s, tinyTree(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Append([]Household{hOld, hNew}, 12); err != nil {
		t.Fatal(err)
	}
	proj := Project{ID: "p", Areas: []string{"VN"}, Variables: append(s.Variables(), "ethnicity")}
	_, err = c.Compile(countReq(Persons, []string{"ethnicity"}, nil), proj, sdc.DefaultParams(), FormatJSON, c.UpTo())
	var re *RequestError
	if !errors.As(err, &re) || !re.Denied || !strings.Contains(re.Msg, "identifying") {
		t.Errorf("a table by ethnicity over v1 households, after v2 made it identifying: %v", err)
	}
	n := len(old.Persons)
	got := cellCounts(t, c, countReq(Persons, []string{"disability"}, nil), proj)
	if want := fmt.Sprint(map[string]int64{"1": int64((n + 1) / 2), "2": int64(n / 2), NotStated: int64(n)}); fmt.Sprint(got) != want {
		t.Errorf("persons by disability: %v, want %v (v1's persons not stated)", got, want)
	}
	got = cellCounts(t, c, countReq(Persons, []string{"relationship"}, nil), proj)
	if got[NotStated] != 1 || got["11"] != 0 {
		t.Errorf("persons by relationship: %v; want v1's code 11, which v2 lacks, not stated", got)
	}
	// floor_area_m2 65.5 is beyond v2's 60: absent, as v2 would never
	// have accepted it, so a sum stays within the bound its noise is
	// scaled to.
	col := c.hCols[s.vars["floor_area_m2"].col].f
	if !math.IsNaN(col[0]) || col[1] != 48 {
		t.Errorf("floor_area_m2 as stored: %v, want [NaN 48]", col)
	}
}
