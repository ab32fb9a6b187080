package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/postgres"
	"github.com/censusvault/censusvault/storage/postgres/pgtest"
	"github.com/censusvault/censusvault/storage/storagetest"
)

// grantDropGuards are the statements that remove the triggers of schema
// version 9 that keep the grant log and the grant proposals.
var grantDropGuards = []string{
	"DROP TRIGGER grant_log_no_update ON grant_log",
	"DROP TRIGGER grant_log_no_delete ON grant_log",
	"DROP TRIGGER grant_log_no_truncate ON grant_log",
	"DROP TRIGGER grant_proposals_confirm_only ON grant_proposals",
	"DROP TRIGGER grant_proposals_no_delete ON grant_proposals",
	"DROP TRIGGER grant_proposals_no_truncate ON grant_proposals",
}

// grantRefused are PostgreSQL's own ways around the grant triggers: an
// upsert's UPDATE over a stored row, and TRUNCATE, which fires no delete
// trigger.
var grantRefused = []string{
	`INSERT INTO grant_log(seq, audit_index, at, op, user_name, role, area, deny, project, model, policy, policy_hash)
		SELECT seq, audit_index, at, op, user_name, role, area, deny, project, model, policy, policy_hash FROM grant_log WHERE seq = 2
		ON CONFLICT (seq) DO UPDATE SET role = grant_log.role || '-x'`,
	`INSERT INTO grant_proposals(seq, kind, user_name, role, area, deny, project, model, policy, reason,
			proposed_by, proposed_at, proposal_audit, confirmed_by, confirmed_at, confirm_audit)
		SELECT seq, kind, user_name, role, area, deny, project, model, policy, reason,
			proposed_by, proposed_at, proposal_audit, confirmed_by, confirmed_at, confirm_audit FROM grant_proposals WHERE seq = 2
		ON CONFLICT (seq) DO UPDATE SET confirmed_by = '', confirmed_at = '', confirm_audit = 0`,
	`TRUNCATE grant_log`,
	`TRUNCATE grant_proposals`,
}

// TestGrantGuards: the database refuses changes to the grant log and to
// grant proposals made behind the store's back, an upsert's UPDATE and
// TRUNCATE included, and lets a pending proposal be confirmed, until an
// operator drops the triggers.
func TestGrantGuards(t *testing.T) {
	s, exec := guarded(t)
	storagetest.RunGrantGuards(t, s, storagetest.Raw{Exec: exec, Refused: grantRefused, DropGuards: grantDropGuards})
}

// TestUpgradeFromV8: a database at schema version 8 with users and
// grants migrates to version 9 with both kept and an empty grant log;
// the log, proposals, RemoveGrant and ReplaceToken then work.
func TestUpgradeFromV8(t *testing.T) {
	s, _ := upgradeFrom(t, 8, `
		INSERT INTO users(name, token_hash, created_at, expires_at, revoked_at) VALUES
			('alice', '`+strings.Repeat("a", 64)+`', '2019-04-01T00:00:00Z', '', ''),
			('bob', '`+strings.Repeat("b", 64)+`', '2019-04-01T00:00:00Z', '', '2019-04-02T00:00:00Z');
		INSERT INTO grants("user", role, area, deny, project) VALUES
			('alice', 'enumerator', 'E1', true, ''), ('alice', 'auditor', 'VN', false, '')`)
	storagetest.CheckUpgradeFromV8(t, s)
}

// TestUsersByteOrder: on a database whose users.name sorts by an English
// collation (lower and upper case together, accents beside their letter),
// Users still lists in byte order, the order of the grants and of
// SQLite, across pages and after a name; and a page is a range of
// users_name_bytes stopped by its LIMIT, its grants a range of grants'
// primary key (not a scan of the table), custom plan or generic.
func TestUsersByteOrder(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	if _, _, err := postgres.Migrate(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	sql(t, dsn, `ALTER TABLE users ALTER COLUMN name TYPE TEXT COLLATE "en-x-icu"`)
	s := open(t, postgres.Options{DSN: dsn, MaxConns: 2})
	names := []string{"Zed", "alice", "Ánh", "bob", "ông", "đức", "a-b", "aa", "Bob"}
	for i := range 300 {
		names = append(names, fmt.Sprintf("u%03d", i))
	}
	if err := s.Update(ctx, func(tx storage.Tx) error {
		var err error
		for i, n := range names {
			err = errors.Join(err, tx.InsertUser(&storage.User{Name: n, TokenHash: fmt.Sprintf("%064x", i),
				Grants: []storage.Grant{{Role: "enumerator", Area: "E" + n}}}))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	list := func(after string) []string {
		var got []string
		if err := s.View(ctx, func(tx storage.ReadTx) error {
			got = nil
			return tx.Users(after, 0, func(u storage.User) (bool, error) {
				if len(u.Grants) != 1 || u.Grants[0].Area != "E"+u.Name {
					return false, fmt.Errorf("user %q has grants %v", u.Name, u.Grants)
				}
				got = append(got, u.Name)
				return true, nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := list(""); !slices.Equal(got, sorted) {
		t.Errorf("Users under an English collation = %q…, want byte order %q…", got[:9], sorted[:9])
	}
	if got := list("Zed"); !slices.Equal(got, sorted[slices.Index(sorted, "Zed")+1:]) {
		t.Errorf("Users after Zed under an English collation = %q…, want %q…", got[:5], sorted[slices.Index(sorted, "Zed")+1:][:5])
	}

	sql(t, dsn, `INSERT INTO users(name, token_hash, created_at, expires_at, revoked_at)
			SELECT 'v' || i, md5(i::text), '', '', '' FROM generate_series(1, 20000) i;
		INSERT INTO grants("user", role, area, deny) SELECT 'v' || i, 'enumerator', 'E1', false FROM generate_series(1, 20000) i;
		ANALYZE users;
		ANALYZE grants`)
	c := conn(t, dsn)
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		if _, err := c.Exec(ctx, `SET plan_cache_mode = `+mode); err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(explainPrepared(t, c, postgres.UsersQuery, `'v5000', 256`), "\n")
		if !strings.HasPrefix(plan, "Limit") || !strings.Contains(plan, "Index Scan using users_name_bytes on users") ||
			strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "->  Sort ") {
			t.Errorf("plan of Users with %s:\n%s\nwant a Limit over a range of users_name_bytes", mode, plan)
		}
		plan = strings.Join(explainPrepared(t, c, postgres.PageGrantsQuery, `'v5000', 'v5200'`), "\n")
		// The planner may sort the page's grants (a few hundred rows)
		// rather than walk the index in order; either reads only them.
		if !strings.Contains(plan, "on grants_pkey") || strings.Contains(plan, "Seq Scan") {
			t.Errorf("plan of Users' grants with %s:\n%s\nwant a range of grants_pkey", mode, plan)
		}
	}
}
