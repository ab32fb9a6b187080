package form_test

import (
	"bytes"
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
// survives Split → Join → Split byte for byte.
func FuzzDecodeValidate(f *testing.F) {
	def := form.Default()
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := form.Decode(b)
		if err != nil {
			var fe *form.Error
			if !errors.As(err, &fe) || len(fe.Problems) == 0 {
				t.Fatalf("Decode error %T: %v", err, err)
			}
			return
		}
		if err := def.ValidateAt(s, now); err != nil {
			var fe *form.Error
			if !errors.As(err, &fe) || len(fe.Problems) == 0 {
				t.Fatalf("Validate error %T: %v", err, err)
			}
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
		_, err = decodeValidate(form.Default(), []byte(body))
		if valid := strings.HasPrefix(e.Name(), "valid_"); valid != (err == nil) {
			t.Errorf("%s: err = %v", e.Name(), err)
		}
	}
}
