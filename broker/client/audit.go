package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/censusvault/censusvault/audit"
)

// maxProofHashes bounds a proof the client accepts: a proof in a tree of
// at most 2⁶³ leaves has at most 2·63 hashes.
const maxProofHashes = 128

// Checkpoint fetches the latest signed checkpoint of the audit log, a
// C2SP signed note. The route is public. The note is not verified here:
// open it with audit.OpenCheckpoint and the audit verifier key, obtained
// independently of this server where it matters.
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/audit/checkpoint", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	// A checkpoint is about a hundred bytes and its signatures; the
	// audit package refuses notes over 64 KiB.
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp.StatusCode, b)
	}
	if len(b) > 64<<10 {
		return nil, errors.New("client: the checkpoint is over 64 KiB: not a checkpoint")
	}
	return b, nil
}

// InclusionProof fetches the RFC 6962 proof that audit event index is in
// the tree of the log's first size events (the size of a checkpoint). The
// route is public. Check it with audit.CheckInclusion against that
// checkpoint's root.
func (c *Client) InclusionProof(ctx context.Context, index, size int64) ([][32]byte, error) {
	return c.proof(ctx, "/v1/audit/proof/inclusion?index="+strconv.FormatInt(index, 10)+"&size="+strconv.FormatInt(size, 10))
}

// ConsistencyProof fetches the RFC 6962 proof that the tree of the log's
// first newSize events extends the tree of its first oldSize events. The
// route is public. Check it with audit.CheckConsistency against the two
// checkpoints' roots.
func (c *Client) ConsistencyProof(ctx context.Context, oldSize, newSize int64) ([][32]byte, error) {
	return c.proof(ctx, "/v1/audit/proof/consistency?old="+strconv.FormatInt(oldSize, 10)+"&new="+strconv.FormatInt(newSize, 10))
}

func (c *Client) proof(ctx context.Context, path string) ([][32]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	var out struct {
		Hashes []string `json:"hashes"`
	}
	// Public: sent without the token.
	if _, err := c.doWith(req, &out, false); err != nil {
		return nil, err
	}
	if out.Hashes == nil {
		return nil, errors.New(`client: bad response: no "hashes"`)
	}
	return decodeHashes(out.Hashes)
}

func decodeHashes(in []string) ([][32]byte, error) {
	if len(in) > maxProofHashes {
		return nil, fmt.Errorf("client: bad response: a proof of %d hashes (at most %d)", len(in), maxProofHashes)
	}
	out := make([][32]byte, len(in))
	for i, s := range in {
		h, err := decodeHash(s)
		if err != nil {
			return nil, fmt.Errorf("client: bad response: proof hash %d: %w", i, err)
		}
		out[i] = h
	}
	return out, nil
}

func decodeHash(s string) ([32]byte, error) {
	var h [32]byte
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, errors.New("not a SHA-256 hash in standard base64")
	}
	copy(h[:], b)
	return h, nil
}

// ReceiptProof is the proof that a deposit's audit event is in the log:
// the signed checkpoint it is proved against, the event's index and leaf
// hash (both also in the deposit's signed receipt), and the RFC 6962
// inclusion proof. Its JSON form is the body of GET
// /v1/receipts/{id}/proof, hashes in standard base64.
type ReceiptProof struct {
	Checkpoint []byte // C2SP signed note, signed with the audit key
	Index      int64
	LeafHash   [32]byte
	Hashes     [][32]byte
}

type receiptProofJSON struct {
	Checkpoint string   `json:"checkpoint"`
	Index      int64    `json:"index"`
	LeafHash   string   `json:"leaf_hash"`
	Hashes     []string `json:"hashes"`
}

