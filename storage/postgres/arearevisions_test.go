package postgres_test

import (
	"testing"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/postgres"
	"github.com/censusvault/censusvault/storage/postgres/pgtest"
	"github.com/censusvault/censusvault/storage/storagetest"
)

// TestAreaRevisionConformance runs the conformance cases of the
// revisions of the area tree.
func TestAreaRevisionConformance(t *testing.T) {
	storagetest.RunAreaRevisions(t, func(t *testing.T) storage.Store {
		return open(t, postgres.Options{DSN: pgtest.DSN(t), MaxConns: 4})
	})
}

// TestAreaRevisionGuards: the database refuses to change or remove a
// stored revision, to store one out of turn, an upsert's UPDATE and
// TRUNCATE (which fires no delete trigger), until an operator drops the
// triggers.
func TestAreaRevisionGuards(t *testing.T) {
	s, exec := guarded(t)
	storagetest.RunAreaRevisionGuards(t, s, storagetest.Raw{
		Exec: exec,
		Refused: []string{
			`UPDATE area_revisions SET document = document || document, sha256 = encode(sha256(document || document), 'hex')`,
			`INSERT INTO area_revisions(number, at, audit_index, document, sha256)
				SELECT number, at, audit_index, document, sha256 FROM area_revisions ORDER BY number LIMIT 1
				ON CONFLICT (number) DO UPDATE SET audit_index = 77`,
			`TRUNCATE area_revisions`,
		},
		DropGuards: []string{
			"DROP TRIGGER area_revisions_next_only ON area_revisions",
			"DROP TRIGGER area_revisions_no_update ON area_revisions",
			"DROP TRIGGER area_revisions_no_delete ON area_revisions",
			"DROP TRIGGER area_revisions_no_truncate ON area_revisions",
		},
	})
}

// TestUpgradeFromV11: a database at schema version 11 migrates to
// version 12 with no revisions, and stores the first.
func TestUpgradeFromV11(t *testing.T) {
	s, _ := upgradeFrom(t, 11, "")
	storagetest.CheckUpgradeFromV11(t, s)
}
