package client_test

import (
	"errors"
	"testing"

	"github.com/censusvault/censusvault/broker/client"
)

// The stolen-on-the-wire token: a client with a token and a plain http
// URL to another host would send Authorization: Bearer in clear. New
// refuses unless the caller says the network is trusted.
func TestPlainHTTPTokenRefused(t *testing.T) {
	for _, c := range []struct {
		url, token string
		insecure   bool
		ok         bool
	}{
		{"http://vault.census.invalid:8440", "tok", false, false},
		{"http://10.0.0.5:8440", "tok", false, false},
		{"http://[2001:db8::1]:8440", "tok", false, false},
		{"http://vault.census.invalid:8440", "tok", true, true}, // said so
		{"http://vault.census.invalid:8440", "", false, true},   // no token to leak (public routes)
		{"https://vault.census.invalid:8440", "tok", false, true},
		{"http://127.0.0.1:8440", "tok", false, true},
		{"http://127.9.9.9:8440", "tok", false, true},
		{"http://[::1]:8440", "tok", false, true},
		{"http://LocalHost:8440", "tok", false, true},
	} {
		_, err := client.New(client.Opts{BaseURL: c.url, Token: c.token, InsecureHTTP: c.insecure})
		if c.ok && err != nil {
			t.Errorf("%s (token %v, insecure %v): %v", c.url, c.token != "", c.insecure, err)
		}
		if !c.ok && !errors.Is(err, client.ErrPlainHTTP) {
			t.Errorf("%s (token %v, insecure %v): err %v, want ErrPlainHTTP", c.url, c.token != "", c.insecure, err)
		}
	}
}
