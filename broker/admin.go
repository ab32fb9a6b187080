package broker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// Administration of users, grants and role policy (issue 13), from the
// host (the CLI with the data directory: the operator who holds the
// keys) or over the API by a user holding admin.manage at the root.
//
// Invariants:
//   - An administrator over the API cannot reach data by administering:
//     a change that could widen access to data — a grant of a role that
//     reveals data or of approver, the removal of a deny, a new role
//     policy — is a proposal until an approver who is not its proposer
//     (and not its grantee) confirms it; a role policy that lets admin,
//     auditor or approver touch data is refused outright.
//   - A token exists in the clear only in memory: over the API, and for
//     every bulk import, it leaves the vault only age-encrypted to a
//     recipient the request names (the user's or the field office's),
//     never through the administrator's screen.
//   - Every token expires (by default after its role's lifetime); the
//     host operator alone may give one without expiry (service accounts).
//   - The last user able to administer cannot be revoked, lose the admin
//     grant or be denied it.
//   - Every change is one transaction with its audit event and grant log
//     entries (commitChange): see policylog.go.

// Operator is who makes an administrative change: the host operator or
// an API caller (see HostOperator, APIOperator).
type Operator struct {
	caller *Caller // nil: the host operator
	actor  string
}

// HostOperator is the operator of the CLI on the vault host, named actor
// in the audit log ("cli:root"): trusted with the keys, its changes take
// effect at once.
func HostOperator(actor string) Operator { return Operator{actor: actor} }

// APIOperator is an API caller administering the vault; each use case
// checks its grants.
func APIOperator(c *Caller) Operator { return Operator{caller: c, actor: c.actor()} }

func (o Operator) host() bool { return o.caller == nil }

// hostRule is the rule of the events of the host operator's changes.
const hostRule = "operator with access to the data directory"

// DefaultTokenLifetimes are how long a new token lives, per role of the
// grant it is created with, unless the vault's lifetimes say otherwise
// (SetTokenLifetimes): a census's field work lasts weeks; oversight,
// research and administration longer.
func DefaultTokenLifetimes() map[policy.Role]time.Duration {
	const day = 24 * time.Hour
	return map[policy.Role]time.Duration{
		policy.Enumerator: 60 * day, policy.TeamLeader: 60 * day, policy.Supervisor: 90 * day,
		policy.Steering: 365 * day, policy.Researcher: 180 * day, policy.Processor: 90 * day,
		policy.Auditor: 365 * day, policy.Admin: 90 * day, policy.Approver: 180 * day,
	}
}

const metaTokenLifetimes = "token_lifetimes"

// tokenLifetimes reads the lifetimes in force: the stored ones over the
// defaults.
func tokenLifetimes(tx storage.ReadTx) (map[policy.Role]time.Duration, error) {
	out := DefaultTokenLifetimes()
	s, err := tx.Meta(metaTokenLifetimes)
	if errors.Is(err, storage.ErrNotFound) || s == "" {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("stored token lifetimes %q: %w", s, err)
		}
		out[policy.Role(k)] = time.Duration(secs) * time.Second
	}
	return out, nil
}

// TokenLifetimes are the token lifetimes in force, per role.
func (b *Broker) TokenLifetimes(ctx context.Context) (map[policy.Role]time.Duration, error) {
	var out map[policy.Role]time.Duration
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		out, err = tokenLifetimes(tx)
		return err
	})
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read the token lifetimes")
	}
	return out, nil
}

