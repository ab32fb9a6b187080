package broker_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/synth"
	"github.com/censusvault/censusvault/broker/tables"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage/sqlite"
)

// tableVault is a key-test vault holding synthetic households, a project
// "fert" over the district and a researcher granted on it.
type tableVault struct {
	*keyVault
	gen *synth.Generator
	n   int // households loaded so far
}

func newTableVault(t *testing.T, households int) *tableVault {
	t.Helper()
	kv := newKeyVault(t, keyVaultOpts{})
	g, err := synth.New(synth.Opts{Seed: 7, EAs: synth.EAs(kv.b.Tree())})
	if err != nil {
		t.Fatal(err)
	}
	tv := &tableVault{keyVault: kv, gen: g}
	tv.load(households)
	ctx := context.Background()
	p := validProject("fert")
	p.Areas = []broker.AreaCode{keyDistrict}
	p.Variables = []string{"sex", "age_group5", "age", "ethnicity", "tenure", "floor_area_m2"}
	if err := kv.b.AddProject(ctx, actor, p); err != nil {
		t.Fatal(err)
	}
	other := validProject("other")
	if err := kv.b.AddProject(ctx, actor, other); err != nil {
		t.Fatal(err)
	}
	for _, u := range []broker.NewUser{
		{Name: "rita", Role: policy.Researcher, Area: keyNation, Project: "fert"},
		{Name: "otto", Role: policy.Researcher, Area: keyNation, Project: "other"},
		{Name: "nara", Role: policy.Researcher, Area: broker.AreaCode(communeA), Project: "fert"},
	} {
		tok, err := kv.b.AddUser(ctx, actor, u)
		if err != nil {
			t.Fatal(err)
		}
		kv.tokens[string(u.Name)] = tok.Reveal()
	}
	return tv
}

func (tv *tableVault) load(n int) {
	tv.t.Helper()
	for i := tv.n; i < tv.n+n; i++ {
		b, _, err := tv.gen.Household(i)
		if err != nil {
			tv.t.Fatal(err)
		}
		if _, err := tv.b.IngestSynthetic(context.Background(), actor, b); err != nil {
			tv.t.Fatal(err)
		}
	}
	tv.n += n
}

func (tv *tableVault) request(user, body string, o broker.TableOpts) (*broker.TableRelease, error) {
	return tv.b.RequestTable(context.Background(), tv.caller(user), []byte(body), o)
}

