package main_test

import (
	"database/sql"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// tokenRE is a bearer token as `user add` prints it: 32 random bytes in
// unpadded base64url.
var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

func TestInit(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "vault")
	areas := filepath.Join("testdata", "areas.csv")

	r := mustCV(t, "init", "--data", dir, "--areas", areas)
	if r.stdout != "" {
		t.Errorf("init wrote to stdout: %q", r.stdout)
	}
	// 120 + 118 + 125 planned households in the three EAs roll up.
	if !strings.Contains(r.stderr, "8 areas, 363 planned households") {
		t.Errorf("init does not report the areas and the rolled-up plan:\n%s", r.stderr)
	}
	for _, f := range []string{"vault.db", "keyprovider.age"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("init did not create %s: %v", f, err)
		}
		if f == "keyprovider.age" && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm()&0o077 != 0 {
		t.Errorf("data directory has mode %v, want no group or other access", di.Mode().Perm())
	}
	keyBefore, err := os.ReadFile(filepath.Join(dir, "keyprovider.age"))
	if err != nil {
		t.Fatal(err)
	}

	// A second init on the same directory must refuse and leave the
	// vault as it was.
	r = cv(t, "init", "--data", dir, "--areas", areas)
	if r.code != 1 {
		t.Errorf("second init: want exit 1, got\n%s", r)
	}
	if !strings.Contains(r.stderr, "already exists") && !strings.Contains(r.stderr, "already holds a vault") {
		t.Errorf("second init does not say the vault exists:\n%s", r.stderr)
	}
	keyAfter, err := os.ReadFile(filepath.Join(dir, "keyprovider.age"))
	if err != nil || string(keyAfter) != string(keyBefore) {
		t.Errorf("second init changed the key provider file (err %v)", err)
	}
	if r := mustCV(t, "audit", "verify", "--data", dir); !strings.Contains(r.stdout, "audit chain OK: 1 events") {
		t.Errorf("after a refused second init the log should hold only the init event:\n%s", r)
	}

	// --areas is required: a usage error.
	if r := cv(t, "init", "--data", filepath.Join(root, "other")); r.code != 2 || !strings.Contains(r.stderr, "--areas") {
		t.Errorf("init without --areas: want exit 2 naming --areas, got\n%s", r)
	}
	if r := cv(t, "init", "--data", filepath.Join(root, "other"), "--areas", filepath.Join(root, "missing.csv")); r.code == 0 {
		t.Errorf("init with a missing areas file succeeded:\n%s", r)
	}
}

func TestInitBadAreas(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "vault")
	r := cv(t, "init", "--data", dir, "--areas", filepath.Join("testdata", "areas_unknown_parent.csv"))
	if r.code == 0 {
		t.Fatalf("init with an unknown parent succeeded:\n%s", r)
	}
	for _, want := range []string{"line 6", "unknown parent", "18099"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("error does not name %q:\n%s", want, r.stderr)
		}
	}
	// The refused file leaves nothing behind that stops a correct init.
	mustCV(t, "init", "--data", dir, "--areas", filepath.Join("testdata", "areas.csv"))
}

