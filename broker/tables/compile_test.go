package tables

import (
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/sdc"
)

// TestCompileRefusals checks every refusal of Compile and its kind:
// Denied for what lies outside the project, invalid for a malformed or
// impossible request.
func TestCompileRefusals(t *testing.T) {
	f := shared(t)
	c, tr := f.cache, f.tree
	provs := areasAt(tr, area.Province)
	prov, other := provs[0], provs[1]
	district := tr.Children(prov)[0]
	// The project lists identifying and operational fields too: they must
	// be refused for their class, whatever the project says.
	proj := Project{ID: "p1", Areas: []string{string(prov)}, Variables: []string{
		"sex", "age_group5", "age", "tenure", "dwelling_type", "floor_area_m2", "birth_year", "birth_month",
		"head_name", "full_name", "phone", "visit_count", "response_type", "address",
	}}
	base := func() *Request {
		return &Request{Project: "p1", Unit: Persons, Rows: []string{"sex"}, Measure: Measure{Op: "count"}}
	}
	hh := func() *Request {
		r := base()
		r.Unit, r.Rows = Households, []string{"dwelling_type"}
		return r
	}
	type tc struct {
		name   string
		req    *Request
		format string
		denied bool
		msg    []string // substrings the message must hold
	}
	with := func(r *Request, fn func(*Request)) *Request { fn(r); return r }
	cases := []tc{
		// Outside the project: Denied.
		{name: "identifying household field as row", req: with(hh(), func(r *Request) { r.Rows = []string{"head_name"} }), denied: true, msg: []string{"head_name", "identifying"}},
		{name: "identifying person field as row", req: with(base(), func(r *Request) { r.Rows = []string{"full_name"} }), denied: true, msg: []string{"full_name", "identifying"}},
		{name: "identifying field as col", req: with(hh(), func(r *Request) { r.Cols = []string{"phone"} }), denied: true, msg: []string{"phone"}},
		{name: "identifying field as filter", req: with(base(), func(r *Request) { r.Filter = map[string][]string{"full_name": {"x"}} }), denied: true, msg: []string{"full_name"}},
		{name: "identifying field as measure", req: with(hh(), func(r *Request) { r.Measure = Measure{Op: "sum", Var: "head_name"} }), denied: true, msg: []string{"head_name"}},
		{name: "identifying field as mean", req: with(hh(), func(r *Request) { r.Measure = Measure{Op: "mean", Var: "phone"} }), denied: true},
		{name: "address as row", req: with(hh(), func(r *Request) { r.Rows = []string{"address"} }), denied: true},
		{name: "operational field as row", req: with(hh(), func(r *Request) { r.Rows = []string{"visit_count"} }), denied: true, msg: []string{"visit_count", "operational"}},
		{name: "operational field as filter", req: with(hh(), func(r *Request) { r.Filter = map[string][]string{"visit_count": {"1"}} }), denied: true},
		{name: "operational field as measure", req: with(hh(), func(r *Request) { r.Measure = Measure{Op: "sum", Var: "visit_count"} }), denied: true},
		{name: "operational person field as col", req: with(base(), func(r *Request) { r.Cols = []string{"response_type"} }), denied: true},
		{name: "variable not in project as row", req: with(base(), func(r *Request) { r.Rows = []string{"religion"} }), denied: true, msg: []string{"religion", "p1"}},
		{name: "variable not in project as col", req: with(base(), func(r *Request) { r.Cols = []string{"ethnicity"} }), denied: true},
		{name: "variable not in project as filter", req: with(base(), func(r *Request) { r.Filter = map[string][]string{"religion": {"1"}} }), denied: true},
		{name: "variable not in project as measure", req: with(hh(), func(r *Request) { r.Measure = Measure{Op: "sum", Var: "water_source"} }), denied: true},
		{name: "filter area in another province", req: with(base(), func(r *Request) { r.Filter = map[string][]string{FilterArea: {string(other)}} }), denied: true, msg: []string{string(other)}},
		{name: "filter EA in another province", req: with(base(), func(r *Request) { r.Filter = map[string][]string{FilterArea: {string(eaOf(tr, other))}} }), denied: true},
		{name: "filter area above the project's", req: with(base(), func(r *Request) { r.Filter = map[string][]string{FilterArea: {string(tr.Root())}} }), denied: true},
		{name: "filter areas inside and outside", req: with(base(), func(r *Request) { r.Filter = map[string][]string{FilterArea: {string(district), string(other)}} }), denied: true},

		// Malformed or impossible: invalid.
		{name: "unknown area code", req: with(base(), func(r *Request) { r.Filter = map[string][]string{FilterArea: {"ZZ-404"}} }), msg: []string{"no such area"}},
		{name: "unknown variable", req: with(base(), func(r *Request) { r.Rows = []string{"shoe_size"} }), msg: append([]string{"shoe_size"}, c.schema.Variables()...)},
		{name: "unknown filter variable", req: with(base(), func(r *Request) { r.Filter = map[string][]string{"shoe_size": {"1"}} })},
		{name: "unknown measure variable", req: with(base(), func(r *Request) { r.Measure = Measure{Op: "sum", Var: "shoe_size"} })},
		{name: "continuous floor area as dimension", req: with(hh(), func(r *Request) { r.Rows = []string{"floor_area_m2"} }), msg: []string{"continuous", "floor_area_m2"}},
		{name: "continuous age as dimension", req: with(base(), func(r *Request) { r.Cols = []string{"age"} }), msg: []string{"continuous"}},
		{name: "continuous age as filter", req: with(base(), func(r *Request) { r.Filter = map[string][]string{"age": {"30"}} })},
		{name: "person variable in households table", req: with(hh(), func(r *Request) { r.Cols = []string{"sex"} }), msg: []string{"person variable"}},
		{name: "age band in households table", req: with(hh(), func(r *Request) { r.Rows = []string{"age_group5"} })},
		{name: "person filter in households table", req: with(hh(), func(r *Request) { r.Filter = map[string][]string{"sex": {"1"}} })},
		{name: "household measure over persons", req: with(base(), func(r *Request) { r.Measure = Measure{Op: "sum", Var: "floor_area_m2"} }), msg: []string{"household"}},
		{name: "person measure over households", req: with(hh(), func(r *Request) { r.Measure = Measure{Op: "mean", Var: "age"} })},
		{name: "area level as measure", req: with(base(), func(r *Request) { r.Measure = Measure{Op: "sum", Var: "district"} })},
		{name: "unknown measure op", req: with(base(), func(r *Request) { r.Measure = Measure{Op: "median", Var: "age"} })},
		{name: "five dimensions", req: with(base(), func(r *Request) {
			r.Rows, r.Cols = []string{"district", "sex"}, []string{"age_group5", "tenure", "birth_month"}
		}), msg: []string{"5 dimensions", "at most 4"}},
		{name: "too many cells", req: with(base(), func(r *Request) { r.Rows, r.Cols = []string{"ea"}, []string{"birth_year"} }), msg: []string{"cells"}},
		{name: "too many cells, one block", req: with(base(), func(r *Request) { r.Rows = []string{"ea", "birth_year"} })},
		{name: "duplicate dimension across blocks", req: with(base(), func(r *Request) { r.Cols = []string{"sex"} }), msg: []string{"twice"}},
		{name: "duplicate dimension in a block", req: with(base(), func(r *Request) { r.Rows = []string{"district", "district"} })},
		{name: "nation as a dimension", req: with(base(), func(r *Request) { r.Rows = []string{"nation"} }), msg: []string{"nation"}},
		{name: "empty rows", req: with(base(), func(r *Request) { r.Rows, r.Cols = nil, []string{"sex"} }), msg: []string{"rows"}},
		{name: "bad unit", req: with(base(), func(r *Request) { r.Unit = "dwellings" }), msg: []string{"persons or households"}},
		{name: "bad format", req: base(), format: "xml", msg: []string{"json or csv"}},
		{name: "other project", req: with(base(), func(r *Request) { r.Project = "p2" })},
		{name: "area level as filter key", req: with(base(), func(r *Request) { r.Filter = map[string][]string{"province": {string(prov)}} })},
		{name: "filter code not of the variable", req: with(base(), func(r *Request) { r.Filter = map[string][]string{"sex": {"3"}} })},
		{name: "filter code not a number", req: with(base(), func(r *Request) { r.Filter = map[string][]string{"sex": {"male"}} })},
		{name: "filter band not a band", req: with(base(), func(r *Request) { r.Filter = map[string][]string{"age_group5": {"15-20"}} })},
		{name: "purpose too long", req: with(base(), func(r *Request) { r.Purpose = strings.Repeat("x", maxPurpose+1) })},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			format := k.format
			if format == "" {
				format = FormatJSON
			}
			before := cloneRequest(k.req)
			p, err := c.Compile(k.req, proj, sdc.DefaultParams(), format, f.asOf)
			if err == nil {
				t.Fatalf("compiled (%s); want a refusal", p.Describe())
			}
			if p != nil {
				t.Error("a refused request still returned a plan")
			}
			re := requestError(t, err)
			if re.Denied != k.denied {
				t.Errorf("Denied = %v, want %v (%s)", re.Denied, k.denied, re.Msg)
			}
			for _, s := range k.msg {
				if !strings.Contains(re.Msg, s) {
					t.Errorf("message %q does not mention %q", re.Msg, s)
				}
			}
			if !reflect.DeepEqual(before, k.req) {
				t.Error("Compile changed the request")
			}
		})
	}

	// The unknown-variable message lists the analytic variables, never
	// the closed fields.
	_, err := c.Compile(with(base(), func(r *Request) { r.Rows = []string{"shoe_size"} }), proj, sdc.DefaultParams(), FormatJSON, f.asOf)
	msg := requestError(t, err).Msg
	for _, closed := range []string{"head_name", "full_name", "phone", "visit_count", "response_type"} {
		if strings.Contains(msg, closed) {
			t.Errorf("unknown-variable message names closed field %s: %q", closed, msg)
		}
	}

	// A request just inside the limits compiles: the refusals above are
	// about their one fault.
	for _, r := range []*Request{
		base(),
		hh(),
		with(base(), func(r *Request) {
			r.Rows, r.Cols = []string{"district", "sex"}, []string{"age_group5", "tenure"}
			r.Filter = map[string][]string{FilterArea: {string(district)}, "birth_month": {"1", "2"}}
		}),
		with(hh(), func(r *Request) { r.Rows, r.Measure = []string{"district"}, Measure{Op: "sum", Var: "floor_area_m2"} }),
		with(base(), func(r *Request) { r.Rows, r.Measure = []string{"commune"}, Measure{Op: "mean", Var: "age"} }),
		with(base(), func(r *Request) { r.Rows, r.Cols = []string{"district"}, []string{"birth_year"} }),
	} {
		if _, err := c.Compile(r, proj, sdc.DefaultParams(), FormatCSV, f.asOf); err != nil {
			t.Errorf("rows %v cols %v filter %v: %v", r.Rows, r.Cols, r.Filter, err)
		}
	}
}

