package broker_test

// Rotation, rewrap, switching providers, national shredding and a Vault
// outage under load, through the broker, against a real HashiCorp Vault
// server (a -dev server that .ci/run starts; VAULT_ADDR and VAULT_TOKEN).
// Each test makes its own Transit keys and destroys them at the end.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/httpapi"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/crypto/vaulttransit"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage/sqlite"
	"github.com/google/uuid"
)

// vaultServer is the Vault the tests use, with a root token.
type vaultServer struct{ addr, token string }

// needVault reads VAULT_ADDR and VAULT_TOKEN. Without them the test skips,
// except in CI, where the integration tests must run.
func needVault(tb testing.TB) vaultServer {
	tb.Helper()
	v := vaultServer{addr: os.Getenv("VAULT_ADDR"), token: os.Getenv("VAULT_TOKEN")}
	if v.addr == "" || v.token == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal("VAULT_ADDR and VAULT_TOKEN must be set in CI (.ci/run starts a Vault dev server)")
		}
		tb.Skip("VAULT_ADDR and VAULT_TOKEN not set: no Vault server to test against")
	}
	return v
}

// transitKeys are one Transit key per use, as `--keys vault://transit/P`
// names them: P-system, P-identifying, P-analytic.
type transitKeys struct {
	prefix string
	cfg    map[string]vaulttransit.Config // by use: "system", "identifying", "analytic"
	p      map[string]*vaulttransit.Provider
}

var keyUses = []string{"system", string(crypto.Identifying), string(crypto.Analytic)}

// newTransitKeys creates the three keys, destroyed when the test ends;
// the providers reach Vault at via (a proxy), or directly if via is "".
func newTransitKeys(tb testing.TB, v vaultServer, via string, timeout time.Duration) *transitKeys {
	tb.Helper()
	ctx := context.Background()
	var r [6]byte
	rand.Read(r[:])
	k := &transitKeys{prefix: "cvkeys-" + hex.EncodeToString(r[:]), cfg: map[string]vaulttransit.Config{}}
	for _, use := range keyUses {
		direct := vaulttransit.Config{Address: v.addr, Token: v.token, Mount: "transit", Key: k.prefix + "-" + use, Timeout: 10 * time.Second}
		if err := vaulttransit.CreateKey(ctx, direct); err != nil {
			tb.Fatalf("CreateKey %s: %v", direct.Key, err)
		}
		tb.Cleanup(func() {
			p, err := vaulttransit.New(context.Background(), direct)
			if errors.Is(err, vaulttransit.ErrKeyNotFound) {
				return // destroyed by the test
			}
			if err == nil {
				err = p.Destroy(context.Background())
			}
			if err != nil {
				tb.Errorf("cleanup of Transit key %s: %v", direct.Key, err)
			}
		})
		cfg := direct
		if via != "" {
			cfg.Address = via
		}
		if timeout > 0 {
			cfg.Timeout = timeout
		}
		k.cfg[use] = cfg
	}
	k.p = k.fresh(tb)
	return k
}

// fresh returns new providers for the keys: nothing cached.
func (k *transitKeys) fresh(tb testing.TB) map[string]*vaulttransit.Provider {
	tb.Helper()
	ps := map[string]*vaulttransit.Provider{}
	for use, cfg := range k.cfg {
		p, err := vaulttransit.New(context.Background(), cfg)
		if err != nil {
			tb.Fatalf("vaulttransit.New %s: %v", cfg.Key, err)
		}
		ps[use] = p
	}
	return ps
}

func classMap(ps map[string]*vaulttransit.Provider) map[crypto.Class]crypto.KeyProvider {
	return map[crypto.Class]crypto.KeyProvider{crypto.Identifying: ps["identifying"], crypto.Analytic: ps["analytic"]}
}

// labels are the KEK labels of the keys at Transit version v.
func (k *transitKeys) labels(v int) map[string]string {
	m := map[string]string{}
	for _, use := range keyUses {
		m[use] = fmt.Sprintf("vault:transit/%s-%s:v%d", k.prefix, use, v)
	}
	return m
}

