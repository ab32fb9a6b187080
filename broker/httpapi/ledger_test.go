package httpapi_test

// Custom tables under differential privacy (dp tables) and the privacy
// ledger over HTTP (issue 12): the headers of a dp table and of its
// repeat, the ledger refusing a table it cannot pay for, who sees which
// shares, and the four-eyes changes of a share — each test the attack
// it stops.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/client"
	"github.com/censusvault/censusvault/broker/httpapi"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/policy"
)

// dpTable is a custom table request: project's persons by sex and age
// group in commune A (130 planned households), with extra members
// (",\"rho\": \"0.1\"") or extra filters of the area's (",\"sex\": [1]").
func dpTable(project, extraFilter, extra string) string {
	return `{"project": "` + project + `", "purpose": "age structure of the commune", "rows": ["sex"], "cols": ["age_group5"], "filter": {"area": ["` +
		communeA + `"]` + extraFilter + `}` + extra + `}`
}

// getLedger reads GET /v1/ledger as user, failing unless it is 200.
func (v *vault) getLedger(user string) (*wire.Ledger, *response) {
	v.t.Helper()
	r := v.get(user, "/v1/ledger")
	if r.Status != http.StatusOK {
		v.t.Fatalf("%s reads the ledger: %d %s", user, r.Status, r.Body)
	}
	var l wire.Ledger
	r.JSON(v.t, &l)
	return &l, r
}

// share is the ledger's share kind/holder, or nil.
func share(l *wire.Ledger, kind, holder string) *wire.Share {
	for i := range l.Shares {
		if l.Shares[i].Kind == kind && l.Shares[i].Holder == holder {
			return &l.Shares[i]
		}
	}
	return nil
}

// propose posts a share proposal body as user.
func (v *vault) propose(user, body string) *response {
	v.t.Helper()
	return v.do(http.MethodPost, "/v1/ledger/proposals", "Bearer "+v.Tokens[user], strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
}

// approve posts the approval of proposal seq (as written in the path)
// as user, with body if not "".
func (v *vault) approve(user, seq, body string) *response {
	v.t.Helper()
	return v.do(http.MethodPost, "/v1/ledger/proposals/"+seq+"/approve", "Bearer "+v.Tokens[user], strings.NewReader(body), nil)
}

// mustChange decodes a ShareChange answer of status want.
func mustChange(t *testing.T, r *response, want int) wire.ShareChange {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d: %s", r.Status, want, r.Body)
	}
	var ch wire.ShareChange
	r.JSON(t, &ch)
	return ch
}

