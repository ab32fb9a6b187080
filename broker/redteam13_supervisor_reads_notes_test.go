package broker_test

// FINDING 9 (low, policy bypass by free text): a review note is written
// by a team leader, who sees identifying fields, and is shown to everyone
// who may LIST the area (metaOf → wire.SubmissionMeta.Review.Note,
// broker/views.go) — supervisors included, whom the policy denies the
// identifying class. A note like "head's name misspelt: should be Nguyễn
// Văn Hùng, phone 0912345678" reaches the supervisor through the list,
// outside the per-class policy and outside the open cap (a list is not an
// open). Suggested fix: show the note to the depositor (mine=1) and to
// callers allowed submission.read_identifying at the EA only, or keep it
// out of lists and show it in the open (counted, class-checked).
//
//   go test ./broker/ -run 'TestRedteam13SupervisorReadsReviewNotes' -count=1
// Fixed: it passed once the hole was closed (it failed before).

import (
	"context"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
)

func TestRedteam13SupervisorReadsReviewNotes(t *testing.T) {
	kv := newKeyVault(t, keyVaultOpts{})
	ctx := context.Background()
	for _, u := range []broker.NewUser{
		{Name: "tl", Role: policy.TeamLeader, Area: communeA},
		{Name: "sup", Role: policy.Supervisor, Area: keyDistrict},
	} {
		tok, err := kv.b.AddUser(ctx, actor, u)
		if err != nil {
			t.Fatal(err)
		}
		kv.tokens[string(u.Name)] = tok.Reveal()
	}
	id := kv.deposit(ea(communeA, 1))
	note := "head's name misspelt, should be " + wantHead + ", phone " + wantPhone
	if _, err := kv.b.ReviewSubmission(ctx, kv.caller("tl"), id, "rejected", "other", note); err != nil {
		t.Fatal(err)
	}
	// The supervisor may not open the identifying class ...
	v, err := kv.b.OpenSubmission(ctx, kv.caller("sup"), id)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := v.Fields["identifying"]; ok {
		t.Fatal("the supervisor sees identifying fields")
	}
	// ... but lists the note.
	l, err := kv.b.ListSubmissions(ctx, kv.caller("sup"), keyDistrict, broker.ListOpts{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range l.Submissions {
		if m.Review != nil && strings.Contains(m.Review.Note, wantHead) {
			t.Fatalf("HOLE: the supervisor (no identifying class) reads the head's name and phone in the review note of %s: %q", m.ID, m.Review.Note)
		}
	}
}
