package vaulttransit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/vault/api"
)

const (
	// minRelogin spaces AppRole logins forced by a 403, so that a role
	// that lacks a capability does not log in on every call.
	minRelogin = 2 * time.Second
	// maxDetail bounds the part of an error message quoted from Vault or
	// the network.
	maxDetail = 512
)

// reply is Vault's answer to one request: its status, its whole body (the
// caller decodes it and clears it, since it may hold key material) and the
// "errors" it lists.
type reply struct {
	status int
	body   []byte
	errs   []string
}

// do sends one request, logging in with AppRole first when the token is
// missing or due for renewal, and once more when Vault answers 403 (an
// expired token looks the same as a denied one). An HTTP answer, error
// statuses included, is a reply; err is for requests that got none.
func (p *Provider) do(ctx context.Context, method, path string, body []byte) (*reply, error) {
	gen, err := p.ensureAuth(ctx)
	if err != nil {
		return nil, err
	}
	rep, err := p.send(ctx, p.client, method, path, body)
	if err != nil || rep.status != http.StatusForbidden || p.login == nil {
		return rep, err
	}
	if !p.relogin(ctx, gen) {
		return rep, nil
	}
	clear(rep.body)
	return p.send(ctx, p.client, method, path, body)
}

// send makes one request with c, bounded by the provider's timeout
// (retries of the api client included).
func (p *Provider) send(ctx context.Context, c *api.Client, method, path string, body []byte) (*reply, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var resp *api.Response
	var err error
	switch method {
	case http.MethodGet:
		resp, err = c.Logical().ReadRawWithContext(ctx, path)
	case http.MethodPost:
		if body == nil {
			body = []byte("{}")
		}
		resp, err = c.Logical().WriteRawWithContext(ctx, path, body)
	case http.MethodDelete:
		// The api has no raw delete; its ResponseError carries what we need.
		_, err = c.Logical().DeleteWithContext(ctx, path)
		var re *api.ResponseError
		switch {
		case err == nil:
			return &reply{status: http.StatusNoContent}, nil
		case errors.As(err, &re):
			return &reply{status: re.StatusCode, errs: re.Errors}, nil
		default:
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unsupported method %s", method)
	}
	var re *api.ResponseError
	if err != nil && !errors.As(err, &re) || resp == nil {
		if resp != nil {
			resp.Body.Close()
		}
		if err == nil {
			err = errors.New("no response")
		}
		return nil, err
	}
	defer resp.Body.Close()
	b, rerr := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if rerr != nil || len(b) > maxResponse {
		clear(b)
		if rerr == nil {
			rerr = errors.New("response too large")
		}
		return nil, rerr
	}
	rep := &reply{status: resp.StatusCode, body: b}
	if re != nil {
		rep.errs = re.Errors
	}
	return rep, nil
}

// ensureAuth logs in with AppRole if there is no token yet or it is due
// for renewal, and returns the login generation the next request uses.
func (p *Provider) ensureAuth(ctx context.Context) (int, error) {
	if p.login == nil {
		return 0, nil
	}
	p.authMu.Lock()
	defer p.authMu.Unlock()
	if p.authGen > 0 && (p.renewAt.IsZero() || time.Now().Before(p.renewAt)) {
		return p.authGen, nil
	}
	err := p.loginLocked(ctx)
	return p.authGen, err
}

// relogin logs in again after a 403 with the token of generation gen. It
// reports whether the request is worth retrying: another goroutine has
// already logged in since, or this one just did.
func (p *Provider) relogin(ctx context.Context, gen int) bool {
	p.authMu.Lock()
	defer p.authMu.Unlock()
	if p.authGen != gen {
		return true
	}
	if time.Since(p.lastAuth) < minRelogin {
		return false
	}
	return p.loginLocked(ctx) == nil
}

// loginLocked logs in at auth/<mount>/login and installs the new token.
func (p *Provider) loginLocked(ctx context.Context) error {
	body, _ := json.Marshal(struct {
		RoleID   string `json:"role_id"`
		SecretID string `json:"secret_id,omitempty"`
	}{p.cfg.RoleID, p.cfg.SecretID})
	defer clear(body)
	path := "auth/" + p.cfg.appRoleMount() + "/login"
	rep, err := p.send(ctx, p.login, http.MethodPost, path, body)
	if err != nil {
		return p.unavailable("AppRole login", nil, err)
	}
	defer clear(rep.body)
	if rep.status != http.StatusOK {
		return p.unavailable("AppRole login", rep, nil)
	}
	var out struct {
		Auth *struct {
			ClientToken   string `json:"client_token"`
			LeaseDuration int    `json:"lease_duration"`
		} `json:"auth"`
	}
	if json.Unmarshal(rep.body, &out) != nil || out.Auth == nil || out.Auth.ClientToken == "" {
		return p.unexpected("AppRole login")
	}
	p.client.SetToken(out.Auth.ClientToken)
	now := time.Now()
	p.authGen++
	p.lastAuth = now
	p.renewAt = time.Time{}
	if d := time.Duration(out.Auth.LeaseDuration) * time.Second; d > 0 {
		// Log in again well before the token expires rather than renew it:
		// AppRole tokens commonly have a short max TTL anyway.
		p.renewAt = now.Add(d * 3 / 4)
	}
	return nil
}

// vaultError is a failure message rebuilt from Vault's answer with the
// credentials cut out; the original error is deliberately not wrapped.
type vaultError struct {
	msg string
	is  []error
}

func (e *vaultError) Error() string   { return e.msg }
func (e *vaultError) Unwrap() []error { return e.is }

// unavailable builds an ErrUnavailable error for op from a reply or a
// transport error. A context error is wrapped too, so callers can tell a
// deadline from a refusal.
func (p *Provider) unavailable(op string, rep *reply, err error) error {
	var ve *vaultError
	if errors.As(err, &ve) {
		return err // already ours (a failed login)
	}
	is := []error{ErrUnavailable}
	var detail string
	switch {
	case err != nil:
		detail = err.Error()
		for _, c := range []error{context.DeadlineExceeded, context.Canceled} {
			if errors.Is(err, c) {
				is = append(is, c)
			}
		}
	case rep != nil:
		detail = strings.Join(messages(rep.errs), "; ")
		if keyMissing(rep) {
			is = append(is, ErrKeyNotFound)
			if detail == "" {
				detail = "not found"
			}
		}
		if detail == "" {
			detail = http.StatusText(rep.status)
		}
		detail += " (HTTP " + strconv.Itoa(rep.status) + ")"
	}
	return &vaultError{msg: "vault unavailable: " + op + " " + p.cfg.Mount + "/" + p.cfg.Key + ": " + p.redact(detail), is: is}
}

// unexpected is for answers that parse but make no sense.
func (p *Provider) unexpected(op string) error {
	return &vaultError{msg: "vault unavailable: " + op + " " + p.cfg.Mount + "/" + p.cfg.Key + ": unexpected response", is: []error{ErrUnavailable}}
}

// redact cuts the credentials out of s and bounds its length. Vault does
// not echo them, but network errors and future messages are not ours to
// trust.
func (p *Provider) redact(s string) string {
	for _, secret := range []string{p.cfg.Token, p.cfg.SecretID, p.cfg.RoleID, p.client.Token()} {
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	if len(s) > maxDetail {
		s = strings.ToValidUTF8(s[:maxDetail], "") + "…"
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	return strings.ReplaceAll(s, "\n", " ")
}

// allCiphertextErrors reports whether errs is non-empty and holds only
// Transit's answers about the ciphertext itself: it does not
// authenticate, is malformed, or its version is below
// min_decryption_version. With keyGone, a deleted key counts too: after a
// shred destroyed it, its ciphertexts are permanently unreadable.
func allCiphertextErrors(errs []string, keyGone bool) bool {
	errs = messages(errs)
	if len(errs) == 0 {
		return false
	}
	for _, e := range errs {
		switch {
		case strings.Contains(e, "message authentication failed"),
			strings.HasPrefix(e, "invalid ciphertext"),
			strings.Contains(e, "disallowed by policy (too old)"),
			keyGone && e == "encryption key not found":
		default:
			return false
		}
	}
	return true
}

// keyMissing reports whether Vault answered that the key (or the mount)
// does not exist: 404 for reads and unknown paths, 400 with one of
// Transit's messages for writes.
func keyMissing(rep *reply) bool {
	if rep.status == http.StatusNotFound {
		return true
	}
	if rep.status != http.StatusBadRequest {
		return false
	}
	for _, e := range messages(rep.errs) {
		if e == "encryption key not found" || e == "key not found" || strings.HasPrefix(e, "no existing key named") {
			return true
		}
	}
	return false
}

// messages flattens Vault's errors, which are often go-multierror texts
// ("1 error occurred:\n\t* permission denied\n\n"), into one message each.
func messages(errs []string) []string {
	var out []string
	for _, e := range errs {
		for line := range strings.Lines(e) {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasSuffix(line, " occurred:") {
				continue
			}
			out = append(out, strings.TrimPrefix(line, "* "))
		}
	}
	return out
}

// firstOf returns the first non-empty list.
func firstOf(a, b []string) []string {
	if len(a) > 0 {
		return a[:1]
	}
	return b
}
