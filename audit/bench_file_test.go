package audit_test

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/censusvault/censusvault/audit"
)

// BenchmarkVerifyExportFile is the auditor's offline verification as it
// really runs: an export file on disk, read and verified in one pass. The
// file of CENSUSVAULT_BENCH_EVENTS events (default 1,000,000) is generated
// once, untimed, into CENSUSVAULT_BENCH_DIR (default a temporary
// directory; ≈ 450 bytes a line, so 10 million events are ≈ 4.5 GB), with
// one event in ten withheld as out of scope. Run
//
//	CENSUSVAULT_BENCH_EVENTS=10000000 CENSUSVAULT_BENCH_DIR=/var/tmp go test -run X -bench VerifyExportFile -benchtime 1x ./audit/
//
// for the 10-million-event figure.
func BenchmarkVerifyExportFile(b *testing.B) {
	n := int64(1_000_000)
	if s := os.Getenv("CENSUSVAULT_BENCH_EVENTS"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 1 {
			b.Fatalf("CENSUSVAULT_BENCH_EVENTS=%q", s)
		}
		n = v
	}
	dir := os.Getenv("CENSUSVAULT_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	s, vkey := testKey(b, testOrigin, 1)
	path := filepath.Join(dir, "export-"+strconv.FormatInt(n, 10)+".jsonl")
	cpPath := path + ".checkpoint"
	var signed []byte
	if cp, err := os.ReadFile(cpPath); err == nil {
		if _, err := audit.OpenCheckpoint(cp, vkey); err == nil {
			signed = cp
		}
	}
	if signed == nil {
		// Two untimed passes: the root first (the checkpoint heads the
		// file), then the file.
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
		signed = signCheckpoint(b, s, audit.Checkpoint{Origin: testOrigin, Size: n, Root: tree.Root()})
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		bw := bufio.NewWriterSize(f, 1<<20)
		x, err := audit.NewExportWriter(bw, signed)
		if err != nil {
			b.Fatal(err)
		}
		head = audit.Genesis
		for i := range n {
			r, err := audit.Seal(head, logEvent(i))
			if err == nil {
				head = r.ChainHash
				if i%10 == 9 {
					err = x.Withheld(i, r.LeafHash, r.ChainHash, audit.WithheldOutOfScope)
				} else {
					err = x.Event(r)
				}
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if err := x.Close(); err != nil {
			b.Fatal(err)
		}
		if err := bw.Flush(); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(cpPath, signed, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	// The checkpoint the auditor trusts: the one in the file's first line
	// is the same; pass it explicitly as the CLI does.
	var peak uint64
	var ms runtime.MemStats
	b.ResetTimer()
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		res, err := audit.VerifyExport(bufio.NewReaderSize(f, 1<<20), audit.ExportOpts{
			VerifierKey: vkey, Checkpoint: signed,
			Progress: func(int64) {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			},
		})
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		if res.Size != n {
			b.Fatalf("verified %d leaves, want %d", res.Size, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