func cloneRequest(r *Request) *Request {
	x := *r
	x.Rows, x.Cols = slices.Clone(r.Rows), slices.Clone(r.Cols)
	if r.Filter != nil {
		x.Filter = map[string][]string{}
		for k, v := range r.Filter {
			x.Filter[k] = slices.Clone(v)
		}
	}
	return &x
}

// TestCompileCellLimitCountsMargins checks the cell limit at its edge:
// margins count.
func TestCompileCellLimitCountsMargins(t *testing.T) {
	f := shared(t)
	r := countReq(Persons, []string{"sex"}, []string{"tenure"}) // 2 × (4 + not stated)
	params := sdc.DefaultParams()
	params.MaxCells = (2 + 1) * (5 + 1)
	p, err := f.cache.Compile(r, f.proj, params, FormatJSON, f.asOf)
	if err != nil {
		t.Fatalf("a table of exactly MaxCells cells: %v", err)
	}
	if p.Cells() != params.MaxCells {
		t.Fatalf("plan has %d cells, want %d", p.Cells(), params.MaxCells)
	}
	params.MaxCells--
	_, err = f.cache.Compile(r, f.proj, params, FormatJSON, f.asOf)
	if err == nil || requestError(t, err).Denied {
		t.Fatalf("a table one cell over the limit: %v; want invalid", err)
	}
}

