package main_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// tableReport is what `table request` prints on stderr.
type tableReport struct {
	digest, point, asOf, audit, cells, remaining string
}

var reportRE = map[string]*regexp.Regexp{
	"digest":    regexp.MustCompile(`(?m)^digest: +(sha256:[0-9a-f]{64})$`),
	"point":     regexp.MustCompile(`(?m)^point: +(\S+) \(made at deposit point \d+\)$`),
	"as of":     regexp.MustCompile(`(?m)^point: +\S+ \(made at deposit point (\d+)\)$`),
	"audit":     regexp.MustCompile(`(?m)^audit: +event (\d+)$`),
	"cells":     regexp.MustCompile(`(?m)^cells: +(\d+)$`),
	"remaining": regexp.MustCompile(`(?m)^remaining: +(\d+)$`),
}

func parseReport(t *testing.T, stderr string) tableReport {
	t.Helper()
	get := func(k string) string {
		m := reportRE[k].FindStringSubmatch(stderr)
		if m == nil {
			t.Fatalf("table request does not report %s on stderr:\n%s", k, stderr)
		}
		return m[1]
	}
	return tableReport{get("digest"), get("point"), get("as of"), get("audit"), get("cells"), get("remaining")}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestTableEndToEnd is issues 5 and 11 as their users meet them: an
// operator loads a census, registers a project and a researcher with an
// age recipient, and makes a publication point; the researcher requests a
// standard table of the catalogue at that point over HTTP in the clear
// and encrypted, decrypting with the real age CLI; an auditor's operator
// replays the releases from the audit log (at the point they name), and a
// shred makes the replay disagree and the point refuse new tables.
func TestTableEndToEnd(t *testing.T) {
	t.Parallel()
	needTools(t, "age", "age-keygen")
	dir := newVault(t)
	work := t.TempDir()

	mustCV(t, "gen", "--households", "300", "--data", dir)
	mustCV(t, "project", "add", "fert-2019", "--data", dir, "--title", "Fertility", "--purpose", "Household structure of Hồng Lĩnh",
		"--areas", "437", "--variables", "sex,age_group5,relationship", "--expires", "180d", "--budget", "100000")
	tok := addUser(t, dir, "alice", "researcher", "437", "--project", "fert-2019")
	r0 := mustCV(t, "release-point", "create", "2019-05-01", "--data", dir)
	if m := pointMadeRE.FindStringSubmatch(r0.stderr); m == nil || m[1] != "2019-05-01" || m[3] != "2" || m[4] != "2" {
		t.Fatalf("release-point create: want both communes at their new state:\n%s", r0)
	}

	key := filepath.Join(work, "key.txt")
	if out, err := exec.Command("age-keygen", "-o", key).CombinedOutput(); err != nil {
		t.Fatalf("age-keygen: %v\n%s", err, out)
	}
	pub, err := exec.Command("age-keygen", "-y", key).Output()
	if err != nil {
		t.Fatalf("age-keygen -y: %v", err)
	}
	recipient := strings.TrimSpace(string(pub))
	r := mustCV(t, "user", "set-recipient", "alice", recipient, "--data", dir)
	if !strings.Contains(r.stderr, "registered "+recipient[:20]+"…") {
		t.Errorf("set-recipient stderr: %q", r.stderr)
	}
	r = mustCV(t, "user", "show", "alice", "--data", dir)
	if !strings.Contains(r.stdout, "allow researcher at 437 for project fert-2019\n") || !strings.Contains(r.stdout, "  recipient "+recipient[:20]+"…\n") ||
		strings.Contains(r.stdout, recipient) {
		t.Errorf("user show alice: want the project grant and the recipient cut short:\n%s", r.stdout)
	}

	srv := startServer(t, dir)
	tokenFile := filepath.Join(work, "token")
	if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reqFile := filepath.Join(work, "req.json")
	// Household heads and other members by broad age group and sex, for
	// the town (363 planned households, the table's minimum is 300), at
	// the latest point.
	if err := os.WriteFile(reqFile, []byte(`{"project": "fert-2019", "purpose": "household heads by age and sex", "table": "population_head_age_sex", "area": "437"}`), 0o600); err != nil {
		t.Fatal(err)
	}

	// CSV in the clear, to stdout.
	r = mustCV(t, "table", "request", "--server", srv.base, "--token-file", tokenFile, "--csv", reqFile)
	csvRep := parseReport(t, r.stderr)
	if !strings.HasPrefix(r.stdout, "# censusvault.standard-table/v1 catalogue=1 id=population_head_age_sex project=fert-2019 area=437 point=2019-05-01 ") ||
		!strings.Contains(r.stdout, "\nhousehold_head,age_broad,sex,value,status\n") {
		t.Fatalf("table request --csv stdout is not the CSV table:\n%s", r.stdout)
	}
	if sha256Hex([]byte(r.stdout)) != csvRep.digest {
		t.Errorf("digest %s is not the SHA-256 of the table written", csvRep.digest)
	}
	if strings.Contains(r.stderr, tok) || strings.Contains(r.stdout, tok) {
		t.Errorf("the token was printed")
	}
	csvTable := r.stdout

	// Encrypted, the token from the environment, to a file; decrypted
	// with the real age CLI.
	encFile := filepath.Join(work, "table.age")
	r = cvEnv(t, []string{"CENSUSVAULT_TOKEN=" + tok}, "table", "request", "--server", srv.base, "--encrypt", "--csv", "--out", encFile, reqFile)
	if r.code != 0 {
		t.Fatalf("table request --encrypt:\n%s", r)
	}
	encRep := parseReport(t, r.stderr)
	if r.stdout != "" {
		t.Errorf("with --out, stdout got %q", r.stdout)
	}
	if fi, err := os.Stat(encFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("--out file: %v, want mode 0600", err)
	}
	ct, err := os.ReadFile(encFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(ct), "household_head,age_broad") {
		t.Errorf("the encrypted table holds the CSV in the clear")
	}
	plain, err := exec.Command("age", "-d", "-i", key, encFile).Output()
	if err != nil {
		t.Fatalf("age -d: %v", err)
	}
	if sha256Hex(plain) != encRep.digest {
		t.Errorf("SHA-256 of the decrypted table %s, digest printed %s", sha256Hex(plain), encRep.digest)
	}
	// Same request, same publication point: the same table.
	if string(plain) != csvTable || encRep.digest != csvRep.digest || encRep.asOf != csvRep.asOf || encRep.point != "2019-05-01" || csvRep.point != "2019-05-01" {
		t.Errorf("the encrypted release is not the same table as the clear one")
	}
	if encRep.audit == csvRep.audit || encRep.cells != csvRep.cells {
		t.Errorf("releases: audit %s and %s, cells %s and %s", csvRep.audit, encRep.audit, csvRep.cells, encRep.cells)
	}

	// Refusals: the vault's message, exit 1; usage errors exit 2.
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		says string
	}{
		{"custom table of an identifying field", nil, []string{"--token-file", tokenFile, "-"}, 1, `HTTP 403: dimension "head_name" is an identifying field`},
		{"no token", nil, []string{reqFile}, 2, "--token-file"},
		{"bad token", []string{"CENSUSVAULT_TOKEN=" + strings.Repeat("A", 43)}, []string{reqFile}, 1, "HTTP 401"},
		{"no server", nil, []string{"--server", "", "--token-file", tokenFile, reqFile}, 2, "--server"},
		{"missing request file", nil, []string{"--token-file", tokenFile, filepath.Join(work, "nope.json")}, 1, "nope.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"table", "request", "--server", srv.base}, tc.args...)
			cmd := exec.Command(binary, args...)
			cmd.Env = cleanEnv(tc.env...)
			cmd.Stdin = strings.NewReader(`{"project": "fert-2019", "purpose": "x", "rows": ["head_name"]}`)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(stderr.String(), tc.says) || stdout.Len() != 0 {
				t.Errorf("exit %d, want %d mentioning %q\nstdout: %q\nstderr: %s", code, tc.code, tc.says, stdout.String(), stderr.String())
			}
		})
	}
	srv.stop(t)

	// Replay of the clear release: the digest matches, and --out holds
	// the recomputed table, byte for byte.
	replayOut := filepath.Join(work, "replay.csv")
	r = mustCV(t, "table", "replay", "--data", dir, "--out", replayOut, csvRep.audit)
	want := "event " + csvRep.audit + ": project fert-2019 at publication point 2019-05-01 (deposit point " + csvRep.asOf + "): digest matches (" + csvRep.digest + ")\n"
	if r.stdout != want {
		t.Errorf("replay stdout %q, want %q", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "building the table cache: 300 households") {
		t.Errorf("replay shows no progress while the cache is built:\n%s", r.stderr)
	}
	if b, err := os.ReadFile(replayOut); err != nil || string(b) != csvTable {
		t.Errorf("replay --out does not hold the released table (%v)", err)
	}
	// The encrypted release replays to its plaintext's digest.
	if r := mustCV(t, "table", "replay", "--data", dir, encRep.audit); !strings.Contains(r.stdout, "digest matches ("+encRep.digest+")") {
		t.Errorf("replay of the encrypted release:\n%s", r)
	}
	// Not a table release, or no such event: a clear error, exit 2.
	if r := cv(t, "table", "replay", "--data", dir, "0"); r.code != 2 || !strings.Contains(r.stderr, "audit event 0 is not a released table") || r.stdout != "" {
		t.Errorf("replay of the init event:\n%s", r)
	}
	if r := cv(t, "table", "replay", "--data", dir, "999999"); r.code != 2 || !strings.Contains(r.stderr, "no audit event 999999") {
		t.Errorf("replay of a missing event:\n%s", r)
	}
	if r := cv(t, "table", "replay", "--data", dir, "-3"); r.code != 2 {
		t.Errorf("replay of a negative index:\n%s", r)
	}

	// Shredding a commune's analytic keys changes the data the point
	// froze: the replay no longer matches, and says so with exit 1.
	mustCV(t, "keys", "shred", "--class", "analytic", "--area", "18073", "--confirm", "18073", "--data", dir)
	r = cv(t, "table", "replay", "--data", dir, csvRep.audit)
	if r.code != 1 || !strings.Contains(r.stderr, "DIGEST MISMATCH: logged "+csvRep.digest+" recomputed sha256:") || strings.Contains(r.stdout, "digest matches") {
		t.Errorf("replay after a shred:\n%s", r)
	}
	if !strings.Contains(r.stderr, "could not be opened") {
		t.Errorf("replay after a shred does not say submissions could not be opened:\n%s", r.stderr)
	}
	// A new table at the point would no longer be what the point froze
	// (18073's households can no longer be read): refused, nothing
	// released, until a later point is made.
	srv = startServer(t, dir)
	r = cv(t, "table", "request", "--server", srv.base, "--token-file", tokenFile, reqFile)
	if r.code != 1 || !strings.Contains(r.stderr, "HTTP 409") || !strings.Contains(r.stderr, "publication point 2019-05-01 no longer holds what it froze") || r.stdout != "" {
		t.Errorf("table request at the point after a shred:\n%s", r)
	}
	srv.stop(t)
	// The recipient can be removed again.
	if r := mustCV(t, "user", "set-recipient", "--clear", "alice", "--data", dir); !strings.Contains(r.stderr, "removed the recipient of alice") {
		t.Errorf("set-recipient --clear: %q", r.stderr)
	}
	if r := mustCV(t, "user", "show", "alice", "--data", dir); !strings.Contains(r.stdout, "recipient none") {
		t.Errorf("user show after --clear:\n%s", r.stdout)
	}
	// Every replay was audited, and the chain still verifies.
	mustCV(t, "audit", "verify", "--data", dir)
}
