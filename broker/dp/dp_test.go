package dp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker/testdeadline"
)

// gaussPMF returns the exact pmf of N_Z(0, σ²) (computed independently of
// the sampler, in float64) over |x| ≤ R with R = max(10σ, 10), the bound,
// and the exact mean square and fourth moment.
func gaussPMF(sigma2 float64) (p func(int64) float64, r int64, variance, m4 float64) {
	r = int64(math.Ceil(max(10*math.Sqrt(sigma2), 10)))
	w := make([]float64, 2*r+1)
	var z float64
	for x := -r; x <= r; x++ {
		w[x+r] = math.Exp(-float64(x*x) / (2 * sigma2))
		z += w[x+r]
	}
	for x := -r; x <= r; x++ {
		f := float64(x * x)
		variance += f * w[x+r] / z
		m4 += f * f * w[x+r] / z
	}
	return func(x int64) float64 {
		if x < -r || x > r {
			return 0
		}
		return w[x+r] / z
	}, r, variance, m4
}

// drawCounts draws n values and counts them. A broken sampler can loop
// forever instead of returning (a Bernoulli that is never true); the draws
// run aside, and the test fails with a message before its deadline rather
// than the binary being killed.
func drawCounts(t *testing.T, n int, draw func() int64) map[int64]int {
	t.Helper()
	done := make(chan map[int64]int, 1)
	go func() {
		counts := map[int64]int{}
		for range n {
			counts[draw()]++
		}
		done <- counts
	}()
	select {
	case counts := <-done:
		return counts
	case <-time.After(time.Until(testdeadline.Of(t))):
		t.Fatalf("%d draws did not finish before the test's deadline: the sampler does not terminate", n)
		return nil
	}
}

func ratFloat(r *big.Rat) float64 {
	f, _ := r.Float64()
	return f
}

// TestGaussianDistribution is the attack on a broken sampler: any error in
// the proposal, the acceptance probability or the Bernoulli(exp(−γ))
// primitive shifts the empirical pmf away from exp(−x²/(2σ²))/Z, which the
// chi-square test sees at these sample sizes.
func TestGaussianDistribution(t *testing.T) {
	cases := []struct {
		name   string
		sigma2 *big.Rat
		n      int
		big    bool // force the big path
	}{
		{"sigma2=100", big.NewRat(100, 1), 200_000, false},
		{"sigma2=12345/7", big.NewRat(12345, 7), 200_000, false},
		{"sigma2=5/2", big.NewRat(5, 2), 200_000, false},
		{"sigma2=1/3", big.NewRat(1, 3), 200_000, false},
		// Fast constants, but (|y|·q·t − p)² overflows a uint64 for
		// |y| ≳ 60 and 2·p·q·t²·k for k ≥ 2: draws mix both paths.
		{"sigma2=(2^31+11)/(2^20+7)", new(big.Rat).SetFrac(big.NewInt(1<<31+11), big.NewInt(1<<20+7)), 200_000, false},
		// Numerator and denominator beyond a uint64: big path only.
		{"sigma2=(10^30+1)/10^28", bigFrac("1000000000000000000000000000001", "10000000000000000000000000000"), 200_000, false},
		{"sigma2=100 big path", big.NewRat(100, 1), 200_000, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := NewGaussian(c.sigma2)
			if err != nil {
				t.Fatal(err)
			}
			g.forceBigForTest = c.big
			b := NewStream(testSeed("gaussian " + c.name))
			counts := drawCounts(t, c.n, func() int64 { return g.Draw(b) })
			p, r, _, _ := gaussPMF(ratFloat(c.sigma2))
			chiSquareFit(t, c.name, counts, c.n, -r, r, p)
		})
	}
}