// TestCompileAreas checks the areas a plan covers: the project's, or
// the filter's, nested ones dropped.
func TestCompileAreas(t *testing.T) {
	f := shared(t)
	tr := f.tree
	provs := areasAt(tr, area.Province)
	p0, p1 := provs[0], provs[1]
	d0 := tr.Children(p0)[0]
	ea := eaOf(tr, d0)
	proj := Project{ID: "p", Areas: []string{string(p0), string(p1)}, Variables: f.proj.Variables}

	pl := mustCompile(t, f.cache, countReq(Persons, []string{"sex"}, nil), proj, sdc.DefaultParams(), FormatJSON, f.asOf)
	if !reflect.DeepEqual(pl.Areas, []area.Code{p0, p1}) {
		t.Errorf("areas %v, want the project's %v", pl.Areas, []area.Code{p0, p1})
	}
	r := countReq(Persons, []string{"district"}, nil)
	r.Filter = map[string][]string{FilterArea: {string(ea), string(d0), string(ea)}}
	pl = mustCompile(t, f.cache, r, proj, sdc.DefaultParams(), FormatJSON, f.asOf)
	if !reflect.DeepEqual(pl.Areas, []area.Code{d0}) {
		t.Errorf("areas %v, want just %s (the EA is inside it)", pl.Areas, d0)
	}
	// A district dimension within the filter has just that district.
	if len(pl.rows) != 1 || pl.rows[0].n != 1 || pl.rows[0].values[0] != string(d0) {
		t.Errorf("district dimension %v, want only %s", pl.rows[0].values, d0)
	}
	// Without the filter, the district dimension covers both provinces'
	// districts and nothing else.
	pl = mustCompile(t, f.cache, countReq(Persons, []string{"district"}, nil), proj, sdc.DefaultParams(), FormatJSON, f.asOf)
	want := len(tr.Children(p0)) + len(tr.Children(p1))
	if pl.R != want {
		t.Errorf("district dimension has %d categories, want %d", pl.R, want)
	}
	for _, v := range pl.rows[0].values {
		if !tr.Contains(p0, area.Code(v)) && !tr.Contains(p1, area.Code(v)) {
			t.Errorf("district %s is outside the project", v)
		}
	}
}

