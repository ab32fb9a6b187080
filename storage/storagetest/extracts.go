package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/storage"
)

// environment is a registered environment as the broker stores one.
func environment(name string, auditIndex int64, classes ...string) *storage.Environment {
	return &storage.Environment{
		Name: name, Recipient: "age1" + strings.Repeat("q", 58), Classes: classes,
		CreatedBy: "cli:root", CreatedAt: at(8, 250), AuditIndex: auditIndex,
	}
}

// diffEnvironment lists how got differs from want.
func diffEnvironment(got, want *storage.Environment) []string {
	var d []string
	if g, w := fmt.Sprintf("%q %q %q %q %d %q %d", got.Name, got.Recipient, got.Classes, got.CreatedBy, got.AuditIndex, got.RetiredBy, got.RetireAudit),
		fmt.Sprintf("%q %q %q %q %d %q %d", want.Name, want.Recipient, want.Classes, want.CreatedBy, want.AuditIndex, want.RetiredBy, want.RetireAudit); g != w {
		d = append(d, fmt.Sprintf("name, recipient, classes, created by, audit, retired by, retire audit = %s, want %s", g, w))
	}
	for _, e := range []error{checkTime("CreatedAt", got.CreatedAt, want.CreatedAt), checkTime("RetiredAt", got.RetiredAt, want.RetiredAt)} {
		if e != nil {
			d = append(d, e.Error())
		}
	}
	return d
}

// proposal is a pending extract proposal; ProposeExtract sets its Seq.
func proposal(env string, auditIndex int64, areas ...string) *storage.ExtractProposal {
	return &storage.ExtractProposal{
		Environment: env, Areas: areas, Form: "household", FormVersion: 3, Classes: []string{"operational", "analytic"},
		Format: "jsonl", Purpose: "coding of occupations, Hồng Lĩnh", ProposedBy: "pat",
		ProposedAt: at(11, 7), ProposalAudit: auditIndex,
	}
}

// diffProposal lists how got differs from want.
func diffProposal(got, want *storage.ExtractProposal) []string {
	var d []string
	f := func(p *storage.ExtractProposal) string {
		return fmt.Sprintf("seq %d env %q areas %q form %q v%d classes %q format %q purpose %q by %q audit %d approved by %q audit %d",
			p.Seq, p.Environment, p.Areas, p.Form, p.FormVersion, p.Classes, p.Format, p.Purpose, p.ProposedBy, p.ProposalAudit,
			p.ApprovedBy, p.ApprovalAudit)
	}
	if g, w := f(got), f(want); g != w {
		d = append(d, fmt.Sprintf("%s, want %s", g, w))
	}
	for _, e := range []error{checkTime("ProposedAt", got.ProposedAt, want.ProposedAt), checkTime("ApprovedAt", got.ApprovedAt, want.ApprovedAt)} {
		if e != nil {
			d = append(d, e.Error())
		}
	}
	return d
}

