package main_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A token is stolen while the key provider is down (HashiCorp Vault
// sealed; here every age identity file gone): the operator must still be
// able to lock it out, and the running server must refuse it at once.
func TestRevokeWhileKeyProviderUnavailable(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	tok := addUser(t, dir, "tl", "team_leader", "18070")
	s := startServer(t, dir)
	if st, body := s.do(t, http.MethodGet, "/v1/progress?area=18070", tok, nil); st != http.StatusOK {
		t.Fatalf("before revocation: %d %s", st, body)
	}

	// The outage: no key provider. The running server keeps the keys it
	// holds; a command that needs them fails.
	ids, err := filepath.Glob(filepath.Join(dir, "keyprovider*.age"))
	if err != nil || len(ids) == 0 {
		t.Fatalf("no age identity files in %s (%v)", dir, err)
	}
	away := t.TempDir()
	for _, f := range ids {
		if err := os.Rename(f, filepath.Join(away, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	if r := cv(t, "user", "add", "other", "--role", "enumerator", "--area", "18070-01", "--data", dir); r.code == 0 {
		t.Fatalf("user add worked without a key provider: the test simulates no outage\n%s", r)
	}

	if r := cv(t, "user", "revoke", "tl", "--data", dir); r.code != 0 {
		t.Fatalf("user revoke during a key-provider outage:\n%s", r)
	}
	if st, body := s.do(t, http.MethodGet, "/v1/progress?area=18070", tok, nil); st != http.StatusUnauthorized {
		t.Errorf("the revoked token still works: %d %s", st, body)
	}
	s.stop(t)

	// The revocation is in the audit log (verified once keys are back).
	for _, f := range ids {
		if err := os.Rename(filepath.Join(away, filepath.Base(f)), f); err != nil {
			t.Fatal(err)
		}
	}
	mustCV(t, "audit", "verify", "--data", dir)
	db := openDB(t, dir)
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM audit_events WHERE CAST(event AS TEXT) LIKE '%"action":"user.revoke"%' AND CAST(event AS TEXT) LIKE '%"user:tl"%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d user.revoke events for tl, want 1", n)
	}
}

// Adding a user under a revoked user's name is refused with a clear next
// step, not a raw database error, and the old token stays dead.
func TestReAddRevokedName(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	old := addUser(t, dir, "lan", "enumerator", "18070-01")
	mustCV(t, "user", "revoke", "lan", "--data", dir)
	r := cv(t, "user", "add", "lan", "--role", "enumerator", "--area", "18070-01", "--data", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "revoked") || !strings.Contains(r.stderr, "new name") ||
		strings.Contains(strings.ToLower(r.stderr), "sqlite") || strings.Contains(r.stderr, "UNIQUE") {
		t.Errorf("re-adding a revoked name:\n%s\nwant exit 1 saying it was revoked and to use a new name, no database error", r)
	}
	r = cv(t, "user", "add", "lan-2", "--role", "enumerator", "--area", "18070-01", "--data", dir)
	if r.code != 0 {
		t.Fatalf("the suggested new name: %s", r)
	}
	s := startServer(t, dir)
	if st, _ := s.do(t, http.MethodGet, "/v1/progress?area=18070-01", old, nil); st != http.StatusUnauthorized {
		t.Errorf("the revoked token: %d, want 401", st)
	}
	if st, body := s.do(t, http.MethodGet, "/v1/progress?area=18070-01", strings.TrimSpace(r.stdout), nil); st != http.StatusOK {
		t.Errorf("the new user's token: %d %s", st, body)
	}

	// A live user's name: refused, pointing at user grant.
	addUser(t, dir, "minh", "enumerator", "18070-01")
	r = cv(t, "user", "add", "minh", "--role", "enumerator", "--area", "18070-02", "--data", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "user grant minh") || strings.Contains(r.stderr, "UNIQUE") {
		t.Errorf("re-adding a live name:\n%s", r)
	}
}
