package main_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"golang.org/x/mod/sumdb/note"
)

// householdID is the submission id in testdata/household.json.
const householdID = "3d0c8e1a-5b7f-4c2e-9a61-7f2b4d9e0c13"

// The identifying values in testdata/household.json: none may reach a log
// or the disk in the clear.
var identifying = []string{
	"Nguyễn Văn Hùng", "Trần Thị Lan", "Nguyễn Thị Mai", "Lê Thị Tám",
	"Số 12, ngõ 4", "0912345678",
}

// household returns testdata/household.json as household number no of EA
// 18070-01, under a submission id derived from no (no 1 is the file as it
// is).
func household(t *testing.T, no int) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "household.json"))
	if err != nil {
		t.Fatal(err)
	}
	if no == 1 {
		return b
	}
	s := string(b)
	s = strings.Replace(s, `"household_no": 1,`, fmt.Sprintf(`"household_no": %d,`, no), 1)
	s = strings.Replace(s, householdID, fmt.Sprintf("%s%04d", householdID[:len(householdID)-4], no), 1)
	if s == string(b) {
		t.Fatal("testdata/household.json no longer has the expected id and household_no")
	}
	return []byte(s)
}

func submissionID(no int) string {
	if no == 1 {
		return householdID
	}
	return fmt.Sprintf("%s%04d", householdID[:len(householdID)-4], no)
}

// encrypt does in process what a device does: age-encrypt to the ingest
// recipient.
func encrypt(t *testing.T, recipient string, plaintext []byte) []byte {
	t.Helper()
	rs, err := age.ParseRecipients(strings.NewReader(recipient))
	if err != nil {
		t.Fatalf("failed to parse recipient: %v", err)
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rs...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plaintext); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// needTools finds command-line tools a test drives; missing ones skip the
// test locally but fail it in CI, which installs them.
func needTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found on PATH; .ci/run installs it", n)
			}
			t.Skipf("%s not found on PATH (install age ≥ 1.3: go install filippo.io/age/cmd/age@v1.3.2)", n)
		}
	}
}

type receipt struct {
	SubmissionID  string `json:"submission_id"`
	Area          string `json:"area"`
	ReceivedAt    string `json:"received_at"`
	PayloadSHA256 string `json:"payload_sha256"`
	AuditIndex    int64  `json:"audit_index"`
	LeafHash      string `json:"leaf_hash"`
	Note          string `json:"note"`
}

// checkReceipt checks a receipt against the plaintext deposited and the
// vault's receipt verifier key.
func checkReceipt(t *testing.T, body string, plain []byte, id, verifierKey string) receipt {
	t.Helper()
	var r receipt
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("receipt %q: %v", body, err)
	}
	sum := sha256.Sum256(plain)
	if r.SubmissionID != id || r.Area != "18070-01" || r.PayloadSHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("receipt %+v: want id %s, area 18070-01, payload_sha256 of the exact plaintext", r, id)
	}
	at, err := time.Parse(time.RFC3339Nano, r.ReceivedAt)
	if err != nil || !strings.HasSuffix(r.ReceivedAt, "Z") || time.Since(at) > time.Minute || time.Since(at) < -time.Minute {
		t.Errorf("received_at %q: want UTC RFC 3339, about now", r.ReceivedAt)
	}
	if leaf, err := base64.StdEncoding.DecodeString(r.LeafHash); err != nil || len(leaf) != 32 {
		t.Errorf("leaf_hash %q: want 32 bytes in base64", r.LeafHash)
	}
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		t.Fatalf("receipt verifier key %q: %v", verifierKey, err)
	}
	n, err := note.Open([]byte(r.Note), note.VerifierList(v))
	if err != nil {
		t.Fatalf("receipt note does not verify: %v", err)
	}
	want := strings.Join([]string{"censusvault-receipt/v1", r.SubmissionID, r.Area, r.ReceivedAt, r.PayloadSHA256, strconv.FormatInt(r.AuditIndex, 10), r.LeafHash}, "\n") + "\n"
	if n.Text != want {
		t.Errorf("signed text %q, want %q", n.Text, want)
	}
	return r
}

