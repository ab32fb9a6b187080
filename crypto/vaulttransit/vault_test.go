package vaulttransit_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/vaulttransit"
)

const maxKey = 16 << 10 // the provider's bound on a wrapped key

func randomKeys(n, size int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = make([]byte, size)
		rand.Read(keys[i])
	}
	return keys
}

func TestRoundTrip(t *testing.T) {
	e := vaultEnv(t)
	p, cfg := newKey(t, e)
	ctx := context.Background()
	for _, size := range []int{0, 1, 32, maxKey - 1, maxKey, maxKey + 1} {
		key := randomKeys(1, size)[0]
		w, err := p.WrapKey(ctx, key)
		if size > maxKey {
			if err == nil {
				t.Errorf("WrapKey(%d bytes) succeeded, want an error", size)
			}
			continue
		}
		if err != nil {
			t.Fatalf("WrapKey(%d bytes): %v", size, err)
		}
		if !bytes.HasPrefix(w, []byte("vault:v1:")) || bytes.Contains(w, key[:min(size, 8)]) && size >= 8 {
			t.Fatalf("wrapped = %.40q", w)
		}
		got, err := p.UnwrapKey(ctx, w)
		if err != nil || !bytes.Equal(got, key) {
			t.Fatalf("UnwrapKey(WrapKey(%d bytes)) = %d bytes, %v", size, len(got), err)
		}
		label, err := p.KEKOf(w)
		if want := "vault:" + cfg.Mount + "/" + cfg.Key + ":v1"; err != nil || label != want {
			t.Fatalf("KEKOf = %q, %v; want %q", label, err, want)
		}
	}
	cur, err := p.CurrentKEK(ctx)
	if want := "vault:transit/" + cfg.Key + ":v1"; err != nil || cur != want {
		t.Fatalf("CurrentKEK = %q, %v; want %q", cur, err, want)
	}
}

// Batch calls make one request per 250 keys.
func TestBatchRoundTrip(t *testing.T) {
	e := vaultEnv(t)
	_, cfg := newKey(t, e)
	cp := newCountingProxy(t, e)
	cfg.Address = cp.URL
	p, err := vaulttransit.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct{ n, requests int }{{0, 0}, {1, 1}, {249, 1}, {250, 1}, {251, 2}, {300, 2}, {500, 2}, {501, 3}} {
		keys := randomKeys(tc.n, 51)
		cp.reset()
		wrapped, err := p.WrapKeys(ctx, keys)
		if err != nil || len(wrapped) != tc.n {
			t.Fatalf("WrapKeys(%d) = %d, %v", tc.n, len(wrapped), err)
		}
		if got := cp.count("/v1/transit/encrypt/" + cfg.Key); got != tc.requests {
			t.Errorf("WrapKeys(%d) made %d encrypt requests, want %d", tc.n, got, tc.requests)
		}
		got, err := p.UnwrapKeys(ctx, wrapped)
		if err != nil || len(got) != tc.n {
			t.Fatalf("UnwrapKeys(%d) = %d, %v", tc.n, len(got), err)
		}
		for i := range keys {
			if !bytes.Equal(got[i], keys[i]) {
				t.Fatalf("UnwrapKeys(%d)[%d] differs", tc.n, i)
			}
		}
		if got := cp.count("/v1/transit/decrypt/" + cfg.Key); got != tc.requests {
			t.Errorf("UnwrapKeys(%d) made %d decrypt requests, want %d", tc.n, got, tc.requests)
		}
		// Batch and single calls are interchangeable.
		if tc.n > 0 {
			k, err := p.UnwrapKey(ctx, wrapped[tc.n-1])
			if err != nil || !bytes.Equal(k, keys[tc.n-1]) {
				t.Fatalf("UnwrapKey of a batch-wrapped key: %v", err)
			}
		}
	}
}

func tamper(w []byte, i int) []byte {
	t := bytes.Clone(w)
	// Flip a base64 character of the payload to another valid one.
	if t[i] == 'A' {
		t[i] = 'B'
	} else {
		t[i] = 'A'
	}
	return t
}

