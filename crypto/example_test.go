package crypto_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
)

// A broker seals a class of fields under the commune's data key, loading
// the wrapped key from storage when the cache does not hold it.
func ExampleKeyring() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "censusvault")
	defer os.RemoveAll(dir)
	provider, err := agekey.Create(filepath.Join(dir, agekey.FileName))
	if err != nil {
		log.Fatal(err)
	}

	// At first use of a (class, commune, version): make the key and store
	// only its wrapped form.
	writer, _ := crypto.NewKeyring(crypto.KeyringOptions{Provider: provider})
	id := crypto.DataKeyID{Class: crypto.Identifying, Commune: "18313", Version: 1}
	wrapped, err := writer.NewDataKey(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	ad := crypto.AD{Submission: "0f8fad5b-d9cb-469f-a165-70867728950e", Form: "household", FormVersion: 3, Area: "18313-012", HouseholdNo: 42}
	sealed, err := writer.Seal(id, []byte(`{"head":"Nguyễn Văn A"}`), ad)
	if err != nil {
		log.Fatal(err)
	}

	// Another instance opens it: load on ErrKeyNotLoaded, then retry.
	reader, _ := crypto.NewKeyring(crypto.KeyringOptions{Provider: provider})
	pt, err := reader.Open(id, sealed, ad)
	if errors.Is(err, crypto.ErrKeyNotLoaded) {
		if err := reader.LoadDataKeys(ctx, []crypto.DataKeyID{id}, [][]byte{wrapped}); err != nil {
			log.Fatal(err)
		}
		pt, err = reader.Open(id, sealed, ad)
	}
	fmt.Println(string(pt), err)

	// Moved to another household, the value does not open.
	ad.HouseholdNo = 43
	_, err = reader.Open(id, sealed, ad)
	fmt.Println(err)
	// Output:
	// {"head":"Nguyễn Văn A"} <nil>
	// failed to decrypt
}

// Tokens are shown once and stored as digests.
func ExampleNewToken() {
	tok, err := crypto.NewToken()
	if err != nil {
		log.Fatal(err)
	}
	stored := tok.Digest().Hex() // what storage keeps

	presented := tok.Reveal() // what the operator saw once, now in an Authorization header
	d, err := crypto.ParseTokenDigest(presented)
	fmt.Println(err, d.Hex() == stored, len(presented))
	fmt.Printf("%v\n", tok)
	// Output:
	// <nil> true 43
	// Token(redacted)
}