// TestGaussianMomentsAndTails draws 10^6 values for σ² = 100 and checks
// the mean, the variance (the exact one of the discrete Gaussian, which is
// slightly below σ²) and the tails beyond 2σ, 3σ and 4σ, each within 5
// standard errors. A sampler with a slightly wrong σ² (say 105 for 100),
// or with light or heavy tails, fails here.
func TestGaussianMomentsAndTails(t *testing.T) {
	const n = 1_000_000
	sigma2 := big.NewRat(100, 1)
	g, err := NewGaussian(sigma2)
	if err != nil {
		t.Fatal(err)
	}
	p, r, variance, m4 := gaussPMF(100)
	b := NewStream(testSeed("moments"))
	var sum, sumSq float64
	var beyond [3]int
	for range n {
		x := g.Draw(b)
		sum += float64(x)
		sumSq += float64(x * x)
		for k := range beyond {
			if abs64(x) > int64(10*(k+2)) {
				beyond[k]++
			}
		}
	}
	mean := sum / n
	if se := math.Sqrt(variance / n); math.Abs(mean) > 5*se {
		t.Errorf("mean %.4f, want 0 within %.4f", mean, 5*se)
	}
	sampleVar := sumSq/n - mean*mean
	if se := math.Sqrt((m4 - variance*variance) / n); math.Abs(sampleVar-variance) > 5*se {
		t.Errorf("variance %.3f, want %.3f within %.3f", sampleVar, variance, 5*se)
	}
	t.Logf("mean %.4f, variance %.3f (exact %.6f, σ² = 100)", mean, sampleVar, variance)
	for k := range beyond {
		m := int64(10 * (k + 2))
		var tail float64
		for x := m + 1; x <= r; x++ {
			tail += 2 * p(x)
		}
		zCheck(t, fmt.Sprintf("P(|X| > %d)", m), beyond[k], n, tail)
	}
}