// TestVaultRotateRewrap: the round trip through Vault with one Transit
// key per class; then Transit rotation, a data-key rotation and a rewrap
// move every stored key to the new Transit version without touching a
// record; min_decryption_version is raised, an old wrapped data key no
// longer unwraps, and a new broker still opens every record.
func TestVaultRotateRewrap(t *testing.T) {
	v := needVault(t)
	ctx := context.Background()
	tk := newTransitKeys(t, v, "", 0)
	kv := newKeyVault(t, keyVaultOpts{keys: tk.p["system"], class: classMap(tk.p)})

	ids := []broker.SubmissionID{kv.deposit(ea(communeA, 1)), kv.deposit(ea(communeA, 2)), kv.deposit(ea(communeB, 1))}
	mustOpen(t, kv.b, ids...)
	st := keyStatus(t, kv.b)
	checkAllWrappedBy(t, st, tk.labels(1))
	want := []string{
		"analytic v1 " + tk.labels(1)["analytic"] + " live=2 shredded=0",
		"identifying v1 " + tk.labels(1)["identifying"] + " live=2 shredded=0",
	}
	if got := dataKeyCounts(st); !slices.Equal(got, want) {
		t.Errorf("data keys:\n got %q\nwant %q", got, want)
	}
	// Each class is wrapped by its own Transit key: the other one
	// cannot unwrap it.
	oldIdent := kv.dataKey(crypto.Identifying, communeA, 1).Wrapped
	oldSystem := kv.systemKey("receipt-signer")
	if _, err := tk.p["analytic"].UnwrapKey(ctx, oldIdent); !errors.Is(err, crypto.ErrDecrypt) {
		t.Errorf("the analytic Transit key unwraps an identifying data key: %v", err)
	}
	if !bytes.HasPrefix(oldIdent, []byte("vault:v1:")) {
		t.Fatalf("stored data key is not a Transit v1 ciphertext: %.9q", oldIdent)
	}

	for _, use := range keyUses {
		if n, err := tk.p[use].Rotate(ctx); err != nil || n != 2 {
			t.Fatalf("Rotate %s = %d, %v", use, n, err)
		}
	}
	if _, err := kv.b.RotateDEK(ctx, actor); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, kv.deposit(ea(communeA, 1)), kv.deposit(ea(communeB, 2)))
	if w := kv.dataKey(crypto.Identifying, communeB, 2).Wrapped; !bytes.HasPrefix(w, []byte("vault:v2:")) {
		t.Errorf("a data key made after the Transit rotation is wrapped as %.9q, want vault:v2:", w)
	}
	st = keyStatus(t, kv.b)
	if st.Current["identifying"] != tk.labels(2)["identifying"] {
		t.Errorf("current KEK after rotation = %q", st.Current["identifying"])
	}

	before := map[broker.SubmissionID][]byte{}
	for _, id := range ids {
		before[id], _ = json.Marshal(kv.sealed(id))
	}
	var last [2]int
	n, err := kv.b.Rewrap(ctx, actor, broker.RewrapOpts{Batch: 3, Progress: func(done, total int) { last = [2]int{done, total} }})
	// Two classes × two communes of version 1, and the four system keys.
	if err != nil || n != 8 || last != [2]int{8, 8} {
		t.Fatalf("Rewrap = %d, %v (progress %v); want 8 keys", n, err, last)
	}
	for _, id := range ids {
		if after, _ := json.Marshal(kv.sealed(id)); !bytes.Equal(after, before[id]) {
			t.Errorf("Rewrap changed the record %s", id)
		}
	}
	st = keyStatus(t, kv.b)
	checkAllWrappedBy(t, st, tk.labels(2))
	if st.DEKVersion != 2 {
		t.Errorf("DEKVersion = %d", st.DEKVersion)
	}
	if n, err := kv.b.Rewrap(ctx, actor, broker.RewrapOpts{}); err != nil || n != 0 {
		t.Errorf("second Rewrap = %d, %v; want 0", n, err)
	}

	for _, use := range keyUses {
		if err := tk.p[use].SetMinDecryptionVersion(ctx, 2); err != nil {
			t.Fatal(err)
		}
		if info, err := tk.p[use].Info(ctx); err != nil || info.MinDecryptionVersion != 2 || info.LatestVersion != 2 {
			t.Errorf("Info %s = %+v, %v", use, info, err)
		}
	}
	for name, c := range map[string]struct {
		p *vaulttransit.Provider
		w []byte
	}{"identifying data key": {tk.p["identifying"], oldIdent}, "receipt key": {tk.p["system"], oldSystem}} {
		if _, err := c.p.UnwrapKey(ctx, c.w); !errors.Is(err, crypto.ErrDecrypt) {
			t.Errorf("the old wrapping of the %s unwraps after min_decryption_version was raised: %v", name, err)
		}
	}
	fresh := tk.fresh(t)
	b := kv.open(fresh["system"], classMap(fresh), 0)
	mustOpen(t, b, ids...)
	mustOpen(t, b, kv.deposit(ea(communeB, 1)))
}

