package area

import (
	"hash/maphash"
	"io"
	"strings"
)

// Tree is an immutable area tree with exactly one root, the nation. It is
// safe for concurrent use.
type Tree struct {
	// text holds every code and name back to back; area i's code is
	// text[off[2i]:off[2i+1]] and its name text[off[2i+1]:off[2i+2]].
	// One arena instead of two strings per area saves 24 bytes an area and
	// 500,000 objects for the garbage collector to trace.
	text string
	off  []uint32

	parent  []int32 // index of the parent, -1 for the root
	level   []uint8
	planned []int64 // own plan for EAs, roll-up for the others

	// Children of area i, in CSV order: kids[first[i]:first[i+1]].
	first []int32
	kids  []int32

	// slots is an open-addressing hash index from code to area: 0 is
	// empty, otherwise index+1. Half full at most.
	slots []int32
	seed  maphash.Seed

	root int32
}

// Load reads an areas CSV and builds its tree: ParseCSV then NewTree.
func Load(r io.Reader) (*Tree, error) {
	rows, err := ParseCSV(r)
	if err != nil {
		return nil, err
	}
	return NewTree(rows)
}

// NewTree checks rows and builds the tree. Every problem is an *Error naming
// the line (Row.Line, or the row's position as a CSV line if Line is 0):
//
//   - each row: code matches [A-Za-z0-9._-]{1,32}; parent is empty or a
//     valid code; a known level; a name of 1…MaxNameLen bytes of UTF-8
//     without control characters or surrounding space; Planned within
//     0…MaxPlanned on an EA and 0 on every other level;
//   - a code defined twice (naming both lines);
//   - a parent that is not defined;
//   - a cycle of parents (found explicitly, before any level check, so the
//     message says what is really wrong);
//   - a root that is not a nation, a nation with a parent, more than one
//     nation;
//   - a parent that is not exactly one level above its child.
//
// The first problem found is returned.
func NewTree(rows []Row) (*Tree, error) {
	n := len(rows)
	if n == 0 {
		return nil, &Error{Msg: "no areas: at least the nation is required"}
	}
	if n > MaxRows {
		return nil, lineErr(lineOf(rows, MaxRows), "more than %d areas", MaxRows)
	}

	// Pass 1: each row on its own.
	total := 0
	for i := range rows {
		r := &rows[i]
		line := lineOf(rows, i)
		switch {
		case r.Code == "":
			return nil, lineErr(line, "empty code")
		case !validCode(string(r.Code)):
			return nil, lineErr(line, "invalid code %q: want 1 to %d of A-Z a-z 0-9 . _ -", clip(string(r.Code)), MaxCodeLen)
		case r.Parent != "" && !validCode(string(r.Parent)):
			return nil, lineErr(line, "invalid parent code %q for area %q", clip(string(r.Parent)), r.Code)
		case !r.Level.valid():
			return nil, lineErr(line, "unknown level %d for area %q", int(r.Level), r.Code)
		}
		if msg := checkName(r.Name); msg != "" {
			return nil, lineErr(line, "%s for area %q", msg, r.Code)
		}
		if r.Level == EA {
			if r.Planned < 0 {
				return nil, lineErr(line, "planned_households must not be negative for area %q", r.Code)
			}
			if r.Planned > MaxPlanned {
				return nil, lineErr(line, "planned_households larger than %d for area %q", MaxPlanned, r.Code)
			}
		} else if r.Planned != 0 {
			return nil, lineErr(line, "planned_households must be empty for a %s (area %q)", r.Level, r.Code)
		}
		total += len(r.Code) + len(r.Name)
	}

	t := &Tree{
		off:     make([]uint32, 2*n+1),
		parent:  make([]int32, n),
		level:   make([]uint8, n),
		planned: make([]int64, n),
		seed:    maphash.MakeSeed(),
		root:    -1,
	}
	var sb strings.Builder
	sb.Grow(total)
	for i := range rows {
		r := &rows[i]
		sb.WriteString(string(r.Code))
		t.off[2*i+1] = uint32(sb.Len())
		sb.WriteString(r.Name)
		t.off[2*i+2] = uint32(sb.Len())
		t.level[i] = uint8(r.Level)
		if r.Level == EA {
			t.planned[i] = r.Planned
		}
	}
	t.text = sb.String()

	// Pass 2: index the codes, refusing duplicates.
	size := 8
	for size < 2*n {
		size <<= 1
	}
	t.slots = make([]int32, size)
	for i := range rows {
		if j := t.insert(int32(i)); j >= 0 {
			return nil, lineErr(lineOf(rows, i), "duplicate code %q (first defined on line %d)", rows[i].Code, lineOf(rows, int(j)))
		}
	}

	// Pass 3: resolve parents.
	for i := range rows {
		r := &rows[i]
		if r.Parent == "" {
			t.parent[i] = -1
			continue
		}
		p := t.lookup(string(r.Parent))
		if p < 0 {
			return nil, lineErr(lineOf(rows, i), "unknown parent %q for area %q", r.Parent, r.Code)
		}
		t.parent[i] = p
	}

	if err := t.checkCycles(rows); err != nil {
		return nil, err
	}

	// Pass 4: roots. Without cycles every chain of parents ends at a root.
	for i := range rows {
		r := &rows[i]
		switch {
		case t.parent[i] < 0 && r.Level != Nation:
			return nil, lineErr(lineOf(rows, i), "area %q (%s) has no parent: only the nation may be a root", r.Code, r.Level)
		case t.parent[i] >= 0 && r.Level == Nation:
			return nil, lineErr(lineOf(rows, i), "nation %q must not have a parent (has %q)", r.Code, r.Parent)
		case r.Level == Nation && t.root >= 0:
			return nil, lineErr(lineOf(rows, i), "second nation %q: the tree must have exactly one root (first nation %q on line %d)",
				r.Code, rows[t.root].Code, lineOf(rows, int(t.root)))
		case r.Level == Nation:
			t.root = int32(i)
		}
	}

	// Pass 5: each parent exactly one level above.
	for i := range rows {
		p := t.parent[i]
		if p >= 0 && t.level[p]+1 != t.level[i] {
			r := &rows[i]
			return nil, lineErr(lineOf(rows, i), "area %q (%s) has parent %q (%s): the parent of a %s must be a %s",
				r.Code, r.Level, r.Parent, Level(t.level[p]), r.Level, r.Level-1)
		}
	}

	// Roll the plans up: levels are exact, so an EA has exactly four
	// ancestors and one pass over the EAs suffices.
	for i := range rows {
		if Level(t.level[i]) != EA {
			continue
		}
		v := t.planned[i]
		for p := t.parent[i]; p >= 0; p = t.parent[p] {
			t.planned[p] += v
		}
	}

	// Children in CSV order (counting sort by parent, stable).
	t.first = make([]int32, n+1)
	for i := range rows {
		if p := t.parent[i]; p >= 0 {
			t.first[p+1]++
		}
	}
	for i := 1; i <= n; i++ {
		t.first[i] += t.first[i-1]
	}
	t.kids = make([]int32, n-1)
	fill := make([]int32, n)
	copy(fill, t.first[:n])
	for i := range rows {
		if p := t.parent[i]; p >= 0 {
			t.kids[fill[p]] = int32(i)
			fill[p]++
		}
	}
	return t, nil
}

