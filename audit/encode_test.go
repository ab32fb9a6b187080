package audit_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/audit"
)

func mustHex(t *testing.T, s string) [32]byte {
	t.Helper()
	var h [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		t.Fatalf("bad test hex %q", s)
	}
	copy(h[:], b)
	return h
}

// The hashes below were computed outside Go, from the literal bytes:
//
//	leaf:  (printf '\x00'; printf '%s' "$event") | sha256sum
//	chain: (head -c 32 /dev/zero; printf '%s' $leaf | xxd -r -p) | sha256sum
func TestEncodeKnownAnswer(t *testing.T) {
	tests := []struct {
		name      string
		event     *audit.Event
		want      string
		leaf      string
		chainFrom string // chain hash from Genesis
	}{
		{
			name:      "deposit",
			event:     katEvent(),
			want:      katBytes,
			leaf:      "db38908b7e3a3dcd9303553bbc216975cd751ec0c10cc61bb3ff25fee151f1fb",
			chainFrom: "ae97fcd0a26d31e72c6f12c52d00bb5314ab6434734777f77fd6e8e161d62e24",
		},
		{
			// "request" sits between "release_digest" and "resources",
			// its JSON carried as an escaped string.
			name:      "table release with request",
			event:     releaseEvent(),
			want:      releaseBytes,
			leaf:      "44eb9e0d2982c438a085c29df1356343a6c9acfe0d1bbf7d1d51268794c1f232",
			chainFrom: "d39db525ceb7f3a0e68f717853932683b8135802c728e9239c05ff5ee9d46518",
		},
		{
			// Version 2: the deposit with a nonce, the bytes every new
			// event has; version 1 above keeps its bytes and hashes.
			name:      "deposit, version 2 with nonce",
			event:     katV2Event(),
			want:      katV2Bytes,
			leaf:      "4ecc68cb91a63a0a49aed38320151b95270d3a5e5820dcdef0c325bfafb2851c",
			chainFrom: "48cd99e88cc470903c2f4908e6c7d0f57dab0e2bdc93784b68b96ebcb4db66d8",
		},
		{
			name:      "zero event",
			event:     &audit.Event{},
			want:      zeroBytes,
			leaf:      "ecebc4cbc46b00538998de97942eaf251d00b3d30d92456ce110c1400dd02190",
			chainFrom: "5fae478a028a200c9ceea810ca2d22b1a52e25d487d9b0c328fbb74ff6aaea9b",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.event.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if string(got) != tt.want {
				t.Fatalf("Encode:\n got %s\nwant %s", got, tt.want)
			}
			leaf := audit.LeafHash(got)
			if leaf != mustHex(t, tt.leaf) {
				t.Errorf("LeafHash = %x, want %s", leaf, tt.leaf)
			}
			chain := audit.ChainHash(audit.Genesis, leaf)
			if chain != mustHex(t, tt.chainFrom) {
				t.Errorf("ChainHash = %x, want %s", chain, tt.chainFrom)
			}
			r, err := audit.Seal(audit.Genesis, tt.event)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if r.Index != tt.event.Index || string(r.Event) != tt.want || r.LeafHash != leaf || r.ChainHash != chain {
				t.Errorf("Seal = %+v, want index %d, the bytes above, leaf %x, chain %x", r, tt.event.Index, leaf, chain)
			}
		})
	}
}

func TestChainHashKnownAnswer(t *testing.T) {
	// The zero event chained after the deposit event:
	// (printf '%s' $chainOfDeposit $leafOfZero | xxd -r -p) | sha256sum
	prev := mustHex(t, "ae97fcd0a26d31e72c6f12c52d00bb5314ab6434734777f77fd6e8e161d62e24")
	r, err := audit.Seal(prev, &audit.Event{})
	if err != nil {
		t.Fatal(err)
	}
	if want := mustHex(t, "ffa7a08741384ce5b1d85760a64c280a923ecd1457d240b5e77cac32b4eca318"); r.ChainHash != want {
		t.Errorf("ChainHash = %x, want %x", r.ChainHash, want)
	}
	if audit.Genesis != [32]byte{} {
		t.Errorf("Genesis = %x, want 32 zero bytes", audit.Genesis)
	}
}

