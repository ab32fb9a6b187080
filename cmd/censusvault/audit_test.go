package main_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker/client"
	"github.com/censusvault/censusvault/broker/testdeadline"
	"golang.org/x/mod/sumdb/note"
)

// ---- A synthetic log, signed with a key of the test's own ----

// synthLog is a well-formed log of n events signed by a fresh key: `audit
// verify EXPORT` checks any vault's export, so it can be tested on logs of
// any size without building a vault.
type synthLog struct {
	t      *testing.T
	origin string
	vkey   string
	signer note.Signer
	recs   []audit.Record
}

func newSynthLog(t *testing.T, n int) *synthLog {
	t.Helper()
	const origin = "synth.example/audit"
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	s := &synthLog{t: t, origin: origin, vkey: vkey, signer: signer}
	prev := audit.Genesis
	at := time.Date(2019, 4, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		r, err := audit.Seal(prev, &audit.Event{Index: int64(i), Time: at.Add(time.Duration(i) * time.Second), Actor: "user:e1",
			Roles: []string{"enumerator"}, Action: "progress.read", Area: "18070-01", Resources: []string{}, Decision: "allow", Outcome: "ok"})
		if err != nil {
			t.Fatal(err)
		}
		s.recs = append(s.recs, r)
		prev = r.ChainHash
	}
	return s
}

func (s *synthLog) root(size int) [32]byte {
	var tb audit.TreeBuilder
	for _, r := range s.recs[:size] {
		tb.Add(r.LeafHash)
	}
	return tb.Root()
}

