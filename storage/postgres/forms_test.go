package postgres_test

import (
	"testing"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/postgres"
	"github.com/censusvault/censusvault/storage/postgres/pgtest"
	"github.com/censusvault/censusvault/storage/storagetest"
)

// TestFormConformance runs the conformance cases of stored forms.
func TestFormConformance(t *testing.T) {
	storagetest.RunForms(t, func(t *testing.T) storage.Store {
		return open(t, postgres.Options{DSN: pgtest.DSN(t), MaxConns: 4})
	})
}

// TestFormGuards: the database refuses to change a form version a
// submission uses, to rename or remove any, an upsert's UPDATE of a used
// version and TRUNCATE (which fires no delete trigger), until an
// operator drops the triggers.
func TestFormGuards(t *testing.T) {
	s, exec := guarded(t)
	storagetest.RunFormGuards(t, s, storagetest.Raw{
		Exec: exec,
		Refused: []string{
			`INSERT INTO forms(name, version, sha256, definition, added_at, added_by, audit_index)
				SELECT name, version, sha256, definition, added_at, added_by, audit_index FROM forms WHERE name = 'used'
				ON CONFLICT (name, version) DO UPDATE SET added_by = 'eve'`,
			`TRUNCATE forms`,
		},
		DropGuards: []string{
			"DROP TRIGGER forms_unused_insert ON forms",
			"DROP TRIGGER forms_unused_only ON forms",
			"DROP TRIGGER forms_no_delete ON forms",
			"DROP TRIGGER forms_no_truncate ON forms",
		},
	})
}

// TestUpgradeFromV10: a database at schema version 10 with a submission
// migrates to version 11 with no forms and its submission's version in
// use.
func TestUpgradeFromV10(t *testing.T) {
	s, _ := upgradeFrom(t, 10, `
		INSERT INTO submissions(id, area, commune, household_no, form, form_version, interviewed_at, received_at,
			depositor, payload_sha256, supersedes, superseded_by, ident_kv, ident, analytic_kv, analytic, audit_index, receipt) VALUES
			('s1', 'E1', 'C1', 1, 'household', 1, '2019-04-01T09:30:00Z', '2019-04-01T10:00:00.5Z', 'e', 'x', '', NULL, 1, '\x01', 1, '\x02', 0, '\x00')`)
	storagetest.CheckUpgradeFromV10(t, s)
}
