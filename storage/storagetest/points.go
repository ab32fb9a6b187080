package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
)

// point is a fixture publication point with a state of n bytes. Its Seq
// is set to a value InsertReleasePoint must overwrite.
func point(name string, n int) *storage.ReleasePoint {
	return &storage.ReleasePoint{
		Name:       name,
		Seq:        99,
		AsOf:       int64(1000 + n),
		CreatedAt:  at(11, 135792468),
		CreatedBy:  "approver-" + name,
		AuditIndex: int64(2000 + n),
		State:      binary(byte(len(name)), n),
	}
}

// diffPoint lists how got differs from want.
func diffPoint(got, want *storage.ReleasePoint) []string {
	var d []string
	if got.Name != want.Name || got.CreatedBy != want.CreatedBy {
		d = append(d, fmt.Sprintf("Name/CreatedBy = %q/%q, want %q/%q", got.Name, got.CreatedBy, want.Name, want.CreatedBy))
	}
	if got.Seq != want.Seq || got.AsOf != want.AsOf || got.AuditIndex != want.AuditIndex {
		d = append(d, fmt.Sprintf("Seq/AsOf/AuditIndex = %d/%d/%d, want %d/%d/%d",
			got.Seq, got.AsOf, got.AuditIndex, want.Seq, want.AsOf, want.AuditIndex))
	}
	if err := checkTime("CreatedAt", got.CreatedAt, want.CreatedAt); err != nil {
		d = append(d, err.Error())
	}
	if !bytes.Equal(got.State, want.State) {
		d = append(d, fmt.Sprintf("State = %d bytes %.16x…, want %d bytes %.16x…", len(got.State), got.State, len(want.State), want.State))
	}
	return d
}

// readPoints lists every point in a View.
func readPoints(t *testing.T, s storage.Store) []storage.ReleasePoint {
	t.Helper()
	return readAll(t, s, storage.ReadTx.ReleasePoints)
}

// seqs are the Seqs of ps, in order.
func seqs(ps []storage.ReleasePoint) []int64 {
	return fields(ps, func(p storage.ReleasePoint) int64 { return p.Seq })
}

