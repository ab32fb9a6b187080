package broker_test

// Extracts for the processing centre through the broker, on a real SQLite
// store with the local age provider: four eyes, scope, the classes both
// the policy and the environment must allow, reproducibility as of an
// audit index, two passes with nothing kept, and the cut stream when the
// second pass differs. Each test is the attack its protection stops.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/sqlite"
	"github.com/google/uuid"
)

// exClock is a settable clock.
type exClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *exClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *exClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// extractVault is a vault of keyAreas (four communes of two EAs under
// district 437) with the people of an extract: processors, approvers, an
// admin and an auditor, and an enumerator who deposits.
type extractVault struct {
	t      *testing.T
	dir    string
	store  *sqlite.Store
	b      *broker.Broker
	clock  *exClock
	tokens map[string]string
	rcpt   *age.HybridRecipient
	no     int
	// id is the age identity of environment "centre", registered with
	// analytic and operational fields.
	id *age.X25519Identity
}

// withExtractApproval is the default policy with processors allowed to
// approve extracts too: a careless policy under which only the broker's
// own four-eyes rule keeps a processor from approving its own extract.
// withIdentifying lets processors extract identifying fields.
var (
	withExtractApproval = policy.DefaultPolicy() + "\np, processor, extract.approve, allow\n"
	withIdentifying     = policy.DefaultPolicy() + "\np, processor, extract.identifying, allow\n"
)

