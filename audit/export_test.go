package audit_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/censusvault/censusvault/audit"
)

// exportOf writes recs as an export under a checkpoint of all of them
// signed by s; withheld leaves are written as hashes only. It returns the
// export and the signed checkpoint.
func exportOf(tb testing.TB, s note.Signer, recs []audit.Record, withheld map[int64]audit.WithheldReason) ([]byte, []byte) {
	tb.Helper()
	signed := checkpointOf(tb, s, recs)
	var buf bytes.Buffer
	x, err := audit.NewExportWriter(&buf, signed)
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range recs {
		if reason, ok := withheld[r.Index]; ok {
			err = x.Withheld(r.Index, r.LeafHash, r.ChainHash, reason)
		} else {
			err = x.Event(r)
		}
		if err != nil {
			tb.Fatalf("writing record %d: %v", r.Index, err)
		}
	}
	if err := x.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes(), signed
}

// checkpointOf signs the checkpoint of recs' leaves.
func checkpointOf(tb testing.TB, s note.Signer, recs []audit.Record) []byte {
	tb.Helper()
	var tree audit.TreeBuilder
	for _, r := range recs {
		tree.Add(r.LeafHash)
	}
	return signCheckpoint(tb, s, audit.Checkpoint{Origin: s.Name(), Size: tree.Size(), Root: tree.Root()})
}

// lines splits a copy of b into its lines, each with its newline.
func lines(b []byte) [][]byte {
	ls := bytes.SplitAfter(bytes.Clone(b), []byte("\n"))
	if len(ls[len(ls)-1]) == 0 {
		ls = ls[:len(ls)-1]
	}
	for i := range ls {
		ls[i] = ls[i][:len(ls[i]):len(ls[i])]
	}
	return ls
}

func join(ls [][]byte) []byte { return bytes.Join(ls, nil) }

// verifyErr runs VerifyExport and returns its *VerifyError, failing the
// test if it returns another kind of error or none.
func verifyErr(t *testing.T, export []byte, o audit.ExportOpts) *audit.VerifyError {
	t.Helper()
	res, err := audit.VerifyExport(bytes.NewReader(export), o)
	var ve *audit.VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("VerifyExport = %+v, %v; want a *VerifyError", res, err)
	}
	if res != nil {
		t.Errorf("VerifyExport returned a result with error %v", err)
	}
	return ve
}

func TestExportVerifies(t *testing.T) {
	s, vkey := testKey(t, testOrigin, 1)
	for _, n := range []int{0, 1, 2, 3, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			recs := buildLog(t, n)
			withheld := map[int64]audit.WithheldReason{}
			for i := int64(1); i < int64(n); i += 3 {
				withheld[i] = audit.WithheldOutOfScope
			}
			if n > 0 {
				withheld[0] = audit.WithheldPruned
			}
			export, signed := exportOf(t, s, recs, withheld)
			var progress []int64
			res, err := audit.VerifyExport(bytes.NewReader(export), audit.ExportOpts{
				VerifierKey: vkey,
				Progress:    func(l int64) { progress = append(progress, l) },
			})
			if err != nil {
				t.Fatal(err)
			}
			cp, _ := audit.OpenCheckpoint(signed, vkey)
			want := &audit.ExportResult{
				Origin: testOrigin, Size: int64(n), Root: cp.Root, Head: audit.Genesis,
				Events: int64(n - len(withheld)), Withheld: int64(len(withheld)),
			}
			if n > 0 {
				want.Head = recs[n-1].ChainHash
			}
			if *res != *want {
				t.Errorf("result %+v, want %+v", res, want)
			}
			if !slices.Equal(progress, []int64{int64(n + 1)}) {
				t.Errorf("Progress calls %v, want [%d]", progress, n+1)
			}
			// The same export against its own checkpoint as trusted, and
			// with every prefix's checkpoint as Previous.
			o := audit.ExportOpts{VerifierKey: vkey, Checkpoint: signed}
			for m := 0; m <= n; m++ {
				o.Previous = append(o.Previous, checkpointOf(t, s, recs[:m]))
			}
			res, err = audit.VerifyExport(bytes.NewReader(export), o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Previous != n+2 {
				t.Errorf("Previous = %d, want %d", res.Previous, n+2)
			}
		})
	}
}

