package broker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/storage"
)

// The key hierarchy:
//
//	key-encryption keys (the key provider: a local age identity, or one
//	HashiCorp Vault Transit key per class)
//	├── wrap the data keys (DEKs), one per (class, commune, version)
//	│   └── seal the identifying / analytic fields of each submission
//	└── (system) wrap the ingest identities, the receipt and audit
//	    signing keys, and the secret record keys are derived under
//
// Rotation starts a new DEK version for new writes; rewrap re-wraps every
// stored DEK and system key under the newest key-encryption key without
// touching a record; shredding destroys the DEKs of a class for an area.

// kekLabeler is crypto.KEKLabeler, declared here so the broker needs
// nothing but the method set.
type kekLabeler interface {
	KEKOf(wrapped []byte) (string, error)
	CurrentKEK(ctx context.Context) (string, error)
}

func kekOf(p crypto.KeyProvider, wrapped []byte) string {
	if l, ok := p.(kekLabeler); ok {
		if s, err := l.KEKOf(wrapped); err == nil {
			return s
		}
		return "unknown"
	}
	return ""
}

func currentKEK(ctx context.Context, p crypto.KeyProvider) (string, error) {
	if l, ok := p.(kekLabeler); ok {
		return l.CurrentKEK(ctx)
	}
	return "", nil
}

// KeyStatus describes the key material in the vault: versions, counts and
// which key-encryption key wraps what — never key material.
type KeyStatus struct {
	DEKVersion int               // the version new writes use
	Current    map[string]string // "system", "identifying", "analytic" → current key-encryption key
	DataKeys   []DataKeyCount
	Keys       []KeyInfo
}

// DataKeyCount counts DEKs of one class and version wrapped by one
// key-encryption key.
type DataKeyCount struct {
	Class    string
	Version  int
	KEK      string
	Live     int
	Shredded int
}

// KeyInfo is one stored system key.
type KeyInfo struct {
	Purpose  string
	Version  int
	KEK      string
	Created  time.Time
	NotAfter time.Time
}

// KeyStatus reports the vault's keys.
func (b *Broker) KeyStatus(ctx context.Context) (*KeyStatus, error) {
	st := &KeyStatus{Current: map[string]string{}}
	var err error
	if st.Current["system"], err = currentKEK(ctx, b.keys); err != nil {
		return nil, errorf(Unavailable, err, "the key provider is unavailable")
	}
	for _, c := range []crypto.Class{crypto.Identifying, crypto.Analytic} {
		if st.Current[string(c)], err = currentKEK(ctx, b.keyring.Provider(c)); err != nil {
			return nil, errorf(Unavailable, err, "the key provider is unavailable")
		}
	}
	counts := map[DataKeyCount]*DataKeyCount{}
	err = b.store.View(ctx, func(tx storage.ReadTx) error {
		v, err := tx.Meta(metaDEKVersion)
		if err != nil {
			return err
		}
		st.DEKVersion, _ = strconv.Atoi(v)
		if err := tx.DataKeys(func(k storage.DataKey) (bool, error) {
			key := DataKeyCount{Class: k.Class, Version: k.Version}
			if k.ShreddedAt.IsZero() {
				key.KEK = kekOf(b.keyring.Provider(crypto.Class(k.Class)), k.Wrapped)
			}
			c := counts[key]
			if c == nil {
				c = &DataKeyCount{Class: key.Class, Version: key.Version, KEK: key.KEK}
				counts[key] = c
			}
			if k.ShreddedAt.IsZero() {
				c.Live++
			} else {
				c.Shredded++
			}
			return true, nil
		}); err != nil {
			return err
		}
		for _, p := range []string{keyIngest, keyReceipt, keyAudit, keyRecord} {
			ks, err := tx.Keys(p)
			if err != nil {
				return err
			}
			for _, k := range ks {
				st.Keys = append(st.Keys, KeyInfo{Purpose: p, Version: k.Version, KEK: kekOf(b.keys, k.Wrapped), Created: k.CreatedAt, NotAfter: k.NotAfter})
			}
		}
		return nil
	})
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read keys")
	}
	for _, c := range counts {
		st.DataKeys = append(st.DataKeys, *c)
	}
	sort.Slice(st.DataKeys, func(i, j int) bool {
		a, b := st.DataKeys[i], st.DataKeys[j]
		if a.Class != b.Class {
			return a.Class < b.Class
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.KEK < b.KEK
	})
	return st, nil
}

