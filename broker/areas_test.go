package broker_test

// Revisions of the area tree (issue 14) through the broker, on SQLite and
// on PostgreSQL: an EA split with submissions and grants on it (progress,
// views and deposits follow the households by number; grants move), a
// merge refused while it would widen a grant, a split refused while its
// ranges leave stored households without an EA, a second instance taking
// up a revision, and a deposit decided under the old tree refused. Each
// test is the attack its protection stops.

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/postgres"
	"github.com/censusvault/censusvault/storage/postgres/pgtest"
	"github.com/censusvault/censusvault/storage/sqlite"
	"github.com/google/uuid"
)

// The EA split in these tests, and the two it becomes.
var (
	eaX  = ea(communeA, 1) // 18070-01, planned 40
	eaX1 = "18070-11"      // households 1-150
	eaX2 = "18070-12"      // households 151-
)

const splitX = `{"note": "the listing found two villages in 18070-01", "changes": [
 {"op": "split", "code": "18070-01", "into": [
   {"code": "18070-11", "name": "Địa bàn 01 bắc", "planned": 25, "households": "1-150"},
   {"code": "18070-12", "name": "Địa bàn 01 nam", "planned": 15, "households": "151-"}]}]}`

// geoVault is a vault of keyAreas on some store, with the people of a
// commune: an enumerator and a team leader of EA X, a team leader of the
// commune denied X, a steering committee and an admin.
type geoVault struct {
	t      *testing.T
	store  storage.Store
	keys   crypto.KeyProvider
	b      *broker.Broker
	tokens map[string]string
	rcpt   *age.HybridRecipient
}

type storeOpener func(t *testing.T) (open func() storage.Store)

func sqliteOpener(t *testing.T) func() storage.Store {
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	var st *sqlite.Store
	return func() storage.Store {
		if st == nil {
			var err error
			if st, err = sqlite.Open(context.Background(), sqlite.Options{Path: path, Create: true}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
		}
		return st // one store: SQLite has one writer
	}
}

func postgresOpener(t *testing.T) func() storage.Store {
	dsn := pgtest.DSN(t)
	return func() storage.Store {
		st, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st // a pool of its own, as another instance has
	}
}

func bothStores(t *testing.T, fn func(t *testing.T, open func() storage.Store)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, sqliteOpener(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, postgresOpener(t)) })
}

func newGeoVault(t *testing.T, open func() storage.Store) *geoVault {
	t.Helper()
	ctx := context.Background()
	tree, err := area.Load(strings.NewReader(keyAreas()))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := agekey.Create(filepath.Join(t.TempDir(), agekey.FileName))
	if err != nil {
		t.Fatal(err)
	}
	gv := &geoVault{t: t, store: open(), keys: kp, tokens: map[string]string{}}
	if err := broker.Init(ctx, broker.InitOpts{Store: gv.store, Keys: kp, Areas: tree, Name: "geo.test", Actor: actor}); err != nil {
		t.Fatal(err)
	}
	gv.b = gv.instance(gv.store)
	for _, u := range []broker.NewUser{
		{Name: "enum-x", Role: policy.Enumerator, Area: area.Code(eaX)},
		{Name: "tl-x", Role: policy.TeamLeader, Area: area.Code(eaX)},
		{Name: "tl-a", Role: policy.TeamLeader, Area: communeA},
		{Name: "tl-x1", Role: policy.TeamLeader, Area: communeB}, // given X1 after the split
		{Name: "enum-x1", Role: policy.Enumerator, Area: communeB},
		{Name: "steering", Role: policy.Steering, Area: keyNation},
		{Name: "admin", Role: policy.Admin, Area: keyNation},
	} {
		tok, err := gv.b.AddUser(ctx, actor, u)
		if err != nil {
			t.Fatal(err)
		}
		gv.tokens[string(u.Name)] = tok.Reveal()
	}
	if err := gv.b.Grant(ctx, actor, "tl-a", policy.Grant{Role: policy.TeamLeader, Area: eaX, Deny: true}); err != nil {
		t.Fatal(err)
	}
	if gv.rcpt, err = age.ParseHybridRecipient(gv.b.IngestRecipient()); err != nil {
		t.Fatal(err)
	}
	return gv
}

