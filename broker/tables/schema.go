package tables

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/censusvault/censusvault/broker/form"
)

// Derived variables: computed from analytic fields, never stored.
const (
	VarAgeGroup5 = "age_group5" // five-year age band at the census moment
	VarAge       = "age"        // completed years at the census moment (a measure only)
)

// Unit is what a table counts.
type Unit string

// The units.
const (
	Persons    Unit = "persons"
	Households Unit = "households"
)

type varLevel uint8

const (
	householdLevel varLevel = iota
	personLevel
)

func (l varLevel) String() string {
	if l == householdLevel {
		return "household"
	}
	return "person"
}

type varKind uint8

const (
	coded   varKind = iota // a code field, or an int field with a small range: a dimension and (int) a measure
	numeric                // a decimal field, or an int field with a large range: a measure only
	derivedBand
	derivedAge
)

// maxCategories is the most categories a variable may have to be a
// dimension (its values are stored as uint16 index+1, 0 for absent).
const maxCategories = 65534

// variable is one analytic variable of the schema.
type variable struct {
	name     string
	level    varLevel
	kind     varKind
	required bool
	// quantitative: an amount the form marks as such (or the derived
	// age), the only kind a released table may sum or average.
	quantitative bool
	col          int // column in its level's column list (coded, numeric)
	// coded: values[i] is the value of category i (the code, or min+i),
	// labels[i] its label.
	values []int64
	labels []string
	lo     int64   // value of dense[0]
	dense  []int32 // dense[x-lo] is the category of value x, or -1
	bound  float64 // most one contributor can add to a sum
	isInt  bool    // an int field (coded or numeric)
	nonNeg bool    // never negative (a dp sum of it is clamped at 0)
}

// dimension reports whether v can be a row or column of a table.
func (v *variable) dimension() bool { return v.kind == coded || v.kind == derivedBand }

// measurable reports whether v can be summed or averaged.
func (v *variable) measurable() bool {
	return v.kind == numeric || v.kind == derivedAge || (v.kind == coded && v.isInt)
}

// categories returns the number of categories of a dimension, not
// counting "not stated".
func (v *variable) categories() int {
	if v.kind == derivedBand {
		return AgeGroup5Bands
	}
	return len(v.values)
}

// Schema is the analytic part of a form, as the engine stores and
// tabulates it. It is immutable.
type Schema struct {
	form      string
	version   int
	vars      map[string]*variable
	order     []string // analytic variables in form order, then derived ones
	closed    map[string]form.Class
	hhCols    []*variable
	pCols     []*variable
	birthYear *variable
	birthMon  *variable
	census    time.Time // the form's census moment: ages are taken at it
	// head and headCode are the person variable and code that mark the
	// household head (form.Form.Head), or nil: the cache notes each
	// household's first such person, whom ckp/v2 tables count under the
	// household's record key.
	head     *variable
	headCode int64
}

// NewSchema builds the schema of f's analytic fields. The form must have
// the person fields birth_year (int) and birth_month (int, optional),
// from which age and age_group5 are derived.
func NewSchema(f *form.Form) (*Schema, error) {
	s := &Schema{form: f.Name, version: f.Version, vars: map[string]*variable{}, closed: map[string]form.Class{}}
	for _, lv := range []varLevel{householdLevel, personLevel} {
		list := f.Household
		if lv == personLevel {
			list = f.Person
		}
		for _, fd := range list {
			if fd.Class != form.Analytic {
				s.closed[fd.Name] = fd.Class
				continue
			}
			v, err := newVariable(fd, lv)
			if err != nil {
				return nil, err
			}
			if v == nil {
				continue // a string: not tabulable
			}
			if lv == householdLevel {
				v.col = len(s.hhCols)
				s.hhCols = append(s.hhCols, v)
			} else {
				v.col = len(s.pCols)
				s.pCols = append(s.pCols, v)
			}
			s.vars[v.name] = v
			s.order = append(s.order, v.name)
		}
	}
	by, bm := s.vars["birth_year"], s.vars["birth_month"]
	if by == nil || bm == nil || by.level != personLevel || bm.level != personLevel || !by.isInt || !bm.isInt {
		return nil, fmt.Errorf("tables: form %s v%d lacks the analytic person int fields birth_year and birth_month", f.Name, f.Version)
	}
	s.birthYear, s.birthMon = by, bm
	census, ok := f.Census()
	if !ok {
		return nil, fmt.Errorf("tables: form %s v%d has no census_moment: ages are taken at it", f.Name, f.Version)
	}
	s.census = census
	if name, code, ok := f.Head(); ok {
		v := s.vars[name]
		if v == nil || v.level != personLevel || v.kind != coded || v.category(int64(code)) < 0 {
			return nil, fmt.Errorf("tables: form %s v%d marks the head with %s, which is not an analytic person code field with that code", f.Name, f.Version, name)
		}
		s.head, s.headCode = v, int64(code)
	}
	oldest := float64(census.Year()) - minOf(by)
	s.vars[VarAgeGroup5] = &variable{name: VarAgeGroup5, level: personLevel, kind: derivedBand, required: true}
	s.vars[VarAge] = &variable{name: VarAge, level: personLevel, kind: derivedAge, required: true, bound: oldest, isInt: true, quantitative: true, nonNeg: true}
	s.order = append(s.order, VarAgeGroup5, VarAge)
	return s, nil
}

