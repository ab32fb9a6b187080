package broker

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// Receipt is the vault's signed acknowledgement of a deposit (a wire
// type: the device SDK shares it).
type Receipt = wire.Receipt

// ReceiptNoteHeader is the first line of a receipt's signed note.
const ReceiptNoteHeader = wire.ReceiptNoteHeader

// ReceiptText is the text a receipt's note signs.
func ReceiptText(r *Receipt) string { return wire.ReceiptText(r) }

// DepositResult is a receipt and whether this request stored it (false:
// the same submission was already stored, and this is its receipt).
type DepositResult struct {
	Receipt *Receipt
	Created bool
}

// Deposit takes one encrypted submission. The order of checks is fixed:
// may the caller deposit at all → size → decrypt → authorize for the
// submission's EA → validate → seal → store with its audit event and
// receipt in one transaction. contentLength is the declared size (-1 if
// unknown); body is read only after the first two checks pass.
func (b *Broker) Deposit(ctx context.Context, c *Caller, contentLength int64, body io.Reader) (*DepositResult, error) {
	action := string(policy.Deposit)
	d0 := b.anyGrantAllows(ctx, c, policy.Deposit)
	if !d0.Allow {
		ev := b.event(c, action, d0)
		ev.Outcome = "denied"
		return nil, b.refuse(ctx, ev, errorf(Permission, nil, "not permitted to deposit submissions"))
	}
	tooLarge := func() error {
		ev := b.event(c, action, d0)
		ev.Outcome = "too_large"
		ev.Reason = fmt.Sprintf("body over %d bytes", b.maxBody)
		return b.refuse(ctx, ev, errorf(TooLarge, nil, "submission body over %d bytes", b.maxBody))
	}
	if contentLength > b.maxBody {
		return nil, tooLarge()
	}
	ct, err := io.ReadAll(io.LimitReader(body, b.maxBody+1))
	if err != nil {
		ev := b.event(c, action, d0)
		ev.Outcome = "invalid"
		ev.Reason = "failed to read body"
		return nil, b.refuse(ctx, ev, errorf(Invalid, err, "failed to read the request body"))
	}
	if int64(len(ct)) > b.maxBody {
		return nil, tooLarge()
	}
	plain, err := crypto.OpenSubmission(ct, b.activeIngest(), form.MaxBody)
	if errors.Is(err, crypto.ErrTooLarge) {
		return nil, tooLarge()
	}
	if err != nil {
		return nil, b.refuseInvalid(ctx, b.event(c, action, d0),
			"body is not an age file encrypted to a current ingest recipient (GET /v1/ingest/recipient)", nil, err)
	}
	newEvent := func(d policy.Decision) *audit.Event { return b.event(c, action, d) }
	authorize := func(ea AreaCode) (policy.Decision, error) {
		return b.engineFor(c).Allow(ctx, c.subject(), policy.Deposit, policy.Resource{Path: b.tree.PathStrings(ea)})
	}
	return b.depositPlain(ctx, c, plain, d0, newEvent, authorize)
}

// refuseInvalid records and returns the refusal of an invalid submission.
func (b *Broker) refuseInvalid(ctx context.Context, ev *audit.Event, msg string, problems []string, err error) error {
	ev.Outcome = "invalid"
	ev.Reason = msg
	if len(problems) > 0 {
		ev.Reason += ": " + joinProblems(problems)
	}
	e := errorf(Invalid, err, "%s", msg)
	e.Problems = problems
	return b.refuse(ctx, ev, e)
}

