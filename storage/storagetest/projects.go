package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
)

// project is a fixture project with the given id and budget.
func project(id string, budget int64) *storage.Project {
	return &storage.Project{
		ID:        id,
		Title:     "Fertility by ethnicity, " + id,
		Purpose:   "Ước tính mức sinh theo dân tộc; purpose text is Unicode",
		Areas:     []string{"437", "18070.001"},
		Variables: []string{"sex", "age_group5", "ethnicity"},
		Expires:   at(9, 123456789).AddDate(1, 0, 0),
		Budget:    budget,
		CreatedAt: at(8, 987654321),
	}
}

// diffProject lists how got differs from want.
func diffProject(got, want *storage.Project) []string {
	var d []string
	if got.ID != want.ID || got.Title != want.Title || got.Purpose != want.Purpose {
		d = append(d, fmt.Sprintf("id/title/purpose = %q/%q/%q, want %q/%q/%q", got.ID, got.Title, got.Purpose, want.ID, want.Title, want.Purpose))
	}
	if !slices.Equal(got.Areas, want.Areas) {
		d = append(d, fmt.Sprintf("Areas = %q, want %q", got.Areas, want.Areas))
	}
	if !slices.Equal(got.Variables, want.Variables) {
		d = append(d, fmt.Sprintf("Variables = %q, want %q", got.Variables, want.Variables))
	}
	if got.Budget != want.Budget || got.Spent != want.Spent {
		d = append(d, fmt.Sprintf("Budget/Spent = %d/%d, want %d/%d", got.Budget, got.Spent, want.Budget, want.Spent))
	}
	for _, err := range []error{
		checkTime("Expires", got.Expires, want.Expires),
		checkTime("CreatedAt", got.CreatedAt, want.CreatedAt),
		checkTime("ClosedAt", got.ClosedAt, want.ClosedAt),
	} {
		if err != nil {
			d = append(d, err.Error())
		}
	}
	return d
}

func readProject(t *testing.T, s storage.Store, id string) *storage.Project {
	t.Helper()
	var p *storage.Project
	view(t, s, func(tx storage.ReadTx) error {
		var err error
		p, err = tx.Project(id)
		return err
	})
	return p
}

