// Package storage defines what the vault keeps and the transactional
// interface every backend implements.
//
// storage is a leaf: it knows nothing of policy, crypto or audit. It stores
// sealed bytes it cannot read, wrapped keys it cannot unwrap, and audit
// records it does not interpret. The broker composes those packages and
// calls storage inside one transaction per change, so a change and the
// audit event that records it commit together or not at all.
//
// Invariants every backend keeps:
//   - Update returns nil only after its transaction is durable (committed
//     and synced): nothing is acknowledged before that.
//   - At most one current submission per (area, household number).
//   - The audit log is append-only and gap-free: AppendAudit is serialized
//     with every other write and sees the head left by the previous one.
//     A stored record never changes except that PruneAuditEvents may
//     remove its body; its tree hashes and checkpoints never change at
//     all. Database triggers hold this against every code path (an
//     operator who drops them can still tamper: that is what verifying
//     the log against its signed checkpoints finds).
//   - A stored publication point (ReleasePoint) never changes and is
//     never removed; database triggers hold this too.
//
// Backends: storage/sqlite (the embedded default) and storage/postgres
// (several broker instances on one database). Conformance tests that
// every backend must pass live in storage/storagetest.
package storage

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors a backend returns; callers check them with errors.Is.
var (
	// ErrNotFound: no such row.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a uniqueness rule would be broken (same id, or a
	// second current household under one number).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the database could not be reached, was lost, or is
	// busy past its timeout; the caller may retry later. Nothing was
	// acknowledged — but if the connection failed during COMMIT the change
	// may have been written, so writes must be idempotent (the broker's
	// are: a retried deposit finds itself and returns its receipt).
	ErrUnavailable = errors.New("storage unavailable")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
)

// Store is one vault database.
type Store interface {
	// Update runs fn in a write transaction and commits it if fn returns
	// nil. Writes are serialized. When Update returns nil the change is
	// durable. If fn returns an error nothing it wrote is kept and that
	// error is returned. Backends may commit several Updates together
	// (group commit); fn must not have effects outside the transaction.
	Update(ctx context.Context, fn func(Tx) error) error
	// View runs fn in a read-only transaction over a consistent snapshot.
	View(ctx context.Context, fn func(ReadTx) error) error
	Close() error
}

