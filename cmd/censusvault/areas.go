package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/client"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/storage"
)

// cmdAreas revises the area tree (issue 14): `areas apply FILE` applies a
// revision document on the vault host as its operator, or over HTTP as
// an administrator.
func cmdAreas(ctx context.Context, e *env, args []string) error {
	sub, syn, args, done, err := subcommand(e, args, "usage: censusvault areas apply FILE [flags]", map[string]string{
		"apply": "areas apply FILE [--data DIR] [--store DSN] [--keys PROVIDER] | --server URL [--token-file FILE]\n\n" +
			"Applies FILE, a revision of the area tree (JSON), as the next revision: areas added, renamed,\n" +
			"re-planned, EAs split by household number or merged within one commune:\n\n" +
			`  {"note": "why", "changes": [` + "\n" +
			`    {"op": "add", "code": "18099", "parent": "437", "level": "commune", "name": "Xã mới"},` + "\n" +
			`    {"op": "add", "code": "18099.01", "parent": "18099", "level": "ea", "name": "Thôn 1", "planned": 40},` + "\n" +
			`    {"op": "rename", "code": "18070", "name": "Phường Bắc Hồng"},` + "\n" +
			`    {"op": "plan", "code": "18070.02", "planned": 120},` + "\n" +
			`    {"op": "split", "code": "18070.01", "into": [` + "\n" +
			`      {"code": "18070.11", "name": "Tổ 1 bắc", "planned": 70, "households": "1-150"},` + "\n" +
			`      {"code": "18070.12", "name": "Tổ 1 nam", "planned": 60, "households": "151-"}]},` + "\n" +
			`    {"op": "merge", "codes": ["18073.01", "18073.02"], "into": {"code": "18073.09", "name": "Tổ 1-2", "planned": 90}}]}` + "\n\n" +
			"Stored submissions never change: each counts, and is decided, in the EA its household number\n" +
			"belongs to now. Grants on a split EA move to each new EA; a merge is refused while someone\n" +
			"holds a grant on some of the merged EAs only, a split while its ranges leave out a stored\n" +
			"household. Codes are never reused. Audited; prints the document's SHA-256.",
	})
	if done {
		return err
	}
	fs := newFlags("areas "+sub, syn, e)
	rem := addRemoteFlags(fs)
	fs.Lookup("server").Usage = "act over HTTP at this base URL, as your token's user, an administrator (default: on the vault on this host, as its operator)"
	tokenFile := fs.String("token-file", "", "file holding your bearer token (default: the CENSUSVAULT_TOKEN variable)")
	var sf storeFlags
	sf.add(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return &exitError{code: 2, err: errors.New("expected exactly one FILE: the revision of the area tree (JSON)")}
	}
	path := fs.Arg(0)
	doc, err := readRevisionFile(path)
	if err != nil {
		return err
	}
	// Checked here first, so that a mistake is named before anything is
	// opened or sent; the vault checks it again, against its tree.
	if _, err := area.ParseRevision(doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var r *wire.AreaRevision
	if *rem.server != "" {
		var c *client.Client
		if c, err = ledgerClient(e, rem, *tokenFile); err != nil {
			return err
		}
		r, err = c.ReviseAreas(ctx, doc)
	} else {
		var b *broker.Broker
		var st storage.Store
		if b, st, err = sf.openBroker(ctx, nil); err != nil {
			return err
		}
		defer st.Close()
		defer b.Close(ctx)
		var br *broker.AreaRevision
		if br, err = b.ReviseAreas(ctx, broker.HostOperator(cliActor()), doc); err == nil {
			w := br.Wire()
			r = &w
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintln(e.stdout, r.SHA256)
	fmt.Fprintf(e.stderr, "revision %d of the area tree is in force (audit event %d): %d added, %d renamed, %d re-planned, %d split, %d merged",
		r.Revision, r.AuditIndex, r.Added, r.Renamed, r.Replanned, r.Split, r.Merged)
	if r.GrantsMoved > 0 {
		fmt.Fprintf(e.stderr, "; %d grants on retired EAs moved to %d on the new ones", r.GrantsMoved, r.GrantsAdded)
	}
	fmt.Fprintln(e.stderr)
	return nil
}

// readRevisionFile reads a revision document, refusing one larger than
// the vault accepts before reading it all.
func readRevisionFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("FILE: %w", err)}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, area.MaxRevisionBytes+1))
	if err != nil {
		return nil, fmt.Errorf("FILE: %w", err)
	}
	if len(b) > area.MaxRevisionBytes {
		return nil, &exitError{code: 2, err: fmt.Errorf("FILE %s is over %d bytes: split the revision into several", path, area.MaxRevisionBytes)}
	}
	return b, nil
}
