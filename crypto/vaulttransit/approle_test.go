package vaulttransit_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/vaulttransit"
)

// appRole enables AppRole at a fresh mount and creates a role with the
// given policy and token TTL; it returns the mount, role ID and secret ID.
func (e env) appRole(t *testing.T, policy, ttl string) (mount, roleID, secretID string) {
	t.Helper()
	root := e.root(t)
	mount = randomName("cvtest-approle-")
	if err := root.Sys().EnableAuthWithOptions(mount, &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Sys().DisableAuth(mount) })
	role := "auth/" + mount + "/role/censusvault"
	if _, err := root.Logical().Write(role, map[string]any{
		"token_policies": []string{policy}, "token_ttl": ttl, "token_max_ttl": ttl,
	}); err != nil {
		t.Fatal(err)
	}
	r, err := root.Logical().Read(role + "/role-id")
	if err != nil {
		t.Fatal(err)
	}
	s, err := root.Logical().Write(role+"/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	return mount, r.Data["role_id"].(string), s.Data["secret_id"].(string)
}

// appRoleProvider logs in the way `censusvault serve` does: ConfigFromEnv
// with the AppRole variables and no token.
func appRoleProvider(t *testing.T, addr, key, mount, roleID, secretID string) *vaulttransit.Provider {
	t.Helper()
	clearVaultEnv(t)
	t.Setenv("VAULT_ADDR", addr)
	t.Setenv("VAULT_ROLE_ID", roleID)
	t.Setenv("VAULT_SECRET_ID", secretID)
	t.Setenv("VAULT_APPROLE_MOUNT", mount)
	cfg, err := vaulttransit.ConfigFromEnv("vault://transit/" + key)
	if err != nil {
		t.Fatal(err)
	}
	p, err := vaulttransit.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New with AppRole: %v", err)
	}
	return p
}

func TestAppRole(t *testing.T) {
	e := vaultEnv(t)
	admin, cfg := newKey(t, e)
	ctx := context.Background()
	pol := e.policy(t, keyPolicy(cfg.Key, "encrypt", "decrypt", "rewrap"))
	mount, roleID, secretID := e.appRole(t, pol, "1h")
	cp := newCountingProxy(t, e)
	p := appRoleProvider(t, cp.URL, cfg.Key, mount, roleID, secretID)
	login := "/v1/auth/" + mount + "/login"
	if n := cp.count(login); n != 1 {
		t.Fatalf("%d logins at New, want 1", n)
	}

	key := []byte("a data key")
	w, err := p.WrapKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := p.UnwrapKey(ctx, w); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("UnwrapKey = %q, %v", got, err)
	}
	if _, err := admin.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if rw, err := p.RewrapKeys(ctx, [][]byte{w}); err != nil || !bytes.HasPrefix(rw[0], []byte("vault:v2:")) {
		t.Fatalf("RewrapKeys = %q, %v", rw, err)
	}
	// The policy allows no administration.
	if _, err := p.Rotate(ctx); !errors.Is(err, vaulttransit.ErrUnavailable) || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("Rotate with the data-path role = %v, want permission denied", err)
	}
	if n := cp.count(login); n != 1 {
		t.Fatalf("%d logins after a denial within 2 s of the last, want 1", n)
	}

	// A revoked token: the provider logs in again (at most every 2 s).
	if _, err := e.root(t).Logical().Write("sys/leases/revoke-prefix/auth/"+mount+"/login", nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	if got, err := p.UnwrapKey(ctx, w); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("UnwrapKey after the token was revoked = %q, %v", got, err)
	}
	if n := cp.count(login); n != 2 {
		t.Fatalf("%d logins after the token was revoked, want 2", n)
	}
}

// A token that expires is replaced before it does.
func TestAppRoleShortTTL(t *testing.T) {
	e := vaultEnv(t)
	_, cfg := newKey(t, e)
	ctx := context.Background()
	pol := e.policy(t, keyPolicy(cfg.Key, "encrypt", "decrypt"))
	mount, roleID, secretID := e.appRole(t, pol, "2s")
	cp := newCountingProxy(t, e)
	p := appRoleProvider(t, cp.URL, cfg.Key, mount, roleID, secretID)
	for i := range 3 {
		if _, err := p.WrapKey(ctx, []byte("k")); err != nil {
			t.Fatalf("WrapKey %d: %v", i, err)
		}
		time.Sleep(1100 * time.Millisecond)
	}
	if n := cp.count("/v1/auth/" + mount + "/login"); n < 2 {
		t.Fatalf("%d logins in 3.3 s with a 2 s token TTL", n)
	}
}

// Denied is unavailable, never a decryption failure: the broker must answer
// 503, not treat the data as unreadable.
func TestAppRoleDenied(t *testing.T) {
	e := vaultEnv(t)
	admin, cfg := newKey(t, e)
	ctx := context.Background()
	w, err := admin.WrapKeys(ctx, [][]byte{[]byte("a data key")})
	if err != nil {
		t.Fatal(err)
	}
	pol := e.policy(t, keyPolicy(cfg.Key, "encrypt"))
	mount, roleID, secretID := e.appRole(t, pol, "1h")
	p := appRoleProvider(t, e.addr, cfg.Key, mount, roleID, secretID)
	if _, err := p.WrapKey(ctx, []byte("k")); err != nil {
		t.Fatalf("WrapKey with encrypt rights: %v", err)
	}
	for name, call := range map[string]func() error{
		"UnwrapKey":  func() error { _, err := p.UnwrapKey(ctx, w[0]); return err },
		"UnwrapKeys": func() error { _, err := p.UnwrapKeys(ctx, w); return err },
		"RewrapKeys": func() error { _, err := p.RewrapKeys(ctx, w); return err },
	} {
		err := call()
		if !errors.Is(err, vaulttransit.ErrUnavailable) || errors.Is(err, crypto.ErrDecrypt) ||
			!strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s without decrypt rights = %v, want ErrUnavailable: permission denied", name, err)
		}
	}

	// Wrong credentials fail at New, as unavailable, quoting neither.
	badSecret := "DISTINCTIVE-wrong-secret-id"
	clearVaultEnv(t)
	bad := vaulttransit.Config{Address: e.addr, RoleID: roleID, SecretID: badSecret, AppRoleMount: mount, Mount: "transit", Key: cfg.Key}
	_, err = vaulttransit.New(ctx, bad)
	if !errors.Is(err, vaulttransit.ErrUnavailable) || strings.Contains(err.Error(), badSecret) || strings.Contains(err.Error(), roleID) {
		t.Fatalf("New with a wrong secret ID = %v", err)
	}
}
