package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/client"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/policy"
)

// extractUsers adds the processors of the extract tests: two over the
// district, one over ward A.
func (v *vault) extractUsers() {
	v.t.Helper()
	for _, u := range []broker.NewUser{
		{Name: "proc", Role: policy.Processor, Area: district},
		{Name: "proc2", Role: policy.Processor, Area: district},
		{Name: "proc-a", Role: policy.Processor, Area: communeA},
	} {
		tok, err := v.B.AddUser(context.Background(), "cli:test", u)
		if err != nil {
			v.t.Fatal(err)
		}
		v.Tokens[string(u.Name)] = tok.Reveal()
	}
}

func (v *vault) extractPost(user, path, body string) *response {
	v.t.Helper()
	return v.do(http.MethodPost, path, "Bearer "+v.Tokens[user], strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
}

// TestExtractOverHTTP: the operator registers an environment on the
// vault host (over HTTP nobody may: the admin is told host_only), a
// processor proposes, the proposer cannot approve (403), an approver approves and
// cannot download (403), a processor downloads with the Go client: the
// body is an age file for the environment's identity, whose plaintext's
// SHA-256 and rows are the headers' and the audit event's. Every answer
// is no-store; malformed bodies and parameters are 400, audited.
func TestExtractOverHTTP(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	v.extractUsers()
	ctx := context.Background()
	for i := 1; i <= 4; i++ {
		v.receipt(v.deposit("enum-a1", v.seal(encode(t, household(eaA1, i)))), http.StatusCreated)
		v.receipt(v.deposit("enum-b1", v.seal(encode(t, household(eaB1, i)))), http.StatusCreated)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	env, err := v.B.AddEnvironment(ctx, broker.HostOperator("cli:test"), broker.NewEnvironment{Name: "centre", Recipient: id.Recipient().String()})
	if err != nil || env.Name != "centre" || strings.Join(env.Classes, ",") != "analytic,operational" || env.CreatedBy != "cli:test" {
		t.Fatalf("the operator registers an environment: %+v, %v", env, err)
	}
	for user, code := range map[string]string{"admin": "host_only", "proc": "permission_denied"} {
		r := v.extractPost(user, "/v1/extracts/environments", `{"name":"mine","recipient":"`+id.Recipient().String()+`"}`)
		if r.Status != 403 || r.Code(t) != code || r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s registers an environment: %d %s", user, r.Status, r.Body)
		}
	}
	fpSum := sha256.Sum256([]byte(id.Recipient().String()))
	fp := hex.EncodeToString(fpSum[:])
	if l, err := v.Client("proc").Environments(ctx); err != nil || len(l.Environments) != 1 || l.Environments[0].Recipient != id.Recipient().String() ||
		l.Environments[0].RecipientSHA256 != fp {
		t.Errorf("a processor lists the environments: %+v, %v", l, err)
	}

	x, err := v.Client("proc").ProposeExtract(ctx, wire.ExtractRequest{Environment: "centre", Areas: []string{district}, Form: "census2019",
		Classes: []string{"analytic", "operational"}, Purpose: "coding of the town's households"})
	if err != nil || x.Seq != 1 || x.Status != wire.ExtractPending || x.FormVersion != 1 || x.Format != wire.ExtractJSONL ||
		x.RecipientSHA256 != fp || x.RecipientStart != id.Recipient().String()[:20]+"…" {
		t.Fatalf("propose: %+v, %v", x, err)
	}
	if _, err := v.Client("proc").ApproveExtract(ctx, x.Seq); !isExtractStatus(err, 403, "permission_denied") {
		t.Errorf("the proposer approves: %v", err)
	}
	var sink bytes.Buffer
	if _, err := v.Client("proc").DownloadExtract(ctx, x.Seq, &sink); !isExtractStatus(err, 409, "proposal_pending") || sink.Len() != 0 {
		t.Errorf("download before the approval: %v, %d bytes", err, sink.Len())
	}
	if a, err := v.Client("approver").ApproveExtract(ctx, x.Seq); err != nil || a.Status != wire.ExtractApproved || a.ApprovedBy != "approver" || a.RecipientSHA256 != fp {
		t.Fatalf("approve: %+v, %v", a, err)
	}
	for _, u := range []string{"approver", "admin", "auditor", "tl-a", "proc-a"} {
		r := v.get(u, "/v1/extracts/1")
		if r.Status != 403 || r.Header.Get("Cache-Control") != "no-store" || r.Header.Get(wire.HeaderExtractSHA256) != "" {
			t.Errorf("%s downloads: %d %s", u, r.Status, r.Body)
		}
	}

	head := v.auditHead()
	var ct bytes.Buffer
	d, err := v.Client("proc").DownloadExtract(ctx, x.Seq, &ct)
	if err != nil {
		t.Fatal(err)
	}
	r, err := age.Decrypt(bytes.NewReader(ct.Bytes()), id)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(plain)
	if hex.EncodeToString(sum[:]) != d.SHA256 || d.Rows != 8 || d.Households != 8 || int64(bytes.Count(plain, []byte("\n"))) != d.Rows ||
		d.Format != "jsonl" || d.Bytes != int64(ct.Len()) {
		t.Errorf("download: %+v; plaintext sha256 %x, %d lines", d, sum, bytes.Count(plain, []byte("\n")))
	}
	evs := v.eventsSince(head)
	if len(evs) != 1 || evs[0].Action != "extract.download" || evs[0].ReleaseDigest != "sha256:"+d.SHA256 || evs[0].Index != d.AuditIndex ||
		!strings.HasPrefix(evs[0].Reason, "8 rows, 8 households;") {
		t.Errorf("events of the download: %+v", evs)
	}
	for _, e := range v.eventsSince(0) {
		if strings.Contains(e.Reason+e.Purpose+e.Rule+strings.Join(e.Resources, " "), "Nguyễn") {
			t.Errorf("event %d holds a name", e.Index)
		}
	}
	resp := v.get("proc", "/v1/extracts/1")
	for k, want := range map[string]string{"Content-Type": "application/age", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
		wire.HeaderExtractSHA256: d.SHA256, wire.HeaderExtractRows: "8", wire.HeaderExtractFormat: "jsonl"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("download header %s = %q, want %q", k, got, want)
		}
	}
	if bytes.Contains(resp.Body, []byte("dwelling_type")) {
		t.Error("the download's body holds plaintext")
	}

	// The list, in scope; the other answers no-store.
	for _, c := range []struct {
		user string
		n    int
	}{{"proc", 1}, {"approver", 1}, {"proc-a", 0}} {
		l, err := v.Client(c.user).Extracts(ctx)
		if err != nil || len(l.Extracts) != c.n || c.n > 0 && l.Extracts[0].RecipientSHA256 != fp {
			t.Errorf("%s lists the extracts: %+v, %v; want %d", c.user, l, err, c.n)
		}
	}
	for _, path := range []string{"/v1/extracts", "/v1/extracts/environments"} {
		if r := v.get("proc", path); r.Status != 200 || r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: %d, Cache-Control %q", path, r.Status, r.Header.Get("Cache-Control"))
		}
	}

	// Malformed: 400, one audit event each, nothing stored.
	for _, c := range []struct {
		method, path, user, body, action string
	}{
		{"POST", "/v1/extracts", "proc", `{"environment":"centre","areas":["437"],"form":"census2019","classes":["analytic"],"purpose":"x","extra":1}`, "extract.propose"},
		{"POST", "/v1/extracts", "proc", `{"environment":"centre","areas":"437","form":"census2019","classes":["analytic"],"purpose":"x"}`, "extract.propose"},
		{"POST", "/v1/extracts?x=1", "proc", `{}`, "extract.propose"},
		{"POST", "/v1/extracts", "proc", strings.Repeat(" ", 17<<10), "extract.propose"},
		{"POST", "/v1/extracts/1/approve", "approver", `{}`, "extract.approve"},
		{"POST", "/v1/extracts/01/approve", "approver", ``, "extract.approve"},
		{"GET", "/v1/extracts/x", "proc", ``, "extract.download"},
		{"GET", "/v1/extracts/0", "proc", ``, "extract.download"},
		{"GET", "/v1/extracts/1?format=csv", "proc", ``, "extract.download"},
	} {
		var r *response
		e := v.oneEvent(func() {
			r = v.do(c.method, c.path, "Bearer "+v.Tokens[c.user], strings.NewReader(c.body), map[string]string{"Content-Type": "application/json"})
		})
		if r.Status != 400 || r.Code(t) != "invalid" || r.Header.Get("Cache-Control") != "no-store" || e.Action != c.action || e.Outcome != "invalid" {
			t.Errorf("%s %s %.40q: %d %s, event %s/%s", c.method, c.path, c.body, r.Status, r.Body, e.Action, e.Outcome)
		}
	}
	if l, _ := v.B.Extracts(ctx); len(l.Extracts) != 1 {
		t.Errorf("%d extracts stored after malformed proposals", len(l.Extracts))
	}
	// Registering is refused before the body or the query is read: a
	// malformed one gets the same 403, one event.
	for _, path := range []string{"/v1/extracts/environments", "/v1/extracts/environments?x=1"} {
		var r *response
		e := v.oneEvent(func() {
			r = v.extractPost("admin", path, `{"name":"x","recipient":"age1","classes":"analytic"}`)
		})
		if r.Status != 403 || r.Code(t) != "host_only" || e.Action != "extract.environment_add" || e.Outcome != "denied" {
			t.Errorf("POST %s by the admin, malformed: %d %s, event %s/%s", path, r.Status, r.Body, e.Action, e.Outcome)
		}
	}
	if l, _ := v.B.Environments(ctx); len(l.Environments) != 1 {
		t.Errorf("%d environments stored after refused registrations", len(l.Environments))
	}
}

