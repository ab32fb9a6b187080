package form

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Expressions are the XLSForm subset a form's relevant, constraint and
// checks are written in:
//
//	${name}                       a field's value (in person scope a person
//	                              field, else the household field)
//	.                             the value being checked (constraint only)
//	12  3.5  'text'  "text"       literals
//	+ - * div mod                 arithmetic on numbers
//	= != < <= > >=                comparisons (strings: = and != only)
//	and  or  not(c)               conditions
//	selected(${f}, 'code')        f (a code or code_set field) has the code
//	count-selected(${f})          how many codes a code_set field has
//	string-length(s)              characters of a string
//	if(c, a, b)                   a where c holds, else b
//	( … )                         grouping
//
// Each is parsed and type-checked once, when the form is, into a tree;
// evaluation walks the tree and never panics. Absent values: arithmetic on
// an absent value is absent, and so is a division or mod by zero or a
// result beyond float64; a comparison involving an absent value is false
// (so a relevant over absent answers is false and the field not
// relevant); string-length of an absent string and count-selected of an
// absent set are 0, and selected() of an absent field is false. A
// constraint is evaluated only on a present value, and a check whose
// referenced fields are all absent holds.

// Limits on an expression: definitions come from administrators, but an
// expression must not be able to exhaust the parser's stack or the
// validator's time.
const (
	MaxExprLen   = 1000 // bytes of one expression
	MaxExprDepth = 32   // nesting of parentheses, function calls and unary minus
	MaxChecks    = 100  // checks of a form
)

// etype is the type of an expression.
type etype uint8

const (
	tNum  etype = iota + 1
	tStr        // string, date and phone fields, string literals
	tBool       // conditions
	tSet        // a code_set field: only inside selected() and count-selected()
)

func (t etype) String() string {
	switch t {
	case tNum:
		return "a number"
	case tStr:
		return "a string"
	case tBool:
		return "a condition"
	case tSet:
		return "a select-many field"
	}
	return "nothing"
}

type op uint8

const (
	opNum op = iota + 1
	opStr
	opRef
	opDot
	opNeg
	opAdd
	opSub
	opMul
	opDiv
	opMod
	opEq
	opNe
	opLt
	opLe
	opGt
	opGe
	opAnd
	opOr
	opNot
	opSelected
	opCountSelected
	opStringLength
	opIf
)

// node is one node of a parsed expression.
type node struct {
	op      op
	typ     etype
	num     float64 // opNum; the code of opSelected
	str     string  // opStr
	ref     fieldRef
	a, b, c *node
}

// fieldRef is a field an expression reads: from the list the expression
// is in (outer false) or from the household list in person scope.
type fieldRef struct {
	name  string
	outer bool
	kind  kind
	codes []bool // code and code_set fields
}

// expr is a parsed, type-checked expression.
type expr struct {
	src  string
	root *node
	refs []fieldRef // the fields it names, each once
}

// exprScope says what an expression may name.
type exprScope struct {
	self  *fieldSet // the list the expression is in
	outer *fieldSet // the household list, in person scope; else nil
	other *fieldSet // the person list, in household scope (for messages only)
	dot   *rule     // the field "." stands for; nil where "." is not allowed
	// notSelf is the field whose relevant this is: naming it there is a
	// circle.
	notSelf string
}

// exprError is a parse or type error at a character position (1-based).
type exprError struct {
	pos int
	msg string
}

func (e *exprError) Error() string { return fmt.Sprintf("at character %d: %s", e.pos, e.msg) }

// parseExpr parses src in scope and checks that it is a condition.
func parseExpr(src string, sc *exprScope) (*expr, error) {
	if len(src) > MaxExprLen {
		return nil, fmt.Errorf("longer than %d bytes", MaxExprLen)
	}
	if !utf8.ValidString(src) {
		return nil, fmt.Errorf("not valid UTF-8")
	}
	p := &parser{src: src, sc: sc}
	root, err := p.run()
	if err != nil {
		return nil, err
	}
	return &expr{src: src, root: root, refs: p.refs}, nil
}

type tkind uint8

const (
	tkEOF tkind = iota
	tkNum
	tkStr
	tkRef
	tkDot
	tkLParen
	tkRParen
	tkComma
	tkOp   // + - * = != < <= > >=
	tkWord // div mod and or, function names
)

