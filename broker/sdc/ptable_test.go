package sdc_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker/sdc"
)

// paramSets are the tables whose invariants every test checks.
var paramSets = []sdc.Params{
	sdc.DefaultParams(),
	{MaxNoise: 1, Variance: 0.5, SmallCell: 5, MaxDims: 4, MaxCells: 50000, MinUniverse: 100},
	{MaxNoise: 1, Variance: 1, SmallCell: 1, MaxDims: 4, MaxCells: 50000, MinUniverse: 100},
	{MaxNoise: 3, Variance: 2.5, SmallCell: 10, MaxDims: 4, MaxCells: 50000, MinUniverse: 100},
	{MaxNoise: 3, Variance: 8, SmallCell: 3, MaxDims: 4, MaxCells: 50000, MinUniverse: 100},
	{MaxNoise: 5, Variance: 4, SmallCell: 20, MaxDims: 4, MaxCells: 50000, MinUniverse: 100},
}

func mustTable(t testing.TB, p sdc.Params) *sdc.PTable {
	t.Helper()
	pt, err := sdc.NewPTable(p)
	if err != nil {
		t.Fatalf("NewPTable(%s): %v", p.Canonical(), err)
	}
	return pt
}

// gridKeys returns n keys evenly spread over [0, 2^32), at the middle of
// each stride so every key range is sampled in proportion to its width.
func gridKeys(n int) []uint32 {
	stride := sdc.Modulus / uint64(n)
	keys := make([]uint32, n)
	for i := range keys {
		keys[i] = uint32(uint64(i)*stride + stride/2)
	}
	return keys
}

func TestPTableInvariants(t *testing.T) {
	keys := gridKeys(1 << 17) // 131,072 keys, covers the "100,000 keys" scan
	for _, p := range paramSets {
		t.Run(p.Canonical(), func(t *testing.T) {
			pt := mustTable(t, p)
			d := int64(p.MaxNoise)
			for n := int64(0); n <= int64(3*p.SmallCell); n++ {
				var sum, sumSq, sumAbs float64
				for _, k := range keys {
					v := pt.Perturb(n, k)
					e := v - n
					if e < -d || e > d {
						t.Fatalf("n=%d key=%d: noise %d beyond ±%d", n, k, e, d)
					}
					if n == 0 && v != 0 {
						t.Fatalf("key=%d: zero perturbed to %d", k, v)
					}
					if n >= 1 && n < int64(p.SmallCell) {
						if v == n {
							t.Fatalf("n=%d key=%d: small count came out exact", n, k)
						}
						if v < 0 {
							t.Fatalf("n=%d key=%d: negative result %d", n, k, v)
						}
					}
					if v < 0 {
						t.Fatalf("n=%d key=%d: negative result %d", n, k, v)
					}
					fe := float64(e)
					sum += fe
					sumSq += fe * fe
					sumAbs += math.Abs(fe)
				}
				cnt := float64(len(keys))
				mean := sum / cnt
				if math.Abs(mean) > 0.01 {
					t.Errorf("n=%d: mean noise %.5f, want 0 ± 0.01", n, mean)
				}
				if n >= int64(p.SmallCell) {
					variance := sumSq/cnt - mean*mean
					if math.Abs(variance-p.Variance) > 0.1*p.Variance {
						t.Errorf("n=%d: variance %.4f, want %v ± 10%%", n, variance, p.Variance)
					}
				}
				if p == sdc.DefaultParams() && n >= 10 && sumAbs/cnt > 2 {
					t.Errorf("n=%d: mean absolute perturbation %.4f > 2", n, sumAbs/cnt)
				}
			}
		})
	}
}

func TestDefaultMeanAbsolutePerturbation(t *testing.T) {
	pt := mustTable(t, sdc.DefaultParams())
	keys := gridKeys(1 << 16)
	var abs float64
	for _, k := range keys {
		abs += math.Abs(float64(pt.Perturb(1000, k) - 1000))
	}
	got := abs / float64(len(keys))
	// P(±1)=1/6, P(±2)=1/12 → 2/3.
	if math.Abs(got-2.0/3) > 0.001 {
		t.Errorf("mean absolute perturbation %.5f, want 2/3", got)
	}
}

func TestPerturbBeyondLastRowDependsOnlyOnKey(t *testing.T) {
	p := sdc.DefaultParams()
	pt := mustTable(t, p)
	for _, k := range gridKeys(4096) {
		base := pt.Perturb(int64(p.SmallCell), k) - int64(p.SmallCell)
		for _, n := range []int64{int64(p.SmallCell) + 1, 1000, 1 << 40} {
			if e := pt.Perturb(n, k) - n; e != base {
				t.Fatalf("key=%d n=%d: noise %d, want %d as at n=js", k, n, e, base)
			}
		}
	}
}

