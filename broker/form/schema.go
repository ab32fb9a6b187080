package form

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// SchemaDialect is the JSON Schema draft that JSONSchema writes.
const SchemaDialect = "https://json-schema.org/draft/2020-12/schema"

// Patterns of the schema. They use only what ECMA-262 (the dialect JSON
// Schema names) and Go's RE2 read alike: anchors, classes with \xHH
// escapes and literal characters, groups, alternation and counted
// repetition.
const (
	// patUUID is what Decode takes for id and supersedes: 36 characters,
	// hex in either case, dashes in place (the nil UUID is refused by a
	// "not").
	patUUID = `^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`
	nilUUID = "00000000-0000-0000-0000-000000000000"
	// patArea is validAreaCode.
	patArea = `^[A-Za-z0-9._-]{1,32}$`
	// patPhone is validPhone.
	patPhone = `^(\+84)?[0-9]{9,11}$`
	// patDate is time.DateOnly as time.Parse reads it, but for the
	// length of each month (x-constraint date-calendar).
	patDate = `^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$`
	// patTime is a superset of what time.Parse(time.RFC3339) takes: it
	// reads a one-digit hour and a fraction after a comma too; the month's
	// length and the offset's range are x-constraint interviewed-at-time.
	patTime = `^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01]?[0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.,][0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`
	// maxTimeText is Decode's bound on interviewed_at (ASCII: bytes are
	// characters).
	maxTimeText = 64
)

// patText is a string field's rule in rule.check: no control character
// (unicode.IsControl: U+0000–U+001F, U+007F–U+009F) and at least one
// character that is not a space (unicode.IsSpace beyond the controls:
// U+0020, U+00A0, U+1680, U+2000–U+200A, U+2028, U+2029, U+202F, U+205F,
// U+3000). The spaces above U+00FF are literal characters here; the JSON
// writer escapes them.
const (
	notControl = `[^\x00-\x1f\x7f-\x9f]`
	notSpace   = "[^\\x00-\\x20\\x7f-\\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
	patText    = "^" + notControl + "*" + notSpace + notControl + "*$"
)

// schema is one JSON Schema object; fields are written in this order, and
// only the keywords the submission needs exist.
type schema struct {
	Dialect              string       `json:"$schema,omitempty"`
	Title                string       `json:"title,omitempty"`
	Description          string       `json:"description,omitempty"`
	Type                 any          `json:"type,omitempty"` // a string or a list of them
	Const                any          `json:"const,omitempty"`
	Enum                 []any        `json:"enum,omitempty"`
	Not                  *schema      `json:"not,omitempty"`
	Minimum              json.Number  `json:"minimum,omitempty"`
	Maximum              json.Number  `json:"maximum,omitempty"`
	MinLength            *int         `json:"minLength,omitempty"`
	MaxLength            *int         `json:"maxLength,omitempty"`
	Pattern              string       `json:"pattern,omitempty"`
	Properties           properties   `json:"properties,omitempty"`
	Required             []string     `json:"required,omitempty"`
	AdditionalProperties any          `json:"additionalProperties,omitempty"` // false or a *schema
	Items                *schema      `json:"items,omitempty"`
	MinItems             *int         `json:"minItems,omitempty"`
	MaxItems             *int         `json:"maxItems,omitempty"`
	UniqueItems          bool         `json:"uniqueItems,omitempty"`
	Constraints          []Constraint `json:"x-constraints,omitempty"`
}

// properties keeps the definition's order of fields (a map would be
// written sorted, away from the questionnaire's order).
type properties []property

type property struct {
	name string
	s    *schema
}

func (ps properties) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(p.name)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(p.s)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Constraint is a rule Validate (or Decode) applies that the JSON Schema
// of JSONSchema cannot express: a device that validates against the schema
// must check these too, or expect the vault to refuse what breaks them.
type Constraint struct {
	// ID is stable across versions of this package; new rules get new ids.
	ID string `json:"id"`
	// Where lists the values the rule reads, as JSON Pointers into the
	// submission in which "*" stands for every index of persons; empty
	// for the document as a whole.
	Where []string `json:"where,omitempty"`
	// Description says the rule in English.
	Description string `json:"description"`
	// Expr is the form's expression (relevant, constraint and check
	// rules), in the XLSForm subset of the form package: ${name} is the
	// field of that name (in a person's rule, the person's field, else
	// the household's), "." the value being checked, and a comparison
	// involving an absent value is false.
	Expr string `json:"expr,omitempty"`
}