type token struct {
	kind tkind
	text string // operator, word, ref name or string content
	num  float64
	pos  int // byte offset
}

type parser struct {
	src   string
	i     int
	tok   token
	depth int
	sc    *exprScope
	refs  []fieldRef
}

// fail stops the parse; run recovers it. Only exprError values are
// thrown, so any other panic still surfaces.
func (p *parser) fail(pos int, format string, args ...any) {
	panic(&exprError{pos: utf8.RuneCountInString(p.src[:pos]) + 1, msg: fmt.Sprintf(format, args...)})
}

func (p *parser) run() (root *node, err error) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(*exprError)
			if !ok {
				panic(r)
			}
			root, err = nil, e
		}
	}()
	p.next()
	if p.tok.kind == tkEOF {
		p.fail(0, "empty expression")
	}
	n := p.parseOr()
	if p.tok.kind != tkEOF {
		p.fail(p.tok.pos, "unexpected %s", p.tok.describe())
	}
	if n.typ != tBool {
		p.fail(0, "must be a condition (a comparison, and, or, not() or selected()), not %s", n.typ)
	}
	return n, nil
}

func (t token) describe() string {
	switch t.kind {
	case tkEOF:
		return "end of expression"
	case tkNum:
		return "number"
	case tkStr:
		return "string"
	case tkRef:
		return "${" + t.text + "}"
	case tkDot:
		return `"."`
	case tkLParen:
		return `"("`
	case tkRParen:
		return `")"`
	case tkComma:
		return `","`
	}
	return strconv.Quote(clipName(t.text)) // operators and words are ASCII the lexer checked
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// next reads the next token into p.tok.
func (p *parser) next() {
	s := p.src
	for p.i < len(s) && (s[p.i] == ' ' || s[p.i] == '\t' || s[p.i] == '\n' || s[p.i] == '\r') {
		p.i++
	}
	start := p.i
	if p.i >= len(s) {
		p.tok = token{kind: tkEOF, pos: start}
		return
	}
	c := s[p.i]
	switch {
	case c == '$':
		if p.i+1 >= len(s) || s[p.i+1] != '{' {
			p.fail(start, `"$" must start a field reference ${name}`)
		}
		end := strings.IndexByte(s[p.i+2:], '}')
		if end < 0 {
			p.fail(start, "field reference without its closing }")
		}
		name := s[p.i+2 : p.i+2+end]
		if !validName(name) {
			p.fail(start, "field reference must be ${name} with a field name (a-z 0-9 _, starting with a letter)")
		}
		p.i += 3 + end
		p.tok = token{kind: tkRef, text: name, pos: start}
	case isDigit(c) || c == '.' && p.i+1 < len(s) && isDigit(s[p.i+1]):
		for p.i < len(s) && isDigit(s[p.i]) {
			p.i++
		}
		if p.i < len(s) && s[p.i] == '.' {
			p.i++
			for p.i < len(s) && isDigit(s[p.i]) {
				p.i++
			}
		}
		x, err := strconv.ParseFloat(s[start:p.i], 64)
		if err != nil || math.IsInf(x, 0) {
			p.fail(start, "number out of range")
		}
		p.tok = token{kind: tkNum, num: x, pos: start}
	case c == '.':
		p.i++
		p.tok = token{kind: tkDot, pos: start}
	case c == '\'' || c == '"':
		end := strings.IndexByte(s[p.i+1:], c)
		if end < 0 {
			p.fail(start, "string without its closing quote")
		}
		p.tok = token{kind: tkStr, text: s[p.i+1 : p.i+1+end], pos: start}
		p.i += 2 + end
	case c == '(':
		p.i++
		p.tok = token{kind: tkLParen, pos: start}
	case c == ')':
		p.i++
		p.tok = token{kind: tkRParen, pos: start}
	case c == ',':
		p.i++
		p.tok = token{kind: tkComma, pos: start}
	case c == '+' || c == '-' || c == '*' || c == '=':
		p.i++
		p.tok = token{kind: tkOp, text: s[start:p.i], pos: start}
	case c == '!' || c == '<' || c == '>':
		p.i++
		if p.i < len(s) && s[p.i] == '=' {
			p.i++
		} else if c == '!' {
			p.fail(start, `"!" must be followed by "=" (write not(…) for negation)`)
		}
		p.tok = token{kind: tkOp, text: s[start:p.i], pos: start}
	case isLetter(c):
		// A word is letters, with single dashes between letters
		// (count-selected); "a-1" is a word and a minus.
		for p.i < len(s) && (isLetter(s[p.i]) || s[p.i] == '-' && p.i+1 < len(s) && isLetter(s[p.i+1]) && p.i > start) {
			p.i++
		}
		p.tok = token{kind: tkWord, text: s[start:p.i], pos: start}
	default:
		p.fail(start, "unexpected character")
	}
}

func (p *parser) isOp(text string) bool {
	return (p.tok.kind == tkOp || p.tok.kind == tkWord) && p.tok.text == text
}

func (p *parser) enter(pos int) {
	p.depth++
	if p.depth > MaxExprDepth {
		p.fail(pos, "nested more than %d deep", MaxExprDepth)
	}
}

func (p *parser) parseOr() *node {
	n := p.parseAnd()
	for p.isOp("or") {
		pos := p.tok.pos
		p.next()
		n = p.logic(opOr, pos, n, p.parseAnd())
	}
	return n
}

func (p *parser) parseAnd() *node {
	n := p.parseEq()
	for p.isOp("and") {
		pos := p.tok.pos
		p.next()
		n = p.logic(opAnd, pos, n, p.parseEq())
	}
	return n
}

func (p *parser) logic(o op, pos int, a, b *node) *node {
	if a.typ != tBool || b.typ != tBool {
		p.fail(pos, "%q needs conditions on both sides", map[op]string{opAnd: "and", opOr: "or"}[o])
	}
	return &node{op: o, typ: tBool, a: a, b: b}
}

func (p *parser) parseEq() *node {
	n := p.parseRel()
	for p.isOp("=") || p.isOp("!=") {
		o, pos := opEq, p.tok.pos
		if p.tok.text == "!=" {
			o = opNe
		}
		p.next()
		n = p.compare(o, pos, n, p.parseRel())
	}
	return n
}

func (p *parser) parseRel() *node {
	n := p.parseAdd()
	for {
		var o op
		switch {
		case p.isOp("<"):
			o = opLt
		case p.isOp("<="):
			o = opLe
		case p.isOp(">"):
			o = opGt
		case p.isOp(">="):
			o = opGe
		default:
			return n
		}
		pos := p.tok.pos
		p.next()
		n = p.compare(o, pos, n, p.parseAdd())
	}
}

// numeric turns a string literal that reads as a number into a number
// literal (XPath compares a number with a string as numbers); it reports
// whether n is now a number.
func numeric(n *node) bool {
	if n.typ == tNum {
		return true
	}
	if n.op != opStr {
		return false
	}
	x, err := strconv.ParseFloat(strings.TrimSpace(n.str), 64)
	if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
		return false
	}
	*n = node{op: opNum, typ: tNum, num: x}
	return true
}

