package broker

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker/tables"
	"github.com/censusvault/censusvault/broker/untrusted"
	"github.com/censusvault/censusvault/storage"
)

var projectIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Bounds on a project definition: it is typed by an operator, but it is
// stored, audited and checked on every table request, so it stays small.
const (
	MaxProjectText      = 500  // bytes of a title or purpose
	MaxProjectAreas     = 1000 // area codes one project covers
	MaxProjectVariables = 100  // variables one project may use
	MaxProjectBudget    = 1e12 // cells; far beyond any real project, well inside int64
)

// NewProject describes a research project to register.
type NewProject struct {
	ID        string
	Title     string
	Purpose   string
	Areas     []AreaCode // each covers its subtree
	Variables []string   // variables of the table form (Broker.ProjectVariables)
	Expires   time.Time
	Budget    int64 // cells it may release in total
}

// ProjectInfo is a project and its ledger as `project show` reports it.
type ProjectInfo struct {
	ID        string
	Title     string
	Purpose   string
	Areas     []AreaCode
	Variables []string
	Expires   time.Time
	Created   time.Time
	Closed    time.Time // zero: open
	Budget    int64
	Spent     int64
	Remaining int64 // Budget - Spent
}

// ProjectVariables lists what a project may name: the variables of the
// table form's latest version (tables.Schema.Variables), in form order —
// its analytic fields of a tabulable type (household, then person) and,
// if it has an age role, the derived age_group5 (five-year bands) and
// age (completed years). Identifying and operational fields are never
// among them. Nil if the table form cannot be read or tabulated now.
func (b *Broker) ProjectVariables(ctx context.Context) []string {
	s, err := b.tableSchema(ctx)
	if err != nil {
		return nil
	}
	return s.Variables()
}

// checkVariable says why a project may not use v, or returns nil.
func checkVariable(v string, s *tables.Schema) error {
	if slices.Contains(s.Variables(), v) {
		return nil
	}
	name, version := s.Form()
	if cl, ok := s.Closed(v); ok {
		return fmt.Errorf("variable %q is an %s field of form %s v%d: projects may use only analytic variables", v, cl, name, version)
	}
	return fmt.Errorf("no variable %q in form %s v%d, the vault's table form: use one of %s", clip(v), name, version, strings.Join(s.Variables(), ", "))
}

// clip shortens what an operator typed before it goes into a message.
func clip(s string) string { return untrusted.Clip(s, 64) }

func checkText(what, s string) error {
	switch {
	case strings.TrimSpace(s) == "":
		return fmt.Errorf("%s is empty", what)
	case len(s) > MaxProjectText:
		return fmt.Errorf("%s is %d bytes, the limit is %d", what, len(s), MaxProjectText)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not valid UTF-8", what)
	case strings.ContainsFunc(s, unicode.IsControl):
		// It is shown on terminals and pages, and kept in the audit log.
		return fmt.Errorf("%s holds a control character (a line break, a tab, an escape): write it on one line", what)
	}
	return nil
}

