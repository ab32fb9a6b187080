package storagetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
)

// testWatch: a store that is a storage.Watcher announces each committed
// change to keys, users and grants under its topic, in commit order, and
// never one of an Update that did not commit. Watch returns when its
// context ends and when the store closes.
func testWatch(t *testing.T, s storage.Store) {
	w, ok := s.(storage.Watcher)
	if !ok {
		t.Skip("not a storage.Watcher: its users poll")
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	topics := make(chan string, 1000)
	done := make(chan error, 1)
	go func() {
		done <- w.Watch(ctx, func(topic string) {
			select {
			case topics <- topic:
			default: // the test failed to drain; it reports that itself
			}
		})
	}()

	// Watch does not say when it starts listening: write meta until a
	// notification comes back.
	deadline := time.Now().Add(10 * time.Second)
	for ready := false; !ready; {
		if time.Now().After(deadline) {
			t.Fatal("no notification 10s after Watch started, while meta changed every 100ms")
		}
		update(t, s, func(tx storage.Tx) error { return tx.PutMeta("ping", time.Now().String()) })
		select {
		case topic := <-topics:
			if topic != storage.TopicMeta {
				t.Fatalf("PutMeta notified %q, want %q", topic, storage.TopicMeta)
			}
			ready = true
		case err := <-done:
			t.Fatalf("Watch returned early: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}

	abort := errors.New("storagetest: abort")
	aborted := func(fn func(storage.Tx) error) {
		t.Helper()
		if err := s.Update(t.Context(), func(tx storage.Tx) error {
			if err := fn(tx); err != nil {
				return fmt.Errorf("a write failed before the deliberate abort: %w", err)
			}
			return abort
		}); !errors.Is(err, abort) {
			t.Fatalf("Update: err = %v, want %v", err, abort)
		}
	}
	shredC1 := func(tx storage.Tx) error {
		n, err := tx.ShredDataKeys("analytic", []string{"C1"}, at(4, 0))
		if err == nil && n != 1 {
			err = fmt.Errorf("ShredDataKeys = %d, want 1", n)
		}
		return err
	}
	key := func(v int) *storage.Key {
		return &storage.Key{Purpose: "ingest", Version: v, Wrapped: []byte("k"), CreatedAt: at(1, v)}
	}
	steps := []struct {
		topic string // "" for an Update that must not notify
		fn    func(storage.Tx) error
	}{
		{"", func(tx storage.Tx) error { return tx.PutKey(key(9)) }},
		{storage.TopicUsers, func(tx storage.Tx) error {
			return tx.InsertUser(&storage.User{Name: "alice", TokenHash: tokenHash("a"), CreatedAt: at(1, 0)})
		}},
		{"", func(tx storage.Tx) error {
			return tx.PutDataKey(&storage.DataKey{Class: "analytic", Commune: "C1", Version: 9, Wrapped: []byte("d"), CreatedAt: at(1, 0)})
		}},
		{storage.TopicKeys, func(tx storage.Tx) error { return tx.PutKey(key(1)) }},
		{"", func(tx storage.Tx) error { return tx.RevokeUser("alice", at(2, 0)) }},
		{storage.TopicUsers, func(tx storage.Tx) error { return tx.AddGrant("alice", storage.Grant{Role: "auditor", Area: "VN"}) }},
		{storage.TopicKeys, func(tx storage.Tx) error { return tx.RetireKey("ingest", 1, at(3, 0)) }},
		{"", func(tx storage.Tx) error { return tx.AddGrant("alice", storage.Grant{Role: "admin", Area: "VN"}) }},
		{storage.TopicUsers, func(tx storage.Tx) error { return tx.RevokeUser("alice", at(2, 0)) }},
		{"", func(tx storage.Tx) error { return tx.SetRecipient("alice", "age1x") }},
		{storage.TopicUsers, func(tx storage.Tx) error { return tx.SetRecipient("alice", "age1x") }},
		{storage.TopicKeys, func(tx storage.Tx) error {
			return tx.PutDataKey(&storage.DataKey{Class: "analytic", Commune: "C1", Version: 1, Wrapped: []byte("d"), CreatedAt: at(1, 0)})
		}},
		{"", func(tx storage.Tx) error { return tx.RewrapKey("ingest", 1, []byte("k2")) }},
		{storage.TopicKeys, func(tx storage.Tx) error { return tx.RewrapKey("ingest", 1, []byte("k2")) }},
		{"", func(tx storage.Tx) error { return tx.RewrapDataKey("analytic", "C1", 1, []byte("d2")) }},
		{storage.TopicKeys, func(tx storage.Tx) error { return tx.RewrapDataKey("analytic", "C1", 1, []byte("d2")) }},
		{"", func(tx storage.Tx) error { return shredC1(tx) }},
		// Every instance must evict a shredded key from its cache.
		{storage.TopicKeys, func(tx storage.Tx) error { return shredC1(tx) }},
	}
	var want []string
	for _, st := range steps {
		if st.topic == "" {
			aborted(st.fn)
			continue
		}
		update(t, s, st.fn)
		want = append(want, st.topic)
	}
	// Pings may still be arriving; meta is not among the steps' topics.
	var got []string
	timeout := time.After(10 * time.Second)
	for len(got) < len(want) {
		select {
		case topic := <-topics:
			if topic != storage.TopicMeta {
				got = append(got, topic)
			}
		case err := <-done:
			t.Fatalf("Watch returned early: %v", err)
		case <-timeout:
			t.Fatalf("after 10s, notified %v; want %v", got, want)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("notified %v, want %v (an aborted Update notifies nothing)", got, want)
	}

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Watch after its context ended: err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch still running 5s after its context ended")
	}

	go func() { done <- w.Watch(t.Context(), func(string) {}) }()
	time.Sleep(100 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("Watch returned nil after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch still running 5s after Close")
	}
}
