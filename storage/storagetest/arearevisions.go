package storagetest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
)

// areaRevision is revision number n with document doc (any bytes:
// storage does not read them), recorded by audit event auditIndex.
func areaRevision(n int64, doc string, auditIndex int64) *storage.AreaRevision {
	sum := sha256.Sum256([]byte(doc))
	return &storage.AreaRevision{Number: n, At: at(11, int(n)), AuditIndex: auditIndex, Document: []byte(doc), SHA256: hex.EncodeToString(sum[:])}
}

func areaRevisionLine(r storage.AreaRevision) string {
	return fmt.Sprintf("%d at %s audit %d doc %q sha256 %s", r.Number, r.At.UTC().Format("2006-01-02T15:04:05.999999999Z"),
		r.AuditIndex, r.Document, r.SHA256)
}

// areaRevisionsState lists the stored revisions after after, one a line.
func areaRevisionsState(t *testing.T, s storage.Store, after int64) string {
	t.Helper()
	all := readAll(t, s, func(tx storage.ReadTx, fn func(storage.AreaRevision) (bool, error)) error {
		return tx.AreaRevisions(after, fn)
	})
	var b strings.Builder
	for _, r := range all {
		b.WriteString(areaRevisionLine(r) + "\n")
	}
	return b.String()
}

func wantRevisions(rs ...*storage.AreaRevision) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(areaRevisionLine(*r) + "\n")
	}
	return b.String()
}

// RunAreaRevisions checks the revisions of the area tree (schema 12) and
// HouseholdsIn.
func RunAreaRevisions(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("AppendAndRead", func(t *testing.T) {
		s := open(t)
		if got := areaRevisionsState(t, s, 0); got != "" {
			t.Fatalf("a new store has revisions:\n%s", got)
		}
		r1, r2, r3 := areaRevision(1, `{"note": "one"}`, 4), areaRevision(2, "two", 9), areaRevision(3, "three\x00bytes", 9)
		update(t, s, func(tx storage.Tx) error { return tx.AppendAreaRevision(r1) })
		update(t, s, func(tx storage.Tx) error {
			return errors.Join(tx.AppendAreaRevision(r2), tx.AppendAreaRevision(r3))
		})
		if got, want := areaRevisionsState(t, s, 0), wantRevisions(r1, r2, r3); got != want {
			t.Errorf("AreaRevisions(0) =\n%s\nwant\n%s", got, want)
		}
		if got, want := areaRevisionsState(t, s, 1), wantRevisions(r2, r3); got != want {
			t.Errorf("AreaRevisions(1) =\n%s\nwant\n%s", got, want)
		}
		if got := areaRevisionsState(t, s, 3); got != "" {
			t.Errorf("AreaRevisions(3) = %s, want none", got)
		}
		var seen []int64
		view(t, s, func(tx storage.ReadTx) error {
			seen = nil
			return tx.AreaRevisions(0, func(r storage.AreaRevision) (bool, error) {
				seen = append(seen, r.Number)
				return len(seen) < 2, nil
			})
		})
		if !slices.Equal(seen, []int64{1, 2}) {
			t.Errorf("stopping after two read %v", seen)
		}
		stop := errors.New("stop")
		if err := s.View(t.Context(), func(tx storage.ReadTx) error {
			return tx.AreaRevisions(0, func(storage.AreaRevision) (bool, error) { return true, stop })
		}); !errors.Is(err, stop) {
			t.Errorf("fn's error: AreaRevisions returned %v", err)
		}

		// Out of turn: a number taken, a gap, and one that was taken by
		// an Update rolled back (still free).
		for _, n := range []int64{1, 3, 5} {
			err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.AppendAreaRevision(areaRevision(n, "again", 10)) })
			if !errors.Is(err, storage.ErrConflict) {
				t.Errorf("AppendAreaRevision(%d) after 3: %v, want ErrConflict", n, err)
			}
		}
		rolled := errors.New("roll back")
		if err := s.Update(t.Context(), func(tx storage.Tx) error {
			if err := tx.AppendAreaRevision(areaRevision(4, "rolled back", 10)); err != nil {
				return err
			}
			return rolled
		}); !errors.Is(err, rolled) {
			t.Fatalf("rolled-back Update: %v", err)
		}
		r4 := areaRevision(4, "four", 12)
		update(t, s, func(tx storage.Tx) error { return tx.AppendAreaRevision(r4) })
		if got, want := areaRevisionsState(t, s, 0), wantRevisions(r1, r2, r3, r4); got != want {
			t.Errorf("after the conflicts and a rollback =\n%s\nwant\n%s", got, want)
		}
	})

	t.Run("Malformed", func(t *testing.T) {
		s := open(t)
		bad := func(mut func(*storage.AreaRevision)) *storage.AreaRevision {
			r := areaRevision(1, "doc", 3)
			mut(r)
			return r
		}
		for name, r := range map[string]*storage.AreaRevision{
			"number 0":       bad(func(r *storage.AreaRevision) { r.Number = 0 }),
			"no time":        bad(func(r *storage.AreaRevision) { r.At = time.Time{} }),
			"audit -1":       bad(func(r *storage.AreaRevision) { r.AuditIndex = -1 }),
			"empty document": bad(func(r *storage.AreaRevision) { r.Document = nil; r.SHA256 = areaRevision(1, "", 0).SHA256 }),
			"wrong sha256":   bad(func(r *storage.AreaRevision) { r.SHA256 = areaRevision(1, "other", 0).SHA256 }),
			"upper sha256":   bad(func(r *storage.AreaRevision) { r.SHA256 = strings.ToUpper(r.SHA256) }),
		} {
			err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.AppendAreaRevision(r) })
			if err == nil || errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound) {
				t.Errorf("%s: AppendAreaRevision = %v, want a refusal", name, err)
			}
		}
		if got := areaRevisionsState(t, s, 0); got != "" {
			t.Errorf("malformed revisions were stored:\n%s", got)
		}
	})

	t.Run("HouseholdsIn", func(t *testing.T) {
		s := open(t)
		update(t, s, func(tx storage.Tx) error {
			var err error
			for _, hh := range []int64{1, 2, 3, 150, 151, 1_000_000_000} {
				err = errors.Join(err, tx.InsertSubmission(submission(fmt.Sprintf("a%d", hh), "EA1", hh)))
			}
			err = errors.Join(err, tx.InsertSubmission(submission("b1", "EA10", 2)), tx.InsertSubmission(submission("b2", "EA", 2)))
			// Household 2 of EA1 superseded: counted once, as its
			// successor.
			s2 := submission("a2-new", "EA1", 2)
			s2.Supersedes = "a2"
			err = errors.Join(err, tx.MarkSuperseded("a2", "a2-new"), tx.InsertSubmission(s2))
			// Household 3 superseded by one stored under another code
			// (an EA split since): no longer counted under EA1.
			s3 := submission("a3-new", "EA1b", 3)
			s3.Supersedes = "a3"
			return errors.Join(err, tx.MarkSuperseded("a3", "a3-new"), tx.InsertSubmission(s3))
		})
		for _, c := range []struct {
			area     string
			from, to int64
			want     int64
		}{
			{"EA1", 1, 1_000_000_000, 5}, {"EA1", 1, 150, 3}, {"EA1", 151, 1_000_000_000, 2}, {"EA1", 2, 2, 1},
			{"EA1", 3, 3, 0}, {"EA1", 4, 149, 0}, {"EA1", 150, 151, 2}, {"EA1", 152, 999_999_999, 0},
			{"EA1", 1_000_000_000, 1_000_000_000, 1}, {"EA1", 5, 4, 0}, {"EA1b", 1, 1_000_000_000, 1},
			{"EA10", 1, 1_000_000_000, 1}, {"EA", 1, 10, 1}, {"EA2", 1, 1_000_000_000, 0},
		} {
			var n int64
			view(t, s, func(tx storage.ReadTx) error {
				var err error
				n, err = tx.HouseholdsIn(c.area, c.from, c.to)
				return err
			})
			if n != c.want {
				t.Errorf("HouseholdsIn(%s, %d, %d) = %d, want %d", c.area, c.from, c.to, n, c.want)
			}
		}
	})
}

