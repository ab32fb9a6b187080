package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/client"
	"github.com/censusvault/censusvault/broker/untrusted"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/storage"
)

// cmdForm runs the form registry: add a definition (an administrator's
// act), list the forms, show one with its JSON Schema.
func cmdForm(ctx context.Context, e *env, args []string) error {
	sub, syn, args, done, err := subcommand(e, args, "usage: censusvault form add|list|show [flags]", map[string]string{
		"add": "form add FILE [--data DIR] [--store DSN] [--keys PROVIDER] | --server URL [--token-file FILE]\n\n" +
			"Adds a form version to the registry from FILE: an XLSForm workbook (.xlsx) or its JSON. On the\n" +
			"vault host as its operator, or over HTTP as an administrator (form.add over the whole tree).\n" +
			"The same definition again changes nothing. Another definition of a version no submission uses\n" +
			"yet replaces it (audited as a replacement); a version a submission uses never changes: give\n" +
			"the new definition a new version number. Prints the definition's SHA-256, which every\n" +
			"deposit made with it carries in its audit event, and the fields whose class the version\n" +
			"changes from the previous one.",
		"list": "form list [--data DIR] [--store DSN] [--keys PROVIDER] | --server URL [--token-file FILE]\n\n" +
			"Lists the forms submissions may be deposited under: the built-in ones and those added,\n" +
			"with their SHA-256 and whether a submission uses them.",
		"show": "form show NAME VERSION [--schema] [--data DIR] [--store DSN] [--keys PROVIDER] | --server URL [--token-file FILE]\n\n" +
			"Prints a form version's canonical definition (JSON), or with --schema the JSON Schema of a\n" +
			"submission made with it (draft 2020-12; x-constraints lists the rules a schema cannot say).",
	})
	if done {
		return err
	}
	fs := newFlags("form "+sub, syn, e)
	rem := addRemoteFlags(fs)
	fs.Lookup("server").Usage = "act over HTTP at this base URL, as your token's user (default: on the vault on this host, as its operator)"
	tokenFile := fs.String("token-file", "", "file holding your bearer token (default: the CENSUSVAULT_TOKEN variable)")
	var sf storeFlags
	sf.add(fs)
	var schema *bool
	if sub == "show" {
		schema = fs.Bool("schema", false, "print the JSON Schema of a submission instead of the definition")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	var (
		name    string
		version int
		def     []byte
	)
	switch sub {
	case "list":
		if err := noArgs(fs); err != nil {
			return err
		}
	case "add":
		if fs.NArg() != 1 {
			fs.Usage()
			return &exitError{code: 2, err: errors.New("expected exactly one FILE: the form's XLSForm workbook (.xlsx) or JSON")}
		}
		if def, err = readFormFile(fs.Arg(0)); err != nil {
			return err
		}
	default: // show
		if fs.NArg() != 2 {
			fs.Usage()
			return &exitError{code: 2, err: errors.New("expected a form NAME and VERSION (`censusvault form list` shows them)")}
		}
		name = fs.Arg(0)
		v, err := strconv.Atoi(fs.Arg(1))
		if err != nil || v < 1 {
			return &exitError{code: 2, err: fmt.Errorf("VERSION %q is not a form version (a whole number ≥ 1)", clipArg(fs.Arg(1)))}
		}
		version = v
	}
	var c *client.Client
	var b *broker.Broker
	if *rem.server != "" {
		if c, err = ledgerClient(e, rem, *tokenFile); err != nil {
			return err
		}
	} else {
		var st storage.Store
		b, st, err = sf.openBroker(ctx, nil)
		if err != nil {
			return err
		}
		defer st.Close()
		defer b.Close(ctx)
	}
	switch sub {
	case "add":
		var a *wire.FormAdded
		if c != nil {
			a, err = c.AddForm(ctx, def)
		} else {
			a, err = b.AddForm(ctx, broker.HostOperator(cliActor()), fs.Arg(0), def)
		}
		if err != nil {
			return err
		}
		return printFormAdded(e, a)
	case "list":
		var l *wire.FormList
		if c != nil {
			l, err = c.Forms(ctx)
		} else {
			l, err = b.FormList(ctx)
		}
		if err != nil {
			return err
		}
		return printForms(e, l)
	default: // show
		var d *wire.FormDefinition
		if c != nil {
			d, err = c.Form(ctx, name, version)
		} else {
			d, err = b.Form(ctx, name, version)
		}
		if err != nil {
			return err
		}
		out := d.Definition
		if *schema {
			out = d.Schema
		}
		var buf bytes.Buffer
		if err := json.Indent(&buf, out, "", "  "); err != nil {
			return fmt.Errorf("the vault sent a definition that is not JSON: %w", err)
		}
		buf.WriteByte('\n')
		if _, err := e.stdout.Write(buf.Bytes()); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "form %s version %d, sha256 %s, %s\n", cell(d.Name), d.Version, cell(d.SHA256), formStatus(d.Form))
		return nil
	}
}

