package form

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Value is one answer: a JSON string, a JSON number or a JSON array of
// numbers (the codes of a code_set field), kept as the text the device sent
// (normalized only by Split, which knows the field's type). The zero Value
// is absent.
//
// A Value is personal data: it prints as "form.Value(redacted)" with every
// fmt verb, so a stray log line cannot leak it. Read it with Text, Int,
// Float, Codes or Raw.
type Value struct {
	text string // a string's content, or a number's literal
	kind valueKind
}

type valueKind uint8

const (
	vAbsent valueKind = iota
	vString
	vNumber
	vCodes // a JSON array of numbers, as Decode checked it
)

// maxNumber bounds a number literal; no sane answer needs more digits.
const maxNumber = 40

// StringValue returns a string Value.
func StringValue(s string) Value { return Value{text: s, kind: vString} }

// IntValue returns a number Value holding n.
func IntValue(n int64) Value { return Value{text: strconv.FormatInt(n, 10), kind: vNumber} }

// NumberValue returns a number Value for a JSON number literal such as
// "42" or "35.5".
func NumberValue(literal string) (Value, error) {
	if len(literal) > maxNumber || scanNumber(literal, 0) != len(literal) {
		return Value{}, errors.New("not a JSON number")
	}
	return Value{text: literal, kind: vNumber}, nil
}

// CodeSetValue returns a code-set Value holding the codes in this order
// (Split sorts them).
func CodeSetValue(codes ...int) Value {
	b := []byte{'['}
	for i, c := range codes {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(c), 10)
	}
	return Value{text: string(append(b, ']')), kind: vCodes}
}

// Codes returns the codes of a code-set Value in the order written; false
// for other Values and for a set with an item that is not a whole number
// within 0…MaxCodeValue (Validate refuses those).
func (v Value) Codes() ([]int, bool) {
	if v.kind != vCodes {
		return nil, false
	}
	var out []int
	for it := (items{s: v.text}); it.next(); {
		c, err := strconv.ParseInt(it.cur, 10, 64)
		if err != nil || c < 0 || c > MaxCodeValue {
			return nil, false
		}
		out = append(out, int(c))
	}
	return out, true
}

// Text returns a string Value's content; false for numbers and absent
// values.
func (v Value) Text() (string, bool) { return v.text, v.kind == vString }

// Int returns a number Value written as a whole number (no fraction, no
// exponent) that fits in an int64.
func (v Value) Int() (int64, bool) {
	if v.kind != vNumber || strings.ContainsAny(v.text, ".eE") {
		return 0, false
	}
	n, err := strconv.ParseInt(v.text, 10, 64)
	return n, err == nil
}

// Float returns a number Value as a float64.
func (v Value) Float() (float64, bool) {
	if v.kind != vNumber {
		return 0, false
	}
	f, err := strconv.ParseFloat(v.text, 64)
	return f, err == nil
}

// IsZero reports whether v is absent.
func (v Value) IsZero() bool { return v.kind == vAbsent }

// Raw returns v as JSON: a string in this package's canonical escaping, a
// number or an array of codes as written, or null if v is absent.
func (v Value) Raw() json.RawMessage {
	switch v.kind {
	case vString:
		return appendString(make([]byte, 0, len(v.text)+2), v.text)
	case vNumber, vCodes:
		return json.RawMessage(v.text)
	}
	return json.RawMessage("null")
}

// MarshalJSON encodes v as Raw does, so that views can be written with
// encoding/json.
func (v Value) MarshalJSON() ([]byte, error) { return v.Raw(), nil }

const redacted = "form.Value(redacted)"

// String does not return the content: values are personal data.
func (v Value) String() string { return redacted }

// GoString does not return the content: values are personal data.
func (v Value) GoString() string { return redacted }

// Format does not print the content, whatever the verb.
func (v Value) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// appendString appends s as a JSON string: only '"', '\\' and control
// characters are escaped, everything else is written as UTF-8 (invalid
// UTF-8, which only a hand-made Value can hold, becomes U+FFFD).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
