package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/demo"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/httpapi"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage/postgres"
	"github.com/censusvault/censusvault/storage/sqlite"
)

func cmdInit(ctx context.Context, e *env, args []string) error {
	fs := newFlags("init", "init --data DIR --areas FILE [--name NAME] [--form NAME] [--model FILE] [--policy FILE]", e)
	var sf storeFlags
	sf.add(fs)
	areasFile := fs.String("areas", "", "areas CSV: code,parent,level,name,planned_households (required)")
	name := fs.String("name", "censusvault", "the vault's name in signed receipts and checkpoints")
	modelFile := fs.String("model", "", "Casbin model file (default: the embedded one)")
	policyFile := fs.String("policy", "", "Casbin role policy file (default: the embedded one)")
	tableForm := fs.String("form", "", "the built-in form the vault tabulates, with every version of it added later (default: "+form.Default().Name+"); other forms are deposited but not tabulated")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *areasFile == "" {
		return &exitError{code: 2, err: errors.New("--areas FILE is required (CSV: code,parent,level,name,planned_households)")}
	}
	f, err := os.Open(*areasFile)
	if err != nil {
		return err
	}
	tree, err := area.Load(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", *areasFile, err)
	}
	var model, pol string
	if *modelFile != "" {
		b, err := os.ReadFile(*modelFile)
		if err != nil {
			return err
		}
		model = string(b)
	}
	if *policyFile != "" {
		b, err := os.ReadFile(*policyFile)
		if err != nil {
			return err
		}
		pol = string(b)
	}
	opts := broker.InitOpts{Areas: tree, Model: model, Policy: pol, Name: *name, Actor: cliActor(), TableForm: *tableForm}
	if err := opts.Check(); err != nil {
		return err
	}
	// Remember what exists, so a failed init removes only what it made
	// and can simply be run again.
	made := sf.newFiles()
	st, kp, err := sf.open(ctx, true)
	if err != nil {
		made.remove()
		return err
	}
	opts.Store, opts.Keys = st, kp.system
	if err := broker.Init(ctx, opts); err != nil {
		st.Close()
		made.remove()
		return err
	}
	defer st.Close()
	fmt.Fprintf(e.stderr, "initialized vault %q in %s: %d areas, %s planned households\n", *name, sf.data, tree.Len(), groupDigits(tree.Get(tree.Root())))
	fmt.Fprintf(e.stderr, "next: add users with `censusvault user add NAME --role ROLE --area CODE --data %s`, then `censusvault serve --data %s`\n", sf.data, sf.data)
	return nil
}

func groupDigits(a area.Area, _ bool) string { return fmt.Sprint(a.Planned) }

