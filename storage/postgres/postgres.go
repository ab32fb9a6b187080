// Package postgres is the store for production and for several broker
// instances sharing one database: PostgreSQL through pgx/v5.
//
// Writes go through one committer goroutine per Store that gathers the
// Updates waiting while the previous batch commits and runs them in one
// transaction, each in its own savepoint, so one failing Update does not
// undo its neighbours (group commit, as in storage/sqlite). Every batch
// first locks the single row of audit_head. That one lock serializes all
// writers of every instance on the database: the audit log keeps one
// chain with no fork and no gap, an Update that checks for a submission
// before inserting it sees whatever another instance committed first, and
// since no writer holds another row lock before it, writers cannot
// deadlock. Batches run in READ COMMITTED, so after the lock every
// statement sees all that committed before; Views run in REPEATABLE READ
// READ ONLY and read one snapshot without blocking writers.
//
// A write refused with ErrConflict or ErrNotFound fails alone, as in
// SQLite: the store detects those (INSERT … ON CONFLICT DO NOTHING, rows
// affected) rather than let PostgreSQL raise them, which would abort the
// Update's savepoint. Any other failed statement does abort it, so an
// Update that ignores such an error and returns nil is rolled back and
// gets an error.
//
// An Update returns nil only after COMMIT returned, with
// synchronous_commit not "off" (the store turns an "off" back on for its
// own writes), so the commit is on disk. If the connection fails during
// COMMIT the outcome is
// unknown: the Update reports ErrUnavailable although its change may have
// been written. The broker's writes are idempotent (a deposit retried with
// the same id and content returns the stored receipt), which makes a retry
// safe.
//
// Connection settings all come from the DSN (host, port, TLS,
// connect_timeout, application_name, pgxpool's pool_* settings, …).
// Connections are pooled by pgxpool: one pool holds the committer's
// connection, another those of Views and Watches. Losing the database
// while serving fails the Updates and Views in flight with
// ErrUnavailable; broken connections are dropped, never reused (a
// connection idle for over a second is pinged before use), and the store
// reconnects by itself once the database is back.
//
// Open applies the schema migrations (Migrate) under an advisory lock,
// so instances starting together do not race, and refuses a database
// whose schema is newer than this binary knows.
//
// Changes to keys, users and grants, and meta values are announced with
// pg_notify inside the transaction that makes them, so PostgreSQL delivers
// them only if it commits; Watch listens for them. Shredding and
// rewrapping keys announce TopicKeys, so every instance drops the keys
// it cached.
//
// Compact (storage.Compactor) rewrites the key tables after keys were
// shredded or rewrapped; the write-ahead log and backups still hold the
// old bytes (see Compact).
package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/censusvault/censusvault/storage"
	groupcommit "github.com/censusvault/censusvault/storage/internal/batch"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options configure Open.
type Options struct {
	// DSN names the database, as a URL (postgres://user@host:port/db?…)
	// or keyword=value pairs, with every connection setting libpq knows
	// (sslmode, connect_timeout — default here 10 s —, application_name,
	// …) and pgxpool's pool settings (pool_max_conns,
	// pool_max_conn_idle_time, pool_health_check_period, …; the
	// committer's connection counts first towards pool_min_conns and
	// pool_min_idle_conns). Required.
	DSN string
	// MaxConns bounds the connections the Store opens: one for writes,
	// the rest shared by Views and Watches (a Watch holds one for as long
	// as it runs). Default 16, or the DSN's pool_max_conns; at least 2.
	MaxConns int32
	// MaxBatch bounds how many Updates one transaction carries; default
	// 256. Each Update is a subtransaction: past 64 of them in one
	// transaction, PostgreSQL's snapshots of other sessions taken
	// meanwhile overflow their subtransaction cache and get slower to
	// check, which a batch of a few milliseconds makes cheap, but a
	// smaller MaxBatch avoids altogether.
	MaxBatch int
	// WriteTimeout bounds one write batch, waiting for the audit head
	// lock included; past it the batch fails with ErrUnavailable and its
	// connection is dropped. Default 30 s.
	WriteTimeout time.Duration
}

// defaultConnectTimeout bounds each connection attempt when the DSN sets
// no connect_timeout.
const defaultConnectTimeout = 10 * time.Second

