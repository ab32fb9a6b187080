package main_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// pointMadeRE is what `release-point create` reports on stderr.
var pointMadeRE = regexp.MustCompile(`(?m)^made publication point (\S+) at deposit point (\d+): (\d+) of (\d+) communes at a new state, (\d+) kept at their previous one \(changed by fewer than (\d+) households\)$`)

// TestReleasePointCommands is issue 11's publication points as the
// operator on the vault host meets them: a census of 300 households (200
// in commune 18070, 100 in 18073), a first point with --point-k 150 that
// keeps 18073 at its empty state, a second point refused within the
// default week and allowed with --point-interval 0, names that are taken
// or are not names, flags out of range, and the list of what was made.
func TestReleasePointCommands(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	mustCV(t, "gen", "--households", "300", "--data", dir)

	if r := mustCV(t, "release-point", "list", "--data", dir); r.stdout != "" || !strings.Contains(r.stderr, "no publication points") {
		t.Errorf("list before any point:\n%s", r)
	}

	r := mustCV(t, "release-point", "create", "2019-05-01", "--point-k", "150", "--data", dir)
	m := pointMadeRE.FindStringSubmatch(r.stderr)
	if m == nil || m[1] != "2019-05-01" || m[3] != "1" || m[4] != "2" || m[5] != "1" || m[6] != "150" {
		t.Fatalf("create with --point-k 150: want 1 of 2 communes at a new state (18070 changed by 200 ≥ 150), 1 kept (18073, 100):\n%s", r)
	}
	asOf := m[2]

	// A second point the same day: refused, the default interval is a
	// week; nothing is made.
	r = cv(t, "release-point", "create", "2019-05-02", "--data", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "the last publication point, 2019-05-01, was made") || !strings.Contains(r.stderr, "points are at least 168h0m0s apart") {
		t.Errorf("a second point within the week:\n%s", r)
	}
	// --point-interval 0 asks for no minimum, but k may not be lowered
	// (with the default 100, 18073's 100 households would be seen now
	// though the last point held them back under 150).
	r = cv(t, "release-point", "create", "2019-05-02", "--point-interval", "0", "--data", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "kept k = 150 households") {
		t.Errorf("a second point with a lower k:\n%s", r)
	}
	// The same k: allowed; nothing changed, so both communes are kept.
	r = mustCV(t, "release-point", "create", "2019-05-02", "--point-interval", "0", "--point-k", "150", "--data", dir)
	if m := pointMadeRE.FindStringSubmatch(r.stderr); m == nil || m[1] != "2019-05-02" || m[3] != "0" || m[5] != "2" || m[6] != "150" {
		t.Errorf("create with --point-interval 0 --point-k 150: want both communes kept (unchanged):\n%s", r)
	}

	for _, tc := range []struct {
		what string
		args []string
		code int
		says string
	}{
		{"a taken name", []string{"create", "2019-05-01", "--point-interval", "0", "--point-k", "150"}, 1, "a publication point named 2019-05-01 exists"},
		{"a name with a space", []string{"create", "may first", "--point-interval", "0"}, 1, "use 1–64 lowercase letters"},
		{"a name with capitals", []string{"create", "May-01", "--point-interval", "0"}, 1, "use 1–64 lowercase letters"},
		{"a path", []string{"create", "../p", "--point-interval", "0"}, 1, "use 1–64 lowercase letters"},
		{"--point-k 0", []string{"create", "p3", "--point-k", "0"}, 2, "--point-k 0: at least 1 household"},
		{"--point-k negative", []string{"create", "p3", "--point-k", "-5"}, 2, "--point-k -5: at least 1 household"},
		{"--point-k not a number", []string{"create", "p3", "--point-k", "many"}, 2, "--point-k"},
		{"--point-interval negative", []string{"create", "p3", "--point-interval", "-1h"}, 2, "--point-interval -1h0m0s is negative"},
		{"no name", []string{"create"}, 2, "expected exactly one point NAME"},
		{"two names", []string{"create", "p3", "p4"}, 2, "expected exactly one point NAME"},
		{"list with an argument", []string{"list", "p1"}, 2, "takes no arguments"},
		{"an unknown subcommand", []string{"delete", "2019-05-01"}, 2, `unknown subcommand "delete"`},
	} {
		args := append(append([]string{"release-point"}, tc.args...), "--data", dir)
		if r := cv(t, args...); r.code != tc.code || !strings.Contains(r.stderr, tc.says) || r.stdout != "" {
			t.Errorf("%s: want exit %d saying %q, got\n%s", tc.what, tc.code, tc.says, r)
		}
	}

	r = mustCV(t, "release-point", "list", "--data", dir)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "SEQ NAME AS_OF CREATED BY LEVEL K" {
		t.Fatalf("list: want a header and the two points:\n%s", r.stdout)
	}
	for i, want := range [][]string{{"1", "2019-05-01", asOf, "commune", "150"}, {"2", "2019-05-02", asOf, "commune", "150"}} {
		f := strings.Fields(lines[i+1])
		if len(f) != 7 || f[0] != want[0] || f[1] != want[1] || f[2] != want[2] || !strings.HasPrefix(f[4], "cli:") || f[5] != want[3] || f[6] != want[4] {
			t.Errorf("list row %q, want seq %s name %s as of %s by cli:… at %s level, k %s", lines[i+1], want[0], want[1], want[2], want[3], want[4])
		}
	}
	// Each point and each refusal is in the audit chain, which still
	// verifies.
	mustCV(t, "audit", "verify", "--data", dir)
}

