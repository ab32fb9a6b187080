package tables

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/internal/strictjson"
	"github.com/censusvault/censusvault/broker/sdc"
)

// The catalogue of standard tables (issue 11).
//
// Free-filter tables leaked individuals: two tables whose filters differ
// by one person or one code publish, by difference, the cell that moved.
// The office therefore publishes a fixed catalogue of standard tables
// instead, each computed at publication points with cell-key
// perturbation; a researcher picks a table, an area at a level the table
// permits, and a point, and nothing else.
//
// A catalogue is a JSON file (catalogue/vN.json, embedded), one per
// version. Releases name the version they were made under and are
// replayed under it, so a version, once released under, is never
// edited: a change is a new file beside the old ones.
//
//	{"version": 1, "form": {"name": "census2019", "version": 1},
//	 "groupings": {
//	   "age_broad": {"of": "age_group5", "groups": [
//	     {"label": {"en": "0-14", "vi": "0-14"}, "values": ["0-4", "5-9", "10-14"]}, …]},
//	   "religion_major": {"of": "religion", "groups": [
//	     {"label": {"en": "none", "vi": "Không theo tôn giáo"}, "values": [1]}, …,
//	     {"label": {"en": "other", "vi": "Khác"}, "rest": true}]}},
//	 "tables": [
//	   {"id": "population_age5_sex", "title": {"en": "…", "vi": "…"},
//	    "unit": "persons", "rows": ["age_group5"], "cols": ["sex"], "measure": "count",
//	    "levels": ["nation", "province", "district", "commune"],
//	    "min_planned_households": 300}]}
//
// A table's dimensions are variables of the form (coded ones, or
// age_group5) or groupings; its measure is "count", {"sum": VAR} or
// {"mean": VAR} of a quantitative variable (Schema.Quantitative). A
// grouping partitions a variable's codes (numbers) or the age bands
// (strings such as "15-19"): every code in exactly one group, the codes
// no group lists in the one group marked "rest". A variable that may be
// absent keeps its "not stated" category, last, in every grouping of it,
// as in the ungrouped dimension.
//
// ParseCatalogue refuses a catalogue that could leak by construction:
//
//   - Nesting. For every variable, the partitions of its codes that the
//     catalogue's tables use — the variable itself (its finest partition)
//     and each grouping of it — must be pairwise nested: of any two, one
//     refines the other. Without it, a table grouping religion codes
//     {2, 9} as "Buddhist" and another grouping {2} alone publish, by
//     difference, the count of code 9 in every area both are asked of:
//     the cell that moved, rebuilt from the catalogue itself. With it, a
//     category of one table differs from a category of another (of the
//     same variable) by nothing, or by whole categories of the finer
//     partition, which the finer table publishes anyway; no difference
//     of the catalogue's cells isolates a set of codes the catalogue does
//     not itself publish. The rule holds across the versions of one
//     form too (StandardCatalogue), since a table of an old version can
//     be asked at the same point as a new one. What differences of
//     tables crossing different variables reveal is left, as for any
//     set of published tables, to the cell-key perturbation.
//   - Thinness. A table's inner cells must hold, on average at its
//     smallest permitted area, at least minMeanCell units (persons are
//     taken as personsPerHousehold per planned household): the finer the
//     crossing, the larger the areas it may be asked of.
//   - Where. A table names the area levels it may be asked at (never
//     EAs: they are the listing's areas) and the fewest planned
//     households an area must have. Both are public (the household
//     listing's plan), so whether an area may be asked never depends on
//     the true counts, and a refusal says nothing about them.
//   - The engine's limits: at most sdc's default dimensions and cells
//     (margins included), analytic variables only, a table of households
//     over household variables only, a sum or mean over the table's unit.

// Text is a label in the office's two languages: "en" and "vi".
type Text map[string]string

// textLangs are the languages every Text of a catalogue has, no more.
var textLangs = []string{"en", "vi"}