func TestTamperedCiphertext(t *testing.T) {
	e := vaultEnv(t)
	p, _ := newKey(t, e)
	ctx := context.Background()
	wrapped, err := p.WrapKeys(ctx, randomKeys(3, 32))
	if err != nil {
		t.Fatal(err)
	}
	w := wrapped[0]
	bad := map[string][]byte{
		"flipped first":  tamper(w, len("vault:v1:")),
		"flipped middle": tamper(w, len(w)/2),
		"flipped tag":    tamper(w, len(w)-3),
		"truncated":      w[:len(w)-4],
		"short":          []byte("vault:v1:AAAA"),
		"version 2":      append([]byte("vault:v2:"), w[len("vault:v1:"):]...),
		"version 0":      append([]byte("vault:v0:"), w[len("vault:v1:"):]...),
		"no prefix":      w[len("vault:v1:"):],
		"empty":          nil,
		"bad characters": append(bytes.Clone(w), `","x":"`...),
		"too long":       append([]byte("vault:v1:"), bytes.Repeat([]byte("A"), 64<<10)...),
	}
	for name, b := range bad {
		if _, err := p.UnwrapKey(ctx, b); err != crypto.ErrDecrypt {
			t.Errorf("UnwrapKey(%s) = %v, want ErrDecrypt", name, err)
		}
		// One bad item spoils the whole batch.
		batch := [][]byte{wrapped[1], b, wrapped[2]}
		if _, err := p.UnwrapKeys(ctx, batch); err != crypto.ErrDecrypt {
			t.Errorf("UnwrapKeys(…%s…) = %v, want ErrDecrypt", name, err)
		}
		if _, err := p.RewrapKeys(ctx, batch); err != crypto.ErrDecrypt {
			t.Errorf("RewrapKeys(…%s…) = %v, want ErrDecrypt", name, err)
		}
	}
}

