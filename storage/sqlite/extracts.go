package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/internal/extractcheck"
	"github.com/censusvault/censusvault/storage/internal/feed"
)

// schemaV10Extracts adds the extracts for the processing centre:
//   - extract_environments holds the registered processing environments
//     (an age recipient and the field classes it may receive). A name
//     always means one recipient: an environment is never removed or
//     changed, only retired. Triggers refuse DELETE, an INSERT over a
//     stored name (which INSERT OR REPLACE would otherwise turn into a
//     delete that fires no trigger), and every UPDATE but the retirement
//     of an environment in use: one that sets a non-empty retired_by on
//     a row whose retired_by is empty and leaves every column but
//     retired_by, retired_at and retire_audit as it was;
//   - extract_proposals holds the proposed extracts and their approval,
//     guarded as ledger_shares is: DELETE, an INSERT over a stored seq,
//     and every UPDATE but the approval of a pending proposal are
//     refused.
//
// areas and classes are JSON arrays of strings, in the caller's order.
// The CHECKs hold what InsertEnvironment and ProposeExtract promise
// against a statement that skipped them; the last one of each table keeps
// a row either wholly in force or wholly retired (approved). Nothing
// existing is rewritten, so the upgrade is quick.
const schemaV10Extracts = `
CREATE TABLE extract_environments (
	name         TEXT PRIMARY KEY CHECK (length(name) > 0),
	recipient    TEXT NOT NULL CHECK (length(recipient) > 0),
	classes      TEXT NOT NULL CHECK (json_valid(classes) AND json_type(classes) = 'array' AND json_array_length(classes) > 0),
	created_by   TEXT NOT NULL CHECK (length(created_by) > 0),
	created_at   TEXT NOT NULL CHECK (length(created_at) > 0),
	audit_index  INTEGER NOT NULL CHECK (audit_index >= 0),
	retired_by   TEXT NOT NULL DEFAULT '',
	retired_at   TEXT NOT NULL DEFAULT '',
	retire_audit INTEGER NOT NULL DEFAULT 0 CHECK (retire_audit >= 0),
	CHECK ((retired_by = '' AND retired_at = '' AND retire_audit = 0) OR (retired_by <> '' AND retired_at <> ''))
) WITHOUT ROWID;
CREATE TRIGGER extract_environments_no_replace BEFORE INSERT ON extract_environments
	WHEN EXISTS (SELECT 1 FROM extract_environments WHERE name = NEW.name)
	BEGIN SELECT RAISE(ABORT, 'extract_environments: a stored environment cannot be replaced'); END;
CREATE TRIGGER extract_environments_retire_only BEFORE UPDATE ON extract_environments
	WHEN OLD.retired_by <> '' OR NEW.retired_by = ''
		OR NEW.name IS NOT OLD.name OR NEW.recipient IS NOT OLD.recipient OR NEW.classes IS NOT OLD.classes
		OR NEW.created_by IS NOT OLD.created_by OR NEW.created_at IS NOT OLD.created_at OR NEW.audit_index IS NOT OLD.audit_index
	BEGIN SELECT RAISE(ABORT, 'extract_environments: an environment can only be retired, once, and is otherwise never changed'); END;
CREATE TRIGGER extract_environments_no_delete BEFORE DELETE ON extract_environments
	BEGIN SELECT RAISE(ABORT, 'extract_environments: a stored environment cannot be deleted (retire it)'); END;
CREATE TABLE extract_proposals (
	seq            INTEGER PRIMARY KEY CHECK (seq > 0),
	environment    TEXT NOT NULL REFERENCES extract_environments(name),
	areas          TEXT NOT NULL CHECK (json_valid(areas) AND json_type(areas) = 'array' AND json_array_length(areas) > 0),
	form           TEXT NOT NULL CHECK (length(form) > 0),
	form_version   INTEGER NOT NULL CHECK (typeof(form_version) = 'integer' AND form_version > 0),
	classes        TEXT NOT NULL CHECK (json_valid(classes) AND json_type(classes) = 'array' AND json_array_length(classes) > 0),
	format         TEXT NOT NULL CHECK (length(format) > 0),
	purpose        TEXT NOT NULL CHECK (length(purpose) > 0),
	proposed_by    TEXT NOT NULL CHECK (length(proposed_by) > 0),
	proposed_at    TEXT NOT NULL CHECK (length(proposed_at) > 0),
	proposal_audit INTEGER NOT NULL CHECK (proposal_audit >= 0),
	approved_by    TEXT NOT NULL DEFAULT '',
	approved_at    TEXT NOT NULL DEFAULT '',
	approval_audit INTEGER NOT NULL DEFAULT 0 CHECK (approval_audit >= 0),
	CHECK ((approved_by = '' AND approved_at = '' AND approval_audit = 0) OR (approved_by <> '' AND approved_at <> ''))
);
CREATE TRIGGER extract_proposals_no_replace BEFORE INSERT ON extract_proposals
	WHEN EXISTS (SELECT 1 FROM extract_proposals WHERE seq = NEW.seq)
	BEGIN SELECT RAISE(ABORT, 'extract_proposals: a stored proposal cannot be replaced'); END;
CREATE TRIGGER extract_proposals_approve_only BEFORE UPDATE ON extract_proposals
	WHEN OLD.approved_by <> '' OR NEW.approved_by = ''
		OR NEW.seq IS NOT OLD.seq OR NEW.environment IS NOT OLD.environment OR NEW.areas IS NOT OLD.areas
		OR NEW.form IS NOT OLD.form OR NEW.form_version IS NOT OLD.form_version OR NEW.classes IS NOT OLD.classes
		OR NEW.format IS NOT OLD.format OR NEW.purpose IS NOT OLD.purpose OR NEW.proposed_by IS NOT OLD.proposed_by
		OR NEW.proposed_at IS NOT OLD.proposed_at OR NEW.proposal_audit IS NOT OLD.proposal_audit
	BEGIN SELECT RAISE(ABORT, 'extract_proposals: a proposal can only be approved, once, and is otherwise never changed'); END;
CREATE TRIGGER extract_proposals_no_delete BEFORE DELETE ON extract_proposals
	BEGIN SELECT RAISE(ABORT, 'extract_proposals: a stored proposal cannot be deleted'); END;
`

