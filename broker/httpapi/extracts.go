package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/internal/strictjson"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/policy"
	"github.com/gin-gonic/gin"
)

// Extracts for the processing centre:
//
//	POST /v1/extracts/environments   refused to every API caller (403 host_only to an
//	                                 admin, permission_denied to anyone else), its body
//	                                 unread: the host operator registers environments
//	                                 (censusvault extract env add … --data DIR)
//	GET  /v1/extracts/environments   the environments (admin, processor, approver)
//	POST /v1/extracts/environments/{name}/retire
//	                                 retire one (admin); no body; 200
//	POST /v1/extracts                propose an extract (processor): {"environment",
//	                                 "areas": [CODE…], "form", "form_version", "classes": [...],
//	                                 "format": "jsonl"|"csv", "purpose"}; 201
//	GET  /v1/extracts                the proposals in the caller's scope, each with its
//	                                 environment's recipient_start and recipient_sha256
//	POST /v1/extracts/{seq}/approve  approve (an approver, not the proposer); no body; 200
//	GET  /v1/extracts/{seq}          download an approved extract (processor): the
//	                                 plaintext encrypted with age to the environment
//	                                 (application/age), streamed; headers
//	                                 X-Censusvault-Extract-Sha256 (hex SHA-256 of the
//	                                 plaintext, as the audit log holds it), -Rows,
//	                                 -Households, -Format, -As-Of and
//	                                 X-Censusvault-Audit-Index (the download's event);
//	                                 429 rate_limited with Retry-After when another
//	                                 download of the caller's, or the broker's cap of
//	                                 them, is in its first pass
//
// An unknown {seq} is answered as one outside the caller's scope (403).
// The first pass of a download stops when the client hangs up (the
// broker audits it as aborted); its audit appends do not.
//
// A download whose second pass fails or differs from the logged digest
// cannot change its 200 any more: the server breaks the connection
// before the chunked body's end, so every client reports an unexpected
// end, and what arrived is an age file without its last chunk, which age
// refuses to decrypt to its end.

// Audit actions of the extract routes' refusals made here (the broker
// records the others under the same names).
const (
	actionEnvRetire       = "extract.environment_retire"
	actionEnvList         = "extract.environment_list"
	actionExtractPropose  = string(policy.ProposeExtract)
	actionExtractApprove  = string(policy.ApproveExtract)
	actionExtractDownload = string(policy.DownloadExtract)
	actionExtractList     = "extract.list"
)

// The bound of a proposal's body: it names at most 100 area codes and
// a purpose of 500 bytes, which JSON escapes may multiply by six.
const maxExtractBody = 16 << 10

// ExtractPrepareTimeout is how long the first pass of a download (every
// row read, decrypted and hashed, before the first byte is sent) may
// take; each write of the stream then gets exportStall.
const ExtractPrepareTimeout = 2 * time.Hour

func (h *handler) listEnvironments(c *gin.Context, caller *broker.Caller) error {
	if err := h.noQuery(c, caller, actionEnvList); err != nil {
		return err
	}
	l, err := h.b.EnvironmentsFor(c.Request.Context(), caller)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, l)
	return nil
}

// addEnvironment refuses: only the host operator registers a processing
// environment, since its recipient decides who can decrypt the extracts.
// The broker refuses (and audits) every API caller whatever the request
// holds, so neither the body nor the query is read.
func (h *handler) addEnvironment(c *gin.Context, caller *broker.Caller) error {
	env, err := h.b.AddEnvironment(c.Request.Context(), broker.APIOperator(caller), wire.NewEnvironment{})
	if err != nil {
		return err
	}
	// Unreachable: no API caller registers an environment.
	c.JSON(http.StatusCreated, env)
	return nil
}

func (h *handler) retireEnvironment(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	if err := h.noQuery(c, caller, actionEnvRetire); err != nil {
		return err
	}
	body, err := readSmallBody(c, 0)
	if err != nil || len(body) > 0 {
		return h.b.Invalid(ctx, caller, actionEnvRetire, "retiring an environment takes no body")
	}
	env, err := h.b.RetireEnvironment(ctx, broker.APIOperator(caller), c.Param("name"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, env)
	return nil
}

// jsonProblem says what is wrong with a body, without Go's type names.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "a member has the wrong type (names and codes are strings, lists are arrays of strings, form_version a number)"
	}
	return err.Error()
}