// serve takes the same publication point flags and applies them to the
// approver's POST /v1/release-points: --point-k is the k-rule of points
// made over HTTP, --point-interval 0 allows points back to back, and
// without it the default week holds. A --point-k out of range stops serve
// before it listens.
func TestServePointFlags(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	mustCV(t, "gen", "--households", "300", "--data", dir)
	tok := addUser(t, dir, "ann", "approver", "VN")

	for _, bad := range [][]string{{"--point-k", "0"}, {"--point-interval", "-1s"}} {
		r := cv(t, append([]string{"serve", "--data", dir, "--addr", freeAddr(t)}, bad...)...)
		if r.code != 2 || !strings.Contains(r.stderr, bad[0]) {
			t.Errorf("serve %s: want exit 2 naming the flag, got\n%s", strings.Join(bad, " "), r)
		}
	}

	post := func(s *server, name string) (int, map[string]any) {
		t.Helper()
		st, body := s.do(t, http.MethodPost, "/v1/release-points", tok, []byte(`{"name": "`+name+`"}`))
		var out map[string]any
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatalf("POST /v1/release-points: %d %q", st, body)
		}
		return st, out
	}
	srv := startServer(t, dir, "--point-k", "150", "--point-interval", "0")
	if st, p := post(srv, "p1"); st != http.StatusCreated || p["k"] != 150.0 || p["advanced"] != 1.0 || p["kept"] != 1.0 {
		t.Errorf("first point with --point-k 150: %d %v, want k 150, 18070 advanced and 18073 kept", st, p)
	}
	if st, p := post(srv, "p2"); st != http.StatusCreated {
		t.Errorf("a second point at once with --point-interval 0: %d %v", st, p)
	}
	srv.stop(t)

	srv = startServer(t, dir)
	if st, p := post(srv, "p3"); st != http.StatusConflict || p["code"] != "point_too_soon" {
		t.Errorf("a third point at once under the default interval: %d %v, want 409 point_too_soon", st, p)
	}
	srv.stop(t)
	r := mustCV(t, "release-point", "list", "--data", dir)
	if !strings.Contains(r.stdout, " p2 ") || strings.Contains(r.stdout, " p3 ") || !strings.Contains(r.stdout, "user:ann") {
		t.Errorf("list after serve:\n%s", r.stdout)
	}
}
