package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
)

// ---- Red-team finding 4: guessing withheld events from their leaf hashes ----

func leafOf(t *testing.T, b64 string) [32]byte {
	t.Helper()
	var h [32]byte
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != len(h) {
		t.Fatalf("leaf hash %q is not 32 bytes of base64", b64)
	}
	copy(h[:], b)
	return h
}

// guessSpace is what a subtree-scoped auditor can enumerate about an
// event withheld from them: who (the vault's users), what (the actions
// there are), where (the area codes) and when (every second between the
// visible events on either side of it, since the log is in time order).
type guessSpace struct {
	actors, actions, areas []string
	from, to               time.Time
}

// size is the number of candidates per template and nonce guess.
func (s guessSpace) size() int {
	return len(s.actors) * len(s.actions) * len(s.areas) * (int(s.to.Sub(s.from)/time.Second) + 1)
}

// bruteForce is the attack: hash SHA-256(0x00 ‖ canonical candidate) for
// every candidate and compare with the withheld leaf hash. The attacker
// is given more than a real one has: every other field (roles, rule,
// resources, policy hash, outcome, reason) is copied from the true event,
// so all they lack is the nonce, which they guess as absent (the
// version-1 form) or all zeros. It returns the matching candidate's
// bytes, or nil, and how many candidates were hashed.
func bruteForce(t *testing.T, truth *audit.Event, s guessSpace, leaf [32]byte) (found []byte, tried int) {
	t.Helper()
	c := *truth
	for _, nonce := range [][]byte{nil, make([]byte, audit.NonceSize)} {
		c.Nonce = nonce
		for _, actor := range s.actors {
			c.Actor = actor
			for _, action := range s.actions {
				c.Action = action
				for _, area := range s.areas {
					c.Area = area
					for at := s.from; !at.After(s.to); at = at.Add(time.Second) {
						c.Time = at
						b, err := c.Encode()
						if err != nil {
							t.Fatalf("candidate does not encode: %v", err)
						}
						tried++
						if audit.LeafHash(b) == leaf {
							return b, tried
						}
					}
				}
			}
		}
	}
	return nil, tried
}

// appendVersion1 appends ev as an event written before nonces existed
// (version 1, no nonce), with its Merkle tree hashes, as a log upgraded
// from then holds it.
func (v *vault) appendVersion1(ev *audit.Event) int64 {
	v.t.Helper()
	var idx int64
	if err := v.Store.Update(context.Background(), func(tx storage.Tx) error {
		r, err := tx.AppendAudit(func(h storage.AuditHead) (storage.AuditRecord, error) {
			ev.Index = h.Next
			r, err := audit.Seal(h.ChainHash, ev)
			if err != nil {
				return storage.AuditRecord{}, err
			}
			hashes, err := audit.StoredHashes(r.Index, r.LeafHash, audit.HashReaderFunc(tx.AuditHashes))
			if err != nil {
				return storage.AuditRecord{}, err
			}
			return storage.AuditRecord{Index: r.Index, Event: r.Event, LeafHash: r.LeafHash, ChainHash: r.ChainHash,
				HashIndex: audit.StoredHashIndex(r.Index), Hashes: hashes}, nil
		})
		idx = r.Index
		return err
	}); err != nil {
		v.t.Fatal(err)
	}
	return idx
}

