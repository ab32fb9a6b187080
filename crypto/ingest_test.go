package crypto_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/censusvault/censusvault/crypto"
)

// encryptAge encrypts pt with age, armored or not, to rs.
func encryptAge(tb testing.TB, pt []byte, armored bool, rs ...age.Recipient) []byte {
	tb.Helper()
	var buf bytes.Buffer
	var dst io.Writer = &buf
	var aw io.WriteCloser
	if armored {
		aw = armor.NewWriter(&buf)
		dst = aw
	}
	w, err := age.Encrypt(dst, rs...)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.Write(pt); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	if aw != nil {
		if err := aw.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	return buf.Bytes()
}

func recipientOf(tb testing.TB, id *crypto.IngestIdentity) *age.HybridRecipient {
	tb.Helper()
	r, err := age.ParseHybridRecipient(id.Recipient())
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func newIngest(tb testing.TB, p crypto.KeyProvider) (*crypto.IngestIdentity, []byte) {
	tb.Helper()
	id, wrapped, err := crypto.GenerateIngestIdentity(context.Background(), p)
	if err != nil {
		tb.Fatal(err)
	}
	return id, wrapped
}

func TestIngestRecipient(t *testing.T) {
	id, _ := newIngest(t, newProvider(t))
	if !strings.HasPrefix(id.Recipient(), "age1pq1") {
		t.Fatalf("recipient %q does not start with age1pq1", id.Recipient())
	}
}

func TestOpenSubmissionRoundTrip(t *testing.T) {
	id, _ := newIngest(t, newProvider(t))
	r := recipientOf(t, id)
	ids := []*crypto.IngestIdentity{id}
	const chunk = 64 << 10 // age's STREAM chunk size
	for _, tc := range []struct {
		size, max int
	}{
		{0, 0}, {1, 0}, {0, 2048}, {2047, 2048}, {2048, 2048}, {2049, 2048},
		{chunk - 1, chunk}, {chunk, chunk}, {chunk + 1, chunk}, {3 * chunk, chunk}, {3 * chunk, 3 * chunk},
	} {
		pt := bytes.Repeat([]byte("hộ "), tc.size/4+1)[:tc.size]
		for _, form := range []string{"binary", "armored", "armored with leading whitespace"} {
			t.Run(fmt.Sprintf("%s/%d-of-%d", form, tc.size, tc.max), func(t *testing.T) {
				ct := encryptAge(t, pt, form != "binary", r)
				if form == "armored with leading whitespace" {
					ct = append([]byte("\r\n \t\n"), ct...)
				}
				got, err := crypto.OpenSubmission(ct, ids, int64(tc.max))
				if tc.size > tc.max {
					if !errors.Is(err, crypto.ErrTooLarge) {
						t.Fatalf("err = %v, want ErrTooLarge", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, pt) {
					t.Fatal("plaintext mismatch")
				}
			})
		}
	}
}

func TestOpenSubmissionAnyIdentity(t *testing.T) {
	p := newProvider(t)
	oldID, _ := newIngest(t, p)
	newID, _ := newIngest(t, p)
	ct := encryptAge(t, []byte("hello"), false, recipientOf(t, oldID))
	// During a rotation both identities are tried, in any order.
	for _, ids := range [][]*crypto.IngestIdentity{{oldID, newID}, {newID, oldID}} {
		if got, err := crypto.OpenSubmission(ct, ids, 100); err != nil || string(got) != "hello" {
			t.Fatalf("OpenSubmission = %q, %v", got, err)
		}
	}
	if _, err := crypto.OpenSubmission(ct, []*crypto.IngestIdentity{newID}, 100); !errors.Is(err, crypto.ErrDecrypt) {
		t.Fatalf("wrong recipient: err = %v, want ErrDecrypt", err)
	}
}

func TestOpenSubmissionRejects(t *testing.T) {
	p := newProvider(t)
	id, _ := newIngest(t, p)
	other, _ := newIngest(t, p)
	ids := []*crypto.IngestIdentity{id}
	r := recipientOf(t, id)
	pt := []byte(`{"ea":"18313-012","household":42}`)
	good := encryptAge(t, pt, false, r)
	goodArmored := encryptAge(t, pt, true, r)

	x25519, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	scrypt, err := age.NewScryptRecipient("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	scrypt.SetWorkFactor(1)
	many := func(n int) []age.Recipient {
		rs := []age.Recipient{r}
		for range n - 1 {
			rs = append(rs, recipientOf(t, other))
		}
		return rs
	}
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }

	cases := map[string][]byte{
		"empty":               nil,
		"garbage":             []byte("definitely not an age file"),
		"intro only":          []byte("age-encryption.org/v1\n"),
		"wrong recipient":     encryptAge(t, pt, false, recipientOf(t, other)),
		"x25519 only":         encryptAge(t, pt, false, x25519.Recipient()),
		"scrypt":              encryptAge(t, pt, false, scrypt),
		"scrypt armored":      encryptAge(t, pt, true, scrypt),
		"5 stanzas":           encryptAge(t, pt, false, many(5)...),
		"flipped payload":     flip(good, len(good)-1),
		"flipped header":      flip(good, 40),
		"leading junk":        append([]byte("x"), good...),
		"trailing junk":       append(bytes.Clone(good), 0),
		"armored trailing":    append(bytes.Clone(goodArmored), "junk"...),
		"armored truncated":   goodArmored[:len(goodArmored)-10],
		"armor header only":   []byte(armor.Header + "\n"),
		"binary in armor":     []byte(armor.Header + "\n" + string(good)),
		"whitespace + binary": append([]byte("\n"), good...),
	}
	for name, ct := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := crypto.OpenSubmission(ct, ids, 1<<20); err != crypto.ErrDecrypt {
				t.Fatalf("err = %v, want ErrDecrypt", err)
			}
		})
	}
	t.Run("every truncation", func(t *testing.T) {
		for n := 0; n < len(good); n += max(1, n/64) {
			if _, err := crypto.OpenSubmission(good[:n], ids, 1<<20); err != crypto.ErrDecrypt {
				t.Fatalf("len %d: err = %v, want ErrDecrypt", n, err)
			}
		}
	})
	// The stanza bound: 4 (the bound) is accepted.
	if got, err := crypto.OpenSubmission(encryptAge(t, pt, false, many(4)...), ids, 1<<20); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("4 stanzas: %q, %v", got, err)
	}
	// The unmodified files open, so the failures above are real.
	for _, ct := range [][]byte{good, goodArmored} {
		if got, err := crypto.OpenSubmission(ct, ids, 1<<20); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("OpenSubmission = %q, %v", got, err)
		}
	}
}

