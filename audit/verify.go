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

	// A withheld record has no bytes to check: only its link.
	problemWithheldChain = "chain hash mismatch at a withheld event (its leaf or chain hash altered, or events removed or reordered)"

	// Problems only an export can show (see VerifyExport). Line numbers
	// count from 1, the checkpoint line.
	problemLine      = "export line %d: %s"
	problemTruncated = "export ends after %d of the checkpoint's %d leaves (truncated)"
	problemTrailing  = "data after the checkpoint's %d leaves (the export holds more than the checkpoint covers, or was altered)"
	problemRoot      = "Merkle root of the %d leaves does not match the checkpoint (the log was rewritten, or the checkpoint is another log's)"
	problemRollback  = "the log is shorter than a checkpoint seen before (size %d): truncated or rolled back"
	problemFork      = "the log was rewritten before index %d: it does not extend a checkpoint seen before (fork)"
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

// AddWithheld verifies the next record when its event is withheld from
// the reader (pruned, or outside the reader's scope) and only its leaf and
// chain hashes are known. It checks the index as Add does and that chain
// links leaf to the previous record; it cannot check leaf against bytes it
// does not have. Failures are sticky, as for Add.
func (v *Verifier) AddWithheld(index int64, leaf, chain [32]byte) error {
	if v.err != nil {
		return v.err
	}
	err := v.checkIndex(index)
	if err == nil {
		err = v.link(index, leaf, chain, problemWithheldChain)
	}
	if err != nil {
		v.err = err
		return err
	}
	v.next++
	v.count++
	return nil
}

func (v *Verifier) checkIndex(index int64) *VerifyError {
	switch {
	case index < 0:
		return &VerifyError{Index: index, Problem: problemNegative}
	case index > v.next:
		return &VerifyError{Index: v.next, Problem: fmt.Sprintf(problemMissing, index)}
	case index < v.next:
		return &VerifyError{Index: index, Problem: problemDuplicate}
	}
	return nil
}

// link checks that chain is ChainHash(head, leaf) and advances the head.
func (v *Verifier) link(index int64, leaf, chain [32]byte, problem string) *VerifyError {
	want := ChainHash(v.head, leaf)
	if subtle.ConstantTimeCompare(want[:], chain[:]) != 1 {
		return &VerifyError{Index: index, Problem: problem}
	}
	v.head = want
	return nil
}

func (v *Verifier) check(r Record) *VerifyError {
	if err := v.checkIndex(r.Index); err != nil {
		return err
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
	return v.link(r.Index, leaf, r.ChainHash, problemChainHash)
}

// Count returns the number of records verified so far, withheld ones
// included.
func (v *Verifier) Count() int64 { return v.count }

// Head returns the chain hash of the last verified record, or Genesis if
// none has been verified. After a full export verifies, the auditor compares
// it with the head the vault published.
func (v *Verifier) Head() [32]byte { return v.head }
