package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/httpapi"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/sqlite"
	"github.com/google/uuid"
)

// Review views (issue 13), attacked over HTTP: the hourly cap of record
// opens (on two instances of one store), the classes each role sees,
// scope and deny grants in lists and opens, lists that carry no field,
// an enumerator's own list, the trust roles refused, shredded classes,
// strict parameters and no-store on every answer.

// viewHousehold is a secret household (secretHousehold) with
// distinctive analytic and operational values too, so that every class
// can be told apart in an answer.
func viewHousehold(ea string, no int) hh {
	m := secretHousehold(ea, no)
	h := hhOf(m)
	h["floor_area_m2"] = json.Number("123.25")
	h["visit_count"] = 7
	return m
}

// analyticSecret and operationalSecret are viewHousehold's distinctive
// analytic and operational values as they appear in a view's JSON.
const (
	analyticSecret    = `"floor_area_m2":123.25`
	operationalSecret = `"visit_count":7`
)

// depositAs deposits m as user, failing unless it is created, and
// returns its id.
func (v *vault) depositAs(user string, m hh) string {
	v.t.Helper()
	v.receipt(v.deposit(user, v.seal(encode(v.t, m))), http.StatusCreated)
	return m["id"].(string)
}

// list is GET /v1/submissions?query as user, decoded when 200.
func (v *vault) list(user, query string) (*response, *wire.SubmissionList) {
	v.t.Helper()
	r := v.get(user, "/v1/submissions?"+query)
	if r.Status != http.StatusOK {
		return r, nil
	}
	var l wire.SubmissionList
	r.JSON(v.t, &l)
	return r, &l
}

// open is GET /v1/submissions/{id} as user, decoded when 200.
func (v *vault) open(user, id string) (*response, *wire.SubmissionView) {
	v.t.Helper()
	r := v.get(user, "/v1/submissions/"+id)
	if r.Status != http.StatusOK {
		return r, nil
	}
	var sv wire.SubmissionView
	r.JSON(v.t, &sv)
	return r, &sv
}

// opensOf is how many record opens of user the store holds.
func (v *vault) opensOf(user string) int64 {
	v.t.Helper()
	var n int64
	if err := v.Store.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		n, err = tx.OpensSince(user, time.Time{})
		return err
	}); err != nil {
		v.t.Fatal(err)
	}
	return n
}

// addUser adds a user with a first grant and more grants.
func (v *vault) addUser(name string, first broker.NewUser, more ...policy.Grant) {
	v.t.Helper()
	ctx := context.Background()
	first.Name = broker.UserID(name)
	tok, err := v.B.AddUser(ctx, "cli:test", first)
	if err != nil {
		v.t.Fatal(err)
	}
	v.Tokens[name] = tok.Reveal()
	for _, g := range more {
		if err := v.B.Grant(ctx, "cli:test", first.Name, g); err != nil {
			v.t.Fatal(err)
		}
	}
}

// secondInstance starts another broker and HTTP server on the same
// SQLite file, key and clock, as a second instance of the vault would
// run (with openCaps as its broker.Opts.OpenCaps).
func (v *vault) secondInstance(openCaps map[policy.Role]int) *vault {
	v.t.Helper()
	ctx := context.Background()
	kp, err := agekey.Load(filepath.Join(v.Dir, agekey.FileName))
	if err != nil {
		v.t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(v.Dir, sqlite.FileName)})
	if err != nil {
		v.t.Fatal(err)
	}
	b, err := broker.New(ctx, broker.Opts{Store: st, Keys: kp, Now: v.Clock.Now, AuthWin: v.AuthWin, PointInterval: -1, OpenCaps: openCaps})
	if err != nil {
		v.t.Fatal(err)
	}
	h, err := httpapi.New(httpapi.Opts{Broker: b})
	if err != nil {
		v.t.Fatal(err)
	}
	w := *v
	w.B, w.Store = b, st
	w.Server = httptest.NewServer(h)
	w.URL = w.Server.URL
	v.t.Cleanup(func() { st.Close() })
	v.t.Cleanup(func() { b.Close(context.Background()) })
	v.t.Cleanup(w.Server.Close)
	return &w
}

