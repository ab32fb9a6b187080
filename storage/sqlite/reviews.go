package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/internal/feed"
	"github.com/censusvault/censusvault/storage/internal/opentime"
)

// listQueries are ListSubmissions' statements, without and with a
// filter by commune. Like SubmissionsSince's, a page is a range of
// submissions_audit_index in (audit_index, rowid) order, the keyset that
// resumes after the last row read. The depositor and current filters
// are written so that an unused one is true for every row (and so that
// the partial index of current households, whose order is not audit
// order, cannot stand in for the range). The communes are one JSON
// array parameter, however many there are: SQLite's limit on bound
// parameters does not apply, and json_each's values are looked up once
// per row in a transient index. Each row carries its latest review, if
// any (a range of reviews_submission). Only the columns of
// storage.SubmissionMeta are named: neither a sealed part, nor the
// operational fields, nor the receipt is read.
var listQueries = [2]string{listQuery(""), listQuery(`
	AND commune IN (SELECT value FROM json_each(?6))`)}

func listQuery(byCommune string) string {
	return `SELECT submissions.rowid, id, area, commune, household_no, form, form_version, interviewed_at, received_at,
		depositor, supersedes, superseded_by, submissions.audit_index,
		reviews.audit_index, reviews.status, reviews.reason, reviews.note, reviews.reviewer, reviews.at
	FROM submissions LEFT JOIN reviews ON reviews.audit_index =
		(SELECT max(r.audit_index) FROM reviews AS r WHERE r.submission = submissions.id)
	WHERE submissions.audit_index >= ?1 AND (submissions.audit_index > ?1 OR submissions.rowid > ?2)
		AND (?3 = '' OR depositor = ?3)
		AND (?4 = 0 OR superseded_by IS NULL)` + byCommune + `
	ORDER BY submissions.audit_index, submissions.rowid
	LIMIT ?5`
}

