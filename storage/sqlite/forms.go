package sqlite

import (
	"errors"
	"fmt"

	"github.com/censusvault/censusvault/storage"
)

// schemaV11Forms adds the forms an administrator added (storage.Form):
//   - forms holds one definition per (name, version). A version may be
//     stored or replaced (UPDATE) only while no submission of that form
//     and version exists; triggers refuse the UPDATE of a version in use,
//     one that would change its (name, version), every DELETE, an INSERT
//     of a version in use (a form built into the binary, say) and an
//     INSERT over a stored (name, version), which INSERT OR REPLACE would
//     otherwise turn into a delete that fires no trigger;
//   - submissions_form indexes submissions by (form, form_version), so
//     "is this version used" is one index lookup. Building it reads every
//     stored submission once: the one slow step of this upgrade on a
//     large vault (about a minute for a national census);
//   - form_proposals holds the versions administrators proposed over the
//     API and no approver confirmed yet, one per (name, version): no part
//     of the registry, replaced by a newer proposal of the same version,
//     removed when confirmed (the form is then in forms).
//
// The CHECKs hold what PutForm promises against a statement that skipped
// it (the SHA-256 itself is checked by the store, SQLite has no hash).
const schemaV11Forms = `
CREATE TABLE forms (
	name         TEXT NOT NULL CHECK (length(name) > 0),
	version      INTEGER NOT NULL CHECK (typeof(version) = 'integer' AND version > 0),
	sha256       TEXT NOT NULL CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
	definition   BLOB NOT NULL CHECK (length(definition) > 0),
	added_at     TEXT NOT NULL CHECK (length(added_at) > 0),
	added_by     TEXT NOT NULL CHECK (length(added_by) > 0),
	audit_index  INTEGER NOT NULL CHECK (audit_index >= 0),
	confirmed_by TEXT NOT NULL DEFAULT '',
	confirmed_at TEXT NOT NULL DEFAULT '' CHECK ((confirmed_at = '') = (confirmed_by = '')),
	PRIMARY KEY (name, version)
) WITHOUT ROWID;
CREATE TABLE form_proposals (
	name        TEXT NOT NULL CHECK (length(name) > 0),
	version     INTEGER NOT NULL CHECK (typeof(version) = 'integer' AND version > 0),
	sha256      TEXT NOT NULL CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
	definition  BLOB NOT NULL CHECK (length(definition) > 0),
	proposed_at TEXT NOT NULL CHECK (length(proposed_at) > 0),
	proposed_by TEXT NOT NULL CHECK (length(proposed_by) > 0),
	audit_index INTEGER NOT NULL CHECK (audit_index >= 0),
	PRIMARY KEY (name, version)
) WITHOUT ROWID;
CREATE INDEX submissions_form ON submissions(form, form_version);
CREATE TRIGGER forms_no_replace BEFORE INSERT ON forms
	WHEN EXISTS (SELECT 1 FROM forms WHERE name = NEW.name AND version = NEW.version)
		OR EXISTS (SELECT 1 FROM submissions WHERE form = NEW.name AND form_version = NEW.version)
	BEGIN SELECT RAISE(ABORT, 'forms: a stored form version is replaced by UPDATE, never by INSERT, and a version a submission uses is never defined anew'); END;
CREATE TRIGGER forms_unused_only BEFORE UPDATE ON forms
	WHEN NEW.name IS NOT OLD.name OR NEW.version IS NOT OLD.version
		OR EXISTS (SELECT 1 FROM submissions WHERE form = OLD.name AND form_version = OLD.version)
	BEGIN SELECT RAISE(ABORT, 'forms: a form version a submission uses never changes'); END;
CREATE TRIGGER forms_no_delete BEFORE DELETE ON forms
	BEGIN SELECT RAISE(ABORT, 'forms: a stored form version cannot be deleted'); END;
`

const formCols = `name, version, sha256, definition, added_at, added_by, audit_index, confirmed_by, confirmed_at`

// scanForm reads one forms row of formCols.
func scanForm(scan func(...any) error) (*storage.Form, error) {
	var f storage.Form
	var added, confirmed string
	if err := scan(&f.Name, &f.Version, &f.SHA256, &f.Definition, &added, &f.AddedBy, &f.AuditIndex, &f.ConfirmedBy, &confirmed); err != nil {
		return nil, scanErr(err)
	}
	var err error
	if f.AddedAt, err = parseTime(added); err != nil {
		return nil, err
	}
	if f.ConfirmedAt, err = parseTime(confirmed); err != nil {
		return nil, err
	}
	return &f, nil
}

const formProposalCols = `name, version, sha256, definition, proposed_at, proposed_by, audit_index`

// scanFormProposal reads one form_proposals row of formProposalCols.
func scanFormProposal(scan func(...any) error) (*storage.FormProposal, error) {
	var p storage.FormProposal
	var at string
	if err := scan(&p.Name, &p.Version, &p.SHA256, &p.Definition, &at, &p.ProposedBy, &p.AuditIndex); err != nil {
		return nil, scanErr(err)
	}
	var err error
	if p.ProposedAt, err = parseTime(at); err != nil {
		return nil, err
	}
	return &p, nil
}

