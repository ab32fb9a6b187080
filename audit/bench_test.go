package audit_test

import (
	"testing"

	"github.com/censusvault/censusvault/audit"
)

func BenchmarkSeal(b *testing.B) {
	e := logEvent(123456)
	var head [32]byte
	b.ReportAllocs()
	for b.Loop() {
		r, err := audit.Seal(head, e)
		if err != nil {
			b.Fatal(err)
		}
		head = r.ChainHash
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkVerify(b *testing.B) {
	recs := buildLog(b, 1000)
	b.ReportAllocs()
	v := audit.NewVerifier()
	n := 0
	for b.Loop() {
		if n == len(recs) {
			v, n = audit.NewVerifier(), 0
		}
		if err := v.Add(recs[n]); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