// defaultPingTimeout bounds the ping pgxpool sends a connection that sat
// idle for over a second before handing it out, when the DSN sets no
// pool_ping_timeout: pgxpool's default is no bound at all.
const defaultPingTimeout = 5 * time.Second

// Channel is the LISTEN/NOTIFY channel of change notifications; the
// payload is a storage topic.
const Channel = "censusvault"

// Store is a storage.Store and storage.Watcher on one PostgreSQL database.
type Store struct {
	cfg *pgx.ConnConfig // for error messages
	// write holds the committer's one connection, read the others. Two
	// pools rather than one, so that Views and Watches (which may hold a
	// connection indefinitely) can never take the one the committer
	// needs.
	write, read  *pgxpool.Pool
	ops          chan *op
	maxBatch     int
	writeTimeout time.Duration

	// mu guards closed. Update holds it shared until its op is queued,
	// so once Close has set closed under the exclusive lock no op can
	// join the queue after the committer has drained it.
	mu        sync.RWMutex
	closed    bool
	closing   chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	// closeCtx ends when Close starts, so that Watches return.
	closeCtx    context.Context
	closeCancel context.CancelFunc
}

var (
	_ storage.Store     = (*Store)(nil)
	_ storage.Watcher   = (*Store)(nil)
	_ storage.Compactor = (*Store)(nil)
)

type op struct {
	ctx  context.Context
	fn   func(storage.Tx) error
	done chan error
}

// parseDSN parses dsn, pgxpool's settings included; maxConns is its
// pool_max_conns, 0 if it has none. Its errors never quote the DSN,
// which may hold a password.
func parseDSN(dsn string) (cfg *pgxpool.Config, maxConns int32, err error) {
	if dsn == "" {
		return nil, 0, errors.New("postgres: no DSN")
	}
	// pgx's own parse leaves the pool settings in RuntimeParams: it tells
	// which of them the DSN sets (pgxpool fills in defaults
	// indistinguishably) and a malformed DSN from a malformed setting.
	plain, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx masks passwords only on a best-effort basis, and a
		// malformed URL's error quotes it whole: say nothing of it.
		return nil, 0, errors.New("postgres: the DSN is malformed (expected postgres://user@host:port/database?options or key=value pairs; it is not shown because it may hold a password)")
	}
	cfg, err = pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, 0, errors.New("postgres: a pool setting in the DSN is malformed (pool_max_conns, pool_min_conns and pool_min_idle_conns take a number, the others a duration such as 30s)")
	}
	for k := range cfg.ConnConfig.RuntimeParams {
		if strings.HasPrefix(k, "pool_") {
			// pgxpool leaves what it does not know for the server, which
			// would refuse it with an error that looks like a failure
			// to connect: say what is wrong instead.
			return nil, 0, fmt.Errorf("postgres: the DSN's %.64q is not a pool setting pgxpool knows", k)
		}
	}
	if _, ok := plain.RuntimeParams["pool_max_conns"]; ok {
		if cfg.MaxConns < 2 {
			return nil, 0, errors.New("postgres: pool_max_conns in the DSN must be a number of at least 2")
		}
		maxConns = cfg.MaxConns
	}
	if _, ok := plain.RuntimeParams["pool_ping_timeout"]; !ok {
		cfg.PingTimeout = defaultPingTimeout
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// Without connect_timeout a host that drops packets would hold
		// Open, or a reconnect, for as long as the OS keeps trying.
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	return cfg, maxConns, nil
}

// addresses names the hosts the DSN points at, for error messages.
func addresses(cfg *pgx.ConnConfig) string {
	addrs := []string{hostPort(cfg.Host, cfg.Port)}
	for _, f := range cfg.Fallbacks {
		addrs = append(addrs, hostPort(f.Host, f.Port))
	}
	return strings.Join(slices.Compact(addrs), ", ")
}

func hostPort(host string, port uint16) string {
	if strings.HasPrefix(host, "/") {
		return host // a Unix socket directory
	}
	if strings.Contains(host, ":") {
		return fmt.Sprintf("[%s]:%d", host, port)
	}
	return fmt.Sprintf("%s:%d", host, port)
}

