package sqlite

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/censusvault/censusvault/storage"
)

const debitCols = `query, audit_index, result, areas, project, researcher, rho, at`

// scanDebit reads one ledger_debits row of debitCols.
func scanDebit(scan func(...any) error) (*storage.LedgerDebit, error) {
	var d storage.LedgerDebit
	var areas, at string
	if err := scan(&d.Query, &d.AuditIndex, &d.Result, &areas, &d.Project, &d.Researcher, &d.Rho, &at); err != nil {
		return nil, scanErr(err)
	}
	var err error
	if d.Areas, err = decodeList(areas); err != nil {
		return nil, fmt.Errorf("sqlite: ledger debit of audit event %d: bad stored areas: %w", d.AuditIndex, err)
	}
	if d.At, err = parseTime(at); err != nil {
		return nil, err
	}
	return &d, nil
}

func (t *txn) LedgerDebits(after int64, fn func(storage.LedgerDebit) (bool, error)) error {
	return feedAll(t, `SELECT `+debitCols+` FROM ledger_debits WHERE audit_index > ? ORDER BY audit_index, query`,
		scanDebit, fn, after)
}

func (t *txn) LedgerDebitOf(query string) (*storage.LedgerDebit, error) {
	row, err := t.queryRow(`SELECT `+debitCols+` FROM ledger_debits WHERE query = ?`, query)
	if err != nil {
		return nil, err
	}
	d, err := scanDebit(row.Scan)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: query %q was never charged to the privacy ledger", storage.ErrNotFound, query)
	}
	return d, err
}

func (t *txn) InsertLedgerDebit(d *storage.LedgerDebit) error {
	switch {
	case d.Query == "":
		return errors.New("sqlite: InsertLedgerDebit with no query digest")
	case d.Result == "":
		return fmt.Errorf("sqlite: ledger debit of query %q has no result digest", d.Query)
	case d.Project == "" || d.Researcher == "":
		return fmt.Errorf("sqlite: ledger debit of query %q has no project or no researcher", d.Query)
	case len(d.Areas) == 0 || slices.Contains(d.Areas, ""):
		return fmt.Errorf("sqlite: ledger debit of query %q has no areas, or an empty area code", d.Query)
	case d.Rho <= 0:
		return fmt.Errorf("sqlite: ledger debit of query %q has a ρ of %d millionths; it must be positive", d.Query, d.Rho)
	case d.At.IsZero():
		return fmt.Errorf("sqlite: ledger debit of query %q has a zero time", d.Query)
	case d.AuditIndex < 0:
		return fmt.Errorf("sqlite: ledger debit of query %q has audit index %d", d.Query, d.AuditIndex)
	}
	// Looked up first: a stored query is refused by a trigger (which
	// keeps INSERT OR REPLACE out), not as a uniqueness conflict.
	if _, err := t.LedgerDebitOf(d.Query); err == nil {
		return fmt.Errorf("%w: query %q is already charged to the privacy ledger", storage.ErrConflict, d.Query)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	areas, err := encodeList(d.Areas)
	if err != nil {
		return err
	}
	if _, err := t.exec(`INSERT INTO ledger_debits(`+debitCols+`) VALUES(?, ?, ?, ?, ?, ?, ?, ?)`,
		d.Query, d.AuditIndex, d.Result, areas, d.Project, d.Researcher, d.Rho, fmtTime(d.At)); err != nil {
		return fmt.Errorf("ledger debit of query %q: %w", d.Query, err)
	}
	return nil
}

const shareCols = `seq, kind, holder, rho, reason, proposed_by, proposed_at, proposal_audit, approved_by, approved_at, approval_audit`

// scanShare reads one ledger_shares row of shareCols.
func scanShare(scan func(...any) error) (*storage.ShareChange, error) {
	var c storage.ShareChange
	var proposed, approved string
	if err := scan(&c.Seq, &c.Kind, &c.Holder, &c.Rho, &c.Reason, &c.ProposedBy, &proposed, &c.ProposalAudit,
		&c.ApprovedBy, &approved, &c.ApprovalAudit); err != nil {
		return nil, scanErr(err)
	}
	var err error
	if c.ProposedAt, err = parseTime(proposed); err != nil {
		return nil, err
	}
	if c.ApprovedAt, err = parseTime(approved); err != nil {
		return nil, err
	}
	return &c, nil
}

func (t *txn) ShareChanges(fn func(storage.ShareChange) (bool, error)) error {
	return feedAll(t, `SELECT `+shareCols+` FROM ledger_shares ORDER BY seq`, scanShare, fn)
}

func (t *txn) ProposeShare(c *storage.ShareChange) error {
	switch {
	case c.Kind == "" || c.ProposedBy == "" || c.Reason == "":
		return errors.New("sqlite: ProposeShare needs a kind, a proposer and a reason")
	case c.Rho <= 0:
		return fmt.Errorf("sqlite: proposed share of %d millionths of ρ; it must be positive", c.Rho)
	case c.ProposedAt.IsZero():
		return errors.New("sqlite: ProposeShare with a zero time")
	case c.ProposalAudit < 0:
		return fmt.Errorf("sqlite: ProposeShare with audit index %d", c.ProposalAudit)
	case c.ApprovedBy != "" || !c.ApprovedAt.IsZero() || c.ApprovalAudit != 0:
		return errors.New("sqlite: ProposeShare of a change that is already approved; propose it pending, then ApproveShare")
	}
	// Writes are serialized (one writer connection), so no other
	// transaction can take the same seq between the max and the insert.
	row, err := t.queryRow(`INSERT INTO ledger_shares(seq, kind, holder, rho, reason, proposed_by, proposed_at, proposal_audit)
		SELECT coalesce(max(seq), 0) + 1, ?, ?, ?, ?, ?, ?, ? FROM ledger_shares
		RETURNING seq`,
		c.Kind, c.Holder, c.Rho, c.Reason, c.ProposedBy, fmtTime(c.ProposedAt), c.ProposalAudit)
	if err != nil {
		return err
	}
	var seq int64
	if err := row.Scan(&seq); err != nil {
		return fmt.Errorf("share change: %w", classify(err))
	}
	c.Seq = seq
	return nil
}

func (t *txn) ApproveShare(seq int64, by string, at time.Time, auditIndex int64) error {
	switch {
	case by == "":
		return fmt.Errorf("sqlite: approval of share change %d by no one", seq)
	case at.IsZero():
		return fmt.Errorf("sqlite: approval of share change %d with a zero time", seq)
	case auditIndex < 0:
		return fmt.Errorf("sqlite: approval of share change %d with audit index %d", seq, auditIndex)
	}
	res, err := t.exec(`UPDATE ledger_shares SET approved_by = ?, approved_at = ?, approval_audit = ?
		WHERE seq = ? AND approved_by = ''`, by, fmtTime(at), auditIndex, seq)
	if err != nil {
		return fmt.Errorf("share change %d: %w", seq, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	row, err := t.queryRow(`SELECT seq FROM ledger_shares WHERE seq = ?`, seq)
	if err != nil {
		return err
	}
	var found int64
	if err := scanErr(row.Scan(&found)); errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: no share change %d was proposed", storage.ErrNotFound, seq)
	} else if err != nil {
		return err
	}
	return fmt.Errorf("%w: share change %d is already approved", storage.ErrConflict, seq)
}
