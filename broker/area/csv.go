package area

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// ParseCSV reads an areas CSV: a header line exactly
// "code,parent,level,name,planned_households", then one area per line.
//
// It accepts a leading UTF-8 byte order mark, CRLF or LF line ends, blank
// lines (skipped) and RFC 4180 quoting ("…" with "" for a quote). A quoted
// field may not span lines: no valid name contains a line break, and keeping
// one record per line keeps every line number in an error exact.
//
// ParseCSV checks syntax and whatever needs the text itself: five fields, a
// known level, and planned_households (required whole number 0…MaxPlanned on
// an EA, empty on every other level). Everything else is left to NewTree.
// Syntax errors are *Error; a failing reader's error is returned wrapped.
func ParseCSV(r io.Reader) ([]Row, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		b         builder
		line      int
		sawHeader bool
		fields    [5][]byte
		scratch   []byte
	)
	for {
		raw, err := br.ReadSlice('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, lineErr(line+1, "line longer than %d bytes", maxLineBytes)
			}
			return nil, fmt.Errorf("failed to read areas: %w", err)
		}
		if len(raw) == 0 && err != nil {
			break
		}
		line++
		if len(raw) > maxLineBytes {
			return nil, lineErr(line, "line longer than %d bytes", maxLineBytes)
		}
		raw = bytes.TrimSuffix(raw, []byte("\n"))
		raw = bytes.TrimSuffix(raw, []byte("\r"))
		if !sawHeader {
			raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
			if string(raw) != header {
				return nil, lineErr(line, "header must be exactly %q", header)
			}
			sawHeader = true
			continue
		}
		if len(raw) == 0 {
			if err != nil {
				break
			}
			continue
		}
		if b.n == MaxRows {
			return nil, lineErr(line, "more than %d areas", MaxRows)
		}
		var msg string
		scratch, msg = splitFields(raw, &fields, scratch[:0])
		if msg != "" {
			return nil, lineErr(line, "%s", msg)
		}
		lvl, planned, e := parseRow(line, &fields)
		if e != nil {
			return nil, e
		}
		b.add(Row{Line: line, Level: lvl, Planned: planned}, fields[0], fields[1], fields[3])
		if err != nil {
			break
		}
	}
	if !sawHeader {
		return nil, lineErr(1, "missing header %q", header)
	}
	return b.rows(), nil
}

// builder collects rows in fixed-size chunks whose strings share one arena
// per chunk: a national file then costs one string allocation per 8,192
// rows instead of three per row, and no re-copying of a growing []Row.
type builder struct {
	n      int
	done   [][]Row
	cur    []Row
	spans  [][3][2]uint32 // code, parent, name of cur[k] in arena
	arena  []byte
	parent [2]uint32 // span of the last parent in arena
}

const chunkRows = 8192

func (b *builder) add(r Row, code, parent, name []byte) {
	if b.cur == nil {
		b.cur = make([]Row, 0, chunkRows)
		b.spans = b.spans[:0]
		b.arena = make([]byte, 0, chunkRows*32)
		b.parent = [2]uint32{0, 0}
	}
	var sp [3][2]uint32
	sp[0] = b.put(code)
	// Siblings are usually listed together: store a repeated parent once.
	if len(b.cur) > 0 && string(b.arena[b.parent[0]:b.parent[1]]) == string(parent) {
		sp[1] = b.parent
	} else {
		sp[1] = b.put(parent)
		b.parent = sp[1]
	}
	sp[2] = b.put(name)
	b.cur = append(b.cur, r)
	b.spans = append(b.spans, sp)
	b.n++
	if len(b.cur) == chunkRows {
		b.flush()
	}
}

func (b *builder) put(s []byte) [2]uint32 {
	start := uint32(len(b.arena))
	b.arena = append(b.arena, s...)
	return [2]uint32{start, uint32(len(b.arena))}
}

func (b *builder) flush() {
	if len(b.cur) == 0 {
		return
	}
	text := string(b.arena)
	for k := range b.cur {
		sp := &b.spans[k]
		b.cur[k].Code = Code(text[sp[0][0]:sp[0][1]])
		b.cur[k].Parent = Code(text[sp[1][0]:sp[1][1]])
		b.cur[k].Name = text[sp[2][0]:sp[2][1]]
	}
	b.done = append(b.done, b.cur)
	b.cur = nil
}

func (b *builder) rows() []Row {
	b.flush()
	if len(b.done) == 1 {
		return b.done[0]
	}
	rows := make([]Row, 0, b.n)
	for _, c := range b.done {
		rows = append(rows, c...)
	}
	return rows
}