// instance starts a broker on st, as another instance would.
func (gv *geoVault) instance(st storage.Store) *broker.Broker {
	gv.t.Helper()
	b, err := broker.New(context.Background(), broker.Opts{Store: st, Keys: gv.keys, Limits: broker.Limits{UserRate: -1, RefusalBurst: 1 << 20}})
	if err != nil {
		gv.t.Fatal(err)
	}
	gv.t.Cleanup(func() { b.Close(context.Background()) })
	return b
}

func (gv *geoVault) caller(b *broker.Broker, user string) *broker.Caller {
	gv.t.Helper()
	c, err := b.Authenticate(context.Background(), "Bearer "+gv.tokens[user], "test")
	if err != nil {
		gv.t.Fatal(err)
	}
	return c
}

// deposit deposits household no of ea as user through b, correcting
// supersedes if not empty.
func (gv *geoVault) deposit(b *broker.Broker, c *broker.Caller, ea string, no int, supersedes string) (string, error) {
	id := uuid.NewString()
	plain := household(id, ea, no)
	if supersedes != "" {
		plain = bytes.Replace(plain, []byte(`"id":`), []byte(`"supersedes":"`+supersedes+`","id":`), 1)
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, gv.rcpt)
	if err != nil {
		gv.t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		gv.t.Fatal(err)
	}
	_, err = b.Deposit(context.Background(), c, int64(buf.Len()), &buf)
	return id, err
}

func (gv *geoVault) mustDeposit(c *broker.Caller, ea string, no int) string {
	gv.t.Helper()
	id, err := gv.deposit(gv.b, c, ea, no, "")
	if err != nil {
		gv.t.Fatalf("deposit of household %d in %s: %v", no, ea, err)
	}
	return id
}

// progress is the deposited and planned households of every area under
// communeA, as "code deposited/planned".
func (gv *geoVault) progress(b *broker.Broker) []string {
	gv.t.Helper()
	rep, err := b.Progress(context.Background(), gv.caller(b, "steering"), communeA, 1)
	if err != nil {
		gv.t.Fatal(err)
	}
	var out []string
	for _, r := range rep.Rows {
		out = append(out, string(r.Area)+" "+strconv.FormatInt(r.Deposited, 10)+"/"+strconv.FormatInt(r.Planned, 10))
	}
	return out
}

// listed is the household numbers of the current submissions user may
// list under communeA, with the EA each was deposited under.
func (gv *geoVault) listed(b *broker.Broker, user string) []string {
	gv.t.Helper()
	l, err := b.ListSubmissions(context.Background(), gv.caller(b, user), communeA, broker.ListOpts{Limit: 100})
	if err != nil {
		gv.t.Fatalf("%s lists %s: %v", user, communeA, err)
	}
	var out []string
	for _, s := range l.Submissions {
		out = append(out, string(s.EA)+"#"+strconv.FormatInt(s.HouseholdNo, 10))
	}
	slices.Sort(out)
	return out
}

func wantCodeOf(t *testing.T, what string, err error, k broker.Kind, code string) {
	t.Helper()
	var be *broker.Error
	if !errors.As(err, &be) || be.Kind != k || be.ErrorCode() != code {
		t.Fatalf("%s: %v, want %v %s", what, err, k, code)
	}
}

// TestAreaSplit: an EA with submissions and grants on it is split. The
// households count in the new EAs by number; the team leader granted the
// old EA sees the submissions of both new ones, one granted a new EA only
// its households; the deny moves too; deposits under the old code go to
// the new EA of their number, and a household is still one household
// under either code.
func TestAreaSplit(t *testing.T) { bothStores(t, testAreaSplit) }

