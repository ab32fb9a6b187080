package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/client"
	"github.com/censusvault/censusvault/broker/tables"
	"github.com/censusvault/censusvault/broker/untrusted"
)

// cmdTable requests research tables over HTTP (researchers) and replays
// released ones from the audit log (auditors, through an operator).
func cmdTable(ctx context.Context, e *env, args []string) error {
	sub, syn, args, done, err := subcommand(e, args, "usage: censusvault table request|replay [flags] ARG", map[string]string{
		"request": "table request --server URL [--token-file FILE] [--csv] [--encrypt] [--out FILE] REQUEST.json|-\n\n" +
			"Sends a table request and writes the table to stdout or --out. The request (JSON) is either\n" +
			"a standard table of the catalogue — project, purpose, table, area, as_of (a publication point's\n" +
			"name, default the latest; GET /v1/catalogue lists the tables) — or a custom table, which the\n" +
			"vault answers under differential privacy (a dp table) — project, purpose, rows, cols, filter,\n" +
			"measure, unit, optionally rho (its ρ, default 0.02) and as_of (a point's name, default the\n" +
			"day's scheduled point). A dp table spends its ρ from the privacy ledger (`censusvault ledger\n" +
			"show`); the same query again at the same point is the same table, charged nothing.\n" +
			"The digest, point, audit event, cells debited, budget left and, for a dp table, its ρ (and\n" +
			"\"repeat: no debit\" for a repeat) go to stderr. The token is read from --token-file or,\n" +
			"without it, CENSUSVAULT_TOKEN.\n" +
			"With --encrypt the vault encrypts the table to your registered age recipient: decrypt it\n" +
			"with `age -d -i KEY` and compare its SHA-256 with the digest.",
		"replay": "table replay [--data DIR] [--store DSN] [--keys PROVIDER] [--out FILE] EVENT_INDEX\n\n" +
			"Recomputes the table released by audit event EVENT_INDEX and compares its SHA-256 with\n" +
			"the logged digest. Exit status: 0 the digest matches, 1 it does not, 2 could not replay.",
	})
	if done {
		return err
	}
	fs := newFlags("table "+sub, syn, e)
	out := fs.String("out", "", "write the table to FILE (mode 0600) instead of stdout")
	switch sub {
	case "request":
		rem := addRemoteFlags(fs)
		tokenFile := fs.String("token-file", "", "file holding your bearer token (default: the CENSUSVAULT_TOKEN variable)")
		csv := fs.Bool("csv", false, "ask for CSV instead of JSON")
		encrypt := fs.Bool("encrypt", false, "ask for the table encrypted to your registered age recipient")
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			fs.Usage()
			return &exitError{code: 2, err: errors.New("expected exactly one REQUEST.json (or - for standard input)")}
		}
		if *rem.server == "" {
			return &exitError{code: 2, err: errors.New("--server URL is required (or CENSUSVAULT_SERVER)")}
		}
		format := tables.FormatJSON
		if *csv {
			format = tables.FormatCSV
		}
		return tableRequest(ctx, e, rem, *tokenFile, fs.Arg(0), format, *encrypt, *out)
	default: // replay
		var sf storeFlags
		sf.add(fs)
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			fs.Usage()
			return &exitError{code: 2, err: errors.New("expected exactly one EVENT_INDEX")}
		}
		idx, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if err != nil || idx < 0 {
			return &exitError{code: 2, err: fmt.Errorf("EVENT_INDEX %q is not an audit event index (a whole number ≥ 0)", clipArg(fs.Arg(0)))}
		}
		return tableReplay(ctx, e, &sf, idx, *out)
	}
}

// clipArg shortens what was typed before it goes into a message.
func clipArg(s string) string { return untrusted.Clip(s, 40) }

// clientToken reads the bearer token from file, or from CENSUSVAULT_TOKEN
// without one. Tokens are never taken from the command line, where other
// users of the machine could read them.
func clientToken(e *env, file string) (string, error) {
	if file == "" {
		tok := strings.TrimSpace(os.Getenv("CENSUSVAULT_TOKEN"))
		if tok == "" {
			return "", &exitError{code: 2, err: errors.New("no token: give --token-file FILE (the token `censusvault user add` printed) or set CENSUSVAULT_TOKEN")}
		}
		return tok, nil
	}
	fi, err := os.Stat(file)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Size() > 4096 {
		return "", fmt.Errorf("--token-file %s: not a token file (a regular file holding one token)", file)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(e.stderr, "warning: %s is readable by other users (mode %v): chmod 600 it\n", file, fi.Mode().Perm())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("--token-file %s: want exactly one token in the file", file)
	}
	return tok, nil
}

