package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/client"
	"github.com/censusvault/censusvault/broker/httpapi"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
	"github.com/spf13/pflag"
)

// Policy administration (issue 13): `policy` and the administrative
// `user` subcommands. Each works on the vault host — the store flags; the
// operator holds the keys, so its changes hold at once — and against a
// remote vault as the token's user (--server URL, the token from
// --token-file or CENSUSVAULT_TOKEN, never from a flag's value): there
// the vault decides what that user may do, and a change that could widen
// access to data is a proposal an approver confirms with `policy
// confirm`. New users' tokens are written only age-encrypted, to a file
// (--out): never to the terminal, except the one token of a local `user
// add` without --recipient or --out, as before. Over the API they are
// encrypted to the field office's recipient, which only the host
// operator registers (`user token-recipient`), or for a reissue to the
// user's own; the vault refuses any other a request names.

// adminRemote is how an administrative command reaches a remote vault.
type adminRemote struct {
	rem       remote
	tokenFile *string
}

func addAdminRemote(fs *pflag.FlagSet) adminRemote {
	a := adminRemote{rem: addRemoteFlags(fs)}
	fs.Lookup("server").Usage = "administer the vault at this base URL over HTTP, as your token's user (default: the vault on this host, through --data/--store)"
	a.tokenFile = fs.String("token-file", "", "file holding your bearer token (default: the CENSUSVAULT_TOKEN variable)")
	return a
}

func (a adminRemote) remote() bool { return *a.rem.server != "" }

func (a adminRemote) client(e *env) (*client.Client, error) {
	return ledgerClient(e, a.rem, *a.tokenFile)
}

// confirmHint says how an approver confirms proposal seq.
func (a adminRemote) confirmHint(seq int64) string {
	server := "URL"
	if a.remote() {
		server = *a.rem.server
	}
	return fmt.Sprintf("an approver (not you, and not the user it is for) confirms it with `censusvault policy confirm %d --server %s --token-file APPROVER.token`", seq, server)
}

// grantFlags are --role, --area and --project.
type grantFlags struct {
	role, area, project *string
}

func addGrantFlags(fs *pflag.FlagSet) grantFlags {
	return grantFlags{
		role:    fs.String("role", "", "one of: "+strings.Join(roleNames(), ", ")),
		area:    fs.String("area", "", "area code the grant covers, with its whole subtree"),
		project: fs.String("project", "", "research project of a researcher grant (required for researchers; see `censusvault project list`)"),
	}
}

func (g grantFlags) check() error {
	if *g.role == "" || *g.area == "" {
		return &exitError{code: 2, err: errors.New("--role and --area are required")}
	}
	return nil
}

// grantText is a grant in words: "team_leader at 18070 (for project p)".
func grantText(g wire.Grant) string {
	s := printable(g.Role) + " at " + printable(g.Area)
	if g.Project != "" {
		s += " for project " + printable(g.Project)
	}
	return s
}

