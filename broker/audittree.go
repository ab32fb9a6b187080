package broker

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/storage"
)

// backfillPage is how many leaves one backfill transaction covers.
const backfillPage = 8192

// BackfillTree builds the Merkle tree of a log written before the store
// kept one (`censusvault migrate` runs it; so does New). It is a no-op
// on a log whose tree is complete.
func BackfillTree(ctx context.Context, s storage.Store, progress func(done, total int64)) error {
	return backfillTree(ctx, s, progress)
}

// backfillTree stores the Merkle tree hashes of events written before the
// store kept them (schema 5), in transactions of backfillPage leaves, so
// that every event is a leaf with proofs. New appends need them, so New
// runs it before anything else is written; instances starting together
// each take the next page (a page another stored first is a conflict and
// is simply read again). progress, if not nil, hears the leaves done.
func backfillTree(ctx context.Context, s storage.Store, progress func(done, total int64)) error {
	// Usually the tree is complete: find that out without taking the
	// write lock every instance and CLI command would otherwise queue on.
	complete := false
	if err := s.View(ctx, func(tx storage.ReadTx) error {
		head, err := tx.AuditHead()
		if err != nil {
			return err
		}
		count, err := tx.AuditHashCount()
		complete = err == nil && count == audit.StoredHashCount(head.Next)
		return err
	}); err != nil {
		return fmt.Errorf("failed to read the audit log's Merkle tree: %w", err)
	}
	if complete {
		return nil
	}
	for {
		var done, total int64
		wrote := false
		err := s.Update(ctx, func(tx storage.Tx) error {
			wrote = false
			head, err := tx.AuditHead()
			if err != nil {
				return err
			}
			count, err := tx.AuditHashCount()
			if err != nil {
				return err
			}
			total = head.Next
			// The first leaf without hashes: StoredHashCount is increasing.
			lo, hi := int64(0), head.Next
			for lo < hi {
				mid := lo + (hi-lo)/2
				if audit.StoredHashCount(mid+1) <= count {
					lo = mid + 1
				} else {
					hi = mid
				}
			}
			done = lo
			if lo == head.Next || audit.StoredHashCount(lo) != count {
				if audit.StoredHashCount(lo) != count {
					return fmt.Errorf("the store holds %d tree hashes, which is not the count of any tree size", count)
				}
				return nil
			}
			// Hashes of this page are read from what it computes first,
			// then from the store.
			pending := map[int64][32]byte{}
			reader := audit.HashReaderFunc(func(indexes []int64) ([][32]byte, error) {
				out := make([][32]byte, len(indexes))
				var missing []int64
				for i, x := range indexes {
					if h, ok := pending[x]; ok {
						out[i] = h
					} else {
						missing = append(missing, x)
					}
				}
				if len(missing) > 0 {
					got, err := tx.AuditHashes(missing)
					if err != nil {
						return nil, err
					}
					j := 0
					for i, x := range indexes {
						if _, ok := pending[x]; !ok {
							out[i] = got[j]
							j++
						}
					}
				}
				return out, nil
			})
			var all [][32]byte
			next := count
			err = tx.AuditRecords(lo, backfillPage, func(r storage.AuditRecord) (bool, error) {
				hs, err := audit.StoredHashes(r.Index, r.LeafHash, reader)
				if err != nil {
					return false, err
				}
				for _, h := range hs {
					pending[next] = h
					next++
				}
				all = append(all, hs...)
				done = r.Index + 1
				return true, nil
			})
			if err != nil {
				return err
			}
			wrote = len(all) > 0
			return tx.PutAuditHashes(count, all)
		})
		if errors.Is(err, storage.ErrConflict) {
			continue // another instance stored this page
		}
		if err != nil {
			return fmt.Errorf("failed to build the audit log's Merkle tree: %w", err)
		}
		if progress != nil && wrote {
			progress(done, total)
		}
		if done >= total {
			return nil
		}
	}
}

// Checkpoint is a signed checkpoint of the audit log: the C2SP signed
// note, and what it says.
type Checkpoint struct {
	Note []byte // C2SP tlog-checkpoint, signed with the audit key
	Size int64
	Root [32]byte
}