// The ids of the x-constraints.
const (
	ConstraintStrictJSON     = "strict-json"
	ConstraintIntegerLiteral = "integer-literal"
	ConstraintDateCalendar   = "date-calendar"
	ConstraintTimeCalendar   = "interviewed-at-time"
	ConstraintTimeEarliest   = "interviewed-at-earliest"
	ConstraintTimeFuture     = "interviewed-at-future"
	ConstraintSupersedesNot  = "supersedes-not-id"

	// The form's own rules: "relevant:household/<field>",
	// "relevant:persons/<field>", "constraint:household/<field>",
	// "constraint:persons/<field>" and "check:<check id>".
	ConstraintRelevantPrefix   = "relevant:"
	ConstraintConstraintPrefix = "constraint:"
	ConstraintCheckPrefix      = "check:"
)

func intp(n int) *int { return &n }

// JSONSchema returns a JSON Schema (draft 2020-12) of a submission to f as
// Decode and Validate read it: the schema accepts every submission they
// accept, and refuses what they refuse wherever JSON Schema can say so —
// types, required fields, code lists and sets, ranges, lengths, the
// patterns of ids, dates and phone numbers, unknown keys. The rules it
// cannot say (strict JSON, integers written without fraction or exponent,
// real calendar dates, the interview window around the census moment, a
// correction naming another submission, and the form's relevant,
// constraint and check expressions) are listed, each with a stable id, in
// its "x-constraints" member (Constraints). A field with a relevant is
// never in "required": it must be absent where its relevant does not hold.
//
// The output is ASCII (other characters are \u escapes) and the same bytes
// for the same definition. Labels of the form become titles; no value of
// any submission is in it.
func (f *Form) JSONSchema() ([]byte, error) {
	c, err := f.rules()
	if err != nil {
		return nil, err
	}
	uuid := func(nullable bool) *schema {
		s := &schema{Type: "string", Pattern: patUUID, Not: &schema{Const: nilUUID}}
		if nullable {
			s.Type = []string{"string", "null"}
		}
		return s
	}
	root := &schema{
		Dialect:     SchemaDialect,
		Title:       fmt.Sprintf("%s version %d submission", c.name, c.version),
		Description: "One household questionnaire as a device deposits it, before encryption. A device must also check the rules listed in x-constraints.",
		Type:        "object",
		Properties: properties{
			{"id", uuid(false)},
			{"form", &schema{Const: c.name}},
			{"form_version", &schema{Const: c.version}},
			{"area", &schema{Type: "string", Pattern: patArea}},
			{"household_no", &schema{Type: "integer", Minimum: "1", Maximum: json.Number(strconv.Itoa(maxHouseholdNo))}},
			{"interviewed_at", &schema{Type: "string", MaxLength: intp(maxTimeText), Pattern: patTime}},
			{"supersedes", uuid(true)},
			{"household", c.household.schema(fieldsOf(f, "household", &c.household))},
			{"persons", &schema{Type: "array", MinItems: intp(1), MaxItems: intp(MaxPersons), Items: c.person.schema(fieldsOf(f, "person", &c.person))}},
		},
		Required:             []string{"id", "form", "form_version", "area", "household_no", "interviewed_at", "household", "persons"},
		AdditionalProperties: false,
		Constraints:          c.constraints(),
	}
	b, err := json.Marshal(root)
	if err != nil {
		return nil, fmt.Errorf("failed to write the JSON Schema of form %s: %w", c.name, err)
	}
	return asciiJSON(b), nil
}

