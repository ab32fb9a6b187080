package httpapi_test

// Publication points and the catalogue over HTTP (issue 11): who may make
// a point, what a bad request to make one gets, the interval between
// points, and the lists every authenticated user may read. Each test is
// the attack it stops.

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/client"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/policy"
)

// listPoints reads GET /v1/release-points as user.
func (v *vault) listPoints(user string) []wire.ReleasePoint {
	v.t.Helper()
	r := v.get(user, "/v1/release-points")
	if r.Status != http.StatusOK {
		v.t.Fatalf("%s lists the publication points: %d %s", user, r.Status, r.Body)
	}
	var out struct {
		Points []wire.ReleasePoint `json:"release_points"`
	}
	r.JSON(v.t, &out)
	return out.Points
}

// A publication point fixes what every later standard table may show, so
// only an approver over the whole tree may make one (four eyes: not the
// admin who runs the vault). An admin, a researcher who would like a
// fresher point, an auditor, an enumerator, an approver granted only one
// province, and an approver at the root denied a province each try; each
// is refused with 403, the refusal is logged, and no point exists. The
// approver at the root then makes one: 201 and the point.
func TestReleasePointOnlyApproverAtRoot(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{areas: matrixAreas})
	v.loadSynthetic(700)
	ctx := t.Context()
	for _, u := range []struct {
		name   string
		grants []policy.Grant
	}{
		{"approver-42", []policy.Grant{{Role: policy.Approver, Area: "42"}}},
		{"approver-vn-deny-44", []policy.Grant{{Role: policy.Approver, Area: "VN"}, {Role: policy.Approver, Area: "44", Deny: true}}},
	} {
		tok, err := v.B.AddUser(ctx, "cli:test", broker.NewUser{Name: broker.UserID(u.name), Role: u.grants[0].Role, Area: broker.AreaCode(u.grants[0].Area)})
		if err != nil {
			t.Fatal(err)
		}
		v.Tokens[u.name] = tok.Reveal()
		for _, g := range u.grants[1:] {
			if err := v.B.Grant(ctx, "cli:test", broker.UserID(u.name), g); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, user := range []string{"admin", "researcher", "auditor", "enum-a1", "steering-vn", "approver-42", "approver-vn-deny-44"} {
		var r *response
		ev := v.oneEvent(func() { r = v.postPoint(user, `{"name": "by-`+user+`"}`) })
		if r.Status != http.StatusForbidden || r.Code(t) != "permission_denied" {
			t.Errorf("%s makes a publication point: %d %s, want 403 permission_denied", user, r.Status, r.Body)
		}
		if msg, _ := r.ErrorBody(t); !strings.Contains(msg, "approver grant over the whole area tree") {
			t.Errorf("%s: message %q does not say what is needed", user, msg)
		}
		if ev.Action != "release_point.create" || ev.Decision != "deny" || ev.Outcome != "denied" || ev.Actor != "user:"+user ||
			!slices.Equal(ev.Resources, []string{"release_point:by-" + user}) {
			t.Errorf("%s: event %s %s/%s by %s resources %v, want a logged denial", user, ev.Action, ev.Decision, ev.Outcome, ev.Actor, ev.Resources)
		}
	}
	if ps := v.listPoints("researcher"); len(ps) != 0 {
		t.Fatalf("refused requests made points: %+v", ps)
	}

	var r *response
	ev := v.oneEvent(func() { r = v.postPoint("approver", `{"name": "2019-05-01"}`) })
	if r.Status != http.StatusCreated {
		t.Fatalf("the approver at the root makes a point: %d %s", r.Status, r.Body)
	}
	var p wire.ReleasePoint
	r.JSON(t, &p)
	// 700 households, 100 per EA: every commune changed by at least
	// k = 100 households since nothing, so every one is at its new
	// state.
	if p.Name != "2019-05-01" || p.Seq != 1 || p.AsOf <= 0 || p.AsOf >= ev.Index || !p.Created.Equal(v.Clock.Now()) ||
		p.CreatedBy != "user:approver" || p.Level != "commune" || p.K != broker.DefaultPointK || p.Areas != 4 || p.Advanced != 4 || p.Kept != 0 {
		t.Errorf("point %+v", p)
	}
	if ev.Action != "release_point.create" || ev.Decision != "allow" || ev.Outcome != "ok" || ev.Area != "VN" ||
		!slices.Equal(ev.Resources, []string{"release_point:2019-05-01"}) {
		t.Errorf("event %s %s/%s at %q resources %v", ev.Action, ev.Decision, ev.Outcome, ev.Area, ev.Resources)
	}
	ps := v.listPoints("auditor")
	p.Areas, p.Advanced, p.Kept = 0, 0, 0 // only creation reports them
	if len(ps) != 1 || !ps[0].Created.Equal(p.Created) {
		t.Fatalf("list after creation: %+v", ps)
	}
	ps[0].Created = p.Created
	if ps[0] != p {
		t.Errorf("listed %+v, made %+v", ps[0], p)
	}
}

// Bad requests to make a point: what a strict reader refuses (unknown
// keys, not JSON, a body over 1 KiB, a second name, a query parameter)
// and names that are not names (spaces, capitals, a path, too long, none)
// get 400 with a stable code, are logged, and make nothing. A name
// already taken gets 409 point_exists: points are never replaced, so a
// release stays tied to the state it was computed at.
func TestReleasePointBadRequests(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	v.makePoint("p1")
	for _, tc := range []struct {
		what, query, body string
		status            int
		code              string
		says              string
	}{
		{"unknown key", "", `{"name": "p2", "k": 1}`, 400, "invalid", `unknown key "k"`},
		{"case-folded key", "", `{"NAME": "p2"}`, 400, "invalid", `"name"`},
		{"name given twice", "", `{"name": "p2", "name": "p3"}`, 400, "invalid", "twice"},
		{"not JSON", "", `name=p2`, 400, "invalid", `{"name": NAME}`},
		{"not an object", "", `["p2"]`, 400, "invalid", `{"name": NAME}`},
		{"a number", "", `{"name": 2}`, 400, "invalid", `{"name": NAME}`},
		{"over 1 KiB", "", `{"name": "p2"` + strings.Repeat(" ", 1024) + `}`, 400, "invalid", "over 1024 bytes"},
		{"a query parameter", "?k=1", `{"name": "p2"}`, 400, "invalid", "takes no parameters"},
		{"no name", "", `{}`, 400, "invalid_point_name", "lowercase letters"},
		{"a space", "", `{"name": "point two"}`, 400, "invalid_point_name", "lowercase letters"},
		{"capitals", "", `{"name": "P2"}`, 400, "invalid_point_name", "lowercase letters"},
		{"a path", "", `{"name": "../p2"}`, 400, "invalid_point_name", "lowercase letters"},
		{"a leading dash", "", `{"name": "-p2"}`, 400, "invalid_point_name", "lowercase letters"},
		{"65 characters", "", `{"name": "` + strings.Repeat("p", 65) + `"}`, 400, "invalid_point_name", "1–64"},
		{"a terminal escape", "", `{"name": "p\u001b[2J"}`, 400, "invalid", "control character"},
		{"a taken name", "", `{"name": "p1"}`, 409, "point_exists", "choose another name"},
	} {
		var r *response
		ev := v.oneEvent(func() {
			r = v.do(http.MethodPost, "/v1/release-points"+tc.query, "Bearer "+v.Tokens["approver"], strings.NewReader(tc.body), nil)
		})
		msg, _ := r.ErrorBody(t)
		if r.Status != tc.status || r.Code(t) != tc.code || !strings.Contains(msg, tc.says) {
			t.Errorf("%s: %d %s, want %d %s saying %q", tc.what, r.Status, r.Body, tc.status, tc.code, tc.says)
		}
		wantOutcome := map[int]string{400: "invalid", 409: "conflict"}[tc.status]
		if ev.Action != "release_point.create" || ev.Outcome != wantOutcome || ev.Actor != "user:approver" {
			t.Errorf("%s: event %s/%s by %s, want release_point.create/%s", tc.what, ev.Action, ev.Outcome, ev.Actor, wantOutcome)
		}
	}
	if ps := v.listPoints("approver"); len(ps) != 1 || ps[0].Name != "p1" {
		t.Errorf("after the refusals: %+v, want p1 alone", ps)
	}
	for _, rec := range v.auditRecords(0) {
		if bytes.ContainsAny(rec.Event, "\x00\x1b") || bytes.Contains(rec.Event, []byte(`\u001b`)) {
			t.Errorf("audit record %d holds a terminal escape: %q", rec.Index, rec.Event)
		}
	}
}

// An approver (or whoever took an approver's token) makes points minutes
// apart, so that tables at consecutive points differ by the few
// households deposited between them. Points are at least the interval
// apart — a week unless configured — and the refusal says when the next
// may be made.
func TestReleasePointTooSoon(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{defaultPointInterval: true})
	v.loadSynthetic(50)
	p1 := v.makePoint("p1")
	for _, wait := range []time.Duration{0, time.Minute, broker.DefaultPointInterval - time.Minute - time.Second} {
		v.Clock.Advance(wait)
		var r *response
		ev := v.oneEvent(func() { r = v.postPoint("approver", `{"name": "p2"}`) })
		msg, _ := r.ErrorBody(t)
		next := p1.Created.Add(broker.DefaultPointInterval).Format(time.RFC3339)
		if r.Status != http.StatusConflict || r.Code(t) != "point_too_soon" || !strings.Contains(msg, "from "+next) {
			t.Errorf("a second point %s after the first: %d %s, want 409 point_too_soon saying it may be made from %s", v.Clock.Now().Sub(p1.Created), r.Status, r.Body, next)
		}
		if ev.Action != "release_point.create" || ev.Outcome != "conflict" || ev.Decision != "allow" {
			t.Errorf("event %s %s/%s", ev.Action, ev.Decision, ev.Outcome)
		}
	}
	if ps := v.listPoints("approver"); len(ps) != 1 {
		t.Fatalf("points made too soon: %+v", ps)
	}
	v.Clock.Advance(time.Second) // exactly a week after p1
	if p2 := v.makePoint("p2"); p2.Seq != 2 {
		t.Errorf("the point a week later: %+v", p2)
	}
}

