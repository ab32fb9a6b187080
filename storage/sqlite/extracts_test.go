package sqlite_test

import (
	"strings"
	"testing"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/sqlite"
	"github.com/censusvault/censusvault/storage/storagetest"
)

// TestExtractConformance runs the conformance cases of extracts.
func TestExtractConformance(t *testing.T) {
	storagetest.RunExtracts(t, func(t *testing.T) storage.Store {
		return open(t, sqlite.Options{Path: dbPath(t), Create: true})
	})
}

// extractTriggers are the triggers of schema version 10 that keep the
// environments and extract proposals append-only.
var extractTriggers = []string{
	"extract_environments_no_replace", "extract_environments_retire_only", "extract_environments_no_delete",
	"extract_proposals_no_replace", "extract_proposals_approve_only", "extract_proposals_no_delete",
}

// TestExtractGuards: the database refuses changes to environments and
// extract proposals made behind the store's back, INSERT OR REPLACE (a
// delete that fires no delete trigger) over a stored name or seq
// included, until an operator drops the triggers.
func TestExtractGuards(t *testing.T) {
	s, exec := guarded(t)
	var drop []string
	for _, tr := range extractTriggers {
		drop = append(drop, "DROP TRIGGER "+tr)
	}
	storagetest.RunExtractGuards(t, s, storagetest.Raw{
		Exec: exec,
		Refused: []string{
			`INSERT OR REPLACE INTO extract_environments(name, recipient, classes, created_by, created_at, audit_index)
				SELECT name, 'age1replaced', classes, created_by, created_at, audit_index FROM extract_environments WHERE name = 'e1'`,
			`REPLACE INTO extract_proposals(seq, environment, areas, form, form_version, classes, format, purpose, proposed_by, proposed_at,
					proposal_audit, approved_by, approved_at, approval_audit)
				SELECT seq, environment, areas, form, form_version, '["identifying"]', format, purpose, proposed_by, proposed_at,
					proposal_audit, approved_by, approved_at, approval_audit
				FROM extract_proposals WHERE seq = 2`,
		},
		DropGuards: drop,
	})
}

// TestUpgradeFromV9: a database at schema version 9 with a submission
// opens at version 10 with it kept and no environments or proposals;
// they can then be stored, and the schema is that of a database made new.
func TestUpgradeFromV9(t *testing.T) {
	s, path := upgradeFrom(t, 9,
		`INSERT INTO submissions(id, area, commune, household_no, form, form_version, interviewed_at, received_at,
			depositor, payload_sha256, supersedes, superseded_by, ident_kv, ident, analytic_kv, analytic, audit_index, receipt) VALUES
			('s1', 'E1', 'C1', 1, 'household', 1, '2019-04-01T09:30:00Z', '2019-04-01T10:00:00.5Z', 'e', 'x', '', NULL, 1, X'01', 1, X'02', 0, X'00')`)
	storagetest.CheckUpgradeFromV9(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	sameSchemaAsNew(t, path)
}

// TestExtractQueryPlan: an extract reads a range of the audit_index
// index in its order, finds each successor through the primary key, and
// neither scans nor sorts the submissions.
func TestExtractQueryPlan(t *testing.T) {
	path := dbPath(t)
	open(t, sqlite.Options{Path: path, Create: true}).Close()
	db := peer(t, path)
	text := queryPlan(t, db, sqlite.ExtractQuery, -1, 1<<62, 1000, 50, 1, 1, 1, "census2019", 1, `["C1","C2"]`)
	if !strings.Contains(text, "SEARCH s USING INDEX submissions_audit_index (audit_index>? AND audit_index<?)") ||
		!strings.Contains(text, "SEARCH n USING INDEX sqlite_autoindex_submissions_1 (id=?)") ||
		strings.Contains(text, "SCAN s") || strings.Contains(text, "SCAN n") || strings.Contains(text, "TEMP B-TREE") {
		t.Errorf("plan of ExtractSubmissions:\n%s\nwant a range of submissions_audit_index in its order and the successor by id", text)
	}
}
