package main

import (
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
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/censusvault/censusvault/broker/client"
)

// The self-signed pair --dev-tls makes in the data directory.
const (
	devCertFile = "tls-dev-cert.pem"
	devKeyFile  = "tls-dev-key.pem"
)

// tlsFlags are serve's transport flags.
type tlsFlags struct {
	cert, key    string
	dev          bool
	insecureHTTP bool
	maxConns     int
}

func (t *tlsFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&t.cert, "tls-cert", "", "serve HTTPS with this PEM certificate (leaf first, then intermediates); re-read with --tls-key on SIGHUP")
	fs.StringVar(&t.key, "tls-key", "", "the PEM private key of --tls-cert (mode 0600)")
	fs.BoolVar(&t.dev, "dev-tls", false, "for trials: serve HTTPS with a self-signed certificate made once in <data>/"+devCertFile+" (key "+devKeyFile+", 0600); its SHA-256 fingerprint is logged for devices to pin")
	fs.BoolVar(&t.insecureHTTP, "insecure-http", false, "allow plain HTTP on an address that is not loopback (only behind a TLS-terminating proxy on a network you trust)")
	fs.IntVar(&t.maxConns, "max-conns", 4096, "most connections served at once; more wait, unanswered, until one closes (0: no cap)")
}

func (t *tlsFlags) enabled() bool { return t.cert != "" || t.dev }

// check refuses contradictory flags and plain HTTP where the network could
// read tokens: on anything but a loopback address without --insecure-http.
func (t *tlsFlags) check(addr string) error {
	switch {
	case (t.cert == "") != (t.key == ""):
		return errors.New("--tls-cert and --tls-key go together")
	case t.dev && t.cert != "":
		return errors.New("--dev-tls makes its own certificate: give it or --tls-cert/--tls-key, not both")
	case t.insecureHTTP && t.enabled():
		return errors.New("--insecure-http is for plain HTTP: leave it out when serving TLS")
	case t.maxConns < 0:
		return errors.New("--max-conns must be 0 (no cap) or more")
	case !t.enabled() && !t.insecureHTTP && !isLoopback(addr):
		return fmt.Errorf("refusing plain HTTP on %s, which is not a loopback address: bearer tokens would cross the network in clear. "+
			"Give --tls-cert FILE --tls-key FILE (or --dev-tls for a trial), or --insecure-http if a TLS-terminating proxy on a trusted network is in front", addr)
	}
	return nil
}

// isLoopback reports whether addr's host can only be reached from this
// machine. An empty host listens on every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// setup loads the certificate (making the dev one if asked) and returns
// the server's TLS configuration and the reloader SIGHUP calls, or nils
// for plain HTTP.
func (t *tlsFlags) setup(dataDir, addr string, log *slog.Logger) (*tls.Config, *certReloader, error) {
	if !t.enabled() {
		if !isLoopback(addr) {
			log.Warn("serving plain HTTP on a non-loopback address (--insecure-http): tokens and submissions are in clear up to the TLS-terminating proxy", "addr", addr)
		}
		return nil, nil, nil
	}
	certFile, keyFile := t.cert, t.key
	if t.dev {
		var err error
		if certFile, keyFile, err = devCertificate(dataDir, addr, log); err != nil {
			return nil, nil, fmt.Errorf("--dev-tls: %w", err)
		}
	}
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if err := r.reload(); err != nil {
		return nil, nil, err
	}
	return serverTLSConfig(r.getCertificate), r, nil
}

