package area

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/censusvault/censusvault/broker/internal/strictjson"
)

// Revisions of the area tree (issue 14).
//
// The tree imported at init is revision 0. A revision is a JSON document
// the statistics office writes — areas added, renamed, re-planned, EAs
// split or merged — and applying revisions 1…n in order to revision 0
// gives the tree in force (Geography). Nothing stored is rewritten: a
// submission keeps the EA it was deposited in, and the Geography says
// which EA of the tree in force its household belongs to now. A split
// says so by household number (each new EA takes a range of the old
// EA's numbers); a merge sends every household of the merged EAs to the
// new one. Household numbers are never renumbered, so the mapping
// composes across revisions.
//
// Invariants:
//   - An EA never changes commune: a split or merge stays under one
//     parent and nothing moves an area (data keys are per commune, and
//     storage narrows reads by the commune a submission was sealed for).
//   - Codes are never reused: a code in use, or retired by a split or a
//     merge, cannot be given to a new area.
//   - The root never changes; the tree keeps its exact levels.
//   - A Geography, like a Tree, is immutable and safe for concurrent use.
//
// A revision document is untrusted in the sense an areas CSV is: every
// problem is a *RevisionError naming the change (changes[i], counted
// from 0 as in the JSON) and what to fix, and every size is bounded.

// Limits of a revision document.
const (
	// MaxRevisionBytes bounds a revision document.
	MaxRevisionBytes = 4 << 20
	// MaxChanges is the most changes one revision makes.
	MaxChanges = 10_000
	// MaxParts is the most EAs one split makes, or one merge joins.
	MaxParts = 100
	// MaxNoteLen bounds a revision's note, in bytes of UTF-8.
	MaxNoteLen = 1000
	// MaxHouseholdNo is the largest household number a submission may
	// carry (broker/form refuses larger ones): a split's open-ended
	// range ("151-") runs to it.
	MaxHouseholdNo = 1_000_000_000
)

// Op is the kind of one change of a revision.
type Op string

// The changes a revision can make.
const (
	OpAdd    Op = "add"    // a new area under a current one
	OpRename Op = "rename" // a current area's name
	OpPlan   Op = "plan"   // a current EA's planned households
	OpSplit  Op = "split"  // one EA into several, by household number
	OpMerge  Op = "merge"  // several EAs of one parent into one
)

// Revision is a parsed revision document.
type Revision struct {
	Note    string
	Changes []Change
}

// Change is one change of a revision; which members it uses depends on
// Op (ParseRevision refuses the others).
type Change struct {
	Op      Op
	Code    Code   // add, rename, plan, split: the area changed or made
	Parent  Code   // add
	Level   Level  // add
	Name    string // add, rename
	Planned int64  // add (an EA), plan
	Codes   []Code // merge: the EAs merged
	// Parts are the new EAs: several for a split (each with the range of
	// the old EA's household numbers it takes), one for a merge.
	Parts []Part
}

// Part is a new EA made by a split or a merge.
type Part struct {
	Code       Code
	Name       string
	Planned    int64
	Households Range // split only
}

// Range is a range of household numbers, both ends included.
type Range struct{ From, To int64 }

// String writes r as in a revision document: "1-150", or "151-" when it
// runs to MaxHouseholdNo.
func (r Range) String() string {
	if r.To == MaxHouseholdNo {
		return strconv.FormatInt(r.From, 10) + "-"
	}
	return strconv.FormatInt(r.From, 10) + "-" + strconv.FormatInt(r.To, 10)
}

func (r Range) overlaps(s Range) bool { return r.From <= s.To && s.From <= r.To }

// HouseholdRange is the households stored under Code (an EA's code as
// deposited) with numbers From…To.
type HouseholdRange struct {
	Code     Code
	From, To int64
}

// RevisionError is a problem with a revision document, or with applying
// it to the tree in force.
type RevisionError struct {
	Change int // index in changes, from 0; -1 for the document as a whole
	Op     Op  // the change's op, when known
	Msg    string
}