// splitFields splits one line into exactly five fields. Unquoted fields are
// sub-slices of line; quoted ones are unescaped into scratch (returned for
// reuse). The message is "" on success.
func splitFields(line []byte, out *[5][]byte, scratch []byte) ([]byte, string) {
	// Quoted fields are unescaped into scratch; remember their bounds and
	// slice them only after scratch has stopped growing.
	var quoted [5][2]int
	var isQuoted [5]bool
	n := 0
	i := 0
	for {
		if n == len(out) {
			return scratch, fmt.Sprintf("too many fields (want 5: %s)", header)
		}
		if i < len(line) && line[i] == '"' {
			start := len(scratch)
			i++
			for {
				j := bytes.IndexByte(line[i:], '"')
				if j < 0 {
					return scratch, "unterminated quoted field (a field may not span lines)"
				}
				scratch = append(scratch, line[i:i+j]...)
				i += j + 1
				if i < len(line) && line[i] == '"' {
					scratch = append(scratch, '"')
					i++
					continue
				}
				break
			}
			quoted[n] = [2]int{start, len(scratch)}
			isQuoted[n] = true
			if i < len(line) && line[i] != ',' {
				return scratch, "unexpected text after a closing quote"
			}
		} else {
			j := bytes.IndexByte(line[i:], ',')
			end := len(line)
			if j >= 0 {
				end = i + j
			}
			f := line[i:end]
			if bytes.IndexByte(f, '"') >= 0 {
				return scratch, "quote in an unquoted field (quote the whole field and double the quote)"
			}
			out[n] = f
			i = end
		}
		n++
		if i >= len(line) {
			break
		}
		i++ // the comma
		if i == len(line) {
			// A trailing comma opens one more, empty field.
			if n == len(out) {
				return scratch, fmt.Sprintf("too many fields (want 5: %s)", header)
			}
			out[n] = nil
			n++
			break
		}
	}
	if n != len(out) {
		return scratch, fmt.Sprintf("%d fields, want 5 (%s)", n, header)
	}
	for k := range out {
		if isQuoted[k] {
			out[k] = scratch[quoted[k][0]:quoted[k][1]]
		}
	}
	return scratch, ""
}

// parseRow checks the level and planned_households of one line.
func parseRow(line int, f *[5][]byte) (Level, int64, *Error) {
	lvl, ok := levelOf(f[2])
	if !ok {
		_, err := ParseLevel(string(f[2]))
		return 0, 0, lineErr(line, "%v", err)
	}
	p := f[4]
	switch {
	case lvl != EA && len(p) != 0:
		return 0, 0, lineErr(line, "planned_households must be empty for a %s (only EAs have a plan)", lvl)
	case lvl == EA && len(p) == 0:
		return 0, 0, lineErr(line, "planned_households is required for an ea")
	case lvl == EA:
		n, msg := parsePlanned(p)
		if msg != "" {
			return 0, 0, lineErr(line, "planned_households %s", msg)
		}
		return lvl, n, nil
	}
	return lvl, 0, nil
}

// levelOf is ParseLevel without allocating, for the hot path.
func levelOf(b []byte) (Level, bool) {
	switch string(b) {
	case "ea":
		return EA, true
	case "commune":
		return Commune, true
	case "district":
		return District, true
	case "province":
		return Province, true
	case "nation":
		return Nation, true
	}
	return 0, false
}

// parsePlanned parses [0-9]+ into 0…MaxPlanned, naming what is wrong.
func parsePlanned(b []byte) (int64, string) {
	if len(b) > 1 && b[0] == '-' && allDigits(b[1:]) {
		return 0, "must not be negative"
	}
	if len(b) == 0 || !allDigits(b) {
		return 0, "must be a whole number"
	}
	b = bytes.TrimLeft(b, "0")
	if len(b) > 18 {
		return 0, fmt.Sprintf("larger than %d", MaxPlanned)
	}
	var n int64
	for _, c := range b {
		n = n*10 + int64(c-'0')
	}
	if n > MaxPlanned {
		return 0, fmt.Sprintf("larger than %d", MaxPlanned)
	}
	return n, ""
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// WriteCSV writes the tree in the format ParseCSV reads, in the original
// order, with LF line ends and no byte order mark; Load of the output gives
// an equal tree.
func (t *Tree) WriteCSV(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString(header)
	bw.WriteByte('\n')
	var num [20]byte
	for i := range t.parent {
		bw.WriteString(t.code(int32(i)))
		bw.WriteByte(',')
		if p := t.parent[i]; p >= 0 {
			bw.WriteString(t.code(p))
		}
		bw.WriteByte(',')
		lvl := Level(t.level[i])
		bw.WriteString(lvl.String())
		bw.WriteByte(',')
		writeField(bw, t.name(int32(i)))
		bw.WriteByte(',')
		if lvl == EA {
			bw.Write(strconv.AppendInt(num[:0], t.planned[i], 10))
		}
		if err := bw.WriteByte('\n'); err != nil {
			return fmt.Errorf("failed to write areas: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("failed to write areas: %w", err)
	}
	return nil
}

// writeField quotes a name only when it must be: names never hold line
// breaks (NewTree refuses control characters), so only commas and quotes do.
func writeField(bw *bufio.Writer, s string) {
	needQuote := false
	for i := 0; i < len(s); i++ {
		if s[i] == ',' || s[i] == '"' {
			needQuote = true
			break
		}
	}
	if !needQuote {
		bw.WriteString(s)
		return
	}
	bw.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			bw.WriteByte('"')
		}
		bw.WriteByte(s[i])
	}
	bw.WriteByte('"')
}