// MakeCheckpoint signs a checkpoint of the log as it is now, unless the
// latest checkpoint already covers every event; it returns the latest
// checkpoint either way. Checkpoints are not audit events (they would
// never catch up with themselves); they are kept in the store, and two
// instances making one at once store one (the other gets it back).
func (b *Broker) MakeCheckpoint(ctx context.Context) (*Checkpoint, error) {
	var out *Checkpoint
	err := b.store.Update(ctx, func(tx storage.Tx) error {
		out = nil
		head, err := tx.AuditHead()
		if err != nil {
			return err
		}
		latest, err := tx.LatestCheckpoint()
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if latest != nil && latest.Size == head.Next {
			out, err = b.checkpointOf(latest.Note)
			return err
		}
		if head.Next == 0 {
			return errors.New("the audit log is empty")
		}
		root, err := audit.TreeRoot(head.Next, treeReader(tx))
		if err != nil {
			return err
		}
		body := audit.Checkpoint{Origin: b.auditSigner.Name(), Size: head.Next, Root: root}.Body()
		note, err := b.auditSigner.Sign(body)
		if err != nil {
			return err
		}
		if err := tx.PutCheckpoint(head.Next, note, b.now().UTC()); err != nil {
			return err
		}
		out = &Checkpoint{Note: note, Size: head.Next, Root: root}
		return nil
	})
	if errors.Is(err, storage.ErrConflict) {
		return b.LatestCheckpoint(ctx) // another instance signed this size
	}
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to make an audit checkpoint")
	}
	return out, nil
}

// checkpointOf parses a stored checkpoint, checking our own signature: a
// note in the store that our key did not sign is tampering.
func (b *Broker) checkpointOf(note []byte) (*Checkpoint, error) {
	c, err := audit.OpenCheckpoint(note, b.auditSigner.VerifierKey())
	if err != nil {
		return nil, fmt.Errorf("stored checkpoint: %w", err)
	}
	return &Checkpoint{Note: note, Size: c.Size, Root: c.Root}, nil
}

// LatestCheckpoint returns the newest checkpoint, making the first one if
// there is none yet.
func (b *Broker) LatestCheckpoint(ctx context.Context) (*Checkpoint, error) {
	var note []byte
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		c, err := tx.LatestCheckpoint()
		if err == nil {
			note = c.Note
		}
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return b.MakeCheckpoint(ctx)
	}
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read the audit checkpoint")
	}
	c, err := b.checkpointOf(note)
	if err != nil {
		return nil, errorf(Internal, err, "the stored audit checkpoint does not verify")
	}
	return c, nil
}

// checkpointLoop signs a checkpoint when every (events) events have been
// appended since the last one, or every (every) while events arrive.
func (b *Broker) checkpointLoop(ctx context.Context, every time.Duration, events int64) {
	t := time.NewTicker(min(time.Second, every))
	defer t.Stop()
	last := b.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var head, size int64
		err := b.store.View(ctx, func(tx storage.ReadTx) error {
			h, err := tx.AuditHead()
			if err != nil {
				return err
			}
			head = h.Next
			c, err := tx.LatestCheckpoint()
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			if err == nil {
				size = c.Size
			}
			return err
		})
		if err != nil {
			b.log.Warn("failed to read the audit head", "err", err)
			continue
		}
		if head == size || head == 0 || (head-size < events && b.now().Sub(last) < every) {
			continue
		}
		if _, err := b.MakeCheckpoint(ctx); err != nil {
			b.log.Warn("failed to make an audit checkpoint", "err", err)
			continue
		}
		last = b.now()
	}
}

// CodeBeyondCheckpoint is the error code of a proof asked for a tree
// larger than the latest signed checkpoint.
const CodeBeyondCheckpoint = "beyond_checkpoint"

// InclusionProof proves that event index is in the tree of size events.
// size must be at most the latest signed checkpoint's: proofs are served
// for signed trees only (a proof is useless without a signed root to
// check it against), and so the answer, refusal included, never tells a
// caller more about the log's live size than the public checkpoint does.
// Proofs hold hashes only.
func (b *Broker) InclusionProof(ctx context.Context, index, size int64) ([][32]byte, error) {
	if index < 0 || size <= index {
		return nil, errorf(Invalid, nil, "need 0 ≤ index < size")
	}
	var proof [][32]byte
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		if err := withinCheckpoint(tx, size); err != nil {
			return err
		}
		var err error
		proof, err = audit.InclusionProof(size, index, treeReader(tx))
		return err
	})
	return proof, proofErr(err)
}

