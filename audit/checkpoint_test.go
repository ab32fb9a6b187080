package audit_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/censusvault/censusvault/audit"
)

const testOrigin = "census.example.org/audit"

// testKey returns a note signer named name and its verifier key, derived
// from seed so every run signs the same bytes.
func testKey(tb testing.TB, name string, seed byte) (note.Signer, string) {
	tb.Helper()
	skey, vkey, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{seed}, 32)), name)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	return s, vkey
}

// signCheckpoint signs c's body as the vault does.
func signCheckpoint(tb testing.TB, s note.Signer, c audit.Checkpoint) []byte {
	tb.Helper()
	msg, err := note.Sign(&note.Note{Text: c.Body()}, s)
	if err != nil {
		tb.Fatal(err)
	}
	return msg
}

// The example checkpoint of the C2SP tlog-checkpoint spec.
func TestParseCheckpointSpecExample(t *testing.T) {
	const body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
	c, err := audit.ParseCheckpoint(body)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := base64.StdEncoding.DecodeString("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
	if c.Origin != "example.com/behind-the-sofa" || c.Size != 20852163 || !bytes.Equal(c.Root[:], root) {
		t.Errorf("parsed %+v", c)
	}
	if c.Body() != body {
		t.Errorf("Body() = %q, want %q", c.Body(), body)
	}
}

func TestCheckpointBodyRoundTrip(t *testing.T) {
	for _, c := range []audit.Checkpoint{
		{Origin: testOrigin, Size: 0, Root: [32]byte{}},
		{Origin: "x", Size: 1, Root: testLeaf(1)},
		{Origin: "vault.example/ünïcode", Size: audit.MaxTreeSize, Root: testLeaf(2)},
	} {
		got, err := audit.ParseCheckpoint(c.Body())
		if err != nil || got != c {
			t.Errorf("ParseCheckpoint(%q) = %+v, %v; want %+v", c.Body(), got, err, c)
		}
	}
}

func TestParseCheckpointStrict(t *testing.T) {
	root := base64.StdEncoding.EncodeToString(make([]byte, 32))
	good := "log\n5\n" + root + "\n"
	if _, err := audit.ParseCheckpoint(good); err != nil {
		t.Fatalf("good body: %v", err)
	}
	// The spec allows non-empty extension lines; they are ignored.
	if c, err := audit.ParseCheckpoint(good + "ext one\next-two\n"); err != nil || c.Size != 5 {
		t.Errorf("extension lines: %+v, %v", c, err)
	}
	short := base64.StdEncoding.EncodeToString(make([]byte, 31))
	long := base64.StdEncoding.EncodeToString(make([]byte, 33))
	for name, body := range map[string]string{
		"empty":                     "",
		"no final newline":          "log\n5\n" + root,
		"two lines":                 "log\n5\n",
		"empty origin":              "\n5\n" + root + "\n",
		"empty extension line":      good + "\n",
		"empty line between":        "log\n5\n" + root + "\n\next\n",
		"leading zero":              "log\n05\n" + root + "\n",
		"plus sign":                 "log\n+5\n" + root + "\n",
		"negative size":             "log\n-5\n" + root + "\n",
		"size with space":           "log\n5 \n" + root + "\n",
		"size overflow":             "log\n9223372036854775808\n" + root + "\n",
		"hex size":                  "log\n0x5\n" + root + "\n",
		"root 31 bytes":             "log\n5\n" + short + "\n",
		"root 33 bytes":             "log\n5\n" + long + "\n",
		"root unpadded":             "log\n5\n" + strings.TrimRight(root, "=") + "\n",
		"root url base64":           "log\n5\n" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)) + "\n",
		"root non-zero pad bits":    "log\n5\n" + root[:42] + "B=\n",
		"root hex":                  "log\n5\n" + strings.Repeat("00", 32) + "\n",
		"CRLF":                      "log\r\n5\r\n" + root + "\r\n",
		"control char in origin":    "lo\x01g\n5\n" + root + "\n",
		"invalid UTF-8 in origin":   "lo\xffg\n5\n" + root + "\n",
		"control char in extension": good + "e\tx\n",
	} {
		if c, err := audit.ParseCheckpoint(body); !errors.Is(err, audit.ErrMalformedCheckpoint) {
			t.Errorf("%s: ParseCheckpoint = %+v, %v; want ErrMalformedCheckpoint", name, c, err)
		}
	}
}

