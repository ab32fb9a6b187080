// Package wire holds the types that cross the network between the vault
// and its clients: receipts, progress reports and table formats. It is the
// one package the device SDK (broker/client) shares with the server, so a
// field device links wire types and age, never the server's policy,
// storage or keys; broker re-exports these types under its own names.
package wire

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/censusvault/censusvault/broker/area"
)

// SubmissionID is a submission's device-made UUID.
type SubmissionID string

// Receipt is the vault's signed acknowledgement of a deposit.
type Receipt struct {
	SubmissionID  SubmissionID `json:"submission_id"`
	Area          area.Code    `json:"area"`
	ReceivedAt    string       `json:"received_at"`
	PayloadSHA256 string       `json:"payload_sha256"`
	AuditIndex    int64        `json:"audit_index"`
	LeafHash      string       `json:"leaf_hash"`
	// Note is a C2SP signed note over the lines above, signed by the
	// receipt key (GET /v1/keys/receipt).
	Note string `json:"note"`
}

// ReceiptNoteHeader is the first line of a receipt's signed note.
const ReceiptNoteHeader = "censusvault-receipt/v1"

// ReceiptText is the text a receipt's note signs.
func ReceiptText(r *Receipt) string {
	return strings.Join([]string{ReceiptNoteHeader, string(r.SubmissionID), string(r.Area), r.ReceivedAt,
		r.PayloadSHA256, fmt.Sprint(r.AuditIndex), r.LeafHash}, "\n") + "\n"
}

// ProgressRow is one area's households deposited against plan.
type ProgressRow struct {
	Area      area.Code `json:"area"`
	Name      string    `json:"name"`
	Level     string    `json:"level"`
	Planned   int64     `json:"planned"`
	Deposited int64     `json:"deposited"`
	Percent   float64   `json:"percent"` // deposited / planned × 100, two decimals; 0 when nothing is planned
	// Partial: some area under this one is outside the caller's scope
	// (denied); Planned and Deposited count only the areas in scope.
	Partial bool `json:"partial,omitempty"`
}

// ProgressReport is an area and its descendants down to Depth levels.
type ProgressReport struct {
	Area  area.Code     `json:"area"`
	Depth int           `json:"depth"`
	Rows  []ProgressRow `json:"rows"`
}

// Formats of a released table.
const (
	TableJSON = "json"
	TableCSV  = "csv"
)

// ReleasePoint is a publication point as GET /v1/release-points lists it
// and POST /v1/release-points answers: public facts, nothing of the data.
type ReleasePoint struct {
	Name      string    `json:"name"`
	Seq       int64     `json:"seq"`
	AsOf      int64     `json:"as_of"` // the point of the deposit sequence it was made at
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by"`
	// Scheduled marks a scheduled point of dp tables (the day's), which
	// standard tables are not computed at; Level and K are then empty.
	Scheduled bool   `json:"scheduled,omitempty"`
	Level     string `json:"level,omitempty"` // the area level its k-rule holds at
	K         int64  `json:"k,omitempty"`     // households an area must change by to be seen anew
	// Of the areas at Level: how many the point shows at a new state and
	// how many it keeps at their previous one. Only creation reports them.
	Areas    int `json:"areas,omitempty"`
	Advanced int `json:"advanced,omitempty"`
	Kept     int `json:"kept,omitempty"`
}

// Catalogue is the catalogue of standard tables as GET /v1/catalogue
// shows it.
type Catalogue struct {
	Version     int             `json:"version"`
	Form        string          `json:"form"`
	FormVersion int             `json:"form_version"`
	Tables      []StandardTable `json:"tables"`
}

// StandardTable is one table of the catalogue: what it crosses, and
// where it may be asked (levels, and the fewest planned households of
// the area).
type StandardTable struct {
	ID         string            `json:"id"`
	Title      map[string]string `json:"title"` // "en", "vi"
	Unit       string            `json:"unit"`
	Rows       []string          `json:"rows"`
	Cols       []string          `json:"cols"`
	Measure    json.RawMessage   `json:"measure"` // "count", {"sum": VAR} or {"mean": VAR}
	Levels     []string          `json:"levels"`
	MinPlanned int64             `json:"min_planned_households"`
}

// Ledger is the privacy ledger of dp tables (GET /v1/ledger): every share
// the caller may see, what it has spent in its worst commune, and the
// proposed changes.
type Ledger struct {
	TableRho string        `json:"table_rho"` // ρ of a dp table that names none
	Delta    float64       `json:"delta"`     // the δ every ε here is stated at
	Shares   []Share       `json:"shares"`
	Changes  []ShareChange `json:"changes"`
}

// Share is one ledger share: the commune cap (the same for every
// commune), a researcher's or a project's share of each commune.
type Share struct {
	Kind    string  `json:"kind"`   // commune, researcher or project
	Holder  string  `json:"holder"` // the researcher or project; "" for the cap
	Rho     string  `json:"rho"`    // the share, a decimal ρ
	Epsilon float64 `json:"epsilon"`
	Default bool    `json:"default"` // no approved change: the vault's default
	// Spent is the most the share has spent in any one commune, and
	// WorstArea where (an area whose communes all spent it).
	Spent        string  `json:"spent"`
	SpentEpsilon float64 `json:"spent_epsilon"`
	WorstArea    string  `json:"worst_area"`
	// Tables is how many more dp tables of the default ρ it can pay for
	// in its worst commune.
	Tables int64 `json:"tables"`
}

