// Package broker holds the vault's use cases: deposit, progress, audit
// reads, users and keys. It is the one place that composes policy,
// crypto, storage and audit, and the one place that asks policy before it
// touches storage or crypto.
//
// Invariants:
//   - Every request — allowed, denied or invalid — appends one audit event
//     before anything is released. If the event cannot be written the
//     request fails with Unavailable and nothing is stored or released.
//   - A change and the audit event that records it commit in one storage
//     transaction.
//   - Plaintext field values exist only in memory: they are sealed by
//     crypto before they reach storage, and never reach logs, errors or
//     audit events (which carry ids, codes and field paths only).
//   - Bearer tokens are stored as SHA-256 digests and compared in constant
//     time.
//
// Threat model: the broker trusts its own process memory and the key
// provider. It does not trust clients (every input is bounded and
// validated), nor the database to keep secrets (it only ever sees sealed
// values and wrapped keys), nor the operators to keep the log honest (the
// hash chain, and later signed checkpoints, make rewriting detectable).
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/sdc"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// Named ids, so the API says what each string is.
type (
	SubmissionID = wire.SubmissionID
	UserID       string
	AreaCode     = area.Code
)

// Meta keys the broker keeps in the store.
const (
	metaPolicyModel  = "policy_model"
	metaPolicyCSV    = "policy_csv"
	metaPolicyHash   = "policy_hash"
	metaGrantsDigest = "grants_digest"
	// metaPolicyEngine is the hash of the role policy in force
	// (policy.Engine.Hash): every request compares it with the engine it
	// holds, so a policy confirmed on one instance holds at once on all.
	metaPolicyEngine = "policy_engine"
	metaDEKVersion   = "dek_version"
	metaVaultName    = "vault_name"
	metaShreds       = "shreds" // number of shreds so far (noticeShreds)
)

// Key purposes in the store.
const (
	keyIngest  = "ingest"
	keyReceipt = "receipt-signer"
	keyAudit   = "audit-signer"
	keyRecord  = "record-key" // the secret record keys are derived under
)

// Opts are what New needs.
type Opts struct {
	Store     storage.Store
	Keys      crypto.KeyProvider                  // wraps system keys, and DEKs of classes without their own
	ClassKeys map[crypto.Class]crypto.KeyProvider // optional: one key-encryption key per class
	// MigrateFrom (and MigrateFromClass) are the providers stored keys are
	// wrapped by while a rewrap moves them to Keys/ClassKeys (age →
	// Vault, or a new age identity): keys not moved yet are unwrapped with
	// them, and Rewrap moves from them.
	MigrateFrom      crypto.KeyProvider
	MigrateFromClass map[crypto.Class]crypto.KeyProvider
	Forms            []*form.Form // the forms built in; nil: form.Embedded()
	Log              *slog.Logger // nil: discard
	Now              func() time.Time
	MaxBody          int64         // deposit body limit; default form.MaxBody
	AuthWin          time.Duration // window of the rate limits' summary events; default 1 minute
	Limits           Limits        // rate limits; zero fields: DefaultLimits
	MaxCache         int           // unwrapped DEKs kept in memory; default 32768 (two classes × a national set of communes)
	SDC              *sdc.Params   // disclosure control of research tables; nil: sdc.DefaultParams()
	// PointK and PointInterval are the publication points' rules: an
	// area is seen anew at a point only if PointK of its households
	// changed (0: DefaultPointK), and points are PointInterval apart
	// (0: DefaultPointInterval; negative: no minimum).
	PointK        int64
	PointInterval time.Duration
	// A signed checkpoint of the audit log is made by Run at least every
	// CheckpointEvery while events arrive (default 5 s) and whenever
	// CheckpointEvents events were appended since the last (default
	// 10,000).
	CheckpointEvery  time.Duration
	CheckpointEvents int64
	// Preload unwraps the current data keys at start (a server's first
	// deposits then do not wait for the key provider); CLI commands,
	// which touch few keys, leave it off.
	Preload bool
	// TreeProgress hears how far New got rebuilding the Merkle tree of a
	// log written before the store kept it (a one-time upgrade).
	TreeProgress func(done, total int64)
	// OpenCaps are how many submissions one user may open for review in
	// any hour, per role. An entry replaces that role's default
	// (DefaultOpenCaps: team_leader 60, supervisor 200); a role with no
	// cap opens none. A user holding several roles gets the largest cap
	// among the roles that allow the open. Every instance counts the
	// same opens: they are stored.
	OpenCaps map[policy.Role]int
	// MaxExtractPreparing is how many extract downloads may be in their
	// first pass at once on this broker (0: DefaultMaxExtractPreparing);
	// each user may have one. Past either a download is refused 429
	// before any work (extracts.go).
	MaxExtractPreparing int
}

