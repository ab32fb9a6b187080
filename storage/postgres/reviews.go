package postgres

import (
	"errors"
	"fmt"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/internal/feed"
	"github.com/censusvault/censusvault/storage/internal/opentime"
)

// listQueries are ListSubmissions' statements, without and with a
// filter by commune. Like SubmissionsSince's, a page is a range of
// submissions_audit_index ordered by (audit_index, id), the keyset that
// resumes after the last row read (on the first page the last id is
// NULL, which makes it audit_index > After). The depositor and current
// filters are written so that an unused one is true for every row; the
// communes are one text[] parameter, however many there are. Each row
// carries its latest review, if any (a range of reviews_submission). Only the
// columns of storage.SubmissionMeta are named: neither a sealed part,
// nor the operational fields, nor the receipt is read.
var listQueries = [2]string{listQuery(""), listQuery(`
		AND s.commune = ANY($6::text[])`)}

func listQuery(byCommune string) string {
	return `SELECT s.id, s.area, s.commune, s.household_no, s.form, s.form_version, s.interviewed_at, s.received_at,
		s.depositor, s.supersedes, s.superseded_by, s.audit_index,
		r.audit_index, r.status, r.reason, r.note, r.reviewer, r.at
	FROM submissions s LEFT JOIN LATERAL (
		SELECT audit_index, status, reason, note, reviewer, at FROM reviews
		WHERE reviews.submission = s.id ORDER BY audit_index DESC LIMIT 1) r ON true
	WHERE s.audit_index >= $1 AND (s.audit_index > $1 OR s.id > $2::text)
		AND ($3::text = '' OR s.depositor = $3::text)
		AND (NOT $4::boolean OR s.superseded_by IS NULL)` + byCommune + `
	ORDER BY s.audit_index, s.id
	LIMIT $5`
}

