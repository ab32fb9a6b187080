package httpapi_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/testdeadline"
	"github.com/google/uuid"
)

// Distinctive personal values: if any of them shows up in an answer, an
// audit event or on disk, the vault leaked it.
const (
	secretName    = "Zyxwvu Độc Nhất"
	secretAddress = "Số 77 Ngõ Quỳnh"
	secretPhone   = "0912345678"
	secretPerson  = "Qưertz Bí Mật"
)

var secrets = []string{secretName, secretAddress, secretPhone, secretPhone[1:], secretPerson}

// secretHousehold is a valid household full of distinctive values.
func secretHousehold(ea string, no int) hh {
	m := household(ea, no)
	h := hhOf(m)
	h["head_name"] = secretName
	h["address"] = secretAddress
	h["phone"] = secretPhone
	m["persons"] = []any{person(secretName, 1, 1, 1968), person(secretPerson, 2, 2, 1971)}
	return m
}

// leaks returns the secrets found in b.
func leaks(b []byte) []string {
	var out []string
	for _, s := range secrets {
		if bytes.Contains(b, []byte(s)) {
			out = append(out, s)
		}
	}
	return out
}

func persons(n int) []any {
	ps := make([]any, n)
	for i := range ps {
		ps[i] = person(fmt.Sprintf("%s %d", secretPerson, i), 3, 1+i%2, 1990)
	}
	ps[0] = person(secretName, 1, 1, 1960)
	return ps
}

