package main_test

import (
	"strings"
	"testing"
)

func TestProjectCommands(t *testing.T) {
	dir := newVault(t)
	add := func(id string, extra ...string) result {
		t.Helper()
		args := append([]string{"project", "add", id, "--data", dir,
			"--title", "Household size by tenure", "--purpose", "Ước tính quy mô hộ",
			"--areas", "437,18070", "--variables", "sex,age_group5,ethnicity",
			"--expires", "180d", "--budget", "200000"}, extra...)
		return cv(t, args...)
	}
	if r := add("census-17"); r.code != 0 {
		t.Fatalf("project add:\n%s", r)
	}
	if r := add("census-17"); r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("adding a duplicate:\n%s", r)
	}

	r := mustCV(t, "project", "show", "census-17", "--data", dir)
	for _, want := range []string{
		"project:   census-17", "state:     open", "areas:     437,18070", "variables: sex,age_group5,ethnicity",
		"closed:    no", "budget:    200000", "spent:     0", "remaining: 200000", "purpose:   Ước tính quy mô hộ",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("project show lacks %q:\n%s", want, r.stdout)
		}
	}

	mustCV(t, "project", "add", "aaa", "--data", dir, "--title", "T", "--purpose", "P",
		"--areas", "18073", "--variables", "tenure", "--expires", "2h", "--budget", "1")
	r = mustCV(t, "project", "list", "--data", dir)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.HasPrefix(lines[1], "aaa ") || !strings.HasPrefix(lines[2], "census-17 ") {
		t.Fatalf("project list:\n%s", r.stdout)
	}
	if f := strings.Fields(lines[2]); f[1] != "open" || f[2] != "200000" || f[3] != "0" || f[4] != "200000" {
		t.Errorf("project list row %q", lines[2])
	}

	mustCV(t, "project", "close", "census-17", "--data", dir)
	r = mustCV(t, "project", "show", "census-17", "--data", dir)
	if !strings.Contains(r.stdout, "state:     closed") || strings.Contains(r.stdout, "closed:    no") {
		t.Errorf("project show after close:\n%s", r.stdout)
	}
	if r := cv(t, "project", "close", "census-17", "--data", dir); r.code != 1 || !strings.Contains(r.stderr, "already closed") {
		t.Errorf("closing twice:\n%s", r)
	}
	if r := cv(t, "project", "show", "nope", "--data", dir); r.code != 1 || !strings.Contains(r.stderr, "no project nope") {
		t.Errorf("show of an unknown project:\n%s", r)
	}
	// The changes are in the audit chain, which still verifies.
	mustCV(t, "audit", "verify", "--data", dir)
}

func TestProjectAddRefusals(t *testing.T) {
	dir := newVault(t)
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"identifying variable", []string{"--variables", "sex,full_name"}, 1, `"full_name" is an identifying field`},
		{"unknown variable", []string{"--variables", "income"}, 1, `no variable "income"`},
		{"unknown area", []string{"--areas", "99999"}, 1, `no area "99999"`},
		{"past expiry", []string{"--expires", "2020-01-01T00:00:00Z"}, 1, "not in the future"},
		{"zero budget", []string{"--budget", "0"}, 1, "budget 0"},
		{"bad expiry", []string{"--expires", "soon"}, 2, "--expires: bad value"},
		{"bad budget", []string{"--budget", "lots"}, 2, "budget"},
		{"no title", []string{"--title", ""}, 2, "missing --title"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Only the flags the case does not set: --areas and
			// --variables given twice would add up, not replace.
			flags := map[string]string{"--title": "T", "--purpose": "P", "--areas": "437",
				"--variables": "sex", "--expires": "30d", "--budget": "100"}
			args := append([]string{"project", "add", "p1", "--data", dir}, tc.args...)
			for _, f := range []string{"--title", "--purpose", "--areas", "--variables", "--expires", "--budget"} {
				if f != tc.args[0] {
					args = append(args, f, flags[f])
				}
			}
			r := cv(t, args...)
			if r.code != tc.wantCode || !strings.Contains(r.stderr, tc.wantErr) {
				t.Errorf("want exit %d saying %q, got\n%s", tc.wantCode, tc.wantErr, r)
			}
		})
	}
	r := mustCV(t, "project", "list", "--data", dir)
	if r.stdout != "" {
		t.Errorf("a refused project was listed:\n%s", r.stdout)
	}
	for _, args := range [][]string{
		{"project"},
		{"project", "frob"},
		{"project", "show", "--data", dir},
		{"project", "list", "extra", "--data", dir},
		{"project", "add", "p2", "--data", dir},
	} {
		if r := cv(t, args...); r.code != 2 {
			t.Errorf("censusvault %s: want exit 2, got\n%s", strings.Join(args, " "), r)
		}
	}
}
