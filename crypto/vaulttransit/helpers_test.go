package vaulttransit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/censusvault/censusvault/crypto/vaulttransit"
)

// env is a Vault server the tests may use, with a root token.
type env struct {
	addr, token string
}

// vaultEnv reads VAULT_ADDR and VAULT_TOKEN (set by .ci/run, which starts
// a dev server). Without them the test skips, except in CI, where that is
// a failure: the integration tests must run there.
func vaultEnv(tb testing.TB) env {
	tb.Helper()
	e := env{addr: os.Getenv("VAULT_ADDR"), token: os.Getenv("VAULT_TOKEN")}
	if e.addr == "" || e.token == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal("VAULT_ADDR and VAULT_TOKEN must be set in CI (.ci/run starts a Vault dev server)")
		}
		tb.Skip("VAULT_ADDR and VAULT_TOKEN not set: no Vault server to test against")
	}
	return e
}

func randomName(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// config is a root-token Config for key on the transit mount.
func (e env) config(key string) vaulttransit.Config {
	return vaulttransit.Config{Address: e.addr, Token: e.token, Mount: "transit", Key: key, Timeout: 10 * time.Second}
}

// newKey creates a uniquely named Transit key, destroyed when the test
// ends, and returns a provider for it.
func newKey(tb testing.TB, e env) (*vaulttransit.Provider, vaulttransit.Config) {
	tb.Helper()
	cfg := e.config(randomName("cvtest-"))
	ctx := context.Background()
	if err := vaulttransit.CreateKey(ctx, cfg); err != nil {
		tb.Fatalf("CreateKey: %v", err)
	}
	p, err := vaulttransit.New(ctx, cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() {
		if err := p.Destroy(context.Background()); err != nil && !errors.Is(err, vaulttransit.ErrKeyNotFound) {
			tb.Errorf("cleanup: Destroy: %v", err)
		}
	})
	return p, cfg
}

// root is a plain api client with the root token, for test set-up that is
// not the provider's business (policies, AppRole).
func (e env) root(tb testing.TB) *api.Client {
	tb.Helper()
	c, err := api.NewClient(&api.Config{Address: e.addr})
	if err != nil {
		tb.Fatal(err)
	}
	c.SetToken(e.token)
	return c
}

// countingProxy is an HTTP reverse proxy in front of the real Vault that
// counts requests by path, to check how many round trips a call makes.
type countingProxy struct {
	URL   string
	mu    sync.Mutex
	paths map[string]int
	// wrapBody, when set before the first request, wraps each inbound
	// request body as the proxy's transport will read it (for the test
	// that forces the proxy's body race; see newCountingProxy).
	wrapBody func(r *http.Request) io.ReadCloser
}

func newCountingProxy(tb testing.TB, e env) *countingProxy {
	tb.Helper()
	target, err := url.Parse(e.addr)
	if err != nil {
		tb.Fatal(err)
	}
	cp := &countingProxy{paths: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cp.mu.Lock()
		cp.paths[r.URL.Path]++
		cp.mu.Unlock()
		// Full duplex: by default Go's HTTP/1 server drains and closes the
		// inbound request body when the handler starts writing its
		// response. The proxy's transport, after copying Content-Length
		// bytes upstream, reads the body once more to check it is not
		// longer; when Vault's answer has already come back and is being
		// copied (the writing goroutine was descheduled on a busy
		// machine), that read finds the body closed, the transport drops
		// the upstream connection mid-answer ("use of closed network
		// connection") and the client reads "unexpected EOF"
		// (TestBatchRoundTrip's flake; TestCountingProxyBodyRace forces it).
		if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
			http.Error(w, "proxy: "+err.Error(), http.StatusInternalServerError)
			return
		}
		if cp.wrapBody != nil {
			r = r.Clone(r.Context())
			r.Body = cp.wrapBody(r)
		}
		rp.ServeHTTP(w, r)
	}))
	tb.Cleanup(srv.Close)
	cp.URL = srv.URL
	return cp
}

func (cp *countingProxy) count(path string) int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.paths[path]
}

func (cp *countingProxy) reset() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	clear(cp.paths)
}

// tcpProxy is a loopback TCP proxy in front of Vault that the outage test
// cuts and restores: a -dev server keeps its storage in memory, so it
// cannot be restarted.
type tcpProxy struct {
	addr   string
	target string
	ln     net.Listener
	mode   atomic.Int32
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

const (
	proxyUp    = iota // forward
	proxyReset        // drop every connection, close new ones at once
	proxyHang         // drop every connection, accept new ones and never answer
)

func newTCPProxy(tb testing.TB, e env) *tcpProxy {
	tb.Helper()
	u, err := url.Parse(e.addr)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &tcpProxy{addr: "http://" + ln.Addr().String(), target: u.Host, ln: ln, conns: map[net.Conn]struct{}{}}
	go p.serve()
	tb.Cleanup(func() {
		ln.Close()
		p.set(proxyReset)
	})
	return p
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		switch p.mode.Load() {
		case proxyReset:
			c.Close()
		case proxyHang:
			p.track(c)
		default:
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.track(c)
			p.track(up)
			go func() {
				io.Copy(up, c)
				up.Close()
			}()
			go func() {
				io.Copy(c, up)
				c.Close()
			}()
		}
	}
}

func (p *tcpProxy) track(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns[c] = struct{}{}
}

// set switches the proxy; leaving proxyUp drops every open connection.
func (p *tcpProxy) set(mode int32) {
	p.mode.Store(mode)
	if mode == proxyUp {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// policy writes an ACL policy and returns its name.
func (e env) policy(tb testing.TB, rules string) string {
	tb.Helper()
	name := randomName("cvtest-policy-")
	c := e.root(tb)
	if err := c.Sys().PutPolicy(name, rules); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Sys().DeletePolicy(name) })
	return name
}

// keyPolicy allows the given operations (encrypt, decrypt, rewrap) on key,
// and reading it, which New needs.
func keyPolicy(key string, ops ...string) string {
	var b strings.Builder
	b.WriteString(`path "transit/keys/` + key + `" { capabilities = ["read"] }` + "\n")
	for _, op := range ops {
		b.WriteString(`path "transit/` + op + `/` + key + `" { capabilities = ["update"] }` + "\n")
	}
	return b.String()
}