// connect opens one connection outside any pool (for Migrate), with an
// error that says where and what to check when it fails.
func connect(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, connectFailed(cfg, err)
	}
	return c, nil
}

// connectFailed turns pgx's error for a failed connection attempt into
// one that says where and what to check.
func connectFailed(cfg *pgx.ConnConfig, err error) error {
	hint := "check that PostgreSQL is running and reachable there, and the DSN's host, port and connect_timeout"
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "28"):
			hint = "check the DSN's user and password, and the server's pg_hba.conf"
		case pe.Code == "3D000":
			hint = "check the DSN's database name, or create the database"
		}
	}
	return &connectError{
		msg:         fmt.Sprintf("postgres: cannot connect to the database at %s (%s): %v", addresses(cfg), hint, err),
		unavailable: errors.Is(classify(err), storage.ErrUnavailable),
	}
}

// connectError keeps only the text of pgx's connection error, which names
// user, database and address: the error itself carries the whole
// configuration, password included, for anyone who unwraps it.
type connectError struct {
	msg         string
	unavailable bool // a network failure or a busy server, not a refusal
}

func (e *connectError) Error() string { return e.msg }

func (e *connectError) Is(target error) bool {
	return e.unavailable && target == storage.ErrUnavailable
}

// acquireError explains why a pool gave no connection for ctx.
func (s *Store) acquireError(ctx context.Context, err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		// pgxpool hands back pgx's error, password and all.
		return connectFailed(s.cfg, err)
	}
	if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
		if errors.Is(cerr, context.DeadlineExceeded) {
			return fmt.Errorf("%w: postgres: no database connection free (or made) before the deadline: %w", storage.ErrUnavailable, cerr)
		}
		return cerr // the caller gave up
	}
	return classify(err)
}

// release gives c back to its pool, after ending the transaction it was
// left in. A connection that is closed, mid-query, or whose ROLLBACK
// failed is discarded: pgxpool would destroy it too, but in the
// background, holding its slot meanwhile.
func release(ctx context.Context, c *pgxpool.Conn) {
	pc := c.Conn()
	ok := !pc.IsClosed() && !pc.PgConn().IsBusy()
	if ok && pc.PgConn().TxStatus() != 'I' {
		_, err := pc.Exec(ctx, `ROLLBACK`)
		ok = err == nil
	}
	if !ok || pc.IsClosed() || pc.PgConn().TxStatus() != 'I' {
		discard(c)
		return
	}
	c.Release()
}

// discard takes c out of its pool, freeing its slot, and closes it: it is
// never handed out again.
func discard(c *pgxpool.Conn) {
	closeConn(c.Hijack())
}

// dropIdle discards p's idle connections.
func dropIdle(ctx context.Context, p *pgxpool.Pool) {
	for _, c := range p.AcquireAllIdle(ctx) {
		discard(c)
	}
}

// closeConn closes c, politely if the server answers quickly.
func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.Close(ctx)
}

// Open connects to the database, applies the missing migrations and starts
// the committer. The database must be reachable: Open fails fast (bounded
// by ctx and the DSN's connect_timeout) with a message that names the
// address and never the password.
func Open(ctx context.Context, o Options) (*Store, error) {
	cfg, dsnMax, err := parseDSN(o.DSN)
	if err != nil {
		return nil, err
	}
	if o.MaxConns == 0 {
		o.MaxConns = dsnMax
	}
	if o.MaxConns == 0 {
		o.MaxConns = 16
	}
	if o.MaxConns < 2 {
		return nil, fmt.Errorf("postgres: MaxConns %d is too small: one connection writes, at least one more reads", o.MaxConns)
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	s := &Store{
		cfg:          cfg.ConnConfig,
		ops:          make(chan *op, 1024),
		maxBatch:     o.MaxBatch,
		writeTimeout: o.WriteTimeout,
		closing:      make(chan struct{}),
		done:         make(chan struct{}),
	}

	wcfg := cfg.Copy()
	wcfg.MaxConns = 1
	wcfg.MinConns = min(cfg.MinConns, 1)
	wcfg.MinIdleConns = min(cfg.MinIdleConns, 1)
	connectTimeout := cfg.ConnConfig.ConnectTimeout
	wcfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		// pgxpool's ctx here does not end when the caller gives up.
		ctx, cancel := context.WithTimeout(ctx, connectTimeout)
		defer cancel()
		return durableCommits(ctx, c)
	}
	s.write, err = pgxpool.NewWithConfig(ctx, wcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: failed to set up the connection pool: %w", err)
	}
	c, err := s.write.Acquire(ctx)
	if err != nil {
		s.write.Close()
		return nil, s.acquireError(ctx, err)
	}
	_, _, err = migrate(ctx, c.Conn())
	release(ctx, c)
	if err != nil {
		s.write.Close()
		return nil, err
	}

	// Reads need no durableCommits: they commit nothing.
	rcfg := cfg.Copy()
	rcfg.MaxConns = o.MaxConns - 1
	rcfg.MinConns = min(max(cfg.MinConns-1, 0), rcfg.MaxConns)
	rcfg.MinIdleConns = min(max(cfg.MinIdleConns-1, 0), rcfg.MaxConns)
	s.read, err = pgxpool.NewWithConfig(ctx, rcfg)
	if err != nil {
		s.write.Close()
		return nil, fmt.Errorf("postgres: failed to set up the connection pool: %w", err)
	}

	s.closeCtx, s.closeCancel = context.WithCancel(context.Background())
	go s.committer()
	return s, nil
}

