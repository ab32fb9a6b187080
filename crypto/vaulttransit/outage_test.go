package vaulttransit_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/vaulttransit"
)

// Vault unreachable: every call fails with ErrUnavailable (never
// ErrDecrypt) within the timeout, and works again when Vault is back.
func TestOutage(t *testing.T) {
	e := vaultEnv(t)
	_, cfg := newKey(t, e)
	proxy := newTCPProxy(t, e)
	cfg.Address = proxy.addr
	cfg.Timeout = time.Second
	ctx := context.Background()
	p, err := vaulttransit.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("a data key")
	w, err := p.WrapKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []struct {
		name string
		mode int32
	}{{"connections cut", proxyReset}, {"no answer", proxyHang}} {
		proxy.set(mode.mode)
		for name, call := range map[string]func() error{
			"WrapKey":    func() error { _, err := p.WrapKey(ctx, key); return err },
			"UnwrapKeys": func() error { _, err := p.UnwrapKeys(ctx, [][]byte{w}); return err },
		} {
			start := time.Now()
			err := call()
			elapsed := time.Since(start)
			if !errors.Is(err, vaulttransit.ErrUnavailable) || errors.Is(err, crypto.ErrDecrypt) {
				t.Errorf("%s, %s = %v, want ErrUnavailable", mode.name, name, err)
			}
			if elapsed > cfg.Timeout+500*time.Millisecond {
				t.Errorf("%s, %s took %v, timeout %v", mode.name, name, elapsed, cfg.Timeout)
			}
			t.Logf("%s, %s: %v after %v", mode.name, name, err, elapsed.Round(time.Millisecond))
		}
		proxy.set(proxyUp)
		got, err := p.UnwrapKey(ctx, w)
		if err != nil || !bytes.Equal(got, key) {
			t.Fatalf("UnwrapKey after the outage = %q, %v", got, err)
		}
		if _, err := p.WrapKey(ctx, key); err != nil {
			t.Fatalf("WrapKey after the outage: %v", err)
		}
	}
}

// A caller's deadline shorter than the timeout wins, and is recognisable.
func TestCallerDeadline(t *testing.T) {
	e := vaultEnv(t)
	_, cfg := newKey(t, e)
	proxy := newTCPProxy(t, e)
	cfg.Address = proxy.addr
	p, err := vaulttransit.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	w, err := p.WrapKey(context.Background(), []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	proxy.set(proxyHang)
	defer proxy.set(proxyUp)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = p.UnwrapKey(ctx, w)
	if !errors.Is(err, vaulttransit.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("UnwrapKey past the caller's deadline = %v after %v", err, time.Since(start))
	}
	if _, err := p.UnwrapKey(ctx, w); err != context.DeadlineExceeded {
		t.Fatalf("UnwrapKey with a done context = %v", err)
	}
}