func (p *parser) compare(o op, pos int, a, b *node) *node {
	if a.typ == tSet || b.typ == tSet {
		p.fail(pos, "a select-many field can only be read with selected() or count-selected()")
	}
	if a.typ != b.typ && (a.typ == tNum || b.typ == tNum) {
		other := a.typ
		if a.typ == tNum {
			other = b.typ
		}
		if !numeric(a) || !numeric(b) {
			p.fail(pos, "compares a number with %s", other)
		}
	}
	if a.typ != b.typ {
		p.fail(pos, "compares %s with %s", a.typ, b.typ)
	}
	if a.typ != tNum && o != opEq && o != opNe {
		p.fail(pos, "%s can only be compared with = or !=", a.typ)
	}
	if o == opEq || o == opNe {
		p.checkCode(pos, a, b)
		p.checkCode(pos, b, a)
	}
	return &node{op: o, typ: tBool, a: a, b: b}
}

// checkCode refuses comparing a code field with a number that is not one
// of its codes: such a comparison is a typo that would never hold.
func (p *parser) checkCode(pos int, field, lit *node) {
	if (field.op == opRef || field.op == opDot) && field.ref.kind == kCode && lit.op == opNum && !hasCode(field.ref.codes, lit.num) {
		p.fail(pos, "%s is not a code of %s", strconv.FormatFloat(lit.num, 'g', -1, 64), field.ref.describe())
	}
}

func hasCode(codes []bool, x float64) bool {
	return x >= 0 && x < float64(len(codes)) && x == math.Trunc(x) && codes[int(x)]
}