// TestGaussianVarianceBelowSigma2 checks the reference itself: the
// variance of N_Z(0, σ²) is below σ², visibly so for small σ² (for σ² =
// 100 the difference is far below float64 precision).
func TestGaussianVarianceBelowSigma2(t *testing.T) {
	for _, s2 := range []float64{1.0 / 3, 1.0 / 2, 1} {
		_, _, v, _ := gaussPMF(s2)
		if !(v < s2) {
			t.Errorf("σ² = %v: discrete Gaussian variance %v, want below σ²", s2, v)
		}
	}
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func bigFrac(num, den string) *big.Rat {
	n, ok1 := new(big.Int).SetString(num, 10)
	d, ok2 := new(big.Int).SetString(den, 10)
	if !ok1 || !ok2 {
		panic("bad test fraction")
	}
	return new(big.Rat).SetFrac(n, d)
}

// TestFastAndBigPathsAgree forces the big path on one sampler and compares
// it, draw by draw and bit by bit, with the fast path on the same seed:
// same values, and the streams end at the same position (the next word
// agrees). A fast path that computed γ differently, or consumed bits
// differently, fails here even if its distribution were right.
func TestFastAndBigPathsAgree(t *testing.T) {
	for _, s2 := range []*big.Rat{
		big.NewRat(100, 1), big.NewRat(12345, 7), big.NewRat(1, 3), big.NewRat(5, 2),
		new(big.Rat).SetFrac(big.NewInt(1<<31+11), big.NewInt(1<<20+7)),
	} {
		fast, err := NewGaussian(s2)
		if err != nil {
			t.Fatal(err)
		}
		if !fast.fast {
			t.Fatalf("σ² = %v: the fast path should apply", s2)
		}
		slow, _ := NewGaussian(s2)
		slow.forceBigForTest = true
		seed := testSeed("agree " + s2.String())
		bf, bs := NewStream(seed), NewStream(seed)
		overflowed := 0
		for i := range 20_000 {
			x, y := fast.Draw(bf), slow.Draw(bs)
			if x != y {
				t.Fatalf("σ² = %v, draw %d: fast path %d, big path %d", s2, i, x, y)
			}
			if _, ok := fast.fastNum(uint64(abs64(x))); !ok {
				overflowed++
			}
		}
		if bf.Uint64() != bs.Uint64() {
			t.Fatalf("σ² = %v: the paths consumed different numbers of bits", s2)
		}
		t.Logf("σ² = %v: 20000 draws agree, %d accepted through the big fallback", s2, overflowed)
		if s2.Denom().Int64() == 1<<20+7 && overflowed == 0 {
			t.Errorf("σ² = %v: expected some draws through the big fallback, the test no longer covers it", s2)
		}
	}

	t.Run("Laplace", func(t *testing.T) {
		for _, scale := range []uint64{1, 3, 11, 1<<40 + 3, math.MaxUint64} {
			seed := testSeed("agree laplace " + strconv.FormatUint(scale, 10))
			bf, bs := NewStream(seed), NewStream(seed)
			tb := new(big.Int).SetUint64(scale)
			for i := range 5_000 {
				if x, y := laplace(bf, scale), laplaceBig(bs, tb); x != y {
					t.Fatalf("t = %d, draw %d: fast %d, big %d", scale, i, x, y)
				}
			}
			if bf.Uint64() != bs.Uint64() {
				t.Fatalf("t = %d: the paths consumed different numbers of bits", scale)
			}
		}
	})

	t.Run("BernoulliExp", func(t *testing.T) {
		seed := testSeed("agree bernoulli")
		bf, bs, pick := NewStream(seed), NewStream(seed), NewStream(testSeed("pick"))
		for i := range 50_000 {
			// n and d of every size, γ from 0 to far above 1.
			d := pick.Uint64()>>(pick.Uint64()%64) | 1
			n := pick.Uint64() >> (pick.Uint64() % 64)
			x := bernExp(bf, n, d)
			y := bernExpBig(bs, new(big.Int).SetUint64(n), new(big.Int).SetUint64(d))
			if x != y {
				t.Fatalf("case %d (γ = %d/%d): fast %v, big %v", i, n, d, x, y)
			}
		}
		if bf.Uint64() != bs.Uint64() {
			t.Fatal("the paths consumed different numbers of bits")
		}
	})
}

// TestBernoulliExp checks the frequency of true against exp(−γ) for γ = 0
// (always true), fractions, γ = 1, γ > 1 (the ⌊γ⌋ reduction), and d close
// to 2^64 (d·k overflows from k = 2, so the big fallback is taken).
func TestBernoulliExp(t *testing.T) {
	const trials = 200_000
	for _, c := range []struct{ n, d uint64 }{
		{0, 1}, {0, 12345}, {1, 3}, {1, 1}, {7, 7}, {5, 2}, {7, 1}, {123456789, 100000000},
		{math.MaxUint64, math.MaxUint64}, {1 << 63, math.MaxUint64}, {3 * (1 << 62), 1 << 62},
	} {
		name := fmt.Sprintf("γ=%d/%d", c.n, c.d)
		b := NewStream(testSeed("bernoulli " + name))
		count := 0
		for range trials {
			if BernoulliExp(b, c.n, c.d) {
				count++
			}
		}
		gamma, _ := new(big.Rat).SetFrac(new(big.Int).SetUint64(c.n), new(big.Int).SetUint64(c.d)).Float64()
		p := math.Exp(-gamma)
		if c.n == 0 {
			if count != trials {
				t.Errorf("%s: %d of %d true, want all (exp(0) = 1)", name, count, trials)
			}
			continue
		}
		zCheck(t, name, count, trials, p)
	}
	// γ = 1000: exp(−1000) ≈ 10^−434, never true.
	b := NewStream(testSeed("bernoulli huge"))
	for range trials {
		if BernoulliExp(b, 1000, 1) {
			t.Fatal("Bernoulli(exp(−1000)) came out true")
		}
	}
}

// TestLaplaceDistribution: the empirical pmf of the discrete Laplace
// matches exp(−|x|/t)·(1−e^(−1/t))/(1+e^(−1/t)). Dropping the rejection of
// "−0" (which would double P(0)) or any error in U or V fails here.
func TestLaplaceDistribution(t *testing.T) {
	const n = 200_000
	for _, scale := range []uint64{1, 3, 10} {
		name := fmt.Sprintf("t=%d", scale)
		b := NewStream(testSeed("laplace " + name))
		counts := drawCounts(t, n, func() int64 { return Laplace(b, scale) })
		q := math.Exp(-1 / float64(scale))
		norm := (1 - q) / (1 + q)
		r := int64(60 * scale) // mass beyond: below e^−60
		chiSquareFit(t, name, counts, n, -r, r, func(x int64) float64 {
			return norm * math.Pow(q, float64(abs64(x)))
		})
	}
}

// TestUniform checks that Uniform and its big counterpart are uniform on
// [0, n) with no modulo bias. For n = 3·2^62 (and 3·2^126), reducing a
// 64-bit (128-bit) word modulo n would put half of the draws in the lowest
// third; rejection keeps each third at 1/3, and the chi-square test tells
// the two apart at once.
func TestUniform(t *testing.T) {
	const n = 200_000
	uniformFit := func(name string, k int64, draw func() int64) {
		t.Helper()
		counts := map[int64]int{}
		for range n {
			x := draw()
			if x < 0 || x >= k {
				t.Fatalf("%s: drew %d outside [0, %d)", name, x, k)
			}
			counts[x]++
		}
		chiSquareFit(t, name, counts, n, 0, k-1, func(int64) float64 { return 1 / float64(k) })
	}
	for _, k := range []uint64{2, 3, 5, 7, 10, 100} {
		b := NewStream(testSeed("uniform " + strconv.FormatUint(k, 10)))
		uniformFit(fmt.Sprintf("Uniform(%d)", k), int64(k), func() int64 { return int64(Uniform(b, k)) })
		kb := new(big.Int).SetUint64(k)
		uniformFit(fmt.Sprintf("uniformBig(%d)", k), int64(k), func() int64 { return uniformBig(b, kb).Int64() })
	}
	b := NewStream(testSeed("uniform thirds"))
	uniformFit("Uniform(3·2^62) by thirds", 3, func() int64 { return int64(Uniform(b, 3<<62) >> 62) })
	n126 := new(big.Int).Lsh(big.NewInt(3), 126)
	uniformFit("uniformBig(3·2^126) by thirds", 3, func() int64 {
		return new(big.Int).Rsh(uniformBig(b, n126), 126).Int64()
	})
	// The two ends of the big range must both be reachable: the first
	// word gives the low bits, the last the high ones.
	var lowOdd, high bool
	for range 1000 {
		x := uniformBig(b, n126)
		lowOdd = lowOdd || x.Bit(0) == 1
		high = high || x.Bit(126) == 1
	}
	if !lowOdd || !high {
		t.Errorf("uniformBig(3·2^126) never set bit 0 (%v) or bit 126 (%v)", lowOdd, high)
	}
	if Uniform(b, 1) != 0 || uniformBig(b, bigOne).Sign() != 0 {
		t.Error("a uniform integer in [0, 1) must be 0")
	}
}

// TestDeterminism: the same seed gives the same noise (a repeated request
// is answered with the same bytes); a seed differing in one bit gives
// different noise.
func TestDeterminism(t *testing.T) {
	g, err := NewGaussian(big.NewRat(12345, 7))
	if err != nil {
		t.Fatal(err)
	}
	draws := func(seed [32]byte) []int64 {
		s := NewStream(seed)
		out := make([]int64, 1000)
		for i := range out {
			out[i] = g.Draw(s)
		}
		return out
	}
	seed := testSeed("determinism")
	a, b := draws(seed), draws(seed)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, draw %d: %d then %d", i, a[i], b[i])
		}
	}
	for bit := range 256 {
		other := seed
		other[bit/8] ^= 1 << (bit % 8)
		c := draws(other)
		same := 0
		for i := range a {
			if a[i] == c[i] {
				same++
			}
		}
		// Independent draws with σ ≈ 42 coincide about 1% of the time.
		if same > 50 {
			t.Fatalf("seeds differing in bit %d give %d equal draws of 1000", bit, same)
		}
	}
}

