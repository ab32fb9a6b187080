package dp

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNoFloatInSampling reads the package's own source (not its tests) and
// fails if floating point can enter it: a float or complex type, a
// function or type whose name mentions Float (big.Float, Rat.Float64,
// rand.Float64, …), or an import outside the integer-only set (plain
// "math" brings math.Exp and friends). This is how the package keeps its
// promise that no sampling decision is made in floating point.
func TestNoFloatInSampling(t *testing.T) {
	allowed := map[string]bool{"errors": true, "fmt": true, "math/big": true, "math/bits": true, "math/rand/v2": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !allowed[path] {
				t.Errorf("%s imports %q; the samplers use only %v", fset.Position(imp.Pos()), path, allowed)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.Ident:
				switch n.Name {
				case "float32", "float64", "complex64", "complex128":
					t.Errorf("%s: %s in the sampler's source", fset.Position(n.Pos()), n.Name)
				}
				if strings.Contains(n.Name, "Float") {
					t.Errorf("%s: %s in the sampler's source", fset.Position(n.Pos()), n.Name)
				}
			case *ast.BasicLit:
				if n.Kind == token.FLOAT || n.Kind == token.IMAG {
					t.Errorf("%s: floating-point literal %s in the sampler's source", fset.Position(n.Pos()), n.Value)
				}
			}
			return true
		})
	}
	if checked < 5 {
		t.Fatalf("checked %d source files; the test is not looking at the package", checked)
	}
}