func cmdPolicy(ctx context.Context, e *env, args []string) error {
	const where = " [--data DIR] [--store DSN] [--keys PROVIDER] | --server URL [--token-file FILE]"
	sub, syn, args, done, err := subcommand(e, args, "usage: censusvault policy show|export|grant|deny|revoke|load|proposals|confirm|check [flags]", map[string]string{
		"show": "policy show" + where + "\n\n" +
			"Shows the policy in force: its hash (the one every audit event carries), the role policy's\n" +
			"rules by role, every grant, and the proposals waiting for an approver. On the vault host it\n" +
			"reads the store; with --server it asks as your token's user (an admin or an auditor).",
		"export": "policy export" + where + "\n\n" +
			"Prints the role policy's rules in force, exactly, on stdout: edit them and propose them with\n" +
			"`censusvault policy load FILE`.",
		"grant": "policy grant USER --role ROLE --area CODE [--project ID]" + where + "\n\n" +
			"Gives USER a role over an area's subtree. On the host it holds at once. Over the API an admin's\n" +
			"grant of a role that sees data (team_leader, supervisor, researcher, processor) or of approver\n" +
			"is a proposal: it holds once an approver confirms it (`censusvault policy confirm SEQ`).",
		"deny": "policy deny USER --role ROLE --area CODE [--project ID]" + where + "\n\n" +
			"Takes a role's permissions away from USER in an area's subtree (a deny beats any allow). It\n" +
			"holds at once; removing it (`policy revoke … --deny`) over the API waits for an approver.",
		"revoke": "policy revoke USER --role ROLE --area CODE [--deny] [--project ID]" + where + "\n\n" +
			"Removes one grant (with --deny, one deny) of USER. The last admin's grant cannot be removed.",
		"load": "policy load FILE" + where + "\n\n" +
			"Proposes FILE as the role policy's rules (`censusvault policy export` prints the ones in force).\n" +
			"Refused if it does not load, changes nothing, or lets admin, auditor or approver touch data. On\n" +
			"the host it holds at once; over the API it holds once an approver confirms it.",
		"proposals": "policy proposals" + where + "\n\n" +
			"Lists the changes waiting for an approver, then those confirmed (an admin or an approver).",
		"confirm": "policy confirm SEQ --server URL [--token-file FILE]\n\n" +
			"Confirms proposal SEQ as an approver over its area: never its proposer nor the user it is for\n" +
			"(four eyes). The change holds at once on every instance. Changes made on the vault host need no\n" +
			"confirmation.",
		"check": "policy check USER ACTION AREA [--project ID] | policy check --event N" + where + "\n\n" +
			"Says whether the policy in force allows USER the ACTION at AREA, and which grant and rule\n" +
			"decided; with --event N, re-evaluates the decision of audit event N under the policy as it\n" +
			"stood then (rebuilt from the grant log, its hash checked against the event's). Actions: " +
			strings.Join(actionNames(), ", ") + ".",
	})
	if done {
		return err
	}
	fs := newFlags("policy "+sub, syn, e)
	var sf storeFlags
	sf.add(fs)
	ar := addAdminRemote(fs)
	var gf grantFlags
	var deny *bool
	var event *int64
	var project *string
	switch sub {
	case "grant", "deny", "revoke":
		gf = addGrantFlags(fs)
		if sub == "revoke" {
			deny = fs.Bool("deny", false, "remove a deny instead of an allow")
		}
	case "check":
		project = fs.String("project", "", "the research project the request is about (a researcher's)")
		event = fs.Int64("event", -1, "explain the decision of this audit event instead, under the policy of its time")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	nargs := map[string]int{"show": 0, "export": 0, "grant": 1, "deny": 1, "revoke": 1, "load": 1, "proposals": 0, "confirm": 1, "check": 3}[sub]
	if sub == "check" && *event >= 0 {
		nargs = 0
	}
	if fs.NArg() != nargs {
		fs.Usage()
		what := map[string]string{"grant": "a USER", "deny": "a USER", "revoke": "a USER", "load": "the FILE of rules", "confirm": "the SEQ of a proposal",
			"check": "USER ACTION AREA (or --event N alone)"}[sub]
		if what == "" {
			return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q", clipArg(fs.Arg(0)))}
		}
		return &exitError{code: 2, err: fmt.Errorf("expected %s", what)}
	}
	if gf.role != nil {
		if err := gf.check(); err != nil {
			return err
		}
	}
	if sub == "confirm" {
		seq, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if err != nil || seq < 1 {
			return &exitError{code: 2, err: fmt.Errorf("SEQ %q is not a proposal's number (a whole number ≥ 1; `censusvault policy proposals` lists them)", clipArg(fs.Arg(0)))}
		}
		if !ar.remote() {
			return &exitError{code: 2, err: errors.New("an approver confirms over the API with their own token: --server URL is required (changes made on the vault host need no confirmation)")}
		}
		c, err := ar.client(e)
		if err != nil {
			return err
		}
		p, err := c.ConfirmProposal(ctx, seq)
		if err != nil {
			return hint(err, "only an approver whose grant covers the proposal's area confirms it, never its proposer nor the user it is for")
		}
		fmt.Fprintf(e.stderr, "confirmed proposal %d (proposed by %s): %s holds now\n", p.Seq, printable(p.ProposedBy), proposalText(*p))
		return nil
	}
	var rules string
	if sub == "load" {
		b, err := readBounded(fs.Arg(0), policy.MaxPolicyBytes)
		if err != nil {
			return err
		}
		rules = string(b)
	}

	var c *client.Client
	var b *broker.Broker
	op := broker.HostOperator(cliActor())
	if ar.remote() {
		if c, err = ar.client(e); err != nil {
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

	err = func() error {
		switch sub {
		case "show", "export":
			var pol wire.Policy
			var gs wire.Grants
			if c != nil {
				p, err := c.Policy(ctx)
				if err != nil {
					return err
				}
				pol = *p
				if sub == "show" {
					g, err := c.Grants(ctx)
					if err != nil {
						return err
					}
					gs = *g
				}
			} else {
				info, err := b.Policy(ctx, op)
				if err != nil {
					return err
				}
				pol, gs = info.Wire()
			}
			if sub == "export" {
				_, err := io.WriteString(e.stdout, pol.Rules)
				return err
			}
			return printPolicy(e, pol, gs)

		case "grant", "deny", "revoke":
			g := wire.GrantRequest{User: fs.Arg(0), Role: *gf.role, Area: *gf.area, Deny: sub == "deny" || (deny != nil && *deny), Project: *gf.project}
			var ch *wire.GrantChange
			if c != nil {
				if sub == "revoke" {
					ch, err = c.Ungrant(ctx, g)
				} else {
					ch, err = c.Grant(ctx, g)
				}
			} else {
				var bc *broker.GrantChange
				bc, err = b.ChangeGrant(ctx, op, broker.UserID(g.User), policy.Grant{Role: policy.Role(g.Role), Area: g.Area, Deny: g.Deny, Project: g.Project}, sub == "revoke")
				if bc != nil {
					ch = &wire.GrantChange{Active: bc.Active, Proposal: bc.Proposal}
				}
			}
			if err != nil {
				return err
			}
			reportChange(e, ar, changeText(g, sub == "revoke"), ch)
			return nil

		case "load":
			var ch *wire.GrantChange
			if c != nil {
				ch, err = c.ProposePolicy(ctx, rules)
			} else {
				var bc *broker.GrantChange
				if bc, err = b.ProposePolicy(ctx, op, rules); bc != nil {
					ch = &wire.GrantChange{Active: bc.Active, Proposal: bc.Proposal}
				}
			}
			if err != nil {
				return err
			}
			if ch.Active {
				info, err := b.Policy(ctx, op)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "the role policy of %s is in force now (engine %s, policy hash %s)\n", fs.Arg(0), info.EngineHash, info.PolicyHash)
				return nil
			}
			reportChange(e, ar, "the role policy of "+fs.Arg(0), ch)
			return nil

		case "proposals":
			var ps []wire.Proposal
			if c != nil {
				if ps, err = c.Proposals(ctx); err != nil {
					return err
				}
			} else {
				bps, err := b.Proposals(ctx, op)
				if err != nil {
					return err
				}
				ps = broker.WireProposals(bps)
			}
			if len(ps) == 0 {
				fmt.Fprintln(e.stderr, "no proposals: changes made over the API that could widen access to data wait here for an approver")
				return nil
			}
			return printProposals(e.stdout, ps)

		default: // check
			var x wire.Explanation
			if c != nil {
				var wx *wire.Explanation
				if *event >= 0 {
					wx, err = c.ExplainEvent(ctx, *event)
				} else {
					wx, err = c.Explain(ctx, fs.Arg(0), fs.Arg(1), fs.Arg(2), *project)
				}
				if err != nil {
					return err
				}
				x = *wx
			} else {
				var bx *broker.Explanation
				if *event >= 0 {
					bx, err = b.ExplainEvent(ctx, op, *event)
				} else {
					a, perr := policy.ParseAction(fs.Arg(1))
					if perr != nil {
						return &exitError{code: 2, err: perr}
					}
					bx, err = b.Explain(ctx, op, broker.UserID(fs.Arg(0)), a, broker.AreaCode(fs.Arg(2)), *project)
				}
				if err != nil {
					return err
				}
				x = bx.Wire()
			}
			printExplanation(e.stdout, x)
			return nil
		}
	}()
	return hint(err, map[string]string{"show": readerNeeded, "export": readerNeeded, "check": readerNeeded,
		"proposals": "an admin's or an approver's token is needed", "grant": adminNeeded, "deny": adminNeeded, "revoke": adminNeeded, "load": adminNeeded}[sub])
}

func actionNames() []string {
	var out []string
	for _, a := range policy.Actions() {
		out = append(out, string(a))
	}
	return out
}

// readBounded reads a file of at most limit bytes.
func readBounded(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, &exitError{code: 2, err: fmt.Errorf("%s is over %d bytes", name, limit)}
	}
	return b, nil
}

// changeText is a change of grants in words: "granted tl-1 team_leader
// at 18070", "denied …", "removed from tl-1 the deny of …".
func changeText(g wire.GrantRequest, remove bool) string {
	what := grantText(wire.Grant{Role: g.Role, Area: g.Area, Project: g.Project})
	switch {
	case remove:
		return fmt.Sprintf("removed from %s the %s of %s", printable(g.User), map[bool]string{true: "deny", false: "grant"}[g.Deny], what)
	case g.Deny:
		return fmt.Sprintf("denied %s %s (a deny beats any allow)", printable(g.User), what)
	}
	return fmt.Sprintf("granted %s %s", printable(g.User), what)
}

// reportChange says whether a change holds, or which proposal waits for
// an approver (its number alone on stdout, for scripts).
func reportChange(e *env, ar adminRemote, what string, ch *wire.GrantChange) {
	if ch.Active {
		fmt.Fprintf(e.stderr, "%s: in force now\n", what)
		return
	}
	fmt.Fprintf(e.stdout, "%d\n", ch.Proposal)
	fmt.Fprintf(e.stderr, "proposed (proposal %d): %s — nothing changes until an approver confirms it: %s\n", ch.Proposal, what, ar.confirmHint(ch.Proposal))
}

// hint adds what to do next to a refusal by the vault: the token (401)
// or who may (403).
func hint(err error, who string) error {
	var se *client.StatusError
	if who == "" || !errors.As(err, &se) {
		return err
	}
	switch se.Status {
	case 401:
		return fmt.Errorf("%w (the token was refused: check --token-file; an expired or revoked token no longer works, and an admin gives a new one with `censusvault user reissue`)", err)
	case 403:
		switch se.Code {
		case "four_eyes", "host_only":
			return err
		case "recipient_not_registered":
			return fmt.Errorf("%w (leave out --recipient: the vault encrypts the tokens to the field office's registered recipient, which `censusvault user token-recipient --data DIR` shows on the vault host)", err)
		}
		return fmt.Errorf("%w (%s)", err, who)
	case 409:
		if se.Code == "no_token_recipient" {
			return fmt.Errorf("%w (no token was made and no file written: run this again once it is registered)", err)
		}
	}
	return err
}

// proposalText is what a proposal changes, in words.
func proposalText(p wire.Proposal) string {
	switch {
	case p.Kind == "policy" && len(p.Widens) > 0:
		return "the role policy " + shortHash(p.PolicyHash) + ", which gives data to every holder of " + printable(strings.Join(p.Widens, ", "))
	case p.Kind == "policy":
		return "the role policy " + shortHash(p.PolicyHash)
	case p.Grant == nil:
		return printable(p.Kind)
	case p.Kind == "ungrant":
		return fmt.Sprintf("the removal of %s%s from %s", map[bool]string{true: "the deny of ", false: ""}[p.Grant.Deny], grantText(*p.Grant), printable(p.User))
	default:
		return fmt.Sprintf("%s%s to %s", map[bool]string{true: "a deny of ", false: ""}[p.Grant.Deny], grantText(*p.Grant), printable(p.User))
	}
}

func shortHash(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return printable(h)
}

// printProposals writes the proposals as a table: pending first.
func printProposals(w io.Writer, ps []wire.Proposal) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tSTATUS\tCHANGE\tPROPOSED_BY\tPROPOSED\tCONFIRMED_BY")
	for _, pending := range []bool{true, false} {
		for _, p := range ps {
			if (p.Status == wire.ProposalPending) != pending {
				continue
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", p.Seq, cell(p.Status), printable(proposalText(p)), cell(p.ProposedBy),
				p.ProposedAt.UTC().Format(time.RFC3339), cell(p.ConfirmedBy))
		}
	}
	return tw.Flush()
}

