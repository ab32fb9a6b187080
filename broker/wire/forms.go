package wire

import (
	"encoding/json"
	"time"
)

// Forms (issue 14): the form registry a vault accepts submissions
// under — the forms built into it and those an administrator added.

// Form describes one form version of the registry (GET /v1/forms).
type Form struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	Title   string `json:"title"`
	// SHA256 is the hex SHA-256 of the form's canonical definition (the
	// "definition" GET /v1/forms/{name}/{version} answers): what every
	// deposit's audit event carries.
	SHA256 string `json:"sha256"`
	// Builtin marks a form built into the vault's binary: it has no
	// added_at or added_by, and is never replaced.
	Builtin bool      `json:"builtin"`
	AddedAt time.Time `json:"added_at,omitzero"`
	AddedBy string    `json:"added_by,omitempty"`
	// InUse says a submission was deposited under this version: from
	// then on it never changes.
	InUse bool `json:"in_use"`
}

// FormList is the answer of GET /v1/forms, in (name, version) order.
type FormList struct {
	Forms []Form `json:"forms"`
}

// FormDefinition is the answer of GET /v1/forms/{name}/{version}: the
// form's canonical definition and the JSON Schema (draft 2020-12) of a
// submission made with it, whose x-constraints list what the schema
// cannot say (relevant-if, cross-field checks …). Its ETag is the SHA-256.
type FormDefinition struct {
	Form
	Definition json.RawMessage `json:"definition"`
	Schema     json.RawMessage `json:"schema"`
}

// What adding a form did (FormAdded.Outcome).
const (
	FormAddedNew       = "added"     // a new version
	FormAddedReplaced  = "replaced"  // an unused version's definition replaced
	FormAddedUnchanged = "unchanged" // the same definition again: nothing changed, no event
)

// FormAdded is the answer of POST /v1/admin/forms: 201 for a version
// added or replaced, 200 for the same definition again.
type FormAdded struct {
	Form
	Outcome string `json:"outcome"`
	// Previous is the SHA-256 of the definition a replacement replaced.
	Previous string `json:"previous_sha256,omitempty"`
	// Reclassified lists the fields whose class this version changes
	// from the newest earlier version of the form ("person.full_name
	// identifying→analytic") and those it adds ("+person.job analytic"),
	// as its audit event does.
	Reclassified []string `json:"reclassified,omitempty"`
	// AuditIndex is the event of the addition or replacement; absent
	// when nothing changed.
	AuditIndex *int64 `json:"audit_index,omitempty"`
}