// durableCommits makes sure a COMMIT on c returns only once the commit is
// on disk: a server or database configured with synchronous_commit=off
// would acknowledge Updates a crash can still undo. Stronger settings
// (remote_apply, …) are kept.
func durableCommits(ctx context.Context, c *pgx.Conn) error {
	var v string
	if err := c.QueryRow(ctx, `SELECT current_setting('synchronous_commit')`).Scan(&v); err != nil {
		return fmt.Errorf("postgres: failed to read synchronous_commit: %w", classify(err))
	}
	if v != "off" {
		return nil
	}
	if _, err := c.Exec(ctx, `SET synchronous_commit = on`); err != nil {
		return fmt.Errorf("postgres: failed to turn synchronous_commit on: %w", classify(err))
	}
	return nil
}

// Close waits for queued Updates to finish, ends running Watches and
// closes the connections. Views still running fail or finish; their
// connections close when they do. Later calls return nil.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.closing)
		s.mu.Unlock()
		s.closeCancel()
		<-s.done
		// The committer is gone and has released its connection.
		s.write.Close()
		// pgxpool's Close waits for the connections in use: those of
		// Views still running close as they return, without Close
		// waiting for them; the idle ones close now.
		dropIdle(context.Background(), s.read)
		go s.read.Close()
	})
	return nil
}

