package broker

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/untrusted"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// Extracts for the processing centre (issue 13, part 4): the one bulk
// path of microdata out of the vault. The host operator registers a
// processing environment (an age recipient and the field classes it may
// receive) — never an administrator over the API, who could otherwise
// name its own key; a processor proposes an extract of some areas, one
// form and some classes for it; an approver who is neither the proposer
// nor an administrator approves it within ExtractLife, shown the
// recipient's start and fingerprint; a processor then downloads it,
// encrypted to the environment's recipient, as often as needed.
//
// Invariants:
//   - Scope is policy's one rule (Scope.Subtree): every area of an extract
//     must be wholly in the caller's scope for the action (a deny anywhere
//     below refuses), and every class of it allowed (extract.identifying,
//     extract.analytic, extract.operational) over every area and listed
//     by the environment. A class either rule refuses is refused, never
//     silently dropped. It is checked at the proposal, and again at each
//     download with the downloader's grants of then.
//   - Four eyes: the approver is never the proposer, nor anyone who may
//     administer the vault (admin.manage at the root); a proposal is
//     approved once, and not after ExtractLife.
//   - No oracle on extract numbers: an unknown seq is answered as one
//     outside the caller's scope.
//   - Bounded work: one download in its first pass per user, and
//     Opts.MaxExtractPreparing over all, on each broker; the first pass
//     stops when the client hangs up.
//   - Reproducible: an extract holds the submissions current as of its
//     proposal's audit event (index <= as_of, not superseded by one with
//     index <= as_of), in audit order (ties by id), serialized
//     deterministically, so every download gives the same bytes while the
//     keys live.
//   - No plaintext copy, no temporary file: a download runs twice. Pass
//     1 serializes every row in memory, one at a time, into SHA-256 and a
//     row count; the download's audit event (the digest in ReleaseDigest,
//     the rows in the reason) is then appended, and only once it is
//     durable does pass 2 stream the same bytes through age to the
//     environment's recipient. If pass 2 does not reproduce the digest (a
//     key shredded in between, say) the stream is cut before age's last
//     chunk, so the receiver holds an incomplete age file, and the cut is
//     logged and audited.
//   - No field value reaches an audit event, an error or a log: events
//     carry ids, codes, counts and the digest; the purpose is the
//     proposer's own text, clipped.

// Wire types of extracts (the client shares them).
type (
	Environment     = wire.Environment
	NewEnvironment  = wire.NewEnvironment
	ExtractRequest  = wire.ExtractRequest
	ExtractInfo     = wire.Extract
	ExtractList     = wire.ExtractList
	EnvironmentList = wire.EnvironmentList
)

// ExtractLife is how long a proposed extract may wait for its approval.
const ExtractLife = 7 * 24 * time.Hour

// Bounds of an extract proposal.
const (
	MaxExtractAreas   = 100 // areas one extract names, each with its subtree
	MaxExtractPurpose = 500 // bytes of its purpose
)

// Audit actions of extracts.
const (
	actionEnvAdd          = "extract.environment_add"
	actionEnvRetire       = "extract.environment_retire"
	actionEnvList         = "extract.environment_list"
	actionExtractPropose  = string(policy.ProposeExtract)  // "extract.propose"
	actionExtractApprove  = string(policy.ApproveExtract)  // "extract.approve"
	actionExtractDownload = string(policy.DownloadExtract) // "extract.download"
	actionExtractList     = "extract.list"
)

// extractClasses are the classes an extract may carry, in the order an
// extract lists them, with the action that lets each in.
var extractClasses = []struct {
	class  form.Class
	action policy.Action
}{
	{form.Identifying, policy.ExtractIdentifying},
	{form.Analytic, policy.ExtractAnalytic},
	{form.Operational, policy.ExtractOperational},
}

// DefaultEnvironmentClasses are the classes an environment registered
// without any may receive: never the identifying one unless listed.
func DefaultEnvironmentClasses() []string {
	return []string{string(form.Analytic), string(form.Operational)}
}

// eventText is text from a request as an audit event may hold it before
// it was checked: clipped, and valid UTF-8 (an event refuses anything
// else, and a refusal must still be recorded).
func eventText(s string) string { return strings.ToValidUTF8(clip(s), "\uFFFD") }

func knownClass(c string) bool {
	for _, ec := range extractClasses {
		if string(ec.class) == c {
			return true
		}
	}
	return false
}

// normalClasses checks a list of classes (known, none twice, at least
// one) and returns it in extractClasses' order.
func normalClasses(list []string) ([]string, error) {
	if len(list) == 0 {
		return nil, errors.New("name at least one field class: identifying, analytic or operational")
	}
	seen := map[string]bool{}
	for _, c := range list {
		if !knownClass(c) {
			return nil, fmt.Errorf("class %q: identifying, analytic or operational", clip(c))
		}
		if seen[c] {
			return nil, fmt.Errorf("class %s is named twice", c)
		}
		seen[c] = true
	}
	var out []string
	for _, ec := range extractClasses {
		if seen[string(ec.class)] {
			out = append(out, string(ec.class))
		}
	}
	return out, nil
}

func environmentInfo(e *storage.Environment) Environment {
	return Environment{Name: e.Name, Recipient: e.Recipient, RecipientSHA256: RecipientFingerprint(e.Recipient), Classes: slices.Clone(e.Classes),
		CreatedBy: e.CreatedBy, CreatedAt: e.CreatedAt, RetiredBy: e.RetiredBy, RetiredAt: e.RetiredAt}
}

// RecipientFingerprint is an age recipient's fingerprint: the hex SHA-256
// of the recipient as written, what `printf %s age1… | sha256sum`
// prints on the processing centre's machine.
func RecipientFingerprint(recipient string) string {
	sum := sha256.Sum256([]byte(recipient))
	return hex.EncodeToString(sum[:])
}

// RecipientStart is the start of an age recipient as answers, events and
// the CLI show it (hybrid post-quantum recipients run to kilobytes): its
// first 20 characters, then "…".
func RecipientStart(recipient string) string {
	if len(recipient) <= 20 {
		return recipient
	}
	return recipient[:20] + "…"
}

// hostOnlyRule is the rule of the refusal of an environment registered
// over the API.
const hostOnlyRule = "processing environments are registered by the host operator only"

