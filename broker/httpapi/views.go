package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/internal/strictjson"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/policy"
	"github.com/gin-gonic/gin"
)

// listSubmissionKeys are the query parameters of GET /v1/submissions.
var listSubmissionKeys = []string{"area", "status", "after", "limit", "mine"}

// listSubmissions answers GET /v1/submissions: a review list (metadata
// only) of an area, or of the caller's own deposits with mine=1.
func (h *handler) listSubmissions(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	invalid := func(msg string) error { return h.b.Invalid(ctx, caller, string(policy.ListSubmissions), msg) }
	q, bad := queryParams(c.Request.URL.RawQuery, listSubmissionKeys...)
	if bad != "" {
		return invalid(bad)
	}
	opts := broker.ListOpts{Status: q.Get("status"), After: -1}
	if _, ok := q["status"]; ok && opts.Status == "" {
		return invalid("status must be current, superseded or all")
	}
	if s, ok := q["after"]; ok {
		v, ok := parseCount(s[0])
		if !ok {
			return invalid("after must be the next of a previous page: a whole number ≥ 0, in decimal without sign or leading zero")
		}
		opts.After = v
	}
	if s, ok := q["limit"]; ok {
		v, ok := parseCount(s[0])
		if !ok || v < 1 || v > wire.MaxListLimit {
			return invalid(fmt.Sprintf("limit must be between 1 and %d", wire.MaxListLimit))
		}
		opts.Limit = int(v)
	}
	if s, ok := q["mine"]; ok {
		if s[0] != "1" {
			return invalid("mine: give mine=1 for your own submissions, or leave it out")
		}
		opts.Mine = true
	}
	code, hasArea := q["area"]
	area := ""
	if hasArea {
		if code[0] == "" {
			return invalid("area: give an area code")
		}
		area = code[0]
	}
	list, err := h.b.ListSubmissions(ctx, caller, broker.AreaCode(area), opts)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, list)
	return nil
}

// openSubmission answers GET /v1/submissions/{id}: one submission opened
// for review, with the field classes the caller may see.
func (h *handler) openSubmission(c *gin.Context, caller *broker.Caller) error {
	if err := h.noQuery(c, caller, string(policy.ReadSubmission)); err != nil {
		return err
	}
	v, err := h.b.OpenSubmission(c.Request.Context(), caller, broker.SubmissionID(c.Param("id")))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, v)
	return nil
}

// maxReviewBody bounds the body of a review: a note of
// wire.MaxReviewNote bytes, escaped, and the rest.
const maxReviewBody = 4 << 10

// reviewSubmission answers POST /v1/submissions/{id}/review: the
// caller's review of a current submission. The body is strict JSON
// (wire.ReviewRequest); an error message never quotes the note.
func (h *handler) reviewSubmission(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	action := string(policy.ReviewSubmission)
	if err := h.noQuery(c, caller, action); err != nil {
		return err
	}
	body, err := readSmallBody(c, maxReviewBody)
	if err != nil {
		return h.b.Invalid(ctx, caller, action, err.Error())
	}
	var req wire.ReviewRequest
	if err := strictjson.Decode(body, &req); err != nil {
		msg := err.Error()
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			msg = "every member is a string" // not Go's type names
		}
		codes := make([]string, len(wire.ReviewReasons))
		for i, r := range wire.ReviewReasons {
			codes[i] = r.Code
		}
		return h.b.Invalid(ctx, caller, action, fmt.Sprintf(`the body is {"status": "accepted"|"rejected", "reason": %s, "note": TEXT}: %s`,
			strings.Join(codes, "|"), msg))
	}
	m, err := h.b.ReviewSubmission(ctx, caller, broker.SubmissionID(c.Param("id")), req.Status, req.Reason, req.Note)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, m)
	return nil
}
