package main_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestServeRateLimitFlags: serve's limits come from its flags, and values
// that would silently mean something else are refused.
func TestServeRateLimitFlags(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	tok := addUser(t, dir, "tl", "team_leader", "18070")
	for _, bad := range [][]string{{"--user-rate", "0"}, {"--refusal-rate", "NaN"}, {"--auth-fail-burst", "0"}} {
		r := cv(t, append([]string{"serve", "--data", dir, "--addr", "127.0.0.1:0"}, bad...)...)
		if r.code != 2 || !strings.Contains(r.stderr, strings.TrimPrefix(bad[0], "--")) {
			t.Errorf("serve %s: %s; want exit 2 naming the flag", strings.Join(bad, " "), r)
		}
	}
	// One token per 1,000 s: the burst of 3, then 429 whatever the
	// machine's speed.
	s := startServer(t, dir, "--user-rate", "0.001", "--user-burst", "3")
	defer s.stop(t)
	var got []int
	for range 4 {
		st, body := s.do(t, http.MethodGet, "/v1/progress?area=18070", tok, nil)
		got = append(got, st)
		if st == http.StatusTooManyRequests && !strings.Contains(body, `"rate_limited"`) {
			t.Errorf("429 body %s, want code rate_limited", body)
		}
	}
	if want := []int{200, 200, 200, 429}; !slices.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
}
