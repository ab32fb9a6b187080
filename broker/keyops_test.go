package broker_test

// Key rotation, rewrap and crypto-shredding through the broker, on a real
// SQLite store, with the local age provider. The same operations against
// a real HashiCorp Vault server are in keys_vault_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/crypto/vaulttransit"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/sqlite"
	"github.com/google/uuid"
)

// The key tests' tree: Việt Nam › Hà Tĩnh › Hồng Lĩnh › four wards of two
// EAs each. Data keys are per commune, so communes are what the tests
// vary.
const (
	keyNation   = "VN"
	keyDistrict = "437"
	communeA    = "18070"
	communeB    = "18073"
)

var keyCommunes = []string{communeA, communeB, "18076", "18079"}

func keyAreas() string {
	var b strings.Builder
	b.WriteString("code,parent,level,name,planned_households\nVN,,nation,Việt Nam,\n42,VN,province,Tỉnh Hà Tĩnh,\n437,42,district,Thị xã Hồng Lĩnh,\n")
	for _, c := range keyCommunes {
		fmt.Fprintf(&b, "%s,437,commune,Phường %s,\n", c, c)
		for e := 1; e <= 2; e++ {
			fmt.Fprintf(&b, "%s-%02d,%s,ea,Địa bàn %02d,40\n", c, e, c, e)
		}
	}
	return b.String()
}

// ea is the e-th EA (1 or 2) of commune c.
func ea(c string, e int) string { return fmt.Sprintf("%s-%02d", c, e) }

// The values every test household carries, checked after opening.
const (
	wantHead     = "Nguyễn Văn Hùng"
	wantPhone    = "0912345678"
	wantDwelling = 2
	wantBirth    = 1968
)

// keyVault is a vault in a temporary directory: a real SQLite store, the
// key providers a test chose, and two users.
type keyVault struct {
	t      testing.TB
	dir    string
	store  *sqlite.Store
	b      *broker.Broker
	keys   crypto.KeyProvider
	class  map[crypto.Class]crypto.KeyProvider
	enum   *broker.Caller // enumerator over the whole district
	steer  *broker.Caller // steering committee, national: reads progress
	tokens map[string]string
	rcpt   *age.HybridRecipient
	no     int // the last household number used
}

type keyVaultOpts struct {
	keys     crypto.KeyProvider // nil: a new age identity in the data directory
	class    map[crypto.Class]crypto.KeyProvider
	maxCache int
	areas    string // the area tree's CSV; "": keyAreas()
}

const actor = "cli:keytest"

