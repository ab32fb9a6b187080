package broker

import (
	"context"
	"fmt"

	"github.com/censusvault/censusvault/policy"
)

// scope is where c may perform a (under project, "" for none): policy's
// one scope rule, allowed subtrees minus denied subtrees. Every answer
// about more than one area — tables, audit search and export, progress —
// is decided with it.
func (b *Broker) scope(c *Caller, a policy.Action, project string) (policy.Scope, error) {
	sc, err := b.engineFor(c).Scope(c.subject(), a, project)
	if err != nil {
		return sc, errorf(Internal, err, "policy failed")
	}
	return sc, nil
}

// anyGrantAllows reports whether c may perform a somewhere: the decision
// at the first top of its scope, or, when it has none, why not.
func (b *Broker) anyGrantAllows(ctx context.Context, c *Caller, a policy.Action) policy.Decision {
	return b.anyGrantAllowsFor(ctx, c, a, "")
}

func (b *Broker) anyGrantAllowsFor(ctx context.Context, c *Caller, a policy.Action, project string) policy.Decision {
	none := policy.Decision{Rule: fmt.Sprintf("no grant permits %s", a)}
	if project != "" {
		none.Rule += " for project " + project
	}
	sc, err := b.engineFor(c).Scope(c.subject(), a, project)
	if err != nil {
		return none
	}
	roots := sc.Roots(b.pathOf)
	if len(roots) == 0 {
		// Say why at the first grant's area, if there is one in the tree.
		for _, g := range c.Grants {
			if p := b.pathOf(g.Area); p != nil && (g.Project == "" || g.Project == project) {
				if d, err := sc.At(p); err == nil && d.Rule != "" {
					return d
				}
			}
		}
		return none
	}
	d, err := sc.At(b.pathOf(roots[0]))
	if err != nil {
		return none
	}
	return d
}

// pathOf is the area path of code, root first, for policy's Scope (nil
// for a code that never was an area). A retired EA (areas.go) has its
// path under its commune, so that what was recorded there stays in the
// scope of its commune; a submission is decided at the EA its household
// belongs to now (submissionPath).
func (b *Broker) pathOf(code string) []string {
	return b.tree.geo().All().PathStrings(AreaCode(code))
}

// commonAncestor is the lowest area whose subtree holds every one of
// codes (the root for none): the area an event about all of them is
// recorded at, so that only auditors whose scope covers that whole
// subtree see it.
func (b *Broker) commonAncestor(codes []AreaCode) AreaCode {
	var common []string
	for i, c := range codes {
		p := b.tree.PathStrings(c)
		if i == 0 {
			common = p
			continue
		}
		n := 0
		for n < len(common) && n < len(p) && common[n] == p[n] {
			n++
		}
		common = common[:n]
	}
	if len(common) == 0 {
		return b.tree.Root()
	}
	return AreaCode(common[len(common)-1])
}
