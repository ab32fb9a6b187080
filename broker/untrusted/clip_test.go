package untrusted_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/censusvault/censusvault/broker/untrusted"
)

func TestClip(t *testing.T) {
	for _, c := range []struct {
		s     string
		limit int
		want  string
	}{
		{"", 5, ""},
		{"abc", 3, "abc"},
		{"abcd", 3, "abc…"},
		{"Hồng Lĩnh", 2, "H…"}, // "ồ" is 3 bytes: never cut inside it
		{"Hồng Lĩnh", 3, "H…"},
		{"Hồng Lĩnh", 4, "Hồ…"},
		{"ồồ", 0, "…"},
		{"ồồ", -1, "…"},
	} {
		got := untrusted.Clip(c.s, c.limit)
		if got != c.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", c.s, c.limit, got, c.want)
		}
	}
	// Every cut of every prefix length stays valid UTF-8.
	s := strings.Repeat("Việt Nam 𝄞 ", 5) + "\xff"
	for n := 0; n <= len(s); n++ {
		if got := untrusted.Clip(s[:len(s)-1], n); !utf8.ValidString(got) {
			t.Fatalf("Clip(_, %d) = %q is not valid UTF-8", n, got)
		}
	}
}
