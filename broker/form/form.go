// Package form holds questionnaire definitions and the strict decoder and
// validator of the submissions made with them.
//
// A form definition (JSON, versioned) lists the household fields and the
// person fields of a questionnaire. Every field has a type and a class:
// identifying (names, phone, address), analytic (sex, birth, ethnicity …) or
// operational (visit counts, who answered). The class decides how a value is
// sealed and who may ever see it again, so Split cuts a submission into one
// canonical JSON document per class and Join puts the classes a viewer may
// see back together.
//
// Submissions come from field devices and are untrusted. Decode accepts
// exactly one shape — fixed top-level keys, one household object, 1 to
// MaxPersons person objects, scalar values or flat arrays of numbers (the
// codes of a select-many answer) — and refuses everything else: unknown or
// duplicate keys, deeper nesting, trailing data, more than MaxBody bytes.
// Validate then checks every value against the form — types, ranges, code
// lists, and the form's relevant, constraint and check expressions (the
// XLSForm subset of expr.go) — and lists every problem it finds.
//
// Field values are personal data and errors end up in logs, so no error of
// this package ever contains a submitted value: problems name the field
// path and the rule only ("persons[2].sex: code not allowed"). Value has no
// way to print its content through fmt either.
//
// The embedded default form is census2019 version 1, shaped like the 2019
// Population and Housing Census of Viet Nam. Two of its choices: an unknown
// month of birth is an absent birth_month (not a magic 99 that would pollute
// numeric tables), and a phone number is 9 to 11 digits, optionally after
// +84.
package form

import (
	_ "embed"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/censusvault/censusvault/broker/internal/strictjson"
	"github.com/censusvault/censusvault/broker/untrusted"
)

// Class is the sensitivity class of a field; each class is sealed apart.
type Class string

// The classes.
const (
	Identifying Class = "identifying"
	Analytic    Class = "analytic"
	Operational Class = "operational"
)

// Classes lists every class in a fixed order.
func Classes() []Class { return []Class{Identifying, Analytic, Operational} }

func (c Class) valid() bool { return c == Identifying || c == Analytic || c == Operational }

// Field types.
const (
	TypeString  = "string"   // text up to MaxLen characters
	TypeInt     = "int"      // whole number within [Min, Max]
	TypeDecimal = "decimal"  // number within [Min, Max]
	TypeCode    = "code"     // whole number from Codes
	TypeDate    = "date"     // "YYYY-MM-DD", a real calendar date
	TypePhone   = "phone"    // 9 to 11 digits, optionally after "+84"
	TypeCodeSet = "code_set" // a JSON array of distinct codes from Codes (XLSForm select_multiple)
)

// Field roles: what the engine derives from a field, named by the form
// rather than by a field name the code knows.
const (
	RoleBirthYear  = "birth_year"  // analytic person int: year of birth (age at the census moment)
	RoleBirthMonth = "birth_month" // analytic person int 1…12, optional: month of birth
	RoleAge        = "age"         // analytic person int: completed years at the census moment
)

// Field defines one question.
type Field struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"`
	Class    Class    `json:"class"`
	Required bool     `json:"required,omitempty"`
	Codes    []Code   `json:"codes,omitempty"`   // code and code_set fields only; includes 1
	Min      *float64 `json:"min,omitempty"`     // int and decimal fields only
	Max      *float64 `json:"max,omitempty"`     // int and decimal fields only
	MaxLen   int      `json:"max_len,omitempty"` // string fields only, in characters
	Label    string   `json:"label,omitempty"`
	// Quantitative marks an analytic int or decimal field whose values
	// are amounts (floor area, a count of rooms): the only fields a table
	// may sum or average. A code, a year or a month is not one — summing
	// codes is only a way to read them back.
	Quantitative bool `json:"quantitative,omitempty"`
	// HeadCode, on the one analytic code field of the person list that
	// says who heads the household (census2019: relationship, code 1), is
	// the code that marks the head. The table engine counts the first
	// person with it under the household's record key, so that a table of
	// households and the same table of heads get the same noise. At most
	// one field of a form has it; it must be one of the field's codes.
	HeadCode *int `json:"head_code,omitempty"`
	// Relevant is an expression (the XLSForm subset of expr.go): the
	// field may have a value only where it holds, and a required field is
	// required only there.
	Relevant string `json:"relevant,omitempty"`
	// Constraint is an expression every value must satisfy; "." is the
	// value. ConstraintMessage is what the problem says (never the value).
	Constraint        string `json:"constraint,omitempty"`
	ConstraintMessage string `json:"constraint_message,omitempty"`
	// Role is what the engine derives from the field (RoleBirthYear,
	// RoleBirthMonth, RoleAge); at most one field of a form has each.
	Role string `json:"role,omitempty"`
}

