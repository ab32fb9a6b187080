// Package httpapi is the vault's HTTP interface, on gin. It only
// translates: it parses requests, calls one broker use case, and maps the
// result or the error's Kind to a response. All decisions are the
// broker's.
//
// Routes (all answers JSON unless said otherwise):
//
//	GET  /healthz                    liveness
//	GET  /v1/ingest/recipient        the age recipient to encrypt deposits to (text/plain)
//	GET  /v1/keys/receipt            receipt verifier key (text/plain, note format)
//	GET  /v1/keys/audit              audit verifier key (text/plain, note format)
//	POST /v1/submissions             deposit: body is the age ciphertext; 201 new, 200 same again
//	GET  /v1/submissions/{id}        view one submission (denied to every role for now)
//	GET  /v1/receipts/{id}           the caller's own receipt
//	GET  /v1/progress?area=&depth=   households deposited against plan
//	GET  /v1/audit/events?from=&limit=  audit events, for auditors
package httpapi

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/gin-gonic/gin"
)

// Opts configure the handler.
type Opts struct {
	Broker *broker.Broker
	Log    *slog.Logger
	// TrustedProxies are the load balancers whose X-Forwarded-For is
	// believed for the client address; none by default.
	TrustedProxies []string
}

// New returns the HTTP handler.
func New(o Opts) (http.Handler, error) {
	if o.Broker == nil {
		return nil, errors.New("httpapi: no broker")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if err := r.SetTrustedProxies(o.TrustedProxies); err != nil {
		return nil, err
	}
	r.HandleMethodNotAllowed = true
	h := &handler{b: o.Broker, log: o.Log}
	r.Use(h.recover, h.logRequest)

	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	r.GET("/v1/ingest/recipient", func(c *gin.Context) { c.String(http.StatusOK, "%s\n", h.b.IngestRecipient()) })
	r.GET("/v1/keys/receipt", func(c *gin.Context) { c.String(http.StatusOK, "%s\n", h.b.ReceiptVerifierKey()) })
	r.GET("/v1/keys/audit", func(c *gin.Context) { c.String(http.StatusOK, "%s\n", h.b.AuditVerifierKey()) })

	r.POST("/v1/submissions", h.authed(h.deposit))
	r.GET("/v1/submissions/:id", h.authed(h.readSubmission))
	r.GET("/v1/receipts/:id", h.authed(h.receipt))
	r.GET("/v1/progress", h.authed(h.progress))
	r.GET("/v1/audit/events", h.authed(h.auditEvents))

	r.NoRoute(func(c *gin.Context) { writeError(c, h.log, &broker.Error{Kind: broker.NotFound, Msg: "no such route"}) })
	r.NoMethod(func(c *gin.Context) {
		c.JSON(http.StatusMethodNotAllowed, gin.H{"error": "method not allowed"})
	})
	return r, nil
}

type handler struct {
	b   *broker.Broker
	log *slog.Logger
}

// authed runs fn for an authenticated caller.
func (h *handler) authed(fn func(*gin.Context, *broker.Caller) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		caller, err := h.b.Authenticate(c.Request.Context(), c.GetHeader("Authorization"), c.ClientIP())
		if err != nil {
			writeError(c, h.log, err)
			return
		}
		if err := fn(c, caller); err != nil {
			writeError(c, h.log, err)
		}
	}
}

func (h *handler) deposit(c *gin.Context, caller *broker.Caller) error {
	// MaxBytesReader bounds bodies that declare no length (chunked); the
	// broker refuses declared lengths over the limit before reading.
	body := http.MaxBytesReader(c.Writer, c.Request.Body, h.b.MaxBody()+1)
	res, err := h.b.Deposit(c.Request.Context(), caller, c.Request.ContentLength, body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &broker.Error{Kind: broker.TooLarge, Msg: "submission body too large", Err: err}
		}
		return err
	}
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	c.JSON(status, res.Receipt)
	return nil
}

