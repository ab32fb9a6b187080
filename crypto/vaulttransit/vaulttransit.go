// Package vaulttransit is the production crypto.KeyProvider: data keys made
// inside package crypto are wrapped by a key of HashiCorp Vault's Transit
// secrets engine, which never leaves Vault. Wrapping is transit/encrypt,
// unwrapping transit/decrypt, and moving blobs to the newest Transit key
// version transit/rewrap, each with batch_input where many keys are
// involved.
//
// The provider never creates the Transit key on the data path: an operator,
// or `censusvault keys init-vault` (CreateKey), does, with deletion_allowed
// false until a national shred (Destroy) asks for it. Before wrapping it
// checks, at most once a second, that the key still exists, because
// transit/encrypt silently creates a missing key for a token that may;
// a least-privilege data-path policy closes that door for good:
//
//	path "transit/keys/censusvault"    { capabilities = ["read"] }
//	path "transit/encrypt/censusvault" { capabilities = ["update"] }
//	path "transit/decrypt/censusvault" { capabilities = ["update"] }
//	path "transit/rewrap/censusvault"  { capabilities = ["update"] }
//
// (update without create: Vault refuses to create the key on encrypt).
//
// Failures fall in two kinds. A ciphertext Vault cannot authenticate, or
// may no longer decrypt (below min_decryption_version, or its key deleted
// by a shred), is crypto.ErrDecrypt, without detail. Everything else (the
// network, a timeout, a sealed or overloaded Vault, a denied or expired
// token) wraps ErrUnavailable, which the broker answers with 503: nothing
// is decided on a guess.
//
// The Vault token and AppRole secret ID are never printed: Config and
// Provider redact themselves, and every error of this package is rebuilt
// from Vault's messages with the credentials cut out.
package vaulttransit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/censusvault/censusvault/crypto"
)

var (
	// ErrUnavailable is wrapped by every failure that is not an
	// authentication failure of the ciphertext: Vault unreachable, slow,
	// sealed, denying, or answering something unexpected. Retrying later
	// may succeed; the broker maps it to 503.
	ErrUnavailable = errors.New("vault unavailable")
	// ErrKeyNotFound is wrapped, with ErrUnavailable, when the Transit key
	// does not exist (not yet created, or destroyed by a shred).
	ErrKeyNotFound = errors.New("transit key not found")
)

const (
	// maxBatch is the number of items per batch_input request: large
	// enough to make startup loads cheap, small enough that one request
	// stays well under Vault's default 32 MiB request limit and its
	// timeout.
	maxBatch = 250
	// maxKey bounds what we wrap and what we accept back from unwrapping;
	// crypto's payloads are well under 1 KiB.
	maxKey = 16 << 10
	// maxWrapped bounds a ciphertext we send or accept; it matches
	// crypto's bound on wrapped blobs.
	maxWrapped = 64 << 10
	// maxResponse bounds one response body: a full batch of the largest
	// ciphertexts.
	maxResponse = maxBatch*(maxWrapped+256) + 4096
	// kekCacheTTL is how stale CurrentKEK and the key-exists check may be.
	kekCacheTTL = time.Second
)

// Provider wraps keys with a Vault Transit key. It is safe for concurrent
// use.
type Provider struct {
	_       [0]func() // incomparable: holds credentials
	cfg     Config    // holds the token and secret ID: never printed
	client  *api.Client
	login   *api.Client // AppRole login, without a token; nil with a token
	timeout time.Duration

	authMu   sync.Mutex
	authGen  int       // incremented at each AppRole login
	lastAuth time.Time // of the last AppRole login
	renewAt  time.Time // when to log in again; zero: never

	infoMu    sync.Mutex // guards info and infoAt
	info      KeyInfo
	infoAt    time.Time  // zero: no cached info
	refreshMu sync.Mutex // one refresh at a time
}

var (
	_ crypto.KeyProvider      = (*Provider)(nil)
	_ crypto.BatchKeyProvider = (*Provider)(nil)
	_ crypto.KEKLabeler       = (*Provider)(nil)
	_ crypto.Rewrapper        = (*Provider)(nil)
)

