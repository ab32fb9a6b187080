package dp

import (
	"math/big"
	"math/bits"
	"math/rand/v2"
)

// Bits is a source of uniform random bits: each call to Uint64 returns 64
// bits that are independent and uniformly distributed. The samplers are
// exact only if this holds; they are private only if the bits are also
// unpredictable to whoever sees the output. *math/rand/v2.ChaCha8 and
// [*Stream] are Bits.
type Bits interface {
	Uint64() uint64
}

// Stream is a deterministic [Bits] source: ChaCha8 keyed by a 32-byte
// seed. The same seed always gives the same sequence, hence the same noise.
//
// The seed is a secret (anyone holding it can recompute the noise and
// remove it); Stream keeps its generator behind a pointer so that
// formatting a Stream (fmt's %v, %+v, %#v) prints an address, never the
// generator's state. Stream has no String method on purpose, and no way to
// read the seed back.
type Stream struct {
	c *rand.ChaCha8
}

// NewStream returns a Stream keyed by seed. seed must be uniformly random
// and secret, and must not be reused for an unrelated release: two
// releases drawn from the same seed carry the same noise, so their
// difference is noiseless. NewStream keeps no reference to the caller's
// array.
func NewStream(seed [32]byte) *Stream {
	return &Stream{c: rand.NewChaCha8(seed)}
}

// Uint64 returns the next 64 bits of the stream.
func (s *Stream) Uint64() uint64 {
	return s.c.Uint64()
}

// Uniform returns an integer uniformly distributed in [0, n), using only
// whole draws from b: it takes the low bitlen(n−1) bits of a draw and
// rejects values ≥ n (at most half of them on average), so there is no
// modulo bias. Uniform(b, 1) is 0 and consumes nothing. It panics if n is 0.
func Uniform(b Bits, n uint64) uint64 {
	if n == 0 {
		panic("dp: Uniform needs n ≥ 1 (there is no integer in [0, 0))")
	}
	if n == 1 {
		return 0
	}
	mask := ^uint64(0) >> bits.LeadingZeros64(n-1)
	for {
		if x := b.Uint64() & mask; x < n {
			return x
		}
	}
}

// uniformBig is [Uniform] for a big n ≥ 1. It consumes ⌈bitlen(n−1)/64⌉
// draws per attempt, the first one giving the lowest 64 bits and the last
// one masked to the remaining bits, so for n < 2^64 it consumes exactly
// what Uniform does and returns the same value.
func uniformBig(b Bits, n *big.Int) *big.Int {
	m := new(big.Int).Sub(n, bigOne)
	bl := m.BitLen()
	if bl == 0 {
		return new(big.Int)
	}
	words := (bl + 63) / 64
	topBits := uint(bl - 64*(words-1))
	topMask := ^uint64(0) >> (64 - topBits)
	x := new(big.Int)
	w := new(big.Int)
	for {
		x.SetInt64(0)
		for i := range words {
			v := b.Uint64()
			if i == words-1 {
				v &= topMask
			}
			w.SetUint64(v)
			w.Lsh(w, uint(64*i))
			x.Or(x, w)
		}
		if x.Cmp(n) < 0 {
			return x
		}
	}
}

var (
	bigOne = big.NewInt(1)
	bigTwo = big.NewInt(2)
)
