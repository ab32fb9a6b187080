// Package area holds the census area tree: nation › province › district ›
// commune › enumeration area (EA).
//
// The tree is imported once from a CSV made by the statistics office
// (code,parent,level,name,planned_households) and then only read: every
// authorization decision asks where an area sits (its path from the nation,
// its commune), and every progress report rolls planned household counts up
// from the EAs. A national tree has about 250,000 areas, so the Tree is
// stored in flat arrays (one string arena for codes and names, int32 links,
// an open-addressing index) instead of a map of structs: it builds in well
// under a second and costs a few dozen bytes per area.
//
// The input is untrusted in the sense that a wrong file must be refused with
// a message an operator can act on: every error names the CSV line and what
// is wrong with it, and every size is bounded (MaxRows, line length, code
// and name length, planned households).
package area

import (
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/censusvault/censusvault/broker/untrusted"
)

// Code identifies an area, e.g. "42" (Hà Tĩnh) or "42.436.18070.007".
type Code string

// Level is the depth of an area in the tree; a parent is always exactly one
// level above its children.
type Level int

// The levels, from the root down.
const (
	Nation Level = iota
	Province
	District
	Commune
	EA
)

// Limits on the input. They are far above a real census (Viet Nam has about
// 250,000 areas and a few hundred households per EA) and low enough that a
// wrong or hostile file cannot exhaust memory or overflow the roll-up.
const (
	// MaxRows is the largest number of areas a tree may have.
	MaxRows = 1_000_000
	// MaxCodeLen is the longest code, in bytes.
	MaxCodeLen = 32
	// MaxNameLen is the longest name, in bytes of UTF-8.
	MaxNameLen = 200
	// MaxPlanned is the largest planned household count of one EA.
	MaxPlanned = 1_000_000

	// maxLineBytes bounds one CSV line: a longest valid line (two codes, a
	// level, a quoted name with every byte a doubled quote, a count) is
	// about 500 bytes, so anything much longer is refused before parsing.
	maxLineBytes = 4096
)

// header is the exact first line of an areas CSV.
const header = "code,parent,level,name,planned_households"

var levelNames = [...]string{"nation", "province", "district", "commune", "ea"}

// String returns the level's name as written in the CSV.
func (l Level) String() string {
	if l >= 0 && int(l) < len(levelNames) {
		return levelNames[l]
	}
	return "level(" + strconv.Itoa(int(l)) + ")"
}

func (l Level) valid() bool { return l >= Nation && l <= EA }

// ParseLevel parses a level name as written in the CSV ("nation",
// "province", "district", "commune" or "ea"; lower case only).
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames {
		if s == n {
			return Level(i), nil
		}
	}
	return 0, fmt.Errorf("unknown level %q (want nation, province, district, commune or ea)", clip(s))
}

// Row is one line of an areas CSV.
type Row struct {
	Line    int // 1-based line in the CSV (the header is line 1); only used in errors
	Code    Code
	Parent  Code // "" for the nation
	Level   Level
	Name    string
	Planned int64 // planned households; EAs only, 0 on other levels
}

// Area is one node of a Tree.
type Area struct {
	Code   Code
	Parent Code // "" for the root
	Level  Level
	Name   string
	// Planned is the EA's own planned household count, or for any other
	// level the sum over all EAs below it.
	Planned int64
}

// Error is a problem with one line of an areas CSV (or one Row).
type Error struct {
	Line int // 0 when the problem is not on one line (e.g. no areas at all)
	Msg  string
}

func (e *Error) Error() string {
	if e.Line <= 0 {
		return "areas: " + e.Msg
	}
	return "areas line " + strconv.Itoa(e.Line) + ": " + e.Msg
}

func lineErr(line int, format string, args ...any) *Error {
	return &Error{Line: line, Msg: fmt.Sprintf(format, args...)}
}

// validCode reports whether s matches [A-Za-z0-9._-]{1,32}.
func validCode(s string) bool {
	if len(s) == 0 || len(s) > MaxCodeLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// checkName returns what is wrong with an area name, or "".
func checkName(s string) string {
	switch {
	case s == "":
		return "empty name"
	case len(s) > MaxNameLen:
		return fmt.Sprintf("name longer than %d bytes", MaxNameLen)
	case !utf8.ValidString(s):
		return "name is not valid UTF-8"
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "name contains a control character"
		}
	}
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return "name has leading or trailing white space"
	}
	return ""
}

// clip shortens a value quoted in an error message so that a garbage line
// cannot make a megabyte-long error.
func clip(s string) string { return untrusted.Clip(s, 40) }

// ValidCode reports whether c is a well-formed area code (whether or not
// such an area exists).
func ValidCode(c Code) bool { return validCode(string(c)) }