// Check is a cross-field rule of a form: Expr must hold for the household
// (Scope "household": household fields only) or for every person (Scope
// "person": that person's fields and the household's). ID is stable: it
// names the rule in problems and in the JSON Schema's x-constraints.
type Check struct {
	ID      string `json:"id"`
	Scope   string `json:"scope"`
	Expr    string `json:"expr"`
	Message string `json:"message,omitempty"`
}

// Code is one answer of a code field.
type Code struct {
	Code  int    `json:"code"`
	Label string `json:"label"`
}

// Form is a questionnaire definition. Make one with Parse (or Default) and
// do not modify it afterwards: Parse prepares the lookups that Validate,
// Split and Join use from the fields as they were then.
type Form struct {
	Name      string  `json:"name"`
	Version   int     `json:"version"`
	Household []Field `json:"household"`
	Person    []Field `json:"person"`
	// CensusMoment is the census reference moment, RFC 3339 with its
	// offset (census2019: 2019-04-01T00:00:00+07:00, midnight at the
	// start of 1 April in Viet Nam). It is the project's one reference
	// date: ages are completed years at it (tables, the synthetic
	// generator), and interviews are accepted from MaxBeforeCensus before
	// it on (without one, from EarliestInterview on).
	CensusMoment string `json:"census_moment,omitempty"`
	// Title is the form's human name (XLSForm settings form_title).
	Title string `json:"title,omitempty"`
	// Checks are the form's cross-field rules.
	Checks []Check `json:"checks,omitempty"`

	c *compiled
}

// Limits on a form definition.
const (
	MaxFields     = 100     // fields per list (household, person)
	MaxCodes      = 1000    // codes per code field
	MaxCodeValue  = 9999    // largest code
	MaxStringLen  = 1000    // largest max_len, in characters
	maxDefinition = 1 << 20 // bytes of definition JSON
	maxLabel      = 300     // bytes of a label
	maxBound      = 1e15    // |min|, |max|: well inside float64's exact integers
	maxVersion    = 1_000_000
	maxNameLen    = 64
)

//go:embed census2019.json
var census2019 []byte

// Default returns the built-in census2019 version 1 form. Each call returns
// a new Form.
func Default() *Form {
	f, err := Parse(census2019)
	if err != nil {
		// The embedded file is tested; this cannot happen in a build that
		// passed its tests.
		panic("form: embedded census2019.json is invalid: " + err.Error())
	}
	return f
}

// Parse reads a form definition and checks it: unknown keys and trailing
// data are refused; names are [a-z][a-z0-9_]* and unique within their list;
// types and classes are known; code and code_set fields have 1…MaxCodes
// distinct codes in 0…MaxCodeValue including 1; int and decimal fields have
// min ≤ max (whole numbers for int); string fields have a max_len of
// 1…MaxStringLen; only analytic int and decimal fields with a range are
// quantitative; at most one field, an analytic code field of the person
// list, has a head_code, and it is one of its codes; roles are only on
// analytic int person fields, one field per role (compileRoles); every
// relevant, constraint and check parses and type-checks in its scope
// (expr.go), relevants depend on each other in no circle, and check ids
// are unique names; no field carries a setting that its type does not use.
func Parse(b []byte) (*Form, error) {
	if len(b) > maxDefinition {
		return nil, fmt.Errorf("form definition larger than %d bytes", maxDefinition)
	}
	var f Form
	if err := strictjson.Decode(b, &f); err != nil {
		return nil, fmt.Errorf("failed to parse form definition: %w", err)
	}
	c, err := compile(&f)
	if err != nil {
		return nil, err
	}
	f.c = c
	return &f, nil
}

