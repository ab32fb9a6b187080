package agekey_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
)

func create(t *testing.T) (*agekey.Provider, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), agekey.FileName)
	p, err := agekey.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	return p, path
}

func TestCreateWrites0600(t *testing.T) {
	p, path := create(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("mode %04o, want 0600", perm)
	}
	if !strings.HasPrefix(p.Recipient(), "age1pq1") {
		t.Fatalf("recipient %q", p.Recipient())
	}
	// The file is an age identity file the age CLI could use.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil || len(ids) != 1 {
		t.Fatalf("ParseIdentities: %d, %v", len(ids), err)
	}
	hid, ok := ids[0].(*age.HybridIdentity)
	if !ok || hid.Recipient().String() != p.Recipient() {
		t.Fatal("file does not hold the provider's hybrid identity")
	}
}

func TestCreateRefusesOverwrite(t *testing.T) {
	_, path := create(t)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = agekey.Create(path)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("err = %v, want an already-exists error", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("existing file was changed")
	}
	if _, err := agekey.Create(filepath.Join(t.TempDir(), "missing", agekey.FileName)); err == nil {
		t.Fatal("Create succeeded without a parent directory")
	}
}

func TestLoad(t *testing.T) {
	ctx := context.Background()
	p, path := create(t)
	loaded, err := agekey.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Recipient() != p.Recipient() {
		t.Fatal("loaded provider has another recipient")
	}
	w, err := p.WrapKey(ctx, []byte("key"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := loaded.UnwrapKey(ctx, w); err != nil || string(got) != "key" {
		t.Fatalf("UnwrapKey = %q, %v", got, err)
	}
}

func TestLoadRefusesOpenPermissions(t *testing.T) {
	_, path := create(t)
	for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o660, 0o602, 0o620} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := agekey.Load(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("mode %04o: err = %v, want a chmod 600 hint", mode, err)
		}
	}
	for _, mode := range []fs.FileMode{0o600, 0o400} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := agekey.Load(path); err != nil {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	_, err := agekey.Load(filepath.Join(dir, agekey.FileName))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "run censusvault init first") {
		t.Fatalf("missing file: err = %v", err)
	}
	x25519, _ := age.GenerateX25519Identity()
	pq1, _ := age.GenerateHybridIdentity()
	pq2, _ := age.GenerateHybridIdentity()
	for name, content := range map[string]string{
		"empty":        "",
		"comments":     "# nothing\n",
		"x25519":       x25519.String() + "\n",
		"two":          pq1.String() + "\n" + pq2.String() + "\n",
		"garbage":      "AGE-SECRET-KEY-PQ-1NOTAKEY\n",
		"too large":    strings.Repeat("#", 17<<10),
		"secret typo":  strings.Replace(pq1.String(), "1", "l", 1) + "\n",
		"corrupted pq": pq1.String()[:len(pq1.String())-1] + "Q\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := agekey.Load(path)
			if err == nil {
				t.Fatal("Load accepted it")
			}
			// Errors never quote key material.
			for _, s := range []string{pq1.String(), pq2.String(), x25519.String(), pq1.String()[19:40]} {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("error %q quotes a key", err)
				}
			}
		})
	}
	if _, err := agekey.Load(dir); err == nil {
		t.Fatal("Load accepted a directory")
	}
}

