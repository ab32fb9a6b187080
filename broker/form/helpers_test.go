package form_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker/form"
)

// now is the validation clock of the tests: during the 2019 field work.
var now = time.Date(2019, 4, 10, 12, 0, 0, 0, time.UTC)

func householdJSON(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/household.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mutate decodes the example household, lets change edit it and encodes it
// again (numbers kept as written).
func mutate(t testing.TB, change func(m map[string]any)) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(householdJSON(t)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	change(m)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func hh(m map[string]any) map[string]any { return m["household"].(map[string]any) }

func person(m map[string]any, i int) map[string]any {
	return m["persons"].([]any)[i].(map[string]any)
}

func simplePerson() map[string]any {
	return map[string]any{"full_name": "Phạm Văn An", "relationship": 3, "sex": 1, "birth_year": 2000}
}

// decodeValidate runs Decode and, if it succeeds, ValidateAt.
func decodeValidate(f *form.Form, b []byte) (*form.Submission, error) {
	s, err := form.Decode(b)
	if err != nil {
		return nil, err
	}
	return s, f.ValidateAt(s, now)
}

// problems returns the problems of an *Error, failing the test for any
// other error.
func problems(t testing.TB, err error) []string {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	var fe *form.Error
	if !errors.As(err, &fe) {
		t.Fatalf("error %v is %T, want *form.Error", err, err)
	}
	if !errors.Is(err, form.ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) is false", err)
	}
	return fe.Problems
}

func hasProblem(list []string, want string) bool {
	for _, p := range list {
		if p == want || strings.HasSuffix(want, "…") && strings.HasPrefix(p, strings.TrimSuffix(want, "…")) {
			return true
		}
	}
	return false
}
