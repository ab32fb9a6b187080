package audit

import (
	"crypto/subtle"
	"fmt"
)

// Problems a Verifier reports in VerifyError.Problem. The texts are part of
// what an auditor reads, so they say what the evidence suggests.
const (
	problemMissing   = "missing or out of order (next record has index %d)"
	problemDuplicate = "duplicate or out of order (index already verified)"
	problemNegative  = "negative record index"
	problemDecode    = "event bytes rejected: %v"
	problemIndex     = "event says index %d, record says %d (event moved)"
	problemLeafHash  = "leaf hash mismatch (event or leaf hash altered)"
	problemChainHash = "chain hash mismatch (event altered, removed or reordered)"
)

// VerifyError reports the first problem a Verifier found. Index is the log
// position where the chain breaks: the record's own index, or, when records
// are missing, the first index that did not arrive.
type VerifyError struct {
	Index   int64
	Problem string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("audit event %d: %s", e.Index, e.Problem)
}

// Verifier checks an exported log one record at a time, in index order, in
// constant memory, so an auditor can verify millions of events offline. It
// is not safe for concurrent use.
type Verifier struct {
	next  int64    // index the next record must have
	head  [32]byte // chain hash of the last verified record
	count int64    // records verified
	err   *VerifyError
}

// NewVerifier returns a Verifier for a log that starts at index 0 from
// Genesis.
func NewVerifier() *Verifier {
	return &Verifier{head: Genesis}
}

// Add verifies r as the next record. It checks, in order: that r has the
// expected next index (a gap, an out-of-order record or a duplicate fails
// here), that the event decodes and is canonical, that the event's own index
// equals r.Index, that r.LeafHash matches the event bytes, and that
// r.ChainHash links it to the previous record. The first failure is returned
// as a *VerifyError and every later Add returns that same error: once the
// chain is broken nothing after it can be trusted.
func (v *Verifier) Add(r Record) error {
	if v.err != nil {
		return v.err
	}
	if err := v.check(r); err != nil {
		v.err = err
		return err
	}
	v.next++
	v.count++
	return nil
}

func (v *Verifier) check(r Record) *VerifyError {
	switch {
	case r.Index < 0:
		return &VerifyError{Index: r.Index, Problem: problemNegative}
	case r.Index > v.next:
		return &VerifyError{Index: v.next, Problem: fmt.Sprintf(problemMissing, r.Index)}
	case r.Index < v.next:
		return &VerifyError{Index: r.Index, Problem: problemDuplicate}
	}
	e, err := Decode(r.Event)
	if err != nil {
		return &VerifyError{Index: r.Index, Problem: fmt.Sprintf(problemDecode, err)}
	}
	if e.Index != r.Index {
		return &VerifyError{Index: r.Index, Problem: fmt.Sprintf(problemIndex, e.Index, r.Index)}
	}
	leaf := LeafHash(r.Event)
	if subtle.ConstantTimeCompare(leaf[:], r.LeafHash[:]) != 1 {
		return &VerifyError{Index: r.Index, Problem: problemLeafHash}
	}
	chain := ChainHash(v.head, leaf)
	if subtle.ConstantTimeCompare(chain[:], r.ChainHash[:]) != 1 {
		return &VerifyError{Index: r.Index, Problem: problemChainHash}
	}
	v.head = chain
	return nil
}

// Count returns the number of records verified so far.
func (v *Verifier) Count() int64 { return v.count }

// Head returns the chain hash of the last verified record, or Genesis if
// none has been verified. After a full export verifies, the auditor compares
// it with the head the vault published.
func (v *Verifier) Head() [32]byte { return v.head }
