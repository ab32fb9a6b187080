package vaulttransit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// KeyInfo is what Vault says about the Transit key: names and versions,
// never key material.
type KeyInfo struct {
	Name                 string
	Type                 string // e.g. "aes256-gcm96"
	LatestVersion        int
	MinDecryptionVersion int
	MinEncryptionVersion int // 0: the latest version
	DeletionAllowed      bool
	Exportable           bool
	AllowPlaintextBackup bool
}

// keyState is KeyInfo and what New and CreateKey check besides.
type keyState struct {
	KeyInfo
	supportsEncryption, supportsDecryption, derived bool
}

// usable reports why the data path could not use the key, if it cannot.
func (k keyState) usable() error {
	switch {
	case !k.supportsEncryption || !k.supportsDecryption:
		return fmt.Errorf("key type %s cannot encrypt and decrypt", k.Type)
	case k.derived:
		return errors.New("key derivation is enabled: censusvault needs a key without derivation")
	}
	return nil
}

// Info reads the Transit key's configuration (transit/keys/<key>). A
// missing key is an error wrapping ErrKeyNotFound.
func (p *Provider) Info(ctx context.Context) (KeyInfo, error) {
	k, err := p.readKey(ctx)
	return k.KeyInfo, err
}

func (p *Provider) readKey(ctx context.Context) (keyState, error) {
	if err := ctx.Err(); err != nil {
		return keyState{}, err
	}
	rep, err := p.do(ctx, http.MethodGet, p.cfg.Mount+"/keys/"+p.cfg.Key, nil)
	if err != nil {
		return keyState{}, p.unavailable("read key", nil, err)
	}
	if rep.status != http.StatusOK {
		if rep.status == http.StatusNotFound {
			p.setInfo(KeyInfo{}, false)
		}
		return keyState{}, p.unavailable("read key", rep, nil)
	}
	var out struct {
		Data struct {
			Name                 string `json:"name"`
			Type                 string `json:"type"`
			LatestVersion        int    `json:"latest_version"`
			MinDecryptionVersion int    `json:"min_decryption_version"`
			MinEncryptionVersion int    `json:"min_encryption_version"`
			DeletionAllowed      bool   `json:"deletion_allowed"`
			Exportable           bool   `json:"exportable"`
			AllowPlaintextBackup bool   `json:"allow_plaintext_backup"`
			SupportsEncryption   bool   `json:"supports_encryption"`
			SupportsDecryption   bool   `json:"supports_decryption"`
			Derived              bool   `json:"derived"`
		} `json:"data"`
	}
	if json.Unmarshal(rep.body, &out) != nil || out.Data.LatestVersion < 1 {
		return keyState{}, p.unexpected("read key")
	}
	d := out.Data
	k := keyState{
		KeyInfo: KeyInfo{
			Name:                 d.Name,
			Type:                 d.Type,
			LatestVersion:        d.LatestVersion,
			MinDecryptionVersion: d.MinDecryptionVersion,
			MinEncryptionVersion: d.MinEncryptionVersion,
			DeletionAllowed:      d.DeletionAllowed,
			Exportable:           d.Exportable,
			AllowPlaintextBackup: d.AllowPlaintextBackup,
		},
		supportsEncryption: d.SupportsEncryption,
		supportsDecryption: d.SupportsDecryption,
		derived:            d.Derived,
	}
	p.setInfo(k.KeyInfo, true)
	return k, nil
}

// cachedInfo is Info at most kekCacheTTL old; one goroutine refreshes it
// while the others wait for its answer.
func (p *Provider) cachedInfo(ctx context.Context) (KeyInfo, error) {
	if info, ok := p.freshInfo(); ok {
		return info, nil
	}
	p.refreshMu.Lock()
	defer p.refreshMu.Unlock()
	if info, ok := p.freshInfo(); ok {
		return info, nil
	}
	return p.Info(ctx)
}

func (p *Provider) freshInfo() (KeyInfo, bool) {
	p.infoMu.Lock()
	defer p.infoMu.Unlock()
	if p.infoAt.IsZero() || time.Since(p.infoAt) > kekCacheTTL {
		return KeyInfo{}, false
	}
	return p.info, true
}

// setInfo caches info, or with ok false forgets what was cached.
func (p *Provider) setInfo(info KeyInfo, ok bool) {
	p.infoMu.Lock()
	defer p.infoMu.Unlock()
	p.info, p.infoAt = info, time.Time{}
	if ok {
		p.infoAt = time.Now()
	}
}

