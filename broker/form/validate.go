package form

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrInvalid matches every *Error with errors.Is.
var ErrInvalid = errors.New("invalid submission")

// Error lists what is wrong with a submission. Problems name a field path
// and a rule, never a submitted value: values are personal data and errors
// end up in logs.
type Error struct {
	Problems []string
}

func (e *Error) Error() string {
	return "invalid submission: " + strings.Join(e.Problems, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// MaxProblems is how many problems Validate lists before it stops looking.
const MaxProblems = 20

// MaxFuture is how far after the validating clock interviewed_at may be:
// device clocks drift and time zones are easy to get wrong, but a date in
// next month is a broken device.
const MaxFuture = 24 * time.Hour

// MaxBeforeCensus is how long before a form's census date an interview
// may be: enumeration of remote areas can start weeks before the
// reference date, but a date months before it is a wrong device clock or
// a made-up record (year 0000 was accepted once).
const MaxBeforeCensus = 92 * 24 * time.Hour

// EarliestInterview is the earliest interviewed_at of a form without a
// census date.
var EarliestInterview = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Validate checks s against f with the current time; see ValidateAt.
func (f *Form) Validate(s *Submission) error { return f.ValidateAt(s, time.Now()) }

// ValidateAt checks s against f and returns an *Error listing every problem
// found, up to MaxProblems: form and version must be f's; id (and
// supersedes, if set) a canonical UUID, supersedes not id itself; area an
// area code; household_no ≥ 1; interviewed_at set, at most MaxFuture
// after now and not before MaxBeforeCensus before the form's census moment
// (EarliestInterview without one); 1 to MaxPersons persons; every key a
// field of the form (even with null); every value of its field's type,
// within its range (decimals compared exactly as written), code list or
// length, and a code_set's codes distinct; a value only where its field's
// relevant holds ("not relevant"), every required field present where it
// holds; every present value satisfying its field's constraint; every check
// of the form holding ("check <id>: <message>"). A string field must not be
// blank nor hold control characters.
func (f *Form) ValidateAt(s *Submission, now time.Time) error {
	c, err := f.rules()
	if err != nil {
		return err
	}
	if e := c.check(s, now, true); e != nil {
		return e
	}
	return nil
}

type problems struct {
	list []string
	more bool
}

func (p *problems) add(s string) {
	if len(p.list) == MaxProblems {
		p.more = true
		return
	}
	p.list = append(p.list, s)
}

func (p *problems) err() *Error {
	if len(p.list) == 0 {
		return nil
	}
	if p.more {
		p.list = append(p.list, fmt.Sprintf("more problems not listed (limit %d)", MaxProblems))
	}
	return &Error{Problems: p.list}
}

// check validates s; the time is checked only if checkTime.
func (c *compiled) check(s *Submission, now time.Time, checkTime bool) *Error {
	if s == nil {
		return problem("no submission")
	}
	var p problems
	if s.Form != c.name || s.FormVersion != c.version {
		p.add(fmt.Sprintf("form: must be %s version %d", c.name, c.version))
	}
	if id, ok := parseUUID(s.ID); !ok || id != s.ID {
		p.add("id: must be a canonical UUID")
	}
	if !validAreaCode(s.Area) {
		p.add("area: must be an area code")
	}
	if s.HouseholdNo < 1 || s.HouseholdNo > maxHouseholdNo {
		p.add(fmt.Sprintf("household_no: must be a whole number from 1 to %d", maxHouseholdNo))
	}
	switch {
	case s.InterviewedAt.IsZero():
		p.add("interviewed_at: required")
	case checkTime && s.InterviewedAt.After(now.Add(MaxFuture)):
		p.add("interviewed_at: more than a day in the future")
	case checkTime && s.InterviewedAt.Before(c.earliest):
		p.add(fmt.Sprintf("interviewed_at: before %s, too early for form %s", c.earliest.Format(time.DateOnly), c.name))
	}
	if s.Supersedes != "" {
		if id, ok := parseUUID(s.Supersedes); !ok || id != s.Supersedes {
			p.add("supersedes: must be a canonical UUID")
		} else if s.Supersedes == s.ID {
			p.add("supersedes: must not be the submission's own id")
		}
	}
	c.household.check(&p, loc{idx: -1}, s.Household, nil, s.nulls)
	switch {
	case len(s.Persons) == 0:
		p.add("persons: at least 1 person required")
	case len(s.Persons) > MaxPersons:
		p.add(fmt.Sprintf("persons: more than %d", MaxPersons))
	default:
		for i, m := range s.Persons {
			if p.more {
				break
			}
			c.person.check(&p, loc{idx: i}, m, s.Household, s.nulls)
		}
	}
	for i := range c.checks {
		ck := &c.checks[i]
		if !ck.person {
			en := env{self: s.Household}
			if !ck.expr.allAbsent(&en) && !ck.expr.holds(&en) {
				p.add(ck.problem)
			}
			continue
		}
		for j, m := range s.Persons {
			if j == MaxPersons || p.more {
				break
			}
			en := env{self: m, outer: s.Household}
			if !ck.expr.allAbsent(&en) && !ck.expr.holds(&en) {
				p.add(loc{idx: j}.path() + ": " + ck.problem)
			}
		}
	}
	return p.err()
}

// check checks the answers m of one object (hh is the household's, for a
// person's expressions); nulls are the keys of the submission given null.
func (fs *fieldSet) check(p *problems, at loc, m, hh map[string]Value, nulls []loc) {
	known := 0
	for i := range fs.rules {
		r := &fs.rules[i]
		v, ok := m[r.name]
		if ok {
			known++
		}
		if r.x != nil {
			r.checkExprs(p, at, v, m, hh)
			continue
		}
		if !ok || v.kind == vAbsent {
			if r.required {
				p.add(at.field(r.name) + ": required")
			}
			continue
		}
		if msg := r.check(v); msg != "" {
			p.add(at.field(r.name) + ": " + msg)
		}
	}
	var unknown []string
	for _, n := range nulls {
		if _, ok := fs.index[n.key]; n.idx == at.idx && !ok {
			unknown = append(unknown, n.key)
		}
	}
	if known == len(m) && len(unknown) == 0 {
		return
	}
	for k := range m {
		if _, ok := fs.index[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		// Only names in the field grammar are echoed: a key is chosen by
		// the device and could itself carry personal data.
		if validName(k) {
			p.add(at.field(k) + ": unknown field")
		} else {
			p.add(at.path() + ": unknown field (invalid name)")
		}
	}
}

// checkExprs checks the value v (absent if zero) of a field with a
// relevant or a constraint, in the object m (hh: the household, for a
// person).
func (r *rule) checkExprs(p *problems, at loc, v Value, m, hh map[string]Value) {
	present := v.kind != vAbsent
	if e := r.x.relevant; e != nil && (present || r.required) && !e.holds(&env{self: m, outer: hh}) {
		if present {
			p.add(at.field(r.name) + ": not relevant")
		}
		return
	}
	if !present {
		if r.required {
			p.add(at.field(r.name) + ": required")
		}
		return
	}
	if msg := r.check(v); msg != "" {
		p.add(at.field(r.name) + ": " + msg)
		return
	}
	if e := r.x.constraint; e != nil && !e.holds(&env{self: m, outer: hh, dot: v}) {
		p.add(at.field(r.name) + ": " + r.x.message)
	}
}

// check returns what is wrong with v for this field, or "".
func (r *rule) check(v Value) string {
	switch r.kind {
	case kString:
		t, ok := v.Text()
		if !ok {
			return "must be a string"
		}
		if !utf8.ValidString(t) {
			return "must be valid UTF-8"
		}
		n := 0
		blank := true
		for _, c := range t {
			if unicode.IsControl(c) {
				return "must not contain control characters"
			}
			if blank && !unicode.IsSpace(c) {
				blank = false
			}
			n++
		}
		if blank {
			return "must not be blank"
		}
		if n > r.maxLen {
			return fmt.Sprintf("longer than %d characters", r.maxLen)
		}
	case kInt, kCode:
		if v.kind != vNumber {
			return "must be a number"
		}
		n, ok := v.Int()
		if !ok {
			return "must be a whole number"
		}
		if r.kind == kCode {
			if n < 0 || n >= int64(len(r.codes)) || !r.codes[n] {
				return "code not allowed"
			}
		} else if n < r.minI || n > r.maxI {
			return fmt.Sprintf("must be between %d and %d", r.minI, r.maxI)
		}
	case kDecimal:
		if v.kind != vNumber {
			return "must be a number"
		}
		// Strictly inside the bounds as float64 means inside them exactly
		// (rounding to float64 keeps order); otherwise the literal is
		// compared with the bounds as written in the JSON Schema, digit by
		// digit, so that the two agree on 10000.0000000000001.
		x, _ := strconv.ParseFloat(v.text, 64) // ±Inf beyond float64
		if !(x > r.min && x < r.max) {
			lo, hi := boundText(r.min), boundText(r.max)
			if decimalCmp(v.text, lo) < 0 || decimalCmp(v.text, hi) > 0 {
				return "must be between " + lo + " and " + hi
			}
		}
	case kCodeSet:
		if v.kind != vCodes {
			return "must be an array of codes"
		}
		var seen [MaxCodeValue/64 + 1]uint64
		n := 0
		for it := (items{s: v.text}); it.next(); n++ {
			c, err := strconv.ParseInt(it.cur, 10, 64)
			if err != nil {
				return "codes must be whole numbers"
			}
			if c < 0 || c >= int64(len(r.codes)) || !r.codes[c] {
				return "code not allowed"
			}
			if seen[c/64]&(1<<(c%64)) != 0 {
				return "code given twice"
			}
			seen[c/64] |= 1 << (c % 64)
		}
		if n == 0 {
			return "must hold at least one code"
		}
	case kDate:
		t, ok := v.Text()
		if !ok {
			return "must be a string"
		}
		if len(t) != len(time.DateOnly) {
			return "must be a date (YYYY-MM-DD)"
		}
		if _, err := time.Parse(time.DateOnly, t); err != nil {
			return "must be a date (YYYY-MM-DD)"
		}
	case kPhone:
		t, ok := v.Text()
		if !ok {
			return "must be a string"
		}
		if !validPhone(t) {
			return "must be a phone number (9 to 11 digits, optionally after +84)"
		}
	}
	return ""
}

// validPhone accepts 9 to 11 digits, optionally after "+84": 0912345678,
// 02393856789, +84912345678.
func validPhone(s string) bool {
	s = strings.TrimPrefix(s, "+84")
	if len(s) < 9 || len(s) > 11 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