func TestCellKeyDeterminism(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pt := mustTable(t, sdc.DefaultParams())
	for trial := 0; trial < 200; trial++ {
		recs := make([]uint32, 1+rng.IntN(300))
		for i := range recs {
			recs[i] = rng.Uint32()
		}
		k1 := sdc.CellKey(recs...)
		shuffled := append([]uint32(nil), recs...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		var c sdc.Cell
		for _, r := range shuffled {
			c.Add(r, 1)
		}
		if k2 := sdc.CellKey(shuffled...); k2 != k1 || c.Key != k1 {
			t.Fatalf("trial %d: keys %d, %d, %d differ by order", trial, k1, k2, c.Key)
		}
		if c.Count != int64(len(recs)) {
			t.Fatalf("count %d, want %d", c.Count, len(recs))
		}
		n := int64(len(recs))
		if pt.Perturb(n, k1) != pt.Perturb(n, c.Key) {
			t.Fatal("same contributors, different noise")
		}
		extra := rng.Uint32() | 1 // non-zero, so the key must change
		if sdc.CellKey(append(recs, extra)...) == k1 {
			t.Fatalf("trial %d: adding a contributor left the key unchanged", trial)
		}
	}
	if sdc.CellKey() != 0 {
		t.Error("empty cell key is not 0")
	}
	if sdc.CellKey(math.MaxUint32, 2) != 1 {
		t.Error("cell key does not wrap modulo 2^32")
	}
}

func TestDifferencingAttack(t *testing.T) {
	pt := mustTable(t, sdc.DefaultParams())
	rng := rand.New(rand.NewPCG(2019, 4))
	const trials = 1000
	exact := 0
	var sumDiff float64
	for trial := 0; trial < trials; trial++ {
		n := int64(20 + rng.IntN(181))
		var a sdc.Cell
		for i := int64(0); i < n; i++ {
			a.Add(rng.Uint32(), 1)
		}
		b := a
		b.Add(rng.Uint32(), 1) // the one extra person
		va, sa := pt.ReleaseCount(a)
		vb, sb := pt.ReleaseCount(b)
		if sa || sb {
			t.Fatalf("trial %d: unexpected suppression", trial)
		}
		diff := vb - va
		if diff == 1 {
			exact++
		}
		sumDiff += float64(diff)
	}
	frac := float64(exact) / trials
	mean := sumDiff / trials
	t.Logf("exact difference in %.1f%% of trials; mean difference %.3f", 100*frac, mean)
	if frac >= 0.4 {
		t.Errorf("true difference revealed in %.1f%% of trials, want well under half", 100*frac)
	}
	// Noise difference has variance 2V=2; the mean over 1,000 has sd ≈ 0.045.
	if math.Abs(mean-1) > 0.15 {
		t.Errorf("mean difference %.3f, want ≈ 1 (no systematic bias)", mean)
	}
}

// keyFor finds a key giving the wanted perturbed value for true count n.
func keyFor(t *testing.T, pt *sdc.PTable, n, want int64) uint32 {
	t.Helper()
	for _, k := range gridKeys(1 << 12) {
		if pt.Perturb(n, k) == want {
			return k
		}
	}
	t.Fatalf("no key perturbs %d to %d", n, want)
	return 0
}

func TestSmallCellRule(t *testing.T) {
	p := sdc.DefaultParams()
	pt := mustTable(t, p)
	js := int64(p.SmallCell)
	for _, tc := range []struct {
		n, perturbed int64
		suppressed   bool
	}{
		{js, js - 1, true},
		{js, js, false},
		{js, js + 1, false},
		{js + 1, js - 1, true},
		{js - 1, js, false}, // a true small count may be released once perturbed up
		{js - 1, js + 1, false},
		{js - 2, js, false},
		{js - 1, js - 2, true},
		{1, 0, true},
		{0, 0, true},
	} {
		k := keyFor(t, pt, tc.n, tc.perturbed)
		v, sup := pt.ReleaseCount(sdc.Cell{Count: tc.n, Key: k})
		if sup != tc.suppressed {
			t.Errorf("n=%d perturbed=%d: suppressed=%v, want %v", tc.n, tc.perturbed, sup, tc.suppressed)
		}
		if !sup && v != tc.perturbed {
			t.Errorf("n=%d: released %d, want %d", tc.n, v, tc.perturbed)
		}
		if sup && v != 0 {
			t.Errorf("n=%d: suppressed cell carries value %d", tc.n, v)
		}
	}
}

func TestReleaseSumAndMean(t *testing.T) {
	p := sdc.DefaultParamsV1()
	pt := mustTable(t, p)
	keys := gridKeys(1 << 16)
	const bound = 120.0
	var noiseSum float64
	for _, k := range keys {
		c := sdc.Cell{Count: 50, Key: k, Sum: 1500}
		s, sup := pt.ReleaseSum(c, bound)
		if sup {
			t.Fatal("sum of a large cell suppressed")
		}
		if s2, _ := pt.ReleaseSum(c, bound); s2 != s {
			t.Fatal("sum release not deterministic")
		}
		noise := s - c.Sum
		if math.Abs(noise) > bound {
			t.Fatalf("sum noise %v beyond bound %v", noise, bound)
		}
		s3, _ := pt.ReleaseSum(c, 3*bound)
		if math.Abs((s3-c.Sum)-3*noise) > 1e-9 {
			t.Fatalf("noise %v at 3B is not 3× noise %v at B", s3-c.Sum, noise)
		}
		noiseSum += noise / bound
		m, msup := pt.ReleaseMean(c, bound)
		n, _ := pt.ReleaseCount(c)
		if msup || math.Abs(m-s/float64(n)) > 1e-12 {
			t.Fatalf("mean %v (suppressed %v), want %v/%d", m, msup, s, n)
		}
	}
	if mean := noiseSum / float64(len(keys)); math.Abs(mean) > 0.01 {
		t.Errorf("mean sum noise %.4f·B, want 0", mean)
	}

	small := sdc.Cell{Count: 3, Key: 12345, Sum: 90}
	if _, sup := pt.ReleaseCount(small); !sup {
		t.Fatal("count 3 not suppressed")
	}
	if _, sup := pt.ReleaseSum(small, bound); !sup {
		t.Error("sum not suppressed with its count")
	}
	if _, sup := pt.ReleaseMean(small, bound); !sup {
		t.Error("mean not suppressed with its count")
	}
	big := sdc.Cell{Count: 50, Key: 1, Sum: 10}
	for _, b := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		if _, sup := pt.ReleaseSum(big, b); !sup {
			t.Errorf("bound %v: sum not suppressed", b)
		}
	}
}