// Registry holds the forms a vault accepts, by name and version.
type Registry struct {
	forms map[formKey]*Form
}

type formKey struct {
	name    string
	version int
}

// NewRegistry checks the forms and indexes them; a (name, version) may
// appear only once.
func NewRegistry(forms ...*Form) (*Registry, error) {
	r := &Registry{forms: make(map[formKey]*Form, len(forms))}
	for i, f := range forms {
		if f == nil {
			return nil, fmt.Errorf("form registry: form %d is nil", i)
		}
		if _, err := f.rules(); err != nil {
			return nil, err
		}
		k := formKey{f.Name, f.Version}
		if _, dup := r.forms[k]; dup {
			return nil, fmt.Errorf("form registry: %s version %d given twice", f.Name, f.Version)
		}
		r.forms[k] = f
	}
	return r, nil
}

// Get returns the form with this name and version.
func (r *Registry) Get(name string, version int) (*Form, bool) {
	if r == nil {
		return nil, false
	}
	f, ok := r.forms[formKey{name, version}]
	return f, ok
}

// kind is a field type, resolved once.
type kind uint8

const (
	kString kind = iota + 1
	kInt
	kDecimal
	kCode
	kDate
	kPhone
	kCodeSet
)

func kindOf(typ string) (kind, bool) {
	switch typ {
	case TypeString:
		return kString, true
	case TypeInt:
		return kInt, true
	case TypeDecimal:
		return kDecimal, true
	case TypeCode:
		return kCode, true
	case TypeDate:
		return kDate, true
	case TypePhone:
		return kPhone, true
	case TypeCodeSet:
		return kCodeSet, true
	}
	return 0, false
}

// rule is a Field prepared for checking.
type rule struct {
	name     string
	kind     kind
	class    Class
	required bool
	min, max float64 // decimal
	minI     int64   // int
	maxI     int64
	maxLen   int
	codes    []bool     // code, code_set: codes[c] reports whether c is allowed
	x        *ruleExprs // nil for the many fields with neither relevant nor constraint
}

// ruleExprs are a field's expressions; relevant or constraint is nil
// where the field has none.
type ruleExprs struct {
	relevant   *expr
	constraint *expr
	message    string // the problem a failed constraint gives
}

// relevant returns the field's relevant, or nil.
func (r *rule) relevant() *expr {
	if r.x == nil {
		return nil
	}
	return r.x.relevant
}

