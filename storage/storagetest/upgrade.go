package storagetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
)

// IDs are the ids of ms, in order, joined by spaces.
func IDs(ms []storage.SubmissionMeta) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.ID)
	}
	return strings.Join(s, " ")
}

// CheckUpgradeFromV7 checks a store upgraded from a database at schema
// version 7 that held one audit record (index 0) and two submissions of
// E1/C1: s1 (audit index 0, received 2019-04-01T10:00:00.5Z, superseded
// by s2) and s2 (audit index 1, superseding s1). Both are kept with no
// record opens; the submissions list, and opens can then be recorded,
// counted and pruned.
func CheckUpgradeFromV7(t *testing.T, s storage.Store) {
	t.Helper()
	ctx := context.Background()
	err := s.View(ctx, func(tx storage.ReadTx) error {
		if h, err := tx.AuditHead(); err != nil || h.Next != 1 {
			t.Errorf("AuditHead after the upgrade = %+v, %v; want the one record kept", h, err)
		}
		got, err := ListAll(tx, storage.SubmissionFilter{After: -1})
		if err != nil || IDs(got) != "s1 s2" || got[0].SupersededBy != "s2" || got[1].Supersedes != "s1" ||
			!got[0].ReceivedAt.Equal(time.Date(2019, time.April, 1, 10, 0, 0, 5e8, time.UTC)) {
			t.Errorf("ListSubmissions after the upgrade = %+v, %v", got, err)
		}
		if got, err := ListAll(tx, storage.SubmissionFilter{After: -1, Current: true}); err != nil || IDs(got) != "s2" {
			t.Errorf("ListSubmissions(current) after the upgrade = %q, %v; want s2", IDs(got), err)
		}
		if n, err := tx.OpensSince("alice", time.Time{}); err != nil || n != 0 {
			t.Errorf("OpensSince after the upgrade = %d, %v; want 0", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := s.Update(ctx, func(tx storage.Tx) error {
		return errors.Join(tx.RecordOpen("alice", "s1", now.Add(-2*time.Hour)), tx.RecordOpen("alice", "s2", now))
	}); err != nil {
		t.Fatalf("recording opens on the upgraded database: %v", err)
	}
	var pruned, left int64
	if err := s.Update(ctx, func(tx storage.Tx) error {
		var err error
		if pruned, err = tx.PruneOpens(now.Add(-time.Hour)); err != nil {
			return err
		}
		left, err = tx.OpensSince("alice", now.Add(-time.Hour))
		return err
	}); err != nil || pruned != 1 || left != 1 {
		t.Errorf("PruneOpens, OpensSince on the upgraded database = %d, %d, %v; want 1, 1", pruned, left, err)
	}
}
