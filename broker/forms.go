package broker

// The form registry (issue 14): the forms built into the binary
// (form.Embedded) and those an administrator added (stored, schema 11).
// A deposit is validated and sealed by the definition of the version it
// names, and its audit event carries that definition's SHA-256. A stored
// version may be replaced only while no submission uses it; a built-in
// one never. The store's triggers hold the first rule against every code
// path, and a deposit checks, in its own transaction, that the definition
// it sealed by is still the one stored, so a replacement racing it on
// another instance cannot leave a submission sealed by classes the
// registry no longer says.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// Wire types of the form registry.
type (
	FormInfo       = wire.Form
	FormList       = wire.FormList
	FormDefinition = wire.FormDefinition
	FormAdded      = wire.FormAdded
)

// Audit actions of the form registry.
const (
	actionFormList    = "form.list"
	actionFormShow    = "form.show"
	actionFormAdd     = string(policy.AddForm)
	actionFormReplace = "form.replace"
)

// MaxFormFile is the largest form definition file AddForm reads: an
// XLSForm workbook (form.MaxXLSFormBytes) or its JSON.
const MaxFormFile = form.MaxXLSFormBytes

// readFormRule is the rule of a form read: any authenticated user may
// read them, since a device needs the definition and schema of the form
// it fills in, and a definition holds no census data.
const readFormRule = "forms are read by any authenticated user"

// knownForm is one form version of the registry.
type knownForm struct {
	form    *form.Form
	def     []byte // canonical definition
	sha     string // hex SHA-256 of def
	builtin bool
	addedAt time.Time
	addedBy string
}

type formKey struct {
	name    string
	version int
}

// formSet is the form registry of one broker. The built-in forms never
// change; the stored ones are read at New and again whenever a form is
// asked for that memory lacks (another instance may have added it), at
// each listing, when the store announces a change (TopicForms) and on
// Run's ticks.
type formSet struct {
	store   storage.Store
	log     *slog.Logger
	builtin map[formKey]*knownForm
	mu      sync.RWMutex
	stored  map[formKey]*knownForm
}

// newFormSet makes the registry of the built-in forms and reads the
// stored ones.
func newFormSet(ctx context.Context, st storage.Store, log *slog.Logger, builtin []*form.Form) (*formSet, error) {
	fs := &formSet{store: st, log: log, builtin: map[formKey]*knownForm{}, stored: map[formKey]*knownForm{}}
	for _, f := range builtin {
		if f == nil {
			return nil, errors.New("a built-in form is nil")
		}
		def, sha, err := f.Digest()
		if err != nil {
			return nil, err
		}
		k := formKey{f.Name, f.Version}
		if fs.builtin[k] != nil {
			return nil, fmt.Errorf("form %s version %d is built in twice", f.Name, f.Version)
		}
		fs.builtin[k] = &knownForm{form: f, def: def, sha: sha, builtin: true}
	}
	if err := fs.refresh(ctx); err != nil {
		return nil, err
	}
	return fs, nil
}

// fromStored makes the registry entry of a stored form, reusing prev
// when it is the same definition. A stored version of a built-in form
// (a binary that built in a form an administrator had added) must be the
// same definition: otherwise submissions stored under one would be read
// by the other.
func (fs *formSet) fromStored(r *storage.Form, prev *knownForm) (*knownForm, error) {
	k := formKey{r.Name, r.Version}
	if bf := fs.builtin[k]; bf != nil {
		if bf.sha != r.SHA256 {
			return nil, fmt.Errorf("form %s version %d is built into this binary and stored with another definition (sha256 %s, built in %s): "+
				"submissions under one would be read by the other; run the binary the vault was made with", r.Name, r.Version, r.SHA256, bf.sha)
		}
		return bf, nil
	}
	if prev != nil && prev.sha == r.SHA256 {
		return prev, nil
	}
	f, err := form.Parse(r.Definition)
	if err != nil {
		return nil, fmt.Errorf("stored form %s version %d does not parse: %w", r.Name, r.Version, err)
	}
	if f.Name != r.Name || f.Version != r.Version {
		return nil, fmt.Errorf("stored form %s version %d holds the definition of %s version %d", r.Name, r.Version, f.Name, f.Version)
	}
	return &knownForm{form: f, def: r.Definition, sha: r.SHA256, addedAt: r.AddedAt, addedBy: r.AddedBy}, nil
}

