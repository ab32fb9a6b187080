package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/censusvault/censusvault/broker/wire"
)

// Extracts for the processing centre. None of these is retried: a
// proposal, an approval and a download are each one audited act.
//
// There is no call to register a processing environment: only the host
// operator does (censusvault extract env add … --data DIR), since its
// recipient decides who can decrypt the extracts; the vault refuses it
// over the API (403 host_only).

// Environments lists the processing environments (to admins, processors
// and approvers).
func (c *Client) Environments(ctx context.Context) (*wire.EnvironmentList, error) {
	var l wire.EnvironmentList
	if err := c.getJSON(ctx, "/v1/extracts/environments", &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// RetireEnvironment retires a processing environment (an admin's act):
// nothing more is extracted for it.
func (c *Client) RetireEnvironment(ctx context.Context, name string) (*wire.Environment, error) {
	var env wire.Environment
	if err := c.postExtractJSON(ctx, "/v1/extracts/environments/"+url.PathEscape(name)+"/retire", nil, &env); err != nil {
		return nil, err
	}
	return &env, nil
}

// ProposeExtract proposes an extract (a processor's act). Nothing is
// released until an approver who is not the proposer approves it.
func (c *Client) ProposeExtract(ctx context.Context, req wire.ExtractRequest) (*wire.Extract, error) {
	var x wire.Extract
	if err := c.postExtractJSON(ctx, "/v1/extracts", req, &x); err != nil {
		return nil, err
	}
	return &x, nil
}

// Extracts lists the extract proposals in the caller's scope.
func (c *Client) Extracts(ctx context.Context) (*wire.ExtractList, error) {
	var l wire.ExtractList
	if err := c.getJSON(ctx, "/v1/extracts", &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// ApproveExtract approves extract seq (an approver's act; never the
// proposer's own, nor an administrator's: the vault answers 403
// four_eyes). The answer names the environment's recipient by its start
// and SHA-256 fingerprint (wire.Extract).
func (c *Client) ApproveExtract(ctx context.Context, seq int64) (*wire.Extract, error) {
	var x wire.Extract
	if err := c.postExtractJSON(ctx, "/v1/extracts/"+strconv.FormatInt(seq, 10)+"/approve", nil, &x); err != nil {
		return nil, err
	}
	return &x, nil
}

// ExtractDownload is what the vault said of a downloaded extract.
type ExtractDownload struct {
	SHA256     string // hex SHA-256 of the plaintext, as the audit log holds it
	Rows       int64  // JSON Lines: lines; CSV: rows after the header
	Households int64
	Format     string
	AsOf       int64
	AuditIndex int64 // the download's audit event
	Bytes      int64 // of ciphertext written
}

// ErrIncomplete is the error of a download whose body did not end
// cleanly: what was written is an incomplete age file, which age refuses
// to decrypt to its end. Throw it away.
var ErrIncomplete = errors.New("client: the extract did not arrive whole (the vault cut the stream, or the connection broke); discard what was written and download it again")

// DownloadExtract downloads approved extract seq (a processor's act) and
// writes its ciphertext — the plaintext encrypted with age to the
// environment's recipient — to w as it arrives. The vault cannot decrypt
// it for the client: the environment's identity holder checks the
// plaintext against SHA256 after decrypting. If the body does not end
// cleanly the error wraps ErrIncomplete. While another download of the
// caller's, or the vault's cap of them, is being prepared the answer is
// a *StatusError 429 rate_limited with RetryAfter.
func (c *Client) DownloadExtract(ctx context.Context, seq int64, w io.Writer) (*ExtractDownload, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/extracts/"+strconv.FormatInt(seq, 10), nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		se := statusError(resp.StatusCode, b)
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			se.RetryAfter = time.Duration(min(secs, int(maxRetryAfter/time.Second))) * time.Second
		}
		return nil, se
	}
	h := resp.Header
	if ct := h.Get("Content-Type"); ct != "application/age" {
		return nil, fmt.Errorf("client: the extract's content type is %q, not application/age", ct)
	}
	d := &ExtractDownload{SHA256: h.Get(wire.HeaderExtractSHA256), Format: h.Get(wire.HeaderExtractFormat)}
	if b, err := hex.DecodeString(d.SHA256); err != nil || len(b) != 32 || hex.EncodeToString(b) != d.SHA256 {
		return nil, fmt.Errorf("client: the response has no valid %s", wire.HeaderExtractSHA256)
	}
	if d.Format != wire.ExtractJSONL && d.Format != wire.ExtractCSV {
		return nil, fmt.Errorf("client: the response has no valid %s", wire.HeaderExtractFormat)
	}
	for _, f := range []struct {
		name string
		dst  *int64
	}{
		{wire.HeaderExtractRows, &d.Rows}, {wire.HeaderExtractHouseholds, &d.Households},
		{wire.HeaderExtractAsOf, &d.AsOf}, {wire.HeaderExtractAuditIndex, &d.AuditIndex},
	} {
		v, err := strconv.ParseInt(h.Get(f.name), 10, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("client: the response has no valid %s", f.name)
		}
		*f.dst = v
	}
	n, err := io.Copy(destWriter{w}, resp.Body)
	d.Bytes = n
	if err != nil {
		var we *writeError
		if errors.As(err, &we) {
			return d, we.err
		}
		return d, fmt.Errorf("%w: %v", ErrIncomplete, err)
	}
	return d, nil
}

// writeError marks an error of the destination, not of the body.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

// destWriter marks its writer's errors as writeErrors.
type destWriter struct{ w io.Writer }

func (d destWriter) Write(p []byte) (int, error) {
	n, err := d.w.Write(p)
	if err != nil {
		err = &writeError{err}
	}
	return n, err
}

// postExtractJSON posts v as JSON (nil: no body) and decodes the answer into out.
func (c *Client) postExtractJSON(ctx context.Context, path string, v, out any) error {
	var body io.Reader
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, body)
	if err != nil {
		return err
	}
	if v != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	_, err = c.do(req, out)
	return err
}