// depositPlain is everything a deposit does after decryption: decode →
// area check → authorize for the EA → validate → split → seal → commit.
// Deposit and IngestSynthetic share it so that synthetic data takes
// exactly the path real data takes. d0 is the decision recorded while
// the area is unknown; newEvent starts an event for a decision; authorize
// decides for the submission's EA.
func (b *Broker) depositPlain(ctx context.Context, c *Caller, plain []byte, d0 policy.Decision,
	newEvent func(policy.Decision) *audit.Event, authorize func(AreaCode) (policy.Decision, error)) (*DepositResult, error) {
	invalid := func(ev *audit.Event, msg string, problems []string, err error) error {
		return b.refuseInvalid(ctx, ev, msg, problems, err)
	}
	sum := sha256.Sum256(plain)
	payloadHash := hex.EncodeToString(sum[:])

	sub, err := form.Decode(plain)
	if err != nil {
		return nil, invalid(newEvent(d0), "submission is malformed", problemsOf(err), nil)
	}
	// The EA in force the household belongs to: the one named, or for an
	// EA a revision retired, where its household number went (areas.go).
	g := b.tree.geo()
	ea, ok := g.EA(AreaCode(sub.Area), sub.HouseholdNo)
	if a, found := g.Tree().Get(ea); !ok || !found || a.Level != area.EA {
		ev := newEvent(d0)
		ev.Resources = []string{"submission:" + sub.ID}
		msg := "area is not a known enumeration area"
		if g.Retired(AreaCode(sub.Area)) {
			msg = "area is an enumeration area a revision of the area tree split, and household_no is in none of the EAs it was split into"
		}
		return nil, invalid(ev, msg, nil, nil)
	}
	d, err := authorize(ea)
	if err != nil {
		return nil, errorf(Internal, err, "policy failed")
	}
	ev := newEvent(d)
	ev.Area = string(ea)
	ev.Resources = []string{"submission:" + sub.ID}
	if !d.Allow {
		ev.Outcome = "denied"
		return nil, b.refuse(ctx, ev, errorf(Permission, nil, "not permitted to deposit in area %s", ea))
	}
	kf, err := b.forms.lookup(ctx, sub.Form, sub.FormVersion)
	if err != nil {
		ev.Outcome, ev.Reason = "error", "the form registry could not be read"
		return nil, b.refuse(ctx, ev, errorf(Unavailable, err, "the form registry could not be read; nothing was stored, try again later"))
	}
	if kf == nil {
		return nil, invalid(ev, fmt.Sprintf("unknown form %q version %d", sub.Form, sub.FormVersion), nil, nil)
	}
	// The definition the submission is validated and sealed by, named in
	// its event (and checked again in the deposit's transaction).
	f := kf.form
	ev.FormSHA256 = kf.sha
	if err := f.ValidateAt(sub, b.now()); err != nil {
		return nil, invalid(ev, "submission fails validation", problemsOf(err), nil)
	}
	parts, err := f.Split(sub)
	if err != nil {
		return nil, invalid(ev, "submission fails validation", problemsOf(err), nil)
	}
	commune, ok := g.Tree().Ancestor(ea, area.Commune)
	if !ok {
		return nil, errorf(Internal, nil, "EA %s has no commune", ea)
	}
	// Stored under the EA it names (sealed rows never change; the
	// commune is the same, as an EA never changes commune).
	rec := &storage.Submission{
		ID: sub.ID, Area: sub.Area, Commune: string(commune), HouseholdNo: sub.HouseholdNo,
		Form: sub.Form, FormVersion: sub.FormVersion, InterviewedAt: sub.InterviewedAt.UTC(),
		Depositor: string(c.User), PayloadSHA256: payloadHash, Supersedes: sub.Supersedes,
		Operational: parts[form.Operational],
	}
	ad := crypto.AD{Submission: sub.ID, Form: sub.Form, FormVersion: sub.FormVersion, Area: sub.Area, HouseholdNo: sub.HouseholdNo}
	dekVer := b.dekVersion()
	for _, class := range []crypto.Class{crypto.Identifying, crypto.Analytic} {
		id := crypto.DataKeyID{Class: class, Commune: string(commune), Version: dekVer}
		sealed, err := b.seal(ctx, id, parts[form.Class(class)], ad)
		var be *Error
		if errors.As(err, &be) && be.Kind == Gone {
			ev.Outcome, ev.Reason = "error", be.Msg
			return nil, b.refuse(ctx, ev, be)
		}
		if err != nil {
			ev.Outcome = "error"
			ev.Reason = "key provider unavailable"
			return nil, b.refuse(ctx, ev, errorf(Unavailable, err, "the key provider is unavailable; nothing was stored, try again later"))
		}
		rec.Sealed = append(rec.Sealed, storage.Sealed{Class: string(class), KeyVersion: dekVer, Data: sealed})
	}
	return b.commitDeposit(ctx, c, g, rec, ev)
}

