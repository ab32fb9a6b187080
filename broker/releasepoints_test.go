package broker_test

// Publication points through the broker, and the attacks on standard
// tables they and the catalogue stop (issue 11): differencing two points,
// probing what was deposited through refusals, buying the same cells
// twice with two budgets, and free-form tables sent anyway.

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// showEvents is evs for a failure message: action, actor, decision,
// outcome and reason of each.
func showEvents(evs []*audit.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n  #%d %s by %s: %s/%s (%s)", e.Index, e.Action, e.Actor, e.Decision, e.Outcome, e.Reason)
	}
	if b.Len() == 0 {
		return "no events"
	}
	return b.String()
}

// addUser adds u to the vault and keeps its token for caller.
func (tv *tableVault) addUser(u broker.NewUser) {
	tv.t.Helper()
	tok, err := tv.b.AddUser(context.Background(), actor, u)
	if err != nil {
		tv.t.Fatal(err)
	}
	tv.tokens[string(u.Name)] = tok.Reveal()
}

// storedPoint is the stored publication point name.
func (tv *tableVault) storedPoint(name string) *storage.ReleasePoint {
	tv.t.Helper()
	var p *storage.ReleasePoint
	if err := tv.store.View(context.Background(), func(tx storage.ReadTx) error {
		var err error
		p, err = tx.ReleasePoint(name)
		return err
	}); err != nil {
		tv.t.Fatalf("stored point %s: %v", name, err)
	}
	return p
}

// pointNames lists the publication points' names in the broker's order,
// checking that their sequence numbers rise.
func (tv *tableVault) pointNames() []string {
	tv.t.Helper()
	ps, err := tv.b.ReleasePoints(context.Background())
	if err != nil {
		tv.t.Fatal(err)
	}
	var out []string
	for i, p := range ps {
		if i > 0 && p.Seq <= ps[i-1].Seq {
			tv.t.Errorf("point %s has seq %d after %s's %d", p.Name, p.Seq, ps[i-1].Name, ps[i-1].Seq)
		}
		out = append(out, p.Name)
	}
	return out
}

