// Package grantcheck holds the checks both storage backends make of a
// grant log entry, a grant proposal and a confirmation before storing
// them (what storage.Tx's AppendGrantLog, ProposeGrant and ConfirmGrant
// promise), so the two refuse the same mistakes with the same words.
// The errors are programming mistakes of the caller, never ErrNotFound
// or ErrConflict, and name no user, token or policy text.
package grantcheck

import (
	"errors"
	"fmt"
	"time"

	"github.com/censusvault/censusvault/storage"
)

// change checks the fields an op needs: a grant or ungrant names a user,
// a role and an area and carries no policy; a policy or start carries a
// model and a policy and names no user or grant. The database's CHECKs
// hold the same.
func change(op storage.GrantOp, user string, g storage.Grant, model, policy string) error {
	switch op {
	case storage.GrantOpGrant, storage.GrantOpUngrant:
		if user == "" || g.Role == "" || g.Area == "" {
			return fmt.Errorf("a %s needs a user, a role and an area", op)
		}
		if model != "" || policy != "" {
			return fmt.Errorf("a %s carries no model or policy", op)
		}
	case storage.GrantOpPolicy, storage.GrantOpStart:
		if model == "" || policy == "" {
			return fmt.Errorf("a %s needs a model and a policy", op)
		}
		if user != "" || g != (storage.Grant{}) {
			return fmt.Errorf("a %s names no user or grant", op)
		}
	default:
		return fmt.Errorf("unknown grant op %.32q", op)
	}
	return nil
}

// Entry checks e as AppendGrantLog must before storing it.
func Entry(e *storage.GrantLogEntry) error {
	switch {
	case e.At.IsZero():
		return errors.New("grant log entry with a zero time")
	case e.AuditIndex < 0:
		return fmt.Errorf("grant log entry with audit index %d", e.AuditIndex)
	case e.PolicyHash == "":
		return errors.New("grant log entry with no policy hash")
	}
	if err := change(e.Op, e.User, e.Grant, e.Model, e.Policy); err != nil {
		return fmt.Errorf("grant log entry: %w", err)
	}
	return nil
}

// Proposal checks p as ProposeGrant must before storing it.
func Proposal(p *storage.GrantProposal) error {
	switch {
	case p.Kind == storage.GrantOpStart:
		return errors.New("grant proposal of a start: the log's start is never proposed")
	case p.ProposedBy == "":
		return errors.New("grant proposal with no proposer")
	case p.ProposedAt.IsZero():
		return errors.New("grant proposal with a zero time")
	case p.ProposalAudit < 0:
		return fmt.Errorf("grant proposal with audit index %d", p.ProposalAudit)
	case p.ConfirmedBy != "" || !p.ConfirmedAt.IsZero() || p.ConfirmAudit != 0:
		return errors.New("grant proposal that is already confirmed; propose it pending, then ConfirmGrant")
	}
	if err := change(p.Kind, p.User, p.Grant, p.Model, p.Policy); err != nil {
		return fmt.Errorf("grant proposal: %w", err)
	}
	return nil
}

// Confirmation checks the arguments of ConfirmGrant.
func Confirmation(seq int64, by string, at time.Time, auditIndex int64) error {
	switch {
	case by == "":
		return fmt.Errorf("confirmation of grant proposal %d by no one", seq)
	case at.IsZero():
		return fmt.Errorf("confirmation of grant proposal %d with a zero time", seq)
	case auditIndex < 0:
		return fmt.Errorf("confirmation of grant proposal %d with audit index %d", seq, auditIndex)
	}
	return nil
}
