package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/client"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/storage"
)

// cmdExtract runs the extracts for the processing centre: environments
// (the host operator's), proposals (a processor's), approvals (an
// approver's who may not administer) and downloads (a processor's).
func cmdExtract(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "env" {
		return cmdExtractEnv(ctx, e, args[1:])
	}
	sub, syn, args, done, err := subcommand(e, args, "usage: censusvault extract env|propose|approve|list|download [flags]", map[string]string{
		"propose": "extract propose --env NAME --areas CODE[,CODE…] --classes analytic,operational [--form census2019] [--form-version N] [--format jsonl|csv] --purpose TEXT --server URL [--token-file FILE]\n\n" +
			"Proposes an extract of microdata for a registered processing environment (a processor's act):\n" +
			"the households of the areas (each with its whole subtree, which must be in your scope) of one\n" +
			"form version, with the fields of the classes named, as they stand now — the extract is fixed at\n" +
			"this proposal's audit event, so every later download gives the same bytes. Identifying fields\n" +
			"are refused unless both the policy and the environment allow them. An approver who is not you\n" +
			"approves it within a week. Prints the extract's SEQ on stdout.",
		"approve": "extract approve SEQ --server URL [--token-file FILE]\n\n" +
			"Approves extract SEQ (an approver's act; never the proposer's own, nor an administrator's).\n" +
			"Check first where it goes: `censusvault extract list` shows each extract's environment and\n" +
			"the start and SHA-256 of its recipient, which the processing centre can confirm\n" +
			"(`printf %s age1… | sha256sum` on its side).",
		"list": "extract list [--data DIR] [--store DSN] [--keys PROVIDER] | --server URL [--token-file FILE]\n\n" +
			"Lists the extract proposals: on the vault host every one, over HTTP those of your scope.",
		"download": "extract download SEQ --out FILE.age --server URL [--token-file FILE]\n\n" +
			"Downloads approved extract SEQ (a processor's act): the vault encrypts it with age to the\n" +
			"environment's recipient and this command writes that ciphertext, and only it, to FILE (mode\n" +
			"0600, in place only once whole). It prints the SHA-256 and the rows of the plaintext, which\n" +
			"the audit log also holds: the holder of the environment's identity checks them with\n" +
			"`age -d -i ENV-KEY FILE | sha256sum`.",
	})
	if done {
		return err
	}
	fs := newFlags("extract "+sub, syn, e)
	rem := addRemoteFlags(fs)
	tokenFile := fs.String("token-file", "", "file holding your bearer token (default: the CENSUSVAULT_TOKEN variable)")
	needServer := func() error {
		if *rem.server == "" {
			return &exitError{code: 2, err: errors.New("--server URL is required (or CENSUSVAULT_SERVER)")}
		}
		return nil
	}
	seqArg := func() (int64, error) {
		if fs.NArg() != 1 {
			fs.Usage()
			return 0, &exitError{code: 2, err: errors.New("expected exactly one SEQ, the extract's number (`censusvault extract list` shows them)")}
		}
		seq, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if err != nil || seq < 1 {
			return 0, &exitError{code: 2, err: fmt.Errorf("SEQ %q is not an extract's number (a whole number ≥ 1)", clipArg(fs.Arg(0)))}
		}
		return seq, nil
	}
	switch sub {
	case "propose":
		envName := fs.String("env", "", "the processing environment (`censusvault extract env list`)")
		areas := fs.String("areas", "", "area codes, comma-separated; each covers its whole subtree")
		classes := fs.String("classes", "", "field classes, comma-separated: identifying, analytic, operational")
		formName := fs.String("form", "census2019", "the form")
		formVersion := fs.Int("form-version", 0, "the form's version (default: its newest)")
		format := fs.String("format", wire.ExtractJSONL, "jsonl (one JSON object per household) or csv (a row per person, with a header)")
		purpose := fs.String("purpose", "", "what the extract is for, in one line (it goes in the audit log)")
		if err := parse(fs, args); err != nil {
			return err
		}
		if err := noArgs(fs); err != nil {
			return err
		}
		switch {
		case *envName == "":
			return &exitError{code: 2, err: errors.New("--env is required: the processing environment the extract is for")}
		case *areas == "":
			return &exitError{code: 2, err: errors.New("--areas is required: the area codes, comma-separated")}
		case *classes == "":
			return &exitError{code: 2, err: errors.New("--classes is required, e.g. analytic,operational")}
		case strings.TrimSpace(*purpose) == "":
			return &exitError{code: 2, err: errors.New("--purpose is required: say what the extract is for")}
		}
		if err := needServer(); err != nil {
			return err
		}
		c, err := ledgerClient(e, rem, *tokenFile)
		if err != nil {
			return err
		}
		x, err := c.ProposeExtract(ctx, wire.ExtractRequest{Environment: *envName, Areas: splitList(*areas), Form: *formName,
			FormVersion: *formVersion, Classes: splitList(*classes), Format: *format, Purpose: *purpose})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%d\n", x.Seq)
		fmt.Fprintf(e.stderr, "proposed extract %d: %s of %s v%d, classes %s, areas %s, as of audit event %d, for environment %s\n"+
			"(recipient %s, sha256 %s);\n"+
			"an approver who is not you approves it by %s with `censusvault extract approve %d`\n",
			x.Seq, cell(x.Format), cell(x.Form), x.FormVersion, printable(strings.Join(x.Classes, ",")), printable(strings.Join(x.Areas, ",")),
			x.AsOf, cell(x.Environment), cell(x.RecipientStart), cell(x.RecipientSHA256), x.ExpiresAt.UTC().Format(time.RFC3339), x.Seq)
		return nil
	case "approve":
		if err := parse(fs, args); err != nil {
			return err
		}
		seq, err := seqArg()
		if err != nil {
			return err
		}
		if err := needServer(); err != nil {
			return err
		}
		c, err := ledgerClient(e, rem, *tokenFile)
		if err != nil {
			return err
		}
		x, err := c.ApproveExtract(ctx, seq)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "approved extract %d, proposed by %s: %s of %s v%d, classes %s, areas %s, for environment %s (recipient %s, sha256 %s): %s\n",
			x.Seq, cell(x.ProposedBy), cell(x.Format), cell(x.Form), x.FormVersion, printable(strings.Join(x.Classes, ",")),
			printable(strings.Join(x.Areas, ",")), cell(x.Environment), cell(x.RecipientStart), cell(x.RecipientSHA256), printable(x.Purpose))
		return nil
	case "list":
		l, err := readHereOrThere(ctx, e, fs, rem, tokenFile, args,
			func(c *client.Client) (*wire.ExtractList, error) { return c.Extracts(ctx) },
			func(b *broker.Broker) (*wire.ExtractList, error) { return b.Extracts(ctx) })
		if err != nil {
			return err
		}
		return printExtracts(e, l)
	default: // download
		out := fs.String("out", "", "write the ciphertext to FILE (required; mode 0600; an existing FILE is not replaced)")
		if err := parse(fs, args); err != nil {
			return err
		}
		seq, err := seqArg()
		if err != nil {
			return err
		}
		if *out == "" {
			return &exitError{code: 2, err: errors.New("--out FILE.age is required: the extract is written to a file, never to the terminal")}
		}
		if err := needServer(); err != nil {
			return err
		}
		return extractDownload(ctx, e, rem, *tokenFile, seq, *out)
	}
}

