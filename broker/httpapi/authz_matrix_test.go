package httpapi_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// The authorization matrix of issue 10: every role × route × where the
// target lies relative to the caller's grant (own, child, sibling,
// parent, cousin, other province), with and without a deny below the
// grant. Each answer, and each request's own audit event, is compared
// with an oracle written from DESIGN.md's table of roles alone: a plain
// parent map and the list of what each role may do, not policy.Scope.

// matrixAreas is a tree with a sibling, a cousin and another province
// around commune 18070 (the grants' area). It keeps every area testUsers
// name. Every EA plans 100 households.
const matrixAreas = `code,parent,level,name,planned_households
VN,,nation,Việt Nam,
42,VN,province,Tỉnh Hà Tĩnh,
437,42,district,Thị xã Hồng Lĩnh,
18070,437,commune,Phường Bắc Hồng,
18073,437,commune,Phường Nam Hồng,
18070-01,18070,ea,Địa bàn 01,100
18070-02,18070,ea,Địa bàn 02,100
18070-03,18070,ea,Địa bàn 03,100
18073-01,18073,ea,Địa bàn 01,100
18073-02,18073,ea,Địa bàn 02,100
436,42,district,Thành phố Hà Tĩnh,
18100,436,commune,Phường Trần Phú,
18100-01,18100,ea,Địa bàn 01,100
44,VN,province,Tỉnh Quảng Bình,
450,44,district,Thành phố Đồng Hới,
19000,450,commune,Phường Hải Thành,
19000-01,19000,ea,Địa bàn 01,100
`

// oracleParent is matrixAreas' parent column, written out again.
var oracleParent = map[string]string{
	"42": "VN", "437": "42", "18070": "437", "18073": "437",
	"18070-01": "18070", "18070-02": "18070", "18070-03": "18070",
	"18073-01": "18073", "18073-02": "18073",
	"436": "42", "18100": "436", "18100-01": "18100",
	"44": "VN", "450": "44", "19000": "450", "19000-01": "19000",
}

var oracleEAs = []string{"18070-01", "18070-02", "18070-03", "18073-01", "18073-02", "18100-01", "19000-01"}

// under reports whether a is b or lies below it.
func under(a, b string) bool {
	for c := a; c != ""; c = oracleParent[c] {
		if c == b {
			return true
		}
	}
	return false
}

// The grant every matrix user holds, and the deny below it.
const (
	grantArea  = "18070"
	deniedArea = "18070-02"
	matrixProj = "matrix"
)

// oracleRoles is DESIGN.md's "may" column, per route. The approver is in
// the list of publication points alone: it approves what someone else
// proposed and creates publication points, and never sees data
// ("approves extracts and budget raises proposed by someone else (four
// eyes); never data"), so every data route refuses it, whether granted at
// the commune or at the root. A point is made for the whole tree, so only
// an approver whose scope holds all of it may make one.
var oracleRoles = map[string][]policy.Role{
	"deposit":       {policy.Enumerator, policy.TeamLeader},
	"progress":      {policy.Enumerator, policy.TeamLeader, policy.Supervisor, policy.Steering},
	"table":         {policy.Researcher},
	"audit":         {policy.Auditor},
	"release point": {policy.Approver},
	// Review views: the quality-control roles list the submissions of
	// their scope; the roles that deposit list their own.
	"list":   {policy.TeamLeader, policy.Supervisor},
	"mine":   {policy.Enumerator, policy.TeamLeader},
	"review": {policy.TeamLeader, policy.Supervisor},
	// Extracts (issue 13): the processor proposes and downloads, the
	// approver approves, both (and the admin, who retires them) see
	// the processing environments; nobody registers one over the API:
	// the host operator does.
	"extract":                 {policy.Processor},
	"extract approve":         {policy.Approver},
	"extract environments":    {policy.Admin, policy.Processor, policy.Approver},
	"extract environment add": {},
	"extract list":            {policy.Processor, policy.Approver},
}

