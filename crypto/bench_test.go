package crypto_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/censusvault/censusvault/crypto"
)

func BenchmarkSeal(b *testing.B) {
	k := newKeyring(b, newProvider(b), 0)
	if _, err := k.NewDataKey(context.Background(), testID); err != nil {
		b.Fatal(err)
	}
	pt := bytes.Repeat([]byte("x"), 1024)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Seal(testID, pt, testAD); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	k := newKeyring(b, newProvider(b), 0)
	if _, err := k.NewDataKey(context.Background(), testID); err != nil {
		b.Fatal(err)
	}
	sealed, err := k.Seal(testID, bytes.Repeat([]byte("x"), 1024), testAD)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Open(testID, sealed, testAD); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenSubmission(b *testing.B) {
	id, _ := newIngest(b, newProvider(b))
	pt := bytes.Repeat([]byte("x"), 2048)
	ct := encryptAge(b, pt, false, recipientOf(b, id))
	ids := []*crypto.IngestIdentity{id}
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := crypto.OpenSubmission(ct, ids, 4096); err != nil {
			b.Fatal(err)
		}
	}
}
