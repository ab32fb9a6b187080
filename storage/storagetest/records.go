package storagetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
)

func testMeta(t *testing.T, s storage.Store) {
	view(t, s, func(tx storage.ReadTx) error {
		if _, err := tx.Meta("policy_sha256"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Meta of a missing key: err = %v, want ErrNotFound", err)
		}
		return nil
	})
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(
			tx.PutMeta("policy_sha256", "v1"),
			tx.PutMeta("empty", ""),
			tx.PutMeta("country", "Việt Nam"),
		)
	})
	update(t, s, func(tx storage.Tx) error { return tx.PutMeta("policy_sha256", "v2") })
	view(t, s, func(tx storage.ReadTx) error {
		for key, want := range map[string]string{"policy_sha256": "v2", "empty": "", "country": "Việt Nam"} {
			got, err := tx.Meta(key)
			if err != nil || got != want {
				t.Errorf("Meta(%q) = %q, %v; want %q", key, got, err, want)
			}
		}
		return nil
	})
}

func testAreas(t *testing.T, s storage.Store) {
	view(t, s, func(tx storage.ReadTx) error {
		if got, err := tx.Areas(); err != nil || len(got) != 0 {
			t.Errorf("Areas of an empty store = %v, %v; want none", got, err)
		}
		return nil
	})
	first := []storage.Area{
		{Code: "VN", Level: "nation", Name: "Việt Nam"},
		{Code: "P01", Parent: "VN", Level: "province", Name: "Hà Nội"},
		{Code: "D001", Parent: "P01", Level: "district", Name: "Ba Đình"},
		{Code: "C00001", Parent: "D001", Level: "commune", Name: "Phúc Xá"},
		{Code: "E0000101", Parent: "C00001", Level: "ea", Name: "EA 1", Planned: 120},
	}
	// Codes that sort before the first batch's: insertion order, not code
	// order, is the contract.
	second := []storage.Area{
		{Code: "E0000100", Parent: "C00001", Level: "ea", Name: "EA 0", Planned: 80},
		{Code: "C00000", Parent: "D001", Level: "commune", Name: "Trúc Bạch"},
	}
	update(t, s, func(tx storage.Tx) error { return tx.InsertAreas(first) })
	update(t, s, func(tx storage.Tx) error { return tx.InsertAreas(second) })
	want := append(append([]storage.Area(nil), first...), second...)

	for _, tc := range []struct {
		name  string
		areas []storage.Area
	}{
		{"existing code", []storage.Area{{Code: "E0000102", Parent: "C00001", Level: "ea"}, {Code: "P01", Parent: "VN", Level: "province"}}},
		{"same code twice in one call", []storage.Area{{Code: "E0000103", Parent: "C00001", Level: "ea"}, {Code: "E0000103", Parent: "C00001", Level: "ea"}}},
	} {
		err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.InsertAreas(tc.areas) })
		if !errors.Is(err, storage.ErrConflict) {
			t.Errorf("InsertAreas with %s: err = %v, want ErrConflict", tc.name, err)
		}
	}
	view(t, s, func(tx storage.ReadTx) error {
		got, err := tx.Areas()
		if err != nil {
			return err
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Areas:\n got %v\nwant %v", got, want)
		}
		return nil
	})
}

