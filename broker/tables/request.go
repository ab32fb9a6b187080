package tables

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/internal/strictjson"
	"github.com/censusvault/censusvault/broker/sdc"
	"github.com/censusvault/censusvault/broker/wire"
)

// Limits on a request, before any disclosure-control limit.
const (
	MaxRequestBytes = 64 << 10 // body of a table request
	maxFilterVars   = 16
	maxFilterValues = 1000
	maxPurpose      = 500
	// FilterArea is the filter key restricting a table to areas'
	// subtrees.
	FilterArea = "area"
)

// Formats of a released table.
const (
	FormatJSON = wire.TableJSON
	FormatCSV  = wire.TableCSV
)

// Measure is what each cell holds: a count, or the sum or mean of a
// numeric variable.
type Measure struct {
	Op  string // "count", "sum" or "mean"
	Var string // for sum and mean
}

// MarshalJSON writes "count" or {"sum":"var"} / {"mean":"var"}.
func (m Measure) MarshalJSON() ([]byte, error) {
	if m.Op == "count" {
		return []byte(`"count"`), nil
	}
	return json.Marshal(map[string]string{m.Op: m.Var})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (m *Measure) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s != "count" {
			return fmt.Errorf(`measure %q: use "count", {"sum": VAR} or {"mean": VAR}`, clip(s))
		}
		*m = Measure{Op: "count"}
		return nil
	}
	var o map[string]string
	if err := json.Unmarshal(b, &o); err != nil || len(o) != 1 {
		return errors.New(`measure: use "count", {"sum": VAR} or {"mean": VAR}`)
	}
	for op, v := range o {
		if op != "sum" && op != "mean" {
			return fmt.Errorf(`measure %q: use "count", {"sum": VAR} or {"mean": VAR}`, clip(op))
		}
		*m = Measure{Op: op, Var: v}
	}
	return nil
}

// Request is a table request as a researcher sends it (POST /v1/tables),
// and, normalized, as the audit log keeps it.
type Request struct {
	Project string `json:"project"`
	Purpose string `json:"purpose,omitempty"` // not part of the normalized request (the audit event holds it)
	Unit    Unit   `json:"unit"`
	Rows    []string
	Cols    []string
	// Filter keeps records whose variable has one of the listed values
	// (codes as numbers or strings, age bands as "15-19"), and with key
	// "area", records in the listed areas' subtrees.
	Filter  map[string][]string
	Measure Measure

	// Table, Area and Point ask for a standard table of the catalogue
	// (CompileStandard): its id, the area it is for, and the name of the
	// publication point ("as_of"; empty: the latest).
	Table string
	Area  string
	Point string
	// Rho is a custom (dp) table's zCDP budget as a decimal ("0.02");
	// the broker fills in the default when the request names none.
	Rho string
	// custom says the body named rows, cols, filter, measure or unit: a
	// free-form table.
	custom bool
}

// Custom reports whether the request asks for a free-form table (rows,
// cols, filter, measure or unit), not a standard one.
func (r *Request) Custom() bool { return r.custom }

type wireRequest struct {
	Project string                       `json:"project"`
	Purpose string                       `json:"purpose"`
	Unit    Unit                         `json:"unit"`
	Rows    []string                     `json:"rows"`
	Cols    []string                     `json:"cols"`
	Filter  map[string][]json.RawMessage `json:"filter"`
	Measure *Measure                     `json:"measure"`
	Table   string                       `json:"table"`
	Area    string                       `json:"area"`
	AsOf    json.RawMessage              `json:"as_of"`
	Rho     string                       `json:"rho"`
}

