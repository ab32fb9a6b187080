package audit_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/audit"
)

func TestRoundTrip(t *testing.T) {
	many := make([]string, 500)
	for i := range many {
		many[i] = "submission:" + strings.Repeat("ab", i%40)
	}
	events := map[string]*audit.Event{
		"known answer": katEvent(),
		"zero":         {},
		"log event":    logEvent(3),
		"denied research": {
			Index: audit.MaxIndex, Time: time.Date(2019, 6, 1, 0, 0, 0, 1, time.UTC),
			Actor: "user:researcher7", Roles: []string{"researcher"}, Action: "aggregate.table",
			Area: "42", Resources: []string{"project:p-2019-17"}, Decision: "deny",
			Rule: "p, researcher, 42, aggregate.table, deny", Reason: "budget exhausted",
			Purpose: "Nghiên cứu di cư \"nội tỉnh\"\n(2019)", PolicyHash: "sha256:00",
			Outcome: "denied", ReleaseDigest: "",
		},
		"release": {
			Index: 1, Time: time.Date(2019, 6, 1, 0, 0, 0, 0, ict), Actor: "cli:root",
			Action: "aggregate.table", Decision: "allow", Outcome: "ok",
			ReleaseDigest: "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
			Resources:     many,
		},
		"control and unicode": {Actor: "\x00\x01\x1f\x7f\u2028🙂Phường Bắc Hồng\\\"/"},
		"table release":       releaseEvent(),
		"version 2":           katV2Event(),
		"version 2 release": func() *audit.Event {
			e := releaseEvent()
			e.Nonce = []byte("0123456789abcdef")
			return e
		}(),
		"release log event": logEvent(4),
		"request only":      {Request: "x"},
		"request with escapes": {
			Action: "table.request", Request: "{\"purpose\":\"di cư \\\"nội tỉnh\\\"\\n\",\"k\":[1,2]}\n\x00\u2028",
		},
	}
	for name, e := range events {
		t.Run(name, func(t *testing.T) {
			b, err := e.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			d, err := audit.Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			want := *e
			want.Time = e.Time.UTC()
			if len(want.Roles) == 0 {
				want.Roles = nil
			}
			if len(want.Resources) == 0 {
				want.Resources = nil
			}
			if !reflect.DeepEqual(d, &want) {
				t.Errorf("Decode(Encode(e)) = %+v\nwant %+v", d, &want)
			}
			b2, err := d.Encode()
			if err != nil || !bytes.Equal(b, b2) {
				t.Errorf("re-encode differs: %s, %v", b2, err)
			}
		})
	}
}

// swap returns katBytes with old replaced by new exactly once.
func swap(t *testing.T, old, new string) string {
	t.Helper()
	if strings.Count(katBytes, old) != 1 {
		t.Fatalf("test bug: %q occurs %d times in katBytes", old, strings.Count(katBytes, old))
	}
	return strings.Replace(katBytes, old, new, 1)
}

// swap2 is swap on katV2Bytes, the version-2 known answer.
func swap2(t *testing.T, old, new string) string {
	t.Helper()
	if strings.Count(katV2Bytes, old) != 1 {
		t.Fatalf("test bug: %q occurs %d times in katV2Bytes", old, strings.Count(katV2Bytes, old))
	}
	return strings.Replace(katV2Bytes, old, new, 1)
}