func tableRequest(ctx context.Context, e *env, rem remote, tokenFile, reqFile, format string, encrypt bool, out string) error {
	tok, err := clientToken(e, tokenFile)
	if err != nil {
		return err
	}
	var r io.Reader = os.Stdin
	name := "standard input"
	if reqFile != "-" {
		f, err := os.Open(reqFile)
		if err != nil {
			return err
		}
		defer f.Close()
		r, name = f, reqFile
	}
	body, err := io.ReadAll(io.LimitReader(r, tables.MaxRequestBytes+1))
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	if len(body) > tables.MaxRequestBytes {
		return &exitError{code: 2, err: fmt.Errorf("%s is over %d bytes, the limit of a table request", name, tables.MaxRequestBytes)}
	}
	if encrypt && out == "" && isTerminal(e.stdout) {
		return &exitError{code: 2, err: errors.New("--encrypt writes binary age data: give --out FILE or redirect standard output")}
	}
	o, err := rem.clientOpts(tok, httpClient())
	if err != nil {
		return err
	}
	c, err := client.New(o)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--server: %w", err)}
	}
	t, err := c.RequestTable(ctx, body, format, encrypt)
	if err != nil {
		return err
	}
	if err := writeOutput(e, out, t.Body); err != nil {
		return err
	}
	what := t.ContentType
	if t.Encrypted {
		what += ", age-encrypted to your registered recipient"
	}
	fmt.Fprintf(e.stderr, "table:     %d bytes (%s)\n", len(t.Body), what)
	fmt.Fprintf(e.stderr, "digest:    %s\n", t.Digest)
	fmt.Fprintf(e.stderr, "point:     %s (made at deposit point %d)\n", t.Point, t.AsOf)
	fmt.Fprintf(e.stderr, "audit:     event %d\n", t.AuditIndex)
	fmt.Fprintf(e.stderr, "cells:     %d\n", t.Cells)
	fmt.Fprintf(e.stderr, "remaining: %d\n", t.Remaining)
	if t.Rho != "" {
		fmt.Fprintf(e.stderr, "rho:       %s (a dp table: differential privacy, charged to the privacy ledger)\n", printable(t.Rho))
	}
	if t.Repeat {
		fmt.Fprintf(e.stderr, "repeat:    no debit (this query was answered at this point before: the same table again)\n")
	}
	if t.Encrypted {
		fmt.Fprintf(e.stderr, "decrypt with `age -d -i YOUR-KEY`; the digest is the SHA-256 of the decrypted table\n")
	}
	return nil
}

func tableReplay(ctx context.Context, e *env, sf *storeFlags, idx int64, out string) error {
	b, st, err := sf.openBroker(ctx, nil)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer st.Close()
	defer b.Close(ctx)
	stop := tableProgress(e, b)
	res, err := b.ReplayTable(ctx, cliActor(), idx)
	stop()
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if out != "" {
		if err := writeOutput(e, out, res.Table); err != nil {
			return &exitError{code: 2, err: err}
		}
	}
	if res.Unread > 0 {
		fmt.Fprintf(e.stderr, "note: %d submissions could not be opened (their analytic keys were shredded, or they are of another form)\n", res.Unread)
	}
	if !res.Match {
		fmt.Fprintf(e.stdout, "event %d: project %s %s\n", res.Index, res.Project, replayPoint(res))
		return &exitError{code: 1, err: fmt.Errorf("DIGEST MISMATCH: logged %s recomputed %s", res.Logged, res.Digest)}
	}
	fmt.Fprintf(e.stdout, "event %d: project %s %s: digest matches (%s)\n", res.Index, res.Project, replayPoint(res), res.Digest)
	return nil
}

// tableProgress shows how far the table cache is built: it opens every
// submission, which on a national census takes a while. stop ends the
// progress line.
func tableProgress(e *env, b *broker.Broker) (stop func()) {
	start := time.Now()
	var last time.Time
	shown := false
	b.SetTableProgress(func(households int) {
		if now := time.Now(); now.Sub(last) >= 250*time.Millisecond {
			last, shown = now, true
			fmt.Fprintf(e.stderr, "\rbuilding the table cache: %d households (%.0fs)…", households, time.Since(start).Seconds())
		}
	})
	return func() {
		b.SetTableProgress(nil)
		if shown {
			fmt.Fprintln(e.stderr)
		}
	}
}

// writeOutput writes data to stdout, or to path (mode 0600, replaced
// whole: a reader never sees half a table).
func writeOutput(e *env, path string, data []byte) error {
	if path == "" {
		_, err := e.stdout.Write(data)
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("--out: %w", err)
	}
	return nil
}

// httpClient is the client of `table request`: the first table after the
// server starts builds its table cache, which takes a while on a census.
func httpClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Minute}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// replayPoint says what a replayed table was computed at.
func replayPoint(r *broker.ReplayResult) string {
	if r.Point != "" {
		return fmt.Sprintf("at publication point %s (deposit point %d)", r.Point, r.AsOf)
	}
	return fmt.Sprintf("as of %d", r.AsOf)
}