// checkpoint signs a checkpoint of size with root.
func (s *synthLog) checkpoint(size int, root [32]byte) []byte {
	s.t.Helper()
	b, err := note.Sign(&note.Note{Text: audit.Checkpoint{Origin: s.origin, Size: int64(size), Root: root}.Body()}, s.signer)
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

// export is the export of the first size events.
func (s *synthLog) export(size int) []byte {
	s.t.Helper()
	var buf bytes.Buffer
	w, err := audit.NewExportWriter(&buf, s.checkpoint(size, s.root(size)))
	if err != nil {
		s.t.Fatal(err)
	}
	for _, r := range s.recs[:size] {
		if err := w.Event(r); err != nil {
			s.t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		s.t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// wantExit runs the binary and checks its exit status and that stderr
// holds every one of want.
func wantExit(t *testing.T, code int, want []string, args ...string) result {
	t.Helper()
	r := cv(t, args...)
	if r.code != code {
		t.Errorf("censusvault %s: want exit %d, got\n%s", strings.Join(args, " "), code, r)
		return r
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("censusvault %s: stderr does not say %q:\n%s", strings.Join(args, " "), w, r.stderr)
		}
	}
	// "OK" as a word: a proof's base64 on stdout may hold the letters.
	if code != 0 && saysOK.MatchString(r.stdout) {
		t.Errorf("censusvault %s exits %d but says OK: %q", strings.Join(args, " "), code, r.stdout)
	}
	return r
}

// saysOK matches OK as a word of its own (base64 has no spaces or colons).
var saysOK = regexp.MustCompile(`(^|\s)OK(:|\s|$)`)

func TestAuditVerifyExport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newSynthLog(t, 60)
	const n = 40
	exp := writeFile(t, filepath.Join(dir, "export.jsonl"), s.export(n))
	cp := writeFile(t, filepath.Join(dir, "cp"), s.checkpoint(n, s.root(n)))
	old := writeFile(t, filepath.Join(dir, "old"), s.checkpoint(25, s.root(25)))
	keyFile := writeFile(t, filepath.Join(dir, "key"), []byte(s.vkey+"\n"))
	rootB64 := func(size int) string { r := s.root(size); return b64(r[:]) }

	t.Run("intact", func(t *testing.T) {
		okLine := fmt.Sprintf("audit log OK: %d leaves (%d events, 0 withheld), root %s, consistent with 1 earlier checkpoints\n", n, n, rootB64(n))
		// The key as a file, and the key itself.
		for _, key := range []string{keyFile, s.vkey} {
			r := mustCV(t, "audit", "verify", exp, "--key", key, "--checkpoint", cp, "--previous", old)
			if r.stdout != okLine {
				t.Errorf("stdout %q, want %q", r.stdout, okLine)
			}
		}
		// Without a trusted checkpoint: the export's own, and a note
		// saying so.
		r := mustCV(t, "audit", "verify", exp, "--key", keyFile)
		if !strings.HasPrefix(r.stdout, "audit log OK: 40 leaves") || !strings.Contains(r.stderr, "no --checkpoint") {
			t.Errorf("without --checkpoint:\n%s", r)
		}
	})

	t.Run("broken: exit 1 naming the event", func(t *testing.T) {
		lines := strings.SplitAfter(string(s.export(n)), "\n")
		edit := func(name string, f func(l []string) []string) string {
			l := f(append([]string(nil), lines...))
			return writeFile(t, filepath.Join(dir, name), []byte(strings.Join(l, "")))
		}
		forgedOld := writeFile(t, filepath.Join(dir, "forged-old"), s.checkpoint(25, s.root(24)))
		longer := writeFile(t, filepath.Join(dir, "longer"), s.checkpoint(50, s.root(50)))
		for _, tc := range []struct {
			name string
			args []string
			want []string
		}{
			{"a byte of an event changed", []string{edit("byte", func(l []string) []string {
				l[1+7] = strings.Replace(l[1+7], `"actor":"user:e1"`, `"actor":"user:e2"`, 1)
				return l
			}), "--checkpoint", cp}, []string{"BROKEN", "audit event 7", "leaf hash mismatch"}},
			{"an event deleted", []string{edit("deleted", func(l []string) []string { return append(l[:1+12], l[1+13:]...) }), "--checkpoint", cp},
				[]string{"BROKEN", "audit event 12"}},
			{"two events swapped", []string{edit("swapped", func(l []string) []string { l[1+3], l[1+4] = l[1+4], l[1+3]; return l }), "--checkpoint", cp},
				[]string{"BROKEN", "audit event 3"}},
			{"cut short", []string{edit("cut", func(l []string) []string { return l[:1+30] }), "--checkpoint", cp},
				[]string{"BROKEN", "audit event 30", "truncated"}},
			{"cut mid-line", []string{edit("cut-line", func(l []string) []string { l[1+30] = l[1+30][:20]; return l[:1+31] }), "--checkpoint", cp},
				[]string{"BROKEN", "audit event 30"}},
			{"rewritten under an older checkpoint", []string{exp, "--previous", forgedOld}, []string{"BROKEN", "fork"}},
			{"shorter than an older checkpoint", []string{exp, "--previous", longer}, []string{"BROKEN", "rolled back"}},
			{"another tree than the trusted one", []string{exp, "--checkpoint", old}, []string{"--checkpoint tree", "--previous"}},
			{"signed by another key", []string{writeFile(t, filepath.Join(dir, "other"), newSynthLog(t, 3).export(3))}, []string{"does NOT verify", "signature"}},
			{"not an export", []string{cp}, []string{"does NOT verify"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantExit(t, 1, tc.want, append([]string{"audit", "verify", "--key", keyFile}, tc.args...)...)
			})
		}
	})

	t.Run("unreadable or unusable input: exit 2", func(t *testing.T) {
		other := newSynthLog(t, 3)
		otherCP := writeFile(t, filepath.Join(dir, "other-cp"), other.checkpoint(3, other.root(3)))
		for _, tc := range []struct {
			name string
			args []string
			want string
		}{
			{"no such export", []string{filepath.Join(dir, "nope.jsonl"), "--key", keyFile}, "nope.jsonl"},
			{"a directory", []string{dir, "--key", keyFile}, "could not read"},
			{"no key", []string{exp}, "--key is required"},
			{"not a key", []string{exp, "--key", "not-a-key"}, "--key not-a-key"},
			{"a file without a key", []string{exp, "--key", cp}, "does not hold an audit verifier key"},
			{"no such checkpoint file", []string{exp, "--key", keyFile, "--checkpoint", filepath.Join(dir, "nope")}, "--checkpoint"},
			{"a checkpoint of another vault", []string{exp, "--key", keyFile, "--checkpoint", otherCP}, "does not verify with the key given"},
			{"a previous checkpoint of another vault", []string{exp, "--key", keyFile, "--previous", otherCP}, "--previous"},
			{"two exports", []string{exp, exp, "--key", keyFile}, "at most one EXPORT"},
			{"--checkpoint without an export", []string{"--data", dir, "--checkpoint", cp}, "EXPORT"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantExit(t, 2, []string{tc.want}, append([]string{"audit", "verify"}, tc.args...)...)
			})
		}
	})

	t.Run("a large log shows progress", func(t *testing.T) {
		const big = 70_000
		s := newSynthLog(t, big)
		exp := writeFile(t, filepath.Join(t.TempDir(), "big.jsonl"), s.export(big))
		r := mustCV(t, "audit", "verify", exp, "--key", s.vkey)
		if !strings.Contains(r.stderr, "verifying the export: 65536 lines…") || !strings.Contains(r.stderr, fmt.Sprintf("%d lines", big+1)) {
			t.Errorf("no progress on stderr:\n%s", r.stderr)
		}
		if !strings.HasPrefix(r.stdout, fmt.Sprintf("audit log OK: %d leaves (%d events, 0 withheld)", big, big)) {
			t.Errorf("stdout %q", r.stdout)
		}
		// A small one does not.
		if r := mustCV(t, "audit", "verify", filepath.Join(dir, "export.jsonl"), "--key", keyFile); strings.Contains(r.stderr, "lines…") {
			t.Errorf("progress for a small log:\n%s", r.stderr)
		}
	})
}

// ---- A real vault over HTTP: export, checkpoint, prune, receipt proof ----

// cvVault is a vault under test with a serve process of its own, and the
// files an auditor and an enumerator keep outside it.
type cvVault struct {
	dir      string   // data directory
	store    []string // extra flags naming the store
	witness  string   // a directory outside the vault
	auditor  string   // token file
	enum     string   // token file of e1, enumerator in 18070-01
	key      string   // audit verifier key file
	deposits int      // households deposited so far
}

func newCVVault(t *testing.T, dir string, store ...string) *cvVault {
	t.Helper()
	v := &cvVault{dir: dir, store: store, witness: t.TempDir()}
	v.auditor = writeFile(t, filepath.Join(v.witness, "auditor.token"), []byte(addUser(t, dir, "aud", "auditor", "VN", store...)+"\n"))
	v.enum = writeFile(t, filepath.Join(v.witness, "e1.token"), []byte(addUser(t, dir, "e1", "enumerator", "18070-01", store...)+"\n"))
	return v
}

func (v *cvVault) path(name string) string { return filepath.Join(v.witness, name) }

// serve starts the vault's server, signing checkpoints as soon as events
// arrive.
func (v *cvVault) serve(t *testing.T) *server {
	t.Helper()
	s := startServer(t, v.dir, append([]string{"--checkpoint-every", "100ms", "--checkpoint-events", "1"}, v.store...)...)
	if v.key == "" {
		st, body := s.do(t, http.MethodGet, "/v1/keys/audit", "", nil)
		if st != http.StatusOK {
			t.Fatalf("GET /v1/keys/audit: %d", st)
		}
		v.key = writeFile(t, v.path("audit.key"), []byte(body))
	}
	return s
}

func (v *cvVault) token(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// deposit deposits k new households as e1 and returns the last receipt.
func (v *cvVault) deposit(t *testing.T, s *server, k int) receipt {
	t.Helper()
	rcpt := s.recipient(t)
	hc := &http.Client{Timeout: time.Until(testdeadline.Of(t))}
	var last receipt
	for range k {
		v.deposits++
		a, err := postDeposit(hc, s.base, v.token(t, v.enum), encrypt(t, rcpt, household(t, 100+v.deposits)))
		if err != nil || a.status != http.StatusCreated {
			t.Fatalf("deposit: %d %v", a.status, err)
		}
		last = a.receipt
	}
	return last
}

// signedSize is the size of a signed checkpoint note (unverified).
func signedSize(t *testing.T, b []byte) int64 {
	t.Helper()
	body, _, ok := strings.Cut(string(b), "\n\n")
	if !ok {
		t.Fatalf("not a signed note: %q", b)
	}
	cp, err := audit.ParseCheckpoint(body + "\n")
	if err != nil {
		t.Fatal(err)
	}
	return cp.Size
}

// waitCheckpoint waits until the latest checkpoint covers size events
// exactly.
func waitCheckpoint(t *testing.T, s *server, size int64) {
	t.Helper()
	deadline := testdeadline.Of(t)
	for {
		st, body := s.do(t, http.MethodGet, "/v1/audit/checkpoint", "", nil)
		if st != http.StatusOK {
			t.Fatalf("GET /v1/audit/checkpoint: %d %s", st, body)
		}
		got := signedSize(t, []byte(body))
		if got == size {
			return
		}
		if got > size || time.Now().After(deadline) {
			t.Fatalf("the latest checkpoint has size %d, want %d", got, size)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAuditCommands(t *testing.T) {
	t.Parallel()
	v := newCVVault(t, newVault(t))
	s := v.serve(t)
	base := s.base
	rc := v.deposit(t, s, 3)
	waitCheckpoint(t, s, rc.AuditIndex+1)

	// A witness keeps the checkpoint; an auditor the export.
	cp1 := v.path("cp1")
	r := mustCV(t, "audit", "checkpoint", "--server", base, "--out", cp1, "--key", v.key)
	if !regexp.MustCompile(`checkpoint of \S+/audit: \d+ events, root \S+ \(signature verified\); written to `).MatchString(r.stderr) || r.stdout != "" {
		t.Errorf("audit checkpoint:\n%s", r)
	}
	size1 := signedSize(t, readFile(t, cp1))
	if size1 != rc.AuditIndex+1 {
		t.Errorf("the checkpoint fetched has size %d, want %d", size1, rc.AuditIndex+1)
	}
	// To standard output, unverified, works too.
	if r := mustCV(t, "audit", "checkpoint", "--server", base); signedSize(t, []byte(r.stdout)) < size1 {
		t.Errorf("audit checkpoint to stdout: %q", r.stdout)
	}
	exp1 := v.path("export1.jsonl")
	r = mustCV(t, "audit", "export", "--server", base, "--token-file", v.auditor, "--size", fmt.Sprint(size1), "--out", exp1)
	if !strings.Contains(r.stderr, fmt.Sprintf("as of its checkpoint of size %d", size1)) {
		t.Errorf("audit export:\n%s", r)
	}
	r = mustCV(t, "audit", "verify", exp1, "--key", v.key, "--checkpoint", cp1)
	if !strings.HasPrefix(r.stdout, fmt.Sprintf("audit log OK: %d leaves (%d events, 0 withheld)", size1, size1)) {
		t.Errorf("verify the export: %q", r.stdout)
	}
	if fi, err := os.Stat(exp1); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("export file mode: %v %v", fi.Mode(), err)
	}

	t.Run("export refusals", func(t *testing.T) {
		if r := cv(t, "audit", "export", "--server", base, "--token-file", v.enum, "--out", v.path("denied.jsonl")); r.code == 0 || !strings.Contains(r.stderr, "403") {
			t.Errorf("an enumerator exports:\n%s", r)
		}
		if r := cv(t, "audit", "export", "--server", base, "--token-file", v.auditor, "--size", "999999", "--out", v.path("nosize.jsonl")); r.code == 0 || !strings.Contains(r.stderr, "no checkpoint of size 999999") {
			t.Errorf("export of a size never signed:\n%s", r)
		}
		for _, f := range []string{"denied.jsonl", "nosize.jsonl", "denied.jsonl.partial"} {
			if _, err := os.Stat(v.path(f)); err == nil {
				t.Errorf("a failed export left %s", f)
			}
		}
	})

	t.Run("receipt proof", func(t *testing.T) {
		last := v.deposit(t, s, 1)
		id := submissionID(100 + v.deposits)
		_, rkey := s.do(t, http.MethodGet, "/v1/keys/receipt", "", nil)
		rkeyFile := writeFile(t, v.path("receipt.key"), []byte(rkey))
		for _, extra := range [][]string{nil, {"--key", v.key, "--receipt-key", rkeyFile}} {
			args := append([]string{"receipt", "proof", "--server", base, "--token-file", v.enum, id}, extra...)
			r := mustCV(t, args...)
			var p client.ReceiptProof
			if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
				t.Fatalf("stdout is not the proof JSON: %v\n%s", err, r.stdout)
			}
			if p.Index != last.AuditIndex {
				t.Errorf("proof of index %d, the receipt says %d", p.Index, last.AuditIndex)
			}
			want := regexp.MustCompile(fmt.Sprintf(`deposit %s is in the audit log at index %d \(checkpoint size (\d+)\)`, id, last.AuditIndex))
			if !want.MatchString(r.stderr) {
				t.Errorf("stderr does not state the inclusion:\n%s", r.stderr)
			}
			if (extra == nil) != strings.Contains(r.stderr, "fetched from the server") {
				t.Errorf("the note on where the keys came from is wrong:\n%s", r.stderr)
			}
		}
		// Checked against another vault's keys: exit 1.
		other := newSynthLog(t, 1)
		wantExit(t, 1, []string{"the proof does NOT verify"}, "receipt", "proof", "--server", base, "--token-file", v.enum, "--key", other.vkey, id)
		wantExit(t, 1, []string{"receipt's signature does NOT verify"}, "receipt", "proof", "--server", base, "--token-file", v.enum, "--receipt-key", other.vkey, id)
		// Not one's own deposit, or no such deposit: exit 2.
		wantExit(t, 2, []string{"could not get the proof", "404"}, "receipt", "proof", "--server", base, "--token-file", v.auditor, id)
		wantExit(t, 2, []string{"expected exactly one submission ID"}, "receipt", "proof", "--server", base, "--token-file", v.enum)
	})

	t.Run("prune", func(t *testing.T) {
		// Without --confirm, or with another value: it says what it
		// would do and does nothing.
		for _, args := range [][]string{
			{"audit", "prune", "--before-index", "4", "--data", v.dir},
			{"audit", "prune", "--before-index", "4", "--confirm", "5", "--data", v.dir},
			{"audit", "prune", "--before", "2100-01-01", "--data", v.dir},
		} {
			r := wantExit(t, 2, []string{"would remove", "--confirm"}, args...)
			if r.stdout != "" {
				t.Errorf("stdout %q", r.stdout)
			}
		}
		r := mustCV(t, "audit", "verify", "--data", v.dir, "--key", v.key)
		if !strings.Contains(r.stdout, " 0 pruned events") {
			t.Fatalf("something was pruned without confirmation:\n%s", r.stdout)
		}
		wantExit(t, 2, []string{"exactly one of --before"}, "audit", "prune", "--data", v.dir)
		wantExit(t, 2, []string{"exactly one of --before"}, "audit", "prune", "--before", "2019-01-01", "--before-index", "3", "--data", v.dir)
		wantExit(t, 2, []string{"--before \"yesterday\""}, "audit", "prune", "--before", "yesterday", "--data", v.dir)
		wantExit(t, 2, []string{"--before-index"}, "audit", "prune", "--before-index", "-1", "--data", v.dir)
		// Nothing before a date in the past.
		if r := mustCV(t, "audit", "prune", "--before", "2000-01-01", "--data", v.dir); !strings.Contains(r.stderr, "nothing to prune") {
			t.Errorf("prune before 2000:\n%s", r)
		}

		// Confirmed, while the server runs.
		r = mustCV(t, "audit", "prune", "--before-index", "4", "--confirm", "4", "--data", v.dir)
		if !strings.HasPrefix(r.stdout, "pruned 4 audit event bodies (the events before index 4, --before-index 4)") {
			t.Errorf("prune: %q", r.stdout)
		}
		r = mustCV(t, "audit", "verify", "--data", v.dir, "--key", v.key)
		if !regexp.MustCompile(`\d+ signed checkpoints \(roots and signatures by \S+ checked\); 4 pruned events`).MatchString(r.stdout) {
			t.Errorf("verify after prune: %q", r.stdout)
		}
		// A fresh export withholds them, and extends what the witness
		// kept before.
		exp := v.path("after-prune.jsonl")
		mustCV(t, "audit", "export", "--server", base, "--token-file", v.auditor, "--out", exp)
		r = mustCV(t, "audit", "verify", exp, "--key", v.key, "--previous", cp1)
		if !regexp.MustCompile(`^audit log OK: \d+ leaves \(\d+ events, 4 withheld\), root \S+, consistent with 1 earlier checkpoints`).MatchString(r.stdout) {
			t.Errorf("export after prune: %q", r.stdout)
		}
		// The export from before the prune still verifies: pruning
		// changes no hash.
		mustCV(t, "audit", "verify", exp1, "--key", v.key, "--checkpoint", cp1)
		// The pruning is itself an event.
		st, body := s.do(t, http.MethodGet, "/v1/audit/events?action=audit.prune", v.token(t, v.auditor), nil)
		if st != http.StatusOK || !strings.Contains(body, `"audit:0+4"`) {
			t.Errorf("no audit.prune event: %d %s", st, body)
		}
	})

	t.Run("a witness detects nothing wrong as the log grows", func(t *testing.T) {
		rc := v.deposit(t, s, 2)
		waitCheckpoint(t, s, rc.AuditIndex+1)
		r := mustCV(t, "audit", "checkpoint", "--server", base, "--key", v.key, "--previous", cp1, "--out", v.path("cp2"))
		if !strings.Contains(r.stderr, "consistent with 1 earlier checkpoints") {
			t.Errorf("audit checkpoint --previous:\n%s", r)
		}
		wantExit(t, 2, []string{"--previous needs --key"}, "audit", "checkpoint", "--server", base, "--previous", cp1)
	})
	s.stop(t)
}

// TestAuditCheckpointOnDemand: an operator signs a checkpoint on the
// vault now; it covers every event, verifies with the vault's audit key,
// and signing again with no new events returns the same checkpoint.
func TestAuditCheckpointOnDemand(t *testing.T) {
	dir := newVault(t)
	addUser(t, dir, "u1", "enumerator", "18070")
	out := filepath.Join(t.TempDir(), "cp.note")
	r := mustCV(t, "audit", "checkpoint", "--data", dir, "--out", out)
	if !strings.Contains(r.stderr, "checkpoint of ") {
		t.Errorf("stderr %q", r.stderr)
	}
	note, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(note), "\n")
	if len(lines) < 4 || !strings.HasSuffix(lines[0], "/audit") {
		t.Fatalf("checkpoint %q", note)
	}
	again := mustCV(t, "audit", "checkpoint", "--data", dir)
	if again.stdout != string(note) {
		t.Errorf("signing again with no new events gave another checkpoint:\n%s\nvs\n%s", again.stdout, note)
	}
	v := mustCV(t, "audit", "verify", "--data", dir)
	if !strings.Contains(v.stdout+v.stderr, "1 signed checkpoints") {
		t.Errorf("verify --data does not count the checkpoint: %q %q", v.stdout, v.stderr)
	}
}
