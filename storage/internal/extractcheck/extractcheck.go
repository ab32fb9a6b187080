// Package extractcheck holds the checks both storage backends make of a
// processing environment, an extract proposal, a retirement and an
// approval before storing them (what storage.Tx's InsertEnvironment,
// RetireEnvironment, ProposeExtract and ApproveExtract promise), so the
// two refuse the same mistakes with the same words. The errors are
// programming mistakes of the caller, never ErrNotFound or ErrConflict;
// backend names the store in them ("sqlite", "postgres").
package extractcheck

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/censusvault/censusvault/storage"
)

// nonEmpty reports whether l has an element and no empty one.
func nonEmpty(l []string) bool { return len(l) > 0 && !slices.Contains(l, "") }

// Environment checks an environment to register.
func Environment(backend string, e *storage.Environment) error {
	switch {
	case e.Name == "" || e.Recipient == "" || e.CreatedBy == "":
		return errors.New(backend + ": InsertEnvironment needs a name, a recipient and who registers it")
	case !nonEmpty(e.Classes):
		return fmt.Errorf("%s: environment %s has no classes, or an empty one", backend, e.Name)
	case e.CreatedAt.IsZero():
		return fmt.Errorf("%s: environment %s has a zero time", backend, e.Name)
	case e.AuditIndex < 0:
		return fmt.Errorf("%s: environment %s has audit index %d", backend, e.Name, e.AuditIndex)
	case e.RetiredBy != "" || !e.RetiredAt.IsZero() || e.RetireAudit != 0:
		return fmt.Errorf("%s: environment %s is registered retired; register it in use, then retire it", backend, e.Name)
	}
	return nil
}

// Retirement checks the retirement of environment name.
func Retirement(backend, name, by string, at time.Time, auditIndex int64) error {
	switch {
	case by == "":
		return fmt.Errorf("%s: retirement of environment %s by no one", backend, name)
	case at.IsZero():
		return fmt.Errorf("%s: retirement of environment %s with a zero time", backend, name)
	case auditIndex < 0:
		return fmt.Errorf("%s: retirement of environment %s with audit index %d", backend, name, auditIndex)
	}
	return nil
}

// Proposal checks an extract proposal to store.
func Proposal(backend string, p *storage.ExtractProposal) error {
	switch {
	case p.Environment == "" || p.Form == "" || p.Format == "" || p.Purpose == "" || p.ProposedBy == "":
		return errors.New(backend + ": ProposeExtract needs an environment, a form, a format, a purpose and a proposer")
	case !nonEmpty(p.Areas) || !nonEmpty(p.Classes):
		return errors.New(backend + ": ProposeExtract needs areas and classes, none of them empty")
	case p.FormVersion < 1:
		return fmt.Errorf("%s: ProposeExtract of form version %d", backend, p.FormVersion)
	case p.ProposedAt.IsZero():
		return errors.New(backend + ": ProposeExtract with a zero time")
	case p.ProposalAudit < 0:
		return fmt.Errorf("%s: ProposeExtract with audit index %d", backend, p.ProposalAudit)
	case p.ApprovedBy != "" || !p.ApprovedAt.IsZero() || p.ApprovalAudit != 0:
		return errors.New(backend + ": ProposeExtract of a proposal that is already approved; propose it pending, then ApproveExtract")
	}
	return nil
}

// Approval checks the approval of extract proposal seq.
func Approval(backend string, seq int64, by string, at time.Time, auditIndex int64) error {
	switch {
	case by == "":
		return fmt.Errorf("%s: approval of extract proposal %d by no one", backend, seq)
	case at.IsZero():
		return fmt.Errorf("%s: approval of extract proposal %d with a zero time", backend, seq)
	case auditIndex < 0:
		return fmt.Errorf("%s: approval of extract proposal %d with audit index %d", backend, seq, auditIndex)
	}
	return nil
}