// ConsistencyProof proves that the tree of newSize events extends the
// tree of its first oldSize events. newSize must be at most the latest
// signed checkpoint's, as for InclusionProof.
func (b *Broker) ConsistencyProof(ctx context.Context, oldSize, newSize int64) ([][32]byte, error) {
	if oldSize < 1 || newSize < oldSize {
		return nil, errorf(Invalid, nil, "need 1 ≤ old ≤ new")
	}
	var proof [][32]byte
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		if err := withinCheckpoint(tx, newSize); err != nil {
			return err
		}
		var err error
		proof, err = audit.ConsistencyProof(newSize, oldSize, treeReader(tx))
		return err
	})
	return proof, proofErr(err)
}

// withinCheckpoint refuses a tree size beyond the latest signed
// checkpoint, naming that checkpoint's size (public) and never the log's.
// Checkpoints only grow and every one covers a prefix of the log, so a
// size it allows is one the store holds.
func withinCheckpoint(tx storage.ReadTx, size int64) error {
	var signed int64
	c, err := tx.LatestCheckpoint()
	switch {
	case err == nil:
		signed = c.Size
	case !errors.Is(err, storage.ErrNotFound):
		return err
	}
	if size > signed {
		return &Error{Kind: NotFound, Code: CodeBeyondCheckpoint,
			Msg: fmt.Sprintf("no proof for a tree of %d events: proofs are served up to the latest signed checkpoint, of %d events (GET /v1/audit/checkpoint)", size, signed)}
	}
	return nil
}

func proofErr(err error) error {
	var be *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &be):
		return be
	case errors.Is(err, storage.ErrNotFound):
		return errorf(Unavailable, err, "the audit log's tree is incomplete (run `censusvault migrate` or restart the broker to rebuild it)")
	}
	return errorf(Unavailable, err, "failed to read the audit log's tree")
}

// ReceiptProof is a deposit's proof of inclusion: the checkpoint it is
// proved against, the receipt's audit index and leaf hash, and the path.
type ReceiptProof struct {
	Checkpoint []byte
	Index      int64
	LeafHash   [32]byte
	Hashes     [][32]byte
}

// ProveReceipt proves the caller's own deposit is in the log, against the
// latest checkpoint (signing a new one if none covers it yet). Like the
// receipt itself it is for the depositor only, and the request is
// audited.
func (b *Broker) ProveReceipt(ctx context.Context, c *Caller, id SubmissionID) (*ReceiptProof, error) {
	r, err := b.ReceiptOf(ctx, c, id)
	if err != nil {
		return nil, err
	}
	cp, err := b.LatestCheckpoint(ctx)
	if err != nil {
		return nil, err
	}
	if cp.Size <= r.AuditIndex {
		if cp, err = b.MakeCheckpoint(ctx); err != nil {
			return nil, err
		}
	}
	hashes, err := b.InclusionProof(ctx, r.AuditIndex, cp.Size)
	if err != nil {
		return nil, err
	}
	leaf, err := decodeLeaf(r.LeafHash)
	if err != nil {
		return nil, errorf(Internal, err, "receipt leaf hash")
	}
	return &ReceiptProof{Checkpoint: cp.Note, Index: r.AuditIndex, LeafHash: leaf, Hashes: hashes}, nil
}

// ExportAudit writes the log as of a checkpoint (size 0: the latest
// stored one — up to CheckpointEvery behind the log — or, if there is
// none yet, one signed now) as JSON Lines (audit.ExportWriter): the signed
// checkpoint, then every leaf [0, size). Events a subtree-scoped auditor
// may not see, and pruned ones, appear as their leaf and chain hashes, so
// the export verifies against the root whoever reads it. The export is
// audited before anything is written.
func (b *Broker) ExportAudit(ctx context.Context, c *Caller, size int64, w io.Writer) (*Checkpoint, error) {
	d, vis, err := b.auditScope(ctx, c)
	if err != nil {
		return nil, err
	}
	ev := b.event(c, "audit.export", d)
	ev.Area = string(b.tree.Root())
	if !d.Allow {
		ev.Outcome = "denied"
		return nil, b.refuse(ctx, ev, errorf(Permission, nil, "not permitted to read the audit log"))
	}
	var cp *Checkpoint
	if size == 0 {
		cp, err = b.LatestCheckpoint(ctx)
	} else {
		cp, err = b.storedCheckpoint(ctx, size)
	}
	if err != nil {
		ev.Outcome, ev.Reason = "invalid", "no such checkpoint"
		if rerr := b.record(ctx, ev); rerr != nil {
			return nil, rerr
		}
		return nil, err
	}
	ev.Resources = []string{fmt.Sprintf("checkpoint:%d", cp.Size)}
	ev.Outcome = "ok"
	if err := b.record(ctx, ev); err != nil {
		return nil, err
	}
	xw, err := audit.NewExportWriter(w, cp.Note)
	if err != nil {
		return nil, errorf(Internal, err, "export")
	}
	err = b.store.View(ctx, func(tx storage.ReadTx) error {
		return tx.AuditRecords(0, int(cp.Size), func(r storage.AuditRecord) (bool, error) {
			if r.Index >= cp.Size {
				return false, nil
			}
			if r.Pruned || len(r.Event) == 0 {
				return true, xw.Withheld(r.Index, r.LeafHash, r.ChainHash, audit.WithheldPruned)
			}
			if vis != nil {
				e, err := audit.Decode(r.Event)
				if err != nil || !vis.sees(e) {
					return true, xw.Withheld(r.Index, r.LeafHash, r.ChainHash, audit.WithheldOutOfScope)
				}
			}
			return true, xw.Event(audit.Record{Index: r.Index, Event: r.Event, LeafHash: r.LeafHash, ChainHash: r.ChainHash})
		})
	})
	if err == nil {
		err = xw.Close()
	}
	if err != nil {
		return cp, errorf(Unavailable, err, "the export was cut short")
	}
	return cp, nil
}

