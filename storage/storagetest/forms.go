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

// storedForm is a form version whose definition is def (any bytes:
// storage does not read them), added at audit index auditIndex.
func storedForm(name string, version int, def string, auditIndex int64) *storage.Form {
	sum := sha256.Sum256([]byte(def))
	return &storage.Form{Name: name, Version: version, SHA256: hex.EncodeToString(sum[:]), Definition: []byte(def),
		AddedAt: at(8, int(auditIndex)), AddedBy: "cli:root", AuditIndex: auditIndex}
}

// formLine is everything of a stored form, on one line.
func formLine(f storage.Form) string {
	confirmed := "-"
	if !f.ConfirmedAt.IsZero() {
		confirmed = f.ConfirmedAt.UTC().Format("2006-01-02T15:04:05.999999999Z")
	}
	return fmt.Sprintf("%s v%d sha256 %s def %q added %s by %q at %d confirmed %s by %q", f.Name, f.Version, f.SHA256, f.Definition,
		f.AddedAt.UTC().Format("2006-01-02T15:04:05.999999999Z"), f.AddedBy, f.AuditIndex, confirmed, f.ConfirmedBy)
}

// proposedForm is a proposal of a form version whose definition is def.
func proposedForm(name string, version int, def string, auditIndex int64) *storage.FormProposal {
	sum := sha256.Sum256([]byte(def))
	return &storage.FormProposal{Name: name, Version: version, SHA256: hex.EncodeToString(sum[:]), Definition: []byte(def),
		ProposedAt: at(9, int(auditIndex)), ProposedBy: "user:admin", AuditIndex: auditIndex}
}

// proposalLine is everything of a form proposal, on one line.
func proposalLine(p storage.FormProposal) string {
	return fmt.Sprintf("%s v%d sha256 %s def %q proposed %s by %q at %d", p.Name, p.Version, p.SHA256, p.Definition,
		p.ProposedAt.UTC().Format("2006-01-02T15:04:05.999999999Z"), p.ProposedBy, p.AuditIndex)
}

// checkFormProposals checks that the store holds exactly the proposals
// want, in (name, version) order, through FormProposals and FormProposal.
func checkFormProposals(t *testing.T, s storage.Store, when string, want ...*storage.FormProposal) {
	t.Helper()
	var lines []string
	for _, p := range want {
		lines = append(lines, proposalLine(*p))
	}
	var got []string
	for _, p := range readAll(t, s, func(tx storage.ReadTx, fn func(storage.FormProposal) (bool, error)) error {
		return tx.FormProposals(fn)
	}) {
		got = append(got, proposalLine(p))
	}
	if g, w := strings.Join(got, "\n"), strings.Join(lines, "\n"); g != w {
		t.Errorf("%s: FormProposals =\n%s\nwant\n%s", when, g, w)
	}
	view(t, s, func(tx storage.ReadTx) error {
		for _, w := range want {
			p, err := tx.FormProposal(w.Name, w.Version)
			if err != nil || proposalLine(*p) != proposalLine(*w) {
				t.Errorf("%s: FormProposal(%s, %d) = %v, %v; want %s", when, w.Name, w.Version, p, err, proposalLine(*w))
			}
		}
		return nil
	})
}

// formsState lists the stored forms, read back through Form and Forms.
func formsState(t *testing.T, s storage.Store) string {
	t.Helper()
	all := readAll(t, s, func(tx storage.ReadTx, fn func(storage.Form) (bool, error)) error { return tx.Forms(fn) })
	var b strings.Builder
	for _, f := range all {
		b.WriteString(formLine(f) + "\n")
	}
	return b.String()
}

// checkForms checks that the store holds exactly want, in (name,
// version) order, through Forms, Form and FormSHA256.
func checkForms(t *testing.T, s storage.Store, when string, want ...*storage.Form) {
	t.Helper()
	var lines []string
	for _, f := range want {
		lines = append(lines, formLine(*f))
	}
	got := formsState(t, s)
	if w := strings.Join(lines, "\n"); strings.TrimSuffix(got, "\n") != w {
		t.Errorf("%s: Forms =\n%s\nwant\n%s", when, got, w)
	}
	view(t, s, func(tx storage.ReadTx) error {
		for _, w := range want {
			f, err := tx.Form(w.Name, w.Version)
			if err != nil {
				t.Errorf("%s: Form(%s, %d): %v", when, w.Name, w.Version, err)
				continue
			}
			if formLine(*f) != formLine(*w) {
				t.Errorf("%s: Form(%s, %d) = %s, want %s", when, w.Name, w.Version, formLine(*f), formLine(*w))
			}
			if sum, err := tx.FormSHA256(w.Name, w.Version); err != nil || sum != w.SHA256 {
				t.Errorf("%s: FormSHA256(%s, %d) = %q, %v; want %q", when, w.Name, w.Version, sum, err, w.SHA256)
			}
		}
		return nil
	})
}