// refresh reads every stored form again. A stored form that cannot be
// used is left out and logged (a deposit under it is then refused as an
// unknown form), except a built-in one stored with another definition,
// which is an error: New refuses to start on it.
func (fs *formSet) refresh(ctx context.Context) error {
	var rows []storage.Form
	if err := fs.store.View(ctx, func(tx storage.ReadTx) error {
		rows = rows[:0]
		return tx.Forms(func(f storage.Form) (bool, error) {
			rows = append(rows, f)
			return true, nil
		})
	}); err != nil {
		return fmt.Errorf("failed to read the stored forms: %w", err)
	}
	fs.mu.RLock()
	old := fs.stored
	fs.mu.RUnlock()
	next := make(map[formKey]*knownForm, len(rows))
	for i := range rows {
		k := formKey{rows[i].Name, rows[i].Version}
		kf, err := fs.fromStored(&rows[i], old[k])
		if err != nil {
			if fs.builtin[k] != nil {
				return err
			}
			fs.log.Error("a stored form is left out of the registry", "form", rows[i].Name, "version", rows[i].Version, "err", err)
			continue
		}
		if !kf.builtin {
			next[k] = kf
		}
	}
	fs.mu.Lock()
	fs.stored = next
	fs.mu.Unlock()
	return nil
}

// known returns the version in memory, or nil.
func (fs *formSet) known(name string, version int) *knownForm {
	k := formKey{name, version}
	if kf := fs.builtin[k]; kf != nil {
		return kf
	}
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	return fs.stored[k]
}

// lookup returns a version of the registry, reading the store for one
// memory lacks (another instance may have added it): one indexed read,
// and nothing more for a version nobody stored. nil, nil: no such form.
func (fs *formSet) lookup(ctx context.Context, name string, version int) (*knownForm, error) {
	if kf := fs.known(name, version); kf != nil {
		return kf, nil
	}
	var row *storage.Form
	err := fs.store.View(ctx, func(tx storage.ReadTx) error {
		row = nil
		if _, err := tx.FormSHA256(name, version); err != nil {
			return err
		}
		var err error
		row, err = tx.Form(name, version)
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	kf, err := fs.fromStored(row, nil)
	if err != nil {
		fs.log.Error("a stored form is left out of the registry", "form", name, "version", version, "err", err)
		return nil, nil
	}
	fs.put(kf)
	return kf, nil
}

// put installs a stored version (added or read here).
func (fs *formSet) put(kf *knownForm) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	next := make(map[formKey]*knownForm, len(fs.stored)+1)
	for k, v := range fs.stored {
		next[k] = v
	}
	next[formKey{kf.form.Name, kf.form.Version}] = kf
	fs.stored = next
}

// formLookupTimeout bounds the store read of Get, whose callers have no
// context to give.
const formLookupTimeout = 10 * time.Second

// Get returns the form of this name and version, reading the store if
// memory lacks it; false if there is none (or the store cannot say).
func (fs *formSet) Get(name string, version int) (*form.Form, bool) {
	if kf := fs.known(name, version); kf != nil {
		return kf.form, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), formLookupTimeout)
	defer cancel()
	kf, err := fs.lookup(ctx, name, version)
	if err != nil || kf == nil {
		return nil, false
	}
	return kf.form, true
}

// Latest returns the newest version of the form named name in memory,
// and false if there is none.
func (fs *formSet) Latest(name string) (*form.Form, bool) {
	var best *knownForm
	for _, kf := range fs.all() {
		if kf.form.Name == name && (best == nil || kf.form.Version > best.form.Version) {
			best = kf
		}
	}
	if best == nil {
		return nil, false
	}
	return best.form, true
}

// all returns the registry in (name, version) order.
func (fs *formSet) all() []*knownForm {
	fs.mu.RLock()
	out := make([]*knownForm, 0, len(fs.builtin)+len(fs.stored))
	for _, kf := range fs.stored {
		out = append(out, kf)
	}
	fs.mu.RUnlock()
	for _, kf := range fs.builtin {
		out = append(out, kf)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].form, out[j].form
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Version < b.Version
	})
	return out
}

// errFormChanged is a deposit whose form version was replaced (on
// another instance) after this one read it and before its transaction:
// nothing is stored, and the registry is read again.
var errFormChanged = errors.New("the form version was replaced while the submission was being stored")