// boundText writes a decimal bound in the shortest form that reads back
// as it: what the JSON Schema says and the validator compares with.
func boundText(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

type fieldSet struct {
	rules  []rule         // in definition order, the order problems are listed in
	index  map[string]int // name → rules index
	sorted []int          // rules indexes by name, the order of canonical JSON
}

type compiled struct {
	name      string
	version   int
	earliest  time.Time // interviewed_at may not be before
	moment    time.Time // the census moment; zero without one
	household fieldSet
	person    fieldSet
	headField string // the person field with a head_code, or ""
	headCode  int
	roles     map[string]string // role → person field
	checks    []check
}

// check is a Check prepared for evaluation.
type check struct {
	id      string
	person  bool
	expr    *expr
	problem string // "check <id>: <message>"
}

// rules returns the prepared form, preparing (and checking) it now if f was
// not made by Parse.
func (f *Form) rules() (*compiled, error) {
	if f == nil {
		return nil, errors.New("form: nil form")
	}
	if f.c != nil {
		return f.c, nil
	}
	return compile(f)
}

// Census returns the census reference moment (CensusMoment), in the
// offset the form gives it, and false for a form without one (or one
// that does not parse: Parse refuses those).
func (f *Form) Census() (time.Time, bool) {
	c, err := f.rules()
	if err != nil || c.moment.IsZero() {
		return time.Time{}, false
	}
	return c.moment, true
}

func compile(f *Form) (*compiled, error) {
	if !validName(f.Name) {
		return nil, fmt.Errorf("form: name %q must be 1 to %d of a-z 0-9 _ starting with a letter", clipName(f.Name), maxNameLen)
	}
	if f.Version < 1 || f.Version > maxVersion {
		return nil, fmt.Errorf("form %s: version must be between 1 and %d", f.Name, maxVersion)
	}
	c := &compiled{name: f.Name, version: f.Version, earliest: EarliestInterview}
	if f.CensusMoment != "" {
		d, err := time.Parse(time.RFC3339, f.CensusMoment)
		if err != nil || d.Before(EarliestInterview) || d.Year() > 2100 {
			return nil, fmt.Errorf("form %s: census_moment must be an RFC 3339 time with its offset, from 2000 to 2100 (e.g. 2019-04-01T00:00:00+07:00)", f.Name)
		}
		c.moment = d
		c.earliest = d.Add(-MaxBeforeCensus)
	}
	var err error
	if c.household, err = compileSet(f, "household", f.Household); err != nil {
		return nil, err
	}
	if c.person, err = compileSet(f, "person", f.Person); err != nil {
		return nil, err
	}
	for _, fd := range f.Person {
		if fd.HeadCode != nil {
			if c.headField != "" {
				return nil, fmt.Errorf("form %s: person fields %q and %q both have a head_code: mark the head in one field", f.Name, c.headField, fd.Name)
			}
			c.headField, c.headCode = fd.Name, *fd.HeadCode
		}
	}
	if len(f.Title) > maxLabel || !utf8.ValidString(f.Title) {
		return nil, fmt.Errorf("form %s: title must be valid UTF-8 of at most %d bytes", f.Name, maxLabel)
	}
	if err := c.compileRoles(f); err != nil {
		return nil, err
	}
	if err := c.compileExprs(f); err != nil {
		return nil, err
	}
	return c, nil
}

// compileRoles checks the fields' roles: roles only on analytic int
// fields of the person list (compileSet), at most one field per role,
// either a birth year (with an optional birth month) or an age, a birth
// month within 1…12 and an age not below 0.
func (c *compiled) compileRoles(f *Form) error {
	c.roles = map[string]string{}
	for i, fd := range f.Person {
		if fd.Role == "" {
			continue
		}
		if prev, dup := c.roles[fd.Role]; dup {
			return fmt.Errorf("form %s: person field %q: role %s is already on field %q: give it to one field", f.Name, fd.Name, fd.Role, prev)
		}
		c.roles[fd.Role] = fd.Name
		r := &c.person.rules[i]
		switch fd.Role {
		case RoleBirthMonth:
			if r.minI < 1 || r.maxI > 12 {
				return fmt.Errorf("form %s: person field %q: role birth_month needs min and max within 1 and 12", f.Name, fd.Name)
			}
		case RoleAge:
			if r.minI < 0 {
				return fmt.Errorf("form %s: person field %q: role age needs a min of 0 or more", f.Name, fd.Name)
			}
		}
	}
	_, by := c.roles[RoleBirthYear]
	_, bm := c.roles[RoleBirthMonth]
	_, age := c.roles[RoleAge]
	switch {
	case by && age:
		return fmt.Errorf("form %s: person field %q has role age and field %q role birth_year: give a form one or the other, not both", f.Name, c.roles[RoleAge], c.roles[RoleBirthYear])
	case bm && !by:
		return fmt.Errorf("form %s: person field %q has role birth_month but no field has role birth_year", f.Name, c.roles[RoleBirthMonth])
	}
	return nil
}

// compileExprs parses every relevant, constraint and check of the form,
// once both field lists are known: a person field's expressions may name
// person and household fields, a household field's only household fields.
func (c *compiled) compileExprs(f *Form) error {
	lists := []struct {
		name   string
		fields []Field
		fs     *fieldSet
		outer  *fieldSet
		other  *fieldSet
	}{
		{"household", f.Household, &c.household, nil, &c.person},
		{"person", f.Person, &c.person, &c.household, nil},
	}
	for _, l := range lists {
		for i := range l.fields {
			fd, r := &l.fields[i], &l.fs.rules[i]
			if fd.Relevant != "" || fd.Constraint != "" {
				r.x = &ruleExprs{}
			}
			if fd.Relevant != "" {
				e, err := parseExpr(fd.Relevant, &exprScope{self: l.fs, outer: l.outer, other: l.other, notSelf: fd.Name})
				if err != nil {
					return fmt.Errorf("form %s: %s field %q: relevant: %w", f.Name, l.name, fd.Name, err)
				}
				r.x.relevant = e
			}
			if fd.Constraint != "" {
				e, err := parseExpr(fd.Constraint, &exprScope{self: l.fs, outer: l.outer, other: l.other, dot: r})
				if err != nil {
					return fmt.Errorf("form %s: %s field %q: constraint: %w", f.Name, l.name, fd.Name, err)
				}
				r.x.constraint = e
				r.x.message = "constraint not met"
				if fd.ConstraintMessage != "" {
					r.x.message = fd.ConstraintMessage
				}
			}
		}
		if err := relevantCircle(f.Name, l.name, l.fs); err != nil {
			return err
		}
	}
	if len(f.Checks) > MaxChecks {
		return fmt.Errorf("form %s: more than %d checks", f.Name, MaxChecks)
	}
	ids := make(map[string]bool, len(f.Checks))
	for i, ck := range f.Checks {
		if !validName(ck.ID) {
			return fmt.Errorf("form %s: check %d: id must be 1 to %d of a-z 0-9 _ starting with a letter", f.Name, i+1, maxNameLen)
		}
		fail := func(format string, args ...any) error {
			return fmt.Errorf("form %s: check %q: %s", f.Name, ck.ID, fmt.Sprintf(format, args...))
		}
		if ids[ck.ID] {
			return fail("id given twice")
		}
		ids[ck.ID] = true
		if len(ck.Message) > maxLabel || !utf8.ValidString(ck.Message) {
			return fail("message must be valid UTF-8 of at most %d bytes", maxLabel)
		}
		sc := &exprScope{self: &c.household, other: &c.person}
		switch ck.Scope {
		case "household":
		case "person":
			sc = &exprScope{self: &c.person, outer: &c.household}
		default:
			return fail("scope must be household or person")
		}
		if ck.Expr == "" {
			return fail("expr is required")
		}
		e, err := parseExpr(ck.Expr, sc)
		if err != nil {
			return fail("expr: %v", err)
		}
		if len(e.refs) == 0 {
			return fail("expr names no field")
		}
		msg := ck.Message
		if msg == "" {
			msg = "not met"
		}
		c.checks = append(c.checks, check{id: ck.ID, person: ck.Scope == "person", expr: e, problem: "check " + ck.ID + ": " + msg})
	}
	return nil
}

// relevantCircle refuses relevants that depend on each other in a circle
// (a's relevant names b, b's names a): XLSForm tools refuse them, and
// whether either field may have a value would depend on the order of
// reading.
func relevantCircle(form, list string, fs *fieldSet) error {
	const (
		unseen = iota
		open
		done
	)
	state := make([]uint8, len(fs.rules))
	var visit func(i int) error
	visit = func(i int) error {
		switch state[i] {
		case open:
			return fmt.Errorf("form %s: %s field %q: its relevant depends on itself through other fields' relevant", form, list, fs.rules[i].name)
		case done:
			return nil
		}
		state[i] = open
		if e := fs.rules[i].relevant(); e != nil {
			for _, r := range e.refs {
				if j, ok := fs.index[r.name]; ok && !r.outer {
					if err := visit(j); err != nil {
						return err
					}
				}
			}
		}
		state[i] = done
		return nil
	}
	for i := range fs.rules {
		if err := visit(i); err != nil {
			return err
		}
	}
	return nil
}

// RoleField returns the person field with the role (RoleBirthYear,
// RoleBirthMonth, RoleAge), and false if no field has it (or the form does
// not check: Parse refuses those). Tables derive ages from these fields,
// never from field names: an age field as it is, a birth year (and month)
// as completed years at the census moment (Census; a form without one has
// no ages to derive).
func (f *Form) RoleField(role string) (string, bool) {
	c, err := f.rules()
	if err != nil {
		return "", false
	}
	name, ok := c.roles[role]
	return name, ok
}

// Head returns the person field and code that mark the household head
// (HeadCode), and false for a form without one (or one that does not
// check: Parse refuses those).
func (f *Form) Head() (field string, code int, ok bool) {
	c, err := f.rules()
	if err != nil || c.headField == "" {
		return "", 0, false
	}
	return c.headField, c.headCode, true
}

func compileSet(f *Form, list string, fields []Field) (fieldSet, error) {
	var fs fieldSet
	if len(fields) == 0 {
		return fs, fmt.Errorf("form %s: no %s fields", f.Name, list)
	}
	if len(fields) > MaxFields {
		return fs, fmt.Errorf("form %s: more than %d %s fields", f.Name, MaxFields, list)
	}
	fs.index = make(map[string]int, len(fields))
	for i := range fields {
		fd := &fields[i]
		fail := func(format string, args ...any) error {
			return fmt.Errorf("form %s: %s field %q: %s", f.Name, list, clipName(fd.Name), fmt.Sprintf(format, args...))
		}
		if !validName(fd.Name) {
			return fs, fail("name must be 1 to %d of a-z 0-9 _ starting with a letter", maxNameLen)
		}
		if _, dup := fs.index[fd.Name]; dup {
			return fs, fail("defined twice")
		}
		k, ok := kindOf(fd.Type)
		if !ok {
			return fs, fail("unknown type %q", clipName(fd.Type))
		}
		if !fd.Class.valid() {
			return fs, fail("unknown class %q (want identifying, analytic or operational)", clipName(string(fd.Class)))
		}
		if len(fd.Label) > maxLabel || !utf8.ValidString(fd.Label) {
			return fs, fail("label must be valid UTF-8 of at most %d bytes", maxLabel)
		}
		r := rule{name: fd.Name, kind: k, class: fd.Class, required: fd.Required}
		hasRange := fd.Min != nil || fd.Max != nil
		switch k {
		case kString:
			if fd.MaxLen < 1 || fd.MaxLen > MaxStringLen {
				return fs, fail("max_len must be between 1 and %d", MaxStringLen)
			}
			r.maxLen = fd.MaxLen
		case kInt, kDecimal:
			if fd.Min == nil || fd.Max == nil {
				return fs, fail("min and max are required for a %s field", fd.Type)
			}
			lo, hi := *fd.Min, *fd.Max
			if math.IsNaN(lo) || math.IsNaN(hi) || math.Abs(lo) > maxBound || math.Abs(hi) > maxBound {
				return fs, fail("min and max must be within ±%g", float64(maxBound))
			}
			if lo > hi {
				return fs, fail("min is larger than max")
			}
			if k == kInt && (lo != math.Trunc(lo) || hi != math.Trunc(hi)) {
				return fs, fail("min and max of an int field must be whole numbers")
			}
			r.min, r.max = lo, hi
			r.minI, r.maxI = int64(lo), int64(hi)
		case kCode, kCodeSet:
			if len(fd.Codes) == 0 || len(fd.Codes) > MaxCodes {
				return fs, fail("a %s field needs 1 to %d codes", fd.Type, MaxCodes)
			}
			top := 0
			for _, cd := range fd.Codes {
				if cd.Code < 0 || cd.Code > MaxCodeValue {
					return fs, fail("code %d outside 0…%d", cd.Code, MaxCodeValue)
				}
				top = max(top, cd.Code)
			}
			r.codes = make([]bool, top+1)
			for _, cd := range fd.Codes {
				if r.codes[cd.Code] {
					return fs, fail("code %d listed twice", cd.Code)
				}
				if cd.Label == "" || len(cd.Label) > maxLabel || !utf8.ValidString(cd.Label) {
					return fs, fail("code %d needs a label of valid UTF-8, at most %d bytes", cd.Code, maxLabel)
				}
				r.codes[cd.Code] = true
			}
			if len(r.codes) < 2 || !r.codes[1] {
				return fs, fail("codes must include 1")
			}
		}
		if k != kString && fd.MaxLen != 0 {
			return fs, fail("max_len is only for string fields")
		}
		if k != kInt && k != kDecimal && hasRange {
			return fs, fail("min and max are only for int and decimal fields")
		}
		if k != kCode && k != kCodeSet && len(fd.Codes) != 0 {
			return fs, fail("codes are only for code and code_set fields")
		}
		if fd.Quantitative && (k != kInt && k != kDecimal || fd.Class != Analytic || !hasRange) {
			return fs, fail("quantitative is only for analytic int and decimal fields with min and max")
		}
		if fd.HeadCode != nil {
			switch {
			case list != "person" || k != kCode || fd.Class != Analytic:
				return fs, fail("head_code is only for an analytic code field of the person list")
			case *fd.HeadCode < 0 || *fd.HeadCode >= len(r.codes) || !r.codes[*fd.HeadCode]:
				return fs, fail("head_code must be one of the field's codes")
			}
		}
		switch fd.Role {
		case "":
		case RoleBirthYear, RoleBirthMonth, RoleAge:
			if list != "person" || k != kInt || fd.Class != Analytic {
				return fs, fail("role %s is only for an analytic int field of the person list", fd.Role)
			}
		default:
			return fs, fail("unknown role %q (want birth_year, birth_month or age)", clipName(fd.Role))
		}
		for _, x := range []struct{ what, s string }{{"relevant", fd.Relevant}, {"constraint", fd.Constraint}} {
			if len(x.s) > MaxExprLen {
				return fs, fail("%s longer than %d bytes", x.what, MaxExprLen)
			}
		}
		if fd.ConstraintMessage != "" && fd.Constraint == "" {
			return fs, fail("constraint_message without a constraint")
		}
		if len(fd.ConstraintMessage) > maxLabel || !utf8.ValidString(fd.ConstraintMessage) {
			return fs, fail("constraint_message must be valid UTF-8 of at most %d bytes", maxLabel)
		}
		fs.index[fd.Name] = len(fs.rules)
		fs.rules = append(fs.rules, r)
	}
	fs.sorted = make([]int, len(fs.rules))
	for i := range fs.sorted {
		fs.sorted[i] = i
	}
	sort.Slice(fs.sorted, func(a, b int) bool { return fs.rules[fs.sorted[a]].name < fs.rules[fs.sorted[b]].name })
	return fs, nil
}

// validName reports whether s is [a-z][a-z0-9_]{0,63}: the grammar of form
// and field names. Only names in this grammar are ever quoted in an error.
func validName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// clipName bounds a definition string quoted in an error (definitions come
// from administrators, not devices, but a wrong file should still give a
// short message).
func clipName(s string) string { return untrusted.Clip(s, maxNameLen) }
