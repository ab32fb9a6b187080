package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/storage"
)

// review is a review of submission sub at audit index idx.
func review(sub string, idx int64, status, reason, note string) *storage.Review {
	return &storage.Review{AuditIndex: idx, Submission: sub, Status: status, Reason: reason, Note: note,
		Reviewer: "tl-1", At: at(11, int(idx))}
}

// diffReview lists how got differs from want; the times must be the same
// instant.
func diffReview(got, want storage.Review) []string {
	var d []string
	if got.AuditIndex != want.AuditIndex || got.Submission != want.Submission || got.Status != want.Status ||
		got.Reason != want.Reason || got.Note != want.Note || got.Reviewer != want.Reviewer {
		d = append(d, fmt.Sprintf("review = %d/%q/%q/%q/%q/%q, want %d/%q/%q/%q/%q/%q",
			got.AuditIndex, got.Submission, got.Status, got.Reason, got.Note, got.Reviewer,
			want.AuditIndex, want.Submission, want.Status, want.Reason, want.Note, want.Reviewer))
	}
	if want.At.IsZero() != got.At.IsZero() {
		d = append(d, fmt.Sprintf("review at %v, want %v", got.At, want.At))
	} else if e := checkTime("Review.At", got.At, want.At); !want.At.IsZero() && e != nil {
		d = append(d, e.Error())
	}
	return d
}