func testAreaSplit(t *testing.T, open func() storage.Store) {
	ctx := context.Background()
	gv := newGeoVault(t, open)
	enum := gv.caller(gv.b, "enum-x")
	ids := map[int]string{}
	for _, no := range []int{1, 2, 3, 4, 160, 161} {
		ids[no] = gv.mustDeposit(enum, eaX, no)
	}
	if got, want := gv.progress(gv.b), []string{"18070 6/80", eaX + " 6/40", ea(communeA, 2) + " 0/40"}; !slices.Equal(got, want) {
		t.Fatalf("progress before: %v, want %v", got, want)
	}
	// A second instance, running before the revision.
	other := gv.instance(open())

	res, err := gv.b.ReviseAreas(ctx, broker.HostOperator(actor), []byte(splitX))
	if err != nil {
		t.Fatal(err)
	}
	if res.Revision != 1 || res.Split != 1 || res.GrantsMoved != 3 || res.GrantsAdded != 6 {
		t.Errorf("outcome %+v: want revision 1, one split, 3 grants (enum-x, tl-x, tl-a's deny) moved to 6", res)
	}

	// Progress: the households by number, on both instances (the other
	// takes the revision up at its next request).
	want := []string{"18070 6/80", eaX1 + " 4/25", eaX2 + " 2/15", ea(communeA, 2) + " 0/40"}
	for name, b := range map[string]*broker.Broker{"this instance": gv.b, "the other instance": other, "a new instance": gv.instance(open())} {
		if got := gv.progress(b); !slices.Equal(got, want) {
			t.Errorf("progress on %s: %v, want %v", name, got, want)
		}
	}

	// The team leader of the old EA sees both new ones' submissions; one
	// granted a new EA only its households; the commune's team leader
	// denied the old EA is denied both.
	if err := gv.b.Grant(ctx, actor, "tl-x1", policy.Grant{Role: policy.TeamLeader, Area: eaX1}); err != nil {
		t.Fatal(err)
	}
	all := []string{eaX + "#1", eaX + "#160", eaX + "#161", eaX + "#2", eaX + "#3", eaX + "#4"}
	if got := gv.listed(other, "tl-x"); !slices.Equal(got, all) {
		t.Errorf("tl-x (granted the old EA) lists %v, want %v", got, all)
	}
	if got := gv.listed(other, "tl-x1"); !slices.Equal(got, []string{eaX + "#1", eaX + "#2", eaX + "#3", eaX + "#4"}) {
		t.Errorf("tl-x1 (granted %s) lists %v, want households 1-4 only", eaX1, got)
	}
	if got := gv.listed(other, "tl-a"); len(got) != 0 {
		t.Errorf("tl-a (denied the old EA) lists %v, want none", got)
	}
	tlx1 := gv.caller(other, "tl-x1")
	if _, err := other.OpenSubmission(ctx, tlx1, broker.SubmissionID(ids[160])); broker.KindOf(err) != broker.Permission {
		t.Errorf("tl-x1 opens household 160 (now in %s): %v, want permission denied", eaX2, err)
	}
	if _, err := other.OpenSubmission(ctx, tlx1, broker.SubmissionID(ids[3])); err != nil {
		t.Errorf("tl-x1 opens household 3 (now in %s): %v", eaX1, err)
	}
	if _, err := other.OpenSubmission(ctx, gv.caller(other, "tl-x"), broker.SubmissionID(ids[161])); err != nil {
		t.Errorf("tl-x opens household 161: %v", err)
	}

	// Deposits: under the old code a household goes to the EA of its
	// number; the same household under the new code is a conflict, and a
	// correction of it under either code supersedes it.
	enum = gv.caller(gv.b, "enum-x")
	if _, err := gv.deposit(gv.b, enum, eaX, 5, ""); err != nil {
		t.Errorf("deposit of household 5 under the old code: %v", err)
	}
	_, err = gv.deposit(gv.b, enum, eaX1, 3, "")
	wantCodeOf(t, "household 3 deposited again under the new code", err, broker.Conflict, "conflict")
	fix, err := gv.deposit(gv.b, enum, eaX1, 3, ids[3])
	if err != nil {
		t.Fatalf("correction of household 3 under the new code: %v", err)
	}
	if _, err := gv.deposit(gv.b, enum, eaX, 3, fix); err != nil {
		t.Errorf("correction of household 3 under the old code: %v", err)
	}
	if got, want := gv.progress(gv.b), []string{"18070 7/80", eaX1 + " 5/25", eaX2 + " 2/15", ea(communeA, 2) + " 0/40"}; !slices.Equal(got, want) {
		t.Errorf("progress after the deposits: %v, want %v", got, want)
	}
	// An enumerator of X1 only deposits there, not in X2 under the old
	// code.
	if err := gv.b.Grant(ctx, actor, "enum-x1", policy.Grant{Role: policy.Enumerator, Area: eaX1}); err != nil {
		t.Fatal(err)
	}
	enumX1 := gv.caller(gv.b, "enum-x1")
	if _, err := gv.deposit(gv.b, enumX1, eaX, 170, ""); broker.KindOf(err) != broker.Permission {
		t.Errorf("enum-x1 deposits household 170 under the old code (it belongs to %s): %v, want permission denied", eaX2, err)
	}
	if _, err := gv.deposit(gv.b, enumX1, eaX, 7, ""); err != nil {
		t.Errorf("enum-x1 deposits household 7 under the old code: %v", err)
	}

	// The old code is gone from the tree in force and cannot be reused.
	if _, err := gv.b.Progress(ctx, gv.caller(gv.b, "steering"), area.Code(eaX), 0); broker.KindOf(err) != broker.NotFound {
		t.Errorf("progress of the retired EA: %v, want not found", err)
	}
	_, err = gv.b.ReviseAreas(ctx, broker.HostOperator(actor), []byte(`{"note": "n", "changes": [{"op": "add", "code": "18070-01", "parent": "18070", "level": "ea", "name": "again", "planned": 1}]}`))
	wantCodeOf(t, "reusing the retired code", err, broker.Invalid, "area_revision_invalid")
	if !strings.Contains(err.Error(), "changes[0] (add): code 18070-01 belonged to an EA retired") {
		t.Errorf("reusing the retired code: %v", err)
	}

	// Audited, and the grant log still replays to every event's hash.
	ev := findEvent(t, gv.store, 0, "areas.revise", actor)
	if ev == nil || !strings.Contains(ev.Reason, res.SHA256) || !slices.Contains(ev.Resources, "area_revision:1") || ev.Area != keyNation {
		t.Errorf("revision event %+v", ev)
	}
	if _, err := broker.VerifyAudit(ctx, gv.store, gv.b.AuditVerifierKey(), nil); err != nil {
		t.Errorf("audit verify after the revision: %v", err)
	}
}

