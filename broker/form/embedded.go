package form

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Embedded returns the forms built into the binary, each a new Form: the
// vault always accepts them, and no administrator can replace them. A
// form embedded later is added here, and only here.
func Embedded() []*Form {
	return []*Form{Default()}
}

// Canonical returns the form's canonical definition bytes, the JSON
// encoding/json writes of it: one byte string per definition, whatever
// it was read from (JSON with other spacing or key order, an XLSForm
// workbook), so that a form and its SHA-256 (Digest) name the same
// definition everywhere. Parse reads them back to an equal Form.
func (f *Form) Canonical() ([]byte, error) {
	if _, err := f.rules(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("form %s: failed to encode the definition: %w", f.Name, err)
	}
	return b, nil
}

// Digest returns the canonical definition bytes (Canonical) and their
// SHA-256 in lowercase hex: what deposit events and the form registry
// carry.
func (f *Form) Digest() (canonical []byte, sha string, err error) {
	b, err := f.Canonical()
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:]), nil
}