// The export's lines are JSON any library reads, and the event and the
// checkpoint come back byte for byte.
func TestExportRoundTripBytes(t *testing.T) {
	s, vkey := testKey(t, testOrigin, 1)
	events := []*audit.Event{
		katEvent(),
		releaseEvent(),
		{
			Actor:     "user:nguyễn.văn.an",
			Roles:     []string{"giám_sát", "enumerator"},
			Area:      "01 – Hà Nội",
			Action:    "submission.view",
			Resources: []string{"submission:🧮", `weird:"quoted"\back\slash`},
			Reason:    "line1\nline2\ttab\rcr\x00nul\x01\x1f\x7f del, <html> & \u2028\u2029",
			Purpose:   "\"\\/\b\f",
			Request:   `{"q":"\u00e9\n"}`,
			Time:      time.Date(2024, 2, 29, 23, 59, 59, 999999999, ict),
		},
		{}, // zero event
	}
	var recs []audit.Record
	head := audit.Genesis
	for i, e := range events {
		e.Index = int64(i)
		r, err := audit.Seal(head, e)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
		head = r.ChainHash
	}
	export, signed := exportOf(t, s, recs, map[int64]audit.WithheldReason{3: audit.WithheldPruned})
	if _, err := audit.VerifyExport(bytes.NewReader(export), audit.ExportOpts{VerifierKey: vkey}); err != nil {
		t.Fatal(err)
	}

	ls := lines(export)
	if len(ls) != len(recs)+1 {
		t.Fatalf("%d lines, want %d", len(ls), len(recs)+1)
	}
	var first struct{ Checkpoint string }
	dec := json.NewDecoder(bytes.NewReader(ls[0]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&first); err != nil || first.Checkpoint != string(signed) {
		t.Fatalf("line 1 via encoding/json: %v, checkpoint %q; want %q", err, first.Checkpoint, signed)
	}
	for i, l := range ls[1:] {
		if !json.Valid(l) || !bytes.HasSuffix(l, []byte("}\n")) {
			t.Fatalf("line %d is not one JSON object and a newline: %q", i+2, l)
		}
		var leaf struct {
			Index     *int64
			Event     json.RawMessage
			LeafHash  string `json:"leaf_hash"`
			ChainHash string `json:"chain_hash"`
			Withheld  string
		}
		dec := json.NewDecoder(bytes.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&leaf); err != nil {
			t.Fatalf("line %d via encoding/json: %v", i+2, err)
		}
		r := recs[i]
		if leaf.Index == nil || *leaf.Index != r.Index ||
			leaf.LeafHash != base64.StdEncoding.EncodeToString(r.LeafHash[:]) ||
			leaf.ChainHash != base64.StdEncoding.EncodeToString(r.ChainHash[:]) {
			t.Errorf("line %d: %+v, want record %d's index and hashes", i+2, leaf, r.Index)
		}
		if i == 3 {
			if leaf.Event != nil || leaf.Withheld != "pruned" {
				t.Errorf("withheld line %d: event %q, withheld %q", i+2, leaf.Event, leaf.Withheld)
			}
			continue
		}
		if !bytes.Equal(leaf.Event, r.Event) || leaf.Withheld != "" {
			t.Errorf("line %d: event bytes\n%q\nwant\n%q", i+2, leaf.Event, r.Event)
		}
		if audit.LeafHash(leaf.Event) != r.LeafHash {
			t.Errorf("line %d: leaf hash of the recovered bytes differs", i+2)
		}
	}
}

func TestExportTamper(t *testing.T) {
	const n, k = 100, 17
	s, vkey := testKey(t, testOrigin, 1)
	good := buildLog(t, n)
	withheld := map[int64]audit.WithheldReason{k + 3: audit.WithheldPruned, k + 5: audit.WithheldOutOfScope}
	export, signed := exportOf(t, s, good, withheld)
	o := audit.ExportOpts{VerifierKey: vkey}
	line := func(i int) int { return i + 1 } // slice position of leaf i's line

	// rewrite returns a copy of the log from index from on altered (one
	// actor changed per event) and resealed, as a forger with the
	// database and the signing key would do.
	rewrite := func(recs []audit.Record, from int) []audit.Record {
		recs = slices.Clone(recs)
		for i := from; i < len(recs); i++ {
			e, err := audit.Decode(recs[i].Event)
			if err != nil {
				t.Fatal(err)
			}
			e.Actor = "user:mallory"
			recs[i].Event, _ = e.Encode()
		}
		reseal(recs, from)
		return recs
	}

	tests := []struct {
		name      string
		export    func() []byte
		opts      func(audit.ExportOpts) audit.ExportOpts
		wantIndex int64
		problem   string
	}{
		{
			name: "one byte of an event changed",
			export: func() []byte {
				ls := lines(export)
				i := bytes.Index(ls[line(k)], []byte(`"actor":"user:enum`)) + len(`"actor":"user:`)
				ls[line(k)][i] ^= 0x01
				return join(ls)
			},
			wantIndex: k, problem: "leaf hash mismatch",
		},
		{
			name: "one byte of an event broken",
			export: func() []byte {
				ls := lines(export)
				i := bytes.Index(ls[line(k)], []byte(`"action"`))
				ls[line(k)][i] = '\''
				return join(ls)
			},
			wantIndex: k, problem: "event bytes rejected: malformed audit event",
		},
		{
			name: "leaf hash altered",
			export: func() []byte {
				ls := lines(export)
				i := bytes.Index(ls[line(k)], []byte(`"leaf_hash":"`)) + len(`"leaf_hash":"`)
				ls[line(k)][i] ^= 0x01
				return join(ls)
			},
			wantIndex: k, problem: "leaf hash mismatch",
		},
		{
			name: "line deleted",
			export: func() []byte {
				return join(slices.Delete(lines(export), line(k), line(k)+1))
			},
			wantIndex: k, problem: "missing or out of order (next record has index 18)",
		},
		{
			name: "two lines swapped",
			export: func() []byte {
				ls := lines(export)
				ls[line(k)], ls[line(k+1)] = ls[line(k+1)], ls[line(k)]
				return join(ls)
			},
			wantIndex: k, problem: "missing or out of order (next record has index 18)",
		},
		{
			name: "line duplicated",
			export: func() []byte {
				ls := lines(export)
				return join(slices.Insert(ls, line(k+1), ls[line(k)]))
			},
			wantIndex: k, problem: "duplicate or out of order",
		},
		{
			name: "event moved under another line index",
			export: func() []byte {
				ls := lines(export)
				ls[line(k)] = bytes.Replace(ls[line(k+1)], []byte(`{"index":18,`), []byte(`{"index":17,`), 1)
				return join(ls)
			},
			wantIndex: k, problem: "event says index 18, record says 17",
		},
		{
			name: "tail truncated",
			export: func() []byte {
				return join(lines(export)[:line(n-10)])
			},
			wantIndex: n - 10, problem: "export ends after 90 of the checkpoint's 100 leaves (truncated)",
		},
		{
			name: "last line cut short",
			export: func() []byte {
				return export[:len(export)-5]
			},
			wantIndex: n - 1, problem: "export line 101: no newline at the end (export cut short)",
		},
		{
			name: "last newline missing",
			export: func() []byte {
				return export[:len(export)-1]
			},
			wantIndex: n - 1, problem: "no newline at the end",
		},
		{
			name: "garbage line",
			export: func() []byte {
				ls := lines(export)
				ls[line(k)] = []byte("hello, auditor\n")
				return join(ls)
			},
			wantIndex: k, problem: `export line 19: does not start with {"index":`,
		},
		{
			name: "blank line",
			export: func() []byte {
				ls := lines(export)
				return join(slices.Insert(ls, line(k), []byte("\n")))
			},
			wantIndex: k, problem: `export line 19: does not start with {"index":`,
		},
		{
			name: "CRLF line ends",
			export: func() []byte {
				ls := lines(export)
				return append(ls[0], bytes.ReplaceAll(join(ls[1:]), []byte("\n"), []byte("\r\n"))...)
			},
			wantIndex: 0, problem: "export line 2",
		},
		{
			name: "space after a colon",
			export: func() []byte {
				ls := lines(export)
				ls[line(k)] = bytes.Replace(ls[line(k)], []byte(`{"index":17`), []byte(`{"index": 17`), 1)
				return join(ls)
			},
			wantIndex: k, problem: "index is not a non-negative integer",
		},
		{
			name: "event spelled with whitespace",
			export: func() []byte {
				ls := lines(export)
				ls[line(k)] = bytes.Replace(ls[line(k)], []byte(`"event":{`), []byte(`"event": {`), 1)
				return join(ls)
			},
			wantIndex: k, problem: "event bytes rejected: audit event not in canonical form",
		},
		{
			name: "keys reordered",
			export: func() []byte {
				ls := lines(export)
				var m map[string]json.RawMessage
				if err := json.Unmarshal(ls[line(k)], &m); err != nil {
					t.Fatal(err)
				}
				b, _ := json.Marshal(m) // sorted keys
				ls[line(k)] = append(b, '\n')
				return join(ls)
			},
			wantIndex: k, problem: `export line 19: does not start with {"index":`,
		},
		{
			name: "index with leading zero",
			export: func() []byte {
				ls := lines(export)
				ls[line(k)] = bytes.Replace(ls[line(k)], []byte(`{"index":17`), []byte(`{"index":017`), 1)
				return join(ls)
			},
			wantIndex: k, problem: "index is not a non-negative integer",
		},
		{
			name: "hash in unpadded base64",
			export: func() []byte {
				ls := lines(export)
				ls[line(k)] = bytes.Replace(ls[line(k)], []byte(`=","chain_hash"`), []byte(`","chain_hash"`), 1)
				return join(ls)
			},
			wantIndex: k, problem: "export line 19",
		},
		{
			name: "extra key",
			export: func() []byte {
				ls := lines(export)
				ls[line(k)] = bytes.Replace(ls[line(k)], []byte(`"}`+"\n"), []byte(`","x":1}`+"\n"), 1)
				return join(ls)
			},
			wantIndex: k, problem: "export line 19",
		},
		{
			name: "trailing data",
			export: func() []byte {
				return append(slices.Clone(export), `{"index":100}`+"\n"...)
			},
			wantIndex: n, problem: "data after the checkpoint's 100 leaves",
		},
		{
			name: "trailing newline",
			export: func() []byte {
				return append(slices.Clone(export), '\n')
			},
			wantIndex: n, problem: "data after the checkpoint's 100 leaves",
		},
		{
			name: "withheld line whose chain does not link",
			export: func() []byte {
				ls := lines(export)
				i := bytes.Index(ls[line(k+3)], []byte(`"chain_hash":"`)) + len(`"chain_hash":"`)
				ls[line(k+3)][i] ^= 0x01
				return join(ls)
			},
			wantIndex: k + 3, problem: "chain hash mismatch at a withheld event",
		},
		{
			name: "withheld line's leaf hash altered",
			export: func() []byte {
				ls := lines(export)
				i := bytes.Index(ls[line(k+3)], []byte(`"leaf_hash":"`)) + len(`"leaf_hash":"`)
				ls[line(k+3)][i] ^= 0x01
				return join(ls)
			},
			wantIndex: k + 3, problem: "chain hash mismatch at a withheld event",
		},
		{
			name: "event replaced by a withheld line with its hashes",
			export: func() []byte {
				// Hiding an event keeps the chain and the root: allowed,
				// but counted (see TestExportVerifies). Here the reason is
				// not one of the two.
				ls := lines(export)
				r := good[k]
				ls[line(k)] = fmt.Appendf(nil, `{"index":%d,"leaf_hash":"%s","chain_hash":"%s","withheld":"deleted"}`+"\n",
					k, base64.StdEncoding.EncodeToString(r.LeafHash[:]), base64.StdEncoding.EncodeToString(r.ChainHash[:]))
				return join(ls)
			},
			wantIndex: k, problem: `unknown "withheld" reason "deleted"`,
		},
		{
			name: "log rewritten from k, checkpoint not re-signed",
			export: func() []byte {
				forged, _ := exportOf(t, s, rewrite(good, k), nil)
				return append(lines(export)[0], forged[len(lines(forged)[0]):]...)
			},
			wantIndex: n - 1, problem: "Merkle root of the 100 leaves does not match the checkpoint",
		},
		{
			name: "whole log rewritten and re-signed, caught by an older checkpoint",
			export: func() []byte {
				forged, _ := exportOf(t, s, rewrite(good, 0), nil)
				return forged
			},
			opts: func(o audit.ExportOpts) audit.ExportOpts {
				o.Previous = [][]byte{checkpointOf(t, s, good[:50])}
				return o
			},
			wantIndex: 49, problem: "the log was rewritten before index 50: it does not extend a checkpoint seen before (fork)",
		},
		{
			name: "log rewritten after an older checkpoint, re-signed, and the newest checkpoint seen",
			export: func() []byte {
				forged, _ := exportOf(t, s, rewrite(good, 60), nil)
				return forged
			},
			opts: func(o audit.ExportOpts) audit.ExportOpts {
				o.Previous = [][]byte{checkpointOf(t, s, good[:50]), checkpointOf(t, s, good[:70])}
				return o
			},
			wantIndex: 69, problem: "the log was rewritten before index 70",
		},
		{
			name: "log rewritten and re-signed, the same-size checkpoint seen",
			export: func() []byte {
				forged, _ := exportOf(t, s, rewrite(good, 99), nil)
				return forged
			},
			opts: func(o audit.ExportOpts) audit.ExportOpts {
				o.Previous = [][]byte{signed}
				return o
			},
			wantIndex: n - 1, problem: "the log was rewritten before index 100",
		},
		{
			name: "truncated and re-signed, caught by an older checkpoint",
			export: func() []byte {
				forged, _ := exportOf(t, s, good[:80], nil)
				return forged
			},
			opts: func(o audit.ExportOpts) audit.ExportOpts {
				o.Previous = [][]byte{checkpointOf(t, s, good[:50]), signed}
				return o
			},
			wantIndex: 80, problem: "the log is shorter than a checkpoint seen before (size 100): truncated or rolled back",
		},
		{
			name: "truncated and re-signed, caught by the trusted checkpoint",
			export: func() []byte {
				forged, _ := exportOf(t, s, good[:80], nil)
				return forged
			},
			opts: func(o audit.ExportOpts) audit.ExportOpts {
				o.Checkpoint = signed
				return o
			},
			wantIndex: 80, problem: "the log is shorter than a checkpoint seen before (size 100)",
		},
		{
			name: "rewritten and re-signed, against the trusted checkpoint",
			export: func() []byte {
				forged, _ := exportOf(t, s, rewrite(good, 30), nil)
				return forged
			},
			opts: func(o audit.ExportOpts) audit.ExportOpts {
				o.Checkpoint = signed
				return o
			},
			wantIndex: n - 1, problem: "(fork)",
		},
		{
			name: "emptied and re-signed",
			export: func() []byte {
				forged, _ := exportOf(t, s, nil, nil)
				return forged
			},
			opts: func(o audit.ExportOpts) audit.ExportOpts {
				o.Previous = [][]byte{checkpointOf(t, s, good[:1])}
				return o
			},
			wantIndex: 0, problem: "shorter than a checkpoint seen before (size 1)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := o
			if tt.opts != nil {
				opts = tt.opts(o)
			}
			ve := verifyErr(t, tt.export(), opts)
			if ve.Index != tt.wantIndex || !strings.Contains(ve.Problem, tt.problem) {
				t.Errorf("error %q; want index %d and problem containing %q", ve, tt.wantIndex, tt.problem)
			}
		})
	}
	// The untouched export still verifies with all these options.
	if _, err := audit.VerifyExport(bytes.NewReader(export), audit.ExportOpts{
		VerifierKey: vkey, Checkpoint: signed,
		Previous: [][]byte{checkpointOf(t, s, good[:50]), checkpointOf(t, s, good[:70]), signed},
	}); err != nil {
		t.Fatalf("good export: %v", err)
	}
}

