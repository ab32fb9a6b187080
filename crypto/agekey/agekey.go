// Package agekey is the embedded-default crypto.KeyProvider: a local age
// hybrid post-quantum identity (ML-KEM-768 + X25519) kept in a file of the
// data directory, readable by its owner only. Wrapped keys are binary age
// files encrypted to the identity's own recipient.
//
// The identity file is the one secret that makes stored data readable: it
// must be backed up apart from the database, and it is written in age's
// identity file format so the age CLI can use it in an emergency.
package agekey

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"

	"github.com/censusvault/censusvault/crypto"
)

// FileName is the identity file's name in the data directory.
const FileName = "keyprovider.age"

const (
	// maxFileSize bounds the identity file read: it is three comment lines
	// and one key line.
	maxFileSize = 16 << 10
	// maxWrapped bounds a wrapped key: one hybrid stanza and a payload of
	// at most a few hundred bytes make about 2 KiB.
	maxWrapped = 64 << 10
	// maxKey bounds what we wrap and what we return from unwrapping.
	maxKey = 16 << 10

	hybridStanzaType = "mlkem768x25519"
)

// Provider wraps keys with age to a local hybrid identity. It is safe for
// concurrent use.
type Provider struct {
	_         [0]func() // incomparable: holds a secret
	id        *age.HybridIdentity
	recipient *age.HybridRecipient
	path      string
}

var (
	_ crypto.KeyProvider      = (*Provider)(nil)
	_ crypto.BatchKeyProvider = (*Provider)(nil)
)

func newProvider(id *age.HybridIdentity, path string) *Provider {
	return &Provider{id: id, recipient: id.Recipient(), path: path}
}

// Create generates a new identity and writes it to path with mode 0600. It
// refuses to overwrite an existing file: that would make every key wrapped
// by the old identity unreadable. The parent directory must exist.
func Create(path string) (*Provider, error) {
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		return nil, fmt.Errorf("failed to generate key provider identity: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("key provider file %s already exists; refusing to overwrite it", path)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to create key provider file: %w", err)
	}
	content := []byte("# censusvault key provider identity: back it up apart from the database.\n" +
		"# public key: " + id.Recipient().String() + "\n" +
		id.String() + "\n")
	defer clear(content)
	_, err = f.Write(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("failed to write key provider file %s: %w", path, err)
	}
	// Make the new entry durable too; a failure here leaves a good file.
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return newProvider(id, path), nil
}

// Load reads the identity written by Create. It refuses a file that group
// or others can access.
func Load(path string) (*Provider, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("key provider file %s not found (run censusvault init first): %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to open key provider file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("failed to stat key provider file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("key provider file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key provider file %s is accessible by group or others (mode %04o): chmod 600 %s", path, perm, path)
	}
	content, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	defer clear(content)
	if err != nil {
		return nil, fmt.Errorf("failed to read key provider file: %w", err)
	}
	if len(content) > maxFileSize {
		return nil, fmt.Errorf("key provider file %s is too large", path)
	}
	var id *age.HybridIdentity
	sc := bufio.NewScanner(bytes.NewReader(content))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if id != nil {
			return nil, fmt.Errorf("key provider file %s holds more than one identity", path)
		}
		// Parse errors are not wrapped: they could quote the key.
		if id, err = age.ParseHybridIdentity(line); err != nil {
			return nil, fmt.Errorf("key provider file %s does not hold an age hybrid identity (AGE-SECRET-KEY-PQ-1…)", path)
		}
	}
	if sc.Err() != nil || id == nil {
		return nil, fmt.Errorf("key provider file %s does not hold an age hybrid identity (AGE-SECRET-KEY-PQ-1…)", path)
	}
	return newProvider(id, path), nil
}

// Recipient returns the identity's public recipient, "age1pq1…".
func (p *Provider) Recipient() string { return p.recipient.String() }

// String names the provider by its file; it never shows the identity.
func (p *Provider) String() string {
	if p == nil {
		return "agekey.Provider(nil)"
	}
	return "agekey.Provider(" + p.path + ")"
}

// GoString is String, so that %#v cannot reach the identity.
func (p *Provider) GoString() string { return p.String() }

