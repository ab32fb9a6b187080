package tables

import (
	"sync"
	"testing"

	"github.com/censusvault/censusvault/broker/sdc"
	"github.com/censusvault/censusvault/broker/synth"
)

// bench1MHouseholds is the size of the million-person benchmark census:
// households placed over the whole national tree, one in every EA before
// any EA gets a second (about 3.6 persons each).
const bench1MHouseholds = 290_000

var (
	bench1MOnce sync.Once
	bench1MC    *Cache
)

// bench1MCache builds, once per process, a cache of at least a million
// persons over the national tree, generated as the utility census is
// (streamCensus), so that a district table has every district.
func bench1MCache(b *testing.B) *Cache {
	bench1MOnce.Do(func() {
		tr := national(b)
		eas := synth.EAs(tr)
		placed := make([]synth.Placed, 0, bench1MHouseholds)
		for no := 1; len(placed) < bench1MHouseholds; no++ {
			n := len(placed)
			for _, ea := range eas {
				if len(placed) == bench1MHouseholds {
					break
				}
				if no <= int(ea.Planned) {
					placed = append(placed, synth.Placed{EA: ea, No: no})
				}
			}
			if len(placed) == n {
				b.Fatalf("the national tree plans fewer than %d households", bench1MHouseholds)
			}
		}
		c := newTestCache(b, tr, nil)
		streamCensus(b, c, placed)
		if _, persons, _ := c.Size(); persons < 1_000_000 {
			b.Fatalf("the benchmark census has %d persons; it should have at least a million", persons)
		}
		bench1MC = c
	})
	if bench1MC == nil {
		b.Fatal("the million-person benchmark cache was not built (see the first benchmark that failed)")
	}
	return bench1MC
}

// table30k is issue 12's benchmark table: persons by district × sex ×
// age_group5 of the whole nation, about 30,000 cells.
func table30k() *Request {
	return countReq(Persons, []string{"district"}, []string{"sex", "age_group5"})
}

func reportTable(b *testing.B, c *Cache, cells int) {
	_, persons, _ := c.Size()
	b.ReportMetric(float64(persons), "persons")
	b.ReportMetric(float64(cells), "cells")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(persons), "ns/person")
}

// BenchmarkTable30k is one cell-key release of table30k on a warm cache
// of a million persons: compile, aggregate, perturb, render.
// BenchmarkDPTable30k is the same request in dp mode; issue 12 asks that
// it stay within 3× of this one.
func BenchmarkTable30k(b *testing.B) {
	c := bench1MCache(b)
	proj := Project{ID: "p", Areas: []string{"VN"}, Variables: c.schema.Variables()}
	asOf := c.UpTo()
	var cells int
	b.ReportAllocs()
	for b.Loop() {
		p, err := c.Compile(table30k(), proj, sdc.DefaultParams(), FormatJSON, asOf)
		if err != nil {
			b.Fatal(err)
		}
		t, err := c.Run(p)
		if err != nil {
			b.Fatal(err)
		}
		if len(t.Render()) == 0 {
			b.Fatal("empty release")
		}
		cells = len(t.Cells)
	}
	if cells < 30_000 {
		b.Fatalf("%d cells; the benchmark is of a 30,000-cell table", cells)
	}
	reportTable(b, c, cells)
}

// BenchmarkDPTable30k is one dp release of table30k at the default ρ on
// the same warm cache: compile (canonical query), seed, aggregate with
// the person cap, one discrete Gaussian draw per inner cell,
// post-processing, render.
func BenchmarkDPTable30k(b *testing.B) {
	c := bench1MCache(b)
	proj := Project{ID: "p", Areas: []string{"VN"}, Variables: c.schema.Variables()}
	point := DPPoint{Name: "bench", AsOf: c.UpTo(), Digest: "sha256:bench"}
	var cells int
	b.ReportAllocs()
	for b.Loop() {
		r := table30k()
		r.Rho = dpUtilityRho
		p, err := c.CompileDP(r, proj, point, DefaultDPParams(), FormatJSON)
		if err != nil {
			b.Fatal(err)
		}
		t, err := c.RunDP(p, seedOf(p))
		if err != nil {
			b.Fatal(err)
		}
		if len(t.Render()) == 0 {
			b.Fatal("empty release")
		}
		cells = len(t.Cells)
	}
	if cells < 30_000 {
		b.Fatalf("%d cells; the benchmark is of a 30,000-cell table", cells)
	}
	reportTable(b, c, cells)
}
