package audit_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/audit"
)

// depositV2Bytes is katV2Bytes with "form_sha256" between "decision"
// and "index" (JCS order), written out by hand.
const depositV2Bytes = `{"action":"submission.deposit","actor":"user:alice","area":"42.436.18001","decision":"allow","form_sha256":"5d41402abc4b2a76b9719d911017c592e2f1ab1c57a0bc58b7f4c3c1a3b5e8f0","index":17,"nonce":"000102030405060708090a0b0c0d0e0f","outcome":"ok","policy_hash":"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","purpose":"census enumeration","reason":"","release_digest":"","resources":["submission:0b7e6a4c-2f5e-4d1a-9c3b-8a1f2e3d4c5b"],"roles":["enumerator","team_leader"],"rule":"p, team_leader, 42.436, submission.deposit, allow","time":"2019-04-01T07:30:00.12Z","v":2}`

const katFormSHA = "5d41402abc4b2a76b9719d911017c592e2f1ab1c57a0bc58b7f4c3c1a3b5e8f0"

// TestFormSHA256: a deposit's form SHA-256 encodes as "form_sha256" in
// its JCS place and decodes back; events without one (every event
// written before the key existed) keep their exact bytes; an empty one
// is not canonical and says so; misplaced, duplicated or mistyped ones
// are refused.
func TestFormSHA256(t *testing.T) {
	e := katV2Event()
	e.FormSHA256 = katFormSHA
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != depositV2Bytes {
		t.Fatalf("Encode =\n%s\nwant\n%s", b, depositV2Bytes)
	}
	d, err := audit.Decode(b)
	if err != nil || d.FormSHA256 != katFormSHA {
		t.Fatalf("Decode = %+v, %v; want FormSHA256 %s", d, err, katFormSHA)
	}
	if again, _ := d.Encode(); !bytes.Equal(again, b) {
		t.Error("the decoded event does not encode to the same bytes")
	}
	for _, old := range []string{katBytes, katV2Bytes, zeroBytes, releaseBytes} {
		d, err := audit.Decode([]byte(old))
		if err != nil || d.FormSHA256 != "" {
			t.Errorf("Decode(%.40s…) = FormSHA256 %q, %v; want none", old, d.FormSHA256, err)
			continue
		}
		if again, _ := d.Encode(); string(again) != old {
			t.Errorf("an event without a form SHA-256 no longer encodes to its bytes: %.60s…", again)
		}
	}
	_, err = audit.Decode([]byte(strings.Replace(katV2Bytes, `"decision":"allow",`, `"decision":"allow","form_sha256":"",`, 1)))
	if !errors.Is(err, audit.ErrNotCanonical) || !strings.Contains(err.Error(), `"form_sha256" is empty`) {
		t.Errorf("empty form_sha256: %v", err)
	}
	for name, in := range map[string]string{
		"number":       strings.Replace(depositV2Bytes, `"form_sha256":"`+katFormSHA+`"`, `"form_sha256":1`, 1),
		"null":         strings.Replace(depositV2Bytes, `"form_sha256":"`+katFormSHA+`"`, `"form_sha256":null`, 1),
		"duplicate":    strings.Replace(depositV2Bytes, `"index":17,`, `"form_sha256":"`+katFormSHA+`","index":17,`, 1),
		"out of order": strings.Replace(strings.Replace(depositV2Bytes, `"form_sha256":"`+katFormSHA+`",`, ``, 1), `"rule":`, `"form_sha256":"`+katFormSHA+`","rule":`, 1),
	} {
		if _, err := audit.Decode([]byte(in)); err == nil {
			t.Errorf("%s form_sha256 decoded", name)
		} else if name == "out of order" && !errors.Is(err, audit.ErrNotCanonical) {
			t.Errorf("%s form_sha256: %v, want ErrNotCanonical", name, err)
		}
	}
}
