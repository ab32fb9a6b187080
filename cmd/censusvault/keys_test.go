package main_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/crypto/vaulttransit"
)

// storedWrapped is every wrapped key in a vault's database, as an
// attacker with the file would read it.
func storedWrapped(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	db := openDB(t, dir)
	out := map[string][]byte{}
	for _, q := range []string{
		`SELECT 'key ' || purpose || ' v' || version, wrapped FROM keys`,
		`SELECT 'data key ' || class || ' ' || commune || ' v' || version, wrapped FROM data_keys WHERE length(wrapped) > 0`,
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var name string
			var w []byte
			if err := rows.Scan(&name, &w); err != nil {
				t.Fatal(err)
			}
			out[name] = w
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if len(out) < 3 {
		t.Fatalf("found only %d wrapped keys in the database", len(out))
	}
	return out
}

// noKeyMaterial fails if r shows an age identity, a wrapped key (any 24
// bytes of its random body, or a Transit ciphertext) or one of secrets.
func noKeyMaterial(t *testing.T, what string, r result, wrapped map[string][]byte, secrets ...string) {
	t.Helper()
	out := r.stdout + r.stderr
	if strings.Contains(out, "AGE-SECRET-KEY") {
		t.Errorf("%s shows an age identity", what)
	}
	if regexp.MustCompile(`vault:v\d+:[A-Za-z0-9+/]`).MatchString(out) {
		t.Errorf("%s shows a Transit ciphertext", what)
	}
	for name, w := range wrapped {
		if strings.Contains(out, string(w[len(w)-24:])) || strings.Contains(out, hex.EncodeToString(w[len(w)-24:])) {
			t.Errorf("%s shows the wrapped %s", what, name)
		}
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("%s shows a secret", what)
		}
	}
}

// statusRows are the "class version wrapped-by live shredded" rows of
// `keys status`, joined by single spaces.
func statusRows(out string) []string {
	var rows []string
	re := regexp.MustCompile(`^(identifying|analytic)\s+(\d+)\s+(\S+)\s+(\d+)\s+(\d+)$`)
	for _, line := range strings.Split(out, "\n") {
		if m := re.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			rows = append(rows, strings.Join(m[1:], " "))
		}
	}
	return rows
}

// depositOne serves dir (with extra flags), deposits household no as
// user token and stops the server.
func depositOne(t *testing.T, dir, token string, no int, extra ...string) {
	t.Helper()
	srv := startServer(t, dir, extra...)
	if st, body := srv.do(t, http.MethodPost, "/v1/submissions", token, encrypt(t, srv.recipient(t), household(t, no))); st != http.StatusCreated {
		t.Fatalf("deposit: %d %s", st, body)
	}
	srv.stop(t)
}

