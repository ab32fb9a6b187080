package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/client"
	"github.com/censusvault/censusvault/broker/dp/zcdp"
	"github.com/censusvault/censusvault/broker/untrusted"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/spf13/pflag"
)

// cmdLedger shows the privacy ledger of dp tables and proposes and
// approves changes of its shares.
func cmdLedger(ctx context.Context, e *env, args []string) error {
	sub, syn, args, done, err := subcommand(e, args, "usage: censusvault ledger show|propose|approve [flags]", map[string]string{
		"show": "ledger show [--data DIR] [--store DSN] [--keys PROVIDER] | --server URL [--token-file FILE]\n\n" +
			"Shows the privacy ledger of dp tables (custom tables under differential privacy): each share —\n" +
			"the commune cap (what all dp tables together may spend in any one commune), each researcher's\n" +
			"and each project's share of every commune — as ρ and as ε, what it has spent in its worst commune\n" +
			"and where, and how many more dp tables of the default ρ it can pay for there; then the proposed\n" +
			"changes, pending and approved. On the vault host (--data/--store/--keys) it shows every share;\n" +
			"with --server it asks over HTTP as your token's user (a researcher sees the cap, their own share\n" +
			"and their projects'). The token is read from --token-file or, without it, CENSUSVAULT_TOKEN.",
		"propose": "ledger propose --kind commune|researcher|project [--holder NAME] --rho R --reason TEXT --server URL [--token-file FILE]\n\n" +
			"Proposes a new ρ for one share: the commune cap (no --holder), a researcher's share (--holder\n" +
			"USER) or a project's (--holder PROJECT). An admin may propose any; a researcher their own share\n" +
			"or their project's. Nothing changes until an approver who is not the proposer approves it with\n" +
			"`censusvault ledger approve SEQ` (within a week). Prints the proposal's SEQ on stdout.",
		"approve": "ledger approve SEQ --server URL [--token-file FILE]\n\n" +
			"Approves share proposal SEQ (`censusvault ledger show` lists them): an approver over the whole\n" +
			"area tree, never the proposer (four eyes). The share takes the proposed ρ at once; the approval\n" +
			"is in the audit log with the share's new ρ and ε.",
	})
	if done {
		return err
	}
	fs := newFlags("ledger "+sub, syn, e)
	rem := addRemoteFlags(fs)
	tokenFile := fs.String("token-file", "", "file holding your bearer token (default: the CENSUSVAULT_TOKEN variable)")
	switch sub {
	case "show":
		l, err := readHereOrThere(ctx, e, fs, rem, tokenFile, args,
			func(c *client.Client) (*wire.Ledger, error) { return c.Ledger(ctx) },
			func(b *broker.Broker) (*wire.Ledger, error) { return b.Ledger(ctx) })
		if err != nil {
			return err
		}
		return printLedger(e, l)
	case "propose":
		kind := fs.String("kind", "", "the share: commune (the cap of every commune), researcher or project")
		holder := fs.String("holder", "", "the researcher (user name) or project whose share it is; none for the commune cap")
		rho := fs.String("rho", "", "the share's new ρ, a decimal such as 0.4 (at most six decimals)")
		reason := fs.String("reason", "", "why, in a sentence, for the approver and the audit log")
		if err := parse(fs, args); err != nil {
			return err
		}
		if err := noArgs(fs); err != nil {
			return err
		}
		switch {
		case *kind == "":
			return &exitError{code: 2, err: errors.New("--kind is required: commune, researcher or project")}
		case *rho == "":
			return &exitError{code: 2, err: errors.New("--rho is required: the share's new ρ, e.g. 0.4")}
		case strings.TrimSpace(*reason) == "":
			return &exitError{code: 2, err: errors.New("--reason is required: say why, for the approver and the audit log")}
		case *rem.server == "":
			return &exitError{code: 2, err: errors.New("--server URL is required (or CENSUSVAULT_SERVER)")}
		}
		c, err := ledgerClient(e, rem, *tokenFile)
		if err != nil {
			return err
		}
		ch, err := c.ProposeShare(ctx, *kind, *holder, *rho, *reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%d\n", ch.Seq)
		fmt.Fprintf(e.stderr, "proposed change %d: %s ρ=%s (ε=%.2f at δ=%g); an approver approves it with `censusvault ledger approve %d`\n",
			ch.Seq, shareName(ch.Kind, ch.Holder), printable(ch.Rho), ch.Epsilon, zcdp.Delta, ch.Seq)
		return nil
	default: // approve
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			fs.Usage()
			return &exitError{code: 2, err: errors.New("expected exactly one SEQ, the proposal to approve (`censusvault ledger show` lists them)")}
		}
		seq, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if err != nil || seq < 1 {
			return &exitError{code: 2, err: fmt.Errorf("SEQ %q is not a proposal's number (a whole number ≥ 1; `censusvault ledger show` lists them)", clipArg(fs.Arg(0)))}
		}
		if *rem.server == "" {
			return &exitError{code: 2, err: errors.New("--server URL is required (or CENSUSVAULT_SERVER)")}
		}
		c, err := ledgerClient(e, rem, *tokenFile)
		if err != nil {
			return err
		}
		ch, err := c.ApproveShare(ctx, seq)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "approved change %d: %s is now ρ=%s (ε=%.2f at δ=%g), as %s proposed: %s\n",
			ch.Seq, shareName(ch.Kind, ch.Holder), printable(ch.Rho), ch.Epsilon, zcdp.Delta, printable(ch.ProposedBy), printable(ch.Reason))
		return nil
	}
}

