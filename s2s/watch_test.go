package s2s

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// TestWatchStopWaits: once stop has returned, a deadline the caller sets
// is the one that holds, even when ctx ended just before stop (the
// negotiators clear the deadline after stop on success, and set a short
// one for a timeout's stream error).
func TestWatchStopWaits(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	for i := range 2000 {
		ctx, cancel := context.WithCancel(context.Background())
		stop := watch(ctx, a)
		cancel()
		stop()
		if err := a.SetDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := io.ReadFull(b, make([]byte, 1))
			done <- err
		}()
		if _, err := a.Write([]byte{'x'}); err != nil {
			t.Fatalf("run %d: a write after stop and a cleared deadline: %v", i, err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