// testReleasePoints: an empty store has none; inserted points get Seq
// 1, 2, … in creation order whatever the caller set, read back every
// field by name, list in Seq order (not name order), and the latest is
// the last made; a listing's fn may use the transaction; a name is
// taken once, and a refused duplicate leaves the stored point as it was,
// takes no Seq and leaves the transaction usable; a point with no name,
// no state or no time is refused.
func testReleasePoints(t *testing.T, s storage.Store) {
	view(t, s, func(tx storage.ReadTx) error {
		if _, err := tx.ReleasePoint("nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ReleasePoint of an unknown name: err = %v, want ErrNotFound", err)
		}
		if _, err := tx.LatestReleasePoint(); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("LatestReleasePoint of an empty store: err = %v, want ErrNotFound", err)
		}
		n := 0
		err := tx.ReleasePoints(func(storage.ReleasePoint) (bool, error) { n++; return true, nil })
		if err != nil || n != 0 {
			t.Errorf("ReleasePoints of an empty store: %d rows, %v", n, err)
		}
		return nil
	})

	// Names in an order that is not their byte order.
	names := []string{"zeta", "2019-final", "m.1", "a_b"}
	want := map[string]*storage.ReleasePoint{}
	for i, name := range names {
		p := point(name, 100+i)
		update(t, s, func(tx storage.Tx) error { return tx.InsertReleasePoint(p) })
		if p.Seq != int64(i+1) {
			t.Errorf("InsertReleasePoint(%s) set Seq %d, want %d", name, p.Seq, i+1)
		}
		w := *p
		w.Seq = int64(i + 1)
		want[name] = &w
	}
	view(t, s, func(tx storage.ReadTx) error {
		for name, w := range want {
			got, err := tx.ReleasePoint(name)
			if err != nil {
				t.Errorf("ReleasePoint(%s): %v", name, err)
				continue
			}
			if d := diffPoint(got, w); d != nil {
				t.Errorf("point %s: %v", name, d)
			}
		}
		got, err := tx.LatestReleasePoint()
		if err != nil {
			t.Errorf("LatestReleasePoint: %v", err)
		} else if d := diffPoint(got, want["a_b"]); d != nil {
			t.Errorf("LatestReleasePoint is not the last made: %v", d)
		}
		return nil
	})
	listed := readPoints(t, s)
	var listedNames []string
	for _, p := range listed {
		listedNames = append(listedNames, p.Name)
		if d := diffPoint(&p, want[p.Name]); d != nil {
			t.Errorf("ReleasePoints row %s: %v", p.Name, d)
		}
	}
	if !slices.Equal(listedNames, names) || !slices.Equal(seqs(listed), []int64{1, 2, 3, 4}) {
		t.Errorf("ReleasePoints = %q %v, want %q in Seq order 1..4", listedNames, seqs(listed), names)
	}

	// Stopping early, an error from fn, and fn using the transaction.
	n := 0
	view(t, s, func(tx storage.ReadTx) error {
		return tx.ReleasePoints(func(storage.ReleasePoint) (bool, error) { n++; return n < 2, nil })
	})
	if n != 2 {
		t.Errorf("ReleasePoints went on after fn returned false: %d calls", n)
	}
	stop := errors.New("storagetest: stop")
	if err := s.View(t.Context(), func(tx storage.ReadTx) error {
		return tx.ReleasePoints(func(storage.ReleasePoint) (bool, error) { return true, stop })
	}); !errors.Is(err, stop) {
		t.Errorf("ReleasePoints with a failing fn: err = %v, want fn's", err)
	}
	view(t, s, func(tx storage.ReadTx) error {
		return tx.ReleasePoints(func(p storage.ReleasePoint) (bool, error) {
			again, err := tx.ReleasePoint(p.Name)
			if err != nil {
				return false, fmt.Errorf("ReleasePoint inside ReleasePoints: %w", err)
			}
			if again.Seq != p.Seq {
				t.Errorf("ReleasePoint(%s) inside ReleasePoints has Seq %d, want %d", p.Name, again.Seq, p.Seq)
			}
			return true, nil
		})
	})

	// A stored name is a conflict; the Update that swallows it can go on
	// and store another point, which takes the next Seq.
	dup := point("m.1", 7)
	dup.CreatedBy = "impostor"
	var dupErr error
	next := point("next", 8)
	update(t, s, func(tx storage.Tx) error {
		dupErr = tx.InsertReleasePoint(dup)
		return tx.InsertReleasePoint(next)
	})
	if !errors.Is(dupErr, storage.ErrConflict) {
		t.Errorf("InsertReleasePoint of a stored name: err = %v, want ErrConflict", dupErr)
	}
	if dup.Seq != 99 {
		t.Errorf("a refused InsertReleasePoint set Seq %d", dup.Seq)
	}
	if next.Seq != 5 {
		t.Errorf("the point after a refused duplicate got Seq %d, want 5", next.Seq)
	}
	view(t, s, func(tx storage.ReadTx) error {
		got, err := tx.ReleasePoint("m.1")
		if err != nil {
			return err
		}
		if d := diffPoint(got, want["m.1"]); d != nil {
			t.Errorf("after a refused duplicate: %v", d)
		}
		return nil
	})

	// A point with no name, no state or no time is refused.
	for what, bad := range map[string]func(*storage.ReleasePoint){
		"no name":     func(p *storage.ReleasePoint) { p.Name = "" },
		"nil state":   func(p *storage.ReleasePoint) { p.State = nil },
		"empty state": func(p *storage.ReleasePoint) { p.State = []byte{} },
		"zero time":   func(p *storage.ReleasePoint) { p.CreatedAt = time.Time{} },
	} {
		p := point("bad", 1)
		bad(p)
		if err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.InsertReleasePoint(p) }); err == nil {
			t.Errorf("InsertReleasePoint of a point with %s: no error", what)
		}
	}
	if got := seqs(readPoints(t, s)); !slices.Equal(got, []int64{1, 2, 3, 4, 5}) {
		t.Errorf("after refused points the store holds Seqs %v, want 1..5", got)
	}
}

