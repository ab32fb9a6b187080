package main_test

// serve over TLS, tested as its attackers and its users meet it: a real
// `serve` process, real handshakes from clients that offer what old or
// hostile clients offer, the certificate swapped under a running
// listener, and connections held open to exhaust it.

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker/client"
	"github.com/censusvault/censusvault/broker/testdeadline"
)

// startTLSServer runs `serve --data dir` with extra flags on a free
// loopback port and waits until /healthz answers over https to a client
// trusting the PEM file ca names (read once it exists: --dev-tls writes
// it at start).
func startTLSServer(t *testing.T, dir, ca string, extra ...string) *server {
	t.Helper()
	addr := freeAddr(t)
	s, err := launchServe(t, "https", addr, dir, extra...)
	if err != nil {
		t.Fatal(err)
	}
	deadline := testdeadline.Of(t)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			t.Fatalf("serve exited before it was ready (%v):\n%s", s.err, s.log)
		default:
		}
		if pem, err := os.ReadFile(ca); err == nil && strings.Contains(s.log.String(), "msg=serving addr="+addr+" scheme=https ") {
			resp, err := httpsClient(t, pem).Get(s.base + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return s
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("serve did not answer /healthz over https in time:\n%s", s.log)
	return nil
}

// httpsClient trusts only the PEM certificates in ca.
func httpsClient(t *testing.T, ca []byte) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("no certificate in %q", ca)
	}
	return &http.Client{
		Timeout:   time.Until(testdeadline.Of(t)),
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
}

// handshake connects to the server with cfg and returns the certificate
// it showed, or the handshake's error.
func handshake(t *testing.T, s *server, cfg *tls.Config) (*x509.Certificate, error) {
	t.Helper()
	d := &net.Dialer{Deadline: testdeadline.Of(t)}
	c, err := tls.DialWithDialer(d, "tcp", strings.TrimPrefix(s.base, "https://"), cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

func sha256Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// testCA is a certificate authority made by the test, as a census office's
// own CA would be.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "census office test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes an ECDSA leaf for 127.0.0.1 to certFile and keyFile, each
// replaced atomically, and returns its DER.
func (ca *testCA) issue(t *testing.T, serial int64, certFile, keyFile string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: fmt.Sprintf("vault leaf %d", serial)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600)
	replaceFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	return der
}

func replaceFile(t *testing.T, path string, b []byte, mode os.FileMode) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestServeDevTLS: --dev-tls makes a self-signed pair a device can pin;
// a client trusting it deposits and reads progress; old protocol versions
// and CBC-only clients are refused; HSTS is on every answer; a restart
// reuses the pair.
func TestServeDevTLS(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	enumTok := addUser(t, dir, "lan", "enumerator", "18070-01")
	tlTok := addUser(t, dir, "minh", "team_leader", "18070")
	certFile := filepath.Join(dir, "tls-dev-cert.pem")
	s := startTLSServer(t, dir, certFile, "--dev-tls")

	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatalf("%s holds no PEM certificate", certFile)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	fp := sha256Fingerprint(block.Bytes)
	if !strings.Contains(s.log.String(), "sha256="+fp) {
		t.Errorf("serve --dev-tls does not print the certificate's SHA-256 fingerprint %s:\n%s", fp, s.log)
	}
	if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || leaf.IsCA {
		t.Errorf("dev certificate: key %T, CA %v; want an ECDSA leaf", leaf.PublicKey, leaf.IsCA)
	}
	for _, h := range []string{"127.0.0.1", "::1", "localhost"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("dev certificate does not cover %s: %v", h, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "tls-dev-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("dev key: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}

	// A device that trusts (pins) the certificate deposits; its team
	// leader reads the progress.
	ctx := testdeadline.Context(t)
	dev, err := client.New(client.Opts{BaseURL: s.base, Token: enumTok, CA: certPEM})
	if err != nil {
		t.Fatal(err)
	}
	r, err := dev.Recipient(ctx)
	if err != nil {
		t.Fatalf("recipient over TLS: %v", err)
	}
	ct, err := client.Encrypt(r, household(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := dev.Deposit(ctx, ct); err != nil || !res.Created {
		t.Fatalf("deposit over TLS: %+v %v", res, err)
	}
	tl, err := client.New(client.Opts{BaseURL: s.base, Token: tlTok, CA: certPEM})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := tl.Progress(ctx, "18070-01", 0)
	if err != nil || len(rep.Rows) != 1 || rep.Rows[0].Deposited != 1 {
		t.Fatalf("progress over TLS: %+v %v", rep, err)
	}

	// A client that trusts only the system's roots is not fooled into
	// accepting it (nor is the self-signed pair of another vault).
	plain, err := client.New(client.Opts{BaseURL: s.base, Token: tlTok})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Progress(ctx, "18070-01", 0); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client without the pinned certificate: %v, want a certificate error", err)
	}

	// HSTS on every answer over TLS, errors included.
	hc := httpsClient(t, certPEM)
	for _, path := range []string{"/healthz", "/v1/progress?area=18070", "/no-such-route"} {
		resp, err := hc.Get(s.base + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
			t.Errorf("GET %s over TLS (%d): Strict-Transport-Security %q, want max-age=31536000", path, resp.StatusCode, got)
		}
	}

	// What older or hostile clients offer is refused.
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	if _, err := handshake(t, s, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Errorf("a TLS 1.1 client completed a handshake")
	}
	cbc := []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA, tls.TLS_RSA_WITH_AES_128_CBC_SHA256,
	}
	if _, err := handshake(t, s, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12, CipherSuites: cbc}); err == nil {
		t.Errorf("a TLS 1.2 client offering only CBC suites completed a handshake")
	}
	// An old tablet with TLS 1.2 and one AEAD suite is served.
	for _, suite := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256} {
		if _, err := handshake(t, s, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}}); err != nil {
			t.Errorf("a TLS 1.2 client offering %s: %v", tls.CipherSuiteName(suite), err)
		}
	}
	s.stop(t)

	// A later start reuses the pair: pinned devices keep working.
	s = startTLSServer(t, dir, certFile, "--dev-tls")
	if again, err := os.ReadFile(certFile); err != nil || string(again) != string(certPEM) {
		t.Errorf("a restart with --dev-tls made a new certificate (%v)", err)
	}
	if got, err := handshake(t, s, &tls.Config{RootCAs: pool}); err != nil || sha256Fingerprint(got.Raw) != fp {
		t.Errorf("after a restart the server shows %v (%v), want the pinned %s", got, err, fp)
	}
	s.stop(t)
}