// Problems with the checkpoints themselves are errors naming the
// checkpoint, not a leaf.
func TestExportCheckpointErrors(t *testing.T) {
	s, vkey := testKey(t, testOrigin, 1)
	other, otherKey := testKey(t, testOrigin, 2)
	foreignSigner, _ := testKey(t, "other.example/audit", 1)
	good := buildLog(t, 20)
	export, signed := exportOf(t, s, good, nil)
	forgedExport, _ := exportOf(t, other, good, nil)
	foreignExport, _ := exportOf(t, foreignSigner, good, nil)
	ls := lines(export)
	withLine1 := func(l string) []byte { return append([]byte(l), join(ls[1:])...) }
	tests := []struct {
		name   string
		export []byte
		opts   audit.ExportOpts
		want   error
		text   string
	}{
		{"no verifier key", export, audit.ExportOpts{}, audit.ErrVerifierKey, "VerifierKey is empty"},
		{"bad verifier key", export, audit.ExportOpts{VerifierKey: "census"}, audit.ErrVerifierKey, ""},
		{"wrong key", export, audit.ExportOpts{VerifierKey: otherKey}, audit.ErrCheckpointSignature, "line 1"},
		{"signed by an impostor key of the same name", forgedExport, audit.ExportOpts{VerifierKey: vkey}, audit.ErrCheckpointSignature, "line 1"},
		{"export of another log, under its own key", foreignExport, audit.ExportOpts{VerifierKey: vkey}, audit.ErrCheckpointSignature, ""},
		{"empty input", nil, audit.ExportOpts{VerifierKey: vkey}, audit.ErrMalformedExport, "empty input"},
		{"no checkpoint line", join(ls[1:]), audit.ExportOpts{VerifierKey: vkey}, audit.ErrMalformedExport, "line 1"},
		{"CRLF after the checkpoint", append(bytes.TrimSuffix(ls[0], []byte("\n")), "\r\n"...), audit.ExportOpts{VerifierKey: vkey}, audit.ErrMalformedExport, "line 1"},
		{"checkpoint line not JSON", withLine1("checkpoint\n"), audit.ExportOpts{VerifierKey: vkey}, audit.ErrMalformedExport, ""},
		{"checkpoint line with extra key", withLine1(strings.Replace(string(ls[0]), `"}`, `","x":1}`, 1)), audit.ExportOpts{VerifierKey: vkey}, audit.ErrMalformedExport, ""},
		{"checkpoint escaped differently", withLine1(strings.Replace(string(ls[0]), "—", `\u2014`, 1)), audit.ExportOpts{VerifierKey: vkey}, audit.ErrMalformedExport, "canonical"},
		{"checkpoint line cut", []byte(`{"checkpoint":"abc`), audit.ExportOpts{VerifierKey: vkey}, audit.ErrMalformedExport, "line 1"},
		{"checkpoint size altered", withLine1(strings.Replace(string(ls[0]), `\n20\n`, `\n19\n`, 1)), audit.ExportOpts{VerifierKey: vkey}, audit.ErrCheckpointSignature, ""},
		{"trusted checkpoint older than the export", export, audit.ExportOpts{VerifierKey: vkey, Checkpoint: checkpointOf(t, s, good[:10])}, audit.ErrCheckpointMismatch, "pass the trusted checkpoint in Previous"},
		{"trusted checkpoint by another key", export, audit.ExportOpts{VerifierKey: vkey, Checkpoint: checkpointOf(t, other, good)}, audit.ErrCheckpointSignature, "trusted checkpoint"},
		{"previous checkpoint by another key", export, audit.ExportOpts{VerifierKey: vkey, Previous: [][]byte{signed, checkpointOf(t, other, good[:3])}}, audit.ErrCheckpointSignature, "previous checkpoint 1"},
		{"previous checkpoint garbage", export, audit.ExportOpts{VerifierKey: vkey, Previous: [][]byte{[]byte("x")}}, audit.ErrMalformedCheckpoint, "previous checkpoint 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := audit.VerifyExport(bytes.NewReader(tt.export), tt.opts)
			if !errors.Is(err, tt.want) || !strings.Contains(fmt.Sprint(err), tt.text) || res != nil {
				t.Errorf("VerifyExport = %+v, %v; want %v containing %q", res, err, tt.want, tt.text)
			}
		})
	}

	// The origin rule: a checkpoint signed by the right key for another
	// origin is refused even though the signature verifies.
	foreign := signCheckpoint(t, s, audit.Checkpoint{Origin: "other.example/audit", Size: 0, Root: audit.LeafHash(nil)})
	bad := append(append([]byte(`{"checkpoint":`), jsonString(foreign)...), "}\n"...)
	if _, err := audit.VerifyExport(bytes.NewReader(bad), audit.ExportOpts{VerifierKey: vkey}); !errors.Is(err, audit.ErrCheckpointOrigin) {
		t.Errorf("origin mismatch: %v, want ErrCheckpointOrigin", err)
	}
}

