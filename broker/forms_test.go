package broker_test

// The form registry through the broker (issue 14): a census2019 version 2
// added as data seals, by its own classes, the deposits made under it,
// and every deposit's audit event names the definition it was sealed by;
// an unused version is replaced, audited; a used one never changes, and a
// deposit racing a replacement on another instance is not sealed by the
// definition replaced. Each test is the attack its protection stops.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/google/uuid"
)

// census2019As returns the canonical census2019 definition changed by
// edit (a map of its JSON), as a definition file's bytes.
func census2019As(t *testing.T, edit func(def map[string]any)) []byte {
	t.Helper()
	b, err := form.Default().Canonical()
	if err != nil {
		t.Fatal(err)
	}
	var def map[string]any
	if err := json.Unmarshal(b, &def); err != nil {
		t.Fatal(err)
	}
	edit(def)
	out, err := json.MarshalIndent(def, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// field returns the field named name of list ("household", "person").
func field(t *testing.T, def map[string]any, list, name string) map[string]any {
	t.Helper()
	for _, f := range def[list].([]any) {
		if fd := f.(map[string]any); fd["name"] == name {
			return fd
		}
	}
	t.Fatalf("census2019 has no %s field %s", list, name)
	return nil
}

// census2019v2 is census2019 version 2: ethnicity moved from analytic to
// identifying (in small communes it names the family), and a new
// analytic person field, disability (1 yes, 2 no).
func census2019v2(t *testing.T) []byte {
	return census2019As(t, func(def map[string]any) {
		def["version"] = 2
		def["title"] = "Census 2019, version 2"
		field(t, def, "person", "ethnicity")["class"] = "identifying"
		def["person"] = append(def["person"].([]any), map[string]any{
			"name": "disability", "type": "code", "class": "analytic", "label": "Disability",
			"codes": []any{map[string]any{"code": 1, "label": "yes"}, map[string]any{"code": 2, "label": "no"}},
		})
	})
}

// formDigest is the SHA-256 the registry gives definition b.
func formDigest(t *testing.T, b []byte) string {
	t.Helper()
	f, err := form.ReadDefinition("form.json", b)
	if err != nil {
		t.Fatal(err)
	}
	_, sum, err := f.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// formHousehold is exHousehold as form version of census2019, with the
// extra person fields given to every person.
func formHousehold(id, ea string, no, version int, extra map[string]any) []byte {
	var m map[string]any
	if err := json.Unmarshal(exHousehold(id, ea, no, 2, ""), &m); err != nil {
		panic(err)
	}
	m["form_version"] = version
	for _, p := range m["persons"].([]any) {
		maps.Copy(p.(map[string]any), extra)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// sealTo encrypts plain to broker b's ingest recipient.
func sealTo(t *testing.T, b *broker.Broker, plain []byte) *bytes.Buffer {
	t.Helper()
	rcpt, err := age.ParseHybridRecipient(b.IngestRecipient())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rcpt)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// depositOn deposits plain through b as c.
func depositOn(t *testing.T, b *broker.Broker, c *broker.Caller, plain []byte) (*broker.DepositResult, error) {
	t.Helper()
	ct := sealTo(t, b, plain)
	return b.Deposit(context.Background(), c, int64(ct.Len()), ct)
}

// classesOf opens submission id and returns, per class, the person
// fields that class's sealed part holds: the fields an open of that
// class adds to an open of none.
func classesOf(t *testing.T, b *broker.Broker, id string) map[crypto.Class][]string {
	t.Helper()
	ctx := context.Background()
	none, err := b.Open(ctx, broker.SubmissionID(id))
	if err != nil {
		t.Fatal(err)
	}
	out := map[crypto.Class][]string{}
	for _, cl := range []crypto.Class{crypto.Identifying, crypto.Analytic} {
		o, err := b.Open(ctx, broker.SubmissionID(id), cl)
		if err != nil {
			t.Fatal(err)
		}
		for k := range o.Persons[0] {
			if _, op := none.Persons[0][k]; !op {
				out[cl] = append(out[cl], k)
			}
		}
		slices.Sort(out[cl])
	}
	return out
}

// keys loads the vault's key provider again (another broker instance's).
func (ev *extractVault) keys() crypto.KeyProvider {
	ev.t.Helper()
	kp, err := agekey.Load(filepath.Join(ev.dir, agekey.FileName))
	if err != nil {
		ev.t.Fatal(err)
	}
	return kp
}

// depositEvent returns the ok deposit event of submission id.
func (ev *extractVault) depositEvent(id string) *audit.Event {
	ev.t.Helper()
	for _, e := range ev.events(0) {
		if e.Action == "submission.deposit" && e.Outcome == "ok" && slices.Contains(e.Resources, "submission:"+id) {
			return e
		}
	}
	ev.t.Fatalf("no deposit event of %s", id)
	return nil
}

// TestFormVersion2SealsByItsClasses: census2019 version 2, added by the
// host operator as a JSON file, is in the registry at once; a household
// deposited under it is validated by it (the new field accepted, a bad
// code of it refused) and sealed by its classes — ethnicity in the
// identifying part, disability in the analytic one — while a version-1
// household keeps ethnicity analytic. Each deposit's audit event carries
// the SHA-256 of its own version's canonical definition, and the
// addition's event names the version, its SHA-256 and the class it
// changed.
func TestFormVersion2SealsByItsClasses(t *testing.T) {
	ev := newExtractVault(t, "")
	ctx := context.Background()
	v2 := census2019v2(t)
	sum2 := formDigest(t, v2)
	var added *broker.FormAdded
	e := ev.oneEvent(func() {
		var err error
		if added, err = ev.b.AddForm(ctx, broker.HostOperator(actor), "census2019-v2.json", v2); err != nil {
			t.Fatal(err)
		}
	})
	if added.Outcome != wire.FormAddedNew || added.SHA256 != sum2 || added.Name != "census2019" || added.Version != 2 || added.InUse ||
		added.AuditIndex == nil || *added.AuditIndex != e.Index {
		t.Fatalf("AddForm = %+v", added)
	}
	if !slices.Contains(added.Reclassified, "person.ethnicity analytic→identifying") || !slices.Contains(added.Reclassified, "+person.disability analytic") {
		t.Errorf("reclassified = %q", added.Reclassified)
	}
	if e.Action != "form.add" || e.Outcome != "ok" || e.FormSHA256 != sum2 || !slices.Equal(e.Resources, []string{"form:census2019/2"}) ||
		!strings.Contains(e.Reason, "person.ethnicity analytic→identifying") {
		t.Errorf("event of the addition: %+v", e)
	}

	enum := ev.caller("enum")
	id2 := uuid.NewString()
	if _, err := depositOn(t, ev.b, enum, formHousehold(id2, ea(communeA, 1), 1, 2, map[string]any{"disability": 2})); err != nil {
		t.Fatalf("deposit under version 2: %v", err)
	}
	// Version 2's own rules: a code version 2 does not list is refused.
	_, err := depositOn(t, ev.b, enum, formHousehold(uuid.NewString(), ea(communeA, 1), 2, 2, map[string]any{"disability": 7}))
	wantCode(t, "a bad code of the new field", err, broker.Invalid, "invalid")
	// Version 1 does not know the field.
	_, err = depositOn(t, ev.b, enum, formHousehold(uuid.NewString(), ea(communeA, 1), 3, 1, map[string]any{"disability": 2}))
	wantCode(t, "version 2's field under version 1", err, broker.Invalid, "invalid")
	id1 := uuid.NewString()
	if _, err := depositOn(t, ev.b, enum, formHousehold(id1, ea(communeA, 1), 4, 1, nil)); err != nil {
		t.Fatal(err)
	}

	c2 := classesOf(t, ev.b, id2)
	if !slices.Contains(c2[crypto.Identifying], "ethnicity") || slices.Contains(c2[crypto.Analytic], "ethnicity") {
		t.Errorf("version 2 sealed ethnicity in the wrong part: %v", c2)
	}
	if !slices.Contains(c2[crypto.Analytic], "disability") || !slices.Contains(c2[crypto.Analytic], "sex") || !slices.Contains(c2[crypto.Identifying], "full_name") {
		t.Errorf("version 2's parts: %v", c2)
	}
	c1 := classesOf(t, ev.b, id1)
	if !slices.Contains(c1[crypto.Analytic], "ethnicity") || slices.Contains(c1[crypto.Identifying], "ethnicity") {
		t.Errorf("version 1 sealed ethnicity in the wrong part: %v", c1)
	}

	_, sum1, err := form.Default().Digest()
	if err != nil {
		t.Fatal(err)
	}
	if got := ev.depositEvent(id2).FormSHA256; got != sum2 {
		t.Errorf("the version-2 deposit's event carries form SHA-256 %q, want version 2's %s", got, sum2)
	}
	if got := ev.depositEvent(id1).FormSHA256; got != sum1 {
		t.Errorf("the version-1 deposit's event carries form SHA-256 %q, want version 1's %s", got, sum1)
	}

	// The list: both versions, both in use, one built in; then the
	// other built-in form, unused.
	l, err := ev.b.FormsFor(ctx, ev.caller("enum"))
	if err != nil {
		t.Fatal(err)
	}
	var lfs *form.Form
	for _, f := range form.Embedded() {
		if f.Name == "lfs2026" {
			lfs = f
		}
	}
	_, sumLFS, err := lfs.Digest()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, f := range l.Forms {
		lines = append(lines, fmt.Sprintf("%s %d %s builtin=%t in_use=%t by=%s", f.Name, f.Version, f.SHA256, f.Builtin, f.InUse, f.AddedBy))
	}
	want := []string{
		fmt.Sprintf("census2019 1 %s builtin=true in_use=true by=", sum1),
		fmt.Sprintf("census2019 2 %s builtin=false in_use=true by=%s", sum2, actor),
		fmt.Sprintf("lfs2026 1 %s builtin=true in_use=false by=", sumLFS),
	}
	if !slices.Equal(lines, want) {
		t.Errorf("FormsFor =\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	d, err := ev.b.FormFor(ctx, ev.caller("enum"), "census2019", 2)
	if err != nil {
		t.Fatal(err)
	}
	if formDigest(t, d.Definition) != sum2 || !bytes.Contains(d.Schema, []byte(`"disability"`)) || d.SHA256 != sum2 {
		t.Errorf("FormFor: sha %s, schema names disability: %t", d.SHA256, bytes.Contains(d.Schema, []byte(`"disability"`)))
	}
}

// TestFormReplaceUnused: a version no submission uses is replaced by
// another definition, audited as form.replace with the new SHA-256 and
// naming the one replaced; a deposit then seals by the new one; the same
// definition added again changes nothing and adds no event (host
// operator); an API admin's repeat is recorded as a request that changed
// nothing.
func TestFormReplaceUnused(t *testing.T) {
	ev := newExtractVault(t, "")
	ctx := context.Background()
	host := broker.HostOperator(actor)
	a := census2019As(t, func(def map[string]any) { def["version"] = 3 })
	b := census2019As(t, func(def map[string]any) {
		def["version"] = 3
		field(t, def, "person", "sex")["class"] = "identifying"
	})
	sumA, sumB := formDigest(t, a), formDigest(t, b)
	if _, err := ev.b.AddForm(ctx, host, "a.json", a); err != nil {
		t.Fatal(err)
	}
	var r *broker.FormAdded
	e := ev.oneEvent(func() {
		var err error
		if r, err = ev.b.AddForm(ctx, host, "b.json", b); err != nil {
			t.Fatalf("replacing an unused version: %v", err)
		}
	})
	if r.Outcome != wire.FormAddedReplaced || r.Previous != sumA || r.SHA256 != sumB {
		t.Errorf("replacement = %+v", r)
	}
	if e.Action != "form.replace" || e.Outcome != "ok" || e.FormSHA256 != sumB || !strings.Contains(e.Reason, sumA) {
		t.Errorf("event of the replacement: %+v", e)
	}
	h := ev.head()
	u, err := ev.b.AddForm(ctx, host, "b-again.json", b)
	if err != nil || u.Outcome != wire.FormAddedUnchanged || u.AuditIndex != nil {
		t.Errorf("the same definition again: %+v, %v", u, err)
	}
	if ev.head() != h {
		t.Error("adding the same definition again appended an event")
	}
	e = ev.oneEvent(func() {
		if u, err = ev.b.AddForm(ctx, broker.APIOperator(ev.caller("admin")), "b.json", b); err != nil || u.Outcome != wire.FormAddedUnchanged {
			t.Errorf("the admin adds the same definition again: %+v, %v", u, err)
		}
	})
	if e.Action != "form.add" || e.Outcome != "unchanged" || e.Actor != "user:admin" {
		t.Errorf("event of an API repeat: %+v", e)
	}

	id := uuid.NewString()
	if _, err := depositOn(t, ev.b, ev.caller("enum"), formHousehold(id, ea(communeA, 1), 1, 3, nil)); err != nil {
		t.Fatal(err)
	}
	if c := classesOf(t, ev.b, id); !slices.Contains(c[crypto.Identifying], "sex") {
		t.Errorf("the replaced version's deposit sealed sex in %v", c)
	}
	if got := ev.depositEvent(id).FormSHA256; got != sumB {
		t.Errorf("deposit event form SHA-256 %s, want the replacement's %s", got, sumB)
	}

	// Built-in versions never change, not even before any deposit.
	_, err = ev.b.AddForm(ctx, host, "v1.json", census2019As(t, func(def map[string]any) { def["title"] = "mine" }))
	wantCode(t, "replacing the built-in version 1", err, broker.Conflict, "form_builtin")
	same, err := form.Default().Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if u, err := ev.b.AddForm(ctx, host, "v1.json", same); err != nil || u.Outcome != wire.FormAddedUnchanged || !u.Builtin {
		t.Errorf("the built-in definition itself: %+v, %v", u, err)
	}
	_, err = ev.b.AddForm(ctx, host, "bad.json", []byte(`{"name":"census2019","version":4,"household":[]}`))
	wantCode(t, "a definition that does not parse", err, broker.Invalid, "form_invalid")
}

// TestFormUsedVersionNeverChanges is the attack of an administrator who,
// once submissions are sealed under version 2, changes its classes to
// move the person's name from identifying into analytic, so that every
// supervisor and every analytic extract would see names from then on.
// The replacement is refused (409 form_version_in_use) over the API and
// on the host, the refusal is audited, the registry keeps version 2's
// definition, and the next deposit under version 2 still seals the name
// in the identifying part. Protection: AddForm's in-use check, then
// PutForm's, then the store's trigger; seen failing (the replacement
// stored, the name then sealed analytic) with all three removed.
func TestFormUsedVersionNeverChanges(t *testing.T) {
	ev := newExtractVault(t, "")
	ctx := context.Background()
	v2 := census2019v2(t)
	if _, err := ev.b.AddForm(ctx, broker.HostOperator(actor), "v2.json", v2); err != nil {
		t.Fatal(err)
	}
	enum := ev.caller("enum")
	if _, err := depositOn(t, ev.b, enum, formHousehold(uuid.NewString(), ea(communeA, 1), 1, 2, nil)); err != nil {
		t.Fatal(err)
	}
	hostile := census2019As(t, func(def map[string]any) {
		def["version"] = 2
		def["title"] = "Census 2019, version 2"
		field(t, def, "person", "ethnicity")["class"] = "identifying"
		field(t, def, "person", "full_name")["class"] = "analytic"
		def["person"] = append(def["person"].([]any), map[string]any{
			"name": "disability", "type": "code", "class": "analytic", "label": "Disability",
			"codes": []any{map[string]any{"code": 1, "label": "yes"}, map[string]any{"code": 2, "label": "no"}},
		})
	})
	var err error
	e := ev.oneEvent(func() { _, err = ev.b.AddForm(ctx, broker.APIOperator(ev.caller("admin")), "v2.json", hostile) })
	wantCode(t, "the admin changes a used version", err, broker.Conflict, "form_version_in_use")
	if e.Action != "form.replace" || e.Outcome != "refused" || e.Actor != "user:admin" || e.FormSHA256 != formDigest(t, hostile) {
		t.Errorf("event of the refused replacement: %+v", e)
	}
	_, err = ev.b.AddForm(ctx, broker.HostOperator(actor), "v2.json", hostile)
	wantCode(t, "the host operator changes a used version", err, broker.Conflict, "form_version_in_use")

	d, err := ev.b.Form(ctx, "census2019", 2)
	if err != nil {
		t.Fatal(err)
	}
	if d.SHA256 != formDigest(t, v2) || !d.InUse {
		t.Fatalf("version 2 after the attack: sha256 %s (in use %t), want %s", d.SHA256, d.InUse, formDigest(t, v2))
	}
	id := uuid.NewString()
	if _, err := depositOn(t, ev.b, enum, formHousehold(id, ea(communeA, 1), 2, 2, nil)); err != nil {
		t.Fatal(err)
	}
	if c := classesOf(t, ev.b, id); !slices.Contains(c[crypto.Identifying], "full_name") || slices.Contains(c[crypto.Analytic], "full_name") {
		t.Errorf("after the attack version 2 seals the name in %v", c)
	}
	// A broker started afresh reads the same version 2.
	b2, err := broker.New(ctx, broker.Opts{Store: ev.store, Keys: ev.keys(), Now: ev.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close(ctx)
	if d, err := b2.Form(ctx, "census2019", 2); err != nil || d.SHA256 != formDigest(t, v2) {
		t.Errorf("a new broker reads version 2 as %v, %v", d != nil && d.SHA256 == formDigest(t, v2), err)
	}
}

// TestFormReplacedDuringDeposit: instance A has read version 3 (the
// first definition) and is sealing a household by it when instance B,
// on the same store, replaces version 3 (no submission uses it yet) with
// a definition that makes sex identifying. A's deposit is refused
// (503 form_changed, nothing stored), A reads the registry again, and
// the household sent again is sealed by the definition in force, its
// event carrying that definition's SHA-256. Protection: the deposit's
// transaction checks the stored SHA-256 of the version it sealed by
// (checkSealedBy); seen failing without it (the household stored,
// sealed by the replaced definition, under a version now "in use" with
// another).
func TestFormReplacedDuringDeposit(t *testing.T) {
	ev := newExtractVault(t, "")
	ctx := context.Background()
	first := census2019As(t, func(def map[string]any) { def["version"] = 3 })
	second := census2019As(t, func(def map[string]any) {
		def["version"] = 3
		field(t, def, "person", "sex")["class"] = "identifying"
	})
	if _, err := ev.b.AddForm(ctx, broker.HostOperator(actor), "first.json", first); err != nil {
		t.Fatal(err)
	}
	if _, err := ev.b.Form(ctx, "census2019", 3); err != nil { // A holds the first definition
		t.Fatal(err)
	}
	other, err := broker.New(ctx, broker.Opts{Store: ev.store, Keys: ev.keys(), Now: ev.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	if _, err := other.AddForm(ctx, broker.HostOperator(actor), "second.json", second); err != nil {
		t.Fatalf("instance B replaces the unused version: %v", err)
	}
	id := uuid.NewString()
	plain := formHousehold(id, ea(communeA, 1), 1, 3, nil)
	_, err = depositOn(t, ev.b, ev.caller("enum"), plain)
	wantCode(t, "a deposit sealed by the replaced definition", err, broker.Unavailable, "form_changed")
	if _, err := ev.b.Open(ctx, broker.SubmissionID(id)); broker.KindOf(err) != broker.NotFound {
		t.Fatalf("the refused deposit was stored: %v", err)
	}
	if _, err := depositOn(t, ev.b, ev.caller("enum"), plain); err != nil {
		t.Fatalf("the household sent again: %v", err)
	}
	if c := classesOf(t, ev.b, id); !slices.Contains(c[crypto.Identifying], "sex") {
		t.Errorf("sealed sex in %v, want the identifying part (the definition in force)", c)
	}
	if got, want := ev.depositEvent(id).FormSHA256, formDigest(t, second); got != want {
		t.Errorf("deposit event form SHA-256 %s, want the definition in force %s", got, want)
	}
}
