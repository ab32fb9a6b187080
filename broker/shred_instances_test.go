package broker_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage/postgres"
	"github.com/censusvault/censusvault/storage/postgres/pgtest"
	"github.com/google/uuid"
)

// Shredding through one broker instance must reach another instance's
// cache: a data key it had unwrapped must stop opening anything within a
// second (LISTEN/NOTIFY), or the shred would not hold while it runs.
func TestShredEvictsOtherInstancesCache(t *testing.T) {
	ctx := context.Background()
	a, bb := twoInstances(t)

	tok, err := a.AddUser(ctx, actor, broker.NewUser{Name: "enum", Role: policy.Enumerator, Area: keyDistrict})
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Authenticate(ctx, "Bearer "+tok.Reveal(), "test")
	if err != nil {
		t.Fatal(err)
	}
	rcpt, err := age.ParseHybridRecipient(a.IngestRecipient())
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	var buf bytes.Buffer
	w, _ := age.Encrypt(&buf, rcpt)
	w.Write(household(id, ea(communeA, 1), 1))
	w.Close()
	if _, err := a.Deposit(ctx, c, int64(buf.Len()), &buf); err != nil {
		t.Fatal(err)
	}
	// B unwraps and caches commune A's identifying key.
	if _, err := bb.Open(ctx, broker.SubmissionID(id), crypto.Identifying); err != nil {
		t.Fatalf("instance B cannot open before the shred: %v", err)
	}
	time.Sleep(100 * time.Millisecond) // let B's watch connect
	if _, err := a.Shred(ctx, actor, crypto.Identifying, communeA); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for {
		_, err := bb.Open(ctx, broker.SubmissionID(id), crypto.Identifying)
		if broker.KindOf(err) == broker.Gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance B still opens the shredded class a second later (err %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := bb.Open(ctx, broker.SubmissionID(id), crypto.Analytic); err != nil {
		t.Errorf("the analytic class should still open on B: %v", err)
	}
}

// twoInstances starts two brokers on one new PostgreSQL vault of the key
// tests' tree, each on its own connection pool; the second watches for
// changes (LISTEN/NOTIFY) until the test ends.
func twoInstances(t *testing.T) (a, bb *broker.Broker) {
	t.Helper()
	return twoInstancesOpts(t, broker.Opts{})
}

// twoInstancesOpts is twoInstances with both brokers started with o
// (its Store and Keys are set here).
func twoInstancesOpts(t *testing.T, o broker.Opts) (a, bb *broker.Broker) {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	tree, err := area.Load(strings.NewReader(keyAreas()))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := agekey.Create(filepath.Join(t.TempDir(), agekey.FileName))
	if err != nil {
		t.Fatal(err)
	}
	stA, err := postgres.Open(ctx, postgres.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stA.Close() })
	stB, err := postgres.Open(ctx, postgres.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stB.Close() })
	if err := broker.Init(ctx, broker.InitOpts{Store: stA, Keys: kp, Areas: tree, Actor: actor}); err != nil {
		t.Fatal(err)
	}
	o.Keys = kp
	o.Store = stA
	a, err = broker.New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	o.Store = stB
	bb, err = broker.New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	go bb.Run(runCtx)
	return a, bb
}
