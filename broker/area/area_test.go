package area_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker/area"
)

const hdr = "code,parent,level,name,planned_households\n"

// small is a piece of Hà Tĩnh: one province, two districts, three communes,
// five EAs.
const small = hdr +
	"VN,,nation,Việt Nam,\n" +
	"42,VN,province,Hà Tĩnh,\n" +
	"437,42,district,Thị xã Hồng Lĩnh,\n" +
	"18070,437,commune,Phường Bắc Hồng,\n" +
	"18070.001,18070,ea,Tổ dân phố 1,120\n" +
	"18070.002,18070,ea,Tổ dân phố 2,95\n" +
	"18073,437,commune,Phường Nam Hồng,\n" +
	"18073.001,18073,ea,\"Tổ 1, khối Trung Hòa\",101\n" +
	"436,42,district,Thành phố Hà Tĩnh,\n" +
	"18100,436,commune,Phường Trần Phú,\n" +
	"18100.001,18100,ea,\"Khối \"\"Bắc\"\"\",0\n" +
	"18100.002,18100,ea,Khối 2,7\n"

func mustLoad(t testing.TB, csv string) *area.Tree {
	t.Helper()
	tr, err := area.Load(strings.NewReader(csv))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return tr
}

func TestLevel(t *testing.T) {
	for l := area.Nation; l <= area.EA; l++ {
		got, err := area.ParseLevel(l.String())
		if err != nil || got != l {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", l.String(), got, err, l)
		}
	}
	want := []string{"nation", "province", "district", "commune", "ea"}
	for i, w := range want {
		if s := area.Level(i).String(); s != w {
			t.Errorf("Level(%d).String() = %q, want %q", i, s, w)
		}
	}
	for _, bad := range []string{"", "EA", "Nation", "village", "ea "} {
		if _, err := area.ParseLevel(bad); err == nil {
			t.Errorf("ParseLevel(%q) succeeded", bad)
		}
	}
	if s := area.Level(7).String(); s != "level(7)" {
		t.Errorf("Level(7).String() = %q", s)
	}
}

