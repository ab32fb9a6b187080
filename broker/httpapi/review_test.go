package httpapi_test

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/policy"
)

// Review flow (issue 13 part 3), attacked over HTTP: who may review,
// where, which version, what the enumerator sees of it, and that the
// note never reaches the audit log.

// reviewNote names a person, as a note may: it must never be audited.
const reviewNote = "Bà Nguyễn Thị Hoa is missing from the roster; visit again"

// review posts a review of id as user.
func (v *vault) review(user, id, body string) *response {
	v.t.Helper()
	return v.do(http.MethodPost, "/v1/submissions/"+id+"/review", "Bearer "+v.Tokens[user], strings.NewReader(body),
		map[string]string{"Content-Type": "application/json"})
}

func rejectBody(reason string) string {
	return `{"status":"rejected","reason":"` + reason + `","note":"` + reviewNote + `"}`
}

// TestReviewWho: an enumerator reviewing its own submission, a team
// leader outside its subtree (the same answer as an unknown id), a team
// leader reviewing its own deposit and a trust role are refused, and
// nothing is stored; a team leader and a supervisor of the scope review.
func TestReviewWho(t *testing.T) {
	v := newVault(t, vaultOpts{})
	id := v.depositAs("enum-a1", viewHousehold(eaA1, 1))
	for _, u := range []string{"enum-a1", "enum-a1-bis", "tl-b", "admin", "auditor"} {
		if _, ok := v.Tokens[u]; !ok {
			continue
		}
		var r *response
		ev := v.oneEvent(func() { r = v.review(u, id, rejectBody("incomplete")) })
		if r.Status != http.StatusForbidden || r.Code(t) != "permission_denied" {
			t.Errorf("%s reviews %s: %d %s, want 403 permission_denied", u, eaA1, r.Status, r.Body)
		}
		if ev.Action != string(policy.ReviewSubmission) || ev.Outcome != "denied" {
			t.Errorf("%s's refused review: event %s/%s", u, ev.Action, ev.Outcome)
		}
	}
	unknown := "00000000-0000-4000-8000-000000000000"
	rUnknown := v.review("tl-b", unknown, rejectBody("incomplete"))
	rOutside := v.review("tl-b", id, rejectBody("incomplete"))
	msgU, _ := rUnknown.ErrorBody(t)
	msgO, _ := rOutside.ErrorBody(t)
	if rUnknown.Status != rOutside.Status || strings.ReplaceAll(msgU, unknown, id) != msgO {
		t.Errorf("an unknown id (%d %q) and one outside the scope (%d %q) answer differently", rUnknown.Status, msgU, rOutside.Status, msgO)
	}
	if _, l := v.list("enum-a1", "mine=1"); l == nil || len(l.Submissions) != 1 || l.Submissions[0].Review != nil {
		t.Fatalf("a refused review was stored: %+v", l)
	}

	// A team leader's own deposit is reviewed by someone else.
	own := v.depositAs("tl-a", viewHousehold(eaA1, 2))
	if r := v.review("tl-a", own, `{"status":"accepted","reason":"ok","note":""}`); r.Status != http.StatusForbidden || r.Code(t) != "own_submission" {
		t.Errorf("a team leader reviews its own deposit: %d %s, want 403 own_submission", r.Status, r.Body)
	}

	var m wire.SubmissionMeta
	r := v.review("supervisor", id, rejectBody("inconsistent"))
	if r.Status != http.StatusOK {
		t.Fatalf("the supervisor reviews: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &m)
	if m.Review == nil || m.Review.Status != "rejected" || m.Review.Reason != "inconsistent" || m.Review.Reviewer != "supervisor" || m.Review.Note != reviewNote {
		t.Errorf("the supervisor's review answered %+v", m.Review)
	}
	if r := v.review("tl-a", id, `{"status":"accepted"}`); r.Status != http.StatusOK {
		t.Fatalf("the team leader accepts: %d %s", r.Status, r.Body)
	}
	if _, l := v.list("tl-a", "area="+communeA); l == nil || l.Submissions[0].Review == nil || l.Submissions[0].Review.Status != "accepted" ||
		l.Submissions[0].Review.Reason != wire.ReasonOK || l.Submissions[0].Review.Reviewer != "tl-a" {
		t.Errorf("the list does not show the latest review: %+v", l)
	}
}

// TestReviewInvalid: a body that is not the strict request, an unknown
// status or reason, a reason of the wrong kind, a note too long or with
// a control character are refused with 400 and store nothing; the
// refusal's message and event never quote the note.
func TestReviewInvalid(t *testing.T) {
	v := newVault(t, vaultOpts{})
	id := v.depositAs("enum-a1", viewHousehold(eaA1, 1))
	long := strings.Repeat("x", wire.MaxReviewNote+1)
	for name, body := range map[string]string{
		"unknown member":  `{"status":"rejected","reason":"incomplete","note":"n","extra":1}`,
		"not an object":   `["rejected"]`,
		"number":          `{"status":"rejected","reason":1,"note":""}`,
		"status":          `{"status":"pending","reason":"incomplete","note":""}`,
		"reason":          `{"status":"rejected","reason":"lazy","note":""}`,
		"ok rejection":    `{"status":"rejected","reason":"ok","note":""}`,
		"reasoned accept": `{"status":"accepted","reason":"incomplete","note":""}`,
		"other, no note":  `{"status":"rejected","reason":"other","note":""}`,
		"long note":       `{"status":"rejected","reason":"incomplete","note":"` + long + `"}`,
		"control":         `{"status":"rejected","reason":"incomplete","note":"` + reviewNote + `\n2"}`,
		"escape":          `{"status":"rejected","reason":"incomplete","note":"` + reviewNote + `\u001b[2J"}`,
	} {
		var r *response
		ev := v.oneEvent(func() { r = v.review("tl-a", id, body) })
		if r.Status != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", name, r.Status, r.Body)
		}
		if bytes.Contains(r.Body, []byte("Hoa")) || strings.Contains(ev.Reason, "Hoa") || strings.Contains(ev.Reason, long) {
			t.Errorf("%s: the refusal quotes the note: %s / %s", name, r.Body, ev.Reason)
		}
	}
	if _, l := v.list("tl-a", "area="+communeA); l == nil || l.Submissions[0].Review != nil {
		t.Errorf("an invalid review was stored: %+v", l)
	}
}

// TestReviewFlow: a rejection, then the enumerator sees the status and
// reason of its own submission (and only its own; never a field), then
// deposits a corrected version that supersedes the rejected one:
// progress counts the household once, the new version is current and
// unreviewed, the superseded one can no longer be reviewed (409). The
// note never appears in the audit log, the reason code does.
func TestReviewFlow(t *testing.T) {
	v := newVault(t, vaultOpts{})
	m := viewHousehold(eaA1, 7)
	first := v.depositAs("enum-a1", m)
	other := v.depositAs("enum-a1-bis", viewHousehold(eaA1, 8))
	if r := v.review("other-no-such-user", first, rejectBody("incomplete")); r.Status != http.StatusUnauthorized {
		t.Errorf("a review without a token: %d", r.Status)
	}
	var ev = v.oneEvent(func() {
		if r := v.review("tl-a", first, rejectBody("wrong_household")); r.Status != http.StatusOK {
			t.Fatalf("the team leader rejects: %d %s", r.Status, r.Body)
		}
	})
	if ev.Action != string(policy.ReviewSubmission) || ev.Outcome != "ok" || ev.Reason != "rejected: wrong_household" ||
		!slices.Equal(ev.Resources, []string{"submission:" + first}) || ev.Area != eaA1 {
		t.Errorf("review event %s/%s %q %v at %s", ev.Action, ev.Outcome, ev.Reason, ev.Resources, ev.Area)
	}
	if r := v.review("tl-a", other, `{"status":"accepted","reason":"","note":""}`); r.Status != http.StatusOK {
		t.Fatalf("the team leader accepts the other: %d %s", r.Status, r.Body)
	}

	r, l := v.list("enum-a1", "mine=1&status=all")
	if l == nil {
		t.Fatalf("mine=1: %d %s", r.Status, r.Body)
	}
	if len(l.Submissions) != 1 || string(l.Submissions[0].ID) != first {
		t.Fatalf("mine=1 lists %+v, want only its own %s", l.Submissions, first)
	}
	if rv := l.Submissions[0].Review; rv == nil || rv.Status != "rejected" || rv.Reason != "wrong_household" || rv.Note != reviewNote {
		t.Errorf("mine=1: the enumerator sees the review %+v, want rejected, wrong_household, the note", rv)
	}
	for _, secret := range []string{secretName, secretPhone, analyticSecret, operationalSecret, other} {
		if bytes.Contains(r.Body, []byte(secret)) {
			t.Errorf("mine=1 holds %q: a field or another enumerator's submission", secret)
		}
	}
	before := v.deposited()[eaA1]

	// The corrected version supersedes the rejected one.
	fixed := viewHousehold(eaA1, 7)
	fixed["supersedes"] = first
	second := v.depositAs("enum-a1", fixed)
	if got := v.deposited()[eaA1]; got != before {
		t.Errorf("progress of %s after the correction: %d, want %d (the household once)", eaA1, got, before)
	}
	_, l = v.list("enum-a1", "mine=1")
	if l == nil || len(l.Submissions) != 1 || string(l.Submissions[0].ID) != second || string(l.Submissions[0].Supersedes) != first ||
		l.Submissions[0].Review != nil {
		t.Errorf("mine=1 after the correction: %+v, want only %s, current, superseding %s, unreviewed", l, second, first)
	}
	r = v.review("tl-a", first, `{"status":"accepted","reason":"ok","note":""}`)
	if r.Status != http.StatusConflict || r.Code(t) != "superseded" {
		t.Errorf("reviewing the superseded version: %d %s, want 409 superseded", r.Status, r.Body)
	}
	if msg, _ := r.ErrorBody(t); !strings.Contains(msg, second) {
		t.Errorf("the 409 does not name the current version: %q", msg)
	}
	if r := v.review("tl-a", second, `{"status":"accepted","reason":"ok","note":""}`); r.Status != http.StatusOK {
		t.Errorf("reviewing the corrected version: %d %s", r.Status, r.Body)
	}

	var sawReason bool
	for _, rec := range v.auditRecords(0) {
		if bytes.Contains(rec.Event, []byte("Hoa")) || bytes.Contains(rec.Event, []byte("roster")) {
			t.Fatalf("audit record %d holds the review's note: %s", rec.Index, rec.Event)
		}
		sawReason = sawReason || bytes.Contains(rec.Event, []byte("wrong_household"))
	}
	if !sawReason {
		t.Error("no audit record holds the reason code")
	}
}
