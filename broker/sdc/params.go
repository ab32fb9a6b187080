package sdc

import (
	"errors"
	"fmt"
	"math"
	"strconv"

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

// Params are the disclosure-control parameters; their canonical text goes
// into the audit log with every release.
type Params struct {
	MaxNoise    int     // D: the largest absolute perturbation of a count
	Variance    float64 // V: the perturbation variance for counts ≥ SmallCell
	SmallCell   int     // js: perturbed counts below this are suppressed
	MaxDims     int     // most dimensions a table may have
	MaxCells    int     // most cells a table may have
	MinUniverse int     // fewest persons or households after filtering
}

// DefaultParams returns the defaults: D=2, V=1, js=10, 4 dimensions,
// 50,000 cells, a universe of at least 100.
func DefaultParams() Params {
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
	return nil
}

// Canonical returns a stable one-line text of p, for the audit log, e.g.
// "ckp/v1 D=2 V=1 js=10 dims=4 cells=50000 universe=100 modulus=4294967296".
func (p Params) Canonical() string {
	return fmt.Sprintf("ckp/v1 D=%d V=%s js=%d dims=%d cells=%d universe=%d modulus=%d",
		p.MaxNoise, strconv.FormatFloat(p.Variance, 'g', -1, 64), p.SmallCell,
		p.MaxDims, p.MaxCells, p.MinUniverse, Modulus)
}

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

// ParseCanonical reads what Canonical writes, so that an auditor can
// recompute a release with the parameters it was made with. It refuses
// anything Canonical would not have written, and parameters that do not
// validate.
func ParseCanonical(s string) (Params, error) {
	var p Params
	var mod uint64
	var v string
	n, err := fmt.Sscanf(s, "ckp/v1 D=%d V=%s js=%d dims=%d cells=%d universe=%d modulus=%d",
		&p.MaxNoise, &v, &p.SmallCell, &p.MaxDims, &p.MaxCells, &p.MinUniverse, &mod)
	if err != nil || n != 7 {
		return Params{}, invalid("%q is not a ckp/v1 parameter text", clipText(s))
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