// inUse reads FormInUse.
func inUse(t *testing.T, s storage.Store, name string, version int) bool {
	t.Helper()
	var used bool
	view(t, s, func(tx storage.ReadTx) error {
		var err error
		used, err = tx.FormInUse(name, version)
		return err
	})
	return used
}

// testForms: an empty store has no forms; forms read back byte for byte
// (a definition with every byte value too) in (name, version) order,
// names in byte order and versions as numbers; an unused version is
// replaced, every column; a version a submission uses, superseded or
// not, is refused with ErrFormInUse (an ErrConflict), the same bytes
// too, and stays as it was, while other versions of that form and the
// same version of another form stay free; malformed forms are refused
// with errors that are neither ErrConflict nor ErrNotFound.
func testForms(t *testing.T, s storage.Store) {
	checkForms(t, s, "empty store")
	view(t, s, func(tx storage.ReadTx) error {
		if _, err := tx.Form("household", 1); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Form of an empty store: %v, want ErrNotFound", err)
		}
		if _, err := tx.FormSHA256("household", 1); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("FormSHA256 of an empty store: %v, want ErrNotFound", err)
		}
		return nil
	})
	if inUse(t, s, "household", 3) {
		t.Error("FormInUse of an empty store = true")
	}

	b10 := storedForm("b", 10, "b ten", 3)
	b2 := storedForm("b", 2, "b two", 2)
	a9 := storedForm("a", 9, string(binary(0, 256)), 1)
	hh := storedForm("household", 3, `{"name":"household","version":3}`, 4)
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(tx.PutForm(b10), tx.PutForm(b2), tx.PutForm(a9), tx.PutForm(hh))
	})
	checkForms(t, s, "after four", a9, b2, b10, hh)

	// An unused version is replaced, every column.
	hh2 := storedForm("household", 3, `{"name":"household","version":3,"title":"second"}`, 7)
	hh2.AddedBy, hh2.AddedAt = "admin", at(11, 5)
	update(t, s, func(tx storage.Tx) error { return tx.PutForm(hh2) })
	checkForms(t, s, "after replacing an unused version", a9, b2, b10, hh2)

	// Once a submission uses it, it never changes.
	sub := submission("s1", "E1", 1) // household version 3
	update(t, s, func(tx storage.Tx) error { return tx.InsertSubmission(sub) })
	if !inUse(t, s, "household", 3) {
		t.Fatal("FormInUse(household, 3) = false with a submission of it stored")
	}
	for _, u := range []struct {
		name    string
		version int
	}{{"household", 2}, {"household", 4}, {"householdx", 3}, {"a", 9}} {
		if inUse(t, s, u.name, u.version) {
			t.Errorf("FormInUse(%s, %d) = true; only household 3 is used", u.name, u.version)
		}
	}
	for _, f := range []*storage.Form{storedForm("household", 3, "mallory's", 8), hh2} {
		var err error
		if uerr := s.Update(t.Context(), func(tx storage.Tx) error {
			err = tx.PutForm(f)
			if !errors.Is(err, storage.ErrFormInUse) || !errors.Is(err, storage.ErrConflict) {
				return fmt.Errorf("PutForm over a used version: %v, want ErrFormInUse", err)
			}
			// The refusal leaves the transaction usable.
			return tx.PutForm(storedForm("household", 4, "next", 9))
		}); uerr != nil {
			t.Fatal(uerr)
		}
	}
	hh4 := storedForm("household", 4, "next", 9)
	checkForms(t, s, "after refusing to replace a used version", a9, b2, b10, hh2, hh4)

	// Superseded, it is still used.
	next := submission("s2", "E1", 1)
	next.Supersedes, next.FormVersion, next.AuditIndex = "s1", 4, 50
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(tx.MarkSuperseded("s1", "s2"), tx.InsertSubmission(next))
	})
	if !inUse(t, s, "household", 3) || !inUse(t, s, "household", 4) {
		t.Error("FormInUse is false for a superseded submission's version or its successor's")
	}
	update(t, s, func(tx storage.Tx) error {
		if err := tx.PutForm(storedForm("household", 3, "mallory's", 10)); !errors.Is(err, storage.ErrFormInUse) {
			return fmt.Errorf("PutForm over a version only a superseded submission uses: %v, want ErrFormInUse", err)
		}
		return nil
	})

	// Malformed forms.
	bad := func(mutate func(f *storage.Form)) *storage.Form {
		f := storedForm("c", 1, "c one", 12)
		mutate(f)
		return f
	}
	for what, f := range map[string]*storage.Form{
		"no name":             bad(func(f *storage.Form) { f.Name = "" }),
		"version 0":           bad(func(f *storage.Form) { f.Version = 0 }),
		"negative version":    bad(func(f *storage.Form) { f.Version = -1 }),
		"no definition":       bad(func(f *storage.Form) { f.Definition, f.SHA256 = nil, storedForm("c", 1, "", 0).SHA256 }),
		"wrong SHA-256":       bad(func(f *storage.Form) { f.SHA256 = b2.SHA256 }),
		"uppercase SHA-256":   bad(func(f *storage.Form) { f.SHA256 = strings.ToUpper(f.SHA256) }),
		"no adder":            bad(func(f *storage.Form) { f.AddedBy = "" }),
		"zero time":           bad(func(f *storage.Form) { f.AddedAt = time.Time{} }),
		"negative audit":      bad(func(f *storage.Form) { f.AuditIndex = -1 }),
		"nil form (no write)": nil,
	} {
		err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.PutForm(f) })
		if err == nil || errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("PutForm with %s: %v, want a plain error", what, err)
		}
	}
	checkForms(t, s, "after the malformed ones", a9, b2, b10, hh2, hh4)
}

