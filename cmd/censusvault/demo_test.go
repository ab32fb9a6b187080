package main_test

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDemo runs `censusvault demo` as the acceptance does and
// checks it prints the seed's table, then verifies the vault it kept with
// the CLI.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo deposits 9,061 households (10–20 s)")
	}
	t.Parallel()
	keep := filepath.Join(t.TempDir(), "demo")
	r := mustCV(t, "demo", "--keep", keep)
	out := r.stdout

	// The table: code, name, planned, interviewed, percent, formatted as
	// the statistics office writes them.
	for _, row := range []struct{ code, name, planned, interviewed, percent string }{
		{"18070", "Phường Bắc Hồng", "2.465", "1.976", "80,16 %"},
		{"18073", "Phường Nam Hồng", "2.350", "1.704", "72,51 %"},
		{"18076", "Phường Trung Lương", "1.571", "1.312", "83,51 %"},
		{"18079", "Phường Đức Thuận", "1.766", "1.289", "72,99 %"},
		{"18082", "Phường Đậu Liêu", "1.888", "1.486", "78,71 %"},
		{"18085", "Xã Thuận Lộc", "1.746", "1.294", "74,11 %"},
		{"437", "Thị xã Hồng Lĩnh", "11.786", "9.061", "76,88 %"},
	} {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(row.code) + `\s+` + regexp.QuoteMeta(row.name) + `\s+` +
			regexp.QuoteMeta(row.planned) + `\s+` + regexp.QuoteMeta(row.interviewed) + `\s+` + regexp.QuoteMeta(row.percent) + `$`)
		if !re.MatchString(out) {
			t.Errorf("demo output has no row %v", row)
		}
	}
	for _, want := range []string{
		"Thị xã Hồng Lĩnh: 9.061/11.786 households, 76,88 %",
		"deposited 9.061 households over HTTP",
		"asks for progress of Phường Nam Hồng: HTTP 403",
		"asks to read back a household it deposited: HTTP 403",
		"a request with a made-up token: HTTP 401",
		"same receipt: true",
		"audit chain OK: ",
		"the approver makes publication point 2019-04-10: 6 of 6 communes frozen at their new state",
		"a second point straight after: HTTP 409 point_too_soon",
		"the researcher's standard table (project hl-pyramid-2019): Population by five-year age group and sex, town 437, at point 2019-04-10,",
		"66 cells released and debited from the project's budget (99.934 left)",
		"the same request again: identical bytes",
		"the researcher's custom table (young people aged 15–24 by ward and sex), released under differential privacy (audit event ",
		"ρ = 0.02 (ε = 1.24 at δ = 10⁻¹⁰), discrete Gaussian noise of σ = 40 persons a cell",
		"the same cells asked with rows and columns swapped: the same noisy values, no new debit (repeat: true)",
		"a table aimed at a few people (ethnicity of EA 18070-01's people aged 80–84): released, and charged",
		"a variable the project did not list: HTTP 403 permission_denied",
		"the pyramid of one enumeration area: HTTP 400 invalid",
		"and the enumerator proves it is in the audit log: an inclusion proof of ",
		"the auditor's export verifies offline: ",
		"the admin asks for a processor's token encrypted to a key of its own: HTTP 403 recipient_not_registered",
		"its grant waits for an approver (proposal [1])",
		"the admin confirms it himself: HTTP 403 permission_denied",
		"team leader tl-18070 opens one household of 18070-01 for review: classes identifying, analytic, operational",
		"the processor asks for an extract with names and phone numbers: HTTP 403 class_not_allowed",
		"downloads it before approval: HTTP 409 proposal_pending",
		"the approver approves it, then asks to download it: HTTP 403 permission_denied",
		"the centre decrypts it: 1.976 households",
		`the auditor asks why tl-18070 may see names in 18070-01: allow=true, by "grant team_leader@18070; p, team_leader, submission.read_identifying, allow"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if strings.Contains(out, "unexpected") {
		t.Errorf("demo reports an unexpected outcome:\n%s", out)
	}
	if !strings.Contains(r.stderr, "depositing: ") {
		t.Errorf("no progress line on stderr while depositing")
	}

	// The kept vault verifies with the CLI, to the same number of events
	// the demo reported.
	m := regexp.MustCompile(`audit chain OK: ([0-9.]+) events`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("demo output:\n%s", out)
	}
	v := mustCV(t, "audit", "verify", "--data", keep)
	if want := "audit chain OK: " + strings.ReplaceAll(m[1], ".", "") + " events"; !strings.Contains(v.stdout, want) {
		t.Errorf("audit verify of the kept demo vault: %q, want %q", v.stdout, want)
	}
	if u := mustCV(t, "user", "show", "enum-18070-01", "--data", keep); !strings.Contains(u.stdout, "allow enumerator at 18070-01") {
		t.Errorf("user show on the kept demo vault: %q", u.stdout)
	}
	// The researcher's release replays to the same digest.
	m = regexp.MustCompile(`the release \(audit event ([0-9]+)\) and its sha256 are in the audit log`).FindStringSubmatch(out)
	if m == nil {
		t.Fatal("no release line")
	}
	if rp := mustCV(t, "table", "replay", m[1], "--data", keep); !strings.Contains(rp.stdout, "at publication point 2019-04-10") || !strings.Contains(rp.stdout, "digest matches") {
		t.Errorf("table replay of the demo's release: %q", rp.stdout)
	}
	// The custom (dp) release replays too: the same seed from the same
	// query, the same noise.
	m = regexp.MustCompile(`released under differential privacy \(audit event ([0-9]+)\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatal("no dp release line")
	}
	if rp := mustCV(t, "table", "replay", m[1], "--data", keep); !strings.Contains(rp.stdout, "digest matches") {
		t.Errorf("table replay of the demo's dp release: %q", rp.stdout)
	}
	// The ledgers after the two charged dp tables (the swapped repeat is
	// free): 0.04 of every share spent in commune 18070.
	for _, re := range []string{
		`(?m)^  commune\s+every commune\s+2\s+14\.87\s+0\.04\s+1\.78\s+98$`,
		`(?m)^  researcher\s+researcher-1\s+0\.4\s+6\.06\s+0\.04\s+1\.78\s+18$`,
		`(?m)^  project\s+hl-pyramid-2019\s+0\.2\s+4\.17\s+0\.04\s+1\.78\s+8$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("demo output has no ledger line %s", re)
		}
	}
	// Cells: two 66-cell standard tables, then the dp tables' 21 and 57
	// cells (the repeat debits nothing).
	p := mustCV(t, "project", "show", "hl-pyramid-2019", "--data", keep)
	if !strings.Contains(p.stdout, "spent:     210\n") {
		t.Errorf("project show after two 66-cell tables and dp tables of 21 and 57 cells: %q", p.stdout)
	}
	// The pyramid's total row: all persons, both sexes, perturbed.
	if !regexp.MustCompile(`(?m)^  all\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+$`).MatchString(out) {
		t.Errorf("the pyramid has no total row:\n%s", out)
	}
}