func (b *Broker) storedCheckpoint(ctx context.Context, size int64) (*Checkpoint, error) {
	var note []byte
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		c, err := tx.Checkpoint(size)
		if err == nil {
			note = c.Note
		}
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errorf(NotFound, err, "no checkpoint of size %d", size)
	}
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read the checkpoint")
	}
	c, err := b.checkpointOf(note)
	if err != nil {
		return nil, errorf(Internal, err, "the stored checkpoint does not verify")
	}
	return c, nil
}

// PruneAudit removes the bodies of events before index before, keeping
// their leaf and chain hashes, so the tree, the chain, old checkpoints and
// proofs all still verify; exports show them as withheld. Only events a
// signed checkpoint covers can be pruned (a checkpoint is signed first if
// needed). The pruning is itself an event.
func (b *Broker) PruneAudit(ctx context.Context, actor string, before int64) (int64, error) {
	cp, err := b.MakeCheckpoint(ctx)
	if err != nil {
		return 0, err
	}
	if before < 0 || before > cp.Size {
		return 0, errorf(Invalid, nil, "before must be 0…%d (the latest checkpoint's size)", cp.Size)
	}
	var n int64
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		var err error
		if n, err = tx.PruneAuditEvents(before); err != nil {
			return err
		}
		_, err = appendEvent(tx, &audit.Event{
			Time: b.now().UTC(), Actor: actor, Roles: []string{}, Action: "audit.prune", Area: string(b.tree.Root()),
			Resources: []string{fmt.Sprintf("audit:0+%d", before), fmt.Sprintf("checkpoint:%d", cp.Size)},
			Decision:  "allow", Rule: "operator with access to the data directory",
			Reason: fmt.Sprintf("%d event bodies removed; leaf and chain hashes kept", n), Outcome: "ok",
		})
		return err
	})
	if err != nil {
		return 0, errorf(Unavailable, err, "failed to prune; nothing was removed")
	}
	return n, nil
}

// PruneIndex returns the index of the first event at or after t (the
// log's size if none is), for `audit prune --before DATE`. Event times
// follow the index order within the clock skew of the instances.
func PruneIndex(ctx context.Context, s storage.Store, t time.Time) (int64, error) {
	idx := int64(-1)
	var size int64
	err := s.View(ctx, func(tx storage.ReadTx) error {
		h, err := tx.AuditHead()
		if err != nil {
			return err
		}
		size = h.Next
		return tx.AuditRecords(0, 0, func(r storage.AuditRecord) (bool, error) {
			if r.Pruned || len(r.Event) == 0 {
				return true, nil
			}
			e, err := audit.Decode(r.Event)
			if err != nil {
				return false, fmt.Errorf("audit event %d: %w", r.Index, err)
			}
			if !e.Time.Before(t) {
				idx = r.Index
				return false, nil
			}
			return true, nil
		})
	})
	if idx < 0 {
		idx = size
	}
	return idx, err
}

func decodeLeaf(s string) ([32]byte, error) {
	var h [32]byte
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("not a base64 SHA-256 hash")
	}
	copy(h[:], b)
	return h, nil
}
