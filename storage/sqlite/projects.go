package sqlite

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/internal/feed"
)

const projectCols = `id, title, purpose, areas, variables, expires_at, budget, spent, created_at, closed_at`

// scanProject reads one projects row of projectCols.
func scanProject(scan func(...any) error) (*storage.Project, error) {
	var p storage.Project
	var areas, vars, expires, created, closed string
	if err := scan(&p.ID, &p.Title, &p.Purpose, &areas, &vars, &expires, &p.Budget, &p.Spent, &created, &closed); err != nil {
		return nil, scanErr(err)
	}
	var err error
	if p.Areas, err = decodeList(areas); err != nil {
		return nil, fmt.Errorf("sqlite: project %s areas: %w", p.ID, err)
	}
	if p.Variables, err = decodeList(vars); err != nil {
		return nil, fmt.Errorf("sqlite: project %s variables: %w", p.ID, err)
	}
	for _, f := range []struct {
		dst *time.Time
		src string
	}{{&p.Expires, expires}, {&p.CreatedAt, created}, {&p.ClosedAt, closed}} {
		if *f.dst, err = parseTime(f.src); err != nil {
			return nil, err
		}
	}
	return &p, nil
}

func encodeList(l []string) (string, error) {
	if l == nil {
		l = []string{}
	}
	b, err := json.Marshal(l)
	return string(b), err
}

// decodeList reads a JSON array of strings; an empty one is nil, as it
// was most likely written.
func decodeList(s string) ([]string, error) {
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, err
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

func (t *txn) Project(id string) (*storage.Project, error) {
	row, err := t.queryRow(`SELECT `+projectCols+` FROM projects WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	return scanProject(row.Scan)
}

func (t *txn) Projects(fn func(storage.Project) (bool, error)) error {
	return feedAll(t, `SELECT `+projectCols+` FROM projects ORDER BY id`, scanProject, fn)
}

// feedAll reads every row of q (with args) with scan, then calls fn with
// each until it returns false or an error: fn runs with no query open, so
// it may use the transaction.
func feedAll[T any](t *txn, q string, scan func(func(...any) error) (*T, error), fn func(T) (bool, error), args ...any) error {
	rows, err := t.query(q, args...)
	if err != nil {
		return err
	}
	var all []T
	for rows.Next() {
		v, err := scan(rows.Scan)
		if err != nil {
			rows.Close()
			return err
		}
		all = append(all, *v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return classify(err)
	}
	_, err = feed.Each(all, fn)
	return err
}

func (t *txn) InsertProject(p *storage.Project) error {
	if p.Budget <= 0 || p.Spent != 0 {
		return fmt.Errorf("sqlite: project %s: a new project needs a positive budget and nothing spent", p.ID)
	}
	areas, err := encodeList(p.Areas)
	if err != nil {
		return err
	}
	vars, err := encodeList(p.Variables)
	if err != nil {
		return err
	}
	_, err = t.exec(`INSERT INTO projects(`+projectCols+`) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.Title, p.Purpose, areas, vars, fmtTime(p.Expires), p.Budget, p.Spent, fmtTime(p.CreatedAt), fmtTime(p.ClosedAt))
	if err != nil {
		return fmt.Errorf("project %q: %w", p.ID, err)
	}
	return nil
}

func (t *txn) CloseProject(id string, at time.Time) error {
	if at.IsZero() {
		return errors.New("sqlite: close with a zero time (a zero ClosedAt means open)")
	}
	res, err := t.exec(`UPDATE projects SET closed_at = ? WHERE id = ? AND closed_at = ''`, fmtTime(at), id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := t.Project(id); err != nil {
			return err // ErrNotFound for an unknown id
		}
		return fmt.Errorf("%w: project %s is already closed", storage.ErrConflict, id)
	}
	return nil
}

func (t *txn) DebitProject(id string, cells int64) (int64, error) {
	if cells < 0 {
		return 0, fmt.Errorf("sqlite: debit of %d cells", cells)
	}
	// budget - spent cannot overflow (0 <= spent <= budget); spent + cells
	// could.
	row, err := t.queryRow(`UPDATE projects SET spent = spent + ?1
		WHERE id = ?2 AND ?1 <= budget - spent
		RETURNING budget - spent`, cells, id)
	if err != nil {
		return 0, err
	}
	var remaining int64
	err = row.Scan(&remaining)
	if errors.Is(err, sql.ErrNoRows) {
		p, err := t.Project(id)
		if err != nil {
			return 0, err // ErrNotFound for an unknown id
		}
		return 0, fmt.Errorf("%w: project %s has %d of %d cells left, the request needs %d",
			storage.ErrBudgetExhausted, id, p.Budget-p.Spent, p.Budget, cells)
	}
	if err != nil {
		return 0, classify(err)
	}
	return remaining, nil
}