const countBySexAge = `{"project":"fert","purpose":"fertility by age","rows":["commune"],"cols":["sex","age_group5"]}`

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func TestRequestTableReleases(t *testing.T) {
	tv := newTableVault(t, 400)
	before := tv.auditHead()
	spent := func() int64 {
		p, err := tv.b.Project(context.Background(), "fert")
		if err != nil {
			t.Fatal(err)
		}
		return p.Spent
	}
	r1, err := tv.request("rita", countBySexAge, broker.TableOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Digest != digestOf(r1.Body) || r1.Encrypted || r1.ContentType != "application/json" {
		t.Errorf("release %+v", r1)
	}
	wantCells := (4 + 1) * (2*21 + 1)
	if r1.Cells != wantCells || spent() != int64(wantCells) {
		t.Errorf("cells %d, spent %d; want %d", r1.Cells, spent(), wantCells)
	}
	var doc struct {
		Table string `json:"table"`
		AsOf  int64  `json:"as_of"`
		Cells []struct {
			Row, Col   []string
			Value      *int64
			Suppressed bool
		} `json:"cells"`
	}
	if err := json.Unmarshal(r1.Body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Table != tables.TableFormat || doc.AsOf != r1.AsOf || len(doc.Cells) != wantCells {
		t.Errorf("table %q as of %d with %d cells", doc.Table, doc.AsOf, len(doc.Cells))
	}
	for _, bad := range []string{"2026", "2025", "budget", "spent", "rita", "Nguyễn"} {
		if bytes.Contains(r1.Body, []byte(bad)) {
			t.Errorf("released table contains %q", bad)
		}
	}
	evs := tv.events(before, "table.request")
	if len(evs) != 1 {
		t.Fatalf("%d table events", len(evs))
	}
	ev := evs[0]
	if ev.Decision != "allow" || ev.Outcome != "ok" || ev.ReleaseDigest != r1.Digest || ev.Purpose != "fertility by age" ||
		ev.Actor != "user:rita" || ev.Index != r1.AuditIndex || !strings.Contains(ev.Request, `"as_of":`) || !strings.Contains(ev.Request, "ckp/v1") {
		t.Errorf("event %+v", ev)
	}

	// The same request again: the same bytes, another debit.
	r2, err := tv.request("rita", countBySexAge, broker.TableOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r1.Body, r2.Body) || r2.AuditIndex == r1.AuditIndex {
		t.Error("the same request twice gave different bytes")
	}
	if spent() != 2*int64(wantCells) {
		t.Errorf("spent %d after two tables", spent())
	}

	// New deposits move the default point; the old point gives the old bytes.
	tv.load(50)
	r3, err := tv.request("rita", countBySexAge, broker.TableOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if r3.AsOf <= r1.AsOf || bytes.Equal(r3.Body, r1.Body) {
		t.Errorf("after 50 more households: as of %d (was %d), same bytes %v", r3.AsOf, r1.AsOf, bytes.Equal(r3.Body, r1.Body))
	}
	old := strings.Replace(countBySexAge, `"rows"`, `"as_of":`+itoa(r1.AsOf)+`,"rows"`, 1)
	r4, err := tv.request("rita", old, broker.TableOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r4.Body, r1.Body) {
		t.Error("the request as of the first point did not reproduce the first table")
	}

	// CSV, and replay of every release.
	r5, err := tv.request("rita", countBySexAge, broker.TableOpts{Format: tables.FormatCSV})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(r5.Body, []byte("# "+tables.TableFormat)) || !strings.HasPrefix(r5.ContentType, "text/csv") {
		t.Errorf("csv starts %q", r5.Body[:40])
	}
	for _, r := range []*broker.TableRelease{r1, r3, r5} {
		res, err := tv.b.ReplayTable(context.Background(), "cli:auditor", r.AuditIndex)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Match || res.Digest != r.Digest || !bytes.Equal(res.Table, r.Body) {
			t.Errorf("replay of %d: match %v, %s vs %s", r.AuditIndex, res.Match, res.Digest, r.Digest)
		}
	}
	if evs := tv.events(before, "table.replay"); len(evs) != 3 || evs[0].Outcome != "match" {
		t.Errorf("replay events %d", len(evs))
	}
	if _, err := tv.b.ReplayTable(context.Background(), "cli:auditor", 0); broker.KindOf(err) != broker.Invalid {
		t.Errorf("replay of a non-table event: %v", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestRequestTableRefusals: every refusal is the right kind, says why,
// releases nothing, debits nothing, and is in the audit log.
func TestRequestTableRefusals(t *testing.T) {
	tv := newTableVault(t, 300)
	ctx := context.Background()
	if err := tv.b.AddProject(ctx, actor, func() broker.NewProject {
		p := validProject("tiny")
		p.Areas, p.Budget = []broker.AreaCode{keyDistrict}, 10
		return p
	}()); err != nil {
		t.Fatal(err)
	}
	if err := tv.b.Grant(ctx, actor, "rita", policy.Grant{Role: policy.Researcher, Area: keyNation, Project: "tiny"}); err != nil {
		t.Fatal(err)
	}
	big := `{"project":"fert","purpose":"x","rows":["sex"],"filter":{"sex":[` + strings.Repeat("1,", 40000) + `1]}}`
	for _, c := range []struct {
		name, user, body string
		kind             broker.Kind
		msg              string
	}{
		{"identifying row", "rita", `{"project":"fert","purpose":"p","rows":["head_name"]}`, broker.Permission, "identifying"},
		{"identifying person field", "rita", `{"project":"fert","purpose":"p","rows":["sex"],"cols":["full_name"]}`, broker.Permission, "identifying"},
		{"identifying filter", "rita", `{"project":"fert","purpose":"p","rows":["sex"],"filter":{"phone":[1]}}`, broker.Permission, "identifying"},
		{"operational", "rita", `{"project":"fert","purpose":"p","rows":["visit_count"]}`, broker.Permission, "operational"},
		{"unlisted variable", "rita", `{"project":"fert","purpose":"p","rows":["religion"]}`, broker.Permission, "not among project fert"},
		{"foreign area", "rita", `{"project":"other","purpose":"p","rows":["sex"]}`, broker.Permission, "not permitted"},
		{"area outside the project", "otto", `{"project":"other","purpose":"p","rows":["sex"],"filter":{"area":["42"]}}`, broker.Permission, "outside project other"},
		{"grant narrower than the table", "nara", countBySexAge, broker.Permission, "not permitted to request tables for area 437"},
		{"other project's researcher", "otto", countBySexAge, broker.Permission, "not permitted to request tables for project fert"},
		{"enumerator", "enum", countBySexAge, broker.Permission, "not permitted"},
		{"no project", "rita", `{"purpose":"p","rows":["sex"]}`, broker.Invalid, "names its project"},
		{"unknown project", "rita", `{"project":"nope","purpose":"p","rows":["sex"]}`, broker.Permission, "not permitted"},
		{"no purpose", "rita", `{"project":"fert","rows":["sex"]}`, broker.Invalid, "purpose"},
		{"unknown field", "rita", `{"project":"fert","purpose":"p","rows":["sex"],"limit":5}`, broker.Invalid, `unknown key "limit"`},
		{"five dimensions", "rita", `{"project":"fert","purpose":"p","rows":["sex","age_group5","ethnicity"],"cols":["tenure","commune"]}`, broker.Invalid, "dimensions"},
		{"future as_of", "rita", `{"project":"fert","purpose":"p","rows":["sex"],"as_of":99999999}`, broker.Invalid, "as_of"},
		{"small universe", "rita", `{"project":"fert","purpose":"p","rows":["sex"],"filter":{"area":["18070-01"],"age_group5":["95-99"]}}`, broker.Invalid, "below the minimum"},
		{"sum of a code", "rita", `{"project":"fert","purpose":"p","rows":["sex"],"measure":{"sum":"ethnicity"}}`, broker.Permission, "not a quantitative variable"},
		{"mean of a code", "rita", `{"project":"fert","purpose":"p","rows":["tenure"],"measure":{"mean":"tenure"},"unit":"households"}`, broker.Permission, "not a quantitative variable"},
		{"oversize", "rita", big, broker.TooLarge, "over"},
		{"budget", "rita", `{"project":"tiny","purpose":"p","rows":["sex","age_group5"]}`, broker.Permission, "budget"},
		{"encrypt without recipient", "rita", countBySexAge, broker.Invalid, "set-recipient"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := tv.auditHead()
			p0, _ := tv.b.Project(ctx, "fert")
			r, err := tv.request(c.user, c.body, broker.TableOpts{Encrypt: c.name == "encrypt without recipient"})
			if err == nil {
				t.Fatalf("released %d bytes", len(r.Body))
			}
			if broker.KindOf(err) != c.kind || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("err = %v (%v), want %v containing %q", err, broker.KindOf(err), c.kind, c.msg)
			}
			evs := tv.events(before)
			if len(evs) != 1 || evs[0].Action != "table.request" || evs[0].ReleaseDigest != "" || evs[0].Outcome == "ok" {
				t.Fatalf("audit: %d events %+v", len(evs), evs)
			}
			if c.kind == broker.Permission && evs[0].Decision != "deny" {
				t.Errorf("decision %q", evs[0].Decision)
			}
			if p1, _ := tv.b.Project(ctx, "fert"); p1.Spent != p0.Spent {
				t.Errorf("spent moved %d → %d", p0.Spent, p1.Spent)
			}
		})
	}

	// Closed and expired projects.
	if _, err := tv.request("rita", countBySexAge, broker.TableOpts{}); err != nil {
		t.Fatal(err)
	}
	later, err := broker.New(ctx, broker.Opts{Store: tv.store, Keys: tv.keys, Now: func() time.Time { return time.Now().Add(365 * 24 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := later.RequestTable(ctx, tv.caller("rita"), []byte(countBySexAge), broker.TableOpts{}); broker.KindOf(err) != broker.Permission || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired project: %v", err)
	}
	if err := tv.b.CloseProject(ctx, actor, "fert"); err != nil {
		t.Fatal(err)
	}
	if _, err := tv.request("rita", countBySexAge, broker.TableOpts{}); broker.KindOf(err) != broker.Permission || !strings.Contains(err.Error(), "closed") {
		t.Errorf("closed project: %v", err)
	}
}

// TestRequestTableBudget: a budget runs out exactly and then refuses;
// the ledger shows it.
func TestRequestTableBudget(t *testing.T) {
	tv := newTableVault(t, 300)
	ctx := context.Background()
	p := validProject("small")
	p.Areas, p.Budget = []broker.AreaCode{keyDistrict}, 7 // sex table: 2 cells + margin = 3
	if err := tv.b.AddProject(ctx, actor, p); err != nil {
		t.Fatal(err)
	}
	if err := tv.b.Grant(ctx, actor, "rita", policy.Grant{Role: policy.Researcher, Area: keyNation, Project: "small"}); err != nil {
		t.Fatal(err)
	}
	req := `{"project":"small","purpose":"p","rows":["sex"]}`
	for i := range 2 {
		r, err := tv.request("rita", req, broker.TableOpts{})
		if err != nil {
			t.Fatalf("table %d: %v", i, err)
		}
		if r.Cells != 3 || r.Remaining != int64(7-3*(i+1)) {
			t.Errorf("table %d: cells %d remaining %d", i, r.Cells, r.Remaining)
		}
	}
	if _, err := tv.request("rita", req, broker.TableOpts{}); broker.KindOf(err) != broker.Permission || !strings.Contains(err.Error(), "budget") {
		t.Fatalf("third table: %v", err)
	}
	info, _ := tv.b.Project(ctx, "small")
	if info.Spent != 6 || info.Remaining != 1 {
		t.Errorf("ledger spent %d remaining %d", info.Spent, info.Remaining)
	}
}

// TestRequestTableEncrypted: ?encrypt=1 gives an age file for the
// researcher's registered recipient whose plaintext has the logged digest.
func TestRequestTableEncrypted(t *testing.T) {
	tv := newTableVault(t, 300)
	ctx := context.Background()
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if err := tv.b.SetRecipient(ctx, actor, "rita", "not a key"); broker.KindOf(err) != broker.Invalid {
		t.Errorf("bad recipient: %v", err)
	}
	if err := tv.b.SetRecipient(ctx, actor, "nobody", id.Recipient().String()); broker.KindOf(err) != broker.NotFound {
		t.Errorf("unknown user: %v", err)
	}
	if err := tv.b.SetRecipient(ctx, actor, "rita", id.Recipient().String()); err != nil {
		t.Fatal(err)
	}
	u, _ := tv.b.User(ctx, "rita")
	if u.Recipient != id.Recipient().String() {
		t.Error("recipient not stored")
	}
	r, err := tv.request("rita", countBySexAge, broker.TableOpts{Encrypt: true})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Encrypted || bytes.Contains(r.Body, []byte(`"cells"`)) {
		t.Fatal("not encrypted")
	}
	rd, err := age.Decrypt(bytes.NewReader(r.Body), id)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(rd)
	if digestOf(plain) != r.Digest {
		t.Error("decrypted table does not have the logged digest")
	}
	clear, err := tv.request("rita", countBySexAge, broker.TableOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(clear.Body, plain) {
		t.Error("encrypted and clear releases differ")
	}
}

// TestTablesAfterShred: shredding a commune's analytic keys drops its
// records from tables at once, and a replay of an earlier release then
// reports the mismatch instead of pretending.
func TestTablesAfterShred(t *testing.T) {
	tv := newTableVault(t, 400)
	ctx := context.Background()
	total := func() int64 {
		r, err := tv.request("rita", `{"project":"fert","purpose":"p","rows":["commune"]}`, broker.TableOpts{})
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Cells []struct {
				Row   []string
				Value int64
			}
		}
		if err := json.Unmarshal(r.Body, &doc); err != nil {
			t.Fatal(err)
		}
		for _, c := range doc.Cells {
			if c.Row[0] == tables.Margin {
				return c.Value
			}
		}
		t.Fatal("no margin")
		return 0
	}
	r, err := tv.request("rita", countBySexAge, broker.TableOpts{})
	if err != nil {
		t.Fatal(err)
	}
	before := total()
	if _, err := tv.b.Shred(ctx, actor, crypto.Analytic, communeA); err != nil {
		t.Fatal(err)
	}
	after := total()
	if after >= before-50 {
		t.Errorf("total %d before the shred, %d after: commune %s's persons still counted", before, after, communeA)
	}
	res, err := tv.b.ReplayTable(ctx, "cli:auditor", r.AuditIndex)
	if err != nil {
		t.Fatal(err)
	}
	if res.Match || res.Unread == 0 {
		t.Errorf("replay after shred: match %v, unread %d", res.Match, res.Unread)
	}
	_ = audit.Version
}

// TestShredNoticedWithoutNotifications: a broker on SQLite (a `serve`)
// notices a shred made by another process (the CLI) on the same file
// within a few seconds — its poll reads the store's shred count — and
// stops tabulating the commune.
func TestShredNoticedWithoutNotifications(t *testing.T) {
	tv := newTableVault(t, 300)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(tv.dir, sqlite.FileName)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	serve, err := broker.New(ctx, broker.Opts{Store: st, Keys: tv.keys})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go serve.Run(runCtx)
	c, err := serve.Authenticate(ctx, "Bearer "+tv.tokens["rita"], "test")
	if err != nil {
		t.Fatal(err)
	}
	released := func() bool { // does commune A have a released cell?
		r, err := serve.RequestTable(ctx, c, []byte(`{"project":"fert","purpose":"p","rows":["commune"]}`), broker.TableOpts{})
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Cells []struct {
				Row        []string
				Suppressed bool
			}
		}
		if err := json.Unmarshal(r.Body, &doc); err != nil {
			t.Fatal(err)
		}
		for _, cell := range doc.Cells {
			if cell.Row[0] == communeA && !cell.Suppressed {
				return true
			}
		}
		return false
	}
	if !released() {
		t.Fatalf("commune %s not in the table before the shred", communeA)
	}
	if _, err := tv.b.Shred(ctx, actor, crypto.Analytic, communeA); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(6 * time.Second)
	for released() {
		if time.Now().After(deadline) {
			t.Fatalf("the other process still tabulates commune %s 6 s after its analytic keys were shredded", communeA)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestRequestTableQuotesNamesSafely: a long non-ASCII variable name
// quoted back (shortened) in the refusal keeps the audit event valid
// UTF-8, so the refusal is a logged 400, not a 503.
func TestRequestTableQuotesNamesSafely(t *testing.T) {
	tv := newTableVault(t, 150)
	name := strings.Repeat("ệ", 30) // 3 bytes a rune: a 40-byte cut falls inside one
	before := tv.auditHead()
	_, err := tv.request("rita", `{"project":"fert","purpose":"p","rows":["`+name+`"]}`, broker.TableOpts{})
	if broker.KindOf(err) != broker.Invalid {
		t.Fatalf("err = %v (%v), want Invalid", err, broker.KindOf(err))
	}
	if evs := tv.events(before, "table.request"); len(evs) != 1 || evs[0].Outcome != "invalid" {
		t.Fatalf("audit: %+v", evs)
	}
}

// Sums and means of the amounts the form marks quantitative (and age)
// are released; the refusals above are for codes only.
func TestRequestTableQuantitativeMeasures(t *testing.T) {
	tv := newTableVault(t, 300)
	for _, body := range []string{
		`{"project":"fert","purpose":"p","rows":["sex"],"measure":{"mean":"age"}}`,
		`{"project":"fert","purpose":"p","rows":["sex"],"measure":{"sum":"age"}}`,
	} {
		if _, err := tv.request("rita", body, broker.TableOpts{}); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
}
