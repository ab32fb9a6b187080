package audit

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

var (
	// ErrMalformedCheckpoint is returned for a checkpoint that is not a
	// signed note, or whose text is not a C2SP tlog-checkpoint body.
	ErrMalformedCheckpoint = errors.New("malformed audit checkpoint")
	// ErrCheckpointSignature is returned for a checkpoint that carries no
	// valid signature by the verifier key: signed by another key, or
	// altered after signing.
	ErrCheckpointSignature = errors.New("audit checkpoint not signed by the verifier key")
	// ErrCheckpointOrigin is returned for a checkpoint, validly signed,
	// whose origin is not the verifier key's name, or for checkpoints of
	// different logs given together.
	ErrCheckpointOrigin = errors.New("audit checkpoint origin mismatch")
	// ErrVerifierKey is returned for a verifier key string that is not a
	// note verifier key ("<name>+<hash>+<key data>").
	ErrVerifierKey = errors.New("invalid audit verifier key")
)

// maxCheckpointNote bounds a signed checkpoint note: the body is about a
// hundred bytes, and note.Open accepts at most 100 signatures.
const maxCheckpointNote = 64 << 10

// Checkpoint is a C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint):
// the Merkle tree head of the audit log at Size leaves, for the log named
// Origin.
//
// By convention the vault signs checkpoints with its audit key, a note
// signer whose name is the log's origin (for example
// "census.example.org/audit"): it builds Checkpoint{Origin: the signer's
// name, Size, Root}, signs Body() as a signed note, and publishes the
// note. OpenCheckpoint enforces the convention, so a verifier key alone
// identifies both the signer and the log.
type Checkpoint struct {
	Origin string   // the log's identity; the name of the key that signs it
	Size   int64    // number of leaves (events) in the tree
	Root   [32]byte // RFC 6962 Merkle tree root of the first Size leaves
}

// Body returns the checkpoint's note text: "ORIGIN\nSIZE\nROOT\n" with
// SIZE in decimal and ROOT in standard base64 with padding. It never adds
// extension lines. Body does not validate c: an Origin that is empty or
// holds a newline or control character, or a negative Size, gives a text
// ParseCheckpoint refuses.
func (c Checkpoint) Body() string {
	return c.Origin + "\n" + strconv.FormatInt(c.Size, 10) + "\n" +
		base64.StdEncoding.EncodeToString(c.Root[:]) + "\n"
}

// ParseCheckpoint parses a checkpoint's note text strictly: newline-ended
// lines, a non-empty origin, the size in decimal with no sign and no
// leading zero, and the root as exactly 44 characters of padded standard
// base64 of 32 bytes. No line may be empty or hold a control character or
// invalid UTF-8. The spec allows non-empty extension lines after the root;
// ParseCheckpoint accepts and ignores them (the vault writes none, and they
// are covered by the signature but carry nothing this package checks).
// Errors wrap ErrMalformedCheckpoint.
func ParseCheckpoint(body string) (Checkpoint, error) {
	bad := func(what string) (Checkpoint, error) {
		return Checkpoint{}, fmt.Errorf("%w: %s", ErrMalformedCheckpoint, what)
	}
	if len(body) > maxCheckpointNote {
		return bad(fmt.Sprintf("longer than %d bytes", maxCheckpointNote))
	}
	if !strings.HasSuffix(body, "\n") {
		return bad("text does not end with a newline")
	}
	lines := strings.Split(body[:len(body)-1], "\n")
	if len(lines) < 3 {
		return bad("want origin, tree size and root hash lines")
	}
	for i, l := range lines {
		if l == "" {
			return bad(fmt.Sprintf("line %d is empty", i+1))
		}
		if !utf8.ValidString(l) {
			return bad(fmt.Sprintf("line %d is not valid UTF-8", i+1))
		}
		if strings.ContainsFunc(l, func(r rune) bool { return r < 0x20 }) {
			return bad(fmt.Sprintf("line %d holds a control character", i+1))
		}
	}
	var c Checkpoint
	c.Origin = lines[0]
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || lines[1] != strconv.FormatInt(size, 10) {
		return bad("tree size is not a decimal integer in [0, 2^63) without sign or leading zero")
	}
	c.Size = size
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != len(c.Root) || base64.StdEncoding.EncodeToString(root) != lines[2] {
		return bad("root hash is not 32 bytes in padded standard base64")
	}
	copy(c.Root[:], root)
	return c, nil
}

// OpenCheckpoint verifies a signed checkpoint note with verifierKey (a
// note verifier key, "<name>+<hash>+<key data>") and returns the
// checkpoint. The note must carry a valid signature by that key; other
// signatures (witness cosignatures, a rotated key) are ignored, as the
// signed-note spec requires. The checkpoint's origin must equal the key's
// name (see Checkpoint). Errors wrap ErrVerifierKey, ErrMalformedCheckpoint,
// ErrCheckpointSignature or ErrCheckpointOrigin.
func OpenCheckpoint(signedNote []byte, verifierKey string) (Checkpoint, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v (want the vault's audit verifier key, \"<name>+<hash>+<key data>\")", ErrVerifierKey, err)
	}
	if len(signedNote) > maxCheckpointNote {
		return Checkpoint{}, fmt.Errorf("%w: note longer than %d bytes", ErrMalformedCheckpoint, maxCheckpointNote)
	}
	n, err := note.Open(signedNote, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return Checkpoint{}, fmt.Errorf("%w: no signature by key %s (signed with another key, or not the checkpoint of this log)", ErrCheckpointSignature, quoteShort(v.Name()))
		case errors.As(err, &invalid):
			return Checkpoint{}, fmt.Errorf("%w: the signature by key %s does not verify (checkpoint altered or forged)", ErrCheckpointSignature, quoteShort(v.Name()))
		default:
			return Checkpoint{}, fmt.Errorf("%w: not a signed note: %v", ErrMalformedCheckpoint, err)
		}
	}
	// note.Open only reports signatures by v, but check, since everything
	// below trusts the text.
	signed := false
	for _, s := range n.Sigs {
		signed = signed || s.Name == v.Name() && s.Hash == v.KeyHash()
	}
	if !signed {
		return Checkpoint{}, fmt.Errorf("%w: no signature by key %s", ErrCheckpointSignature, quoteShort(v.Name()))
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint origin %s is not the key's name %s (a checkpoint of another log)", ErrCheckpointOrigin, quoteShort(c.Origin), quoteShort(v.Name()))
	}
	return c, nil
}

// checkpointText returns the text of a signed note without checking any
// signature. It is for ExportWriter, which embeds a checkpoint the vault
// has just signed and needs only its size.
func checkpointText(signedNote []byte) (Checkpoint, error) {
	if len(signedNote) > maxCheckpointNote {
		return Checkpoint{}, fmt.Errorf("%w: note longer than %d bytes", ErrMalformedCheckpoint, maxCheckpointNote)
	}
	_, err := note.Open(signedNote, nil)
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		// With no known keys a well-formed note always comes back
		// unverified; anything else is malformed.
		return Checkpoint{}, fmt.Errorf("%w: not a signed note", ErrMalformedCheckpoint)
	}
	return ParseCheckpoint(unverified.Note.Text)
}
