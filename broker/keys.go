package broker

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// InitOpts describe a new vault.
type InitOpts struct {
	Store  storage.Store
	Keys   crypto.KeyProvider
	Areas  *area.Tree
	Model  string // Casbin model; empty: policy.DefaultModel()
	Policy string // Casbin policy; empty: policy.DefaultPolicy()
	Name   string // the vault's name in signed notes, e.g. "census.gso.gov.vn"; default "censusvault"
	Actor  string // who runs init, e.g. "cli:root"
	Now    func() time.Time
	// TableForm is the form the vault tabulates, with all its versions
	// (tableform.go); empty: the default form (form.Default). It must
	// be one of Forms and tabulable. Other forms are deposited, counted
	// and viewed, never tabulated. It never changes after init.
	TableForm string
	// Forms are the forms built in, as Opts.Forms; nil: form.Embedded().
	Forms []*form.Form
}

var noteNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Init writes a new vault into an empty store: areas, policy, an ingest
// identity, the receipt and audit signing keys, the record-key secret (all
// wrapped by the key provider), and the first audit event.
func Init(ctx context.Context, o InitOpts) error {
	if o.Store == nil || o.Keys == nil {
		return errors.New("init: store and key provider are required")
	}
	eng, err := o.check()
	if err != nil {
		return err
	}
	tableForm, err := tableFormOf(o.TableForm, o.Forms)
	if err != nil {
		return err
	}
	if o.Name == "" {
		o.Name = "censusvault"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Model == "" {
		o.Model = policy.DefaultModel()
	}
	if o.Policy == "" {
		o.Policy = policy.DefaultPolicy()
	}
	now := o.Now().UTC()
	_, ingestWrapped, err := crypto.GenerateIngestIdentity(ctx, o.Keys)
	if err != nil {
		return fmt.Errorf("init: failed to make the ingest identity: %w", err)
	}
	_, receiptWrapped, err := crypto.GenerateSigner(ctx, o.Keys, o.Name+"/receipt")
	if err != nil {
		return fmt.Errorf("init: failed to make the receipt key: %w", err)
	}
	_, auditWrapped, err := crypto.GenerateSigner(ctx, o.Keys, o.Name+"/audit")
	if err != nil {
		return fmt.Errorf("init: failed to make the audit key: %w", err)
	}
	_, recordWrapped, err := crypto.GenerateRecordKeyer(ctx, o.Keys)
	if err != nil {
		return fmt.Errorf("init: failed to make the record-key secret: %w", err)
	}
	rows := o.Areas.Rows()
	areas := make([]storage.Area, len(rows))
	for i, r := range rows {
		areas[i] = storage.Area{Code: string(r.Code), Parent: string(r.Parent), Level: r.Level.String(), Name: r.Name, Planned: r.Planned}
	}
	return o.Store.Update(ctx, func(tx storage.Tx) error {
		if _, err := tx.Meta(metaPolicyModel); err == nil {
			return errors.New("init: this store already holds a vault")
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if err := tx.InsertAreas(areas); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		for k, v := range map[string]string{
			metaDEKVersion: "1",
			metaVaultName:  o.Name,
			metaTableForm:  tableForm,
		} {
			if err := tx.PutMeta(k, v); err != nil {
				return err
			}
		}
		for _, k := range []storage.Key{
			{Purpose: keyIngest, Version: 1, Wrapped: ingestWrapped, CreatedAt: now},
			{Purpose: keyReceipt, Version: 1, Wrapped: receiptWrapped, CreatedAt: now},
			{Purpose: keyAudit, Version: 1, Wrapped: auditWrapped, CreatedAt: now},
			{Purpose: keyRecord, Version: 1, Wrapped: recordWrapped, CreatedAt: now},
		} {
			if err := tx.PutKey(&k); err != nil {
				return err
			}
		}
		// The role policy is stored as its text, the built-in default
		// too, and starts the grant log.
		model, pol := o.Model, o.Policy
		if model == "" {
			model = policy.DefaultModel()
		}
		if pol == "" {
			pol = policy.DefaultPolicy()
		}
		_, err := commitChange(tx, &audit.Event{
			Time: now, Actor: o.Actor, Action: "vault.init", Area: string(o.Areas.Root()),
			Decision: "allow", Rule: "operator with access to the data directory",
			Reason:  fmt.Sprintf("%d areas; policy %s; table form %s", o.Areas.Len(), eng.Hash()[:16], tableForm),
			Outcome: "ok",
		}, policyChange{op: storage.GrantOpStart, model: model, csv: pol})
		return err
	})
}

// Check validates everything Init would refuse that does not need the
// store, so a caller can check before creating anything.
func (o *InitOpts) Check() error {
	_, err := o.check()
	return err
}

func (o *InitOpts) check() (*policy.Engine, error) {
	if o.Areas == nil {
		return nil, errors.New("init: no areas")
	}
	if o.Name != "" && !noteNameRE.MatchString(o.Name) {
		return nil, fmt.Errorf("init: vault name %q: use letters, digits, '.', '_' or '-' (at most 64)", o.Name)
	}
	if _, err := tableFormOf(o.TableForm, o.Forms); err != nil {
		return nil, err
	}
	model, pol := o.Model, o.Policy
	if model == "" {
		model = policy.DefaultModel()
	}
	if pol == "" {
		pol = policy.DefaultPolicy()
	}
	eng, err := policy.New(policy.Options{Model: model, Policy: pol})
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	return eng, nil
}

// RefreshKeys reloads the ingest identities if they changed in the store
// (a rotation by another process).
func (b *Broker) RefreshKeys(ctx context.Context) error {
	var rows []storage.Key
	var dekVer string
	if err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		if dekVer, err = tx.Meta(metaDEKVersion); err != nil {
			return err
		}
		rows, err = tx.Keys(keyIngest)
		return err
	}); err != nil {
		return fmt.Errorf("failed to read ingest keys: %w", err)
	}
	if v, err := strconv.Atoi(dekVer); err == nil && v >= 1 {
		b.setDEKVersion(v)
	}
	b.mu.RLock()
	same := len(rows) == b.ingestAt && len(rows) > 0 && len(b.ingest) > 0 && rows[0].Version == b.ingest[0].version
	if same {
		for i, r := range rows {
			if i < len(b.ingest) && !r.NotAfter.Equal(b.ingest[i].notAfter) {
				same = false
			}
		}
	}
	b.mu.RUnlock()
	if same {
		return nil
	}
	keys := make([]ingestKey, 0, len(rows))
	for _, r := range rows {
		id, err := crypto.LoadIngestIdentity(ctx, b.keys, r.Wrapped)
		if err != nil {
			return fmt.Errorf("failed to unwrap ingest identity v%d: %w", r.Version, err)
		}
		keys = append(keys, ingestKey{version: r.Version, id: id, notAfter: r.NotAfter})
	}
	if len(keys) == 0 {
		return errors.New("the vault has no ingest identity")
	}
	b.mu.Lock()
	b.ingest, b.ingestAt = keys, len(rows)
	b.mu.Unlock()
	return nil
}

