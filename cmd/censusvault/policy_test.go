package main_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/censusvault/censusvault/policy"
)

// Policy administration from a workstation (issue 13 parts 5 and 6), as
// its users meet it: the host operator registers the field office's
// token recipient once, an administrator imports the field staff with
// their tokens encrypted to it (and to no key of its own), an approver
// confirms the grants that reveal data, denies and the role policy
// change, an auditor asks why the policy decided; the same commands on
// the vault host.

// officeKey writes a new age identity and its recipient to dir and
// returns the identity, the key file and the recipient file.
func officeKey(t *testing.T, dir string) (*age.X25519Identity, string, string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	key, pub := filepath.Join(dir, "office.key"), filepath.Join(dir, "office.pub")
	if err := os.WriteFile(key, []byte("# the field office\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, []byte(id.Recipient().String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return id, key, pub
}

// openTokens decrypts a file of new tokens with id and returns user →
// token, checking the CSV's header.
func openTokens(t *testing.T, file string, id age.Identity) map[string][]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fi, _ := f.Stat(); fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", file, fi.Mode().Perm())
	}
	r, err := age.Decrypt(f, id)
	if err != nil {
		t.Fatalf("%s does not decrypt with the recipient's identity: %v", file, err)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return parseTokens(t, plain)
}

func parseTokens(t *testing.T, plain []byte) map[string][]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(plain)).ReadAll()
	if err != nil || len(recs) < 2 || strings.Join(recs[0], ",") != "user,token,role,area,expires" {
		t.Fatalf("decrypted tokens: %q (%v)", plain, err)
	}
	out := map[string][]string{}
	for _, rec := range recs[1:] {
		if !tokenRE.MatchString(rec[1]) {
			t.Fatalf("%s's token %q is not a token", rec[0], rec[1])
		}
		out[rec[0]] = rec
	}
	return out
}

// noTokens fails if a command's output shows any of the tokens.
func noTokens(t *testing.T, what string, r result, toks map[string][]string) {
	t.Helper()
	for u, rec := range toks {
		if strings.Contains(r.stdout+r.stderr, rec[1]) {
			t.Errorf("%s printed %s's token", what, u)
		}
	}
}

// status is the status of GET path with token.
func (s *server) status(t *testing.T, path, token string) int {
	t.Helper()
	st, _ := s.do(t, http.MethodGet, path, token, nil)
	return st
}

const fieldCSV = "user,role,area,expires\nenum-001,enumerator,18070-01,\nenum-002,enumerator,18070-02,30d\ntl-18070,team_leader,18070,\n"

