package sqlite_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/sqlite"
	"github.com/censusvault/censusvault/storage/storagetest"
)

// dbPath is a database path in a fresh temporary data directory that does
// not exist yet, as on a first `censusvault init`.
func dbPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "data", sqlite.FileName)
}

// open opens the store at path and closes it when the test ends.
func open(t testing.TB, o sqlite.Options) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// peer is a second, independent connection to the database file, as
// another process (an operator's sqlite3 shell, a backup tool) would
// have.
func peer(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return open(t, sqlite.Options{Path: dbPath(t), Create: true})
	})
}

// deposit stores a submission and the audit event recording it in one
// Update, as the broker does.
func deposit(id string, hh int64) func(storage.Tx) error {
	return func(tx storage.Tx) error {
		rec, err := tx.AppendAudit(func(h storage.AuditHead) (storage.AuditRecord, error) {
			leaf := sha256.Sum256([]byte("deposit " + id))
			return storage.AuditRecord{
				Index:     h.Next,
				Event:     []byte("deposit " + id),
				LeafHash:  leaf,
				ChainHash: sha256.Sum256(append(h.ChainHash[:], leaf[:]...)),
			}, nil
		})
		if err != nil {
			return err
		}
		return tx.InsertSubmission(&storage.Submission{
			ID:            id,
			Area:          "E0000101",
			Commune:       "C00001",
			HouseholdNo:   hh,
			Form:          "household",
			FormVersion:   1,
			InterviewedAt: time.Date(2019, 4, 1, 9, 0, 0, 0, time.UTC),
			ReceivedAt:    time.Date(2019, 4, 1, 10, 0, 0, 0, time.UTC),
			Depositor:     "enumerator-07",
			PayloadSHA256: fmt.Sprintf("%x", sha256.Sum256([]byte(id))),
			Sealed: []storage.Sealed{
				{Class: "identifying", KeyVersion: 1, Data: make([]byte, 512)},
				{Class: "analytic", KeyVersion: 1, Data: make([]byte, 1536)},
			},
			AuditIndex: rec.Index,
			Receipt:    []byte("receipt " + id),
		})
	}
}

