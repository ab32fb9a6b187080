package crypto

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// Signer signs C2SP signed notes (golang.org/x/mod/sumdb/note, Ed25519):
// receipts and audit checkpoints that anyone can verify with standard
// tooling given VerifierKey. It is safe for concurrent use.
type Signer struct {
	_      incomparable
	signer note.Signer
	name   string
	vkey   string
}

// maxSignerName bounds a key name; names are short origin strings such as
// "censusvault.example/audit".
const maxSignerName = 256

// ed25519Alg is the signed-note algorithm byte for Ed25519 keys.
const ed25519Alg = 1

func validSignerName(name string) bool {
	// The note package's own rule (it does not check in GenerateKey).
	return name != "" && len(name) <= maxSignerName && utf8.ValidString(name) &&
		strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+")
}

// GenerateSigner generates an Ed25519 note key named name. The private key
// string is returned only wrapped by p.
func GenerateSigner(ctx context.Context, p KeyProvider, name string) (s *Signer, wrapped []byte, err error) {
	if p == nil {
		return nil, nil, errors.New("nil key provider")
	}
	if !validSignerName(name) {
		return nil, nil, fmt.Errorf("invalid signer name %q", name)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to generate signer: %w", err)
	}
	ns, err := note.NewSigner(skey)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to generate signer: %w", err)
	}
	secret := []byte(skey)
	defer clear(secret)
	wrapped, err = wrapPayload(ctx, p, domainSigner, secret)
	if err != nil {
		return nil, nil, err
	}
	return &Signer{signer: ns, name: name, vkey: vkey}, wrapped, nil
}

// LoadSigner unwraps a signer made by GenerateSigner.
func LoadSigner(ctx context.Context, p KeyProvider, wrapped []byte) (*Signer, error) {
	if len(wrapped) > maxWrappedBlob {
		return nil, ErrDecrypt
	}
	payload, body, err := unwrapPayload(ctx, p, domainSigner, wrapped)
	if err != nil {
		return nil, err
	}
	defer clear(payload)
	skey := string(body)
	ns, err := note.NewSigner(skey)
	if err != nil {
		return nil, ErrDecrypt
	}
	vkey, err := verifierKey(skey)
	if err != nil {
		return nil, ErrDecrypt
	}
	return &Signer{signer: ns, name: ns.Name(), vkey: vkey}, nil
}

// verifierKey derives the verifier key from a note private key
// "PRIVATE+KEY+name+hash+base64(alg‖seed)", which note.NewSigner has already
// checked against its key hash, so only the signing key need be stored.
func verifierKey(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5) // base64 may contain "+"
	if len(parts) != 5 {
		return "", errors.New("malformed signer key")
	}
	key, err := base64.StdEncoding.DecodeString(parts[4])
	defer clear(key)
	if err != nil || len(key) != 1+ed25519.SeedSize || key[0] != ed25519Alg {
		return "", errors.New("malformed signer key")
	}
	priv := ed25519.NewKeyFromSeed(key[1:])
	defer clear(priv)
	return note.NewEd25519VerifierKey(parts[2], priv.Public().(ed25519.PublicKey))
}

// Name returns the key name, which appears in every signature line.
func (s *Signer) Name() string { return s.name }

// VerifierKey returns the note verifier key text, "name+hash+base64", to
// publish for note.NewVerifier.
func (s *Signer) VerifierKey() string { return s.vkey }

// Sign returns the signed note for text, which must end in "\n".
func (s *Signer) Sign(text string) ([]byte, error) {
	if !strings.HasSuffix(text, "\n") {
		return nil, errors.New("note text must end in a newline")
	}
	msg, err := note.Sign(&note.Note{Text: text}, s.signer)
	if err != nil {
		return nil, fmt.Errorf("failed to sign note: %w", err)
	}
	return msg, nil
}

// String names the signer; it never shows the key.
func (s *Signer) String() string {
	if s == nil {
		return "Signer(nil)"
	}
	return "Signer(" + s.name + ")"
}

// GoString is String, so that %#v cannot reach the key.
func (s *Signer) GoString() string { return s.String() }