func (e *RevisionError) Error() string {
	if e.Change < 0 {
		return "area revision: " + e.Msg
	}
	where := "changes[" + strconv.Itoa(e.Change) + "]"
	if e.Op != "" {
		where += " (" + string(e.Op) + ")"
	}
	return "area revision: " + where + ": " + e.Msg
}

func docErr(format string, args ...any) *RevisionError {
	return &RevisionError{Change: -1, Msg: fmt.Sprintf(format, args...)}
}

// The document's JSON; pointers tell an absent member from a zero one.
type (
	revisionJSON struct {
		Note    *string           `json:"note"`
		Changes []json.RawMessage `json:"changes"`
	}
	changeJSON struct {
		Op      *string         `json:"op"`
		Code    *string         `json:"code"`
		Parent  *string         `json:"parent"`
		Level   *string         `json:"level"`
		Name    *string         `json:"name"`
		Planned *int64          `json:"planned"`
		Codes   []string        `json:"codes"`
		Into    json.RawMessage `json:"into"`
	}
	partJSON struct {
		Code       *string `json:"code"`
		Name       *string `json:"name"`
		Planned    *int64  `json:"planned"`
		Households *string `json:"households"`
	}
)

// members each op takes (all of them required, except planned on an add
// of an area above the EA level, where it must be absent).
var opMembers = map[Op][]string{
	OpAdd:    {"code", "parent", "level", "name", "planned"},
	OpRename: {"code", "name"},
	OpPlan:   {"code", "planned"},
	OpSplit:  {"code", "into"},
	OpMerge:  {"codes", "into"},
}

// ParseRevision reads a revision document:
//
//	{"note": "why", "changes": [
//	  {"op": "add", "code", "parent", "level", "name", "planned" (EAs only)},
//	  {"op": "rename", "code", "name"},
//	  {"op": "plan", "code", "planned"},
//	  {"op": "split", "code", "into": [{"code", "name", "planned", "households": "1-150"}, … "151-"]},
//	  {"op": "merge", "codes": [A, B, …], "into": {"code", "name", "planned"}}]}
//
// strictly (broker/internal/strictjson: no unknown or repeated member),
// and checks what the document alone can say: the op's members and only
// those, codes, names, levels, planned counts, ranges (from 1 to
// MaxHouseholdNo, disjoint within a split), at least two and at most
// MaxParts parts. What needs the tree — does the area exist, is the code
// new — is Apply's. Every problem is a *RevisionError.
func ParseRevision(b []byte) (*Revision, error) {
	if len(b) > MaxRevisionBytes {
		return nil, docErr("the document is over %d bytes", MaxRevisionBytes)
	}
	var doc revisionJSON
	if err := strictjson.Decode(b, &doc); err != nil {
		return nil, docErr("%s", jsonProblem(err, `{"note": "…", "changes": [{"op": …}, …]}`))
	}
	if doc.Note == nil || *doc.Note == "" {
		return nil, docErr(`"note" is required: say why the geography changes (it is kept with the revision)`)
	}
	if len(*doc.Note) > MaxNoteLen {
		return nil, docErr("the note is over %d bytes", MaxNoteLen)
	}
	if len(doc.Changes) == 0 {
		return nil, docErr(`"changes" is required: a list of at least one change`)
	}
	if len(doc.Changes) > MaxChanges {
		return nil, docErr("more than %d changes: split the revision into several", MaxChanges)
	}
	r := &Revision{Note: *doc.Note, Changes: make([]Change, len(doc.Changes))}
	for i, raw := range doc.Changes {
		c, err := parseChange(raw)
		if err != nil {
			err.Change = i
			return nil, err
		}
		r.Changes[i] = c
	}
	return r, nil
}

