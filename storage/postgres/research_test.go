package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/postgres"
	"github.com/censusvault/censusvault/storage/postgres/pgtest"
	"github.com/jackc/pgx/v5"
)

// TestUpgradeFromV3: a database at schema version 3 (migrations 1–3, as
// the release before research tables made it) migrates to version 4 with
// its users, grants and submissions intact: old grants hold for every
// request (Project ""), the same (role, area, deny) can then be granted
// for a project, users have no recipient until one is set, and the
// submissions read back in audit order.
func TestUpgradeFromV3(t *testing.T) {
	ctx := context.Background()
	dsn := oldDatabase(t, 3, `
		INSERT INTO users(name, token_hash, created_at, expires_at, revoked_at) VALUES
			('alice', 'hash-a', '2019-04-01T09:30:00Z', '', ''),
			('bob', 'hash-b', '2019-04-01T09:30:00Z', '', '');
		INSERT INTO grants("user", role, area, deny) VALUES
			('alice', 'researcher', 'P01', false), ('alice', 'researcher', 'P01', true), ('bob', 'admin', 'VN', false);
		INSERT INTO submissions(id, area, commune, household_no, form, form_version, interviewed_at, received_at,
			depositor, payload_sha256, supersedes, superseded_by, ident_kv, ident, analytic_kv, analytic, audit_index, receipt) VALUES
			('s1', 'E1', 'C1', 1, 'household', 1, '', '', 'e', 'x', '', 's2', 1, '\x01', 1, '\x02', 0, '\x00'),
			('s2', 'E1', 'C1', 1, 'household', 2, '', '', 'e', 'y', 's1', NULL, 1, '\x03', NULL, NULL, 1, '\x00')`)

	migrateFrom(t, dsn, 3)
	c := conn(t, dsn)
	var collation, index string
	if err := c.QueryRow(ctx, `SELECT coalesce(collation_name, '-') FROM information_schema.columns
		WHERE table_name = 'grants' AND column_name = 'project'`).Scan(&collation); err != nil || collation != "C" {
		t.Errorf("grants.project collation = %q, %v; want byte order (C), as the other columns of grants", collation, err)
	}
	if err := c.QueryRow(ctx, `SELECT indexdef FROM pg_indexes WHERE tablename = 'submissions' AND indexname = 'submissions_audit_index'`).
		Scan(&index); err != nil || !strings.HasSuffix(index, "(audit_index)") {
		t.Errorf("index submissions_audit_index = %q, %v; want one on submissions(audit_index)", index, err)
	}

	s := open(t, postgres.Options{DSN: dsn, MaxConns: 2})
	readAlice := func() *storage.User {
		t.Helper()
		var u *storage.User
		if err := s.View(ctx, func(tx storage.ReadTx) (err error) { u, err = tx.User("alice"); return err }); err != nil {
			t.Fatal(err)
		}
		return u
	}
	want := []storage.Grant{{Role: "researcher", Area: "P01"}, {Role: "researcher", Area: "P01", Deny: true}}
	if u := readAlice(); fmt.Sprint(u.Grants) != fmt.Sprint(want) || u.Recipient != "" {
		t.Errorf("User(alice) after the upgrade: grants %v, recipient %q; want %v and none", u.Grants, u.Recipient, want)
	}
	err := s.Update(ctx, func(tx storage.Tx) error { return tx.AddGrant("alice", storage.Grant{Role: "researcher", Area: "P01"}) })
	if !errors.Is(err, storage.ErrConflict) {
		t.Errorf("AddGrant of an upgraded grant: err = %v, want ErrConflict", err)
	}
	if err := s.Update(ctx, func(tx storage.Tx) error {
		return errors.Join(tx.AddGrant("alice", storage.Grant{Role: "researcher", Area: "P01", Project: "p-1"}),
			tx.SetRecipient("alice", "age1x"))
	}); err != nil {
		t.Fatalf("AddGrant of a project grant beside an upgraded one: %v", err)
	}
	want = []storage.Grant{want[0], {Role: "researcher", Area: "P01", Project: "p-1"}, want[1]}
	if u := readAlice(); fmt.Sprint(u.Grants) != fmt.Sprint(want) || u.Recipient != "age1x" {
		t.Errorf("User(alice) after AddGrant and SetRecipient: grants %v, recipient %q; want %v and age1x", u.Grants, u.Recipient, want)
	}

	var rows []storage.SubmissionRow
	if err := s.View(ctx, func(tx storage.ReadTx) error {
		return tx.SubmissionsSince(-1, "analytic", func(r storage.SubmissionRow) (bool, error) {
			rows = append(rows, r)
			return true, nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].ID != "s1" || rows[0].SupersedesIndex != -1 || string(rows[0].Sealed.Data) != "\x02" ||
		rows[1].ID != "s2" || rows[1].SupersedesIndex != 0 || len(rows[1].Sealed.Data) != 0 {
		t.Errorf("SubmissionsSince after the upgrade = %+v", rows)
	}
}

// TestSubmissionsSincePlan: on a table of many submissions, a page of
// SubmissionsSince is a range of submissions_audit_index stopped by its
// LIMIT, not a scan and sort of the whole table; the predecessor is a
// primary key lookup.
func TestSubmissionsSincePlan(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	if _, _, err := postgres.Migrate(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	sql(t, dsn, `INSERT INTO submissions(id, area, commune, household_no, form, form_version, interviewed_at, received_at,
			depositor, payload_sha256, supersedes, ident_kv, ident, analytic_kv, analytic, audit_index, receipt)
		SELECT 'id-' || i, 'E1', 'C1', i, 'household', 1, '', '', 'e', 'x',
			CASE WHEN i % 10 = 0 THEN 'id-' || (i - 1) ELSE '' END, 1, '\x00', 1, '\x01', i, '\x02'
		FROM generate_series(1, 50000) i;
		ANALYZE submissions`)
	c := conn(t, dsn)
	for class, q := range postgres.SinceQueries {
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			if _, err := c.Exec(ctx, `SET plan_cache_mode = `+mode); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]any{{int64(-1), nil, 1000}, {int64(25000), "id-25000", 1000}} {
				rows, err := c.Query(ctx, `EXPLAIN `+q, args...)
				if err != nil {
					t.Fatal(err)
				}
				lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					t.Fatal(err)
				}
				plan := strings.Join(lines, "\n")
				if !strings.HasPrefix(lines[0], "Limit") || !strings.Contains(plan, "Index Scan using submissions_audit_index on submissions s") ||
					!strings.Contains(plan, "Index Scan using submissions_pkey on submissions p") ||
					strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "->  Sort ") {
					t.Errorf("plan of SubmissionsSince(%v, %s) with %s:\n%s\nwant a Limit over a range of submissions_audit_index", args[:2], class, mode, plan)
				}
			}
		}
	}
}
