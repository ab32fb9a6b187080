package synth_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/synth"
)

// validateClock is a moment after the 2019 fieldwork.
var validateClock = time.Date(2019, 5, 1, 0, 0, 0, 0, time.UTC)

func nationalEAs(t testing.TB) ([]synth.AreaInfo, *area.Tree) {
	t.Helper()
	tr, err := area.Load(strings.NewReader(synth.NationalAreas(2019)))
	if err != nil {
		t.Fatal(err)
	}
	return synth.EAs(tr), tr
}

func TestNationalAreas(t *testing.T) {
	csv := synth.NationalAreas(2019)
	if csv != synth.NationalAreas(2019) {
		t.Fatal("same seed, different trees")
	}
	if csv == synth.NationalAreas(2020) {
		t.Error("different seeds, same tree")
	}
	start := time.Now()
	tr, err := area.Load(strings.NewReader(csv))
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	// The goal is < 1 s; loose because the machine is shared.
	if took > 3*time.Second {
		t.Errorf("area.Load took %v", took)
	}
	counts := map[area.Level]int{}
	tr.Walk(tr.Root(), -1, func(a area.Area, _ int) bool { counts[a.Level]++; return true })
	t.Logf("%d areas loaded in %v: %v; %d planned households", tr.Len(), took, counts, func() int64 { a, _ := tr.Get("VN"); return a.Planned }())
	if counts[area.Province] != 63 {
		t.Errorf("%d provinces, want 63", counts[area.Province])
	}
	for _, c := range []struct {
		l      area.Level
		lo, hi int
	}{{area.District, 650, 750}, {area.Commune, 9500, 11700}, {area.EA, 100_000, 250_000}} {
		if counts[c.l] < c.lo || counts[c.l] > c.hi {
			t.Errorf("%d areas at level %v, want %d…%d", counts[c.l], c.l, c.lo, c.hi)
		}
	}
	if tr.Len() > 250_000 {
		t.Errorf("%d areas, want ≤ 250,000", tr.Len())
	}
	eas := synth.EAs(tr)
	if len(eas) != counts[area.EA] || eas[0].Commune == "" || eas[0].Province == "" || eas[0].Name == "" {
		t.Errorf("EAs: %d, first %+v", len(eas), eas[0])
	}
}

