//go:build linux

package s2s

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// hibernationSupported: Linux has epoll.
const hibernationSupported = true

// hibernation is a Server's poller of hibernated streams: one epoll
// instance, one eventfd that wakes the poller when the Server begins to
// stop, and one goroutine, started with the first stream that hibernates
// and ended by Shutdown or Close (or an epoll failure), which then wakes
// every stream it holds. The epoll data of a connection is its stream's
// hibernation id, never its descriptor: descriptors are reused.
type hibernation struct {
	next atomic.Uint64 // hibernation ids; 0 is the eventfd's

	mu      sync.Mutex
	started bool // the poller goroutine was started
	stopped bool // it ended or is ending: no stream parks any more
	epfd    int
	efd     int                // the eventfd, -1 once closed
	parked  map[uint64]*stream // hibernated streams by id
}

// pollEvents is how many readiness events one epoll_wait returns at most.
const pollEvents = 128

// startLocked creates the epoll instance and starts the poller; hib.mu is
// held. It reports false (and the stream does not park) when the kernel
// refuses.
func (s *Server) startPollerLocked() bool {
	h := &s.hib
	if h.started {
		return !h.stopped
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		h.started, h.stopped = true, true
		s.log.LogAttrs(s.run.ctx, slog.LevelWarn, "s2s idle streams keep their reader: epoll_create1 failed", slog.Any("err", err))
		return false
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err == nil {
		ev := unix.EpollEvent{Events: unix.EPOLLIN}
		if err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
			_ = unix.Close(efd)
		}
	}
	if err != nil {
		_ = unix.Close(epfd)
		h.started, h.stopped = true, true
		s.log.LogAttrs(s.run.ctx, slog.LevelWarn, "s2s idle streams keep their reader: eventfd failed", slog.Any("err", err))
		return false
	}
	h.started, h.epfd, h.efd = true, epfd, efd
	h.parked = make(map[uint64]*stream)
	// The parking reader is counted in s.run.wg: this Add is never at zero.
	s.run.wg.Go(s.poll)
	context.AfterFunc(s.run.stopping, s.signalPoller)
	return true
}

// signalPoller wakes the poller (the Server begins to stop).
func (s *Server) signalPoller() {
	h := &s.hib
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.efd < 0 {
		return
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(h.efd, one[:])
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
	for {
		n, err := unix.EpollWait(h.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			s.log.LogAttrs(s.run.ctx, slog.LevelWarn, "s2s poller of idle streams failed; they keep their reader from now on", slog.Any("err", err))
			break
		}
		stop := false
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == 0 {
				stop = true
				continue
			}
			s.wake(id)
		}
		if stop {
			break
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	for id, st := range h.parked {
		delete(h.parked, id)
		s.wakeLocked(st)
	}
	_ = unix.Close(h.efd)
	h.efd = -1
	_ = unix.Close(h.epfd)
}

// count is how many streams hibernate.
func (h *hibernation) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.parked)
}
