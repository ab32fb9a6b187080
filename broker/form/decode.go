package form

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Limits on a submission.
const (
	MaxBody    = 1 << 20 // bytes of submission JSON
	MaxPersons = 50      // persons in one household
	// MaxString bounds one string value in bytes; a field's max_len (in
	// characters) is checked by Validate.
	MaxString = 4096

	maxVersionNo   = maxVersion
	maxHouseholdNo = 1_000_000_000
	maxAreaCode    = 32
)

// Submission is one household questionnaire as a device sent it.
type Submission struct {
	ID            string // canonical lowercase UUID, made by the device
	Form          string
	FormVersion   int
	Area          string // EA code (the broker checks it exists and is an EA)
	HouseholdNo   int64  // ≥ 1
	InterviewedAt time.Time
	Supersedes    string // UUID of the submission this one corrects, "" if none
	Household     map[string]Value
	Persons       []map[string]Value

	// nulls are the household and person keys Decode read with null
	// (absent, so not in the maps), for Validate to refuse the unknown
	// ones: a key that is no field is refused whatever its value.
	nulls []loc
}

// The top-level keys, as bits of a set.
const (
	keyID uint16 = 1 << iota
	keyForm
	keyFormVersion
	keyArea
	keyHouseholdNo
	keyInterviewedAt
	keySupersedes
	keyHousehold
	keyPersons

	requiredKeys = keyID | keyForm | keyFormVersion | keyArea | keyHouseholdNo | keyInterviewedAt | keyHousehold | keyPersons
)

var topKeys = [...]string{"id", "form", "form_version", "area", "household_no", "interviewed_at", "supersedes", "household", "persons"}

func topKey(k string) uint16 {
	for i, n := range topKeys {
		if k == n {
			return 1 << i
		}
	}
	return 0
}

// Decode reads a submission strictly. The body must be one JSON object with
// exactly the keys id, form, form_version, area, household_no,
// interviewed_at, household, persons and optionally supersedes (a UUID or
// null); household is an object and persons an array of 1…MaxPersons
// objects, whose values are JSON strings, numbers or flat arrays of at most
// MaxCodes numbers (the codes of a code_set field); null means absent.
// Unknown or duplicate keys, objects or arrays nested deeper, booleans,
// invalid UTF-8, trailing data and bodies over MaxBody bytes are refused.
// id is returned as a canonical lowercase UUID.
//
// Decode checks the shape, not the answers: Validate does that against the
// form. Errors are *Error and never contain a submitted value.
func Decode(b []byte) (*Submission, error) {
	if len(b) > MaxBody {
		return nil, problem(fmt.Sprintf("body larger than %d bytes", MaxBody))
	}
	// One copy of the body; every string without escapes is a substring of
	// it, so decoding allocates little beyond the maps.
	sc := &scanner{s: string(b)}
	s := &Submission{}
	var seen uint16
	if !sc.consume('{') {
		return nil, sc.syntax("expected '{'")
	}
	if !sc.consume('}') {
		for {
			if sc.peek() != '"' {
				return nil, sc.syntax("expected a key")
			}
			key, msg := sc.str()
			if msg != "" {
				return nil, sc.syntax(msg)
			}
			bit := topKey(key)
			if bit == 0 {
				if validName(key) {
					return nil, problem(fmt.Sprintf("unknown top-level field %q", key))
				}
				return nil, problem("unknown top-level field (invalid name)")
			}
			if seen&bit != 0 {
				return nil, problem(key + ": duplicate key")
			}
			seen |= bit
			if !sc.consume(':') {
				return nil, sc.syntax("expected ':'")
			}
			if err := sc.topValue(s, bit); err != nil {
				return nil, err
			}
			if sc.consume(',') {
				continue
			}
			if sc.consume('}') {
				break
			}
			return nil, sc.syntax("expected ',' or '}'")
		}
	}
	sc.ws()
	if sc.i != len(sc.s) {
		return nil, problem("trailing data after the submission")
	}
	s.nulls = sc.nulls
	if missing := requiredKeys &^ seen; missing != 0 {
		e := &Error{}
		for i, n := range topKeys {
			if missing&(1<<i) != 0 {
				e.Problems = append(e.Problems, n+": required")
			}
		}
		return nil, e
	}
	return s, nil
}

