package audit

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// WithheldReason says why an export carries a leaf's hashes without its
// event.
type WithheldReason string

const (
	// WithheldPruned marks an event deleted under the retention policy;
	// only its hashes remain.
	WithheldPruned WithheldReason = "pruned"
	// WithheldOutOfScope marks an event the export's reader may not see.
	WithheldOutOfScope WithheldReason = "out_of_scope"
)

func (r WithheldReason) valid() bool { return r == WithheldPruned || r == WithheldOutOfScope }

var (
	// ErrMalformedExport is returned by VerifyExport for an export whose
	// first line is not a checkpoint line, and by ExportWriter for a
	// record it cannot write into a well-formed export.
	ErrMalformedExport = errors.New("malformed audit export")
	// ErrCheckpointMismatch is returned by VerifyExport when the export is
	// for a larger tree than the trusted checkpoint: not evidence of
	// tampering, but not what the auditor asked to verify.
	ErrCheckpointMismatch = errors.New("audit export does not match the trusted checkpoint")
)

// Fixed parts of export lines. A hash is always 44 base64 characters.
const (
	hashB64Len     = 44
	ckptPrefix     = `{"checkpoint":`
	indexPrefix    = `{"index":`
	eventKey       = `,"event":`
	leafKey        = `,"leaf_hash":"`
	chainKey       = `","chain_hash":"`
	withheldKey    = `","withheld":"`
	lineEnd        = `"}`
	hashesLen      = len(leafKey) + hashB64Len + len(chainKey) + hashB64Len
	eventSuffixLen = hashesLen + len(lineEnd)
	// maxExportLine bounds every line, newline excluded: an event line is
	// at most MaxEventSize plus 154 bytes of index and hashes, and the
	// checkpoint line is far smaller.
	maxExportLine = MaxEventSize + 256
	// progressEvery is how many lines VerifyExport reads between calls
	// to ExportOpts.Progress.
	progressEvery = 1 << 16
)

// ExportWriter writes an export (see the package documentation): the signed
// checkpoint line, then one line per leaf, in index order, until the
// checkpoint's size. It writes each line with one Write call, so w should
// be buffered.
//
// ExportWriter does not verify hashes or chain links: an export is
// evidence, and a damaged record must reach the auditor, whose
// VerifyExport names where the log breaks. It refuses only what would make
// the export unreadable: records out of order or beyond the checkpoint's
// size, and event bytes that are not one JSON object on one line. A refused
// call writes nothing and the writer stays usable; a failed Write is
// returned by every later call.
type ExportWriter struct {
	w      io.Writer
	size   int64
	next   int64
	buf    []byte
	err    error
	closed bool
}

// NewExportWriter writes the first line of an export for signedCheckpoint,
// the vault's signed checkpoint note, and returns the writer for the leaf
// lines. It parses the checkpoint, for its size, but does not verify its
// signature: the vault has just signed it, and the auditor verifies it.
func NewExportWriter(w io.Writer, signedCheckpoint []byte) (*ExportWriter, error) {
	c, err := checkpointText(signedCheckpoint)
	if err != nil {
		return nil, err
	}
	if c.Size > MaxTreeSize {
		return nil, fmt.Errorf("%w: tree size %d above %d", ErrMalformedCheckpoint, c.Size, int64(MaxTreeSize))
	}
	x := &ExportWriter{w: w, size: c.Size}
	x.buf = append(x.buf, ckptPrefix...)
	x.buf = appendString(x.buf, string(signedCheckpoint))
	x.buf = append(x.buf, "}\n"...)
	if err := x.write(); err != nil {
		return nil, err
	}
	return x, nil
}

// Event writes the line of a record whose event the reader may see. The
// event bytes are embedded verbatim, so a reader recovers them exactly
// (with encoding/json, as a json.RawMessage).
func (x *ExportWriter) Event(r Record) error {
	if err := x.usable(r.Index); err != nil {
		return err
	}
	b := r.Event
	if len(b) < 2 || len(b) > MaxEventSize || b[0] != '{' || b[len(b)-1] != '}' ||
		bytes.ContainsAny(b, "\r\n") || !json.Valid(b) {
		return fmt.Errorf("%w: record %d: the event bytes are not one JSON object of at most %d bytes on one line: the stored log is damaged; check it with audit.Verifier", ErrMalformedExport, r.Index, MaxEventSize)
	}
	x.buf = append(x.buf[:0], indexPrefix...)
	x.buf = strconv.AppendInt(x.buf, r.Index, 10)
	x.buf = append(x.buf, eventKey...)
	x.buf = append(x.buf, b...)
	x.buf = appendHashes(x.buf, r.LeafHash, r.ChainHash)
	x.buf = append(x.buf, "\"}\n"...)
	return x.writeLeaf()
}