// TestOpenCap is the attack of a team leader who pages through the
// commune's households one open at a time, spreading the opens over two
// instances of the vault: with a cap of 4 an hour the first 3 (n−1) and
// the 4th (n) open, the 5th (n+1) is 429 rate_limited on either
// instance, audited, with nothing of the household in the answer, until
// the oldest open leaves the hour (Retry-After says when).
func TestOpenCap(t *testing.T) {
	t.Parallel()
	caps := map[policy.Role]int{policy.TeamLeader: 4}
	v := newVault(t, vaultOpts{openCaps: caps})
	v.addUser("tl-a2", broker.NewUser{Role: policy.TeamLeader, Area: communeA})
	w := v.secondInstance(caps)
	var ids []string
	for no := 1; no <= 6; no++ {
		ids = append(ids, v.depositAs("enum-a1", viewHousehold(eaA1, no)))
	}
	instances := []*vault{v, w}
	for i := range 4 { // n−1 opens, then the n-th
		ev := instances[i%2].oneEvent(func() {
			r, sv := instances[i%2].open("tl-a", ids[i])
			if r.Status != http.StatusOK || sv == nil || !slices.Contains(sv.Classes, "identifying") {
				t.Fatalf("open %d (of a cap of 4) on instance %d: %d %s", i+1, i%2, r.Status, r.Body)
			}
		})
		if ev.Outcome != "ok" || !slices.Equal(ev.Resources, []string{"submission:" + ids[i]}) {
			t.Errorf("open %d: event %s %v", i+1, ev.Outcome, ev.Resources)
		}
		v.Clock.Advance(10 * time.Minute)
	}
	if n := v.opensOf("tl-a"); n != 4 {
		t.Fatalf("%d opens stored after 4, want 4", n)
	}
	// Now 40 minutes after the first open: the (n+1)-th, on both.
	for i, inst := range instances {
		var r *response
		ev := inst.oneEvent(func() { r, _ = inst.open("tl-a", ids[4]) })
		if r.Status != http.StatusTooManyRequests || r.Code(t) != "rate_limited" {
			t.Fatalf("open 5 (past a cap of 4) on instance %d: %d %s", i, r.Status, r.Body)
		}
		if l := leaks(r.Body); len(l) > 0 || bytes.Contains(r.Body, []byte(analyticSecret)) || bytes.Contains(r.Body, []byte(operationalSecret)) {
			t.Errorf("the refusal on instance %d reveals %v: %s", i, l, r.Body)
		}
		// The first open leaves the hour 20 minutes from now.
		ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || ra < 1200 || ra > 1202 {
			t.Errorf("Retry-After %q on instance %d, want 1200 s (when the first open leaves the hour)", r.Header.Get("Retry-After"), i)
		}
		if ev.Action != "submission.read" || ev.Outcome != "rate_limited" || ev.Area != eaA1 || !slices.Equal(ev.Resources, []string{"submission:" + ids[4]}) {
			t.Errorf("refused open on instance %d: event %s/%s at %s %v", i, ev.Action, ev.Outcome, ev.Area, ev.Resources)
		}
		if !strings.Contains(ev.Reason, "nothing revealed") {
			t.Errorf("refused open: event reason %q", ev.Reason)
		}
	}
	if n := v.opensOf("tl-a"); n != 4 {
		t.Errorf("%d opens stored after two refusals, want 4: a refused open is not an open", n)
	}
	// A second before the first open leaves the window: still refused;
	// once it has left, one more open (and only one).
	v.Clock.Advance(20*time.Minute - time.Second)
	if r, _ := w.open("tl-a", ids[4]); r.Status != http.StatusTooManyRequests {
		t.Errorf("a second before the window frees a place: %d, want 429", r.Status)
	}
	v.Clock.Advance(2 * time.Second)
	if r, _ := w.open("tl-a", ids[4]); r.Status != http.StatusOK {
		t.Errorf("once the first open left the hour: %d %s, want 200", r.Status, r.Body)
	}
	if r, _ := v.open("tl-a", ids[5]); r.Status != http.StatusTooManyRequests {
		t.Errorf("the freed place was used: %d, want 429", r.Status)
	}
	// Another user's cap is its own.
	if r, _ := v.open("tl-a2", ids[0]); r.Status != http.StatusOK {
		t.Errorf("another team leader of the commune: %d %s, want 200 (its cap is its own)", r.Status, r.Body)
	}
	// Opens older than a day are pruned from the store (the audit log
	// keeps them) as later opens come.
	v.Clock.Advance(25 * time.Hour)
	if r, _ := v.open("tl-a", ids[5]); r.Status != http.StatusOK {
		t.Fatalf("a day later: %d %s", r.Status, r.Body)
	}
	if n := v.opensOf("tl-a"); n != 1 {
		t.Errorf("%d opens of tl-a stored a day later, want 1 (the older ones pruned)", n)
	}
}

