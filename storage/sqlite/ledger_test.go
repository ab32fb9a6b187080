package sqlite_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/sqlite"
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
	path := dbPath(t)
	s := open(t, sqlite.Options{Path: path, Create: true})
	db := peer(t, path)
	var drop []string
	for _, tr := range ledgerTriggers {
		drop = append(drop, "DROP TRIGGER "+tr)
	}
	storagetest.RunLedgerGuards(t, s, storagetest.Raw{
		Exec: func(q string) error { _, err := db.Exec(q); return err },
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
	ctx := context.Background()
	err := s.View(ctx, func(tx storage.ReadTx) error {
		if h, err := tx.AuditHead(); err != nil || h.Next != 1 {
			t.Errorf("AuditHead after the upgrade = %+v, %v; want the one record kept", h, err)
		}
		if p, err := tx.LatestReleasePoint(); err != nil || p.Name != "first" {
			t.Errorf("LatestReleasePoint after the upgrade = %+v, %v; want the point kept", p, err)
		}
		n := 0
		err := tx.LedgerDebits(-1, func(storage.LedgerDebit) (bool, error) { n++; return true, nil })
		if err2 := tx.ShareChanges(func(storage.ShareChange) (bool, error) { n++; return true, nil }); err != nil || err2 != nil || n != 0 {
			t.Errorf("the upgraded ledger holds %d rows (%v, %v), want none", n, err, err2)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	d := &storage.LedgerDebit{AuditIndex: 1, Query: "q", Result: "r", Areas: []string{"01"}, Project: "p",
		Researcher: "bob", Rho: 5, At: time.Now()}
	c := &storage.ShareChange{Kind: "project", Holder: "p", Rho: 10, Reason: "why", ProposedBy: "alice",
		ProposedAt: time.Now(), ProposalAudit: 2}
	if err := s.Update(ctx, func(tx storage.Tx) error {
		return errors.Join(tx.InsertLedgerDebit(d), tx.ProposeShare(c))
	}); err != nil || c.Seq != 1 {
		t.Fatalf("the ledger on the upgraded database: Seq %d, %v", c.Seq, err)
	}
	db := peer(t, path)
	for _, q := range []string{`DELETE FROM ledger_debits`, `UPDATE ledger_shares SET rho = 1`} {
		if _, err := db.Exec(q); err == nil {
			t.Errorf("the upgraded database let through: %s", q)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	sameSchemaAsNew(t, path)
}