// TestAreaMergeWidens: a merge is refused while a team leader holds an
// allow on some of the merged EAs only (it would see the others'
// households); a deny on one of them goes to the merged EA.
func TestAreaMergeWidens(t *testing.T) { bothStores(t, testAreaMergeWidens) }

func testAreaMergeWidens(t *testing.T, open func() storage.Store) {
	ctx := context.Background()
	gv := newGeoVault(t, open)
	b1, b2 := ea(communeB, 1), ea(communeB, 2)
	enum := gv.caller(gv.b, "enum-x1") // enumerator of commune B
	id2 := gv.mustDeposit(enum, b2, 9)
	for _, g := range []struct {
		user string
		g    policy.Grant
	}{
		{"tl-x", policy.Grant{Role: policy.TeamLeader, Area: b1}},
		{"tl-a", policy.Grant{Role: policy.TeamLeader, Area: communeB}},
		{"tl-a", policy.Grant{Role: policy.TeamLeader, Area: b2, Deny: true}},
	} {
		if err := gv.b.Grant(ctx, actor, broker.UserID(g.user), g.g); err != nil {
			t.Fatal(err)
		}
	}
	merge := []byte(`{"note": "two small EAs", "changes": [{"op": "rename", "code": "18073", "name": "Phường Nam Hồng"},
	 {"op": "merge", "codes": ["18073-01", "18073-02"], "into": {"code": "18073-09", "name": "Địa bàn 1+2", "planned": 80}}]}`)
	_, err := gv.b.ReviseAreas(ctx, broker.APIOperator(gv.caller(gv.b, "admin")), merge)
	wantCodeOf(t, "merge while tl-x holds 18073-01 only", err, broker.Conflict, "grant_would_widen")
	if !strings.Contains(err.Error(), "changes[1] (merge into 18073-09): user tl-x holds team_leader at 18073-01 but not at 18073-02") {
		t.Errorf("refusal: %v", err)
	}
	if _, ok := gv.b.Tree().Get("18073-09"); ok || gv.b.Geography().Revision() != 0 {
		t.Fatal("a refused revision is in force")
	}
	if _, err := gv.b.OpenSubmission(ctx, gv.caller(gv.b, "tl-x"), broker.SubmissionID(id2)); broker.KindOf(err) != broker.Permission {
		t.Fatalf("tl-x opens household 9 of %s after the refusal: %v", b2, err)
	}
	if ev := findEvent(t, gv.store, 0, "areas.revise", "user:admin"); ev == nil || ev.Outcome != "refused" || !strings.Contains(ev.Reason, "grant_would_widen") && !strings.Contains(ev.Reason, "would give it those households") {
		t.Errorf("refusal event %+v", ev)
	}

	// With the grant on both, the merge goes through: tl-x holds the
	// merged EA, tl-a's deny moved there (narrowing: it loses 18073-01).
	if err := gv.b.Grant(ctx, actor, "tl-x", policy.Grant{Role: policy.TeamLeader, Area: b2}); err != nil {
		t.Fatal(err)
	}
	res, err := gv.b.ReviseAreas(ctx, broker.APIOperator(gv.caller(gv.b, "admin")), merge)
	if err != nil {
		t.Fatal(err)
	}
	if res.Merged != 1 || res.Renamed != 1 || res.GrantsMoved != 3 || res.GrantsAdded != 2 {
		t.Errorf("outcome %+v", res)
	}
	u, err := gv.b.User(ctx, "tl-x")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(u.Grants, policy.Grant{Role: policy.TeamLeader, Area: "18073-09"}) || slices.ContainsFunc(u.Grants, func(g policy.Grant) bool { return strings.HasPrefix(g.Area, "18073-0") && g.Area != "18073-09" }) {
		t.Errorf("tl-x's grants after the merge: %v", u.Grants)
	}
	if _, err := gv.b.OpenSubmission(ctx, gv.caller(gv.b, "tl-x"), broker.SubmissionID(id2)); err != nil {
		t.Errorf("tl-x opens household 9 (now in the merged EA): %v", err)
	}
	if _, err := gv.b.OpenSubmission(ctx, gv.caller(gv.b, "tl-a"), broker.SubmissionID(id2)); broker.KindOf(err) != broker.Permission {
		t.Errorf("tl-a (its deny moved to the merged EA) opens household 9: %v", err)
	}
	if _, err := broker.VerifyAudit(ctx, gv.store, gv.b.AuditVerifierKey(), nil); err != nil {
		t.Errorf("audit verify after the merge: %v", err)
	}
}