func (t *reader) ListSubmissions(f storage.SubmissionFilter, fn func(storage.SubmissionMeta) (bool, error)) error {
	if f.Communes != nil && len(f.Communes) == 0 {
		return nil // an empty list keeps none
	}
	q := listQueries[0]
	if f.Communes != nil {
		q = listQueries[1]
	}
	left := f.Limit // rows still wanted; <= 0: no limit
	lastIndex, lastID := f.After, (*string)(nil)
	page := make([]storage.SubmissionMeta, 0, submissionsPage)
	for {
		n := submissionsPage
		if f.Limit > 0 {
			n = min(n, left)
		}
		args := []any{lastIndex, lastID, f.Depositor, f.Current, n}
		if f.Communes != nil {
			args = append(args, f.Communes)
		}
		rows, err := t.c.Query(t.ctx, q, args...)
		if err != nil {
			return t.fail(err)
		}
		page = page[:0]
		for rows.Next() {
			var m storage.SubmissionMeta
			var interviewed, received string
			var supersededBy, rStatus, rReason, rNote, rReviewer, rAt *string
			var rIndex *int64
			if err := rows.Scan(&m.ID, &m.Area, &m.Commune, &m.HouseholdNo, &m.Form, &m.FormVersion,
				&interviewed, &received, &m.Depositor, &m.Supersedes, &supersededBy, &m.AuditIndex,
				&rIndex, &rStatus, &rReason, &rNote, &rReviewer, &rAt); err != nil {
				rows.Close()
				return t.fail(err)
			}
			if err := parseTimes([]*time.Time{&m.InterviewedAt, &m.ReceivedAt}, interviewed, received); err != nil {
				rows.Close()
				return fmt.Errorf("submission %s: %w", m.ID, err)
			}
			if rIndex != nil {
				m.Review = storage.Review{AuditIndex: *rIndex, Submission: m.ID, Status: *rStatus, Reason: *rReason,
					Note: *rNote, Reviewer: *rReviewer}
				if err := parseTimes([]*time.Time{&m.Review.At}, *rAt); err != nil {
					rows.Close()
					return fmt.Errorf("review of submission %s: %w", m.ID, err)
				}
			}
			if supersededBy != nil {
				m.SupersededBy = *supersededBy
			}
			page = append(page, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return t.fail(err)
		}
		if more, err := feed.Each(page, fn); err != nil || !more {
			return err
		}
		left -= len(page)
		if len(page) < n || (f.Limit > 0 && left <= 0) {
			return nil
		}
		last := page[len(page)-1]
		lastIndex, lastID = last.AuditIndex, &last.ID
	}
}

// Record opens are stored with their time in Unix nanoseconds, a
// BIGINT, since they are compared in SQL: the RFC 3339 text of other
// tables does not sort as time does (".5Z" sorts before "Z").

func (t *writer) RecordOpen(user, submission string, at time.Time) error {
	if err := opentime.Check("postgres", user, submission, at); err != nil {
		return err
	}
	_, err := t.exec(`INSERT INTO record_opens(user_name, submission, at) VALUES ($1, $2, $3)`, user, submission, at.UnixNano())
	return err
}

// opensSinceQuery is OpensSince's statement: a range of
// record_opens_user_at.
const opensSinceQuery = `SELECT count(*) FROM record_opens WHERE user_name = $1 AND at >= $2`

func (t *reader) OpensSince(user string, since time.Time) (int64, error) {
	var n int64
	err := t.c.QueryRow(t.ctx, opensSinceQuery, user, opentime.Bound(since)).Scan(&n)
	if err != nil {
		return 0, t.fail(err)
	}
	return n, nil
}

func (t *writer) PruneOpens(before time.Time) (int64, error) {
	tag, err := t.exec(`DELETE FROM record_opens WHERE at < $1`, opentime.Bound(before))
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// reviewCols are the columns of reviews, in Reviews' scan order.
const reviewCols = `audit_index, submission, status, reason, note, reviewer, at`

func (t *writer) InsertReview(r *storage.Review) error {
	switch {
	case r.Submission == "" || r.Reviewer == "" || r.Reason == "":
		return errors.New("postgres: InsertReview needs a submission, a reviewer and a reason")
	case r.Status != storage.ReviewAccepted && r.Status != storage.ReviewRejected:
		return fmt.Errorf("postgres: review of submission %s has status %q; it must be accepted or rejected", r.Submission, r.Status)
	case r.At.IsZero():
		return fmt.Errorf("postgres: review of submission %s has a zero time", r.Submission)
	case r.AuditIndex < 0:
		return fmt.Errorf("postgres: review of submission %s has audit index %d", r.Submission, r.AuditIndex)
	}
	var exists bool
	if err := t.c.QueryRow(t.ctx, `SELECT EXISTS (SELECT 1 FROM submissions WHERE id = $1)`, r.Submission).Scan(&exists); err != nil {
		return t.fail(err)
	}
	if !exists {
		return fmt.Errorf("%w: no submission %s to review", storage.ErrNotFound, r.Submission)
	}
	// A stored audit index is caught as a conflict without aborting the
	// savepoint; DO NOTHING fires no update trigger.
	tag, err := t.exec(`INSERT INTO reviews(`+reviewCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (audit_index) DO NOTHING`,
		r.AuditIndex, r.Submission, r.Status, r.Reason, r.Note, r.Reviewer, fmtTime(r.At))
	if err != nil {
		return fmt.Errorf("review of submission %s: %w", r.Submission, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: a review of audit index %d is stored", storage.ErrConflict, r.AuditIndex)
	}
	return nil
}

func (t *reader) Reviews(submission string) ([]storage.Review, error) {
	rows, err := t.c.Query(t.ctx, `SELECT `+reviewCols+` FROM reviews WHERE submission = $1 ORDER BY audit_index`, submission)
	if err != nil {
		return nil, t.fail(err)
	}
	defer rows.Close()
	var out []storage.Review
	for rows.Next() {
		var r storage.Review
		var at string
		if err := rows.Scan(&r.AuditIndex, &r.Submission, &r.Status, &r.Reason, &r.Note, &r.Reviewer, &at); err != nil {
			return nil, t.fail(err)
		}
		if err := parseTimes([]*time.Time{&r.At}, at); err != nil {
			return nil, fmt.Errorf("review %d of submission %s: %w", r.AuditIndex, submission, err)
		}
		out = append(out, r)
	}
	return out, t.fail(rows.Err())
}