func TestOpenSubmissionMisuse(t *testing.T) {
	id, _ := newIngest(t, newProvider(t))
	ct := encryptAge(t, []byte("x"), false, recipientOf(t, id))
	for name, f := range map[string]func() error{
		"no identities":  func() error { _, err := crypto.OpenSubmission(ct, nil, 10); return err },
		"nil identity":   func() error { _, err := crypto.OpenSubmission(ct, []*crypto.IngestIdentity{nil}, 10); return err },
		"negative bound": func() error { _, err := crypto.OpenSubmission(ct, []*crypto.IngestIdentity{id}, -1); return err },
	} {
		if err := f(); err == nil || errors.Is(err, crypto.ErrDecrypt) {
			t.Errorf("%s: err = %v, want a usage error", name, err)
		}
	}
}

func TestLoadIngestIdentity(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	id, wrapped := newIngest(t, p)
	loaded, err := crypto.LoadIngestIdentity(ctx, p, wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Recipient() != id.Recipient() {
		t.Fatal("loaded identity has another recipient")
	}
	ct := encryptAge(t, []byte("v"), false, recipientOf(t, id))
	if got, err := crypto.OpenSubmission(ct, []*crypto.IngestIdentity{loaded}, 10); err != nil || string(got) != "v" {
		t.Fatalf("OpenSubmission with loaded identity = %q, %v", got, err)
	}

	dek, err := newKeyring(t, p, 0).NewDataKey(ctx, testID)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		p crypto.KeyProvider
		w []byte
	}{
		"other provider": {newProvider(t), wrapped},
		"a data key":     {p, dek},
		"garbage":        {p, []byte("garbage")},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := crypto.LoadIngestIdentity(ctx, tc.p, tc.w); err != crypto.ErrDecrypt {
				t.Fatalf("err = %v, want ErrDecrypt", err)
			}
		})
	}
}