// ShareChange is a proposed change of a share, approved or pending.
type ShareChange struct {
	Seq        int64     `json:"seq"`
	Kind       string    `json:"kind"`
	Holder     string    `json:"holder"`
	Rho        string    `json:"rho"`
	Epsilon    float64   `json:"epsilon"`
	Reason     string    `json:"reason"`
	ProposedBy string    `json:"proposed_by"`
	ProposedAt time.Time `json:"proposed_at"`
	ApprovedBy string    `json:"approved_by,omitempty"`
	ApprovedAt time.Time `json:"approved_at,omitzero"`
}

// Statuses of a submission in a review list, and the status filter that
// takes every one.
const (
	StatusCurrent    = "current"    // not superseded: the household as it counts
	StatusSuperseded = "superseded" // replaced by a later deposit of the same household
	StatusAll        = "all"        // a list filter only: both
)

// MaxListLimit is the most submissions one page of a review list holds;
// DefaultListLimit the page size when none is asked.
const (
	MaxListLimit     = 500
	DefaultListLimit = 100
)

// SubmissionMeta is what a review list shows of a submission: where,
// when, by whom and its place in a chain of corrections — never a field
// of the questionnaire.
type SubmissionMeta struct {
	ID            SubmissionID `json:"id"`
	EA            area.Code    `json:"ea"`
	HouseholdNo   int64        `json:"household_no"`
	Form          string       `json:"form"`
	FormVersion   int          `json:"form_version"`
	Enumerator    string       `json:"enumerator"` // the user who deposited it
	InterviewedAt time.Time    `json:"interviewed_at"`
	ReceivedAt    time.Time    `json:"received_at"`
	Supersedes    SubmissionID `json:"supersedes,omitempty"`
	SupersededBy  SubmissionID `json:"superseded_by,omitempty"`
	Status        string       `json:"status"` // StatusCurrent or StatusSuperseded
	// Index is the audit index of its deposit: the list's order, and
	// what "after" takes to go on from it.
	Index int64 `json:"index"`
	// Review is its latest review; absent while it has none.
	Review *Review `json:"review,omitempty"`
}

// Review statuses (POST /v1/submissions/{id}/review).
const (
	ReviewAccepted = "accepted"
	ReviewRejected = "rejected"
)

// ReasonOK is the reason code of an acceptance (also taken when an
// acceptance names none); a rejection names one of the other
// ReviewReasons.
const ReasonOK = "ok"

// ReviewReasons are the reason codes of a review, with their labels
// for display, in the order a device lists them: ReasonOK for an
// acceptance, the others for a rejection. Codes never change once
// released.
var ReviewReasons = []ReviewReason{
	{ReasonOK, "Accepted as deposited"},
	{"incomplete", "Incomplete: questions or persons missing"},
	{"inconsistent", "Inconsistent answers"},
	{"wrong_household", "Wrong household or household number"},
	{"duplicate", "Duplicate of another submission"},
	{"other", "Other (explained in the note)"},
}

// ReviewReason is a reason code and its label.
type ReviewReason struct {
	Code  string `json:"code"`
	Label string `json:"label"`
}

// MaxReviewNote is the most bytes a review's note may hold.
const MaxReviewNote = 500

// ReviewRequest is the body of POST /v1/submissions/{id}/review.
type ReviewRequest struct {
	Status string `json:"status"` // ReviewAccepted or ReviewRejected
	Reason string `json:"reason"` // a code of ReviewReasons
	// Note is for the enumerator who deposited the submission: one line,
	// at most MaxReviewNote bytes. Only the depositor and the reviewers
	// of the scope see it; the audit log never holds it.
	Note string `json:"note"`
}

// Review is a submission's review: accepted or rejected, why, by whom,
// when, and the note for its enumerator.
type Review struct {
	Status   string    `json:"status"` // ReviewAccepted or ReviewRejected
	Reason   string    `json:"reason"` // a code of ReviewReasons
	Note     string    `json:"note,omitempty"`
	Reviewer string    `json:"reviewer"`
	At       time.Time `json:"at"`
	// Index is the audit index of the review's event.
	Index int64 `json:"index"`
}

// SubmissionList is one page of a review list (GET /v1/submissions).
type SubmissionList struct {
	Area        area.Code        `json:"area,omitempty"` // the area asked for; empty for mine
	Mine        bool             `json:"mine,omitempty"` // the caller's own deposits
	Status      string           `json:"status"`         // the filter: current, superseded or all
	Submissions []SubmissionMeta `json:"submissions"`
	// Next is the "after" of the next page; null when the list is
	// complete. A page may hold fewer than the limit and still have a
	// Next (the vault bounds how many rows one page looks at).
	Next *int64 `json:"next"`
}

// ClassFields are one field class's answers of an opened submission:
// the household's and each person's, persons in questionnaire order
// (the same index in every class). Values are JSON strings or numbers.
type ClassFields struct {
	Household map[string]json.RawMessage   `json:"household"`
	Persons   []map[string]json.RawMessage `json:"persons"`
}

// SubmissionView is one submission opened for review
// (GET /v1/submissions/{id}): its metadata and the fields of the classes
// the caller's role may see at its EA, labelled by class.
type SubmissionView struct {
	Submission SubmissionMeta `json:"submission"`
	// Classes are the field classes revealed, in the order identifying,
	// analytic, operational; Fields holds exactly those.
	Classes []string               `json:"classes"`
	Fields  map[string]ClassFields `json:"fields"`
	// Gone are classes the caller may see whose data keys were
	// crypto-shredded: they can never be read again.
	Gone []string `json:"gone,omitempty"`
}