// lineOf is the line to name in an error about rows[i]: its own Line, or
// where it would be in a CSV written from rows.
func lineOf(rows []Row, i int) int {
	if l := rows[i].Line; l > 0 {
		return l
	}
	return i + 2
}

// checkCycles follows every chain of parents once (state 1 = on the chain
// being followed, 2 = known to reach a root).
func (t *Tree) checkCycles(rows []Row) error {
	state := make([]uint8, len(rows))
	var chain []int32
	for i := range rows {
		chain = chain[:0]
		j := int32(i)
		for j >= 0 && state[j] == 0 {
			state[j] = 1
			chain = append(chain, j)
			j = t.parent[j]
		}
		if j >= 0 && state[j] == 1 {
			// j is on the current chain: the cycle is chain[from:].
			from := 0
			for chain[from] != j {
				from++
			}
			cyc := chain[from:]
			first := cyc[0]
			for _, k := range cyc {
				if lineOf(rows, int(k)) < lineOf(rows, int(first)) {
					first = k
				}
			}
			var path strings.Builder
			const show = 8
			for k, m := range cyc {
				if k == show {
					path.WriteString(" → …")
					break
				}
				if k > 0 {
					path.WriteString(" → ")
				}
				path.WriteString(t.code(m))
			}
			if len(cyc) <= show {
				path.WriteString(" → " + t.code(cyc[0]))
			}
			return lineErr(lineOf(rows, int(first)), "cycle: area %q is its own ancestor (%s)", rows[first].Code, path.String())
		}
		for _, k := range chain {
			state[k] = 2
		}
	}
	return nil
}

func (t *Tree) code(i int32) string { return t.text[t.off[2*i]:t.off[2*i+1]] }
func (t *Tree) name(i int32) string { return t.text[t.off[2*i+1]:t.off[2*i+2]] }

// insert adds area i to the index, or returns the index of the area that
// already has its code (-1 when inserted).
func (t *Tree) insert(i int32) int32 {
	c := t.code(i)
	mask := uint64(len(t.slots) - 1)
	for h := maphash.String(t.seed, c) & mask; ; h = (h + 1) & mask {
		s := t.slots[h]
		if s == 0 {
			t.slots[h] = i + 1
			return -1
		}
		if t.code(s-1) == c {
			return s - 1
		}
	}
}