// TestOpenCapConcurrent is the race against the cap: twelve opens at
// once, half through each of two instances, by a team leader with a cap
// of 3. Exactly 3 are answered, the rest refused, and 3 are stored: the
// count is checked in the transaction that records the open.
func TestOpenCapConcurrent(t *testing.T) {
	t.Parallel()
	caps := map[policy.Role]int{policy.TeamLeader: 3}
	v := newVault(t, vaultOpts{openCaps: caps})
	w := v.secondInstance(caps)
	id := v.depositAs("enum-a1", viewHousehold(eaA1, 1))
	statuses := make(chan int, 12)
	var wg sync.WaitGroup
	for i := range 12 {
		inst := []*vault{v, w}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := inst.in(t).get("tl-a", "/v1/submissions/"+id)
			statuses <- r.Status
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for st := range statuses {
		count[st]++
	}
	if count[http.StatusOK] != 3 || count[http.StatusTooManyRequests] != 9 {
		t.Errorf("12 concurrent opens at a cap of 3: %v, want 3 × 200 and 9 × 429", count)
	}
	if n := v.opensOf("tl-a"); n != 3 {
		t.Errorf("%d opens stored, want 3", n)
	}
}

// TestOpenCapLargestRole: a user holding several roles gets the largest
// cap among the roles that allow the open — not the cap of a role it
// holds elsewhere. A team leader (cap 2) who is also supervisor of the
// district (cap 3) opens 3 in the commune; one who is supervisor of
// another commune only, 2.
func TestOpenCapLargestRole(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{openCaps: map[policy.Role]int{policy.TeamLeader: 2, policy.Supervisor: 3}})
	v.addUser("tl-sup", broker.NewUser{Role: policy.TeamLeader, Area: communeA}, policy.Grant{Role: policy.Supervisor, Area: district})
	v.addUser("tl-sup-elsewhere", broker.NewUser{Role: policy.TeamLeader, Area: communeA}, policy.Grant{Role: policy.Supervisor, Area: communeB})
	var ids []string
	for no := 1; no <= 4; no++ {
		ids = append(ids, v.depositAs("enum-a1", viewHousehold(eaA1, no)))
	}
	for user, capN := range map[string]int{"tl-sup": 3, "tl-sup-elsewhere": 2} {
		for i := range capN + 1 {
			r, sv := v.open(user, ids[i])
			want := http.StatusOK
			if i == capN {
				want = http.StatusTooManyRequests
			}
			if r.Status != want {
				t.Errorf("%s open %d (cap %d): %d, want %d: %s", user, i+1, capN, r.Status, want, r.Body)
			}
			if sv != nil && !slices.Contains(sv.Classes, "identifying") {
				t.Errorf("%s sees %v: the team leader grant gives identifying fields here", user, sv.Classes)
			}
		}
	}
}

// TestOpenClasses: what each role sees of one household. The team leader
// of its commune sees every class; the supervisor of the district the
// analytic one only (issue 13): never a name, never the operational
// record (the attack: a supervisor must not get identifying or
// operational fields); a team leader of
// another commune, every other role and the depositor itself nothing
// (403, as for an id that does not exist). Every open is one audit event
// naming the submission and the classes revealed, with no value in it.
func TestOpenClasses(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	id := v.depositAs("enum-a1", viewHousehold(eaA1, 1))

	ev := v.oneEvent(func() {
		r, sv := v.open("tl-a", id)
		if r.Status != http.StatusOK {
			t.Fatalf("team leader opens: %d %s", r.Status, r.Body)
		}
		if !slices.Equal(sv.Classes, []string{"identifying", "analytic", "operational"}) {
			t.Errorf("team leader sees classes %v", sv.Classes)
		}
		if got := string(sv.Fields["identifying"].Household["head_name"]); got != strconv.Quote(secretName) {
			t.Errorf("team leader sees head_name %s", got)
		}
		if got := string(sv.Fields["analytic"].Household["floor_area_m2"]); got != "123.25" {
			t.Errorf("team leader sees floor area %s", got)
		}
		if got := string(sv.Fields["operational"].Household["visit_count"]); got != "7" {
			t.Errorf("team leader sees visit_count %s", got)
		}
		if len(sv.Fields["identifying"].Persons) != 2 || string(sv.Fields["identifying"].Persons[1]["full_name"]) != strconv.Quote(secretPerson) {
			t.Errorf("team leader sees persons %v", sv.Fields["identifying"].Persons)
		}
		if sv.Submission.ID != broker.SubmissionID(id) || sv.Submission.EA != eaA1 || sv.Submission.Enumerator != "enum-a1" || sv.Submission.Status != "current" {
			t.Errorf("metadata %+v", sv.Submission)
		}
		// Each class holds only its own fields.
		if _, ok := sv.Fields["analytic"].Household["head_name"]; ok {
			t.Error("a name is in the analytic class")
		}
	})
	if ev.Action != "submission.read" || ev.Decision != "allow" || ev.Outcome != "ok" || ev.Area != eaA1 ||
		!slices.Equal(ev.Resources, []string{"submission:" + id}) || ev.Reason != "revealed identifying, analytic, operational" {
		t.Errorf("team leader's open: event %s/%s/%s at %s %v %q", ev.Action, ev.Decision, ev.Outcome, ev.Area, ev.Resources, ev.Reason)
	}

	ev = v.oneEvent(func() {
		r, sv := v.open("supervisor", id)
		if r.Status != http.StatusOK {
			t.Fatalf("supervisor opens: %d %s", r.Status, r.Body)
		}
		if !slices.Equal(sv.Classes, []string{"analytic"}) || len(sv.Fields) != 1 {
			t.Errorf("supervisor sees classes %v (fields of %d)", sv.Classes, len(sv.Fields))
		}
		for _, c := range []string{"identifying", "operational"} {
			if _, ok := sv.Fields[c]; ok {
				t.Errorf("supervisor's view has the %s class", c)
			}
		}
		if l := leaks(r.Body); len(l) > 0 {
			t.Errorf("supervisor's view reveals identifying values %v", l)
		}
		if bytes.Contains(r.Body, []byte(operationalSecret)) {
			t.Error("supervisor's view reveals the operational visit count")
		}
		if !bytes.Contains(r.Body, []byte(analyticSecret)) {
			t.Error("supervisor's view lacks the analytic fields")
		}
	})
	if ev.Reason != "revealed analytic" || ev.Outcome != "ok" {
		t.Errorf("supervisor's open: event %s %q", ev.Outcome, ev.Reason)
	}

	refused := []string{"tl-b", "enum-a1", "enum-a2", "steering-a", "steering-vn", "researcher", "auditor", "admin", "approver"}
	for _, u := range refused {
		for _, sid := range []string{id, uuid.NewString()} {
			var r *response
			ev := v.oneEvent(func() { r, _ = v.open(u, sid) })
			if r.Status != http.StatusForbidden || r.Code(t) != "permission_denied" {
				t.Errorf("%s opens %s: %d %s, want 403", u, sid, r.Status, r.Body)
			}
			if l := leaks(r.Body); len(l) > 0 || bytes.Contains(r.Body, []byte(analyticSecret)) {
				t.Errorf("%s's refusal reveals %v", u, l)
			}
			if ev.Action != "submission.read" || ev.Outcome != "denied" || ev.Decision != "deny" || !slices.Equal(ev.Resources, []string{"submission:" + sid}) {
				t.Errorf("%s opens %s: event %s/%s/%s %v", u, sid, ev.Action, ev.Outcome, ev.Decision, ev.Resources)
			}
		}
		// A known id and an unknown one answer alike.
		other := uuid.NewString()
		a, _ := v.open(u, id)
		b, _ := v.open(u, other)
		if a.Status != b.Status || strings.ReplaceAll(string(a.Body), id, "ID") != strings.ReplaceAll(string(b.Body), other, "ID") {
			t.Errorf("%s: a known id answers %d %s, an unknown one %d %s", u, a.Status, a.Body, b.Status, b.Body)
		}
	}
	// An unknown id for a team leader, too.
	if r, _ := v.open("tl-a", uuid.NewString()); r.Status != http.StatusForbidden {
		t.Errorf("team leader opens an unknown id: %d, want 403", r.Status)
	}

	// No event of any of it holds a value.
	for _, r := range v.auditRecords(0) {
		if l := leaks(r.Event); len(l) > 0 || bytes.Contains(r.Event, []byte("123.25")) {
			t.Errorf("audit event %d holds %v", r.Index, l)
		}
	}
}