// TestReleasePointCreation: the host operator and an approver granted at
// the root make points, each logged with the state's digest; an admin, a
// researcher and an approver granted only at a province are refused (a
// point freezes the whole tree: making one is the approver's four-eyes
// act over all of it), audited as denied, and make nothing; malformed
// names (they go into every table released at the point) and a name
// already used are refused; points list in the order they were made.
func TestReleasePointCreation(t *testing.T) {
	ctx := context.Background()
	tv := newBareTableVault(t, 40, broker.Opts{PointK: tablePointK, PointInterval: -1})
	tv.addUser(broker.NewUser{Name: "adm", Role: policy.Admin, Area: keyNation})
	tv.addUser(broker.NewUser{Name: "appr42", Role: policy.Approver, Area: "42"})

	checkCreated := func(info *broker.ReleasePointInfo, name, by string, seq int64, from int64) {
		t.Helper()
		if info.Name != name || info.Seq != seq || info.CreatedBy != by || info.Level != "commune" || info.K != tablePointK ||
			info.Areas != len(keyCommunes) || info.Advanced+info.Kept != info.Areas {
			t.Errorf("point %+v", info)
		}
		stored := tv.storedPoint(name)
		evs := tv.events(from, "release_point.create")
		if len(evs) != 1 {
			t.Fatalf("%d creation events", len(evs))
		}
		ev := evs[0]
		if ev.Actor != by || ev.Decision != "allow" || ev.Outcome != "ok" || ev.Area != keyNation ||
			!slices.Equal(ev.Resources, []string{"release_point:" + name}) || ev.Index != stored.AuditIndex {
			t.Errorf("creation event %+v (stored point's audit index %d)", ev, stored.AuditIndex)
		}
		if d := digestOf(stored.State); !strings.Contains(ev.Reason, "state "+d) {
			t.Errorf("creation event's reason %q does not carry the state's digest %s", ev.Reason, d)
		}
	}

	// The operator on the vault host.
	from := tv.auditHead()
	info, err := tv.b.CreateReleasePoint(ctx, actor, "2019-04-10")
	if err != nil {
		t.Fatal(err)
	}
	checkCreated(info, "2019-04-10", actor, 1, from)
	if info.Advanced != len(keyCommunes) {
		t.Errorf("the first point after 10 households a commune advanced %d communes", info.Advanced)
	}

	// An approver granted at the root, through the broker's caller path.
	from = tv.auditHead()
	info, err = tv.b.CreateReleasePointAs(ctx, tv.caller("appr"), "2019-04-17")
	if err != nil {
		t.Fatal(err)
	}
	checkCreated(info, "2019-04-17", "user:appr", 2, from)
	if evs := tv.events(from, "release_point.create"); !slices.Contains(evs[0].Roles, string(policy.Approver)) {
		t.Errorf("roles %v", evs[0].Roles)
	}

	// Everyone else is refused, audited, and makes nothing.
	for _, user := range []string{"adm", "rita", "appr42", "enum"} {
		from := tv.auditHead()
		_, err := tv.b.CreateReleasePointAs(ctx, tv.caller(user), "by-"+user)
		if broker.KindOf(err) != broker.Permission || !strings.Contains(err.Error(), "over the whole area tree") {
			t.Errorf("%s made a point: %v", user, err)
		}
		evs := tv.events(from)
		if len(evs) != 1 || evs[0].Action != "release_point.create" || evs[0].Actor != "user:"+user ||
			evs[0].Decision != "deny" || evs[0].Outcome != "denied" || !slices.Equal(evs[0].Resources, []string{"release_point:by-" + user}) {
			t.Errorf("%s's refusal: audit %s", user, showEvents(evs))
		}
	}

	// Names.
	for _, name := range []string{"", "Week-1", "week 1", "-w1", ".w1", "_w1", strings.Repeat("w", 65), "tuần-1", "w/1", "w1\n", `w"1`} {
		from := tv.auditHead()
		_, err := tv.b.CreateReleasePointAs(ctx, tv.caller("appr"), name)
		if broker.KindOf(err) != broker.Invalid || errCode(err) != "invalid_point_name" {
			t.Errorf("name %q: %v (%s), want invalid_point_name", name, err, errCode(err))
		}
		if evs := tv.events(from); len(evs) != 1 || evs[0].Outcome != "invalid" {
			t.Errorf("name %q: audit %s", name, showEvents(evs))
		}
	}
	if _, err := tv.b.CreateReleasePoint(ctx, actor, "bad name"); errCode(err) != "invalid_point_name" {
		t.Errorf("the operator's bad name: %v", err)
	}
	if _, err := tv.b.CreateReleasePoint(ctx, actor, strings.Repeat("w", 64)); err != nil {
		t.Errorf("a 64-character name: %v", err)
	}

	// A name is never reused: releases name their point.
	from = tv.auditHead()
	if _, err := tv.b.CreateReleasePointAs(ctx, tv.caller("appr"), "2019-04-10"); broker.KindOf(err) != broker.Conflict || errCode(err) != "point_exists" {
		t.Errorf("a second 2019-04-10: %v (%s)", err, errCode(err))
	}
	if evs := tv.events(from); len(evs) != 1 || evs[0].Outcome != "conflict" {
		t.Errorf("duplicate: audit %s", showEvents(evs))
	}

	if got, want := tv.pointNames(), []string{"2019-04-10", "2019-04-17", strings.Repeat("w", 64)}; !slices.Equal(got, want) {
		t.Errorf("points %v, want %v", got, want)
	}
}

