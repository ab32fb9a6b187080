package testdeadline_test

import (
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker/testdeadline"
)

// A test's time limit follows go test -timeout: it ends before the
// test's own deadline (leaving time to report), and a longer -timeout
// gives a later limit, never a fixed constant.
func TestOfFollowsTheTestDeadline(t *testing.T) {
	d, ok := t.Deadline()
	of := testdeadline.Of(t)
	if !ok {
		if time.Until(of) < time.Minute {
			t.Errorf("without a deadline: limit in %v", time.Until(of))
		}
		return
	}
	if !of.Before(d) || !of.After(time.Now()) {
		t.Errorf("limit %v, test deadline %v: want now < limit < deadline", of, d)
	}
	if left, kept := time.Until(d), d.Sub(of); kept > left/2 {
		t.Errorf("keeps %v of the %v left: the test gets too little", kept, left)
	}
	ctx := testdeadline.Context(t)
	if cd, ok := ctx.Deadline(); !ok || !cd.Equal(of) && cd.Sub(of) > time.Second {
		t.Errorf("Context deadline %v, want about %v", cd, of)
	}
}