// A researcher asks for a custom table: it is released under
// differential privacy at the day's scheduled point, and says so in
// X-Censusvault-Rho; the same query again is a repeat, marked
// X-Censusvault-Repeat, the same bytes, and charged nothing (fresh noise
// for the same cells would let the noise be averaged away); another
// query is charged. Once the project's share of the commune is spent the
// next dp table is refused with 403 privacy_budget_exhausted, audited,
// and releases nothing — while the repeat of a table already paid for is
// still answered.
func TestDPTableOverHTTP(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	ctx := context.Background()
	v.loadSynthetic(tableHouseholds)
	v.makePoint("p1")
	day := "daily-" + v.Clock.Now().Format(time.DateOnly)

	var r1 *response
	ev := v.oneEventOf("table.request", func() { r1 = v.postTable("researcher", "", dpTable(testProject, "", ""), nil) })
	if r1.Status != http.StatusOK {
		t.Fatalf("dp table: %d %s", r1.Status, r1.Body)
	}
	h := r1.Header
	if h.Get(httpapi.HeaderRho) != "0.02" || h.Values(httpapi.HeaderRepeat) != nil || h.Get(httpapi.HeaderPoint) != day ||
		h.Get("Cache-Control") != "no-store" || h.Get("Content-Type") != "application/json" {
		t.Errorf("dp table headers: rho %q repeat %q point %q (want %s) cache %q type %q",
			h.Get(httpapi.HeaderRho), h.Get(httpapi.HeaderRepeat), h.Get(httpapi.HeaderPoint), day, h.Get("Cache-Control"), h.Get("Content-Type"))
	}
	cells, remaining := headerInt(t, r1, httpapi.HeaderCells), headerInt(t, r1, httpapi.HeaderBudgetRemaining)
	if digest := h.Get(httpapi.HeaderTableDigest); digest != sha(r1.Body) || ev.ReleaseDigest != digest || headerInt(t, r1, httpapi.HeaderAuditIndex) != ev.Index ||
		cells <= 0 || remaining != 100_000-cells {
		t.Errorf("dp table: digest %q (logged %q, body %s), index %s (event %d), cells %d, remaining %d",
			digest, ev.ReleaseDigest, sha(r1.Body), h.Get(httpapi.HeaderAuditIndex), ev.Index, cells, remaining)
	}
	var tab struct {
		Table   string `json:"table"`
		Point   string `json:"point"`
		Control struct {
			Rho string `json:"rho"`
		} `json:"disclosure_control"`
	}
	r1.JSON(t, &tab)
	if tab.Table != "censusvault.dp-table/v1" || tab.Point != day || tab.Control.Rho != "0.02" {
		t.Errorf("dp table body: %+v", tab)
	}

	// The same query: a repeat, the same bytes, nothing debited.
	r2 := v.postTable("researcher", "", dpTable(testProject, "", ""), nil)
	if r2.Status != http.StatusOK || r2.Header.Get(httpapi.HeaderRepeat) != "true" || r2.Header.Get(httpapi.HeaderRho) != "0.02" ||
		!bytes.Equal(r2.Body, r1.Body) || headerInt(t, r2, httpapi.HeaderCells) != 0 || headerInt(t, r2, httpapi.HeaderBudgetRemaining) != remaining ||
		headerInt(t, r2, httpapi.HeaderAuditIndex) <= ev.Index {
		t.Fatalf("repeat: %d, repeat %q, rho %q, same bytes %v, cells %s, remaining %s (was %d)", r2.Status, r2.Header.Get(httpapi.HeaderRepeat),
			r2.Header.Get(httpapi.HeaderRho), bytes.Equal(r2.Body, r1.Body), r2.Header.Get(httpapi.HeaderCells), r2.Header.Get(httpapi.HeaderBudgetRemaining), remaining)
	}
	// A standard table says nothing of ρ.
	if r := v.postTable("researcher", "", countTable, nil); r.Status != http.StatusOK || r.Header.Values(httpapi.HeaderRho) != nil || r.Header.Values(httpapi.HeaderRepeat) != nil {
		t.Errorf("standard table: %d, rho %q, repeat %q", r.Status, r.Header.Get(httpapi.HeaderRho), r.Header.Get(httpapi.HeaderRepeat))
	}

	// The Go client reads both headers.
	c := v.Client("researcher")
	again, err := c.RequestTable(ctx, []byte(dpTable(testProject, "", "")), "", false)
	if err != nil {
		t.Fatal(err)
	}
	if again.Rho != "0.02" || !again.Repeat || again.Cells != 0 || again.Point != day || !bytes.Equal(again.Body, r1.Body) {
		t.Errorf("client, repeat: rho %q repeat %v cells %d point %q", again.Rho, again.Repeat, again.Cells, again.Point)
	}
	other, err := c.RequestTable(ctx, []byte(dpTable(testProject, `, "sex": [1]`, "")), "", false)
	if err != nil {
		t.Fatal(err)
	}
	if other.Rho != "0.02" || other.Repeat || other.Cells <= 0 {
		t.Errorf("client, another query: rho %q repeat %v cells %d", other.Rho, other.Repeat, other.Cells)
	}
	std, err := c.RequestTable(ctx, []byte(countTable), "", false)
	if err != nil || std.Rho != "" || std.Repeat {
		t.Errorf("client, standard table: %v, rho %q repeat %v", err, std.Rho, std.Repeat)
	}

	// The project's share of the commune (0.2 by default) has spent
	// 0.04: a table of ρ 0.16 takes the rest, and the next new query
	// finds nothing left.
	big := v.postTable("researcher", "", dpTable(testProject, `, "sex": [2]`, `, "rho": "0.16"`), nil)
	if big.Status != http.StatusOK || big.Header.Get(httpapi.HeaderRho) != "0.16" {
		t.Fatalf("dp table of ρ 0.16: %d %s", big.Status, big.Body)
	}
	p0, err := v.B.Project(ctx, testProject)
	if err != nil {
		t.Fatal(err)
	}
	var r *response
	ev = v.oneEvent(func() { r = v.postTable("researcher", "", dpTable(testProject, `, "age_group5": ["30-34"]`, ""), nil) })
	msg, _ := r.ErrorBody(t)
	if r.Status != http.StatusForbidden || r.Code(t) != "privacy_budget_exhausted" || !strings.Contains(msg, "project "+testProject) || !strings.Contains(msg, "GET /v1/ledger") {
		t.Errorf("a dp table past the project's share: %d %s, want 403 privacy_budget_exhausted naming the share", r.Status, r.Body)
	}
	if r.Header.Get(httpapi.HeaderTableDigest) != "" || r.Header.Get(httpapi.HeaderRho) != "" || bytes.Contains(r.Body, []byte(`"cells"`)) {
		t.Errorf("the refusal carries a table")
	}
	if ev.Action != "table.request" || ev.Decision != "deny" || ev.Outcome != "denied" || ev.ReleaseDigest != "" {
		t.Errorf("refusal event %s %s/%s digest %q", ev.Action, ev.Decision, ev.Outcome, ev.ReleaseDigest)
	}
	if p1, err := v.B.Project(ctx, testProject); err != nil || p1.Spent != p0.Spent {
		t.Errorf("the refusal spent cells (%d → %d, %v)", p0.Spent, p1.Spent, err)
	}
	// A table already paid for is still answered, as a repeat.
	if r := v.postTable("researcher", "", dpTable(testProject, "", ""), nil); r.Status != http.StatusOK || r.Header.Get(httpapi.HeaderRepeat) != "true" || !bytes.Equal(r.Body, r1.Body) {
		t.Errorf("a repeat once the share is spent: %d %s", r.Status, r.Body)
	}

	// The researcher's ledger says where the share went.
	l, lr := v.getLedger("researcher")
	if lr.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("GET /v1/ledger: Cache-Control %q", lr.Header.Get("Cache-Control"))
	}
	proj, res, cap := share(l, "project", testProject), share(l, "researcher", "researcher"), share(l, "commune", "")
	if proj == nil || proj.Spent != "0.2" || proj.Rho != "0.2" || proj.Tables != 0 || proj.WorstArea != communeA || !proj.Default {
		t.Errorf("project share %+v: want 0.2 of 0.2 spent in %s", proj, communeA)
	}
	if res == nil || res.Spent != "0.2" || res.Rho != "0.4" || res.Tables != 10 || cap == nil || cap.Spent != "0.2" || cap.Rho != "2" || cap.Epsilon <= cap.SpentEpsilon {
		t.Errorf("researcher share %+v, commune cap %+v", res, cap)
	}
	if l.TableRho != "0.02" || l.Delta <= 0 || l.Delta >= 1e-6 {
		t.Errorf("ledger: table rho %q delta %g", l.TableRho, l.Delta)
	}
}