func (r fieldRef) describe() string {
	if r.name == "" {
		return `"."`
	}
	return "${" + r.name + "}"
}

func (p *parser) parseAdd() *node {
	n := p.parseMul()
	for p.isOp("+") || p.isOp("-") {
		o, pos := opAdd, p.tok.pos
		if p.tok.text == "-" {
			o = opSub
		}
		p.next()
		n = p.arith(o, pos, n, p.parseMul())
	}
	return n
}

func (p *parser) parseMul() *node {
	n := p.parseUnary()
	for p.isOp("*") || p.isOp("div") || p.isOp("mod") {
		o, pos := opMul, p.tok.pos
		switch p.tok.text {
		case "div":
			o = opDiv
		case "mod":
			o = opMod
		}
		p.next()
		n = p.arith(o, pos, n, p.parseUnary())
	}
	return n
}

func (p *parser) arith(o op, pos int, a, b *node) *node {
	if !numeric(a) || !numeric(b) {
		p.fail(pos, "arithmetic needs numbers on both sides")
	}
	return &node{op: o, typ: tNum, a: a, b: b}
}

func (p *parser) parseUnary() *node {
	if p.isOp("-") {
		pos := p.tok.pos
		p.enter(pos)
		p.next()
		a := p.parseUnary()
		p.depth--
		if !numeric(a) {
			p.fail(pos, "minus needs a number")
		}
		return &node{op: opNeg, typ: tNum, a: a}
	}
	return p.parsePrimary()
}

func (p *parser) parsePrimary() *node {
	t := p.tok
	switch t.kind {
	case tkNum:
		p.next()
		return &node{op: opNum, typ: tNum, num: t.num}
	case tkStr:
		p.next()
		return &node{op: opStr, typ: tStr, str: t.text}
	case tkRef:
		p.next()
		return p.resolve(t)
	case tkDot:
		if p.sc.dot == nil {
			p.fail(t.pos, `"." (the value) is only for a field's constraint`)
		}
		p.next()
		r := fieldRef{kind: p.sc.dot.kind, codes: p.sc.dot.codes}
		return &node{op: opDot, typ: typeOf(r.kind), ref: r}
	case tkLParen:
		p.enter(t.pos)
		p.next()
		n := p.parseOr()
		p.expect(tkRParen, `")"`)
		p.depth--
		return n
	case tkWord:
		return p.call(t)
	}
	p.fail(t.pos, "expected a value, found %s", t.describe())
	return nil
}

func (p *parser) expect(k tkind, what string) {
	if p.tok.kind != k {
		p.fail(p.tok.pos, "expected %s, found %s", what, p.tok.describe())
	}
	p.next()
}

func typeOf(k kind) etype {
	switch k {
	case kInt, kDecimal, kCode:
		return tNum
	case kCodeSet:
		return tSet
	}
	return tStr
}

// resolve finds the field ${name} names: in the expression's own list,
// else (person scope) in the household list.
func (p *parser) resolve(t token) *node {
	r := fieldRef{name: t.text}
	if t.text == p.sc.notSelf {
		p.fail(t.pos, "a field's relevant cannot name the field itself")
	}
	var fs *fieldSet
	if i, ok := p.sc.self.index[t.text]; ok {
		fs = p.sc.self
		r.kind, r.codes = fs.rules[i].kind, fs.rules[i].codes
	} else if i, ok := p.outerIndex(t.text); ok {
		fs = p.sc.outer
		r.outer = true
		r.kind, r.codes = fs.rules[i].kind, fs.rules[i].codes
	} else {
		if p.sc.other != nil {
			if _, ok := p.sc.other.index[t.text]; ok {
				p.fail(t.pos, "${%s} is a person field; a household expression may name household fields only", t.text)
			}
		}
		p.fail(t.pos, "unknown field ${%s}", t.text)
	}
	seen := false
	for _, x := range p.refs {
		seen = seen || x.name == r.name && x.outer == r.outer
	}
	if !seen {
		p.refs = append(p.refs, r)
	}
	return &node{op: opRef, typ: typeOf(r.kind), ref: r}
}

func (p *parser) outerIndex(name string) (int, bool) {
	if p.sc.outer == nil {
		return 0, false
	}
	i, ok := p.sc.outer.index[name]
	return i, ok
}