// TestDepositWithAgeAndCurl deposits exactly as the README tells field
// teams: fetch the recipient with curl, encrypt with the age command, post
// with curl.
func TestDepositWithAgeAndCurl(t *testing.T) {
	needTools(t, "age", "curl", "sh")
	t.Parallel()
	dir := newVault(t)
	token := addUser(t, dir, "lan", "enumerator", "18070-01")
	other := addUser(t, dir, "minh", "team_leader", "18070")
	srv := startServer(t, dir)
	work := t.TempDir()
	for no := 1; no <= 4; no++ {
		if err := os.WriteFile(filepath.Join(work, fmt.Sprintf("hh%d.json", no)), household(t, no), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The same id as household 1 with other bytes.
	if err := os.WriteFile(filepath.Join(work, "hh1-changed.json"), bytes.Replace(household(t, 1), []byte(`"visit_count": 1`), []byte(`"visit_count": 2`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	sh := func(tok, script string) (status int, body string) {
		t.Helper()
		cmd := exec.Command("sh", "-c", "set -eu\n"+script)
		cmd.Dir = work
		cmd.Env = cleanEnv("ADDR="+strings.TrimPrefix(srv.base, "http://"), "TOKEN="+tok)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s\n%v\n%s", script, err, out)
		}
		// curl -w puts the status on the last line.
		s := strings.TrimRight(string(out), "\n")
		i := strings.LastIndexByte(s, '\n')
		status, err = strconv.Atoi(s[i+1:])
		if err != nil {
			t.Fatalf("%s\nno status in %q", script, out)
		}
		return status, s[:max(i, 0)]
	}
	const post = `curl -sS -X POST -H "Authorization: Bearer $TOKEN" --data-binary @%s http://$ADDR/v1/submissions -w '\n%%{http_code}\n'`
	_, vkey := srv.do(t, http.MethodGet, "/v1/keys/receipt", "", nil)
	vkey = strings.TrimSpace(vkey)

	// Binary age, curl's default (form) Content-Type.
	st, body := sh(token, `curl -s http://$ADDR/v1/ingest/recipient > r.txt
age -R r.txt -o hh.age hh1.json
`+fmt.Sprintf(post, "hh.age"))
	if st != http.StatusCreated {
		t.Fatalf("binary deposit: %d %s", st, body)
	}
	first := checkReceipt(t, body, household(t, 1), submissionID(1), vkey)
	if r, _ := os.ReadFile(filepath.Join(work, "r.txt")); !strings.HasPrefix(string(r), "age1pq1") {
		t.Errorf("the recipient curl fetched is %.20q…, want an age1pq1 hybrid recipient", r)
	}

	// Armored age.
	st, body = sh(token, `age -a -R r.txt -o hh2.age hh2.json
head -c 34 hh2.age | grep -q -- '-----BEGIN AGE ENCRYPTED FILE-----'
`+fmt.Sprintf(post, "hh2.age"))
	if st != http.StatusCreated {
		t.Fatalf("armored deposit: %d %s", st, body)
	}
	second := checkReceipt(t, body, household(t, 2), submissionID(2), vkey)
	if second.AuditIndex <= first.AuditIndex {
		t.Errorf("audit index %d after %d", second.AuditIndex, first.AuditIndex)
	}

	// Other Content-Types are accepted too; stdin instead of a file.
	st, body = sh(token, `age -R r.txt hh3.json | curl -sS -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/octet-stream' --data-binary @- http://$ADDR/v1/submissions -w '\n%{http_code}\n'`)
	if st != http.StatusCreated {
		t.Fatalf("piped deposit: %d %s", st, body)
	}
	checkReceipt(t, body, household(t, 3), submissionID(3), vkey)

	// A device retrying after a lost reply gets the original receipt; the
	// same id with other bytes is a conflict.
	st, body = sh(token, fmt.Sprintf(post, "hh.age"))
	if st != http.StatusOK {
		t.Errorf("replayed deposit: %d %s, want 200", st, body)
	} else if again := checkReceipt(t, body, household(t, 1), submissionID(1), vkey); again != first {
		t.Errorf("replay receipt %+v, want the original %+v", again, first)
	}
	st, body = sh(token, `age -R r.txt -o changed.age hh1-changed.json
`+fmt.Sprintf(post, "changed.age"))
	if st != http.StatusConflict {
		t.Errorf("other bytes under a deposited id: %d %s, want 409", st, body)
	}

	// The wrong token, no token, a plaintext body, a file for another
	// recipient.
	if st, body = sh("not-a-token", fmt.Sprintf(post, "hh.age")); st != http.StatusUnauthorized {
		t.Errorf("made-up token: %d %s, want 401", st, body)
	}
	if st, body = sh(token, `curl -sS -X POST --data-binary @hh4.json http://$ADDR/v1/submissions -w '\n%{http_code}\n'`); st != http.StatusUnauthorized {
		t.Errorf("no token: %d %s, want 401", st, body)
	}
	if st, body = sh(token, fmt.Sprintf(post, "hh4.json")); st != http.StatusBadRequest {
		t.Errorf("plaintext body: %d %s, want 400", st, body)
	}
	stranger, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "stranger.age"), encrypt(t, stranger.Recipient().String(), household(t, 4)), 0o600); err != nil {
		t.Fatal(err)
	}
	if st, body = sh(token, fmt.Sprintf(post, "stranger.age")); st != http.StatusBadRequest {
		t.Errorf("file encrypted to another recipient: %d %s, want 400", st, body)
	}

	// The server's log records the requests but no token, no deposited
	// value, no Authorization header.
	log := srv.log.String()
	if !strings.Contains(log, "route=/v1/submissions status=201") {
		t.Errorf("serve log does not record the deposits:\n%s", log)
	}
	for _, secret := range append([]string{token, other, "Bearer", "not-a-token"}, identifying...) {
		if strings.Contains(log, secret) {
			t.Errorf("serve log contains %.12q…", secret)
		}
	}
	srv.stop(t)

	// Nor does the data directory hold a deposited value or a token in
	// the clear.
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range append([]string{token, other}, identifying...) {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s contains %.12q… in the clear", e.Name(), secret)
			}
		}
	}
	if r := mustCV(t, "audit", "verify", "--data", dir); !strings.Contains(r.stdout, "audit chain OK") {
		t.Errorf("audit verify after deposits: %q", r.stdout)
	}
}