// AddEnvironment registers a processing environment: name, age recipient
// (X25519 or hybrid post-quantum) and the classes it may receive
// (DefaultEnvironmentClasses when none are named). op must be the host
// operator: the recipient decides who can decrypt bulk microdata, and an
// administrator over the API must not choose it alone (with tokens of a
// processor and an approver it had reissued to itself, it would extract
// to its own key). An API caller who may administer the vault is refused
// Permission with code host_only, anyone else as ever; both audited,
// before ne is looked at. A name is registered once, ever (409
// environment_exists): an environment is never changed or removed, only
// retired.
func (b *Broker) AddEnvironment(ctx context.Context, op Operator, ne NewEnvironment) (*Environment, error) {
	var resources []string
	if ne.Name != "" {
		resources = []string{"environment:" + eventText(ne.Name)}
	}
	ev, err := b.authorizeAdmin(ctx, op, actionEnvAdd, resources)
	if err != nil {
		return nil, err
	}
	if !op.host() {
		ev.Decision, ev.Rule, ev.Outcome, ev.Reason = "deny", hostOnlyRule, "denied", "host_only"
		return nil, b.refuse(ctx, ev, &Error{Kind: Permission, Code: "host_only",
			Msg: "a processing environment is registered on the vault host only (its recipient decides who can decrypt the extracts): " +
				"run `censusvault extract env add NAME --recipient age1… --data DIR` there"})
	}
	invalid := func(msg string) (*Environment, error) {
		ev.Outcome, ev.Reason = "invalid", msg
		return nil, b.refuse(ctx, ev, errorf(Invalid, nil, "%s", msg))
	}
	if !projectIDRE.MatchString(ne.Name) {
		return invalid(fmt.Sprintf("environment name %q: use 1–64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", clip(ne.Name)))
	}
	rcpt, err := crypto.ParseRecipient(ne.Recipient)
	if err != nil {
		return invalid("recipient: " + err.Error())
	}
	classes := ne.Classes
	if len(classes) == 0 {
		classes = DefaultEnvironmentClasses()
	}
	if classes, err = normalClasses(classes); err != nil {
		return invalid("classes: " + err.Error())
	}
	now := b.now().UTC()
	e := &storage.Environment{Name: ne.Name, Recipient: rcpt, Classes: classes, CreatedBy: ev.Actor, CreatedAt: now}
	ev.Time, ev.Outcome = now, "ok"
	ev.Reason = "classes " + strings.Join(classes, ", ") + "; recipient " + untrusted.Clip(rcpt, 72)
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		rec, err := appendEvent(tx, ev)
		if err != nil {
			return err
		}
		e.AuditIndex = rec.Index
		return tx.InsertEnvironment(e)
	})
	if errors.Is(err, storage.ErrConflict) {
		ev.Outcome, ev.Reason = "conflict", "an environment of that name exists"
		return nil, b.refuse(ctx, ev, &Error{Kind: Conflict, Code: "environment_exists",
			Msg: fmt.Sprintf("environment %s exists (an environment is never changed or removed, and its name never reused): register a new one under another name", ne.Name)})
	}
	if err != nil {
		b.auditFailures.Add(1)
		return nil, errorf(Unavailable, err, "the environment could not be stored; nothing changed")
	}
	out := environmentInfo(e)
	return &out, nil
}

// RetireEnvironment retires an environment: no extract is proposed for
// it, approved or downloaded to it any more. op is the host operator or
// an API caller with admin.manage over the whole tree (retiring only
// takes access away).
// Errors: NotFound (no_such_environment), Conflict (environment_retired).
func (b *Broker) RetireEnvironment(ctx context.Context, op Operator, name string) (*Environment, error) {
	ev, err := b.authorizeAdmin(ctx, op, actionEnvRetire, []string{"environment:" + eventText(name)})
	if err != nil {
		return nil, err
	}
	now := b.now().UTC()
	ev.Time, ev.Outcome, ev.Reason = now, "ok", "retired"
	var e *storage.Environment
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		rec, err := appendEvent(tx, ev)
		if err != nil {
			return err
		}
		if err := tx.RetireEnvironment(name, ev.Actor, now, rec.Index); err != nil {
			return err
		}
		e, err = tx.Environment(name)
		return err
	})
	switch {
	case errors.Is(err, storage.ErrNotFound):
		ev.Outcome, ev.Reason = "refused", "no such environment"
		return nil, b.refuse(ctx, ev, &Error{Kind: NotFound, Code: "no_such_environment", Msg: fmt.Sprintf("no environment %s", clip(name))})
	case errors.Is(err, storage.ErrConflict):
		ev.Outcome, ev.Reason = "conflict", "already retired"
		return nil, b.refuse(ctx, ev, &Error{Kind: Conflict, Code: "environment_retired", Msg: fmt.Sprintf("environment %s is retired already", clip(name))})
	case err != nil:
		b.auditFailures.Add(1)
		return nil, errorf(Unavailable, err, "the retirement could not be stored; nothing changed")
	}
	out := environmentInfo(e)
	return &out, nil
}

// Environments lists every environment, retired ones too, for the host
// operator.
func (b *Broker) Environments(ctx context.Context) (*EnvironmentList, error) {
	out := &EnvironmentList{Environments: []Environment{}}
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		out.Environments = out.Environments[:0]
		return tx.Environments(func(e storage.Environment) (bool, error) {
			out.Environments = append(out.Environments, environmentInfo(&e))
			return true, nil
		})
	})
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read the environments")
	}
	return out, nil
}

// extractRoles are the actions whose holders see the environments and
// the extract proposals: those who register environments, propose,
// approve or download extracts.
var extractRoles = []policy.Action{policy.Administer, policy.ProposeExtract, policy.ApproveExtract, policy.DownloadExtract}

// EnvironmentsFor lists the environments to a caller who administers,
// proposes, approves or downloads extracts somewhere (policy decides);
// anyone else is refused. Audited.
func (b *Broker) EnvironmentsFor(ctx context.Context, c *Caller) (*EnvironmentList, error) {
	var d policy.Decision
	for _, a := range extractRoles {
		if d = b.anyGrantAllows(ctx, c, a); d.Allow {
			break
		}
	}
	ev := b.event(c, actionEnvList, d)
	ev.Area = string(b.tree.Root())
	if !d.Allow {
		ev.Decision, ev.Outcome = "deny", "denied"
		if ev.Rule == "" {
			ev.Rule = "no grant permits admin.manage, extract.propose, extract.approve or extract.download"
		}
		return nil, b.refuse(ctx, ev, errorf(Permission, nil, "the processing environments are shown to those who register them, and who propose, approve or download extracts"))
	}
	out, err := b.Environments(ctx)
	if err != nil {
		return nil, err
	}
	ev.Outcome, ev.Reason = "ok", fmt.Sprintf("%d environments", len(out.Environments))
	if err := b.record(ctx, ev); err != nil {
		return nil, err
	}
	return out, nil
}

// extractInfo is a stored proposal for environment env as the wire shows
// it at now.
func extractInfo(p *storage.ExtractProposal, env *storage.Environment, now time.Time) ExtractInfo {
	st := wire.ExtractPending
	switch {
	case p.ApprovedBy != "":
		st = wire.ExtractApproved
	case now.Sub(p.ProposedAt) > ExtractLife:
		st = wire.ExtractExpired
	}
	return ExtractInfo{Seq: p.Seq, Environment: p.Environment, RecipientStart: RecipientStart(env.Recipient), RecipientSHA256: RecipientFingerprint(env.Recipient),
		Areas: slices.Clone(p.Areas), Form: p.Form, FormVersion: p.FormVersion,
		Classes: slices.Clone(p.Classes), Format: p.Format, Purpose: p.Purpose, AsOf: p.ProposalAudit, Status: st,
		ProposedBy: p.ProposedBy, ProposedAt: p.ProposedAt, ExpiresAt: p.ProposedAt.Add(ExtractLife),
		ApprovedBy: p.ApprovedBy, ApprovedAt: p.ApprovedAt}
}

