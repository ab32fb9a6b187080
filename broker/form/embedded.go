package form

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

//go:embed lfs2026.json
var lfs2026 []byte

// Embedded returns the forms built into the binary, each a new Form: the
// vault always accepts them, and no administrator can replace them. A
// form embedded later is added here, and only here. The default form
// (census2019 v1) comes first; lfs2026 v1, a labour-force survey module
// (the member roster as the repeat, an age role, relevant-ifs, a code
// set, a constraint and person checks), shows that nothing in the
// engine is the census's.
func Embedded() []*Form {
	return []*Form{Default(), mustParse("lfs2026.json", lfs2026)}
}

// mustParse parses an embedded definition. The embedded files are
// tested; a build that passed its tests cannot panic here.
func mustParse(file string, b []byte) *Form {
	f, err := Parse(b)
	if err != nil {
		panic("form: embedded " + file + " is invalid: " + err.Error())
	}
	return f
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
