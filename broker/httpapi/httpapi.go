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
//	GET  /v1/submissions?area=CODE&status=current|superseded|all&after=N&limit=N
//	                                 review list: the submissions under the area in the caller's
//	                                 scope (submission.list, denied subtrees left out), metadata
//	                                 only, in deposit order, limit ≤ 500 (default 100), status
//	                                 current by default: {"area", "status", "submissions": [{"id",
//	                                 "ea", "household_no", "form", "form_version", "enumerator",
//	                                 "interviewed_at", "received_at", "supersedes", "superseded_by",
//	                                 "status", "index"}], "next": N or null} (pass next as after)
//	GET  /v1/submissions?mine=1&status=&after=&limit=
//	                                 the caller's own deposits (an enumerator's), the same metadata
//	GET  /v1/submissions/{id}        open one submission for review: its metadata and the fields of
//	                                 the classes the caller's role may see at its EA, by class
//	                                 ({"submission", "classes", "fields": {"identifying": {"household",
//	                                 "persons"}, …}, "gone": [classes shredded]}); 403 when no class
//	                                 is allowed (or no such id), 429 rate_limited with Retry-After
//	                                 past the caller's hourly cap of opens, 410 gone when every
//	                                 class it may see was shredded
//	POST /v1/submissions/{id}/review review a current submission (a team leader's or supervisor's):
//	                                 body {"status": "accepted"|"rejected", "reason": CODE, "note": TEXT};
//	                                 200 the submission's metadata with its "review"; 403 when not
//	                                 allowed (or no such id), 403 own_submission for one's own
//	                                 deposit, 409 superseded when a later version is current
//	GET  /v1/receipts/{id}           the caller's own receipt
//	GET  /v1/receipts/{id}/proof     the caller's own deposit's proof of inclusion in the audit log:
//	                                 {"checkpoint": "<signed note>", "index": I, "leaf_hash": "<b64>",
//	                                 "hashes": ["<b64>", …]}, against the latest checkpoint
//	GET  /v1/progress?area=&depth=   households deposited against plan
//	GET  /v1/audit/events?from=&limit=&actor=&role=&action=&area=&decision=&outcome=&resource=&since=&until=
//	                                 audit search, for auditors (paged; at most 100,000 events looked at per call)
//	GET  /v1/audit/export?size=N     the audit log as of the signed checkpoint of size N (default: the
//	                                 latest), for auditors, streamed as JSON Lines (application/x-ndjson,
//	                                 the format of package audit); a subtree-scoped auditor gets the
//	                                 events outside the subtree, and everyone pruned events, as withheld
//	                                 leaves (hashes only)
//	GET  /v1/audit/checkpoint        the latest signed checkpoint (text/plain, a C2SP signed note)
//	GET  /v1/audit/proof/inclusion?index=I&size=N
//	                                 RFC 6962 proof that event I is in the tree of the first N events:
//	                                 {"hashes": ["<b64>", …]}, in the order of golang.org/x/mod/sumdb/tlog
//	GET  /v1/audit/proof/consistency?old=M&new=N
//	                                 RFC 6962 proof that the tree of N events extends that of its first M
//	POST /v1/tables?encrypt=1        a research table: body is the JSON table request
//	                                 (at most 64 KiB), a standard table of the catalogue
//	                                 or a custom one under differential privacy (a dp
//	                                 table); Accept: application/json (default)
//	                                 or text/csv picks the table's format; with
//	                                 encrypt=1 the table comes age-encrypted to the
//	                                 caller's registered recipient (application/age).
//	                                 Headers X-Censusvault-Table-Digest (sha256: of the
//	                                 plaintext table, as the audit log holds it),
//	                                 -Audit-Index, -As-Of, -Point, -Cells (debited),
//	                                 -Budget-Remaining, and -Content-Type (the
//	                                 plaintext's type, when encrypted); a dp table
//	                                 also -Rho (its ρ) and, when it repeats a query
//	                                 answered before and was charged nothing,
//	                                 -Repeat: true (and -Cells: 0)
//	GET  /v1/catalogue               the standard tables
//	GET  /v1/release-points          the publication points and the scheduled points of dp tables
//	POST /v1/release-points          make a publication point: {"name": NAME}; 201
//	GET  /v1/ledger                  the privacy ledger of dp tables: the shares the caller
//	                                 may see (researchers their own and their projects'),
//	                                 what each spent in its worst commune, the proposals
//	POST /v1/ledger/proposals        propose a share: {"kind": "commune"|"researcher"|"project",
//	                                 "holder": NAME, "rho": "0.4", "reason": TEXT}; 201
//	POST /v1/ledger/proposals/{seq}/approve
//	                                 approve a proposal (an approver, not its proposer;
//	                                 403 four_eyes otherwise); no body; 200
//	/v1/extracts…                    extracts for the processing centre: see extracts.go
//	/v1/forms…, /v1/admin/forms      the form registry: see forms.go
//
// Policy administration (admin: admin.manage over the whole tree, unless
// said otherwise; a caller who may not is refused 403 before its body is
// read). New tokens leave only age-encrypted to the field office's
// recipient, registered on the vault host (`censusvault user
// token-recipient`), or for a reissue to the user's own: a request names
// none, or one of those (else 403 recipient_not_registered; none
// registered: 409 no_token_recipient). 201 application/octet-stream (a
// CSV user,token,role,area,expires once decrypted) with headers
// X-Censusvault-Users, -Active (users whose grant holds now), -Pending
// (comma-separated seqs of the proposals an approver must confirm for the
// others: grants of data roles and of approver) and -Recipient (the first
// 24 characters of the recipient used). A change that could widen access to data — such a grant, the
// removal of a deny, a role policy — is answered 202 {"active": false,
// "proposal": SEQ} and holds once an approver confirms it.
//
//	GET    /v1/admin/users?after=NAME&limit=N
//	                                 users by name, limit ≤ 1000 (default 100): {"users": [{"name",
//	                                 "grants", "pending", "recipient", "expires", "revoked"}],
//	                                 "next": NAME or null}; never a token
//	POST   /v1/admin/users           one user: {"name", "role", "area", "project", "expires" (30d or
//	                                 RFC 3339; default the role's lifetime), "recipient" (optional)};
//	                                 201 sealed
//	POST   /v1/admin/users/import[?recipient=age1…]
//	                                 a user file (text/csv: user,role,area[,project][,expires]), at
//	                                 most 50,000 users, all or none; 201 sealed; 413 too_large over
//	                                 50,000 users or 12.8 MB (a declared length at once, unread)
//	GET    /v1/admin/users/{name}    one user, as the list shows it
//	DELETE /v1/admin/users/{name}    revoke the user's token now; 204; 409 last_admin
//	POST   /v1/admin/users/{name}/reissue
//	                                 {"recipient"} (optional) or no body: a new token, the old one
//	                                 ends now; 200 sealed
//	GET    /v1/admin/grants          admin or auditor (policy.explain over the whole tree):
//	                                 {"policy_hash", "grants": [{"user", "role", "area", "deny",
//	                                 "project"}], "pending": [proposals]}
//	POST   /v1/admin/grants          {"user", "role", "area", "deny", "project"}: 201 {"active": true}
//	                                 or 202; 409 when held already, last_admin for a deny of the last admin
//	DELETE /v1/admin/grants          the same body: removes it; 200 {"active": true} or 202 (a
//	                                 deny); 404 when not held; 409 last_admin
//	GET    /v1/admin/proposals       admin or approver: {"proposals": [{"seq", "kind", "user",
//	                                 "grant", "status", "policy_hash", "proposed_by", …}]}
//	POST   /v1/admin/proposals/{seq}/confirm
//	                                 an approver over the proposal's area, neither its proposer nor
//	                                 its grantee (403 four_eyes); no body; 200 the proposal; 404
//	                                 no_such_proposal; 409 proposal_confirmed, proposal_expired
//	GET    /v1/admin/policy          admin or auditor: {"model", "rules", "engine_hash",
//	                                 "policy_hash", "users", "grants", "pending"}
//	POST   /v1/admin/policy          the role policy's rules (text, at most 1 MiB): 202; 400
//	                                 trust_role_data when it lets admin, auditor or approver touch
//	                                 data; 409 no_change
//	GET    /v1/admin/lifetimes       {"lifetimes": {ROLE: "60d", …}}: new tokens' lifetimes
//	POST   /v1/admin/lifetimes       {"lifetimes": {ROLE: "40d"}}: changes them (1h to 5 years); 200
//	GET    /v1/admin/token-recipient {"recipient"}: the field office's, "" if none is registered
//	POST   /v1/admin/token-recipient 403 host_only, always: only the host operator registers it
//	POST   /v1/admin/areas/revisions a revision of the area tree (JSON, at most 4 MiB: see
//	                                 broker/area.ParseRevision): 201 {"revision", "sha256",
//	                                 "audit_index", "added", "renamed", "replanned", "split",
//	                                 "merged", "grants_moved", "grants_added"}; 400
//	                                 area_revision_invalid naming the change; 409
//	                                 households_orphaned, grant_would_widen, area_in_use
//	GET    /v1/policy/explain?user=&action=&area=[&project=]  or  ?event=N
//	                                 admin or auditor (policy.explain at the area): {"user",
//	                                 "action", "area", "allow", "rule", "roles", "grants",
//	                                 "policy_hash", "note"}; for a past event also "event":
//	                                 {"index", "recorded", "hash_matches", "agrees"}, decided under
//	                                 the policy rebuilt from the grant log as it stood then
//
// Every authenticated route first takes a token of its user's rate limit
// (broker.Limits): past it the answer is 429 with code rate_limited and
// Retry-After (whole seconds), before any work. Authenticated requests
// are decided and audited to their end even if the client hangs up.
//
// The keys, /v1/audit/checkpoint and the two proof routes are public: they
// need no token and are not audited, since they release hashes and
// signatures only. Their parameters are strict: each once, in decimal
// without sign or leading zero, and no other parameter (400 otherwise).
// The proof routes serve trees up to the latest signed checkpoint only: a
// larger size is 404 with code "beyond_checkpoint", whatever the log's live
// size, which no public answer reveals.
//
// An export is written as it is read from the store. A failure before it
// began (refused, no checkpoint of that size, the audit log could not
// record the export) is an ordinary error answer. A failure once it began,
// a damaged stored log say, cannot change the 200 status any more: the
// server sends the complete lines read so far, the evidence of where the
// log breaks, and then breaks the connection without ending the chunked
// body. Every HTTP client then reports an unexpected end of the body, and
// what arrived fails audit.VerifyExport, which names the event where it
// ends ("truncated"). A client must treat an export as complete only when
// the body ended cleanly and the export verifies.
package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/tables"
	"github.com/censusvault/censusvault/broker/untrusted"
	"github.com/censusvault/censusvault/policy"
	"github.com/gin-gonic/gin"
)