// fieldsOf returns the list's Fields for their labels; a Form changed
// after Parse (which its doc forbids) gets no labels rather than wrong ones.
func fieldsOf(f *Form, list string, fs *fieldSet) []Field {
	fields := f.Household
	if list == "person" {
		fields = f.Person
	}
	if len(fields) != len(fs.rules) {
		return make([]Field, len(fs.rules))
	}
	return fields
}

// schema is the JSON Schema of a household or person object: its fields
// and nothing else, even with null (Validate refuses a key that is no
// field whatever its value).
func (fs *fieldSet) schema(fields []Field) *schema {
	s := &schema{
		Type:                 "object",
		AdditionalProperties: false,
	}
	for i := range fs.rules {
		r := &fs.rules[i]
		s.Properties = append(s.Properties, property{r.name, r.schema(fields[i].Label)})
		if r.required && r.relevant() == nil {
			s.Required = append(s.Required, r.name)
		}
	}
	return s
}

// schema is the JSON Schema of one field's value; an optional field may be
// null (absent).
func (r *rule) schema(label string) *schema {
	s := &schema{Title: label}
	required := r.required && r.relevant() == nil
	typ := func(t string) {
		if required {
			s.Type = t
		} else {
			s.Type = []string{t, "null"}
		}
	}
	switch r.kind {
	case kString:
		typ("string")
		s.MinLength, s.MaxLength, s.Pattern = intp(1), intp(r.maxLen), patText
	case kInt:
		typ("integer")
		s.Minimum = json.Number(strconv.FormatInt(r.minI, 10))
		s.Maximum = json.Number(strconv.FormatInt(r.maxI, 10))
	case kDecimal:
		typ("number")
		s.Minimum, s.Maximum = json.Number(boundText(r.min)), json.Number(boundText(r.max))
	case kCode:
		for code, ok := range r.codes {
			if ok {
				s.Enum = append(s.Enum, code)
			}
		}
		if !required {
			s.Enum = append(s.Enum, nil)
		}
	case kCodeSet:
		typ("array")
		items := &schema{}
		for code, ok := range r.codes {
			if ok {
				items.Enum = append(items.Enum, code)
			}
		}
		s.Items, s.UniqueItems = items, true
		s.MinItems, s.MaxItems = intp(1), intp(len(items.Enum))
	case kDate:
		typ("string")
		s.Pattern = patDate
	case kPhone:
		typ("string")
		s.Pattern = patPhone
	}
	return s
}

// constraints lists the rules of Decode and Validate that the schema does
// not express, for this form's fields.
func (c *compiled) constraints() []Constraint {
	var ints, dates []string
	ints = append(ints, "/form_version", "/household_no")
	for _, set := range []struct {
		at string
		fs *fieldSet
	}{{"/household/", &c.household}, {"/persons/*/", &c.person}} {
		for _, r := range set.fs.rules {
			switch r.kind {
			case kInt, kCode:
				ints = append(ints, set.at+r.name)
			case kCodeSet:
				ints = append(ints, set.at+r.name+"/*")
			case kDate:
				dates = append(dates, set.at+r.name)
			}
		}
	}
	cs := []Constraint{{
		ID: ConstraintStrictJSON,
		Description: fmt.Sprintf("The body is one JSON object of at most %d bytes in valid UTF-8, with no duplicate key at any level, no unpaired surrogate escape and nothing after it; every string is at most %d bytes and every number literal at most %d characters.",
			MaxBody, MaxString, maxNumber),
	}, {
		ID:          ConstraintIntegerLiteral,
		Where:       ints,
		Description: "Whole numbers (and the codes of a select-many answer) are written with digits only (and an optional minus): 2 is accepted, 2.0 and 2e0 are refused although JSON Schema counts them as integers.",
	}}
	if len(dates) > 0 {
		cs = append(cs, Constraint{
			ID:          ConstraintDateCalendar,
			Where:       dates,
			Description: "A date exists in the calendar: its day is within its month's length (29 February only in a leap year).",
		})
	}
	earliest := c.earliest.Format(time.RFC3339)
	why := "a form without a census moment"
	if !c.moment.IsZero() {
		why = fmt.Sprintf("%d days before the census moment %s", int(MaxBeforeCensus/(24*time.Hour)), c.moment.Format(time.RFC3339))
	}
	cs = append(cs, Constraint{
		ID:          ConstraintTimeCalendar,
		Where:       []string{"/interviewed_at"},
		Description: "interviewed_at is an RFC 3339 time that Go's time.Parse(time.RFC3339) reads: its day exists in its month and its UTC offset is within what that reader takes (hours up to 24).",
	}, Constraint{
		ID:          ConstraintTimeEarliest,
		Where:       []string{"/interviewed_at"},
		Description: fmt.Sprintf("interviewed_at is not before %s (%s).", earliest, why),
	}, Constraint{
		ID:          ConstraintTimeFuture,
		Where:       []string{"/interviewed_at"},
		Description: fmt.Sprintf("interviewed_at is at most %d hours after the vault's clock when it validates the deposit.", int(MaxFuture/time.Hour)),
	}, Constraint{
		ID:          ConstraintSupersedesNot,
		Where:       []string{"/supersedes", "/id"},
		Description: "supersedes, when set, is not the submission's own id (compared ignoring the case of hex digits).",
	})
	return append(cs, c.exprConstraints()...)
}

