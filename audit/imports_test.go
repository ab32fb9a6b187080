package audit_test

import (
	"go/build"
	"strings"
	"testing"
)

// audit is a leaf and pure: it imports nothing from this module (storage
// and the broker compose it), nothing outside the standard library, and
// nothing that does I/O, so an auditor can reimplement or vendor it alone.
func TestImportsStayPure(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	forbidden := map[string]bool{
		"os": true, "os/exec": true, "net": true, "net/http": true, "io/fs": true,
		"database/sql": true, "log": true, "log/slog": true, "unsafe": true, "reflect": true,
	}
	for _, imp := range pkg.Imports {
		if first, _, _ := strings.Cut(imp, "/"); strings.Contains(first, ".") {
			t.Errorf("audit imports %q: only the standard library is allowed", imp)
		}
		if forbidden[imp] {
			t.Errorf("audit imports %q: the package must do no I/O", imp)
		}
	}
	if len(pkg.Imports) == 0 {
		t.Error("found no imports: test is not looking at the package")
	}
}
