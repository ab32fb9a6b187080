package strictjson_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker/internal/strictjson"
)

type inner struct {
	Code int `json:"code"`
}

type doc struct {
	Project string              `json:"project"`
	Purpose string              `json:"purpose,omitempty"`
	Rows    []string            `json:"rows"`
	Inner   *inner              `json:"inner"`
	Filter  map[string][]string `json:"filter"`
	Raw     json.RawMessage     `json:"raw"`
	Skipped string              `json:"-"`
}

// Each case is something encoding/json accepts silently and reads in a
// way the writer may not have meant.
func TestDecodeRefusesWhatEncodingJSONLetsPass(t *testing.T) {
	for _, tc := range []struct {
		name, in, says string
	}{
		{"case-folded key", `{"PROJECT": "p"}`, `write "project"`},
		{"case-folded nested key", `{"inner": {"Code": 1}}`, `write "code"`},
		{"duplicate key", `{"project": "a", "project": "b"}`, "project: key given twice"},
		{"duplicate map key", `{"filter": {"sex": ["1"], "sex": ["2"]}}`, "filter.sex: key given twice"},
		{"duplicate key inside raw", `{"raw": {"a": 1, "a": 2}}`, "raw.a: key given twice"},
		{"invalid UTF-8", "{\"purpose\": \"caf\xe9\"}", "not valid UTF-8"},
		{"lone low surrogate escape", `{"purpose": "x\udc00y"}`, "unpaired"},
		{"lone high surrogate escape", `{"purpose": "x\ud800y"}`, "unpaired"},
		{"high surrogate then other escape", `{"purpose": "x\ud800\u0041"}`, "unpaired"},
		{"NUL escape", `{"purpose": "a\u0000b"}`, "purpose: control character U+0000"},
		{"ANSI escape", `{"purpose": "\u001b[31mred"}`, "purpose: control character U+001B"},
		{"newline", `{"purpose": "a\nb"}`, "control character U+000A"},
		{"C1 control", `{"purpose": "a\u009bb"}`, "control character U+009B"},
		{"control in an array", `{"rows": ["sex", "\u0007"]}`, "rows[1]: control character"},
		{"control in a key", `{"filter": {"a\u0000": ["1"]}}`, "control character U+0000 in a key"},
		{"unknown key", `{"colour": "red"}`, `unknown key "colour" (known: filter, inner, project, purpose, raw, rows)`},
		{"ignored field by name", `{"Skipped": "x"}`, "unknown key"},
		{"trailing data", `{"project": "p"} {}`, "data after"},
		{"trailing garbage", `{"project": "p"}x`, "data after"},
	} {
		var d doc
		err := strictjson.Decode([]byte(tc.in), &d)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.says)
		}
	}
}

func TestDecodeAcceptsStrictDocuments(t *testing.T) {
	var d doc
	in := `{"project": "p", "purpose": "Tỉnh Hà Tĩnh 😀 \ud83d\ude00 \"q\"", "rows": ["sex"], "inner": {"code": 3},
		"filter": {"Sex": ["1"], "sex": ["2"]}, "raw": [1, "x", {"k": null}]}`
	if err := strictjson.Decode([]byte(in), &d); err != nil {
		t.Fatal(err)
	}
	if d.Project != "p" || d.Purpose != "Tỉnh Hà Tĩnh 😀 😀 \"q\"" || d.Inner.Code != 3 || len(d.Filter) != 2 || string(d.Raw) != `[1, "x", {"k": null}]` {
		t.Errorf("decoded %+v", d)
	}
}

// Syntax and type errors stay encoding/json's, for callers that word
// them.
func TestDecodeKeepsEncodingJSONErrors(t *testing.T) {
	var d doc
	var se *json.SyntaxError
	if err := strictjson.Decode([]byte(`{"project": }`), &d); !errors.As(err, &se) {
		t.Errorf("syntax error: %T %v", err, err)
	}
	var te *json.UnmarshalTypeError
	if err := strictjson.Decode([]byte(`{"project": 5}`), &d); !errors.As(err, &te) || te.Field != "project" {
		t.Errorf("type error: %T %v", err, err)
	}
	if err := strictjson.Decode([]byte(`{"project": "p"`), &d); err == nil {
		t.Error("a truncated document was accepted")
	}
}