// oneEventOf runs fn and returns the one event of action it appended,
// failing the test unless there is exactly one (the first dp table of a
// day also makes the day's scheduled point, an event of its own).
func (v *vault) oneEventOf(action string, fn func()) *audit.Event {
	v.t.Helper()
	before := v.auditHead()
	fn()
	var out []*audit.Event
	for _, e := range v.eventsSince(before) {
		if e.Action == action {
			out = append(out, e)
		}
	}
	if len(out) != 1 {
		v.t.Fatalf("the request appended %d %s events, want exactly 1", len(out), action)
	}
	return out[0]
}

// ledgerVault is a vault with a second researcher on a second project,
// each of whom has had a dp table, and an admin who is also an
// approver.
func ledgerVault(t *testing.T) *vault {
	t.Helper()
	v := newVault(t, vaultOpts{})
	ctx := context.Background()
	v.loadSynthetic(tableHouseholds)
	if err := v.B.AddProject(ctx, "cli:test", broker.NewProject{
		ID: "other-2019", Title: "Other", Purpose: "another team's tables", Areas: []broker.AreaCode{district},
		Variables: []string{"sex", "age_group5"}, Expires: start.AddDate(1, 0, 0), Budget: 100_000,
	}); err != nil {
		t.Fatal(err)
	}
	v.rtUser("res-other", policy.Grant{Role: policy.Researcher, Area: district, Project: "other-2019"})
	v.rtUser("boss", policy.Grant{Role: policy.Admin, Area: nation}, policy.Grant{Role: policy.Approver, Area: nation})
	// Two different queries (the same query is answered to anyone as a
	// repeat, charged to no one).
	for _, u := range []struct{ user, project, filter string }{{"researcher", testProject, ""}, {"res-other", "other-2019", `, "sex": [2]`}} {
		if r := v.postTable(u.user, "", dpTable(u.project, u.filter, ""), nil); r.Status != http.StatusOK || r.Header.Get(httpapi.HeaderRepeat) != "" {
			t.Fatalf("%s's dp table: %d %s", u.user, r.Status, r.Body)
		}
	}
	return v
}

