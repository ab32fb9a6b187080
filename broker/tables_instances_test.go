package broker_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/synth"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
)

// Two broker instances on one PostgreSQL database see the same
// publication points and release byte-identical tables for the same
// table, area and point; an analytic shred through one makes the other
// refuse a point frozen before it (point_stale) within a second
// (LISTEN/NOTIFY empties its table cache of the commune), so no instance
// keeps answering from data whose keys are destroyed; a point made after
// the shred, through either, answers alike on both without the
// commune's persons.
func TestTablesAcrossInstances(t *testing.T) {
	ctx := context.Background()
	a, bb, caller := tableInstances(t, broker.Opts{PointK: tablePointK, PointInterval: -1}, 11, 300,
		broker.NewUser{Name: "rita", Role: policy.Researcher, Area: keyNation, Project: "fert"},
		broker.NewUser{Name: "appr", Role: policy.Approver, Area: keyNation})
	request := func(b *broker.Broker, point string) (*broker.TableRelease, error) {
		return b.RequestTable(ctx, caller(b, "rita"), []byte(stdRequest("fert", "population_age5_sex", keyDistrict, point)), broker.TableOpts{})
	}
	if _, err := a.CreateReleasePointAs(ctx, caller(a, "appr"), "p1"); err != nil {
		t.Fatal(err)
	}
	pa, err := a.ReleasePoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := bb.ReleasePoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pa) != 1 || !slices.EqualFunc(pa, pb, func(x, y broker.ReleasePointInfo) bool { return x.Name == y.Name && x.Seq == y.Seq && x.AsOf == y.AsOf }) {
		t.Fatalf("instances list different points: %+v vs %+v", pa, pb)
	}
	ra, err := request(a, "p1")
	if err != nil {
		t.Fatal(err)
	}
	rb, err := request(bb, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ra.Body, rb.Body) || ra.AsOf != rb.AsOf || ra.Point != rb.Point {
		t.Fatalf("instances disagree: point %s as of %d vs %s as of %d", ra.Point, ra.AsOf, rb.Point, rb.AsOf)
	}
	if info, _ := a.Project(ctx, "fert"); info.Spent != int64(ra.Cells+rb.Cells) {
		t.Errorf("one ledger for both instances: spent %d, want %d", info.Spent, ra.Cells+rb.Cells)
	}

	time.Sleep(100 * time.Millisecond) // let B's watch connect
	if _, err := a.Shred(ctx, actor, crypto.Analytic, communeA); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for {
		_, err := request(bb, "p1")
		if errCode(err) == "point_stale" {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance B still answers at a point frozen before commune %s's analytic keys were shredded, a second after", communeA)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if _, err := bb.CreateReleasePointAs(ctx, caller(bb, "appr"), "p2"); err != nil {
		t.Fatal(err)
	}
	ra2, err := request(a, "p2")
	if err != nil {
		t.Fatal(err)
	}
	rb2, err := request(bb, "p2")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ra2.Body, rb2.Body) {
		t.Error("instances disagree at the point made after the shred")
	}
	if before, after := grandTotal(t, ra.Body), grandTotal(t, ra2.Body); after >= before-50 {
		t.Errorf("total %d at p1, %d at p2 after the shred: commune %s's persons still counted", before, after, communeA)
	}
}

// tableInstances is two broker instances on one PostgreSQL database (o
// for both) holding households synthetic households of seed, project
// "fert" over the key district and users, with a caller of each user on
// either instance.
func tableInstances(t *testing.T, o broker.Opts, seed int64, households int, users ...broker.NewUser) (a, b *broker.Broker, caller func(*broker.Broker, string) *broker.Caller) {
	t.Helper()
	ctx := context.Background()
	a, b = twoInstancesOpts(t, o)
	g, err := synth.New(synth.Opts{Seed: seed, EAs: synth.EAs(a.Tree())})
	if err != nil {
		t.Fatal(err)
	}
	for i := range households {
		hh, _, err := g.Household(i)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.IngestSynthetic(ctx, actor, hh); err != nil {
			t.Fatal(err)
		}
	}
	p := validProject("fert")
	p.Areas = []broker.AreaCode{keyDistrict}
	if err := a.AddProject(ctx, actor, p); err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for _, u := range users {
		tok, err := a.AddUser(ctx, actor, u)
		if err != nil {
			t.Fatal(err)
		}
		tokens[string(u.Name)] = tok.Reveal()
	}
	caller = func(in *broker.Broker, user string) *broker.Caller {
		c, err := in.Authenticate(ctx, "Bearer "+tokens[user], "test")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return a, b, caller
}
