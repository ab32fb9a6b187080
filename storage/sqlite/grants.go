package sqlite

import (
	"errors"
	"fmt"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/internal/feed"
	"github.com/censusvault/censusvault/storage/internal/grantcheck"
)

// usersPage is how many users Users reads at a time, with their grants
// (a range of grants' primary key per page): fn runs between pages, not
// while a query is open, so it may use the transaction, and a national
// roster is never held in memory at once.
const usersPage = 256

// scanUserRow reads one users row of userCols, without its grants.
func scanUserRow(scan func(...any) error) (storage.User, error) {
	var u storage.User
	var created, expires, revoked string
	if err := scan(&u.Name, &u.TokenHash, &created, &expires, &revoked, &u.Recipient); err != nil {
		return u, scanErr(err)
	}
	var err error
	if u.CreatedAt, err = parseTime(created); err == nil {
		if u.ExpiresAt, err = parseTime(expires); err == nil {
			u.RevokedAt, err = parseTime(revoked)
		}
	}
	return u, err
}

// usersQuery reads a page of users: a range of the primary key's index.
// pageGrantsQuery reads the grants of the users named after ?1 up to
// ?2: a range of grants' primary key.
const (
	usersQuery      = `SELECT ` + userCols + ` FROM users WHERE name > ? ORDER BY name LIMIT ?`
	pageGrantsQuery = `SELECT user, role, area, deny, project FROM grants WHERE user > ? AND user <= ?
	ORDER BY user, role, area, deny, project`
)

func (t *txn) Users(after string, limit int, fn func(storage.User) (bool, error)) error {
	left := limit // users still wanted; <= 0: no limit
	page := make([]storage.User, 0, usersPage)
	for {
		n := usersPage
		if limit > 0 {
			n = min(n, left)
		}
		rows, err := t.query(usersQuery, after, n)
		if err != nil {
			return err
		}
		page = page[:0]
		for rows.Next() {
			u, err := scanUserRow(rows.Scan)
			if err != nil {
				rows.Close()
				return err
			}
			page = append(page, u)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return classify(err)
		}
		if len(page) > 0 {
			if err := t.pageGrants(after, page); err != nil {
				return err
			}
		}
		if more, err := feed.Each(page, fn); err != nil || !more {
			return err
		}
		left -= len(page)
		if len(page) < n || (limit > 0 && left <= 0) {
			return nil
		}
		after = page[len(page)-1].Name
	}
}

// pageGrants gives each user of page (in name order, all named after
// after) its grants, in the order User gives them: one range of grants'
// primary key.
func (t *txn) pageGrants(after string, page []storage.User) error {
	rows, err := t.query(pageGrantsQuery, after, page[len(page)-1].Name)
	if err != nil {
		return err
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var user string
		var g storage.Grant
		if err := rows.Scan(&user, &g.Role, &g.Area, &g.Deny, &g.Project); err != nil {
			return classify(err)
		}
		for i < len(page) && page[i].Name < user {
			i++
		}
		if i == len(page) || page[i].Name != user {
			return fmt.Errorf("sqlite: a grant of a user missing from users")
		}
		page[i].Grants = append(page[i].Grants, g)
	}
	return classify(rows.Err())
}

func (t *txn) RemoveGrant(user string, g storage.Grant) error {
	res, err := t.exec(`DELETE FROM grants WHERE user = ? AND role = ? AND area = ? AND deny = ? AND project = ?`,
		user, g.Role, g.Area, g.Deny, g.Project)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: user %q holds no such grant", storage.ErrNotFound, user)
	}
	return nil
}