// readHereOrThere runs a read-only command that takes no arguments: over
// HTTP as the token's user with --server, else on the vault on this host
// (store flags added to fs here; flags are read once parsed, so
// tokenFile is the flag's pointer).
func readHereOrThere[T any](ctx context.Context, e *env, fs *pflag.FlagSet, rem remote, tokenFile *string, args []string,
	there func(*client.Client) (T, error), here func(*broker.Broker) (T, error)) (T, error) {
	var zero T
	fs.Lookup("server").Usage = "ask the vault at this base URL over HTTP, as your token's user (default: read the vault on this host)"
	var sf storeFlags
	sf.add(fs)
	if err := parse(fs, args); err != nil {
		return zero, err
	}
	if err := noArgs(fs); err != nil {
		return zero, err
	}
	if *rem.server != "" {
		c, err := ledgerClient(e, rem, *tokenFile)
		if err != nil {
			return zero, err
		}
		return there(c)
	}
	b, st, err := sf.openBroker(ctx, nil)
	if err != nil {
		return zero, err
	}
	defer st.Close()
	defer b.Close(ctx)
	return here(b)
}

// ledgerClient is the client of the ledger commands, as the token's user.
func ledgerClient(e *env, rem remote, tokenFile string) (*client.Client, error) {
	tok, err := clientToken(e, tokenFile)
	if err != nil {
		return nil, err
	}
	o, err := rem.clientOpts(tok, httpClient())
	if err != nil {
		return nil, err
	}
	c, err := client.New(o)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("--server: %w", err)}
	}
	c.Retries = 0
	return c, nil
}

// printLedger writes the shares, then the proposed changes, as tables.
func printLedger(e *env, l *wire.Ledger) error {
	fmt.Fprintf(e.stdout, "privacy ledger of dp tables: each table spends ρ=%s unless it names its own; ε at δ=%g\n\n", printable(l.TableRho), l.Delta)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tHOLDER\tRHO\tEPSILON\tSPENT\tEPSILON_SPENT\tWORST_AREA\tTABLES_LEFT\tSET")
	for _, s := range l.Shares {
		set := "approved"
		if s.Default {
			set = "default"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%s\t%.2f\t%s\t%d\t%s\n", cell(s.Kind), cell(s.Holder), cell(s.Rho), s.Epsilon,
			cell(s.Spent), s.SpentEpsilon, cell(s.WorstArea), s.Tables, set)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(l.Changes) == 0 {
		fmt.Fprintln(e.stderr, "no share changes proposed (an admin, or the researcher whose share it is, proposes one with `censusvault ledger propose`)")
		return nil
	}
	fmt.Fprintln(e.stdout)
	tw = tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tKIND\tHOLDER\tRHO\tEPSILON\tSTATUS\tPROPOSED_BY\tPROPOSED\tAPPROVED_BY\tAPPROVED\tREASON")
	for _, pending := range []bool{true, false} {
		for _, c := range l.Changes {
			if (c.ApprovedBy == "") != pending {
				continue
			}
			status, by, at := "pending", "-", "-"
			if !pending {
				status, by, at = "approved", cell(c.ApprovedBy), c.ApprovedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Seq, cell(c.Kind), cell(c.Holder), cell(c.Rho), c.Epsilon,
				status, cell(c.ProposedBy), c.ProposedAt.UTC().Format(time.RFC3339), by, at, printable(c.Reason))
		}
	}
	return tw.Flush()
}

// shareName is a share as a sentence names it.
func shareName(kind, holder string) string {
	if kind == "commune" && holder == "" {
		return "the commune cap"
	}
	return printable(kind) + " share " + printable(holder)
}

// cell is one word of a table: "-" for nothing, and what printable keeps
// with spaces made visible, so that a column stays one column.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.ReplaceAll(printable(s), " ", "_")
}

// printable is text from the vault as it may reach a terminal: control
// and other non-printing characters (escape sequences, tabs that would
// shift the columns, bidirectional overrides) become U+FFFD, and it is
// bounded. A vault, or a store, that has been tampered with cannot then
// rewrite what the operator sees.
func printable(s string) string {
	return untrusted.Clip(strings.Map(func(r rune) rune {
		if r == ' ' || unicode.IsPrint(r) {
			return r
		}
		return unicode.ReplacementChar
	}, s), 600)
}
