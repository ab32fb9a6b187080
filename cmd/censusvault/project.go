package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/censusvault/censusvault/broker"
)

// cmdProject registers and reports research projects: what areas and
// variables a project may tabulate, until when, and its cell budget.
func cmdProject(ctx context.Context, e *env, args []string) error {
	sub, syn, args, done, err := subcommand(e, args, "usage: censusvault project add|list|show|close [ID] [flags]", map[string]string{
		"add":   "project add ID --title T --purpose P --areas CODE,… --variables VAR,… --expires 180d --budget CELLS",
		"list":  "project list",
		"show":  "project show ID",
		"close": "project close ID",
	})
	if done {
		return err
	}
	fs := newFlags("project "+sub, syn, e)
	var sf storeFlags
	sf.add(fs)
	var title, purpose, expires *string
	var areas, variables *[]string
	var budget *int64
	if sub == "add" {
		title = fs.String("title", "", "short title (required)")
		purpose = fs.String("purpose", "", "the approved purpose (required)")
		areas = fs.StringSlice("areas", nil, "area codes the project covers, each with its subtree (required)")
		variables = fs.StringSlice("variables", nil, "variables of the vault's table form it may use: its analytic fields, and age_group5 and age if it has an age (required; a name that is none is answered with the list)")
		expires = fs.String("expires", "", "lifetime, e.g. 180d or 4320h, or an RFC 3339 time (required)")
		budget = fs.Int64("budget", 0, "cells it may release in total (required)")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	wantArgs := 1
	if sub == "list" {
		wantArgs = 0
	}
	if fs.NArg() != wantArgs {
		fs.Usage()
		if wantArgs == 0 {
			return &exitError{code: 2, err: errors.New("project list takes no arguments")}
		}
		return &exitError{code: 2, err: errors.New("expected exactly one project ID")}
	}
	var p broker.NewProject
	if sub == "add" {
		var missing []string
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"--title", *title != ""}, {"--purpose", *purpose != ""}, {"--areas", len(*areas) > 0},
			{"--variables", len(*variables) > 0}, {"--expires", *expires != ""}, {"--budget", fs.Changed("budget")},
		} {
			if !f.set {
				missing = append(missing, f.name)
			}
		}
		if len(missing) > 0 {
			return &exitError{code: 2, err: fmt.Errorf("missing %s", strings.Join(missing, ", "))}
		}
		exp, err := parseExpiry(*expires, time.Now())
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		p = broker.NewProject{ID: fs.Arg(0), Title: *title, Purpose: *purpose, Variables: *variables, Expires: exp, Budget: *budget}
		for _, a := range *areas {
			p.Areas = append(p.Areas, broker.AreaCode(a))
		}
	}
	b, st, err := sf.openBroker(ctx, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	switch sub {
	case "add":
		if err := b.AddProject(ctx, cliActor(), p); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "added project %s: budget %d cells, expires %s\n", p.ID, p.Budget, p.Expires.UTC().Format(time.RFC3339))
	case "close":
		if err := b.CloseProject(ctx, cliActor(), fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "closed project %s\n", fs.Arg(0))
	case "list":
		ps, err := b.Projects(ctx)
		if err != nil {
			return err
		}
		if len(ps) == 0 {
			fmt.Fprintln(e.stderr, "no projects (add one with `censusvault project add`)")
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tBUDGET\tSPENT\tREMAINING\tEXPIRES\tTITLE")
		now := time.Now()
		for _, p := range ps {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\n", p.ID, projectState(&p, now), p.Budget, p.Spent, p.Remaining,
				p.Expires.UTC().Format(time.RFC3339), p.Title)
		}
		return tw.Flush()
	case "show":
		p, err := b.Project(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		var areas []string
		for _, a := range p.Areas {
			areas = append(areas, string(a))
		}
		closed := "no"
		if !p.Closed.IsZero() {
			closed = p.Closed.UTC().Format(time.RFC3339)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 1, ' ', 0)
		for _, kv := range [][2]string{
			{"project", p.ID},
			{"state", projectState(p, time.Now())},
			{"title", p.Title},
			{"purpose", p.Purpose},
			{"areas", strings.Join(areas, ",")},
			{"variables", strings.Join(p.Variables, ",")},
			{"created", p.Created.UTC().Format(time.RFC3339)},
			{"expires", p.Expires.UTC().Format(time.RFC3339)},
			{"closed", closed},
			{"budget", fmt.Sprint(p.Budget)},
			{"spent", fmt.Sprint(p.Spent)},
			{"remaining", fmt.Sprint(p.Remaining)},
		} {
			fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
		}
		return tw.Flush()
	}
	return nil
}

// projectState is "closed", "expired", "exhausted" or "open".
func projectState(p *broker.ProjectInfo, now time.Time) string {
	switch {
	case !p.Closed.IsZero():
		return "closed"
	case !now.Before(p.Expires):
		return "expired"
	case p.Remaining <= 0:
		return "exhausted"
	}
	return "open"
}

// parseExpiry reads a lifetime from now ("180d", "36h") or an RFC 3339
// time.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := parseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--expires: bad value %q (use e.g. 180d, 36h or 2027-06-30T00:00:00+07:00)", s)
	}
	return now.Add(d), nil
}
