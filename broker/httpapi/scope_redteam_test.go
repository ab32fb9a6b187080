package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/httpapi"
	"github.com/censusvault/censusvault/policy"
)

// Red-team attacks on the one scope rule of issue 10 (allowed subtrees
// minus denied subtrees, for tables, progress and the audit log), as the
// researcher who wants one denied EA's numbers, the team leader or
// steering member denied an area who wants its progress, and the auditor
// denied a subtree who wants its events. Each test is the attack; the
// oracle is matrixAreas' parent map (under, oracleParent), never
// policy.Scope.

// The red-team projects: both cover the nation.
const (
	rtProject  = "redteam"
	rtProject2 = "redteam-b"
)

// rtVault is a matrixAreas vault with the red-team projects and ~100
// synthetic households in every EA.
func rtVault(t *testing.T) *vault {
	t.Helper()
	v := newVault(t, vaultOpts{areas: matrixAreas})
	for _, id := range []string{rtProject, rtProject2} {
		if err := v.B.AddProject(t.Context(), "cli:test", broker.NewProject{
			ID: id, Title: id, Purpose: "red team", Areas: []broker.AreaCode{"VN"},
			Variables: []string{"sex", "age_group5"}, Expires: start.AddDate(1, 0, 0), Budget: 10_000_000,
		}); err != nil {
			t.Fatal(err)
		}
	}
	v.loadSynthetic(700)
	return v
}

func rtAllow(r policy.Role, area string) policy.Grant { return policy.Grant{Role: r, Area: area} }
func rtDeny(r policy.Role, area string) policy.Grant {
	return policy.Grant{Role: r, Area: area, Deny: true}
}
func rtOn(g policy.Grant, project string) policy.Grant { g.Project = project; return g }

// rtUser adds user name with its grants, in order (the first makes the
// user and must allow).
func (v *vault) rtUser(name string, grants ...policy.Grant) {
	v.t.Helper()
	ctx := context.Background()
	g0 := grants[0]
	tok, err := v.B.AddUser(ctx, "cli:test", broker.NewUser{Name: broker.UserID(name), Role: g0.Role, Area: broker.AreaCode(g0.Area), Project: g0.Project})
	if err != nil {
		v.t.Fatalf("add %s: %v", name, err)
	}
	v.Tokens[name] = tok.Reveal()
	for _, g := range grants[1:] {
		if err := v.B.Grant(ctx, "cli:test", broker.UserID(name), g); err != nil {
			v.t.Fatalf("grant %s %+v: %v", name, g, err)
		}
	}
}