// New connects to Vault as c says (logging in with AppRole if there is no
// token) and checks that the Transit key exists and can encrypt. It never
// creates the key: if it is missing, the error tells the operator to run
// `censusvault keys init-vault`.
func New(ctx context.Context, c Config) (*Provider, error) {
	p, err := dial(ctx, c)
	if err != nil {
		return nil, err
	}
	info, err := p.readKey(ctx)
	if errors.Is(err, ErrKeyNotFound) {
		return nil, fmt.Errorf("transit key %s/%s does not exist (or no Transit engine is mounted at %s): "+
			"create it with `censusvault keys init-vault`: %w", c.Mount, c.Key, c.Mount, err)
	}
	if err != nil {
		return nil, err
	}
	if err := info.usable(); err != nil {
		return nil, fmt.Errorf("transit key %s/%s: %w", c.Mount, c.Key, err)
	}
	return p, nil
}

// dial validates c and builds the clients, without touching the key.
func dial(ctx context.Context, c Config) (*Provider, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	ac := api.DefaultConfig()
	if ac.Error != nil {
		return nil, errors.New("failed to set up the Vault client: invalid VAULT_* environment")
	}
	// Config is authoritative: DefaultConfig also reads VAULT_ADDR and
	// VAULT_AGENT_ADDR (which would win over Address), and NewClient
	// VAULT_TOKEN and VAULT_NAMESPACE; all are overridden below. Other
	// standard variables (VAULT_CLIENT_CERT, VAULT_TLS_SERVER_NAME,
	// VAULT_MAX_RETRIES …) keep their usual meaning.
	ac.Address = c.Address
	ac.AgentAddress = ""
	// No client-wide timeout: the api would cancel it as a raw request
	// returns, before we read a large body. send bounds each request
	// itself, body included.
	ac.Timeout = 0
	if c.CACert != "" {
		if err := ac.ConfigureTLS(&api.TLSConfig{CACert: c.CACert}); err != nil {
			return nil, fmt.Errorf("failed to load Vault CA certificate %s", c.CACert)
		}
	}
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, errors.New("failed to set up the Vault client: invalid address or VAULT_* environment")
	}
	client.SetToken(c.Token)
	if c.Namespace != "" {
		client.SetNamespace(c.Namespace)
	} else {
		client.ClearNamespace()
	}
	p := &Provider{cfg: c, client: client, timeout: c.timeout()}
	if c.Token == "" {
		p.login, err = client.Clone()
		if err != nil {
			return nil, errors.New("failed to set up the Vault login client")
		}
		p.login.ClearToken()
		if c.Namespace != "" {
			p.login.SetNamespace(c.Namespace)
		} else {
			p.login.ClearNamespace()
		}
		if _, err := p.ensureAuth(ctx); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// String names the provider by its key and address; never its credentials.
func (p *Provider) String() string {
	if p == nil {
		return "vaulttransit.Provider(nil)"
	}
	return "vaulttransit.Provider(vault://" + p.cfg.Mount + "/" + p.cfg.Key + " at " + p.cfg.Address + ")"
}

// GoString is String, so that %#v cannot reach the token.
func (p *Provider) GoString() string { return p.String() }

func (p *Provider) path(op string) string { return p.cfg.Mount + "/" + op + "/" + p.cfg.Key }

// WrapKey encrypts key with transit/encrypt and returns Vault's
// "vault:vN:…" ciphertext.
func (p *Provider) WrapKey(ctx context.Context, key []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(key) > maxKey {
		return nil, errors.New("key too large to wrap")
	}
	if err := p.checkKey(ctx); err != nil {
		return nil, err
	}
	body := []byte(`{"plaintext":"`)
	body = base64.StdEncoding.AppendEncode(body, key)
	body = append(body, `"}`...)
	defer clear(body)
	rep, err := p.do(ctx, http.MethodPost, p.path("encrypt"), body)
	if err != nil {
		return nil, p.unavailable("encrypt", nil, err)
	}
	defer clear(rep.body)
	if rep.status != http.StatusOK {
		return nil, p.unavailable("encrypt", rep, nil)
	}
	var out struct {
		Data struct {
			Ciphertext string `json:"ciphertext"`
		} `json:"data"`
	}
	if json.Unmarshal(rep.body, &out) != nil || !validCiphertext([]byte(out.Data.Ciphertext)) {
		return nil, p.unexpected("encrypt")
	}
	return []byte(out.Data.Ciphertext), nil
}

// UnwrapKey decrypts what WrapKey produced with transit/decrypt. A
// ciphertext Vault cannot authenticate, or will not decrypt any more, is
// crypto.ErrDecrypt; every other failure wraps ErrUnavailable.
func (p *Provider) UnwrapKey(ctx context.Context, wrapped []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !validCiphertext(wrapped) {
		return nil, crypto.ErrDecrypt
	}
	body, _ := json.Marshal(struct {
		Ciphertext string `json:"ciphertext"`
	}{string(wrapped)})
	rep, err := p.do(ctx, http.MethodPost, p.path("decrypt"), body)
	if err != nil {
		return nil, p.unavailable("decrypt", nil, err)
	}
	defer clear(rep.body)
	switch {
	case rep.status == http.StatusBadRequest && allCiphertextErrors(rep.errs, true):
		return nil, crypto.ErrDecrypt
	case rep.status != http.StatusOK:
		return nil, p.unavailable("decrypt", rep, nil)
	}
	var out struct {
		Data struct {
			Plaintext json.RawMessage `json:"plaintext"`
		} `json:"data"`
	}
	if err := json.Unmarshal(rep.body, &out); err != nil {
		return nil, p.unexpected("decrypt")
	}
	defer clear(out.Data.Plaintext)
	key, err := decodePlaintext(out.Data.Plaintext)
	if err != nil {
		return nil, err
	}
	return key, nil
}

// WrapKeys encrypts keys with transit/encrypt and batch_input, at most
// maxBatch per request.
func (p *Provider) WrapKeys(ctx context.Context, keys [][]byte) ([][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, k := range keys {
		if len(k) > maxKey {
			return nil, errors.New("key too large to wrap")
		}
	}
	if len(keys) == 0 {
		return [][]byte{}, nil
	}
	if err := p.checkKey(ctx); err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(keys))
	for chunk := range chunks(keys) {
		body := []byte(`{"batch_input":[`)
		for i, k := range chunk {
			if i > 0 {
				body = append(body, ',')
			}
			body = append(body, `{"plaintext":"`...)
			body = base64.StdEncoding.AppendEncode(body, k)
			body = append(body, `"}`...)
		}
		body = append(body, "]}"...)
		wrapped, err := p.batchCiphertexts(ctx, "encrypt", body, len(chunk), false)
		clear(body)
		if err != nil {
			return nil, err
		}
		out = append(out, wrapped...)
	}
	return out, nil
}

// UnwrapKeys decrypts with transit/decrypt and batch_input, at most
// maxBatch per request. It is all or nothing: if any item fails to
// authenticate the whole call is crypto.ErrDecrypt, and if any request
// fails it wraps ErrUnavailable.
func (p *Provider) UnwrapKeys(ctx context.Context, wrapped [][]byte) ([][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, w := range wrapped {
		if !validCiphertext(w) {
			return nil, crypto.ErrDecrypt
		}
	}
	out := make([][]byte, 0, len(wrapped))
	fail := func(err error) ([][]byte, error) {
		for _, k := range out {
			clear(k)
		}
		return nil, err
	}
	for chunk := range chunks(wrapped) {
		rep, err := p.do(ctx, http.MethodPost, p.path("decrypt"), ciphertextBatch(chunk))
		if err != nil {
			return fail(p.unavailable("decrypt", nil, err))
		}
		var res struct {
			Data struct {
				BatchResults []struct {
					Plaintext json.RawMessage `json:"plaintext"`
					Error     string          `json:"error"`
				} `json:"batch_results"`
			} `json:"data"`
		}
		perr := json.Unmarshal(rep.body, &res)
		clear(rep.body)
		results := res.Data.BatchResults
		clearResults := func() {
			for _, r := range results {
				clear(r.Plaintext)
			}
		}
		if perr != nil || len(results) != len(chunk) {
			clearResults()
			if rep.status == http.StatusBadRequest && allCiphertextErrors(rep.errs, true) {
				return fail(crypto.ErrDecrypt) // the key is gone
			}
			if rep.status != http.StatusOK {
				return fail(p.unavailable("decrypt", rep, nil))
			}
			return fail(p.unexpected("decrypt"))
		}
		var itemErrs []string
		for _, r := range results {
			if r.Error != "" {
				itemErrs = append(itemErrs, r.Error)
			}
		}
		switch {
		case len(itemErrs) > 0 && allCiphertextErrors(itemErrs, true):
			clearResults()
			return fail(crypto.ErrDecrypt)
		case len(itemErrs) > 0 || rep.status != http.StatusOK:
			clearResults()
			return fail(p.unavailable("decrypt", &reply{status: rep.status, errs: firstOf(itemErrs, rep.errs)}, nil))
		}
		for _, r := range results {
			k, err := decodePlaintext(r.Plaintext)
			if err != nil {
				clearResults()
				return fail(err)
			}
			out = append(out, k)
		}
		clearResults()
	}
	return out, nil
}

// RewrapKeys re-encrypts wrapped keys under the Transit key's latest
// version with transit/rewrap and batch_input: the keys never leave Vault.
// Items that fail to authenticate make the whole call crypto.ErrDecrypt.
func (p *Provider) RewrapKeys(ctx context.Context, wrapped [][]byte) ([][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, w := range wrapped {
		if !validCiphertext(w) {
			return nil, crypto.ErrDecrypt
		}
	}
	out := make([][]byte, 0, len(wrapped))
	for chunk := range chunks(wrapped) {
		rewrapped, err := p.batchCiphertexts(ctx, "rewrap", ciphertextBatch(chunk), len(chunk), true)
		if err != nil {
			return nil, err
		}
		out = append(out, rewrapped...)
	}
	return out, nil
}

// batchCiphertexts sends one batch request whose results are ciphertexts
// (encrypt, rewrap). With decrypting set, items that fail to authenticate
// make the call ErrDecrypt.
func (p *Provider) batchCiphertexts(ctx context.Context, op string, body []byte, n int, decrypting bool) ([][]byte, error) {
	rep, err := p.do(ctx, http.MethodPost, p.path(op), body)
	if err != nil {
		return nil, p.unavailable(op, nil, err)
	}
	var res struct {
		Data struct {
			BatchResults []struct {
				Ciphertext string `json:"ciphertext"`
				Error      string `json:"error"`
			} `json:"batch_results"`
		} `json:"data"`
	}
	if json.Unmarshal(rep.body, &res) != nil || len(res.Data.BatchResults) != n {
		if rep.status != http.StatusOK {
			return nil, p.unavailable(op, rep, nil)
		}
		return nil, p.unexpected(op)
	}
	var itemErrs []string
	for _, r := range res.Data.BatchResults {
		if r.Error != "" {
			itemErrs = append(itemErrs, r.Error)
		}
	}
	switch {
	case decrypting && len(itemErrs) > 0 && allCiphertextErrors(itemErrs, false):
		return nil, crypto.ErrDecrypt
	case len(itemErrs) > 0 || rep.status != http.StatusOK:
		return nil, p.unavailable(op, &reply{status: rep.status, errs: firstOf(itemErrs, rep.errs)}, nil)
	}
	out := make([][]byte, n)
	for i, r := range res.Data.BatchResults {
		if !validCiphertext([]byte(r.Ciphertext)) {
			return nil, p.unexpected(op)
		}
		out[i] = []byte(r.Ciphertext)
	}
	return out, nil
}

// KEKOf labels the Transit key version that wrapped a blob,
// "vault:<mount>/<key>:v<N>", from its "vault:vN:" prefix. It does not
// call Vault.
func (p *Provider) KEKOf(wrapped []byte) (string, error) {
	v, ok := ciphertextVersion(wrapped)
	if !ok {
		return "", errors.New("wrapped key is not a Vault Transit ciphertext")
	}
	return p.label(v), nil
}

// CurrentKEK labels the Transit key version that wraps now,
// "vault:<mount>/<key>:v<latest_version>". It reads the key at most once a
// second.
func (p *Provider) CurrentKEK(ctx context.Context) (string, error) {
	info, err := p.cachedInfo(ctx)
	if err != nil {
		return "", err
	}
	return p.label(info.LatestVersion), nil
}

func (p *Provider) label(version int) string {
	return "vault:" + p.cfg.Mount + "/" + p.cfg.Key + ":v" + strconv.Itoa(version)
}

// checkKey fails, wrapping ErrUnavailable, if the Transit key is missing,
// so that transit/encrypt never creates it (see the package comment).
func (p *Provider) checkKey(ctx context.Context) error {
	_, err := p.cachedInfo(ctx)
	return err
}

// chunks yields s in pieces of at most maxBatch items.
func chunks[T any](s []T) func(yield func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			n := min(len(s), maxBatch)
			if !yield(s[:n:n]) {
				return
			}
			s = s[n:]
		}
	}
}

// ciphertextBatch encodes {"batch_input":[{"ciphertext":…},…]}. The
// ciphertexts are validCiphertext, so they need no escaping, but we let
// encoding/json do it anyway.
func ciphertextBatch(ws [][]byte) []byte {
	type item struct {
		Ciphertext string `json:"ciphertext"`
	}
	in := struct {
		BatchInput []item `json:"batch_input"`
	}{make([]item, len(ws))}
	for i, w := range ws {
		in.BatchInput[i].Ciphertext = string(w)
	}
	b, _ := json.Marshal(in)
	return b
}

// decodePlaintext decodes a JSON string of base64 into a fresh buffer the
// caller owns. A plaintext larger than anything we wrap is not ours:
// ErrDecrypt.
func decodePlaintext(raw json.RawMessage) ([]byte, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, fmt.Errorf("%w: unexpected response from Vault decrypt", ErrUnavailable)
	}
	src := raw[1 : len(raw)-1]
	if base64.StdEncoding.DecodedLen(len(src)) > maxKey+3 {
		return nil, crypto.ErrDecrypt
	}
	key := make([]byte, base64.StdEncoding.DecodedLen(len(src)))
	n, err := base64.StdEncoding.Decode(key, src)
	if err != nil {
		clear(key)
		return nil, fmt.Errorf("%w: unexpected response from Vault decrypt", ErrUnavailable)
	}
	if n > maxKey {
		clear(key)
		return nil, crypto.ErrDecrypt
	}
	return key[:n:n], nil
}