// TestReleasePointInterval: under the default interval (a week), a
// second point within it is refused (point_too_soon, saying from when),
// audited, makes nothing; at the week it is made. Frequent points would
// let a table be differenced at every k households anywhere, and the
// interval is what keeps points few.
func TestReleasePointInterval(t *testing.T) {
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Second)
	clock := &testClock{t: t0}
	tv := newBareTableVault(t, 40, broker.Opts{PointK: tablePointK, Now: clock.now})
	if broker.DefaultPointInterval != 7*24*time.Hour {
		t.Fatalf("default interval %v", broker.DefaultPointInterval)
	}
	tv.point("w1")
	for _, d := range []time.Duration{0, time.Hour, broker.DefaultPointInterval - time.Second} {
		clock.set(t0.Add(d))
		from := tv.auditHead()
		_, err := tv.b.CreateReleasePointAs(ctx, tv.caller("appr"), "w2")
		if broker.KindOf(err) != broker.Conflict || errCode(err) != "point_too_soon" || !strings.Contains(err.Error(), t0.Add(broker.DefaultPointInterval).Format(time.RFC3339)) {
			t.Errorf("%v after w1: %v (%s), want point_too_soon naming when", d, err, errCode(err))
		}
		if evs := tv.events(from); len(evs) != 1 || evs[0].Action != "release_point.create" || evs[0].Outcome != "conflict" {
			t.Errorf("%v after w1: audit %s", d, showEvents(evs))
		}
	}
	if got := tv.pointNames(); !slices.Equal(got, []string{"w1"}) {
		t.Fatalf("points %v after the refusals", got)
	}
	clock.set(t0.Add(broker.DefaultPointInterval))
	p := tv.point("w2")
	if !p.Created.Equal(t0.Add(broker.DefaultPointInterval)) {
		t.Errorf("w2 created %v", p.Created)
	}
	// The host operator is held to the same interval.
	clock.set(t0.Add(broker.DefaultPointInterval + time.Minute))
	if _, err := tv.b.CreateReleasePoint(ctx, actor, "w3"); errCode(err) != "point_too_soon" {
		t.Errorf("the operator a minute after w2: %v", err)
	}
}

// withoutPoint is body (a released standard table) with its point's name
// blanked: what two releases at two points must agree on byte for byte
// when the area did not move between them.
func withoutPoint(body []byte, point string) []byte {
	return bytes.Replace(body, []byte(`"point":"`+point+`"`), []byte(`"point":""`), 1)
}

// TestPointDifferencingAttack: the as-of differencing attack. A
// researcher who could ask a commune's table at a point before and after
// one household was deposited would read that household's persons off
// the difference (age group by sex, here). Households are deposited one
// at a time into commune A with a point after each, while k at a time go
// into commune 18079, so that every point moves the vault on (points
// made often because other areas changed): commune A's table at
// consecutive points is byte-identical (but for the point's name) until
// k of its households changed, and the k-th deposit moves it.
func TestPointDifferencingAttack(t *testing.T) {
	const k = 5
	tv := newBareTableVault(t, 0, broker.Opts{PointK: k, PointInterval: -1})
	table := func(point string) []byte {
		t.Helper()
		r, err := tv.request("rita", stdRequest("fert", "population_age_broad_sex", communeA, point), broker.TableOpts{})
		if err != nil {
			t.Fatalf("table at %s: %v", point, err)
		}
		return withoutPoint(r.Body, point)
	}
	// The commune is seen first with 2k households (4k persons, two a
	// household): enough that its margins are released, not withheld as
	// small cells, so one more person would show.
	for i := range 2 * k {
		tv.deposit(ea(communeA, 1+i%2))
	}
	if info := tv.point("d00"); info.Advanced != 1 {
		t.Fatalf("the first point advanced %d communes", info.Advanced)
	}
	shown := table("d00")
	for i := 1; i <= 2*k; i++ {
		tv.deposit(ea(communeA, 1+i%2))
		for range k {
			tv.deposit(ea("18079", 1+i%2))
		}
		name := fmt.Sprintf("d%02d", i)
		info := tv.point(name)
		got := table(name)
		moved := !bytes.Equal(got, shown)
		switch {
		case i%k != 0 && moved:
			t.Errorf("after %d deposits (%d since the commune was last seen) its table at %s differs from the one before: the difference shows those households", i, i%k, name)
		case i%k == 0 && !moved:
			t.Errorf("after %d deposits its table at %s has not moved: the k-th change must show", i, name)
		}
		if want := map[bool]int{true: 2, false: 1}[i%k == 0]; info.Advanced != want {
			t.Errorf("point %s advanced %d communes, want %d", name, info.Advanced, want)
		}
		if moved {
			shown = got
		}
	}
}

