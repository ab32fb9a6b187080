package crypto_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/censusvault/censusvault/crypto"
)

func TestSignerVerifies(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	s, wrapped, err := crypto.GenerateSigner(ctx, p, "censusvault.example/receipts")
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := crypto.LoadSigner(ctx, p, wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Name() != s.Name() || loaded.VerifierKey() != s.VerifierKey() {
		t.Fatalf("loaded signer %q %q, want %q %q", loaded.Name(), loaded.VerifierKey(), s.Name(), s.VerifierKey())
	}
	if !strings.HasPrefix(s.VerifierKey(), "censusvault.example/receipts+") {
		t.Fatalf("verifier key %q", s.VerifierKey())
	}
	v, err := note.NewVerifier(s.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	text := "censusvault.example/receipts\nsubmission 0f8fad5b\n"
	for name, signer := range map[string]*crypto.Signer{"generated": s, "loaded": loaded} {
		t.Run(name, func(t *testing.T) {
			msg, err := signer.Sign(text)
			if err != nil {
				t.Fatal(err)
			}
			n, err := note.Open(msg, note.VerifierList(v))
			if err != nil {
				t.Fatal(err)
			}
			if n.Text != text || len(n.Sigs) != 1 || n.Sigs[0].Name != s.Name() {
				t.Fatalf("note = %+v", n)
			}
			// A changed text does not verify.
			tampered := []byte(strings.Replace(string(msg), "0f8fad5b", "0f8fad5c", 1))
			if _, err := note.Open(tampered, note.VerifierList(v)); err == nil {
				t.Fatal("tampered note verified")
			}
		})
	}
	if _, err := s.Sign("no newline"); err == nil {
		t.Fatal("Sign accepted text without a final newline")
	}
}

func TestSignerRejects(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	for _, name := range []string{"", "a b", "a+b", "a\nb", strings.Repeat("n", 257)} {
		if _, _, err := crypto.GenerateSigner(ctx, p, name); err == nil {
			t.Errorf("GenerateSigner(%q) accepted an invalid name", name)
		}
	}
	if _, _, err := crypto.GenerateSigner(ctx, p, strings.Repeat("n", 256)); err != nil {
		t.Errorf("name of 256 bytes: %v", err)
	}
	_, wrapped, err := crypto.GenerateSigner(ctx, p, "s")
	if err != nil {
		t.Fatal(err)
	}
	_, ingest := newIngest(t, p)
	for name, tc := range map[string]struct {
		p crypto.KeyProvider
		w []byte
	}{
		"other provider":  {newProvider(t), wrapped},
		"ingest identity": {p, ingest},
	} {
		if _, err := crypto.LoadSigner(ctx, tc.p, tc.w); !errors.Is(err, crypto.ErrDecrypt) {
			t.Errorf("%s: err = %v, want ErrDecrypt", name, err)
		}
	}
	if _, _, err := crypto.GenerateSigner(ctx, nil, "s"); err == nil {
		t.Error("GenerateSigner accepted a nil provider")
	}
}