// Withheld writes the line of a leaf whose event is not exported, with its
// stored leaf and chain hashes and the reason.
func (x *ExportWriter) Withheld(index int64, leaf, chain [32]byte, reason WithheldReason) error {
	if err := x.usable(index); err != nil {
		return err
	}
	if !reason.valid() {
		return fmt.Errorf("%w: record %d: withheld reason must be %q or %q", ErrMalformedExport, index, WithheldPruned, WithheldOutOfScope)
	}
	x.buf = append(x.buf[:0], indexPrefix...)
	x.buf = strconv.AppendInt(x.buf, index, 10)
	x.buf = appendHashes(x.buf, leaf, chain)
	x.buf = append(x.buf, withheldKey...)
	x.buf = append(x.buf, reason...)
	x.buf = append(x.buf, "\"}\n"...)
	return x.writeLeaf()
}

// Close reports whether the export is complete: one line for each of the
// checkpoint's leaves. It does not close the underlying writer. An
// incomplete export fails verification; the caller must not publish it.
func (x *ExportWriter) Close() error {
	x.closed = true
	if x.err != nil {
		return x.err
	}
	if x.next != x.size {
		return fmt.Errorf("%w: incomplete: %d of the checkpoint's %d leaves written", ErrMalformedExport, x.next, x.size)
	}
	return nil
}

func (x *ExportWriter) usable(index int64) error {
	switch {
	case x.err != nil:
		return x.err
	case x.closed:
		return fmt.Errorf("%w: writer already closed", ErrMalformedExport)
	case x.next == x.size:
		return fmt.Errorf("%w: record %d: the export already has the checkpoint's %d leaves", ErrMalformedExport, index, x.size)
	case index != x.next:
		return fmt.Errorf("%w: record %d given, %d expected: write every leaf, in index order", ErrMalformedExport, index, x.next)
	}
	return nil
}

func (x *ExportWriter) write() error {
	n, err := x.w.Write(x.buf)
	if err == nil && n != len(x.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		x.err = fmt.Errorf("writing audit export: %w", err)
		return x.err
	}
	return nil
}

// writeLeaf writes the leaf line in buf and moves to the next index.
func (x *ExportWriter) writeLeaf() error {
	if err := x.write(); err != nil {
		return err
	}
	x.next++
	return nil
}

func appendHashes(b []byte, leaf, chain [32]byte) []byte {
	b = append(b, leafKey...)
	b = base64.StdEncoding.AppendEncode(b, leaf[:])
	b = append(b, chainKey...)
	return base64.StdEncoding.AppendEncode(b, chain[:])
}

// ExportOpts are the auditor's inputs to VerifyExport.
type ExportOpts struct {
	// VerifierKey is the vault's audit verifier key,
	// "<name>+<hash>+<key data>"; its name is the log's origin. Required.
	VerifierKey string
	// Checkpoint is a signed checkpoint the auditor trusts (obtained
	// independently of the export, e.g. from a witness). If set, the
	// export must be for exactly that tree: same size and root. If nil,
	// the export's own checkpoint is used; it is signature-checked either
	// way.
	Checkpoint []byte
	// Previous are older signed checkpoints kept by the auditor or a
	// witness. The export's log must extend each of them: it may not be
	// shorter (truncation, rollback) and its first Size leaves must have
	// the same root (no fork).
	Previous [][]byte
	// Progress, if set, is called with the number of lines read so far
	// (the checkpoint line included) every 65536 lines, and with the
	// total once the export has verified.
	Progress func(lines int64)
}

// ExportResult describes a verified export.
type ExportResult struct {
	Origin   string   // the log's origin, the verifier key's name
	Size     int64    // leaves in the log, the checkpoint's size
	Root     [32]byte // Merkle root of the leaves, equal to the checkpoint's
	Head     [32]byte // chain hash of the last leaf; Genesis if empty
	Events   int64    // leaves exported with their event, all verified
	Withheld int64    // leaves exported as hashes only (pruned or out of scope)
	Previous int      // checkpoints (trusted and previous) the log was shown to extend
}

