package audit_test

import (
	"bytes"
	"fmt"
	"time"

	"github.com/censusvault/censusvault/audit"
)

// The broker seals each event after the previous record's chain hash;
// storage keeps the Record; an auditor later streams the export through a
// Verifier and compares the head with the one the vault published.
func Example() {
	events := []*audit.Event{
		{
			Index: 0, Time: time.Date(2019, 4, 1, 7, 30, 0, 0, time.UTC),
			Actor: "user:alice", Roles: []string{"enumerator"},
			Action: "submission.deposit", Area: "42.436.18001",
			Resources: []string{"submission:0b7e6a4c-2f5e-4d1a-9c3b-8a1f2e3d4c5b"},
			Decision:  "allow", Rule: "p, enumerator, 42.436.18001, submission.deposit, allow",
			PolicyHash: "sha256:9f86d081", Outcome: "ok",
		},
		{
			Index: 1, Time: time.Date(2019, 4, 1, 7, 31, 0, 0, time.UTC),
			Actor: "user:bob", Roles: []string{"researcher"},
			Action: "submission.view", Area: "42.436.18001",
			Resources: []string{"submission:0b7e6a4c-2f5e-4d1a-9c3b-8a1f2e3d4c5b"},
			Decision:  "deny", Reason: "role may not view records",
			PolicyHash: "sha256:9f86d081", Outcome: "denied",
		},
	}

	var log []audit.Record
	head := audit.Genesis
	for _, e := range events {
		r, err := audit.Seal(head, e)
		if err != nil {
			fmt.Println(err)
			return
		}
		log = append(log, r)
		head = r.ChainHash
	}
	fmt.Printf("%s\n", log[1].Event)

	v := audit.NewVerifier()
	for _, r := range log {
		if err := v.Add(r); err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Println("verified:", v.Count(), v.Head() == head)

	// Someone with write access to storage rewrites who made the deposit.
	log[0].Event = bytes.Replace(log[0].Event, []byte("user:alice"), []byte("user:carol"), 1)
	v = audit.NewVerifier()
	for _, r := range log {
		if err := v.Add(r); err != nil {
			fmt.Println(err)
			break
		}
	}
	// Output:
	// {"action":"submission.view","actor":"user:bob","area":"42.436.18001","decision":"deny","index":1,"outcome":"denied","policy_hash":"sha256:9f86d081","purpose":"","reason":"role may not view records","release_digest":"","resources":["submission:0b7e6a4c-2f5e-4d1a-9c3b-8a1f2e3d4c5b"],"roles":["researcher"],"rule":"","time":"2019-04-01T07:31:00Z","v":1}
	// verified: 2 true
	// audit event 0: leaf hash mismatch (event or leaf hash altered)
}

func ExampleDecode() {
	_, err := audit.Decode([]byte(`{"action": "submission.deposit"}`))
	fmt.Println(err)
	_, err = audit.Decode([]byte(`{"action":"","actor":"","area":"","decision":"","index":0,"outcome":"","policy_hash":"","purpose":"","reason":"","release_digest":"","resources":[],"roles":[],"rule":"","time":"2019-04-01T07:30:00.000Z","v":1}`))
	fmt.Println(err)
	// Output:
	// malformed audit event: missing key "actor"
	// audit event not in canonical form: first difference at byte 196
}