// call parses a function call; t is its name.
func (p *parser) call(t token) *node {
	arity := map[string]int{"not": 1, "selected": 2, "count-selected": 1, "string-length": 1, "if": 3}
	want, ok := arity[t.text]
	if !ok {
		switch t.text {
		case "and", "or", "div", "mod":
			p.fail(t.pos, "%q needs a value before it", t.text)
		}
		p.fail(t.pos, "unknown function (known: not, selected, count-selected, string-length, if)")
	}
	p.next()
	if p.tok.kind != tkLParen {
		p.fail(p.tok.pos, "expected \"(\" after %s", t.text)
	}
	p.enter(p.tok.pos)
	p.next()
	var args []*node
	if p.tok.kind != tkRParen {
		for {
			args = append(args, p.parseOr())
			if p.tok.kind != tkComma {
				break
			}
			p.next()
		}
	}
	p.expect(tkRParen, `"," or ")"`)
	p.depth--
	if len(args) != want {
		p.fail(t.pos, "%s takes %d argument(s), not %d", t.text, want, len(args))
	}
	switch t.text {
	case "not":
		if args[0].typ != tBool {
			p.fail(t.pos, "not() needs a condition")
		}
		return &node{op: opNot, typ: tBool, a: args[0]}
	case "selected":
		f, code := args[0], args[1]
		if f.op != opRef && f.op != opDot || f.ref.kind != kCode && f.ref.kind != kCodeSet {
			p.fail(t.pos, "selected() needs a code or select-many field first")
		}
		if code.op != opStr && code.op != opNum || !numeric(code) || !hasCode(f.ref.codes, code.num) {
			p.fail(t.pos, "selected() needs one of %s's codes second, as a literal", f.ref.describe())
		}
		return &node{op: opSelected, typ: tBool, a: f, num: code.num}
	case "count-selected":
		f := args[0]
		if f.op != opRef && f.op != opDot || f.ref.kind != kCodeSet {
			p.fail(t.pos, "count-selected() needs a select-many field")
		}
		return &node{op: opCountSelected, typ: tNum, a: f}
	case "string-length":
		if args[0].typ != tStr {
			p.fail(t.pos, "string-length() needs a string")
		}
		return &node{op: opStringLength, typ: tNum, a: args[0]}
	}
	// if
	c, a, b := args[0], args[1], args[2]
	if c.typ != tBool {
		p.fail(t.pos, "if() needs a condition first")
	}
	if a.typ != b.typ && (a.typ == tNum || b.typ == tNum) {
		numeric(a)
		numeric(b)
	}
	if a.typ != b.typ || a.typ == tSet {
		p.fail(t.pos, "if() needs two values of the same type after its condition")
	}
	return &node{op: opIf, typ: a.typ, a: c, b: a, c: b}
}

// env is what an expression is evaluated on: the object it is in, the
// household (person scope) and the value "." stands for.
type env struct {
	self, outer map[string]Value
	dot         Value
}

// evalue is an expression's value.
type evalue struct {
	k evk
	n float64
	s string // a string, or a code set's JSON array
	b bool
}

type evk uint8

const (
	eAbsent evk = iota
	eNum
	eStr
	eBool
	eSet
)

// holds reports whether the condition e holds.
func (e *expr) holds(en *env) bool {
	v := en.eval(e.root)
	return v.k == eBool && v.b
}

// allAbsent reports whether every field e names is absent.
func (e *expr) allAbsent(en *env) bool {
	for _, r := range e.refs {
		m := en.self
		if r.outer {
			m = en.outer
		}
		if v, ok := m[r.name]; ok && v.kind != vAbsent {
			return false
		}
	}
	return true
}

// read converts a field's Value for an expression; a value of the wrong
// kind (refused by Validate anyway) reads as absent.
func read(v Value, k kind) evalue {
	switch k {
	case kInt, kCode, kDecimal:
		if v.kind != vNumber {
			return evalue{}
		}
		x, err := strconv.ParseFloat(v.text, 64)
		if err != nil {
			return evalue{}
		}
		return evalue{k: eNum, n: x}
	case kCodeSet:
		if v.kind != vCodes {
			return evalue{}
		}
		return evalue{k: eSet, s: v.text}
	}
	if v.kind != vString {
		return evalue{}
	}
	return evalue{k: eStr, s: v.text}
}

