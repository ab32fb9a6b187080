package tables

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// parseScratch decodes analytic parts without allocating per household:
// the cache decodes millions of them when it is built.
type parseScratch struct {
	hhIndex   map[string]int // household variable name -> column
	pIndex    map[string]int
	nh, np    int
	household []float64   // NaN: absent
	persons   [][]float64 // reused rows
	pool      [][]float64
}

func (s *parseScratch) init(sc *Schema) {
	s.hhIndex, s.pIndex = map[string]int{}, map[string]int{}
	for i, v := range sc.hhCols {
		s.hhIndex[v.name] = i
	}
	for i, v := range sc.pCols {
		s.pIndex[v.name] = i
	}
	s.nh, s.np = len(sc.hhCols), len(sc.pCols)
	s.household = make([]float64, s.nh)
}

var errSyntax = errors.New("analytic part is not canonical JSON")

// parse reads {"household":{…},"persons":[{…},…]} with number values
// (string values and arrays of codes, of fields that are not tabulated,
// are skipped). Unknown keys are ignored: they are fields that are not
// tabulable, or that the latest version of the form does not hold as
// analytic (the schema is the latest version's, the household may be of
// an older one).
func (s *parseScratch) parse(b []byte) error {
	for i := range s.household {
		s.household[i] = math.NaN()
	}
	s.persons = s.persons[:0]
	return walkAnalytic(b, func(key []byte, x float64) {
		if i, ok := s.hhIndex[string(key)]; ok {
			s.household[i] = x
		}
	}, func() func([]byte, float64) {
		row := s.row()
		return func(key []byte, x float64) {
			if i, ok := s.pIndex[string(key)]; ok {
				row[i] = x
			}
		}
	})
}

// walkAnalytic reads {"household":{…},"persons":[{…},…]}: household gets
// each number of the household object, and person is called as each
// person object starts and returns what gets that person's numbers.
func walkAnalytic(b []byte, household func([]byte, float64), person func() func([]byte, float64)) error {
	p := parser{b: b}
	p.expect(`{"household":`)
	p.object(household)
	p.expect(`,"persons":[`)
	if p.peek() != ']' {
		for p.err == nil {
			p.object(person())
			if p.peek() != ',' {
				break
			}
			p.pos++
		}
	}
	p.expect("]}")
	if p.err == nil && p.pos != len(b) {
		p.err = errSyntax
	}
	return p.err
}

func (s *parseScratch) row() []float64 {
	n := len(s.persons)
	if n == len(s.pool) {
		s.pool = append(s.pool, make([]float64, s.np))
	}
	r := s.pool[n]
	for i := range r {
		r[i] = math.NaN()
	}
	s.persons = append(s.persons, r)
	return r
}

type parser struct {
	b   []byte
	pos int
	err error
}

func (p *parser) peek() byte {
	if p.err != nil || p.pos >= len(p.b) {
		p.fail()
		return 0
	}
	return p.b[p.pos]
}

func (p *parser) fail() {
	if p.err == nil {
		p.err = fmt.Errorf("%w (at byte %d)", errSyntax, p.pos)
	}
}

func (p *parser) expect(lit string) {
	if p.err != nil {
		return
	}
	if len(p.b)-p.pos < len(lit) || string(p.b[p.pos:p.pos+len(lit)]) != lit {
		p.fail()
		return
	}
	p.pos += len(lit)
}

// object reads {"k":v,…} calling fn for each number value.
func (p *parser) object(fn func(key []byte, x float64)) {
	p.expect("{")
	if p.peek() == '}' {
		p.pos++
		return
	}
	for p.err == nil {
		key := p.str()
		p.expect(":")
		switch p.peek() {
		case '"':
			p.str()
		case '[':
			p.array()
		default:
			if x, ok := p.number(); ok {
				fn(key, x)
			}
		}
		switch p.peek() {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return
		default:
			p.fail()
		}
	}
}

// array skips a flat array of numbers: the codes of a code_set field,
// which is no table variable (multi-response tables are not built yet).
// Anything else in it is not what form.Split writes, and fails.
func (p *parser) array() {
	p.expect("[")
	if p.peek() == ']' {
		p.pos++
		return
	}
	for p.err == nil {
		p.number()
		switch p.peek() {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return
		default:
			p.fail()
		}
	}
}

// str reads a string and returns its raw bytes (escapes not decoded:
// keys are plain names, and string values are skipped).
func (p *parser) str() []byte {
	p.expect(`"`)
	start := p.pos
	for p.err == nil {
		if p.pos >= len(p.b) {
			p.fail()
			return nil
		}
		switch p.b[p.pos] {
		case '\\':
			p.pos += 2
		case '"':
			p.pos++
			return p.b[start : p.pos-1]
		default:
			p.pos++
		}
	}
	return nil
}

func (p *parser) number() (float64, bool) {
	start := p.pos
	whole, neg := true, false
	var n int64
	if p.pos < len(p.b) && p.b[p.pos] == '-' {
		neg = true
		p.pos++
	}
	for p.pos < len(p.b) {
		c := p.b[p.pos]
		switch {
		case c >= '0' && c <= '9':
			if n < 1e15 {
				n = n*10 + int64(c-'0')
			} else {
				whole = false
			}
		case c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-':
			whole = false
		default:
			goto done
		}
		p.pos++
	}
done:
	if p.pos == start || (neg && p.pos == start+1) {
		p.fail()
		return 0, false
	}
	if whole {
		if neg {
			n = -n
		}
		return float64(n), true
	}
	x, err := strconv.ParseFloat(string(p.b[start:p.pos]), 64)
	if err != nil {
		p.fail()
		return 0, false
	}
	return x, true
}

// CountPersons returns the number of persons in an analytic part, so that
// the caller can derive their record keys before Append.
func CountPersons(b []byte) (int, error) {
	n := 0
	skip := func([]byte, float64) {}
	err := walkAnalytic(b, skip, func() func([]byte, float64) { n++; return skip })
	return n, err
}