// jsonProblem is a decoding error in words, without Go's type names.
func jsonProblem(err error, shape string) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		what := "a member"
		if te.Field != "" {
			what = strconv.Quote(te.Field)
		}
		return what + " has the wrong type (codes, names, levels and household ranges are strings, planned a whole number, codes a list of strings); want " + shape
	case errors.As(err, &se):
		return fmt.Sprintf("not valid JSON at byte %d: %v", se.Offset, err)
	}
	return err.Error() + "; want " + shape
}

func parseChange(raw json.RawMessage) (Change, *RevisionError) {
	var cj changeJSON
	if err := strictjson.Decode(raw, &cj); err != nil {
		return Change{}, &RevisionError{Msg: jsonProblem(err, `{"op": "add"|"rename"|"plan"|"split"|"merge", …}`)}
	}
	if cj.Op == nil {
		return Change{}, &RevisionError{Msg: `"op" is required: add, rename, plan, split or merge`}
	}
	op := Op(*cj.Op)
	want, ok := opMembers[op]
	if !ok {
		return Change{}, &RevisionError{Msg: fmt.Sprintf("unknown op %q: want add, rename, plan, split or merge", clip(*cj.Op))}
	}
	fail := func(format string, args ...any) (Change, *RevisionError) {
		return Change{}, &RevisionError{Op: op, Msg: fmt.Sprintf(format, args...)}
	}
	present := map[string]bool{
		"code": cj.Code != nil, "parent": cj.Parent != nil, "level": cj.Level != nil, "name": cj.Name != nil,
		"planned": cj.Planned != nil, "codes": cj.Codes != nil, "into": len(cj.Into) > 0 && string(cj.Into) != "null",
	}
	for _, m := range []string{"code", "parent", "level", "name", "planned", "codes", "into"} {
		if present[m] && !slices.Contains(want, m) {
			return fail("%s does not take %q (a %s takes %s): remove it", op, m, op, strings.Join(want, ", "))
		}
	}
	for _, m := range want {
		if !present[m] && !(op == OpAdd && m == "planned") {
			return fail("%q is required (a %s takes %s)", m, op, strings.Join(want, ", "))
		}
	}
	c := Change{Op: op}
	if cj.Code != nil {
		c.Code = Code(*cj.Code)
		if !validCode(*cj.Code) {
			return fail("code %q: want 1 to %d of A-Z a-z 0-9 . _ -", clip(*cj.Code), MaxCodeLen)
		}
	}
	if cj.Name != nil {
		if msg := checkName(*cj.Name); msg != "" {
			return fail("%s for area %s", msg, c.Code)
		}
		c.Name = *cj.Name
	}
	if cj.Planned != nil {
		if msg := checkPlanned(*cj.Planned); msg != "" {
			return fail("%s for area %s", msg, c.Code)
		}
		c.Planned = *cj.Planned
	}
	switch op {
	case OpAdd:
		if !validCode(*cj.Parent) {
			return fail("parent %q: want 1 to %d of A-Z a-z 0-9 . _ -", clip(*cj.Parent), MaxCodeLen)
		}
		c.Parent = Code(*cj.Parent)
		lv, err := ParseLevel(*cj.Level)
		if err != nil {
			return fail("%v", err)
		}
		if lv == Nation {
			return fail("a nation cannot be added: the tree has exactly one root")
		}
		c.Level = lv
		if lv == EA && cj.Planned == nil {
			return fail(`an EA needs "planned": its planned households`)
		}
		if lv != EA && cj.Planned != nil {
			return fail(`only an EA has "planned"; remove it from the %s %s`, lv, c.Code)
		}
	case OpSplit:
		var parts []partJSON
		if err := strictjson.Decode(cj.Into, &parts); err != nil {
			return fail("into: %s", jsonProblem(err, `a list of new EAs: [{"code", "name", "planned", "households": "1-150"}, …]`))
		}
		if len(parts) < 2 || len(parts) > MaxParts {
			return fail("into: a split makes 2 to %d EAs, not %d", MaxParts, len(parts))
		}
		for k, pj := range parts {
			p, msg := parsePart(pj, true)
			if msg != "" {
				return fail("into[%d]: %s", k, msg)
			}
			for _, q := range c.Parts {
				switch {
				case q.Code == p.Code:
					return fail("into[%d]: code %s is given twice", k, p.Code)
				case q.Households.overlaps(p.Households):
					return fail("into[%d]: households %s overlap those of %s (%s): a household goes to one EA", k, p.Households, q.Code, q.Households)
				}
			}
			if p.Code == c.Code {
				return fail("into[%d]: a new EA needs a new code, not %s's own", k, c.Code)
			}
			c.Parts = append(c.Parts, p)
		}
	case OpMerge:
		if len(cj.Codes) < 2 || len(cj.Codes) > MaxParts {
			return fail("codes: a merge joins 2 to %d EAs, not %d", MaxParts, len(cj.Codes))
		}
		for k, s := range cj.Codes {
			if !validCode(s) {
				return fail("codes[%d]: %q is not a code", k, clip(s))
			}
			if slices.Contains(c.Codes, Code(s)) {
				return fail("codes[%d]: %s is given twice", k, s)
			}
			c.Codes = append(c.Codes, Code(s))
		}
		var pj partJSON
		if err := strictjson.Decode(cj.Into, &pj); err != nil {
			return fail("into: %s", jsonProblem(err, `the new EA: {"code", "name", "planned"}`))
		}
		p, msg := parsePart(pj, false)
		if msg != "" {
			return fail("into: %s", msg)
		}
		if slices.Contains(c.Codes, p.Code) {
			return fail("into: the merged EA needs a new code, not %s, one of those merged", p.Code)
		}
		c.Parts = []Part{p}
	}
	return c, nil
}

