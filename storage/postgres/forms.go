package postgres

import (
	"errors"
	"fmt"

	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/jackc/pgx/v5"
)

// Forms an administrator added (migration 11). Their guard is the
// migration's trigger; PutForm announces storage.TopicForms.

const formCols = `name, version, sha256, definition, added_at, added_by, audit_index, confirmed_by, confirmed_at`

func (t *reader) scanForm(row pgx.Row) (*storage.Form, error) {
	var f storage.Form
	var added, confirmed string
	if err := row.Scan(&f.Name, &f.Version, &f.SHA256, &f.Definition, &added, &f.AddedBy, &f.AuditIndex, &f.ConfirmedBy, &confirmed); err != nil {
		return nil, t.fail(err)
	}
	if err := parseTimes([]*time.Time{&f.AddedAt, &f.ConfirmedAt}, added, confirmed); err != nil {
		return nil, err
	}
	return &f, nil
}

const formProposalCols = `name, version, sha256, definition, proposed_at, proposed_by, audit_index`

func (t *reader) scanFormProposal(row pgx.Row) (*storage.FormProposal, error) {
	var p storage.FormProposal
	var at string
	if err := row.Scan(&p.Name, &p.Version, &p.SHA256, &p.Definition, &at, &p.ProposedBy, &p.AuditIndex); err != nil {
		return nil, t.fail(err)
	}
	var err error
	if p.ProposedAt, err = parseTime(at); err != nil {
		return nil, err
	}
	return &p, nil
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
	if _, err := t.exec(`INSERT INTO forms(`+formCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (name, version) DO UPDATE SET sha256 = EXCLUDED.sha256, definition = EXCLUDED.definition,
			added_at = EXCLUDED.added_at, added_by = EXCLUDED.added_by, audit_index = EXCLUDED.audit_index,
			confirmed_by = EXCLUDED.confirmed_by, confirmed_at = EXCLUDED.confirmed_at`,
		f.Name, f.Version, f.SHA256, f.Definition, fmtTime(f.AddedAt), f.AddedBy, f.AuditIndex, f.ConfirmedBy, fmtTime(f.ConfirmedAt)); err != nil {
		return fmt.Errorf("form %s version %d: %w", f.Name, f.Version, err)
	}
	t.notify(storage.TopicForms)
	return nil
}

func (t *reader) FormProposal(name string, version int) (*storage.FormProposal, error) {
	p, err := t.scanFormProposal(t.c.QueryRow(t.ctx, `SELECT `+formProposalCols+` FROM form_proposals WHERE name = $1 AND version = $2`, name, version))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no proposal of form %s version %d", storage.ErrNotFound, name, version)
	}
	return p, err
}

func (t *reader) FormProposals(fn func(storage.FormProposal) (bool, error)) error {
	return feedAll(t, `SELECT `+formProposalCols+` FROM form_proposals ORDER BY name, version`, t.scanFormProposal, fn)
}

func (t *writer) ProposeForm(p *storage.FormProposal) error {
	if err := storage.CheckFormProposal("postgres", p); err != nil {
		return err
	}
	used, err := t.FormInUse(p.Name, p.Version)
	if err != nil {
		return err
	}
	if used {
		return fmt.Errorf("%w: form %s version %d", storage.ErrFormInUse, p.Name, p.Version)
	}
	if _, err := t.exec(`INSERT INTO form_proposals(`+formProposalCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (name, version) DO UPDATE SET sha256 = EXCLUDED.sha256, definition = EXCLUDED.definition,
			proposed_at = EXCLUDED.proposed_at, proposed_by = EXCLUDED.proposed_by, audit_index = EXCLUDED.audit_index`,
		p.Name, p.Version, p.SHA256, p.Definition, fmtTime(p.ProposedAt), p.ProposedBy, p.AuditIndex); err != nil {
		return fmt.Errorf("proposal of form %s version %d: %w", p.Name, p.Version, err)
	}
	return nil
}

func (t *writer) DropFormProposal(name string, version int, sha string) error {
	cur, err := t.FormProposal(name, version)
	if err != nil {
		return err
	}
	if cur.SHA256 != sha {
		return fmt.Errorf("%w: the proposal of form %s version %d is another definition now", storage.ErrConflict, name, version)
	}
	_, err = t.exec(`DELETE FROM form_proposals WHERE name = $1 AND version = $2`, name, version)
	return err
}