// checkEnvironments checks that the store holds exactly want, in name
// order, each also by name.
func checkEnvironments(t *testing.T, s storage.Store, when string, want ...storage.Environment) {
	t.Helper()
	got := readAll(t, s, storage.ReadTx.Environments)
	if len(got) != len(want) {
		t.Errorf("%s: Environments listed %d, want %d", when, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if d := diffEnvironment(&got[i], &want[i]); d != nil {
			t.Errorf("%s: Environments[%d]: %v", when, i, d)
		}
	}
	view(t, s, func(tx storage.ReadTx) error {
		for _, w := range want {
			g, err := tx.Environment(w.Name)
			if err != nil {
				t.Errorf("%s: Environment(%s): %v", when, w.Name, err)
			} else if d := diffEnvironment(g, &w); d != nil {
				t.Errorf("%s: Environment(%s): %v", when, w.Name, d)
			}
		}
		return nil
	})
}

// checkProposals checks that the store holds exactly want, in Seq order,
// each also by Seq.
func checkProposals(t *testing.T, s storage.Store, when string, want ...storage.ExtractProposal) {
	t.Helper()
	got := readAll(t, s, storage.ReadTx.ExtractProposals)
	if len(got) != len(want) {
		t.Errorf("%s: ExtractProposals listed %d, want %d", when, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if d := diffProposal(&got[i], &want[i]); d != nil {
			t.Errorf("%s: ExtractProposals[%d]: %v", when, i, d)
		}
	}
	view(t, s, func(tx storage.ReadTx) error {
		for _, w := range want {
			g, err := tx.ExtractProposal(w.Seq)
			if err != nil {
				t.Errorf("%s: ExtractProposal(%d): %v", when, w.Seq, err)
			} else if d := diffProposal(g, &w); d != nil {
				t.Errorf("%s: ExtractProposal(%d): %v", when, w.Seq, d)
			}
		}
		return nil
	})
}

// testEnvironments: an empty store has none; environments read back
// every field (classes in their order, times in UTC), listed in name
// order whatever the order of registration; a name is registered once,
// retired or not; an environment is retired once; malformed ones are
// refused and change nothing.
func testEnvironments(t *testing.T, s storage.Store) {
	checkEnvironments(t, s, "an empty store")
	view(t, s, func(tx storage.ReadTx) error {
		if _, err := tx.Environment("nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Environment of an empty store: err = %v, want ErrNotFound", err)
		}
		return nil
	})
	zeta, alpha := environment("zeta", 4, "analytic"), environment("alpha.centre", 9, "operational", "analytic", "identifying")
	update(t, s, func(tx storage.Tx) error { return errors.Join(tx.InsertEnvironment(zeta), tx.InsertEnvironment(alpha)) })
	checkEnvironments(t, s, "two environments", *alpha, *zeta)

	var dupErr error
	other := environment("zeta", 12, "identifying")
	other.Recipient = "age1other"
	update(t, s, func(tx storage.Tx) error { dupErr = tx.InsertEnvironment(other); return nil })
	if !errors.Is(dupErr, storage.ErrConflict) {
		t.Errorf("InsertEnvironment of a stored name: err = %v, want ErrConflict", dupErr)
	}

	update(t, s, func(tx storage.Tx) error { return tx.RetireEnvironment("zeta", "cli:root", at(13, 5), 30) })
	retired := *zeta
	retired.RetiredBy, retired.RetiredAt, retired.RetireAudit = "cli:root", at(13, 5), 30
	checkEnvironments(t, s, "after retiring zeta", *alpha, retired)

	var twiceErr, unknownErr, retiredDupErr error
	update(t, s, func(tx storage.Tx) error {
		twiceErr = tx.RetireEnvironment("zeta", "mallory", at(14, 0), 31)
		unknownErr = tx.RetireEnvironment("nope", "cli:root", at(14, 0), 32)
		retiredDupErr = tx.InsertEnvironment(environment("zeta", 33, "analytic"))
		return nil
	})
	if !errors.Is(twiceErr, storage.ErrConflict) {
		t.Errorf("RetireEnvironment of a retired environment: err = %v, want ErrConflict", twiceErr)
	}
	if !errors.Is(unknownErr, storage.ErrNotFound) {
		t.Errorf("RetireEnvironment of an unknown name: err = %v, want ErrNotFound", unknownErr)
	}
	if !errors.Is(retiredDupErr, storage.ErrConflict) {
		t.Errorf("InsertEnvironment over a retired name: err = %v, want ErrConflict", retiredDupErr)
	}
	checkEnvironments(t, s, "after refused writes", *alpha, retired)

	for what, bad := range map[string]func(*storage.Environment){
		"no name":          func(e *storage.Environment) { e.Name = "" },
		"no recipient":     func(e *storage.Environment) { e.Recipient = "" },
		"no classes":       func(e *storage.Environment) { e.Classes = nil },
		"an empty class":   func(e *storage.Environment) { e.Classes = []string{"analytic", ""} },
		"no registrar":     func(e *storage.Environment) { e.CreatedBy = "" },
		"a zero time":      func(e *storage.Environment) { e.CreatedAt = time.Time{} },
		"a negative audit": func(e *storage.Environment) { e.AuditIndex = -1 },
		"already retired":  func(e *storage.Environment) { e.RetiredBy, e.RetiredAt = "x", at(1, 0) },
	} {
		e := environment("bad-"+strings.ReplaceAll(what, " ", "-"), 40, "analytic")
		bad(e)
		err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.InsertEnvironment(e) })
		if err == nil {
			t.Errorf("InsertEnvironment with %s succeeded", what)
		}
	}
	checkEnvironments(t, s, "after malformed registrations", *alpha, retired)
}

