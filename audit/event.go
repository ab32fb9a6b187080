package audit

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Event versions: the "v" field. An event's version follows from its
// nonce: an event without one is version 1, an event with one version 2.
const (
	// Version1 events carry no nonce. They were written before nonces
	// existed and keep their exact bytes; their leaf hashes are a
	// function of their (guessable) contents alone.
	Version1 = 1
	// Version2 events carry a random 128-bit nonce, so that a leaf hash
	// reveals nothing of an event whose body is withheld.
	Version2 = 2
	// Version is the version of the events written now: every event the
	// broker appends carries a fresh nonce.
	Version = Version2
)

// NonceSize is the length in bytes of a version-2 event's nonce.
const NonceSize = 16

// MaxIndex is the largest event index: 2^53-1, the largest integer every
// JSON implementation (IEEE 754 doubles included) represents exactly, so a
// verifier written in any language reads the same number.
const MaxIndex = 1<<53 - 1

// MaxEventSize bounds the encoded size of one event. Decode refuses larger
// input before parsing it, and Encode refuses to produce it, so every event
// written can be read back. It leaves room for thousands of resource ids.
const MaxEventSize = 256 << 10

var (
	// ErrInvalidEvent is returned by Encode for an event that cannot be
	// represented: index out of range, time outside years 0000-9999, or a
	// string that is not valid UTF-8.
	ErrInvalidEvent = errors.New("invalid audit event")
	// ErrTooLarge is returned when an event's bytes exceed MaxEventSize.
	ErrTooLarge = errors.New("audit event too large")
	// ErrMalformed is returned by Decode for bytes that are not an event
	// of a known version: bad JSON, unknown, missing or duplicate keys,
	// wrong types, a bad time, an index out of range, or a nonce missing
	// from a version-2 event, present in a version-1 one or not 16 bytes.
	ErrMalformed = errors.New("malformed audit event")
	// ErrVersion is returned by Decode for a well-typed "v" other than
	// Version1 or Version2.
	ErrVersion = errors.New("unsupported audit event version")
	// ErrNotCanonical is returned by Decode for an event that parses but is
	// not spelled in its one canonical form (whitespace, key order, escapes,
	// time or number form, or an empty "request" that should be left out).
	ErrNotCanonical = errors.New("audit event not in canonical form")
)

// timeLayout is RFC 3339 in UTC with trailing fractional zeros trimmed, the
// only time form an event carries.
const timeLayout = "2006-01-02T15:04:05.999999999Z"

// Event is one audit record: who asked to do what where, and what happened.
// It never holds a field value, key or token.
type Event struct {
	Index         int64     // position in the log, from 0
	Time          time.Time // encoded in UTC, RFC 3339 with nanoseconds
	Actor         string    // "user:alice", "cli:root", "anonymous"
	Roles         []string  // the actor's roles when the request was decided
	Action        string    // e.g. "submission.deposit"
	Area          string    // area code the request was authorized against
	Resources     []string  // ids, e.g. "submission:UUID"
	Decision      string    // "allow" | "deny" | ""
	Rule          string    // matching policy rule
	Reason        string    // why, for a deny or an error; never a value
	Purpose       string    // declared purpose, for research requests
	PolicyHash    string    // hash of the policy that decided
	Outcome       string    // e.g. "ok", "invalid", "denied", "conflict", "replayed", "error"
	ReleaseDigest string    // digest of released bytes, for releases
	// Request is the canonical JSON of a research table request: the
	// normalized request, its as-of point and disclosure-control
	// parameters; empty for other events. Empty, it is left out of the
	// encoding altogether, so events without it keep their bytes.
	Request string
	// FormSHA256 is the hex SHA-256 of the canonical definition of the
	// form a deposit was validated and sealed by; empty for other
	// events. Empty, it is left out of the encoding, as Request is.
	FormSHA256 string
	// Nonce is NonceSize random bytes (NewNonce), fresh for every event
	// and never reused, that make the event's bytes, and so its leaf
	// hash, unguessable from its other fields: an auditor shown only
	// the leaf hash of an event outside their scope cannot confirm a
	// guess of its contents. It is not a secret key: it is exported with
	// the event to whoever may see the event. With a nonce the event is
	// version 2; without (nil) it is version 1, as every event written
	// before nonces existed.
	Nonce []byte
}

// NewNonce returns NonceSize bytes from crypto/rand, for Event.Nonce.
// 128 random bits never repeat in practice, whatever the log's size.
func NewNonce() ([]byte, error) {
	n := make([]byte, NonceSize)
	if _, err := rand.Read(n); err != nil {
		return nil, fmt.Errorf("failed to make an audit event nonce: %w", err)
	}
	return n, nil
}

// version is the "v" the event encodes with.
func (e *Event) version() int64 {
	if e.Nonce == nil {
		return Version1
	}
	return Version2
}