// printPolicy writes the policy in force: hashes, rules by role, grants,
// and what waits for an approver.
func printPolicy(e *env, pol wire.Policy, gs wire.Grants) error {
	w := e.stdout
	fmt.Fprintf(w, "policy hash  %s  (every audit event carries it)\n", cell(pol.PolicyHash))
	fmt.Fprintf(w, "role policy  %s  (`censusvault policy export` prints its rules)\n", cell(pol.EngineHash))
	fmt.Fprintf(w, "grants       %d, held by %d users; proposals waiting for an approver: %d\n\n", pol.Grants, pol.Users, pol.Pending)
	fmt.Fprintln(w, "rules, by role:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range rulesByRole(pol.Rules) {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", cell(r.role), r.kind, printable(strings.Join(r.what, ", ")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if gs.Grants == nil && gs.Pending == nil {
		return nil
	}
	fmt.Fprintln(w, "\ngrants:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tKIND\tROLE\tAREA\tPROJECT")
	for _, g := range gs.Grants {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cell(g.User), map[bool]string{true: "deny", false: "allow"}[g.Deny], cell(g.Role), cell(g.Area), cell(g.Project))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(gs.Pending) > 0 {
		fmt.Fprintln(w, "\nwaiting for an approver (`censusvault policy confirm SEQ`):")
		return printProposals(w, gs.Pending)
	}
	return nil
}

// ruleLine is one line of `policy show`'s rules: a role's allows, its
// denies, or what it inherits.
type ruleLine struct {
	role, kind string
	what       []string
}

// rulesByRole groups the role policy's rules ("p, role, action, allow",
// "g, role, inherited") by role, in the order of policy.Roles; a line
// that is neither is shown as it is.
func rulesByRole(text string) []ruleLine {
	type acc struct{ allow, deny, inherits []string }
	by := map[string]*acc{}
	get := func(r string) *acc {
		if by[r] == nil {
			by[r] = &acc{}
		}
		return by[r]
	}
	var other []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		switch {
		case len(f) == 4 && f[0] == "p" && f[3] == "allow":
			get(f[1]).allow = append(get(f[1]).allow, f[2])
		case len(f) == 4 && f[0] == "p" && f[3] == "deny":
			get(f[1]).deny = append(get(f[1]).deny, f[2])
		case len(f) == 3 && f[0] == "g":
			get(f[1]).inherits = append(get(f[1]).inherits, f[2])
		default:
			other = append(other, line)
		}
	}
	var roles []string
	for _, r := range policy.Roles() {
		if by[string(r)] != nil {
			roles = append(roles, string(r))
		}
	}
	for r := range by {
		if !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
	}
	var out []ruleLine
	for _, r := range roles {
		a := by[r]
		for _, l := range []ruleLine{{r, "inherits", a.inherits}, {r, "allow", a.allow}, {r, "deny", a.deny}} {
			if len(l.what) > 0 {
				out = append(out, l)
			}
		}
	}
	if len(other) > 0 {
		out = append(out, ruleLine{"(other)", "", other})
	}
	return out
}

// printExplanation writes why the policy decides, or decided.
func printExplanation(w io.Writer, x wire.Explanation) {
	decision := map[bool]string{true: "allow", false: "deny"}[x.Allow]
	forProj := ""
	if x.Project != "" {
		forProj = " for project " + printable(x.Project)
	}
	if x.Event != nil {
		fmt.Fprintf(w, "event %d: %s %s at %s%s, recorded %s\n", x.Event.Index, printable(x.User), printable(x.Action), printable(x.Area), forProj, cell(x.Event.Recorded))
		if x.Rule != "" {
			fmt.Fprintf(w, "under the policy of its time: %s (%s the recorded decision)\n", decision, map[bool]string{true: "agrees with", false: "DOES NOT AGREE with"}[x.Event.Agrees])
		}
		switch {
		case x.Event.HashMatches:
			fmt.Fprintf(w, "policy hash: %s (the event's, rebuilt from the grant log)\n", cell(x.PolicyHash))
		case x.Rule == "":
			fmt.Fprintf(w, "policy hash: %s (not the one rebuilt from the grant log: see the note)\n", cell(x.PolicyHash))
		default:
			fmt.Fprintf(w, "policy hash: %s, which DIFFERS from the event's: the grant log or the event is not what was written — run `censusvault audit verify`\n", cell(x.PolicyHash))
		}
	} else {
		fmt.Fprintf(w, "%s: %s may%s %s at %s%s\n", decision, printable(x.User), map[bool]string{true: "", false: " not"}[x.Allow], printable(x.Action), printable(x.Area), forProj)
		fmt.Fprintf(w, "policy hash: %s (in force)\n", cell(x.PolicyHash))
	}
	if x.Rule == "" {
		fmt.Fprintf(w, "note: %s\n", printable(x.Note))
		return
	}
	fmt.Fprintf(w, "rule: %s\n", printable(x.Rule))
	if len(x.Roles) > 0 {
		fmt.Fprintf(w, "roles on the path: %s\n", printable(strings.Join(x.Roles, ", ")))
	}
	var gs []string
	for _, g := range x.Grants {
		gs = append(gs, map[bool]string{true: "deny ", false: ""}[g.Deny]+grantText(g))
	}
	if len(gs) == 0 {
		gs = []string{"none"}
	}
	fmt.Fprintf(w, "grants: %s\n", strings.Join(gs, "; "))
	if x.Note != "" {
		fmt.Fprintf(w, "note: %s\n", printable(x.Note))
	}
}

// readerNeeded says who may read the policy and ask why it decides.
const readerNeeded = "an admin's or an auditor's token is needed (an auditor's grant must cover the area asked about)"

// adminNeeded says who may administer.
const adminNeeded = "an admin's token (admin granted at the root) is needed"

// userAdmin is the administrative part of `user`: import, list, reissue,
// lifetimes, token-recipient, and add, show, grant and revoke against a
// remote vault (or add with --recipient or --out on the host).
type userAdmin struct {
	ar                        adminRemote
	recipient, recipientFile  *string
	out                       *string
	after                     *string
	limit                     *int
	set                       *[]string
	hasRemote, takesRecipient bool
	// token-recipient: --clear, and --server and --token-file (hidden),
	// only to say that it is done on the vault host.
	clear             *bool
	server, tokenFile *string
}

// addUserAdminFlags registers the flags of sub's administrative form.
func addUserAdminFlags(fs *pflag.FlagSet, sub string) *userAdmin {
	u := &userAdmin{}
	switch sub {
	case "add", "import", "list", "reissue", "revoke", "show", "lifetimes", "grant":
		u.ar, u.hasRemote = addAdminRemote(fs), true
	}
	switch sub {
	case "add", "import", "reissue":
		u.takesRecipient = true
		u.recipient = fs.String("recipient", "", "the age recipient (age1… or age1pq1…) the new tokens are encrypted to (default: the field office's, which the host operator registers with censusvault user token-recipient); over the API only that one, or for a reissue the user's own, is accepted")
		u.recipientFile = fs.String("recipient-file", "", "a file holding that recipient (as `age-keygen -y` prints it)")
		u.out = fs.String("out", "", "write the encrypted tokens to this new file (never overwritten)")
	case "token-recipient":
		u.recipientFile = fs.String("recipient-file", "", "a file holding the field office's recipient, as age-keygen -y office.key prints it")
		u.clear = fs.Bool("clear", false, "remove it: tokens can then no longer be made over the API")
		u.server = fs.String("server", "", "")
		u.tokenFile = fs.String("token-file", "", "")
		_ = fs.MarkHidden("server")
		_ = fs.MarkHidden("token-file")
	case "list":
		u.after = fs.String("after", "", "start after this user name")
		u.limit = fs.Int("limit", 0, "list at most this many users (default: all)")
	case "lifetimes":
		u.set = fs.StringSlice("set", nil, "ROLE=LIFETIME: new tokens of ROLE live this long, e.g. enumerator=40d (repeatable; 1h to 5 years)")
	}
	return u
}

// handles reports whether sub, as parsed, is the administrative form.
func (u *userAdmin) handles(sub string) bool {
	switch {
	case sub == "import", sub == "list", sub == "reissue", sub == "lifetimes", sub == "token-recipient":
		return true
	case u.hasRemote && u.ar.remote():
		return true
	}
	return sub == "add" && (*u.recipient != "" || *u.recipientFile != "" || *u.out != "")
}

// userArgs are the grant flags of `user add` and `user grant`.
type userArgs struct {
	role, area, project, expires *string
	deny                         *bool
}

func (u *userAdmin) run(ctx context.Context, e *env, sub string, fs *pflag.FlagSet, sf *storeFlags, ua userArgs) error {
	return hint(u.do(ctx, e, sub, fs, sf, ua), adminNeeded)
}

func (u *userAdmin) do(ctx context.Context, e *env, sub string, fs *pflag.FlagSet, sf *storeFlags, ua userArgs) error {
	if sub == "token-recipient" {
		return u.tokenRecipient(ctx, e, fs, sf)
	}
	switch {
	case (sub == "list" || sub == "lifetimes") && fs.NArg() != 0:
		fs.Usage()
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q", clipArg(fs.Arg(0)))}
	case sub == "import" && fs.NArg() != 1:
		fs.Usage()
		return &exitError{code: 2, err: errors.New("expected one user FILE.csv (header user,role,area[,project][,expires])")}
	case sub != "list" && sub != "lifetimes" && sub != "import" && fs.NArg() != 1:
		fs.Usage()
		return &exitError{code: 2, err: errors.New("expected exactly one user NAME")}
	}
	if ua.role != nil && (*ua.role == "" || *ua.area == "") {
		return &exitError{code: 2, err: errors.New("--role and --area are required")}
	}
	recipient := ""
	if u.takesRecipient {
		var err error
		if recipient, err = u.readRecipient(); err != nil {
			return err
		}
		if *u.out == "" {
			return &exitError{code: 2, err: errors.New("--out FILE is required: the new tokens are written there, age-encrypted (to the field office's registered recipient unless --recipient says otherwise), and nowhere else")}
		}
	}
	var c *client.Client
	var b *broker.Broker
	op := broker.HostOperator(cliActor())
	if u.ar.remote() {
		var err error
		if c, err = u.ar.client(e); err != nil {
			return err
		}
	} else {
		var st storage.Store
		var err error
		if b, st, err = sf.openBroker(ctx, nil); err != nil {
			return err
		}
		defer st.Close()
		defer b.Close(ctx)
	}
	name := fs.Arg(0)

	switch sub {
	case "add", "import", "reissue":
		if b != nil && recipient == "" {
			// On the host the operator names any recipient; naming
			// none, the field office's registered one.
			var err error
			if recipient, err = b.TokenRecipient(ctx); err != nil {
				return err
			}
			if recipient == "" {
				return &exitError{code: 2, err: errors.New("--recipient age1… (or --recipient-file FILE) is required: no field-office recipient is registered " +
					"(`censusvault user token-recipient age1… --data DIR` registers it; tokens made over the API go to it)")}
			}
		}
		var data []byte
		if sub == "import" {
			var err error
			if data, err = readBounded(name, httpapi.MaxImportBody); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "read %s: %d lines, %d bytes\n", name, bytes.Count(data, []byte("\n")), len(data))
		}
		// The file first: the tokens exist only in the answer, so there
		// must be somewhere to keep them before they are made.
		f, err := os.OpenFile(*u.out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("--out: %w (it is never overwritten: choose a new file)", err)}
		}
		t0 := time.Now()
		toks, err := u.makeTokens(ctx, e, sub, c, b, op, name, data, recipient, ua)
		if err != nil {
			f.Close()
			os.Remove(*u.out)
			return err
		}
		if _, err := f.Write(toks.Sealed); err != nil {
			f.Close()
			return fmt.Errorf("the users' tokens were made but could not be written to %s (%v): reissue them with `censusvault user reissue`", *u.out, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("the users' tokens were made but %s could not be closed (%v): reissue them with `censusvault user reissue`", *u.out, err)
		}
		u.report(e, sub, name, toks, ua, time.Since(t0), recipient)
		return nil

	case "list":
		return u.list(ctx, e, c, b, op)

	case "show":
		var wu wire.User
		if c != nil {
			x, err := c.User(ctx, name)
			if err != nil {
				return err
			}
			wu = *x
		} else {
			x, err := b.UserAs(ctx, op, broker.UserID(name))
			if err != nil {
				return err
			}
			wu = x.Wire()
		}
		printUser(e.stdout, wu)
		return nil

	case "revoke":
		if err := c.RevokeUser(ctx, name); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "revoked %s: their token no longer works, on every instance\n", name)
		return nil

	case "grant":
		g := wire.GrantRequest{User: name, Role: *ua.role, Area: *ua.area, Deny: *ua.deny, Project: *ua.project}
		ch, err := c.Grant(ctx, g)
		if err != nil {
			return err
		}
		reportChange(e, u.ar, changeText(g, false), ch)
		return nil

	default: // lifetimes
		set := map[string]string{}
		for _, kv := range *u.set {
			r, l, ok := strings.Cut(kv, "=")
			if !ok || r == "" || l == "" {
				return &exitError{code: 2, err: fmt.Errorf("--set %q: write ROLE=LIFETIME, e.g. enumerator=40d", clipArg(kv))}
			}
			set[r] = l
		}
		var out map[string]string
		if c != nil {
			var err error
			if len(set) > 0 {
				out, err = c.SetTokenLifetimes(ctx, set)
			} else {
				out, err = c.TokenLifetimes(ctx)
			}
			if err != nil {
				return err
			}
		} else {
			if len(set) > 0 {
				m := map[policy.Role]time.Duration{}
				for r, l := range set {
					d, err := broker.ParseLifetime(l)
					if err != nil {
						return &exitError{code: 2, err: fmt.Errorf("--set %s: %v", clipArg(r), err)}
					}
					m[policy.Role(r)] = d
				}
				if err := b.SetTokenLifetimes(ctx, op, m); err != nil {
					return err
				}
			}
			l, err := b.TokenLifetimesAs(ctx, op)
			if err != nil {
				return err
			}
			out = broker.WireLifetimes(l).Lifetimes
		}
		if len(set) > 0 {
			fmt.Fprintf(e.stderr, "changed: tokens made from now on live as below; tokens already given keep their expiry\n")
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROLE\tLIFETIME")
		for _, r := range policy.Roles() {
			fmt.Fprintf(tw, "%s\t%s\n", r, cell(out[string(r)]))
		}
		return tw.Flush()
	}
}