// extractDescription is what an extract's events say of it: never a
// value.
func extractDescription(p *storage.ExtractProposal) string {
	return fmt.Sprintf("%s of %s v%d, classes %s, areas %s", p.Format, p.Form, p.FormVersion,
		strings.Join(p.Classes, ", "), strings.Join(p.Areas, ","))
}

// extractScope decides whether c may perform a over the whole subtree of
// every area: the decision (the first refusal, or the decision at the
// first area) and whether it allows.
func (b *Broker) extractScope(c *Caller, a policy.Action, areas []AreaCode) (policy.Decision, error) {
	sc, err := b.scope(c, a, "")
	if err != nil {
		return policy.Decision{}, err
	}
	var first policy.Decision
	for i, code := range areas {
		d, err := sc.Subtree(b.pathOf(string(code)), b.pathOf)
		if err != nil {
			return policy.Decision{}, errorf(Internal, err, "policy failed")
		}
		if !d.Allow {
			return d, nil
		}
		if i == 0 {
			first = d
		}
	}
	return first, nil
}

// classRefusal checks every class of an extract for c over every area
// (policy) and against the environment's list: nil, or the refusal.
func (b *Broker) classRefusal(c *Caller, classes []string, areas []AreaCode, env *storage.Environment) (*Error, string, error) {
	for _, ec := range extractClasses {
		if !slices.Contains(classes, string(ec.class)) {
			continue
		}
		d, err := b.extractScope(c, ec.action, areas)
		if err != nil {
			return nil, "", err
		}
		if !d.Allow {
			return &Error{Kind: Permission, Code: "class_not_allowed",
				Msg: fmt.Sprintf("the %s fields may not be extracted from every area named: the policy does not allow you %s over their whole subtrees; leave the class out", ec.class, ec.action)}, d.Rule, nil
		}
		if !slices.Contains(env.Classes, string(ec.class)) {
			return &Error{Kind: Permission, Code: "class_not_registered",
					Msg: fmt.Sprintf("environment %s is not registered to receive %s fields (it receives %s); leave the class out or register another environment", env.Name, ec.class, strings.Join(env.Classes, ", "))},
				"environment " + env.Name + " does not list " + string(ec.class), nil
		}
	}
	return nil, "", nil
}

// ProposeExtract proposes an extract for a processing environment: the
// caller needs extract.propose over the whole subtree of every area, and
// every class allowed by policy (extract.<class>) over them and listed
// by the environment; identifying fields are therefore in no extract
// unless both allow them. The extract is as of the proposal's audit
// event. Nothing is released until an approver who is not the proposer
// approves it (ApproveExtract). One audit event, extract.propose, with
// the purpose (clipped).
func (b *Broker) ProposeExtract(ctx context.Context, c *Caller, req ExtractRequest) (*ExtractInfo, error) {
	ev := b.event(c, actionExtractPropose, policy.Decision{})
	if req.Environment != "" {
		ev.Resources = []string{"environment:" + eventText(req.Environment)}
	}
	invalid := func(msg string) (*ExtractInfo, error) {
		ev.Outcome, ev.Reason = "invalid", msg
		return nil, b.refuse(ctx, ev, errorf(Invalid, nil, "%s", msg))
	}
	if !projectIDRE.MatchString(req.Environment) {
		return invalid("environment: name a registered processing environment (GET /v1/extracts/environments lists them)")
	}
	if err := checkText("the purpose", req.Purpose); err != nil {
		return invalid(err.Error() + " (say what the extract is for, in one line of at most 500 bytes)")
	}
	// Checked first: an audit event holds valid UTF-8 only.
	ev.Purpose = untrusted.Clip(req.Purpose, MaxExtractPurpose)
	switch {
	case len(req.Areas) == 0:
		return invalid("areas: name at least one area code; each covers its whole subtree")
	case len(req.Areas) > MaxExtractAreas:
		return invalid(fmt.Sprintf("areas: at most %d area codes (name a larger area instead)", MaxExtractAreas))
	}
	areas := make([]AreaCode, len(req.Areas))
	for i, a := range req.Areas {
		code := AreaCode(a)
		if !area.ValidCode(code) {
			return invalid(fmt.Sprintf("areas: %q is not an area code", clip(a)))
		}
		if _, ok := b.tree.Get(code); !ok {
			return invalid(fmt.Sprintf("areas: no area %s", code))
		}
		for _, prev := range areas[:i] {
			if b.tree.Contains(prev, code) || b.tree.Contains(code, prev) {
				return invalid(fmt.Sprintf("areas: %s and %s overlap (an area covers its whole subtree): name each part once", prev, code))
			}
		}
		areas[i] = code
	}
	ev.Area = string(b.commonAncestor(areas))
	classes, err := normalClasses(req.Classes)
	if err != nil {
		return invalid("classes: " + err.Error())
	}
	format := cmp.Or(req.Format, wire.ExtractJSONL)
	if format != wire.ExtractJSONL && format != wire.ExtractCSV {
		return invalid(fmt.Sprintf("format %q: jsonl or csv", clip(req.Format)))
	}
	if req.FormVersion < 0 {
		return invalid("form_version: a version number ≥ 1, or leave it out for the newest")
	}
	f, ok := b.forms.Latest(req.Form)
	if req.FormVersion > 0 {
		f, ok = b.forms.Get(req.Form, req.FormVersion)
	}
	if !ok {
		return invalid(fmt.Sprintf("form: no form %q version %d in this vault", clip(req.Form), req.FormVersion))
	}

	d, err := b.extractScope(c, policy.ProposeExtract, areas)
	if err != nil {
		return nil, err
	}
	ev.Rule = d.Rule
	if len(d.Roles) > 0 {
		ev.Roles = d.Roles
	}
	if !d.Allow {
		ev.Decision, ev.Outcome = "deny", "denied"
		return nil, b.refuse(ctx, ev, errorf(Permission, nil, "not permitted to propose an extract of %s: extract.propose over the whole subtree of every area is needed", joinCodes(areas)))
	}
	ev.Decision = "allow"
	var env *storage.Environment
	err = b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		env, err = tx.Environment(req.Environment)
		return err
	})
	switch {
	case errors.Is(err, storage.ErrNotFound):
		ev.Outcome, ev.Reason = "refused", "no such environment"
		return nil, b.refuse(ctx, ev, &Error{Kind: NotFound, Code: "no_such_environment", Msg: fmt.Sprintf("no processing environment %s (GET /v1/extracts/environments lists them)", req.Environment)})
	case err != nil:
		return nil, errorf(Unavailable, err, "the vault database is unavailable; try again later")
	case env.RetiredBy != "":
		ev.Outcome, ev.Reason = "refused", "environment retired"
		return nil, b.refuse(ctx, ev, &Error{Kind: Conflict, Code: "environment_retired", Msg: fmt.Sprintf("environment %s is retired: nothing more is extracted for it", env.Name)})
	}
	refusal, rule, err := b.classRefusal(c, classes, areas, env)
	if err != nil {
		return nil, err
	}
	if refusal != nil {
		ev.Decision, ev.Rule, ev.Outcome, ev.Reason = "deny", rule, "denied", refusal.Code
		return nil, b.refuse(ctx, ev, refusal)
	}

	now := b.now().UTC()
	p := &storage.ExtractProposal{Environment: env.Name, Areas: req.Areas, Form: f.Name, FormVersion: f.Version, Classes: classes,
		Format: format, Purpose: req.Purpose, ProposedBy: string(c.User), ProposedAt: now}
	ev.Time, ev.Outcome = now, "ok"
	actx, cancel := auditContext(ctx)
	defer cancel()
	err = b.store.Update(actx, func(tx storage.Tx) error {
		cur, err := tx.Environment(env.Name)
		if err != nil {
			return err
		}
		if cur.RetiredBy != "" {
			return errEnvRetired
		}
		var next int64 = 1
		if err := tx.ExtractProposals(func(x storage.ExtractProposal) (bool, error) {
			next = max(next, x.Seq+1)
			return true, nil
		}); err != nil {
			return err
		}
		ev.Resources = []string{fmt.Sprintf("extract:%d", next), "environment:" + env.Name}
		ev.Reason = "proposed " + extractDescription(p) + ", as of this event; waits for an approver"
		rec, err := appendEvent(tx, ev)
		if err != nil {
			return err
		}
		p.ProposalAudit = rec.Index
		if err := tx.ProposeExtract(p); err != nil {
			return err
		}
		if p.Seq != next {
			return fmt.Errorf("extract proposal stored as %d, announced as %d", p.Seq, next)
		}
		return nil
	})
	if errors.Is(err, errEnvRetired) {
		ev.Outcome, ev.Reason, ev.Resources = "refused", "environment retired", []string{"environment:" + env.Name}
		return nil, b.refuse(ctx, ev, &Error{Kind: Conflict, Code: "environment_retired", Msg: fmt.Sprintf("environment %s was retired meanwhile: nothing more is extracted for it", env.Name)})
	}
	if err != nil {
		b.auditFailures.Add(1)
		b.log.Error("failed to record an extract proposal", "err", err)
		return nil, errorf(Unavailable, err, "the proposal could not be recorded; nothing changed, try again later")
	}
	out := extractInfo(p, env, now)
	return &out, nil
}

