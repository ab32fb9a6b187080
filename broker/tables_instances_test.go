package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/synth"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
)

// Two broker instances on one PostgreSQL database release byte-identical
// tables for the same request as of the same point, and an analytic
// shred through one empties the other's table cache of that commune
// within a second (LISTEN/NOTIFY), so no instance keeps tabulating data
// whose keys are destroyed.
func TestTablesAcrossInstances(t *testing.T) {
	ctx := context.Background()
	a, bb := twoInstances(t)
	tree := a.Tree()

	g, err := synth.New(synth.Opts{Seed: 11, EAs: synth.EAs(tree)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
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
	tok, err := a.AddUser(ctx, actor, broker.NewUser{Name: "rita", Role: policy.Researcher, Area: keyNation, Project: "fert"})
	if err != nil {
		t.Fatal(err)
	}
	caller := func(b *broker.Broker) *broker.Caller {
		c, err := b.Authenticate(ctx, "Bearer "+tok.Reveal(), "test")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	const req = `{"project":"fert","purpose":"p","rows":["commune"],"cols":["sex"]}`
	ra, err := a.RequestTable(ctx, caller(a), []byte(req), broker.TableOpts{})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := bb.RequestTable(ctx, caller(bb), []byte(req), broker.TableOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ra.Body, rb.Body) || ra.AsOf != rb.AsOf {
		t.Fatalf("instances disagree: as of %d vs %d", ra.AsOf, rb.AsOf)
	}
	if info, _ := a.Project(ctx, "fert"); info.Spent != int64(ra.Cells+rb.Cells) {
		t.Errorf("one ledger for both instances: spent %d, want %d", info.Spent, ra.Cells+rb.Cells)
	}

	// communeRows: the communes with a released (not suppressed) cell.
	communeRows := func(body []byte) map[string]bool {
		var doc struct {
			Cells []struct {
				Row        []string
				Suppressed bool
			}
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, c := range doc.Cells {
			if !c.Suppressed {
				m[c.Row[0]] = true
			}
		}
		return m
	}
	if !communeRows(rb.Body)[communeA] {
		t.Fatalf("commune %s not in the table before the shred", communeA)
	}
	time.Sleep(100 * time.Millisecond) // let B's watch connect
	if _, err := a.Shred(ctx, actor, crypto.Analytic, communeA); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for {
		r, err := bb.RequestTable(ctx, caller(bb), []byte(req), broker.TableOpts{})
		if err != nil {
			t.Fatal(err)
		}
		if !communeRows(r.Body)[communeA] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance B still tabulates commune %s a second after its analytic keys were shredded", communeA)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