func newKeyVault(t testing.TB, o keyVaultOpts) *keyVault {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if o.areas == "" {
		o.areas = keyAreas()
	}
	tree, err := area.Load(strings.NewReader(o.areas))
	if err != nil {
		t.Fatal(err)
	}
	if o.keys == nil {
		if o.keys, err = agekey.Create(filepath.Join(dir, agekey.FileName)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(dir, sqlite.FileName), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := broker.Init(ctx, broker.InitOpts{Store: st, Keys: o.keys, Areas: tree, Name: "keys.test", Actor: actor}); err != nil {
		t.Fatal(err)
	}
	kv := &keyVault{t: t, dir: dir, store: st, keys: o.keys, class: o.class, tokens: map[string]string{}}
	kv.b = kv.open(o.keys, o.class, o.maxCache)
	for _, u := range []broker.NewUser{
		{Name: "enum", Role: policy.Enumerator, Area: keyDistrict},
		{Name: "steering", Role: policy.Steering, Area: keyNation},
	} {
		tok, err := kv.b.AddUser(ctx, actor, u)
		if err != nil {
			t.Fatal(err)
		}
		kv.tokens[string(u.Name)] = tok.Reveal()
	}
	kv.enum = kv.caller("enum")
	kv.steer = kv.caller("steering")
	if kv.rcpt, err = age.ParseHybridRecipient(kv.b.IngestRecipient()); err != nil {
		t.Fatal(err)
	}
	return kv
}

// open starts a new broker on the vault's store, closed at cleanup.
func (kv *keyVault) open(keys crypto.KeyProvider, class map[crypto.Class]crypto.KeyProvider, maxCache int) *broker.Broker {
	kv.t.Helper()
	b, err := kv.tryOpen(keys, class, maxCache)
	if err != nil {
		kv.t.Fatalf("broker.New: %v", err)
	}
	return b
}

// tryOpenFrom starts a broker on new providers while the stored keys are
// still wrapped by from, as a rewrap that switches providers does.
func (kv *keyVault) tryOpenFrom(keys crypto.KeyProvider, class map[crypto.Class]crypto.KeyProvider, from crypto.KeyProvider) (*broker.Broker, error) {
	b, err := broker.New(context.Background(), broker.Opts{Store: kv.store, Keys: keys, ClassKeys: class, MigrateFrom: from})
	if err != nil {
		return nil, err
	}
	kv.t.Cleanup(func() { b.Close(context.Background()) })
	return b, nil
}

func (kv *keyVault) tryOpen(keys crypto.KeyProvider, class map[crypto.Class]crypto.KeyProvider, maxCache int) (*broker.Broker, error) {
	// No per-user rate limit: the key tests' loads (a Vault outage under
	// load) come from one token and are about the keys; the limit is
	// tested in broker/httpapi.
	b, err := broker.New(context.Background(), broker.Opts{Store: kv.store, Keys: keys, ClassKeys: class, MaxCache: maxCache, Limits: broker.Limits{UserRate: -1}})
	if err != nil {
		return nil, err
	}
	kv.t.Cleanup(func() { b.Close(context.Background()) })
	return b, nil
}

func (kv *keyVault) caller(user string) *broker.Caller {
	kv.t.Helper()
	c, err := kv.b.Authenticate(context.Background(), "Bearer "+kv.tokens[user], "test")
	if err != nil {
		kv.t.Fatal(err)
	}
	return c
}

// household is a household of two in ea, as a device sends it.
func household(id, ea string, no int) []byte {
	m := map[string]any{
		"id": id, "form": "census2019", "form_version": 1, "area": ea, "household_no": no,
		"interviewed_at": "2019-04-05T09:30:00+07:00",
		"household": map[string]any{
			"head_name": wantHead, "address": "Số 12, ngõ 4, tổ dân phố 1", "phone": wantPhone,
			"dwelling_type": wantDwelling, "floor_area_m2": 65.5, "water_source": 3, "electricity": 1,
		},
		"persons": []any{
			map[string]any{"full_name": wantHead, "relationship": 1, "sex": 1, "birth_year": wantBirth, "ethnicity": 1},
			map[string]any{"full_name": "Trần Thị Lan", "relationship": 2, "sex": 2, "birth_year": 1971, "ethnicity": 1},
		},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// encrypt does what a device does: age-encrypt to the ingest recipient.
func (kv *keyVault) encrypt(plain []byte) []byte {
	kv.t.Helper()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, kv.rcpt)
	if err != nil {
		kv.t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		kv.t.Fatal(err)
	}
	return buf.Bytes()
}

// tryDeposit deposits a new household in ea through b and returns its
// submission id, whatever the outcome.
func (kv *keyVault) tryDeposit(b *broker.Broker, ea string) (broker.SubmissionID, error) {
	kv.no++
	id := uuid.NewString()
	ct := kv.encrypt(household(id, ea, kv.no))
	res, err := b.Deposit(context.Background(), kv.enum, int64(len(ct)), bytes.NewReader(ct))
	if err == nil && (!res.Created || string(res.Receipt.SubmissionID) != id) {
		kv.t.Fatalf("deposit of %s: created %v, receipt for %s", id, res.Created, res.Receipt.SubmissionID)
	}
	return broker.SubmissionID(id), err
}

func (kv *keyVault) deposit(ea string) broker.SubmissionID {
	kv.t.Helper()
	id, err := kv.tryDeposit(kv.b, ea)
	if err != nil {
		kv.t.Fatalf("deposit in %s: %v", ea, err)
	}
	return id
}

// checkOpen opens the classes of id through b and checks their values,
// and that no field of another sealed class came out.
func checkOpen(t testing.TB, b *broker.Broker, id broker.SubmissionID, classes ...crypto.Class) error {
	t.Helper()
	o, err := b.Open(context.Background(), id, classes...)
	if err != nil {
		return err
	}
	text := func(m map[string]form.Value, k string) string { s, _ := m[k].Text(); return s }
	num := func(m map[string]form.Value, k string) int64 { n, _ := m[k].Int(); return n }
	ident, anal := slices.Contains(classes, crypto.Identifying), slices.Contains(classes, crypto.Analytic)
	if len(o.Persons) != 2 {
		t.Errorf("%s: %d persons, want 2", id, len(o.Persons))
		return nil
	}
	if got := text(o.Household, "head_name") + "|" + text(o.Household, "phone") + "|" + text(o.Persons[0], "full_name"); ident && got != wantHead+"|"+wantPhone+"|"+wantHead {
		t.Errorf("%s: identifying fields opened wrong", id)
	} else if !ident && got != "||" {
		t.Errorf("%s: identifying fields came out without being asked for", id)
	}
	if d, y := num(o.Household, "dwelling_type"), num(o.Persons[0], "birth_year"); anal && (d != wantDwelling || y != wantBirth) {
		t.Errorf("%s: analytic fields opened wrong: dwelling_type %d, birth_year %d", id, d, y)
	} else if !anal && (d != 0 || y != 0) {
		t.Errorf("%s: analytic fields came out without being asked for", id)
	}
	return nil
}

// mustOpen checks that every id opens in both classes through b.
func mustOpen(t testing.TB, b *broker.Broker, ids ...broker.SubmissionID) {
	t.Helper()
	for _, id := range ids {
		if err := checkOpen(t, b, id, crypto.Identifying, crypto.Analytic); err != nil {
			t.Errorf("Open(%s): %v", id, err)
		}
	}
}

// sealed is what the store holds for id, nil if nothing.
func (kv *keyVault) sealed(id broker.SubmissionID) []storage.Sealed {
	kv.t.Helper()
	var s *storage.Submission
	err := kv.store.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		s, err = tx.Submission(string(id))
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		kv.t.Fatal(err)
	}
	return s.Sealed
}

// versions is "class:version" of each sealed part, sorted.
func (kv *keyVault) versions(id broker.SubmissionID) []string {
	kv.t.Helper()
	var out []string
	for _, s := range kv.sealed(id) {
		out = append(out, fmt.Sprintf("%s:%d", s.Class, s.KeyVersion))
	}
	slices.Sort(out)
	return out
}

// dataKey is one stored data key row.
func (kv *keyVault) dataKey(class crypto.Class, commune string, version int) *storage.DataKey {
	kv.t.Helper()
	var k *storage.DataKey
	if err := kv.store.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		k, err = tx.DataKey(string(class), commune, version)
		return err
	}); err != nil {
		kv.t.Fatalf("data key %s/%s/%d: %v", class, commune, version, err)
	}
	return k
}