// TestTrustRolesWithTeamLeaderGrantsSeeNothing is the attack of an
// admin, an auditor or an approver who is also given a team leader grant
// on the commune: no list, no open, refused by the trust role's deny.
func TestTrustRolesWithTeamLeaderGrantsSeeNothing(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	id := v.depositAs("enum-a1", viewHousehold(eaA1, 1))
	for _, trust := range []policy.Role{policy.Admin, policy.Auditor, policy.Approver} {
		name := string(trust) + "-tl"
		v.addUser(name, broker.NewUser{Role: trust, Area: nation},
			policy.Grant{Role: policy.TeamLeader, Area: communeA}, policy.Grant{Role: policy.Supervisor, Area: district})
		for _, q := range []string{"area=" + communeA, "area=" + eaA1, "area=" + nation, "mine=1"} {
			var r *response
			ev := v.oneEvent(func() { r, _ = v.list(name, q) })
			if r.Status != http.StatusForbidden {
				t.Errorf("%s lists %s: %d %s, want 403", name, q, r.Status, r.Body)
			}
			if ev.Outcome != "denied" {
				t.Errorf("%s lists %s: event %s", name, q, ev.Outcome)
			}
		}
		var r *response
		ev := v.oneEvent(func() { r, _ = v.open(name, id) })
		if r.Status != http.StatusForbidden || len(leaks(r.Body)) > 0 {
			t.Errorf("%s opens: %d %s, want 403", name, r.Status, r.Body)
		}
		if !strings.Contains(ev.Rule, "p, "+string(trust)+", submission.read_analytic, deny") {
			t.Errorf("%s opens: refused by %q, want the %s deny rule", name, ev.Rule, trust)
		}
	}
}

