package sqlite_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/sqlite"
)

// A change and the audit event that records it commit in one Update:
// both are stored, or neither.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "censusvault-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	s, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(dir, sqlite.FileName), Create: true})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	err = s.Update(ctx, func(tx storage.Tx) error {
		if err := tx.InsertAreas([]storage.Area{{Code: "VN", Level: "nation", Name: "Việt Nam"}}); err != nil {
			return err
		}
		_, err := tx.AppendAudit(func(head storage.AuditHead) (storage.AuditRecord, error) {
			event := []byte(`{"action":"areas.load"}`)
			leaf := sha256.Sum256(append([]byte{0}, event...))
			return storage.AuditRecord{
				Index:     head.Next,
				Event:     event,
				LeafHash:  leaf,
				ChainHash: sha256.Sum256(append(head.ChainHash[:], leaf[:]...)),
			}, nil
		})
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	err = s.View(ctx, func(tx storage.ReadTx) error {
		areas, err := tx.Areas()
		if err != nil {
			return err
		}
		head, err := tx.AuditHead()
		if err != nil {
			return err
		}
		fmt.Printf("%d area, next audit index %d\n", len(areas), head.Next)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output: 1 area, next audit index 1
}
