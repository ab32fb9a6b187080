package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/internal/feed"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// reader implements storage.ReadTx on a connection inside a transaction.
// Statements are prepared once per connection and cached by pgx.
type reader struct {
	ctx context.Context
	c   *pgx.Conn
	// failed is the last statement error, kept so that an Update which
	// swallowed it can be told why it was rolled back.
	failed error
}

// writer implements storage.Tx inside a write batch.
type writer struct {
	reader
	b *batch
	// topics are the change notifications this Update queues, sent only
	// if it commits.
	topics map[string]bool
}

// batch is what the Updates of one transaction share.
type batch struct {
	// head is the audit head, read under its row lock when the batch
	// began and advanced by each AppendAudit; written back once before
	// COMMIT.
	head storage.AuditHead
	// hashNext is the next stored-hash index (AuditHashCount), read
	// when first needed (-1 until then) and advanced by each write of
	// hashes. The head lock keeps every other writer out meanwhile.
	hashNext int64
	topics   map[string]bool
}

var (
	_ storage.ReadTx = (*reader)(nil)
	_ storage.Tx     = (*writer)(nil)
)

// fail classifies a statement error and remembers it.
func (t *reader) fail(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.ErrNotFound
	}
	err = classify(err)
	if t.c.IsClosed() && !errors.Is(err, storage.ErrUnavailable) {
		err = fmt.Errorf("%w: %v", storage.ErrUnavailable, err)
	}
	t.failed = err
	return err
}

func (t *reader) exec(q string, args ...any) (pgconn.CommandTag, error) {
	tag, err := t.c.Exec(t.ctx, q, args...)
	return tag, t.fail(err)
}