// systemKey is the stored wrapping of a system key's newest version.
func (kv *keyVault) systemKey(purpose string) []byte {
	kv.t.Helper()
	var ks []storage.Key
	if err := kv.store.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		ks, err = tx.Keys(purpose)
		return err
	}); err != nil || len(ks) == 0 {
		kv.t.Fatalf("keys %s: %v (%d)", purpose, err, len(ks))
	}
	return ks[0].Wrapped
}

func (kv *keyVault) auditHead() int64 {
	kv.t.Helper()
	var h storage.AuditHead
	if err := kv.store.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		h, err = tx.AuditHead()
		return err
	}); err != nil {
		kv.t.Fatal(err)
	}
	return h.Next
}

// events are the audit events from index from on whose action is one of
// actions (all if none).
func (kv *keyVault) events(from int64, actions ...string) []*audit.Event {
	kv.t.Helper()
	var out []*audit.Event
	if err := kv.store.View(context.Background(), func(tx storage.ReadTx) error {
		return tx.AuditRecords(from, 0, func(r storage.AuditRecord) (bool, error) {
			ev, err := audit.Decode(r.Event)
			if err != nil {
				return false, err
			}
			if len(actions) == 0 || slices.Contains(actions, ev.Action) {
				out = append(out, ev)
			}
			return true, nil
		})
	}); err != nil {
		kv.t.Fatal(err)
	}
	return out
}

// deposited is the number of current households per area, summed over
// the EAs of each commune and overall ("").
func (kv *keyVault) deposited() map[string]int64 {
	kv.t.Helper()
	var eas []string
	for _, c := range keyCommunes {
		eas = append(eas, ea(c, 1), ea(c, 2))
	}
	var m map[string]int64
	if err := kv.store.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		m, err = tx.Deposited(eas)
		return err
	}); err != nil {
		kv.t.Fatal(err)
	}
	out := map[string]int64{}
	for e, n := range m {
		out[e[:5]] += n
		out[""] += n
	}
	return out
}

// dataKeyCounts renders KeyStatus.DataKeys compactly:
// "class v<version> <kek> live=<n> shredded=<n>".
func dataKeyCounts(st *broker.KeyStatus) []string {
	var out []string
	for _, d := range st.DataKeys {
		out = append(out, fmt.Sprintf("%s v%d %s live=%d shredded=%d", d.Class, d.Version, d.KEK, d.Live, d.Shredded))
	}
	return out
}

func keyStatus(t testing.TB, b *broker.Broker) *broker.KeyStatus {
	t.Helper()
	st, err := b.KeyStatus(context.Background())
	if err != nil {
		t.Fatalf("KeyStatus: %v", err)
	}
	return st
}

// checkAllWrappedBy checks that KeyStatus shows every data key and system
// key wrapped by the current key-encryption key of its class.
func checkAllWrappedBy(t testing.TB, st *broker.KeyStatus, want map[string]string) {
	t.Helper()
	for c, w := range want {
		if st.Current[c] != w {
			t.Errorf("KeyStatus current KEK of %s = %q, want %q", c, st.Current[c], w)
		}
	}
	for _, d := range st.DataKeys {
		if d.Live > 0 && d.KEK != want[d.Class] {
			t.Errorf("KeyStatus: %d %s data keys v%d wrapped by %q, want %q", d.Live, d.Class, d.Version, d.KEK, want[d.Class])
		}
	}
	if len(st.Keys) != 4 {
		t.Errorf("KeyStatus lists %d system keys, want 4 (ingest, receipt, audit, record)", len(st.Keys))
	}
	for _, k := range st.Keys {
		if k.KEK != want["system"] {
			t.Errorf("KeyStatus: system key %s v%d wrapped by %q, want %q", k.Purpose, k.Version, k.KEK, want["system"])
		}
	}
}

