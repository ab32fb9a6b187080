package dp

import (
	"fmt"
	"math/big"
	"math/bits"
)

// Limits on σ². The upper bound keeps t = ⌊σ⌋+1 within a uint64 and every
// draw, with overwhelming probability, within an int64 (see the package
// doc); the bound on the numerator and denominator keeps the big-path
// arithmetic of one draw small whatever the caller passes.
const (
	maxSigma2Log2 = 80
	maxSigma2Bits = 256
)

var maxSigma2 = new(big.Int).Lsh(bigOne, maxSigma2Log2)

// GaussianSampler draws from the discrete Gaussian N_Z(0, σ²) for one
// fixed σ²: P(x) ∝ exp(−x²/(2σ²)) for every integer x. It holds what
// depends only on σ², so drawing many values (a table's cells) costs only
// the draws. It is immutable and safe for concurrent use; the [Bits]
// passed to Draw is not.
type GaussianSampler struct {
	// σ² = p/q in lowest terms.
	p, q *big.Int
	// t = ⌊σ⌋ + 1, the scale of the discrete Laplace proposals.
	t    uint64
	tBig *big.Int
	// A proposal y is accepted with probability exp(−γ),
	// γ = (|y| − σ²/t)² / (2σ²) = (|y|·q·t − p)² / (2·p·q·t²).
	qt, den *big.Int
	// fast reports that p, q·t and 2·p·q·t² fit in a uint64; then pU, qtU
	// and denU hold them and a draw is done in uint64 arithmetic as far as
	// its own numbers fit.
	fast            bool
	pU, qtU, denU   uint64
	forceBigForTest bool
}

// NewGaussian returns a sampler of N_Z(0, σ²). σ² must be positive, at
// most 2^80, with numerator and denominator of at most 256 bits; the
// sampler keeps its own copy.
func NewGaussian(sigma2 *big.Rat) (*GaussianSampler, error) {
	if sigma2 == nil || sigma2.Sign() <= 0 {
		return nil, fmt.Errorf("%w: σ² must be a positive rational; derive it from the privacy budget with Sigma2ForRho", ErrInvalidSigma2)
	}
	p := new(big.Int).Set(sigma2.Num())
	q := new(big.Int).Set(sigma2.Denom())
	if p.BitLen() > maxSigma2Bits || q.BitLen() > maxSigma2Bits {
		return nil, fmt.Errorf("%w: σ²'s numerator and denominator must have at most %d bits; round σ² to a simpler fraction", ErrInvalidSigma2, maxSigma2Bits)
	}
	floor := new(big.Int).Quo(p, q)
	if floor.Cmp(maxSigma2) >= 0 {
		return nil, fmt.Errorf("%w: σ² must be below 2^%d; a larger σ² would drown any count, so check the privacy budget it came from", ErrInvalidSigma2, maxSigma2Log2)
	}
	// ⌊σ⌋ = ⌊√⌊σ²⌋⌋, since m ≤ σ ⇔ m² ≤ σ² ⇔ m² ≤ ⌊σ²⌋ for an integer m.
	tBig := new(big.Int).Sqrt(floor)
	tBig.Add(tBig, bigOne)
	g := &GaussianSampler{p: p, q: q, t: tBig.Uint64(), tBig: tBig}
	g.qt = new(big.Int).Mul(q, tBig)
	g.den = new(big.Int).Mul(g.qt, tBig)
	g.den.Mul(g.den, p)
	g.den.Lsh(g.den, 1)
	if p.IsUint64() && g.qt.IsUint64() && g.den.IsUint64() {
		g.fast = true
		g.pU, g.qtU, g.denU = p.Uint64(), g.qt.Uint64(), g.den.Uint64()
	}
	return g, nil
}

// Gaussian returns one draw from N_Z(0, σ²). To draw many values for the
// same σ², use [NewGaussian] once and [GaussianSampler.Draw].
func Gaussian(b Bits, sigma2 *big.Rat) (int64, error) {
	g, err := NewGaussian(sigma2)
	if err != nil {
		return 0, err
	}
	return g.Draw(b), nil
}

// Draw returns one draw from N_Z(0, σ²) (Canonne–Kamath–Steinke,
// Algorithm 3): propose y from the discrete Laplace with scale t = ⌊σ⌋+1
// and accept it with probability exp(−(|y| − σ²/t)²/(2σ²)). The expected
// number of proposals is a small constant: about 1.3 for σ ≥ 10, rising
// towards 2.2 as σ → 0.
func (g *GaussianSampler) Draw(b Bits) int64 {
	for {
		var y int64
		if g.forceBigForTest {
			y = laplaceBig(b, g.tBig)
		} else {
			y = laplace(b, g.t)
		}
		if g.accept(b, y) {
			return y
		}
	}
}

// accept draws Bernoulli(exp(−γ)) for the proposal y.
func (g *GaussianSampler) accept(b Bits, y int64) bool {
	a := uint64(y)
	if y < 0 {
		a = uint64(-y) // y > math.MinInt64: laplace never returns it
	}
	if !g.forceBigForTest {
		if num, ok := g.fastNum(a); ok {
			return bernExp(b, num, g.denU)
		}
	}
	num := new(big.Int).SetUint64(a)
	num.Mul(num, g.qt)
	num.Sub(num, g.p)
	num.Mul(num, num)
	return bernExpBig(b, num, g.den)
}

// fastNum returns the numerator of γ, (a·q·t − p)², for the proposal
// magnitude a, and whether it (and the sampler's constants) fit in a
// uint64; if not, the caller computes it in big arithmetic.
func (g *GaussianSampler) fastNum(a uint64) (uint64, bool) {
	if !g.fast {
		return 0, false
	}
	hi, aqt := bits.Mul64(a, g.qtU)
	if hi != 0 {
		return 0, false
	}
	diff := aqt - g.pU
	if aqt < g.pU {
		diff = g.pU - aqt
	}
	hi, num := bits.Mul64(diff, diff)
	return num, hi == 0
}