// activeIngest returns the identities a deposit may be encrypted to now.
func (b *Broker) activeIngest() []*crypto.IngestIdentity {
	now := b.now()
	b.mu.RLock()
	defer b.mu.RUnlock()
	var ids []*crypto.IngestIdentity
	for i, k := range b.ingest {
		if i == 0 || k.notAfter.IsZero() || now.Before(k.notAfter) {
			ids = append(ids, k.id)
		}
	}
	return ids
}

// IngestRecipient is the age recipient devices encrypt submissions to.
func (b *Broker) IngestRecipient() string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.ingest[0].id.Recipient()
}

// ReceiptVerifierKey is the note verifier key of receipts.
func (b *Broker) ReceiptVerifierKey() string { return b.receiptSigner.VerifierKey() }

// AuditVerifierKey is the note verifier key of audit checkpoints.
func (b *Broker) AuditVerifierKey() string { return b.auditSigner.VerifierKey() }

// RotateIngest makes a new ingest identity current. The previous current
// one stays accepted for grace, so devices that fetched its recipient are
// not cut off; older ones keep the end they had.
func (b *Broker) RotateIngest(ctx context.Context, actor string, grace time.Duration) (version int, recipient string, err error) {
	if grace < 0 {
		return 0, "", errorf(Invalid, nil, "grace period must not be negative")
	}
	id, wrapped, err := crypto.GenerateIngestIdentity(ctx, b.keys)
	if err != nil {
		return 0, "", errorf(Unavailable, err, "failed to make a new ingest identity")
	}
	now := b.now().UTC()
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		rows, err := tx.Keys(keyIngest)
		if err != nil {
			return err
		}
		version = 1
		if len(rows) > 0 {
			version = rows[0].Version + 1
			if err := tx.RetireKey(keyIngest, rows[0].Version, now.Add(grace)); err != nil {
				return err
			}
		}
		if err := tx.PutKey(&storage.Key{Purpose: keyIngest, Version: version, Wrapped: wrapped, CreatedAt: now}); err != nil {
			return err
		}
		_, err = appendEvent(tx, &audit.Event{
			Time: now, Actor: actor, Action: "keys.rotate_ingest", Area: string(b.tree.Root()),
			Resources: []string{fmt.Sprintf("key:ingest/v%d", version)},
			Decision:  "allow", Rule: "operator with access to the data directory",
			Reason:  fmt.Sprintf("previous ingest key accepted for %s more", grace),
			Outcome: "ok",
		})
		return err
	})
	if err != nil {
		return 0, "", errorf(Unavailable, err, "failed to store the new ingest identity")
	}
	if err := b.RefreshKeys(ctx); err != nil {
		return 0, "", errorf(Unavailable, err, "failed to reload ingest keys")
	}
	return version, id.Recipient(), nil
}
