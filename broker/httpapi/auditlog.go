package httpapi

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/censusvault/censusvault/broker"
	"github.com/gin-gonic/gin"
)

// ContentTypeExport is the type of GET /v1/audit/export: JSON Lines, one
// JSON value per line, each ended by "\n".
const ContentTypeExport = "application/x-ndjson"

const (
	// exportBuffer is how much of an export is gathered before it is
	// sent.
	exportBuffer = 64 << 10
	// exportStall is how long one write of an export may wait for the
	// client; every write moves the deadline on, so a long export is not
	// cut by the server's write timeout, only a stalled reader is.
	exportStall = 2 * time.Minute
)

// publicInvalid refuses a request to a public route. Public routes are
// not audited (anyone may call them, and they release hashes only), so
// neither are their refusals.
func publicInvalid(c *gin.Context, h *handler, format string, args ...any) {
	writeError(c, h.log, &broker.Error{Kind: broker.Invalid, Msg: fmt.Sprintf(format, args...)})
}

// parseCount parses a decimal count: digits only, no sign, no leading
// zero, at most 2⁶³-1.
func parseCount(s string) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || strconv.FormatInt(v, 10) != s {
		return 0, false
	}
	return v, true
}

// queryParams is the one reader of a query string: it must decode
// (no %zz), be valid UTF-8, and hold only the parameters keys, each at
// most once and at most 256 bytes. A pair that does not decode or is not
// known is an error, never silently dropped (a dropped area filter
// answers for the whole log; a dropped encrypt=1 releases a table in
// plain text). It returns what is wrong, or "".
func queryParams(raw string, keys ...string) (url.Values, string) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, "the query string is not valid URL encoding: escape each parameter value with %XX"
	}
	for k, vs := range q {
		if !utf8.ValidString(k) || slices.ContainsFunc(vs, func(v string) bool { return !utf8.ValidString(v) }) {
			return nil, "query parameters must be valid UTF-8 once decoded"
		}
		if !slices.Contains(keys, k) {
			return nil, fmt.Sprintf("unknown query parameter %q (this route takes %s)", clipParam(k), takes(keys))
		}
		if len(vs) != 1 || len(vs[0]) > 256 {
			return nil, fmt.Sprintf("query parameter %s: give it once, at most 256 bytes", k)
		}
	}
	return q, ""
}

// strictQuery parses the query string of a public route, which takes
// exactly the parameters keys, each once, each a decimal count. It
// returns what is wrong, or "".
func strictQuery(raw string, keys ...string) (map[string]int64, string) {
	q, bad := queryParams(raw, keys...)
	if bad != "" {
		return nil, bad
	}
	out := make(map[string]int64, len(keys))
	for _, k := range keys {
		vs := q[k]
		if len(vs) == 0 {
			return nil, fmt.Sprintf("query parameter %s is required (this route takes %s)", k, takes(keys))
		}
		v, ok := parseCount(vs[0])
		if !ok {
			return nil, fmt.Sprintf("query parameter %s must be a whole number ≥ 0, in decimal without sign or leading zero", k)
		}
		out[k] = v
	}
	return out, ""
}

func takes(keys []string) string {
	if len(keys) == 0 {
		return "no parameters"
	}
	return strings.Join(keys, " and ")
}

// checkpoint answers the latest signed checkpoint note.
func (h *handler) checkpoint(c *gin.Context) {
	if _, bad := strictQuery(c.Request.URL.RawQuery); bad != "" {
		publicInvalid(c, h, "%s", bad)
		return
	}
	cp, err := h.b.LatestCheckpoint(c.Request.Context())
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Data(http.StatusOK, "text/plain; charset=utf-8", cp.Note)
}

// proofJSON is the body of the proof routes.
type proofJSON struct {
	Hashes []string `json:"hashes"`
}

func hashesB64(hs [][32]byte) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

