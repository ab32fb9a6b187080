package main_test

// Flags that mean danger never come from the environment: a variable left
// in a shell, a unit file or a CI job would otherwise confirm a shred,
// turn every grant into a deny or prune the audit log without anyone
// typing it. Each test is the attack, run against the real binary.

import (
	"bytes"
	"strings"
	"testing"
)

// TestEnvConfirmDoesNotShred: CENSUSVAULT_CONFIRM holding the right area
// code does not stand in for --confirm; nothing is shredded.
func TestEnvConfirmDoesNotShred(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	depositOne(t, dir, addUser(t, dir, "lan", "enumerator", "18070-01"), 1)
	before := storedWrapped(t, dir)
	statusBefore := statusRows(mustCV(t, "keys", "status", "--data", dir).stdout)

	r := cvEnv(t, []string{"CENSUSVAULT_CONFIRM=18070", "CENSUSVAULT_DATA=" + dir},
		"keys", "shred", "--class", "identifying", "--area", "18070")
	if r.code != 2 || !strings.Contains(r.stderr, "repeat the area with --confirm 18070") {
		t.Errorf("keys shred with CENSUSVAULT_CONFIRM=18070: want exit 2 asking for --confirm, got\n%s", r)
	}
	if !strings.Contains(r.stderr, "CENSUSVAULT_CONFIRM is ignored: --confirm is taken only from the command line") {
		t.Errorf("keys shred does not say CENSUSVAULT_CONFIRM was ignored:\n%s", r)
	}
	if strings.Contains(r.stdout, "shredded") {
		t.Errorf("keys shred reports a shred:\n%s", r)
	}
	after := storedWrapped(t, dir)
	if len(after) != len(before) {
		t.Fatalf("wrapped keys: %d before, %d after the refused shred", len(before), len(after))
	}
	for name, w := range before {
		if !bytes.Equal(after[name], w) {
			t.Errorf("%s changed by a shred confirmed from the environment", name)
		}
	}
	if got := statusRows(mustCV(t, "keys", "status", "--data", dir).stdout); strings.Join(got, ";") != strings.Join(statusBefore, ";") {
		t.Errorf("data keys after the refused shred: %q, want %q", got, statusBefore)
	}
	// Typed, the same shred goes through: the refusal above was the
	// environment's, not something else.
	if r := mustCV(t, "keys", "shred", "--class", "identifying", "--area", "18070", "--confirm", "18070", "--data", dir); !strings.Contains(r.stdout, "shredded 1 identifying") {
		t.Errorf("typed shred:\n%s", r)
	}
}

// TestEnvConfirmDoesNotPrune: the same for audit prune's --confirm.
func TestEnvConfirmDoesNotPrune(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	addUser(t, dir, "lan", "enumerator", "18070-01")
	r := cvEnv(t, []string{"CENSUSVAULT_CONFIRM=2"}, "audit", "prune", "--before-index", "2", "--data", dir)
	if r.code != 2 || !strings.Contains(r.stderr, "would remove") || !strings.Contains(r.stderr, "CENSUSVAULT_CONFIRM is ignored") {
		t.Errorf("audit prune with CENSUSVAULT_CONFIRM=2: want exit 2, nothing pruned, the variable named as ignored; got\n%s", r)
	}
	if r := mustCV(t, "audit", "verify", "--data", dir); !strings.Contains(r.stdout, " 0 pruned events") {
		t.Errorf("audit events were pruned on a confirmation from the environment:\n%s", r.stdout)
	}
}

// TestEnvDenyDoesNotDeny: CENSUSVAULT_DENY=true does not turn an allow
// grant into a deny.
func TestEnvDenyDoesNotDeny(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	addUser(t, dir, "lan", "enumerator", "18070-01")
	r := cvEnv(t, []string{"CENSUSVAULT_DENY=true"}, "user", "grant", "lan", "--role", "steering", "--area", "18070", "--data", dir)
	if r.code != 0 || !strings.Contains(r.stderr, "CENSUSVAULT_DENY is ignored: --deny is taken only from the command line") {
		t.Errorf("user grant with CENSUSVAULT_DENY=true: want exit 0 and a warning naming the variable, got\n%s", r)
	}
	show := mustCV(t, "user", "show", "lan", "--data", dir).stdout
	if !strings.Contains(show, "allow steering at 18070\n") || strings.Contains(show, "deny steering") {
		t.Errorf("user grant with CENSUSVAULT_DENY=true made a deny (or no allow):\n%s", show)
	}
	// A value the flag could not even parse is not an error either: it is
	// not read at all.
	r = cvEnv(t, []string{"CENSUSVAULT_DENY=perhaps"}, "user", "grant", "lan", "--role", "steering", "--area", "18070-02", "--data", dir)
	if r.code != 0 || !strings.Contains(r.stderr, "CENSUSVAULT_DENY is ignored") || strings.Contains(r.stderr, "perhaps") {
		t.Errorf("user grant with CENSUSVAULT_DENY=perhaps: want exit 0 and a warning that does not echo the value, got\n%s", r)
	}
}
