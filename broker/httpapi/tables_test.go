package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/client"
	"github.com/censusvault/censusvault/broker/synth"
	"github.com/censusvault/censusvault/broker/tables"
	"github.com/censusvault/censusvault/policy"
)

// tableHouseholds is how many synthetic households the table tests load:
// over a thousand persons, well above the default minimum universe of 100.
const tableHouseholds = 400

// loadSynthetic deposits n synthetic households over the test tree's EAs
// through the broker's ingest path. Synthetic interviews run to the end of
// April 2019: the clock moves to the start of May first.
func (v *vault) loadSynthetic(n int) {
	v.t.Helper()
	v.Clock.Advance(start.AddDate(0, 0, 21).Sub(v.Clock.Now()))
	g, err := synth.New(synth.Opts{Seed: 7, EAs: synth.EAs(v.B.Tree())})
	if err != nil {
		v.t.Fatal(err)
	}
	for i := range n {
		sub, _, err := g.Household(i)
		if err != nil {
			v.t.Fatal(err)
		}
		if _, err := v.B.IngestSynthetic(context.Background(), "cli:test", sub); err != nil {
			v.t.Fatalf("household %d: %v", i, err)
		}
	}
}

// postTable posts a table request as user (no Authorization for "").
func (v *vault) postTable(user, query, body string, hdr map[string]string) *response {
	v.t.Helper()
	auth := ""
	if user != "" {
		auth = "Bearer " + v.Tokens[user]
	}
	return v.do(http.MethodPost, "/v1/tables"+query, auth, strings.NewReader(body), hdr)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func headerInt(t *testing.T, r *response, name string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(r.Header.Get(name), 10, 64)
	if err != nil {
		t.Fatalf("header %s = %q: %v", name, r.Header.Get(name), err)
	}
	return n
}

// countTable is the standard table every researcher test asks for:
// persons by broad age group and sex, in the project's whole district
// (136 planned households, above the table's minimum of 100), at the
// latest publication point.
var countTable = `{"project": "` + testProject + `", "purpose": "persons by age and sex", "table": "population_age_broad_sex", "area": "` + district + `"}`

// stdTableBody is a released standard table as JSON, the parts the
// tests read.
type stdTableBody struct {
	Table     string `json:"table"`
	Catalogue int    `json:"catalogue"`
	ID        string `json:"id"`
	Project   string `json:"project"`
	Area      struct {
		Code  string `json:"code"`
		Level string `json:"level"`
	} `json:"area"`
	Point string `json:"point"`
	Rows  []struct {
		Var string `json:"var"`
	} `json:"rows"`
	Cols []struct {
		Var string `json:"var"`
	} `json:"cols"`
	Cells []struct {
		Row        []string `json:"row"`
		Col        []string `json:"col"`
		Value      *int64   `json:"value"`
		Suppressed bool     `json:"suppressed"`
	} `json:"cells"`
}

func TestTables(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	ctx := context.Background()
	v.loadSynthetic(tableHouseholds)
	pt := v.makePoint("2019-05-01")
	// A second project, and a researcher granted on it alone.
	if err := v.B.AddProject(ctx, "cli:test", broker.NewProject{
		ID: "other-2019", Title: "Other", Purpose: "another study", Areas: []broker.AreaCode{district},
		Variables: []string{"sex"}, Expires: start.AddDate(1, 0, 0), Budget: 1000,
	}); err != nil {
		t.Fatal(err)
	}
	tok, err := v.B.AddUser(ctx, "cli:test", broker.NewUser{Name: "researcher-q", Role: policy.Researcher, Area: district, Project: "other-2019"})
	if err != nil {
		t.Fatal(err)
	}
	v.Tokens["researcher-q"] = tok.Reveal()

	var first *response
	t.Run("standard table as JSON, audited with its digest and request", func(t *testing.T) {
		v := v.in(t)
		var r *response
		ev := v.oneEvent(func() { r = v.postTable("researcher", "", countTable, nil) })
		if r.Status != http.StatusOK {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
		first = r
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q, want application/json", ct)
		}
		var tab stdTableBody
		r.JSON(t, &tab)
		if tab.Table != tables.StandardFormat || tab.Catalogue != 1 || tab.ID != "population_age_broad_sex" || tab.Project != testProject ||
			tab.Area.Code != district || tab.Area.Level != "district" || tab.Point != pt.Name ||
			len(tab.Rows) != 1 || tab.Rows[0].Var != "age_broad" || len(tab.Cols) != 1 || tab.Cols[0].Var != "sex" {
			t.Errorf("table header: %+v", tab)
		}
		cells := headerInt(t, r, "X-Censusvault-Cells")
		if int64(len(tab.Cells)) != cells || cells != 12 {
			t.Errorf("%d cells in the body, header says %d; want 12 (3 age groups and the margin by 2 sexes and the margin)", len(tab.Cells), cells)
		}
		// The grand total (the last cell, both margins) is about the
		// number of persons loaded, perturbed by at most 2.
		total := tab.Cells[len(tab.Cells)-1]
		if total.Row[0] != tables.Margin || total.Col[0] != tables.Margin || total.Value == nil || *total.Value < 2*tableHouseholds {
			t.Errorf("grand total cell %+v: want a margin cell counting the persons of %d households", total, tableHouseholds)
		}
		digest := r.Header.Get("X-Censusvault-Table-Digest")
		if digest != sha(r.Body) {
			t.Errorf("digest header %q is not the SHA-256 of the body (%s)", digest, sha(r.Body))
		}
		if ev.Action != "table.request" || ev.Outcome != "ok" || ev.Decision != "allow" || ev.Actor != "user:researcher" || ev.Area != district {
			t.Errorf("event %s/%s/%s by %s at %q", ev.Action, ev.Outcome, ev.Decision, ev.Actor, ev.Area)
		}
		if ev.ReleaseDigest != digest {
			t.Errorf("logged digest %q, header %q", ev.ReleaseDigest, digest)
		}
		if idx := headerInt(t, r, "X-Censusvault-Audit-Index"); idx != ev.Index {
			t.Errorf("audit index header %d, event %d", idx, ev.Index)
		}
		// The table is computed at the publication point, not as of an
		// audit index of the caller's choice: the headers name the
		// point and the deposit point it was made at, and the logged
		// request the point with the digest of its frozen state, so a
		// replay proves it used the same one.
		if h := r.Header.Get("X-Censusvault-Point"); h != pt.Name {
			t.Errorf("X-Censusvault-Point %q, want %q", h, pt.Name)
		}
		if h := headerInt(t, r, "X-Censusvault-As-Of"); h != pt.AsOf {
			t.Errorf("X-Censusvault-As-Of %d, want the point's deposit point %d", h, pt.AsOf)
		}
		std, err := tables.ParseStandardNorm(ev.Request)
		if err != nil {
			t.Fatalf("logged request %q: %v", ev.Request, err)
		}
		if std.Project != testProject || std.Table != "population_age_broad_sex" || std.Area != district || std.Catalogue != 1 ||
			std.Format != tables.FormatJSON || std.Point != pt.Name || std.PointState != sha(v.pointState(pt.Name)) {
			t.Errorf("logged request %s does not describe the table at point %s (state %s)", ev.Request, pt.Name, sha(v.pointState(pt.Name)))
		}
		if ev.Purpose != "persons by age and sex" {
			t.Errorf("logged purpose %q", ev.Purpose)
		}
		p, err := v.B.Project(ctx, testProject)
		if err != nil {
			t.Fatal(err)
		}
		if p.Spent != cells || headerInt(t, r, "X-Censusvault-Budget-Remaining") != p.Remaining {
			t.Errorf("ledger spent %d remaining %d; headers cells %d remaining %s", p.Spent, p.Remaining, cells, r.Header.Get("X-Censusvault-Budget-Remaining"))
		}
		// An auditor sees the same event over HTTP.
		a := v.get("auditor", fmt.Sprintf("/v1/audit/events?from=%d&limit=1", ev.Index))
		var page auditPage
		a.JSON(t, &page)
		if a.Status != http.StatusOK || len(page.Events) != 1 {
			t.Fatalf("audit read: %d %s", a.Status, a.Body)
		}
		got, err := audit.Decode(page.Events[0])
		if err != nil || got.ReleaseDigest != digest || got.Request != ev.Request {
			t.Errorf("audit event over HTTP (%v): digest %q request %q", err, got.ReleaseDigest, got.Request)
		}
	})
	if first == nil {
		t.FailNow()
	}

	t.Run("same request again gives the same bytes and debits again", func(t *testing.T) {
		v := v.in(t)
		r := v.postTable("researcher", "", countTable, map[string]string{"Accept": "*/*"})
		if r.Status != http.StatusOK {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
		if !bytes.Equal(r.Body, first.Body) || r.Header.Get("X-Censusvault-Table-Digest") != first.Header.Get("X-Censusvault-Table-Digest") {
			t.Errorf("the same request at the same point gave different bytes")
		}
		cells := headerInt(t, r, "X-Censusvault-Cells")
		if got, want := headerInt(t, r, "X-Censusvault-Budget-Remaining"), headerInt(t, first, "X-Censusvault-Budget-Remaining")-cells; got != want {
			t.Errorf("remaining %d after the second table, want %d", got, want)
		}
		if headerInt(t, r, "X-Censusvault-Audit-Index") <= headerInt(t, first, "X-Censusvault-Audit-Index") {
			t.Errorf("the second release has no audit event of its own")
		}
	})

	t.Run("CSV via Accept", func(t *testing.T) {
		v := v.in(t)
		var r *response
		ev := v.oneEvent(func() { r = v.postTable("researcher", "", countTable, map[string]string{"Accept": "text/csv"}) })
		if r.Status != http.StatusOK {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
		if ct := r.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		head := "# " + tables.StandardFormat + " catalogue=1 id=population_age_broad_sex project=" + testProject + " area=" + district + " point=" + pt.Name + " "
		if !bytes.HasPrefix(r.Body, []byte(head)) || !bytes.Contains(r.Body, []byte("\nage_broad,sex,value,status\n")) {
			t.Errorf("not the CSV table:\n%s", r.Body)
		}
		if d := r.Header.Get("X-Censusvault-Table-Digest"); d != sha(r.Body) || d != ev.ReleaseDigest || d == first.Header.Get("X-Censusvault-Table-Digest") {
			t.Errorf("CSV digest %q: want the SHA-256 of the CSV body, as logged", d)
		}
		if !strings.Contains(ev.Request, `"format":"csv"`) {
			t.Errorf("logged request %s does not say csv", ev.Request)
		}
	})

	t.Run("content negotiation", func(t *testing.T) {
		v := v.in(t)
		for _, tc := range []struct {
			accept string
			status int
			ctype  string
		}{
			{"application/json", 200, "application/json"},
			{"application/json; charset=utf-8", 200, "application/json"},
			{"text/*", 200, "text/csv; charset=utf-8"},
			{"text/csv;q=0.5, application/json", 200, "application/json"},
			{"text/csv, */*;q=0.1", 200, "text/csv; charset=utf-8"},
			{"*/*, text/csv", 200, "text/csv; charset=utf-8"}, // the more specific range wins a tie
			{"*/*", 200, "application/json"},
			{"", 200, "application/json"},
			{"text/html, */*", 200, "application/json"},
			{"image/png", 406, ""},
			{"application/json;q=0", 406, ""},
			{"application/xml, text/html", 406, ""},
		} {
			var r *response
			ev := v.oneEvent(func() { r = v.postTable("researcher", "", countTable, map[string]string{"Accept": tc.accept}) })
			if r.Status != tc.status {
				t.Errorf("Accept %q: status %d, want %d: %s", tc.accept, r.Status, tc.status, r.Body)
				continue
			}
			if tc.status == 200 {
				if ct := r.Header.Get("Content-Type"); ct != tc.ctype {
					t.Errorf("Accept %q: Content-Type %q, want %q", tc.accept, ct, tc.ctype)
				}
				continue
			}
			msg, _ := r.ErrorBody(t)
			if !strings.Contains(msg, "application/json or text/csv") {
				t.Errorf("Accept %q: message %q does not say what is offered", tc.accept, msg)
			}
			if ev.Action != "table.request" || ev.Outcome != "invalid" || ev.ReleaseDigest != "" {
				t.Errorf("Accept %q: event %s/%s digest %q", tc.accept, ev.Action, ev.Outcome, ev.ReleaseDigest)
			}
		}
	})

	t.Run("refusals are audited and release nothing", func(t *testing.T) {
		v := v.in(t)
		// The day's first dp table makes the day's scheduled point (an
		// event of its own): made here, each refusal below is one event.
		if r := v.postTable("researcher", "", dpTable(testProject, "", ""), nil); r.Status != http.StatusOK {
			t.Fatalf("dp table: %d %s", r.Status, r.Body)
		}
		oversize := countTable[:len(countTable)-1] + strings.Repeat(" ", tables.MaxRequestBytes) + "}"
		std := func(table, area string) string {
			return `{"project": "` + testProject + `", "purpose": "x", "table": "` + table + `", "area": "` + area + `"}`
		}
		for _, tc := range []struct {
			name    string
			user    string
			query   string
			body    string
			status  int
			outcome string
			code    string
			says    string
		}{
			{"oversize body", "researcher", "", oversize, 413, "too_large", "too_large", "bytes"},
			{"unknown field", "researcher", "", `{"project": "` + testProject + `", "purpose": "x", "table": "population_age_broad_sex", "area": "437", "colour": "red"}`, 400, "invalid", "invalid", "colour"},
			{"not JSON", "researcher", "", `table=population_age_broad_sex`, 400, "invalid", "invalid", "JSON"},
			// Custom tables are dp tables (TestCustomTablesOnlyUnderDP):
			// identifying variables are refused there as anywhere, and a
			// request is one kind or the other.
			{"identifying variable", "researcher", "", `{"project": "` + testProject + `", "purpose": "x", "rows": ["head_name"]}`, 403, "denied", "permission_denied", "identifying"},
			{"identifying filter", "researcher", "", `{"project": "` + testProject + `", "purpose": "x", "rows": ["sex"], "filter": {"full_name": ["x"]}}`, 403, "denied", "permission_denied", "identifying"},
			{"a standard table with rows of its own", "researcher", "", `{"project": "` + testProject + `", "purpose": "x", "table": "population_age_broad_sex", "area": "437", "rows": ["religion"]}`, 400, "invalid", "invalid", "send one or the other"},
			{"no table", "researcher", "", `{"project": "` + testProject + `", "purpose": "x", "area": "437"}`, 400, "invalid", "invalid", "GET /v1/catalogue"},
			{"no area", "researcher", "", `{"project": "` + testProject + `", "purpose": "x", "table": "population_age_broad_sex"}`, 400, "invalid", "invalid", `"area"`},
			{"unknown table", "researcher", "", std("population_by_name", district), 400, "invalid", "invalid", "GET /v1/catalogue"},
			{"unknown area", "researcher", "", std("population_age_broad_sex", "99999"), 400, "invalid", "invalid", "no such area"},
			{"as_of an audit index", "researcher", "", `{"project": "` + testProject + `", "purpose": "x", "table": "population_age_broad_sex", "area": "437", "as_of": 400}`, 400, "invalid", "invalid", "not an audit index"},
			{"as_of empty", "researcher", "", `{"project": "` + testProject + `", "purpose": "x", "table": "population_age_broad_sex", "area": "437", "as_of": ""}`, 400, "invalid", "invalid", "as_of is empty"},
			{"unknown point", "researcher", "", `{"project": "` + testProject + `", "purpose": "x", "table": "population_age_broad_sex", "area": "437", "as_of": "2019-12-31"}`, 400, "invalid", "invalid", "GET /v1/release-points"},
			{"a level the table is not published at", "researcher", "", std("population_ethnicity_sex", district), 400, "invalid", "invalid", "levels nation, province"},
			{"an EA", "researcher", "", std("population_age_broad_sex", eaA3), 400, "invalid", "invalid", "not at ea"},
			{"too small an area", "researcher", "", std("population_age_broad_sex", communeB), 400, "invalid", "invalid", "at least 100 planned households"},
			{"a table using a variable the project lacks", "researcher-q", "", `{"project": "other-2019", "purpose": "x", "table": "population_age_broad_sex", "area": "437"}`, 403, "denied", "permission_denied", "not among project"},
			{"foreign area", "researcher", "", std("population_age_broad_sex", province), 403, "denied", "permission_denied", "outside project"},
			{"researcher of another project", "researcher-q", "", countTable, 403, "denied", "permission_denied", testProject},
			{"unknown project", "researcher", "", `{"project": "nope", "purpose": "x", "table": "population_age_broad_sex", "area": "437"}`, 403, "denied", "permission_denied", "nope"},
			{"enumerator", "enum-a1", "", countTable, 403, "denied", "permission_denied", "not permitted"},
			{"auditor", "auditor", "", countTable, 403, "denied", "permission_denied", "not permitted"},
			{"approver", "approver", "", countTable, 403, "denied", "permission_denied", "not permitted"},
			{"bad encrypt value", "researcher", "?encrypt=yes", countTable, 400, "invalid", "invalid", "encrypt=1"},
			{"two encrypt values", "researcher", "?encrypt=1&encrypt=0", countTable, 400, "invalid", "invalid", "encrypt=1"},
			{"encrypt without a recipient", "researcher", "?encrypt=1", countTable, 400, "invalid", "invalid", "censusvault user set-recipient researcher"},
		} {
			p0, err := v.B.Project(ctx, testProject)
			if err != nil {
				t.Fatal(err)
			}
			var r *response
			ev := v.oneEvent(func() { r = v.postTable(tc.user, tc.query, tc.body, nil) })
			if r.Status != tc.status {
				t.Errorf("%s: status %d, want %d: %s", tc.name, r.Status, tc.status, r.Body)
				continue
			}
			msg, _ := r.ErrorBody(t)
			if !strings.Contains(msg, tc.says) {
				t.Errorf("%s: message %q does not mention %q", tc.name, msg, tc.says)
			}
			if code := r.Code(t); code != tc.code {
				t.Errorf("%s: code %q, want %q", tc.name, code, tc.code)
			}
			if r.Header.Get("X-Censusvault-Table-Digest") != "" || r.Header.Get("X-Censusvault-Point") != "" || bytes.Contains(r.Body, []byte(`"cells"`)) {
				t.Errorf("%s: a refusal carries a table", tc.name)
			}
			if ev.Action != "table.request" || ev.Outcome != tc.outcome || ev.ReleaseDigest != "" || ev.Actor != "user:"+tc.user {
				t.Errorf("%s: event %s/%s by %s, digest %q; want table.request/%s", tc.name, ev.Action, ev.Outcome, ev.Actor, ev.ReleaseDigest, tc.outcome)
			}
			if tc.outcome == "denied" && ev.Decision != "deny" {
				t.Errorf("%s: event decision %q, want deny", tc.name, ev.Decision)
			}
			if p1, err := v.B.Project(ctx, testProject); err != nil || p1.Spent != p0.Spent {
				t.Errorf("%s: the refusal spent budget (%d → %d, %v)", tc.name, p0.Spent, p1.Spent, err)
			}
		}
	})

	t.Run("unauthenticated", func(t *testing.T) {
		v := v.in(t)
		v.flushAuth()
		var r *response
		ev := v.oneEvent(func() { r = v.postTable("", "", countTable, nil) })
		if r.Status != http.StatusUnauthorized || ev.Action != "auth.authenticate" || ev.Outcome != "unauthenticated" {
			t.Errorf("status %d, event %s/%s", r.Status, ev.Action, ev.Outcome)
		}
		r = v.do(http.MethodPost, "/v1/tables", "Bearer not-a-token", strings.NewReader(countTable), nil)
		if r.Status != http.StatusUnauthorized || r.Header.Get("X-Censusvault-Table-Digest") != "" {
			t.Errorf("bad token: status %d", r.Status)
		}
	})

	t.Run("encrypted to the registered recipient", func(t *testing.T) {
		v := v.in(t)
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		if err := v.B.SetRecipient(ctx, "cli:test", "researcher", id.Recipient().String()); err != nil {
			t.Fatal(err)
		}
		var r *response
		ev := v.oneEvent(func() {
			r = v.postTable("researcher", "?encrypt=1", countTable, map[string]string{"Accept": "text/csv"})
		})
		if r.Status != http.StatusOK {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
		if ct, pt := r.Header.Get("Content-Type"), r.Header.Get("X-Censusvault-Content-Type"); ct != "application/age" || pt != "text/csv; charset=utf-8" {
			t.Errorf("Content-Type %q, X-Censusvault-Content-Type %q", ct, pt)
		}
		if bytes.Contains(r.Body, []byte("age_broad,sex")) {
			t.Errorf("the encrypted answer holds the table in the clear")
		}
		dr, err := age.Decrypt(bytes.NewReader(r.Body), id)
		if err != nil {
			t.Fatalf("the answer does not decrypt with the researcher's identity: %v", err)
		}
		plain, err := io.ReadAll(dr)
		if err != nil {
			t.Fatal(err)
		}
		digest := r.Header.Get("X-Censusvault-Table-Digest")
		if sha(plain) != digest || ev.ReleaseDigest != digest || sha(r.Body) == digest {
			t.Errorf("digest header %q, logged %q, SHA-256 of the plaintext %s: want all three equal (the plaintext's)", digest, ev.ReleaseDigest, sha(plain))
		}
		if !bytes.HasPrefix(plain, []byte("# "+tables.StandardFormat)) {
			t.Errorf("decrypted table is not the CSV table:\n%s", plain)
		}
		// Another identity cannot open it.
		other, _ := age.GenerateX25519Identity()
		if _, err := age.Decrypt(bytes.NewReader(r.Body), other); err == nil {
			t.Errorf("the table decrypts with an unrelated identity")
		}
	})
}

func TestTablesClient(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	ctx := context.Background()
	v.loadSynthetic(tableHouseholds)
	pt := v.makePoint("2019-05-01")
	c := v.Client("researcher")

	js, err := c.RequestTable(ctx, []byte(countTable), tables.FormatJSON, false)
	if err != nil {
		t.Fatal(err)
	}
	if js.Encrypted || js.ContentType != "application/json" || js.Digest != sha(js.Body) || js.Cells != 12 || js.AuditIndex <= 0 ||
		js.AsOf != pt.AsOf || js.Point != pt.Name {
		t.Errorf("JSON table response %+v, want it at point %s (deposit point %d)", *js, pt.Name, pt.AsOf)
	}
	if !json.Valid(js.Body) {
		t.Errorf("JSON table does not parse")
	}
	csv, err := c.RequestTable(ctx, []byte(countTable), tables.FormatCSV, false)
	if err != nil {
		t.Fatal(err)
	}
	if csv.ContentType != "text/csv; charset=utf-8" || !bytes.HasPrefix(csv.Body, []byte("# ")) || csv.Remaining != js.Remaining-csv.Cells || csv.AuditIndex <= js.AuditIndex {
		t.Errorf("CSV table response: type %q, remaining %d after %d (cells %d), index %d after %d",
			csv.ContentType, csv.Remaining, js.Remaining, csv.Cells, csv.AuditIndex, js.AuditIndex)
	}

	// Errors come back as StatusError with the vault's message.
	_, err = c.RequestTable(ctx, []byte(`{"project": "`+testProject+`", "purpose": "x", "rows": ["head_name"]}`), "", false)
	var se *client.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusForbidden || se.Code != "permission_denied" || !strings.Contains(se.Message, "identifying") {
		t.Errorf("custom table of an identifying field: %v", err)
	}
	_, err = c.RequestTable(ctx, []byte(countTable), "", true)
	if !errors.As(err, &se) || se.Status != http.StatusBadRequest || !strings.Contains(se.Message, "set-recipient") {
		t.Errorf("encrypt without a recipient: %v", err)
	}
	if _, err := c.RequestTable(ctx, []byte(countTable), "xlsx", false); err == nil || !strings.Contains(err.Error(), "xlsx") {
		t.Errorf("unknown format: %v", err)
	}

	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.B.SetRecipient(ctx, "cli:test", "researcher", id.Recipient().String()); err != nil {
		t.Fatal(err)
	}
	enc, err := c.RequestTable(ctx, []byte(countTable), tables.FormatJSON, true)
	if err != nil {
		t.Fatal(err)
	}
	if !enc.Encrypted || enc.ContentType != "application/json" {
		t.Errorf("encrypted response: encrypted %v, type %q", enc.Encrypted, enc.ContentType)
	}
	dr, err := age.Decrypt(bytes.NewReader(enc.Body), id)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(dr)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.VerifyTable(plain, enc.Digest); err != nil {
		t.Errorf("decrypted table: %v", err)
	}
	if !bytes.Equal(plain, js.Body) {
		t.Errorf("the decrypted table differs from the same request in the clear")
	}
	if err := client.VerifyTable(append(plain, ' '), enc.Digest); err == nil {
		t.Errorf("VerifyTable accepts an altered table")
	}
}
