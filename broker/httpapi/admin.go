package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/internal/strictjson"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
	"github.com/gin-gonic/gin"
)

// Policy administration and explain (issue 13): users, grants, the role
// policy and its proposals, token lifetimes, and why the policy decided.
// Each handler translates one request into one broker use case, which
// authorizes it and records it. The routes that take input a refused
// caller has no business sending — a body, a user name — first ask
// broker.MayAdminister, so that a caller who may not administer is
// refused before anything is read or checked, and learns nothing but
// "not permitted". New tokens leave only age-encrypted (writeSealed), to
// the field office's recipient that the host operator registered (or,
// for a reissue, the user's own): a request naming any other is refused
// by the broker (403 recipient_not_registered), and no route registers
// one (POST /v1/admin/token-recipient is 403 host_only).

// Audit actions of the refusals made here (the broker records the
// others under the same names).
const (
	actionUserList      = "user.list"
	actionUserShow      = "user.show"
	actionUserAdd       = "user.add"
	actionUserRevoke    = "user.revoke"
	actionUserReissue   = "user.reissue"
	actionGrant         = "user.grant"
	actionUngrant       = "user.ungrant"
	actionProposals     = "grant.proposals"
	actionConfirm       = string(policy.ConfirmGrant)
	actionPolicyRead    = "policy.read"
	actionPolicyLoad    = "policy.load"
	actionLifetimesRead = "user.lifetimes_read"
	actionLifetimes     = "user.lifetimes"
	actionRecipientRead = "user.token_recipient_read"
	actionExplain       = string(policy.ExplainPolicy)
)

// Bounds of the administrative bodies.
const (
	// maxUserBody: a name, a grant, an expiry and a recipient (a hybrid
	// post-quantum one runs to 2 KB, crypto.MaxRecipientLen at most).
	maxUserBody = crypto.MaxRecipientLen + 2<<10
	// maxGrantBody: a user name and a grant.
	maxGrantBody = 1 << 10
	// maxLifetimesBody: a lifetime for each role.
	maxLifetimesBody = 1 << 10
	// maxImportRow is the longest line of a user file: a name (64
	// bytes), a role, an area code, a project (64) and an RFC 3339
	// expiry with nanoseconds, quoted, with room to spare.
	maxImportRow = 256
	// MaxImportBody bounds POST /v1/admin/users/import: the most users
	// one import takes (broker.MaxImportUsers), each on a line of at
	// most maxImportRow bytes.
	MaxImportBody = broker.MaxImportUsers * maxImportRow
	// importWriteTimeout is how long an import may take to answer:
	// creating 50,000 users in one transaction takes seconds, not the
	// server's minute, but a slow disk must not cut the answer that
	// carries the only copy of their tokens.
	importWriteTimeout = 10 * time.Minute
)

// invalidJSON is the message of a body that strictjson refuses: what the
// body should be, and what is wrong, without Go's type names.
func invalidJSON(shape string, err error) string {
	msg := err.Error()
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		msg = "a member has the wrong type (names, codes, lifetimes and recipients are strings; deny is true or false)"
	}
	return "the body is " + shape + ": " + msg
}

// adminBody reads a body of at most limit bytes: over it the refusal is
// 413 too_large (a declared length at once, before anything is read),
// audited as action, with advice on what to do instead.
func (h *handler) adminBody(c *gin.Context, caller *broker.Caller, action string, limit int64, advice string) ([]byte, error) {
	ctx := c.Request.Context()
	over := func() error {
		return h.b.TooLarge(ctx, caller, action, fmt.Sprintf("the body is over %d bytes%s", limit, advice))
	}
	if c.Request.ContentLength > limit {
		return nil, over()
	}
	b, err := io.ReadAll(io.LimitReader(http.MaxBytesReader(c.Writer, c.Request.Body, limit+1), limit+1))
	switch {
	case int64(len(b)) > limit:
		return nil, over()
	case err != nil:
		return nil, h.b.Invalid(ctx, caller, action, "the request body could not be read")
	}
	return b, nil
}

