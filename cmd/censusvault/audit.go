package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/client"
	"github.com/spf13/pflag"
	"golang.org/x/mod/sumdb/note"
)

// How an audit key is given on the command line (--key): the verifier
// key itself, "<name>+<hash>+<key data>" as GET /v1/keys/audit answers it,
// or else the name of a file holding it on one line.
const keyFlagHelp = "the vault's audit verifier key: the key itself (NAME+HASH+KEYDATA, as GET /v1/keys/audit answers it) or a file holding it"

func cmdAudit(ctx context.Context, e *env, args []string) error {
	sub, syn, args, done, err := subcommand(e, args, "usage: censusvault audit verify|export|checkpoint|prune [flags]\n\n"+
		"  verify [--data DIR] [--key KEY]    check the stored log: events, chain, Merkle tree, checkpoints\n"+
		"  verify EXPORT --key KEY [--checkpoint CP] [--previous OLD_CP]...\n"+
		"                                     check an export offline against signed checkpoints\n"+
		"  export --server URL --out FILE     fetch an export (auditors)\n"+
		"  checkpoint --server URL --out FILE fetch the latest signed checkpoint (witnesses)\n"+
		"  prune --before DATE|--before-index I --confirm …\n"+
		"                                     remove old event bodies, keeping their hashes (operators)",
		map[string]string{
			"verify": "audit verify [--data DIR] [--store DSN] [--key KEY]\n" +
				"       censusvault audit verify EXPORT.jsonl --key KEY [--checkpoint CP] [--previous OLD_CP]...\n\n" +
				"Without EXPORT, checks the vault's stored log end to end: every event, the hash chain, the\n" +
				"stored Merkle tree and every signed checkpoint's root (and signature, with --key).\n\n" +
				"With EXPORT (from `audit export`), checks it offline, with no access to the vault: the\n" +
				"checkpoint signatures with --key, every line, the chain and the Merkle root; that the export\n" +
				"is the tree of the trusted checkpoint CP (kept outside the vault, e.g. by a witness: without\n" +
				"it the export's own signed checkpoint is used); and that the log extends every older\n" +
				"checkpoint OLD_CP (neither truncated nor rewritten). --data and --store are not used then.\n" +
				"CP and OLD_CP are signed checkpoint files, as `audit checkpoint` writes them.\n" +
				"KEY is the verifier key itself (NAME+HASH+KEYDATA, as GET /v1/keys/audit answers it) or a\n" +
				"file holding it.\n\n" +
				"Exit status: 0 intact, 1 broken (the first bad event, or the rollback or fork, is named),\n" +
				"2 could not read the log, the export or the checkpoints.",
			"export": "audit export --server URL [--token-file FILE] [--size N] [--out FILE]\n\n" +
				"Fetches the audit log as of the signed checkpoint of size N (default: the latest) as JSON\n" +
				"Lines, for auditors, to FILE (or standard output). An auditor scoped to part of the country\n" +
				"gets the other events as withheld leaves (hashes only); pruned events are withheld for\n" +
				"everyone. If the transfer breaks, nothing is written to FILE: what arrived is kept in\n" +
				"FILE.partial, and `audit verify` names where it ends. The token is read from --token-file\n" +
				"or, without it, CENSUSVAULT_TOKEN.",
			"checkpoint": "audit checkpoint --server URL [--out FILE] [--key KEY [--previous OLD_CP]...]\n" +
				"       censusvault audit checkpoint --data DIR [--store DSN] [--out FILE]   (sign one now, on the vault)\n\n" +
				"Fetches the vault's latest signed checkpoint (a public route) to FILE (or standard output),\n" +
				"so that an auditor or a witness keeps it outside the vault. With --key, its signature is\n" +
				"checked first; with --previous too, the vault must prove (RFC 6962 consistency proofs)\n" +
				"that its log extends each older checkpoint, else nothing is written.\n\n" +
				"Exit status: 0 saved, 1 the checkpoint does not verify or the log does not extend an older\n" +
				"one (rollback or fork), 2 could not fetch or read.",
			"prune": "audit prune --before DATE|--before-index I [--confirm SAME] [--data DIR] [--store DSN] [--keys PROVIDER]\n\n" +
				"Removes the bodies of the audit events before DATE (RFC 3339, or YYYY-MM-DD for midnight\n" +
				"UTC) or before index I, under the retention policy. Their leaf and chain hashes stay: the\n" +
				"chain, the Merkle tree, old checkpoints and proofs all still verify, and exports show them\n" +
				"as withheld. Only events a signed checkpoint covers are pruned (one is signed first). The\n" +
				"pruning is itself an audit event. Without --confirm repeating the --before or\n" +
				"--before-index value, it only says what it would remove.",
		})
	if done {
		return err
	}
	fs := newFlags("audit "+sub, syn, e)
	switch sub {
	case "verify":
		var sf storeFlags
		sf.add(fs)
		key := fs.String("key", "", keyFlagHelp+" (required with EXPORT)")
		cp := fs.String("checkpoint", "", "with EXPORT: a signed checkpoint file the export must match (kept outside the vault)")
		prev := fs.StringArray("previous", nil, "with EXPORT: an older signed checkpoint file the log must extend (repeatable)")
		if err := parse(fs, args); err != nil {
			return err
		}
		switch fs.NArg() {
		case 0:
			if *cp != "" || len(*prev) > 0 {
				return &exitError{code: 2, err: errors.New("--checkpoint and --previous check an EXPORT file: give one (from `censusvault audit export`)")}
			}
			return auditVerifyStore(ctx, e, &sf, *key)
		case 1:
			return auditVerifyExport(e, fs.Arg(0), *key, *cp, *prev)
		}
		fs.Usage()
		return &exitError{code: 2, err: errors.New("expected at most one EXPORT file")}
	case "export":
		rem := addRemoteFlags(fs)
		tokenFile := fs.String("token-file", "", "file holding your bearer token (default: the CENSUSVAULT_TOKEN variable)")
		size := fs.Int64("size", 0, "the size of the signed checkpoint to export (default: the latest)")
		out := fs.String("out", "", "write the export to FILE (mode 0600) instead of standard output")
		if err := parse(fs, args); err != nil {
			return err
		}
		if err := noArgs(fs); err != nil {
			return err
		}
		if *rem.server == "" {
			return &exitError{code: 2, err: errors.New("--server URL is required (or CENSUSVAULT_SERVER)")}
		}
		if *size < 0 {
			return &exitError{code: 2, err: errors.New("--size must be the size of a signed checkpoint (≥ 1), or left out for the latest")}
		}
		return auditExport(ctx, e, rem, *tokenFile, *size, *out)
	case "checkpoint":
		rem := addRemoteFlags(fs)
		out := fs.String("out", "", "write the checkpoint to FILE instead of standard output")
		key := fs.String("key", "", keyFlagHelp+": check the checkpoint's signature before saving it")
		prev := fs.StringArray("previous", nil, "an older signed checkpoint file the vault must prove its log extends (repeatable; needs --key)")
		var sf storeFlags
		sf.add(fs)
		if err := parse(fs, args); err != nil {
			return err
		}
		if err := noArgs(fs); err != nil {
			return err
		}
		if *rem.server == "" && (fs.Changed("data") || fs.Changed("store")) {
			// On demand, on the vault: sign a checkpoint of the log as it
			// is now (or return the latest if it already covers it).
			b, st, err := sf.openBroker(ctx, nil)
			if err != nil {
				return err
			}
			defer st.Close()
			cp, err := b.MakeCheckpoint(ctx)
			if err != nil {
				return err
			}
			if *out == "" {
				_, err = e.stdout.Write(cp.Note)
				return err
			}
			if err := os.WriteFile(*out, cp.Note, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "checkpoint of %d events written to %s\n", cp.Size, *out)
			return nil
		}
		if *rem.server == "" {
			return &exitError{code: 2, err: errors.New("--server URL is required (or CENSUSVAULT_SERVER); or --data DIR to sign one on the vault")}
		}
		if len(*prev) > 0 && *key == "" {
			return &exitError{code: 2, err: errors.New("--previous needs --key: older checkpoints are compared only once the new one's signature is checked")}
		}
		return auditCheckpoint(ctx, e, rem, *out, *key, *prev)
	default: // prune
		var sf storeFlags
		sf.add(fs)
		before := fs.String("before", "", "prune the events before this time: RFC 3339, or YYYY-MM-DD for midnight UTC")
		beforeIndex := fs.String("before-index", "", "prune the events before this audit index")
		confirm := fs.String("confirm", "", "repeat the --before or --before-index value to prune for good")
		if err := parse(fs, args); err != nil {
			return err
		}
		if err := noArgs(fs); err != nil {
			return err
		}
		return auditPrune(ctx, e, &sf, *before, *beforeIndex, *confirm)
	}
}

