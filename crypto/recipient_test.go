package crypto_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/censusvault/censusvault/crypto"
)

func TestRecipientRoundTrip(t *testing.T) {
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	pq, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		rec  string
		id   age.Identity
	}{{"x25519", x.Recipient().String(), x}, {"hybrid", pq.Recipient().String(), pq}} {
		t.Run(c.name, func(t *testing.T) {
			norm, err := crypto.ParseRecipient("  " + c.rec + "\n")
			if err != nil || norm != c.rec {
				t.Fatalf("ParseRecipient = %q, %v", norm, err)
			}
			msg := []byte("district,sex,value\n01,1,123\n")
			ct, err := crypto.EncryptTo(c.rec, msg)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(ct, msg) {
				t.Fatal("ciphertext contains the plaintext")
			}
			r, err := age.Decrypt(bytes.NewReader(ct), c.id)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			if !bytes.Equal(got, msg) {
				t.Fatalf("decrypted %q", got)
			}
		})
	}
}

func TestParseRecipientRefuses(t *testing.T) {
	x, _ := age.GenerateX25519Identity()
	secret := x.String()
	for _, s := range []string{"", "hello", "age1notarecipient", "age1pq1short", secret, strings.Repeat("a", 5000)} {
		_, err := crypto.ParseRecipient(s)
		if !errors.Is(err, crypto.ErrRecipient) {
			t.Errorf("ParseRecipient(%.20q) = %v, want ErrRecipient", s, err)
		}
		if err != nil && len(s) > 8 && strings.Contains(err.Error(), s) {
			t.Errorf("error quotes the input: %v", err)
		}
	}
	if _, err := crypto.EncryptTo(secret, []byte("x")); !errors.Is(err, crypto.ErrRecipient) {
		t.Errorf("EncryptTo(secret key) = %v", err)
	}
}
