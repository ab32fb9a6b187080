package postgres

import (
	"errors"
	"fmt"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/jackc/pgx/v5"
)

const pointCols = `seq, name, as_of, created_at, created_by, audit_index, state, scheduled`

func (t *reader) scanPoint(row pgx.Row) (*storage.ReleasePoint, error) {
	var p storage.ReleasePoint
	var created string
	if err := row.Scan(&p.Seq, &p.Name, &p.AsOf, &created, &p.CreatedBy, &p.AuditIndex, &p.State, &p.Scheduled); err != nil {
		return nil, t.fail(err)
	}
	if err := parseTimes([]*time.Time{&p.CreatedAt}, created); err != nil {
		return nil, err
	}
	return &p, nil
}

func (t *reader) ReleasePoint(name string) (*storage.ReleasePoint, error) {
	p, err := t.scanPoint(t.c.QueryRow(t.ctx, `SELECT `+pointCols+` FROM release_points WHERE name = $1`, name))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no publication point %q", storage.ErrNotFound, name)
	}
	return p, err
}

func (t *reader) LatestReleasePoint() (*storage.ReleasePoint, error) {
	p, err := t.scanPoint(t.c.QueryRow(t.ctx, `SELECT `+pointCols+` FROM release_points WHERE NOT scheduled ORDER BY seq DESC LIMIT 1`))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no publication point yet", storage.ErrNotFound)
	}
	return p, err
}

func (t *reader) ReleasePoints(fn func(storage.ReleasePoint) (bool, error)) error {
	return feedAll(t, `SELECT `+pointCols+` FROM release_points ORDER BY seq`, t.scanPoint, fn)
}

func (t *writer) InsertReleasePoint(p *storage.ReleasePoint) error {
	switch {
	case p.Name == "":
		return errors.New("postgres: InsertReleasePoint with no name")
	case len(p.State) == 0:
		return fmt.Errorf("postgres: publication point %q has an empty state", p.Name)
	case p.CreatedAt.IsZero():
		return fmt.Errorf("postgres: publication point %q has a zero creation time", p.Name)
	}
	// The batch holds the audit head's lock, which every writer takes
	// first, so no other instance can take the same seq between the max
	// and the insert. Only a stored name is caught as a conflict here,
	// without aborting the savepoint; a stored seq cannot happen and
	// would fail loudly as a unique violation.
	var seq int64
	err := t.c.QueryRow(t.ctx, `INSERT INTO release_points(`+pointCols+`)
		SELECT coalesce(max(seq), 0) + 1, $1, $2, $3, $4, $5, $6, $7 FROM release_points
		ON CONFLICT (name) DO NOTHING
		RETURNING seq`,
		p.Name, p.AsOf, fmtTime(p.CreatedAt), p.CreatedBy, p.AuditIndex, p.State, p.Scheduled).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: publication point %q exists", storage.ErrConflict, p.Name)
	}
	if err != nil {
		return fmt.Errorf("publication point %q: %w", p.Name, t.fail(err))
	}
	p.Seq = seq
	return nil
}
