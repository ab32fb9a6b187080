package form

import (
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Split cuts a submission into one canonical JSON document per class
// (Identifying, Analytic and Operational are always all present):
//
//	{"household":{…},"persons":[{…},{…}]}
//
// Each object holds that class's fields with keys sorted; persons keep their
// order and count (a person with no field of the class is {}), so a person's
// index is the same in every part. Values are normalized: whole numbers as
// plain integers, decimals in shortest plain decimal form, code sets as
// arrays of plain integers sorted ascending, strings with minimal escaping.
// The same answers therefore always give the same bytes.
//
// Split validates s first (as ValidateAt, without the clock check) and
// returns an *Error if it is not valid.
func (f *Form) Split(s *Submission) (map[Class][]byte, error) {
	c, err := f.rules()
	if err != nil {
		return nil, err
	}
	if e := c.check(s, time.Time{}, false); e != nil {
		return nil, e
	}
	out := make(map[Class][]byte, 3)
	for _, cl := range Classes() {
		b := make([]byte, 0, 128+64*len(s.Persons))
		b = append(b, `{"household":`...)
		b = c.household.appendClass(b, cl, s.Household)
		b = append(b, `,"persons":[`...)
		for i, m := range s.Persons {
			if i > 0 {
				b = append(b, ',')
			}
			b = c.person.appendClass(b, cl, m)
		}
		b = append(b, "]}"...)
		out[cl] = b
	}
	return out, nil
}

func (fs *fieldSet) appendClass(b []byte, cl Class, m map[string]Value) []byte {
	b = append(b, '{')
	first := true
	for _, i := range fs.sorted {
		r := &fs.rules[i]
		if r.class != cl {
			continue
		}
		v, ok := m[r.name]
		if !ok || v.kind == vAbsent {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, r.name)
		b = append(b, ':')
		b = r.appendCanonical(b, v)
	}
	return append(b, '}')
}

// appendCanonical writes a checked value in its one normal form.
func (r *rule) appendCanonical(b []byte, v Value) []byte {
	switch r.kind {
	case kInt, kCode:
		n, _ := v.Int()
		return strconv.AppendInt(b, n, 10)
	case kDecimal:
		x, _ := v.Float()
		if x == 0 {
			return append(b, '0') // not "-0"
		}
		return strconv.AppendFloat(b, x, 'f', -1, 64)
	case kCodeSet:
		var codes []int
		for it := (items{s: v.text}); it.next(); {
			n, _ := strconv.Atoi(it.cur)
			codes = append(codes, n)
		}
		sort.Ints(codes)
		b = append(b, '[')
		for i, n := range codes {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(n), 10)
		}
		return append(b, ']')
	}
	return appendString(b, v.text)
}

// canonical returns v in its normal form for this field.
func (r *rule) canonical(v Value) Value {
	switch r.kind {
	case kInt, kCode, kDecimal:
		return Value{text: string(r.appendCanonical(nil, v)), kind: vNumber}
	case kCodeSet:
		return Value{text: string(r.appendCanonical(nil, v)), kind: vCodes}
	}
	return v
}

// Join is the inverse of Split for the classes given: it parses each part
// (strictly, as Decode does), checks that every field belongs to the form
// and to that part's class and is valid, that the parts agree on the number
// of persons, and merges them. Fields of classes not given are simply
// absent.
func (f *Form) Join(parts map[Class][]byte) (household map[string]Value, persons []map[string]Value, err error) {
	c, err := f.rules()
	if err != nil {
		return nil, nil, err
	}
	if len(parts) == 0 {
		return nil, nil, problem("no parts to join")
	}
	for cl := range parts {
		if !cl.valid() {
			return nil, nil, problem("unknown class in parts")
		}
	}
	household = make(map[string]Value)
	for _, cl := range Classes() {
		b, ok := parts[cl]
		if !ok {
			continue
		}
		h, ps, e := c.parsePart(cl, b)
		if e != nil {
			for i := range e.Problems {
				e.Problems[i] = string(cl) + " part: " + e.Problems[i]
			}
			return nil, nil, e
		}
		if persons == nil {
			persons = make([]map[string]Value, len(ps))
			for i := range persons {
				persons[i] = make(map[string]Value, 16)
			}
		} else if len(ps) != len(persons) {
			return nil, nil, problem(fmt.Sprintf("%s part: %d persons, other parts have %d", cl, len(ps), len(persons)))
		}
		for k, v := range h {
			household[k] = v
		}
		for i, m := range ps {
			for k, v := range m {
				persons[i][k] = v
			}
		}
	}
	return household, persons, nil
}

// parsePart reads one class's document.
func (c *compiled) parsePart(cl Class, b []byte) (map[string]Value, []map[string]Value, *Error) {
	if len(b) > MaxBody {
		return nil, nil, problem(fmt.Sprintf("larger than %d bytes", MaxBody))
	}
	sc := &scanner{s: string(b)}
	if !sc.consume('{') {
		return nil, nil, sc.syntax("expected '{'")
	}
	var (
		h    map[string]Value
		ps   []map[string]Value
		seen int
	)
	for {
		if sc.peek() != '"' {
			return nil, nil, sc.syntax("expected a key")
		}
		key, msg := sc.str()
		if msg != "" {
			return nil, nil, sc.syntax(msg)
		}
		if !sc.consume(':') {
			return nil, nil, sc.syntax("expected ':'")
		}
		var err *Error
		switch {
		case key == "household" && seen&1 == 0:
			seen |= 1
			h, err = sc.object(loc{idx: -1})
		case key == "persons" && seen&2 == 0:
			seen |= 2
			ps, err = sc.persons()
		default:
			return nil, nil, problem("only household and persons, once each, are allowed")
		}
		if err != nil {
			return nil, nil, err
		}
		if sc.consume(',') {
			continue
		}
		if sc.consume('}') {
			break
		}
		return nil, nil, sc.syntax("expected ',' or '}'")
	}
	sc.ws()
	if sc.i != len(sc.s) {
		return nil, nil, problem("trailing data")
	}
	if seen != 3 {
		return nil, nil, problem("household and persons are required")
	}
	var p problems
	c.household.checkPart(&p, cl, loc{idx: -1}, h, sc.nulls)
	for i, m := range ps {
		c.person.checkPart(&p, cl, loc{idx: i}, m, sc.nulls)
	}
	if e := p.err(); e != nil {
		return nil, nil, e
	}
	return h, ps, nil
}

// checkPart checks that every value of m is a valid field of class cl, and
// normalizes it in place; a key given null (Split writes none) must be
// such a field too.
func (fs *fieldSet) checkPart(p *problems, cl Class, at loc, m map[string]Value, nulls []loc) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for _, n := range nulls {
		if n.idx == at.idx {
			keys = append(keys, n.key)
		}
	}
	sort.Strings(keys) // problems in a stable order
	for _, k := range keys {
		v, present := m[k]
		i, ok := fs.index[k]
		if !ok {
			p.add(at.field(k) + ": unknown field")
			continue
		}
		r := &fs.rules[i]
		if r.class != cl {
			p.add(at.field(k) + ": not a " + string(cl) + " field")
			continue
		}
		if !present {
			continue
		}
		if msg := r.check(v); msg != "" {
			p.add(at.field(k) + ": " + msg)
			continue
		}
		m[k] = r.canonical(v)
	}
}