func TestKeysAge(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	identity, err := os.ReadFile(filepath.Join(dir, "keyprovider.age"))
	if err != nil {
		t.Fatal(err)
	}

	// A fresh vault: version 1, the four system keys, no data keys.
	r := mustCV(t, "keys", "status", "--data", dir)
	if !strings.Contains(r.stdout, "data-key version for new writes: 1\n") {
		t.Errorf("keys status on a fresh vault:\n%s", r.stdout)
	}
	kek := regexp.MustCompile(`current key-encryption key \(system\): (age:[0-9a-f]{16})\n`).FindStringSubmatch(r.stdout)
	if kek == nil {
		t.Fatalf("keys status names no current age key-encryption key:\n%s", r.stdout)
	}
	for _, p := range []string{"ingest", "receipt-signer", "audit-signer", "record-key"} {
		if !regexp.MustCompile(`(?m)^` + p + `\s+1\s+` + kek[1] + `\s`).MatchString(r.stdout) {
			t.Errorf("keys status does not list %s v1 wrapped by %s:\n%s", p, kek[1], r.stdout)
		}
	}
	if rows := statusRows(r.stdout); len(rows) != 0 {
		t.Errorf("data keys on a fresh vault: %q", rows)
	}
	noKeyMaterial(t, "keys status", r, storedWrapped(t, dir), string(identity))

	token := addUser(t, dir, "lan", "enumerator", "18070-01")
	depositOne(t, dir, token, 1)
	r = mustCV(t, "keys", "status", "--data", dir)
	// Each class has its own identity (so that it can be shredded
	// nationally, backups included).
	classKEK := map[string]string{}
	for _, c := range []string{"identifying", "analytic"} {
		m := regexp.MustCompile(`current key-encryption key \(` + c + `\): (age:[0-9a-f]{16})\n`).FindStringSubmatch(r.stdout)
		if m == nil || m[1] == kek[1] {
			t.Fatalf("keys status names no separate %s key-encryption key:\n%s", c, r.stdout)
		}
		classKEK[c] = m[1]
	}
	want := []string{"analytic 1 " + classKEK["analytic"] + " 1 0", "identifying 1 " + classKEK["identifying"] + " 1 0"}
	if got := statusRows(r.stdout); strings.Join(got, ";") != strings.Join(want, ";") {
		t.Errorf("data keys after a deposit: %q, want %q", got, want)
	}
	wrapped := storedWrapped(t, dir)
	noKeyMaterial(t, "keys status", r, wrapped, string(identity))

	// Shredding: the confirmation must repeat the area exactly; EAs and
	// missing flags are refused; nothing changes until it is right.
	dataKeys := func() string {
		t.Helper()
		var n int
		var total int64
		if err := openDB(t, dir).QueryRow(`SELECT count(*), coalesce(sum(length(wrapped)), 0) FROM data_keys WHERE length(wrapped) > 0`).Scan(&n, &total); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%d keys, %d bytes", n, total)
	}
	before := dataKeys()
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"wrong confirmation", []string{"--class", "identifying", "--area", "18070", "--confirm", "18073"}, 2, "--confirm 18070"},
		{"no confirmation", []string{"--class", "identifying", "--area", "18070"}, 2, "--confirm 18070"},
		{"no class", []string{"--area", "18070", "--confirm", "18070"}, 2, "--class"},
		{"EA", []string{"--class", "identifying", "--area", "18070-01", "--confirm", "18070-01"}, 1, "enumeration area"},
		{"unknown area", []string{"--class", "identifying", "--area", "99999", "--confirm", "99999"}, 1, "99999"},
		{"bad class", []string{"--class", "operational", "--area", "18070", "--confirm", "18070"}, 1, "class"},
	} {
		r := cv(t, append([]string{"keys", "shred", "--data", dir}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("keys shred, %s: want exit %d and %q:\n%s", tc.name, tc.code, tc.msg, r)
		}
		if got := dataKeys(); got != before {
			t.Errorf("keys shred, %s, changed the data keys", tc.name)
		}
	}
	r = mustCV(t, "keys", "shred", "--class", "identifying", "--area", "18070", "--confirm", "18070", "--data", dir)
	if !strings.Contains(r.stdout, "shredded 1 identifying data keys of 1 communes under 18070") || !strings.Contains(r.stderr, "backups") {
		t.Errorf("keys shred:\n%s", r)
	}
	r = mustCV(t, "keys", "status", "--data", dir)
	want = []string{"analytic 1 " + classKEK["analytic"] + " 1 0", "identifying 1 - 0 1"}
	if got := statusRows(r.stdout); strings.Join(got, ";") != strings.Join(want, ";") {
		t.Errorf("data keys after the shred: %q, want %q", got, want)
	}

	// Rotation: version 2 for new writes; --kek is for Vault.
	r = mustCV(t, "keys", "rotate", "--data", dir)
	if !strings.Contains(r.stdout, "data-key version 2 is now used for new writes") {
		t.Errorf("keys rotate:\n%s", r)
	}
	if r := mustCV(t, "keys", "status", "--data", dir); !strings.Contains(r.stdout, "data-key version for new writes: 2\n") {
		t.Errorf("keys status after rotate:\n%s", r.stdout)
	}
	if r := cv(t, "keys", "rotate", "--kek", "--data", dir); r.code != 1 || !strings.Contains(r.stderr, "Vault") {
		t.Errorf("keys rotate --kek on age: want exit 1 pointing at Vault:\n%s", r)
	}
	if r := mustCV(t, "keys", "status", "--data", dir); !strings.Contains(r.stdout, "data-key version for new writes: 2\n") {
		t.Errorf("keys status after a refused rotate --kek:\n%s", r.stdout)
	}

	// Rewrap from the same identity finds nothing to do.
	if r := mustCV(t, "keys", "rewrap", "--from-keys", "age", "--data", dir); !strings.Contains(r.stdout, "re-wrapped 0 keys") {
		t.Errorf("keys rewrap --from-keys age (the same identity):\n%s", r)
	}
	// Moving to a new identity, as `keys rotate --kek` tells an age user
	// to: the four system keys (ingest, receipt and audit signers, record
	// key) move, with progress. (The class identities are not replaced
	// here, so the data keys stay as they are.)
	oldID := filepath.Join(dir, "old-keyprovider.age")
	if err := os.Rename(filepath.Join(dir, "keyprovider.age"), oldID); err != nil {
		t.Fatal(err)
	}
	r = mustCV(t, "keys", "rewrap", "--from-keys", "age:"+oldID, "--data", dir)
	if !strings.Contains(r.stderr, "re-wrapped 4/4 keys") {
		t.Errorf("keys rewrap --from-keys age: no progress line on stderr:\n%s", r)
	}
	if !strings.Contains(r.stdout, "re-wrapped 4 keys; no record was touched") {
		t.Errorf("keys rewrap --from-keys age:\n%s", r)
	}
	for name, w := range storedWrapped(t, dir) {
		old, ok := wrapped[name]
		if !ok {
			continue
		}
		if dataKey := strings.HasPrefix(name, "data key"); dataKey != (string(old) == string(w)) {
			t.Errorf("the %s: re-wrapped %v, want %v", name, string(old) != string(w), !dataKey)
		}
	}
	noKeyMaterial(t, "keys rewrap", r, wrapped, string(identity))
	noKeyMaterial(t, "keys rewrap", r, storedWrapped(t, dir))
	if r := mustCV(t, "keys", "rewrap", "--data", dir); !strings.Contains(r.stdout, "re-wrapped 0 keys") {
		t.Errorf("keys rewrap with nothing to do:\n%s", r)
	}
	if r := mustCV(t, "audit", "verify", "--data", dir); !strings.Contains(r.stdout, "audit chain OK") {
		t.Errorf("audit verify after key operations: %q", r.stdout)
	}
}

