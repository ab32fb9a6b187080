package sdc

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/censusvault/censusvault/broker/untrusted"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrInvalidParams reports disclosure-control parameters that make no sense.
	ErrInvalidParams = errors.New("invalid disclosure-control parameters")
	// ErrTableShape reports a table with too many dimensions or cells.
	ErrTableShape = errors.New("table shape exceeds limits")
	// ErrSmallUniverse reports a universe too small to release from.
	ErrSmallUniverse = errors.New("universe too small")
)

// Upper bounds on the parameters themselves, so a mistyped configuration
// cannot make the table huge or the noise meaningless.
const (
	maxMaxNoise  = 64
	maxSmallCell = 1 << 20
	maxMaxDims   = 16
	maxMaxCells  = 1 << 30
)

// Modulus is the modulus of cell-key arithmetic (2^32).
const Modulus uint64 = 1 << 32

// Version is the cell-key method a parameter set belongs to. The zero
// value is V1, the method every parameter set was written with before V2
// existed, so a Params literal without a Version, and every release
// recorded then, keeps meaning what it meant.
type Version uint8

// The versions.
const (
	// V1 perturbs a sum by a multiple of bound/D (a grid), and counts
	// each person under their own record key.
	V1 Version = iota
	// V2 perturbs a sum continuously in proportion to its largest
	// contribution, suppresses sums dominated by one or two
	// contributors, and (in the table engine) counts a household head
	// under the household's record key. See the package documentation.
	V2
)

// Upper bounds on the v2 parameters.
const (
	maxMagnitude = 1   // m: noise up to the whole largest contribution
	maxDominance = 100 // p, in percent
)

// Params are the disclosure-control parameters; their canonical text goes
// into the audit log with every release.
type Params struct {
	Version     Version // V1 or V2
	MaxNoise    int     // D: the largest absolute perturbation of a count
	Variance    float64 // V: the perturbation variance for counts ≥ SmallCell
	SmallCell   int     // js: perturbed counts below this are suppressed
	MaxDims     int     // most dimensions a table may have
	MaxCells    int     // most cells a table may have
	MinUniverse int     // fewest persons or households after filtering
	// Magnitude is m (v2 only; 0 under v1): a sum's noise is m·x(1)·u,
	// x(1) being its largest absolute contribution and |u| in [½, 1).
	Magnitude float64
	// Dominance is p of the p% rule, in percent (v2 only; 0 under v1): a
	// sum or mean is suppressed when what its contributors other than
	// the two largest add up to is less than p% of the largest.
	Dominance float64
}

// DefaultParams returns the defaults for new releases: ckp/v2 with D=2,
// V=1, js=10, 4 dimensions, 50,000 cells, a universe of at least 100,
// magnitude m=0.25 and the p% rule with p=10.
//
// m=0.25 puts every released sum at least 12.5% and less than 25% of its
// largest contribution away from the truth: enough that subtracting two
// sums whose contributors differ by one person leaves an error of about
// ±m·x(1) (mean 0.83·m·x(1); right to the two released decimals with a
// probability of about 0.01/(m·x(1)), 1 in 2,000 for a largest value of
// 80), and little enough that a cell of ten or more comparable
// contributions keeps its sum within a few percent. p=10 is the usual
// choice of statistical offices' p% rule: the second largest contributor,
// who knows their own value, must not be able to estimate the largest to
// within 10% from the sum. The perturbation alone (at least 12.5% of the
// largest) would blur that estimate about as much, but a dominated cell
// is withheld outright rather than left to noise whose law is public.
func DefaultParams() Params {
	p := DefaultParamsV1()
	p.Version, p.Magnitude, p.Dominance = V2, 0.25, 10
	return p
}

// DefaultParamsV1 returns the ckp/v1 defaults, the parameters of releases
// made before v2: D=2, V=1, js=10, 4 dimensions, 50,000 cells, a universe
// of at least 100.
func DefaultParamsV1() Params {
	return Params{MaxNoise: 2, Variance: 1, SmallCell: 10, MaxDims: 4, MaxCells: 50000, MinUniverse: 100}
}