// validCiphertext accepts what Transit produces for symmetric keys,
// "vault:v<N>:<base64>", within maxWrapped. Anything else never reaches
// Vault.
func validCiphertext(w []byte) bool {
	if len(w) > maxWrapped {
		return false
	}
	if _, ok := ciphertextVersion(w); !ok {
		return false
	}
	rest := w[len("vault:v"):]
	for rest[0] != ':' {
		rest = rest[1:]
	}
	rest = rest[1:]
	if len(rest) == 0 {
		return false
	}
	for _, c := range rest {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}

// ciphertextVersion parses the N of a "vault:vN:" prefix as Vault does
// (decimal, at least 1), bounded to nine digits.
func ciphertextVersion(w []byte) (int, bool) {
	const prefix = "vault:v"
	if len(w) < len(prefix)+2 || string(w[:len(prefix)]) != prefix {
		return 0, false
	}
	rest := w[len(prefix):]
	n := 0
	for n < len(rest) && n < 10 && '0' <= rest[n] && rest[n] <= '9' {
		n++
	}
	if n == 0 || n > 9 || n >= len(rest) || rest[n] != ':' {
		return 0, false
	}
	v, err := strconv.Atoi(string(rest[:n]))
	if err != nil || v < 1 {
		return 0, false
	}
	return v, true
}
