package broker_test

import (
	"context"
	"fmt"
	"testing"

	"filippo.io/age"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
)

// BenchmarkImportUsers10k imports 10,000 enumerators in one request, as
// a provincial field office would (the acceptance asks under 10 s): each
// op is one whole import — validation, 10,000 users, tokens, audit
// events and grant log entries in one transaction, and the tokens
// age-encrypted to the office. Run with -benchtime=3x.
func BenchmarkImportUsers10k(b *testing.B) {
	kv := newKeyVault(b, keyVaultOpts{})
	office, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	tok, err := kv.b.AddUser(context.Background(), actor, broker.NewUser{Name: "admin-1", Role: policy.Admin, Area: keyNation})
	if err != nil {
		b.Fatal(err)
	}
	kv.tokens["admin-1"] = tok.Reveal()
	if err := kv.b.SetTokenRecipient(context.Background(), broker.HostOperator(actor), office.Recipient().String()); err != nil {
		b.Fatal(err)
	}
	op := broker.APIOperator(kv.caller("admin-1"))
	eas := []string{ea(communeA, 1), ea(communeA, 2), ea(communeB, 1), ea(communeB, 2)}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		rows := make([]broker.NewUser, 10_000)
		for j := range rows {
			rows[j] = broker.NewUser{Name: broker.UserID(fmt.Sprintf("e%d-%05d", i, j)), Role: policy.Enumerator, Area: broker.AreaCode(eas[j%len(eas)])}
		}
		b.StartTimer()
		res, err := kv.b.ImportUsers(context.Background(), op, rows, office.Recipient().String())
		if err != nil {
			b.Fatal(err)
		}
		if res.Active != len(rows) {
			b.Fatalf("active %d", res.Active)
		}
	}
}