// ageLabel is the KEK label agekey gives an identity.
func ageLabel(t testing.TB, p *agekey.Provider) string {
	t.Helper()
	l, err := p.CurrentKEK(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(l, "age:") || l != "age:"+p.Fingerprint() {
		t.Fatalf("agekey label %q", l)
	}
	return l
}

func allAge(l string) map[string]string {
	return map[string]string{"system": l, string(crypto.Identifying): l, string(crypto.Analytic): l}
}

// TestRotateDEK: a rotation makes new deposits use the next data-key
// version in every commune while the records sealed under the previous
// one still open, and KeyStatus counts keys by class, version and KEK.
func TestRotateDEK(t *testing.T) {
	ctx := context.Background()
	kv := newKeyVault(t, keyVaultOpts{})
	kp := kv.keys.(*agekey.Provider)
	label := ageLabel(t, kp)

	v1 := []broker.SubmissionID{kv.deposit(ea(communeA, 1)), kv.deposit(ea(communeA, 2)), kv.deposit(ea(communeB, 1)), kv.deposit(ea(communeB, 2))}
	for _, id := range v1 {
		if got := kv.versions(id); !slices.Equal(got, []string{"analytic:1", "identifying:1"}) {
			t.Errorf("sealed parts of %s before rotation: %v", id, got)
		}
	}
	st := keyStatus(t, kv.b)
	if st.DEKVersion != 1 {
		t.Errorf("DEKVersion = %d, want 1", st.DEKVersion)
	}
	want := []string{
		"analytic v1 " + label + " live=2 shredded=0",
		"identifying v1 " + label + " live=2 shredded=0",
	}
	if got := dataKeyCounts(st); !slices.Equal(got, want) {
		t.Errorf("data keys before rotation:\n got %q\nwant %q", got, want)
	}
	checkAllWrappedBy(t, st, allAge(label))

	head := kv.auditHead()
	v, err := kv.b.RotateDEK(ctx, actor)
	if err != nil || v != 2 {
		t.Fatalf("RotateDEK = %d, %v; want 2", v, err)
	}
	if evs := kv.events(head, "keys.rotate"); len(evs) != 1 || evs[0].Actor != actor || !slices.Equal(evs[0].Resources, []string{"dek-version:2"}) || evs[0].Outcome != "ok" {
		t.Errorf("keys.rotate events: %+v", evs)
	}
	v2 := []broker.SubmissionID{kv.deposit(ea(communeA, 1)), kv.deposit(ea(communeB, 2))}
	for _, id := range v2 {
		if got := kv.versions(id); !slices.Equal(got, []string{"analytic:2", "identifying:2"}) {
			t.Errorf("sealed parts of %s after rotation: %v, want version 2", id, got)
		}
	}
	// The old records are untouched by the rotation.
	for _, id := range v1 {
		if got := kv.versions(id); !slices.Equal(got, []string{"analytic:1", "identifying:1"}) {
			t.Errorf("sealed parts of %s after rotation: %v", id, got)
		}
	}
	mustOpen(t, kv.b, append(v1, v2...)...)
	// So does a broker that starts after the rotation, with nothing cached.
	mustOpen(t, kv.open(kp, nil, 0), append(v1, v2...)...)

	st = keyStatus(t, kv.b)
	want = []string{
		"analytic v1 " + label + " live=2 shredded=0",
		"analytic v2 " + label + " live=2 shredded=0",
		"identifying v1 " + label + " live=2 shredded=0",
		"identifying v2 " + label + " live=2 shredded=0",
	}
	if st.DEKVersion != 2 || !slices.Equal(dataKeyCounts(st), want) {
		t.Errorf("after rotation: DEKVersion %d, data keys\n got %q\nwant %q", st.DEKVersion, dataKeyCounts(st), want)
	}

	// A second rotation with no deposit in between makes no key.
	if v, err := kv.b.RotateDEK(ctx, actor); err != nil || v != 3 {
		t.Fatalf("second RotateDEK = %d, %v; want 3", v, err)
	}
	if st := keyStatus(t, kv.b); st.DEKVersion != 3 || len(st.DataKeys) != 4 {
		t.Errorf("after a rotation without deposits: DEKVersion %d, %q", st.DEKVersion, dataKeyCounts(st))
	}
}

// TestKeyStatusHasNoKeyMaterial: what status reports is labels and
// counts; no wrapped key and no identity appears in it.
func TestKeyStatusHasNoKeyMaterial(t *testing.T) {
	kv := newKeyVault(t, keyVaultOpts{})
	kv.deposit(ea(communeA, 1))
	out := fmt.Sprintf("%+v %#v", *keyStatus(t, kv.b), keyStatus(t, kv.b))
	identity, err := os.ReadFile(filepath.Join(kv.dir, agekey.FileName))
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{
		"identifying data key": kv.dataKey(crypto.Identifying, communeA, 1).Wrapped,
		"analytic data key":    kv.dataKey(crypto.Analytic, communeA, 1).Wrapped,
		"ingest key":           kv.systemKey("ingest"),
		"receipt key":          kv.systemKey("receipt-signer"),
	}
	for _, line := range strings.Split(string(identity), "\n") {
		if strings.HasPrefix(line, "AGE-SECRET-KEY") {
			secrets["identity"] = []byte(line)
		}
	}
	if secrets["identity"] == nil {
		t.Fatal("no identity line in the key provider file")
	}
	for name, s := range secrets {
		// The body after agekey's label line: random, so any 24 bytes
		// of it would not appear by chance.
		body := s[len(s)-24:]
		if strings.Contains(out, string(body)) || strings.Contains(out, fmt.Sprintf("%x", body)) || strings.Contains(out, fmt.Sprint(body[:8])) {
			t.Errorf("KeyStatus shows the %s", name)
		}
	}
	if strings.Contains(out, "AGE-SECRET-KEY") {
		t.Error("KeyStatus shows an age identity")
	}
}

// rewrapScenario deposits under two data-key versions in two communes and
// returns the ids and how many keys a switching rewrap must move: every
// data key and the four system keys.
func rewrapScenario(t *testing.T, kv *keyVault) (ids []broker.SubmissionID, keys int) {
	t.Helper()
	ids = []broker.SubmissionID{kv.deposit(ea(communeA, 1)), kv.deposit(ea(communeA, 2)), kv.deposit(ea(communeB, 1)), kv.deposit(ea(communeB, 2))}
	if _, err := kv.b.RotateDEK(context.Background(), actor); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, kv.deposit(ea(communeA, 2)), kv.deposit(ea(communeB, 1)))
	return ids, 2*2*2 + 4
}

