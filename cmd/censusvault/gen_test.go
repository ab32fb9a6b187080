package main_test

import (
	"database/sql"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// genHashes opens a vault's database read-only and returns the number of
// stored submissions and their payload digests in id order.
func genHashes(t *testing.T, dir string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "vault.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT payload_sha256 FROM submissions ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGenNational: gen on an empty directory initializes a vault with
// the national tree and loads exactly the households asked for, the log
// verifies, and the same seed on another vault stores the same payloads.
func TestGenNational(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 2×2,000 households")
	}
	t.Parallel()
	var runs [][]string
	for k := range 2 {
		dir := filepath.Join(t.TempDir(), "vault")
		r := mustCV(t, "gen", "--national", "--households", "2000", "--seed", "2019", "--data", dir)
		if !regexp.MustCompile(`^loaded 2000 households, \d+ persons in [0-9.]+s\n$`).MatchString(r.stdout) {
			t.Errorf("run %d: stdout %q", k, r.stdout)
		}
		if !strings.Contains(r.stderr, "initializing one with the synthetic national tree (seed 2019)") ||
			!strings.Contains(r.stderr, "loading: 2000/2000 households") {
			t.Errorf("run %d: stderr %q", k, r.stderr)
		}
		v := mustCV(t, "audit", "verify", "--data", dir)
		if !strings.Contains(v.stdout+v.stderr, "audit chain OK") {
			t.Errorf("run %d: audit verify: %s", k, v)
		}
		hs := genHashes(t, dir)
		if len(hs) != 2000 {
			t.Fatalf("run %d: %d submissions stored, want 2000", k, len(hs))
		}
		runs = append(runs, hs)
	}
	if !slices.Equal(runs[0], runs[1]) {
		t.Error("same seed, different payloads")
	}
}

// TestGenExistingVault: on an initialized vault gen uses the vault's own
// areas; a second run with --from adds the next households of the same
// census; repeating a run stores nothing new; another seed's households
// collide with the stored ones and are refused.
func TestGenExistingVault(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	mustCV(t, "gen", "--households", "50", "--seed", "1", "--data", dir)
	r := mustCV(t, "gen", "--households", "30", "--seed", "1", "--from", "50", "--data", dir, "--areas", filepath.Join("testdata", "areas.csv"))
	if !strings.HasPrefix(r.stdout, "loaded 30 households, ") {
		t.Errorf("stdout %q", r.stdout)
	}
	mustCV(t, "gen", "--households", "80", "--seed", "1", "--data", dir)
	if n := len(genHashes(t, dir)); n != 80 {
		t.Errorf("%d submissions stored, want 80", n)
	}
	if r := cv(t, "gen", "--households", "1", "--seed", "2", "--data", dir); r.code != 1 || !strings.Contains(r.stderr, "already deposited") {
		t.Errorf("another seed on the same households: %s", r)
	}
}

func TestGenRejects(t *testing.T) {
	t.Parallel()
	empty := filepath.Join(t.TempDir(), "none")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no count", []string{"gen", "--national", "--data", empty}, "--households must be"},
		{"zero", []string{"gen", "--national", "--households", "0", "--data", empty}, "--households must be"},
		{"too many", []string{"gen", "--national", "--households", "30000001", "--data", empty}, "--households must be"},
		{"negative from", []string{"gen", "--national", "--households", "1", "--from", "-1", "--data", empty}, "--from must be"},
		{"both trees", []string{"gen", "--national", "--areas", "x.csv", "--households", "1", "--data", empty}, "exclude each other"},
		{"no vault, no tree", []string{"gen", "--households", "1", "--data", empty}, "no vault in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cv(t, tc.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", r.code, r.stderr, tc.want)
			}
		})
	}
}