// Catalogue is a parsed, checked catalogue of standard tables. It is
// immutable.
type Catalogue struct {
	Version     int
	Form        string // the form (and its version) the catalogue is written for
	FormVersion int
	Tables      []*StandardTable // in file order

	schema    *Schema
	byID      map[string]*StandardTable
	groupings map[string]*grouping
}

// StandardTable is one table of the catalogue.
type StandardTable struct {
	ID         string
	Title      Text
	Unit       Unit
	Rows, Cols []string // dimension names: a variable or a grouping of the catalogue
	Measure    Measure
	Levels     []area.Level // where it may be asked, coarsest first; never area.EA
	// MinPlanned is the fewest planned households (the listing's, of the
	// area's whole subtree) an area must have for the table to be asked
	// of it.
	MinPlanned int64
}

// grouping is a partition of a variable's categories (its codes' stored
// indexes, or the age bands) into labelled groups.
type grouping struct {
	name   string
	v      *variable
	labels []Text
	// group[i] is the group of category i: the i-th code of the variable
	// (as variable.values), or band i of age_group5.
	group []int
}

// Rules on a catalogue's content.
const (
	// minMeanCell is the fewest units an inner cell must hold on average
	// at a table's smallest permitted area (the small-cell threshold of
	// the default disclosure-control parameters).
	minMeanCell = 10
	// personsPerHousehold is the persons a planned household is taken to
	// hold when checking a persons table's thinness: below the census
	// 2019 average (3.5), so the check errs towards larger areas.
	personsPerHousehold = 3
	maxIDLen            = 64
	maxTextLen          = 300
)

//go:embed catalogue/*.json
var catalogueFiles embed.FS

// wire forms of the catalogue file.
type catalogueFile struct {
	Version   int                     `json:"version"`
	Form      catalogueForm           `json:"form"`
	Groupings map[string]groupingFile `json:"groupings"`
	Tables    []tableFile             `json:"tables"`
}

type catalogueForm struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
}

type groupingFile struct {
	Of     string      `json:"of"`
	Groups []groupFile `json:"groups"`
}

type groupFile struct {
	Label  Text              `json:"label"`
	Values []json.RawMessage `json:"values"`
	Rest   bool              `json:"rest"`
}

type tableFile struct {
	ID         string   `json:"id"`
	Title      Text     `json:"title"`
	Unit       Unit     `json:"unit"`
	Rows       []string `json:"rows"`
	Cols       []string `json:"cols"`
	Measure    *Measure `json:"measure"`
	Levels     []string `json:"levels"`
	MinPlanned int64    `json:"min_planned_households"`
}

// ErrNoCatalogue is what StandardCatalogue's error wraps when no
// embedded catalogue is written for the schema's form: its standard
// tables cannot be asked (custom dp tables can).
var ErrNoCatalogue = errors.New("no catalogue of standard tables is written for this form")

// StandardCatalogue returns the embedded catalogue of the given version,
// checked against s; version 0 is the latest embedded one written for
// s's form. A catalogue is written for a form name (census2019's are the
// files embedded now) and the version it was first written for: it
// serves that version and every later one it still checks against (a
// later version that makes a variable it names identifying, or adds a
// code a grouping does not place, needs a new catalogue version). Every
// embedded version written for s's form is parsed too, and their
// groupings must nest across versions (checkVersionsNested): a release
// names its version, and old versions stay askable and replayable.
func StandardCatalogue(s *Schema, version int) (*Catalogue, error) {
	return loadCatalogue(catalogueFiles, s, version)
}

