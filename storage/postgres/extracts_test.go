package postgres_test

import (
	"testing"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/postgres"
	"github.com/censusvault/censusvault/storage/postgres/pgtest"
	"github.com/censusvault/censusvault/storage/storagetest"
)

// TestExtractConformance runs the conformance cases of extracts.
func TestExtractConformance(t *testing.T) {
	storagetest.RunExtracts(t, func(t *testing.T) storage.Store {
		return open(t, postgres.Options{DSN: pgtest.DSN(t), MaxConns: 4})
	})
}

// TestExtractGuards: the database refuses changes to environments and
// extract proposals made behind the store's back, TRUNCATE (which fires
// no delete trigger) and an upsert's UPDATE included, until an operator
// drops the triggers.
func TestExtractGuards(t *testing.T) {
	s, exec := guarded(t)
	storagetest.RunExtractGuards(t, s, storagetest.Raw{
		Exec: exec,
		Refused: []string{
			`INSERT INTO extract_environments(name, recipient, classes, created_by, created_at, audit_index)
				SELECT name, recipient, classes, created_by, created_at, audit_index FROM extract_environments WHERE name = 'e1'
				ON CONFLICT (name) DO UPDATE SET recipient = 'age1upserted'`,
			`INSERT INTO extract_proposals(seq, environment, areas, form, form_version, classes, format, purpose, proposed_by, proposed_at,
					proposal_audit, approved_by, approved_at, approval_audit)
				SELECT seq, environment, areas, form, form_version, classes, format, purpose, proposed_by, proposed_at,
					proposal_audit, approved_by, approved_at, approval_audit
				FROM extract_proposals WHERE seq = 2
				ON CONFLICT (seq) DO UPDATE SET classes = '["identifying"]'`,
			`TRUNCATE extract_proposals`,
			`TRUNCATE extract_environments CASCADE`,
		},
		DropGuards: []string{
			"DROP TRIGGER extract_environments_retire_only ON extract_environments",
			"DROP TRIGGER extract_environments_no_delete ON extract_environments",
			"DROP TRIGGER extract_environments_no_truncate ON extract_environments",
			"DROP TRIGGER extract_proposals_approve_only ON extract_proposals",
			"DROP TRIGGER extract_proposals_no_delete ON extract_proposals",
			"DROP TRIGGER extract_proposals_no_truncate ON extract_proposals",
		},
	})
}

// TestUpgradeFromV9: a database at schema version 9 with a submission
// migrates to version 10 with it kept and no environments or proposals;
// they can then be stored.
func TestUpgradeFromV9(t *testing.T) {
	s, _ := upgradeFrom(t, 9, `
		INSERT INTO submissions(id, area, commune, household_no, form, form_version, interviewed_at, received_at,
			depositor, payload_sha256, supersedes, superseded_by, ident_kv, ident, analytic_kv, analytic, audit_index, receipt) VALUES
			('s1', 'E1', 'C1', 1, 'household', 1, '2019-04-01T09:30:00Z', '2019-04-01T10:00:00.5Z', 'e', 'x', '', NULL, 1, '\x01', 1, '\x02', 0, '\x00')`)
	storagetest.CheckUpgradeFromV9(t, s)
}
