// Package opentime holds what both storage backends do with the time of
// a record open (storage.Tx.RecordOpen): they store it in Unix
// nanoseconds, an integer, since it is compared in SQL (the RFC 3339
// text of other tables does not sort as time does: ".5Z" sorts before
// "Z").
package opentime

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// minNanos and maxNanos are the instants Unix nanoseconds can hold.
var (
	minNanos = time.Unix(0, math.MinInt64)
	maxNanos = time.Unix(0, math.MaxInt64)
)

// Bound is t in Unix nanoseconds, a time before or after what they can
// hold (the zero time, say) taken as the first or last of them: as a
// bound, it compares the same way with every stored time.
func Bound(t time.Time) int64 {
	switch {
	case t.Before(minNanos):
		return math.MinInt64
	case t.After(maxNanos):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// Check refuses a record open the store cannot hold; backend names the
// store in the error ("sqlite", "postgres").
func Check(backend, user, submission string, at time.Time) error {
	switch {
	case user == "" || submission == "":
		return errors.New(backend + ": RecordOpen needs a user and a submission")
	case at.IsZero():
		return fmt.Errorf("%s: open of submission %s by %s with a zero time", backend, submission, user)
	case !at.After(minNanos) || !at.Before(maxNanos):
		// Strictly inside, so that a bound Bound clamped compares with
		// every stored time as the instant it stands for.
		return fmt.Errorf("%s: open of submission %s by %s at %v, outside the years 1678 to 2262 the store can hold", backend, submission, user, at)
	}
	return nil
}