// SetTokenLifetimes changes the lifetime of new tokens of the given roles
// (at least an hour, at most 5 years); tokens already issued keep theirs.
// Audited.
func (b *Broker) SetTokenLifetimes(ctx context.Context, op Operator, set map[policy.Role]time.Duration) error {
	ev, err := b.authorizeAdmin(ctx, op, "user.lifetimes", nil)
	if err != nil {
		return err
	}
	for r, d := range set {
		if _, err := policy.ParseRole(string(r)); err != nil {
			return b.refused(ctx, op, ev, errorf(Invalid, nil, "%v", err))
		}
		if d < time.Hour || d > 5*365*24*time.Hour {
			return b.refused(ctx, op, ev, errorf(Invalid, nil, "lifetime of %s tokens %s: give between 1h and 5 years (e.g. 60d)", r, d))
		}
	}
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		cur, err := tokenLifetimes(tx)
		if err != nil {
			return err
		}
		var parts, changed []string
		for r, d := range set {
			cur[r] = d
			changed = append(changed, fmt.Sprintf("%s=%dd", r, int64(d/(24*time.Hour))))
		}
		for _, r := range policy.Roles() {
			parts = append(parts, fmt.Sprintf("%s=%d", r, int64(cur[r]/time.Second)))
		}
		if err := tx.PutMeta(metaTokenLifetimes, strings.Join(parts, ",")); err != nil {
			return err
		}
		sort.Strings(changed)
		ev.Reason = "lifetimes " + strings.Join(changed, " ")
		_, err = appendEvent(tx, ev)
		return err
	})
	if err != nil {
		return errorf(Unavailable, err, "failed to store the token lifetimes")
	}
	return nil
}

// authorizeAdmin checks that op may administer (admin.manage over the
// whole tree) and returns the event of the change, to be completed and
// appended in its transaction. A refusal is audited.
func (b *Broker) authorizeAdmin(ctx context.Context, op Operator, action string, resources []string) (*audit.Event, error) {
	return b.authorizeAt(ctx, op, policy.Administer, action, b.tree.Root(), resources)
}

// authorizeAt checks that op may perform a over area's whole subtree.
func (b *Broker) authorizeAt(ctx context.Context, op Operator, a policy.Action, action string, at AreaCode, resources []string) (*audit.Event, error) {
	if op.host() {
		return &audit.Event{Time: b.now().UTC(), Actor: op.actor, Roles: []string{}, Action: action, Area: string(at),
			Resources: resources, Decision: "allow", Rule: hostRule, Outcome: "ok"}, nil
	}
	c := op.caller
	sc, err := b.scope(c, a, "")
	if err != nil {
		return nil, err
	}
	d, err := sc.Subtree(b.pathOf(string(at)), b.pathOf)
	if err != nil {
		return nil, errorf(Internal, err, "policy failed")
	}
	ev := b.event(c, action, d)
	ev.Area, ev.Resources = string(at), resources
	if !d.Allow {
		ev.Decision, ev.Outcome = "deny", "denied"
		return nil, b.refuse(ctx, ev, errorf(Permission, nil, "not permitted: %s over %s's whole subtree is needed", a, at))
	}
	ev.Outcome = "ok"
	return ev, nil
}

// needsConfirm reports whether a change of g proposed over the API waits
// for an approver: granting a data role (policy.Engine.IsDataRole) or
// approver, or removing a deny (and, decided with the user's grants,
// removing a trust grant that masks another: unmasks).
func needsConfirm(eng *policy.Engine, g policy.Grant, remove bool) bool {
	if remove {
		return g.Deny
	}
	return !g.Deny && (eng.IsDataRole(g.Role) || g.Role == policy.Approver)
}

// pendingDataRoles are the roles that would reveal data under a role
// policy proposed and still waiting for an approver: a grant of one waits
// too, or an administrator could grant it while the policy that makes it
// a data role is pending, and the approver confirming that policy would
// never see the grant.
func pendingDataRoles(tx storage.ReadTx, now time.Time) (map[policy.Role]bool, error) {
	out := map[policy.Role]bool{}
	err := tx.GrantProposals(func(p storage.GrantProposal) (bool, error) {
		if p.Kind != storage.GrantOpPolicy || p.ConfirmedBy != "" || now.Sub(p.ProposedAt) > proposalLife {
			return true, nil
		}
		eng, err := policy.New(policy.Options{Model: p.Model, Policy: p.Policy})
		if err != nil {
			return true, nil // a proposal that does not load can never be confirmed
		}
		for _, r := range policy.Roles() {
			if eng.RevealsData(r) {
				out[r] = true
			}
		}
		return true, nil
	})
	return out, err
}

