package crypto

import "context"

// KEKLabeler is an optional interface of providers: which key-encryption
// key, and which version of it, wrapped a blob, and which one wraps now.
// Labels are opaque strings compared for equality; the broker uses them to
// count what a rewrap still has to move, never to find key material.
type KEKLabeler interface {
	KEKOf(wrapped []byte) (string, error)
	CurrentKEK(ctx context.Context) (string, error)
}

// Rewrapper is an optional interface of providers that re-encrypt wrapped
// keys under their newest key-encryption key without the keys leaving the
// provider (Vault Transit rewrap). Providers without it are rewrapped
// through [Rewrap], which unwraps inside this package.
type Rewrapper interface {
	RewrapKeys(ctx context.Context, wrapped [][]byte) ([][]byte, error)
}
