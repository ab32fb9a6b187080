package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/censusvault/censusvault/broker/wire"
)

// Policy administration (an admin's token, unless said otherwise): users,
// grants, the role policy, proposals an approver confirms, token
// lifetimes, and why the policy decides. None of these calls is retried:
// each changes the vault, or is audited as one request. New tokens come
// back only age-encrypted (NewTokens.Sealed) to the field office's
// recipient, which the host operator registers on the vault host
// (`censusvault user token-recipient`), or for a reissue to the user's
// own: the field office or the user decrypts them with their identity. A
// call names no recipient ("") or one of those; any other is refused
// (403 recipient_not_registered), and with none registered the vault
// answers 409 no_token_recipient.

// MaxSealedBytes bounds the encrypted tokens the client reads: 50,000
// users of an import, with room to spare.
const MaxSealedBytes = 32 << 20

// NewTokens is the vault's answer to the creation of users, or to a
// reissue: their tokens, age-encrypted (a CSV user,token,role,area,expires
// once decrypted), and what became of their grants.
type NewTokens struct {
	Sealed []byte
	Users  int // users in Sealed
	// Active users hold their grant now; the grants of the others are
	// the Pending proposals, which an approver confirms
	// (ConfirmProposal).
	Active  int
	Pending []int64
	// Recipient is the start of the age recipient Sealed is encrypted
	// to, as the vault names it (wire.RecipientPrefix): whose identity
	// opens it.
	Recipient string
}

// AddUser creates one user and returns their token encrypted to the
// field office's registered recipient (u.Recipient "", or that one).
func (c *Client) AddUser(ctx context.Context, u wire.NewUser) (*NewTokens, error) {
	body, err := json.Marshal(u)
	if err != nil {
		return nil, err
	}
	return c.sealed(ctx, http.MethodPost, "/v1/admin/users", "application/json", bytes.NewReader(body))
}

// ImportUsers creates every user of a user file (CSV with the header
// user,role,area[,project][,expires]; at most 50,000 users), all or none,
// and returns their tokens encrypted to the field office's registered
// recipient (recipient "", or that one). csv is sent as it is read: wrap
// it to follow the upload.
func (c *Client) ImportUsers(ctx context.Context, csv io.Reader, size int64, recipient string) (*NewTokens, error) {
	path := "/v1/admin/users/import"
	if recipient != "" {
		path += "?" + url.Values{"recipient": {recipient}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, csv)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "text/csv; charset=utf-8")
	return c.doSealed(req)
}

// ReissueToken gives user a new token and ends the old one at once. The
// token is encrypted to the field office's registered recipient or, if
// none is registered, to the user's own (recipient "", or one of those).
func (c *Client) ReissueToken(ctx context.Context, user, recipient string) (*NewTokens, error) {
	body, err := json.Marshal(wire.Reissue{Recipient: recipient})
	if err != nil {
		return nil, err
	}
	return c.sealed(ctx, http.MethodPost, "/v1/admin/users/"+url.PathEscape(user)+"/reissue", "application/json", bytes.NewReader(body))
}

// RevokeUser ends user's token now. The last admin cannot be revoked
// (409 last_admin).
func (c *Client) RevokeUser(ctx context.Context, user string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.base+"/v1/admin/users/"+url.PathEscape(user), nil)
	if err != nil {
		return err
	}
	_, err = c.do(req, nil)
	return err
}

