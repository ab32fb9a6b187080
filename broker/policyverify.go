package broker

import (
	"context"
	"fmt"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/storage"
)

// verifyGrantLog checks the grant log against the audit log it explains
// (VerifyAudit, on the vault host), so that Explain cannot be fed a
// made-up past by someone who got past the database's triggers:
//   - replaying the log, the policy after each event that has entries
//     has the hash its entries recorded, and that event carries it;
//   - from the log's start on, an event's policy hash differs from the
//     one before it only at an event with entries (a change whose
//     entries were erased, with the entries that undid it, shows here).
//
// Only events before end count (the log is verified as it stood at the
// start). The replay keeps the grant lines sorted and hashes them once
// per event with entries: its cost is that count times the grants held.
// It returns how many entries it checked.
func verifyGrantLog(ctx context.Context, s storage.Store, end int64) (int64, error) {
	bad := func(index int64, format string, args ...any) error {
		return &audit.VerifyError{Index: index, Problem: fmt.Sprintf(format, args...)}
	}
	var n int64
	err := s.View(ctx, func(tx storage.ReadTx) error {
		var (
			r        = newGrantReplay()
			curIndex = int64(-1)
			curHash  string
			recorded = map[int64]string{} // event index -> the policy hash after it
			start    = int64(-1)
		)
		// settle checks the policy after the event curIndex.
		settle := func() error {
			if curIndex < 0 {
				return nil
			}
			if got := r.hash(); got != curHash {
				return bad(curIndex, "replaying the grant log to event %d gives policy %.16s, its entries recorded %.16s (grant log altered)", curIndex, got, curHash)
			}
			recorded[curIndex] = curHash
			return nil
		}
		if err := tx.GrantLog(0, func(e storage.GrantLogEntry) (bool, error) {
			if e.AuditIndex >= end {
				return false, nil
			}
			if start < 0 {
				start = e.AuditIndex
			}
			switch {
			case e.AuditIndex < curIndex:
				return false, bad(e.AuditIndex, "grant log entry %d names event %d, before the entry ahead of it (grant log altered)", e.Seq, e.AuditIndex)
			case e.AuditIndex > curIndex:
				if err := settle(); err != nil {
					return false, err
				}
				curIndex, curHash = e.AuditIndex, e.PolicyHash
			case e.PolicyHash != curHash:
				return false, bad(e.AuditIndex, "grant log entries of event %d record different policy hashes (grant log altered)", e.AuditIndex)
			}
			if err := r.apply(e); err != nil {
				return false, bad(e.AuditIndex, "%v (grant log altered)", err)
			}
			n++
			return true, nil
		}); err != nil {
			return err
		}
		if err := settle(); err != nil {
			return err
		}
		if start < 0 {
			return nil
		}
		// Every event from the log's start on: its hash is the one the
		// replay says, changing only at events with entries.
		want := ""
		return tx.AuditRecords(start, 0, func(rec storage.AuditRecord) (bool, error) {
			if rec.Index >= end {
				return false, nil
			}
			if h, ok := recorded[rec.Index]; ok {
				want = h
			}
			if rec.Pruned {
				return true, nil
			}
			ev, err := audit.Decode(rec.Event)
			if err != nil {
				return false, err
			}
			// An event stamped with no policy (written by a tool, not
			// through the broker) has nothing to compare.
			if ev.PolicyHash != "" && ev.PolicyHash != want {
				return false, bad(rec.Index, "event %d carries policy %.16s, but the grant log says %.16s was in force (grant log altered)", rec.Index, ev.PolicyHash, want)
			}
			return true, nil
		})
	})
	return n, err
}
