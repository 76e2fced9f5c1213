package federationtest

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed is returned by the Next methods of a Domain, a User and a
// Backend once it is closed and everything it recorded has been read.
var ErrClosed = errors.New("federationtest: closed")

// recorder keeps every value added, in order, for one reader walking
// through them with next and any number of snapshot readers. Adding never
// blocks and never drops a value. The zero value is ready to use.
type recorder[T any] struct {
	mu     sync.Mutex
	items  []T
	read   int           // index of the next value next returns
	wake   chan struct{} // closed (and replaced) when a value is added or the recorder closes
	closed bool
}

// signal returns the channel closed at the next change; r.mu is held.
func (r *recorder[T]) signal() chan struct{} {
	if r.wake == nil {
		r.wake = make(chan struct{})
	}
	return r.wake
}

// add records v and wakes the waiting reader, if any. After close, values
// are still recorded (a late stanza is never lost) and readable.
func (r *recorder[T]) add(v T) {
	r.mu.Lock()
	r.items = append(r.items, v)
	if r.wake != nil {
		close(r.wake)
		r.wake = nil
	}
	r.mu.Unlock()
}

// close makes next return ErrClosed once every value has been read.
func (r *recorder[T]) close() {
	r.mu.Lock()
	r.closed = true
	if r.wake != nil {
		close(r.wake)
		r.wake = nil
	}
	r.mu.Unlock()
}

// next returns the first value not yet returned, waiting for one until ctx
// ends (ctx's error) or the recorder is closed (ErrClosed).
func (r *recorder[T]) next(ctx context.Context) (T, error) {
	for {
		r.mu.Lock()
		if r.read < len(r.items) {
			v := r.items[r.read]
			r.read++
			r.mu.Unlock()
			return v, nil
		}
		if r.closed {
			r.mu.Unlock()
			var zero T
			return zero, ErrClosed
		}
		wake := r.signal()
		r.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
}

// all returns a copy of every value recorded so far, read or not.
func (r *recorder[T]) all() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.items...)
}

// len returns how many values were recorded.
func (r *recorder[T]) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.items)
}
