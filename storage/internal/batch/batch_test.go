package batch_test

import (
	"testing"

	"github.com/censusvault/censusvault/storage/internal/batch"
)

func TestRunGathersQueuedWork(t *testing.T) {
	ops := make(chan int, 10)
	for i := 0; i < 7; i++ {
		ops <- i
	}
	closing := make(chan struct{})
	var sizes []int
	var seen []int
	done := make(chan struct{})
	go func() {
		defer close(done)
		batch.Run(ops, closing, 3, func(b []int) {
			sizes = append(sizes, len(b))
			seen = append(seen, b...)
			if len(seen) == 7 {
				close(closing)
			}
		})
	}()
	<-done
	if len(sizes) != 3 || sizes[0] != 3 || sizes[1] != 3 || sizes[2] != 1 {
		t.Errorf("batch sizes %v, want [3 3 1]", sizes)
	}
	for i, v := range seen {
		if v != i {
			t.Fatalf("order %v", seen)
		}
	}
}

func TestRunDrainsOnClose(t *testing.T) {
	ops := make(chan int, 10)
	closing := make(chan struct{})
	close(closing)
	ops <- 1
	ops <- 2
	var got [][]int
	batch.Run(ops, closing, 5, func(b []int) { got = append(got, b) })
	// Closing may win the first select or not; either way nothing queued
	// is lost and Run returns.
	n := 0
	for _, b := range got {
		n += len(b)
	}
	if n != 2 {
		t.Errorf("committed %v, want both queued items", got)
	}
}
