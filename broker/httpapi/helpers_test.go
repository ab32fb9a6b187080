// Package httpapi_test proves the vault's HTTP API end to end: a real
// server on a loopback port (httptest), a real SQLite store in a temporary
// directory, the local age key provider, and deposits encrypted with age
// exactly as a field device does it.
package httpapi_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/client"
	"github.com/censusvault/censusvault/broker/httpapi"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/sqlite"
	"github.com/google/uuid"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", to tamper with the file as an attacker would
)

// The test tree: Việt Nam › Hà Tĩnh › Hồng Lĩnh › two wards › EAs.
// Plans are chosen so that percentages need rounding (1/3 = 33.33 %).
const testAreas = `code,parent,level,name,planned_households
VN,,nation,Việt Nam,
42,VN,province,Tỉnh Hà Tĩnh,
437,42,district,Thị xã Hồng Lĩnh,
18070,437,commune,Phường Bắc Hồng,
18073,437,commune,Phường Nam Hồng,
18070-01,18070,ea,Địa bàn 01,3
18070-02,18070,ea,Địa bàn 02,7
18070-03,18070,ea,Địa bàn 03,120
18073-01,18073,ea,Địa bàn 01,6
18073-02,18073,ea,Địa bàn 02,0
`

// Area codes of the test tree.
const (
	nation   = "VN"
	province = "42"
	district = "437"
	communeA = "18070"
	communeB = "18073"
	eaA1     = "18070-01"
	eaA2     = "18070-02"
	eaA3     = "18070-03"
	eaB1     = "18073-01"
	eaB2     = "18073-02"
)

// testProject is the research project every test vault has, covering
// the district; the user "researcher" is granted on it.
const testProject = "hl-2019"

// testUsers are the users every test vault has: each role, and two
// enumerators in eaA1 for the supersede rules.
var testUsers = []broker.NewUser{
	{Name: "enum-a1", Role: policy.Enumerator, Area: eaA1},
	{Name: "enum-a1-bis", Role: policy.Enumerator, Area: eaA1},
	{Name: "enum-a2", Role: policy.Enumerator, Area: eaA2},
	{Name: "enum-a3", Role: policy.Enumerator, Area: eaA3},
	{Name: "enum-b1", Role: policy.Enumerator, Area: eaB1},
	{Name: "enum-b2", Role: policy.Enumerator, Area: eaB2},
	{Name: "tl-a", Role: policy.TeamLeader, Area: communeA},
	{Name: "tl-b", Role: policy.TeamLeader, Area: communeB},
	{Name: "supervisor", Role: policy.Supervisor, Area: district},
	{Name: "steering-a", Role: policy.Steering, Area: communeA},
	{Name: "steering-town", Role: policy.Steering, Area: district},
	{Name: "steering-vn", Role: policy.Steering, Area: nation},
	{Name: "researcher", Role: policy.Researcher, Area: district, Project: testProject},
	{Name: "auditor", Role: policy.Auditor, Area: nation},
	{Name: "admin", Role: policy.Admin, Area: nation},
	{Name: "approver", Role: policy.Approver, Area: nation},
}

// start is the fake clock's first reading: day 10 of the 2019 census.
var start = time.Date(2019, 4, 10, 9, 0, 0, 0, time.UTC)

// interviewed is when test households were interviewed.
const interviewed = "2019-04-05T09:30:00+07:00"

// clock is a settable fake clock for broker.Opts.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// vault is one running test vault.
type vault struct {
	t      testing.TB
	Dir    string
	URL    string
	Server *httptest.Server
	B      *broker.Broker
	Store  *sqlite.Store
	Clock  *clock
	Tokens map[string]string // user name → bearer token
	// Recipient is the ingest recipient fetched over HTTP at start.
	Recipient *age.HybridRecipient
	// AuthWin is the broker's rate-limit window for auth failures.
	AuthWin time.Duration
}

type vaultOpts struct {
	authWin time.Duration // default 1 minute
	// trustProxy makes the server believe X-Forwarded-For from
	// loopback, so a test can act as several source addresses.
	trustProxy bool
	// areas replaces testAreas (it must hold every area testUsers
	// name).
	areas string
	// limits are the broker's rate limits (zero: the defaults).
	limits broker.Limits
	// pointInterval is the least time between publication points
	// (broker.Opts.PointInterval). Zero here means no minimum, so that
	// a test makes the points it needs when it needs them;
	// defaultPointInterval leaves the broker's own default (a week).
	pointInterval        time.Duration
	defaultPointInterval bool
	// pointK is broker.Opts.PointK (zero: the broker's default).
	pointK int64
	// openCaps is broker.Opts.OpenCaps (nil: the defaults).
	openCaps map[policy.Role]int
	// policy is the vault's Casbin policy (empty: the default).
	policy string
}