// extractDownload downloads extract seq into out: a temporary file next
// to it, renamed into place once the body ended cleanly (removed
// otherwise), so that out is never an incomplete age file.
func extractDownload(ctx context.Context, e *env, rem remote, tokenFile string, seq int64, out string) error {
	if _, err := os.Lstat(out); err == nil {
		return &exitError{code: 2, err: fmt.Errorf("--out %s exists: choose another file (an extract is never written over another)", out)}
	}
	tok, err := clientToken(e, tokenFile)
	if err != nil {
		return err
	}
	// The vault reads the whole extract once before it sends a byte: no
	// overall time limit shorter than a census's extract.
	o, err := rem.clientOpts(tok, &http.Client{Timeout: 24 * time.Hour})
	if err != nil {
		return err
	}
	c, err := client.New(o)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--server: %w", err)}
	}
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	tmp := f.Name()
	d, err := c.DownloadExtract(ctx, seq, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// Not over a file made meanwhile: link fails if out exists.
		if err = os.Link(tmp, out); err != nil {
			err = fmt.Errorf("--out: %w", err)
		}
	}
	os.Remove(tmp)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "sha256 %s\nrows %d\n", d.SHA256, d.Rows)
	fmt.Fprintf(e.stderr, "wrote extract %d to %s: %d bytes of age ciphertext for the processing environment\n"+
		"plaintext: %s, %d rows (%d households), as of audit event %d; the download is audit event %d\n"+
		"the environment checks it with: age -d -i ENV-KEY %s | sha256sum   (must print %s)\n",
		seq, out, d.Bytes, d.Format, d.Rows, d.Households, d.AsOf, d.AuditIndex, out, d.SHA256)
	return nil
}

// splitList splits a comma-separated flag, dropping blanks around items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// printExtracts writes the proposals as a table.
func printExtracts(e *env, l *wire.ExtractList) error {
	if len(l.Extracts) == 0 {
		fmt.Fprintln(e.stderr, "no extracts (a processor proposes one with `censusvault extract propose`)")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tSTATUS\tENVIRONMENT\tRECIPIENT\tRECIPIENT_SHA256\tAREAS\tFORM\tCLASSES\tFORMAT\tAS_OF\tPROPOSED_BY\tPROPOSED\tAPPROVED_BY\tPURPOSE")
	for _, x := range l.Extracts {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", x.Seq, cell(x.Status), cell(x.Environment),
			cell(x.RecipientStart), cell(x.RecipientSHA256),
			cell(strings.Join(x.Areas, ",")), cell(fmt.Sprintf("%s/v%d", x.Form, x.FormVersion)), cell(strings.Join(x.Classes, ",")),
			cell(x.Format), x.AsOf, cell(x.ProposedBy), x.ProposedAt.UTC().Format(time.RFC3339), cell(x.ApprovedBy), printable(x.Purpose))
	}
	return tw.Flush()
}