// Rotate adds a new version to the Transit key (transit/keys/<key>/rotate)
// and returns it. New wraps use it at once; blobs wrapped under older
// versions still unwrap until SetMinDecryptionVersion retires them, and
// RewrapKeys moves them to the new version.
func (p *Provider) Rotate(ctx context.Context) (newVersion int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	rep, err := p.do(ctx, http.MethodPost, p.cfg.Mount+"/keys/"+p.cfg.Key+"/rotate", nil)
	if err != nil {
		return 0, p.unavailable("rotate key", nil, err)
	}
	if rep.status != http.StatusOK && rep.status != http.StatusNoContent {
		return 0, p.unavailable("rotate key", rep, nil)
	}
	p.setInfo(KeyInfo{}, false)
	info, err := p.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.LatestVersion, nil
}

// SetMinDecryptionVersion makes Vault refuse to decrypt ciphertexts of key
// versions below v (transit/keys/<key>/config). Run it after RewrapKeys
// has moved every stored blob to v or later: the others become
// crypto.ErrDecrypt.
func (p *Provider) SetMinDecryptionVersion(ctx context.Context, v int) error {
	if v < 1 {
		return fmt.Errorf("invalid minimum decryption version %d", v)
	}
	return p.configure(ctx, "set minimum decryption version", map[string]any{"min_decryption_version": v})
}

// Destroy deletes the Transit key, and with it every blob it ever wrapped:
// the national crypto-shredding of one class (one Transit key per class).
// It first sets deletion_allowed, which CreateKey leaves false; if the
// delete then fails it tries to set it back.
func (p *Provider) Destroy(ctx context.Context) error {
	if err := p.configure(ctx, "allow deletion", map[string]any{"deletion_allowed": true}); err != nil {
		return err
	}
	rep, err := p.do(ctx, http.MethodDelete, p.cfg.Mount+"/keys/"+p.cfg.Key, nil)
	if err == nil && rep.status != http.StatusOK && rep.status != http.StatusNoContent {
		err = p.unavailable("delete key", rep, nil)
	} else if err != nil {
		err = p.unavailable("delete key", nil, err)
	}
	p.setInfo(KeyInfo{}, false)
	if err != nil {
		p.configure(ctx, "forbid deletion", map[string]any{"deletion_allowed": false})
		return err
	}
	return nil
}

func (p *Provider) configure(ctx context.Context, op string, settings map[string]any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	body, _ := json.Marshal(settings)
	rep, err := p.do(ctx, http.MethodPost, p.cfg.Mount+"/keys/"+p.cfg.Key+"/config", body)
	if err != nil {
		return p.unavailable(op, nil, err)
	}
	p.setInfo(KeyInfo{}, false)
	if rep.status != http.StatusOK && rep.status != http.StatusNoContent {
		return p.unavailable(op, rep, nil)
	}
	return nil
}

// CreateKey creates the Transit key c names, as an administrator does once
// (`censusvault keys init-vault`): aes256-gcm96, not exportable, no
// plaintext backup, deletion_allowed false. It is idempotent: an existing
// key is accepted, and its deletion_allowed reset to false, unless it is
// unfit (it cannot encrypt, uses derivation, or is exportable or allows
// plaintext backup, which can never be undone) and then it is an error.
func CreateKey(ctx context.Context, c Config) error {
	p, err := dial(ctx, c)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{
		"type":                   "aes256-gcm96",
		"exportable":             false,
		"allow_plaintext_backup": false,
	})
	rep, err := p.do(ctx, http.MethodPost, c.Mount+"/keys/"+c.Key, body)
	if err != nil {
		return p.unavailable("create key", nil, err)
	}
	if rep.status != http.StatusOK && rep.status != http.StatusNoContent {
		return p.unavailable("create key", rep, nil)
	}
	info, err := p.readKey(ctx)
	if err != nil {
		return err
	}
	if err := info.usable(); err != nil {
		return fmt.Errorf("existing transit key %s/%s: %w", c.Mount, c.Key, err)
	}
	if info.Exportable || info.AllowPlaintextBackup {
		return fmt.Errorf("existing transit key %s/%s is exportable or allows plaintext backup, "+
			"so its key material can leave Vault: create a new key under another name", c.Mount, c.Key)
	}
	if info.DeletionAllowed {
		return p.configure(ctx, "forbid deletion", map[string]any{"deletion_allowed": false})
	}
	return nil
}
