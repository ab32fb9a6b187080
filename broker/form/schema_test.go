package form_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/synth"
	"github.com/censusvault/censusvault/broker/testdeadline"
)

// schemaForm has a field of every type, optional and required, so that
// the schema's every keyword is exercised (census2019 has no date field).
const schemaForm = `{
  "name": "schematest", "version": 3, "census_moment": "2029-04-01T00:00:00+07:00",
  "household": [
    {"name": "head_name", "type": "string", "class": "identifying", "required": true, "max_len": 20},
    {"name": "note", "type": "string", "class": "operational", "max_len": 5},
    {"name": "phone", "type": "phone", "class": "identifying"},
    {"name": "mobile", "type": "phone", "class": "identifying", "required": true},
    {"name": "built", "type": "date", "class": "analytic"},
    {"name": "listed", "type": "date", "class": "operational", "required": true},
    {"name": "area_m2", "type": "decimal", "class": "analytic", "min": 0.5, "max": 99.5, "required": true},
    {"name": "rent", "type": "decimal", "class": "analytic", "min": -10, "max": 1e6},
    {"name": "rooms", "type": "int", "class": "analytic", "min": 0, "max": 30, "required": true},
    {"name": "floors", "type": "int", "class": "analytic", "min": -2, "max": 100},
    {"name": "tenure", "type": "code", "class": "analytic", "required": true,
     "codes": [{"code": 0, "label": "none"}, {"code": 1, "label": "owned"}, {"code": 7, "label": "other"}]},
    {"name": "water", "type": "code", "class": "analytic",
     "codes": [{"code": 1, "label": "piped"}, {"code": 3, "label": "well"}]}
  ],
  "person": [
    {"name": "full_name", "type": "string", "class": "identifying", "required": true, "max_len": 100},
    {"name": "relationship", "type": "code", "class": "analytic", "required": true, "head_code": 1,
     "codes": [{"code": 1, "label": "head"}, {"code": 2, "label": "spouse"}, {"code": 3, "label": "child"}]},
    {"name": "sex", "type": "code", "class": "analytic", "required": true, "codes": [{"code": 1, "label": "m"}, {"code": 2, "label": "f"}]},
    {"name": "birth_year", "type": "int", "class": "analytic", "required": true, "min": 1900, "max": 2029},
    {"name": "born", "type": "date", "class": "analytic"},
    {"name": "height_cm", "type": "decimal", "class": "analytic", "min": 20, "max": 250}
  ]
}`

// schemaForms are the forms of the schema's property tests: census2019,
// schematest (every type) and exprtest (code sets, relevant, constraints,
// checks, roles).
func schemaForms(t testing.TB) []*form.Form {
	t.Helper()
	f, err := form.Parse([]byte(schemaForm))
	if err != nil {
		t.Fatal(err)
	}
	return []*form.Form{form.Default(), f, exprForm(t)}
}

// clockOf is a validation clock after the form's fieldwork.
func clockOf(f *form.Form) time.Time {
	c, _ := f.Census()
	return c.Add(30 * 24 * time.Hour)
}

// accepts runs Decode and ValidateAt, the vault's reading of a deposit.
func accepts(f *form.Form, b []byte) error {
	s, err := form.Decode(b)
	if err != nil {
		return err
	}
	return f.ValidateAt(s, clockOf(f))
}

// The JSON Schema validator of these tests: the draft 2020-12 keywords
// JSONSchema writes, with the specification's meaning (numbers compared
// exactly, lengths in code points, patterns unanchored unless they say).
// Any other keyword fails the test, so the schema cannot grow a keyword
// that nothing here checks.

type jsValidator struct {
	root map[string]any
	res  map[string]*regexp.Regexp
}

func newJSValidator(t testing.TB, schema []byte) *jsValidator {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(schema))
	d.UseNumber()
	var root map[string]any
	if err := d.Decode(&root); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	if root["$schema"] != form.SchemaDialect {
		t.Fatalf("$schema = %v", root["$schema"])
	}
	return &jsValidator{root: root, res: map[string]*regexp.Regexp{}}
}

// validate returns "" if the instance (JSON text) is valid, else the
// first failure.
func (v *jsValidator) validate(instance []byte) string {
	d := json.NewDecoder(bytes.NewReader(instance))
	d.UseNumber()
	var x any
	if err := d.Decode(&x); err != nil {
		return "not JSON: " + err.Error()
	}
	return v.check(v.root, x, "")
}

func num(x any) (*big.Rat, bool) {
	n, ok := x.(json.Number)
	if !ok {
		return nil, false
	}
	r, ok := new(big.Rat).SetString(string(n))
	return r, ok
}

func jsType(x any) string {
	switch x := x.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case json.Number:
		if r, ok := num(x); ok && r.IsInt() {
			return "integer"
		}
		return "number"
	}
	return "?"
}