// userName reads the {name} of a route and refuses, as action, one that
// cannot be a user's.
func (h *handler) userName(c *gin.Context, caller *broker.Caller, action string) (broker.UserID, error) {
	name := c.Param("name")
	if !broker.ValidUserName(name) {
		return "", h.b.Invalid(c.Request.Context(), caller, action, fmt.Sprintf("user name %q: user names are 1–64 lowercase letters, digits, '.', '_' or '-'", clipParam(name)))
	}
	return broker.UserID(name), nil
}

// newUser checks the fields of a new user that the route can check
// alone and returns what is wrong, or "". The broker checks the rest
// (the area, the project, the grant).
func (h *handler) newUser(name, role, area, project, expires string) (broker.NewUser, string) {
	nu := broker.NewUser{Name: broker.UserID(name), Area: broker.AreaCode(area), Project: project}
	if !broker.ValidUserName(name) {
		return nu, fmt.Sprintf("name %q: user names are 1–64 lowercase letters, digits, '.', '_' or '-'", clipParam(name))
	}
	r, err := policy.ParseRole(role)
	if err != nil {
		return nu, "role: " + err.Error()
	}
	nu.Role = r
	if area == "" {
		return nu, "area: give the area code the role covers, with its whole subtree"
	}
	if expires != "" {
		if t, err := time.Parse(time.RFC3339, expires); err == nil {
			nu.Expires = t
		} else if d, err := broker.ParseLifetime(expires); err == nil {
			nu.Expires = h.b.Now().Add(d)
		} else {
			return nu, fmt.Sprintf("expires %q: give a lifetime such as 30d or 36h, or an RFC 3339 time (or nothing, for the role's lifetime)", clipParam(expires))
		}
	}
	return nu, ""
}

// tokenRecipient is the recipient a request's new tokens are to be
// encrypted to: the one it names, or, naming none, the field office's
// registered one, or for a reissue (user) with none registered the
// user's own; "" if there is none of these (the broker then refuses, 409
// no_token_recipient). The broker decides whether the request may have
// it — a named one must be registered — so the route names it to the
// broker and the answer can say which one was used (HeaderRecipient).
func (h *handler) tokenRecipient(c *gin.Context, caller *broker.Caller, action, asked string, user broker.UserID) (string, error) {
	if asked != "" {
		// Not a recipient at all (a secret key pasted by mistake …) is
		// a bad request, said as such; a recipient is the broker's to
		// accept or refuse.
		if _, err := crypto.ParseRecipient(asked); err != nil {
			return "", h.b.Invalid(c.Request.Context(), caller, action, "recipient: "+err.Error()+" (or none, for the field office's registered recipient)")
		}
		return asked, nil
	}
	office, err := h.b.TokenRecipient(c.Request.Context())
	if err != nil || office != "" || user == "" {
		return office, err
	}
	if u, err := h.b.User(c.Request.Context(), user); err == nil {
		return u.Recipient, nil
	}
	return "", nil
}

// setRecipientHeader names the start of the recipient the tokens were
// encrypted to, as the broker used it (in normal form).
func setRecipientHeader(c *gin.Context, recipient string) {
	if r, err := crypto.ParseRecipient(recipient); err == nil {
		c.Header(wire.HeaderRecipient, wire.RecipientPrefix(r))
	}
}

// writeSealed answers new users' tokens: only their age encryption, with
// how many users were made, how many hold their grant now, the proposals
// an approver must confirm for the others, and the start of the
// recipient they are encrypted to.
func writeSealed(c *gin.Context, status int, res *broker.UserImport, recipient string) {
	hdr := c.Writer.Header()
	setRecipientHeader(c, recipient)
	hdr.Set(wire.HeaderUsers, strconv.Itoa(res.Users))
	hdr.Set(wire.HeaderActive, strconv.Itoa(res.Active))
	seqs := make([]string, len(res.Pending))
	for i, s := range res.Pending {
		seqs[i] = strconv.FormatInt(s, 10)
	}
	hdr.Set(wire.HeaderPending, strings.Join(seqs, ","))
	hdr.Set("X-Content-Type-Options", "nosniff")
	c.Data(status, "application/octet-stream", res.Sealed)
}