// ReadTx reads within a transaction.
type ReadTx interface {
	// Meta returns a small named value (schema version, policy, digests).
	Meta(key string) (string, error)

	// Areas returns every area row, in insertion order.
	Areas() ([]Area, error)

	// UserByTokenHash finds the user holding the token whose SHA-256 is
	// tokenHash (hex). Revoked and expired users are returned too: the
	// caller decides.
	UserByTokenHash(tokenHash string) (*User, error)
	User(name string) (*User, error)
	// Grants calls fn for every grant of every user, ordered by user,
	// role, area, deny, project (strings in byte order). User and
	// UserByTokenHash return a user's grants in the same order.
	Grants(fn func(user string, g Grant) error) error

	Submission(id string) (*Submission, error)
	// CurrentSubmission is the submission that is not superseded at
	// (area, householdNo).
	CurrentSubmission(area string, householdNo int64) (*Submission, error)
	// Deposited returns the number of current households per EA for the
	// given EA codes; EAs with none are absent from the map.
	Deposited(eas []string) (map[string]int64, error)

	// DataKey returns one data key row, a tombstone too (ShreddedAt
	// set, Wrapped empty): callers check ShreddedAt, so that a shredded
	// key reads as "shredded", not "missing".
	DataKey(class, commune string, version int) (*DataKey, error)
	// DataKeys calls fn for every data key row, tombstones too, ordered
	// by class, commune (both in byte order) and version, until fn
	// returns false or an error (which DataKeys returns). Rows are read
	// in pages and fn runs between reads, so fn may use the transaction,
	// writes included (RewrapDataKey of the row it was given); rows
	// another statement adds behind the current position are not
	// promised.
	DataKeys(fn func(DataKey) (bool, error)) error
	// Keys returns the stored key material for one purpose, newest
	// version first.
	Keys(purpose string) ([]Key, error)

	// AuditHead is the position the next audit record takes.
	AuditHead() (AuditHead, error)
	// AuditRecords calls fn for each record with from <= index, in order,
	// until fn returns false, an error, or limit records (limit <= 0: all).
	// A pruned record (PruneAuditEvents) comes with Pruned set and Event
	// nil; its hashes are intact. HashIndex and Hashes are left zero:
	// AuditHashes reads the tree.
	AuditRecords(from int64, limit int, fn func(AuditRecord) (bool, error)) error

	// AuditHashes returns the stored tree hashes at the given stored-hash
	// indexes, in the order asked (an index may be asked twice). If one is
	// absent it returns an error wrapping ErrNotFound that names the first
	// such index. It is one query however many indexes are asked (a proof
	// needs about 2·log2(N) of them).
	AuditHashes(indexes []int64) ([][32]byte, error)
	// AuditHashCount is the number of stored tree hashes, which is also
	// the next stored-hash index: hashes are dense from 0 (AppendAudit and
	// PutAuditHashes refuse to leave a gap). It is 0 for a log written
	// before schema 5 until its hashes are backfilled.
	AuditHashCount() (int64, error)

	// Checkpoint returns the checkpoint of the tree of the given size;
	// ErrNotFound if there is none.
	Checkpoint(size int64) (*Checkpoint, error)
	// LatestCheckpoint returns the checkpoint of the largest tree;
	// ErrNotFound if there is none yet.
	LatestCheckpoint() (*Checkpoint, error)
	// CheckpointCovering returns the smallest checkpoint whose tree holds
	// the record at index (the smallest with Size > index); ErrNotFound if
	// no checkpoint does yet.
	CheckpointCovering(index int64) (*Checkpoint, error)

	// Project returns one research project; ErrNotFound if unknown.
	Project(id string) (*Project, error)
	// Projects calls fn for every project, ordered by id (byte order),
	// until fn returns false or an error (which Projects returns). The
	// rows are read before fn first runs, so fn may use the transaction.
	Projects(fn func(Project) (bool, error)) error

	// SubmissionsSince calls fn for every submission whose AuditIndex is
	// greater than after, in AuditIndex order, with its sealed part of
	// the given class only (Sealed.Data empty if it has none), until fn
	// returns false or an error (which SubmissionsSince returns). Rows
	// are read in pages (an index on audit_index makes each page a range
	// read) and fn runs between reads. It is how the table engine builds
	// and refreshes its column cache: superseded submissions are included
	// (a table as of an earlier point needs them), with SupersedesIndex
	// telling which earlier one a new submission replaced.
	SubmissionsSince(after int64, class string, fn func(SubmissionRow) (bool, error)) error
	// ListSubmissions calls fn with the metadata of every submission
	// matching f whose AuditIndex is greater than f.After, in AuditIndex
	// order, until fn returns false or an error (which ListSubmissions
	// returns), or f.Limit rows (f.Limit <= 0: no limit). It reads no
	// sealed part and no operational field: it is what a review list may
	// show. Rows are read in pages (an index on audit_index) and fn runs
	// between reads.
	ListSubmissions(f SubmissionFilter, fn func(SubmissionMeta) (bool, error)) error
	// OpensSince is how many record opens of user are stored at or after
	// since (RecordOpen): the count the hourly cap of record opens is
	// checked against, on every instance.
	OpensSince(user string, since time.Time) (int64, error)
	// Reviews returns the reviews of a submission (InsertReview), in
	// AuditIndex order: none (and no error) for a submission never
	// reviewed or unknown.
	Reviews(submission string) ([]Review, error)

	// ReleasePoint returns the publication point of that name;
	// ErrNotFound if there is none.
	ReleasePoint(name string) (*ReleasePoint, error)
	// ReleasePoints calls fn for every publication point, in Seq order
	// (creation order), State included, until fn returns false or an
	// error (which ReleasePoints returns). The rows are read before fn
	// first runs, so fn may use the transaction; points are few (a
	// handful a census) but their states are large, so all of them are
	// held in memory at once.
	ReleasePoints(fn func(ReleasePoint) (bool, error)) error
	// LatestReleasePoint returns the publication point (not Scheduled)
	// with the highest Seq, the one made last; ErrNotFound if there is
	// none yet.
	LatestReleasePoint() (*ReleasePoint, error)

	// LedgerDebits calls fn for every privacy-ledger debit whose
	// AuditIndex is greater than after, in AuditIndex order, until fn
	// returns false or an error (which LedgerDebits returns). The rows
	// are read before fn first runs, so fn may use the transaction.
	LedgerDebits(after int64, fn func(LedgerDebit) (bool, error)) error
	// LedgerDebitOf returns the debit of a query digest; ErrNotFound if
	// that query was never charged.
	LedgerDebitOf(query string) (*LedgerDebit, error)
	// ShareChanges calls fn for every proposed change of a ledger share,
	// pending or approved, in Seq order, until fn returns false or an
	// error (which ShareChanges returns). The rows are read before fn
	// first runs.
	ShareChanges(fn func(ShareChange) (bool, error)) error

	// Users calls fn for every user whose name is greater than after, in
	// name order (byte order), with its grants, until fn returns false or
	// an error (which Users returns), or limit users (limit <= 0: no
	// limit). Rows are read in pages and fn runs between reads.
	Users(after string, limit int, fn func(User) (bool, error)) error
	// GrantLog calls fn for every entry of the grant log whose Seq is
	// greater than after, in Seq order, until fn returns false or an
	// error (which GrantLog returns). Rows are read in pages and fn runs
	// between reads.
	GrantLog(after int64, fn func(GrantLogEntry) (bool, error)) error
	// GrantProposal returns one proposed change of grants or role
	// policy; ErrNotFound if none has that Seq.
	GrantProposal(seq int64) (*GrantProposal, error)
	// GrantProposals calls fn for every proposal, pending or confirmed,
	// in Seq order, until fn returns false or an error (which
	// GrantProposals returns). The rows are read before fn first runs.
	GrantProposals(fn func(GrantProposal) (bool, error)) error

	// Environments and extract proposals (extracts.go).
	ExtractReader
	// Forms an administrator added (forms.go).
	FormReader
	// Revisions of the area tree (arearevisions.go).
	AreaRevisionReader
}