// testExtractProposals: an empty store has none; proposals get Seq 1, 2,
// … whatever Seq they held and read back every field (areas and classes
// in their order, times in UTC); a proposal is approved once, the first
// approval kept; an unknown Seq is ErrNotFound; a proposal names a
// stored environment; malformed ones are refused and change nothing.
func testExtractProposals(t *testing.T, s storage.Store) {
	checkProposals(t, s, "an empty store")
	view(t, s, func(tx storage.ReadTx) error {
		if _, err := tx.ExtractProposal(1); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ExtractProposal of an empty store: err = %v, want ErrNotFound", err)
		}
		return nil
	})
	update(t, s, func(tx storage.Tx) error {
		return tx.InsertEnvironment(environment("centre", 1, "analytic", "operational"))
	})
	fixtures := []*storage.ExtractProposal{proposal("centre", 5, "437", "18070-02"), proposal("centre", 8, "42"), proposal("centre", 9, "VN")}
	fixtures[1].Seq = 77 // overwritten
	fixtures[2].Format, fixtures[2].Classes = "csv", []string{"analytic"}
	var want []storage.ExtractProposal
	for i, p := range fixtures {
		update(t, s, func(tx storage.Tx) error { return tx.ProposeExtract(p) })
		if p.Seq != int64(i+1) {
			t.Errorf("ProposeExtract %d set Seq %d, want %d", i, p.Seq, i+1)
		}
		want = append(want, *p)
	}
	checkProposals(t, s, "three proposals", want...)

	update(t, s, func(tx storage.Tx) error { return tx.ApproveExtract(2, "carol", at(12, 9), 77) })
	want[1].ApprovedBy, want[1].ApprovedAt, want[1].ApprovalAudit = "carol", at(12, 9), 77
	checkProposals(t, s, "after approving Seq 2", want...)

	var twiceErr, unknownErr, noEnvErr error
	update(t, s, func(tx storage.Tx) error {
		twiceErr = tx.ApproveExtract(2, "dave", at(13, 0), 88)
		unknownErr = tx.ApproveExtract(9, "dave", at(13, 0), 89)
		return nil
	})
	if !errors.Is(twiceErr, storage.ErrConflict) {
		t.Errorf("ApproveExtract of an approved proposal: err = %v, want ErrConflict", twiceErr)
	}
	if !errors.Is(unknownErr, storage.ErrNotFound) {
		t.Errorf("ApproveExtract of an unknown Seq: err = %v, want ErrNotFound", unknownErr)
	}
	noEnvErr = s.Update(t.Context(), func(tx storage.Tx) error { return tx.ProposeExtract(proposal("nowhere", 90, "VN")) })
	if noEnvErr == nil {
		t.Error("ProposeExtract for an environment never registered succeeded")
	}
	checkProposals(t, s, "after refused writes", want...)

	for what, bad := range map[string]func(*storage.ExtractProposal){
		"no environment":    func(p *storage.ExtractProposal) { p.Environment = "" },
		"no areas":          func(p *storage.ExtractProposal) { p.Areas = nil },
		"an empty area":     func(p *storage.ExtractProposal) { p.Areas = []string{"VN", ""} },
		"no form":           func(p *storage.ExtractProposal) { p.Form = "" },
		"form version 0":    func(p *storage.ExtractProposal) { p.FormVersion = 0 },
		"no classes":        func(p *storage.ExtractProposal) { p.Classes = nil },
		"an empty class":    func(p *storage.ExtractProposal) { p.Classes = []string{""} },
		"no format":         func(p *storage.ExtractProposal) { p.Format = "" },
		"no purpose":        func(p *storage.ExtractProposal) { p.Purpose = "" },
		"no proposer":       func(p *storage.ExtractProposal) { p.ProposedBy = "" },
		"a zero time":       func(p *storage.ExtractProposal) { p.ProposedAt = time.Time{} },
		"a negative audit":  func(p *storage.ExtractProposal) { p.ProposalAudit = -1 },
		"already approved":  func(p *storage.ExtractProposal) { p.ApprovedBy, p.ApprovedAt, p.ApprovalAudit = "carol", at(1, 0), 3 },
		"an approval audit": func(p *storage.ExtractProposal) { p.ApprovalAudit = 3 },
		"an approval time":  func(p *storage.ExtractProposal) { p.ApprovedAt = at(1, 0) },
		"an approver alone": func(p *storage.ExtractProposal) { p.ApprovedBy = "carol" },
	} {
		p := proposal("centre", 50, "VN")
		bad(p)
		if err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.ProposeExtract(p) }); err == nil {
			t.Errorf("ProposeExtract with %s succeeded", what)
		}
	}
	for what, call := range map[string]func(tx storage.Tx) error{
		"by no one":        func(tx storage.Tx) error { return tx.ApproveExtract(1, "", at(1, 0), 3) },
		"at a zero time":   func(tx storage.Tx) error { return tx.ApproveExtract(1, "carol", time.Time{}, 3) },
		"a negative audit": func(tx storage.Tx) error { return tx.ApproveExtract(1, "carol", at(1, 0), -1) },
	} {
		if err := s.Update(t.Context(), call); err == nil {
			t.Errorf("ApproveExtract %s succeeded", what)
		}
	}
	checkProposals(t, s, "after malformed writes", want...)
}

