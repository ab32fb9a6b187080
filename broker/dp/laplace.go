package dp

import (
	"math/big"
	"math/bits"
)

// maxMagnitude is the largest magnitude a draw may have: that of an int64.
const maxMagnitude = 1<<63 - 1

// Laplace returns a draw from the discrete Laplace distribution with scale
// t ≥ 1: P(x) ∝ exp(−|x|/t) for every integer x (Canonne–Kamath–Steinke,
// Algorithm 2, with s = 1). It panics if t is 0.
//
// The magnitude is U + t·V, with U uniform in [0, t) kept with probability
// exp(−U/t) and V geometric (the number of Bernoulli(exp(−1)) successes
// before the first failure); a sign is drawn, and "−0" is rejected so that
// 0 is not counted twice.
func Laplace(b Bits, t uint64) int64 {
	if t == 0 {
		panic("dp: Laplace needs a scale t ≥ 1")
	}
	return laplace(b, t)
}

// laplace is Algorithm 2 in uint64 arithmetic.
func laplace(b Bits, t uint64) int64 {
	for {
		u := Uniform(b, t)
		if !bernExpFrac(b, u, t) {
			continue
		}
		var v uint64
		for bernExpFrac(b, 1, 1) {
			v++
		}
		hi, tv := bits.Mul64(t, v)
		x, carry := bits.Add64(u, tv, 0)
		if hi != 0 || carry != 0 || x > maxMagnitude {
			continue // |x| ≥ 2^63: see the package doc on truncation
		}
		negative := Uniform(b, 2) == 1
		if negative && x == 0 {
			continue
		}
		if negative {
			return -int64(x)
		}
		return int64(x)
	}
}

// maxInt64Big is the largest magnitude laplaceBig returns.
var maxInt64Big = new(big.Int).SetUint64(maxMagnitude)

// laplaceBig is laplace in big arithmetic throughout. It consumes the
// same bits as laplace and returns the same value; it exists so that the
// tests can check that the fast path changes nothing.
func laplaceBig(b Bits, t *big.Int) int64 {
	x := new(big.Int)
	for {
		u := uniformBig(b, t)
		if !bernExpFracBig(b, u, t, 1) {
			continue
		}
		v := new(big.Int)
		for bernExpFracBig(b, bigOne, bigOne, 1) {
			v.Add(v, bigOne)
		}
		x.Mul(t, v)
		x.Add(x, u)
		if x.Cmp(maxInt64Big) > 0 {
			continue
		}
		negative := uniformBig(b, bigTwo).Sign() == 1
		if negative && x.Sign() == 0 {
			continue
		}
		if negative {
			return -x.Int64()
		}
		return x.Int64()
	}
}
