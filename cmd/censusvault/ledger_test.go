package main_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// ledgerRow is one share row of `ledger show`: KIND HOLDER RHO EPSILON
// SPENT EPSILON_SPENT WORST_AREA TABLES_LEFT SET.
func ledgerRow(t *testing.T, out, kind, holder string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 9 && f[0] == kind && f[1] == holder {
			return f
		}
	}
	return nil
}

// writeToken writes tok to a 0600 file in dir and returns its path.
func writeToken(t *testing.T, dir, name, tok string) string {
	t.Helper()
	p := filepath.Join(dir, name+".token")
	if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLedgerCommands is issue 12 as its users meet it on the command
// line: a researcher's custom table comes back as a dp table whose ρ
// `table request` reports, and the same request again as a repeat that
// is charged nothing; the operator's `ledger show` on the vault host and
// the researcher's over HTTP say what was spent, where, and how many
// tables are left; an admin proposes a larger share, and an admin who is
// also an approver cannot approve their own proposal (four eyes) while
// another approver can, after which the share is larger on the host.
func TestLedgerCommands(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	work := t.TempDir()
	mustCV(t, "gen", "--households", "300", "--data", dir)
	mustCV(t, "project", "add", "fert-2019", "--data", dir, "--title", "Fertility", "--purpose", "Household structure of Hồng Lĩnh",
		"--areas", "437", "--variables", "sex,age_group5,relationship", "--expires", "180d", "--budget", "100000")
	alice := writeToken(t, work, "alice", addUser(t, dir, "alice", "researcher", "437", "--project", "fert-2019"))
	adm := writeToken(t, work, "adm", addUser(t, dir, "adm", "admin", "VN"))
	ann := writeToken(t, work, "ann", addUser(t, dir, "ann", "approver", "VN"))
	boss := writeToken(t, work, "boss", addUser(t, dir, "boss", "admin", "VN"))
	mustCV(t, "user", "grant", "boss", "--role", "approver", "--area", "VN", "--data", dir)

	// Before any dp table: every share at its default, nothing spent.
	r := mustCV(t, "ledger", "show", "--data", dir)
	if !strings.Contains(r.stdout, "each table spends ρ=0.02 unless it names its own") || !strings.Contains(r.stderr, "no share changes proposed") {
		t.Errorf("ledger show on a new vault:\n%s", r)
	}
	if f := ledgerRow(t, r.stdout, "commune", "-"); f == nil || f[2] != "2" || f[4] != "0" || f[7] != "100" || f[8] != "default" {
		t.Errorf("the commune cap row %v, want 2, nothing spent, 100 tables, default:\n%s", f, r.stdout)
	}
	if f := ledgerRow(t, r.stdout, "project", "fert-2019"); f == nil || f[2] != "0.2" || f[7] != "10" {
		t.Errorf("the project row %v:\n%s", f, r.stdout)
	}

	srv := startServer(t, dir)
	reqFile := filepath.Join(work, "dp.json")
	if err := os.WriteFile(reqFile, []byte(`{"project": "fert-2019", "purpose": "age structure of Phường Bắc Hồng", "rows": ["sex"], "cols": ["age_group5"], "filter": {"area": ["18070"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r = mustCV(t, "table", "request", "--server", srv.base, "--token-file", alice, reqFile)
	rep := parseReport(t, r.stderr)
	if !strings.HasPrefix(rep.point, "daily-") || rep.cells == "0" || !regexp.MustCompile(`(?m)^rho: +0\.02 \(a dp table`).MatchString(r.stderr) ||
		strings.Contains(r.stderr, "repeat:") || !strings.Contains(r.stdout, `"table":"censusvault.dp-table/v1"`) || sha256Hex([]byte(r.stdout)) != rep.digest {
		t.Fatalf("a dp table: point %s, cells %s:\n%s", rep.point, rep.cells, r)
	}
	first := r.stdout
	r = mustCV(t, "table", "request", "--server", srv.base, "--token-file", alice, reqFile)
	again := parseReport(t, r.stderr)
	if again.cells != "0" || again.remaining != rep.remaining || again.point != rep.point || r.stdout != first ||
		!regexp.MustCompile(`(?m)^repeat: +no debit`).MatchString(r.stderr) || !strings.Contains(r.stderr, "rho:       0.02") {
		t.Errorf("the same dp table again: cells %s, remaining %s (was %s), same table %v:\n%s", again.cells, again.remaining, rep.remaining, r.stdout == first, r.stderr)
	}

	// The researcher's ledger over HTTP: the cap, their own share and
	// their project's.
	r = mustCV(t, "ledger", "show", "--server", srv.base, "--token-file", alice)
	if f := ledgerRow(t, r.stdout, "researcher", "alice"); f == nil || f[2] != "0.4" || f[4] != "0.02" || f[6] != "18070" || f[7] != "19" {
		t.Errorf("alice's share %v, want 0.02 of 0.4 spent in 18070, 19 tables left:\n%s", f, r.stdout)
	}
	if n := strings.Count(strings.TrimSpace(r.stdout), "\n"); n != 5 || ledgerRow(t, r.stdout, "commune", "-") == nil || ledgerRow(t, r.stdout, "project", "fert-2019") == nil {
		t.Errorf("alice's ledger: want a header line, a blank line, the column names and three shares:\n%s", r.stdout)
	}

	// An admin proposes; proposing prints the proposal's number alone
	// on stdout.
	r = mustCV(t, "ledger", "propose", "--kind", "researcher", "--holder", "alice", "--rho", "0.6", "--reason", "a second wave of tables",
		"--server", srv.base, "--token-file", adm)
	if r.stdout != "1\n" || !strings.Contains(r.stderr, "proposed change 1: researcher share alice ρ=0.6") || !strings.Contains(r.stderr, "ledger approve 1") {
		t.Errorf("ledger propose:\n%s", r)
	}
	seq := strings.TrimSpace(mustCV(t, "ledger", "propose", "--kind", "commune", "--rho", "3", "--reason", "a larger census",
		"--server", srv.base, "--token-file", boss).stdout)
	for _, tc := range []struct {
		what, seq, token, says string
	}{
		{"an admin without an approver grant", "1", adm, "HTTP 403: not permitted to approve share changes"},
		{"the proposer, admin and approver both", seq, boss, "HTTP 403: you proposed this change: another person, an approver, must approve it"},
		{"an unknown proposal", "99", ann, "HTTP 404: no share proposal 99"},
	} {
		r := cv(t, "ledger", "approve", tc.seq, "--server", srv.base, "--token-file", tc.token)
		if r.code != 1 || !strings.Contains(r.stderr, tc.says) || r.stdout != "" {
			t.Errorf("ledger approve by %s: want exit 1 saying %q, got\n%s", tc.what, tc.says, r)
		}
	}
	r = mustCV(t, "ledger", "approve", "1", "--server", srv.base, "--token-file", ann)
	if !strings.Contains(r.stderr, "approved change 1: researcher share alice is now ρ=0.6") || !strings.Contains(r.stderr, "as adm proposed: a second wave of tables") {
		t.Errorf("ledger approve:\n%s", r)
	}
	if r := cv(t, "ledger", "approve", "1", "--server", srv.base, "--token-file", ann); r.code != 1 || !strings.Contains(r.stderr, "HTTP 409") {
		t.Errorf("approving twice:\n%s", r)
	}
	srv.stop(t)

	// On the host: the approved share, and both changes.
	r = mustCV(t, "ledger", "show", "--data", dir)
	if f := ledgerRow(t, r.stdout, "researcher", "alice"); f == nil || f[2] != "0.6" || f[7] != "29" || f[8] != "approved" {
		t.Errorf("alice's share after the approval %v, want 0.6, 29 tables left, approved:\n%s", f, r.stdout)
	}
	if f := ledgerRow(t, r.stdout, "commune", "-"); f == nil || f[2] != "2" || f[4] != "0.02" {
		t.Errorf("the commune cap after the refused self-approval %v, want still 2:\n%s", f, r.stdout)
	}
	pending := regexp.MustCompile(`(?m)^` + seq + `\s+commune\s+-\s+3\s+[0-9.]+\s+pending\s+boss\s+\S+\s+-\s+-\s+a larger census$`)
	approved := regexp.MustCompile(`(?m)^1\s+researcher\s+alice\s+0\.6\s+[0-9.]+\s+approved\s+adm\s+\S+\s+ann\s+\S+\s+a second wave of tables$`)
	if p, a := pending.FindStringIndex(r.stdout), approved.FindStringIndex(r.stdout); p == nil || a == nil || p[0] > a[0] {
		t.Errorf("ledger show: want the pending change, then the approved one:\n%s", r.stdout)
	}
	// Every proposal, approval, refusal and read is in the audit chain.
	mustCV(t, "audit", "verify", "--data", dir)

	// Usage errors: exit 2, nothing sent.
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"propose", "--rho", "0.6", "--reason", "x", "--server", "http://127.0.0.1:1", "--token-file", adm}, "--kind is required"},
		{[]string{"propose", "--kind", "commune", "--reason", "x", "--server", "http://127.0.0.1:1", "--token-file", adm}, "--rho is required"},
		{[]string{"propose", "--kind", "commune", "--rho", "3", "--server", "http://127.0.0.1:1", "--token-file", adm}, "--reason is required"},
		{[]string{"propose", "--kind", "commune", "--rho", "3", "--reason", "x", "--token-file", adm}, "--server URL is required"},
		{[]string{"propose", "--kind", "commune", "--rho", "3", "--reason", "x", "--server", "http://127.0.0.1:1"}, "--token-file"},
		{[]string{"approve", "--server", "http://127.0.0.1:1", "--token-file", ann}, "expected exactly one SEQ"},
		{[]string{"approve", "first", "--server", "http://127.0.0.1:1", "--token-file", ann}, `SEQ "first" is not a proposal's number`},
		{[]string{"approve", "0", "--server", "http://127.0.0.1:1", "--token-file", ann}, `SEQ "0"`},
		{[]string{"approve", "1", "--token-file", ann}, "--server URL is required"},
		{[]string{"show", "stray", "--data", dir}, `unexpected argument "stray"`},
		{[]string{"revoke", "1"}, `unknown subcommand "revoke"`},
	} {
		r := cv(t, append([]string{"ledger"}, tc.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.says) || r.stdout != "" {
			t.Errorf("ledger %s: want exit 2 saying %q, got\n%s", strings.Join(tc.args, " "), tc.says, r)
		}
	}
}

// A vault that has been tampered with (or a server that is not the
// vault) answers the ledger with terminal escape sequences and tabs in
// its free text, to rewrite what the approver sees before approving:
// `ledger show` prints none of them.
func TestLedgerShowPrintsNoEscapes(t *testing.T) {
	t.Parallel()
	evil := "raise\x1b[2K\x1b[1A\rapproved by the steering committee\t\u202e"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/ledger" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"table_rho": "0.02", "delta": 1e-10,
			"shares": []map[string]any{{"kind": "researcher", "holder": "eve\x1b]0;title\x07", "rho": "0.4", "epsilon": 5.5, "spent": "0", "worst_area": "VN"}},
			"changes": []map[string]any{{"seq": 7, "kind": "commune", "holder": "", "rho": "50", "epsilon": 90.1, "reason": evil,
				"proposed_by": "mallory\x1b[8m", "proposed_at": "2019-05-01T09:00:00Z"}},
		})
	}))
	defer srv.Close()
	r := cvEnv(t, []string{"CENSUSVAULT_TOKEN=" + strings.Repeat("A", 43)}, "ledger", "show", "--server", srv.URL)
	if r.code != 0 {
		t.Fatalf("ledger show:\n%s", r)
	}
	if strings.ContainsAny(r.stdout+r.stderr, "\x1b\x07\r\u202e") || strings.Contains(r.stdout, "committee\t") {
		t.Errorf("ledger show printed control characters from the server:\n%q", r.stdout)
	}
	if !strings.Contains(r.stdout, "approved by the steering committee") || !strings.Contains(r.stdout, "mallory") {
		t.Errorf("ledger show lost the printable text:\n%s", r.stdout)
	}
	if f := ledgerRow(t, r.stdout, "researcher", "eve\ufffd]0;title\ufffd"); f == nil {
		t.Errorf("the share row is not one row of nine columns:\n%s", r.stdout)
	}
}
