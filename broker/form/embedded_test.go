package form_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker/form"
)

// TestEmbeddedCanonical: every embedded form has a unique (name,
// version) and a canonical definition that Parse reads back to the same
// bytes; the same definition spelled otherwise (indented, keys in
// another order) has the same digest, and a changed class another.
func TestEmbeddedCanonical(t *testing.T) {
	forms := form.Embedded()
	if len(forms) == 0 || forms[0].Name != form.Default().Name || forms[0].Version != form.Default().Version {
		t.Fatalf("Embedded() does not start with the default form")
	}
	seen := map[string]bool{}
	hexRE := regexp.MustCompile(`^[0-9a-f]{64}$`)
	for _, f := range forms {
		key := fmt.Sprintf("%s/%d", f.Name, f.Version)
		if seen[key] {
			t.Errorf("%s v%d embedded twice", f.Name, f.Version)
		}
		seen[key] = true
		b, sum, err := f.Digest()
		if err != nil || !hexRE.MatchString(sum) {
			t.Fatalf("%s: Digest = %q, %v", f.Name, sum, err)
		}
		g, err := form.Parse(b)
		if err != nil {
			t.Fatalf("%s: the canonical bytes do not parse: %v", f.Name, err)
		}
		if b2, sum2, _ := g.Digest(); !bytes.Equal(b, b2) || sum2 != sum {
			t.Errorf("%s: canonical bytes do not survive Parse", f.Name)
		}
		// Indented, with its keys in another order (a map sorts them).
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		other, _ := json.MarshalIndent(m, "", "\t")
		if bytes.Equal(other, b) {
			t.Fatal("the respelled definition is the canonical one")
		}
		h, err := form.Parse(other)
		if err != nil {
			t.Fatalf("%s respelled: %v", f.Name, err)
		}
		if _, sum3, _ := h.Digest(); sum3 != sum {
			t.Errorf("%s: the same definition spelled otherwise has another digest", f.Name)
		}
		// One field's class changed: another definition, another digest.
		fields := m["person"].([]any)
		fd := fields[0].(map[string]any)
		if fd["class"] == "identifying" {
			fd["class"] = "analytic"
		} else {
			fd["class"] = "identifying"
		}
		changed, _ := json.Marshal(m)
		if c, err := form.Parse(changed); err == nil {
			if _, sum4, _ := c.Digest(); sum4 == sum {
				t.Errorf("%s: a reclassified field leaves the digest unchanged", f.Name)
			}
		}
	}
}

// lfsHousehold is an lfs2026 household: an employee head (a wage, so
// status 4), a spouse looking for work (a code set, written unsorted,
// and no job questions), and a child under 5 (no education, no labour
// questions at all).
const lfsHousehold = `{"id":"7c1c2a52-4b1e-4f0e-9a57-2f4f1e0d9b01","form":"lfs2026","form_version":1,"area":"18070-01","household_no":4,
 "interviewed_at":"2026-07-03T09:30:00+07:00",
 "household":{"head_name":"Nguyễn Văn Hùng","phone":"0912345678","dwelling_owned":1,"rotation_group":2,"interview_mode":1},
 "persons":[
  {"full_name":"Nguyễn Văn Hùng","relationship":1,"sex":1,"age":41,"education_level":4,"worked_last_week":1,
   "status_in_employment":4,"occupation_group":7,"hours_worked":48,"monthly_wage_kvnd":8500.5,"response_type":1},
  {"full_name":"Trần Thị Lan","relationship":2,"sex":2,"age":38,"education_level":5,"worked_last_week":2,
   "temporarily_absent":2,"job_search_methods":[5,1,4],"available_to_work":1,"response_type":1},
  {"full_name":"Nguyễn Minh Khôi","relationship":3,"sex":1,"age":3,"response_type":2}]}`

// TestEmbeddedLFS2026: the labour-force survey is built in, after the
// default form: it is lfs2026.json as Parse reads it, has a JSON Schema,
// validates a household of its own and refuses a census2019 one, and a
// household round-trips through Split and Join, its code set sorted.
func TestEmbeddedLFS2026(t *testing.T) {
	var lfs *form.Form
	for _, f := range form.Embedded() {
		if f.Name == "lfs2026" {
			lfs = f
		}
	}
	if lfs == nil || lfs.Version != 1 {
		t.Fatal("lfs2026 v1 is not embedded")
	}
	b, err := os.ReadFile("lfs2026.json")
	if err != nil {
		t.Fatal(err)
	}
	g, err := form.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	_, want, _ := g.Digest()
	if _, got, _ := lfs.Digest(); got != want {
		t.Error("the embedded lfs2026 is not lfs2026.json")
	}
	if age, ok := lfs.RoleField(form.RoleAge); !ok || age != "age" {
		t.Errorf("lfs2026's age role: %q %v", age, ok)
	}
	sch, err := lfs.JSONSchema()
	if err != nil || !json.Valid(sch) || !bytes.Contains(sch, []byte(`"job_search_methods"`)) || !bytes.Contains(sch, []byte(`check:head_of_working_age`)) {
		t.Fatalf("lfs2026's JSON Schema: %v\n%.300s", err, sch)
	}
	clock := time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)
	s := mustDecode(t, []byte(lfsHousehold))
	if err := lfs.ValidateAt(s, clock); err != nil {
		t.Fatalf("an lfs2026 household: %v", err)
	}
	if err := lfs.ValidateAt(mustDecode(t, householdJSON(t)), clock); err == nil {
		t.Error("lfs2026 accepts a census2019 household")
	}
	parts, err := lfs.Split(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(parts[form.Analytic], []byte(`"job_search_methods":[1,4,5]`)) || bytes.Contains(parts[form.Analytic], []byte("Nguyễn")) {
		t.Errorf("analytic part: %s", parts[form.Analytic])
	}
	h, ps, err := lfs.Join(parts)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rawMap(h), rawMap(s.Household)) || len(ps) != len(s.Persons) {
		t.Fatalf("household differs after Split and Join:\n got %v\nwant %v", rawMap(h), rawMap(s.Household))
	}
	for i := range ps {
		want := rawMap(s.Persons[i])
		if i == 1 {
			want["job_search_methods"] = "[1,4,5]"
		}
		if !reflect.DeepEqual(rawMap(ps[i]), want) {
			t.Errorf("persons[%d] differs after Split and Join:\n got %v\nwant %v", i, rawMap(ps[i]), want)
		}
	}
	if codes, ok := ps[1]["job_search_methods"].Codes(); !ok || !slices.Equal(codes, []int{1, 4, 5}) {
		t.Errorf("the code set read back: %v %v", codes, ok)
	}
	// Joined back, the household is the same submission to Validate.
	s.Household, s.Persons = h, ps
	if err := lfs.ValidateAt(s, clock); err != nil {
		t.Errorf("the joined household: %v", err)
	}
}