// TestViewsScope: a team leader lists and opens in its commune only,
// and a deny grant below it hides an EA from its lists (of the commune
// and above) and its opens.
func TestViewsScope(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	v.addUser("tl-deny", broker.NewUser{Role: policy.TeamLeader, Area: communeA}, policy.Grant{Role: policy.TeamLeader, Area: eaA2, Deny: true})
	byEA := map[string]string{}
	for i, ea := range []string{eaA1, eaA2, eaA3, eaB1} {
		byEA[ea] = v.depositAs(map[string]string{eaA1: "enum-a1", eaA2: "enum-a2", eaA3: "enum-a3", eaB1: "enum-b1"}[ea], viewHousehold(ea, i+1))
	}
	idsOf := func(l *wire.SubmissionList) []string {
		var out []string
		for _, s := range l.Submissions {
			out = append(out, string(s.ID))
		}
		slices.Sort(out)
		return out
	}
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }
	for _, k := range []struct {
		user, area string
		want       []string // nil: 403
	}{
		{"tl-a", communeA, sorted(byEA[eaA1], byEA[eaA2], byEA[eaA3])},
		{"tl-a", district, sorted(byEA[eaA1], byEA[eaA2], byEA[eaA3])}, // allowed below: its commune only
		{"tl-a", eaA2, []string{byEA[eaA2]}},
		{"tl-a", communeB, nil},
		{"tl-a", eaB1, nil},
		{"tl-deny", communeA, sorted(byEA[eaA1], byEA[eaA3])},
		{"tl-deny", nation, sorted(byEA[eaA1], byEA[eaA3])},
		{"tl-deny", eaA2, nil},
		{"supervisor", district, sorted(byEA[eaA1], byEA[eaA2], byEA[eaA3], byEA[eaB1])},
		{"supervisor", province, sorted(byEA[eaA1], byEA[eaA2], byEA[eaA3], byEA[eaB1])},
	} {
		var r *response
		var l *wire.SubmissionList
		ev := v.oneEvent(func() { r, l = v.list(k.user, "area="+k.area) })
		if k.want == nil {
			if r.Status != http.StatusForbidden || ev.Outcome != "denied" || ev.Area != k.area {
				t.Errorf("%s lists %s: %d %s, event %s at %s; want 403", k.user, k.area, r.Status, r.Body, ev.Outcome, ev.Area)
			}
			continue
		}
		if r.Status != http.StatusOK {
			t.Errorf("%s lists %s: %d %s", k.user, k.area, r.Status, r.Body)
			continue
		}
		if got := idsOf(l); !slices.Equal(got, k.want) {
			t.Errorf("%s lists %s: %v, want %v", k.user, k.area, got, k.want)
		}
		if ev.Action != "submission.list" || ev.Decision != "allow" || ev.Outcome != "ok" || ev.Area != k.area || len(ev.Resources) != 0 {
			t.Errorf("%s lists %s: event %s/%s/%s at %s %v", k.user, k.area, ev.Action, ev.Decision, ev.Outcome, ev.Area, ev.Resources)
		}
	}
	for _, k := range []struct {
		user, ea string
		status   int
	}{
		{"tl-a", eaB1, 403}, {"tl-b", eaA1, 403}, {"tl-b", eaB1, 200},
		{"tl-deny", eaA2, 403}, {"tl-deny", eaA1, 200}, {"tl-deny", eaA3, 200},
	} {
		if r, _ := v.open(k.user, byEA[k.ea]); r.Status != k.status {
			t.Errorf("%s opens the household of %s: %d, want %d: %s", k.user, k.ea, r.Status, k.status, r.Body)
		}
	}
}

// viewMetaKeys are the only keys a list row may have.
var viewMetaKeys = []string{"id", "ea", "household_no", "form", "form_version", "enumerator", "interviewed_at", "received_at", "supersedes", "superseded_by", "status", "index"}