// limitError carries a clear, researcher-facing reason while still matching
// its sentinel with errors.Is.
type limitError struct {
	kind error
	msg  string
}

func (e *limitError) Error() string { return e.msg }
func (e *limitError) Unwrap() error { return e.kind }

func invalid(format string, args ...any) error {
	return &limitError{kind: ErrInvalidParams, msg: "invalid disclosure-control parameters: " + fmt.Sprintf(format, args...)}
}

// Validate reports whether p is usable.
func (p Params) Validate() error {
	switch {
	case p.MaxNoise < 1 || p.MaxNoise > maxMaxNoise:
		return invalid("max noise %d not in 1..%d", p.MaxNoise, maxMaxNoise)
	case math.IsNaN(p.Variance) || math.IsInf(p.Variance, 0) || p.Variance <= 0:
		return invalid("variance %v must be positive and finite", p.Variance)
	case p.Variance > float64(p.MaxNoise*p.MaxNoise):
		return invalid("variance %v exceeds %d, the most noise bounded by %d can have", p.Variance, p.MaxNoise*p.MaxNoise, p.MaxNoise)
	case p.SmallCell < 1 || p.SmallCell > maxSmallCell:
		return invalid("small-cell threshold %d not in 1..%d", p.SmallCell, maxSmallCell)
	case p.SmallCell < p.MaxNoise:
		// Counts ≥ js use the full ±D row; below D it could go negative.
		return invalid("small-cell threshold %d below max noise %d", p.SmallCell, p.MaxNoise)
	case p.MaxDims < 1 || p.MaxDims > maxMaxDims:
		return invalid("max dimensions %d not in 1..%d", p.MaxDims, maxMaxDims)
	case p.MaxCells < 1 || p.MaxCells > maxMaxCells:
		return invalid("max cells %d not in 1..%d", p.MaxCells, maxMaxCells)
	case p.MinUniverse < 1:
		return invalid("minimum universe %d below 1", p.MinUniverse)
	}
	switch p.Version {
	case V1:
		// Canonical does not write them: two parameter sets with one
		// text must not behave differently.
		if p.Magnitude != 0 || p.Dominance != 0 {
			return invalid("magnitude and dominance are v2 parameters: set Version to V2 or leave them 0")
		}
	case V2:
		switch {
		case math.IsNaN(p.Magnitude) || p.Magnitude <= 0 || p.Magnitude > maxMagnitude:
			return invalid("magnitude %v not in (0, %d]", p.Magnitude, maxMagnitude)
		case math.IsNaN(p.Dominance) || p.Dominance <= 0 || p.Dominance > maxDominance:
			return invalid("dominance p %v not in (0, %d] percent", p.Dominance, maxDominance)
		}
	default:
		return invalid("version %d: this build knows v1 and v2", p.Version)
	}
	return nil
}

// Canonical returns a stable one-line text of p, for the audit log, e.g.
// "ckp/v1 D=2 V=1 js=10 dims=4 cells=50000 universe=100 modulus=4294967296"
// or, for v2, "ckp/v2 D=2 V=1 js=10 dims=4 cells=50000 universe=100 m=0.25
// p=10 modulus=4294967296" (one line). The v1 text is byte for byte what
// it was before v2, so recorded releases still parse and replay.
func (p Params) Canonical() string {
	if p.Version == V1 {
		return fmt.Sprintf("ckp/v1 D=%d V=%s js=%d dims=%d cells=%d universe=%d modulus=%d",
			p.MaxNoise, formatFloat(p.Variance), p.SmallCell,
			p.MaxDims, p.MaxCells, p.MinUniverse, Modulus)
	}
	return fmt.Sprintf("ckp/v%d D=%d V=%s js=%d dims=%d cells=%d universe=%d m=%s p=%s modulus=%d",
		int(p.Version)+1, p.MaxNoise, formatFloat(p.Variance), p.SmallCell,
		p.MaxDims, p.MaxCells, p.MinUniverse, formatFloat(p.Magnitude), formatFloat(p.Dominance), Modulus)
}

