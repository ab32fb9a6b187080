package crypto_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
)

// clearProvider "wraps" by returning the payload as it is. It exists only
// so that a test can load a record keyer with a secret it chose, for
// known answers and a reproducible uniformity check; everything else uses
// the real agekey provider.
type clearProvider struct{}

func (clearProvider) WrapKey(_ context.Context, k []byte) ([]byte, error) {
	return bytes.Clone(k), nil
}

func (clearProvider) UnwrapKey(_ context.Context, w []byte) ([]byte, error) {
	return bytes.Clone(w), nil
}

const recordKeyDomain = "censusvault-recordkey/v1\n"

// fixedKeyer loads a keyer whose secret is 32 bytes of b.
func fixedKeyer(t testing.TB, b byte) *crypto.RecordKeyer {
	t.Helper()
	r, err := crypto.LoadRecordKeyer(context.Background(), clearProvider{}, append([]byte(recordKeyDomain), bytes.Repeat([]byte{b}, 32)...))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// wantKey is the specification, written out independently of the code.
func wantKey(secret []byte, submission string, person int) uint32 {
	m := hmac.New(sha256.New, secret)
	var msg []byte
	msg = binary.BigEndian.AppendUint64(msg, uint64(len(submission)))
	msg = append(msg, submission...)
	msg = binary.BigEndian.AppendUint64(msg, uint64(person))
	m.Write(msg)
	return binary.BigEndian.Uint32(m.Sum(nil))
}

func TestRecordKeyKnownAnswers(t *testing.T) {
	r := fixedKeyer(t, 7)
	secret := bytes.Repeat([]byte{7}, 32)
	for _, c := range []struct {
		id     string
		person int
	}{
		{"", 0},
		{"0b7e5d3c-1f7e-4a8e-9d2c-6f1e2a3b4c5d", 0},
		{"0b7e5d3c-1f7e-4a8e-9d2c-6f1e2a3b4c5d", 1},
		{"0b7e5d3c-1f7e-4a8e-9d2c-6f1e2a3b4c5d", 255},
		{"0b7e5d3c-1f7e-4a8e-9d2c-6f1e2a3b4c5d", 256},
		{"x", -1},
	} {
		if got, want := r.Key(c.id, c.person), wantKey(secret, c.id, c.person); got != want {
			t.Errorf("Key(%q, %d) = %#08x, want %#08x", c.id, c.person, got, want)
		}
	}
}

func TestRecordKeyDeterministicAndDistinct(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	r1, w1, err := crypto.GenerateRecordKeyer(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	r2, _, err := crypto.GenerateRecordKeyer(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	again, err := crypto.LoadRecordKeyer(ctx, p, w1)
	if err != nil {
		t.Fatal(err)
	}
	const id = "0b7e5d3c-1f7e-4a8e-9d2c-6f1e2a3b4c5d"
	for person := range 20 {
		k := r1.Key(id, person)
		if k != r1.Key(id, person) || k != again.Key(id, person) {
			t.Fatalf("person %d: the key changes between calls or after a round trip", person)
		}
	}
	// A different secret, submission, or person (household 0 included)
	// gives a different key. With 32-bit keys an accidental collision
	// among these few has probability ~1e-8.
	seen := map[uint32]string{}
	add := func(what string, k uint32) {
		if prev, ok := seen[k]; ok {
			t.Errorf("%s has the same key as %s", what, prev)
		}
		seen[k] = what
	}
	for person := range 5 {
		add(fmt.Sprintf("r1 %s/%d", id, person), r1.Key(id, person))
		add(fmt.Sprintf("r2 %s/%d", id, person), r2.Key(id, person))
		add(fmt.Sprintf("r1 other/%d", person), r1.Key("1b7e5d3c-1f7e-4a8e-9d2c-6f1e2a3b4c5d", person))
	}
	// The encoding is unambiguous where a plain concatenation would not
	// be: ("a1", 0) and ("a", 10) must differ.
	add(`r1 "ab"/1`, r1.Key("ab", 1))
	add(`r1 "a"/1`, r1.Key("a", 1))
	add(`r1 "a\x00"/1`, r1.Key("a\x00", 1))
}

// TestRecordKeyUniform: keys are uniform enough to sum modulo a cell-key
// modulus. Chi-square over 16 buckets of 100,000 keys, on both the high
// and the low bits, with a fixed secret so the test is reproducible; the
// 0.1% critical value for 15 degrees of freedom is 37.70.
func TestRecordKeyUniform(t *testing.T) {
	r := fixedKeyer(t, 42)
	const n, buckets = 100_000, 16
	var hi, lo [buckets]int
	for i := range n / 5 {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i*7919)
		for person := range 5 {
			k := r.Key(id, person)
			hi[k>>28]++
			lo[k%buckets]++
		}
	}
	for name, h := range map[string][buckets]int{"high bits": hi, "low bits": lo} {
		exp := float64(n) / buckets
		chi := 0.0
		for _, c := range h {
			d := float64(c) - exp
			chi += d * d / exp
		}
		if chi > 37.70 {
			t.Errorf("%s: chi-square %.1f > 37.70 over %v", name, chi, h)
		}
		t.Logf("%s: chi-square %.2f", name, chi)
	}
}

func TestRecordKeyerWrapping(t *testing.T) {
	ctx := context.Background()
	p, other := newProvider(t), newProvider(t)
	r, w, err := crypto.GenerateRecordKeyer(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := crypto.LoadRecordKeyer(ctx, other, w); !errors.Is(err, crypto.ErrDecrypt) {
		t.Errorf("load with another identity: err = %v, want ErrDecrypt", err)
	}
	// A blob of another domain is not a record-key secret.
	_, sw, err := crypto.GenerateSigner(ctx, p, "test/signer")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := crypto.LoadRecordKeyer(ctx, p, sw); !errors.Is(err, crypto.ErrDecrypt) {
		t.Errorf("load of a signer blob: err = %v, want ErrDecrypt", err)
	}
	if _, err := crypto.LoadSigner(ctx, p, w); !errors.Is(err, crypto.ErrDecrypt) {
		t.Errorf("record-key secret loaded as a signer: err = %v, want ErrDecrypt", err)
	}
	// Secret sizes around 32 bytes: only 32 loads.
	for _, size := range []int{0, 31, 32, 33} {
		_, err := crypto.LoadRecordKeyer(ctx, clearProvider{}, append([]byte(recordKeyDomain), make([]byte, size)...))
		if (err == nil) != (size == 32) || (err != nil && !errors.Is(err, crypto.ErrDecrypt)) {
			t.Errorf("secret of %d bytes: err = %v", size, err)
		}
	}
	if _, _, err := crypto.GenerateRecordKeyer(ctx, nil); err == nil {
		t.Error("GenerateRecordKeyer with a nil provider succeeded")
	}

	// Both rewrap paths move it, and the keys stay the same.
	one, err := crypto.Rewrap(ctx, p, other, w)
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	many, err := crypto.RewrapKeys(ctx, p, other, [][]byte{w, w})
	if err != nil {
		t.Fatalf("RewrapKeys: %v", err)
	}
	for i, rw := range append([][]byte{one}, many...) {
		moved, err := crypto.LoadRecordKeyer(ctx, other, rw)
		if err != nil {
			t.Fatalf("rewrapped #%d: %v", i, err)
		}
		if moved.Key("s", 3) != r.Key("s", 3) {
			t.Errorf("rewrapped #%d gives other keys", i)
		}
	}
}

func TestRecordKeyerRedacted(t *testing.T) {
	r := fixedKeyer(t, 0xab)
	var nilR *crypto.RecordKeyer
	for _, s := range []string{fmt.Sprint(r), fmt.Sprintf("%v %+v %#v %s", r, r, r, r), r.String(), r.GoString(), nilR.String()} {
		if strings.Contains(strings.ToLower(s), "abab") || strings.Contains(s, "171") || strings.Contains(s, "\xab") {
			t.Errorf("the secret shows in %q", s)
		}
		if !strings.HasPrefix(s, "RecordKeyer(") {
			t.Errorf("String = %q", s)
		}
	}
}

func BenchmarkRecordKey(b *testing.B) {
	r := fixedKeyer(b, 1)
	const id = "0b7e5d3c-1f7e-4a8e-9d2c-6f1e2a3b4c5d"
	b.ReportAllocs()
	var sink uint32
	for i := 0; b.Loop(); i++ {
		sink += r.Key(id, i&7)
	}
	_ = sink
}

func ExampleRecordKeyer() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "censusvault")
	defer os.RemoveAll(dir)
	p, err := agekey.Create(filepath.Join(dir, agekey.FileName))
	if err != nil {
		panic(err)
	}
	r, wrapped, err := crypto.GenerateRecordKeyer(ctx, p)
	if err != nil {
		panic(err)
	}
	// wrapped goes to the store; a later process loads the same secret.
	again, err := crypto.LoadRecordKeyer(ctx, p, wrapped)
	if err != nil {
		panic(err)
	}
	const submission = "0b7e5d3c-1f7e-4a8e-9d2c-6f1e2a3b4c5d"
	fmt.Println(r.Key(submission, 1) == again.Key(submission, 1))
	fmt.Println(r)
	// Output:
	// true
	// RecordKeyer(redacted)
}