// ParseRequest decodes a request body strictly (package strictjson): one
// JSON object, known keys only, each once and spelt exactly, valid UTF-8
// without control characters, no trailing data, at most MaxRequestBytes.
func ParseRequest(body []byte) (*Request, error) {
	if len(body) > MaxRequestBytes {
		return nil, fmt.Errorf("request is %d bytes; at most %d", len(body), MaxRequestBytes)
	}
	var w wireRequest
	if err := strictjson.Decode(body, &w); err != nil {
		return nil, fmt.Errorf("request is not a valid table request: %s", jsonProblem(err))
	}
	r := &Request{Project: w.Project, Purpose: w.Purpose, Unit: w.Unit, Rows: w.Rows, Cols: w.Cols, Table: w.Table, Area: w.Area, Rho: w.Rho}
	r.custom = w.Unit != "" || w.Rows != nil || w.Cols != nil || w.Filter != nil || w.Measure != nil || w.Rho != ""
	if len(w.AsOf) > 0 && string(w.AsOf) != "null" {
		if err := json.Unmarshal(w.AsOf, &r.Point); err != nil {
			return nil, errors.New("as_of takes the name of a publication point (GET /v1/release-points lists them), not an audit index")
		}
		if r.Point == "" {
			return nil, errors.New("as_of is empty: name a publication point, or leave as_of out for the latest")
		}
	}
	if r.Unit == "" {
		r.Unit = Persons
	}
	if w.Measure == nil {
		r.Measure = Measure{Op: "count"}
	} else {
		r.Measure = *w.Measure
	}
	if len(w.Filter) > maxFilterVars {
		return nil, fmt.Errorf("filter names %d variables; at most %d", len(w.Filter), maxFilterVars)
	}
	if len(w.Filter) > 0 {
		r.Filter = make(map[string][]string, len(w.Filter))
	}
	for k, vals := range w.Filter {
		if len(vals) == 0 {
			return nil, fmt.Errorf("filter %s lists no values", clip(k))
		}
		if len(vals) > maxFilterValues {
			return nil, fmt.Errorf("filter %s lists %d values; at most %d", clip(k), len(vals), maxFilterValues)
		}
		out := make([]string, 0, len(vals))
		for _, raw := range vals {
			var s string
			if err := json.Unmarshal(raw, &s); err == nil {
				out = append(out, s)
				continue
			}
			var n json.Number
			d := json.NewDecoder(bytes.NewReader(raw))
			d.UseNumber()
			if err := d.Decode(&n); err != nil {
				return nil, fmt.Errorf("filter %s: values are codes (numbers) or strings", clip(k))
			}
			if _, err := strconv.ParseInt(n.String(), 10, 64); err != nil {
				return nil, fmt.Errorf("filter %s: %s is not a whole number", clip(k), clip(n.String()))
			}
			out = append(out, n.String())
		}
		r.Filter[k] = out
	}
	return r, nil
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("JSON syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("%s must be %s", te.Field, te.Type)
	}
	// strictjson's own errors are already bounded and name no value.
	return strings.TrimPrefix(err.Error(), "json: ")
}

// RequestError is a request the engine will not compute. Denied says it
// asks for something outside the project (an identifying or unlisted
// variable, a foreign area): a permission matter, not a malformed request.
type RequestError struct {
	Denied bool
	Msg    string
}

func (e *RequestError) Error() string { return e.Msg }

func invalidf(format string, args ...any) error {
	return &RequestError{Msg: fmt.Sprintf(format, args...)}
}

func deniedf(format string, args ...any) error {
	return &RequestError{Denied: true, Msg: fmt.Sprintf(format, args...)}
}

// Project is what the engine needs of a research project.
type Project struct {
	ID        string
	Areas     []string // each with its subtree
	Variables []string // analytic variables and derived ones it may use
}

// Normalized is the canonical JSON of a compiled request: the request
// with defaults filled in, filter values sorted and deduplicated, the
// as-of point and the disclosure-control parameters. It is what the
// audit log keeps and what Replay recomputes from.
type Normalized struct {
	AsOf    int64               `json:"as_of"`
	Cols    []string            `json:"cols"`
	Filter  map[string][]string `json:"filter"`
	Format  string              `json:"format"`
	Measure Measure             `json:"measure"`
	Project string              `json:"project"`
	Rows    []string            `json:"rows"`
	SDC     string              `json:"sdc"`
	Unit    Unit                `json:"unit"`
}

