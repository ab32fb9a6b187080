package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The package boundaries of DESIGN.md, enforced on the real build graph:
// crypto, storage, policy and audit import none of each other (nor the
// broker), and each heavy dependency stays in its one home.

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) (module string, pkgs []pkg) {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	root := moduleRoot(t)
	out, err := exec.Command(goBin, "list", "-m").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	module = strings.TrimSpace(string(out))
	cmd := exec.Command(goBin, "list", "-deps=false", "-json", "./...")
	cmd.Dir = root
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 8 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return module, pkgs
}

func moduleRoot(t *testing.T) string {
	out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// leafOf returns which leaf (crypto, storage, policy, audit) a package
// belongs to, or "".
func leafOf(module, path string) string {
	rest, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return ""
	}
	top, _, _ := strings.Cut(rest, "/")
	switch top {
	case "crypto", "storage", "policy", "audit":
		return top
	}
	return ""
}

func TestLeavesDoNotImportEachOther(t *testing.T) {
	module, pkgs := listPackages(t)
	checked := 0
	for _, p := range pkgs {
		leaf := leafOf(module, p.ImportPath)
		if leaf == "" {
			continue
		}
		checked++
		for _, d := range p.Deps {
			if other := leafOf(module, d); other != "" && other != leaf {
				t.Errorf("%s depends on %s: %s and %s must not import each other", p.ImportPath, d, leaf, other)
			}
			if strings.HasPrefix(d, module+"/broker") || strings.HasPrefix(d, module+"/cmd") {
				t.Errorf("%s depends on %s: leaves must not import the broker", p.ImportPath, d)
			}
		}
	}
	if checked < 4 {
		t.Fatalf("checked only %d leaf packages", checked)
	}
}

func TestDependenciesStayHome(t *testing.T) {
	module, pkgs := listPackages(t)
	homes := []struct{ dep, home string }{
		{"github.com/gin-gonic/gin", module + "/broker/httpapi"},
		{"github.com/casbin/casbin", module + "/policy"},
		{"github.com/jackc/pgx", module + "/storage/postgres"},
		{"github.com/hashicorp/vault/api", module + "/crypto/vaulttransit"},
		{"github.com/xuri/excelize", module + "/broker/form"},
	}
	for _, p := range pkgs {
		if strings.HasSuffix(p.ImportPath, ".test") {
			continue
		}
		for _, imp := range p.Imports {
			for _, h := range homes {
				if strings.HasPrefix(imp, h.dep) && p.ImportPath != h.home && !strings.HasPrefix(p.ImportPath, h.home+"/") {
					t.Errorf("%s imports %s, which belongs only in %s", p.ImportPath, imp, h.home)
				}
			}
		}
	}
}

// The check itself must be able to fail: feed it a made-up violation.
func TestLeafOf(t *testing.T) {
	m := "example.org/cv"
	for path, want := range map[string]string{
		m + "/crypto":         "crypto",
		m + "/crypto/agekey":  "crypto",
		m + "/storage/sqlite": "storage",
		m + "/broker":         "",
		m + "/cryptography":   "",
		"other.org/crypto":    "",
	} {
		if got := leafOf(m, path); got != want {
			t.Errorf("leafOf(%q) = %q, want %q", path, got, want)
		}
	}
}

// serverCode reports whether a dependency of the device SDK is server
// code: the broker itself or its engines, the leaves that hold policy,
// storage and keys, or a server-side library.
func serverCode(module, dep string) bool {
	if rest, ok := strings.CutPrefix(dep, module+"/"); ok {
		switch top, _, _ := strings.Cut(rest, "/"); top {
		case "policy", "storage", "crypto", "cmd":
			return true
		case "broker":
			// The SDK may use the wire types and what they are made of.
			switch rest {
			case "broker/client", "broker/wire", "broker/area", "broker/untrusted",
				"broker/internal/strictjson": // the one strict JSON reader, which broker/area's revision documents use
				return false
			}
			return true
		}
		return false
	}
	for _, heavy := range []string{"github.com/casbin/", "github.com/jackc/pgx", "modernc.org/sqlite", "github.com/gin-gonic/", "github.com/hashicorp/vault"} {
		if strings.HasPrefix(dep, heavy) {
			return true
		}
	}
	return false
}

// A field device links the wire types and age, never the server.
func TestDeviceSDKLinksNoServerCode(t *testing.T) {
	module, pkgs := listPackages(t)
	found := false
	for _, p := range pkgs {
		if p.ImportPath != module+"/broker/client" {
			continue
		}
		found = true
		for _, d := range p.Deps {
			if serverCode(module, d) {
				t.Errorf("the device SDK (broker/client) depends on %s: it may use broker/wire and age only", d)
			}
		}
	}
	if !found {
		t.Fatal("broker/client not found")
	}
	// The check can fail: the broker itself is server code.
	if !serverCode(module, module+"/broker") || !serverCode(module, "github.com/casbin/casbin/v2") || serverCode(module, module+"/broker/wire") {
		t.Error("serverCode misclassifies")
	}
}