// noArgs refuses positional arguments.
func noArgs(fs *pflag.FlagSet) error {
	if fs.NArg() == 0 {
		return nil
	}
	fs.Usage()
	return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q", clipArg(fs.Arg(0)))}
}

// verifierKeyArg reads --key: the verifier key itself, or a file holding
// it. Errors are usage errors (exit 2).
func verifierKeyArg(s string) (string, error) {
	if s == "" {
		return "", &exitError{code: 2, err: errors.New("--key is required: " + keyFlagHelp)}
	}
	if _, err := note.NewVerifier(s); err == nil {
		return s, nil
	}
	fi, err := os.Stat(s)
	if err != nil {
		return "", &exitError{code: 2, err: fmt.Errorf("--key %s: neither an audit verifier key (NAME+HASH+KEYDATA, as GET /v1/keys/audit answers it) nor a readable file", clipArg(s))}
	}
	if !fi.Mode().IsRegular() || fi.Size() > 4096 {
		return "", &exitError{code: 2, err: fmt.Errorf("--key %s: not a key file (a small file holding one verifier key)", s)}
	}
	b, err := os.ReadFile(s)
	if err != nil {
		return "", &exitError{code: 2, err: fmt.Errorf("--key: %w", err)}
	}
	k := strings.TrimSpace(string(b))
	if _, err := note.NewVerifier(k); err != nil {
		return "", &exitError{code: 2, err: fmt.Errorf("--key %s: the file does not hold an audit verifier key (one line NAME+HASH+KEYDATA, as GET /v1/keys/audit answers it)", s)}
	}
	return k, nil
}

