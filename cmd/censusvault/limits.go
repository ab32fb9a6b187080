package main

import (
	"fmt"
	"math"

	"github.com/censusvault/censusvault/broker"
	"github.com/spf13/pflag"
)

// limitFlags are serve's rate-limit flags (broker.Limits).
type limitFlags struct{ l broker.Limits }

func (f *limitFlags) add(fs *pflag.FlagSet) {
	d := broker.DefaultLimits()
	fs.Float64Var(&f.l.UserRate, "user-rate", d.UserRate, "requests a second each user may make, sustained; past it 429 with Retry-After (negative: no limit)")
	fs.IntVar(&f.l.UserBurst, "user-burst", d.UserBurst, "requests each user may make at once (a device's outbox flushed after days offline)")
	fs.Float64Var(&f.l.RefusalRate, "refusal-rate", d.RefusalRate, "refusal events a second logged one by one over all users; past it refusals are summarized each minute (negative: no limit)")
	fs.IntVar(&f.l.RefusalBurst, "refusal-burst", d.RefusalBurst, "refusal events logged one by one at once, over all users")
	fs.Float64Var(&f.l.AuthFailRate, "auth-fail-rate", d.AuthFailRate, "failed-authentication events a second logged one by one over all sources; past it they are summarized by /24 or /64 each minute (negative: no limit)")
	fs.IntVar(&f.l.AuthFailBurst, "auth-fail-burst", d.AuthFailBurst, "failed-authentication events logged one by one at once, over all sources")
}

// check refuses values that would silently mean something else: 0 (which
// broker.Limits reads as "the default"), NaN or infinity, a burst below 1.
func (f *limitFlags) check() error {
	for _, r := range []struct {
		name  string
		rate  float64
		burst int
	}{{"user", f.l.UserRate, f.l.UserBurst}, {"refusal", f.l.RefusalRate, f.l.RefusalBurst}, {"auth-fail", f.l.AuthFailRate, f.l.AuthFailBurst}} {
		if r.rate == 0 || math.IsNaN(r.rate) || math.IsInf(r.rate, 0) {
			return fmt.Errorf("--%s-rate must be a number of events a second above 0, or negative for no limit", r.name)
		}
		if r.burst < 1 {
			return fmt.Errorf("--%s-burst must be at least 1", r.name)
		}
	}
	return nil
}