func TestSumNoiseDecorrelatedFromCountNoise(t *testing.T) {
	pt := mustTable(t, sdc.DefaultParamsV1())
	var cov float64
	keys := gridKeys(1 << 16)
	for _, k := range keys {
		c := sdc.Cell{Count: 100, Key: k, Sum: 0}
		n, _ := pt.ReleaseCount(c)
		s, _ := pt.ReleaseSum(c, 1)
		cov += float64(n-100) * s
	}
	if r := cov / float64(len(keys)); math.Abs(r) > 0.02 {
		t.Errorf("count/sum noise covariance %.4f, want ≈ 0", r)
	}
}

func TestCheckShape(t *testing.T) {
	p := sdc.DefaultParams()
	for _, tc := range []struct {
		dims, cells int
		wantMsg     string
	}{
		{0, 10, "at least 1 dimension"},
		{1, 10, ""},
		{3, 10, ""},
		{4, 10, ""},
		{5, 10, "at most 4 dimensions"},
		{2, 0, "at least 1 cell"},
		{2, 49999, ""},
		{2, 50000, ""},
		{2, 50001, "table would have 50,001 cells; at most 50,000"},
		{2, 61000, "table would have 61,000 cells; at most 50,000"},
		{2, 1234567, "table would have 1,234,567 cells; at most 50,000"},
	} {
		err := p.CheckShape(tc.dims, tc.cells)
		if tc.wantMsg == "" {
			if err != nil {
				t.Errorf("CheckShape(%d, %d) = %v, want nil", tc.dims, tc.cells, err)
			}
			continue
		}
		if !errors.Is(err, sdc.ErrTableShape) || !strings.Contains(err.Error(), tc.wantMsg) {
			t.Errorf("CheckShape(%d, %d) = %v, want ErrTableShape with %q", tc.dims, tc.cells, err, tc.wantMsg)
		}
	}
}

func TestCheckUniverse(t *testing.T) {
	p := sdc.DefaultParams()
	for _, tc := range []struct {
		n  int64
		ok bool
	}{{0, false}, {57, false}, {99, false}, {100, true}, {101, true}, {10_000_000, true}} {
		err := p.CheckUniverse(tc.n)
		if (err == nil) != tc.ok {
			t.Errorf("CheckUniverse(%d) = %v, ok want %v", tc.n, err, tc.ok)
		}
		if err != nil && !errors.Is(err, sdc.ErrSmallUniverse) {
			t.Errorf("CheckUniverse(%d) error %v is not ErrSmallUniverse", tc.n, err)
		}
	}
	if got, want := p.CheckUniverse(57).Error(), "universe of 57 persons after filtering; at least 100"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	if got, want := p.CheckUniverseUnit(57, "households").Error(), "universe of 57 households after filtering; at least 100"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}