// SubmissionRow is what the table engine reads of a submission.
type SubmissionRow struct {
	ID          string
	Area        string // the EA
	Commune     string
	HouseholdNo int64
	Form        string
	FormVersion int
	AuditIndex  int64
	// SupersedesIndex is the AuditIndex of the submission this one
	// replaced, or -1 if it replaced none.
	SupersedesIndex int64
	Sealed          Sealed // the class asked for
}

// Tx reads and writes within a transaction.
type Tx interface {
	ReadTx
	PutMeta(key, value string) error
	// InsertAreas adds areas; ErrConflict if a code exists.
	InsertAreas(areas []Area) error

	// InsertUser adds a user with its grants; ErrConflict if the name or
	// token hash exists.
	InsertUser(u *User) error
	AddGrant(user string, g Grant) error
	// RevokeUser marks the user revoked at t; ErrNotFound if unknown.
	RevokeUser(name string, t time.Time) error
	// SetRecipient sets (or with "" clears) the age recipient a user's
	// research tables may be encrypted to; ErrNotFound if unknown.
	SetRecipient(name, recipient string) error

	// InsertSubmission stores a new submission; ErrConflict if its id
	// exists or another current submission holds (area, household_no).
	InsertSubmission(s *Submission) error
	// MarkSuperseded marks id superseded by another submission.
	MarkSuperseded(id, by string) error
	// AddDeposited adds delta to an EA's count of current households.
	AddDeposited(ea string, delta int64) error

	// PutDataKey stores a wrapped DEK; ErrConflict if that (class,
	// commune, version) exists.
	PutDataKey(k *DataKey) error
	// PutKey stores wrapped key material; ErrConflict if (purpose,
	// version) exists.
	PutKey(k *Key) error
	// RetireKey sets NotAfter on one key version.
	RetireKey(purpose string, version int, notAfter time.Time) error

	// RewrapDataKey replaces the wrapped bytes of a live DEK (the DEK
	// itself is unchanged, only the key that wraps it); ErrNotFound if
	// it is absent or shredded. wrapped must not be empty.
	RewrapDataKey(class, commune string, version int, wrapped []byte) error
	// RewrapKey replaces the wrapped bytes of a key (ingest identity,
	// signer); ErrNotFound if absent. wrapped must not be empty.
	RewrapKey(purpose string, version int, wrapped []byte) error
	// ShredDataKeys destroys every version of the DEKs of class for the
	// given communes (crypto-shredding): their wrapped bytes are
	// removed and ShreddedAt set to at (which must not be zero). The
	// rows stay as tombstones, so PutDataKey of a shredded (class,
	// commune, version) is an ErrConflict. It returns how many live DEKs
	// it destroyed, and is idempotent: tombstones keep their first
	// ShreddedAt. It does not stop a later version being put for the
	// same commune: that is the caller's policy. The old bytes may
	// linger in the database's files until Compact (Compactor).
	ShredDataKeys(class string, communes []string, at time.Time) (int, error)

	// AppendAudit calls build with the current head and stores the
	// record it returns, which must carry head.Next as its index and a
	// non-empty Event, and must not be marked Pruned. The record's
	// Hashes, if any, are stored with it, at stored-hash indexes
	// HashIndex, HashIndex+1, …, in the same statement or savepoint as
	// the event: both are stored or neither. HashIndex must then be
	// AuditHashCount (no gap, no overwrite); a record with no Hashes
	// stores none and its HashIndex is ignored. It returns the stored
	// record.
	AppendAudit(build func(AuditHead) (AuditRecord, error)) (AuditRecord, error)
	// PutAuditHashes stores hashes at stored-hash indexes first, first+1,
	// …: it backfills the tree of a log written before schema 5 (in
	// chunks, one call per Update of some thousands of hashes). first must
	// be AuditHashCount: ErrConflict if it is smaller (that index is
	// stored), an error if it is larger (it would leave a gap). All the
	// hashes are stored or none. No hashes: nothing to do.
	PutAuditHashes(first int64, hashes [][32]byte) error
	// PruneAuditEvents removes the event bodies of the records with index
	// < before, keeping their index, leaf hash and chain hash (and the
	// tree's hashes): AuditRecords then returns them with Pruned set and
	// Event nil. It returns how many bodies it removed; pruning again
	// removes nothing more. Whether a body may go (covered by a signed
	// checkpoint, past its retention) is the caller's policy. The removed
	// bytes may linger in the database's files and backups; see each
	// backend.
	//
	// It is the only change the store makes to a stored audit record:
	// the backends' database triggers refuse every other UPDATE, any
	// DELETE of audit_events and audit_hashes, and any UPDATE or DELETE
	// of audit_checkpoints.
	PruneAuditEvents(before int64) (pruned int64, err error)
	// PutCheckpoint stores the signed checkpoint note of the tree of the
	// first size records (1 <= size <= AuditHead().Next), made at at (not
	// zero); the note is opaque and must not be empty. ErrConflict if a
	// checkpoint of that size exists.
	PutCheckpoint(size int64, note []byte, at time.Time) error

	// InsertProject stores a new project; ErrConflict if its id exists.
	// Spent must be 0 and Budget positive: a ledger starts empty.
	InsertProject(p *Project) error
	// CloseProject marks an open project closed at at (not zero);
	// ErrNotFound if unknown, ErrConflict if it is already closed (the
	// first closing time is kept).
	CloseProject(id string, at time.Time) error
	// DebitProject adds cells (>= 0) to a project's Spent and returns
	// Budget-Spent after it. It is one atomic step: when Spent+cells
	// would pass Budget it changes nothing and returns an error wrapping
	// ErrConflict that says the budget is exhausted, so two requests
	// racing for the last cells cannot both be granted. ErrNotFound if
	// the project is unknown. It does not look at ClosedAt or Expires:
	// that is the caller's policy.
	DebitProject(id string, cells int64) (remaining int64, err error)

	// InsertReleasePoint stores a new publication point and sets p.Seq
	// to the Seq it was given: one more than the highest stored (1 for
	// the first), whatever p.Seq held. ErrConflict if a point of that
	// name exists (the stored one is kept). Name and State must not be
	// empty and CreatedAt not zero; storage does not check the name's
	// form or read State. A stored point never changes and is never
	// removed: the backends' database triggers refuse every UPDATE and
	// DELETE of release_points, so a table published at a point can
	// always be computed again from the same frozen state.
	InsertReleasePoint(p *ReleasePoint) error

	// RecordOpen stores that user opened one submission at at (not
	// zero), in the transaction that appends the open's audit event.
	// Rows older than a day may be removed by PruneOpens; no other
	// change is made to them.
	RecordOpen(user, submission string, at time.Time) error
	// PruneOpens removes the record opens stored before before and
	// returns how many it removed (the cap looks back an hour; the audit
	// log keeps every open for good).
	PruneOpens(before time.Time) (int64, error)
	// InsertReview stores one review of a submission, in the transaction
	// that appends the review's audit event (r.AuditIndex). ErrNotFound
	// if no submission has id r.Submission; ErrConflict if a review of
	// the same AuditIndex is stored. Submission, Reason and Reviewer must
	// not be empty, Status must be ReviewAccepted or ReviewRejected, At
	// not zero. A stored review never changes and is never removed: the
	// backends' database triggers refuse every UPDATE and DELETE of
	// reviews, so a later review is a new row, and the latest one
	// (highest AuditIndex) is the submission's review.
	InsertReview(r *Review) error

	// InsertLedgerDebit stores one charge of a differentially private
	// table to the privacy ledger. ErrConflict if a debit of the same
	// Query exists (a query is charged once; the stored one is kept).
	// Query, Result, Project, Researcher and Areas must not be empty,
	// Rho must be positive and At not zero. A stored debit never changes
	// and is never removed: the backends' database triggers refuse every
	// UPDATE and DELETE of ledger_debits, so budget once spent stays
	// spent.
	InsertLedgerDebit(d *LedgerDebit) error
	// ProposeShare stores a proposed change of a ledger share and sets
	// c.Seq to the Seq it was given: one more than the highest stored.
	// ApprovedBy, ApprovedAt and ApprovalAudit must be empty; Kind,
	// ProposedBy and Reason not empty, Rho positive, ProposedAt not zero.
	ProposeShare(c *ShareChange) error
	// ApproveShare marks a pending proposal approved by by at at,
	// recorded by audit event auditIndex. ErrNotFound if no proposal has
	// that Seq; ErrConflict if it is already approved (the first approval
	// is kept). It is the only change the store makes to a share change:
	// the backends' triggers refuse every other UPDATE, and any DELETE,
	// of ledger_shares.
	ApproveShare(seq int64, by string, at time.Time, auditIndex int64) error

	// RemoveGrant removes one grant (equal in Role, Area, Deny and
	// Project) of a user; ErrNotFound if the user does not hold it.
	RemoveGrant(user string, g Grant) error
	// ReplaceToken gives a user a new token (its hash) and expiry: the
	// old token no longer matches anyone. ErrNotFound if the user is
	// unknown, ErrConflict if another user holds that token hash.
	ReplaceToken(user, tokenHash string, expires time.Time) error
	// AppendGrantLog appends an entry to the grant log and sets e.Seq to
	// the Seq it was given: one more than the highest stored (1 for the
	// first), whatever e.Seq held. Op must be one of the GrantOp values,
	// At not zero, AuditIndex >= 0 and PolicyHash not empty; a grant or
	// ungrant entry needs User, Grant.Role and Grant.Area, a policy entry
	// Model and Policy. A stored entry never changes and is never
	// removed: the backends' database triggers refuse every UPDATE and
	// DELETE of grant_log, so the policy in force at any audit event
	// can be rebuilt from it.
	AppendGrantLog(e *GrantLogEntry) error
	// ProposeGrant stores a proposed change and sets p.Seq to the Seq it
	// was given (one more than the highest stored). Kind must be one of
	// the GrantOp values grant, ungrant or policy, with the fields that
	// kind needs (as AppendGrantLog); ProposedBy not empty, ProposedAt not
	// zero, ProposalAudit >= 0; ConfirmedBy, ConfirmedAt and ConfirmAudit
	// must be empty.
	ProposeGrant(p *GrantProposal) error
	// ConfirmGrant marks a pending proposal confirmed by by at at,
	// recorded by audit event auditIndex. ErrNotFound if no proposal has
	// that Seq; ErrConflict if it is already confirmed (the first
	// confirmation is kept). It is the only change the store makes to a
	// proposal: the backends' triggers refuse every other UPDATE, and any
	// DELETE, of grant_proposals.
	ConfirmGrant(seq int64, by string, at time.Time, auditIndex int64) error

	// Environments and extract proposals (extracts.go).
	ExtractWriter
	// Forms an administrator added (forms.go).
	FormWriter
	// Revisions of the area tree (arearevisions.go).
	AreaRevisionWriter
}