// TestServeTLSReloadOnSIGHUP: a certificate from the office's CA; the CLI
// trusts it with --ca; SIGHUP swaps in a renewed pair without closing the
// listener, and a broken pair leaves the current one serving.
func TestServeTLSReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	tlsDir := t.TempDir()
	ca := newTestCA(t)
	caFile := writeFile(t, filepath.Join(tlsDir, "ca.pem"), ca.pem)
	certFile, keyFile := filepath.Join(tlsDir, "vault.crt"), filepath.Join(tlsDir, "vault.key")
	first := ca.issue(t, 2, certFile, keyFile)
	s := startTLSServer(t, dir, caFile, "--tls-cert", certFile, "--tls-key", keyFile)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	shows := func() string {
		t.Helper()
		c, err := handshake(t, s, &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatalf("handshake: %v\n%s", err, s.log)
		}
		return sha256Fingerprint(c.Raw)
	}
	if got := shows(); got != sha256Fingerprint(first) {
		t.Fatalf("server shows %s, want the first certificate %s", got, sha256Fingerprint(first))
	}

	// The CLI over https: --ca (or CENSUSVAULT_CA) trusts the office's CA;
	// without it the system's roots do not.
	out := filepath.Join(t.TempDir(), "cp.note")
	if r := cv(t, "audit", "checkpoint", "--server", s.base, "--out", out); r.code != 2 || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("audit checkpoint over https without --ca: want exit 2 and a certificate error:\n%s", r)
	}
	mustCV(t, "audit", "checkpoint", "--server", s.base, "--ca", caFile, "--out", out)
	if r := cvEnv(t, []string{"CENSUSVAULT_CA=" + caFile}, "audit", "checkpoint", "--server", s.base, "--out", out); r.code != 0 || strings.Contains(r.stderr, "ignored") {
		t.Errorf("audit checkpoint with CENSUSVAULT_CA:\n%s", r)
	}

	// A keep-alive connection made before the reload.
	hc := httpsClient(t, ca.pem)
	get := func() {
		t.Helper()
		resp, err := hc.Get(s.base + "/healthz")
		if err != nil {
			t.Fatalf("GET /healthz: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get()

	renewed := ca.issue(t, 3, certFile, keyFile)
	hup := func() {
		t.Helper()
		if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	hup()
	deadline := testdeadline.Of(t)
	for shows() != sha256Fingerprint(renewed) {
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP the server still shows the first certificate:\n%s", s.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	get() // the listener and the old connection survived
	select {
	case <-s.exited:
		t.Fatalf("serve exited on SIGHUP: %v", s.err)
	default:
	}

	// A broken renewal keeps the current pair and says why.
	replaceFile(t, certFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"), 0o644)
	hup()
	for !strings.Contains(s.log.String(), "TLS certificate NOT reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("serve does not log a failed reload:\n%s", s.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := shows(); got != sha256Fingerprint(renewed) {
		t.Errorf("after a failed reload the server shows %s, want the renewed %s", got, sha256Fingerprint(renewed))
	}
	s.stop(t)
}

// TestServePlainHTTP: no HSTS on plain HTTP; plain HTTP on an address
// other machines can reach is refused without --insecure-http; a
// half-given TLS pair is refused.
func TestServePlainHTTP(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	s := startServer(t, dir)
	resp, err := http.Get(s.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Strict-Transport-Security"); got != "" {
		t.Errorf("plain HTTP answers with Strict-Transport-Security %q", got)
	}
	s.stop(t)

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--addr", "0.0.0.0:0"}, "refusing plain HTTP on 0.0.0.0:0"},
		{[]string{"--addr", ":0"}, "refusing plain HTTP on :0"},
		{[]string{"--addr", "127.0.0.1:0", "--tls-cert", "x.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--addr", "127.0.0.1:0", "--dev-tls", "--insecure-http"}, "--insecure-http is for plain HTTP"},
		{[]string{"--addr", "127.0.0.1:0", "--max-conns", "-1"}, "--max-conns"},
	} {
		r := cv(t, append([]string{"serve", "--data", dir}, tc.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("serve %s: want exit 2 and %q:\n%s", strings.Join(tc.args, " "), tc.msg, r)
		}
	}
	// The switch that allows it is never read from the environment.
	r := cvEnv(t, []string{"CENSUSVAULT_INSECURE_HTTP=true"}, "serve", "--data", dir, "--addr", "0.0.0.0:0")
	if r.code != 2 || !strings.Contains(r.stderr, "CENSUSVAULT_INSECURE_HTTP is ignored") || !strings.Contains(r.stderr, "refusing plain HTTP") {
		t.Errorf("serve with CENSUSVAULT_INSECURE_HTTP=true on 0.0.0.0: want exit 2, the variable ignored:\n%s", r)
	}
}

// TestServeMaxConns: with --max-conns 3, three held connections take every
// slot: a fourth is not answered until one of them closes. Below the cap
// the health route answers.
func TestServeMaxConns(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	s := startServer(t, dir, "--max-conns", "3")
	addr := strings.TrimPrefix(s.base, "http://")
	deadline := testdeadline.Of(t)
	type conn struct {
		net.Conn
		r *bufio.Reader
	}
	dial := func() conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, time.Until(deadline))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: vault\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		return conn{c, bufio.NewReader(c)}
	}
	health := func(c conn, until time.Time) error {
		c.SetReadDeadline(until)
		resp, err := http.ReadResponse(c.r, nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(b) != "ok\n" {
			return fmt.Errorf("%d %q", resp.StatusCode, b)
		}
		return nil
	}
	// The startup probe's keep-alive connection would hold a slot: close
	// it.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()

	// Three connections in the middle of a request (headers not yet
	// finished) fill the cap: they cannot be closed without losing a
	// request, so a fourth waits.
	var busy []net.Conn
	for range 3 {
		c, err := net.DialTimeout("tcp", addr, time.Until(deadline))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: vault\r\n"); err != nil {
			t.Fatal(err)
		}
		busy = append(busy, c)
	}
	// The fourth: the kernel accepts the TCP connection, serve does not
	// answer. Its silence is only checked for a moment: on a slow
	// machine that can let a broken cap pass, never fail a working one.
	fourth := dial()
	err := health(fourth, time.Now().Add(500*time.Millisecond))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a fourth connection beyond --max-conns 3 was answered (%v)", err)
	}
	busy[0].Close()
	if err := health(fourth, deadline); err != nil {
		t.Fatalf("the fourth connection is not served after one of the three closed: %v\n%s", err, s.log)
	}
	for _, c := range busy[1:] {
		c.Close()
	}
	fourth.Close()

	// One host holding idle keep-alive connections cannot keep others
	// out: at the cap, the longest-idle one is closed for a newcomer.
	var idle []conn
	for i := range 3 {
		c := dial()
		if err := health(c, deadline); err != nil {
			t.Fatalf("health check %d, below the cap: %v\n%s", i+1, err, s.log)
		}
		idle = append(idle, c)
	}
	newcomer := dial()
	// Served at once, not when the server's 120 s IdleTimeout would have
	// freed a slot anyway: half of it is the bound that tells the two
	// apart (with the slot reclaimed, the answer takes milliseconds).
	until := time.Now().Add(60 * time.Second)
	if deadline.Before(until) {
		until = deadline
	}
	if err := health(newcomer, until); err != nil {
		t.Fatalf("a newcomer was not served while the cap was held by idle connections: %v\n%s", err, s.log)
	}
	s.stop(t)
}
