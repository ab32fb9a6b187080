package main_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAreasApply: `areas apply FILE` on the vault host and over HTTP. A
// bad document is refused naming the file and the change, before
// anything is opened; a good one prints its SHA-256 and what it did; over
// HTTP only an administrator revises, and a revision the vault refuses
// against its tree names the change too.
func TestAreasApply(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	work := t.TempDir()
	write := func(name, doc string) string {
		p := filepath.Join(work, name)
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	bad := write("bad.json", `{"note": "n", "changes": [{"op": "plan", "code": "18070-02", "planned": 100},
	  {"op": "split", "code": "18070-01", "into": [
	    {"code": "18070-11", "name": "a", "planned": 60, "households": "1-150"},
	    {"code": "18070-12", "name": "b", "planned": 60, "households": "100-"}]}]}`)
	r := cv(t, "areas", "apply", bad, "--data", dir)
	if r.code != 1 || r.stdout != "" ||
		!strings.Contains(r.stderr, "censusvault areas: "+bad+": area revision: changes[1] (split): into[1]: households 100- overlap those of 18070-11 (1-150)") {
		t.Errorf("a bad document:\n%s", r)
	}
	if r := cv(t, "areas", "apply", filepath.Join(work, "missing.json"), "--data", dir); r.code != 2 || !strings.Contains(r.stderr, "FILE") {
		t.Errorf("a missing file:\n%s", r)
	}
	if r := cv(t, "areas", "apply", "--data", dir); r.code != 2 || !strings.Contains(r.stderr, "expected exactly one FILE") {
		t.Errorf("no file:\n%s", r)
	}
	if r := cv(t, "areas", "apply", "--help"); r.code != 0 || !strings.Contains(r.stderr, "usage: censusvault areas apply FILE") || !strings.Contains(r.stderr, "--data") {
		t.Errorf("help:\n%s", r)
	}

	// On the host: the split holds at once.
	split := `{"note": "two villages", "changes": [{"op": "split", "code": "18070-01", "into": [
	    {"code": "18070-11", "name": "Địa bàn 01 bắc", "planned": 60, "households": "1-150"},
	    {"code": "18070-12", "name": "Địa bàn 01 nam", "planned": 60, "households": "151-"}]}]}`
	good := write("split.json", split)
	sum := sha256.Sum256([]byte(split))
	r = mustCV(t, "areas", "apply", good, "--data", dir)
	if r.stdout != hex.EncodeToString(sum[:])+"\n" || !strings.Contains(r.stderr, "revision 1 of the area tree is in force") ||
		!strings.Contains(r.stderr, "0 added, 0 renamed, 0 re-planned, 1 split, 0 merged") {
		t.Errorf("areas apply on the host:\n%s", r)
	}
	// The same again: the vault refuses it against its tree.
	r = cv(t, "areas", "apply", good, "--data", dir)
	if r.code != 1 || !strings.Contains(r.stderr, good+": invalid: area revision: changes[0] (split): EA 18070-01 was retired by a split or merge") {
		t.Errorf("the split again:\n%s", r)
	}

	// Over HTTP: an administrator; a steering committee is refused.
	boss := writeToken(t, work, "boss", addUser(t, dir, "boss", "admin", "VN"))
	steer := writeToken(t, work, "steer", addUser(t, dir, "steer", "steering", "VN"))
	srv := startServer(t, dir)
	rename := write("rename.json", `{"note": "new name", "changes": [{"op": "rename", "code": "18073", "name": "Phường Nam Hồng mới"}]}`)
	r = cv(t, "areas", "apply", rename, "--server", srv.base, "--token-file", steer)
	if r.code != 1 || !strings.Contains(r.stderr, "HTTP 403") {
		t.Errorf("a steering committee revises:\n%s", r)
	}
	r = cv(t, "areas", "apply", good, "--server", srv.base, "--token-file", boss)
	if r.code != 1 || !strings.Contains(r.stderr, "HTTP 400") || !strings.Contains(r.stderr, "changes[0] (split): EA 18070-01 was retired") {
		t.Errorf("the split again over HTTP:\n%s", r)
	}
	r = mustCV(t, "areas", "apply", rename, "--server", srv.base, "--token-file", boss)
	if !strings.Contains(r.stderr, "revision 2 of the area tree is in force") || !strings.Contains(r.stderr, "1 renamed") {
		t.Errorf("areas apply over HTTP:\n%s", r)
	}
	srv.stop(t)
	if r := mustCV(t, "audit", "verify", "--data", dir); !strings.Contains(r.stdout, "audit chain OK") {
		t.Errorf("audit verify after the revisions:\n%s", r)
	}
}
