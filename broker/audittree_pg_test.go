package broker_test

// The verifiable audit log on PostgreSQL: instances starting together
// backfill one tree, instances racing for a checkpoint store one, and
// VerifyAudit names the tampered event as on SQLite.

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage/postgres"
	"github.com/censusvault/censusvault/storage/postgres/pgtest"
	"github.com/jackc/pgx/v5"
)

// pgAuditGuards are the triggers of migration 0005_audit_tree.sql that
// keep the audit tables append-only, with their tables.
var pgAuditGuards = [][2]string{
	{"audit_events_prune_only", "audit_events"}, {"audit_events_no_delete", "audit_events"}, {"audit_events_no_truncate", "audit_events"},
	{"audit_hashes_no_update", "audit_hashes"}, {"audit_hashes_no_delete", "audit_hashes"}, {"audit_hashes_no_truncate", "audit_hashes"},
	{"audit_checkpoints_no_update", "audit_checkpoints"}, {"audit_checkpoints_no_delete", "audit_checkpoints"}, {"audit_checkpoints_no_truncate", "audit_checkpoints"},
}

// pgVault is an initialized PostgreSQL vault of the key tests' tree,
// with no broker yet.
type pgVault struct {
	dsn  string
	keys crypto.KeyProvider
	raw  *pgx.Conn
}

func newPGVault(t *testing.T) *pgVault {
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
	pv := &pgVault{dsn: dsn, keys: kp}
	if err := broker.Init(ctx, broker.InitOpts{Store: pv.store(t), Keys: kp, Areas: tree, Actor: actor}); err != nil {
		t.Fatal(err)
	}
	if pv.raw, err = pgx.Connect(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pv.raw.Close(context.Background()) })
	return pv
}