// jsonString encodes b as ExportWriter does: no HTML escaping.
func jsonString(b []byte) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(string(b)); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// endless is a reader that never ends and counts what it gave.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	e.n += int64(len(p))
	return len(p), nil
}

// A line longer than any event is refused without reading it all.
func TestExportOversizeLines(t *testing.T) {
	s, vkey := testKey(t, testOrigin, 1)
	good := buildLog(t, 5)
	export, _ := exportOf(t, s, good, nil)
	ls := lines(export)

	// A leaf line of a maximal event is accepted.
	big := logEvent(2)
	big.Reason = strings.Repeat("r", audit.MaxEventSize-600)
	recs := slices.Clone(good)
	r, err := audit.Seal(recs[1].ChainHash, big)
	if err != nil {
		t.Fatal(err)
	}
	recs[2] = r
	reseal(recs, 3)
	bigExport, _ := exportOf(t, s, recs, nil)
	if _, err := audit.VerifyExport(bytes.NewReader(bigExport), audit.ExportOpts{VerifierKey: vkey}); err != nil {
		t.Fatalf("export with a large event: %v", err)
	}

	long := slices.Clone(ls)
	long[3] = append(bytes.Repeat([]byte("x"), audit.MaxEventSize+300), '\n')
	ve := verifyErr(t, join(long), audit.ExportOpts{VerifierKey: vkey})
	if ve.Index != 2 || !strings.Contains(ve.Problem, "export line 4: line longer than") {
		t.Errorf("long line: %v", ve)
	}

	// An endless line after the checkpoint: stops after one buffer.
	src := &endless{}
	_, err = audit.VerifyExport(io.MultiReader(bytes.NewReader(ls[0]), src), audit.ExportOpts{VerifierKey: vkey})
	if !errors.As(err, &ve) || ve.Index != 0 || !strings.Contains(ve.Problem, "longer than") {
		t.Errorf("endless line: %v", err)
	}
	if src.n > 2*audit.MaxEventSize {
		t.Errorf("read %d bytes of an endless line", src.n)
	}
	// And as the first line.
	src = &endless{}
	_, err = audit.VerifyExport(src, audit.ExportOpts{VerifierKey: vkey})
	if !errors.Is(err, audit.ErrMalformedExport) || src.n > 2*audit.MaxEventSize {
		t.Errorf("endless first line: %v after %d bytes", err, src.n)
	}
}