const envCols = `name, recipient, classes, created_by, created_at, audit_index, retired_by, retired_at, retire_audit`

// scanEnvironment reads one extract_environments row of envCols.
func scanEnvironment(scan func(...any) error) (*storage.Environment, error) {
	var e storage.Environment
	var classes, created, retired string
	if err := scan(&e.Name, &e.Recipient, &classes, &e.CreatedBy, &created, &e.AuditIndex, &e.RetiredBy, &retired, &e.RetireAudit); err != nil {
		return nil, scanErr(err)
	}
	var err error
	if e.Classes, err = decodeList(classes); err != nil {
		return nil, fmt.Errorf("sqlite: environment %s: bad stored classes: %w", e.Name, err)
	}
	if e.CreatedAt, err = parseTime(created); err != nil {
		return nil, err
	}
	if e.RetiredAt, err = parseTime(retired); err != nil {
		return nil, err
	}
	return &e, nil
}

func (t *txn) Environment(name string) (*storage.Environment, error) {
	row, err := t.queryRow(`SELECT `+envCols+` FROM extract_environments WHERE name = ?`, name)
	if err != nil {
		return nil, err
	}
	e, err := scanEnvironment(row.Scan)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no environment %q", storage.ErrNotFound, name)
	}
	return e, err
}

func (t *txn) Environments(fn func(storage.Environment) (bool, error)) error {
	return feedAll(t, `SELECT `+envCols+` FROM extract_environments ORDER BY name`, scanEnvironment, fn)
}