// TestRewrapToNewAgeIdentity: switching to a new age identity with
// Rewrap(From: the old one) on a broker built on the new one moves every
// data key and system key, touches no record, is audited, and leaves a
// vault that opens with the new identity only. Running it again does
// nothing.
func TestRewrapToNewAgeIdentity(t *testing.T) {
	ctx := context.Background()
	kv := newKeyVault(t, keyVaultOpts{})
	oldKP := kv.keys.(*agekey.Provider)
	ids, total := rewrapScenario(t, kv)
	before := map[broker.SubmissionID][]storage.Sealed{}
	for _, id := range ids {
		before[id] = kv.sealed(id)
	}
	newKP, err := agekey.Create(filepath.Join(kv.dir, "new-"+agekey.FileName))
	if err != nil {
		t.Fatal(err)
	}
	oldLabel, newLabel := ageLabel(t, oldKP), ageLabel(t, newKP)
	if oldLabel == newLabel {
		t.Fatal("two identities with one label")
	}

	b, err := kv.tryOpenFrom(newKP, nil, oldKP)
	if err != nil {
		// Rewrap(From) is the switching operation, and it runs on a
		// broker built on the providers it switches to.
		t.Fatalf("broker.New on the new identity, to run Rewrap(From: old) on it: %v", err)
	}
	head := kv.auditHead()
	var progress [][2]int
	n, err := b.Rewrap(ctx, actor, broker.RewrapOpts{From: oldKP, Batch: 4, Progress: func(done, total int) {
		progress = append(progress, [2]int{done, total})
	}})
	if err != nil || n != total {
		t.Fatalf("Rewrap = %d, %v; want %d keys", n, err, total)
	}
	if len(progress) != 3 || progress[len(progress)-1] != [2]int{total, total} {
		t.Errorf("progress %v: want 3 batches of at most 4 ending at %d/%d", progress, total, total)
	}
	for i := 1; i < len(progress); i++ {
		if progress[i][0] <= progress[i-1][0] {
			t.Errorf("progress went backwards: %v", progress)
		}
	}
	checkAllWrappedBy(t, keyStatus(t, b), allAge(newLabel))
	for _, id := range ids {
		if got := kv.sealed(id); !sealedEqual(got, before[id]) {
			t.Errorf("Rewrap changed the sealed record %s", id)
		}
	}
	evs := kv.events(head, "keys.rewrap")
	if len(evs) != 2 || evs[0].Outcome != "started" || evs[1].Outcome != "ok" || evs[1].Reason != fmt.Sprintf("%d keys re-wrapped", total) || evs[1].Actor != actor {
		t.Errorf("keys.rewrap events: %+v", evs)
	}

	// Only the new identity opens the vault now.
	mustOpen(t, kv.open(newKP, nil, 0), ids...)
	if _, err := kv.tryOpen(oldKP, nil, 0); err == nil {
		t.Error("a broker still starts on the old identity after the rewrap")
	}
	if _, err := oldKP.UnwrapKey(ctx, kv.dataKey(crypto.Identifying, communeA, 1).Wrapped); !errors.Is(err, crypto.ErrDecrypt) {
		t.Errorf("old identity unwraps a re-wrapped data key: %v", err)
	}
	if err := os.Remove(filepath.Join(kv.dir, agekey.FileName)); err != nil {
		t.Fatal(err)
	}
	reloaded, err := agekey.Load(filepath.Join(kv.dir, "new-"+agekey.FileName))
	if err != nil {
		t.Fatal(err)
	}
	b2 := kv.open(reloaded, nil, 0)
	mustOpen(t, b2, ids...)
	// New deposits: under a moved data key, and under a new one.
	for _, e := range []string{ea(communeA, 1), ea("18076", 1)} {
		id, err := kv.tryDeposit(b2, e)
		if err != nil {
			t.Fatalf("deposit in %s after the switch: %v", e, err)
		}
		mustOpen(t, b2, id)
	}

	// Again: nothing left to do, whether it is told where from or not.
	for _, o := range []broker.RewrapOpts{{From: oldKP}, {}} {
		if n, err := b2.Rewrap(ctx, actor, o); err != nil || n != 0 {
			t.Errorf("Rewrap again (from %v) = %d, %v; want 0 keys", o.From, n, err)
		}
	}
}