// A researcher reads the ledger to learn what another team has been
// asking about (which communes, how much): they see the commune cap,
// their own share and their projects' only — never another researcher's
// or project's share, or its proposals. Admins, approvers and auditors
// see every share; roles that work with no tables (an enumerator) are
// refused, audited.
func TestLedgerWhoSeesWhat(t *testing.T) {
	t.Parallel()
	v := ledgerVault(t)
	// A proposal about the other team's share, which the researcher
	// must not see either.
	mustChange(t, v.propose("res-other", `{"kind": "researcher", "holder": "res-other", "rho": "0.5", "reason": "a second wave of tables"}`), http.StatusCreated)

	type key struct{ kind, holder string }
	keys := func(l *wire.Ledger) []key {
		var out []key
		for _, s := range l.Shares {
			out = append(out, key{s.Kind, s.Holder})
		}
		return out
	}
	own := []key{{"commune", ""}, {"researcher", "researcher"}, {"project", testProject}}
	var l *wire.Ledger
	var r *response
	ev := v.oneEvent(func() { l, r = v.getLedger("researcher") })
	if !slices.Equal(keys(l), own) || len(l.Changes) != 0 {
		t.Errorf("the researcher sees shares %v and %d changes, want %v and none", keys(l), len(l.Changes), own)
	}
	if bytes.Contains(r.Body, []byte("res-other")) || bytes.Contains(r.Body, []byte("other-2019")) {
		t.Errorf("the researcher's ledger names the other team: %s", r.Body)
	}
	if ev.Action != "ledger.read" || ev.Decision != "allow" || ev.Outcome != "ok" || ev.Actor != "user:researcher" {
		t.Errorf("ledger read event %s %s/%s by %s", ev.Action, ev.Decision, ev.Outcome, ev.Actor)
	}
	if s := share(l, "researcher", "researcher"); s == nil || s.Spent != "0.02" || s.WorstArea != communeA || s.Tables != 19 {
		t.Errorf("the researcher's own share: %+v", s)
	}

	all := []key{{"commune", ""}, {"researcher", "res-other"}, {"researcher", "researcher"}, {"project", "hl-2019"}, {"project", "other-2019"}}
	for _, user := range []string{"admin", "approver", "auditor"} {
		l, _ := v.getLedger(user)
		if !slices.Equal(keys(l), all) || len(l.Changes) != 1 || l.Changes[0].Holder != "res-other" {
			t.Errorf("%s sees shares %v and changes %+v, want %v and the one proposal", user, keys(l), l.Changes, all)
		}
		if c := share(l, "commune", ""); c == nil || c.Spent != "0.04" {
			t.Errorf("%s: the commune cap %+v, want 0.04 spent (both tables are of commune %s)", user, c, communeA)
		}
	}

	for _, tc := range []struct {
		what, user, path string
		status           int
		code, outcome    string
	}{
		{"an enumerator", "enum-a1", "/v1/ledger", 403, "permission_denied", "denied"},
		{"a team leader", "tl-a", "/v1/ledger", 403, "permission_denied", "denied"},
		{"a query parameter", "researcher", "/v1/ledger?holder=res-other", 400, "invalid", "invalid"},
	} {
		var r *response
		ev := v.oneEvent(func() { r = v.get(tc.user, tc.path) })
		if msg, _ := r.ErrorBody(t); r.Status != tc.status || r.Code(t) != tc.code || msg == "" {
			t.Errorf("%s: %d %s, want %d %s", tc.what, r.Status, r.Body, tc.status, tc.code)
		}
		if ev.Action != "ledger.read" || ev.Outcome != tc.outcome || ev.Actor != "user:"+tc.user || bytes.Contains(r.Body, []byte("shares")) {
			t.Errorf("%s: event %s/%s by %s", tc.what, ev.Action, ev.Outcome, ev.Actor)
		}
	}
	v.flushAuth()
	if r := v.do(http.MethodGet, "/v1/ledger", "", nil, nil); r.Status != http.StatusUnauthorized || bytes.Contains(r.Body, []byte("shares")) {
		t.Errorf("no token: %d %s", r.Status, r.Body)
	}
}

