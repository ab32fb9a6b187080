package httpapi_test

import (
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/client"
)

// watchTransport passes requests to the real server and notes when each
// was sent and what came back; on a 429 it moves the vault's clock by the
// Retry-After asked for, so the server's bucket is refilled exactly when
// a client that obeys comes back.
type watchTransport struct {
	base  http.RoundTripper
	clock *clock
	mu    sync.Mutex
	sent  []time.Time
	codes []int
	after []time.Duration
}

func (w *watchTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	w.mu.Lock()
	w.sent = append(w.sent, time.Now())
	w.mu.Unlock()
	resp, err := w.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	var ra time.Duration
	if resp.StatusCode == http.StatusTooManyRequests {
		d, perr := time.ParseDuration(resp.Header.Get("Retry-After") + "s")
		if perr == nil {
			ra = d
			w.clock.Advance(d)
		}
	}
	w.mu.Lock()
	w.codes = append(w.codes, resp.StatusCode)
	w.after = append(w.after, ra)
	w.mu.Unlock()
	return resp, nil
}

// An enumerator's device flushing its outbox into its rate limit: the
// client takes the 429 as temporary and comes back after the Retry-After
// the vault asked for, not after its own 100 ms backoff (which would be
// refused again, and again, until the retries run out).
func TestClientObeysRetryAfter(t *testing.T) {
	t.Parallel()
	lim := broker.DefaultLimits()
	lim.UserRate, lim.UserBurst = 0.5, 1 // one request, then one every 2 s
	v := newVault(t, vaultOpts{limits: lim})
	wt := &watchTransport{base: v.Server.Client().Transport, clock: v.Clock}
	c, err := client.New(client.Opts{BaseURL: v.URL, Token: v.Tokens["enum-a1"], HTTP: &http.Client{Transport: wt}})
	if err != nil {
		t.Fatal(err)
	}
	c.Retries = 3
	ctx := t.Context()
	if _, err := c.Deposit(ctx, v.seal(encode(t, household(eaA1, 1)))); err != nil {
		t.Fatal(err)
	}
	res, err := c.Deposit(ctx, v.seal(encode(t, household(eaA1, 2))))
	if err != nil {
		var se *client.StatusError
		errors.As(err, &se)
		t.Fatalf("the second deposit failed (%v, %+v): the client gave up on a rate limit; answers %v", err, se, wt.codes)
	}
	if !res.Created {
		t.Fatalf("second deposit not created: %+v", res)
	}
	wt.mu.Lock()
	defer wt.mu.Unlock()
	if len(wt.codes) != 3 || wt.codes[1] != http.StatusTooManyRequests || wt.after[1] < time.Second {
		t.Fatalf("answers %v (Retry-After %v): want 201, 429 with a Retry-After, 201", wt.codes, wt.after)
	}
	if waited := wt.sent[2].Sub(wt.sent[1]); waited < wt.after[1] {
		t.Errorf("the client came back after %v, before the Retry-After of %v", waited, wt.after[1])
	}
}