func cmdServe(ctx context.Context, e *env, args []string) error {
	fs := newFlags("serve", "serve --data DIR [--addr 127.0.0.1:8440] [--tls-cert FILE --tls-key FILE | --dev-tls | --insecure-http] [--max-conns N]\n\n"+
		"Serves HTTPS with --tls-cert/--tls-key (TLS 1.2 or 1.3, AEAD suites only; SIGHUP re-reads the pair\n"+
		"without closing the listener) or, for trials, --dev-tls. Plain HTTP is served on a loopback\n"+
		"address, and on any other only with --insecure-http (behind a TLS-terminating proxy).", e)
	var sf storeFlags
	sf.add(fs)
	addr := fs.String("addr", "127.0.0.1:8440", "listen address")
	var tf tlsFlags
	tf.add(fs)
	proxies := fs.StringSlice("trusted-proxy", nil, "address of a load balancer whose X-Forwarded-For is trusted (repeatable)")
	cpEvery := fs.Duration("checkpoint-every", 5*time.Second, "sign a checkpoint of the audit log at least this often while events arrive")
	cpEvents := fs.Int64("checkpoint-events", 10000, "sign a checkpoint whenever this many events were appended since the last")
	var lf limitFlags
	lf.add(fs)
	pf := addPointFlags(fs)
	openCaps := fs.StringSlice("open-cap", nil, "ROLE=N: record opens for review one user of ROLE may make an hour (repeatable; default team_leader=60, supervisor=200)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := lf.check(); err != nil {
		return &exitError{code: 2, err: err}
	}
	caps, err := parseOpenCaps(*openCaps)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if err := pf.check(); err != nil {
		return err
	}
	if *cpEvery < 100*time.Millisecond || *cpEvents < 1 {
		return &exitError{code: 2, err: errors.New("--checkpoint-every must be at least 100ms and --checkpoint-events at least 1")}
	}
	if err := tf.check(*addr); err != nil {
		return &exitError{code: 2, err: err}
	}
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	// The certificate first: a bad one stops serve before the vault opens.
	tlsConf, certs, err := tf.setup(sf.data, *addr, log)
	if err != nil {
		return err
	}
	b, st, err := sf.openBroker(ctx, log, func(o *broker.Opts) {
		o.Preload, o.CheckpointEvery, o.CheckpointEvents = true, *cpEvery, *cpEvents
		o.Limits = lf.l
		pf.apply(o)
		o.OpenCaps = caps
		o.TreeProgress = func(done, total int64) {
			log.Info("building the audit log's Merkle tree (once, after an upgrade)", "events", done, "of", total)
		}
	})
	if err != nil {
		return err
	}
	defer st.Close()
	h, err := httpapi.New(httpapi.Opts{Broker: b, Log: log, TrustedProxies: *proxies, HSTS: tlsConf != nil})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", *addr, err)
	}
	ln = limitListen(ln, tf.maxConns)
	srv := newServer(h)
	if l, ok := ln.(*limitListener); ok {
		srv.ConnState = l.connState
	}
	srv.TLSConfig = tlsConf
	if certs != nil {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for range hup {
				if err := certs.reload(); err != nil {
					log.Error("TLS certificate NOT reloaded: still serving the previous one", "err", err)
				}
			}
		}()
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go b.Run(runCtx)
	go func() {
		// Build the research tables' column cache now rather than on the
		// first table request. It holds analytic variables in memory only.
		t0 := time.Now()
		if err := b.WarmTables(runCtx); err != nil {
			if runCtx.Err() == nil {
				log.Warn("table cache not built; the first table request will try again", "err", err)
			}
			return
		}
		h, p, bytes := b.TableCacheSize()
		log.Info("table cache ready", "households", h, "persons", p, "MiB", bytes>>20, "took", time.Since(t0).Round(time.Millisecond).String())
	}()
	errc := make(chan error, 1)
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
		go func() { errc <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	log.Info("serving", "addr", ln.Addr().String(), "scheme", scheme, "max_conns", tf.maxConns, "vault", b.Name(), "ingest_recipient", b.IngestRecipient())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer scancel()
	err = srv.Shutdown(sctx)
	b.Close(sctx)
	return err
}

func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

