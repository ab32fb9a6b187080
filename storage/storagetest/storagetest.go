// Package storagetest is the conformance suite every storage backend runs.
//
// The suite checks the contract written on storage.Store, storage.ReadTx
// and storage.Tx, not any backend's internals: a backend that passes it can
// be swapped for another under the broker. Each case gets a fresh, empty
// store, so cases never depend on each other's leftovers and a failure
// names one behaviour.
//
// A backend's test runs it as
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Store {
//			s, err := mybackend.Open(...)
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// Functions passed to Update run on whatever goroutine the backend chooses
// (a group-commit goroutine, say), so the suite never calls t.Fatal inside
// them: they return errors or record values, and the test goroutine checks.
package storagetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
)

// Run runs every conformance case against fresh stores made by open. Each
// subtest calls open once and gets its own empty store; open registers the
// store's cleanup (Close, removing files) with t.Cleanup. Close may be
// called by a case before that cleanup runs, so a backend's Close must
// tolerate being called twice.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Helper()
	cases := []struct {
		name string
		run  func(*testing.T, storage.Store)
	}{
		{"Meta", testMeta},
		{"Areas", testAreas},
		{"Users", testUsers},
		{"TimesRoundTrip", testTimesRoundTrip},
		{"Submissions", testSubmissions},
		{"Supersede", testSupersede},
		{"Deposited", testDeposited},
		{"DataKeys", testDataKeys},
		{"Keys", testKeys},
		{"DataKeysList", testDataKeysList},
		{"Rewrap", testRewrap},
		{"Shred", testShred},
		{"Compact", testCompact},
		{"AuditAppend", testAuditAppend},
		{"AuditRejects", testAuditRejects},
		{"AuditRecords", testAuditRecords},
		{"AuditHashes", testAuditHashes},
		{"AuditHashesConcurrent", testAuditHashesConcurrent},
		{"PutAuditHashes", testPutAuditHashes},
		{"Checkpoints", testCheckpoints},
		{"PruneAuditEvents", testPruneAuditEvents},
		{"UpdateAtomic", testUpdateAtomic},
		{"RefusedWriteKeepsTransaction", testRefusedWriteKeepsTransaction},
		{"ReadYourWrites", testReadYourWrites},
		{"Concurrency", testConcurrency},
		{"ViewSnapshot", testViewSnapshot},
		{"ViewCannotWrite", testViewCannotWrite},
		{"CanceledContext", testCanceledContext},
		{"Watch", testWatch},
		{"Closed", testClosed},
		{"Projects", testProjects},
		{"DebitProject", testDebitProject},
		{"DebitConcurrent", testDebitConcurrent},
		{"GrantProjects", testGrantProjects},
		{"SetRecipient", testSetRecipient},
		{"SubmissionsSince", testSubmissionsSince},
		{"SubmissionsSinceTies", testSubmissionsSinceTies},
		{"ReleasePoints", testReleasePoints},
		{"ReleasePointLargeState", testReleasePointLargeState},
		{"ReleasePointSeq", testReleasePointSeq},
		{"ScheduledPoints", testScheduledPoints},
		{"LedgerDebits", testLedgerDebits},
		{"LedgerDebitRefusals", testLedgerDebitRefusals},
		{"ShareChanges", testShareChanges},
		{"ShareSeq", testShareSeq},
		{"ListSubmissions", testListSubmissions},
		{"ListSubmissionsTies", testListSubmissionsTies},
		{"ListSubmissionsLargeSealed", testListSubmissionsLargeSealed},
		{"RecordOpens", testRecordOpens},
		{"PruneOpens", testPruneOpens},
		{"Reviews", testReviews},
		{"UsersList", testUsersList},
		{"RemoveGrant", testRemoveGrant},
		{"ReplaceToken", testReplaceToken},
		{"GrantLog", testGrantLog},
		{"GrantProposals", testGrantProposals},
		{"GrantSeq", testGrantSeq},
		{"GrantWatch", testGrantWatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, open(t))
		})
	}
}