func numVal(x float64) evalue {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return evalue{}
	}
	return evalue{k: eNum, n: x}
}

func boolean(b bool) evalue { return evalue{k: eBool, b: b} }

func (en *env) eval(n *node) evalue {
	switch n.op {
	case opNum:
		return evalue{k: eNum, n: n.num}
	case opStr:
		return evalue{k: eStr, s: n.str}
	case opRef:
		m := en.self
		if n.ref.outer {
			m = en.outer
		}
		return read(m[n.ref.name], n.ref.kind)
	case opDot:
		return read(en.dot, n.ref.kind)
	case opNeg:
		a := en.eval(n.a)
		if a.k != eNum {
			return evalue{}
		}
		return numVal(-a.n)
	case opAdd, opSub, opMul, opDiv, opMod:
		a, b := en.eval(n.a), en.eval(n.b)
		if a.k != eNum || b.k != eNum {
			return evalue{}
		}
		switch n.op {
		case opAdd:
			return numVal(a.n + b.n)
		case opSub:
			return numVal(a.n - b.n)
		case opMul:
			return numVal(a.n * b.n)
		case opDiv:
			if b.n == 0 {
				return evalue{}
			}
			return numVal(a.n / b.n)
		}
		if b.n == 0 {
			return evalue{}
		}
		return numVal(math.Mod(a.n, b.n))
	case opEq, opNe, opLt, opLe, opGt, opGe:
		a, b := en.eval(n.a), en.eval(n.b)
		if a.k == eAbsent || b.k == eAbsent || a.k != b.k {
			return boolean(false)
		}
		var c int
		switch a.k {
		case eNum:
			switch {
			case a.n < b.n:
				c = -1
			case a.n > b.n:
				c = 1
			}
		case eStr:
			if a.s != b.s {
				c = 1
			}
		case eBool:
			if a.b != b.b {
				c = 1
			}
		}
		switch n.op {
		case opEq:
			return boolean(c == 0)
		case opNe:
			return boolean(c != 0)
		case opLt:
			return boolean(c < 0)
		case opLe:
			return boolean(c <= 0)
		case opGt:
			return boolean(c > 0)
		}
		return boolean(c >= 0)
	case opAnd:
		if !en.eval(n.a).b {
			return boolean(false)
		}
		return boolean(en.eval(n.b).b)
	case opOr:
		if en.eval(n.a).b {
			return boolean(true)
		}
		return boolean(en.eval(n.b).b)
	case opNot:
		return boolean(!en.eval(n.a).b)
	case opSelected:
		a := en.eval(n.a)
		switch a.k {
		case eNum:
			return boolean(a.n == n.num)
		case eSet:
			for it := (items{s: a.s}); it.next(); {
				if c, err := strconv.ParseInt(it.cur, 10, 64); err == nil && float64(c) == n.num {
					return boolean(true)
				}
			}
		}
		return boolean(false)
	case opCountSelected:
		a := en.eval(n.a)
		k := 0
		if a.k == eSet {
			for it := (items{s: a.s}); it.next(); {
				k++
			}
		}
		return evalue{k: eNum, n: float64(k)}
	case opStringLength:
		a := en.eval(n.a)
		if a.k != eStr {
			return evalue{k: eNum}
		}
		return evalue{k: eNum, n: float64(utf8.RuneCountInString(a.s))}
	case opIf:
		if en.eval(n.a).b {
			return en.eval(n.b)
		}
		return en.eval(n.c)
	}
	return evalue{}
}

// items iterates over the items of a code set's JSON array text (as Decode
// checked it: numbers, commas and spaces between brackets).
type items struct {
	s   string
	i   int
	cur string
}

func (it *items) next() bool {
	s := it.s
	for it.i < len(s) && (s[it.i] == '[' || s[it.i] == ',' || s[it.i] == ' ' || s[it.i] == '\t' || s[it.i] == '\n' || s[it.i] == '\r') {
		it.i++
	}
	if it.i >= len(s) || s[it.i] == ']' {
		return false
	}
	start := it.i
	for it.i < len(s) && s[it.i] != ',' && s[it.i] != ']' && s[it.i] != ' ' && s[it.i] != '\t' && s[it.i] != '\n' && s[it.i] != '\r' {
		it.i++
	}
	it.cur = s[start:it.i]
	return true
}
