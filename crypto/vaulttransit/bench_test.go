package vaulttransit_test

import (
	"context"
	"testing"
)

// BenchmarkWrapUnwrap is one WrapKey and one UnwrapKey of a DEK-sized
// payload: two round trips to Vault.
func BenchmarkWrapUnwrap(b *testing.B) {
	e := vaultEnv(b)
	p, _ := newKey(b, e)
	ctx := context.Background()
	key := randomKeys(1, 51)[0]
	for b.Loop() {
		w, err := p.WrapKey(ctx, key)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.UnwrapKey(ctx, w); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnwrapKeysBatch256 is a startup load: 256 DEKs in one request.
func BenchmarkUnwrapKeysBatch256(b *testing.B) {
	e := vaultEnv(b)
	p, _ := newKey(b, e)
	ctx := context.Background()
	wrapped, err := p.WrapKeys(ctx, randomKeys(256, 51))
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for b.Loop() {
		if _, err := p.UnwrapKeys(ctx, wrapped); err != nil {
			b.Fatal(err)
		}
		n += len(wrapped)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "keys/s")
}
