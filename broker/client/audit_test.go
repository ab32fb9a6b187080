package client_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker/client"
)

// stub serves fixed answers by path (with the query).
func stub(t *testing.T, routes map[string]http.HandlerFunc) *client.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := routes[r.URL.RequestURI()]
		if !ok {
			http.Error(w, `{"error":"no such route"}`, http.StatusNotFound)
			return
		}
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(client.Opts{BaseURL: srv.URL, Token: "tok", HTTP: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		w.Write([]byte(body))
	}
}

var h1 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))

func TestProofsAreDecodedStrictly(t *testing.T) {
	c := stub(t, map[string]http.HandlerFunc{
		"/v1/audit/proof/inclusion?index=1&size=2": func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "" {
				t.Error("a public route was sent the token")
			}
			w.Write([]byte(`{"hashes":["` + h1 + `"]}`))
		},
		"/v1/audit/proof/inclusion?index=2&size=3":  answer(200, `{"hashes":["AAAA"]}`),
		"/v1/audit/proof/inclusion?index=3&size=4":  answer(200, `{}`),
		"/v1/audit/proof/inclusion?index=4&size=5":  answer(200, `{"hashes":[`+strings.TrimSuffix(strings.Repeat(`"`+h1+`",`, 129), ",")+`]}`),
		"/v1/audit/proof/consistency?old=1&new=1":   answer(200, `{"hashes":[]}`),
		"/v1/audit/proof/consistency?old=2&new=1":   answer(400, `{"error":"need 1 ≤ old ≤ new"}`),
		"/v1/audit/proof/consistency?old=1&new=999": answer(404, `{"error":"the log has 3 events, not 999"}`),
	})
	ctx := t.Context()
	if p, err := c.InclusionProof(ctx, 1, 2); err != nil || len(p) != 1 || p[0][0] != 1 {
		t.Errorf("InclusionProof: %v %v", p, err)
	}
	for _, args := range [][2]int64{{2, 3}, {3, 4}, {4, 5}} {
		if _, err := c.InclusionProof(ctx, args[0], args[1]); err == nil {
			t.Errorf("InclusionProof%v accepted a bad answer", args)
		}
	}
	if p, err := c.ConsistencyProof(ctx, 1, 1); err != nil || p == nil || len(p) != 0 {
		t.Errorf("empty consistency proof: %v %v", p, err)
	}
	var se *client.StatusError
	if _, err := c.ConsistencyProof(ctx, 2, 1); !errors.As(err, &se) || se.Status != 400 || !strings.Contains(se.Message, "old ≤ new") {
		t.Errorf("400: %v", err)
	}
	if _, err := c.ConsistencyProof(ctx, 1, 999); !errors.As(err, &se) || se.Status != 404 {
		t.Errorf("404: %v", err)
	}
}

func TestCheckpoint(t *testing.T) {
	c := stub(t, map[string]http.HandlerFunc{
		"/v1/audit/checkpoint": answer(200, "o\n1\nroot\n\n— o sig\n"),
	})
	if b, err := c.Checkpoint(t.Context()); err != nil || string(b) != "o\n1\nroot\n\n— o sig\n" {
		t.Errorf("Checkpoint: %q %v", b, err)
	}
	big := stub(t, map[string]http.HandlerFunc{"/v1/audit/checkpoint": answer(200, strings.Repeat("x", 64<<10+1))})
	if _, err := big.Checkpoint(t.Context()); err == nil {
		t.Error("a checkpoint over 64 KiB was accepted")
	}
	down := stub(t, map[string]http.HandlerFunc{"/v1/audit/checkpoint": answer(503, `{"error":"the vault database is unavailable"}`)})
	var se *client.StatusError
	if _, err := down.Checkpoint(t.Context()); !errors.As(err, &se) || se.Status != 503 || se.Message != "the vault database is unavailable" {
		t.Errorf("503: %v", err)
	}
}

