package audit

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/bits"
	"strconv"
	"time"
	"unicode/utf8"
)

// Field bits, one per key, so missing and duplicate keys are found with one
// word of state whatever the input.
const (
	fAction = 1 << iota
	fActor
	fArea
	fDecision
	fFormSHA256
	fIndex
	fNonce
	fOutcome
	fPolicyHash
	fPurpose
	fReason
	fReleaseDigest
	fRequest
	fResources
	fRoles
	fRule
	fTime
	fV
	fAll = 1<<iota - 1
	// fOptional are the keys an event may leave out: "form_sha256" and
	// "request" are present exactly when they are not empty, "nonce"
	// exactly when "v" is 2.
	fOptional = fFormSHA256 | fRequest | fNonce
	fRequired = fAll &^ fOptional
)

// keyNames lists the keys in canonical order; key i has bit 1<<i.
var keyNames = [...]string{
	"action", "actor", "area", "decision", "form_sha256", "index", "nonce", "outcome", "policy_hash",
	"purpose", "reason", "release_digest", "request", "resources", "roles",
	"rule", "time", "v",
}

var keyBits = map[string]int{
	"action": fAction, "actor": fActor, "area": fArea,
	"decision": fDecision, "form_sha256": fFormSHA256, "index": fIndex, "nonce": fNonce, "outcome": fOutcome,
	"policy_hash": fPolicyHash, "purpose": fPurpose, "reason": fReason,
	"release_digest": fReleaseDigest, "request": fRequest,
	"resources": fResources, "roles": fRoles, "rule": fRule, "time": fTime,
	"v": fV,
}

func keyName(bit int) string { return keyNames[bits.TrailingZeros(uint(bit))] }

// Decode parses an event strictly: the bytes must be one JSON object with
// exactly the keys of its version (every required key, "request" at most
// once, and "nonce" — 16 bytes as 32 lowercase hex digits — in a version-2
// event and never in a version-1 one), each once and of the right type,
// and must be the event's canonical encoding. Errors wrap ErrTooLarge,
// ErrMalformed, ErrVersion or ErrNotCanonical; "request":"" is
// ErrNotCanonical, since the canonical form leaves an empty request out.
// Empty arrays decode as nil slices; Time is in UTC; Nonce is nil for a
// version-1 event.
//
// Non-canonical but well-formed JSON (whitespace, another key order, other
// escapes) is parsed first and then refused with ErrNotCanonical, so an
// auditor learns why an export fails, not just that it does.
func Decode(b []byte) (*Event, error) {
	if len(b) > MaxEventSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxEventSize)
	}
	p := parser{b: b}
	e, err := p.event()
	if err != nil {
		return nil, err
	}
	if p.emptyRequest {
		return nil, fmt.Errorf(`%w: "request" is empty; the canonical form leaves the key out when there is no request`, ErrNotCanonical)
	}
	if p.emptyFormSHA256 {
		return nil, fmt.Errorf(`%w: "form_sha256" is empty; the canonical form leaves the key out when there is no form`, ErrNotCanonical)
	}
	enc, err := e.Encode()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCanonical, err)
	}
	if !bytes.Equal(enc, b) {
		i := 0
		for i < len(enc) && i < len(b) && enc[i] == b[i] {
			i++
		}
		return nil, fmt.Errorf("%w: first difference at byte %d", ErrNotCanonical, i)
	}
	return e, nil
}

// parser reads the one shape an event has: a flat object whose values are
// strings, integers or arrays of strings. It never recurses, and all its work
// is linear in the input, which Decode has already bounded.
type parser struct {
	b []byte
	i int
	// emptyRequest records a "request" key with an empty string, which
	// parses but is not canonical.
	emptyRequest bool
	// emptyFormSHA256 does the same for "form_sha256".
	emptyFormSHA256 bool
	// v is the event's version, read from "v".
	v int64
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at byte %d", ErrMalformed, fmt.Sprintf(format, args...), p.i)
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *parser) expect(c byte) error {
	if p.peek() != c {
		return p.errorf("expected %q", c)
	}
	p.i++
	return nil
}

// found names the JSON type starting at the cursor, for type errors.
func (p *parser) found() string {
	switch c := p.peek(); {
	case c == '"':
		return "string"
	case c == '[':
		return "array"
	case c == '{':
		return "object"
	case c == '-' || c >= '0' && c <= '9':
		return "number"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	case p.i >= len(p.b):
		return "end of input"
	default:
		return "invalid JSON"
	}
}