// Broker runs the use cases. Safe for concurrent use.
type Broker struct {
	store   storage.Store
	keys    crypto.KeyProvider
	forms   *formSet // the form registry: built in and added (forms.go)
	log     *slog.Logger
	now     func() time.Time
	maxBody int64

	tree    *liveTree                     // the area tree in force (areas.go)
	engine  atomic.Pointer[policy.Engine] // the role policy in force; see engineFor
	keyring *crypto.Keyring
	dekVer  int
	name    string

	receiptSigner *crypto.Signer
	auditSigner   *crypto.Signer
	recordKeys    *crypto.RecordKeyer

	mu       sync.RWMutex // guards ingest
	ingest   []ingestKey  // newest first
	ingestAt int          // number of ingest key rows loaded (to notice rotations)

	dekMu    sync.Mutex                       // guards dekLocks
	dekLocks map[crypto.DataKeyID]*sync.Mutex // one per DEK: loading or creating it happens once at a time

	limits        *limiter
	auditFailures atomic.Uint64 // appends that failed (AuditFailures)

	tables        *tableState
	ledger        *ledgerState // the privacy ledger of dp tables, folded from the store
	pointK        int64
	pointInterval time.Duration
	cpEvery       time.Duration
	cpEvents      int64
	shredsSeen    atomic.Int64 // metaShreds when last looked at

	from      crypto.KeyProvider // MigrateFrom, while switching providers
	fromClass map[crypto.Class]crypto.KeyProvider

	openCaps   map[policy.Role]int // Opts.OpenCaps over DefaultOpenCaps
	openPruned atomic.Int64        // unix nanoseconds of the last prune of stored opens

	extractSlots *extractSlots // extract downloads in their first pass

	atMu  sync.Mutex      // guards atGeo
	atGeo *area.Geography // the last geography of an earlier revision rebuilt (geoAt)
}

type ingestKey struct {
	version  int
	id       *crypto.IngestIdentity
	notAfter time.Time
}