func TestLoadErrors(t *testing.T) {
	base := hdr +
		"VN,,nation,Việt Nam,\n" + // line 2
		"42,VN,province,Hà Tĩnh,\n" + // line 3
		"437,42,district,Hồng Lĩnh,\n" + // line 4
		"18070,437,commune,Bắc Hồng,\n" // line 5
	long := strings.Repeat("x", 201)
	tests := []struct {
		name string
		csv  string
		line int
		msg  string // substring of the message
	}{
		{"empty input", "", 1, "missing header"},
		{"wrong header", "code,parent,level,name\nVN,,nation,x\n", 1, "header must be exactly"},
		{"header case", "Code,parent,level,name,planned_households\n", 1, "header must be exactly"},
		{"header only", hdr, 0, "no areas"},
		{"too few fields", base + "18070.001,18070,ea,x\n", 6, "4 fields, want 5"},
		{"too many fields", base + "18070.001,18070,ea,x,1,\n", 6, "too many fields"},
		{"unterminated quote", base + "18070.001,18070,ea,\"x,1\n", 6, "unterminated quoted field"},
		{"bare quote", base + "18070.001,18070,ea,a\"b,1\n", 6, "quote in an unquoted field"},
		{"text after quote", base + "18070.001,18070,ea,\"a\"b,1\n", 6, "after a closing quote"},
		{"unknown level", base + "18070.001,18070,village,x,1\n", 6, `unknown level "village"`},
		{"planned missing on ea", base + "18070.001,18070,ea,x,\n", 6, "planned_households is required for an ea"},
		{"planned negative", base + "18070.001,18070,ea,x,-1\n", 6, "must not be negative"},
		{"planned not integer", base + "18070.001,18070,ea,x,1.5\n", 6, "must be a whole number"},
		{"planned text", base + "18070.001,18070,ea,x,many\n", 6, "must be a whole number"},
		{"planned huge", base + "18070.001,18070,ea,x,99999999999999999999999\n", 6, "larger than 1000000"},
		{"planned over max", base + "18070.001,18070,ea,x,1000001\n", 6, "larger than 1000000"},
		{"planned on commune", base + "18071,437,commune,Nam Hồng,5\n", 6, "must be empty for a commune"},
		{"empty code", base + ",18070,ea,x,1\n", 6, "empty code"},
		{"bad code char", base + "18070/1,18070,ea,x,1\n", 6, `invalid code "18070/1"`},
		{"code too long", base + strings.Repeat("1", 33) + ",18070,ea,x,1\n", 6, "invalid code"},
		{"empty name", base + "18070.001,18070,ea,,1\n", 6, "empty name"},
		{"name too long", base + "18070.001,18070,ea," + long + ",1\n", 6, "name longer than 200 bytes"},
		{"name bad utf8", base + "18070.001,18070,ea,a\xffb,1\n", 6, "not valid UTF-8"},
		{"name control", base + "18070.001,18070,ea,a\tb,1\n", 6, "control character"},
		{"name spaces", base + "18070.001,18070,ea, x,1\n", 6, "leading or trailing white space"},
		{"duplicate code", base + "437,18070,ea,x,1\n", 6, `duplicate code "437" (first defined on line 4)`},
		{"unknown parent", base + "18070.001,4399,ea,x,1\n", 6, `unknown parent "4399" for area "18070.001"`},
		{"self parent", base + "18070.001,18070.001,ea,x,1\n", 6, "cycle"},
		{"cycle", hdr +
			"VN,,nation,Việt Nam,\n" +
			"A,C,province,a,\n" + // line 3
			"B,A,district,b,\n" +
			"C,B,commune,c,\n", 3, `cycle: area "A" is its own ancestor (A → C → B → A)`},
		{"province root", base + "43,,province,Quảng Bình,\n", 6, `area "43" (province) has no parent`},
		{"nation with parent", base + "XX,VN,nation,x,\n", 6, `nation "XX" must not have a parent`},
		{"two nations", base + "LA,,nation,Lào,\n", 6, `second nation "LA"`},
		{"ea under district", base + "18070.001,437,ea,x,1\n", 6, "the parent of a ea must be a commune"},
		{"commune under province", base + "18071,42,commune,x,\n", 6, "the parent of a commune must be a district"},
		{"district under district", base + "438,437,district,x,\n", 6, "the parent of a district must be a province"},
		{"line too long", base + "18070.001,18070,ea," + strings.Repeat("y", 5000) + ",1\n", 6, "line longer than"},
		{"line too long for buffer", base + strings.Repeat("y", 70000) + "\n", 6, "line longer than"},
		{"line after blank", base + "\n\n18070.001,4399,ea,x,1\n", 8, "unknown parent"},
		{"crlf", strings.ReplaceAll(base, "\n", "\r\n") + "18070.001,4399,ea,x,1\r\n", 6, "unknown parent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := area.Load(strings.NewReader(tc.csv))
			if err == nil {
				t.Fatal("Load succeeded")
			}
			var ae *area.Error
			if !errors.As(err, &ae) {
				t.Fatalf("error %v is %T, want *area.Error", err, err)
			}
			if ae.Line != tc.line {
				t.Errorf("line %d, want %d (%v)", ae.Line, tc.line, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
			wantPrefix := fmt.Sprintf("areas line %d: ", tc.line)
			if tc.line == 0 {
				wantPrefix = "areas: "
			}
			if !strings.HasPrefix(err.Error(), wantPrefix) {
				t.Errorf("error %q does not start with %q", err, wantPrefix)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	e := &area.Error{Line: 12, Msg: `unknown parent "4399" for area "18070"`}
	if got, want := e.Error(), `areas line 12: unknown parent "4399" for area "18070"`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestCycleBeforeLevels checks that a cycle whose levels are also wrong is
// reported as a cycle, not as a level mismatch.
func TestCycleBeforeLevels(t *testing.T) {
	csv := hdr + "VN,,nation,Việt Nam,\n" +
		"A,B,ea,a,1\n" +
		"B,A,ea,b,1\n"
	_, err := area.Load(strings.NewReader(csv))
	if err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("got %v, want a cycle error", err)
	}
}

func TestNewTreeRowChecks(t *testing.T) {
	good := mustLoad(t, small).Rows()
	tests := []struct {
		name   string
		change func([]area.Row)
		line   int
		msg    string
	}{
		{"negative plan", func(r []area.Row) { r[4].Planned = -3 }, 6, "must not be negative"},
		{"plan over max", func(r []area.Row) { r[4].Planned = area.MaxPlanned + 1 }, 6, "larger than"},
		{"plan on district", func(r []area.Row) { r[2].Planned = 1 }, 4, "must be empty for a district"},
		{"unknown level", func(r []area.Row) { r[2].Level = 9 }, 4, "unknown level 9"},
		{"bad parent code", func(r []area.Row) { r[2].Parent = "4 2" }, 4, "invalid parent code"},
		{"no line numbers", func(r []area.Row) {
			for i := range r {
				r[i].Line = 0
			}
			r[5].Parent = "nope"
		}, 7, "unknown parent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows := append([]area.Row(nil), good...)
			tc.change(rows)
			_, err := area.NewTree(rows)
			var ae *area.Error
			if !errors.As(err, &ae) {
				t.Fatalf("got %v, want *area.Error", err)
			}
			if ae.Line != tc.line || !strings.Contains(ae.Msg, tc.msg) {
				t.Errorf("got %v, want line %d containing %q", err, tc.line, tc.msg)
			}
		})
	}
}

func TestRowLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a million rows")
	}
	rows := make([]area.Row, area.MaxRows+1)
	_, err := area.NewTree(rows)
	var ae *area.Error
	if !errors.As(err, &ae) || ae.Line != area.MaxRows+2 || !strings.Contains(ae.Msg, "more than 1000000 areas") {
		t.Fatalf("got %v", err)
	}
}

func TestBOMAndCRLF(t *testing.T) {
	want := mustLoad(t, small).Rows()
	for name, in := range map[string]string{
		"bom":              "\xef\xbb\xbf" + small,
		"crlf":             strings.ReplaceAll(small, "\n", "\r\n"),
		"bom+crlf":         "\xef\xbb\xbf" + strings.ReplaceAll(small, "\n", "\r\n"),
		"no final newline": strings.TrimSuffix(small, "\n"),
		"quoted codes":     strings.Replace(small, "42,VN,province", `"42","VN","province"`, 1),
	} {
		t.Run(name, func(t *testing.T) {
			got := mustLoad(t, in).Rows()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("rows differ:\n got %v\nwant %v", got, want)
			}
		})
	}
}

func TestRollUp(t *testing.T) {
	tr := mustLoad(t, small)
	want := map[area.Code]int64{
		"VN": 323, "42": 323,
		"437": 316, "18070": 215, "18073": 101,
		"436": 7, "18100": 7,
		"18070.001": 120, "18070.002": 95, "18073.001": 101, "18100.001": 0, "18100.002": 7,
	}
	if tr.Len() != len(want) {
		t.Fatalf("Len = %d, want %d", tr.Len(), len(want))
	}
	for c, p := range want {
		a, ok := tr.Get(c)
		if !ok {
			t.Fatalf("Get(%q) not found", c)
		}
		if a.Planned != p {
			t.Errorf("%s planned %d, want %d", c, a.Planned, p)
		}
	}
}

func TestGet(t *testing.T) {
	tr := mustLoad(t, small)
	a, ok := tr.Get("18073.001")
	want := area.Area{Code: "18073.001", Parent: "18073", Level: area.EA, Name: "Tổ 1, khối Trung Hòa", Planned: 101}
	if !ok || a != want {
		t.Errorf("Get = %+v, %v; want %+v", a, ok, want)
	}
	a, _ = tr.Get("18100.001")
	if a.Name != `Khối "Bắc"` {
		t.Errorf("quoted name = %q", a.Name)
	}
	root, _ := tr.Get("VN")
	if root.Parent != "" || root.Level != area.Nation {
		t.Errorf("root = %+v", root)
	}
	for _, c := range []area.Code{"", "18070.00", "18070.0011", "vn", area.Code(strings.Repeat("9", 40))} {
		if _, ok := tr.Get(c); ok {
			t.Errorf("Get(%q) found", c)
		}
	}
	if tr.Root() != "VN" {
		t.Errorf("Root = %q", tr.Root())
	}
}

func TestPathAncestor(t *testing.T) {
	tr := mustLoad(t, small)
	tests := []struct {
		c    area.Code
		path []area.Code
	}{
		{"VN", []area.Code{"VN"}},
		{"42", []area.Code{"VN", "42"}},
		{"18070.002", []area.Code{"VN", "42", "437", "18070", "18070.002"}},
		{"18100", []area.Code{"VN", "42", "436", "18100"}},
		{"missing", nil},
	}
	for _, tc := range tests {
		if got := tr.Path(tc.c); !reflect.DeepEqual(got, tc.path) {
			t.Errorf("Path(%q) = %v, want %v", tc.c, got, tc.path)
		}
		var ps []string
		for _, c := range tc.path {
			ps = append(ps, string(c))
		}
		if got := tr.PathStrings(tc.c); !reflect.DeepEqual(got, ps) {
			t.Errorf("PathStrings(%q) = %v, want %v", tc.c, got, ps)
		}
	}

	anc := []struct {
		c    area.Code
		l    area.Level
		want area.Code
		ok   bool
	}{
		{"18070.002", area.Commune, "18070", true},
		{"18070.002", area.District, "437", true},
		{"18070.002", area.Province, "42", true},
		{"18070.002", area.Nation, "VN", true},
		{"18070.002", area.EA, "18070.002", true},
		{"18070", area.Commune, "18070", true},
		{"18070", area.EA, "", false}, // below c
		{"VN", area.Province, "", false},
		{"missing", area.Nation, "", false},
	}
	for _, tc := range anc {
		got, ok := tr.Ancestor(tc.c, tc.l)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Ancestor(%q, %v) = %q, %v; want %q, %v", tc.c, tc.l, got, ok, tc.want, tc.ok)
		}
	}
}