var errEnvRetired = errors.New("environment retired")

// proposalCodes are a proposal's areas as codes.
func proposalCodes(p *storage.ExtractProposal) []AreaCode {
	out := make([]AreaCode, len(p.Areas))
	for i, a := range p.Areas {
		out[i] = AreaCode(a)
	}
	return out
}

// readProposal reads proposal seq and its environment; a missing one is
// ErrNotFound.
func (b *Broker) readProposal(ctx context.Context, seq int64) (*storage.ExtractProposal, *storage.Environment, error) {
	var p *storage.ExtractProposal
	var env *storage.Environment
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		if p, err = tx.ExtractProposal(seq); err != nil {
			return err
		}
		env, err = tx.Environment(p.Environment)
		return err
	})
	return p, env, err
}

// authorizeExtract is the common start of acting on extract seq with
// action a (audited as action): refused at once without the action
// anywhere (noneMsg); an unknown seq answered as one outside the scope
// (unknownExtract, scopeMsg with the seq); the caller's scope checked
// over the whole subtree of every area of the proposal. It returns the
// proposal, its environment and the event of the request, to be
// completed.
func (b *Broker) authorizeExtract(ctx context.Context, c *Caller, a policy.Action, action string, seq int64, noneMsg, scopeMsg string) (*storage.ExtractProposal, *storage.Environment, *audit.Event, error) {
	resource := fmt.Sprintf("extract:%d", seq)
	if d := b.anyGrantAllows(ctx, c, a); !d.Allow {
		ev := b.event(c, action, d)
		ev.Area, ev.Resources = string(b.tree.Root()), []string{resource}
		ev.Decision, ev.Outcome = "deny", "denied"
		return nil, nil, nil, b.refuse(ctx, ev, errorf(Permission, nil, "%s", noneMsg))
	}
	outOfScope := errorf(Permission, nil, scopeMsg, seq)
	p, env, err := b.readProposal(ctx, seq)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, nil, b.unknownExtract(ctx, c, a, seq, outOfScope)
	}
	if err != nil {
		return nil, nil, nil, errorf(Unavailable, err, "failed to read the extract proposal")
	}
	areas := proposalCodes(p)
	d, err := b.extractScope(c, a, areas)
	if err != nil {
		return nil, nil, nil, err
	}
	ev := b.event(c, action, d)
	ev.Area, ev.Resources = string(b.commonAncestor(areas)), []string{resource, "environment:" + p.Environment}
	if !d.Allow {
		ev.Decision, ev.Outcome = "deny", "denied"
		return nil, nil, nil, b.refuse(ctx, ev, outOfScope)
	}
	return p, env, ev, nil
}

// ApproveExtract approves proposal seq: the caller needs extract.approve
// over the whole subtree of every area of it, must be neither its
// proposer nor anyone who may administer the vault (403 four_eyes), and
// it must be pending (409 proposal_approved), under ExtractLife old (409
// proposal_expired) and for an environment in use (409
// environment_retired). An unknown seq is answered as one outside the
// caller's scope (unknownExtract). Audited.
func (b *Broker) ApproveExtract(ctx context.Context, c *Caller, seq int64) (*ExtractInfo, error) {
	p, env, ev, err := b.authorizeExtract(ctx, c, policy.ApproveExtract, actionExtractApprove, seq,
		"not permitted to approve extracts: an approver grant over the extract's areas is needed",
		"not permitted to approve extract %d: extract.approve over the whole subtree of every area it names is needed")
	if err != nil {
		return nil, err
	}
	// An administrator is never the second pair of eyes: it registers
	// users and grants, and could have arranged the extract it approves.
	admin, err := b.engineFor(c).Allow(ctx, c.subject(), policy.Administer, policy.Resource{Path: b.pathOf(string(b.tree.Root()))})
	if err != nil {
		return nil, errorf(Internal, err, "policy failed")
	}
	refusal := func(k Kind, code, msg string) (*ExtractInfo, error) {
		ev.Outcome, ev.Reason = "refused", code
		if k == Conflict {
			ev.Outcome = "conflict"
		}
		return nil, b.refuse(ctx, ev, &Error{Kind: k, Code: code, Msg: msg})
	}
	now := b.now().UTC()
	switch {
	case admin.Allow:
		ev.Decision, ev.Rule = "deny", "four eyes: whoever may administer the vault ("+admin.Rule+") never approves an extract"
		return refusal(Permission, "four_eyes", "you may administer the vault: an administrator never approves an extract, even holding an approver grant; an approver who may not administer must")
	case p.ApprovedBy != "":
		return refusal(Conflict, "proposal_approved", fmt.Sprintf("extract %d was approved by %s already", seq, p.ApprovedBy))
	case p.ProposedBy == string(c.User):
		return refusal(Permission, "four_eyes", "you proposed this extract: another person, an approver, must approve it")
	case now.Sub(p.ProposedAt) > ExtractLife:
		return refusal(Conflict, "proposal_expired", fmt.Sprintf("extract %d is over %s old: propose it again", seq, ExtractLife))
	case env.RetiredBy != "":
		return refusal(Conflict, "environment_retired", fmt.Sprintf("environment %s is retired: nothing more is extracted for it", env.Name))
	}
	ev.Time, ev.Outcome = now, "ok"
	ev.Reason = fmt.Sprintf("approved extract %d proposed by %s: %s, as of %d", seq, p.ProposedBy, extractDescription(p), p.ProposalAudit)
	actx, cancel := auditContext(ctx)
	defer cancel()
	err = b.store.Update(actx, func(tx storage.Tx) error {
		rec, err := appendEvent(tx, ev)
		if err != nil {
			return err
		}
		if err := tx.ApproveExtract(seq, string(c.User), now, rec.Index); err != nil {
			return err
		}
		p.ApprovedBy, p.ApprovedAt, p.ApprovalAudit = string(c.User), now, rec.Index
		return nil
	})
	if errors.Is(err, storage.ErrConflict) {
		return refusal(Conflict, "proposal_approved", fmt.Sprintf("extract %d was approved by someone else meanwhile", seq))
	}
	if err != nil {
		b.auditFailures.Add(1)
		return nil, errorf(Unavailable, err, "the approval could not be recorded; nothing changed, try again later")
	}
	out := extractInfo(p, env, now)
	return &out, nil
}

