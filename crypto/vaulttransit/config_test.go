package vaulttransit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/crypto/vaulttransit"
)

func TestParseURL(t *testing.T) {
	long := strings.Repeat("a", 256)
	for _, tc := range []struct {
		in         string
		mount, key string // empty: want an error
	}{
		{"vault://transit/censusvault", "transit", "censusvault"},
		{"VAULT://transit/censusvault", "transit", "censusvault"},
		{"vault://kv/x/transit/key", "kv/x/transit", "key"},
		{"vault://t/k", "t", "k"},
		{"vault://transit-prod/identifying.v1", "transit-prod", "identifying.v1"},
		{"vault://transit/a@b", "transit", "a@b"},
		{"vault://transit/_k_", "transit", "_k_"},
		{"vault://transit/" + long, "transit", long},             // 256: the bound
		{"vault://transit/" + long + "a", "", ""},                // 257
		{"vault://transit/" + long[:255], "transit", long[:255]}, // 255
		{"vault://" + strings.Repeat("m/", 600) + "k", "", ""},   // over maxURL
		{"", "", ""},
		{"vault:/", "", ""},
		{"vault://", "", ""},
		{"vault://transit", "", ""},
		{"vault://transit/", "", ""},
		{"vault:///key", "", ""},
		{"vault://transit//key", "", ""},
		{"vault://transit/key/", "", ""},
		{"vault://transit/../key", "", ""},
		{"vault://transit/./key", "", ""},
		{"vault://transit/-key", "", ""},
		{"vault://transit/key-", "", ""},
		{"vault://transit/ke y", "", ""},
		{"vault://transit/key?x=1", "", ""},
		{"vault://transit/key#f", "", ""},
		{"vault://transit/k%2Fey", "", ""},
		{"vault://transit/ké", "", ""},
		{"vault:transit/key", "", ""},
		{"https://transit/key", "", ""},
		{"age://transit/key", "", ""},
		{"transit/key", "", ""},
	} {
		mount, key, err := vaulttransit.ParseURL(tc.in)
		if tc.mount == "" {
			if err == nil {
				t.Errorf("ParseURL(%.40q) = %q, %q; want an error", tc.in, mount, key)
			}
			continue
		}
		if err != nil || mount != tc.mount || key != tc.key {
			t.Errorf("ParseURL(%.40q) = %q, %q, %v; want %q, %q", tc.in, mount, key, err, tc.mount, tc.key)
		}
	}
}

// clearVaultEnv unsets every variable ConfigFromEnv and the api client
// read, for the duration of the test.
func clearVaultEnv(t *testing.T) {
	for _, v := range []string{"VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT",
		"VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_APPROLE_MOUNT", "VAULT_AGENT_ADDR"} {
		t.Setenv(v, "")
	}
}

func TestConfigFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		url     string
		wantErr string
		check   func(vaulttransit.Config) bool
	}{
		{"token", map[string]string{"VAULT_ADDR": "http://127.0.0.1:8200", "VAULT_TOKEN": "tok"}, "vault://transit/k", "",
			func(c vaulttransit.Config) bool {
				return c.Address == "http://127.0.0.1:8200" && c.Token == "tok" && c.Mount == "transit" && c.Key == "k"
			}},
		{"approle", map[string]string{"VAULT_ADDR": "https://v:8200", "VAULT_ROLE_ID": "r", "VAULT_SECRET_ID": "s",
			"VAULT_APPROLE_MOUNT": "ar", "VAULT_NAMESPACE": "ns1/", "VAULT_CACERT": "/etc/ca.pem"}, "vault://a/b/k", "",
			func(c vaulttransit.Config) bool {
				return c.RoleID == "r" && c.SecretID == "s" && c.AppRoleMount == "ar" && c.Namespace == "ns1/" &&
					c.CACert == "/etc/ca.pem" && c.Mount == "a/b" && c.Key == "k" && c.Token == ""
			}},
		{"no address", map[string]string{"VAULT_TOKEN": "tok"}, "vault://transit/k", "VAULT_ADDR", nil},
		{"no credentials", map[string]string{"VAULT_ADDR": "http://v"}, "vault://transit/k", "no Vault credentials", nil},
		{"secret id alone", map[string]string{"VAULT_ADDR": "http://v", "VAULT_SECRET_ID": "s"}, "vault://transit/k", "no Vault credentials", nil},
		{"bad scheme", map[string]string{"VAULT_ADDR": "ftp://v", "VAULT_TOKEN": "tok"}, "vault://transit/k", "scheme", nil},
		{"userinfo", map[string]string{"VAULT_ADDR": "http://u:p@v", "VAULT_TOKEN": "tok"}, "vault://transit/k", "address", nil},
		{"bad url", map[string]string{"VAULT_ADDR": "http://v", "VAULT_TOKEN": "tok"}, "vault://transit", "key name", nil},
		{"bad approle mount", map[string]string{"VAULT_ADDR": "http://v", "VAULT_ROLE_ID": "r", "VAULT_APPROLE_MOUNT": "a/../b"}, "vault://transit/k", "AppRole mount", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearVaultEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := vaulttransit.ConfigFromEnv(tc.url)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !tc.check(c) {
				t.Fatalf("ConfigFromEnv = %#v (%+v), %v", c, c, err)
			}
		})
	}
}

func TestConfigRedacted(t *testing.T) {
	const token, secretID, roleID = "hvs.DISTINCTIVE-token-value", "DISTINCTIVE-secret-id", "DISTINCTIVE-role-id"
	for _, c := range []vaulttransit.Config{
		{Address: "http://127.0.0.1:1", Token: token, Mount: "transit", Key: "k"},
		{Address: "http://127.0.0.1:1", RoleID: roleID, SecretID: secretID, Mount: "transit", Key: "k"},
	} {
		s := fmt.Sprintf("%v %+v %#v %s", c, c, c, c)
		for _, secret := range []string{token, secretID, roleID} {
			if strings.Contains(s, secret) {
				t.Errorf("formatted Config shows a credential: %s", s)
			}
		}
		if !strings.Contains(s, "vault://transit/k") {
			t.Errorf("formatted Config does not name its key: %s", s)
		}
	}
}

// New fails on an invalid Config before any request, and its errors quote
// no credential.
func TestNewValidates(t *testing.T) {
	const token = "hvs.DISTINCTIVE-token-value"
	good := vaulttransit.Config{Address: "http://127.0.0.1:1", Token: token, Mount: "transit", Key: "k", Timeout: 500 * time.Millisecond}
	for _, tc := range []struct {
		name string
		edit func(*vaulttransit.Config)
	}{
		{"no address", func(c *vaulttransit.Config) { c.Address = "" }},
		{"no credentials", func(c *vaulttransit.Config) { c.Token = "" }},
		{"bad mount", func(c *vaulttransit.Config) { c.Mount = "a//b" }},
		{"bad key", func(c *vaulttransit.Config) { c.Key = "a/b" }},
		{"negative timeout", func(c *vaulttransit.Config) { c.Timeout = -1 }},
		{"bad namespace", func(c *vaulttransit.Config) { c.Namespace = "a b" }},
		{"unreachable", func(c *vaulttransit.Config) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			p, err := vaulttransit.New(context.Background(), c)
			if err == nil {
				t.Fatalf("New = %v, want an error", p)
			}
			if strings.Contains(err.Error(), token) {
				t.Fatalf("error shows the token: %v", err)
			}
			if unreachable := tc.name == "unreachable"; errors.Is(err, vaulttransit.ErrUnavailable) != unreachable {
				t.Fatalf("errors.Is(%v, ErrUnavailable) = %v, want %v", err, !unreachable, unreachable)
			}
		})
	}
}