func testUsers(t *testing.T, s storage.Store) {
	carol := &storage.User{Name: "carol", TokenHash: tokenHash("carol-token"), CreatedAt: at(8, 0)}
	alice := &storage.User{
		Name:      "alice",
		TokenHash: tokenHash("alice-token"),
		CreatedAt: at(8, 123456789),
		// Unordered on purpose: reads return role, area, deny order.
		Grants: []storage.Grant{
			{Role: "supervisor", Area: "D001"},
			{Role: "enumerator", Area: "E0000101", Deny: true},
			{Role: "enumerator", Area: "E0000101"},
			{Role: "auditor", Area: "VN"},
		},
	}
	bob := &storage.User{
		Name:      "bob",
		TokenHash: tokenHash("bob-token"),
		CreatedAt: at(8, 1),
		ExpiresAt: at(20, 999999999),
		Grants:    []storage.Grant{{Role: "researcher", Area: "P01"}},
	}
	// Inserted carol, alice, bob; Grants must still iterate by user name.
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(tx.InsertUser(carol), tx.InsertUser(alice), tx.InsertUser(bob))
	})
	aliceGrants := []storage.Grant{
		{Role: "auditor", Area: "VN"},
		{Role: "enumerator", Area: "E0000101"},
		{Role: "enumerator", Area: "E0000101", Deny: true},
		{Role: "supervisor", Area: "D001"},
	}
	wantAlice := *alice
	wantAlice.Grants = aliceGrants

	view(t, s, func(tx storage.ReadTx) error {
		for _, want := range []*storage.User{&wantAlice, bob, carol} {
			byName, err := tx.User(want.Name)
			if err != nil {
				t.Errorf("User(%q): %v", want.Name, err)
				continue
			}
			if d := diffUser(byName, want); d != nil {
				t.Errorf("User(%q): %v", want.Name, d)
			}
			byToken, err := tx.UserByTokenHash(want.TokenHash)
			if err != nil {
				t.Errorf("UserByTokenHash(%s): %v", want.Name, err)
				continue
			}
			if d := diffUser(byToken, want); d != nil {
				t.Errorf("UserByTokenHash(%s): %v", want.Name, d)
			}
		}
		if _, err := tx.User("mallory"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("User of an unknown name: err = %v, want ErrNotFound", err)
		}
		if _, err := tx.UserByTokenHash(tokenHash("guess")); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("UserByTokenHash of an unknown hash: err = %v, want ErrNotFound", err)
		}
		return nil
	})

	for _, tc := range []struct {
		name string
		u    *storage.User
	}{
		{"duplicate name", &storage.User{Name: "alice", TokenHash: tokenHash("other-token"), CreatedAt: at(9, 0)}},
		{"duplicate token hash", &storage.User{Name: "dave", TokenHash: tokenHash("bob-token"), CreatedAt: at(9, 0)}},
	} {
		err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.InsertUser(tc.u) })
		if !errors.Is(err, storage.ErrConflict) {
			t.Errorf("InsertUser with %s: err = %v, want ErrConflict", tc.name, err)
		}
	}

	revoked := at(18, 42)
	extra := storage.Grant{Role: "steering", Area: "P01"}
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(tx.RevokeUser("carol", revoked), tx.AddGrant("bob", extra))
	})
	err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.RevokeUser("mallory", revoked) })
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RevokeUser of an unknown user: err = %v, want ErrNotFound", err)
	}
	wantCarol := *carol
	wantCarol.RevokedAt = revoked
	wantBob := *bob
	wantBob.Grants = []storage.Grant{{Role: "researcher", Area: "P01"}, extra}

	view(t, s, func(tx storage.ReadTx) error {
		for _, want := range []*storage.User{&wantCarol, &wantBob} {
			got, err := tx.User(want.Name)
			if err != nil {
				t.Errorf("User(%q): %v", want.Name, err)
				continue
			}
			if d := diffUser(got, want); d != nil {
				t.Errorf("User(%q) after revoke/grant: %v", want.Name, d)
			}
		}

		type row struct {
			user string
			g    storage.Grant
		}
		var got []row
		if err := tx.Grants(func(u string, g storage.Grant) error {
			got = append(got, row{u, g})
			return nil
		}); err != nil {
			return err
		}
		var want []row
		for _, g := range aliceGrants {
			want = append(want, row{"alice", g})
		}
		for _, g := range wantBob.Grants {
			want = append(want, row{"bob", g})
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Grants:\n got %v\nwant %v", got, want)
		}

		stop := errors.New("stop here")
		calls := 0
		err := tx.Grants(func(string, storage.Grant) error {
			calls++
			return stop
		})
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("Grants with a callback that fails: err = %v after %d calls, want its error after 1", err, calls)
		}
		return nil
	})
}