func sealedEqual(a, b []storage.Sealed) bool {
	return slices.EqualFunc(a, b, func(x, y storage.Sealed) bool {
		return x.Class == y.Class && x.KeyVersion == y.KeyVersion && bytes.Equal(x.Data, y.Data)
	})
}

// TestRewrapResumes: a switching rewrap interrupted after some batches
// committed finishes when run again, moving only what is left.
func TestRewrapResumes(t *testing.T) {
	kv := newKeyVault(t, keyVaultOpts{})
	oldKP := kv.keys.(*agekey.Provider)
	ids, total := rewrapScenario(t, kv)
	newKP, err := agekey.Create(filepath.Join(kv.dir, "new-"+agekey.FileName))
	if err != nil {
		t.Fatal(err)
	}
	b, err := kv.tryOpenFrom(newKP, nil, oldKP)
	if err != nil {
		t.Fatalf("broker.New on the new identity, to run Rewrap(From: old) on it: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n, err := b.Rewrap(ctx, actor, broker.RewrapOpts{From: oldKP, Batch: 2, Progress: func(done, _ int) {
		if done >= 4 {
			cancel() // the operator's Ctrl-C after two batches
		}
	}})
	if err == nil || n != 4 || broker.KindOf(err) != broker.Unavailable {
		t.Fatalf("interrupted Rewrap = %d, %v (kind %v); want 4 keys and Unavailable", n, err, broker.KindOf(err))
	}
	n, err = b.Rewrap(context.Background(), actor, broker.RewrapOpts{From: oldKP, Batch: 2})
	if err != nil || n != total-4 {
		t.Fatalf("resumed Rewrap = %d, %v; want the %d keys left", n, err, total-4)
	}
	checkAllWrappedBy(t, keyStatus(t, b), allAge(ageLabel(t, newKP)))
	mustOpen(t, kv.open(newKP, nil, 0), ids...)
}

// TestRewrapSameProvider: with the broker's own providers and nothing to
// move, Rewrap does nothing and says so in the log.
func TestRewrapSameProvider(t *testing.T) {
	kv := newKeyVault(t, keyVaultOpts{})
	kv.deposit(ea(communeA, 1))
	head := kv.auditHead()
	n, err := kv.b.Rewrap(context.Background(), actor, broker.RewrapOpts{})
	if err != nil || n != 0 {
		t.Fatalf("Rewrap = %d, %v; want 0", n, err)
	}
	evs := kv.events(head, "keys.rewrap")
	if len(evs) != 2 || evs[1].Reason != "0 keys re-wrapped" {
		t.Errorf("keys.rewrap events: %+v", evs)
	}
}

// filesHolding names the files of dir that contain p.
func filesHolding(t testing.TB, dir string, p []byte) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, p); i >= 0 {
			found = append(found, fmt.Sprintf("%s at %d", e.Name(), i))
		}
	}
	return found
}

// traces are pieces of a wrapped key that occur nowhere by chance: the
// age body is random, and agekey's label line is shared by every key.
func traces(wrapped []byte) map[string][]byte {
	return map[string][]byte{
		"middle": wrapped[len(wrapped)/2 : len(wrapped)/2+40],
		"end":    wrapped[len(wrapped)-40:],
	}
}

