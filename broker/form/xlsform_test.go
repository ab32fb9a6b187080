package form_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/censusvault/censusvault/broker/form"
)

var updateXLSForm = flag.Bool("update-xlsform", false, "rewrite testdata/xlsform/*.xlsx from the workbooks written in xlsform_test.go")

// xlsSheet is a worksheet as a test writes it: a header row and rows of
// cells by header. An empty row map is a blank spreadsheet row.
type xlsSheet struct {
	name   string
	header []string
	rows   []map[string]string
}

// xlsBook is a workbook, sheet by sheet in tab order.
type xlsBook []*xlsSheet

func (b xlsBook) clone() xlsBook {
	out := make(xlsBook, len(b))
	for i, s := range b {
		c := &xlsSheet{name: s.name, header: append([]string(nil), s.header...)}
		for _, r := range s.rows {
			m := make(map[string]string, len(r))
			for k, v := range r {
				m[k] = v
			}
			c.rows = append(c.rows, m)
		}
		out[i] = c
	}
	return out
}

func (b xlsBook) sheet(t testing.TB, name string) *xlsSheet {
	t.Helper()
	for _, s := range b {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("no sheet %s", name)
	return nil
}

// index returns the index in s.rows of the row whose name column is name.
func (s *xlsSheet) index(t testing.TB, name string) int {
	t.Helper()
	for i, r := range s.rows {
		if r["name"] == name {
			return i
		}
	}
	t.Fatalf("%s: no row named %s", s.name, name)
	return -1
}

// row is the spreadsheet row number of the row named name.
func (s *xlsSheet) row(t testing.TB, name string) int { return s.index(t, name) + 2 }

// col is the column letter of a header.
func (s *xlsSheet) col(t testing.TB, header string) string {
	t.Helper()
	for i, h := range s.header {
		if h == header {
			name, _ := excelize.ColumnNumberToName(i + 1)
			return name
		}
	}
	t.Fatalf("%s: no column %s", s.name, header)
	return ""
}

// rename renames a column, header and cells.
func (s *xlsSheet) rename(from, to string) {
	for i, h := range s.header {
		if h == from {
			s.header[i] = to
		}
	}
	for _, r := range s.rows {
		if v, ok := r[from]; ok {
			r[to] = v
			delete(r, from)
		}
	}
}

func (s *xlsSheet) insert(i int, r map[string]string) {
	s.rows = append(s.rows[:i], append([]map[string]string{r}, s.rows[i:]...)...)
}

var numeric = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// xlsx writes the workbook as an office would have it: cells that look
// like numbers are number cells, the rest shared strings.
func (b xlsBook) xlsx(t testing.TB) []byte {
	t.Helper()
	out, err := b.build()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (b xlsBook) build() ([]byte, error) {
	x := excelize.NewFile()
	defer x.Close()
	for i, s := range b {
		if i == 0 {
			if err := x.SetSheetName("Sheet1", s.name); err != nil {
				return nil, err
			}
		} else if _, err := x.NewSheet(s.name); err != nil {
			return nil, err
		}
		write := func(n int, cells []string) error {
			row := make([]any, len(cells))
			for j, c := range cells {
				switch {
				case c == "":
					row[j] = nil
				case numeric.MatchString(c):
					if v, err := strconv.Atoi(c); err == nil {
						row[j] = v
					} else {
						v, _ := strconv.ParseFloat(c, 64)
						row[j] = v
					}
				default:
					row[j] = c
				}
			}
			return x.SetSheetRow(s.name, "A"+strconv.Itoa(n), &row)
		}
		if err := write(1, s.header); err != nil {
			return nil, err
		}
		known := map[string]bool{}
		for _, h := range s.header {
			known[h] = true
		}
		for j, r := range s.rows {
			if len(r) == 0 {
				continue
			}
			cells := make([]string, len(s.header))
			for k, h := range s.header {
				cells[k] = r[h]
			}
			for h := range r {
				if !known[h] {
					return nil, fmt.Errorf("%s row %d: cell of no column %q", s.name, j+2, h)
				}
			}
			if err := write(j+2, cells); err != nil {
				return nil, err
			}
		}
	}
	var buf bytes.Buffer
	if _, err := x.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// q is a survey row: type, name, English and Vietnamese labels, then
// header=value pairs.
func q(typ, name, en, vi string, kv ...string) map[string]string {
	r := map[string]string{"type": typ, "name": name, "label::English (en)": en, "label::Vietnamese (vi)": vi}
	for _, p := range kv {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			panic("q: " + p)
		}
		r[k] = v
	}
	return r
}

// lfsBook is a labour-force-survey module as a statistics office writes it
// in XLSForm: metadata and notes, groups (one with a relevant, one nested),
// the member roster as the one repeat, a household question after it,
// English and Vietnamese labels, vault columns (class, min, max …), a
// checks sheet. It is the workbook form of lfs2026.json, labels aside
// (these are split by language; the JSON's say both).
func lfsBook() xlsBook {
	const working = "${worked_last_week} = 1 or ${temporarily_absent} = 1"
	survey := &xlsSheet{
		name: "survey",
		header: []string{"type", "name", "label::English (en)", "label::Vietnamese (vi)", "hint::English (en)",
			"required", "relevant", "constraint", "constraint_message::English (en)", "constraint_message::Vietnamese (vi)",
			"calculation", "appearance", "class", "min", "max", "quantitative", "max_len", "role", "head_code", "format"},
		rows: []map[string]string{
			{"type": "start", "name": "start"},
			{"type": "end", "name": "end"},
			{"type": "today", "name": "today"},
			{"type": "deviceid", "name": "deviceid"},
			{"type": "username", "name": "username"},
			{"type": "audit", "name": "audit"},
			q("note", "intro", "This interview asks about the household and about work in the last 7 days.", "Phỏng vấn này hỏi về hộ và về việc làm trong 7 ngày qua."),
			q("begin group", "household", "Household", "Hộ", "appearance=field-list"),
			q("text", "head_name", "Full name of the household head", "Họ và tên chủ hộ", "required=yes", "class=identifying", "max_len=100"),
			q("text", "address", "House number, street, hamlet", "Địa chỉ (số nhà, đường, thôn)", "class=identifying", "max_len=300"),
			q("text", "phone", "Phone number for the next quarter's interview", "Số điện thoại để phỏng vấn lại", "hint::English (en)=9 to 11 digits", "class=identifying", "format=phone", "appearance=numbers"),
			q("select_one yes_no", "dwelling_owned", "Does the household own its dwelling?", "Hộ có sở hữu nhà đang ở không?", "required=yes", "class=analytic"),
			q("integer", "rotation_group", "Rotation group of the panel (1–4)", "Nhóm luân phiên (1–4)", "required=yes", "class=operational", "min=1", "max=4"),
			{"type": "end group"},
			{},
			q("begin repeat", "members", "Household members", "Thành viên hộ"),
			q("text", "full_name", "Full name", "Họ và tên", "required=yes", "class=identifying", "max_len=100"),
			q("select_one relationship", "relationship", "Relationship to the household head", "Quan hệ với chủ hộ", "required=yes", "class=analytic", "head_code=1"),
			q("select_one sex", "sex", "Sex", "Giới tính", "required=yes", "class=analytic", "appearance=horizontal"),
			q("integer", "age", "Age in completed years at the reference date", "Tuổi tròn", "required=yes", "class=analytic", "min=0", "max=110", "role=age"),
			{"type": "calculate", "name": "is_adult", "calculation": "if(${age} >= 15, 1, 0)"},
			q("select_one education", "education_level", "Highest level of education completed", "Trình độ giáo dục cao nhất", "required=yes", "relevant=${age} >= 5", "class=analytic"),
			q("begin group", "labour", "Work in the last 7 days", "Việc làm trong 7 ngày qua", "relevant=${age} >= 15"),
			q("select_one yes_no", "worked_last_week", "Worked at least one hour for pay or profit in the last 7 days?", "Trong 7 ngày qua có làm việc từ 1 giờ trở lên để tạo thu nhập không?", "required=yes", "class=analytic"),
			{"type": "end group", "name": "labour"},
			q("begin group", "main_job", "Main job", "Công việc chính"),
			q("select_one yes_no", "temporarily_absent", "Has a job but was temporarily absent?", "Có công việc nhưng tạm thời nghỉ không?", "required=yes", "relevant=${worked_last_week} = 2", "class=analytic"),
			q("select_one status", "status_in_employment", "Status in employment, main job", "Vị thế việc làm trong công việc chính", "required=yes", "relevant="+working, "class=analytic"),
			q("select_one occupation", "occupation_group", "Occupation, ISCO-08 major group", "Nhóm nghề", "required=yes", "relevant="+working, "class=analytic", "appearance=minimal"),
			q("integer", "hours_worked", "Hours actually worked in the last 7 days, all jobs", "Số giờ thực tế làm việc trong 7 ngày qua", "required=yes", "relevant=${worked_last_week} = 1", "class=analytic", "min=1", "max=112", "quantitative=yes"),
			q("decimal", "monthly_wage_kvnd", "Last month's wage from the main job, thousand đồng", "Tiền lương tháng trước, nghìn đồng", "relevant=${status_in_employment} = 4",
				"constraint=. = 0 or . >= 100", "constraint_message::English (en)=a monthly wage is 0 (unpaid this month) or at least 100 thousand đồng",
				"constraint_message::Vietnamese (vi)=tiền lương là 0 (tháng này không được trả) hoặc từ 100 nghìn đồng", "class=analytic", "min=0", "max=500000", "quantitative=yes"),
			{"type": "end group"},
			q("begin group", "job_search", "Looking for work", "Tìm việc", "relevant=${worked_last_week} = 2 and ${temporarily_absent} = 2"),
			q("begin group", "methods", "Ways of looking for work", "Cách tìm việc"),
			q("select_multiple search", "job_search_methods", "Ways of looking for work in the last 4 weeks", "Cách tìm việc trong 4 tuần qua", "class=analytic"),
			q("note", "search_note", "Select every way the person used.", "Chọn tất cả các cách đã dùng."),
			{"type": "end group"},
			q("select_one yes_no", "available_to_work", "Available to start work within two weeks?", "Sẵn sàng làm việc nếu có việc không?", "required=yes", "class=analytic"),
			{"type": "end group"},
			q("select_one respondent", "response_type", "Who answered", "Người trả lời", "required=TRUE", "class=operational"),
			{"type": "end repeat", "name": "members"},
			q("select_one mode", "interview_mode", "Interview mode", "Hình thức phỏng vấn", "required=yes", "class=operational"),
			q("note", "thanks", "Thank you.", "Cảm ơn."),
		},
	}
	choices := &xlsSheet{name: "choices", header: []string{"list_name", "name", "label::English (en)", "label::Vietnamese (vi)"}}
	add := func(list string, labels ...string) {
		for i := 0; i < len(labels); i += 2 {
			choices.rows = append(choices.rows, map[string]string{"list_name": list, "name": strconv.Itoa(i/2 + 1),
				"label::English (en)": labels[i], "label::Vietnamese (vi)": labels[i+1]})
		}
		choices.rows = append(choices.rows, map[string]string{})
	}
	add("yes_no", "Yes", "Có", "No", "Không")
	add("mode", "Face to face", "Trực tiếp", "By telephone", "Qua điện thoại")
	add("relationship", "Head", "Chủ hộ", "Spouse", "Vợ/chồng", "Child", "Con", "Parent", "Bố/mẹ", "Other relative", "Họ hàng khác", "Not related", "Không phải họ hàng")
	add("sex", "Male", "Nam", "Female", "Nữ")
	add("education", "Never attended", "Chưa đi học", "Primary", "Tiểu học", "Lower secondary", "Trung học cơ sở",
		"Upper secondary", "Trung học phổ thông", "Vocational or college", "Sơ cấp, trung cấp, cao đẳng", "University or higher", "Đại học trở lên")
	add("status", "Employer", "Chủ cơ sở", "Own-account worker", "Tự làm", "Contributing family worker", "Lao động gia đình",
		"Employee", "Làm công ăn lương", "Member of a cooperative", "Xã viên hợp tác xã")
	add("occupation", "Managers", "Nhà lãnh đạo", "Professionals", "Chuyên môn kỹ thuật bậc cao", "Technicians and associate professionals", "Chuyên môn kỹ thuật bậc trung",
		"Clerical support workers", "Nhân viên", "Service and sales workers", "Dịch vụ cá nhân, bảo vệ, bán hàng",
		"Skilled agricultural, forestry and fishery workers", "Nông, lâm, ngư nghiệp có kỹ năng", "Craft and related trades workers", "Thợ thủ công",
		"Plant and machine operators", "Thợ lắp ráp và vận hành máy móc", "Elementary occupations", "Lao động giản đơn", "Armed forces", "Lực lượng vũ trang")
	add("search", "Public employment service", "Trung tâm dịch vụ việc làm", "Private agency", "Công ty môi giới việc làm",
		"Applied to employers directly", "Nộp đơn trực tiếp", "Asked friends or relatives", "Hỏi bạn bè, người thân",
		"Advertisements, job sites", "Xem quảng cáo, mạng tuyển dụng", "Prepared to start a business", "Chuẩn bị kinh doanh riêng")
	add("respondent", "The person", "Tự trả lời", "Another household member", "Người khác trả lời thay")
	add("unused_province", "Hà Nội", "Hà Nội", "Hồ Chí Minh City", "TP Hồ Chí Minh")
	settings := &xlsSheet{
		name:   "settings",
		header: []string{"form_title", "form_id", "version", "instance_name", "style", "census_moment"},
		rows: []map[string]string{{
			"form_title":    "Điều tra Lao động việc làm 2026, mô-đun hộ và thành viên (Labour Force Survey 2026, household and member module)",
			"form_id":       "lfs2026",
			"version":       "1",
			"instance_name": "concat(${head_name}, '-', ${rotation_group})",
			"style":         "pages",
			"census_moment": "2026-07-01T00:00:00+07:00",
		}},
	}
	checks := &xlsSheet{
		name:   "checks",
		header: []string{"id", "scope", "expression", "message::English (en)", "message::Vietnamese (vi)"},
		rows: []map[string]string{
			{"id": "head_of_working_age", "scope": "person", "expression": "${relationship} != 1 or ${age} >= 15",
				"message::English (en)": "the household head must be 15 or older", "message::Vietnamese (vi)": "chủ hộ phải từ 15 tuổi trở lên"},
			{"id": "spouse_of_marriageable_age", "scope": "person", "expression": "${relationship} != 2 or ${age} >= 15",
				"message::English (en)": "a spouse of the head must be 15 or older", "message::Vietnamese (vi)": "vợ/chồng của chủ hộ phải từ 15 tuổi trở lên"},
		},
	}
	return xlsBook{survey, choices, settings, checks}
}

const lfsWorkbook = "testdata/xlsform/lfs2026.xlsx"

// TestXLSFormTestdata keeps the committed workbook equal to lfsBook: it
// must read to the same form (go test -run TestXLSFormTestdata
// -update-xlsform rewrites it).
func TestXLSFormTestdata(t *testing.T) {
	made := lfsBook().xlsx(t)
	if *updateXLSForm {
		if err := os.MkdirAll(filepath.Dir(lfsWorkbook), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(lfsWorkbook, made, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	committed, err := os.ReadFile(lfsWorkbook)
	if err != nil {
		t.Fatal(err)
	}
	a, err := form.ParseXLSForm(committed)
	if err != nil {
		t.Fatal(err)
	}
	b, err := form.ParseXLSForm(made)
	if err != nil {
		t.Fatal(err)
	}
	if ja, jb := mustJSON(t, a), mustJSON(t, b); !bytes.Equal(ja, jb) {
		t.Fatalf("%s reads differently from lfsBook: run go test -run TestXLSFormTestdata -update-xlsform\n%s\n%s", lfsWorkbook, ja, jb)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readJSONForm(t testing.TB, path string) *form.Form {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := form.Parse(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

// withoutLabels copies a form's definition with every label blank.
func withoutLabels(t testing.TB, f *form.Form) form.Form {
	t.Helper()
	var c form.Form
	if err := json.Unmarshal(mustJSON(t, f), &c); err != nil {
		t.Fatal(err)
	}
	for _, list := range [][]form.Field{c.Household, c.Person} {
		for i := range list {
			list[i].Label = ""
			for j := range list[i].Codes {
				list[i].Codes[j].Label = ""
			}
		}
	}
	return c
}

// The committed labour-force workbook reads, field by field, into the
// definition of lfs2026.json; the labels are the English ones.
func TestXLSFormLabourForceSurvey(t *testing.T) {
	b, err := os.ReadFile(lfsWorkbook)
	if err != nil {
		t.Fatal(err)
	}
	got, err := form.ReadDefinition("lfs2026.xlsx", b)
	if err != nil {
		t.Fatal(err)
	}
	want := readJSONForm(t, "lfs2026.json")
	g, w := withoutLabels(t, got), withoutLabels(t, want)
	if g.Name != w.Name || g.Version != w.Version || g.Title != w.Title || g.CensusMoment != w.CensusMoment {
		t.Errorf("settings: got %q %d %q %q, want %q %d %q %q", g.Name, g.Version, g.Title, g.CensusMoment, w.Name, w.Version, w.Title, w.CensusMoment)
	}
	for _, l := range []struct {
		name      string
		got, want []form.Field
	}{{"household", g.Household, w.Household}, {"person", g.Person, w.Person}} {
		if len(l.got) != len(l.want) {
			t.Errorf("%s: %d fields, want %d: %s", l.name, len(l.got), len(l.want), names(l.got))
			continue
		}
		for i := range l.want {
			if gj, wj := mustJSON(t, l.got[i]), mustJSON(t, l.want[i]); !bytes.Equal(gj, wj) {
				t.Errorf("%s field %d:\n got %s\nwant %s", l.name, i, gj, wj)
			}
		}
	}
	if gj, wj := mustJSON(t, g.Checks), mustJSON(t, w.Checks); !bytes.Equal(gj, wj) {
		t.Errorf("checks:\n got %s\nwant %s", gj, wj)
	}
	// And the whole: nothing else differs.
	if gj, wj := mustJSON(t, g), mustJSON(t, w); !bytes.Equal(gj, wj) {
		t.Errorf("forms differ:\n got %s\nwant %s", gj, wj)
	}

	// Labels: English, the first choice of this reader.
	label := func(f *form.Form, list []form.Field, name string) form.Field {
		for _, fd := range list {
			if fd.Name == name {
				return fd
			}
		}
		t.Fatalf("no field %s", name)
		return form.Field{}
	}
	if l := label(got, got.Household, "head_name").Label; l != "Full name of the household head" {
		t.Errorf("head_name label %q", l)
	}
	if c := label(got, got.Person, "sex").Codes; c[1].Label != "Female" {
		t.Errorf("sex codes %v", c)
	}
}

func names(fs []form.Field) string {
	var n []string
	for _, f := range fs {
		n = append(n, f.Name)
	}
	return strings.Join(n, " ")
}

// settings default_language picks the label, constraint message and
// check message columns of that language.
func TestXLSFormDefaultLanguage(t *testing.T) {
	b := lfsBook()
	st := b.sheet(t, "settings")
	st.header = append(st.header, "default_language")
	st.rows[0]["default_language"] = "Vietnamese (vi)"
	f, err := form.ParseXLSForm(b.xlsx(t))
	if err != nil {
		t.Fatal(err)
	}
	if l := f.Household[0].Label; l != "Họ và tên chủ hộ" {
		t.Errorf("head_name label %q", l)
	}
	for _, fd := range f.Person {
		if fd.Name == "monthly_wage_kvnd" && !strings.HasPrefix(fd.ConstraintMessage, "tiền lương") {
			t.Errorf("constraint message %q", fd.ConstraintMessage)
		}
		if fd.Name == "sex" && fd.Codes[1].Label != "Nữ" {
			t.Errorf("sex codes %v", fd.Codes)
		}
	}
	if m := f.Checks[0].Message; m != "chủ hộ phải từ 15 tuổi trở lên" {
		t.Errorf("check message %q", m)
	}
	// A row without a Vietnamese label takes the next column (English).
	b.sheet(t, "survey").rows[b.sheet(t, "survey").index(t, "head_name")]["label::Vietnamese (vi)"] = ""
	f, err = form.ParseXLSForm(b.xlsx(t))
	if err != nil {
		t.Fatal(err)
	}
	if l := f.Household[0].Label; l != "Full name of the household head" {
		t.Errorf("head_name label without Vietnamese %q", l)
	}
}

// bookOf writes a form definition as an XLSForm workbook: household
// fields, then the person fields in a repeat; one choices list per code
// field, named after it.
func bookOf(f *form.Form) xlsBook {
	survey := &xlsSheet{name: "survey", header: []string{"type", "name", "label", "required", "relevant", "constraint",
		"constraint_message", "class", "min", "max", "quantitative", "max_len", "role", "head_code", "format"}}
	choices := &xlsSheet{name: "choices", header: []string{"list_name", "name", "label"}}
	num := func(x *float64) string {
		if x == nil {
			return ""
		}
		return strconv.FormatFloat(*x, 'f', -1, 64)
	}
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return ""
	}
	write := func(fd form.Field) {
		r := map[string]string{"name": fd.Name, "label": fd.Label, "required": yes(fd.Required), "relevant": fd.Relevant,
			"constraint": fd.Constraint, "constraint_message": fd.ConstraintMessage, "class": string(fd.Class),
			"min": num(fd.Min), "max": num(fd.Max), "quantitative": yes(fd.Quantitative), "role": fd.Role}
		if fd.MaxLen != 0 {
			r["max_len"] = strconv.Itoa(fd.MaxLen)
		}
		if fd.HeadCode != nil {
			r["head_code"] = strconv.Itoa(*fd.HeadCode)
		}
		switch fd.Type {
		case form.TypeInt:
			r["type"] = "integer"
		case form.TypeString:
			r["type"] = "text"
		case form.TypePhone:
			r["type"], r["format"] = "text", "phone"
		case form.TypeCode:
			r["type"] = "select_one " + fd.Name
		case form.TypeCodeSet:
			r["type"] = "select_multiple " + fd.Name
		default:
			r["type"] = fd.Type
		}
		for _, c := range fd.Codes {
			choices.rows = append(choices.rows, map[string]string{"list_name": fd.Name, "name": strconv.Itoa(c.Code), "label": c.Label})
		}
		survey.rows = append(survey.rows, r)
	}
	for _, fd := range f.Household {
		write(fd)
	}
	survey.rows = append(survey.rows, map[string]string{"type": "begin repeat", "name": "persons"})
	for _, fd := range f.Person {
		write(fd)
	}
	survey.rows = append(survey.rows, map[string]string{"type": "end repeat"})
	settings := &xlsSheet{name: "settings", header: []string{"form_id", "version", "form_title", "census_moment"},
		rows: []map[string]string{{"form_id": f.Name, "version": strconv.Itoa(f.Version), "form_title": f.Title, "census_moment": f.CensusMoment}}}
	b := xlsBook{survey, choices, settings}
	if len(f.Checks) > 0 {
		checks := &xlsSheet{name: "checks", header: []string{"id", "scope", "expression", "message"}}
		for _, c := range f.Checks {
			checks.rows = append(checks.rows, map[string]string{"id": c.ID, "scope": c.Scope, "expression": c.Expr, "message": c.Message})
		}
		b = append(b, checks)
	}
	return b
}

// A JSON definition and the same definition written as a workbook read
// into equal forms: census2019 and lfs2026, labels and all.
func TestXLSFormEqualsJSON(t *testing.T) {
	for _, path := range []string{"census2019.json", "lfs2026.json"} {
		t.Run(path, func(t *testing.T) {
			want := readJSONForm(t, path)
			got, err := form.ReadDefinition(strings.TrimSuffix(path, ".json")+".xlsx", bookOf(want).xlsx(t))
			if err != nil {
				t.Fatal(err)
			}
			if gj, wj := mustJSON(t, got), mustJSON(t, want); !bytes.Equal(gj, wj) {
				t.Fatalf("forms differ:\n got %s\nwant %s", gj, wj)
			}
		})
	}
}

// ReadDefinition picks the reader by the file's first bytes.
func TestReadDefinition(t *testing.T) {
	js, err := os.ReadFile("census2019.json")
	if err != nil {
		t.Fatal(err)
	}
	if f, err := form.ReadDefinition("census2019.json", js); err != nil || f.Name != "census2019" {
		t.Fatalf("JSON: %v", err)
	}
	if f, err := form.ReadDefinition("census2019", bookOf(form.Default()).xlsx(t)); err != nil || f.Name != "census2019" {
		t.Fatalf("workbook without an extension: %v", err)
	}
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"form.xlsx", js, "not an .xlsx workbook"},
		{"form.xls", []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0}, "Excel 97-2003"},
		{"form.json", []byte("PK\x03\x04garbage"), "not a readable .xlsx workbook"},
		{"form.json", []byte(`{"name":`), "failed to parse form definition"},
	} {
		if _, err := form.ReadDefinition(c.name, c.b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// xlsError parses a workbook that must fail and returns its error.
func xlsError(t *testing.T, b []byte) *form.XLSFormError {
	t.Helper()
	f, err := form.ParseXLSForm(b)
	if err == nil {
		t.Fatalf("accepted: %s", mustJSON(t, f))
	}
	var xe *form.XLSFormError
	if !errors.As(err, &xe) {
		t.Fatalf("error %T: %v", err, err)
	}
	return xe
}

// Malformed workbooks: each error names the sheet, the row and, when one
// cell is at fault, its column and header.
func TestXLSFormMalformed(t *testing.T) {
	base := lfsBook()
	sv := base.sheet(t, "survey")
	ageRow := sv.row(t, "age")
	type where struct {
		sheet  string
		row    int
		column string
	}
	cases := []struct {
		name  string
		edit  func(b xlsBook)
		where where
		want  string
	}{
		{"missing survey sheet", func(b xlsBook) { b[0].name = "questions" }, where{"survey", 0, ""}, "no survey sheet"},
		{"missing settings sheet", func(b xlsBook) { b.sheet(t, "settings").name = "setup" }, where{"settings", 0, ""}, "no settings sheet"},
		{"missing choices sheet", func(b xlsBook) { b.sheet(t, "choices").name = "lists" },
			where{"survey", sv.row(t, "dwelling_owned"), sv.col(t, "type")}, `unknown list "yes_no": the workbook has no choices sheet`},
		{"missing class column", func(b xlsBook) { b.sheet(t, "survey").rename("class", "klass") }, where{"survey", 1, ""}, `no column "class"`},
		{"missing list_name column", func(b xlsBook) { b.sheet(t, "choices").rename("list_name", "list") }, where{"choices", 1, ""}, `no column "list_name"`},
		{"missing version", func(b xlsBook) { b.sheet(t, "settings").rows[0]["version"] = "" },
			where{"settings", 2, sv3(base, t, "settings", "version")}, "version is blank"},
		{"version not whole", func(b xlsBook) { b.sheet(t, "settings").rows[0]["version"] = "1.5" },
			where{"settings", 2, sv3(base, t, "settings", "version")}, `version "1.5" is not a whole number`},
		{"unknown type", func(b xlsBook) { b[0].rows[b[0].index(t, "address")]["type"] = "geopoint" },
			where{"survey", sv.row(t, "address"), sv.col(t, "type")}, `unknown type "geopoint"`},
		{"or_other", func(b xlsBook) { b[0].rows[b[0].index(t, "sex")]["type"] = "select_one sex or_other" },
			where{"survey", sv.row(t, "sex"), sv.col(t, "type")}, "or_other is not supported"},
		{"unknown list", func(b xlsBook) { b[0].rows[b[0].index(t, "sex")]["type"] = "select_one gender" },
			where{"survey", sv.row(t, "sex"), sv.col(t, "type")}, `unknown list "gender": no choices row has this list_name`},
		{"non-integer choice name", func(b xlsBook) { b.sheet(t, "choices").rows[1]["name"] = "no" },
			where{"choices", 3, "B"}, `choice name "no" of list "yes_no" is not a whole number 0…9999`},
		{"choice code too large", func(b xlsBook) { b.sheet(t, "choices").rows[1]["name"] = "10000" },
			where{"choices", 3, "B"}, "is not a whole number 0…9999"},
		{"choice twice", func(b xlsBook) { b.sheet(t, "choices").rows[1]["name"] = "1" },
			where{"choices", 3, "B"}, `choice 1 of list "yes_no" is already at row 2`},
		{"choice without label", func(b xlsBook) {
			r := b.sheet(t, "choices").rows[1]
			r["label::English (en)"], r["label::Vietnamese (vi)"] = "", ""
		}, where{"choices", 3, "C"}, "has no label"},
		{"two repeats", func(b xlsBook) {
			s := b[0]
			i := s.index(t, "interview_mode")
			s.insert(i+1, map[string]string{"type": "end repeat"})
			s.insert(i, map[string]string{"type": "begin repeat", "name": "visits"})
		}, where{"survey", sv.row(t, "interview_mode"), sv.col(t, "type")}, "a second repeat (the first is at row 17)"},
		{"nested repeat", func(b xlsBook) {
			s := b[0]
			i := s.index(t, "response_type")
			s.insert(i+1, map[string]string{"type": "end repeat"})
			s.insert(i, map[string]string{"type": "begin repeat", "name": "children"})
		}, where{"survey", sv.row(t, "response_type"), sv.col(t, "type")}, "a repeat inside the repeat of row 17"},
		{"no repeat", func(b xlsBook) {
			s := b[0]
			s.rows[s.index(t, "members")] = map[string]string{}
			s.rows[s.index(t, "response_type")+1] = map[string]string{}
		}, where{"survey", 0, ""}, "no begin repeat: the vault needs the person roster"},
		{"unclosed group", func(b xlsBook) {
			s := b[0]
			s.rows[s.index(t, "rotation_group")+1] = map[string]string{}
		}, where{"survey", sv.row(t, "household"), sv.col(t, "type")}, "begin group is never closed (add an end group row)"},
		{"end repeat closing a group", func(b xlsBook) {
			s := b[0]
			s.rows[s.index(t, "available_to_work")+1]["type"] = "end repeat"
		}, where{"survey", sv.row(t, "available_to_work") + 1, sv.col(t, "type")}, "end repeat closes the group begun at row " + strconv.Itoa(sv.row(t, "job_search"))},
		{"end group without begin", func(b xlsBook) { b[0].insert(0, map[string]string{"type": "end group"}) },
			where{"survey", 2, sv.col(t, "type")}, "end group without a begin"},
		{"class missing", func(b xlsBook) { delete(b[0].rows[b[0].index(t, "age")], "class") },
			where{"survey", ageRow, sv.col(t, "class")}, "class is blank: every question needs one"},
		{"class unknown", func(b xlsBook) { b[0].rows[b[0].index(t, "age")]["class"] = "secret" },
			where{"survey", ageRow, sv.col(t, "class")}, `unknown class "secret" (want identifying, analytic or operational)`},
		{"bounds missing", func(b xlsBook) { delete(b[0].rows[b[0].index(t, "age")], "max") },
			where{"survey", ageRow, sv.col(t, "max")}, "max is required for an integer question"},
		{"bound not a number", func(b xlsBook) { b[0].rows[b[0].index(t, "age")]["min"] = "zero" },
			where{"survey", ageRow, sv.col(t, "min")}, `min "zero" is not a number`},
		{"bound on text", func(b xlsBook) { b[0].rows[b[0].index(t, "full_name")]["max"] = "5" },
			where{"survey", sv.row(t, "full_name"), sv.col(t, "max")}, "max is only for integer and decimal questions"},
		{"required not yes or no", func(b xlsBook) { b[0].rows[b[0].index(t, "age")]["required"] = "${x} > 1" },
			where{"survey", ageRow, sv.col(t, "required")}, "a required-if expression is not supported"},
		{"format unknown", func(b xlsBook) { b[0].rows[b[0].index(t, "address")]["format"] = "email" },
			where{"survey", sv.row(t, "address"), sv.col(t, "format")}, `format "email"`},
		{"max_len on phone", func(b xlsBook) { b[0].rows[b[0].index(t, "phone")]["max_len"] = "20" },
			where{"survey", sv.row(t, "phone"), sv.col(t, "max_len")}, "max_len is only for text questions"},
		{"name twice", func(b xlsBook) { b[0].rows[b[0].index(t, "full_name")]["name"] = "head_name" },
			where{"survey", sv.row(t, "full_name"), sv.col(t, "name")}, `name "head_name" is already used at row 10`},
		{"question without name", func(b xlsBook) { b[0].rows[b[0].index(t, "address")]["name"] = "" },
			where{"survey", sv.row(t, "address"), sv.col(t, "name")}, "a question needs a name"},
		{"row without type", func(b xlsBook) { b[0].rows[b[0].index(t, "address")]["type"] = "" },
			where{"survey", sv.row(t, "address"), sv.col(t, "type")}, `type is blank for the row named "address"`},
		{"duplicate header", func(b xlsBook) {
			b[0].rename("label::Vietnamese (vi)", "label::english (EN)")
		}, where{"survey", 1, "D"}, "column C has the same header"},
		// Definition checks are Parse's; their errors come back at the row
		// of the field they name.
		{"min above max (Parse)", func(b xlsBook) { b[0].rows[b[0].index(t, "age")]["min"] = "200" },
			where{"survey", ageRow, ""}, `person field "age": min is larger than max`},
		{"bad name (Parse)", func(b xlsBook) { b[0].rows[b[0].index(t, "address")]["name"] = "Address" },
			where{"survey", sv.row(t, "address"), ""}, `household field "Address": name must be`},
		{"relevant with an unknown name (Parse)", func(b xlsBook) { b[0].rows[b[0].index(t, "education_level")]["relevant"] = "${agee} >= 5" },
			where{"survey", sv.row(t, "education_level"), sv.col(t, "relevant")}, `person field "education_level": relevant:`},
		{"constraint that does not parse (Parse)", func(b xlsBook) { b[0].rows[b[0].index(t, "monthly_wage_kvnd")]["constraint"] = ". = = 0" },
			where{"survey", sv.row(t, "monthly_wage_kvnd"), sv.col(t, "constraint")}, `person field "monthly_wage_kvnd": constraint:`},
		{"relevant joined to a group's (Parse)", func(b xlsBook) { b[0].rows[b[0].index(t, "labour")]["relevant"] = "${agee} >= 15" },
			where{"survey", sv.row(t, "worked_last_week"), ""}, fmt.Sprintf("(this relevant is its group's, at row %d)", sv.row(t, "labour"))},
		{"relevant joined to two groups' (Parse)", func(b xlsBook) { b[0].rows[b[0].index(t, "methods")]["relevant"] = "${agee} >= 15" },
			where{"survey", sv.row(t, "job_search_methods"), ""}, fmt.Sprintf("(this relevant joins those of rows %d, %d with and", sv.row(t, "job_search"), sv.row(t, "methods"))},
		{"check with an unknown name (Parse)", func(b xlsBook) { b.sheet(t, "checks").rows[1]["expression"] = "${relationship} != 2 or ${agge} >= 15" },
			where{"checks", 3, "C"}, `check "spouse_of_marriageable_age": expr:`},
		{"check scope (Parse)", func(b xlsBook) { b.sheet(t, "checks").rows[1]["scope"] = "village" },
			where{"checks", 3, ""}, `check "spouse_of_marriageable_age": scope must be household or person`},
		{"two fields with role age (Parse)", func(b xlsBook) {
			r := b[0].rows[b[0].index(t, "hours_worked")]
			r["role"] = "age"
		}, where{"survey", sv.row(t, "hours_worked"), ""}, `"hours_worked"`},
		{"census moment (Parse)", func(b xlsBook) { b.sheet(t, "settings").rows[0]["census_moment"] = "1 July 2026" },
			where{"settings", 2, sv3(base, t, "settings", "census_moment")}, "census_moment must be an RFC 3339 time"},
		{"bad form id (Parse)", func(b xlsBook) { b.sheet(t, "settings").rows[0]["form_id"] = "LFS-2026" },
			where{"settings", 2, sv3(base, t, "settings", "form_id")}, "form: name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := base.clone()
			c.edit(b)
			xe := xlsError(t, b.xlsx(t))
			got := where{xe.Sheet, xe.Row, xe.Column}
			if got != c.where || !strings.Contains(xe.Error(), c.want) {
				t.Fatalf("got %+v %q\nwant %+v …%s…", got, xe.Error(), c.where, c.want)
			}
			if c.where.column != "" && !strings.Contains(xe.Error(), fmt.Sprintf("%s row %d, column %s (", c.where.sheet, c.where.row, c.where.column)) {
				t.Fatalf("message does not locate the cell: %q", xe.Error())
			}
		})
	}
}

func sv3(b xlsBook, t *testing.T, sheet, header string) string {
	return b.sheet(t, sheet).col(t, header)
}

// The message of the example in the README and the design, exactly.
func TestXLSFormErrorText(t *testing.T) {
	b := lfsBook()
	s := b[0]
	s.rows[s.index(t, "age")]["class"] = "secret"
	xe := xlsError(t, b.xlsx(t))
	want := fmt.Sprintf(`survey row %d, column M (class): unknown class "secret" (want identifying, analytic or operational)`, s.row(t, "age"))
	if xe.Error() != want {
		t.Fatalf("got  %s\nwant %s", xe.Error(), want)
	}
	// A long cell is clipped in the message.
	s.rows[s.index(t, "age")]["class"] = strings.Repeat("ç", 500)
	if xe := xlsError(t, b.xlsx(t)); len(xe.Error()) > 200 || !strings.Contains(xe.Error(), "…") {
		t.Fatalf("not clipped: %d bytes", len(xe.Error()))
	}
}

// Groups flatten: a group's relevant joins each question's, nested
// groups' too, and questions after the repeat are household fields.
func TestXLSFormGroupsFlatten(t *testing.T) {
	b := lfsBook()
	s := b[0]
	s.rows[s.index(t, "methods")]["relevant"] = "${age} < 65"
	s.rows[s.index(t, "job_search_methods")]["relevant"] = "${sex} = 1"
	f, err := form.ParseXLSForm(b.xlsx(t))
	if err != nil {
		t.Fatal(err)
	}
	var rel string
	for _, fd := range f.Person {
		if fd.Name == "job_search_methods" {
			rel = fd.Relevant
		}
	}
	if want := "(${worked_last_week} = 2 and ${temporarily_absent} = 2) and (${age} < 65) and (${sex} = 1)"; rel != want {
		t.Fatalf("relevant %q, want %q", rel, want)
	}
	if last := f.Household[len(f.Household)-1]; last.Name != "interview_mode" {
		t.Fatalf("last household field %s", last.Name)
	}
}

// Attacks on the reader's bounds: each is a workbook that would read
// into a form without the bound.
func TestXLSFormBounds(t *testing.T) {
	t.Run("zip bomb", func(t *testing.T) {
		// A valid form plus a sheet of 17 MiB of text that compresses to
		// a few hundred KiB: refused at the unzip limit.
		b := lfsBook()
		pad := &xlsSheet{name: "padding", header: []string{"text"}}
		filler := strings.Repeat("a", 30000)
		for i := 0; i < 600; i++ {
			pad.rows = append(pad.rows, map[string]string{"text": filler + strconv.Itoa(i)})
		}
		b = append(b, pad)
		x := b.xlsx(t)
		if len(x) > 1<<20 {
			t.Fatalf("bomb is %d bytes", len(x))
		}
		xe := xlsError(t, x)
		if !strings.Contains(xe.Error(), "unzip size exceeds") {
			t.Fatalf("got %v", xe)
		}
	})
	t.Run("file too large", func(t *testing.T) {
		big := append([]byte("PK\x03\x04"), make([]byte, form.MaxXLSFormBytes)...)
		if xe := xlsError(t, big); !strings.Contains(xe.Error(), "workbook larger than") {
			t.Fatalf("got %v", xe)
		}
	})
	t.Run("too many survey rows", func(t *testing.T) {
		b := lfsBook()
		s := b[0]
		// One blank row in lfsBook: 2,001 rows with content end at row 2003.
		for i := len(s.rows); i < 2002; i++ {
			s.rows = append(s.rows, map[string]string{"type": "note", "name": "n" + strconv.Itoa(i)})
		}
		xe := xlsError(t, b.xlsx(t))
		if xe.Sheet != "survey" || xe.Row != 2003 || !strings.Contains(xe.Error(), "the survey sheet takes at most 2000 below the header") {
			t.Fatalf("got %+v", xe)
		}
	})
	t.Run("cell far right", func(t *testing.T) {
		// One cell in column XFD would make each row a slice of 16,384
		// cells; the reader stops at the first row with a cell past IV.
		x, err := excelize.OpenReader(bytes.NewReader(lfsBook().xlsx(t)))
		if err != nil {
			t.Fatal(err)
		}
		if err := x.SetCellValue("survey", "XFD5", "comment"); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := x.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		xe := xlsError(t, buf.Bytes())
		if xe.Sheet != "survey" || xe.Row != 5 || !strings.Contains(xe.Error(), "right of column IV") {
			t.Fatalf("got %+v", xe)
		}
	})
}

// Cells as Excel stores them: a boolean TRUE in required, a number with a
// fraction written as a whole, a numeric version; blank and comment rows;
// an empty checks sheet is as good as none.
func TestXLSFormCellKinds(t *testing.T) {
	b := lfsBook()
	b.sheet(t, "checks").rows = nil
	b.sheet(t, "checks").header = nil
	s := b[0]
	s.header = append(s.header, "comment")
	s.rows = append(s.rows, map[string]string{}, map[string]string{"comment": "reviewed by the field office"})
	age := s.row(t, "age")
	x, err := excelize.OpenReader(bytes.NewReader(b.xlsx(t)))
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range []error{
		x.SetCellBool("survey", s.col(t, "required")+strconv.Itoa(age), true),
		x.SetCellFloat("survey", s.col(t, "max")+strconv.Itoa(age), 110.0, -1, 64),
		x.SetCellFloat("survey", s.col(t, "min")+strconv.Itoa(age), 0.0, 1, 64),
	} {
		if set != nil {
			t.Fatal(set)
		}
	}
	var buf bytes.Buffer
	if _, err := x.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := form.ParseXLSForm(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range f.Person {
		if fd.Name == "age" && (!fd.Required || *fd.Min != 0 || *fd.Max != 110) {
			t.Fatalf("age %s", mustJSON(t, fd))
		}
	}
	if len(f.Checks) != 0 {
		t.Fatalf("checks %v", f.Checks)
	}
}