// testTimesRoundTrip writes the same grid of instants through every time
// field the contract has: each must come back as the same instant in UTC,
// to the nanosecond.
func testTimesRoundTrip(t *testing.T, s storage.Store) {
	times := []time.Time{
		time.Date(2019, time.April, 1, 0, 0, 0, 0, time.UTC),
		at(7, 1),
		at(7, 999999999),
		at(7, 120000000), // trailing zeros a text encoding might trim
		time.Date(1969, time.December, 31, 23, 59, 59, 500000000, time.UTC),
		time.Now(), // carries a monotonic reading, which must not matter
	}
	for i, tm := range times {
		update(t, s, func(tx storage.Tx) error {
			sub := submission(fmt.Sprintf("time-%d", i), "E0000101", int64(i))
			sub.InterviewedAt, sub.ReceivedAt = tm, tm
			return errors.Join(
				tx.InsertUser(&storage.User{Name: fmt.Sprintf("u%d", i), TokenHash: tokenHash(fmt.Sprint(i)),
					CreatedAt: tm, ExpiresAt: tm, RevokedAt: tm}),
				tx.PutDataKey(&storage.DataKey{Class: "analytic", Commune: "C00001", Version: i, Wrapped: []byte("k"), CreatedAt: tm}),
				tx.PutKey(&storage.Key{Purpose: "times", Version: i, Wrapped: []byte("k"), CreatedAt: tm, NotAfter: tm}),
				tx.InsertSubmission(sub),
			)
		})
	}
	view(t, s, func(tx storage.ReadTx) error {
		keys, err := tx.Keys("times")
		if err != nil {
			return err
		}
		if len(keys) != len(times) {
			return fmt.Errorf("Keys returned %d versions, want %d", len(keys), len(times))
		}
		for i, tm := range times {
			var errs []error
			u, err := tx.User(fmt.Sprintf("u%d", i))
			if err != nil {
				return err
			}
			errs = append(errs, checkTime("User.CreatedAt", u.CreatedAt, tm),
				checkTime("User.ExpiresAt", u.ExpiresAt, tm), checkTime("User.RevokedAt", u.RevokedAt, tm))
			dk, err := tx.DataKey("analytic", "C00001", i)
			if err != nil {
				return err
			}
			errs = append(errs, checkTime("DataKey.CreatedAt", dk.CreatedAt, tm))
			k := keys[len(keys)-1-i]
			errs = append(errs, checkTime("Key.CreatedAt", k.CreatedAt, tm), checkTime("Key.NotAfter", k.NotAfter, tm))
			sub, err := tx.Submission(fmt.Sprintf("time-%d", i))
			if err != nil {
				return err
			}
			errs = append(errs, checkTime("Submission.InterviewedAt", sub.InterviewedAt, tm),
				checkTime("Submission.ReceivedAt", sub.ReceivedAt, tm))
			if err := errors.Join(errs...); err != nil {
				t.Errorf("time %v:\n%v", tm, err)
			}
		}
		return nil
	})
}

