package audit_test

import (
	"bufio"
	"io"
	"runtime"
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

// BenchmarkVerifyExport verifies an export of b.N events streamed through
// an io.Pipe as a writer produces it, so neither side ever holds the log:
// peak-heap-MB, sampled every 65536 lines, stays flat as b.N grows (run
// with -benchtime=10000000x for the 10-million-event case).
func BenchmarkVerifyExport(b *testing.B) {
	n := int64(b.N)
	s, vkey := testKey(b, testOrigin, 1)
	// First pass, untimed: the checkpoint the writer needs up front.
	var tree audit.TreeBuilder
	head := audit.Genesis
	for i := range n {
		r, err := audit.Seal(head, logEvent(i))
		if err != nil {
			b.Fatal(err)
		}
		tree.Add(r.LeafHash)
		head = r.ChainHash
	}
	signed := signCheckpoint(b, s, audit.Checkpoint{Origin: testOrigin, Size: n, Root: tree.Root()})

	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriterSize(pw, 64<<10)
		x, err := audit.NewExportWriter(bw, signed)
		head := audit.Genesis
		for i := int64(0); err == nil && i < n; i++ {
			var r audit.Record
			if r, err = audit.Seal(head, logEvent(i)); err == nil {
				head = r.ChainHash
				if i%10 == 9 {
					err = x.Withheld(i, r.LeafHash, r.ChainHash, audit.WithheldOutOfScope)
				} else {
					err = x.Event(r)
				}
			}
		}
		if err == nil {
			err = x.Close()
		}
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()

	var peak uint64
	var ms runtime.MemStats
	b.ReportAllocs()
	b.ResetTimer()
	res, err := audit.VerifyExport(pr, audit.ExportOpts{
		VerifierKey: vkey,
		Progress: func(int64) {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		},
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if res.Size != n || res.Root != tree.Root() {
		b.Fatalf("result %+v", res)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}