// New loads the vault from the store: areas, policy, keys.
func New(ctx context.Context, o Opts) (*Broker, error) {
	if o.Store == nil {
		return nil, errors.New("broker: no store")
	}
	if o.Keys == nil {
		return nil, errors.New("broker: no key provider")
	}
	b := &Broker{store: o.Store, keys: o.Keys, log: o.Log, now: o.Now, maxBody: o.MaxBody}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.maxBody <= 0 {
		b.maxBody = form.MaxBody
	}
	win := o.AuthWin
	if win <= 0 {
		win = time.Minute
	}
	lim, err := newLimiter(o.Limits, win)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	b.limits = lim
	builtin := o.Forms
	if builtin == nil {
		builtin = form.Embedded()
	}
	if b.forms, err = newFormSet(ctx, o.Store, b.log, builtin); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	ts, err := newTableState(o.SDC)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	b.tables = ts
	b.ledger = newLedgerState()
	if b.openCaps, err = openCaps(o.OpenCaps); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	if b.extractSlots, err = newExtractSlots(o.MaxExtractPreparing); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	b.pointK, b.pointInterval = o.PointK, o.PointInterval
	switch {
	case b.pointK < 0:
		return nil, fmt.Errorf("broker: publication point k %d is negative", b.pointK)
	case b.pointK == 0:
		b.pointK = DefaultPointK
	}
	switch {
	case b.pointInterval == 0:
		b.pointInterval = DefaultPointInterval
	case b.pointInterval < 0:
		b.pointInterval = 0
	}
	if o.MaxCache <= 0 {
		o.MaxCache = 32768
	}
	if o.MigrateFrom != nil {
		b.from, b.fromClass = o.MigrateFrom, o.MigrateFromClass
		classKeys := map[crypto.Class]crypto.KeyProvider{}
		for _, c := range []crypto.Class{crypto.Identifying, crypto.Analytic} {
			to, from := o.Keys, o.MigrateFrom
			if p, ok := o.ClassKeys[c]; ok {
				to = p
			}
			if p, ok := o.MigrateFromClass[c]; ok {
				from = p
			}
			classKeys[c] = crypto.Migrating(to, from)
		}
		o.Keys, o.ClassKeys = crypto.Migrating(o.Keys, o.MigrateFrom), classKeys
		b.keys = o.Keys
	}
	kr, err := crypto.NewKeyring(crypto.KeyringOptions{Provider: o.Keys, ClassProviders: o.ClassKeys, MaxCached: o.MaxCache})
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	b.keyring = kr

	var geo *area.Geography
	var model, csv, dekVer, name, tableName string
	var receiptKeys, auditKeys []storage.Key
	err = o.Store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		if model, err = tx.Meta(metaPolicyModel); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return errors.New("the vault is not initialized (run `censusvault init`)")
			}
			return err
		}
		if csv, err = tx.Meta(metaPolicyCSV); err != nil {
			return err
		}
		if dekVer, err = tx.Meta(metaDEKVersion); err != nil {
			return err
		}
		if name, err = tx.Meta(metaVaultName); err != nil {
			return err
		}
		if tableName, err = tableFormName(tx); err != nil {
			return err
		}
		if geo, err = loadGeography(tx, -1); err != nil {
			return err
		}
		if receiptKeys, err = tx.Keys(keyReceipt); err != nil {
			return err
		}
		auditKeys, err = tx.Keys(keyAudit)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("broker: failed to load the vault: %w", err)
	}
	b.name = name
	b.tables.name = tableName
	if _, err := b.tableForm(ctx); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	if _, err := fmt.Sscan(dekVer, &b.dekVer); err != nil || b.dekVer < 1 {
		return nil, fmt.Errorf("broker: bad stored data key version %q", dekVer)
	}
	b.tree = &liveTree{}
	b.install(geo)
	eng, err := policy.New(policy.Options{Model: model, Policy: csv})
	if err != nil {
		return nil, fmt.Errorf("broker: stored policy: %w", err)
	}
	b.engine.Store(eng)
	if len(receiptKeys) == 0 || len(auditKeys) == 0 {
		return nil, errors.New("broker: the vault has no signing keys (was `censusvault init` interrupted?)")
	}
	if b.receiptSigner, err = crypto.LoadSigner(ctx, o.Keys, receiptKeys[0].Wrapped); err != nil {
		return nil, fmt.Errorf("broker: failed to unwrap the receipt key (is this the right key provider?): %w", err)
	}
	if b.auditSigner, err = crypto.LoadSigner(ctx, o.Keys, auditKeys[0].Wrapped); err != nil {
		return nil, fmt.Errorf("broker: failed to unwrap the audit key: %w", err)
	}
	// Events written before the store kept the log's Merkle tree get
	// their tree hashes now: every append below needs them.
	if err := backfillTree(ctx, o.Store, o.TreeProgress); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	if err := ensureGrantLog(ctx, o.Store, b.now()); err != nil {
		return nil, fmt.Errorf("broker: failed to start the grant log: %w", err)
	}
	if err := b.syncEngine(ctx, storedEngineHash(ctx, o.Store)); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	b.cpEvery, b.cpEvents = o.CheckpointEvery, o.CheckpointEvents
	if b.cpEvery <= 0 {
		b.cpEvery = 5 * time.Second
	}
	if b.cpEvents <= 0 {
		b.cpEvents = 10000
	}
	if err := b.loadRecordKeys(ctx); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	if err := b.RefreshKeys(ctx); err != nil {
		return nil, err
	}
	if err := o.Store.View(ctx, func(tx storage.ReadTx) error {
		n, err := shredCount(tx)
		b.shredsSeen.Store(n)
		return err
	}); err != nil {
		return nil, fmt.Errorf("broker: failed to read the vault's shred count: %w", err)
	}
	if !o.Preload {
		return b, nil
	}
	if err := b.preloadDEKs(ctx, o.MaxCache/2); err != nil {
		return nil, fmt.Errorf("broker: failed to load data keys (is the key provider reachable?): %w", err)
	}
	return b, nil
}

