package postgres

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/jackc/pgx/v5"
)

const debitCols = `query, audit_index, result, areas, project, researcher, rho, at`

func (t *reader) scanDebit(row pgx.Row) (*storage.LedgerDebit, error) {
	var d storage.LedgerDebit
	var areas, at string
	if err := row.Scan(&d.Query, &d.AuditIndex, &d.Result, &areas, &d.Project, &d.Researcher, &d.Rho, &at); err != nil {
		return nil, t.fail(err)
	}
	// areas is the JSON array InsertLedgerDebit wrote, in its order.
	if err := json.Unmarshal([]byte(areas), &d.Areas); err != nil {
		return nil, fmt.Errorf("postgres: ledger debit of audit event %d: bad stored areas: %w", d.AuditIndex, err)
	}
	if err := parseTimes([]*time.Time{&d.At}, at); err != nil {
		return nil, err
	}
	return &d, nil
}

func (t *reader) LedgerDebits(after int64, fn func(storage.LedgerDebit) (bool, error)) error {
	return feedAll(t, `SELECT `+debitCols+` FROM ledger_debits WHERE audit_index > $1 ORDER BY audit_index, query`,
		t.scanDebit, fn, after)
}

func (t *reader) LedgerDebitOf(query string) (*storage.LedgerDebit, error) {
	d, err := t.scanDebit(t.c.QueryRow(t.ctx, `SELECT `+debitCols+` FROM ledger_debits WHERE query = $1`, query))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: query %q was never charged to the privacy ledger", storage.ErrNotFound, query)
	}
	return d, err
}

func (t *writer) InsertLedgerDebit(d *storage.LedgerDebit) error {
	switch {
	case d.Query == "":
		return errors.New("postgres: InsertLedgerDebit with no query digest")
	case d.Result == "":
		return fmt.Errorf("postgres: ledger debit of query %q has no result digest", d.Query)
	case d.Project == "" || d.Researcher == "":
		return fmt.Errorf("postgres: ledger debit of query %q has no project or no researcher", d.Query)
	case len(d.Areas) == 0 || slices.Contains(d.Areas, ""):
		return fmt.Errorf("postgres: ledger debit of query %q has no areas, or an empty area code", d.Query)
	case d.Rho <= 0:
		return fmt.Errorf("postgres: ledger debit of query %q has a ρ of %d millionths; it must be positive", d.Query, d.Rho)
	case d.At.IsZero():
		return fmt.Errorf("postgres: ledger debit of query %q has a zero time", d.Query)
	case d.AuditIndex < 0:
		return fmt.Errorf("postgres: ledger debit of query %q has audit index %d", d.Query, d.AuditIndex)
	}
	areas, err := json.Marshal(d.Areas)
	if err != nil {
		return err
	}
	// A stored query is caught as a conflict without aborting the
	// savepoint, and DO NOTHING fires no update trigger: the stored
	// debit is kept.
	tag, err := t.exec(`INSERT INTO ledger_debits(`+debitCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (query) DO NOTHING`,
		d.Query, d.AuditIndex, d.Result, string(areas), d.Project, d.Researcher, d.Rho, fmtTime(d.At))
	if err != nil {
		return fmt.Errorf("ledger debit of query %q: %w", d.Query, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: query %q is already charged to the privacy ledger", storage.ErrConflict, d.Query)
	}
	return nil
}

const shareCols = `seq, kind, holder, rho, reason, proposed_by, proposed_at, proposal_audit, approved_by, approved_at, approval_audit`

func (t *reader) scanShare(row pgx.Row) (*storage.ShareChange, error) {
	var c storage.ShareChange
	var proposed, approved string
	if err := row.Scan(&c.Seq, &c.Kind, &c.Holder, &c.Rho, &c.Reason, &c.ProposedBy, &proposed, &c.ProposalAudit,
		&c.ApprovedBy, &approved, &c.ApprovalAudit); err != nil {
		return nil, t.fail(err)
	}
	if err := parseTimes([]*time.Time{&c.ProposedAt, &c.ApprovedAt}, proposed, approved); err != nil {
		return nil, err
	}
	return &c, nil
}

func (t *reader) ShareChanges(fn func(storage.ShareChange) (bool, error)) error {
	return feedAll(t, `SELECT `+shareCols+` FROM ledger_shares ORDER BY seq`, t.scanShare, fn)
}

func (t *writer) ProposeShare(c *storage.ShareChange) error {
	switch {
	case c.Kind == "" || c.ProposedBy == "" || c.Reason == "":
		return errors.New("postgres: ProposeShare needs a kind, a proposer and a reason")
	case c.Rho <= 0:
		return fmt.Errorf("postgres: proposed share of %d millionths of ρ; it must be positive", c.Rho)
	case c.ProposedAt.IsZero():
		return errors.New("postgres: ProposeShare with a zero time")
	case c.ProposalAudit < 0:
		return fmt.Errorf("postgres: ProposeShare with audit index %d", c.ProposalAudit)
	case c.ApprovedBy != "" || !c.ApprovedAt.IsZero() || c.ApprovalAudit != 0:
		return errors.New("postgres: ProposeShare of a change that is already approved; propose it pending, then ApproveShare")
	}
	// The batch holds the audit head's lock, which every writer takes
	// first, so no other instance can take the same seq between the max
	// and the insert.
	var seq int64
	err := t.c.QueryRow(t.ctx, `INSERT INTO ledger_shares(seq, kind, holder, rho, reason, proposed_by, proposed_at, proposal_audit)
		SELECT coalesce(max(seq), 0) + 1, $1, $2, $3, $4, $5, $6, $7 FROM ledger_shares
		RETURNING seq`,
		c.Kind, c.Holder, c.Rho, c.Reason, c.ProposedBy, fmtTime(c.ProposedAt), c.ProposalAudit).Scan(&seq)
	if err != nil {
		return fmt.Errorf("share change: %w", t.fail(err))
	}
	c.Seq = seq
	return nil
}

func (t *writer) ApproveShare(seq int64, by string, at time.Time, auditIndex int64) error {
	switch {
	case by == "":
		return fmt.Errorf("postgres: approval of share change %d by no one", seq)
	case at.IsZero():
		return fmt.Errorf("postgres: approval of share change %d with a zero time", seq)
	case auditIndex < 0:
		return fmt.Errorf("postgres: approval of share change %d with audit index %d", seq, auditIndex)
	}
	tag, err := t.exec(`UPDATE ledger_shares SET approved_by = $1, approved_at = $2, approval_audit = $3
		WHERE seq = $4 AND approved_by = ''`, by, fmtTime(at), auditIndex, seq)
	if err != nil {
		return fmt.Errorf("share change %d: %w", seq, err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	var found int64
	err = t.fail(t.c.QueryRow(t.ctx, `SELECT seq FROM ledger_shares WHERE seq = $1`, seq).Scan(&found))
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: no share change %d was proposed", storage.ErrNotFound, seq)
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: share change %d is already approved", storage.ErrConflict, seq)
}
