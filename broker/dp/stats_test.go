package dp

import (
	"math"
	"testing"
)

// Statistical helpers for the tests. Floating point is fine here: it
// computes the reference the exact samplers are checked against.

// alpha is the significance level of every goodness-of-fit test. The seeds
// are fixed, so each test is deterministic: a correct sampler passes it
// (checked once), and a broken one fails it with overwhelming probability.
const alpha = 1e-3

// testSeed returns a fixed seed that differs per label, so that the tests
// do not share random bits.
func testSeed(label string) [32]byte {
	var s [32]byte
	copy(s[:], label)
	s[31] = 0xA5
	return s
}

// chiSquareFit checks the counts of draws (keyed by value) against the
// pmf p(x), over the integers from lo to hi, whose total mass must be
// essentially 1. Values with an expected count below 5 at either end are
// pooled into two tail bins, as the chi-square approximation requires.
// It fails t when the p-value is below alpha.
func chiSquareFit(t *testing.T, name string, counts map[int64]int, n int, lo, hi int64, p func(x int64) float64) {
	t.Helper()
	type bin struct{ obs, exp float64 }
	var bins []bin
	// The central run of values with expected count ≥ 5.
	first, last := int64(math.MaxInt64), int64(math.MinInt64)
	for x := lo; x <= hi; x++ {
		if float64(n)*p(x) >= 5 {
			first = min(first, x)
			last = max(last, x)
		}
	}
	if first > last {
		t.Fatalf("%s: no bin has an expected count of 5; draw more", name)
	}
	var lowTail, highTail bin
	seen := 0
	for x, c := range counts {
		seen += c
		switch {
		case x < first:
			lowTail.obs += float64(c)
		case x > last:
			highTail.obs += float64(c)
		}
		if x < lo || x > hi {
			t.Errorf("%s: drew %d, outside [%d, %d] where the mass is essentially all", name, x, lo, hi)
		}
	}
	if seen != n {
		t.Fatalf("%s: %d draws counted, want %d", name, seen, n)
	}
	for x := lo; x <= hi; x++ {
		e := float64(n) * p(x)
		switch {
		case x < first:
			lowTail.exp += e
		case x > last:
			highTail.exp += e
		default:
			bins = append(bins, bin{float64(counts[x]), e})
		}
	}
	// A tail too thin for its own bin joins its neighbour.
	for _, tail := range []struct {
		b   bin
		end int
	}{{lowTail, 0}, {highTail, -1}} {
		if tail.b.exp == 0 && tail.b.obs == 0 {
			continue
		}
		if tail.b.exp >= 5 {
			bins = append(bins, tail.b)
			continue
		}
		i := 0
		if tail.end < 0 {
			i = len(bins) - 1
		}
		bins[i].obs += tail.b.obs
		bins[i].exp += tail.b.exp
	}
	var stat float64
	for _, b := range bins {
		d := b.obs - b.exp
		stat += d * d / b.exp
	}
	dof := float64(len(bins) - 1)
	pv := gammaQ(dof/2, stat/2)
	t.Logf("%s: chi-square %.1f on %.0f degrees of freedom, p = %.3g", name, stat, dof, pv)
	if pv < alpha {
		t.Errorf("%s: the draws do not follow the distribution: chi-square %.1f on %.0f degrees of freedom, p = %.3g < %g", name, stat, dof, pv, alpha)
	}
}

// zCheck fails t when count successes out of n are more than 4.5 standard
// deviations from n·p (two-sided probability about 7e-6 for a correct
// sampler; the seeds are fixed).
func zCheck(t *testing.T, name string, count, n int, p float64) {
	t.Helper()
	mean := float64(n) * p
	sd := math.Sqrt(float64(n) * p * (1 - p))
	z := (float64(count) - mean) / sd
	t.Logf("%s: %d of %d, expected %.1f, z = %.2f", name, count, n, mean, z)
	if math.Abs(z) > 4.5 {
		t.Errorf("%s: %d of %d, expected %.1f (z = %.2f)", name, count, n, mean, z)
	}
}

// gammaQ is the regularized upper incomplete gamma function Q(a, x); the
// p-value of a chi-square statistic s with k degrees of freedom is
// Q(k/2, s/2). Series for x < a+1, continued fraction otherwise
// (Numerical Recipes, §6.2).
func gammaQ(a, x float64) float64 {
	if x <= 0 {
		return 1
	}
	lg, _ := math.Lgamma(a)
	if x < a+1 {
		sum, del, ap := 1/a, 1/a, a
		for range 10000 {
			ap++
			del *= x / ap
			sum += del
			if math.Abs(del) < math.Abs(sum)*1e-15 {
				break
			}
		}
		return 1 - sum*math.Exp(-x+a*math.Log(x)-lg)
	}
	const tiny = 1e-300
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < 10000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-15 {
			break
		}
	}
	return math.Exp(-x+a*math.Log(x)-lg) * h
}

func TestGammaQ(t *testing.T) {
	// Known chi-square upper quantiles: P(χ²_k > q) = p.
	for _, c := range []struct{ k, q, p float64 }{
		{1, 3.841458820694124, 0.05},
		{2, 13.815510557964274, 0.001},
		{10, 18.307038053275146, 0.05},
		{100, 149.44925277903865, 0.001},
	} {
		if got := gammaQ(c.k/2, c.q/2); math.Abs(got-c.p) > 1e-9 {
			t.Errorf("Q(%v/2, %v/2) = %v, want %v", c.k, c.q, got, c.p)
		}
	}
}
