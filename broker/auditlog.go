package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sort"
	"strings"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// appendEvent stamps ev with the policy hash in force and appends it in
// tx. It is the only way the broker writes audit events.
func appendEvent(tx storage.Tx, ev *audit.Event) (storage.AuditRecord, error) {
	ph, err := tx.Meta(metaPolicyHash)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return storage.AuditRecord{}, err
	}
	ev.PolicyHash = ph
	return tx.AppendAudit(func(h storage.AuditHead) (storage.AuditRecord, error) {
		ev.Index = h.Next
		r, err := audit.Seal(h.ChainHash, ev)
		if err != nil {
			return storage.AuditRecord{}, err
		}
		return storage.AuditRecord{Index: r.Index, Event: r.Event, LeafHash: r.LeafHash, ChainHash: r.ChainHash}, nil
	})
}

// Invalid records a request refused as malformed before it reached a use
// case (a bad query parameter, say) and returns its error.
func (b *Broker) Invalid(ctx context.Context, c *Caller, action, msg string) error {
	ev := b.event(c, action, policy.Decision{})
	ev.Outcome, ev.Reason = "invalid", msg
	return b.refuse(ctx, ev, errorf(Invalid, nil, "%s", msg))
}

// record appends one event in its own transaction. An error means the
// event is not in the log, so the caller must not release anything.
func (b *Broker) record(ctx context.Context, ev *audit.Event) error {
	if ev.Time.IsZero() {
		ev.Time = b.now().UTC()
	}
	err := b.store.Update(ctx, func(tx storage.Tx) error {
		_, err := appendEvent(tx, ev)
		return err
	})
	if err != nil {
		b.log.Error("failed to append audit event", "action", ev.Action, "err", err)
		return errorf(Unavailable, err, "the audit log could not be written; nothing was done")
	}
	return nil
}

// event starts an audit event for a caller and a decision.
func (b *Broker) event(c *Caller, action string, d policy.Decision) *audit.Event {
	ev := &audit.Event{Time: b.now().UTC(), Action: action, Rule: d.Rule, Roles: d.Roles}
	if c != nil {
		ev.Actor = c.actor()
		if len(ev.Roles) == 0 {
			ev.Roles = c.roleNames()
		}
	}
	if d.Allow {
		ev.Decision = "allow"
	} else if d.Rule != "" {
		ev.Decision = "deny"
	}
	if ev.Roles == nil {
		ev.Roles = []string{}
	}
	return ev
}

type grantsDigest struct{ lines []string }

func newGrantsDigest() *grantsDigest    { return &grantsDigest{} }
func (d *grantsDigest) add(line string) { d.lines = append(d.lines, line) }

// sum is the SHA-256 of the sorted grant lines, one per line.
func (d *grantsDigest) sum() string {
	sort.Strings(d.lines)
	var h hash.Hash = sha256.New()
	for _, l := range d.lines {
		h.Write([]byte(l))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// AuditPage is a page of audit events, as their exact canonical bytes.
type AuditPage struct {
	Events [][]byte // canonical JSON, exactly the bytes that were hashed
	Next   int64    // index to ask for next; -1 when the end was reached
}

// AuditEvents lists events from index from on, for auditors. A global
// auditor sees every event; one scoped to a subtree sees only events
// about areas in that subtree. Reading the log is itself logged.
func (b *Broker) AuditEvents(ctx context.Context, c *Caller, from int64, limit int) (*AuditPage, error) {
	if from < 0 {
		return nil, errorf(Invalid, nil, "from must be ≥ 0")
	}
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	root := b.tree.PathStrings(b.tree.Root())
	dGlobal, err := b.policy.Allow(ctx, c.subject(), policy.ReadAudit, policy.Resource{Path: root})
	if err != nil {
		return nil, errorf(Internal, err, "policy failed")
	}
	scoped := !dGlobal.Allow
	d := dGlobal
	if scoped {
		// Allowed somewhere below the root?
		d = b.anyGrantAllows(ctx, c, policy.ReadAudit)
	}
	ev := b.event(c, string(policy.ReadAudit), d)
	ev.Area = string(b.tree.Root())
	ev.Resources = []string{fmt.Sprintf("audit:%d+%d", from, limit)}
	if !d.Allow {
		ev.Outcome = "denied"
		if err := b.record(ctx, ev); err != nil {
			return nil, err
		}
		return nil, errorf(Permission, nil, "not permitted to read the audit log")
	}
	ev.Outcome = "ok"
	if err := b.record(ctx, ev); err != nil {
		return nil, err
	}
	page := &AuditPage{Next: -1, Events: [][]byte{}}
	seen := 0
	err = b.store.View(ctx, func(tx storage.ReadTx) error {
		return tx.AuditRecords(from, limit+1, func(r storage.AuditRecord) (bool, error) {
			if seen == limit {
				page.Next = r.Index // there is more
				return false, nil
			}
			seen++
			if scoped && !b.auditVisible(ctx, c, r.Event) {
				return true, nil
			}
			page.Events = append(page.Events, r.Event)
			return true, nil
		})
	})
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read the audit log")
	}
	return page, nil
}

// auditVisible: may a subtree-scoped auditor see this event?
func (b *Broker) auditVisible(ctx context.Context, c *Caller, event []byte) bool {
	e, err := audit.Decode(event)
	if err != nil || e.Area == "" {
		return false
	}
	path := b.tree.PathStrings(AreaCode(e.Area))
	if path == nil {
		return false
	}
	d, err := b.policy.Allow(ctx, c.subject(), policy.ReadAudit, policy.Resource{Path: path})
	return err == nil && d.Allow
}

// VerifyResult is the outcome of checking the whole chain.
type VerifyResult struct {
	Events int64
	Head   [32]byte
}

// VerifyAudit recomputes the hash chain of every stored event. It returns
// an *audit.VerifyError naming the first broken event if the log was
// altered; any other error means the log could not be read. progress, if
// not nil, is called every 10,000 events.
func VerifyAudit(ctx context.Context, s storage.Store, progress func(n int64)) (VerifyResult, error) {
	v := audit.NewVerifier()
	err := s.View(ctx, func(tx storage.ReadTx) error {
		return tx.AuditRecords(0, 0, func(r storage.AuditRecord) (bool, error) {
			if err := v.Add(audit.Record{Index: r.Index, Event: r.Event, LeafHash: r.LeafHash, ChainHash: r.ChainHash}); err != nil {
				return false, err
			}
			if progress != nil && v.Count()%10000 == 0 {
				progress(v.Count())
			}
			return true, nil
		})
	})
	return VerifyResult{Events: v.Count(), Head: v.Head()}, err
}

func joinProblems(p []string) string {
	if len(p) > 5 {
		return strings.Join(p[:5], "; ") + fmt.Sprintf("; and %d more", len(p)-5)
	}
	return strings.Join(p, "; ")
}
