package sqlite_test

import (
	"testing"

	"github.com/censusvault/censusvault/storage/storagetest"
)

// ledgerTriggers are the triggers of schema version 7 that keep the
// privacy ledger.
var ledgerTriggers = []string{
	"ledger_debits_no_replace", "ledger_debits_no_update", "ledger_debits_no_delete",
	"ledger_shares_no_replace", "ledger_shares_approve_only", "ledger_shares_no_delete",
}

// TestLedgerGuards: the database refuses changes to the privacy ledger
// made behind the store's back, INSERT OR REPLACE (a delete that fires
// no delete trigger) over a charged query or a stored share change
// included, until an operator drops the triggers.
func TestLedgerGuards(t *testing.T) {
	s, exec := guarded(t)
	var drop []string
	for _, tr := range ledgerTriggers {
		drop = append(drop, "DROP TRIGGER "+tr)
	}
	storagetest.RunLedgerGuards(t, s, storagetest.Raw{
		Exec: exec,
		Refused: []string{
			`INSERT OR REPLACE INTO ledger_debits(query, audit_index, result, areas, project, researcher, rho, at)
				SELECT query, audit_index, result, areas, project, researcher, rho + 1, at FROM ledger_debits WHERE query = 'q1'`,
			`REPLACE INTO ledger_shares(seq, kind, holder, rho, reason, proposed_by, proposed_at, proposal_audit, approved_by, approved_at, approval_audit)
				SELECT seq, kind, holder, rho + 1, reason, proposed_by, proposed_at, proposal_audit, approved_by, approved_at, approval_audit
				FROM ledger_shares WHERE seq = 2`,
		},
		DropGuards: drop,
	})
}

// TestUpgradeFromV6: a database at schema version 6 with an audit record
// and a publication point opens at version 7 with both kept and an empty
// ledger; debits and share changes can then be stored, the guards hold,
// and the schema is that of a database made new.
func TestUpgradeFromV6(t *testing.T) {
	s, path := upgradeFrom(t, 6,
		`INSERT INTO audit_events(idx, event, leaf_hash, chain_hash) VALUES (0, X'7b7d', zeroblob(32), zeroblob(32))`,
		`INSERT INTO release_points(seq, name, as_of, created_at, created_by, audit_index, state)
			VALUES (1, 'first', 1, '2019-04-01T00:00:00Z', 'approver', 0, X'7b7d')`)
	db := peer(t, path)
	storagetest.CheckUpgradeFromV6(t, s, func(q string) error { _, err := db.Exec(q); return err })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	sameSchemaAsNew(t, path)
}
