package broker

import (
	"context"
	"fmt"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/storage"
)

// verifyGrantLog checks the grant log against the audit log it explains
// (VerifyAudit, on the vault host): every entry's policy hash is the one
// the event that made the change carries, and replaying the whole log
// gives the policy hash of its last entry. Only entries of events before
// end count (the log is verified as it stood at the start). A grant
// entry rewritten, removed or added by someone who got past the
// database's triggers breaks one or the other, so Explain cannot be fed
// a made-up past. It returns how many entries it checked.
func verifyGrantLog(ctx context.Context, s storage.Store, end int64) (int64, error) {
	bad := func(index int64, format string, args ...any) error {
		return &audit.VerifyError{Index: index, Problem: fmt.Sprintf(format, args...)}
	}
	var n, last int64 = 0, -1
	var lastHash string
	err := s.View(ctx, func(tx storage.ReadTx) error {
		hashes := map[int64]string{} // event index -> the hash its entries recorded
		if err := tx.GrantLog(0, func(e storage.GrantLogEntry) (bool, error) {
			if e.AuditIndex >= end {
				return false, nil
			}
			if h, ok := hashes[e.AuditIndex]; ok && h != e.PolicyHash {
				return false, bad(e.AuditIndex, "grant log entries of event %d record different policy hashes (grant log altered)", e.AuditIndex)
			}
			if e.AuditIndex < last {
				return false, bad(e.AuditIndex, "grant log entry %d names event %d, before the entry ahead of it (grant log altered)", e.Seq, e.AuditIndex)
			}
			hashes[e.AuditIndex], last, lastHash = e.PolicyHash, e.AuditIndex, e.PolicyHash
			n++
			return true, nil
		}); err != nil {
			return err
		}
		for index, h := range hashes {
			var ev *audit.Event
			if err := tx.AuditRecords(index, 1, func(r storage.AuditRecord) (bool, error) {
				if r.Index == index && !r.Pruned {
					var err error
					ev, err = audit.Decode(r.Event)
					return false, err
				}
				return false, nil
			}); err != nil {
				return err
			}
			if ev != nil && ev.PolicyHash != h {
				return bad(index, "the grant log says event %d left policy %.16s, the event carries %.16s (grant log altered)", index, h, ev.PolicyHash)
			}
		}
		if last < 0 {
			return nil
		}
		p, err := rebuildPolicy(tx, end-1)
		if err != nil {
			return err
		}
		if p.Hash != lastHash {
			return bad(last, "replaying the grant log gives policy %.16s, its last entry (event %d) recorded %.16s (grant log altered)", p.Hash, last, lastHash)
		}
		return nil
	})
	return n, err
}