// readRecipient is --recipient, or the one recipient of --recipient-file.
func (u *userAdmin) readRecipient() (string, error) {
	switch {
	case *u.recipient != "" && *u.recipientFile != "":
		return "", &exitError{code: 2, err: errors.New("give --recipient or --recipient-file, not both")}
	case *u.recipient != "":
		return *u.recipient, nil
	case *u.recipientFile == "":
		return "", nil // the field office's registered recipient
	}
	return readRecipientFile(*u.recipientFile)
}

// readRecipientFile is the one age recipient of file (as `age-keygen -y`
// writes it; blank lines and # comments aside).
func readRecipientFile(file string) (string, error) {
	b, err := readBounded(file, 64<<10)
	if err != nil {
		return "", err
	}
	var found []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			found = append(found, line)
		}
	}
	if len(found) != 1 {
		return "", &exitError{code: 2, err: fmt.Errorf("--recipient-file %s: want exactly one age recipient in it, found %d lines", file, len(found))}
	}
	if strings.HasPrefix(strings.ToUpper(found[0]), "AGE-SECRET-KEY-") || strings.HasPrefix(strings.ToUpper(found[0]), "AGE-PLUGIN-") {
		return "", &exitError{code: 2, err: fmt.Errorf("--recipient-file %s holds a secret key, not a recipient: give the recipient `age-keygen -y %s` prints", file, file)}
	}
	return found[0], nil
}