// extractFixture stores the submissions testExtractSubmissions reads,
// each with its own audit index:
//
//	s01 (10, E1) s02 (12, E1, superseded by s03 at 30) s04 (15, E2)
//	s09 (16, E1, superseded by s10 at 18) s05 (25, E1)
//	s06 (11, E1, form version 4) s07 (13, E1, another form)
//	s08 (14, E3, a commune not asked for)
func extractFixture(t *testing.T, s storage.Store) map[string]*storage.Submission {
	t.Helper()
	subs := map[string]*storage.Submission{}
	add := func(id, area string, hh, index int64) *storage.Submission {
		sub := submission(id, area, hh)
		sub.AuditIndex = index
		subs[id] = sub
		return sub
	}
	add("s01", "E1", 1, 10)
	add("s02", "E1", 2, 12)
	add("s04", "E2", 1, 15)
	add("s09", "E1", 9, 16)
	add("s05", "E1", 5, 25)
	add("s06", "E1", 6, 11).FormVersion = 4
	add("s07", "E1", 7, 13).Form = "listing"
	add("s08", "E3", 8, 14)
	s03, s10 := add("s03", "E1", 2, 30), add("s10", "E1", 9, 18)
	s03.Supersedes, s10.Supersedes = "s02", "s09"
	s10.Operational = nil // a submission without operational fields
	s10.Sealed = s10.Sealed[1:]
	update(t, s, func(tx storage.Tx) error {
		var err error
		for _, id := range []string{"s01", "s02", "s04", "s09", "s05", "s06", "s07", "s08"} {
			err = errors.Join(err, tx.InsertSubmission(subs[id]))
		}
		return errors.Join(err, tx.MarkSuperseded("s02", "s03"), tx.InsertSubmission(s03),
			tx.MarkSuperseded("s09", "s10"), tx.InsertSubmission(s10))
	})
	subs["s02"].SupersededBy, subs["s09"].SupersededBy = "s03", "s10"
	return subs
}