func testDataKeys(t *testing.T, s storage.Store) {
	keys := []*storage.DataKey{
		{Class: "identifying", Commune: "C00001", Version: 1, Wrapped: binary(3, 200), CreatedAt: at(6, 1)},
		{Class: "identifying", Commune: "C00001", Version: 2, Wrapped: binary(4, 200), CreatedAt: at(6, 2)},
		{Class: "analytic", Commune: "C00001", Version: 1, Wrapped: binary(5, 200), CreatedAt: at(6, 3)},
		{Class: "identifying", Commune: "C00002", Version: 1, Wrapped: binary(6, 200), CreatedAt: at(6, 4)},
	}
	update(t, s, func(tx storage.Tx) error {
		for _, k := range keys {
			if err := tx.PutDataKey(k); err != nil {
				return err
			}
		}
		return nil
	})
	dup := *keys[1]
	dup.Wrapped = []byte("other")
	err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.PutDataKey(&dup) })
	if !errors.Is(err, storage.ErrConflict) {
		t.Errorf("PutDataKey of an existing (class, commune, version): err = %v, want ErrConflict", err)
	}
	view(t, s, func(tx storage.ReadTx) error {
		for _, want := range keys {
			got, err := tx.DataKey(want.Class, want.Commune, want.Version)
			if err != nil {
				t.Errorf("DataKey(%s, %s, %d): %v", want.Class, want.Commune, want.Version, err)
				continue
			}
			if got.Class != want.Class || got.Commune != want.Commune || got.Version != want.Version ||
				string(got.Wrapped) != string(want.Wrapped) {
				t.Errorf("DataKey(%s, %s, %d) = %+v, want %+v", want.Class, want.Commune, want.Version, got, want)
			}
			if err := checkTime("CreatedAt", got.CreatedAt, want.CreatedAt); err != nil {
				t.Errorf("DataKey(%s, %s, %d): %v", want.Class, want.Commune, want.Version, err)
			}
		}
		for _, miss := range []struct {
			class, commune string
			version        int
		}{
			{"analytic", "C00002", 1},    // class not stored for that commune
			{"identifying", "C00001", 3}, // version one past the newest
			{"identifying", "C00001", 0}, // version one before the oldest
		} {
			if _, err := tx.DataKey(miss.class, miss.commune, miss.version); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("DataKey%v: err = %v, want ErrNotFound", miss, err)
			}
		}
		return nil
	})
}

func testKeys(t *testing.T, s storage.Store) {
	mk := func(purpose string, v int) *storage.Key {
		return &storage.Key{Purpose: purpose, Version: v, Wrapped: binary(byte(v), 64), CreatedAt: at(5, v)}
	}
	update(t, s, func(tx storage.Tx) error {
		// Out of order: Keys sorts newest first.
		return errors.Join(tx.PutKey(mk("ingest", 2)), tx.PutKey(mk("ingest", 1)),
			tx.PutKey(mk("ingest", 3)), tx.PutKey(mk("receipt-signing", 1)))
	})
	err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.PutKey(mk("ingest", 2)) })
	if !errors.Is(err, storage.ErrConflict) {
		t.Errorf("PutKey of an existing (purpose, version): err = %v, want ErrConflict", err)
	}
	retired := at(23, 5)
	update(t, s, func(tx storage.Tx) error { return tx.RetireKey("ingest", 2, retired) })
	err = s.Update(t.Context(), func(tx storage.Tx) error { return tx.RetireKey("ingest", 4, retired) })
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RetireKey of an unknown version: err = %v, want ErrNotFound", err)
	}

	view(t, s, func(tx storage.ReadTx) error {
		got, err := tx.Keys("ingest")
		if err != nil {
			return err
		}
		if len(got) != 3 {
			return fmt.Errorf("Keys(ingest) returned %d keys, want 3", len(got))
		}
		for i, v := range []int{3, 2, 1} {
			k := got[i]
			want := mk("ingest", v)
			if v == 2 {
				want.NotAfter = retired
			}
			if k.Purpose != "ingest" || k.Version != v || string(k.Wrapped) != string(want.Wrapped) {
				t.Errorf("Keys(ingest)[%d] = version %d of %q, want version %d", i, k.Version, k.Purpose, v)
			}
			if err := errors.Join(checkTime("CreatedAt", k.CreatedAt, want.CreatedAt),
				checkTime("NotAfter", k.NotAfter, want.NotAfter)); err != nil {
				t.Errorf("Keys(ingest)[%d]: %v", i, err)
			}
		}
		if got, err := tx.Keys("receipt-signing"); err != nil || len(got) != 1 || got[0].Version != 1 {
			t.Errorf("Keys(receipt-signing) = %v, %v; want version 1 alone", got, err)
		}
		if got, err := tx.Keys("no-such-purpose"); err != nil || len(got) != 0 {
			t.Errorf("Keys of an unknown purpose = %v, %v; want none", got, err)
		}
		return nil
	})
}
