package sqlite_test

import (
	"testing"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/sqlite"
	"github.com/censusvault/censusvault/storage/storagetest"
)

// TestAreaRevisionConformance runs the conformance cases of the
// revisions of the area tree.
func TestAreaRevisionConformance(t *testing.T) {
	storagetest.RunAreaRevisions(t, func(t *testing.T) storage.Store {
		return open(t, sqlite.Options{Path: dbPath(t), Create: true})
	})
}

// TestAreaRevisionGuards: the database refuses to change or remove a
// stored revision, to store one out of turn, and INSERT OR REPLACE (a
// delete that fires no delete trigger), until an operator drops the
// triggers.
func TestAreaRevisionGuards(t *testing.T) {
	s, exec := guarded(t)
	storagetest.RunAreaRevisionGuards(t, s, storagetest.Raw{
		Exec: exec,
		Refused: []string{
			`UPDATE area_revisions SET document = document || document`,
			`INSERT OR REPLACE INTO area_revisions(number, at, audit_index, document, sha256)
				SELECT number, at, 77, document, sha256 FROM area_revisions ORDER BY number LIMIT 1`,
		},
		DropGuards: []string{"DROP TRIGGER area_revisions_next_only", "DROP TRIGGER area_revisions_no_update", "DROP TRIGGER area_revisions_no_delete"},
	})
}

// TestUpgradeFromV11: a database at schema version 11 opens at version
// 12 with no revisions, the schema of a database made new.
func TestUpgradeFromV11(t *testing.T) {
	s, path := upgradeFrom(t, 11)
	storagetest.CheckUpgradeFromV11(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	sameSchemaAsNew(t, path)
}
