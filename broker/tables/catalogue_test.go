package tables

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/sdc"
)

func catSchema(t testing.TB) *Schema {
	t.Helper()
	s, err := NewSchema(form.Default())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// v1Digest pins catalogue/v1.json. Releases name the catalogue version
// they were made under and are replayed under it, so a version, once
// released under, is never edited: change the catalogue by adding
// catalogue/v2.json beside it. (Before v1's first release, an edit here
// is deliberate and comes with a new digest.)
const v1Digest = "sha256:c28247e067a7d8da3208d7167366489de07478d9e1da3140ee8115b93c29e2f4"

func TestCatalogueV1Unchanged(t *testing.T) {
	b, err := catalogueFiles.ReadFile("catalogue/v1.json")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != v1Digest {
		t.Errorf("catalogue/v1.json is %s, not the pinned %s: a released catalogue version is never edited; add a new version instead", got, v1Digest)
	}
}

func TestStandardCatalogueV1(t *testing.T) {
	s := catSchema(t)
	c, err := StandardCatalogue(s, 1)
	if err != nil {
		t.Fatalf("the embedded v1 does not load: %v", err)
	}
	if c.Version != 1 || c.Form != "census2019" || c.FormVersion != 1 {
		t.Errorf("v1 is version %d for %s v%d", c.Version, c.Form, c.FormVersion)
	}
	latest, err := StandardCatalogue(s, 0)
	if err != nil || latest.Version != 1 {
		t.Fatalf("version 0 (the latest) = %v, %v; want v1", latest, err)
	}
	if n := len(c.Tables); n < 10 || n > 16 {
		t.Errorf("v1 has %d tables; the brief asks for 10–16", n)
	}
	if f := c.Finest(); f != area.Commune {
		t.Errorf("Finest() = %s, want commune", f)
	}
	for _, tab := range c.Tables {
		if got, ok := c.Table(tab.ID); !ok || got != tab {
			t.Errorf("Table(%q) does not find it", tab.ID)
		}
		if tab.Permits(area.EA) || len(tab.Levels) == 0 || !tab.Permits(area.Nation) {
			t.Errorf("table %s levels %v: want the nation, never EAs", tab.ID, tab.Levels)
		}
		if !slices.IsSorted(tab.Levels) {
			t.Errorf("table %s levels %v not coarsest first", tab.ID, tab.Levels)
		}
		if tab.Measure.Op != "count" && !s.Quantitative(tab.Measure.Var) {
			t.Errorf("table %s sums %s", tab.ID, tab.Measure.Var)
		}
		for _, name := range slices.Concat(tab.Rows, tab.Cols) {
			if _, err := c.buildDim(name); err != nil {
				t.Errorf("table %s: buildDim(%s): %v", tab.ID, name, err)
			}
		}
	}
	if _, ok := c.Table("population_religion_detail"); ok {
		t.Error("Table finds an id the catalogue does not have")
	}
	pyramid, ok := c.Table("population_age5_sex")
	if !ok || !pyramid.Permits(area.Commune) || pyramid.Rows[0] != VarAgeGroup5 || pyramid.Title["vi"] == "" {
		t.Errorf("the population pyramid is not published per commune: %+v", pyramid)
	}
	eth, ok := c.Table("population_ethnicity_sex")
	if !ok || eth.Permits(area.District) {
		t.Errorf("all 54 ethnic groups × sex must not go below the province: %+v", eth)
	}
}

func TestStandardCatalogueVersions(t *testing.T) {
	s := catSchema(t)
	for _, v := range []int{2, -1, 1000} {
		_, err := StandardCatalogue(s, v)
		if err == nil || !strings.Contains(err.Error(), "versions: 1") {
			t.Errorf("StandardCatalogue(%d) = %v; want an error naming the embedded versions", v, err)
		}
	}
	// A catalogue written for census2019 v1 serves a later version it
	// checks against (issue 14: one table form, every version).
	f := *form.Default()
	f.Version = 2
	s2, err := NewSchema(&f)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := StandardCatalogue(s2, 0); err != nil || c.Version != 1 || c.Form != "census2019" || c.FormVersion != 1 {
		t.Errorf("v1 for census2019 v2: %v, %v", c, err)
	}
	// Another form has none.
	f.Name = "census2029"
	s3, err := NewSchema(&f)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := StandardCatalogue(s3, 0); !errors.Is(err, ErrNoCatalogue) {
		t.Errorf("a catalogue for census2029: %v, %v", c, err)
	}
	if _, err := StandardCatalogue(s3, 1); err == nil || !strings.Contains(err.Error(), "not written for form census2029 v2") {
		t.Errorf("v1 for census2029: %v", err)
	}
}

// baseCatalogue is a small valid catalogue the refusal cases each break
// in one place.
const baseCatalogue = `{
 "version": 1, "form": {"name": "census2019", "version": 1},
 "groupings": {
  "religion_major": {"of": "religion", "groups": [
   {"label": {"en": "none", "vi": "Không"}, "values": [1]},
   {"label": {"en": "Buddhism", "vi": "Phật giáo"}, "values": [2]},
   {"label": {"en": "other", "vi": "Khác"}, "rest": true}]},
  "age_broad": {"of": "age_group5", "groups": [
   {"label": {"en": "0-14", "vi": "0-14"}, "values": ["0-4", "5-9", "10-14"]},
   {"label": {"en": "15+", "vi": "15+"}, "rest": true}]}},
 "tables": [
  {"id": "religion_sex", "title": {"en": "Religion by sex", "vi": "Tôn giáo theo giới tính"}, "unit": "persons",
   "rows": ["religion_major"], "cols": ["sex"], "measure": "count", "levels": ["nation", "province"], "min_planned_households": 1000},
  {"id": "age_sex", "title": {"en": "Age by sex", "vi": "Tuổi theo giới tính"}, "unit": "persons",
   "rows": ["age_broad"], "cols": ["sex"], "measure": "count", "levels": ["nation", "province", "district", "commune"], "min_planned_households": 100},
  {"id": "floor_area", "title": {"en": "Floor area", "vi": "Diện tích sàn"}, "unit": "households",
   "rows": ["dwelling_type"], "measure": {"mean": "floor_area_m2"}, "levels": ["nation", "province", "district"], "min_planned_households": 1000}]}`

type jsonObj = map[string]any

func decodeBase(t testing.TB) jsonObj {
	t.Helper()
	var m jsonObj
	if err := json.Unmarshal([]byte(baseCatalogue), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func tableOf(m jsonObj, i int) jsonObj { return m["tables"].([]any)[i].(jsonObj) }
func groupingOf(m jsonObj, name string) jsonObj {
	return m["groupings"].(jsonObj)[name].(jsonObj)
}
func groupOf(m jsonObj, name string, k int) jsonObj {
	return groupingOf(m, name)["groups"].([]any)[k].(jsonObj)
}

// religionGroups is a grouping of religion: each list a group, labelled
// g1, g2 …; rest adds a last group taking the other codes.
func religionGroups(rest bool, lists ...[]int) jsonObj {
	var gs []any
	for k, l := range lists {
		vals := make([]any, len(l))
		for i, x := range l {
			vals[i] = x
		}
		gs = append(gs, jsonObj{"label": jsonObj{"en": fmt.Sprintf("g%d", k+1), "vi": fmt.Sprintf("n%d", k+1)}, "values": vals})
	}
	if rest {
		gs = append(gs, jsonObj{"label": jsonObj{"en": "other", "vi": "Khác"}, "rest": true})
	}
	return jsonObj{"of": "religion", "groups": gs}
}

func religionTable(id, grouping string) jsonObj {
	return jsonObj{"id": id, "title": jsonObj{"en": id, "vi": id}, "unit": "persons", "rows": []any{grouping}, "cols": []any{"sex"},
		"measure": "count", "levels": []any{"nation", "province", "district", "commune"}, "min_planned_households": 300}
}

func encodeCat(t testing.TB, m jsonObj) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseCatalogueRefuses(t *testing.T) {
	s := catSchema(t)
	if _, err := ParseCatalogue([]byte(baseCatalogue), s); err != nil {
		t.Fatalf("the base catalogue is refused: %v", err)
	}
	const rel, age, area = `table "religion_sex"`, `table "age_sex"`, `table "floor_area"`
	cases := []struct {
		name   string
		mutate func(m jsonObj)
		where  string // the table or grouping the error must name
		want   string
	}{
		// Variables.
		{"unknown variable", func(m jsonObj) { tableOf(m, 0)["cols"] = []any{"gender"} }, rel, `"gender": no such variable or grouping`},
		{"unknown grouping", func(m jsonObj) { tableOf(m, 0)["rows"] = []any{"religion_grouped"} }, rel, `"religion_grouped": no such variable or grouping`},
		{"identifying field", func(m jsonObj) { tableOf(m, 0)["cols"] = []any{"full_name"} }, rel, `"full_name" is an identifying field`},
		{"operational field", func(m jsonObj) { tableOf(m, 0)["cols"] = []any{"response_type"} }, rel, `"response_type" is an operational field`},
		{"area level as dimension", func(m jsonObj) { tableOf(m, 0)["cols"] = []any{"province"} }, rel, "area levels are not dimensions"},
		{"continuous dimension", func(m jsonObj) { tableOf(m, 2)["rows"] = []any{"floor_area_m2"} }, area, `"floor_area_m2" is a continuous variable`},
		{"age as dimension", func(m jsonObj) { tableOf(m, 1)["rows"] = []any{"age"} }, age, `"age" is a continuous variable`},
		{"variable twice", func(m jsonObj) { tableOf(m, 0)["cols"] = []any{"religion"} }, rel, `"religion_major" and "religion" are both over religion`},
		{"person variable in a households table", func(m jsonObj) { tableOf(m, 2)["rows"] = []any{"dwelling_type", "sex"} }, area, "person variable sex: a table of households"},
		// Measures.
		{"sum of a code", func(m jsonObj) { tableOf(m, 0)["measure"] = jsonObj{"sum": "religion"} }, rel, "only quantitative variables"},
		{"mean of birth year", func(m jsonObj) { tableOf(m, 0)["measure"] = jsonObj{"mean": "birth_year"} }, rel, "only quantitative variables"},
		{"sum of an operational field", func(m jsonObj) { tableOf(m, 2)["measure"] = jsonObj{"sum": "visit_count"} }, area, `"visit_count" is an operational field`},
		{"household measure over persons", func(m jsonObj) { tableOf(m, 0)["measure"] = jsonObj{"mean": "floor_area_m2"} }, rel, `"floor_area_m2" is a household variable`},
		{"person measure over households", func(m jsonObj) { tableOf(m, 2)["measure"] = jsonObj{"mean": "age"} }, area, `"age" is a person variable`},
		{"no measure", func(m jsonObj) { delete(tableOf(m, 0), "measure") }, rel, "no measure"},
		{"bad measure", func(m jsonObj) { tableOf(m, 0)["measure"] = "total" }, "", `measure "total"`},
		// Tables.
		{"duplicate id", func(m jsonObj) { tableOf(m, 1)["id"] = "religion_sex" }, `table id "religion_sex" is used twice`, ""},
		{"bad id", func(m jsonObj) { tableOf(m, 0)["id"] = "Religion Sex" }, `table "Religion Sex"`, "lower-case"},
		{"no tables", func(m jsonObj) { m["tables"] = []any{}; m["groupings"] = jsonObj{} }, "catalogue v1", "lists no tables"},
		{"no rows", func(m jsonObj) { tableOf(m, 0)["rows"] = []any{} }, rel, "rows: name at least one"},
		{"bad unit", func(m jsonObj) { tableOf(m, 0)["unit"] = "people" }, rel, `unit "people": persons or households`},
		{"no vi title", func(m jsonObj) { delete(tableOf(m, 0)["title"].(jsonObj), "vi") }, rel, `no "vi" text`},
		{"third language", func(m jsonObj) { tableOf(m, 0)["title"].(jsonObj)["fr"] = "x" }, rel, "a language other than en and vi"},
		{"unknown key", func(m jsonObj) { tableOf(m, 0)["filter"] = jsonObj{} }, "", `unknown key "filter"`},
		{"five dimensions", func(m jsonObj) {
			tableOf(m, 0)["rows"] = []any{"religion_major", "literacy", "marital_status"}
			tableOf(m, 0)["cols"] = []any{"sex", "age_broad"}
			tableOf(m, 0)["min_planned_households"] = 1e6
		}, rel, "table has 5 dimensions; at most 4 dimensions: use fewer dimensions"},
		{"too many cells", func(m jsonObj) {
			tableOf(m, 0)["rows"] = []any{"birth_year", "ethnicity"}
			tableOf(m, 0)["cols"] = []any{"religion"}
			tableOf(m, 0)["min_planned_households"] = 1e7
		}, rel, "table would have 134,420 cells; at most 50,000 (margins included)"},
		// Where.
		{"bad level", func(m jsonObj) { tableOf(m, 0)["levels"] = []any{"nation", "parish"} }, rel, `unknown level "parish"`},
		{"ea level", func(m jsonObj) { tableOf(m, 1)["levels"] = []any{"nation", "commune", "ea"} }, age, "ea is the listing's area, never a table's"},
		{"level twice", func(m jsonObj) { tableOf(m, 0)["levels"] = []any{"nation", "province", "nation"} }, rel, "nation is listed twice"},
		{"no levels", func(m jsonObj) { tableOf(m, 0)["levels"] = []any{} }, rel, "levels: name the area levels"},
		{"min planned 0", func(m jsonObj) { tableOf(m, 0)["min_planned_households"] = 0 }, rel, "min_planned_households is 0"},
		{"min planned negative", func(m jsonObj) { tableOf(m, 0)["min_planned_households"] = -5 }, rel, "min_planned_households is -5"},
		{"thin cells", func(m jsonObj) {
			tableOf(m, 1)["rows"] = []any{"age_group5"}
			delete(m["groupings"].(jsonObj), "age_broad")
		}, age,
			// 21 bands × 2 sexes: 420 persons, 140 households at 3 a household.
			"its 42 inner cells would hold fewer than 10 persons each on average in an area of 100 planned households: raise min_planned_households to at least 140"},
		{"thin household cells", func(m jsonObj) {
			tableOf(m, 2)["rows"] = []any{"dwelling_type", "water_source"}
			tableOf(m, 2)["min_planned_households"] = 500
		}, area,
			"raise min_planned_households to at least 780"}, // (5+1) × (12+1) cells
		// Groupings.
		{"grouping leaves codes out", func(m jsonObj) {
			groupOf(m, "religion_major", 2)["rest"] = false
			groupOf(m, "religion_major", 2)["values"] = []any{3, 4, 5}
		},
			`grouping "religion_major"`, "leaves codes 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18 of religion in no group"},
		{"grouping leaves bands out", func(m jsonObj) {
			groupOf(m, "age_broad", 1)["rest"] = false
			groupOf(m, "age_broad", 1)["values"] = []any{"15-19", "20-24"}
		}, `grouping "age_broad"`, "leaves bands 25-29, 30-34"},
		{"code in two groups", func(m jsonObj) { groupOf(m, "religion_major", 1)["values"] = []any{2, 1} }, `grouping "religion_major"`, "code 1 is in group 1 and in group 2"},
		{"two rests", func(m jsonObj) {
			delete(groupOf(m, "religion_major", 1), "values")
			groupOf(m, "religion_major", 1)["rest"] = true
		}, `grouping "religion_major"`, "groups 2 and 3 are both the rest"},
		{"rest with values", func(m jsonObj) { groupOf(m, "religion_major", 2)["values"] = []any{3} }, `grouping "religion_major"`, "both lists values and is the rest"},
		{"empty rest", func(m jsonObj) {
			var all []any
			for x := 2; x <= 18; x++ {
				all = append(all, x)
			}
			groupOf(m, "religion_major", 1)["values"] = all
		}, `grouping "religion_major"`, "group 3 is the rest but every code is listed elsewhere"},
		{"empty group", func(m jsonObj) { groupOf(m, "religion_major", 1)["values"] = []any{} }, `grouping "religion_major"`, "group 2 lists no values"},
		{"unknown code", func(m jsonObj) { groupOf(m, "religion_major", 1)["values"] = []any{2, 99} }, `grouping "religion_major"`, "99 is not a code of religion"},
		{"fractional code", func(m jsonObj) { groupOf(m, "religion_major", 1)["values"] = []any{2.5} }, `grouping "religion_major"`, "written as whole numbers"},
		{"code as string", func(m jsonObj) { groupOf(m, "religion_major", 1)["values"] = []any{"2"} }, `grouping "religion_major"`, "written as whole numbers"},
		{"bad band", func(m jsonObj) { groupOf(m, "age_broad", 0)["values"] = []any{"0-4", "5-9", "10-15"} }, `grouping "age_broad"`, `"10-15" is not an age band`},
		{"band as number", func(m jsonObj) { groupOf(m, "age_broad", 0)["values"] = []any{0} }, `grouping "age_broad"`, "age bands are strings"},
		{"one group", func(m jsonObj) {
			groupingOf(m, "religion_major")["groups"] = []any{jsonObj{"label": jsonObj{"en": "all", "vi": "tất cả"}, "rest": true}}
		}, `grouping "religion_major"`, "a grouping needs at least two"},
		{"duplicate en label", func(m jsonObj) { groupOf(m, "religion_major", 1)["label"].(jsonObj)["en"] = "none" }, `grouping "religion_major"`, `groups 1 and 2 have the same "en" label`},
		{"duplicate vi label", func(m jsonObj) { groupOf(m, "religion_major", 2)["label"].(jsonObj)["vi"] = "Không" }, `grouping "religion_major"`, `groups 1 and 3 have the same "vi" label`},
		{"not-stated label", func(m jsonObj) { groupOf(m, "religion_major", 2)["label"].(jsonObj)["en"] = "not stated" }, `grouping "religion_major"`, "the name of the category of absent values"},
		{"group without vi", func(m jsonObj) { delete(groupOf(m, "religion_major", 0)["label"].(jsonObj), "vi") }, `grouping "religion_major"`, `no "vi" text`},
		{"grouping of a continuous variable", func(m jsonObj) { groupingOf(m, "religion_major")["of"] = "floor_area_m2" }, `grouping "religion_major"`, "only coded variables and age_group5 can be grouped"},
		{"grouping of an identifying field", func(m jsonObj) { groupingOf(m, "religion_major")["of"] = "address" }, `grouping "religion_major"`, `"address" is an identifying field`},
		{"grouping named as a variable", func(m jsonObj) {
			m["groupings"].(jsonObj)["literacy"] = groupingOf(m, "religion_major")
		}, `grouping "literacy"`, "the name is a variable's"},
		{"grouping named as a level", func(m jsonObj) {
			m["groupings"].(jsonObj)["district"] = groupingOf(m, "religion_major")
		}, `grouping "district"`, "the name is an area level's"},
		{"unused grouping", func(m jsonObj) {
			m["groupings"].(jsonObj)["religion_spare"] = religionGroups(true, []int{1})
		}, "catalogue v1", `grouping "religion_spare" is used by no table`},
		// Binding.
		{"other form", func(m jsonObj) { m["form"].(jsonObj)["name"] = "census2029" }, "catalogue v1", "is written for form census2029 v1, not census2019 v1"},
		{"other form version", func(m jsonObj) { m["form"].(jsonObj)["version"] = 2 }, "catalogue v1", "census2019 v2, not census2019 v1"},
		{"version 0", func(m jsonObj) { m["version"] = 0 }, "catalogue", "versions are numbered from 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := decodeBase(t)
			tc.mutate(m)
			c, err := ParseCatalogue(encodeCat(t, m), s)
			if err == nil {
				t.Fatalf("accepted (%d tables)", len(c.Tables))
			}
			if !strings.Contains(err.Error(), tc.where) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nwant it to name %q and say %q", err, tc.where, tc.want)
			}
		})
	}
}

// TestCatalogueCellThatMoved is issue 11's attack rebuilt from a
// catalogue: two tables each grouping religion, "Buddhist" being codes
// {2, 6} in one and {2} in the other, publish in every area the count of
// code 6 (Hòa Hảo Buddhism) by difference, though neither publishes it.
// Each table is harmless alone; the pair is what ParseCatalogue refuses.
func TestCatalogueCellThatMoved(t *testing.T) {
	s := catSchema(t)
	wide := religionGroups(true, []int{2, 6}) // "g1": Buddhist, with Hòa Hảo
	narrow := religionGroups(true, []int{2})  // "g1": Buddhist alone
	finer := religionGroups(true, []int{2}, []int{6})
	cat := func(gs map[string]jsonObj) []byte { return religionCatalogue(t, 1, gs) }
	parse := func(gs map[string]jsonObj) (*Catalogue, error) { return ParseCatalogue(cat(gs), s) }

	// Each alone is a fine table.
	wideCat, err := parse(map[string]jsonObj{"religion_wide": wide})
	if err != nil {
		t.Fatal(err)
	}
	narrowCat, err := parse(map[string]jsonObj{"religion_narrow": narrow})
	if err != nil {
		t.Fatal(err)
	}

	// The leak is real: on the synthetic census, the two "Buddhist"
	// cells differ by exactly the Hòa Hảo count, for each sex.
	f := shared(t)
	p := mustCompile(t, f.cache, countReq(Persons, []string{"religion"}, []string{"sex"}), f.proj, sdc.DefaultParams(), FormatJSON, f.asOf)
	truth, _, err := f.cache.aggregate(p)
	if err != nil {
		t.Fatal(err)
	}
	grouped := func(c *Catalogue, name string) []acc {
		d, err := c.buildDim(name)
		if err != nil {
			t.Fatal(err)
		}
		q := *p
		q.rows, q.R = []dim{d}, d.n
		cells, _, err := f.cache.aggregate(&q)
		if err != nil {
			t.Fatal(err)
		}
		return cells
	}
	w, n := grouped(wideCat, "religion_wide"), grouped(narrowCat, "religion_narrow")
	hoaHao := slices.Index(p.rows[0].values, "6")
	width := p.width()
	for sex := range width {
		diff := w[0*width+sex].n - n[0*width+sex].n
		if want := truth[hoaHao*width+sex].n; diff != want || want == 0 {
			t.Fatalf("sex %d: wide − narrow Buddhist = %d, Hòa Hảo count %d: the attack's premise does not hold on the fixture", sex, diff, want)
		}
	}

	// Together they are refused.
	_, err = parse(map[string]jsonObj{"religion_wide": wide, "religion_narrow": narrow})
	if err == nil {
		t.Fatal("a catalogue publishing Buddhist with and without Hòa Hảo was accepted: the Hòa Hảo count of every area is their difference")
	}
	for _, w := range []string{`"religion_narrow" and "religion_wide" of religion are not nested`, "codes 2 and 6 together"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}

	// Nested groupings are fine: the finer one publishes code 6 itself,
	// so no difference tells more than a table does.
	for _, pair := range [][2]string{{"wide", "finer"}, {"narrow", "finer"}} {
		gs := map[string]jsonObj{"religion_wide": wide, "religion_narrow": narrow, "religion_finer": finer}
		if _, err := parse(map[string]jsonObj{"religion_" + pair[0]: gs["religion_"+pair[0]], "religion_" + pair[1]: gs["religion_"+pair[1]]}); err != nil {
			t.Errorf("nested groupings %v refused: %v", pair, err)
		}
	}

	// Across versions too: a v2 regrouping v1's codes differently is the
	// same pair of tables, asked under two versions at one point.
	files := fstest.MapFS{
		"catalogue/v1.json": {Data: religionCatalogue(t, 1, map[string]jsonObj{"religion_wide": wide})},
		"catalogue/v2.json": {Data: religionCatalogue(t, 2, map[string]jsonObj{"religion_narrow": narrow})},
	}
	for _, v := range []int{0, 1, 2} {
		_, err := loadCatalogue(files, s, v)
		if err == nil || !strings.Contains(err.Error(), `groupings "v1 religion_wide" and "v2 religion_narrow" of religion are not nested`) {
			t.Errorf("version %d of a v1 and a v2 regrouping religion across each other: %v", v, err)
		}
	}
	files["catalogue/v2.json"] = &fstest.MapFile{Data: religionCatalogue(t, 2, map[string]jsonObj{"religion_finer": finer})}
	if c, err := loadCatalogue(files, s, 0); err != nil || c.Version != 2 {
		t.Errorf("a v2 refining v1's grouping: %v, %v; want v2", c, err)
	}
}

// religionCatalogue is a catalogue of the given version with, for each
// grouping of religion, a table of it by sex.
func religionCatalogue(t testing.TB, version int, gs map[string]jsonObj) []byte {
	t.Helper()
	m := jsonObj{"version": version, "form": jsonObj{"name": "census2019", "version": 1}}
	groupings, tabs := jsonObj{}, []any{}
	for _, name := range slices.Sorted(maps.Keys(gs)) {
		groupings[name] = gs[name]
		tabs = append(tabs, religionTable("t_"+name, name))
	}
	m["groupings"], m["tables"] = groupings, tabs
	return encodeCat(t, m)
}

// TestLoadCatalogueFiles: the version files a build carries, as
// StandardCatalogue reads them (here from a test file system).
func TestLoadCatalogueFiles(t *testing.T) {
	s := catSchema(t)
	base := []byte(baseCatalogue)
	other := decodeBase(t)
	other["version"] = 3
	other["form"].(jsonObj)["version"] = 2 // census2019 v2's
	files := fstest.MapFS{
		"catalogue/v1.json": {Data: base},
		"catalogue/v3.json": {Data: encodeCat(t, other)},
	}
	if c, err := loadCatalogue(files, s, 1); err != nil || c.Version != 1 {
		t.Errorf("v1 beside another form's v3: %v, %v", c, err)
	}
	// v3 is written for census2019 v2: the latest for v1 is v1.
	if c, err := loadCatalogue(files, s, 0); err != nil || c.Version != 1 {
		t.Errorf("the latest for census2019 v1 beside v3, written for v2: %v, %v", c, err)
	}
	if _, err := loadCatalogue(files, s, 3); err == nil || !strings.Contains(err.Error(), "catalogue v3 is not written for form census2019 v1") {
		t.Errorf("v3, written for v2, asked for v1: %v", err)
	}
	if _, err := loadCatalogue(files, s, 2); err == nil || !strings.Contains(err.Error(), "versions: 1, 3") {
		t.Errorf("a version not carried: %v", err)
	}

	misnamed := fstest.MapFS{"catalogue/v2.json": {Data: base}}
	if _, err := loadCatalogue(misnamed, s, 0); err == nil || !strings.Contains(err.Error(), "catalogue/v2.json says version 1") {
		t.Errorf("v2.json holding version 1: %v", err)
	}
	for _, name := range []string{"latest.json", "v01.json", "v0.json", "v1.json.orig"} {
		_, err := loadCatalogue(fstest.MapFS{"catalogue/v1.json": {Data: base}, "catalogue/" + name: {Data: base}}, s, 1)
		if err == nil || !strings.Contains(err.Error(), "is not named vN.json") {
			t.Errorf("a file %s: %v", name, err)
		}
	}
	if _, err := loadCatalogue(fstest.MapFS{"catalogue/README": {Data: nil}}, s, 0); err == nil {
		t.Error("no catalogue file: accepted")
	}
	broken := fstest.MapFS{"catalogue/v1.json": {Data: base}, "catalogue/v2.json": {Data: []byte(strings.Replace(baseCatalogue, `"version": 1, "form"`, `"version": 2, "form"`, 1)[:200])}}
	if _, err := loadCatalogue(broken, s, 1); err == nil {
		t.Error("v1 loaded beside a broken v2: every version of the form must load")
	}
}

// v1Oracle reads the groupings of catalogue/v1.json on its own, apart
// from ParseCatalogue: for each grouping, its variable, its groups'
// English labels in order, the group (label) of each code or band it
// lists, and the rest group's label ("" without one).
type oracleGrouping struct {
	of     string
	labels []string
	group  map[string]string // code or band -> label
	rest   string
}

func v1Oracle(t testing.TB) map[string]oracleGrouping {
	t.Helper()
	b, err := catalogueFiles.ReadFile("catalogue/v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groupings map[string]struct {
			Of     string `json:"of"`
			Groups []struct {
				Label  map[string]string `json:"label"`
				Values []any             `json:"values"`
				Rest   bool              `json:"rest"`
			} `json:"groups"`
		} `json:"groupings"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	out := map[string]oracleGrouping{}
	for name, g := range f.Groupings {
		o := oracleGrouping{of: g.Of, group: map[string]string{}}
		for _, gr := range g.Groups {
			o.labels = append(o.labels, gr.Label["en"])
			if gr.Rest {
				o.rest = gr.Label["en"]
			}
			for _, v := range gr.Values {
				switch v := v.(type) {
				case float64:
					o.group[strconv.Itoa(int(v))] = gr.Label["en"]
				case string:
					o.group[v] = gr.Label["en"]
				}
			}
		}
		out[name] = o
	}
	return out
}

// TestBuildDimGroupsSumUngrouped: a grouped dimension puts every record
// in the group of its own category, so each grouped cell is exactly the
// sum of the ungrouped cells of its codes. Checked on every v1 grouping,
// category by category on the dimensions, and cell by cell on the
// synthetic census.
func TestBuildDimGroupsSumUngrouped(t *testing.T) {
	s := catSchema(t)
	c, err := StandardCatalogue(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	f := shared(t)
	for name, o := range v1Oracle(t) {
		t.Run(name, func(t *testing.T) {
			gd, err := c.buildDim(name)
			if err != nil {
				t.Fatal(err)
			}
			v := s.vars[o.of]
			base := codedDim(v)
			wantLabels := slices.Clone(o.labels)
			if base.n > v.categories() {
				wantLabels = append(wantLabels, "not stated")
			}
			if !slices.Equal(gd.labels, wantLabels) || gd.n != len(wantLabels) || gd.src != base.src || gd.col != base.col {
				t.Fatalf("grouped dim: n %d labels %q src %d col %d; want %q over %s's column", gd.n, gd.labels, gd.src, gd.col, wantLabels, o.of)
			}
			// groupOf is the oracle's group of ungrouped category k.
			groupOf := func(k int) int {
				val := base.values[k]
				if val == NotStated {
					return len(o.labels)
				}
				l, ok := o.group[val]
				if !ok {
					l = o.rest
				}
				return slices.Index(o.labels, l)
			}
			if len(gd.catOf) != len(base.catOf) {
				t.Fatalf("catOf has %d entries, the variable's %d", len(gd.catOf), len(base.catOf))
			}
			for k, cat := range base.catOf {
				want := int32(-1)
				if cat >= 0 {
					want = int32(groupOf(int(cat)))
				}
				if gd.catOf[k] != want || (cat >= 0 && want < 0) {
					t.Errorf("stored %d (category %d): group %d, want %d", k, cat, gd.catOf[k], want)
				}
			}

			// On the census: cells of the grouped table are sums of the
			// ungrouped table's, for each sex and the margin.
			p := mustCompile(t, f.cache, countReq(Persons, []string{o.of}, []string{"sex"}), f.proj, sdc.DefaultParams(), FormatJSON, f.asOf)
			truth, u, err := f.cache.aggregate(p)
			if err != nil {
				t.Fatal(err)
			}
			q := *p
			q.rows, q.R = []dim{gd}, gd.n
			got, gu, err := f.cache.aggregate(&q)
			if err != nil {
				t.Fatal(err)
			}
			if gu != u {
				t.Errorf("universe %d grouped, %d ungrouped", gu, u)
			}
			width := p.width()
			want := make([]acc, (gd.n+1)*width)
			for r := 0; r <= p.R; r++ {
				g := gd.n // the margin row
				if r < p.R {
					g = groupOf(r)
				}
				for col := range width {
					a, w := truth[r*width+col], &want[g*width+col]
					w.n, w.key, w.milli = w.n+a.n, w.key+a.key, w.milli+a.milli
				}
			}
			nonzero := 0
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("cell %d: grouped %+v, sum of its codes' cells %+v", i, got[i], want[i])
				}
				if got[i].n > 0 {
					nonzero++
				}
			}
			if nonzero < 2*width {
				t.Errorf("only %d non-empty cells: the check says little", nonzero)
			}
		})
	}
}

func TestPermitsArea(t *testing.T) {
	s := catSchema(t)
	c, err := StandardCatalogue(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	g, err := newGeo(national(t))
	if err != nil {
		t.Fatal(err)
	}
	eth, _ := c.Table("population_ethnicity_sex") // nation and province, 20,000 planned
	first := func(lv area.Level, ok func(planned int64) bool) int32 {
		for i := range g.codes {
			if g.levels[i] == lv && ok(g.planned[i]) {
				return int32(i)
			}
		}
		t.Fatalf("no %s in the national tree fits", lv)
		return -1
	}
	every := func(int64) bool { return true }
	if err := eth.permitsArea(g, first(area.Province, every)); err != nil {
		t.Errorf("a province: %v", err)
	}
	if err := eth.permitsArea(g, 0); err != nil {
		t.Errorf("the nation: %v", err)
	}
	err = eth.permitsArea(g, first(area.District, every))
	if err == nil || !strings.Contains(err.Error(), "published for areas at levels nation, province, not at district") {
		t.Errorf("a district: %v", err)
	}

	// The planned households (the listing's, public) decide, never
	// deposits: this geo has none.
	m := decodeBase(t)
	tableOf(m, 1)["min_planned_households"] = 2000
	small, err := ParseCatalogue(encodeCat(t, m), s)
	if err != nil {
		t.Fatal(err)
	}
	tab, _ := small.Table("age_sex")
	if err := tab.permitsArea(g, first(area.Commune, func(p int64) bool { return p >= 2000 })); err != nil {
		t.Errorf("a commune of 2000+ planned households: %v", err)
	}
	err = tab.permitsArea(g, first(area.Commune, func(p int64) bool { return p < 2000 }))
	if err == nil || !strings.Contains(err.Error(), "at least 2000 planned households") {
		t.Errorf("a commune under 2000 planned households: %v", err)
	}
}