func TestValidate(t *testing.T) {
	mod := func(f func(*sdc.Params)) sdc.Params { p := sdc.DefaultParams(); f(&p); return p }
	for _, tc := range []struct {
		name string
		p    sdc.Params
		ok   bool
	}{
		{"default", sdc.DefaultParams(), true},
		{"D=0", mod(func(p *sdc.Params) { p.MaxNoise = 0 }), false},
		{"D=1 V=1", mod(func(p *sdc.Params) { p.MaxNoise = 1 }), true},
		{"D=65", mod(func(p *sdc.Params) { p.MaxNoise = 65; p.SmallCell = 100 }), false},
		{"V=0", mod(func(p *sdc.Params) { p.Variance = 0 }), false},
		{"V<0", mod(func(p *sdc.Params) { p.Variance = -1 }), false},
		{"V=NaN", mod(func(p *sdc.Params) { p.Variance = math.NaN() }), false},
		{"V=Inf", mod(func(p *sdc.Params) { p.Variance = math.Inf(1) }), false},
		{"V=D²", mod(func(p *sdc.Params) { p.Variance = 4 }), true},
		{"V>D²", mod(func(p *sdc.Params) { p.Variance = 4.0001 }), false},
		{"js=0", mod(func(p *sdc.Params) { p.SmallCell = 0 }), false},
		{"js=D-1", mod(func(p *sdc.Params) { p.SmallCell = 1 }), false},
		{"js=D", mod(func(p *sdc.Params) { p.SmallCell = 2 }), true},
		{"dims=0", mod(func(p *sdc.Params) { p.MaxDims = 0 }), false},
		{"cells=0", mod(func(p *sdc.Params) { p.MaxCells = 0 }), false},
		{"universe=0", mod(func(p *sdc.Params) { p.MinUniverse = 0 }), false},
		{"universe=1", mod(func(p *sdc.Params) { p.MinUniverse = 1 }), true},
	} {
		err := tc.p.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, ok want %v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, sdc.ErrInvalidParams) {
			t.Errorf("%s: %v is not ErrInvalidParams", tc.name, err)
		}
		if _, err2 := sdc.NewPTable(tc.p); (err2 == nil) != tc.ok {
			t.Errorf("%s: NewPTable error %v, ok want %v", tc.name, err2, tc.ok)
		}
	}
}

func TestCanonical(t *testing.T) {
	want := "ckp/v1 D=2 V=1 js=10 dims=4 cells=50000 universe=100 modulus=4294967296"
	if got := sdc.DefaultParamsV1().Canonical(); got != want {
		t.Errorf("Canonical() = %q, want %q", got, want)
	}
	p := sdc.Params{MaxNoise: 3, Variance: 2.5, SmallCell: 5, MaxDims: 3, MaxCells: 1000, MinUniverse: 50}
	if got := p.Canonical(); got != "ckp/v1 D=3 V=2.5 js=5 dims=3 cells=1000 universe=50 modulus=4294967296" {
		t.Errorf("Canonical() = %q", got)
	}
}

func TestTableIsDeterministic(t *testing.T) {
	a, b := mustTable(t, sdc.DefaultParams()), mustTable(t, sdc.DefaultParams())
	for n := int64(0); n < 40; n++ {
		for _, k := range gridKeys(1024) {
			if a.Perturb(n, k) != b.Perturb(n, k) {
				t.Fatalf("two tables from the same params disagree at n=%d key=%d", n, k)
			}
		}
	}
}

func BenchmarkPerturb(b *testing.B) {
	pt := mustTable(b, sdc.DefaultParams())
	var sink int64
	k := uint32(0)
	for i := 0; b.Loop(); i++ {
		k += 0x9E3779B9
		sink += pt.Perturb(int64(i&63), k)
	}
	_ = sink
}

func TestParseCanonical(t *testing.T) {
	for _, p := range []sdc.Params{sdc.DefaultParamsV1(), {MaxNoise: 3, Variance: 2.25, SmallCell: 5, MaxDims: 3, MaxCells: 1000, MinUniverse: 50}} {
		got, err := sdc.ParseCanonical(p.Canonical())
		if err != nil || got != p {
			t.Errorf("sdc.ParseCanonical(%q) = %+v, %v", p.Canonical(), got, err)
		}
	}
	good := sdc.DefaultParamsV1().Canonical()
	for _, s := range []string{"", "ckp/v2 D=2", good + " ", strings.Replace(good, "D=2", "D=02", 1),
		strings.Replace(good, "modulus=4294967296", "modulus=65536", 1), strings.Replace(good, "D=2", "D=0", 1),
		strings.Replace(good, "V=1", "V=x", 1)} {
		if _, err := sdc.ParseCanonical(s); !errors.Is(err, sdc.ErrInvalidParams) {
			t.Errorf("sdc.ParseCanonical(%q) = %v, want sdc.ErrInvalidParams", s, err)
		}
	}
}