// An init that fails after it started must not leave a half-made vault
// behind: the operator fixes the flag and runs init again.
func TestInitFailureLeavesNoHalfVault(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	badPolicy := filepath.Join(root, "policy.csv")
	if err := os.WriteFile(badPolicy, []byte("p, mayor, progress.read, allow\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"bad vault name", []string{"--name", "not a note name"}},
		{"bad policy", []string{"--policy", badPolicy}},
		{"unknown table form", []string{"--form", "nosuch"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(root, strings.ReplaceAll(tc.name, " ", "-"))
			args := append([]string{"init", "--data", dir, "--areas", filepath.Join("testdata", "areas.csv")}, tc.args...)
			if r := cv(t, args...); r.code == 0 {
				t.Fatalf("init %v succeeded:\n%s", tc.args, r)
			}
			if r := cv(t, "init", "--data", dir, "--areas", filepath.Join("testdata", "areas.csv")); r.code != 0 {
				t.Errorf("init after a failed init (%s) on the same directory:\n%s", tc.name, r)
			}
		})
	}
}

func TestUserAdd(t *testing.T) {
	t.Parallel()
	dir := newVault(t)

	// Flags after the positional NAME.
	r := mustCV(t, "user", "add", "lan", "--role", "enumerator", "--area", "18070-01", "--data", dir)
	if !tokenRE.MatchString(strings.TrimSuffix(r.stdout, "\n")) || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("user add stdout is %q, want one line holding only a 43-character base64url token", r.stdout)
	}
	if !strings.Contains(r.stderr, "added lan as enumerator at 18070-01") {
		t.Errorf("user add stderr: %q", r.stderr)
	}
	if strings.Contains(r.stderr, strings.TrimSpace(r.stdout)) {
		t.Errorf("the token also went to stderr")
	}

	// Flags before the positional NAME.
	tok2 := strings.TrimSpace(mustCV(t, "user", "add", "--role", "team_leader", "--area", "18070", "--data", dir, "minh").stdout)
	if !tokenRE.MatchString(tok2) || tok2 == strings.TrimSpace(r.stdout) {
		t.Errorf("second token %q: want a fresh token", tok2)
	}

	// The data directory from the environment; a flag beats it.
	r = cvEnv(t, []string{"CENSUSVAULT_DATA=" + dir}, "user", "add", "hoa", "--role", "steering", "--area", "437")
	if r.code != 0 || !tokenRE.MatchString(strings.TrimSpace(r.stdout)) {
		t.Errorf("user add with CENSUSVAULT_DATA:\n%s", r)
	}
	r = cvEnv(t, []string{"CENSUSVAULT_DATA=" + filepath.Join(t.TempDir(), "nothing-here")}, "user", "show", "hoa", "--data", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "allow steering at 437") {
		t.Errorf("--data must override CENSUSVAULT_DATA:\n%s", r)
	}
	// What a grant gives is typed, never taken from the environment: a
	// CENSUSVAULT_ROLE left in an admin's shell would grant it to everyone
	// added from there. Each such variable is named as ignored.
	mustCV(t, "project", "add", "fert-2019", "--data", dir, "--title", "Fertility", "--purpose", "Fertility by district",
		"--areas", "42", "--variables", "sex,age_group5", "--expires", "180d", "--budget", "1000")
	grantEnv := []string{"CENSUSVAULT_DATA=" + dir, "CENSUSVAULT_ROLE=researcher", "CENSUSVAULT_AREA=42", "CENSUSVAULT_PROJECT=fert-2019"}
	r = cvEnv(t, grantEnv, "user", "add", "tuan")
	if r.code != 2 || !strings.Contains(r.stderr, "--role and --area are required") {
		t.Errorf("user add with role, area and project only in the environment: want exit 2, --role and --area required, got\n%s", r)
	}
	for _, v := range []string{"CENSUSVAULT_ROLE is ignored: --role", "CENSUSVAULT_AREA is ignored: --area", "CENSUSVAULT_PROJECT is ignored: --project"} {
		if !strings.Contains(r.stderr, v) {
			t.Errorf("user add does not warn %q:\n%s", v, r)
		}
	}
	if strings.Contains(r.stderr, "CENSUSVAULT_DATA is ignored") || strings.Contains(r.stderr, "fert-2019") {
		t.Errorf("user add warns of an allowed variable or echoes a value:\n%s", r)
	}
	if r := cv(t, "user", "show", "tuan", "--data", dir); r.code == 0 {
		t.Errorf("user add from environment variables added tuan:\n%s", r)
	}
	// Researchers are granted on a project.
	r = cvEnv(t, []string{"CENSUSVAULT_DATA=" + dir}, "user", "add", "tuan", "--role", "researcher", "--area", "42")
	if r.code != 1 || !strings.Contains(r.stderr, "--project") {
		t.Errorf("user add of a researcher without a project: want exit 1 naming --project, got\n%s", r)
	}
	r = cvEnv(t, grantEnv, "user", "add", "tuan", "--role", "researcher", "--area", "42", "--project", "fert-2019")
	if r.code != 0 || !strings.Contains(r.stderr, "added tuan as researcher at 42 for project fert-2019") {
		t.Errorf("user add with the grant on the command line:\n%s", r)
	}
	if r := mustCV(t, "user", "show", "tuan", "--data", dir); !strings.Contains(r.stdout, "allow researcher at 42 for project fert-2019\n") ||
		!strings.Contains(r.stdout, "recipient none") {
		t.Errorf("user show tuan: %q", r.stdout)
	}

	for _, tc := range []struct {
		name     string
		args     []string
		codes    []int // acceptable exit codes
		contains []string
	}{
		{"unknown role", []string{"user", "add", "x1", "--role", "mayor", "--area", "18070-01"}, []int{1, 2},
			[]string{"mayor", "enumerator", "team_leader", "supervisor", "steering", "researcher", "auditor", "admin", "approver"}},
		{"unknown area", []string{"user", "add", "x2", "--role", "enumerator", "--area", "18099-01"}, []int{1, 2}, []string{"18099-01"}},
		{"duplicate user", []string{"user", "add", "lan", "--role", "enumerator", "--area", "18070-01"}, []int{1}, []string{"lan", "already exists"}},
		{"bad user name", []string{"user", "add", "Lan Anh", "--role", "enumerator", "--area", "18070-01"}, []int{1, 2}, []string{"user name"}},
		{"no name", []string{"user", "add", "--role", "enumerator", "--area", "18070-01"}, []int{2}, []string{"NAME"}},
		{"two names", []string{"user", "add", "a1", "a2", "--role", "enumerator", "--area", "18070-01"}, []int{2}, []string{"NAME"}},
		{"no role", []string{"user", "add", "x3", "--area", "18070-01"}, []int{2}, []string{"--role"}},
		{"no area", []string{"user", "add", "x4", "--role", "enumerator"}, []int{2}, []string{"--area"}},
		{"unknown flag", []string{"user", "add", "x5", "--role", "enumerator", "--area", "18070-01", "--colour", "red"}, []int{2}, []string{"colour"}},
		{"bad expiry", []string{"user", "add", "x6", "--role", "enumerator", "--area", "18070-01", "--expires", "soon"}, []int{2}, []string{"soon"}},
		{"negative expiry", []string{"user", "add", "x7", "--role", "enumerator", "--area", "18070-01", "--expires", "-1h"}, []int{2}, []string{"-1h"}},
		{"negative days", []string{"user", "add", "x8", "--role", "enumerator", "--area", "18070-01", "--expires", "-3d"}, []int{2}, []string{"-3d"}},
		{"unknown subcommand", []string{"user", "delete", "lan"}, []int{2}, []string{"delete"}},
		{"no subcommand", []string{"user"}, []int{2}, []string{"usage"}},
		{"show unknown user", []string{"user", "show", "nobody"}, []int{1}, []string{"nobody"}},
		{"revoke unknown user", []string{"user", "revoke", "nobody"}, []int{1}, []string{"nobody"}},
		{"grant to unknown user", []string{"user", "grant", "nobody", "--role", "steering", "--area", "437"}, []int{1}, []string{"nobody"}},
		{"researcher of an unknown project", []string{"user", "add", "x9", "--role", "researcher", "--area", "42", "--project", "nope"}, []int{1}, []string{"no project nope"}},
		{"project on a field role", []string{"user", "add", "x10", "--role", "enumerator", "--area", "18070-01", "--project", "fert-2019"}, []int{1}, []string{"only researcher grants name a project"}},
		{"recipient of unknown user", []string{"user", "set-recipient", "nobody", "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"}, []int{1}, []string{"nobody"}},
		{"secret key as recipient", []string{"user", "set-recipient", "lan", "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"}, []int{1}, []string{"recipient"}},
		{"recipient missing", []string{"user", "set-recipient", "lan"}, []int{2}, []string{"age1"}},
		{"clear with a recipient", []string{"user", "set-recipient", "--clear", "lan", "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"}, []int{2}, []string{"--clear"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cv(t, append(tc.args, "--data", dir)...)
			ok := false
			for _, c := range tc.codes {
				ok = ok || r.code == c
			}
			if !ok {
				t.Errorf("want exit %v, got\n%s", tc.codes, r)
			}
			if r.stdout != "" {
				t.Errorf("a failed command wrote to stdout: %q", r.stdout)
			}
			for _, w := range tc.contains {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not mention %q:\n%s", w, r.stderr)
				}
			}
		})
	}
	// A secret key pasted by mistake is refused without being echoed.
	if r := cv(t, "user", "set-recipient", "lan", "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ", "--data", dir); r.code != 1 ||
		strings.Contains(r.stderr, "QQQQQQQQ") || !strings.Contains(r.stderr, "secret key") {
		t.Errorf("set-recipient with a secret key:\n%s", r)
	}
	// None of the refused adds left a user behind.
	for _, u := range []string{"x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "a1"} {
		if r := cv(t, "user", "show", u, "--data", dir); r.code == 0 {
			t.Errorf("refused user %s exists:\n%s", u, r)
		}
	}
}