func (h *handler) listUsers(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	if err := h.b.MayAdminister(ctx, caller, actionUserList); err != nil {
		return err
	}
	invalid := func(msg string) error { return h.b.Invalid(ctx, caller, actionUserList, msg) }
	q, bad := queryParams(c.Request.URL.RawQuery, "after", "limit")
	if bad != "" {
		return invalid(bad)
	}
	limit := 100
	if s, ok := q["limit"]; ok {
		v, ok := parseCount(s[0])
		if !ok || v < 1 || v > 1000 {
			return invalid("limit must be between 1 and 1000")
		}
		limit = int(v)
	}
	users, next, err := h.b.ListUsers(ctx, broker.APIOperator(caller), q.Get("after"), limit)
	if err != nil {
		return err
	}
	out := wire.UserList{Users: make([]wire.User, 0, len(users))}
	for _, u := range users {
		out.Users = append(out.Users, u.Wire())
	}
	if next != "" {
		out.Next = &next
	}
	c.JSON(http.StatusOK, out)
	return nil
}

func (h *handler) showUser(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	if err := h.b.MayAdminister(ctx, caller, actionUserShow); err != nil {
		return err
	}
	if err := h.noQuery(c, caller, actionUserShow); err != nil {
		return err
	}
	name, err := h.userName(c, caller, actionUserShow)
	if err != nil {
		return err
	}
	u, err := h.b.UserAs(ctx, broker.APIOperator(caller), name)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, u.Wire())
	return nil
}

func (h *handler) addUser(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	if err := h.b.MayAdminister(ctx, caller, actionUserAdd); err != nil {
		return err
	}
	invalid := func(msg string) error { return h.b.Invalid(ctx, caller, actionUserAdd, msg) }
	if err := h.noQuery(c, caller, actionUserAdd); err != nil {
		return err
	}
	body, err := h.adminBody(c, caller, actionUserAdd, maxUserBody, "")
	if err != nil {
		return err
	}
	var req wire.NewUser
	if err := strictjson.Decode(body, &req); err != nil {
		return invalid(invalidJSON(`{"name", "role", "area", "project", "expires", "recipient"}`, err))
	}
	nu, bad := h.newUser(req.Name, req.Role, req.Area, req.Project, req.Expires)
	if bad != "" {
		return invalid(bad)
	}
	recipient, err := h.tokenRecipient(c, caller, actionUserAdd, req.Recipient, "")
	if err != nil {
		return err
	}
	res, err := h.b.ImportUsers(ctx, broker.APIOperator(caller), []broker.NewUser{nu}, recipient)
	if err != nil {
		return err
	}
	writeSealed(c, http.StatusCreated, res, recipient)
	return nil
}

// importQuery reads the query of POST /v1/admin/users/import: at most
// one recipient ("" for the field office's), which (a hybrid
// post-quantum one) is longer than queryParams allows a value.
func importQuery(raw string) (string, string) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return "", "the query string is not valid URL encoding: escape the recipient with %XX"
	}
	for k, vs := range q {
		if k != "recipient" {
			return "", fmt.Sprintf("unknown query parameter %q (this route takes recipient)", clipParam(k))
		}
		if len(vs) != 1 || len(vs[0]) > crypto.MaxRecipientLen || !utf8.ValidString(vs[0]) {
			return "", fmt.Sprintf("recipient: give it once, at most %d bytes", crypto.MaxRecipientLen)
		}
	}
	return q.Get("recipient"), ""
}

func (h *handler) importUsers(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	if err := h.b.MayAdminister(ctx, caller, actionUserAdd); err != nil {
		return err
	}
	recipient, bad := importQuery(c.Request.URL.RawQuery)
	if bad != "" {
		return h.b.Invalid(ctx, caller, actionUserAdd, bad)
	}
	body, err := h.adminBody(c, caller, actionUserAdd, MaxImportBody, fmt.Sprintf(": at most %d users an import, split the file", broker.MaxImportUsers))
	if err != nil {
		return err
	}
	if recipient, err = h.tokenRecipient(c, caller, actionUserAdd, recipient, ""); err != nil {
		return err
	}
	_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Now().Add(importWriteTimeout))
	res, err := h.b.ImportCSV(ctx, broker.APIOperator(caller), body, recipient)
	clear(body)
	if err != nil {
		return err
	}
	writeSealed(c, http.StatusCreated, res, recipient)
	return nil
}

