package agekey_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/censusvault/censusvault/crypto/agekey"
)

// `censusvault init` creates the provider once; every later start loads it.
func Example() {
	dir, _ := os.MkdirTemp("", "censusvault")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, agekey.FileName)

	if _, err := agekey.Create(path); err != nil {
		log.Fatal(err)
	}
	p, err := agekey.Load(path)
	if err != nil {
		log.Fatal(err)
	}
	wrapped, _ := p.WrapKey(context.Background(), []byte("a data key"))
	key, err := p.UnwrapKey(context.Background(), wrapped)
	fmt.Println(string(key), err, strings.HasPrefix(p.Recipient(), "age1pq1"))

	_, err = agekey.Create(path)
	fmt.Println(err != nil)
	// Output:
	// a data key <nil> true
	// true
}