// unknownExtract refuses c an action a on extract seq, which does not
// exist, and audits it: as one outside c's scope would be refused
// (outOfScope: the same status, code and message), unless c may perform
// a over the whole tree, where every extract would be in its scope (404
// no_such_extract). Nobody learns from the answer whether, or how many,
// extracts exist beyond their scope.
func (b *Broker) unknownExtract(ctx context.Context, c *Caller, a policy.Action, seq int64, outOfScope *Error) error {
	root := b.tree.Root()
	d, err := b.extractScope(c, a, []AreaCode{root})
	if err != nil {
		return err
	}
	ev := b.event(c, string(a), d)
	ev.Area, ev.Resources, ev.Reason = string(root), []string{fmt.Sprintf("extract:%d", seq)}, "no such extract"
	if !d.Allow {
		ev.Decision, ev.Outcome = "deny", "denied"
		return b.refuse(ctx, ev, outOfScope)
	}
	ev.Decision, ev.Outcome = "allow", "refused"
	return b.refuse(ctx, ev, &Error{Kind: NotFound, Code: "no_such_extract", Msg: fmt.Sprintf("no extract %d (GET /v1/extracts lists them)", seq)})
}

// Extracts lists every extract proposal, for the host operator.
func (b *Broker) Extracts(ctx context.Context) (*ExtractList, error) {
	return b.extractList(ctx, func(*storage.ExtractProposal) bool { return true })
}

func (b *Broker) extractList(ctx context.Context, show func(*storage.ExtractProposal) bool) (*ExtractList, error) {
	now := b.now().UTC()
	out := &ExtractList{Extracts: []ExtractInfo{}}
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		out.Extracts = out.Extracts[:0]
		envs := map[string]*storage.Environment{}
		if err := tx.Environments(func(e storage.Environment) (bool, error) {
			envs[e.Name] = &e
			return true, nil
		}); err != nil {
			return err
		}
		return tx.ExtractProposals(func(p storage.ExtractProposal) (bool, error) {
			if !show(&p) {
				return true, nil
			}
			env, ok := envs[p.Environment]
			if !ok {
				return false, fmt.Errorf("extract %d names environment %q, which is not stored", p.Seq, p.Environment)
			}
			out.Extracts = append(out.Extracts, extractInfo(&p, env, now))
			return true, nil
		})
	})
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read the extract proposals")
	}
	return out, nil
}

