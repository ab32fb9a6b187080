package policy_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/censusvault/censusvault/policy"
)

// FuzzPolicy checks that any policy text New accepts has a canonical form
// that New accepts again with the same hash: the canonical text is a fixed
// point, so the audit log's policy hash cannot drift between a policy and
// its own normalization.
func FuzzPolicy(f *testing.F) {
	f.Add([]byte(policy.DefaultPolicy()))
	f.Fuzz(func(t *testing.T, text []byte) {
		e, err := policy.New(policy.Options{Policy: string(text)})
		if err != nil {
			return
		}
		canon := e.Canonical()
		i := bytes.Index(canon, []byte("\n[policy]\n"))
		if i < 0 {
			t.Fatalf("canonical text has no policy section:\n%s", canon)
		}
		again, err := policy.New(policy.Options{Policy: string(canon[i+len("\n[policy]\n"):])})
		if err != nil {
			t.Fatalf("canonical policy rejected: %v\n%s", err, canon)
		}
		if again.Hash() != e.Hash() {
			t.Fatalf("hash changed after canonicalization:\n%s\nvs\n%s", canon, again.Canonical())
		}
	})
}

// FuzzAllowProject checks the meaning of Grant.Project on any input: a
// grant for another project than the request's changes nothing at all
// (same answer, rule and roles as without it), and a grant for the
// request's project decides as the same grant without a project would.
func FuzzAllowProject(f *testing.F) {
	f.Add("p1", "p1", uint8(4), false, uint8(0), uint8(3), uint8(6))
	f.Add("p1", "p2", uint8(4), false, uint8(0), uint8(3), uint8(6))
	f.Add("p1", "", uint8(4), true, uint8(2), uint8(3), uint8(6))
	f.Add("p2", "p2", uint8(6), false, uint8(1), uint8(4), uint8(6))
	f.Add("p2", "p1", uint8(5), false, uint8(0), uint8(0), uint8(4))
	f.Add("di cư, 2019", "di cư, 2019", uint8(4), true, uint8(3), uint8(3), uint8(6))
	e, err := policy.New(policy.Options{})
	if err != nil {
		f.Fatal(err)
	}
	roles, actions := policy.Roles(), policy.Actions()
	areas := []string{"VN", "42", "436", "18070", "18070-001", "437"}
	paths := [][]string{
		{"VN"}, {"VN", "42"}, {"VN", "42", "436"}, {"VN", "42", "436", "18070", "18070-001"},
		{"VN", "42", "437", "18100"}, {"VN", "44"},
	}
	// Other grants the user holds, some project-scoped.
	base := []policy.Grant{
		{Role: policy.Researcher, Area: "VN", Project: "p1"},
		{Role: policy.Supervisor, Area: "42"},
		{Role: policy.Researcher, Area: "437", Project: "p2"},
	}
	f.Fuzz(func(t *testing.T, grantProject, reqProject string, role uint8, deny bool, area, path, action uint8) {
		if grantProject == "" {
			return
		}
		g := policy.Grant{
			Role: roles[int(role)%len(roles)], Area: areas[int(area)%len(areas)],
			Deny: deny, Project: grantProject,
		}
		a := actions[int(action)%len(actions)]
		r := policy.Resource{Path: paths[int(path)%len(paths)], Project: reqProject}
		ctx := context.Background()
		with, err := e.Allow(ctx, policy.Subject{User: "u", Grants: append(slices.Clone(base), g)}, a, r)
		switch {
		case len(reqProject) > policy.MaxProjectLen:
			if !errors.Is(err, policy.ErrInvalidResource) || with.Allow {
				t.Fatalf("long request project: %+v, %v", with, err)
			}
			return
		case len(grantProject) > policy.MaxProjectLen:
			if !errors.Is(err, policy.ErrInvalidSubject) || with.Allow {
				t.Fatalf("long grant project: %+v, %v", with, err)
			}
			return
		case err != nil:
			t.Fatal(err)
		}
		other := slices.Clone(base)
		if grantProject == reqProject {
			g.Project = ""
			other = append(other, g)
		}
		want, err := e.Allow(ctx, policy.Subject{User: "u", Grants: other}, a, r)
		if err != nil {
			t.Fatal(err)
		}
		if with.Allow != want.Allow || !slices.Equal(with.Roles, want.Roles) {
			t.Fatalf("grant %+v, request %q %s %v: got %+v, want %+v", g, reqProject, a, r.Path, with, want)
		}
		if grantProject != reqProject && with.Rule != want.Rule {
			t.Fatalf("ignored grant %+v changed the rule: %q, want %q", g, with.Rule, want.Rule)
		}
	})
}
