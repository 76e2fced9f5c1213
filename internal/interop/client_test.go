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

// TestGuarded: mellium gets a context that cannot be cancelled (so its
// racy watch never starts); an operation still blocked when the caller's
// context ends is cut by the deadline, its error names the context's, and
// the deadline is cleared for the next write. That nothing from the watch
// comes after is deadline.TestStopWaits.
func TestGuarded(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := guarded(ctx, a.SetWriteDeadline, func(ctx context.Context) error {
		if ctx.Done() != nil {
			return errors.New("the operation got a context that can be cancelled")
		}
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
