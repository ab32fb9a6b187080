package storage

import "time"

// Extracts for the processing centre (schema 10): the registered
// processing environments an extract may be encrypted to, and the
// proposals of extracts with their approval by a second person. Both are
// append-only; the backends' database triggers hold it.

// ExtractReader reads environments, extract proposals and the
// submissions of an extract. ReadTx embeds it.
type ExtractReader interface {
	// Environment returns one registered processing environment, a
	// retired one too; ErrNotFound if no environment has that name.
	Environment(name string) (*Environment, error)
	// Environments calls fn for every environment, retired ones too, in
	// name order (byte order), until fn returns false or an error (which
	// Environments returns). The rows are read before fn first runs.
	Environments(fn func(Environment) (bool, error)) error
	// ExtractProposal returns one proposed extract, pending or
	// approved; ErrNotFound if none has that Seq.
	ExtractProposal(seq int64) (*ExtractProposal, error)
	// ExtractProposals calls fn for every proposed extract, in Seq
	// order, until fn returns false or an error (which ExtractProposals
	// returns). The rows are read before fn first runs.
	ExtractProposals(fn func(ExtractProposal) (bool, error)) error
	// ExtractSubmissions calls fn for every submission of f: of one of
	// f.Communes and of form f.Form version f.FormVersion, whose
	// AuditIndex is at most f.AsOf and which no submission with an
	// AuditIndex at most f.AsOf supersedes (the submissions current as
	// of f.AsOf), in AuditIndex order (the order of submissions sharing
	// an index is the backend's), until fn returns false or an error
	// (which ExtractSubmissions returns). Each comes with the parts of
	// f.Classes only: Operational if "operational" is among them, the
	// Sealed parts of "identifying" and "analytic" if they are; the
	// receipt and the payload digest are not read. Rows are read in
	// pages (a range of the audit_index index) and fn runs between
	// reads, so a census is never held in memory and fn may use the
	// transaction.
	ExtractSubmissions(f ExtractFilter, fn func(Submission) (bool, error)) error
}

// ExtractWriter stores environments and extract proposals. Tx embeds
// it.
type ExtractWriter interface {
	// InsertEnvironment registers a processing environment.
	// ErrConflict if one of that name exists, retired or not (a name
	// always means one recipient). Name, Recipient, CreatedBy and at
	// least one class must be given, CreatedAt not zero, AuditIndex >= 0;
	// RetiredBy, RetiredAt and RetireAudit must be empty.
	InsertEnvironment(e *Environment) error
	// RetireEnvironment marks an environment retired by by at at,
	// recorded by audit event auditIndex. ErrNotFound if there is no
	// such environment; ErrConflict if it is retired already (the first
	// retirement is kept). It is the only change the store makes to an
	// environment: the backends' triggers refuse every other UPDATE,
	// and any DELETE, of extract_environments.
	RetireEnvironment(name, by string, at time.Time, auditIndex int64) error
	// ProposeExtract stores a proposed extract and sets p.Seq to the Seq
	// it was given: one more than the highest stored (1 for the first).
	// Environment, Form, Format, Purpose and ProposedBy must not be
	// empty, Areas and Classes not empty (nor hold ""), FormVersion
	// positive, ProposedAt not zero, ProposalAudit >= 0; ApprovedBy,
	// ApprovedAt and ApprovalAudit must be empty.
	ProposeExtract(p *ExtractProposal) error
	// ApproveExtract marks a pending proposal approved by by at at,
	// recorded by audit event auditIndex. ErrNotFound if no proposal has
	// that Seq; ErrConflict if it is already approved (the first
	// approval is kept). It is the only change the store makes to a
	// proposal: the backends' triggers refuse every other UPDATE, and
	// any DELETE, of extract_proposals.
	ApproveExtract(seq int64, by string, at time.Time, auditIndex int64) error
}

// Environment is a registered processing environment: the age recipient
// the processing centre receives extracts with, and the field classes it
// may receive. It is never removed, only retired.
type Environment struct {
	Name      string   // [a-z0-9][a-z0-9._-]{0,63} (the broker checks the form)
	Recipient string   // an age recipient, in normal form
	Classes   []string // the field classes it may receive
	CreatedBy string
	CreatedAt time.Time
	// AuditIndex is the audit event of the registration, appended by
	// the caller in the same transaction.
	AuditIndex  int64
	RetiredBy   string    // "" while in use
	RetiredAt   time.Time // zero while in use
	RetireAudit int64     // the audit event of the retirement; 0 while in use
}

// ExtractProposal is a proposed extract of microdata for a processing
// environment, and its approval by a second person once approved.
type ExtractProposal struct {
	Seq         int64 // 1, 2, … in proposal order; assigned by ProposeExtract
	Environment string
	Areas       []string // area codes, each with its subtree
	Form        string
	FormVersion int
	Classes     []string // the field classes the extract carries
	Format      string   // the broker's formats (JSON Lines, CSV)
	Purpose     string
	ProposedBy  string
	ProposedAt  time.Time
	// ProposalAudit is the audit event of the proposal: the extract
	// holds the submissions current as of it.
	ProposalAudit int64
	ApprovedBy    string    // "" while pending
	ApprovedAt    time.Time // zero while pending
	ApprovalAudit int64     // the audit event of the approval; 0 while pending
}

// ExtractFilter selects the submissions of an extract.
type ExtractFilter struct {
	Communes    []string // an empty list selects none
	Form        string
	FormVersion int
	AsOf        int64    // an audit index
	Classes     []string // the parts to read: "identifying", "analytic", "operational"
}