func parsePart(pj partJSON, split bool) (Part, string) {
	switch {
	case pj.Code == nil:
		return Part{}, `"code" is required`
	case !validCode(*pj.Code):
		return Part{}, fmt.Sprintf("code %q: want 1 to %d of A-Z a-z 0-9 . _ -", clip(*pj.Code), MaxCodeLen)
	case pj.Name == nil:
		return Part{}, fmt.Sprintf(`"name" of %s is required`, *pj.Code)
	case pj.Planned == nil:
		return Part{}, fmt.Sprintf(`"planned" of %s is required: its planned households`, *pj.Code)
	case split && pj.Households == nil:
		return Part{}, fmt.Sprintf(`"households" of %s is required: the old EA's household numbers it takes, "1-150" or, for the last, "151-"`, *pj.Code)
	case !split && pj.Households != nil:
		return Part{}, `a merge takes every household of the merged EAs: remove "households"`
	}
	p := Part{Code: Code(*pj.Code), Name: *pj.Name, Planned: *pj.Planned}
	if msg := checkName(p.Name); msg != "" {
		return Part{}, fmt.Sprintf("%s for area %s", msg, p.Code)
	}
	if msg := checkPlanned(p.Planned); msg != "" {
		return Part{}, fmt.Sprintf("%s for area %s", msg, p.Code)
	}
	if split {
		r, msg := parseRange(*pj.Households)
		if msg != "" {
			return Part{}, fmt.Sprintf("households of %s: %s", p.Code, msg)
		}
		p.Households = r
	}
	return p, ""
}

func checkPlanned(n int64) string {
	switch {
	case n < 0:
		return "planned must not be negative"
	case n > MaxPlanned:
		return fmt.Sprintf("planned larger than %d", MaxPlanned)
	}
	return ""
}