// vaultKeys is a unique vault://transit/NAME for one test, whose three
// Transit keys are destroyed when it ends.
func vaultKeys(t *testing.T) (spec string, cfg func(use string) vaulttransit.Config) {
	t.Helper()
	addr, token := os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN")
	if addr == "" || token == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("VAULT_ADDR and VAULT_TOKEN must be set in CI (.ci/run starts a Vault dev server)")
		}
		t.Skip("VAULT_ADDR and VAULT_TOKEN not set: no Vault server to test against")
	}
	var r [6]byte
	rand.Read(r[:])
	name := "cvcli-" + hex.EncodeToString(r[:])
	cfg = func(use string) vaulttransit.Config {
		return vaulttransit.Config{Address: addr, Token: token, Mount: "transit", Key: name + "-" + use, Timeout: 10 * time.Second}
	}
	t.Cleanup(func() {
		for _, use := range []string{"system", "identifying", "analytic"} {
			p, err := vaulttransit.New(context.Background(), cfg(use))
			if errors.Is(err, vaulttransit.ErrKeyNotFound) {
				continue
			}
			if err == nil {
				err = p.Destroy(context.Background())
			}
			if err != nil {
				t.Errorf("cleanup of Transit key %s-%s: %v", name, use, err)
			}
		}
	})
	return "vault://transit/" + name, cfg
}

// vaultInit makes a vault on the Transit keys of spec.
func vaultInit(t *testing.T, spec string) string {
	t.Helper()
	r := mustCV(t, "keys", "init-vault", "--keys", spec)
	if strings.Count(r.stderr, "ready (deletion_allowed false)") != 3 {
		t.Errorf("keys init-vault:\n%s", r)
	}
	dir := filepath.Join(t.TempDir(), "vault")
	mustCV(t, "init", "--data", dir, "--areas", filepath.Join("testdata", "areas.csv"), "--keys", spec)
	if _, err := os.Stat(filepath.Join(dir, "keyprovider.age")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("init --keys vault://… made an age identity: %v", err)
	}
	return dir
}