// Opts configure the handler.
type Opts struct {
	Broker *broker.Broker
	Log    *slog.Logger
	// TrustedProxies are the load balancers whose X-Forwarded-For is
	// believed for the client address; none by default.
	TrustedProxies []string
	// HSTS sends Strict-Transport-Security (one year) on every answer:
	// set it when the server itself speaks TLS, never on plain HTTP,
	// where the header is meaningless and would only be misleading.
	HSTS bool
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
	if o.HSTS {
		// First, so errors, 404s and recovered panics carry it too.
		r.Use(func(c *gin.Context) { c.Header("Strict-Transport-Security", "max-age=31536000") })
	}
	r.Use(h.recover, h.logRequest)

	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	r.GET("/v1/ingest/recipient", func(c *gin.Context) { c.String(http.StatusOK, "%s\n", h.b.IngestRecipient()) })
	r.GET("/v1/keys/receipt", func(c *gin.Context) { c.String(http.StatusOK, "%s\n", h.b.ReceiptVerifierKey()) })
	r.GET("/v1/keys/audit", func(c *gin.Context) { c.String(http.StatusOK, "%s\n", h.b.AuditVerifierKey()) })
	r.GET("/v1/audit/checkpoint", h.checkpoint)
	r.GET("/v1/audit/proof/inclusion", h.inclusionProof)
	r.GET("/v1/audit/proof/consistency", h.consistencyProof)

	r.POST("/v1/submissions", h.authed(h.deposit))
	r.GET("/v1/submissions", h.authed(h.listSubmissions))
	r.GET("/v1/submissions/:id", h.authed(h.openSubmission))
	r.POST("/v1/submissions/:id/review", h.authed(h.reviewSubmission))
	r.GET("/v1/receipts/:id", h.authed(h.receipt))
	r.GET("/v1/receipts/:id/proof", h.authed(h.receiptProof))
	r.GET("/v1/progress", h.authed(h.progress))
	r.GET("/v1/audit/events", h.authed(h.auditEvents))
	r.GET("/v1/audit/export", h.authed(h.auditExport))
	r.POST("/v1/tables", h.authed(h.requestTable))
	r.GET("/v1/catalogue", h.authed(h.catalogue))
	r.GET("/v1/release-points", h.authed(h.listPoints))
	r.POST("/v1/release-points", h.authed(h.createPoint))
	r.GET("/v1/ledger", h.authed(h.ledger))
	r.POST("/v1/ledger/proposals", h.authed(h.proposeShare))
	r.POST("/v1/ledger/proposals/:seq/approve", h.authed(h.approveShare))
	r.POST("/v1/extracts/environments", h.authed(h.addEnvironment))
	r.GET("/v1/extracts/environments", h.authed(h.listEnvironments))
	r.POST("/v1/extracts/environments/:name/retire", h.authed(h.retireEnvironment))
	r.POST("/v1/extracts", h.authed(h.proposeExtract))
	r.GET("/v1/extracts", h.authed(h.listExtracts))
	r.POST("/v1/extracts/:seq/approve", h.authed(h.approveExtract))
	r.GET("/v1/extracts/:seq", h.authedClient(h.downloadExtract))
	r.GET("/v1/admin/users", h.authed(h.listUsers))
	r.POST("/v1/admin/users", h.authed(h.addUser))
	r.POST("/v1/admin/users/import", h.authed(h.importUsers))
	r.GET("/v1/admin/users/:name", h.authed(h.showUser))
	r.DELETE("/v1/admin/users/:name", h.authed(h.revokeUser))
	r.POST("/v1/admin/users/:name/reissue", h.authed(h.reissueUser))
	r.GET("/v1/admin/grants", h.authed(h.listGrants))
	r.POST("/v1/admin/grants", h.authed(h.changeGrant(false)))
	r.DELETE("/v1/admin/grants", h.authed(h.changeGrant(true)))
	r.GET("/v1/admin/proposals", h.authed(h.listProposals))
	r.POST("/v1/admin/proposals/:seq/confirm", h.authed(h.confirmProposal))
	r.GET("/v1/admin/policy", h.authed(h.getPolicy))
	r.POST("/v1/admin/policy", h.authed(h.proposePolicy))
	r.GET("/v1/admin/lifetimes", h.authed(h.getLifetimes))
	r.POST("/v1/admin/lifetimes", h.authed(h.setLifetimes))
	r.GET("/v1/admin/token-recipient", h.authed(h.getTokenRecipient))
	r.POST("/v1/admin/token-recipient", h.authed(h.setTokenRecipient))
	r.POST("/v1/admin/areas/revisions", h.authed(h.reviseAreas))
	r.GET("/v1/policy/explain", h.authed(h.explain))
	r.GET("/v1/forms", h.authed(h.listForms))
	r.GET("/v1/forms/:name/:version", h.authed(h.showForm))
	r.POST("/v1/admin/forms", h.authed(h.addForm))

	r.NoRoute(func(c *gin.Context) { writeError(c, h.log, &broker.Error{Kind: broker.NotFound, Msg: "no such route"}) })
	r.NoMethod(func(c *gin.Context) {
		c.JSON(http.StatusMethodNotAllowed, gin.H{"error": "method not allowed", "code": "method_not_allowed"})
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
		// Nothing an authenticated route answers, errors included, may be
		// kept by a cache: receipts, progress, audit events, tables.
		c.Header("Cache-Control", "no-store")
		// A client that hangs up must not erase its request's audit
		// event: net/http cancels the request's context when the
		// connection closes, and a read or an append that ends with it
		// leaves no event. The request is decided and recorded to its
		// end instead (its work is bounded by the broker's own limits,
		// each audit append by a time limit of its own).
		c.Request = c.Request.WithContext(context.WithoutCancel(c.Request.Context()))
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

func (h *handler) receipt(c *gin.Context, caller *broker.Caller) error {
	r, err := h.b.ReceiptOf(c.Request.Context(), caller, broker.SubmissionID(c.Param("id")))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, r)
	return nil
}

func (h *handler) progress(c *gin.Context, caller *broker.Caller) error {
	q, bad := queryParams(c.Request.URL.RawQuery, "area", "depth")
	if bad != "" {
		return h.b.Invalid(c.Request.Context(), caller, "progress.read", bad)
	}
	depth := 1
	if s := q.Get("depth"); s != "" {
		d, err := strconv.Atoi(s)
		if err != nil {
			return h.b.Invalid(c.Request.Context(), caller, "progress.read", "depth must be a whole number")
		}
		depth = d
	}
	rep, err := h.b.Progress(c.Request.Context(), caller, broker.AreaCode(q.Get("area")), depth)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, rep)
	return nil
}

// auditQueryKeys are the query parameters of GET /v1/audit/events.
var auditQueryKeys = []string{"from", "limit", "actor", "role", "action", "area", "decision", "outcome", "resource", "since", "until"}

// clipParam bounds an unknown parameter name quoted back in an error.
func clipParam(s string) string { return untrusted.Clip(s, 32) }

func (h *handler) auditEvents(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	invalid := func(msg string) error { return h.b.Invalid(ctx, caller, "audit.read", msg) }
	q := broker.AuditQuery{Limit: 100}
	// Parsed strictly: a pair that does not decode is an error, not a
	// filter silently dropped (which would answer the whole log).
	params, bad := queryParams(c.Request.URL.RawQuery, auditQueryKeys...)
	if bad != "" {
		return invalid(bad)
	}
	if s := params.Get("from"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			return invalid("from must be a whole number ≥ 0")
		}
		q.From = v
	}
	if s := params.Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 1000 {
			return invalid("limit must be between 1 and 1000")
		}
		q.Limit = v
	}
	for _, t := range []struct {
		key string
		dst *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if s := params.Get(t.key); s != "" {
			v, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return invalid(t.key + " must be an RFC 3339 time, e.g. 2019-04-01T00:00:00+07:00")
			}
			*t.dst = v
		}
	}
	if d := params.Get("decision"); d != "" && d != "allow" && d != "deny" {
		return invalid("decision must be allow or deny")
	}
	q.Actor, q.Role, q.Action = params.Get("actor"), params.Get("role"), params.Get("action")
	q.Area, q.Decision, q.Outcome, q.Resource = broker.AreaCode(params.Get("area")), params.Get("decision"), params.Get("outcome"), params.Get("resource")
	page, err := h.b.AuditEvents(ctx, caller, q)
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