// MarshalJSON writes the proof as the vault sends it.
func (p ReceiptProof) MarshalJSON() ([]byte, error) {
	hs := make([]string, len(p.Hashes))
	for i, h := range p.Hashes {
		hs[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(receiptProofJSON{Checkpoint: string(p.Checkpoint), Index: p.Index,
		LeafHash: base64.StdEncoding.EncodeToString(p.LeafHash[:]), Hashes: hs})
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), err
}

// UnmarshalJSON reads the proof as the vault sends it, strictly: every
// field present, hashes of 32 bytes.
func (p *ReceiptProof) UnmarshalJSON(b []byte) error {
	var w struct {
		Checkpoint *string  `json:"checkpoint"`
		Index      *int64   `json:"index"`
		LeafHash   *string  `json:"leaf_hash"`
		Hashes     []string `json:"hashes"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.Checkpoint == nil || w.Index == nil || w.LeafHash == nil || w.Hashes == nil {
		return errors.New(`a receipt proof needs "checkpoint", "index", "leaf_hash" and "hashes"`)
	}
	leaf, err := decodeHash(*w.LeafHash)
	if err != nil {
		return fmt.Errorf("leaf_hash: %w", err)
	}
	hs, err := decodeHashes(w.Hashes)
	if err != nil {
		return err
	}
	*p = ReceiptProof{Checkpoint: []byte(*w.Checkpoint), Index: *w.Index, LeafHash: leaf, Hashes: hs}
	return nil
}

// ReceiptProof fetches the proof that the caller's own deposit id is in
// the audit log, against the latest checkpoint. Like the receipt, it is
// shown to the depositor only, and the request is audited. Check it
// offline with VerifyReceiptInclusion.
func (c *Client) ReceiptProof(ctx context.Context, id string) (*ReceiptProof, error) {
	var p ReceiptProof
	if err := c.getJSON(ctx, "/v1/receipts/"+url.PathEscape(id)+"/proof", &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// VerifyReceiptInclusion checks a receipt proof offline: the checkpoint
// must carry a valid signature by auditVerifierKey (the vault's audit
// verifier key, "<name>+<hash>+<key data>", from GET /v1/keys/audit or,
// better, from whoever vouches for the vault) with the key's name as its
// origin, and the proof must show the leaf hash at the index in the
// checkpoint's tree. It does not tie the leaf to a deposit: compare
// proof.Index and proof.LeafHash with the deposit's signed receipt.
func VerifyReceiptInclusion(proof *ReceiptProof, auditVerifierKey string) error {
	if proof == nil {
		return errors.New("no receipt proof")
	}
	cp, err := audit.OpenCheckpoint(proof.Checkpoint, auditVerifierKey)
	if err != nil {
		return fmt.Errorf("receipt proof: %w", err)
	}
	if proof.Index < 0 || proof.Index >= cp.Size {
		return fmt.Errorf("receipt proof: audit index %d is not in the checkpoint's tree of %d events", proof.Index, cp.Size)
	}
	if err := audit.CheckInclusion(proof.Hashes, cp.Size, cp.Root, proof.Index, proof.LeafHash); err != nil {
		return fmt.Errorf("receipt proof: audit event %d is not in the signed log: %w", proof.Index, err)
	}
	return nil
}

// Export streams the audit log as of the signed checkpoint of size events
// (0: the latest) to w, as JSON Lines (package audit's export format), and
// returns the bytes written. The caller must be an auditor; a
// subtree-scoped one gets the events outside the subtree as withheld
// leaves. The request is audited.
//
// The export is written to w as it arrives. If the vault fails midway it
// breaks the connection, and Export returns an error saying the export
// was cut short: what reached w is incomplete and fails
// audit.VerifyExport, which names where it ends. Export is never retried,
// and the client's HTTP timeout (Opts.HTTP) bounds the whole transfer:
// give New an http.Client without Timeout for a large log and bound it
// with ctx instead.
func (c *Client) Export(ctx context.Context, size int64, w io.Writer) (int64, error) {
	if size < 0 {
		return 0, errors.New("client: export size must be ≥ 0 (0: the latest checkpoint)")
	}
	path := "/v1/audit/export"
	if size > 0 {
		path += "?size=" + strconv.FormatInt(size, 10)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return 0, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return 0, statusError(resp.StatusCode, b)
	}
	body := &bodyReader{r: resp.Body}
	n, err := io.Copy(w, body)
	switch {
	case body.err != nil:
		return n, fmt.Errorf("client: the export was cut short after %d bytes (%v): what was written is incomplete and will not verify", n, body.err)
	case err != nil:
		return n, fmt.Errorf("client: writing the export: %w", err)
	}
	return n, nil
}

// bodyReader remembers a read error, so that Export can tell a broken
// download from a failed write.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// AuditQuery selects audit events for AuditSearch. Zero fields match
// everything.
type AuditQuery struct {
	From     int64 // first index to look at
	Limit    int   // most events to return: 1…1000; 0: the vault's default (100)
	Actor    string
	Role     string
	Action   string
	Area     string // events about this area or below it
	Decision string // allow or deny
	Outcome  string
	Resource string // e.g. "submission:UUID" or "project:p1"
	Since    time.Time
	Until    time.Time // exclusive
}

// Values is the query as GET /v1/audit/events parameters.
func (q AuditQuery) Values() url.Values {
	v := url.Values{}
	if q.From != 0 {
		v.Set("from", strconv.FormatInt(q.From, 10))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	for _, kv := range [][2]string{{"actor", q.Actor}, {"role", q.Role}, {"action", q.Action}, {"area", q.Area},
		{"decision", q.Decision}, {"outcome", q.Outcome}, {"resource", q.Resource}} {
		if kv[1] != "" {
			v.Set(kv[0], kv[1])
		}
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.Format(time.RFC3339Nano))
	}
	return v
}

// AuditSearch fetches a page of audit events matching q, as their exact
// canonical bytes (decode them with audit.Decode), and the index to ask
// for next (q.From = next), or -1 at the end of the log. A page may hold
// fewer than q.Limit events, even none, and still have a next: the vault
// looks at a bounded number of events per call. The search is audited.
func (c *Client) AuditSearch(ctx context.Context, q AuditQuery) (events []json.RawMessage, next int64, err error) {
	var out struct {
		Events []json.RawMessage `json:"events"`
		Next   *int64            `json:"next"`
	}
	path := "/v1/audit/events"
	if v := q.Values(); len(v) > 0 {
		path += "?" + v.Encode()
	}
	if err := c.getJSON(ctx, path, &out); err != nil {
		return nil, 0, err
	}
	next = -1
	if out.Next != nil {
		next = *out.Next
	}
	return out.Events, next, nil
}