func (sc *scanner) topValue(s *Submission, bit uint16) *Error {
	switch bit {
	case keyHousehold:
		m, err := sc.object(loc{idx: -1})
		if err != nil {
			return err
		}
		s.Household = m
		return nil
	case keyPersons:
		ps, err := sc.persons()
		if err != nil {
			return err
		}
		s.Persons = ps
		return nil
	}

	name := topKeys[0]
	for i, n := range topKeys {
		if bit == 1<<i {
			name = n
		}
	}
	v, isNull, err := sc.scalar(loc{top: name})
	if err != nil {
		return err
	}
	text, isString := v.Text()
	switch bit {
	case keyID:
		id, ok := parseUUID(text)
		if !isString || !ok {
			return problem("id: must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, not all zero)")
		}
		s.ID = id
	case keySupersedes:
		if isNull {
			return nil
		}
		id, ok := parseUUID(text)
		if !isString || !ok {
			return problem("supersedes: must be a UUID or null")
		}
		s.Supersedes = id
	case keyForm:
		if !isString || !validName(text) {
			return problem("form: must be a form name")
		}
		s.Form = text
	case keyArea:
		if !isString || !validAreaCode(text) {
			return problem("area: must be an area code")
		}
		s.Area = text
	case keyFormVersion:
		n, ok := v.Int()
		if !ok || n < 1 || n > maxVersionNo {
			return problem(fmt.Sprintf("form_version: must be a whole number from 1 to %d", maxVersionNo))
		}
		s.FormVersion = int(n)
	case keyHouseholdNo:
		n, ok := v.Int()
		if !ok || n < 1 || n > maxHouseholdNo {
			return problem(fmt.Sprintf("household_no: must be a whole number from 1 to %d", maxHouseholdNo))
		}
		s.HouseholdNo = n
	case keyInterviewedAt:
		if !isString || len(text) > 64 {
			return problem("interviewed_at: must be an RFC 3339 time")
		}
		t, err := time.Parse(time.RFC3339, text)
		if err != nil {
			return problem("interviewed_at: must be an RFC 3339 time")
		}
		s.InterviewedAt = t
	}
	return nil
}

// parseUUID accepts only the 36-character form, in either case, and not
// the nil UUID; it returns the canonical lowercase text.
func parseUUID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	u, err := uuid.Parse(s)
	if err != nil || u == uuid.Nil {
		return "", false
	}
	return u.String(), true
}

