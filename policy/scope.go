package policy

import (
	"fmt"
	"strings"
)

// Scope is where one subject may perform one action: the subtrees of the
// grants that allow it, minus the subtrees of the grants that deny it.
// It is the one scope rule of the vault; every route that answers about
// more than one area (tables, audit search and export, progress, views)
// asks it, and Engine.Allow is Scope(…).At(path).
//
// A Scope answers for one area (At), for a whole subtree (Subtree: the
// area and everything under it must be allowed, so an answer about a
// subtree never includes a denied area, and no answer about a parent
// minus an answer about its allowed children isolates one), and lists
// where the subject's denials are (Denied) so a caller can leave those
// subtrees out of an answer.
//
// Scope never knows the area tree: callers pass area paths (root first),
// and Subtree and Roots ask the caller for the path of a grant's area.
type Scope struct {
	e       *Engine
	grants  []Grant // validated; not copied, so a Scope costs no allocation
	action  Action
	ai      int
	project string
}

// Scope validates s's grants and returns where s may perform a, counting
// only grants without a project or for project. The error is non-nil only
// for malformed input, as for Allow.
func (e *Engine) Scope(s Subject, a Action, project string) (Scope, error) {
	ai, ok := actionIndex(a)
	if !ok {
		_, err := ParseAction(string(a))
		return Scope{}, err
	}
	if len(project) > MaxProjectLen {
		return Scope{}, fmt.Errorf("%w: project name is %d bytes, limit %d", ErrInvalidResource, len(project), MaxProjectLen)
	}
	if len(s.Grants) > MaxGrants {
		return Scope{}, fmt.Errorf("%w: %d grants, limit %d", ErrInvalidSubject, len(s.Grants), MaxGrants)
	}
	for i := range s.Grants {
		g := &s.Grants[i]
		if _, ok := roleIndex(g.Role); !ok {
			_, err := ParseRole(string(g.Role))
			return Scope{}, fmt.Errorf("%w: grant %d: %w", ErrInvalidSubject, i, err)
		}
		if g.Area == "" {
			return Scope{}, fmt.Errorf("%w: grant %d has no area", ErrInvalidSubject, i)
		}
		if len(g.Project) > MaxProjectLen {
			return Scope{}, fmt.Errorf("%w: grant %d: project name is %d bytes, limit %d", ErrInvalidSubject, i, len(g.Project), MaxProjectLen)
		}
	}
	return Scope{e: e, grants: s.Grants, action: a, ai: ai, project: project}, nil
}

// counts reports whether grant g takes part in this scope's decisions.
func (sc *Scope) counts(g *Grant) bool { return g.Project == "" || g.Project == sc.project }

// effect is what one grant does to the scope's action in its subtree.
type effect uint8

const (
	neutral effect = iota // holds a role that neither gives nor forbids the action
	allows
	denies
)

// effectOf returns what g does for the action, and the rule text naming
// it for Decision.Rule.
func (sc *Scope) effectOf(g *Grant) (effect, string) {
	ri, _ := roleIndex(g.Role)
	rl := &sc.e.rulings[ri][sc.ai]
	// Empty for a grant without a project, so the usual rule text costs
	// one concatenation.
	proj := ""
	if g.Project != "" {
		proj = " project " + lineField(g.Project)
	}
	switch {
	case g.Deny && rl.v == allowed:
		return denies, "deny-grant " + string(g.Role) + "@" + g.Area + proj + " revokes " + rl.line
	case g.Deny:
		// Revoking a permission the role does not give changes nothing.
		return neutral, ""
	case rl.v == denied:
		return denies, "grant " + string(g.Role) + "@" + g.Area + proj + "; " + rl.line
	case rl.v == allowed:
		return allows, "grant " + string(g.Role) + "@" + g.Area + proj + "; " + rl.line
	}
	return neutral, ""
}