// Area is one node of the area tree as stored.
type Area struct {
	Code    string
	Parent  string // "" for the root
	Level   string // nation, province, district, commune, ea
	Name    string
	Planned int64 // planned households; EAs only
}

// User is a person or service that holds a bearer token.
type User struct {
	Name      string
	TokenHash string    // hex SHA-256 of the bearer token; the token itself is never stored
	CreatedAt time.Time // UTC
	ExpiresAt time.Time // zero: no expiry
	RevokedAt time.Time // zero: not revoked
	Recipient string    // age recipient for encrypted research tables; "" if none
	Grants    []Grant
}

// Grant gives a role over an area's subtree, or with Deny takes it away.
// A grant with a Project holds only for that research project's requests
// (researchers are granted per project); (Role, Area, Deny, Project) is
// unique per user.
type Grant struct {
	Role    string
	Area    string
	Deny    bool
	Project string // "" for every request
}

// Sealed is one class of a submission's fields, sealed under the DEK for
// (Class, the submission's commune, KeyVersion).
type Sealed struct {
	Class      string // identifying | analytic
	KeyVersion int
	Data       []byte
}

// Submission is a stored household questionnaire: operational fields in
// clear, everything else sealed.
type Submission struct {
	ID            string
	Area          string // the EA
	Commune       string // whose DEKs seal it
	HouseholdNo   int64
	Form          string
	FormVersion   int
	InterviewedAt time.Time
	ReceivedAt    time.Time
	Depositor     string
	PayloadSHA256 string // hex SHA-256 of the decrypted bytes: decides idempotency
	Supersedes    string
	SupersededBy  string
	Operational   []byte // clear JSON of operational-class form fields, may be empty
	Sealed        []Sealed
	AuditIndex    int64
	Receipt       []byte // the signed receipt as returned to the depositor
}