// makeTokens creates the users (or reissues a token) and returns the
// encrypted tokens.
func (u *userAdmin) makeTokens(ctx context.Context, e *env, sub string, c *client.Client, b *broker.Broker, op broker.Operator,
	name string, data []byte, recipient string, ua userArgs) (*client.NewTokens, error) {
	switch sub {
	case "reissue":
		if c != nil {
			return c.ReissueToken(ctx, name, recipient)
		}
		sealed, err := b.Reissue(ctx, op, broker.UserID(name), recipient)
		if err != nil {
			return nil, err
		}
		return &client.NewTokens{Sealed: sealed, Users: 1, Active: 1}, nil
	case "import":
		if c != nil {
			pr := &progressReader{r: bytes.NewReader(data), total: int64(len(data)), w: e.stderr, tty: isTerminal(e.stderr), what: "uploading " + name}
			return c.ImportUsers(ctx, pr, int64(len(data)), recipient)
		}
		fmt.Fprintf(e.stderr, "creating the users in one transaction (all or none)…\n")
		res, err := b.ImportCSV(ctx, op, data, recipient)
		if err != nil {
			return nil, err
		}
		return &client.NewTokens{Sealed: res.Sealed, Users: res.Users, Active: res.Active, Pending: res.Pending}, nil
	default: // add
		if c != nil {
			return c.AddUser(ctx, wire.NewUser{Name: name, Role: *ua.role, Area: *ua.area, Project: *ua.project, Expires: *ua.expires, Recipient: recipient})
		}
		nu := broker.NewUser{Name: broker.UserID(name), Role: policy.Role(*ua.role), Area: broker.AreaCode(*ua.area), Project: *ua.project}
		if *ua.expires != "" {
			d, err := parseDuration(*ua.expires)
			if err != nil {
				return nil, &exitError{code: 2, err: err}
			}
			nu.Expires = time.Now().Add(d)
		}
		res, err := b.ImportUsers(ctx, op, []broker.NewUser{nu}, recipient)
		if err != nil {
			return nil, err
		}
		return &client.NewTokens{Sealed: res.Sealed, Users: res.Users, Active: res.Active, Pending: res.Pending}, nil
	}
}