// testReleasePointLargeState: a state of a megabyte (every byte value,
// NULs included) comes back whole from each of the three reads.
func testReleasePointLargeState(t *testing.T, s storage.Store) {
	p := point("census-2019", 1<<20)
	update(t, s, func(tx storage.Tx) error { return tx.InsertReleasePoint(p) })
	want := *p
	want.Seq = 1
	view(t, s, func(tx storage.ReadTx) error {
		got, err := tx.ReleasePoint(p.Name)
		if err != nil {
			return err
		}
		if d := diffPoint(got, &want); d != nil {
			t.Errorf("ReleasePoint: %v", d)
		}
		if got, err = tx.LatestReleasePoint(); err != nil {
			return err
		}
		if d := diffPoint(got, &want); d != nil {
			t.Errorf("LatestReleasePoint: %v", d)
		}
		return nil
	})
	listed := readPoints(t, s)
	if len(listed) != 1 {
		t.Fatalf("ReleasePoints listed %d points, want 1", len(listed))
	}
	if d := diffPoint(&listed[0], &want); d != nil {
		t.Errorf("ReleasePoints: %v", d)
	}
}

// testReleasePointSeq: Seqs stay 1, 2, … without a gap or a repeat when
// two points are made in one Update, when two Updates race, and when an
// Update that made one is rolled back (its Seq is the next point's).
func testReleasePointSeq(t *testing.T, s storage.Store) {
	a, b := point("a", 10), point("b", 11)
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(tx.InsertReleasePoint(a), tx.InsertReleasePoint(b))
	})
	if a.Seq != 1 || b.Seq != 2 {
		t.Errorf("two points in one Update got Seqs %d, %d; want 1, 2", a.Seq, b.Seq)
	}

	// Two Updates at once: each gets its own Seq, set on its own point.
	c, d := point("c", 12), point("d", 13)
	errs := make(chan error, 2)
	for _, p := range []*storage.ReleasePoint{c, d} {
		go func() {
			errs <- s.Update(t.Context(), func(tx storage.Tx) error { return tx.InsertReleasePoint(p) })
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("racing InsertReleasePoint: %v", err)
		}
	}
	if got := []int64{min(c.Seq, d.Seq), max(c.Seq, d.Seq)}; !slices.Equal(got, []int64{3, 4}) {
		t.Errorf("two racing Updates got Seqs %d, %d; want 3 and 4", c.Seq, d.Seq)
	}

	// A rolled-back point leaves no gap.
	rolledBack := errors.New("storagetest: roll back")
	gone := point("gone", 14)
	err := s.Update(t.Context(), func(tx storage.Tx) error {
		if err := tx.InsertReleasePoint(gone); err != nil {
			return err
		}
		return rolledBack
	})
	if !errors.Is(err, rolledBack) {
		t.Fatalf("Update: err = %v, want its fn's", err)
	}
	e := point("e", 15)
	update(t, s, func(tx storage.Tx) error { return tx.InsertReleasePoint(e) })
	if e.Seq != 5 {
		t.Errorf("the point after a rolled-back one got Seq %d, want 5", e.Seq)
	}

	listed := readPoints(t, s)
	byName := map[string]int64{}
	for _, p := range listed {
		byName[p.Name] = p.Seq
	}
	if !slices.Equal(seqs(listed), []int64{1, 2, 3, 4, 5}) || byName["c"] != c.Seq || byName["d"] != d.Seq || byName["e"] != 5 {
		t.Errorf("stored points %v, want Seqs 1..5 as InsertReleasePoint reported them (c %d, d %d, e 5)", byName, c.Seq, d.Seq)
	}
	if _, ok := byName["gone"]; ok {
		t.Error("the rolled-back point was stored")
	}
}