func TestRevokeAndExpiryWhileServing(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	lan := addUser(t, dir, "lan", "enumerator", "18070-01")
	minh := addUser(t, dir, "minh", "enumerator", "18070-01")
	srv := startServer(t, dir)
	const progress = "/v1/progress?area=18070-01&depth=0"
	for name, tok := range map[string]string{"lan": lan, "minh": minh} {
		if st, body := srv.do(t, http.MethodGet, progress, tok, nil); st != http.StatusOK {
			t.Fatalf("%s before revocation: %d %s", name, st, body)
		}
	}

	// Revoked from the CLI while the server runs: refused at once.
	mustCV(t, "user", "revoke", "lan", "--data", dir)
	if st, body := srv.do(t, http.MethodGet, progress, lan, nil); st != http.StatusUnauthorized {
		t.Errorf("revoked token: %d %s, want 401", st, body)
	}
	if st, _ := srv.do(t, http.MethodPost, "/v1/submissions", lan, encrypt(t, srv.recipient(t), household(t, 1))); st != http.StatusUnauthorized {
		t.Errorf("deposit with a revoked token: %d, want 401", st)
	}
	if st, body := srv.do(t, http.MethodGet, progress, minh, nil); st != http.StatusOK {
		t.Errorf("another user after lan's revocation: %d %s", st, body)
	}

	// A token with a 2-second life works, then does not.
	const life = 2 * time.Second
	start := time.Now()
	short := addUser(t, dir, "hoa", "enumerator", "18070-01", "--expires", "2s")
	added := time.Now()
	st, body := srv.do(t, http.MethodGet, progress, short, nil)
	if time.Since(start) < life && st != http.StatusOK {
		t.Errorf("token within its lifetime: %d %s", st, body)
	}
	time.Sleep(time.Until(added.Add(life + 50*time.Millisecond)))
	if st, body := srv.do(t, http.MethodGet, progress, short, nil); st != http.StatusUnauthorized {
		t.Errorf("expired token: %d %s, want 401", st, body)
	}
	if st, _ := srv.do(t, http.MethodGet, progress, minh, nil); st != http.StatusOK {
		t.Errorf("a token without expiry stopped working: %d", st)
	}
	if log := srv.log.String(); strings.Contains(log, lan) || strings.Contains(log, short) {
		t.Errorf("serve log contains a token")
	}
	srv.stop(t)
}