// lookup returns the index of the area with code c, or -1.
func (t *Tree) lookup(c string) int32 {
	if t == nil || len(c) == 0 || len(c) > MaxCodeLen {
		return -1
	}
	mask := uint64(len(t.slots) - 1)
	for h := maphash.String(t.seed, c) & mask; ; h = (h + 1) & mask {
		s := t.slots[h]
		if s == 0 {
			return -1
		}
		if t.code(s-1) == c {
			return s - 1
		}
	}
}

func (t *Tree) area(i int32) Area {
	a := Area{
		Code:    Code(t.code(i)),
		Level:   Level(t.level[i]),
		Name:    t.name(i),
		Planned: t.planned[i],
	}
	if p := t.parent[i]; p >= 0 {
		a.Parent = Code(t.code(p))
	}
	return a
}

// Len returns the number of areas.
func (t *Tree) Len() int { return len(t.parent) }

// Get returns the area with code c.
func (t *Tree) Get(c Code) (Area, bool) {
	i := t.lookup(string(c))
	if i < 0 {
		return Area{}, false
	}
	return t.area(i), true
}

// Root returns the nation's code.
func (t *Tree) Root() Code { return Code(t.code(t.root)) }

// Path returns the codes from the root down to c (root first, c last), or
// nil if c is unknown.
func (t *Tree) Path(c Code) []Code {
	i := t.lookup(string(c))
	if i < 0 {
		return nil
	}
	d := 0
	for j := i; j >= 0; j = t.parent[j] {
		d++
	}
	path := make([]Code, d)
	for j := i; j >= 0; j = t.parent[j] {
		d--
		path[d] = Code(t.code(j))
	}
	return path
}

// PathStrings is Path as plain strings, the form the policy engine takes.
func (t *Tree) PathStrings(c Code) []string {
	p := t.Path(c)
	if p == nil {
		return nil
	}
	s := make([]string, len(p))
	for k, x := range p {
		s[k] = string(x)
	}
	return s
}

// Ancestor returns the area at level l on c's path: c itself if c is at
// level l, e.g. the commune of an EA. It reports false if c is unknown or
// above level l.
func (t *Tree) Ancestor(c Code, l Level) (Code, bool) {
	i := t.lookup(string(c))
	for ; i >= 0; i = t.parent[i] {
		lv := Level(t.level[i])
		if lv == l {
			return Code(t.code(i)), true
		}
		if lv < l {
			break
		}
	}
	return "", false
}

// Children returns the codes of c's children in CSV order (nil if none or
// c is unknown).
func (t *Tree) Children(c Code) []Code {
	i := t.lookup(string(c))
	if i < 0 || t.first[i] == t.first[i+1] {
		return nil
	}
	ks := t.kids[t.first[i]:t.first[i+1]]
	out := make([]Code, len(ks))
	for k, j := range ks {
		out[k] = Code(t.code(j))
	}
	return out
}

// Walk calls fn for c itself (depthBelow 0) and then, in pre-order and CSV
// order, for its descendants down to depth levels below c; a negative depth
// means all of them. Walk stops as soon as fn returns false. Nothing is
// called if c is unknown.
func (t *Tree) Walk(c Code, depth int, fn func(a Area, depthBelow int) bool) {
	i := t.lookup(string(c))
	if i < 0 {
		return
	}
	t.walk(i, 0, depth, fn)
}

func (t *Tree) walk(i int32, d, depth int, fn func(Area, int) bool) bool {
	if !fn(t.area(i), d) {
		return false
	}
	if depth >= 0 && d >= depth {
		return true
	}
	// Recursion is bounded: the tree is at most five levels deep.
	for _, k := range t.kids[t.first[i]:t.first[i+1]] {
		if !t.walk(k, d+1, depth, fn) {
			return false
		}
	}
	return true
}

// Contains reports whether c is ancestor or lies below it.
func (t *Tree) Contains(ancestor, c Code) bool {
	a := t.lookup(string(ancestor))
	if a < 0 {
		return false
	}
	for i := t.lookup(string(c)); i >= 0; i = t.parent[i] {
		if i == a {
			return true
		}
		if t.level[i] <= t.level[a] {
			return false
		}
	}
	return false
}

// Rows returns the areas as rows in their original order, each with its own
// plan (not the roll-up) and Line set to its line in WriteCSV's output, so
// that NewTree(t.Rows()) rebuilds an equal tree.
func (t *Tree) Rows() []Row {
	rows := make([]Row, len(t.parent))
	for i := range rows {
		j := int32(i)
		r := Row{
			Line:  i + 2,
			Code:  Code(t.code(j)),
			Level: Level(t.level[i]),
			Name:  t.name(j),
		}
		if p := t.parent[i]; p >= 0 {
			r.Parent = Code(t.code(p))
		}
		if r.Level == EA {
			r.Planned = t.planned[i]
		}
		rows[i] = r
	}
	return rows
}
