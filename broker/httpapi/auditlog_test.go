package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/client"
	"github.com/censusvault/censusvault/broker/httpapi"
	"github.com/censusvault/censusvault/policy"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ---- Interop: the verifying side uses golang.org/x/mod/sumdb only ----

// c2spCheckpoint is a checkpoint as a third party reads it.
type c2spCheckpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

// openC2SP verifies a signed checkpoint note with the verifier key and
// parses the C2SP tlog-checkpoint body, with note and the standard
// library only.
func openC2SP(t *testing.T, vkey string, msg []byte) c2spCheckpoint {
	t.Helper()
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatalf("note.NewVerifier(%q): %v", vkey, err)
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		t.Fatalf("note.Open: %v\n%s", err, msg)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		t.Fatalf("checkpoint body is not origin, size and root lines: %q", n.Text)
	}
	var cp c2spCheckpoint
	cp.origin = lines[0]
	if cp.origin != verifier.Name() {
		t.Errorf("checkpoint origin %q is not the key's name %q", cp.origin, verifier.Name())
	}
	if cp.size, err = strconv.ParseInt(lines[1], 10, 64); err != nil || cp.size < 1 {
		t.Fatalf("checkpoint size %q", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != len(cp.root) {
		t.Fatalf("checkpoint root %q", lines[2])
	}
	copy(cp.root[:], root)
	return cp
}

// memHashes is a tlog.HashReader over hashes kept in memory.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(m)) {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = m[x]
	}
	return out, nil
}

// publicGet is an unauthenticated GET that must not append an audit
// event.
func (v *vault) publicGet(path string) *response {
	v.t.Helper()
	head := v.auditHead()
	r := v.do(http.MethodGet, path, "", nil, nil)
	if n := v.auditHead() - head; n != 0 {
		v.t.Errorf("GET %s appended %d audit events: public routes are not audited", path, n)
	}
	return r
}

func decodeProof(t *testing.T, r *response) []tlog.Hash {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("proof: status %d: %s", r.Status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("proof Content-Type %q", ct)
	}
	var p struct {
		Hashes []string `json:"hashes"`
	}
	r.JSON(t, &p)
	if p.Hashes == nil {
		t.Fatalf(`proof without "hashes": %s`, r.Body)
	}
	out := make([]tlog.Hash, len(p.Hashes))
	for i, s := range p.Hashes {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != 32 {
			t.Fatalf("proof hash %d %q is not 32 bytes of standard base64", i, s)
		}
		copy(out[i][:], b)
	}
	return out
}

// allEvents pages through GET /v1/audit/events as the auditor and
// returns the events' exact bytes from index 0 on.
func (v *vault) allEvents() [][]byte {
	v.t.Helper()
	var out [][]byte
	for from := int64(0); from >= 0; {
		r := v.get("auditor", fmt.Sprintf("/v1/audit/events?from=%d&limit=1000", from))
		if r.Status != http.StatusOK {
			v.t.Fatalf("audit events: %d %s", r.Status, r.Body)
		}
		var p auditPage
		r.JSON(v.t, &p)
		for _, e := range p.Events {
			out = append(out, e)
		}
		from = -1
		if p.Next != nil {
			from = *p.Next
		}
	}
	return out
}

