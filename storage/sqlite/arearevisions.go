package sqlite

import (
	"fmt"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/internal/revcheck"
)

// schemaV12AreaRevisions adds the revisions of the area tree
// (storage.AreaRevision): append-only and numbered 1, 2, … without a
// gap. The triggers refuse every UPDATE and DELETE, an INSERT over a
// stored number (INSERT OR REPLACE would otherwise delete it without a
// trigger) and an INSERT of any number but the next; the CHECKs hold what
// AppendAreaRevision promises against a statement that skipped it (the
// SHA-256 itself is checked by the store: SQLite has no hash).
const schemaV12AreaRevisions = `
CREATE TABLE area_revisions (
	number      INTEGER PRIMARY KEY CHECK (typeof(number) = 'integer' AND number > 0),
	at          TEXT NOT NULL CHECK (length(at) > 0),
	audit_index INTEGER NOT NULL CHECK (audit_index >= 0),
	document    BLOB NOT NULL CHECK (length(document) > 0),
	sha256      TEXT NOT NULL CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*')
);
CREATE TRIGGER area_revisions_next_only BEFORE INSERT ON area_revisions
	WHEN NEW.number IS NOT (SELECT coalesce(max(number), 0) + 1 FROM area_revisions)
	BEGIN SELECT RAISE(ABORT, 'area_revisions is append-only: a revision takes the next number and is never replaced'); END;
CREATE TRIGGER area_revisions_no_update BEFORE UPDATE ON area_revisions
	BEGIN SELECT RAISE(ABORT, 'area_revisions is append-only: a stored revision cannot be changed'); END;
CREATE TRIGGER area_revisions_no_delete BEFORE DELETE ON area_revisions
	BEGIN SELECT RAISE(ABORT, 'area_revisions is append-only: a stored revision cannot be deleted'); END;
`

const areaRevisionCols = `number, at, audit_index, document, sha256`

func scanAreaRevision(scan func(...any) error) (*storage.AreaRevision, error) {
	var r storage.AreaRevision
	var at string
	if err := scan(&r.Number, &at, &r.AuditIndex, &r.Document, &r.SHA256); err != nil {
		return nil, scanErr(err)
	}
	var err error
	if r.At, err = parseTime(at); err != nil {
		return nil, fmt.Errorf("area revision %d: %w", r.Number, err)
	}
	return &r, nil
}

func (t *txn) AreaRevisions(after int64, fn func(storage.AreaRevision) (bool, error)) error {
	return feedAll(t, `SELECT `+areaRevisionCols+` FROM area_revisions WHERE number > ? ORDER BY number`, scanAreaRevision, fn, after)
}

func (t *txn) HouseholdsIn(area string, from, to int64) (int64, error) {
	// A range of submissions_current (area, household_no), the partial
	// index of current submissions.
	row, err := t.queryRow(`SELECT count(*) FROM submissions INDEXED BY submissions_current
		WHERE area = ? AND household_no BETWEEN ? AND ? AND superseded_by IS NULL`, area, from, to)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := row.Scan(&n); err != nil {
		return 0, classify(err)
	}
	return n, nil
}

func (t *txn) AppendAreaRevision(r *storage.AreaRevision) error {
	if err := revcheck.Check(r); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	// Writes are serialized (one writer connection): the max read here
	// is the one the insert follows.
	row, err := t.queryRow(`SELECT coalesce(max(number), 0) FROM area_revisions`)
	if err != nil {
		return err
	}
	var last int64
	if err := row.Scan(&last); err != nil {
		return classify(err)
	}
	if r.Number != last+1 {
		return fmt.Errorf("%w: area revision %d follows revision %d", storage.ErrConflict, r.Number, last)
	}
	_, err = t.exec(`INSERT INTO area_revisions(`+areaRevisionCols+`) VALUES (?, ?, ?, ?, ?)`,
		r.Number, fmtTime(r.At), r.AuditIndex, r.Document, r.SHA256)
	return err
}