// jsEqual is the specification's equality of instances: numbers by
// value (1 and 1.0 are equal), arrays item by item, objects key by key.
func jsEqual(a, b any) bool {
	ra, aok := num(a)
	rb, bok := num(b)
	if aok || bok {
		return aok && bok && ra.Cmp(rb) == 0
	}
	switch a := a.(type) {
	case nil, bool, string:
		return a == b
	case []any:
		bb, ok := b.([]any)
		return ok && slices.EqualFunc(a, bb, jsEqual)
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return false
		}
		for k, v := range a {
			if w, ok := bm[k]; !ok || !jsEqual(v, w) {
				return false
			}
		}
		return true
	}
	return false
}

func (v *jsValidator) check(s any, x any, at string) string {
	if b, ok := s.(bool); ok {
		if b {
			return ""
		}
		return at + ": false schema"
	}
	sm := s.(map[string]any)
	keys := make([]string, 0, len(sm))
	for k := range sm {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		kw := sm[k]
		fail := func(format string, args ...any) string { return at + ": " + k + ": " + fmt.Sprintf(format, args...) }
		switch k {
		case "$schema", "title", "description", "x-constraints":
		case "type":
			var types []string
			switch kw := kw.(type) {
			case string:
				types = []string{kw}
			case []any:
				for _, t := range kw {
					types = append(types, t.(string))
				}
			}
			got := jsType(x)
			if !slices.Contains(types, got) && !(got == "integer" && slices.Contains(types, "number")) {
				return fail("%s not in %v", got, types)
			}
		case "const":
			if !jsEqual(kw, x) {
				return fail("differs")
			}
		case "enum":
			if !slices.ContainsFunc(kw.([]any), func(e any) bool { return jsEqual(e, x) }) {
				return fail("not listed")
			}
		case "not":
			if v.check(kw, x, at) == "" {
				return fail("matches")
			}
		case "minimum", "maximum":
			if n, ok := num(x); ok {
				bound, _ := num(kw)
				if c := n.Cmp(bound); k == "minimum" && c < 0 || k == "maximum" && c > 0 {
					return fail("out of range")
				}
			}
		case "minLength", "maxLength":
			if str, ok := x.(string); ok {
				n, _ := num(kw)
				l := big.NewRat(int64(utf8.RuneCountInString(str)), 1)
				if c := l.Cmp(n); k == "minLength" && c < 0 || k == "maxLength" && c > 0 {
					return fail("length")
				}
			}
		case "pattern":
			if str, ok := x.(string); ok {
				re := v.res[kw.(string)]
				if re == nil {
					re = regexp.MustCompile(kw.(string))
					v.res[kw.(string)] = re
				}
				if !re.MatchString(str) {
					return fail("no match")
				}
			}
		case "required":
			if m, ok := x.(map[string]any); ok {
				for _, r := range kw.([]any) {
					if _, ok := m[r.(string)]; !ok {
						return fail("%s missing", r)
					}
				}
			}
		case "properties", "additionalProperties", "propertyNames", "maxProperties":
			m, ok := x.(map[string]any)
			if !ok {
				continue
			}
			switch k {
			case "properties":
				for name, ps := range kw.(map[string]any) {
					if val, ok := m[name]; ok {
						if msg := v.check(ps, val, at+"/"+name); msg != "" {
							return msg
						}
					}
				}
			case "additionalProperties":
				props, _ := sm["properties"].(map[string]any)
				for name, val := range m {
					if _, ok := props[name]; !ok {
						if msg := v.check(kw, val, at+"/"+name); msg != "" {
							return msg
						}
					}
				}
			case "propertyNames":
				for name := range m {
					if msg := v.check(kw, name, at+"/"+name+"(name)"); msg != "" {
						return msg
					}
				}
			case "maxProperties":
				if n, _ := num(kw); n.Cmp(big.NewRat(int64(len(m)), 1)) < 0 {
					return fail("too many")
				}
			}
		case "items", "minItems", "maxItems", "uniqueItems":
			a, ok := x.([]any)
			if !ok {
				continue
			}
			switch k {
			case "uniqueItems":
				if kw != true {
					continue
				}
				for i := range a {
					for j := range i {
						if jsEqual(a[i], a[j]) {
							return fail("items %d and %d equal", j, i)
						}
					}
				}
			case "items":
				for i, e := range a {
					if msg := v.check(kw, e, fmt.Sprintf("%s/%d", at, i)); msg != "" {
						return msg
					}
				}
			default:
				n, _ := num(kw)
				c := big.NewRat(int64(len(a)), 1).Cmp(n)
				if k == "minItems" && c < 0 || k == "maxItems" && c > 0 {
					return fail("count")
				}
			}
		default:
			panic("schema keyword the test validator does not know: " + k)
		}
	}
	return ""
}

// doc is a submission as generic JSON, numbers kept as written.
type doc = map[string]any

