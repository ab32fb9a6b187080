package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker/form"
)

// writeDefinition writes census2019 changed by edit as a JSON file in dir.
func writeDefinition(t *testing.T, dir, name string, edit func(def map[string]any)) string {
	t.Helper()
	b, err := form.Default().Canonical()
	if err != nil {
		t.Fatal(err)
	}
	var def map[string]any
	if err := json.Unmarshal(b, &def); err != nil {
		t.Fatal(err)
	}
	edit(def)
	out, err := json.MarshalIndent(def, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// setClass sets the class of person field name.
func setClass(def map[string]any, name, class string) {
	for _, f := range def["person"].([]any) {
		if fd := f.(map[string]any); fd["name"] == name {
			fd["class"] = class
		}
	}
}

var shaLine = regexp.MustCompile(`^[0-9a-f]{64}\n$`)

// TestFormCLI: on the vault host the operator lists the forms (the
// built-in census2019 v1), adds census2019 v2 from a JSON file (its
// SHA-256 on stdout, the class it changes on stderr), adds it again
// (nothing changes), replaces an unused version, shows a definition and
// its schema; the built-in version, a bad file and unknown versions are
// refused with what to do next. Over HTTP the admin adds a version, an
// enumerator lists and shows the forms but may not add one.
func TestFormCLI(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	work := t.TempDir()
	if r := mustCV(t, "form", "list", "--data", dir); !regexp.MustCompile(`census2019\s+1\s+-\s+[0-9a-f]{64}\s+false\s+-\s+built-in`).MatchString(r.stdout) {
		t.Errorf("form list of a new vault:\n%s", r)
	}
	v2 := writeDefinition(t, work, "census2019-v2.json", func(def map[string]any) {
		def["version"] = 2
		def["title"] = "Census 2019 v2"
		setClass(def, "ethnicity", "identifying")
	})
	r := mustCV(t, "form", "add", v2, "--data", dir)
	if !shaLine.MatchString(r.stdout) || !strings.Contains(r.stderr, "added form census2019 version 2 (Census 2019 v2)") ||
		!strings.Contains(r.stderr, "class: person.ethnicity analytic→identifying") {
		t.Errorf("form add:\n%s", r)
	}
	sum := strings.TrimSpace(r.stdout)
	if r := mustCV(t, "form", "add", v2, "--data", dir); r.stdout != sum+"\n" || !strings.Contains(r.stderr, "nothing changed") {
		t.Errorf("form add of the same file again:\n%s", r)
	}
	if r := mustCV(t, "form", "list", "--data", dir); !strings.Contains(r.stdout, sum) || !strings.Contains(r.stdout, "Census_2019_v2") {
		t.Errorf("form list after the add:\n%s", r)
	}
	v2b := writeDefinition(t, work, "census2019-v2b.json", func(def map[string]any) {
		def["version"] = 2
		def["title"] = "Census 2019 v2"
		setClass(def, "ethnicity", "identifying")
		setClass(def, "religion", "identifying")
	})
	if r := mustCV(t, "form", "add", v2b, "--data", dir); !strings.Contains(r.stderr, "replaced form census2019 version 2 (no submission used it)") ||
		!strings.Contains(r.stderr, "was "+sum) {
		t.Errorf("replacing the unused version:\n%s", r)
	}

	r = mustCV(t, "form", "show", "census2019", "2", "--data", dir)
	var def map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &def); err != nil || def["version"] != float64(2) {
		t.Errorf("form show printed no definition of version 2 (%v):\n%s", err, r)
	}
	if !strings.Contains(r.stderr, "added by cli:") || !strings.Contains(r.stderr, "not used yet") {
		t.Errorf("form show's status line:\n%s", r.stderr)
	}
	r = mustCV(t, "form", "show", "census2019", "1", "--schema", "--data", dir)
	var schema map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &schema); err != nil || schema["$schema"] == nil || schema["x-constraints"] == nil {
		t.Errorf("form show --schema printed no JSON Schema (%v):\n%.300s", err, r.stdout)
	}

	builtin := writeDefinition(t, work, "mine.json", func(def map[string]any) { setClass(def, "full_name", "analytic") })
	if r := cv(t, "form", "add", builtin, "--data", dir); r.code != 1 || !strings.Contains(r.stderr, "built into the vault") ||
		!strings.Contains(r.stderr, "another version number") {
		t.Errorf("changing the built-in version:\n%s", r)
	}
	bad := filepath.Join(work, "bad.json")
	os.WriteFile(bad, []byte(`{"name":"census2019","version":5,"household":[],"person":[]}`), 0o644)
	if r := cv(t, "form", "add", bad, "--data", dir); r.code != 1 || !strings.Contains(r.stderr, "not valid") {
		t.Errorf("a bad definition:\n%s", r)
	}
	if r := cv(t, "form", "show", "census2019", "9", "--data", dir); r.code != 1 || !strings.Contains(r.stderr, "censusvault form list") {
		t.Errorf("an unknown version:\n%s", r)
	}
	for _, args := range [][]string{
		{"form", "add", "--data", dir},
		{"form", "add", filepath.Join(work, "missing.json"), "--data", dir},
		{"form", "show", "census2019", "--data", dir},
		{"form", "show", "census2019", "two", "--data", dir},
		{"form", "list", "extra", "--data", dir},
	} {
		if r := cv(t, args...); r.code != 2 {
			t.Errorf("censusvault %s: want exit 2\n%s", strings.Join(args, " "), r)
		}
	}

	// Over HTTP.
	admin := filepath.Join(work, "admin.token")
	enum := filepath.Join(work, "enum.token")
	os.WriteFile(admin, []byte(addUser(t, dir, "admin", "admin", "VN")+"\n"), 0o600)
	os.WriteFile(enum, []byte(addUser(t, dir, "enum", "enumerator", "437")+"\n"), 0o600)
	srv := startServer(t, dir)
	v3 := writeDefinition(t, work, "census2019-v3.json", func(def map[string]any) { def["version"] = 3 })
	if r := cv(t, "form", "add", v3, "--server", srv.base, "--token-file", enum); r.code != 1 || !strings.Contains(r.stderr, "HTTP 403") {
		t.Errorf("an enumerator adds a form:\n%s", r)
	}
	if r := cv(t, "form", "add", v3, "--server", srv.base, "--token-file", admin); r.code != 0 || !shaLine.MatchString(r.stdout) ||
		!strings.Contains(r.stderr, "added form census2019 version 3") {
		t.Errorf("the admin adds version 3 over HTTP:\n%s", r)
	}
	if r := cv(t, "form", "list", "--server", srv.base, "--token-file", enum); r.code != 0 || !regexp.MustCompile(`census2019\s+3\s`).MatchString(r.stdout) {
		t.Errorf("an enumerator lists the forms:\n%s", r)
	}
	if r := cv(t, "form", "show", "census2019", "3", "--schema", "--server", srv.base, "--token-file", enum); r.code != 0 || !strings.Contains(r.stdout, `"$schema"`) {
		t.Errorf("an enumerator reads version 3's schema:\n%.300s", r)
	}
	if r := cv(t, "form", "add", builtin, "--server", srv.base, "--token-file", admin); r.code != 1 || !strings.Contains(r.stderr, "HTTP 409") ||
		!strings.Contains(r.stderr, "another version number") {
		t.Errorf("the admin changes the built-in version over HTTP:\n%s", r)
	}

	// An XLSForm workbook.
	wb := filepath.Join("..", "..", "broker", "form", "testdata", "xlsform", "lfs2026.xlsx")
	if r := cv(t, "form", "add", wb, "--data", dir); r.code != 0 && !strings.Contains(r.stderr, "built into the vault") {
		t.Errorf("form add of the lfs2026 workbook:\n%s", r)
	}
	for _, args := range [][]string{{"form", "--help"}, {"form", "add", "--help"}, {"form", "list", "--help"}, {"form", "show", "--help"}} {
		if r := cv(t, args...); r.code != 0 || !strings.Contains(r.stderr, "usage: censusvault form") {
			t.Errorf("censusvault %s:\n%s", strings.Join(args, " "), r)
		}
	}
}