// TestStreamFormattingHidesSeed is the attack of a log line that formats a
// Stream: whatever the verb, the output must not contain the seed. (If
// Stream held its ChaCha8 by value, %v would print the seed words.)
func TestStreamFormattingHidesSeed(t *testing.T) {
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(0x11 * (i%15 + 1))
	}
	s := NewStream(seed)
	out := fmt.Sprintf("%v %+v %#v %v %+v %#v", s, s, s, *s, *s, *s)
	for i := 0; i < 32; i += 8 {
		w := binary.LittleEndian.Uint64(seed[i:])
		for _, form := range []string{strconv.FormatUint(w, 10), strconv.FormatUint(w, 16), fmt.Sprintf("%x", seed[i:i+8])} {
			if strings.Contains(out, form) {
				t.Fatalf("formatting a Stream reveals seed word %d", i/8)
			}
		}
	}
}

// TestInvalidSigma2: a σ² that is nil, not positive or out of range is
// refused with ErrInvalidSigma2, and the error carries no value.
func TestInvalidSigma2(t *testing.T) {
	huge := new(big.Rat).SetInt(new(big.Int).Lsh(bigOne, maxSigma2Log2))
	longNum := new(big.Rat).SetFrac(new(big.Int).Lsh(bigOne, 300), new(big.Int).Add(new(big.Int).Lsh(bigOne, 299), bigOne))
	for name, s2 := range map[string]*big.Rat{
		"nil":         nil,
		"zero":        new(big.Rat),
		"negative":    big.NewRat(-1, 1),
		"negative/3":  big.NewRat(-1, 3),
		"2^80":        huge,
		"300-bit num": longNum,
	} {
		if _, err := NewGaussian(s2); !errors.Is(err, ErrInvalidSigma2) {
			t.Errorf("%s: NewGaussian error %v, want ErrInvalidSigma2", name, err)
		}
		if _, err := Gaussian(NewStream(testSeed("invalid")), s2); !errors.Is(err, ErrInvalidSigma2) {
			t.Errorf("%s: Gaussian error %v, want ErrInvalidSigma2", name, err)
		}
	}
	// Just inside the limits: accepted.
	for _, s2 := range []*big.Rat{new(big.Rat).Sub(huge, big.NewRat(1, 2)), big.NewRat(1, 1<<62)} {
		if _, err := NewGaussian(s2); err != nil {
			t.Errorf("σ² = %v refused: %v", s2, err)
		}
	}
	_, err := NewGaussian(big.NewRat(-12345, 7))
	if strings.Contains(err.Error(), "12345") {
		t.Errorf("the error repeats the value: %v", err)
	}
}