func TestUserShowGrantExpires(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	before := time.Now()
	addUser(t, dir, "lan", "enumerator", "18070-01", "--expires", "90d")
	after := time.Now()
	mustCV(t, "user", "grant", "lan", "--role", "steering", "--area", "18070", "--data", dir)
	mustCV(t, "user", "grant", "--deny", "lan", "--role", "steering", "--area", "18070-02", "--data", dir)
	r := mustCV(t, "user", "show", "lan", "--data", dir)
	for _, want := range []string{"user lan\n", "allow enumerator at 18070-01\n", "allow steering at 18070\n", "deny steering at 18070-02\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("user show does not list %q:\n%s", want, r.stdout)
		}
	}
	m := regexp.MustCompile(`expires (\S+)\n`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("user show does not give the expiry:\n%s", r.stdout)
	}
	exp, err := time.Parse(time.RFC3339, m[1])
	if err != nil {
		t.Fatal(err)
	}
	// 90d is 90 × 24 hours; RFC 3339 output drops sub-seconds.
	lo, hi := before.Add(90*24*time.Hour).Add(-time.Second), after.Add(90*24*time.Hour).Add(time.Second)
	if exp.Before(lo) || exp.After(hi) {
		t.Errorf("expires %v, want between %v and %v", exp, lo, hi)
	}
	if strings.Contains(r.stdout, "revoked") {
		t.Errorf("a live user shows as revoked:\n%s", r.stdout)
	}
	// Granting the same thing twice is a conflict.
	if r := cv(t, "user", "grant", "lan", "--role", "steering", "--area", "18070", "--data", dir); r.code != 1 {
		t.Errorf("duplicate grant: want exit 1, got\n%s", r)
	}

	mustCV(t, "user", "revoke", "lan", "--data", dir)
	if r := mustCV(t, "user", "show", "lan", "--data", dir); !regexp.MustCompile(`(?m)^  revoked \d{4}-`).MatchString(r.stdout) {
		t.Errorf("user show after revoke:\n%s", r.stdout)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args  []string
		usage string // what the usage line must name
	}{
		{[]string{"--help"}, "usage: censusvault <command>"},
		{[]string{"-h"}, "usage: censusvault <command>"},
		{[]string{"help"}, "usage: censusvault <command>"},
		{[]string{"init", "--help"}, "usage: censusvault init"},
		{[]string{"serve", "--help"}, "usage: censusvault serve"},
		{[]string{"demo", "--help"}, "usage: censusvault demo"},
		{[]string{"user", "--help"}, "usage: censusvault user"},
		{[]string{"user", "add", "--help"}, "usage: censusvault user add"},
		{[]string{"user", "add", "-h"}, "usage: censusvault user add"},
		{[]string{"user", "grant", "--help"}, "usage: censusvault user grant"},
		{[]string{"user", "revoke", "--help"}, "usage: censusvault user revoke"},
		{[]string{"user", "show", "--help"}, "usage: censusvault user show"},
		{[]string{"user", "set-recipient", "--help"}, "usage: censusvault user set-recipient"},
		{[]string{"table", "--help"}, "usage: censusvault table request|replay"},
		{[]string{"table", "request", "--help"}, "usage: censusvault table request --server URL"},
		{[]string{"table", "replay", "--help"}, "usage: censusvault table replay"},
		{[]string{"keys", "--help"}, "usage: censusvault keys <subcommand>"},
		{[]string{"keys", "rotate-ingest", "--help"}, "usage: censusvault keys rotate-ingest"},
		{[]string{"audit", "--help"}, "usage: censusvault audit verify"},
		{[]string{"audit", "verify", "--help"}, "usage: censusvault audit verify"},
		{[]string{"audit", "verify", "--help"}, "censusvault audit verify EXPORT.jsonl --key KEY"},
		{[]string{"audit", "export", "--help"}, "usage: censusvault audit export --server URL"},
		{[]string{"audit", "checkpoint", "--help"}, "usage: censusvault audit checkpoint --server URL"},
		{[]string{"audit", "prune", "--help"}, "usage: censusvault audit prune --before DATE|--before-index I"},
		{[]string{"receipt", "--help"}, "usage: censusvault receipt proof"},
		{[]string{"receipt", "proof", "--help"}, "usage: censusvault receipt proof --server URL"},
		{[]string{"release-point", "--help"}, "usage: censusvault release-point create|list"},
		{[]string{"release-point", "create", "--help"}, "usage: censusvault release-point create NAME [--point-k 100] [--point-interval 168h]"},
		{[]string{"release-point", "list", "--help"}, "usage: censusvault release-point list"},
		{[]string{"serve", "--help"}, "--point-interval"},
		{[]string{"ledger", "--help"}, "usage: censusvault ledger show|propose|approve"},
		{[]string{"ledger", "show", "--help"}, "usage: censusvault ledger show [--data DIR] [--store DSN] [--keys PROVIDER] | --server URL [--token-file FILE]"},
		{[]string{"ledger", "propose", "--help"}, "usage: censusvault ledger propose --kind commune|researcher|project [--holder NAME] --rho R --reason TEXT --server URL"},
		{[]string{"ledger", "approve", "--help"}, "usage: censusvault ledger approve SEQ --server URL"},
		{[]string{"table", "request", "--help"}, "a custom table, which the\nvault answers under differential privacy"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			// From a directory with no vault: --help must not touch one.
			r := cv(t, tc.args...)
			if r.code != 0 {
				t.Errorf("want exit 0, got\n%s", r)
			}
			if r.stdout != "" {
				t.Errorf("usage went to stdout: %q", r.stdout)
			}
			if !strings.Contains(r.stderr, tc.usage) {
				t.Errorf("stderr does not hold %q:\n%s", tc.usage, r.stderr)
			}
		})
	}
	// Commands that touch the store document --data and --store.
	for _, args := range [][]string{
		{"init", "--help"}, {"serve", "--help"}, {"user", "add", "--help"}, {"user", "grant", "--help"},
		{"user", "revoke", "--help"}, {"user", "show", "--help"}, {"keys", "rotate-ingest", "--help"}, {"audit", "verify", "--help"},
		{"user", "set-recipient", "--help"}, {"table", "replay", "--help"}, {"audit", "prune", "--help"},
		{"release-point", "create", "--help"}, {"release-point", "list", "--help"}, {"ledger", "show", "--help"},
	} {
		r := cv(t, args...)
		if !strings.Contains(r.stderr, "--data") || !strings.Contains(r.stderr, "--store") {
			t.Errorf("censusvault %s does not document --data and --store:\n%s", strings.Join(args, " "), r.stderr)
		}
	}
	r := cv(t, "--help")
	for _, c := range []string{"init", "serve", "demo", "user", "keys", "audit", "receipt", "release-point", "table", "ledger", "CENSUSVAULT_"} {
		if !strings.Contains(r.stderr, c) {
			t.Errorf("top-level usage does not mention %q", c)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"--verbose"},
		{"keys"},
		{"keys", "frobnicate"},
		{"audit"},
		{"audit", "check"},
		{"serve", "--port", "80"},
		{"serve", "--open-cap", "team_leader"},
		{"serve", "--open-cap", "supervisor=-1"},
		{"serve", "--open-cap", "team_leader=lots"},
		{"keys", "rotate-ingest", "--grace", "forever"},
		{"audit", "export"},
		{"audit", "export", "--server", "http://127.0.0.1:1", "stray"},
		{"audit", "checkpoint"},
		{"audit", "checkpoint", "--server", "ftp://x"},
		{"audit", "prune"},
		{"audit", "verify", "a.jsonl"},
		{"receipt"},
		{"receipt", "proof", "--server", "http://127.0.0.1:1"},
		{"release-point"},
		{"release-point", "frobnicate"},
		{"release-point", "create", "--point-k", "lots"},
		{"ledger"},
		{"ledger", "frobnicate"},
		{"ledger", "propose", "--server", "http://127.0.0.1:1"},
		{"ledger", "approve", "--server", "http://127.0.0.1:1"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := cv(t, args...)
			if r.code != 2 {
				t.Errorf("want exit 2, got\n%s", r)
			}
			if r.stdout != "" {
				t.Errorf("wrote to stdout: %q", r.stdout)
			}
			named := strings.Contains(r.stderr, "usage")
			for _, a := range args {
				named = named || strings.Contains(r.stderr, a)
			}
			if !named {
				t.Errorf("stderr neither shows usage nor names the problem:\n%s", r.stderr)
			}
		})
	}
	if r := cv(t, "frobnicate"); !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command is not named:\n%s", r.stderr)
	}
	// Commands that need a vault say so when there is none.
	empty := t.TempDir()
	for _, args := range [][]string{
		{"user", "add", "lan", "--role", "enumerator", "--area", "18070-01"},
		{"user", "show", "lan"},
		{"keys", "rotate-ingest"},
		{"serve", "--addr", "127.0.0.1:0"},
	} {
		r := cv(t, append(args, "--data", empty)...)
		if r.code == 0 {
			t.Errorf("censusvault %s on an empty directory succeeded:\n%s", strings.Join(args, " "), r)
		}
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Errorf("commands on a directory without a vault created %d files there", len(ents))
	}
}

