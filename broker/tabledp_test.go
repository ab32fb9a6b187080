package broker_test

// Custom tables under differential privacy through the broker (issue 12):
// releases at the day's scheduled point, repeats without a debit, replay,
// the privacy ledger and its four-eyes share changes — each protection
// tested as the attack it stops.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// dpCommuneTable asks project's persons by sex and age group in commune A.
func dpCommuneTable(project, extra string) string {
	return `{"project":"` + project + `","purpose":"age structure","rows":["sex"],"cols":["age_group5"],"filter":{"area":["` + communeA + `"]` + extra + `}}`
}

// ledgerDebits is every stored ledger debit.
func (tv *tableVault) ledgerDebits() []storage.LedgerDebit {
	tv.t.Helper()
	var out []storage.LedgerDebit
	if err := tv.store.View(context.Background(), func(tx storage.ReadTx) error {
		return tx.LedgerDebits(-1, func(d storage.LedgerDebit) (bool, error) {
			out = append(out, d)
			return true, nil
		})
	}); err != nil {
		tv.t.Fatal(err)
	}
	return out
}

func (tv *tableVault) mustDP(user, body string) *broker.TableRelease {
	tv.t.Helper()
	r, err := tv.request(user, body, broker.TableOpts{})
	if err != nil {
		tv.t.Fatalf("%s: %v", body, err)
	}
	if !r.DP {
		tv.t.Fatalf("%s: not a dp release", body)
	}
	return r
}

// TestDPTableRelease: a custom table is released under dp at the day's
// scheduled point, logged with its normalized request and the ledger's
// amounts, and replays; the same request again (or laid out otherwise)
// is the same answer and is not charged again; another request is.
func TestDPTableRelease(t *testing.T) {
	ctx := context.Background()
	tv := newTableVault(t, 300)
	from := tv.auditHead()
	r := tv.mustDP("rita", dpCommuneTable("fert", ""))
	if r.Rho != "0.02" || r.Repeat || r.Cells == 0 || !strings.HasPrefix(r.Point, "daily-") {
		t.Fatalf("release: rho %q repeat %v cells %d point %q", r.Rho, r.Repeat, r.Cells, r.Point)
	}
	var tab struct {
		Table   string `json:"table"`
		Point   string `json:"point"`
		Control struct {
			Rho     string  `json:"rho"`
			Epsilon float64 `json:"epsilon"`
		} `json:"disclosure_control"`
	}
	if err := json.Unmarshal(r.Body, &tab); err != nil || tab.Table != "censusvault.dp-table/v1" || tab.Point != r.Point || tab.Control.Rho != "0.02" || tab.Control.Epsilon <= 0 {
		t.Fatalf("table header %+v (%v)", tab, err)
	}
	evs := tv.events(from, "table.request")
	if len(evs) != 1 || evs[0].Outcome != "ok" || evs[0].ReleaseDigest != r.Digest || !strings.Contains(evs[0].Request, `"rho":"0.02"`) ||
		!strings.Contains(evs[0].Reason, "dp: charged ρ=0.02") || !strings.Contains(evs[0].Reason, "commune cap now 0.02 of 2") {
		t.Fatalf("audit: %s", showEvents(evs))
	}
	if pts := tv.events(from, "release_point.schedule"); len(pts) != 1 || pts[0].Actor != "system:scheduler" {
		t.Fatalf("the day's point was not logged once: %s", showEvents(pts))
	}
	debits := tv.ledgerDebits()
	if len(debits) != 1 || debits[0].AuditIndex != evs[0].Index || debits[0].Rho != 20000 || debits[0].Researcher != "rita" ||
		debits[0].Project != "fert" || len(debits[0].Areas) != 1 || debits[0].Areas[0] != communeA {
		t.Fatalf("ledger debits %+v", debits)
	}
	spent := func() int64 {
		p, err := tv.b.Project(ctx, "fert")
		if err != nil {
			t.Fatal(err)
		}
		return p.Spent
	}
	cells := spent()

	// The repeat: the same bytes, no debit.
	again := tv.mustDP("rita", dpCommuneTable("fert", ""))
	if !bytes.Equal(again.Body, r.Body) || !again.Repeat || again.Cells != 0 {
		t.Fatalf("repeat: same bytes %v, repeat %v, cells %d", bytes.Equal(again.Body, r.Body), again.Repeat, again.Cells)
	}
	// Laid out otherwise, with a filter spelt otherwise: the same query.
	swapped := tv.mustDP("rita", `{"project":"fert","purpose":"x","cols":["sex"],"rows":["age_group5"],"filter":{"area":["`+communeA+`-01","`+communeA+`-02"]}}`)
	if !swapped.Repeat {
		t.Fatal("the same cells laid out otherwise were charged as a new query (fresh noise to average)")
	}
	if got := len(tv.ledgerDebits()); got != 1 || spent() != cells {
		t.Fatalf("repeats debited: %d debits, %d cells spent (was %d)", got, spent(), cells)
	}

	// Another question is charged.
	other := tv.mustDP("rita", dpCommuneTable("fert", `,"sex":[1]`))
	if other.Repeat || len(tv.ledgerDebits()) != 2 {
		t.Fatal("a different query was not charged")
	}

	// Every release replays to the same digest.
	for _, rel := range []*broker.TableRelease{r, again, swapped, other} {
		res, err := tv.b.ReplayTable(ctx, "cli:auditor", rel.AuditIndex)
		if err != nil || !res.Match {
			t.Fatalf("replay of event %d: %v, match %v", rel.AuditIndex, err, res != nil && res.Match)
		}
	}
	// The point is listed as scheduled; standard tables refuse it.
	pts, err := tv.b.ReleasePoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last := pts[len(pts)-1]; !last.Scheduled || last.Name != r.Point {
		t.Fatalf("points %+v", pts)
	}
	if _, err := tv.request("rita", stdRequest("fert", "population_age5_sex", "437", r.Point), broker.TableOpts{}); err == nil || broker.KindOf(err) != broker.Invalid {
		t.Fatalf("a standard table at a scheduled point: %v", err)
	}
	// And an approver cannot squat the scheduled names.
	if _, err := tv.b.CreateReleasePointAs(ctx, tv.caller("appr"), "daily-2099-01-01"); errCode(err) != "invalid_point_name" {
		t.Fatalf("publication point named like a scheduled one: %v", err)
	}
}

