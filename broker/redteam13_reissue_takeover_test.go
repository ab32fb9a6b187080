package broker_test

// FINDING 1 (critical): Broker.Reissue (broker/grants.go) lets an
// administrator over the API re-key ANY user — a confirmed team leader,
// processor or approver, even one whose token has expired — and have the
// new token encrypted to a recipient the administrator names. The
// administrator then holds a working token of that user, with grants an
// approver confirmed long ago: no approver, no proposal, no four eyes.
//
// Place in broker/ of a checkout to run:
//   go test ./broker/ -run 'TestRedteam13Reissue' -count=1
// Both tests FAIL today (the attack succeeds); they pass once fixed.

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
)

// TestRedteam13ReissueTakesOverTeamLeader: the admin reissues a
// confirmed team leader's token to its own age key and reads the names
// of a household.
func TestRedteam13ReissueTakesOverTeamLeader(t *testing.T) {
	av := newAdminVault(t)
	ctx := context.Background()
	id := av.deposit(ea(communeA, 1))
	// Onboarding done right: the token to the field office, the grant
	// confirmed by an approver.
	res := av.add(broker.NewUser{Name: "tl-a", Role: policy.TeamLeader, Area: communeA})
	if _, err := av.b.ConfirmGrant(ctx, av.approver, res.Pending[0]); err != nil {
		t.Fatal(err)
	}
	mallory, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := av.b.Reissue(ctx, broker.APIOperator(av.admin), "tl-a", mallory.Recipient().String())
	if errCode(err) == "recipient_not_registered" {
		return // protection holds
	}
	if err != nil {
		t.Fatalf("reissue refused for another reason: %v", err)
	}
	toks := (&adminVault{keyVault: av.keyVault, office: mallory}).open(sealed)
	c, err := av.b.Authenticate(ctx, "Bearer "+toks["tl-a"], "admin-workstation")
	if err != nil {
		t.Logf("the reissued token does not work for the admin: %v (protection holds)", err)
		return
	}
	view, err := av.b.OpenSubmission(ctx, c, id)
	if err != nil {
		t.Logf("open refused: %v (protection holds)", err)
		return
	}
	head := string(view.Fields["identifying"].Household["head_name"])
	t.Fatalf("HOLE: admin-1 reissued tl-a's token to its own age key (no approver involved) and opened submission %s as tl-a: classes %v, head_name %s",
		id, view.Classes, head)
}

// TestRedteam13ReissueExfiltratesExtract: one administrator alone gets
// the district's microdata: it registers an environment with its own
// recipient (immediate, no approver), reissues a processor's and an
// approver's tokens to itself, proposes as the processor, approves as the
// approver, downloads as the processor and decrypts with its own key.
func TestRedteam13ReissueExfiltratesExtract(t *testing.T) {
	ev := newExtractVault(t, "")
	ctx := context.Background()
	ev.depositAll(2)
	mallory, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	admin := broker.APIOperator(ev.caller("admin"))
	if _, err := ev.b.AddEnvironment(ctx, admin, broker.NewEnvironment{Name: "centre-mirror", Recipient: mallory.Recipient().String()}); err != nil {
		t.Logf("environment refused: %v (protection holds)", err)
		return
	}
	opener := &adminVault{keyVault: &keyVault{t: t, tokens: map[string]string{}}, office: mallory}
	stolen := map[string]string{}
	for _, u := range []string{"proc", "appr"} {
		sealed, err := ev.b.Reissue(ctx, admin, broker.UserID(u), mallory.Recipient().String())
		if err != nil {
			t.Logf("reissue of %s refused: %v (protection holds)", u, err)
			return
		}
		for k, v := range opener.open(sealed) {
			stolen[k] = v
		}
	}
	as := func(u string) *broker.Caller {
		c, err := ev.b.Authenticate(ctx, "Bearer "+stolen[u], "admin-workstation")
		if err != nil {
			t.Skipf("stolen token of %s does not work: %v", u, err)
		}
		return c
	}
	x, err := ev.b.ProposeExtract(ctx, as("proc"), broker.ExtractRequest{Environment: "centre-mirror", Areas: []string{keyDistrict},
		Form: "census2019", Classes: []string{"analytic", "operational"}, Purpose: "coding"})
	if err != nil {
		t.Logf("proposal refused: %v", err)
		return
	}
	if _, err := ev.b.ApproveExtract(ctx, as("appr"), x.Seq); err != nil {
		t.Logf("approval refused: %v", err)
		return
	}
	d, err := ev.b.DownloadExtract(ctx, as("proc"), x.Seq)
	if err != nil {
		t.Logf("download refused: %v", err)
		return
	}
	var buf bytes.Buffer
	if err := d.Stream(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	plain := decryptWith(t, buf.Bytes(), mallory)
	t.Fatalf("HOLE: one administrator extracted %d households (%d bytes of JSON Lines, first row %.120s…) of district %s and decrypted them with its own key",
		d.Households, len(plain), strings.SplitN(string(plain), "\n", 2)[0], keyDistrict)
}
