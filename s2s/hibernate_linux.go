//go:build linux

package s2s

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// hibernationSupported: Linux has epoll.
const hibernationSupported = true

// hibernation is a Server's poller of hibernated streams: one epoll
// instance and one goroutine, started with the first stream that
// hibernates and ended by Shutdown or Close (or an epoll failure), which
// then wakes every stream it holds. The epoll descriptor is non-blocking
// and waited on through the runtime's own netpoller (an os.File), so the
// poller holds no OS thread while it waits, and a read deadline ends the
// wait when the Server begins to stop. The epoll data of a connection is
// its stream's hibernation id, never its descriptor: descriptors are
// reused.
type hibernation struct {
	next atomic.Uint64 // hibernation ids, from 1
	off  atomic.Bool   // stopped, readable without mu

	mu      sync.Mutex
	started bool // the poller goroutine was started
	stopped bool // it ended or is ending: no stream parks any more
	epfd    int
	ep      *os.File           // epfd, for the runtime's netpoller
	parked  map[uint64]*stream // hibernated streams by id
}

// pollEvents is how many readiness events one epoll_wait returns at most
// (the poller asks again until none is left); small, as the array lives on
// the poller's stack.
const pollEvents = 32

// startPollerLocked creates the epoll instance and starts the poller;
// hib.mu is held. It reports false (and the stream does not park) when the
// kernel refuses.
func (s *Server) startPollerLocked() bool {
	h := &s.hib
	if h.started {
		return !h.stopped
	}
	h.started = true
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err == nil {
		if err = unix.SetNonblock(epfd, true); err != nil {
			_ = unix.Close(epfd)
		}
	}
	if err != nil {
		h.stopped = true
		h.off.Store(true)
		s.log.LogAttrs(s.run.ctx, slog.LevelWarn, "s2s idle streams keep their reader: no epoll instance", slog.Any("err", err))
		return false
	}
	// Non-blocking: os.NewFile registers it with the runtime's netpoller.
	h.epfd, h.ep = epfd, os.NewFile(uintptr(epfd), "s2s-hibernation-epoll")
	h.parked = make(map[uint64]*stream)
	// The parking reader is counted in s.run.wg: this Add is never at zero.
	s.run.wg.Go(s.poll)
	context.AfterFunc(s.run.stopping, func() {
		// Ends the poller's wait; the poller closes the file itself.
		_ = h.ep.SetReadDeadline(time.Unix(1, 0))
	})
	return true
}

// park hands st, whose reader is about to exit, to the poller. It
// reports false when st cannot hibernate (the reader goes on reading).
// Once it returned true another goroutine may already read st.
func (s *Server) park(st *stream) bool {
	c := tcpConn(st)
	if c == nil {
		return false
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	h := &s.hib
	id := h.next.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock() // the poller cannot end (and close epfd) meanwhile
	if s.run.stopping.Err() != nil || !s.startPollerLocked() {
		return false
	}
	var cerr error
	err = rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT,
			Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
		cerr = unix.EpollCtl(h.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err != nil || cerr != nil {
		return false // closed meanwhile: the reader sees why
	}
	// Ready already (bytes arrived since the last read): the event is
	// reported at once, and waits for h.mu.
	rt := st.rt
	rt.mu.Lock()
	rt.hibernated, rt.hibID = true, id
	rt.mu.Unlock()
	h.parked[id] = st
	return true
}

// wake takes the stream with hibernation id out of the poller (if it is
// still there: exactly one waker finds it), deregisters its connection
// and starts a reader goroutine for it.
func (s *Server) wake(id uint64) {
	h := &s.hib
	h.mu.Lock()
	defer h.mu.Unlock() // held until the reader is counted in s.run.wg
	st := h.parked[id]
	if st == nil {
		return
	}
	delete(h.parked, id)
	s.wakeLocked(st)
}

// wakeLocked deregisters st's connection (before anyone closes it: a
// closed descriptor number may already be another connection's) and
// starts its reader; hib.mu is held, so the poller, which is counted in
// s.run.wg, outlives the Add.
func (s *Server) wakeLocked(st *stream) {
	if c := tcpConn(st); c != nil {
		if rc, err := c.SyscallConn(); err == nil {
			epfd := s.hib.epfd
			// A closed connection fails Control: the kernel dropped its
			// registration when the descriptor was closed.
			_ = rc.Control(func(fd uintptr) {
				_ = unix.EpollCtl(epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
			})
		}
	}
	rt := st.rt
	now := s.clock.Now()
	rt.mu.Lock()
	rt.hibernated, rt.hibBase = false, now
	rt.mu.Unlock()
	s.run.wg.Go(func() { s.resume(st) })
}

// poll is the poller goroutine: it wakes each stream whose connection
// became readable (or hung up) until the Server begins to stop, then
// wakes every stream it still holds and ends.
func (s *Server) poll() {
	h := &s.hib
	events := make([]unix.EpollEvent, pollEvents)
	rc, err := h.ep.SyscallConn()
	if err == nil {
		var werr error
		err = rc.Read(func(fd uintptr) bool {
			for {
				n, err := unix.EpollWait(int(fd), events, 0)
				if errors.Is(err, unix.EINTR) {
					continue
				}
				if err != nil {
					werr = err
					return true
				}
				if n == 0 {
					// Nothing ready: wait in the netpoller for the next
					// event (or the deadline that stops us).
					return false
				}
				for _, ev := range events[:n] {
					s.wake(uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32)
				}
			}
		})
		if err == nil {
			err = werr
		}
	}
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		s.log.LogAttrs(s.run.ctx, slog.LevelWarn, "s2s poller of idle streams failed; they keep their reader from now on", slog.Any("err", err))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	h.off.Store(true)
	for id, st := range h.parked {
		delete(h.parked, id)
		s.wakeLocked(st)
	}
	_ = h.ep.Close()
}

// count is how many streams hibernate.
func (h *hibernation) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.parked)
}

// disabled reports whether no stream can hibernate any more (the poller
// ended or could not start).
func (h *hibernation) disabled() bool { return h.off.Load() }
