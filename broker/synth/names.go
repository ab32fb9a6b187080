package synth

import "math/rand/v2"

// Vietnamese names, weighted like the real family-name distribution. The
// lists match the demo's; nothing here is a real person.
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

func family(r *rand.Rand) string {
	total := 0
	for _, f := range familyNames {
		total += f.weight
	}
	n := r.IntN(total)
	for _, f := range familyNames {
		if n < f.weight {
			return f.name
		}
		n -= f.weight
	}
	return familyNames[0].name
}

func fullName(r *rand.Rand, fam string, sex int) string {
	if sex == 1 {
		return fam + " " + maleMiddle[r.IntN(len(maleMiddle))] + " " + maleGiven[r.IntN(len(maleGiven))]
	}
	return fam + " " + femaleMiddle[r.IntN(len(femaleMiddle))] + " " + femaleGiven[r.IntN(len(femaleGiven))]
}