func TestReceiptProofJSON(t *testing.T) {
	good := `{"checkpoint":"o\n1\nr\n","index":3,"leaf_hash":"` + h1 + `","hashes":["` + h1 + `"]}`
	var p client.ReceiptProof
	if err := json.Unmarshal([]byte(good), &p); err != nil || p.Index != 3 || p.LeafHash[0] != 1 || len(p.Hashes) != 1 || string(p.Checkpoint) != "o\n1\nr\n" {
		t.Fatalf("decode: %+v %v", p, err)
	}
	if b, err := json.Marshal(p); err != nil || string(b) != good {
		t.Errorf("encode: %s %v\nwant %s", b, err, good)
	}
	for _, bad := range []string{
		`{"index":3,"leaf_hash":"` + h1 + `","hashes":[]}`,
		`{"checkpoint":"c","leaf_hash":"` + h1 + `","hashes":[]}`,
		`{"checkpoint":"c","index":3,"hashes":[]}`,
		`{"checkpoint":"c","index":3,"leaf_hash":"` + h1 + `"}`,
		`{"checkpoint":"c","index":3,"leaf_hash":"AAAA","hashes":[]}`,
		`{"checkpoint":"c","index":3,"leaf_hash":"` + h1 + `","hashes":["` + h1[:43] + `"]}`,
		`{"checkpoint":"c","index":"3","leaf_hash":"` + h1 + `","hashes":[]}`,
	} {
		var q client.ReceiptProof
		if err := json.Unmarshal([]byte(bad), &q); err == nil {
			t.Errorf("decoded %s", bad)
		}
	}
	if err := client.VerifyReceiptInclusion(&p, "not a key"); err == nil {
		t.Error("verified with no key")
	}
	if err := client.VerifyReceiptInclusion(nil, "x"); err == nil {
		t.Error("verified no proof")
	}
}

func TestExportStreamsAndReportsABrokenBody(t *testing.T) {
	c := stub(t, map[string]http.HandlerFunc{
		"/v1/audit/export?size=7": func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tok" {
				t.Error("the export was asked for without the token")
			}
			w.Write([]byte("line 1\nline 2\n"))
		},
		"/v1/audit/export": func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("line 1\n"))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // as the vault does when the export fails midway
		},
		"/v1/audit/export?size=8": answer(403, `{"error":"not permitted to read the audit log"}`),
	})
	var buf bytes.Buffer
	if n, err := c.Export(t.Context(), 7, &buf); err != nil || n != 14 || buf.String() != "line 1\nline 2\n" {
		t.Errorf("Export: %d %q %v", n, buf.String(), err)
	}
	buf.Reset()
	n, err := c.Export(t.Context(), 0, &buf)
	if err == nil || !strings.Contains(err.Error(), "cut short") || n != 7 || buf.String() != "line 1\n" {
		t.Errorf("broken export: %d %q %v", n, buf.String(), err)
	}
	var se *client.StatusError
	buf.Reset()
	if _, err := c.Export(t.Context(), 8, &buf); !errors.As(err, &se) || se.Status != 403 || buf.Len() != 0 {
		t.Errorf("refused export: %v, wrote %q", err, buf.String())
	}
	if _, err := c.Export(t.Context(), -1, &buf); err == nil {
		t.Error("negative size accepted")
	}
	// A failing writer is a write error, not a broken download.
	if _, err := c.Export(t.Context(), 7, failWriter{}); err == nil || strings.Contains(err.Error(), "cut short") || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("write failure: %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestAuditQueryValues(t *testing.T) {
	since := time.Date(2019, 4, 1, 0, 0, 0, 0, time.FixedZone("ICT", 7*3600))
	q := client.AuditQuery{From: 5, Limit: 10, Actor: "user:a", Role: "auditor", Action: "audit.read", Area: "42",
		Decision: "deny", Outcome: "denied", Resource: "submission:x", Since: since, Until: since.Add(time.Hour)}
	got := q.Values().Encode()
	want := "action=audit.read&actor=user%3Aa&area=42&decision=deny&from=5&limit=10&outcome=denied&resource=submission%3Ax&role=auditor&since=2019-04-01T00%3A00%3A00%2B07%3A00&until=2019-04-01T01%3A00%3A00%2B07%3A00"
	if got != want {
		t.Errorf("Values() = %s\nwant %s", got, want)
	}
	if v := (client.AuditQuery{}).Values(); len(v) != 0 {
		t.Errorf("the zero query has parameters: %v", v)
	}
}