func (p *parser) event() (*Event, error) {
	e := new(Event)
	seen := 0
	p.ws()
	if err := p.expect('{'); err != nil {
		return nil, err
	}
	p.ws()
	if p.peek() == '}' {
		p.i++
	} else {
		for {
			bit, err := p.key()
			if err != nil {
				return nil, err
			}
			if seen&bit != 0 {
				return nil, p.errorf("duplicate key %q", keyName(bit))
			}
			seen |= bit
			p.ws()
			if err := p.expect(':'); err != nil {
				return nil, err
			}
			p.ws()
			if err := p.value(e, bit); err != nil {
				return nil, err
			}
			p.ws()
			if p.peek() == ',' {
				p.i++
				p.ws()
				continue
			}
			if err := p.expect('}'); err != nil {
				return nil, err
			}
			break
		}
	}
	p.ws()
	if p.i != len(p.b) {
		return nil, p.errorf("trailing data after event")
	}
	if seen&fRequired != fRequired {
		return nil, fmt.Errorf("%w: missing key %q", ErrMalformed, firstMissing(seen))
	}
	// The nonce goes with the version: a version-2 event without one
	// would have a guessable leaf hash, and a version-1 event never had
	// one.
	switch {
	case p.v == Version2 && seen&fNonce == 0:
		return nil, fmt.Errorf(`%w: missing key "nonce" (every version-2 event has one)`, ErrMalformed)
	case p.v == Version1 && seen&fNonce != 0:
		return nil, fmt.Errorf(`%w: key "nonce" in a version-1 event`, ErrMalformed)
	}
	return e, nil
}

// firstMissing names the first missing required key in canonical order,
// so the error is the same on every run.
func firstMissing(seen int) string {
	for i, name := range keyNames {
		if seen&(1<<i) == 0 && fRequired&(1<<i) != 0 {
			return name
		}
	}
	return ""
}

// key reads an object key and returns its bit. Keys are looked up straight
// from the input when they need no unescaping, which is always the case for
// canonical events, so verifying a log does not allocate per key.
func (p *parser) key() (int, error) {
	if p.peek() != '"' {
		return 0, p.errorf("expected key")
	}
	start, j := p.i+1, p.i+1
	for j < len(p.b) && p.b[j] != '"' && p.b[j] != '\\' && p.b[j] >= 0x20 {
		j++
	}
	if j < len(p.b) && p.b[j] == '"' {
		if bit, ok := keyBits[string(p.b[start:j])]; ok {
			p.i = j + 1
			return bit, nil
		}
	}
	key, err := p.str()
	if err != nil {
		return 0, err
	}
	bit, ok := keyBits[key]
	if !ok {
		return 0, p.errorf("unknown key %s", quoteShort(key))
	}
	return bit, nil
}

func (p *parser) value(e *Event, bit int) error {
	key := keyName(bit)
	var err error
	switch bit {
	case fIndex:
		var n int64
		if n, err = p.integer(key); err != nil {
			return err
		}
		if n < 0 || n > MaxIndex {
			return p.errorf("index %d out of range [0, %d]", n, int64(MaxIndex))
		}
		e.Index = n
	case fV:
		var n int64
		if n, err = p.integer(key); err != nil {
			return err
		}
		if n != Version1 && n != Version2 {
			return fmt.Errorf("%w: %d", ErrVersion, n)
		}
		p.v = n
	case fNonce:
		var s string
		if s, err = p.stringValue(key); err != nil {
			return err
		}
		// hex accepts upper case too; the canonical check then refuses
		// it, so the error says "not canonical", not "malformed".
		n, herr := hex.DecodeString(s)
		if herr != nil || len(n) != NonceSize {
			return p.errorf("key %q: want %d bytes as %d hex digits, found %s", key, NonceSize, 2*NonceSize, quoteShort(s))
		}
		e.Nonce = n
	case fResources:
		e.Resources, err = p.strings(key)
	case fRoles:
		e.Roles, err = p.strings(key)
	case fTime:
		var s string
		if s, err = p.stringValue(key); err != nil {
			return err
		}
		t, perr := time.Parse(timeLayout, s)
		if perr != nil {
			return p.errorf("bad time %s", quoteShort(s))
		}
		e.Time = t.UTC()
	default:
		var s string
		if s, err = p.stringValue(key); err != nil {
			return err
		}
		switch bit {
		case fAction:
			e.Action = s
		case fActor:
			e.Actor = s
		case fArea:
			e.Area = s
		case fDecision:
			e.Decision = s
		case fFormSHA256:
			e.FormSHA256 = s
			p.emptyFormSHA256 = s == ""
		case fOutcome:
			e.Outcome = s
		case fPolicyHash:
			e.PolicyHash = s
		case fPurpose:
			e.Purpose = s
		case fReason:
			e.Reason = s
		case fReleaseDigest:
			e.ReleaseDigest = s
		case fRequest:
			e.Request = s
			p.emptyRequest = s == ""
		case fRule:
			e.Rule = s
		}
	}
	return err
}