// asExtracted is what ExtractSubmissions returns of sub for classes: no
// receipt, payload digest or successor, and only the parts of classes.
func asExtracted(sub *storage.Submission, classes []string) *storage.Submission {
	w := *sub
	w.Receipt, w.PayloadSHA256, w.SupersededBy = nil, "", ""
	if !slices.Contains(classes, "operational") {
		w.Operational = nil
	}
	w.Sealed = nil
	for _, p := range sub.Sealed {
		if slices.Contains(classes, p.Class) {
			w.Sealed = append(w.Sealed, p)
		}
	}
	return &w
}

// testExtractSubmissions: an extract holds the submissions of the
// communes and form version asked for that are current as of its audit
// index — none after it, and one superseded by a submission after it
// counts as current — in audit order, with the parts of the classes
// asked for only; a listing's fn may use the transaction and stops when
// asked.
func testExtractSubmissions(t *testing.T, s storage.Store) {
	subs := extractFixture(t, s)
	all := []string{"identifying", "analytic", "operational"}
	for _, c := range []struct {
		asOf     int64
		communes []string
		classes  []string
		want     []string
	}{
		{9, []string{"commune-E1", "commune-E2"}, all, nil},
		{10, []string{"commune-E1", "commune-E2"}, all, []string{"s01"}},
		{17, []string{"commune-E1", "commune-E2"}, all, []string{"s01", "s02", "s04", "s09"}},
		{22, []string{"commune-E1", "commune-E2"}, all, []string{"s01", "s02", "s04", "s10"}},
		{22, []string{"commune-E2", "commune-E1"}, []string{"analytic"}, []string{"s01", "s02", "s04", "s10"}},
		{22, []string{"commune-E1"}, []string{"identifying", "operational"}, []string{"s01", "s02", "s10"}},
		{30, []string{"commune-E1", "commune-E2", "commune-E3"}, []string{"operational"}, []string{"s01", "s08", "s04", "s10", "s05", "s03"}},
		{1000, []string{"commune-E2"}, all, []string{"s04"}},
		{1000, []string{}, all, nil},
		{1000, nil, all, nil},
	} {
		what := fmt.Sprintf("ExtractSubmissions as of %d of %q with %q", c.asOf, c.communes, c.classes)
		got := readAll(t, s, func(tx storage.ReadTx, fn func(storage.Submission) (bool, error)) error {
			return tx.ExtractSubmissions(storage.ExtractFilter{Communes: c.communes, Form: "household", FormVersion: 3, AsOf: c.asOf, Classes: c.classes}, fn)
		})
		var ids []string
		for _, g := range got {
			ids = append(ids, g.ID)
		}
		if !slices.Equal(ids, c.want) {
			t.Errorf("%s: %q, want %q", what, ids, c.want)
			continue
		}
		for i := range got {
			if d := diffSubmission(&got[i], asExtracted(subs[got[i].ID], c.classes)); d != nil {
				t.Errorf("%s: %s: %v", what, got[i].ID, d)
			}
		}
	}
}