// parseRange reads "FROM-TO" or "FROM-" (to MaxHouseholdNo): decimal
// numbers without sign or leading zero, 1 <= FROM <= TO <= MaxHouseholdNo.
func parseRange(s string) (Range, string) {
	bad := fmt.Sprintf("%q: want FROM-TO or, for the last range, FROM- (whole numbers from 1 to %d)", clip(s), MaxHouseholdNo)
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return Range{}, bad
	}
	num := func(t string) (int64, bool) {
		if t == "" || len(t) > 10 || t[0] == '0' {
			return 0, false
		}
		for i := 0; i < len(t); i++ {
			if t[i] < '0' || t[i] > '9' {
				return 0, false
			}
		}
		n, err := strconv.ParseInt(t, 10, 64)
		return n, err == nil && n >= 1 && n <= MaxHouseholdNo
	}
	from, ok := num(a)
	if !ok {
		return Range{}, bad
	}
	to := int64(MaxHouseholdNo)
	if b != "" {
		if to, ok = num(b); !ok {
			return Range{}, bad
		}
	}
	if to < from {
		return Range{}, fmt.Sprintf("%q runs backwards", clip(s))
	}
	return Range{From: from, To: to}, ""
}

// Geography is the area tree after some revisions: the tree in force,
// every area there ever was, and where the households of retired EAs
// belong now. It is immutable and safe for concurrent use.
type Geography struct {
	rev  int64
	tree *Tree // the areas in force
	// all holds every area there ever was: the retired EAs stay under
	// their commune with no planned households, so that whatever is
	// stored under a retired code still has a place (a path, a commune).
	all *Tree
	// retired says where each retired EA's households went, by number.
	retired map[Code][]segment
	// origin is, for an EA made by a split, the EA and range it took.
	origin map[Code]segment
	// sources are, for an EA in force, the households stored under
	// retired codes that belong to it now (precomputed: progress asks).
	sources map[Code][]HouseholdRange
}

// segment: the households From…To go to EA To (or, in origin, came
// from it).
type segment struct {
	Range
	ea Code
}

// Start is revision 0: the tree imported at init.
func Start(t *Tree) *Geography {
	return &Geography{tree: t, all: t, retired: map[Code][]segment{}, origin: map[Code]segment{}, sources: map[Code][]HouseholdRange{}}
}

// Revision is the number of revisions applied (0: the tree of init).
func (g *Geography) Revision() int64 { return g.rev }

// Tree is the tree in force.
func (g *Geography) Tree() *Tree { return g.tree }

// All is every area there ever was: the tree in force plus the retired
// EAs, each under its commune with no planned households. A path in it
// is the same as in Tree for every area in force.
func (g *Geography) All() *Tree { return g.all }

// Retired reports whether c is the code of a retired EA.
func (g *Geography) Retired(c Code) bool {
	_, ok := g.retired[c]
	return ok
}

// EA is the EA in force that household householdNo deposited under code
// belongs to: code itself when it is in force, else where the revisions
// sent it. It reports false for a code that never was an area, and for a
// household number no revision gave a place (a split's ranges left it
// out; no household was stored there).
func (g *Geography) EA(code Code, householdNo int64) (Code, bool) {
	for range len(g.retired) + 1 {
		segs, ok := g.retired[code]
		if !ok {
			_, known := g.tree.Get(code)
			return code, known
		}
		next, found := Code(""), false
		for _, s := range segs {
			if householdNo >= s.From && householdNo <= s.To {
				next, found = s.ea, true
				break
			}
		}
		if !found {
			return "", false
		}
		code = next
	}
	return "", false // unreachable: every hop goes to a newer code
}

// Aliases are the codes household householdNo of EA code may be stored
// under: code, the EAs it was split from while their ranges held the
// number, and the EAs split from those that took it, up to a merge (the
// households of merged EAs keep their numbers, which may then repeat:
// after a merge a number names a new household). A deposit of one of
// them is the same household as a deposit of any other. The oldest
// comes first.
func (g *Geography) Aliases(code Code, householdNo int64) []Code {
	top := code
	for range len(g.origin) + 1 {
		o, ok := g.origin[top]
		if !ok || householdNo < o.From || householdNo > o.To {
			break
		}
		top = o.ea
	}
	out := []Code{top}
	for c := top; len(out) <= len(g.retired); {
		segs, ok := g.retired[c]
		if !ok || len(segs) == 0 {
			break
		}
		if _, split := g.origin[segs[0].ea]; !split {
			break // a merge: the number names another household there
		}
		next := Code("")
		for _, s := range segs {
			if householdNo >= s.From && householdNo <= s.To {
				next = s.ea
			}
		}
		if next == "" {
			break
		}
		out = append(out, next)
		c = next
	}
	return out
}