// oracleClasses is what each role sees of a submission it opens in its
// scope (DESIGN.md and issue 13: team_leader "identifying + analytic
// fields", and the operational ones too; supervisor "analytic fields"
// only, never the identifying or the operational ones); every other role
// opens nothing.
var oracleClasses = map[policy.Role][]string{
	policy.TeamLeader: {"identifying", "analytic", "operational"},
	policy.Supervisor: {"analytic"},
}

// matrixSubject is one matrix user.
type matrixSubject struct {
	name  string
	role  policy.Role
	grant string // grantArea, or the root for admins (a global role)
	deny  bool   // holds a deny of its role at deniedArea
}

// inScope: the oracle's scope rule — under the grant, not under a deny.
func (s matrixSubject) inScope(a string) bool {
	return under(a, s.grant) && !(s.deny && under(a, deniedArea))
}

// coversDenied: some area at or below a is outside the scope although
// a itself is inside it (a table there would contain a denied area).
func (s matrixSubject) coversDenied(a string) bool {
	return s.deny && under(deniedArea, a)
}

func (s matrixSubject) may(route string) bool { return slices.Contains(oracleRoles[route], s.role) }

// relation names where target t lies relative to the grant.
var matrixTargets = []struct{ rel, area string }{
	{"own", "18070"},
	{"child", "18070-01"},
	{"denied child", "18070-02"},
	{"sibling", "18073"},
	{"parent", "437"},
	{"cousin", "18100"},
	{"other province", "19000"},
	{"nation", "VN"},
}

// depositTargets are EAs in the same relations (deposits name an EA).
var depositTargets = []struct{ rel, area string }{
	{"own", "18070-01"},
	{"denied child", "18070-02"},
	{"sibling", "18073-01"},
	{"cousin", "18100-01"},
	{"other province", "19000-01"},
}

// newMatrixVault is a vault of matrixAreas with the matrix project and
// a subject for every role of the policy (policy.Roles), granted at the
// commune and at the root, each with and without a deny below the grant.
func newMatrixVault(t *testing.T) (*vault, []matrixSubject) {
	t.Helper()
	// Every refusal is one event here: the matrix refuses far more than
	// the default ceiling of refusals logged one by one (the clock does
	// not move, so the ceiling would never refill).
	v := newVault(t, vaultOpts{areas: matrixAreas, limits: broker.Limits{RefusalBurst: 1 << 20}})
	ctx := t.Context()
	if err := v.B.AddProject(ctx, "cli:test", broker.NewProject{
		ID: matrixProj, Title: "matrix", Purpose: "authorization matrix",
		Areas: []broker.AreaCode{"VN"}, Variables: []string{"sex", "age_group5"},
		Expires: start.AddDate(1, 0, 0), Budget: 10_000_000,
	}); err != nil {
		t.Fatal(err)
	}
	var subjects []matrixSubject
	for _, r := range policy.Roles() {
		for _, sub := range []struct {
			grant string
			deny  bool
		}{{grantArea, false}, {grantArea, true}, {"VN", false}, {"VN", true}} {
			deny := sub.deny
			s := matrixSubject{name: "m-" + strings.ReplaceAll(string(r), "_", "-"), role: r, grant: sub.grant, deny: deny}
			if r == policy.Admin && (sub.grant != "VN" || deny) {
				continue // a global role: granted at the root only, and nothing to deny below for these routes
			}
			if sub.grant == "VN" {
				s.name += "-vn"
			}
			if deny {
				s.name += "-deny"
			}
			nu := broker.NewUser{Name: broker.UserID(s.name), Role: r, Area: broker.AreaCode(s.grant)}
			if r == policy.Researcher {
				nu.Project = matrixProj
			}
			tok, err := v.B.AddUser(ctx, "cli:test", nu)
			if err != nil {
				t.Fatal(err)
			}
			v.Tokens[s.name] = tok.Reveal()
			if deny {
				if err := v.B.Grant(ctx, "cli:test", nu.Name, policy.Grant{Role: r, Area: deniedArea, Deny: true, Project: nu.Project}); err != nil {
					t.Fatal(err)
				}
			}
			subjects = append(subjects, s)
		}
	}
	return v, subjects
}