// serverTLSConfig is TLS 1.2 or later. TLS 1.3's suites are all AEAD;
// for 1.2 (older field tablets have no 1.3) only ECDHE key exchange with
// AES-GCM or ChaCha20-Poly1305: no CBC, no RSA key exchange, no 3DES.
func serverTLSConfig(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		GetCertificate: get,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

// certReloader holds the certificate handshakes use; reload swaps it
// atomically, so a renewed pair is picked up without closing the
// listener, and a pair that fails to load leaves the old one in place.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	cur               atomic.Pointer[tls.Certificate]
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// reload reads the pair from disk and, if it is usable, swaps it in.
func (r *certReloader) reload() error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s / key %s: %w", r.certFile, r.keyFile, err)
	}
	now := time.Now()
	if now.After(c.Leaf.NotAfter) {
		return fmt.Errorf("TLS certificate %s expired on %s", r.certFile, c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if fi, err := os.Stat(r.keyFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
		r.log.Warn("the TLS key is readable by other users: chmod 600 it", "key", r.keyFile, "mode", fi.Mode().Perm().String())
	}
	r.cur.Store(&c)
	r.log.Info("TLS certificate loaded", "cert", r.certFile, "sha256", fingerprint(c.Leaf.Raw),
		"subject", c.Leaf.Subject.String(), "not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// fingerprint is the SHA-256 of a certificate's DER, as `openssl x509
// -fingerprint -sha256` prints it.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	hexes := make([]string, len(sum))
	for i, b := range sum {
		hexes[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(hexes, ":")
}

// devHosts are the names a dev certificate covers: --addr's host (this
// machine's name too when it listens on every interface) and loopback.
func devHosts(addr string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	host, _, _ := net.SplitHostPort(addr)
	ip, err := netip.ParseAddr(host)
	if host == "" || (err == nil && ip.IsUnspecified()) {
		if h, err := os.Hostname(); err == nil {
			host = h
		} else {
			host = ""
		}
	}
	for _, h := range hosts {
		if host == "" || strings.EqualFold(h, host) {
			return hosts
		}
	}
	return append(hosts, host)
}

// devCertificate returns the dev pair in dataDir, making it when there is
// none or the one there does not cover addr or expires within a day.
func devCertificate(dataDir, addr string, log *slog.Logger) (certFile, keyFile string, err error) {
	certFile, keyFile = filepath.Join(dataDir, devCertFile), filepath.Join(dataDir, devKeyFile)
	hosts := devHosts(addr)
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	switch {
	case err == nil && covers(c.Leaf, hosts) && time.Now().Add(24*time.Hour).Before(c.Leaf.NotAfter):
		log.Info("TLS: the self-signed certificate for trials, reused: pin this SHA-256 fingerprint or trust the file", "cert", certFile, "sha256", fingerprint(c.Leaf.Raw))
		return certFile, keyFile, nil
	case err == nil:
		log.Info("TLS: the self-signed certificate does not cover --addr or is about to expire: making a new one", "cert", certFile)
	case !errors.Is(err, fs.ErrNotExist):
		return "", "", fmt.Errorf("%s / %s are unusable (%v): remove them to make a new pair", certFile, keyFile, err)
	}
	certPEM, keyPEM, err := makeSelfSigned(hosts)
	if err != nil {
		return "", "", err
	}
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return "", "", err
	}
	block, _ := pem.Decode(certPEM)
	log.Info("TLS: made a self-signed certificate for trials: pin this SHA-256 fingerprint or trust the file", "cert", certFile, "hosts", strings.Join(hosts, ","), "sha256", fingerprint(block.Bytes))
	return certFile, keyFile, nil
}

func covers(leaf *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// makeSelfSigned makes an ECDSA P-256 leaf for hosts, valid a year.
func makeSelfSigned(hosts []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "censusvault dev-tls (self-signed, for trials)"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), nil
}

// writeFileAtomic writes b to a new file beside path and renames it over
// path, so a reader sees the old file or the new one, never half of one.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// limitListener accepts at most n connections at a time. When all n
// are taken it first closes the connection that has been idle longest (a
// keep-alive waiting for a next request: closing it loses nothing, its
// client reconnects), so idle sockets held by one host cannot keep
// everyone else out; only connections in the middle of a request make the
// next one wait in the kernel's backlog until one closes (and
// ReadHeaderTimeout bounds a request that never finishes its headers).
// Without a cap, 20,000 held sockets delayed health checks past 2 s.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	mu   sync.Mutex
	idle map[net.Conn]time.Time // connections the server reports idle, since when
}

// limitListen caps ln at n connections; 0 is no cap.
func limitListen(ln net.Listener, n int) net.Listener {
	if n == 0 {
		return ln
	}
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{}), idle: map[net.Conn]time.Time{}}
}

// connState is the server's http.Server.ConnState hook: it tells the
// listener which connections are idle.
func (l *limitListener) connState(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st == http.StateIdle {
		l.idle[c] = time.Now()
	} else {
		delete(l.idle, c)
	}
}

// reclaim closes the longest-idle connection, if there is one.
func (l *limitListener) reclaim() {
	l.mu.Lock()
	var oldest net.Conn
	var since time.Time
	for c, t := range l.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	delete(l.idle, oldest)
	l.mu.Unlock()
	if oldest != nil {
		oldest.Close()
	}
}

// Accept takes the next connection, then a slot for it: at the cap,
// only once someone is actually waiting, the longest-idle connection is
// closed to make room; with none idle, the new one waits, unanswered.
func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case l.sem <- struct{}{}:
	default:
		l.reclaim()
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			c.Close()
			return nil, net.ErrClosed
		}
	}
	return &limitConn{Conn: c, release: sync.OnceFunc(func() { <-l.sem })}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

const caFlagHelp = "trust only this PEM file for an https --server: the census office's CA, or the server's own certificate (with `serve --dev-tls`, <data>/" + devCertFile + ") to pin it (default: the system's roots)"

// readCA reads --ca; "" is none.
// remote is how a client command reaches a vault: --server, --ca and
// --insecure-http (the last never from the environment).
type remote struct {
	server, caFile *string
	insecureHTTP   *bool
}

// addRemoteFlags registers --server, --ca and --insecure-http on fs.
func addRemoteFlags(fs *pflag.FlagSet) remote {
	return remote{
		server:       fs.String("server", "", "the vault's base URL, e.g. https://vault.example:8440 (required)"),
		caFile:       fs.String("ca", "", caFlagHelp),
		insecureHTTP: fs.Bool("insecure-http", false, "allow a plain http --server other than this machine's loopback (a trusted network behind a TLS-terminating proxy): the bearer token then crosses it in clear; never read from the environment"),
	}
}

// clientOpts is the client's view of r, with the CA read.
func (r remote) clientOpts(token string, hc *http.Client) (client.Opts, error) {
	ca, err := readCA(*r.caFile)
	if err != nil {
		return client.Opts{}, err
	}
	return client.Opts{BaseURL: *r.server, Token: token, HTTP: hc, CA: ca, InsecureHTTP: *r.insecureHTTP}, nil
}

func readCA(file string) ([]byte, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("--ca: %w", err)}
	}
	return b, nil
}