// checkMetaOnly fails if a list answer carries anything but metadata.
func checkMetaOnly(t *testing.T, who string, body []byte) {
	t.Helper()
	if l := leaks(body); len(l) > 0 || bytes.Contains(body, []byte("123.25")) || bytes.Contains(body, []byte("visit_count")) {
		t.Errorf("%s's list holds field values %v: %s", who, l, body)
	}
	var raw struct {
		Submissions []map[string]json.RawMessage `json:"submissions"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, row := range raw.Submissions {
		for k := range row {
			if !slices.Contains(viewMetaKeys, k) {
				t.Errorf("%s's list row has key %q", who, k)
			}
		}
	}
}

// TestListPagesAndStatus: a list is metadata only — none of the
// households' field values — in deposit order, paged by its cursor, and
// filtered by status through a correction; its audit event names no id.
func TestListPagesAndStatus(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	var ids []string
	for no := 1; no <= 5; no++ {
		ids = append(ids, v.depositAs("enum-a1", viewHousehold(eaA1, no)))
	}
	ids = append(ids, v.depositAs("enum-b1", viewHousehold(eaB1, 1)))
	fix := viewHousehold(eaA1, 2)
	fix["supersedes"] = ids[1]
	fixed := v.depositAs("enum-a1", fix)
	all := append(slices.Clone(ids), fixed)

	// Every submission, two at a time.
	var got []wire.SubmissionMeta
	after := ""
	for page := 0; ; page++ {
		var r *response
		var l *wire.SubmissionList
		ev := v.oneEvent(func() { r, l = v.list("supervisor", "area="+district+"&status=all&limit=2"+after) })
		if r.Status != http.StatusOK {
			t.Fatalf("page %d: %d %s", page, r.Status, r.Body)
		}
		checkMetaOnly(t, "supervisor", r.Body)
		if len(l.Submissions) > 2 {
			t.Fatalf("page %d has %d rows, limit 2", page, len(l.Submissions))
		}
		raw := v.auditRecords(ev.Index)[0].Event
		for _, id := range all {
			if bytes.Contains(raw, []byte(id)) {
				t.Errorf("the list's audit event names submission %s", id)
			}
		}
		if ev.Action != "submission.list" || len(ev.Resources) != 0 || ev.Area != district {
			t.Errorf("list event %s at %s %v", ev.Action, ev.Area, ev.Resources)
		}
		got = append(got, l.Submissions...)
		if l.Next == nil {
			break
		}
		after = fmt.Sprintf("&after=%d", *l.Next)
		if page > 10 {
			t.Fatal("the cursor does not advance")
		}
	}
	var gotIDs []string
	for i, s := range got {
		gotIDs = append(gotIDs, string(s.ID))
		if i > 0 && s.Index <= got[i-1].Index {
			t.Errorf("rows out of deposit order: %d after %d", s.Index, got[i-1].Index)
		}
	}
	if !slices.Equal(gotIDs, all) {
		t.Fatalf("paged list %v, want %v", gotIDs, all)
	}
	old, nw := got[1], got[6]
	if old.Status != "superseded" || old.SupersededBy != broker.SubmissionID(fixed) || nw.Status != "current" || nw.Supersedes != broker.SubmissionID(ids[1]) {
		t.Errorf("the correction: old %+v, new %+v", old, nw)
	}
	if got[0].Enumerator != "enum-a1" || got[0].EA != eaA1 || got[0].HouseholdNo != 1 || got[0].Form != "census2019" || got[5].EA != eaB1 {
		t.Errorf("metadata %+v / %+v", got[0], got[5])
	}
	for status, want := range map[string][]string{
		"":           {ids[0], ids[2], ids[3], ids[4], ids[5], fixed},
		"current":    {ids[0], ids[2], ids[3], ids[4], ids[5], fixed},
		"superseded": {ids[1]},
	} {
		q := "area=" + district
		if status != "" {
			q += "&status=" + status
		}
		r, l := v.list("supervisor", q)
		if r.Status != http.StatusOK {
			t.Fatalf("status %q: %d %s", status, r.Status, r.Body)
		}
		var gotIDs []string
		for _, s := range l.Submissions {
			gotIDs = append(gotIDs, string(s.ID))
		}
		if !slices.Equal(gotIDs, want) || l.Next != nil {
			t.Errorf("status %q: %v (next %v), want %v", status, gotIDs, l.Next, want)
		}
	}
	// A team leader's list holds no value either.
	r, _ := v.list("tl-a", "area="+communeA+"&status=all")
	checkMetaOnly(t, "tl-a", r.Body)
}

// TestMine: an enumerator lists its own deposits, metadata only, and
// nobody else's — not even those of the enumerator of the same EA; a
// team leader's mine=1 lists its own deposits, not its commune's; roles
// that deposit nothing have no list of their own.
func TestMine(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	own := []string{v.depositAs("enum-a1", viewHousehold(eaA1, 1)), v.depositAs("enum-a1", viewHousehold(eaA1, 2))}
	v.depositAs("enum-a1-bis", viewHousehold(eaA1, 3))
	v.depositAs("enum-a2", viewHousehold(eaA2, 1))
	tlOwn := v.depositAs("tl-a", viewHousehold(eaA3, 1))

	for user, want := range map[string][]string{"enum-a1": own, "tl-a": {tlOwn}, "enum-b1": nil} {
		var r *response
		var l *wire.SubmissionList
		ev := v.oneEvent(func() { r, l = v.list(user, "mine=1&status=all") })
		if r.Status != http.StatusOK {
			t.Fatalf("%s mine=1: %d %s", user, r.Status, r.Body)
		}
		checkMetaOnly(t, user, r.Body)
		var got []string
		for _, s := range l.Submissions {
			got = append(got, string(s.ID))
			if s.Enumerator != user {
				t.Errorf("%s's own list has a submission of %s", user, s.Enumerator)
			}
		}
		if !slices.Equal(got, want) || !l.Mine {
			t.Errorf("%s mine=1: %v, want %v", user, got, want)
		}
		if ev.Action != "submission.list" || ev.Outcome != "ok" || len(ev.Resources) != 0 || !strings.HasPrefix(ev.Reason, "mine") {
			t.Errorf("%s mine=1: event %s/%s %v %q", user, ev.Action, ev.Outcome, ev.Resources, ev.Reason)
		}
	}
	// Roles that never deposit have nothing of their own to list.
	for _, u := range []string{"steering-a", "researcher", "supervisor", "auditor", "admin", "approver"} {
		if r, _ := v.list(u, "mine=1"); r.Status != http.StatusForbidden {
			t.Errorf("%s mine=1: %d %s, want 403", u, r.Status, r.Body)
		}
	}
	// An enumerator opening its own household is still refused.
	if r, _ := v.open("enum-a1", own[0]); r.Status != http.StatusForbidden {
		t.Errorf("enumerator opens its own household: %d, want 403", r.Status)
	}
	// An enumerator has no area list.
	if r, _ := v.list("enum-a1", "area="+eaA1); r.Status != http.StatusForbidden {
		t.Errorf("enumerator lists its EA: %d, want 403", r.Status)
	}
}

// TestShreddedClasses: a class whose data key was shredded is gone from
// every view (and said so); when nothing the caller may see is left the
// answer is 410 gone, audited, and not counted as an open — a supervisor,
// who may see the analytic class only, gets 410 once that class is
// shredded rather than the operational record.
func TestShreddedClasses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	v := newVault(t, vaultOpts{})
	id := v.depositAs("enum-a1", viewHousehold(eaA1, 1))
	if _, err := v.B.Shred(ctx, "cli:test", crypto.Identifying, communeA); err != nil {
		t.Fatal(err)
	}
	var sv *wire.SubmissionView
	ev := v.oneEvent(func() {
		var r *response
		r, sv = v.open("tl-a", id)
		if r.Status != http.StatusOK {
			t.Fatalf("open after an identifying shred: %d %s", r.Status, r.Body)
		}
		if len(leaks(r.Body)) > 0 {
			t.Errorf("shredded names in the view: %s", r.Body)
		}
	})
	if !slices.Equal(sv.Classes, []string{"analytic", "operational"}) || !slices.Equal(sv.Gone, []string{"identifying"}) {
		t.Errorf("after an identifying shred: classes %v, gone %v", sv.Classes, sv.Gone)
	}
	if !strings.Contains(ev.Reason, "revealed analytic, operational") || !strings.Contains(ev.Reason, "identifying") {
		t.Errorf("event reason %q", ev.Reason)
	}
	// The supervisor never had the identifying class, so nothing of it is
	// gone for it: it still sees the analytic class, and only that.
	r, sv := v.open("supervisor", id)
	if r.Status != http.StatusOK {
		t.Fatalf("supervisor's open after an identifying shred: %d, want 200", r.Status)
	}
	if !slices.Equal(sv.Classes, []string{"analytic"}) || len(sv.Gone) != 0 {
		t.Errorf("supervisor's open after an identifying shred: classes %v, gone %v; want the analytic class only", sv.Classes, sv.Gone)
	}
	// With the analytic key shredded too, nothing a supervisor may see is
	// left: 410, and it must not fall back on the operational record
	// (which is not sealed, so no shred hides it from those allowed it).
	if _, err := v.B.Shred(ctx, "cli:test", crypto.Analytic, communeA); err != nil {
		t.Fatal(err)
	}
	opens := v.opensOf("supervisor")
	ev = v.oneEvent(func() { r, _ = v.open("supervisor", id) })
	if r.Status != http.StatusGone || r.Code(t) != "gone" || bytes.Contains(r.Body, []byte(operationalSecret)) {
		t.Errorf("supervisor's open with the analytic class shredded: %d (operational field in it: %v), want 410 and none", r.Status, bytes.Contains(r.Body, []byte(operationalSecret)))
	}
	if ev.Outcome != "gone" {
		t.Errorf("supervisor's 410: event outcome %q", ev.Outcome)
	}
	if n := v.opensOf("supervisor"); n != opens {
		t.Errorf("supervisor's 410 counted as an open (%d, then %d)", opens, n)
	}

	// A policy where the team leader sees the sealed classes only.
	var lines []string
	for _, l := range strings.Split(policy.DefaultPolicy(), "\n") {
		if !strings.HasPrefix(l, "p, team_leader, submission.read_operational") {
			lines = append(lines, l)
		}
	}
	w := newVault(t, vaultOpts{policy: strings.Join(lines, "\n")})
	id = w.depositAs("enum-a1", viewHousehold(eaA1, 1))
	for _, c := range []crypto.Class{crypto.Identifying, crypto.Analytic} {
		if _, err := w.B.Shred(ctx, "cli:test", c, communeA); err != nil {
			t.Fatal(err)
		}
	}
	ev = w.oneEvent(func() { r, _ = w.open("tl-a", id) })
	if r.Status != http.StatusGone || r.Code(t) != "gone" {
		t.Fatalf("every class it may see shredded: %d %s, want 410", r.Status, r.Body)
	}
	if got := r.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("410: Cache-Control %q, want no-store", got)
	}
	if msg, _ := r.ErrorBody(t); !strings.Contains(msg, "identifying and analytic") {
		t.Errorf("410 does not say which classes: %q", msg)
	}
	if ev.Outcome != "gone" || !slices.Equal(ev.Resources, []string{"submission:" + id}) {
		t.Errorf("410 event %s %v", ev.Outcome, ev.Resources)
	}
	if n := w.opensOf("tl-a"); n != 0 {
		t.Errorf("a 410 counted as %d opens", n)
	}
}

// TestViewsStrictAndNoStore: unknown or malformed parameters are 400
// (audited, with a stable code), and every answer of the view routes —
// 200, 400, 403, 404, 410, 429 — says Cache-Control: no-store.
func TestViewsStrictAndNoStore(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{openCaps: map[policy.Role]int{policy.TeamLeader: 1}})
	id := v.depositAs("enum-a1", viewHousehold(eaA1, 1))
	noStore := func(what string, r *response) {
		t.Helper()
		if got := r.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", what, got)
		}
	}
	for _, q := range []string{
		"area=" + communeA + "&extra=1", "area=" + communeA + "&area=" + communeB, "area=", "",
		"area=" + communeA + "&limit=0", "area=" + communeA + "&limit=501", "area=" + communeA + "&limit=ten",
		"area=" + communeA + "&after=-1", "area=" + communeA + "&after=01", "area=" + communeA + "&status=bogus",
		"area=" + communeA + "&status=", "mine=2", "mine=1&area=" + communeA, "area=bad%20code", "area=%zz",
	} {
		var r *response
		ev := v.oneEvent(func() { r, _ = v.list("tl-a", q) })
		if r.Status != http.StatusBadRequest || r.Code(t) != "invalid" {
			t.Errorf("list ?%s: %d %s, want 400 invalid", q, r.Status, r.Body)
		}
		if ev.Action != "submission.list" || ev.Outcome != "invalid" {
			t.Errorf("list ?%s: event %s/%s", q, ev.Action, ev.Outcome)
		}
		noStore("400 list ?"+q, r)
	}
	for _, path := range []string{"/v1/submissions/" + id + "?classes=identifying", "/v1/submissions/not-a-uuid"} {
		var r *response
		ev := v.oneEvent(func() { r = v.get("tl-a", path) })
		if r.Status != http.StatusBadRequest || ev.Action != "submission.read" || ev.Outcome != "invalid" {
			t.Errorf("GET %s: %d, event %s/%s; want 400", path, r.Status, ev.Action, ev.Outcome)
		}
		noStore("400 "+path, r)
	}
	r, _ := v.list("tl-a", "area="+communeA)
	noStore("200 list", r)
	r, _ = v.list("tl-a", "mine=1")
	noStore("200 mine", r)
	r, _ = v.list("tl-a", "area="+communeB)
	noStore("403 list", r)
	r, _ = v.list("tl-a", "area=nowhere")
	if r.Status != http.StatusNotFound {
		t.Errorf("list of an unknown area: %d", r.Status)
	}
	noStore("404 list", r)
	r, _ = v.open("tl-a", id)
	if r.Status != http.StatusOK {
		t.Fatalf("open: %d %s", r.Status, r.Body)
	}
	noStore("200 open", r)
	r, _ = v.open("tl-a", id)
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("second open at a cap of 1: %d", r.Status)
	}
	noStore("429 open", r)
	r, _ = v.open("tl-b", id)
	noStore("403 open", r)
	if _, err := v.B.Shred(context.Background(), "cli:test", crypto.Identifying, communeA); err != nil {
		t.Fatal(err)
	}
	r, _ = v.open("supervisor", id) // still readable: analytic
	if r.Status != http.StatusOK {
		t.Errorf("supervisor's open after an identifying shred: %d, want 200", r.Status)
	}
	noStore("200 open after a shred", r)
}

// TestShredHoldsOnAnotherInstance: a second instance that opened a
// household (and so holds its commune's identifying data key in memory)
// must not show the names once the key is shredded through the first —
// at once, before it has heard of the shred: an open reads the key's
// tombstone with the submission.
func TestShredHoldsOnAnotherInstance(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	w := v.secondInstance(nil)
	id := v.depositAs("enum-a1", viewHousehold(eaA1, 1))
	if r, sv := w.open("tl-a", id); r.Status != http.StatusOK || !slices.Contains(sv.Classes, "identifying") {
		t.Fatalf("open before the shred: %d %s", r.Status, r.Body)
	}
	if _, err := v.B.Shred(context.Background(), "cli:test", crypto.Identifying, communeA); err != nil {
		t.Fatal(err)
	}
	r, sv := w.open("tl-a", id)
	if r.Status != http.StatusOK || len(leaks(r.Body)) > 0 || !slices.Equal(sv.Gone, []string{"identifying"}) {
		t.Errorf("the other instance's open after the shred: %d %s", r.Status, r.Body)
	}
}

// TestOpenCapsConfig: a negative cap or an unknown role is refused at
// start; a role whose cap is 0 opens nothing (429 without a Retry-After:
// waiting will not help).
func TestOpenCapsConfig(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{openCaps: map[policy.Role]int{policy.Supervisor: 0}})
	kp, err := agekey.Load(filepath.Join(v.Dir, agekey.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, caps := range []map[policy.Role]int{{policy.TeamLeader: -1}, {"mayor": 5}} {
		if _, err := broker.New(context.Background(), broker.Opts{Store: v.Store, Keys: kp, OpenCaps: caps}); err == nil {
			t.Errorf("broker.New accepted open caps %v", caps)
		}
	}
	id := v.depositAs("enum-a1", viewHousehold(eaA1, 1))
	r, _ := v.open("supervisor", id)
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "" {
		t.Errorf("a role with cap 0: %d, Retry-After %q", r.Status, r.Header.Get("Retry-After"))
	}
	if msg, _ := r.ErrorBody(t); !strings.Contains(msg, "no hourly cap") {
		t.Errorf("a role with cap 0: %q", msg)
	}
	if r, _ := v.open("tl-a", id); r.Status != http.StatusOK {
		t.Errorf("the team leader keeps its default cap: %d", r.Status)
	}
}