// insert runs an INSERT … ON CONFLICT DO NOTHING and reports a row it did
// not insert as ErrConflict. A conflict caught that way leaves the
// transaction usable, as in SQLite, where a unique violation aborts only
// its statement; a raised unique_violation would abort the whole
// savepoint.
func (t *reader) insert(what, q string, args ...any) error {
	tag, err := t.exec(q, args...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %s exists", storage.ErrConflict, what)
	}
	return nil
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
		return time.Time{}, fmt.Errorf("postgres: bad stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}

func parseTimes(dst []*time.Time, src ...string) error {
	for i, s := range src {
		t, err := parseTime(s)
		if err != nil {
			return err
		}
		*dst[i] = t
	}
	return nil
}

// ---- meta

func (t *reader) Meta(key string) (string, error) {
	var v string
	err := t.c.QueryRow(t.ctx, `SELECT value FROM meta WHERE key = $1`, key).Scan(&v)
	return v, t.fail(err)
}

func (t *writer) PutMeta(key, value string) error {
	t.notify(storage.TopicMeta)
	_, err := t.exec(`INSERT INTO meta(key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, key, value)
	return err
}

// notify queues a change notification for topic.
func (t *writer) notify(topic string) {
	if t.topics == nil {
		t.topics = make(map[string]bool)
	}
	t.topics[topic] = true
}

// ---- areas

func (t *reader) Areas() ([]storage.Area, error) {
	rows, err := t.c.Query(t.ctx, `SELECT code, parent, level, name, planned FROM areas ORDER BY seq`)
	if err != nil {
		return nil, t.fail(err)
	}
	defer rows.Close()
	var out []storage.Area
	for rows.Next() {
		var a storage.Area
		if err := rows.Scan(&a.Code, &a.Parent, &a.Level, &a.Name, &a.Planned); err != nil {
			return nil, t.fail(err)
		}
		out = append(out, a)
	}
	return out, t.fail(rows.Err())
}

// InsertAreas inserts all areas in one statement, in order, and names the
// first one whose code exists (or repeats within areas).
func (t *writer) InsertAreas(areas []storage.Area) error {
	if len(areas) == 0 {
		return nil
	}
	codes, parents, levels, names := make([]string, len(areas)), make([]string, len(areas)), make([]string, len(areas)), make([]string, len(areas))
	planned := make([]int64, len(areas))
	for i, a := range areas {
		codes[i], parents[i], levels[i], names[i], planned[i] = a.Code, a.Parent, a.Level, a.Name, a.Planned
	}
	rows, err := t.c.Query(t.ctx, `INSERT INTO areas(code, parent, level, name, planned)
		SELECT code, parent, level, name, planned
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
			WITH ORDINALITY AS a(code, parent, level, name, planned, ord)
		ORDER BY ord
		ON CONFLICT DO NOTHING
		RETURNING code`, codes, parents, levels, names, planned)
	if err != nil {
		return t.fail(err)
	}
	inserted := make(map[string]bool, len(areas))
	for rows.Next() {
		var code string
		if err := rows.Scan(&code); err != nil {
			rows.Close()
			return t.fail(err)
		}
		inserted[code] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return t.fail(err)
	}
	if len(inserted) == len(areas) {
		return nil
	}
	seen := make(map[string]bool, len(areas))
	for _, a := range areas {
		if !inserted[a.Code] || seen[a.Code] {
			return fmt.Errorf("area %q: %w: the code exists", a.Code, storage.ErrConflict)
		}
		seen[a.Code] = true
	}
	return fmt.Errorf("%w: some areas exist", storage.ErrConflict)
}

// ---- users

const userCols = `name, token_hash, created_at, expires_at, revoked_at, recipient`

func (t *reader) scanUser(row pgx.Row) (*storage.User, error) {
	var u storage.User
	var created, expires, revoked string
	if err := row.Scan(&u.Name, &u.TokenHash, &created, &expires, &revoked, &u.Recipient); err != nil {
		return nil, t.fail(err)
	}
	if err := parseTimes([]*time.Time{&u.CreatedAt, &u.ExpiresAt, &u.RevokedAt}, created, expires, revoked); err != nil {
		return nil, err
	}
	rows, err := t.c.Query(t.ctx, `SELECT role, area, deny, project FROM grants WHERE "user" = $1
		ORDER BY role, area, deny, project`, u.Name)
	if err != nil {
		return nil, t.fail(err)
	}
	defer rows.Close()
	for rows.Next() {
		var g storage.Grant
		if err := rows.Scan(&g.Role, &g.Area, &g.Deny, &g.Project); err != nil {
			return nil, t.fail(err)
		}
		u.Grants = append(u.Grants, g)
	}
	return &u, t.fail(rows.Err())
}

func (t *reader) UserByTokenHash(h string) (*storage.User, error) {
	return t.scanUser(t.c.QueryRow(t.ctx, `SELECT `+userCols+` FROM users WHERE token_hash = $1`, h))
}

func (t *reader) User(name string) (*storage.User, error) {
	return t.scanUser(t.c.QueryRow(t.ctx, `SELECT `+userCols+` FROM users WHERE name = $1`, name))
}

// grantsPage is how many grants Grants reads at a time: fn runs between
// pages, not while a query is open, so it may use the transaction, and a
// national roster of grants is never held in memory at once.
const grantsPage = 1000

func (t *reader) Grants(fn func(user string, g storage.Grant) error) error {
	type row struct {
		user string
		g    storage.Grant
	}
	page := make([]row, 0, grantsPage)
	var last *row
	for {
		page = page[:0]
		var rows pgx.Rows
		var err error
		if last == nil {
			rows, err = t.c.Query(t.ctx, `SELECT "user", role, area, deny, project FROM grants
				ORDER BY "user", role, area, deny, project LIMIT $1`, grantsPage)
		} else {
			rows, err = t.c.Query(t.ctx, `SELECT "user", role, area, deny, project FROM grants
				WHERE ("user", role, area, deny, project) > ($1, $2, $3, $4, $5)
				ORDER BY "user", role, area, deny, project LIMIT $6`,
				last.user, last.g.Role, last.g.Area, last.g.Deny, last.g.Project, grantsPage)
		}
		if err != nil {
			return t.fail(err)
		}
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.user, &r.g.Role, &r.g.Area, &r.g.Deny, &r.g.Project); err != nil {
				rows.Close()
				return t.fail(err)
			}
			page = append(page, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return t.fail(err)
		}
		for _, r := range page {
			if err := fn(r.user, r.g); err != nil {
				return err
			}
		}
		if len(page) < grantsPage {
			return nil
		}
		r := page[len(page)-1]
		last = &r
	}
}

func (t *writer) InsertUser(u *storage.User) error {
	t.notify(storage.TopicUsers)
	if err := t.insert("user "+u.Name+" or its token hash",
		`INSERT INTO users(`+userCols+`) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
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

func (t *writer) AddGrant(user string, g storage.Grant) error {
	t.notify(storage.TopicUsers)
	return t.insert("that grant", `INSERT INTO grants("user", role, area, deny, project) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT DO NOTHING`, user, g.Role, g.Area, g.Deny, g.Project)
}

func (t *writer) RevokeUser(name string, at time.Time) error {
	t.notify(storage.TopicUsers)
	tag, err := t.exec(`UPDATE users SET revoked_at = $1 WHERE name = $2`, fmtTime(at), name)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return storage.ErrNotFound
	}
	return nil
}

func (t *writer) SetRecipient(name, recipient string) error {
	t.notify(storage.TopicUsers)
	tag, err := t.exec(`UPDATE users SET recipient = $1 WHERE name = $2`, recipient, name)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: no user %q", storage.ErrNotFound, name)
	}
	return nil
}

// ---- submissions

const subCols = `id, area, commune, household_no, form, form_version, interviewed_at, received_at,
	depositor, payload_sha256, supersedes, superseded_by, operational, ident_kv, ident, analytic_kv, analytic,
	audit_index, receipt`

func (t *reader) scanSubmission(row pgx.Row) (*storage.Submission, error) {
	var s storage.Submission
	var interviewed, received string
	var supersededBy *string
	var identKV, analyticKV *int32
	var ident, analytic []byte
	if err := row.Scan(&s.ID, &s.Area, &s.Commune, &s.HouseholdNo, &s.Form, &s.FormVersion, &interviewed, &received,
		&s.Depositor, &s.PayloadSHA256, &s.Supersedes, &supersededBy, &s.Operational, &identKV, &ident, &analyticKV, &analytic,
		&s.AuditIndex, &s.Receipt); err != nil {
		return nil, t.fail(err)
	}
	if err := parseTimes([]*time.Time{&s.InterviewedAt, &s.ReceivedAt}, interviewed, received); err != nil {
		return nil, err
	}
	if supersededBy != nil {
		s.SupersededBy = *supersededBy
	}
	if identKV != nil {
		s.Sealed = append(s.Sealed, storage.Sealed{Class: "identifying", KeyVersion: int(*identKV), Data: ident})
	}
	if analyticKV != nil {
		s.Sealed = append(s.Sealed, storage.Sealed{Class: "analytic", KeyVersion: int(*analyticKV), Data: analytic})
	}
	return &s, nil
}

func (t *reader) Submission(id string) (*storage.Submission, error) {
	return t.scanSubmission(t.c.QueryRow(t.ctx, `SELECT `+subCols+` FROM submissions WHERE id = $1`, id))
}

func (t *reader) CurrentSubmission(area string, hh int64) (*storage.Submission, error) {
	return t.scanSubmission(t.c.QueryRow(t.ctx, `SELECT `+subCols+` FROM submissions
		WHERE area = $1 AND household_no = $2 AND superseded_by IS NULL`, area, hh))
}

func (t *writer) InsertSubmission(s *storage.Submission) error {
	var identKV, analyticKV *int32
	var ident, analytic []byte
	for _, p := range s.Sealed {
		kv := int32(p.KeyVersion)
		if int(kv) != p.KeyVersion {
			return fmt.Errorf("postgres: key version %d out of range", p.KeyVersion)
		}
		switch p.Class {
		case "identifying":
			identKV, ident = &kv, p.Data
		case "analytic":
			analyticKV, analytic = &kv, p.Data
		default:
			return fmt.Errorf("postgres: unknown sealed class %q", p.Class)
		}
	}
	var supersededBy *string
	if s.SupersededBy != "" {
		supersededBy = &s.SupersededBy
	}
	return t.insert("submission "+s.ID+" or a current submission of its household",
		`INSERT INTO submissions(`+subCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
		ON CONFLICT DO NOTHING`,
		s.ID, s.Area, s.Commune, s.HouseholdNo, s.Form, s.FormVersion, fmtTime(s.InterviewedAt), fmtTime(s.ReceivedAt),
		s.Depositor, s.PayloadSHA256, s.Supersedes, supersededBy, s.Operational, identKV, ident, analyticKV, analytic,
		s.AuditIndex, s.Receipt)
}

func (t *writer) MarkSuperseded(id, by string) error {
	tag, err := t.exec(`UPDATE submissions SET superseded_by = $1 WHERE id = $2 AND superseded_by IS NULL`, by, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		if _, err := t.Submission(id); err != nil {
			return err // ErrNotFound for an unknown id
		}
		return fmt.Errorf("%w: submission %s is not current", storage.ErrConflict, id)
	}
	return nil
}

// submissionsPage is how many rows SubmissionsSince reads at a time: fn
// runs between pages, not while a query is open, so it may use the
// transaction, and a census of submissions is never held in memory.
const submissionsPage = 1000

// sinceQueries are SubmissionsSince's statements, one per sealed class,
// so that a class names a fixed pair of columns and never reaches the SQL
// text. A page is a range of submissions_audit_index (migration 4),
// ordered by (audit_index, id): the keyset that resumes after the last
// row read, even among rows sharing an audit index. On the first page
// the last id is NULL, which makes the keyset audit_index > after. The
// predecessor is found through the primary key; a supersedes naming no
// stored row reads as none (-1), like an empty one. Neither the
// operational fields nor the receipt are read.
var sinceQueries = map[string]string{
	"identifying": sinceQuery("ident_kv", "ident"),
	"analytic":    sinceQuery("analytic_kv", "analytic"),
}

func sinceQuery(kv, data string) string {
	return `SELECT s.id, s.area, s.commune, s.household_no, s.form, s.form_version, s.audit_index,
		coalesce(p.audit_index, -1), s.` + kv + `, s.` + data + `
	FROM submissions s LEFT JOIN submissions p ON s.supersedes <> '' AND p.id = s.supersedes
	WHERE s.audit_index >= $1 AND (s.audit_index > $1 OR s.id > $2::text)
	ORDER BY s.audit_index, s.id
	LIMIT $3`
}

func (t *reader) SubmissionsSince(after int64, class string, fn func(storage.SubmissionRow) (bool, error)) error {
	q, ok := sinceQueries[class]
	if !ok {
		return fmt.Errorf("postgres: SubmissionsSince: unknown sealed class %q (want identifying or analytic)", class)
	}
	lastIndex, lastID := after, (*string)(nil)
	page := make([]storage.SubmissionRow, 0, submissionsPage)
	for {
		rows, err := t.c.Query(t.ctx, q, lastIndex, lastID, submissionsPage)
		if err != nil {
			return t.fail(err)
		}
		page = page[:0]
		for rows.Next() {
			r := storage.SubmissionRow{Sealed: storage.Sealed{Class: class}}
			var kv *int32
			var data []byte
			if err := rows.Scan(&r.ID, &r.Area, &r.Commune, &r.HouseholdNo, &r.Form, &r.FormVersion,
				&r.AuditIndex, &r.SupersedesIndex, &kv, &data); err != nil {
				rows.Close()
				return t.fail(err)
			}
			if kv != nil {
				r.Sealed.KeyVersion, r.Sealed.Data = int(*kv), data
			}
			page = append(page, r)
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
		last := page[len(page)-1]
		lastIndex, lastID = last.AuditIndex, &last.ID
	}
}

func (t *writer) AddDeposited(ea string, delta int64) error {
	_, err := t.exec(`INSERT INTO deposited(ea, n) VALUES ($1, $2)
		ON CONFLICT (ea) DO UPDATE SET n = deposited.n + EXCLUDED.n`, ea, delta)
	return err
}

func (t *reader) Deposited(eas []string) (map[string]int64, error) {
	out := make(map[string]int64)
	if len(eas) == 0 {
		return out, nil
	}
	rows, err := t.c.Query(t.ctx, `SELECT ea, n FROM deposited WHERE ea = ANY($1)`, eas)
	if err != nil {
		return nil, t.fail(err)
	}
	defer rows.Close()
	for rows.Next() {
		var ea string
		var n int64
		if err := rows.Scan(&ea, &n); err != nil {
			return nil, t.fail(err)
		}
		if n != 0 {
			out[ea] = n
		}
	}
	return out, t.fail(rows.Err())
}

// ---- keys

const dataKeyCols = `class, commune, version, wrapped, created_at, shredded_at`

// scanDataKey reads one data_keys row of dataKeyCols.
func (t *reader) scanDataKey(row pgx.Row) (*storage.DataKey, error) {
	var k storage.DataKey
	var created, shredded string
	if err := row.Scan(&k.Class, &k.Commune, &k.Version, &k.Wrapped, &created, &shredded); err != nil {
		return nil, t.fail(err)
	}
	if err := parseTimes([]*time.Time{&k.CreatedAt, &k.ShreddedAt}, created, shredded); err != nil {
		return nil, err
	}
	return &k, nil
}

func (t *reader) DataKey(class, commune string, version int) (*storage.DataKey, error) {
	return t.scanDataKey(t.c.QueryRow(t.ctx, `SELECT `+dataKeyCols+` FROM data_keys
		WHERE class = $1 AND commune = $2 AND version = $3`, class, commune, version))
}

// dataKeysPage is how many rows DataKeys reads at a time: fn runs between
// pages, not while a query is open, so it may use the transaction, and
// the keys of a whole country are never all held in memory.
const dataKeysPage = 500

func (t *reader) DataKeys(fn func(storage.DataKey) (bool, error)) error {
	page := make([]storage.DataKey, 0, dataKeysPage)
	var last *storage.DataKey
	for {
		var rows pgx.Rows
		var err error
		// class and commune collate "C" (migration 2): byte order, as
		// the contract says, served by the primary key.
		if last == nil {
			rows, err = t.c.Query(t.ctx, `SELECT `+dataKeyCols+` FROM data_keys
				ORDER BY class, commune, version LIMIT $1`, dataKeysPage)
		} else {
			rows, err = t.c.Query(t.ctx, `SELECT `+dataKeyCols+` FROM data_keys
				WHERE (class, commune, version) > ($1, $2, $3)
				ORDER BY class, commune, version LIMIT $4`, last.Class, last.Commune, last.Version, dataKeysPage)
		}
		if err != nil {
			return t.fail(err)
		}
		page = page[:0]
		for rows.Next() {
			k, err := t.scanDataKey(rows)
			if err != nil {
				rows.Close()
				return err
			}
			page = append(page, *k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return t.fail(err)
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

func (t *writer) PutDataKey(k *storage.DataKey) error {
	if len(k.Wrapped) == 0 {
		return errors.New("postgres: a data key with no wrapped bytes")
	}
	if !k.ShreddedAt.IsZero() {
		return errors.New("postgres: PutDataKey of a shredded data key (ShredDataKeys makes tombstones)")
	}
	t.notify(storage.TopicKeys)
	return t.insert(fmt.Sprintf("data key %s/%s/%d", k.Class, k.Commune, k.Version),
		`INSERT INTO data_keys(class, commune, version, wrapped, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
		k.Class, k.Commune, k.Version, k.Wrapped, fmtTime(k.CreatedAt))
}

func (t *writer) RewrapDataKey(class, commune string, version int, wrapped []byte) error {
	if len(wrapped) == 0 {
		return errors.New("postgres: rewrap with no wrapped bytes")
	}
	t.notify(storage.TopicKeys)
	tag, err := t.exec(`UPDATE data_keys SET wrapped = $1
		WHERE class = $2 AND commune = $3 AND version = $4 AND shredded_at = ''`, wrapped, class, commune, version)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: no live data key %s/%s/%d", storage.ErrNotFound, class, commune, version)
	}
	return nil
}

// ShredDataKeys empties wrapped. The old row version stays in the table
// (a dead tuple) until a vacuum: Compact clears it.
func (t *writer) ShredDataKeys(class string, communes []string, at time.Time) (int, error) {
	if at.IsZero() {
		return 0, errors.New("postgres: shred with a zero time (a zero ShreddedAt means live)")
	}
	if len(communes) == 0 {
		return 0, nil
	}
	// Every instance must drop the keys from its cache.
	t.notify(storage.TopicKeys)
	tag, err := t.exec(`UPDATE data_keys SET wrapped = ''::bytea, shredded_at = $1
		WHERE class = $2 AND commune = ANY($3) AND shredded_at = ''`, fmtTime(at), class, communes)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

func (t *reader) Keys(purpose string) ([]storage.Key, error) {
	rows, err := t.c.Query(t.ctx, `SELECT version, wrapped, created_at, not_after FROM keys WHERE purpose = $1 ORDER BY version DESC`, purpose)
	if err != nil {
		return nil, t.fail(err)
	}
	defer rows.Close()
	var out []storage.Key
	for rows.Next() {
		k := storage.Key{Purpose: purpose}
		var created, notAfter string
		if err := rows.Scan(&k.Version, &k.Wrapped, &created, &notAfter); err != nil {
			return nil, t.fail(err)
		}
		if err := parseTimes([]*time.Time{&k.CreatedAt, &k.NotAfter}, created, notAfter); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, t.fail(rows.Err())
}

func (t *writer) PutKey(k *storage.Key) error {
	t.notify(storage.TopicKeys)
	return t.insert(fmt.Sprintf("key %s version %d", k.Purpose, k.Version),
		`INSERT INTO keys(purpose, version, wrapped, created_at, not_after) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
		k.Purpose, k.Version, k.Wrapped, fmtTime(k.CreatedAt), fmtTime(k.NotAfter))
}

func (t *writer) RewrapKey(purpose string, version int, wrapped []byte) error {
	if len(wrapped) == 0 {
		return errors.New("postgres: rewrap with no wrapped bytes")
	}
	t.notify(storage.TopicKeys)
	tag, err := t.exec(`UPDATE keys SET wrapped = $1 WHERE purpose = $2 AND version = $3`, wrapped, purpose, version)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: no key %s version %d", storage.ErrNotFound, purpose, version)
	}
	return nil
}

func (t *writer) RetireKey(purpose string, version int, notAfter time.Time) error {
	t.notify(storage.TopicKeys)
	tag, err := t.exec(`UPDATE keys SET not_after = $1 WHERE purpose = $2 AND version = $3`, fmtTime(notAfter), purpose, version)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// ---- audit

// scanHead reads an audit_head row.
func scanHead(row pgx.Row) (storage.AuditHead, error) {
	var h storage.AuditHead
	var chain []byte
	if err := row.Scan(&h.Next, &chain); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return h, errors.New("postgres: the audit_head row is missing")
		}
		return h, classify(err)
	}
	if len(chain) != len(h.ChainHash) {
		return h, errors.New("postgres: the audit head has a malformed chain hash")
	}
	copy(h.ChainHash[:], chain)
	return h, nil
}

func (t *reader) AuditHead() (storage.AuditHead, error) {
	h, err := scanHead(t.c.QueryRow(t.ctx, `SELECT next, chain_hash FROM audit_head WHERE id = 1`))
	if err != nil {
		t.failed = err
	}
	return h, err
}

// AuditHead is the batch's head, which the batch holds locked: the
// Updates before this one in the batch have moved it.
func (t *writer) AuditHead() (storage.AuditHead, error) {
	return t.b.head, nil
}

func (t *writer) AppendAudit(build func(storage.AuditHead) (storage.AuditRecord, error)) (storage.AuditRecord, error) {
	head := t.b.head
	rec, err := build(head)
	if err != nil {
		return storage.AuditRecord{}, err
	}
	if rec.Index != head.Next {
		return storage.AuditRecord{}, fmt.Errorf("postgres: audit record index %d, want %d", rec.Index, head.Next)
	}
	if len(rec.Event) == 0 || rec.Pruned {
		return storage.AuditRecord{}, fmt.Errorf("postgres: audit record %d has no event (a NULL event is how a pruned record reads)", rec.Index)
	}
	if len(rec.Hashes) == 0 {
		if _, err := t.exec(`INSERT INTO audit_events(idx, event, leaf_hash, chain_hash) VALUES ($1, $2, $3, $4)`,
			rec.Index, rec.Event, rec.LeafHash[:], rec.ChainHash[:]); err != nil {
			return storage.AuditRecord{}, fmt.Errorf("failed to append audit event: %w", err)
		}
	} else {
		if err := t.checkHashIndex(rec.HashIndex); err != nil {
			return storage.AuditRecord{}, fmt.Errorf("postgres: audit record %d: %w", rec.Index, err)
		}
		// One statement, so the event and its hashes are stored or
		// neither is, in one round trip.
		if _, err := t.exec(`WITH e AS (
				INSERT INTO audit_events(idx, event, leaf_hash, chain_hash) VALUES ($1, $2, $3, $4)
			)
			INSERT INTO audit_hashes(idx, hash)
			SELECT $5::bigint + h.ord - 1, h.hash FROM unnest($6::bytea[]) WITH ORDINALITY AS h(hash, ord)`,
			rec.Index, rec.Event, rec.LeafHash[:], rec.ChainHash[:], rec.HashIndex, hashBytes(rec.Hashes)); err != nil {
			return storage.AuditRecord{}, fmt.Errorf("failed to append audit event: %w", err)
		}
		t.b.hashNext += int64(len(rec.Hashes))
	}
	t.b.head = storage.AuditHead{Next: rec.Index + 1, ChainHash: rec.ChainHash}
	return rec, nil
}

// hashBytes is hashes as the byte slices pgx sends as a bytea[].
func hashBytes(hashes [][32]byte) [][]byte {
	out := make([][]byte, len(hashes))
	for i := range hashes {
		out[i] = hashes[i][:]
	}
	return out
}

// nextHashIndex is the stored-hash index after the last stored one
// (AuditHashCount, since hashes are dense): one seek to the end of the
// primary key.
func (t *reader) nextHashIndex() (int64, error) {
	var n int64
	err := t.c.QueryRow(t.ctx, `SELECT coalesce(max(idx) + 1, 0) FROM audit_hashes`).Scan(&n)
	return n, t.fail(err)
}

// nextHashIndex is the batch's: read once, then kept up to date.
func (t *writer) nextHashIndex() (int64, error) {
	if t.b.hashNext < 0 {
		n, err := t.reader.nextHashIndex()
		if err != nil {
			return 0, err
		}
		t.b.hashNext = n
	}
	return t.b.hashNext, nil
}

// checkHashIndex refuses to store hashes from first on unless first is
// the next stored-hash index.
func (t *writer) checkHashIndex(first int64) error {
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

func (t *writer) PutAuditHashes(first int64, hashes [][32]byte) error {
	if len(hashes) == 0 {
		return nil
	}
	if err := t.checkHashIndex(first); err != nil {
		return fmt.Errorf("postgres: PutAuditHashes: %w", err)
	}
	if _, err := t.exec(`INSERT INTO audit_hashes(idx, hash)
		SELECT $1::bigint + h.ord - 1, h.hash FROM unnest($2::bytea[]) WITH ORDINALITY AS h(hash, ord)`,
		first, hashBytes(hashes)); err != nil {
		return fmt.Errorf("postgres: failed to store audit hashes from index %d: %w", first, err)
	}
	t.b.hashNext += int64(len(hashes))
	return nil
}

// auditHashesQuery reads the hashes at an array of indexes in one
// statement, each a seek of the primary key.
const auditHashesQuery = `SELECT idx, hash FROM audit_hashes WHERE idx = ANY($1::bigint[])`

func (t *reader) AuditHashes(indexes []int64) ([][32]byte, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	rows, err := t.c.Query(t.ctx, auditHashesQuery, indexes)
	if err != nil {
		return nil, t.fail(err)
	}
	defer rows.Close()
	found := make(map[int64][32]byte, len(indexes))
	for rows.Next() {
		var idx int64
		var h []byte
		if err := rows.Scan(&idx, &h); err != nil {
			return nil, t.fail(err)
		}
		if len(h) != 32 {
			return nil, fmt.Errorf("postgres: stored audit hash %d is malformed", idx)
		}
		found[idx] = [32]byte(h)
	}
	if err := rows.Err(); err != nil {
		return nil, t.fail(err)
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

func (t *reader) AuditHashCount() (int64, error) { return t.nextHashIndex() }

func (t *writer) AuditHashCount() (int64, error) { return t.nextHashIndex() }

// PruneAuditEvents sets the events to NULL. The old row versions stay in
// the table (dead tuples) until a vacuum reclaims them, and in the
// write-ahead log and backups; Compact does not rewrite audit_events.
func (t *writer) PruneAuditEvents(before int64) (int64, error) {
	tag, err := t.exec(`UPDATE audit_events SET event = NULL WHERE idx < $1 AND event IS NOT NULL`, before)
	if err != nil {
		return 0, fmt.Errorf("postgres: failed to prune audit events: %w", err)
	}
	return tag.RowsAffected(), nil
}

// ---- checkpoints

func (t *writer) PutCheckpoint(size int64, note []byte, at time.Time) error {
	switch {
	case len(note) == 0:
		return errors.New("postgres: PutCheckpoint with an empty note")
	case at.IsZero():
		return errors.New("postgres: PutCheckpoint with a zero time")
	case size < 1:
		return fmt.Errorf("postgres: PutCheckpoint of a tree of %d records (at least 1)", size)
	case size > t.b.head.Next:
		return fmt.Errorf("postgres: PutCheckpoint of a tree of %d records, but the log has %d", size, t.b.head.Next)
	}
	return t.insert(fmt.Sprintf("a checkpoint of size %d", size),
		`INSERT INTO audit_checkpoints(size, note, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		size, note, fmtTime(at))
}

func (t *reader) scanCheckpoint(row pgx.Row) (*storage.Checkpoint, error) {
	var c storage.Checkpoint
	var created string
	if err := row.Scan(&c.Size, &c.Note, &created); err != nil {
		return nil, t.fail(err)
	}
	if err := parseTimes([]*time.Time{&c.CreatedAt}, created); err != nil {
		return nil, err
	}
	return &c, nil
}

func (t *reader) Checkpoint(size int64) (*storage.Checkpoint, error) {
	c, err := t.scanCheckpoint(t.c.QueryRow(t.ctx, `SELECT size, note, created_at FROM audit_checkpoints WHERE size = $1`, size))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no checkpoint of size %d", storage.ErrNotFound, size)
	}
	return c, err
}

func (t *reader) LatestCheckpoint() (*storage.Checkpoint, error) {
	c, err := t.scanCheckpoint(t.c.QueryRow(t.ctx, `SELECT size, note, created_at FROM audit_checkpoints ORDER BY size DESC LIMIT 1`))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no checkpoint yet", storage.ErrNotFound)
	}
	return c, err
}

func (t *reader) CheckpointCovering(index int64) (*storage.Checkpoint, error) {
	c, err := t.scanCheckpoint(t.c.QueryRow(t.ctx, `SELECT size, note, created_at FROM audit_checkpoints
		WHERE size > $1 ORDER BY size LIMIT 1`, index))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no checkpoint covers audit record %d yet", storage.ErrNotFound, index)
	}
	return c, err
}

// auditPage is how many records AuditRecords reads at a time; fn runs
// between pages, so it may use the transaction.
const auditPage = 512

func (t *reader) AuditRecords(from int64, limit int, fn func(storage.AuditRecord) (bool, error)) error {
	page := make([]storage.AuditRecord, 0, auditPage)
	for {
		n := auditPage
		if limit > 0 {
			n = min(n, limit)
		}
		rows, err := t.c.Query(t.ctx, `SELECT idx, event, event IS NULL, leaf_hash, chain_hash FROM audit_events
			WHERE idx >= $1 ORDER BY idx LIMIT $2`, from, n)
		if err != nil {
			return t.fail(err)
		}
		page = page[:0]
		for rows.Next() {
			var r storage.AuditRecord
			var leaf, chain []byte
			if err := rows.Scan(&r.Index, &r.Event, &r.Pruned, &leaf, &chain); err != nil {
				rows.Close()
				return t.fail(err)
			}
			// A wrong length is kept visible (a padded or truncated copy
			// would hide it): report it as an error naming the index.
			if len(leaf) != 32 || len(chain) != 32 {
				rows.Close()
				return fmt.Errorf("postgres: audit event %d has a malformed hash column", r.Index)
			}
			copy(r.LeafHash[:], leaf)
			copy(r.ChainHash[:], chain)
			page = append(page, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return t.fail(err)
		}
		if more, err := feed.Each(page, fn); err != nil || !more {
			return err
		}
		if len(page) < n {
			return nil
		}
		if limit > 0 {
			limit -= len(page)
			if limit == 0 {
				return nil
			}
		}
		from = page[len(page)-1].Index + 1
	}
}
