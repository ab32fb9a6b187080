package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/internal/feed"
)

// txn implements storage.Tx over one database/sql transaction.
type txn struct {
	ctx context.Context
	tx  *sql.Tx
	// stmts holds the statements prepared on this transaction, which
	// database/sql closes when it ends. They are prepared on the
	// transaction itself: preparing on the *sql.DB needs a free
	// connection, and the write pool's only one is this transaction's.
	// A batch of Updates shares one transaction, so under load each
	// query is still prepared once per batch.
	stmts map[string]*sql.Stmt
}

var _ storage.Tx = (*txn)(nil)

func (t *txn) stmt(q string) (*sql.Stmt, error) {
	if st, ok := t.stmts[q]; ok {
		return st, nil
	}
	st, err := t.tx.PrepareContext(t.ctx, q)
	if err != nil {
		return nil, classify(err)
	}
	if t.stmts == nil {
		t.stmts = make(map[string]*sql.Stmt)
	}
	t.stmts[q] = st
	return st, nil
}

func (t *txn) exec(q string, args ...any) (sql.Result, error) {
	st, err := t.stmt(q)
	if err != nil {
		return nil, err
	}
	res, err := st.ExecContext(t.ctx, args...)
	return res, classify(err)
}

func (t *txn) queryRow(q string, args ...any) (*sql.Row, error) {
	st, err := t.stmt(q)
	if err != nil {
		return nil, err
	}
	return st.QueryRowContext(t.ctx, args...), nil
}

func (t *txn) query(q string, args ...any) (*sql.Rows, error) {
	st, err := t.stmt(q)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(t.ctx, args...)
	return rows, classify(err)
}