// Points and the catalogue are public facts: every authenticated user
// may list them (and the listing is logged); nobody unauthenticated may;
// neither route takes query parameters.
func TestReleasePointsAndCatalogueLists(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	v.makePoint("p1")
	v.makePoint("p2")
	for _, u := range testUsers {
		user := string(u.Name)
		var ps []wire.ReleasePoint
		ev := v.oneEvent(func() { ps = v.listPoints(user) })
		if len(ps) != 2 || ps[0].Name != "p1" || ps[1].Name != "p2" || ps[0].Seq != 1 || ps[1].Seq != 2 {
			t.Errorf("%s lists %+v, want p1 then p2", user, ps)
		}
		if ev.Action != "release_point.list" || ev.Outcome != "ok" || ev.Actor != "user:"+user {
			t.Errorf("%s: event %s/%s by %s", user, ev.Action, ev.Outcome, ev.Actor)
		}
		var r *response
		ev = v.oneEvent(func() { r = v.get(user, "/v1/catalogue") })
		if r.Status != http.StatusOK || ev.Action != "catalogue.read" || ev.Outcome != "ok" {
			t.Errorf("%s reads the catalogue: %d, event %s/%s", user, r.Status, ev.Action, ev.Outcome)
		}
	}
	for _, path := range []string{"/v1/release-points", "/v1/catalogue"} {
		r := v.do(http.MethodGet, path, "", nil, nil)
		if r.Status != http.StatusUnauthorized || r.Code(t) != "unauthenticated" || bytes.Contains(r.Body, []byte("p1")) || bytes.Contains(r.Body, []byte("population")) {
			t.Errorf("GET %s without a token: %d %s", path, r.Status, r.Body)
		}
		for _, q := range []string{"?limit=1", "?as_of=p1", "?%zz"} {
			var r *response
			ev := v.oneEvent(func() { r = v.get("researcher", path+q) })
			if r.Status != http.StatusBadRequest || r.Code(t) != "invalid" || ev.Outcome != "invalid" {
				t.Errorf("GET %s%s: %d %s, event %s; want 400 invalid", path, q, r.Status, r.Body, ev.Outcome)
			}
		}
	}
}

