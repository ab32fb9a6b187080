package crypto

import (
	"bytes"
	"container/list"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// Class is the sensitivity class of a group of fields; each class is sealed
// under its own data key, so access to one says nothing about the other.
type Class string

const (
	// Identifying fields name or locate a person: names, phone, address
	// detail, GPS.
	Identifying Class = "identifying"
	// Analytic fields are the statistical answers: sex, birth, ethnicity,
	// education …
	Analytic Class = "analytic"
)

// DataKeyID names a data key: one DEK per (class, commune, version), so a
// class can be crypto-shredded for one commune, and rotated by version.
type DataKeyID struct {
	Class   Class
	Commune string
	Version int
}

// AD is the associated data that binds a sealed value to its place: it
// cannot be moved to another submission, class, form version, area,
// household or key. It is encoded unambiguously (length-prefixed, with the
// domain-separation prefix "censusvault-seal/v1") together with the
// DataKeyID.
type AD struct {
	Submission  string
	Form        string
	FormVersion int
	Area        string
	HouseholdNo int64
}

const (
	// MaxSealPlaintext bounds one sealed value. A class of fields of one
	// household is a few KiB; the bound is generous but keeps a single call
	// from allocating without limit.
	MaxSealPlaintext = 4 << 20
	// maxIDField bounds each string of a DataKeyID or AD: they are codes and
	// UUIDs, never free text.
	maxIDField = 1024
	// maxWrappedBlob bounds a wrapped key handed back to a provider.
	maxWrappedBlob = 64 << 10
	// defaultMaxCached keys take a few hundred KiB. A national census has
	// some 10,600 communes and two sealed classes each, so a broker serving
	// all of them at once should raise it to avoid reloading keys.
	defaultMaxCached = 4096

	dekSize     = chacha20poly1305.KeySize
	sealVersion = 0x01
	sealHeader  = 1 + chacha20poly1305.NonceSizeX
	sealDomain  = "censusvault-seal/v1"
)

func (id DataKeyID) validate() error {
	switch id.Class {
	case Identifying, Analytic:
	default:
		return fmt.Errorf("invalid data key class %q", id.Class)
	}
	if id.Commune == "" || len(id.Commune) > maxIDField {
		return errors.New("invalid data key commune: empty or too long")
	}
	if id.Version < 0 {
		return errors.New("invalid data key version: negative")
	}
	return nil
}

func appendLP(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// appendKeyID encodes id unambiguously; it is part of both the wrapped DEK
// payload and the sealing AD.
func appendKeyID(b []byte, id DataKeyID) []byte {
	b = appendLP(b, string(id.Class))
	b = appendLP(b, id.Commune)
	return binary.BigEndian.AppendUint64(b, uint64(id.Version))
}

func appendAD(b []byte, id DataKeyID, ad AD) ([]byte, error) {
	if len(ad.Submission) > maxIDField || len(ad.Form) > maxIDField || len(ad.Area) > maxIDField {
		return nil, errors.New("invalid associated data: field too long")
	}
	b = appendLP(b, sealDomain)
	b = append(b, sealVersion)
	b = appendKeyID(b, id)
	b = appendLP(b, ad.Submission)
	b = appendLP(b, ad.Form)
	b = binary.BigEndian.AppendUint64(b, uint64(ad.FormVersion))
	b = appendLP(b, ad.Area)
	return binary.BigEndian.AppendUint64(b, uint64(ad.HouseholdNo)), nil
}

// KeyringOptions configures NewKeyring.
type KeyringOptions struct {
	// Provider wraps and unwraps data keys. Required.
	Provider KeyProvider
	// ClassProviders, if set, wrap the data keys of a class instead of
	// Provider: one key-encryption key per class lets a class be
	// crypto-shredded nationally, old backups included, by destroying its
	// key-encryption key.
	ClassProviders map[Class]KeyProvider
	// MaxCached bounds the unwrapped DEKs kept in memory (least recently
	// used are evicted first). Zero means 4096.
	MaxCached int
}

// Keyring holds unwrapped data keys in a bounded LRU cache and seals and
// opens field values with them. The keys never leave it. It is safe for
// concurrent use.
type Keyring struct {
	_        incomparable
	provider KeyProvider
	byClass  map[Class]KeyProvider
	max      int

	mu   sync.Mutex
	lru  *list.List // of *dek; front is most recently used
	byID map[DataKeyID]*list.Element
}

type dek struct {
	id  DataKeyID
	key [dekSize]byte
}

// NewKeyring returns an empty Keyring.
func NewKeyring(o KeyringOptions) (*Keyring, error) {
	if o.Provider == nil {
		return nil, errors.New("keyring: nil key provider")
	}
	if o.MaxCached < 0 {
		return nil, errors.New("keyring: negative MaxCached")
	}
	if o.MaxCached == 0 {
		o.MaxCached = defaultMaxCached
	}
	k := &Keyring{
		provider: o.Provider,
		byClass:  map[Class]KeyProvider{},
		max:      o.MaxCached,
		lru:      list.New(),
		byID:     make(map[DataKeyID]*list.Element),
	}
	for c, p := range o.ClassProviders {
		if c != Identifying && c != Analytic {
			return nil, fmt.Errorf("keyring: no class %q", c)
		}
		if p == nil {
			return nil, fmt.Errorf("keyring: nil key provider for class %s", c)
		}
		k.byClass[c] = p
	}
	return k, nil
}

// Provider is the key provider that wraps the data keys of class c.
func (k *Keyring) Provider(c Class) KeyProvider {
	if p, ok := k.byClass[c]; ok {
		return p
	}
	return k.provider
}

// String describes the keyring without any key material.
func (k *Keyring) String() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return fmt.Sprintf("Keyring(%d/%d keys cached)", k.lru.Len(), k.max)
}

// GoString is String, so that %#v cannot reach the cache.
func (k *Keyring) GoString() string { return k.String() }

// get copies the key out under the lock, so that a concurrent Forget can
// zero the cached copy without racing with a Seal or Open in progress.
func (k *Keyring) get(id DataKeyID) (key [dekSize]byte, ok bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.byID[id]
	if !ok {
		return key, false
	}
	k.lru.MoveToFront(e)
	return e.Value.(*dek).key, true
}

func (k *Keyring) put(id DataKeyID, key *[dekSize]byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.byID[id]; ok {
		e.Value.(*dek).key = *key
		k.lru.MoveToFront(e)
		return
	}
	k.byID[id] = k.lru.PushFront(&dek{id: id, key: *key})
	for k.lru.Len() > k.max {
		k.removeLocked(k.lru.Back())
	}
}

func (k *Keyring) removeLocked(e *list.Element) {
	d := k.lru.Remove(e).(*dek)
	delete(k.byID, d.id)
	clear(d.key[:])
}

// NewDataKey generates a data key for id (32 random bytes), keeps it in the
// cache and returns it wrapped by the provider, which is the only form in
// which it may be stored. It replaces any key cached under id: if the caller
// loses a race to store the wrapped key, it must LoadDataKeys the winner's.
func (k *Keyring) NewDataKey(ctx context.Context, id DataKeyID) (wrapped []byte, err error) {
	if err := id.validate(); err != nil {
		return nil, err
	}
	var key [dekSize]byte
	defer clear(key[:])
	rand.Read(key[:])
	body := append(appendKeyID(nil, id), key[:]...)
	defer clear(body)
	wrapped, err = wrapPayload(ctx, k.Provider(id.Class), domainDEK, body)
	if err != nil {
		return nil, err
	}
	k.put(id, &key)
	return wrapped, nil
}

// LoadDataKeys unwraps data keys (in one batch when the provider supports
// it) into the cache. It is all or nothing: if any key fails to unwrap or
// was wrapped for another DataKeyID, none is loaded and ErrDecrypt is
// returned.
func (k *Keyring) LoadDataKeys(ctx context.Context, ids []DataKeyID, wrapped [][]byte) error {
	if len(ids) != len(wrapped) {
		return errors.New("keyring: ids and wrapped keys differ in length")
	}
	if len(ids) > k.max {
		return fmt.Errorf("keyring: %d keys exceed the cache bound of %d", len(ids), k.max)
	}
	if len(ids) == 0 {
		return nil
	}
	for _, id := range ids {
		if err := id.validate(); err != nil {
			return err
		}
	}
	for _, w := range wrapped {
		if len(w) > maxWrappedBlob {
			return ErrDecrypt
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	// One batch per provider (class), results back in input order.
	payloads := make([][]byte, len(wrapped))
	defer clearAll(payloads)
	groups := map[KeyProvider][]int{}
	var order []KeyProvider
	for i, id := range ids {
		p := k.Provider(id.Class)
		if _, ok := groups[p]; !ok {
			order = append(order, p)
		}
		groups[p] = append(groups[p], i)
	}
	for _, p := range order {
		idx := groups[p]
		in := make([][]byte, len(idx))
		for j, i := range idx {
			in[j] = wrapped[i]
		}
		out, err := UnwrapKeys(ctx, p, in)
		if err != nil {
			if errors.Is(err, ErrDecrypt) {
				return ErrDecrypt
			}
			return fmt.Errorf("failed to unwrap data keys: %w", err)
		}
		for j, i := range idx {
			payloads[i] = out[j]
		}
	}

	keys := make([][dekSize]byte, len(ids))
	defer clear(keys)
	var idBuf [2*4 + 2*maxIDField + 8]byte
	for i, id := range ids {
		_, body, err := checkPayload(payloads[i], domainDEK)
		if err != nil {
			return err
		}
		want := appendKeyID(idBuf[:0], id)
		if len(body) != len(want)+dekSize || !bytes.Equal(body[:len(want)], want) {
			return ErrDecrypt
		}
		copy(keys[i][:], body[len(want):])
	}
	for i, id := range ids {
		k.put(id, &keys[i])
	}
	return nil
}

// UnwrapKeys unwraps with p, in one batch when p supports it.
func UnwrapKeys(ctx context.Context, p KeyProvider, wrapped [][]byte) ([][]byte, error) {
	if b, ok := p.(BatchKeyProvider); ok {
		out, err := b.UnwrapKeys(ctx, wrapped)
		if err != nil {
			return nil, err
		}
		if len(out) != len(wrapped) {
			clearAll(out)
			return nil, errors.New("keyring: provider returned the wrong number of keys")
		}
		return out, nil
	}
	out := make([][]byte, 0, len(wrapped))
	for _, w := range wrapped {
		k, err := p.UnwrapKey(ctx, w)
		if err != nil {
			clearAll(out)
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

func clearAll(bs [][]byte) {
	for _, b := range bs {
		clear(b)
	}
}

// Loaded reports whether id's key is in the cache. It does not count as a
// use for the LRU order.
func (k *Keyring) Loaded(id DataKeyID) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.byID[id]
	return ok
}

// Forget drops keys from the cache and zeroes them; ids not cached are
// ignored.
func (k *Keyring) Forget(ids ...DataKeyID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, id := range ids {
		if e, ok := k.byID[id]; ok {
			k.removeLocked(e)
		}
	}
}

// Seal encrypts plaintext with XChaCha20-Poly1305 under id's key, with a
// random 24-byte nonce (safe at any volume with random nonces) and ad bound
// as associated data. The output is 0x01 ‖ nonce ‖ ciphertext‖tag.
func (k *Keyring) Seal(id DataKeyID, plaintext []byte, ad AD) ([]byte, error) {
	if err := id.validate(); err != nil {
		return nil, err
	}
	if len(plaintext) > MaxSealPlaintext {
		return nil, ErrTooLarge
	}
	var adBuf [256]byte
	adb, err := appendAD(adBuf[:0], id, ad)
	if err != nil {
		return nil, err
	}
	key, ok := k.get(id)
	if !ok {
		return nil, ErrKeyNotLoaded
	}
	aead, err := chacha20poly1305.NewX(key[:])
	clear(key[:])
	if err != nil {
		return nil, fmt.Errorf("failed to set up AEAD: %w", err)
	}
	out := make([]byte, sealHeader, sealHeader+len(plaintext)+chacha20poly1305.Overhead)
	out[0] = sealVersion
	rand.Read(out[1:sealHeader])
	return aead.Seal(out, out[1:sealHeader], plaintext, adb), nil
}

// Open decrypts what Seal produced for the same id and ad. It returns
// ErrKeyNotLoaded if id's key is not cached, and ErrDecrypt for every other
// failure.
func (k *Keyring) Open(id DataKeyID, sealed []byte, ad AD) ([]byte, error) {
	if id.validate() != nil {
		return nil, ErrDecrypt
	}
	key, ok := k.get(id)
	if !ok {
		return nil, ErrKeyNotLoaded
	}
	defer clear(key[:])
	if len(sealed) < sealHeader+chacha20poly1305.Overhead ||
		len(sealed) > sealHeader+MaxSealPlaintext+chacha20poly1305.Overhead ||
		sealed[0] != sealVersion {
		return nil, ErrDecrypt
	}
	var adBuf [256]byte
	adb, err := appendAD(adBuf[:0], id, ad)
	if err != nil {
		return nil, ErrDecrypt
	}
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return nil, ErrDecrypt
	}
	pt, err := aead.Open(nil, sealed[1:sealHeader], sealed[sealHeader:], adb)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}