// newVault builds and starts a vault in t.TempDir. Everything is torn down
// at the end of the test.
func newVault(t testing.TB, o vaultOpts) *vault {
	t.Helper()
	ctx := context.Background()
	if o.authWin == 0 {
		o.authWin = time.Minute
	}
	dir := t.TempDir()
	clk := &clock{t: start}
	areas := testAreas
	if o.areas != "" {
		areas = o.areas
	}
	tree, err := area.Load(strings.NewReader(areas))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := agekey.Create(filepath.Join(dir, agekey.FileName))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(dir, sqlite.FileName), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := broker.Init(ctx, broker.InitOpts{Store: st, Keys: kp, Areas: tree, Name: "test.censusvault", Actor: "cli:test", Now: clk.Now, Policy: o.policy}); err != nil {
		t.Fatal(err)
	}
	bo := broker.Opts{Store: st, Keys: kp, Now: clk.Now, AuthWin: o.authWin, Limits: o.limits, PointK: o.pointK, PointInterval: o.pointInterval, OpenCaps: o.openCaps}
	if bo.PointInterval == 0 && !o.defaultPointInterval {
		bo.PointInterval = -1
	}
	b, err := broker.New(ctx, bo)
	if err != nil {
		t.Fatal(err)
	}
	v := &vault{t: t, Dir: dir, B: b, Store: st, Clock: clk, Tokens: map[string]string{}, AuthWin: o.authWin}
	// Researchers are granted on a project, which must exist first.
	if err := b.AddProject(ctx, "cli:test", broker.NewProject{
		ID: testProject, Title: "Hồng Lĩnh households", Purpose: "test tables of the town",
		Areas: []broker.AreaCode{district}, Variables: []string{"sex", "age_group5", "relationship", "dwelling_type", "water_source"},
		Expires: start.AddDate(1, 0, 0), Budget: 100_000,
	}); err != nil {
		t.Fatal(err)
	}
	for _, u := range testUsers {
		tok, err := b.AddUser(ctx, "cli:test", u)
		if err != nil {
			t.Fatalf("add user %s: %v", u.Name, err)
		}
		v.Tokens[string(u.Name)] = tok.Reveal()
	}
	// A user whose token expires an hour after the start.
	tok, err := b.AddUser(ctx, "cli:test", broker.NewUser{Name: "enum-expiring", Role: policy.Enumerator, Area: eaA2, Expires: start.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	v.Tokens["enum-expiring"] = tok.Reveal()

	ho := httpapi.Opts{Broker: b}
	if o.trustProxy {
		ho.TrustedProxies = []string{"127.0.0.1"}
	}
	h, err := httpapi.New(ho)
	if err != nil {
		t.Fatal(err)
	}
	v.Server = httptest.NewServer(h)
	v.URL = v.Server.URL
	// Cleanups run last-in first-out: server, then broker, then store.
	t.Cleanup(func() { st.Close() })
	t.Cleanup(func() { b.Close(context.Background()) })
	t.Cleanup(v.Server.Close)

	r, err := v.Client("").Recipient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v.Recipient = r
	return v
}

// in returns v for use by (sub)test t: its helpers then fail t.
func (v *vault) in(t testing.TB) *vault {
	c := *v
	c.t = t
	return &c
}

// Client is the real Go client, as user (no token for ""), without
// retries so that every call is exactly one request.
func (v *vault) Client(user string) *client.Client {
	c, err := client.New(client.Opts{BaseURL: v.URL, Token: v.Tokens[user], HTTP: v.Server.Client()})
	if err != nil {
		v.t.Fatal(err)
	}
	c.Retries = 0
	return c
}

// response is an HTTP answer, read whole.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body, failing the test if it is not JSON.
func (r *response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("response %d is not JSON (%v): %q", r.Status, err, r.Body)
	}
}

// ErrorBody decodes {"error": ..., "code": ..., "problems": [...]},
// failing the test if the message or the machine code is missing.
func (r *response) ErrorBody(t testing.TB) (msg string, problems []string) {
	t.Helper()
	var e struct {
		Error    string   `json:"error"`
		Code     string   `json:"code"`
		Problems []string `json:"problems"`
	}
	r.JSON(t, &e)
	if e.Error == "" {
		t.Errorf("error response %d has no \"error\": %s", r.Status, r.Body)
	}
	if e.Code == "" {
		t.Errorf("error response %d has no \"code\": %s", r.Status, r.Body)
	}
	return e.Error, e.Problems
}

// Code is the machine code of an error answer.
func (r *response) Code(t testing.TB) string {
	t.Helper()
	var e struct {
		Code string `json:"code"`
	}
	r.JSON(t, &e)
	return e.Code
}

// do sends one request with net/http. authorization is the whole header
// value ("" for none); hdr adds headers.
func (v *vault) do(method, path, authorization string, body io.Reader, hdr map[string]string) *response {
	v.t.Helper()
	req, err := http.NewRequest(method, v.URL+path, body)
	if err != nil {
		v.t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	for k, val := range hdr {
		req.Header.Set(k, val)
	}
	resp, err := v.Server.Client().Do(req)
	if err != nil {
		v.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		v.t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// get is an authenticated GET as user.
func (v *vault) get(user, path string) *response {
	v.t.Helper()
	return v.do(http.MethodGet, path, "Bearer "+v.Tokens[user], nil, nil)
}

// deposit posts a ciphertext as user with a binary Content-Type.
func (v *vault) deposit(user string, ciphertext []byte) *response {
	v.t.Helper()
	return v.do(http.MethodPost, "/v1/submissions", "Bearer "+v.Tokens[user], bytes.NewReader(ciphertext),
		map[string]string{"Content-Type": "application/octet-stream"})
}

// receipt decodes a deposit answer, failing unless it has status want.
func (v *vault) receipt(r *response, want int) broker.Receipt {
	v.t.Helper()
	if r.Status != want {
		v.t.Fatalf("deposit: status %d, want %d: %s", r.Status, want, r.Body)
	}
	var rc broker.Receipt
	r.JSON(v.t, &rc)
	return rc
}

// seal encrypts plaintext to the vault's current ingest recipient, in
// binary age.
func (v *vault) seal(plaintext []byte) []byte {
	v.t.Helper()
	return encryptTo(v.t, v.Recipient, plaintext)
}

func encryptTo(t testing.TB, r age.Recipient, plaintext []byte) []byte {
	t.Helper()
	ct, err := client.Encrypt(r, plaintext)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

// armored encrypts plaintext to r in ASCII-armored age, as `age -a` does.
func armored(t testing.TB, r age.Recipient, plaintext []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plaintext); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// hh is a household submission as a map, to be edited by a test and then
// encoded with encode. It has two persons.
type hh = map[string]any

func household(ea string, no int) hh {
	return hh{
		"id":             uuid.NewString(),
		"form":           "census2019",
		"form_version":   1,
		"area":           ea,
		"household_no":   no,
		"interviewed_at": interviewed,
		"household": map[string]any{
			"head_name":     "Nguyễn Văn Hùng",
			"address":       "Số 12, ngõ 4, tổ dân phố 1",
			"phone":         "0987654321",
			"dwelling_type": 2,
			"floor_area_m2": json.Number("65.5"),
			"water_source":  3,
			"electricity":   1,
		},
		"persons": []any{
			person("Nguyễn Văn Hùng", 1, 1, 1968),
			person("Trần Thị Lan", 2, 2, 1971),
		},
	}
}

func person(name string, rel, sex, year int) map[string]any {
	return map[string]any{"full_name": name, "relationship": rel, "sex": sex, "birth_year": year, "ethnicity": 1}
}

func hhOf(m hh) map[string]any { return m["household"].(map[string]any) }

// encode is the JSON a device sends (UTF-8, no HTML escaping).
func encode(t testing.TB, m hh) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// auditHead is the index the next audit record takes: the number of
// records.
func (v *vault) auditHead() int64 {
	v.t.Helper()
	var h storage.AuditHead
	if err := v.Store.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		h, err = tx.AuditHead()
		return err
	}); err != nil {
		v.t.Fatal(err)
	}
	return h.Next
}

// auditRecords returns the stored records from index from on.
func (v *vault) auditRecords(from int64) []storage.AuditRecord {
	v.t.Helper()
	var out []storage.AuditRecord
	if err := v.Store.View(context.Background(), func(tx storage.ReadTx) error {
		return tx.AuditRecords(from, 0, func(r storage.AuditRecord) (bool, error) {
			out = append(out, r)
			return true, nil
		})
	}); err != nil {
		v.t.Fatal(err)
	}
	return out
}

// eventsSince decodes the events appended from index from on.
func (v *vault) eventsSince(from int64) []*audit.Event {
	v.t.Helper()
	var out []*audit.Event
	for _, r := range v.auditRecords(from) {
		e, err := audit.Decode(r.Event)
		if err != nil {
			v.t.Fatalf("stored event %d does not decode: %v", r.Index, err)
		}
		out = append(out, e)
	}
	return out
}

// oneEvent runs fn and returns the single audit event it appended,
// failing the test if it appended none or several.
func (v *vault) oneEvent(fn func()) *audit.Event {
	v.t.Helper()
	before := v.auditHead()
	fn()
	evs := v.eventsSince(before)
	if len(evs) != 1 {
		var desc []string
		for _, e := range evs {
			desc = append(desc, e.Action+"/"+e.Outcome)
		}
		v.t.Fatalf("the request appended %d audit events, want exactly 1: %v", len(evs), desc)
	}
	return evs[0]
}

// submission reads a stored submission row.
func (v *vault) submission(id string) (*storage.Submission, error) {
	var s *storage.Submission
	err := v.Store.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		s, err = tx.Submission(id)
		return err
	})
	return s, err
}

// mustNotBeStored fails if a submission with id exists.
func (v *vault) mustNotBeStored(id string) {
	v.t.Helper()
	if id == "" {
		return
	}
	if _, err := v.submission(id); !errors.Is(err, storage.ErrNotFound) {
		v.t.Errorf("submission %s: got err %v, want it not stored", id, err)
	}
}

// deposited is the stored count of current households per EA of the test
// tree.
func (v *vault) deposited() map[string]int64 {
	v.t.Helper()
	var m map[string]int64
	if err := v.Store.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		m, err = tx.Deposited([]string{eaA1, eaA2, eaA3, eaB1, eaB2})
		return err
	}); err != nil {
		v.t.Fatal(err)
	}
	return m
}