// Encode returns the canonical bytes (keys sorted, no spaces).
func (n *Normalized) Encode() string { return canonicalJSON(n) }

// ParseNormalized reads what Encode wrote (for Replay).
func ParseNormalized(s string) (*Normalized, error) {
	return parseCanonical[Normalized](s, "a normalized table request")
}

// canonicalJSON is v's JSON with struct fields in their (sorted) order,
// map keys sorted and no spaces: the normalized requests are made of
// strings, integers and maps of them only, which always encode.
func canonicalJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("tables: normalized request does not encode: " + err.Error())
	}
	return string(b)
}

// parseCanonical reads s strictly as a T and refuses it unless it is
// T's canonical form (canonicalJSON), so that what the audit log holds
// is exactly what a replay recompiles.
func parseCanonical[T any](s, what string) (*T, error) {
	var n T
	if err := strictjson.Decode([]byte(s), &n); err != nil {
		return nil, fmt.Errorf("not %s: %s", what, jsonProblem(err))
	}
	if canonicalJSON(&n) != s {
		return nil, fmt.Errorf("not %s: not in canonical form", what)
	}
	return &n, nil
}

// dimSource says where a dimension's value comes from.
type dimSource uint8

const (
	srcHousehold dimSource = iota // a household column
	srcPerson                     // a person column
	srcAgeBand                    // derived from the person's age
	srcArea                       // the household's EA's ancestor at a level
)

type dim struct {
	name   string
	src    dimSource
	col    int
	level  area.Level
	n      int     // categories
	catOf  []int32 // coded: stored index+1 -> category or -1; area: area index -> category or -1
	values []string
	labels []string
}

type filterSpec struct {
	name  string
	src   dimSource
	col   int
	allow []bool // coded: by stored index+1; age band: by band
}

// Plan is a compiled request, ready to run.
type Plan struct {
	Norm     Normalized
	Purpose  string
	params   sdc.Params
	unit     Unit
	rows     []dim
	cols     []dim
	filters  []filterSpec
	universe []bool // by area index: EAs the table covers
	// Areas are the areas the table covers (the project's areas, or the
	// filter's): the caller checks the requester may see each.
	Areas   []area.Code
	measure *variable
	op      string
	R, C    int // inner categories of the row and column blocks (C = 0 without cols)
	// eaAsOf, when set, is the point of the deposit sequence each EA is
	// computed as of (by area index): a publication point freezes each
	// area at its own point. Nil: every EA as of Norm.AsOf.
	eaAsOf []int64
	// std is set for a standard table of the catalogue (CompileStandard):
	// its normalized request, its catalogue entry and its area.
	std      *StandardNorm
	stdTable *StandardTable
	stdArea  areaRef
	// dp is set for a custom table under differential privacy
	// (CompileDP).
	dp *dpPlan
}

// Cells is the number of cells the table releases, margins included.
func (p *Plan) Cells() int { return (p.R + 1) * p.width() }

func (p *Plan) width() int {
	if len(p.cols) == 0 {
		return 1
	}
	return p.C + 1
}

