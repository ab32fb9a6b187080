package vaulttransit_test

import (
	"context"
	"fmt"
	"log"

	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/vaulttransit"
)

// `censusvault serve --keys vault://transit/censusvault` with VAULT_ADDR
// and VAULT_TOKEN (or VAULT_ROLE_ID and VAULT_SECRET_ID) set: data keys
// are made in the keyring and wrapped by Vault.
func Example() {
	ctx := context.Background()
	cfg, err := vaulttransit.ConfigFromEnv("vault://transit/censusvault")
	if err != nil {
		log.Fatal(err)
	}
	p, err := vaulttransit.New(ctx, cfg) // fails if `keys init-vault` was not run
	if err != nil {
		log.Fatal(err)
	}
	kr, err := crypto.NewKeyring(crypto.KeyringOptions{Provider: p})
	if err != nil {
		log.Fatal(err)
	}
	id := crypto.DataKeyID{Class: crypto.Identifying, Commune: "01001", Version: 1}
	wrapped, err := kr.NewDataKey(ctx, id) // store wrapped; the DEK stays in kr
	if err != nil {
		log.Fatal(err)
	}
	label, _ := p.KEKOf(wrapped)
	fmt.Println(label) // vault:transit/censusvault:v1
}

// `censusvault keys init-vault`, once, by an operator allowed to create
// Transit keys.
func ExampleCreateKey() {
	cfg, err := vaulttransit.ConfigFromEnv("vault://transit/censusvault")
	if err != nil {
		log.Fatal(err)
	}
	if err := vaulttransit.CreateKey(context.Background(), cfg); err != nil {
		log.Fatal(err)
	}
}

// Key-encryption-key rotation: rotate, rewrap every stored blob inside
// Vault, then retire the old version.
func ExampleProvider_Rotate() {
	ctx := context.Background()
	cfg, _ := vaulttransit.ConfigFromEnv("vault://transit/censusvault")
	p, err := vaulttransit.New(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	var stored [][]byte // every wrapped DEK, read from storage
	v, err := p.Rotate(ctx)
	if err != nil {
		log.Fatal(err)
	}
	rewrapped, err := p.RewrapKeys(ctx, stored)
	if err != nil {
		log.Fatal(err)
	}
	_ = rewrapped // written back to storage in place of stored
	if err := p.SetMinDecryptionVersion(ctx, v); err != nil {
		log.Fatal(err)
	}
}
