package postgres

import (
	"errors"
	"fmt"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/internal/feed"
	"github.com/jackc/pgx/v5"
)

const projectCols = `id, title, purpose, areas, variables, expires_at, budget, spent, created_at, closed_at`

func (t *reader) scanProject(row pgx.Row) (*storage.Project, error) {
	var p storage.Project
	var expires, created, closed string
	if err := row.Scan(&p.ID, &p.Title, &p.Purpose, &p.Areas, &p.Variables, &expires, &p.Budget, &p.Spent, &created, &closed); err != nil {
		return nil, t.fail(err)
	}
	if err := parseTimes([]*time.Time{&p.Expires, &p.CreatedAt, &p.ClosedAt}, expires, created, closed); err != nil {
		return nil, err
	}
	// An empty list reads as nil, as it was most likely written.
	if len(p.Areas) == 0 {
		p.Areas = nil
	}
	if len(p.Variables) == 0 {
		p.Variables = nil
	}
	return &p, nil
}

func (t *reader) Project(id string) (*storage.Project, error) {
	return t.scanProject(t.c.QueryRow(t.ctx, `SELECT `+projectCols+` FROM projects WHERE id = $1`, id))
}

func (t *reader) Projects(fn func(storage.Project) (bool, error)) error {
	return feedAll(t, `SELECT `+projectCols+` FROM projects ORDER BY id`, t.scanProject, fn)
}

// feedAll reads every row of q (with args) with scan, then calls fn with
// each until it returns false or an error: fn runs with no query open, so
// it may use the connection.
func feedAll[T any](t *reader, q string, scan func(pgx.Row) (*T, error), fn func(T) (bool, error), args ...any) error {
	rows, err := t.c.Query(t.ctx, q, args...)
	if err != nil {
		return t.fail(err)
	}
	var all []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			rows.Close()
			return err
		}
		all = append(all, *v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return t.fail(err)
	}
	_, err = feed.Each(all, fn)
	return err
}

func orEmpty(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func (t *writer) InsertProject(p *storage.Project) error {
	if p.Budget <= 0 || p.Spent != 0 {
		return fmt.Errorf("postgres: project %s: a new project needs a positive budget and nothing spent", p.ID)
	}
	return t.insert("project "+p.ID,
		`INSERT INTO projects(`+projectCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT DO NOTHING`,
		p.ID, p.Title, p.Purpose, orEmpty(p.Areas), orEmpty(p.Variables), fmtTime(p.Expires), p.Budget, p.Spent,
		fmtTime(p.CreatedAt), fmtTime(p.ClosedAt))
}

func (t *writer) CloseProject(id string, at time.Time) error {
	if at.IsZero() {
		return errors.New("postgres: close with a zero time (a zero ClosedAt means open)")
	}
	tag, err := t.exec(`UPDATE projects SET closed_at = $1 WHERE id = $2 AND closed_at = ''`, fmtTime(at), id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		if _, err := t.Project(id); err != nil {
			return err // ErrNotFound for an unknown id
		}
		return fmt.Errorf("%w: project %s is already closed", storage.ErrConflict, id)
	}
	return nil
}

func (t *writer) DebitProject(id string, cells int64) (int64, error) {
	if cells < 0 {
		return 0, fmt.Errorf("postgres: debit of %d cells", cells)
	}
	// The guard is in the UPDATE itself, under the row lock it takes, so
	// two instances debiting together cannot both pass it. budget - spent
	// cannot overflow (0 <= spent <= budget); spent + cells could.
	var remaining int64
	err := t.c.QueryRow(t.ctx, `UPDATE projects SET spent = spent + $1
		WHERE id = $2 AND $1 <= budget - spent
		RETURNING budget - spent`, cells, id).Scan(&remaining)
	if errors.Is(err, pgx.ErrNoRows) {
		p, err := t.Project(id)
		if err != nil {
			return 0, err // ErrNotFound for an unknown id
		}
		return 0, fmt.Errorf("%w: project %s has %d of %d cells left, the request needs %d",
			storage.ErrBudgetExhausted, id, p.Budget-p.Spent, p.Budget, cells)
	}
	if err != nil {
		return 0, t.fail(err)
	}
	return remaining, nil
}