// countSubmissions counts the rows of the submissions table.
func (v *vault) countSubmissions() int {
	v.t.Helper()
	db := v.rawDB()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM submissions`).Scan(&n); err != nil {
		v.t.Fatal(err)
	}
	return n
}

// rawDB opens the vault's SQLite file directly, as someone with access to
// the disk would, bypassing the store.
func (v *vault) rawDB() *sql.DB {
	v.t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(v.Dir, sqlite.FileName)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		v.t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	v.t.Cleanup(func() { db.Close() })
	return db
}

// policyHash is the policy hash in force, as stored.
func (v *vault) policyHash() string {
	v.t.Helper()
	var h string
	if err := v.Store.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		h, err = tx.Meta("policy_hash")
		return err
	}); err != nil {
		v.t.Fatal(err)
	}
	return h
}

// progressRows fetches /v1/progress as user and returns its rows by area.
type progressRow struct {
	Area      string          `json:"area"`
	Name      string          `json:"name"`
	Level     string          `json:"level"`
	Planned   int64           `json:"planned"`
	Deposited int64           `json:"deposited"`
	Percent   json.RawMessage `json:"percent"`
	Partial   bool            `json:"partial"`
}

type progressReport struct {
	Area string        `json:"area"`
	Rows []progressRow `json:"rows"`
}

func (v *vault) progress(user, code string, depth int) (*response, *progressReport) {
	v.t.Helper()
	path := "/v1/progress?area=" + code
	if depth >= 0 {
		path += fmt.Sprintf("&depth=%d", depth)
	}
	r := v.get(user, path)
	if r.Status != http.StatusOK {
		return r, nil
	}
	var rep progressReport
	r.JSON(v.t, &rep)
	return r, &rep
}

func rowOf(rep *progressReport, code string) *progressRow {
	for i := range rep.Rows {
		if rep.Rows[i].Area == code {
			return &rep.Rows[i]
		}
	}
	return nil
}

// postPoint posts a publication point request body as user (no
// Authorization for "").
func (v *vault) postPoint(user, body string) *response {
	v.t.Helper()
	auth := ""
	if user != "" {
		auth = "Bearer " + v.Tokens[user]
	}
	return v.do(http.MethodPost, "/v1/release-points", auth, strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
}

// makePoint has the approver (granted at the root) make publication
// point name over HTTP, as of the data deposited so far, failing the
// test unless it is made.
func (v *vault) makePoint(name string) wire.ReleasePoint {
	v.t.Helper()
	r := v.postPoint("approver", `{"name": "`+name+`"}`)
	if r.Status != http.StatusCreated {
		v.t.Fatalf("making publication point %s: %d %s", name, r.Status, r.Body)
	}
	var p wire.ReleasePoint
	r.JSON(v.t, &p)
	return p
}

// pointState is the stored frozen state of publication point name.
func (v *vault) pointState(name string) []byte {
	v.t.Helper()
	var p *storage.ReleasePoint
	if err := v.Store.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		p, err = tx.ReleasePoint(name)
		return err
	}); err != nil {
		v.t.Fatalf("publication point %s: %v", name, err)
	}
	return p.State
}

// stdTable is a standard table request body: table id of the catalogue
// for area under project, at publication point point ("": as_of left
// out, the latest).
func stdTable(project, table, area, point string) string {
	m := map[string]any{"project": project, "purpose": "standard table " + table, "table": table, "area": area}
	if point != "" {
		m["as_of"] = point
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}