// testFormsWithoutForms: FormInUse answers for a form that was never
// stored (the embedded ones are not), and for many submissions.
func testFormsWithoutForms(t *testing.T, s storage.Store) {
	update(t, s, func(tx storage.Tx) error {
		var err error
		for i := range 300 {
			sub := submission(fmt.Sprintf("s%03d", i), "E1", int64(i+1))
			sub.Form, sub.FormVersion, sub.AuditIndex = "census2019", 1+i%2, int64(i)
			err = errors.Join(err, tx.InsertSubmission(sub))
		}
		return err
	})
	for _, v := range []int{1, 2} {
		if !inUse(t, s, "census2019", v) {
			t.Errorf("FormInUse(census2019, %d) = false", v)
		}
	}
	if inUse(t, s, "census2019", 3) || inUse(t, s, "census201", 1) {
		t.Error("FormInUse is true for a version or a name no submission uses")
	}
	checkForms(t, s, "no form added")
}

// testFormProposals: proposals are apart from the forms (a proposed
// version is no stored form, and a stored one has no proposal); they read
// back byte for byte in (name, version) order; a newer proposal of a
// version replaces the older, every column; a proposal of a version a
// submission uses is ErrFormInUse; DropFormProposal removes only the
// proposal of the SHA-256 it names (ErrConflict for another,
// ErrNotFound for none); a confirmed form stores who confirmed it and
// when, and both or neither; malformed proposals are refused with plain
// errors.
func testFormProposals(t *testing.T, s storage.Store) {
	checkFormProposals(t, s, "empty store")
	view(t, s, func(tx storage.ReadTx) error {
		if _, err := tx.FormProposal("household", 2); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("FormProposal of an empty store: %v, want ErrNotFound", err)
		}
		return nil
	})
	h1 := storedForm("household", 1, "one", 1)
	p2 := proposedForm("household", 2, "two", 2)
	p1 := proposedForm("household", 1, "one, replaced", 3)
	pa := proposedForm("a", 7, string(binary(1, 300)), 4)
	update(t, s, func(tx storage.Tx) error {
		return errors.Join(tx.PutForm(h1), tx.ProposeForm(p2), tx.ProposeForm(p1), tx.ProposeForm(pa))
	})
	checkFormProposals(t, s, "after three proposals", pa, p1, p2)
	checkForms(t, s, "after three proposals", h1)
	view(t, s, func(tx storage.ReadTx) error {
		if _, err := tx.Form("household", 2); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Form of a version only proposed: %v, want ErrNotFound", err)
		}
		if _, err := tx.FormSHA256("household", 2); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("FormSHA256 of a version only proposed: %v, want ErrNotFound", err)
		}
		return nil
	})

	// A newer proposal replaces the older, every column.
	p2b := proposedForm("household", 2, "two, again", 5)
	p2b.ProposedBy = "user:admin2"
	update(t, s, func(tx storage.Tx) error { return tx.ProposeForm(p2b) })
	checkFormProposals(t, s, "after replacing a proposal", pa, p1, p2b)

	// Dropped only under the SHA-256 it has now.
	update(t, s, func(tx storage.Tx) error {
		if err := tx.DropFormProposal("household", 2, p2.SHA256); !errors.Is(err, storage.ErrConflict) {
			return fmt.Errorf("DropFormProposal of a replaced definition: %v, want ErrConflict", err)
		}
		if err := tx.DropFormProposal("household", 3, p2.SHA256); !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("DropFormProposal of no proposal: %v, want ErrNotFound", err)
		}
		// Confirmed: stored with who confirmed it, the proposal dropped.
		f := storedForm("household", 2, "two, again", 6)
		f.AddedBy, f.AddedAt, f.ConfirmedBy, f.ConfirmedAt = p2b.ProposedBy, p2b.ProposedAt, "user:appr", at(12, 7)
		return errors.Join(tx.PutForm(f), tx.DropFormProposal("household", 2, p2b.SHA256))
	})
	h2 := storedForm("household", 2, "two, again", 6)
	h2.AddedBy, h2.AddedAt, h2.ConfirmedBy, h2.ConfirmedAt = p2b.ProposedBy, p2b.ProposedAt, "user:appr", at(12, 7)
	checkFormProposals(t, s, "after confirming one", pa, p1)
	checkForms(t, s, "after confirming one", h1, h2)

	// A version a submission uses is never proposed again.
	update(t, s, func(tx storage.Tx) error { return tx.InsertSubmission(submission("s1", "E1", 1)) }) // household 3
	update(t, s, func(tx storage.Tx) error {
		if err := tx.ProposeForm(proposedForm("household", 3, "three", 8)); !errors.Is(err, storage.ErrFormInUse) {
			return fmt.Errorf("ProposeForm of a used version: %v, want ErrFormInUse", err)
		}
		return nil
	})
	checkFormProposals(t, s, "after refusing a used version", pa, p1)

	badForm := func(mutate func(f *storage.Form)) *storage.Form {
		f := storedForm("c", 1, "c one", 12)
		mutate(f)
		return f
	}
	for what, f := range map[string]*storage.Form{
		"confirmed by nobody":  badForm(func(f *storage.Form) { f.ConfirmedAt = at(13, 0) }),
		"confirmed at no time": badForm(func(f *storage.Form) { f.ConfirmedBy = "user:appr" }),
	} {
		err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.PutForm(f) })
		if err == nil || errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("PutForm %s: %v, want a plain error", what, err)
		}
	}
	bad := func(mutate func(p *storage.FormProposal)) *storage.FormProposal {
		p := proposedForm("c", 1, "c one", 12)
		mutate(p)
		return p
	}
	for what, p := range map[string]*storage.FormProposal{
		"no name":             bad(func(p *storage.FormProposal) { p.Name = "" }),
		"version 0":           bad(func(p *storage.FormProposal) { p.Version = 0 }),
		"no definition":       bad(func(p *storage.FormProposal) { p.Definition, p.SHA256 = nil, proposedForm("c", 1, "", 0).SHA256 }),
		"wrong SHA-256":       bad(func(p *storage.FormProposal) { p.SHA256 = p2.SHA256 }),
		"no proposer":         bad(func(p *storage.FormProposal) { p.ProposedBy = "" }),
		"zero time":           bad(func(p *storage.FormProposal) { p.ProposedAt = time.Time{} }),
		"negative audit":      bad(func(p *storage.FormProposal) { p.AuditIndex = -1 }),
		"nil proposal (none)": nil,
	} {
		err := s.Update(t.Context(), func(tx storage.Tx) error { return tx.ProposeForm(p) })
		if err == nil || errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ProposeForm with %s: %v, want a plain error", what, err)
		}
	}
	checkFormProposals(t, s, "after the malformed ones", pa, p1)
	checkForms(t, s, "after the malformed ones", h1, h2)
}