// report says what a creation of tokens did, and what to do next.
func (u *userAdmin) report(e *env, sub, name string, toks *client.NewTokens, ua userArgs, took time.Duration, recipient string) {
	switch sub {
	case "reissue":
		fmt.Fprintf(e.stderr, "reissued %s's token: the old one no longer works\n", name)
	case "import":
		fmt.Fprintf(e.stderr, "created %d users in %s: %d can work now", toks.Users, took.Round(time.Millisecond), toks.Active)
		if n := toks.Users - toks.Active; n > 0 {
			fmt.Fprintf(e.stderr, "; the grants of %d wait for an approver (proposals %s): %s", n, seqList(toks.Pending), u.ar.confirmHint(firstSeq(toks.Pending)))
		}
		fmt.Fprintln(e.stderr)
	default:
		g := grantText(wire.Grant{Role: *ua.role, Area: *ua.area, Project: *ua.project})
		if toks.Active == 1 {
			fmt.Fprintf(e.stderr, "added %s as %s: in force now\n", name, g)
		} else {
			fmt.Fprintf(e.stdout, "%s\n", seqList(toks.Pending))
			fmt.Fprintf(e.stderr, "added %s; the grant %s waits for an approver (proposal %s): %s\n", name, g, seqList(toks.Pending), u.ar.confirmHint(firstSeq(toks.Pending)))
		}
	}
	to := broker.RecipientStart(recipient)
	if recipient == "" {
		// Over the API, naming none: the vault says which it used.
		to = "the field office's registered recipient"
		if toks.Recipient != "" {
			to = "the field office's recipient " + toks.Recipient + "…"
		}
	}
	fmt.Fprintf(e.stderr, "%s in %s, encrypted to %s, and nowhere else: decrypt with the matching identity (`age -d -i KEY %s`) and %s\n",
		map[bool]string{true: "the tokens are", false: "the token is"}[toks.Users > 1], *u.out, to, *u.out,
		map[bool]string{true: "give each user their own token", false: "give it to the user"}[toks.Users > 1])
}