// checkSealedBy is what a deposit's transaction checks before it stores
// a submission sealed by the version of sha: for a stored version, that
// it is still the one stored (writers are serialized, so no replacement
// can commit between this read and the deposit's commit, and once the
// deposit commits the version is in use and never changes). A built-in
// version never changes.
func (fs *formSet) checkSealedBy(tx storage.ReadTx, name string, version int, sha string) error {
	if fs.builtin[formKey{name, version}] != nil {
		return nil
	}
	cur, err := tx.FormSHA256(name, version)
	if errors.Is(err, storage.ErrNotFound) || err == nil && cur != sha {
		return errFormChanged
	}
	return err
}

// formChanged is the answer to a deposit that met errFormChanged: a
// temporary refusal (the device sends it again, and it is then validated
// by the definition in force), after reading the registry again.
func (b *Broker) formChanged(ctx context.Context, name string, version int) *Error {
	if err := b.forms.refresh(ctx); err != nil {
		b.log.Warn("failed to read the forms again", "err", err)
	}
	return &Error{Kind: Unavailable, Code: "form_changed", Err: errFormChanged,
		Msg: fmt.Sprintf("form %s version %d was replaced while this submission was being stored; nothing was stored: send it again", name, version)}
}

// formInfo is a registry entry as the wire shows it.
func formInfo(kf *knownForm, inUse bool) FormInfo {
	return FormInfo{Name: kf.form.Name, Version: kf.form.Version, Title: kf.form.Title, SHA256: kf.sha,
		Builtin: kf.builtin, AddedAt: kf.addedAt, AddedBy: kf.addedBy, InUse: inUse}
}

// FormList lists the registry with, for each version, whether a
// submission uses it, for the host operator (not audited, as no read of
// the host operator's is).
func (b *Broker) FormList(ctx context.Context) (*FormList, error) {
	if err := b.forms.refresh(ctx); err != nil {
		return nil, errorf(Unavailable, err, "failed to read the forms")
	}
	all := b.forms.all()
	used := make([]bool, len(all))
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		for i, kf := range all {
			var err error
			if used[i], err = tx.FormInUse(kf.form.Name, kf.form.Version); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read which forms are in use")
	}
	out := &FormList{Forms: make([]FormInfo, 0, len(all))}
	for i, kf := range all {
		out.Forms = append(out.Forms, formInfo(kf, used[i]))
	}
	return out, nil
}

// FormsFor is FormList for an authenticated caller (any: readFormRule),
// audited.
func (b *Broker) FormsFor(ctx context.Context, c *Caller) (*FormList, error) {
	ev := b.event(c, actionFormList, policy.Decision{Allow: true, Rule: readFormRule})
	ev.Area = string(b.tree.Root())
	out, err := b.FormList(ctx)
	if err != nil {
		return nil, err
	}
	ev.Outcome, ev.Reason = "ok", fmt.Sprintf("%d forms", len(out.Forms))
	if err := b.record(ctx, ev); err != nil {
		return nil, err
	}
	return out, nil
}

// Form returns one version of the registry with its canonical definition
// and the JSON Schema of a submission made with it, for the host
// operator. NotFound (no_such_form) if the registry has no such version.
func (b *Broker) Form(ctx context.Context, name string, version int) (*FormDefinition, error) {
	kf, err := b.forms.lookup(ctx, name, version)
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read the forms")
	}
	if kf == nil {
		return nil, noSuchForm(name, version)
	}
	schema, err := kf.form.JSONSchema()
	if err != nil {
		return nil, errorf(Internal, err, "failed to make the JSON Schema of form %s version %d", name, version)
	}
	var used bool
	if err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		used, err = tx.FormInUse(name, version)
		return err
	}); err != nil {
		return nil, errorf(Unavailable, err, "failed to read whether the form is in use")
	}
	return &FormDefinition{Form: formInfo(kf, used), Definition: slices.Clone(kf.def), Schema: schema}, nil
}

func noSuchForm(name string, version int) *Error {
	return &Error{Kind: NotFound, Code: "no_such_form",
		Msg: fmt.Sprintf("no form %s version %d (`censusvault form list` or GET /v1/forms lists them)", clip(name), version)}
}