// widens lists the roles that reveal data under the role policy proposed
// (model, rules) but not under cur: what an approver confirming it gives
// to every holder of those roles.
func widens(cur *policy.Engine, model, rules string) []string {
	eng, err := policy.New(policy.Options{Model: model, Policy: rules})
	if err != nil {
		return nil
	}
	var out []string
	for _, r := range policy.Roles() {
		if eng.RevealsData(r) && !cur.RevealsData(r) {
			out = append(out, string(r))
		}
	}
	return out
}

// unmasks reports whether removing grant g from a user holding grants
// could widen their access: g is an allow grant of a trust role, whose
// deny rules block data actions on its subtree, and the user holds
// another allow grant that the removal would let through.
func unmasks(g policy.Grant, grants []storage.Grant) bool {
	if g.Deny || !policy.IsTrustRole(g.Role) {
		return false
	}
	for _, x := range grants {
		if !x.Deny && policyGrant(x) != g && !policy.IsTrustRole(policy.Role(x.Role)) {
			return true
		}
	}
	return false
}

// UserImport is the outcome of creating users (ImportUsers).
type UserImport struct {
	Users   int     // users created
	Active  int     // whose grant holds now
	Pending []int64 // the proposals an approver must confirm for the others
	// Sealed is the new users' tokens, a CSV (user,token,role,area,expires)
	// age-encrypted to the recipient the request named; the tokens exist
	// nowhere else.
	Sealed []byte
	// Digest is the SHA-256 of the imported rows as the audit events
	// name it (resource "import:…").
	Digest string
}

// MaxImportUsers bounds one import (a province's enumerators at a time).
const MaxImportUsers = 50_000

// ImportUsers creates users, each with one grant, in one transaction:
// all or none. Each user gets a new token, expiring after the lifetime
// of its role unless NewUser.Expires is sooner (or, for the host
// operator only, NoExpiry); the tokens are returned only age-encrypted
// to recipient. Over the API a grant of a data role (or approver) is a
// proposal an approver confirms (ConfirmGrant); the user exists at once
// but can do nothing until then.
func (b *Broker) ImportUsers(ctx context.Context, op Operator, rows []NewUser, recipient string) (*UserImport, error) {
	ev, err := b.authorizeAdmin(ctx, op, "user.add", nil)
	if err != nil {
		return nil, err
	}
	res, err := b.importUsers(ctx, op, ev, rows, recipient)
	if err != nil {
		// A refused import is one event, not one per user.
		return nil, b.refused(ctx, op, ev, err)
	}
	return res, nil
}

