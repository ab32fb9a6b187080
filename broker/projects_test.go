package broker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker"
)

// validProject is a project every rule accepts, on the key tests' tree.
func validProject(id string) broker.NewProject {
	return broker.NewProject{
		ID:        id,
		Title:     "Household size by tenure",
		Purpose:   "Ước tính quy mô hộ theo hình thức sở hữu nhà",
		Areas:     []broker.AreaCode{keyDistrict, communeA},
		Variables: []string{"sex", "age_group5", "ethnicity", "tenure"},
		Expires:   time.Now().Add(180 * 24 * time.Hour),
		Budget:    200000,
	}
}

func TestAddProjectValidation(t *testing.T) {
	kv := newKeyVault(t, keyVaultOpts{})
	ctx := context.Background()
	if err := kv.b.AddProject(ctx, actor, validProject("taken")); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", broker.MaxProjectText)
	for _, tc := range []struct {
		name     string
		edit     func(*broker.NewProject)
		wantKind broker.Kind // Internal: accepted
		wantMsg  string
	}{
		{"valid", func(*broker.NewProject) {}, broker.Internal, ""},
		{"id empty", func(p *broker.NewProject) { p.ID = "" }, broker.Invalid, "project id"},
		{"id uppercase", func(p *broker.NewProject) { p.ID = "P1" }, broker.Invalid, "project id"},
		{"id leading dash", func(p *broker.NewProject) { p.ID = "-p" }, broker.Invalid, "project id"},
		{"id 64 chars", func(p *broker.NewProject) { p.ID = strings.Repeat("a", 64) }, broker.Internal, ""},
		{"id 65 chars", func(p *broker.NewProject) { p.ID = strings.Repeat("a", 65) }, broker.Invalid, "project id"},
		{"duplicate id", func(p *broker.NewProject) { p.ID = "taken" }, broker.Conflict, "already exists"},
		{"title empty", func(p *broker.NewProject) { p.Title = " " }, broker.Invalid, "title is empty"},
		{"title at limit", func(p *broker.NewProject) { p.Title = long }, broker.Internal, ""},
		{"title over limit", func(p *broker.NewProject) { p.Title = long + "x" }, broker.Invalid, "title is 501 bytes"},
		{"purpose empty", func(p *broker.NewProject) { p.Purpose = "" }, broker.Invalid, "purpose is empty"},
		{"purpose at limit", func(p *broker.NewProject) { p.Purpose = long }, broker.Internal, ""},
		{"purpose over limit", func(p *broker.NewProject) { p.Purpose = long + "x" }, broker.Invalid, "purpose is 501 bytes"},
		{"no areas", func(p *broker.NewProject) { p.Areas = nil }, broker.Invalid, "at least one area"},
		{"unknown area", func(p *broker.NewProject) { p.Areas = []broker.AreaCode{"99999"} }, broker.Invalid, `no area "99999"`},
		{"area twice", func(p *broker.NewProject) { p.Areas = []broker.AreaCode{communeA, communeA} }, broker.Invalid, "twice"},
		{"no variables", func(p *broker.NewProject) { p.Variables = nil }, broker.Invalid, "at least one variable"},
		{"identifying person field", func(p *broker.NewProject) { p.Variables = []string{"sex", "full_name"} }, broker.Invalid, `"full_name" is an identifying field`},
		{"identifying household field", func(p *broker.NewProject) { p.Variables = []string{"phone"} }, broker.Invalid, `"phone" is an identifying field`},
		{"operational field", func(p *broker.NewProject) { p.Variables = []string{"visit_count"} }, broker.Invalid, `"visit_count" is an operational field`},
		{"unknown variable", func(p *broker.NewProject) { p.Variables = []string{"income"} }, broker.Invalid, `no variable "income"`},
		{"variable twice", func(p *broker.NewProject) { p.Variables = []string{"sex", "sex"} }, broker.Invalid, "twice"},
		{"household analytic field", func(p *broker.NewProject) { p.Variables = []string{"water_source"} }, broker.Internal, ""},
		{"expired", func(p *broker.NewProject) { p.Expires = time.Now().Add(-time.Minute) }, broker.Invalid, "not in the future"},
		{"no expiry", func(p *broker.NewProject) { p.Expires = time.Time{} }, broker.Invalid, "not in the future"},
		{"budget 0", func(p *broker.NewProject) { p.Budget = 0 }, broker.Invalid, "budget 0"},
		{"budget -1", func(p *broker.NewProject) { p.Budget = -1 }, broker.Invalid, "budget -1"},
		{"budget 1", func(p *broker.NewProject) { p.Budget = 1 }, broker.Internal, ""},
		{"budget at max", func(p *broker.NewProject) { p.Budget = broker.MaxProjectBudget }, broker.Internal, ""},
		{"budget over max", func(p *broker.NewProject) { p.Budget = broker.MaxProjectBudget + 1 }, broker.Invalid, "budget"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := validProject(fmt.Sprintf("p%d", time.Now().UnixNano()))
			tc.edit(&p)
			before := kv.auditHead()
			err := kv.b.AddProject(ctx, actor, p)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("AddProject: %v", err)
				}
				if evs := kv.events(before, "project.add"); len(evs) != 1 || !slices.Equal(evs[0].Resources, []string{"project:" + p.ID}) {
					t.Errorf("project.add events = %+v", evs)
				}
				got, err := kv.b.Project(ctx, p.ID)
				if err != nil || got.Budget != p.Budget || got.Remaining != p.Budget || got.Spent != 0 || !got.Closed.IsZero() {
					t.Errorf("Project = %+v, %v", got, err)
				}
				return
			}
			if k := broker.KindOf(err); k != tc.wantKind || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("AddProject: err = %v (%v), want %v saying %q", err, k, tc.wantKind, tc.wantMsg)
			}
			if kv.auditHead() != before {
				t.Error("a refused project was audited as added")
			}
			if p.ID != "taken" {
				if _, err := kv.b.Project(ctx, p.ID); broker.KindOf(err) != broker.NotFound {
					t.Errorf("a refused project was stored: %v", err)
				}
			}
		})
	}
}