// Compile checks a request against the schema, the project and the
// disclosure-control limits, and prepares it. format is FormatJSON or
// FormatCSV; asOf is the point to compute as of (the caller resolves the
// default and checks it is not in the future).
func (c *Cache) Compile(r *Request, proj Project, params sdc.Params, format string, asOf int64) (*Plan, error) {
	if err := params.Validate(); err != nil {
		return nil, err
	}
	if format != FormatJSON && format != FormatCSV {
		return nil, invalidf("format %q: json or csv", clip(format))
	}
	if r.Project != proj.ID {
		return nil, invalidf("request names project %q, not %q", clip(r.Project), proj.ID)
	}
	if len(r.Purpose) > maxPurpose {
		return nil, invalidf("purpose is %d bytes; at most %d", len(r.Purpose), maxPurpose)
	}
	s, g := c.schema, c.geo
	p := &Plan{params: params, unit: r.Unit, Purpose: r.Purpose, op: r.Measure.Op}
	if r.Unit != Persons && r.Unit != Households {
		return nil, invalidf("unit %q: persons or households", clip(string(r.Unit)))
	}

	// Variables: known, analytic, listed by the project, at the unit's level.
	use := func(name, as string) (*variable, error) {
		if lv, err := area.ParseLevel(name); err == nil {
			if lv == area.Nation {
				return nil, invalidf("%s %q: the nation is the table's total; use province, district, commune or ea", as, name)
			}
			return nil, nil // an area level
		}
		v, ok := s.vars[name]
		if !ok {
			if cl, ok := s.closed[name]; ok {
				return nil, deniedf("%s %q is an %s field: tables may name analytic variables only", as, clip(name), cl)
			}
			return nil, invalidf("%s %q: no such variable (variables: %s; area levels: province, district, commune, ea)", as, clip(name), strings.Join(s.order, ", "))
		}
		if !slices.Contains(proj.Variables, name) {
			return nil, deniedf("%s %q is not among project %s's variables (%s)", as, name, proj.ID, strings.Join(proj.Variables, ", "))
		}
		if r.Unit == Households && v.level == personLevel {
			return nil, invalidf("%s %q is a person variable: a table of households may use household variables and area levels only", as, name)
		}
		return v, nil
	}

	if len(r.Rows) == 0 {
		return nil, invalidf("rows: name at least one variable or area level")
	}
	if err := params.CheckShape(len(r.Rows)+len(r.Cols), 1); err != nil {
		return nil, invalidf("%v", err)
	}
	seen := map[string]bool{}
	for _, name := range slices.Concat(r.Rows, r.Cols) {
		if seen[name] {
			return nil, invalidf("%q appears twice among rows and cols", clip(name))
		}
		seen[name] = true
	}

	// Areas: the project's, narrowed by an area filter that must stay
	// inside them.
	projAreas := make([]int32, 0, len(proj.Areas))
	for _, a := range proj.Areas {
		i, ok := g.index[area.Code(a)]
		if !ok {
			return nil, invalidf("project %s names area %s, which is not in the area tree", proj.ID, clip(a))
		}
		projAreas = append(projAreas, i)
	}
	inProject := func(i int32) bool {
		for _, a := range projAreas {
			if g.within(i, a) {
				return true
			}
		}
		return false
	}
	cover := projAreas
	if codes, ok := r.Filter[FilterArea]; ok {
		cover = nil
		for _, code := range codes {
			i, ok := g.index[area.Code(code)]
			if !ok {
				return nil, invalidf("filter area %q: no such area", clip(code))
			}
			if !inProject(i) {
				return nil, deniedf("filter area %s is outside project %s's areas", code, proj.ID)
			}
			if !slices.Contains(cover, i) {
				cover = append(cover, i)
			}
		}
	}
	slices.Sort(cover)
	// Drop areas inside another listed area: they add nothing.
	var top []int32
	for _, i := range cover {
		if len(top) == 0 || !g.within(i, top[len(top)-1]) {
			top = append(top, i)
		}
	}
	p.universe = make([]bool, len(g.codes))
	for _, a := range top {
		for i := a; i < g.end[a]; i++ {
			if g.levels[i] == area.EA {
				p.universe[i] = true
			}
		}
		p.Areas = append(p.Areas, g.codes[a])
	}

	// Filters.
	var keys []string
	for k := range r.Filter {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	norm := map[string][]string{}
	for _, k := range keys {
		vals := slices.Clone(r.Filter[k])
		if k == FilterArea {
			slices.Sort(vals)
			norm[k] = slices.Compact(vals)
			continue
		}
		v, err := use(k, "filter")
		if err != nil {
			return nil, err
		}
		if v == nil {
			return nil, invalidf("filter %q: filter areas with \"area\": [codes]", k)
		}
		if !v.dimension() {
			return nil, invalidf("filter %q is a continuous variable: only coded variables and age_group5 can filter", k)
		}
		f := filterSpec{name: k, col: v.col}
		switch {
		case v.kind == derivedBand:
			f.src, f.allow = srcAgeBand, make([]bool, AgeGroup5Bands)
			for _, x := range vals {
				b := bandOf(x)
				if b < 0 {
					return nil, invalidf("filter %s: %q is not a band (0-4, 5-9, …, 95-99, 100+)", k, clip(x))
				}
				f.allow[b] = true
			}
		default:
			f.src = srcHousehold
			if v.level == personLevel {
				f.src = srcPerson
			}
			f.allow = make([]bool, len(v.values)+1)
			for i, x := range vals {
				n, err := strconv.ParseInt(x, 10, 64)
				cat := -1
				if err == nil {
					cat = v.category(n)
				}
				if cat < 0 {
					return nil, invalidf("filter %s: %q is not one of its codes", k, clip(x))
				}
				f.allow[cat+1] = true
				vals[i] = strconv.FormatInt(n, 10) // "01", "+1" and 1 are one code
			}
		}
		p.filters = append(p.filters, f)
		slices.Sort(vals)
		norm[k] = slices.Compact(vals)
	}

	// Dimensions.
	mk := func(name string) (dim, error) {
		v, err := use(name, "dimension")
		if err != nil {
			return dim{}, err
		}
		if v == nil {
			lv, _ := area.ParseLevel(name)
			return p.areaDim(g, lv), nil
		}
		if !v.dimension() {
			return dim{}, invalidf("dimension %q is a continuous variable: use it as a measure ({\"sum\": %q} or {\"mean\": %q})", name, name, name)
		}
		d := codedDim(v)
		for _, f := range p.filters {
			if f.name == name {
				d.restrict(f.allow) // a filtered variable's categories are the kept ones
			}
		}
		return d, nil
	}
	p.R, p.C = 1, 1
	for _, name := range r.Rows {
		d, err := mk(name)
		if err != nil {
			return nil, err
		}
		p.rows = append(p.rows, d)
		p.R *= d.n
		if p.R > params.MaxCells {
			break
		}
	}
	for _, name := range r.Cols {
		d, err := mk(name)
		if err != nil {
			return nil, err
		}
		p.cols = append(p.cols, d)
		p.C *= d.n
		if p.C > params.MaxCells {
			break
		}
	}
	if len(p.cols) == 0 {
		p.C = 0
	}
	if p.R > params.MaxCells || p.C > params.MaxCells {
		return nil, invalidf("table would have more than %d cells; at most %d", params.MaxCells, params.MaxCells)
	}
	if err := params.CheckShape(len(p.rows)+len(p.cols), p.Cells()); err != nil {
		return nil, invalidf("%v (margins included)", err)
	}

	// Measure.
	switch r.Measure.Op {
	case "count":
	case "sum", "mean":
		v, err := use(r.Measure.Var, "measure")
		if err != nil {
			return nil, err
		}
		if v == nil || !v.measurable() {
			return nil, invalidf("measure %q is not a numeric variable", clip(r.Measure.Var))
		}
		if (r.Unit == Persons) != (v.level == personLevel) {
			return nil, invalidf("measure %q is a %s variable: sum it over %ss", r.Measure.Var, v.level, v.level)
		}
		p.measure = v
	default:
		return nil, invalidf(`measure: use "count", {"sum": VAR} or {"mean": VAR}`)
	}

	p.Norm = Normalized{
		AsOf: asOf, Rows: slices.Clone(r.Rows), Cols: slices.Clone(r.Cols), Filter: norm, Format: format,
		Measure: r.Measure, Project: proj.ID, SDC: params.Canonical(), Unit: r.Unit,
	}
	if p.Norm.Cols == nil {
		p.Norm.Cols = []string{}
	}
	return p, nil
}

// codedDim is a dimension over a coded variable or the age bands, with a
// "not stated" category last for variables that may be absent.
func codedDim(v *variable) dim {
	d := dim{name: v.name, col: v.col}
	if v.kind == derivedBand {
		d.src, d.n = srcAgeBand, AgeGroup5Bands
		d.catOf = make([]int32, AgeGroup5Bands)
		for b := range AgeGroup5Bands {
			d.catOf[b] = int32(b)
			d.values = append(d.values, AgeGroup5Label(b))
			d.labels = append(d.labels, AgeGroup5Label(b))
		}
		return d
	}
	d.src = srcHousehold
	if v.level == personLevel {
		d.src = srcPerson
	}
	d.n = len(v.values)
	d.catOf = make([]int32, len(v.values)+1)
	d.catOf[0] = -1
	for i, x := range v.values {
		d.catOf[i+1] = int32(i)
		d.values = append(d.values, strconv.FormatInt(x, 10))
		d.labels = append(d.labels, v.labels[i])
	}
	if !v.required {
		d.catOf[0] = int32(d.n)
		d.n++
		d.values = append(d.values, NotStated)
		d.labels = append(d.labels, "not stated")
	}
	return d
}

// restrict keeps only the categories a filter lets through (allow is
// indexed as catOf: stored value index+1 for a coded variable, band for
// age_group5), so a filtered dimension has no structurally empty
// categories that would only spend budget.
func (d *dim) restrict(allow []bool) {
	var values, labels []string
	n := int32(0)
	for k, cat := range d.catOf {
		if cat < 0 || k >= len(allow) || !allow[k] {
			d.catOf[k] = -1
			continue
		}
		values, labels = append(values, d.values[cat]), append(labels, d.labels[cat])
		d.catOf[k] = n
		n++
	}
	d.values, d.labels, d.n = values, labels, int(n)
}

// NotStated is the category of a record without a value for an optional
// variable.
const NotStated = "not_stated"

// areaDim is a dimension over the areas at level lv that meet the
// table's areas, in tree order. Its catOf is indexed by EA: the category
// of the area at level lv above it.
func (p *Plan) areaDim(g *geo, lv area.Level) dim {
	d := dim{name: lv.String(), src: srcArea, level: lv, catOf: make([]int32, len(g.codes))}
	// catOf first marks the areas at level lv that hold a covered EA (-2),
	// then numbers them in tree order, then is overwritten for EAs with
	// their ancestor's category. Areas at level lv come before their EAs
	// in tree order, and an area at lv above the EA level is never an EA.
	for i := range d.catOf {
		d.catOf[i] = -1
	}
	for i := range g.codes {
		if g.levels[i] == area.EA && p.universe[i] {
			d.catOf[g.eaAnc[i][lv]] = -2
		}
	}
	for a := range g.codes {
		if d.catOf[a] == -2 {
			d.catOf[a] = int32(d.n)
			d.n++
			d.values = append(d.values, string(g.codes[a]))
			d.labels = append(d.labels, g.names[a])
		}
	}
	if lv == area.EA {
		return d // an EA's category is its own
	}
	for i := range d.catOf {
		switch {
		case g.levels[i] == area.EA && p.universe[i]:
			d.catOf[i] = d.catOf[g.eaAnc[i][lv]]
		case g.levels[i] == area.EA:
			d.catOf[i] = -1
		}
	}
	return d
}

func bandOf(label string) int {
	for b := range AgeGroup5Bands {
		if AgeGroup5Label(b) == label {
			return b
		}
	}
	return -1
}