// maxCheckpointFile bounds a checkpoint file: audit refuses notes over
// 64 KiB.
const maxCheckpointFile = 64 << 10

// readCheckpointFile reads a signed checkpoint note from a file and
// checks it with key: one that does not verify is an input the auditor
// cannot use (exit 2), not evidence against the log.
func readCheckpointFile(flag, path, key string) ([]byte, audit.Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, audit.Checkpoint{}, &exitError{code: 2, err: fmt.Errorf("%s: %w", flag, err)}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCheckpointFile+1))
	if err != nil {
		return nil, audit.Checkpoint{}, &exitError{code: 2, err: fmt.Errorf("%s %s: %w", flag, path, err)}
	}
	if len(b) > maxCheckpointFile {
		return nil, audit.Checkpoint{}, &exitError{code: 2, err: fmt.Errorf("%s %s: over %d bytes, not a signed checkpoint", flag, path, maxCheckpointFile)}
	}
	cp, err := audit.OpenCheckpoint(b, key)
	if err != nil {
		return nil, audit.Checkpoint{}, &exitError{code: 2, err: fmt.Errorf("%s %s does not verify with the key given (wrong key, or not a checkpoint of this vault): %w", flag, path, err)}
	}
	return b, cp, nil
}

func b64(h [32]byte) string { return base64.StdEncoding.EncodeToString(h[:]) }