// validAreaCode is the area package's code grammar, [A-Za-z0-9._-]{1,32}
// (repeated here so that form does not depend on area).
func validAreaCode(s string) bool {
	if len(s) == 0 || len(s) > maxAreaCode {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (sc *scanner) persons() ([]map[string]Value, *Error) {
	if !sc.consume('[') {
		return nil, problem("persons: must be an array of objects")
	}
	if sc.consume(']') {
		return nil, problem("persons: at least 1 person required")
	}
	ps := make([]map[string]Value, 0, 8)
	for {
		if len(ps) == MaxPersons {
			return nil, problem(fmt.Sprintf("persons: more than %d", MaxPersons))
		}
		m, err := sc.object(loc{idx: len(ps)})
		if err != nil {
			return nil, err
		}
		ps = append(ps, m)
		if sc.consume(',') {
			continue
		}
		if sc.consume(']') {
			return ps, nil
		}
		return nil, sc.syntax("expected ',' or ']'")
	}
}

// loc names where a value is, for errors: a top-level key, or a field of
// the household (idx -1) or of a person. It becomes a string only when there
// is an error, so the happy path builds no paths.
type loc struct {
	top string
	idx int
	key string
}

func (l loc) path() string {
	if l.top != "" {
		return l.top
	}
	base := "household"
	if l.idx >= 0 {
		base = "persons[" + strconv.Itoa(l.idx) + "]"
	}
	if l.key == "" {
		return base
	}
	return base + "." + l.key
}

func (l loc) String() string { return l.path() }

func (l loc) field(name string) string {
	l.key = name
	return l.path()
}

// object reads an object of answers; the keys given null are added to
// sc.nulls.
func (sc *scanner) object(at loc) (map[string]Value, *Error) {
	if !sc.consume('{') {
		return nil, problem(at.String() + ": must be an object")
	}
	m := make(map[string]Value, 16)
	if sc.consume('}') {
		return m, nil
	}
	var nulls map[string]bool
	for n := 0; ; n++ {
		if sc.peek() != '"' {
			return nil, sc.syntax("expected a key")
		}
		key, msg := sc.str()
		if msg != "" {
			return nil, sc.syntax(msg)
		}
		if !validName(key) {
			return nil, problem(at.String() + ": invalid field name")
		}
		if n == MaxFields {
			return nil, problem(fmt.Sprintf("%s: more than %d fields", at, MaxFields))
		}
		if _, dup := m[key]; dup || nulls[key] {
			return nil, problem(at.field(key) + ": duplicate key")
		}
		if !sc.consume(':') {
			return nil, sc.syntax("expected ':'")
		}
		v, isNull, err := sc.answer(loc{idx: at.idx, key: key})
		if err != nil {
			return nil, err
		}
		if isNull {
			if nulls == nil {
				nulls = make(map[string]bool)
			}
			nulls[key] = true
			sc.nulls = append(sc.nulls, loc{idx: at.idx, key: key})
		} else {
			m[key] = v
		}
		if sc.consume(',') {
			continue
		}
		if sc.consume('}') {
			return m, nil
		}
		return nil, sc.syntax("expected ',' or '}'")
	}
}

// scanner reads JSON from a string. It only knows the few shapes this
// package accepts, so nesting depth is bounded by construction.
type scanner struct {
	s     string
	i     int
	nulls []loc // keys of answers given null
}

func problem(p string) *Error { return &Error{Problems: []string{p}} }

func (sc *scanner) syntax(msg string) *Error {
	return problem(fmt.Sprintf("invalid JSON at byte %d: %s", sc.i, msg))
}

func (sc *scanner) ws() {
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

func (sc *scanner) peek() byte {
	sc.ws()
	if sc.i < len(sc.s) {
		return sc.s[sc.i]
	}
	return 0
}

func (sc *scanner) consume(c byte) bool {
	if sc.peek() == c && sc.i < len(sc.s) {
		sc.i++
		return true
	}
	return false
}

// answer reads a household or person value: a scalar or a flat array of
// numbers.
func (sc *scanner) answer(at loc) (v Value, isNull bool, err *Error) {
	switch sc.peek() {
	case '[':
		return sc.codes(at)
	case 't', 'f', '{':
		return Value{}, false, problem(at.path() + ": must be a string, number, null or array of numbers")
	}
	return sc.scalar(at)
}

// codes reads a flat array of at most MaxCodes numbers at sc.i, which is
// '['. The Value keeps the array's text as sent.
func (sc *scanner) codes(at loc) (Value, bool, *Error) {
	start := sc.i
	sc.i++
	if !sc.consume(']') {
		for n := 1; ; n++ {
			if n > MaxCodes {
				return Value{}, false, problem(fmt.Sprintf("%s: more than %d items", at.path(), MaxCodes))
			}
			c := sc.peek()
			if !(c == '-' || c >= '0' && c <= '9') {
				switch c {
				case '"', '[', '{', 't', 'f', 'n':
					return Value{}, false, problem(at.path() + ": an array may hold numbers (codes) only")
				}
				return Value{}, false, sc.syntax("expected a number")
			}
			end := scanNumber(sc.s, sc.i)
			if end < 0 {
				return Value{}, false, sc.syntax("invalid number")
			}
			if end-sc.i > maxNumber {
				return Value{}, false, problem(fmt.Sprintf("%s: number longer than %d characters", at.path(), maxNumber))
			}
			sc.i = end
			if sc.consume(',') {
				continue
			}
			if sc.consume(']') {
				break
			}
			return Value{}, false, sc.syntax("expected ',' or ']'")
		}
	}
	return Value{text: sc.s[start:sc.i], kind: vCodes}, false, nil
}

// scalar reads a string, a number or null (isNull).
func (sc *scanner) scalar(at loc) (v Value, isNull bool, err *Error) {
	c := sc.peek()
	switch {
	case c == '"':
		t, msg := sc.str()
		if msg != "" {
			return Value{}, false, sc.syntax(msg)
		}
		if len(t) > MaxString {
			return Value{}, false, problem(fmt.Sprintf("%s: longer than %d bytes", at.path(), MaxString))
		}
		return Value{text: t, kind: vString}, false, nil
	case c == '-' || c >= '0' && c <= '9':
		end := scanNumber(sc.s, sc.i)
		if end < 0 {
			return Value{}, false, sc.syntax("invalid number")
		}
		if end-sc.i > maxNumber {
			return Value{}, false, problem(fmt.Sprintf("%s: number longer than %d characters", at.path(), maxNumber))
		}
		v := Value{text: sc.s[sc.i:end], kind: vNumber}
		sc.i = end
		return v, false, nil
	case c == 'n':
		if strings.HasPrefix(sc.s[sc.i:], "null") {
			sc.i += 4
			return Value{}, true, nil
		}
	case c == 't' || c == 'f' || c == '{' || c == '[':
		return Value{}, false, problem(at.path() + ": must be a string, number or null")
	}
	return Value{}, false, sc.syntax("expected a value")
}

// str reads a JSON string at sc.i, which is '"'. msg is "" on success.
func (sc *scanner) str() (string, string) {
	s := sc.s
	start := sc.i + 1
	ascii := true
	for j := start; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '"':
			out := s[start:j]
			if !ascii && !utf8.ValidString(out) {
				sc.i = start
				return "", "invalid UTF-8 in a string"
			}
			sc.i = j + 1
			return out, ""
		case c == '\\':
			return sc.strEscaped(start, j)
		case c < 0x20:
			sc.i = j
			return "", "control character in a string"
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	sc.i = len(s)
	return "", "unterminated string"
}

// strEscaped continues str at the first backslash, at j.
func (sc *scanner) strEscaped(start, j int) (string, string) {
	s := sc.s
	b := make([]byte, 0, j-start+16)
	b = append(b, s[start:j]...)
	for j < len(s) {
		c := s[j]
		switch {
		case c == '"':
			if !utf8.Valid(b) {
				sc.i = start
				return "", "invalid UTF-8 in a string"
			}
			sc.i = j + 1
			return string(b), ""
		case c < 0x20:
			sc.i = j
			return "", "control character in a string"
		case c != '\\':
			b = append(b, c)
			j++
			continue
		}
		if j+1 >= len(s) {
			break
		}
		switch e := s[j+1]; e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := hex4(s, j+2)
			if !ok {
				sc.i = j
				return "", "invalid \\u escape"
			}
			j += 6
			if utf16.IsSurrogate(r) {
				// Only a high surrogate followed by a low one is a character.
				r2, ok := rune(0), false
				if r < 0xdc00 && j+1 < len(s) && s[j] == '\\' && s[j+1] == 'u' {
					r2, ok = hex4(s, j+2)
				}
				if !ok || r2 < 0xdc00 || r2 > 0xdfff {
					sc.i = j
					return "", "invalid \\u escape (unpaired surrogate)"
				}
				r = utf16.DecodeRune(r, r2)
				j += 6
			}
			b = utf8.AppendRune(b, r)
			continue
		default:
			sc.i = j
			return "", "invalid escape in a string"
		}
		j += 2
	}
	sc.i = len(s)
	return "", "unterminated string"
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// scanNumber returns the end of the JSON number starting at s[i], or -1.
func scanNumber(s string, i int) int {
	j := i
	if j < len(s) && s[j] == '-' {
		j++
	}
	digits := func() int {
		k := j
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		return j - k
	}
	switch {
	case j < len(s) && s[j] == '0':
		j++
	case digits() == 0:
		return -1
	}
	if j < len(s) && s[j] == '.' {
		j++
		if digits() == 0 {
			return -1
		}
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		j++
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if digits() == 0 {
			return -1
		}
	}
	return j
}