// Update implements storage.Store.
func (s *Store) Update(ctx context.Context, fn func(storage.Tx) error) error {
	o := &op{ctx: ctx, fn: fn, done: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return storage.ErrClosed
	}
	select {
	case s.ops <- o:
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
	s.mu.RUnlock()
	// Once queued, wait for the outcome even if ctx ends: the caller must
	// not report failure for something that may have committed.
	return <-o.done
}

// View implements storage.Store.
func (s *Store) View(ctx context.Context, fn func(storage.ReadTx) error) error {
	if s.isClosed() {
		return storage.ErrClosed
	}
	c, err := s.readConn(ctx, `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`)
	if err != nil {
		return err
	}
	defer func() {
		// End the transaction even if the caller's ctx is done (or fn
		// panicked), so the connection can be reused.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		release(rctx, c)
	}()
	return fn(&reader{ctx: ctx, c: c.Conn()})
}

// readConn takes a connection from the read pool and runs first on it.
//
// pgxpool pings a connection that sat idle for over a second before
// handing it out; one the server dropped more recently is only found out
// by using it. If first fails that way, nothing of the caller's has run,
// so readConn discards the idle connections (they probably went the same
// way) and tries once more on a new one.
func (s *Store) readConn(ctx context.Context, first string) (*pgxpool.Conn, error) {
	for attempt := 0; ; attempt++ {
		c, err := s.read.Acquire(ctx)
		if err != nil {
			if s.isClosed() {
				return nil, storage.ErrClosed
			}
			return nil, s.acquireError(ctx, err)
		}
		_, err = c.Exec(ctx, first)
		if err == nil {
			return c, nil
		}
		dead := c.Conn().IsClosed()
		discard(c)
		if attempt > 0 || ctx.Err() != nil || !dead {
			return nil, fmt.Errorf("postgres: %s failed: %w", strings.Fields(first)[0], classify(err))
		}
		dropIdle(ctx, s.read)
	}
}

// compactLockTimeout bounds how long Compact waits for a table's lock.
// While VACUUM FULL waits for its exclusive lock, every statement on the
// table queues behind it: a long wait would stall deposits, whereas a
// failed Compact is only retried. It stays well inside a write batch's own
// lock timeout (3/4 of WriteTimeout), so a batch queued behind Compact's
// wait does not time out.
func (s *Store) compactLockTimeout() time.Duration {
	return max(min(5*time.Second, s.writeTimeout/4), time.Millisecond)
}

// Compact implements storage.Compactor: VACUUM (FULL) of data_keys and
// keys rewrites both tables into new files and drops the old ones, which
// held the old row versions that ShredDataKeys, RewrapDataKey and
// RewrapKey left behind as dead tuples.
//
// VACUUM keeps an old row version that a transaction still open might
// read, and it judges that by transaction ids, conservatively. So Compact
// first waits until the transactions that began before it was called
// have ended: those of this database, those of standbys (replication
// slots, hot_standby_feedback), prepared ones, and any on the server
// that holds a transaction id (a write in another database too: every
// new snapshot counts it as running). If one stays open past
// WriteTimeout (a long export, an operator's idle psql transaction)
// Compact fails with ErrUnavailable, naming it, and may be retried.
//
// Each table is then locked exclusively while it is rewritten (both are
// small: milliseconds). If a lock is not free within a few seconds (at
// most 5 s, and a quarter of WriteTimeout) — a View reading keys, say —
// Compact fails the same way.
//
// What Compact cannot reach: the write-ahead log's segments keep the old
// bytes until PostgreSQL recycles them (after a checkpoint, or never if
// they are archived), and so do base backups, WAL archives and replicas'
// copies of them, and blocks the file system freed but has not reused.
func (s *Store) Compact(ctx context.Context) error {
	if s.isClosed() {
		return storage.ErrClosed
	}
	c, err := s.readConn(ctx, fmt.Sprintf(`SET lock_timeout = %d`, s.compactLockTimeout().Milliseconds()))
	if err != nil {
		return err
	}
	// On failure the session is dropped rather than handed back with
	// Compact's lock_timeout.
	if err := s.awaitOlderTransactions(ctx, c.Conn()); err != nil {
		discard(c)
		return err
	}
	// No argument: a simple query, outside any transaction block, as
	// VACUUM requires.
	if _, err := c.Exec(ctx, `VACUUM (FULL) data_keys, keys`); err != nil {
		discard(c)
		return fmt.Errorf("postgres: compact: VACUUM failed: %w", classify(err))
	}
	if _, err := c.Exec(ctx, `RESET lock_timeout`); err != nil {
		discard(c)
		return nil // compacted; the session with its setting is dropped
	}
	release(ctx, c)
	return nil
}

// olderTransaction names a transaction that began before the one whose
// 32-bit id is $1 and is still open, and so could keep VACUUM from
// removing row versions replaced before $1 began; the empty string when
// there is none. That is any transaction of this database whose snapshot
// is older, and any on the whole server holding an older transaction id:
// every new snapshot, VACUUM's own included, counts that id as still
// running. A lazy VACUUM (pg_stat_progress_vacuum) is left out:
// PostgreSQL keeps no rows for its snapshot. age() counts back from one
// point for the whole statement, so comparing ages compares ids,
// wraparound included.
const olderTransaction = `SELECT coalesce(
	(SELECT format('session %s (%s, database %s, %s)', pid, coalesce(nullif(backend_type, ''), 'client'),
			coalesce(datname, 'none'), coalesce(nullif(application_name, ''), 'no application name'))
		FROM pg_stat_activity
		WHERE pid <> pg_backend_pid()
			AND (age(backend_xid) > age($1::text::xid)
				OR (datname = current_database() OR backend_type = 'walsender')
					AND pid NOT IN (SELECT pid FROM pg_stat_progress_vacuum)
					AND age(backend_xmin) > age($1::text::xid))
		LIMIT 1),
	(SELECT format('prepared transaction %L', gid) FROM pg_prepared_xacts
		WHERE age(transaction) > age($1::text::xid)
		LIMIT 1),
	(SELECT format('replication slot %L', slot_name) FROM pg_replication_slots
		WHERE xmin IS NOT NULL AND age(xmin) > age($1::text::xid)
		LIMIT 1),
	'')`

// awaitOlderTransactions waits until every transaction that began before
// it was called has ended, for at most WriteTimeout.
func (s *Store) awaitOlderTransactions(ctx context.Context, c *pgx.Conn) error {
	// A new transaction id, newer than that of every shredding or rewrap
	// that committed before Compact was called; as the 32-bit xid that
	// pg_stat_activity shows.
	var mark string
	if err := c.QueryRow(ctx, `SELECT (pg_current_xact_id()::text::numeric % 4294967296)::text`).Scan(&mark); err != nil {
		return fmt.Errorf("postgres: compact: %w", classify(err))
	}
	deadline := time.Now().Add(s.writeTimeout)
	for {
		var who string
		if err := c.QueryRow(ctx, olderTransaction, mark).Scan(&who); err != nil {
			return fmt.Errorf("postgres: compact: failed to look for older transactions: %w", classify(err))
		}
		if who == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: postgres: compact: %s has had a transaction open since before Compact began, which might still read the old bytes, so VACUUM would keep them; retry once it has ended",
				storage.ErrUnavailable, who)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Store) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// Watch implements storage.Watcher: it calls fn with the topic of every
// change committed from now on, by this Store or any other on the
// database, until ctx ends (it returns ctx's error), the Store closes
// (ErrClosed) or the connection fails (an error wrapping ErrUnavailable;
// watch again). Changes committed while no Watch runs are not replayed:
// after (re)starting a Watch, reload what it guards. fn runs on Watch's
// goroutine; a slow fn delays later notifications, it does not lose them.
func (s *Store) Watch(ctx context.Context, fn func(topic string)) error {
	if s.isClosed() {
		return storage.ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.closeCtx, cancel)
	defer stop()
	ended := func(err error) error {
		if s.isClosed() {
			return storage.ErrClosed
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	c, err := s.readConn(ctx, `LISTEN `+Channel)
	if err != nil {
		return ended(err)
	}
	// The session is LISTENing: never hand it to a View.
	defer discard(c)
	pc := c.Conn()
	for {
		n, err := pc.WaitForNotification(ctx)
		if err != nil {
			return ended(fmt.Errorf("postgres: lost the change notifications: %w", classify(err)))
		}
		if n.Channel == Channel {
			fn(n.Payload)
		}
	}
}

func (s *Store) committer() {
	defer close(s.done)
	groupcommit.Run(s.ops, s.closing, s.maxBatch, s.commit)
}

// begin takes the committer's connection and starts a batch's transaction
// on it: it locks the audit head, reads it, and sets the first Update's
// savepoint. On failure the connection is back in its pool (or
// discarded) and no transaction is left open.
//
// A failure before any fn ran changed nothing, so when the connection
// turns out to be dead (the server dropped it while idle, too recently
// for pgxpool's ping to catch) begin retries once on a new one rather
// than fail the batch.
func (s *Store) begin(ctx context.Context) (*pgxpool.Conn, storage.AuditHead, error) {
	for attempt := 0; ; attempt++ {
		c, err := s.write.Acquire(ctx)
		if err != nil {
			return nil, storage.AuditHead{}, s.acquireError(ctx, err)
		}
		head, err := s.lockHead(ctx, c.Conn())
		if err == nil {
			return c, head, nil
		}
		dead := c.Conn().IsClosed()
		release(ctx, c)
		if dead && attempt == 0 && ctx.Err() == nil {
			continue
		}
		return nil, storage.AuditHead{}, err
	}
}

// lockHead opens the transaction in one round trip: a simple query may
// hold several statements. The lock timeout makes the server give up
// waiting for the head before WriteTimeout cuts the connection, so a busy
// database costs an error, not a reconnect.
func (s *Store) lockHead(ctx context.Context, c *pgx.Conn) (storage.AuditHead, error) {
	lockTimeout := max(s.writeTimeout*3/4, time.Millisecond)
	res, err := c.PgConn().Exec(ctx, fmt.Sprintf(`BEGIN ISOLATION LEVEL READ COMMITTED;
		SET LOCAL lock_timeout = %d;
		SELECT next, encode(chain_hash, 'hex') FROM audit_head WHERE id = 1 FOR UPDATE;
		SAVEPOINT u`, lockTimeout.Milliseconds())).ReadAll()
	if err != nil {
		return storage.AuditHead{}, fmt.Errorf("postgres: failed to lock the audit head: %w", classify(err))
	}
	if len(res) != 4 || len(res[2].Rows) != 1 || len(res[2].Rows[0]) != 2 {
		return storage.AuditHead{}, errors.New("postgres: the audit_head row is missing")
	}
	var h storage.AuditHead
	row := res[2].Rows[0]
	next, err := strconv.ParseInt(string(row[0]), 10, 64)
	if err != nil {
		return h, fmt.Errorf("postgres: the audit head has a malformed index %q", row[0])
	}
	chain, err := hex.DecodeString(string(row[1]))
	if err != nil || len(chain) != len(h.ChainHash) {
		return h, errors.New("postgres: the audit head has a malformed chain hash")
	}
	h.Next = next
	copy(h.ChainHash[:], chain)
	return h, nil
}

// commit runs a batch of Updates in one transaction, each in a savepoint.
//
// fn's statements run under the batch's context, not the caller's: a
// context that ends mid-statement makes pgx drop the connection, which
// would fail the neighbours too. The caller's context is only checked
// before its fn starts.
//
// Round trips are what a batch costs, so the statements the store adds
// are folded into as few as possible: one to begin (lock, read the head,
// first savepoint), one between two Updates (move the savepoint on), one
// to end (write the head back, notify, COMMIT).
func (s *Store) commit(ops []*op) {
	results := make([]error, len(ops))
	defer func() {
		for i, o := range ops {
			o.done <- results[i]
		}
	}()
	failAll := func(err error) {
		for i := range results {
			if results[i] == nil {
				results[i] = err
			}
		}
	}
	live := false
	for i, o := range ops {
		if err := o.ctx.Err(); err != nil {
			results[i] = err
		} else {
			live = true
		}
	}
	if !live {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.writeTimeout)
	defer cancel()

	pc, head, err := s.begin(ctx)
	if err != nil {
		failAll(fmt.Errorf("%w: postgres: failed to start a write transaction: %w", storage.ErrUnavailable, err))
		return
	}
	// Roll back whatever did not commit, and give the connection back.
	defer release(ctx, pc)
	c := pc.Conn()
	b := &batch{head: head, hashNext: -1, topics: make(map[string]bool)}
	t := &writer{reader: reader{ctx: ctx, c: c}, b: b}

	committed := 0
	// fresh is whether savepoint u stands where the next Update starts:
	// set by begin, and again after a ROLLBACK TO (which keeps u). After
	// an Update that succeeded, u must be moved past it.
	fresh := true
	// broken is set when the savepoint machinery or the connection fails:
	// then the transaction cannot be trusted to hold the batch's earlier
	// Updates, and none of them may be reported as committed.
	var broken error
	for i, o := range ops {
		if results[i] != nil {
			continue
		}
		if err := o.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if !fresh {
			if _, err := c.Exec(ctx, `RELEASE SAVEPOINT u; SAVEPOINT u`); err != nil {
				broken = err
				break
			}
		}
		saved, savedHashNext := b.head, b.hashNext
		t.topics = nil
		t.failed = nil
		err := runFn(o.fn, t)
		if err == nil && c.PgConn().TxStatus() == 'E' {
			// fn swallowed a failed statement: PostgreSQL has aborted
			// the savepoint, so what fn believes it wrote is not there.
			err = errors.New("postgres: a statement of this update failed but the update went on; it was rolled back")
			if t.failed != nil {
				err = fmt.Errorf("%w: %w", err, t.failed)
			}
		}
		if err != nil {
			results[i] = err
			b.head, b.hashNext = saved, savedHashNext
			if _, rerr := c.Exec(ctx, `ROLLBACK TO SAVEPOINT u`); rerr != nil {
				broken = rerr
				break
			}
			fresh = true
			continue
		}
		fresh = false
		committed++
		for topic := range t.topics {
			b.topics[topic] = true
		}
	}
	if broken != nil || committed == 0 {
		if broken != nil {
			failAll(fmt.Errorf("%w: postgres: the write transaction failed (%v); nothing of this batch was written",
				storage.ErrUnavailable, classify(broken)))
		}
		return
	}

	// The values are the store's own (numbers, hex, topic constants), so
	// they are written into the statement rather than bound: that keeps
	// the end of the batch a single simple query.
	var q strings.Builder
	if b.head != head {
		fmt.Fprintf(&q, "UPDATE audit_head SET next = %d, chain_hash = decode('%x', 'hex') WHERE id = 1;\n", b.head.Next, b.head.ChainHash[:])
	}
	// Sorted so that the order of notifications does not depend on map
	// iteration.
	for _, topic := range slices.Sorted(maps.Keys(b.topics)) {
		fmt.Fprintf(&q, "SELECT pg_notify(%s, %s);\n", quote(Channel), quote(topic))
	}
	q.WriteString("COMMIT")
	tag, err := c.Exec(ctx, q.String())
	switch {
	case err == nil && tag.String() == "COMMIT":
	case err == nil:
		// The server ended an aborted transaction instead.
		failAll(fmt.Errorf("%w: postgres: the write transaction was rolled back; nothing of this batch was written", storage.ErrUnavailable))
	case isServerError(err):
		failAll(fmt.Errorf("%w: postgres: commit refused (%v); nothing of this batch was written", storage.ErrUnavailable, err))
	default:
		failAll(fmt.Errorf("%w: postgres: the connection failed during commit (%v): whether this update was written is unknown; retry it only if it is idempotent",
			storage.ErrUnavailable, err))
	}
}

// quote is s as an SQL string literal. Only the store's own constants
// (the channel, the topics) go through it.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// isServerError reports whether err is the server's answer to a statement
// (so the statement certainly failed) rather than a lost connection.
func isServerError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && !strings.EqualFold(pe.Severity, "FATAL") && !strings.EqualFold(pe.Severity, "PANIC")
}

func runFn(fn func(storage.Tx) error, t *writer) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("postgres: update panicked: %v", r)
		}
	}()
	return fn(t)
}