func scanErr(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ErrNotFound
	}
	return classify(err)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("sqlite: bad stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}

// ---- meta

func (t *txn) Meta(key string) (string, error) {
	row, err := t.queryRow(`SELECT value FROM meta WHERE key = ?`, key)
	if err != nil {
		return "", err
	}
	var v string
	if err := row.Scan(&v); err != nil {
		return "", scanErr(err)
	}
	return v, nil
}

func (t *txn) PutMeta(key, value string) error {
	_, err := t.exec(`INSERT INTO meta(key, value) VALUES(?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, value)
	return err
}

// ---- areas

func (t *txn) Areas() ([]storage.Area, error) {
	rows, err := t.query(`SELECT code, parent, level, name, planned FROM areas ORDER BY seq`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.Area
	for rows.Next() {
		var a storage.Area
		if err := rows.Scan(&a.Code, &a.Parent, &a.Level, &a.Name, &a.Planned); err != nil {
			return nil, classify(err)
		}
		out = append(out, a)
	}
	return out, classify(rows.Err())
}

func (t *txn) InsertAreas(areas []storage.Area) error {
	for _, a := range areas {
		if _, err := t.exec(`INSERT INTO areas(code, parent, level, name, planned) VALUES(?, ?, ?, ?, ?)`,
			a.Code, a.Parent, a.Level, a.Name, a.Planned); err != nil {
			return fmt.Errorf("area %q: %w", a.Code, err)
		}
	}
	return nil
}

// ---- users

const userCols = `name, token_hash, created_at, expires_at, revoked_at, recipient`

func (t *txn) scanUser(row *sql.Row) (*storage.User, error) {
	var u storage.User
	var created, expires, revoked string
	if err := row.Scan(&u.Name, &u.TokenHash, &created, &expires, &revoked, &u.Recipient); err != nil {
		return nil, scanErr(err)
	}
	var err error
	if u.CreatedAt, err = parseTime(created); err != nil {
		return nil, err
	}
	if u.ExpiresAt, err = parseTime(expires); err != nil {
		return nil, err
	}
	if u.RevokedAt, err = parseTime(revoked); err != nil {
		return nil, err
	}
	rows, err := t.query(`SELECT role, area, deny, project FROM grants WHERE user = ? ORDER BY role, area, deny, project`, u.Name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var g storage.Grant
		if err := rows.Scan(&g.Role, &g.Area, &g.Deny, &g.Project); err != nil {
			return nil, classify(err)
		}
		u.Grants = append(u.Grants, g)
	}
	return &u, classify(rows.Err())
}

func (t *txn) UserByTokenHash(h string) (*storage.User, error) {
	row, err := t.queryRow(`SELECT `+userCols+` FROM users WHERE token_hash = ?`, h)
	if err != nil {
		return nil, err
	}
	return t.scanUser(row)
}

func (t *txn) User(name string) (*storage.User, error) {
	row, err := t.queryRow(`SELECT `+userCols+` FROM users WHERE name = ?`, name)
	if err != nil {
		return nil, err
	}
	return t.scanUser(row)
}

func (t *txn) Grants(fn func(user string, g storage.Grant) error) error {
	rows, err := t.query(`SELECT user, role, area, deny, project FROM grants ORDER BY user, role, area, deny, project`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var u string
		var g storage.Grant
		if err := rows.Scan(&u, &g.Role, &g.Area, &g.Deny, &g.Project); err != nil {
			return classify(err)
		}
		if err := fn(u, g); err != nil {
			return err
		}
	}
	return classify(rows.Err())
}

func (t *txn) InsertUser(u *storage.User) error {
	if _, err := t.exec(`INSERT INTO users(`+userCols+`) VALUES(?, ?, ?, ?, ?, ?)`,
		u.Name, u.TokenHash, fmtTime(u.CreatedAt), fmtTime(u.ExpiresAt), fmtTime(u.RevokedAt), u.Recipient); err != nil {
		return err
	}
	for _, g := range u.Grants {
		if err := t.AddGrant(u.Name, g); err != nil {
			return err
		}
	}
	return nil
}

func (t *txn) AddGrant(user string, g storage.Grant) error {
	_, err := t.exec(`INSERT INTO grants(user, role, area, deny, project) VALUES(?, ?, ?, ?, ?)`,
		user, g.Role, g.Area, g.Deny, g.Project)
	return err
}

func (t *txn) RevokeUser(name string, at time.Time) error {
	res, err := t.exec(`UPDATE users SET revoked_at = ? WHERE name = ?`, fmtTime(at), name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return storage.ErrNotFound
	}
	return nil
}

func (t *txn) SetRecipient(name, recipient string) error {
	res, err := t.exec(`UPDATE users SET recipient = ? WHERE name = ?`, recipient, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: no user %q", storage.ErrNotFound, name)
	}
	return nil
}

// ---- submissions

const subCols = `id, area, commune, household_no, form, form_version, interviewed_at, received_at,
	depositor, payload_sha256, supersedes, superseded_by, operational, ident_kv, ident, analytic_kv, analytic,
	audit_index, receipt`

func (t *txn) scanSubmission(row *sql.Row) (*storage.Submission, error) {
	var s storage.Submission
	var interviewed, received string
	var supersededBy sql.NullString
	var identKV, analyticKV sql.NullInt64
	var ident, analytic []byte
	if err := row.Scan(&s.ID, &s.Area, &s.Commune, &s.HouseholdNo, &s.Form, &s.FormVersion, &interviewed, &received,
		&s.Depositor, &s.PayloadSHA256, &s.Supersedes, &supersededBy, &s.Operational, &identKV, &ident, &analyticKV, &analytic,
		&s.AuditIndex, &s.Receipt); err != nil {
		return nil, scanErr(err)
	}
	var err error
	if s.InterviewedAt, err = parseTime(interviewed); err != nil {
		return nil, err
	}
	if s.ReceivedAt, err = parseTime(received); err != nil {
		return nil, err
	}
	s.SupersededBy = supersededBy.String
	if identKV.Valid {
		s.Sealed = append(s.Sealed, storage.Sealed{Class: "identifying", KeyVersion: int(identKV.Int64), Data: ident})
	}
	if analyticKV.Valid {
		s.Sealed = append(s.Sealed, storage.Sealed{Class: "analytic", KeyVersion: int(analyticKV.Int64), Data: analytic})
	}
	return &s, nil
}

func (t *txn) Submission(id string) (*storage.Submission, error) {
	row, err := t.queryRow(`SELECT `+subCols+` FROM submissions WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	return t.scanSubmission(row)
}

func (t *txn) CurrentSubmission(area string, hh int64) (*storage.Submission, error) {
	row, err := t.queryRow(`SELECT `+subCols+` FROM submissions
		WHERE area = ? AND household_no = ? AND superseded_by IS NULL`, area, hh)
	if err != nil {
		return nil, err
	}
	return t.scanSubmission(row)
}

func (t *txn) InsertSubmission(s *storage.Submission) error {
	var identKV, analyticKV sql.NullInt64
	var ident, analytic []byte
	for _, p := range s.Sealed {
		switch p.Class {
		case "identifying":
			identKV, ident = sql.NullInt64{Int64: int64(p.KeyVersion), Valid: true}, p.Data
		case "analytic":
			analyticKV, analytic = sql.NullInt64{Int64: int64(p.KeyVersion), Valid: true}, p.Data
		default:
			return fmt.Errorf("sqlite: unknown sealed class %q", p.Class)
		}
	}
	var supersededBy any
	if s.SupersededBy != "" {
		supersededBy = s.SupersededBy
	}
	_, err := t.exec(`INSERT INTO submissions(`+subCols+`) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.ID, s.Area, s.Commune, s.HouseholdNo, s.Form, s.FormVersion, fmtTime(s.InterviewedAt), fmtTime(s.ReceivedAt),
		s.Depositor, s.PayloadSHA256, s.Supersedes, supersededBy, s.Operational, identKV, ident, analyticKV, analytic,
		s.AuditIndex, s.Receipt)
	return err
}

func (t *txn) MarkSuperseded(id, by string) error {
	res, err := t.exec(`UPDATE submissions SET superseded_by = ? WHERE id = ? AND superseded_by IS NULL`, by, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := t.Submission(id); err != nil {
			return err // ErrNotFound for an unknown id
		}
		return fmt.Errorf("%w: submission %s is not current", storage.ErrConflict, id)
	}
	return nil
}

// submissionsPage is how many rows SubmissionsSince reads at a time: fn
// runs between pages, with no statement open, so it may use the
// transaction, and a census of submissions is never held in memory.
const submissionsPage = 1000

// sinceQueries are SubmissionsSince's statements, one per sealed class,
// so that a class names a fixed pair of columns and never reaches the SQL
// text. A page is a range of submissions_audit_index: (audit_index,
// rowid) is that index's order, and the keyset that resumes after the
// last row read, even among rows sharing an audit index. Rowids are
// stable within a transaction (only VACUUM renumbers them, and it cannot
// run inside one). The predecessor is found through the primary key; a
// supersedes naming no stored row reads as none (-1), like an empty one.
// Neither the operational fields nor the receipt are read.
var sinceQueries = map[string]string{
	"identifying": sinceQuery("ident_kv", "ident"),
	"analytic":    sinceQuery("analytic_kv", "analytic"),
}

func sinceQuery(kv, data string) string {
	return `SELECT s.rowid, s.id, s.area, s.commune, s.household_no, s.form, s.form_version, s.audit_index,
		coalesce(p.audit_index, -1), s.` + kv + `, s.` + data + `
	FROM submissions s LEFT JOIN submissions p ON s.supersedes <> '' AND p.id = s.supersedes
	WHERE s.audit_index >= ?1 AND (s.audit_index > ?1 OR s.rowid > ?2)
	ORDER BY s.audit_index, s.rowid
	LIMIT ?3`
}

func (t *txn) SubmissionsSince(after int64, class string, fn func(storage.SubmissionRow) (bool, error)) error {
	q, ok := sinceQueries[class]
	if !ok {
		return fmt.Errorf("sqlite: SubmissionsSince: unknown sealed class %q (want identifying or analytic)", class)
	}
	// The first page takes every rowid at audit index after+1 on: with
	// lastRowid at its maximum, the keyset is audit_index > after.
	lastIndex, lastRowid := after, int64(math.MaxInt64)
	page := make([]storage.SubmissionRow, 0, submissionsPage)
	for {
		rows, err := t.query(q, lastIndex, lastRowid, submissionsPage)
		if err != nil {
			return err
		}
		page = page[:0]
		for rows.Next() {
			r := storage.SubmissionRow{Sealed: storage.Sealed{Class: class}}
			var kv sql.NullInt64
			var data []byte
			if err := rows.Scan(&lastRowid, &r.ID, &r.Area, &r.Commune, &r.HouseholdNo, &r.Form, &r.FormVersion,
				&r.AuditIndex, &r.SupersedesIndex, &kv, &data); err != nil {
				rows.Close()
				return classify(err)
			}
			if kv.Valid {
				r.Sealed.KeyVersion, r.Sealed.Data = int(kv.Int64), data
			}
			lastIndex = r.AuditIndex
			page = append(page, r)
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

func (t *txn) AddDeposited(ea string, delta int64) error {
	_, err := t.exec(`INSERT INTO deposited(ea, n) VALUES(?, ?) ON CONFLICT(ea) DO UPDATE SET n = n + excluded.n`, ea, delta)
	return err
}

func (t *txn) Deposited(eas []string) (map[string]int64, error) {
	out := make(map[string]int64)
	const chunk = 500
	for len(eas) > 0 {
		n := min(len(eas), chunk)
		part := eas[:n]
		eas = eas[n:]
		args := make([]any, len(part))
		for i, e := range part {
			args[i] = e
		}
		q := `SELECT ea, n FROM deposited WHERE ea IN (?` + strings.Repeat(", ?", len(part)-1) + `)`
		rows, err := t.tx.QueryContext(t.ctx, q, args...)
		if err != nil {
			return nil, classify(err)
		}
		for rows.Next() {
			var ea string
			var c int64
			if err := rows.Scan(&ea, &c); err != nil {
				rows.Close()
				return nil, classify(err)
			}
			if c != 0 {
				out[ea] = c
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, classify(err)
		}
	}
	return out, nil
}

// ---- keys

const dataKeyCols = `class, commune, version, wrapped, created_at, shredded_at`

// scanDataKey reads one data_keys row of dataKeyCols.
func scanDataKey(scan func(...any) error) (*storage.DataKey, error) {
	var k storage.DataKey
	var created, shredded string
	if err := scan(&k.Class, &k.Commune, &k.Version, &k.Wrapped, &created, &shredded); err != nil {
		return nil, scanErr(err)
	}
	var err error
	if k.CreatedAt, err = parseTime(created); err != nil {
		return nil, err
	}
	if k.ShreddedAt, err = parseTime(shredded); err != nil {
		return nil, err
	}
	return &k, nil
}

func (t *txn) DataKey(class, commune string, version int) (*storage.DataKey, error) {
	row, err := t.queryRow(`SELECT `+dataKeyCols+` FROM data_keys WHERE class = ? AND commune = ? AND version = ?`, class, commune, version)
	if err != nil {
		return nil, err
	}
	return scanDataKey(row.Scan)
}

// dataKeysPage is how many rows DataKeys reads at a time: fn runs between
// pages, with no statement open, so it may write data_keys (SQLite does
// not promise what a cursor sees of a table changed under it), and the
// keys of a whole country are never all held in memory.
const dataKeysPage = 256

func (t *txn) DataKeys(fn func(storage.DataKey) (bool, error)) error {
	page := make([]storage.DataKey, 0, dataKeysPage)
	var last *storage.DataKey
	for {
		var rows *sql.Rows
		var err error
		if last == nil {
			rows, err = t.query(`SELECT `+dataKeyCols+` FROM data_keys
				ORDER BY class, commune, version LIMIT ?`, dataKeysPage)
		} else {
			rows, err = t.query(`SELECT `+dataKeyCols+` FROM data_keys
				WHERE (class, commune, version) > (?, ?, ?)
				ORDER BY class, commune, version LIMIT ?`, last.Class, last.Commune, last.Version, dataKeysPage)
		}
		if err != nil {
			return err
		}
		page = page[:0]
		for rows.Next() {
			k, err := scanDataKey(rows.Scan)
			if err != nil {
				rows.Close()
				return err
			}
			page = append(page, *k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return classify(err)
		}
		if more, err := feed.Each(page, fn); err != nil || !more {
			return err
		}
		if len(page) < dataKeysPage {
			return nil
		}
		k := page[len(page)-1]
		last = &k
	}
}

func (t *txn) PutDataKey(k *storage.DataKey) error {
	if len(k.Wrapped) == 0 {
		return errors.New("sqlite: a data key with no wrapped bytes")
	}
	if !k.ShreddedAt.IsZero() {
		return errors.New("sqlite: PutDataKey of a shredded data key (ShredDataKeys makes tombstones)")
	}
	_, err := t.exec(`INSERT INTO data_keys(class, commune, version, wrapped, created_at) VALUES(?, ?, ?, ?, ?)`,
		k.Class, k.Commune, k.Version, k.Wrapped, fmtTime(k.CreatedAt))
	return err
}

func (t *txn) RewrapDataKey(class, commune string, version int, wrapped []byte) error {
	if len(wrapped) == 0 {
		return errors.New("sqlite: rewrap with no wrapped bytes")
	}
	res, err := t.exec(`UPDATE data_keys SET wrapped = ?
		WHERE class = ? AND commune = ? AND version = ? AND shredded_at = ''`, wrapped, class, commune, version)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: no live data key %s/%s/%d", storage.ErrNotFound, class, commune, version)
	}
	return nil
}

// ShredDataKeys empties wrapped rather than overwrite it in place: either
// way SQLite writes the row anew, and with secure_delete (the writer's
// setting) zeroes the space the old one held. Compact clears the copies
// left in the write-ahead log and old page images.
func (t *txn) ShredDataKeys(class string, communes []string, at time.Time) (int, error) {
	if at.IsZero() {
		return 0, errors.New("sqlite: shred with a zero time (a zero ShreddedAt means live)")
	}
	shredded := fmtTime(at)
	total := 0
	// Chunked like Deposited: one statement's variables are bounded.
	const chunk = 500
	for len(communes) > 0 {
		n := min(len(communes), chunk)
		part := communes[:n]
		communes = communes[n:]
		args := make([]any, 0, len(part)+2)
		args = append(args, shredded, class)
		for _, c := range part {
			args = append(args, c)
		}
		res, err := t.tx.ExecContext(t.ctx, `UPDATE data_keys SET wrapped = X'', shredded_at = ?
			WHERE class = ? AND shredded_at = '' AND commune IN (?`+strings.Repeat(", ?", len(part)-1)+`)`, args...)
		if err != nil {
			return total, classify(err)
		}
		affected, err := res.RowsAffected()
		if err != nil {
			return total, classify(err)
		}
		total += int(affected)
	}
	return total, nil
}

func (t *txn) Keys(purpose string) ([]storage.Key, error) {
	rows, err := t.query(`SELECT version, wrapped, created_at, not_after FROM keys WHERE purpose = ? ORDER BY version DESC`, purpose)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.Key
	for rows.Next() {
		k := storage.Key{Purpose: purpose}
		var created, notAfter string
		if err := rows.Scan(&k.Version, &k.Wrapped, &created, &notAfter); err != nil {
			return nil, classify(err)
		}
		if k.CreatedAt, err = parseTime(created); err != nil {
			return nil, err
		}
		if k.NotAfter, err = parseTime(notAfter); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, classify(rows.Err())
}

func (t *txn) PutKey(k *storage.Key) error {
	_, err := t.exec(`INSERT INTO keys(purpose, version, wrapped, created_at, not_after) VALUES(?, ?, ?, ?, ?)`,
		k.Purpose, k.Version, k.Wrapped, fmtTime(k.CreatedAt), fmtTime(k.NotAfter))
	return err
}

func (t *txn) RewrapKey(purpose string, version int, wrapped []byte) error {
	if len(wrapped) == 0 {
		return errors.New("sqlite: rewrap with no wrapped bytes")
	}
	res, err := t.exec(`UPDATE keys SET wrapped = ? WHERE purpose = ? AND version = ?`, wrapped, purpose, version)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: no key %s version %d", storage.ErrNotFound, purpose, version)
	}
	return nil
}

func (t *txn) RetireKey(purpose string, version int, notAfter time.Time) error {
	res, err := t.exec(`UPDATE keys SET not_after = ? WHERE purpose = ? AND version = ?`, fmtTime(notAfter), purpose, version)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// ---- audit

func (t *txn) AuditHead() (storage.AuditHead, error) {
	row, err := t.queryRow(`SELECT idx, chain_hash FROM audit_events ORDER BY idx DESC LIMIT 1`)
	if err != nil {
		return storage.AuditHead{}, err
	}
	var idx int64
	var chain []byte
	if err := row.Scan(&idx, &chain); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return storage.AuditHead{}, nil
		}
		return storage.AuditHead{}, classify(err)
	}
	h := storage.AuditHead{Next: idx + 1}
	if len(chain) != len(h.ChainHash) {
		return storage.AuditHead{}, fmt.Errorf("sqlite: audit event %d has a malformed chain hash", idx)
	}
	copy(h.ChainHash[:], chain)
	return h, nil
}

// AppendAudit stores the event and its tree hashes in a savepoint of
// their own, so that a failure midway (the disk, a trigger) leaves
// neither, even if the caller went on.
func (t *txn) AppendAudit(build func(storage.AuditHead) (storage.AuditRecord, error)) (storage.AuditRecord, error) {
	head, err := t.AuditHead()
	if err != nil {
		return storage.AuditRecord{}, err
	}
	rec, err := build(head)
	if err != nil {
		return storage.AuditRecord{}, err
	}
	if rec.Index != head.Next {
		return storage.AuditRecord{}, fmt.Errorf("sqlite: audit record index %d, want %d", rec.Index, head.Next)
	}
	if len(rec.Event) == 0 || rec.Pruned {
		return storage.AuditRecord{}, fmt.Errorf("sqlite: audit record %d has no event (an empty event is how a pruned record reads)", rec.Index)
	}
	if len(rec.Hashes) > 0 {
		if err := t.checkHashIndex(rec.HashIndex); err != nil {
			return storage.AuditRecord{}, fmt.Errorf("sqlite: audit record %d: %w", rec.Index, err)
		}
	}
	err = t.savepoint("audit_append", func() error {
		if _, err := t.exec(`INSERT INTO audit_events(idx, event, leaf_hash, chain_hash) VALUES(?, ?, ?, ?)`,
			rec.Index, rec.Event, rec.LeafHash[:], rec.ChainHash[:]); err != nil {
			return err
		}
		return t.insertHashes(rec.HashIndex, rec.Hashes)
	})
	if err != nil {
		return storage.AuditRecord{}, fmt.Errorf("failed to append audit event: %w", err)
	}
	return rec, nil
}

// savepoint runs fn in a savepoint named name, and undoes what fn wrote
// if it fails.
func (t *txn) savepoint(name string, fn func() error) error {
	if _, err := t.tx.ExecContext(t.ctx, "SAVEPOINT "+name); err != nil {
		return classify(err)
	}
	if err := fn(); err != nil {
		// If SQLite already rolled the whole transaction back (a full
		// disk, an I/O error), ROLLBACK TO fails too: the committer
		// finds that when it releases its own savepoint.
		if _, rerr := t.tx.ExecContext(t.ctx, "ROLLBACK TO "+name); rerr != nil {
			return errors.Join(err, classify(rerr))
		}
		if _, rerr := t.tx.ExecContext(t.ctx, "RELEASE "+name); rerr != nil {
			return errors.Join(err, classify(rerr))
		}
		return err
	}
	_, err := t.tx.ExecContext(t.ctx, "RELEASE "+name)
	return classify(err)
}

// nextHashIndex is the stored-hash index after the last stored one:
// AuditHashCount, since hashes are dense. It is one seek to the end of
// the primary key.
func (t *txn) nextHashIndex() (int64, error) {
	row, err := t.queryRow(`SELECT coalesce(max(idx) + 1, 0) FROM audit_hashes`)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := row.Scan(&n); err != nil {
		return 0, classify(err)
	}
	return n, nil
}

// checkHashIndex refuses to store hashes from first on unless first is
// the next stored-hash index.
func (t *txn) checkHashIndex(first int64) error {
	next, err := t.nextHashIndex()
	if err != nil {
		return err
	}
	switch {
	case first < 0:
		return fmt.Errorf("stored-hash index %d is negative", first)
	case first < next:
		return fmt.Errorf("%w: stored-hash index %d is taken (the next free one is %d)", storage.ErrConflict, first, next)
	case first > next:
		return fmt.Errorf("stored-hash index %d would leave a gap: the next one is %d (backfill the earlier hashes first)", first, next)
	}
	return nil
}

// hashChunk is how many hashes one INSERT statement carries.
const hashChunk = 256

// insertHashes stores hashes at first, first+1, …, a chunk per statement.
func (t *txn) insertHashes(first int64, hashes [][32]byte) error {
	for len(hashes) > 0 {
		n := min(len(hashes), hashChunk)
		args := make([]any, 0, 2*n)
		for i, h := range hashes[:n] {
			args = append(args, first+int64(i), h[:])
		}
		if _, err := t.exec(`INSERT INTO audit_hashes(idx, hash) VALUES (?, ?)`+strings.Repeat(", (?, ?)", n-1), args...); err != nil {
			return fmt.Errorf("failed to store audit hashes from index %d: %w", first, err)
		}
		first += int64(n)
		hashes = hashes[n:]
	}
	return nil
}

func (t *txn) PutAuditHashes(first int64, hashes [][32]byte) error {
	if len(hashes) == 0 {
		return nil
	}
	if err := t.checkHashIndex(first); err != nil {
		return fmt.Errorf("sqlite: PutAuditHashes: %w", err)
	}
	return t.savepoint("audit_hashes", func() error { return t.insertHashes(first, hashes) })
}

// auditHashesQuery reads the hashes at the indexes of a JSON array: the
// statement text (and its preparation) is the same for any number of
// indexes, and each index is a seek of the primary key.
const auditHashesQuery = `SELECT idx, hash FROM audit_hashes WHERE idx IN (SELECT value FROM json_each(?))`

// AuditHashes reads the asked indexes with one statement.
func (t *txn) AuditHashes(indexes []int64) ([][32]byte, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	list := make([]byte, 0, 12*len(indexes))
	list = append(list, '[')
	for i, x := range indexes {
		if i > 0 {
			list = append(list, ',')
		}
		list = strconv.AppendInt(list, x, 10)
	}
	list = append(list, ']')
	rows, err := t.query(auditHashesQuery, string(list))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := make(map[int64][32]byte, len(indexes))
	for rows.Next() {
		var idx int64
		var h []byte
		if err := rows.Scan(&idx, &h); err != nil {
			return nil, classify(err)
		}
		if len(h) != 32 {
			return nil, fmt.Errorf("sqlite: stored audit hash %d is malformed", idx)
		}
		found[idx] = [32]byte(h)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}
	out := make([][32]byte, len(indexes))
	for i, x := range indexes {
		h, ok := found[x]
		if !ok {
			return nil, fmt.Errorf("%w: no stored audit hash at index %d", storage.ErrNotFound, x)
		}
		out[i] = h
	}
	return out, nil
}

func (t *txn) AuditHashCount() (int64, error) {
	return t.nextHashIndex()
}

// PruneAuditEvents empties the events (the column is NOT NULL: an empty
// event is a pruned one). With secure_delete (the writer's setting)
// SQLite zeroes the space the bodies held in the database file; the
// write-ahead log keeps copies until Compact.
func (t *txn) PruneAuditEvents(before int64) (int64, error) {
	res, err := t.exec(`UPDATE audit_events SET event = X'' WHERE idx < ? AND length(event) > 0`, before)
	if err != nil {
		return 0, fmt.Errorf("sqlite: failed to prune audit events: %w", err)
	}
	n, err := res.RowsAffected()
	return n, classify(err)
}

// ---- checkpoints

func (t *txn) PutCheckpoint(size int64, note []byte, at time.Time) error {
	switch {
	case len(note) == 0:
		return errors.New("sqlite: PutCheckpoint with an empty note")
	case at.IsZero():
		return errors.New("sqlite: PutCheckpoint with a zero time")
	case size < 1:
		return fmt.Errorf("sqlite: PutCheckpoint of a tree of %d records (at least 1)", size)
	}
	head, err := t.AuditHead()
	if err != nil {
		return err
	}
	if size > head.Next {
		return fmt.Errorf("sqlite: PutCheckpoint of a tree of %d records, but the log has %d", size, head.Next)
	}
	// Looked up first: a stored size is refused by a trigger (which
	// keeps INSERT OR REPLACE out), not as a uniqueness conflict.
	if _, err := t.Checkpoint(size); err == nil {
		return fmt.Errorf("%w: a checkpoint of size %d exists", storage.ErrConflict, size)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	_, err = t.exec(`INSERT INTO audit_checkpoints(size, note, created_at) VALUES(?, ?, ?)`, size, note, fmtTime(at))
	return err
}

func (t *txn) scanCheckpoint(q string, arg int64) (*storage.Checkpoint, error) {
	row, err := t.queryRow(q, arg)
	if err != nil {
		return nil, err
	}
	var c storage.Checkpoint
	var created string
	if err := row.Scan(&c.Size, &c.Note, &created); err != nil {
		return nil, scanErr(err)
	}
	if c.CreatedAt, err = parseTime(created); err != nil {
		return nil, err
	}
	return &c, nil
}

func (t *txn) Checkpoint(size int64) (*storage.Checkpoint, error) {
	c, err := t.scanCheckpoint(`SELECT size, note, created_at FROM audit_checkpoints WHERE size = ?`, size)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no checkpoint of size %d", storage.ErrNotFound, size)
	}
	return c, err
}

func (t *txn) LatestCheckpoint() (*storage.Checkpoint, error) {
	c, err := t.scanCheckpoint(`SELECT size, note, created_at FROM audit_checkpoints WHERE size > ? ORDER BY size DESC LIMIT 1`, 0)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no checkpoint yet", storage.ErrNotFound)
	}
	return c, err
}

func (t *txn) CheckpointCovering(index int64) (*storage.Checkpoint, error) {
	c, err := t.scanCheckpoint(`SELECT size, note, created_at FROM audit_checkpoints WHERE size > ? ORDER BY size LIMIT 1`, index)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no checkpoint covers audit record %d yet", storage.ErrNotFound, index)
	}
	return c, err
}

func (t *txn) AuditRecords(from int64, limit int, fn func(storage.AuditRecord) (bool, error)) error {
	q := `SELECT idx, event, leaf_hash, chain_hash FROM audit_events WHERE idx >= ? ORDER BY idx`
	args := []any{from}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := t.tx.QueryContext(t.ctx, q, args...)
	if err != nil {
		return classify(err)
	}
	defer rows.Close()
	for rows.Next() {
		var r storage.AuditRecord
		var leaf, chain []byte
		if err := rows.Scan(&r.Index, &r.Event, &leaf, &chain); err != nil {
			return classify(err)
		}
		// A wrong length is kept visible (zero-padded/truncated copy
		// would hide it): report it as an error naming the index.
		if len(leaf) != 32 || len(chain) != 32 {
			return fmt.Errorf("sqlite: audit event %d has a malformed hash column", r.Index)
		}
		copy(r.LeafHash[:], leaf)
		copy(r.ChainHash[:], chain)
		if len(r.Event) == 0 {
			r.Event, r.Pruned = nil, true
		}
		more, err := fn(r)
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
	return classify(rows.Err())
}
