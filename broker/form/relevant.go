package form

import "fmt"

// Helpers for whoever makes submissions rather than checks them (the
// synthetic generator): values drawn field by field are made consistent
// with the form's relevants, and each part is checked as Validate checks
// it, by the same rules and the same expression evaluator (expr.go).

// DropNotRelevant removes from s every value whose field's relevant does
// not hold, and returns how many it removed. The household comes first,
// then each person (a person's relevants may read the household); within
// a list the fields are taken in the order their relevants depend on each
// other (a field after every field its relevant names; Parse refuses
// circles), so that one pass reaches the fixed point: every value left
// has a relevant that holds on the values left, and a value removed had
// one that did not, even where a relevant holds only while another field
// is absent (not(${a} = 1)). Values of fields without a relevant, and
// keys that are no field, are left as they are. A form Parse would refuse
// removes nothing.
func (f *Form) DropNotRelevant(s *Submission) int {
	c, err := f.rules()
	if err != nil || s == nil {
		return 0
	}
	n := c.household.dropNotRelevant(s.Household, nil)
	for _, m := range s.Persons {
		n += c.person.dropNotRelevant(m, s.Household)
	}
	return n
}

// dropNotRelevant removes from m (hh: the household, for a person) the
// values whose relevant does not hold, in dependency order.
func (fs *fieldSet) dropNotRelevant(m, hh map[string]Value) int {
	n := 0
	for _, i := range fs.relevantOrder() {
		r := &fs.rules[i]
		if v, ok := m[r.name]; ok && v.kind != vAbsent && !r.relevant().holds(&env{self: m, outer: hh}) {
			delete(m, r.name)
			n++
		}
	}
	return n
}

// relevantOrder lists the fields with a relevant, each after the fields
// of its own list that its relevant names (a depth-first walk; Parse
// refused circles, and a circle met anyway is cut rather than followed).
func (fs *fieldSet) relevantOrder() []int {
	var order []int
	var state []uint8 // 0 unseen, 1 open, 2 done
	var visit func(i int)
	visit = func(i int) {
		if state[i] != 0 {
			return
		}
		state[i] = 1
		e := fs.rules[i].relevant()
		for _, ref := range e.refs {
			if j, ok := fs.index[ref.name]; ok && !ref.outer && fs.rules[j].relevant() != nil {
				visit(j)
			}
		}
		state[i] = 2
		order = append(order, i)
	}
	for i := range fs.rules {
		if fs.rules[i].relevant() == nil {
			continue
		}
		if state == nil {
			state = make([]uint8, len(fs.rules))
		}
		visit(i)
	}
	return order
}

// ValidateHousehold checks the household part of s as ValidateAt does —
// every household value (type, range, codes, relevant, required,
// constraint), unknown keys, and the household checks — and returns an
// *Error listing its problems, or nil. The top-level members (id, form,
// area, times) and the persons are not looked at.
func (f *Form) ValidateHousehold(s *Submission) error {
	c, err := f.rules()
	if err != nil {
		return err
	}
	if s == nil {
		return problem("no submission")
	}
	var p problems
	c.household.check(&p, loc{idx: -1}, s.Household, nil, s.nulls)
	for i := range c.checks {
		ck := &c.checks[i]
		en := env{self: s.Household}
		if !ck.person && !ck.expr.allAbsent(&en) && !ck.expr.holds(&en) {
			p.add(ck.problem)
		}
	}
	if e := p.err(); e != nil {
		return e
	}
	return nil
}

// ValidatePerson checks person i of s as ValidateAt does — every value of
// the person (its relevants and constraints may read the household),
// unknown keys, and the person checks — and returns an *Error listing its
// problems (persons[i]…), or nil.
func (f *Form) ValidatePerson(s *Submission, i int) error {
	c, err := f.rules()
	if err != nil {
		return err
	}
	if s == nil || i < 0 || i >= len(s.Persons) || i >= MaxPersons {
		return problem(fmt.Sprintf("persons: no person %d", i))
	}
	var p problems
	m := s.Persons[i]
	c.person.check(&p, loc{idx: i}, m, s.Household, s.nulls)
	for k := range c.checks {
		ck := &c.checks[k]
		en := env{self: m, outer: s.Household}
		if ck.person && !ck.expr.allAbsent(&en) && !ck.expr.holds(&en) {
			p.add(loc{idx: i}.path() + ": " + ck.problem)
		}
	}
	if e := p.err(); e != nil {
		return e
	}
	return nil
}
