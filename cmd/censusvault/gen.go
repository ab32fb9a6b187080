package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/synth"
)

// maxGenHouseholds bounds --households: a little over Viet Nam's 26.9
// million households of 2019.
const maxGenHouseholds = 30_000_000

// cmdGen makes a synthetic census and loads it through the broker's
// ingest path in process (validate, seal, store, audit; no HTTP, no age
// layer), for tests and benchmarks.
func cmdGen(ctx context.Context, e *env, args []string) error {
	fs := newFlags("gen", "gen --households N [--areas FILE | --national] [--seed S] [--from I] [--workers W] --data DIR", e)
	var sf storeFlags
	sf.add(fs)
	n := fs.Int("households", 0, fmt.Sprintf("households to generate and load, 1…%d (required)", maxGenHouseholds))
	areasFile := fs.String("areas", "", "areas CSV whose EAs get the households; on a data directory without a vault, the vault is initialized with it")
	national := fs.Bool("national", false, "use the synthetic national tree (63 provinces, ≈ 700 districts, ≈ 10,600 communes); on a data directory without a vault, the vault is initialized with it")
	seed := fs.Int64("seed", 2019, "seed: the same seed makes the same tree and households")
	from := fs.Int("from", 0, "index of the first household: to add to a census loaded before with the same seed, give the number loaded so far")
	// Several deposits per core: each waits on its commit, and the store
	// commits concurrent deposits together.
	workers := fs.Int("workers", 4*runtime.GOMAXPROCS(0), "concurrent deposits (the store commits concurrent deposits together)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *n < 1 || *n > maxGenHouseholds {
		return &exitError{code: 2, err: fmt.Errorf("--households must be 1…%d", maxGenHouseholds)}
	}
	if *from < 0 || *from > synth.MaxHouseholds-maxGenHouseholds {
		return &exitError{code: 2, err: fmt.Errorf("--from must be 0…%d", synth.MaxHouseholds-maxGenHouseholds)}
	}
	if *areasFile != "" && *national {
		return &exitError{code: 2, err: errors.New("--areas and --national exclude each other")}
	}
	if *workers < 1 || *workers > 256 {
		return &exitError{code: 2, err: errors.New("--workers must be 1…256")}
	}
	if fs.NArg() != 0 {
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}

	var tree *area.Tree // the tree --areas or --national names, if any
	switch {
	case *national:
		t, err := area.Load(strings.NewReader(synth.NationalAreas(*seed)))
		if err != nil {
			return fmt.Errorf("synthetic national tree: %w", err)
		}
		tree = t
	case *areasFile != "":
		f, err := os.Open(*areasFile)
		if err != nil {
			return err
		}
		t, err := area.Load(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", *areasFile, err)
		}
		tree = t
	}
	fresh, err := sf.noVault()
	if err != nil {
		return err
	}
	if fresh {
		if tree == nil {
			return &exitError{code: 2, err: fmt.Errorf("no vault in %s: give --national or --areas FILE to create one, or run `censusvault init` first", sf.data)}
		}
		what := "the areas of " + *areasFile
		if *national {
			what = fmt.Sprintf("the synthetic national tree (seed %d)", *seed)
		}
		fmt.Fprintf(e.stderr, "no vault in %s: initializing one with %s, %d areas\n", sf.data, what, tree.Len())
		if err := genInit(ctx, &sf, tree); err != nil {
			return err
		}
	}
	b, st, err := sf.openBroker(ctx, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	defer b.Close(ctx)

	var eas []synth.AreaInfo
	switch {
	case *areasFile != "" && !fresh:
		// Households go to the file's EAs, which the vault must know.
		for _, a := range synth.EAs(tree) {
			if v, ok := b.Tree().Get(area.Code(a.Code)); !ok || v.Level != area.EA {
				return fmt.Errorf("%s: EA %s is not an EA of the vault", *areasFile, a.Code)
			}
			eas = append(eas, a)
		}
	default:
		if *national && !fresh {
			fmt.Fprintf(e.stderr, "vault in %s exists: using its own areas\n", sf.data)
		}
		eas = synth.EAs(b.Tree())
	}
	g, err := synth.New(synth.Opts{Seed: *seed, EAs: eas})
	if err != nil {
		return err
	}
	return genLoad(ctx, e, b, g, *from, *n, *workers)
}

// noVault reports whether the flags name a SQLite database that does not
// exist yet. A PostgreSQL vault must be initialized with `init` first.
func (s *storeFlags) noVault() (bool, error) {
	path, err := s.sqlitePath()
	if err != nil || path == "" {
		return false, err
	}
	_, err = os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	return false, err
}

// genInit does what `init` does, with the given tree.
func genInit(ctx context.Context, sf *storeFlags, tree *area.Tree) error {
	opts := broker.InitOpts{Areas: tree, Name: "censusvault", Actor: cliActor()}
	if err := opts.Check(); err != nil {
		return err
	}
	made := sf.newFiles()
	st, kp, err := sf.open(ctx, true)
	if err != nil {
		made.remove()
		return err
	}
	opts.Store, opts.Keys = st, kp.system
	if err := broker.Init(ctx, opts); err != nil {
		st.Close()
		made.remove()
		return err
	}
	return st.Close()
}

// genLoad deposits households from…from+n-1 of g with the given number
// of workers, with a progress line on stderr and a summary on stdout.
func genLoad(ctx context.Context, e *env, b *broker.Broker, g *synth.Generator, from, n, workers int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	actor := cliActor()
	var (
		next, done, persons atomic.Int64
		firstErr            error
		errOnce             sync.Once
		wg                  sync.WaitGroup
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	start := time.Now()
	progress := func() {
		d := done.Load()
		fmt.Fprintf(e.stderr, "\rloading: %d/%d households (%.0f/s)   ", d, n, float64(d)/max(time.Since(start).Seconds(), 1e-9))
	}
	stopTicker := make(chan struct{})
	tickerDone := make(chan struct{})
	go func() {
		defer close(tickerDone)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				progress()
			case <-stopTicker:
				return
			}
		}
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				sub, np, err := g.Household(from + int(i))
				if err != nil {
					fail(err)
					return
				}
				if _, err := b.IngestSynthetic(ctx, actor, sub); err != nil {
					fail(fmt.Errorf("household %d: %w", from+int(i), err))
					return
				}
				persons.Add(int64(np))
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stopTicker)
	<-tickerDone
	progress()
	fmt.Fprintln(e.stderr)
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Fprintf(e.stdout, "loaded %d households, %d persons in %.1fs\n", n, persons.Load(), elapsed.Seconds())
	fmt.Fprintf(e.stderr, "%.0f households/s with %d workers\n", float64(n)/elapsed.Seconds(), workers)
	return nil
}
