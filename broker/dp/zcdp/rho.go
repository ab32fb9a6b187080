// Package zcdp holds the privacy-loss amounts of zero-concentrated
// differential privacy as the vault keeps them — ρ in millionths, exact,
// added up by the ledger — and their (ε, δ) reading for people. It is
// apart from package dp, whose samplers must not touch floating point:
// the conversion to ε here does, and never reaches a draw.
package zcdp

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// RhoScale is how finely a [Rho] is kept: in millionths. Every budget,
// share and per-table ρ is a whole number of millionths, so ledgers add
// them exactly.
const RhoScale = 1_000_000

// Rho is a zCDP privacy-loss parameter ρ in millionths (RhoScale). It is
// not a secret: budgets are public, and the README states them.
type Rho int64

// MaxRho bounds any ρ a request, share or cap may name: 100 is a privacy
// loss no statistical release should reach, and keeps sums of ρ far from
// overflow.
const MaxRho Rho = 100 * RhoScale

// ErrRho is what ParseRho returns for a malformed or out-of-range ρ.
var ErrRho = errors.New("invalid ρ")

// ParseRho reads a decimal ρ such as "0.02" or "1": digits, at most one
// point and six decimals, positive, at most MaxRho. No exponent, sign or
// spaces: a ρ is money, written plainly.
func ParseRho(s string) (Rho, error) {
	bad := func(why string) (Rho, error) {
		return 0, fmt.Errorf("%w: %q %s (write it as a decimal such as 0.02, at most six decimals, above 0 and at most %s)", ErrRho, clipRho(s), why, MaxRho)
	}
	whole, frac, hasPoint := strings.Cut(s, ".")
	if whole == "" || (hasPoint && frac == "") || len(frac) > 6 || len(whole) > 4 {
		return bad("is not a plain decimal")
	}
	for _, part := range []string{whole, frac} {
		for _, r := range part {
			if r < '0' || r > '9' {
				return bad("is not a plain decimal")
			}
		}
	}
	w, _ := strconv.ParseInt(whole, 10, 64)
	f := int64(0)
	if frac != "" {
		f, _ = strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
	}
	r := Rho(w*RhoScale + f)
	switch {
	case r <= 0:
		return bad("is not above 0")
	case r > MaxRho:
		return bad("is above the largest allowed")
	}
	return r, nil
}

func clipRho(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

// String writes ρ as ParseRho reads it, without trailing zeros: "0.02".
func (r Rho) String() string {
	sign := ""
	if r < 0 {
		sign, r = "-", -r
	}
	s := fmt.Sprintf("%s%d.%06d", sign, int64(r)/RhoScale, int64(r)%RhoScale)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// Rat is ρ as an exact rational, for Sigma2ForRho.
func (r Rho) Rat() *big.Rat { return big.NewRat(int64(r), RhoScale) }

// Epsilon converts ρ-zCDP to (ε, δ)-differential privacy with the
// conversion of Canonne, Kamath and Steinke (Corollary 13): ρ-zCDP
// implies (ε, δ)-DP for
//
//	δ = inf over α > 1 of exp((α−1)(αρ−ε)) / (α−1) · (1−1/α)^α,
//
// so ε(δ) = min over α > 1 of αρ + (ln(1/δ) + α·ln(1−1/α) − ln(α−1)) / (α−1).
// It is tighter than Bun and Steinke's ε = ρ + 2√(ρ·ln(1/δ)), and the
// conversion the US Census Bureau states its 2020 figures with. It is
// for people to read: floating point is fine here, it never touches a
// draw.
func (r Rho) Epsilon(delta float64) float64 {
	rho := float64(r) / RhoScale
	if rho <= 0 || delta <= 0 || delta >= 1 {
		return 0
	}
	eps := func(a float64) float64 {
		return a*rho + (math.Log(1/delta)+a*math.Log1p(-1/a)-math.Log(a-1))/(a-1)
	}
	// ε(α) is convex in α on (1, ∞) with its minimum near
	// 1 + √(ln(1/δ)/ρ): a golden-section search over log(α−1).
	lo, hi := math.Log(1e-9), math.Log(1e9)
	const g = 0.6180339887498949
	x1, x2 := hi-g*(hi-lo), lo+g*(hi-lo)
	f := func(x float64) float64 { return eps(1 + math.Exp(x)) }
	f1, f2 := f(x1), f(x2)
	for range 200 {
		if f1 < f2 {
			hi, x2, f2 = x2, x1, f1
			x1 = hi - g*(hi-lo)
			f1 = f(x1)
		} else {
			lo, x1, f1 = x1, x2, f2
			x2 = lo + g*(hi-lo)
			f2 = f(x2)
		}
	}
	return min(f1, f2, rho+2*math.Sqrt(rho*math.Log(1/delta)))
}

// Delta is the δ the vault states its ε at: 10⁻¹⁰, the US Census
// Bureau's choice for its 2020 releases, far below one over the number
// of households of any census.
const Delta = 1e-10
