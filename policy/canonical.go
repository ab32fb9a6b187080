package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	casbinconst "github.com/casbin/casbin/v2/constant"
	"github.com/casbin/casbin/v2/model"
)

// canonicalHeader versions the canonical text, so that a future change of
// its layout cannot collide with an old hash.
const canonicalHeader = "censusvault policy v1\n"

// modelSections lists the model sections in the order the canonical text
// writes them, with their .conf section names.
var modelSections = [...]struct{ key, name string }{
	{"r", "request_definition"},
	{"p", "policy_definition"},
	{"g", "role_definition"},
	{"e", "policy_effect"},
	{"m", "matchers"},
}

// parseModel parses a Casbin model text and checks it has the shape the
// engine relies on: requests (sub, act), policies (sub, act, eft), an
// optional plain role definition, and the allow-and-deny effect (the only
// Casbin effect in which an explicit deny beats any allow while an allow is
// still required).
func parseModel(text string) (model.Model, error) {
	if len(text) > MaxModelBytes {
		return nil, fmt.Errorf("%w: model is %d bytes, limit %d", ErrInvalidModel, len(text), MaxModelBytes)
	}
	m, err := model.NewModelFromString(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidModel, err)
	}
	for sec, asts := range m {
		if sec == "logger" {
			continue
		}
		for key := range asts {
			if key != sec {
				return nil, fmt.Errorf("%w: only one %q definition is supported, found %q", ErrInvalidModel, sec, key)
			}
		}
	}
	if got := m["r"]["r"].Tokens; len(got) != 2 {
		return nil, fmt.Errorf("%w: request definition must have 2 fields (sub, act), has %d", ErrInvalidModel, len(got))
	}
	if got := m["p"]["p"].Tokens; len(got) != 3 || got[2] != "p_eft" {
		return nil, fmt.Errorf("%w: policy definition must be (sub, act, eft)", ErrInvalidModel)
	}
	if g, ok := m["g"]["g"]; ok {
		if len(g.Tokens) != 2 || len(g.ParamsTokens) != 0 || strings.TrimSpace(g.Tokens[0]) != "_" || strings.TrimSpace(g.Tokens[1]) != "_" {
			return nil, fmt.Errorf("%w: role definition must be g = _, _", ErrInvalidModel)
		}
	}
	if eft := collapseSpace(m["e"]["e"].Value); eft != casbinconst.AllowAndDenyEffect {
		return nil, fmt.Errorf("%w: policy effect must be %q so that deny beats allow", ErrInvalidModel,
			"some(where (p.eft == allow)) && !some(where (p.eft == deny))")
	}
	// Casbin recognizes effects by exact text; hand it the normalized one
	// so that layout never changes what runs.
	m["e"]["e"].Value = casbinconst.AllowAndDenyEffect
	return m, nil
}

// canonicalModel writes the model as Casbin evaluates it: fixed section
// order, comments gone, fields trimmed, runs of white space outside string
// literals collapsed. Matchers and effect keep Casbin's escaped form
// (r_sub for r.sub) because that is the text Casbin runs.
func canonicalModel(buf *bytes.Buffer, m model.Model) {
	for _, s := range modelSections {
		ast, ok := m[s.key][s.key]
		if !ok {
			continue
		}
		var value string
		switch s.key {
		case "r", "p":
			fields := make([]string, len(ast.Tokens))
			for i, t := range ast.Tokens {
				fields[i] = strings.TrimPrefix(t, s.key+"_")
			}
			value = strings.Join(fields, ", ")
		case "g":
			fields := make([]string, len(ast.Tokens))
			for i, t := range ast.Tokens {
				fields[i] = strings.TrimSpace(t)
			}
			value = strings.Join(fields, ", ")
		default:
			value = collapseSpace(ast.Value)
		}
		fmt.Fprintf(buf, "[%s]\n%s = %s\n", s.name, s.key, value)
	}
}

// collapseSpace trims s and turns every run of white space outside a
// quoted literal into one space, so that layout does not change the hash
// while the content of string literals still does.
func collapseSpace(s string) string {
	var b strings.Builder
	var quote rune
	escaped, pending := false, false
	for _, c := range strings.TrimSpace(s) {
		if quote != 0 {
			b.WriteRune(c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == quote:
				quote = 0
			}
			continue
		}
		if unicode.IsSpace(c) {
			pending = true
			continue
		}
		if pending {
			b.WriteByte(' ')
			pending = false
		}
		if c == '"' || c == '\'' || c == '`' {
			quote = c
		}
		b.WriteRune(c)
	}
	return b.String()
}

// policyRules is a parsed, validated, deduplicated and sorted policy.
type policyRules struct {
	p [][]string // role, action, allow|deny
	g [][]string // role, inherited role
}

