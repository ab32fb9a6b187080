package tables

import (
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/censusvault/censusvault/broker/sdc"
)

var (
	benchOnce sync.Once
	benchC    *Cache
	benchHH   []Household
)

// benchHouseholds is CENSUSVAULT_BENCH_HOUSEHOLDS, default 100,000.
func benchHouseholds(b *testing.B) int {
	n := 100_000
	if s := os.Getenv("CENSUSVAULT_BENCH_HOUSEHOLDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			b.Fatalf("CENSUSVAULT_BENCH_HOUSEHOLDS=%q: want a positive number of households", s)
		}
		n = v
	}
	return n
}

// benchCache builds, once per process, a cache of the synthetic census
// on the national tree.
func benchCache(b *testing.B) (*Cache, []Household) {
	benchOnce.Do(func() {
		n := benchHouseholds(b)
		hs, _ := synthHouseholds(b, national(b), n)
		benchHH = hs
		benchC = newTestCache(b, national(b), hs)
	})
	if benchC == nil {
		b.Fatal("benchmark cache not built")
	}
	return benchC, benchHH
}

// BenchmarkTable3Way is one release of district × sex × age_group5:
// compile, aggregate, perturb, render.
func BenchmarkTable3Way(b *testing.B) {
	c, _ := benchCache(b)
	proj := Project{ID: "p", Areas: []string{"VN"}, Variables: c.schema.Variables()}
	r := countReq(Persons, []string{"district"}, []string{"sex", "age_group5"})
	asOf := c.UpTo()
	_, persons, _ := c.Size()
	var cells int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p, err := c.Compile(r, proj, sdc.DefaultParams(), FormatJSON, asOf)
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
	b.ReportMetric(float64(persons), "persons")
	b.ReportMetric(float64(cells), "cells")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(persons), "ns/person")
}

// BenchmarkCacheAppend decodes and appends the synthetic census into a
// cache emptied before each round.
func BenchmarkCacheAppend(b *testing.B) {
	_, hs := benchCache(b)
	c := newTestCache(b, national(b), nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c.mu.Lock()
		c.truncate(0, 0)
		c.upTo = -1
		c.mu.Unlock()
		if err := c.Append(hs, hs[len(hs)-1].AuditIndex); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(hs))*float64(b.N)/b.Elapsed().Seconds(), "households/s")
}

// BenchmarkTableSum is one release of a sum and of a mean (ckp/v2: each
// cell also tracks its two largest contributions): floor area of
// households by district × tenure, and mean age of persons by district ×
// sex × age_group5 (about 30,000 cells).
func BenchmarkTableSum(b *testing.B) {
	c, _ := benchCache(b)
	proj := Project{ID: "p", Areas: []string{"VN"}, Variables: c.schema.Variables()}
	for _, r := range []*Request{
		{Project: "p", Unit: Households, Rows: []string{"district"}, Cols: []string{"tenure"}, Measure: Measure{Op: "sum", Var: "floor_area_m2"}},
		{Project: "p", Unit: Persons, Rows: []string{"district"}, Cols: []string{"sex", "age_group5"}, Measure: Measure{Op: "mean", Var: "age"}},
	} {
		b.Run(string(r.Unit), func(b *testing.B) {
			asOf := c.UpTo()
			b.ReportAllocs()
			for b.Loop() {
				p, err := c.Compile(r, proj, sdc.DefaultParams(), FormatJSON, asOf)
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
			}
		})
	}
}