// AddProject registers a research project. Every rule is checked before
// anything is stored; the project and its audit event ("project.add")
// commit together.
func (b *Broker) AddProject(ctx context.Context, actor string, p NewProject) error {
	now := b.now().UTC()
	if !projectIDRE.MatchString(p.ID) {
		return errorf(Invalid, nil, "project id %q: use 1–64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", clip(p.ID))
	}
	if err := checkText("title", p.Title); err != nil {
		return errorf(Invalid, nil, "%v", err)
	}
	if err := checkText("purpose", p.Purpose); err != nil {
		return errorf(Invalid, nil, "%v", err)
	}
	if len(p.Areas) == 0 {
		return errorf(Invalid, nil, "a project needs at least one area")
	}
	if len(p.Areas) > MaxProjectAreas {
		return errorf(Invalid, nil, "%d areas, the limit is %d (name a parent area instead)", len(p.Areas), MaxProjectAreas)
	}
	areas := make([]string, 0, len(p.Areas))
	for _, a := range p.Areas {
		if _, ok := b.tree.Get(a); !ok {
			return errorf(Invalid, nil, "no area %q (areas come from the areas file given to init)", clip(string(a)))
		}
		if slices.Contains(areas, string(a)) {
			return errorf(Invalid, nil, "area %s is listed twice", a)
		}
		areas = append(areas, string(a))
	}
	if len(p.Variables) == 0 {
		return errorf(Invalid, nil, "a project needs at least one variable")
	}
	if len(p.Variables) > MaxProjectVariables {
		return errorf(Invalid, nil, "%d variables, the limit is %d", len(p.Variables), MaxProjectVariables)
	}
	s, err := b.tableSchema(ctx)
	if err != nil {
		return err
	}
	for i, v := range p.Variables {
		if err := checkVariable(v, s); err != nil {
			return errorf(Invalid, nil, "%v", err)
		}
		if slices.Contains(p.Variables[:i], v) {
			return errorf(Invalid, nil, "variable %s is listed twice", v)
		}
	}
	if p.Expires.IsZero() || !p.Expires.After(now) {
		return errorf(Invalid, nil, "expiry %s is not in the future", p.Expires.UTC().Format(time.RFC3339))
	}
	if p.Budget <= 0 || p.Budget > MaxProjectBudget {
		return errorf(Invalid, nil, "budget %d: it must be 1 to %d cells", p.Budget, int64(MaxProjectBudget))
	}
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		if err := tx.InsertProject(&storage.Project{
			ID: p.ID, Title: p.Title, Purpose: p.Purpose, Areas: areas, Variables: slices.Clone(p.Variables),
			Expires: p.Expires.UTC(), Budget: p.Budget, CreatedAt: now,
		}); err != nil {
			return err
		}
		_, err := appendEvent(tx, &audit.Event{
			Time: now, Actor: actor, Roles: []string{}, Action: "project.add", Area: string(b.tree.Root()),
			Resources: []string{"project:" + p.ID},
			Decision:  "allow", Rule: "operator with access to the data directory",
			Reason: fmt.Sprintf("budget %d cells, expires %s, areas %s, variables %s",
				p.Budget, p.Expires.UTC().Format(time.RFC3339), strings.Join(areas, ","), strings.Join(p.Variables, ",")),
			Purpose: p.Purpose, Outcome: "ok",
		})
		return err
	})
	if errors.Is(err, storage.ErrConflict) {
		return errorf(Conflict, err, "project %s already exists", p.ID)
	}
	if err != nil {
		return errorf(Unavailable, err, "failed to store the project")
	}
	return nil
}

// CloseProject closes a project now: no further table is released for it.
// Its ledger stays, for the record. Audited as "project.close".
func (b *Broker) CloseProject(ctx context.Context, actor, id string) error {
	now := b.now().UTC()
	err := b.store.Update(ctx, func(tx storage.Tx) error {
		if err := tx.CloseProject(id, now); err != nil {
			return err
		}
		_, err := appendEvent(tx, &audit.Event{
			Time: now, Actor: actor, Roles: []string{}, Action: "project.close", Area: string(b.tree.Root()),
			Resources: []string{"project:" + id},
			Decision:  "allow", Rule: "operator with access to the data directory", Outcome: "ok",
		})
		return err
	})
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return errorf(NotFound, err, "no project %s", clip(id))
	case errors.Is(err, storage.ErrConflict):
		return errorf(Conflict, err, "project %s is already closed", id)
	case err != nil:
		return errorf(Unavailable, err, "failed to close the project")
	}
	return nil
}

func projectInfo(p *storage.Project) *ProjectInfo {
	info := &ProjectInfo{
		ID: p.ID, Title: p.Title, Purpose: p.Purpose, Variables: p.Variables,
		Expires: p.Expires, Created: p.CreatedAt, Closed: p.ClosedAt,
		Budget: p.Budget, Spent: p.Spent, Remaining: p.Budget - p.Spent,
	}
	for _, a := range p.Areas {
		info.Areas = append(info.Areas, AreaCode(a))
	}
	return info
}

// Project describes one project and its ledger.
func (b *Broker) Project(ctx context.Context, id string) (*ProjectInfo, error) {
	var p *storage.Project
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		p, err = tx.Project(id)
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errorf(NotFound, err, "no project %s", clip(id))
	}
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to read the project")
	}
	return projectInfo(p), nil
}

// Projects lists every project, ordered by id.
func (b *Broker) Projects(ctx context.Context) ([]ProjectInfo, error) {
	var out []ProjectInfo
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		out = out[:0]
		return tx.Projects(func(p storage.Project) (bool, error) {
			out = append(out, *projectInfo(&p))
			return true, nil
		})
	})
	if err != nil {
		return nil, errorf(Unavailable, err, "failed to list the projects")
	}
	return out, nil
}