// TestUniverseBelowMinimum checks that a table over too few records is
// refused as invalid, without its size.
func TestUniverseBelowMinimum(t *testing.T) {
	f := shared(t)
	c := f.cache
	var msgs []string
	var sizes []int64
	// Three EAs holding households of different sizes, and one holding none.
	held := map[string]bool{}
	for _, h := range f.hs {
		held[h.EA] = true
	}
	var eas []string
	seenSize := map[int]bool{}
	for _, h := range f.hs {
		if n := len(h.PersonKeys); !seenSize[n] && len(eas) < 3 {
			seenSize[n] = true
			eas = append(eas, h.EA)
		}
	}
	for _, e := range areasAt(f.tree, area.EA) {
		if !held[string(e)] {
			eas = append(eas, string(e))
			break
		}
	}
	for _, e := range eas {
		r := countReq(Persons, []string{"sex"}, nil)
		r.Filter = map[string][]string{FilterArea: {e}}
		p := mustCompile(t, c, r, f.proj, sdc.DefaultParams(), FormatJSON, f.asOf)
		_, u, err := c.aggregate(p)
		if err != nil {
			t.Fatal(err)
		}
		tab, err := c.Run(p)
		if err == nil {
			t.Fatalf("a table of one EA (%d persons) was released", u)
		}
		if tab != nil {
			t.Error("a refused table was returned")
		}
		re := requestError(t, err)
		if re.Denied {
			t.Errorf("small universe refused as Denied; want invalid")
		}
		if regexp.MustCompile(`\b` + strconv.FormatInt(u, 10) + `\b`).MatchString(re.Msg) {
			t.Errorf("refusal %q contains the true universe %d", re.Msg, u)
		}
		msgs = append(msgs, re.Msg)
		sizes = append(sizes, u)
	}
	for i := range msgs {
		if msgs[i] != msgs[0] {
			t.Errorf("refusals differ with the universe (%d vs %d persons): %q vs %q", sizes[0], sizes[i], msgs[0], msgs[i])
		}
	}
	if sizes[len(sizes)-1] != 0 || sizes[0] == sizes[1] {
		t.Fatalf("test setup: universes %v", sizes)
	}

	// The edge: a universe of exactly MinUniverse is released, one less
	// is not.
	d := f.tree.Children(areasAt(f.tree, area.Province)[0])[0]
	r := countReq(Persons, []string{"sex"}, nil)
	r.Filter = map[string][]string{FilterArea: {string(d)}}
	params := sdc.DefaultParams()
	p := mustCompile(t, c, r, f.proj, params, FormatJSON, f.asOf)
	_, u, _ := c.aggregate(p)
	params.MinUniverse = int(u)
	if _, err := c.Run(mustCompile(t, c, r, f.proj, params, FormatJSON, f.asOf)); err != nil {
		t.Errorf("universe %d = minimum: %v", u, err)
	}
	params.MinUniverse = int(u) + 1
	if _, err := c.Run(mustCompile(t, c, r, f.proj, params, FormatJSON, f.asOf)); err == nil {
		t.Errorf("universe %d < minimum %d was released", u, u+1)
	}
}

