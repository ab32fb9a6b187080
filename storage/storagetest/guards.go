package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/storage"
)

// Raw reaches a backend's database behind the store's back, as an
// operator's SQL shell would, for RunAuditGuards, RunReleasePointGuards
// and RunLedgerGuards.
type Raw struct {
	// Exec runs one statement on its own connection and returns its
	// error.
	Exec func(query string) error
	// Refused are the backend's own statements that must be refused
	// besides the common ones (INSERT OR REPLACE, TRUNCATE, …). They run
	// after the common ones, in order, on what is left of the fixture,
	// and each must change something if let through. For RunAuditGuards
	// records 2, hashes 2..7 and the checkpoint of size 6 are untouched
	// (without the guards records 0 and 1 have events, record 0 no
	// longer pruned); for RunReleasePointGuards and RunLedgerGuards, see
	// there.
	Refused []string
	// DropGuards are the statements that remove the backend's guards
	// (its triggers), which an operator with SQL access can do.
	DropGuards []string
}

// guardedStatements are the changes the database must refuse, in an
// order where each still changes something if let through.
var guardedStatements = []string{
	`DELETE FROM audit_events WHERE idx = 5`,
	`UPDATE audit_events SET leaf_hash = chain_hash WHERE idx = 3`,
	`UPDATE audit_events SET chain_hash = leaf_hash WHERE idx = 4`,
	`UPDATE audit_events SET idx = 100 WHERE idx = 4`,
	`UPDATE audit_events SET event = (SELECT event FROM audit_events WHERE idx = 2) WHERE idx = 1`,
	// Restoring a pruned record's body.
	`UPDATE audit_events SET event = (SELECT event FROM audit_events WHERE idx = 2) WHERE idx = 0`,
	`DELETE FROM audit_hashes WHERE idx = 9`,
	`UPDATE audit_hashes SET hash = (SELECT hash FROM audit_hashes WHERE idx = 1) WHERE idx = 0`,
	`UPDATE audit_hashes SET idx = 1000 WHERE idx = 8`,
	`DELETE FROM audit_checkpoints WHERE size = 4`,
	`UPDATE audit_checkpoints SET created_at = '2020-01-01T00:00:00Z' WHERE size = 2`,
	`UPDATE audit_checkpoints SET size = 3 WHERE size = 2`,
}

// RunAuditGuards checks, on s (a fresh store) and raw (its database),
// that the database itself refuses every change to the audit tables but
// pruning: deleting records, hashes or checkpoints, changing a record's
// index, hashes or event (restoring a pruned one's included), changing a
// hash or a checkpoint. A refused statement leaves the log, its hashes
// and its checkpoints as they were. Once the guards are dropped every
// one of the statements goes through and changes them: so the guards,
// not some other failure, refused them, and an operator can still
// tamper (which verifying the log against its checkpoints must catch).
func RunAuditGuards(t *testing.T, s storage.Store, raw Raw) {
	t.Helper()
	update(t, s, func(tx storage.Tx) error {
		for i := range 6 {
			if _, err := appendLeaf(tx, fmt.Sprintf("event %d", i)); err != nil {
				return err
			}
		}
		if _, err := tx.PruneAuditEvents(1); err != nil {
			return err
		}
		return errors.Join(tx.PutCheckpoint(2, []byte("note 2"), at(1, 0)),
			tx.PutCheckpoint(4, []byte("note 4"), at(2, 0)), tx.PutCheckpoint(6, []byte("note 6"), at(3, 0)))
	})
	// state is what the store reads of the audit tables, tolerating the
	// gaps a tampering leaves.
	read := func() string {
		t.Helper()
		var b strings.Builder
		for _, r := range auditLog(t, s) {
			fmt.Fprintf(&b, "record %d %q %x %x pruned %v\n", r.Index, r.Event, r.LeafHash, r.ChainHash, r.Pruned)
		}
		view(t, s, func(tx storage.ReadTx) error {
			n, err := tx.AuditHashCount()
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "hash count %d\n", n)
			for _, i := range []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1000} {
				h, err := tx.AuditHashes([]int64{i})
				switch {
				case errors.Is(err, storage.ErrNotFound):
				case err != nil:
					return err
				default:
					fmt.Fprintf(&b, "hash %d %x\n", i, h[0])
				}
			}
			for size := range int64(7) {
				c, err := tx.Checkpoint(size)
				switch {
				case errors.Is(err, storage.ErrNotFound):
				case err != nil:
					return err
				default:
					fmt.Fprintf(&b, "checkpoint %d %q %v\n", c.Size, c.Note, c.CreatedAt)
				}
			}
			return nil
		})
		return b.String()
	}
	want := read()
	if !strings.Contains(want, "record 0 \"\" ") || !strings.Contains(want, "hash count 10\n") {
		t.Fatalf("the fixture is not what RunAuditGuards expects:\n%s", want)
	}

	checkGuards(t, raw, append(slices.Clone(guardedStatements), raw.Refused...), read, "the audit tables")
}

// checkGuards runs each statement against the raw database and expects
// it refused with what read shows unchanged (want is read's answer
// before); then it drops the guards and expects each statement to
// succeed and change what read shows, so that each one really tests a
// guard rather than failing for some other reason.
func checkGuards(t *testing.T, raw Raw, stmts []string, read func() string, what string) {
	t.Helper()
	want := read()
	for _, q := range stmts {
		if err := raw.Exec(q); err == nil {
			t.Errorf("the database let through: %s", q)
		}
		if got := read(); got != want {
			t.Fatalf("after %s %s changed:\n%s\nwant\n%s", q, what, got, want)
		}
	}
	for _, q := range raw.DropGuards {
		if err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, q := range stmts {
		before := read()
		if err := raw.Exec(q); err != nil {
			t.Errorf("with the guards dropped, %s: %v", q, err)
			continue
		}
		if read() == before {
			t.Errorf("with the guards dropped, %s changed nothing: it does not test a guard", q)
		}
	}
}