func TestDepositInvalid(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})

	other, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	scrypt, err := age.NewScryptRecipient("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	scrypt.SetWorkFactor(10)

	type tc struct {
		name    string
		edit    func(m hh)                                // change to a valid secret household
		body    func(t *testing.T, v *vault, m hh) []byte // ciphertext; nil: encrypt m to the vault
		status  int                                       // wanted status
		outcome string                                    // wanted audit outcome
		problem string                                    // a substring of one of the problems, if any
		user    string                                    // default enum-a1
	}
	enc := func(t *testing.T, v *vault, m hh) []byte { return v.seal(encode(t, m)) }
	cases := []tc{
		{name: "not age", body: func(t *testing.T, v *vault, _ hh) []byte {
			return []byte("Zyxwvu Độc Nhất, Số 77 Ngõ Quỳnh, 0912345678")
		}, status: 400, outcome: "invalid"},
		{name: "plaintext JSON instead of age", body: func(t *testing.T, v *vault, m hh) []byte { return encode(t, m) }, status: 400, outcome: "invalid"},
		{name: "age to a different recipient", body: func(t *testing.T, v *vault, m hh) []byte { return encryptTo(t, other.Recipient(), encode(t, m)) }, status: 400, outcome: "invalid"},
		{name: "age to an X25519-only recipient", body: func(t *testing.T, v *vault, m hh) []byte { return encryptTo(t, x25519.Recipient(), encode(t, m)) }, status: 400, outcome: "invalid"},
		{name: "passphrase-encrypted age", body: func(t *testing.T, v *vault, m hh) []byte { return encryptTo(t, scrypt, encode(t, m)) }, status: 400, outcome: "invalid"},
		{name: "truncated ciphertext", body: func(t *testing.T, v *vault, m hh) []byte { c := enc(t, v, m); return c[:len(c)-17] }, status: 400, outcome: "invalid"},
		{name: "truncated armored ciphertext", body: func(t *testing.T, v *vault, m hh) []byte {
			c := armored(t, v.Recipient, encode(t, m))
			return c[:len(c)/2]
		}, status: 400, outcome: "invalid"},
		{name: "flipped ciphertext byte", body: func(t *testing.T, v *vault, m hh) []byte { c := enc(t, v, m); c[len(c)-5] ^= 1; return c }, status: 400, outcome: "invalid"},
		{name: "empty body", body: func(t *testing.T, v *vault, _ hh) []byte { return nil }, status: 400, outcome: "invalid"},
		{name: "age of an empty plaintext", body: func(t *testing.T, v *vault, _ hh) []byte { return v.seal(nil) }, status: 400, outcome: "invalid"},
		{name: "age of something that is not JSON", body: func(t *testing.T, v *vault, _ hh) []byte { return v.seal([]byte(secretName)) }, status: 400, outcome: "invalid"},
		{name: "unknown top-level field", edit: func(m hh) { m["nickname"] = secretName }, status: 400, outcome: "invalid", problem: "nickname"},
		{name: "unknown household field", edit: func(m hh) { hhOf(m)["favourite_colour"] = secretAddress }, status: 400, outcome: "invalid", problem: "favourite_colour"},
		{name: "unknown person field", edit: func(m hh) { m["persons"].([]any)[0].(map[string]any)["nickname"] = secretPerson }, status: 400, outcome: "invalid", problem: "nickname"},
		{name: "bad code", edit: func(m hh) { hhOf(m)["dwelling_type"] = 9 }, status: 400, outcome: "invalid", problem: "dwelling_type"},
		{name: "bad person code", edit: func(m hh) { m["persons"].([]any)[1].(map[string]any)["sex"] = 3 }, status: 400, outcome: "invalid", problem: "sex"},
		{name: "missing required household field", edit: func(m hh) { delete(hhOf(m), "head_name") }, status: 400, outcome: "invalid", problem: "head_name"},
		{name: "missing required person field", edit: func(m hh) { delete(m["persons"].([]any)[0].(map[string]any), "birth_year") }, status: 400, outcome: "invalid", problem: "birth_year"},
		{name: "missing id", edit: func(m hh) { delete(m, "id") }, status: 400, outcome: "invalid", problem: "id"},
		{name: "missing interviewed_at", edit: func(m hh) { delete(m, "interviewed_at") }, status: 400, outcome: "invalid", problem: "interviewed_at"},
		{name: "wrong type (string for a code)", edit: func(m hh) { hhOf(m)["dwelling_type"] = secretAddress }, status: 400, outcome: "invalid", problem: "dwelling_type"},
		{name: "wrong type (number for a name)", edit: func(m hh) { hhOf(m)["head_name"] = 42 }, status: 400, outcome: "invalid", problem: "head_name"},
		{name: "wrong type (household_no as string)", edit: func(m hh) { m["household_no"] = "5" }, status: 400, outcome: "invalid", problem: "household_no"},
		{name: "bad phone", edit: func(m hh) { hhOf(m)["phone"] = "09123-" + secretPhone }, status: 400, outcome: "invalid", problem: "phone"},
		{name: "unknown form", edit: func(m hh) { m["form"] = "census2029" }, status: 400, outcome: "invalid"},
		{name: "non-EA area (a commune)", edit: func(m hh) { m["area"] = communeA }, status: 400, outcome: "invalid"},
		{name: "non-EA area (the nation)", edit: func(m hh) { m["area"] = nation }, status: 400, outcome: "invalid"},
		{name: "unknown area", edit: func(m hh) { m["area"] = "18070-99" }, status: 400, outcome: "invalid"},
		{name: "51 persons", edit: func(m hh) { m["persons"] = persons(form.MaxPersons + 1) }, status: 400, outcome: "invalid", problem: "persons"},
		{name: "no persons", edit: func(m hh) { m["persons"] = []any{} }, status: 400, outcome: "invalid", problem: "persons"},
		{name: "interviewed two days in the future", edit: func(m hh) { m["interviewed_at"] = start.Add(48 * time.Hour).Format(time.RFC3339) }, status: 400, outcome: "invalid", problem: "interviewed_at"},
		{name: "supersedes itself", edit: func(m hh) { m["supersedes"] = m["id"] }, status: 400, outcome: "invalid", problem: "supersedes"},
	}
	no := 100
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := v.in(t)
			no++
			m := secretHousehold(eaA1, no)
			if c.edit != nil {
				c.edit(m)
			}
			body := c.body
			if body == nil {
				body = enc
			}
			ct := body(t, v, m)
			user := c.user
			if user == "" {
				user = "enum-a1"
			}
			n := v.countSubmissions()
			var r *response
			ev := v.oneEvent(func() { r = v.deposit(user, ct) })
			if r.Status != c.status {
				t.Fatalf("status %d, want %d: %s", r.Status, c.status, r.Body)
			}
			msg, problems := r.ErrorBody(t)
			if c.problem != "" && !strings.Contains(strings.Join(problems, "\n"), c.problem) {
				t.Errorf("problems %q do not mention %q (error %q)", problems, c.problem, msg)
			}
			if l := leaks(r.Body); len(l) > 0 {
				t.Errorf("the answer repeats submitted personal values %q: %s", l, r.Body)
			}
			if ev.Outcome != c.outcome || ev.Action != "submission.deposit" {
				t.Errorf("audit event %s/%s, want submission.deposit/%s", ev.Action, ev.Outcome, c.outcome)
			}
			evb, _ := ev.Encode()
			if l := leaks(evb); len(l) > 0 {
				t.Errorf("the audit event holds submitted personal values %q: %s", l, evb)
			}
			if id, _ := m["id"].(string); id != "" {
				v.mustNotBeStored(id)
			}
			if got := v.countSubmissions(); got != n {
				t.Errorf("%d submissions after a refused deposit, want %d", got, n)
			}
		})
	}

	t.Run("persons boundary: 49 and 50 accepted, 51 refused", func(t *testing.T) {
		v := v.in(t)
		for _, k := range []struct{ n, status int }{{form.MaxPersons - 1, 201}, {form.MaxPersons, 201}, {form.MaxPersons + 1, 400}} {
			no++
			m := secretHousehold(eaA1, no)
			m["persons"] = persons(k.n)
			if r := v.deposit("enum-a1", enc(t, v, m)); r.Status != k.status {
				t.Errorf("%d persons: status %d, want %d: %s", k.n, r.Status, k.status, r.Body)
			}
		}
	})
}

