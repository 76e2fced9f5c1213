package clock

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestFake(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewFake(start)
	var order []int
	var n atomic.Int32
	a := c.AfterFunc(2*time.Second, func() { order = append(order, 2); n.Add(1) })
	c.AfterFunc(time.Second, func() { n.Add(1) })
	stopped := c.AfterFunc(time.Second, func() { t.Error("stopped timer ran") })
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop should report true once")
	}
	c.Advance(999 * time.Millisecond)
	if n.Load() != 0 {
		t.Fatal("timer ran early")
	}
	c.Advance(time.Millisecond)
	if n.Load() != 1 || c.Pending() != 1 {
		t.Fatalf("after 1s: ran %d, pending %d", n.Load(), c.Pending())
	}
	if !a.Reset(5 * time.Second) {
		t.Fatal("Reset of a pending timer should report true")
	}
	c.Advance(4 * time.Second)
	if n.Load() != 1 {
		t.Fatal("reset timer ran at its old time")
	}
	c.Advance(time.Second)
	if n.Load() != 2 || len(order) != 1 || c.Pending() != 0 {
		t.Fatalf("after reset: ran %d", n.Load())
	}
	if a.Reset(time.Second) {
		t.Fatal("Reset of a fired timer should report false")
	}
	c.Advance(time.Second)
	if n.Load() != 3 {
		t.Fatal("re-armed timer did not run")
	}
	if got := c.Now(); !got.Equal(start.Add(7 * time.Second)) {
		t.Fatalf("Now = %v", got)
	}
}

func TestOr(t *testing.T) {
	if _, ok := Or(nil).(Real); !ok {
		t.Fatal("Or(nil) is not Real")
	}
	f := NewFake(time.Time{})
	if Or(f) != Clock(f) {
		t.Fatal("Or(f) is not f")
	}
	var fired atomic.Bool
	done := make(chan struct{})
	Real{}.AfterFunc(time.Millisecond, func() { fired.Store(true); close(done) })
	<-done
	if !fired.Load() {
		t.Fatal("real timer did not fire")
	}
}
