package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/crypto/vaulttransit"
)

// keySet is the wired key providers: one for system keys (and for DEKs
// when there is no per-class one) and, on Vault, one Transit key per class.
type keySet struct {
	desc    string
	system  crypto.KeyProvider
	classes map[crypto.Class]crypto.KeyProvider
	vault   map[string]*vaulttransit.Provider // "system", "identifying", "analytic"
}

var classNames = []string{"system", string(crypto.Identifying), string(crypto.Analytic)}

// openKeys wires the provider named by spec: "age" (the identity in the
// data directory; create makes it) or "vault://MOUNT/KEY".
func (s *storeFlags) openKeys(ctx context.Context, spec string, create bool) (*keySet, error) {
	switch {
	case spec == "" || spec == "age" || strings.HasPrefix(spec, "age:"):
		path := filepath.Join(s.data, agekey.FileName)
		if p, ok := strings.CutPrefix(spec, "age:"); ok {
			path = p
		}
		var kp *agekey.Provider
		var err error
		if create {
			if err := os.MkdirAll(s.data, 0o700); err != nil {
				return nil, fmt.Errorf("failed to create data directory: %w", err)
			}
			kp, err = agekey.Create(path)
		} else {
			kp, err = agekey.Load(path)
		}
		if err != nil {
			return nil, err
		}
		ks := &keySet{desc: "age identities in " + filepath.Dir(path), system: kp, classes: map[crypto.Class]crypto.KeyProvider{}}
		if spec != "age" && spec != "" {
			return ks, nil // age:PATH names one identity
		}
		// One identity per class, so that a class can be shredded
		// nationally, backups included, by destroying its identity.
		for _, c := range []crypto.Class{crypto.Identifying, crypto.Analytic} {
			cp := classIdentityPath(s.data, c)
			switch {
			case create:
				p, err := agekey.Create(cp)
				if err != nil {
					return nil, err
				}
				ks.classes[c] = p
			case fileExists(cp + destroyedSuffix):
				ks.classes[c] = destroyedKEK{name: cp}
			default:
				p, err := agekey.Load(cp)
				if err != nil {
					return nil, fmt.Errorf("%w (every instance needs all the vault's keyprovider*.age files)", err)
				}
				ks.classes[c] = p
			}
		}
		return ks, nil
	case strings.HasPrefix(spec, "vault://"):
		ks := &keySet{desc: spec, classes: map[crypto.Class]crypto.KeyProvider{}, vault: map[string]*vaulttransit.Provider{}}
		for _, c := range classNames {
			cfg, err := vaulttransit.ConfigFromEnv(spec + "-" + c)
			if err != nil {
				return nil, err
			}
			p, err := vaulttransit.New(ctx, cfg)
			if c != "system" && errors.Is(err, vaulttransit.ErrKeyNotFound) {
				// Destroyed by a national shred: that class's keys stay
				// unreadable, and nothing new is wrapped for it.
				ks.classes[crypto.Class(c)] = destroyedKEK{name: spec + "-" + c}
				continue
			}
			if err != nil {
				return nil, err
			}
			ks.vault[c] = p
			if c == "system" {
				ks.system = p
			} else {
				ks.classes[crypto.Class(c)] = p
			}
		}
		return ks, nil
	}
	return nil, fmt.Errorf("--keys %q: expected age, age:PATH or vault://MOUNT/KEY", spec)
}

// classIdentityPath is the local age identity of a class's data keys.
func classIdentityPath(data string, c crypto.Class) string {
	return filepath.Join(data, agekey.ClassFileName(string(c)))
}

// destroyedSuffix marks a class identity destroyed by a national shred.
const destroyedSuffix = ".destroyed"

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// destroyedKEK stands for a class's key-encryption key destroyed by a
// national shred: it unwraps nothing and wraps nothing.
type destroyedKEK struct{ name string }

func (d destroyedKEK) WrapKey(context.Context, []byte) ([]byte, error) {
	return nil, fmt.Errorf("the Transit key %s was destroyed by a national shred; create a new one with `censusvault keys init-vault` and run `censusvault keys rotate` before sealing this class again", d.name)
}

func (d destroyedKEK) UnwrapKey(context.Context, []byte) ([]byte, error) {
	return nil, crypto.ErrDecrypt
}