func TestProjectLifecycle(t *testing.T) {
	kv := newKeyVault(t, keyVaultOpts{})
	ctx := context.Background()
	before := kv.auditHead()
	for _, id := range []string{"zeta", "alpha"} {
		if err := kv.b.AddProject(ctx, actor, validProject(id)); err != nil {
			t.Fatal(err)
		}
	}
	list, err := kv.b.Projects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range list {
		ids = append(ids, p.ID)
	}
	if !slices.Equal(ids, []string{"alpha", "zeta"}) {
		t.Errorf("Projects = %q, want alpha, zeta", ids)
	}
	want := validProject("alpha")
	got, err := kv.b.Project(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	if got.Title != want.Title || got.Purpose != want.Purpose || !slices.Equal(got.Areas, want.Areas) ||
		!slices.Equal(got.Variables, want.Variables) || got.Expires.Sub(want.Expires).Abs() > 2*time.Second || got.Created.IsZero() {
		t.Errorf("Project = %+v, want %+v", got, want)
	}

	if err := kv.b.CloseProject(ctx, actor, "alpha"); err != nil {
		t.Fatal(err)
	}
	if got, err := kv.b.Project(ctx, "alpha"); err != nil || got.Closed.IsZero() {
		t.Errorf("after close: %+v, %v", got, err)
	}
	if err := kv.b.CloseProject(ctx, actor, "alpha"); broker.KindOf(err) != broker.Conflict {
		t.Errorf("closing twice: err = %v, want conflict", err)
	}
	if err := kv.b.CloseProject(ctx, actor, "nope"); broker.KindOf(err) != broker.NotFound {
		t.Errorf("closing an unknown project: err = %v, want not found", err)
	}
	if _, err := kv.b.Project(ctx, "nope"); broker.KindOf(err) != broker.NotFound {
		t.Errorf("Project of an unknown id: err = %v, want not found", err)
	}

	var actions []string
	for _, ev := range kv.events(before, "project.add", "project.close") {
		if ev.Actor != actor || ev.Decision != "allow" || ev.Outcome != "ok" {
			t.Errorf("event %d: %+v", ev.Index, ev)
		}
		actions = append(actions, ev.Action+" "+strings.Join(ev.Resources, ","))
	}
	wantActions := []string{"project.add project:zeta", "project.add project:alpha", "project.close project:alpha"}
	if !slices.Equal(actions, wantActions) {
		t.Errorf("audit = %q, want %q", actions, wantActions)
	}
	if _, err := broker.VerifyAudit(ctx, kv.store, kv.b.AuditVerifierKey(), nil); err != nil {
		t.Errorf("audit chain after project changes: %v", err)
	}
}

func TestProjectVariablesAreAnalytic(t *testing.T) {
	kv := newKeyVault(t, keyVaultOpts{})
	vars := kv.b.ProjectVariables(context.Background())
	for _, bad := range []string{"full_name", "head_name", "address", "phone", "visit_count", "respondent_no", "response_type"} {
		if slices.Contains(vars, bad) {
			t.Errorf("ProjectVariables includes %s", bad)
		}
	}
	for _, good := range []string{"sex", "birth_year", "ethnicity", "tenure", "age_group5"} {
		if !slices.Contains(vars, good) {
			t.Errorf("ProjectVariables lacks %s", good)
		}
	}
}

func ExampleBroker_AddProject() {
	ctx := context.Background()
	var b *broker.Broker // broker.New(ctx, broker.Opts{…})
	err := b.AddProject(ctx, "cli:admin", broker.NewProject{
		ID:        "fertility-2019",
		Title:     "Fertility by ethnicity",
		Purpose:   "Estimate age-specific fertility by ethnic group",
		Areas:     []broker.AreaCode{"437"},
		Variables: []string{"sex", "age_group5", "ethnicity"},
		Expires:   time.Now().AddDate(0, 6, 0),
		Budget:    200000,
	})
	if broker.KindOf(err) == broker.Invalid {
		fmt.Println("refused:", err) // e.g. an identifying variable, an unknown area
		return
	}
	if err != nil {
		panic(err)
	}
	p, err := b.Project(ctx, "fertility-2019")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s: %d of %d cells left\n", p.ID, p.Remaining, p.Budget)
}
