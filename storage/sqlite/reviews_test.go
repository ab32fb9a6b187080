package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/sqlite"
)

// list collects ListSubmissions(f).
func list(tx storage.ReadTx, f storage.SubmissionFilter) ([]storage.SubmissionMeta, error) {
	var got []storage.SubmissionMeta
	err := tx.ListSubmissions(f, func(m storage.SubmissionMeta) (bool, error) {
		got = append(got, m)
		return true, nil
	})
	return got, err
}

// ids are the ids of ms, in order.
func ids(ms []storage.SubmissionMeta) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.ID)
	}
	return strings.Join(s, " ")
}

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
	ctx := context.Background()
	err := s.View(ctx, func(tx storage.ReadTx) error {
		if h, err := tx.AuditHead(); err != nil || h.Next != 1 {
			t.Errorf("AuditHead after the upgrade = %+v, %v; want the one record kept", h, err)
		}
		got, err := list(tx, storage.SubmissionFilter{After: -1})
		if err != nil || ids(got) != "s1 s2" || got[0].SupersededBy != "s2" || got[1].Supersedes != "s1" ||
			!got[0].ReceivedAt.Equal(time.Date(2019, time.April, 1, 10, 0, 0, 5e8, time.UTC)) {
			t.Errorf("ListSubmissions after the upgrade = %+v, %v", got, err)
		}
		if got, err := list(tx, storage.SubmissionFilter{After: -1, Current: true}); err != nil || ids(got) != "s2" {
			t.Errorf("ListSubmissions(current) after the upgrade = %q, %v; want s2", ids(got), err)
		}
		if n, err := tx.OpensSince("alice", time.Time{}); err != nil || n != 0 {
			t.Errorf("OpensSince after the upgrade = %d, %v; want 0", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := s.Update(ctx, func(tx storage.Tx) error {
		return errors.Join(tx.RecordOpen("alice", "s1", now.Add(-2*time.Hour)), tx.RecordOpen("alice", "s2", now))
	}); err != nil {
		t.Fatalf("recording opens on the upgraded database: %v", err)
	}
	var pruned, left int64
	if err := s.Update(ctx, func(tx storage.Tx) error {
		var err error
		if pruned, err = tx.PruneOpens(now.Add(-time.Hour)); err != nil {
			return err
		}
		left, err = tx.OpensSince("alice", now.Add(-time.Hour))
		return err
	}); err != nil || pruned != 1 || left != 1 {
		t.Errorf("PruneOpens, OpensSince on the upgraded database = %d, %d, %v; want 1, 1", pruned, left, err)
	}
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
	if err := s.Update(ctx, func(tx storage.Tx) error { return tx.MarkSuperseded("s1", "s3") }); err != nil {
		t.Fatal(err)
	}
	var want []storage.SubmissionMeta
	if err := s.View(ctx, func(tx storage.ReadTx) (err error) {
		want, err = list(tx, storage.SubmissionFilter{After: -1})
		return err
	}); err != nil || len(want) != 3 {
		t.Fatalf("ListSubmissions before the columns are dropped = %d rows, %v", len(want), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db := peer(t, path)
	for _, col := range []string{"ident_kv", "ident", "analytic_kv", "analytic", "operational", "receipt", "payload_sha256"} {
		if _, err := db.Exec(`ALTER TABLE submissions DROP COLUMN ` + col); err != nil {
			t.Fatalf("dropping submissions.%s: %v", col, err)
		}
	}
	db.Close()

	s = open(t, sqlite.Options{Path: path})
	err := s.View(ctx, func(tx storage.ReadTx) error {
		if _, err := tx.Submission("s2"); err == nil {
			t.Errorf("Submission read a row whose sealed columns were dropped: the test proves nothing")
		}
		got, err := list(tx, storage.SubmissionFilter{After: -1})
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("ListSubmissions without the sealed columns = %+v, %v; want %+v", got, err, want)
		}
		for _, tc := range []struct {
			f    storage.SubmissionFilter
			want string
		}{
			{storage.SubmissionFilter{After: -1, Communes: []string{"C00001", "C2"}}, "s1 s2 s3"},
			{storage.SubmissionFilter{After: -1, Current: true, Depositor: "enumerator-07", Limit: 5}, "s2 s3"},
		} {
			if got, err := list(tx, tc.f); err != nil || ids(got) != tc.want {
				t.Errorf("ListSubmissions(%+v) without the sealed columns = %q, %v; want %s", tc.f, ids(got), err, tc.want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
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