// store opens a store (its own connection pool) on the vault.
func (pv *pgVault) store(t testing.TB) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), postgres.Options{DSN: pv.dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// exec runs raw SQL written with ? placeholders.
func (pv *pgVault) exec(q string, args ...any) error {
	for i := 1; strings.Contains(q, "?"); i++ {
		q = strings.Replace(q, "?", fmt.Sprintf("$%d", i), 1)
	}
	_, err := pv.raw.Exec(context.Background(), q, args...)
	return err
}

func (pv *pgVault) mustExec(t testing.TB, q string, args ...any) {
	t.Helper()
	if err := pv.exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (pv *pgVault) dropGuards(t testing.TB) {
	t.Helper()
	for _, g := range pgAuditGuards {
		pv.mustExec(t, fmt.Sprintf("DROP TRIGGER %s ON %s", g[0], g[1]))
	}
}

func (pv *pgVault) open(t testing.TB, st *postgres.Store, progress func(done, total int64)) (*broker.Broker, error) {
	b, err := broker.New(context.Background(), broker.Opts{Store: st, Keys: pv.keys, TreeProgress: progress})
	if err == nil {
		t.Cleanup(func() { b.Close(context.Background()) })
	}
	return b, err
}

// TestAuditTreeBackfillTwoInstancesPG: two instances starting together
// on a log without tree hashes both start, and the tree they build
// together is the leaves' tree; both then append to it.
func TestAuditTreeBackfillTwoInstancesPG(t *testing.T) {
	ctx := context.Background()
	pv := newPGVault(t)
	stA, stB := pv.store(t), pv.store(t)
	b0, err := pv.open(t, stA, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b0.AddUser(ctx, actor, broker.NewUser{Name: "enum", Role: policy.Enumerator, Area: keyDistrict}); err != nil {
		t.Fatal(err)
	}
	// The log as schema 5 finds one written before it.
	pv.mustExec(t, `DROP TRIGGER audit_hashes_no_delete ON audit_hashes`)
	pv.mustExec(t, `DELETE FROM audit_hashes`)
	appendRaw(t, stA, 2*8192+50, false, legacyEvent)
	head := auditHeadOf(t, stA)

	var wg sync.WaitGroup
	var mu sync.Mutex
	calls := map[string][][2]int64{}
	brokers := map[string]*broker.Broker{}
	errs := map[string]error{}
	for name, st := range map[string]*postgres.Store{"A": stA, "B": stB} {
		wg.Go(func() {
			b, err := pv.open(t, st, func(done, total int64) {
				mu.Lock()
				calls[name] = append(calls[name], [2]int64{done, total})
				mu.Unlock()
			})
			mu.Lock()
			brokers[name], errs[name] = b, err
			mu.Unlock()
		})
	}
	wg.Wait()
	// Each page is written once, by one instance or the other.
	var pages []int64
	for name, err := range errs {
		if err != nil {
			t.Fatalf("instance %s starting during the other's backfill: %v", name, err)
		}
		for _, c := range calls[name] {
			if c[1] != head {
				t.Errorf("instance %s: TreeProgress total %d, want %d", name, c[1], head)
			}
			pages = append(pages, c[0])
		}
	}
	slices.Sort(pages)
	if want := []int64{8192, 16384, head}; !slices.Equal(pages, want) {
		t.Errorf("pages written by the two instances end at %v (%v), want %v: each once", pages, calls, want)
	}
	recs := auditRecords(t, stA)
	if got, want := hashCount(t, stA), int64(0); got == want {
		t.Fatal("no tree hashes after the backfill")
	}
	for _, size := range []int64{1, 8192, 8193, 16384, 16385, head} {
		if storedRoot(t, stB, size) != leafRoot(recs, size) {
			t.Errorf("tree built by two instances: root at size %d differs from the leaves' root", size)
		}
	}
	a, bb := brokers["A"], brokers["B"]
	if _, err := broker.VerifyAudit(ctx, stA, a.AuditVerifierKey(), nil); err != nil {
		t.Fatalf("VerifyAudit after a concurrent backfill: %v", err)
	}

	// Both append, concurrently, to the one tree.
	for i, b := range []*broker.Broker{a, bb, a, bb} {
		wg.Go(func() {
			if _, err := b.AddUser(ctx, actor, broker.NewUser{Name: broker.UserID(fmt.Sprintf("u%d", i)), Role: policy.Enumerator, Area: keyDistrict}); err != nil {
				t.Errorf("AddUser after the backfill: %v", err)
			}
		})
	}
	wg.Wait()
	cp := makeCheckpoint(t, bb)
	recs = auditRecords(t, stA)
	if cp.Size != int64(len(recs)) || cp.Root != leafRoot(recs, cp.Size) {
		t.Fatalf("checkpoint size %d of %d events, or a wrong root", cp.Size, len(recs))
	}
	checkInclusion(t, a, recs, cp, 0, head-1, head, cp.Size-1)
	res, err := broker.VerifyAudit(ctx, stB, a.AuditVerifierKey(), nil)
	if err != nil || res.Events != cp.Size || res.Checkpoints != 1 {
		t.Fatalf("VerifyAudit after appends from both: %+v, %v", res, err)
	}
}

// TestMakeCheckpointRacePG: two instances making a checkpoint at once
// both get a valid checkpoint of the whole log, the same one, stored
// once.
func TestMakeCheckpointRacePG(t *testing.T) {
	ctx := context.Background()
	pv := newPGVault(t)
	st := pv.store(t)
	a, err := pv.open(t, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	bb, err := pv.open(t, pv.store(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go bb.Run(runCtx)
	var sizes []int64
	for round := range 5 {
		if _, err := a.AddUser(ctx, actor, broker.NewUser{Name: broker.UserID(fmt.Sprintf("r%d", round)), Role: policy.Enumerator, Area: keyDistrict}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		got := make([]*broker.Checkpoint, 2)
		errs := make([]error, 2)
		for i, b := range []*broker.Broker{a, bb} {
			wg.Go(func() {
				<-start
				got[i], errs[i] = b.MakeCheckpoint(ctx)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: instance %d: MakeCheckpoint: %v", round, i, err)
			}
		}
		for i, b := range []*broker.Broker{a, bb} {
			c := openCheckpoint(t, b, got[i].Note)
			if c.Size != got[i].Size || c.Root != got[i].Root {
				t.Errorf("round %d: instance %d: the note says size %d, MakeCheckpoint %d", round, i, c.Size, got[i].Size)
			}
		}
		if got[0].Size != got[1].Size || string(got[0].Note) != string(got[1].Note) {
			t.Errorf("round %d: racing instances got checkpoints of sizes %d and %d (notes equal %v)", round, got[0].Size, got[1].Size, string(got[0].Note) == string(got[1].Note))
		}
		sizes = append(sizes, got[0].Size)
	}
	// bb's Run makes checkpoints too (every 5 s); the rounds' are stored.
	stored := checkpointSizes(t, st)
	for _, s := range sizes {
		found := false
		for _, x := range stored {
			found = found || x == s
		}
		if !found {
			t.Errorf("checkpoint of size %d not stored (stored: %v)", s, stored)
		}
	}
	if _, err := broker.VerifyAudit(ctx, st, a.AuditVerifierKey(), nil); err != nil {
		t.Fatal(err)
	}
}

func pgTamperVault(t *testing.T) *tamperVault {
	pv := newPGVault(t)
	st := pv.store(t)
	b, err := pv.open(t, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &tamperVault{store: st, b: b, keys: pv.keys, exec: pv.exec, drop: pv.dropGuards}
}

func TestVerifyAuditTamperPG(t *testing.T) {
	runTamperCases(t, pgTamperVault)
}