func TestRotateIngestWhileServing(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	tok := addUser(t, dir, "lan", "enumerator", "18070-01")
	srv := startServer(t, dir)
	v1 := srv.recipient(t)
	if !strings.HasPrefix(v1, "age1pq1") {
		t.Fatalf("ingest recipient %.20q…: want age1pq1", v1)
	}
	// Devices that fetched v1 before the rotation.
	toV1 := [][]byte{encrypt(t, v1, household(t, 1)), encrypt(t, v1, household(t, 2))}

	rotate := func(grace string) string {
		t.Helper()
		r := mustCV(t, "keys", "rotate-ingest", "--grace", grace, "--data", dir)
		rcpt := strings.TrimSuffix(r.stdout, "\n")
		if !strings.HasPrefix(rcpt, "age1pq1") || strings.Contains(rcpt, "\n") {
			t.Fatalf("keys rotate-ingest stdout %.40q…: want one age1pq1 recipient alone", r.stdout)
		}
		if _, err := age.ParseHybridRecipient(rcpt); err != nil {
			t.Fatalf("keys rotate-ingest printed an unparsable recipient: %v", err)
		}
		// The running server picks the new key up by itself.
		start := time.Now()
		for srv.recipient(t) != rcpt {
			if time.Since(start) > 4*time.Second {
				t.Fatalf("the running server still serves the old recipient %s after the rotation", time.Since(start).Round(time.Millisecond))
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("server serves the rotated recipient after %s", time.Since(start).Round(time.Millisecond))
		return rcpt
	}
	v2 := rotate("1h")
	if v2 == v1 {
		t.Fatal("rotation kept the recipient")
	}
	deposit := func(what string, ct []byte, want int) {
		t.Helper()
		if st, body := srv.do(t, http.MethodPost, "/v1/submissions", tok, ct); st != want {
			t.Errorf("%s: %d %s, want %d", what, st, body, want)
		}
	}
	deposit("encrypted to the previous recipient within its grace", toV1[0], http.StatusCreated)
	deposit("encrypted to the new recipient", encrypt(t, v2, household(t, 3)), http.StatusCreated)
	toV2 := encrypt(t, v2, household(t, 4))

	// No grace: v2 ends now; v1 keeps the hour it was given.
	v3 := rotate("0s")
	if v3 == v2 || v3 == v1 {
		t.Fatal("second rotation repeated a recipient")
	}
	deposit("encrypted to a recipient retired without grace", toV2, http.StatusBadRequest)
	deposit("encrypted to the first recipient, still within its grace", toV1[1], http.StatusCreated)
	deposit("encrypted to the newest recipient", encrypt(t, v3, household(t, 5)), http.StatusCreated)
	srv.stop(t)

	if r := mustCV(t, "audit", "verify", "--data", dir); !strings.Contains(r.stdout, "audit chain OK") {
		t.Errorf("audit verify after rotations: %q", r.stdout)
	}
}