// The issue asks for this: a third party verifies checkpoints and proofs
// with golang.org/x/mod/sumdb/note and tlog alone, from what the public
// routes serve.
func TestAuditInterop(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	for i := range 5 {
		v.get("steering-a", "/v1/progress?area="+communeA)
		v.deposit("enum-a1", v.seal(encode(t, household(eaA1, i+1))))
	}

	key := v.publicGet("/v1/keys/audit")
	if key.Status != http.StatusOK {
		t.Fatalf("GET /v1/keys/audit: %d", key.Status)
	}
	vkey := strings.TrimSpace(string(key.Body))
	r := v.publicGet("/v1/audit/checkpoint")
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /v1/audit/checkpoint: %d %q: %s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	cp1 := openC2SP(t, vkey, r.Body)

	// The root is the RFC 6962 root of the events' bytes: recompute it
	// from the events as an auditor reads them, with tlog.
	events := v.allEvents()
	if int64(len(events)) < cp1.size {
		t.Fatalf("read %d events, the checkpoint covers %d", len(events), cp1.size)
	}
	var stored memHashes
	for i, e := range events {
		hs, err := tlog.StoredHashes(int64(i), e, stored)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
	}
	if root, err := tlog.TreeHash(cp1.size, stored); err != nil || root != cp1.root {
		t.Fatalf("tlog.TreeHash of the first %d events = %x, %v; the checkpoint says %x", cp1.size, root, err, cp1.root)
	}

	// Inclusion of every event of the checkpoint, checked by tlog.
	for i := int64(0); i < cp1.size; i++ {
		proof := decodeProof(t, v.publicGet(fmt.Sprintf("/v1/audit/proof/inclusion?index=%d&size=%d", i, cp1.size)))
		if err := tlog.CheckRecord(proof, cp1.size, cp1.root, i, tlog.RecordHash(events[i])); err != nil {
			t.Errorf("tlog.CheckRecord(event %d in %d): %v", i, cp1.size, err)
		}
		// And the check can fail: another event's hash is not at i.
		if err := tlog.CheckRecord(proof, cp1.size, cp1.root, i, tlog.RecordHash(events[(i+1)%cp1.size])); err == nil {
			t.Errorf("tlog.CheckRecord accepted event %d's proof for another event", i)
		}
	}

	// Grow the log, sign a newer checkpoint, prove consistency.
	for range 7 {
		v.get("auditor", "/v1/audit/events?limit=1")
	}
	if _, err := v.B.MakeCheckpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	cp2 := openC2SP(t, vkey, v.publicGet("/v1/audit/checkpoint").Body)
	if cp2.size <= cp1.size {
		t.Fatalf("the newer checkpoint has size %d, the older %d", cp2.size, cp1.size)
	}
	proof := decodeProof(t, v.publicGet(fmt.Sprintf("/v1/audit/proof/consistency?old=%d&new=%d", cp1.size, cp2.size)))
	if err := tlog.CheckTree(proof, cp2.size, cp2.root, cp1.size, cp1.root); err != nil {
		t.Errorf("tlog.CheckTree(%d → %d): %v", cp1.size, cp2.size, err)
	}
	forked := cp1.root
	forked[0] ^= 1
	if err := tlog.CheckTree(proof, cp2.size, cp2.root, cp1.size, forked); err == nil {
		t.Error("tlog.CheckTree accepted the proof for another old root")
	}
	// Every smaller size too.
	events = v.allEvents()
	stored = stored[:0]
	for i, e := range events {
		hs, _ := tlog.StoredHashes(int64(i), e, stored)
		stored = append(stored, hs...)
	}
	for old := int64(1); old <= cp2.size; old++ {
		oldRoot, err := tlog.TreeHash(old, stored)
		if err != nil {
			t.Fatal(err)
		}
		proof := decodeProof(t, v.publicGet(fmt.Sprintf("/v1/audit/proof/consistency?old=%d&new=%d", old, cp2.size)))
		if err := tlog.CheckTree(proof, cp2.size, cp2.root, old, oldRoot); err != nil {
			t.Errorf("tlog.CheckTree(%d → %d): %v", old, cp2.size, err)
		}
	}

	// A deposit's receipt proof, checked against the receipt's own leaf
	// hash and index.
	m := household(eaA2, 9)
	rc := v.receipt(v.deposit("enum-a2", v.seal(encode(t, m))), http.StatusCreated)
	pr := v.get("enum-a2", "/v1/receipts/"+m["id"].(string)+"/proof")
	if pr.Status != http.StatusOK {
		t.Fatalf("receipt proof: %d %s", pr.Status, pr.Body)
	}
	var rp struct {
		Checkpoint string   `json:"checkpoint"`
		Index      int64    `json:"index"`
		LeafHash   string   `json:"leaf_hash"`
		Hashes     []string `json:"hashes"`
	}
	pr.JSON(t, &rp)
	cp3 := openC2SP(t, vkey, []byte(rp.Checkpoint))
	if rp.Index != rc.AuditIndex || rp.LeafHash != rc.LeafHash || cp3.size <= rc.AuditIndex {
		t.Fatalf("receipt proof index %d leaf %s in a tree of %d; the receipt says %d %s", rp.Index, rp.LeafHash, cp3.size, rc.AuditIndex, rc.LeafHash)
	}
	leafBytes, err := base64.StdEncoding.DecodeString(rc.LeafHash)
	if err != nil || len(leafBytes) != 32 {
		t.Fatalf("receipt leaf hash %q", rc.LeafHash)
	}
	var leaf tlog.Hash
	copy(leaf[:], leafBytes)
	hashes := make([]tlog.Hash, len(rp.Hashes))
	for i, s := range rp.Hashes {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != 32 {
			t.Fatalf("receipt proof hash %q", s)
		}
		copy(hashes[i][:], b)
	}
	if err := tlog.CheckRecord(hashes, cp3.size, cp3.root, rc.AuditIndex, leaf); err != nil {
		t.Errorf("tlog.CheckRecord(receipt at %d in %d): %v", rc.AuditIndex, cp3.size, err)
	}
	if err := tlog.CheckRecord(hashes, cp3.size, cp3.root, rc.AuditIndex-1, leaf); err == nil {
		t.Error("the receipt proof verified at another index")
	}
}

// ---- Proof routes ----