// update runs fn in an Update and fails the test if it does not commit.
func update(t *testing.T, s storage.Store, fn func(storage.Tx) error) {
	t.Helper()
	if err := s.Update(t.Context(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// view runs fn in a View and fails the test on error.
func view(t *testing.T, s storage.Store, fn func(storage.ReadTx) error) {
	t.Helper()
	if err := s.View(t.Context(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// readAll collects, in a View, every row a listing gives: list runs the
// listing in tx, calling fn for each row. The rows of a retried View are
// not counted twice.
func readAll[T any](t *testing.T, s storage.Store, list func(tx storage.ReadTx, fn func(T) (bool, error)) error) []T {
	t.Helper()
	var out []T
	view(t, s, func(tx storage.ReadTx) error {
		out = nil
		return list(tx, func(r T) (bool, error) {
			out = append(out, r)
			return true, nil
		})
	})
	return out
}

// fields is f of each of xs, in order (nil for none).
func fields[T, U any](xs []T, f func(T) U) []U {
	var out []U
	for _, x := range xs {
		out = append(out, f(x))
	}
	return out
}

// ict is Indochina Time: stored times come back in UTC whatever zone they
// were written in, so the fixtures use a zone that is not UTC.
var ict = time.FixedZone("ICT", 7*60*60)

// at is a fixture time on census day with the given nanoseconds, in ICT.
func at(hour, nsec int) time.Time {
	return time.Date(2019, time.April, 1, hour, 30, 15, nsec, ict)
}

// checkTime reports how got differs from want: the same instant, in UTC,
// and zero stays zero.
func checkTime(field string, got, want time.Time) error {
	if want.IsZero() {
		if !got.IsZero() {
			return fmt.Errorf("%s = %v, want the zero time", field, got)
		}
		return nil
	}
	if !got.Equal(want) {
		return fmt.Errorf("%s = %v, want %v", field, got, want.UTC())
	}
	if got.Location() != time.UTC {
		return fmt.Errorf("%s is in %v, want UTC", field, got.Location())
	}
	return nil
}

// binary is n bytes covering every byte value, NULs included, so a backend
// that treats blobs as text is caught.
func binary(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i) + seed
	}
	return b
}

// submission is a fully populated fixture.
func submission(id, area string, householdNo int64) *storage.Submission {
	sum := sha256.Sum256([]byte(id))
	return &storage.Submission{
		ID:            id,
		Area:          area,
		Commune:       "commune-" + area,
		HouseholdNo:   householdNo,
		Form:          "household",
		FormVersion:   3,
		InterviewedAt: at(9, 123456789),
		ReceivedAt:    at(10, 1),
		Depositor:     "enumerator-07",
		PayloadSHA256: hex.EncodeToString(sum[:]),
		Operational:   []byte(`{"status":"complete","visits":2}`),
		Sealed: []storage.Sealed{
			{Class: "identifying", KeyVersion: 2, Data: binary(1, 300)},
			{Class: "analytic", KeyVersion: 5, Data: binary(7, 700)},
		},
		AuditIndex: 41,
		Receipt:    []byte("receipt for " + id),
	}
}

// diffSubmission lists how got differs from want, field by field. Sealed
// parts are matched by class: the contract does not order them.
func diffSubmission(got, want *storage.Submission) []string {
	var d []string
	str := func(f, g, w string) {
		if g != w {
			d = append(d, fmt.Sprintf("%s = %q, want %q", f, g, w))
		}
	}
	num := func(f string, g, w int64) {
		if g != w {
			d = append(d, fmt.Sprintf("%s = %d, want %d", f, g, w))
		}
	}
	byt := func(f string, g, w []byte) {
		if !bytes.Equal(g, w) {
			d = append(d, fmt.Sprintf("%s = %d bytes %.16x…, want %d bytes %.16x…", f, len(g), g, len(w), w))
		}
	}
	tim := func(f string, g, w time.Time) {
		if err := checkTime(f, g, w); err != nil {
			d = append(d, err.Error())
		}
	}
	str("ID", got.ID, want.ID)
	str("Area", got.Area, want.Area)
	str("Commune", got.Commune, want.Commune)
	num("HouseholdNo", got.HouseholdNo, want.HouseholdNo)
	str("Form", got.Form, want.Form)
	num("FormVersion", int64(got.FormVersion), int64(want.FormVersion))
	tim("InterviewedAt", got.InterviewedAt, want.InterviewedAt)
	tim("ReceivedAt", got.ReceivedAt, want.ReceivedAt)
	str("Depositor", got.Depositor, want.Depositor)
	str("PayloadSHA256", got.PayloadSHA256, want.PayloadSHA256)
	str("Supersedes", got.Supersedes, want.Supersedes)
	str("SupersededBy", got.SupersededBy, want.SupersededBy)
	byt("Operational", got.Operational, want.Operational)
	num("AuditIndex", got.AuditIndex, want.AuditIndex)
	byt("Receipt", got.Receipt, want.Receipt)
	if len(got.Sealed) != len(want.Sealed) {
		d = append(d, fmt.Sprintf("%d sealed parts, want %d", len(got.Sealed), len(want.Sealed)))
	}
	for _, w := range want.Sealed {
		found := false
		for _, g := range got.Sealed {
			if g.Class != w.Class {
				continue
			}
			found = true
			num("Sealed["+w.Class+"].KeyVersion", int64(g.KeyVersion), int64(w.KeyVersion))
			byt("Sealed["+w.Class+"].Data", g.Data, w.Data)
		}
		if !found {
			d = append(d, fmt.Sprintf("no sealed part of class %q", w.Class))
		}
	}
	return d
}

// diffUser lists how got differs from want.
func diffUser(got, want *storage.User) []string {
	var d []string
	if got.Name != want.Name {
		d = append(d, fmt.Sprintf("Name = %q, want %q", got.Name, want.Name))
	}
	if got.TokenHash != want.TokenHash {
		d = append(d, fmt.Sprintf("TokenHash = %q, want %q", got.TokenHash, want.TokenHash))
	}
	if got.Recipient != want.Recipient {
		d = append(d, fmt.Sprintf("Recipient = %q, want %q", got.Recipient, want.Recipient))
	}
	for _, e := range []error{
		checkTime("CreatedAt", got.CreatedAt, want.CreatedAt),
		checkTime("ExpiresAt", got.ExpiresAt, want.ExpiresAt),
		checkTime("RevokedAt", got.RevokedAt, want.RevokedAt),
	} {
		if e != nil {
			d = append(d, e.Error())
		}
	}
	if fmt.Sprint(got.Grants) != fmt.Sprint(want.Grants) {
		d = append(d, fmt.Sprintf("Grants = %v, want %v", got.Grants, want.Grants))
	}
	return d
}

// tokenHash is the stored form of a bearer token.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// chain builds the audit record for event at head the way an RFC 6962 log
// would: leaf = H(0x00‖event), chain = H(previous chain‖leaf). The suite
// only needs every record's chain to depend on the head it was built on,
// so that a record built on a stale head shows.
func chain(head storage.AuditHead, event []byte) storage.AuditRecord {
	leaf := sha256.Sum256(append([]byte{0}, event...))
	return storage.AuditRecord{
		Index:     head.Next,
		Event:     event,
		LeafHash:  leaf,
		ChainHash: sha256.Sum256(append(head.ChainHash[:], leaf[:]...)),
	}
}

// appendEvent is an AppendAudit build func for event.
func appendEvent(event string) func(storage.AuditHead) (storage.AuditRecord, error) {
	return func(h storage.AuditHead) (storage.AuditRecord, error) {
		return chain(h, []byte(event)), nil
	}
}

// auditLog reads the whole audit log.
func auditLog(t *testing.T, s storage.Store) []storage.AuditRecord {
	t.Helper()
	var recs []storage.AuditRecord
	view(t, s, func(tx storage.ReadTx) error {
		recs = nil
		return tx.AuditRecords(0, 0, func(r storage.AuditRecord) (bool, error) {
			recs = append(recs, r)
			return true, nil
		})
	})
	return recs
}

// verifyChain checks that recs are indexes 0..len-1 and that each chain
// hash follows from its predecessor's, recomputed from the stored leaf.
func verifyChain(recs []storage.AuditRecord) error {
	var prev [32]byte
	for i, r := range recs {
		if r.Index != int64(i) {
			return fmt.Errorf("record %d has index %d: the log has a gap or is out of order", i, r.Index)
		}
		if leaf := sha256.Sum256(append([]byte{0}, r.Event...)); leaf != r.LeafHash {
			return fmt.Errorf("record %d: stored leaf hash does not match its event", i)
		}
		if want := sha256.Sum256(append(prev[:], r.LeafHash[:]...)); want != r.ChainHash {
			return fmt.Errorf("record %d: chain hash was not built on record %d's", i, i-1)
		}
		prev = r.ChainHash
	}
	return nil
}
