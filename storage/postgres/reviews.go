package postgres

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/internal/feed"
)

// listQueries are ListSubmissions' statements, without and with a
// filter by commune. Like SubmissionsSince's, a page is a range of
// submissions_audit_index ordered by (audit_index, id), the keyset that
// resumes after the last row read (on the first page the last id is
// NULL, which makes it audit_index > After). The depositor and current
// filters are written so that an unused one is true for every row; the
// communes are one text[] parameter, however many there are. Only the
// columns of storage.SubmissionMeta are named: neither a sealed part,
// nor the operational fields, nor the receipt is read.
var listQueries = [2]string{listQuery(""), listQuery(`
		AND commune = ANY($6::text[])`)}

func listQuery(byCommune string) string {
	return `SELECT id, area, commune, household_no, form, form_version, interviewed_at, received_at,
		depositor, supersedes, superseded_by, audit_index
	FROM submissions
	WHERE audit_index >= $1 AND (audit_index > $1 OR id > $2::text)
		AND ($3::text = '' OR depositor = $3::text)
		AND (NOT $4::boolean OR superseded_by IS NULL)` + byCommune + `
	ORDER BY audit_index, id
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
			var supersededBy *string
			if err := rows.Scan(&m.ID, &m.Area, &m.Commune, &m.HouseholdNo, &m.Form, &m.FormVersion,
				&interviewed, &received, &m.Depositor, &m.Supersedes, &supersededBy, &m.AuditIndex); err != nil {
				rows.Close()
				return t.fail(err)
			}
			if err := parseTimes([]*time.Time{&m.InterviewedAt, &m.ReceivedAt}, interviewed, received); err != nil {
				rows.Close()
				return fmt.Errorf("submission %s: %w", m.ID, err)
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

// minNanos and maxNanos are the instants Unix nanoseconds can hold.
var (
	minNanos = time.Unix(0, math.MinInt64)
	maxNanos = time.Unix(0, math.MaxInt64)
)

// boundNanos is t in Unix nanoseconds, a time before or after what they
// can hold (the zero time, say) taken as the first or last of them: as
// a bound, it compares the same way with every stored time.
func boundNanos(t time.Time) int64 {
	switch {
	case t.Before(minNanos):
		return math.MinInt64
	case t.After(maxNanos):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func (t *writer) RecordOpen(user, submission string, at time.Time) error {
	switch {
	case user == "" || submission == "":
		return errors.New("postgres: RecordOpen needs a user and a submission")
	case at.IsZero():
		return fmt.Errorf("postgres: open of submission %s by %s with a zero time", submission, user)
	case !at.After(minNanos) || !at.Before(maxNanos):
		// Strictly inside, so that a bound boundNanos clamped compares
		// with every stored time as the instant it stands for.
		return fmt.Errorf("postgres: open of submission %s by %s at %v, outside the years 1678 to 2262 the store can hold", submission, user, at)
	}
	_, err := t.exec(`INSERT INTO record_opens(user_name, submission, at) VALUES ($1, $2, $3)`, user, submission, at.UnixNano())
	return err
}

// opensSinceQuery is OpensSince's statement: a range of
// record_opens_user_at.
const opensSinceQuery = `SELECT count(*) FROM record_opens WHERE user_name = $1 AND at >= $2`

func (t *reader) OpensSince(user string, since time.Time) (int64, error) {
	var n int64
	err := t.c.QueryRow(t.ctx, opensSinceQuery, user, boundNanos(since)).Scan(&n)
	if err != nil {
		return 0, t.fail(err)
	}
	return n, nil
}

func (t *writer) PruneOpens(before time.Time) (int64, error) {
	tag, err := t.exec(`DELETE FROM record_opens WHERE at < $1`, boundNanos(before))
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
