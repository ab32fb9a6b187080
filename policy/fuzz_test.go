package policy_test

import (
	"bytes"
	"testing"

	"github.com/censusvault/censusvault/policy"
)

// FuzzPolicy checks that any policy text New accepts has a canonical form
// that New accepts again with the same hash: the canonical text is a fixed
// point, so the audit log's policy hash cannot drift between a policy and
// its own normalization.
func FuzzPolicy(f *testing.F) {
	f.Add([]byte(policy.DefaultPolicy()))
	f.Fuzz(func(t *testing.T, text []byte) {
		e, err := policy.New(policy.Options{Policy: string(text)})
		if err != nil {
			return
		}
		canon := e.Canonical()
		i := bytes.Index(canon, []byte("\n[policy]\n"))
		if i < 0 {
			t.Fatalf("canonical text has no policy section:\n%s", canon)
		}
		again, err := policy.New(policy.Options{Policy: string(canon[i+len("\n[policy]\n"):])})
		if err != nil {
			t.Fatalf("canonical policy rejected: %v\n%s", err, canon)
		}
		if again.Hash() != e.Hash() {
			t.Fatalf("hash changed after canonicalization:\n%s\nvs\n%s", canon, again.Canonical())
		}
	})
}