// loadCatalogue is StandardCatalogue over the catalogue files of fsys
// (catalogue/vN.json).
func loadCatalogue(fsys fs.FS, s *Schema, version int) (*Catalogue, error) {
	versions, err := catalogueVersions(fsys)
	if err != nil {
		return nil, err
	}
	if version == 0 {
		if version, err = latestFor(fsys, s, versions); err != nil {
			return nil, err
		}
	}
	if !slices.Contains(versions, version) {
		names := make([]string, len(versions))
		for i, v := range versions {
			names[i] = strconv.Itoa(v)
		}
		return nil, fmt.Errorf("catalogue version %d is not in this build (versions: %s): name one of them, or 0 for the latest", version, strings.Join(names, ", "))
	}
	var want *Catalogue
	var same []*Catalogue // the versions written for s's form
	for _, v := range versions {
		c, err := versionCatalogue(fsys, s, v)
		if err != nil {
			return nil, err
		}
		if c == nil {
			if v == version {
				name, ver := s.Form()
				return nil, fmt.Errorf("catalogue v%d is not written for form %s v%d: load a catalogue version written for this form", v, name, ver)
			}
			continue
		}
		if v == version {
			want = c
		}
		same = append(same, c)
	}
	if err := checkVersionsNested(same); err != nil {
		return nil, err
	}
	return want, nil
}

// latestFor is the highest catalogue version written for s's form, or
// an error wrapping ErrNoCatalogue.
func latestFor(fsys fs.FS, s *Schema, versions []int) (int, error) {
	for _, v := range slices.Backward(versions) {
		_, ok, err := catalogueHead(fsys, s, v)
		if err != nil {
			return 0, err
		}
		if ok {
			return v, nil
		}
	}
	name, ver := s.Form()
	return 0, fmt.Errorf("tables: form %s v%d: %w (the embedded catalogues are written for other forms): ask custom tables", name, ver, ErrNoCatalogue)
}

