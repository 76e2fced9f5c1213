package s2s

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"time"
)

// Hibernation: an established stream with nothing to read for a while
// keeps no reader goroutine (and no stack). The stream's timer (tick)
// asks its read loop to hibernate by setting a read deadline in the past;
// the read loop, woken by os.ErrDeadlineExceeded, checks that nothing is
// buffered (crypto/tls treats a timeout as temporary and keeps its state,
// so a later read resumes where this one stopped), gives its scratch
// space back, hands the connection to the Server's poller
// (hibernate_linux.go: one epoll instance and one goroutine per Server)
// and exits. When the connection becomes readable, or the stream must end
// (a stream error, the writer failing, Shutdown or Close), a fresh reader
// goroutine takes over (resume). Where the poller cannot watch the
// connection (no TLS over TCP, another OS) the reader stays parked in its
// read as before.
//
// Ownership: the read loop's state (st.r, rt.addrs) belongs to whichever
// goroutine reads; a parking reader touches none of it after handing the
// stream over, and exactly one waker (the one that takes the stream out
// of the poller's set) starts the next reader.

// hibernateAfter is how long a stream receives nothing before its reader
// hibernates, on the Server's clock.
const hibernateAfter = 1500 * time.Millisecond

// hibernateDeadline is the read deadline that interrupts a reader to make
// it hibernate: long past.
func hibernateDeadline() time.Time { return time.Unix(1, 0) }

// tcpConn returns the TCP connection under st's TLS connection, nil when
// st is not TLS over TCP (only those hibernate).
func tcpConn(st *stream) *net.TCPConn {
	tc, ok := st.conn.(*tls.Conn)
	if !ok {
		return nil
	}
	c, _ := tc.NetConn().(*net.TCPConn)
	return c
}

// mayHibernate reports whether st's reader could hibernate at all: not
// once the Server stops or its poller failed (tick would ask in vain).
func (s *Server) mayHibernate(st *stream) bool {
	return hibernationSupported && !s.hib.disabled() && s.run.stopping.Err() == nil &&
		st.conn != nil && tcpConn(st) != nil
}

// hibernateDueLocked reports whether tick should ask st's reader to
// hibernate now, and otherwise sets *at to when it would be due; rt.mu is
// held.
func (s *Server) hibernateDueLocked(st *stream, now time.Time, mayHib bool) (due bool, at time.Time) {
	rt := st.rt
	if !mayHib || rt.hibReq || rt.hibernated || rt.closing || rt.failed || rt.ended {
		return false, time.Time{}
	}
	base := rt.lastRecv
	if rt.hibBase.After(base) {
		base = rt.hibBase
	}
	at = base.Add(hibernateAfter)
	return !now.Before(at), at
}

// requestHibernateLocked interrupts st's reader so that it hibernates;
// rt.mu is held (the reader clears the deadline under it too).
func (s *Server) requestHibernateLocked(st *stream) {
	rt := st.rt
	if err := st.conn.SetReadDeadline(hibernateDeadline()); err != nil {
		return // closed: the reader sees that by itself
	}
	rt.hibReq = true
}

// hibernate answers a read error err of st's read loop: it reports
// handled when err is the interruption requested by tick (the reader then
// goes on reading when parked is false) and parked when the stream was
// handed to the poller (the reader must return at once, touching nothing
// of the stream's reading state).
func (s *Server) hibernate(st *stream, err error) (handled, parked bool) {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false, false
	}
	rt := st.rt
	now := s.clock.Now()
	rt.mu.Lock()
	if !rt.hibReq {
		rt.mu.Unlock()
		return false, false // a deadline we did not set: a real error
	}
	rt.hibReq = false
	derr := st.conn.SetReadDeadline(time.Time{})
	rt.hibBase = now
	ok := derr == nil && !rt.closing && !rt.failed && !rt.ended && rt.ctx.Err() == nil &&
		st.r.Buffered() == 0
	if ok && !rt.writing && len(rt.q) == 0 {
		// The writer's arrays from the last burst (up to 64 items each)
		// are not kept either; nor an empty list of unacknowledged
		// stanzas that still holds its array.
		rt.q, rt.spare = nil, nil
		if len(rt.unacked) == 0 {
			rt.unacked = nil
		}
	}
	rt.mu.Unlock()
	if !ok {
		// Something is half read, or the stream is ending: go on reading
		// (tick asks again after hibernateAfter).
		return true, false
	}
	// Give back what only a reading stream needs. A fresh reader
	// allocates it again.
	rt.addrs, rt.dd = nil, nil
	st.r.Shrink()
	if !s.park(st) {
		return true, false
	}
	return true, true
}

// wakeStream takes st out of hibernation, if it is hibernating, before
// its connection is closed: the poller lets go of the connection and a
// reader goroutine starts, which sees the closed connection and ends the
// stream.
func (s *Server) wakeStream(st *stream) {
	rt := st.rt
	rt.mu.Lock()
	id, h := rt.hibID, rt.hibernated
	rt.mu.Unlock()
	if h {
		s.wake(id)
	}
}

// resume is the goroutine of a reader started for a hibernated stream:
// the timer is set again (hibernation is due anew), then the read loop
// runs until the stream hibernates again or ends.
func (s *Server) resume(st *stream) {
	rt := st.rt
	d := s.nextTick(st)
	rt.mu.Lock()
	if rt.timer != nil && !rt.ended {
		rt.timer.Reset(d)
	}
	rt.mu.Unlock()
	parked, err := s.readLoop(st)
	if parked {
		return
	}
	s.endStream(st, err)
}
