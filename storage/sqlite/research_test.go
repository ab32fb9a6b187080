package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/sqlite"
)

// TestUpgradeFromV3: a database made by the first three schema steps (the
// release before research tables) opens at the current version with its
// users, grants and submissions intact: old grants hold for every request
// (Project ""), the same (role, area, deny) can then be granted for a
// project, grants still reference users, users have no recipient until
// one is set, and submissions read back in audit order. The upgraded
// schema is exactly that of a database made new.
func TestUpgradeFromV3(t *testing.T) {
	s, path := upgradeFrom(t, 3,
		`INSERT INTO meta(key, value) VALUES ('policy_sha256', 'abc')`,
		`INSERT INTO users(name, token_hash, created_at, expires_at, revoked_at) VALUES
			('alice', 'hash-a', '2019-04-01T09:30:00Z', '', ''), ('bob', 'hash-b', '2019-04-01T09:30:00Z', '', '')`,
		`INSERT INTO grants(user, role, area, deny) VALUES
			('alice', 'researcher', 'P01', 0), ('alice', 'researcher', 'P01', 1), ('bob', 'admin', 'VN', 0)`,
		`INSERT INTO submissions(id, area, commune, household_no, form, form_version, interviewed_at, received_at,
			depositor, payload_sha256, supersedes, superseded_by, ident_kv, ident, analytic_kv, analytic, audit_index, receipt) VALUES
			('s1', 'E1', 'C1', 1, 'household', 1, '', '', 'e', 'x', '', 's2', 1, X'01', 1, X'02', 0, X'00'),
			('s2', 'E1', 'C1', 1, 'household', 2, '', '', 'e', 'y', 's1', NULL, 1, X'03', NULL, NULL, 1, X'00')`,
	)
	ctx := context.Background()
	readAlice := func() *storage.User {
		t.Helper()
		var u *storage.User
		if err := s.View(ctx, func(tx storage.ReadTx) (err error) { u, err = tx.User("alice"); return err }); err != nil {
			t.Fatal(err)
		}
		return u
	}
	err := s.View(ctx, func(tx storage.ReadTx) error {
		var got []string
		if err := tx.Grants(func(u string, g storage.Grant) error {
			got = append(got, fmt.Sprintf("%s %+v", u, g))
			return nil
		}); err != nil {
			return err
		}
		want := []string{
			"alice {Role:researcher Area:P01 Deny:false Project:}",
			"alice {Role:researcher Area:P01 Deny:true Project:}",
			"bob {Role:admin Area:VN Deny:false Project:}",
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Grants after the upgrade = %q, want %q", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if u := readAlice(); u.Recipient != "" || len(u.Grants) != 2 {
		t.Errorf("User(alice) after the upgrade = %+v; want 2 grants and no recipient", u)
	}

	err = s.Update(ctx, func(tx storage.Tx) error { return tx.AddGrant("alice", storage.Grant{Role: "researcher", Area: "P01"}) })
	if !errors.Is(err, storage.ErrConflict) {
		t.Errorf("AddGrant of an upgraded grant: err = %v, want ErrConflict", err)
	}
	// The rebuilt table still references users.
	err = s.Update(ctx, func(tx storage.Tx) error {
		return tx.AddGrant("nobody", storage.Grant{Role: "researcher", Area: "P01"})
	})
	if err == nil {
		t.Error("AddGrant for an unknown user succeeded on the upgraded database: grants lost its foreign key")
	}
	if err := s.Update(ctx, func(tx storage.Tx) error {
		return errors.Join(tx.AddGrant("alice", storage.Grant{Role: "researcher", Area: "P01", Project: "p-1"}),
			tx.SetRecipient("alice", "age1x"))
	}); err != nil {
		t.Fatalf("AddGrant of a project grant beside an upgraded one: %v", err)
	}
	want := []storage.Grant{
		{Role: "researcher", Area: "P01"},
		{Role: "researcher", Area: "P01", Project: "p-1"},
		{Role: "researcher", Area: "P01", Deny: true},
	}
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
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	sameSchemaAsNew(t, path)
}

// TestSubmissionsSincePlan: a page of SubmissionsSince is a range of
// submissions_audit_index, in the index's order (no sort of the table),
// and the predecessor a primary key lookup.
func TestSubmissionsSincePlan(t *testing.T) {
	path := dbPath(t)
	open(t, sqlite.Options{Path: path, Create: true}).Close()
	db := peer(t, path)
	for class, q := range sqlite.SinceQueries {
		text := queryPlan(t, db, q, 5, 9, 1000)
		if !strings.Contains(text, "SEARCH s USING INDEX submissions_audit_index (audit_index>?)") ||
			!strings.Contains(text, "SEARCH p USING INDEX sqlite_autoindex_submissions_1 (id=?)") ||
			strings.Contains(text, "SCAN") || strings.Contains(text, "TEMP B-TREE") {
			t.Errorf("plan of SubmissionsSince(%s):\n%s\nwant a range of submissions_audit_index in its order", class, text)
		}
	}
}
