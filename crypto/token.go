package crypto

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// tokenLen is the length of a revealed token: 32 bytes as unpadded base64url.
const tokenLen = 43

var tokenEncoding = base64.RawURLEncoding.Strict()

// Token is a bearer token: 32 random bytes. It is shown once to the
// operator (Reveal) and afterwards only its digest is stored. It has no
// String method and formats as "Token(redacted)" with every verb.
type Token struct {
	_ incomparable
	b [32]byte
}

// NewToken returns a fresh random token.
func NewToken() (Token, error) {
	var t Token
	if _, err := rand.Read(t.b[:]); err != nil {
		return Token{}, fmt.Errorf("failed to generate token: %w", err)
	}
	return t, nil
}

// Reveal returns the token as 43 unpadded base64url characters. It is meant
// to be called exactly once, to show the token to the operator when it is
// issued; the vault never stores or shows it again.
func (t Token) Reveal() string { return tokenEncoding.EncodeToString(t.b[:]) }

// Digest returns the SHA-256 of the token's bytes, the only form stored.
func (t Token) Digest() TokenDigest { return sha256.Sum256(t.b[:]) }

// Format implements fmt.Formatter so that no verb (%v, %x, %d, %#v …)
// prints the bytes.
func (t Token) Format(f fmt.State, verb rune) { fmt.Fprint(f, "Token(redacted)") }

// TokenDigest is the SHA-256 of a token's bytes.
type TokenDigest [32]byte

// ParseTokenDigest decodes a presented bearer token (exactly 43 base64url
// characters, no padding) and returns its digest, or ErrMalformedToken.
func ParseTokenDigest(bearer string) (TokenDigest, error) {
	if len(bearer) != tokenLen {
		return TokenDigest{}, ErrMalformedToken
	}
	var b [32]byte
	defer clear(b[:])
	src := []byte(bearer)
	defer clear(src)
	n, err := tokenEncoding.Decode(b[:], src)
	if err != nil || n != len(b) {
		return TokenDigest{}, ErrMalformedToken
	}
	return sha256.Sum256(b[:]), nil
}

// Hex returns the digest in lowercase hex, for storage lookup.
func (d TokenDigest) Hex() string { return hex.EncodeToString(d[:]) }

// Equal compares digests in constant time.
func (d TokenDigest) Equal(o TokenDigest) bool {
	return subtle.ConstantTimeCompare(d[:], o[:]) == 1
}
