package broker_test

// Red team of issue 12 (dp tables, the privacy ledger): the attacks that
// the broker stops, each written as the attack.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
)

// rt12Communes are the test tree's communes with their EAs.
var rt12Communes = keyCommunes

// rt12CommunesUnder is the communes a filter area of the test tree
// covers.
func rt12CommunesUnder(codes []string) []string {
	var out []string
	for _, c := range codes {
		switch {
		case c == keyDistrict || c == "42" || c == "VN":
			return slices.Clone(rt12Communes)
		case strings.Contains(c, "-"):
			c = c[:strings.Index(c, "-")]
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// TestRT12LedgerMatchesBruteForce is the attack on the ledger's fold
// (ledgerState.worst, LedgerAreas): tables over the district, communes,
// EAs and lists of them mixed, charged at different levels (an EA's table
// at its commune, four communes' at the district), in an order meant to
// put the worst commune's spending under a parent's debits. After every
// request the outcome must be what a brute-force ledger — every commune's
// own running total — says: granted exactly while every commune the
// table touches stays within the cap.
func TestRT12LedgerMatchesBruteForce(t *testing.T) {
	tv := newTableVault(t, 120)
	tv.addUser(broker.NewUser{Name: "adm", Role: policy.Admin, Area: keyNation})
	tv.raise("adm", "appr", broker.ShareCommune, "", "0.5")
	tv.raise("adm", "appr", broker.ShareResearcher, "rita", "50")
	tv.raise("adm", "appr", broker.ShareProject, "fert", "50")
	const capM = 500_000 // millionths

	var areas [][]string
	areas = append(areas, []string{keyDistrict}, []string{communeA, "18076"}, []string{communeA + "-01", communeB},
		[]string{communeA, communeB, "18076", "18079"}, []string{"18079-02"}, []string{communeB + "-01", communeB + "-02"})
	for _, c := range rt12Communes {
		areas = append(areas, []string{c}, []string{c + "-01"}, []string{c + "-02"})
	}
	rng := rand.New(rand.NewPCG(12, 12))
	spent := map[string]int64{}
	granted, refused := 0, 0
	for i := range 140 {
		a := areas[rng.IntN(len(areas))]
		rhoM := int64(10_000 + rng.IntN(60_000)) // 0.01 … 0.07
		rhoM = rhoM - rhoM%1000 + int64(i%1000)  // unique: a new query each time
		quoted := make([]string, len(a))
		for k, c := range a {
			quoted[k] = `"` + c + `"`
		}
		body := fmt.Sprintf(`{"project":"fert","purpose":"p","rows":["sex"],"rho":"0.%06d","filter":{"area":[%s]}}`, rhoM, strings.Join(quoted, ","))
		communes := rt12CommunesUnder(a)
		want := true
		for _, c := range communes {
			if spent[c]+rhoM > capM {
				want = false
			}
		}
		r, err := tv.request("rita", body, broker.TableOpts{})
		switch {
		case want && err != nil:
			t.Fatalf("request %d over %v at ρ=0.%06d: refused (%v) though every commune has room: %v", i, a, rhoM, err, spent)
		case !want && err == nil:
			t.Fatalf("request %d over %v at ρ=0.%06d: granted though a commune would pass the cap: %v", i, a, rhoM, spent)
		case !want && errCode(err) != "privacy_budget_exhausted":
			t.Fatalf("request %d: refused with %v", i, err)
		case want && r.Repeat:
			t.Fatalf("request %d: a new query was taken for a repeat", i)
		}
		if want {
			granted++
			for _, c := range communes {
				spent[c] += rhoM
			}
		} else {
			refused++
		}
	}
	if granted < 20 || refused < 20 {
		t.Fatalf("the run did not exercise both sides of the cap: %d granted, %d refused", granted, refused)
	}
	// And the ledger reports the worst commune the brute force finds.
	l, err := tv.b.Ledger(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var worst int64
	for _, c := range rt12Communes {
		worst = max(worst, spent[c])
	}
	for _, s := range l.Shares {
		if s.Kind == broker.ShareCommune {
			if s.Spent != fmt.Sprint(rhoString(worst)) {
				t.Fatalf("the ledger shows the commune cap spent %s, the brute force %s", s.Spent, rhoString(worst))
			}
		}
	}
}

// rhoString writes millionths as zcdp.Rho.String does.
func rhoString(m int64) string {
	s := fmt.Sprintf("%d.%06d", m/1_000_000, m%1_000_000)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// TestRT12ParallelRequestsAtTheLastBudget is the race on the ledger: many
// different tables of one commune sent at once when the cap has room
// for exactly two of them. Exactly two are released; the rest are
// refused as over the cap, and exactly two debits are stored.
func TestRT12ParallelRequestsAtTheLastBudget(t *testing.T) {
	tv := newTableVault(t, 120)
	tv.addUser(broker.NewUser{Name: "adm", Role: policy.Admin, Area: keyNation})
	tv.raise("adm", "appr", broker.ShareCommune, "", "0.04") // two tables at the default 0.02
	const n = 12
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = tv.request("rita", dpCommuneTable("fert", `,"age_group5":["`+band(i)+`"]`), broker.TableOpts{})
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errCode(err) != "privacy_budget_exhausted":
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if ok != 2 || len(tv.ledgerDebits()) != 2 {
		t.Fatalf("%d of %d parallel tables released, %d debits stored, with room for 2", ok, n, len(tv.ledgerDebits()))
	}
}

// TestRT12ScheduledPointRace: the day's first dp requests, sent at once,
// must all be computed at one scheduled point (else the same question
// asked twice that day would be two queries with independent noise),
// made and logged once.
func TestRT12ScheduledPointRace(t *testing.T) {
	tv := newTableVault(t, 60)
	from := tv.auditHead()
	const n = 8
	rels := make([]*broker.TableRelease, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			rels[i], errs[i] = tv.request("rita", dpCommuneTable("fert", `,"age_group5":["`+band(i)+`"]`), broker.TableOpts{})
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if rels[i].Point != rels[0].Point {
			t.Fatalf("the day's first requests were computed at two points: %s and %s", rels[0].Point, rels[i].Point)
		}
	}
	if evs := tv.events(from, "release_point.schedule"); len(evs) != 1 {
		t.Fatalf("the day's point was logged %d times", len(evs))
	}
}

// TestRT12RepeatIsFreeOnlyForTheSameAnswer: the same cells asked again
// by another researcher of another project (whose areas hold them), or
// the next day with nothing deposited, are the same query: answered with
// the same bytes and charged to nobody, which releases nothing new. But
// the same cells at another ρ, of households rather than persons, at a
// later deposit point or at a publication point are other queries, each
// charged.
func TestRT12RepeatIsFreeOnlyForTheSameAnswer(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tv := newBareTableVault(t, 120, broker.Opts{PointK: tablePointK, PointInterval: -1, Now: clock})
	q := func(project, extra string) string {
		return `{"project":"` + project + `","purpose":"p","rows":["sex"],"filter":{"area":["` + communeA + `"]}` + extra + `}`
	}
	first := tv.mustDP("rita", q("fert", ""))
	again := tv.mustDP("otto", q("other", ""))
	if !again.Repeat || string(again.Body[strings.Index(string(again.Body), `"point"`):]) != string(first.Body[strings.Index(string(first.Body), `"point"`):]) {
		t.Fatal("the same query in another project was not the same answer")
	}
	for _, extra := range []string{`,"rho":"0.03"`, `,"unit":"households","rows":["tenure"]`} {
		r := tv.mustDP("rita", strings.Replace(q("fert", extra), `"rows":["sex"],`, "", strings.Count(extra, "rows")))
		if r.Repeat {
			t.Fatalf("%s: charged as a repeat", extra)
		}
	}
	// The next day's scheduled point with nothing deposited since sees
	// the same data: the same query, a repeat. After a deposit, the
	// day's point sees other data: another query, charged.
	day := func() {
		mu.Lock()
		now = now.Add(24 * time.Hour)
		mu.Unlock()
	}
	day()
	same := tv.mustDP("rita", q("fert", ""))
	if !same.Repeat || same.Point == first.Point {
		t.Fatalf("the same cells the next day, nothing deposited: repeat %v, point %s (was %s)", same.Repeat, same.Point, first.Point)
	}
	tv.load(3)
	day()
	next := tv.mustDP("rita", q("fert", ""))
	if next.Repeat || next.AsOf == first.AsOf {
		t.Fatalf("the same cells at a later deposit point: repeat %v, as of %d (was %d)", next.Repeat, next.AsOf, first.AsOf)
	}
	tv.point("p2")
	r := tv.mustDP("rita", strings.Replace(q("fert", ""), `"purpose":"p"`, `"purpose":"p","as_of":"p2"`, 1))
	if r.Repeat || r.Point != "p2" {
		t.Fatalf("the same cells at a publication point: repeat %v point %s", r.Repeat, r.Point)
	}
	if got := len(tv.ledgerDebits()); got != 5 {
		t.Fatalf("%d debits, want 5 (one per distinct query)", got)
	}
}

// TestRT12FourEyesAttacks: the insiders' attacks on share changes. A
// researcher raising the commune cap or another project's share; a
// researcher who is also an approver approving their own proposal; an
// approver approving a proposal over a week old; an approver scoped to
// one commune approving.
func TestRT12FourEyesAttacks(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tv := newBareTableVault(t, 20, broker.Opts{PointK: tablePointK, PointInterval: -1, Now: clock})
	tv.addUser(broker.NewUser{Name: "adm", Role: policy.Admin, Area: keyNation})
	tv.addUser(broker.NewUser{Name: "local", Role: policy.Approver, Area: broker.AreaCode(communeA)})
	if err := tv.b.Grant(ctx, actor, "rita", policy.Grant{Role: policy.Approver, Area: string(keyNation)}); err != nil {
		t.Fatal(err)
	}
	if _, err := tv.b.ProposeShare(ctx, tv.caller("rita"), broker.ShareCommune, "", "10", "more"); broker.KindOf(err) != broker.Permission {
		t.Fatalf("a researcher proposed the commune cap: %v", err)
	}
	if _, err := tv.b.ProposeShare(ctx, tv.caller("rita"), broker.ShareProject, "other", "10", "more"); broker.KindOf(err) != broker.Permission {
		t.Fatalf("a researcher proposed another project's share: %v", err)
	}
	mine, err := tv.b.ProposeShare(ctx, tv.caller("rita"), broker.ShareResearcher, "rita", "10", "thesis")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tv.b.ApproveShare(ctx, tv.caller("rita"), mine.Seq); errCode(err) != "four_eyes" {
		t.Fatalf("a researcher-approver approved her own proposal: %v", err)
	}
	if _, err := tv.b.ApproveShare(ctx, tv.caller("local"), mine.Seq); broker.KindOf(err) != broker.Permission {
		t.Fatalf("an approver of one commune approved a share of every commune: %v", err)
	}
	old, err := tv.b.ProposeShare(ctx, tv.caller("adm"), broker.ShareCommune, "", "20", "old")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(8 * 24 * time.Hour)
	mu.Unlock()
	if _, err := tv.b.ApproveShare(ctx, tv.caller("appr"), old.Seq); errCode(err) != "proposal_expired" {
		t.Fatalf("a proposal over a week old was approved: %v", err)
	}
	l, err := tv.b.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range l.Shares {
		if !s.Default {
			t.Fatalf("share %s %s changed to %s", s.Kind, s.Holder, s.Rho)
		}
	}
}

// TestRT12LastBudgetAcrossInstances is the race across instances: two
// brokers on one PostgreSQL database each hold their own in-memory
// ledger and lock, so only the store can stop them both paying the last
// of a commune's cap. Twelve different tables of one commune, six
// through each instance at once, with room for two: two are released.
func TestRT12LastBudgetAcrossInstances(t *testing.T) {
	ctx := context.Background()
	a, bb, caller := tableInstances(t, broker.Opts{PointK: tablePointK, PointInterval: -1, Limits: broker.Limits{UserRate: -1}}, 12, 80,
		broker.NewUser{Name: "rita", Role: policy.Researcher, Area: keyNation, Project: "fert"},
		broker.NewUser{Name: "appr", Role: policy.Approver, Area: keyNation},
		broker.NewUser{Name: "adm", Role: policy.Admin, Area: keyNation})
	ch, err := a.ProposeShare(ctx, caller(a, "adm"), broker.ShareCommune, "", "0.04", "two tables")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bb.ApproveShare(ctx, caller(bb, "appr"), ch.Seq); err != nil {
		t.Fatal(err)
	}
	// Warm both caches and make the day's point, so that the race is on
	// the ledger alone.
	for _, b := range []*broker.Broker{a, bb} {
		if err := b.WarmTables(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ra, rb := caller(a, "rita"), caller(bb, "rita")
	const n = 12
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, c := a, ra
			if i%2 == 1 {
				b, c = bb, rb
			}
			<-start
			_, errs[i] = b.RequestTable(ctx, c, []byte(dpCommuneTable("fert", `,"age_group5":["`+band(i)+`"]`)), broker.TableOpts{})
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errCode(err) != "privacy_budget_exhausted":
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if ok != 2 {
		t.Fatalf("%d of %d tables released through two instances with room for 2 in commune %s's cap", ok, n, communeA)
	}
}
