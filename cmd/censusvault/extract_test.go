package main_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/audit"
)

// TestExtractEndToEnd is issue 13's extract procedure as the README tells
// it: the operator registers the processing centre's environment (its
// post-quantum age recipient, from the real age-keygen) on the vault
// host, a processor proposes an extract over HTTP, the proposer cannot
// approve it, an approver does, and the processor downloads it to a file
// that holds ciphertext only; the real age CLI decrypts it with the
// environment's key, and its SHA-256 and rows are those printed and
// logged. Refusals exit 1 with the vault's answer and leave no file.
func TestExtractEndToEnd(t *testing.T) {
	t.Parallel()
	needTools(t, "age", "age-keygen")
	dir := newVault(t)
	work := t.TempDir()
	mustCV(t, "gen", "--households", "120", "--data", dir)
	toks := map[string]string{
		"pat":   addUser(t, dir, "pat", "processor", "437"),
		"ann":   addUser(t, dir, "ann", "approver", "VN"),
		"admin": addUser(t, dir, "admin", "admin", "VN"),
	}
	tokenFile := map[string]string{}
	for u, tok := range toks {
		tokenFile[u] = filepath.Join(work, u+".token")
		if err := os.WriteFile(tokenFile[u], []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	key := filepath.Join(work, "env.key")
	if out, err := exec.Command("age-keygen", "-pq", "-o", key).CombinedOutput(); err != nil {
		t.Fatalf("age-keygen -pq: %v\n%s", err, out)
	}
	pub, err := exec.Command("age-keygen", "-y", key).Output()
	if err != nil {
		t.Fatalf("age-keygen -y: %v", err)
	}
	recipient := strings.TrimSpace(string(pub))

	// The operator on the vault host registers the environments, and is
	// shown the recipient's fingerprint, which the centre checks.
	fp := sha256.Sum256([]byte(recipient))
	fingerprint := hex.EncodeToString(fp[:])
	r := mustCV(t, "extract", "env", "add", "centre", "--recipient", recipient, "--data", dir)
	if !strings.Contains(r.stderr, "registered environment centre (classes analytic,operational)") || !strings.Contains(r.stderr, "sha256 "+fingerprint) {
		t.Errorf("env add: %s", r)
	}
	if r := mustCV(t, "extract", "env", "list", "--data", dir); !strings.Contains(r.stdout, "centre  in_use  analytic,operational  cli:") || !strings.Contains(r.stdout, fingerprint) {
		t.Errorf("env list: %s", r)
	}
	mustCV(t, "extract", "env", "add", "centre2", "--recipient", recipient, "--classes", "analytic", "--data", dir)

	srv := startServer(t, dir)
	remote := func(user string, args ...string) result {
		return cv(t, append(args, "--server", srv.base, "--token-file", tokenFile[user])...)
	}
	// Over HTTP nobody registers one: the command says where to run it.
	for _, u := range []string{"admin", "pat"} {
		if r := remote(u, "extract", "env", "add", "mine", "--recipient", recipient); r.code != 2 || !strings.Contains(r.stderr, "on the vault host only") ||
			!strings.Contains(r.stderr, "--data DIR") {
			t.Errorf("%s registers an environment over HTTP: %s", u, r)
		}
	}
	if r := remote("pat", "extract", "env", "list"); r.code != 0 || !strings.Contains(r.stdout, "centre2") {
		t.Errorf("a processor lists the environments: %s", r)
	}

	r = remote("pat", "extract", "propose", "--env", "centre", "--areas", "437", "--classes", "analytic,operational",
		"--purpose", "editing and coding of the Hồng Lĩnh households")
	if r.code != 0 || r.stdout != "1\n" || !strings.Contains(r.stderr, "censusvault extract approve 1") {
		t.Fatalf("propose: %s", r)
	}
	out := filepath.Join(work, "extract-1.jsonl.age")
	if r := remote("pat", "extract", "download", "1", "--out", out); r.code != 1 || !strings.Contains(r.stderr, "HTTP 409") {
		t.Errorf("download before the approval: %s", r)
	}
	if r := remote("pat", "extract", "approve", "1"); r.code != 1 || !strings.Contains(r.stderr, "HTTP 403") {
		t.Errorf("the proposer approves: %s", r)
	}
	if r := remote("admin", "extract", "approve", "1"); r.code != 1 || !strings.Contains(r.stderr, "HTTP 403") {
		t.Errorf("the admin approves: %s", r)
	}
	if r := remote("ann", "extract", "approve", "1"); r.code != 0 || !strings.Contains(r.stderr, "approved extract 1, proposed by pat") ||
		!strings.Contains(r.stderr, "sha256 "+fingerprint) || !strings.Contains(r.stderr, "recipient "+recipient[:20]+"…") {
		t.Fatalf("approve: %s", r)
	}
	if r := remote("ann", "extract", "download", "1", "--out", out); r.code != 1 || !strings.Contains(r.stderr, "HTTP 403") {
		t.Errorf("the approver downloads: %s", r)
	}
	if ents, _ := os.ReadDir(work); len(ents) != 4 {
		t.Errorf("refused downloads left files: %v", ents)
	}
	if r := remote("ann", "extract", "list"); r.code != 0 || !strings.Contains(r.stdout, "1    approved  centre") || !strings.Contains(r.stdout, fingerprint) {
		t.Errorf("list: %s", r)
	}

	r = remote("pat", "extract", "download", "1", "--out", out)
	if r.code != 0 {
		t.Fatalf("download: %s", r)
	}
	var digest, rows string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "sha256":
			digest = v
		case "rows":
			rows = v
		}
	}
	ct, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 || !bytes.HasPrefix(ct, []byte("age-encryption.org/v1\n")) || bytes.Contains(ct, []byte("census2019")) {
		t.Errorf("the file is not age ciphertext alone, mode 0600")
	}
	plain, err := exec.Command("age", "-d", "-i", key, out).Output()
	if err != nil {
		t.Fatalf("age -d: %v", err)
	}
	sum := sha256.Sum256(plain)
	if hex.EncodeToString(sum[:]) != digest || rows != "120" || strings.Count(string(plain), "\n") != 120 ||
		!strings.Contains(r.stderr, "age -d -i ENV-KEY "+out+" | sha256sum") {
		t.Errorf("printed sha256 %s, %s rows; the decrypted file has %x and %d lines:\n%s", digest, rows, sum, strings.Count(string(plain), "\n"), r.stderr)
	}
	// The audit log holds the same digest.
	rowsDB, err := openDB(t, dir).Query(`SELECT event FROM audit_events ORDER BY idx`)
	if err != nil {
		t.Fatal(err)
	}
	logged := false
	for rowsDB.Next() {
		var raw []byte
		if err := rowsDB.Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if e, err := audit.Decode(raw); err == nil && e.Action == "extract.download" && e.ReleaseDigest == "sha256:"+digest &&
			strings.HasPrefix(e.Reason, "120 rows, 120 households;") {
			logged = true
		}
	}
	rowsDB.Close()
	if !logged {
		t.Error("no extract.download event holds the printed digest")
	}
	if r := remote("pat", "extract", "download", "1", "--out", out); r.code != 2 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("download over an existing file: %s", r)
	}
	if r := mustCV(t, "extract", "list", "--data", dir); !strings.Contains(r.stdout, "approved") {
		t.Errorf("list on the host: %s", r)
	}

	// CSV: a row per person, after a header.
	r = remote("pat", "extract", "propose", "--env", "centre2", "--areas", "18070", "--classes", "analytic", "--format", "csv", "--purpose", "coding")
	if r.code != 0 || r.stdout != "2\n" {
		t.Fatalf("propose csv: %s", r)
	}
	if r := remote("ann", "extract", "approve", "2"); r.code != 0 {
		t.Fatalf("approve csv: %s", r)
	}
	outCSV := filepath.Join(work, "extract-2.csv.age")
	if r := remote("pat", "extract", "download", "2", "--out", outCSV); r.code != 0 || !strings.Contains(r.stderr, "plaintext: csv") {
		t.Fatalf("download csv: %s", r)
	}
	plain, err = exec.Command("age", "-d", "-i", key, outCSV).Output()
	if err != nil {
		t.Fatalf("age -d: %v", err)
	}
	if !strings.HasPrefix(string(plain), "id,ea,household_no,form,form_version,dwelling_type,") || strings.Contains(string(plain), "visit_count") {
		t.Errorf("CSV header: %.120s", plain)
	}
}