func TestKeysVault(t *testing.T) {
	spec, cfg := vaultKeys(t)
	t.Parallel()
	dir := vaultInit(t, spec)
	token := addUser(t, dir, "lan", "enumerator", "18070-01", "--keys", spec)
	depositOne(t, dir, token, 1, "--keys", spec)

	r := mustCV(t, "keys", "status", "--data", dir, "--keys", spec)
	name := strings.TrimPrefix(spec, "vault://transit/")
	for _, use := range []string{"system", "identifying", "analytic"} {
		if !strings.Contains(r.stdout, "current key-encryption key ("+use+"): vault:transit/"+name+"-"+use+":v1\n") {
			t.Errorf("keys status does not show the %s Transit key at v1:\n%s", use, r.stdout)
		}
	}
	want := []string{"analytic 1 vault:transit/" + name + "-analytic:v1 1 0", "identifying 1 vault:transit/" + name + "-identifying:v1 1 0"}
	if got := statusRows(r.stdout); strings.Join(got, ";") != strings.Join(want, ";") {
		t.Errorf("data keys: %q, want %q", got, want)
	}
	noKeyMaterial(t, "keys status", r, storedWrapped(t, dir), os.Getenv("VAULT_TOKEN"))

	r = mustCV(t, "keys", "rotate", "--kek", "--data", dir, "--keys", spec)
	if strings.Count(r.stderr, "is now at version 2") != 3 || !strings.Contains(r.stdout, "data-key version 2") {
		t.Errorf("keys rotate --kek:\n%s", r)
	}
	r = mustCV(t, "keys", "rewrap", "--data", dir, "--keys", spec)
	// Two data keys and four system keys.
	if !strings.Contains(r.stderr, "re-wrapped 6/6 keys") || !strings.Contains(r.stdout, "re-wrapped 6 keys") {
		t.Errorf("keys rewrap: no progress line on stderr, or not every key:\n%s", r)
	}
	if strings.Count(r.stderr, "min_decryption_version raised to 2") != 3 {
		t.Errorf("keys rewrap did not raise min_decryption_version of the three keys:\n%s", r)
	}
	noKeyMaterial(t, "keys rewrap", r, storedWrapped(t, dir), os.Getenv("VAULT_TOKEN"))
	r = mustCV(t, "keys", "status", "--data", dir, "--keys", spec)
	if strings.Contains(r.stdout, ":v1") || strings.Count(r.stdout, ":v2") != 3+2+4 {
		t.Errorf("keys status after rotate --kek and rewrap: want everything on v2:\n%s", r.stdout)
	}
	for _, use := range []string{"system", "identifying", "analytic"} {
		p, err := vaulttransit.New(context.Background(), cfg(use))
		if err != nil {
			t.Fatal(err)
		}
		if info, err := p.Info(context.Background()); err != nil || info.LatestVersion != 2 || info.MinDecryptionVersion != 2 {
			t.Errorf("Transit key %s: %+v, %v; want latest and min_decryption_version 2", use, info, err)
		}
	}
	// The vault serves on, on the new versions only.
	depositOne(t, dir, token, 2, "--keys", spec)
}