func (p *parser) stringValue(key string) (string, error) {
	if p.peek() != '"' {
		return "", p.errorf("key %q: expected string, found %s", key, p.found())
	}
	return p.str()
}

func (p *parser) strings(key string) ([]string, error) {
	if p.peek() != '[' {
		return nil, p.errorf("key %q: expected array of strings, found %s", key, p.found())
	}
	p.i++
	p.ws()
	if p.peek() == ']' {
		p.i++
		return nil, nil
	}
	var ss []string
	for {
		if p.peek() != '"' {
			return nil, p.errorf("key %q: expected string element, found %s", key, p.found())
		}
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		ss = append(ss, s)
		p.ws()
		if p.peek() == ',' {
			p.i++
			p.ws()
			continue
		}
		if err := p.expect(']'); err != nil {
			return nil, err
		}
		return ss, nil
	}
}

// integer reads a JSON number that has no fraction or exponent. 2^53-1 has
// 16 digits, so longer numbers are refused before conversion.
func (p *parser) integer(key string) (int64, error) {
	c := p.peek()
	if c != '-' && (c < '0' || c > '9') {
		return 0, p.errorf("key %q: expected integer, found %s", key, p.found())
	}
	start := p.i
	if c == '-' {
		p.i++
	}
	switch c := p.peek(); {
	case c == '0':
		p.i++
	case c >= '1' && c <= '9':
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
		}
	default:
		return 0, p.errorf("key %q: invalid number", key)
	}
	switch p.peek() {
	case '.', 'e', 'E':
		return 0, p.errorf("key %q: expected integer, found fraction or exponent", key)
	case '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return 0, p.errorf("key %q: invalid number (leading zero)", key)
	}
	digits := p.b[start:p.i]
	if len(digits) > 17 { // sign and 16 digits
		return 0, p.errorf("key %q: integer out of range", key)
	}
	n, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil {
		return 0, p.errorf("key %q: invalid integer", key)
	}
	return n, nil
}

// str reads a JSON string at the cursor, which must be '"'. It accepts every
// JSON escape (the canonical check later refuses unneeded ones) but refuses
// raw control characters, lone surrogates and invalid UTF-8, which have no
// canonical form.
func (p *parser) str() (string, error) {
	p.i++ // opening quote
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := p.b[start:p.i]
			if !utf8.Valid(s) {
				return "", p.errorf("invalid UTF-8 in string")
			}
			p.i++
			return string(s), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", p.errorf("control character in string")
		}
		p.i++
	}
	buf := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			if !utf8.Valid(buf) {
				return "", p.errorf("invalid UTF-8 in string")
			}
			p.i++
			return string(buf), nil
		case c < 0x20:
			return "", p.errorf("control character in string")
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		p.i++ // backslash
		switch p.peek() {
		case '"', '\\', '/':
			buf = append(buf, p.b[p.i])
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			p.i++
			r, ok := p.hex4()
			if !ok {
				return "", p.errorf("invalid \\u escape")
			}
			if r >= 0xdc00 && r <= 0xdfff {
				return "", p.errorf("lone low surrogate")
			}
			if r >= 0xd800 && r <= 0xdbff {
				if p.peek() != '\\' || p.i+1 >= len(p.b) || p.b[p.i+1] != 'u' {
					return "", p.errorf("lone high surrogate")
				}
				p.i += 2
				lo, ok := p.hex4()
				if !ok || lo < 0xdc00 || lo > 0xdfff {
					return "", p.errorf("lone high surrogate")
				}
				r = 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00)
			}
			buf = utf8.AppendRune(buf, r)
			continue // hex4 advanced past the digits
		default:
			return "", p.errorf("invalid escape")
		}
		p.i++
	}
	return "", p.errorf("unterminated string")
}

// hex4 reads four hex digits and advances past them.
func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}

// quoteShort quotes untrusted text for an error message, cut to a few dozen
// bytes so a hostile export cannot flood an auditor's terminal or log.
func quoteShort(s string) string {
	const max = 32
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}
