package crypto

import (
	"bytes"
	"context"
	"errors"
	"fmt"
)

// KeyProvider wraps key material under a key-encryption key it holds (a
// local age identity, HashiCorp Vault Transit later). It is the only way key
// material leaves this package.
type KeyProvider interface {
	WrapKey(ctx context.Context, key []byte) ([]byte, error)
	// UnwrapKey returns ErrDecrypt on any failure to authenticate.
	UnwrapKey(ctx context.Context, wrapped []byte) ([]byte, error)
}

// BatchKeyProvider is an optional second interface, found by type
// assertion, for providers that can do many keys per round trip.
type BatchKeyProvider interface {
	WrapKeys(ctx context.Context, keys [][]byte) ([][]byte, error)
	UnwrapKeys(ctx context.Context, wrapped [][]byte) ([][]byte, error)
}

// Domain-separation prefixes inside every wrapped payload. They make the
// payload types disjoint, so a blob wrapped for one purpose is rejected
// (ErrDecrypt) when loaded for another.
const (
	domainDEK    = "censusvault-dek/v1\n"
	domainIngest = "censusvault-ingest/v1\n"
	domainSigner = "censusvault-signer/v1\n"
	// domainRecordKey wraps the secret record keys are derived under.
	domainRecordKey = "censusvault-recordkey/v1\n"
)

// rewrappable reports whether payload is key material of a known domain,
// the only payloads Rewrap and RewrapKeys move.
func rewrappable(payload []byte) bool {
	if len(payload) > maxWrappedPayload {
		return false
	}
	for _, d := range []string{domainDEK, domainIngest, domainSigner, domainRecordKey} {
		if bytes.HasPrefix(payload, []byte(d)) {
			return true
		}
	}
	return false
}

// maxWrappedPayload bounds what we accept back from a provider: the largest
// payload we ever wrap is an age hybrid secret key string or a note signer
// key, both well under 1 KiB.
const maxWrappedPayload = 4 << 10

// wrapPayload wraps domain‖body with p. The temporary payload is zeroed.
func wrapPayload(ctx context.Context, p KeyProvider, domain string, body []byte) ([]byte, error) {
	if p == nil {
		return nil, errors.New("nil key provider")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	payload := make([]byte, 0, len(domain)+len(body))
	payload = append(payload, domain...)
	payload = append(payload, body...)
	defer clear(payload)
	w, err := p.WrapKey(ctx, payload)
	if err != nil {
		return nil, fmt.Errorf("failed to wrap key: %w", err)
	}
	return w, nil
}

// unwrapPayload unwraps with p and checks the domain. It returns the body,
// which aliases a buffer the caller must clear when done, or ErrDecrypt.
// Provider errors that are not authentication failures (the context, the
// network) are returned as they are, so callers can retry them.
func unwrapPayload(ctx context.Context, p KeyProvider, domain string, wrapped []byte) (payload, body []byte, err error) {
	if p == nil {
		return nil, nil, errors.New("nil key provider")
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	payload, err = p.UnwrapKey(ctx, wrapped)
	if err != nil {
		if errors.Is(err, ErrDecrypt) {
			return nil, nil, ErrDecrypt
		}
		return nil, nil, fmt.Errorf("failed to unwrap key: %w", err)
	}
	return checkPayload(payload, domain)
}

func checkPayload(payload []byte, domain string) ([]byte, []byte, error) {
	if len(payload) > maxWrappedPayload || !bytes.HasPrefix(payload, []byte(domain)) {
		clear(payload)
		return nil, nil, ErrDecrypt
	}
	return payload, payload[len(domain):], nil
}

// Rewrap moves a wrapped blob (data key, ingest identity, signer or
// record-key secret) from one KeyProvider to another, for
// key-encryption-key rotation, without the key material ever leaving this
// package. Records sealed under a rewrapped data key are untouched.
func Rewrap(ctx context.Context, from, to KeyProvider, wrapped []byte) ([]byte, error) {
	if from == nil || to == nil {
		return nil, errors.New("nil key provider")
	}
	payload, err := from.UnwrapKey(ctx, wrapped)
	if err != nil {
		if errors.Is(err, ErrDecrypt) {
			return nil, ErrDecrypt
		}
		return nil, fmt.Errorf("failed to unwrap key: %w", err)
	}
	defer clear(payload)
	if !rewrappable(payload) {
		return nil, ErrDecrypt
	}
	w, err := to.WrapKey(ctx, payload)
	if err != nil {
		return nil, fmt.Errorf("failed to wrap key: %w", err)
	}
	return w, nil
}

// RewrapKeys moves wrapped keys (data keys, ingest identities, signers,
// the record-key secret) from one provider to another without the keys
// leaving this package. With from == to and a provider that implements
// Rewrapper, the provider does it itself (Vault Transit rewrap: the keys
// never leave Vault either).
func RewrapKeys(ctx context.Context, from, to KeyProvider, wrapped [][]byte) ([][]byte, error) {
	if from == nil || to == nil {
		return nil, errors.New("nil key provider")
	}
	if len(wrapped) == 0 {
		return nil, nil
	}
	if rw, ok := to.(interface {
		RewrapKeys(context.Context, [][]byte) ([][]byte, error)
	}); ok && from == to {
		return rw.RewrapKeys(ctx, wrapped)
	}
	payloads, err := UnwrapKeys(ctx, from, wrapped)
	if err != nil {
		if errors.Is(err, ErrDecrypt) {
			return nil, ErrDecrypt
		}
		return nil, fmt.Errorf("failed to unwrap keys: %w", err)
	}
	defer clearAll(payloads)
	for _, p := range payloads {
		if !rewrappable(p) {
			return nil, ErrDecrypt
		}
	}
	var out [][]byte
	if b, ok := to.(BatchKeyProvider); ok {
		out, err = b.WrapKeys(ctx, payloads)
	} else {
		for _, p := range payloads {
			var w []byte
			if w, err = to.WrapKey(ctx, p); err != nil {
				break
			}
			out = append(out, w)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("failed to wrap keys: %w", err)
	}
	if len(out) != len(wrapped) {
		return nil, errors.New("provider returned the wrong number of keys")
	}
	return out, nil
}

// Migrating returns a provider for the time keys move from one provider
// to another (a rewrap that switches providers): it wraps with to, and
// unwraps with to, falling back to from for keys that to cannot
// authenticate — those not moved yet. Key labels are to's.
func Migrating(to, from KeyProvider) KeyProvider {
	return &migrating{to: to, from: from}
}

type migrating struct {
	_        incomparable
	to, from KeyProvider
}

func (m *migrating) WrapKey(ctx context.Context, key []byte) ([]byte, error) {
	return m.to.WrapKey(ctx, key)
}

func (m *migrating) UnwrapKey(ctx context.Context, wrapped []byte) ([]byte, error) {
	k, err := m.to.UnwrapKey(ctx, wrapped)
	if errors.Is(err, ErrDecrypt) {
		return m.from.UnwrapKey(ctx, wrapped)
	}
	return k, err
}

func (m *migrating) KEKOf(wrapped []byte) (string, error) {
	if l, ok := m.to.(KEKLabeler); ok {
		return l.KEKOf(wrapped)
	}
	return "", errors.New("provider has no key labels")
}

func (m *migrating) CurrentKEK(ctx context.Context) (string, error) {
	if l, ok := m.to.(KEKLabeler); ok {
		return l.CurrentKEK(ctx)
	}
	return "", nil
}

func (m *migrating) String() string { return "Migrating(key provider)" }
