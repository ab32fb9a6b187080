// Package audit defines censusvault's tamper-evident audit log format: the
// canonical encoding of one audit event, its RFC 6962 leaf hash, the hash
// chain that links events in order, and a streaming verifier that an auditor
// runs offline over an exported log.
//
// The package is pure: it does no I/O and imports no other package of this
// module. storage keeps the opaque bytes of a [Record] inside the caller's
// transaction and the broker composes the two, so the format can be checked
// by anyone holding an export, with nothing but this package or a few lines
// of code in another language.
//
// # Event format, version 1
//
// An event is the RFC 8785 (JCS) canonical JSON of an object with these
// keys, in this order (JCS sorts keys):
//
//	action, actor, area, decision, index, outcome, policy_hash, purpose,
//	reason, release_digest, [request,] resources, roles, rule, time, v
//
// Every key is always present except "request", which is present exactly
// when the event has a non-empty request (research table releases) and is
// left out otherwise; "request":"" is not canonical. Events written before
// "request" existed therefore keep their bytes, hashes and validity. A
// verifier that predates the key rejects events carrying it as having an
// unknown key.
//
// "index" and "v" are integers, "resources" and "roles" are arrays of
// strings ([] when empty, never null), "time" is UTC RFC 3339 with as many
// fractional digits as needed ("2019-04-01T07:30:00.12Z") and everything
// else is a string ("" when unused). "request", when present, is a string
// holding the canonical JSON of a research table request (the normalized
// request, its as-of point and disclosure-control parameters), escaped as
// any other string. There is no whitespace; strings escape only '"', '\'
// and control characters below U+0020, as JSON.stringify does, and carry
// everything else, including non-ASCII text, as literal UTF-8.
//
// Because the encoding is canonical, an event has exactly one valid byte
// form: [Decode] rejects any other spelling with [ErrNotCanonical]. The bytes
// are hashed as they are, so the format is frozen: a new key may only be
// optional and absent when empty, as "request" is, and any other change
// means a new "v".
//
// An event carries identifiers only (actor, roles, area, resource ids,
// policy hash, release digest, and for a table release the request's
// parameters), never a field value, key or token: the log is read by
// auditors who must not see census data.
//
// # Hashes
//
// Each event's leaf hash is SHA-256(0x00 ‖ event bytes), the RFC 6962 leaf
// hash, so the same bytes can later become leaves of a Merkle tree with
// signed checkpoints. The chain hash is SHA-256(previous chain hash ‖ leaf
// hash), starting from [Genesis]: altering, removing, inserting or reordering
// any event changes every chain hash after it.
package audit