// TestShredCommune: shredding the identifying class of one commune makes
// those fields of its records unreadable (Gone) while their analytic
// fields, the other commune and progress keep working; deposits there
// are refused until a rotation; it is audited; and the destroyed wrapped
// key is in no file of the data directory.
func TestShredCommune(t *testing.T) {
	ctx := context.Background()
	kv := newKeyVault(t, keyVaultOpts{})
	a := []broker.SubmissionID{kv.deposit(ea(communeA, 1)), kv.deposit(ea(communeA, 2))}
	b := []broker.SubmissionID{kv.deposit(ea(communeB, 1)), kv.deposit(ea(communeB, 2))}

	// The bytes that must go, read before the shred, and found on disk.
	doomed := kv.dataKey(crypto.Identifying, communeA, 1).Wrapped
	kept := kv.dataKey(crypto.Identifying, communeB, 1).Wrapped
	for name, p := range traces(doomed) {
		if len(filesHolding(t, kv.dir, p)) == 0 {
			t.Fatalf("the %s of the wrapped key is on no file before the shred: this test could not tell", name)
		}
	}

	head := kv.auditHead()
	res, err := kv.b.Shred(ctx, actor, crypto.Identifying, communeA)
	if err != nil {
		t.Fatalf("Shred: %v", err)
	}
	if *res != (broker.ShredResult{Communes: 1, DataKeys: 1}) {
		t.Errorf("ShredResult = %+v, want 1 commune, 1 data key, not national", *res)
	}
	for name, p := range traces(doomed) {
		if f := filesHolding(t, kv.dir, p); f != nil {
			t.Errorf("the %s of the shredded wrapped key is still in %v", name, f)
		}
	}
	for name, p := range traces(kept) {
		if len(filesHolding(t, kv.dir, p)) == 0 {
			t.Errorf("the %s of commune B's live key is on no file: the scan reads the wrong files", name)
		}
	}
	evs := kv.events(head, "keys.shred")
	if len(evs) != 1 || evs[0].Area != communeA || !slices.Equal(evs[0].Resources, []string{"class:identifying"}) ||
		evs[0].Reason != "1 data keys of 1 communes destroyed" || evs[0].Outcome != "ok" || evs[0].Actor != actor {
		t.Errorf("keys.shred events: %+v", evs)
	}
	if k := kv.dataKey(crypto.Identifying, communeA, 1); k.ShreddedAt.IsZero() || len(k.Wrapped) != 0 {
		t.Errorf("shredded data key row: shredded at %v, %d wrapped bytes", k.ShreddedAt, len(k.Wrapped))
	}

	// Through this broker, and through one started afterwards.
	for name, br := range map[string]*broker.Broker{"same broker": kv.b, "new broker": kv.open(kv.keys, nil, 0)} {
		for _, id := range a {
			for _, classes := range [][]crypto.Class{{crypto.Identifying}, {crypto.Identifying, crypto.Analytic}} {
				if err := checkOpen(t, br, id, classes...); broker.KindOf(err) != broker.Gone {
					t.Errorf("%s: Open(%s, %v) = %v, want Gone", name, id, classes, err)
				}
			}
			if err := checkOpen(t, br, id, crypto.Analytic); err != nil {
				t.Errorf("%s: Open(%s, analytic) after the identifying shred: %v", name, id, err)
			}
		}
		mustOpen(t, br, b...)
	}

	p, err := kv.b.Progress(ctx, kv.steer, communeA, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rows) != 3 || p.Rows[0].Deposited != 2 || p.Rows[1].Deposited != 1 || p.Rows[2].Deposited != 1 {
		t.Errorf("progress of %s after the shred: %+v, want 2 = 1 + 1", communeA, p.Rows)
	}

	// New deposits there are refused, and nothing of them is kept, until
	// an operator rotates.
	for i := range 2 {
		before := kv.deposited()
		head := kv.auditHead()
		id, err := kv.tryDeposit(kv.b, ea(communeA, 1+i))
		if broker.KindOf(err) != broker.Gone {
			t.Errorf("deposit in the shredded commune = %v, want Gone", err)
		}
		if kv.sealed(id) != nil {
			t.Errorf("refused deposit %s was stored", id)
		}
		if after := kv.deposited(); after[communeA] != before[communeA] || after[""] != before[""] {
			t.Errorf("refused deposit counted: %v → %v", before, after)
		}
		if evs := kv.events(head, "submission.deposit"); len(evs) != 1 || evs[0].Outcome == "ok" {
			t.Errorf("refused deposit audited as %+v", evs)
		}
	}
	mustOpen(t, kv.b, kv.deposit(ea(communeB, 1))) // commune B is unaffected
	if _, err := kv.b.RotateDEK(ctx, actor); err != nil {
		t.Fatal(err)
	}
	fresh := kv.deposit(ea(communeA, 1))
	if got := kv.versions(fresh); !slices.Equal(got, []string{"analytic:2", "identifying:2"}) {
		t.Errorf("deposit after rotation sealed as %v", got)
	}
	mustOpen(t, kv.b, fresh)
	for _, id := range a {
		if err := checkOpen(t, kv.b, id, crypto.Identifying); broker.KindOf(err) != broker.Gone {
			t.Errorf("after the rotation, Open(%s, identifying) = %v, want still Gone", id, err)
		}
	}

	label := ageLabel(t, kv.keys.(*agekey.Provider))
	want := []string{
		"analytic v1 " + label + " live=2 shredded=0",
		"analytic v2 " + label + " live=1 shredded=0",
		"identifying v1  live=0 shredded=1",
		"identifying v1 " + label + " live=1 shredded=0",
		"identifying v2 " + label + " live=1 shredded=0",
	}
	if got := dataKeyCounts(keyStatus(t, kv.b)); !slices.Equal(got, want) {
		t.Errorf("KeyStatus after the shred:\n got %q\nwant %q", got, want)
	}
	// A shred is idempotent, and counts only what it destroys.
	if res, err := kv.b.Shred(ctx, actor, crypto.Identifying, communeA); err != nil || res.DataKeys != 1 {
		t.Errorf("second shred of %s = %+v, %v; want the 1 key made since", communeA, res, err)
	}
	if res, err := kv.b.Shred(ctx, actor, crypto.Identifying, communeA); err != nil || res.DataKeys != 0 {
		t.Errorf("third shred of %s = %+v, %v; want 0 keys", communeA, res, err)
	}
}

