// Package crypto holds every piece of key handling of the vault: data keys
// (DEKs) and field sealing, the KeyProvider abstraction, the ingest identity
// that devices encrypt submissions to, the note signers behind receipts and
// audit checkpoints, and bearer tokens.
//
// # Invariants
//
//   - Plaintext field values never reach storage: the broker seals every
//     sensitive field class with [Keyring.Seal] before it writes anything,
//     and the associated data ([AD]) binds each sealed value to its
//     submission, form version, area, household and data key, so a value
//     cannot be moved or replayed elsewhere without failing to open.
//   - Data keys are generated and used only inside this package and are
//     never exported: callers handle [DataKeyID]s and wrapped blobs only.
//   - Key material outside this package (DEKs, the ingest identity, signing
//     keys) only ever exists wrapped by a [KeyProvider]. Wrapped blobs carry
//     a domain-separation prefix inside the encryption, so a wrapped DEK
//     cannot be loaded as a signing key, nor a DEK under another DataKeyID.
//   - Every decryption or authentication failure is the same [ErrDecrypt],
//     with no detail, so the vault is not an oracle for which check failed.
//   - Bearer tokens are stored only as SHA-256 digests and compared in
//     constant time.
//
// # Threat model
//
// The database (and its backups) may be read or modified by an attacker: it
// holds only sealed field values and wrapped keys, so reading it yields
// nothing without the KeyProvider's key-encryption key, and modifying it
// (swapping ciphertexts, wrapped keys or associated data) yields ErrDecrypt
// rather than misattributed data. Devices and the network are untrusted:
// submissions are age files encrypted to a hybrid post-quantum recipient
// (ML-KEM-768 + X25519), because census answers must stay secret for
// decades and harvest-now-decrypt-later is a real risk; opening them is
// bounded in memory and work. A compromised broker process that holds the
// unwrapped keys in memory is out of scope: the KeyProvider (a local age
// identity, or HashiCorp Vault Transit) is what keeps stolen storage useless.
//
// Rotating the key-encryption key goes through [Rewrap], inside this package.
//
// Secret-holding types ([IngestIdentity], [Signer], [Token]) redact
// themselves when formatted and cannot be compared with ==.
package crypto

import "errors"

var (
	// ErrDecrypt is returned for every authentication or decryption
	// failure, deliberately without detail.
	ErrDecrypt = errors.New("failed to decrypt")
	// ErrKeyNotLoaded is returned by Seal and Open when the data key is not
	// in the keyring's cache: the caller loads its wrapped form from storage
	// with LoadDataKeys and retries.
	ErrKeyNotLoaded = errors.New("data key not loaded")
	// ErrTooLarge is returned when a plaintext exceeds its bound.
	ErrTooLarge = errors.New("plaintext too large")
	// ErrMalformedToken is returned by ParseTokenDigest for anything that is
	// not exactly 43 unpadded base64url characters.
	ErrMalformedToken = errors.New("malformed token")
)

// incomparable, as a zero-size first field, makes a struct
// non-comparable so that secrets cannot be compared with == by mistake.
type incomparable [0]func()