// importUsers is ImportUsers once op is authorized; ev is the event of
// each user's creation.
func (b *Broker) importUsers(ctx context.Context, op Operator, ev *audit.Event, rows []NewUser, recipient string) (*UserImport, error) {
	switch {
	case len(rows) == 0:
		return nil, errorf(Invalid, nil, "no users to add")
	case len(rows) > MaxImportUsers:
		return nil, errorf(TooLarge, nil, "%d users in one import; at most %d: split the file", len(rows), MaxImportUsers)
	}
	recipient, err := b.tokenRecipientFor(ctx, op, recipient, "")
	if err != nil {
		return nil, err
	}
	now := b.now().UTC()
	seen := map[UserID]int{}
	h := sha256.New()
	for i, u := range rows {
		line := i + 1
		if !userNameRE.MatchString(string(u.Name)) {
			return nil, errorf(Invalid, nil, "user %d: name %q: use 1–64 lowercase letters, digits, '.', '_' or '-'", line, clip(string(u.Name)))
		}
		if j, dup := seen[u.Name]; dup {
			return nil, errorf(Invalid, nil, "user %d: %s is also user %d", line, u.Name, j)
		}
		seen[u.Name] = line
		if err := b.checkGrant(policy.Grant{Role: u.Role, Area: string(u.Area), Project: u.Project}); err != nil {
			var pe *Error
			if errors.As(err, &pe) {
				pe.Msg = fmt.Sprintf("user %d (%s): %s", line, u.Name, pe.Msg)
			}
			return nil, err
		}
		switch {
		case u.NoExpiry && !op.host():
			return nil, errorf(Invalid, nil, "user %d (%s): only the host operator gives tokens without expiry", line, u.Name)
		case !u.Expires.IsZero() && !u.Expires.After(now):
			return nil, errorf(Invalid, nil, "user %d (%s): expiry %s is in the past", line, u.Name, u.Expires.Format(time.RFC3339))
		}
		fmt.Fprintf(h, "%s,%s,%s,%s\n", u.Name, u.Role, u.Area, u.Project)
	}
	digest := hex.EncodeToString(h.Sum(nil))
	eng := b.engineFor(op.caller)
	var out bytes.Buffer
	w := csv.NewWriter(&out)
	_ = w.Write([]string{"user", "token", "role", "area", "expires"})
	res := &UserImport{Users: len(rows), Digest: digest}
	type made struct {
		u       NewUser
		expires time.Time
		pending bool
	}
	var mades []made
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		lifetimes, err := tokenLifetimes(tx)
		if err != nil {
			return err
		}
		out.Reset()
		w = csv.NewWriter(&out)
		_ = w.Write([]string{"user", "token", "role", "area", "expires"})
		mades = mades[:0]
		res.Pending, res.Active = nil, 0
		projects := map[string]bool{}
		pendRoles, err := pendingDataRoles(tx, now)
		if err != nil {
			return err
		}
		for i, u := range rows {
			if u.Project != "" && !projects[u.Project] {
				if err := checkGrantProject(tx, u.Project); err != nil {
					return err
				}
				projects[u.Project] = true
			}
			if err := checkNewUserName(tx, u.Name); err != nil {
				var pe *Error
				if errors.As(err, &pe) {
					pe.Msg = fmt.Sprintf("user %d: %s", i+1, pe.Msg)
				}
				return err
			}
			exp := u.Expires
			if life := now.Add(lifetimes[u.Role]); !u.NoExpiry && (exp.IsZero() || exp.After(life) && !op.host()) {
				exp = life
			}
			if u.NoExpiry {
				exp = time.Time{}
			}
			tok, err := crypto.NewToken()
			if err != nil {
				return errorf(Internal, err, "failed to make a token")
			}
			g := policy.Grant{Role: u.Role, Area: string(u.Area), Project: u.Project}
			pending := !op.host() && (needsConfirm(eng, g, false) || pendRoles[u.Role])
			su := &storage.User{Name: string(u.Name), TokenHash: tok.Digest().Hex(), CreatedAt: now, ExpiresAt: exp}
			if !pending {
				su.Grants = []storage.Grant{storageGrant(g)}
			}
			if err := tx.InsertUser(su); err != nil {
				return err
			}
			expText := "never"
			if !exp.IsZero() {
				expText = exp.Format(time.RFC3339)
			}
			_ = w.Write([]string{string(u.Name), tok.Reveal(), string(u.Role), string(u.Area), expText})
			mades = append(mades, made{u: u, expires: exp, pending: pending})
		}
		// One policy hash for the whole import: every event of it
		// carries the policy after it, and its grant log entries all
		// sit at its first event, so rebuilding at any of them gives
		// that policy.
		if _, err := updatePolicyHash(tx); err != nil {
			return err
		}
		hash, err := tx.Meta(metaPolicyHash)
		if err != nil {
			return err
		}
		first := int64(-1)
		for _, m := range mades {
			g := policy.Grant{Role: m.u.Role, Area: string(m.u.Area), Project: m.u.Project}
			e := *ev
			e.Time, e.Area = now, string(m.u.Area)
			e.Resources = []string{"user:" + string(m.u.Name), "grant:" + grantText(g)}
			if len(rows) > 1 {
				e.Resources = append(e.Resources, "import:"+digest[:16])
			}
			e.Reason = "expires " + map[bool]string{true: "never", false: m.expires.Format(time.RFC3339)}[m.expires.IsZero()]
			if m.pending {
				e.Reason += "; grant waits for an approver"
			}
			rec, err := appendEvent(tx, &e)
			if err != nil {
				return err
			}
			if first < 0 {
				first = rec.Index
			}
			if m.pending {
				p := &storage.GrantProposal{Kind: storage.GrantOpGrant, User: string(m.u.Name), Grant: storageGrant(g),
					Reason: "new user", ProposedBy: op.actor, ProposedAt: now, ProposalAudit: rec.Index}
				if err := tx.ProposeGrant(p); err != nil {
					return err
				}
				res.Pending = append(res.Pending, p.Seq)
				continue
			}
			res.Active++
			if err := tx.AppendGrantLog(&storage.GrantLogEntry{AuditIndex: first, At: now, Op: storage.GrantOpGrant,
				User: string(m.u.Name), Grant: storageGrant(g), PolicyHash: hash}); err != nil {
				return fmt.Errorf("grant log: %w", err)
			}
		}
		return nil
	})
	var pe *Error
	switch {
	case errors.As(err, &pe):
		return nil, pe
	case errors.Is(err, storage.ErrConflict):
		return nil, errorf(Conflict, nil, "a user of the import exists already (or two tokens collided): nothing was added; try again")
	case err != nil:
		return nil, errorf(Unavailable, err, "failed to store the users: nothing was added")
	}
	w.Flush()
	sealed, err := crypto.EncryptTo(recipient, out.Bytes())
	clear(out.Bytes())
	if err != nil {
		// The users exist but nobody has their tokens: say how to
		// recover rather than pretend nothing happened.
		return nil, errorf(Internal, err, "the users were added but their tokens could not be encrypted: reissue them with `censusvault user reissue`")
	}
	res.Sealed = sealed
	return res, nil
}

