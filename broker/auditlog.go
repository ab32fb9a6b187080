package broker

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker/dp/zcdp"
	"github.com/censusvault/censusvault/broker/tables"
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
		// Every event gets a fresh nonce (a version-2 event), here where
		// every event passes, so that its leaf hash, shown for a
		// withheld event in exports and on the public proof routes,
		// cannot be matched to a guess of its contents. Drawn anew on
		// every attempt: an event struct appended twice, or a retried
		// append, never reuses one.
		nonce, err := audit.NewNonce()
		if err != nil {
			return storage.AuditRecord{}, err
		}
		ev.Nonce = nonce
		r, err := audit.Seal(h.ChainHash, ev)
		if err != nil {
			return storage.AuditRecord{}, err
		}
		// The event is a leaf of the log's Merkle tree: store the tree
		// hashes it adds with it, so that proofs need no recomputation.
		hashes, err := audit.StoredHashes(r.Index, r.LeafHash, treeReader(tx))
		if err != nil {
			return storage.AuditRecord{}, fmt.Errorf("audit tree: %w", err)
		}
		return storage.AuditRecord{Index: r.Index, Event: r.Event, LeafHash: r.LeafHash, ChainHash: r.ChainHash,
			HashIndex: audit.StoredHashIndex(r.Index), Hashes: hashes}, nil
	})
}

// treeReader reads the log's stored Merkle tree hashes in tx.
func treeReader(tx storage.ReadTx) audit.HashReader { return audit.HashReaderFunc(tx.AuditHashes) }

// Invalid records a request refused as malformed before it reached a use
// case (a bad query parameter, say) and returns its error.
func (b *Broker) Invalid(ctx context.Context, c *Caller, action, msg string) error {
	ev := b.event(c, action, policy.Decision{})
	ev.Outcome, ev.Reason = "invalid", msg
	return b.refuse(ctx, ev, errorf(Invalid, nil, "%s", msg))
}

// record appends one event in its own transaction. An error means the
// event is not in the log, so the caller must not release anything (and a
// refusal is answered Unavailable instead); it is counted in
// AuditFailures.
//
// The append does not end when ctx is cancelled: a client that hangs up
// must not erase the event of its own (refused) request. It has its own
// time limit, auditAppendTimeout, instead.
func (b *Broker) record(ctx context.Context, ev *audit.Event) error {
	if ev.Time.IsZero() {
		ev.Time = b.now().UTC()
	}
	ctx, cancel := auditContext(ctx)
	defer cancel()
	err := b.store.Update(ctx, func(tx storage.Tx) error {
		_, err := appendEvent(tx, ev)
		return err
	})
	if err != nil {
		b.auditFailures.Add(1)
		b.log.Error("failed to append audit event", "action", ev.Action, "err", err)
		return errorf(Unavailable, err, "the audit log could not be written; nothing was done")
	}
	return nil
}

// auditAppendTimeout bounds an audit append, which no longer ends with
// the request that caused it.
const auditAppendTimeout = 10 * time.Second

// auditContext is ctx (its values) without its cancellation, limited to
// auditAppendTimeout: the context every audit append of a request runs
// in.
func auditContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), auditAppendTimeout)
}

// AuditFailures is how many audit events could not be appended since the
// broker started (each one a request answered Unavailable, or a summary
// lost): a counter for monitoring, which should stay at 0.
func (b *Broker) AuditFailures() uint64 { return b.auditFailures.Load() }

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
	return digestSorted(d.lines)
}