// TestWithheldEventsResistGuessing is the attack of red-team finding 4:
// an auditor scoped to commune A exports the log and brute-forces the
// events of commune B withheld from it over a small candidate space that
// contains each true event. Events written now (version 2, with a nonce)
// are not found; an event written before nonces (version 1) is, which
// shows the search works and that the nonce alone stops it. Unauthenticated
// attackers fare the same with the leaf hashes the public inclusion-proof
// route hands out.
func TestWithheldEventsResistGuessing(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	ctx := t.Context()
	tok, err := v.B.AddUser(ctx, "cli:test", broker.NewUser{Name: "auditor-a", Role: policy.Auditor, Area: communeA})
	if err != nil {
		t.Fatal(err)
	}
	v.Tokens["auditor-a"] = tok.Reveal()
	tick := func() { v.Clock.Advance(3 * time.Second) }

	// Activity in both communes, a few seconds apart, with commune A's
	// events (visible to the attacker) around commune B's.
	tick()
	v.get("steering-a", "/v1/progress?area="+communeA)
	tick()
	// An event of commune B from before nonces: version 1.
	old := &audit.Event{
		Time: v.Clock.Now(), Actor: "user:tl-b", Roles: []string{string(policy.TeamLeader)},
		Action: string(policy.ReadProgress), Area: communeB, Resources: []string{},
		Decision: "allow", Rule: "grant team_leader@18073; p, enumerator, progress.read, allow", PolicyHash: v.policyHash(), Outcome: "ok",
		Reason: "depth 1, 3 rows",
	}
	oldIndex := v.appendVersion1(old)
	tick()
	v.get("steering-a", "/v1/progress?area="+communeA)
	tick()
	// Events of commune B written now: version 2.
	v.get("tl-b", "/v1/progress?area="+communeB)
	tick()
	v.receipt(v.deposit("enum-b1", v.seal(encode(t, household(eaB1, 1)))), http.StatusCreated)
	tick()
	v.get("tl-b", "/v1/progress?area="+eaB1)
	tick()
	v.receipt(v.deposit("enum-a1", v.seal(encode(t, household(eaA1, 1)))), http.StatusCreated)
	tick()
	v.get("steering-a", "/v1/progress?area="+communeA)
	cp, err := v.B.MakeCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}

	export, err := v.exportOf("auditor-a", cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.VerifyExport(bytes.NewReader(export), audit.ExportOpts{VerifierKey: v.B.AuditVerifierKey(), Checkpoint: cp.Note}); err != nil {
		t.Fatalf("the scoped export of a log of version-1 and version-2 events does not verify: %v", err)
	}
	lines := exportLines(t, export)
	stored := v.auditRecords(0)

	var users []string
	for _, u := range testUsers {
		users = append(users, "user:"+string(u.Name))
	}
	space := guessSpace{
		actors:  append(users, "anonymous", "cli:test"),
		actions: []string{"submission.deposit", "receipt.read", "progress.read", "audit.read", "audit.export", "table.request", "auth.authenticate"},
		areas:   []string{nation, province, district, communeA, communeB, eaA1, eaA2, eaA3, eaB1, eaB2},
	}
	publicSize := strconv.FormatInt(cp.Size, 10)
	var oldFound, newAttacked int
	for i, l := range lines {
		truth, err := audit.Decode(stored[l.Index].Event)
		if err != nil {
			t.Fatal(err)
		}
		if l.Withheld == "" {
			// In scope: exported with its nonce, when it has one.
			if truth.Nonce != nil && !bytes.Contains(l.Event, []byte(`"nonce":"`)) {
				t.Errorf("event %d exported without its nonce", l.Index)
			}
			continue
		}
		if truth.Actor != "user:tl-b" && truth.Actor != "user:enum-b1" {
			continue // the targets: commune B's events
		}
		if l.Withheld != string(audit.WithheldOutOfScope) {
			t.Fatalf("event %d withheld as %q", l.Index, l.Withheld)
		}
		// When: between the visible events on either side.
		s := space
		for j := i - 1; j >= 0; j-- {
			if lines[j].Withheld == "" {
				e, _ := audit.Decode(lines[j].Event)
				s.from = e.Time
				break
			}
		}
		for j := i + 1; j < len(lines); j++ {
			if lines[j].Withheld == "" {
				e, _ := audit.Decode(lines[j].Event)
				s.to = e.Time
				break
			}
		}
		if s.from.IsZero() || s.to.IsZero() {
			t.Fatalf("test bug: event %d has no visible event on each side", l.Index)
		}
		// The space contains the true event: every field but the nonce.
		if !slices.Contains(s.actors, truth.Actor) || !slices.Contains(s.actions, truth.Action) || !slices.Contains(s.areas, truth.Area) ||
			truth.Time.Before(s.from) || truth.Time.After(s.to) || truth.Time.Nanosecond() != 0 {
			t.Fatalf("test bug: event %d (%s %s %s %s) is outside the candidate space", l.Index, truth.Actor, truth.Action, truth.Area, truth.Time)
		}
		leaf := leafOf(t, l.LeafHash)
		// A public, unauthenticated attacker gets the same leaf hash: the
		// inclusion proof of the neighbouring leaf starts with it.
		if sib := l.Index ^ 1; sib < cp.Size {
			p := decodeProof(t, v.publicGet(fmt.Sprintf("/v1/audit/proof/inclusion?index=%d&size=%s", sib, publicSize)))
			if len(p) == 0 || [32]byte(p[0]) != leaf {
				t.Errorf("the public proof of leaf %d does not start with leaf %d's hash", sib, l.Index)
			}
		}
		start := time.Now()
		found, tried := bruteForce(t, truth, s, leaf)
		t.Logf("event %d (v%d, %s %s): %d candidates in %v, found: %v", l.Index, map[bool]int{true: 2, false: 1}[truth.Nonce != nil],
			truth.Actor, truth.Action, tried, time.Since(start).Round(time.Millisecond), found != nil)
		if l.Index == oldIndex {
			// Version 1: the attack recovers the event exactly.
			if !bytes.Equal(found, stored[l.Index].Event) {
				t.Errorf("the version-1 event %d was not recovered by brute force over %d candidates: the attack is broken, so its failure below proves nothing", l.Index, tried)
			}
			oldFound++
			continue
		}
		newAttacked++
		if found != nil {
			t.Errorf("withheld event %d recovered by brute force from its leaf hash: %s", l.Index, found)
		}
		if truth.Nonce == nil {
			t.Errorf("event %d of commune B was written without a nonce", l.Index)
		}
		if tried != 2*s.size() {
			t.Errorf("event %d: %d candidates tried, want the whole space of %d", l.Index, tried, 2*s.size())
		}
		// And the search is sound: given the true nonce, the candidate
		// space holds the event.
		if f, _ := bruteForce(t, truth, s, audit.LeafHash(stripNonce(t, truth))); f == nil {
			t.Errorf("test bug: the candidate space misses event %d's content", l.Index)
		}
	}
	if oldFound != 1 || newAttacked != 3 {
		t.Errorf("attacked %d version-1 and %d version-2 withheld events of commune B; want 1 and 3", oldFound, newAttacked)
	}
}

