package s2s

import (
	"cmp"
	"errors"
	"strconv"
	"time"
)

// StreamEventType says what happened to a stream.
type StreamEventType uint8

// Stream event types.
const (
	// StreamEstablished: the stream is authenticated and carries stanzas.
	StreamEstablished StreamEventType = iota + 1
	// StreamClosed: an established stream ended (Err says why; nil for
	// a clean </stream:stream>).
	StreamClosed
	// StreamFailed: a stream could not be opened or accepted (Err is
	// usually a *NegotiationError).
	StreamFailed
)

// String returns "established", "closed" or "failed".
func (t StreamEventType) String() string {
	switch t {
	case StreamEstablished:
		return "established"
	case StreamClosed:
		return "closed"
	case StreamFailed:
		return "failed"
	}
	return "StreamEventType(" + strconv.Itoa(int(t)) + ")"
}

// StreamEvent reports a change in a stream's life, for metrics and for
// presence (a remote domain out of reach). See Server.StreamEvent.
type StreamEvent struct {
	Type      StreamEventType // what happened
	Direction Direction       // who opened (or tried to open) the connection
	// Local and Remote are the domains of the stream's header ("" when
	// not known yet, for an inbound stream that failed before its header).
	Local, Remote string
	// Partner is the main domain of Remote's partner (Remote itself under
	// open federation; "" when not known).
	Partner string
	// Auth is how the stream was authenticated (AuthNone for StreamFailed).
	Auth AuthMethod
	// Err is why a stream closed or failed.
	Err error
}

// maxFailures bounds the remote domains whose last failure is kept: beyond
// it the oldest entry is forgotten.
const maxFailures = 4096

// failure is the last failed attempt to reach a remote domain.
type failure struct {
	err error
	at  time.Time
}

// LastFailure returns the last failed attempt of ours to open a stream to
// the remote domain (an A-label, as in StreamInfo.Remote) and when it
// happened; a nil error when none is remembered (none failed, or a stream
// to the domain was established since).
//
//lint:ignore ST1008 the pair reads as "the failure, and when": the order of federation.CheckReport's LastFailure and LastFailureAt.
func (s *Server) LastFailure(remote string) (err error, at time.Time) {
	s.start()
	r := &s.run
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.failures[remote]
	if !ok {
		return nil, time.Time{}
	}
	return f.err, f.at
}

// Queued returns the number of stanzas waiting in the outbound pool for a
// stream (Stats().Queued, without the snapshot's cost).
func (s *Server) Queued() int { return int(s.run.queued.Load()) }

// recordFailure remembers err as the last failure to reach remote.
func (s *Server) recordFailure(remote string, err error) {
	if remote == "" {
		return
	}
	r := &s.run
	now := s.clock.Now()
	r.mu.Lock()
	if _, ok := r.failures[remote]; !ok && len(r.failures) >= maxFailures {
		var oldest string
		var at time.Time
		for d, f := range r.failures {
			if oldest == "" || f.at.Before(at) {
				oldest, at = d, f.at
			}
		}
		delete(r.failures, oldest)
	}
	r.failures[remote] = failure{err: err, at: now}
	r.mu.Unlock()
}

// clearFailure forgets the last failure to reach remote (a stream to it is
// established).
func (s *Server) clearFailure(remote string) {
	r := &s.run
	r.mu.Lock()
	delete(r.failures, remote)
	r.mu.Unlock()
}

// event calls the StreamEvent hook, if any; no lock may be held.
func (s *Server) event(ev StreamEvent) {
	if s.StreamEvent != nil {
		s.StreamEvent(ev)
	}
}

// streamEvent reports an established or closed stream.
func (s *Server) streamEvent(t StreamEventType, st *stream, err error) {
	if t == StreamEstablished && st.dir == Outbound {
		s.clearFailure(st.remote)
	}
	if s.StreamEvent == nil {
		return
	}
	ev := StreamEvent{Type: t, Direction: st.dir, Local: st.local, Remote: st.remote, Partner: st.partner, Err: err}
	if st.rt != nil {
		st.rt.mu.Lock()
		ev.Auth = st.rt.auth
		st.rt.mu.Unlock()
	}
	s.event(ev)
}

// failedEvent reports a stream that could not be opened or accepted.
func (s *Server) failedEvent(dir Direction, local, remote string, err error) {
	var ne *NegotiationError
	if errors.As(err, &ne) {
		local, remote = cmp.Or(ne.Local, local), cmp.Or(ne.Remote, remote)
	}
	if dir == Outbound {
		s.recordFailure(remote, err)
	}
	if s.StreamEvent == nil {
		return
	}
	ev := StreamEvent{Type: StreamFailed, Direction: dir, Local: local, Remote: remote, Err: err}
	if remote != "" {
		if rem, rerr := s.remote(remote); rerr == nil {
			ev.Partner = partnerKey(rem)
		}
	}
	s.event(ev)
}
