package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/postgres"
	"github.com/censusvault/censusvault/storage/postgres/pgtest"
	"github.com/censusvault/censusvault/storage/storagetest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// open opens a store and closes it when the test ends.
func open(t testing.TB, o postgres.Options) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), o)
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

// sql runs statements on the test database behind the store's back, as an
// operator's psql would.
func sql(t testing.TB, dsn string, q string, args ...any) {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return open(t, postgres.Options{DSN: pgtest.DSN(t), MaxConns: 4})
	})
}

// record is the audit record for event built on head: leaf = H(event),
// chain = H(previous chain ‖ leaf).
func record(h storage.AuditHead, event string) storage.AuditRecord {
	leaf := sha256.Sum256([]byte(event))
	return storage.AuditRecord{
		Index:     h.Next,
		Event:     []byte(event),
		LeafHash:  leaf,
		ChainHash: sha256.Sum256(append(h.ChainHash[:], leaf[:]...)),
	}
}

// sub is a submission of household hh in area.
func sub(id, area string, hh int64, auditIndex int64) *storage.Submission {
	return &storage.Submission{
		ID:            id,
		Area:          area,
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
		AuditIndex: auditIndex,
		Receipt:    []byte("receipt " + id),
	}
}

// deposit stores a submission and the audit event recording it in one
// Update, as the broker does.
func deposit(id, area string, hh int64) func(storage.Tx) error {
	return func(tx storage.Tx) error {
		rec, err := tx.AppendAudit(func(h storage.AuditHead) (storage.AuditRecord, error) {
			return record(h, "deposit "+id), nil
		})
		if err != nil {
			return err
		}
		return tx.InsertSubmission(sub(id, area, hh, rec.Index))
	}
}

// stored reports whether submission id is in the store.
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

// auditLog reads the whole log and checks it is 0..n-1 with every chain
// hash built on its predecessor's.
func auditLog(t *testing.T, s storage.Store) []storage.AuditRecord {
	t.Helper()
	var recs []storage.AuditRecord
	err := s.View(context.Background(), func(tx storage.ReadTx) error {
		recs = nil
		return tx.AuditRecords(0, 0, func(r storage.AuditRecord) (bool, error) {
			recs = append(recs, r)
			return true, nil
		})
	})
	if err != nil {
		t.Fatalf("AuditRecords: %v", err)
	}
	var prev [32]byte
	for i, r := range recs {
		if r.Index != int64(i) {
			t.Fatalf("record %d has index %d: the log has a gap or a duplicate", i, r.Index)
		}
		leaf := sha256.Sum256(r.Event)
		if leaf != r.LeafHash || sha256.Sum256(append(prev[:], leaf[:]...)) != r.ChainHash {
			t.Fatalf("record %d is not chained on record %d: the log forked", i, i-1)
		}
		prev = r.ChainHash
	}
	return recs
}