func cmdUser(ctx context.Context, e *env, args []string) error {
	sub, syn, args, done, err := subcommand(e, args, "usage: censusvault user add|import|list|show|grant|revoke|reissue|lifetimes|set-recipient|token-recipient [NAME] [flags]", map[string]string{
		"add":       "user add NAME --role ROLE --area CODE [--project ID] [--expires 90d] [--out FILE [--recipient age1…]]" + userAddRemote,
		"grant":     "user grant NAME --role ROLE --area CODE [--project ID] [--deny] [--server URL --token-file FILE]",
		"revoke":    "user revoke NAME [--server URL --token-file FILE]",
		"show":      "user show NAME [--server URL --token-file FILE]",
		"import":    userImportSynopsis,
		"list":      userListSynopsis,
		"reissue":   userReissueSynopsis,
		"lifetimes": userLifetimesSynopsis,
		"set-recipient": "user set-recipient NAME age1…  |  user set-recipient --clear NAME\n\n" +
			"Registers the age recipient (public key, from `age-keygen`) that the user's research tables\n" +
			"are encrypted to when they ask for encrypted output; --clear removes it.",
		"token-recipient": userTokenRecipientSynopsis,
	})
	if done {
		return err
	}
	fs := newFlags("user "+sub, syn, e)
	var sf storeFlags
	sf.add(fs)
	var role, areaCode, expires, project *string
	var deny, clearRecipient *bool
	if sub == "add" || sub == "grant" {
		role = fs.String("role", "", "one of: "+strings.Join(roleNames(), ", "))
		areaCode = fs.String("area", "", "area code the role covers, with its whole subtree")
		project = fs.String("project", "", "research project the grant is for (required for researchers, who are granted per project; see `censusvault project list`)")
	}
	if sub == "add" {
		expires = fs.String("expires", "", "token lifetime, e.g. 90d or 36h (default: the role's, see `censusvault user lifetimes`)")
	}
	if sub == "grant" {
		deny = fs.Bool("deny", false, "deny the role in the area's subtree instead (deny beats allow)")
	}
	if sub == "set-recipient" {
		clearRecipient = fs.Bool("clear", false, "remove the user's recipient instead")
	}
	adm := addUserAdminFlags(fs, sub)
	if err := parse(fs, args); err != nil {
		return err
	}
	if adm.handles(sub) {
		return adm.run(ctx, e, sub, fs, &sf, userArgs{role: role, area: areaCode, project: project, expires: expires, deny: deny})
	}
	switch {
	case sub == "set-recipient" && *clearRecipient && fs.NArg() != 1:
		fs.Usage()
		return &exitError{code: 2, err: errors.New("with --clear, expected exactly one user NAME")}
	case sub == "set-recipient" && !*clearRecipient && fs.NArg() != 2:
		fs.Usage()
		return &exitError{code: 2, err: errors.New("expected a user NAME and an age recipient (age1…), or --clear NAME")}
	case sub != "set-recipient" && fs.NArg() != 1:
		fs.Usage()
		return &exitError{code: 2, err: errors.New("expected exactly one user NAME")}
	}
	name := broker.UserID(fs.Arg(0))
	if role != nil && (*role == "" || *areaCode == "") {
		return &exitError{code: 2, err: errors.New("--role and --area are required")}
	}
	if sub == "revoke" {
		// The store alone, no key provider: a stolen token must be
		// locked out even while Vault is sealed or unreachable.
		st, err := sf.openStore(ctx, false)
		if err != nil {
			return err
		}
		defer st.Close()
		if err := broker.Revoke(ctx, st, cliActor(), name); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "revoked %s\n", name)
		return nil
	}
	b, st, err := sf.openBroker(ctx, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	switch sub {
	case "add":
		var exp time.Time
		if *expires != "" {
			d, err := parseDuration(*expires)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			exp = time.Now().Add(d)
		}
		tok, err := b.AddUser(ctx, cliActor(), broker.NewUser{Name: name, Role: policy.Role(*role), Area: broker.AreaCode(*areaCode), Project: *project, Expires: exp})
		if err != nil {
			return err
		}
		// The token alone on stdout, so scripts can capture it.
		fmt.Fprintln(e.stdout, tok.Reveal())
		fmt.Fprintf(e.stderr, "added %s as %s at %s%s; the token above is shown once: give it to the user\n", name, *role, *areaCode, forProject(*project))
	case "grant":
		if err := b.Grant(ctx, cliActor(), name, policy.Grant{Role: policy.Role(*role), Area: *areaCode, Deny: *deny, Project: *project}); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "granted\n")
	case "set-recipient":
		recipient := ""
		if !*clearRecipient {
			recipient = fs.Arg(1)
		}
		if err := b.SetRecipient(ctx, cliActor(), name, recipient); err != nil {
			return err
		}
		if recipient == "" {
			fmt.Fprintf(e.stderr, "removed the recipient of %s: their tables can no longer be encrypted\n", name)
		} else {
			fmt.Fprintf(e.stderr, "registered %s as the recipient of %s's encrypted tables\n", broker.RecipientStart(recipient), name)
		}
	case "show":
		u, err := b.User(ctx, name)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "user %s\n", u.Name)
		researcher := false
		for _, g := range u.Grants {
			kind := "allow"
			if g.Deny {
				kind = "deny"
			}
			researcher = researcher || (g.Role == policy.Researcher && !g.Deny)
			fmt.Fprintf(e.stdout, "  %s %s at %s%s\n", kind, g.Role, g.Area, forProject(g.Project))
		}
		switch {
		case u.Recipient != "":
			fmt.Fprintf(e.stdout, "  recipient %s\n", broker.RecipientStart(u.Recipient))
		case researcher:
			fmt.Fprintf(e.stdout, "  recipient none (encrypted tables need `censusvault user set-recipient %s age1…`)\n", u.Name)
		}
		if !u.Expires.IsZero() {
			fmt.Fprintf(e.stdout, "  expires %s\n", u.Expires.Format(time.RFC3339))
		}
		if !u.Revoked.IsZero() {
			fmt.Fprintf(e.stdout, "  revoked %s\n", u.Revoked.Format(time.RFC3339))
		}
	}
	return nil
}