func (h *handler) proposeExtract(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	if err := h.noQuery(c, caller, actionExtractPropose); err != nil {
		return err
	}
	var req wire.ExtractRequest
	body, err := readSmallBody(c, maxExtractBody)
	if err != nil {
		return h.b.Invalid(ctx, caller, actionExtractPropose, err.Error())
	}
	if err := strictjson.Decode(body, &req); err != nil {
		return h.b.Invalid(ctx, caller, actionExtractPropose, `the body is {"environment": NAME, "areas": [CODE, …], "form": NAME, "form_version": N, "classes": ["analytic", …], "format": "jsonl"|"csv", "purpose": TEXT}: `+jsonProblem(err))
	}
	x, err := h.b.ProposeExtract(ctx, caller, req)
	if err != nil {
		return err
	}
	c.JSON(http.StatusCreated, x)
	return nil
}

func (h *handler) listExtracts(c *gin.Context, caller *broker.Caller) error {
	if err := h.noQuery(c, caller, actionExtractList); err != nil {
		return err
	}
	l, err := h.b.ExtractsFor(c.Request.Context(), caller)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, l)
	return nil
}

// extractSeq reads the {seq} of an extract route.
func (h *handler) extractSeq(c *gin.Context, caller *broker.Caller, action string) (int64, error) {
	seq, ok := parseCount(c.Param("seq"))
	if !ok || seq < 1 {
		return 0, h.b.Invalid(c.Request.Context(), caller, action, "the extract is named by its seq, a whole number ≥ 1 in decimal without sign or leading zero (GET /v1/extracts lists them)")
	}
	return seq, nil
}

func (h *handler) approveExtract(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	if err := h.noQuery(c, caller, actionExtractApprove); err != nil {
		return err
	}
	seq, err := h.extractSeq(c, caller, actionExtractApprove)
	if err != nil {
		return err
	}
	body, err := readSmallBody(c, 0)
	if err != nil || len(body) > 0 {
		return h.b.Invalid(ctx, caller, actionExtractApprove, "approving an extract takes no body: POST to /v1/extracts/SEQ/approve with none")
	}
	x, err := h.b.ApproveExtract(ctx, caller, seq)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, x)
	return nil
}

// authedClient is authed for a handler that also needs the request's
// context as net/http made it, cancelled when the client hangs up: authed
// hands fn one that is never cancelled, so that audit appends outlive
// the client, and fn passes the client's only to work that should stop
// with it.
func (h *handler) authedClient(fn func(*gin.Context, *broker.Caller, context.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		client := c.Request.Context()
		h.authed(func(c *gin.Context, caller *broker.Caller) error { return fn(c, caller, client) })(c)
	}
}

// downloadExtract streams an extract. client is cancelled when the client
// hangs up: the broker then stops the first pass (or cuts the stream),
// and still audits it.
func (h *handler) downloadExtract(c *gin.Context, caller *broker.Caller, client context.Context) error {
	if err := h.noQuery(c, caller, actionExtractDownload); err != nil {
		return err
	}
	seq, err := h.extractSeq(c, caller, actionExtractDownload)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(c.Writer)
	// The first pass reads the whole extract before the first byte goes
	// out: give it longer than the server's write timeout.
	_ = rc.SetWriteDeadline(time.Now().Add(ExtractPrepareTimeout))
	d, err := h.b.DownloadExtract(client, caller, seq)
	if err != nil {
		return err
	}
	hdr := c.Writer.Header()
	hdr.Set("Content-Type", ContentTypeAge)
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Disposition", `attachment; filename="extract-`+strconv.FormatInt(seq, 10)+"."+d.Format+`.age"`)
	hdr.Set(wire.HeaderExtractSHA256, d.SHA256)
	hdr.Set(wire.HeaderExtractRows, strconv.FormatInt(d.Rows, 10))
	hdr.Set(wire.HeaderExtractHouseholds, strconv.FormatInt(d.Households, 10))
	hdr.Set(wire.HeaderExtractFormat, d.Format)
	hdr.Set(wire.HeaderExtractAsOf, strconv.FormatInt(d.AsOf, 10))
	hdr.Set(wire.HeaderExtractAuditIndex, strconv.FormatInt(d.AuditIndex, 10))
	c.Status(http.StatusOK)
	s := &streamWriter{c: c, rc: rc}
	if err := d.Stream(client, s); err != nil {
		// Logged and audited by the broker. The 200 is gone: break the
		// connection so that the body never ends cleanly.
		_ = rc.Flush()
		panic(http.ErrAbortHandler)
	}
	return nil
}

// streamWriter writes a streamed answer, moving the write deadline on at
// every write, so that only a stalled reader is cut, not a long stream.
type streamWriter struct {
	c  *gin.Context
	rc *http.ResponseController
}

func (s *streamWriter) Write(p []byte) (int, error) {
	_ = s.rc.SetWriteDeadline(time.Now().Add(exportStall))
	return s.c.Writer.Write(p)
}