// DataKey is a wrapped data-encryption key.
type DataKey struct {
	Class     string
	Commune   string
	Version   int
	Wrapped   []byte
	CreatedAt time.Time
	// ShreddedAt, when not zero, says this DEK was destroyed
	// (crypto-shredding) and Wrapped is empty. The row stays as a
	// tombstone so readers can say "shredded" rather than "missing".
	ShreddedAt time.Time
}

// Key is other key material (ingest identities, signing keys), wrapped.
type Key struct {
	Purpose   string
	Version   int
	Wrapped   []byte
	CreatedAt time.Time
	NotAfter  time.Time // zero: no end; after it the key is no longer used
}

// AuditHead is where the next audit record goes.
type AuditHead struct {
	Next      int64    // index of the next record
	ChainHash [32]byte // chain hash of the last record (zero for an empty log)
}

// AuditRecord is an opaque audit event and its hashes.
type AuditRecord struct {
	Index     int64
	Event     []byte // nil when Pruned
	LeafHash  [32]byte
	ChainHash [32]byte
	// Pruned says the event's body was removed (PruneAuditEvents); the
	// hashes stay, so the record still proves its place in the log.
	Pruned bool

	// HashIndex and Hashes are the Merkle tree hashes AppendAudit stores
	// with this record, at stored-hash indexes HashIndex, HashIndex+1, …
	// (the "stored hashes" layout of golang.org/x/mod/sumdb/tlog: each
	// leaf adds one hash and one per subtree it completes). Storage does
	// not interpret them. AuditRecords leaves both zero.
	HashIndex int64
	Hashes    [][32]byte
}

