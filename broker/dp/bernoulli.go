package dp

import (
	"math/big"
	"math/bits"
)

// BernoulliExp returns true with probability exactly exp(−n/d), for the
// rational γ = n/d ≥ 0 (Canonne–Kamath–Steinke, Algorithm 1).
//
// For γ ≤ 1 it draws A_k ~ Bernoulli(γ/k) for k = 1, 2, … until the first
// A_k = 0 and returns whether that k is odd; each Bernoulli(γ/k) is a
// uniform integer below d·k compared with n. For γ > 1 it uses
// exp(−γ) = exp(−1)^⌊γ⌋ · exp(−(γ−⌊γ⌋)): ⌊γ⌋ draws of Bernoulli(exp(−1)),
// stopping at the first false, then one of the fractional part. Either
// way the expected number of uniform draws is a small constant (below 7),
// whatever γ.
//
// It panics if d is 0.
func BernoulliExp(b Bits, n, d uint64) bool {
	if d == 0 {
		panic("dp: BernoulliExp needs d ≥ 1 (γ = n/d)")
	}
	return bernExp(b, n, d)
}

// bernExp is BernoulliExp for d ≥ 1, in uint64 arithmetic.
func bernExp(b Bits, n, d uint64) bool {
	if n > d {
		for k := n / d; k > 0; k-- {
			if !bernExpFrac(b, 1, 1) {
				return false
			}
		}
		n %= d
	}
	return bernExpFrac(b, n, d)
}

// bernExpFrac is Algorithm 1 for γ = n/d ≤ 1. When d·k no longer fits in
// a uint64 (only for d near 2^64 or an improbably long run), it continues
// in big arithmetic from the same k, consuming the same bits.
func bernExpFrac(b Bits, n, d uint64) bool {
	for k := uint64(1); ; k++ {
		hi, dk := bits.Mul64(d, k)
		if hi != 0 {
			return bernExpFracBig(b, new(big.Int).SetUint64(n), new(big.Int).SetUint64(d), k)
		}
		if Uniform(b, dk) >= n {
			return k%2 == 1
		}
	}
}

// bernExpBig is bernExp in big arithmetic, for n ≥ 0 and d ≥ 1.
func bernExpBig(b Bits, n, d *big.Int) bool {
	if n.Cmp(d) > 0 {
		q, r := new(big.Int).QuoRem(n, d, new(big.Int))
		// ⌊γ⌋ ≥ 2^64 would need 2^64 successive successes of probability
		// 1/e: the loop ends long before the counter could wrap.
		for k := uint64(0); !q.IsUint64() || k < q.Uint64(); k++ {
			if !bernExpFracBig(b, bigOne, bigOne, 1) {
				return false
			}
		}
		n = r
	}
	return bernExpFracBig(b, n, d, 1)
}

// bernExpFracBig is bernExpFrac in big arithmetic, starting at k = k0.
func bernExpFracBig(b Bits, n, d *big.Int, k0 uint64) bool {
	dk := new(big.Int)
	kb := new(big.Int)
	for k := k0; ; k++ {
		dk.Mul(d, kb.SetUint64(k))
		if uniformBig(b, dk).Cmp(n) >= 0 {
			return k%2 == 1
		}
	}
}