// testExtractSubmissionsPages: submissions sharing an audit index, more
// than a page of them, are each returned once, in audit order; a
// listing stops when its fn asks, on any page, returns fn's error, and
// its fn may read from the transaction on every page.
func testExtractSubmissionsPages(t *testing.T, s storage.Store) {
	const tied = 1600
	insertTies(t, s, tied)
	for _, c := range []struct {
		asOf int64
		n    int
	}{{2, 0}, {3, 1}, {7, tied + 1}, {8, tied + 1}, {9, tied + 2}} {
		checkOnceInOrder(t, s, fmt.Sprintf("ExtractSubmissions as of %d", c.asOf), -1, c.n,
			func(tx storage.ReadTx, visit func(string, int64) (bool, error)) error {
				f := storage.ExtractFilter{Communes: []string{"commune-E1", "commune-E2"}, Form: "household", FormVersion: 3, AsOf: c.asOf, Classes: []string{"analytic"}}
				return tx.ExtractSubmissions(f, func(sub storage.Submission) (bool, error) {
					if sub.AuditIndex > c.asOf {
						return false, fmt.Errorf("%s at audit index %d, after %d", sub.ID, sub.AuditIndex, c.asOf)
					}
					return visit(sub.ID, sub.AuditIndex)
				})
			})
	}
	f := storage.ExtractFilter{Communes: []string{"commune-E1", "commune-E2"}, Form: "household", FormVersion: 3, AsOf: 9, Classes: []string{"analytic"}}
	walk := func(tx storage.ReadTx, fn func() (bool, error)) error {
		return tx.ExtractSubmissions(f, func(storage.Submission) (bool, error) { return fn() })
	}
	checkStopAndFail(t, s, "ExtractSubmissions", walk, walk)
	checkReadsInFn(t, s, "ExtractSubmissions", tied+2, func(tx storage.ReadTx, visit func(string, int64) (bool, error)) error {
		return tx.ExtractSubmissions(f, func(sub storage.Submission) (bool, error) { return visit(sub.ID, sub.AuditIndex) })
	})
}

// extractsState is everything the store reads of environments and
// proposals, for checking that a refused write changed nothing.
func extractsState(t *testing.T, s storage.Store) string {
	t.Helper()
	var b strings.Builder
	for _, e := range readAll(t, s, storage.ReadTx.Environments) {
		fmt.Fprintf(&b, "environment %q %q %q by %q at %v audit %d retired by %q at %v audit %d\n",
			e.Name, e.Recipient, e.Classes, e.CreatedBy, e.CreatedAt, e.AuditIndex, e.RetiredBy, e.RetiredAt, e.RetireAudit)
	}
	for _, p := range readAll(t, s, storage.ReadTx.ExtractProposals) {
		fmt.Fprintf(&b, "proposal %d %q %q %q v%d %q %q %q by %q at %v audit %d approved by %q at %v audit %d\n",
			p.Seq, p.Environment, p.Areas, p.Form, p.FormVersion, p.Classes, p.Format, p.Purpose, p.ProposedBy, p.ProposedAt,
			p.ProposalAudit, p.ApprovedBy, p.ApprovedAt, p.ApprovalAudit)
	}
	return b.String()
}

