package tables

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/sdc"
)

// StandardRequest asks for one standard table of the catalogue, for one
// area, at one publication point. There is nothing else to choose: no
// filter, no crossing, no as-of audit index.
type StandardRequest struct {
	Project string
	Table   string    // a catalogue table id
	Area    area.Code // an area at a level the table permits
	Point   string    // the publication point's name
}

// StandardNorm is the canonical record of a standard table release: what
// the audit log keeps and what a replay recomputes from. PointState is the
// digest of the point's frozen state, so a replay proves it used the
// same one.
type StandardNorm struct {
	Area       string `json:"area"`
	Catalogue  int    `json:"catalogue"`
	Format     string `json:"format"`
	Point      string `json:"point"`
	PointState string `json:"point_state"`
	Project    string `json:"project"`
	SDC        string `json:"sdc"`
	Table      string `json:"table"`
}

// Encode returns the canonical bytes (keys sorted, no spaces).
func (n *StandardNorm) Encode() string { return canonicalJSON(n) }

// ParseStandardNorm reads what Encode wrote. A normalized free-form
// request (Normalized, made before the catalogue) is not one: it has an
// "as_of" key, which the strict reader refuses.
func ParseStandardNorm(s string) (*StandardNorm, error) {
	return parseCanonical[StandardNorm](s, "a normalized standard table request")
}

// Encode returns the plan's normalized request as the audit log keeps it:
// a StandardNorm for a standard table, a Normalized for a free-form one.
func (p *Plan) Encode() string {
	if p.dp != nil {
		return p.dp.norm.Encode()
	}
	if p.std != nil {
		return p.std.Encode()
	}
	return p.Norm.Encode()
}

// Standard reports whether p is a standard table of the catalogue.
func (p *Plan) Standard() bool { return p.std != nil }

// CompileStandard checks a standard table request against the catalogue,
// the project and the point, and prepares it. Every refusal depends only
// on the request and public facts — the catalogue, the area tree and its
// planned households, the project, the point — never on what was
// deposited: a refusal tells nothing about anybody.
func (c *Cache) CompileStandard(cat *Catalogue, r StandardRequest, proj Project, point *PointState, pointDigest string, params sdc.Params, format string) (*Plan, error) {
	if err := params.Validate(); err != nil {
		return nil, err
	}
	if format != FormatJSON && format != FormatCSV {
		return nil, invalidf("format %q: json or csv", clip(format))
	}
	if r.Project != proj.ID {
		return nil, invalidf("request names project %q, not %q", clip(r.Project), proj.ID)
	}
	t, ok := cat.Table(r.Table)
	if !ok {
		return nil, invalidf("no standard table %q in catalogue version %d (GET /v1/catalogue lists them)", clip(r.Table), cat.Version)
	}
	g := c.geo
	ai, ok := g.index[r.Area]
	if !ok {
		return nil, invalidf("area %q: no such area", clip(string(r.Area)))
	}
	lv := g.levels[ai]
	if err := t.permitsArea(g, ai); err != nil {
		return nil, err
	}
	if lv > point.Level {
		return nil, invalidf("publication point %s froze areas at %s level; %s %s is below it", clip(r.Point), point.Level, lv, r.Area)
	}
	inProject := false
	for _, a := range proj.Areas {
		if pi, ok := g.index[area.Code(a)]; ok && g.within(ai, pi) {
			inProject = true
			break
		}
	}
	if !inProject {
		return nil, deniedf("area %s is outside project %s's areas", r.Area, proj.ID)
	}
	for _, v := range cat.variablesOf(t) {
		if !slices.Contains(proj.Variables, v) {
			return nil, deniedf("standard table %s uses %q, which is not among project %s's variables (%s)", t.ID, v, proj.ID, strings.Join(proj.Variables, ", "))
		}
	}

	p := &Plan{params: params, unit: t.Unit, op: t.Measure.Op}
	var err error
	if p.rows, p.R, err = cat.buildBlock(t.Rows); err != nil {
		return nil, err
	}
	if p.cols, p.C, err = cat.buildBlock(t.Cols); err != nil {
		return nil, err
	}
	if len(p.cols) == 0 {
		p.C = 0
	}
	if err := params.CheckShape(len(p.rows)+len(p.cols), p.Cells()); err != nil {
		return nil, invalidf("standard table %s: %v", t.ID, err)
	}
	if t.Measure.Op != "count" {
		v, ok := c.schema.vars[t.Measure.Var]
		if !ok || !v.measurable() {
			return nil, fmt.Errorf("tables: catalogue %d table %s measures %q, which the schema cannot sum", cat.Version, t.ID, t.Measure.Var)
		}
		p.measure = v
	}
	p.universe = make([]bool, len(g.codes))
	for i := ai; i < g.end[ai]; i++ {
		if g.levels[i] == area.EA {
			p.universe[i] = true
		}
	}
	p.Areas = []area.Code{r.Area}
	p.eaAsOf = c.eaAsOf(point)
	var asOf int64 = -1
	for _, a := range point.Areas {
		asOf = max(asOf, a.AsOf)
	}
	p.Norm = Normalized{
		AsOf: asOf, Rows: slices.Clone(t.Rows), Cols: slices.Clone(t.Cols), Filter: map[string][]string{}, Format: format,
		Measure: t.Measure, Project: proj.ID, SDC: params.Canonical(), Unit: t.Unit,
	}
	if p.Norm.Cols == nil {
		p.Norm.Cols = []string{}
	}
	p.std = &StandardNorm{
		Area: string(r.Area), Catalogue: cat.Version, Format: format, Point: r.Point, PointState: pointDigest,
		Project: proj.ID, SDC: params.Canonical(), Table: t.ID,
	}
	p.stdTable, p.stdArea = t, areaRef{code: r.Area, name: g.names[ai], level: lv}
	return p, nil
}

