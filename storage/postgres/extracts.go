package postgres

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/internal/extractcheck"
	"github.com/censusvault/censusvault/storage/internal/feed"
	"github.com/jackc/pgx/v5"
)

// Extracts for the processing centre (migration 10): environments and
// extract proposals. Their guards are the migration's triggers.

const envCols = `name, recipient, classes, created_by, created_at, audit_index, retired_by, retired_at, retire_audit`

func (t *reader) scanEnvironment(row pgx.Row) (*storage.Environment, error) {
	var e storage.Environment
	var classes, created, retired string
	if err := row.Scan(&e.Name, &e.Recipient, &classes, &e.CreatedBy, &created, &e.AuditIndex, &e.RetiredBy, &retired, &e.RetireAudit); err != nil {
		return nil, t.fail(err)
	}
	// classes is the JSON array InsertEnvironment wrote, in its order.
	if err := json.Unmarshal([]byte(classes), &e.Classes); err != nil {
		return nil, fmt.Errorf("postgres: environment %s: bad stored classes: %w", e.Name, err)
	}
	if err := parseTimes([]*time.Time{&e.CreatedAt, &e.RetiredAt}, created, retired); err != nil {
		return nil, err
	}
	return &e, nil
}

func (t *reader) Environment(name string) (*storage.Environment, error) {
	e, err := t.scanEnvironment(t.c.QueryRow(t.ctx, `SELECT `+envCols+` FROM extract_environments WHERE name = $1`, name))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no environment %q", storage.ErrNotFound, name)
	}
	return e, err
}

func (t *reader) Environments(fn func(storage.Environment) (bool, error)) error {
	return feedAll(t, `SELECT `+envCols+` FROM extract_environments ORDER BY name`, t.scanEnvironment, fn)
}

func (t *writer) InsertEnvironment(e *storage.Environment) error {
	if err := extractcheck.Environment("postgres", e); err != nil {
		return err
	}
	classes, err := json.Marshal(e.Classes)
	if err != nil {
		return err
	}
	// A stored name is caught as a conflict without aborting the
	// savepoint, and DO NOTHING fires no update trigger: the stored
	// environment is kept.
	return t.insert("environment "+e.Name, `INSERT INTO extract_environments(name, recipient, classes, created_by, created_at, audit_index)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING`,
		e.Name, e.Recipient, string(classes), e.CreatedBy, fmtTime(e.CreatedAt), e.AuditIndex)
}