func TestDecodeRejects(t *testing.T) {
	malformed, version, canonical, tooLarge := audit.ErrMalformed, audit.ErrVersion, audit.ErrNotCanonical, audit.ErrTooLarge
	tests := []struct {
		name string
		in   string
		want error
	}{
		// Not an object.
		{"empty input", "", malformed},
		{"null", "null", malformed},
		{"array", "[]", malformed},
		{"string", `"x"`, malformed},
		{"empty object", "{}", malformed},
		{"trailing comma", swap(t, `,"v":1}`, `,"v":1,}`), malformed},
		{"trailing data", katBytes + "x", malformed},
		{"two objects", katBytes + "{}", malformed},
		{"byte order mark", "\ufeff" + katBytes, malformed},
		{"missing colon", swap(t, `"reason":""`, `"reason"""`), malformed},
		{"single quotes", swap(t, `"reason":""`, `'reason':''`), malformed},
		// Keys.
		{"missing key", swap(t, `"reason":"",`, ``), malformed},
		{"missing v", swap(t, `,"v":1}`, `}`), malformed},
		{"unknown key", swap(t, `{"action"`, `{"acting":"x","action"`), malformed},
		{"unknown key that sorts last", swap(t, `,"v":1}`, `,"v":1,"z":""}`), malformed},
		{"key differs in case", swap(t, `"rule"`, `"Rule"`), malformed},
		{"duplicate key", swap(t, `{"action":"submission.deposit"`, `{"action":"x","action":"submission.deposit"`), malformed},
		{"duplicate key via escape", swap(t, `{"action":"submission.deposit"`, `{"\u0061ction":"x","action":"submission.deposit"`), malformed},
		{"duplicate v same value", swap(t, `,"v":1}`, `,"v":1,"v":1}`), malformed},
		// Types.
		{"index as string", swap(t, `"index":17`, `"index":"17"`), malformed},
		{"index null", swap(t, `"index":17`, `"index":null`), malformed},
		{"index fraction", swap(t, `"index":17`, `"index":17.0`), malformed},
		{"index exponent", swap(t, `"index":17`, `"index":1.7e1`), malformed},
		{"index leading zero", swap(t, `"index":17`, `"index":017`), malformed},
		{"index plus sign", swap(t, `"index":17`, `"index":+17`), malformed},
		{"index negative", swap(t, `"index":17`, `"index":-1`), malformed},
		{"index 2^53", swap(t, `"index":17`, `"index":9007199254740992`), malformed},
		{"index overflows int64", swap(t, `"index":17`, `"index":99999999999999999999`), malformed},
		{"index bare minus", swap(t, `"index":17`, `"index":-`), malformed},
		{"actor number", swap(t, `"actor":"user:alice"`, `"actor":1`), malformed},
		{"actor null", swap(t, `"actor":"user:alice"`, `"actor":null`), malformed},
		{"actor boolean", swap(t, `"actor":"user:alice"`, `"actor":true`), malformed},
		{"actor object", swap(t, `"actor":"user:alice"`, `"actor":{}`), malformed},
		{"actor array", swap(t, `"actor":"user:alice"`, `"actor":["user:alice"]`), malformed},
		{"roles string", swap(t, `"roles":["enumerator","team_leader"]`, `"roles":"enumerator"`), malformed},
		{"roles null", swap(t, `"roles":["enumerator","team_leader"]`, `"roles":null`), malformed},
		{"roles number element", swap(t, `"roles":["enumerator","team_leader"]`, `"roles":[1]`), malformed},
		{"roles null element", swap(t, `"roles":["enumerator","team_leader"]`, `"roles":[null]`), malformed},
		{"roles nested", swap(t, `"roles":["enumerator","team_leader"]`, `"roles":[["enumerator"]]`), malformed},
		{"roles trailing comma", swap(t, `"roles":["enumerator","team_leader"]`, `"roles":["enumerator",]`), malformed},
		{"roles unclosed", swap(t, `"roles":["enumerator","team_leader"]`, `"roles":["enumerator"`), malformed},
		{"time number", swap(t, `"time":"2019-04-01T07:30:00.12Z"`, `"time":1554103800`), malformed},
		{"v string", swap(t, `"v":1`, `"v":"1"`), malformed},
		{"v fraction", swap(t, `"v":1`, `"v":1.0`), malformed},
		// Time.
		{"time with space", swap(t, `2019-04-01T07:30:00.12Z`, `2019-04-01 07:30:00.12Z`), malformed},
		{"time without zone", swap(t, `2019-04-01T07:30:00.12Z`, `2019-04-01T07:30:00.12`), malformed},
		{"time offset", swap(t, `2019-04-01T07:30:00.12Z`, `2019-04-01T14:30:00.12+07:00`), malformed},
		{"time Feb 30", swap(t, `2019-04-01T07:30:00.12Z`, `2019-02-30T07:30:00.12Z`), malformed},
		{"time hour 24", swap(t, `2019-04-01T07:30:00.12Z`, `2019-04-01T24:00:00Z`), malformed},
		{"time leap second", swap(t, `2019-04-01T07:30:00.12Z`, `2016-12-31T23:59:60Z`), malformed},
		{"time date only", swap(t, `2019-04-01T07:30:00.12Z`, `2019-04-01`), malformed},
		{"time empty", swap(t, `2019-04-01T07:30:00.12Z`, ``), malformed},
		{"time garbage", swap(t, `2019-04-01T07:30:00.12Z`, `yesterday`), malformed},
		// Version.
		{"v 0", swap(t, `"v":1`, `"v":0`), version},
		{"v 3", swap(t, `"v":1`, `"v":3`), version},
		{"v 3 with a nonce", swap2(t, `"v":2`, `"v":3`), version},
		// Nonce: in version 2 always, 16 bytes as lowercase hex; never in
		// version 1.
		{"v 2 without nonce", swap(t, `"v":1`, `"v":2`), malformed},
		{"v 2 nonce removed", swap2(t, `"nonce":"000102030405060708090a0b0c0d0e0f",`, ``), malformed},
		{"v 1 with nonce", swap2(t, `"v":2`, `"v":1`), malformed},
		{"nonce empty", swap2(t, `"000102030405060708090a0b0c0d0e0f"`, `""`), malformed},
		{"nonce 15 bytes", swap2(t, `0e0f"`, `0e"`), malformed},
		{"nonce 17 bytes", swap2(t, `0e0f"`, `0e0f10"`), malformed},
		{"nonce odd digits", swap2(t, `0e0f"`, `0e0"`), malformed},
		{"nonce not hex", swap2(t, `0e0f"`, `0e0g"`), malformed},
		{"nonce base64", swap2(t, `"000102030405060708090a0b0c0d0e0f"`, `"AAECAwQFBgcICQoLDA0ODw=="`), malformed},
		{"nonce number", swap2(t, `"000102030405060708090a0b0c0d0e0f"`, `1`), malformed},
		{"nonce null", swap2(t, `"000102030405060708090a0b0c0d0e0f"`, `null`), malformed},
		{"nonce array", swap2(t, `"000102030405060708090a0b0c0d0e0f"`, `[]`), malformed},
		{"nonce duplicate", swap2(t, `"nonce":"000102030405060708090a0b0c0d0e0f",`, `"nonce":"000102030405060708090a0b0c0d0e0f","nonce":"000102030405060708090a0b0c0d0e0f",`), malformed},
		{"nonce upper-case hex", swap2(t, `0a0b0c0d0e0f`, `0A0B0C0D0E0F`), canonical},
		{"nonce out of order", swap2(t, `"index":17,"nonce":"000102030405060708090a0b0c0d0e0f",`, `"nonce":"000102030405060708090a0b0c0d0e0f","index":17,`), canonical},
		{"nonce escaped", swap2(t, `"000102030405060708090a0b0c0d0e0f"`, `"\u003000102030405060708090a0b0c0d0e0f"`), canonical},
		// Strings.
		{"invalid UTF-8", swap(t, "alice", "al\xffce"), malformed},
		{"invalid UTF-8 beside an escape", swap(t, "alice", `al\n\xffce`), malformed},
		{"UTF-8 of a surrogate", swap(t, "alice", "al\xed\xa0\x80ce"), malformed},
		{"raw newline", swap(t, "alice", "ali\nce"), malformed},
		{"raw NUL", swap(t, "alice", "ali\x00ce"), malformed},
		{"lone high surrogate", swap(t, "alice", `al\ud83dce`), malformed},
		{"high surrogate then BMP", swap(t, "alice", `al\ud83d\u0041ce`), malformed},
		{"lone low surrogate", swap(t, "alice", `al\ude42ce`), malformed},
		{"bad escape", swap(t, "alice", `al\xce`), malformed},
		{"short \\u escape", swap(t, `"reason":""`, `"reason":"\u12"`), malformed},
		{"non-hex \\u escape", swap(t, "alice", `al\u00g1ce`), malformed},
		{"unterminated string", katBytes[:strings.Index(katBytes, "alice")+3], malformed},
		// Well-formed but not canonical.
		{"space after colon", swap(t, `"action":"`, `"action": "`), canonical},
		{"leading whitespace", " " + katBytes, canonical},
		{"trailing newline", katBytes + "\n", canonical},
		{"space in array", swap(t, `["enumerator","team_leader"]`, `[ "enumerator", "team_leader" ]`), canonical},
		{"keys out of order", swap(t, `{"action":"submission.deposit","actor":"user:alice"`, `{"actor":"user:alice","action":"submission.deposit"`), canonical},
		{"unneeded \\u escape", swap(t, "user:alice", `user\u003aalice`), canonical},
		{"escaped solidus", swap(t, `"reason":""`, `"reason":"\/"`), canonical},
		{"escaped non-ASCII", swap(t, `"reason":""`, `"reason":"\u00e9"`), canonical},
		{"escaped emoji pair", swap(t, `"reason":""`, `"reason":"\ud83d\ude42"`), canonical},
		{"\\u000a for newline", swap(t, `"reason":""`, `"reason":"\u000a"`), canonical},
		{"uppercase hex", swap(t, `"reason":""`, `"reason":"\u001F"`), canonical},
		{"minus zero", strings.Replace(zeroBytes, `"index":0`, `"index":-0`, 1), canonical},
		{"time trailing zero", swap(t, `07:30:00.12Z`, `07:30:00.120Z`), canonical},
		{"time zero fraction", swap(t, `07:30:00.12Z`, `07:30:00.000Z`), canonical},
		{"time comma fraction", swap(t, `07:30:00.12Z`, `07:30:00,12Z`), canonical},
		// Request: optional, but a string and not empty when present.
		{"request empty", swap(t, `"release_digest":"",`, `"release_digest":"","request":"",`), canonical},
		{"request number", swap(t, `"release_digest":"",`, `"release_digest":"","request":1,`), malformed},
		{"request null", swap(t, `"release_digest":"",`, `"release_digest":"","request":null,`), malformed},
		{"request object", swap(t, `"release_digest":"",`, `"release_digest":"","request":{"as_of":1},`), malformed},
		{"request array", swap(t, `"release_digest":"",`, `"release_digest":"","request":["x"],`), malformed},
		{"request boolean", swap(t, `"release_digest":"",`, `"release_digest":"","request":false,`), malformed},
		{"request duplicate", swap(t, `"release_digest":"",`, `"release_digest":"","request":"x","request":"x",`), malformed},
		{"request empty then malformed", swap(t, `"release_digest":"",`, `"release_digest":"","request":"","index":1,`), malformed},
		{"request key escaped", swap(t, `"release_digest":"",`, `"release_digest":"","re\u0071uest":"x",`), canonical},
		{"request out of order", swap(t, `"rule":`, `"request":"x","rule":`), canonical},
		{"request first", swap(t, `{"action":`, `{"request":"x","action":`), canonical},
		{"request unneeded escape", swap(t, `"release_digest":"",`, `"release_digest":"","request":"\u0078",`), canonical},
		{"request key without value", swap(t, `"release_digest":"",`, `"release_digest":"","request",`), malformed},
		// Size.
		{"too large", katBytes + strings.Repeat(" ", audit.MaxEventSize+1-len(katBytes)), tooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := audit.Decode([]byte(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode(%q) = %+v, %v; want %v", tt.in, e, err, tt.want)
			}
			if e != nil {
				t.Errorf("Decode returned an event with error %v", err)
			}
			for _, other := range []error{malformed, version, canonical, tooLarge} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("error %v also matches %v", err, other)
				}
			}
		})
	}
}