// TestPolicyRemote: the whole administration from a workstation, against
// a served vault, with an admin's, an approver's and an auditor's tokens.
func TestPolicyRemote(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	work := t.TempDir()
	boss := writeToken(t, work, "boss", addUser(t, dir, "boss", "admin", "VN"))
	ann := writeToken(t, work, "ann", addUser(t, dir, "ann", "approver", "VN"))
	aud := writeToken(t, work, "aud", addUser(t, dir, "aud", "auditor", "VN"))
	id, _, pub := officeKey(t, work)
	field := filepath.Join(work, "field.csv")
	if err := os.WriteFile(field, []byte(fieldCSV), 0o600); err != nil {
		t.Fatal(err)
	}
	// The procedure: the host operator registers the field office's
	// recipient before anyone makes a token over the API.
	r := mustCV(t, "user", "token-recipient", "--recipient-file", pub, "--data", dir)
	if r.stdout != id.Recipient().String()+"\n" || !strings.Contains(r.stderr, "registered") {
		t.Errorf("user token-recipient on the host:\n%s", r)
	}
	srv := startServer(t, dir)
	as := func(token string, args ...string) []string {
		return append(args, "--server", srv.base, "--token-file", token)
	}
	out := filepath.Join(work, "field.tokens.age")

	// The admin registers its own key instead, or names it for the
	// tokens: refused (on the host only; 403 recipient_not_registered),
	// no file left, nothing made.
	rogue, _, roguePub := officeKey(t, t.TempDir())
	r = cv(t, as(boss, "user", "token-recipient", rogue.Recipient().String())...)
	if r.code != 2 || !strings.Contains(r.stderr, "on the vault host only") || !strings.Contains(r.stderr, "--data DIR") {
		t.Errorf("the admin registers the token recipient over the API:\n%s", r)
	}
	r = cv(t, as(boss, "user", "import", field, "--recipient-file", roguePub, "--out", out)...)
	if r.code != 1 || !strings.Contains(r.stderr, "HTTP 403") || !strings.Contains(r.stderr, "never to one named in the request") || !strings.Contains(r.stderr, "leave out --recipient") {
		t.Errorf("the admin imports users to its own key:\n%s", r)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused import left %s", out)
	}

	// Whoever may not administer is refused, and no file is left.
	r = cv(t, as(aud, "user", "import", field, "--out", out)...)
	if r.code != 1 || !strings.Contains(r.stderr, "HTTP 403") || !strings.Contains(r.stderr, "an admin's token") {
		t.Errorf("an auditor imports users:\n%s", r)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused import left %s", out)
	}

	// The import, naming no recipient: tokens only in the file
	// encrypted to the field office's.
	r = mustCV(t, as(boss, "user", "import", field, "--out", out)...)
	toks := openTokens(t, out, id)
	noTokens(t, "user import", r, toks)
	if r.stdout != "" || len(toks) != 3 || !strings.Contains(r.stderr, "uploading "+field) ||
		!strings.Contains(r.stderr, "encrypted to the field office's recipient "+id.Recipient().String()[:24]+"…") ||
		!strings.Contains(r.stderr, "created 3 users") || !strings.Contains(r.stderr, "2 can work now") ||
		!strings.Contains(r.stderr, "policy confirm 1 --server "+srv.base) {
		t.Errorf("user import:\n%s", r)
	}
	for _, u := range []string{"enum-001", "enum-002"} {
		if st := srv.status(t, "/v1/progress?area="+toks[u][3], toks[u][1]); st != http.StatusOK {
			t.Errorf("%s's imported token: %d", u, st)
		}
	}
	tl := toks["tl-18070"][1]
	if st := srv.status(t, "/v1/submissions?area=18070", tl); st != http.StatusForbidden {
		t.Errorf("an unconfirmed team leader lists: %d", st)
	}
	for _, bad := range []struct {
		args []string
		says string
	}{
		{as(boss, "user", "import", field, "--out", out), "never overwritten"},
		{as(boss, "user", "import", field), "--out FILE is required"},
		{as(boss, "user", "import", field, "--recipient-file", filepath.Join(work, "office.key"), "--out", filepath.Join(work, "x.age")), "secret key"},
		{as(boss, "user", "import", "--out", filepath.Join(work, "x.age")), "FILE.csv"},
		{as(boss, "user", "add", "sup-1", "--role", "supervisor", "--area", "437"), "--out FILE is required"},
		{as(boss, "user", "add", "sup-1", "--role", "supervisor", "--area", "437", "--token", "x", "--recipient-file", pub, "--out", filepath.Join(work, "x.age")), "unknown flag: --token"},
		{as(boss, "policy", "grant", "enum-001", "--role", "steering"), "--role and --area are required"},
		{as(boss, "policy", "check", "enum-001", "progress.read"), "USER ACTION AREA"},
		{as(ann, "policy", "confirm", "first"), `SEQ "first"`},
	} {
		r := cv(t, bad.args...)
		if r.code != 2 || !strings.Contains(r.stderr, bad.says) || r.stdout != "" {
			t.Errorf("%s: want exit 2 saying %q:\n%s", strings.Join(bad.args, " "), bad.says, r)
		}
	}
	if _, err := os.Stat(filepath.Join(work, "x.age")); err == nil {
		t.Error("a refused command left x.age")
	}
	if again := openTokens(t, out, id); again["tl-18070"][1] != tl {
		t.Error("a refused import touched the tokens of the one before")
	}

	// The approver, not the admin, confirms the team leader's grant.
	r = mustCV(t, as(ann, "policy", "proposals")...)
	if !regexp.MustCompile(`(?m)^1\s+pending\s+team_leader at 18070 to tl-18070\s+user:boss\s`).MatchString(r.stdout) {
		t.Errorf("policy proposals:\n%s", r.stdout)
	}
	r = cv(t, as(boss, "policy", "confirm", "1")...)
	if r.code != 1 || !strings.Contains(r.stderr, "HTTP 403") || !strings.Contains(r.stderr, "only an approver") {
		t.Errorf("the admin confirms:\n%s", r)
	}
	r = mustCV(t, as(ann, "policy", "confirm", "1")...)
	if !strings.Contains(r.stderr, "confirmed proposal 1 (proposed by user:boss): team_leader at 18070 to tl-18070 holds now") {
		t.Errorf("policy confirm:\n%s", r)
	}
	if st := srv.status(t, "/v1/submissions?area=18070", tl); st != http.StatusOK {
		t.Errorf("the confirmed team leader lists: %d", st)
	}
	listEvent := lastEvent(t, srv, aud, "submission.list")

	// Grants and denies.
	r = mustCV(t, as(boss, "policy", "grant", "enum-001", "--role", "steering", "--area", "18070")...)
	if r.stdout != "" || !strings.Contains(r.stderr, "granted enum-001 steering at 18070: in force now") {
		t.Errorf("policy grant steering:\n%s", r)
	}
	r = mustCV(t, as(boss, "policy", "deny", "tl-18070", "--role", "team_leader", "--area", "18070-02")...)
	if !strings.Contains(r.stderr, "denied tl-18070 team_leader at 18070-02 (a deny beats any allow): in force now") {
		t.Errorf("policy deny:\n%s", r)
	}
	r = mustCV(t, as(boss, "policy", "revoke", "tl-18070", "--role", "team_leader", "--area", "18070-02", "--deny")...)
	if r.stdout != "2\n" || !strings.Contains(r.stderr, "proposed (proposal 2): removed from tl-18070 the deny of team_leader at 18070-02") ||
		!strings.Contains(r.stderr, "policy confirm 2 --server "+srv.base+" --token-file APPROVER.token") {
		t.Errorf("policy revoke --deny (waits for an approver):\n%s", r)
	}
	r = cv(t, as(boss, "policy", "revoke", "enum-001", "--role", "steering", "--area", "437")...)
	if r.code != 1 || !strings.Contains(r.stderr, "HTTP 404") {
		t.Errorf("revoking a grant not held:\n%s", r)
	}

	// The auditor asks why: now, and at the list before the deny.
	r = mustCV(t, as(aud, "policy", "check", "tl-18070", "submission.list", "18070-02")...)
	if !strings.HasPrefix(r.stdout, "deny: tl-18070 may not submission.list at 18070-02\n") || !strings.Contains(r.stdout, "rule: deny-grant team_leader@18070-02") {
		t.Errorf("policy check now:\n%s", r.stdout)
	}
	r = mustCV(t, as(aud, "policy", "check", "--event", fmt.Sprint(listEvent))...)
	if !strings.Contains(r.stdout, fmt.Sprintf("event %d: tl-18070 submission.list at 18070, recorded allow", listEvent)) ||
		!strings.Contains(r.stdout, "under the policy of its time: allow (agrees with the recorded decision)") ||
		!strings.Contains(r.stdout, "(the event's, rebuilt from the grant log)") || !strings.Contains(r.stdout, "rule: grant team_leader@18070") {
		t.Errorf("policy check --event:\n%s", r.stdout)
	}

	// The policy as the auditor reads it; a new role policy proposed,
	// confirmed, in force.
	r = mustCV(t, as(aud, "policy", "show")...)
	for _, want := range []string{"policy hash  ", "rules, by role:", "team_leader  inherits  enumerator", "tl-18070  deny   team_leader  18070-02",
		"proposals waiting for an approver: 1", "2    pending  the removal of the deny of team_leader at 18070-02 from tl-18070  user:boss"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("policy show does not hold %q:\n%s", want, r.stdout)
		}
	}
	rules := mustCV(t, as(aud, "policy", "export")...).stdout
	if rules != policy.DefaultPolicy() || mustCV(t, "policy", "export", "--data", dir).stdout != rules {
		t.Errorf("policy export over HTTP and on the host differ, or differ from the policy in force")
	}
	wider := filepath.Join(work, "rules.csv")
	if err := os.WriteFile(wider, []byte(rules+"p, steering, submission.list, allow\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = mustCV(t, as(boss, "policy", "load", wider)...)
	seq := strings.TrimSpace(r.stdout)
	if seq != "3" || !strings.Contains(r.stderr, "proposed (proposal 3): the role policy of "+wider) {
		t.Errorf("policy load:\n%s", r)
	}
	if rules := mustCV(t, as(aud, "policy", "export")...).stdout; strings.Contains(rules, "p, steering, submission.list") {
		t.Error("a proposed role policy is in force before its confirmation")
	}
	if r := mustCV(t, as(ann, "policy", "confirm", seq)...); !regexp.MustCompile(`confirmed proposal 3 \(proposed by user:boss\): the role policy [0-9a-f]{16} holds now`).MatchString(r.stderr) {
		t.Errorf("policy confirm of a role policy:\n%s", r)
	}
	if rules := mustCV(t, as(aud, "policy", "export")...).stdout; !strings.HasSuffix(rules, "p, steering, submission.list, allow\n") {
		t.Errorf("the confirmed role policy is not in force:\n%s", rules)
	}

	// Users: list, show, add one (a data role waits), reissue, revoke,
	// lifetimes; the last admin stays.
	r = mustCV(t, as(boss, "user", "list")...)
	if !regexp.MustCompile(`(?m)^tl-18070\s+team_leader@18070,deny:team_leader@18070-02\s+-\s+\S+\s+-$`).MatchString(r.stdout) || !strings.Contains(r.stderr, "6 users") {
		t.Errorf("user list:\n%s", r)
	}
	r = mustCV(t, as(boss, "user", "show", "tl-18070")...)
	if !strings.Contains(r.stdout, "user tl-18070\n  allow team_leader at 18070\n  deny team_leader at 18070-02\n") {
		t.Errorf("user show:\n%s", r.stdout)
	}
	supOut := filepath.Join(work, "sup.age")
	r = mustCV(t, as(boss, "user", "add", "sup-437", "--role", "supervisor", "--area", "437", "--expires", "10d", "--recipient", id.Recipient().String(), "--out", supOut)...)
	sup := openTokens(t, supOut, id)
	noTokens(t, "user add", r, sup)
	if r.stdout != "4\n" || !strings.Contains(r.stderr, "added sup-437; the grant supervisor at 437 waits for an approver (proposal 4)") {
		t.Errorf("user add of a supervisor:\n%s", r)
	}
	if r := mustCV(t, as(boss, "user", "show", "sup-437")...); !strings.Contains(r.stdout, "  pending supervisor at 437 (waits for an approver)\n") {
		t.Errorf("user show of a pending supervisor:\n%s", r.stdout)
	}
	old := toks["enum-001"][1]
	reOut := filepath.Join(work, "enum-001.age")
	r = mustCV(t, as(boss, "user", "reissue", "enum-001", "--out", reOut)...)
	re := openTokens(t, reOut, id)
	if !strings.Contains(r.stderr, "reissued enum-001's token: the old one no longer works") ||
		srv.status(t, "/v1/progress?area=18070-01", old) != http.StatusUnauthorized || srv.status(t, "/v1/progress?area=18070-01", re["enum-001"][1]) != http.StatusOK {
		t.Errorf("user reissue:\n%s", r)
	}
	r = mustCV(t, as(boss, "user", "revoke", "enum-002")...)
	if !strings.Contains(r.stderr, "revoked enum-002") || srv.status(t, "/v1/progress?area=18070-02", toks["enum-002"][1]) != http.StatusUnauthorized {
		t.Errorf("user revoke:\n%s", r)
	}
	if r := cv(t, as(boss, "user", "revoke", "boss")...); r.code != 1 || !strings.Contains(r.stderr, "HTTP 409: this would leave nobody able to administer the vault") {
		t.Errorf("revoking the last admin:\n%s", r)
	}
	r = mustCV(t, as(boss, "user", "lifetimes", "--set", "enumerator=40d")...)
	if !regexp.MustCompile(`(?m)^enumerator\s+40d$`).MatchString(r.stdout) || !regexp.MustCompile(`(?m)^admin\s+90d$`).MatchString(r.stdout) {
		t.Errorf("user lifetimes --set:\n%s", r)
	}
	if r := cv(t, as(aud, "user", "lifetimes")...); r.code != 1 || !strings.Contains(r.stderr, "HTTP 403") {
		t.Errorf("an auditor reads the lifetimes:\n%s", r)
	}
	srv.stop(t)

	// Every change, refusal and read is in the audit chain, and no token
	// is in the log.
	mustCV(t, "audit", "verify", "--data", dir)
	db := openDB(t, dir)
	for u, rec := range toks {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM audit_events WHERE CAST(event AS TEXT) LIKE '%' || ? || '%'`, rec[1]).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("the audit log holds %s's token", u)
		}
	}
}

// lastEvent is the index of the last audit event of action, as an
// auditor searches for it.
func lastEvent(t *testing.T, srv *server, tokenFile, action string) int64 {
	t.Helper()
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	st, body := srv.do(t, http.MethodGet, "/v1/audit/events?limit=1000&action="+action, strings.TrimSpace(string(tok)), nil)
	if st != http.StatusOK {
		t.Fatalf("audit search: %d %s", st, body)
	}
	var page struct {
		Events []struct {
			Index int64 `json:"index"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil || len(page.Events) == 0 {
		t.Fatalf("no %s event: %v %s", action, err, body)
	}
	return page.Events[len(page.Events)-1].Index
}

// TestPolicyLocal: the same commands on the vault host, where the
// operator's changes hold at once and nothing needs an approver.
func TestPolicyLocal(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	work := t.TempDir()
	addUser(t, dir, "boss", "admin", "VN")
	id, _, pub := officeKey(t, work)
	field := filepath.Join(work, "field.csv")
	if err := os.WriteFile(field, []byte(fieldCSV), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(work, "field.tokens.age")
	// No field office's recipient registered: the host operator names
	// one.
	if r := cv(t, "user", "import", field, "--out", out, "--data", dir); r.code != 2 || !strings.Contains(r.stderr, "--recipient age1… (or --recipient-file FILE) is required") ||
		!strings.Contains(r.stderr, "censusvault user token-recipient age1… --data DIR") {
		t.Errorf("user import on the host, no recipient at all:\n%s", r)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused import left %s", out)
	}
	r := mustCV(t, "user", "import", field, "--recipient-file", pub, "--out", out, "--data", dir)
	toks := openTokens(t, out, id)
	noTokens(t, "user import", r, toks)
	if r.stdout != "" || len(toks) != 3 || !strings.Contains(r.stderr, "creating the users in one transaction") || !strings.Contains(r.stderr, "created 3 users") ||
		!strings.Contains(r.stderr, "3 can work now") {
		t.Errorf("user import on the host (the team leader holds at once):\n%s", r)
	}
	// A bad file changes nothing.
	bad := filepath.Join(work, "bad.csv")
	if err := os.WriteFile(bad, []byte("user,role,area\nok-1,enumerator,18070-01\nbad,enumerator,99999\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = cv(t, "user", "import", bad, "--recipient-file", pub, "--out", filepath.Join(work, "bad.age"), "--data", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "user 2") || !strings.Contains(r.stderr, "99999") {
		t.Errorf("a bad import:\n%s", r)
	}
	if r := cv(t, "user", "show", "ok-1", "--data", dir); r.code != 1 {
		t.Errorf("a refused import added ok-1:\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(work, "bad.age")); err == nil {
		t.Error("a refused import left its --out file")
	}

	r = mustCV(t, "policy", "grant", "enum-001", "--role", "supervisor", "--area", "437", "--data", dir)
	if r.stdout != "" || !strings.Contains(r.stderr, "granted enum-001 supervisor at 437: in force now") {
		t.Errorf("policy grant on the host (a data role, at once):\n%s", r)
	}
	mustCV(t, "policy", "deny", "enum-001", "--role", "supervisor", "--area", "18073", "--data", dir)
	r = mustCV(t, "policy", "revoke", "enum-001", "--role", "supervisor", "--area", "18073", "--deny", "--data", dir)
	if !strings.Contains(r.stderr, "removed from enum-001 the deny of supervisor at 18073: in force now") {
		t.Errorf("policy revoke --deny on the host:\n%s", r)
	}
	r = mustCV(t, "policy", "check", "enum-001", "submission.list", "18073-01", "--data", dir)
	if !strings.HasPrefix(r.stdout, "allow: enum-001 may submission.list at 18073-01\n") {
		t.Errorf("policy check on the host:\n%s", r.stdout)
	}
	r = mustCV(t, "policy", "show", "--data", dir)
	if !regexp.MustCompile(`(?m)^enum-001\s+allow\s+supervisor\s+437\s+-$`).MatchString(r.stdout) {
		t.Errorf("policy show on the host:\n%s", r.stdout)
	}
	rules := filepath.Join(work, "rules.csv")
	if err := os.WriteFile(rules, []byte(mustCV(t, "policy", "export", "--data", dir).stdout+"p, steering, submission.list, allow\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = mustCV(t, "policy", "load", rules, "--data", dir)
	if r.stdout != "" || !strings.Contains(r.stderr, "is in force now") {
		t.Errorf("policy load on the host:\n%s", r)
	}
	if r := cv(t, "policy", "load", rules, "--data", dir); r.code != 1 || !strings.Contains(r.stderr, "the role policy in force is this one already") {
		t.Errorf("loading the same rules again:\n%s", r)
	}
	hostile := filepath.Join(work, "hostile.csv")
	text := strings.Replace(policy.DefaultPolicy(), "p, admin, submission.read_identifying, deny\n", "p, admin, submission.read_identifying, allow\n", 1)
	if err := os.WriteFile(hostile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cv(t, "policy", "load", hostile, "--data", dir); r.code != 1 || !strings.Contains(r.stderr, "trust roles touch data") {
		t.Errorf("loading rules that let an admin see data, on the host:\n%s", r)
	}
	if r := cv(t, "policy", "confirm", "1", "--data", dir); r.code != 2 || !strings.Contains(r.stderr, "--server URL is required") {
		t.Errorf("policy confirm on the host:\n%s", r)
	}
	r = mustCV(t, "policy", "proposals", "--data", dir)
	if r.stdout != "" || !strings.Contains(r.stderr, "no proposals") {
		t.Errorf("policy proposals on the host:\n%s", r)
	}

	r = mustCV(t, "user", "list", "--data", dir, "--limit", "2")
	if strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stdout, "boss ") || !strings.Contains(r.stderr, "2 users") {
		t.Errorf("user list --limit 2:\n%s", r)
	}
	r = mustCV(t, "user", "lifetimes", "--set", "team_leader=30d", "--data", dir)
	if !regexp.MustCompile(`(?m)^team_leader\s+30d$`).MatchString(r.stdout) {
		t.Errorf("user lifetimes on the host:\n%s", r)
	}
	if r := cv(t, "user", "lifetimes", "--set", "team_leader=30m", "--data", dir); r.code != 1 || !strings.Contains(r.stderr, "1h and 5 years") {
		t.Errorf("a lifetime under an hour:\n%s", r)
	}
	reOut := filepath.Join(work, "tl.age")
	mustCV(t, "user", "reissue", "tl-18070", "--recipient", id.Recipient().String(), "--out", reOut, "--data", dir)
	if re := openTokens(t, reOut, id); re["tl-18070"][1] == toks["tl-18070"][1] {
		t.Error("user reissue on the host gave the same token")
	}

	// The field office's token recipient: shown, registered, used when
	// none is named, removed.
	if r := mustCV(t, "user", "token-recipient", "--data", dir); r.stdout != "" || !strings.Contains(r.stderr, "no field-office token recipient is registered") {
		t.Errorf("user token-recipient, none registered:\n%s", r)
	}
	if r := cv(t, "user", "token-recipient", "--recipient-file", filepath.Join(work, "office.key"), "--data", dir); r.code != 2 || !strings.Contains(r.stderr, "secret key") || strings.Contains(r.stderr, "AGE-SECRET-KEY-1") {
		t.Errorf("registering a secret key as the token recipient:\n%s", r)
	}
	if r := cv(t, "user", "token-recipient", "age1nope", "--data", dir); r.code != 2 || !strings.Contains(r.stderr, "age recipient") {
		t.Errorf("registering a bad recipient:\n%s", r)
	}
	for _, bad := range [][]string{{"--clear", id.Recipient().String()}, {id.Recipient().String(), "--recipient-file", pub}, {"a", "b"}} {
		if r := cv(t, append([]string{"user", "token-recipient", "--data", dir}, bad...)...); r.code != 2 {
			t.Errorf("user token-recipient %v:\n%s", bad, r)
		}
	}
	r = mustCV(t, "user", "token-recipient", id.Recipient().String(), "--data", dir)
	if r.stdout != id.Recipient().String()+"\n" || !strings.Contains(r.stderr, "registered: tokens made over the API") {
		t.Errorf("user token-recipient age1…:\n%s", r)
	}
	if r := mustCV(t, "user", "token-recipient", "--data", dir); r.stdout != id.Recipient().String()+"\n" {
		t.Errorf("user token-recipient shows:\n%s", r)
	}
	reOut = filepath.Join(work, "tl2.age")
	mustCV(t, "user", "reissue", "tl-18070", "--out", reOut, "--data", dir)
	if re := openTokens(t, reOut, id); len(re) != 1 {
		t.Errorf("user reissue on the host to the registered recipient: %v", re)
	}
	if r := mustCV(t, "user", "token-recipient", "--clear", "--data", dir); !strings.Contains(r.stderr, "removed the field office's token recipient") {
		t.Errorf("user token-recipient --clear:\n%s", r)
	}
	if r := cv(t, "user", "reissue", "tl-18070", "--out", filepath.Join(work, "tl3.age"), "--data", dir); r.code != 2 || !strings.Contains(r.stderr, "is required") {
		t.Errorf("user reissue on the host once the recipient is removed:\n%s", r)
	}
	// `user add` with a recipient writes the encrypted token; without
	// one it prints the token, as it always has.
	addOut := filepath.Join(work, "st.age")
	r = mustCV(t, "user", "add", "st-1", "--role", "steering", "--area", "437", "--recipient-file", pub, "--out", addOut, "--data", dir)
	if st := openTokens(t, addOut, id); r.stdout != "" || len(st) != 1 {
		t.Errorf("user add --recipient on the host:\n%s", r)
	}
	mustCV(t, "audit", "verify", "--data", dir)
}

// TestUserImportAgeCLI: the field office opens the tokens of an import
// with the real age command and its own key file, as the README says.
func TestUserImportAgeCLI(t *testing.T) {
	t.Parallel()
	needTools(t, "age", "age-keygen")
	dir := newVault(t)
	work := t.TempDir()
	key := filepath.Join(work, "office.key")
	if b, err := exec.Command("age-keygen", "-o", key).CombinedOutput(); err != nil {
		t.Fatalf("age-keygen: %v\n%s", err, b)
	}
	pub, err := exec.Command("age-keygen", "-y", key).Output()
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(work, "office.pub")
	if err := os.WriteFile(pubFile, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	field := filepath.Join(work, "field.csv")
	if err := os.WriteFile(field, []byte(fieldCSV), 0o600); err != nil {
		t.Fatal(err)
	}
	boss := writeToken(t, work, "boss", addUser(t, dir, "boss", "admin", "VN"))
	mustCV(t, "user", "token-recipient", "--recipient-file", pubFile, "--data", dir)
	srv := startServer(t, dir)
	out := filepath.Join(work, "field.tokens.age")
	mustCV(t, "user", "import", field, "--out", out, "--server", srv.base, "--token-file", boss)
	plain, err := exec.Command("age", "-d", "-i", key, out).Output()
	if err != nil {
		t.Fatalf("age -d: %v", err)
	}
	toks := parseTokens(t, plain)
	if len(toks) != 3 || srv.status(t, "/v1/progress?area=18070-01", toks["enum-001"][1]) != http.StatusOK {
		t.Errorf("the tokens age decrypted: %v", toks)
	}
}

func TestPolicyHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args  []string
		usage string
	}{
		{[]string{"policy", "--help"}, "usage: censusvault policy show|export|grant|deny|revoke|load|proposals|confirm|check"},
		{[]string{"policy", "show", "--help"}, "usage: censusvault policy show [--data DIR]"},
		{[]string{"policy", "grant", "--help"}, "usage: censusvault policy grant USER --role ROLE --area CODE"},
		{[]string{"policy", "confirm", "--help"}, "usage: censusvault policy confirm SEQ --server URL"},
		{[]string{"policy", "check", "--help"}, "policy check --event N"},
		{[]string{"user", "import", "--help"}, "usage: censusvault user import FILE.csv --out FILE [--recipient age1…]"},
		{[]string{"user", "list", "--help"}, "usage: censusvault user list"},
		{[]string{"user", "reissue", "--help"}, "usage: censusvault user reissue NAME --out FILE [--recipient age1…]"},
		{[]string{"user", "token-recipient", "--help"}, "usage: censusvault user token-recipient [age1… | --recipient-file FILE | --clear]"},
		{[]string{"user", "lifetimes", "--help"}, "usage: censusvault user lifetimes"},
		{[]string{"user", "add", "--help"}, "--recipient"},
		{[]string{"--help"}, "policy"},
	} {
		r := cv(t, tc.args...)
		if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, tc.usage) {
			t.Errorf("censusvault %s: want exit 0 and %q on stderr:\n%s", strings.Join(tc.args, " "), tc.usage, r)
		}
	}
	// The ones that may work on the host document the store flags and
	// the remote ones.
	for _, args := range [][]string{{"policy", "show", "--help"}, {"policy", "grant", "--help"}, {"user", "import", "--help"}, {"user", "list", "--help"}} {
		r := cv(t, args...)
		for _, f := range []string{"--data", "--store", "--server", "--token-file"} {
			if !strings.Contains(r.stderr, f) {
				t.Errorf("censusvault %s does not document %s", strings.Join(args, " "), f)
			}
		}
	}
}