// areaRevisionGuardedStatements are the changes of area_revisions the
// database must refuse, on the fixture of RunAreaRevisionGuards
// (revisions 1 and 2), each changing something if let through.
var areaRevisionGuardedStatements = []string{
	`UPDATE area_revisions SET at = '2020-01-01T00:00:00Z' WHERE number = 2`,
	`UPDATE area_revisions SET audit_index = 99 WHERE number = 1`,
	`DELETE FROM area_revisions WHERE number = 2`,
	`UPDATE area_revisions SET number = 7 WHERE number = 1`,
	`INSERT INTO area_revisions(number, at, audit_index, document, sha256)
		SELECT 5, at, audit_index, document, sha256 FROM area_revisions ORDER BY number LIMIT 1`,
}

// RunAreaRevisionGuards checks that the database itself refuses to change
// or remove a stored revision, or to store one out of turn, until the
// backend's triggers are dropped. raw.Refused run after the common
// statements, on the same fixture.
func RunAreaRevisionGuards(t *testing.T, s storage.Store, raw Raw) {
	t.Helper()
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(tx.AppendAreaRevision(areaRevision(1, "one", 3)), tx.AppendAreaRevision(areaRevision(2, "two", 5)))
	})
	read := func() string {
		t.Helper()
		return areaRevisionsState(t, s, 0)
	}
	checkGuards(t, raw, append(slices.Clone(areaRevisionGuardedStatements), raw.Refused...), read, "the area revisions")
}

// CheckUpgradeFromV11 checks a store opened on a database of schema
// version 11: it has no revisions and stores the first.
func CheckUpgradeFromV11(t *testing.T, s storage.Store) {
	t.Helper()
	if got := areaRevisionsState(t, s, 0); got != "" {
		t.Errorf("after the upgrade, revisions:\n%s", got)
	}
	r1 := areaRevision(1, "one", 1)
	update(t, s, func(tx storage.Tx) error { return tx.AppendAreaRevision(r1) })
	if got, want := areaRevisionsState(t, s, 0), wantRevisions(r1); got != want {
		t.Errorf("after the upgrade and a revision:\n%s\nwant\n%s", got, want)
	}
}
