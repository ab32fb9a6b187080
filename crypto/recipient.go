package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
)

// MaxRecipientLen bounds an age recipient string: a hybrid (ML-KEM-768 +
// X25519) recipient is about 2,000 characters, an X25519 one 62.
const MaxRecipientLen = 4096

// ErrRecipient is returned for a string that is not one age recipient.
var ErrRecipient = errors.New("not an age recipient")

// ParseRecipient checks that s is one age recipient — X25519 ("age1…") or
// hybrid post-quantum ("age1pq1…") — and returns it in normal form. The
// error never quotes s (it might be a secret key pasted by mistake).
func ParseRecipient(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > MaxRecipientLen {
		return "", fmt.Errorf("%w: want one age1… or age1pq1… public key", ErrRecipient)
	}
	r, err := parseRecipient(s)
	if err != nil {
		return "", err
	}
	switch r := r.(type) {
	case *age.X25519Recipient:
		return r.String(), nil
	case *age.HybridRecipient:
		return r.String(), nil
	}
	return "", fmt.Errorf("%w: unsupported recipient type", ErrRecipient)
}

func parseRecipient(s string) (age.Recipient, error) {
	switch {
	case strings.HasPrefix(s, "AGE-SECRET-KEY-"):
		return nil, fmt.Errorf("%w: that is a secret key, not a public one: give the recipient (age1…) and keep the identity private", ErrRecipient)
	case strings.HasPrefix(s, "age1pq1"):
		r, err := age.ParseHybridRecipient(s)
		if err != nil {
			return nil, fmt.Errorf("%w: malformed age1pq1… recipient", ErrRecipient)
		}
		return r, nil
	case strings.HasPrefix(s, "age1"):
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			return nil, fmt.Errorf("%w: malformed age1… recipient", ErrRecipient)
		}
		return r, nil
	}
	return nil, fmt.Errorf("%w: want one age1… or age1pq1… public key", ErrRecipient)
}

// EncryptTo encrypts plaintext to one age recipient (as ParseRecipient
// accepts), in age's binary format.
func EncryptTo(recipient string, plaintext []byte) ([]byte, error) {
	r, err := parseRecipient(strings.TrimSpace(recipient))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	w, err := age.Encrypt(&out, r)
	if err != nil {
		return nil, fmt.Errorf("crypto: age encryption failed: %w", err)
	}
	if _, err := io.Copy(w, bytes.NewReader(plaintext)); err != nil {
		return nil, fmt.Errorf("crypto: age encryption failed: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("crypto: age encryption failed: %w", err)
	}
	return out.Bytes(), nil
}