// ParseUserCSV reads an import file: a header naming the columns user,
// role, area and optionally project and expires (a lifetime such as 30d
// or 36h, or an RFC 3339 time), then one user a line. Errors name the
// line.
func ParseUserCSV(data []byte, now time.Time) ([]NewUser, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	head, err := r.Read()
	if err != nil {
		return nil, errorf(Invalid, nil, "user file: no header line (user,role,area[,project][,expires]): %v", err)
	}
	col := map[string]int{}
	for i, h := range head {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		switch h {
		case "user", "name", "role", "area", "project", "expires":
			if h == "name" {
				h = "user"
			}
			if _, dup := col[h]; dup {
				return nil, errorf(Invalid, nil, "user file: column %s twice", h)
			}
			col[h] = i
		default:
			return nil, errorf(Invalid, nil, "user file: unknown column %q (the columns are user, role, area, project, expires)", clip(h))
		}
	}
	for _, need := range []string{"user", "role", "area"} {
		if _, ok := col[need]; !ok {
			return nil, errorf(Invalid, nil, "user file: no %s column (the header is user,role,area[,project][,expires])", need)
		}
	}
	get := func(rec []string, k string) string {
		if i, ok := col[k]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var out []NewUser
	for {
		rec, err := r.Read()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			return nil, errorf(Invalid, nil, "user file: %v", err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if len(out) >= MaxImportUsers {
			return nil, errorf(TooLarge, nil, "user file: more than %d users; split it", MaxImportUsers)
		}
		role, err := policy.ParseRole(get(rec, "role"))
		if err != nil {
			return nil, errorf(Invalid, nil, "user file line %d: %v", line, err)
		}
		u := NewUser{Name: UserID(get(rec, "user")), Role: role, Area: AreaCode(get(rec, "area")), Project: get(rec, "project")}
		if e := get(rec, "expires"); e != "" {
			if t, err := time.Parse(time.RFC3339, e); err == nil {
				u.Expires = t
			} else if d, err := ParseLifetime(e); err == nil {
				u.Expires = now.Add(d)
			} else {
				return nil, errorf(Invalid, nil, "user file line %d: expires %q: give a lifetime such as 30d or an RFC 3339 time", line, clip(e))
			}
		}
		out = append(out, u)
	}
	return out, nil
}

// ParseLifetime reads a lifetime such as 90d, 36h or 45m.
func ParseLifetime(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 || days > 5*366 {
			return 0, fmt.Errorf("lifetime %q: give a whole number of days, e.g. 90d", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("lifetime %q: give e.g. 90d, 36h or 45m", s)
	}
	return d, nil
}