// tokenRecipient is `user token-recipient`: shows, registers or removes
// the field office's recipient, on the vault host only.
func (u *userAdmin) tokenRecipient(ctx context.Context, e *env, fs *pflag.FlagSet, sf *storeFlags) error {
	if *u.server != "" || *u.tokenFile != "" {
		return &exitError{code: 2, err: errors.New("the field office's token recipient is registered on the vault host only, by its operator: " +
			"run `censusvault user token-recipient age1… --data DIR` there, without --server (an administrator over the API may not choose where tokens go)")}
	}
	recipient := ""
	switch {
	case fs.NArg() > 1:
		fs.Usage()
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q: give one age recipient", clipArg(fs.Arg(1)))}
	case *u.clear && (fs.NArg() > 0 || *u.recipientFile != ""):
		return &exitError{code: 2, err: errors.New("--clear takes no recipient")}
	case fs.NArg() == 1 && *u.recipientFile != "":
		return &exitError{code: 2, err: errors.New("give the recipient or --recipient-file, not both")}
	case fs.NArg() == 1:
		recipient = fs.Arg(0)
	case *u.recipientFile != "":
		var err error
		if recipient, err = readRecipientFile(*u.recipientFile); err != nil {
			return err
		}
	}
	set := *u.clear || recipient != ""
	b, st, err := sf.openBroker(ctx, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	defer b.Close(ctx)
	if set {
		if err := b.SetTokenRecipient(ctx, broker.HostOperator(cliActor()), recipient); err != nil {
			if broker.KindOf(err) == broker.Invalid {
				return &exitError{code: 2, err: fmt.Errorf("%v: give the field office's age recipient (age1…, as `age-keygen -y office.key` prints it), never its secret key", err)}
			}
			return err
		}
	}
	r, err := b.TokenRecipient(ctx)
	if err != nil {
		return err
	}
	switch {
	case r == "" && set:
		fmt.Fprintln(e.stderr, "removed the field office's token recipient: tokens can no longer be made over the API (`user add|import|reissue --server` answer 409) until the operator registers one here")
	case r == "":
		fmt.Fprintln(e.stderr, "no field-office token recipient is registered: tokens cannot be made over the API; register it with `censusvault user token-recipient age1… --data DIR` (from `age-keygen -y office.key` on the field office's machine)")
	case set:
		fmt.Fprintln(e.stdout, r)
		fmt.Fprintf(e.stderr, "registered: tokens made over the API (`user add|import|reissue --server`) are encrypted to %s alone, or for a reissue to the user's own registered recipient; keep the field office's identity offline\n", broker.RecipientStart(r))
	default:
		fmt.Fprintln(e.stdout, r)
		fmt.Fprintln(e.stderr, "the field office's token recipient: tokens made over the API are encrypted to it")
	}
	return nil
}

func seqList(s []int64) string {
	var out []string
	for _, x := range s {
		out = append(out, strconv.FormatInt(x, 10))
	}
	return strings.Join(out, ",")
}

func firstSeq(s []int64) int64 {
	if len(s) == 0 {
		return 0
	}
	return s[0]
}

// list prints every user (or --limit of them from --after), page by page.
func (u *userAdmin) list(ctx context.Context, e *env, c *client.Client, b *broker.Broker, op broker.Operator) error {
	if *u.limit < 0 {
		return &exitError{code: 2, err: errors.New("--limit must be 0 (all) or more")}
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tGRANTS\tPENDING\tEXPIRES\tREVOKED")
	after, n := *u.after, 0
	for {
		page := 1000
		if *u.limit > 0 {
			page = min(page, *u.limit-n)
		}
		var users []wire.User
		next := ""
		if c != nil {
			l, err := c.ListUsers(ctx, after, page)
			if err != nil {
				return err
			}
			users = l.Users
			if l.Next != nil {
				next = *l.Next
			}
		} else {
			us, nx, err := b.ListUsers(ctx, op, after, page)
			if err != nil {
				return err
			}
			for _, x := range us {
				users = append(users, x.Wire())
			}
			next = nx
		}
		for _, x := range users {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cell(x.Name), grantList(x.Grants), grantList(x.Pending), timeCell(x.Expires), timeCell(x.Revoked))
			n++
		}
		if next == "" || (*u.limit > 0 && n >= *u.limit) {
			break
		}
		after = next
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "%d users\n", n)
	return nil
}

// grantList is a user's grants in one cell: "team_leader@18070,deny:enumerator@18070-02".
func grantList(gs []wire.Grant) string {
	if len(gs) == 0 {
		return "-"
	}
	var out []string
	for _, g := range gs {
		s := g.Role + "@" + g.Area
		if g.Project != "" {
			s += "/" + g.Project
		}
		if g.Deny {
			s = "deny:" + s
		}
		out = append(out, s)
	}
	return cell(strings.Join(out, ","))
}

func timeCell(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// printUser writes one user as `user show` does, with the grants waiting
// for an approver.
func printUser(w io.Writer, u wire.User) {
	fmt.Fprintf(w, "user %s\n", printable(u.Name))
	for _, g := range u.Grants {
		fmt.Fprintf(w, "  %s %s\n", map[bool]string{true: "deny", false: "allow"}[g.Deny], grantText(g))
	}
	for _, g := range u.Pending {
		fmt.Fprintf(w, "  pending %s (waits for an approver)\n", grantText(g))
	}
	if u.Recipient != "" {
		fmt.Fprintf(w, "  recipient %s\n", broker.RecipientStart(printable(u.Recipient)))
	}
	if !u.Expires.IsZero() {
		fmt.Fprintf(w, "  expires %s\n", u.Expires.UTC().Format(time.RFC3339))
	}
	if !u.Revoked.IsZero() {
		fmt.Fprintf(w, "  revoked %s\n", u.Revoked.UTC().Format(time.RFC3339))
	}
}

// progressReader reports an upload's progress on a terminal, and its
// start and end otherwise.
type progressReader struct {
	r           io.Reader
	total, sent int64
	w           io.Writer
	tty         bool
	what        string
	last        time.Time
	started     bool
	sentAll     bool
}

func (p *progressReader) Read(b []byte) (int, error) {
	if !p.started {
		p.started = true
		fmt.Fprintf(p.w, "%s (%d bytes)…\n", p.what, p.total)
	}
	n, err := p.r.Read(b)
	p.sent += int64(n)
	if p.tty && time.Since(p.last) > 200*time.Millisecond {
		p.last = time.Now()
		fmt.Fprintf(p.w, "\r%s: %3.0f%%", p.what, 100*float64(p.sent)/float64(max(p.total, 1)))
	}
	if p.sent >= p.total && !p.sentAll {
		p.sentAll = true
		if p.tty {
			fmt.Fprintf(p.w, "\r%s: 100%%\n", p.what)
		}
		fmt.Fprintln(p.w, "sent; the vault creates the users in one transaction (all or none)…")
	}
	return n, err
}

// Synopses of the administrative `user` subcommands.
const (
	userAddRemote = " | … --out FILE --server URL [--token-file FILE]\n\n" +
		"Adds a user with one grant. On the vault host without --out, the new bearer token is printed\n" +
		"alone on stdout, once. With --out it is written only there, age-encrypted: on the host to\n" +
		"--recipient (or --recipient-file), by default the field office's registered one. Against a\n" +
		"remote vault (--server, an admin's token) that is the only way, always to the field office's\n" +
		"recipient, which the host operator registers (`censusvault user token-recipient`; the vault\n" +
		"refuses any other, 403 recipient_not_registered), and a grant of a role that sees data or of\n" +
		"approver waits for an approver (`censusvault policy confirm SEQ`)."
	userImportSynopsis = "user import FILE.csv --out FILE [--recipient age1…] [--data DIR … | --server URL [--token-file FILE]]\n\n" +
		"Adds every user of FILE.csv — a header user,role,area[,project][,expires] (expires: a lifetime\n" +
		"such as 30d, or an RFC 3339 time; default the role's), then one user a line, at most 50,000 — in\n" +
		"one transaction: all or none. Their tokens are written only to --out, age-encrypted to the field\n" +
		"office's recipient (registered on the vault host with `censusvault user token-recipient`; there\n" +
		"--recipient may name another), as a CSV user,token,role,area,expires once decrypted. Over the\n" +
		"API the grants of roles that see data, and of approver, wait for an approver."
	userListSynopsis = "user list [--after NAME] [--limit N] [--data DIR … | --server URL [--token-file FILE]]\n\n" +
		"Lists the users by name: grants, grants waiting for an approver, expiry, revocation. Never a token."
	userReissueSynopsis = "user reissue NAME --out FILE [--recipient age1…] [--data DIR … | --server URL [--token-file FILE]]\n\n" +
		"Gives NAME a new token, written only to --out, age-encrypted to the field office's registered\n" +
		"recipient (none registered: the user's own, `censusvault user set-recipient`); --recipient may\n" +
		"name the user's own, or on the vault host any. The old token stops working at once. A revoked\n" +
		"user stays revoked: add the person under a new name."
	userTokenRecipientSynopsis = "user token-recipient [age1… | --recipient-file FILE | --clear] [--data DIR] [--store DSN] [--keys PROVIDER]\n\n" +
		"Shows (no argument) or registers the field office's age recipient, on the vault host only, as its\n" +
		"operator. Every token made over the API (`user add|import|reissue --server`) is encrypted to it —\n" +
		"or, for a reissue, to the user's own registered recipient — and to no key a request names: an\n" +
		"administrator cannot make a team leader's or an approver's token for itself. Make it on the\n" +
		"field office's machine (`age-keygen -o office.key; age-keygen -y office.key`) and keep the\n" +
		"identity offline. --clear removes it: tokens can then no longer be made over the API."
	userLifetimesSynopsis = "user lifetimes [--set ROLE=LIFETIME]… [--data DIR … | --server URL [--token-file FILE]]\n\n" +
		"Shows how long new tokens of each role live; --set enumerator=40d changes a role's (1h to 5\n" +
		"years). Tokens already given keep their expiry."
)