// testProjects: insert, read back every field, list in id order, refuse
// a duplicate and a bad ledger, close once.
func testProjects(t *testing.T, s storage.Store) {
	view(t, s, func(tx storage.ReadTx) error {
		if _, err := tx.Project("nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Project of an unknown id: err = %v, want ErrNotFound", err)
		}
		n := 0
		err := tx.Projects(func(storage.Project) (bool, error) { n++; return true, nil })
		if err != nil || n != 0 {
			t.Errorf("Projects of an empty store: %d rows, %v", n, err)
		}
		return nil
	})
	ids := []string{"p.b", "p-a", "p_c", "a1"}
	want := map[string]*storage.Project{}
	for _, id := range ids {
		p := project(id, 1000)
		want[id] = p
		update(t, s, func(tx storage.Tx) error { return tx.InsertProject(p) })
	}
	// One with no areas or variables reads them back as nil.
	empty := project("z.empty", 1)
	empty.Areas, empty.Variables = nil, nil
	update(t, s, func(tx storage.Tx) error { return tx.InsertProject(empty) })
	want[empty.ID] = empty

	for id, w := range want {
		if d := diffProject(readProject(t, s, id), w); d != nil {
			t.Errorf("project %s: %v", id, d)
		}
	}
	var listed []string
	view(t, s, func(tx storage.ReadTx) error {
		return tx.Projects(func(p storage.Project) (bool, error) {
			listed = append(listed, p.ID)
			if d := diffProject(&p, want[p.ID]); d != nil {
				t.Errorf("Projects row %s: %v", p.ID, d)
			}
			return true, nil
		})
	})
	// Byte order: '-' < '.' < '_'.
	if wantIDs := []string{"a1", "p-a", "p.b", "p_c", "z.empty"}; !slices.Equal(listed, wantIDs) {
		t.Errorf("Projects order = %q, want %q", listed, wantIDs)
	}
	// Stopping early, and an error from fn, are honoured.
	n := 0
	view(t, s, func(tx storage.ReadTx) error {
		return tx.Projects(func(storage.Project) (bool, error) { n++; return n < 2, nil })
	})
	if n != 2 {
		t.Errorf("Projects went on after fn returned false: %d calls", n)
	}
	stop := errors.New("storagetest: stop")
	if err := s.View(t.Context(), func(tx storage.ReadTx) error {
		return tx.Projects(func(storage.Project) (bool, error) { return true, stop })
	}); !errors.Is(err, stop) {
		t.Errorf("Projects with a failing fn: err = %v, want fn's", err)
	}

	// A duplicate id is a conflict and leaves the first one as it was.
	dup := project("p-a", 5)
	dup.Title = "impostor"
	if err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.InsertProject(dup) }); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("InsertProject of an existing id: err = %v, want ErrConflict", err)
	}
	if d := diffProject(readProject(t, s, "p-a"), want["p-a"]); d != nil {
		t.Errorf("after a refused duplicate: %v", d)
	}
	// A ledger that does not start empty, or has no budget, is refused.
	for _, bad := range []func(*storage.Project){
		func(p *storage.Project) { p.Budget = 0 },
		func(p *storage.Project) { p.Budget = -1 },
		func(p *storage.Project) { p.Spent = 1 },
	} {
		p := project("bad", 10)
		bad(p)
		if err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.InsertProject(p) }); err == nil {
			t.Errorf("InsertProject with budget %d, spent %d succeeded", p.Budget, p.Spent)
		}
	}
	view(t, s, func(tx storage.ReadTx) error {
		if _, err := tx.Project("bad"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("a refused project was stored: err = %v", err)
		}
		return nil
	})

	// Close: once, keeping the first time; unknown is ErrNotFound.
	closedAt := at(10, 5)
	update(t, s, func(tx storage.Tx) error { return tx.CloseProject("p-a", closedAt) })
	w := *want["p-a"]
	w.ClosedAt = closedAt
	if d := diffProject(readProject(t, s, "p-a"), &w); d != nil {
		t.Errorf("after CloseProject: %v", d)
	}
	if err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.CloseProject("p-a", closedAt.Add(time.Hour)) }); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("CloseProject twice: err = %v, want ErrConflict", err)
	}
	if got := readProject(t, s, "p-a"); !got.ClosedAt.Equal(closedAt) {
		t.Errorf("second CloseProject moved ClosedAt to %v", got.ClosedAt)
	}
	if err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.CloseProject("nope", closedAt) }); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("CloseProject of an unknown id: err = %v, want ErrNotFound", err)
	}
	if err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.CloseProject("p.b", time.Time{}) }); err == nil {
		t.Error("CloseProject with a zero time succeeded")
	}
	if got := readProject(t, s, "p.b"); !got.ClosedAt.IsZero() {
		t.Errorf("a refused close set ClosedAt %v", got.ClosedAt)
	}
}