// classify maps driver errors onto storage's sentinels.
func classify(err error) error {
	if err == nil || errors.Is(err, storage.ErrUnavailable) || errors.Is(err, storage.ErrConflict) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		// Only uniqueness is a conflict. Other constraint failures (a
		// foreign key, NOT NULL, a CHECK) are not the caller's duplicate
		// and must not be reported as one.
		case "23505": // unique_violation
			return fmt.Errorf("%w: %v", storage.ErrConflict, err)
		case "57P01", // admin_shutdown
			"57P02", // crash_shutdown
			"57P03", // cannot_connect_now
			"57014", // query_canceled (statement_timeout)
			"53000", // insufficient_resources
			"53100", // disk_full
			"53200", // out_of_memory
			"53300", // too_many_connections
			"53400", // configuration_limit_exceeded
			"55P03", // lock_not_available (lock_timeout)
			"40001", // serialization_failure
			"40P01", // deadlock_detected
			"58030", // io_error
			"25P03": // idle_in_transaction_session_timeout
			return fmt.Errorf("%w: %v", storage.ErrUnavailable, err)
		}
		if strings.HasPrefix(pe.Code, "08") { // connection_exception
			return fmt.Errorf("%w: %v", storage.ErrUnavailable, err)
		}
		return err
	}
	if errors.Is(err, context.Canceled) && !pgconn.Timeout(err) {
		return err // the caller gave up
	}
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return fmt.Errorf("%w: %v", storage.ErrUnavailable, err)
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w: %v", storage.ErrUnavailable, err)
	}
	if pgconn.SafeToRetry(err) || isConnError(err) {
		return fmt.Errorf("%w: %v", storage.ErrUnavailable, err)
	}
	return err
}

// isConnError reports whether err is the network's, not the server's or
// this package's.
func isConnError(err error) bool {
	var ne net.Error
	return errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, &ne)
}