func (h *handler) inclusionProof(c *gin.Context) {
	p, bad := strictQuery(c.Request.URL.RawQuery, "index", "size")
	if bad != "" {
		publicInvalid(c, h, "%s", bad)
		return
	}
	hs, err := h.b.InclusionProof(c.Request.Context(), p["index"], p["size"])
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	c.JSON(http.StatusOK, proofJSON{Hashes: hashesB64(hs)})
}

func (h *handler) consistencyProof(c *gin.Context) {
	p, bad := strictQuery(c.Request.URL.RawQuery, "old", "new")
	if bad != "" {
		publicInvalid(c, h, "%s", bad)
		return
	}
	hs, err := h.b.ConsistencyProof(c.Request.Context(), p["old"], p["new"])
	if err != nil {
		writeError(c, h.log, err)
		return
	}
	c.JSON(http.StatusOK, proofJSON{Hashes: hashesB64(hs)})
}

// receiptProofJSON is the body of GET /v1/receipts/{id}/proof: the
// signed checkpoint note (as text), the deposit's audit index and leaf
// hash, and the inclusion proof's hashes, all hashes in standard base64.
type receiptProofJSON struct {
	Checkpoint string   `json:"checkpoint"`
	Index      int64    `json:"index"`
	LeafHash   string   `json:"leaf_hash"`
	Hashes     []string `json:"hashes"`
}

func (h *handler) receiptProof(c *gin.Context, caller *broker.Caller) error {
	if c.Request.URL.RawQuery != "" {
		return h.b.Invalid(c.Request.Context(), caller, "receipt.read", "this route takes no query parameters")
	}
	p, err := h.b.ProveReceipt(c.Request.Context(), caller, broker.SubmissionID(c.Param("id")))
	if err != nil {
		return err
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, receiptProofJSON{
		Checkpoint: string(p.Checkpoint), Index: p.Index,
		LeafHash: base64.StdEncoding.EncodeToString(p.LeafHash[:]), Hashes: hashesB64(p.Hashes),
	})
	return nil
}

// exportStream sends an export: it commits the headers at its first
// write and moves the write deadline on at every write.
type exportStream struct {
	c       *gin.Context
	rc      *http.ResponseController
	started bool
}

func (s *exportStream) Write(p []byte) (int, error) {
	if !s.started {
		s.started = true
		hdr := s.c.Writer.Header()
		hdr.Set("Content-Type", ContentTypeExport)
		hdr.Set("Cache-Control", "no-store")
		hdr.Set("X-Content-Type-Options", "nosniff")
		s.c.Status(http.StatusOK)
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(exportStall))
	return s.c.Writer.Write(p)
}

func (h *handler) auditExport(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	invalid := func(msg string) error { return h.b.Invalid(ctx, caller, "audit.export", msg) }
	q, bad := queryParams(c.Request.URL.RawQuery, "size")
	if bad != "" {
		return invalid(bad)
	}
	var size int64
	if vs, ok := q["size"]; ok {
		v, ok := parseCount(vs[0])
		if !ok || v < 1 {
			return invalid("size must be given once, as a whole number ≥ 1: the size of a signed checkpoint (leave it out for the latest)")
		}
		size = v
	}
	s := &exportStream{c: c, rc: http.NewResponseController(c.Writer)}
	bw := bufio.NewWriterSize(s, exportBuffer)
	cw := &countWriter{w: bw}
	_, err := h.b.ExportAudit(ctx, caller, size, cw)
	if err == nil {
		if err = bw.Flush(); err == nil {
			return nil
		}
	}
	if cw.n == 0 && !s.started {
		// The export did not begin (refused, no such checkpoint, or
		// the audit log could not record it): an ordinary error answer.
		return err
	}
	// The export began: send the complete lines written so far, the
	// evidence of where the log broke, then break the connection so that
	// the client sees the body end before its terminating chunk.
	_ = bw.Flush()
	_ = s.rc.Flush()
	h.log.Error("audit export cut short; breaking the connection", "path", c.FullPath(), "err", err)
	panic(http.ErrAbortHandler)
}

// countWriter counts what the export wrote.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
