package vaulttransit_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
)

// TestCountingProxyBodyRace forces, without Vault, the interleaving behind
// TestBatchRoundTrip's flake ("unexpected EOF" on a 250–500-key batch,
// the proxy logging "read error during body copy: use of closed network
// connection"). After copying a request's Content-Length bytes upstream,
// the proxy's transport reads the request body once more to check that
// it is not longer than declared. On a busy machine that goroutine can be
// descheduled long enough for the upstream's answer to come back and
// reach the client first; Go's HTTP/1 server, on writing a response,
// drains and closes the request body, so the late check read fails, the
// transport drops the upstream connection, and the answer is cut.
// Here the check read is held until the client has read the start of the
// answer, and the upstream sends the rest only after that read returned:
// the client must still get the whole answer, and the check read must
// not find the body closed.
func TestCountingProxyBodyRace(t *testing.T) {
	ctx := t.Context() // a 10 ms test: go test's own -timeout bounds a hang
	const head, answer = 64 << 10, 4 << 20
	answered := make(chan struct{}) // the client has read the answer's head
	checked := make(chan struct{})  // the transport's check read returned
	var checkErr error              // what it returned; read after checked
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, "upstream: bad body", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(answer))
		w.Write(bytes.Repeat([]byte("a"), head))
		http.NewResponseController(w).Flush()
		select {
		case <-checked:
		case <-r.Context().Done():
			return
		}
		w.Write(bytes.Repeat([]byte("b"), answer-head))
	}))
	t.Cleanup(upstream.Close)
	cp := newCountingProxy(t, env{addr: upstream.URL})
	var once sync.Once
	cp.wrapBody = func(r *http.Request) io.ReadCloser {
		return &lateCheckBody{ReadCloser: r.Body, hold: answered, done: r.Context().Done(), report: func(err error) {
			once.Do(func() { checkErr = err; close(checked) })
		}}
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cp.URL+"/v1/transit/encrypt/k", bytes.NewReader(bytes.Repeat([]byte("k"), 32<<10)))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	n, err := io.CopyN(io.Discard, resp.Body, head)
	close(answered)
	if err != nil {
		t.Fatalf("head of the answer: %d bytes, %v", n, err)
	}
	rest, err := io.Copy(io.Discard, resp.Body)
	select {
	case <-checked:
	case <-ctx.Done():
		t.Fatal("the proxy's transport never made its check read")
	}
	if checkErr != nil {
		t.Errorf("the proxy's check read of the request body failed: %v", checkErr)
	}
	if err != nil || n+rest != answer {
		t.Fatalf("answer cut after %d of %d bytes: %v", n+rest, answer, err)
	}
	if got := cp.count("/v1/transit/encrypt/k"); got != 1 {
		t.Errorf("proxy counted %d requests, want 1", got)
	}
}

// lateCheckBody is a request body whose reads after the end (the proxy
// transport's check that the body is not longer than declared) wait until
// hold is closed, as if that goroutine had been descheduled, and report
// what the real body then returned.
type lateCheckBody struct {
	io.ReadCloser
	hold, done <-chan struct{}
	report     func(error)
	ended      bool
}

func (b *lateCheckBody) Read(p []byte) (int, error) {
	if !b.ended {
		n, err := b.ReadCloser.Read(p)
		b.ended = errors.Is(err, io.EOF)
		return n, err
	}
	select {
	case <-b.hold:
	case <-b.done:
	}
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.report(nil)
	} else {
		b.report(err)
	}
	return n, err
}