// raise proposes a share as proposer and has approver approve it.
func (tv *tableVault) raise(proposer, approver, kind, holder, rho string) {
	tv.t.Helper()
	ctx := context.Background()
	ch, err := tv.b.ProposeShare(ctx, tv.caller(proposer), kind, holder, rho, "test raise")
	if err != nil {
		tv.t.Fatalf("propose %s %s %s: %v", kind, holder, rho, err)
	}
	if _, err := tv.b.ApproveShare(ctx, tv.caller(approver), ch.Seq); err != nil {
		tv.t.Fatalf("approve %d: %v", ch.Seq, err)
	}
}

// TestDPLedgerBoundsOneResearcher is the attack of a researcher who asks
// ever more tables of one commune, then opens a second project to go on:
// the project share stops the first, the researcher share the second,
// whatever the project shares say; each refusal is audited with the
// amounts and releases nothing.
func TestDPLedgerBoundsOneResearcher(t *testing.T) {
	tv := newTableVault(t, 300)
	tv.addUser(broker.NewUser{Name: "adm", Role: policy.Admin, Area: keyNation})
	tv.addUser(broker.NewUser{Name: "rita2", Role: policy.Researcher, Area: keyNation, Project: "other"})
	// rita also works on "other".
	if err := tv.b.Grant(context.Background(), actor, "rita", policy.Grant{Role: policy.Researcher, Area: string(keyNation), Project: "other"}); err != nil {
		t.Fatal(err)
	}
	// Both projects may spend all of the researcher share.
	tv.raise("adm", "appr", broker.ShareProject, "fert", "0.4")
	tv.raise("adm", "appr", broker.ShareProject, "other", "0.4")

	ask := func(project string, i int) (*broker.TableRelease, error) {
		// A different filter each time: a new query, a new debit. (The
		// same filter in the other project would be the same query, a
		// free repeat: the query names no project.)
		extra := `,"age_group5":["` + band(i) + `"]`
		if i >= 20 {
			extra += `,"sex":[1]`
		}
		return tv.request("rita", dpCommuneTable(project, extra), broker.TableOpts{})
	}
	n := 0
	for ; n < 10; n++ {
		if _, err := ask("fert", n); err != nil {
			t.Fatalf("table %d in fert: %v", n, err)
		}
	}
	for ; n < 20; n++ {
		if _, err := ask("other", n); err != nil {
			t.Fatalf("table %d in other: %v", n, err)
		}
	}
	from := tv.auditHead()
	r, err := ask("other", 20)
	if err == nil || errCode(err) != "privacy_budget_exhausted" || !strings.Contains(err.Error(), "researcher rita") {
		t.Fatalf("the 21st table of commune %s by one researcher over two projects: %v (%v)", communeA, err, r != nil)
	}
	evs := tv.events(from)
	if len(evs) != 1 || evs[0].Outcome != "denied" || evs[0].ReleaseDigest != "" || !strings.Contains(evs[0].Reason, "spent 0.4 of 0.4") {
		t.Fatalf("refusal audit: %s", showEvents(evs))
	}
	if got := len(tv.ledgerDebits()); got != 20 {
		t.Fatalf("%d debits after the refusal, want 20", got)
	}
	// Another researcher of the same project still may: the researcher
	// share is rita's.
	if _, err := tv.request("rita2", dpCommuneTable("other", `,"age_group5":["0-4"]`), broker.TableOpts{}); err != nil {
		t.Fatalf("another researcher: %v", err)
	}
}