// TestAreaSplitOrphans: a split whose ranges leave out a household number
// stored there is refused, naming the change, the count and the range;
// with every stored number covered (a closed last range) it goes
// through, and a later deposit of a number left out is refused.
func TestAreaSplitOrphans(t *testing.T) { bothStores(t, testAreaSplitOrphans) }

func testAreaSplitOrphans(t *testing.T, open func() storage.Store) {
	ctx := context.Background()
	gv := newGeoVault(t, open)
	enum := gv.caller(gv.b, "enum-x")
	for _, no := range []int{1, 2, 160, 400} {
		gv.mustDeposit(enum, eaX, no)
	}
	closed := func(last string) []byte {
		return []byte(`{"note": "n", "changes": [{"op": "plan", "code": "18070-02", "planned": 41},
		 {"op": "split", "code": "18070-01", "into": [
		   {"code": "18070-11", "name": "a", "planned": 25, "households": "1-150"},
		   {"code": "18070-12", "name": "b", "planned": 15, "households": "` + last + `"}]}]}`)
	}
	_, err := gv.b.ReviseAreas(ctx, broker.HostOperator(actor), closed("151-300"))
	wantCodeOf(t, "a split leaving household 400 out", err, broker.Conflict, "households_orphaned")
	if !strings.Contains(err.Error(), "changes[1] (split of 18070-01): households deposited under 18070-01 have numbers in 301-") {
		t.Errorf("refusal: %v", err)
	}
	if gv.b.Geography().Revision() != 0 {
		t.Fatal("the refused split is in force")
	}
	if _, err := gv.b.ReviseAreas(ctx, broker.HostOperator(actor), closed("151-400")); err != nil {
		t.Fatalf("a split covering every stored number: %v", err)
	}
	_, err = gv.deposit(gv.b, gv.caller(gv.b, "enum-x"), eaX, 401, "")
	wantCodeOf(t, "a deposit of a number the split left out", err, broker.Invalid, "invalid")
	if got, want := gv.progress(gv.b), []string{"18070 4/81", eaX1 + " 2/25", eaX2 + " 2/15", ea(communeA, 2) + " 0/41"}; !slices.Equal(got, want) {
		t.Errorf("progress: %v, want %v", got, want)
	}
}

// TestAreaRevisionStaleDeposit: a deposit decided by an instance that has
// not taken up a revision yet (its caller authenticated before) is
// refused, not stored beside the same household under its new code.
func TestAreaRevisionStaleDeposit(t *testing.T) { bothStores(t, testAreaRevisionStaleDeposit) }

