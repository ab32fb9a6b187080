package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// Review flow (issue 13): a team leader or a supervisor marks a current
// submission of its scope accepted or rejected, with a reason code
// (wire.ReviewReasons) and a note for the enumerator; the enumerator sees
// the latest review of its own submissions (ListSubmissions with Mine)
// and deposits a corrected version that supersedes the rejected one
// (Deposit, naming it in supersedes), which is then current and
// unreviewed; progress counts the household once.
//
// Invariants:
//   - Policy submission.review decides, at the submission's EA; an
//     unknown submission answers as a refused one.
//   - Nobody reviews a submission they deposited (a team leader also
//     deposits), and only the current version is reviewed.
//   - The review row and its audit event commit together. The event
//     holds the status and the reason code, never the note: notes may
//     name people, and the audit log is kept for good and read by
//     auditors. The note is shown only to the depositor and to those who
//     may list the submission's area.

// ReviewReasonCodes are the codes of wire.ReviewReasons.
func ReviewReasonCodes() []string {
	codes := make([]string, len(wire.ReviewReasons))
	for i, r := range wire.ReviewReasons {
		codes[i] = r.Code
	}
	return codes
}

// checkReview checks a review's status, reason and note, and returns the
// reason to store (an acceptance naming none is ReasonOK). The messages
// never quote the note.
func checkReview(status, reason, note string) (string, error) {
	switch status {
	case wire.ReviewAccepted:
		if reason == "" {
			reason = wire.ReasonOK
		}
		if reason != wire.ReasonOK {
			return "", fmt.Errorf("an acceptance takes reason %q (or none)", wire.ReasonOK)
		}
	case wire.ReviewRejected:
		if reason == wire.ReasonOK || !slices.Contains(ReviewReasonCodes(), reason) {
			return "", fmt.Errorf("a rejection takes one of the reasons %v", ReviewReasonCodes()[1:])
		}
		if reason == "other" && note == "" {
			return "", errors.New(`a rejection for reason "other" needs a note saying what to correct`)
		}
	default:
		return "", fmt.Errorf("status must be %s or %s", wire.ReviewAccepted, wire.ReviewRejected)
	}
	if len(note) > wire.MaxReviewNote {
		return "", fmt.Errorf("the note is %d bytes, the limit is %d", len(note), wire.MaxReviewNote)
	}
	if note != "" {
		if err := checkText("the note", note); err != nil {
			return "", err
		}
	}
	return reason, nil
}

// errReviewSuperseded rolls back a review of a submission superseded
// since it was read.
var errReviewSuperseded = errors.New("submission superseded")

// ReviewSubmission records the review of submission id by c: status
// wire.ReviewAccepted or ReviewRejected, a reason code of
// wire.ReviewReasons and a note for the enumerator (may be empty for an
// acceptance). It returns the submission's metadata with the review.
// Errors: Invalid (a bad id, status, reason or note); Permission (not
// allowed submission.review at its EA, no such submission: the same
// answer, or the caller's own deposit); Conflict with code "superseded"
// (a later version is current: review that one). One audit event
// (submission.review, the status and reason, never the note) and the
// review commit together.
func (b *Broker) ReviewSubmission(ctx context.Context, c *Caller, id SubmissionID, status, reason, note string) (*SubmissionMeta, error) {
	action := string(policy.ReviewSubmission)
	if err := b.checkID(ctx, c, action, id); err != nil {
		return nil, err
	}
	reason, err := checkReview(status, reason, note)
	if err != nil {
		return nil, b.Invalid(ctx, c, action, err.Error())
	}
	forbidden := errorf(Permission, nil, "not permitted to review submission %s", id)
	var s *storage.Submission
	err = b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		s, err = tx.Submission(string(id))
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		ev := b.event(c, action, policy.Decision{Rule: "no such submission"})
		ev.Resources = []string{"submission:" + string(id)}
		ev.Outcome = "denied"
		return nil, b.refuse(ctx, ev, forbidden)
	}
	if err != nil {
		return nil, errorf(Unavailable, err, "the vault database is unavailable; try again later")
	}
	// Decided at the EA the household belongs to now (areas.go).
	d, err := b.engineFor(c).Allow(ctx, c.subject(), policy.ReviewSubmission, policy.Resource{Path: b.submissionPath(s.Area, s.HouseholdNo)})
	if err != nil {
		return nil, errorf(Internal, err, "policy failed")
	}
	ev := b.event(c, action, d)
	ev.Area = s.Area
	ev.Resources = []string{"submission:" + string(id)}
	if !d.Allow {
		ev.Outcome = "denied"
		return nil, b.refuse(ctx, ev, forbidden)
	}
	if s.Depositor == string(c.User) {
		ev.Outcome, ev.Reason = "denied", "own submission"
		return nil, b.refuse(ctx, ev, &Error{Kind: Permission, Code: "own_submission",
			Msg: fmt.Sprintf("submission %s is your own deposit: another team leader or a supervisor must review it", id)})
	}
	superseded := func(by string) error {
		ev.Outcome, ev.Reason = "conflict", "superseded"
		return b.refuse(ctx, ev, &Error{Kind: Conflict, Code: "superseded",
			Msg: fmt.Sprintf("submission %s is superseded by %s: review the current version", id, by)})
	}
	if s.SupersededBy != "" {
		return nil, superseded(s.SupersededBy)
	}

	// The review and its event: one transaction, which checks again that
	// the submission is still current.
	ev.Outcome, ev.Reason = "ok", status+": "+reason
	r := &storage.Review{Submission: string(id), Status: status, Reason: reason, Note: note, Reviewer: string(c.User), At: ev.Time}
	var supersededBy string
	actx, cancel := auditContext(ctx)
	defer cancel()
	err = b.store.Update(actx, func(tx storage.Tx) error {
		cur, err := tx.Submission(string(id))
		if err != nil {
			return err
		}
		if cur.SupersededBy != "" {
			supersededBy = cur.SupersededBy
			return errReviewSuperseded
		}
		rec, err := appendEvent(tx, ev)
		if err != nil {
			return err
		}
		r.AuditIndex = rec.Index
		return tx.InsertReview(r)
	})
	if errors.Is(err, errReviewSuperseded) {
		return nil, superseded(supersededBy)
	}
	if err != nil {
		b.auditFailures.Add(1)
		b.log.Error("failed to record a review", "err", err)
		return nil, errorf(Unavailable, err, "the review could not be recorded; nothing was changed, try again later")
	}
	m := metaOf(storage.SubmissionMeta{
		ID: s.ID, Area: s.Area, Commune: s.Commune, HouseholdNo: s.HouseholdNo, Form: s.Form, FormVersion: s.FormVersion,
		InterviewedAt: s.InterviewedAt, ReceivedAt: s.ReceivedAt, Depositor: s.Depositor,
		Supersedes: s.Supersedes, SupersededBy: s.SupersededBy, AuditIndex: s.AuditIndex, Review: *r,
	})
	return &m, nil
}
