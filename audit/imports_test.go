package audit_test

import (
	"go/build"
	"strings"
	"testing"
)

// audit is a leaf and pure: it imports nothing from this module (storage
// and the broker compose it), nothing outside the standard library but the
// two pure x/mod packages for Merkle trees and signed notes, and nothing
// that does I/O, so an auditor can reimplement or vendor it alone.
func TestImportsStayPure(t *testing.T) {
	allowed := map[string]bool{
		"golang.org/x/mod/sumdb/tlog": true,
		"golang.org/x/mod/sumdb/note": true,
	}
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	forbidden := map[string]bool{
		"os": true, "os/exec": true, "net": true, "net/http": true, "io/fs": true,
		"database/sql": true, "log": true, "log/slog": true, "unsafe": true, "reflect": true,
	}
	for _, imp := range pkg.Imports {
		if first, _, _ := strings.Cut(imp, "/"); strings.Contains(first, ".") && !allowed[imp] {
			t.Errorf("audit imports %q: only the standard library, sumdb/tlog and sumdb/note are allowed", imp)
		}
		if forbidden[imp] {
			t.Errorf("audit imports %q: the package must do no I/O", imp)
		}
	}
	if len(pkg.Imports) == 0 {
		t.Error("found no imports: test is not looking at the package")
	}
	// The allowed packages must stay pure too, whatever x/mod version
	// go.mod picks.
	for imp := range allowed {
		dep, err := build.Import(imp, ".", 0)
		if err != nil {
			t.Fatalf("locating %s: %v", imp, err)
		}
		for _, di := range dep.Imports {
			if first, _, _ := strings.Cut(di, "/"); strings.Contains(first, ".") || forbidden[di] {
				t.Errorf("%s imports %q: it is no longer pure; audit must not use it", imp, di)
			}
		}
		if len(dep.Imports) == 0 {
			t.Errorf("found no imports for %s: test is not looking at the package", imp)
		}
	}
}
