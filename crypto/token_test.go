package crypto_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/crypto"
)

func TestTokenRoundTrip(t *testing.T) {
	tok, err := crypto.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	shown := tok.Reveal()
	if len(shown) != 43 {
		t.Fatalf("revealed token %d chars, want 43", len(shown))
	}
	d, err := crypto.ParseTokenDigest(shown)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Equal(tok.Digest()) {
		t.Fatal("parsed digest differs from Digest")
	}
	if h := d.Hex(); len(h) != 64 || strings.ToLower(h) != h {
		t.Fatalf("Hex = %q", h)
	}
	other, err := crypto.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if other.Digest().Equal(d) || other.Reveal() == shown {
		t.Fatal("two tokens are equal")
	}
}

func TestParseTokenDigestRejects(t *testing.T) {
	tok, err := crypto.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	good := tok.Reveal()
	// 43 chars carry 258 bits: the last char must have its low 2 bits zero.
	lastBits := good[:42] + "B"
	if strings.HasSuffix(good, "B") {
		lastBits = good[:42] + "C"
	}
	for name, s := range map[string]string{
		"empty":            "",
		"42 chars":         good[:42],
		"44 chars":         good + "A",
		"padded":           good + "=",
		"padded to 43":     good[:42] + "=",
		"std alphabet +":   good[:42] + "+",
		"std alphabet /":   "/" + good[1:],
		"space":            " " + good[1:],
		"newline":          good[:42] + "\n",
		"non-ascii":        "é" + good[2:],
		"nonzero tail bit": lastBits,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := crypto.ParseTokenDigest(s); !errors.Is(err, crypto.ErrMalformedToken) {
				t.Fatalf("ParseTokenDigest(%q) err = %v, want ErrMalformedToken", s, err)
			}
		})
	}
	// Both URL-alphabet characters are accepted.
	for _, s := range []string{"-" + good[1:], "_" + good[1:]} {
		if _, err := crypto.ParseTokenDigest(s); err != nil {
			t.Errorf("ParseTokenDigest(%q): %v", s, err)
		}
	}
}
