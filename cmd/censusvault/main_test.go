package main_test

// The CLI tested as its users meet it: the real binary, built once per test
// run, run as subprocesses against real data directories, with a real
// `serve` process on a loopback port where a test needs one.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker/testdeadline"
)

// binary is the censusvault command built by TestMain.
var binary string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "censusvault-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "censusvault")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.Command(goBin, "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "failed to build censusvault: %v\n", err)
		return 1
	}
	return m.Run()
}

// result is what one run of the binary produced.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
}

// cleanEnv is the test process's environment without CENSUSVAULT_*
// variables (they would silently set flags), plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CENSUSVAULT_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// cv runs the binary with args and the given extra environment.
func cvEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	// Killed shortly before the test's deadline, so that a hung command
	// fails its test with its output instead of the whole binary.
	ctx, cancel := context.WithDeadline(context.Background(), testdeadline.Of(t))
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = cleanEnv(env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	default:
		t.Fatalf("censusvault %s: %v\n%s", strings.Join(args, " "), err, r)
	}
	return r
}

func cv(t *testing.T, args ...string) result {
	t.Helper()
	return cvEnv(t, nil, args...)
}

// mustCV runs the binary and fails the test unless it exits 0.
func mustCV(t *testing.T, args ...string) result {
	t.Helper()
	r := cv(t, args...)
	if r.code != 0 {
		t.Fatalf("censusvault %s:\n%s", strings.Join(args, " "), r)
	}
	return r
}

// newVault initializes a vault from testdata/areas.csv in a fresh
// directory and returns the directory.
func newVault(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "vault")
	mustCV(t, "init", "--data", dir, "--areas", filepath.Join("testdata", "areas.csv"))
	return dir
}

// addUser adds a user and returns the token it printed.
func addUser(t *testing.T, dir, name, role, area string, extra ...string) string {
	t.Helper()
	args := append([]string{"user", "add", name, "--role", role, "--area", area, "--data", dir}, extra...)
	r := mustCV(t, args...)
	tok := strings.TrimSuffix(r.stdout, "\n")
	if !tokenRE.MatchString(tok) {
		t.Fatalf("user add printed %q on stdout, want a token", r.stdout)
	}
	return tok
}

// syncBuffer collects a subprocess's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// server is a running `censusvault serve`.
type server struct {
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:PORT
	log    *syncBuffer
	exited chan struct{}
	err    error // the process's exit, once exited is closed
}

// freeAddr returns a loopback address nobody listened on a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startServer runs `serve --data dir` on a free loopback port and waits
// until /healthz answers. The process is stopped (SIGKILL) at cleanup if
// the test did not stop it itself.
func startServer(t *testing.T, dir string, extra ...string) *server {
	t.Helper()
	for attempt := 0; ; attempt++ {
		s, err := tryStartServer(t, dir, extra...)
		if err == nil {
			return s
		}
		// Another process may have taken the port between our probe and
		// the server's listen: try another one.
		if attempt < 2 && strings.Contains(err.Error(), "address already in use") {
			continue
		}
		t.Fatal(err)
	}
}

// launchServe starts `serve --data dir --addr addr` with extra flags,
// its output in s.log, killed at the end of the test if still running.
func launchServe(t *testing.T, scheme, addr, dir string, extra ...string) (*server, error) {
	s := &server{base: scheme + "://" + addr, log: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(binary, append([]string{"serve", "--data", dir, "--addr", addr}, extra...)...)
	s.cmd.Env = cleanEnv()
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
	})
	return s, nil
}

func tryStartServer(t *testing.T, dir string, extra ...string) (*server, error) {
	addr := freeAddr(t)
	s, err := launchServe(t, "http", addr, dir, extra...)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: time.Second}
	deadline := testdeadline.Of(t)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("serve exited before it was ready (%v):\n%s", s.err, s.log)
		default:
		}
		resp, err := hc.Get(s.base + "/healthz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// Our own process must say it listens on addr: a healthy
			// answer alone might come from someone else's server that
			// took the port first.
			if resp.StatusCode == http.StatusOK && string(body) == "ok\n" && strings.Contains(s.log.String(), "msg=serving addr="+addr+" ") {
				return s, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, fmt.Errorf("serve did not answer /healthz before the test's deadline:\n%s", s.log)
}

// stop sends SIGTERM and checks that the server shuts down cleanly.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("failed to signal serve: %v", err)
	}
	select {
	case <-s.exited:
	case <-time.After(time.Until(testdeadline.Of(t))):
		t.Fatalf("serve did not exit after SIGTERM before the test's deadline:\n%s", s.log)
	}
	if s.err != nil {
		t.Fatalf("serve exited with %v after SIGTERM, want status 0:\n%s", s.err, s.log)
	}
	if !strings.Contains(s.log.String(), "shutting down") {
		t.Errorf("serve log does not say it shut down:\n%s", s.log)
	}
}

// do sends one request and returns the status and body.
func (s *server) do(t *testing.T, method, path, token string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := &http.Client{Timeout: time.Until(testdeadline.Of(t))}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// recipient fetches the current ingest recipient.
func (s *server) recipient(t *testing.T) string {
	t.Helper()
	st, body := s.do(t, http.MethodGet, "/v1/ingest/recipient", "", nil)
	if st != http.StatusOK {
		t.Fatalf("GET /v1/ingest/recipient: %d %s", st, body)
	}
	return strings.TrimSpace(body)
}