// RunForms runs the conformance cases of stored forms against fresh
// stores made by open, as Run does.
func RunForms(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Helper()
	for _, c := range []struct {
		name string
		run  func(*testing.T, storage.Store)
	}{
		{"Forms", testForms},
		{"FormInUse", testFormsWithoutForms},
		{"FormProposals", testFormProposals},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, open(t))
		})
	}
}

// formGuardedStatements are the changes the database must refuse: to a
// version a submission uses ("used" 1), to the (name, version) of any
// ("free" 1, "spare" 1), and removing any ("gone" 1, "kept" 1, which a
// submission uses). In this order each changes something if let
// through.
var formGuardedStatements = []string{
	`UPDATE forms SET added_by = 'mallory' WHERE name = 'used' AND version = 1`,
	`UPDATE forms SET definition = (SELECT definition FROM forms WHERE name = 'free'), sha256 = (SELECT sha256 FROM forms WHERE name = 'free')
		WHERE name = 'used' AND version = 1`,
	`UPDATE forms SET audit_index = 99 WHERE name = 'used'`,
	`UPDATE forms SET version = 7 WHERE name = 'free'`,
	`UPDATE forms SET name = 'renamed' WHERE name = 'spare'`,
	`DELETE FROM forms WHERE name = 'gone'`,
	`DELETE FROM forms WHERE name = 'kept'`,
	// Defining anew a version submissions use but nobody stored (a form
	// built into the binary).
	`INSERT INTO forms(name, version, sha256, definition, added_at, added_by, audit_index)
		SELECT 'builtin', 1, sha256, definition, added_at, added_by, audit_index FROM forms WHERE name = 'gone' OR name = 'spare' OR name = 'renamed' LIMIT 1`,
}