// TestExtractFourEyesOverHTTP: under a policy that lets processors
// approve extracts too, the proposer's own approval is 403 four_eyes,
// and another processor's goes through.
func TestExtractFourEyesOverHTTP(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{policy: policy.DefaultPolicy() + "\np, processor, extract.approve, allow\n"})
	v.extractUsers()
	id, _ := age.GenerateX25519Identity()
	if _, err := v.B.AddEnvironment(context.Background(), broker.HostOperator("cli:test"), broker.NewEnvironment{Name: "centre", Recipient: id.Recipient().String()}); err != nil {
		t.Fatalf("register: %v", err)
	}
	if r := v.extractPost("proc", "/v1/extracts", `{"environment":"centre","areas":["437"],"form":"census2019","classes":["analytic"],"format":"csv","purpose":"coding"}`); r.Status != 201 {
		t.Fatalf("propose: %d %s", r.Status, r.Body)
	}
	if r := v.extractPost("proc", "/v1/extracts/1/approve", ""); r.Status != 403 || r.Code(t) != "four_eyes" {
		t.Errorf("the proposer approves: %d %s", r.Status, r.Body)
	}
	if r := v.extractPost("proc2", "/v1/extracts/1/approve", ""); r.Status != 200 {
		t.Errorf("another processor approves: %d %s", r.Status, r.Body)
	}
	if r := v.extractPost("approver", "/v1/extracts/1/approve", ""); r.Status != 409 || r.Code(t) != "proposal_approved" {
		t.Errorf("a second approval: %d %s", r.Status, r.Body)
	}
	v.Clock.Advance(broker.ExtractLife + 1)
	if r := v.extractPost("proc", "/v1/extracts", `{"environment":"centre","areas":["437"],"form":"census2019","classes":["analytic"],"purpose":"coding"}`); r.Status != 201 {
		t.Fatalf("propose: %d %s", r.Status, r.Body)
	}
	v.Clock.Advance(broker.ExtractLife + 1)
	if r := v.extractPost("approver", "/v1/extracts/2/approve", ""); r.Status != 409 || r.Code(t) != "proposal_expired" {
		t.Errorf("a late approval: %d %s", r.Status, r.Body)
	}
}

// isStatus reports whether err is the vault's answer st with code.
func isExtractStatus(err error, st int, code string) bool {
	var se *client.StatusError
	return errors.As(err, &se) && se.Status == st && se.Code == code
}
