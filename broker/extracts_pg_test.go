package broker_test

import (
	"bytes"
	"context"
	"testing"

	"filippo.io/age"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
)

// TestExtractsAcrossInstances: two broker instances on one PostgreSQL
// database share environments and proposals; an extract proposed
// through one, approved through the other, gives the same bytes through
// either; and once one shreds a commune's analytic keys the other refuses
// the extract as Gone (the keys' tombstones are read from the store in
// each pass, whatever an instance caches) rather than release what the
// shred destroyed.
func TestExtractsAcrossInstances(t *testing.T) {
	ctx := context.Background()
	a, b, caller := tableInstances(t, broker.Opts{PointInterval: -1}, 13, 200,
		broker.NewUser{Name: "proc", Role: policy.Processor, Area: keyDistrict},
		broker.NewUser{Name: "appr", Role: policy.Approver, Area: keyNation})
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddEnvironment(ctx, broker.HostOperator(actor), broker.NewEnvironment{Name: "centre", Recipient: id.Recipient().String()}); err != nil {
		t.Fatal(err)
	}
	if l, err := b.Environments(ctx); err != nil || len(l.Environments) != 1 {
		t.Fatalf("instance B's environments: %+v, %v", l, err)
	}
	x, err := a.ProposeExtract(ctx, caller(a, "proc"), broker.ExtractRequest{Environment: "centre", Areas: []string{keyDistrict},
		Form: "census2019", Classes: []string{"analytic"}, Purpose: "coding"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ApproveExtract(ctx, caller(b, "appr"), x.Seq); err != nil {
		t.Fatalf("approval through the other instance: %v", err)
	}
	download := func(in *broker.Broker) (*broker.ExtractDownload, []byte, error) {
		d, err := in.DownloadExtract(ctx, caller(in, "proc"), x.Seq)
		if err != nil {
			return nil, nil, err
		}
		var buf bytes.Buffer
		if err := d.Stream(ctx, &buf); err != nil {
			return nil, nil, err
		}
		return d, decryptWith(t, buf.Bytes(), id), nil
	}
	da, pa, err := download(a)
	if err != nil {
		t.Fatal(err)
	}
	db, pb, err := download(b)
	if err != nil {
		t.Fatal(err)
	}
	if da.SHA256 != db.SHA256 || !bytes.Equal(pa, pb) || da.Households != 200 || sha(pa) != da.SHA256 {
		t.Fatalf("the instances' extracts differ: %s (%d households) vs %s", da.SHA256, da.Households, db.SHA256)
	}
	if _, err := a.Shred(ctx, actor, crypto.Analytic, communeA); err != nil {
		t.Fatal(err)
	}
	_, _, err = download(b)
	wantCode(t, "download through the instance that did not shred", err, broker.Gone, "gone")
}