func formatFloat(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// CheckShape rejects a table with more dimensions or cells than allowed,
// before any work is done.
func (p Params) CheckShape(dims int, cells int) error {
	switch {
	case dims < 1:
		return &limitError{kind: ErrTableShape, msg: "a table needs at least 1 dimension"}
	case dims > p.MaxDims:
		return &limitError{kind: ErrTableShape, msg: fmt.Sprintf("table has %d dimensions; at most %d dimensions", dims, p.MaxDims)}
	case cells < 1:
		return &limitError{kind: ErrTableShape, msg: "a table needs at least 1 cell"}
	case cells > p.MaxCells:
		return &limitError{kind: ErrTableShape, msg: fmt.Sprintf("table would have %s cells; at most %s", group(int64(cells)), group(int64(p.MaxCells)))}
	}
	return nil
}

// CheckUniverse rejects a universe of fewer than MinUniverse persons.
func (p Params) CheckUniverse(n int64) error { return p.CheckUniverseUnit(n, "persons") }

// CheckUniverseUnit is CheckUniverse naming the unit ("persons" or
// "households") in its message.
func (p Params) CheckUniverseUnit(n int64, unit string) error {
	if n < int64(p.MinUniverse) {
		return &limitError{kind: ErrSmallUniverse, msg: fmt.Sprintf("universe of %s %s after filtering; at least %s", group(n), unit, group(int64(p.MinUniverse)))}
	}
	return nil
}

// group formats n with thousands separators, as people read limits.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := ""
	if n < 0 {
		neg, s = "-", s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return neg + string(out)
}

// ParseCanonical reads what Canonical writes, v1 or v2, so that an
// auditor can recompute a release with the parameters it was made with.
// It refuses anything Canonical would not have written, and parameters
// that do not validate.
func ParseCanonical(s string) (Params, error) {
	var p Params
	var mod uint64
	var v, m, d string
	var err error
	switch {
	case strings.HasPrefix(s, "ckp/v1 "):
		n, err := fmt.Sscanf(s, "ckp/v1 D=%d V=%s js=%d dims=%d cells=%d universe=%d modulus=%d",
			&p.MaxNoise, &v, &p.SmallCell, &p.MaxDims, &p.MaxCells, &p.MinUniverse, &mod)
		if err != nil || n != 7 {
			return Params{}, invalid("%q is not a ckp/v1 parameter text", clipText(s))
		}
	case strings.HasPrefix(s, "ckp/v2 "):
		p.Version = V2
		n, err := fmt.Sscanf(s, "ckp/v2 D=%d V=%s js=%d dims=%d cells=%d universe=%d m=%s p=%s modulus=%d",
			&p.MaxNoise, &v, &p.SmallCell, &p.MaxDims, &p.MaxCells, &p.MinUniverse, &m, &d, &mod)
		if err != nil || n != 9 {
			return Params{}, invalid("%q is not a ckp/v2 parameter text", clipText(s))
		}
		if p.Magnitude, err = strconv.ParseFloat(m, 64); err != nil {
			return Params{}, invalid("magnitude %q is not a number", clipText(m))
		}
		if p.Dominance, err = strconv.ParseFloat(d, 64); err != nil {
			return Params{}, invalid("dominance %q is not a number", clipText(d))
		}
	default:
		return Params{}, invalid("%q is not a ckp/v1 or ckp/v2 parameter text", clipText(s))
	}
	if p.Variance, err = strconv.ParseFloat(v, 64); err != nil {
		return Params{}, invalid("variance %q is not a number", clipText(v))
	}
	if mod != Modulus {
		return Params{}, invalid("modulus %d, this version uses %d", mod, Modulus)
	}
	if p.Canonical() != s {
		return Params{}, invalid("%q is not in canonical form", clipText(s))
	}
	return p, p.Validate()
}

func clipText(s string) string { return untrusted.Clip(s, 120) }