// TestExtractUsage: the extract commands' help exits 0 on stderr, and a
// command missing what it needs exits 2 naming it, before any request.
func TestExtractUsage(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"extract", "--help"}, "usage: censusvault extract env|propose|approve|list|download"},
		{[]string{"extract", "env", "--help"}, "usage: censusvault extract env add|list|retire"},
		{[]string{"extract", "env", "add", "--help"}, "usage: censusvault extract env add NAME --recipient age1…"},
		{[]string{"extract", "propose", "--help"}, "usage: censusvault extract propose --env NAME --areas CODE"},
		{[]string{"extract", "download", "--help"}, "age -d -i ENV-KEY FILE | sha256sum"},
		{[]string{"extract", "list", "--help"}, "--data"},
	} {
		if r := cv(t, c.args...); r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, c.says) {
			t.Errorf("censusvault %s: want exit 0 and %q on stderr:\n%s", strings.Join(c.args, " "), c.says, r)
		}
	}
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"extract"}, "usage"},
		{[]string{"extract", "frobnicate"}, "frobnicate"},
		{[]string{"extract", "env"}, "usage"},
		{[]string{"extract", "env", "add", "--recipient", "age1x"}, "NAME"},
		{[]string{"extract", "env", "add", "centre"}, "--recipient"},
		{[]string{"extract", "propose", "--server", "http://127.0.0.1:1", "--areas", "437", "--classes", "analytic", "--purpose", "x"}, "--env"},
		{[]string{"extract", "propose", "--env", "c", "--areas", "437", "--classes", "analytic", "--purpose", "x"}, "--server"},
		{[]string{"extract", "approve", "--server", "http://127.0.0.1:1"}, "SEQ"},
		{[]string{"extract", "approve", "0", "--server", "http://127.0.0.1:1"}, "SEQ"},
		{[]string{"extract", "download", "1", "--server", "http://127.0.0.1:1"}, "--out"},
	} {
		if r := cv(t, c.args...); r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, c.says) {
			t.Errorf("censusvault %s: want exit 2 naming %q:\n%s", strings.Join(c.args, " "), c.says, r)
		}
	}
}
