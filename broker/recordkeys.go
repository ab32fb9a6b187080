package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/storage"
)

// recordKeyActor is who creates the record-key secret of a vault made
// before record keys existed: the first broker to start on it.
const recordKeyActor = "system:broker"

// loadRecordKeys loads the secret record keys are derived under. A vault
// made before record keys existed has none: the first broker to start on
// it makes one, inside a transaction that first checks again that none
// exists, so that instances starting together agree on one secret (the
// loser loads the winner's). Records deposited before then get keys too,
// since keys are derived, not stored.
func (b *Broker) loadRecordKeys(ctx context.Context) error {
	stored, err := b.storedRecordKeys(ctx)
	if err != nil {
		return err
	}
	if stored != nil {
		return b.useRecordKeys(ctx, stored)
	}
	rk, wrapped, err := crypto.GenerateRecordKeyer(ctx, b.keys)
	if err != nil {
		return fmt.Errorf("failed to make the record-key secret: %w", err)
	}
	var theirs []byte
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		theirs = nil // fn may run more than once
		rows, err := tx.Keys(keyRecord)
		if err != nil {
			return err
		}
		if len(rows) > 0 {
			theirs = rows[0].Wrapped
			return nil
		}
		now := b.now().UTC()
		if err := tx.PutKey(&storage.Key{Purpose: keyRecord, Version: 1, Wrapped: wrapped, CreatedAt: now}); err != nil {
			return err
		}
		_, err = appendEvent(tx, &audit.Event{
			Time: now, Actor: recordKeyActor, Roles: []string{}, Action: "keys.record_key", Area: string(b.tree.Root()),
			Resources: []string{"key:" + keyRecord + "/v1"}, Decision: "allow",
			Rule:    "operator with access to the key provider",
			Reason:  "the vault had no record-key secret: made on first start",
			Outcome: "ok",
		})
		return err
	})
	if errors.Is(err, storage.ErrConflict) {
		// Another instance stored one between our check and our write
		// (a backend whose isolation let both in): use theirs.
		if theirs, err = b.storedRecordKeys(ctx); err == nil && theirs == nil {
			err = errors.New("the record-key secret is missing after a conflicting write")
		}
	}
	if err != nil {
		return fmt.Errorf("failed to store the record-key secret: %w", err)
	}
	if theirs != nil {
		return b.useRecordKeys(ctx, theirs)
	}
	b.recordKeys = rk
	return nil
}

// storedRecordKeys returns the stored wrapped secret, or nil if there is
// none.
func (b *Broker) storedRecordKeys(ctx context.Context) ([]byte, error) {
	var rows []storage.Key
	if err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		rows, err = tx.Keys(keyRecord)
		return err
	}); err != nil {
		return nil, fmt.Errorf("failed to read the record-key secret: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return rows[0].Wrapped, nil
}

func (b *Broker) useRecordKeys(ctx context.Context, wrapped []byte) error {
	rk, err := crypto.LoadRecordKeyer(ctx, b.keys, wrapped)
	if err != nil {
		return fmt.Errorf("failed to unwrap the record-key secret: %w", err)
	}
	b.recordKeys = rk
	return nil
}

// RecordKey is the record key of cell-key perturbation for one person of
// a submission (person 0: the household itself; 1, 2, …: its persons in
// form order), for the table engine, which sums the keys of a cell's
// contributors modulo its modulus to look up the cell's noise. The values
// are keys, not data: they say nothing about the record, but they must
// not be released, or a researcher could predict the noise.
func (b *Broker) RecordKey(id SubmissionID, person int) uint32 {
	return b.recordKeys.Key(string(id), person)
}