func TestEncodeEscaping(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "user:alice", `"user:alice"`},
		{"empty", "", `""`},
		{"quote", `say "hi"`, `"say \"hi\""`},
		{"backslash", `a\b`, `"a\\b"`},
		{"solidus not escaped", "a/b", `"a/b"`},
		{"backspace", "\b", `"\b"`},
		{"tab", "\t", `"\t"`},
		{"newline", "\n", `"\n"`},
		{"form feed", "\f", `"\f"`},
		{"carriage return", "\r", `"\r"`},
		{"NUL", "\x00", `"\u0000"`},
		{"U+0001", "\x01", `"\u0001"`},
		{"vertical tab", "\x0b", `"\u000b"`},
		{"U+001F lowercase hex", "\x1f", `"\u001f"`},
		{"space, first unescaped", " ", `" "`},
		{"DEL literal", "\x7f", "\"\x7f\""},
		{"html chars literal", "<a>&amp;</a>", `"<a>&amp;</a>"`},
		{"U+2028 literal", "a\u2028b", "\"a\u2028b\""},
		{"U+2029 literal", "a\u2029b", "\"a\u2029b\""},
		{"U+FFFD literal", "\ufffd", "\"\ufffd\""},
		{"emoji literal", "🙂 👨‍👩‍👧", "\"🙂 👨‍👩‍👧\""},
		{"Vietnamese", "Phường Bắc Hồng", `"Phường Bắc Hồng"`},
		{"Vietnamese decomposed stays decomposed", "Ho\u0302\u0300ng", "\"Ho\u0302\u0300ng\""},
		{"mixed", "x\"\\\n\x1fé", `"x\"\\\n\u001fé"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &audit.Event{Actor: tt.in, Roles: []string{tt.in}}
			b, err := e.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if want := `,"actor":` + tt.want + `,"area"`; !bytes.Contains(b, []byte(want)) {
				t.Errorf("Encode = %s\nwant it to contain %s", b, want)
			}
			if want := `,"roles":[` + tt.want + `],"rule"`; !bytes.Contains(b, []byte(want)) {
				t.Errorf("Encode = %s\nwant it to contain %s", b, want)
			}
			d, err := audit.Decode(b)
			if err != nil {
				t.Fatalf("Decode(Encode): %v", err)
			}
			if d.Actor != tt.in || len(d.Roles) != 1 || d.Roles[0] != tt.in {
				t.Errorf("Decode(Encode) actor %q roles %q, want %q", d.Actor, d.Roles, tt.in)
			}
		})
	}
}

func TestEncodeRejectsInvalidUTF8(t *testing.T) {
	bad := []string{"\xff", "al\xffce", "\xc3", "\xed\xa0\x80" /* UTF-8 of a surrogate */, "\xc0\xaf" /* overlong '/' */}
	fields := map[string]func(e *audit.Event, s string){
		"Actor":         func(e *audit.Event, s string) { e.Actor = s },
		"Action":        func(e *audit.Event, s string) { e.Action = s },
		"Area":          func(e *audit.Event, s string) { e.Area = s },
		"Decision":      func(e *audit.Event, s string) { e.Decision = s },
		"Rule":          func(e *audit.Event, s string) { e.Rule = s },
		"Reason":        func(e *audit.Event, s string) { e.Reason = s },
		"Purpose":       func(e *audit.Event, s string) { e.Purpose = s },
		"PolicyHash":    func(e *audit.Event, s string) { e.PolicyHash = s },
		"Outcome":       func(e *audit.Event, s string) { e.Outcome = s },
		"ReleaseDigest": func(e *audit.Event, s string) { e.ReleaseDigest = s },
		"Request":       func(e *audit.Event, s string) { e.Request = s },
		"Roles[1]":      func(e *audit.Event, s string) { e.Roles = []string{"ok", s} },
		"Resources[0]":  func(e *audit.Event, s string) { e.Resources = []string{s} },
	}
	for name, set := range fields {
		for _, s := range bad {
			e := katEvent()
			set(e, s)
			if _, err := e.Encode(); !errors.Is(err, audit.ErrInvalidEvent) {
				t.Errorf("%s = %q: Encode error %v, want ErrInvalidEvent", name, s, err)
			}
			if _, err := audit.Seal(audit.Genesis, e); !errors.Is(err, audit.ErrInvalidEvent) {
				t.Errorf("%s = %q: Seal error %v, want ErrInvalidEvent", name, s, err)
			}
		}
	}
}

func TestEncodeIndexBoundaries(t *testing.T) {
	tests := []struct {
		index int64
		ok    bool
	}{
		{math.MinInt64, false},
		{-1, false},
		{0, true},
		{1, true},
		{audit.MaxIndex - 1, true},
		{audit.MaxIndex, true},
		{audit.MaxIndex + 1, false},
		{math.MaxInt64, false},
	}
	for _, tt := range tests {
		e := katEvent()
		e.Index = tt.index
		b, err := e.Encode()
		if !tt.ok {
			if !errors.Is(err, audit.ErrInvalidEvent) {
				t.Errorf("index %d: Encode error %v, want ErrInvalidEvent", tt.index, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("index %d: Encode: %v", tt.index, err)
			continue
		}
		if want := `,"index":` + strconv.FormatInt(tt.index, 10) + `,`; !bytes.Contains(b, []byte(want)) {
			t.Errorf("index %d: Encode = %s, want %s", tt.index, b, want)
		}
		if d, err := audit.Decode(b); err != nil || d.Index != tt.index {
			t.Errorf("index %d: Decode = %v, %v", tt.index, d, err)
		}
	}
}

func TestEncodeTime(t *testing.T) {
	tests := []struct {
		name string
		in   time.Time
		want string // "" means Encode must fail
	}{
		{"whole seconds", time.Date(2019, 4, 1, 7, 30, 0, 0, time.UTC), "2019-04-01T07:30:00Z"},
		{"one nanosecond", time.Date(2019, 4, 1, 7, 30, 0, 1, time.UTC), "2019-04-01T07:30:00.000000001Z"},
		{"trailing zeros trimmed", time.Date(2019, 4, 1, 7, 30, 0, 120000000, time.UTC), "2019-04-01T07:30:00.12Z"},
		{"all nine digits", time.Date(2019, 4, 1, 7, 30, 0, 999999999, time.UTC), "2019-04-01T07:30:00.999999999Z"},
		{"converted to UTC", time.Date(2019, 4, 1, 6, 59, 59, 0, ict), "2019-03-31T23:59:59Z"},
		{"zero time", time.Time{}, "0001-01-01T00:00:00Z"},
		{"year 0", time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), "0000-01-01T00:00:00Z"},
		{"year -1", time.Date(-1, 12, 31, 23, 59, 59, 0, time.UTC), ""},
		{"last representable", time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), "9999-12-31T23:59:59.999999999Z"},
		{"year 10000", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), ""},
		{"year 10000 only in UTC", time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("", -5*3600)), ""},
		{"leap day", time.Date(2020, 2, 29, 12, 0, 0, 0, time.UTC), "2020-02-29T12:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := katEvent()
			e.Time = tt.in
			b, err := e.Encode()
			if tt.want == "" {
				if !errors.Is(err, audit.ErrInvalidEvent) {
					t.Fatalf("Encode error %v, want ErrInvalidEvent", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if want := `,"time":"` + tt.want + `","v":1}`; !bytes.HasSuffix(b, []byte(want)) {
				t.Fatalf("Encode = %s, want suffix %s", b, want)
			}
			d, err := audit.Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !d.Time.Equal(tt.in) || d.Time.Location() != time.UTC {
				t.Errorf("Decode time = %v, want %v in UTC", d.Time, tt.in)
			}
		})
	}
}

// TestEncodeRequestOptional checks that "request" appears only when
// Request is set, so events from before the key keep their bytes.
func TestEncodeRequestOptional(t *testing.T) {
	for name, e := range map[string]*audit.Event{"known answer": katEvent(), "zero": {}, "log event": logEvent(3)} {
		b, err := e.Encode()
		if err != nil {
			t.Fatalf("%s: Encode: %v", name, err)
		}
		if bytes.Contains(b, []byte(`"request"`)) {
			t.Errorf("%s: event without a request encodes the key: %s", name, b)
		}
		e.Request = `{"as_of":1}`
		withReq, err := e.Encode()
		if err != nil {
			t.Fatalf("%s: Encode with request: %v", name, err)
		}
		want := bytes.Replace(b, []byte(`,"resources":`), []byte(`,"request":"{\"as_of\":1}","resources":`), 1)
		if !bytes.Equal(withReq, want) {
			t.Errorf("%s: with request\n got %s\nwant %s", name, withReq, want)
		}
	}
}

func TestEncodeEmptyAndNilSlicesAgree(t *testing.T) {
	a, errA := (&audit.Event{Roles: nil, Resources: nil}).Encode()
	b, errB := (&audit.Event{Roles: []string{}, Resources: []string{}}).Encode()
	if errA != nil || errB != nil || !bytes.Equal(a, b) || string(a) != zeroBytes {
		t.Errorf("nil slices: %s (%v)\nempty slices: %s (%v)\nwant %s", a, errA, b, errB, zeroBytes)
	}
}

// eventOfSize returns an event whose encoding is exactly n bytes long.
func eventOfSize(t *testing.T, n int) *audit.Event {
	t.Helper()
	e := katEvent()
	base, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	e.Reason = strings.Repeat("x", n-len(base))
	return e
}

func TestEncodeSizeBoundaries(t *testing.T) {
	for _, n := range []int{audit.MaxEventSize - 1, audit.MaxEventSize, audit.MaxEventSize + 1} {
		e := eventOfSize(t, n)
		b, err := e.Encode()
		if n > audit.MaxEventSize {
			if !errors.Is(err, audit.ErrTooLarge) {
				t.Errorf("size %d: Encode error %v, want ErrTooLarge", n, err)
			}
			continue
		}
		if err != nil || len(b) != n {
			t.Fatalf("size %d: Encode = %d bytes, %v", n, len(b), err)
		}
		if _, err := audit.Decode(b); err != nil {
			t.Errorf("size %d: Decode: %v", n, err)
		}
	}
	// The request counts towards the limit like any other string.
	for _, n := range []int{audit.MaxEventSize, audit.MaxEventSize + 1} {
		e := releaseEvent()
		base, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		e.Request += strings.Repeat("x", n-len(base))
		b, err := e.Encode()
		if n > audit.MaxEventSize {
			if !errors.Is(err, audit.ErrTooLarge) {
				t.Errorf("request, size %d: Encode error %v, want ErrTooLarge", n, err)
			}
			continue
		}
		if err != nil || len(b) != n {
			t.Fatalf("request, size %d: Encode = %d bytes, %v", n, len(b), err)
		}
		if d, err := audit.Decode(b); err != nil || d.Request != e.Request {
			t.Errorf("request, size %d: Decode: %v", n, err)
		}
	}
	// A request far over the limit is refused by the early size check.
	huge := releaseEvent()
	huge.Request = strings.Repeat("x", audit.MaxEventSize)
	if _, err := huge.Encode(); !errors.Is(err, audit.ErrTooLarge) {
		t.Errorf("huge request: Encode error %v, want ErrTooLarge", err)
	}
	// Escapes count towards the limit: 2^16 NULs become 6×2^16 bytes.
	e := katEvent()
	e.Reason = strings.Repeat("\x00", 1<<16)
	if _, err := e.Encode(); !errors.Is(err, audit.ErrTooLarge) {
		t.Errorf("escaped reason: Encode error %v, want ErrTooLarge", err)
	}
}

// TestEncodeNonce checks that a nonce makes an event version 2, with
// "nonce" in its JCS place, and that without one an event keeps its
// version-1 bytes exactly.
func TestEncodeNonce(t *testing.T) {
	for name, e := range map[string]*audit.Event{"known answer": katEvent(), "zero": {}, "release": releaseEvent(), "log event": logEvent(4)} {
		v1, err := e.Encode()
		if err != nil {
			t.Fatalf("%s: Encode: %v", name, err)
		}
		if bytes.Contains(v1, []byte(`"nonce"`)) || !bytes.HasSuffix(v1, []byte(`,"v":1}`)) {
			t.Errorf("%s: event without a nonce is not version 1: %s", name, v1)
		}
		e.Nonce = bytes.Repeat([]byte{0xab}, audit.NonceSize)
		v2, err := e.Encode()
		if err != nil {
			t.Fatalf("%s: Encode with nonce: %v", name, err)
		}
		want := bytes.Replace(v1, []byte(`,"outcome":`), []byte(`,"nonce":"`+strings.Repeat("ab", audit.NonceSize)+`","outcome":`), 1)
		want = bytes.Replace(want, []byte(`,"v":1}`), []byte(`,"v":2}`), 1)
		if !bytes.Equal(v2, want) {
			t.Errorf("%s: with nonce\n got %s\nwant %s", name, v2, want)
		}
		d, err := audit.Decode(v2)
		if err != nil || !bytes.Equal(d.Nonce, e.Nonce) {
			t.Errorf("%s: Decode(version 2) nonce %x, %v", name, d.Nonce, err)
		}
	}
	// Any other length is refused, an empty non-nil one included: a
	// version-2 event always carries 16 bytes.
	for _, n := range []int{0, 1, audit.NonceSize - 1, audit.NonceSize + 1, 32} {
		e := katEvent()
		e.Nonce = make([]byte, n)
		if _, err := e.Encode(); !errors.Is(err, audit.ErrInvalidEvent) {
			t.Errorf("nonce of %d bytes: Encode error %v, want ErrInvalidEvent", n, err)
		}
	}
	// The size limit holds for version 2 too.
	for _, n := range []int{audit.MaxEventSize, audit.MaxEventSize + 1} {
		e := katV2Event()
		base, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		e.Reason = strings.Repeat("x", n-len(base))
		b, err := e.Encode()
		if n > audit.MaxEventSize {
			if !errors.Is(err, audit.ErrTooLarge) {
				t.Errorf("version 2, size %d: Encode error %v, want ErrTooLarge", n, err)
			}
			continue
		}
		if err != nil || len(b) != n {
			t.Fatalf("version 2, size %d: Encode = %d bytes, %v", n, len(b), err)
		}
		if _, err := audit.Decode(b); err != nil {
			t.Errorf("version 2, size %d: Decode: %v", n, err)
		}
	}
}

func TestNewNonce(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		n, err := audit.NewNonce()
		if err != nil {
			t.Fatal(err)
		}
		if len(n) != audit.NonceSize {
			t.Fatalf("NewNonce: %d bytes, want %d", len(n), audit.NonceSize)
		}
		if seen[string(n)] {
			t.Fatalf("NewNonce repeated %x", n)
		}
		seen[string(n)] = true
	}
}
