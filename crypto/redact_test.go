package crypto_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
)

// formatAll formats x with every verb a log line might use.
func formatAll(x any) string {
	return fmt.Sprintf("%v %+v %#v %s %q %x %X %d", x, x, x, x, x, x, x, x)
}

// secretFrom extracts a secret from an unwrapped payload by its pattern.
func secretFrom(t *testing.T, p crypto.KeyProvider, wrapped []byte, re string) string {
	t.Helper()
	payload, err := p.UnwrapKey(context.Background(), wrapped)
	if err != nil {
		t.Fatal(err)
	}
	s := regexp.MustCompile(re).Find(payload)
	if s == nil {
		t.Fatalf("no %s in the unwrapped payload", re)
	}
	return string(s)
}

func assertRedacted(t *testing.T, name string, x any, secrets ...string) {
	t.Helper()
	out := formatAll(x)
	for _, s := range secrets {
		if s == "" {
			t.Fatalf("%s: empty secret", name)
		}
		for _, form := range []string{s, strings.ToLower(s), hex.EncodeToString([]byte(s))} {
			if strings.Contains(out, form) {
				t.Fatalf("%s: formatted output %q contains a secret", name, out)
			}
		}
	}
}

func TestSecretsAreRedacted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, agekey.FileName)
	p, err := agekey.Create(path)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("IngestIdentity", func(t *testing.T) {
		id, wrapped := newIngest(t, p)
		secret := secretFrom(t, p, wrapped, `AGE-SECRET-KEY-PQ-1[0-9A-Z]+`)
		assertRedacted(t, "IngestIdentity", id, secret, secret[len("AGE-SECRET-KEY-PQ-1"):])
		assertRedacted(t, "*IngestIdentity", *id, secret)
		if got := id.String(); !strings.HasPrefix(got, "IngestIdentity(age1pq1") {
			t.Fatalf("String = %q", got)
		}
	})
	t.Run("Signer", func(t *testing.T) {
		s, wrapped, err := crypto.GenerateSigner(ctx, p, "audit")
		if err != nil {
			t.Fatal(err)
		}
		skey := secretFrom(t, p, wrapped, `PRIVATE\+KEY\+[^\n]+`)
		key64 := strings.SplitN(skey, "+", 5)[4] // base64 may contain "+"
		seed, err := base64.StdEncoding.DecodeString(key64)
		if err != nil {
			t.Fatal(err)
		}
		assertRedacted(t, "Signer", s, skey, key64, fmt.Sprint(seed[1:]), hex.EncodeToString(seed[1:]))
		if got := s.String(); got != "Signer(audit)" {
			t.Fatalf("String = %q", got)
		}
	})
	t.Run("agekey.Provider", func(t *testing.T) {
		content, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		secret := regexp.MustCompile(`AGE-SECRET-KEY-PQ-1[0-9A-Z]+`).Find(content)
		if secret == nil {
			t.Fatal("no secret in the key file")
		}
		assertRedacted(t, "Provider", p, string(secret))
		assertRedacted(t, "Keyring", newKeyring(t, p, 0), string(secret))
	})
	t.Run("Token", func(t *testing.T) {
		tok, err := crypto.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.RawURLEncoding.DecodeString(tok.Reveal())
		if err != nil {
			t.Fatal(err)
		}
		assertRedacted(t, "Token", tok, tok.Reveal(), fmt.Sprint(raw), hex.EncodeToString(raw), fmt.Sprintf("%d", raw[:4])[1:10])
		assertRedacted(t, "*Token", &tok, tok.Reveal(), fmt.Sprint(raw), hex.EncodeToString(raw))
		if !bytes.Contains([]byte(formatAll(tok)), []byte("Token(redacted)")) {
			t.Fatalf("Token formats as %q", formatAll(tok))
		}
	})
}