// TestTableAsOfRefusals: as_of names a publication point. An audit index
// (what as_of was before the catalogue: any point of the deposit
// sequence, so one deposit apart) is refused, as is an unknown or empty
// name, and before any point is made a request is refused saying how one
// is made. Each refusal is audited and debits nothing.
func TestTableAsOfRefusals(t *testing.T) {
	ctx := context.Background()
	tv := newBareTableVault(t, 60, broker.Opts{PointK: tablePointK, PointInterval: -1})
	check := func(body, want string) {
		t.Helper()
		from := tv.auditHead()
		_, err := tv.request("rita", body, broker.TableOpts{})
		if broker.KindOf(err) != broker.Invalid || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want Invalid containing %q", body, err, want)
		}
		if evs := tv.events(from); len(evs) != 1 || evs[0].Action != "table.request" || evs[0].Outcome != "invalid" || evs[0].ReleaseDigest != "" {
			t.Errorf("%s: audit %s", body, showEvents(evs))
		}
		if p, _ := tv.b.Project(ctx, "fert"); p.Spent != 0 {
			t.Errorf("%s: spent %d", body, p.Spent)
		}
	}
	check(countBySexAge, "no publication point has been made yet")
	check(stdRequest("fert", "population_age5_sex", keyDistrict, "p1"), `no publication point "p1"`)
	tv.point("p1")
	for _, asOf := range []string{"0", "17", "-1", "1e3", "true", `["p1"]`} {
		check(`{"project":"fert","purpose":"p","table":"population_age5_sex","area":"437","as_of":`+asOf+`}`, "not an audit index")
	}
	check(`{"project":"fert","purpose":"p","table":"population_age5_sex","area":"437","as_of":""}`, "as_of is empty")
	check(stdRequest("fert", "population_age5_sex", keyDistrict, "p2"), `no publication point "p2"`)
	if _, err := tv.request("rita", stdRequest("fert", "population_age5_sex", keyDistrict, "p1"), broker.TableOpts{}); err != nil {
		t.Errorf("at p1: %v", err)
	}
}

// TestRefusalsIndependentOfTrueCounts: probing the universe threshold
// (weakness 4). Were a table refused when its area held too few
// households, the refusal itself would say so — that nobody, or one
// household, was counted there. Three vaults on the same tree hold none,
// one (in commune A) and hundreds of households; for every catalogue
// table and every area of the tree, asked by a researcher whose project
// covers everything and by one whose project covers commune A only, the
// answer — released, or refused with which code and message — is the
// same in all three, and is what the catalogue and the planned
// households alone decide.
func TestRefusalsIndependentOfTrueCounts(t *testing.T) {
	ctx := context.Background()
	vault := func(load func(tv *tableVault)) *tableVault {
		tv := newBareTableVault(t, 0, broker.Opts{PointK: 1, PointInterval: -1})
		load(tv)
		all := validProject("all")
		all.Areas = []broker.AreaCode{keyNation}
		all.Variables = tv.b.ProjectVariables(ctx)
		all.Budget = 1_000_000_000
		one := validProject("one")
		one.Areas = []broker.AreaCode{communeA}
		one.Variables = tv.b.ProjectVariables(ctx)
		one.Budget = 1_000_000_000
		for _, p := range []broker.NewProject{all, one} {
			if err := tv.b.AddProject(ctx, actor, p); err != nil {
				t.Fatal(err)
			}
		}
		tv.addUser(broker.NewUser{Name: "ada", Role: policy.Researcher, Area: keyNation, Project: "all"})
		tv.addUser(broker.NewUser{Name: "una", Role: policy.Researcher, Area: keyNation, Project: "one"})
		tv.point("p")
		return tv
	}
	vaults := []*tableVault{
		vault(func(*tableVault) {}),
		vault(func(tv *tableVault) { tv.deposit(ea(communeA, 1)) }),
		vault(func(tv *tableVault) { tv.load(400) }),
	}
	tree := vaults[0].b.Tree()
	var areas []area.Area
	tree.Walk(tree.Root(), -1, func(a area.Area, _ int) bool { areas = append(areas, a); return true })
	cat, err := vaults[0].b.Catalogue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Tables) < 10 || len(areas) != 1+1+1+4+8 {
		t.Fatalf("%d tables, %d areas", len(cat.Tables), len(areas))
	}

	released := 0
	for _, tab := range cat.Tables {
		for _, a := range areas {
			for _, who := range []struct{ user, project string }{{"ada", "all"}, {"una", "one"}} {
				body := stdRequest(who.project, tab.ID, string(a.Code), "p")
				var answers []string
				for _, tv := range vaults {
					_, err := tv.request(who.user, body, broker.TableOpts{})
					answer := "released"
					if err != nil {
						answer = fmt.Sprintf("%v %s %s", broker.KindOf(err), errCode(err), err)
					}
					answers = append(answers, answer)
				}
				if answers[0] != answers[1] || answers[0] != answers[2] {
					t.Errorf("%s of %s %s for %s: with 0, 1 and 400 households deposited the answers differ:\n%s", tab.ID, a.Level, a.Code, who.project,
						strings.Join(answers, "\n"))
					continue
				}
				// What decides is public: the level, the planned
				// households and the project's areas.
				want := slices.Contains(tab.Levels, a.Level.String()) && a.Planned >= tab.MinPlanned &&
					(who.project == "all" || a.Code == communeA)
				if got := answers[0] == "released"; got != want {
					t.Errorf("%s of %s %s (%d planned) for %s: %s, want released %v", tab.ID, a.Level, a.Code, a.Planned, who.project, answers[0], want)
				}
				if answers[0] == "released" {
					released++
				}
			}
		}
	}
	if released < 20 {
		t.Errorf("only %d releases: the test asks too little of the catalogue", released)
	}
}