// rtTable is a table request body: persons by rows, filtered on areas
// (no filter when areas is nil: the project's whole cover).
func rtTable(project string, rows []string, areas ...string) string {
	m := map[string]any{"project": project, "purpose": "red team", "rows": rows}
	if areas != nil {
		m["filter"] = map[string]any{"area": areas}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// rtStd is a standard table request body: persons by broad age group and
// sex (published down to communes of 100 planned households; every
// commune of matrixAreas plans at least that) for area, under project.
func rtStd(project, area string) string {
	return stdTable(project, "population_age_broad_sex", area, "")
}

// A researcher who may not see EA 18070-02 tries every table whose cover
// holds it — its commune, district, province and nation, another
// project, an earlier publication point, the EA itself, and every
// free-form table that used to reach it (area filters listing it with an
// allowed EA, rows by EA or by commune, no filter) — under every way the
// deny can be granted (no project, the project's own, at the grant's
// area, above it, with allow grants overlapping it, a separation-of-
// duties deny by an auditor grant). Each must be refused and logged (as
// a denial, or for an EA as a table the catalogue does not publish), so
// no two released tables differ by the denied EA alone.
func TestRedTeamTablesCannotIsolateDeniedArea(t *testing.T) {
	t.Parallel()
	v := rtVault(t)
	v.makePoint("rt-1")
	v.makePoint("rt-2")
	R := policy.Researcher
	v.rtUser("rt-res", rtOn(rtAllow(R, "VN"), rtProject), rtOn(rtAllow(R, "VN"), rtProject2), rtDeny(R, "18070-02"))
	v.rtUser("rt-res-projdeny", rtOn(rtAllow(R, "VN"), rtProject), rtOn(rtDeny(R, "18070-02"), rtProject))
	v.rtUser("rt-res-overlap", rtOn(rtAllow(R, "VN"), rtProject), rtOn(rtAllow(R, "18070"), rtProject),
		rtOn(rtAllow(R, "18070-02"), rtProject), rtOn(rtDeny(R, "18070-02"), rtProject))
	v.rtUser("rt-res-same", rtOn(rtAllow(R, "18070"), rtProject), rtDeny(R, "18070"))
	v.rtUser("rt-res-above", rtOn(rtAllow(R, "18070"), rtProject), rtDeny(R, "437"))
	v.rtUser("rt-res-sod", rtOn(rtAllow(R, "VN"), rtProject), rtAllow(policy.Auditor, "18070-02"))

	const (
		ok     = http.StatusOK
		denied = http.StatusForbidden
		noEA   = http.StatusBadRequest // the catalogue publishes no table of an EA
	)
	earlier := stdTable(rtProject, "population_age_broad_sex", "18070", "rt-1")
	cases := []struct {
		user, what, body string
		status           int
	}{
		{"rt-res", "the denied EA's commune", rtStd(rtProject, "18070"), denied},
		{"rt-res", "its district", rtStd(rtProject, "437"), denied},
		{"rt-res", "its province", rtStd(rtProject, "42"), denied},
		{"rt-res", "the nation", rtStd(rtProject, "VN"), denied},
		{"rt-res", "the denied EA alone", rtStd(rtProject, "18070-02"), noEA},
		{"rt-res", "the commune under the second project", rtStd(rtProject2, "18070"), denied},
		{"rt-res", "the commune at an earlier point", earlier, denied},
		// The free-form tables that could isolate the EA before
		// issue 11 are dp tables now (issue 12), whose cover is
		// checked as a standard table's: each holds the denied EA.
		{"rt-res", "free-form: no area filter (the project's cover, the nation)", rtTable(rtProject, []string{"sex"}), denied},
		{"rt-res", "free-form: the denied EA listed with an allowed one", rtTable(rtProject, []string{"sex"}, "18070-01", "18070-02"), denied},
		{"rt-res", "free-form: an allowed EA listed with the commune", rtTable(rtProject, []string{"sex"}, "18070-01", "18070"), denied},
		{"rt-res", "free-form: rows by EA over the commune", rtTable(rtProject, []string{"ea", "sex"}, "18070"), denied},
		{"rt-res", "free-form: rows by commune over the district", rtTable(rtProject, []string{"commune"}, "437"), denied},
		// What the researcher may have: nothing that holds 18070-02.
		{"rt-res", "control: a dp table of the commune's other EAs", rtTable(rtProject, []string{"sex"}, "18070-01", "18070-03"), ok},
		{"rt-res", "control: the sibling commune", rtStd(rtProject, "18073"), ok},
		{"rt-res", "control: a commune of another district", rtStd(rtProject, "18100"), ok},
		{"rt-res", "control: another province", rtStd(rtProject, "44"), ok},
		{"rt-res", "control: the sibling commune at the earlier point", stdTable(rtProject, "population_age_broad_sex", "18073", "rt-1"), ok},
		{"rt-res-projdeny", "the commune, deny on the project", rtStd(rtProject, "18070"), denied},
		{"rt-res-projdeny", "the nation, deny on the project", rtStd(rtProject, "VN"), denied},
		{"rt-res-projdeny", "control: the sibling commune, deny on the project", rtStd(rtProject, "18073"), ok},
		{"rt-res-overlap", "the denied EA, also granted itself", rtStd(rtProject, "18070-02"), noEA},
		{"rt-res-overlap", "the commune, granted twice", rtStd(rtProject, "18070"), denied},
		{"rt-res-overlap", "control: the sibling commune", rtStd(rtProject, "18073"), ok},
		{"rt-res-same", "the grant's area denied at itself", rtStd(rtProject, "18070"), denied},
		{"rt-res-same", "the district above the grant", rtStd(rtProject, "437"), denied},
		{"rt-res-above", "the grant's area denied above it", rtStd(rtProject, "18070"), denied},
		{"rt-res-sod", "the commune over an auditor grant", rtStd(rtProject, "18070"), denied},
		{"rt-res-sod", "control: the sibling commune", rtStd(rtProject, "18073"), ok},
	}
	// The day's first dp table makes the day's scheduled point, an
	// event of its own: made here (a table the researcher may have),
	// each request below is one event.
	if r := v.postTable("rt-res", "", rtTable(rtProject, []string{"sex"}, "18073"), nil); r.Status != ok || r.Header.Get(httpapi.HeaderRho) == "" {
		t.Fatalf("control: a dp table of the sibling commune: %d %s", r.Status, r.Body)
	}
	for _, c := range cases {
		v := v.in(t)
		var r *response
		ev := v.oneEvent(func() { r = v.postTable(c.user, "", c.body, nil) })
		if r.Status != c.status {
			t.Errorf("%s asks for %s: %d, want %d: %.200s", c.user, c.what, r.Status, c.status, r.Body)
			continue
		}
		if strings.HasPrefix(c.what, "free-form") && c.status == denied && (r.Code(t) != "permission_denied" || !strings.Contains(string(r.Body), "not permitted to request tables for area")) {
			t.Errorf("%s asks for %s: %s, want permission_denied for its cover", c.user, c.what, r.Body)
		}
		if ev.Action != string(policy.RequestTable) {
			t.Errorf("%s asks for %s: event %s", c.user, c.what, ev.Action)
		}
		switch c.status {
		case ok:
			if ev.Decision != "allow" || ev.Outcome != "ok" || ev.ReleaseDigest == "" {
				t.Errorf("%s asks for %s: event %s/%s, want an allowed release", c.user, c.what, ev.Decision, ev.Outcome)
			}
		case denied:
			if ev.Decision != "deny" || ev.Outcome != "denied" || ev.ReleaseDigest != "" {
				t.Errorf("%s asks for %s: event %s/%s (%s) digest %q, want denied and nothing released", c.user, c.what, ev.Decision, ev.Outcome, ev.Rule, ev.ReleaseDigest)
			}
		case noEA:
			if ev.Outcome != "invalid" || ev.ReleaseDigest != "" {
				t.Errorf("%s asks for %s: event outcome %q digest %q, want invalid and nothing released", c.user, c.what, ev.Outcome, ev.ReleaseDigest)
			}
		}
	}
}

// progressCase is a caller with its grants and the oracle's view of them
// for progress.read: where a grant of a role with progress allows, and
// where a deny of such a role (enumerator, team leader, supervisor,
// steering) revokes it.
type progressCase struct {
	name   string
	grants []policy.Grant
	allow  []string // areas of the allowing grants, in grant order
	denied []string
}

func (c progressCase) inScope(a string) bool {
	ok := false
	for _, g := range c.allow {
		ok = ok || under(a, g)
	}
	for _, d := range c.denied {
		if under(a, d) {
			return false
		}
	}
	return ok
}

// partial: a is in scope and some area strictly below it is not.
func (c progressCase) partial(a string) bool {
	for _, d := range c.denied {
		if d != a && under(d, a) {
			return true
		}
	}
	return false
}

// defaultAreas: the areas of the allowing grants that are in scope (the
// broker takes the first in its stored grant order, which sorts by role
// and area, not the order granted); none means progress is refused.
func (c progressCase) defaultAreas() []string {
	var out []string
	for _, a := range c.allow {
		if c.inScope(a) {
			out = append(out, a)
		}
	}
	return out
}

// oracleDepth is how many levels a lies below anc.
func oracleDepth(a, anc string) int {
	n := 0
	for c := a; c != anc; c = oracleParent[c] {
		n++
	}
	return n
}

// A team leader, supervisor or steering member denied an area tries to
// read its progress: through its parent at every depth, through another
// parent further up, through the default area, by subtracting listed
// rows from the row above them, from planned numbers and percentages,
// with the deny granted as the inheriting role (team_leader) against an
// enumerator grant or as the inherited one (enumerator) against a team
// leader, with allow grants overlapping the deny (one at the denied area
// itself), with the deny at the grant's own area and above it. Every
// answer is compared with the oracle: the rows in scope only, each
// counting only the EAs in scope, partial exactly where a denied area
// lies below, so every row equals the sum of its listed children.
func TestRedTeamProgressHidesDeniedArea(t *testing.T) {
	t.Parallel()
	v := rtVault(t)
	E, TL, S, ST := policy.Enumerator, policy.TeamLeader, policy.Supervisor, policy.Steering
	cases := []progressCase{
		{name: "rt-tl", grants: []policy.Grant{rtAllow(TL, "18070"), rtDeny(TL, "18070-02")},
			allow: []string{"18070"}, denied: []string{"18070-02"}},
		// team_leader inherits enumerator: denying team_leader revokes
		// the progress an enumerator grant gives.
		{name: "rt-enum-deny-tl", grants: []policy.Grant{rtAllow(E, "18070"), rtDeny(TL, "18070-02")},
			allow: []string{"18070"}, denied: []string{"18070-02"}},
		// ...and denying enumerator revokes what a team leader has
		// through it.
		{name: "rt-tl-deny-enum", grants: []policy.Grant{rtAllow(TL, "18070"), rtDeny(E, "18070-02")},
			allow: []string{"18070"}, denied: []string{"18070-02"}},
		// Overlapping allows, one at the denied commune's EA itself.
		{name: "rt-steer-overlap", grants: []policy.Grant{rtAllow(ST, "VN"), rtAllow(ST, "437"), rtAllow(ST, "18070-02"), rtDeny(ST, "18070")},
			allow: []string{"VN", "437", "18070-02"}, denied: []string{"18070"}},
		// A deny of another role with progress, and one that holds the
		// whole district, next to one inside it and one in another
		// province.
		{name: "rt-sup-mixed", grants: []policy.Grant{rtAllow(S, "VN"), rtDeny(E, "18073"), rtDeny(ST, "18100"), rtDeny(S, "19000-01")},
			allow: []string{"VN"}, denied: []string{"18073", "18100", "19000-01"}},
		{name: "rt-steer-nested", grants: []policy.Grant{rtAllow(ST, "VN"), rtDeny(ST, "18070-02"), rtDeny(ST, "437")},
			allow: []string{"VN"}, denied: []string{"18070-02", "437"}},
		{name: "rt-tl-same", grants: []policy.Grant{rtAllow(TL, "18070"), rtDeny(TL, "18070")},
			allow: []string{"18070"}, denied: []string{"18070"}},
		{name: "rt-tl-above", grants: []policy.Grant{rtAllow(TL, "18070"), rtDeny(TL, "437")},
			allow: []string{"18070"}, denied: []string{"437"}},
	}
	for _, c := range cases {
		v.rtUser(c.name, c.grants...)
	}
	counts := v.depositedIn(oracleEAs)
	areas := append([]string{"VN"}, slices.Sorted(func(yield func(string) bool) {
		for a := range oracleParent {
			if !yield(a) {
				return
			}
		}
	})...)

	check := func(t *testing.T, c progressCase, target string, depth int, r *response, rep *progressReport) {
		t.Helper()
		if !c.inScope(target) {
			if r.Status != http.StatusForbidden {
				t.Errorf("%s progress of %q depth %d: %d, want 403: %.200s", c.name, target, depth, r.Status, r.Body)
			}
			return
		}
		if r.Status != http.StatusOK {
			t.Errorf("%s progress of %q depth %d: %d, want 200: %.200s", c.name, target, depth, r.Status, r.Body)
			return
		}
		want := map[string]bool{}
		for _, a := range areas {
			if under(a, target) && c.inScope(a) && oracleDepth(a, target) <= depth {
				want[a] = true
			}
		}
		if len(rep.Rows) != len(want) {
			t.Errorf("%s progress of %q depth %d: %d rows, want %d", c.name, target, depth, len(rep.Rows), len(want))
		}
		for _, row := range rep.Rows {
			if !want[row.Area] {
				t.Errorf("%s progress of %q depth %d: row %s is out of scope: %+v", c.name, target, depth, row.Area, row)
				continue
			}
			var planned, deposited int64
			for _, ea := range oracleEAs {
				if under(ea, row.Area) && c.inScope(ea) {
					planned += 100
					deposited += counts[ea]
				}
			}
			if row.Planned != planned || row.Deposited != deposited {
				t.Errorf("%s progress of %q depth %d: row %s %d/%d, want %d/%d (in-scope EAs only)", c.name, target, depth, row.Area, row.Deposited, row.Planned, deposited, planned)
			}
			if wantPct := percentOf(deposited, planned); string(row.Percent) != wantPct {
				t.Errorf("%s progress of %q: row %s percent %s, want %s", c.name, target, row.Area, row.Percent, wantPct)
			}
			if row.Partial != c.partial(row.Area) {
				t.Errorf("%s progress of %q: row %s partial %v, want %v", c.name, target, row.Area, row.Partial, c.partial(row.Area))
			}
		}
	}
	for _, c := range cases {
		for _, target := range areas {
			for _, depth := range []int{1, 4} {
				v := v.in(t)
				var r *response
				var rep *progressReport
				ev := v.oneEvent(func() { r, rep = v.progress(c.name, target, depth) })
				check(t, c, target, depth, r, rep)
				if want := map[bool]string{true: "allow", false: "deny"}[c.inScope(target)]; ev.Decision != want {
					t.Errorf("%s progress of %s: event decision %q, want %q", c.name, target, ev.Decision, want)
				}
			}
		}
		// The default area (area= empty): an allowing grant's area in
		// scope, never a denied one.
		v := v.in(t)
		r, rep := v.progress(c.name, "", 4)
		defs := c.defaultAreas()
		if len(defs) == 0 {
			if r.Status != http.StatusForbidden {
				t.Errorf("%s progress of the default area: %d, want 403: %.200s", c.name, r.Status, r.Body)
			}
			continue
		}
		if r.Status != http.StatusOK {
			t.Errorf("%s progress of the default area: %d, want 200: %.200s", c.name, r.Status, r.Body)
			continue
		}
		if !slices.Contains(defs, rep.Area) {
			t.Errorf("%s progress of the default area: area %s, want one of %v", c.name, rep.Area, defs)
			continue
		}
		check(t, c, rep.Area, 4, r, rep)
	}
}

// percentOf is the percent the report writes, as JSON.
func percentOf(n, planned int64) string {
	if planned <= 0 {
		return "0"
	}
	b, _ := json.Marshal(float64(int64(float64(n)*10000/float64(planned)+0.5)) / 100)
	return string(b)
}

// rtAuditor is an auditor with a grant and a deny below it, and the
// oracle's view of what it may read.
type rtAuditor struct {
	name, grant, denied string
}

// sees: the event's area is under the grant and not under the deny; an
// event about no area is national, in scope for an auditor at the root.
func (a rtAuditor) sees(e *audit.Event) bool {
	area := e.Area
	if area == "" {
		area = "VN"
	}
	return under(area, a.grant) && !under(area, a.denied)
}

// rtSearch pages through GET /v1/audit/events?query as user with
// limit per page and returns every event, failing on a non-200 answer.
func (v *vault) rtSearch(user, query string, limit int) []*audit.Event {
	v.t.Helper()
	var out []*audit.Event
	from := int64(0)
	// Each search appends its own event: stop at the head as it was.
	head := v.auditHead()
	for pages := 0; ; pages++ {
		sep := ""
		if query != "" {
			sep = "&"
		}
		r := v.get(user, fmt.Sprintf("/v1/audit/events?%s%slimit=%d&from=%d", query, sep, limit, from))
		if r.Status != http.StatusOK {
			v.t.Fatalf("%s searches %q: %d %.200s", user, query, r.Status, r.Body)
		}
		var body struct {
			Events []json.RawMessage `json:"events"`
			Next   *int64            `json:"next"`
		}
		r.JSON(v.t, &body)
		for _, raw := range body.Events {
			e, err := audit.Decode(raw)
			if err != nil {
				v.t.Fatal(err)
			}
			out = append(out, e)
		}
		if body.Next == nil || *body.Next >= head {
			return out
		}
		if *body.Next <= from {
			v.t.Fatalf("%s searches %q: next %d does not advance from %d", user, query, *body.Next, from)
		}
		from = *body.Next
	}
}

// rtExport is GET /v1/audit/export as user: the visible events, the
// indexes withheld as out of scope, and the number of leaves.
func (v *vault) rtExport(user string) (visible []*audit.Event, withheld map[int64]bool, size int64) {
	v.t.Helper()
	r := v.get(user, "/v1/audit/export")
	if r.Status != http.StatusOK {
		v.t.Fatalf("%s exports: %d %.200s", user, r.Status, r.Body)
	}
	withheld = map[int64]bool{}
	for _, line := range exportLines(v.t, r.Body) {
		size = max(size, line.Index+1)
		if len(line.Event) == 0 {
			if line.Withheld == string(audit.WithheldOutOfScope) {
				withheld[line.Index] = true
			}
			continue
		}
		e, err := audit.Decode(line.Event)
		if err != nil {
			v.t.Fatal(err)
		}
		visible = append(visible, e)
	}
	return visible, withheld, size
}

// rtActivity makes events about the denied province 42: a deposit in
// 18070-01, a team leader's progress of 18070, a researcher's standard
// table of commune 18070; and a table of commune 19000 (province 44) as a
// control. It returns the deposited submission's id and the times around
// it.
func (v *vault) rtActivity() (id string, before, after time.Time) {
	v.t.Helper()
	v.rtUser("rt-enum", rtAllow(policy.Enumerator, "18070-01"))
	v.rtUser("rt-tl", rtAllow(policy.TeamLeader, "18070"))
	v.rtUser("rt-res", rtOn(rtAllow(policy.Researcher, "VN"), rtProject))
	h := household("18070-01", 7001)
	before = v.Clock.Now()
	v.Clock.Advance(time.Minute)
	v.receipt(v.deposit("rt-enum", v.seal(encode(v.t, h))), http.StatusCreated)
	v.Clock.Advance(time.Minute)
	after = v.Clock.Now()
	if r, _ := v.progress("rt-tl", "18070", 1); r.Status != http.StatusOK {
		v.t.Fatalf("progress: %d %s", r.Status, r.Body)
	}
	v.makePoint("rt-activity")
	for _, a := range []string{"18070", "19000"} {
		if r := v.postTable("rt-res", "", rtStd(rtProject, a), nil); r.Status != http.StatusOK {
			v.t.Fatalf("table of %s: %d %s", a, r.Status, r.Body)
		}
	}
	return h["id"].(string), before, after
}

// An auditor at the root denied province 42, and one granted province
// 42 denied district 437, try to read the events of their denied subtree
// through every search filter (actor, role, action, resource, area,
// decision, outcome, since/until), through paging one event at a time
// (the next values), and through the export. None may see an event about
// an area in the denied subtree; the export withholds exactly those, and
// search and export agree.
func TestRedTeamAuditDeniedSubtreeStaysHidden(t *testing.T) {
	t.Parallel()
	v := rtVault(t)
	A := policy.Auditor
	auditors := []rtAuditor{
		{name: "rt-aud-vn", grant: "VN", denied: "42"},
		{name: "rt-aud-42", grant: "42", denied: "437"},
		// Allow grants overlapping the deny, one inside it.
		{name: "rt-aud-overlap", grant: "VN", denied: "42"},
	}
	for _, a := range auditors[:2] {
		v.rtUser(a.name, rtAllow(A, a.grant), rtDeny(A, a.denied))
	}
	v.rtUser("rt-aud-overlap", rtAllow(A, "VN"), rtAllow(A, "42"), rtAllow(A, "18070-01"), rtDeny(A, "42"))
	// A deny at the grant's own area, and one above it: no audit log at
	// all, and the refusal is logged.
	v.rtUser("rt-aud-same", rtAllow(A, "42"), rtDeny(A, "42"))
	v.rtUser("rt-aud-above", rtAllow(A, "437"), rtDeny(A, "42"))
	for _, name := range []string{"rt-aud-same", "rt-aud-above"} {
		for _, path := range []string{"/v1/audit/events?area=18070-01", "/v1/audit/export"} {
			var r *response
			ev := v.oneEvent(func() { r = v.get(name, path) })
			if r.Status != http.StatusForbidden || ev.Decision != "deny" || ev.Outcome != "denied" {
				t.Errorf("%s GET %s: %d, event %s/%s, want 403 and a logged denial: %.200s", name, path, r.Status, ev.Decision, ev.Outcome, r.Body)
			}
		}
	}
	id, before, after := v.rtActivity()
	since := url.QueryEscape(before.Format(time.RFC3339Nano))
	until := url.QueryEscape(after.Format(time.RFC3339Nano))
	queries := []string{
		"",
		"actor=user:rt-enum",
		"actor=user:rt-tl",
		"role=enumerator",
		"action=submission.deposit",
		"action=progress.read",
		"action=table.request",
		"resource=submission:" + id,
		"resource=project:" + rtProject,
		"area=42", "area=437", "area=18070", "area=18070-01",
		"decision=allow",
		"outcome=ok",
		"since=" + since + "&until=" + until,
	}
	for _, a := range auditors {
		v := v.in(t)
		all := map[int64]bool{}
		for _, q := range queries {
			for _, limit := range []int{3, 1000} {
				for _, e := range v.rtSearch(a.name, q, limit) {
					if !a.sees(e) {
						t.Errorf("%s searching %q (limit %d) sees event %d %s about %q", a.name, q, limit, e.Index, e.Action, e.Area)
					}
					if q == "" {
						all[e.Index] = true
					}
				}
			}
		}
		// Control: the search works — the table of 19000 (province 44)
		// is visible to the auditor at the root.
		if a.grant == "VN" {
			found := false
			for _, e := range v.rtSearch(a.name, "action=table.request&area=19000", 1000) {
				found = found || e.Area == "19000"
			}
			if !found {
				t.Errorf("%s does not see the table of 19000: the search itself is broken", a.name)
			}
		}
		visible, withheld, size := v.rtExport(a.name)
		for _, e := range visible {
			if !a.sees(e) {
				t.Errorf("%s exports event %d %s about %q", a.name, e.Index, e.Action, e.Area)
			}
		}
		// Every event about 42's activity is withheld from both.
		for _, e := range v.eventsSince(0) {
			if e.Index < size && under(e.Area, a.denied) && !withheld[e.Index] {
				t.Errorf("%s's export does not withhold event %d %s about %q", a.name, e.Index, e.Action, e.Area)
			}
		}
		if len(visible) == 0 || len(all) == 0 {
			t.Errorf("%s: export %d events, search %d: the attack tested nothing", a.name, len(visible), len(all))
		}
	}
}

// deniedSubtreeAreas are the areas of province 42's subtree.
func deniedSubtreeAreas(denied string) []string {
	var out []string
	for a := range oracleParent {
		if under(a, denied) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// namesArea reports whether an event's request or resources name one of
// areas (as a JSON string, so 18070 does not match 18070-01).
func namesArea(e *audit.Event, areas []string) string {
	text := e.Request + " " + strings.Join(e.Resources, " ")
	for _, a := range areas {
		if strings.Contains(text, `"`+a+`"`) || strings.Contains(text, ":"+a+" ") || strings.HasSuffix(text, ":"+a) {
			return a
		}
	}
	return ""
}

// Red-team finding (fixed: events are visible only when the whole subtree of their area is in scope): a table covering several areas was logged with the root as its
// area, so an auditor at the root denied province 42 saw a release that
// is entirely about 42 — who asked, when, the normalized request naming
// 42's areas, the cells and the release digest. Free-form tables that
// listed several areas are gone (issue 11); what stands in their place is
// a standard table of an area above several communes: district 437's
// release must be as hidden as the communes' would be.
func TestRedTeamAuditMultiAreaTableEventHidden(t *testing.T) {

	t.Parallel()
	v := rtVault(t)
	aud := rtAuditor{name: "rt-aud-vn", grant: "VN", denied: "42"}
	v.rtUser(aud.name, rtAllow(policy.Auditor, "VN"), rtDeny(policy.Auditor, "42"))
	v.rtUser("rt-res", rtOn(rtAllow(policy.Researcher, "VN"), rtProject))
	v.makePoint("rt-1")
	// District 437 of province 42, over its two communes.
	r := v.postTable("rt-res", "", rtStd(rtProject, "437"), nil)
	if r.Status != http.StatusOK {
		t.Fatalf("table: %d %s", r.Status, r.Body)
	}
	// The premise: the release's event names the district.
	release := v.eventsSince(headerInt(t, r, httpapi.HeaderAuditIndex))[0]
	if namesArea(release, []string{"437"}) == "" {
		t.Fatalf("the release event (area %q, request %s) does not name 437: the search below tests nothing", release.Area, release.Request)
	}
	denied := deniedSubtreeAreas(aud.denied)
	for _, e := range v.rtSearch(aud.name, "action=table.request", 1000) {
		if a := namesArea(e, denied); a != "" {
			t.Errorf("search: %s sees table event %d (area %q) whose request names %s of the denied province: %s", aud.name, e.Index, e.Area, a, e.Request)
		}
	}
	visible, _, _ := v.rtExport(aud.name)
	for _, e := range visible {
		if a := namesArea(e, denied); a != "" && e.Action == string(policy.RequestTable) {
			t.Errorf("export: %s sees table event %d (area %q) naming %s of the denied province", aud.name, e.Index, e.Area, a)
		}
	}
}

// Red-team finding (fixed: events are visible only when the whole subtree of their area is in scope): the replay of a released table is logged with the root as its
// area, its resources naming the release's audit index and its digest
// the release's own. An auditor at the root denied province 42, from
// whom the release of a table of commune 18070 is withheld, reads that
// release's digest (and that it was replayed) from the replay's event.
// A digest of a small table is a hash of low-entropy numbers.
func TestRedTeamAuditReplayOfHiddenReleaseHidden(t *testing.T) {

	t.Parallel()
	v := rtVault(t)
	aud := rtAuditor{name: "rt-aud-vn", grant: "VN", denied: "42"}
	v.rtUser(aud.name, rtAllow(policy.Auditor, "VN"), rtDeny(policy.Auditor, "42"))
	v.rtUser("rt-res", rtOn(rtAllow(policy.Researcher, "VN"), rtProject))
	v.makePoint("rt-1")
	r := v.postTable("rt-res", "", rtStd(rtProject, "18070"), nil)
	if r.Status != http.StatusOK {
		t.Fatalf("table: %d %s", r.Status, r.Body)
	}
	digest := r.Header.Get(httpapi.HeaderTableDigest)
	release := headerInt(t, r, httpapi.HeaderAuditIndex)
	for _, e := range v.rtSearch(aud.name, "", 1000) {
		if e.Index == release {
			t.Fatalf("the release itself (event %d about %s) is visible: the premise does not hold", e.Index, e.Area)
		}
	}
	if _, err := v.B.ReplayTable(t.Context(), "cli:test", release); err != nil {
		t.Fatal(err)
	}
	for _, e := range v.rtSearch(aud.name, "action=table.replay", 1000) {
		if e.ReleaseDigest == digest || slices.Contains(e.Resources, fmt.Sprintf("audit:%d", release)) {
			t.Errorf("%s sees replay event %d (area %q, resources %v, digest %s) of release %d, which is withheld from it", aud.name, e.Index, e.Area, e.Resources, e.ReleaseDigest, release)
		}
	}
}

// Red-team finding (fixed: events are visible only when the whole subtree of their area is in scope): requests refused before their area is known are logged with
// no area (a deposit that does not decrypt) or with the root (a table
// request that does not compile), so an auditor at the root denied
// province 42 sees the activity of staff whose whole scope is inside 42:
// who, when, what failed, and a table request's purpose text.
func TestRedTeamAuditAreaLessEventsOfDeniedStaffHidden(t *testing.T) {

	t.Parallel()
	v := rtVault(t)
	aud := rtAuditor{name: "rt-aud-vn", grant: "VN", denied: "42"}
	v.rtUser(aud.name, rtAllow(policy.Auditor, "VN"), rtDeny(policy.Auditor, "42"))
	v.rtUser("rt-enum", rtAllow(policy.Enumerator, "18070-01"))
	v.rtUser("rt-res-local", rtOn(rtAllow(policy.Researcher, "18070"), rtProject))
	if r := v.deposit("rt-enum", []byte("not an age file")); r.Status != http.StatusBadRequest {
		t.Fatalf("garbage deposit: %d %s", r.Status, r.Body)
	}
	v.makePoint("rt-1")
	// A request that does not compile (no such table), and a custom
	// one whose ρ is refused before its areas are looked at: both are
	// logged with the root as their area. And a dp table of the
	// researcher's EA, released.
	bad := `{"project": "` + rtProject + `", "purpose": "poverty of Phường Bắc Hồng households", "table": "households_poverty", "area": "18070"}`
	if r := v.postTable("rt-res-local", "", bad, nil); r.Status != http.StatusBadRequest {
		t.Fatalf("invalid table request: %d %s", r.Status, r.Body)
	}
	custom := `{"project": "` + rtProject + `", "purpose": "poverty of Phường Bắc Hồng households", "rows": ["sex"], "filter": {"area": ["18070-01"]}`
	if r := v.postTable("rt-res-local", "", custom+`, "rho": "1000"}`, nil); r.Status != http.StatusBadRequest {
		t.Fatalf("custom table request of too large a ρ: %d %s", r.Status, r.Body)
	}
	if r := v.postTable("rt-res-local", "", custom+`}`, nil); r.Status != http.StatusOK {
		t.Fatalf("dp table request: %d %s", r.Status, r.Body)
	}
	// Both users are granted only inside 42: every event they cause is
	// about 42's subtree.
	for _, e := range v.rtSearch(aud.name, "", 1000) {
		if e.Actor == "user:rt-enum" || e.Actor == "user:rt-res-local" {
			t.Errorf("%s sees event %d %s/%s by %s (area %q, purpose %q), whose whole scope is in the denied province", aud.name, e.Index, e.Action, e.Outcome, e.Actor, e.Area, e.Purpose)
		}
	}
}

// Grants on area codes the tree does not have cover nothing; the vault
// refuses them outright rather than storing a deny that silently denies
// nothing (or an allow that allows nothing), and changes nothing.
func TestRedTeamGrantOnUnknownAreaRefused(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{areas: matrixAreas})
	ctx := t.Context()
	head := v.auditHead()
	hash := v.policyHash()
	for _, g := range []policy.Grant{
		rtDeny(policy.TeamLeader, "18070-99"),
		rtDeny(policy.TeamLeader, "18070-02 "),
		rtDeny(policy.TeamLeader, "18070/02"),
		rtAllow(policy.TeamLeader, "vn"),
	} {
		err := v.B.Grant(ctx, "cli:test", "tl-a", g)
		if broker.KindOf(err) != broker.Invalid {
			t.Errorf("grant %+v: %v, want an Invalid error", g, err)
		}
	}
	if _, err := v.B.AddUser(ctx, "cli:test", broker.NewUser{Name: "rt-ghost", Role: policy.Steering, Area: "99999"}); broker.KindOf(err) != broker.Invalid {
		t.Errorf("user on an unknown area: %v, want an Invalid error", err)
	}
	if v.auditHead() != head || v.policyHash() != hash {
		t.Errorf("a refused grant changed the log (%d → %d) or the policy hash", head, v.auditHead())
	}
}

// Progress at the root of a large tree (10,000 EAs) for a steering member
// with hundreds of denied communes: the answer leaves out exactly the
// denied subtrees, and its cost is measured against the same request
// without denies (logged, not asserted: no fixed timings in tests).
func TestRedTeamProgressManyDeniesLargeTree(t *testing.T) {
	t.Parallel()
	var csv strings.Builder
	csv.WriteString(matrixAreas)
	const P, D, C, E = 10, 10, 10, 10
	for p := range P {
		fmt.Fprintf(&csv, "rt%d,VN,province,P%d,\n", p, p)
		for d := range D {
			fmt.Fprintf(&csv, "rt%d.%d,rt%d,district,D%d,\n", p, d, p, d)
			for c := range C {
				fmt.Fprintf(&csv, "rt%d.%d.%d,rt%d.%d,commune,C%d,\n", p, d, c, p, d, c)
				for e := range E {
					fmt.Fprintf(&csv, "rt%d.%d.%d.%d,rt%d.%d.%d,ea,E%d,10\n", p, d, c, e, p, d, c, e)
				}
			}
		}
	}
	v := newVault(t, vaultOpts{areas: csv.String()})
	v.rtUser("rt-steer-all", rtAllow(policy.Steering, "VN"))
	grants := []policy.Grant{rtAllow(policy.Steering, "VN")}
	denied := map[string]bool{}
	// Every other commune of the generated tree: 500 denies.
	for p := range P {
		for d := range D {
			for c := 0; c < C; c += 2 {
				code := fmt.Sprintf("rt%d.%d.%d", p, d, c)
				grants = append(grants, rtDeny(policy.Steering, code))
				denied[code] = true
			}
		}
	}
	v.rtUser("rt-steer-deny", grants...)
	// An auditor at the root with the same denies.
	audGrants := []policy.Grant{rtAllow(policy.Auditor, "VN")}
	for _, g := range grants[1:] {
		audGrants = append(audGrants, rtDeny(policy.Auditor, g.Area))
	}
	v.rtUser("rt-aud-deny", audGrants...)

	timed := func(user string) (*progressReport, time.Duration) {
		t0 := time.Now()
		r, rep := v.progress(user, "VN", 4)
		el := time.Since(t0)
		if r.Status != http.StatusOK {
			t.Fatalf("%s progress: %d %.200s", user, r.Status, r.Body)
		}
		return rep, el
	}
	all, tAll := timed("rt-steer-all")
	rep, tDeny := timed("rt-steer-deny")
	t.Logf("progress of VN at depth 4: %d rows without denies in %v; %d rows with %d denied communes in %v", len(all.Rows), tAll, len(rep.Rows), len(denied), tDeny)
	// Without denies: every area. With them: every area but the denied
	// communes and their EAs.
	if want := len(all.Rows) - len(denied)*(1+E); len(rep.Rows) != want {
		t.Errorf("%d rows, want %d", len(rep.Rows), want)
	}
	// The audit search decides visibility event by event: time a search
	// through the whole log (each grant above is an event about its
	// area), and check none of the denied communes' events shows.
	t0 := time.Now()
	evs := v.rtSearch("rt-aud-deny", "", 1000)
	t.Logf("audit search by an auditor with %d denies: %d events of %d in %v", len(denied), len(evs), v.auditHead(), time.Since(t0))
	for _, e := range evs {
		if denied[e.Area] {
			t.Errorf("audit event %d about denied commune %s is visible", e.Index, e.Area)
		}
	}
	for _, row := range rep.Rows {
		parent := row.Area[:max(0, strings.LastIndexByte(row.Area, '.'))]
		if denied[row.Area] || strings.Count(row.Area, ".") == 3 && denied[parent] {
			t.Errorf("row of denied area %s: %+v", row.Area, row)
		}
		if strings.HasPrefix(row.Area, "rt") && strings.Count(row.Area, ".") == 1 && (!row.Partial || row.Planned != int64(C/2*E*10)) {
			t.Errorf("district %s: partial %v planned %d, want partial and %d (the allowed communes only)", row.Area, row.Partial, row.Planned, C/2*E*10)
		}
	}
}
