package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/casbin/casbin/v2"
)

//go:embed default_model.conf
var defaultModel string

//go:embed default_policy.csv
var defaultPolicy string

// DefaultModel returns the Casbin model text used when Options.Model is
// empty.
func DefaultModel() string { return defaultModel }

// DefaultPolicy returns the Casbin policy text used when Options.Policy is
// empty.
func DefaultPolicy() string { return defaultPolicy }

// Options configure New.
type Options struct {
	// Model is Casbin model text (.conf syntax); empty means DefaultModel.
	// It must define r = sub, act; p = sub, act, eft; optionally g = _, _;
	// and the effect some(where (p.eft == allow)) && !some(where (p.eft == deny)).
	Model string
	// Policy is Casbin policy CSV (p, role, action, allow|deny and
	// g, role, inherited_role lines, '#' comments allowed); empty means
	// DefaultPolicy.
	Policy string
}

// verdict is Casbin's answer for one (role, action) pair.
type verdict uint8

const (
	none    verdict = iota // no rule matched: the role is not permitted
	allowed                // an allow rule matched and no deny rule did
	denied                 // a deny rule matched
)

// ruling is a verdict with the policy line Casbin reported as matching.
type ruling struct {
	v    verdict
	line string // e.g. "p, enumerator, submission.deposit, allow"; empty for none
}

// Engine answers authorization questions. It is immutable after New and
// safe for concurrent use.
type Engine struct {
	// rulings holds Casbin's answer for every (role, action) pair, asked
	// once in New: both sets are closed and small, so each decision is a
	// few table reads instead of a matcher evaluation per grant.
	rulings [numRoles][numActions]ruling
	// roleSets[mask] lists the names of the roles whose bits are set in
	// mask, sorted, for Decision.Roles.
	roleSets  [1 << numRoles][]string
	canonical []byte
	hash      string
}

// New parses and validates the model and policy, loads them into Casbin,
// and records Casbin's answer for every known role and action.
func New(opts Options) (*Engine, error) {
	modelText, policyText := opts.Model, opts.Policy
	if modelText == "" {
		modelText = defaultModel
	}
	if policyText == "" {
		policyText = defaultPolicy
	}
	m, err := parseModel(modelText)
	if err != nil {
		return nil, err
	}
	rules, err := parsePolicy(policyText)
	if err != nil {
		return nil, err
	}
	if _, ok := m["g"]["g"]; !ok && len(rules.g) > 0 {
		return nil, fmt.Errorf("%w: g rules given but the model has no role definition", ErrInvalidPolicy)
	}

	var canon bytes.Buffer
	canon.WriteString(canonicalHeader)
	canonicalModel(&canon, m)
	canonicalPolicy(&canon, rules)

	// The model is loaded before any rule is added; Casbin's defaults log
	// nothing, and false makes that explicit.
	enf, err := casbin.NewEnforcer(m, false)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidModel, err)
	}
	if len(rules.p) > 0 {
		if _, err := enf.AddPolicies(rules.p); err != nil {
			return nil, fmt.Errorf("%w: failed to load p rules: %v", ErrInvalidPolicy, err)
		}
	}
	if len(rules.g) > 0 {
		if _, err := enf.AddGroupingPolicies(rules.g); err != nil {
			return nil, fmt.Errorf("%w: failed to load g rules: %v", ErrInvalidPolicy, err)
		}
	}

	e := &Engine{canonical: canon.Bytes()}
	sum := sha256.Sum256(e.canonical)
	e.hash = hex.EncodeToString(sum[:])

	for ri, role := range allRoles {
		for ai, action := range allActions {
			ok, explain, err := enf.EnforceEx(string(role), string(action))
			if err != nil {
				return nil, fmt.Errorf("%w: failed to evaluate %s %s: %v", ErrInvalidModel, role, action, err)
			}
			r := ruling{}
			if len(explain) > 0 {
				r.line = "p, " + strings.Join(explain, ", ")
			}
			switch {
			case ok:
				r.v = allowed
			case len(explain) == 3 && explain[2] == "deny":
				r.v = denied
			default:
				// Not allowed and no deny rule matched: the role simply
				// lacks the permission.
				r = ruling{}
			}
			e.rulings[ri][ai] = r
		}
	}

	for mask := range e.roleSets {
		var names []string
		for i, r := range allRoles {
			if mask&(1<<i) != 0 {
				names = append(names, string(r))
			}
		}
		sort.Strings(names)
		e.roleSets[mask] = names
	}
	return e, nil
}

// Hash returns the hex SHA-256 of Canonical: equal for model and policy
// texts that differ only in white space, comments, duplicate lines or line
// order, different when any rule differs.
func (e *Engine) Hash() string { return e.hash }

// Canonical returns the normalized model and policy text that Hash hashes.
// The slice is a copy.
func (e *Engine) Canonical() []byte { return bytes.Clone(e.canonical) }

// Allow decides whether s may perform a at r.
//
// The grants considered are those whose Area is on r.Path (the target or
// one of its ancestors), since a grant covers its area's subtree, and
// whose Project is empty or equal to r.Project; any other grant is
// ignored. If none is considered, the answer is no. Otherwise any explicit deny wins: a grant whose
// role (with inheritance) is denied the action by a policy deny rule, or a
// deny grant whose role would permit it. Failing that, any grant whose
// role is permitted allows. Decision.Rule names the grant and the policy
// line that decided; a project grant is named with its project, e.g.
// "grant researcher@42 project p1; p, researcher, table.request, allow".
//
// The error is non-nil only for malformed input: an unknown action, an
// empty, too deep or malformed path, a too long r.Project, too many
// grants, or a grant with an unknown role, no area or a too long project.
// ctx is not used: the decision does no I/O.
func (e *Engine) Allow(ctx context.Context, s Subject, a Action, r Resource) (Decision, error) {
	if _, ok := actionIndex(a); !ok {
		_, err := ParseAction(string(a))
		return Decision{}, err
	}
	if err := checkPath(r.Path); err != nil {
		return Decision{}, err
	}
	sc, err := e.Scope(s, a, r.Project)
	if err != nil {
		return Decision{}, err
	}
	return sc.At(r.Path)
}

func checkPath(path []string) error {
	if len(path) == 0 {
		return fmt.Errorf("%w: empty area path", ErrInvalidResource)
	}
	if len(path) > MaxPathDepth {
		return fmt.Errorf("%w: area path has %d levels, limit %d", ErrInvalidResource, len(path), MaxPathDepth)
	}
	for i, code := range path {
		if code == "" || len(code) > MaxAreaCodeLen {
			return fmt.Errorf("%w: area %d of the path is empty or longer than %d bytes", ErrInvalidResource, i, MaxAreaCodeLen)
		}
	}
	return nil
}
