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
// # Versions
//
// A parameter set names its method: ckp/v1 or ckp/v2 ([Version], first
// word of [Params.Canonical]). Counts are perturbed the same way by both;
// they differ in sums and means, and in whose key a household head counts
// under. [DefaultParams] is v2. v1 stays, byte for byte, so that every
// release recorded with a v1 text replays to the same bytes.
//
// # Sums and means under v1
//
// A perturbed sum is Sum + B·s where B is the variable's bound (the most one
// contributor can add) and s = e/D, e being the large-n row's noise at a
// remixed key fmix32(key) (a bijection of uint32, so a uniform key stays
// uniform). s lies in [-1, 1], has mean 0 and variance V/D² over keys, and is
// decorrelated from the count noise of the same cell. A mean is the perturbed
// sum divided by the perturbed count. Both are suppressed whenever the count
// is.
//
// The weakness that v2 removes: s takes only the values e/D, so a released
// sum is the true sum plus a multiple of B/D. Two sums whose contributors
// differ by one person differ by that person's value plus a multiple of
// B/D: the value is known modulo B/D, so it is one of at most 2D+1
// candidates in [-B, B], and it is the difference itself whenever the two
// cells drew the same e (about a third of the time with the defaults).
//
// # Sums and means under v2: magnitude perturbation
//
// A cell's contributions x_i are summarized by Sum = Σ x_i, AbsSum =
// Σ |x_i| and x(1) ≥ x(2), the two largest |x_i| ([Cell.Top], kept by
// [Cell.Add]). The released sum is
//
//	S' = Sum + m · x(1) · u,   u = MagnitudeNoise(key)
//
// where m is Params.Magnitude and u is derived from the cell key: h =
// fmix32(key); sign from h's top bit, |u| = ½ + ½·(low 31 bits of h)/2^31.
// So u is spread evenly over [-1, -½) ∪ [½, 1) in steps of 2^-32 — to the
// two decimals a table is released with, continuous — with mean 0, E|u| =
// ¾ and variance 7/12, decorrelated from the count noise (which reads the
// key's position, not a mix of its bits). Every released sum is at least
// m·x(1)/2 and less than m·x(1) from the truth: the perturbation never
// vanishes, and it scales with the contributions themselves rather than
// with a bound fixed in advance, so there is no grid to read values off.
// A mean is S' divided by the perturbed count, suppressed whenever
// either is.
//
// Dominance (the p% rule, p = Params.Dominance): a sum or mean is
// suppressed when AbsSum - x(1) - x(2) < p/100 · x(1), i.e. when the
// second largest contributor, who knows their own value, could estimate
// the largest to within p% by subtracting (a cell of one or two
// contributors with a non-zero value is always dominated). It applies on
// top of the count's small-cell rule: a sum is released only if its count
// is and it is not dominated. m and p are in the canonical text, so in
// the audit log with every release.
//
// What v2 protects against: reading one contributor's value from the
// difference of two sums whose contributor sets differ by that one
// contributor (the keys of the two cells differ by the contributor's
// uniform record key, so their u are independent and the estimate is off
// by m·(x_b(1)·u_b − x_a(1)·u_a): about 0.83·m·x(1) on average, up to
// 2·m·x(1), and right to the released two decimals with a probability of
// the order of 0.01/(m·x(1)) rather than a third of the time); a dominant contributor's value read
// from the sum (suppressed); averaging repeated requests (same
// contributors, same key, same noise).
//
// What it does not: the difference is still an unbiased estimate, so an
// attacker with many independent such differences about the same person
// (cells whose other contributors all differ) can average the noise down,
// at a rate of about m·x(1)/√k after k of them — limits on requests, not
// this package, bound k. A cell whose contributions are all zero is
// released as exactly zero (there is nothing to scale noise by), which
// tells that every contributor's value is zero, as a zero count tells
// that nobody is in a cell. And the noise follows x(1): where the true sum
// is known from elsewhere, |S' − S| places x(1) between |S' − S|/m and
// 2·|S' − S|/m.
//
// # Household heads under v2
//
// Under v2 the table engine counts a household's head (the first person
// with the form's head code) under the household's record key instead of
// their own. A table of households and the same table of heads counted as
// persons then have cells with the same contributor keys, and so the same
// noise: the two cannot be compared to cancel it. Under v1 (replays) each
// person keeps their own key.
//
// # Small-cell rule and limits
//
// Release order is: perturb, then suppress perturbed counts below js.
// Table shape ([Params.CheckShape]) and universe size
// ([Params.CheckUniverse]) are checked before anything is computed.
package sdc