// stored reports whether submission id is in the store, failing the test
// on any other error.
func stored(t *testing.T, s storage.Store, id string) bool {
	t.Helper()
	var found bool
	err := s.View(context.Background(), func(tx storage.ReadTx) error {
		_, err := tx.Submission(id)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		t.Fatalf("Submission(%s): %v", id, err)
	}
	return found
}

func auditHead(t *testing.T, s storage.Store) storage.AuditHead {
	t.Helper()
	var h storage.AuditHead
	if err := s.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		h, err = tx.AuditHead()
		return err
	}); err != nil {
		t.Fatalf("AuditHead: %v", err)
	}
	return h
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	s, err := sqlite.Open(ctx, sqlite.Options{Path: path, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.Update(ctx, deposit(fmt.Sprintf("s%d", i), int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(ctx, func(tx storage.Tx) error { return tx.PutMeta("policy_sha256", "abc") }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := open(t, sqlite.Options{Path: path})
	for i := range 3 {
		if !stored(t, s2, fmt.Sprintf("s%d", i)) {
			t.Errorf("submission s%d lost across reopen", i)
		}
	}
	if h := auditHead(t, s2); h.Next != 3 {
		t.Errorf("AuditHead after reopen = %+v, want Next 3", h)
	}
	err = s2.View(ctx, func(tx storage.ReadTx) error {
		if v, err := tx.Meta("policy_sha256"); err != nil || v != "abc" {
			t.Errorf("Meta after reopen = %q, %v", v, err)
		}
		if v, err := tx.Meta("schema_version"); err != nil || v != fmt.Sprint(sqlite.SchemaVersion) {
			t.Errorf("schema_version = %q, %v; want %d", v, err, sqlite.SchemaVersion)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// And the reopened store takes writes.
	if err := s2.Update(ctx, deposit("s3", 3)); err != nil {
		t.Fatal(err)
	}
}

func TestOpenMissingWithoutCreate(t *testing.T) {
	path := dbPath(t)
	_, err := sqlite.Open(context.Background(), sqlite.Options{Path: path})
	if err == nil || !strings.Contains(err.Error(), "censusvault init") {
		t.Fatalf("Open of a missing database without Create: err = %v, want one mentioning `censusvault init`", err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed Open left something behind: %v", err)
	}
}

func TestOpenOptions(t *testing.T) {
	if _, err := sqlite.Open(context.Background(), sqlite.Options{Create: true}); err == nil {
		t.Error("Open with no path succeeded")
	}
	notDB := filepath.Join(t.TempDir(), sqlite.FileName)
	if err := os.WriteFile(notDB, []byte("this is not a database, it is a shopping list"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := sqlite.Open(context.Background(), sqlite.Options{Path: notDB}); err == nil {
		s.Close()
		t.Error("Open of a file that is not a database succeeded")
	}
}

func TestFilePermissions(t *testing.T) {
	path := dbPath(t)
	s := open(t, sqlite.Options{Path: path, Create: true})
	if err := s.Update(context.Background(), deposit("s1", 1)); err != nil {
		t.Fatal(err)
	}
	// While open, SQLite keeps the write-ahead log and its index beside
	// the database: they hold the same data and need the same mode.
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(name), err)
			continue
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s has mode %#o, want 0600", filepath.Base(name), m)
		}
	}
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o700 {
		t.Errorf("created data directory has mode %#o, want 0700", m)
	}
}

func TestSchemaVersion(t *testing.T) {
	for _, tc := range []struct {
		version int
		wantErr string // "" for an Open that succeeds
		after   int    // schema_version after a successful Open
	}{
		// Labelled 1 but made by this binary: the upgrade to 2 fails
		// (its column exists) and rolls back whole. TestUpgradeFromV1
		// upgrades a real version 1 database.
		{1, "migration to schema version 2 failed", 1},
		{sqlite.SchemaVersion, "", sqlite.SchemaVersion},
		{sqlite.SchemaVersion + 1, "upgrade", sqlite.SchemaVersion + 1},
		{sqlite.SchemaVersion + 10, "upgrade", sqlite.SchemaVersion + 10},
	} {
		t.Run(fmt.Sprint(tc.version), func(t *testing.T) {
			ctx := context.Background()
			path := dbPath(t)
			s, err := sqlite.Open(ctx, sqlite.Options{Path: path, Create: true})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Update(ctx, func(tx storage.Tx) error {
				return errors.Join(tx.PutMeta("schema_version", fmt.Sprint(tc.version)), tx.PutMeta("kept", "yes"))
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s, err = sqlite.Open(ctx, sqlite.Options{Path: path})
			if tc.wantErr != "" {
				if err == nil {
					s.Close()
					t.Fatalf("Open of schema version %d (this binary: %d) succeeded", tc.version, sqlite.SchemaVersion)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Open: err = %v, want one saying %q", err, tc.wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				s.Close()
			}
			// Whatever happened, the data survived and a refused Open did
			// not touch the version; read it behind the store's back.
			var v, kept string
			db := peer(t, path)
			if err := db.QueryRow(`SELECT value FROM meta WHERE key = 'schema_version'`).Scan(&v); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRow(`SELECT value FROM meta WHERE key = 'kept'`).Scan(&kept); err != nil {
				t.Fatal(err)
			}
			if v != fmt.Sprint(tc.after) || kept != "yes" {
				t.Errorf("after Open: schema_version = %s, kept = %q; want %d, yes", v, kept, tc.after)
			}
		})
	}
}

// TestFailClosedOnDatabaseError: when the database refuses the audit
// record (here a trigger stands in for a full disk), the Update fails and
// the submission it carried is not stored: nothing is acknowledged without
// its audit event.
func TestFailClosedOnDatabaseError(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	s := open(t, sqlite.Options{Path: path, Create: true})
	if err := s.Update(ctx, deposit("s0", 0)); err != nil {
		t.Fatal(err)
	}
	db := peer(t, path)
	if _, err := db.Exec(`CREATE TRIGGER audit_full BEFORE INSERT ON audit_events
		BEGIN SELECT RAISE(ABORT, 'audit disk full'); END`); err != nil {
		t.Fatal(err)
	}
	before := auditHead(t, s)

	// The submission goes in first, so its rollback is what is tested.
	depositFirst := func(id string, hh int64) func(storage.Tx) error {
		return func(tx storage.Tx) error {
			if err := tx.PutMeta("last_deposit", id); err != nil {
				return err
			}
			return deposit(id, hh)(tx)
		}
	}
	err := s.Update(ctx, depositFirst("s1", 1))
	if err == nil {
		t.Fatal("Update succeeded although its audit event could not be written")
	}
	if !strings.Contains(err.Error(), "audit disk full") {
		t.Errorf("err = %v, want the database's reason", err)
	}
	// The broker maps ErrConflict to "already deposited": a failed audit
	// write must not look like one.
	if errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound) {
		t.Errorf("err = %v, a database failure classified as a client error", err)
	}
	if stored(t, s, "s1") {
		t.Error("the submission was stored without its audit event")
	}
	if h := auditHead(t, s); h != before {
		t.Errorf("audit head moved from %+v to %+v", before, h)
	}

	if _, err := db.Exec(`DROP TRIGGER audit_full`); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, depositFirst("s1", 1)); err != nil {
		t.Fatalf("Update once the audit log takes writes again: %v", err)
	}
	if !stored(t, s, "s1") {
		t.Error("submission missing after a successful Update")
	}
	if h := auditHead(t, s); h.Next != before.Next+1 {
		t.Errorf("audit head = %+v, want Next %d", h, before.Next+1)
	}
}

// holdWriteLock takes the database's write lock on another connection and
// releases it after d.
func holdWriteLock(t *testing.T, path string, d time.Duration) <-chan struct{} {
	t.Helper()
	db := peer(t, path)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(d)
		if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
			t.Errorf("releasing the write lock: %v", err)
		}
		conn.Close()
	}()
	return released
}

func TestWaitsForWriteLock(t *testing.T) {
	path := dbPath(t)
	s := open(t, sqlite.Options{Path: path, Create: true})
	const hold = 200 * time.Millisecond
	start := time.Now()
	released := holdWriteLock(t, path, hold)
	if err := s.Update(context.Background(), deposit("s1", 1)); err != nil {
		t.Fatalf("Update while another connection briefly held the write lock: %v", err)
	}
	if waited := time.Since(start); waited < hold*3/4 {
		t.Errorf("Update returned after %v, before the lock (held %v) was released", waited, hold)
	}
	<-released
	if !stored(t, s, "s1") {
		t.Error("submission missing")
	}
}

func TestBusyTimeout(t *testing.T) {
	path := dbPath(t)
	s := open(t, sqlite.Options{Path: path, Create: true, BusyTimeout: 100 * time.Millisecond})
	const hold = 1500 * time.Millisecond
	start := time.Now()
	released := holdWriteLock(t, path, hold)
	err := s.Update(context.Background(), deposit("s1", 1))
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Update while the write lock is held past BusyTimeout: err = %v, want ErrUnavailable", err)
	}
	if waited := time.Since(start); waited >= hold {
		t.Errorf("Update waited %v, past its 100ms busy timeout", waited)
	}
	<-released
	if stored(t, s, "s1") {
		t.Error("an Update reported unavailable was stored")
	}
	if err := s.Update(context.Background(), deposit("s1", 1)); err != nil {
		t.Fatalf("Update once the lock is free: %v", err)
	}
}

// inOneBatch runs fns as concurrent Updates that the store commits
// together: a first Update holds the committer until all of them have
// queued behind it. It returns each Update's result.
func inOneBatch(t *testing.T, s *sqlite.Store, fns []func(storage.Tx) error) []error {
	t.Helper()
	ctx := context.Background()
	holding, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- s.Update(ctx, func(storage.Tx) error {
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Update(ctx, fn)
		}()
		// Roughly keep the queue in slice order.
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatalf("holding Update: %v", err)
	}
	return errs
}

// checkAcknowledged: an Update reported nil if and only if its submission
// is stored, and the audit log has exactly one record per stored one.
func checkAcknowledged(t *testing.T, s *sqlite.Store, ids []string, errs []error, base int64) {
	t.Helper()
	ok := int64(0)
	for i, id := range ids {
		has := stored(t, s, id)
		switch {
		case errs[i] == nil && !has:
			t.Errorf("Update %s reported success but its submission is missing", id)
		case errs[i] != nil && has:
			t.Errorf("Update %s reported %v but its submission is stored", id, errs[i])
		}
		if has {
			ok++
		}
	}
	if h := auditHead(t, s); h.Next != base+ok {
		t.Errorf("audit log has %d records, want %d (one per stored submission)", h.Next, base+ok)
	}
}

// TestGroupCommitIsolatesFailures: Updates committed in one batch fail
// alone: one that returns an error, panics or breaks a constraint leaves
// its neighbours committed.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	s := open(t, sqlite.Options{Path: dbPath(t), Create: true})
	abort := errors.New("abort")
	var ids []string
	var fns []func(storage.Tx) error
	var wantErr []error
	for i := range 12 {
		id := fmt.Sprintf("s%02d", i)
		ids = append(ids, id)
		fn := deposit(id, int64(i))
		var want error
		switch i {
		case 1, 4, 10:
			want = abort
			fn = func(tx storage.Tx) error {
				if err := deposit(id, int64(i))(tx); err != nil {
					return err
				}
				return abort
			}
		case 6:
			want = errors.New("panic")
			fn = func(tx storage.Tx) error {
				if err := deposit(id, int64(i))(tx); err != nil {
					return err
				}
				panic("deliberate")
			}
		case 8:
			// Same household as s00, which is current.
			want = storage.ErrConflict
			fn = deposit(id, 0)
		}
		fns = append(fns, fn)
		wantErr = append(wantErr, want)
	}
	errs := inOneBatch(t, s, fns)
	for i, err := range errs {
		switch want := wantErr[i]; {
		case want == nil && err != nil:
			t.Errorf("Update %s: %v; a neighbour's failure must not fail it", ids[i], err)
		case want != nil && err == nil:
			t.Errorf("Update %s succeeded, want %v", ids[i], want)
		case want == abort || want == storage.ErrConflict:
			if !errors.Is(err, want) {
				t.Errorf("Update %s: err = %v, want %v", ids[i], err, want)
			}
		}
	}
	checkAcknowledged(t, s, ids, errs, 0)
	if err := s.Update(context.Background(), deposit("after", 99)); err != nil {
		t.Fatalf("Update after the batch: %v", err)
	}
}

// TestGroupCommitWholeRollback: some database errors (a full disk, an I/O
// error, RAISE(ROLLBACK)) end the whole transaction, not just the failing
// statement, taking the batch's earlier Updates with it. None of those may
// then be reported as committed, and none of the later ones may be
// committed behind the store's back.
func TestGroupCommitWholeRollback(t *testing.T) {
	path := dbPath(t)
	s := open(t, sqlite.Options{Path: path, Create: true})
	if err := s.Update(context.Background(), deposit("base", 100)); err != nil {
		t.Fatal(err)
	}
	db := peer(t, path)
	if _, err := db.Exec(`CREATE TRIGGER poison BEFORE INSERT ON submissions WHEN NEW.id = 'poison'
		BEGIN SELECT RAISE(ROLLBACK, 'poisoned'); END`); err != nil {
		t.Fatal(err)
	}
	var ids []string
	var fns []func(storage.Tx) error
	for i := range 9 {
		id := fmt.Sprintf("s%02d", i)
		if i == 4 {
			id = "poison"
		}
		ids = append(ids, id)
		fns = append(fns, deposit(id, int64(i)))
	}
	errs := inOneBatch(t, s, fns)
	if errs[4] == nil {
		t.Error("the poisoned Update succeeded")
	}
	checkAcknowledged(t, s, ids, errs, 1)

	if _, err := db.Exec(`DROP TRIGGER poison`); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(context.Background(), deposit("after", 99)); err != nil {
		t.Fatalf("Update after the rolled-back batch: %v", err)
	}
	if h := auditHead(t, s); h.Next < 2 {
		t.Errorf("audit head = %+v after a successful Update", h)
	}
}

// TestContextEndsWhileQueued: an Update whose context ends after it was
// queued either commits and says so or reports the context's end and
// stores nothing, never a mix.
func TestContextEndsWhileQueued(t *testing.T) {
	s := open(t, sqlite.Options{Path: dbPath(t), Create: true})
	ctxs := make([]context.Context, 8)
	cancels := make([]context.CancelFunc, 8)
	var ids []string
	var fns []func(storage.Tx) error
	for i := range ctxs {
		ctxs[i], cancels[i] = context.WithCancel(context.Background())
		id := fmt.Sprintf("s%02d", i)
		ids = append(ids, id)
		fns = append(fns, func(tx storage.Tx) error {
			if i%2 == 0 {
				cancels[i]() // ends while its statements run
			}
			return deposit(id, int64(i))(tx)
		})
	}
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Update(ctxs[i], fns[i])
		}()
	}
	// Odd ones end at some point while queued or running.
	time.Sleep(time.Millisecond)
	for i := 1; i < len(cancels); i += 2 {
		cancels[i]()
	}
	wg.Wait()
	checkAcknowledged(t, s, ids, errs, 0)
	if err := s.Update(context.Background(), deposit("after", 99)); err != nil {
		t.Fatalf("Update after canceled ones: %v", err)
	}
}

// TestCloseWhileUpdating: Close while Updates are arriving lets each of
// them finish, committed or refused with ErrClosed; none hangs, and every
// one acknowledged is on disk.
func TestCloseWhileUpdating(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	s, err := sqlite.Open(ctx, sqlite.Options{Path: path, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	const writers = 8
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				id := fmt.Sprintf("w%d-%d", w, i)
				err := s.Update(ctx, deposit(id, int64(w*1000+i)))
				if errors.Is(err, storage.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Update %s: %v", id, err)
					return
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("an Update still hangs 10s after Close returned")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	s2 := open(t, sqlite.Options{Path: path})
	for _, id := range acked {
		if !stored(t, s2, id) {
			t.Errorf("acknowledged %s is missing after Close", id)
		}
	}
	if h := auditHead(t, s2); h.Next != int64(len(acked)) {
		t.Errorf("audit log has %d records for %d acknowledged Updates", h.Next, len(acked))
	}
	t.Logf("%d Updates acknowledged before Close", len(acked))
}

// BenchmarkUpdateParallel measures ingest throughput: each Update stores
// one submission with about 2 KiB of sealed data and its audit record,
// from many concurrent depositors, so group commit has batches to gather.
func BenchmarkUpdateParallel(b *testing.B) {
	for _, perCPU := range []int{1, 32} {
		b.Run(fmt.Sprintf("goroutines=%dxGOMAXPROCS", perCPU), func(b *testing.B) {
			s := open(b, sqlite.Options{Path: dbPath(b), Create: true})
			var n atomic.Int64
			b.SetParallelism(perCPU)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					if err := s.Update(context.Background(), deposit(fmt.Sprintf("s%d", i), i)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
		})
	}
}