// openDB opens a vault's database directly, as an attacker with disk access
// (or a careless operator) would.
func openDB(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "vault.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// copyDir copies a stopped vault's files.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAuditVerify(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	for _, u := range []string{"u1", "u2", "u3", "u4", "u5"} {
		addUser(t, dir, u, "enumerator", "18070-01")
	}
	mustCV(t, "user", "revoke", "u5", "--data", dir)

	// Intact, while a server holds the vault open and writes to it.
	srv := startServer(t, dir)
	if st, _ := srv.do(t, http.MethodGet, "/v1/progress?area=437", "not-a-token", nil); st != http.StatusUnauthorized {
		t.Errorf("made-up token: got %d, want 401", st)
	}
	r := mustCV(t, "audit", "verify", "--data", dir)
	if !regexp.MustCompile(`^audit chain OK: \d+ events, head [0-9a-f]{64} `).MatchString(r.stdout) {
		t.Errorf("audit verify stdout: %q", r.stdout)
	}
	srv.stop(t)
	// init, 5 × user add, revoke; the refused request; nothing else.
	r = mustCV(t, "audit", "verify", "--data", dir)
	if !strings.Contains(r.stdout, "audit chain OK: 8 events") {
		t.Errorf("audit verify after the server stopped: %q", r.stdout)
	}

	// On copies, with no server running: tamper with one event, or drop it.
	root := t.TempDir()
	for _, tc := range []struct {
		name, sql string
		args      []any
	}{
		{"event changed", `UPDATE audit_events SET event = CAST(replace(CAST(event AS TEXT), 'user:u3', 'user:u9') AS BLOB) WHERE idx = 3`, nil},
		{"event deleted", `DELETE FROM audit_events WHERE idx = 3`, nil},
		{"leaf hash changed", `UPDATE audit_events SET leaf_hash = zeroblob(32) WHERE idx = 3`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp := filepath.Join(root, strings.ReplaceAll(tc.name, " ", "-"))
			copyDir(t, dir, cp)
			if r := mustCV(t, "audit", "verify", "--data", cp); !strings.Contains(r.stdout, "audit chain OK") {
				t.Fatalf("the untouched copy does not verify: %q", r.stdout)
			}
			db := openDB(t, cp)
			// The store's append-only triggers refuse this; someone with
			// the file drops them first.
			if _, err := db.Exec(tc.sql, tc.args...); err == nil {
				t.Fatal("the store let an audit record be changed")
			}
			for _, tr := range []string{"audit_events_prune_only", "audit_events_no_delete"} {
				if _, err := db.Exec("DROP TRIGGER " + tr); err != nil {
					t.Fatal(err)
				}
			}
			res, err := db.Exec(tc.sql, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				t.Fatalf("tampering changed %d rows, want 1", n)
			}
			db.Close()
			r := cv(t, "audit", "verify", "--data", cp)
			if r.code != 1 {
				t.Errorf("want exit 1, got\n%s", r)
			}
			if !strings.Contains(r.stderr, "event 3") || !strings.Contains(r.stderr, "BROKEN") {
				t.Errorf("stderr does not name event 3 as broken:\n%s", r.stderr)
			}
			if strings.Contains(r.stdout, "OK") {
				t.Errorf("stdout claims OK: %q", r.stdout)
			}
		})
	}
	// The original is untouched.
	mustCV(t, "audit", "verify", "--data", dir)

	// Could not read: no vault, or a file that is not a database.
	if r := cv(t, "audit", "verify", "--data", t.TempDir()); r.code != 2 {
		t.Errorf("audit verify on a directory without a vault: want exit 2, got\n%s", r)
	}
	garbage := t.TempDir()
	if err := os.WriteFile(filepath.Join(garbage, "vault.db"), []byte(strings.Repeat("not a database\n", 300)), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cv(t, "audit", "verify", "--data", garbage); r.code != 2 {
		t.Errorf("audit verify on a file that is not a database: want exit 2, got\n%s", r)
	}
	// --store sqlite:PATH names the database directly.
	if r := cv(t, "audit", "verify", "--data", t.TempDir(), "--store", "sqlite:"+filepath.Join(dir, "vault.db")); r.code != 0 {
		t.Errorf("audit verify --store sqlite:PATH:\n%s", r)
	}
	if r := cv(t, "audit", "verify", "--data", dir, "--store", "mysql://x"); r.code != 2 {
		t.Errorf("audit verify with an unsupported --store: want exit 2, got\n%s", r)
	}
}
