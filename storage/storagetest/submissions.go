package storagetest

import (
	"errors"
	"fmt"
	"maps"
	"testing"

	"github.com/censusvault/censusvault/storage"
)

func testSubmissions(t *testing.T, s storage.Store) {
	full := submission("sub-1", "E0000101", 1)
	// Only one sealed class and no operational fields: absent parts must
	// stay absent rather than come back as empty ones.
	partial := submission("sub-2", "E0000101", 2)
	partial.Sealed = partial.Sealed[:1]
	partial.Operational = nil
	// The same household number in another EA is another household.
	otherEA := submission("sub-3", "E0000102", 1)
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(tx.InsertSubmission(full), tx.InsertSubmission(partial), tx.InsertSubmission(otherEA))
	})

	view(t, s, func(tx storage.ReadTx) error {
		for _, want := range []*storage.Submission{full, partial, otherEA} {
			got, err := tx.Submission(want.ID)
			if err != nil {
				t.Errorf("Submission(%s): %v", want.ID, err)
				continue
			}
			if d := diffSubmission(got, want); d != nil {
				t.Errorf("Submission(%s): %v", want.ID, d)
			}
			cur, err := tx.CurrentSubmission(want.Area, want.HouseholdNo)
			if err != nil {
				t.Errorf("CurrentSubmission(%s, %d): %v", want.Area, want.HouseholdNo, err)
				continue
			}
			if d := diffSubmission(cur, want); d != nil {
				t.Errorf("CurrentSubmission(%s, %d): %v", want.Area, want.HouseholdNo, d)
			}
		}
		if _, err := tx.Submission("sub-404"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Submission of an unknown id: err = %v, want ErrNotFound", err)
		}
		for _, k := range []struct {
			area string
			hh   int64
		}{{"E0000101", 0}, {"E0000101", 3}, {"E0000199", 1}} {
			if _, err := tx.CurrentSubmission(k.area, k.hh); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("CurrentSubmission(%s, %d) of no household: err = %v, want ErrNotFound", k.area, k.hh, err)
			}
		}
		return nil
	})

	sameID := submission("sub-1", "E0000101", 9)
	sameHousehold := submission("sub-4", "E0000101", 1)
	for _, tc := range []struct {
		name string
		sub  *storage.Submission
	}{
		{"an existing id", sameID},
		{"a second current submission for (area, household)", sameHousehold},
	} {
		err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.InsertSubmission(tc.sub) })
		if !errors.Is(err, storage.ErrConflict) {
			t.Errorf("InsertSubmission of %s: err = %v, want ErrConflict", tc.name, err)
		}
	}
	err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.MarkSuperseded("sub-404", "sub-1") })
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("MarkSuperseded of an unknown id: err = %v, want ErrNotFound", err)
	}
	view(t, s, func(tx storage.ReadTx) error {
		if _, err := tx.Submission("sub-4"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("a rejected submission was stored: err = %v", err)
		}
		got, err := tx.Submission("sub-1")
		if err != nil {
			return err
		}
		if d := diffSubmission(got, full); d != nil {
			t.Errorf("a rejected duplicate changed the stored submission: %v", d)
		}
		return nil
	})
}