// extractGuardedStatements are the changes to environments and
// proposals the database must refuse, in an order where each still
// changes something if let through.
var extractGuardedStatements = []string{
	`UPDATE extract_environments SET recipient = 'age1mallory' WHERE name = 'e1'`,
	`UPDATE extract_environments SET classes = '["identifying","analytic"]' WHERE name = 'e1'`,
	`UPDATE extract_environments SET retired_by = 'mallory' WHERE name = 'e3'`,
	`UPDATE extract_environments SET retired_by = '', retired_at = '', retire_audit = 0 WHERE name = 'e3'`,
	`UPDATE extract_environments SET retired_by = 'carol', retired_at = '2020-01-01T00:00:00Z', retire_audit = 7, recipient = 'age1mallory' WHERE name = 'e2'`,
	`UPDATE extract_environments SET retired_by = 'carol', retired_at = '2020-01-01T00:00:00Z', retire_audit = 7, classes = '["identifying"]' WHERE name = 'e2'`,
	`UPDATE extract_environments SET retired_by = 'carol', retired_at = '2020-01-01T00:00:00Z', retire_audit = 7, audit_index = 99 WHERE name = 'e2'`,
	`UPDATE extract_proposals SET purpose = 'other' WHERE seq = 1`,
	`UPDATE extract_proposals SET classes = '["identifying","analytic"]' WHERE seq = 2`,
	`UPDATE extract_proposals SET proposal_audit = 1000 WHERE seq = 2`,
	`UPDATE extract_proposals SET approved_by = 'mallory', approved_at = '2020-01-01T00:00:00Z', approval_audit = 99 WHERE seq = 2`,
	`UPDATE extract_proposals SET approved_by = '', approved_at = '', approval_audit = 0 WHERE seq = 2`,
	`UPDATE extract_proposals SET approved_by = 'carol', approved_at = '2020-01-01T00:00:00Z', approval_audit = 7, areas = '["42"]' WHERE seq = 1`,
	`UPDATE extract_proposals SET approved_by = 'carol', approved_at = '2020-01-01T00:00:00Z', approval_audit = 7, proposed_by = 'carol' WHERE seq = 1`,
	`UPDATE extract_proposals SET approved_by = 'carol', approved_at = '2020-01-01T00:00:00Z', approval_audit = 7, environment = 'e2' WHERE seq = 1`,
	`UPDATE extract_proposals SET approved_by = 'carol', approved_at = '2020-01-01T00:00:00Z', approval_audit = 7, form_version = 9 WHERE seq = 1`,
	`UPDATE extract_proposals SET approved_by = 'carol', approved_at = '2020-01-01T00:00:00Z', approval_audit = 7, format = 'csv' WHERE seq = 1`,
	`UPDATE extract_proposals SET approved_by = 'carol', approved_at = '2020-01-01T00:00:00Z', approval_audit = 7, proposed_at = '2020-01-01T00:00:00Z' WHERE seq = 1`,
	`UPDATE extract_proposals SET approved_by = 'carol', approved_at = '2020-01-01T00:00:00Z', approval_audit = 7, form = 'listing' WHERE seq = 1`,
	`UPDATE extract_proposals SET approved_by = 'carol', approved_at = '2020-01-01T00:00:00Z', approval_audit = 7, purpose = 'other' WHERE seq = 3`,
	`DELETE FROM extract_proposals WHERE seq = 3`,
	`DELETE FROM extract_environments WHERE name = 'e4'`,
	`UPDATE extract_environments SET name = 'e9' WHERE name = 'e5'`,
	`UPDATE extract_proposals SET approved_by = 'carol', approved_at = '2020-01-01T00:00:00Z', approval_audit = 7, seq = 10 WHERE seq = 1`,
}