func TestWrongKey(t *testing.T) {
	e := vaultEnv(t)
	a, _ := newKey(t, e)
	b, _ := newKey(t, e)
	ctx := context.Background()
	w, err := a.WrapKey(ctx, []byte("a data key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.UnwrapKey(ctx, w); err != crypto.ErrDecrypt {
		t.Fatalf("UnwrapKey with the wrong key = %v, want ErrDecrypt", err)
	}
	if _, err := b.UnwrapKeys(ctx, [][]byte{w}); err != crypto.ErrDecrypt {
		t.Fatalf("UnwrapKeys with the wrong key = %v, want ErrDecrypt", err)
	}
}

func TestNewMissingKey(t *testing.T) {
	e := vaultEnv(t)
	for _, cfg := range []vaulttransit.Config{e.config(randomName("cvtest-missing-")), {Address: e.addr, Token: e.token, Mount: "no-such-mount", Key: "k"}} {
		p, err := vaulttransit.New(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "keys init-vault") || !errors.Is(err, vaulttransit.ErrKeyNotFound) {
			t.Fatalf("New(%v) = %v, %v; want an error telling to run keys init-vault", cfg, p, err)
		}
		// New must not have created it.
		if _, err := vaulttransit.New(context.Background(), cfg); !errors.Is(err, vaulttransit.ErrKeyNotFound) {
			t.Fatalf("second New = %v; the key was created", err)
		}
	}
}

func TestCreateKey(t *testing.T) {
	e := vaultEnv(t)
	p, cfg := newKey(t, e)
	ctx := context.Background()
	info, err := p.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := vaulttransit.KeyInfo{Name: cfg.Key, Type: "aes256-gcm96", LatestVersion: 1, MinDecryptionVersion: 1}
	if info != want {
		t.Fatalf("Info = %+v, want %+v", info, want)
	}
	// Idempotent, and it forbids deletion again.
	if _, err := e.root(t).Logical().Write("transit/keys/"+cfg.Key+"/config", map[string]any{"deletion_allowed": true}); err != nil {
		t.Fatal(err)
	}
	if err := vaulttransit.CreateKey(ctx, cfg); err != nil {
		t.Fatalf("CreateKey on an existing key: %v", err)
	}
	if info, err := p.Info(ctx); err != nil || info.DeletionAllowed || info.LatestVersion != 1 {
		t.Fatalf("after CreateKey: %+v, %v", info, err)
	}
	// An existing key whose material can leave Vault is refused.
	exp := e.config(randomName("cvtest-exportable-"))
	if _, err := e.root(t).Logical().Write("transit/keys/"+exp.Key, map[string]any{"exportable": true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.root(t).Logical().Write("transit/keys/"+exp.Key+"/config", map[string]any{"deletion_allowed": true})
		e.root(t).Logical().Delete("transit/keys/" + exp.Key)
	})
	if err := vaulttransit.CreateKey(ctx, exp); err == nil || !strings.Contains(err.Error(), "exportable") {
		t.Fatalf("CreateKey on an exportable key = %v", err)
	}
	// A key that cannot encrypt is refused by both.
	sig := e.config(randomName("cvtest-ed25519-"))
	if _, err := e.root(t).Logical().Write("transit/keys/"+sig.Key, map[string]any{"type": "ed25519"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.root(t).Logical().Write("transit/keys/"+sig.Key+"/config", map[string]any{"deletion_allowed": true})
		e.root(t).Logical().Delete("transit/keys/" + sig.Key)
	})
	if err := vaulttransit.CreateKey(ctx, sig); err == nil {
		t.Fatal("CreateKey accepted an ed25519 key")
	}
	if _, err := vaulttransit.New(ctx, sig); err == nil {
		t.Fatal("New accepted an ed25519 key")
	}
}

// Rotation, rewrap and retiring old versions, as `censusvault keys rotate`
// and `keys rewrap` do them.
func TestRotateRewrap(t *testing.T) {
	e := vaultEnv(t)
	p, cfg := newKey(t, e)
	ctx := context.Background()
	keys := randomKeys(5, 51)
	v1, err := p.WrapKeys(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	label := func(v int) string { return fmt.Sprintf("vault:transit/%s:v%d", cfg.Key, v) }

	if v, err := p.Rotate(ctx); err != nil || v != 2 {
		t.Fatalf("Rotate = %d, %v", v, err)
	}
	if cur, err := p.CurrentKEK(ctx); err != nil || cur != label(2) {
		t.Fatalf("CurrentKEK after rotate = %q, %v", cur, err)
	}
	w2, err := p.WrapKey(ctx, keys[0])
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := p.KEKOf(w2); l != label(2) {
		t.Fatalf("KEKOf(new wrap) = %q, want %q", l, label(2))
	}
	for _, w := range v1 {
		if l, _ := p.KEKOf(w); l != label(1) {
			t.Fatalf("KEKOf(old wrap) = %q", l)
		}
	}
	// Old wraps still unwrap.
	got, err := p.UnwrapKeys(ctx, v1)
	if err != nil || !bytes.Equal(got[4], keys[4]) {
		t.Fatalf("UnwrapKeys(v1 after rotate): %v", err)
	}

	// Rewrap all but the last; the last stays at v1.
	rewrapped, err := p.RewrapKeys(ctx, v1[:4])
	if err != nil || len(rewrapped) != 4 {
		t.Fatalf("RewrapKeys = %d, %v", len(rewrapped), err)
	}
	for i, w := range rewrapped {
		if l, _ := p.KEKOf(w); l != label(2) {
			t.Fatalf("KEKOf(rewrapped[%d]) = %q", i, l)
		}
		if bytes.Equal(w, v1[i]) {
			t.Fatal("rewrap returned its input")
		}
	}
	if err := p.SetMinDecryptionVersion(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if info, err := p.Info(ctx); err != nil || info.MinDecryptionVersion != 2 || info.LatestVersion != 2 {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	got, err = p.UnwrapKeys(ctx, rewrapped)
	if err != nil {
		t.Fatalf("UnwrapKeys(rewrapped) after min_decryption_version 2: %v", err)
	}
	for i := range got {
		if !bytes.Equal(got[i], keys[i]) {
			t.Fatalf("rewrapped[%d] unwraps to another key", i)
		}
	}
	if _, err := p.UnwrapKey(ctx, v1[4]); err != crypto.ErrDecrypt {
		t.Fatalf("UnwrapKey(v1 blob below min_decryption_version) = %v, want ErrDecrypt", err)
	}
	if _, err := p.UnwrapKeys(ctx, [][]byte{rewrapped[0], v1[4]}); err != crypto.ErrDecrypt {
		t.Fatalf("UnwrapKeys(with a v1 blob) = %v, want ErrDecrypt", err)
	}
	if _, err := p.RewrapKeys(ctx, v1[4:]); err != crypto.ErrDecrypt {
		t.Fatalf("RewrapKeys(v1 blob) = %v, want ErrDecrypt", err)
	}
	if err := p.SetMinDecryptionVersion(ctx, 0); err == nil {
		t.Fatal("SetMinDecryptionVersion(0) succeeded")
	}
}

func TestDestroy(t *testing.T) {
	e := vaultEnv(t)
	p, cfg := newKey(t, e)
	ctx := context.Background()
	w, err := p.WrapKey(ctx, []byte("a data key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Info(ctx); !errors.Is(err, vaulttransit.ErrKeyNotFound) {
		t.Fatalf("Info after Destroy = %v, want ErrKeyNotFound", err)
	}
	// The shredded key's blobs are permanently unreadable.
	if _, err := p.UnwrapKey(ctx, w); err != crypto.ErrDecrypt {
		t.Fatalf("UnwrapKey after Destroy = %v, want ErrDecrypt", err)
	}
	if _, err := p.UnwrapKeys(ctx, [][]byte{w}); err != crypto.ErrDecrypt {
		t.Fatalf("UnwrapKeys after Destroy = %v, want ErrDecrypt", err)
	}
	// Wrapping fails and does not bring the key back (transit/encrypt
	// would create it for a root token).
	for _, wrap := range []func() error{
		func() error { _, err := p.WrapKey(ctx, []byte("k")); return err },
		func() error { _, err := p.WrapKeys(ctx, [][]byte{[]byte("k")}); return err },
	} {
		if err := wrap(); !errors.Is(err, vaulttransit.ErrUnavailable) || !errors.Is(err, vaulttransit.ErrKeyNotFound) {
			t.Fatalf("wrap after Destroy = %v, want ErrUnavailable and ErrKeyNotFound", err)
		}
	}
	if _, err := vaulttransit.New(ctx, cfg); !errors.Is(err, vaulttransit.ErrKeyNotFound) {
		t.Fatalf("New after Destroy = %v: the key came back", err)
	}
}

// A token with the distinctive value never shows in errors or formatting.
func TestTokenNeverPrinted(t *testing.T) {
	e := vaultEnv(t)
	_, cfg := newKey(t, e)
	ctx := context.Background()
	distinctive := randomName("DISTINCTIVEtoken")
	pol := e.policy(t, keyPolicy(cfg.Key, "encrypt", "decrypt"))
	if _, err := e.root(t).Logical().Write("auth/token/create", map[string]any{
		"id": distinctive, "policies": []string{pol}, "no_default_policy": true, "ttl": "10m",
	}); err != nil {
		t.Fatal(err)
	}
	cfg.Token = distinctive
	proxy := newTCPProxy(t, e)
	cfg.Address = proxy.addr
	cfg.Timeout = 500 * time.Millisecond
	p, err := vaulttransit.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	w, err := p.WrapKey(ctx, []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	collect := func(_ any, err error) {
		if err == nil {
			t.Error("expected an error")
		}
		errs = append(errs, err)
	}
	collect(p.UnwrapKey(ctx, tamper(w, 12)))
	collect(p.RewrapKeys(ctx, [][]byte{w})) // denied: no rewrap capability
	collect(p.Rotate(ctx))                  // denied
	collect(nil, p.Destroy(ctx))            // denied
	missing := cfg
	missing.Key = randomName("cvtest-missing-")
	collect(vaulttransit.New(ctx, missing)) // denied: no read capability
	bogus := cfg
	bogus.Token = distinctive + "x"
	collect(vaulttransit.New(ctx, bogus)) // an invalid token
	proxy.set(proxyReset)
	collect(p.WrapKey(ctx, []byte("k")))
	collect(p.UnwrapKey(ctx, w))
	proxy.set(proxyUp)

	var all strings.Builder
	for _, err := range errs {
		fmt.Fprintf(&all, "%v\n%+v\n%#v\n", err, err, err)
	}
	fmt.Fprintf(&all, "%+v %#v %v %s", cfg, p, p, p)
	if strings.Contains(all.String(), distinctive) {
		t.Fatalf("the token appears in:\n%s", all.String())
	}
	if !strings.Contains(all.String(), "permission denied") {
		t.Fatalf("no permission denied error in:\n%s", all.String())
	}
}

func TestKeyringInterop(t *testing.T) {
	e := vaultEnv(t)
	p, _ := newKey(t, e)
	ctx := context.Background()
	kr, err := crypto.NewKeyring(crypto.KeyringOptions{Provider: p})
	if err != nil {
		t.Fatal(err)
	}
	ids := []crypto.DataKeyID{
		{Class: crypto.Identifying, Commune: "01001", Version: 1},
		{Class: crypto.Analytic, Commune: "01001", Version: 1},
	}
	ad := crypto.AD{Submission: "s-1", Form: "hh", FormVersion: 3, Area: "01001", HouseholdNo: 7}
	var wrapped [][]byte
	var sealed [][]byte
	for _, id := range ids {
		w, err := kr.NewDataKey(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		wrapped = append(wrapped, w)
		s, err := kr.Seal(id, []byte("field values of "+string(id.Class)), ad)
		if err != nil {
			t.Fatal(err)
		}
		sealed = append(sealed, s)
	}
	kr.Forget(ids...)
	if _, err := kr.Open(ids[0], sealed[0], ad); err != crypto.ErrKeyNotLoaded {
		t.Fatalf("Open after Forget = %v", err)
	}
	if err := kr.LoadDataKeys(ctx, ids, wrapped); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		pt, err := kr.Open(id, sealed[i], ad)
		if err != nil || string(pt) != "field values of "+string(id.Class) {
			t.Fatalf("Open = %q, %v", pt, err)
		}
	}
	// A wrapped key loaded under another id is refused.
	kr.Forget(ids...)
	if err := kr.LoadDataKeys(ctx, ids[:1], wrapped[1:]); err != crypto.ErrDecrypt {
		t.Fatalf("LoadDataKeys under the wrong id = %v", err)
	}
	// Rewrapped keys load as well.
	if _, err := p.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	rewrapped, err := p.RewrapKeys(ctx, wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.LoadDataKeys(ctx, ids, rewrapped); err != nil {
		t.Fatal(err)
	}
	if pt, err := kr.Open(ids[1], sealed[1], ad); err != nil || string(pt) != "field values of analytic" {
		t.Fatalf("Open with a rewrapped key = %q, %v", pt, err)
	}
}