func (h *handler) revokeUser(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	if err := h.b.MayAdminister(ctx, caller, actionUserRevoke); err != nil {
		return err
	}
	if err := h.noQuery(c, caller, actionUserRevoke); err != nil {
		return err
	}
	name, err := h.userName(c, caller, actionUserRevoke)
	if err != nil {
		return err
	}
	if body, err := readSmallBody(c, 0); err != nil || len(body) > 0 {
		return h.b.Invalid(ctx, caller, actionUserRevoke, "revoking a user takes no body: DELETE /v1/admin/users/NAME with none")
	}
	if err := h.b.RevokeAs(ctx, broker.APIOperator(caller), name); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

func (h *handler) reissueUser(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	if err := h.b.MayAdminister(ctx, caller, actionUserReissue); err != nil {
		return err
	}
	invalid := func(msg string) error { return h.b.Invalid(ctx, caller, actionUserReissue, msg) }
	if err := h.noQuery(c, caller, actionUserReissue); err != nil {
		return err
	}
	name, err := h.userName(c, caller, actionUserReissue)
	if err != nil {
		return err
	}
	body, err := h.adminBody(c, caller, actionUserReissue, maxUserBody, "")
	if err != nil {
		return err
	}
	// No body, or {}: the field office's recipient (or the user's own).
	var req wire.Reissue
	if len(body) > 0 {
		if err := strictjson.Decode(body, &req); err != nil {
			return invalid(invalidJSON(`{"recipient": "age1…"} or nothing (the field office's registered recipient)`, err))
		}
	}
	recipient, err := h.tokenRecipient(c, caller, actionUserReissue, req.Recipient, name)
	if err != nil {
		return err
	}
	sealed, err := h.b.Reissue(ctx, broker.APIOperator(caller), name, recipient)
	if err != nil {
		return err
	}
	setRecipientHeader(c, recipient)
	c.Header(wire.HeaderUsers, "1")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Data(http.StatusOK, "application/octet-stream", sealed)
	return nil
}

func (h *handler) listGrants(c *gin.Context, caller *broker.Caller) error {
	if err := h.noQuery(c, caller, actionPolicyRead); err != nil {
		return err
	}
	info, err := h.b.Policy(c.Request.Context(), broker.APIOperator(caller))
	if err != nil {
		return err
	}
	_, gs := info.Wire()
	c.JSON(http.StatusOK, gs)
	return nil
}

// changeGrant answers POST (add) and DELETE (remove) /v1/admin/grants.
func (h *handler) changeGrant(remove bool) func(*gin.Context, *broker.Caller) error {
	action := actionGrant
	if remove {
		action = actionUngrant
	}
	return func(c *gin.Context, caller *broker.Caller) error {
		ctx := c.Request.Context()
		if err := h.b.MayAdminister(ctx, caller, action); err != nil {
			return err
		}
		invalid := func(msg string) error { return h.b.Invalid(ctx, caller, action, msg) }
		if err := h.noQuery(c, caller, action); err != nil {
			return err
		}
		body, err := h.adminBody(c, caller, action, maxGrantBody, "")
		if err != nil {
			return err
		}
		var req wire.GrantRequest
		if err := strictjson.Decode(body, &req); err != nil {
			return invalid(invalidJSON(`{"user", "role", "area", "deny": true|false, "project"}`, err))
		}
		if !broker.ValidUserName(req.User) {
			return invalid(fmt.Sprintf("user %q: user names are 1–64 lowercase letters, digits, '.', '_' or '-'", clipParam(req.User)))
		}
		role, err := policy.ParseRole(req.Role)
		if err != nil {
			return invalid("role: " + err.Error())
		}
		if req.Area == "" {
			return invalid("area: give the area code of the grant")
		}
		g := policy.Grant{Role: role, Area: req.Area, Deny: req.Deny, Project: req.Project}
		ch, err := h.b.ChangeGrant(ctx, broker.APIOperator(caller), broker.UserID(req.User), g, remove)
		if err != nil {
			return err
		}
		writeChange(c, ch, remove)
		return nil
	}
}

// writeChange answers a change: 201 (a removal 200) when it holds now,
// 202 with the proposal's seq when it waits for an approver.
func writeChange(c *gin.Context, ch *broker.GrantChange, remove bool) {
	switch {
	case !ch.Active:
		c.JSON(http.StatusAccepted, wire.GrantChange{Proposal: ch.Proposal})
	case remove:
		c.JSON(http.StatusOK, wire.GrantChange{Active: true})
	default:
		c.JSON(http.StatusCreated, wire.GrantChange{Active: true})
	}
}

func (h *handler) listProposals(c *gin.Context, caller *broker.Caller) error {
	if err := h.noQuery(c, caller, actionProposals); err != nil {
		return err
	}
	ps, err := h.b.Proposals(c.Request.Context(), broker.APIOperator(caller))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, wire.Proposals{Proposals: broker.WireProposals(ps)})
	return nil
}