// Raising a share lets more be learnt about every household of every
// commune, so it takes two people: a proposal, then an approval by an
// approver over the whole tree who is not the proposer. An admin who is
// also an approver approves their own proposal: 403 four_eyes, audited,
// nothing changes. An admin without an approver grant cannot approve, an
// approver cannot propose, a researcher may propose only their own or
// their project's share. The approval takes effect at once; approving
// twice, an unknown proposal and a proposal over a week old each get
// their stable code.
func TestLedgerProposalsFourEyes(t *testing.T) {
	t.Parallel()
	v := ledgerVault(t)
	capOf := func() *wire.Share {
		l, _ := v.getLedger("auditor")
		return share(l, "commune", "")
	}

	// The admin-approver proposes a higher cap and approves it alone.
	var r *response
	ev := v.oneEvent(func() {
		r = v.propose("boss", `{"kind": "commune", "holder": "", "rho": "3", "reason": "a second round of research tables"}`)
	})
	ch := mustChange(t, r, http.StatusCreated)
	if ch.Seq <= 0 || ch.Kind != "commune" || ch.Holder != "" || ch.Rho != "3" || ch.Epsilon <= 0 || ch.ProposedBy != "boss" || ch.ApprovedBy != "" ||
		!ch.ProposedAt.Equal(v.Clock.Now()) || ch.Reason != "a second round of research tables" || r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("proposal %+v (Cache-Control %q)", ch, r.Header.Get("Cache-Control"))
	}
	if ev.Action != "ledger.propose" || ev.Decision != "allow" || ev.Outcome != "ok" || ev.Actor != "user:boss" {
		t.Errorf("proposal event %s %s/%s by %s", ev.Action, ev.Decision, ev.Outcome, ev.Actor)
	}
	seq := jsonInt(ch.Seq)
	ev = v.oneEvent(func() { r = v.approve("boss", seq, "") })
	msg, _ := r.ErrorBody(t)
	if r.Status != http.StatusForbidden || r.Code(t) != "four_eyes" || !strings.Contains(msg, "another person") {
		t.Errorf("the proposer approves: %d %s, want 403 four_eyes", r.Status, r.Body)
	}
	if ev.Action != "ledger.approve" || ev.Outcome != "refused" || ev.Actor != "user:boss" {
		t.Errorf("four-eyes refusal event %s %s/%s by %s", ev.Action, ev.Decision, ev.Outcome, ev.Actor)
	}
	if c := capOf(); c.Rho != "2" || !c.Default {
		t.Errorf("after the refused self-approval the cap is %+v, want the default 2", c)
	}
	// An admin is no approver; an approver no proposer.
	if r := v.approve("admin", seq, ""); r.Status != http.StatusForbidden || r.Code(t) != "permission_denied" {
		t.Errorf("an admin approves: %d %s", r.Status, r.Body)
	}
	if r := v.propose("approver", `{"kind": "commune", "holder": "", "rho": "4", "reason": "x"}`); r.Status != http.StatusForbidden || r.Code(t) != "permission_denied" {
		t.Errorf("an approver proposes: %d %s", r.Status, r.Body)
	}
	// Another person, an approver, approves: the cap is 3 at once.
	ev = v.oneEvent(func() { r = v.approve("approver", seq, "") })
	ok := mustChange(t, r, http.StatusOK)
	if ok.Seq != ch.Seq || ok.ApprovedBy != "approver" || !ok.ApprovedAt.Equal(v.Clock.Now()) || ok.Rho != "3" || ok.ProposedBy != "boss" {
		t.Errorf("approval %+v", ok)
	}
	if ev.Action != "ledger.approve" || ev.Decision != "allow" || ev.Outcome != "ok" || !strings.Contains(ev.Reason, "now ρ=3") {
		t.Errorf("approval event %s %s/%s: %q", ev.Action, ev.Decision, ev.Outcome, ev.Reason)
	}
	if c := capOf(); c.Rho != "3" || c.Default {
		t.Errorf("after the approval the cap is %+v, want 3", c)
	}

	// Researchers: their own share and their project's, nobody else's.
	for _, tc := range []struct {
		what, body string
		status     int
	}{
		{"their own share", `{"kind": "researcher", "holder": "researcher", "rho": "0.6", "reason": "more tables"}`, 201},
		{"their project's", `{"kind": "project", "holder": "` + testProject + `", "rho": "0.3", "reason": "more tables"}`, 201},
		{"another researcher's", `{"kind": "researcher", "holder": "res-other", "rho": "0.01", "reason": "starve them"}`, 403},
		{"another project's", `{"kind": "project", "holder": "other-2019", "rho": "0.01", "reason": "starve them"}`, 403},
		{"the commune cap", `{"kind": "commune", "holder": "", "rho": "50", "reason": "everything"}`, 403},
	} {
		if r := v.propose("researcher", tc.body); r.Status != tc.status {
			t.Errorf("a researcher proposes %s: %d %s, want %d", tc.what, r.Status, r.Body, tc.status)
		}
	}

	// Stable codes: approved already, no such proposal, expired.
	for _, tc := range []struct {
		what, seq string
		status    int
		code      string
	}{
		{"approved twice", seq, 409, "proposal_approved"},
		{"an unknown proposal", "999", 404, "no_such_proposal"},
	} {
		r := v.approve("approver", tc.seq, "")
		if msg, _ := r.ErrorBody(t); r.Status != tc.status || r.Code(t) != tc.code || msg == "" {
			t.Errorf("%s: %d %s, want %d %s", tc.what, r.Status, r.Body, tc.status, tc.code)
		}
	}
	late := mustChange(t, v.propose("admin", `{"kind": "project", "holder": "other-2019", "rho": "0.3", "reason": "later"}`), http.StatusCreated)
	v.Clock.Advance(8 * 24 * time.Hour)
	if r := v.approve("approver", jsonInt(late.Seq), ""); r.Status != http.StatusConflict || r.Code(t) != "proposal_expired" {
		t.Errorf("a proposal over a week old: %d %s, want 409 proposal_expired", r.Status, r.Body)
	}

	// The Go client: the same round, and the refusal's code.
	ctx := context.Background()
	p, err := v.Client("boss").ProposeShare(ctx, "project", testProject, "0.25", "client round")
	if err != nil || p.Rho != "0.25" || p.ProposedBy != "boss" {
		t.Fatalf("client proposal %+v: %v", p, err)
	}
	var se *client.StatusError
	if _, err := v.Client("boss").ApproveShare(ctx, p.Seq); !errors.As(err, &se) || se.Status != http.StatusForbidden || se.Code != "four_eyes" {
		t.Errorf("client self-approval: %v", err)
	}
	a, err := v.Client("approver").ApproveShare(ctx, p.Seq)
	if err != nil || a.ApprovedBy != "approver" {
		t.Fatalf("client approval %+v: %v", a, err)
	}
	l, err := v.Client("researcher").Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s := share(l, "project", testProject); s == nil || s.Rho != "0.25" || s.Default {
		t.Errorf("the researcher's project share after the approval: %+v", s)
	}
	// The researcher sees the changes of their own shares only.
	for _, c := range l.Changes {
		if (c.Kind != "commune" || c.Holder != "") && (c.Kind != "researcher" || c.Holder != "researcher") && (c.Kind != "project" || c.Holder != testProject) {
			t.Errorf("the researcher sees change %d of %s %s", c.Seq, c.Kind, c.Holder)
		}
	}
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// What the strict readers of the two POST routes refuse: unknown or
// case-folded keys, a key twice, a number for ρ, a terminal escape in
// the reason, a body over 2 KiB, a query parameter; a seq that is not a
// plain decimal, and a body sent to approve. Each is 400 invalid,
// audited, and changes nothing.
func TestLedgerBadRequests(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	pending := mustChange(t, v.propose("admin", `{"kind": "project", "holder": "`+testProject+`", "rho": "0.3", "reason": "more"}`), http.StatusCreated)
	for _, tc := range []struct {
		what, query, body string
		says              string
	}{
		{"an unknown key", "", `{"kind": "project", "holder": "` + testProject + `", "rho": "0.3", "reason": "x", "approved": true}`, `unknown key "approved"`},
		{"a case-folded key", "", `{"KIND": "project", "holder": "` + testProject + `", "rho": "0.3", "reason": "x"}`, `"kind"`},
		{"rho twice", "", `{"kind": "project", "holder": "` + testProject + `", "rho": "0.3", "rho": "30", "reason": "x"}`, "twice"},
		{"rho a number", "", `{"kind": "project", "holder": "` + testProject + `", "rho": 0.3, "reason": "x"}`, "rho too"},
		{"not JSON", "", `kind=project&rho=0.3`, `"kind"`},
		{"a terminal escape", "", `{"kind": "project", "holder": "` + testProject + `", "rho": "0.3", "reason": "x\u001b[2J"}`, "control character"},
		{"over 2 KiB", "", `{"kind": "project", "holder": "` + testProject + `", "rho": "0.3", "reason": "` + strings.Repeat("x", 2100) + `"}`, "over 2048 bytes"},
		{"a query parameter", "?force=1", `{"kind": "project", "holder": "` + testProject + `", "rho": "0.3", "reason": "x"}`, "takes no parameters"},
		{"rho with an exponent", "", `{"kind": "project", "holder": "` + testProject + `", "rho": "3e-1", "reason": "x"}`, "plain decimal"},
		{"an unknown kind", "", `{"kind": "nation", "holder": "", "rho": "0.3", "reason": "x"}`, "commune, researcher or project"},
		{"no reason", "", `{"kind": "project", "holder": "` + testProject + `", "rho": "0.3", "reason": " "}`, "reason"},
	} {
		var r *response
		ev := v.oneEvent(func() {
			r = v.do(http.MethodPost, "/v1/ledger/proposals"+tc.query, "Bearer "+v.Tokens["admin"], strings.NewReader(tc.body), nil)
		})
		msg, _ := r.ErrorBody(t)
		if r.Status != http.StatusBadRequest || r.Code(t) != "invalid" || !strings.Contains(msg, tc.says) {
			t.Errorf("propose, %s: %d %s, want 400 invalid saying %q", tc.what, r.Status, r.Body, tc.says)
		}
		if ev.Action != "ledger.propose" || ev.Outcome != "invalid" || ev.Actor != "user:admin" {
			t.Errorf("propose, %s: event %s/%s by %s", tc.what, ev.Action, ev.Outcome, ev.Actor)
		}
	}
	seq := jsonInt(pending.Seq)
	for _, tc := range []struct {
		what, seq, query, body string
		says                   string
	}{
		{"a leading zero", "0" + seq, "", "", "leading zero"},
		{"a sign", "+" + seq, "", "", "leading zero"},
		{"negative", "-" + seq, "", "", "leading zero"},
		{"not a number", "last", "", "", "leading zero"},
		{"over 2⁶³", "99999999999999999999", "", "", "leading zero"},
		{"a body", seq, "", `{"rho": "30"}`, "takes no body"},
		{"a query parameter", seq, "?rho=30", "", "takes no parameters"},
	} {
		var r *response
		ev := v.oneEvent(func() {
			r = v.do(http.MethodPost, "/v1/ledger/proposals/"+tc.seq+"/approve"+tc.query, "Bearer "+v.Tokens["approver"], strings.NewReader(tc.body), nil)
		})
		msg, _ := r.ErrorBody(t)
		if r.Status != http.StatusBadRequest || r.Code(t) != "invalid" || !strings.Contains(msg, tc.says) {
			t.Errorf("approve, %s: %d %s, want 400 invalid saying %q", tc.what, r.Status, r.Body, tc.says)
		}
		if ev.Action != "ledger.approve" || ev.Outcome != "invalid" || ev.Actor != "user:approver" {
			t.Errorf("approve, %s: event %s/%s by %s", tc.what, ev.Action, ev.Outcome, ev.Actor)
		}
	}
	l, _ := v.getLedger("auditor")
	if len(l.Changes) != 1 || l.Changes[0].ApprovedBy != "" || l.Changes[0].Rho != "0.3" {
		t.Errorf("after the refusals the changes are %+v, want the one pending proposal", l.Changes)
	}
	for _, rec := range v.auditRecords(0) {
		if bytes.ContainsAny(rec.Event, "\x00\x1b") || bytes.Contains(rec.Event, []byte(`\u001b`)) {
			t.Errorf("audit record %d holds a terminal escape: %q", rec.Index, rec.Event)
		}
	}
}
