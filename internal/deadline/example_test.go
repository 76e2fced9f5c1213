package deadline_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/xmppfed/xmppfed/internal/deadline"
)

// A read bounded by a context: the peer never writes, the context ends,
// the read fails, and the connection's deadline is cleared after stop for
// whoever uses the connection next.
func ExampleWatch() {
	conn, peer := net.Pipe()
	defer conn.Close()
	defer peer.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	stop := deadline.Watch(ctx, conn.SetDeadline)
	_, err := conn.Read(make([]byte, 1))
	if stop() {
		_ = conn.SetDeadline(time.Time{})
	}
	fmt.Println(errors.Is(err, os.ErrDeadlineExceeded))
	// Output: true
}