func (h *handler) confirmProposal(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	if err := h.noQuery(c, caller, actionConfirm); err != nil {
		return err
	}
	seq, ok := parseCount(c.Param("seq"))
	if !ok {
		return h.b.Invalid(ctx, caller, actionConfirm, "the proposal is named by its seq, a whole number in decimal without sign or leading zero (GET /v1/admin/proposals lists them)")
	}
	// No body: one sent is a client that means something else than a
	// plain confirmation, and is told so rather than ignored.
	if body, err := readSmallBody(c, 0); err != nil || len(body) > 0 {
		return h.b.Invalid(ctx, caller, actionConfirm, "confirming a proposal takes no body: POST to /v1/admin/proposals/SEQ/confirm with none")
	}
	p, err := h.b.ConfirmGrant(ctx, caller, seq)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, p.Wire())
	return nil
}

func (h *handler) getPolicy(c *gin.Context, caller *broker.Caller) error {
	if err := h.noQuery(c, caller, actionPolicyRead); err != nil {
		return err
	}
	info, err := h.b.Policy(c.Request.Context(), broker.APIOperator(caller))
	if err != nil {
		return err
	}
	pol, _ := info.Wire()
	c.JSON(http.StatusOK, pol)
	return nil
}

func (h *handler) proposePolicy(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	if err := h.b.MayAdminister(ctx, caller, actionPolicyLoad); err != nil {
		return err
	}
	invalid := func(msg string) error { return h.b.Invalid(ctx, caller, actionPolicyLoad, msg) }
	if err := h.noQuery(c, caller, actionPolicyLoad); err != nil {
		return err
	}
	body, err := h.adminBody(c, caller, actionPolicyLoad, policy.MaxPolicyBytes, "")
	if err != nil {
		return err
	}
	if len(body) == 0 || !utf8.Valid(body) {
		return invalid("the body is the role policy's rules, UTF-8 text (as GET /v1/admin/policy answers them in \"rules\")")
	}
	ch, err := h.b.ProposePolicy(ctx, broker.APIOperator(caller), string(body))
	if err != nil {
		return err
	}
	writeChange(c, ch, false)
	return nil
}

func (h *handler) getLifetimes(c *gin.Context, caller *broker.Caller) error {
	if err := h.noQuery(c, caller, actionLifetimesRead); err != nil {
		return err
	}
	l, err := h.b.TokenLifetimesAs(c.Request.Context(), broker.APIOperator(caller))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, broker.WireLifetimes(l))
	return nil
}