// Encode returns the event's canonical bytes (see the package
// documentation). Empty slices encode as [], never null; an empty Request
// leaves the "request" key out, an empty FormSHA256 the "form_sha256" key. An event with a Nonce encodes as version
// 2, one without as version 1 (exactly as before nonces existed).
func (e *Event) Encode() ([]byte, error) {
	if e.Index < 0 || e.Index > MaxIndex {
		return nil, fmt.Errorf("%w: index %d out of range [0, %d]", ErrInvalidEvent, e.Index, int64(MaxIndex))
	}
	if e.Nonce != nil && len(e.Nonce) != NonceSize {
		return nil, fmt.Errorf("%w: nonce of %d bytes, want %d (or none, for a version-1 event)", ErrInvalidEvent, len(e.Nonce), NonceSize)
	}
	t := e.Time.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("%w: time year %d outside 0000-9999", ErrInvalidEvent, y)
	}
	const fixed = 340 // keys, punctuation, index, nonce and time (and the "form_sha256" and "request" keys)
	size := fixed
	for _, f := range [...]struct {
		name string
		s    string
	}{
		{"action", e.Action}, {"actor", e.Actor}, {"area", e.Area},
		{"decision", e.Decision}, {"form_sha256", e.FormSHA256}, {"outcome", e.Outcome},
		{"policy_hash", e.PolicyHash}, {"purpose", e.Purpose},
		{"reason", e.Reason}, {"release_digest", e.ReleaseDigest},
		{"request", e.Request}, {"rule", e.Rule},
	} {
		if !utf8.ValidString(f.s) {
			return nil, fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidEvent, f.name)
		}
		size += len(f.s)
	}
	for _, f := range [...]struct {
		name string
		ss   []string
	}{{"resources", e.Resources}, {"roles", e.Roles}} {
		for i, s := range f.ss {
			if !utf8.ValidString(s) {
				return nil, fmt.Errorf("%w: %s[%d] is not valid UTF-8", ErrInvalidEvent, f.name, i)
			}
			size += len(s) + 3
		}
	}
	// Escapes can only grow the output, so this early check never rejects
	// an event whose encoding would fit.
	if size-fixed > MaxEventSize {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxEventSize)
	}

	b := make([]byte, 0, size)
	b = append(b, `{"action":`...)
	b = appendString(b, e.Action)
	b = append(b, `,"actor":`...)
	b = appendString(b, e.Actor)
	b = append(b, `,"area":`...)
	b = appendString(b, e.Area)
	b = append(b, `,"decision":`...)
	b = appendString(b, e.Decision)
	if e.FormSHA256 != "" {
		// Optional, as "request" is.
		b = append(b, `,"form_sha256":`...)
		b = appendString(b, e.FormSHA256)
	}
	b = append(b, `,"index":`...)
	b = strconv.AppendInt(b, e.Index, 10)
	if e.Nonce != nil {
		// Version 2 only: a version-1 event has no "nonce" key, so old
		// events keep their bytes.
		b = append(b, `,"nonce":"`...)
		b = hex.AppendEncode(b, e.Nonce)
		b = append(b, '"')
	}
	b = append(b, `,"outcome":`...)
	b = appendString(b, e.Outcome)
	b = append(b, `,"policy_hash":`...)
	b = appendString(b, e.PolicyHash)
	b = append(b, `,"purpose":`...)
	b = appendString(b, e.Purpose)
	b = append(b, `,"reason":`...)
	b = appendString(b, e.Reason)
	b = append(b, `,"release_digest":`...)
	b = appendString(b, e.ReleaseDigest)
	if e.Request != "" {
		// Optional: absent when empty, so every event written before the
		// key existed encodes exactly as it did.
		b = append(b, `,"request":`...)
		b = appendString(b, e.Request)
	}
	b = append(b, `,"resources":`...)
	b = appendStrings(b, e.Resources)
	b = append(b, `,"roles":`...)
	b = appendStrings(b, e.Roles)
	b = append(b, `,"rule":`...)
	b = appendString(b, e.Rule)
	b = append(b, `,"time":"`...)
	b = t.AppendFormat(b, timeLayout)
	b = append(b, `","v":`...)
	b = strconv.AppendInt(b, e.version(), 10)
	b = append(b, '}')
	if len(b) > MaxEventSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxEventSize)
	}
	return b, nil
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JCS string: the escapes of ECMAScript
// JSON.stringify and nothing else. Unlike encoding/json it leaves '<', '>',
// '&', U+2028 and U+2029 alone, since JCS output must be reproducible by any
// conforming implementation. s must be valid UTF-8.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\b':
			b = append(b, '\\', 'b')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\f':
			b = append(b, '\\', 'f')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