// VerifyExport verifies an export read from r in one streaming pass, in
// memory independent of its length (one line buffer, one chain head and
// one hash per tree level). It checks that:
//
//   - the first line carries a checkpoint signed by o.VerifierKey whose
//     origin is the key's name; o.Checkpoint and every o.Previous verify
//     with that key too;
//   - the export's tree is exactly o.Checkpoint's, if given (a larger
//     tree is ErrCheckpointMismatch; a smaller one a rollback, below);
//   - no checkpoint in o.Previous (or o.Checkpoint) is larger than the
//     export's: "the log is shorter than a checkpoint seen before";
//   - every later line is an export line, exactly as ExportWriter writes
//     it, at most MaxEventSize plus a few hundred bytes long and ended by
//     a newline; there is one per leaf, with indexes 0..N-1 in order (a
//     deleted, duplicated or swapped line is named), and nothing after;
//   - each event decodes and is canonical, its own index is its line's,
//     its leaf hash matches its bytes, and its chain hash links it to the
//     previous leaf; a withheld leaf's chain hash links its leaf hash;
//   - the Merkle root of the first M leaves equals the root of each older
//     checkpoint of size M ("the log was rewritten before index M ...
//     (fork)" otherwise), and the root of all N leaves equals the
//     checkpoint's.
//
// A problem at a leaf, or with the log's extent, is returned as a
// *VerifyError naming the first one found; a bad checkpoint or key as an
// error wrapping ErrVerifierKey, ErrMalformedCheckpoint,
// ErrCheckpointSignature, ErrCheckpointOrigin, ErrCheckpointMismatch or
// ErrMalformedExport. A read error from r is returned wrapped. Withheld
// leaves prove their position and hashes, not their content: the result
// counts them.
func VerifyExport(r io.Reader, o ExportOpts) (*ExportResult, error) {
	if o.VerifierKey == "" {
		return nil, fmt.Errorf("%w: ExportOpts.VerifierKey is empty: give the vault's audit verifier key", ErrVerifierKey)
	}
	lr := lineReader{r: bufio.NewReaderSize(r, maxExportLine+1)}

	// Line 1: the checkpoint.
	line, err := lr.next()
	switch {
	case err == io.EOF:
		return nil, fmt.Errorf("%w: empty input, want the checkpoint line first", ErrMalformedExport)
	case errors.Is(err, errLineLong), errors.Is(err, errLineCut):
		return nil, fmt.Errorf("%w: line 1: %v", ErrMalformedExport, err)
	case err != nil:
		return nil, err
	}
	signed, err := parseCheckpointLine(line)
	if err != nil {
		return nil, err
	}
	cp, err := OpenCheckpoint(signed, o.VerifierKey)
	if err != nil {
		return nil, fmt.Errorf("export checkpoint (line 1): %w", err)
	}
	n := cp.Size
	if n > MaxTreeSize {
		return nil, fmt.Errorf("%w: export checkpoint (line 1): tree size %d above %d", ErrMalformedCheckpoint, n, int64(MaxTreeSize))
	}
	lastIndex := max(n-1, 0)

	// Checkpoints the log must extend: the trusted one and older ones.
	var prev []Checkpoint
	if o.Checkpoint != nil {
		t, err := OpenCheckpoint(o.Checkpoint, o.VerifierKey)
		if err != nil {
			return nil, fmt.Errorf("trusted checkpoint: %w", err)
		}
		if t.Size < n {
			return nil, fmt.Errorf("%w: the export is for tree size %d, the trusted checkpoint for size %d: verify the export that matches it, or pass the trusted checkpoint in Previous to check that this one extends it", ErrCheckpointMismatch, n, t.Size)
		}
		prev = append(prev, t)
	}
	for i, b := range o.Previous {
		p, err := OpenCheckpoint(b, o.VerifierKey)
		if err != nil {
			return nil, fmt.Errorf("previous checkpoint %d: %w", i, err)
		}
		prev = append(prev, p)
	}
	slices.SortStableFunc(prev, func(a, b Checkpoint) int { return cmp.Compare(a.Size, b.Size) })
	for _, p := range prev {
		if p.Origin != cp.Origin {
			// Unreachable while every checkpoint's origin is the one
			// key's name; kept so the rule does not depend on that.
			return nil, fmt.Errorf("%w: a checkpoint seen before is for log %s, the export for %s", ErrCheckpointOrigin, quoteShort(p.Origin), quoteShort(cp.Origin))
		}
		if p.Size > n {
			return nil, &VerifyError{Index: n, Problem: fmt.Sprintf(problemRollback, p.Size)}
		}
		if p.Size == n && p.Root != cp.Root {
			// Two signed trees of one size: they cannot both be this log.
			return nil, &VerifyError{Index: lastIndex, Problem: fmt.Sprintf(problemFork, n)}
		}
	}

	var (
		v        = NewVerifier()
		tree     TreeBuilder
		res      = &ExportResult{Origin: cp.Origin, Size: n, Previous: len(prev)}
		pi       int
		lines    = int64(1)
		rec      Record
		withheld bool
	)
	// checkPrev compares the tree so far with the older checkpoints of
	// its size.
	checkPrev := func() *VerifyError {
		if pi == len(prev) || prev[pi].Size != tree.Size() {
			return nil
		}
		root := tree.Root()
		for ; pi < len(prev) && prev[pi].Size == tree.Size(); pi++ {
			if prev[pi].Root != root {
				return &VerifyError{Index: max(tree.Size()-1, 0), Problem: fmt.Sprintf(problemFork, tree.Size())}
			}
		}
		return nil
	}
	if err := checkPrev(); err != nil { // older checkpoints of the empty tree
		return nil, err
	}
	for i := int64(0); i < n; i++ {
		line, err := lr.next()
		switch {
		case err == io.EOF:
			return nil, &VerifyError{Index: i, Problem: fmt.Sprintf(problemTruncated, i, n)}
		case errors.Is(err, errLineLong), errors.Is(err, errLineCut):
			return nil, &VerifyError{Index: i, Problem: fmt.Sprintf(problemLine, i+2, err)}
		case err != nil:
			return nil, err
		}
		lines++
		if what := parseLeafLine(line, &rec, &withheld); what != "" {
			return nil, &VerifyError{Index: i, Problem: fmt.Sprintf(problemLine, i+2, what)}
		}
		if withheld {
			err = v.AddWithheld(rec.Index, rec.LeafHash, rec.ChainHash)
			res.Withheld++
		} else {
			err = v.Add(rec)
			res.Events++
		}
		if err != nil {
			return nil, err
		}
		tree.Add(rec.LeafHash)
		if err := checkPrev(); err != nil {
			return nil, err
		}
		if o.Progress != nil && lines%progressEvery == 0 {
			o.Progress(lines)
		}
	}
	if _, err := lr.r.Peek(1); err == nil {
		return nil, &VerifyError{Index: n, Problem: fmt.Sprintf(problemTrailing, n)}
	} else if err != io.EOF {
		return nil, fmt.Errorf("reading audit export: %w", err)
	}
	res.Root = tree.Root()
	if res.Root != cp.Root {
		return nil, &VerifyError{Index: lastIndex, Problem: fmt.Sprintf(problemRoot, n)}
	}
	res.Head = v.Head()
	if o.Progress != nil && lines%progressEvery != 0 {
		o.Progress(lines)
	}
	return res, nil
}