func (t *txn) ReplaceToken(user, tokenHash string, expires time.Time) error {
	if tokenHash == "" {
		return fmt.Errorf("sqlite: new token of user %q with no hash", user)
	}
	// The unique index on token_hash refuses a hash another user holds
	// (ErrConflict); SQLite undoes only the statement.
	res, err := t.exec(`UPDATE users SET token_hash = ?, expires_at = ? WHERE name = ?`, tokenHash, fmtTime(expires), user)
	if err != nil {
		return fmt.Errorf("new token of user %q: %w", user, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: no user %q", storage.ErrNotFound, user)
	}
	return nil
}

// grantLogPage is how many grant log entries GrantLog reads at a time;
// policy entries carry a whole role policy.
const grantLogPage = 256

const grantLogCols = `seq, audit_index, at, op, user_name, role, area, deny, project, model, policy, policy_hash`

func (t *txn) GrantLog(after int64, fn func(storage.GrantLogEntry) (bool, error)) error {
	page := make([]storage.GrantLogEntry, 0, grantLogPage)
	for {
		rows, err := t.query(`SELECT `+grantLogCols+` FROM grant_log WHERE seq > ? ORDER BY seq LIMIT ?`, after, grantLogPage)
		if err != nil {
			return err
		}
		page = page[:0]
		for rows.Next() {
			var e storage.GrantLogEntry
			var at string
			if err := rows.Scan(&e.Seq, &e.AuditIndex, &at, &e.Op, &e.User, &e.Grant.Role, &e.Grant.Area, &e.Grant.Deny,
				&e.Grant.Project, &e.Model, &e.Policy, &e.PolicyHash); err != nil {
				rows.Close()
				return classify(err)
			}
			if e.At, err = parseTime(at); err != nil {
				rows.Close()
				return fmt.Errorf("grant log entry %d: %w", e.Seq, err)
			}
			page = append(page, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return classify(err)
		}
		if more, err := feed.Each(page, fn); err != nil || !more {
			return err
		}
		if len(page) < grantLogPage {
			return nil
		}
		after = page[len(page)-1].Seq
	}
}

func (t *txn) AppendGrantLog(e *storage.GrantLogEntry) error {
	if err := grantcheck.Entry(e); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	// Writes are serialized (one writer connection), so no other
	// transaction can take the same seq between the max and the insert.
	row, err := t.queryRow(`INSERT INTO grant_log(`+grantLogCols+`)
		SELECT coalesce(max(seq), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM grant_log
		RETURNING seq`,
		e.AuditIndex, fmtTime(e.At), string(e.Op), e.User, e.Grant.Role, e.Grant.Area, e.Grant.Deny, e.Grant.Project,
		e.Model, e.Policy, e.PolicyHash)
	if err != nil {
		return err
	}
	var seq int64
	if err := row.Scan(&seq); err != nil {
		return fmt.Errorf("grant log entry: %w", classify(err))
	}
	e.Seq = seq
	return nil
}

const grantProposalCols = `seq, kind, user_name, role, area, deny, project, model, policy, reason,
	proposed_by, proposed_at, proposal_audit, confirmed_by, confirmed_at, confirm_audit`

// scanGrantProposal reads one grant_proposals row of grantProposalCols.
func scanGrantProposal(scan func(...any) error) (*storage.GrantProposal, error) {
	var p storage.GrantProposal
	var proposed, confirmed string
	if err := scan(&p.Seq, &p.Kind, &p.User, &p.Grant.Role, &p.Grant.Area, &p.Grant.Deny, &p.Grant.Project,
		&p.Model, &p.Policy, &p.Reason, &p.ProposedBy, &proposed, &p.ProposalAudit,
		&p.ConfirmedBy, &confirmed, &p.ConfirmAudit); err != nil {
		return nil, scanErr(err)
	}
	var err error
	if p.ProposedAt, err = parseTime(proposed); err == nil {
		p.ConfirmedAt, err = parseTime(confirmed)
	}
	if err != nil {
		return nil, fmt.Errorf("grant proposal %d: %w", p.Seq, err)
	}
	return &p, nil
}

func (t *txn) GrantProposal(seq int64) (*storage.GrantProposal, error) {
	row, err := t.queryRow(`SELECT `+grantProposalCols+` FROM grant_proposals WHERE seq = ?`, seq)
	if err != nil {
		return nil, err
	}
	p, err := scanGrantProposal(row.Scan)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no grant proposal %d", storage.ErrNotFound, seq)
	}
	return p, err
}

func (t *txn) GrantProposals(fn func(storage.GrantProposal) (bool, error)) error {
	return feedAll(t, `SELECT `+grantProposalCols+` FROM grant_proposals ORDER BY seq`, scanGrantProposal, fn)
}

func (t *txn) ProposeGrant(p *storage.GrantProposal) error {
	if err := grantcheck.Proposal(p); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	row, err := t.queryRow(`INSERT INTO grant_proposals(seq, kind, user_name, role, area, deny, project, model, policy, reason,
			proposed_by, proposed_at, proposal_audit)
		SELECT coalesce(max(seq), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM grant_proposals
		RETURNING seq`,
		string(p.Kind), p.User, p.Grant.Role, p.Grant.Area, p.Grant.Deny, p.Grant.Project, p.Model, p.Policy, p.Reason,
		p.ProposedBy, fmtTime(p.ProposedAt), p.ProposalAudit)
	if err != nil {
		return err
	}
	var seq int64
	if err := row.Scan(&seq); err != nil {
		return fmt.Errorf("grant proposal: %w", classify(err))
	}
	p.Seq = seq
	return nil
}

func (t *txn) ConfirmGrant(seq int64, by string, at time.Time, auditIndex int64) error {
	if err := grantcheck.Confirmation(seq, by, at, auditIndex); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	res, err := t.exec(`UPDATE grant_proposals SET confirmed_by = ?, confirmed_at = ?, confirm_audit = ?
		WHERE seq = ? AND confirmed_by = ''`, by, fmtTime(at), auditIndex, seq)
	if err != nil {
		return fmt.Errorf("grant proposal %d: %w", seq, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	if _, err := t.GrantProposal(seq); err != nil {
		return err
	}
	return fmt.Errorf("%w: grant proposal %d is already confirmed", storage.ErrConflict, seq)
}