// TestRunBeyondCache checks that a table cannot be computed as of a point
// the cache does not hold yet.
func TestRunBeyondCache(t *testing.T) {
	f := shared(t)
	p := mustCompile(t, f.cache, countReq(Persons, []string{"sex"}, nil), f.proj, sdc.DefaultParams(), FormatJSON, f.asOf+1)
	if _, err := f.cache.Run(p); err == nil {
		t.Error("a table as of a point beyond the cache was computed")
	}
}

// TestAreaDimensions checks the area levels as dimensions against a
// direct count: each category is an area of the table's areas, in tree
// order, and holds the households of its subtree.
func TestAreaDimensions(t *testing.T) {
	f := shared(t)
	tr := f.tree
	d := tr.Children(areasAt(tr, area.Province)[3])[1]
	for _, lv := range []area.Level{area.Province, area.District, area.Commune, area.EA} {
		r := countReq(Households, []string{lv.String()}, nil)
		r.Filter = map[string][]string{FilterArea: {string(d)}}
		p := mustCompile(t, f.cache, r, f.proj, sdc.DefaultParams(), FormatJSON, f.asOf)
		var want []string
		tr.Walk(d, -1, func(a area.Area, _ int) bool {
			if a.Level == lv {
				want = append(want, string(a.Code))
			}
			return true
		})
		if lv < area.District {
			a, _ := tr.Ancestor(d, lv)
			want = []string{string(a)}
		}
		if !reflect.DeepEqual(p.rows[0].values, want) {
			t.Fatalf("%s dimension within %s: %d categories, want %d (in tree order)", lv, d, len(p.rows[0].values), len(want))
		}
		count := map[string]int64{}
		var total int64
		for _, h := range f.hs {
			if a, ok := tr.Ancestor(area.Code(h.EA), lv); ok && tr.Contains(d, area.Code(h.EA)) {
				count[string(a)]++
				total++
			}
		}
		cells, u, err := f.cache.aggregate(p)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range want {
			if cells[i].n != count[v] {
				t.Errorf("%s %s: %d households, want %d", lv, v, cells[i].n, count[v])
			}
		}
		if cells[len(want)].n != total || u != total || total == 0 {
			t.Errorf("%s: total %d, universe %d, want %d (> 0)", lv, cells[len(want)].n, u, total)
		}
	}
}