// areaRef names the area a standard table is for.
type areaRef struct {
	code  area.Code
	name  string
	level area.Level
}

// StandardFormat names the layout of a released standard table.
const StandardFormat = "censusvault.standard-table/v1"

// stdJSON writes a standard table: which table of which catalogue, for
// which area and point, then the dimensions and cells as a free-form
// table has them.
func (t *Table) stdJSON() []byte {
	p := t.Plan
	n := p.std
	var b bytes.Buffer
	b.WriteString(`{"table":`)
	b.Write(js(StandardFormat))
	fmt.Fprintf(&b, `,"catalogue":%d,"id":`, n.Catalogue)
	b.Write(js(n.Table))
	title, _ := json.Marshal(p.stdTable.Title)
	b.WriteString(`,"title":`)
	b.Write(title)
	b.WriteString(`,"project":`)
	b.Write(js(n.Project))
	b.WriteString(`,"area":{"code":`)
	b.Write(js(string(p.stdArea.code)))
	b.WriteString(`,"name":`)
	b.Write(js(p.stdArea.name))
	b.WriteString(`,"level":`)
	b.Write(js(p.stdArea.level.String()))
	b.WriteString(`},"point":`)
	b.Write(js(n.Point))
	b.WriteString(`,"unit":`)
	b.Write(js(string(p.unit)))
	m, _ := p.Norm.Measure.MarshalJSON()
	b.WriteString(`,"measure":`)
	b.Write(m)
	t.writeDims(&b)
	b.WriteString(`,"margin":`)
	b.Write(js(Margin))
	b.WriteString(`,"disclosure_control":{"method":`)
	b.Write(js(Method))
	b.WriteString(`,"params":`)
	b.Write(js(p.params.Canonical()))
	b.WriteString(`}`)
	t.writeCells(&b)
	return b.Bytes()
}

// stdCSV is stdJSON's CSV: '#' comment lines naming the table, area and
// point, then the cells as a free-form table's CSV has them.
func (t *Table) stdCSV() []byte {
	p := t.Plan
	n := p.std
	var b bytes.Buffer
	m, _ := p.Norm.Measure.MarshalJSON()
	fmt.Fprintf(&b, "# %s catalogue=%d id=%s project=%s area=%s point=%s unit=%s measure=%s margin=%s\n",
		StandardFormat, n.Catalogue, n.Table, n.Project, p.stdArea.code, n.Point, p.unit, m, Margin)
	fmt.Fprintf(&b, "# %s\n", strings.ReplaceAll(p.stdTable.Title["en"], "\n", " "))
	fmt.Fprintf(&b, "# disclosure control: %s; %s\n", Method, p.params.Canonical())
	w := csv.NewWriter(&b)
	t.writeCSVCells(w)
	w.Flush()
	return b.Bytes()
}

// variablesOf lists the variables a standard table uses (its dimensions'
// and its measure's), for the project's variable check.
func (c *Catalogue) variablesOf(t *StandardTable) []string {
	var out []string
	for _, name := range slices.Concat(t.Rows, t.Cols) {
		v, _, err := c.dimVar(name)
		if err != nil {
			continue // checked when the catalogue was loaded
		}
		out = append(out, v.name)
	}
	if t.Measure.Op != "count" {
		out = append(out, t.Measure.Var)
	}
	return out
}

// buildBlock makes the dimensions of a row or column block and the
// number of their inner categories.
func (c *Catalogue) buildBlock(names []string) ([]dim, int, error) {
	ds, n := make([]dim, 0, len(names)), 1
	for _, name := range names {
		d, err := c.buildDim(name)
		if err != nil {
			return nil, 0, err
		}
		ds, n = append(ds, d), n*d.n
	}
	return ds, n, nil
}