// At decides the action at the area whose path (root first, the area
// last) is given: the grants on the path count; any that denies wins,
// else any that allows does. It is exactly Engine.Allow.
func (sc *Scope) At(path []string) (Decision, error) {
	if err := checkPath(path); err != nil {
		return Decision{}, err
	}
	// Walk the path root first so that, among several denials or allows,
	// the one granted highest in the tree is reported: that is the grant
	// an operator would look for first.
	var (
		mask      uint
		denyRule  string
		allowRule string
	)
	for _, area := range path {
		for i := range sc.grants {
			g := &sc.grants[i]
			if g.Area != area || !sc.counts(g) {
				// Off the path, or a grant for another project (or
				// for a project when the request is about none).
				continue
			}
			ri, _ := roleIndex(g.Role)
			mask |= 1 << ri
			if denyRule != "" {
				continue // decided; keep collecting roles
			}
			switch eff, rule := sc.effectOf(g); {
			case eff == denies:
				denyRule = rule
			case eff == allows && allowRule == "":
				allowRule = rule
			}
		}
	}

	target := path[len(path)-1]
	if mask == 0 {
		return Decision{Rule: "no grant covers " + target + " for " + string(sc.action)}, nil
	}
	d := Decision{Roles: append([]string(nil), sc.e.roleSets[mask]...)}
	switch {
	case denyRule != "":
		d.Rule = denyRule
	case allowRule != "":
		d.Allow, d.Rule = true, allowRule
	default:
		d.Rule = "role(s) " + strings.Join(d.Roles, ", ") + " not permitted " + string(sc.action)
	}
	return d, nil
}

// Subtree decides the action for the whole subtree of the area whose path
// is given: allowed only if it is allowed at the area (At) and no grant
// denies it anywhere below. pathOf returns the path of an area code, root
// first, or nil for a code not in the tree (such a grant covers nothing).
//
// A table, view or export covering a subtree with a denied area in it is
// refused rather than answered without that area: a restricted answer
// about the parent minus an unrestricted answer about the allowed parts
// would isolate the denied area.
func (sc *Scope) Subtree(path []string, pathOf func(area string) []string) (Decision, error) {
	d, err := sc.At(path)
	if err != nil || !d.Allow {
		return d, err
	}
	target := path[len(path)-1]
	for i := range sc.grants {
		g := &sc.grants[i]
		if !sc.counts(g) || g.Area == target {
			continue
		}
		eff, rule := sc.effectOf(g)
		if eff != denies || !strictlyBelow(pathOf(g.Area), path) {
			continue
		}
		return Decision{Roles: d.Roles, Rule: rule + " below " + target}, nil
	}
	return d, nil
}

// Denied lists the areas at which a grant denies the action (their whole
// subtrees are outside the scope), in grant order, without repeats.
func (sc *Scope) Denied() []string {
	var out []string
	for i := range sc.grants {
		g := &sc.grants[i]
		if !sc.counts(g) {
			continue
		}
		if eff, _ := sc.effectOf(g); eff == denies && !contains(out, g.Area) {
			out = append(out, g.Area)
		}
	}
	return out
}

// Roots lists the areas of the grants that allow the action and are
// themselves allowed (At), in grant order, without repeats: the tops of
// the subtrees the scope covers (with Denied cut out of them). pathOf is
// as for Subtree.
func (sc *Scope) Roots(pathOf func(area string) []string) []string {
	var out []string
	for i := range sc.grants {
		g := &sc.grants[i]
		if !sc.counts(g) || contains(out, g.Area) {
			continue
		}
		if eff, _ := sc.effectOf(g); eff != allows {
			continue
		}
		p := pathOf(g.Area)
		if p == nil {
			continue
		}
		if d, err := sc.At(p); err == nil && d.Allow {
			out = append(out, g.Area)
		}
	}
	return out
}

// strictlyBelow reports whether p is the path of an area strictly inside
// the subtree of the area whose path is anc.
func strictlyBelow(p, anc []string) bool {
	if len(p) <= len(anc) {
		return false
	}
	for i := range anc {
		if p[i] != anc[i] {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