// Sources are the households stored under retired codes that belong to
// EA ea now (nil for an EA none were sent to), ordered by code and range.
func (g *Geography) Sources(ea Code) []HouseholdRange { return g.sources[ea] }

// RetiredCodes lists the retired EAs, in byte order.
func (g *Geography) RetiredCodes() []Code {
	return slices.Sorted(maps.Keys(g.retired))
}

// Outcome is what Apply did.
type Outcome struct {
	Revision                                 int64
	Added, Renamed, Replanned, Split, Merged int
	// Retired are the EAs the revision retired, in document order.
	Retired []Retirement
	// Orphans are the households that had an EA before the revision and
	// have none after it (a split's ranges leave their numbers out). The
	// revision may be committed only if nothing is stored there.
	Orphans []Orphan
}

// Orphan is a range of households a split leaves without an EA.
type Orphan struct {
	HouseholdRange
	EA     Code // the EA split
	Change int  // the split's index in changes
}

// Retirement is one EA retired by a split or a merge.
type Retirement struct {
	Code   Code
	Change int    // index in changes
	Op     Op     // OpSplit or OpMerge
	Into   []Code // the new EAs (one for a merge)
	// With are all the EAs of the merge, Code among them (merge only).
	With []Code
}

// wrow is a row of the work list Apply edits.
type wrow struct {
	Row
	retired bool
	after   []int // rows placed right after this one (parts of a split, a merge's EA)
}