func testAreaRevisionStaleDeposit(t *testing.T, open func() storage.Store) {
	ctx := context.Background()
	gv := newGeoVault(t, open)
	stale := gv.instance(open())
	staleEnum := gv.caller(stale, "enum-x")
	if _, err := gv.b.ReviseAreas(ctx, broker.HostOperator(actor), []byte(splitX)); err != nil {
		t.Fatal(err)
	}
	gv.mustDeposit(gv.caller(gv.b, "enum-x"), eaX1, 7)
	_, err := gv.deposit(stale, staleEnum, eaX, 7, "")
	wantCodeOf(t, "household 7 deposited under the old code by a stale instance", err, broker.Unavailable, "area_tree_changed")
	if got := gv.progress(gv.b); !slices.Contains(got, eaX1+" 1/25") {
		t.Errorf("progress after the stale deposit: %v, want household 7 once", got)
	}
	// Its next request takes the revision up: the same deposit is now
	// the conflict it is.
	_, err = gv.deposit(stale, gv.caller(stale, "enum-x"), eaX, 7, "")
	wantCodeOf(t, "household 7 again, after the instance took the revision up", err, broker.Conflict, "conflict")
}

// TestAreaRevisionRefusals: a bad document, an unknown area, a pending
// grant proposal or an open project on an EA the revision retires, and a
// caller who may not administer: each refused and audited, nothing in
// force.
func TestAreaRevisionRefusals(t *testing.T) {
	ctx := context.Background()
	gv := newGeoVault(t, sqliteOpener(t))
	admin := broker.APIOperator(gv.caller(gv.b, "admin"))
	for _, c := range []struct {
		doc, want string
	}{
		{`{"note": "n", "changes": [{"op": "split", "code": "18070-01"}]}`, `changes[0] (split): "into" is required`},
		{`{"note": "n", "changes": [{"op": "rename", "code": "nowhere", "name": "x"}]}`, "changes[0] (rename): no area nowhere"},
		{`not json`, "area revision: not valid JSON"},
	} {
		_, err := gv.b.ReviseAreas(ctx, admin, []byte(c.doc))
		wantCodeOf(t, c.doc, err, broker.Invalid, "area_revision_invalid")
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want …%s…", c.doc, err, c.want)
		}
	}
	// A pending proposal: a team leader's grant at X waits for an
	// approver.
	ch, err := gv.b.ChangeGrant(ctx, admin, "tl-x1", policy.Grant{Role: policy.TeamLeader, Area: eaX}, false)
	if err != nil || ch.Active {
		t.Fatalf("proposal: %+v %v", ch, err)
	}
	_, err = gv.b.ReviseAreas(ctx, admin, []byte(splitX))
	wantCodeOf(t, "split with a pending proposal on the EA", err, broker.Conflict, "area_in_use")
	if !strings.Contains(err.Error(), "grant proposal 1 (team_leader@18070-01 of user tl-x1) names EA 18070-01") {
		t.Errorf("refusal: %v", err)
	}
	// An open research project covering the EA (in another vault, the
	// proposal stays pending here).
	gp := newGeoVault(t, sqliteOpener(t))
	if err := gp.b.AddProject(ctx, actor, broker.NewProject{ID: "p-x", Title: "EA study", Purpose: "a study of one EA",
		Areas: []broker.AreaCode{broker.AreaCode(eaX)}, Variables: []string{"sex"}, Expires: time.Now().AddDate(1, 0, 0), Budget: 100}); err != nil {
		t.Fatal(err)
	}
	_, err = gp.b.ReviseAreas(ctx, broker.HostOperator(actor), []byte(splitX))
	wantCodeOf(t, "split of an EA an open project covers", err, broker.Conflict, "area_in_use")
	if !strings.Contains(err.Error(), "research project p-x covers EA 18070-01") {
		t.Errorf("refusal: %v", err)
	}
	_, err = gv.b.ReviseAreas(ctx, broker.APIOperator(gv.caller(gv.b, "tl-x")), []byte(splitX))
	wantCodeOf(t, "a team leader revising", err, broker.Permission, "permission_denied")
	if gv.b.Geography().Revision() != 0 {
		t.Fatal("a refused revision is in force")
	}
}