func (t *txn) Form(name string, version int) (*storage.Form, error) {
	row, err := t.queryRow(`SELECT `+formCols+` FROM forms WHERE name = ? AND version = ?`, name, version)
	if err != nil {
		return nil, err
	}
	f, err := scanForm(row.Scan)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no form %s version %d", storage.ErrNotFound, name, version)
	}
	return f, err
}

func (t *txn) FormSHA256(name string, version int) (string, error) {
	row, err := t.queryRow(`SELECT sha256 FROM forms WHERE name = ? AND version = ?`, name, version)
	if err != nil {
		return "", err
	}
	var sum string
	if err := row.Scan(&sum); err != nil {
		if err = scanErr(err); errors.Is(err, storage.ErrNotFound) {
			return "", fmt.Errorf("%w: no form %s version %d", storage.ErrNotFound, name, version)
		}
		return "", err
	}
	return sum, nil
}

func (t *txn) Forms(fn func(storage.Form) (bool, error)) error {
	return feedAll(t, `SELECT `+formCols+` FROM forms ORDER BY name, version`, scanForm, fn)
}

// formInUseQuery is FormInUse's statement: a search of submissions_form.
const formInUseQuery = `SELECT EXISTS (SELECT 1 FROM submissions WHERE form = ? AND form_version = ?)`

func (t *txn) FormInUse(name string, version int) (bool, error) {
	row, err := t.queryRow(formInUseQuery, name, version)
	if err != nil {
		return false, err
	}
	var used bool
	if err := row.Scan(&used); err != nil {
		return false, scanErr(err)
	}
	return used, nil
}

func (t *txn) PutForm(f *storage.Form) error {
	if err := storage.CheckForm("sqlite", f); err != nil {
		return err
	}
	// Checked first, as the triggers refuse a version in use, and an
	// INSERT over a stored one, with an abort rather than a conflict.
	used, err := t.FormInUse(f.Name, f.Version)
	if err != nil {
		return err
	}
	if used {
		return fmt.Errorf("%w: form %s version %d", storage.ErrFormInUse, f.Name, f.Version)
	}
	_, err = t.FormSHA256(f.Name, f.Version)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		_, err = t.exec(`INSERT INTO forms(`+formCols+`) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			f.Name, f.Version, f.SHA256, f.Definition, fmtTime(f.AddedAt), f.AddedBy, f.AuditIndex, f.ConfirmedBy, fmtTime(f.ConfirmedAt))
	case err == nil:
		_, err = t.exec(`UPDATE forms SET sha256 = ?, definition = ?, added_at = ?, added_by = ?, audit_index = ?, confirmed_by = ?, confirmed_at = ?
			WHERE name = ? AND version = ?`, f.SHA256, f.Definition, fmtTime(f.AddedAt), f.AddedBy, f.AuditIndex, f.ConfirmedBy, fmtTime(f.ConfirmedAt),
			f.Name, f.Version)
	}
	if err != nil {
		return fmt.Errorf("form %s version %d: %w", f.Name, f.Version, err)
	}
	return nil
}

func (t *txn) FormProposal(name string, version int) (*storage.FormProposal, error) {
	row, err := t.queryRow(`SELECT `+formProposalCols+` FROM form_proposals WHERE name = ? AND version = ?`, name, version)
	if err != nil {
		return nil, err
	}
	p, err := scanFormProposal(row.Scan)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no proposal of form %s version %d", storage.ErrNotFound, name, version)
	}
	return p, err
}

func (t *txn) FormProposals(fn func(storage.FormProposal) (bool, error)) error {
	return feedAll(t, `SELECT `+formProposalCols+` FROM form_proposals ORDER BY name, version`, scanFormProposal, fn)
}

func (t *txn) ProposeForm(p *storage.FormProposal) error {
	if err := storage.CheckFormProposal("sqlite", p); err != nil {
		return err
	}
	used, err := t.FormInUse(p.Name, p.Version)
	if err != nil {
		return err
	}
	if used {
		return fmt.Errorf("%w: form %s version %d", storage.ErrFormInUse, p.Name, p.Version)
	}
	if _, err := t.exec(`INSERT INTO form_proposals(`+formProposalCols+`) VALUES(?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(name, version) DO UPDATE SET sha256 = excluded.sha256, definition = excluded.definition,
			proposed_at = excluded.proposed_at, proposed_by = excluded.proposed_by, audit_index = excluded.audit_index`,
		p.Name, p.Version, p.SHA256, p.Definition, fmtTime(p.ProposedAt), p.ProposedBy, p.AuditIndex); err != nil {
		return fmt.Errorf("proposal of form %s version %d: %w", p.Name, p.Version, err)
	}
	return nil
}

func (t *txn) DropFormProposal(name string, version int, sha string) error {
	cur, err := t.FormProposal(name, version)
	if err != nil {
		return err
	}
	if cur.SHA256 != sha {
		return fmt.Errorf("%w: the proposal of form %s version %d is another definition now", storage.ErrConflict, name, version)
	}
	_, err = t.exec(`DELETE FROM form_proposals WHERE name = ? AND version = ?`, name, version)
	return err
}
