package deadline

import (
	"context"
	"time"
)

// Watch calls set with a deadline long past when ctx ends, so that every
// blocked and every later read or write on the connection fails at once
// with os.ErrDeadlineExceeded. set is a connection's SetDeadline,
// SetReadDeadline or SetWriteDeadline.
//
// The returned stop ends the watch. It returns once no call of set from
// the watch can happen any more, waiting for one already under way, and
// reports whether the watch fired: then the caller's deadline is in
// the past and the caller clears it (or sets its own) if the connection
// goes on being used.
func Watch(ctx context.Context, set func(time.Time) error) (stop func() (fired bool)) {
	done := make(chan struct{})
	s := context.AfterFunc(ctx, func() {
		defer close(done)
		_ = set(time.Unix(1, 0))
	})
	return func() bool {
		if s() {
			return false
		}
		<-done
		return true
	}
}