var (
	errLineLong = fmt.Errorf("line longer than %d bytes (an event is at most %d)", maxExportLine, MaxEventSize)
	errLineCut  = errors.New("no newline at the end (export cut short)")
)

// lineReader reads newline-terminated lines of bounded length.
type lineReader struct{ r *bufio.Reader }

// next returns the next line without its newline, valid until the next
// call; io.EOF at a clean end; errLineLong, errLineCut, or a wrapped read
// error.
func (lr lineReader) next() ([]byte, error) {
	line, err := lr.r.ReadSlice('\n')
	switch {
	case err == nil:
		if len(line)-1 > maxExportLine {
			return nil, errLineLong
		}
		return line[:len(line)-1], nil
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, errLineLong
	case err == io.EOF:
		if len(line) == 0 {
			return nil, io.EOF
		}
		return nil, errLineCut
	default:
		return nil, fmt.Errorf("reading audit export: %w", err)
	}
}

// parseCheckpointLine returns the signed note of the line
// {"checkpoint":"<note>"}, which must be spelled exactly as ExportWriter
// writes it.
func parseCheckpointLine(line []byte) ([]byte, error) {
	if !bytes.HasPrefix(line, []byte(ckptPrefix+`"`)) {
		return nil, fmt.Errorf(`%w: line 1 does not start with {"checkpoint":"`, ErrMalformedExport)
	}
	p := parser{b: line, i: len(ckptPrefix)}
	s, err := p.str()
	if err != nil {
		return nil, fmt.Errorf("%w: line 1: checkpoint string: %v", ErrMalformedExport, err)
	}
	if p.i != len(line)-1 || line[p.i] != '}' {
		return nil, fmt.Errorf(`%w: line 1: want nothing but "}" after the checkpoint string`, ErrMalformedExport)
	}
	if !bytes.Equal(appendString(line[:0:0], s), line[len(ckptPrefix):p.i]) {
		return nil, fmt.Errorf("%w: line 1: checkpoint string not in canonical form (escapes other than ExportWriter's)", ErrMalformedExport)
	}
	return []byte(s), nil
}

