package crypto_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/censusvault/censusvault/crypto"
)

// fuzzSecret is a test-only identity: the fuzz corpus holds files encrypted
// to it, so that the fuzzer starts from inputs that decrypt.
const fuzzSecret = "AGE-SECRET-KEY-PQ-1LDU4YLCWM2JAP7566EUS4X2F4T9PZYJYTALD6REJR43536ECX7USKWMSLT"

const fuzzMax = 256

var genFuzzSeeds = flag.Bool("gen-fuzz-seeds", false, "rewrite testdata/fuzz/FuzzOpenSubmission")

// TestGenerateFuzzSeeds writes the seed corpus when run with
// -gen-fuzz-seeds; otherwise it checks the corpus is there.
func TestGenerateFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzOpenSubmission")
	if !*genFuzzSeeds {
		checkFuzzSeeds(t, dir)
		return
	}
	id, err := age.ParseHybridIdentity(fuzzSecret)
	if err != nil {
		t.Fatal(err)
	}
	r := id.Recipient()
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	scrypt, err := age.NewScryptRecipient("passphrase")
	if err != nil {
		t.Fatal(err)
	}
	scrypt.SetWorkFactor(1)
	valid := encryptAge(t, []byte(`{"ea":"18313-012"}`), false, r)
	seeds := map[string][]byte{
		"valid-binary":    valid,
		"valid-armored":   encryptAge(t, []byte(`{"ea":"18313-012"}`), true, r),
		"valid-empty":     encryptAge(t, nil, false, r),
		"too-large":       encryptAge(t, bytes.Repeat([]byte("a"), fuzzMax+1), false, r),
		"truncated":       valid[:len(valid)-5],
		"x25519-only":     encryptAge(t, []byte("x"), false, x.Recipient()),
		"scrypt":          encryptAge(t, []byte("x"), false, scrypt),
		"garbage":         []byte("age-encryption.org/v1\n-> X25519 AAAA\n\n--- AAAA\n"),
		"armor-ws-header": []byte("  \n" + armor.Header + "\n"),
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkFuzzSeeds checks the corpus starts the fuzzer where intended: the
// valid seeds open and the too-large one is refused as such.
func checkFuzzSeeds(t *testing.T, dir string) {
	ingest, err := crypto.NewIngestIdentityForTest(fuzzSecret)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]error{
		"valid-binary": nil, "valid-armored": nil, "valid-empty": nil,
		"too-large": crypto.ErrTooLarge, "truncated": crypto.ErrDecrypt, "scrypt": crypto.ErrDecrypt,
	} {
		content, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("missing seed (run with -gen-fuzz-seeds): %v", err)
		}
		lit, ok := strings.CutPrefix(string(content), "go test fuzz v1\n[]byte(")
		lit, ok2 := strings.CutSuffix(lit, ")\n")
		data, err := strconv.Unquote(lit)
		if !ok || !ok2 || err != nil {
			t.Fatalf("seed %s is malformed", name)
		}
		if _, err := crypto.OpenSubmission([]byte(data), []*crypto.IngestIdentity{ingest}, fuzzMax); err != want {
			t.Errorf("seed %s: err = %v, want %v", name, err, want)
		}
	}
}

// referenceDecrypt decrypts with age directly, reading at most limit bytes.
func referenceDecrypt(data []byte, id age.Identity, limit int64) ([]byte, error) {
	var src io.Reader = bytes.NewReader(data)
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); bytes.HasPrefix(trimmed, []byte(armor.Header)) {
		src = armor.NewReader(bytes.NewReader(trimmed))
	}
	r, err := age.Decrypt(src, id)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(r, limit))
}

func FuzzOpenSubmission(f *testing.F) {
	ingest, err := crypto.NewIngestIdentityForTest(fuzzSecret)
	if err != nil {
		f.Fatal(err)
	}
	ref, err := age.ParseHybridIdentity(fuzzSecret)
	if err != nil {
		f.Fatal(err)
	}
	ids := []*crypto.IngestIdentity{ingest}
	f.Add([]byte{})
	f.Add([]byte("age-encryption.org/v1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pt, err := crypto.OpenSubmission(data, ids, fuzzMax)
		switch {
		case err == nil:
			// Accepted inputs decrypt: age itself agrees on every byte.
			want, rerr := referenceDecrypt(data, ref, fuzzMax+1)
			if rerr != nil || !bytes.Equal(pt, want) || len(pt) > fuzzMax {
				t.Fatalf("accepted input: age says %v, plaintext equal %v, len %d", rerr, bytes.Equal(pt, want), len(pt))
			}
		case errors.Is(err, crypto.ErrTooLarge):
			if pt != nil {
				t.Fatal("plaintext returned with an error")
			}
			if got, rerr := referenceDecrypt(data, ref, fuzzMax+1); rerr != nil || len(got) <= fuzzMax {
				t.Fatalf("ErrTooLarge but age reads %d bytes, %v", len(got), rerr)
			}
		case err == crypto.ErrDecrypt:
			if pt != nil {
				t.Fatal("plaintext returned with an error")
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}