// TestTwoProjectsSameCells: two budgets buy no more information (weakness
// 5a). One researcher on two projects covering the same area asks the
// same table, area and point through each: the cells are the same, bytes
// for bytes but the project's name, so averaging the two answers (or a
// hundred projects' answers) cancels no noise.
func TestTwoProjectsSameCells(t *testing.T) {
	ctx := context.Background()
	tv := newTableVault(t, 300)
	second := validProject("fert2")
	second.Areas = []broker.AreaCode{keyNation}
	second.Variables = []string{"sex", "age_group5"}
	if err := tv.b.AddProject(ctx, actor, second); err != nil {
		t.Fatal(err)
	}
	if err := tv.b.Grant(ctx, actor, "rita", policy.Grant{Role: policy.Researcher, Area: keyNation, Project: "fert2"}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct{ id, area string }{
		{"population_age5_sex", keyDistrict},
		{"population_age5_sex", communeA},
		{"population_age_broad_sex", communeB},
	} {
		r1, err := tv.request("rita", stdRequest("fert", q.id, q.area, "p1"), broker.TableOpts{})
		if err != nil {
			t.Fatal(err)
		}
		r2, err := tv.request("rita", stdRequest("fert2", q.id, q.area, "p1"), broker.TableOpts{})
		if err != nil {
			t.Fatal(err)
		}
		same := bytes.Replace(r2.Body, []byte(`"project":"fert2"`), []byte(`"project":"fert"`), 1)
		if !bytes.Equal(r1.Body, same) {
			t.Errorf("%s of %s at p1 differs between the researcher's two projects: a second budget buys a second draw of the noise", q.id, q.area)
		}
	}
}

// TestReleasePointKNotLowered: the red team's lower finding — a restart
// (or a second instance) with a lower --point-k would let the next point
// differ from the last by fewer households than the series kept so far.
// A point with a k below the last point's is refused; the same or a
// higher k is not.
func TestReleasePointKNotLowered(t *testing.T) {
	ctx := context.Background()
	tv := newBareTableVault(t, 40, broker.Opts{PointK: tablePointK, PointInterval: -1})
	tv.point("w1")
	lower := tv.openWith(broker.Opts{PointK: tablePointK - 1, PointInterval: -1, Limits: broker.Limits{UserRate: -1}})
	from := tv.auditHead()
	_, err := lower.CreateReleasePoint(ctx, actor, "w2")
	if broker.KindOf(err) != broker.Conflict || errCode(err) != "point_k_lowered" {
		t.Fatalf("a point with k %d after one with k %d: %v (%s), want point_k_lowered", tablePointK-1, tablePointK, err, errCode(err))
	}
	if evs := tv.events(from); len(evs) != 1 || evs[0].Outcome != "conflict" {
		t.Errorf("audit %s", showEvents(evs))
	}
	higher := tv.openWith(broker.Opts{PointK: tablePointK + 1, PointInterval: -1, Limits: broker.Limits{UserRate: -1}})
	if _, err := higher.CreateReleasePoint(ctx, actor, "w2"); err != nil {
		t.Fatalf("a point with a higher k: %v", err)
	}
}
