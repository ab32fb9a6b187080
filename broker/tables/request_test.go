package tables

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/censusvault/censusvault/broker/sdc"
)

func TestParseRequestStrict(t *testing.T) {
	const ok = `{"project":"p","rows":["sex"]}`
	for _, body := range []string{
		`{"project":"p","rows":["sex"],"colour":"red"}`, // unknown key
		`{"project":"p","rows":["sex"],"filters":{}}`,   // near miss
		ok + ` x`,
		ok + `{}`,
		ok + ok,
		ok + ` null`,
		ok + ` 1`,
		ok + `[]`,
		``,
		`[]`,
		`"p"`,
		`{"project":"p","rows":["sex"]`, // truncated
		`{"project":"p","rows":"sex"}`,
		`{"project":"p","rows":["sex"],"as_of":1.5}`,
		`{"project":1,"rows":["sex"]}`,
		`{"project":"p","rows":["sex"],"measure":"avg"}`,
		`{"project":"p","rows":["sex"],"measure":"Count"}`,
		`{"project":"p","rows":["sex"],"measure":{"sum":"floor_area_m2","mean":"age"}}`,
		`{"project":"p","rows":["sex"],"measure":{"median":"age"}}`,
		`{"project":"p","rows":["sex"],"measure":{"count":"age"}}`,
		`{"project":"p","rows":["sex"],"measure":{"sum":1}}`,
		`{"project":"p","rows":["sex"],"measure":{}}`,
		`{"project":"p","rows":["sex"],"measure":["sum","age"]}`,
		`{"project":"p","rows":["sex"],"measure":7}`,
		`{"project":"p","rows":["sex"],"filter":{"sex":[]}}`,
		`{"project":"p","rows":["sex"],"filter":{"sex":1}}`,
		`{"project":"p","rows":["sex"],"filter":{"sex":[1.5]}}`,
		`{"project":"p","rows":["sex"],"filter":{"sex":[1.0]}}`,
		`{"project":"p","rows":["sex"],"filter":{"sex":[1e0]}}`,
		`{"project":"p","rows":["sex"],"filter":{"sex":[true]}}`,
		`{"project":"p","rows":["sex"],"filter":{"sex":[{"code":1}]}}`,
		`{"project":"p","rows":["sex"],"filter":{"sex":[[1]]}}`,
		`{"project":"p","rows":["sex"],"filter":{"sex":[99999999999999999999]}}`,
		`{"project":"p","rows":["sex"],"filter":[]}`,
	} {
		if r, err := ParseRequest([]byte(body)); err == nil {
			t.Errorf("ParseRequest(%s) = %+v; want an error", body, *r)
		}
	}

	// Data after the object is refused whatever it is, including a stray
	// closing bracket or brace.
	for _, body := range []string{ok + `}`, ok + `]`, ok + ` }`} {
		if _, err := ParseRequest([]byte(body)); err == nil {
			t.Errorf("BUG: ParseRequest(%s) accepts a stray closing bracket after the object (request.go: dec.More() is false before '}' or ']', and dec.Token() at top level does not report it); want \"request has data after its JSON object\"", body)
		}
	}

	// Size: MaxRequestBytes is accepted, one more byte is not.
	pad := func(n int) []byte {
		b := []byte(ok)
		return append(b, strings.Repeat(" ", n-len(b))...)
	}
	if _, err := ParseRequest(pad(MaxRequestBytes)); err != nil {
		t.Errorf("a request of MaxRequestBytes: %v", err)
	}
	big := pad(MaxRequestBytes + 1)
	if _, err := ParseRequest(big); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("a request of MaxRequestBytes+1: %v; want refused for its size", err)
	}
	long := []byte(`{"project":"p","rows":["sex"],"purpose":"` + strings.Repeat("y", MaxRequestBytes) + `"}`)
	if _, err := ParseRequest(long); err == nil {
		t.Error("an oversize request with a valid JSON object was accepted")
	}

	// An unknown key is named, with the known ones.
	_, err := ParseRequest([]byte(`{"project":"p","rows":["sex"],"colour":"red"}`))
	if err == nil || !strings.Contains(err.Error(), "colour") || !strings.Contains(err.Error(), "as_of") {
		t.Errorf("unknown key: %v; want it named with the known keys", err)
	}
}