// parsePolicy reads Casbin policy CSV: one rule per line, fields separated
// by commas, '#' starting a comment. Every rule must name known roles and
// actions; duplicate rules collapse, and the order of lines does not
// matter, which is what makes the canonical text (and the hash) stable.
func parsePolicy(text string) (policyRules, error) {
	var rules policyRules
	if len(text) > MaxPolicyBytes {
		return rules, fmt.Errorf("%w: policy is %d bytes, limit %d", ErrInvalidPolicy, len(text), MaxPolicyBytes)
	}
	seen := make(map[string]bool)
	for n, line := range strings.Split(text, "\n") {
		lineNo := n + 1
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		fields := strings.Split(line, ",")
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
			if fields[i] == "" {
				return rules, fmt.Errorf("%w: line %d: empty field", ErrInvalidPolicy, lineNo)
			}
		}
		switch fields[0] {
		case "p":
			if len(fields) != 4 {
				return rules, fmt.Errorf("%w: line %d: want \"p, role, action, allow|deny\", got %d fields", ErrInvalidPolicy, lineNo, len(fields))
			}
			if _, err := ParseRole(fields[1]); err != nil {
				return rules, fmt.Errorf("%w: line %d: %w", ErrInvalidPolicy, lineNo, err)
			}
			if _, err := ParseAction(fields[2]); err != nil {
				return rules, fmt.Errorf("%w: line %d: %w", ErrInvalidPolicy, lineNo, err)
			}
			if fields[3] != "allow" && fields[3] != "deny" {
				return rules, fmt.Errorf("%w: line %d: effect %q is neither allow nor deny", ErrInvalidPolicy, lineNo, truncate(fields[3]))
			}
		case "g":
			if len(fields) != 3 {
				return rules, fmt.Errorf("%w: line %d: want \"g, role, inherited_role\", got %d fields", ErrInvalidPolicy, lineNo, len(fields))
			}
			for _, f := range fields[1:] {
				if _, err := ParseRole(f); err != nil {
					return rules, fmt.Errorf("%w: line %d: %w", ErrInvalidPolicy, lineNo, err)
				}
			}
		default:
			return rules, fmt.Errorf("%w: line %d: rule type %q is neither p nor g", ErrInvalidPolicy, lineNo, truncate(fields[0]))
		}
		key := strings.Join(fields, ", ")
		if seen[key] {
			continue
		}
		seen[key] = true
		if fields[0] == "p" {
			rules.p = append(rules.p, fields[1:])
		} else {
			rules.g = append(rules.g, fields[1:])
		}
	}
	if len(rules.p)+len(rules.g) == 0 {
		// A text with only comments is more likely a truncated file than
		// a wish to deny everything.
		return rules, fmt.Errorf("%w: no rules", ErrInvalidPolicy)
	}
	byFields := func(a, b []string) int { return slices.Compare(a, b) }
	slices.SortFunc(rules.p, byFields)
	slices.SortFunc(rules.g, byFields)
	if err := checkAcyclic(rules.g); err != nil {
		return rules, err
	}
	return rules, nil
}

// checkAcyclic rejects role inheritance that loops: a cycle would make
// every role in it hold every other's permissions and denials, which no
// one writes on purpose.
func checkAcyclic(g [][]string) error {
	edges := make(map[string][]string)
	for _, rule := range g {
		edges[rule[0]] = append(edges[rule[0]], rule[1])
	}
	const (
		unvisited = iota
		visiting
		done
	)
	state := make(map[string]int)
	var visit func(r string) error
	visit = func(r string) error {
		switch state[r] {
		case visiting:
			return fmt.Errorf("%w: role inheritance cycle through %q", ErrInvalidPolicy, r)
		case done:
			return nil
		}
		state[r] = visiting
		for _, next := range edges[r] {
			if err := visit(next); err != nil {
				return err
			}
		}
		state[r] = done
		return nil
	}
	for _, r := range allRoles {
		if err := visit(string(r)); err != nil {
			return err
		}
	}
	return nil
}

// canonicalPolicy writes the sorted rules, g before p, one per line.
func canonicalPolicy(buf *bytes.Buffer, rules policyRules) {
	buf.WriteString("[policy]\n")
	for _, r := range rules.g {
		buf.WriteString("g, " + strings.Join(r, ", ") + "\n")
	}
	for _, r := range rules.p {
		buf.WriteString("p, " + strings.Join(r, ", ") + "\n")
	}
}

// GrantLine returns the canonical one-line text of a user's grant, e.g.
// "grant, alice, team_leader, 18070, allow" (or "…, deny" for a deny
// grant). A grant with a project has the project as a sixth field, e.g.
// "grant, bob, researcher, 42, allow, p-2019-17"; a grant without one has
// no sixth field, so its line (and the digest of a user without project
// grants) is the same as before projects existed. The broker hashes the
// sorted lines of all grants into the grants digest given to PolicyHash.
// A field that is empty or holds anything but ASCII letters, digits and
// ._@:/+- is written as a Go-quoted string, so that distinct grants never
// share a line.
func GrantLine(user string, g Grant) string {
	eft := "allow"
	if g.Deny {
		eft = "deny"
	}
	line := "grant, " + lineField(user) + ", " + lineField(string(g.Role)) + ", " + lineField(g.Area) + ", " + eft
	if g.Project != "" {
		line += ", " + lineField(g.Project)
	}
	return line
}

func lineField(s string) string {
	if s == "" {
		return `""`
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		plain := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("._@:/+-", c) >= 0
		if !plain {
			return strconv.Quote(s)
		}
	}
	return s
}

// policyHashDomain separates PolicyHash from every other SHA-256 use.
const policyHashDomain = "censusvault/policy-hash/v1\x00"

// PolicyHash binds the engine (model and role policy, see Engine.Hash) and
// the grants in force into the one hash recorded in every audit event. It
// returns hex(SHA-256(D || len(engineHash) || engineHash || len(grantsDigest)
// || grantsDigest)), where D is the 27 bytes "censusvault/policy-hash/v1"
// followed by a zero byte and each len is 8 bytes big-endian; the lengths
// keep any two distinct inputs from hashing the same bytes.
func PolicyHash(engineHash string, grantsDigest string) string {
	h := sha256.New()
	h.Write([]byte(policyHashDomain))
	var n [8]byte
	for _, s := range [...]string{engineHash, grantsDigest} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil))
}
