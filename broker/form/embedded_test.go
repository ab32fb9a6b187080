package form_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"testing"

	"github.com/censusvault/censusvault/broker/form"
)

// TestEmbeddedCanonical: every embedded form has a unique (name,
// version) and a canonical definition that Parse reads back to the same
// bytes; the same definition spelled otherwise (indented, keys in
// another order) has the same digest, and a changed class another.
func TestEmbeddedCanonical(t *testing.T) {
	forms := form.Embedded()
	if len(forms) == 0 || forms[0].Name != form.Default().Name || forms[0].Version != form.Default().Version {
		t.Fatalf("Embedded() does not start with the default form")
	}
	seen := map[string]bool{}
	hexRE := regexp.MustCompile(`^[0-9a-f]{64}$`)
	for _, f := range forms {
		key := fmt.Sprintf("%s/%d", f.Name, f.Version)
		if seen[key] {
			t.Errorf("%s v%d embedded twice", f.Name, f.Version)
		}
		seen[key] = true
		b, sum, err := f.Digest()
		if err != nil || !hexRE.MatchString(sum) {
			t.Fatalf("%s: Digest = %q, %v", f.Name, sum, err)
		}
		g, err := form.Parse(b)
		if err != nil {
			t.Fatalf("%s: the canonical bytes do not parse: %v", f.Name, err)
		}
		if b2, sum2, _ := g.Digest(); !bytes.Equal(b, b2) || sum2 != sum {
			t.Errorf("%s: canonical bytes do not survive Parse", f.Name)
		}
		// Indented, with its keys in another order (a map sorts them).
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		other, _ := json.MarshalIndent(m, "", "\t")
		if bytes.Equal(other, b) {
			t.Fatal("the respelled definition is the canonical one")
		}
		h, err := form.Parse(other)
		if err != nil {
			t.Fatalf("%s respelled: %v", f.Name, err)
		}
		if _, sum3, _ := h.Digest(); sum3 != sum {
			t.Errorf("%s: the same definition spelled otherwise has another digest", f.Name)
		}
		// One field's class changed: another definition, another digest.
		fields := m["person"].([]any)
		fd := fields[0].(map[string]any)
		if fd["class"] == "identifying" {
			fd["class"] = "analytic"
		} else {
			fd["class"] = "identifying"
		}
		changed, _ := json.Marshal(m)
		if c, err := form.Parse(changed); err == nil {
			if _, sum4, _ := c.Digest(); sum4 == sum {
				t.Errorf("%s: a reclassified field leaves the digest unchanged", f.Name)
			}
		}
	}
}