func (t *txn) InsertEnvironment(e *storage.Environment) error {
	if err := extractcheck.Environment("sqlite", e); err != nil {
		return err
	}
	// Looked up first: a stored name is refused by a trigger (which
	// keeps INSERT OR REPLACE out), not as a uniqueness conflict.
	if _, err := t.Environment(e.Name); err == nil {
		return fmt.Errorf("%w: environment %s exists", storage.ErrConflict, e.Name)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	classes, err := encodeList(e.Classes)
	if err != nil {
		return err
	}
	if _, err := t.exec(`INSERT INTO extract_environments(name, recipient, classes, created_by, created_at, audit_index) VALUES(?, ?, ?, ?, ?, ?)`,
		e.Name, e.Recipient, classes, e.CreatedBy, fmtTime(e.CreatedAt), e.AuditIndex); err != nil {
		return fmt.Errorf("environment %s: %w", e.Name, err)
	}
	return nil
}

func (t *txn) RetireEnvironment(name, by string, at time.Time, auditIndex int64) error {
	if err := extractcheck.Retirement("sqlite", name, by, at, auditIndex); err != nil {
		return err
	}
	res, err := t.exec(`UPDATE extract_environments SET retired_by = ?, retired_at = ?, retire_audit = ?
		WHERE name = ? AND retired_by = ''`, by, fmtTime(at), auditIndex, name)
	if err != nil {
		return fmt.Errorf("environment %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	if _, err := t.Environment(name); err != nil {
		return err // ErrNotFound for an unknown name
	}
	return fmt.Errorf("%w: environment %s is already retired", storage.ErrConflict, name)
}

const proposalCols = `seq, environment, areas, form, form_version, classes, format, purpose, proposed_by, proposed_at,
	proposal_audit, approved_by, approved_at, approval_audit`

// scanProposal reads one extract_proposals row of proposalCols.
func scanProposal(scan func(...any) error) (*storage.ExtractProposal, error) {
	var p storage.ExtractProposal
	var areas, classes, proposed, approved string
	if err := scan(&p.Seq, &p.Environment, &areas, &p.Form, &p.FormVersion, &classes, &p.Format, &p.Purpose,
		&p.ProposedBy, &proposed, &p.ProposalAudit, &p.ApprovedBy, &approved, &p.ApprovalAudit); err != nil {
		return nil, scanErr(err)
	}
	var err error
	if p.Areas, err = decodeList(areas); err != nil {
		return nil, fmt.Errorf("sqlite: extract proposal %d: bad stored areas: %w", p.Seq, err)
	}
	if p.Classes, err = decodeList(classes); err != nil {
		return nil, fmt.Errorf("sqlite: extract proposal %d: bad stored classes: %w", p.Seq, err)
	}
	if p.ProposedAt, err = parseTime(proposed); err != nil {
		return nil, err
	}
	if p.ApprovedAt, err = parseTime(approved); err != nil {
		return nil, err
	}
	return &p, nil
}

func (t *txn) ExtractProposal(seq int64) (*storage.ExtractProposal, error) {
	row, err := t.queryRow(`SELECT `+proposalCols+` FROM extract_proposals WHERE seq = ?`, seq)
	if err != nil {
		return nil, err
	}
	p, err := scanProposal(row.Scan)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no extract proposal %d", storage.ErrNotFound, seq)
	}
	return p, err
}

func (t *txn) ExtractProposals(fn func(storage.ExtractProposal) (bool, error)) error {
	return feedAll(t, `SELECT `+proposalCols+` FROM extract_proposals ORDER BY seq`, scanProposal, fn)
}

func (t *txn) ProposeExtract(p *storage.ExtractProposal) error {
	if err := extractcheck.Proposal("sqlite", p); err != nil {
		return err
	}
	areas, err := encodeList(p.Areas)
	if err != nil {
		return err
	}
	classes, err := encodeList(p.Classes)
	if err != nil {
		return err
	}
	// Writes are serialized (one writer connection), so no other
	// transaction can take the same seq between the max and the insert.
	row, err := t.queryRow(`INSERT INTO extract_proposals(seq, environment, areas, form, form_version, classes, format, purpose,
			proposed_by, proposed_at, proposal_audit)
		SELECT coalesce(max(seq), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM extract_proposals
		RETURNING seq`,
		p.Environment, areas, p.Form, p.FormVersion, classes, p.Format, p.Purpose, p.ProposedBy, fmtTime(p.ProposedAt), p.ProposalAudit)
	if err != nil {
		return err
	}
	var seq int64
	if err := row.Scan(&seq); err != nil {
		return fmt.Errorf("extract proposal: %w", classify(err))
	}
	p.Seq = seq
	return nil
}

func (t *txn) ApproveExtract(seq int64, by string, at time.Time, auditIndex int64) error {
	if err := extractcheck.Approval("sqlite", seq, by, at, auditIndex); err != nil {
		return err
	}
	res, err := t.exec(`UPDATE extract_proposals SET approved_by = ?, approved_at = ?, approval_audit = ?
		WHERE seq = ? AND approved_by = ''`, by, fmtTime(at), auditIndex, seq)
	if err != nil {
		return fmt.Errorf("extract proposal %d: %w", seq, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	if _, err := t.ExtractProposal(seq); err != nil {
		return err // ErrNotFound for an unknown seq
	}
	return fmt.Errorf("%w: extract proposal %d is already approved", storage.ErrConflict, seq)
}

// extractQuery is ExtractSubmissions' statement. Like SubmissionsSince's,
// a page is a range of submissions_audit_index in (audit_index, rowid)
// order, the keyset that resumes after the last row read. A submission
// is current as of ?4 when nothing supersedes it or what does came after
// ?4: its successor is found through the primary key (superseded_by),
// not by a scan. The communes are one JSON array parameter. A part not
// asked for is not read (each CASE yields NULL), nor is the receipt.
// INDEXED BY, since schema 11's submissions_form index looks more
// selective to the planner than it is (a census is nearly all one form
// version), and would make each page sort every submission of the form.
const extractQuery = `SELECT s.rowid, s.id, s.area, s.commune, s.household_no, s.form, s.form_version,
		s.interviewed_at, s.received_at, s.depositor, s.supersedes, s.audit_index,
		CASE WHEN ?5 THEN s.operational END,
		CASE WHEN ?6 THEN s.ident_kv END, CASE WHEN ?6 THEN s.ident END,
		CASE WHEN ?7 THEN s.analytic_kv END, CASE WHEN ?7 THEN s.analytic END
	FROM submissions s INDEXED BY submissions_audit_index LEFT JOIN submissions n ON n.id = s.superseded_by
	WHERE s.audit_index >= ?1 AND (s.audit_index > ?1 OR s.rowid > ?2) AND s.audit_index <= ?4
		AND s.form = ?8 AND s.form_version = ?9
		AND s.commune IN (SELECT value FROM json_each(?10))
		AND (n.audit_index IS NULL OR n.audit_index > ?4)
	ORDER BY s.audit_index, s.rowid
	LIMIT ?3`

func (t *txn) ExtractSubmissions(f storage.ExtractFilter, fn func(storage.Submission) (bool, error)) error {
	if len(f.Communes) == 0 {
		return nil
	}
	communes, err := encodeList(f.Communes)
	if err != nil {
		return err
	}
	op, ident, anal := slices.Contains(f.Classes, "operational"), slices.Contains(f.Classes, "identifying"), slices.Contains(f.Classes, "analytic")
	// The first page takes every rowid at audit index -1 on: with
	// lastRowid at its maximum, the keyset is audit_index > -1.
	lastIndex, lastRowid := int64(-1), int64(math.MaxInt64)
	page := make([]storage.Submission, 0, submissionsPage)
	for {
		rows, err := t.query(extractQuery, lastIndex, lastRowid, submissionsPage, f.AsOf, op, ident, anal, f.Form, f.FormVersion, communes)
		if err != nil {
			return err
		}
		page = page[:0]
		for rows.Next() {
			var s storage.Submission
			var interviewed, received string
			var identKV, analyticKV sql.NullInt64
			var identData, analyticData []byte
			if err := rows.Scan(&lastRowid, &s.ID, &s.Area, &s.Commune, &s.HouseholdNo, &s.Form, &s.FormVersion,
				&interviewed, &received, &s.Depositor, &s.Supersedes, &s.AuditIndex,
				&s.Operational, &identKV, &identData, &analyticKV, &analyticData); err != nil {
				rows.Close()
				return classify(err)
			}
			if s.InterviewedAt, err = parseTime(interviewed); err == nil {
				s.ReceivedAt, err = parseTime(received)
			}
			if err != nil {
				rows.Close()
				return fmt.Errorf("submission %s: %w", s.ID, err)
			}
			if identKV.Valid {
				s.Sealed = append(s.Sealed, storage.Sealed{Class: "identifying", KeyVersion: int(identKV.Int64), Data: identData})
			}
			if analyticKV.Valid {
				s.Sealed = append(s.Sealed, storage.Sealed{Class: "analytic", KeyVersion: int(analyticKV.Int64), Data: analyticData})
			}
			lastIndex = s.AuditIndex
			page = append(page, s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return classify(err)
		}
		if more, err := feed.Each(page, fn); err != nil || !more {
			return err
		}
		if len(page) < submissionsPage {
			return nil
		}
	}
}
