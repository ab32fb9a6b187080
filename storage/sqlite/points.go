package sqlite

import (
	"errors"
	"fmt"

	"github.com/censusvault/censusvault/storage"
)

const pointCols = `seq, name, as_of, created_at, created_by, audit_index, state, scheduled`

// scanPoint reads one release_points row of pointCols.
func scanPoint(scan func(...any) error) (*storage.ReleasePoint, error) {
	var p storage.ReleasePoint
	var created string
	if err := scan(&p.Seq, &p.Name, &p.AsOf, &created, &p.CreatedBy, &p.AuditIndex, &p.State, &p.Scheduled); err != nil {
		return nil, scanErr(err)
	}
	var err error
	if p.CreatedAt, err = parseTime(created); err != nil {
		return nil, err
	}
	return &p, nil
}

func (t *txn) ReleasePoint(name string) (*storage.ReleasePoint, error) {
	row, err := t.queryRow(`SELECT `+pointCols+` FROM release_points WHERE name = ?`, name)
	if err != nil {
		return nil, err
	}
	p, err := scanPoint(row.Scan)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no publication point %q", storage.ErrNotFound, name)
	}
	return p, err
}

func (t *txn) LatestReleasePoint() (*storage.ReleasePoint, error) {
	row, err := t.queryRow(`SELECT ` + pointCols + ` FROM release_points WHERE scheduled = 0 ORDER BY seq DESC LIMIT 1`)
	if err != nil {
		return nil, err
	}
	p, err := scanPoint(row.Scan)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no publication point yet", storage.ErrNotFound)
	}
	return p, err
}

func (t *txn) ReleasePoints(fn func(storage.ReleasePoint) (bool, error)) error {
	return feedAll(t, `SELECT `+pointCols+` FROM release_points ORDER BY seq`, scanPoint, fn)
}

func (t *txn) InsertReleasePoint(p *storage.ReleasePoint) error {
	switch {
	case p.Name == "":
		return errors.New("sqlite: InsertReleasePoint with no name")
	case len(p.State) == 0:
		return fmt.Errorf("sqlite: publication point %q has an empty state", p.Name)
	case p.CreatedAt.IsZero():
		return fmt.Errorf("sqlite: publication point %q has a zero creation time", p.Name)
	}
	// Looked up first: a stored name is refused by a trigger (which
	// keeps INSERT OR REPLACE out), not as a uniqueness conflict.
	if _, err := t.ReleasePoint(p.Name); err == nil {
		return fmt.Errorf("%w: publication point %q exists", storage.ErrConflict, p.Name)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	// Writes are serialized (one writer connection), so no other
	// transaction can take the same seq between the max and the insert.
	row, err := t.queryRow(`INSERT INTO release_points(`+pointCols+`)
		SELECT coalesce(max(seq), 0) + 1, ?, ?, ?, ?, ?, ?, ? FROM release_points
		RETURNING seq`,
		p.Name, p.AsOf, fmtTime(p.CreatedAt), p.CreatedBy, p.AuditIndex, p.State, p.Scheduled)
	if err != nil {
		return err
	}
	var seq int64
	if err := row.Scan(&seq); err != nil {
		return fmt.Errorf("publication point %q: %w", p.Name, classify(err))
	}
	p.Seq = seq
	return nil
}