// Close writes the pending summaries of the rate limits. It does not
// close the store.
func (b *Broker) Close(ctx context.Context) error {
	return b.flushLimits(ctx, true)
}

// Run does the broker's periodic work until ctx ends: it picks up ingest
// keys rotated by another process (at once when the store notifies, else
// within two seconds) and writes the summaries of the rate limits'
// windows as they close.
func (b *Broker) Run(ctx context.Context) {
	if w, ok := b.store.(storage.Watcher); ok {
		go b.watch(ctx, w)
	}
	go b.checkpointLoop(ctx, b.cpEvery, b.cpEvents)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := b.RefreshKeys(ctx); err != nil {
				b.log.Warn("failed to refresh ingest keys", "err", err)
			}
			if err := b.noticeShreds(ctx); err != nil {
				b.log.Warn("failed to check for shredded data keys", "err", err)
			}
			// Forms another instance added or replaced (a store without
			// notifications; with them, at once below).
			if err := b.forms.refresh(ctx); err != nil {
				b.log.Warn("failed to read the forms", "err", err)
			}
			if err := b.flushLimits(ctx, false); err != nil {
				b.log.Warn("failed to write a rate-limit summary", "err", err)
			}
		}
	}
}

// watch reacts to other instances' changes as they commit. Users and
// grants need nothing here: every request reads them from the store, so
// a revocation anywhere holds at once everywhere.
func (b *Broker) watch(ctx context.Context, w storage.Watcher) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		// Changes made while nobody listened are not replayed: reload
		// before each (re)connection.
		if err := b.RefreshKeys(ctx); err != nil {
			b.log.Warn("failed to refresh ingest keys", "err", err)
		}
		err := w.Watch(ctx, func(topic string) {
			backoff = 100 * time.Millisecond
			if topic == storage.TopicKeys || topic == storage.TopicMeta {
				if err := b.RefreshKeys(ctx); err != nil {
					b.log.Warn("failed to refresh ingest keys", "err", err)
				}
			}
			if topic == storage.TopicKeys {
				if err := b.forgetShredded(ctx); err != nil {
					b.log.Warn("failed to drop shredded data keys", "err", err)
				}
			}
			if topic == storage.TopicForms {
				if err := b.forms.refresh(ctx); err != nil {
					b.log.Warn("failed to read the forms", "err", err)
				}
			}
		})
		if ctx.Err() != nil {
			return
		}
		b.log.Warn("lost the store's change notifications; watching again", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Tree is the area tree the broker serves: the one in force.
func (b *Broker) Tree() *area.Tree { return b.tree.geo().Tree() }

// PolicyHash is the hash of the policy and grants now in force.
func (b *Broker) PolicyHash(ctx context.Context) (string, error) {
	var h string
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		h, err = tx.Meta(metaPolicyHash)
		return err
	})
	return h, err
}

func treeFromRows(rows []storage.Area) (*area.Tree, error) {
	ar := make([]area.Row, len(rows))
	for i, r := range rows {
		lvl, err := area.ParseLevel(r.Level)
		if err != nil {
			return nil, err
		}
		ar[i] = area.Row{Line: i + 2, Code: area.Code(r.Code), Parent: area.Code(r.Parent), Level: lvl, Name: r.Name, Planned: r.Planned}
	}
	return area.NewTree(ar)
}

// MaxBody is the largest deposit body accepted.
func (b *Broker) MaxBody() int64 { return b.maxBody }

// Name is the vault's name in signed notes.
func (b *Broker) Name() string { return b.name }
