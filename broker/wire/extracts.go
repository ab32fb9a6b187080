package wire

import "time"

// Extracts for the processing centre: registered processing environments
// and proposed, approved and downloaded extracts (issue 13, part 4).

// Formats of an extract's plaintext.
const (
	// ExtractJSONL is JSON Lines: one object per household, its keys
	// id, ea, household_no, form, form_version, the household fields of
	// the extract's classes in form order and "persons", an array of one
	// object per person with the person fields in form order. A value
	// the household did not give is left out.
	ExtractJSONL = "jsonl"
	// ExtractCSV is CSV (RFC 4180, "\n" line ends): a header, then one
	// row per person, with the columns id, ea, household_no, form,
	// form_version, the household fields in form order, person_no (1,
	// 2, …) and the person fields in form order. A value not given is
	// an empty cell.
	ExtractCSV = "csv"
)

// Response headers of a downloaded extract (GET /v1/extracts/{seq}), whose
// body is the plaintext encrypted with age to the environment's
// recipient: the plaintext's SHA-256 (as the audit log holds it), its
// rows (JSON Lines: lines; CSV: rows after the header), the households
// in it, its format and the audit index it is as of.
const (
	HeaderExtractSHA256     = "X-Censusvault-Extract-Sha256"
	HeaderExtractRows       = "X-Censusvault-Extract-Rows"
	HeaderExtractHouseholds = "X-Censusvault-Extract-Households"
	HeaderExtractFormat     = "X-Censusvault-Extract-Format"
	HeaderExtractAsOf       = "X-Censusvault-Extract-As-Of"
	HeaderExtractAuditIndex = "X-Censusvault-Audit-Index" // the download's audit event
)

// Statuses of an extract proposal.
const (
	ExtractPending  = "pending"  // waits for an approver
	ExtractApproved = "approved" // may be downloaded
	ExtractExpired  = "expired"  // was not approved in time: propose it again
)

// Environment is a registered processing environment: the age recipient
// the processing centre's extracts are encrypted to and the field classes
// it may receive.
type Environment struct {
	Name      string `json:"name"`
	Recipient string `json:"recipient"`
	// RecipientSHA256 is the recipient's fingerprint: the hex SHA-256 of
	// Recipient as written (what `printf %s age1… | sha256sum` prints),
	// which the processing centre compares with its own key's.
	RecipientSHA256 string    `json:"recipient_sha256"`
	Classes         []string  `json:"classes"`
	CreatedBy       string    `json:"created_by"`
	CreatedAt       time.Time `json:"created_at"`
	RetiredBy       string    `json:"retired_by,omitempty"`
	RetiredAt       time.Time `json:"retired_at,omitzero"`
}

// EnvironmentList is the answer of GET /v1/extracts/environments.
type EnvironmentList struct {
	Environments []Environment `json:"environments"`
}

// NewEnvironment is what the host operator registers (censusvault
// extract env add): name, recipient and classes (empty: analytic and
// operational). Over the API, POST /v1/extracts/environments is refused
// (403 host_only to an admin): whoever chooses the recipient chooses who
// can decrypt the microdata.
type NewEnvironment struct {
	Name      string   `json:"name"`
	Recipient string   `json:"recipient"`
	Classes   []string `json:"classes,omitempty"`
}

// ExtractRequest is the body of POST /v1/extracts. FormVersion 0: the
// form's newest version. Format "": JSON Lines.
type ExtractRequest struct {
	Environment string   `json:"environment"`
	Areas       []string `json:"areas"`
	Form        string   `json:"form"`
	FormVersion int      `json:"form_version,omitempty"`
	Classes     []string `json:"classes"`
	Format      string   `json:"format,omitempty"`
	Purpose     string   `json:"purpose"`
}

// Extract is a proposed extract and where it stands.
type Extract struct {
	Seq         int64  `json:"seq"`
	Environment string `json:"environment"`
	// RecipientStart (the first 20 characters of the environment's age
	// recipient, then "…") and RecipientSHA256 (its fingerprint, as in
	// Environment) say where the extract will go, so that an approver
	// sees it before approving.
	RecipientStart  string   `json:"recipient_start"`
	RecipientSHA256 string   `json:"recipient_sha256"`
	Areas           []string `json:"areas"`
	Form            string   `json:"form"`
	FormVersion     int      `json:"form_version"`
	Classes         []string `json:"classes"`
	Format          string   `json:"format"`
	Purpose         string   `json:"purpose"`
	// AsOf is the audit index of the proposal: the extract holds the
	// submissions current as of it, whenever it is downloaded.
	AsOf       int64     `json:"as_of"`
	Status     string    `json:"status"` // ExtractPending, ExtractApproved or ExtractExpired
	ProposedBy string    `json:"proposed_by"`
	ProposedAt time.Time `json:"proposed_at"`
	// ExpiresAt is when a pending proposal can no longer be approved.
	ExpiresAt  time.Time `json:"expires_at"`
	ApprovedBy string    `json:"approved_by,omitempty"`
	ApprovedAt time.Time `json:"approved_at,omitzero"`
}

// ExtractList is the answer of GET /v1/extracts.
type ExtractList struct {
	Extracts []Extract `json:"extracts"`
}