// FormFor is Form for an authenticated caller (any: readFormRule),
// audited: the event names the form and carries its SHA-256.
func (b *Broker) FormFor(ctx context.Context, c *Caller, name string, version int) (*FormDefinition, error) {
	ev := b.event(c, actionFormShow, policy.Decision{Allow: true, Rule: readFormRule})
	ev.Area, ev.Resources = string(b.tree.Root()), []string{formResource(name, version)}
	out, err := b.Form(ctx, name, version)
	var e *Error
	if errors.As(err, &e) && e.Kind == NotFound {
		ev.Outcome, ev.Reason = "refused", "no such form"
		return nil, b.refuse(ctx, ev, e)
	}
	if err != nil {
		return nil, err
	}
	ev.Outcome, ev.FormSHA256 = "ok", out.SHA256
	if err := b.record(ctx, ev); err != nil {
		return nil, err
	}
	return out, nil
}

// formResource names a form version in audit events.
func formResource(name string, version int) string {
	return fmt.Sprintf("form:%s/%d", eventText(name), version)
}

// MayAddForms refuses, and audits, a caller who may not add forms
// (form.add over the whole area tree). The HTTP API asks it before it
// reads the body, which may be a 10 MB workbook; AddForm decides again.
func (b *Broker) MayAddForms(ctx context.Context, c *Caller) error {
	_, err := b.authorizeAt(ctx, APIOperator(c), policy.AddForm, actionFormAdd, b.tree.Root(), nil)
	return err
}

// AddForm adds a form version to the registry from a definition file
// (an XLSForm workbook or its JSON, told apart by their bytes; file names
// it in errors). op is the host operator or an API caller allowed
// form.add over the whole area tree. The same definition again changes
// nothing (outcome "unchanged"; the host operator's adds no event, an API
// caller's is recorded as a request that changed nothing). Another
// definition of a stored version no submission uses replaces it (audited
// as form.replace, naming the definition replaced). Refused: a definition
// that does not parse (400 form_invalid), a built-in version (409
// form_builtin), a version a submission uses (409 form_version_in_use),
// whether the check here or the store's finds it.
func (b *Broker) AddForm(ctx context.Context, op Operator, file string, body []byte) (*FormAdded, error) {
	ev, err := b.authorizeAt(ctx, op, policy.AddForm, actionFormAdd, b.tree.Root(), nil)
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > MaxFormFile {
		return nil, b.refused(ctx, op, ev, &Error{Kind: TooLarge, Code: "too_large",
			Msg: fmt.Sprintf("the form definition is over %d bytes", MaxFormFile)})
	}
	f, err := form.ReadDefinition(file, body)
	if err != nil {
		return nil, b.refused(ctx, op, ev, &Error{Kind: Invalid, Code: "form_invalid",
			Msg: "the form definition is not valid: " + err.Error()})
	}
	def, sha, err := f.Digest()
	if err != nil {
		return nil, b.refused(ctx, op, ev, &Error{Kind: Invalid, Code: "form_invalid", Msg: "the form definition is not valid: " + err.Error()})
	}
	ev.Resources, ev.FormSHA256 = []string{formResource(f.Name, f.Version)}, sha
	if bf := b.forms.builtin[formKey{f.Name, f.Version}]; bf != nil {
		if bf.sha == sha {
			var used bool
			if err := b.store.View(ctx, func(tx storage.ReadTx) error {
				var err error
				used, err = tx.FormInUse(f.Name, f.Version)
				return err
			}); err != nil {
				return nil, errorf(Unavailable, err, "failed to read whether the form is in use")
			}
			return b.formUnchanged(ctx, op, ev, &FormAdded{Form: formInfo(bf, used), Outcome: wire.FormAddedUnchanged})
		}
		return nil, b.refused(ctx, op, ev, &Error{Kind: Conflict, Code: "form_builtin",
			Msg: fmt.Sprintf("form %s version %d is built into the vault and is never replaced: give your definition another version number", f.Name, f.Version)})
	}
	reclassified := b.reclassified(f)
	now := b.now().UTC()
	kf := &knownForm{form: f, def: def, sha: sha, addedAt: now, addedBy: ev.Actor}
	var (
		out     *FormAdded
		refusal *Error
	)
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		out, refusal = nil, nil
		prev, err := tx.Form(f.Name, f.Version)
		switch {
		case err == nil && prev.SHA256 == sha:
			out = &FormAdded{Form: formInfo(&knownForm{form: f, sha: sha, addedAt: prev.AddedAt, addedBy: prev.AddedBy}, false), Outcome: wire.FormAddedUnchanged}
			out.InUse, err = tx.FormInUse(f.Name, f.Version)
			return err
		case err == nil:
			ev.Action = actionFormReplace
			ev.Reason = "replaces the definition sha256 " + prev.SHA256
		case errors.Is(err, storage.ErrNotFound):
			ev.Reason = "a new version"
		default:
			return err
		}
		used, err := tx.FormInUse(f.Name, f.Version)
		if err != nil {
			return err
		}
		if used {
			refusal = formInUse(f.Name, f.Version)
			return nil
		}
		if len(reclassified) > 0 {
			ev.Reason += "; classes changed from the previous version: " + joinMax(reclassified, 20)
		}
		ev.Time, ev.Outcome = now, "ok"
		rec, err := appendEvent(tx, ev)
		if err != nil {
			return err
		}
		if err := tx.PutForm(&storage.Form{Name: f.Name, Version: f.Version, SHA256: sha, Definition: def,
			AddedAt: now, AddedBy: ev.Actor, AuditIndex: rec.Index}); err != nil {
			return err
		}
		out = &FormAdded{Form: formInfo(kf, false), Outcome: wire.FormAddedNew, Reclassified: reclassified}
		if prev != nil {
			out.Outcome, out.Previous = wire.FormAddedReplaced, prev.SHA256
		}
		out.AuditIndex = &rec.Index
		return nil
	})
	switch {
	case errors.Is(err, storage.ErrFormInUse):
		refusal = formInUse(f.Name, f.Version)
	case err != nil:
		b.auditFailures.Add(1)
		return nil, errorf(Unavailable, err, "the form could not be stored; nothing changed")
	}
	if refusal != nil {
		return nil, b.refused(ctx, op, ev, refusal)
	}
	if out.Outcome == wire.FormAddedUnchanged {
		return b.formUnchanged(ctx, op, ev, out)
	}
	b.forms.put(kf)
	return out, nil
}

