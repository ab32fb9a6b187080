package synth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/censusvault/censusvault/broker/form"
	"github.com/google/uuid"
)

// MaxHouseholds bounds one generator's household index: far above any
// census (Viet Nam had 26.9 million households in 2019), low enough that
// household numbers stay small.
const MaxHouseholds = 1 << 30

// ErrNoEAs is returned for a generator without enumeration areas.
var ErrNoEAs = errors.New("no enumeration areas to put households in")

// Opts configure a Generator.
type Opts struct {
	Seed int64
	Form *form.Form // default: form.Default()
	EAs  []AreaInfo // where households go; at least one
}

// Generator makes household i of a synthetic census, for any i, the same
// bytes for the same seed, form and EAs. Households are spread over the
// EAs in a seeded random order, one per EA before any EA gets a second,
// so that even a small census covers the whole country. It is safe for
// concurrent use.
type Generator struct {
	seed  uint64
	f     *form.Form
	eas   []AreaInfo
	order []int32 // a permutation of eas
	hh    []form.Field
	pf    []form.Field
	codes map[string]map[int]bool // code field name → its codes
	// census is the form's census moment: ages are completed years at
	// it, interviews fall in the 25 days after it.
	census time.Time
}

// New validates o and returns its generator.
func New(o Opts) (*Generator, error) {
	if len(o.EAs) == 0 {
		return nil, ErrNoEAs
	}
	if len(o.EAs) > MaxHouseholds {
		return nil, fmt.Errorf("more than %d EAs", MaxHouseholds)
	}
	f := o.Form
	if f == nil {
		f = form.Default()
	}
	census, ok := f.Census()
	if !ok {
		return nil, fmt.Errorf("form %s has no census_moment: the generator takes ages and interview times from it", f.Name)
	}
	g := &Generator{seed: uint64(o.Seed), f: f, eas: o.EAs, hh: f.Household, pf: f.Person, codes: map[string]map[int]bool{}, census: census}
	for _, fd := range append(append([]form.Field(nil), f.Household...), f.Person...) {
		if fd.Type == form.TypeCode {
			m := map[int]bool{}
			for _, c := range fd.Codes {
				m[c.Code] = true
			}
			g.codes[fd.Name] = m
		}
	}
	r := rand.New(rand.NewPCG(g.seed, 0x0dd5))
	g.order = make([]int32, len(o.EAs))
	for i := range g.order {
		g.order[i] = int32(i)
	}
	r.Shuffle(len(g.order), func(i, j int) { g.order[i], g.order[j] = g.order[j], g.order[i] })
	return g, nil
}

