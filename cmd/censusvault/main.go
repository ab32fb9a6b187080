// Command censusvault runs the census data vault: init, serve, users,
// keys, the audit log (verification, export, checkpoints, pruning),
// receipts' proofs and a demo. It parses flags, wires the
// concrete parts (SQLite store, local age key provider) and calls into
// the broker; the logic lives in the packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/postgres"
	"github.com/censusvault/censusvault/storage/sqlite"
	"github.com/spf13/pflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what a command writes to.
type env struct {
	stdout, stderr io.Writer
}

func commands() []command {
	return []command{
		{"init", "create a new vault: data directory, keys, areas, policy", cmdInit},
		{"serve", "run the HTTP API", cmdServe},
		{"demo", "run the Hồng Lĩnh census demo end to end over HTTP", cmdDemo},
		{"user", "add (one, or a file of them), list, show, grant, revoke users, reissue tokens, token lifetimes, register their age recipient and the field office's (user add|import|list|show|grant|revoke|reissue|lifetimes|set-recipient|token-recipient)", cmdUser},
		{"policy", "the policy: show or export it, grant, deny, revoke, load role rules, proposals, confirm one, check why it decides (policy show|export|grant|deny|revoke|load|proposals|confirm|check)", cmdPolicy},
		{"keys", "key operations (keys rotate-ingest)", cmdKeys},
		{"audit", "the audit log: verify the store or an export, fetch an export or the latest checkpoint, prune (audit verify|export|checkpoint|prune)", cmdAudit},
		{"receipt", "prove over HTTP that your deposit is in the audit log, and check the proof (receipt proof)", cmdReceipt},
		{"migrate", "bring the database schema up to date (also done on every start)", cmdMigrate},
		{"project", "research projects: add|list|show|close", cmdProject},
		{"release-point", "publication points, the frozen moments standard tables are computed at (release-point create|list)", cmdReleasePoint},
		{"table", "research tables: request one over HTTP, or replay a released one from the audit log (table request|replay)", cmdTable},
		{"ledger", "the privacy ledger of dp tables: show its shares and what they spent, propose or approve a change (ledger show|propose|approve)", cmdLedger},
		{"extract", "extracts for the processing centre: environments, proposals, approvals, encrypted downloads (extract env add|list|retire, extract propose|approve|list|download)", cmdExtract},
		{"areas", "revise the area tree: add, rename, re-plan areas, split or merge EAs (areas apply FILE)", cmdAreas},
		{"form", "the form registry: add a definition (XLSForm or JSON), list the forms, show one and its JSON Schema (form add|list|show)", cmdForm},
		{"gen", "generate a synthetic census and load it through the ingest path (for tests and benchmarks)", cmdGen},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: censusvault <command> [flags] [arguments]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `censusvault <command> --help` for a command's flags. These flags can also be set")
	fmt.Fprintln(w, "from the environment as CENSUSVAULT_<FLAG> (e.g. CENSUSVAULT_DATA=/srv/vault); a flag on")
	fmt.Fprintln(w, "the command line wins:")
	fmt.Fprintln(w, "  --"+strings.Join(envFlags, " --"))
	fmt.Fprintln(w, "Every other flag (--confirm, --deny, --role, …) is taken only from the command line; a")
	fmt.Fprintln(w, "CENSUSVAULT_<FLAG> variable naming one is ignored with a warning.")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, e, args[1:])
		if err == nil {
			return 0
		}
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.err != nil {
				fmt.Fprintf(stderr, "censusvault %s: %v\n", c.name, ee.err)
			}
			return ee.code
		}
		fmt.Fprintf(stderr, "censusvault %s: %v\n", c.name, err)
		return 1
	}
	fmt.Fprintf(stderr, "censusvault: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// newFlags makes a flag set that allows flags after positional arguments;
// parse reads the unset flags fromEnv allows from CENSUSVAULT_* variables.
func newFlags(name, synopsis string, e *env) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetInterspersed(true)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: censusvault %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return &exitError{code: 2, err: err}
	}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil {
			return
		}
		key := envName(f.Name)
		v, ok := os.LookupEnv(key)
		switch {
		case !ok:
		case !fromEnv(f.Name):
			// Said aloud, never used: a variable left in a shell or a
			// unit file would otherwise confirm, deny or weaken every
			// command run from it. The value is not echoed.
			fmt.Fprintf(fs.Output(), "censusvault: warning: %s is ignored: --%s is taken only from the command line\n", key, f.Name)
		case !f.Changed:
			if serr := fs.Set(f.Name, v); serr != nil {
				err = &exitError{code: 2, err: fmt.Errorf("%s: %w", key, serr)}
			}
		}
	})
	return err
}

