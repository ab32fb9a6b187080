package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/spf13/pflag"
)

// pointFlags are the publication point rules: serve applies them to
// approvers' POST /v1/release-points, release-point create to the host
// operator's.
type pointFlags struct {
	k        *int64
	interval *time.Duration
}

func addPointFlags(fs *pflag.FlagSet) *pointFlags {
	return &pointFlags{
		k:        fs.Int64("point-k", broker.DefaultPointK, "households an area must have changed by since the last publication point to be seen anew at the next"),
		interval: fs.Duration("point-interval", broker.DefaultPointInterval, "least time between two publication points"),
	}
}

func (p *pointFlags) check() error {
	if *p.k < 1 {
		return &exitError{code: 2, err: fmt.Errorf("--point-k %d: at least 1 household", *p.k)}
	}
	if *p.interval < 0 {
		return &exitError{code: 2, err: fmt.Errorf("--point-interval %s is negative", *p.interval)}
	}
	return nil
}

func (p *pointFlags) apply(o *broker.Opts) {
	o.PointK, o.PointInterval = *p.k, *p.interval
	if o.PointInterval == 0 {
		o.PointInterval = -1 // no minimum: asked for explicitly
	}
}

// cmdReleasePoint makes and lists publication points: the named, frozen
// moments standard tables are computed at.
func cmdReleasePoint(ctx context.Context, e *env, args []string) error {
	sub, syn, args, done, err := subcommand(e, args, "usage: censusvault release-point create|list [NAME] [flags]", map[string]string{
		"create": "release-point create NAME [--point-k 100] [--point-interval 168h]\n\n" +
			"Freezes the data as it is now into the publication point NAME (the approver's act; audited).\n" +
			"Every commune is seen at its new state only if at least --point-k of its households changed\n" +
			"since the previous point; otherwise it keeps its previous state. Points are never replaced.",
		"list": "release-point list",
	})
	if done {
		return err
	}
	fs := newFlags("release-point "+sub, syn, e)
	var sf storeFlags
	sf.add(fs)
	var pf *pointFlags
	if sub == "create" {
		pf = addPointFlags(fs)
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	want := 1
	if sub == "list" {
		want = 0
	}
	if fs.NArg() != want {
		fs.Usage()
		if want == 0 {
			return &exitError{code: 2, err: errors.New("release-point list takes no arguments")}
		}
		return &exitError{code: 2, err: errors.New("expected exactly one point NAME (e.g. 2019-04-15)")}
	}
	var opts []func(*broker.Opts)
	if pf != nil {
		if err := pf.check(); err != nil {
			return err
		}
		opts = append(opts, pf.apply)
	}
	b, st, err := sf.openBroker(ctx, nil, opts...)
	if err != nil {
		return err
	}
	defer st.Close()
	switch sub {
	case "create":
		stop := tableProgress(e, b)
		p, err := b.CreateReleasePoint(ctx, cliActor(), fs.Arg(0))
		stop()
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "made publication point %s at deposit point %d: %d of %d %ss at a new state, %d kept at their previous one (changed by fewer than %d households)\n",
			p.Name, p.AsOf, p.Advanced, p.Areas, p.Level, p.Kept, p.K)
	case "list":
		ps, err := b.ReleasePoints(ctx)
		if err != nil {
			return err
		}
		if len(ps) == 0 {
			fmt.Fprintln(e.stderr, "no publication points (an approver makes one with `censusvault release-point create NAME`)")
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tNAME\tAS_OF\tCREATED\tBY\tLEVEL\tK")
		for _, p := range ps {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%d\n", p.Seq, p.Name, p.AsOf, p.Created.UTC().Format(time.RFC3339), p.CreatedBy, p.Level, p.K)
		}
		return tw.Flush()
	}
	return nil
}
