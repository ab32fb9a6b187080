package sqlite_test

import (
	"testing"

	"github.com/censusvault/censusvault/storage/storagetest"
)

// TestReleasePointGuards: the database refuses changes to stored
// publication points made behind the store's back, INSERT OR REPLACE (a
// delete that fires no delete trigger) over a stored seq or a stored
// name included, until an operator drops the triggers.
func TestReleasePointGuards(t *testing.T) {
	s, exec := guarded(t)
	storagetest.RunReleasePointGuards(t, s, storagetest.Raw{
		Exec: exec,
		Refused: []string{
			`INSERT OR REPLACE INTO release_points(seq, name, as_of, created_at, created_by, audit_index, state)
				SELECT seq, name, as_of + 1, created_at, created_by, audit_index, state FROM release_points WHERE seq = 1`,
			`REPLACE INTO release_points(seq, name, as_of, created_at, created_by, audit_index, state)
				SELECT 99, name, as_of, created_at, created_by, audit_index, state FROM release_points WHERE seq = 1`,
		},
		DropGuards: []string{
			"DROP TRIGGER release_points_no_replace", "DROP TRIGGER release_points_no_update", "DROP TRIGGER release_points_no_delete",
		},
	})
}

// TestUpgradeFromV5: a database at schema version 5 with an audit log
// opens at version 6 with the log intact and no publication points; a
// point can then be made, is refused a change, and the schema is that of
// a database made new.
func TestUpgradeFromV5(t *testing.T) {
	s, path := upgradeFrom(t, 5,
		`INSERT INTO audit_events(idx, event, leaf_hash, chain_hash) VALUES (0, X'7b7d', zeroblob(32), zeroblob(32))`)
	db := peer(t, path)
	storagetest.CheckUpgradeFromV5(t, s, func(q string) error { _, err := db.Exec(q); return err })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	sameSchemaAsNew(t, path)
}
