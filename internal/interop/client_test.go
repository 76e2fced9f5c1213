//go:build interop

package interop

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// pipeWrite writes b to c while a reader drains the other end, and
// returns the write's error.
func pipeWrite(c, other net.Conn, b []byte) error {
	go func() { _, _ = io.ReadFull(other, make([]byte, len(b))) }()
	_, err := c.Write(b)
	return err
}

// TestGuardedCancelAfterSuccess is the case mellium gets wrong: the
// context is cancelled right after the operation succeeded, and a later
// write on the connection must not see a deadline from it.
func TestGuardedCancelAfterSuccess(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	for i := range 1000 {
		ctx, cancel := context.WithCancel(context.Background())
		err := guarded(ctx, a.SetWriteDeadline, func(ctx context.Context) error {
			if ctx.Done() != nil {
				t.Fatal("the operation got a context that can be cancelled")
			}
			return pipeWrite(a, b, []byte("x"))
		})
		cancel()
		if err != nil {
			t.Fatalf("run %d: guarded write: %v", i, err)
		}
		if err := pipeWrite(a, b, []byte("y")); err != nil {
			t.Fatalf("run %d: the write after cancel failed: %v", i, err)
		}
	}
}

// TestGuardedDeadline: an operation still blocked when the context ends
// is cut by the deadline, its error names the context's, and the deadline
// is cleared for the next write.
func TestGuardedDeadline(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := guarded(ctx, a.SetWriteDeadline, func(context.Context) error {
		_, err := a.Write([]byte("nobody reads this")) // blocks: b is not read
		return err
	})
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("blocked write: got %v, want the connection's and the context's deadline errors", err)
	}
	if err := pipeWrite(a, b, []byte("z")); err != nil {
		t.Fatalf("the write after the timeout failed: %v", err)
	}
}