func auditVerifyStore(ctx context.Context, e *env, sf *storeFlags, keyArg string) error {
	key := ""
	if keyArg != "" {
		var err error
		if key, err = verifierKeyArg(keyArg); err != nil {
			return err
		}
	}
	st, err := sf.openStore(ctx, false)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer st.Close()
	start := time.Now()
	shown := false
	res, err := broker.VerifyAudit(ctx, st, key, func(n int64) {
		shown = true
		fmt.Fprintf(e.stderr, "\rverified %d events…", n)
	})
	if shown {
		fmt.Fprintln(e.stderr)
	}
	var ve *audit.VerifyError
	if errors.As(err, &ve) {
		return &exitError{code: 1, err: fmt.Errorf("audit chain BROKEN: %v", ve)}
	}
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("could not read the audit log: %w", err)}
	}
	fmt.Fprintf(e.stdout, "audit chain OK: %d events, head %s (%.1fs)\n", res.Events, hex.EncodeToString(res.Head[:]), time.Since(start).Seconds())
	how := "roots checked; give --key to check their signatures too"
	if key != "" {
		v, _ := note.NewVerifier(key)
		how = "roots and signatures by " + v.Name() + " checked"
	}
	fmt.Fprintf(e.stdout, "Merkle root %s; %d signed checkpoints (%s); %d pruned events (hashes checked)\n", b64(res.Root), res.Checkpoints, how, res.Pruned)
	fmt.Fprintf(e.stdout, "%d privacy-ledger debits and %d grant log entries match the events that made them\n", res.LedgerDebits, res.GrantLogEntries)
	return nil
}

// errReader remembers a read error, to tell an unreadable file from a
// broken export.
type errReader struct {
	r   io.Reader
	err error
}

