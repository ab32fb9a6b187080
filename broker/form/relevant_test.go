package form_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker/form"
)

// chainForm's relevants name fields defined after them: b depends on a,
// a on c, and d (required) holds only while a is absent. A pass in
// definition order would read a before deciding about it.
const chainForm = `{"name": "chain", "version": 1, "census_moment": "2029-04-01T00:00:00+07:00",
 "household": [{"name": "head_name", "type": "string", "class": "identifying", "required": true, "max_len": 50}],
 "person": [
  {"name": "b", "type": "int", "class": "analytic", "min": 0, "max": 9, "relevant": "${a} = 1"},
  {"name": "d", "type": "int", "class": "analytic", "min": 0, "max": 9, "required": true, "relevant": "not(${a} = 1)"},
  {"name": "a", "type": "int", "class": "analytic", "min": 0, "max": 9, "relevant": "${c} = 1"},
  {"name": "c", "type": "int", "class": "analytic", "min": 0, "max": 9, "required": true}
 ]}`

// TestDropNotRelevantChain: values are removed in the order the
// relevants depend on each other, so that a removal reaches the fields
// that depend on it whatever their place in the definition: a (c is not
// 1) goes, then b (a is gone), while d, relevant only without a, stays
// and the household validates. Seen failing with the fields taken in
// definition order (b and d judged while a was still there: b kept, d
// removed, two problems).
func TestDropNotRelevantChain(t *testing.T) {
	f, err := form.Parse([]byte(chainForm))
	if err != nil {
		t.Fatal(err)
	}
	s := mustDecode(t, []byte(`{"id":"6f1c3a52-8d4e-4b7a-9c21-0e5d7f3b8a64","form":"chain","form_version":1,"area":"a-1","household_no":1,
	 "interviewed_at":"2029-04-03T10:00:00+07:00","household":{"head_name":"Lê Thị Hoa"},
	 "persons":[{"b":1,"d":1,"a":1,"c":2},{"b":1,"a":1,"c":1}]}`))
	if err := f.ValidateAt(s, clockOf(f)); err == nil {
		t.Fatal("the household is valid before anything is dropped")
	}
	if n := f.DropNotRelevant(s); n != 2 {
		t.Errorf("DropNotRelevant removed %d values, want 2", n)
	}
	if err := f.ValidateAt(s, clockOf(f)); err != nil {
		t.Errorf("after DropNotRelevant: %v", err)
	}
	if got := rawMap(s.Persons[0]); len(got) != 2 || got["d"] != "1" || got["c"] != "2" {
		t.Errorf("persons[0] = %v, want d and c", got)
	}
	// persons[1]: c = 1 keeps a, a keeps b; nothing to drop.
	if got := rawMap(s.Persons[1]); len(got) != 3 {
		t.Errorf("persons[1] = %v, want b, a and c", got)
	}
	if n := f.DropNotRelevant(s); n != 0 {
		t.Errorf("a second pass removed %d values", n)
	}
}

// TestDropNotRelevantExprForm: on the test form, a person's relevants
// read the household (uses_phone needs a phone), a code set's selection
// (activities) and a computed age; the household's relevant reads a
// code set (water_other needs water 9). Everything not relevant goes,
// nothing else, and the household then validates.
func TestDropNotRelevantExprForm(t *testing.T) {
	f := exprForm(t)
	m := exprBase()
	hhm := m["household"].(doc)
	hhm["water_other"] = "a pond" // water is {3, 1}: not relevant
	child := doc{"full_name": "Lê Văn An", "relationship": 3, "sex": 2, "birth_year": 2020,
		"worked": 2, "hours": 10, "activities": []any{1}, "children": 0, "uses_phone": 1} // 9 years old, no phone
	m["persons"] = append(m["persons"].([]any), child)
	s := mustDecode(t, encodeDoc(t, m))
	// Validate sees five values not relevant; the sixth, activities, is
	// relevant while worked (2) is there, and goes with it.
	before := problems(t, f.ValidateAt(s, clockOf(f)))
	if n := f.DropNotRelevant(s); n != 6 || len(before) != 5 {
		t.Errorf("DropNotRelevant removed %d values (want 6); Validate listed %d problems (want 5): %q", n, len(before), before)
	}
	if err := f.ValidateAt(s, clockOf(f)); err != nil {
		t.Fatalf("after DropNotRelevant: %v", err)
	}
	if _, ok := s.Household["water_other"]; ok {
		t.Error("water_other kept without water 9")
	}
	if got := slices.Sorted(mapKeys(s.Persons[1])); !slices.Equal(got, []string{"birth_year", "full_name", "relationship", "sex"}) {
		t.Errorf("the child keeps %v", got)
	}
	if got := rawMap(s.Persons[0]); got["hours"] != "40" || got["children"] != "2" {
		t.Errorf("the head lost relevant values: %v", got)
	}
}

// TestValidateParts: ValidateHousehold and ValidatePerson report the
// problems Validate reports of their part (values, relevants, required,
// constraints, unknown keys, the checks of the part's scope), and only
// those: together they are Validate's list without the top level.
func TestValidateParts(t *testing.T) {
	f := exprForm(t)
	m := exprBase()
	hhm := m["household"].(doc)
	hhm["sleeping_rooms"] = 4 // constraint: more than rooms
	hhm["rent"] = 60000       // check rent_note: no note…
	delete(hhm, "note")
	m["persons"] = append(m["persons"].([]any),
		doc{"full_name": "Lê Văn An", "relationship": 1, "sex": 1, "birth_year": 2020, "hours": 3, "shoe_size": nil}, // head_age, not relevant, unknown
		doc{"full_name": "Lê Thị Bình", "relationship": 3, "sex": 2, "birth_year": 1990, "worked": 2})
	s := mustDecode(t, encodeDoc(t, m))
	s.Area = "not an area!" // top level: neither part's
	all := problems(t, f.ValidateAt(s, clockOf(f)))
	hh := problems(t, f.ValidateHousehold(s))
	if want := []string{"household.sleeping_rooms: more sleeping rooms than rooms", "check rent_note: not met"}; !slices.Equal(hh, want) {
		t.Errorf("ValidateHousehold = %q, want %q", hh, want)
	}
	if err := f.ValidatePerson(s, 0); err != nil {
		t.Errorf("ValidatePerson(0) = %v", err)
	}
	p1 := problems(t, f.ValidatePerson(s, 1))
	if want := []string{"persons[1].hours: not relevant", "persons[1].shoe_size: unknown field", "persons[1]: check head_age: the head of household is at least 15"}; !slices.Equal(p1, want) {
		t.Errorf("ValidatePerson(1) = %q, want %q", p1, want)
	}
	if err := f.ValidatePerson(s, 2); err != nil {
		t.Errorf("ValidatePerson(2) = %v", err)
	}
	parts := append(append([]string{"area: must be an area code"}, hh...), p1...)
	slices.Sort(parts)
	slices.Sort(all)
	if !slices.Equal(parts, all) {
		t.Errorf("the parts' problems and the area's\n%q\nare not Validate's\n%q", parts, all)
	}
	for _, i := range []int{-1, 3} {
		if err := f.ValidatePerson(s, i); !errors.Is(err, form.ErrInvalid) || !strings.Contains(err.Error(), "no person") {
			t.Errorf("ValidatePerson(%d) = %v", i, err)
		}
	}
}
