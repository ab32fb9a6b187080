package wire

// AreaRevision is the answer to POST /v1/admin/areas/revisions, whose
// body is a revision document of the area tree (broker/area.ParseRevision):
// the revision now in force, the SHA-256 of the document as stored and
// audited, what it changed, and how many grants it moved from retired EAs
// to the new ones.
type AreaRevision struct {
	Revision    int64  `json:"revision"`
	SHA256      string `json:"sha256"`
	AuditIndex  int64  `json:"audit_index"`
	Added       int    `json:"added"`
	Renamed     int    `json:"renamed"`
	Replanned   int    `json:"replanned"`
	Split       int    `json:"split"`
	Merged      int    `json:"merged"`
	GrantsMoved int    `json:"grants_moved"`
	GrantsAdded int    `json:"grants_added"`
}
