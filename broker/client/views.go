package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/censusvault/censusvault/broker/wire"
)

// ListOpts are a review list's options (GET /v1/submissions).
type ListOpts struct {
	Status string // wire.StatusCurrent ("" too: the vault's default), StatusSuperseded or StatusAll
	After  int64  // the Next of the previous page; 0: from the first
	Limit  int    // 1…wire.MaxListLimit; 0: the vault's default (wire.DefaultListLimit)
}

// ListSubmissions fetches one page of the review list of area: the
// metadata of the submissions under it in the caller's scope (a team
// leader's or a supervisor's), never a field. Pass the page's Next as
// After for the next page, until Next is nil.
func (c *Client) ListSubmissions(ctx context.Context, area string, o ListOpts) (*wire.SubmissionList, error) {
	q := listQuery(o)
	q.Set("area", area)
	return c.list(ctx, q)
}

// MySubmissions fetches one page of the caller's own deposits (an
// enumerator's), metadata only.
func (c *Client) MySubmissions(ctx context.Context, o ListOpts) (*wire.SubmissionList, error) {
	q := listQuery(o)
	q.Set("mine", "1")
	return c.list(ctx, q)
}

func listQuery(o ListOpts) url.Values {
	q := url.Values{}
	if o.Status != "" {
		q.Set("status", o.Status)
	}
	if o.After > 0 {
		q.Set("after", strconv.FormatInt(o.After, 10))
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	return q
}

func (c *Client) list(ctx context.Context, q url.Values) (*wire.SubmissionList, error) {
	var l wire.SubmissionList
	if err := c.getJSON(ctx, "/v1/submissions?"+q.Encode(), &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// OpenSubmission opens one submission for review: its metadata and the
// fields of the classes the caller's role may see at its EA. Each open
// counts against the caller's hourly cap (past it a *StatusError with
// status 429, code rate_limited and RetryAfter); a role that may see no
// class gets 403.
func (c *Client) OpenSubmission(ctx context.Context, id string) (*wire.SubmissionView, error) {
	var v wire.SubmissionView
	if err := c.getJSON(ctx, "/v1/submissions/"+url.PathEscape(id), &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// ReviewSubmission reviews submission id (a team leader's or
// supervisor's act): status wire.ReviewAccepted or ReviewRejected, a
// reason code of wire.ReviewReasons and a note for its enumerator. It
// returns the submission's metadata with the review. The vault answers
// 403 when not allowed (or no such id), 403 own_submission for the
// caller's own deposit and 409 superseded when a later version is
// current.
func (c *Client) ReviewSubmission(ctx context.Context, id, status, reason, note string) (*wire.SubmissionMeta, error) {
	body, err := json.Marshal(wire.ReviewRequest{Status: status, Reason: reason, Note: note})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/submissions/"+url.PathEscape(id)+"/review", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	var m wire.SubmissionMeta
	if _, err := c.do(req, &m); err != nil {
		return nil, err
	}
	return &m, nil
}
