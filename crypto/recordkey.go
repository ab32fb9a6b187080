package crypto

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"
)

// recordKeySecretSize is the size of the vault secret record keys are
// derived under: a full HMAC-SHA-256 block of entropy is more than the
// 32-bit output needs, but it keeps the keys unguessable without it.
const recordKeySecretSize = 32

// RecordKeyer derives the record keys of cell-key perturbation:
// HMAC-SHA-256 under a 32-byte vault secret of (submission id ‖ person
// number), truncated to a uint32. Deriving rather than storing them means
// records deposited before record keys existed have one too, and the same
// record always gets the same key, so the same contributors always get the
// same noise. The secret never leaves this type. It is safe for
// concurrent use.
type RecordKeyer struct {
	_      incomparable
	secret [recordKeySecretSize]byte
	// macs holds HMAC states keyed with secret: hmac.New hashes the key
	// and allocates, which would dominate deriving keys for millions of
	// records.
	macs sync.Pool
}

// recordMAC is one pooled HMAC state with its message and sum buffers, so
// that deriving a key allocates nothing.
type recordMAC struct {
	h   hash.Hash
	msg []byte
	sum []byte
}

func newRecordKeyer(secret []byte) *RecordKeyer {
	r := &RecordKeyer{}
	copy(r.secret[:], secret)
	r.macs.New = func() any { return &recordMAC{h: hmac.New(sha256.New, r.secret[:])} }
	return r
}

// GenerateRecordKeyer makes a new random record-key secret. It is returned
// only wrapped by p.
func GenerateRecordKeyer(ctx context.Context, p KeyProvider) (r *RecordKeyer, wrapped []byte, err error) {
	if p == nil {
		return nil, nil, errors.New("nil key provider")
	}
	secret := make([]byte, recordKeySecretSize)
	defer clear(secret)
	if _, err := rand.Read(secret); err != nil {
		return nil, nil, fmt.Errorf("failed to generate record-key secret: %w", err)
	}
	wrapped, err = wrapPayload(ctx, p, domainRecordKey, secret)
	if err != nil {
		return nil, nil, err
	}
	return newRecordKeyer(secret), wrapped, nil
}

// LoadRecordKeyer unwraps a secret made by GenerateRecordKeyer.
func LoadRecordKeyer(ctx context.Context, p KeyProvider, wrapped []byte) (*RecordKeyer, error) {
	if len(wrapped) > maxWrappedBlob {
		return nil, ErrDecrypt
	}
	payload, body, err := unwrapPayload(ctx, p, domainRecordKey, wrapped)
	if err != nil {
		return nil, err
	}
	defer clear(payload)
	if len(body) != recordKeySecretSize {
		return nil, ErrDecrypt
	}
	return newRecordKeyer(body), nil
}

// Key is the record key of one person of a submission; person 0 is the
// household itself, 1, 2, … the persons in form order. The message is
// uint64 length ‖ submission ‖ uint64 person, all big-endian, so no two
// (submission, person) pairs share one.
func (r *RecordKeyer) Key(submission string, person int) uint32 {
	m := r.macs.Get().(*recordMAC)
	defer r.macs.Put(m)
	m.msg = binary.BigEndian.AppendUint64(m.msg[:0], uint64(len(submission)))
	m.msg = append(m.msg, submission...)
	m.msg = binary.BigEndian.AppendUint64(m.msg, uint64(person))
	m.h.Reset()
	m.h.Write(m.msg)
	m.sum = m.h.Sum(m.sum[:0])
	return binary.BigEndian.Uint32(m.sum[:4])
}

// String never shows the secret.
func (r *RecordKeyer) String() string {
	if r == nil {
		return "RecordKeyer(nil)"
	}
	return "RecordKeyer(redacted)"
}

// GoString is String, so that %#v cannot reach the secret.
func (r *RecordKeyer) GoString() string { return r.String() }