// TestParseRequestAsOfIsAPoint: an audit index is no longer an as-of
// point (any index was one, so the same table at a and a−1 gave one
// deposit away): as_of names a publication point.
func TestParseRequestAsOfIsAPoint(t *testing.T) {
	for _, body := range []string{`{"project":"p","table":"t","area":"1","as_of":42}`, `{"project":"p","table":"t","area":"1","as_of":""}`, `{"project":"p","table":"t","area":"1","as_of":["x"]}`} {
		if _, err := ParseRequest([]byte(body)); err == nil || !strings.Contains(err.Error(), "as_of") {
			t.Errorf("%s: %v, want a refusal naming as_of", body, err)
		}
	}
	r, err := ParseRequest([]byte(`{"project":"p","purpose":"x","table":"population_age5_sex","area":"437","as_of":"w1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Custom() || r.Table != "population_age5_sex" || r.Area != "437" || r.Point != "w1" {
		t.Fatalf("standard request read as %+v", r)
	}
	for _, body := range []string{`{"project":"p","rows":["sex"]}`, `{"project":"p","table":"t","unit":"persons"}`, `{"project":"p","filter":{"sex":[1]}}`, `{"project":"p","measure":"count"}`, `{"project":"p","cols":[]}`} {
		r, err := ParseRequest([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if !r.Custom() {
			t.Errorf("%s is a custom table request, read as standard", body)
		}
	}
}

func TestParseRequestValues(t *testing.T) {
	r, err := ParseRequest([]byte(`{"project":"p","purpose":"why","rows":["district"],"cols":["sex","age_group5"],"as_of":"2019-04-15"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Request{Project: "p", Purpose: "why", Unit: Persons, Rows: []string{"district"}, Cols: []string{"sex", "age_group5"}, Measure: Measure{Op: "count"}, Point: "2019-04-15", custom: true}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got %+v\nwant %+v (defaults: unit persons, measure count)", *r, *want)
	}

	for body, m := range map[string]Measure{
		`"count"`:                 {Op: "count"},
		`{"sum":"floor_area_m2"}`: {Op: "sum", Var: "floor_area_m2"},
		`{"mean":"age"}`:          {Op: "mean", Var: "age"},
		`null`:                    {Op: "count"},
	} {
		r, err := ParseRequest([]byte(`{"project":"p","rows":["sex"],"measure":` + body + `}`))
		if err != nil {
			t.Errorf("measure %s: %v", body, err)
			continue
		}
		if r.Measure != m {
			t.Errorf("measure %s = %+v, want %+v", body, r.Measure, m)
		}
		b, _ := r.Measure.MarshalJSON()
		var back Measure
		if err := back.UnmarshalJSON(b); err != nil || back != r.Measure {
			t.Errorf("measure %s does not round-trip: %s -> %+v, %v", body, b, back, err)
		}
	}

	// Filter values as numbers or strings give the same request, and the
	// same normalized request.
	f := shared(t)
	var norms []string
	for _, vals := range []string{`[1,2]`, `["1","2"]`, `[2,"1"]`, `["2",1,1,"2"]`} {
		r, err := ParseRequest([]byte(`{"project":"p","rows":["district"],"filter":{"sex":` + vals + `,"marital_status":[2]}}`))
		if err != nil {
			t.Fatalf("filter %s: %v", vals, err)
		}
		for _, v := range r.Filter["sex"] {
			if v != "1" && v != "2" {
				t.Errorf("filter %s: value %q", vals, v)
			}
		}
		p := mustCompile(t, f.cache, r, f.proj, sdc.DefaultParams(), FormatJSON, f.asOf)
		if !reflect.DeepEqual(p.Norm.Filter["sex"], []string{"1", "2"}) {
			t.Errorf("filter %s normalized to %q, want [1 2]", vals, p.Norm.Filter["sex"])
		}
		norms = append(norms, p.Norm.Encode())
	}
	for _, n := range norms[1:] {
		if n != norms[0] {
			t.Errorf("the same filter normalizes differently:\n%s\n%s", norms[0], n)
		}
	}
}

// TestFilterCodesNormalizeOnce checks that spellings of the same code
// are one value of the normalized request: the normalized request is
// what the audit log keeps and what identifies a table.
func TestFilterCodesNormalizeOnce(t *testing.T) {
	f := shared(t)
	norm := func(vals string) (string, error) {
		r, err := ParseRequest([]byte(`{"project":"p","rows":["district"],"filter":{"sex":` + vals + `}}`))
		if err != nil {
			return "", err
		}
		p, err := f.cache.Compile(r, f.proj, sdc.DefaultParams(), FormatJSON, f.asOf)
		if err != nil {
			return "", err
		}
		return p.Norm.Encode(), nil
	}
	want, err := norm(`[1]`)
	if err != nil {
		t.Fatal(err)
	}
	for _, vals := range []string{`["01"]`, `["+1"]`, `[1,"01"]`} {
		got, err := norm(vals)
		if err != nil {
			continue // refusing a non-canonical code is fine too
		}
		if got != want {
			t.Errorf("BUG: filter sex %s selects the same records as [1] but normalizes to a different request (request.go Compile keeps the string as sent; it should normalize each code to strconv.FormatInt of its value before sorting and deduplicating, or refuse it):\n got %s\nwant %s", vals, got, want)
		}
	}
}

func TestNormalizedRoundTrip(t *testing.T) {
	f := shared(t)
	for _, r := range []*Request{
		countReq(Persons, []string{"province"}, nil),
		{Project: "p", Unit: Persons, Rows: []string{"district", "sex"}, Cols: []string{"age_group5"},
			Filter:  map[string][]string{"age_group5": {"20-24", "15-19"}, FilterArea: {"02", "01"}, "marital_status": {"2"}},
			Measure: Measure{Op: "mean", Var: "age"}},
		{Project: "p", Unit: Households, Rows: []string{"tenure"}, Measure: Measure{Op: "sum", Var: "floor_area_m2"}},
	} {
		for _, format := range []string{FormatJSON, FormatCSV} {
			p := mustCompile(t, f.cache, r, f.proj, sdc.DefaultParams(), format, f.asOf)
			s := p.Norm.Encode()
			n, err := ParseNormalized(s)
			if err != nil {
				t.Fatalf("ParseNormalized(%s): %v", s, err)
			}
			if !reflect.DeepEqual(*n, p.Norm) {
				t.Errorf("round trip changed the request:\n got %+v\nwant %+v", *n, p.Norm)
			}
			if n.Encode() != s {
				t.Errorf("re-encoding differs:\n%s\n%s", n.Encode(), s)
			}
			if n.AsOf != f.asOf || n.Format != format || n.SDC != sdc.DefaultParams().Canonical() || n.Unit != r.Unit {
				t.Errorf("normalized request lacks as-of, format, unit or parameters: %s", s)
			}
			if strings.Contains(s, "purpose") {
				t.Errorf("normalized request holds the purpose: %s", s)
			}
			// Replay: the normalized request compiles back to itself.
			back := &Request{Project: n.Project, Unit: n.Unit, Rows: n.Rows, Cols: n.Cols, Filter: n.Filter, Measure: n.Measure}
			p2 := mustCompile(t, f.cache, back, f.proj, sdc.DefaultParams(), n.Format, n.AsOf)
			if p2.Norm.Encode() != s {
				t.Errorf("replayed request normalizes differently:\n%s\n%s", p2.Norm.Encode(), s)
			}
			if r.Filter[FilterArea] != nil && !reflect.DeepEqual(n.Filter[FilterArea], []string{"01", "02"}) {
				t.Errorf("area filter not sorted: %q", n.Filter[FilterArea])
			}

			// Anything but the exact canonical bytes is refused.
			for _, bad := range []string{
				s + "\n",
				" " + s,
				strings.Replace(s, `,"cols":`, `, "cols":`, 1),
				strings.Replace(s, `"project":"p"`, `"project":"\u0070"`, 1),
				`{"cols":[],` + strings.TrimPrefix(s, "{"),
				strings.TrimSuffix(s, "}") + `,"extra":1}`,
				s + s,
				strings.Replace(s, `"as_of":`, `"as_of": `, 1),
				strings.Replace(s, `"as_of":`+itoa(f.asOf), `"as_of":`+itoa(f.asOf)+`.0`, 1),
			} {
				if _, err := ParseNormalized(bad); err == nil {
					t.Errorf("ParseNormalized accepted non-canonical %s", bad)
				}
			}
			// Moving as_of after cols: same content, other key order.
			i := strings.Index(s, `,"cols"`)
			reordered := "{" + s[i+1:len(s)-1] + "," + s[1:i] + "}"
			if _, err := ParseNormalized(reordered); err == nil {
				t.Errorf("ParseNormalized accepted reordered keys %s", reordered)
			}
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestClipKeepsUTF8(t *testing.T) {
	for _, s := range []string{strings.Repeat("ệ", 30), strings.Repeat("a", 39) + "ệệ", "short"} {
		if c := clip(s); !utf8.ValidString(c) || len(c) > 40+len("…") {
			t.Errorf("clip(%q) = %q", s, c)
		}
	}
}