// TestDecodeRequest checks that "request" decodes when present and
// non-empty, and that events without it (all events written before the
// key existed) decode as before.
func TestDecodeRequest(t *testing.T) {
	e, err := audit.Decode([]byte(releaseBytes))
	if err != nil {
		t.Fatalf("Decode(releaseBytes): %v", err)
	}
	if want := releaseEvent().Request; e.Request != want {
		t.Errorf("Request = %q, want %q", e.Request, want)
	}
	for _, b := range []string{katBytes, zeroBytes} {
		e, err := audit.Decode([]byte(b))
		if err != nil || e.Request != "" {
			t.Errorf("Decode(%.40s…) = Request %q, %v; want no request", b, e.Request, err)
		}
	}
	// An empty request names the key and the fix, not just a byte offset.
	_, err = audit.Decode([]byte(strings.Replace(katBytes, `"release_digest":"",`, `"release_digest":"","request":"",`, 1)))
	if !errors.Is(err, audit.ErrNotCanonical) || !strings.Contains(err.Error(), `"request" is empty`) {
		t.Errorf("empty request: %v", err)
	}
}

func TestDecodeEveryPrefixFails(t *testing.T) {
	for n := range len(katBytes) {
		if _, err := audit.Decode([]byte(katBytes[:n])); !errors.Is(err, audit.ErrMalformed) {
			t.Errorf("Decode(katBytes[:%d]) error %v, want ErrMalformed", n, err)
		}
	}
	if _, err := audit.Decode([]byte(katBytes)); err != nil {
		t.Errorf("Decode(katBytes): %v", err)
	}
	for n := range len(releaseBytes) {
		if _, err := audit.Decode([]byte(releaseBytes[:n])); !errors.Is(err, audit.ErrMalformed) {
			t.Errorf("Decode(releaseBytes[:%d]) error %v, want ErrMalformed", n, err)
		}
	}
}

