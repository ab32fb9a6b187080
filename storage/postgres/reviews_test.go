package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/postgres"
	"github.com/censusvault/censusvault/storage/postgres/pgtest"
	"github.com/censusvault/censusvault/storage/storagetest"
	"github.com/jackc/pgx/v5"
)

// TestUpgradeFromV7: a database at schema version 7 with an audit record
// and submissions migrates to version 8 with both kept and no record
// opens; the submissions list, and opens can then be recorded, counted
// and pruned.
func TestUpgradeFromV7(t *testing.T) {
	s, _ := upgradeFrom(t, 7, `
		INSERT INTO audit_events(idx, event, leaf_hash, chain_hash) VALUES (0, '\x7b7d', decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'));
		UPDATE audit_head SET next = 1 WHERE id = 1;
		INSERT INTO submissions(id, area, commune, household_no, form, form_version, interviewed_at, received_at,
			depositor, payload_sha256, supersedes, superseded_by, ident_kv, ident, analytic_kv, analytic, audit_index, receipt) VALUES
			('s1', 'E1', 'C1', 1, 'household', 1, '2019-04-01T09:30:00Z', '2019-04-01T10:00:00.5Z', 'e', 'x', '', 's2', 1, '\x01', 1, '\x02', 0, '\x00'),
			('s2', 'E1', 'C1', 1, 'household', 2, '', '', 'f', 'y', 's1', NULL, 1, '\x03', NULL, NULL, 1, '\x00')`)
	storagetest.CheckUpgradeFromV7(t, s)
}

// TestListSubmissionsReadsNoSealedPart: ListSubmissions lists a vault
// whose submissions have lost every column a review list must not read
// (the sealed parts, the operational fields, the receipt and the payload
// digest): it never reads them. Reading a whole submission on the same
// database fails, which shows the columns are gone.
func TestListSubmissionsReadsNoSealedPart(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	s := open(t, postgres.Options{DSN: dsn, MaxConns: 2})
	if err := s.Update(ctx, func(tx storage.Tx) error {
		return errors.Join(deposit("s1", "E1", 1)(tx), deposit("s2", "E1", 2)(tx), deposit("s3", "E1", 3)(tx))
	}); err != nil {
		t.Fatal(err)
	}
	storagetest.CheckListReadsNoSealedPart(t, s, func() storage.Store {
		sql(t, dsn, `ALTER TABLE submissions DROP COLUMN ident_kv, DROP COLUMN ident, DROP COLUMN analytic_kv,
		DROP COLUMN analytic, DROP COLUMN operational, DROP COLUMN receipt, DROP COLUMN payload_sha256`)
		return open(t, postgres.Options{DSN: dsn, MaxConns: 2})
	})
}

// explainPrepared prepares q and returns the plan of its execution with
// args (SQL literals), one step a line: under plan_cache_mode
// force_generic_plan it is the generic plan a reused statement gets.
func explainPrepared(t *testing.T, c *pgx.Conn, q, args string) []string {
	t.Helper()
	ctx := context.Background()
	if _, err := c.Exec(ctx, `PREPARE planned AS `+q); err != nil {
		t.Fatal(err)
	}
	defer c.Exec(ctx, `DEALLOCATE planned`)
	rows, err := c.Query(ctx, `EXPLAIN EXECUTE planned(`+args+`)`)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// TestListSubmissionsPlan: on a table of many submissions, a page of
// ListSubmissions is a range of submissions_audit_index stopped by its
// LIMIT, not a scan and sort of the whole table, with or without
// communes, custom plan or generic; OpensSince is a range of
// record_opens_user_at.
func TestListSubmissionsPlan(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	if _, _, err := postgres.Migrate(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	sql(t, dsn, `INSERT INTO submissions(id, area, commune, household_no, form, form_version, interviewed_at, received_at,
			depositor, payload_sha256, supersedes, superseded_by, ident_kv, ident, analytic_kv, analytic, audit_index, receipt)
		SELECT 'id-' || i, 'E' || (i % 400), 'C' || (i % 100), i, 'household', 1, '', '', 'e' || (i % 7), 'x',
			CASE WHEN i % 10 = 0 THEN 'id-' || (i - 1) ELSE '' END,
			CASE WHEN i % 10 = 9 THEN 'id-' || (i + 1) END, 1, '\x00', 1, '\x01', i, '\x02'
		FROM generate_series(1, 50000) i;
		INSERT INTO record_opens(user_name, submission, at)
		SELECT 'user-' || (i % 500), 'id-' || i, i::bigint * 1000000000 FROM generate_series(1, 50000) i;
		ANALYZE submissions;
		ANALYZE record_opens`)
	c := conn(t, dsn)
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		if _, err := c.Exec(ctx, `SET plan_cache_mode = `+mode); err != nil {
			t.Fatal(err)
		}
		for i, q := range postgres.ListQueries {
			for _, args := range []string{`-1, NULL, '', false, 1000`, `25000, 'id-25000', 'e3', true, 100`} {
				if i == 1 {
					args += `, '{C1,C7,C42}'`
				}
				lines := explainPrepared(t, c, q, args)
				plan := strings.Join(lines, "\n")
				if !strings.HasPrefix(lines[0], "Limit") || !strings.Contains(plan, "Index Scan using submissions_audit_index on submissions") ||
					strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "->  Sort ") {
					t.Errorf("plan of ListSubmissions (query %d) (%s) with %s:\n%s\nwant a Limit over a range of submissions_audit_index", i, args, mode, plan)
				}
			}
		}
		plan := strings.Join(explainPrepared(t, c, postgres.OpensSinceQuery, `'user-7', 49000000000000`), "\n")
		if !strings.Contains(plan, "using record_opens_user_at on record_opens") && !strings.Contains(plan, "on record_opens_user_at") ||
			strings.Contains(plan, "Seq Scan") {
			t.Errorf("plan of OpensSince with %s:\n%s\nwant a range of record_opens_user_at", mode, plan)
		}
	}
}

// TestReviewGuards: the database refuses changes to stored reviews made
// behind the store's back, TRUNCATE (which fires no delete trigger) and
// an upsert's UPDATE included, until an operator drops the triggers.
func TestReviewGuards(t *testing.T) {
	s, exec := guarded(t)
	storagetest.RunReviewGuards(t, s, storagetest.Raw{
		Exec: exec,
		Refused: []string{
			`INSERT INTO reviews(audit_index, submission, status, reason, note, reviewer, at)
				SELECT audit_index, submission, status, reason, note, reviewer, at FROM reviews WHERE audit_index = 11
				ON CONFLICT (audit_index) DO UPDATE SET status = 'rejected'`,
			`TRUNCATE reviews`,
		},
		DropGuards: []string{
			"DROP TRIGGER reviews_no_update ON reviews",
			"DROP TRIGGER reviews_no_delete ON reviews",
			"DROP TRIGGER reviews_no_truncate ON reviews",
		},
	})
}
