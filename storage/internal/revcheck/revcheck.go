// Package revcheck holds the check both storage backends make of an area
// revision before storing it (what storage.Tx's AppendAreaRevision
// promises), so the two refuse the same mistakes with the same words.
// The errors are programming mistakes of the caller, never ErrNotFound or
// ErrConflict (the order of numbers is the backend's to check).
package revcheck

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"github.com/censusvault/censusvault/storage"
)

// Check refuses a revision AppendAreaRevision must not store.
func Check(r *storage.AreaRevision) error {
	sum := sha256.Sum256(r.Document)
	switch {
	case r.Number < 1:
		return errors.New("area revision: the number must be 1 or more")
	case r.At.IsZero():
		return errors.New("area revision: no time")
	case r.AuditIndex < 0:
		return errors.New("area revision: negative audit index")
	case len(r.Document) == 0:
		return errors.New("area revision: empty document")
	case r.SHA256 != hex.EncodeToString(sum[:]):
		return errors.New("area revision: SHA256 is not the document's")
	}
	return nil
}
