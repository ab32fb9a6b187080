package tables

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
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
	// min and max are a numeric variable's range: a value outside it (of
	// a household of an older form version) is stored as absent.
	min, max float64
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
// tabulates it: the latest version of the vault's table form, through
// which the households of every version of that form are read. It is
// immutable.
type Schema struct {
	form    string
	version int
	vars    map[string]*variable
	order   []string // analytic variables in form order, then derived ones
	closed  map[string]form.Class
	hhCols  []*variable
	pCols   []*variable
	// Ages come from the fields with the roles (form.RoleField): a birth
	// year (and, optionally, month) taken at the census moment, or an
	// age in completed years. All nil: the form has no ages, and no
	// age_group5 or age variable.
	birthYear *variable
	birthMon  *variable
	ageField  *variable
	census    time.Time // the form's census moment (zero if none): ages are taken at it
	// head and headCode are the person variable and code that mark the
	// household head (form.Form.Head), or nil: the cache notes each
	// household's first such person, whom ckp/v2 tables count under the
	// household's record key.
	head     *variable
	headCode int64

	catOnce sync.Once // the standard catalogue of the schema (Catalogue)
	cat     *Catalogue
	catErr  error
}

// NewSchema builds the schema of f's analytic fields: f is the latest
// version of the table form, earlier the versions before it, whose
// households are read through f (see Cache). Variables are f's analytic
// fields of a tabulable type (code, int, decimal; strings, dates,
// phones and code sets are not variables: multi-response tables are not
// built yet). A field from which an older household may have no value
// — not required, or relevant only somewhere, in f or in an earlier
// version, or analytic, of the same type or within f's codes or range
// only since f — has a "not stated" category.
//
// Ages are derived from the fields with roles, never from names: the
// fields with form.RoleBirthYear (and form.RoleBirthMonth) give age in
// completed years at the census moment, the field with form.RoleAge
// gives it directly; either way the schema has age_group5 (five-year
// bands) and age (completed years, a quantitative measure; a role-age
// field named age is that variable). A form with no such role has no
// age variables. NewSchema refuses a form it cannot tabulate, saying
// why: an analytic field named like a derived variable, a name used by
// both lists, a birth year without a census moment, a head code that is
// not a coded person variable.
func NewSchema(f *form.Form, earlier ...*form.Form) (*Schema, error) {
	s := &Schema{form: f.Name, version: f.Version, vars: map[string]*variable{}, closed: map[string]form.Class{}}
	pre := fmt.Sprintf("tables: form %s v%d", f.Name, f.Version)
	for _, e := range earlier {
		if e.Name != f.Name || e.Version >= f.Version {
			return nil, fmt.Errorf("%s: version %d of %s is not an earlier version of it", pre, e.Version, e.Name)
		}
	}
	for _, lv := range []varLevel{householdLevel, personLevel} {
		list := f.Household
		if lv == personLevel {
			list = f.Person
		}
		for _, fd := range list {
			if fd.Class != form.Analytic {
				if _, dup := s.closed[fd.Name]; !dup {
					s.closed[fd.Name] = fd.Class
				}
				continue
			}
			v, err := newVariable(fd, lv)
			if err != nil {
				return nil, err
			}
			if v == nil {
				continue // not tabulable
			}
			if _, dup := s.vars[v.name]; dup {
				return nil, fmt.Errorf("%s: %s is an analytic field of both the household and the person list: tables name variables by field name, so rename one", pre, v.name)
			}
			v.required = alwaysStated(fd, lv, earlier)
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
	for name := range s.closed {
		if _, ok := s.vars[name]; ok {
			delete(s.closed, name) // analytic in the other list
		}
	}
	if census, ok := f.Census(); ok {
		s.census = census
	}
	if err := s.roles(f, pre); err != nil {
		return nil, err
	}
	if name, code, ok := f.Head(); ok {
		v := s.vars[name]
		if v == nil || v.level != personLevel || v.kind != coded || v.category(int64(code)) < 0 {
			return nil, fmt.Errorf("%s marks the head with %s, which is not an analytic person code field with that code", pre, name)
		}
		s.head, s.headCode = v, int64(code)
	}
	return s, nil
}

// roles finds the fields ages are derived from and adds the derived
// variables.
func (s *Schema) roles(f *form.Form, pre string) error {
	roleVar := func(role string) (*variable, error) {
		name, ok := f.RoleField(role)
		if !ok {
			return nil, nil
		}
		v := s.vars[name]
		if v == nil || v.level != personLevel || !v.isInt {
			return nil, fmt.Errorf("%s: field %s has role %s but is not an analytic person int field", pre, name, role)
		}
		return v, nil
	}
	var err error
	if s.birthYear, err = roleVar(form.RoleBirthYear); err != nil {
		return err
	}
	if s.birthMon, err = roleVar(form.RoleBirthMonth); err != nil {
		return err
	}
	if s.ageField, err = roleVar(form.RoleAge); err != nil {
		return err
	}
	var bound float64
	switch {
	case s.birthYear != nil && s.ageField != nil:
		return fmt.Errorf("%s has both a birth year and an age role: ages come from one", pre)
	case s.birthMon != nil && s.birthYear == nil:
		return fmt.Errorf("%s has a birth month role without a birth year", pre)
	case s.birthYear != nil:
		if s.census.IsZero() {
			return fmt.Errorf("%s: field %s has role birth_year but the form has no census_moment: ages are taken at it", pre, s.birthYear.name)
		}
		bound = float64(s.census.Year()) - minOf(s.birthYear)
	case s.ageField != nil:
		bound = s.ageField.bound
	default:
		return nil // no ages
	}
	for _, name := range []string{VarAgeGroup5, VarAge} {
		if v, ok := s.vars[name]; ok && v != s.ageField {
			return fmt.Errorf("%s: analytic field %s has the name of a variable derived from ages: rename the field", pre, name)
		}
	}
	s.vars[VarAgeGroup5] = &variable{name: VarAgeGroup5, level: personLevel, kind: derivedBand, required: true}
	s.order = append(s.order, VarAgeGroup5)
	if s.ageField != nil && s.ageField.name == VarAge {
		// The age field is the age: a dimension (single years) and,
		// completed years being an amount, a quantitative measure.
		s.ageField.quantitative = true
		return nil
	}
	s.vars[VarAge] = &variable{name: VarAge, level: personLevel, kind: derivedAge, required: true, bound: bound, isInt: true, quantitative: true, nonNeg: true}
	s.order = append(s.order, VarAge)
	return nil
}

// alwaysStated reports whether every household of the form's versions
// has a value for fd (of level lv) that the latest version accepts:
// required with no relevant in the latest version and in every earlier
// one, analytic there, of the same type, with codes or a range within
// the latest's. Otherwise the variable has a "not stated" category, and
// a household of an older version without the value is counted there.
func alwaysStated(fd form.Field, lv varLevel, earlier []*form.Form) bool {
	if !fd.Required || fd.Relevant != "" {
		return false
	}
	for _, e := range earlier {
		list := e.Household
		if lv == personLevel {
			list = e.Person
		}
		i := slices.IndexFunc(list, func(x form.Field) bool { return x.Name == fd.Name })
		if i < 0 {
			return false
		}
		old := list[i]
		if old.Class != form.Analytic || !old.Required || old.Relevant != "" || old.Type != fd.Type {
			return false
		}
		for _, c := range old.Codes {
			if !slices.ContainsFunc(fd.Codes, func(x form.Code) bool { return x.Code == c.Code }) {
				return false
			}
		}
		if fd.Min != nil && (old.Min == nil || *old.Min < *fd.Min) || fd.Max != nil && (old.Max == nil || *old.Max > *fd.Max) {
			return false
		}
	}
	return true
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
		v.min, v.max = lo, hi
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
		return nil, nil // strings, dates, phones, code sets: not tabulable
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

// Closed returns the class of a field of the form that is not analytic
// (identifying or operational), and false for any other name.
func (s *Schema) Closed(name string) (form.Class, bool) {
	cl, ok := s.closed[name]
	return cl, ok
}

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
// the engine tabulates submissions of that form name, of every version up
// to this one, read through this version's classes, codes and ranges.
func (s *Schema) Form() (name string, version int) { return s.form, s.version }

// Census is the form's census reference moment, in the census's time
// zone (the zero time if the form has none): ages are taken at it, and
// scheduled points are made by its days.
func (s *Schema) Census() time.Time { return s.census }

// Ages reports whether the schema has the derived age variables
// (age_group5, age): whether the form has a field with an age role.
func (s *Schema) Ages() bool { return s.birthYear != nil || s.ageField != nil }

// Catalogue returns the latest embedded catalogue of standard tables
// written for the schema's form (StandardCatalogue(s, 0)), worked out
// once: an error wrapping ErrNoCatalogue if none is, or one that does not
// check against this version of the form (a variable it names is no
// longer analytic, a grouping no longer covers the codes).
func (s *Schema) Catalogue() (*Catalogue, error) {
	s.catOnce.Do(func() { s.cat, s.catErr = StandardCatalogue(s, 0) })
	return s.cat, s.catErr
}