// Checkpoint is a signed note naming the root of the audit log's tree
// after its first Size records. Storage does not interpret Note.
type Checkpoint struct {
	Size      int64
	Note      []byte
	CreatedAt time.Time // UTC
}

// Project is an approved research project and its release ledger.
type Project struct {
	ID        string // [a-z0-9][a-z0-9._-]{0,63}
	Title     string
	Purpose   string
	Areas     []string // area codes it covers, each with its subtree
	Variables []string // analytic variables and derived bands it may use
	Expires   time.Time
	Budget    int64     // cells it may release in total
	Spent     int64     // cells released so far
	CreatedAt time.Time // UTC
	ClosedAt  time.Time // zero: open
}

// ReleasePoint is a named publication point: the frozen state of the
// data that standard tables are computed at. Standard tables are
// computed only at points, never at the live data, so two publications
// differ only where their points' frozen states do.
type ReleasePoint struct {
	Name string // [a-z0-9][a-z0-9._-]{0,63} (the broker checks the form)
	Seq  int64  // 1, 2, … in creation order; assigned by InsertReleasePoint
	// AsOf is the point of the deposit sequence (an audit index) the
	// point was made at.
	AsOf      int64
	CreatedAt time.Time // UTC
	CreatedBy string
	// AuditIndex is the audit event that recorded the point's creation,
	// set by the caller, who appends the event in the same transaction.
	AuditIndex int64
	// State is the frozen per-area state, opaque to storage; it may be
	// about a megabyte.
	State []byte
	// Scheduled marks a scheduled point (the day's point dp tables are
	// computed at), not a publication point: LatestReleasePoint never
	// returns one, so publication points chain only to each other.
	Scheduled bool
}

