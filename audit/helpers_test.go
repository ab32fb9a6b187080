package audit_test

import (
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

// zeroBytes is the encoding of the zero Event: every key present, empty
// strings and arrays, never null.
const zeroBytes = `{"action":"","actor":"","area":"","decision":"","index":0,"outcome":"","policy_hash":"","purpose":"","reason":"","release_digest":"","resources":[],"roles":[],"rule":"","time":"0001-01-01T00:00:00Z","v":1}`

// logEvent is the i-th event of a synthetic log: a mix of allowed deposits
// and denied reads, as the broker would write them.
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
	if i%7 == 3 {
		e.Action, e.Decision, e.Outcome = "submission.view", "deny", "denied"
		e.Rule, e.Reason = "", "no grant for area"
	}
	return e
}

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
