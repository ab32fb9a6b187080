package audit_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/audit"
)

// verifyAll feeds recs to a fresh Verifier and returns it with the first
// error, checking that the error sticks.
func verifyAll(t *testing.T, recs []audit.Record) (*audit.Verifier, *audit.VerifyError) {
	t.Helper()
	v := audit.NewVerifier()
	for _, r := range recs {
		err := v.Add(r)
		if err == nil {
			continue
		}
		var ve *audit.VerifyError
		if !errors.As(err, &ve) {
			t.Fatalf("Add error %T %v, want *VerifyError", err, err)
		}
		count := v.Count()
		if again := v.Add(recs[0]); again != err {
			t.Errorf("Add after failure = %v, want the same error %v", again, err)
		}
		if v.Count() != count {
			t.Errorf("Count moved after failure: %d -> %d", count, v.Count())
		}
		return v, ve
	}
	return v, nil
}

func TestVerifyGoodChain(t *testing.T) {
	v := audit.NewVerifier()
	if v.Count() != 0 || v.Head() != audit.Genesis {
		t.Fatalf("new Verifier: Count %d, Head %x; want 0 and Genesis", v.Count(), v.Head())
	}
	recs := buildLog(t, 100)
	v, err := verifyAll(t, recs)
	if err != nil {
		t.Fatalf("good chain: %v", err)
	}
	if v.Count() != 100 {
		t.Errorf("Count = %d, want 100", v.Count())
	}
	if v.Head() != recs[99].ChainHash {
		t.Errorf("Head = %x, want last chain hash %x", v.Head(), recs[99].ChainHash)
	}
}

// reseal recomputes the hashes of recs[from:] as a forger with write access
// to storage would, so only the chain (or a published head) can catch them.
func reseal(recs []audit.Record, from int) {
	prev := audit.Genesis
	if from > 0 {
		prev = recs[from-1].ChainHash
	}
	for i := from; i < len(recs); i++ {
		recs[i].LeafHash = audit.LeafHash(recs[i].Event)
		recs[i].ChainHash = audit.ChainHash(prev, recs[i].LeafHash)
		prev = recs[i].ChainHash
	}
}

// altered returns a copy of b with one byte of the actor's name changed:
// still a valid, canonical event, only the hashes can tell.
func altered(b []byte) []byte {
	b = bytes.Clone(b)
	i := bytes.Index(b, []byte(`"actor":"user:enum`)) + len(`"actor":"user:`)
	b[i] ^= 0x01 // 'e' -> 'd'
	return b
}

