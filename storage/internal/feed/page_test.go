package feed

import (
	"errors"
	"testing"
)

func TestEach(t *testing.T) {
	var seen []int
	more, err := Each([]int{1, 2, 3}, func(i int) (bool, error) { seen = append(seen, i); return true, nil })
	if !more || err != nil || len(seen) != 3 {
		t.Errorf("all: more %v err %v seen %v", more, err, seen)
	}
	seen = nil
	more, err = Each([]int{1, 2, 3}, func(i int) (bool, error) { seen = append(seen, i); return i < 2, nil })
	if more || err != nil || len(seen) != 2 {
		t.Errorf("stop: more %v err %v seen %v", more, err, seen)
	}
	boom := errors.New("boom")
	seen = nil
	more, err = Each([]int{1, 2, 3}, func(i int) (bool, error) { seen = append(seen, i); return true, boom })
	if more || err != boom || len(seen) != 1 {
		t.Errorf("error: more %v err %v seen %v", more, err, seen)
	}
}
