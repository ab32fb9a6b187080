package zcdp

import (
	"errors"
	"math"
	"testing"
)

func TestParseRho(t *testing.T) {
	for s, want := range map[string]Rho{"0.02": 20000, "1": RhoScale, "2.5": 2500000, "0.000001": 1, "100": MaxRho, "0.400000": 400000} {
		got, err := ParseRho(s)
		if err != nil || got != want {
			t.Errorf("ParseRho(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "0.0", "-1", "+1", "1e-2", ".5", "5.", "0.0000001", "100.000001", " 1", "1 ", "0x1", "NaN", "Inf", "1,5", "٣"} {
		if r, err := ParseRho(s); !errors.Is(err, ErrRho) {
			t.Errorf("ParseRho(%q) = %d, %v; want ErrRho", s, r, err)
		}
	}
	for _, r := range []Rho{1, 20000, 400000, RhoScale, 2500000, MaxRho} {
		if back, err := ParseRho(r.String()); err != nil || back != r {
			t.Errorf("%d → %q → %d, %v", r, r.String(), back, err)
		}
	}
}

// TestEpsilonCensus2020 checks the conversion against the figures of the
// US Census Bureau's certificates of disclosure avoidance for the 2020
// redistricting data (production run of 24 June 2021, δ = 10⁻¹⁰): persons
// ρ = 293764/114921, ε ≈ 17.14; housing units ρ = 11417641/152349649,
// ε ≈ 2.47. A conversion that is off (Bun–Steinke's gives 17.90 and 2.70)
// fails.
func TestEpsilonCensus2020(t *testing.T) {
	for _, c := range []struct {
		num, den int64
		want     float64
	}{{293764, 114921, 17.1436}, {11417641, 152349649, 2.4747}} {
		r := Rho(c.num * RhoScale / c.den)
		got := r.Epsilon(1e-10)
		if math.Abs(got-c.want) > 0.005 {
			t.Errorf("ρ = %s: ε = %.4f, want %.4f", r, got, c.want)
		}
	}
	// Never looser than Bun–Steinke.
	for _, r := range []Rho{1, 100, 20000, 400000, 2 * RhoScale, MaxRho} {
		rho := float64(r) / RhoScale
		if bs := rho + 2*math.Sqrt(rho*math.Log(1e10)); r.Epsilon(1e-10) > bs+1e-9 {
			t.Errorf("ρ = %s: ε = %f above Bun–Steinke's %f", r, r.Epsilon(1e-10), bs)
		}
	}
}