// envName is the variable a flag may be read from.
func envName(flag string) string {
	return "CENSUSVAULT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// envFlags are the flags that may come from the environment: only where
// the vault, its keys and its server are and how to reach them.
// Confirmations (--confirm), grants (--deny, --role, --area), switches
// that weaken a protection (--insecure-http, --dev-tls, --max-conns,
// --trusted-proxy) and everything else must be typed.
var envFlags = []string{"data", "store", "keys", "addr", "server", "token-file", "ca", "tls-cert", "tls-key"}

// fromEnv reports whether a flag may come from the environment.
func fromEnv(flag string) bool { return slices.Contains(envFlags, flag) }

// storeFlags are the flags of every command that touches the store.
type storeFlags struct {
	data  string
	store string
	keys  string
}

func (s *storeFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&s.data, "data", "censusvault-data", "data directory (holds the local key-provider identity and, by default, the database)")
	fs.StringVar(&s.store, "store", "", "database: empty for <data>/vault.db, sqlite:PATH, or postgres://user@host:port/db?sslmode=…")
	fs.StringVar(&s.keys, "keys", "age", "key provider: age (the identity in <data>/keyprovider.age) or vault://MOUNT/KEY (HashiCorp Vault Transit keys KEY-system, KEY-identifying, KEY-analytic; VAULT_ADDR, VAULT_TOKEN or VAULT_ROLE_ID/VAULT_SECRET_ID, VAULT_NAMESPACE, VAULT_CACERT from the environment)")
}

// isPostgres reports whether the store is a PostgreSQL DSN.
func (s *storeFlags) isPostgres() bool {
	return strings.HasPrefix(s.store, "postgres://") || strings.HasPrefix(s.store, "postgresql://")
}

// sqlitePath is the SQLite file the flags name, or "" for PostgreSQL.
func (s *storeFlags) sqlitePath() (string, error) {
	switch {
	case s.store == "":
		return filepath.Join(s.data, sqlite.FileName), nil
	case strings.HasPrefix(s.store, "sqlite:"):
		return strings.TrimPrefix(s.store, "sqlite:"), nil
	case s.isPostgres():
		return "", nil
	}
	return "", fmt.Errorf("--store: expected nothing (for <data>/vault.db), sqlite:PATH or postgres://…")
}

// openStore opens (with create, creates) the database the flags name.
func (s *storeFlags) openStore(ctx context.Context, create bool) (storage.Store, error) {
	path, err := s.sqlitePath()
	if err != nil {
		return nil, err
	}
	if path == "" {
		return postgres.Open(ctx, postgres.Options{DSN: s.store})
	}
	return sqlite.Open(ctx, sqlite.Options{Path: path, Create: create})
}

// open wires the store and the key providers.
func (s *storeFlags) open(ctx context.Context, create bool) (storage.Store, *keySet, error) {
	if _, err := s.sqlitePath(); err != nil {
		return nil, nil, err
	}
	ks, err := s.openKeys(ctx, s.keys, create)
	if err != nil {
		return nil, nil, err
	}
	st, err := s.openStore(ctx, create)
	if err != nil {
		return nil, nil, err
	}
	return st, ks, nil
}

// openBroker opens the vault for a CLI command; opts adjust the broker's
// options (serve preloads keys and sets checkpoint intervals).
func (s *storeFlags) openBroker(ctx context.Context, log *slog.Logger, opts ...func(*broker.Opts)) (*broker.Broker, storage.Store, error) {
	b, st, _, err := s.openBrokerKeys(ctx, log, nil, opts...)
	return b, st, err
}

// openBrokerKeys opens the vault; with from, while keys move from those
// providers to the ones the flags name.
func (s *storeFlags) openBrokerKeys(ctx context.Context, log *slog.Logger, from *keySet, opts ...func(*broker.Opts)) (*broker.Broker, storage.Store, *keySet, error) {
	st, ks, err := s.open(ctx, false)
	if err != nil {
		return nil, nil, nil, err
	}
	o := broker.Opts{Store: st, Keys: ks.system, ClassKeys: ks.classes, Log: log}
	if from != nil {
		o.MigrateFrom, o.MigrateFromClass = from.system, from.classes
	}
	for _, f := range opts {
		f(&o)
	}
	b, err := broker.New(ctx, o)
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	return b, st, ks, nil
}

// cliActor names the operator in audit events.
func cliActor() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return "cli:" + name
}

// parseDuration accepts Go durations and whole days ("90d").
func parseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad duration %q (use e.g. 90d or 36h)", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q (use e.g. 90d or 36h)", s)
	}
	return d, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// createdFiles are the vault files that did not exist before a command.
type createdFiles []string

func (s *storeFlags) newFiles() createdFiles {
	files := []string{filepath.Join(s.data, agekey.FileName),
		classIdentityPath(s.data, crypto.Identifying), classIdentityPath(s.data, crypto.Analytic)}
	if db, err := s.sqlitePath(); err == nil && db != "" {
		files = append(files, db, db+"-wal", db+"-shm")
	}
	var out createdFiles
	for _, p := range files {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			out = append(out, p)
		}
	}
	return out
}

func (c createdFiles) remove() {
	for _, p := range c {
		os.Remove(p)
	}
}

// subcommand splits "GROUP SUB args…" and returns SUB's synopsis. When SUB
// is missing or unknown it prints the group's usage and done is true: the
// caller returns err (nil for --help, exit status 2 otherwise).
func subcommand(e *env, args []string, usage string, synopses map[string]string) (sub, syn string, rest []string, done bool, err error) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	if syn, ok := synopses[sub]; ok {
		return sub, syn, args, false, nil
	}
	fmt.Fprintln(e.stderr, usage)
	switch {
	case sub == "" && len(args) > 0 && (args[0] == "-h" || args[0] == "--help"):
		return "", "", nil, true, nil
	case sub == "":
		return "", "", nil, true, &exitError{code: 2}
	}
	return "", "", nil, true, &exitError{code: 2, err: fmt.Errorf("unknown subcommand %q", sub)}
}