// Response headers of a released table.
const (
	HeaderTableDigest     = "X-Censusvault-Table-Digest"
	HeaderAuditIndex      = "X-Censusvault-Audit-Index"
	HeaderAsOf            = "X-Censusvault-As-Of"
	HeaderCells           = "X-Censusvault-Cells"
	HeaderBudgetRemaining = "X-Censusvault-Budget-Remaining"
	HeaderContentType     = "X-Censusvault-Content-Type" // the plaintext table's type, when the body is encrypted
	ContentTypeAge        = "application/age"
)

// TableWriteTimeout is how long a table response may take to write,
// building the table engine's cache included (minutes on a national
// census the first time after a start; `serve` builds it in the
// background at start so that a researcher rarely waits for it).
const TableWriteTimeout = 15 * time.Minute

func (h *handler) requestTable(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	action := string(policy.RequestTable)
	format, ok := tableFormat(c.Request.Header.Values("Accept"))
	if !ok {
		err := h.b.Invalid(ctx, caller, action, "this route answers application/json or text/csv: set Accept to one of them (the table is age-encrypted with ?encrypt=1 whichever format is chosen)")
		var be *broker.Error
		if !errors.As(err, &be) || be.Kind != broker.Invalid {
			return err // the refusal could not be logged
		}
		c.AbortWithStatusJSON(http.StatusNotAcceptable, gin.H{"error": be.Msg, "code": "not_acceptable"})
		return nil
	}
	q, bad := queryParams(c.Request.URL.RawQuery, "encrypt")
	if bad != "" {
		return h.b.Invalid(ctx, caller, action, bad+" (this route takes encrypt=1, for a table encrypted to your registered age recipient, or nothing)")
	}
	encrypt := false
	if vals, ok := q["encrypt"]; ok {
		if vals[0] != "1" {
			return h.b.Invalid(ctx, caller, action, "encrypt: give encrypt=1 for a table encrypted to your registered age recipient, or leave it out")
		}
		encrypt = true
	}
	// The broker refuses (and audits) a body over the limit: a declared
	// length over it at once, without reading the body; otherwise (chunked)
	// it reads one byte more than it accepts so that it can tell, and
	// MaxBytesReader stops the server reading the rest.
	var body []byte
	if c.Request.ContentLength <= tables.MaxRequestBytes {
		var err error
		body, err = io.ReadAll(io.LimitReader(http.MaxBytesReader(c.Writer, c.Request.Body, tables.MaxRequestBytes+1), tables.MaxRequestBytes+1))
		if err != nil {
			return h.b.Invalid(ctx, caller, action, "the request body could not be read")
		}
	}
	// The first table after a start builds the column cache, which on a
	// national census takes longer than the server's write timeout: give
	// this route its own.
	_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Now().Add(TableWriteTimeout))
	rel, err := h.b.RequestTable(ctx, caller, body, broker.TableOpts{Format: format, Encrypt: encrypt, ContentLength: c.Request.ContentLength})
	if err != nil {
		return err
	}
	hdr := c.Writer.Header()
	hdr.Set(HeaderTableDigest, rel.Digest)
	hdr.Set(HeaderAuditIndex, strconv.FormatInt(rel.AuditIndex, 10))
	hdr.Set(HeaderAsOf, strconv.FormatInt(rel.AsOf, 10))
	hdr.Set(HeaderPoint, rel.Point)
	hdr.Set(HeaderCells, strconv.Itoa(rel.Cells))
	hdr.Set(HeaderBudgetRemaining, strconv.FormatInt(rel.Remaining, 10))
	if rel.DP {
		hdr.Set(HeaderRho, rel.Rho)
		if rel.Repeat {
			hdr.Set(HeaderRepeat, "true")
		}
	}
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	ct := rel.ContentType
	if rel.Encrypted {
		hdr.Set(HeaderContentType, rel.ContentType)
		ct = ContentTypeAge
	}
	c.Data(http.StatusOK, ct, rel.Body)
	return nil
}