// TestVaultSwitchFromAge: a vault made on the local age identity moves to
// Vault with one Rewrap(From: age) on a broker built on the Transit keys;
// afterwards the age identity file can be deleted and a new broker on
// Vault opens everything.
func TestVaultSwitchFromAge(t *testing.T) {
	v := needVault(t)
	ctx := context.Background()
	kv := newKeyVault(t, keyVaultOpts{})
	ageKP := kv.keys.(*agekey.Provider)
	ids, total := rewrapScenario(t, kv)
	tk := newTransitKeys(t, v, "", 0)

	b, err := kv.tryOpenFrom(tk.p["system"], classMap(tk.p), ageKP)
	if err != nil {
		t.Fatalf("broker.New on the Transit keys, to run Rewrap(From: age) on it: %v", err)
	}
	n, err := b.Rewrap(ctx, actor, broker.RewrapOpts{From: ageKP})
	if err != nil || n != total {
		t.Fatalf("Rewrap(From: age) = %d, %v; want %d", n, err, total)
	}
	checkAllWrappedBy(t, keyStatus(t, b), tk.labels(1))
	mustOpen(t, b, ids...)

	if err := os.Remove(filepath.Join(kv.dir, agekey.FileName)); err != nil {
		t.Fatal(err)
	}
	fresh := tk.fresh(t)
	b2 := kv.open(fresh["system"], classMap(fresh), 0)
	mustOpen(t, b2, ids...)
	for _, e := range []string{ea(communeA, 1), ea("18076", 1)} {
		id, err := kv.tryDeposit(b2, e)
		if err != nil {
			t.Fatalf("deposit on Vault in %s: %v", e, err)
		}
		mustOpen(t, b2, id)
	}
	if n, err := b2.Rewrap(ctx, actor, broker.RewrapOpts{}); err != nil || n != 0 {
		t.Errorf("Rewrap after the switch = %d, %v; want 0", n, err)
	}
}

// TestVaultNationalShred: shredding the identifying class nationally and
// then destroying its Transit key leaves a vault that still starts, opens
// analytic fields and reports progress, while identifying fields are Gone.
func TestVaultNationalShred(t *testing.T) {
	v := needVault(t)
	ctx := context.Background()
	tk := newTransitKeys(t, v, "", 0)
	kv := newKeyVault(t, keyVaultOpts{keys: tk.p["system"], class: classMap(tk.p)})
	ids := []broker.SubmissionID{kv.deposit(ea(communeA, 1)), kv.deposit(ea(communeB, 1)), kv.deposit(ea("18079", 2))}
	oldIdent := kv.dataKey(crypto.Identifying, communeA, 1).Wrapped

	res, err := kv.b.Shred(ctx, actor, crypto.Identifying, keyNation)
	if err != nil || *res != (broker.ShredResult{Communes: 4, DataKeys: 3, National: true}) {
		t.Fatalf("national Shred = %+v, %v", res, err)
	}
	if err := tk.p["identifying"].Destroy(ctx); err != nil {
		t.Fatalf("Destroy the identifying Transit key: %v", err)
	}
	// A backup's copy of the wrapped key is useless now.
	if _, err := tk.p["analytic"].UnwrapKey(ctx, oldIdent); !errors.Is(err, crypto.ErrDecrypt) {
		t.Errorf("unwrapping a backed-up identifying data key after the national shred: %v", err)
	}
	if _, err := tk.p["identifying"].UnwrapKey(ctx, oldIdent); !errors.Is(err, crypto.ErrDecrypt) {
		t.Errorf("unwrapping a backed-up identifying data key with its destroyed key: %v, want ErrDecrypt", err)
	}

	// A new broker, with fresh providers for the keys that remain (New
	// refuses a missing Transit key).
	delete(tk.cfg, "identifying")
	fresh := tk.fresh(t)
	classes := map[crypto.Class]crypto.KeyProvider{crypto.Identifying: tk.p["identifying"], crypto.Analytic: fresh["analytic"]}
	b, err := kv.tryOpen(fresh["system"], classes, 0)
	if err != nil {
		t.Fatalf("a broker does not start after the national shred: %v", err)
	}
	for _, id := range ids {
		if err := checkOpen(t, b, id, crypto.Analytic); err != nil {
			t.Errorf("Open(%s, analytic): %v", id, err)
		}
		if err := checkOpen(t, b, id, crypto.Identifying); broker.KindOf(err) != broker.Gone {
			t.Errorf("Open(%s, identifying) = %v, want Gone", id, err)
		}
	}
	p, err := b.Progress(ctx, kv.steer, keyNation, 0)
	if err != nil || p.Rows[0].Deposited != 3 {
		t.Errorf("national progress after the shred: %+v, %v", p, err)
	}
	if _, err := kv.tryDeposit(b, ea(communeA, 1)); broker.KindOf(err) != broker.Gone {
		t.Errorf("deposit after the national shred = %v, want Gone", err)
	}
}

