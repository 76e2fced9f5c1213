package deadline

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// write writes one byte to c while a reader drains other.
func write(c, other net.Conn) error {
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(other, make([]byte, 1))
		done <- err
	}()
	_, err := c.Write([]byte{'x'})
	if err != nil {
		_ = other.SetReadDeadline(time.Unix(1, 0)) // end the reader
	}
	<-done
	_ = other.SetReadDeadline(time.Time{})
	return err
}

// TestStopWaits: once stop has returned, a deadline the caller sets is
// the one that holds, even when ctx ended just before stop. The
// select-based watch this replaced failed within a few hundred rounds.
func TestStopWaits(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	for i := range 2000 {
		ctx, cancel := context.WithCancel(context.Background())
		stop := Watch(ctx, a.SetDeadline)
		cancel()
		stop() // whether the watch fired or not, nothing from it comes after
		if err := a.SetDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
		if err := write(a, b); err != nil {
			t.Fatalf("run %d: a write after stop and a cleared deadline: %v", i, err)
		}
	}
}

// TestStopBeforeEnd: a watch stopped before its context ends never sets
// a deadline, and reports that it did not fire.
func TestStopBeforeEnd(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	stop := Watch(ctx, a.SetDeadline)
	if stop() {
		t.Fatal("stop reported a watch that fired before its context ended")
	}
	cancel()
	if err := write(a, b); err != nil {
		t.Fatalf("a write after the stopped watch's context ended: %v", err)
	}
}

// TestCutsBlockedWrite: the end of the context unblocks a write that
// nobody reads, with os.ErrDeadlineExceeded, and stop reports it.
func TestCutsBlockedWrite(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	stop := Watch(ctx, a.SetWriteDeadline)
	_, err := a.Write([]byte("nobody reads this"))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("blocked write: got %v, want os.ErrDeadlineExceeded", err)
	}
	if !stop() {
		t.Fatal("stop did not report the watch that cut the write")
	}
}
