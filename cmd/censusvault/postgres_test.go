package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker/testdeadline"
	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/postgres"
	"github.com/censusvault/censusvault/storage/postgres/pgtest"
	"github.com/google/uuid"
)

// pgVault initializes a vault on a fresh PostgreSQL database and returns
// its DSN and the first instance's data directory (which holds only the
// local key-provider identity).
func pgVault(t *testing.T) (dsn, dir string) {
	t.Helper()
	dsn = pgtest.DSN(t)
	dir = filepath.Join(t.TempDir(), "a")
	mustCV(t, "init", "--data", dir, "--store", dsn, "--areas", filepath.Join("testdata", "areas.csv"))
	if _, err := os.Stat(filepath.Join(dir, "vault.db")); err == nil {
		t.Fatal("init on PostgreSQL made a SQLite file")
	}
	return dsn, dir
}

// secondInstance makes another data directory holding copies of the key
// provider identities, as an operator does for a second broker.
func secondInstance(t *testing.T, dir string) string {
	t.Helper()
	d2 := filepath.Join(t.TempDir(), "b")
	if err := os.MkdirAll(d2, 0o700); err != nil {
		t.Fatal(err)
	}
	ids, _ := filepath.Glob(filepath.Join(dir, "keyprovider*.age"))
	if len(ids) != 3 {
		t.Fatalf("want the system and two class identities, found %v", ids)
	}
	for _, p := range ids {
		id, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d2, filepath.Base(p)), id, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return d2
}

// pgHousehold is a household of EA 18070-01 with a fresh id.
func pgHousehold(t *testing.T, id string, no int) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(household(t, 1), &m); err != nil {
		t.Fatal(err)
	}
	m["id"], m["household_no"] = id, no
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type ack struct {
	status  int
	receipt receipt
}

func postDeposit(hc *http.Client, base, token string, body []byte) (ack, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/v1/submissions", strings.NewReader(string(body)))
	if err != nil {
		return ack{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return ack{}, err
	}
	defer resp.Body.Close()
	a := ack{status: resp.StatusCode}
	if resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&a.receipt); err != nil {
			return a, err
		}
	}
	return a, nil
}