func parseDoc(t testing.TB, b []byte) doc {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m doc
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func encodeDoc(t testing.TB, m doc) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// schemaEAs are a few enumeration areas for the generator.
var schemaEAs = []synth.AreaInfo{
	{Code: "42.436.18070.001", Commune: "42.436.18070", Province: "42", Name: "Phường Bắc Hồng", Planned: 200},
	{Code: "01.001.00001.002", Commune: "01.001.00001", Province: "01", Name: "Phường Phúc Xá", Planned: 150},
	{Code: "66_x-Y.9", Commune: "66", Province: "66", Name: "Xã Ea Tân", Planned: 90},
}

// forSeeds calls fn with seeds 0, 1, … until n seeds ran or the test's
// deadline is near, and fails if fewer than min ran.
func forSeeds(t *testing.T, n, min int, fn func(seed int64)) {
	t.Helper()
	stop := testdeadline.Of(t)
	stop = stop.Add(-time.Until(stop) / 2) // leave the other tests their share
	ran := 0
	for seed := int64(0); seed < int64(n); seed++ {
		if time.Now().After(stop) {
			break
		}
		fn(seed)
		ran++
		if t.Failed() {
			return
		}
	}
	if ran < min {
		t.Fatalf("only %d seeds ran before the deadline, want at least %d", ran, min)
	}
}

// synthDoc is household i of the synthetic census of seed under f: the
// project's generator (broker/synth), or for exprtest the test's own
// (exprDoc), which knows its relevants, constraints and checks.
func synthDoc(t testing.TB, f *form.Form, seed int64, i int) []byte {
	t.Helper()
	if f.Name == "exprtest" {
		return exprDoc(t, f, seed, i)
	}
	g, err := synth.New(synth.Opts{Seed: seed, Form: f, EAs: schemaEAs})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := g.Household(i)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestJSONSchemaSynthetic: the project's synthetic households pass the
// validator and the schema alike.
func TestJSONSchemaSynthetic(t *testing.T) {
	for _, f := range schemaForms(t) {
		sch, err := f.JSONSchema()
		if err != nil {
			t.Fatal(err)
		}
		v := newJSValidator(t, sch)
		forSeeds(t, 200, 20, func(seed int64) {
			for i := range 5 {
				b := synthDoc(t, f, seed, i)
				if err := accepts(f, b); err != nil {
					t.Fatalf("%s seed %d household %d: validator refuses the generator's household: %v", f.Name, seed, i, err)
				}
				if msg := v.validate(b); msg != "" {
					t.Fatalf("%s seed %d household %d: schema refuses what the validator accepts: %s", f.Name, seed, i, msg)
				}
			}
		})
	}
}

// fieldDefs maps the household and person lists by field name.
func fieldDefs(f *form.Form) (hh, pf map[string]form.Field) {
	hh, pf = map[string]form.Field{}, map[string]form.Field{}
	for _, fd := range f.Household {
		hh[fd.Name] = fd
	}
	for _, fd := range f.Person {
		pf[fd.Name] = fd
	}
	return hh, pf
}

// spaces are the characters unicode.IsSpace reports that are not controls.
var spaces = []rune{' ', '\u00a0', '\u1680', '\u2000', '\u2005', '\u200a', '\u2028', '\u2029', '\u202f', '\u205f', '\u3000'}

// validValue draws a value the validator accepts for fd, across the whole
// of what it accepts: bounds exactly, codes anywhere in the list, strings
// of any length in characters with spaces around, phone numbers with and
// without +84, dates on month ends, decimals with exponents.
func validValue(r *rand.Rand, fd form.Field) any {
	switch fd.Type {
	case form.TypeString:
		n := 1 + r.IntN(fd.MaxLen)
		rs := make([]rune, n)
		alphabet := []rune("aZ9ễ😀Đ–\"\\/ ")
		for k := range rs {
			if r.IntN(3) == 0 {
				rs[k] = spaces[r.IntN(len(spaces))]
			} else {
				rs[k] = alphabet[r.IntN(len(alphabet))]
			}
		}
		rs[r.IntN(n)] = alphabet[r.IntN(len(alphabet)-1)] // one non-space
		return string(rs)
	case form.TypeInt:
		lo, hi := int64(*fd.Min), int64(*fd.Max)
		switch r.IntN(4) {
		case 0:
			return json.Number(fmt.Sprint(lo))
		case 1:
			return json.Number(fmt.Sprint(hi))
		}
		return json.Number(fmt.Sprint(lo + r.Int64N(hi-lo+1)))
	case form.TypeDecimal:
		lo, hi := *fd.Min, *fd.Max
		switch r.IntN(5) {
		case 0:
			return json.Number(fmt.Sprint(lo))
		case 1:
			return json.Number(fmt.Sprint(hi))
		case 2:
			return json.Number(fmt.Sprintf("%e", lo+r.Float64()*(hi-lo)))
		}
		return json.Number(fmt.Sprintf("%.3f", lo+r.Float64()*(hi-lo)))
	case form.TypeCode:
		return json.Number(fmt.Sprint(fd.Codes[r.IntN(len(fd.Codes))].Code))
	case form.TypeCodeSet:
		k := 1 + r.IntN(len(fd.Codes))
		set := make([]any, 0, k)
		for _, j := range r.Perm(len(fd.Codes))[:k] {
			set = append(set, json.Number(fmt.Sprint(fd.Codes[j].Code)))
		}
		return set
	case form.TypeDate:
		d := time.Date(1900+r.IntN(200), time.Month(1+r.IntN(12)), 1, 0, 0, 0, 0, time.UTC)
		if r.IntN(2) == 0 {
			d = d.AddDate(0, 1, -1) // the month's last day
		} else {
			d = d.AddDate(0, 0, r.IntN(28))
		}
		return d.Format(time.DateOnly)
	case form.TypePhone:
		digits := make([]byte, 9+r.IntN(3))
		for k := range digits {
			digits[k] = byte('0' + r.IntN(10))
		}
		if r.IntN(2) == 0 {
			return "+84" + string(digits)
		}
		return string(digits)
	}
	panic("type " + fd.Type)
}

// widen redraws a synthetic household across everything the validator
// accepts: every field that no expression reads (freeFields) redrawn,
// left out or null when optional, ids in capitals, supersedes set or
// null, the interview time written in the other ways Go's RFC 3339 reader
// takes.
func widen(r *rand.Rand, f *form.Form, m doc) {
	hh, pf := fieldDefs(f)
	free := freeFields(f)
	redraw := func(obj doc, defs map[string]form.Field) {
		for _, name := range slices.Sorted(mapKeys(defs)) {
			fd := defs[name]
			if !free[name] {
				continue
			}
			switch x := r.IntN(6); {
			case x == 0 && !fd.Required:
				delete(obj, name)
			case x == 1 && !fd.Required:
				obj[name] = nil
			case x < 4:
				obj[name] = validValue(r, fd)
			}
		}
	}
	redraw(m["household"].(doc), hh)
	for _, p := range m["persons"].([]any) {
		redraw(p.(doc), pf)
	}
	if r.IntN(3) == 0 {
		m["id"] = strings.ToUpper(m["id"].(string))
	}
	switch r.IntN(3) {
	case 0:
		m["supersedes"] = nil
	case 1:
		m["supersedes"] = fmt.Sprintf("%08x-0000-4000-8000-%012X", r.Uint32(), r.Int64N(1<<40))
	}
	at, err := time.Parse(time.RFC3339, m["interviewed_at"].(string))
	if err != nil {
		panic(err)
	}
	zones := []*time.Location{time.UTC, time.FixedZone("", 7*3600), time.FixedZone("", -(9*3600 + 30*60)), time.FixedZone("", 14*3600)}
	at = at.In(zones[r.IntN(len(zones))])
	formats := []string{time.RFC3339, time.RFC3339Nano, "2006-01-02T15:04:05.000Z07:00", "2006-01-02T15:04:05,000000Z07:00", "2006-01-02T3:04:05Z07:00"}
	layout := formats[r.IntN(len(formats))]
	if strings.Contains(layout, "T3:") && at.Hour() >= 12 {
		layout = time.RFC3339 // a one-digit hour only where it reads back the same
	}
	m["interviewed_at"] = at.Format(layout)
	if n, ok := num(m["household_no"]); ok && r.IntN(4) == 0 && n.IsInt() {
		m["household_no"] = json.Number([]string{"1", "1000000000"}[r.IntN(2)])
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestJSONSchemaNeverRejectsAccepted is the acceptance's property: across
// households redrawn over everything the validator accepts, the schema
// accepts every one the validator accepts.
func TestJSONSchemaNeverRejectsAccepted(t *testing.T) {
	for _, f := range schemaForms(t) {
		sch, err := f.JSONSchema()
		if err != nil {
			t.Fatal(err)
		}
		v := newJSValidator(t, sch)
		accepted, refused := 0, 0
		forSeeds(t, 400, 40, func(seed int64) {
			r := rand.New(rand.NewPCG(uint64(seed), 14))
			for i := range 5 {
				m := parseDoc(t, synthDoc(t, f, seed, i))
				widen(r, f, m)
				b := encodeDoc(t, m)
				if accepts(f, b) != nil {
					refused++
					continue
				}
				accepted++
				if msg := v.validate(b); msg != "" {
					t.Fatalf("%s seed %d household %d: the validator accepts, the schema refuses: %s", f.Name, seed, i, msg)
				}
			}
		})
		// The redraw must stay inside what the validator accepts nearly
		// always, or this property would test little.
		if accepted < 10*refused || accepted < 100 {
			t.Errorf("%s: %d redrawn households accepted, %d refused", f.Name, accepted, refused)
		}
	}
}

// mutation is a change the schema can express; each must be refused by
// both the validator and the schema.
type mutation struct {
	name   string
	change func(r *rand.Rand, f *form.Form, m doc) bool // false: not applicable to this form
}

// pickField returns a random field of the list with the given types, and
// the object (household or a random person) to change.
func pickField(r *rand.Rand, f *form.Form, m doc, ok func(form.Field) bool) (form.Field, doc, bool) {
	var cands []form.Field
	var objs []doc
	for _, fd := range f.Household {
		if ok(fd) {
			cands, objs = append(cands, fd), append(objs, m["household"].(doc))
		}
	}
	ps := m["persons"].([]any)
	p := ps[r.IntN(len(ps))].(doc)
	for _, fd := range f.Person {
		if ok(fd) {
			cands, objs = append(cands, fd), append(objs, p)
		}
	}
	if len(cands) == 0 {
		return form.Field{}, nil, false
	}
	k := r.IntN(len(cands))
	return cands[k], objs[k], true
}

func ofType(types ...string) func(form.Field) bool {
	return func(fd form.Field) bool { return slices.Contains(types, fd.Type) }
}

var mutations = []mutation{
	{"wrong type", func(r *rand.Rand, f *form.Form, m doc) bool {
		fd, obj, _ := pickField(r, f, m, func(form.Field) bool { return true })
		others := []any{true, false, doc{}, []any{}}
		if fd.Type != form.TypeCodeSet {
			others = append(others, []any{json.Number("1")})
		}
		if fd.Type == form.TypeInt || fd.Type == form.TypeDecimal || fd.Type == form.TypeCode {
			others = append(others, "1", "")
		} else {
			others = append(others, json.Number("1"), json.Number("912345678"))
		}
		obj[fd.Name] = others[r.IntN(len(others))]
		return true
	}},
	{"top-level wrong type", func(r *rand.Rand, f *form.Form, m doc) bool {
		k := []string{"id", "form", "form_version", "area", "household_no", "interviewed_at", "supersedes", "household", "persons"}[r.IntN(9)]
		switch k {
		case "form_version", "household_no":
			m[k] = fmt.Sprint(m[k])
		case "household":
			m[k] = []any{m[k]}
		case "persons":
			m[k] = m[k].([]any)[0]
		default:
			m[k] = json.Number("12")
		}
		return true
	}},
	{"out of range", func(r *rand.Rand, f *form.Form, m doc) bool {
		fd, obj, ok := pickField(r, f, m, ofType(form.TypeInt, form.TypeDecimal))
		if !ok {
			return false
		}
		step := 1.0
		if fd.Type == form.TypeDecimal {
			step = []float64{1e-6, 0.5, 1e6}[r.IntN(3)]
		}
		if r.IntN(2) == 0 {
			obj[fd.Name] = json.Number(fmt.Sprint(*fd.Min - step))
		} else {
			obj[fd.Name] = json.Number(fmt.Sprint(*fd.Max + step))
		}
		return true
	}},
	{"unknown code", func(r *rand.Rand, f *form.Form, m doc) bool {
		fd, obj, _ := pickField(r, f, m, ofType(form.TypeCode))
		for {
			c := r.IntN(form.MaxCodeValue+3) - 1
			if !slices.ContainsFunc(fd.Codes, func(k form.Code) bool { return k.Code == c }) {
				obj[fd.Name] = json.Number(fmt.Sprint(c))
				return true
			}
		}
	}},
	{"unknown key", func(r *rand.Rand, f *form.Form, m doc) bool {
		where := []doc{m, m["household"].(doc), m["persons"].([]any)[0].(doc)}[r.IntN(3)]
		where[[]string{"extra", "zz_unknown_1", "notes"}[r.IntN(3)]] = []any{"x", json.Number("0")}[r.IntN(2)]
		return true
	}},
	{"unknown key with null", func(r *rand.Rand, f *form.Form, m doc) bool {
		ps := m["persons"].([]any)
		where := []doc{m["household"].(doc), ps[r.IntN(len(ps))].(doc)}[r.IntN(2)]
		where[[]string{"extra", "zz_unknown_1", "notes"}[r.IntN(3)]] = nil
		return true
	}},
	{"bad code set", func(r *rand.Rand, f *form.Form, m doc) bool {
		fd, obj, ok := pickField(r, f, m, ofType(form.TypeCodeSet))
		if !ok {
			return false
		}
		first := json.Number(fmt.Sprint(fd.Codes[0].Code))
		unknown := json.Number("8") // no code of exprtest's sets
		switch r.IntN(6) {
		case 0:
			obj[fd.Name] = []any{}
		case 1:
			obj[fd.Name] = []any{first, first}
		case 2:
			obj[fd.Name] = []any{first, unknown}
		case 3:
			obj[fd.Name] = []any{string(first)}
		case 4:
			obj[fd.Name] = []any{[]any{first}}
		default:
			obj[fd.Name] = []any{first, nil}
		}
		return true
	}},
	{"invalid key name", func(r *rand.Rand, f *form.Form, m doc) bool {
		where := []doc{m["household"].(doc), m["persons"].([]any)[0].(doc)}[r.IntN(2)]
		where[[]string{"Sex", "1st", "a-b", "", strings.Repeat("a", 65)}[r.IntN(5)]] = nil // even null
		return true
	}},
	{"too many keys", func(r *rand.Rand, f *form.Form, m doc) bool {
		obj := m["household"].(doc)
		for k := 0; len(obj) <= form.MaxFields; k++ {
			obj[fmt.Sprintf("pad_%d", k)] = nil
		}
		return true
	}},
	{"missing required", func(r *rand.Rand, f *form.Form, m doc) bool {
		if r.IntN(3) == 0 {
			delete(m, []string{"id", "form", "form_version", "area", "household_no", "interviewed_at", "household", "persons"}[r.IntN(8)])
			return true
		}
		// A required field with a relevant is required only where it
		// holds: the relevant's x-constraint, not the schema's required.
		fd, obj, _ := pickField(r, f, m, func(fd form.Field) bool { return fd.Required && fd.Relevant == "" })
		if r.IntN(2) == 0 {
			delete(obj, fd.Name)
		} else {
			obj[fd.Name] = nil
		}
		return true
	}},
	{"bad string", func(r *rand.Rand, f *form.Form, m doc) bool {
		fd, obj, _ := pickField(r, f, m, ofType(form.TypeString))
		switch r.IntN(4) {
		case 0:
			obj[fd.Name] = strings.Repeat("ễ", fd.MaxLen+1)
		case 1:
			obj[fd.Name] = string(spaces[r.IntN(len(spaces))]) + string(spaces[r.IntN(len(spaces))])
		case 2:
			obj[fd.Name] = ""
		default:
			obj[fd.Name] = "a" + string([]rune{0, '\n', '\t', 0x7f, 0x85, 0x9f}[r.IntN(6)])
		}
		return true
	}},
	{"bad phone or date", func(r *rand.Rand, f *form.Form, m doc) bool {
		fd, obj, _ := pickField(r, f, m, ofType(form.TypePhone, form.TypeDate))
		bad := []string{"+8409123456", "091234567890", "09123456", "84912345678 ", "+85912345678", "０912345678"}
		if fd.Type == form.TypeDate {
			bad = []string{"2019-13-01", "2019-00-10", "2019-04-32", "2019-4-01", "19-04-01", "2019-04-01T00:00:00Z", "2019/04/01"}
		}
		obj[fd.Name] = bad[r.IntN(len(bad))]
		return true
	}},
	{"bad top-level value", func(r *rand.Rand, f *form.Form, m doc) bool {
		switch r.IntN(8) {
		case 0:
			m["id"] = "00000000-0000-0000-0000-000000000000"
		case 1:
			m["id"] = strings.ReplaceAll(m["id"].(string), "-", "")
		case 2:
			m["supersedes"] = "not-a-uuid"
		case 3:
			m["area"] = []string{"", "a b", strings.Repeat("1", 33), "đ"}[r.IntN(4)]
		case 4:
			m["household_no"] = json.Number([]string{"0", "-1", "1000000001"}[r.IntN(3)])
		case 5:
			m["form"] = "census2018"
		case 6:
			m["form_version"] = json.Number(fmt.Sprint(f.Version + 1))
		default:
			m["interviewed_at"] = []string{"2029-04-01", "2029-04-01T24:00:00Z", "2029-04-01t00:00:00z", "2029-04-01 00:00:00Z", "2029-04-01T00:00:00+0700", "2029-04-01T00:60:00Z"}[r.IntN(6)]
		}
		return true
	}},
	{"person count", func(r *rand.Rand, f *form.Form, m doc) bool {
		ps := m["persons"].([]any)
		if r.IntN(2) == 0 {
			m["persons"] = []any{}
			return true
		}
		for len(ps) <= form.MaxPersons {
			ps = append(ps, ps[0])
		}
		m["persons"] = ps
		return true
	}},
}

// TestJSONSchemaMutations: a valid household changed in a way the schema
// can express is refused by the validator and by the schema.
func TestJSONSchemaMutations(t *testing.T) {
	for _, f := range schemaForms(t) {
		sch, err := f.JSONSchema()
		if err != nil {
			t.Fatal(err)
		}
		v := newJSValidator(t, sch)
		tried := map[string]int{}
		forSeeds(t, 300, 30, func(seed int64) {
			r := rand.New(rand.NewPCG(uint64(seed), 15))
			for _, mu := range mutations {
				m := parseDoc(t, synthDoc(t, f, seed, r.IntN(50)))
				if !mu.change(r, f, m) {
					continue
				}
				tried[mu.name]++
				b := encodeDoc(t, m)
				if err := accepts(f, b); err == nil {
					t.Fatalf("%s seed %d %s: the validator accepts the mutation", f.Name, seed, mu.name)
				}
				if msg := v.validate(b); msg == "" {
					t.Fatalf("%s seed %d %s: the schema accepts what the validator refuses", f.Name, seed, mu.name)
				}
			}
		})
		for _, mu := range mutations {
			if tried[mu.name] == 0 && (mu.name != "bad code set" || f.Name == "exprtest") {
				t.Errorf("%s: mutation %q never tried", f.Name, mu.name)
			}
		}
	}
}

// TestJSONSchemaConstraints: each x-constraint names a rule the validator
// applies and the schema does not — a submission breaking only that rule
// passes the schema and is refused by the validator — and the list is the
// same bytes every time.
func TestJSONSchemaConstraints(t *testing.T) {
	f := schemaForms(t)[1]
	sch, err := f.JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := f.JSONSchema()
	reparsed, _ := form.Parse([]byte(schemaForm))
	third, _ := reparsed.JSONSchema()
	if !bytes.Equal(sch, again) || !bytes.Equal(sch, third) {
		t.Error("JSONSchema is not the same bytes for the same form")
	}
	for _, c := range sch {
		if c >= 0x7f {
			t.Fatal("schema is not ASCII")
		}
	}
	var top struct {
		Constraints []form.Constraint `json:"x-constraints"`
	}
	if err := json.Unmarshal(sch, &top); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, c := range top.Constraints {
		if ids[c.ID] || c.Description == "" {
			t.Errorf("constraint %q repeated or without description", c.ID)
		}
		ids[c.ID] = true
	}
	v := newJSValidator(t, sch)
	breaks := map[string]func(m doc){
		form.ConstraintIntegerLiteral: func(m doc) { hh(m)["rooms"] = json.Number("2.0") },
		form.ConstraintDateCalendar:   func(m doc) { hh(m)["listed"] = "2029-02-29" },
		form.ConstraintTimeCalendar:   func(m doc) { m["interviewed_at"] = "2029-04-31T10:00:00Z" },
		form.ConstraintTimeEarliest:   func(m doc) { m["interviewed_at"] = "2028-12-29T23:59:59+07:00" },
		form.ConstraintTimeFuture:     func(m doc) { m["interviewed_at"] = clockOf(f).Add(25 * time.Hour).Format(time.RFC3339) },
		form.ConstraintSupersedesNot:  func(m doc) { m["supersedes"] = strings.ToUpper(m["id"].(string)) },
		form.ConstraintStrictJSON:     nil, // below, on raw bytes
	}
	for id := range ids {
		br, known := breaks[id]
		if !known {
			t.Errorf("constraint %q has no test", id)
			continue
		}
		if br == nil {
			continue
		}
		m := parseDoc(t, synthDoc(t, f, 1, 0))
		br(m)
		b := encodeDoc(t, m)
		if msg := v.validate(b); msg != "" {
			t.Errorf("%s: the schema refuses (%s): it is no x-constraint", id, msg)
		}
		if accepts(f, b) == nil {
			t.Errorf("%s: the validator accepts", id)
		}
	}
	for id := range breaks {
		if !ids[id] {
			t.Errorf("constraint %q missing from the schema", id)
		}
	}
	// strict-json: a duplicate key passes the schema (the JSON reader keeps
	// the last) and is refused by Decode.
	b := synthDoc(t, f, 1, 0)
	dup := append([]byte(`{"area":"x y",`), b[1:]...)
	if msg := v.validate(dup); msg != "" {
		t.Errorf("duplicate key: schema refuses: %s", msg)
	}
	if accepts(f, dup) == nil {
		t.Error("duplicate key: validator accepts")
	}
	// Decimals are compared exactly, by the validator as by the schema (no
	// x-constraint): a literal beyond a bound by less than half an ulp of
	// float64 is refused by both, one as near inside is accepted by both.
	for lit, ok := range map[string]bool{
		"99.50000000000000000001": false, "99.5": true, "99.49999999999999999999": true, "9.95e1": true, "995e-1": true,
		"0.49999999999999999999": false, "0.5": true, "0.50000000000000000001": true, "5E-1": true,
	} {
		m := parseDoc(t, synthDoc(t, f, 1, 0))
		hh(m)["area_m2"] = json.Number(lit)
		b = encodeDoc(t, m)
		if (accepts(f, b) == nil) != ok || (v.validate(b) == "") != ok {
			t.Errorf("area_m2 %s: validator %v, schema %q, want accepted %v", lit, accepts(f, b), v.validate(b), ok)
		}
	}
	// census2019 lists no date-calendar: it has no date field.
	d, _ := form.Default().JSONSchema()
	if bytes.Contains(d, []byte(form.ConstraintDateCalendar)) {
		t.Error("census2019 schema lists date-calendar without a date field")
	}
}

// TestJSONSchemaExprConstraints: the form's relevants, constraints and
// checks are in x-constraints, one each with its stable id and
// expression, and each is a rule the validator applies and the schema
// cannot: a household breaking only that rule passes the schema and gets
// exactly the problem the rule gives.
func TestJSONSchemaExprConstraints(t *testing.T) {
	f := exprForm(t)
	sch, err := f.JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	var top struct {
		Constraints []form.Constraint `json:"x-constraints"`
	}
	if err := json.Unmarshal(sch, &top); err != nil {
		t.Fatal(err)
	}
	exprs := map[string]string{}
	for _, fd := range f.Household {
		if fd.Relevant != "" {
			exprs["relevant:household/"+fd.Name] = fd.Relevant
		}
		if fd.Constraint != "" {
			exprs["constraint:household/"+fd.Name] = fd.Constraint
		}
	}
	for _, fd := range f.Person {
		if fd.Relevant != "" {
			exprs["relevant:persons/"+fd.Name] = fd.Relevant
		}
		if fd.Constraint != "" {
			exprs["constraint:persons/"+fd.Name] = fd.Constraint
		}
	}
	for _, c := range f.Checks {
		exprs["check:"+c.ID] = c.Expr
	}
	got := map[string]bool{}
	for _, c := range top.Constraints {
		if !strings.Contains(c.ID, ":") {
			continue
		}
		got[c.ID] = true
		if want, ok := exprs[c.ID]; !ok || c.Expr != want {
			t.Errorf("%s: expr %q, want %q", c.ID, c.Expr, want)
		}
		if len(c.Where) == 0 {
			t.Errorf("%s: no where", c.ID)
		}
	}
	if len(got) != len(exprs) {
		t.Errorf("x-constraints %v, want one for each of %v", got, exprs)
	}
	person := func(m doc, p doc) { m["persons"] = append(m["persons"].([]any), p) }
	type bre struct {
		change func(m doc)
		want   string
	}
	breaks := map[string][]bre{
		"relevant:household/water_other": {
			{func(m doc) { hh(m)["water_other"] = "river" }, "household.water_other: not relevant"},
			{func(m doc) { hh(m)["water"] = []any{9} }, "household.water_other: required"},
		},
		"relevant:household/toilet_type": {{func(m doc) { hh(m)["has_toilet"] = 2 }, "household.toilet_type: not relevant"}},
		"relevant:persons/worked": {{func(m doc) {
			person(m, doc{"full_name": "Bé", "relationship": 3, "sex": 1, "birth_year": 2020, "worked": 2})
		}, "persons[1].worked: not relevant"}},
		"relevant:persons/hours": {
			{func(m doc) {
				person(m, doc{"full_name": "An", "relationship": 4, "sex": 1, "birth_year": 1990, "worked": 2, "hours": 8})
			}, "persons[1].hours: not relevant"},
			{func(m doc) {
				person(m, doc{"full_name": "An", "relationship": 4, "sex": 1, "birth_year": 1990, "worked": 1})
			}, "persons[1].hours: required"},
		},
		"relevant:persons/activities": {{func(m doc) {
			person(m, doc{"full_name": "An", "relationship": 4, "sex": 1, "birth_year": 1990, "worked": 1, "hours": 8, "activities": []any{1}})
		}, "persons[1].activities: not relevant"}},
		"relevant:persons/children": {{func(m doc) {
			person(m, doc{"full_name": "An", "relationship": 4, "sex": 1, "birth_year": 1990, "worked": 1, "hours": 8, "children": 0})
		}, "persons[1].children: not relevant"}},
		"relevant:persons/uses_phone": {{func(m doc) {
			person(m, doc{"full_name": "An", "relationship": 4, "sex": 1, "birth_year": 1990, "worked": 1, "hours": 8, "uses_phone": 1})
		}, "persons[1].uses_phone: not relevant"}},
		"constraint:household/sleeping_rooms": {{func(m doc) { hh(m)["sleeping_rooms"] = 4 }, "household.sleeping_rooms: more sleeping rooms than rooms"}},
		"constraint:household/rent":           {{func(m doc) { hh(m)["rent"] = json.Number("9.99") }, "household.rent: rent is 0 or at least 10"}},
		"constraint:household/note":           {{func(m doc) { hh(m)["note"] = "ab" }, "household.note: constraint not met"}},
		"constraint:persons/activities": {{func(m doc) {
			person(m, doc{"full_name": "An", "relationship": 4, "sex": 1, "birth_year": 1990, "worked": 2, "activities": []any{5, 6}})
		}, "persons[1].activities: 'none' goes alone"}},
		"constraint:persons/children": {{func(m doc) {
			person(m, doc{"full_name": "Chi", "relationship": 3, "sex": 2, "birth_year": 2010, "worked": 2, "children": 10})
		}, "persons[1].children: constraint not met"}},
		"check:head_age": {{func(m doc) {
			person(m, doc{"full_name": "Bé", "relationship": 1, "sex": 1, "birth_year": 2020})
		}, "persons[1]: check head_age: the head of household is at least 15"}},
		"check:toilet_rooms": {{func(m doc) { hh(m)["rooms"] = 0; delete(hh(m), "sleeping_rooms") }, "check toilet_rooms: a household with a toilet has a room"}},
		"check:rent_note":    {{func(m doc) { hh(m)["rent"] = 60000; delete(hh(m), "note") }, "check rent_note: not met"}},
		"check:water_count": {{func(m doc) { hh(m)["water"] = []any{1, 2, 3, 5, 9}; hh(m)["water_other"] = "river" },
			"check water_count: at most four sources of water"}},
	}
	v := newJSValidator(t, sch)
	if b := encodeDoc(t, exprBase()); accepts(f, b) != nil || v.validate(b) != "" {
		t.Fatalf("base household: validator %v, schema %q", accepts(f, b), v.validate(b))
	}
	for id := range exprs {
		if len(breaks[id]) == 0 {
			t.Errorf("%s: no test breaks it", id)
		}
	}
	for id, bs := range breaks {
		if !got[id] {
			t.Errorf("%s: not in x-constraints", id)
		}
		for _, br := range bs {
			m := exprBase()
			// Round-trip the base through JSON so that numbers are
			// json.Number as the validator reads them.
			m = parseDoc(t, encodeDoc(t, m))
			br.change(m)
			b := encodeDoc(t, m)
			if msg := v.validate(b); msg != "" {
				t.Errorf("%s: the schema refuses (%s): it is no x-constraint", id, msg)
			}
			err := accepts(f, b)
			if ps := problems(t, err); len(ps) != 1 || ps[0] != br.want {
				t.Errorf("%s: problems %q, want %q", id, ps, br.want)
			}
		}
	}
}
