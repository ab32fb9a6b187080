package dp

import (
	"math/big"
	"testing"
)

// BenchmarkDiscreteGaussian30000 draws the noise of a 30,000-cell table
// (one op = 30,000 draws from a warm sampler, bits from a Stream). The
// "big path" variants force math/big arithmetic, to show what the integer
// fast path saves.
func BenchmarkDiscreteGaussian30000(b *testing.B) {
	for _, c := range []struct {
		name     string
		sigma2   *big.Rat
		forceBig bool
	}{
		{"sigma2=100", big.NewRat(100, 1), false},
		{"sigma2=12345/7", big.NewRat(12345, 7), false},
		{"sigma2=100/big-path", big.NewRat(100, 1), true},
		{"sigma2=12345/7/big-path", big.NewRat(12345, 7), true},
	} {
		b.Run(c.name, func(b *testing.B) {
			g, err := NewGaussian(c.sigma2)
			if err != nil {
				b.Fatal(err)
			}
			g.forceBigForTest = c.forceBig
			s := NewStream(testSeed("bench"))
			var sink int64
			for b.Loop() {
				for range 30_000 {
					sink += g.Draw(s)
				}
			}
			_ = sink
		})
	}
}