// pointGuardedStatements are the changes to release_points the database
// must refuse, in an order where each still changes something if let
// through (the fixture's points have Seqs 1, 2 and 3).
var pointGuardedStatements = []string{
	`DELETE FROM release_points WHERE seq = 3`,
	`UPDATE release_points SET state = (SELECT state FROM release_points WHERE seq = 2) WHERE seq = 1`,
	`UPDATE release_points SET name = 'renamed' WHERE seq = 1`,
	`UPDATE release_points SET as_of = as_of + 1 WHERE seq = 2`,
	`UPDATE release_points SET audit_index = audit_index + 1 WHERE seq = 2`,
	`UPDATE release_points SET created_by = 'mallory' WHERE seq = 2`,
	`UPDATE release_points SET created_at = '2020-01-01T00:00:00Z' WHERE seq = 2`,
	`UPDATE release_points SET seq = 10 WHERE seq = 2`,
}

// RunReleasePointGuards checks, on s (a fresh store) and raw (its
// database), that the database itself refuses every change to a stored
// publication point: deleting it, changing its name, Seq, state, time,
// creator, AsOf or audit index. raw.Refused (the backend's own ways in,
// such as INSERT OR REPLACE or TRUNCATE) run after the common
// statements; they may name seq 1, a point that is still there after
// them (renamed and with another state if the guards are dropped). A
// refused statement leaves the points as they were. Once the
// guards are dropped (raw.DropGuards) every statement goes through and
// changes them: so the guards, not some other failure, refused them.
func RunReleasePointGuards(t *testing.T, s storage.Store, raw Raw) {
	t.Helper()
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(tx.InsertReleasePoint(point("first", 300)),
			tx.InsertReleasePoint(point("second", 400)), tx.InsertReleasePoint(point("third", 500)))
	})
	// read is what the store reads of the points, tolerating none left.
	read := func() string {
		t.Helper()
		var b strings.Builder
		for _, p := range readPoints(t, s) {
			fmt.Fprintf(&b, "point %d %q as of %d at %v by %q audit %d state %x\n",
				p.Seq, p.Name, p.AsOf, p.CreatedAt, p.CreatedBy, p.AuditIndex, sha256.Sum256(p.State))
		}
		view(t, s, func(tx storage.ReadTx) error {
			p, err := tx.LatestReleasePoint()
			switch {
			case errors.Is(err, storage.ErrNotFound):
				b.WriteString("no latest\n")
			case err != nil:
				return err
			default:
				fmt.Fprintf(&b, "latest %d %q\n", p.Seq, p.Name)
			}
			return nil
		})
		return b.String()
	}
	want := read()
	if strings.Count(want, "point ") != 3 || !strings.Contains(want, "latest 3 \"third\"") {
		t.Fatalf("the fixture is not what RunReleasePointGuards expects:\n%s", want)
	}

	checkGuards(t, raw, append(slices.Clone(pointGuardedStatements), raw.Refused...), read, "the publication points")
}

// testScheduledPoints: a scheduled point is stored and read back as one,
// listed among the others in Seq order, but LatestReleasePoint never
// returns it: publication points chain only to publication points (the
// k-rule counts along that chain), however many scheduled points were
// made since.
func testScheduledPoints(t *testing.T, s storage.Store) {
	ctx := context.Background()
	pub := point("2019-04-10", 1)
	day := point("daily-2019-04-11", 2)
	day.Scheduled = true
	for _, p := range []*storage.ReleasePoint{pub, day} {
		if err := s.Update(ctx, func(tx storage.Tx) error { return tx.InsertReleasePoint(p) }); err != nil {
			t.Fatal(err)
		}
	}
	err := s.View(ctx, func(tx storage.ReadTx) error {
		got, err := tx.ReleasePoint(day.Name)
		if err != nil {
			return err
		}
		if !got.Scheduled {
			t.Errorf("%s read back as a publication point", day.Name)
		}
		if d := diffPoint(got, day); len(d) > 0 {
			t.Errorf("%s read back otherwise: %v", day.Name, d)
		}
		latest, err := tx.LatestReleasePoint()
		if err != nil {
			return err
		}
		if latest.Name != pub.Name || latest.Scheduled {
			t.Errorf("LatestReleasePoint = %s (scheduled %v), want the publication point %s", latest.Name, latest.Scheduled, pub.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ps := readPoints(t, s); len(ps) != 2 || ps[0].Scheduled || !ps[1].Scheduled {
		t.Fatalf("points listed %+v", ps)
	}
}
