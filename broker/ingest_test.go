package broker_test

import (
	"context"
	"errors"
	"testing"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
	"github.com/google/uuid"
)

// TestIngestSynthetic: a plaintext submission loaded by an operator is
// stored sealed (Open gives its values back), audited as the operator's
// deposit, idempotent, and refused when malformed or outside the tree.
func TestIngestSynthetic(t *testing.T) {
	kv := newKeyVault(t, keyVaultOpts{})
	ctx := context.Background()
	id := uuid.NewString()
	plain := household(id, ea(communeA, 1), 1)
	from := kv.auditHead()
	r, err := kv.b.IngestSynthetic(ctx, "cli:root", plain)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.SubmissionID) != id || r.Note == "" || r.Area != broker.AreaCode(ea(communeA, 1)) {
		t.Errorf("receipt = %+v", r)
	}
	o, err := kv.b.Open(ctx, broker.SubmissionID(id), crypto.Identifying, crypto.Analytic)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := o.Household["head_name"].Text(); got != wantHead {
		t.Errorf("head_name = %q, want %q", got, wantHead)
	}
	if len(o.Persons) != 2 {
		t.Errorf("%d persons, want 2", len(o.Persons))
	}
	if len(kv.sealed(broker.SubmissionID(id))) != 2 {
		t.Errorf("want 2 sealed classes")
	}
	evs := kv.events(from, string(policy.Deposit))
	if len(evs) != 1 {
		t.Fatalf("%d deposit events, want 1", len(evs))
	}
	ev := evs[0]
	if ev.Actor != "cli:root" || ev.Decision != "allow" || ev.Rule != broker.SyntheticRule || ev.Outcome != "ok" || ev.Area != ea(communeA, 1) {
		t.Errorf("event = %+v", ev)
	}

	again, err := kv.b.IngestSynthetic(ctx, "cli:root", plain)
	if err != nil {
		t.Fatal(err)
	}
	if *again != *r {
		t.Errorf("second receipt %+v differs from first %+v", again, r)
	}
	if d := kv.deposited(); d[communeA] != 1 {
		t.Errorf("deposited in %s = %d, want 1", communeA, d[communeA])
	}

	for _, tc := range []struct {
		name  string
		plain []byte
	}{
		{"not JSON", []byte("{not json")},
		{"unknown area", household(uuid.NewString(), "99999-01", 1)},
		{"commune is not an EA", household(uuid.NewString(), communeA, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := kv.auditHead()
			_, err := kv.b.IngestSynthetic(ctx, "cli:root", tc.plain)
			var be *broker.Error
			if !errors.As(err, &be) || be.Kind != broker.Invalid {
				t.Fatalf("err = %v, want Invalid", err)
			}
			evs := kv.events(before, string(policy.Deposit))
			if len(evs) != 1 || evs[0].Outcome != "invalid" || evs[0].Actor != "cli:root" {
				t.Errorf("refusal events = %+v", evs)
			}
		})
	}
	if _, err := kv.b.IngestSynthetic(ctx, "", plain); err == nil {
		t.Error("empty actor accepted")
	}
}