func (h *handler) readSubmission(c *gin.Context, caller *broker.Caller) error {
	return h.b.ReadSubmission(c.Request.Context(), caller, broker.SubmissionID(c.Param("id")))
}

func (h *handler) receipt(c *gin.Context, caller *broker.Caller) error {
	r, err := h.b.ReceiptOf(c.Request.Context(), caller, broker.SubmissionID(c.Param("id")))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, r)
	return nil
}

func (h *handler) progress(c *gin.Context, caller *broker.Caller) error {
	depth := 1
	if s := c.Query("depth"); s != "" {
		d, err := strconv.Atoi(s)
		if err != nil {
			return h.b.Invalid(c.Request.Context(), caller, "progress.read", "depth must be a whole number")
		}
		depth = d
	}
	rep, err := h.b.Progress(c.Request.Context(), caller, broker.AreaCode(c.Query("area")), depth)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, rep)
	return nil
}

func (h *handler) auditEvents(c *gin.Context, caller *broker.Caller) error {
	from, limit := int64(0), 100
	if s := c.Query("from"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			return h.b.Invalid(c.Request.Context(), caller, "audit.read", "from must be a whole number ≥ 0")
		}
		from = v
	}
	if s := c.Query("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 1000 {
			return h.b.Invalid(c.Request.Context(), caller, "audit.read", "limit must be between 1 and 1000")
		}
		limit = v
	}
	page, err := h.b.AuditEvents(c.Request.Context(), caller, from, limit)
	if err != nil {
		return err
	}
	// Written by hand: the events must go out as exactly the bytes that
	// were hashed, and encoding/json would HTML-escape them.
	var buf bytes.Buffer
	buf.WriteString(`{"events":[`)
	for i, e := range page.Events {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(e)
	}
	buf.WriteString(`],"next":`)
	if page.Next >= 0 {
		buf.WriteString(strconv.FormatInt(page.Next, 10))
	} else {
		buf.WriteString("null")
	}
	buf.WriteString("}\n")
	c.Data(http.StatusOK, "application/json; charset=utf-8", buf.Bytes())
	return nil
}

// status is the one place a Kind becomes an HTTP status.
func status(k broker.Kind) int {
	switch k {
	case broker.Invalid:
		return http.StatusBadRequest
	case broker.Unauthenticated:
		return http.StatusUnauthorized
	case broker.Permission:
		return http.StatusForbidden
	case broker.NotFound:
		return http.StatusNotFound
	case broker.Conflict:
		return http.StatusConflict
	case broker.TooLarge:
		return http.StatusRequestEntityTooLarge
	case broker.Unavailable:
		return http.StatusServiceUnavailable
	case broker.Gone:
		return http.StatusGone
	default:
		return http.StatusInternalServerError
	}
}

// writeError sends the client the safe message and logs the detail.
func writeError(c *gin.Context, log *slog.Logger, err error) {
	var be *broker.Error
	if !errors.As(err, &be) {
		be = &broker.Error{Kind: broker.Internal, Msg: "internal error", Err: err}
	}
	st := status(be.Kind)
	if st >= 500 {
		log.Error("request failed", "method", c.Request.Method, "path", c.FullPath(), "status", st, "err", err)
	}
	if st == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="censusvault"`)
	}
	if st == http.StatusServiceUnavailable {
		c.Header("Retry-After", "5")
	}
	body := gin.H{"error": be.Msg}
	if len(be.Problems) > 0 {
		body["problems"] = be.Problems
	}
	c.AbortWithStatusJSON(st, body)
}

func (h *handler) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			h.log.Error("panic in handler", "path", c.FullPath(), "panic", r)
			c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "internal error"})
		}
	}()
	c.Next()
}

// logRequest logs method, route, status and time: never bodies, query
// values or headers (tokens travel in headers).
func (h *handler) logRequest(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "(no route)"
	}
	host, _, _ := net.SplitHostPort(c.Request.RemoteAddr)
	h.log.Info("request", "method", c.Request.Method, "route", route, "status", c.Writer.Status(),
		"ms", time.Since(start).Milliseconds(), "remote", host)
}