// forProject is " for project ID", or "" for a grant without a project.
func forProject(id string) string {
	if id == "" {
		return ""
	}
	return " for project " + id
}

func roleNames() []string {
	var out []string
	for _, r := range policy.Roles() {
		out = append(out, string(r))
	}
	return out
}

func cmdDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlags("demo", "demo [--keep DIR] [--clients N]", e)
	keep := fs.String("keep", "", "keep the demo vault in DIR (default: a temporary directory, removed afterwards)")
	clients := fs.Int("clients", 8, "concurrent depositing devices")
	if err := parse(fs, args); err != nil {
		return err
	}
	dir := *keep
	if dir == "" {
		tmp, err := os.MkdirTemp("", "censusvault-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	return demo.Run(ctx, demo.Opts{Dir: dir, Out: e.stdout, Progress: e.stderr, Clients: *clients})
}

func cmdMigrate(ctx context.Context, e *env, args []string) error {
	fs := newFlags("migrate", "migrate --store postgres://… (or --data DIR for SQLite)", e)
	var sf storeFlags
	sf.add(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if sf.isPostgres() {
		from, to, err := postgres.Migrate(ctx, sf.store)
		if err != nil {
			return err
		}
		if from == to {
			fmt.Fprintf(e.stdout, "schema is up to date (version %d)\n", to)
		} else {
			fmt.Fprintf(e.stdout, "schema migrated from version %d to %d\n", from, to)
		}
	}
	st, err := sf.openStore(ctx, false)
	if err != nil {
		return err
	}
	defer st.Close()
	if !sf.isPostgres() {
		fmt.Fprintf(e.stdout, "schema is up to date (SQLite version %d)\n", sqlite.SchemaVersion)
	}
	// A log from before schema 5 gets its Merkle tree (once).
	t0 := time.Now()
	var built int64
	err = broker.BackfillTree(ctx, st, func(done, total int64) {
		built = total
		fmt.Fprintf(e.stderr, "\rbuilding the audit log's Merkle tree: %d/%d events (%.0fs)…", done, total, time.Since(t0).Seconds())
	})
	if built > 0 {
		fmt.Fprintln(e.stderr)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "audit log Merkle tree complete\n")
	return nil
}

// parseOpenCaps reads --open-cap ROLE=N values (the broker checks the
// roles and keeps the defaults for roles not named).
func parseOpenCaps(vals []string) (map[policy.Role]int, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	out := map[policy.Role]int{}
	for _, v := range vals {
		role, n, ok := strings.Cut(v, "=")
		k, err := strconv.Atoi(n)
		if !ok || err != nil || k < 0 || role == "" {
			return nil, fmt.Errorf("--open-cap %q: write ROLE=N with N a whole number of opens an hour, 0 or more (e.g. team_leader=60)", clipArg(v))
		}
		out[policy.Role(role)] = k
	}
	return out, nil
}
