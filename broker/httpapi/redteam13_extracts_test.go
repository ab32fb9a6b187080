package httpapi_test

// The red team's findings on extracts (issue 13) over HTTP: the
// environment an admin would register to its own key, extract numbers
// told apart by the answers, and first passes that pile up or outlive
// their client.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
)

// extractVault13 is a vault with the extract users, an approver of
// commune A, households in both communes, environment "centre" registered
// on the host, and extract 1 of the district, approved.
func extractVault13(t *testing.T, households int) *vault {
	t.Helper()
	v := newVault(t, vaultOpts{})
	v.extractUsers()
	ctx := context.Background()
	tok, err := v.B.AddUser(ctx, "cli:test", broker.NewUser{Name: "approver-a", Role: policy.Approver, Area: communeA})
	if err != nil {
		t.Fatal(err)
	}
	v.Tokens["approver-a"] = tok.Reveal()
	for i := 1; i <= households; i++ {
		v.receipt(v.deposit("enum-a1", v.seal(encode(t, household(eaA1, i)))), http.StatusCreated)
		v.receipt(v.deposit("enum-b1", v.seal(encode(t, household(eaB1, i)))), http.StatusCreated)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.B.AddEnvironment(ctx, broker.HostOperator("cli:test"), broker.NewEnvironment{Name: "centre", Recipient: id.Recipient().String()}); err != nil {
		t.Fatal(err)
	}
	if r := v.extractPost("proc", "/v1/extracts", `{"environment":"centre","areas":["`+district+`"],"form":"census2019","classes":["analytic"],"purpose":"coding"}`); r.Status != 201 {
		t.Fatalf("propose: %d %s", r.Status, r.Body)
	}
	if r := v.extractPost("approver", "/v1/extracts/1/approve", ""); r.Status != 200 {
		t.Fatalf("approve: %d %s", r.Status, r.Body)
	}
	return v
}

// TestRedTeam13EnvironmentOverHTTP: the admin posts an environment with
// its own recipient: 403 host_only, saying where it is done, audited,
// nothing stored; retiring stays open to it.
func TestRedTeam13EnvironmentOverHTTP(t *testing.T) {
	t.Parallel()
	v := extractVault13(t, 1)
	mallory, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	var r *response
	e := v.oneEvent(func() {
		r = v.extractPost("admin", "/v1/extracts/environments", `{"name":"centre-mirror","recipient":"`+mallory.Recipient().String()+`"}`)
	})
	if r.Status == http.StatusCreated {
		t.Fatalf("HOLE: the admin registered environment centre-mirror to its own key over HTTP: %s", r.Body)
	}
	if r.Status != 403 || r.Code(t) != "host_only" || !strings.Contains(string(r.Body), "censusvault extract env add") ||
		e.Action != "extract.environment_add" || e.Actor != "user:admin" || e.Outcome != "denied" {
		t.Errorf("the admin registers: %d %s; event %+v", r.Status, r.Body, e)
	}
	if l, _ := v.B.Environments(context.Background()); len(l.Environments) != 1 {
		t.Errorf("%d environments stored", len(l.Environments))
	}
	if r := v.extractPost("admin", "/v1/extracts/environments/centre/retire", ""); r.Status != 200 {
		t.Errorf("the admin retires: %d %s", r.Status, r.Body)
	}
}

// TestRedTeam13ExtractSeqOracleHTTP: a processor and an approver of
// commune A get the same status, code and message (but the number) for
// the district's extract 1 and for extracts 2 and 10^12, which do not
// exist; each request is one audit event.
func TestRedTeam13ExtractSeqOracleHTTP(t *testing.T) {
	t.Parallel()
	v := extractVault13(t, 1)
	if r := v.extractPost("proc", "/v1/extracts", `{"environment":"centre","areas":["`+communeB+`"],"form":"census2019","classes":["analytic"],"purpose":"coding"}`); r.Status != 201 {
		t.Fatalf("propose: %d %s", r.Status, r.Body) // extract 2, pending, of commune B
	}
	for _, c := range []struct {
		user, method, path string
	}{
		{"proc-a", "GET", "/v1/extracts/%d"},
		{"approver-a", "POST", "/v1/extracts/%d/approve"},
	} {
		answer := func(seq int64) string {
			var r *response
			e := v.oneEvent(func() {
				r = v.do(c.method, fmt.Sprintf(c.path, seq), "Bearer "+v.Tokens[c.user], nil, nil)
			})
			if e.Actor != "user:"+c.user || e.Decision != "deny" {
				t.Errorf("%s %d: event %+v", c.user, seq, e)
			}
			return fmt.Sprintf("%d %s", r.Status, strings.ReplaceAll(string(r.Body), fmt.Sprint(seq), "N"))
		}
		out := answer(2)
		if !strings.HasPrefix(out, "403 ") {
			t.Fatalf("%s on the extract of commune B: %s", c.user, out)
		}
		for _, seq := range []int64{3, 1_000_000_000_000} {
			if got := answer(seq); got != out {
				t.Errorf("HOLE: %s on extract %d, which does not exist: %s; on one outside its scope: %s", c.user, seq, got, out)
			}
		}
	}
}

// gate13 is a context whose first Err blocks until released (the first
// pass of a download asks it for every household, nothing else does).
type gate13 struct {
	context.Context
	once              sync.Once
	entered, released chan struct{}
}

func (g *gate13) Err() error {
	g.once.Do(func() { close(g.entered); <-g.released })
	return g.Context.Err()
}

// TestRedTeam13DownloadCapHTTP: while a download of the processor is in
// its first pass (held here in the broker serving the API), its next
// request is 429 rate_limited with Retry-After, no-store, audited, and
// no digest is sent; so is a third user's while two are prepared. Once
// they end, the same requests are 200.
func TestRedTeam13DownloadCapHTTP(t *testing.T) {
	t.Parallel()
	v := extractVault13(t, 2)
	// Extract 2, of commune A, for its processor.
	if r := v.extractPost("proc-a", "/v1/extracts", `{"environment":"centre","areas":["`+communeA+`"],"form":"census2019","classes":["analytic"],"purpose":"coding"}`); r.Status != 201 {
		t.Fatalf("propose: %d %s", r.Status, r.Body)
	}
	if r := v.extractPost("approver", "/v1/extracts/2/approve", ""); r.Status != 200 {
		t.Fatalf("approve: %d %s", r.Status, r.Body)
	}
	hold := func(user string) (*gate13, chan error) {
		t.Helper()
		c, err := v.B.Authenticate(context.Background(), "Bearer "+v.Tokens[user], "test")
		if err != nil {
			t.Fatal(err)
		}
		g := &gate13{Context: context.Background(), entered: make(chan struct{}), released: make(chan struct{})}
		done := make(chan error, 1)
		go func() {
			_, err := v.B.DownloadExtract(g, c, 1)
			done <- err
		}()
		select {
		case <-g.entered:
		case err := <-done:
			t.Fatalf("%s's held download ended: %v", user, err)
		case <-time.After(20 * time.Second):
			t.Fatalf("%s's held download never reached its first pass", user)
		}
		return g, done
	}
	limited := func(user string, seq int, what string) {
		t.Helper()
		var r *response
		e := v.oneEvent(func() { r = v.get(user, fmt.Sprintf("/v1/extracts/%d", seq)) })
		if r.Status == 200 {
			t.Fatalf("HOLE: %s: %s downloaded while others were prepared", what, user)
		}
		if r.Status != 429 || r.Code(t) != "rate_limited" || r.Header.Get("Retry-After") != "60" || r.Header.Get("Cache-Control") != "no-store" ||
			r.Header.Get("X-Censusvault-Extract-Sha256") != "" || e.Action != "extract.download" || e.Outcome != "rate_limited" || e.ReleaseDigest != "" {
			t.Errorf("%s: %d %s (Retry-After %q); event %+v", what, r.Status, r.Body, r.Header.Get("Retry-After"), e)
		}
	}
	g1, done1 := hold("proc")
	limited("proc", 1, "one per user")
	limited("proc", 2, "one per user, another extract")
	g2, done2 := hold("proc2")
	limited("proc-a", 2, "two per broker")
	close(g1.released)
	close(g2.released)
	for _, d := range []chan error{done1, done2} {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
	for u, seq := range map[string]int{"proc": 1, "proc2": 1, "proc-a": 2} {
		if r := v.get(u, fmt.Sprintf("/v1/extracts/%d", seq)); r.Status != 200 {
			t.Errorf("%s downloads after the others ended: %d %s", u, r.Status, r.Body)
		}
	}
}

// TestRedTeam13DownloadClientHangsUp: a client sends the request of a
// download and hangs up. The first pass stops instead of reading the
// extract for nobody, the download is audited as aborted without a
// digest, and the processor's place is free at once. (The hang-up races
// the first pass of 200 households: a try whose pass ended before the
// server saw the connection close is made again, up to five times;
// without the protection every try runs to its end.)
func TestRedTeam13DownloadClientHangsUp(t *testing.T) {
	t.Parallel()
	v := extractVault13(t, 100)
	var got *audit.Event
	for try := 0; try < 5 && (got == nil || got.Outcome == "ok"); try++ {
		head := v.auditHead()
		conn, err := net.Dial("tcp", v.Server.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET /v1/extracts/1 HTTP/1.1\r\nHost: vault\r\nAuthorization: Bearer %s\r\n\r\n", v.Tokens["proc"])
		conn.Close()
		got = nil
		for deadline := time.Now().Add(20 * time.Second); got == nil && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			for _, e := range v.eventsSince(head) {
				// Not the cut stream of an earlier try's download.
				if e.Action == "extract.download" && !strings.HasPrefix(e.Reason, "stream of the download") && got == nil {
					got = e
				}
			}
		}
		if got == nil {
			t.Fatal("no event of the abandoned download")
		}
	}
	switch {
	case got.Outcome == "ok":
		t.Fatalf("HOLE: the first pass ran to its end for a client that had hung up, five times (event %d: %s, %s)", got.Index, got.Reason, got.ReleaseDigest)
	case got.Outcome != "aborted" || got.ReleaseDigest != "" || got.Actor != "user:proc" || !strings.Contains(got.Reason, "hung up"):
		t.Errorf("event of the abandoned download: %+v", got)
	}
	// The place is free, and a client that stays gets its extract.
	conn, err := net.Dial("tcp", v.Server.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/extracts/1 HTTP/1.1\r\nHost: vault\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", v.Tokens["proc"])
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("the next download: %d", resp.StatusCode)
	}
}

// TestRedTeam13AdminApprovesHTTP: the admin, holding an approver grant
// too, approves an extract over HTTP: 403 four_eyes.
func TestRedTeam13AdminApprovesHTTP(t *testing.T) {
	t.Parallel()
	v := extractVault13(t, 1)
	if err := v.B.Grant(context.Background(), "cli:test", "admin", policy.Grant{Role: policy.Approver, Area: nation}); err != nil {
		t.Fatal(err)
	}
	if r := v.extractPost("proc", "/v1/extracts", `{"environment":"centre","areas":["`+district+`"],"form":"census2019","classes":["analytic"],"purpose":"coding"}`); r.Status != 201 {
		t.Fatalf("propose: %d %s", r.Status, r.Body)
	}
	r := v.extractPost("admin", "/v1/extracts/2/approve", "")
	if r.Status == 200 {
		t.Fatalf("HOLE: the admin approved extract 2: %s", r.Body)
	}
	if r.Status != 403 || r.Code(t) != "four_eyes" {
		t.Errorf("the admin approves: %d %s", r.Status, r.Body)
	}
}