func (r *errReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

func auditVerifyExport(e *env, path, keyArg, cpFile string, prevFiles []string) error {
	key, err := verifierKeyArg(keyArg)
	if err != nil {
		return err
	}
	o := audit.ExportOpts{VerifierKey: key}
	if cpFile != "" {
		if o.Checkpoint, _, err = readCheckpointFile("--checkpoint", cpFile, key); err != nil {
			return err
		}
	}
	for _, p := range prevFiles {
		b, _, err := readCheckpointFile("--previous", p, key)
		if err != nil {
			return err
		}
		o.Previous = append(o.Previous, b)
	}
	f, err := os.Open(path)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer f.Close()
	shown := false
	o.Progress = func(lines int64) {
		if lines >= 1<<16 || shown {
			shown = true
			fmt.Fprintf(e.stderr, "\rverifying the export: %d lines…", lines)
		}
	}
	r := &errReader{r: f}
	res, err := audit.VerifyExport(r, o)
	if shown {
		fmt.Fprintln(e.stderr)
	}
	var ve *audit.VerifyError
	switch {
	case r.err != nil:
		return &exitError{code: 2, err: fmt.Errorf("could not read %s: %w", path, r.err)}
	case errors.As(err, &ve):
		return &exitError{code: 1, err: fmt.Errorf("audit log BROKEN: %v", ve)}
	case errors.Is(err, audit.ErrVerifierKey):
		return &exitError{code: 2, err: err}
	case errors.Is(err, audit.ErrCheckpointMismatch):
		return &exitError{code: 1, err: fmt.Errorf("the export is not of the --checkpoint tree (%v): export that tree (`audit export --size`), or give the checkpoint as --previous to check that the export extends it", err)}
	case err != nil:
		return &exitError{code: 1, err: fmt.Errorf("audit export does NOT verify: %v", err)}
	}
	if cpFile == "" {
		fmt.Fprintln(e.stderr, "note: no --checkpoint: the export was checked against its own signed checkpoint; give one kept outside the vault (`censusvault audit checkpoint`) to rule out a log shown only to you")
	}
	fmt.Fprintf(e.stdout, "audit log OK: %d leaves (%d events, %d withheld), root %s, consistent with %d earlier checkpoints\n",
		res.Size, res.Events, res.Withheld, b64(res.Root), len(prevFiles))
	return nil
}

// auditClient is the client of the audit and receipt commands. An export
// streams for as long as the log is long, so no overall timeout bounds it
// (timeout 0); a server that does not start answering is given up on
// after two minutes.
func auditClient(rem remote, token string, timeout time.Duration) (*client.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 2 * time.Minute
	o, err := rem.clientOpts(token, &http.Client{Transport: tr, Timeout: timeout})
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

// checkpointOf reads a signed note's checkpoint without checking its
// signature: for messages only.
func checkpointOf(signed []byte) (audit.Checkpoint, error) {
	body, _, ok := strings.Cut(string(signed), "\n\n")
	if !ok {
		return audit.Checkpoint{}, errors.New("not a signed note")
	}
	return audit.ParseCheckpoint(body + "\n")
}

func auditExport(ctx context.Context, e *env, rem remote, tokenFile string, size int64, out string) error {
	tok, err := clientToken(e, tokenFile)
	if err != nil {
		return err
	}
	c, err := auditClient(rem, tok, 0)
	if err != nil {
		return err
	}
	if out == "" {
		bw := bufio.NewWriterSize(e.stdout, 64<<10)
		_, err := c.Export(ctx, size, bw)
		if ferr := bw.Flush(); err == nil && ferr != nil {
			err = ferr
		}
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	tmp := f.Name()
	bw := bufio.NewWriterSize(f, 64<<10)
	n, err := c.Export(ctx, size, bw)
	if ferr := bw.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("--out: %w", ferr)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("--out: %w", cerr)
	}
	if err != nil {
		if n > 0 {
			partial := out + ".partial"
			if rerr := os.Rename(tmp, partial); rerr == nil {
				return fmt.Errorf("%w\nwhat arrived (%d bytes) is in %s: `censusvault audit verify %s --key KEY` names where it ends", err, n, partial, partial)
			}
		}
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("--out: %w", err)
	}
	what := "the audit log"
	if cp, err := exportCheckpoint(out); err == nil {
		what = fmt.Sprintf("the audit log as of its checkpoint of size %d", cp.Size)
	}
	fmt.Fprintf(e.stderr, "wrote %s: %s (%d bytes)\nverify it with `censusvault audit verify %s --key KEY --checkpoint CP`, CP a checkpoint kept outside the vault\n", out, what, n, out)
	return nil
}

// exportCheckpoint reads the checkpoint named by an export's first line,
// unverified, for messages.
func exportCheckpoint(path string) (audit.Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return audit.Checkpoint{}, err
	}
	defer f.Close()
	line, err := bufio.NewReaderSize(f, maxCheckpointFile+64).ReadSlice('\n')
	if err != nil {
		return audit.Checkpoint{}, err
	}
	var first struct {
		Checkpoint string `json:"checkpoint"`
	}
	if err := json.Unmarshal(line, &first); err != nil {
		return audit.Checkpoint{}, err
	}
	return checkpointOf([]byte(first.Checkpoint))
}

func auditCheckpoint(ctx context.Context, e *env, rem remote, out, keyArg string, prevFiles []string) error {
	key := ""
	if keyArg != "" {
		var err error
		if key, err = verifierKeyArg(keyArg); err != nil {
			return err
		}
	}
	type older struct {
		file string
		cp   audit.Checkpoint
	}
	var prev []older
	for _, p := range prevFiles {
		_, cp, err := readCheckpointFile("--previous", p, key)
		if err != nil {
			return err
		}
		prev = append(prev, older{p, cp})
	}
	c, err := auditClient(rem, "", time.Minute)
	if err != nil {
		return err
	}
	signed, err := c.Checkpoint(ctx)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("could not fetch the checkpoint: %w", err)}
	}
	var cp audit.Checkpoint
	if key != "" {
		if cp, err = audit.OpenCheckpoint(signed, key); err != nil {
			return &exitError{code: 1, err: fmt.Errorf("the vault's checkpoint does NOT verify; not saved: %w", err)}
		}
	} else if cp, err = checkpointOf(signed); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("the vault's answer is not a checkpoint; not saved: %w", err)}
	}
	for _, p := range prev {
		switch {
		case p.cp.Size > cp.Size:
			return &exitError{code: 1, err: fmt.Errorf("ROLLBACK: the vault's log has %d events, fewer than the %d of %s: it was truncated or rolled back; not saved", cp.Size, p.cp.Size, p.file)}
		case p.cp.Size == cp.Size && p.cp.Root != cp.Root:
			return &exitError{code: 1, err: fmt.Errorf("FORK: the vault signed two different logs of %d events (%s and now); not saved", cp.Size, p.file)}
		case p.cp.Size == cp.Size:
			continue
		}
		proof, err := c.ConsistencyProof(ctx, p.cp.Size, cp.Size)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("could not fetch the consistency proof from %s: %w", p.file, err)}
		}
		if err := audit.CheckConsistency(proof, cp.Size, cp.Root, p.cp.Size, p.cp.Root); err != nil {
			return &exitError{code: 1, err: fmt.Errorf("FORK: the vault's log of %d events does not extend %s (%d events): it was rewritten; not saved: %v", cp.Size, p.file, p.cp.Size, err)}
		}
	}
	if err := writeOutput(e, out, signed); err != nil {
		return &exitError{code: 2, err: err}
	}
	what := "signature not checked (give --key)"
	if key != "" {
		what = "signature verified"
		if len(prev) > 0 {
			what += fmt.Sprintf(", consistent with %d earlier checkpoints", len(prev))
		}
	}
	dest := "standard output"
	if out != "" {
		dest = out
	}
	fmt.Fprintf(e.stderr, "checkpoint of %s: %d events, root %s (%s); written to %s\n", cp.Origin, cp.Size, b64(cp.Root), what, dest)
	return nil
}

