// Package strictjson is the project's one strict JSON reader, for the
// JSON documents people write and the vault must not misread: research
// table requests and form definitions. (Submissions from field devices
// have their own, faster, equally strict scanner in broker/form.)
//
// encoding/json lets much pass silently: it matches keys to fields
// case-insensitively ("PROJECT" fills project), keeps the last of two
// equal keys, replaces invalid UTF-8 and unpaired surrogate escapes with
// U+FFFD, and accepts escaped control characters (NUL, ESC of ANSI
// terminal sequences) that then reach logs and terminals. Decode refuses
// all of them, and unknown keys and trailing data, before decoding with
// encoding/json.
//
// Errors name the key path and the rule broken, never a string value; an
// unknown key is quoted, clipped, with the keys that are known.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/censusvault/censusvault/broker/untrusted"
)

// Decode reads b, exactly one JSON value, into v (a non-nil pointer).
// Keys must equal a struct field's JSON name exactly and appear once per
// object; strings and keys must be valid UTF-8 without control
// characters (U+0000–U+001F, U+007F–U+009F, escaped or not); nothing may
// follow the value. Syntax and type errors are encoding/json's
// (*json.SyntaxError, *json.UnmarshalTypeError), so callers can tell them
// apart.
func Decode(b []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.New("strictjson: Decode needs a non-nil pointer")
	}
	if !utf8.Valid(b) {
		return errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := walk(dec, rv.Type().Elem(), ""); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON value")
	}
	if err := checkSurrogates(b); err != nil {
		return err
	}
	// The shape is proven strict: encoding/json now only fills v (and
	// reports type errors).
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

var unmarshaler = reflect.TypeFor[json.Unmarshaler]()

// walk reads one value from dec. t is the Go type it will decode into, or
// nil when unknown (an interface, a json.Unmarshaler, a mismatch that
// encoding/json will report): then only duplicates and strings are
// checked.
func walk(dec *json.Decoder, t reflect.Type, path string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && (t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(unmarshaler)) {
		t = nil
	}
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	switch tok := tok.(type) {
	case string:
		return checkString(path, tok)
	case json.Delim:
		switch tok {
		case '{':
			return walkObject(dec, t, path)
		case '[':
			var elem reflect.Type
			if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
				elem = t.Elem()
			}
			for i := 0; dec.More(); i++ {
				if err := walk(dec, elem, path+"["+strconv.Itoa(i)+"]"); err != nil {
					return err
				}
			}
			_, err := dec.Token() // ']'
			return err
		}
	}
	return nil
}

func walkObject(dec *json.Decoder, t reflect.Type, path string) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	switch {
	case t == nil:
	case t.Kind() == reflect.Struct:
		fields = map[string]reflect.Type{}
		jsonFields(t, fields)
	case t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string) // the decoder returns object keys as strings
		at := key
		if path != "" {
			at = path + "." + key
		}
		if r, bad := controlChar(key); bad {
			where := "the document"
			if path != "" {
				where = clip(path)
			}
			return fmt.Errorf("%s: control character U+%04X in a key", where, r)
		}
		if seen[key] {
			return fmt.Errorf("%s: key given twice", clip(at))
		}
		seen[key] = true
		next := elem
		if fields != nil {
			ft, ok := fields[key]
			if !ok {
				return unknownKey(path, key, fields)
			}
			next = ft
		}
		if err := walk(dec, next, at); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return err
}

// jsonFields collects the JSON names of t's fields as encoding/json sees
// them (embedded structs flattened).
func jsonFields(t reflect.Type, into map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				jsonFields(ft, into)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		into[name] = f.Type
	}
}

func unknownKey(path, key string, fields map[string]reflect.Type) error {
	known := make([]string, 0, len(fields))
	for k := range fields {
		known = append(known, k)
	}
	slices.Sort(known)
	where := ""
	if path != "" {
		where = " in " + clip(path)
	}
	for _, k := range known {
		if strings.EqualFold(k, key) {
			return fmt.Errorf("unknown key %q%s: keys are case-sensitive, write %q", clip(key), where, k)
		}
	}
	return fmt.Errorf("unknown key %q%s (known: %s)", clip(key), where, strings.Join(known, ", "))
}

// checkString refuses control characters, which encoding/json accepts
// when escaped (\u0000, \u001b).
func checkString(path, s string) error {
	if r, bad := controlChar(s); bad {
		if path == "" {
			path = "the document"
		}
		return fmt.Errorf("%s: control character U+%04X in a string (tabs, newlines and terminal escapes are not allowed)", clip(path), r)
	}
	return nil
}

func controlChar(s string) (rune, bool) {
	for _, r := range s {
		if unicode.IsControl(r) {
			return r, true
		}
	}
	return 0, false
}

// checkSurrogates refuses \uD800–\uDFFF escapes that do not form a pair:
// encoding/json would replace them with U+FFFD. b is known to be valid
// JSON.
func checkSurrogates(b []byte) error {
	inString := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c == '\\':
			if b[i+1] != 'u' {
				i++
				continue
			}
			r := hex4(b[i+2 : i+6])
			i += 5
			switch {
			case r >= 0xDC00 && r <= 0xDFFF:
				return errors.New(`not valid UTF-8: an unpaired \u surrogate escape`)
			case r >= 0xD800 && r <= 0xDBFF:
				if i+6 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' {
					return errors.New(`not valid UTF-8: an unpaired \u surrogate escape`)
				}
				if lo := hex4(b[i+3 : i+7]); lo < 0xDC00 || lo > 0xDFFF {
					return errors.New(`not valid UTF-8: an unpaired \u surrogate escape`)
				}
				i += 6
			}
		}
	}
	return nil
}

func hex4(h []byte) rune {
	n, _ := strconv.ParseUint(string(h), 16, 32)
	return rune(n)
}

// clip bounds caller-chosen text quoted back in an error, at a rune
// boundary.
func clip(s string) string { return untrusted.Clip(s, 64) }
