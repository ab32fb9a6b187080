package broker

import (
	"fmt"
	"strings"
	"testing"
)

// A refusal summary names every actor, however many: past one event's
// worth, in more parts, each within its bound.
func TestTallyAllNamesEveryKey(t *testing.T) {
	tl := tally{every: true}
	const users = 30000 // more than maxTallyKeys
	for i := range users {
		tl.add(fmt.Sprintf("user:enumerator-%06d", i), int64(1+i%3))
	}
	if tl.lost != 0 {
		t.Fatalf("%d counted under no key", tl.lost)
	}
	parts := tl.all(summaryPartBytes)
	if len(parts) < 2 {
		t.Fatalf("%d parts for %d actors", len(parts), users)
	}
	seen := 0
	for _, p := range parts {
		if len(p) > summaryPartBytes {
			t.Errorf("a part of %d bytes, bound %d", len(p), summaryPartBytes)
		}
		seen += len(strings.Split(p, ", "))
	}
	if seen != users {
		t.Errorf("the parts name %d actors, want %d", seen, users)
	}
}