func (h *handler) setLifetimes(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	if err := h.b.MayAdminister(ctx, caller, actionLifetimes); err != nil {
		return err
	}
	invalid := func(msg string) error { return h.b.Invalid(ctx, caller, actionLifetimes, msg) }
	if err := h.noQuery(c, caller, actionLifetimes); err != nil {
		return err
	}
	body, err := h.adminBody(c, caller, actionLifetimes, maxLifetimesBody, "")
	if err != nil {
		return err
	}
	var req wire.TokenLifetimes
	if err := strictjson.Decode(body, &req); err != nil {
		return invalid(invalidJSON(`{"lifetimes": {ROLE: "60d", …}}`, err))
	}
	if len(req.Lifetimes) == 0 {
		return invalid(`name the roles to change: {"lifetimes": {"enumerator": "40d"}}`)
	}
	set := map[policy.Role]time.Duration{}
	for r, s := range req.Lifetimes {
		role, err := policy.ParseRole(r)
		if err != nil {
			return invalid(err.Error())
		}
		d, err := broker.ParseLifetime(s)
		if err != nil {
			return invalid(fmt.Sprintf("%s: %v", role, err))
		}
		set[role] = d
	}
	if err := h.b.SetTokenLifetimes(ctx, broker.APIOperator(caller), set); err != nil {
		return err
	}
	l, err := h.b.TokenLifetimes(ctx)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, broker.WireLifetimes(l))
	return nil
}

func (h *handler) getTokenRecipient(c *gin.Context, caller *broker.Caller) error {
	if err := h.noQuery(c, caller, actionRecipientRead); err != nil {
		return err
	}
	r, err := h.b.TokenRecipientAs(c.Request.Context(), broker.APIOperator(caller))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, wire.TokenRecipient{Recipient: r})
	return nil
}

// setTokenRecipient answers POST /v1/admin/token-recipient, which the
// broker refuses to every API caller and records: 403 permission_denied
// to whoever may not administer, 403 host_only to an admin. Where new
// tokens go is the host operator's to say (`censusvault user
// token-recipient` on the vault host): an administrator who chose it
// would hold every token it then makes. The body is never read: the
// broker is asked to remove the recipient, so that were it ever to let
// an API caller through, tokens could no longer be made over the API
// (409 no_token_recipient) rather than go to a key the request named.
func (h *handler) setTokenRecipient(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	if err := h.b.SetTokenRecipient(ctx, broker.APIOperator(caller), ""); err != nil {
		return err
	}
	// Unreachable while no API caller registers the recipient.
	c.JSON(http.StatusOK, wire.TokenRecipient{})
	return nil
}

// explainQueryKeys are the query parameters of GET /v1/policy/explain.
var explainQueryKeys = []string{"user", "action", "area", "project", "event"}

func (h *handler) explain(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	invalid := func(msg string) error { return h.b.Invalid(ctx, caller, actionExplain, msg) }
	q, bad := queryParams(c.Request.URL.RawQuery, explainQueryKeys...)
	if bad != "" {
		return invalid(bad)
	}
	op := broker.APIOperator(caller)
	var x *broker.Explanation
	var err error
	if s, ok := q["event"]; ok {
		if len(q) != 1 {
			return invalid("give either event=N alone (a past decision) or user, action and area (and project)")
		}
		index, ok := parseCount(s[0])
		if !ok {
			return invalid("event must be an audit event's index: a whole number ≥ 0, in decimal without sign or leading zero")
		}
		x, err = h.b.ExplainEvent(ctx, op, index)
	} else {
		user, action, code := q.Get("user"), q.Get("action"), q.Get("area")
		if user == "" || action == "" || code == "" {
			return invalid("give user, action and area (and project for a researcher's request), or event=N for a past decision")
		}
		if !broker.ValidUserName(user) {
			return invalid(fmt.Sprintf("user %q: user names are 1–64 lowercase letters, digits, '.', '_' or '-'", clipParam(user)))
		}
		a, perr := policy.ParseAction(action)
		if perr != nil {
			return invalid("action: " + perr.Error())
		}
		if _, ok := h.b.Tree().Get(broker.AreaCode(code)); !ok {
			return invalid(fmt.Sprintf("area %q: no such area", clipParam(code)))
		}
		if len(q.Get("project")) > policy.MaxProjectLen {
			return invalid(fmt.Sprintf("project: at most %d bytes", policy.MaxProjectLen))
		}
		x, err = h.b.Explain(ctx, op, broker.UserID(user), a, broker.AreaCode(code), q.Get("project"))
	}
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, x.Wire())
	return nil
}
