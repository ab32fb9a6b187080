package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"log"
	"os"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/postgres"
)

// A broker instance opens the shared database (migrating it if needed),
// writes a change and the audit event that records it in one Update, and
// watches for the changes other instances commit.
func ExampleOpen() {
	ctx := context.Background()
	s, err := postgres.Open(ctx, postgres.Options{
		DSN: os.Getenv("CENSUSVAULT_STORE"), // postgres://censusvault@db.internal:5432/vault?sslmode=verify-full
	})
	if errors.Is(err, storage.ErrUnavailable) {
		log.Fatalf("database unreachable, try again later: %v", err)
	}
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	err = s.Update(ctx, func(tx storage.Tx) error {
		if err := tx.RevokeUser("enumerator-07", time.Now()); err != nil {
			return err
		}
		_, err := tx.AppendAudit(func(head storage.AuditHead) (storage.AuditRecord, error) {
			event := []byte(`{"action":"user.revoke","resources":["user:enumerator-07"]}`)
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
	if errors.Is(err, storage.ErrUnavailable) {
		// Maybe written, maybe not (the connection may have failed during
		// COMMIT): retry only what is idempotent.
		log.Printf("not acknowledged: %v", err)
	}

	// Every instance, this one included, hears "users" once it commits.
	watchCtx, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	for watchCtx.Err() == nil {
		err := s.Watch(watchCtx, func(topic string) {
			log.Printf("changed: %s", topic) // reload what depends on it
		})
		log.Printf("watch ended: %v", err) // the connection failed: watch again
		time.Sleep(time.Second)
	}
}