// commitDeposit stores the sealed submission, its audit event and its
// receipt in one transaction, deciding idempotency and supersession
// inside it so that concurrent deposits of the same id cannot both win.
func (b *Broker) commitDeposit(ctx context.Context, c *Caller, g *area.Geography, rec *storage.Submission, ev *audit.Event) (*DepositResult, error) {
	var (
		result  DepositResult
		refusal *Error
	)
	err := b.store.Update(ctx, func(tx storage.Tx) error {
		result, refusal = DepositResult{}, nil
		now := b.now().UTC()
		ev.Time = now
		ev.Reason = ""
		if prev, err := tx.Submission(rec.ID); err == nil {
			if prev.PayloadSHA256 == rec.PayloadSHA256 {
				var r Receipt
				if err := json.Unmarshal(prev.Receipt, &r); err != nil {
					return fmt.Errorf("%w: submission %s: %v", errReceiptCorrupt, rec.ID, err)
				}
				ev.Outcome = "replayed"
				ev.Reason = fmt.Sprintf("same content as the deposit at audit index %d", prev.AuditIndex)
				result.Receipt = &r
				_, err := appendEvent(tx, ev)
				return err
			}
			ev.Outcome = "conflict"
			ev.Reason = "submission id already used for different content"
			refusal = errorf(Conflict, nil, "submission %s was already deposited with different content", rec.ID)
			_, err := appendEvent(tx, ev)
			return err
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		// The household's current submission, under whichever code of
		// it (a revision may have split its EA) it was deposited.
		if err := checkRevision(tx, g); err != nil {
			return err
		}
		cur, err := currentHousehold(tx, g, rec.Area, rec.HouseholdNo)
		switch {
		case err == nil:
			if rec.Supersedes != cur.ID {
				ev.Outcome = "conflict"
				ev.Reason = fmt.Sprintf("household %d is already deposited as submission %s", rec.HouseholdNo, cur.ID)
				refusal = errorf(Conflict, nil, "household %d of area %s is already deposited as submission %s; to replace it, name it in \"supersedes\"", rec.HouseholdNo, rec.Area, cur.ID)
				_, err := appendEvent(tx, ev)
				return err
			}
			if cur.Depositor != rec.Depositor {
				// ev.Area is the EA in force the household belongs to.
				d, err := b.engineFor(c).Allow(ctx, c.subject(), policy.SupersedeAny, policy.Resource{Path: g.Tree().PathStrings(AreaCode(ev.Area))})
				if err != nil {
					return err
				}
				if !d.Allow {
					ev.Decision, ev.Rule = "deny", d.Rule
					ev.Outcome = "denied"
					ev.Reason = "only the depositing enumerator or a team leader in scope may supersede"
					refusal = errorf(Permission, nil, "only the enumerator who deposited submission %s or a team leader may supersede it", cur.ID)
					_, err := appendEvent(tx, ev)
					return err
				}
				ev.Rule = d.Rule
			}
			if err := tx.MarkSuperseded(cur.ID, rec.ID); err != nil {
				return err
			}
			if cur.Area != rec.Area {
				// The household moves between codes of it: so does
				// its count.
				if err := tx.AddDeposited(cur.Area, -1); err != nil {
					return err
				}
				if err := tx.AddDeposited(rec.Area, 1); err != nil {
					return err
				}
			}
			ev.Resources = append(ev.Resources, "supersedes:"+cur.ID)
		case errors.Is(err, storage.ErrNotFound):
			if rec.Supersedes != "" {
				ev.Outcome = "conflict"
				ev.Reason = "supersedes names a submission that is not the current one for this household"
				refusal = errorf(Conflict, nil, "submission %s is not the current submission for household %d of area %s", rec.Supersedes, rec.HouseholdNo, rec.Area)
				_, err := appendEvent(tx, ev)
				return err
			}
			if err := tx.AddDeposited(rec.Area, 1); err != nil {
				return err
			}
		default:
			return err
		}
		if err := b.forms.checkSealedBy(tx, rec.Form, rec.FormVersion, ev.FormSHA256); err != nil {
			return err
		}
		ev.Outcome = "ok"
		ar, err := appendEvent(tx, ev)
		if err != nil {
			return err
		}
		r := &Receipt{
			SubmissionID: SubmissionID(rec.ID), Area: AreaCode(rec.Area),
			ReceivedAt: now.Format(time.RFC3339Nano), PayloadSHA256: rec.PayloadSHA256,
			AuditIndex: ar.Index, LeafHash: base64.StdEncoding.EncodeToString(ar.LeafHash[:]),
		}
		note, err := b.receiptSigner.Sign(ReceiptText(r))
		if err != nil {
			return fmt.Errorf("failed to sign receipt: %w", err)
		}
		r.Note = string(note)
		rb, err := json.Marshal(r)
		if err != nil {
			return err
		}
		rec.ReceivedAt, rec.AuditIndex, rec.Receipt = now, ar.Index, rb
		if err := tx.InsertSubmission(rec); err != nil {
			return err
		}
		result = DepositResult{Receipt: r, Created: true}
		return nil
	})
	if errors.Is(err, errFormChanged) {
		fev := *ev
		fev.Outcome, fev.Reason = "error", "the form version was replaced meanwhile; nothing stored"
		b.record(ctx, &fev)
		return nil, b.formChanged(ctx, rec.Form, rec.FormVersion)
	}
	if errors.Is(err, errReceiptCorrupt) {
		b.log.Error("stored receipt is corrupt", "submission", rec.ID, "err", err)
		fev := *ev
		fev.Outcome, fev.Reason = "error", "stored receipt is corrupt"
		b.record(ctx, &fev)
		return nil, receiptCorrupt(err)
	}
	if errors.Is(err, errAreasRevised) {
		fev := *ev
		fev.Outcome, fev.Reason = "error", "the area tree was revised meanwhile; nothing stored"
		b.record(ctx, &fev)
		return nil, errAreasRevised
	}
	if err != nil {
		b.log.Error("deposit not stored", "submission", rec.ID, "err", err)
		// Best effort: say in the log that a deposit failed. If the log
		// itself is what failed, this fails too, and that is all right:
		// nothing was stored or acknowledged.
		fev := *ev
		fev.Outcome, fev.Reason = "error", "storage failed; nothing stored"
		b.record(ctx, &fev)
		return nil, errorf(Unavailable, err, "the deposit could not be stored; nothing was acknowledged, try again later")
	}
	if refusal != nil {
		return nil, refusal
	}
	return &result, nil
}

// errReceiptCorrupt is a stored receipt that no longer decodes. It is
// permanent: the submission is stored, and no retry repairs its receipt.
var errReceiptCorrupt = errors.New("stored receipt is corrupt")

// receiptCorrupt is the answer to a request that needs a corrupt stored
// receipt: a permanent error (500 receipt_corrupt), never Unavailable,
// which would make a device retry it forever.
func receiptCorrupt(err error) *Error {
	return &Error{Kind: Internal, Code: "receipt_corrupt", Err: err,
		Msg: "this submission is stored, but its stored receipt is damaged: retrying will not help; ask the vault operator"}
}

// refuse records a refused request and returns its error; if the event
// cannot be written the refusal becomes Unavailable. Past the refusal
// ceiling (Limits) the event is counted into a summary instead.
func (b *Broker) refuse(ctx context.Context, ev *audit.Event, e *Error) error {
	if err := b.logRefusal(ctx, ev); err != nil {
		return err
	}
	return e
}

// seal seals one class's fields, creating the commune's data key on first
// use.
func (b *Broker) seal(ctx context.Context, id crypto.DataKeyID, plaintext []byte, ad crypto.AD) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		out, err := b.keyring.Seal(id, plaintext, ad)
		if !errors.Is(err, crypto.ErrKeyNotLoaded) || attempt == 2 {
			return out, err
		}
		if err := b.loadOrCreateDEK(ctx, id); err != nil {
			return nil, err
		}
	}
}