func TestVerifyTamper(t *testing.T) {
	const n, k = 100, 17
	tests := []struct {
		name      string
		tamper    func(recs []audit.Record) []audit.Record
		wantIndex int64
		wantCount int64 // records accepted before the failure
		problem   string
	}{
		{
			name: "flip one byte of an event",
			tamper: func(r []audit.Record) []audit.Record {
				r[k].Event = altered(r[k].Event)
				return r
			},
			wantIndex: k, wantCount: k, problem: "leaf hash mismatch",
		},
		{
			name: "flip one byte and fix the leaf hash",
			tamper: func(r []audit.Record) []audit.Record {
				r[k].Event = altered(r[k].Event)
				r[k].LeafHash = audit.LeafHash(r[k].Event)
				return r
			},
			wantIndex: k, wantCount: k, problem: "chain hash mismatch (event altered, removed or reordered)",
		},
		{
			name: "rewrite an event and fix its hashes, not its successors'",
			tamper: func(r []audit.Record) []audit.Record {
				r[k].Event = altered(r[k].Event)
				r[k].LeafHash = audit.LeafHash(r[k].Event)
				r[k].ChainHash = audit.ChainHash(r[k-1].ChainHash, r[k].LeafHash)
				return r
			},
			wantIndex: k + 1, wantCount: k + 1, problem: "chain hash mismatch",
		},
		{
			name: "delete one record",
			tamper: func(r []audit.Record) []audit.Record {
				return slices.Delete(r, k, k+1)
			},
			wantIndex: k, wantCount: k, problem: "missing or out of order (next record has index 18)",
		},
		{
			name: "delete one record and renumber the rest",
			tamper: func(r []audit.Record) []audit.Record {
				r = slices.Delete(r, k, k+1)
				for i := k; i < len(r); i++ {
					r[i].Index = int64(i)
				}
				return r
			},
			wantIndex: k, wantCount: k, problem: "event says index 18, record says 17",
		},
		{
			name: "delete one record, renumber and reseal the rest",
			tamper: func(r []audit.Record) []audit.Record {
				r = slices.Delete(r, k, k+1)
				for i := k; i < len(r); i++ {
					r[i].Index = int64(i)
				}
				reseal(r, k)
				return r
			},
			wantIndex: k, wantCount: k, problem: "event says index 18, record says 17",
		},
		{
			name: "swap two records",
			tamper: func(r []audit.Record) []audit.Record {
				r[k], r[k+1] = r[k+1], r[k]
				return r
			},
			wantIndex: k, wantCount: k, problem: "missing or out of order",
		},
		{
			name: "swap two events under their record indices",
			tamper: func(r []audit.Record) []audit.Record {
				r[k].Event, r[k+1].Event = r[k+1].Event, r[k].Event
				r[k].LeafHash, r[k+1].LeafHash = r[k+1].LeafHash, r[k].LeafHash
				return r
			},
			wantIndex: k, wantCount: k, problem: "event says index 18, record says 17",
		},
		{
			name: "alter a leaf hash",
			tamper: func(r []audit.Record) []audit.Record {
				r[k].LeafHash[31] ^= 0x80
				return r
			},
			wantIndex: k, wantCount: k, problem: "leaf hash mismatch",
		},
		{
			name: "alter a chain hash",
			tamper: func(r []audit.Record) []audit.Record {
				r[k].ChainHash[0] ^= 0x01
				return r
			},
			wantIndex: k, wantCount: k, problem: "chain hash mismatch",
		},
		{
			name: "duplicate a record",
			tamper: func(r []audit.Record) []audit.Record {
				return slices.Insert(r, k+1, r[k])
			},
			wantIndex: k, wantCount: k + 1, problem: "duplicate",
		},
		{
			name: "non-canonical event, resealed",
			tamper: func(r []audit.Record) []audit.Record {
				r[k].Event = bytes.Replace(r[k].Event, []byte(`"action":`), []byte(`"action": `), 1)
				reseal(r, k)
				return r
			},
			wantIndex: k, wantCount: k, problem: "event bytes rejected: audit event not in canonical form",
		},
		{
			name: "empty request added, resealed",
			tamper: func(r []audit.Record) []audit.Record {
				r[k].Event = bytes.Replace(r[k].Event, []byte(`,"resources":`), []byte(`,"request":"","resources":`), 1)
				reseal(r, k)
				return r
			},
			wantIndex: k, wantCount: k, problem: `event bytes rejected: audit event not in canonical form: "request" is empty`,
		},
		{
			name: "alter a release's request",
			tamper: func(r []audit.Record) []audit.Record {
				// Record 13 is a table release in logEvent's mix; were it
				// not, nothing would change and the log would verify.
				const rel = 13
				r[rel].Event = bytes.Replace(r[rel].Event, []byte(`"as_of\":1013,`), []byte(`"as_of\":1012,`), 1)
				return r
			},
			wantIndex: 13, wantCount: 13, problem: "leaf hash mismatch",
		},
		{
			name: "event replaced by garbage, resealed",
			tamper: func(r []audit.Record) []audit.Record {
				r[k].Event = []byte("{}")
				reseal(r, k)
				return r
			},
			wantIndex: k, wantCount: k, problem: "event bytes rejected: malformed audit event",
		},
		{
			name: "first record missing",
			tamper: func(r []audit.Record) []audit.Record {
				return r[1:]
			},
			wantIndex: 0, wantCount: 0, problem: "missing or out of order (next record has index 1)",
		},
		{
			name: "negative index",
			tamper: func(r []audit.Record) []audit.Record {
				r[0].Index = -1
				return r
			},
			wantIndex: -1, wantCount: 0, problem: "negative",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := tt.tamper(buildLog(t, n))
			v, err := verifyAll(t, recs)
			if err == nil {
				t.Fatalf("tampered log verified (Count %d)", v.Count())
			}
			if err.Index != tt.wantIndex || !strings.Contains(err.Problem, tt.problem) {
				t.Errorf("error %q; want index %d and problem containing %q", err, tt.wantIndex, tt.problem)
			}
			if v.Count() != tt.wantCount {
				t.Errorf("Count = %d, want %d", v.Count(), tt.wantCount)
			}
		})
	}
}

// A truncated log is a valid prefix: the chain cannot tell, but its head
// differs from the head the vault published for the full log.
func TestVerifyTruncationChangesHead(t *testing.T) {
	recs := buildLog(t, 100)
	v, err := verifyAll(t, recs[:99])
	if err != nil {
		t.Fatalf("prefix: %v", err)
	}
	if v.Count() != 99 || v.Head() == recs[99].ChainHash {
		t.Errorf("prefix: Count %d, Head %x; want 99 and a head other than the full log's", v.Count(), v.Head())
	}
}

// Every single-bit change anywhere in an event's bytes is caught at that
// event, whichever check catches it.
func TestVerifyEveryByteFlip(t *testing.T) {
	const k = 17
	good := buildLog(t, k+2)
	for i := range len(good[k].Event) {
		for _, mask := range []byte{0x01, 0x20, 0x80} {
			recs := slices.Clone(good)
			recs[k].Event = bytes.Clone(good[k].Event)
			recs[k].Event[i] ^= mask
			_, err := verifyAll(t, recs)
			if err == nil || err.Index != k {
				t.Fatalf("byte %d ^ %#x: error %v, want one at index %d", i, mask, err, k)
			}
		}
	}
}

func TestVerifyErrorMessage(t *testing.T) {
	err := &audit.VerifyError{Index: 17, Problem: "chain hash mismatch (event altered, removed or reordered)"}
	if got, want := err.Error(), "audit event 17: chain hash mismatch (event altered, removed or reordered)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	recs := buildLog(t, 20)
	recs[17].ChainHash[5] ^= 0xff
	_, verr := verifyAll(t, recs)
	if verr == nil || verr.Error() != err.Error() {
		t.Errorf("altered chain hash: %v, want %q", verr, err.Error())
	}
}

func TestSealLinksToPrev(t *testing.T) {
	prev := [32]byte{1, 2, 3}
	r, err := audit.Seal(prev, logEvent(5))
	if err != nil {
		t.Fatal(err)
	}
	if r.Index != 5 || r.LeafHash != audit.LeafHash(r.Event) || r.ChainHash != audit.ChainHash(prev, r.LeafHash) {
		t.Errorf("Seal = %+v, inconsistent with LeafHash/ChainHash", r)
	}
	if r2, _ := audit.Seal(audit.Genesis, logEvent(5)); r2.ChainHash == r.ChainHash {
		t.Error("chain hash does not depend on the previous hash")
	}
}