func (t *txn) ListSubmissions(f storage.SubmissionFilter, fn func(storage.SubmissionMeta) (bool, error)) error {
	if f.Communes != nil && len(f.Communes) == 0 {
		return nil // an empty list keeps none
	}
	current := 0
	if f.Current {
		current = 1
	}
	q, args := listQueries[0], []any{nil, nil, f.Depositor, current, nil}
	if f.Communes != nil {
		communes, err := encodeList(f.Communes)
		if err != nil {
			return err
		}
		q, args = listQueries[1], append(args, communes)
	}
	left := f.Limit // rows still wanted; <= 0: no limit
	// The first page takes every rowid at audit index After+1 on, as in
	// SubmissionsSince.
	lastIndex, lastRowid := f.After, int64(math.MaxInt64)
	page := make([]storage.SubmissionMeta, 0, submissionsPage)
	for {
		n := submissionsPage
		if f.Limit > 0 {
			n = min(n, left)
		}
		args[0], args[1], args[4] = lastIndex, lastRowid, n
		rows, err := t.query(q, args...)
		if err != nil {
			return err
		}
		page = page[:0]
		for rows.Next() {
			var m storage.SubmissionMeta
			var interviewed, received string
			var supersededBy, rStatus, rReason, rNote, rReviewer, rAt sql.NullString
			var rIndex sql.NullInt64
			if err := rows.Scan(&lastRowid, &m.ID, &m.Area, &m.Commune, &m.HouseholdNo, &m.Form, &m.FormVersion,
				&interviewed, &received, &m.Depositor, &m.Supersedes, &supersededBy, &m.AuditIndex,
				&rIndex, &rStatus, &rReason, &rNote, &rReviewer, &rAt); err != nil {
				rows.Close()
				return classify(err)
			}
			if m.InterviewedAt, err = parseTime(interviewed); err == nil {
				m.ReceivedAt, err = parseTime(received)
			}
			if err == nil && rIndex.Valid {
				m.Review = storage.Review{AuditIndex: rIndex.Int64, Submission: m.ID, Status: rStatus.String,
					Reason: rReason.String, Note: rNote.String, Reviewer: rReviewer.String}
				m.Review.At, err = parseTime(rAt.String)
			}
			if err != nil {
				rows.Close()
				return fmt.Errorf("submission %s: %w", m.ID, err)
			}
			m.SupersededBy = supersededBy.String
			lastIndex = m.AuditIndex
			page = append(page, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return classify(err)
		}
		if more, err := feed.Each(page, fn); err != nil || !more {
			return err
		}
		left -= len(page)
		if len(page) < n || (f.Limit > 0 && left <= 0) {
			return nil
		}
	}
}

// Record opens are stored with their time in Unix nanoseconds, an
// INTEGER, since they are compared in SQL: the RFC 3339 text of other
// tables does not sort as time does (".5Z" sorts before "Z").

func (t *txn) RecordOpen(user, submission string, at time.Time) error {
	if err := opentime.Check("sqlite", user, submission, at); err != nil {
		return err
	}
	_, err := t.exec(`INSERT INTO record_opens(user_name, submission, at) VALUES(?, ?, ?)`, user, submission, at.UnixNano())
	return err
}

// opensSinceQuery is OpensSince's statement: a range of
// record_opens_user_at.
const opensSinceQuery = `SELECT count(*) FROM record_opens WHERE user_name = ? AND at >= ?`

func (t *txn) OpensSince(user string, since time.Time) (int64, error) {
	row, err := t.queryRow(opensSinceQuery, user, opentime.Bound(since))
	if err != nil {
		return 0, err
	}
	var n int64
	if err := row.Scan(&n); err != nil {
		return 0, classify(err)
	}
	return n, nil
}

func (t *txn) PruneOpens(before time.Time) (int64, error) {
	res, err := t.exec(`DELETE FROM record_opens WHERE at < ?`, opentime.Bound(before))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// reviewCols are the columns of reviews, in scanReview's order.
const reviewCols = `audit_index, submission, status, reason, note, reviewer, at`

func (t *txn) InsertReview(r *storage.Review) error {
	switch {
	case r.Submission == "" || r.Reviewer == "" || r.Reason == "":
		return errors.New("sqlite: InsertReview needs a submission, a reviewer and a reason")
	case r.Status != storage.ReviewAccepted && r.Status != storage.ReviewRejected:
		return fmt.Errorf("sqlite: review of submission %s has status %q; it must be accepted or rejected", r.Submission, r.Status)
	case r.At.IsZero():
		return fmt.Errorf("sqlite: review of submission %s has a zero time", r.Submission)
	case r.AuditIndex < 0:
		return fmt.Errorf("sqlite: review of submission %s has audit index %d", r.Submission, r.AuditIndex)
	}
	row, err := t.queryRow(`SELECT (SELECT count(*) FROM submissions WHERE id = ?), (SELECT count(*) FROM reviews WHERE audit_index = ?)`,
		r.Submission, r.AuditIndex)
	if err != nil {
		return err
	}
	var subs, taken int
	if err := row.Scan(&subs, &taken); err != nil {
		return classify(err)
	}
	switch {
	case subs == 0:
		return fmt.Errorf("%w: no submission %s to review", storage.ErrNotFound, r.Submission)
	case taken > 0:
		// Refused here, not by the trigger, so it is a conflict.
		return fmt.Errorf("%w: a review of audit index %d is stored", storage.ErrConflict, r.AuditIndex)
	}
	_, err = t.exec(`INSERT INTO reviews(`+reviewCols+`) VALUES(?, ?, ?, ?, ?, ?, ?)`,
		r.AuditIndex, r.Submission, r.Status, r.Reason, r.Note, r.Reviewer, fmtTime(r.At))
	return err
}

func (t *txn) Reviews(submission string) ([]storage.Review, error) {
	rows, err := t.query(`SELECT `+reviewCols+` FROM reviews WHERE submission = ? ORDER BY audit_index`, submission)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.Review
	for rows.Next() {
		var r storage.Review
		var at string
		if err := rows.Scan(&r.AuditIndex, &r.Submission, &r.Status, &r.Reason, &r.Note, &r.Reviewer, &at); err != nil {
			return nil, classify(err)
		}
		if r.At, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("review %d of submission %s: %w", r.AuditIndex, submission, err)
		}
		out = append(out, r)
	}
	return out, classify(rows.Err())
}