func (b *Broker) dekLock(id crypto.DataKeyID) *sync.Mutex {
	b.dekMu.Lock()
	defer b.dekMu.Unlock()
	if b.dekLocks == nil {
		b.dekLocks = map[crypto.DataKeyID]*sync.Mutex{}
	}
	l := b.dekLocks[id]
	if l == nil {
		l = &sync.Mutex{}
		b.dekLocks[id] = l
	}
	return l
}

// loadOrCreateDEK makes id's data key usable: from the store if it exists,
// otherwise a new one, stored before anything is sealed under it.
func (b *Broker) loadOrCreateDEK(ctx context.Context, id crypto.DataKeyID) error {
	// Only deposits needing this same key wait here: a slow key provider
	// holds up one commune's first deposits, not everyone's.
	l := b.dekLock(id)
	l.Lock()
	defer l.Unlock()
	if b.keyring.Loaded(id) {
		return nil
	}
	load := func() (bool, error) {
		var k *storage.DataKey
		err := b.store.View(ctx, func(tx storage.ReadTx) error {
			var err error
			k, err = tx.DataKey(string(id.Class), id.Commune, id.Version)
			return err
		})
		if errors.Is(err, storage.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if !k.ShreddedAt.IsZero() {
			return false, errorf(Gone, nil, "the %s data key of commune %s (version %d) was shredded; an operator must run `censusvault keys rotate` before more submissions can be sealed there", id.Class, id.Commune, id.Version)
		}
		return true, b.keyring.LoadDataKeys(ctx, []crypto.DataKeyID{id}, [][]byte{k.Wrapped})
	}
	if ok, err := load(); ok || err != nil {
		return err
	}
	wrapped, err := b.keyring.NewDataKey(ctx, id)
	if err != nil {
		return err
	}
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		return tx.PutDataKey(&storage.DataKey{Class: string(id.Class), Commune: id.Commune, Version: id.Version, Wrapped: wrapped, CreatedAt: b.now().UTC()})
	})
	if errors.Is(err, storage.ErrConflict) {
		// Another instance made it first: use theirs.
		b.keyring.Forget(id)
		_, err = load()
		return err
	}
	if err != nil {
		b.keyring.Forget(id)
	}
	return err
}