// TestTinyAndLargeSigma2 draws at the ends of the accepted range: a tiny σ²
// gives 0 essentially always; σ² just below 2^80 gives draws of the
// order of σ = 2^40.
func TestTinyAndLargeSigma2(t *testing.T) {
	b := NewStream(testSeed("ends"))
	tiny, err := NewGaussian(big.NewRat(1, 1<<62))
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		if x := tiny.Draw(b); x != 0 {
			t.Fatalf("σ² = 2^-62 drew %d", x)
		}
	}
	large, err := NewGaussian(new(big.Rat).SetInt(new(big.Int).Sub(new(big.Int).Lsh(bigOne, 80), bigOne)))
	if err != nil {
		t.Fatal(err)
	}
	var sumSq float64
	const n = 20_000
	for range n {
		x := float64(large.Draw(b))
		sumSq += x * x
	}
	if ratio := sumSq / n / math.Ldexp(1, 80); math.Abs(ratio-1) > 0.1 {
		t.Errorf("σ² ≈ 2^80: mean square / σ² = %.3f, want 1", ratio)
	}
}

// TestZCDP checks ρ = Δ²/(2σ²) and its inverse exactly, on values
// computed here from the formula, and refuses meaningless parameters.
func TestZCDP(t *testing.T) {
	for _, c := range []struct {
		sq     int64
		sigma2 *big.Rat
	}{{1, big.NewRat(100, 1)}, {4, big.NewRat(12345, 7)}, {3, big.NewRat(1, 3)}} {
		rho, err := RhoGaussian(c.sq, c.sigma2)
		if err != nil {
			t.Fatal(err)
		}
		// ρ·2σ² = Δ².
		back := new(big.Rat).Mul(rho, new(big.Rat).Mul(big.NewRat(2, 1), c.sigma2))
		if back.Cmp(big.NewRat(c.sq, 1)) != 0 {
			t.Errorf("Δ² = %d, σ² = %v: ρ = %v, but 2σ²ρ = %v", c.sq, c.sigma2, rho, back)
		}
		s2, err := Sigma2ForRho(c.sq, rho)
		if err != nil {
			t.Fatal(err)
		}
		if s2.Cmp(c.sigma2) != 0 {
			t.Errorf("Sigma2ForRho(%d, %v) = %v, want %v", c.sq, rho, s2, c.sigma2)
		}
	}
	if rho, _ := RhoGaussian(1, big.NewRat(100, 1)); rho.Cmp(big.NewRat(1, 200)) != 0 {
		t.Errorf("Δ = 1, σ² = 100: ρ = %v, want 1/200", rho)
	}
	if _, err := RhoGaussian(0, big.NewRat(1, 1)); !errors.Is(err, ErrInvalidAccounting) {
		t.Errorf("Δ² = 0: %v", err)
	}
	if _, err := RhoGaussian(1, nil); !errors.Is(err, ErrInvalidSigma2) {
		t.Errorf("σ² nil: %v", err)
	}
	if _, err := RhoGaussian(1, big.NewRat(0, 1)); !errors.Is(err, ErrInvalidSigma2) {
		t.Errorf("σ² = 0: %v", err)
	}
	if _, err := Sigma2ForRho(1, big.NewRat(-1, 2)); !errors.Is(err, ErrInvalidAccounting) {
		t.Errorf("ρ < 0: %v", err)
	}
	if _, err := Sigma2ForRho(-1, big.NewRat(1, 2)); !errors.Is(err, ErrInvalidAccounting) {
		t.Errorf("Δ² < 0: %v", err)
	}
	// Results are fresh values: changing one does not change the input.
	s2 := big.NewRat(100, 1)
	rho, _ := RhoGaussian(1, s2)
	rho.SetInt64(7)
	if s2.Cmp(big.NewRat(100, 1)) != 0 {
		t.Error("RhoGaussian's result aliases σ²")
	}
}

// TestPanics: the exported primitives refuse an empty range.
func TestPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"Uniform(0)":        func() { Uniform(NewStream(testSeed("p")), 0) },
		"BernoulliExp(d=0)": func() { BernoulliExp(NewStream(testSeed("p")), 1, 0) },
		"Laplace(t=0)":      func() { Laplace(NewStream(testSeed("p")), 0) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			f()
		}()
	}
}