// formInUse is the refusal of a change to a version a submission uses.
func formInUse(name string, version int) *Error {
	return &Error{Kind: Conflict, Code: "form_version_in_use",
		Msg: fmt.Sprintf("form %s version %d is in use: submissions were sealed by its definition, which therefore never changes; "+
			"give your definition a new version number (devices then fill in the new version)", name, version)}
}

// formUnchanged answers the same definition added again (a): nothing
// changes; an API caller's request is recorded (every request is), the
// host operator's is not.
func (b *Broker) formUnchanged(ctx context.Context, op Operator, ev *audit.Event, a *FormAdded) (*FormAdded, error) {
	if !op.host() {
		ev.Action, ev.Outcome, ev.Reason = actionFormAdd, "unchanged", "the same definition is in the registry already"
		if err := b.record(ctx, ev); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// reclassified lists, as "household.name identifying→analytic", the
// fields whose class f changes from the newest earlier version of its
// form in the registry, and the fields it adds ("+household.name
// analytic"): what an auditor must see of a new version, since the class
// decides who may ever see a field again.
func (b *Broker) reclassified(f *form.Form) []string {
	var prev *form.Form
	for _, kf := range b.forms.all() {
		if kf.form.Name == f.Name && kf.form.Version < f.Version {
			prev = kf.form
		}
	}
	if prev == nil {
		return nil
	}
	var out []string
	for _, list := range []struct {
		name      string
		old, next []form.Field
	}{{"household", prev.Household, f.Household}, {"person", prev.Person, f.Person}} {
		classes := map[string]form.Class{}
		for _, fd := range list.old {
			classes[fd.Name] = fd.Class
		}
		for _, fd := range list.next {
			was, ok := classes[fd.Name]
			switch {
			case !ok:
				out = append(out, fmt.Sprintf("+%s.%s %s", list.name, fd.Name, fd.Class))
			case was != fd.Class:
				out = append(out, fmt.Sprintf("%s.%s %s→%s", list.name, fd.Name, was, fd.Class))
			}
		}
	}
	return out
}

// UnsupportedFormType records a form addition refused before it reached
// AddForm because its body is neither of the types a definition comes
// in, and returns its error (400 unsupported_media_type).
func (b *Broker) UnsupportedFormType(ctx context.Context, c *Caller, msg string) error {
	ev := b.event(c, actionFormAdd, policy.Decision{})
	ev.Outcome, ev.Reason = "invalid", msg
	return b.refuse(ctx, ev, &Error{Kind: Invalid, Code: "unsupported_media_type", Msg: msg})
}