func collect(t testing.TB, seed int64, eas []synth.AreaInfo, n int) [][]byte {
	t.Helper()
	var out [][]byte
	if err := synth.Households(seed, nil, eas, n, func(b []byte) error {
		out = append(out, bytes.Clone(b))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestHouseholdsDeterministic(t *testing.T) {
	eas, _ := nationalEAs(t)
	a, b := collect(t, 7, eas, 300), collect(t, 7, eas, 300)
	c := collect(t, 8, eas, 300)
	if len(a) != 300 {
		t.Fatalf("%d households, want 300", len(a))
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("household %d differs for the same seed", i)
		}
	}
	same := 0
	for i := range a {
		if bytes.Equal(a[i], c[i]) {
			same++
		}
	}
	if same > 0 {
		t.Errorf("%d households equal across seeds", same)
	}
	g, err := synth.New(synth.Opts{Seed: 7, EAs: eas})
	if err != nil {
		t.Fatal(err)
	}
	// Random access gives the same bytes as the sequence.
	for _, i := range []int{0, 1, 299} {
		h, _, err := g.Household(i)
		if err != nil || !bytes.Equal(h, a[i]) {
			t.Errorf("Household(%d) differs from the sequence (err %v)", i, err)
		}
	}
}

// TestHouseholdsValidUnique: every household passes the default form's
// validation, and ids and (area, household_no) are unique, also when
// there are more households than EAs.
func TestHouseholdsValidUnique(t *testing.T) {
	f := form.Default()
	small := []synth.AreaInfo{{Code: "18070-01", Commune: "18070", Province: "42", Name: "Phường Bắc Hồng", Planned: 120},
		{Code: "18070-02", Commune: "18070", Province: "42", Name: "Phường Bắc Hồng", Planned: 120}}
	national, _ := nationalEAs(t)
	for _, tc := range []struct {
		name string
		eas  []synth.AreaInfo
		n    int
	}{{"two EAs", small, 401}, {"national", national, 3000}} {
		t.Run(tc.name, func(t *testing.T) {
			ids := map[string]bool{}
			keys := map[string]bool{}
			for i, b := range collect(t, 2019, tc.eas, tc.n) {
				s, err := form.Decode(b)
				if err != nil {
					t.Fatalf("household %d: %v", i, err)
				}
				if err := f.ValidateAt(s, validateClock); err != nil {
					t.Fatalf("household %d: %v", i, err)
				}
				k := fmt.Sprint(s.Area, "/", s.HouseholdNo)
				if ids[s.ID] || keys[k] {
					t.Fatalf("household %d: duplicate id or (area, household_no)", i)
				}
				ids[s.ID], keys[k] = true, true
			}
		})
	}
}

// TestHouseholdsDistribution checks the census's shape on 20,000
// households against Viet Nam 2019.
func TestHouseholdsDistribution(t *testing.T) {
	eas, _ := nationalEAs(t)
	const n = 20000
	var persons, male, female, kinh, withEth, young int
	ageBands := make([]int, 21)
	for _, b := range collect(t, 2019, eas, n) {
		var sub struct {
			Persons []struct {
				Sex        int  `json:"sex"`
				BirthYear  int  `json:"birth_year"`
				BirthMonth int  `json:"birth_month"`
				Ethnicity  *int `json:"ethnicity"`
			} `json:"persons"`
		}
		if err := json.Unmarshal(b, &sub); err != nil {
			t.Fatal(err)
		}
		for _, p := range sub.Persons {
			persons++
			switch p.Sex {
			case 1:
				male++
			case 2:
				female++
			}
			if p.Ethnicity != nil {
				withEth++
				if *p.Ethnicity == 1 {
					kinh++
				}
			}
			age := 2019 - p.BirthYear
			if p.BirthMonth >= 4 {
				age--
			}
			if age < 0 {
				t.Fatalf("negative age: born %d-%02d", p.BirthYear, p.BirthMonth)
			}
			if age <= 14 {
				young++
			}
			ageBands[min(age/5, 20)]++
		}
	}
	mean := float64(persons) / n
	ratio := float64(male) / float64(female)
	kinhShare := float64(kinh) / float64(withEth)
	youngShare := float64(young) / float64(persons)
	t.Logf("%d persons: mean household %.2f, sex ratio %.3f, Kinh %.1f %%, aged 0–14 %.1f %%, bands %v",
		persons, mean, ratio, 100*kinhShare, 100*youngShare, ageBands)
	if mean < 3.3 || mean > 3.9 {
		t.Errorf("mean household size %.2f, want 3.6 ± 0.3", mean)
	}
	if ratio < 0.9 || ratio > 1.1 {
		t.Errorf("sex ratio %.3f, want 0.9–1.1", ratio)
	}
	if kinhShare < 0.80 || kinhShare > 0.90 {
		t.Errorf("Kinh share %.3f, want 0.80–0.90", kinhShare)
	}
	if youngShare < 0.20 || youngShare > 0.28 {
		t.Errorf("share aged 0–14 %.3f, want 0.20–0.28", youngShare)
	}
	// The bulge: 25–39 outnumber 15–24 per band.
	if (ageBands[5]+ageBands[6]+ageBands[7])/3 <= (ageBands[3]+ageBands[4])/2 {
		t.Errorf("no bulge at 25–39: %v", ageBands)
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := synth.New(synth.Opts{}); err == nil {
		t.Error("no EAs accepted")
	}
	eas := []synth.AreaInfo{{Code: "a-1"}}
	g, err := synth.New(synth.Opts{EAs: eas})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{-1, synth.MaxHouseholds} {
		if _, _, err := g.Household(i); err == nil {
			t.Errorf("Household(%d) accepted", i)
		}
	}
	if _, _, err := g.Household(synth.MaxHouseholds - 1); err != nil {
		t.Errorf("Household(max-1): %v", err)
	}
	if err := synth.Households(1, nil, eas, -1, func([]byte) error { return nil }); err == nil {
		t.Error("negative count accepted")
	}
}

// TestClusteringByCommune: religion and ethnicity cluster by commune, as
// in Viet Nam, so that attacks on tables are judged against neighbours
// who say something about a person. Measured as η², the share of the
// variance of "Catholic" and "Kinh" (per person) that the commune
// explains: near 0 without clustering.
func TestClusteringByCommune(t *testing.T) {
	all, _ := nationalEAs(t)
	// Enough households per commune to see its profile: the EAs of the
	// first two communes of every province (highland ones included).
	var eas []synth.AreaInfo
	chosen := map[string]bool{}
	perProvince := map[string]int{}
	for _, ea := range all {
		if !chosen[ea.Commune] {
			if perProvince[ea.Province] == 2 {
				continue
			}
			perProvince[ea.Province]++
			chosen[ea.Commune] = true
		}
		eas = append(eas, ea)
	}
	commune := map[string]string{}
	for _, ea := range eas {
		commune[ea.Code] = ea.Commune
	}
	type tally struct{ n, catholic, kinh float64 }
	by := map[string]*tally{}
	var total tally
	for _, b := range collect(t, 2019, eas, 20000) {
		var sub struct {
			Area    string `json:"area"`
			Persons []struct {
				Religion  int `json:"religion"`
				Ethnicity int `json:"ethnicity"`
			} `json:"persons"`
		}
		if err := json.Unmarshal(b, &sub); err != nil {
			t.Fatal(err)
		}
		c := by[commune[sub.Area]]
		if c == nil {
			c = &tally{}
			by[commune[sub.Area]] = c
		}
		for _, p := range sub.Persons {
			for _, x := range []*tally{c, &total} {
				x.n++
				if p.Religion == 3 {
					x.catholic++
				}
				if p.Ethnicity == 1 {
					x.kinh++
				}
			}
		}
	}
	eta2 := func(share func(*tally) float64) float64 {
		mean := share(&total)
		between := 0.0
		for _, c := range by {
			d := share(c) - mean
			between += c.n * d * d
		}
		return between / (total.n * mean * (1 - mean))
	}
	cath := eta2(func(x *tally) float64 { return x.catholic / x.n })
	kinh := eta2(func(x *tally) float64 { return x.kinh / x.n })
	t.Logf("%d communes, %.0f persons: Catholic %.1f %% (η² %.2f), Kinh %.1f %% (η² %.2f)",
		len(by), total.n, 100*total.catholic/total.n, cath, 100*total.kinh/total.n, kinh)
	if cath < 0.1 || kinh < 0.1 {
		t.Errorf("religion and ethnicity do not cluster by commune: η² %.2f and %.2f, want ≥ 0.1", cath, kinh)
	}
	if s := total.catholic / total.n; s > 0.15 {
		t.Errorf("Catholic share %.3f: clustering should concentrate, not inflate, it", s)
	}
}