// RunExtractGuards checks, on s (a fresh store) and raw (its database),
// that the database itself keeps environments and extract proposals
// append-only: it refuses deleting either, changing an environment
// otherwise than by retiring it once and a proposal otherwise than by
// approving it once (a retirement or approval that changes another
// field, a second one and a withdrawn one included), while letting the
// one allowed retirement and approval through. raw.Refused (the
// backend's own ways in, such as INSERT OR REPLACE, an upsert or
// TRUNCATE) run after the common statements; they may name environment
// e1 and proposal 2, which are still there after them. A refused
// statement leaves the tables as they were. Once the guards are dropped
// (raw.DropGuards) every statement goes through and changes them: so the
// guards, not some other failure, refused them.
func RunExtractGuards(t *testing.T, s storage.Store, raw Raw) {
	t.Helper()
	update(t, s, func(tx storage.Tx) error {
		err := errors.Join(tx.InsertEnvironment(environment("e1", 1, "analytic")), tx.InsertEnvironment(environment("e2", 2, "analytic")),
			tx.InsertEnvironment(environment("e3", 3, "analytic", "operational")), tx.InsertEnvironment(environment("e4", 4, "analytic")),
			tx.InsertEnvironment(environment("e5", 4, "operational")))
		for _, p := range []*storage.ExtractProposal{proposal("e1", 5, "VN"), proposal("e1", 6, "42"), proposal("e2", 7, "437"), proposal("e3", 8, "VN")} {
			err = errors.Join(err, tx.ProposeExtract(p))
		}
		return errors.Join(err, tx.RetireEnvironment("e3", "cli:root", at(6, 0), 9), tx.ApproveExtract(2, "carol", at(5, 0), 10))
	})
	read := func() string {
		t.Helper()
		return extractsState(t, s)
	}
	// The changes the guards allow, made behind the store's back: an
	// environment retired and a pending proposal approved, nothing else
	// touched.
	before := read()
	if err := raw.Exec(`UPDATE extract_environments SET retired_by = 'dave', retired_at = '2019-04-01T00:00:00Z', retire_audit = 11 WHERE name = 'e4'`); err != nil {
		t.Fatalf("the database refused the retirement of an environment: %v", err)
	}
	if err := raw.Exec(`UPDATE extract_proposals SET approved_by = 'dave', approved_at = '2019-04-01T00:00:00Z', approval_audit = 12 WHERE seq = 4`); err != nil {
		t.Fatalf("the database refused the approval of a pending proposal: %v", err)
	}
	if read() == before {
		t.Fatal("retiring an environment and approving a proposal in SQL changed nothing")
	}
	want := read()
	if strings.Count(want, "environment \"") != 5 || strings.Count(want, "proposal ") != 4 || strings.Count(want, "approved by \"\"") != 2 ||
		strings.Count(want, "retired by \"\"") != 3 {
		t.Fatalf("the fixture is not what RunExtractGuards expects:\n%s", want)
	}
	checkGuards(t, raw, append(slices.Clone(extractGuardedStatements), raw.Refused...), read, "the environments and extract proposals")
}

// CheckUpgradeFromV9 checks a store opened on a database of schema
// version 9 holding one submission, s1 (EA E1 of commune C1, form
// household version 1, audit index 0, both sealed parts): it is kept and
// extracted; there are no environments or proposals, and both can then
// be stored.
func CheckUpgradeFromV9(t *testing.T, s storage.Store) {
	t.Helper()
	checkEnvironments(t, s, "after the upgrade")
	checkProposals(t, s, "after the upgrade")
	got := readAll(t, s, func(tx storage.ReadTx, fn func(storage.Submission) (bool, error)) error {
		return tx.ExtractSubmissions(storage.ExtractFilter{Communes: []string{"C1"}, Form: "household", FormVersion: 1, AsOf: 0,
			Classes: []string{"identifying", "analytic", "operational"}}, fn)
	})
	if len(got) != 1 || got[0].ID != "s1" || len(got[0].Sealed) != 2 {
		t.Errorf("ExtractSubmissions after the upgrade = %+v, want s1 with its two sealed parts", got)
	}
	env := environment("centre", 1, "analytic")
	p := proposal("centre", 2, "VN")
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(tx.InsertEnvironment(env), tx.ProposeExtract(p), tx.ApproveExtract(1, "carol", at(12, 0), 3))
	})
	p.ApprovedBy, p.ApprovedAt, p.ApprovalAudit = "carol", at(12, 0), 3
	checkEnvironments(t, s, "after registering one", *env)
	checkProposals(t, s, "after proposing one", *p)
}

// RunExtracts runs the conformance cases of environments, extract
// proposals and the submissions of an extract against fresh stores made
// by open, as Run does.
func RunExtracts(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Helper()
	for _, c := range []struct {
		name string
		run  func(*testing.T, storage.Store)
	}{
		{"Environments", testEnvironments},
		{"ExtractProposals", testExtractProposals},
		{"ExtractSubmissions", testExtractSubmissions},
		{"ExtractSubmissionsPages", testExtractSubmissionsPages},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, open(t))
		})
	}
}
