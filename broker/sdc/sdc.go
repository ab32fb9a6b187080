// Package sdc is the statistical disclosure control core of the table
// broker: cell-key perturbation, the small-cell rule and table limits.
//
// It is pure computation (no I/O, standard library only) so that a release
// can be recomputed exactly by an auditor from the canonical parameters
// ([Params.Canonical]) and the cell keys.
//
// # Cell keys
//
// Every record has a uniform 32-bit record key (the vault derives it with an
// HMAC under a secret; that is not this package's job). A cell's key is the
// sum of its contributors' record keys modulo 2^32 ([CellKey], [Cell.Add]).
// The same set of contributors therefore always gets the same key, and so
// the same noise, whatever the order, the request or the researcher:
// repeating a query or re-slicing the data cannot average the noise away.
//
// # Perturbation table
//
// [NewPTable] builds, deterministically from [Params], one discrete noise
// distribution per true count n (D = MaxNoise, js = SmallCell):
//
//   - n = 0: the noise is always 0 (zero stays zero, so structural zeros are
//     not blurred and empty cells leak nothing new).
//   - Base shape q: symmetric over ±1..±D with triangular weights
//     w_k = D+1-k, variance σq² = Σ w_k k² / Σ w_k.
//   - 1 ≤ n < js: offset 0 has probability 0 (small counts never come out
//     exact); negative offsets are limited to -min(D, n) so the result is
//     never negative; positive offsets get weights α·w_k and negative ones
//     β·w_k, with α, β solved so the mean is exactly n (unbiased).
//   - n ≥ js (one shared row; larger n reuse it, noise then depends on the
//     key only): mean 0 and variance exactly V. If V ≤ σq² it is the mixture
//     (1-c)·δ0 + c·q with c = V/σq²; otherwise (1-c)·q + c·{±D each ½} with
//     c = (V-σq²)/(D²-σq²). Validate requires V ≤ D², the largest variance
//     any mean-zero distribution on [-D, D] can have, and js ≥ D so that
//     n - D ≥ 0.
//
// Each row's cumulative probabilities are cut into consecutive ranges of the
// key space [0, 2^32); the noise for (n, key) is the offset whose range
// holds the key. With the defaults (D=2, V=1) the large-n row is
// P(0)=1/2, P(±1)=1/6, P(±2)=1/12: mean absolute perturbation 2/3.
//
// # Sums and means
//
// A perturbed sum is Sum + B·s where B is the variable's bound (the most one
// contributor can add) and s = e/D, e being the large-n row's noise at a
// remixed key fmix32(key) (a bijection of uint32, so a uniform key stays
// uniform). s lies in [-1, 1], has mean 0 and variance V/D² over keys, and is
// decorrelated from the count noise of the same cell. A mean is the perturbed
// sum divided by the perturbed count. Both are suppressed whenever the count
// is.
//
// # Small-cell rule and limits
//
// Release order is: perturb, then suppress perturbed counts below js.
// Table shape ([Params.CheckShape]) and universe size
// ([Params.CheckUniverse]) are checked before anything is computed.
package sdc