func minOf(v *variable) float64 {
	if v.kind == coded {
		return float64(v.values[0])
	}
	return -v.bound
}

func newVariable(fd form.Field, lv varLevel) (*variable, error) {
	v := &variable{name: fd.Name, level: lv, required: fd.Required, quantitative: fd.Quantitative}
	switch fd.Type {
	case form.TypeCode:
		v.kind, v.isInt = coded, true
		for _, c := range fd.Codes {
			v.values = append(v.values, int64(c.Code))
			v.labels = append(v.labels, c.Label)
			v.bound = math.Max(v.bound, math.Abs(float64(c.Code)))
		}
	case form.TypeInt, form.TypeDecimal:
		if fd.Min == nil || fd.Max == nil {
			return nil, fmt.Errorf("tables: analytic field %s has no bounds: sums need them", fd.Name)
		}
		lo, hi := *fd.Min, *fd.Max
		v.bound = math.Max(math.Abs(lo), math.Abs(hi))
		v.nonNeg = lo >= 0
		v.isInt = fd.Type == form.TypeInt
		if v.isInt && hi-lo < maxCategories {
			v.kind = coded
			for x := int64(lo); x <= int64(hi); x++ {
				v.values = append(v.values, x)
				v.labels = append(v.labels, strconv.FormatInt(x, 10))
			}
		} else {
			v.kind = numeric
		}
	default:
		return nil, nil // strings, dates, phones: not tabulable
	}
	if v.kind == coded {
		if len(v.values) > maxCategories {
			return nil, fmt.Errorf("tables: field %s has %d codes, more than %d", fd.Name, len(v.values), maxCategories)
		}
		lo, hi := v.values[0], v.values[0]
		for _, x := range v.values {
			lo, hi = min(lo, x), max(hi, x)
		}
		if hi-lo >= 1<<20 {
			return nil, fmt.Errorf("tables: field %s has codes spread over more than 2^20 values", fd.Name)
		}
		v.lo = lo
		v.dense = make([]int32, hi-lo+1)
		for i := range v.dense {
			v.dense[i] = -1
		}
		for i, x := range v.values {
			v.dense[x-lo] = int32(i)
		}
	}
	return v, nil
}

// category returns the category of value x, or -1 if x is not one.
func (v *variable) category(x int64) int {
	if x < v.lo || x-v.lo >= int64(len(v.dense)) {
		return -1
	}
	return int(v.dense[x-v.lo])
}

// Variables lists the variables a table may name, in form order, then the
// derived ones.
func (s *Schema) Variables() []string { return append([]string(nil), s.order...) }

// Quantitative reports whether the variable name may be summed or
// averaged in a released table: a field the form marks quantitative, or
// the derived age. Summing a code (religion, education level) is only a
// way to read the codes back, so new releases are refused it; Compile
// still accepts it, so that releases made before the rule replay.
func (s *Schema) Quantitative(name string) bool {
	v := s.vars[name]
	return v != nil && v.quantitative
}

// Form returns the name and version of the form the schema was built from:
// the engine tabulates submissions of that form only.
func (s *Schema) Form() (name string, version int) { return s.form, s.version }

// Census is the form's census reference moment, in the census's time
// zone: ages are taken at it, and scheduled points are made by its days.
func (s *Schema) Census() time.Time { return s.census }
