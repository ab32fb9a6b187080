package form_test

import (
	"testing"

	"github.com/censusvault/censusvault/broker/form"
)

// BenchmarkDecodeValidate measures the ingest path for a 6-person
// household (target: under 50 µs on one core).
func BenchmarkDecodeValidate(b *testing.B) {
	f := form.Default()
	body := householdJSON(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		s, err := form.Decode(body)
		if err != nil {
			b.Fatal(err)
		}
		if err := f.ValidateAt(s, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSplit(b *testing.B) {
	f := form.Default()
	s, err := form.Decode(householdJSON(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Split(s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeValidateExpr measures the ingest path of a form with
// code sets, relevants, constraints and checks (testdata/exprform.json),
// for a household of 8 persons.
func BenchmarkDecodeValidateExpr(b *testing.B) {
	f := exprForm(b)
	var body []byte
	for seed := int64(0); ; seed++ {
		body = exprDoc(b, f, seed, 0)
		if n := len(parseDoc(b, body)["persons"].([]any)); n == 8 {
			break
		}
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	at := clockOf(f)
	for b.Loop() {
		s, err := form.Decode(body)
		if err != nil {
			b.Fatal(err)
		}
		if err := f.ValidateAt(s, at); err != nil {
			b.Fatal(err)
		}
	}
}