func TestAuditProofRoutes(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	for range 4 {
		v.get("steering-a", "/v1/progress?area="+communeA)
	}
	c := v.Client("") // no token: the routes are public
	note1, err := c.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	vkey := v.B.AuditVerifierKey()
	cp1, err := audit.OpenCheckpoint(note1, vkey)
	if err != nil {
		t.Fatal(err)
	}
	recs := v.auditRecords(0)

	t.Run("inclusion proofs verify with audit.CheckInclusion", func(t *testing.T) {
		for i := int64(0); i < cp1.Size; i++ {
			p, err := c.InclusionProof(t.Context(), i, cp1.Size)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", i, cp1.Size, err)
			}
			if err := audit.CheckInclusion(p, cp1.Size, cp1.Root, i, recs[i].LeafHash); err != nil {
				t.Errorf("event %d: %v", i, err)
			}
			if err := audit.CheckInclusion(p, cp1.Size, cp1.Root, i, recs[(i+1)%cp1.Size].LeafHash); !errors.Is(err, audit.ErrProof) {
				t.Errorf("event %d's proof verified another leaf: %v", i, err)
			}
		}
	})

	t.Run("consistency proofs verify with audit.CheckConsistency", func(t *testing.T) {
		v := v.in(t)
		for range 3 {
			v.get("steering-a", "/v1/progress?area="+communeA)
		}
		cp2, err := v.B.MakeCheckpoint(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		note2, err := c.Checkpoint(t.Context())
		if err != nil || !bytes.Equal(note2, cp2.Note) {
			t.Fatalf("GET /v1/audit/checkpoint after a new one was signed: %v\n%s", err, note2)
		}
		p, err := c.ConsistencyProof(t.Context(), cp1.Size, cp2.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := audit.CheckConsistency(p, cp2.Size, cp2.Root, cp1.Size, cp1.Root); err != nil {
			t.Errorf("consistency %d → %d: %v", cp1.Size, cp2.Size, err)
		}
		other := cp1.Root
		other[31] ^= 0x80
		if err := audit.CheckConsistency(p, cp2.Size, cp2.Root, cp1.Size, other); !errors.Is(err, audit.ErrProof) {
			t.Errorf("a proof against another old root: %v, want audit.ErrProof", err)
		}
		// Equal sizes: an empty proof.
		if p, err := c.ConsistencyProof(t.Context(), cp2.Size, cp2.Size); err != nil || len(p) != 0 {
			t.Errorf("consistency %d → %d: %d hashes, %v", cp2.Size, cp2.Size, len(p), err)
		}
	})

	t.Run("bad parameters: 400, not audited", func(t *testing.T) {
		v := v.in(t)
		n := cp1.Size
		for _, q := range []string{
			"/v1/audit/proof/inclusion",
			"/v1/audit/proof/inclusion?index=0",
			"/v1/audit/proof/inclusion?size=3",
			"/v1/audit/proof/inclusion?index=&size=3",
			"/v1/audit/proof/inclusion?index=-1&size=3",
			"/v1/audit/proof/inclusion?index=%2B1&size=3",
			"/v1/audit/proof/inclusion?index=01&size=3",
			"/v1/audit/proof/inclusion?index=1.0&size=3",
			"/v1/audit/proof/inclusion?index=0x1&size=3",
			"/v1/audit/proof/inclusion?index=1%20&size=3",
			"/v1/audit/proof/inclusion?index=1&size=99999999999999999999",
			"/v1/audit/proof/inclusion?index=1&index=1&size=3",
			"/v1/audit/proof/inclusion?index=1&size=3&limit=2",
			"/v1/audit/proof/inclusion?index=1&size=3&%zz",
			fmt.Sprintf("/v1/audit/proof/inclusion?index=%d&size=%d", n, n),
			fmt.Sprintf("/v1/audit/proof/inclusion?index=%d&size=%d", n+1, n),
			"/v1/audit/proof/inclusion?index=0&size=0",
			"/v1/audit/proof/consistency",
			"/v1/audit/proof/consistency?old=1",
			"/v1/audit/proof/consistency?new=3",
			"/v1/audit/proof/consistency?old=0&new=3",
			"/v1/audit/proof/consistency?old=3&new=2",
			"/v1/audit/proof/consistency?old=a&new=3",
			"/v1/audit/proof/consistency?old=1&new=3&index=1",
			"/v1/audit/proof/consistency?old=1&old=2&new=3",
			"/v1/audit/checkpoint?size=3",
			"/v1/audit/checkpoint?x",
		} {
			r := v.publicGet(q)
			if r.Status != http.StatusBadRequest {
				t.Errorf("%s: %d, want 400: %s", q, r.Status, r.Body)
				continue
			}
			if msg, _ := r.ErrorBody(t); msg == "" {
				t.Errorf("%s: no error message", q)
			}
		}
		// A tree the log has not reached.
		for _, q := range []string{
			"/v1/audit/proof/inclusion?index=0&size=1000000",
			"/v1/audit/proof/consistency?old=1&new=1000000",
		} {
			if r := v.publicGet(q); r.Status != http.StatusNotFound {
				t.Errorf("%s: %d, want 404: %s", q, r.Status, r.Body)
			}
		}
		// Only GET.
		if r := v.do(http.MethodPost, "/v1/audit/checkpoint", "", nil, nil); r.Status != http.StatusMethodNotAllowed {
			t.Errorf("POST /v1/audit/checkpoint: %d", r.Status)
		}
	})
}

// ---- Receipt proofs ----

func TestReceiptProof(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	m := household(eaA1, 1)
	id := m["id"].(string)
	rc := v.receipt(v.deposit("enum-a1", v.seal(encode(t, m))), http.StatusCreated)
	vkey := v.B.AuditVerifierKey()

	var p *client.ReceiptProof
	ev := v.oneEvent(func() {
		var err error
		if p, err = v.Client("enum-a1").ReceiptProof(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	})
	if ev.Action != string(policy.ReadReceipt) || ev.Outcome != "ok" || !slices.Contains(ev.Resources, "submission:"+id) {
		t.Errorf("the proof request was logged as %s/%s %v", ev.Action, ev.Outcome, ev.Resources)
	}
	if p.Index != rc.AuditIndex || base64.StdEncoding.EncodeToString(p.LeafHash[:]) != rc.LeafHash {
		t.Errorf("proof for index %d leaf %x; the receipt says %d %s", p.Index, p.LeafHash, rc.AuditIndex, rc.LeafHash)
	}
	if err := client.VerifyReceiptInclusion(p, vkey); err != nil {
		t.Fatalf("VerifyReceiptInclusion: %v", err)
	}
	cp, err := audit.OpenCheckpoint(p.Checkpoint, vkey)
	if err != nil || cp.Size <= rc.AuditIndex {
		t.Fatalf("the proof's checkpoint (%d, %v) does not cover the deposit at %d", cp.Size, err, rc.AuditIndex)
	}

	// The JSON form round-trips.
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back client.ReceiptProof
	if err := json.Unmarshal(b, &back); err != nil || !bytes.Equal(back.Checkpoint, p.Checkpoint) || back.Index != p.Index ||
		back.LeafHash != p.LeafHash || !slices.Equal(back.Hashes, p.Hashes) {
		t.Errorf("ReceiptProof JSON round trip: %v\n%s", err, b)
	}

	// What must fail does.
	for name, bad := range map[string]func(q *client.ReceiptProof){
		"another leaf":      func(q *client.ReceiptProof) { q.LeafHash[0] ^= 1 },
		"another index":     func(q *client.ReceiptProof) { q.Index++ },
		"index beyond tree": func(q *client.ReceiptProof) { q.Index = cp.Size },
		"negative index":    func(q *client.ReceiptProof) { q.Index = -1 },
		"a proof hash":      func(q *client.ReceiptProof) { q.Hashes[0][5] ^= 1 },
		"a hash dropped":    func(q *client.ReceiptProof) { q.Hashes = q.Hashes[1:] },
		"checkpoint edited": func(q *client.ReceiptProof) {
			q.Checkpoint = bytes.Replace(q.Checkpoint, []byte("\n"+strconv.FormatInt(cp.Size, 10)+"\n"), []byte("\n"+strconv.FormatInt(cp.Size+1, 10)+"\n"), 1)
		},
	} {
		q := *p
		q.Checkpoint = bytes.Clone(p.Checkpoint)
		q.Hashes = slices.Clone(p.Hashes)
		bad(&q)
		if err := client.VerifyReceiptInclusion(&q, vkey); err == nil {
			t.Errorf("%s: the proof still verifies", name)
		}
	}
	if err := client.VerifyReceiptInclusion(p, v.B.ReceiptVerifierKey()); !errors.Is(err, audit.ErrCheckpointSignature) && !errors.Is(err, audit.ErrCheckpointOrigin) {
		t.Errorf("verified with the receipt key instead of the audit key: %v", err)
	}

	// Someone else's deposit, or none: 404, logged, nothing released.
	for _, k := range []struct{ user, id string }{{"enum-a1-bis", id}, {"auditor", id}, {"enum-a1", "9d1e4b7c-0000-4000-8000-000000000000"}} {
		var r *response
		ev := v.oneEvent(func() { r = v.get(k.user, "/v1/receipts/"+k.id+"/proof") })
		if r.Status != http.StatusNotFound || ev.Outcome != "denied" || bytes.Contains(r.Body, []byte("hashes")) {
			t.Errorf("%s asks for the proof of %s: %d %s/%s: %s", k.user, k.id, r.Status, ev.Action, ev.Outcome, r.Body)
		}
	}
	if r := v.do(http.MethodGet, "/v1/receipts/"+id+"/proof", "", nil, nil); r.Status != http.StatusUnauthorized {
		t.Errorf("without a token: %d", r.Status)
	}
	if r := v.get("enum-a1", "/v1/receipts/"+id+"/proof?size=3"); r.Status != http.StatusBadRequest {
		t.Errorf("with a query parameter: %d", r.Status)
	}

	// A deposit after the latest checkpoint: a new one is signed for it.
	m2 := household(eaA1, 2)
	rc2 := v.receipt(v.deposit("enum-a1", v.seal(encode(t, m2))), http.StatusCreated)
	p2, err := v.Client("enum-a1").ReceiptProof(t.Context(), m2["id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if err := client.VerifyReceiptInclusion(p2, vkey); err != nil || p2.Index != rc2.AuditIndex {
		t.Errorf("second deposit: index %d (receipt %d): %v", p2.Index, rc2.AuditIndex, err)
	}
}

// ---- Export ----

// exportOf fetches an export as user with the Go client.
func (v *vault) exportOf(user string, size int64) ([]byte, error) {
	var buf bytes.Buffer
	_, err := v.Client(user).Export(v.t.Context(), size, &buf)
	return buf.Bytes(), err
}

// exportLine is one leaf line of an export. exportLines is the tests'
// one reader of an export's leaf lines.
type exportLine struct {
	Index    int64           `json:"index"`
	Event    json.RawMessage `json:"event"`
	LeafHash string          `json:"leaf_hash"`
	Withheld string          `json:"withheld"`
}

func exportLines(t testing.TB, b []byte) []exportLine {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	var out []exportLine
	for first := true; sc.Scan(); first = false {
		if first {
			continue
		}
		var l exportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("export line %q: %v", sc.Bytes(), err)
		}
		out = append(out, l)
	}
	return out
}

func TestAuditExport(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	ctx := t.Context()
	vkey := v.B.AuditVerifierKey()
	// Activity in both communes.
	for i := range 3 {
		v.receipt(v.deposit("enum-a1", v.seal(encode(t, household(eaA1, i+1)))), http.StatusCreated)
		v.receipt(v.deposit("enum-b1", v.seal(encode(t, household(eaB1, i+1)))), http.StatusCreated)
		v.get("steering-a", "/v1/progress?area="+communeA)
		v.get("tl-b", "/v1/progress?area="+communeB)
	}
	cp0, err := v.B.MakeCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a global auditor gets every event; the export verifies and is logged", func(t *testing.T) {
		v := v.in(t)
		var b []byte
		ev := v.oneEvent(func() {
			var err error
			if b, err = v.exportOf("auditor", 0); err != nil {
				t.Fatal(err)
			}
		})
		if ev.Action != "audit.export" || ev.Outcome != "ok" || ev.Actor != "user:auditor" || ev.Decision != "allow" {
			t.Errorf("export logged as %s/%s by %s (%s)", ev.Action, ev.Outcome, ev.Actor, ev.Decision)
		}
		res, err := audit.VerifyExport(bytes.NewReader(b), audit.ExportOpts{VerifierKey: vkey, Checkpoint: cp0.Note})
		if err != nil {
			t.Fatalf("VerifyExport: %v", err)
		}
		if !slices.Contains(ev.Resources, fmt.Sprintf("checkpoint:%d", res.Size)) {
			t.Errorf("export event resources %v do not name checkpoint:%d", ev.Resources, res.Size)
		}
		if res.Size != cp0.Size || res.Events != cp0.Size || res.Withheld != 0 {
			t.Errorf("export: %d leaves, %d events, %d withheld; want %d events", res.Size, res.Events, res.Withheld, cp0.Size)
		}
		// Over plain HTTP: the type, and no caching.
		r := v.get("auditor", "/v1/audit/export")
		if r.Status != http.StatusOK || r.Header.Get("Content-Type") != httpapi.ContentTypeExport || r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("GET /v1/audit/export: %d, Content-Type %q, Cache-Control %q", r.Status, r.Header.Get("Content-Type"), r.Header.Get("Cache-Control"))
		}
	})

	t.Run("?size= picks a stored checkpoint", func(t *testing.T) {
		v := v.in(t)
		v.get("steering-a", "/v1/progress?area="+communeA)
		cp1, err := v.B.MakeCheckpoint(ctx)
		if err != nil || cp1.Size <= cp0.Size {
			t.Fatalf("MakeCheckpoint: %v", err)
		}
		b, err := v.exportOf("auditor", cp0.Size)
		if err != nil {
			t.Fatal(err)
		}
		res, err := audit.VerifyExport(bytes.NewReader(b), audit.ExportOpts{VerifierKey: vkey, Checkpoint: cp0.Note})
		if err != nil || res.Size != cp0.Size {
			t.Fatalf("export of size %d: %v", cp0.Size, err)
		}
		// The latest extends the older one.
		b, err = v.exportOf("auditor", 0)
		if err != nil {
			t.Fatal(err)
		}
		res, err = audit.VerifyExport(bytes.NewReader(b), audit.ExportOpts{VerifierKey: vkey, Checkpoint: cp1.Note, Previous: [][]byte{cp0.Note}})
		if err != nil || res.Size != cp1.Size {
			t.Fatalf("latest export: %v", err)
		}
		// No checkpoint of that size: 404, logged.
		var r *response
		ev := v.oneEvent(func() { r = v.get("auditor", fmt.Sprintf("/v1/audit/export?size=%d", cp0.Size+1)) })
		if r.Status != http.StatusNotFound || ev.Action != "audit.export" || ev.Outcome != "invalid" {
			t.Errorf("export of a size never signed: %d %s/%s: %s", r.Status, ev.Action, ev.Outcome, r.Body)
		}
	})

	t.Run("bad parameters: 400, logged", func(t *testing.T) {
		v := v.in(t)
		for _, q := range []string{"size=0", "size=-1", "size=01", "size=x", "size=1&size=2", "size=", "from=1", "size=1&x=2", "%zz"} {
			var r *response
			ev := v.oneEvent(func() { r = v.get("auditor", "/v1/audit/export?"+q) })
			if r.Status != http.StatusBadRequest || ev.Action != "audit.export" || ev.Outcome != "invalid" {
				t.Errorf("%s: %d %s/%s: %s", q, r.Status, ev.Action, ev.Outcome, r.Body)
			}
		}
	})

	t.Run("others are refused, and that is logged", func(t *testing.T) {
		v := v.in(t)
		for _, u := range []string{"enum-a1", "supervisor", "steering-vn", "researcher", "admin"} {
			var r *response
			ev := v.oneEvent(func() { r = v.get(u, "/v1/audit/export") })
			if r.Status != http.StatusForbidden || ev.Action != "audit.export" || ev.Outcome != "denied" || bytes.Contains(r.Body, []byte("checkpoint")) {
				t.Errorf("%s exports the log: %d %s/%s: %.200s", u, r.Status, ev.Action, ev.Outcome, r.Body)
			}
		}
		if r := v.do(http.MethodGet, "/v1/audit/export", "", nil, nil); r.Status != http.StatusUnauthorized {
			t.Errorf("without a token: %d", r.Status)
		}
	})

	t.Run("a scoped auditor gets out-of-scope events withheld, and it still verifies", func(t *testing.T) {
		v := v.in(t)
		tok, err := v.B.AddUser(ctx, "cli:test", broker.NewUser{Name: "auditor-b", Role: policy.Auditor, Area: communeB})
		if err != nil {
			t.Fatal(err)
		}
		v.Tokens["auditor-b"] = tok.Reveal()
		cp, err := v.B.MakeCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b, err := v.exportOf("auditor-b", cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		res, err := audit.VerifyExport(bytes.NewReader(b), audit.ExportOpts{VerifierKey: vkey, Checkpoint: cp.Note})
		if err != nil {
			t.Fatalf("the scoped export does not verify: %v", err)
		}
		if res.Events == 0 || res.Withheld == 0 || res.Events+res.Withheld != cp.Size {
			t.Errorf("scoped export: %d events, %d withheld of %d", res.Events, res.Withheld, cp.Size)
		}
		tree := v.B.Tree()
		inB := func(a string) bool { return a != "" && slices.Contains(tree.PathStrings(area.Code(a)), communeB) }
		stored := v.auditRecords(0)
		sawB := false
		for _, l := range exportLines(t, b) {
			e, err := audit.Decode(stored[l.Index].Event)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case l.Withheld == "" && !inB(e.Area):
				t.Errorf("event %d (%s, area %q) released to an auditor of %s", l.Index, e.Action, e.Area, communeB)
			case l.Withheld != "" && inB(e.Area):
				t.Errorf("event %d (%s, area %q) withheld (%s) from an auditor of %s", l.Index, e.Action, e.Area, l.Withheld, communeB)
			case l.Withheld != "" && l.Withheld != string(audit.WithheldOutOfScope):
				t.Errorf("event %d withheld as %q", l.Index, l.Withheld)
			case l.Withheld == "":
				sawB = true
				if !bytes.Equal(l.Event, stored[l.Index].Event) {
					t.Errorf("event %d exported with other bytes", l.Index)
				}
			}
		}
		if !sawB {
			t.Error("the scoped auditor saw no event of its commune")
		}
	})

	t.Run("pruned events are withheld, and the export still verifies against older checkpoints", func(t *testing.T) {
		v := v.in(t)
		before, err := v.B.MakeCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cut := int64(10)
		n, err := v.B.PruneAudit(ctx, "cli:test", cut)
		if err != nil || n != cut {
			t.Fatalf("PruneAudit(%d) = %d, %v", cut, n, err)
		}
		if _, err := v.B.MakeCheckpoint(ctx); err != nil {
			t.Fatal(err)
		}
		b, err := v.exportOf("auditor", 0)
		if err != nil {
			t.Fatal(err)
		}
		res, err := audit.VerifyExport(bytes.NewReader(b), audit.ExportOpts{VerifierKey: vkey, Previous: [][]byte{cp0.Note, before.Note}})
		if err != nil {
			t.Fatalf("export after pruning: %v", err)
		}
		if res.Withheld != cut {
			t.Errorf("%d withheld leaves after pruning %d", res.Withheld, cut)
		}
		for _, l := range exportLines(t, b) {
			if pruned := l.Index < cut; pruned != (l.Withheld == string(audit.WithheldPruned)) {
				t.Errorf("line of event %d: withheld %q", l.Index, l.Withheld)
			}
		}
		// The older export of the same size carried the events: its tree
		// is the same.
		old, err := v.exportOf("auditor", cp0.Size)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := audit.VerifyExport(bytes.NewReader(old), audit.ExportOpts{VerifierKey: vkey, Checkpoint: cp0.Note}); err != nil {
			t.Errorf("export of the first checkpoint after pruning: %v", err)
		}
		// Search skips pruned events.
		evs, _, err := v.Client("auditor").AuditSearch(ctx, client.AuditQuery{Limit: 5})
		if err != nil || len(evs) == 0 {
			t.Fatalf("search after pruning: %d events, %v", len(evs), err)
		}
		if e, err := audit.Decode(evs[0]); err != nil || e.Index != cut {
			t.Errorf("the first event searchable after pruning %d is %v (%v)", cut, e, err)
		}
	})
}

