// Package testdeadline gives tests their time limits from the test's own
// deadline (go test -timeout) instead of fixed constants, so that a loaded
// machine makes a test slower, not red. A test that waits for something
// that must happen (an answer, a process exiting) waits until shortly
// before its deadline and then fails with a message, instead of the
// whole binary being killed without one.
package testdeadline

import (
	"context"
	"testing"
	"time"
)

// noDeadline is how long a test without a deadline (go test -timeout 0)
// may wait: go test's default -timeout.
const noDeadline = 10 * time.Minute

// Of is when t must stop waiting: a tenth of the time left before t's
// deadline (at least a second, at most half a minute) is kept to report
// the failure and clean up.
func Of(t *testing.T) time.Time {
	d, ok := t.Deadline()
	if !ok {
		return time.Now().Add(noDeadline)
	}
	margin := min(max(time.Until(d)/10, time.Second), 30*time.Second)
	return d.Add(-margin)
}

// Context is a context that ends at Of(t), and at the latest when t ends.
func Context(t *testing.T) context.Context {
	ctx, cancel := context.WithDeadline(context.Background(), Of(t))
	t.Cleanup(cancel)
	return ctx
}
