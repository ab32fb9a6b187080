package storage

import "time"

// Revisions of the area tree (schema 12). The areas stored at init are
// revision 0 and never change; each later revision is a document the
// broker parses and applies (broker/area), stored here as given,
// numbered 1, 2, … and append-only: the backends' database triggers
// refuse every UPDATE and DELETE of area_revisions, so the tree of any
// revision can be rebuilt. Storage does not interpret the document.

// AreaRevisionReader reads the revisions of the area tree and counts
// households by number, which the mapping of retired EAs needs. ReadTx
// embeds it.
type AreaRevisionReader interface {
	// AreaRevisions calls fn for every revision whose Number is greater
	// than after, in Number order, until fn returns false or an error
	// (which AreaRevisions returns). The rows are read before fn first
	// runs; revisions are few (a handful a census).
	AreaRevisions(after int64, fn func(AreaRevision) (bool, error)) error
	// HouseholdsIn counts the current submissions (not superseded)
	// stored under EA code area whose household number is from…to (both
	// included): a range of the index that keeps one current submission
	// per (area, household_no), whatever the range.
	HouseholdsIn(area string, from, to int64) (int64, error)
}

// AreaRevisionWriter appends revisions of the area tree. Tx embeds it.
type AreaRevisionWriter interface {
	// AppendAreaRevision stores a revision. Its Number must be one more
	// than the highest stored (1 for the first): otherwise ErrConflict
	// (another revision was stored since the caller read them). At must
	// not be zero, AuditIndex >= 0, Document not empty and SHA256 the
	// hex SHA-256 of Document. A stored revision never changes and is
	// never removed.
	AppendAreaRevision(r *AreaRevision) error
}

// AreaRevision is one stored revision of the area tree.
type AreaRevision struct {
	Number     int64 // 1, 2, …
	At         time.Time
	AuditIndex int64  // the audit event that recorded the revision
	Document   []byte // the revision document, as given
	SHA256     string // hex SHA-256 of Document
}