func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	v, subjects := newMatrixVault(t)
	// 100 households in every EA: every commune is at its new state at
	// the publication point the tables are computed at.
	v.loadSynthetic(700)
	v.makePoint("matrix")

	checkEvent := func(t *testing.T, ev *audit.Event, action string, allowed bool) {
		t.Helper()
		want := map[bool]string{true: "allow", false: "deny"}[allowed]
		if ev.Action != action || ev.Decision != want {
			t.Errorf("audit event %s/%s (%s), want %s/%s", ev.Action, ev.Decision, ev.Rule, action, want)
		}
		if !allowed && ev.Outcome != "denied" {
			t.Errorf("audit event outcome %q, want denied", ev.Outcome)
		}
	}

	// A deposit of someone else's (enum-a1, in 18070-01) for the receipt
	// routes; each matrix user's own first deposit is noted below.
	other := household(eaA1, 899)
	v.receipt(v.deposit("enum-a1", v.seal(encode(t, other))), http.StatusCreated)
	own := map[string]string{}

	t.Run("deposit", func(t *testing.T) {
		no := 900
		for _, s := range subjects {
			for _, tg := range depositTargets {
				v := v.in(t)
				allowed := s.may("deposit") && s.inScope(tg.area)
				no++
				h := household(tg.area, no)
				var r *response
				ev := v.oneEvent(func() { r = v.deposit(s.name, v.seal(encode(t, h))) })
				want := map[bool]int{true: http.StatusCreated, false: http.StatusForbidden}[allowed]
				if r.Status != want {
					t.Errorf("%s deposits in %s (%s): %d, want %d: %s", s.name, tg.area, tg.rel, r.Status, want, r.Body)
				}
				checkEvent(t, ev, string(policy.Deposit), allowed)
				if !allowed {
					v.mustNotBeStored(h["id"].(string))
				} else if own[s.name] == "" {
					own[s.name] = h["id"].(string)
				}
			}
		}
	})

	// Counts are final from here on: the oracle reads them once.
	counts := v.depositedIn(oracleEAs)

	t.Run("progress", func(t *testing.T) {
		for _, s := range subjects {
			for _, tg := range matrixTargets {
				v := v.in(t)
				allowed := s.may("progress") && s.inScope(tg.area)
				var r *response
				var rep *progressReport
				ev := v.oneEvent(func() { r, rep = v.progress(s.name, tg.area, 1) })
				if want := map[bool]int{true: 200, false: 403}[allowed]; r.Status != want {
					t.Errorf("%s progress of %s (%s): %d, want %d: %s", s.name, tg.area, tg.rel, r.Status, want, r.Body)
					continue
				}
				checkEvent(t, ev, string(policy.ReadProgress), allowed)
				if !allowed {
					continue
				}
				// The oracle's rows: the area and its children in scope,
				// each counting only its EAs in scope.
				want := map[string]progressRow{}
				for _, a := range append([]string{tg.area}, childrenOf(tg.area)...) {
					if !s.inScope(a) {
						continue
					}
					var row progressRow
					for _, ea := range oracleEAs {
						if under(ea, a) && s.inScope(ea) {
							row.Planned += 100
							row.Deposited += counts[ea]
						}
					}
					want[a] = row
				}
				if len(rep.Rows) != len(want) {
					t.Errorf("%s progress of %s: %d rows, want %d (%v)", s.name, tg.area, len(rep.Rows), len(want), rep.Rows)
				}
				for _, row := range rep.Rows {
					w, ok := want[row.Area]
					if !ok {
						t.Errorf("%s progress of %s: row %s is out of scope", s.name, tg.area, row.Area)
						continue
					}
					if row.Planned != w.Planned || row.Deposited != w.Deposited {
						t.Errorf("%s progress of %s: row %s %d/%d, want %d/%d", s.name, tg.area, row.Area, row.Deposited, row.Planned, w.Deposited, w.Planned)
					}
					if wantPartial := s.coversDenied(row.Area); row.Partial != wantPartial {
						t.Errorf("%s progress of %s: row %s partial %v, want %v", s.name, tg.area, row.Area, row.Partial, wantPartial)
					}
				}
			}
		}
	})

	t.Run("table", func(t *testing.T) {
		// A standard table of the area (every area of matrixAreas plans
		// at least the table's minimum of 100 households). The
		// catalogue publishes no table of an EA: a researcher asking
		// one is told so (400), whatever its scope, before the scope is
		// looked at.
		for _, s := range subjects {
			for _, tg := range matrixTargets {
				v := v.in(t)
				body := stdTable(matrixProj, "population_age_broad_sex", tg.area, "")
				var r *response
				ev := v.oneEvent(func() { r = v.postTable(s.name, "", body, nil) })
				if s.may("table") && slices.Contains(oracleEAs, tg.area) {
					if r.Status != 400 || r.Code(t) != "invalid" || ev.Action != string(policy.RequestTable) || ev.Outcome != "invalid" || ev.ReleaseDigest != "" {
						t.Errorf("%s table of EA %s (%s): %d %s, event %s/%s; want 400 invalid", s.name, tg.area, tg.rel, r.Status, r.Body, ev.Action, ev.Outcome)
					}
					continue
				}
				allowed := s.may("table") && s.inScope(tg.area) && !s.coversDenied(tg.area)
				if want := map[bool]int{true: 200, false: 403}[allowed]; r.Status != want {
					t.Errorf("%s table of %s (%s): %d, want %d: %s", s.name, tg.area, tg.rel, r.Status, want, r.Body)
				}
				checkEvent(t, ev, string(policy.RequestTable), allowed)
			}
		}
	})

	t.Run("release points", func(t *testing.T) {
		// Making a point is for the whole tree: the oracle's scope rule
		// at the root. Listing points and the catalogue is for anyone
		// authenticated.
		for _, s := range subjects {
			v := v.in(t)
			allowed := s.may("release point") && s.inScope("VN") && !s.coversDenied("VN")
			var r *response
			ev := v.oneEvent(func() { r = v.postPoint(s.name, `{"name": "pt-`+s.name+`"}`) })
			if want := map[bool]int{true: 201, false: 403}[allowed]; r.Status != want {
				t.Errorf("%s makes a publication point: %d, want %d: %s", s.name, r.Status, want, r.Body)
			}
			checkEvent(t, ev, string(policy.CreateReleasePoint), allowed)
			for _, path := range []string{"/v1/release-points", "/v1/catalogue"} {
				ev := v.oneEvent(func() { r = v.get(s.name, path) })
				if r.Status != 200 {
					t.Errorf("%s GET %s: %d, want 200: %s", s.name, path, r.Status, r.Body)
				}
				checkEvent(t, ev, map[string]string{"/v1/release-points": "release_point.list", "/v1/catalogue": "catalogue.read"}[path], true)
			}
		}
	})

	t.Run("audit search", func(t *testing.T) {
		for _, s := range subjects {
			for _, tg := range matrixTargets {
				v := v.in(t)
				allowed := s.may("audit")
				head := v.auditHead()
				var r *response
				ev := v.oneEvent(func() { r = v.get(s.name, "/v1/audit/events?limit=1000&area="+tg.area) })
				if want := map[bool]int{true: 200, false: 403}[allowed]; r.Status != want {
					t.Errorf("%s audit search of %s (%s): %d, want %d: %s", s.name, tg.area, tg.rel, r.Status, want, r.Body)
					continue
				}
				checkEvent(t, ev, string(policy.ReadAudit), allowed)
				if !allowed {
					continue
				}
				got := map[int64]bool{}
				for page := 0; ; page++ {
					var body struct {
						Events []json.RawMessage `json:"events"`
						Next   *int64            `json:"next"`
					}
					r.JSON(t, &body)
					for _, raw := range body.Events {
						e, err := audit.Decode(raw)
						if err != nil {
							t.Fatal(err)
						}
						got[e.Index] = true
						if !s.inScope(e.Area) || s.coversDenied(e.Area) || !under(e.Area, tg.area) {
							t.Errorf("%s audit search of %s: event %d about %q is out of scope", s.name, tg.area, e.Index, e.Area)
						}
					}
					if body.Next == nil || *body.Next >= head {
						break
					}
					r = v.get(s.name, fmt.Sprintf("/v1/audit/events?limit=1000&area=%s&from=%d", tg.area, *body.Next))
					if r.Status != 200 {
						t.Fatalf("page %d: %d %s", page+1, r.Status, r.Body)
					}
				}
				// Completeness: every event before the search about an
				// area in scope and under the target.
				var want []int64
				for _, e := range v.eventsSince(0) {
					if e.Index < head && e.Area != "" && s.inScope(e.Area) && !s.coversDenied(e.Area) && under(e.Area, tg.area) {
						want = append(want, e.Index)
					}
				}
				for _, i := range want {
					if !got[i] {
						t.Errorf("%s audit search of %s: event %d in scope is missing", s.name, tg.area, i)
						break
					}
				}
			}
		}
	})

	t.Run("audit export", func(t *testing.T) {
		for _, s := range subjects {
			v := v.in(t)
			allowed := s.may("audit")
			var r *response
			ev := v.oneEvent(func() { r = v.get(s.name, "/v1/audit/export") })
			if want := map[bool]int{true: 200, false: 403}[allowed]; r.Status != want {
				t.Errorf("%s audit export: %d, want %d: %s", s.name, r.Status, want, r.Body)
				continue
			}
			checkEvent(t, ev, "audit.export", allowed)
			if !allowed {
				continue
			}
			byIndex := map[int64]*audit.Event{}
			for _, e := range v.eventsSince(0) {
				byIndex[e.Index] = e
			}
			lines := 0
			for _, line := range exportLines(t, r.Body) {
				lines++
				e := byIndex[line.Index]
				// An event is about its area's whole subtree; one about
				// no area is about the nation.
				a := cmp.Or(e.Area, "VN")
				visible := s.inScope(a) && !s.coversDenied(a)
				if visible != (len(line.Event) > 0) || visible == (line.Withheld == string(audit.WithheldOutOfScope)) {
					t.Errorf("%s export: event %d about %q: withheld %q, want visible %v", s.name, line.Index, e.Area, line.Withheld, visible)
				}
			}
			if lines == 0 {
				t.Errorf("%s export has no leaves", s.name)
			}
		}
	})

	t.Run("receipts", func(t *testing.T) {
		// A receipt, and its proof of inclusion, go to their depositor
		// only: the roles that deposit, for their own deposits.
		for _, s := range subjects {
			for _, c := range []struct {
				whose, id string
				allowed   bool
			}{{"own", own[s.name], true}, {"another's", other["id"].(string), false}} {
				if c.id == "" {
					if s.may("deposit") {
						t.Errorf("%s may deposit but has no deposit of its own", s.name)
					}
					continue
				}
				for _, route := range []string{"/v1/receipts/" + c.id, "/v1/receipts/" + c.id + "/proof"} {
					v := v.in(t)
					var r *response
					ev := v.oneEvent(func() { r = v.get(s.name, route) })
					if want := map[bool]int{true: 200, false: 404}[c.allowed]; r.Status != want {
						t.Errorf("%s GET %s (%s): %d, want %d: %s", s.name, route, c.whose, r.Status, want, r.Body)
					}
					if want := map[bool]string{true: "allow", false: "deny"}[c.allowed]; ev.Decision != want {
						t.Errorf("%s GET %s (%s): audit decision %q, want %q", s.name, route, c.whose, ev.Decision, want)
					}
				}
			}
		}
	})

	stored := v.storedSubmissions()

	t.Run("review list", func(t *testing.T) {
		// A list of the area: allowed when the role lists and some EA
		// under the area is in scope; it holds exactly the stored
		// submissions of the EAs in scope under the area.
		for _, s := range subjects {
			for _, tg := range matrixTargets {
				v := v.in(t)
				allowed := false
				for _, ea := range oracleEAs {
					allowed = allowed || (s.may("list") && under(ea, tg.area) && s.inScope(ea))
				}
				var r *response
				ev := v.oneEvent(func() { r = v.get(s.name, "/v1/submissions?status=all&limit=500&area="+tg.area) })
				if want := map[bool]int{true: 200, false: 403}[allowed]; r.Status != want {
					t.Errorf("%s lists %s (%s): %d, want %d: %s", s.name, tg.area, tg.rel, r.Status, want, r.Body)
					continue
				}
				checkEvent(t, ev, string(policy.ListSubmissions), allowed)
				if ev.Area != tg.area || len(ev.Resources) != 0 {
					t.Errorf("%s lists %s: event at %q with resources %v", s.name, tg.area, ev.Area, ev.Resources)
				}
				if !allowed {
					continue
				}
				got := map[string]bool{}
				for page := 0; ; page++ {
					var l wire.SubmissionList
					r.JSON(t, &l)
					for _, sm := range l.Submissions {
						got[string(sm.ID)] = true
						if !s.inScope(string(sm.EA)) || !under(string(sm.EA), tg.area) {
							t.Errorf("%s lists %s: submission in %s is out of scope", s.name, tg.area, sm.EA)
						}
					}
					if l.Next == nil {
						break
					}
					r = v.get(s.name, fmt.Sprintf("/v1/submissions?status=all&limit=500&area=%s&after=%d", tg.area, *l.Next))
					if r.Status != 200 || page > 10 {
						t.Fatalf("%s lists %s, page %d: %d %s", s.name, tg.area, page+1, r.Status, r.Body)
					}
				}
				for _, sub := range stored {
					if want := s.inScope(sub.ea) && under(sub.ea, tg.area); got[sub.id] != want {
						t.Errorf("%s lists %s: submission of %s listed %v, want %v", s.name, tg.area, sub.ea, got[sub.id], want)
						break
					}
				}
			}
		}
	})

	t.Run("own list", func(t *testing.T) {
		for _, s := range subjects {
			v := v.in(t)
			allowed := s.may("mine")
			var r *response
			ev := v.oneEvent(func() { r = v.get(s.name, "/v1/submissions?mine=1&status=all&limit=500") })
			if want := map[bool]int{true: 200, false: 403}[allowed]; r.Status != want {
				t.Errorf("%s lists its own: %d, want %d: %s", s.name, r.Status, want, r.Body)
				continue
			}
			checkEvent(t, ev, string(policy.ListSubmissions), allowed)
			if !allowed {
				continue
			}
			var l wire.SubmissionList
			r.JSON(t, &l)
			var want, got []string
			for _, sub := range stored {
				if sub.depositor == s.name && s.inScope(sub.ea) {
					want = append(want, sub.id)
				}
			}
			for _, sm := range l.Submissions {
				got = append(got, string(sm.ID))
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) || len(want) == 0 {
				t.Errorf("%s lists its own: %v, want %v (its deposits)", s.name, got, want)
			}
		}
	})

	t.Run("open a submission", func(t *testing.T) {
		// One household of each EA: the classes of the role where the
		// EA is in scope, 403 elsewhere and for every other role.
		first := map[string]string{}
		for _, sub := range stored {
			if first[sub.ea] == "" {
				first[sub.ea] = sub.id
			}
		}
		for _, s := range subjects {
			for _, ea := range oracleEAs {
				v := v.in(t)
				want := oracleClasses[s.role]
				allowed := len(want) > 0 && s.inScope(ea)
				var r *response
				ev := v.oneEvent(func() { r = v.get(s.name, "/v1/submissions/"+first[ea]) })
				if st := map[bool]int{true: 200, false: 403}[allowed]; r.Status != st {
					t.Errorf("%s opens a household of %s: %d, want %d: %s", s.name, ea, r.Status, st, r.Body)
					continue
				}
				checkEvent(t, ev, string(policy.ReadSubmission), allowed)
				if ev.Area != ea || !slices.Equal(ev.Resources, []string{"submission:" + first[ea]}) {
					t.Errorf("%s opens a household of %s: event at %q, resources %v", s.name, ea, ev.Area, ev.Resources)
				}
				if !allowed {
					continue
				}
				var sv wire.SubmissionView
				r.JSON(t, &sv)
				if !slices.Equal(sv.Classes, want) || len(sv.Fields) != len(want) {
					t.Errorf("%s opens a household of %s: classes %v, want %v", s.name, ea, sv.Classes, want)
				}
				if ev.Reason != "revealed "+strings.Join(want, ", ") {
					t.Errorf("%s opens a household of %s: event reason %q", s.name, ea, ev.Reason)
				}
			}
		}
	})

	t.Run("review", func(t *testing.T) {
		// One household of each EA, accepted: 200 where the role
		// reviews and the EA is in scope, 403 elsewhere and for every
		// other role (none of the subjects deposited them).
		first := map[string]string{}
		for _, sub := range stored {
			if first[sub.ea] == "" {
				first[sub.ea] = sub.id
			}
		}
		for _, s := range subjects {
			for _, ea := range oracleEAs {
				v := v.in(t)
				allowed := s.may("review") && s.inScope(ea)
				var r *response
				ev := v.oneEvent(func() { r = v.review(s.name, first[ea], `{"status":"accepted","reason":"ok","note":""}`) })
				if st := map[bool]int{true: 200, false: 403}[allowed]; r.Status != st {
					t.Errorf("%s reviews a household of %s: %d, want %d: %s", s.name, ea, r.Status, st, r.Body)
					continue
				}
				checkEvent(t, ev, string(policy.ReviewSubmission), allowed)
				if ev.Area != ea || !slices.Equal(ev.Resources, []string{"submission:" + first[ea]}) {
					t.Errorf("%s reviews a household of %s: event at %q, resources %v", s.name, ea, ev.Area, ev.Resources)
				}
			}
		}
	})

	matrixExtracts(t, v, subjects)
}

// storedSub is a stored submission as the matrix oracle sees it.
type storedSub struct{ id, ea, depositor string }

// storedSubmissions reads every stored submission from the file.
func (v *vault) storedSubmissions() []storedSub {
	v.t.Helper()
	rows, err := v.rawDB().Query(`SELECT id, area, depositor FROM submissions`)
	if err != nil {
		v.t.Fatal(err)
	}
	defer rows.Close()
	var out []storedSub
	for rows.Next() {
		var s storedSub
		if err := rows.Scan(&s.id, &s.ea, &s.depositor); err != nil {
			v.t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		v.t.Fatal(err)
	}
	return out
}

// childrenOf lists a's children in the oracle's tree.
func childrenOf(a string) []string {
	var out []string
	for c, p := range oracleParent {
		if p == a {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// depositedIn is the stored count of current households of each EA.
func (v *vault) depositedIn(eas []string) map[string]int64 {
	v.t.Helper()
	var m map[string]int64
	if err := v.Store.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		m, err = tx.Deposited(eas)
		return err
	}); err != nil {
		v.t.Fatal(err)
	}
	return m
}