// stripNonce is e's bytes without its nonce: what the attacker's search
// must find when the nonce is known, to show the space holds e.
func stripNonce(t *testing.T, e *audit.Event) []byte {
	t.Helper()
	c := *e
	c.Nonce = nil
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestProofRoutesStopAtTheCheckpoint: the public proof routes answer for
// trees up to the latest signed checkpoint only, so that probing them
// (proof/consistency?new=99999999, or a binary search over sizes) tells
// nobody the log's live size; the refusal has a stable code and is the
// same for every size beyond the checkpoint, and like every public answer
// it is not audited (publicGet checks).
func TestProofRoutesStopAtTheCheckpoint(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	ctx := t.Context()
	for range 3 {
		v.get("steering-a", "/v1/progress?area="+communeA)
	}
	cp, err := v.B.MakeCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The log grows past the checkpoint.
	for range 5 {
		v.get("steering-a", "/v1/progress?area="+communeA)
	}
	live := v.auditHead()
	if live <= cp.Size+3 {
		t.Fatalf("test bug: the log (%d) is not well past the checkpoint (%d)", live, cp.Size)
	}
	liveText := strconv.FormatInt(live, 10)

	signed := cp.Size
	refusal := func(path string, asked int64) string {
		t.Helper()
		r := v.publicGet(path)
		if r.Status != http.StatusNotFound || r.Code(t) != broker.CodeBeyondCheckpoint {
			t.Errorf("%s (the checkpoint has %d events, the log %d): %d %s, want 404 %s", path, signed, live, r.Status, r.Body, broker.CodeBeyondCheckpoint)
			return ""
		}
		msg, _ := r.ErrorBody(t)
		if !strings.Contains(msg, strconv.FormatInt(signed, 10)) {
			t.Errorf("%s: the refusal does not name the checkpoint's size %d: %q", path, signed, msg)
		}
		// The same answer for every size beyond the checkpoint, apart
		// from the size asked for: nothing in it depends on the log.
		return strings.Replace(string(r.Body), strconv.FormatInt(asked, 10), "N", 1)
	}
	var answers []string
	for size := cp.Size + 1; size <= live+2; size++ {
		answers = append(answers,
			refusal(fmt.Sprintf("/v1/audit/proof/consistency?old=1&new=%d", size), size),
			refusal(fmt.Sprintf("/v1/audit/proof/inclusion?index=0&size=%d", size), size))
	}
	for _, huge := range []int64{99999999, 1 << 53} {
		answers = append(answers,
			refusal(fmt.Sprintf("/v1/audit/proof/consistency?old=1&new=%d", huge), huge),
			refusal(fmt.Sprintf("/v1/audit/proof/inclusion?index=0&size=%d", huge), huge))
	}
	for i, a := range answers {
		if a != answers[i%2] {
			t.Errorf("refusals differ with the size asked for:\n%s\n%s", a, answers[i%2])
		}
		if strings.Contains(a, liveText) {
			t.Errorf("a refusal names the log's live size %d: %s", live, a)
		}
	}
	// Up to the checkpoint they answer, and every checkpoint signed
	// later moves the bound.
	decodeProof(t, v.publicGet(fmt.Sprintf("/v1/audit/proof/consistency?old=1&new=%d", cp.Size)))
	decodeProof(t, v.publicGet(fmt.Sprintf("/v1/audit/proof/inclusion?index=%d&size=%d", cp.Size-1, cp.Size)))
	cp2, err := v.B.MakeCheckpoint(ctx)
	if err != nil || cp2.Size < live {
		t.Fatalf("MakeCheckpoint: %v", err)
	}
	decodeProof(t, v.publicGet(fmt.Sprintf("/v1/audit/proof/consistency?old=%d&new=%d", cp.Size, cp2.Size)))
	signed = cp2.Size
	refusal(fmt.Sprintf("/v1/audit/proof/consistency?old=1&new=%d", cp2.Size+1), cp2.Size+1)

	// No public answer carries an event body.
	for _, path := range []string{"/v1/audit/checkpoint", "/v1/keys/audit",
		fmt.Sprintf("/v1/audit/proof/inclusion?index=0&size=%d", cp2.Size),
		fmt.Sprintf("/v1/audit/proof/consistency?old=1&new=%d", cp2.Size)} {
		if r := v.publicGet(path); bytes.Contains(r.Body, []byte(`"action"`)) || bytes.Contains(r.Body, []byte(`"actor"`)) {
			t.Errorf("%s carries an event: %s", path, r.Body)
		}
	}
}
