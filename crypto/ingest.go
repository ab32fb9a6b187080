package crypto

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// IngestIdentity is the vault's age hybrid post-quantum identity (ML-KEM-768
// + X25519, recipient "age1pq1…") that devices encrypt submissions to.
// Hybrid, because census answers must stay secret for decades: a classical
// X25519 recipient would be open to harvest-now-decrypt-later.
type IngestIdentity struct {
	_         incomparable
	id        *age.HybridIdentity
	recipient string
}

// maxSubmissionStanzas bounds the recipient stanzas of a submission header.
// A device encrypts to the vault's recipient (two during a rotation); every
// extra hybrid stanza costs one ML-KEM decapsulation per identity, so a
// header of hundreds of them would be a cheap denial of service.
const maxSubmissionStanzas = 4

func newIngestIdentity(id *age.HybridIdentity) *IngestIdentity {
	return &IngestIdentity{id: id, recipient: id.Recipient().String()}
}

// GenerateIngestIdentity generates a new hybrid identity and returns it with
// its secret wrapped by p, the only form in which it may be stored.
func GenerateIngestIdentity(ctx context.Context, p KeyProvider) (id *IngestIdentity, wrapped []byte, err error) {
	if p == nil {
		return nil, nil, errors.New("nil key provider")
	}
	hid, err := age.GenerateHybridIdentity()
	if err != nil {
		return nil, nil, fmt.Errorf("failed to generate ingest identity: %w", err)
	}
	secret := []byte(hid.String())
	defer clear(secret)
	wrapped, err = wrapPayload(ctx, p, domainIngest, secret)
	if err != nil {
		return nil, nil, err
	}
	return newIngestIdentity(hid), wrapped, nil
}

// LoadIngestIdentity unwraps an identity made by GenerateIngestIdentity.
func LoadIngestIdentity(ctx context.Context, p KeyProvider, wrapped []byte) (*IngestIdentity, error) {
	if len(wrapped) > maxWrappedBlob {
		return nil, ErrDecrypt
	}
	payload, body, err := unwrapPayload(ctx, p, domainIngest, wrapped)
	if err != nil {
		return nil, err
	}
	defer clear(payload)
	hid, err := age.ParseHybridIdentity(string(body))
	if err != nil {
		// The parse error could quote key material: say nothing.
		return nil, ErrDecrypt
	}
	return newIngestIdentity(hid), nil
}

// Recipient returns the public recipient, "age1pq1…", that devices encrypt
// submissions to.
func (i *IngestIdentity) Recipient() string { return i.recipient }

// String names the identity by a prefix of its public recipient; it never
// shows the secret.
func (i *IngestIdentity) String() string {
	if i == nil {
		return "IngestIdentity(nil)"
	}
	const n = 16
	return "IngestIdentity(" + i.recipient[:min(n, len(i.recipient))] + "…)"
}

// GoString is String, so that %#v cannot reach the secret.
func (i *IngestIdentity) GoString() string { return i.String() }

// guardIdentity tries the hybrid identities only after checking the header
// is one we are willing to spend work on.
type guardIdentity struct {
	ids []*age.HybridIdentity
}

var (
	_ age.Identity = guardIdentity{}

	errTooManyStanzas = errors.New("too many recipient stanzas")
	errScryptStanza   = errors.New("passphrase-encrypted file")
)

func (g guardIdentity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	if len(stanzas) > maxSubmissionStanzas {
		return nil, errTooManyStanzas
	}
	for _, s := range stanzas {
		if s.Type == "scrypt" {
			return nil, errScryptStanza
		}
	}
	for _, id := range g.ids {
		fileKey, err := id.Unwrap(stanzas)
		if errors.Is(err, age.ErrIncorrectIdentity) {
			continue
		}
		return fileKey, err
	}
	return nil, age.ErrIncorrectIdentity
}

// OpenSubmission decrypts an age file (binary, or ASCII-armored, detected by
// its "-----BEGIN AGE ENCRYPTED FILE-----" prefix after optional leading
// whitespace) with any of ids, entirely in memory.
//
// Any failure (not age, wrong recipient, corrupted, truncated, a
// passphrase-encrypted file, more than a few recipient stanzas) returns
// ErrDecrypt. A plaintext longer than maxPlaintext returns ErrTooLarge: it
// stops reading at maxPlaintext+1 bytes and never buffers more.
func OpenSubmission(ciphertext []byte, ids []*IngestIdentity, maxPlaintext int64) ([]byte, error) {
	if len(ids) == 0 {
		return nil, errors.New("no ingest identities")
	}
	if maxPlaintext < 0 {
		return nil, errors.New("negative plaintext bound")
	}
	g := guardIdentity{ids: make([]*age.HybridIdentity, len(ids))}
	for i, id := range ids {
		if id == nil || id.id == nil {
			return nil, errors.New("nil ingest identity")
		}
		g.ids[i] = id.id
	}

	var src io.Reader
	if trimmed := bytes.TrimLeft(ciphertext, " \t\r\n"); bytes.HasPrefix(trimmed, []byte(armor.Header)) {
		src = armor.NewReader(bytes.NewReader(trimmed))
	} else {
		src = bytes.NewReader(ciphertext)
	}
	r, err := age.Decrypt(src, g)
	if err != nil {
		return nil, ErrDecrypt
	}

	limit := maxPlaintext
	if limit < math.MaxInt64 {
		limit++
	}
	// The plaintext is never longer than the ciphertext, so that much room
	// is enough to read it without growing the buffer.
	pt, err := readAtMost(r, limit, int(min(int64(len(ciphertext)), limit)))
	if err != nil {
		clear(pt)
		return nil, ErrDecrypt
	}
	if int64(len(pt)) > maxPlaintext {
		clear(pt)
		return nil, ErrTooLarge
	}
	return pt, nil
}

// readAtMost reads r to EOF or until it has limit bytes, starting with a
// buffer of capacity hint and never growing past limit (unlike
// bytes.Buffer, which doubles).
func readAtMost(r io.Reader, limit int64, hint int) ([]byte, error) {
	buf := make([]byte, 0, hint)
	for int64(len(buf)) < limit {
		if len(buf) == cap(buf) {
			var probe [1]byte
			n, err := r.Read(probe[:])
			if n == 0 {
				if err == io.EOF {
					return buf, nil
				}
				if err != nil {
					return buf, err
				}
				continue
			}
			newCap := int(min(limit, int64(cap(buf))*2+512))
			grown := make([]byte, len(buf), newCap)
			copy(grown, buf)
			clear(buf)
			buf = append(grown, probe[0])
			continue
		}
		room := int(min(int64(cap(buf)), limit)) - len(buf)
		n, err := r.Read(buf[len(buf) : len(buf)+room])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}