func TestChildren(t *testing.T) {
	tr := mustLoad(t, small)
	tests := map[area.Code][]area.Code{
		"VN":        {"42"},
		"42":        {"437", "436"}, // CSV order, not sorted
		"437":       {"18070", "18073"},
		"18070":     {"18070.001", "18070.002"},
		"18070.001": nil,
		"nope":      nil,
	}
	for c, want := range tests {
		if got := tr.Children(c); !reflect.DeepEqual(got, want) {
			t.Errorf("Children(%q) = %v, want %v", c, got, want)
		}
	}
}

func TestChildrenOrderWithParentsLater(t *testing.T) {
	// Children may come before their parent in the file.
	csv := hdr +
		"1.1,1,district,d1,\n" +
		"1,VN,province,p,\n" +
		"1.2,1,district,d2,\n" +
		"VN,,nation,n,\n"
	tr := mustLoad(t, csv)
	if got := tr.Children("1"); !reflect.DeepEqual(got, []area.Code{"1.1", "1.2"}) {
		t.Errorf("Children = %v", got)
	}
	if tr.Root() != "VN" {
		t.Errorf("Root = %q", tr.Root())
	}
}

func TestWalk(t *testing.T) {
	tr := mustLoad(t, small)
	collect := func(c area.Code, depth, stopAfter int) []string {
		var out []string
		tr.Walk(c, depth, func(a area.Area, d int) bool {
			out = append(out, fmt.Sprintf("%s@%d", a.Code, d))
			return stopAfter <= 0 || len(out) < stopAfter
		})
		return out
	}
	tests := []struct {
		name      string
		c         area.Code
		depth     int
		stopAfter int
		want      []string
	}{
		{"self only", "437", 0, 0, []string{"437@0"}},
		{"one below", "437", 1, 0, []string{"437@0", "18070@1", "18073@1"}},
		{"two below", "437", 2, 0, []string{"437@0", "18070@1", "18070.001@2", "18070.002@2", "18073@1", "18073.001@2"}},
		{"beyond leaves", "437", 9, 0, []string{"437@0", "18070@1", "18070.001@2", "18070.002@2", "18073@1", "18073.001@2"}},
		{"all", "42", -1, 0, []string{"42@0", "437@1", "18070@2", "18070.001@3", "18070.002@3", "18073@2", "18073.001@3", "436@1", "18100@2", "18100.001@3", "18100.002@3"}},
		{"stop", "42", -1, 3, []string{"42@0", "437@1", "18070@2"}},
		{"leaf", "18100.002", 3, 0, []string{"18100.002@0"}},
		{"unknown", "x", -1, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := collect(tc.c, tc.depth, tc.stopAfter); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
		})
	}
	// Walk gives full areas, roll-up included.
	tr.Walk("437", 0, func(a area.Area, _ int) bool {
		if a.Planned != 316 || a.Parent != "42" || a.Level != area.District {
			t.Errorf("Walk area = %+v", a)
		}
		return true
	})
}

