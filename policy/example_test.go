package policy_test

import (
	"context"
	"fmt"

	"github.com/censusvault/censusvault/policy"
)

func ExampleEngine_Allow() {
	engine, err := policy.New(policy.Options{}) // default model and policy
	if err != nil {
		panic(err)
	}
	// The broker loads the subject's grants from its store and the
	// target's path (root first) from the area tree.
	alice := policy.Subject{User: "alice", Grants: []policy.Grant{
		{Role: policy.TeamLeader, Area: "18070"},
	}}
	ea := policy.Resource{Path: []string{"VN", "42", "436", "18070", "18070-001"}}
	sibling := policy.Resource{Path: []string{"VN", "42", "436", "18073", "18073-001"}}

	for _, r := range []policy.Resource{ea, sibling} {
		d, err := engine.Allow(context.Background(), alice, policy.Deposit, r)
		if err != nil {
			panic(err)
		}
		fmt.Println(d.Allow, d.Rule)
	}
	// Output:
	// true grant team_leader@18070; p, enumerator, submission.deposit, allow
	// false no grant covers 18073-001 for submission.deposit
}

func ExamplePolicyHash() {
	engine, err := policy.New(policy.Options{})
	if err != nil {
		panic(err)
	}
	// The broker digests the sorted GrantLine of every grant in force...
	line := policy.GrantLine("alice", policy.Grant{Role: policy.TeamLeader, Area: "18070"})
	fmt.Println(line)
	// ...and records this hash in every audit event.
	h := policy.PolicyHash(engine.Hash(), "hex digest of the sorted grant lines")
	fmt.Println(len(h))
	// Output:
	// grant, alice, team_leader, 18070, allow
	// 64
}
