// Package client is a Go client of the vault's HTTP API, as a field device
// or a desk tool would use it. Deposits are encrypted on the client with
// age to the vault's ingest recipient; they are retried on network errors
// and 503 with the same bytes, which the vault answers idempotently, so a
// retry after a lost reply returns the original receipt. Research tables
// (RequestTable) are never retried: each release spends the project's cell
// budget.
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/censusvault/censusvault/broker/wire"
)

// Client talks to one vault as one user.
type Client struct {
	base  string
	token string
	http  *http.Client
	// Retries is how many times a deposit is retried after a network
	// error, a 503 or a 429 (default 5), with backoff from 100 ms, or
	// after the Retry-After the vault asked for if longer (at most 5
	// minutes a retry).
	Retries int
}

// Opts configure New.
type Opts struct {
	BaseURL string // e.g. http://127.0.0.1:8440
	Token   string
	HTTP    *http.Client // nil: a client with a 30 s timeout
	// CA is PEM certificates an https server's chain must end in,
	// instead of the system's roots: the census office's own CA, or the
	// server's self-signed certificate itself (`serve --dev-tls`), which
	// pins it. The client's transport (HTTP's, when it is an
	// *http.Transport or nil) is copied with it; TLS 1.2 at least.
	CA []byte
	// InsecureHTTP lets a client with a token talk plain http to a host
	// other than this one's loopback (a trusted network behind a
	// TLS-terminating proxy). Without it New refuses: the bearer token
	// would cross the network in clear.
	InsecureHTTP bool
}

// ErrPlainHTTP is returned by New for a client with a token whose base URL
// is plain http to a non-loopback host, without InsecureHTTP.
var ErrPlainHTTP = errors.New("client: refusing to send a bearer token over plain http to a host that is not this machine's loopback: use https (or, on a trusted network behind a TLS-terminating proxy, InsecureHTTP)")

// New returns a client.
func New(o Opts) (*Client, error) {
	u, err := url.Parse(o.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: bad base URL %q", o.BaseURL)
	}
	if u.Scheme == "http" && o.Token != "" && !o.InsecureHTTP && !loopback(u.Hostname()) {
		return nil, ErrPlainHTTP
	}
	hc := o.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	if len(o.CA) > 0 {
		if hc, err = withCA(hc, o.CA); err != nil {
			return nil, err
		}
	}
	return &Client{base: strings.TrimSuffix(o.BaseURL, "/"), token: o.Token, http: hc, Retries: 5}, nil
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Status   int
	Code     string // the vault's stable machine code ("unavailable", "receipt_corrupt", …)
	Message  string
	Problems []string
	// RetryAfter is the wait the vault asked for (Retry-After, in
	// seconds) with a 429 or 503; 0 when it gave none.
	RetryAfter time.Duration
}

// Temporary reports whether the same request may succeed later: a 503 (a
// database, key provider or audit log outage; nothing was stored) or a
// 429 (the caller's rate limit: nothing was done). Every other answer, a
// 500 such as receipt_corrupt included, is permanent: retrying it would
// repeat the same answer forever.
func (e *StatusError) Temporary() bool {
	return e.Status == http.StatusServiceUnavailable || e.Status == http.StatusTooManyRequests
}

// maxRetryAfter caps the wait a Retry-After may impose on one retry.
const maxRetryAfter = 5 * time.Minute

func (e *StatusError) Error() string {
	if len(e.Problems) > 0 {
		return fmt.Sprintf("HTTP %d: %s (%s)", e.Status, e.Message, strings.Join(e.Problems, "; "))
	}
	return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message)
}

// Recipient fetches the ingest recipient.
func (c *Client) Recipient(ctx context.Context) (*age.HybridRecipient, error) {
	b, err := c.getText(ctx, "/v1/ingest/recipient")
	if err != nil {
		return nil, err
	}
	return age.ParseHybridRecipient(strings.TrimSpace(b))
}

// VerifierKey fetches a note verifier key: "receipt" or "audit".
func (c *Client) VerifierKey(ctx context.Context, which string) (string, error) {
	b, err := c.getText(ctx, "/v1/keys/"+which)
	return strings.TrimSpace(b), err
}

// Encrypt encrypts a submission's JSON to r.
func Encrypt(r age.Recipient, plaintext []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plaintext); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DepositResult is the vault's answer to a deposit.
type DepositResult struct {
	Receipt wire.Receipt
	Created bool // 201: stored now; false: 200, it was already stored
}