// storedOnce checks, through the storage API, that every acknowledged id
// is stored and that the EA holds exactly want current households.
func storedOnce(t *testing.T, dsn string, acked map[string]ack, want int64) {
	t.Helper()
	st, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.View(context.Background(), func(tx storage.ReadTx) error {
		for id, a := range acked {
			s, err := tx.Submission(id)
			if err != nil {
				return fmt.Errorf("acknowledged submission %s: %w", id, err)
			}
			if s.AuditIndex != a.receipt.AuditIndex {
				return fmt.Errorf("submission %s stored with audit index %d, receipt says %d", id, s.AuditIndex, a.receipt.AuditIndex)
			}
		}
		n, err := tx.Deposited([]string{"18070-01"})
		if err != nil {
			return err
		}
		if n["18070-01"] != want {
			return fmt.Errorf("EA 18070-01 holds %d households, want %d", n["18070-01"], want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Two serve processes on one database: deposits through both, the same
// submissions to both at once, one audit chain, and user and key changes
// seen by every instance within a second.
func TestTwoInstancesOnePostgres(t *testing.T) {
	dsn, d1 := pgVault(t)
	d2 := secondInstance(t, d1)
	token := addUser(t, d1, "enum-1", "enumerator", "18070-01", "--store", dsn)
	a := startServer(t, d1, "--store", dsn)
	b := startServer(t, d2, "--store", dsn)
	if a.recipient(t) != b.recipient(t) {
		t.Fatal("the two instances serve different ingest recipients")
	}
	rcpt := a.recipient(t)
	hc := &http.Client{Timeout: time.Until(testdeadline.Of(t))}

	const distinct, shared = 60, 30
	var mu sync.Mutex
	acked := map[string]ack{}
	sharedAcks := map[string][]ack{}
	var wg sync.WaitGroup
	var failures atomic.Int32
	send := func(base, id string, body []byte, shared bool) {
		defer wg.Done()
		r, err := postDeposit(hc, base, token, body)
		if err != nil || (r.status != http.StatusCreated && r.status != http.StatusOK) {
			failures.Add(1)
			t.Errorf("deposit %s to %s: %d %v", id, base, r.status, err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		acked[id] = r
		if shared {
			sharedAcks[id] = append(sharedAcks[id], r)
		}
	}
	no := 0
	for i := 0; i < distinct; i++ {
		no++
		id := uuid.NewString()
		base := a.base
		if i%2 == 1 {
			base = b.base
		}
		wg.Add(1)
		go send(base, id, encrypt(t, rcpt, pgHousehold(t, id, no)), false)
	}
	for i := 0; i < shared; i++ {
		no++
		id := uuid.NewString()
		ct := encrypt(t, rcpt, pgHousehold(t, id, no))
		wg.Add(2)
		go send(a.base, id, ct, true)
		go send(b.base, id, ct, true)
	}
	wg.Wait()
	if failures.Load() > 0 {
		t.FailNow()
	}
	for id, rs := range sharedAcks {
		if len(rs) != 2 {
			t.Fatalf("%s: %d answers", id, len(rs))
		}
		created := 0
		for _, r := range rs {
			if r.status == http.StatusCreated {
				created++
			}
		}
		if created != 1 {
			t.Errorf("%s sent to both instances at once: %d answers were 201, want exactly 1 (statuses %d, %d)", id, created, rs[0].status, rs[1].status)
		}
		if rs[0].receipt.Note != rs[1].receipt.Note || rs[0].receipt.AuditIndex != rs[1].receipt.AuditIndex {
			t.Errorf("%s: the two instances gave different receipts", id)
		}
	}
	storedOnce(t, dsn, acked, distinct+shared)

	// One chain, no fork, no gap — verified while both still run.
	r := mustCV(t, "audit", "verify", "--data", d1, "--store", dsn)
	if !strings.Contains(r.stdout, "audit chain OK") {
		t.Fatalf("audit verify: %s", r)
	}

	// A revocation by the CLI holds on both instances within a second.
	mustCV(t, "user", "revoke", "enum-1", "--data", d1, "--store", dsn)
	revoked := time.Now()
	for _, s := range []*server{a, b} {
		for {
			st, _ := s.do(t, http.MethodGet, "/v1/progress?area=18070-01", token, nil)
			if st == http.StatusUnauthorized {
				break
			}
			if time.Since(revoked) > time.Second {
				t.Fatalf("%s still accepts a token revoked %s ago", s.base, time.Since(revoked))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// A key rotation by the CLI reaches both instances within a second
	// (LISTEN/NOTIFY; polling alone takes up to two).
	r = mustCV(t, "keys", "rotate-ingest", "--data", d1, "--store", dsn)
	newRcpt := strings.TrimSpace(r.stdout)
	rotated := time.Now()
	for _, s := range []*server{a, b} {
		for s.recipient(t) != newRcpt {
			if time.Since(rotated) > time.Second {
				t.Fatalf("%s still serves the old ingest recipient %s after the rotation", s.base, time.Since(rotated))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	a.stop(t)
	b.stop(t)
}

// Cutting the server's database connections mid-load loses no
// acknowledged deposit, and the server recovers by itself.
func TestPostgresConnectionLossUnderLoad(t *testing.T) {
	dsn, dir := pgVault(t)
	token := addUser(t, dir, "enum-1", "enumerator", "18070-01", "--store", dsn)
	// One token is the whole load here: no per-user rate limit (that is
	// tested on its own), so that every answer is about the database.
	s := startServer(t, dir, "--store", dsn, "--user-rate", "-1")
	rcpt := s.recipient(t)
	hc := &http.Client{Timeout: time.Until(testdeadline.Of(t))}

	type sub struct {
		id   string
		body []byte
	}
	var mu sync.Mutex
	acked := map[string]ack{}
	var failed []sub
	var next atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				no := int(next.Add(1))
				id := uuid.NewString()
				body := encrypt(t, rcpt, pgHousehold(t, id, no))
				r, err := postDeposit(hc, s.base, token, body)
				mu.Lock()
				switch {
				case err == nil && (r.status == http.StatusCreated || r.status == http.StatusOK):
					acked[id] = r
				case err == nil && r.status == http.StatusServiceUnavailable, err != nil:
					failed = append(failed, sub{id, body})
				default:
					t.Errorf("deposit %s: unexpected HTTP %d", id, r.status)
				}
				mu.Unlock()
			}
		}()
	}
	cut := 0
	for i := 0; i < 3; i++ {
		time.Sleep(700 * time.Millisecond)
		cut += pgtest.TerminateConnections(t, dsn)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if cut == 0 {
		t.Fatal("terminated no connections: the test did not test anything")
	}
	t.Logf("%d acknowledged, %d refused while %d connections were cut", len(acked), len(failed), cut)

	// Recovered: the refused deposits go through on retry (200 if the
	// first try had committed after all, 201 otherwise).
	deadline := testdeadline.Of(t)
	for _, f := range failed {
		for {
			r, err := postDeposit(hc, s.base, token, f.body)
			if err == nil && (r.status == http.StatusCreated || r.status == http.StatusOK) {
				acked[f.id] = r
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the server did not recover: retry of %s: %d %v\n%s", f.id, r.status, err, s.log)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	storedOnce(t, dsn, acked, int64(len(acked)))
	r := mustCV(t, "audit", "verify", "--data", dir, "--store", dsn)
	if !strings.Contains(r.stdout, "audit chain OK") {
		t.Fatalf("audit verify: %s", r)
	}
	s.stop(t)
}

// An unreachable database stops serve at start with the reason.
func TestServeUnreachablePostgres(t *testing.T) {
	dir := newVault(t)
	dsn := "postgres://postgres:s3cret-pw@127.0.0.1:1/none?connect_timeout=2"
	start := time.Now()
	r := cv(t, "serve", "--data", dir, "--store", dsn, "--addr", freeAddr(t))
	if r.code == 0 {
		t.Fatalf("serve on an unreachable database exited 0:\n%s", r)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("serve took %s to give up", time.Since(start))
	}
	if !strings.Contains(r.stderr, "127.0.0.1:1") || strings.Contains(r.stderr, "s3cret-pw") {
		t.Errorf("the error should name the address and not the password:\n%s", r.stderr)
	}
}