// SubmissionFilter selects submissions for a review list.
type SubmissionFilter struct {
	// Communes, when not nil, keeps submissions of these communes only
	// (an empty, non-nil list keeps none). The broker narrows further,
	// per EA, to the caller's scope.
	Communes []string
	// Depositor, when not empty, keeps that user's submissions only.
	Depositor string
	// Current keeps only submissions not superseded.
	Current bool
	After   int64 // AuditIndex to start after (-1: from the first)
	Limit   int
}

// SubmissionMeta is what a review list shows of a submission: where,
// when, by whom and its place in its chain of corrections — never a
// field of the questionnaire.
type SubmissionMeta struct {
	ID            string
	Area          string // the EA
	Commune       string
	HouseholdNo   int64
	Form          string
	FormVersion   int
	InterviewedAt time.Time
	ReceivedAt    time.Time
	Depositor     string
	Supersedes    string
	SupersededBy  string
	AuditIndex    int64
	// Review is its latest review (the highest AuditIndex); the zero
	// Review when it has none.
	Review Review
}

// Statuses of a review.
const (
	ReviewAccepted = "accepted"
	ReviewRejected = "rejected"
)

// Review is one review of a submission by a team leader or supervisor:
// accepted or rejected, with a reason code and a note for the enumerator
// who deposited it. Storage does not interpret Reason or Note (the broker
// checks them); the note may name people, so it is stored here and never
// in the audit log, whose event of the review (AuditIndex) holds the
// status and reason only.
type Review struct {
	// AuditIndex is the review's audit event, appended by the caller in
	// the same transaction: the order of a submission's reviews.
	AuditIndex int64
	Submission string // the submission's id
	Status     string // ReviewAccepted or ReviewRejected
	Reason     string // a reason code
	Note       string // for the enumerator; may be empty
	Reviewer   string // the user who reviewed
	At         time.Time
}

// LedgerDebit is one charge of a differentially private table to the
// privacy ledger: the table's zCDP ρ, charged to every commune under
// Areas, within the shares of Project and Researcher. Storage does not
// interpret it; the broker folds the debits into the ledger.
type LedgerDebit struct {
	// AuditIndex is the release's audit event, appended by the caller in
	// the same transaction.
	AuditIndex int64
	// Query is the digest of the canonical query (the table, its areas
	// and its point): the same query asked again is not charged again.
	Query string
	// Result is the digest of the released cells: a repeat is released
	// only while it still computes to them.
	Result     string
	Areas      []string // area codes, each with its subtree (communes or larger)
	Project    string
	Researcher string
	Rho        int64 // in millionths of ρ; positive
	At         time.Time
}