// RunFormGuards checks, on s (a fresh store) and raw (its database),
// that the database itself refuses to change a form version a
// submission uses, to define anew a version submissions use, to change
// the (name, version) of any, and to remove any, while it lets an unused
// version ("free" 1) be replaced. raw.Refused (the backend's own ways in:
// INSERT OR REPLACE, an upsert, TRUNCATE) run after the common
// statements and may name "used" and "free" (at version 7 once the
// guards are dropped). A refused statement leaves the forms as they
// were; once the guards are dropped (raw.DropGuards) every statement
// goes through and changes them.
func RunFormGuards(t *testing.T, s storage.Store, raw Raw) {
	t.Helper()
	subs := []*storage.Submission{submission("s1", "E1", 1), submission("s2", "E1", 2), submission("s3", "E1", 3)}
	subs[0].Form, subs[0].FormVersion = "used", 1
	subs[1].Form, subs[1].FormVersion = "kept", 1
	subs[2].Form, subs[2].FormVersion = "builtin", 1
	update(t, s, func(tx storage.Tx) error {
		err := errors.Join(tx.PutForm(storedForm("used", 1, "used one", 1)), tx.PutForm(storedForm("free", 1, "free one", 2)),
			tx.PutForm(storedForm("spare", 1, "spare one", 3)), tx.PutForm(storedForm("gone", 1, "gone one", 4)),
			tx.PutForm(storedForm("kept", 1, "kept one", 5)))
		for _, sub := range subs {
			err = errors.Join(err, tx.InsertSubmission(sub))
		}
		return err
	})
	read := func() string {
		t.Helper()
		return formsState(t, s)
	}
	before := read()
	if err := raw.Exec(`UPDATE forms SET added_by = 'dave', audit_index = 6 WHERE name = 'free'`); err != nil {
		t.Fatalf("the database refused to replace an unused form version: %v", err)
	}
	if read() == before {
		t.Fatal("replacing an unused form version in SQL changed nothing")
	}
	checkGuards(t, raw, append(slices.Clone(formGuardedStatements), raw.Refused...), read, "the forms")
}

// CheckUpgradeFromV10 checks a store opened on a database of schema
// version 10 holding one submission, s1 (form household version 1): no
// form is stored, that version reads as used and cannot be stored, and
// another can.
func CheckUpgradeFromV10(t *testing.T, s storage.Store) {
	t.Helper()
	checkForms(t, s, "after the upgrade")
	checkFormProposals(t, s, "after the upgrade")
	if !inUse(t, s, "household", 1) || inUse(t, s, "household", 2) {
		t.Error("after the upgrade, FormInUse does not see the stored submission's version (or sees another)")
	}
	f := storedForm("household", 2, "two", 3)
	update(t, s, func(tx storage.Tx) error {
		if err := tx.PutForm(storedForm("household", 1, "one", 2)); !errors.Is(err, storage.ErrFormInUse) {
			return fmt.Errorf("PutForm of the used version after the upgrade: %v, want ErrFormInUse", err)
		}
		return tx.PutForm(f)
	})
	checkForms(t, s, "after adding one", f)
}