// Households calls fn with households 0…n-1 of the census made from seed,
// form f (nil: form.Default()) and eas, in order, stopping at fn's first
// error.
func Households(seed int64, f *form.Form, eas []AreaInfo, n int, fn func(submissionJSON []byte) error) error {
	g, err := New(Opts{Seed: seed, Form: f, EAs: eas})
	if err != nil {
		return err
	}
	if n < 0 || n > MaxHouseholds {
		return fmt.Errorf("household count %d out of range 0…%d", n, MaxHouseholds)
	}
	for i := range n {
		b, _, err := g.Household(i)
		if err != nil {
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

// person is one generated person; age is completed years at the census
// moment.
type person struct {
	age, sex, rel int
	name          string
}

// Household returns household i's submission JSON and its number of
// persons.
func (g *Generator) Household(i int) ([]byte, int, error) {
	if i < 0 || i >= MaxHouseholds {
		return nil, 0, fmt.Errorf("household index %d out of range 0…%d", i, MaxHouseholds-1)
	}
	r := rand.New(rand.NewPCG(g.seed, uint64(i)))
	return g.household(r, g.eas[g.order[i%len(g.eas)]], i/len(g.eas)+1, time.Time{})
}

// Placed is a household whose place and time its caller chooses (the demo
// deposits exactly a town's first ten days, EA by EA).
type Placed struct {
	EA          AreaInfo
	No          int       // household number in the EA, ≥ 1
	Interviewed time.Time // zero: some time in the 25 days after the census moment
}

// HouseholdAt makes the household placed at p: the same bytes for the
// same seed, form and placement; its id is drawn from them too.
func (g *Generator) HouseholdAt(p Placed) ([]byte, int, error) {
	if p.No < 1 || p.No > MaxHouseholds {
		return nil, 0, fmt.Errorf("household number %d out of range 1…%d", p.No, MaxHouseholds)
	}
	h := fnv.New64a()
	h.Write([]byte(p.EA.Code))
	r := rand.New(rand.NewPCG(g.seed^h.Sum64(), uint64(p.No)))
	return g.household(r, p.EA, p.No, p.Interviewed)
}

// household draws one household of EA ea, number hhNo, from r (the
// interview time too, unless interviewed is set).
func (g *Generator) household(r *rand.Rand, ea AreaInfo, hhNo int, interviewed time.Time) ([]byte, int, error) {
	var idb [16]byte
	for k := 0; k < 16; k += 8 {
		v := r.Uint64()
		for j := range 8 {
			idb[k+j] = byte(v >> (8 * j))
		}
	}
	idb[6] = idb[6]&0x0f | 0x40 // version 4
	idb[8] = idb[8]&0x3f | 0x80 // RFC 4122 variant
	id := uuid.UUID(idb).String()

	people := g.people(r)
	fam := family(r)
	for k := range people {
		p := &people[k]
		switch p.rel {
		case 2, 5, 8: // married in: another family name
			p.name = fullName(r, family(r), p.sex)
		default:
			p.name = fullName(r, fam, p.sex)
		}
	}
	prof := g.profile(ea)
	eth := 1
	if r.Float64() >= prof.kinh {
		eth = prof.minority
		if eth == 0 || r.IntN(4) == 0 {
			eth = g.minority(r)
		}
	}
	rel := religion(r)
	if prof.religion != 0 && r.Float64() < prof.share {
		rel = prof.religion
	}

	hh := map[string]any{}
	for _, fd := range g.hh {
		if v, ok := g.householdValue(r, fd, len(people)); ok {
			hh[fd.Name] = v
		}
	}
	g.set(hh, "head_name", people[0].name)
	g.set(hh, "address", fmt.Sprintf("Số %d, %s, %s", 1+r.IntN(200), hamlets[r.IntN(len(hamlets))], ea.Name))
	g.set(hh, "phone", fmt.Sprintf("09%08d", r.IntN(100000000)))
	persons := make([]map[string]any, 0, len(people))
	for _, p := range people {
		pm := map[string]any{}
		for _, fd := range g.pf {
			if v, ok := g.personValue(r, fd, p, eth, rel); ok {
				pm[fd.Name] = v
			}
		}
		persons = append(persons, pm)
	}
	if interviewed.IsZero() {
		interviewed = g.census.Add(time.Duration(r.IntN(25*24*3600)) * time.Second)
	}
	sub := map[string]any{
		"id": id, "form": g.f.Name, "form_version": g.f.Version, "area": ea.Code, "household_no": hhNo,
		"interviewed_at": interviewed.Format(time.RFC3339), "household": hh, "persons": persons,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(sub); err != nil {
		return nil, 0, fmt.Errorf("failed to encode household %d of %s: %w", hhNo, ea.Code, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), len(people), nil
}

// set sets a field only if the form has it.
func (g *Generator) set(m map[string]any, name string, v any) {
	for _, fd := range g.hh {
		if fd.Name == name {
			m[name] = v
			return
		}
	}
}

// Household sizes of Viet Nam 2019 (per mille, sizes 1…8): mean ≈ 3.6.
var sizeWeights = []int{90, 180, 210, 270, 140, 60, 30, 20}

// Age pyramid of Viet Nam 2019, per mille by five-year band 0–4 … 85+:
// a broad base and a bulge at 25–39.
var pyramid = []int{80, 85, 76, 68, 70, 81, 84, 78, 71, 66, 60, 54, 44, 32, 20, 13, 10, 8}

// people makes the household's members: a head, usually a spouse,
// children of the head's age, and the generations a larger household
// adds. Ages of children and grandchildren are drawn from the pyramid,
// limited to what the parents' ages allow.
func (g *Generator) people(r *rand.Rand) []person {
	n := 1 + weighted(r, sizeWeights)
	// Heads are adults: draw from the pyramid from 20 on.
	headAge := ageBetween(r, 20, 95)
	if headAge < 30 && r.IntN(2) == 0 {
		// Few people under 30 head a household of their own.
		headAge = ageBetween(r, 30, 95)
	}
	headSex := 1
	if r.IntN(100) < 26 {
		headSex = 2
	}
	ps := []person{{age: headAge, sex: headSex, rel: 1}}
	if n > 1 && r.IntN(100) < 85 && headAge < 85 {
		sa := min(max(18, headAge+r.IntN(9)-3+2*(headSex-1)-2*(2-headSex)), 99)
		ps = append(ps, person{age: sa, sex: 3 - headSex, rel: 2})
	}
	for len(ps) < n {
		k := len(ps)
		switch {
		case headAge >= 55 && k >= 3 && r.IntN(3) == 0:
			// A grandchild.
			ps = append(ps, person{age: ageBetween(r, 0, max(0, min(headAge-38, 20))), sex: sexOf(r), rel: 6})
		case headAge < 45 && k >= 3 && r.IntN(4) == 0:
			// A parent of the head.
			// Mostly widowed mothers: women live longer.
			sex := 2
			if r.IntN(100) < 30 {
				sex = 1
			}
			ps = append(ps, person{age: min(headAge+20+r.IntN(16), 99), sex: sex, rel: 7})
		case headAge >= 60 && r.IntN(3) == 0:
			// A grown child's spouse.
			ps = append(ps, person{age: ageBetween(r, 20, max(20, headAge-20)), sex: sexOf(r), rel: 5})
		default:
			ps = append(ps, person{age: ageBetween(r, max(0, headAge-42), max(0, headAge-19)), sex: sexOf(r), rel: 3})
		}
	}
	return ps
}

func sexOf(r *rand.Rand) int {
	if r.IntN(1000) < 475 {
		return 1
	}
	return 2
}

// ageBetween draws an age in [lo, hi] from the pyramid.
func ageBetween(r *rand.Rand, lo, hi int) int {
	if hi < lo {
		hi = lo
	}
	total := 0
	for b, w := range pyramid {
		total += overlap(b, lo, hi) * w
	}
	if total == 0 {
		return lo
	}
	x := r.IntN(total)
	for b, w := range pyramid {
		o := overlap(b, lo, hi)
		if x < o*w {
			start := max(5*b, lo)
			return start + x/w
		}
		x -= o * w
	}
	return hi
}

// overlap is how many single years of band b (85+: 85–99) lie in [lo, hi].
func overlap(b, lo, hi int) int {
	s, e := 5*b, 5*b+4
	if b == len(pyramid)-1 {
		e = 99
	}
	return max(0, min(e, hi)-max(s, lo)+1)
}

func weighted(r *rand.Rand, ws []int) int {
	total := 0
	for _, w := range ws {
		total += w
	}
	x := r.IntN(total)
	for i, w := range ws {
		if x < w {
			return i
		}
		x -= w
	}
	return len(ws) - 1
}

// kinhShare is the Kinh share of a province's people: about one province
// in five is in the northern mountains or the central highlands, where
// most people belong to other groups; nationally ≈ 85 %.
func kinhShare(province string) float64 {
	p, err := strconv.Atoi(province)
	if err == nil && p >= 1 && p <= Provinces && p%5 == 3 {
		return 0.45
	}
	if err != nil {
		// Not a national-tree code: spread the highland share by hash.
		h := fnv.New32a()
		h.Write([]byte(province))
		if h.Sum32()%5 == 3 {
			return 0.45
		}
	}
	return 0.95
}

// communeProfile is what sets a commune apart from its neighbours.
// Religion and ethnicity cluster by commune in Viet Nam — Catholic
// parishes, Buddhist villages, communes of one highland people — and an
// attack on released tables has to be tried against data that clusters
// as the real census does: there, a person's neighbours say much about
// them, and only what a table adds beyond that is a disclosure.
type communeProfile struct {
	kinh     float64 // share of Kinh households
	minority int     // the commune's main minority group (0: the national mix)
	religion int     // a religion strong in the commune (0: none)
	share    float64 // households of that religion, beyond the national mix
}

// profile draws ea's commune's profile from the seed and the commune's
// code, the same for every household of the commune. In a highland
// province (Kinh share 0.45) communes are mostly Kinh or mostly one
// minority people, averaging the province's share; one commune in twenty
// is a Catholic parish and one in twenty strongly Buddhist.
func (g *Generator) profile(ea AreaInfo) communeProfile {
	h := fnv.New64a()
	h.Write([]byte(ea.Commune))
	r := rand.New(rand.NewPCG(g.seed^0x636f6d6d756e65, h.Sum64()))
	p := communeProfile{kinh: kinhShare(ea.Province)}
	if p.kinh < 0.9 {
		switch x := r.Float64(); {
		case x < 0.4:
			p.kinh = 0.05
		case x < 0.6:
			p.kinh = 0.45
		default:
			p.kinh = 0.85
		}
	}
	if r.IntN(5) > 0 {
		p.minority = g.minority(r)
	}
	switch x := r.IntN(60); {
	case x < 3 && g.codes["religion"][3]:
		p.religion, p.share = 3, 0.6 // a Catholic parish
	case x < 6 && g.codes["religion"][2]:
		p.religion, p.share = 2, 0.5
	}
	return p
}

// Minority groups by their 2019 population (thousands), by code.
var minorities = map[int]int{2: 1845, 3: 1820, 4: 750, 5: 1320, 6: 1452, 7: 1083, 8: 1393, 9: 891, 10: 513, 11: 2, 12: 399,
	13: 287, 14: 213, 15: 201, 16: 200, 17: 179, 18: 184, 19: 149, 20: 127, 23: 94, 29: 90}

func (g *Generator) minority(r *rand.Rand) int {
	codes := g.codes["ethnicity"]
	total := 0
	for c := 2; c <= form.MaxCodeValue && c < 60; c++ {
		if codes[c] {
			total += minorities[c]
		}
	}
	if total == 0 {
		return 1
	}
	x := r.IntN(total)
	for c := 2; c < 60; c++ {
		if codes[c] {
			if x < minorities[c] {
				return c
			}
			x -= minorities[c]
		}
	}
	return 1
}

// religion: most people follow none; Buddhists and Catholics next.
func religion(r *rand.Rand) int {
	switch x := r.IntN(1000); {
	case x < 860:
		return 1
	case x < 910:
		return 2
	case x < 970:
		return 3
	case x < 980:
		return 4
	case x < 992:
		return 5
	default:
		return 6
	}
}

// education by age: children are in the grade their age allows; adults'
// attainment rises for younger cohorts.
func education(r *rand.Rand, age int) int {
	switch {
	case age < 6:
		return 1
	case age < 11:
		return 2
	case age < 15:
		return 2 + r.IntN(2)
	case age < 18:
		return 3 + r.IntN(2)
	}
	// Cumulative per mille for codes 1…9 by cohort.
	var cum []int
	switch {
	case age < 35:
		cum = []int{10, 40, 150, 420, 700, 730, 790, 850, 990}
	case age < 55:
		cum = []int{30, 100, 300, 650, 830, 850, 900, 930, 990}
	default:
		cum = []int{120, 330, 600, 830, 920, 930, 950, 965, 990}
	}
	x := r.IntN(1000)
	for i, c := range cum {
		if x < c {
			return i + 1
		}
	}
	if r.IntN(10) == 0 {
		return 11
	}
	return 10
}

func (g *Generator) personValue(r *rand.Rand, fd form.Field, p person, eth, rel int) (any, bool) {
	code := func(c int) (any, bool) {
		if g.codes[fd.Name][c] {
			return c, true
		}
		return g.generic(r, fd)
	}
	switch fd.Name {
	case "full_name":
		return p.name, true
	case "sex":
		return code(p.sex)
	case "relationship":
		return code(p.rel)
	case "birth_month":
		return birthMonth(p), true
	case "birth_year":
		// Completed years at the census moment (taken at its month's
		// first instant, as tables.Age does): born before the census
		// month of census year − age, or from it on the year before.
		if birthMonth(p) >= int(g.census.Month()) {
			return g.census.Year() - p.age - 1, true
		}
		return g.census.Year() - p.age, true
	case "ethnicity":
		return code(eth)
	case "religion":
		return code(rel)
	case "education_level":
		if p.age < 5 {
			return nil, false
		}
		return code(education(r, p.age))
	case "literacy":
		if p.age < 5 {
			return nil, false
		}
		if p.age < 8 || (p.age > 60 && r.IntN(100) < 12) {
			return code(2)
		}
		return code(1)
	case "marital_status":
		switch {
		case p.age < 15:
			return code(1)
		case p.rel == 1 || p.rel == 2:
			if p.rel == 1 && p.age >= 60 && r.IntN(4) == 0 {
				return code(3)
			}
			return code(2)
		case p.age < 25:
			return code(1)
		case p.rel == 5:
			return code(2)
		}
		return code(1 + r.IntN(2))
	case "response_type":
		if p.rel == 1 {
			return code(1)
		}
		return code(2)
	}
	return g.generic(r, fd)
}

// birthMonth is a person's birth month, fixed by the person rather than
// drawn, so that birth year and month agree whatever order the form
// lists them in.
func birthMonth(p person) int {
	h := fnv.New32a()
	fmt.Fprintf(h, "%d|%d|%d|%s", p.age, p.sex, p.rel, p.name)
	return 1 + int(h.Sum32()%12)
}

func (g *Generator) householdValue(r *rand.Rand, fd form.Field, size int) (any, bool) {
	pick := func(ws []int) (any, bool) {
		c := 1 + weighted(r, ws)
		if g.codes[fd.Name][c] {
			return c, true
		}
		return g.generic(r, fd)
	}
	switch fd.Name {
	case "head_name", "address", "phone":
		return nil, false // set by the caller
	case "dwelling_type":
		return pick([]int{500, 430, 50, 15, 5})
	case "tenure":
		return pick([]int{880, 10, 90, 20})
	case "floor_area_m2":
		v := float64(30+r.IntN(40)+15*size) + float64(r.IntN(10))/10
		return json.Number(strconv.FormatFloat(v, 'f', -1, 64)), true
	case "water_source":
		return pick([]int{470, 10, 300, 80, 10, 20, 10, 30, 50, 5, 10, 5})
	case "electricity":
		return pick([]int{990, 7, 2, 1})
	case "toilet_type":
		return pick([]int{860, 20, 20, 20, 40, 5, 5, 30})
	case "visit_count":
		return 1 + weighted(r, []int{80, 15, 5}), true
	case "respondent_no":
		return 1 + r.IntN(size), true
	}
	return g.generic(r, fd)
}

// generic makes a valid value for any other field from its definition.
func (g *Generator) generic(r *rand.Rand, fd form.Field) (any, bool) {
	if !fd.Required {
		return nil, false
	}
	switch fd.Type {
	case form.TypeCode:
		if len(fd.Codes) == 0 {
			return nil, false
		}
		return fd.Codes[r.IntN(len(fd.Codes))].Code, true
	case form.TypeInt:
		lo := 0.0
		if fd.Min != nil {
			lo = *fd.Min
		}
		return int64(lo), true
	case form.TypeDecimal:
		lo := 0.0
		if fd.Min != nil {
			lo = *fd.Min
		}
		return json.Number(strconv.FormatFloat(lo, 'f', -1, 64)), true
	case form.TypeDate:
		return g.census.AddDate(0, 0, -r.IntN(3000)).Format(time.DateOnly), true
	case form.TypePhone:
		return fmt.Sprintf("09%08d", r.IntN(100000000)), true
	case form.TypeString:
		return "—", true
	}
	return nil, false
}
