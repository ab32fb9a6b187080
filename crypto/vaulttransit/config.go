package vaulttransit

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// Config says where the Transit key lives and how to log in. Token and
// SecretID are secrets: String and GoString leave them out, and no error of
// this package quotes them.
type Config struct {
	Address   string // VAULT_ADDR, e.g. "https://vault.example:8200"
	Token     string // VAULT_TOKEN; empty to log in with AppRole
	Namespace string // VAULT_NAMESPACE (Vault Enterprise); empty for the root namespace
	CACert    string // VAULT_CACERT: PEM file of the CA that signed Vault's certificate

	// AppRole credentials (VAULT_ROLE_ID, VAULT_SECRET_ID), used only when
	// Token is empty. SecretID may be empty for a role created with
	// bind_secret_id=false.
	RoleID, SecretID string
	// AppRoleMount is where the AppRole auth method is mounted
	// (VAULT_APPROLE_MOUNT); empty means "approle".
	AppRoleMount string

	Mount string // Transit mount, e.g. "transit" or "kv/x/transit"
	Key   string // Transit key name

	// Timeout bounds each request to Vault, retries included; zero means
	// 10 s. A Vault that does not answer within it counts as unavailable.
	Timeout time.Duration
}

const (
	defaultTimeout      = 10 * time.Second
	defaultAppRoleMount = "approle"
	// maxURL bounds a --keys URL and each path-like Config field.
	maxURL = 1024
)

// String describes the configuration without its secrets.
func (c Config) String() string {
	auth := "none"
	switch {
	case c.Token != "":
		auth = "token"
	case c.RoleID != "":
		auth = "approle(" + c.appRoleMount() + ")"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "vaulttransit.Config{vault://%s/%s at %s", c.Mount, c.Key, c.Address)
	if c.Namespace != "" {
		fmt.Fprintf(&b, ", namespace %s", c.Namespace)
	}
	if c.CACert != "" {
		fmt.Fprintf(&b, ", CA %s", c.CACert)
	}
	fmt.Fprintf(&b, ", auth %s}", auth)
	return b.String()
}

// GoString is String, so that %#v cannot reach the token.
func (c Config) GoString() string { return c.String() }

func (c Config) appRoleMount() string {
	if c.AppRoleMount == "" {
		return defaultAppRoleMount
	}
	return c.AppRoleMount
}

func (c Config) timeout() time.Duration {
	if c.Timeout == 0 {
		return defaultTimeout
	}
	return c.Timeout
}

// validate checks everything that does not need Vault. Its errors never
// quote Token, SecretID or RoleID.
func (c Config) validate() error {
	if c.Address == "" {
		return errors.New("missing Vault address (VAULT_ADDR)")
	}
	if len(c.Address) > maxURL {
		return errors.New("invalid Vault address: too long")
	}
	u, err := url.Parse(c.Address)
	if err != nil || u.Host == "" && u.Scheme != "unix" || u.User != nil {
		return errors.New("invalid Vault address: want http(s)://host[:port]")
	}
	switch u.Scheme {
	case "http", "https", "unix":
	default:
		return fmt.Errorf("invalid Vault address: unsupported scheme %q", u.Scheme)
	}
	if c.Token == "" && c.RoleID == "" {
		return errors.New("no Vault credentials: set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole")
	}
	if c.Token == "" && !validPath(c.appRoleMount()) {
		return fmt.Errorf("invalid AppRole mount %q", c.appRoleMount())
	}
	if c.Namespace != "" && (len(c.Namespace) > maxURL || !validPath(strings.Trim(c.Namespace, "/"))) {
		return fmt.Errorf("invalid Vault namespace %q", c.Namespace)
	}
	if !validPath(c.Mount) || len(c.Mount) > maxURL {
		return fmt.Errorf("invalid Transit mount %q", c.Mount)
	}
	if !validSegment(c.Key) {
		return fmt.Errorf("invalid Transit key name %q", c.Key)
	}
	if c.Timeout < 0 {
		return errors.New("negative Vault timeout")
	}
	return nil
}

// ParseURL splits a --keys URL, vault://<mount>/<key>, into the Transit
// mount and key name. The mount may be nested ("vault://ns/x/transit/key"
// is mount "ns/x/transit", key "key"): the last segment is always the key.
// Segments use Vault's name syntax (letters, digits, '_', '-', '.', '@',
// starting and ending with a letter, digit or '_').
func ParseURL(u string) (mount, key string, err error) {
	const scheme = "vault://"
	if len(u) > maxURL {
		return "", "", errors.New("key provider URL too long")
	}
	if len(u) < len(scheme) || !strings.EqualFold(u[:len(scheme)], scheme) {
		return "", "", fmt.Errorf("key provider URL %q is not vault://<transit mount>/<key>", u)
	}
	rest := u[len(scheme):]
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", "", fmt.Errorf("key provider URL %q has no key name: want vault://<transit mount>/<key>", u)
	}
	mount, key = rest[:i], rest[i+1:]
	if !validPath(mount) {
		return "", "", fmt.Errorf("key provider URL %q: invalid Transit mount %q", u, mount)
	}
	if !validSegment(key) {
		return "", "", fmt.Errorf("key provider URL %q: invalid Transit key name %q", u, key)
	}
	return mount, key, nil
}

// ConfigFromEnv is ParseURL of url plus the standard Vault environment:
// VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE, VAULT_CACERT, and for AppRole
// VAULT_ROLE_ID, VAULT_SECRET_ID and VAULT_APPROLE_MOUNT. It fails if
// VAULT_ADDR is unset or there are no credentials.
func ConfigFromEnv(url string) (Config, error) {
	mount, key, err := ParseURL(url)
	if err != nil {
		return Config{}, err
	}
	c := Config{
		Address:      os.Getenv("VAULT_ADDR"),
		Token:        os.Getenv("VAULT_TOKEN"),
		Namespace:    os.Getenv("VAULT_NAMESPACE"),
		CACert:       os.Getenv("VAULT_CACERT"),
		RoleID:       os.Getenv("VAULT_ROLE_ID"),
		SecretID:     os.Getenv("VAULT_SECRET_ID"),
		AppRoleMount: os.Getenv("VAULT_APPROLE_MOUNT"),
		Mount:        mount,
		Key:          key,
	}
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// validPath reports whether p is one or more valid segments joined by '/'.
func validPath(p string) bool {
	if p == "" {
		return false
	}
	for s := range strings.SplitSeq(p, "/") {
		if !validSegment(s) {
			return false
		}
	}
	return true
}

// validSegment follows Vault's framework.GenericNameRegex, \w([\w-.@]*\w)?,
// with a length bound. It keeps '/', '?', '#', '%' and ".." out of the
// request paths we build.
func validSegment(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	word := func(c byte) bool {
		return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if word(c) {
			continue
		}
		if i == 0 || i == len(s)-1 || c != '-' && c != '.' && c != '@' {
			return false
		}
	}
	return true
}