// cmdExtractEnv registers, lists and retires processing environments.
func cmdExtractEnv(ctx context.Context, e *env, args []string) error {
	sub, syn, args, done, err := subcommand(e, args, "usage: censusvault extract env add|list|retire [flags]", map[string]string{
		"add": "extract env add NAME --recipient age1… [--classes analytic,operational] [--data DIR] [--store DSN] [--keys PROVIDER]\n\n" +
			"Registers a processing environment, on the vault host only (--data/--store/--keys), as its\n" +
			"operator: the age recipient its extracts are encrypted to (X25519 age1… or post-quantum\n" +
			"age1pq1…, from `age-keygen` on the processing centre's machine, whose identity never leaves\n" +
			"it) and the field classes it may receive (default analytic,operational; identifying only if\n" +
			"listed, and the policy must allow it too). The recipient decides who can decrypt the\n" +
			"extracts, so no administrator registers one over HTTP (the vault answers 403 host_only).\n" +
			"Prints the recipient's SHA-256, which the centre checks with `printf %s age1… | sha256sum`\n" +
			"and approvers see with each extract. A name is registered once: an environment is never\n" +
			"changed, only retired.",
		"list": "extract env list [--data DIR] [--store DSN] [--keys PROVIDER] | --server URL [--token-file FILE]\n\n" +
			"Lists the processing environments, retired ones too.",
		"retire": "extract env retire NAME [--data DIR] [--store DSN] [--keys PROVIDER] | --server URL [--token-file FILE]\n\n" +
			"Retires a processing environment: nothing more is proposed for it, approved or downloaded.\n" +
			"On the vault host as its operator, or over HTTP as an admin (it only takes access away).",
	})
	if done {
		return err
	}
	fs := newFlags("extract env "+sub, syn, e)
	rem := addRemoteFlags(fs)
	fs.Lookup("server").Usage = "act over HTTP at this base URL, as your token's user (default: on the vault on this host, as its operator)"
	tokenFile := fs.String("token-file", "", "file holding your bearer token (default: the CENSUSVAULT_TOKEN variable)")
	var sf storeFlags
	sf.add(fs)
	var recipient, classes *string
	if sub == "add" {
		recipient = fs.String("recipient", "", "the environment's age recipient (age1… or age1pq1…)")
		classes = fs.String("classes", "", "field classes it may receive, comma-separated (default analytic,operational)")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case sub == "list":
		if err := noArgs(fs); err != nil {
			return err
		}
	case fs.NArg() != 1:
		fs.Usage()
		return &exitError{code: 2, err: errors.New("expected exactly one environment NAME")}
	case sub == "add" && *rem.server != "":
		return &exitError{code: 2, err: errors.New("a processing environment is registered on the vault host only (its recipient decides who can decrypt the extracts): " +
			"run `censusvault extract env add NAME --recipient age1… --data DIR` there, without --server")}
	case sub == "add" && *recipient == "":
		return &exitError{code: 2, err: errors.New("--recipient is required: the environment's age recipient (age1…), from `age-keygen -y` on its machine")}
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
		ne := wire.NewEnvironment{Name: fs.Arg(0), Recipient: *recipient, Classes: splitList(*classes)}
		env, err := b.AddEnvironment(ctx, broker.HostOperator(cliActor()), ne)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "registered environment %s (classes %s) with recipient %s, sha256 %s\n"+
			"(the processing centre checks it: printf %%s RECIPIENT | sha256sum; approvers see it with each extract)\n",
			cell(env.Name), printable(strings.Join(env.Classes, ",")), broker.RecipientStart(env.Recipient), env.RecipientSHA256)
	case "retire":
		var env *wire.Environment
		if c != nil {
			env, err = c.RetireEnvironment(ctx, fs.Arg(0))
		} else {
			env, err = b.RetireEnvironment(ctx, broker.HostOperator(cliActor()), fs.Arg(0))
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "retired environment %s\n", cell(env.Name))
	default: // list
		var l *wire.EnvironmentList
		if c != nil {
			l, err = c.Environments(ctx)
		} else {
			l, err = b.Environments(ctx)
		}
		if err != nil {
			return err
		}
		if len(l.Environments) == 0 {
			fmt.Fprintln(e.stderr, "no processing environments (the operator registers one on the vault host with `censusvault extract env add`)")
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSTATUS\tCLASSES\tCREATED_BY\tCREATED\tRECIPIENT\tRECIPIENT_SHA256")
		for _, env := range l.Environments {
			status := "in use"
			if env.RetiredBy != "" {
				status = "retired " + env.RetiredAt.UTC().Format(time.DateOnly)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(env.Name), cell(status), cell(strings.Join(env.Classes, ",")), cell(env.CreatedBy),
				env.CreatedAt.UTC().Format(time.RFC3339), cell(env.Recipient), cell(env.RecipientSHA256))
		}
		return tw.Flush()
	}
	return nil
}