func cmdKeys(ctx context.Context, e *env, args []string) error {
	usage := func() {
		fmt.Fprintln(e.stderr, `usage: censusvault keys <subcommand> [flags]

  status                          key versions and counts (never key material)
  rotate [--kek]                  start a new data-key version for new writes; --kek also rotates Vault's Transit keys
  rewrap [--from-keys OLD]        re-wrap every stored key under the newest key-encryption key (resumable);
                                  with --from-keys, move from one provider to another (age → vault://…)
  shred --class C --area CODE --confirm CODE
                                  destroy the data keys of a class for a commune or a higher area
  rotate-ingest [--grace 30d]     new ingest identity; the previous one stays accepted for the grace period
  init-vault --keys vault://M/K   create the Transit keys (deletion_allowed false)`)
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		usage()
		if len(args) == 0 {
			return &exitError{code: 2}
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := newFlags("keys "+sub, "keys "+sub+" [flags]", e)
	var sf storeFlags
	sf.add(fs)
	grace := fs.String("grace", "30d", "rotate-ingest: how long the previous ingest recipient stays accepted")
	kek := fs.Bool("kek", false, "rotate: also rotate the key-encryption keys (Vault Transit)")
	fromKeys := fs.String("from-keys", "", "rewrap: the provider the keys are wrapped by now, when switching (e.g. age)")
	class := fs.String("class", "", "shred: identifying or analytic")
	areaCode := fs.String("area", "", "shred: a commune or a higher area")
	confirm := fs.String("confirm", "", "shred: repeat the area code to confirm")
	switch sub {
	case "status", "rotate", "rewrap", "shred", "rotate-ingest", "init-vault":
	default:
		usage()
		return &exitError{code: 2, err: fmt.Errorf("unknown subcommand %q", sub)}
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	// Check the flags before touching the vault.
	var g time.Duration
	switch sub {
	case "rotate-ingest":
		var err error
		if g, err = parseDuration(*grace); err != nil {
			return &exitError{code: 2, err: err}
		}
	case "shred":
		if *class == "" || *areaCode == "" {
			return &exitError{code: 2, err: errors.New("--class and --area are required")}
		}
		if *confirm != *areaCode {
			return &exitError{code: 2, err: fmt.Errorf("this destroys keys for good: repeat the area with --confirm %s", *areaCode)}
		}
	}
	if sub == "init-vault" {
		if !strings.HasPrefix(sf.keys, "vault://") {
			return &exitError{code: 2, err: errors.New("--keys vault://MOUNT/KEY is required")}
		}
		for _, c := range classNames {
			cfg, err := vaulttransit.ConfigFromEnv(sf.keys + "-" + c)
			if err != nil {
				return err
			}
			if err := vaulttransit.CreateKey(ctx, cfg); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "Transit key %s-%s ready (deletion_allowed false)\n", sf.keys, c)
		}
		return nil
	}
	var from *keySet
	if sub == "rewrap" && *fromKeys != "" {
		var err error
		if from, err = sf.openKeys(ctx, *fromKeys, false); err != nil {
			return fmt.Errorf("--from-keys: %w", err)
		}
		// Moving to a new local identity: make it if it is not there yet.
		if sf.keys == "" || sf.keys == "age" {
			path := filepath.Join(sf.data, agekey.FileName)
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				if _, err := agekey.Create(path); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "made a new age identity in %s\n", path)
			}
		}
	}
	b, st, ks, err := sf.openBrokerKeys(ctx, nil, from)
	if err != nil {
		return err
	}
	defer st.Close()
	actor := cliActor()
	switch sub {
	case "rotate-ingest":
		v, rcpt, err := b.RotateIngest(ctx, actor, g)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, rcpt)
		fmt.Fprintf(e.stderr, "ingest key v%d is now current; the previous one is accepted for %s more. Running servers pick it up within seconds.\n", v, g)
	case "status":
		s, err := b.KeyStatus(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "key provider: %s\ndata-key version for new writes: %d\n", ks.desc, s.DEKVersion)
		for _, c := range classNames {
			if s.Current[c] != "" {
				fmt.Fprintf(e.stdout, "current key-encryption key (%s): %s\n", c, s.Current[c])
			}
		}
		fmt.Fprintf(e.stdout, "\n%-12s %7s  %-40s %6s %9s\n", "class", "version", "wrapped by", "live", "shredded")
		for _, d := range s.DataKeys {
			kek := d.KEK
			if kek == "" {
				kek = "-"
			}
			fmt.Fprintf(e.stdout, "%-12s %7d  %-40s %6d %9d\n", d.Class, d.Version, kek, d.Live, d.Shredded)
		}
		fmt.Fprintf(e.stdout, "\n%-15s %7s  %-40s %s\n", "key", "version", "wrapped by", "accepted until")
		for _, k := range s.Keys {
			until := "-"
			if !k.NotAfter.IsZero() {
				until = k.NotAfter.Format(time.RFC3339)
			}
			fmt.Fprintf(e.stdout, "%-15s %7d  %-40s %s\n", k.Purpose, k.Version, k.KEK, until)
		}
	case "rotate":
		if *kek {
			if ks.vault == nil {
				return fmt.Errorf("--kek rotates Vault Transit keys. To move to a new local age identity: mv %[1]s/%[2]s %[1]s/old-%[2]s && censusvault keys rewrap --from-keys age:%[1]s/old-%[2]s --data %[1]s (it makes the new identity), copy the new %[2]s to every instance, then destroy the old one", sf.data, agekey.FileName)
			}
			for _, c := range classNames {
				v, err := ks.vault[c].Rotate(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "Transit key %s-%s is now at version %d; run `censusvault keys rewrap` to move stored keys to it\n", sf.keys, c, v)
			}
		}
		v, err := b.RotateDEK(ctx, actor)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "data-key version %d is now used for new writes\n", v)
	case "rewrap":
		o := broker.RewrapOpts{Progress: func(done, total int) {
			fmt.Fprintf(e.stderr, "\rre-wrapped %d/%d keys", done, total)
		}}
		n, err := b.Rewrap(ctx, actor, o)
		fmt.Fprintln(e.stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "re-wrapped %d keys; no record was touched\n", n)
		// Old key versions are no longer needed to decrypt anything.
		for _, c := range classNames {
			if p := ks.vault[c]; p != nil {
				info, err := p.Info(ctx)
				if err != nil {
					return err
				}
				if info.MinDecryptionVersion < info.LatestVersion {
					if err := p.SetMinDecryptionVersion(ctx, info.LatestVersion); err != nil {
						return err
					}
					fmt.Fprintf(e.stderr, "Transit key %s-%s: min_decryption_version raised to %d\n", sf.keys, c, info.LatestVersion)
				}
			}
		}
	case "shred":
		res, err := b.Shred(ctx, actor, crypto.Class(*class), broker.AreaCode(*areaCode))
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "shredded %d %s data keys of %d communes under %s; those fields are now unreadable, other fields and progress are unaffected\n", res.DataKeys, *class, res.Communes, *areaCode)
		if res.National {
			if p := ks.vault[*class]; p != nil {
				if err := p.Destroy(ctx); err != nil {
					return fmt.Errorf("the data keys are destroyed, but deleting the Transit key failed: %w", err)
				}
				fmt.Fprintf(e.stdout, "deleted the Transit key %s-%s: backups of the database can no longer unwrap %s data keys either\n", sf.keys, *class, *class)
			} else if p := classIdentityPath(sf.data, crypto.Class(*class)); ks.vault == nil && fileExists(p) {
				if err := os.WriteFile(p+destroyedSuffix, []byte("destroyed by `censusvault keys shred` "+time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
					return fmt.Errorf("the data keys are destroyed, but marking the identity failed: %w", err)
				}
				if err := os.Remove(p); err != nil {
					return fmt.Errorf("the data keys are destroyed, but deleting %s failed: %w", p, err)
				}
				fmt.Fprintf(e.stdout, "deleted the %s identity %s: backups of the database can no longer unwrap %s data keys either (delete every other instance's copy too)\n", *class, p, *class)
			} else {
				fmt.Fprintf(e.stderr, "note: this vault has no separate %s key-encryption key, so older backups still hold wrapped %s data keys that the key provider can unwrap\n", *class, *class)
			}
		} else {
			fmt.Fprintf(e.stderr, "note: older backups of the database still hold the wrapped data keys\n")
		}
	}
	return nil
}