// testDebitProject: the ledger at its boundary. With r cells left a debit
// of r-1 and of r succeeds, r+1 is refused and leaves Spent unchanged.
func testDebitProject(t *testing.T, s storage.Store) {
	const budget = 100
	debit := func(id string, cells int64) (int64, error) {
		var rem int64
		err := s.Update(t.Context(), func(tx storage.Tx) error {
			var err error
			rem, err = tx.DebitProject(id, cells)
			return err
		})
		return rem, err
	}
	for _, tc := range []struct {
		name    string
		spent   int64 // spent first, so that budget-spent are left
		cells   int64
		wantErr error
	}{
		{"zero", 0, 0, nil},
		{"under remaining", 40, budget - 40 - 1, nil},
		{"exactly remaining", 40, budget - 40, nil},
		{"one over remaining", 40, budget - 40 + 1, storage.ErrBudgetExhausted},
		{"whole budget", 0, budget, nil},
		{"whole budget plus one", 0, budget + 1, storage.ErrBudgetExhausted},
		{"one when none left", budget, 1, storage.ErrBudgetExhausted},
		{"zero when none left", budget, 0, nil},
		{"overflowing", 1, 1<<63 - 1, storage.ErrBudgetExhausted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("debit-%d-%d", tc.spent, tc.cells)
			update(t, s, func(tx storage.Tx) error { return tx.InsertProject(project(id, budget)) })
			if tc.spent > 0 {
				if rem, err := debit(id, tc.spent); err != nil || rem != budget-tc.spent {
					t.Fatalf("first debit of %d = %d, %v; want %d", tc.spent, rem, err, budget-tc.spent)
				}
			}
			rem, err := debit(id, tc.cells)
			wantSpent := tc.spent
			if tc.wantErr == nil {
				wantSpent += tc.cells
				if err != nil || rem != budget-wantSpent {
					t.Errorf("DebitProject(%d) with %d left = %d, %v; want %d", tc.cells, budget-tc.spent, rem, err, budget-wantSpent)
				}
			} else {
				if !errors.Is(err, tc.wantErr) || !errors.Is(err, storage.ErrConflict) {
					t.Errorf("DebitProject(%d) with %d left: err = %v, want ErrBudgetExhausted (an ErrConflict)", tc.cells, budget-tc.spent, err)
				}
			}
			if got := readProject(t, s, id); got.Spent != wantSpent || got.Budget != budget {
				t.Errorf("after: Budget %d, Spent %d; want %d, %d", got.Budget, got.Spent, budget, wantSpent)
			}
		})
	}
	if _, err := debit("nope", 1); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("DebitProject of an unknown id: err = %v, want ErrNotFound", err)
	}
	update(t, s, func(tx storage.Tx) error { return tx.InsertProject(project("neg", budget)) })
	if _, err := debit("neg", -1); err == nil {
		t.Error("DebitProject of -1 cells succeeded")
	}
	if got := readProject(t, s, "neg"); got.Spent != 0 {
		t.Errorf("a refused negative debit left Spent %d", got.Spent)
	}

	// A refused debit keeps the transaction usable: the caller may record
	// the refusal (an audit event) in the same Update.
	var refused error
	update(t, s, func(tx storage.Tx) error {
		_, refused = tx.DebitProject("neg", budget+1)
		return tx.PutMeta("after-refused-debit", "yes")
	})
	if !errors.Is(refused, storage.ErrBudgetExhausted) {
		t.Errorf("in-transaction refusal: err = %v", refused)
	}
	view(t, s, func(tx storage.ReadTx) error {
		if v, err := tx.Meta("after-refused-debit"); err != nil || v != "yes" {
			t.Errorf("write after a refused debit: %q, %v", v, err)
		}
		return nil
	})
}

// testDebitConcurrent: many debits racing for one budget grant exactly
// the budget, no more.
func testDebitConcurrent(t *testing.T, s storage.Store) {
	const budget, workers, each = 50, 8, 10
	update(t, s, func(tx storage.Tx) error { return tx.InsertProject(project("race", budget)) })
	errs := make(chan error, workers*each)
	done := make(chan struct{})
	for range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for range each {
				errs <- s.Update(t.Context(), func(tx storage.Tx) error {
					_, err := tx.DebitProject("race", 1)
					return err
				})
			}
		}()
	}
	for range workers {
		<-done
	}
	close(errs)
	granted, refused := 0, 0
	for err := range errs {
		switch {
		case err == nil:
			granted++
		case errors.Is(err, storage.ErrBudgetExhausted):
			refused++
		default:
			t.Errorf("DebitProject: %v", err)
		}
	}
	if granted != budget || refused != workers*each-budget {
		t.Errorf("granted %d, refused %d; want %d, %d", granted, refused, budget, workers*each-budget)
	}
	if got := readProject(t, s, "race"); got.Spent != budget {
		t.Errorf("Spent = %d, want %d", got.Spent, budget)
	}
}