func TestContains(t *testing.T) {
	tr := mustLoad(t, small)
	tests := []struct {
		anc, c area.Code
		want   bool
	}{
		{"VN", "18070.001", true},
		{"42", "18100.002", true},
		{"437", "18070.001", true},
		{"437", "437", true},
		{"18070.001", "18070.001", true},
		{"437", "18100.001", false},
		{"18070", "18073.001", false},
		{"18070.001", "18070", false},
		{"437", "42", false},
		{"missing", "VN", false},
		{"VN", "missing", false},
	}
	for _, tc := range tests {
		if got := tr.Contains(tc.anc, tc.c); got != tc.want {
			t.Errorf("Contains(%q, %q) = %v, want %v", tc.anc, tc.c, got, tc.want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	tr := mustLoad(t, small)
	var buf bytes.Buffer
	if err := tr.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	if buf.String() != small {
		t.Errorf("WriteCSV differs from its input:\n%s", buf.String())
	}
	tr2 := mustLoad(t, buf.String())
	if !reflect.DeepEqual(tr.Rows(), tr2.Rows()) {
		t.Errorf("rows differ after round trip")
	}
	tr3, err := area.NewTree(tr.Rows())
	if err != nil {
		t.Fatal(err)
	}
	var buf3 bytes.Buffer
	if err := tr3.WriteCSV(&buf3); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), buf3.Bytes()) {
		t.Errorf("NewTree(Rows()) writes a different CSV")
	}
	for _, c := range []area.Code{"VN", "437", "18073.001"} {
		a, _ := tr.Get(c)
		b, _ := tr3.Get(c)
		if a != b {
			t.Errorf("Get(%q): %+v vs %+v", c, a, b)
		}
	}
}

func TestRowsLines(t *testing.T) {
	rows := mustLoad(t, small).Rows()
	for i, r := range rows {
		if r.Line != i+2 {
			t.Errorf("row %d Line = %d", i, r.Line)
		}
		if r.Level != area.EA && r.Planned != 0 {
			t.Errorf("row %s has Planned %d (roll-up leaked into Rows)", r.Code, r.Planned)
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteCSVError(t *testing.T) {
	if err := mustLoad(t, small).WriteCSV(failWriter{}); err == nil {
		t.Fatal("WriteCSV to a failing writer succeeded")
	}
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("network down") }

func TestParseCSVReadError(t *testing.T) {
	_, err := area.ParseCSV(failReader{})
	if err == nil || !strings.Contains(err.Error(), "network down") {
		t.Fatalf("got %v", err)
	}
}