// parseLeafLine parses a leaf line into r (Index, Event, LeafHash,
// ChainHash) and withheld, or says what is wrong with it. The line must be
// exactly as ExportWriter writes it; r.Event aliases line. The index is
// only parsed: the Verifier checks it.
func parseLeafLine(line []byte, r *Record, withheld *bool) string {
	if !bytes.HasPrefix(line, []byte(indexPrefix)) {
		return `does not start with {"index":`
	}
	rest := line[len(indexPrefix):]
	j := 0
	for j < len(rest) && j <= 16 && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	idx, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	if err != nil || j > 16 || strconv.FormatInt(idx, 10) != string(rest[:j]) {
		return "index is not a non-negative integer of at most 16 digits without leading zero"
	}
	r.Index = idx
	rest = rest[j:]
	switch {
	case bytes.HasPrefix(rest, []byte(eventKey)):
		rest = rest[len(eventKey):]
		if len(rest) < eventSuffixLen+2 {
			return `too short for an event and its "leaf_hash" and "chain_hash"`
		}
		r.Event = rest[:len(rest)-eventSuffixLen]
		hashes := rest[len(rest)-eventSuffixLen:]
		if string(hashes[hashesLen:]) != lineEnd {
			return `does not end with "}`
		}
		if what := parseHashes(hashes[:hashesLen], r); what != "" {
			return what
		}
		*withheld = false
	case bytes.HasPrefix(rest, []byte(leafKey)):
		if len(rest) < hashesLen+len(withheldKey)+len(lineEnd) {
			return `too short for "leaf_hash", "chain_hash" and "withheld"`
		}
		if what := parseHashes(rest[:hashesLen], r); what != "" {
			return what
		}
		rest = rest[hashesLen:]
		if !bytes.HasPrefix(rest, []byte(withheldKey)) || !bytes.HasSuffix(rest, []byte(lineEnd)) {
			return `a line without "event" must end with "withheld":"<reason>"}`
		}
		reason := WithheldReason(rest[len(withheldKey) : len(rest)-len(lineEnd)])
		if !reason.valid() {
			return fmt.Sprintf(`unknown "withheld" reason %s (want %q or %q)`, quoteShort(string(reason)), WithheldPruned, WithheldOutOfScope)
		}
		r.Event = nil
		*withheld = true
	default:
		return `want "event" or "leaf_hash" after the index`
	}
	return ""
}

// parseHashes reads ,"leaf_hash":"<b64>","chain_hash":"<b64> into r.
func parseHashes(b []byte, r *Record) string {
	if !bytes.HasPrefix(b, []byte(leafKey)) {
		return `want "leaf_hash" after the event`
	}
	b = b[len(leafKey):]
	if !decodeHash(b[:hashB64Len], &r.LeafHash) {
		return `"leaf_hash" is not 32 bytes in padded standard base64`
	}
	b = b[hashB64Len:]
	if !bytes.HasPrefix(b, []byte(chainKey)) {
		return `want "chain_hash" after "leaf_hash"`
	}
	if !decodeHash(b[len(chainKey):], &r.ChainHash) {
		return `"chain_hash" is not 32 bytes in padded standard base64`
	}
	return ""
}

// decodeHash decodes exactly 44 characters of canonical padded base64.
func decodeHash(b []byte, h *[32]byte) bool {
	if len(b) != hashB64Len {
		return false
	}
	var buf [33]byte
	n, err := base64.StdEncoding.Strict().Decode(buf[:], b)
	if err != nil || n != 32 {
		return false
	}
	// Strict refuses non-zero padding bits, and no '\r' or '\n' can be in a
	// line, so the encoding is the canonical one; check anyway.
	var enc [hashB64Len]byte
	base64.StdEncoding.Encode(enc[:], buf[:32])
	if !bytes.Equal(enc[:], b) {
		return false
	}
	copy(h[:], buf[:32])
	return true
}