// ExtractsFor lists the extract proposals to a caller: those whose every
// area lies wholly in the caller's scope for proposing, approving or
// downloading extracts. A caller who may do none of these anywhere is
// refused. Audited (how many were listed).
func (b *Broker) ExtractsFor(ctx context.Context, c *Caller) (*ExtractList, error) {
	var d policy.Decision
	for _, a := range extractRoles[1:] {
		if d = b.anyGrantAllows(ctx, c, a); d.Allow {
			break
		}
	}
	ev := b.event(c, actionExtractList, d)
	ev.Area = string(b.tree.Root())
	if !d.Allow {
		ev.Decision, ev.Outcome = "deny", "denied"
		return nil, b.refuse(ctx, ev, errorf(Permission, nil, "extracts are listed to those who propose, approve or download them"))
	}
	var scopes []policy.Scope
	for _, a := range extractRoles[1:] {
		sc, err := b.scope(c, a, "")
		if err != nil {
			return nil, err
		}
		scopes = append(scopes, sc)
	}
	out, err := b.extractList(ctx, func(p *storage.ExtractProposal) bool {
		for _, sc := range scopes {
			all := true
			for _, a := range p.Areas {
				d, err := sc.Subtree(b.pathOf(a), b.pathOf)
				all = all && err == nil && d.Allow
			}
			if all {
				return true
			}
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	ev.Outcome, ev.Reason = "ok", fmt.Sprintf("%d extracts", len(out.Extracts))
	if err := b.record(ctx, ev); err != nil {
		return nil, err
	}
	return out, nil
}

// ExtractDownload is an approved extract whose first pass is done and
// whose download is in the audit log: its digest and rows are known, no
// byte of it is released yet. Stream releases it, encrypted.
type ExtractDownload struct {
	Seq         int64
	Environment string
	Format      string // wire.ExtractJSONL or wire.ExtractCSV
	ContentType string // the plaintext's media type
	AsOf        int64
	// SHA256 is the plaintext's SHA-256, in hex (what sha256sum prints);
	// the audit event holds it as "sha256:" + SHA256.
	SHA256     string
	Rows       int64 // JSON Lines: lines; CSV: rows after the header
	Households int64
	AuditIndex int64 // the download's audit event

	b         *Broker
	plan      *extractPlan
	recipient string
	ev        audit.Event // the download's event, for the event of a cut stream
}

// extractPlan is what both passes of a download read.
type extractPlan struct {
	p        storage.ExtractProposal
	form     *form.Form
	classes  []form.Class
	geo      *area.Geography // the area tree in force at the proposal
	eas      map[string]bool // the EAs under the areas, in geo
	communes []string        // their communes
}

// DownloadExtract runs pass 1 of approved extract seq for c and records
// the download: c needs extract.download over the whole subtree of every
// area, and every class of the extract still allowed (with c's grants of
// now) and listed by the environment; the extract must be approved (409
// proposal_pending, or proposal_expired if it never was) and its
// environment in use (409 environment_retired). An approver, an admin or
// an auditor is refused (the policy denies them every extract action).
// When the extract's data keys were shredded it is Gone. An unknown seq
// is answered as one outside the caller's scope (unknownExtract).
//
// Pass 1 of a national extract may take long: at most one download per
// user is in its first pass at a time on this broker, and at most
// Opts.MaxExtractPreparing over all users; past either the download is
// refused RateLimited (429 rate_limited, Retry-After), audited, before
// anything is read. ctx is the client's: when it is cancelled (the
// client hung up) the first pass stops, and the download is audited as
// aborted; every other read and audit append of the request runs to its
// end regardless, so that it is decided and recorded whatever the client
// does. Nothing is released here: the returned download's Stream does
// that.
func (b *Broker) DownloadExtract(ctx context.Context, c *Caller, seq int64) (*ExtractDownload, error) {
	work, ctx := ctx, context.WithoutCancel(ctx)
	p, env, ev, err := b.authorizeExtract(ctx, c, policy.DownloadExtract, actionExtractDownload, seq,
		"not permitted to download extracts: a processor grant over the extract's areas is needed",
		"not permitted to download extract %d: extract.download over the whole subtree of every area it names is needed")
	if err != nil {
		return nil, err
	}
	areas := proposalCodes(p)
	refusal, rule, err := b.classRefusal(c, p.Classes, areas, env)
	if err != nil {
		return nil, err
	}
	if refusal != nil {
		ev.Decision, ev.Rule, ev.Outcome, ev.Reason = "deny", rule, "denied", refusal.Code
		return nil, b.refuse(ctx, ev, refusal)
	}
	now := b.now().UTC()
	conflict := func(code, msg string) (*ExtractDownload, error) {
		ev.Outcome, ev.Reason = "conflict", code
		return nil, b.refuse(ctx, ev, &Error{Kind: Conflict, Code: code, Msg: msg})
	}
	switch {
	case p.ApprovedBy == "" && now.Sub(p.ProposedAt) > ExtractLife:
		return conflict("proposal_expired", fmt.Sprintf("extract %d was never approved and has expired: propose it again", seq))
	case p.ApprovedBy == "":
		return conflict("proposal_pending", fmt.Sprintf("extract %d is not approved yet: an approver who is not its proposer must approve it first", seq))
	case env.RetiredBy != "":
		return conflict("environment_retired", fmt.Sprintf("environment %s is retired: nothing more is extracted for it", env.Name))
	}
	release, busy := b.extractSlots.take(c.User)
	if busy != nil {
		ev.Outcome, ev.Reason = "rate_limited", busy.Msg+"; nothing read"
		return nil, b.refuse(ctx, ev, busy)
	}
	defer release()
	plan, err := b.planExtract(ctx, p)
	if err != nil {
		return nil, err
	}

	// Pass 1: every row, serialized in memory into the digest and the
	// counts; nothing kept. It alone stops when the client hangs up.
	h := sha256.New()
	rows, households, err := b.writeExtract(work, plan, h)
	if err != nil {
		ev.Outcome = "error"
		var be *Error
		switch {
		case work.Err() != nil:
			ev.Outcome, ev.Reason = "aborted", "the client hung up during the first pass: nothing released"
			err = errorf(Unavailable, work.Err(), "the download was cancelled: nothing released")
		case KindOf(err) == Gone:
			ev.Outcome, ev.Reason = "gone", "gone: nothing released"
		case errors.As(err, &be):
			ev.Reason = be.ErrorCode() + ": nothing released"
		}
		if rerr := b.record(ctx, ev); rerr != nil {
			return nil, rerr
		}
		return nil, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	ev.Time, ev.Outcome, ev.ReleaseDigest = now, "ok", "sha256:"+sum
	ev.Reason = fmt.Sprintf("%d rows, %d households; %s, as of %d; encrypted to environment %s", rows, households, extractDescription(p), p.ProposalAudit, env.Name)
	actx, cancel := auditContext(ctx)
	defer cancel()
	var index int64
	err = b.store.Update(actx, func(tx storage.Tx) error {
		rec, err := appendEvent(tx, ev)
		index = rec.Index
		return err
	})
	if err != nil {
		b.auditFailures.Add(1)
		b.log.Error("failed to record an extract download", "extract", seq, "err", err)
		return nil, errorf(Unavailable, err, "the audit log could not be written; nothing was released, try again later")
	}
	ct := "application/x-ndjson"
	if p.Format == wire.ExtractCSV {
		ct = "text/csv; charset=utf-8"
	}
	return &ExtractDownload{Seq: seq, Environment: env.Name, Format: p.Format, ContentType: ct, AsOf: p.ProposalAudit,
		SHA256: sum, Rows: rows, Households: households, AuditIndex: index,
		b: b, plan: plan, recipient: env.Recipient, ev: *ev}, nil
}

// DefaultMaxExtractPreparing is how many extract downloads may be in
// their first pass at once on one broker unless Opts.MaxExtractPreparing
// says otherwise: the processing centre downloads an extract now and then,
// and each first pass of a national extract reads and decrypts every
// household.
const DefaultMaxExtractPreparing = 2

// extractRetryAfter is when a download refused for the cap may try
// again: a first pass takes minutes.
const extractRetryAfter = time.Minute

// extractSlots bounds the downloads in their first pass on this broker:
// one per user, max over all.
type extractSlots struct {
	mu    sync.Mutex
	max   int
	users map[UserID]bool
}

func newExtractSlots(maxPreparing int) (*extractSlots, error) {
	switch {
	case maxPreparing < 0:
		return nil, fmt.Errorf("extract downloads in preparation at once: %d is negative", maxPreparing)
	case maxPreparing == 0:
		maxPreparing = DefaultMaxExtractPreparing
	}
	return &extractSlots{max: maxPreparing, users: map[UserID]bool{}}, nil
}

// take takes u's slot and one of the broker's, or says why not
// (RateLimited); release gives them back.
func (s *extractSlots) take(u UserID) (release func(), refusal *Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.users[u]:
		return nil, &Error{Kind: RateLimited, RetryAfter: extractRetryAfter,
			Msg: "another download of yours is being prepared: one at a time per user; retry after the time in Retry-After"}
	case len(s.users) >= s.max:
		return nil, &Error{Kind: RateLimited, RetryAfter: extractRetryAfter,
			Msg: fmt.Sprintf("%d extract downloads are being prepared, the most this vault prepares at once; retry after the time in Retry-After", s.max)}
	}
	s.users[u] = true
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.users, u)
	}, nil
}

// ErrExtractCut is the error of a Stream cut short: the receiver holds an
// incomplete age file, which age refuses to decrypt to its end.
var ErrExtractCut = errors.New("extract stream cut")

// Stream runs pass 2: the same rows as pass 1, encrypted with age to the
// environment's recipient and written to w as they are made. If they do
// not reproduce pass 1's digest and counts, or anything fails on the
// way, the stream is cut before age's last chunk (an error wrapping
// ErrExtractCut), logged and audited (extract.download, outcome
// "aborted"); w then holds an incomplete age file.
func (d *ExtractDownload) Stream(ctx context.Context, w io.Writer) error {
	b := d.b
	out := &recordingWriter{w: w}
	enc, err := crypto.EncryptStream(out, d.recipient)
	if err != nil {
		return d.cut(ctx, "encryption failed", err)
	}
	h := sha256.New()
	rows, households, err := b.writeExtract(ctx, d.plan, io.MultiWriter(enc, h))
	switch {
	case err != nil && (out.err != nil || ctx.Err() != nil):
		return d.cut(ctx, "the receiver stopped reading", err)
	case err != nil:
		return d.cut(ctx, "the second pass failed ("+codeOf(err)+")", err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != d.SHA256 || rows != d.Rows || households != d.Households {
		return d.cut(ctx, fmt.Sprintf("the second pass did not reproduce the logged digest and counts (%d rows, %d households)", rows, households),
			fmt.Errorf("pass 2 gave sha256:%s", sum))
	}
	if err := enc.Close(); err != nil {
		return d.cut(ctx, "the receiver stopped reading", err)
	}
	return nil
}

// cut logs and audits a stream cut short and returns its error.
func (d *ExtractDownload) cut(ctx context.Context, why string, err error) error {
	d.b.log.Error("extract stream cut short: the receiver holds an incomplete age file", "extract", d.Seq, "why", why, "err", err)
	ev := d.ev
	ev.Time, ev.Outcome, ev.Index, ev.Nonce = d.b.now().UTC(), "aborted", 0, nil
	ev.Reason = fmt.Sprintf("stream of the download at audit index %d cut: %s; the receiver holds an incomplete age file", d.AuditIndex, why)
	d.b.record(ctx, &ev)
	return fmt.Errorf("%w: %s: %w", ErrExtractCut, why, err)
}

// codeOf is err's machine code, for a reason.
func codeOf(err error) string {
	var be *Error
	if errors.As(err, &be) {
		return be.ErrorCode()
	}
	return "internal"
}

// recordingWriter remembers the first error of w.
type recordingWriter struct {
	w   io.Writer
	err error
}

func (r *recordingWriter) Write(p []byte) (int, error) {
	n, err := r.w.Write(p)
	if err != nil && r.err == nil {
		r.err = err
	}
	return n, err
}

// planExtract resolves a proposal's form, classes, EAs and communes. The
// EAs are those of the area tree in force at the proposal, its as-of
// (areas.go: a later revision changes nothing an extract holds).
func (b *Broker) planExtract(ctx context.Context, p *storage.ExtractProposal) (*extractPlan, error) {
	f, ok := b.forms.Get(p.Form, p.FormVersion)
	if !ok {
		return nil, errorf(Internal, nil, "extract %d uses form %s v%d, which this vault no longer has", p.Seq, p.Form, p.FormVersion)
	}
	plan := &extractPlan{p: *p, form: f, eas: map[string]bool{}}
	for _, ec := range extractClasses {
		if slices.Contains(p.Classes, string(ec.class)) {
			plan.classes = append(plan.classes, ec.class)
		}
	}
	g, err := b.GeographyAt(ctx, p.ProposalAudit)
	if err != nil {
		return nil, err
	}
	plan.geo = g
	seen := map[string]bool{}
	for _, a := range p.Areas {
		g.Tree().Walk(AreaCode(a), -1, func(x area.Area, _ int) bool {
			if x.Level != area.EA {
				return true
			}
			plan.eas[string(x.Code)] = true
			if com, ok := g.Tree().Ancestor(x.Code, area.Commune); ok && !seen[string(com)] {
				seen[string(com)] = true
				plan.communes = append(plan.communes, string(com))
			}
			return true
		})
	}
	return plan, nil
}

// writeExtract writes the extract of plan to w, row by row, and returns
// how many rows and households it wrote. Submissions sharing an audit
// index are written in id order, so that the bytes do not depend on the
// store's order of ties.
func (b *Broker) writeExtract(ctx context.Context, plan *extractPlan, w io.Writer) (rows, households int64, err error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	ew := newExtractEncoder(plan, bw)
	if err := ew.header(); err != nil {
		return 0, 0, err
	}
	classes := make([]string, len(plan.classes))
	for i, c := range plan.classes {
		classes[i] = string(c)
	}
	f := storage.ExtractFilter{Communes: plan.communes, Form: plan.p.Form, FormVersion: plan.p.FormVersion, AsOf: plan.p.ProposalAudit, Classes: classes}
	if f.Communes == nil {
		f.Communes = []string{}
	}
	var group []storage.Submission
	var failed error // a broker error, not the store's
	flush := func(tx storage.ReadTx, keys map[crypto.DataKeyID]bool) error {
		slices.SortFunc(group, func(x, y storage.Submission) int { return cmp.Compare(x.ID, y.ID) })
		for i := range group {
			n, err := b.extractRow(ctx, tx, keys, plan, &group[i], ew)
			if err != nil {
				failed = err
				return err
			}
			rows += n
			households++
		}
		group = group[:0]
		return nil
	}
	err = b.store.View(ctx, func(tx storage.ReadTx) error {
		// The data keys checked in this pass: a shredded one is Gone,
		// whatever this instance still caches.
		keys := map[crypto.DataKeyID]bool{}
		err := tx.ExtractSubmissions(f, func(s storage.Submission) (bool, error) {
			if !plan.eas[submissionEA(plan.geo, s.Area, s.HouseholdNo)] {
				return true, nil
			}
			if len(group) > 0 && group[0].AuditIndex != s.AuditIndex {
				if err := flush(tx, keys); err != nil {
					return false, err
				}
			}
			group = append(group, s)
			return true, ctx.Err()
		})
		if err != nil {
			return err
		}
		return flush(tx, keys)
	})
	if failed != nil {
		return 0, 0, failed
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return 0, 0, errorf(Unavailable, err, "the extract could not be read or written; nothing was released")
	}
	return rows, households, nil
}

// extractRow opens the classes of one submission (checking, in tx, that
// their data keys live) and writes its rows.
func (b *Broker) extractRow(ctx context.Context, tx storage.ReadTx, keys map[crypto.DataKeyID]bool, plan *extractPlan, s *storage.Submission, ew *extractEncoder) (int64, error) {
	parts := map[form.Class][]byte{}
	defer func() {
		for cl, p := range parts {
			if cl != form.Operational {
				clear(p)
			}
		}
	}()
	for _, cl := range plan.classes {
		if cl == form.Operational {
			if len(s.Operational) > 0 {
				parts[cl] = s.Operational
			}
			continue
		}
		plain, err := b.openPartIn(ctx, tx, keys, s, crypto.Class(cl))
		if err != nil {
			return 0, err
		}
		parts[cl] = plain
	}
	var hh map[string]form.Value
	var persons []map[string]form.Value
	if len(parts) > 0 {
		var err error
		if hh, persons, err = plan.form.Join(parts); err != nil {
			b.log.Error("stored submission fields do not decode", "submission", s.ID, "err", err)
			return 0, &Error{Kind: Internal, Code: "submission_corrupt", Err: err,
				Msg: "a stored submission of the extract fails its integrity check; the vault operator must repair it"}
		}
	}
	return ew.row(s, hh, persons)
}

// openPartIn opens one sealed class of s, loading its data key from tx
// if needed; a key shredded (as tx says, whatever this instance caches)
// is Gone.
func (b *Broker) openPartIn(ctx context.Context, tx storage.ReadTx, keys map[crypto.DataKeyID]bool, s *storage.Submission, class crypto.Class) ([]byte, error) {
	i := slices.IndexFunc(s.Sealed, func(p storage.Sealed) bool { return p.Class == string(class) })
	if i < 0 {
		return nil, &Error{Kind: Internal, Code: "submission_corrupt", Err: fmt.Errorf("submission %s has no %s part", s.ID, class),
			Msg: "a stored submission of the extract fails its integrity check; the vault operator must repair it"}
	}
	p := s.Sealed[i]
	kid := crypto.DataKeyID{Class: class, Commune: s.Commune, Version: p.KeyVersion}
	if !keys[kid] {
		k, err := tx.DataKey(string(class), s.Commune, p.KeyVersion)
		if err != nil {
			return nil, errorf(Unavailable, err, "failed to read a data key")
		}
		if !k.ShreddedAt.IsZero() {
			return nil, &Error{Kind: Gone, Code: "gone",
				Msg: fmt.Sprintf("the %s fields of commune %s were shredded on %s: this extract can no longer be made", class, s.Commune, k.ShreddedAt.Format(time.DateOnly))}
		}
		if !b.keyring.Loaded(kid) {
			if err := b.keyring.LoadDataKeys(ctx, []crypto.DataKeyID{kid}, [][]byte{k.Wrapped}); err != nil {
				return nil, errorf(Unavailable, err, "the key provider could not unwrap a data key")
			}
		}
		keys[kid] = true
	}
	ad := crypto.AD{Submission: s.ID, Form: s.Form, FormVersion: s.FormVersion, Area: s.Area, HouseholdNo: s.HouseholdNo}
	plain, err := b.keyring.Open(kid, p.Data, ad)
	if errors.Is(err, crypto.ErrKeyNotLoaded) {
		// Evicted from the cache meanwhile: load it again, once.
		if err := b.loadDEK(ctx, kid); err != nil {
			return nil, err
		}
		plain, err = b.keyring.Open(kid, p.Data, ad)
	}
	if errors.Is(err, crypto.ErrDecrypt) {
		b.log.Error("stored submission fields do not authenticate", "submission", s.ID, "class", string(class), "err", err)
		return nil, &Error{Kind: Internal, Code: "submission_corrupt", Err: err,
			Msg: "a stored submission of the extract fails its integrity check; the vault operator must repair it"}
	}
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to open the %s fields; try again later", class)
	}
	return plain, nil
}

// extractEncoder serializes an extract's rows: deterministic, so that two
// passes, and two downloads, give the same bytes.
type extractEncoder struct {
	plan     *extractPlan
	w        *bufio.Writer
	csv      *csv.Writer
	hhFields []form.Field // the household fields of the extract's classes, in form order
	pFields  []form.Field
	buf      bytes.Buffer
	cells    []string
}

func newExtractEncoder(plan *extractPlan, w *bufio.Writer) *extractEncoder {
	e := &extractEncoder{plan: plan, w: w}
	keep := func(list []form.Field) []form.Field {
		var out []form.Field
		for _, fd := range list {
			if slices.Contains(plan.classes, fd.Class) {
				out = append(out, fd)
			}
		}
		return out
	}
	e.hhFields, e.pFields = keep(plan.form.Household), keep(plan.form.Person)
	if plan.p.Format == wire.ExtractCSV {
		e.csv = csv.NewWriter(w)
	}
	return e
}

// extractMeta are the columns every row starts with.
var extractMeta = []string{"id", "ea", "household_no", "form", "form_version"}

// header writes the CSV header (JSON Lines has none).
func (e *extractEncoder) header() error {
	if e.csv == nil {
		return nil
	}
	cols := slices.Clone(extractMeta)
	for _, fd := range e.hhFields {
		cols = append(cols, fd.Name)
	}
	cols = append(cols, "person_no")
	for _, fd := range e.pFields {
		cols = append(cols, fd.Name)
	}
	return e.writeCSV(cols)
}

func (e *extractEncoder) writeCSV(cells []string) error {
	if err := e.csv.Write(cells); err != nil {
		return err
	}
	e.csv.Flush()
	return e.csv.Error()
}

// row writes one household and returns how many rows that made.
func (e *extractEncoder) row(s *storage.Submission, hh map[string]form.Value, persons []map[string]form.Value) (int64, error) {
	if e.csv != nil {
		return e.csvRows(s, hh, persons)
	}
	b := &e.buf
	b.Reset()
	b.WriteString(`{"id":`)
	writeJSONString(b, s.ID)
	b.WriteString(`,"ea":`)
	writeJSONString(b, s.Area)
	b.WriteString(`,"household_no":`)
	b.WriteString(strconv.FormatInt(s.HouseholdNo, 10))
	b.WriteString(`,"form":`)
	writeJSONString(b, s.Form)
	b.WriteString(`,"form_version":`)
	b.WriteString(strconv.Itoa(s.FormVersion))
	writeFields(b, e.hhFields, hh, true)
	b.WriteString(`,"persons":[`)
	for i, p := range persons {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		writeFields(b, e.pFields, p, false)
		b.WriteByte('}')
	}
	b.WriteString("]}\n")
	_, err := e.w.Write(b.Bytes())
	clear(b.Bytes())
	return 1, err
}

// writeFields writes the present values of fields as JSON members, each
// after a comma if comma (else the first without one).
func writeFields(b *bytes.Buffer, fields []form.Field, m map[string]form.Value, comma bool) {
	for _, fd := range fields {
		v, ok := m[fd.Name]
		if !ok || v.IsZero() {
			continue
		}
		if comma {
			b.WriteByte(',')
		}
		comma = true
		writeJSONString(b, fd.Name)
		b.WriteByte(':')
		b.Write(v.Raw())
	}
}

// writeJSONString writes s as a JSON string, without HTML escaping.
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)           // a string always encodes
	b.Truncate(b.Len() - 1) // Encode's newline
}