// WrapKey encrypts key to the identity's own recipient as a binary age file.
func (p *Provider) WrapKey(ctx context.Context, key []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(key) > maxKey {
		return nil, errors.New("key too large to wrap")
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, p.recipient)
	if err != nil {
		return nil, fmt.Errorf("failed to wrap key: %w", err)
	}
	if _, err := w.Write(key); err != nil {
		return nil, fmt.Errorf("failed to wrap key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("failed to wrap key: %w", err)
	}
	return append([]byte(wrapHeader+p.Fingerprint()+"\n"), buf.Bytes()...), nil
}

// wrapHeader starts every wrapped key, followed by the fingerprint of the
// identity that wrapped it, so that status and rewrap can tell which
// identity each stored key needs without trying to decrypt it.
const wrapHeader = "agekey/v1 "

// Fingerprint names the identity by a hash of its public recipient.
func (p *Provider) Fingerprint() string {
	sum := sha256.Sum256([]byte(p.recipient.String()))
	return hex.EncodeToString(sum[:8])
}

// KEKOf names the identity that wrapped a key (crypto.KEKLabeler).
func (p *Provider) KEKOf(wrapped []byte) (string, error) {
	fp, _, ok := splitHeader(wrapped)
	if !ok {
		return "", errors.New("not a key wrapped by agekey")
	}
	return "age:" + fp, nil
}

// CurrentKEK names this identity (crypto.KEKLabeler).
func (p *Provider) CurrentKEK(context.Context) (string, error) { return "age:" + p.Fingerprint(), nil }

func splitHeader(wrapped []byte) (fp string, rest []byte, ok bool) {
	if !bytes.HasPrefix(wrapped, []byte(wrapHeader)) {
		return "", nil, false
	}
	line, rest, ok := bytes.Cut(wrapped[len(wrapHeader):], []byte("\n"))
	if !ok || len(line) != 16 {
		return "", nil, false
	}
	return string(line), rest, true
}

// UnwrapKey decrypts what WrapKey produced. Every failure to decrypt or
// authenticate is crypto.ErrDecrypt; only a done context returns its own
// error, since that is worth retrying.
func (p *Provider) UnwrapKey(ctx context.Context, wrapped []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(wrapped) > maxWrapped {
		return nil, crypto.ErrDecrypt
	}
	fp, body, ok := splitHeader(wrapped)
	if !ok || fp != p.Fingerprint() {
		return nil, crypto.ErrDecrypt
	}
	r, err := age.Decrypt(bytes.NewReader(body), oneStanza{p.id})
	if err != nil {
		return nil, crypto.ErrDecrypt
	}
	key, err := io.ReadAll(io.LimitReader(r, maxKey+1))
	if err != nil || len(key) > maxKey {
		clear(key)
		return nil, crypto.ErrDecrypt
	}
	return key, nil
}

// WrapKeys is WrapKey in a loop: a local identity gains nothing from
// batching, but callers can treat every provider alike.
func (p *Provider) WrapKeys(ctx context.Context, keys [][]byte) ([][]byte, error) {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		w, err := p.WrapKey(ctx, k)
		if err != nil {
			return nil, err
		}
		out[i] = w
	}
	return out, nil
}

// UnwrapKeys is UnwrapKey in a loop; it fails, with nothing returned, if
// any key fails.
func (p *Provider) UnwrapKeys(ctx context.Context, wrapped [][]byte) ([][]byte, error) {
	out := make([][]byte, len(wrapped))
	for i, w := range wrapped {
		k, err := p.UnwrapKey(ctx, w)
		if err != nil {
			for _, k := range out[:i] {
				clear(k)
			}
			return nil, err
		}
		out[i] = k
	}
	return out, nil
}

// oneStanza accepts only what WrapKey writes, a single hybrid stanza, so a
// tampered header cannot make us do more than one decapsulation.
type oneStanza struct{ id *age.HybridIdentity }

func (o oneStanza) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	if len(stanzas) != 1 || stanzas[0].Type != hybridStanzaType {
		return nil, errors.New("unexpected wrapped key header")
	}
	return o.id.Unwrap(stanzas)
}

// ClassFileName is the identity file of one class's data keys (one
// identity per class lets a class be shredded nationally, backups
// included, by destroying its identity).
func ClassFileName(class string) string { return "keyprovider-" + class + ".age" }
