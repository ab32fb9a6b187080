package postgres

import (
	"errors"
	"fmt"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/internal/feed"
	"github.com/censusvault/censusvault/storage/internal/grantcheck"
	"github.com/jackc/pgx/v5"
)

// usersPage is how many users Users reads at a time, with their grants
// (a range of grants' primary key per page): fn runs between pages, not
// while a query is open, so it may use the transaction, and a national
// roster is never held in memory at once.
const usersPage = 256

// usersQuery reads a page of users in byte order ("C", the order of
// users_name_bytes), whatever the database's collation.
const usersQuery = `SELECT ` + userCols + ` FROM users WHERE name COLLATE "C" > $1 ORDER BY name COLLATE "C" LIMIT $2`

// pageGrantsQuery reads the grants of the users named after $1 up to
// $2: a range of grants' primary key.
const pageGrantsQuery = `SELECT "user", role, area, deny, project FROM grants WHERE "user" > $1 AND "user" <= $2
	ORDER BY "user", role, area, deny, project`

func (t *reader) Users(after string, limit int, fn func(storage.User) (bool, error)) error {
	left := limit // users still wanted; <= 0: no limit
	page := make([]storage.User, 0, usersPage)
	for {
		n := usersPage
		if limit > 0 {
			n = min(n, left)
		}
		rows, err := t.c.Query(t.ctx, usersQuery, after, n)
		if err != nil {
			return t.fail(err)
		}
		page = page[:0]
		for rows.Next() {
			var u storage.User
			var created, expires, revoked string
			if err := rows.Scan(&u.Name, &u.TokenHash, &created, &expires, &revoked, &u.Recipient); err != nil {
				rows.Close()
				return t.fail(err)
			}
			if err := parseTimes([]*time.Time{&u.CreatedAt, &u.ExpiresAt, &u.RevokedAt}, created, expires, revoked); err != nil {
				rows.Close()
				return err
			}
			page = append(page, u)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return t.fail(err)
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

// pageGrants gives each user of page (in byte order, all named after
// after) its grants, in the order User gives them: one range of grants'
// primary key, whose "user" is COLLATE "C".
func (t *reader) pageGrants(after string, page []storage.User) error {
	rows, err := t.c.Query(t.ctx, pageGrantsQuery, after, page[len(page)-1].Name)
	if err != nil {
		return t.fail(err)
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var user string
		var g storage.Grant
		if err := rows.Scan(&user, &g.Role, &g.Area, &g.Deny, &g.Project); err != nil {
			return t.fail(err)
		}
		for i < len(page) && page[i].Name < user {
			i++
		}
		if i == len(page) || page[i].Name != user {
			return errors.New("postgres: a grant of a user missing from users")
		}
		page[i].Grants = append(page[i].Grants, g)
	}
	return t.fail(rows.Err())
}

func (t *writer) RemoveGrant(user string, g storage.Grant) error {
	t.notify(storage.TopicUsers)
	tag, err := t.exec(`DELETE FROM grants WHERE "user" = $1 AND role = $2 AND area = $3 AND deny = $4 AND project = $5`,
		user, g.Role, g.Area, g.Deny, g.Project)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: user %q holds no such grant", storage.ErrNotFound, user)
	}
	return nil
}

func (t *writer) ReplaceToken(user, tokenHash string, expires time.Time) error {
	if tokenHash == "" {
		return fmt.Errorf("postgres: new token of user %q with no hash", user)
	}
	// Looked up first: a unique violation would abort the Update's
	// savepoint, and a refused write must leave the transaction usable.
	// The batch holds the audit head's lock, so no other instance can
	// take the hash between the look-up and the update.
	var known, held bool
	if err := t.c.QueryRow(t.ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE name = $1),
		EXISTS (SELECT 1 FROM users WHERE token_hash = $2 AND name <> $1)`, user, tokenHash).Scan(&known, &held); err != nil {
		return t.fail(err)
	}
	switch {
	case !known:
		return fmt.Errorf("%w: no user %q", storage.ErrNotFound, user)
	case held:
		return fmt.Errorf("%w: another user holds that token hash", storage.ErrConflict)
	}
	t.notify(storage.TopicUsers)
	_, err := t.exec(`UPDATE users SET token_hash = $1, expires_at = $2 WHERE name = $3`, tokenHash, fmtTime(expires), user)
	return err
}

// grantLogPage is how many grant log entries GrantLog reads at a time;
// policy entries carry a whole role policy.
const grantLogPage = 256

const grantLogCols = `seq, audit_index, at, op, user_name, role, area, deny, project, model, policy, policy_hash`

func (t *reader) GrantLog(after int64, fn func(storage.GrantLogEntry) (bool, error)) error {
	page := make([]storage.GrantLogEntry, 0, grantLogPage)
	for {
		rows, err := t.c.Query(t.ctx, `SELECT `+grantLogCols+` FROM grant_log WHERE seq > $1 ORDER BY seq LIMIT $2`,
			after, grantLogPage)
		if err != nil {
			return t.fail(err)
		}
		page = page[:0]
		for rows.Next() {
			var e storage.GrantLogEntry
			var op, at string
			if err := rows.Scan(&e.Seq, &e.AuditIndex, &at, &op, &e.User, &e.Grant.Role, &e.Grant.Area, &e.Grant.Deny,
				&e.Grant.Project, &e.Model, &e.Policy, &e.PolicyHash); err != nil {
				rows.Close()
				return t.fail(err)
			}
			e.Op = storage.GrantOp(op)
			if err := parseTimes([]*time.Time{&e.At}, at); err != nil {
				rows.Close()
				return fmt.Errorf("grant log entry %d: %w", e.Seq, err)
			}
			page = append(page, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return t.fail(err)
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

// AppendGrantLog announces TopicMeta: an entry changes the policy in
// force (whose hash, a meta value, every audit event carries), and an
// instance that keeps the role policy reloads it then.
func (t *writer) AppendGrantLog(e *storage.GrantLogEntry) error {
	if err := grantcheck.Entry(e); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	// The batch holds the audit head's lock, which every writer takes
	// first, so no other instance can take the same seq between the max
	// and the insert.
	var seq int64
	err := t.c.QueryRow(t.ctx, `INSERT INTO grant_log(`+grantLogCols+`)
		SELECT coalesce(max(seq), 0) + 1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 FROM grant_log
		RETURNING seq`,
		e.AuditIndex, fmtTime(e.At), string(e.Op), e.User, e.Grant.Role, e.Grant.Area, e.Grant.Deny, e.Grant.Project,
		e.Model, e.Policy, e.PolicyHash).Scan(&seq)
	if err != nil {
		return fmt.Errorf("grant log entry: %w", t.fail(err))
	}
	t.notify(storage.TopicMeta)
	e.Seq = seq
	return nil
}

const grantProposalCols = `seq, kind, user_name, role, area, deny, project, model, policy, reason,
	proposed_by, proposed_at, proposal_audit, confirmed_by, confirmed_at, confirm_audit`

func (t *reader) scanGrantProposal(row pgx.Row) (*storage.GrantProposal, error) {
	var p storage.GrantProposal
	var kind, proposed, confirmed string
	if err := row.Scan(&p.Seq, &kind, &p.User, &p.Grant.Role, &p.Grant.Area, &p.Grant.Deny, &p.Grant.Project,
		&p.Model, &p.Policy, &p.Reason, &p.ProposedBy, &proposed, &p.ProposalAudit,
		&p.ConfirmedBy, &confirmed, &p.ConfirmAudit); err != nil {
		return nil, t.fail(err)
	}
	p.Kind = storage.GrantOp(kind)
	if err := parseTimes([]*time.Time{&p.ProposedAt, &p.ConfirmedAt}, proposed, confirmed); err != nil {
		return nil, fmt.Errorf("grant proposal %d: %w", p.Seq, err)
	}
	return &p, nil
}

func (t *reader) GrantProposal(seq int64) (*storage.GrantProposal, error) {
	p, err := t.scanGrantProposal(t.c.QueryRow(t.ctx, `SELECT `+grantProposalCols+` FROM grant_proposals WHERE seq = $1`, seq))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no grant proposal %d", storage.ErrNotFound, seq)
	}
	return p, err
}

func (t *reader) GrantProposals(fn func(storage.GrantProposal) (bool, error)) error {
	return feedAll(t, `SELECT `+grantProposalCols+` FROM grant_proposals ORDER BY seq`, t.scanGrantProposal, fn)
}

func (t *writer) ProposeGrant(p *storage.GrantProposal) error {
	if err := grantcheck.Proposal(p); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	var seq int64
	err := t.c.QueryRow(t.ctx, `INSERT INTO grant_proposals(seq, kind, user_name, role, area, deny, project, model, policy, reason,
			proposed_by, proposed_at, proposal_audit)
		SELECT coalesce(max(seq), 0) + 1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM grant_proposals
		RETURNING seq`,
		string(p.Kind), p.User, p.Grant.Role, p.Grant.Area, p.Grant.Deny, p.Grant.Project, p.Model, p.Policy, p.Reason,
		p.ProposedBy, fmtTime(p.ProposedAt), p.ProposalAudit).Scan(&seq)
	if err != nil {
		return fmt.Errorf("grant proposal: %w", t.fail(err))
	}
	p.Seq = seq
	return nil
}

func (t *writer) ConfirmGrant(seq int64, by string, at time.Time, auditIndex int64) error {
	if err := grantcheck.Confirmation(seq, by, at, auditIndex); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	tag, err := t.exec(`UPDATE grant_proposals SET confirmed_by = $1, confirmed_at = $2, confirm_audit = $3
		WHERE seq = $4 AND confirmed_by = ''`, by, fmtTime(at), auditIndex, seq)
	if err != nil {
		return fmt.Errorf("grant proposal %d: %w", seq, err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	if _, err := t.GrantProposal(seq); err != nil {
		return err
	}
	return fmt.Errorf("%w: grant proposal %d is already confirmed", storage.ErrConflict, seq)
}