func TestWrapUnwrap(t *testing.T) {
	ctx := context.Background()
	p, _ := create(t)
	other, _ := create(t)
	key := bytes.Repeat([]byte{7}, 32)
	w, err := p.WrapKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	hdr := "agekey/v1 " + p.Fingerprint() + "\n"
	if !bytes.HasPrefix(w, []byte(hdr+"age-encryption.org/v1\n-> mlkem768x25519 ")) {
		t.Fatalf("wrapped key is not a fingerprint line and a binary hybrid age file: %.60q", w)
	}
	if l, err := p.KEKOf(w); err != nil || l != "age:"+p.Fingerprint() {
		t.Fatalf("KEKOf = %q, %v", l, err)
	}
	if cur, _ := p.CurrentKEK(ctx); cur != "age:"+p.Fingerprint() || other.Fingerprint() == p.Fingerprint() {
		t.Fatalf("CurrentKEK = %q; fingerprints %s, %s", cur, p.Fingerprint(), other.Fingerprint())
	}
	// Another identity refuses it from the fingerprint alone; with the
	// fingerprint forged, from the age file.
	if _, err := other.UnwrapKey(ctx, w); !errors.Is(err, crypto.ErrDecrypt) {
		t.Fatalf("other identity: %v", err)
	}
	forged := append([]byte("agekey/v1 "+other.Fingerprint()+"\n"), w[len(hdr):]...)
	if _, err := other.UnwrapKey(ctx, forged); !errors.Is(err, crypto.ErrDecrypt) {
		t.Fatalf("forged fingerprint: %v", err)
	}
	if got, err := p.UnwrapKey(ctx, w); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("UnwrapKey = %x, %v", got, err)
	}
	x25519, _ := age.GenerateX25519Identity()
	var classic bytes.Buffer
	cw, _ := age.Encrypt(&classic, x25519.Recipient())
	cw.Write(key)
	cw.Close()
	twoStanzas := func() []byte {
		var buf bytes.Buffer
		r1, _ := age.ParseHybridRecipient(p.Recipient())
		r2, _ := age.ParseHybridRecipient(other.Recipient())
		w, _ := age.Encrypt(&buf, r1, r2)
		w.Write(key)
		w.Close()
		return buf.Bytes()
	}()
	flipped := bytes.Clone(w)
	flipped[len(flipped)-1] ^= 1
	for name, tc := range map[string]struct {
		p *agekey.Provider
		w []byte
	}{
		"other provider": {other, w},
		"flipped":        {p, flipped},
		"truncated":      {p, w[:len(w)-1]},
		"empty":          {p, nil},
		"garbage":        {p, []byte("garbage")},
		"x25519":         {p, classic.Bytes()},
		"two stanzas":    {p, twoStanzas},
		"too large":      {p, append(bytes.Clone(w), make([]byte, 64<<10)...)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := tc.p.UnwrapKey(ctx, tc.w); err != crypto.ErrDecrypt {
				t.Fatalf("err = %v, want crypto.ErrDecrypt", err)
			}
		})
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.WrapKey(cancelled, key); !errors.Is(err, context.Canceled) {
		t.Fatalf("WrapKey with a cancelled context: %v", err)
	}
}

func TestBatch(t *testing.T) {
	ctx := context.Background()
	p, _ := create(t)
	keys := [][]byte{[]byte("a"), []byte("b"), {}}
	ws, err := p.WrapKeys(ctx, keys)
	if err != nil || len(ws) != len(keys) {
		t.Fatalf("WrapKeys: %d, %v", len(ws), err)
	}
	got, err := p.UnwrapKeys(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		if !bytes.Equal(got[i], keys[i]) {
			t.Fatalf("key %d = %q, want %q", i, got[i], keys[i])
		}
	}
	ws[1] = []byte("garbage")
	if got, err := p.UnwrapKeys(ctx, ws); err != crypto.ErrDecrypt || got != nil {
		t.Fatalf("UnwrapKeys with one bad key = %v, %v", got, err)
	}
}

func TestStringRedacts(t *testing.T) {
	p, path := create(t)
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(content, []byte("AGE-SECRET-KEY-PQ-1"))
	if i < 0 {
		t.Fatal("no secret in file")
	}
	secret := string(bytes.TrimSpace(content[i:]))
	for _, s := range []string{p.String(), p.GoString()} {
		if strings.Contains(s, secret) || strings.Contains(strings.ToLower(s), strings.ToLower(secret[19:])) {
			t.Fatalf("String leaks the secret: %q", s)
		}
	}
}