// An export that fails midway is visibly broken: the client sees the body
// end early, and what it got fails verification at the missing event.
func TestAuditExportFailsVisibly(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	ctx := t.Context()
	vkey := v.B.AuditVerifierKey()
	// Enough events that the export is sent before the failure: each
	// line is a few hundred bytes, the server gathers 64 KiB first.
	// (Spread over three users, each well within the rate limit.)
	for i := range 400 {
		v.get([]string{"steering-a", "steering-town", "steering-vn"}[i%3], "/v1/progress?area="+communeA)
	}
	cp, err := v.B.MakeCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := v.exportOf("auditor", 0); err != nil || len(b) < 3*64<<10 {
		t.Fatalf("setup: export of %d bytes, %v; want well over 64 KiB", len(b), err)
	}
	db := v.rawDB()
	if _, err := db.Exec(`DROP TRIGGER audit_events_no_delete`); err != nil {
		t.Fatal(err)
	}

	// A record missing near the end: the failure comes after the answer
	// started.
	late := cp.Size - 5
	if _, err := db.Exec(`DELETE FROM audit_events WHERE idx = ?`, late); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := v.Client("auditor").Export(ctx, cp.Size, &buf)
	if err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Fatalf("Export with a record missing at %d: %d bytes, err %v; want it reported cut short", late, n, err)
	}
	if n == 0 || int64(buf.Len()) != n {
		t.Fatalf("Export wrote %d bytes, reported %d", buf.Len(), n)
	}
	_, err = audit.VerifyExport(&buf, audit.ExportOpts{VerifierKey: vkey, Checkpoint: cp.Note})
	var ve *audit.VerifyError
	if !errors.As(err, &ve) || ve.Index != late || !strings.Contains(ve.Problem, "truncated") {
		t.Errorf("the partial export: %v; want truncation at %d", err, late)
	}
	// A plain HTTP client sees it too: status 200, then a body that ends
	// before its terminating chunk.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, v.URL+"/v1/audit/export", nil)
	req.Header.Set("Authorization", "Bearer "+v.Tokens["auditor"])
	resp, err := v.Server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, rerr := readBody(resp)
	if resp.StatusCode != http.StatusOK || rerr == nil {
		t.Errorf("plain GET: %d, body read error %v; want 200 and a broken body", resp.StatusCode, rerr)
	}

	// A record missing at the start: the failure comes before the first
	// send, and still the lines before it reach the client, then the
	// broken body.
	if _, err := db.Exec(`DELETE FROM audit_events WHERE idx = 2`); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if _, err := v.Client("auditor").Export(ctx, 0, &buf); err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Errorf("Export with record 2 missing: %v", err)
	}
	_, err = audit.VerifyExport(&buf, audit.ExportOpts{VerifierKey: vkey})
	if !errors.As(err, &ve) || ve.Index != 2 || !strings.Contains(ve.Problem, "truncated") {
		t.Errorf("the partial export: %v; want truncation at 2", err)
	}
	// What fails before the export begins is an ordinary answer.
	r := v.get("auditor", fmt.Sprintf("/v1/audit/export?size=%d", cp.Size+1000))
	if r.Status != http.StatusNotFound || r.Header.Get("Content-Type") == httpapi.ContentTypeExport {
		t.Errorf("export of a size never signed: %d %q: %.200s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
}

// ---- Search filters ----

func TestAuditSearchFilters(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	ctx := t.Context()
	// Known traffic, an hour apart from the setup.
	v.Clock.Advance(time.Hour)
	t1 := v.Clock.Now()
	mA := household(eaA1, 1)
	v.receipt(v.deposit("enum-a1", v.seal(encode(t, mA))), http.StatusCreated)
	v.get("steering-a", "/v1/progress?area="+communeB) // denied
	v.Clock.Advance(time.Hour)
	t2 := v.Clock.Now()
	mB := household(eaB1, 1)
	v.receipt(v.deposit("enum-b1", v.seal(encode(t, mB))), http.StatusCreated)
	v.get("enum-a1", "/v1/receipts/"+mA["id"].(string))
	v.deposit("enum-a1", v.seal([]byte("{}"))) // invalid

	tree := v.B.Tree()
	all := v.eventsSince(0)
	type filter struct {
		name  string
		q     client.AuditQuery
		match func(e *audit.Event) bool
		want  func(e *audit.Event) bool // an event the results must hold
	}
	idA := "submission:" + mA["id"].(string)
	filters := []filter{
		{"actor", client.AuditQuery{Actor: "user:enum-b1"},
			func(e *audit.Event) bool { return e.Actor == "user:enum-b1" },
			func(e *audit.Event) bool { return e.Action == "submission.deposit" }},
		{"role", client.AuditQuery{Role: string(policy.Steering)},
			func(e *audit.Event) bool { return slices.Contains(e.Roles, string(policy.Steering)) },
			func(e *audit.Event) bool { return e.Action == "progress.read" }},
		{"action", client.AuditQuery{Action: "submission.deposit"},
			func(e *audit.Event) bool { return e.Action == "submission.deposit" },
			func(e *audit.Event) bool { return e.Actor == "user:enum-b1" }},
		{"area", client.AuditQuery{Area: communeA},
			func(e *audit.Event) bool { return slices.Contains(tree.PathStrings(area.Code(e.Area)), communeA) },
			func(e *audit.Event) bool { return e.Area == eaA1 && e.Action == "submission.deposit" }},
		{"decision deny", client.AuditQuery{Decision: "deny"},
			func(e *audit.Event) bool { return e.Decision == "deny" },
			func(e *audit.Event) bool { return e.Actor == "user:steering-a" }},
		{"decision allow", client.AuditQuery{Decision: "allow"},
			func(e *audit.Event) bool { return e.Decision == "allow" },
			func(e *audit.Event) bool { return e.Actor == "user:enum-b1" }},
		{"outcome", client.AuditQuery{Outcome: "invalid"},
			func(e *audit.Event) bool { return e.Outcome == "invalid" },
			func(e *audit.Event) bool { return e.Actor == "user:enum-a1" }},
		{"resource", client.AuditQuery{Resource: idA},
			func(e *audit.Event) bool { return slices.Contains(e.Resources, idA) },
			func(e *audit.Event) bool { return e.Action == string(policy.ReadReceipt) }},
		{"since", client.AuditQuery{Since: t2},
			func(e *audit.Event) bool { return !e.Time.Before(t2) },
			func(e *audit.Event) bool { return e.Actor == "user:enum-b1" }},
		{"until", client.AuditQuery{Until: t1},
			func(e *audit.Event) bool { return e.Time.Before(t1) },
			func(e *audit.Event) bool { return e.Action == "user.add" }},
		{"since and until", client.AuditQuery{Since: t1, Until: t2},
			func(e *audit.Event) bool { return !e.Time.Before(t1) && e.Time.Before(t2) },
			func(e *audit.Event) bool { return e.Actor == "user:enum-a1" && e.Action == "submission.deposit" }},
		{"two filters", client.AuditQuery{Action: "submission.deposit", Outcome: "ok", Area: communeB},
			func(e *audit.Event) bool {
				return e.Action == "submission.deposit" && e.Outcome == "ok" && slices.Contains(tree.PathStrings(area.Code(e.Area)), communeB)
			},
			func(e *audit.Event) bool { return e.Actor == "user:enum-b1" }},
	}
	for _, f := range filters {
		t.Run(f.name, func(t *testing.T) {
			// Every page, from the start.
			var got []*audit.Event
			q := f.q
			q.Limit = 3
			for pages := 0; ; pages++ {
				if pages > 100 {
					t.Fatal("paging does not end")
				}
				evs, next, err := v.Client("auditor").AuditSearch(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				for _, b := range evs {
					e, err := audit.Decode(b)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, e)
				}
				if next < 0 {
					break
				}
				q.From = next
			}
			// Exactly the matching events of the log as it was.
			var want []int64
			for _, e := range all {
				if f.match(e) {
					want = append(want, e.Index)
				}
			}
			var gotIdx []int64
			held := false
			for _, e := range got {
				if !f.match(e) {
					t.Errorf("event %d (%s by %s, %s/%s, area %q, %s) does not match the filter", e.Index, e.Action, e.Actor, e.Decision, e.Outcome, e.Area, e.Time)
				}
				held = held || f.want(e)
				if e.Index < int64(len(all)) {
					gotIdx = append(gotIdx, e.Index)
				}
			}
			if !slices.Equal(gotIdx, want) {
				t.Errorf("indexes %v, want %v", gotIdx, want)
			}
			if !held {
				t.Error("the results miss the event the filter was made for")
			}
			if len(want) == 0 || len(want) >= len(all) {
				t.Errorf("the filter matches %d of %d events: it does not narrow", len(want), len(all))
			}
		})
	}

	t.Run("the query is logged with the read", func(t *testing.T) {
		v := v.in(t)
		ev := v.oneEvent(func() {
			if _, _, err := v.Client("auditor").AuditSearch(ctx, client.AuditQuery{Actor: "user:enum-b1", Outcome: "ok"}); err != nil {
				t.Fatal(err)
			}
		})
		if ev.Action != "audit.read" || !slices.Contains(ev.Resources, "filter:actor=user:enum-b1") || !slices.Contains(ev.Resources, "filter:outcome=ok") {
			t.Errorf("search logged as %s %v", ev.Action, ev.Resources)
		}
	})

	t.Run("bad filters: 400, logged", func(t *testing.T) {
		v := v.in(t)
		for _, q := range []string{"decision=maybe", "since=yesterday", "until=2019-04-10", "area=nowhere", "colour=red",
			"actor=a&actor=b", "resource=" + url.QueryEscape(strings.Repeat("x", 300))} {
			var r *response
			ev := v.oneEvent(func() { r = v.get("auditor", "/v1/audit/events?"+q) })
			if r.Status != http.StatusBadRequest || ev.Outcome != "invalid" {
				t.Errorf("%s: %d %s/%s: %s", q, r.Status, ev.Action, ev.Outcome, r.Body)
			}
		}
	})

	t.Run("a scoped auditor's search sees its subtree only", func(t *testing.T) {
		v := v.in(t)
		tok, err := v.B.AddUser(ctx, "cli:test", broker.NewUser{Name: "auditor-a", Role: policy.Auditor, Area: communeA})
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.New(client.Opts{BaseURL: v.URL, Token: tok.Reveal(), HTTP: v.Server.Client()})
		if err != nil {
			t.Fatal(err)
		}
		evs, _, err := c.AuditSearch(ctx, client.AuditQuery{Action: "submission.deposit", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		sawA := false
		for _, b := range evs {
			e, _ := audit.Decode(b)
			if !slices.Contains(tree.PathStrings(area.Code(e.Area)), communeA) {
				t.Errorf("auditor of %s sees event %d of area %q", communeA, e.Index, e.Area)
			}
			sawA = sawA || e.Area == eaA1
		}
		if !sawA {
			t.Error("the scoped auditor does not see its own commune's deposits")
		}
	})
}

// readBody reads a response body whole, returning the read error.
func readBody(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err := buf.ReadFrom(resp.Body)
	return buf.Bytes(), err
}