// TestKeysVaultNationalShred: after shredding the identifying class
// nationally, which deletes its Transit key, the vault still starts.
func TestKeysVaultNationalShred(t *testing.T) {
	spec, cfg := vaultKeys(t)
	t.Parallel()
	dir := vaultInit(t, spec)
	token := addUser(t, dir, "lan", "enumerator", "18070-01", "--keys", spec)
	depositOne(t, dir, token, 1, "--keys", spec)
	r := mustCV(t, "keys", "shred", "--class", "identifying", "--area", "VN", "--confirm", "VN", "--data", dir, "--keys", spec)
	if !strings.Contains(r.stdout, "deleted the Transit key") {
		t.Errorf("national keys shred:\n%s", r)
	}
	if _, err := vaulttransit.New(context.Background(), cfg("identifying")); !errors.Is(err, vaulttransit.ErrKeyNotFound) {
		t.Errorf("the identifying Transit key after a national shred: %v, want not found", err)
	}
	r = cv(t, "keys", "status", "--data", dir, "--keys", spec)
	if r.code != 0 || !strings.Contains(r.stdout, "identifying") {
		t.Errorf("keys status after the national shred: want exit 0, the identifying keys shown as shredded:\n%s", r)
	}
	srv := startServer(t, dir, "--keys", spec)
	if st, body := srv.do(t, http.MethodPost, "/v1/submissions", token, encrypt(t, srv.recipient(t), household(t, 2))); st != http.StatusGone {
		t.Errorf("deposit after the national identifying shred: %d %s, want 410", st, body)
	}
	srv.stop(t)
}

// TestKeysSwitchAgeToVault: moving a vault from the local age identity to
// Vault is one `keys rewrap --from-keys age --keys vault://…`; afterwards
// the identity file can go.
func TestKeysSwitchAgeToVault(t *testing.T) {
	spec, _ := vaultKeys(t)
	t.Parallel()
	dir := newVault(t)
	token := addUser(t, dir, "lan", "enumerator", "18070-01")
	depositOne(t, dir, token, 1)
	mustCV(t, "keys", "init-vault", "--keys", spec)

	r := mustCV(t, "keys", "rewrap", "--from-keys", "age", "--keys", spec, "--data", dir)
	if !strings.Contains(r.stderr, "re-wrapped 6/6 keys") || !strings.Contains(r.stdout, "re-wrapped 6 keys") {
		t.Errorf("keys rewrap --from-keys age --keys %s:\n%s", spec, r)
	}
	if err := os.Remove(filepath.Join(dir, "keyprovider.age")); err != nil {
		t.Fatal(err)
	}
	r = mustCV(t, "keys", "status", "--data", dir, "--keys", spec)
	if strings.Contains(r.stdout, "age:") || strings.Count(r.stdout, "vault:transit/") != 3+2+4 {
		t.Errorf("keys status after switching to Vault: want every key on Vault:\n%s", r.stdout)
	}
	depositOne(t, dir, token, 2, "--keys", spec)
}

// A national shred on the age provider deletes that class's identity, so
// backups cannot unwrap its data keys either; the vault keeps working for
// the other class.
func TestKeysAgeNationalShred(t *testing.T) {
	t.Parallel()
	dir := newVault(t)
	token := addUser(t, dir, "lan", "enumerator", "18070-01")
	depositOne(t, dir, token, 1)
	idFile := filepath.Join(dir, "keyprovider-identifying.age")
	if _, err := os.Stat(idFile); err != nil {
		t.Fatalf("init made no identifying identity: %v", err)
	}
	r := mustCV(t, "keys", "shred", "--class", "identifying", "--area", "VN", "--confirm", "VN", "--data", dir)
	if !strings.Contains(r.stdout, "deleted the identifying identity") {
		t.Errorf("national shred:\n%s", r)
	}
	if _, err := os.Stat(idFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the identifying identity is still there: %v", err)
	}
	if _, err := os.Stat(idFile + ".destroyed"); err != nil {
		t.Errorf("no marker of the destroyed identity: %v", err)
	}
	r = mustCV(t, "keys", "status", "--data", dir)
	if rows := statusRows(r.stdout); len(rows) != 2 || rows[1] != "identifying 1 - 0 1" {
		t.Errorf("status after the national shred: %q", rows)
	}
	// The analytic identity and the system keys are intact: the vault
	// still serves; a new identifying field cannot be sealed.
	srv := startServer(t, dir)
	st, body := srv.do(t, http.MethodPost, "/v1/submissions", token, encrypt(t, srv.recipient(t), household(t, 2)))
	if st != http.StatusGone {
		t.Errorf("deposit after the identifying class was shredded nationally: %d %s, want 410", st, body)
	}
	if st, _ := srv.do(t, http.MethodGet, "/v1/progress?area=18070-01", token, nil); st != http.StatusOK {
		t.Errorf("progress after the shred: %d", st)
	}
	srv.stop(t)
}