// tableFormat picks the table format the Accept header values ask for:
// JSON without a header, for application/json, application/* or */*; CSV
// for text/csv or text/*. Between the two, the higher q wins, then the
// more specific range, then JSON. ok is false when neither is acceptable.
func tableFormat(accept []string) (format string, ok bool) {
	if strings.TrimSpace(strings.Join(accept, "")) == "" {
		return tables.FormatJSON, true
	}
	type best struct {
		q    float64
		spec int // 0 none, 1 */*, 2 type/*, 3 exact
	}
	var js, csv best
	consider := func(b *best, q float64, spec int) {
		if spec > b.spec {
			*b = best{q: q, spec: spec}
		}
	}
	for _, v := range accept {
		for _, r := range strings.Split(v, ",") {
			params := strings.Split(r, ";")
			mt := strings.ToLower(strings.TrimSpace(params[0]))
			if mt == "" {
				continue
			}
			q := 1.0
			bad := false
			for _, p := range params[1:] {
				k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					if err != nil || f < 0 || f > 1 {
						bad = true
					}
					q = f
				}
			}
			if bad {
				continue
			}
			switch mt {
			case "*/*":
				consider(&js, q, 1)
				consider(&csv, q, 1)
			case "application/*":
				consider(&js, q, 2)
			case "text/*":
				consider(&csv, q, 2)
			case "application/json":
				consider(&js, q, 3)
			case "text/csv":
				consider(&csv, q, 3)
			}
		}
	}
	switch {
	case js.q <= 0 && csv.q <= 0:
		return "", false
	case csv.q > js.q, csv.q == js.q && csv.spec > js.spec:
		return tables.FormatCSV, true
	}
	return tables.FormatJSON, true
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
	case broker.RateLimited:
		return http.StatusTooManyRequests
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
	if be.RetryAfter > 0 {
		// Whole seconds (RFC 9110), rounded up: a client that waits
		// as told finds a token.
		c.Header("Retry-After", strconv.FormatInt(int64((be.RetryAfter+time.Second-1)/time.Second), 10))
	}
	body := gin.H{"error": be.Msg, "code": be.ErrorCode()}
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
			c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "internal error", "code": broker.Internal.Code()})
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