// digestSorted is the grants digest of lines already sorted: the
// SHA-256 of each followed by a newline.
func digestSorted(lines []string) string {
	var h hash.Hash = sha256.New()
	for _, l := range lines {
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

// AuditQuery selects audit events. Zero fields match everything.
type AuditQuery struct {
	From     int64 // first index to look at
	Limit    int   // most events to return: 1…1000, default 100
	Actor    string
	Role     string // one of the event's roles
	Action   string
	Area     AreaCode // the event's area is in this subtree
	Decision string   // allow, deny, or "" for events without a decision
	Outcome  string
	Resource string    // one of the event's resources, e.g. "submission:UUID" or "project:p1"
	Since    time.Time // event time ≥ Since
	Until    time.Time // event time < Until
}

// MaxAuditScan bounds how many events one search looks at, so that a
// rare filter over millions of events answers in bounded time: the page
// then holds what matched so far and Next says where to go on.
const MaxAuditScan = 100_000

// describe is the query as the audit event of the read records it.
func (q *AuditQuery) describe() []string {
	out := []string{fmt.Sprintf("audit:%d+%d", q.From, q.Limit)}
	add := func(k, v string) {
		if v != "" {
			out = append(out, "filter:"+k+"="+v)
		}
	}
	add("actor", q.Actor)
	add("role", q.Role)
	add("action", q.Action)
	add("area", string(q.Area))
	add("decision", q.Decision)
	add("outcome", q.Outcome)
	add("resource", q.Resource)
	if !q.Since.IsZero() {
		add("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		add("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	return out
}

func (q *AuditQuery) match(e *audit.Event, pathOf func(string) []string) bool {
	switch {
	case q.Actor != "" && e.Actor != q.Actor,
		q.Role != "" && !slices.Contains(e.Roles, q.Role),
		q.Action != "" && e.Action != q.Action,
		q.Decision != "" && e.Decision != q.Decision,
		q.Outcome != "" && e.Outcome != q.Outcome,
		q.Resource != "" && !slices.Contains(e.Resources, q.Resource),
		!q.Since.IsZero() && e.Time.Before(q.Since),
		!q.Until.IsZero() && !e.Time.Before(q.Until):
		return false
	}
	return q.Area == "" || slices.Contains(pathOf(e.Area), string(q.Area))
}

// AuditEvents searches the audit log from index q.From on, for auditors,
// returning events as their exact canonical bytes. A global auditor sees
// every event; one scoped to a subtree sees only events about areas in
// that subtree. Pruned events (bodies removed by `audit prune`) are
// skipped: their leaf hashes stay in the tree and in exports. Reading the
// log is itself logged, with the query.
func (b *Broker) AuditEvents(ctx context.Context, c *Caller, q AuditQuery) (*AuditPage, error) {
	if q.From < 0 {
		return nil, errorf(Invalid, nil, "from must be ≥ 0")
	}
	if q.Limit <= 0 || q.Limit > 1000 {
		q.Limit = 100
	}
	if q.Area != "" {
		if _, ok := b.tree.Get(q.Area); !ok {
			return nil, b.Invalid(ctx, c, string(policy.ReadAudit), fmt.Sprintf("no area %q", clip(string(q.Area))))
		}
	}
	d, vis, err := b.auditScope(ctx, c)
	if err != nil {
		return nil, err
	}
	ev := b.event(c, string(policy.ReadAudit), d)
	ev.Area = string(b.tree.Root())
	ev.Resources = q.describe()
	if !d.Allow {
		ev.Outcome = "denied"
		return nil, b.refuse(ctx, ev, errorf(Permission, nil, "not permitted to read the audit log"))
	}
	ev.Outcome = "ok"
	if err := b.record(ctx, ev); err != nil {
		return nil, err
	}
	page := &AuditPage{Next: -1, Events: [][]byte{}}
	scanned := 0
	err = b.store.View(ctx, func(tx storage.ReadTx) error {
		return tx.AuditRecords(q.From, 0, func(r storage.AuditRecord) (bool, error) {
			if len(page.Events) == q.Limit || scanned == MaxAuditScan {
				page.Next = r.Index // there is more
				return false, nil
			}
			scanned++
			if r.Pruned || len(r.Event) == 0 {
				return true, nil
			}
			e, err := audit.Decode(r.Event)
			if err != nil {
				return false, fmt.Errorf("audit event %d does not decode (run `censusvault audit verify`): %w", r.Index, err)
			}
			if !q.match(e, b.pathOf) {
				return true, nil
			}
			if !vis.sees(e) {
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

// auditScope decides whether c may read the audit log at all, and which
// events: the scope rule of policy (allowed subtrees minus denied ones)
// for audit.read. vis is nil when the whole tree is in scope (every event
// visible); otherwise vis says event by event.
func (b *Broker) auditScope(ctx context.Context, c *Caller) (d policy.Decision, vis *auditVisibility, err error) {
	sc, err := b.scope(c, policy.ReadAudit, "")
	if err != nil {
		return d, nil, err
	}
	root := b.tree.PathStrings(b.tree.Root())
	whole, err := sc.Subtree(root, b.pathOf)
	if err != nil {
		return d, nil, errorf(Internal, err, "policy failed")
	}
	if whole.Allow {
		return whole, nil, nil
	}
	atRoot, err := sc.At(root)
	if err != nil {
		return d, nil, errorf(Internal, err, "policy failed")
	}
	vis = &auditVisibility{b: b, scope: sc, memo: map[string]bool{}}
	if atRoot.Allow {
		// Allowed at the root, with a deny somewhere below: the log minus
		// the denied subtrees.
		return atRoot, vis, nil
	}
	// Allowed somewhere below the root?
	return b.anyGrantAllows(ctx, c, policy.ReadAudit), vis, nil
}

// auditVisibility says which events a caller whose audit scope is not the
// whole tree may see.
type auditVisibility struct {
	b     *Broker
	scope policy.Scope
	memo  map[string]bool // area → sees; one request's, not shared
}

// sees reports whether the event is about an area whose whole subtree is
// in scope. An event is about its area and everything under it (a
// progress read, a table over a cover, a refusal before the area was
// known, recorded at the root or at no area), so an auditor with a deny
// inside that subtree does not see it: events about no area count as
// about the root.
func (v *auditVisibility) sees(e *audit.Event) bool {
	if v == nil {
		return true
	}
	a := cmp.Or(e.Area, string(v.b.tree.Root()))
	if seen, ok := v.memo[a]; ok {
		return seen
	}
	seen := false
	if path := v.b.pathOf(a); path != nil {
		d, err := v.scope.Subtree(path, v.b.pathOf)
		seen = err == nil && d.Allow
	}
	if len(v.memo) < maxVisibilityMemo {
		v.memo[a] = seen
	}
	return seen
}

// maxVisibilityMemo bounds the answers one search or export remembers
// (one per area met; a census has about 250,000 areas).
const maxVisibilityMemo = 1 << 18

// VerifyResult is the outcome of checking a stored log.
type VerifyResult struct {
	Events int64
	Pruned int64 // events whose bodies were pruned (hashes checked)
	// LedgerDebits is how many privacy-ledger debits were matched with
	// the release events that charged them.
	Head         [32]byte
	Root         [32]byte // Merkle root of all events
	Checkpoints  int64    // signed checkpoints whose roots were checked
	LedgerDebits int64
	// GrantLogEntries is how many grant log entries were checked against
	// the events that made the changes.
	GrantLogEntries int64
}

// verifyChunk is how many events VerifyAudit reads, and checks the stored
// tree hashes of, per read.
const verifyChunk = 4096

// VerifyAudit checks a stored log end to end: every event's bytes, index,
// leaf hash and chain link (a pruned event's chain link only); every
// stored Merkle tree hash, recomputed from the leaves; and every stored
// checkpoint's root against the tree of its size — with its signature
// too when verifierKey (the note verifier key of GET /v1/keys/audit) is
// given. It returns an *audit.VerifyError naming the first problem; any
// other error means the log could not be read. progress, if not nil,
// hears the events verified so far.
func VerifyAudit(ctx context.Context, s storage.Store, verifierKey string, progress func(n int64)) (VerifyResult, error) {
	v := audit.NewVerifier()
	var tb audit.TreeBuilder
	var res VerifyResult
	bad := func(index int64, format string, args ...any) error {
		return &audit.VerifyError{Index: index, Problem: fmt.Sprintf(format, args...)}
	}
	// A live vault keeps appending while it is verified: check the log as
	// it was when verification started, and judge truncation only by
	// checkpoints signed before then.
	start := time.Now()
	var end int64
	if err := s.View(ctx, func(tx storage.ReadTx) error {
		h, err := tx.AuditHead()
		end = h.Next
		return err
	}); err != nil {
		return res, err
	}
	charges := map[int64]ledgerCharge{} // dp releases that charged the ledger, by event
	pruned := map[int64]bool{}
	from := int64(0)
	for from < end {
		var recs []storage.AuditRecord
		var stored [][32]byte
		var cps []*storage.Checkpoint
		var hashStart int64
		err := s.View(ctx, func(tx storage.ReadTx) error {
			recs = recs[:0]
			if err := tx.AuditRecords(from, int(min(verifyChunk, end-from)), func(r storage.AuditRecord) (bool, error) {
				recs = append(recs, r)
				return true, nil
			}); err != nil {
				return err
			}
			if len(recs) == 0 {
				return nil
			}
			// The checkpoints whose trees end inside this chunk: sizes
			// from+1 … last+1 (size from ended the previous chunk).
			last := recs[len(recs)-1].Index
			for at := from; ; {
				c, err := tx.CheckpointCovering(at)
				if errors.Is(err, storage.ErrNotFound) {
					break
				}
				if err != nil {
					return err
				}
				if c.Size > last+1 {
					break
				}
				cps = append(cps, c)
				at = c.Size
			}
			// The stored tree hashes of this chunk's leaves.
			hashStart = audit.StoredHashIndex(from)
			end := audit.StoredHashCount(last + 1)
			count, err := tx.AuditHashCount()
			if err != nil {
				return err
			}
			if count < end {
				if from == 0 && count == 0 {
					return fmt.Errorf("the log has no Merkle tree yet: a vault upgraded and not started since gets it from `censusvault migrate` (or the first start)")
				}
				return bad(max(from, 0), "the store holds %d tree hashes; the first %d events need %d (tree hashes deleted, or the tree was never completed: run `censusvault migrate`)", count, last+1, end)
			}
			idx := make([]int64, 0, end-hashStart)
			for i := hashStart; i < end; i++ {
				idx = append(idx, i)
			}
			stored, err = tx.AuditHashes(idx)
			return err
		})
		if err != nil {
			return res, err
		}
		if len(recs) == 0 {
			break
		}
		// Hashes before this chunk were checked already: read them from
		// the store; this chunk's from what it stores.
		reader := audit.HashReaderFunc(func(indexes []int64) ([][32]byte, error) {
			out := make([][32]byte, len(indexes))
			var older []int64
			for i, x := range indexes {
				if x >= hashStart {
					out[i] = stored[x-hashStart]
				} else {
					older = append(older, x)
				}
			}
			if len(older) > 0 {
				var got [][32]byte
				if err := s.View(ctx, func(tx storage.ReadTx) error {
					var err error
					got, err = tx.AuditHashes(older)
					return err
				}); err != nil {
					return nil, err
				}
				j := 0
				for i, x := range indexes {
					if x < hashStart {
						out[i] = got[j]
						j++
					}
				}
			}
			return out, nil
		})
		for _, r := range recs {
			if !r.Pruned && bytes.Contains(r.Event, chargedMark) {
				if c, ok := chargeOf(r.Event); ok {
					charges[r.Index] = c
				}
			}
			ar := audit.Record{Index: r.Index, Event: r.Event, LeafHash: r.LeafHash, ChainHash: r.ChainHash}
			if r.Pruned {
				err = v.AddWithheld(r.Index, r.LeafHash, r.ChainHash)
				res.Pruned++
				pruned[r.Index] = true
			} else {
				err = v.Add(ar)
			}
			if err != nil {
				return res, err
			}
			want, err := audit.StoredHashes(r.Index, r.LeafHash, reader)
			if err != nil {
				return res, err
			}
			at := audit.StoredHashIndex(r.Index) - hashStart
			for k, h := range want {
				if stored[at+int64(k)] != h {
					return res, bad(r.Index, "stored Merkle tree hash %d does not match the leaves (tree altered)", hashStart+at+int64(k))
				}
			}
			tb.Add(r.LeafHash)
			for len(cps) > 0 && cps[0].Size == tb.Size() {
				c := cps[0]
				cps = cps[1:]
				var cp audit.Checkpoint
				if verifierKey != "" {
					cp, err = audit.OpenCheckpoint(c.Note, verifierKey)
				} else {
					cp, err = audit.ParseCheckpoint(noteBody(c.Note))
				}
				if err != nil {
					return res, bad(c.Size-1, "checkpoint of size %d: %v", c.Size, err)
				}
				if cp.Size != c.Size || cp.Root != tb.Root() {
					return res, bad(c.Size-1, "checkpoint of size %d does not match the log's Merkle root (log rewritten under a checkpoint)", c.Size)
				}
				res.Checkpoints++
			}
			if progress != nil && v.Count()%10000 == 0 {
				progress(v.Count())
			}
		}
		from = recs[len(recs)-1].Index + 1
	}
	res.Events, res.Head, res.Root = v.Count(), v.Head(), tb.Root()
	if res.Events < end {
		return res, bad(res.Events, "the log's head says %d events, but only %d are stored: events were removed from its end", end, res.Events)
	}
	// A checkpoint, signed before verification started, that is larger
	// than the log means events were cut from its end. (Checkpoints grow
	// with time, so if the smallest one past the log is newer, so are the
	// rest.)
	var beyond *storage.Checkpoint
	if err := s.View(ctx, func(tx storage.ReadTx) error {
		c, err := tx.CheckpointCovering(res.Events)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		beyond = c
		return err
	}); err != nil {
		return res, err
	}
	if beyond != nil && beyond.CreatedAt.Before(start) {
		return res, bad(res.Events, "the log ends after %d events, but a checkpoint covers %d: events were removed from its end (truncated)", res.Events, beyond.Size)
	}
	// The privacy ledger is the sum of its debits: each must be the
	// charge a release event recorded, and each charging release must
	// have its debit — a debit removed would un-spend budget.
	var debits []storage.LedgerDebit
	if err := s.View(ctx, func(tx storage.ReadTx) error {
		return tx.LedgerDebits(-1, func(d storage.LedgerDebit) (bool, error) {
			if d.AuditIndex < end {
				debits = append(debits, d)
			}
			return true, nil
		})
	}); err != nil {
		return res, err
	}
	for _, d := range debits {
		c, ok := charges[d.AuditIndex]
		switch {
		case pruned[d.AuditIndex]:
			// Its event's body was pruned: nothing to compare with.
		case !ok:
			return res, bad(d.AuditIndex, "a privacy-ledger debit names event %d, which is not a dp release that charged the ledger (ledger altered)", d.AuditIndex)
		case c.project != d.Project || c.actor != "user:"+d.Researcher || c.rho != zcdp.Rho(d.Rho).String():
			return res, bad(d.AuditIndex, "the privacy-ledger debit of event %d does not match the charge the event recorded (ledger altered)", d.AuditIndex)
		}
		delete(charges, d.AuditIndex)
		res.LedgerDebits++
	}
	if len(charges) > 0 {
		i := slices.Min(slices.Collect(maps.Keys(charges)))
		return res, bad(i, "event %d charged the privacy ledger, but the ledger holds no debit for it: budget was un-spent (ledger altered)", i)
	}
	var err error
	res.GrantLogEntries, err = verifyGrantLog(ctx, s, end)
	return res, err
}

// chargedMark is in the reason of every dp release that charged the
// privacy ledger (describeCharge): a cheap test before decoding.
var chargedMark = []byte("dp: charged")

// ledgerCharge is what a charging release event says of its debit.
type ledgerCharge struct{ project, actor, rho string }

// chargeOf reads the charge a dp release event recorded.
func chargeOf(raw []byte) (ledgerCharge, bool) {
	ev, err := audit.Decode(raw)
	if err != nil || ev.Action != actionTable || ev.Outcome != "ok" || !strings.Contains(ev.Reason, string(chargedMark)) {
		return ledgerCharge{}, false
	}
	n, err := tables.ParseDPNorm(ev.Request)
	if err != nil {
		return ledgerCharge{}, false
	}
	return ledgerCharge{project: n.Project, actor: ev.Actor, rho: n.Rho}, true
}

// noteBody is the text a signed note signs (what precedes the blank line).
func noteBody(note []byte) string {
	s := string(note)
	if i := strings.Index(s, "\n\n"); i >= 0 {
		return s[:i+1]
	}
	return s
}

func joinProblems(p []string) string {
	if len(p) > 5 {
		return strings.Join(p[:5], "; ") + fmt.Sprintf("; and %d more", len(p)-5)
	}
	return strings.Join(p, "; ")
}