// RotateDEK starts a new data-key version: new writes get new DEKs (made
// on first use per commune); existing records keep theirs.
func (b *Broker) RotateDEK(ctx context.Context, actor string) (int, error) {
	var v int
	err := b.store.Update(ctx, func(tx storage.Tx) error {
		s, err := tx.Meta(metaDEKVersion)
		if err != nil {
			return err
		}
		cur, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("bad stored data key version %q", s)
		}
		v = cur + 1
		if err := tx.PutMeta(metaDEKVersion, strconv.Itoa(v)); err != nil {
			return err
		}
		_, err = appendEvent(tx, &audit.Event{
			Time: b.now().UTC(), Actor: actor, Roles: []string{}, Action: "keys.rotate", Area: string(b.tree.Root()),
			Resources: []string{fmt.Sprintf("dek-version:%d", v)}, Decision: "allow",
			Rule: "operator with access to the key provider", Outcome: "ok",
		})
		return err
	})
	if err != nil {
		return 0, errorf(Unavailable, err, "failed to rotate")
	}
	b.setDEKVersion(v)
	return v, nil
}

func (b *Broker) setDEKVersion(v int) {
	b.mu.Lock()
	b.dekVer = v
	b.mu.Unlock()
}

func (b *Broker) dekVersion() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.dekVer
}

// RewrapOpts configure Rewrap.
type RewrapOpts struct {
	// From are the providers the keys are wrapped by now, when switching
	// providers (age → Vault); nil: the broker's MigrateFrom if it has
	// one, else its own providers, re-wrapping under their newest
	// key-encryption key. The broker must have been made with MigrateFrom
	// to start at all before the keys move.
	From      crypto.KeyProvider
	FromClass map[crypto.Class]crypto.KeyProvider
	Batch     int                   // keys per provider call and per transaction; default 250
	Progress  func(done, total int) // called after each batch
}

