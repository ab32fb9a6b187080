package sqlite_test

import (
	"strings"
	"testing"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/sqlite"
	"github.com/censusvault/censusvault/storage/storagetest"
)

// TestFormConformance runs the conformance cases of stored forms.
func TestFormConformance(t *testing.T) {
	storagetest.RunForms(t, func(t *testing.T) storage.Store {
		return open(t, sqlite.Options{Path: dbPath(t), Create: true})
	})
}

// TestFormGuards: the database refuses to change a form version a
// submission uses, to rename or remove any, and INSERT OR REPLACE (a
// delete that fires no delete trigger) over a stored version, until an
// operator drops the triggers.
func TestFormGuards(t *testing.T) {
	s, exec := guarded(t)
	storagetest.RunFormGuards(t, s, storagetest.Raw{
		Exec: exec,
		Refused: []string{
			`INSERT OR REPLACE INTO forms(name, version, sha256, definition, added_at, added_by, audit_index)
				SELECT name, version, sha256, definition, added_at, 'eve', audit_index FROM forms WHERE name = 'used'`,
			`INSERT OR REPLACE INTO forms(name, version, sha256, definition, added_at, added_by, audit_index)
				SELECT name, version, sha256, definition, added_at, 'eve', audit_index FROM forms WHERE name = 'free'`,
		},
		DropGuards: []string{"DROP TRIGGER forms_no_replace", "DROP TRIGGER forms_unused_only", "DROP TRIGGER forms_no_delete"},
	})
}

// TestUpgradeFromV10: a database at schema version 10 with a submission
// opens at version 11 with no forms, its submission's version in use,
// and the schema of a database made new.
func TestUpgradeFromV10(t *testing.T) {
	s, path := upgradeFrom(t, 10,
		`INSERT INTO submissions(id, area, commune, household_no, form, form_version, interviewed_at, received_at,
			depositor, payload_sha256, supersedes, superseded_by, ident_kv, ident, analytic_kv, analytic, audit_index, receipt) VALUES
			('s1', 'E1', 'C1', 1, 'household', 1, '2019-04-01T09:30:00Z', '2019-04-01T10:00:00.5Z', 'e', 'x', '', NULL, 1, X'01', 1, X'02', 0, X'00')`)
	storagetest.CheckUpgradeFromV10(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	sameSchemaAsNew(t, path)
}

// TestFormInUsePlan: whether a version is used is one search of the
// submissions_form index, never a scan of the submissions.
func TestFormInUsePlan(t *testing.T) {
	path := dbPath(t)
	open(t, sqlite.Options{Path: path, Create: true}).Close()
	db := peer(t, path)
	text := queryPlan(t, db, sqlite.FormInUseQuery, "census2019", 1)
	if !strings.Contains(text, "USING COVERING INDEX submissions_form (form=? AND form_version=?)") || strings.Contains(text, "SCAN submissions") {
		t.Errorf("plan of FormInUse:\n%s\nwant a search of submissions_form", text)
	}
}
