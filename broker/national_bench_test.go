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
// CENSUSVAULT_BENCH_DATA=DIR. They measure the researcher's 3-way table
// district × sex × age_group5 (≈ 29,400 inner cells) through the whole
// RequestTable path: cold (a new broker: the column cache is built from
// the store, every analytic part opened) and warm (the cache is current).
// Without the variable they are skipped: such a vault is too big to make
// in a test run.
const nationalTable = `{"project":"bench-3way","purpose":"benchmark","rows":["district"],"cols":["sex","age_group5"]}`

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
		Variables: []string{"sex", "age_group5"}, Expires: time.Now().Add(24 * time.Hour), Budget: broker.MaxProjectBudget,
	}
	if err := br.AddProject(ctx, "cli:bench", p); err != nil && broker.KindOf(err) != broker.Conflict {
		b.Fatal(err)
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
	if r.Cells < 29000 {
		b.Fatalf("%d cells", r.Cells)
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
