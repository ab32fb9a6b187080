package dp

import (
	"fmt"
	"math/big"
)

// RhoGaussian returns ρ = Δ²/(2σ²), the zero-concentrated differential
// privacy (ρ-zCDP) of releasing q(x) + Y, with Y drawn independently per
// coordinate from N_Z(0, σ²), for an integer-valued query q whose L2
// sensitivity is Δ: ‖q(x) − q(x′)‖₂² ≤ sqSensitivity = Δ² for neighbouring
// inputs x, x′ (in the broker: with and without one household).
//
// This is Canonne–Kamath–Steinke, Theorem 4 (one coordinate: ½ε²-zCDP
// with ε = Δ/σ) and its multivariate form for independent coordinates
// (Section 2 of the paper, Theorem 14 in arXiv:2004.00010v5); ρ is the
// same as for the continuous Gaussian.
//
// The argument is Δ², not Δ, because for integer queries Δ² is an integer
// while Δ often is not: a household that changes k cells by at most c each
// has Δ² = k·c². The result is exact.
func RhoGaussian(sqSensitivity int64, sigma2 *big.Rat) (*big.Rat, error) {
	if sqSensitivity <= 0 {
		return nil, fmt.Errorf("%w: the squared L2 sensitivity must be at least 1; bound each household's contribution first", ErrInvalidAccounting)
	}
	if sigma2 == nil || sigma2.Sign() <= 0 {
		return nil, fmt.Errorf("%w: σ² must be a positive rational", ErrInvalidSigma2)
	}
	rho := new(big.Rat).SetInt64(sqSensitivity)
	rho.Quo(rho, sigma2)
	return rho.Quo(rho, big.NewRat(2, 1)), nil
}

// Sigma2ForRho returns σ² = Δ²/(2ρ), the smallest discrete Gaussian
// variance parameter for which [RhoGaussian] is at most rho with squared
// L2 sensitivity sqSensitivity. The result is exact; pass it to
// [NewGaussian] (which refuses it if it is absurdly large, i.e. ρ tiny).
func Sigma2ForRho(sqSensitivity int64, rho *big.Rat) (*big.Rat, error) {
	if sqSensitivity <= 0 {
		return nil, fmt.Errorf("%w: the squared L2 sensitivity must be at least 1; bound each household's contribution first", ErrInvalidAccounting)
	}
	if rho == nil || rho.Sign() <= 0 {
		return nil, fmt.Errorf("%w: ρ must be a positive rational; set the per-table budget", ErrInvalidAccounting)
	}
	s := new(big.Rat).SetInt64(sqSensitivity)
	s.Quo(s, rho)
	return s.Quo(s, big.NewRat(2, 1)), nil
}
