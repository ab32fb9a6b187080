package demo

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/censusvault/censusvault/broker/form"
)

// Synthetic Vietnamese households: plausible names, ages and codes, made
// from the form definition so every value is valid for it. Nothing here is
// a real person.

var (
	familyNames = []struct {
		name   string
		weight int
	}{
		{"Nguyễn", 38}, {"Trần", 11}, {"Lê", 9}, {"Phạm", 7}, {"Hoàng", 5}, {"Phan", 4}, {"Võ", 4},
		{"Đặng", 2}, {"Bùi", 2}, {"Đỗ", 2}, {"Hồ", 2}, {"Ngô", 2}, {"Dương", 1}, {"Lý", 1}, {"Đinh", 1}, {"Thái", 1},
	}
	maleMiddle   = []string{"Văn", "Hữu", "Đức", "Minh", "Quang", "Công", "Xuân", "Đình"}
	femaleMiddle = []string{"Thị", "Thị", "Thị", "Ngọc", "Thu", "Minh", "Kim", "Hồng"}
	maleGiven    = []string{"An", "Bình", "Cường", "Dũng", "Duy", "Hải", "Hùng", "Huy", "Khánh", "Long", "Nam", "Phong", "Quân", "Sơn", "Tài", "Thắng", "Thành", "Trung", "Tuấn", "Việt"}
	femaleGiven  = []string{"Anh", "Chi", "Dung", "Giang", "Hà", "Hằng", "Hạnh", "Hoa", "Hương", "Lan", "Linh", "Loan", "Mai", "Nga", "Ngân", "Nhung", "Phương", "Thảo", "Trang", "Vy"}
	hamlets      = []string{"Tổ dân phố 1", "Tổ dân phố 2", "Tổ dân phố 3", "Tổ dân phố 4", "Tổ dân phố 5", "Khối 6", "Khối 7", "Thôn Trung Thành"}
)

// census is the reference moment of the 2019 census.
var census = time.Date(2019, 4, 1, 0, 0, 0, 0, time.FixedZone("+07", 7*3600))

type synth struct {
	r *rand.Rand
	f *form.Form
}

func newSynth(seed uint64, f *form.Form) *synth {
	return &synth{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), f: f}
}

func (s *synth) pick(xs []string) string { return xs[s.r.IntN(len(xs))] }

func (s *synth) family() string {
	total := 0
	for _, f := range familyNames {
		total += f.weight
	}
	n := s.r.IntN(total)
	for _, f := range familyNames {
		if n < f.weight {
			return f.name
		}
		n -= f.weight
	}
	return familyNames[0].name
}

func (s *synth) name(family string, sex int) string {
	if sex == 1 {
		return family + " " + s.pick(maleMiddle) + " " + s.pick(maleGiven)
	}
	return family + " " + s.pick(femaleMiddle) + " " + s.pick(femaleGiven)
}

type person struct {
	sex, year, month, rel int
	name                  string
}

// household returns one submission's JSON.
func (s *synth) household(id, ea, wardName string, hhNo int, interviewed time.Time) ([]byte, error) {
	n := 1 + s.r.IntN(8)
	if s.r.IntN(3) > 0 { // most households have 2–5 people
		n = 2 + s.r.IntN(4)
	}
	fam := s.family()
	var people []person
	headSex := 1
	if s.r.IntN(4) == 0 {
		headSex = 2
	}
	headYear := 1940 + s.r.IntN(60)
	people = append(people, person{sex: headSex, year: headYear, month: 1 + s.r.IntN(12), rel: 1, name: s.name(fam, headSex)})
	for i := 1; i < n; i++ {
		p := person{month: 1 + s.r.IntN(12), sex: 1 + s.r.IntN(2)}
		switch {
		case i == 1 && headYear < 1995:
			p.rel, p.sex = 2, 3-headSex // spouse
			p.year = headYear + s.r.IntN(9) - 3
			p.name = s.name(s.family(), p.sex)
		default:
			p.rel = 3 // child
			p.year = min(headYear+20+s.r.IntN(20), 2019)
			p.name = s.name(fam, p.sex)
		}
		if p.year == 2019 && p.month > 3 {
			p.month = 3
		}
		people = append(people, p)
	}
	hh := map[string]any{}
	for _, fd := range s.f.Household {
		if v, ok := s.value(fd, nil); ok {
			hh[fd.Name] = v
		}
	}
	hh["head_name"] = people[0].name
	hh["address"] = fmt.Sprintf("Số %d, %s, %s", 1+s.r.IntN(200), s.pick(hamlets), wardName)
	hh["phone"] = fmt.Sprintf("09%08d", s.r.IntN(100000000))
	var persons []map[string]any
	for _, p := range people {
		pm := map[string]any{}
		for _, fd := range s.f.Person {
			if v, ok := s.value(fd, &p); ok {
				pm[fd.Name] = v
			}
		}
		pm["full_name"] = p.name
		pm["sex"] = p.sex
		pm["birth_year"] = p.year
		pm["birth_month"] = p.month
		if hasCode(fieldOf(s.f.Person, "relationship"), p.rel) {
			pm["relationship"] = p.rel
		}
		persons = append(persons, pm)
	}
	sub := map[string]any{
		"id": id, "form": s.f.Name, "form_version": s.f.Version, "area": ea, "household_no": hhNo,
		"interviewed_at": interviewed.Format(time.RFC3339), "household": hh, "persons": persons,
	}
	return json.Marshal(sub)
}

// value makes a valid value for a field from its definition, or leaves an
// optional one out now and then.
func (s *synth) value(fd form.Field, p *person) (any, bool) {
	if !fd.Required && s.r.IntN(5) == 0 {
		return nil, false
	}
	switch fd.Type {
	case "code":
		if len(fd.Codes) == 0 {
			return nil, false
		}
		if fd.Name == "ethnicity" || fd.Name == "religion" || fd.Name == "nationality" {
			// Hà Tĩnh is almost entirely Kinh, mostly without religion.
			if s.r.IntN(100) < 97 || !hasCode(fd, 2) {
				return 1, true
			}
		}
		if fd.Name == "marital_status" && p != nil && 2019-p.year < 16 {
			return 1, true
		}
		return fd.Codes[s.r.IntN(len(fd.Codes))].Code, true
	case "int", "decimal":
		lo, hi := 0.0, 100.0
		if fd.Min != nil {
			lo = *fd.Min
		}
		if fd.Max != nil {
			hi = *fd.Max
		}
		if fd.Name == "floor_area_m2" {
			lo, hi = max(lo, 20), min(hi, 200)
		}
		if hi-lo > 1000 {
			hi = lo + 1000
		}
		if fd.Type == "decimal" {
			v := math.Floor((lo+s.r.Float64()*(hi-lo))*10) / 10
			return json.Number(strconv.FormatFloat(max(v, lo), 'f', -1, 64)), true
		}
		v := lo + float64(s.r.IntN(int(hi-lo)+1))
		return int64(v), true
	case "date":
		return census.AddDate(0, 0, -s.r.IntN(3000)).Format("2006-01-02"), true
	case "phone":
		return fmt.Sprintf("09%08d", s.r.IntN(100000000)), true
	case "string":
		return "—", fd.Required
	}
	return nil, false
}

func fieldOf(fs []form.Field, name string) form.Field {
	for _, f := range fs {
		if f.Name == name {
			return f
		}
	}
	return form.Field{}
}

func hasCode(f form.Field, c int) bool {
	for _, x := range f.Codes {
		if x.Code == c {
			return true
		}
	}
	return false
}
