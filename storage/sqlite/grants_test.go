package sqlite_test

import (
	"strings"
	"testing"

	"github.com/censusvault/censusvault/storage/sqlite"
	"github.com/censusvault/censusvault/storage/storagetest"
)

// grantTriggers are the triggers of schema version 9 that keep the grant
// log and the grant proposals.
var grantTriggers = []string{
	"grant_log_no_replace", "grant_log_no_update", "grant_log_no_delete",
	"grant_proposals_no_replace", "grant_proposals_confirm_only", "grant_proposals_no_delete",
}

// grantRefused are SQLite's own ways around the grant triggers: INSERT OR
// REPLACE (a delete that fires no delete trigger) and an upsert over a
// stored entry or proposal.
var grantRefused = []string{
	`INSERT OR REPLACE INTO grant_log(seq, audit_index, at, op, user_name, role, area, deny, project, model, policy, policy_hash)
		SELECT seq, audit_index, at, op, user_name, role || '-x', area, deny, project, model, policy, policy_hash FROM grant_log WHERE seq = 2`,
	`INSERT INTO grant_log(seq, audit_index, at, op, user_name, role, area, deny, project, model, policy, policy_hash)
		SELECT seq, audit_index, at, op, user_name, role, area, deny, project, model, policy, policy_hash FROM grant_log WHERE seq = 2
		ON CONFLICT (seq) DO UPDATE SET area = grant_log.area || '-x'`,
	`REPLACE INTO grant_proposals(seq, kind, user_name, role, area, deny, project, model, policy, reason,
			proposed_by, proposed_at, proposal_audit, confirmed_by, confirmed_at, confirm_audit)
		SELECT seq, kind, user_name, role || '-x', area, deny, project, model, policy, reason,
			proposed_by, proposed_at, proposal_audit, confirmed_by, confirmed_at, confirm_audit FROM grant_proposals WHERE seq = 2`,
	`INSERT INTO grant_proposals(seq, kind, user_name, role, area, deny, project, model, policy, reason,
			proposed_by, proposed_at, proposal_audit, confirmed_by, confirmed_at, confirm_audit)
		SELECT seq, kind, user_name, role, area, deny, project, model, policy, reason,
			proposed_by, proposed_at, proposal_audit, confirmed_by, confirmed_at, confirm_audit FROM grant_proposals WHERE seq = 2
		ON CONFLICT (seq) DO UPDATE SET confirmed_by = '', confirmed_at = '', confirm_audit = 0`,
}

// TestGrantGuards: the database refuses changes to the grant log and to
// grant proposals made behind the store's back, INSERT OR REPLACE and
// upserts over a stored row included, and lets a pending proposal be
// confirmed, until an operator drops the triggers.
func TestGrantGuards(t *testing.T) {
	s, exec := guarded(t)
	var drop []string
	for _, tr := range grantTriggers {
		drop = append(drop, "DROP TRIGGER "+tr)
	}
	storagetest.RunGrantGuards(t, s, storagetest.Raw{Exec: exec, Refused: grantRefused, DropGuards: drop})
}

// TestUpgradeFromV8: a database at schema version 8 with users and
// grants opens at version 9 with both kept and an empty grant log; the
// log, proposals, RemoveGrant and ReplaceToken then work, and the schema
// is that of a database made new.
func TestUpgradeFromV8(t *testing.T) {
	s, path := upgradeFrom(t, 8,
		`INSERT INTO users(name, token_hash, created_at, expires_at, revoked_at) VALUES
			('alice', '`+strings.Repeat("a", 64)+`', '2019-04-01T00:00:00Z', '', ''),
			('bob', '`+strings.Repeat("b", 64)+`', '2019-04-01T00:00:00Z', '', '2019-04-02T00:00:00Z')`,
		`INSERT INTO grants(user, role, area, deny, project) VALUES
			('alice', 'enumerator', 'E1', 1, ''), ('alice', 'auditor', 'VN', 0, '')`)
	storagetest.CheckUpgradeFromV8(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	sameSchemaAsNew(t, path)
}

// TestUsersPlan: a page of Users is a range of the users' primary key in
// its order, and its grants a range of grants' primary key, not a scan
// and sort of either table.
func TestUsersPlan(t *testing.T) {
	path := dbPath(t)
	open(t, sqlite.Options{Path: path, Create: true}).Close()
	db := peer(t, path)
	text := queryPlan(t, db, sqlite.UsersQuery, "alice", 256)
	if !strings.Contains(text, "SEARCH users USING INDEX sqlite_autoindex_users_1 (name>?)") ||
		strings.Contains(text, "SCAN users") || strings.Contains(text, "TEMP B-TREE") {
		t.Errorf("plan of Users:\n%s\nwant a range of the users' primary key in its order", text)
	}
	text = queryPlan(t, db, sqlite.PageGrantsQuery, "alice", "bob")
	if !strings.Contains(text, "SEARCH grants USING PRIMARY KEY (user>? AND user<?)") ||
		strings.Contains(text, "SCAN grants") || strings.Contains(text, "TEMP B-TREE") {
		t.Errorf("plan of Users' grants:\n%s\nwant a range of grants' primary key in its order", text)
	}
}