// ShareChange is a proposed change of one privacy-ledger share, and its
// approval by a second person once approved.
type ShareChange struct {
	Seq           int64  // 1, 2, … in proposal order; assigned by ProposeShare
	Kind          string // which share: the broker's kinds (commune cap, project, researcher)
	Holder        string // the project or researcher; "" for the commune cap
	Rho           int64  // the share proposed, in millionths of ρ; positive
	Reason        string
	ProposedBy    string
	ProposedAt    time.Time
	ProposalAudit int64     // the audit event of the proposal
	ApprovedBy    string    // "" while pending
	ApprovedAt    time.Time // zero while pending
	ApprovalAudit int64     // the audit event of the approval; 0 while pending
}

// GrantOp is the kind of a grant log entry or grant proposal.
type GrantOp string

// The kinds of grant log entries.
const (
	// GrantOpGrant adds Grant to User's grants; GrantOpUngrant removes it.
	GrantOpGrant   GrantOp = "grant"
	GrantOpUngrant GrantOp = "ungrant"
	// GrantOpPolicy puts the role policy (Model, Policy) in force.
	GrantOpPolicy GrantOp = "policy"
	// GrantOpStart begins the log of a vault made before it existed: it
	// carries the role policy in force then, as GrantOpPolicy does, and
	// the grants held then follow as GrantOpGrant entries of the same
	// audit event. Events before it cannot be rebuilt.
	GrantOpStart GrantOp = "start"
)

// GrantLogEntry is one change of the policy in force: of a user's grants
// or of the role policy. Replaying the log up to an audit event gives the
// grants and role policy whose hash that event carries.
type GrantLogEntry struct {
	Seq        int64 // 1, 2, … in append order; assigned by AppendGrantLog
	AuditIndex int64 // the audit event that made the change
	At         time.Time
	Op         GrantOp
	User       string // grant and ungrant
	Grant      Grant  // grant and ungrant
	Model      string // policy and start: the Casbin model text
	Policy     string // policy and start: the role policy text
	// PolicyHash is the policy hash after the entry (and the others of
	// its audit event): what the event carries.
	PolicyHash string
}

// GrantProposal is a change an administrator proposed that takes effect
// only when an approver (not the proposer) confirms it: a grant of a
// role that reveals data, the removal of a deny, a new role policy.
type GrantProposal struct {
	Seq           int64   // 1, 2, … in proposal order; assigned by ProposeGrant
	Kind          GrantOp // grant, ungrant or policy
	User          string  // grant and ungrant
	Grant         Grant   // grant and ungrant
	Model, Policy string  // policy
	Reason        string
	ProposedBy    string
	ProposedAt    time.Time
	ProposalAudit int64     // the audit event of the proposal
	ConfirmedBy   string    // "" while pending
	ConfirmedAt   time.Time // zero while pending
	ConfirmAudit  int64     // the audit event of the confirmation; 0 while pending
}

// ErrBudgetExhausted is what DebitProject returns when the debit would
// pass the budget; it wraps ErrConflict.
var ErrBudgetExhausted = fmt.Errorf("%w: budget exhausted", ErrConflict)

// Topics of change notifications.
const (
	TopicKeys  = "keys"  // ingest identities, signing keys, data keys
	TopicUsers = "users" // users and grants
	TopicMeta  = "meta"  // policy and other meta values
	TopicForms = "forms" // forms an administrator added
)

// Watcher is an optional interface of stores shared by several broker
// instances (PostgreSQL): Watch calls fn with a topic after another
// transaction that changed it commits, until ctx ends or the connection
// fails (then it returns the error and the caller watches again). A store
// without it is polled.
type Watcher interface {
	Watch(ctx context.Context, fn func(topic string)) error
}

// Compactor is an optional interface of stores whose files can keep the
// bytes of a row after it was overwritten or deleted (free pages, old
// page images in a write-ahead log, dead tuples). After key material was
// destroyed (ShredDataKeys) or replaced (RewrapDataKey, RewrapKey),
// Compact makes sure the old bytes are gone from the database's own
// files. It cannot reach copies elsewhere: backups, replicas, archived
// logs, blocks the file system or the disk has not reused yet. Each
// backend says what its Compact covers.
type Compactor interface {
	Compact(ctx context.Context) error
}
