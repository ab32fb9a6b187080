// Package audit defines censusvault's tamper-evident audit log format: the
// canonical encoding of one audit event, its RFC 6962 leaf hash, the hash
// chain that links events in order, the RFC 6962 Merkle tree over all
// events with its signed C2SP checkpoints, the export format, and a
// streaming verifier that an auditor runs offline over an export.
//
// The package is pure: it does no I/O of its own (the export functions use
// only the io.Reader and io.Writer they are given), imports no other
// package of this module, and outside the standard library only the pure
// golang.org/x/mod/sumdb/tlog and golang.org/x/mod/sumdb/note. storage
// keeps the opaque bytes of a [Record] and the tree's stored hashes inside
// the caller's transaction and the broker composes the two, so the format
// can be checked by anyone holding an export, with nothing but this package
// or a few lines of code in another language.
//
// # Event format, versions 1 and 2
//
// An event is the RFC 8785 (JCS) canonical JSON of an object with these
// keys, in this order (JCS sorts keys):
//
//	action, actor, area, decision, [form_sha256,] index, [nonce,] outcome,
//	policy_hash, purpose, reason, release_digest, [request,] resources,
//	roles, rule, time, v
//
// "nonce" is what separates the two versions. A version-2 event ("v":2,
// every event written now) carries "nonce": 16 bytes from a
// cryptographically secure random source, fresh for every event, as 32
// lowercase hex digits. A version-1 event ("v":1, every event written
// before nonces existed) has no "nonce" key and keeps its exact bytes.
// Decode refuses a version-2 event without a nonce (or with one of another
// length) and a version-1 event with one.
//
// Why the nonce: an export withholds the events its reader may not see as
// their leaf hashes, and the public proof routes hand out leaf hashes too.
// An event's other fields come from small sets (a few users, actions and
// areas, a time near its neighbours'), so without a nonce anyone holding
// a leaf hash can hash candidate events until one matches, and so read a
// withheld event. With 128 random bits in the hashed bytes a guess cannot
// be confirmed. The nonce is not a secret key: it is exported with the
// event to whoever may see the event. Version-1 events stay guessable
// from their leaf hashes; nothing can change that without changing their
// bytes, and so the tree and every checkpoint signed over them.
//
// Every key is always present except "request", which is present exactly
// when the event has a non-empty request (research table releases) and is
// left out otherwise, and "form_sha256", likewise present exactly when the
// event names the SHA-256 of a form definition (deposits: the form the
// submission was validated and sealed by); "request":"" and
// "form_sha256":"" are not canonical. Events written before either key
// existed therefore keep their bytes, hashes and validity. A verifier that
// predates a key rejects events carrying it as having an unknown key.
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
// hash, which makes the events the leaves of the Merkle tree below. The
// chain hash is SHA-256(previous chain hash ‖ leaf hash), starting from
// [Genesis]: altering, removing, inserting or reordering any event changes
// every chain hash after it.
//
// # Merkle tree and checkpoints
//
// The leaf hashes, in index order, are the leaves of an RFC 6962 Merkle
// tree, the tree of golang.org/x/mod/sumdb/tlog. [TreeBuilder] computes its
// root while streaming; [StoredHashes], [StoredHashIndex], [TreeRoot],
// [InclusionProof], [ConsistencyProof], [CheckInclusion] and
// [CheckConsistency] wrap tlog for the broker, which keeps the stored
// hashes through storage (a [HashReader]) and never imports tlog.
//
// A checkpoint ([Checkpoint]) is the tree head at a size, in the C2SP
// tlog-checkpoint format ("ORIGIN\nSIZE\nBASE64(ROOT)\n"), signed as a
// C2SP signed note. The vault signs checkpoints with its audit key, and the
// key's name is the log's origin: to sign, the broker takes the origin
// from its signer's name, builds Checkpoint{Origin, Size, Root} and signs
// [Checkpoint.Body]. [OpenCheckpoint] verifies a signature by the auditor's
// verifier key and requires the origin to be that key's name. A log must
// never sign two checkpoints that are not consistent: an auditor or
// witness keeping older checkpoints detects a rewritten (forked) or
// truncated log.
//
// # Export format
//
// An export is JSON Lines, every line ended by "\n", written by
// [ExportWriter]. Line 1 is
//
//	{"checkpoint":"<signed checkpoint note, as a JSON string>"}
//
// then exactly one line per leaf i = 0..N-1, N being the checkpoint's size:
//
//	{"index":i,"event":<event bytes>,"leaf_hash":"<b64>","chain_hash":"<b64>"}
//	{"index":i,"leaf_hash":"<b64>","chain_hash":"<b64>","withheld":"pruned"}
//	{"index":i,"leaf_hash":"<b64>","chain_hash":"<b64>","withheld":"out_of_scope"}
//
// The event bytes are the canonical event embedded verbatim (a JSON
// object), so a reader recovers them exactly, e.g. as a json.RawMessage,
// and can recompute the leaf hash. Hashes are 32 bytes in padded standard
// base64. A withheld leaf (an event pruned under retention, or one the
// export's reader may not see) keeps its position and hashes, so the chain
// and the tree still verify, but not its content. Keys appear in the order
// shown, with no whitespace; JSON strings escape as events do.
//
// # Offline verification
//
// [VerifyExport] checks an export in one streaming pass, in memory
// independent of its length: the checkpoint's signature and origin, every
// line's exact form, the index sequence, each event and its hashes (with
// a [Verifier]), the Merkle root against the checkpoint, and that the log
// extends every older checkpoint the auditor kept. Every line must
// be exactly as ExportWriter writes it, so an export, like an event, has
// one valid byte form.
package audit