// parsePruneTime reads --before: RFC 3339, or a date for midnight UTC.
func parsePruneTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--before %q: give an RFC 3339 time (2019-04-01T00:00:00+07:00) or a date (2019-04-01, midnight UTC)", clipArg(s))
}

func auditPrune(ctx context.Context, e *env, sf *storeFlags, before, beforeIndex, confirm string) error {
	if (before == "") == (beforeIndex == "") {
		return &exitError{code: 2, err: errors.New("give exactly one of --before DATE and --before-index I")}
	}
	given, flag := before, "--before"
	var at time.Time
	idx := int64(-1)
	if before != "" {
		t, err := parsePruneTime(before)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		at = t
	} else {
		given, flag = beforeIndex, "--before-index"
		v, err := strconv.ParseInt(beforeIndex, 10, 64)
		if err != nil || v < 0 {
			return &exitError{code: 2, err: fmt.Errorf("--before-index %q: give an audit index (a whole number ≥ 0)", clipArg(beforeIndex))}
		}
		idx = v
	}
	if confirm != given {
		// Say what it would do, touching nothing.
		st, err := sf.openStore(ctx, false)
		if err != nil {
			return err
		}
		if idx < 0 {
			if idx, err = broker.PruneIndex(ctx, st, at); err != nil {
				st.Close()
				return err
			}
		}
		st.Close()
		if idx == 0 {
			fmt.Fprintf(e.stderr, "no audit event is before %s: nothing to prune\n", given)
			return nil
		}
		fmt.Fprintf(e.stderr, "this would remove the bodies of audit events 0…%d (%d events, any pruned already included).\n"+
			"Their leaf and chain hashes stay: the log, its checkpoints and proofs still verify, and exports show them as withheld.\n", idx-1, idx)
		return &exitError{code: 2, err: fmt.Errorf("this removes audit event bodies for good: repeat with --confirm %s", given)}
	}
	b, st, err := sf.openBroker(ctx, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	if idx < 0 {
		if idx, err = broker.PruneIndex(ctx, st, at); err != nil {
			return err
		}
	}
	if idx == 0 {
		fmt.Fprintf(e.stdout, "no audit event is before %s: nothing pruned\n", given)
		return nil
	}
	n, err := b.PruneAudit(ctx, cliActor(), idx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "pruned %d audit event bodies (the events before index %d, %s %s); their leaf and chain hashes are kept: the log and its checkpoints still verify, and exports show them as withheld\n", n, idx, flag, given)
	return nil
}
