package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"

	"filippo.io/age"
	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/policy"
)

// matrixExtracts is the authorization matrix of the extract routes
// (TestAuthorizationMatrix, whose subjects and oracle it shares): every
// role × where the extract's area lies relative to the subject's grant,
// with and without a deny below it. The oracle is DESIGN.md's table: a
// processor proposes and downloads extracts of areas wholly in its scope,
// an approver approves them; nobody registers an environment over the
// API (the host operator does): the admin of the whole tree is told
// host_only, everyone else permission_denied. Each answer and each
// request's audit event is checked.
func matrixExtracts(t *testing.T, v *vault, subjects []matrixSubject) {
	ctx := context.Background()
	// The environment, and a proposer and an approver over the whole
	// tree who are not among the subjects.
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.B.AddEnvironment(ctx, broker.HostOperator("cli:test"), broker.NewEnvironment{Name: "matrix", Recipient: id.Recipient().String()}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []broker.NewUser{{Name: "x-proposer", Role: policy.Processor, Area: "VN"}, {Name: "x-approver", Role: policy.Approver, Area: "VN"}} {
		tok, err := v.B.AddUser(ctx, "cli:test", u)
		if err != nil {
			t.Fatal(err)
		}
		v.Tokens[string(u.Name)] = tok.Reveal()
	}
	body := func(a string) string {
		return `{"environment":"matrix","areas":["` + a + `"],"form":"census2019","classes":["analytic"],"purpose":"matrix"}`
	}
	propose := func(t *testing.T, a string) int64 {
		t.Helper()
		r := v.in(t).extractPost("x-proposer", "/v1/extracts", body(a))
		if r.Status != http.StatusCreated {
			t.Fatalf("x-proposer proposes %s: %d %s", a, r.Status, r.Body)
		}
		var x wire.Extract
		r.JSON(t, &x)
		return x.Seq
	}
	checkEvent := func(t *testing.T, ev *audit.Event, action string, allowed bool, what string) {
		t.Helper()
		want := map[bool]string{true: "allow", false: "deny"}[allowed]
		if ev.Action != action || ev.Decision != want {
			t.Errorf("%s: audit event %s/%s (%s), want %s/%s", what, ev.Action, ev.Decision, ev.Rule, action, want)
		}
		if !allowed && ev.Outcome != "denied" {
			t.Errorf("%s: audit event outcome %q, want denied", what, ev.Outcome)
		}
	}
	status := func(allowed bool, ok int) int { return map[bool]int{true: ok, false: http.StatusForbidden}[allowed] }
	// An extract of area a is the subject's when its role may and a's
	// whole subtree is in its scope.
	mayExtract := func(s matrixSubject, route, a string) bool {
		return s.may(route) && s.inScope(a) && !s.coversDenied(a)
	}

	t.Run("extract environments", func(t *testing.T) {
		for _, s := range subjects {
			v := v.in(t)
			allowed := s.may("extract environments")
			var r *response
			ev := v.oneEvent(func() { r = v.get(s.name, "/v1/extracts/environments") })
			if r.Status != status(allowed, 200) || r.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s lists the environments: %d %s", s.name, r.Status, r.Body)
			}
			checkEvent(t, ev, "extract.environment_list", allowed, s.name+" lists the environments")
			allowed = s.may("extract environment add") && s.inScope("VN") && !s.coversDenied("VN")
			code := "permission_denied"
			if s.role == policy.Admin && s.inScope("VN") && !s.coversDenied("VN") {
				code = "host_only"
			}
			ev = v.oneEvent(func() {
				r = v.extractPost(s.name, "/v1/extracts/environments", `{"name":"env-`+s.name+`","recipient":"`+id.Recipient().String()+`"}`)
			})
			if r.Status != status(allowed, 201) || !allowed && r.Code(t) != code {
				t.Errorf("%s registers an environment: %d %s", s.name, r.Status, r.Body)
			}
			checkEvent(t, ev, "extract.environment_add", allowed, s.name+" registers an environment")
		}
	})

	t.Run("extract propose", func(t *testing.T) {
		for _, s := range subjects {
			for _, tg := range matrixTargets {
				v := v.in(t)
				allowed := mayExtract(s, "extract", tg.area)
				var r *response
				ev := v.oneEvent(func() { r = v.extractPost(s.name, "/v1/extracts", body(tg.area)) })
				what := fmt.Sprintf("%s proposes an extract of %s (%s)", s.name, tg.area, tg.rel)
				if r.Status != status(allowed, 201) {
					t.Errorf("%s: %d %s", what, r.Status, r.Body)
					continue
				}
				checkEvent(t, ev, "extract.propose", allowed, what)
				if ev.Area != tg.area || ev.Purpose != "matrix" {
					t.Errorf("%s: event at %q, purpose %q", what, ev.Area, ev.Purpose)
				}
			}
		}
	})

	t.Run("extract approve", func(t *testing.T) {
		for _, s := range subjects {
			for _, tg := range matrixTargets {
				v := v.in(t)
				seq := propose(t, tg.area)
				allowed := mayExtract(s, "extract approve", tg.area)
				var r *response
				ev := v.oneEvent(func() { r = v.extractPost(s.name, fmt.Sprintf("/v1/extracts/%d/approve", seq), "") })
				what := fmt.Sprintf("%s approves an extract of %s (%s)", s.name, tg.area, tg.rel)
				if r.Status != status(allowed, 200) {
					t.Errorf("%s: %d %s", what, r.Status, r.Body)
					continue
				}
				checkEvent(t, ev, "extract.approve", allowed, what)
				if allowed && (ev.Area != tg.area || !slices.Equal(ev.Resources, []string{fmt.Sprintf("extract:%d", seq), "environment:matrix"})) {
					t.Errorf("%s: event at %q, resources %v", what, ev.Area, ev.Resources)
				}
			}
		}
	})

	// One approved extract of each target.
	approved := map[string]int64{}
	for _, tg := range matrixTargets {
		seq := propose(t, tg.area)
		if r := v.in(t).extractPost("x-approver", fmt.Sprintf("/v1/extracts/%d/approve", seq), ""); r.Status != 200 {
			t.Fatalf("x-approver approves %d: %d %s", seq, r.Status, r.Body)
		}
		approved[tg.area] = seq
	}

	t.Run("extract download", func(t *testing.T) {
		for _, s := range subjects {
			for _, tg := range matrixTargets {
				v := v.in(t)
				seq := approved[tg.area]
				allowed := mayExtract(s, "extract", tg.area)
				var r *response
				ev := v.oneEvent(func() { r = v.get(s.name, fmt.Sprintf("/v1/extracts/%d", seq)) })
				what := fmt.Sprintf("%s downloads an extract of %s (%s)", s.name, tg.area, tg.rel)
				if r.Status != status(allowed, 200) || r.Header.Get("Cache-Control") != "no-store" {
					shown := string(r.Body) // an error's JSON, not an age file
					if r.Status == 200 {
						shown = fmt.Sprintf("(%d bytes of age)", len(r.Body))
					}
					t.Errorf("%s: %d %s", what, r.Status, shown)
					continue
				}
				checkEvent(t, ev, "extract.download", allowed, what)
				if !allowed {
					if ev.ReleaseDigest != "" || r.Header.Get(wire.HeaderExtractSHA256) != "" {
						t.Errorf("%s: refused with a digest", what)
					}
					continue
				}
				dec, err := age.Decrypt(bytes.NewReader(r.Body), id)
				if err != nil {
					t.Errorf("%s: %v", what, err)
					continue
				}
				plain, err := io.ReadAll(dec)
				if err != nil {
					t.Errorf("%s: %v", what, err)
					continue
				}
				sum := sha256.Sum256(plain)
				if hex.EncodeToString(sum[:]) != r.Header.Get(wire.HeaderExtractSHA256) || ev.ReleaseDigest != "sha256:"+hex.EncodeToString(sum[:]) || ev.Area != tg.area {
					t.Errorf("%s: plaintext sha256 %x, header %s, event %s at %s", what, sum, r.Header.Get(wire.HeaderExtractSHA256), ev.ReleaseDigest, ev.Area)
				}
			}
		}
	})

	t.Run("extract list", func(t *testing.T) {
		for _, s := range subjects {
			v := v.in(t)
			allowed := s.may("extract list")
			var r *response
			ev := v.oneEvent(func() { r = v.get(s.name, "/v1/extracts") })
			if r.Status != status(allowed, 200) {
				t.Errorf("%s lists the extracts: %d %s", s.name, r.Status, r.Body)
				continue
			}
			checkEvent(t, ev, "extract.list", allowed, s.name+" lists the extracts")
			if !allowed {
				continue
			}
			var l wire.ExtractList
			r.JSON(t, &l)
			listed := map[int64]bool{}
			for _, x := range l.Extracts {
				listed[x.Seq] = true
			}
			for _, tg := range matrixTargets {
				role := map[policy.Role]string{policy.Processor: "extract", policy.Approver: "extract approve"}[s.role]
				if want := mayExtract(s, role, tg.area); listed[approved[tg.area]] != want {
					t.Errorf("%s lists the extract of %s (%s): %v, want %v", s.name, tg.area, tg.rel, listed[approved[tg.area]], want)
				}
			}
		}
	})
}
