package broker

// The table form (issue 14): the vault tabulates one form name, chosen
// at init (InitOpts.TableForm, stored in meta table_form so that every
// instance agrees), with all its versions. The table engine's schema is
// that of the latest version the registry holds (built-in or added),
// and a household of any version of the name is read through it: a
// field the latest version does not hold as analytic is no variable,
// whatever an older version sealed it as (a reclassification to
// identifying holds on old data at once); a field new in the latest is
// "not stated" for older households; a value outside the latest's codes
// or range is absent. Every table request (and point, replay, catalogue
// read) reads the table form's versions from the store, so a version
// added on any instance rebuilds the schema, the catalogue and the cache
// at the next one, on every instance. Other forms are deposited,
// counted and viewable, never tabulated.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/tables"
	"github.com/censusvault/censusvault/storage"
)

// metaTableForm is the meta key of the table form's name. A vault made
// before it was kept tabulates the default form (form.Default), which
// was then the only one.
const metaTableForm = "table_form"

// tableForm is the table engine's view of the table form: its versions
// (key) and the schema of the latest, or why the latest cannot be
// tabulated.
type tableForm struct {
	name    string
	version int            // the latest version
	key     string         // every version's number and SHA-256: a change rebuilds
	schema  *tables.Schema // nil when err is set
	err     *Error
}

// tableFormOf picks the table form among forms (nil: form.Embedded()):
// name, or the default form's if empty. It must be among them, and its
// latest version must build a table schema.
func tableFormOf(name string, forms []*form.Form) (string, error) {
	if forms == nil {
		forms = form.Embedded()
	}
	if name == "" {
		name = form.Default().Name
	}
	var latest *form.Form
	var earlier []*form.Form
	var names []string
	for _, f := range forms {
		if f.Name != name {
			if !slices.Contains(names, f.Name) {
				names = append(names, f.Name)
			}
			continue
		}
		if latest != nil && latest.Version > f.Version {
			earlier = append(earlier, f)
			continue
		}
		if latest != nil {
			earlier = append(earlier, latest)
		}
		latest = f
	}
	if latest == nil {
		return "", fmt.Errorf("init: table form %q is not a form of this binary (the others: %s)", clip(name), strings.Join(names, ", "))
	}
	if _, err := tables.NewSchema(latest, earlier...); err != nil {
		return "", fmt.Errorf("init: form %s cannot be tabulated: %w", name, err)
	}
	return name, nil
}

// tableFormName reads the table form's name from the store.
func tableFormName(tx storage.ReadTx) (string, error) {
	name, err := tx.Meta(metaTableForm)
	if errors.Is(err, storage.ErrNotFound) {
		return form.Default().Name, nil
	}
	return name, err
}

// tableForm returns the table engine's view of the table form as the
// store holds it now: its built-in versions and those stored (read
// again, so that a version another instance added counts at once),
// rebuilding the schema when they changed. A latest version that cannot
// be tabulated (NewSchema refuses it) is reported in tableForm.err.
func (b *Broker) tableForm(ctx context.Context) (*tableForm, error) {
	ts := b.tables
	ts.formMu.Lock()
	defer ts.formMu.Unlock()
	var rows []storage.Form
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		rows = rows[:0]
		return tx.Forms(func(f storage.Form) (bool, error) {
			if f.Name == ts.name {
				rows = append(rows, f)
			}
			return f.Name <= ts.name, nil // in name order: stop past it
		})
	})
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read the forms for the table engine")
	}
	versions := map[int]*knownForm{}
	for k, kf := range b.forms.builtin {
		if k.name == ts.name {
			versions[k.version] = kf
		}
	}
	for i := range rows {
		kf, err := b.forms.fromStored(&rows[i], b.forms.known(rows[i].Name, rows[i].Version))
		if err != nil {
			// As the registry does: a deposit under it is refused too.
			b.log.Error("table engine: a stored version of the table form is left out", "form", rows[i].Name, "version", rows[i].Version, "err", err)
			continue
		}
		versions[rows[i].Version] = kf
	}
	if len(versions) == 0 {
		return nil, &Error{Kind: Internal, Code: "table_form_unusable",
			Msg: fmt.Sprintf("the vault tabulates form %s, which this binary does not hold: run the binary the vault was made with", ts.name)}
	}
	nums := slices.Sorted(func(yield func(int) bool) {
		for v := range versions {
			if !yield(v) {
				return
			}
		}
	})
	var key strings.Builder
	for _, v := range nums {
		key.WriteString(strconv.Itoa(v) + ":" + versions[v].sha + ";")
	}
	if cur := ts.form.Load(); cur != nil && cur.key == key.String() {
		return cur, nil
	}
	latest := versions[nums[len(nums)-1]].form
	earlier := make([]*form.Form, 0, len(nums)-1)
	for _, v := range nums[:len(nums)-1] {
		earlier = append(earlier, versions[v].form)
	}
	tf := &tableForm{name: ts.name, version: latest.Version, key: key.String()}
	if tf.schema, err = tables.NewSchema(latest, earlier...); err != nil {
		b.log.Error("table engine: the latest version of the table form cannot be tabulated; no table can be computed", "form", latest.Name, "version", latest.Version, "err", err)
		tf.schema, tf.err = nil, &Error{Kind: Conflict, Code: "table_form_unusable", Err: err,
			Msg: fmt.Sprintf("version %d of form %s, the vault's table form, cannot be tabulated (%v): an administrator adds a version that can be", latest.Version, latest.Name, err)}
	}
	ts.form.Store(tf)
	return tf, nil
}

// tableSchema is the schema of the table form now, or the refusal of a
// table form that cannot be tabulated.
func (b *Broker) tableSchema(ctx context.Context) (*tables.Schema, error) {
	tf, err := b.tableForm(ctx)
	if err != nil {
		return nil, err
	}
	if tf.err != nil {
		return nil, tf.err
	}
	return tf.schema, nil
}

// tableSchemaFor is tableSchema for a request audited with ev: a table
// form that cannot be tabulated is a refusal, a failure to read it an
// error, each recorded with ev.
func (b *Broker) tableSchemaFor(ctx context.Context, ev *audit.Event) (*tables.Schema, error) {
	s, err := b.tableSchema(ctx)
	if err == nil {
		return s, nil
	}
	var e *Error
	if errors.As(err, &e) && e.Code == "table_form_unusable" {
		ev.Outcome, ev.Reason = "refused", e.Msg
		return nil, b.refuse(ctx, ev, e)
	}
	ev.Outcome, ev.Reason = "error", "table engine unavailable"
	if rerr := b.record(ctx, ev); rerr != nil {
		return nil, rerr
	}
	return nil, err
}

// standardCatalogue is the catalogue of standard tables of schema s, or
// the refusal no_catalogue: none is written for the table form, or the
// one written for it does not check against its latest version.
func standardCatalogue(s *tables.Schema) (*tables.Catalogue, *Error) {
	cat, err := s.Catalogue()
	if err == nil {
		return cat, nil
	}
	name, version := s.Form()
	msg := fmt.Sprintf("no catalogue of standard tables is written for form %s, the vault's table form: ask custom tables (rows, cols, filter, rho)", name)
	if !errors.Is(err, tables.ErrNoCatalogue) {
		msg = fmt.Sprintf("the catalogue of standard tables does not fit version %d of form %s, the vault's table form (%v): a new catalogue version is needed; ask custom tables (rows, cols, filter, rho) meanwhile", version, name, err)
	}
	return nil, &Error{Kind: NotFound, Code: "no_catalogue", Msg: msg, Err: err}
}