func problemsOf(err error) []string {
	var fe *form.Error
	if errors.As(err, &fe) {
		return fe.Problems
	}
	return []string{err.Error()}
}

// Open decrypts the given classes of one stored submission, in memory. It
// checks no policy and has no HTTP route: it is the building block of
// views (which authorize first), key tests and shredding tests.
func (b *Broker) Open(ctx context.Context, id SubmissionID, classes ...crypto.Class) (*Opened, error) {
	var s *storage.Submission
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		s, err = tx.Submission(string(id))
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errorf(NotFound, nil, "no submission %s", id)
	}
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read submission")
	}
	f, ok := b.forms.Get(s.Form, s.FormVersion)
	if !ok {
		return nil, errorf(Internal, nil, "submission %s uses unknown form %s v%d", id, s.Form, s.FormVersion)
	}
	ad := crypto.AD{Submission: s.ID, Form: s.Form, FormVersion: s.FormVersion, Area: s.Area, HouseholdNo: s.HouseholdNo}
	parts := map[form.Class][]byte{}
	if len(s.Operational) > 0 {
		parts[form.Operational] = s.Operational
	}
	for _, class := range classes {
		for _, p := range s.Sealed {
			if p.Class != string(class) {
				continue
			}
			kid := crypto.DataKeyID{Class: class, Commune: s.Commune, Version: p.KeyVersion}
			var plain []byte
			for attempt := 0; ; attempt++ {
				plain, err = b.keyring.Open(kid, p.Data, ad)
				if !errors.Is(err, crypto.ErrKeyNotLoaded) || attempt == 2 {
					break
				}
				if err := b.loadDEK(ctx, kid); err != nil {
					return nil, err
				}
			}
			if err != nil {
				if errors.Is(err, crypto.ErrDecrypt) {
					return nil, errorf(Internal, err, "failed to open the %s fields of %s", class, id)
				}
				return nil, errorf(Unavailable, err, "failed to open the %s fields of %s", class, id)
			}
			parts[form.Class(class)] = plain
		}
	}
	hh, persons, err := f.Join(parts)
	if err != nil {
		return nil, errorf(Internal, err, "failed to decode opened fields")
	}
	return &Opened{ID: id, Area: AreaCode(s.Area), HouseholdNo: s.HouseholdNo, Superseded: s.SupersededBy != "", Household: hh, Persons: persons}, nil
}

// loadDEK loads an existing data key (never creates one).
func (b *Broker) loadDEK(ctx context.Context, id crypto.DataKeyID) error {
	var k *storage.DataKey
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		k, err = tx.DataKey(string(id.Class), id.Commune, id.Version)
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return errorf(Unavailable, err, "the data key for %s fields of commune %s is gone (shredded?)", id.Class, id.Commune)
	}
	if err != nil {
		return errorf(Unavailable, err, "failed to read a data key")
	}
	if !k.ShreddedAt.IsZero() {
		return errorf(Gone, nil, "the %s fields of commune %s are unreadable: their data key was shredded on %s", id.Class, id.Commune, k.ShreddedAt.Format(time.DateOnly))
	}
	if err := b.keyring.LoadDataKeys(ctx, []crypto.DataKeyID{id}, [][]byte{k.Wrapped}); err != nil {
		return errorf(Unavailable, err, "the key provider could not unwrap a data key")
	}
	return nil
}

// Opened is a submission's fields of the classes asked for, in memory.
type Opened struct {
	ID          SubmissionID
	Area        AreaCode
	HouseholdNo int64
	Superseded  bool
	Household   map[string]form.Value
	Persons     []map[string]form.Value
}