// catalogueFile is broker/tables/catalogue/v1.json as the test reads it
// itself: the oracle for GET /v1/catalogue.
type catalogueFile struct {
	Version int `json:"version"`
	Tables  []struct {
		ID         string            `json:"id"`
		Title      map[string]string `json:"title"`
		Unit       string            `json:"unit"`
		Rows       []string          `json:"rows"`
		Cols       []string          `json:"cols"`
		Measure    json.RawMessage   `json:"measure"`
		Levels     []string          `json:"levels"`
		MinPlanned int64             `json:"min_planned_households"`
	} `json:"tables"`
}

// GET /v1/catalogue lists the 16 tables of catalogue version 1 exactly as
// the embedded file defines them: what each crosses, the levels it is
// published at and the fewest planned households of its area — what a
// researcher needs to know which requests can succeed before making any.
func TestCatalogue(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	raw, err := os.ReadFile(filepath.Join("..", "tables", "catalogue", "v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want catalogueFile
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	r := v.get("researcher", "/v1/catalogue")
	if r.Status != http.StatusOK {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	var got wire.Catalogue
	r.JSON(t, &got)
	if got.Version != 1 || got.Form != "census2019" || got.FormVersion != 1 || len(got.Tables) != 16 || len(want.Tables) != 16 {
		t.Fatalf("catalogue version %d form %s/%d with %d tables (the file has %d), want version 1 of census2019/1 with 16",
			got.Version, got.Form, got.FormVersion, len(got.Tables), len(want.Tables))
	}
	compact := func(m json.RawMessage) string {
		var b bytes.Buffer
		if err := json.Compact(&b, m); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	for i, w := range want.Tables {
		g := got.Tables[i]
		if w.Cols == nil {
			w.Cols = []string{}
		}
		if g.ID != w.ID || g.Unit != w.Unit || !slices.Equal(g.Rows, w.Rows) || !slices.Equal(g.Cols, w.Cols) ||
			!slices.Equal(g.Levels, w.Levels) || g.MinPlanned != w.MinPlanned || compact(g.Measure) != compact(w.Measure) ||
			g.Title["en"] != w.Title["en"] || g.Title["vi"] != w.Title["vi"] {
			t.Errorf("table %d: served %+v, the catalogue file says %+v", i, g, w)
		}
		if len(g.Levels) == 0 || slices.Contains(g.Levels, "ea") || g.MinPlanned <= 0 {
			t.Errorf("table %s: levels %v, min planned %d", g.ID, g.Levels, g.MinPlanned)
		}
	}
}

// The Go client's publication point methods against the real server:
// the approver makes points, anyone lists them and the catalogue, and a
// refusal comes back as a StatusError with the vault's code.
func TestReleasePointsClient(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	ctx := t.Context()
	v.loadSynthetic(tableHouseholds)
	approver, researcher := v.Client("approver"), v.Client("researcher")

	p, err := approver.CreateReleasePoint(ctx, "2019-05-01")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "2019-05-01" || p.Seq != 1 || p.AsOf <= 0 || p.CreatedBy != "user:approver" || p.Level != "commune" || p.Areas != 2 {
		t.Errorf("created %+v", *p)
	}
	var se *client.StatusError
	if _, err := approver.CreateReleasePoint(ctx, "2019-05-01"); !errors.As(err, &se) || se.Status != http.StatusConflict || se.Code != "point_exists" {
		t.Errorf("the same name again: %v", err)
	}
	if _, err := researcher.CreateReleasePoint(ctx, "mine"); !errors.As(err, &se) || se.Status != http.StatusForbidden || se.Code != "permission_denied" {
		t.Errorf("a researcher makes a point: %v", err)
	}
	if _, err := approver.CreateReleasePoint(ctx, "Not A Name"); !errors.As(err, &se) || se.Status != http.StatusBadRequest || se.Code != "invalid_point_name" {
		t.Errorf("a bad name: %v", err)
	}
	v.Clock.Advance(time.Hour)
	if _, err := approver.CreateReleasePoint(ctx, "2019-05-01b"); err != nil {
		t.Fatal(err)
	}
	ps, err := researcher.ReleasePoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Name != "2019-05-01" || ps[0].AsOf != p.AsOf || ps[1].Name != "2019-05-01b" || !ps[1].Created.Equal(v.Clock.Now()) {
		t.Errorf("listed %+v", ps)
	}
	cat, err := researcher.Catalogue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cat.Version != 1 || len(cat.Tables) != 16 || cat.Tables[1].ID != "population_age_broad_sex" || cat.Tables[1].MinPlanned != 100 {
		t.Errorf("catalogue version %d, %d tables", cat.Version, len(cat.Tables))
	}
	if _, err := v.Client("").ReleasePoints(ctx); !errors.As(err, &se) || se.Status != http.StatusUnauthorized {
		t.Errorf("no token: %v", err)
	}
	// The table response names the point it was computed at: the
	// latest, or the one asked for.
	for _, tc := range []struct{ asOf, want string }{{"", "2019-05-01b"}, {"2019-05-01", "2019-05-01"}} {
		tr, err := researcher.RequestTable(ctx, []byte(stdTable(testProject, "population_age_broad_sex", district, tc.asOf)), "", false)
		if err != nil {
			t.Fatal(err)
		}
		if tr.Point != tc.want || !bytes.Contains(tr.Body, []byte(`"point":"`+tc.want+`"`)) {
			t.Errorf("as_of %q: table response point %q, want %q", tc.asOf, tr.Point, tc.want)
		}
	}
}
