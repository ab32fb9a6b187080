// Package synth makes synthetic census data for tests and benchmarks: a
// national area tree shaped like Viet Nam's and households whose people
// follow the 2019 census's broad distributions (age pyramid, sex ratio,
// household size, ethnicity, education by age). Everything is
// deterministic for a seed, so a benchmark or a test can be rerun on the
// same bytes; nothing here is a real person or a real place's plan.
package synth

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/censusvault/censusvault/broker/area"
)

// The national tree's shape: 63 provinces, about 700 districts, about
// 10,600 communes and about 160,000 EAs of about 120 planned households.
const (
	Provinces = 63
	eaPlanned = 120
)

// NationalAreas is the areas CSV (code,parent,level,name,planned_households)
// of a synthetic national tree, the same bytes for the same seed. Codes
// nest: province "07", district "0703", commune "070312", EA "070312-05".
func NationalAreas(seed int64) string {
	r := rand.New(rand.NewPCG(uint64(seed), 0x5ca1ab1e))
	var b strings.Builder
	b.Grow(12 << 20)
	b.WriteString("code,parent,level,name,planned_households\n")
	b.WriteString("VN,,nation,Việt Nam,\n")
	for p := 1; p <= Provinces; p++ {
		pc := fmt.Sprintf("%02d", p)
		fmt.Fprintf(&b, "%s,VN,province,Tỉnh %d,\n", pc, p)
		// 63 × 11.1 ≈ 700 districts.
		nd := 9 + r.IntN(5)
		if p%9 == 0 {
			nd++
		}
		for d := 1; d <= nd; d++ {
			dc := fmt.Sprintf("%s%02d", pc, d)
			fmt.Fprintf(&b, "%s,%s,district,Huyện %d,\n", dc, pc, d)
			// ≈ 15 communes a district, ≈ 10,600 in all.
			nc := 10 + r.IntN(11)
			for c := 1; c <= nc; c++ {
				cc := fmt.Sprintf("%s%02d", dc, c)
				fmt.Fprintf(&b, "%s,%s,commune,Xã %d,\n", cc, dc, c)
				// A few EAs a commune (6–24), each about 120 households.
				ne := 6 + r.IntN(19)
				for e := 1; e <= ne; e++ {
					fmt.Fprintf(&b, "%s-%02d,%s,ea,Địa bàn %02d,%d\n", cc, e, cc, e, eaPlanned-40+r.IntN(81))
				}
			}
		}
	}
	return b.String()
}

// AreaInfo is what the household generator needs of one EA.
type AreaInfo struct {
	Code     string // the EA's code
	Commune  string // its commune's code
	Province string // its province's code
	Name     string // its commune's name, for addresses
	Planned  int64  // its planned households
}

// EAs lists the tree's enumeration areas in the tree's CSV order, with
// their commune and province.
func EAs(t *area.Tree) []AreaInfo {
	var out []AreaInfo
	t.Walk(t.Root(), -1, func(a area.Area, _ int) bool {
		if a.Level != area.EA {
			return true
		}
		info := AreaInfo{Code: string(a.Code), Planned: a.Planned}
		if c, ok := t.Ancestor(a.Code, area.Commune); ok {
			info.Commune = string(c)
			if ca, ok := t.Get(c); ok {
				info.Name = ca.Name
			}
		}
		if p, ok := t.Ancestor(a.Code, area.Province); ok {
			info.Province = string(p)
		}
		out = append(out, info)
		return true
	})
	return out
}
