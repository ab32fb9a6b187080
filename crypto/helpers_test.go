package crypto_test

import (
	"path/filepath"
	"testing"

	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
)

// newProvider returns a real agekey provider in a fresh directory.
func newProvider(tb testing.TB) *agekey.Provider {
	tb.Helper()
	p, err := agekey.Create(filepath.Join(tb.TempDir(), agekey.FileName))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func newKeyring(tb testing.TB, p crypto.KeyProvider, maxCached int) *crypto.Keyring {
	tb.Helper()
	k, err := crypto.NewKeyring(crypto.KeyringOptions{Provider: p, MaxCached: maxCached})
	if err != nil {
		tb.Fatal(err)
	}
	return k
}