// errReader fails after its data.
type errReader struct {
	data []byte
	err  error
}

func (e *errReader) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, e.err
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, nil
}

func TestExportReadError(t *testing.T) {
	s, vkey := testKey(t, testOrigin, 1)
	export, _ := exportOf(t, s, buildLog(t, 10), nil)
	boom := errors.New("connection reset")
	for _, cut := range []int{0, 10, len(lines(export)[0]) + 7, len(export)} {
		_, err := audit.VerifyExport(&errReader{data: export[:cut], err: boom}, audit.ExportOpts{VerifierKey: vkey})
		if !errors.Is(err, boom) {
			t.Errorf("read error after %d bytes: %v, want it wrapped", cut, err)
		}
	}
}

// Every single-byte change anywhere in a leaf line is caught; inside the
// event and hashes, at that line's index.
func TestExportEveryByteFlip(t *testing.T) {
	const k = 3
	s, vkey := testKey(t, testOrigin, 1)
	export, _ := exportOf(t, s, buildLog(t, k+2), nil)
	ls := lines(export)
	target := ls[k+1]
	eventStart := bytes.Index(target, []byte(`"event":`))
	for i := range target {
		for _, mask := range []byte{0x01, 0x20, 0x80} {
			alt := slices.Clone(ls)
			alt[k+1] = slices.Clone(target)
			alt[k+1][i] ^= mask
			res, err := audit.VerifyExport(bytes.NewReader(join(alt)), audit.ExportOpts{VerifierKey: vkey})
			if err == nil {
				t.Fatalf("byte %d ^ %#x of line %d: verified (%+v)", i, mask, k+2, res)
			}
			var ve *audit.VerifyError
			if i >= eventStart && i < len(target)-1 && (!errors.As(err, &ve) || ve.Index != k) {
				t.Fatalf("byte %d ^ %#x of line %d: %v, want an error at index %d", i, mask, k+2, err, k)
			}
		}
	}
}

