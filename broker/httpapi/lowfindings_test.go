package httpapi_test

// Tests for the low-severity findings of the red team (issue 10, point
// 7), each written as the attack it stops.

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker/tables"
)

// A researcher declares a 100 MB table request body and sends none: the
// vault must refuse at once (413, audited), not hold the connection open
// waiting for a body it will refuse. rawRequest never sends a body and
// waits for the answer only until shortly before the test's deadline.
func TestTablesDeclaredOversizeRefusedWithoutBody(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	began := time.Now()
	var (
		resp *http.Response
		body []byte
	)
	ev := v.oneEvent(func() {
		_, resp, body = rawRequest(t, v, fmt.Sprintf("POST /v1/tables HTTP/1.1\nHost: vault\nAuthorization: Bearer %s\n"+
			"Content-Type: application/json\nContent-Length: %d\n", v.Tokens["researcher"], 100<<20))
	})
	t.Logf("declared 100 MB body refused in %v, no body byte sent", time.Since(began))
	r := &response{Status: resp.StatusCode, Header: resp.Header, Body: body}
	if r.Status != http.StatusRequestEntityTooLarge || r.Code(t) != "too_large" {
		t.Errorf("answer %d %s, want 413 too_large", r.Status, r.Body)
	}
	if ev.Action != "table.request" || ev.Outcome != "too_large" {
		t.Errorf("event %s/%s, want table.request/too_large", ev.Action, ev.Outcome)
	}

	// A body of unknown length (chunked) over the limit is cut off after
	// one byte more than the limit and refused the same way.
	ev = v.oneEvent(func() {
		over := io.MultiReader(strings.NewReader(`{"project": "`+testProject+`", "purpose": "x", "rows": ["sex"]}`), strings.NewReader(strings.Repeat(" ", tables.MaxRequestBytes)))
		r = v.do(http.MethodPost, "/v1/tables", "Bearer "+v.Tokens["researcher"], over, nil)
	})
	if r.Status != http.StatusRequestEntityTooLarge || r.Code(t) != "too_large" || ev.Outcome != "too_large" {
		t.Errorf("chunked oversize body: %d %s, event %s", r.Status, r.Body, ev.Outcome)
	}
}