// readFormFile reads a definition file, refusing one larger than the
// vault accepts before reading it all.
func readFormFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("FILE: %w", err)}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, broker.MaxFormFile+1))
	if err != nil {
		return nil, fmt.Errorf("FILE: %w", err)
	}
	if int64(len(b)) > broker.MaxFormFile {
		return nil, &exitError{code: 2, err: fmt.Errorf("FILE %s is over %d bytes: a form definition is smaller (remove unused sheets, images and styles from the workbook)", path, broker.MaxFormFile)}
	}
	return b, nil
}

// formStatus says whether a form is built in and in use.
func formStatus(f wire.Form) string {
	s := "added by " + cell(f.AddedBy) + " " + f.AddedAt.UTC().Format(time.RFC3339)
	if f.Builtin {
		s = "built in"
	}
	if f.InUse {
		return s + ", in use (never changes)"
	}
	return s + ", not used yet"
}

// printFormAdded prints the SHA-256 on stdout and what happened on
// stderr.
func printFormAdded(e *env, a *wire.FormAdded) error {
	fmt.Fprintln(e.stdout, a.SHA256)
	switch a.Outcome {
	case wire.FormAddedUnchanged:
		fmt.Fprintf(e.stderr, "form %s version %d is in the registry with this definition already: nothing changed\n", cell(a.Name), a.Version)
	case wire.FormAddedReplaced:
		fmt.Fprintf(e.stderr, "replaced form %s version %d (no submission used it): sha256 %s, was %s; audit event %d\n",
			cell(a.Name), a.Version, a.SHA256, cell(a.Previous), derefIndex(a.AuditIndex))
	default:
		fmt.Fprintf(e.stderr, "added form %s version %d (%s): sha256 %s; audit event %d\n", cell(a.Name), a.Version, printable(a.Title), a.SHA256, derefIndex(a.AuditIndex))
	}
	for _, r := range a.Reclassified {
		fmt.Fprintf(e.stderr, "  class: %s\n", printable(r))
	}
	if a.Outcome != wire.FormAddedUnchanged {
		fmt.Fprintf(e.stderr, "devices fetch it from GET /v1/forms/%s/%d; `censusvault form show %s %d --schema` prints its JSON Schema\n",
			cell(a.Name), a.Version, cell(a.Name), a.Version)
	}
	return nil
}

func derefIndex(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

// printForms writes the registry as a table.
func printForms(e *env, l *wire.FormList) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tTITLE\tSHA256\tIN_USE\tADDED_BY\tADDED")
	for _, f := range l.Forms {
		added, by := "built-in", "-"
		if !f.Builtin {
			added, by = f.AddedAt.UTC().Format(time.RFC3339), cell(f.AddedBy)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%t\t%s\t%s\n", cell(f.Name), f.Version, cell(untrusted.Clip(f.Title, 40)), cell(f.SHA256), f.InUse, by, added)
	}
	return tw.Flush()
}