// schemaVersions reads schema_migrations.
func schemaVersions(t *testing.T, dsn string) []int {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	rows, err := c.Query(context.Background(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// allVersions is 1..SchemaVersion: what schema_migrations holds once every
// migration was applied, each once.
func allVersions() []int {
	vs := make([]int, postgres.SchemaVersion)
	for i := range vs {
		vs[i] = i + 1
	}
	return vs
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	from, to, err := postgres.Migrate(ctx, dsn)
	if err != nil || from != 0 || to != postgres.SchemaVersion {
		t.Fatalf("Migrate of an empty database = %d, %d, %v; want 0, %d", from, to, err, postgres.SchemaVersion)
	}
	from, to, err = postgres.Migrate(ctx, dsn)
	if err != nil || from != postgres.SchemaVersion || to != postgres.SchemaVersion {
		t.Fatalf("second Migrate = %d, %d, %v; want %d, %d", from, to, err, postgres.SchemaVersion, postgres.SchemaVersion)
	}
	for range 2 {
		s, err := postgres.Open(ctx, postgres.Options{DSN: dsn})
		if err != nil {
			t.Fatalf("Open of a migrated database: %v", err)
		}
		if err := s.Update(ctx, func(tx storage.Tx) error { return tx.PutMeta("k", "v") }); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	if vs := schemaVersions(t, dsn); fmt.Sprint(vs) != fmt.Sprint(allVersions()) {
		t.Errorf("schema_migrations = %v after Migrate twice and Open twice, want %v", vs, allVersions())
	}
}

// TestOpenRace: instances starting together on a fresh database all
// succeed and migrate it once.
func TestOpenRace(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 4
	errs := make([]error, n)
	stores := make([]*postgres.Store, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			stores[i], errs[i] = postgres.Open(context.Background(), postgres.Options{DSN: dsn, MaxConns: 2})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open #%d: %v", i, err)
			continue
		}
		if err := stores[i].Update(context.Background(), deposit(fmt.Sprint("s", i), "E1", int64(i))); err != nil {
			t.Errorf("Update on store #%d: %v", i, err)
		}
		stores[i].Close()
	}
	if vs := schemaVersions(t, dsn); fmt.Sprint(vs) != fmt.Sprint(allVersions()) {
		t.Errorf("schema_migrations = %v, want %v", vs, allVersions())
	}
}

func TestNewerSchema(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	s := open(t, postgres.Options{DSN: dsn})
	if err := s.Update(ctx, deposit("kept", "E1", 1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, v := range []int{postgres.SchemaVersion + 1, postgres.SchemaVersion + 10} {
		sql(t, dsn, `INSERT INTO schema_migrations(version, applied_at) VALUES ($1, 'later')`, v)
		want := fmt.Sprintf("database schema version %d is newer than this binary knows (%d): upgrade censusvault", v, postgres.SchemaVersion)
		if s, err := postgres.Open(ctx, postgres.Options{DSN: dsn}); err == nil || !strings.Contains(err.Error(), want) {
			if err == nil {
				s.Close()
			}
			t.Errorf("Open of schema version %d: err = %v, want one saying %q", v, err, want)
		}
		if from, _, err := postgres.Migrate(ctx, dsn); err == nil || !strings.Contains(err.Error(), want) || from != v {
			t.Errorf("Migrate of schema version %d: from %d, err = %v; want from %d and %q", v, from, err, v, want)
		}
	}
	// Refused, not damaged.
	sql(t, dsn, `DELETE FROM schema_migrations WHERE version > $1`, postgres.SchemaVersion)
	s = open(t, postgres.Options{DSN: dsn})
	if !stored(t, s, "kept") {
		t.Error("data lost across a refused Open")
	}
}

func TestOpenUnreachable(t *testing.T) {
	const password = "s3cret-pw"
	for _, tc := range []struct {
		name, dsn   string
		want        []string // in the error
		unavailable bool     // worth retrying later
	}{
		{"nothing listens", "postgres://postgres:" + password + "@127.0.0.1:1/none?connect_timeout=2",
			[]string{"127.0.0.1:1", "check that PostgreSQL is running"}, true},
		{"keyword=value", "host=127.0.0.1 port=1 user=postgres password=" + password + " dbname=none connect_timeout=2",
			[]string{"127.0.0.1:1"}, true},
		{"no such database", "", []string{"database name"}, false},
		{"malformed", "postgres://postgres:" + password + "@127.0.0.1:notaport/db",
			[]string{"malformed"}, false},
		{"malformed pool setting", "postgres://postgres:" + password + "@127.0.0.1:1/db?pool_max_conns=many",
			[]string{"pool setting", "malformed"}, false},
		{"unknown pool setting", "postgres://postgres:" + password + "@127.0.0.1:1/db?pool_max_conn=4",
			[]string{`"pool_max_conn"`}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.dsn == "" {
				// The test server, with a password and a database that
				// does not exist.
				u, err := url.Parse(pgtest.DSN(t))
				if err != nil {
					t.Fatal(err)
				}
				u.User = url.UserPassword(u.User.Username(), password)
				u.Path += "_missing"
				u.RawQuery = "connect_timeout=2"
				tc.dsn = u.String()
				tc.want = append(tc.want, u.Host)
			}
			start := time.Now()
			s, err := postgres.Open(context.Background(), postgres.Options{DSN: tc.dsn})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Open took %v to fail", d)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error shows the password: %v", err)
			}
			// pgx's connection error holds the whole configuration,
			// password included, for whoever unwraps it.
			var ce *pgconn.ConnectError
			if errors.As(err, &ce) {
				t.Errorf("error wraps pgx's ConnectError, which carries the password")
			}
			if errors.Is(err, storage.ErrUnavailable) != tc.unavailable {
				t.Errorf("errors.Is(%v, ErrUnavailable) = %v, want %v", err, !tc.unavailable, tc.unavailable)
			}
			if _, _, err := postgres.Migrate(context.Background(), tc.dsn); err == nil || strings.Contains(err.Error(), password) {
				t.Errorf("Migrate: err = %v, want a failure without the password", err)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	ctx := context.Background()
	if _, err := postgres.Open(ctx, postgres.Options{}); err == nil {
		t.Error("Open without a DSN succeeded")
	}
	dsn := pgtest.DSN(t)
	if _, err := postgres.Open(ctx, postgres.Options{DSN: dsn, MaxConns: 1}); err == nil {
		t.Error("Open with MaxConns 1 succeeded")
	}
	// pgxpool's setting is understood, not sent to the server (which
	// would refuse an unknown parameter).
	s := open(t, postgres.Options{DSN: dsn + "?pool_max_conns=3&application_name=cvtest"})
	if err := s.Update(ctx, func(tx storage.Tx) error { return tx.PutMeta("k", "v") }); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		query string
		ok    bool
	}{
		{"pool_max_conns=1", false},
		{"pool_max_conns=2", true},
		{"pool_max_conns=0", false},
		{"pool_max_conns=-3", false},
		{"pool_max_conns=x", false},
		{"pool_min_conns=2&pool_max_conns=2", true},
		{"pool_min_idle_conns=3&pool_max_conn_idle_time=1m&pool_health_check_period=10s&pool_max_conn_lifetime=1h&pool_max_conn_lifetime_jitter=1s&pool_ping_timeout=2s", true},
		{"pool_max_conn_idle_time=soon", false},
		{"pool_ping_timeout=5", false},
		{"pool_size=4", false},
	} {
		t.Run(tc.query, func(t *testing.T) {
			s, err := postgres.Open(ctx, postgres.Options{DSN: dsn + "?" + tc.query})
			if (err == nil) != tc.ok {
				t.Fatalf("Open: err = %v, want success %v", err, tc.ok)
			}
			if err != nil {
				return
			}
			defer s.Close()
			if err := s.View(ctx, func(storage.ReadTx) error { return nil }); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestCloseLeavesRunningViews: Close does not wait for a View in
// progress, which goes on working; its connection closes when it
// returns, and then the store holds none.
func TestCloseLeavesRunningViews(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn, MaxConns: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(context.Background(), deposit("s0", "E1", 0)); err != nil {
		t.Fatal(err)
	}
	inside, proceed := make(chan struct{}), make(chan struct{})
	viewErr := make(chan error, 1)
	go func() {
		viewErr <- s.View(context.Background(), func(tx storage.ReadTx) error {
			close(inside)
			<-proceed
			_, err := tx.Submission("s0")
			return err
		})
	}()
	<-inside
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waits for a running View")
	}
	close(proceed)
	if err := <-viewErr; err != nil {
		t.Errorf("View running across Close: %v", err)
	}
	if err := s.View(context.Background(), func(storage.ReadTx) error { return nil }); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("View after Close: err = %v, want ErrClosed", err)
	}
	// The server ends a session shortly after the client leaves.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := pgtest.TerminateConnections(t, dsn)
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open after Close and the View ended", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestInstancesShareOneChain: two stores on one database, as two broker
// instances, writing at once keep one audit chain with no gap, no
// duplicate and no fork, and every acknowledged write is stored.
func TestInstancesShareOneChain(t *testing.T) {
	dsn := pgtest.DSN(t)
	stores := []*postgres.Store{
		open(t, postgres.Options{DSN: dsn, MaxConns: 4}),
		open(t, postgres.Options{DSN: dsn, MaxConns: 4}),
	}
	const goroutines, perGoroutine = 16, 15
	type ack struct {
		id    string
		index int64
	}
	var mu sync.Mutex
	var acks []ack
	var wg sync.WaitGroup
	for si, s := range stores {
		for g := range goroutines {
			wg.Go(func() {
				for i := range perGoroutine {
					id := fmt.Sprintf("s%d-g%02d-%02d", si, g, i)
					var index int64
					err := s.Update(context.Background(), func(tx storage.Tx) error {
						rec, err := tx.AppendAudit(func(h storage.AuditHead) (storage.AuditRecord, error) {
							return record(h, "deposit "+id), nil
						})
						if err != nil {
							return err
						}
						index = rec.Index
						return tx.InsertSubmission(sub(id, fmt.Sprintf("E%d%02d", si, g), int64(i), rec.Index))
					})
					if err != nil {
						t.Errorf("Update %s: %v", id, err)
						return
					}
					mu.Lock()
					acks = append(acks, ack{id, index})
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	recs := auditLog(t, stores[0])
	if want := 2 * goroutines * perGoroutine; len(recs) != want || len(acks) != want {
		t.Fatalf("%d acknowledged, %d audit records; want %d of each", len(acks), len(recs), want)
	}
	for _, a := range acks {
		if got := string(recs[a.index].Event); got != "deposit "+a.id {
			t.Errorf("record %d is %q, but Update %s was given that index", a.index, got, a.id)
		}
	}
	err := stores[1].View(context.Background(), func(tx storage.ReadTx) error {
		h, err := tx.AuditHead()
		if err != nil {
			return err
		}
		if n := int64(len(recs)); h.Next != n || h.ChainHash != recs[n-1].ChainHash {
			t.Errorf("AuditHead = %+v, want the end of the log (%d)", h, n)
		}
		for _, a := range acks {
			s, err := tx.Submission(a.id)
			if err != nil {
				return fmt.Errorf("acknowledged %s: %w", a.id, err)
			}
			if s.AuditIndex != a.index {
				t.Errorf("Submission(%s).AuditIndex = %d, want %d", a.id, s.AuditIndex, a.index)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSameSubmissionAtTwoInstances: the same submission id arriving at two
// instances at the same moment is stored once. The broker's Update looks
// for the id first and inserts only if it is absent; the audit head lock
// serializes the two, so the second sees the first's row and answers with
// it, and both Updates succeed.
func TestSameSubmissionAtTwoInstances(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := open(t, postgres.Options{DSN: dsn, MaxConns: 4})
	b := open(t, postgres.Options{DSN: dsn, MaxConns: 4})
	type outcome struct {
		inserted bool
		saw      string // Depositor of the row found, if not inserted
		err      error
	}
	put := func(s storage.Store, id, depositor string, hh int64) outcome {
		var o outcome
		o.err = s.Update(context.Background(), func(tx storage.Tx) error {
			o = outcome{}
			prev, err := tx.Submission(id)
			if err == nil {
				o.saw = prev.Depositor
				_, err := tx.AppendAudit(func(h storage.AuditHead) (storage.AuditRecord, error) {
					return record(h, "replayed "+id+" at "+depositor), nil
				})
				return err
			}
			if !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			rec, err := tx.AppendAudit(func(h storage.AuditHead) (storage.AuditRecord, error) {
				return record(h, "deposit "+id+" at "+depositor), nil
			})
			if err != nil {
				return err
			}
			s := sub(id, "E1", hh, rec.Index)
			s.Depositor = depositor
			if err := tx.InsertSubmission(s); err != nil {
				return err
			}
			o.inserted = true
			return nil
		})
		return o
	}
	const ids = 40
	for i := range ids {
		id := fmt.Sprintf("dup-%02d", i)
		start := make(chan struct{})
		var oa, ob outcome
		var wg sync.WaitGroup
		wg.Go(func() { <-start; oa = put(a, id, "instance-a", int64(i)) })
		wg.Go(func() { <-start; ob = put(b, id, "instance-b", int64(i)) })
		close(start)
		wg.Wait()
		if oa.err != nil || ob.err != nil {
			t.Fatalf("%s: Updates returned %v and %v, want both nil", id, oa.err, ob.err)
		}
		switch {
		case oa.inserted && !ob.inserted:
			if ob.saw != "instance-a" {
				t.Errorf("%s: instance b saw %q, want the winner's row", id, ob.saw)
			}
		case ob.inserted && !oa.inserted:
			if oa.saw != "instance-b" {
				t.Errorf("%s: instance a saw %q, want the winner's row", id, oa.saw)
			}
		default:
			t.Errorf("%s: inserted by a: %v, by b: %v; want exactly one", id, oa.inserted, ob.inserted)
		}
	}
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var rows, distinct int
	if err := c.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT id) FROM submissions`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != ids || distinct != ids {
		t.Errorf("submissions has %d rows, %d ids; want %d of each", rows, distinct, ids)
	}
	if n := len(auditLog(t, a)); n != 2*ids {
		t.Errorf("audit log has %d records, want %d (a deposit and a replay per id)", n, 2*ids)
	}
}

// watch starts w.Watch and returns its topics. It returns once the watch
// is known to be listening: another store writes meta until it arrives.
func watch(t *testing.T, w storage.Watcher, writer storage.Store) (topics <-chan string, done <-chan error, cancel func()) {
	t.Helper()
	ctx, cancelCtx := context.WithCancel(context.Background())
	ch := make(chan string, 1000)
	errc := make(chan error, 1)
	go func() {
		errc <- w.Watch(ctx, func(topic string) {
			select {
			case ch <- topic:
			default:
			}
		})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if time.Now().After(deadline) {
			cancelCtx()
			t.Fatal("Watch heard nothing for 10s while meta changed every 100ms")
		}
		if err := writer.Update(context.Background(), func(tx storage.Tx) error { return tx.PutMeta("ping", time.Now().String()) }); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ch:
			// Let the pings still in flight arrive, then forget them.
			time.Sleep(50 * time.Millisecond)
			for len(ch) > 0 {
				<-ch
			}
			return ch, errc, cancelCtx
		case err := <-errc:
			cancelCtx()
			t.Fatalf("Watch returned: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestWatchAcrossInstances: a change committed through one instance
// reaches another's Watch within a second; a rolled-back one never does.
func TestWatchAcrossInstances(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := open(t, postgres.Options{DSN: dsn, MaxConns: 4})
	b := open(t, postgres.Options{DSN: dsn, MaxConns: 4})
	if err := a.Update(context.Background(), func(tx storage.Tx) error {
		return errors.Join(tx.InsertUser(&storage.User{Name: "alice", TokenHash: "aa", CreatedAt: time.Now()}),
			tx.PutDataKey(&storage.DataKey{Class: "identifying", Commune: "C1", Version: 1, Wrapped: []byte("d"), CreatedAt: time.Now()}))
	}); err != nil {
		t.Fatal(err)
	}
	topics, done, cancel := watch(t, b, a)
	defer cancel()
	// A shredded key must leave every instance's cache.
	shredC1 := func(tx storage.Tx) error {
		n, err := tx.ShredDataKeys("identifying", []string{"C1"}, time.Now())
		if err == nil && n != 1 {
			err = fmt.Errorf("ShredDataKeys = %d, want 1", n)
		}
		return err
	}

	abort := errors.New("abort")
	for _, step := range []struct {
		name   string
		want   string
		commit bool
		fn     func(storage.Tx) error
	}{
		{"rolled-back PutKey", storage.TopicKeys, false, func(tx storage.Tx) error {
			return tx.PutKey(&storage.Key{Purpose: "ingest", Version: 1, Wrapped: []byte("k"), CreatedAt: time.Now()})
		}},
		{"PutKey", storage.TopicKeys, true, func(tx storage.Tx) error {
			return tx.PutKey(&storage.Key{Purpose: "ingest", Version: 1, Wrapped: []byte("k"), CreatedAt: time.Now()})
		}},
		{"rolled-back RevokeUser", storage.TopicUsers, false, func(tx storage.Tx) error { return tx.RevokeUser("alice", time.Now()) }},
		{"RevokeUser", storage.TopicUsers, true, func(tx storage.Tx) error { return tx.RevokeUser("alice", time.Now()) }},
		{"rolled-back ShredDataKeys", storage.TopicKeys, false, shredC1},
		{"ShredDataKeys", storage.TopicKeys, true, shredC1},
		{"rolled-back PutMeta", storage.TopicMeta, false, func(tx storage.Tx) error { return tx.PutMeta("policy_sha256", "x") }},
		{"PutMeta", storage.TopicMeta, true, func(tx storage.Tx) error { return tx.PutMeta("policy_sha256", "y") }},
	} {
		start := time.Now()
		err := a.Update(context.Background(), func(tx storage.Tx) error {
			if err := step.fn(tx); err != nil {
				return err
			}
			if !step.commit {
				return abort
			}
			return nil
		})
		if step.commit && err != nil || !step.commit && !errors.Is(err, abort) {
			t.Fatalf("%s: Update: %v", step.name, err)
		}
		wait := time.Second
		if !step.commit {
			wait = 300 * time.Millisecond
		}
		select {
		case topic := <-topics:
			if !step.commit {
				t.Errorf("%s: notified %q", step.name, topic)
			} else if topic != step.want {
				t.Errorf("%s: notified %q, want %q", step.name, topic, step.want)
			} else {
				t.Logf("%s: notified after %v", step.name, time.Since(start))
			}
		case err := <-done:
			t.Fatalf("Watch returned: %v", err)
		case <-time.After(wait):
			if step.commit {
				t.Errorf("%s: no notification within %v", step.name, wait)
			}
		}
	}
}

// TestWatchConnectionLost: Watch returns an error wrapping ErrUnavailable
// when its connection is cut, and a new Watch works.
func TestWatchConnectionLost(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := open(t, postgres.Options{DSN: dsn, MaxConns: 4})
	b := open(t, postgres.Options{DSN: dsn, MaxConns: 4})
	_, done, cancel := watch(t, b, a)
	defer cancel()
	if n := pgtest.TerminateConnections(t, dsn); n == 0 {
		t.Fatal("terminated no connections")
	}
	select {
	case err := <-done:
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("Watch after its connection was cut: err = %v, want ErrUnavailable", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch still running 5s after its connection was cut")
	}
	topics, _, cancel2 := watch(t, b, a)
	defer cancel2()
	if err := a.Update(context.Background(), func(tx storage.Tx) error {
		return tx.PutKey(&storage.Key{Purpose: "ingest", Version: 1, Wrapped: []byte("k"), CreatedAt: time.Now()})
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case topic := <-topics:
		if topic != storage.TopicKeys {
			t.Errorf("notified %q, want keys", topic)
		}
	case <-time.After(time.Second):
		t.Error("the new Watch heard nothing")
	}
}

// TestRecoversAfterTerminate: connections the server dropped while idle
// are replaced without failing anything: no fn has run when the store
// finds out.
func TestRecoversAfterTerminate(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := open(t, postgres.Options{DSN: dsn, MaxConns: 5})
	for i := range 3 {
		if err := s.Update(context.Background(), deposit(fmt.Sprint("s", i), "E1", int64(i))); err != nil {
			t.Fatal(err)
		}
		// Three Views at once leave three idle read connections.
		var wg sync.WaitGroup
		var inside sync.WaitGroup
		inside.Add(3)
		for range 3 {
			wg.Go(func() {
				if err := s.View(context.Background(), func(tx storage.ReadTx) error {
					inside.Done()
					inside.Wait()
					_, err := tx.Submission("s0")
					return err
				}); err != nil {
					t.Errorf("View: %v", err)
				}
			})
		}
		wg.Wait()
		if n := pgtest.TerminateConnections(t, dsn); n != 4 {
			t.Fatalf("terminated %d connections, want the writer's and three readers'", n)
		}
		if !stored(t, s, "s0") {
			t.Fatal("s0 missing")
		}
	}
	if err := s.Update(context.Background(), deposit("after", "E1", 9)); err != nil {
		t.Fatalf("Update after its connection was cut: %v", err)
	}
	if !stored(t, s, "after") {
		t.Error("submission missing")
	}
	if n := len(auditLog(t, s)); n != 4 {
		t.Errorf("audit log has %d records, want 4", n)
	}
}

// TestConnectionLossUnderLoad: connections cut while Updates run. Every
// Update that returned nil is stored; every other one failed with
// ErrUnavailable; the store recovers by itself.
func TestConnectionLossUnderLoad(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := open(t, postgres.Options{DSN: dsn, MaxConns: 4})
	const writers = 8
	var mu sync.Mutex
	var acked, failed []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%04d", w, i)
				err := s.Update(context.Background(), deposit(id, fmt.Sprint("E", w), int64(i)))
				mu.Lock()
				if err == nil {
					acked = append(acked, id)
				} else {
					failed = append(failed, id)
					if !errors.Is(err, storage.ErrUnavailable) {
						t.Errorf("Update %s: err = %v, want ErrUnavailable", id, err)
					}
				}
				mu.Unlock()
			}
		})
	}
	cut := 0
	for range 4 {
		time.Sleep(150 * time.Millisecond)
		cut += pgtest.TerminateConnections(t, dsn)
	}
	time.Sleep(150 * time.Millisecond)
	close(stop)
	wg.Wait()
	if cut == 0 {
		t.Fatal("terminated no connections")
	}
	t.Logf("%d acknowledged, %d failed, %d connections cut", len(acked), len(failed), cut)
	if len(acked) == 0 {
		t.Fatal("nothing acknowledged")
	}

	// Recovered, without reopening.
	if err := s.Update(context.Background(), deposit("after", "E9", 0)); err != nil {
		t.Fatalf("Update after the cuts: %v", err)
	}
	acked = append(acked, "after")
	for _, id := range acked {
		if !stored(t, s, id) {
			t.Errorf("acknowledged %s is missing", id)
		}
	}
	// A failed Update may have committed after all (the connection died
	// during COMMIT), but never without its audit record.
	storedFailed := 0
	for _, id := range failed {
		if stored(t, s, id) {
			storedFailed++
		}
	}
	if n := len(auditLog(t, s)); n != len(acked)+storedFailed {
		t.Errorf("audit log has %d records for %d stored submissions", n, len(acked)+storedFailed)
	}
}

// TestWriteTimeout: a batch that cannot get the audit head lock (another
// session holds it) fails with ErrUnavailable after WriteTimeout and
// writes nothing; the store writes again once the lock is free.
func TestWriteTimeout(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	s := open(t, postgres.Options{DSN: dsn, MaxConns: 4, WriteTimeout: 300 * time.Millisecond})
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	lock := func() {
		t.Helper()
		if _, err := c.Exec(ctx, `BEGIN`); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, `SELECT * FROM audit_head FOR UPDATE`); err != nil {
			t.Fatal(err)
		}
	}

	lock()
	start := time.Now()
	err = s.Update(ctx, deposit("s1", "E1", 1))
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Update while the head is locked elsewhere: err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Update took %v with a 300ms WriteTimeout", d)
	}
	if _, err := c.Exec(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if stored(t, s, "s1") {
		t.Error("an Update reported unavailable was stored")
	}

	// A lock held for less than WriteTimeout is waited for.
	lock()
	released := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, err := c.Exec(ctx, `ROLLBACK`)
		released <- err
	}()
	err = s.Update(ctx, deposit("s1", "E1", 1))
	if rerr := <-released; rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatalf("Update once the lock is released: %v", err)
	}
	if !stored(t, s, "s1") {
		t.Error("submission missing")
	}
}

// inOneBatch runs fns as concurrent Updates that the store commits
// together: a first Update holds the committer until all of them have
// queued behind it.
func inOneBatch(t *testing.T, s *postgres.Store, fns []func(storage.Tx) error) []error {
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
		wg.Go(func() { errs[i] = s.Update(ctx, fn) })
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

// TestGroupCommitIsolatesFailures: Updates committed in one batch fail
// alone: one that returns an error, panics, conflicts, or hides a failed
// statement from the store leaves its neighbours committed.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	s := open(t, postgres.Options{DSN: pgtest.DSN(t), MaxConns: 4})
	abort := errors.New("abort")
	var ids []string
	var fns []func(storage.Tx) error
	wantErr := map[int]error{}
	for i := range 12 {
		id := fmt.Sprintf("s%02d", i)
		ids = append(ids, id)
		fn := deposit(id, "E1", int64(i))
		switch i {
		case 1, 10:
			wantErr[i] = abort
			fn = func(tx storage.Tx) error {
				if err := deposit(id, "E1", int64(i))(tx); err != nil {
					return err
				}
				return abort
			}
		case 4:
			wantErr[i] = errors.New("swallowed")
			fn = func(tx storage.Tx) error {
				if err := deposit(id, "E1", int64(i))(tx); err != nil {
					return err
				}
				// A grant to a user that does not exist fails (foreign
				// key) and aborts the savepoint; the fn pretends not.
				_ = tx.AddGrant("nobody", storage.Grant{Role: "admin", Area: "VN"})
				return nil
			}
		case 6:
			wantErr[i] = errors.New("panic")
			fn = func(tx storage.Tx) error {
				if err := deposit(id, "E1", int64(i))(tx); err != nil {
					return err
				}
				panic("deliberate")
			}
		case 8:
			wantErr[i] = storage.ErrConflict
			fn = deposit(id, "E1", 0) // s00's household
		}
		fns = append(fns, fn)
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
		if err != nil && errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("Update %s: err = %v, a failure of its own reported as the database's", ids[i], err)
		}
	}
	ok := 0
	for i, id := range ids {
		if has := stored(t, s, id); has != (errs[i] == nil) {
			t.Errorf("Update %s returned %v, stored: %v", id, errs[i], has)
		}
		if errs[i] == nil {
			ok++
		}
	}
	if n := len(auditLog(t, s)); n != ok {
		t.Errorf("audit log has %d records for %d committed Updates", n, ok)
	}
}

// TestCloseWhileUpdating: Close while Updates arrive lets each finish,
// committed or refused with ErrClosed; none hangs, and every one
// acknowledged is stored.
func TestCloseWhileUpdating(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	s, err := postgres.Open(ctx, postgres.Options{DSN: dsn, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				id := fmt.Sprintf("w%d-%d", w, i)
				err := s.Update(ctx, deposit(id, fmt.Sprint("E", w), int64(i)))
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
		})
	}
	time.Sleep(100 * time.Millisecond)
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
	if err := s.View(ctx, func(storage.ReadTx) error { return nil }); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("View after Close: err = %v, want ErrClosed", err)
	}
	if err := s.Watch(ctx, func(string) {}); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Watch after Close: err = %v, want ErrClosed", err)
	}

	s2 := open(t, postgres.Options{DSN: dsn})
	for _, id := range acked {
		if !stored(t, s2, id) {
			t.Errorf("acknowledged %s is missing after Close", id)
		}
	}
	if n := len(auditLog(t, s2)); n != len(acked) {
		t.Errorf("audit log has %d records for %d acknowledged Updates", n, len(acked))
	}
	t.Logf("%d Updates acknowledged before Close", len(acked))
}

// TestViewDeadline: a View that cannot get a connection before its
// deadline (all are taken) fails with ErrUnavailable.
func TestViewDeadline(t *testing.T) {
	s := open(t, postgres.Options{DSN: pgtest.DSN(t), MaxConns: 2})
	holding, release := make(chan struct{}), make(chan struct{})
	go s.View(context.Background(), func(storage.ReadTx) error {
		close(holding)
		<-release
		return nil
	})
	<-holding
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := s.View(ctx, func(storage.ReadTx) error { return nil })
	if !errors.Is(err, storage.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("View with every connection taken: err = %v, want ErrUnavailable and DeadlineExceeded", err)
	}
}

// TestGrantsOrderIsBytewise: grants come back in byte order whatever the
// database's locale, as the broker hashes them in that order.
func TestGrantsOrderIsBytewise(t *testing.T) {
	s := open(t, postgres.Options{DSN: pgtest.DSN(t), MaxConns: 2})
	names := []string{"b", "B", "a", "_x", "Ánh", "anh", "Z"}
	err := s.Update(context.Background(), func(tx storage.Tx) error {
		for i, n := range names {
			if err := tx.InsertUser(&storage.User{Name: n, TokenHash: fmt.Sprint(i), CreatedAt: time.Now(),
				Grants: []storage.Grant{{Role: "r", Area: "VN"}}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := s.View(context.Background(), func(tx storage.ReadTx) error {
		return tx.Grants(func(u string, _ storage.Grant) error { got = append(got, u); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if want := "[B Z _x a anh b Ánh]"; fmt.Sprint(got) != want {
		t.Errorf("Grants order = %v, want %s", got, want)
	}
}

// TestPaging: Grants and AuditRecords read in pages; a callback may use
// the transaction between rows, and every row comes once.
func TestPaging(t *testing.T) {
	s := open(t, postgres.Options{DSN: pgtest.DSN(t), MaxConns: 2})
	const users, records = 2100, 1100 // past two pages of each
	err := s.Update(context.Background(), func(tx storage.Tx) error {
		if err := tx.InsertUser(&storage.User{Name: "u", TokenHash: "h", CreatedAt: time.Now()}); err != nil {
			return err
		}
		for i := range users {
			if err := tx.AddGrant("u", storage.Grant{Role: "r", Area: fmt.Sprintf("A%05d", i)}); err != nil {
				return err
			}
		}
		for i := range records {
			if _, err := tx.AppendAudit(func(h storage.AuditHead) (storage.AuditRecord, error) {
				return record(h, fmt.Sprint("e", i)), nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(context.Background(), func(tx storage.ReadTx) error {
		n := 0
		if err := tx.Grants(func(u string, g storage.Grant) error {
			if want := fmt.Sprintf("A%05d", n); g.Area != want {
				return fmt.Errorf("grant %d is %s, want %s", n, g.Area, want)
			}
			n++
			_, err := tx.Meta("nothing") // uses the transaction mid-iteration
			if !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			return nil
		}); err != nil {
			return err
		}
		if n != users {
			return fmt.Errorf("Grants gave %d, want %d", n, users)
		}
		for _, tc := range []struct {
			from       int64
			limit, get int
		}{{0, 0, records}, {0, 512, 512}, {0, 513, 513}, {511, 0, records - 511}, {100, 1000, 1000}, {records - 1, 0, 1}} {
			n := 0
			next := tc.from
			if err := tx.AuditRecords(tc.from, tc.limit, func(r storage.AuditRecord) (bool, error) {
				if r.Index != next {
					return false, fmt.Errorf("record %d after %d", r.Index, next-1)
				}
				next++
				n++
				_, err := tx.AuditHead()
				return true, err
			}); err != nil {
				return err
			}
			if n != tc.get {
				t.Errorf("AuditRecords(%d, %d) gave %d, want %d", tc.from, tc.limit, n, tc.get)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkUpdateParallel measures ingest throughput: each Update stores
// one submission with about 2 KiB of sealed data and its audit record,
// from many concurrent depositors, so group commit has batches to gather.
func BenchmarkUpdateParallel(b *testing.B) {
	for _, perCPU := range []int{1, 32} {
		b.Run(fmt.Sprintf("goroutines=%dxGOMAXPROCS", perCPU), func(b *testing.B) {
			s := open(b, postgres.Options{DSN: pgtest.DSN(b)})
			var n atomic.Int64
			b.SetParallelism(perCPU)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					if err := s.Update(context.Background(), deposit(fmt.Sprint("s", i), "E1", i)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
		})
	}
}