func TestExportWriterRefusals(t *testing.T) {
	s, _ := testKey(t, testOrigin, 1)
	recs := buildLog(t, 3)
	signed := checkpointOf(t, s, recs)

	if _, err := audit.NewExportWriter(io.Discard, []byte("not a note")); !errors.Is(err, audit.ErrMalformedCheckpoint) {
		t.Errorf("bad checkpoint: %v", err)
	}
	var buf bytes.Buffer
	x, err := audit.NewExportWriter(&buf, signed)
	if err != nil {
		t.Fatal(err)
	}
	line1 := buf.Len()
	refuse := func(name string, err error) {
		t.Helper()
		if !errors.Is(err, audit.ErrMalformedExport) {
			t.Errorf("%s: %v, want ErrMalformedExport", name, err)
		}
		if buf.Len() != line1 {
			t.Fatalf("%s: refused call wrote %d bytes", name, buf.Len()-line1)
		}
	}
	refuse("index 1 first", x.Event(recs[1]))
	refuse("negative index", x.Withheld(-1, recs[0].LeafHash, recs[0].ChainHash, audit.WithheldPruned))
	refuse("unknown reason", x.Withheld(0, recs[0].LeafHash, recs[0].ChainHash, "deleted"))
	for name, ev := range map[string][]byte{
		"empty event":      nil,
		"not an object":    []byte(`"x"`),
		"two objects":      []byte(`{}{}`),
		"newline in event": []byte("{\n}"),
		"bad JSON":         []byte(`{"a":}`),
		"too large":        append(append([]byte(`{"a":"`), bytes.Repeat([]byte("a"), audit.MaxEventSize)...), `"}`...),
	} {
		r := recs[0]
		r.Event = ev
		refuse(name, x.Event(r))
	}
	refuse("incomplete close", x.Close())
	if err := x.Event(recs[0]); !errors.Is(err, audit.ErrMalformedExport) {
		t.Errorf("Event after Close: %v", err)
	}

	// A damaged but well-formed record is written, not hidden: the
	// auditor's verifier names it.
	buf.Reset()
	x, err = audit.NewExportWriter(&buf, signed)
	if err != nil {
		t.Fatal(err)
	}
	damaged := recs[0]
	damaged.Event = altered(damaged.Event)
	for _, err := range []error{x.Event(damaged), x.Event(recs[1]), x.Withheld(2, recs[2].LeafHash, recs[2].ChainHash, audit.WithheldOutOfScope)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	line3 := buf.Len()
	if err := x.Event(recs[2]); !errors.Is(err, audit.ErrMalformedExport) || buf.Len() != line3 {
		t.Errorf("leaf beyond the checkpoint: %v", err)
	}
	if err := x.Close(); err != nil {
		t.Errorf("complete export: Close = %v", err)
	}

	// A failed Write sticks.
	boom := errors.New("disk full")
	fw := &failWriter{after: 1, err: boom}
	x, err = audit.NewExportWriter(fw, signed)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Event(recs[0]); !errors.Is(err, boom) {
		t.Errorf("write failure: %v", err)
	}
	if err := x.Event(recs[0]); !errors.Is(err, boom) {
		t.Errorf("after write failure: %v", err)
	}
	if err := x.Close(); !errors.Is(err, boom) {
		t.Errorf("Close after write failure: %v", err)
	}
	if _, err := audit.NewExportWriter(&failWriter{err: boom}, signed); !errors.Is(err, boom) {
		t.Errorf("checkpoint line write failure: %v", err)
	}
}

type failWriter struct {
	after int
	err   error
}

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after == 0 {
		return 0, f.err
	}
	f.after--
	return len(p), nil
}