func testSupersede(t *testing.T, s storage.Store) {
	const area, hh = "E0000101", 5
	v1 := submission("v1", area, hh)
	v2 := submission("v2", area, hh)
	v2.Supersedes = "v1"
	v2.Sealed[1].KeyVersion = 6
	v3 := submission("v3", area, hh)
	v3.Supersedes = "v2"

	update(t, s, func(tx storage.Tx) error { return tx.InsertSubmission(v1) })
	// The broker's order: retire the current one, then insert its successor.
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(tx.MarkSuperseded("v1", "v2"), tx.InsertSubmission(v2))
	})
	wantV1 := *v1
	wantV1.SupersededBy = "v2"
	checkCurrent := func(want *storage.Submission, superseded ...*storage.Submission) {
		t.Helper()
		view(t, s, func(tx storage.ReadTx) error {
			cur, err := tx.CurrentSubmission(area, hh)
			if err != nil {
				t.Errorf("CurrentSubmission: %v", err)
			} else if d := diffSubmission(cur, want); d != nil {
				t.Errorf("CurrentSubmission: %v", d)
			}
			for _, old := range superseded {
				got, err := tx.Submission(old.ID)
				if err != nil {
					t.Errorf("Submission(%s): %v", old.ID, err)
				} else if d := diffSubmission(got, old); d != nil {
					t.Errorf("Submission(%s): %v", old.ID, d)
				}
			}
			return nil
		})
	}
	checkCurrent(v2, &wantV1)

	err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.MarkSuperseded("v1", "v3") })
	if !errors.Is(err, storage.ErrConflict) {
		t.Errorf("MarkSuperseded of an already superseded submission: err = %v, want ErrConflict", err)
	}
	// Inserting the successor before retiring the current one breaks the
	// one-current rule mid-transaction.
	err = s.Update(t.Context(), func(tx storage.Tx) error {
		if err := tx.InsertSubmission(v3); err != nil {
			return err
		}
		return tx.MarkSuperseded("v2", "v3")
	})
	if !errors.Is(err, storage.ErrConflict) {
		t.Errorf("InsertSubmission while the household has a current one: err = %v, want ErrConflict", err)
	}
	// A supersede that fails later in its Update leaves v2 current.
	boom := errors.New("storagetest: abandon")
	err = s.Update(t.Context(), func(tx storage.Tx) error {
		if err := tx.MarkSuperseded("v2", "v3"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("Update: err = %v, want %v", err, boom)
	}
	checkCurrent(v2, &wantV1)

	update(t, s, func(tx storage.Tx) error {
		return errors.Join(tx.MarkSuperseded("v2", "v3"), tx.InsertSubmission(v3))
	})
	wantV2 := *v2
	wantV2.SupersededBy = "v3"
	checkCurrent(v3, &wantV1, &wantV2)
}

func testDeposited(t *testing.T, s storage.Store) {
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(
			tx.AddDeposited("E1", 1), tx.AddDeposited("E1", 1), tx.AddDeposited("E1", 1),
			tx.AddDeposited("E2", 2),
			tx.AddDeposited("E3", 1), tx.AddDeposited("E3", -1), // back to zero: absent
		)
	})
	update(t, s, func(tx storage.Tx) error { return tx.AddDeposited("E1", 4) })

	deposited := func(eas []string) map[string]int64 {
		t.Helper()
		var got map[string]int64
		view(t, s, func(tx storage.ReadTx) error {
			var err error
			got, err = tx.Deposited(eas)
			return err
		})
		return got
	}
	for _, tc := range []struct {
		eas  []string
		want map[string]int64
	}{
		{nil, map[string]int64{}},
		{[]string{"E1"}, map[string]int64{"E1": 7}},
		{[]string{"E2"}, map[string]int64{"E2": 2}},
		{[]string{"E3"}, map[string]int64{}},
		{[]string{"E9"}, map[string]int64{}},
		{[]string{"E1", "E2", "E3", "E9"}, map[string]int64{"E1": 7, "E2": 2}},
		{[]string{"E2", "E2"}, map[string]int64{"E2": 2}},
	} {
		if got := deposited(tc.eas); !maps.Equal(got, tc.want) {
			t.Errorf("Deposited(%v) = %v, want %v", tc.eas, got, tc.want)
		}
	}

	// Many EAs at once, as a province's progress report asks: backends
	// that bind one parameter per EA must split the query. EA i holds
	// i%3 households, so a third of them are absent.
	const total = 2600
	ea := func(i int) string { return fmt.Sprintf("EA%05d", i) }
	update(t, s, func(tx storage.Tx) error {
		for i := range total {
			if n := int64(i % 3); n > 0 {
				if err := tx.AddDeposited(ea(i), n); err != nil {
					return err
				}
			}
		}
		return nil
	})
	for _, n := range []int{499, 500, 501, 999, 1000, 1001, 2500, total + 100} {
		eas := make([]string, n)
		want := make(map[string]int64)
		for i := range eas {
			eas[i] = ea(i)
			if c := int64(i % 3); c > 0 && i < total {
				want[eas[i]] = c
			}
		}
		if got := deposited(eas); !maps.Equal(got, want) {
			t.Errorf("Deposited of %d EAs returned %d counts, want %d", n, len(got), len(want))
		}
	}
}