// TestShredAreas: the area decides which communes' keys go; EAs, unknown
// areas and other classes are refused before anything is destroyed.
func TestShredAreas(t *testing.T) {
	ctx := context.Background()
	kv := newKeyVault(t, keyVaultOpts{})
	for _, c := range keyCommunes {
		kv.deposit(ea(c, 1))
	}
	for _, tc := range []struct {
		name  string
		class crypto.Class
		area  string
		kind  broker.Kind // Internal: no error
		want  broker.ShredResult
	}{
		{"EA", crypto.Identifying, ea(communeA, 1), broker.Invalid, broker.ShredResult{}},
		{"unknown area", crypto.Identifying, "99999", broker.Invalid, broker.ShredResult{}},
		{"empty area", crypto.Identifying, "", broker.Invalid, broker.ShredResult{}},
		{"operational class", "operational", communeA, broker.Invalid, broker.ShredResult{}},
		{"empty class", "", communeA, broker.Invalid, broker.ShredResult{}},
		{"commune", crypto.Analytic, communeA, broker.Internal, broker.ShredResult{Communes: 1, DataKeys: 1}},
		{"district", crypto.Analytic, keyDistrict, broker.Internal, broker.ShredResult{Communes: 4, DataKeys: 3}},
		{"nation", crypto.Identifying, keyNation, broker.Internal, broker.ShredResult{Communes: 4, DataKeys: 4, National: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head := kv.auditHead()
			before := dataKeyCounts(keyStatus(t, kv.b))
			res, err := kv.b.Shred(ctx, actor, tc.class, broker.AreaCode(tc.area))
			if tc.kind != broker.Internal {
				if broker.KindOf(err) != tc.kind || res != nil {
					t.Fatalf("Shred = %+v, %v; want %v", res, err, tc.kind)
				}
				if after := dataKeyCounts(keyStatus(t, kv.b)); !slices.Equal(after, before) {
					t.Errorf("a refused shred changed the keys: %q → %q", before, after)
				}
				if n := len(kv.events(head, "keys.shred")); n != 0 {
					t.Errorf("a refused shred wrote %d keys.shred events", n)
				}
				return
			}
			if err != nil || *res != tc.want {
				t.Fatalf("Shred = %+v, %v; want %+v", res, err, tc.want)
			}
			if evs := kv.events(head, "keys.shred"); len(evs) != 1 || evs[0].Area != tc.area ||
				evs[0].Reason != fmt.Sprintf("%d data keys of %d communes destroyed", tc.want.DataKeys, tc.want.Communes) {
				t.Errorf("keys.shred events: %+v", evs)
			}
		})
	}
	// Everything is shredded now, yet every record still shows up in
	// progress, and nothing opens but the operational fields.
	p, err := kv.b.Progress(ctx, kv.steer, keyNation, 0)
	if err != nil || len(p.Rows) != 1 || p.Rows[0].Deposited != int64(len(keyCommunes)) {
		t.Errorf("national progress after shredding everything: %+v, %v", p, err)
	}
}

// Switching a vault from the local age identity to HashiCorp Vault: a
// broker built on the Transit keys (one per class) re-wraps every stored
// key from the age identity, batch by batch; an interrupted run is simply
// run again. (Not run: it needs a Vault server.)
func ExampleBroker_Rewrap() {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Options{Path: "censusvault-data/vault.db"})
	if err != nil {
		panic(err)
	}
	defer st.Close()
	from, err := agekey.Load("censusvault-data/keyprovider.age")
	if err != nil {
		panic(err)
	}
	to := map[string]crypto.KeyProvider{}
	for _, use := range []string{"system", "identifying", "analytic"} {
		cfg, err := vaulttransit.ConfigFromEnv("vault://transit/censusvault-" + use) // VAULT_ADDR, VAULT_TOKEN …
		if err != nil {
			panic(err)
		}
		if to[use], err = vaulttransit.New(ctx, cfg); err != nil {
			panic(err)
		}
	}
	b, err := broker.New(ctx, broker.Opts{Store: st, Keys: to["system"], ClassKeys: map[crypto.Class]crypto.KeyProvider{
		crypto.Identifying: to["identifying"], crypto.Analytic: to["analytic"],
	}, MigrateFrom: from})
	if err != nil {
		panic(err)
	}
	n, err := b.Rewrap(ctx, "cli:ops", broker.RewrapOpts{From: from, Progress: func(done, total int) {
		fmt.Printf("\rre-wrapped %d/%d keys", done, total)
	}})
	if err != nil {
		panic(err)
	}
	fmt.Printf("\n%d keys now wrapped by Vault\n", n)
}

// Crypto-shredding the identifying fields of one commune: its records
// stay, their analytic fields and progress still work, and new deposits
// there wait for a rotation.
func ExampleBroker_Shred() {
	ctx := context.Background()
	var b *broker.Broker // broker.New(ctx, broker.Opts{…})
	res, err := b.Shred(ctx, "cli:ops", crypto.Identifying, "18070")
	if broker.KindOf(err) == broker.Invalid {
		fmt.Println("refused:", err) // an EA, an unknown area or class
		return
	}
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d data keys of %d communes destroyed\n", res.DataKeys, res.Communes)
	if _, err := b.RotateDEK(ctx, "cli:ops"); err != nil { // deposits there may resume
		panic(err)
	}
}