func TestOpenCheckpoint(t *testing.T) {
	s, vkey := testKey(t, testOrigin, 1)
	c := audit.Checkpoint{Origin: testOrigin, Size: 42, Root: testLeaf(42)}
	signed := signCheckpoint(t, s, c)

	got, err := audit.OpenCheckpoint(signed, vkey)
	if err != nil || got != c {
		t.Fatalf("OpenCheckpoint = %+v, %v; want %+v", got, err, c)
	}
	// Interop: the note is a standard signed note that note.Open accepts,
	// and its text is exactly the C2SP body.
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil || n.Text != c.Body() || !strings.HasPrefix(string(signed), testOrigin+"\n42\n") {
		t.Fatalf("note.Open: %v, text %q", err, n.Text)
	}

	// A witness cosignature (an unknown key) is ignored.
	ws, _ := testKey(t, "witness.example/w1", 9)
	cosigned, err := note.Sign(&note.Note{Text: c.Body(), Sigs: n.Sigs}, ws)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := audit.OpenCheckpoint(cosigned, vkey); err != nil || got != c {
		t.Errorf("cosigned: %+v, %v", got, err)
	}

	other, otherKey := testKey(t, testOrigin, 2) // same name, other key
	_, thirdKey := testKey(t, "other.example/audit", 3)
	altered := bytes.Replace(signed, []byte("\n42\n"), []byte("\n43\n"), 1)
	badSig := bytes.Clone(signed)
	badSig[len(badSig)-6] ^= 1 // inside the base64 signature
	foreign := signCheckpoint(t, s, audit.Checkpoint{Origin: "other.example/audit", Size: 42})
	notBody := func() []byte {
		m, err := note.Sign(&note.Note{Text: "hello\n"}, s)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}()
	tests := []struct {
		name string
		msg  []byte
		key  string
		want error
	}{
		{"other key, same name", signCheckpoint(t, other, c), vkey, audit.ErrCheckpointSignature},
		{"verified with the other key", signed, otherKey, audit.ErrCheckpointSignature},
		{"verified with another log's key", signed, thirdKey, audit.ErrCheckpointSignature},
		{"size altered", altered, vkey, audit.ErrCheckpointSignature},
		{"signature altered", badSig, vkey, audit.ErrCheckpointSignature},
		{"origin is not the key's name", foreign, vkey, audit.ErrCheckpointOrigin},
		{"signed text is not a checkpoint", notBody, vkey, audit.ErrMalformedCheckpoint},
		{"unsigned text", []byte(c.Body()), vkey, audit.ErrMalformedCheckpoint},
		{"empty", nil, vkey, audit.ErrMalformedCheckpoint},
		{"huge", bytes.Repeat([]byte("a"), 1<<20), vkey, audit.ErrMalformedCheckpoint},
		{"empty key", signed, "", audit.ErrVerifierKey},
		{"private key as verifier key", signed, "PRIVATE+KEY+" + vkey, audit.ErrVerifierKey},
		{"garbled key", signed, vkey[:len(vkey)-4] + "AAAA", audit.ErrVerifierKey},
	}
	for _, tt := range tests {
		got, err := audit.OpenCheckpoint(tt.msg, tt.key)
		if !errors.Is(err, tt.want) || got != (audit.Checkpoint{}) {
			t.Errorf("%s: OpenCheckpoint = %+v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

// Errors name the problem, never a key.
func TestOpenCheckpointErrorsHideKeys(t *testing.T) {
	s, vkey := testKey(t, testOrigin, 1)
	_, otherKey := testKey(t, testOrigin, 2)
	signed := signCheckpoint(t, s, audit.Checkpoint{Origin: testOrigin, Size: 1})
	for _, key := range []string{otherKey, vkey[:len(vkey)-4] + "AAAA"} {
		_, err := audit.OpenCheckpoint(signed, key)
		keyData := key[strings.LastIndex(key, "+")+1:]
		if err == nil || strings.Contains(err.Error(), keyData) {
			t.Errorf("error %v shows the key data", err)
		}
	}
}
