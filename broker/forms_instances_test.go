package broker_test

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/postgres"
	"github.com/censusvault/censusvault/storage/postgres/pgtest"
	"github.com/google/uuid"
)

// TestFormAddedOnOtherInstance: on PostgreSQL, an administrator adds
// census2019 version 2 through instance A; instance B, which has neither
// run nor listened since it started (so only its own look at the store
// can tell it), accepts a household deposited under version 2 on the
// very next request, seals it by version 2's classes and names version
// 2's SHA-256 in its event. Then A adds version 3 and deposits under it,
// and B opens that submission by version 3's definition. The attack it
// stops: a deposit refused as "unknown form" (or a submission unreadable)
// on every instance but the one the form was added through.
func TestFormAddedOnOtherInstance(t *testing.T) {
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
	open := func() *postgres.Store {
		st, err := postgres.Open(ctx, postgres.Options{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	stA, stB := open(), open()
	if err := broker.Init(ctx, broker.InitOpts{Store: stA, Keys: kp, Areas: tree, Actor: actor}); err != nil {
		t.Fatal(err)
	}
	lim := broker.Limits{UserRate: -1, RefusalBurst: 1 << 20}
	a, err := broker.New(ctx, broker.Opts{Store: stA, Keys: kp, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	bb, err := broker.New(ctx, broker.Opts{Store: stB, Keys: kp, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for _, u := range []broker.NewUser{
		{Name: "admin", Role: policy.Admin, Area: keyNation},
		{Name: "enum", Role: policy.Enumerator, Area: keyDistrict},
	} {
		tok, err := a.AddUser(ctx, actor, u)
		if err != nil {
			t.Fatal(err)
		}
		tokens[string(u.Name)] = tok.Reveal()
	}
	on := func(b *broker.Broker, user string) *broker.Caller {
		t.Helper()
		c, err := b.Authenticate(ctx, "Bearer "+tokens[user], "test")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	v2 := census2019v2(t)
	if _, err := a.AddForm(ctx, broker.APIOperator(on(a, "admin")), "v2.json", v2); err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	res, err := depositOn(t, bb, on(bb, "enum"), formHousehold(id, ea(communeA, 1), 1, 2, map[string]any{"disability": 1}))
	if err != nil {
		t.Fatalf("instance B refuses a deposit under the version added on A: %v", err)
	}
	var e *audit.Event
	if err := stB.View(ctx, func(tx storage.ReadTx) error {
		return tx.AuditRecords(res.Receipt.AuditIndex, 1, func(r storage.AuditRecord) (bool, error) {
			var err error
			e, err = audit.Decode(r.Event)
			return false, err
		})
	}); err != nil {
		t.Fatal(err)
	}
	if e.Action != "submission.deposit" || e.FormSHA256 != formDigest(t, v2) {
		t.Errorf("B's deposit event: action %s, form SHA-256 %q, want version 2's %s", e.Action, e.FormSHA256, formDigest(t, v2))
	}
	if c := classesOf(t, bb, id); !slices.Contains(c[crypto.Identifying], "ethnicity") || !slices.Contains(c[crypto.Analytic], "disability") {
		t.Errorf("B sealed by %v, want version 2's classes", c)
	}

	v3 := census2019As(t, func(def map[string]any) {
		def["version"] = 3
		field(t, def, "person", "sex")["class"] = "identifying"
	})
	if _, err := a.AddForm(ctx, broker.APIOperator(on(a, "admin")), "v3.json", v3); err != nil {
		t.Fatal(err)
	}
	id3 := uuid.NewString()
	if _, err := depositOn(t, a, on(a, "enum"), formHousehold(id3, ea(communeA, 1), 2, 3, nil)); err != nil {
		t.Fatal(err)
	}
	if c := classesOf(t, bb, id3); !slices.Contains(c[crypto.Identifying], "sex") {
		t.Errorf("B opens the version-3 submission by %v, want version 3's classes", c)
	}
	l, err := bb.FormsFor(ctx, on(bb, "enum"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range l.Forms {
		got = append(got, f.Name+"/"+strconv.Itoa(f.Version)+map[bool]string{true: " in use"}[f.InUse])
	}
	if want := []string{"census2019/1", "census2019/2 in use", "census2019/3 in use", "lfs2026/1"}; !slices.Equal(got, want) {
		t.Errorf("B lists %q, want %q", got, want)
	}
}
