package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/client"
	"golang.org/x/mod/sumdb/note"
)

// cmdReceipt proves to an enumerator that a deposit is in the audit log.
func cmdReceipt(ctx context.Context, e *env, args []string) error {
	sub, syn, args, done, err := subcommand(e, args, "usage: censusvault receipt proof --server URL [flags] ID", map[string]string{
		"proof": "receipt proof --server URL [--token-file FILE] [--key KEY] [--receipt-key RKEY] ID\n\n" +
			"Fetches the proof that your deposit ID is in the vault's audit log, prints it (JSON) on\n" +
			"standard output, and checks it offline: the checkpoint's signature by the audit key, the\n" +
			"RFC 6962 inclusion proof, and that the proven event is the one your signed receipt names\n" +
			"(the receipt is fetched and its signature checked with the receipt key). Without --key and\n" +
			"--receipt-key the keys are fetched from the same server: give the keys the census office\n" +
			"publishes to check independently of it. KEY and RKEY are the keys themselves or files\n" +
			"holding them. The token is read from --token-file or, without it, CENSUSVAULT_TOKEN.\n\n" +
			"Exit status: 0 proven, 1 the proof does not verify, 2 could not fetch it.",
	})
	if done {
		return err
	}
	fs := newFlags("receipt "+sub, syn, e)
	rem := addRemoteFlags(fs)
	tokenFile := fs.String("token-file", "", "file holding your bearer token (default: the CENSUSVAULT_TOKEN variable)")
	keyArg := fs.String("key", "", keyFlagHelp+" (default: fetched from the server)")
	receiptKeyArg := fs.String("receipt-key", "", "the vault's receipt verifier key, or a file holding it (default: fetched from the server)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return &exitError{code: 2, err: errors.New("expected exactly one submission ID")}
	}
	if *rem.server == "" {
		return &exitError{code: 2, err: errors.New("--server URL is required (or CENSUSVAULT_SERVER)")}
	}
	id := fs.Arg(0)
	tok, err := clientToken(e, *tokenFile)
	if err != nil {
		return err
	}
	keys := map[string]string{}
	for which, arg := range map[string]string{"audit": *keyArg, "receipt": *receiptKeyArg} {
		if arg != "" {
			k, err := verifierKeyArg(arg)
			if err != nil {
				return err
			}
			keys[which] = k
		}
	}
	c, err := auditClient(rem, tok, time.Minute)
	if err != nil {
		return err
	}
	fetched := false
	for _, which := range []string{"audit", "receipt"} {
		if keys[which] != "" {
			continue
		}
		k, err := c.VerifierKey(ctx, which)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("could not fetch the %s key: %w", which, err)}
		}
		keys[which], fetched = k, true
	}
	p, err := c.ReceiptProof(ctx, id)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("could not get the proof of %s: %w", clipArg(id), err)}
	}
	rc, err := c.Receipt(ctx, id)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("could not get the receipt of %s: %w", clipArg(id), err)}
	}
	out, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s\n", out)
	if fetched {
		fmt.Fprintln(e.stderr, "note: keys fetched from the server itself; give --key and --receipt-key from the census office to check independently")
	}
	if err := checkReceipt(rc, keys["receipt"], id); err != nil {
		return &exitError{code: 1, err: err}
	}
	if rc.AuditIndex != p.Index || rc.LeafHash != base64.StdEncoding.EncodeToString(p.LeafHash[:]) {
		return &exitError{code: 1, err: fmt.Errorf("the proof is NOT about your deposit: it proves audit event %d, your signed receipt names event %d", p.Index, rc.AuditIndex)}
	}
	if err := client.VerifyReceiptInclusion(p, keys["audit"]); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("the proof does NOT verify: %w", err)}
	}
	cp, err := audit.OpenCheckpoint(p.Checkpoint, keys["audit"])
	if err != nil { // verified just above
		return &exitError{code: 1, err: err}
	}
	fmt.Fprintf(e.stderr, "deposit %s is in the audit log at index %d (checkpoint size %d)\n", id, p.Index, cp.Size)
	return nil
}

// checkReceipt checks a receipt's signed note with the receipt key, and
// that it is the receipt of id.
func checkReceipt(rc *broker.Receipt, key, id string) error {
	v, err := note.NewVerifier(key)
	if err != nil {
		return fmt.Errorf("the receipt key is not a verifier key: %v", err)
	}
	n, err := note.Open([]byte(rc.Note), note.VerifierList(v))
	if err != nil {
		return fmt.Errorf("your receipt's signature does NOT verify: %v", err)
	}
	if n.Text != broker.ReceiptText(rc) || string(rc.SubmissionID) != id {
		return errors.New("your receipt's signed text does NOT match its fields")
	}
	return nil
}