// catalogueHead reads the catalogue file of version v, and whether it is
// written for s's form: its name, and a version at or before s's.
func catalogueHead(fsys fs.FS, s *Schema, v int) ([]byte, bool, error) {
	b, err := fs.ReadFile(fsys, fmt.Sprintf("catalogue/v%d.json", v))
	if err != nil {
		return nil, false, fmt.Errorf("tables: embedded catalogue v%d: %w", v, err)
	}
	// Only the binding, to skip other forms' versions; ParseCatalogue
	// reads the whole file strictly.
	var head struct {
		Form catalogueForm `json:"form"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, false, fmt.Errorf("tables: embedded catalogue v%d: %s", v, jsonProblem(err))
	}
	name, ver := s.Form()
	return b, head.Form.Name == name && head.Form.Version <= ver, nil
}

// versionCatalogue parses the catalogue of version v, or returns nil if
// it is written for another form than s's.
func versionCatalogue(fsys fs.FS, s *Schema, v int) (*Catalogue, error) {
	b, ok, err := catalogueHead(fsys, s, v)
	if err != nil || !ok {
		return nil, err
	}
	c, err := ParseCatalogue(b, s)
	if err != nil {
		return nil, err
	}
	if c.Version != v {
		return nil, fmt.Errorf("tables: embedded catalogue/v%d.json says version %d: a file's name and its version must agree", v, c.Version)
	}
	return c, nil
}

// catalogueVersions lists the versions of the catalogue files, ascending.
func catalogueVersions(fsys fs.FS) ([]int, error) {
	entries, err := fs.ReadDir(fsys, "catalogue")
	if err != nil {
		return nil, fmt.Errorf("tables: embedded catalogues: %w", err)
	}
	var vs []int
	for _, e := range entries {
		n, ok := strings.CutPrefix(e.Name(), "v")
		n, ok2 := strings.CutSuffix(n, ".json")
		v, err := strconv.Atoi(n)
		if !ok || !ok2 || err != nil || v < 1 || strconv.Itoa(v) != n {
			return nil, fmt.Errorf("tables: embedded catalogue file %s is not named vN.json", e.Name())
		}
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("tables: no catalogue is embedded")
	}
	slices.Sort(vs)
	return vs, nil
}

// ParseCatalogue reads a catalogue strictly (package strictjson) and
// checks it against s, the schema of the form it names. Errors name the
// table or grouping at fault and what to change.
func ParseCatalogue(b []byte, s *Schema) (*Catalogue, error) {
	var f catalogueFile
	if err := strictjson.Decode(b, &f); err != nil {
		return nil, fmt.Errorf("catalogue is not valid: %s", jsonProblem(err))
	}
	if f.Version < 1 {
		return nil, fmt.Errorf("catalogue: version %d: versions are numbered from 1", f.Version)
	}
	pre := fmt.Sprintf("catalogue v%d", f.Version)
	if name, ver := s.Form(); f.Form.Name != name || f.Form.Version > ver {
		return nil, fmt.Errorf("%s is written for form %s v%d, not %s v%d: load the catalogue version written for this form", pre, clip(f.Form.Name), f.Form.Version, name, ver)
	}
	c := &Catalogue{Version: f.Version, Form: f.Form.Name, FormVersion: f.Form.Version, schema: s,
		byID: map[string]*StandardTable{}, groupings: map[string]*grouping{}}

	names := make([]string, 0, len(f.Groupings))
	for name := range f.Groupings {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		g, err := parseGrouping(s, name, f.Groupings[name])
		if err != nil {
			return nil, fmt.Errorf("%s: grouping %q: %w", pre, clip(name), err)
		}
		c.groupings[name] = g
	}

	if len(f.Tables) == 0 {
		return nil, fmt.Errorf("%s lists no tables: a catalogue publishes at least one", pre)
	}
	params := sdc.DefaultParams()
	for i := range f.Tables {
		t, err := c.parseTable(&f.Tables[i], params)
		if err != nil {
			id := f.Tables[i].ID
			if id == "" {
				id = "#" + strconv.Itoa(i+1)
			}
			return nil, fmt.Errorf("%s: table %q: %w", pre, clip(id), err)
		}
		if _, dup := c.byID[t.ID]; dup {
			return nil, fmt.Errorf("%s: table id %q is used twice: give each table its own id", pre, t.ID)
		}
		c.byID[t.ID] = t
		c.Tables = append(c.Tables, t)
	}

	if err := c.checkUsed(); err != nil {
		return nil, fmt.Errorf("%s: %w", pre, err)
	}
	if err := c.checkNesting(); err != nil {
		return nil, fmt.Errorf("%s: %w", pre, err)
	}
	return c, nil
}

// validName reports whether s is a lower-case identifier (a-z, 0-9, _,
// starting with a letter) of at most maxIDLen bytes.
func validName(s string) bool {
	if s == "" || len(s) > maxIDLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// checkText checks that t has exactly the languages textLangs, each
// non-empty and at most maxTextLen bytes.
func checkText(what string, t Text) error {
	for _, l := range textLangs {
		if strings.TrimSpace(t[l]) == "" {
			return fmt.Errorf("%s has no %q text: give both %s", what, l, strings.Join(textLangs, " and "))
		}
		if len(t[l]) > maxTextLen {
			return fmt.Errorf("%s: its %q text is %d bytes; at most %d", what, l, len(t[l]), maxTextLen)
		}
	}
	if len(t) != len(textLangs) {
		return fmt.Errorf("%s has a language other than %s", what, strings.Join(textLangs, " and "))
	}
	return nil
}

// lookupVar finds a variable a catalogue may name, or says why not.
func lookupVar(s *Schema, name, as string) (*variable, error) {
	if v, ok := s.vars[name]; ok {
		return v, nil
	}
	if cl, ok := s.closed[name]; ok {
		return nil, fmt.Errorf("%s %q is an %s field: a catalogue may name analytic variables only", as, clip(name), cl)
	}
	if _, err := area.ParseLevel(name); err == nil {
		return nil, fmt.Errorf("%s %q is an area level: a standard table is asked of one area, chosen with the table, so area levels are not dimensions", as, name)
	}
	return nil, fmt.Errorf("%s %q: no such variable or grouping (variables: %s)", as, clip(name), strings.Join(s.order, ", "))
}

func parseGrouping(s *Schema, name string, gf groupingFile) (*grouping, error) {
	if !validName(name) {
		return nil, fmt.Errorf("the name must be lower-case letters, digits and _, starting with a letter, at most %d bytes", maxIDLen)
	}
	if _, ok := s.vars[name]; ok {
		return nil, fmt.Errorf("the name is a variable's: name groupings apart from variables")
	}
	if _, ok := s.closed[name]; ok {
		return nil, fmt.Errorf("the name is a field of the form: name groupings apart from fields")
	}
	if _, err := area.ParseLevel(name); err == nil {
		return nil, fmt.Errorf("the name is an area level's: name groupings apart from levels")
	}
	v, err := lookupVar(s, gf.Of, "of")
	if err != nil {
		return nil, err
	}
	if !v.dimension() {
		return nil, fmt.Errorf("of %q is a continuous variable: only coded variables and age_group5 can be grouped", gf.Of)
	}
	if len(gf.Groups) < 2 {
		return nil, fmt.Errorf("has %d group(s): a grouping needs at least two (one group is the table's total)", len(gf.Groups))
	}
	g := &grouping{name: name, v: v, group: make([]int, v.categories())}
	for i := range g.group {
		g.group[i] = -1
	}
	rest := -1
	seenLabel := map[string]int{}
	for k, gr := range gf.Groups {
		at := fmt.Sprintf("group %d", k+1)
		if err := checkText(at+"'s label", gr.Label); err != nil {
			return nil, err
		}
		for _, l := range textLangs {
			key := l + "\x00" + gr.Label[l]
			if j, dup := seenLabel[key]; dup {
				return nil, fmt.Errorf("groups %d and %d have the same %q label: labels tell groups apart", j+1, k+1, l)
			}
			seenLabel[key] = k
		}
		if gr.Label["en"] == NotStated || gr.Label["en"] == "not stated" {
			return nil, fmt.Errorf("%s is labelled %q, the name of the category of absent values, which every grouping of an optional variable keeps by itself: choose another label", at, gr.Label["en"])
		}
		g.labels = append(g.labels, gr.Label)
		switch {
		case gr.Rest && len(gr.Values) > 0:
			return nil, fmt.Errorf("%s both lists values and is the rest: a rest group takes the codes no group lists, write one or the other", at)
		case gr.Rest:
			if rest >= 0 {
				return nil, fmt.Errorf("groups %d and %d are both the rest: keep one", rest+1, k+1)
			}
			rest = k
			continue
		case len(gr.Values) == 0:
			return nil, fmt.Errorf("%s lists no values: list its codes, or mark it \"rest\": true", at)
		}
		for _, raw := range gr.Values {
			cat, label, err := groupValue(v, raw)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", at, err)
			}
			if j := g.group[cat]; j >= 0 {
				return nil, fmt.Errorf("%s %s is in group %d and in group %d: each is in exactly one group", valueWord(v), label, j+1, k+1)
			}
			g.group[cat] = k
		}
	}
	var missing []string
	for i, j := range g.group {
		switch {
		case j >= 0:
		case rest >= 0:
			g.group[i] = rest
		default:
			missing = append(missing, categoryName(v, i))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("leaves %s %s of %s in no group: a grouping partitions all of them; list them, or add a group with \"rest\": true", valueWord(v)+"s", strings.Join(missing, ", "), v.name)
	}
	if rest >= 0 && !slices.Contains(g.group, rest) {
		return nil, fmt.Errorf("group %d is the rest but every %s is listed elsewhere: remove it", rest+1, valueWord(v))
	}
	return g, nil
}

// groupValue reads one value of a group: a code (a whole number) of a
// coded variable, or a band label ("15-19") of age_group5. It returns its
// category and how to name it in an error (the form's own code or band,
// never a record's value).
func groupValue(v *variable, raw json.RawMessage) (int, string, error) {
	if v.kind == derivedBand {
		var label string
		if err := json.Unmarshal(raw, &label); err != nil {
			return 0, "", fmt.Errorf("age bands are strings such as \"15-19\" or \"100+\"")
		}
		b := bandOf(label)
		if b < 0 {
			return 0, "", fmt.Errorf("%q is not an age band (0-4, 5-9, …, 95-99, 100+)", clip(label))
		}
		return b, label, nil
	}
	text := string(raw)
	x, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("the values of %s are its codes, written as whole numbers", v.name)
	}
	cat := v.category(x)
	if cat < 0 {
		return 0, "", fmt.Errorf("%d is not a code of %s", x, v.name)
	}
	return cat, text, nil
}

func valueWord(v *variable) string {
	if v.kind == derivedBand {
		return "band"
	}
	return "code"
}

func categoryName(v *variable, i int) string {
	if v.kind == derivedBand {
		return AgeGroup5Label(i)
	}
	return strconv.FormatInt(v.values[i], 10)
}

// dimVar returns the variable a dimension name of the catalogue is over,
// and its grouping (nil for the variable itself).
func (c *Catalogue) dimVar(name string) (*variable, *grouping, error) {
	if g, ok := c.groupings[name]; ok {
		return g.v, g, nil
	}
	v, err := lookupVar(c.schema, name, "dimension")
	if err != nil {
		return nil, nil, err
	}
	if !v.dimension() {
		return nil, nil, fmt.Errorf("dimension %q is a continuous variable: it can only be a measure ({\"sum\": %q} or {\"mean\": %q})", name, name, name)
	}
	return v, nil, nil
}

// categoriesOf returns the number of categories of a dimension, "not
// stated" included.
func categoriesOf(v *variable, g *grouping) int {
	n := v.categories()
	if g != nil {
		n = len(g.labels)
	}
	if v.kind != derivedBand && !v.required {
		n++
	}
	return n
}

func (c *Catalogue) parseTable(tf *tableFile, params sdc.Params) (*StandardTable, error) {
	if !validName(tf.ID) {
		return nil, fmt.Errorf("the id must be lower-case letters, digits and _, starting with a letter, at most %d bytes", maxIDLen)
	}
	t := &StandardTable{ID: tf.ID, Title: tf.Title, Unit: tf.Unit, Rows: slices.Clone(tf.Rows), Cols: slices.Clone(tf.Cols), MinPlanned: tf.MinPlanned}
	if err := checkText("the title", tf.Title); err != nil {
		return nil, err
	}
	if t.Unit != Persons && t.Unit != Households {
		return nil, fmt.Errorf("unit %q: persons or households", clip(string(t.Unit)))
	}
	if t.Cols == nil {
		t.Cols = []string{}
	}
	if len(t.Rows) == 0 {
		return nil, fmt.Errorf("rows: name at least one variable or grouping")
	}

	// Dimensions.
	if err := params.CheckShape(len(t.Rows)+len(t.Cols), 1); err != nil {
		return nil, fmt.Errorf("%v: use fewer dimensions", err)
	}
	seen := map[string]string{} // variable -> the dimension naming it
	// Products saturate above any cell limit (sdc allows at most 2^30),
	// low enough that multiplying two of them, or one by a dimension's
	// categories (at most 65,535), cannot overflow.
	const huge = int64(1) << 31
	mul := func(a int64, n int) int64 { return min(a*int64(n), huge) }
	inner, rows, cols := int64(1), int64(1), int64(1)
	for k, name := range slices.Concat(t.Rows, t.Cols) {
		v, _, err := c.dimVar(name)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[v.name]; dup {
			return nil, fmt.Errorf("dimensions %q and %q are both over %s: a table uses a variable once", prev, name, v.name)
		}
		seen[v.name] = name
		if t.Unit == Households && v.level == personLevel {
			return nil, fmt.Errorf("dimension %q is over the person variable %s: a table of households may use household variables only", name, v.name)
		}
		n := categoriesOf(v, c.groupings[name])
		if k < len(t.Rows) {
			rows = mul(rows, n)
		} else {
			cols = mul(cols, n)
		}
		inner = mul(inner, n)
	}
	cells := rows + 1
	if len(t.Cols) > 0 {
		cells = min((rows+1)*(cols+1), huge)
	}
	if err := params.CheckShape(len(t.Rows)+len(t.Cols), int(cells)); err != nil {
		return nil, fmt.Errorf("%v (margins included): use fewer or coarser dimensions", err)
	}

	// Measure.
	if tf.Measure == nil {
		return nil, fmt.Errorf(`no measure: write "count", {"sum": VAR} or {"mean": VAR}`)
	}
	t.Measure = *tf.Measure
	if t.Measure.Op != "count" {
		v, err := lookupVar(c.schema, t.Measure.Var, "measure")
		if err != nil {
			return nil, err
		}
		if !c.schema.Quantitative(v.name) {
			var q []string
			for _, n := range c.schema.order {
				if c.schema.Quantitative(n) {
					q = append(q, n)
				}
			}
			return nil, fmt.Errorf("measure %s of %q: only quantitative variables are summed or averaged (%s); a sum of codes reads them back", t.Measure.Op, v.name, strings.Join(q, ", "))
		}
		if (t.Unit == Persons) != (v.level == personLevel) {
			return nil, fmt.Errorf("measure %q is a %s variable: sum or average it over %ss", v.name, v.level, v.level)
		}
	}

	// Where.
	if len(tf.Levels) == 0 {
		return nil, fmt.Errorf("levels: name the area levels it may be asked at (nation, province, district, commune)")
	}
	for _, ln := range tf.Levels {
		l, err := area.ParseLevel(ln)
		if err != nil {
			return nil, fmt.Errorf("levels: %v", err)
		}
		if l == area.EA {
			return nil, fmt.Errorf("levels: ea is the listing's area, never a table's: use commune or coarser")
		}
		if slices.Contains(t.Levels, l) {
			return nil, fmt.Errorf("levels: %s is listed twice", l)
		}
		t.Levels = append(t.Levels, l)
	}
	slices.Sort(t.Levels)
	if t.MinPlanned <= 0 {
		return nil, fmt.Errorf("min_planned_households is %d: give the fewest planned households an area must have (at least 1)", t.MinPlanned)
	}
	per := int64(1)
	if t.Unit == Persons {
		per = personsPerHousehold
	}
	if need := (inner*minMeanCell + per - 1) / per; t.MinPlanned < need {
		return nil, fmt.Errorf("its %d inner cells would hold fewer than %d %s each on average in an area of %d planned households: raise min_planned_households to at least %d, or use coarser dimensions", inner, minMeanCell, t.Unit, t.MinPlanned, need)
	}
	return t, nil
}

// checkUsed refuses a grouping no table uses: dead entries invite
// someone to use them later without the nesting they were checked for.
func (c *Catalogue) checkUsed() error {
	used := map[string]bool{}
	for _, t := range c.Tables {
		for _, name := range slices.Concat(t.Rows, t.Cols) {
			used[name] = true
		}
	}
	for _, name := range c.groupingNames() {
		if !used[name] {
			return fmt.Errorf("grouping %q is used by no table: remove it, or use it", name)
		}
	}
	return nil
}

func (c *Catalogue) groupingNames() []string {
	names := make([]string, 0, len(c.groupings))
	for name := range c.groupings {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// checkNesting refuses two groupings of one variable of which neither
// refines the other (see the file's comment). The variable itself, the
// finest partition, refines every grouping of it, so only groupings are
// compared.
func (c *Catalogue) checkNesting() error {
	var gs []namedGrouping
	for _, name := range c.groupingNames() {
		gs = append(gs, namedGrouping{name, c.groupings[name]})
	}
	return nestingError(gs)
}

// checkVersionsNested applies the nesting rule across catalogue versions
// of one form: a table of an old version may still be asked at a point
// where a new version's is, so the two versions' groupings must nest as
// if they were one catalogue's.
func checkVersionsNested(cs []*Catalogue) error {
	var gs []namedGrouping
	for _, c := range cs {
		for _, name := range c.groupingNames() {
			gs = append(gs, namedGrouping{fmt.Sprintf("v%d %s", c.Version, name), c.groupings[name]})
		}
	}
	if err := nestingError(gs); err != nil {
		return fmt.Errorf("catalogue versions: %w; a new version may only refine or coarsen the old groupings, never regroup across them", err)
	}
	return nil
}

type namedGrouping struct {
	name string
	g    *grouping
}

// nestingError finds two groupings of one variable of which neither
// refines the other.
func nestingError(gs []namedGrouping) error {
	for i, a := range gs {
		for _, b := range gs[i+1:] {
			if a.g.v != b.g.v {
				continue
			}
			ab, abWhy := refines(a, b)
			ba, baWhy := refines(b, a)
			if !ab && !ba {
				return fmt.Errorf("groupings %q and %q of %s are not nested (%s; %s): two tables whose categories differ by a few codes would publish those codes' count by difference; make one grouping a refinement of the other", a.name, b.name, a.g.v.name, abWhy, baWhy)
			}
		}
	}
	return nil
}

// refines reports whether every group of a lies within one group of b;
// if not, why: two categories a puts together and b separates.
func refines(a, b namedGrouping) (bool, string) {
	first := make([]int, len(a.g.labels)) // a's group -> its first category
	for i := range first {
		first[i] = -1
	}
	for i, ga := range a.g.group {
		j := first[ga]
		if j < 0 {
			first[ga] = i
			continue
		}
		if b.g.group[i] != b.g.group[j] {
			w := valueWord(a.g.v)
			return false, fmt.Sprintf("%s puts %ss %s and %s together, %s separates them", a.name, w, categoryName(a.g.v, j), categoryName(a.g.v, i), b.name)
		}
	}
	return true, ""
}

// Table returns the table with the given id.
func (c *Catalogue) Table(id string) (*StandardTable, bool) {
	t, ok := c.byID[id]
	return t, ok
}

// Finest returns the finest level any table may be asked at: the level
// publication points freeze areas at.
func (c *Catalogue) Finest() area.Level {
	f := area.Nation
	for _, t := range c.Tables {
		f = max(f, t.Levels[len(t.Levels)-1])
	}
	return f
}

// Permits reports whether the table may be asked of an area at level l
// (the area must also have MinPlanned planned households).
func (t *StandardTable) Permits(l area.Level) bool { return slices.Contains(t.Levels, l) }

// permitsArea checks that the table may be asked of area i of g: at a
// level it permits, with at least MinPlanned planned households in its
// subtree. Both are public, so the refusal may say which rule failed.
func (t *StandardTable) permitsArea(g *geo, i int32) error {
	l := g.levels[i]
	if !t.Permits(l) {
		names := make([]string, len(t.Levels))
		for k, x := range t.Levels {
			names[k] = x.String()
		}
		return invalidf("table %s is published for areas at levels %s, not at %s: ask it of an area at one of those levels", t.ID, strings.Join(names, ", "), l)
	}
	if g.planned[i] < t.MinPlanned {
		return invalidf("table %s is published for areas of at least %d planned households; area %s has %d planned: ask it of a larger area", t.ID, t.MinPlanned, g.codes[i], g.planned[i])
	}
	return nil
}

// buildDim makes the engine dimension for a dimension name of the
// catalogue: a variable's own (codedDim), or a grouping's, whose
// categories are its groups (values and labels their English labels),
// then "not stated" for an optional variable. A grouping's catOf maps
// each stored index+1 (or age band) to the group of its category, so
// every record falls in the group holding its category of the ungrouped
// dimension: a grouped cell is the sum of ungrouped cells.
func (c *Catalogue) buildDim(name string) (dim, error) {
	v, g, err := c.dimVar(name)
	if err != nil {
		return dim{}, err
	}
	if g == nil {
		return codedDim(v), nil
	}
	base := codedDim(v) // categories, in order, then "not stated"
	d := dim{name: name, src: base.src, col: base.col, n: len(g.labels), catOf: make([]int32, len(base.catOf))}
	for _, l := range g.labels {
		d.values = append(d.values, l["en"])
		d.labels = append(d.labels, l["en"])
	}
	ns := -1
	if base.n > v.categories() {
		ns = d.n // the grouping's own "not stated", last
		d.n++
		d.values = append(d.values, NotStated)
		d.labels = append(d.labels, "not stated")
	}
	for k, cat := range base.catOf {
		switch {
		case cat < 0:
			d.catOf[k] = -1
		case int(cat) < v.categories():
			d.catOf[k] = int32(g.group[cat])
		default:
			d.catOf[k] = int32(ns)
		}
	}
	return d, nil
}
