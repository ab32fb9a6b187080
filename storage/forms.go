package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Forms (schema 11): the form definitions an administrator added, by
// (name, version). The forms built into the binary are not stored: the
// broker holds them. A stored version may be replaced only while no
// submission uses it (no submission of that form and version exists,
// superseded or not); from its first submission on it never changes and
// it is never removed. The backends' database triggers hold this against
// every code path.
//
// A form version an administrator adds over the API is first a proposal
// (FormProposal), stored apart from the forms: nothing that reads the
// forms (deposits, tables, listings of the registry) sees it. An approver
// confirming it moves it into forms in one transaction with the audit
// event of the confirmation (PutForm, then DropFormProposal).

// ErrFormInUse is what PutForm returns for a version a submission uses;
// it wraps ErrConflict.
var ErrFormInUse = fmt.Errorf("%w: form version in use", ErrConflict)

// FormReader reads the stored forms. ReadTx embeds it.
type FormReader interface {
	// Form returns one stored form version; ErrNotFound if none.
	Form(name string, version int) (*Form, error)
	// FormSHA256 returns the SHA256 of one stored form version, without
	// its definition; ErrNotFound if none. A deposit under a stored form
	// reads it in its own transaction to be sure it sealed by the
	// definition in force.
	FormSHA256(name string, version int) (string, error)
	// Forms calls fn for every stored form version, definitions
	// included, in (name, version) order (names in byte order), until fn
	// returns false or an error (which Forms returns). The rows are read
	// before fn first runs, so fn may use the transaction; forms are
	// few.
	Forms(fn func(Form) (bool, error)) error
	// FormInUse reports whether a submission, superseded or not, was
	// deposited under (name, version): an embedded form's too. It is one
	// index lookup (submissions_form), however many submissions exist.
	FormInUse(name string, version int) (bool, error)
	// FormProposal returns the proposal of one form version; ErrNotFound
	// if none.
	FormProposal(name string, version int) (*FormProposal, error)
	// FormProposals calls fn for every proposal, definitions included,
	// in (name, version) order, as Forms does.
	FormProposals(fn func(FormProposal) (bool, error)) error
}

// FormWriter stores forms. Tx embeds it.
type FormWriter interface {
	// PutForm stores a form version, or replaces the stored one of the
	// same (Name, Version) — every column —, if no submission uses it.
	// ErrFormInUse (an ErrConflict) if one does, whatever the bytes (the
	// caller decides beforehand that the same bytes need no write), and
	// for a version never stored that submissions use (a form built into
	// the binary). Name,
	// Definition and AddedBy must not be empty, Version positive, SHA256
	// the lowercase hex SHA-256 of Definition, AddedAt not zero and
	// AuditIndex >= 0 (CheckForm).
	PutForm(f *Form) error
	// ProposeForm stores a proposal, or replaces the one of the same
	// (Name, Version) — every column. ErrFormInUse if a submission uses
	// that version (a proposal could never be confirmed). The fields
	// must be as CheckFormProposal says.
	ProposeForm(p *FormProposal) error
	// DropFormProposal removes the proposal of (name, version) whose
	// SHA256 is sha: what its confirmation does once it stored the form.
	// ErrNotFound if there is none, ErrConflict if it has another SHA256
	// (it was replaced).
	DropFormProposal(name string, version int, sha string) error
}

// Form is one stored form definition version.
type Form struct {
	Name    string
	Version int
	// SHA256 is the lowercase hex SHA-256 of Definition: what deposit
	// events carry.
	SHA256 string
	// Definition is the form's canonical JSON (the broker's form
	// package writes it); storage does not interpret it.
	Definition []byte
	AddedAt    time.Time // UTC
	// AddedBy is who added it: the host operator, or the administrator
	// who proposed it.
	AddedBy string
	// ConfirmedBy and ConfirmedAt are the approver who confirmed the
	// proposal and when; empty and zero for a version the host operator
	// added, which needs no confirmation.
	ConfirmedBy string
	ConfirmedAt time.Time // UTC
	// AuditIndex is the audit event that added (or last replaced) this
	// version — the confirmation of a proposal —, appended by the caller
	// in the same transaction.
	AuditIndex int64
}

// FormProposal is a form version an administrator proposed over the API,
// waiting for an approver; it is no part of the registry.
type FormProposal struct {
	Name    string
	Version int
	// SHA256 is the lowercase hex SHA-256 of Definition: what the
	// approver names to confirm it.
	SHA256     string
	Definition []byte
	ProposedAt time.Time // UTC
	ProposedBy string
	// AuditIndex is the audit event of the proposal (or of its last
	// replacement).
	AuditIndex int64
}

// CheckForm checks what PutForm promises of a form before a backend
// stores it, so both backends refuse the same mistakes with the same
// words; backend names the store in them ("sqlite", "postgres").
func CheckForm(backend string, f *Form) error {
	if f == nil {
		return errors.New(backend + ": PutForm of nil")
	}
	sum := sha256.Sum256(f.Definition)
	switch {
	case f.Name == "" || f.AddedBy == "" || len(f.Definition) == 0:
		return fmt.Errorf("%s: a form (or proposal) needs a name, a definition and who adds it", backend)
	case f.Version < 1:
		return fmt.Errorf("%s: form %s has version %d", backend, f.Name, f.Version)
	case f.SHA256 != hex.EncodeToString(sum[:]):
		return fmt.Errorf("%s: form %s version %d: SHA256 is not the hex SHA-256 of its definition", backend, f.Name, f.Version)
	case f.AddedAt.IsZero():
		return fmt.Errorf("%s: form %s version %d has a zero time", backend, f.Name, f.Version)
	case f.AuditIndex < 0:
		return fmt.Errorf("%s: form %s version %d has audit index %d", backend, f.Name, f.Version, f.AuditIndex)
	case (f.ConfirmedBy == "") != f.ConfirmedAt.IsZero():
		return fmt.Errorf("%s: form %s version %d names who confirmed it without when, or when without who", backend, f.Name, f.Version)
	}
	return nil
}

// CheckFormProposal is CheckForm for ProposeForm.
func CheckFormProposal(backend string, p *FormProposal) error {
	if p == nil {
		return errors.New(backend + ": ProposeForm of nil")
	}
	return CheckForm(backend, &Form{Name: p.Name, Version: p.Version, SHA256: p.SHA256, Definition: p.Definition,
		AddedAt: p.ProposedAt, AddedBy: p.ProposedBy, AuditIndex: p.AuditIndex})
}
