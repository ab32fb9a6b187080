package broker_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage/sqlite"
)

// The national table benchmarks run on a vault made by
//
//	censusvault gen --national --seed 2019 --households 2786000 --data DIR
//
// (≈ 10 million persons, ≈ 25 minutes and ≈ 9 GB on 2 cores), named by
// CENSUSVAULT_BENCH_DATA=DIR. They measure the catalogue's largest
// national table, education × ten-year age group × sex of the whole
// country (every person aggregated), at the latest publication point,
// through the whole RequestTable path: cold (a new broker: the column
// cache is built from the store, every analytic part opened) and warm
// (the cache is current). The first run on a vault makes the point (as
// the host operator; later runs use it). Without the variable they are
// skipped: such a vault is too big to make in a test run. (Before the
// catalogue they measured a free-form district × sex × age_group5 table,
// which is no longer asked.)
const nationalTable = `{"project":"bench-3way","purpose":"benchmark","table":"population_education_age_sex","area":"VN"}`

// nationalTableCells is that table's cells, margins included: seven
// education groups and not stated, by eight age groups and two sexes.
const nationalTableCells = (7 + 1 + 1) * (8*2 + 1)

func nationalBroker(b *testing.B) (*broker.Broker, *broker.Caller) {
	b.Helper()
	dir := os.Getenv("CENSUSVAULT_BENCH_DATA")
	if dir == "" {
		b.Skip("CENSUSVAULT_BENCH_DATA names no vault made with `censusvault gen --national --seed 2019`")
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(dir, sqlite.FileName)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	load := func(name string) *agekey.Provider {
		p, err := agekey.Load(filepath.Join(dir, name))
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	sys := load(agekey.FileName)
	class := map[crypto.Class]crypto.KeyProvider{
		crypto.Identifying: load("keyprovider-identifying.age"),
		crypto.Analytic:    load("keyprovider-analytic.age"),
	}
	br, err := broker.New(ctx, broker.Opts{Store: st, Keys: sys, ClassKeys: class, Preload: true}) // as serve
	if err != nil {
		b.Fatal(err)
	}
	p := broker.NewProject{
		ID: "bench-3way", Title: "benchmark", Purpose: "benchmark", Areas: []broker.AreaCode{br.Tree().Root()},
		Variables: []string{"sex", "age_group5", "education_level"}, Expires: time.Now().Add(24 * time.Hour), Budget: broker.MaxProjectBudget,
	}
	if err := br.AddProject(ctx, "cli:bench", p); err != nil && broker.KindOf(err) != broker.Conflict {
		b.Fatal(err)
	}
	if ps, err := br.ReleasePoints(ctx); err != nil {
		b.Fatal(err)
	} else if len(ps) == 0 {
		if _, err := br.CreateReleasePoint(ctx, "cli:bench", "bench"); err != nil {
			b.Fatal(err)
		}
	}
	tok, err := br.AddUser(ctx, "cli:bench", broker.NewUser{Name: broker.UserID("bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)), Role: policy.Researcher, Area: br.Tree().Root(), Project: p.ID})
	if err != nil {
		b.Fatal(err)
	}
	c, err := br.Authenticate(ctx, "Bearer "+tok.Reveal(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	return br, c
}

// peakRSS is the process's peak resident set (VmHWM), in MiB.
func peakRSS() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func benchTable(b *testing.B, br *broker.Broker, c *broker.Caller) {
	r, err := br.RequestTable(context.Background(), c, []byte(nationalTable), broker.TableOpts{})
	if err != nil {
		b.Fatal(err)
	}
	if r.Cells != nationalTableCells {
		b.Fatalf("%d cells, want %d", r.Cells, nationalTableCells)
	}
}

// BenchmarkNationalTableCold: each iteration starts a new broker, so the
// table pays for building the column cache from the store.
func BenchmarkNationalTableCold(b *testing.B) {
	var br *broker.Broker
	for b.Loop() {
		b.StopTimer()
		br = nil // let the previous cache go before the next is built
		var c *broker.Caller
		br, c = nationalBroker(b)
		b.StartTimer()
		benchTable(b, br, c)
	}
	h, p, bytes := br.TableCacheSize()
	b.ReportMetric(float64(p), "persons")
	b.ReportMetric(float64(h), "households")
	b.ReportMetric(float64(bytes)/(1<<20), "cache-MiB")
	b.ReportMetric(peakRSS(), "peak-RSS-MiB")
}

// BenchmarkNationalTableWarm: the cache is built once; each iteration is
// one table request on it (refresh check, compile, aggregate over every
// person, perturb, render, debit and audit).
func BenchmarkNationalTableWarm(b *testing.B) {
	br, c := nationalBroker(b)
	if err := br.WarmTables(context.Background()); err != nil {
		b.Fatal(err)
	}
	_, p, _ := br.TableCacheSize()
	if p == 0 {
		b.Fatal(errors.New("empty cache"))
	}
	for b.Loop() {
		benchTable(b, br, c)
	}
	b.ReportMetric(float64(p), "persons")
	b.ReportMetric(peakRSS(), "peak-RSS-MiB")
}