// FuzzVerifyExport checks that VerifyExport never panics, and that an
// export it accepts is exactly what ExportWriter writes for the leaves it
// holds, so an export has one valid byte form.
func FuzzVerifyExport(f *testing.F) {
	s, vkey := testKey(f, testOrigin, 1)
	recs := buildLog(f, 6)
	good, _ := exportOf(f, s, recs, map[int64]audit.WithheldReason{2: audit.WithheldPruned, 4: audit.WithheldOutOfScope})
	empty, _ := exportOf(f, s, nil, nil)
	f.Add(good)
	f.Add(empty)
	f.Add(good[:len(good)-3])
	f.Add(append(slices.Clone(good), '\n'))
	f.Add(bytes.Replace(good, []byte(`"index":3`), []byte(`"index":4`), 1))
	f.Add(bytes.Replace(good, []byte(`"withheld":"pruned"`), []byte(`"withheld":"x"`), 1))
	f.Add([]byte(`{"checkpoint":""}` + "\n"))
	f.Add([]byte("{}\n{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := audit.VerifyExport(bytes.NewReader(b), audit.ExportOpts{VerifierKey: vkey})
		if err != nil {
			if res != nil {
				t.Fatalf("result %+v with error %v", res, err)
			}
			return
		}
		if res.Events+res.Withheld != res.Size || res.Origin != testOrigin {
			t.Fatalf("inconsistent result %+v", res)
		}
		// Rewrite the export from its parsed lines: it must come out
		// byte for byte.
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 2*audit.MaxEventSize)
		if !sc.Scan() {
			t.Fatal("accepted export has no first line")
		}
		var first struct{ Checkpoint string }
		if err := json.Unmarshal(sc.Bytes(), &first); err != nil {
			t.Fatalf("accepted export: line 1: %v", err)
		}
		var out bytes.Buffer
		x, err := audit.NewExportWriter(&out, []byte(first.Checkpoint))
		if err != nil {
			t.Fatal(err)
		}
		for sc.Scan() {
			var l struct {
				Index     int64
				Event     json.RawMessage
				LeafHash  []byte `json:"leaf_hash"`
				ChainHash []byte `json:"chain_hash"`
				Withheld  audit.WithheldReason
			}
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("accepted export: line %q: %v", sc.Bytes(), err)
			}
			if l.Withheld != "" {
				err = x.Withheld(l.Index, [32]byte(l.LeafHash), [32]byte(l.ChainHash), l.Withheld)
			} else {
				err = x.Event(audit.Record{Index: l.Index, Event: l.Event, LeafHash: [32]byte(l.LeafHash), ChainHash: [32]byte(l.ChainHash)})
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), b) {
			t.Fatalf("accepted export\n%q\nrewrites as\n%q", b, out.Bytes())
		}
	})
}

// A long all-withheld export (no event bytes, so cheap to build): Progress
// is called every 65536 lines and with the total at the end.
func TestExportProgress(t *testing.T) {
	const n = 70000
	s, vkey := testKey(t, testOrigin, 1)
	recs := make([]audit.Record, n)
	head := audit.Genesis
	for i := range recs {
		leaf := testLeaf(int64(i))
		head = audit.ChainHash(head, leaf)
		recs[i] = audit.Record{Index: int64(i), LeafHash: leaf, ChainHash: head}
	}
	withheld := make(map[int64]audit.WithheldReason, n)
	for i := range int64(n) {
		withheld[i] = audit.WithheldPruned
	}
	export, _ := exportOf(t, s, recs, withheld)
	var calls []int64
	res, err := audit.VerifyExport(bytes.NewReader(export), audit.ExportOpts{
		VerifierKey: vkey,
		Progress:    func(l int64) { calls = append(calls, l) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Withheld != n || res.Events != 0 || res.Head != head {
		t.Errorf("result %+v", res)
	}
	if !slices.Equal(calls, []int64{65536, n + 1}) {
		t.Errorf("Progress calls %v, want [65536 %d]", calls, n+1)
	}
}
