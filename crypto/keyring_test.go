package crypto_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/censusvault/censusvault/crypto"
)

var (
	testID = crypto.DataKeyID{Class: crypto.Identifying, Commune: "18313", Version: 1}
	testAD = crypto.AD{
		Submission:  "0f8fad5b-d9cb-469f-a165-70867728950e",
		Form:        "household",
		FormVersion: 3,
		Area:        "18313-012",
		HouseholdNo: 42,
	}
)

func TestNewKeyringValidates(t *testing.T) {
	p := newProvider(t)
	for _, tc := range []struct {
		name string
		o    crypto.KeyringOptions
		ok   bool
	}{
		{"nil provider", crypto.KeyringOptions{}, false},
		{"negative bound", crypto.KeyringOptions{Provider: p, MaxCached: -1}, false},
		{"default bound", crypto.KeyringOptions{Provider: p}, true},
		{"bound 1", crypto.KeyringOptions{Provider: p, MaxCached: 1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := crypto.NewKeyring(tc.o)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	ctx := context.Background()
	k := newKeyring(t, newProvider(t), 0)
	if _, err := k.NewDataKey(ctx, testID); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 1024, crypto.MaxSealPlaintext - 1, crypto.MaxSealPlaintext, crypto.MaxSealPlaintext + 1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			pt := bytes.Repeat([]byte{'x'}, n)
			sealed, err := k.Seal(testID, pt, testAD)
			if n > crypto.MaxSealPlaintext {
				if !errors.Is(err, crypto.ErrTooLarge) {
					t.Fatalf("Seal err = %v, want ErrTooLarge", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := 1 + 24 + n + 16; len(sealed) != want || sealed[0] != 0x01 {
				t.Fatalf("sealed len %d first byte %#x, want %d and 0x01", len(sealed), sealed[0], want)
			}
			if n >= 16 && bytes.Contains(sealed, pt) {
				t.Fatal("sealed value contains the plaintext")
			}
			got, err := k.Open(testID, sealed, testAD)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatal("round trip mismatch")
			}
		})
	}
}

func TestSealNonceIsFresh(t *testing.T) {
	k := newKeyring(t, newProvider(t), 0)
	if _, err := k.NewDataKey(context.Background(), testID); err != nil {
		t.Fatal(err)
	}
	a, _ := k.Seal(testID, []byte("same"), testAD)
	b, _ := k.Seal(testID, []byte("same"), testAD)
	if bytes.Equal(a[:25], b[:25]) || bytes.Equal(a, b) {
		t.Fatal("two seals of the same value share a nonce")
	}
}

func TestOpenRejectsTampering(t *testing.T) {
	ctx := context.Background()
	k := newKeyring(t, newProvider(t), 0)
	otherIDs := map[string]crypto.DataKeyID{
		"class":   {Class: crypto.Analytic, Commune: testID.Commune, Version: testID.Version},
		"commune": {Class: testID.Class, Commune: "18314", Version: testID.Version},
		"version": {Class: testID.Class, Commune: testID.Commune, Version: testID.Version + 1},
	}
	for _, id := range append([]crypto.DataKeyID{testID}, otherIDs["class"], otherIDs["commune"], otherIDs["version"]) {
		if _, err := k.NewDataKey(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	pt := []byte(`{"name":"Nguyễn Văn A","phone":"0912345678"}`)
	sealed, err := k.Seal(testID, pt, testAD)
	if err != nil {
		t.Fatal(err)
	}

	mod := func(f func(*crypto.AD)) crypto.AD { ad := testAD; f(&ad); return ad }
	ads := map[string]crypto.AD{
		"submission":   mod(func(a *crypto.AD) { a.Submission = "1f8fad5b-d9cb-469f-a165-70867728950e" }),
		"form":         mod(func(a *crypto.AD) { a.Form = "person" }),
		"form version": mod(func(a *crypto.AD) { a.FormVersion++ }),
		"area":         mod(func(a *crypto.AD) { a.Area = "18313-013" }),
		"household":    mod(func(a *crypto.AD) { a.HouseholdNo++ }),
		// Length prefixes keep a byte moved between fields from matching.
		"shifted boundary": mod(func(a *crypto.AD) { a.Form = testAD.Form + testAD.Area[:1]; a.Area = testAD.Area[1:] }),
		"zero":             {},
	}
	for name, ad := range ads {
		t.Run("ad "+name, func(t *testing.T) {
			if _, err := k.Open(testID, sealed, ad); !errors.Is(err, crypto.ErrDecrypt) {
				t.Fatalf("err = %v, want ErrDecrypt", err)
			}
		})
	}
	for name, id := range otherIDs {
		t.Run("key "+name, func(t *testing.T) {
			if _, err := k.Open(id, sealed, testAD); !errors.Is(err, crypto.ErrDecrypt) {
				t.Fatalf("err = %v, want ErrDecrypt", err)
			}
		})
	}
	t.Run("every byte flipped", func(t *testing.T) {
		for i := range sealed {
			c := bytes.Clone(sealed)
			c[i] ^= 0x01
			if _, err := k.Open(testID, c, testAD); err != crypto.ErrDecrypt {
				t.Fatalf("byte %d: err = %v, want ErrDecrypt", i, err)
			}
		}
	})
	t.Run("every truncation", func(t *testing.T) {
		for n := range len(sealed) {
			if _, err := k.Open(testID, sealed[:n], testAD); err != crypto.ErrDecrypt {
				t.Fatalf("len %d: err = %v, want ErrDecrypt", n, err)
			}
		}
	})
	t.Run("extended", func(t *testing.T) {
		if _, err := k.Open(testID, append(bytes.Clone(sealed), 0), testAD); err != crypto.ErrDecrypt {
			t.Fatalf("err = %v, want ErrDecrypt", err)
		}
	})
	t.Run("invalid id", func(t *testing.T) {
		if _, err := k.Open(crypto.DataKeyID{Class: "operational", Commune: "1"}, sealed, testAD); err != crypto.ErrDecrypt {
			t.Fatalf("err = %v, want ErrDecrypt", err)
		}
	})
	// The untampered value still opens: the failures above are real.
	if got, err := k.Open(testID, sealed, testAD); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestKeyNotLoaded(t *testing.T) {
	k := newKeyring(t, newProvider(t), 0)
	if _, err := k.Seal(testID, []byte("x"), testAD); !errors.Is(err, crypto.ErrKeyNotLoaded) {
		t.Fatalf("Seal err = %v, want ErrKeyNotLoaded", err)
	}
	// Not loaded wins over a malformed value: the caller must load first.
	if _, err := k.Open(testID, []byte("garbage"), testAD); !errors.Is(err, crypto.ErrKeyNotLoaded) {
		t.Fatalf("Open err = %v, want ErrKeyNotLoaded", err)
	}
}

func TestSealRejectsInvalidInput(t *testing.T) {
	k := newKeyring(t, newProvider(t), 0)
	if _, err := k.NewDataKey(context.Background(), testID); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 1025)
	for _, tc := range []struct {
		name string
		id   crypto.DataKeyID
		ad   crypto.AD
	}{
		{"unknown class", crypto.DataKeyID{Class: "operational", Commune: "1"}, testAD},
		{"empty commune", crypto.DataKeyID{Class: crypto.Analytic}, testAD},
		{"negative version", crypto.DataKeyID{Class: crypto.Analytic, Commune: "1", Version: -1}, testAD},
		{"long commune", crypto.DataKeyID{Class: crypto.Analytic, Commune: long}, testAD},
		{"long submission", testID, crypto.AD{Submission: long}},
		{"long area", testID, crypto.AD{Area: long}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := k.Seal(tc.id, []byte("x"), tc.ad); err == nil {
				t.Fatal("Seal accepted invalid input")
			}
		})
	}
	// 1024 bytes is the bound itself and is accepted.
	ad := testAD
	ad.Area = long[:1024]
	if _, err := k.Seal(testID, []byte("x"), ad); err != nil {
		t.Fatal(err)
	}
}

func dataKeyIDs(n int) []crypto.DataKeyID {
	ids := make([]crypto.DataKeyID, n)
	for i := range ids {
		ids[i] = crypto.DataKeyID{Class: crypto.Analytic, Commune: fmt.Sprintf("c%d", i), Version: 1}
	}
	return ids
}

func TestLRUBound(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	const maxCached = 2
	for _, n := range []int{maxCached - 1, maxCached, maxCached + 1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			k := newKeyring(t, p, maxCached)
			ids := dataKeyIDs(n)
			for _, id := range ids {
				if _, err := k.NewDataKey(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			for i, id := range ids {
				// The oldest n-maxCached keys are evicted.
				want := i >= n-maxCached
				if got := k.Loaded(id); got != want {
					t.Errorf("Loaded(%v) = %v, want %v", id.Commune, got, want)
				}
				_, err := k.Seal(id, []byte("v"), testAD)
				if want && err != nil || !want && !errors.Is(err, crypto.ErrKeyNotLoaded) {
					t.Errorf("Seal(%v) err = %v", id.Commune, err)
				}
			}
		})
	}
	t.Run("use refreshes", func(t *testing.T) {
		k := newKeyring(t, p, maxCached)
		ids := dataKeyIDs(3)
		for _, id := range ids[:2] {
			if _, err := k.NewDataKey(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := k.Seal(ids[0], []byte("v"), testAD); err != nil { // ids[1] is now least recent
			t.Fatal(err)
		}
		if _, err := k.NewDataKey(ctx, ids[2]); err != nil {
			t.Fatal(err)
		}
		if !k.Loaded(ids[0]) || k.Loaded(ids[1]) || !k.Loaded(ids[2]) {
			t.Fatalf("loaded = %v %v %v, want true false true", k.Loaded(ids[0]), k.Loaded(ids[1]), k.Loaded(ids[2]))
		}
	})
}

func TestLoadDataKeysAfterForget(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	k := newKeyring(t, p, 0)
	ids := dataKeyIDs(3)
	wrapped := make([][]byte, len(ids))
	sealed := make([][]byte, len(ids))
	for i, id := range ids {
		var err error
		if wrapped[i], err = k.NewDataKey(ctx, id); err != nil {
			t.Fatal(err)
		}
		if sealed[i], err = k.Seal(id, []byte(id.Commune), testAD); err != nil {
			t.Fatal(err)
		}
	}
	k.Forget(ids...)
	k.Forget(ids[0]) // forgetting twice is harmless
	for _, id := range ids {
		if k.Loaded(id) {
			t.Fatal("still loaded after Forget")
		}
		if _, err := k.Open(id, sealed[0], testAD); !errors.Is(err, crypto.ErrKeyNotLoaded) {
			t.Fatalf("err = %v, want ErrKeyNotLoaded", err)
		}
	}
	// A fresh keyring (another broker instance) works the same way.
	for name, kr := range map[string]*crypto.Keyring{"same": k, "fresh": newKeyring(t, p, 0)} {
		t.Run(name, func(t *testing.T) {
			if err := kr.LoadDataKeys(ctx, ids, wrapped); err != nil {
				t.Fatal(err)
			}
			for i, id := range ids {
				got, err := kr.Open(id, sealed[i], testAD)
				if err != nil || string(got) != id.Commune {
					t.Fatalf("Open = %q, %v", got, err)
				}
			}
		})
	}
}

func TestLoadDataKeysRejects(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	k := newKeyring(t, p, 2)
	ids := dataKeyIDs(2)
	wrapped := make([][]byte, len(ids))
	for i, id := range ids {
		var err error
		if wrapped[i], err = k.NewDataKey(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	_, wrappedSigner, err := crypto.GenerateSigner(ctx, p, "test")
	if err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(wrapped[1])
	corrupt[len(corrupt)-1] ^= 1

	for _, tc := range []struct {
		name    string
		ids     []crypto.DataKeyID
		wrapped [][]byte
		decrypt bool // want ErrDecrypt rather than another error
	}{
		{"other provider", ids[:1], [][]byte{mustWrapOther(t, ctx, ids[0])}, true},
		{"swapped ids", ids, [][]byte{wrapped[1], wrapped[0]}, true},
		{"one corrupt", ids, [][]byte{wrapped[0], corrupt}, true},
		{"signer blob", ids[:1], [][]byte{wrappedSigner}, true},
		{"garbage", ids[:1], [][]byte{[]byte("not age")}, true},
		{"length mismatch", ids, wrapped[:1], false},
		{"more than the cache", dataKeyIDs(3), [][]byte{wrapped[0], wrapped[1], wrapped[1]}, false},
		{"invalid id", []crypto.DataKeyID{{Commune: "x"}}, wrapped[:1], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kr := newKeyring(t, p, 2)
			err := kr.LoadDataKeys(ctx, tc.ids, tc.wrapped)
			if err == nil || errors.Is(err, crypto.ErrDecrypt) != tc.decrypt {
				t.Fatalf("err = %v, want ErrDecrypt=%v", err, tc.decrypt)
			}
			// All or nothing: no key was loaded.
			for _, id := range tc.ids {
				if kr.Loaded(id) {
					t.Fatalf("%v loaded after a failed LoadDataKeys", id)
				}
			}
		})
	}
	if err := k.LoadDataKeys(ctx, nil, nil); err != nil {
		t.Fatalf("empty load: %v", err)
	}
}

// mustWrapOther makes a DEK for id wrapped by a different agekey provider.
func mustWrapOther(t *testing.T, ctx context.Context, id crypto.DataKeyID) []byte {
	t.Helper()
	w, err := newKeyring(t, newProvider(t), 0).NewDataKey(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestRewrap(t *testing.T) {
	ctx := context.Background()
	oldP, newP := newProvider(t), newProvider(t)
	k := newKeyring(t, oldP, 0)
	w, err := k.NewDataKey(ctx, testID)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := k.Seal(testID, []byte("v"), testAD)
	if err != nil {
		t.Fatal(err)
	}
	rw, err := crypto.Rewrap(ctx, oldP, newP, w)
	if err != nil {
		t.Fatal(err)
	}
	kNew := newKeyring(t, newP, 0)
	if err := kNew.LoadDataKeys(ctx, []crypto.DataKeyID{testID}, [][]byte{rw}); err != nil {
		t.Fatal(err)
	}
	if got, err := kNew.Open(testID, sealed, testAD); err != nil || string(got) != "v" {
		t.Fatalf("Open after rewrap = %q, %v", got, err)
	}
	if _, err := crypto.Rewrap(ctx, newP, oldP, w); !errors.Is(err, crypto.ErrDecrypt) {
		t.Fatalf("Rewrap with the wrong provider: err = %v, want ErrDecrypt", err)
	}
	// Arbitrary data wrapped by the provider is not key material of ours.
	foreign, err := oldP.WrapKey(ctx, []byte("something else"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := crypto.Rewrap(ctx, oldP, newP, foreign); !errors.Is(err, crypto.ErrDecrypt) {
		t.Fatalf("Rewrap of a foreign blob: err = %v, want ErrDecrypt", err)
	}
}

func TestKeyringConcurrent(t *testing.T) {
	ctx := context.Background()
	p := newProvider(t)
	k := newKeyring(t, p, 2)
	ids := dataKeyIDs(3)
	wrapped := make([][]byte, len(ids))
	for i, id := range ids {
		var err error
		if wrapped[i], err = k.NewDataKey(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				j := (g + i) % len(ids)
				id := ids[j]
				switch i % 7 {
				case 0:
					k.Forget(id)
				case 1:
					if err := k.LoadDataKeys(ctx, ids[j:j+1], wrapped[j:j+1]); err != nil {
						t.Error(err)
						return
					}
				default:
					sealed, err := k.Seal(id, []byte("v"), testAD)
					if errors.Is(err, crypto.ErrKeyNotLoaded) {
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					got, err := k.Open(id, sealed, testAD)
					if err != nil && !errors.Is(err, crypto.ErrKeyNotLoaded) || err == nil && string(got) != "v" {
						t.Errorf("Open = %q, %v", got, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}