func TestDecodeSizeBoundaries(t *testing.T) {
	for _, n := range []int{audit.MaxEventSize - 1, audit.MaxEventSize, audit.MaxEventSize + 1} {
		// Canonical bytes of length n, built by hand past the limit where
		// Encode refuses.
		in := swap(t, `"reason":""`, `"reason":"`+strings.Repeat("x", n-len(katBytes))+`"`)
		_, err := audit.Decode([]byte(in))
		if n <= audit.MaxEventSize && err != nil {
			t.Errorf("size %d: Decode: %v", n, err)
		}
		if n > audit.MaxEventSize && !errors.Is(err, audit.ErrTooLarge) {
			t.Errorf("size %d: Decode error %v, want ErrTooLarge", n, err)
		}
	}
}

// Errors quote untrusted input only in short pieces.
func TestDecodeErrorsAreBounded(t *testing.T) {
	long := strings.Repeat("k", 10000)
	for _, in := range []string{
		swap(t, `{"action"`, `{"`+long+`":"","action"`),
		swap(t, `2019-04-01T07:30:00.12Z`, long),
	} {
		_, err := audit.Decode([]byte(in))
		if err == nil || len(err.Error()) > 200 {
			t.Errorf("Decode error = %.300v (len %d), want an error under 200 bytes", err, len(err.Error()))
		}
	}
}