func newExtractVault(t *testing.T, pol string) *extractVault {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	tree, err := area.Load(strings.NewReader(keyAreas()))
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
	t.Cleanup(func() { st.Close() })
	clk := &exClock{t: time.Date(2019, 4, 10, 9, 0, 0, 0, time.UTC)}
	if err := broker.Init(ctx, broker.InitOpts{Store: st, Keys: kp, Areas: tree, Name: "extracts.test", Actor: actor, Now: clk.Now, Policy: pol}); err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(ctx, broker.Opts{Store: st, Keys: kp, Now: clk.Now, Limits: broker.Limits{UserRate: -1, RefusalBurst: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	ev := &extractVault{t: t, dir: dir, store: st, b: b, clock: clk, tokens: map[string]string{}}
	for _, u := range []broker.NewUser{
		{Name: "enum", Role: policy.Enumerator, Area: keyDistrict},
		{Name: "proc", Role: policy.Processor, Area: keyDistrict},
		{Name: "proc2", Role: policy.Processor, Area: keyDistrict},
		{Name: "proc-a", Role: policy.Processor, Area: communeA},
		{Name: "proc-deny", Role: policy.Processor, Area: keyDistrict},
		{Name: "appr", Role: policy.Approver, Area: keyNation},
		{Name: "appr-a", Role: policy.Approver, Area: communeA},
		{Name: "admin", Role: policy.Admin, Area: keyNation},
		{Name: "auditor", Role: policy.Auditor, Area: keyNation},
	} {
		tok, err := b.AddUser(ctx, actor, u)
		if err != nil {
			t.Fatal(err)
		}
		ev.tokens[string(u.Name)] = tok.Reveal()
	}
	if err := b.Grant(ctx, actor, "proc-deny", policy.Grant{Role: policy.Processor, Area: ea(communeB, 2), Deny: true}); err != nil {
		t.Fatal(err)
	}
	if ev.rcpt, err = age.ParseHybridRecipient(b.IngestRecipient()); err != nil {
		t.Fatal(err)
	}
	if ev.id, err = age.GenerateX25519Identity(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddEnvironment(ctx, broker.HostOperator(actor), broker.NewEnvironment{Name: "centre", Recipient: ev.id.Recipient().String()}); err != nil {
		t.Fatal(err)
	}
	return ev
}

func (ev *extractVault) caller(user string) *broker.Caller {
	ev.t.Helper()
	c, err := ev.b.Authenticate(context.Background(), "Bearer "+ev.tokens[user], "test")
	if err != nil {
		ev.t.Fatal(err)
	}
	return c
}

// headName is the name of the head of household no, a value that must
// never leave the vault outside an extract that carries identifying
// fields.
func headName(no int) string { return fmt.Sprintf("Nguyễn Văn Hộ%04d", no) }

// exHousehold is household no of ea, of three persons, correcting
// supersedes if not empty; dwelling is its dwelling type.
func exHousehold(id, ea string, no, dwelling int, supersedes string) []byte {
	m := map[string]any{
		"id": id, "form": "census2019", "form_version": 1, "area": ea, "household_no": no,
		"interviewed_at": "2019-04-05T09:30:00+07:00",
		"household": map[string]any{
			"head_name": headName(no), "address": fmt.Sprintf("Số %d, ngõ 4, \"tổ\" 1, <b>", no), "phone": "0912345678",
			"dwelling_type": dwelling, "floor_area_m2": 65.5, "water_source": 3, "electricity": 1, "visit_count": 2,
		},
		"persons": []any{
			map[string]any{"full_name": headName(no), "relationship": 1, "sex": 1, "birth_year": 1968, "ethnicity": 1, "response_type": 1},
			map[string]any{"full_name": fmt.Sprintf("Trần Thị Vợ%04d", no), "relationship": 2, "sex": 2, "birth_year": 1971, "ethnicity": 1},
			map[string]any{"full_name": fmt.Sprintf("Nguyễn Con%04d", no), "relationship": 3, "sex": 1, "birth_year": 2001, "ethnicity": 1},
		},
	}
	if supersedes != "" {
		m["supersedes"] = supersedes
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// deposit deposits a new household in ea (or a correction of
// supersedes, keeping its number) and returns its id and number.
func (ev *extractVault) deposit(ea string, dwelling int, supersedes string, no int) string {
	ev.t.Helper()
	if no == 0 {
		ev.no++
		no = ev.no
	}
	id := uuid.NewString()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, ev.rcpt)
	if err != nil {
		ev.t.Fatal(err)
	}
	w.Write(exHousehold(id, ea, no, dwelling, supersedes))
	if err := w.Close(); err != nil {
		ev.t.Fatal(err)
	}
	if _, err := ev.b.Deposit(context.Background(), ev.caller("enum"), int64(buf.Len()), &buf); err != nil {
		ev.t.Fatalf("deposit in %s: %v", ea, err)
	}
	return id
}

// depositAll deposits n households in every EA of the district.
func (ev *extractVault) depositAll(n int) {
	for _, c := range keyCommunes {
		for e := 1; e <= 2; e++ {
			for range n {
				ev.deposit(ea(c, e), 2, "", 0)
			}
		}
	}
}

func (ev *extractVault) propose(user string, req broker.ExtractRequest) (*broker.ExtractInfo, error) {
	if req.Environment == "" {
		req.Environment = "centre"
	}
	if req.Form == "" {
		req.Form = "census2019"
	}
	if req.Purpose == "" {
		req.Purpose = "editing and coding of the 2019 census, Hồng Lĩnh"
	}
	if req.Classes == nil {
		req.Classes = []string{"analytic", "operational"}
	}
	return ev.b.ProposeExtract(context.Background(), ev.caller(user), req)
}

func (ev *extractVault) mustPropose(user string, req broker.ExtractRequest) *broker.ExtractInfo {
	ev.t.Helper()
	x, err := ev.propose(user, req)
	if err != nil {
		ev.t.Fatalf("%s proposes %+v: %v", user, req, err)
	}
	return x
}

func (ev *extractVault) approve(user string, seq int64) error {
	_, err := ev.b.ApproveExtract(context.Background(), ev.caller(user), seq)
	return err
}

// download downloads extract seq as user: the download, the ciphertext
// and the stream's error.
func (ev *extractVault) download(user string, seq int64) (*broker.ExtractDownload, []byte, error) {
	d, err := ev.b.DownloadExtract(context.Background(), ev.caller(user), seq)
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	err = d.Stream(context.Background(), &buf)
	return d, buf.Bytes(), err
}

// mustDownload downloads extract seq as user and decrypts it with the
// environment's identity.
func (ev *extractVault) mustDownload(user string, seq int64) (*broker.ExtractDownload, []byte) {
	ev.t.Helper()
	d, ct, err := ev.download(user, seq)
	if err != nil {
		ev.t.Fatalf("%s downloads extract %d: %v", user, seq, err)
	}
	return d, decryptWith(ev.t, ct, ev.id)
}

func decryptWith(t *testing.T, ct []byte, id age.Identity) []byte {
	t.Helper()
	r, err := age.Decrypt(bytes.NewReader(ct), id)
	if err != nil {
		t.Fatalf("the extract does not decrypt with the environment's identity: %v", err)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("the extract does not decrypt to its end: %v", err)
	}
	return plain
}

// events are the audit events from index from on.
func (ev *extractVault) events(from int64) []*audit.Event {
	ev.t.Helper()
	var out []*audit.Event
	if err := ev.store.View(context.Background(), func(tx storage.ReadTx) error {
		return tx.AuditRecords(from, 0, func(r storage.AuditRecord) (bool, error) {
			e, err := audit.Decode(r.Event)
			if err != nil {
				return false, err
			}
			out = append(out, e)
			return true, nil
		})
	}); err != nil {
		ev.t.Fatal(err)
	}
	return out
}

func (ev *extractVault) head() int64 {
	ev.t.Helper()
	var h storage.AuditHead
	if err := ev.store.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		h, err = tx.AuditHead()
		return err
	}); err != nil {
		ev.t.Fatal(err)
	}
	return h.Next
}

// oneEvent runs fn and returns the one audit event it appended.
func (ev *extractVault) oneEvent(fn func()) *audit.Event {
	ev.t.Helper()
	h := ev.head()
	fn()
	evs := ev.events(h)
	if len(evs) != 1 {
		ev.t.Fatalf("%d audit events, want 1: %s", len(evs), showEvents(evs))
	}
	return evs[0]
}

// wantCode checks err is a broker error of kind k and code.
func wantCode(t *testing.T, what string, err error, k broker.Kind, code string) {
	t.Helper()
	var be *broker.Error
	if !errors.As(err, &be) || be.Kind != k || be.ErrorCode() != code {
		t.Errorf("%s: err = %v, want %v %s", what, err, k, code)
	}
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// TestExtractFourEyes: under a policy that lets processors approve too,
// the proposer still cannot approve its own extract (four_eyes); another
// person approves it once; an approver cannot download it (403) nor
// decrypt what a processor downloads; nothing is downloaded before the
// approval; a proposal a week old cannot be approved. The download
// decrypts with the environment's identity, and its SHA-256 and rows are
// those of its audit event.
func TestExtractFourEyes(t *testing.T) {
	ev := newExtractVault(t, withExtractApproval)
	ev.depositAll(3)
	x := ev.mustPropose("proc", broker.ExtractRequest{Areas: []string{keyDistrict}})
	if x.Status != wire.ExtractPending || x.Seq != 1 || x.FormVersion != 1 || !slices.Equal(x.Classes, []string{"analytic", "operational"}) {
		t.Fatalf("proposal: %+v", x)
	}

	// Before the approval nothing is downloaded.
	var err error
	e := ev.oneEvent(func() { _, _, err = ev.download("proc", x.Seq) })
	wantCode(t, "download before the approval", err, broker.Conflict, "proposal_pending")
	if e.Action != "extract.download" || e.Outcome != "conflict" || e.ReleaseDigest != "" {
		t.Errorf("event of a download before the approval: %+v", e)
	}

	// The proposer, allowed extract.approve by this policy, is refused.
	e = ev.oneEvent(func() { err = ev.approve("proc", x.Seq) })
	wantCode(t, "the proposer approves", err, broker.Permission, "four_eyes")
	if e.Action != "extract.approve" || e.Outcome != "refused" || e.Reason != "four_eyes" {
		t.Errorf("event of the proposer's approval: %+v", e)
	}
	// Another processor may (this policy lets it), once.
	if err := ev.approve("proc2", x.Seq); err != nil {
		t.Fatalf("another person approves: %v", err)
	}
	wantCode(t, "a second approval", ev.approve("appr", x.Seq), broker.Conflict, "proposal_approved")

	// An approver, an admin, an auditor cannot download it.
	for _, u := range []string{"appr", "admin", "auditor", "enum"} {
		e = ev.oneEvent(func() { _, _, err = ev.download(u, x.Seq) })
		wantCode(t, u+" downloads", err, broker.Permission, "permission_denied")
		if e.Decision != "deny" || e.Outcome != "denied" || e.ReleaseDigest != "" {
			t.Errorf("event of %s's download: %+v", u, e)
		}
	}

	// A processor downloads it: it decrypts with the environment's
	// identity, and only with it.
	h := ev.head()
	d, ct, err := ev.download("proc", x.Seq)
	if err != nil {
		t.Fatal(err)
	}
	plain := decryptWith(t, ct, ev.id)
	other, _ := age.GenerateX25519Identity()
	if _, err := age.Decrypt(bytes.NewReader(ct), other); err == nil {
		t.Error("the extract decrypts with an identity that is not the environment's")
	}
	if bytes.Contains(ct, plain[:40]) {
		t.Error("the ciphertext holds plaintext")
	}
	lines := bytes.Count(plain, []byte("\n"))
	if sha(plain) != d.SHA256 || int64(lines) != d.Rows || d.Rows != 24 || d.Households != 24 {
		t.Errorf("download: sha256 %s rows %d households %d; the plaintext has sha256 %s and %d lines (want 24)", d.SHA256, d.Rows, d.Households, sha(plain), lines)
	}
	evs := ev.events(h)
	if len(evs) != 1 {
		t.Fatalf("the download appended %d events: %s", len(evs), showEvents(evs))
	}
	if e := evs[0]; e.Action != "extract.download" || e.Decision != "allow" || e.Outcome != "ok" || e.ReleaseDigest != "sha256:"+sha(plain) ||
		!strings.HasPrefix(e.Reason, "24 rows, 24 households;") || e.Index != d.AuditIndex || !slices.Equal(e.Resources, []string{"extract:1", "environment:centre"}) {
		t.Errorf("download event: %+v", e)
	}
	checkJSONL(t, plain, []string{"analytic", "operational"})

	// A proposal a week old cannot be approved any more.
	y := ev.mustPropose("proc", broker.ExtractRequest{Areas: []string{communeA}})
	ev.clock.Advance(broker.ExtractLife + time.Second)
	e = ev.oneEvent(func() { err = ev.approve("appr", y.Seq) })
	wantCode(t, "approval after a week", err, broker.Conflict, "proposal_expired")
	if e.Outcome != "conflict" || e.Reason != "proposal_expired" {
		t.Errorf("event of a late approval: %+v", e)
	}
	_, _, err = ev.download("proc", y.Seq)
	wantCode(t, "download of an expired proposal", err, broker.Conflict, "proposal_expired")
	// The approved one is still downloaded, the same bytes.
	if d2, plain2 := ev.mustDownload("proc2", x.Seq); d2.SHA256 != d.SHA256 || !bytes.Equal(plain2, plain) {
		t.Error("a later download of the same extract differs")
	}
}

// checkJSONL checks an extract's lines: each household's metadata and
// the fields of classes only, in form order, persons too.
func checkJSONL(t *testing.T, plain []byte, classes []string) {
	t.Helper()
	ident := slices.Contains(classes, "identifying")
	sc := bufio.NewScanner(bytes.NewReader(plain))
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		for _, k := range []string{"id", "ea", "household_no", "form", "form_version", "persons"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line %d has no %s", n, k)
			}
		}
		_, hasHead := m["head_name"]
		_, hasDwelling := m["dwelling_type"]
		_, hasVisits := m["visit_count"]
		if hasHead != ident || hasDwelling != slices.Contains(classes, "analytic") || hasVisits != slices.Contains(classes, "operational") {
			t.Errorf("line %d: head_name %v dwelling_type %v visit_count %v for classes %v", n, hasHead, hasDwelling, hasVisits, classes)
		}
		if !strings.HasPrefix(line, `{"id":"`) || (slices.Contains(classes, "analytic") && !strings.Contains(line, `"form_version":1,`)) {
			t.Errorf("line %d is not in the extract's order: %.80s", n, line)
		}
		if ident && !strings.Contains(line, `, \"tổ\" 1, <b>"`) {
			t.Errorf("line %d: the address is not written as given, unescaped HTML: %s", n, line)
		}
	}
	if n == 0 {
		t.Error("the extract is empty")
	}
}

// TestExtractScope: a processor proposes only areas wholly in its scope
// (outside its subtree, or over a deny below the area, refused), an
// approver approves only extracts of its scope, and a download checks the
// downloader's grants as they are now.
func TestExtractScope(t *testing.T) {
	ev := newExtractVault(t, "")
	ev.depositAll(1)
	var err error
	for _, c := range []struct {
		user, area string
		ok         bool
	}{
		{"proc-a", communeA, true},
		{"proc-a", ea(communeA, 1), true},
		{"proc-a", communeB, false},
		{"proc-a", keyDistrict, false},
		{"proc", keyNation, false},
		{"proc-deny", keyDistrict, false},     // a deny below the area
		{"proc-deny", communeB, false},        // the denied EA's commune
		{"proc-deny", ea(communeB, 2), false}, // the denied EA
		{"proc-deny", ea(communeB, 1), true},
		{"proc-deny", communeA, true},
		{"appr", keyDistrict, false}, // a trust role proposes nothing
		{"admin", keyDistrict, false},
		{"enum", keyDistrict, false},
	} {
		e := ev.oneEvent(func() { _, err = ev.propose(c.user, broker.ExtractRequest{Areas: []string{c.area}}) })
		if c.ok != (err == nil) {
			t.Errorf("%s proposes an extract of %s: %v, want allowed %v", c.user, c.area, err, c.ok)
		}
		if !c.ok {
			wantCode(t, c.user+" proposes "+c.area, err, broker.Permission, "permission_denied")
		}
		if want := map[bool]string{true: "allow", false: "deny"}[c.ok]; e.Action != "extract.propose" || e.Decision != want {
			t.Errorf("%s proposes %s: event %s/%s (%s), want %s", c.user, c.area, e.Action, e.Decision, e.Rule, want)
		}
	}
	// Two areas: both wholly in scope, or refused.
	_, err = ev.propose("proc-a", broker.ExtractRequest{Areas: []string{communeA, communeB}})
	wantCode(t, "two areas, one out of scope", err, broker.Permission, "permission_denied")
	_, err = ev.propose("proc", broker.ExtractRequest{Areas: []string{communeA, ea(communeA, 1)}})
	wantCode(t, "overlapping areas", err, broker.Invalid, "invalid")

	x := ev.mustPropose("proc", broker.ExtractRequest{Areas: []string{communeA, communeB}})
	wantCode(t, "an approver of commune A approves an extract of A and B", ev.approve("appr-a", x.Seq), broker.Permission, "permission_denied")
	if err := ev.approve("appr", x.Seq); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ev.download("proc-a", x.Seq); err == nil {
		t.Error("a processor of commune A downloads an extract of A and B")
	}
	_, _, err = ev.download("proc-deny", x.Seq)
	wantCode(t, "a processor with a deny below downloads", err, broker.Permission, "permission_denied")
	ev.mustDownload("proc2", x.Seq)
	// proc2 loses commune B: its next download is refused.
	if err := ev.b.Grant(context.Background(), actor, "proc2", policy.Grant{Role: policy.Processor, Area: communeB, Deny: true}); err != nil {
		t.Fatal(err)
	}
	_, _, err = ev.download("proc2", x.Seq)
	wantCode(t, "download after a deny was granted", err, broker.Permission, "permission_denied")

	// The list shows each caller the extracts of its scope.
	list := func(user string) []int64 {
		l, err := ev.b.ExtractsFor(context.Background(), ev.caller(user))
		if err != nil {
			t.Fatalf("%s lists: %v", user, err)
		}
		var seqs []int64
		for _, x := range l.Extracts {
			seqs = append(seqs, x.Seq)
		}
		return seqs
	}
	if got := list("proc-a"); slices.Contains(got, x.Seq) {
		t.Errorf("proc-a lists %v, an extract of commune B among them", got)
	}
	if got := list("appr"); !slices.Contains(got, x.Seq) {
		t.Errorf("appr lists %v, want extract %d", got, x.Seq)
	}
	if _, err := ev.b.ExtractsFor(context.Background(), ev.caller("auditor")); err == nil {
		t.Error("an auditor lists the extracts")
	}
}

// TestExtractIdentifying: identifying fields are in an extract only when
// both the policy (extract.identifying) and the environment allow them;
// otherwise the request is refused with a code saying which, never
// answered without the class. Neither the audit log nor the download's
// metadata ever holds a field value, whatever the extract carries.
func TestExtractIdentifying(t *testing.T) {
	all := []string{"identifying", "analytic", "operational"}
	ctx := context.Background()
	// The default policy: no identifying field, whatever the environment.
	ev := newExtractVault(t, "")
	ev.depositAll(1)
	if _, err := ev.b.AddEnvironment(ctx, broker.HostOperator(actor), broker.NewEnvironment{Name: "ident", Recipient: ev.id.Recipient().String(), Classes: all}); err != nil {
		t.Fatal(err)
	}
	_, err := ev.propose("proc", broker.ExtractRequest{Environment: "ident", Areas: []string{keyDistrict}, Classes: all})
	wantCode(t, "identifying under the default policy", err, broker.Permission, "class_not_allowed")

	// A policy that allows it, and an environment that does not list it.
	ev = newExtractVault(t, withIdentifying)
	ev.depositAll(1)
	var e *audit.Event
	e = ev.oneEvent(func() {
		_, err = ev.propose("proc", broker.ExtractRequest{Areas: []string{keyDistrict}, Classes: all})
	})
	wantCode(t, "identifying for an environment without it", err, broker.Permission, "class_not_registered")
	if e.Decision != "deny" || e.Outcome != "denied" || e.Reason != "class_not_registered" {
		t.Errorf("event of the refusal: %+v", e)
	}
	// Only analytic: no identifying field comes out.
	x := ev.mustPropose("proc", broker.ExtractRequest{Areas: []string{keyDistrict}, Classes: []string{"analytic"}})
	if err := ev.approve("appr", x.Seq); err != nil {
		t.Fatal(err)
	}
	_, plain := ev.mustDownload("proc", x.Seq)
	checkJSONL(t, plain, []string{"analytic"})
	if bytes.Contains(plain, []byte("Nguyễn")) {
		t.Error("an analytic extract holds a name")
	}

	// Both allow it: the names are in the extract, and nowhere else.
	if _, err := ev.b.AddEnvironment(ctx, broker.HostOperator(actor), broker.NewEnvironment{Name: "ident", Recipient: ev.id.Recipient().String(), Classes: all}); err != nil {
		t.Fatal(err)
	}
	x = ev.mustPropose("proc", broker.ExtractRequest{Environment: "ident", Areas: []string{keyDistrict}, Classes: all})
	if err := ev.approve("appr", x.Seq); err != nil {
		t.Fatal(err)
	}
	d, plain := ev.mustDownload("proc", x.Seq)
	checkJSONL(t, plain, all)
	if !bytes.Contains(plain, []byte(headName(1))) {
		t.Fatal("the identifying extract holds no name")
	}
	meta := fmt.Sprintf("%+v", *d)
	var log bytes.Buffer
	for _, e := range ev.events(0) {
		raw, _ := json.Marshal(e)
		log.Write(raw)
	}
	for no := 1; no <= ev.no; no++ {
		for _, v := range []string{headName(no), fmt.Sprintf("Trần Thị Vợ%04d", no), fmt.Sprintf("Số %d, ngõ 4", no), "0912345678"} {
			if strings.Contains(meta, v) || bytes.Contains(log.Bytes(), []byte(v)) {
				t.Fatalf("a field value (%q) is in the download's metadata or the audit log", v)
			}
		}
	}
}

// TestExtractReproducible: an extract is as of its proposal's audit
// event. Downloaded again after new deposits and a correction that
// supersedes one of its households, it gives the same bytes; a new
// proposal holds the correction.
func TestExtractReproducible(t *testing.T) {
	ev := newExtractVault(t, "")
	first := ev.deposit(ea(communeA, 1), 2, "", 0)
	ev.depositAll(2)
	x := ev.mustPropose("proc", broker.ExtractRequest{Areas: []string{communeA}, Format: wire.ExtractCSV})
	if err := ev.approve("appr", x.Seq); err != nil {
		t.Fatal(err)
	}
	d1, plain1 := ev.mustDownload("proc", x.Seq)

	// After the proposal: new households and a correction of the first.
	ev.depositAll(1)
	ev.deposit(ea(communeA, 1), 4, first, 1)
	d2, plain2 := ev.mustDownload("proc", x.Seq)
	if d1.SHA256 != d2.SHA256 || !bytes.Equal(plain1, plain2) || d1.Rows != d2.Rows {
		t.Fatalf("two downloads of one extract differ: %s (%d rows) then %s (%d rows)", d1.SHA256, d1.Rows, d2.SHA256, d2.Rows)
	}
	rows := csvRows(t, plain1)
	if int64(len(rows)-1) != d1.Rows || d1.Rows != 3*d1.Households || d1.Households != 5 {
		t.Errorf("CSV of %d rows after its header; download says %d rows, %d households (want 15, 5)", len(rows)-1, d1.Rows, d1.Households)
	}
	header := strings.Join(rows[0], ",")
	if header != "id,ea,household_no,form,form_version,dwelling_type,tenure,floor_area_m2,water_source,electricity,toilet_type,visit_count,respondent_no,person_no,relationship,sex,birth_month,birth_year,ethnicity,religion,literacy,education_level,marital_status,response_type" {
		t.Errorf("CSV header %s", header)
	}
	if rows[1][0] != first || rows[1][5] != "2" || rows[1][13] != "1" || rows[3][13] != "3" {
		t.Errorf("first rows: %q", rows[1:4])
	}

	// A new extract is as of now: the correction replaces the first.
	y := ev.mustPropose("proc", broker.ExtractRequest{Areas: []string{communeA}, Format: wire.ExtractCSV})
	if err := ev.approve("appr", y.Seq); err != nil {
		t.Fatal(err)
	}
	d3, plain3 := ev.mustDownload("proc", y.Seq)
	if d3.SHA256 == d1.SHA256 || d3.Households != 7 || bytes.Contains(plain3, []byte(first)) {
		t.Errorf("the later extract: %d households, holds the superseded one %v", d3.Households, bytes.Contains(plain3, []byte(first)))
	}
}

func csvRows(t *testing.T, plain []byte) [][]string {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(plain)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestExtractShredBetweenPasses: when a data key is shredded between the
// two passes of a download, the second pass does not reproduce the
// logged digest: the stream is cut, what the receiver got does not
// decrypt to its end, and the cut is audited. The next download is Gone.
func TestExtractShredBetweenPasses(t *testing.T) {
	ev := newExtractVault(t, "")
	ev.depositAll(2)
	x := ev.mustPropose("proc", broker.ExtractRequest{Areas: []string{keyDistrict}})
	if err := ev.approve("appr", x.Seq); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := ev.b.DownloadExtract(ctx, ev.caller("proc"), x.Seq)
	if err != nil {
		t.Fatal(err)
	}
	// Another instance shreds commune B's analytic fields meanwhile.
	other, err := broker.New(ctx, broker.Opts{Store: ev.store, Keys: mustKeys(t, ev.dir)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Shred(ctx, actor, crypto.Analytic, communeB); err != nil {
		t.Fatal(err)
	}
	h := ev.head()
	var buf bytes.Buffer
	err = d.Stream(ctx, &buf)
	if !errors.Is(err, broker.ErrExtractCut) {
		t.Fatalf("Stream after a shred: %v, want ErrExtractCut", err)
	}
	r, err := age.Decrypt(bytes.NewReader(buf.Bytes()), ev.id)
	if err == nil {
		_, err = io.ReadAll(r)
	}
	if err == nil {
		t.Error("the cut stream decrypts to its end")
	}
	evs := ev.events(h)
	if len(evs) != 1 || evs[0].Action != "extract.download" || evs[0].Outcome != "aborted" ||
		!strings.Contains(evs[0].Reason, fmt.Sprintf("download at audit index %d cut", d.AuditIndex)) {
		t.Errorf("events of the cut stream: %s", showEvents(evs))
	}
	e := ev.oneEvent(func() { _, _, err = ev.download("proc", x.Seq) })
	wantCode(t, "download after the shred", err, broker.Gone, "gone")
	if e.Outcome != "gone" || e.ReleaseDigest != "" {
		t.Errorf("event of the download after the shred: %+v", e)
	}
}

// TestExtractSecondPassDiffers: an operator who rewrites a household's
// operational fields (kept in clear) between the two passes of a
// download makes the second pass differ from the logged digest without
// any error on the way: the stream is still cut before age's last
// chunk, so the receiver never holds a complete file that is not the
// logged one.
func TestExtractSecondPassDiffers(t *testing.T) {
	ev := newExtractVault(t, "")
	ev.depositAll(1)
	x := ev.mustPropose("proc", broker.ExtractRequest{Areas: []string{communeA}, Classes: []string{"operational"}})
	if err := ev.approve("appr", x.Seq); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := ev.b.DownloadExtract(ctx, ev.caller("proc"), x.Seq)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(ev.dir, sqlite.FileName)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE submissions SET operational = replace(CAST(operational AS TEXT), '"visit_count":2', '"visit_count":3')`); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err = d.Stream(ctx, &buf)
	if !errors.Is(err, broker.ErrExtractCut) || !strings.Contains(err.Error(), "did not reproduce") {
		t.Fatalf("Stream after the store changed: %v, want a cut stream", err)
	}
	r, err := age.Decrypt(bytes.NewReader(buf.Bytes()), ev.id)
	if err == nil {
		_, err = io.ReadAll(r)
	}
	if err == nil {
		t.Error("the stream that differs from the logged digest decrypts to its end")
	}
}

func mustKeys(t *testing.T, dir string) crypto.KeyProvider {
	t.Helper()
	kp, err := agekey.Load(filepath.Join(dir, agekey.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// TestExtractNoPlaintextOnDisk: a download writes no file — no temporary
// file, nothing new in the data directory — and no file it leaves holds
// a row of the plaintext.
func TestExtractNoPlaintextOnDisk(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Setenv("SQLITE_TMPDIR", tmp)
	ev := newExtractVault(t, withIdentifying)
	ev.depositAll(3)
	if _, err := ev.b.AddEnvironment(context.Background(), broker.HostOperator(actor), broker.NewEnvironment{Name: "ident", Recipient: ev.id.Recipient().String(), Classes: []string{"identifying", "analytic"}}); err != nil {
		t.Fatal(err)
	}
	x := ev.mustPropose("proc", broker.ExtractRequest{Environment: "ident", Areas: []string{keyDistrict}, Classes: []string{"identifying", "analytic"}})
	if err := ev.approve("appr", x.Seq); err != nil {
		t.Fatal(err)
	}
	files := func() map[string]bool {
		m := map[string]bool{}
		for _, root := range []string{ev.dir, tmp} {
			filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
				if err == nil && !de.IsDir() {
					m[p] = true
				}
				return nil
			})
		}
		return m
	}
	before := files()
	_, plain := ev.mustDownload("proc", x.Seq)
	after := files()
	for p := range after {
		if !before[p] {
			t.Errorf("the download left a new file: %s", p)
		}
	}
	line, _, _ := bytes.Cut(plain, []byte("\n"))
	for p := range after {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if bytes.Contains(b, line) || bytes.Contains(b, []byte(headName(1))) {
			t.Errorf("%s holds plaintext of the extract", p)
		}
	}
}

// TestEnvironments: registration checks its input and refuses (audited)
// what it cannot take — a secret key given as the recipient, never
// quoted; an unknown class; a name taken, even by a retired
// environment — and accepts a post-quantum recipient; an API caller
// needs admin.manage over the whole tree; a retired environment gets no
// new proposal, approval or download.
func TestEnvironments(t *testing.T) {
	ev := newExtractVault(t, "")
	ev.depositAll(1)
	ctx := context.Background()
	host := broker.HostOperator(actor)
	secret := ev.id.String()
	pq, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ne   broker.NewEnvironment
		code string
	}{
		{broker.NewEnvironment{Name: "Bad Name", Recipient: ev.id.Recipient().String()}, "invalid"},
		{broker.NewEnvironment{Name: "c\xff", Recipient: ev.id.Recipient().String()}, "invalid"},
		{broker.NewEnvironment{Name: "leak", Recipient: secret}, "invalid"},
		{broker.NewEnvironment{Name: "x", Recipient: ev.id.Recipient().String(), Classes: []string{"analytic", "secret"}}, "invalid"},
		{broker.NewEnvironment{Name: "x", Recipient: ev.id.Recipient().String(), Classes: []string{"analytic", "analytic"}}, "invalid"},
		{broker.NewEnvironment{Name: "centre", Recipient: ev.id.Recipient().String()}, "environment_exists"},
	} {
		var err error
		e := ev.oneEvent(func() { _, err = ev.b.AddEnvironment(ctx, host, c.ne) })
		var be *broker.Error
		if !errors.As(err, &be) || be.ErrorCode() != c.code {
			t.Errorf("AddEnvironment(%q): %v, want %s", c.ne.Name, err, c.code)
		}
		if err != nil && strings.Contains(err.Error(), secret) || strings.Contains(e.Reason, secret) {
			t.Error("the refusal quotes a secret key")
		}
		if e.Action != "extract.environment_add" || e.Outcome == "ok" {
			t.Errorf("event of a refused registration: %+v", e)
		}
	}
	env, err := ev.b.AddEnvironment(ctx, host, broker.NewEnvironment{Name: "pq.centre", Recipient: pq.Recipient().String(), Classes: []string{"operational", "analytic"}})
	if err != nil {
		t.Fatalf("the operator registers a post-quantum environment: %v", err)
	}
	fp := sha256.Sum256([]byte(pq.Recipient().String()))
	if env.Recipient != pq.Recipient().String() || env.RecipientSHA256 != hex.EncodeToString(fp[:]) ||
		!slices.Equal(env.Classes, []string{"analytic", "operational"}) || env.CreatedBy != actor {
		t.Errorf("registered %+v", env)
	}
	// Over the API nobody registers one: the admin is told to do it on
	// the vault host.
	e := ev.oneEvent(func() {
		_, err = ev.b.AddEnvironment(ctx, broker.APIOperator(ev.caller("admin")), broker.NewEnvironment{Name: "by-admin", Recipient: ev.id.Recipient().String()})
	})
	wantCode(t, "admin registers an environment over the API", err, broker.Permission, "host_only")
	if !strings.Contains(err.Error(), "censusvault extract env add") || e.Decision != "deny" || e.Outcome != "denied" || e.Actor != "user:admin" {
		t.Errorf("host_only refusal: %v; event %+v", err, e)
	}
	for _, u := range []string{"proc", "appr", "auditor"} {
		_, err := ev.b.AddEnvironment(ctx, broker.APIOperator(ev.caller(u)), broker.NewEnvironment{Name: "by-" + u, Recipient: ev.id.Recipient().String()})
		wantCode(t, u+" registers an environment", err, broker.Permission, "permission_denied")
	}
	for _, u := range []string{"proc", "appr", "admin"} {
		if l, err := ev.b.EnvironmentsFor(ctx, ev.caller(u)); err != nil || len(l.Environments) != 2 {
			t.Errorf("%s lists the environments: %v, %v", u, l, err)
		}
	}
	for _, u := range []string{"auditor", "enum"} {
		_, err := ev.b.EnvironmentsFor(ctx, ev.caller(u))
		wantCode(t, u+" lists the environments", err, broker.Permission, "permission_denied")
	}

	// An extract to the post-quantum environment decrypts with its
	// identity.
	x := ev.mustPropose("proc", broker.ExtractRequest{Environment: "pq.centre", Areas: []string{communeA}})
	if err := ev.approve("appr", x.Seq); err != nil {
		t.Fatal(err)
	}
	_, ct, err := ev.download("proc", x.Seq)
	if err != nil {
		t.Fatal(err)
	}
	decryptWith(t, ct, pq)

	// Retired: no new proposal, approval or download.
	y := ev.mustPropose("proc", broker.ExtractRequest{Environment: "pq.centre", Areas: []string{communeA}})
	if _, err := ev.b.RetireEnvironment(ctx, broker.APIOperator(ev.caller("admin")), "pq.centre"); err != nil {
		t.Fatal(err)
	}
	_, err = ev.b.RetireEnvironment(ctx, host, "pq.centre")
	wantCode(t, "a second retirement", err, broker.Conflict, "environment_retired")
	e = ev.oneEvent(func() { _, err = ev.b.RetireEnvironment(ctx, host, "no\xffwhere") })
	wantCode(t, "retiring an unknown name, not UTF-8", err, broker.NotFound, "no_such_environment")
	if e.Outcome != "refused" || e.Resources[0] != "environment:no\uFFFDwhere" {
		t.Errorf("event of the refused retirement: %+v", e)
	}
	_, err = ev.propose("proc", broker.ExtractRequest{Environment: "pq.centre", Areas: []string{communeA}})
	wantCode(t, "a proposal for a retired environment", err, broker.Conflict, "environment_retired")
	wantCode(t, "an approval for a retired environment", ev.approve("appr", y.Seq), broker.Conflict, "environment_retired")
	_, _, err = ev.download("proc", x.Seq)
	wantCode(t, "a download to a retired environment", err, broker.Conflict, "environment_retired")
	_, err = ev.b.AddEnvironment(ctx, host, broker.NewEnvironment{Name: "pq.centre", Recipient: ev.id.Recipient().String()})
	wantCode(t, "a retired name registered again", err, broker.Conflict, "environment_exists")
}

// TestExtractProposalInvalid: a malformed proposal is refused (audited),
// and stores nothing.
func TestExtractProposalInvalid(t *testing.T) {
	ev := newExtractVault(t, "")
	long := strings.Repeat("x", broker.MaxExtractPurpose+1)
	for what, req := range map[string]broker.ExtractRequest{
		"no areas":              {Areas: []string{}},
		"unknown area":          {Areas: []string{"99999"}},
		"bad area":              {Areas: []string{"a b"}},
		"unknown class":         {Areas: []string{communeA}, Classes: []string{"everything"}},
		"no class":              {Areas: []string{communeA}, Classes: []string{}},
		"bad format":            {Areas: []string{communeA}, Format: "xlsx"},
		"unknown form":          {Areas: []string{communeA}, Form: "census2029"},
		"unknown version":       {Areas: []string{communeA}, FormVersion: 7},
		"long purpose":          {Areas: []string{communeA}, Purpose: long},
		"blank purpose":         {Areas: []string{communeA}, Purpose: "  "},
		"a line break":          {Areas: []string{communeA}, Purpose: "two\nlines"},
		"invalid UTF-8":         {Areas: []string{communeA}, Purpose: "caf\xe9"},
		"bad environment":       {Areas: []string{communeA}, Environment: "../centre"},
		"environment not UTF-8": {Areas: []string{communeA}, Environment: "c\xff"},
	} {
		var err error
		e := ev.oneEvent(func() { _, err = ev.propose("proc", req) })
		wantCode(t, what, err, broker.Invalid, "invalid")
		if e.Outcome != "invalid" || len(e.Purpose) > broker.MaxExtractPurpose+3 {
			t.Errorf("%s: event %+v", what, e)
		}
	}
	_, err := ev.propose("proc", broker.ExtractRequest{Areas: []string{communeA}, Environment: "nowhere"})
	wantCode(t, "unknown environment", err, broker.NotFound, "no_such_environment")
	if l, err := ev.b.Extracts(context.Background()); err != nil || len(l.Extracts) != 0 {
		t.Errorf("after refused proposals: %v, %v", l, err)
	}
	// An approver over the whole tree is told an extract does not exist;
	// a processor of the district is answered as for one outside it.
	wantCode(t, "approve an unknown extract", ev.approve("appr", 9), broker.NotFound, "no_such_extract")
	_, _, err = ev.download("proc", 9)
	wantCode(t, "download an unknown extract", err, broker.Permission, "permission_denied")
}
