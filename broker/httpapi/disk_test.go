package httpapi_test

import (
	"bytes"
	"context"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/storage/sqlite"
)

// scanDir reads every file under dir and reports which of needles occur
// in which file.
func scanDir(t *testing.T, dir string, needles []string) (found map[string][]string, files map[string]int) {
	t.Helper()
	found, files = map[string][]string{}, map[string]int{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files[rel] = len(b)
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				found[n] = append(found[n], rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found, files
}

func TestPlaintextNeverOnDisk(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	ctx := context.Background()

	// Households full of distinctive values, in binary and armored age,
	// a correction (supersede), and refused deposits that carry them too.
	a := secretHousehold(eaA1, 1)
	v.receipt(v.deposit("enum-a1", v.seal(encode(t, a))), http.StatusCreated)
	b := secretHousehold(eaB1, 1)
	v.receipt(v.deposit("enum-b1", armored(t, v.Recipient, encode(t, b))), http.StatusCreated)
	c := secretHousehold(eaA1, 1)
	c["supersedes"] = a["id"]
	hhOf(c)["address"] = secretAddress + ", tổ 3"
	v.receipt(v.deposit("enum-a1", v.seal(encode(t, c))), http.StatusCreated)
	bad := secretHousehold(eaA1, 2)
	hhOf(bad)["dwelling_type"] = secretName
	if r := v.deposit("enum-a1", v.seal(encode(t, bad))); r.Status != http.StatusBadRequest {
		t.Fatalf("invalid deposit: %d", r.Status)
	}
	v.deposit("enum-b1", v.seal(encode(t, secretHousehold(eaA2, 1)))) // 403

	ids := []string{a["id"].(string), b["id"].(string), c["id"].(string)}
	check := func(when string) {
		t.Helper()
		found, files := scanDir(t, v.Dir, append(append([]string{}, secrets...), ids...))
		for _, s := range secrets {
			if len(found[s]) > 0 {
				t.Errorf("%s: %q is on disk in %v", when, s, found[s])
			}
		}
		// Positive control: the scan does see what is stored in clear
		// (submission ids are operational), so finding nothing above
		// means something.
		for _, id := range ids {
			if len(found[id]) == 0 {
				t.Errorf("%s: submission id %s not found on disk: is the scan reading the store? files: %v", when, id, files)
			}
		}
		if files[sqlite.FileName] == 0 || files[agekey.FileName] == 0 {
			t.Errorf("%s: data directory holds %v, want the database and the key provider file", when, files)
		}
	}
	check("while the vault runs")

	v.Server.Close()
	if err := v.B.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := v.Store.Close(); err != nil {
		t.Fatal(err)
	}
	check("after close")
	for _, f := range []string{sqlite.FileName, agekey.FileName} {
		fi, err := os.Stat(filepath.Join(v.Dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %04o: readable by group or others", f, fi.Mode().Perm())
		}
	}

	// The values are in there, sealed: the vault reopened from disk gives
	// them back through Open, so the check above is not passing because
	// the fields were dropped.
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(v.Dir, sqlite.FileName)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kp, err := agekey.Load(filepath.Join(v.Dir, agekey.FileName))
	if err != nil {
		t.Fatal(err)
	}
	br, err := broker.New(ctx, broker.Opts{Store: st, Keys: kp, Now: v.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct {
		m          hh
		address    string
		superseded bool
	}{
		{a, secretAddress, true},
		{b, secretAddress, false},
		{c, secretAddress + ", tổ 3", false},
	} {
		id := k.m["id"].(string)
		o, err := br.Open(ctx, broker.SubmissionID(id), crypto.Identifying, crypto.Analytic)
		if err != nil {
			t.Fatalf("Open(%s): %v", id, err)
		}
		text := func(key string) string { s, _ := o.Household[key].Text(); return s }
		if text("head_name") != secretName || text("address") != k.address || text("phone") != secretPhone {
			t.Errorf("Open(%s): household identifying fields not given back", id)
		}
		if n, _ := o.Household["dwelling_type"].Int(); n != 2 {
			t.Errorf("Open(%s): dwelling_type %d, want 2", id, n)
		}
		if len(o.Persons) != 2 {
			t.Fatalf("Open(%s): %d persons, want 2", id, len(o.Persons))
		}
		if s, _ := o.Persons[1]["full_name"].Text(); s != secretPerson {
			t.Errorf("Open(%s): second person's name not given back", id)
		}
		if y, _ := o.Persons[1]["birth_year"].Int(); y != 1971 {
			t.Errorf("Open(%s): birth_year %d, want 1971", id, y)
		}
		if o.Superseded != k.superseded || string(o.Area) != k.m["area"] {
			t.Errorf("Open(%s): superseded %v area %s", id, o.Superseded, o.Area)
		}
		// Asking for one class opens only that class.
		an, err := br.Open(ctx, broker.SubmissionID(id), crypto.Analytic)
		if err != nil {
			t.Fatal(err)
		}
		if !an.Household["head_name"].IsZero() || !an.Persons[0]["full_name"].IsZero() {
			t.Errorf("Open(%s, analytic) returned identifying fields", id)
		}
		if n, _ := an.Household["dwelling_type"].Int(); n != 2 {
			t.Errorf("Open(%s, analytic): dwelling_type missing", id)
		}
	}
}

func TestIngestRotation(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	ctx := context.Background()
	old := v.Recipient
	// A device fetched the recipient and encrypted before the rotation.
	early := v.seal(encode(t, household(eaA1, 1)))

	var (
		ver  int
		rcpt string
	)
	ev := v.oneEvent(func() {
		var err error
		ver, rcpt, err = v.B.RotateIngest(ctx, "cli:test", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
	})
	if ver != 2 || ev.Action != "keys.rotate_ingest" || ev.Actor != "cli:test" {
		t.Errorf("rotation: version %d, event %s by %s", ver, ev.Action, ev.Actor)
	}
	r := v.do(http.MethodGet, "/v1/ingest/recipient", "", nil, nil)
	served := strings.TrimSpace(string(r.Body))
	if served != rcpt || served == old.String() || !strings.HasPrefix(served, "age1pq1") {
		t.Fatalf("GET /v1/ingest/recipient = %q, want the new hybrid recipient %q", served, rcpt)
	}
	next, err := age.ParseHybridRecipient(served)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.B.RotateIngest(ctx, "cli:test", -time.Second); err == nil {
		t.Error("a negative grace period was accepted")
	}

	no := 10
	dep := func(r age.Recipient) int {
		no++
		return v.deposit("enum-a1", encryptTo(t, r, encode(t, household(eaA1, no)))).Status
	}
	if st := v.deposit("enum-a1", early).Status; st != http.StatusCreated {
		t.Errorf("deposit encrypted before the rotation: %d, want 201", st)
	}
	for _, k := range []struct {
		at             time.Duration // after the rotation
		oldOK, wantNew int
	}{
		{0, 201, 201},
		{time.Hour - time.Second, 201, 201},
		{time.Hour, 400, 201},
		{time.Hour + time.Second, 400, 201},
		{48 * time.Hour, 400, 201},
	} {
		v.Clock.Advance(start.Add(k.at).Sub(v.Clock.Now()))
		if st := dep(old); st != k.oldOK {
			t.Errorf("%s after rotation, old recipient: %d, want %d", k.at, st, k.oldOK)
		}
		if st := dep(next); st != k.wantNew {
			t.Errorf("%s after rotation, new recipient: %d, want %d", k.at, st, k.wantNew)
		}
	}
	// The rotation survives a restart: a second broker on the same store
	// serves the new recipient and refuses the expired one.
	kp, err := agekey.Load(filepath.Join(v.Dir, agekey.FileName))
	if err != nil {
		t.Fatal(err)
	}
	b2, err := broker.New(ctx, broker.Opts{Store: v.Store, Keys: kp, Now: v.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if b2.IngestRecipient() != rcpt {
		t.Errorf("after restart the recipient is %s, want %s", b2.IngestRecipient(), rcpt)
	}
}

func TestSealingBindsAD(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	ctx := context.Background()
	deposit := func(user, ea string, no int, name string) string {
		m := secretHousehold(ea, no)
		hhOf(m)["head_name"] = name
		v.receipt(v.deposit(user, v.seal(encode(t, m))), http.StatusCreated)
		return m["id"].(string)
	}
	donor := deposit("enum-a1", eaA1, 1, "Người Cho")
	victim := deposit("enum-a1", eaA1, 2, "Người Nhận")
	sameEA := deposit("enum-a1", eaA1, 3, "Người Thứ Ba")
	otherCommune := deposit("enum-b1", eaB1, 1, "Người Xã Khác")
	moved := deposit("enum-a1", eaA1, 4, "Người Bị Đổi")
	for _, id := range []string{donor, victim, sameEA, otherCommune, moved} {
		if _, err := v.B.Open(ctx, broker.SubmissionID(id), crypto.Identifying, crypto.Analytic); err != nil {
			t.Fatalf("Open(%s) before tampering: %v", id, err)
		}
	}
	db := v.rawDB()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	// Same commune, same class, same data key: only the associated data
	// tells the rows apart.
	exec(`UPDATE submissions SET ident = (SELECT ident FROM submissions WHERE id = ?) WHERE id = ?`, donor, victim)
	// Another class's ciphertext in the identifying column.
	exec(`UPDATE submissions SET ident = analytic WHERE id = ?`, sameEA)
	// Another commune's sealed fields.
	exec(`UPDATE submissions SET analytic = (SELECT analytic FROM submissions WHERE id = ?) WHERE id = ?`, otherCommune, donor)
	// The clear household number changed under the sealed values.
	exec(`UPDATE submissions SET household_no = 40 WHERE id = ?`, moved)

	for _, k := range []struct {
		id    string
		class crypto.Class
	}{
		{victim, crypto.Identifying},
		{sameEA, crypto.Identifying},
		{donor, crypto.Analytic},
		{moved, crypto.Identifying},
		{moved, crypto.Analytic},
	} {
		o, err := v.B.Open(ctx, broker.SubmissionID(k.id), k.class)
		if err == nil {
			t.Errorf("Open(%s, %s) after moving sealed bytes succeeded: %+v", k.id, k.class, o != nil)
			continue
		}
		if o != nil {
			t.Errorf("Open(%s, %s) failed but returned data", k.id, k.class)
		}
		for _, s := range []string{"Người Cho", "Người Nhận", "Người Xã Khác", secretAddress} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("the error %q carries a value", err)
			}
		}
	}
	// Untouched classes of tampered rows still open.
	if o, err := v.B.Open(ctx, broker.SubmissionID(victim), crypto.Analytic); err != nil || !o.Household["head_name"].IsZero() {
		t.Errorf("Open(victim, analytic) = %v: the analytic class was not touched", err)
	}
}
