package audit_test

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/censusvault/censusvault/audit"
)

// ict is Viet Nam's offset, fixed so tests need no tz database.
var ict = time.FixedZone("ICT", 7*3600)

// katEvent is the known-answer event; its bytes are written out by hand in
// katBytes.
func katEvent() *audit.Event {
	return &audit.Event{
		Index:      17,
		Time:       time.Date(2019, 4, 1, 14, 30, 0, 120000000, ict),
		Actor:      "user:alice",
		Roles:      []string{"enumerator", "team_leader"},
		Action:     "submission.deposit",
		Area:       "42.436.18001",
		Resources:  []string{"submission:0b7e6a4c-2f5e-4d1a-9c3b-8a1f2e3d4c5b"},
		Decision:   "allow",
		Rule:       "p, team_leader, 42.436, submission.deposit, allow",
		Purpose:    "census enumeration",
		PolicyHash: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Outcome:    "ok",
	}
}

const katBytes = `{"action":"submission.deposit","actor":"user:alice","area":"42.436.18001","decision":"allow","index":17,"outcome":"ok","policy_hash":"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","purpose":"census enumeration","reason":"","release_digest":"","resources":["submission:0b7e6a4c-2f5e-4d1a-9c3b-8a1f2e3d4c5b"],"roles":["enumerator","team_leader"],"rule":"p, team_leader, 42.436, submission.deposit, allow","time":"2019-04-01T07:30:00.12Z","v":1}`

// katV2Event is the known-answer event as version 2: katEvent with a
// nonce (here a fixed one; the broker draws each from crypto/rand). Its
// bytes, written out by hand in katV2Bytes, are katBytes with "nonce"
// between "index" and "outcome" (JCS order) and "v":2.
func katV2Event() *audit.Event {
	e := katEvent()
	e.Nonce = []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	return e
}

const katV2Bytes = `{"action":"submission.deposit","actor":"user:alice","area":"42.436.18001","decision":"allow","index":17,"nonce":"000102030405060708090a0b0c0d0e0f","outcome":"ok","policy_hash":"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","purpose":"census enumeration","reason":"","release_digest":"","resources":["submission:0b7e6a4c-2f5e-4d1a-9c3b-8a1f2e3d4c5b"],"roles":["enumerator","team_leader"],"rule":"p, team_leader, 42.436, submission.deposit, allow","time":"2019-04-01T07:30:00.12Z","v":2}`

// zeroBytes is the encoding of the zero Event: every key present, empty
// strings and arrays, never null.
const zeroBytes = `{"action":"","actor":"","area":"","decision":"","index":0,"outcome":"","policy_hash":"","purpose":"","reason":"","release_digest":"","resources":[],"roles":[],"rule":"","time":"0001-01-01T00:00:00Z","v":1}`

// logEvent is the i-th event of a synthetic log: a mix of allowed deposits,
// denied reads and table releases (which carry a request), as the broker
// would write them, and of version-1 events (even i) and version-2 ones
// (odd i, with a nonce fixed by i), as in a log written across the
// upgrade that introduced nonces.
func logEvent(i int64) *audit.Event {
	e := &audit.Event{
		Index:      i,
		Time:       time.Date(2019, 4, 1, 7, 0, 0, 0, time.UTC).Add(time.Duration(i) * 1500 * time.Millisecond),
		Actor:      fmt.Sprintf("user:enum%04d", i%150),
		Roles:      []string{"enumerator"},
		Action:     "submission.deposit",
		Area:       fmt.Sprintf("42.436.%05d", 18001+i%40),
		Resources:  []string{fmt.Sprintf("submission:00000000-0000-4000-8000-%012d", i)},
		Decision:   "allow",
		Rule:       "p, enumerator, 42.436, submission.deposit, allow",
		PolicyHash: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Outcome:    "ok",
	}
	if i%2 == 1 {
		e.Nonce = make([]byte, audit.NonceSize)
		binary.BigEndian.PutUint64(e.Nonce[8:], uint64(i)*0x9e3779b97f4a7c15)
	}
	switch {
	case i%7 == 3:
		e.Action, e.Decision, e.Outcome = "submission.view", "deny", "denied"
		e.Rule, e.Reason = "", "no grant for area"
	case i%9 == 4:
		e.Actor, e.Roles, e.Action = fmt.Sprintf("user:res%04d", i%20), []string{"researcher"}, "table.request"
		e.Resources = []string{"project:p-2019-17"}
		e.Rule = "grant researcher@42 project p-2019-17; p, researcher, table.request, allow"
		e.Purpose = "internal migration"
		e.ReleaseDigest = fmt.Sprintf("sha256:%064x", i)
		e.Request = fmt.Sprintf(`{"area":"42","as_of":%d,"cols":["sex"],"min_cell":10,"rows":["age5"]}`, 1000+i)
	}
	return e
}

// releaseEvent is the known-answer table release; its bytes are written
// out by hand in releaseBytes.
func releaseEvent() *audit.Event {
	return &audit.Event{
		Index:         42,
		Time:          time.Date(2019, 6, 1, 9, 0, 0, 0, time.UTC),
		Actor:         "user:res7",
		Roles:         []string{"researcher"},
		Action:        "table.request",
		Area:          "42",
		Resources:     []string{"project:p-2019-17"},
		Decision:      "allow",
		Rule:          "grant researcher@42 project p-2019-17; p, researcher, table.request, allow",
		Purpose:       "internal migration",
		PolicyHash:    "sha256:00",
		Outcome:       "ok",
		ReleaseDigest: "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		Request:       `{"area":"42","as_of":1000,"cols":["sex"],"min_cell":10,"rows":["age5"]}`,
	}
}

const releaseBytes = `{"action":"table.request","actor":"user:res7","area":"42","decision":"allow","index":42,"outcome":"ok","policy_hash":"sha256:00","purpose":"internal migration","reason":"","release_digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","request":"{\"area\":\"42\",\"as_of\":1000,\"cols\":[\"sex\"],\"min_cell\":10,\"rows\":[\"age5\"]}","resources":["project:p-2019-17"],"roles":["researcher"],"rule":"grant researcher@42 project p-2019-17; p, researcher, table.request, allow","time":"2019-06-01T09:00:00Z","v":1}`

// buildLog seals n events into a chain from Genesis.
func buildLog(tb testing.TB, n int) []audit.Record {
	tb.Helper()
	recs := make([]audit.Record, 0, n)
	prev := audit.Genesis
	for i := range int64(n) {
		r, err := audit.Seal(prev, logEvent(i))
		if err != nil {
			tb.Fatalf("Seal(%d): %v", i, err)
		}
		recs = append(recs, r)
		prev = r.ChainHash
	}
	return recs
}
