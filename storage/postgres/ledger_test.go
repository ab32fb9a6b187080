package postgres_test

import (
	"context"
	"testing"

	"github.com/censusvault/censusvault/storage/storagetest"
)

// TestLedgerGuards: the database refuses changes to the privacy ledger
// made behind the store's back, TRUNCATE (which fires no delete trigger)
// and an upsert's UPDATE included, until an operator drops the triggers.
func TestLedgerGuards(t *testing.T) {
	s, exec := guarded(t)
	storagetest.RunLedgerGuards(t, s, storagetest.Raw{
		Exec: exec,
		Refused: []string{
			`INSERT INTO ledger_debits(query, audit_index, result, areas, project, researcher, rho, at)
				SELECT query, audit_index, result, areas, project, researcher, rho, at FROM ledger_debits WHERE query = 'q1'
				ON CONFLICT (query) DO UPDATE SET rho = ledger_debits.rho + 1`,
			`INSERT INTO ledger_shares(seq, kind, holder, rho, reason, proposed_by, proposed_at, proposal_audit, approved_by, approved_at, approval_audit)
				SELECT seq, kind, holder, rho, reason, proposed_by, proposed_at, proposal_audit, approved_by, approved_at, approval_audit
				FROM ledger_shares WHERE seq = 2
				ON CONFLICT (seq) DO UPDATE SET rho = ledger_shares.rho + 1`,
			`TRUNCATE ledger_debits`,
			`TRUNCATE ledger_shares`,
		},
		DropGuards: []string{
			"DROP TRIGGER ledger_debits_no_update ON ledger_debits",
			"DROP TRIGGER ledger_debits_no_delete ON ledger_debits",
			"DROP TRIGGER ledger_debits_no_truncate ON ledger_debits",
			"DROP TRIGGER ledger_shares_approve_only ON ledger_shares",
			"DROP TRIGGER ledger_shares_no_delete ON ledger_shares",
			"DROP TRIGGER ledger_shares_no_truncate ON ledger_shares",
		},
	})
}

// TestUpgradeFromV6: a database at schema version 6 with an audit record
// and a publication point migrates to version 7 with both kept and an
// empty ledger; debits and share changes can then be stored, and the
// guards hold.
func TestUpgradeFromV6(t *testing.T) {
	s, dsn := upgradeFrom(t, 6, `
		INSERT INTO audit_events(idx, event, leaf_hash, chain_hash) VALUES (0, '\x7b7d', decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'));
		UPDATE audit_head SET next = 1 WHERE id = 1;
		INSERT INTO release_points(seq, name, as_of, created_at, created_by, audit_index, state)
			VALUES (1, 'first', 1, '2019-04-01T00:00:00Z', 'approver', 0, '\x7b7d')`)
	c := conn(t, dsn)
	storagetest.CheckUpgradeFromV6(t, s, func(q string) error { _, err := c.Exec(context.Background(), q); return err })
}