// Apply applies r to g and returns the geography after it, with what
// changed. Changes apply in order; a later change may use an area an
// earlier one added, never one it retired. Problems are *RevisionError
// naming the change:
//
//   - add: the code is new (never used, not retired), the parent is in
//     force and exactly one level above;
//   - rename, plan: the area is in force (plan: an EA);
//   - split: the EA is in force; its new EAs get new codes and go under
//     its parent;
//   - merge: the EAs are in force, under one parent; the new code is new.
//
// Whether the stored submissions and grants allow the revision (no
// orphans, no grant widened) is the caller's to check with the Outcome.
func (g *Geography) Apply(r *Revision) (*Geography, *Outcome, error) {
	base := g.all.Rows()
	work := make([]wrow, len(base), len(base)+len(r.Changes))
	idx := make(map[Code]int, len(base)+len(r.Changes))
	for i, row := range base {
		work[i] = wrow{Row: row, retired: g.Retired(row.Code)}
		idx[row.Code] = i
	}
	var tail []int            // added areas, after everything else
	splitBy := map[Code]int{} // EA → the change that split it
	next := &Geography{rev: g.rev + 1, retired: maps.Clone(g.retired), origin: maps.Clone(g.origin)}
	out := &Outcome{Revision: next.rev}

	fresh := func(c Code) string {
		i, ok := idx[c]
		switch {
		case !ok:
			return ""
		case work[i].retired:
			return fmt.Sprintf("code %s belonged to an EA retired by a split or merge; codes are never reused: choose a new one", c)
		default:
			return fmt.Sprintf("area %s exists already; choose a new code", c)
		}
	}
	current := func(c Code, what string) (int, string) {
		i, ok := idx[c]
		switch {
		case !ok:
			return -1, fmt.Sprintf("no area %s%s", c, what)
		case work[i].retired:
			return -1, fmt.Sprintf("EA %s was retired by a split or merge%s", c, what)
		}
		return i, ""
	}
	place := func(row Row, after int) int {
		work = append(work, wrow{Row: row})
		j := len(work) - 1
		idx[row.Code] = j
		if after < 0 {
			tail = append(tail, j)
		} else {
			work[after].after = append(work[after].after, j)
		}
		return j
	}
	for ci, c := range r.Changes {
		fail := func(format string, args ...any) (*Geography, *Outcome, error) {
			return nil, nil, &RevisionError{Change: ci, Op: c.Op, Msg: fmt.Sprintf(format, args...)}
		}
		switch c.Op {
		case OpAdd:
			if msg := fresh(c.Code); msg != "" {
				return fail("%s", msg)
			}
			p, msg := current(c.Parent, " to add "+string(c.Code)+" under")
			if msg != "" {
				return fail("%s", msg)
			}
			if pl := work[p].Level; pl+1 != c.Level {
				return fail("parent %s is a %s: the parent of a %s must be a %s", c.Parent, pl, c.Level, c.Level-1)
			}
			place(Row{Code: c.Code, Parent: c.Parent, Level: c.Level, Name: c.Name, Planned: c.Planned}, -1)
			out.Added++
		case OpRename:
			i, msg := current(c.Code, "")
			if msg != "" {
				return fail("%s", msg)
			}
			work[i].Name = c.Name
			out.Renamed++
		case OpPlan:
			i, msg := current(c.Code, "")
			if msg != "" {
				return fail("%s", msg)
			}
			if work[i].Level != EA {
				return fail("%s is a %s: only an EA has planned households (a %s's plan is the sum of its EAs')", c.Code, work[i].Level, work[i].Level)
			}
			work[i].Planned = c.Planned
			out.Replanned++
		case OpSplit:
			i, msg := current(c.Code, "")
			if msg != "" {
				return fail("%s", msg)
			}
			if work[i].Level != EA {
				return fail("%s is a %s: only an EA can be split", c.Code, work[i].Level)
			}
			for k, p := range c.Parts {
				if msg := fresh(p.Code); msg != "" {
					return fail("into[%d]: %s", k, msg)
				}
			}
			old := work[i].Row
			work[i].retired, work[i].Planned = true, 0
			ret := Retirement{Code: c.Code, Change: ci, Op: OpSplit}
			splitBy[c.Code] = ci
			segs := make([]segment, 0, len(c.Parts))
			for _, p := range c.Parts {
				place(Row{Code: p.Code, Parent: old.Parent, Level: EA, Name: p.Name, Planned: p.Planned}, i)
				segs = append(segs, segment{Range: p.Households, ea: p.Code})
				next.origin[p.Code] = segment{Range: p.Households, ea: c.Code}
				ret.Into = append(ret.Into, p.Code)
			}
			slices.SortFunc(segs, func(a, b segment) int { return cmpInt(a.From, b.From) })
			next.retired[c.Code] = segs
			out.Retired = append(out.Retired, ret)
			out.Split++
		case OpMerge:
			p := c.Parts[0]
			var parent Code
			first := -1
			for k, code := range c.Codes {
				i, msg := current(code, "")
				if msg != "" {
					return fail("codes[%d]: %s", k, msg)
				}
				if work[i].Level != EA {
					return fail("codes[%d]: %s is a %s: only EAs can be merged", k, code, work[i].Level)
				}
				if k == 0 {
					parent, first = work[i].Parent, i
				} else if work[i].Parent != parent {
					return fail("codes[%d]: %s is under %s, %s under %s: only EAs of one commune can be merged (an EA never changes commune)",
						k, code, work[i].Parent, c.Codes[0], parent)
				}
			}
			if msg := fresh(p.Code); msg != "" {
				return fail("into: %s", msg)
			}
			place(Row{Code: p.Code, Parent: parent, Level: EA, Name: p.Name, Planned: p.Planned}, first)
			for _, code := range c.Codes {
				i := idx[code]
				work[i].retired, work[i].Planned = true, 0
				next.retired[code] = []segment{{Range: Range{From: 1, To: MaxHouseholdNo}, ea: p.Code}}
				out.Retired = append(out.Retired, Retirement{Code: code, Change: ci, Op: OpMerge, Into: []Code{p.Code}, With: slices.Clone(c.Codes)})
			}
			out.Merged++
		default:
			return fail("unknown op %q", clip(string(c.Op)))
		}
	}

	// The trees, in the order of the one before, each new area right
	// after what it came from, added ones last.
	var cur, all []Row
	var emit func(int)
	emit = func(i int) {
		w := &work[i]
		w.Line = len(all) + 2
		all = append(all, w.Row)
		if !w.retired {
			r := w.Row
			r.Line = len(cur) + 2
			cur = append(cur, r)
		}
		for _, j := range w.after {
			emit(j)
		}
	}
	for i := range base {
		emit(i)
	}
	for _, j := range tail {
		emit(j)
	}
	var err error
	if next.tree, err = NewTree(cur); err != nil {
		return nil, nil, docErr("the revised tree does not hold together: %v", err)
	}
	if next.all, err = NewTree(all); err != nil {
		return nil, nil, docErr("the revised tree does not hold together: %v", err)
	}
	next.sources = next.computeSources()
	for _, code := range next.RetiredCodes() {
		if _, ok := g.all.Get(code); !ok {
			continue // made and retired by this revision: nothing stored
		}
		for _, o := range subtract(next.gaps(code), g.gaps(code), code) {
			// The split that leaves them out is the last hop their
			// number makes.
			at := code
			for range len(next.retired) + 1 {
				n, ok := next.hop(at, o.From)
				if !ok {
					break
				}
				at = n
			}
			out.Orphans = append(out.Orphans, Orphan{HouseholdRange: o, EA: at, Change: splitBy[at]})
		}
	}
	return next, out, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// hop is where household hh of retired EA code went, one revision on;
// false if code is in force or the household was left out.
func (g *Geography) hop(code Code, hh int64) (Code, bool) {
	for _, s := range g.retired[code] {
		if hh >= s.From && hh <= s.To {
			return s.ea, true
		}
	}
	return "", false
}

// flat is where the households of code go, as ranges of its numbers
// each with the EA in force they belong to, in order of numbers.
func (g *Geography) flat(code Code, within Range) []segment {
	segs, ok := g.retired[code]
	if !ok {
		return []segment{{Range: within, ea: code}}
	}
	var out []segment
	for _, s := range segs {
		r := Range{From: max(s.From, within.From), To: min(s.To, within.To)}
		if r.From > r.To {
			continue
		}
		out = append(out, g.flat(s.ea, r)...)
	}
	return out
}

var everyHousehold = Range{From: 1, To: MaxHouseholdNo}

func (g *Geography) computeSources() map[Code][]HouseholdRange {
	src := map[Code][]HouseholdRange{}
	for _, code := range g.RetiredCodes() {
		for _, s := range g.flat(code, everyHousehold) {
			src[s.ea] = append(src[s.ea], HouseholdRange{Code: code, From: s.From, To: s.To})
		}
	}
	return src
}

// gaps are the household numbers of code that belong to no EA in force.
func (g *Geography) gaps(code Code) []Range {
	if !g.Retired(code) {
		return nil
	}
	var out []Range
	at := int64(1)
	for _, s := range g.flat(code, everyHousehold) {
		if s.From > at {
			out = append(out, Range{From: at, To: s.From - 1})
		}
		at = s.To + 1
	}
	if at <= MaxHouseholdNo {
		out = append(out, Range{From: at, To: MaxHouseholdNo})
	}
	return out
}

// subtract is the numbers in now but not in before (both sorted and
// disjoint), as ranges of code.
func subtract(now, before []Range, code Code) []HouseholdRange {
	var out []HouseholdRange
	for _, r := range now {
		from := r.From
		for _, b := range before {
			if b.To < from || b.From > r.To {
				continue
			}
			if b.From > from {
				out = append(out, HouseholdRange{Code: code, From: from, To: b.From - 1})
			}
			from = b.To + 1
		}
		if from <= r.To {
			out = append(out, HouseholdRange{Code: code, From: from, To: r.To})
		}
	}
	return out
}