// tcpProxy is a loopback TCP proxy in front of Vault that a test cuts and
// restores: a -dev server keeps its storage in memory, so it cannot be
// restarted.
type tcpProxy struct {
	addr   string
	target string
	ln     net.Listener
	down   atomic.Bool
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

func newTCPProxy(tb testing.TB, target string) *tcpProxy {
	tb.Helper()
	u, err := url.Parse(target)
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
		p.set(false)
	})
	return p
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.down.Load() {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go func() { io.Copy(up, c); up.Close() }()
		go func() { io.Copy(c, up); c.Close() }()
	}
}

// set takes the proxy up or down; going down drops every connection.
func (p *tcpProxy) set(up bool) {
	p.down.Store(!up)
	if up {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// TestVaultOutageUnderLoad: Vault becomes unreachable for a second while
// four clients deposit over HTTP across four communes, with a data-key
// cache of two so that deposits keep needing Vault, and a rotation just
// before the cut so that new data keys are being made. Deposits then fail
// with 503, and only with 503; every acknowledged deposit is stored and
// opens, nothing unacknowledged is stored, and deposits succeed again
// once Vault is back.
func TestVaultOutageUnderLoad(t *testing.T) {
	v := needVault(t)
	ctx := context.Background()
	proxy := newTCPProxy(t, v.addr)
	tk := newTransitKeys(t, v, proxy.addr, time.Second)
	kv := newKeyVault(t, keyVaultOpts{keys: tk.p["system"], class: classMap(tk.p), maxCache: 2})
	h, err := httpapi.New(httpapi.Opts{Broker: kv.b})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	hc := srv.Client()
	hc.Timeout = 15 * time.Second

	var eas []string
	for _, c := range keyCommunes {
		eas = append(eas, ea(c, 1), ea(c, 2))
	}
	type outcome struct {
		id         string
		status     int
		start, end time.Duration
		retryAfter string
	}
	const (
		rotateAt  = 800 * time.Millisecond
		cutAt     = time.Second
		restoreAt = 2 * time.Second
		endAt     = 3200 * time.Millisecond
	)
	var (
		mu       sync.Mutex
		outcomes []outcome
		seq      atomic.Int64
		wg       sync.WaitGroup
	)
	t0 := time.Now()
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Since(t0) < endAt; i++ {
				no := int(seq.Add(1))
				id := uuid.NewString()
				ct, err := encryptTo(kv.rcpt, household(id, eas[i%len(eas)], no))
				if err != nil {
					t.Error(err)
					return
				}
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/submissions", bytes.NewReader(ct))
				req.Header.Set("Authorization", "Bearer "+kv.tokens["enum"])
				req.Header.Set("Content-Type", "application/octet-stream")
				start := time.Since(t0)
				resp, err := hc.Do(req)
				if err != nil {
					t.Errorf("POST: %v", err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				o := outcome{id: id, status: resp.StatusCode, start: start, end: time.Since(t0), retryAfter: resp.Header.Get("Retry-After")}
				if o.status == http.StatusCreated {
					var r broker.Receipt
					if err := json.Unmarshal(body, &r); err != nil || string(r.SubmissionID) != id {
						t.Errorf("201 with receipt %s", body)
					}
				} else if o.status == http.StatusServiceUnavailable && strings.Contains(string(body), id) {
					t.Errorf("503 answer quotes the submission id: %s", body)
				}
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(rotateAt)
	if _, err := kv.b.RotateDEK(ctx, actor); err != nil {
		t.Fatal(err)
	}
	time.Sleep(cutAt - time.Since(t0))
	proxy.set(false)
	time.Sleep(restoreAt - time.Since(t0))
	proxy.set(true)
	wg.Wait()
	kv.no = int(seq.Load()) // household numbers kv.deposit goes on from

	var acked []broker.SubmissionID
	var unavailable, upFailures, afterOK int
	for _, o := range outcomes {
		switch o.status {
		case http.StatusCreated:
			acked = append(acked, broker.SubmissionID(o.id))
			if o.start > restoreAt {
				afterOK++
			}
		case http.StatusServiceUnavailable:
			unavailable++
			t.Logf("503 for a deposit from %v to %v", o.start.Round(time.Millisecond), o.end.Round(time.Millisecond))
			if o.retryAfter == "" {
				t.Errorf("503 without Retry-After")
			}
			if o.end < cutAt || o.start > restoreAt+500*time.Millisecond {
				upFailures++
			}
		default:
			t.Errorf("deposit %s: status %d, want 201 or 503", o.id, o.status)
		}
		if o.status != http.StatusCreated && kv.sealed(broker.SubmissionID(o.id)) != nil {
			t.Errorf("unacknowledged deposit %s (status %d) was stored", o.id, o.status)
		}
	}
	t.Logf("%d deposits: %d acknowledged (%d after Vault came back), %d answered 503 (%d of them while Vault was reachable)",
		len(outcomes), len(acked), afterOK, unavailable, upFailures)
	if unavailable == 0 {
		t.Error("no deposit failed while Vault was unreachable")
	}
	if upFailures > 0 {
		t.Errorf("%d deposits answered 503 while Vault was reachable", upFailures)
	}
	if afterOK == 0 {
		t.Error("no deposit succeeded after Vault came back")
	}

	// Every acknowledged deposit, and only those, is stored and opens,
	// through a broker that starts now (nothing cached), on Vault
	// directly.
	if n := kv.deposited()[""]; n != int64(len(acked)) {
		t.Errorf("%d households stored, %d acknowledged", n, len(acked))
	}
	var audited []broker.SubmissionID
	for _, ev := range kv.events(0, "submission.deposit") {
		if ev.Outcome == "ok" {
			audited = append(audited, broker.SubmissionID(strings.TrimPrefix(ev.Resources[0], "submission:")))
		}
	}
	slices.Sort(audited)
	slices.Sort(acked)
	if !slices.Equal(audited, acked) {
		t.Errorf("the audit log records %d stored deposits, %d were acknowledged", len(audited), len(acked))
	}
	direct := &transitKeys{cfg: map[string]vaulttransit.Config{}}
	for use, cfg := range tk.cfg {
		cfg.Address = v.addr
		direct.cfg[use] = cfg
	}
	ps := direct.fresh(t)
	b := kv.open(ps["system"], classMap(ps), 0)
	mustOpen(t, b, acked...)
	// Through the proxy, the loaded broker works on as before.
	for _, c := range keyCommunes {
		id, err := kv.tryDeposit(kv.b, ea(c, 1))
		if err != nil {
			t.Errorf("deposit in %s after the outage: %v", c, err)
			continue
		}
		mustOpen(t, kv.b, id)
	}
}

func encryptTo(r age.Recipient, plain []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		return nil, err
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// BenchmarkDepositProvider is BenchmarkDeposit with each key provider in
// the same run: the local age identity, and three Vault Transit keys
// (skipped without a Vault server). The data-key cache makes Vault calls
// rare: one unwrap or wrap per data key, not per deposit.
func BenchmarkDepositProvider(b *testing.B) {
	b.Run("age", func(b *testing.B) {
		kp, err := agekey.Create(filepath.Join(b.TempDir(), agekey.FileName))
		if err != nil {
			b.Fatal(err)
		}
		benchDepositWith(b, kp, nil)
	})
	b.Run("vault", func(b *testing.B) {
		v := needVault(b)
		tk := newTransitKeys(b, v, "", 0)
		benchDepositWith(b, tk.p["system"], classMap(tk.p))
	})
}

func benchDepositWith(b *testing.B, keys crypto.KeyProvider, class map[crypto.Class]crypto.KeyProvider) {
	ctx := context.Background()
	dir := b.TempDir()
	tree, err := area.Load(strings.NewReader(benchAreas()))
	if err != nil {
		b.Fatal(err)
	}
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(dir, sqlite.FileName), Create: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := broker.Init(ctx, broker.InitOpts{Store: st, Keys: keys, Areas: tree, Actor: "cli:bench"}); err != nil {
		b.Fatal(err)
	}
	br, err := broker.New(ctx, broker.Opts{Store: st, Keys: keys, ClassKeys: class})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close(ctx)
	tok, err := br.AddUser(ctx, "cli:bench", broker.NewUser{Name: "enum-bench", Role: policy.Enumerator, Area: "437"})
	if err != nil {
		b.Fatal(err)
	}
	caller, err := br.Authenticate(ctx, "Bearer "+tok.Reveal(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	rcpt, err := age.ParseHybridRecipient(br.IngestRecipient())
	if err != nil {
		b.Fatal(err)
	}
	cts := make([][]byte, b.N)
	for i := range cts {
		if cts[i], err = encryptTo(rcpt, benchHousehold(i)); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ct := cts[next.Add(1)-1]
			res, err := br.Deposit(ctx, caller, int64(len(ct)), bytes.NewReader(ct))
			if err != nil {
				b.Error(err)
				return
			}
			if !res.Created {
				b.Error("deposit not created")
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deposits/s")
}
