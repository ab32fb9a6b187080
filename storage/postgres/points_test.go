package postgres_test

import (
	"context"
	"testing"

	"github.com/censusvault/censusvault/storage/storagetest"
)

// TestReleasePointGuards: the database refuses changes to stored
// publication points made behind the store's back, TRUNCATE (which fires
// no delete trigger) and an upsert's UPDATE included, until an operator
// drops the triggers.
func TestReleasePointGuards(t *testing.T) {
	s, exec := guarded(t)
	storagetest.RunReleasePointGuards(t, s, storagetest.Raw{
		Exec: exec,
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
	s, dsn := upgradeFrom(t, 5, `
		INSERT INTO audit_events(idx, event, leaf_hash, chain_hash) VALUES (0, '\x7b7d', decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'));
		UPDATE audit_head SET next = 1 WHERE id = 1`)
	c := conn(t, dsn)
	storagetest.CheckUpgradeFromV5(t, s, func(q string) error { _, err := c.Exec(context.Background(), q); return err })
}
