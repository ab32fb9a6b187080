package policy_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/censusvault/censusvault/policy"
)

// censusScale is a synthetic country at Viet Nam 2019 scale: ~250,000
// areas and 150,000 field and oversight users.
type censusScale struct {
	parent    map[string]string   // area → parent area ("" for the nation)
	children  map[string][]string // area → child areas
	eas       []string
	users     []string
	grants    map[string][]policy.Grant // user → grants, as the broker's store keeps them
	maxDepth  int
	nAreas    int
	nCommunes int
	nDistrict int
}

func buildCensusScale() *censusScale {
	const (
		provinces            = 63
		districtsPerProvince = 11 // 693 districts
		communes             = 10600
		totalAreas           = 250000
		users                = 150000
	)
	rng := rand.New(rand.NewPCG(2019, 4))
	c := &censusScale{
		parent:   make(map[string]string, totalAreas),
		children: make(map[string][]string, totalAreas/20),
		grants:   make(map[string][]policy.Grant, users),
	}
	add := func(code, parent string) {
		c.parent[code] = parent
		if parent != "" {
			c.children[parent] = append(c.children[parent], code)
		}
	}
	add("VN", "")
	var districts []string
	for p := 1; p <= provinces; p++ {
		pc := fmt.Sprintf("%02d", p)
		add(pc, "VN")
		for d := range districtsPerProvince {
			dc := fmt.Sprintf("%03d", (p-1)*districtsPerProvince+d+1)
			add(dc, pc)
			districts = append(districts, dc)
		}
	}
	var communeCodes []string
	for i := range communes {
		cc := fmt.Sprintf("%05d", i+1)
		add(cc, districts[i*len(districts)/communes])
		communeCodes = append(communeCodes, cc)
	}
	nEAs := totalAreas - 1 - provinces - len(districts) - communes
	c.eas = make([]string, 0, nEAs)
	for i := range nEAs {
		cc := communeCodes[i*communes/nEAs]
		ea := fmt.Sprintf("%s-%03d", cc, len(c.children[cc])+1)
		add(ea, cc)
		c.eas = append(c.eas, ea)
	}
	c.nAreas, c.nCommunes, c.nDistrict = len(c.parent), communes, len(districts)

	// 93 % enumerators at one or two EAs, 6 % team leaders at a commune,
	// 1 % supervisors at a district (some with a second district).
	c.users = make([]string, users)
	for i := range users {
		u := fmt.Sprintf("u%06d", i)
		c.users[i] = u
		var gs []policy.Grant
		switch r := rng.IntN(100); {
		case r < 93:
			gs = append(gs, policy.Grant{Role: policy.Enumerator, Area: c.eas[rng.IntN(len(c.eas))]})
			if rng.IntN(4) == 0 {
				gs = append(gs, policy.Grant{Role: policy.Enumerator, Area: c.eas[rng.IntN(len(c.eas))]})
			}
		case r < 99:
			gs = append(gs, policy.Grant{Role: policy.TeamLeader, Area: communeCodes[rng.IntN(communes)]})
		default:
			gs = append(gs, policy.Grant{Role: policy.Supervisor, Area: districts[rng.IntN(len(districts))]})
			if rng.IntN(2) == 0 {
				gs = append(gs, policy.Grant{Role: policy.Supervisor, Area: districts[rng.IntN(len(districts))]})
			}
		}
		c.grants[u] = gs
	}
	return c
}

// eaUnder picks an EA in area's subtree.
func (c *censusScale) eaUnder(rng *rand.Rand, area string) string {
	for {
		kids := c.children[area]
		if len(kids) == 0 {
			return area
		}
		area = kids[rng.IntN(len(kids))]
	}
}

// path computes the root-first path of code from the parent map, as the
// broker does from its area tree.
func (c *censusScale) path(code string) []string {
	path := make([]string, 0, 8)
	for a := code; a != ""; a = c.parent[a] {
		path = append(path, a)
	}
	slices.Reverse(path)
	return path
}

func BenchmarkAllowCensusScale(b *testing.B) {
	start := time.Now()
	c := buildCensusScale()
	e, err := policy.New(policy.Options{})
	if err != nil {
		b.Fatal(err)
	}
	// Pre-draw the queries so the loop measures the decision, not the
	// random choice: half target an EA inside the user's scope, half any EA.
	type query struct {
		user   string
		target string
		action policy.Action
		inside bool
	}
	rng := rand.New(rand.NewPCG(1, 2))
	queries := make([]query, 1<<16)
	for i := range queries {
		u := c.users[rng.IntN(len(c.users))]
		q := query{user: u, action: policy.Deposit}
		if i%2 == 0 {
			gs := c.grants[u]
			q.target, q.inside = c.eaUnder(rng, gs[rng.IntN(len(gs))].Area), true
		} else {
			q.target = c.eas[rng.IntN(len(c.eas))]
		}
		if i%3 == 0 {
			q.action = policy.ReadProgress
		}
		queries[i] = q
	}
	setup := time.Since(start)
	b.Logf("setup %v: %d areas (%d districts, %d communes, %d EAs), %d users", setup.Round(time.Millisecond),
		c.nAreas, c.nDistrict, c.nCommunes, len(c.eas), len(c.users))

	// Sanity: a query inside scope must be allowed by the grant's role
	// (enumerators, team leaders may deposit; supervisors only read
	// progress).
	for _, q := range queries[:64] {
		d, err := e.Allow(context.Background(), policy.Subject{User: q.user, Grants: c.grants[q.user]}, q.action, policy.Resource{Path: c.path(q.target)})
		if err != nil {
			b.Fatal(err)
		}
		if q.inside && c.grants[q.user][0].Role != policy.Supervisor && !d.Allow {
			b.Fatalf("in-scope query denied: %+v -> %q", q, d.Rule)
		}
	}

	ctx := context.Background()
	allowed, i := 0, 0
	b.ReportAllocs()
	for b.Loop() {
		q := &queries[i&(len(queries)-1)]
		i++
		d, err := e.Allow(ctx, policy.Subject{User: q.user, Grants: c.grants[q.user]}, q.action, policy.Resource{Path: c.path(q.target)})
		if err != nil {
			b.Fatal(err)
		}
		if d.Allow {
			allowed++
		}
	}
	b.ReportMetric(float64(allowed)/float64(i), "allowed/op")
}

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := policy.New(policy.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