// rawRequest writes head (without the final blank line) on a fresh TCP
// connection and returns every status line the server sends before its
// final answer, and the final answer. No body is ever written.
func rawRequest(t *testing.T, v *vault, head string) (interim []int, final *http.Response, finalBody []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", v.Server.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(testdeadline.Of(t))
	if _, err := io.WriteString(conn, strings.ReplaceAll(head, "\n", "\r\n")+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading the answer (did the server wait for a body it should not read?): %v", err)
		}
		if resp.StatusCode >= 200 {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return interim, resp, b
		}
		interim = append(interim, resp.StatusCode)
	}
}

func TestDepositSize(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	max := int64(form.MaxBody)
	if v.B.MaxBody() != max {
		t.Fatalf("MaxBody %d, want %d", v.B.MaxBody(), max)
	}

	t.Run("Content-Length boundary: 1 MiB-1 and 1 MiB are read, 1 MiB+1 is 413", func(t *testing.T) {
		v := v.in(t)
		for _, k := range []struct {
			n       int64
			status  int
			outcome string
		}{{max - 1, 400, "invalid"}, {max, 400, "invalid"}, {max + 1, 413, "too_large"}} {
			body := make([]byte, k.n)
			rand.Read(body)
			var r *response
			ev := v.oneEvent(func() {
				r = v.do(http.MethodPost, "/v1/submissions", "Bearer "+v.Tokens["enum-a1"], bytes.NewReader(body), nil)
			})
			if r.Status != k.status || ev.Outcome != k.outcome {
				t.Errorf("Content-Length %d: %d/%s, want %d/%s: %s", k.n, r.Status, ev.Outcome, k.status, k.outcome, r.Body)
			}
			r.ErrorBody(t)
		}
	})

	t.Run("Content-Length over 1 MiB with Expect: 100-continue: 413, no 100 Continue, body never read", func(t *testing.T) {
		v := v.in(t)
		n := v.countSubmissions()
		var (
			interim []int
			resp    *http.Response
		)
		ev := v.oneEvent(func() {
			interim, resp, _ = rawRequest(t, v, fmt.Sprintf("POST /v1/submissions HTTP/1.1\nHost: vault\nAuthorization: Bearer %s\n"+
				"Content-Type: application/x-www-form-urlencoded\nContent-Length: %d\nExpect: 100-continue\n", v.Tokens["enum-a1"], max+1))
		})
		if len(interim) > 0 {
			t.Errorf("the server sent %v before refusing: it asked for a body it must not read", interim)
		}
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413", resp.StatusCode)
		}
		if ev.Outcome != "too_large" {
			t.Errorf("event outcome %q, want too_large", ev.Outcome)
		}
		if v.countSubmissions() != n {
			t.Error("something was stored")
		}
	})

	t.Run("Content-Length of 10 GiB and no body: 413 at once", func(t *testing.T) {
		v := v.in(t)
		_, resp, _ := rawRequest(t, v, fmt.Sprintf("POST /v1/submissions HTTP/1.1\nHost: vault\nAuthorization: Bearer %s\nContent-Length: %d\n", v.Tokens["enum-a1"], int64(10)<<30))
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413", resp.StatusCode)
		}
	})

	t.Run("Go client with Expect: 100-continue sends no body byte", func(t *testing.T) {
		v := v.in(t)
		cr := &countingReader{r: io.LimitReader(zeros{}, max+1)}
		req, _ := http.NewRequest(http.MethodPost, v.URL+"/v1/submissions", cr)
		req.ContentLength = max + 1
		req.Header.Set("Authorization", "Bearer "+v.Tokens["enum-a1"])
		req.Header.Set("Expect", "100-continue")
		tr := &http.Transport{ExpectContinueTimeout: 5 * time.Second}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413", resp.StatusCode)
		}
		if cr.n != 0 {
			t.Errorf("the client sent %d body bytes: the server asked for the body before refusing it", cr.n)
		}
	})

	t.Run("chunked body: small is accepted, over 1 MiB is 413", func(t *testing.T) {
		v := v.in(t)
		chunked := func(body []byte) *response {
			// A reader of unknown length makes net/http send the body
			// chunked, with no Content-Length.
			return v.do(http.MethodPost, "/v1/submissions", "Bearer "+v.Tokens["enum-a1"], io.MultiReader(bytes.NewReader(body)), nil)
		}
		m := household(eaA1, 1)
		if r := chunked(v.seal(encode(t, m))); r.Status != http.StatusCreated {
			t.Errorf("chunked valid deposit: %d, want 201: %s", r.Status, r.Body)
		}
		for _, k := range []struct {
			n       int64
			status  int
			outcome string
		}{{max, 400, "invalid"}, {max + 1, 413, "too_large"}, {max + 256<<10, 413, "too_large"}} {
			body := make([]byte, k.n)
			rand.Read(body)
			var r *response
			ev := v.oneEvent(func() { r = chunked(body) })
			if r.Status != k.status || ev.Outcome != k.outcome {
				t.Errorf("chunked %d bytes: %d/%s, want %d/%s: %s", k.n, r.Status, ev.Outcome, k.status, k.outcome, r.Body)
			}
		}
		// A real age file whose plaintext is over the limit.
		big := encode(t, household(eaA1, 2))
		big = append(big[:len(big)-1], bytes.Repeat([]byte(" "), int(max))...)
		if r := chunked(v.seal(big)); r.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked age file of %d plaintext bytes: %d, want 413", len(big), r.Status)
		}
	})
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestCheckOrder(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	garbage := []byte("definitely not age")
	huge := fmt.Sprint(int64(form.MaxBody) + 1)

	t.Run("users without the deposit right posting garbage: 403, not 400", func(t *testing.T) {
		v := v.in(t)
		for _, u := range []string{"steering-a", "steering-town", "supervisor", "researcher", "auditor", "admin"} {
			var r *response
			ev := v.oneEvent(func() { r = v.deposit(u, garbage) })
			if r.Status != http.StatusForbidden {
				t.Errorf("%s: status %d, want 403: %s", u, r.Status, r.Body)
			}
			if ev.Outcome != "denied" || ev.Decision != "deny" || ev.Actor != "user:"+u {
				t.Errorf("%s: event %s/%s by %s, want denied/deny", u, ev.Outcome, ev.Decision, ev.Actor)
			}
		}
	})

	t.Run("users without the deposit right and a huge Content-Length: 403, not 413", func(t *testing.T) {
		v := v.in(t)
		interim, resp, _ := rawRequest(t, v, "POST /v1/submissions HTTP/1.1\nHost: vault\nAuthorization: Bearer "+v.Tokens["steering-a"]+"\nContent-Length: "+huge+"\nExpect: 100-continue\n")
		if resp.StatusCode != http.StatusForbidden || len(interim) > 0 {
			t.Errorf("status %d (interim %v), want 403 and no 100 Continue", resp.StatusCode, interim)
		}
	})

	t.Run("unauthenticated with a huge Content-Length: 401, not 413", func(t *testing.T) {
		v := v.in(t)
		for name, auth := range map[string]string{
			"no header":     "",
			"unknown token": "Authorization: Bearer " + strings.Repeat("A", 43) + "\n",
		} {
			interim, resp, _ := rawRequest(t, v, "POST /v1/submissions HTTP/1.1\nHost: vault\n"+auth+"Content-Length: "+huge+"\nExpect: 100-continue\n")
			if resp.StatusCode != http.StatusUnauthorized || len(interim) > 0 {
				t.Errorf("%s: status %d (interim %v), want 401 and no 100 Continue", name, resp.StatusCode, interim)
			}
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: 401 without WWW-Authenticate", name)
			}
		}
	})

	t.Run("unauthenticated garbage: 401, not 400", func(t *testing.T) {
		v := v.in(t)
		r := v.do(http.MethodPost, "/v1/submissions", "", bytes.NewReader(garbage), nil)
		if r.Status != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", r.Status)
		}
	})

	t.Run("enumerator with a body over 1 MiB: 413 before decrypting", func(t *testing.T) {
		v := v.in(t)
		body := make([]byte, form.MaxBody+1)
		if r := v.deposit("enum-a1", body); r.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413", r.Status)
		}
	})

	t.Run("out-of-scope EA with an invalid submission: 403 before 400", func(t *testing.T) {
		v := v.in(t)
		m := secretHousehold(eaA1, 1)
		hhOf(m)["dwelling_type"] = 9
		var r *response
		ev := v.oneEvent(func() { r = v.deposit("enum-b1", v.seal(encode(t, m))) })
		if r.Status != http.StatusForbidden || ev.Outcome != "denied" {
			t.Errorf("status %d/%s, want 403/denied: %s", r.Status, ev.Outcome, r.Body)
		}
		if ev.Area != eaA1 {
			t.Errorf("denied event area %q, want %s", ev.Area, eaA1)
		}
		if l := leaks(r.Body); len(l) > 0 {
			t.Errorf("answer leaks %q", l)
		}
	})

	t.Run("a 401 is one rate-limited event, never a deposit event", func(t *testing.T) {
		v := v.in(t)
		// Write out the summary of the earlier failures from this
		// address, so that the next one is logged at once.
		if err := v.B.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		ev := v.oneEvent(func() {
			v.do(http.MethodPost, "/v1/submissions", "Bearer "+uuid.NewString(), bytes.NewReader(garbage), nil)
		})
		if ev.Action != "auth.authenticate" || ev.Outcome != "unauthenticated" {
			t.Errorf("event %s/%s, want auth.authenticate/unauthenticated", ev.Action, ev.Outcome)
		}
	})
}