// ListUsers returns a page of users by name after after (limit 1…1000;
// 0 for the vault's default) and the after of the next page ("" at the
// end). Never a token.
func (c *Client) ListUsers(ctx context.Context, after string, limit int) (*wire.UserList, error) {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/admin/users"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var l wire.UserList
	if err := c.getJSON(ctx, path, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// User describes one user: grants, the grants waiting for an approver,
// expiry, revocation.
func (c *Client) User(ctx context.Context, name string) (*wire.User, error) {
	var u wire.User
	if err := c.getJSON(ctx, "/v1/admin/users/"+url.PathEscape(name), &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// Grants returns every grant in force and the proposals waiting for an
// approver (an admin or an auditor).
func (c *Client) Grants(ctx context.Context) (*wire.Grants, error) {
	var g wire.Grants
	if err := c.getJSON(ctx, "/v1/admin/grants", &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// Grant gives g.User the grant g (a deny with g.Deny). It holds at once
// (Active), or, for a grant of a role that reveals data or of approver,
// is a proposal an approver confirms.
func (c *Client) Grant(ctx context.Context, g wire.GrantRequest) (*wire.GrantChange, error) {
	return c.changeGrant(ctx, http.MethodPost, g)
}

// Ungrant takes the grant g away from g.User. Removing a deny is a
// proposal an approver confirms.
func (c *Client) Ungrant(ctx context.Context, g wire.GrantRequest) (*wire.GrantChange, error) {
	return c.changeGrant(ctx, http.MethodDelete, g)
}

func (c *Client) changeGrant(ctx context.Context, method string, g wire.GrantRequest) (*wire.GrantChange, error) {
	body, err := json.Marshal(g)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+"/v1/admin/grants", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	var ch wire.GrantChange
	if _, err := c.do(req, &ch); err != nil {
		return nil, err
	}
	return &ch, nil
}

// Proposals lists the proposals, pending first (an admin or an approver).
func (c *Client) Proposals(ctx context.Context) ([]wire.Proposal, error) {
	var ps wire.Proposals
	if err := c.getJSON(ctx, "/v1/admin/proposals", &ps); err != nil {
		return nil, err
	}
	return ps.Proposals, nil
}

// ConfirmProposal confirms proposal seq: an approver's act, never that of
// its proposer or of the user the grant is for (403 four_eyes).
func (c *Client) ConfirmProposal(ctx context.Context, seq int64) (*wire.Proposal, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/admin/proposals/"+strconv.FormatInt(seq, 10)+"/confirm", nil)
	if err != nil {
		return nil, err
	}
	var p wire.Proposal
	if _, err := c.do(req, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Policy returns the role policy in force and its hashes (an admin or an
// auditor).
func (c *Client) Policy(ctx context.Context) (*wire.Policy, error) {
	var p wire.Policy
	if err := c.getJSON(ctx, "/v1/admin/policy", &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// ProposePolicy proposes new role policy rules (the text Policy returns
// as Rules): they hold once an approver confirms the proposal.
func (c *Client) ProposePolicy(ctx context.Context, rules string) (*wire.GrantChange, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/admin/policy", strings.NewReader(rules))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	var ch wire.GrantChange
	if _, err := c.do(req, &ch); err != nil {
		return nil, err
	}
	return &ch, nil
}

// TokenLifetimes returns how long new tokens of each role live ("60d").
func (c *Client) TokenLifetimes(ctx context.Context) (map[string]string, error) {
	var l wire.TokenLifetimes
	if err := c.getJSON(ctx, "/v1/admin/lifetimes", &l); err != nil {
		return nil, err
	}
	return l.Lifetimes, nil
}

// SetTokenLifetimes changes the lifetime of new tokens of the roles named
// ("40d", "36h"; 1h to 5 years) and returns every role's.
func (c *Client) SetTokenLifetimes(ctx context.Context, set map[string]string) (map[string]string, error) {
	body, err := json.Marshal(wire.TokenLifetimes{Lifetimes: set})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/admin/lifetimes", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	var l wire.TokenLifetimes
	if _, err := c.do(req, &l); err != nil {
		return nil, err
	}
	return l.Lifetimes, nil
}

// TokenRecipient returns the field office's registered age recipient,
// to which new tokens are encrypted ("" if none is registered: only the
// host operator registers it).
func (c *Client) TokenRecipient(ctx context.Context) (string, error) {
	var r wire.TokenRecipient
	if err := c.getJSON(ctx, "/v1/admin/token-recipient", &r); err != nil {
		return "", err
	}
	return r.Recipient, nil
}

// Explain asks whether the policy allows user action at area (project:
// for a researcher's request), and which grant and rule decided (an
// admin, or an auditor of the area).
func (c *Client) Explain(ctx context.Context, user, action, area, project string) (*wire.Explanation, error) {
	q := url.Values{"user": {user}, "action": {action}, "area": {area}}
	if project != "" {
		q.Set("project", project)
	}
	var x wire.Explanation
	if err := c.getJSON(ctx, "/v1/policy/explain?"+q.Encode(), &x); err != nil {
		return nil, err
	}
	return &x, nil
}

// ExplainEvent re-evaluates the decision of audit event index under the
// policy as it stood then.
func (c *Client) ExplainEvent(ctx context.Context, index int64) (*wire.Explanation, error) {
	var x wire.Explanation
	if err := c.getJSON(ctx, "/v1/policy/explain?event="+strconv.FormatInt(index, 10), &x); err != nil {
		return nil, err
	}
	return &x, nil
}

func (c *Client) sealed(ctx context.Context, method, path, contentType string, body io.Reader) (*NewTokens, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	return c.doSealed(req)
}

// doSealed sends req and reads an answer of encrypted tokens.
func (c *Client) doSealed(req *http.Request) (*NewTokens, error) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxSealedBytes+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, statusError(resp.StatusCode, b)
	}
	if len(b) > MaxSealedBytes {
		return nil, fmt.Errorf("client: the encrypted tokens are over %d bytes", MaxSealedBytes)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
		return nil, fmt.Errorf("client: the answer is %q, not encrypted tokens (application/octet-stream)", ct)
	}
	if !bytes.HasPrefix(b, []byte("age-encryption.org/v1\n")) {
		return nil, errors.New("client: the answer is not an age file")
	}
	out := &NewTokens{Sealed: b}
	h := resp.Header
	if v := h.Get(wire.HeaderRecipient); len(v) <= wire.RecipientPrefixLen && strings.TrimLeft(v, "abcdefghijklmnopqrstuvwxyz0123456789") == "" {
		out.Recipient = v // an age recipient's start: lowercase bech32
	}
	if out.Users, err = strconv.Atoi(h.Get(wire.HeaderUsers)); err != nil || out.Users < 1 {
		return nil, fmt.Errorf("client: the answer has no valid %s", wire.HeaderUsers)
	}
	if v := h.Get(wire.HeaderActive); v != "" {
		if out.Active, err = strconv.Atoi(v); err != nil || out.Active < 0 || out.Active > out.Users {
			return nil, fmt.Errorf("client: the answer has no valid %s", wire.HeaderActive)
		}
	}
	if v := h.Get(wire.HeaderPending); v != "" {
		for _, s := range strings.Split(v, ",") {
			seq, err := strconv.ParseInt(s, 10, 64)
			if err != nil || seq < 1 {
				return nil, fmt.Errorf("client: the answer has no valid %s", wire.HeaderPending)
			}
			out.Pending = append(out.Pending, seq)
		}
	}
	return out, nil
}