// Deposit posts an encrypted submission, retrying on network errors, 503
// and 429 with the same bytes (the deposit is idempotent).
func (c *Client) Deposit(ctx context.Context, ciphertext []byte) (*DepositResult, error) {
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		res, err := c.depositOnce(ctx, ciphertext)
		var se *StatusError
		retry := err != nil && (!errors.As(err, &se) || se.Temporary())
		if !retry || attempt >= c.Retries || ctx.Err() != nil {
			return res, err
		}
		wait := backoff
		if se != nil && se.RetryAfter > wait {
			// Rate-limited or told when to come back: wait as asked
			// (bounded), or the retry is refused again at once.
			wait = min(se.RetryAfter, maxRetryAfter)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		backoff *= 2
	}
}

func (c *Client) depositOnce(ctx context.Context, ciphertext []byte) (*DepositResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/submissions", bytes.NewReader(ciphertext))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	var res DepositResult
	st, err := c.do(req, &res.Receipt)
	if err != nil {
		return nil, err
	}
	res.Created = st == http.StatusCreated
	return &res, nil
}

// Progress fetches a progress report.
func (c *Client) Progress(ctx context.Context, area string, depth int) (*wire.ProgressReport, error) {
	q := url.Values{}
	if area != "" {
		q.Set("area", area)
	}
	q.Set("depth", fmt.Sprint(depth))
	var rep wire.ProgressReport
	if err := c.getJSON(ctx, "/v1/progress?"+q.Encode(), &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// Receipt fetches the caller's own receipt of a submission.
func (c *Client) Receipt(ctx context.Context, id string) (*wire.Receipt, error) {
	var r wire.Receipt
	if err := c.getJSON(ctx, "/v1/receipts/"+url.PathEscape(id), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// AuditEvents fetches a page of audit events (their exact bytes).
func (c *Client) AuditEvents(ctx context.Context, from int64, limit int) (events []json.RawMessage, next int64, err error) {
	var out struct {
		Events []json.RawMessage `json:"events"`
		Next   *int64            `json:"next"`
	}
	if err := c.getJSON(ctx, fmt.Sprintf("/v1/audit/events?from=%d&limit=%d", from, limit), &out); err != nil {
		return nil, 0, err
	}
	next = -1
	if out.Next != nil {
		next = *out.Next
	}
	return out.Events, next, nil
}

// TableResponse is a released research table and what the vault says of
// it.
type TableResponse struct {
	Body        []byte // the table, or its age encryption when Encrypted
	ContentType string // the plaintext table's type: application/json or text/csv (with its charset)
	Encrypted   bool   // Body is age-encrypted to the caller's registered recipient
	Digest      string // "sha256:" + hex SHA-256 of the plaintext table, as the audit log holds it
	AuditIndex  int64  // the audit event of the release
	AsOf        int64  // the point of the deposit sequence its publication point was made at
	Point       string // the publication point it was computed at
	Cells       int64  // cells released and debited from the project's budget (0 for a repeat)
	Remaining   int64  // the project's budget left after this table
	// Rho is a dp table's ρ (a custom table under differential
	// privacy), "" for a standard table; Repeat says the dp table
	// repeats a query answered before at the same point: the same table,
	// charged to neither the budget nor the privacy ledger.
	Rho    string
	Repeat bool
}

// MaxTableBytes bounds a table response the client reads.
const MaxTableBytes = 64 << 20

// RequestTable sends a table request (body: the JSON request: a
// standard table of the catalogue, or a custom one, which the vault
// answers under differential privacy) and returns the table. format is
// wire.TableJSON ("" too) or wire.TableCSV; with encrypt the vault
// encrypts the table to the caller's registered age recipient. A table
// request spends the project's cell budget (and a dp table the privacy
// ledger), so it is never retried. The digest of a plaintext table is
// checked here; that of an encrypted one can be checked only after
// decryption (VerifyTable).
func (c *Client) RequestTable(ctx context.Context, body []byte, format string, encrypt bool) (*TableResponse, error) {
	accept := "application/json"
	switch format {
	case "", wire.TableJSON:
	case wire.TableCSV:
		accept = "text/csv"
	default:
		return nil, fmt.Errorf("client: table format %q: use %q or %q", format, wire.TableJSON, wire.TableCSV)
	}
	path := "/v1/tables"
	if encrypt {
		path += "?encrypt=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", accept)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxTableBytes+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp.StatusCode, b)
	}
	if len(b) > MaxTableBytes {
		return nil, fmt.Errorf("client: the table is over %d bytes", MaxTableBytes)
	}
	h := resp.Header
	t := &TableResponse{Body: b, ContentType: h.Get("Content-Type"), Digest: h.Get("X-Censusvault-Table-Digest")}
	if t.ContentType == "application/age" {
		t.Encrypted, t.ContentType = true, h.Get("X-Censusvault-Content-Type")
	}
	if encrypt != t.Encrypted {
		return nil, fmt.Errorf("client: asked for an encrypted table %v, got one encrypted %v", encrypt, t.Encrypted)
	}
	if !strings.HasPrefix(t.ContentType, "application/json") && !strings.HasPrefix(t.ContentType, "text/csv") {
		return nil, fmt.Errorf("client: the table's content type %q is neither JSON nor CSV", t.ContentType)
	}
	if !validDigest(t.Digest) {
		return nil, errors.New("client: the response has no valid X-Censusvault-Table-Digest")
	}
	for _, f := range []struct {
		name string
		dst  *int64
	}{
		{"X-Censusvault-Audit-Index", &t.AuditIndex}, {"X-Censusvault-As-Of", &t.AsOf},
		{"X-Censusvault-Cells", &t.Cells}, {"X-Censusvault-Budget-Remaining", &t.Remaining},
	} {
		v, err := strconv.ParseInt(h.Get(f.name), 10, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("client: the response has no valid %s", f.name)
		}
		*f.dst = v
	}
	t.Point = h.Get("X-Censusvault-Point")
	t.Rho = h.Get("X-Censusvault-Rho")
	switch h.Get("X-Censusvault-Repeat") {
	case "":
	case "true":
		if t.Rho == "" {
			return nil, errors.New("client: the response says it repeats a dp table but names no X-Censusvault-Rho")
		}
		t.Repeat = true
	default:
		return nil, errors.New("client: the response has no valid X-Censusvault-Repeat")
	}
	if !t.Encrypted {
		if err := VerifyTable(t.Body, t.Digest); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// VerifyTable checks that a plaintext table has the digest the vault
// logged for it ("sha256:" + hex).
func VerifyTable(plain []byte, digest string) error {
	sum := sha256.Sum256(plain)
	if "sha256:"+hex.EncodeToString(sum[:]) != digest {
		return errors.New("the table does not match its logged digest: it was altered or truncated on the way")
	}
	return nil
}

func validDigest(d string) bool {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil && strings.ToLower(h) == h
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	_, err = c.do(req, v)
	return err
}

func (c *Client) getText(ctx context.Context, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", &StatusError{Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
	}
	return string(b), nil
}

// statusError decodes an error answer: {"error": …, "code": …,
// "problems": […]}.
func statusError(status int, body []byte) *StatusError {
	var e struct {
		Error    string   `json:"error"`
		Code     string   `json:"code"`
		Problems []string `json:"problems"`
	}
	json.Unmarshal(body, &e)
	if e.Error == "" {
		e.Error = http.StatusText(status)
	}
	return &StatusError{Status: status, Code: e.Code, Message: e.Error, Problems: e.Problems}
}

func (c *Client) do(req *http.Request, v any) (int, error) { return c.doWith(req, v, true) }

// doWith sends req, with the token if auth, and decodes a 2xx answer's
// JSON body into v.
func (c *Client) doWith(req *http.Request, v any, auth bool) (int, error) {
	if auth && c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode/100 != 2 {
		err := statusError(resp.StatusCode, b)
		if secs, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && secs > 0 {
			err.RetryAfter = time.Duration(min(secs, int(maxRetryAfter/time.Second))) * time.Second
		}
		return resp.StatusCode, err
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			return resp.StatusCode, fmt.Errorf("client: bad response: %w", err)
		}
	}
	return resp.StatusCode, nil
}

// withCA returns a copy of hc whose transport trusts only the
// certificates in caPEM.
func withCA(hc *http.Client, caPEM []byte) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("client: the CA holds no PEM certificate")
	}
	var tr *http.Transport
	switch t := hc.Transport.(type) {
	case nil:
		tr = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		tr = t.Clone()
	default:
		return nil, fmt.Errorf("client: a CA needs an *http.Transport, not %T", hc.Transport)
	}
	cfg := &tls.Config{}
	if tr.TLSClientConfig != nil {
		cfg = tr.TLSClientConfig.Clone()
	}
	cfg.RootCAs = pool
	cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	tr.TLSClientConfig = cfg
	c := *hc
	c.Transport = tr
	return &c, nil
}

// loopback reports whether host is this machine's loopback: "localhost"
// or a loopback address.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
