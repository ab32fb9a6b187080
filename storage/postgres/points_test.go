package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/postgres"
	"github.com/censusvault/censusvault/storage/postgres/pgtest"
	"github.com/censusvault/censusvault/storage/storagetest"
)

// TestReleasePointGuards: the database refuses changes to stored
// publication points made behind the store's back, TRUNCATE (which fires
// no delete trigger) and an upsert's UPDATE included, until an operator
// drops the triggers.
func TestReleasePointGuards(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	s := open(t, postgres.Options{DSN: dsn, MaxConns: 2})
	c := conn(t, dsn)
	storagetest.RunReleasePointGuards(t, s, storagetest.Raw{
		Exec: func(q string) error { _, err := c.Exec(ctx, q); return err },
		Refused: []string{
			`INSERT INTO release_points(seq, name, as_of, created_at, created_by, audit_index, state)
				SELECT seq, name, as_of, created_at, created_by, audit_index, state FROM release_points WHERE seq = 1
				ON CONFLICT (seq) DO UPDATE SET as_of = EXCLUDED.as_of + 1`,
			`TRUNCATE release_points`,
		},
		DropGuards: []string{
			"DROP TRIGGER release_points_no_update ON release_points",
			"DROP TRIGGER release_points_no_delete ON release_points",
			"DROP TRIGGER release_points_no_truncate ON release_points",
		},
	})
}

// TestUpgradeFromV5: a database at schema version 5 with an audit
// record migrates to version 6 with no publication points; a point can
// then be made and is refused a change.
func TestUpgradeFromV5(t *testing.T) {
	ctx := context.Background()
	s, dsn := upgradeFrom(t, 5, `
		INSERT INTO audit_events(idx, event, leaf_hash, chain_hash) VALUES (0, '\x7b7d', decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'));
		UPDATE audit_head SET next = 1 WHERE id = 1`)
	err := s.View(ctx, func(tx storage.ReadTx) error {
		if h, err := tx.AuditHead(); err != nil || h.Next != 1 {
			t.Errorf("AuditHead after the upgrade = %+v, %v; want the one record kept", h, err)
		}
		if _, err := tx.LatestReleasePoint(); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("LatestReleasePoint after the upgrade: err = %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p := &storage.ReleasePoint{Name: "first", AsOf: 0, CreatedAt: time.Now(), CreatedBy: "approver", AuditIndex: 1, State: []byte("{}")}
	if err := s.Update(ctx, func(tx storage.Tx) error { return tx.InsertReleasePoint(p) }); err != nil || p.Seq != 1 {
		t.Fatalf("InsertReleasePoint on the upgraded database: Seq %d, %v", p.Seq, err)
	}
	c := conn(t, dsn)
	if _, err := c.Exec(ctx, `DELETE FROM release_points`); err == nil {
		t.Error("the upgraded database let a publication point be deleted")
	}
}