// band is the i-th five-year age band (modulo 20).
func band(i int) string {
	lo := 5 * (i % 20)
	return fmt.Sprintf("%d-%d", lo, lo+4)
}

// TestDPCommuneCapAcrossResearchers: researchers publish, so the
// commune's cap holds across all of them: two researchers of two
// projects, each within their shares, together stop at the cap.
func TestDPCommuneCapAcrossResearchers(t *testing.T) {
	tv := newTableVault(t, 300)
	tv.addUser(broker.NewUser{Name: "adm", Role: policy.Admin, Area: keyNation})
	tv.raise("adm", "appr", broker.ShareCommune, "", "0.1")
	for i := range 3 {
		if _, err := tv.request("rita", dpCommuneTable("fert", `,"age_group5":["`+band(i)+`"]`), broker.TableOpts{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		if _, err := tv.request("otto", dpCommuneTable("other", `,"age_group5":["`+band(10+i)+`"]`), broker.TableOpts{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := tv.request("otto", dpCommuneTable("other", `,"age_group5":["`+band(12)+`"]`), broker.TableOpts{})
	if errCode(err) != "privacy_budget_exhausted" || !strings.Contains(err.Error(), "commune cap") {
		t.Fatalf("the sixth table of commune %s (cap 0.1 = five tables): %v", communeA, err)
	}
	// A table of another commune is still paid for.
	if _, err := tv.request("otto", `{"project":"other","purpose":"p","rows":["sex"],"filter":{"area":["`+communeB+`"]}}`, broker.TableOpts{}); err != nil {
		t.Fatalf("another commune: %v", err)
	}
	// The district table touches commune A: refused.
	if _, err := tv.request("otto", `{"project":"other","purpose":"p","rows":["sex"],"filter":{"area":["437"]}}`, broker.TableOpts{}); errCode(err) != "privacy_budget_exhausted" {
		t.Fatalf("a district table over a spent commune: %v", err)
	}
}

// TestDPShareFourEyes: a share changes only when a second person, an
// approver, approves someone else's proposal. The attacks: an admin
// approving; an approver who is also an admin approving their own
// proposal; a researcher proposing another's share; approving twice.
func TestDPShareFourEyes(t *testing.T) {
	ctx := context.Background()
	tv := newTableVault(t, 50)
	tv.addUser(broker.NewUser{Name: "adm", Role: policy.Admin, Area: keyNation})
	tv.addUser(broker.NewUser{Name: "both", Role: policy.Admin, Area: keyNation})
	if err := tv.b.Grant(ctx, actor, "both", policy.Grant{Role: policy.Approver, Area: string(keyNation)}); err != nil {
		t.Fatal(err)
	}
	shareOf := func(kind, holder string) string {
		l, err := tv.b.Ledger(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range l.Shares {
			if s.Kind == kind && s.Holder == holder {
				return s.Rho
			}
		}
		return ""
	}
	ch, err := tv.b.ProposeShare(ctx, tv.caller("adm"), broker.ShareProject, "fert", "1", "a large survey")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tv.b.ApproveShare(ctx, tv.caller("adm"), ch.Seq); broker.KindOf(err) != broker.Permission {
		t.Fatalf("an admin approved: %v", err)
	}
	ch2, err := tv.b.ProposeShare(ctx, tv.caller("both"), broker.ShareResearcher, "rita", "2", "self-approved")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tv.b.ApproveShare(ctx, tv.caller("both"), ch2.Seq); errCode(err) != "four_eyes" {
		t.Fatalf("an approver approved their own proposal: %v", err)
	}
	if _, err := tv.b.ProposeShare(ctx, tv.caller("rita"), broker.ShareResearcher, "otto", "2", "for a colleague"); broker.KindOf(err) != broker.Permission {
		t.Fatalf("a researcher proposed another's share: %v", err)
	}
	if _, err := tv.b.ProposeShare(ctx, tv.caller("adm"), broker.ShareProject, "fert", "1", "ok\x1b[2J\x1b[Happroved already"); broker.KindOf(err) != broker.Invalid {
		t.Fatalf("a reason with terminal escapes (shown to the approver): %v", err)
	}
	if _, err := tv.b.ProposeShare(ctx, tv.caller("rita"), broker.ShareCommune, "", "50", "more"); broker.KindOf(err) != broker.Permission {
		t.Fatalf("a researcher proposed the commune cap: %v", err)
	}
	if got := shareOf(broker.ShareProject, "fert"); got != "0.2" {
		t.Fatalf("fert's share is %s before any approval", got)
	}
	from := tv.auditHead()
	if _, err := tv.b.ApproveShare(ctx, tv.caller("appr"), ch.Seq); err != nil {
		t.Fatal(err)
	}
	if got := shareOf(broker.ShareProject, "fert"); got != "1" {
		t.Fatalf("fert's share is %s after the approval", got)
	}
	evs := tv.events(from)
	if len(evs) != 1 || evs[0].Action != "ledger.approve" || !strings.Contains(evs[0].Reason, "now ρ=1, ε=") {
		t.Fatalf("approval audit: %s", showEvents(evs))
	}
	if _, err := tv.b.ApproveShare(ctx, tv.caller("appr"), ch.Seq); errCode(err) != "proposal_approved" {
		t.Fatalf("approved twice: %v", err)
	}
	// A researcher may propose their own share; an approver approves.
	mine, err := tv.b.ProposeShare(ctx, tv.caller("rita"), broker.ShareResearcher, "rita", "0.6", "thesis")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tv.b.ApproveShare(ctx, tv.caller("appr"), mine.Seq); err != nil {
		t.Fatal(err)
	}
	if got := shareOf(broker.ShareResearcher, "rita"); got != "0.6" {
		t.Fatalf("rita's share %s", got)
	}
	// rita sees her share, her project's and the cap, not otto's.
	l, err := tv.b.LedgerFor(ctx, tv.caller("rita"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range l.Shares {
		if (s.Kind == broker.ShareResearcher && s.Holder != "rita") || (s.Kind == broker.ShareProject && s.Holder != "fert") {
			t.Fatalf("rita sees %s %s", s.Kind, s.Holder)
		}
	}
}

// TestDPLedgerSurvivesRestart: the ledger is the stored debits, not the
// broker's memory: a new broker on the same store refuses what the old
// one would have.
func TestDPLedgerSurvivesRestart(t *testing.T) {
	tv := newTableVault(t, 100)
	for i := range 10 {
		if _, err := tv.request("rita", dpCommuneTable("fert", `,"age_group5":["`+band(i)+`"]`), broker.TableOpts{}); err != nil {
			t.Fatal(err)
		}
	}
	tv.b = tv.openWith(broker.Opts{PointK: tablePointK, PointInterval: -1, Limits: broker.Limits{UserRate: -1}})
	if _, err := tv.request("rita", dpCommuneTable("fert", `,"age_group5":["`+band(11)+`"]`), broker.TableOpts{}); errCode(err) != "privacy_budget_exhausted" {
		t.Fatalf("after a restart: %v", err)
	}
}

// TestDPRepeatAfterShred is the attack of a repeat over changed data:
// the same query at the same point draws the same noise, so were it
// answered after households were shredded, the difference of the two
// answers would be the shredded households exactly; and were it refused,
// the refusal would tell whether any were in its cells. The shreds under
// a table's areas are part of its query: asked again after a shred, it is
// a new question — fresh noise, charged — and the replay of the first
// release hands back no table.
func TestDPRepeatAfterShred(t *testing.T) {
	ctx := context.Background()
	tv := newTableVault(t, 200)
	body := `{"project":"fert","purpose":"p","rows":["sex"],"filter":{"area":["437"]}}`
	first := tv.mustDP("rita", body)
	other := `{"project":"fert","purpose":"p","rows":["sex"],"filter":{"area":["` + communeA + `"]}}`
	tv.mustDP("rita", other)
	if _, err := tv.b.Shred(ctx, actor, crypto.Analytic, broker.AreaCode(communeB)); err != nil {
		t.Fatal(err)
	}
	again := tv.mustDP("rita", strings.Replace(body, `"purpose":"p"`, `"purpose":"p","as_of":"`+first.Point+`"`, 1))
	if again.Repeat || again.Cells == 0 || len(tv.ledgerDebits()) != 3 {
		t.Fatalf("asked again after a shred: repeat %v, cells %d, %d debits", again.Repeat, again.Cells, len(tv.ledgerDebits()))
	}
	res, err := tv.b.ReplayTable(ctx, "cli:auditor", first.AuditIndex)
	if err != nil {
		t.Fatal(err)
	}
	if res.Match || res.Table != nil {
		t.Fatalf("the replay of a release over shredded data: match %v, %d bytes of table handed back", res.Match, len(res.Table))
	}
	// A table of another commune is not touched by the shred: its
	// repeat is still free.
	if r := tv.mustDP("rita", other); !r.Repeat {
		t.Fatal("a shred elsewhere made a question about commune A new")
	}
}

// TestDPLedgerUnspendFound is the attack of an operator who un-spends
// budget: with the ledger's append-only triggers dropped, a debit is
// deleted (or made smaller) behind the broker's back. The release events
// in the hash-chained audit log still carry every charge, so `audit
// verify` (VerifyAudit) adds the ledger up from them and finds the store
// contradicting its own log.
func TestDPLedgerUnspendFound(t *testing.T) {
	ctx := context.Background()
	tv := newTableVault(t, 100)
	a := tv.mustDP("rita", dpCommuneTable("fert", ""))
	tv.mustDP("rita", dpCommuneTable("fert", ""))                // a repeat: no debit
	b := tv.mustDP("rita", dpCommuneTable("fert", `,"sex":[2]`)) // charged
	res, err := broker.VerifyAudit(ctx, tv.store, tv.b.AuditVerifierKey(), nil)
	if err != nil || res.LedgerDebits != 2 {
		t.Fatalf("an intact vault: %v, %d ledger debits matched (want 2)", err, res.LedgerDebits)
	}
	db := rawSQLite(t, tv.dir)
	if _, err := db.Exec(`DROP TRIGGER ledger_debits_no_update`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE ledger_debits SET rho = 1 WHERE audit_index = ?`, b.AuditIndex); err != nil {
		t.Fatal(err)
	}
	if _, err := broker.VerifyAudit(ctx, tv.store, tv.b.AuditVerifierKey(), nil); err == nil || !strings.Contains(err.Error(), "does not match the charge") {
		t.Fatalf("a debit made smaller: %v", err)
	}
	if _, err := db.Exec(`DROP TRIGGER ledger_debits_no_delete`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM ledger_debits WHERE audit_index IN (?, ?)`, a.AuditIndex, b.AuditIndex); err != nil {
		t.Fatal(err)
	}
	if _, err := broker.VerifyAudit(ctx, tv.store, tv.b.AuditVerifierKey(), nil); err == nil || !strings.Contains(err.Error(), "un-spent") {
		t.Fatalf("debits deleted: %v", err)
	}
}
