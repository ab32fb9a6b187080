package sqlite_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/sqlite"
	"github.com/censusvault/censusvault/storage/storagetest"
)

// TestUpgradeFromV7: a database at schema version 7 with an audit record
// and submissions opens at version 8 with both kept and no record opens;
// the submissions list, opens can then be recorded, counted and pruned,
// and the schema is that of a database made new.
func TestUpgradeFromV7(t *testing.T) {
	s, path := upgradeFrom(t, 7,
		`INSERT INTO audit_events(idx, event, leaf_hash, chain_hash) VALUES (0, X'7b7d', zeroblob(32), zeroblob(32))`,
		`INSERT INTO submissions(id, area, commune, household_no, form, form_version, interviewed_at, received_at,
			depositor, payload_sha256, supersedes, superseded_by, ident_kv, ident, analytic_kv, analytic, audit_index, receipt) VALUES
			('s1', 'E1', 'C1', 1, 'household', 1, '2019-04-01T09:30:00Z', '2019-04-01T10:00:00.5Z', 'e', 'x', '', 's2', 1, X'01', 1, X'02', 0, X'00'),
			('s2', 'E1', 'C1', 1, 'household', 2, '', '', 'f', 'y', 's1', NULL, 1, X'03', NULL, NULL, 1, X'00')`)
	storagetest.CheckUpgradeFromV7(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	sameSchemaAsNew(t, path)
}

// TestListSubmissionsReadsNoSealedPart: ListSubmissions lists a vault
// whose submissions have lost every column a review list must not read
// (the sealed parts, the operational fields, the receipt and the payload
// digest): it never reads them. Reading a whole submission on the same
// database fails, which shows the columns are gone.
func TestListSubmissionsReadsNoSealedPart(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	s := open(t, sqlite.Options{Path: path, Create: true})
	if err := s.Update(ctx, func(tx storage.Tx) error {
		return errors.Join(deposit("s1", 1)(tx), deposit("s2", 2)(tx), deposit("s3", 3)(tx))
	}); err != nil {
		t.Fatal(err)
	}
	storagetest.CheckListReadsNoSealedPart(t, s, func() storage.Store {
		db := peer(t, path)
		for _, col := range []string{"ident_kv", "ident", "analytic_kv", "analytic", "operational", "receipt", "payload_sha256"} {
			if _, err := db.Exec(`ALTER TABLE submissions DROP COLUMN ` + col); err != nil {
				t.Fatalf("dropping submissions.%s: %v", col, err)
			}
		}
		db.Close()
		return open(t, sqlite.Options{Path: path})
	})
}

// TestListSubmissionsPlan: a page of ListSubmissions is a range of
// submissions_audit_index in its order (no scan or sort of the table),
// with or without communes; OpensSince is a range of
// record_opens_user_at.
func TestListSubmissionsPlan(t *testing.T) {
	path := dbPath(t)
	open(t, sqlite.Options{Path: path, Create: true}).Close()
	db := peer(t, path)
	for i, q := range sqlite.ListQueries {
		text := queryPlan(t, db, q, 5, 9, "", 1, 1000, `["C1","C2"]`)
		if !strings.Contains(text, "SEARCH submissions USING INDEX submissions_audit_index (audit_index>?)") ||
			strings.Contains(text, "SCAN submissions") || strings.Contains(text, "TEMP B-TREE") {
			t.Errorf("plan of ListSubmissions (query %d):\n%s\nwant a range of submissions_audit_index in its order", i, text)
		}
	}
	text := queryPlan(t, db, sqlite.OpensSinceQuery, "alice", 5)
	if !strings.Contains(text, "USING COVERING INDEX record_opens_user_at (user_name=? AND at>?)") {
		t.Errorf("plan of OpensSince:\n%s\nwant a range of record_opens_user_at", text)
	}
}

// TestReviewGuards: the database refuses changes to stored reviews made
// behind the store's back, INSERT OR REPLACE (a delete that fires no
// delete trigger) over a stored review included, until an operator drops
// the triggers.
func TestReviewGuards(t *testing.T) {
	s, exec := guarded(t)
	storagetest.RunReviewGuards(t, s, storagetest.Raw{
		Exec: exec,
		Refused: []string{
			`INSERT OR REPLACE INTO reviews(audit_index, submission, status, reason, note, reviewer, at)
				SELECT audit_index, submission, 'rejected', reason, note, reviewer, at FROM reviews WHERE audit_index = 11`,
		},
		DropGuards: []string{"DROP TRIGGER reviews_no_replace", "DROP TRIGGER reviews_no_update", "DROP TRIGGER reviews_no_delete"},
	})
}