// exprConstraints lists the form's relevant, constraint and check rules,
// in the form's order.
func (c *compiled) exprConstraints() []Constraint {
	var cs []Constraint
	pointer := func(person bool, r fieldRef) string {
		if person && !r.outer {
			return "/persons/*/" + r.name
		}
		return "/household/" + r.name
	}
	where := func(person bool, self string, e *expr) []string {
		w := []string{}
		if self != "" {
			w = append(w, pointer(person, fieldRef{name: self}))
		}
		for _, r := range e.refs {
			if p := pointer(person, r); len(w) == 0 || p != w[0] {
				w = append(w, p)
			}
		}
		return w
	}
	for _, set := range []struct {
		list   string
		person bool
		fs     *fieldSet
	}{{"household", false, &c.household}, {"persons", true, &c.person}} {
		for i := range set.fs.rules {
			r := &set.fs.rules[i]
			path := set.list + "/" + r.name
			if r.x != nil && r.x.relevant != nil {
				d := fmt.Sprintf("The field %s may have a value only where this expression holds", path)
				if r.required {
					d += ", and must have one there"
				}
				cs = append(cs, Constraint{
					ID:          ConstraintRelevantPrefix + path,
					Where:       where(set.person, r.name, r.x.relevant),
					Description: d + ".",
					Expr:        r.x.relevant.src,
				})
			}
			if r.x != nil && r.x.constraint != nil {
				cs = append(cs, Constraint{
					ID:          ConstraintConstraintPrefix + path,
					Where:       where(set.person, r.name, r.x.constraint),
					Description: fmt.Sprintf("Every value of %s (\".\" in the expression) satisfies this expression; if not, the problem says: %s", path, r.x.message),
					Expr:        r.x.constraint.src,
				})
			}
		}
	}
	for _, ck := range c.checks {
		scope := "the household"
		if ck.person {
			scope = "every person (with the household's fields)"
		}
		cs = append(cs, Constraint{
			ID:          ConstraintCheckPrefix + ck.id,
			Where:       where(ck.person, "", ck.expr),
			Description: fmt.Sprintf("This expression holds for %s, or every field it names is absent; if not, the problem says: %s", scope, ck.problem),
			Expr:        ck.expr.src,
		})
	}
	return cs
}

// asciiJSON rewrites every character above U+007E of JSON text as a \u
// escape (a pair for those beyond the BMP): they can only be inside
// strings, so the value is unchanged and the bytes are ASCII.
func asciiJSON(b []byte) []byte {
	const hex = "0123456789abcdef"
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		if b[i] < 0x7f {
			out = append(out, b[i])
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		i += n
		units := []rune{r}
		if r > 0xffff {
			r1, r2 := utf16.EncodeRune(r)
			units = []rune{r1, r2}
		}
		for _, u := range units {
			out = append(out, '\\', 'u', hex[u>>12&0xf], hex[u>>8&0xf], hex[u>>4&0xf], hex[u&0xf])
		}
	}
	return out
}