// testReviews: reviews are stored in audit order, refused for an unknown
// submission, a stored audit index, or a bad status, reason, reviewer
// or time; ListSubmissions gives each submission its latest review by
// audit index (not by insertion), notes with quotes and newlines intact,
// and the zero Review to one never reviewed.
func testReviews(t *testing.T, s storage.Store) {
	a := smallSubmission("a", "E1", 1, 1, 1)
	a.AuditIndex = 5
	b := smallSubmission("b", "E1", 2, 1, 1)
	b.AuditIndex = 6
	const note = "hộ 2: tuổi \"chủ hộ\" sai\nkiểm tra lại"
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(tx.InsertSubmission(a), tx.InsertSubmission(b),
			// Inserted out of audit order: 12 is the latest.
			tx.InsertReview(review("a", 12, storage.ReviewAccepted, "other", "")),
			tx.InsertReview(review("a", 10, storage.ReviewRejected, "inconsistent", note)))
	})
	for name, r := range map[string]*storage.Review{
		"unknown submission": review("zz", 20, storage.ReviewAccepted, "other", ""),
		"status":             review("a", 21, "pending", "other", ""),
		"empty status":       review("a", 22, "", "other", ""),
		"no reason":          review("a", 23, storage.ReviewRejected, "", ""),
		"no reviewer":        {AuditIndex: 24, Submission: "a", Status: storage.ReviewAccepted, Reason: "other", At: at(1, 0)},
		"zero time":          {AuditIndex: 25, Submission: "a", Status: storage.ReviewAccepted, Reason: "other", Reviewer: "x"},
		"negative index":     review("a", -1, storage.ReviewAccepted, "other", ""),
		"stored index":       review("b", 10, storage.ReviewAccepted, "other", ""),
	} {
		err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.InsertReview(r) })
		switch {
		case err == nil:
			t.Errorf("InsertReview (%s) stored", name)
		case name == "unknown submission" && !errors.Is(err, storage.ErrNotFound):
			t.Errorf("InsertReview (%s) = %v, want ErrNotFound", name, err)
		case name == "stored index" && !errors.Is(err, storage.ErrConflict):
			t.Errorf("InsertReview (%s) = %v, want ErrConflict", name, err)
		}
	}
	err := s.View(t.Context(), func(tx storage.ReadTx) error {
		got, err := tx.Reviews("a")
		if err != nil {
			return err
		}
		want := []storage.Review{*review("a", 10, storage.ReviewRejected, "inconsistent", note), *review("a", 12, storage.ReviewAccepted, "other", "")}
		if len(got) != len(want) {
			t.Fatalf("Reviews(a) = %+v, want %+v", got, want)
		}
		for i := range want {
			if d := diffReview(got[i], want[i]); d != nil {
				t.Errorf("Reviews(a)[%d]: %s", i, strings.Join(d, "; "))
			}
		}
		for _, id := range []string{"b", "zz"} {
			if got, err := tx.Reviews(id); err != nil || len(got) != 0 {
				t.Errorf("Reviews(%s) = %+v, %v; want none", id, got, err)
			}
		}
		metas, err := ListAll(tx, storage.SubmissionFilter{After: -1})
		if err != nil {
			return err
		}
		if IDs(metas) != "a b" {
			t.Fatalf("ListSubmissions = %s, want a b", IDs(metas))
		}
		if d := diffReview(metas[0].Review, want[1]); d != nil {
			t.Errorf("ListSubmissions: the review of a: %s", strings.Join(d, "; "))
		}
		if d := diffReview(metas[1].Review, storage.Review{}); d != nil {
			t.Errorf("ListSubmissions: the review of b (never reviewed): %s", strings.Join(d, "; "))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A later review is the latest, with its note.
	update(t, s, func(tx storage.Tx) error {
		return tx.InsertReview(review("a", 30, storage.ReviewRejected, "duplicate", note))
	})
	err = s.View(t.Context(), func(tx storage.ReadTx) error {
		metas, err := ListAll(tx, storage.SubmissionFilter{After: -1, Depositor: a.Depositor})
		if err != nil || len(metas) != 2 {
			return fmt.Errorf("ListSubmissions = %v, %v", IDs(metas), err)
		}
		if d := diffReview(metas[0].Review, *review("a", 30, storage.ReviewRejected, "duplicate", note)); d != nil {
			t.Errorf("ListSubmissions after a third review: %s", strings.Join(d, "; "))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// reviewGuardedStatements are the changes to reviews the database must
// refuse, in an order where each still changes something if let
// through. The fixture (RunReviewGuards) has reviews 10 (rejected) and
// 12 (accepted) of submission a, and 11 (accepted) of b; the backend's
// own statements (Raw.Refused) run after these, on reviews 100 and 11.
var reviewGuardedStatements = []string{
	`UPDATE reviews SET status = 'accepted' WHERE audit_index = 10`,
	`UPDATE reviews SET reason = 'other' WHERE audit_index = 10`,
	`UPDATE reviews SET note = '' WHERE audit_index = 10`,
	`UPDATE reviews SET reviewer = 'someone' WHERE audit_index = 11`,
	`UPDATE reviews SET submission = 'b' WHERE audit_index = 12`,
	`UPDATE reviews SET audit_index = 100 WHERE audit_index = 10`,
	`UPDATE reviews SET at = '2020-01-01T00:00:00Z' WHERE audit_index = 11`,
	`DELETE FROM reviews WHERE audit_index = 12`,
}

// RunReviewGuards checks, on s (a fresh store) and raw (its database),
// that the database itself refuses every change to a stored review and
// its removal: a rejection turned into an acceptance, a note or a
// reviewer rewritten, a review moved or deleted. A refused statement
// leaves the reviews as they were; once the guards are dropped every
// statement goes through and changes them.
func RunReviewGuards(t *testing.T, s storage.Store, raw Raw) {
	t.Helper()
	a := smallSubmission("a", "E1", 1, 1, 1)
	a.AuditIndex = 5
	b := smallSubmission("b", "E1", 2, 1, 1)
	b.AuditIndex = 6
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(tx.InsertSubmission(a), tx.InsertSubmission(b),
			tx.InsertReview(review("a", 10, storage.ReviewRejected, "incomplete", "note of 10")),
			tx.InsertReview(review("b", 11, storage.ReviewAccepted, "other", "")),
			tx.InsertReview(review("a", 12, storage.ReviewAccepted, "other", "note of 12")))
	})
	read := func() string {
		t.Helper()
		var b strings.Builder
		err := s.View(t.Context(), func(tx storage.ReadTx) error {
			for _, id := range []string{"a", "b"} {
				rs, err := tx.Reviews(id)
				if err != nil {
					return err
				}
				for _, r := range rs {
					fmt.Fprintf(&b, "%d %s %s %s %q %s %s\n", r.AuditIndex, r.Submission, r.Status, r.Reason, r.Note, r.Reviewer, r.At.UTC().Format("2006-01-02T15:04:05.999999999"))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if got := read(); strings.Count(got, "\n") != 3 {
		t.Fatalf("the fixture is not what RunReviewGuards expects:\n%s", got)
	}
	checkGuards(t, raw, append(slices.Clone(reviewGuardedStatements), raw.Refused...), read, "the reviews")
}