// Rewrap re-wraps every stored data key and system key under the
// broker's providers' newest key-encryption key, without touching a
// record. Each batch commits on its own, and keys already wrapped by the
// current key-encryption key are skipped, so an interrupted rewrap is
// simply run again.
func (b *Broker) Rewrap(ctx context.Context, actor string, o RewrapOpts) (int, error) {
	if o.Batch <= 0 {
		o.Batch = 250
	}
	if o.From == nil && b.from != nil {
		o.From, o.FromClass = b.from, b.fromClass
	}
	switching := o.From != nil
	fromOf := func(c crypto.Class) crypto.KeyProvider {
		if !switching {
			return b.keyring.Provider(c)
		}
		if p, ok := o.FromClass[c]; ok {
			return p
		}
		return o.From
	}
	fromSystem := b.keys
	if switching {
		fromSystem = o.From
	}
	type item struct {
		class, commune, purpose string
		version                 int
		wrapped                 []byte
	}
	// What needs doing.
	var todo []item
	cur := map[string]string{}
	for _, c := range []crypto.Class{crypto.Identifying, crypto.Analytic} {
		l, err := currentKEK(ctx, b.keyring.Provider(c))
		if err != nil {
			return 0, errorf(Unavailable, err, "the key provider is unavailable")
		}
		cur[string(c)] = l
	}
	sysCur, err := currentKEK(ctx, b.keys)
	if err != nil {
		return 0, errorf(Unavailable, err, "the key provider is unavailable")
	}
	err = b.store.View(ctx, func(tx storage.ReadTx) error {
		if err := tx.DataKeys(func(k storage.DataKey) (bool, error) {
			if !k.ShreddedAt.IsZero() {
				return true, nil
			}
			// Keys already under the target's current key-encryption key
			// are done (also when switching providers: a resumed or
			// repeated rewrap skips what it moved).
			c := crypto.Class(k.Class)
			if cur[k.Class] == "" || kekOf(b.keyring.Provider(c), k.Wrapped) != cur[k.Class] {
				todo = append(todo, item{class: k.Class, commune: k.Commune, version: k.Version, wrapped: k.Wrapped})
			}
			return true, nil
		}); err != nil {
			return err
		}
		for _, p := range []string{keyIngest, keyReceipt, keyAudit, keyRecord} {
			ks, err := tx.Keys(p)
			if err != nil {
				return err
			}
			for _, k := range ks {
				if sysCur == "" || kekOf(b.keys, k.Wrapped) != sysCur {
					todo = append(todo, item{purpose: p, version: k.Version, wrapped: k.Wrapped})
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, errorf(Unavailable, err, "failed to read keys")
	}
	if err := b.record(ctx, &audit.Event{Actor: actor, Roles: []string{}, Action: "keys.rewrap", Area: string(b.tree.Root()),
		Decision: "allow", Rule: "operator with access to the key provider", Outcome: "started",
		Reason: fmt.Sprintf("%d keys to re-wrap", len(todo))}); err != nil {
		return 0, err
	}
	// Group by (from, to) provider pair, then batch.
	type pair struct{ from, to crypto.KeyProvider }
	groups := map[pair][]item{}
	var order []pair
	for _, it := range todo {
		pr := pair{fromSystem, b.keys}
		if it.purpose == "" {
			pr = pair{fromOf(crypto.Class(it.class)), b.keyring.Provider(crypto.Class(it.class))}
		}
		if _, ok := groups[pr]; !ok {
			order = append(order, pr)
		}
		groups[pr] = append(groups[pr], it)
	}
	done := 0
	for _, pr := range order {
		items := groups[pr]
		for len(items) > 0 {
			n := min(len(items), o.Batch)
			batch := items[:n]
			items = items[n:]
			in := make([][]byte, n)
			for i, it := range batch {
				in[i] = it.wrapped
			}
			out, err := crypto.RewrapKeys(ctx, pr.from, pr.to, in)
			if err != nil {
				return done, errorf(Unavailable, err, "failed to re-wrap keys after %d of %d; run rewrap again to resume", done, len(todo))
			}
			err = b.store.Update(ctx, func(tx storage.Tx) error {
				for i, it := range batch {
					var err error
					if it.purpose == "" {
						err = tx.RewrapDataKey(it.class, it.commune, it.version, out[i])
					} else {
						err = tx.RewrapKey(it.purpose, it.version, out[i])
					}
					if err != nil && !errors.Is(err, storage.ErrNotFound) { // shredded meanwhile
						return err
					}
				}
				return nil
			})
			if err != nil {
				return done, errorf(Unavailable, err, "failed to store re-wrapped keys after %d of %d; run rewrap again to resume", done, len(todo))
			}
			done += n
			if o.Progress != nil {
				o.Progress(done, len(todo))
			}
		}
	}
	if err := b.record(ctx, &audit.Event{Actor: actor, Roles: []string{}, Action: "keys.rewrap", Area: string(b.tree.Root()),
		Decision: "allow", Rule: "operator with access to the key provider", Outcome: "ok",
		Reason: fmt.Sprintf("%d keys re-wrapped", done)}); err != nil {
		return done, err
	}
	return done, nil
}

// ShredResult says what a shredding destroyed.
type ShredResult struct {
	Communes int // communes in the area
	DataKeys int // live DEKs destroyed
	National bool
}

// Shred destroys every version of the data keys of class for the
// communes of an area (a commune or any area above it; EAs are refused,
// since data keys are per commune). The records stay: their fields of that
// class become permanently unreadable, the other class and progress keep
// working. The shredding is an audit event; cached copies are dropped on
// this instance at once and on the others by notification; the store then
// compacts so the destroyed bytes do not linger in its files.
func (b *Broker) Shred(ctx context.Context, actor string, class crypto.Class, code AreaCode) (*ShredResult, error) {
	if class != crypto.Identifying && class != crypto.Analytic {
		return nil, errorf(Invalid, nil, "class must be identifying or analytic")
	}
	a, ok := b.tree.Get(code)
	if !ok {
		return nil, errorf(Invalid, nil, "no area %s", code)
	}
	if a.Level == area.EA {
		return nil, errorf(Invalid, nil, "%s is an enumeration area; data keys are per commune: shred its commune or a higher area", code)
	}
	var communes []string
	b.tree.Walk(code, -1, func(x area.Area, _ int) bool {
		if x.Level == area.Commune {
			communes = append(communes, string(x.Code))
		}
		return true
	})
	res := &ShredResult{Communes: len(communes), National: code == b.tree.Root()}
	err := b.store.Update(ctx, func(tx storage.Tx) error {
		n, err := tx.ShredDataKeys(string(class), communes, b.now().UTC())
		if err != nil {
			return err
		}
		res.DataKeys = n
		if err := bumpShreds(tx); err != nil {
			return err
		}
		_, err = appendEvent(tx, &audit.Event{
			Time: b.now().UTC(), Actor: actor, Roles: []string{}, Action: "keys.shred", Area: string(code),
			Resources: []string{"class:" + string(class)}, Decision: "allow",
			Rule:    "operator with access to the key provider",
			Reason:  fmt.Sprintf("%d data keys of %d communes destroyed", n, len(communes)),
			Outcome: "ok",
		})
		return err
	})
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to shred; nothing was destroyed")
	}
	b.forgetCommunes(class, communes)
	if class == crypto.Analytic {
		b.resetTables() // nothing opened under the destroyed keys stays in memory
	}
	if c, ok := b.store.(storage.Compactor); ok {
		if err := c.Compact(ctx); err != nil {
			return res, errorf(Unavailable, err, "the keys are destroyed, but compacting the database failed: run the shred again to retry the compaction")
		}
	}
	return res, nil
}

func (b *Broker) forgetCommunes(class crypto.Class, communes []string) {
	maxV := b.dekVersion()
	for _, c := range communes {
		for v := 0; v <= maxV; v++ {
			b.keyring.Forget(crypto.DataKeyID{Class: class, Commune: c, Version: v})
		}
	}
}

// bumpShreds counts shreds in the store's meta table, so that instances
// and processes without change notifications (a `serve` on SQLite while
// the CLI shreds) notice one by reading a single value.
func bumpShreds(tx storage.Tx) error {
	n, err := shredCount(tx)
	if err != nil {
		return err
	}
	return tx.PutMeta(metaShreds, strconv.FormatInt(n+1, 10))
}

func shredCount(tx storage.ReadTx) (int64, error) {
	v, err := tx.Meta(metaShreds)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(v, 10, 64)
}

// noticeShreds drops shredded keys and the table cache if a shred
// happened since it last looked (polled every few seconds by Run).
func (b *Broker) noticeShreds(ctx context.Context) error {
	var n int64
	if err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		n, err = shredCount(tx)
		return err
	}); err != nil {
		return err
	}
	if b.shredsSeen.Swap(n) == n {
		return nil
	}
	return b.forgetShredded(ctx)
}

// forgetShredded drops from the cache every DEK another instance
// shredded, and the table cache if analytic keys are among them.
func (b *Broker) forgetShredded(ctx context.Context) error {
	var analytic int
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		analytic = 0
		return tx.DataKeys(func(k storage.DataKey) (bool, error) {
			if !k.ShreddedAt.IsZero() {
				b.keyring.Forget(crypto.DataKeyID{Class: crypto.Class(k.Class), Commune: k.Commune, Version: k.Version})
				if k.Class == string(crypto.Analytic) {
					analytic++
				}
			}
			return true, nil
		})
	})
	if err != nil {
		return err
	}
	if b.tables.shredSeen.Swap(int64(analytic)) != int64(analytic) {
		b.resetTables()
	}
	return nil
}

// preloadDEKs unwraps the current version's data keys in batches at
// start, so the first deposits of each commune do not each wait for the
// key provider.
func (b *Broker) preloadDEKs(ctx context.Context, max int) error {
	v := b.dekVersion()
	var ids []crypto.DataKeyID
	var wrapped [][]byte
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		return tx.DataKeys(func(k storage.DataKey) (bool, error) {
			if k.Version == v && k.ShreddedAt.IsZero() {
				ids = append(ids, crypto.DataKeyID{Class: crypto.Class(k.Class), Commune: k.Commune, Version: k.Version})
				wrapped = append(wrapped, k.Wrapped)
			}
			return len(ids) < max, nil
		})
	})
	if err != nil {
		return err
	}
	for len(ids) > 0 {
		n := min(len(ids), 250)
		if err := b.keyring.LoadDataKeys(ctx, ids[:n], wrapped[:n]); err != nil {
			return err
		}
		ids, wrapped = ids[n:], wrapped[n:]
	}
	return nil
}
