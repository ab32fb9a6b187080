package postgres

import (
	"fmt"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/internal/revcheck"
	"github.com/jackc/pgx/v5"
)

// Revisions of the area tree (migration 12). Their guard is the
// migration's triggers; AppendAreaRevision announces storage.TopicMeta.

const areaRevisionCols = `number, at, audit_index, document, sha256`

func (t *reader) scanAreaRevision(row pgx.Row) (*storage.AreaRevision, error) {
	var r storage.AreaRevision
	var at string
	if err := row.Scan(&r.Number, &at, &r.AuditIndex, &r.Document, &r.SHA256); err != nil {
		return nil, t.fail(err)
	}
	var err error
	if r.At, err = parseTime(at); err != nil {
		return nil, fmt.Errorf("area revision %d: %w", r.Number, err)
	}
	return &r, nil
}

func (t *reader) AreaRevisions(after int64, fn func(storage.AreaRevision) (bool, error)) error {
	return feedAll(t, `SELECT `+areaRevisionCols+` FROM area_revisions WHERE number > $1 ORDER BY number`, t.scanAreaRevision, fn, after)
}

func (t *reader) HouseholdsIn(area string, from, to int64) (int64, error) {
	// A range of submissions_current (area, household_no), the partial
	// index of current submissions.
	var n int64
	err := t.c.QueryRow(t.ctx, `SELECT count(*) FROM submissions
		WHERE area = $1 AND household_no BETWEEN $2 AND $3 AND superseded_by IS NULL`, area, from, to).Scan(&n)
	return n, t.fail(err)
}

func (t *writer) AppendAreaRevision(r *storage.AreaRevision) error {
	if err := revcheck.Check(r); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	// Checked first, so that a revision out of turn is an ErrConflict
	// that leaves the savepoint usable rather than the trigger's
	// exception. The batch holds the audit head's lock, which every
	// writer takes first: nothing stores a revision between the look
	// and the insert.
	var last int64
	if err := t.c.QueryRow(t.ctx, `SELECT coalesce(max(number), 0) FROM area_revisions`).Scan(&last); err != nil {
		return t.fail(err)
	}
	if r.Number != last+1 {
		return fmt.Errorf("%w: area revision %d follows revision %d", storage.ErrConflict, r.Number, last)
	}
	if _, err := t.exec(`INSERT INTO area_revisions(`+areaRevisionCols+`) VALUES ($1, $2, $3, $4, $5)`,
		r.Number, fmtTime(r.At), r.AuditIndex, r.Document, r.SHA256); err != nil {
		return fmt.Errorf("area revision %d: %w", r.Number, err)
	}
	t.notify(storage.TopicMeta)
	return nil
}
