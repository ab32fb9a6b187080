// Package dp holds the exact samplers behind the broker's differentially
// private (zCDP) tables: Bernoulli(exp(−γ)), the discrete Laplace and the
// discrete Gaussian N_Z(0, σ²), after Canonne, Kamath and Steinke, "The
// Discrete Gaussian for Differential Privacy" (NeurIPS 2020,
// arXiv:2004.00010), Algorithms 1–3, and the zCDP accounting of the
// discrete Gaussian mechanism ([RhoGaussian], [Sigma2ForRho]).
//
// It is pure computation (standard library only, no I/O) so that a noisy
// table can be recomputed exactly from its seed.
//
// # Exactness, and why integers
//
// Every sampler here returns a draw from exactly the stated distribution,
// given uniform bits: the only primitive is a uniform integer in [0, n),
// obtained by rejection ([Uniform]), and every other decision is a
// comparison of integers. No floating-point number enters a sampling
// decision. This is not pedantry: Mironov ("On significance of the least
// significant bits for differential privacy", CCS 2012) showed that noise
// computed in floating point leaves holes and biases in its low-order bits
// from which the noiseless value can be read back, so a "Gaussian" built
// from float64 can lose all privacy while its accounting says otherwise.
// σ² is therefore a rational ([math/big.Rat]), and γ = n/d in
// [BernoulliExp] is a ratio of integers.
//
// The single deviation from the stated distributions is a truncation: a
// discrete Laplace or Gaussian draw whose magnitude does not fit in an
// int64 is rejected and drawn again. With σ² ≤ 2^80 (the largest accepted)
// such a draw needs a deviation of more than 2^22 σ, whose probability is
// below 2^(−2^40): it never happens and is stated only to be exact about
// what the code does.
//
// # Speed: an integer fast path
//
// The arithmetic of the algorithms is done in uint64 whenever the numbers
// fit, each product checked for overflow (math/bits); a value that does not
// fit is handled with math/big from that point on. Both paths consume the
// random bits identically (a uniform integer below n takes the same words
// whether n is a uint64 or a big.Int), so the fast path changes the speed,
// never a draw; the tests check this by forcing the big path. A
// [GaussianSampler] does the work that depends only on σ² once, so the
// noise of a 30,000-cell table takes milliseconds.
//
// # Randomness
//
// The samplers take their bits from a [Bits]. [NewStream] gives a
// deterministic one (ChaCha8) from a 32-byte seed, so that the same
// request can be answered with the same noise. The seed is a secret: with
// it, anyone can recompute the noise and subtract it. It must be uniformly
// random (for example an HMAC output under a sealed key), never logged,
// never put in an error, and never reused for a different release.
package dp

import "errors"

// Sentinel errors, checked with errors.Is.
var (
	// ErrInvalidSigma2 reports a discrete Gaussian variance parameter σ²
	// that is nil, not positive, or too large.
	ErrInvalidSigma2 = errors.New("dp: invalid noise variance σ²")
	// ErrInvalidAccounting reports a sensitivity or privacy parameter ρ
	// that is not positive.
	ErrInvalidAccounting = errors.New("dp: invalid zCDP accounting parameters")
)
