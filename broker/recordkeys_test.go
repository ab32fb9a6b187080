package broker_test

// Record keys of cell-key perturbation through the broker: made by Init,
// made on first start for vaults from before them, and unchanged by a
// rewrap, on a real SQLite store with the local age provider.

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/sqlite"
)

// recordKeys samples b's record keys: the household and three persons of
// each id.
func recordKeys(b *broker.Broker, ids ...broker.SubmissionID) []uint32 {
	var out []uint32
	for _, id := range ids {
		for p := range 4 {
			out = append(out, b.RecordKey(id, p))
		}
	}
	return out
}

func sameKeys(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// storedRecordKeys is how many record-key rows the vault holds.
func (kv *keyVault) storedRecordKeys() int {
	kv.t.Helper()
	var ks []storage.Key
	if err := kv.store.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		ks, err = tx.Keys("record-key")
		return err
	}); err != nil {
		kv.t.Fatal(err)
	}
	return len(ks)
}

// forgetRecordKey makes the vault look like one made before record keys:
// the storage API cannot delete key rows, so raw SQL on the database file.
func (kv *keyVault) forgetRecordKey() {
	kv.t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(kv.dir, sqlite.FileName)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		kv.t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`DELETE FROM keys WHERE purpose = 'record-key'`)
	if err != nil {
		kv.t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		kv.t.Fatalf("deleted %d record-key rows, want 1", n)
	}
}

func TestRecordKeysNewVault(t *testing.T) {
	kv := newKeyVault(t, keyVaultOpts{})
	if n := kv.storedRecordKeys(); n != 1 {
		t.Fatalf("a new vault holds %d record-key rows, want 1", n)
	}
	ids := []broker.SubmissionID{kv.deposit(ea(communeA, 1)), kv.deposit(ea(communeB, 2)), "not-deposited"}
	keys := recordKeys(kv.b, ids...)
	seen := map[uint32]bool{}
	for _, k := range keys {
		seen[k] = true
	}
	if len(seen) < len(keys)-1 { // one 32-bit collision among 12 is ~1e-8 likely
		t.Errorf("record keys repeat: %v", keys)
	}
	// Another broker on the same store derives the same keys, and
	// creates nothing.
	head := kv.auditHead()
	if got := recordKeys(kv.open(kv.keys, nil, 0), ids...); !sameKeys(got, keys) {
		t.Errorf("a second broker gives keys %v, want %v", got, keys)
	}
	if evs := kv.events(head, "keys.record_key"); len(evs) != 0 {
		t.Errorf("starting on a vault with a record key logged %d keys.record_key events", len(evs))
	}
	found := false
	for _, k := range keyStatus(t, kv.b).Keys {
		found = found || (k.Purpose == "record-key" && k.Version == 1 && k.KEK == ageLabel(t, kv.keys.(*agekey.Provider)))
	}
	if !found {
		t.Errorf("KeyStatus does not list record-key v1: %+v", keyStatus(t, kv.b).Keys)
	}
}

// TestRecordKeysOldVault: a vault without a record key gets one from the
// first broker to start, audited once, even when several start together;
// all of them then derive the same keys, as does any later one.
func TestRecordKeysOldVault(t *testing.T) {
	for _, starters := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("%d starting", starters), func(t *testing.T) {
			kv := newKeyVault(t, keyVaultOpts{})
			ids := []broker.SubmissionID{kv.deposit(ea(communeA, 1)), kv.deposit(ea(communeB, 1))}
			before := recordKeys(kv.b, ids...)
			kv.forgetRecordKey()
			head := kv.auditHead()

			brokers := make([]*broker.Broker, starters)
			errs := make([]error, starters)
			var wg sync.WaitGroup
			for i := range brokers {
				wg.Go(func() { brokers[i], errs[i] = kv.tryOpen(kv.keys, nil, 0) })
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("broker %d: New on a vault without a record key: %v", i, err)
				}
			}
			if n := kv.storedRecordKeys(); n != 1 {
				t.Fatalf("after %d starts the vault holds %d record-key rows, want 1", starters, n)
			}
			evs := kv.events(head, "keys.record_key")
			if len(evs) != 1 || evs[0].Outcome != "ok" || evs[0].Decision != "allow" || len(evs[0].Resources) != 1 || evs[0].Resources[0] != "key:record-key/v1" {
				t.Fatalf("keys.record_key events: %+v", evs)
			}
			keys := recordKeys(brokers[0], ids...)
			if sameKeys(keys, before) {
				t.Error("the new secret derives the keys of the deleted one")
			}
			for i, b := range append(brokers[1:], kv.open(kv.keys, nil, 0)) {
				if got := recordKeys(b, ids...); !sameKeys(got, keys) {
					t.Errorf("broker %d derives %v, want %v", i+1, got, keys)
				}
			}
			if n := len(kv.events(head, "keys.record_key")); n != 1 {
				t.Errorf("a later start logged more keys.record_key events: %d in all", n)
			}
		})
	}
}

// TestRecordKeysSurviveRewrap: moving the vault to a new age identity
// re-wraps the record-key secret, and the keys stay the same.
func TestRecordKeysSurviveRewrap(t *testing.T) {
	ctx := context.Background()
	kv := newKeyVault(t, keyVaultOpts{})
	oldKP := kv.keys.(*agekey.Provider)
	ids := []broker.SubmissionID{kv.deposit(ea(communeA, 1)), kv.deposit(ea(communeB, 2))}
	before := recordKeys(kv.b, ids...)
	oldWrapped := kv.systemKey("record-key")

	newKP, err := agekey.Create(filepath.Join(kv.dir, "new-"+agekey.FileName))
	if err != nil {
		t.Fatal(err)
	}
	b, err := kv.tryOpenFrom(newKP, nil, oldKP)
	if err != nil {
		t.Fatal(err)
	}
	if got := recordKeys(b, ids...); !sameKeys(got, before) {
		t.Fatalf("a broker migrating to a new identity derives %v, want %v", got, before)
	}
	if _, err := b.Rewrap(ctx, actor, broker.RewrapOpts{From: oldKP}); err != nil {
		t.Fatal(err)
	}
	if n := kv.storedRecordKeys(); n != 1 {
		t.Fatalf("%d record-key rows after the rewrap, want 1", n)
	}
	if _, err := crypto.LoadRecordKeyer(ctx, oldKP, kv.systemKey("record-key")); err == nil {
		t.Error("the old identity still unwraps the record-key secret after the rewrap")
	}
	if _, err := crypto.LoadRecordKeyer(ctx, newKP, oldWrapped); err == nil {
		t.Error("the new identity unwraps the secret's old wrapping")
	}
	after := kv.open(newKP, nil, 0)
	if got := recordKeys(after, ids...); !sameKeys(got, before) {
		t.Errorf("after the rewrap the keys are %v, want %v", got, before)
	}
	checkAllWrappedBy(t, keyStatus(t, after), allAge(ageLabel(t, newKP)))
}

func ExampleBroker_RecordKey() {
	var b *broker.Broker // broker.New(ctx, broker.Opts{…})
	id := broker.SubmissionID("0b7e5d3c-1f7e-4a8e-9d2c-6f1e2a3b4c5d")
	// A cell's key: the sum of its contributors' record keys (here the
	// household, person 0, and its first two persons) modulo the
	// perturbation table's modulus. The same contributors always give the
	// same cell key, on every broker of the vault.
	const modulus = 256
	var cell uint64
	for person := range 3 {
		cell += uint64(b.RecordKey(id, person))
	}
	fmt.Println(cell % modulus)
}
