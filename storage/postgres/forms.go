package postgres

import (
	"errors"
	"fmt"

	"github.com/censusvault/censusvault/storage"
	"github.com/jackc/pgx/v5"
)

// Forms an administrator added (migration 11). Their guard is the
// migration's trigger; PutForm announces storage.TopicForms.

const formCols = `name, version, sha256, definition, added_at, added_by, audit_index`

func (t *reader) scanForm(row pgx.Row) (*storage.Form, error) {
	var f storage.Form
	var added string
	if err := row.Scan(&f.Name, &f.Version, &f.SHA256, &f.Definition, &added, &f.AddedBy, &f.AuditIndex); err != nil {
		return nil, t.fail(err)
	}
	var err error
	if f.AddedAt, err = parseTime(added); err != nil {
		return nil, err
	}
	return &f, nil
}

func (t *reader) Form(name string, version int) (*storage.Form, error) {
	f, err := t.scanForm(t.c.QueryRow(t.ctx, `SELECT `+formCols+` FROM forms WHERE name = $1 AND version = $2`, name, version))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no form %s version %d", storage.ErrNotFound, name, version)
	}
	return f, err
}

func (t *reader) FormSHA256(name string, version int) (string, error) {
	var sum string
	err := t.fail(t.c.QueryRow(t.ctx, `SELECT sha256 FROM forms WHERE name = $1 AND version = $2`, name, version).Scan(&sum))
	if errors.Is(err, storage.ErrNotFound) {
		return "", fmt.Errorf("%w: no form %s version %d", storage.ErrNotFound, name, version)
	}
	return sum, err
}

func (t *reader) Forms(fn func(storage.Form) (bool, error)) error {
	return feedAll(t, `SELECT `+formCols+` FROM forms ORDER BY name, version`, t.scanForm, fn)
}

func (t *reader) FormInUse(name string, version int) (bool, error) {
	var used bool
	err := t.c.QueryRow(t.ctx, `SELECT EXISTS (SELECT 1 FROM submissions WHERE form = $1 AND form_version = $2)`, name, version).Scan(&used)
	return used, t.fail(err)
}

func (t *writer) PutForm(f *storage.Form) error {
	if err := storage.CheckForm("postgres", f); err != nil {
		return err
	}
	// Checked first, so that a version in use is an ErrFormInUse that
	// leaves the savepoint usable rather than the trigger's exception.
	// Writers are serialized (the audit head's lock): nothing commits a
	// submission between the look and the write.
	used, err := t.FormInUse(f.Name, f.Version)
	if err != nil {
		return err
	}
	if used {
		return fmt.Errorf("%w: form %s version %d", storage.ErrFormInUse, f.Name, f.Version)
	}
	if _, err := t.exec(`INSERT INTO forms(`+formCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (name, version) DO UPDATE SET sha256 = EXCLUDED.sha256, definition = EXCLUDED.definition,
			added_at = EXCLUDED.added_at, added_by = EXCLUDED.added_by, audit_index = EXCLUDED.audit_index`,
		f.Name, f.Version, f.SHA256, f.Definition, fmtTime(f.AddedAt), f.AddedBy, f.AuditIndex); err != nil {
		return fmt.Errorf("form %s version %d: %w", f.Name, f.Version, err)
	}
	t.notify(storage.TopicForms)
	return nil
}