// cellOf is a value as a CSV cell: a string's text, a number's literal,
// "" for none.
func cellOf(v form.Value) string {
	if v.IsZero() {
		return ""
	}
	if s, ok := v.Text(); ok {
		return s
	}
	return string(v.Raw())
}

func (e *extractEncoder) csvRows(s *storage.Submission, hh map[string]form.Value, persons []map[string]form.Value) (int64, error) {
	cells := e.cells[:0]
	cells = append(cells, s.ID, s.Area, strconv.FormatInt(s.HouseholdNo, 10), s.Form, strconv.Itoa(s.FormVersion))
	for _, fd := range e.hhFields {
		cells = append(cells, cellOf(hh[fd.Name]))
	}
	base := len(cells)
	defer func() { clear(cells); e.cells = cells[:0] }()
	if len(persons) == 0 {
		// Only classes without person fields (an empty operational
		// part): the household alone, no person.
		cells = append(cells, "")
		for range e.pFields {
			cells = append(cells, "")
		}
		return 1, e.writeCSV(cells)
	}
	for i, p := range persons {
		cells = append(cells[:base], strconv.Itoa(i+1))
		for _, fd := range e.pFields {
			cells = append(cells, cellOf(p[fd.Name]))
		}
		if err := e.writeCSV(cells); err != nil {
			return 0, err
		}
	}
	return int64(len(persons)), nil
}