func (t *writer) RetireEnvironment(name, by string, at time.Time, auditIndex int64) error {
	if err := extractcheck.Retirement("postgres", name, by, at, auditIndex); err != nil {
		return err
	}
	tag, err := t.exec(`UPDATE extract_environments SET retired_by = $1, retired_at = $2, retire_audit = $3
		WHERE name = $4 AND retired_by = ''`, by, fmtTime(at), auditIndex, name)
	if err != nil {
		return fmt.Errorf("environment %s: %w", name, err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	if _, err := t.Environment(name); err != nil {
		return err // ErrNotFound for an unknown name
	}
	return fmt.Errorf("%w: environment %s is already retired", storage.ErrConflict, name)
}

const proposalCols = `seq, environment, areas, form, form_version, classes, format, purpose, proposed_by, proposed_at,
	proposal_audit, approved_by, approved_at, approval_audit`

func (t *reader) scanProposal(row pgx.Row) (*storage.ExtractProposal, error) {
	var p storage.ExtractProposal
	var areas, classes, proposed, approved string
	if err := row.Scan(&p.Seq, &p.Environment, &areas, &p.Form, &p.FormVersion, &classes, &p.Format, &p.Purpose,
		&p.ProposedBy, &proposed, &p.ProposalAudit, &p.ApprovedBy, &approved, &p.ApprovalAudit); err != nil {
		return nil, t.fail(err)
	}
	if err := json.Unmarshal([]byte(areas), &p.Areas); err != nil {
		return nil, fmt.Errorf("postgres: extract proposal %d: bad stored areas: %w", p.Seq, err)
	}
	if err := json.Unmarshal([]byte(classes), &p.Classes); err != nil {
		return nil, fmt.Errorf("postgres: extract proposal %d: bad stored classes: %w", p.Seq, err)
	}
	if err := parseTimes([]*time.Time{&p.ProposedAt, &p.ApprovedAt}, proposed, approved); err != nil {
		return nil, err
	}
	return &p, nil
}

func (t *reader) ExtractProposal(seq int64) (*storage.ExtractProposal, error) {
	p, err := t.scanProposal(t.c.QueryRow(t.ctx, `SELECT `+proposalCols+` FROM extract_proposals WHERE seq = $1`, seq))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no extract proposal %d", storage.ErrNotFound, seq)
	}
	return p, err
}

func (t *reader) ExtractProposals(fn func(storage.ExtractProposal) (bool, error)) error {
	return feedAll(t, `SELECT `+proposalCols+` FROM extract_proposals ORDER BY seq`, t.scanProposal, fn)
}

func (t *writer) ProposeExtract(p *storage.ExtractProposal) error {
	if err := extractcheck.Proposal("postgres", p); err != nil {
		return err
	}
	areas, err := json.Marshal(p.Areas)
	if err != nil {
		return err
	}
	classes, err := json.Marshal(p.Classes)
	if err != nil {
		return err
	}
	// The batch holds the audit head's lock, which every writer takes
	// first, so no other instance can take the same seq between the max
	// and the insert.
	var seq int64
	err = t.c.QueryRow(t.ctx, `INSERT INTO extract_proposals(seq, environment, areas, form, form_version, classes, format, purpose,
			proposed_by, proposed_at, proposal_audit)
		SELECT coalesce(max(seq), 0) + 1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM extract_proposals
		RETURNING seq`,
		p.Environment, string(areas), p.Form, p.FormVersion, string(classes), p.Format, p.Purpose, p.ProposedBy,
		fmtTime(p.ProposedAt), p.ProposalAudit).Scan(&seq)
	if err != nil {
		return fmt.Errorf("extract proposal: %w", t.fail(err))
	}
	p.Seq = seq
	return nil
}

func (t *writer) ApproveExtract(seq int64, by string, at time.Time, auditIndex int64) error {
	if err := extractcheck.Approval("postgres", seq, by, at, auditIndex); err != nil {
		return err
	}
	tag, err := t.exec(`UPDATE extract_proposals SET approved_by = $1, approved_at = $2, approval_audit = $3
		WHERE seq = $4 AND approved_by = ''`, by, fmtTime(at), auditIndex, seq)
	if err != nil {
		return fmt.Errorf("extract proposal %d: %w", seq, err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	if _, err := t.ExtractProposal(seq); err != nil {
		return err // ErrNotFound for an unknown seq
	}
	return fmt.Errorf("%w: extract proposal %d is already approved", storage.ErrConflict, seq)
}

// extractQuery is ExtractSubmissions' statement. Like SubmissionsSince's,
// a page is a range of submissions_audit_index ordered by (audit_index,
// id), the keyset that resumes after the last row read (on the first
// page the last id is NULL, which makes it audit_index > -1). A
// submission is current as of $4 when nothing supersedes it or what does
// came after $4: its successor is found through the primary key
// (superseded_by), not by a scan. The communes are one text[] parameter.
// A part not asked for is not read (each CASE yields NULL), nor is the
// receipt.
const extractQuery = `SELECT s.id, s.area, s.commune, s.household_no, s.form, s.form_version,
		s.interviewed_at, s.received_at, s.depositor, s.supersedes, s.audit_index,
		CASE WHEN $5::boolean THEN s.operational END,
		CASE WHEN $6::boolean THEN s.ident_kv END, CASE WHEN $6::boolean THEN s.ident END,
		CASE WHEN $7::boolean THEN s.analytic_kv END, CASE WHEN $7::boolean THEN s.analytic END
	FROM submissions s LEFT JOIN submissions n ON n.id = s.superseded_by
	WHERE s.audit_index >= $1 AND (s.audit_index > $1 OR s.id > $2::text) AND s.audit_index <= $4
		AND s.form = $8 AND s.form_version = $9
		AND s.commune = ANY($10::text[])
		AND (n.audit_index IS NULL OR n.audit_index > $4)
	ORDER BY s.audit_index, s.id
	LIMIT $3`

func (t *reader) ExtractSubmissions(f storage.ExtractFilter, fn func(storage.Submission) (bool, error)) error {
	if len(f.Communes) == 0 {
		return nil
	}
	op, ident, anal := slices.Contains(f.Classes, "operational"), slices.Contains(f.Classes, "identifying"), slices.Contains(f.Classes, "analytic")
	lastIndex, lastID := int64(-1), (*string)(nil)
	page := make([]storage.Submission, 0, submissionsPage)
	for {
		rows, err := t.c.Query(t.ctx, extractQuery, lastIndex, lastID, submissionsPage, f.AsOf, op, ident, anal, f.Form, f.FormVersion, f.Communes)
		if err != nil {
			return t.fail(err)
		}
		page = page[:0]
		for rows.Next() {
			var s storage.Submission
			var interviewed, received string
			var identKV, analyticKV *int32
			var identData, analyticData []byte
			if err := rows.Scan(&s.ID, &s.Area, &s.Commune, &s.HouseholdNo, &s.Form, &s.FormVersion,
				&interviewed, &received, &s.Depositor, &s.Supersedes, &s.AuditIndex,
				&s.Operational, &identKV, &identData, &analyticKV, &analyticData); err != nil {
				rows.Close()
				return t.fail(err)
			}
			if err := parseTimes([]*time.Time{&s.InterviewedAt, &s.ReceivedAt}, interviewed, received); err != nil {
				rows.Close()
				return fmt.Errorf("submission %s: %w", s.ID, err)
			}
			if identKV != nil {
				s.Sealed = append(s.Sealed, storage.Sealed{Class: "identifying", KeyVersion: int(*identKV), Data: identData})
			}
			if analyticKV != nil {
				s.Sealed = append(s.Sealed, storage.Sealed{Class: "analytic", KeyVersion: int(*analyticKV), Data: analyticData})
			}
			id := s.ID
			lastIndex, lastID = s.AuditIndex, &id
			page = append(page, s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return t.fail(err)
		}
		if more, err := feed.Each(page, fn); err != nil || !more {
			return err
		}
		if len(page) < submissionsPage {
			return nil
		}
	}
}
