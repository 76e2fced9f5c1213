package s2s

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	streamerr "mellium.im/xmpp/stream"

	"github.com/xmppfed/xmppfed/internal/wire"
	"github.com/xmppfed/xmppfed/policy"
)

// ErrServerClosed is returned by Serve, ServeDirectTLS and Send after
// Shutdown or Close.
var ErrServerClosed = errors.New("s2s: server closed")

// serverState is the running state of a Server: listeners, streams,
// the outbound pool and the goroutines to wait for.
type serverState struct {
	once   sync.Once
	ctx    context.Context // ended by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the server started

	// Lock order: an outPair's mu, then mu, then a stream's mu (st.mu)
	// or its runState's mu; never the other way round. A stream's
	// authorize takes mu only after releasing st.mu.
	mu         sync.Mutex
	closed     bool // Shutdown or Close called: no new streams or stanzas
	listeners  map[net.Listener]struct{}
	streams    map[*stream]struct{} // registered streams
	perPartner map[string]int       // registered streams per partner (partnerKey)
	// Indexes of the registered streams, kept exact by register,
	// unregister and authorize, so that finding a stream for a pair, a
	// domain or a partner looks at the streams concerned only, not at all
	// of them: by the peer's domain (st.remote), by partner key
	// (st.partner, what perPartner counts) for the streams whose partner
	// key is not their domain (the others are found under byRemote), and
	// by each pair we may send for on the stream (st.send).
	byRemote  map[string][]*stream
	byPartner map[string][]*stream
	bySend    map[pair][]*stream
	// multi holds the registered streams that carry a pair (either way)
	// for another domain than the one they were admitted for: the only
	// ones the policy watcher must check pair by pair.
	multi    map[*stream]struct{}
	pending  map[net.Conn]uint64 // inbound connections negotiating, by accept order
	accepted uint64              // inbound connections accepted so far (pending's order)
	evicted  uint64              // pending connections closed by Limits.Negotiating since evictLog
	evictLog time.Time           // when that was last logged
	pairs    map[pair]*outPair   // the outbound pool
	pings    map[string]*stream  // outstanding XEP-0199 pings by id
	dials    map[string]int      // dials in progress per partner (partnerKey)
	dialsAll int                 // dials in progress in total
	shutdown chan struct{}       // closed by Shutdown and Close
	// stopping ends with shutdown: it ends waits that must not hold a
	// graceful Shutdown up (the partner's rate limiter).
	stopping   context.Context
	stopCancel context.CancelFunc
	poolc      chan struct{}       // signalled when the pool changes
	rand       func(n int64) int64 // jitter source
	bufs       wire.BufferPool     // read/write buffers of established streams
	failures   map[string]failure  // last failed attempt per remote domain (LastFailure)
	queued     atomic.Int64        // stanzas in the pairs' queues (Queued)
	// slots holds a token per outbound stream being established by the
	// pool (Limits.Establishing; nil: no bound).
	slots chan struct{}
}

// start initialises the Server (defaults, then the running state) once.
func (s *Server) start() {
	s.init()
	r := &s.run
	r.once.Do(func() {
		r.ctx, r.cancel = context.WithCancel(context.Background())
		r.listeners = make(map[net.Listener]struct{})
		r.streams = make(map[*stream]struct{})
		r.perPartner = make(map[string]int)
		r.byRemote = make(map[string][]*stream)
		r.byPartner = make(map[string][]*stream)
		r.bySend = make(map[pair][]*stream)
		r.multi = make(map[*stream]struct{})
		r.pending = make(map[net.Conn]uint64)
		r.pairs = make(map[pair]*outPair)
		r.pings = make(map[string]*stream)
		r.dials = make(map[string]int)
		r.failures = make(map[string]failure)
		r.shutdown = make(chan struct{})
		r.poolc = make(chan struct{}, 1)
		if s.limits.Establishing > 0 {
			r.slots = make(chan struct{}, s.limits.Establishing)
		}
		if r.rand == nil {
			r.rand = randInt63n
		}
		r.stopping, r.stopCancel = context.WithCancel(r.ctx)
		if s.Policy != nil {
			// Live changes (REFERENCE §5.1 #16): one goroutine per Server
			// re-checks the streams at each configuration change.
			r.wg.Go(s.watchPolicy)
		}
	})
}

// Serve accepts inbound streams on l (the STARTTLS style of RFC 6120,
// usually port 5269) until Shutdown or Close, when it returns
// ErrServerClosed; it returns other errors from l.Accept. Each connection
// is negotiated and then served in its own goroutine. l is closed when
// Serve returns.
func (s *Server) Serve(l net.Listener) error { return s.serve(l, false) }

// ServeDirectTLS is Serve for direct TLS listeners (XEP-0368, usually port
// 5270): TLS starts with the first byte, without STARTTLS.
func (s *Server) ServeDirectTLS(l net.Listener) error { return s.serve(l, true) }

func (s *Server) serve(l net.Listener, directTLS bool) error {
	if l == nil {
		return errors.New("s2s: Serve: nil listener")
	}
	s.start()
	r := &s.run
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		_ = l.Close()
		return ErrServerClosed
	}
	r.listeners[l] = struct{}{}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.listeners, l)
		r.mu.Unlock()
		_ = l.Close()
	}()
	var delay time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Temporary accept failure (for example EMFILE surfaced as
				// a timeout): back off like net/http, up to 1 s.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.LogAttrs(r.ctx, slog.LevelWarn, "s2s accept error; retrying", slog.Any("err", err), slog.Duration("delay", delay))
				select {
				case <-time.After(delay):
				case <-r.ctx.Done():
				}
				continue
			}
			return err
		}
		delay = 0
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			_ = conn.Close()
			return ErrServerClosed
		}
		if max := s.limits.Negotiating; max > 0 && len(r.pending) >= max {
			s.evictOldestLocked()
		}
		r.accepted++
		r.pending[conn] = r.accepted
		r.wg.Add(1)
		r.mu.Unlock()
		go func() {
			defer r.wg.Done()
			s.serveConn(conn, directTLS)
		}()
	}
}

// evictOldestLocked closes the inbound connection that has been
// negotiating longest (Limits.Negotiating); s.run.mu is held. Its
// negotiation fails on the closed connection and ends as usual.
func (s *Server) evictOldestLocked() {
	var oldest net.Conn
	var seq uint64
	for c, n := range s.run.pending {
		if oldest == nil || n < seq {
			oldest, seq = c, n
		}
	}
	if oldest == nil {
		return
	}
	delete(s.run.pending, oldest)
	_ = oldest.Close()
	// A flood evicts on every accept: warn once a minute at most (with
	// the count since the last warning), so logging is not the flood's
	// amplifier.
	r := &s.run
	r.evicted++
	if now := s.clock.Now(); now.Sub(r.evictLog) >= time.Minute {
		s.log.LogAttrs(r.ctx, slog.LevelWarn, "s2s: too many inbound connections negotiating; closed the oldest",
			slog.String("remote_addr", oldest.RemoteAddr().String()), slog.Int("limit", s.limits.Negotiating),
			slog.Uint64("closed_since_last_warning", r.evicted))
		r.evictLog, r.evicted = now, 0
	}
}

func (s *Server) isClosed() bool {
	s.run.mu.Lock()
	defer s.run.mu.Unlock()
	return s.run.closed
}

// serveConn negotiates an inbound connection (bounded by the negotiation
// timeout) and runs the stream.
func (s *Server) serveConn(conn net.Conn, directTLS bool) {
	r := &s.run
	ctx, cancel := context.WithCancelCause(r.ctx)
	t := s.negotiationTimer(cancel)
	st, err := s.acceptStream(ctx, conn, directTLS)
	if t != nil {
		t.Stop()
	}
	cancel(nil)
	r.mu.Lock()
	delete(r.pending, conn)
	r.mu.Unlock()
	if err != nil {
		_ = conn.Close()
		s.log.LogAttrs(r.ctx, slog.LevelInfo, "s2s inbound negotiation failed",
			slog.String("remote_addr", conn.RemoteAddr().String()), slog.Any("err", err))
		s.failedEvent(Inbound, "", "", err)
		return
	}
	if err := s.register(st); err != nil {
		// Normally the negotiation refuses right after the header; this
		// catches a limit reached, or a policy change, while it ran.
		if st.w != nil {
			_ = st.w.WriteStreamError(registerCondition(err), err.Error())
		}
		_ = st.conn.Close()
		st.closeNeg(err)
		s.failedEvent(Inbound, st.local, st.remote, err)
		return
	}
	_ = s.runStream(st)
}

// errNegotiationTimeout is the cause of a negotiation context ended by
// the gateway's StreamEstablishmentTimeout.
var errNegotiationTimeout = errors.New("s2s: negotiation timeout")

// negotiationTimer cancels a negotiation after the gateway's
// StreamEstablishmentTimeout (REFERENCE §5.5 #49) on the Server's clock
// (nil when the timeout is disabled).
func (s *Server) negotiationTimer(cancel context.CancelCauseFunc) interface{ Stop() bool } {
	d := s.gateway().StreamEstablishmentTimeout
	if d <= 0 {
		return nil
	}
	return s.clock.AfterFunc(d, func() {
		cancel(fmt.Errorf("%w after %v", errNegotiationTimeout, d))
	})
}

// registerCondition is the stream error for a register failure.
func registerCondition(err error) streamerr.Error {
	var d *policy.Denial
	switch {
	case errors.As(err, &d):
		return streamerr.PolicyViolation
	case errors.Is(err, ErrServerClosed):
		return streamerr.SystemShutdown
	}
	return streamerr.ResourceConstraint
}

// register counts st against the gateway's ConnectionLimit and the
// partner's (REFERENCE §5.5 #47-48: all of a partner's domains, both
// directions, together); it returns an error wrapping
// streamerr.ResourceConstraint when either is reached, the
// *policy.Denial when the policy no longer admits st's remote domain (it
// changed during negotiation), and ErrServerClosed after Shutdown or
// Close. Registering a stream twice is a no-op.
func (s *Server) register(st *stream) error {
	s.start()
	rt := s.newRunState(st)
	r := &s.run
	r.mu.Lock()
	already := rt.registered
	r.mu.Unlock()
	if already {
		return nil // runStream checks the policy again
	}
	if st.rem == nil {
		// Never admitted (cannot happen once negotiated): refuse.
		return &policy.Denial{Rule: policy.RuleNotPartner, Domain: st.remote}
	}
	if _, err := s.remote(st.rem.Domain); err != nil {
		return err
	}
	gw := s.gateway()
	r.mu.Lock()
	defer r.mu.Unlock()
	if rt.registered {
		return nil
	}
	// During Shutdown, outbound streams still open to deliver what is
	// queued; inbound ones are refused.
	if r.closed && (st.dir != Outbound || r.ctx.Err() != nil) {
		return ErrServerClosed
	}
	if gw.ConnectionLimit >= 0 && len(r.streams) >= gw.ConnectionLimit {
		return fmt.Errorf("%w: %d streams open (the gateway's ConnectionLimit)", streamerr.ResourceConstraint, len(r.streams))
	}
	if lim := st.rem.ConnectionLimit; lim >= 0 && r.perPartner[st.partner] >= lim {
		return fmt.Errorf("%w: %d streams open with partner %s (its connection limit)", streamerr.ResourceConstraint, r.perPartner[st.partner], st.partner)
	}
	rt.registered = true
	r.streams[st] = struct{}{}
	r.perPartner[st.partner]++
	addIndex(r.byRemote, st.remote, st)
	if st.partner != st.remote {
		addIndex(r.byPartner, st.partner, st)
	}
	multi := st.rem.Domain != st.remote
	st.mu.Lock()
	for p := range st.send.all() {
		addIndex(r.bySend, p, st)
		multi = multi || p.remote != st.remote
	}
	for p := range st.recv.all() {
		multi = multi || p.remote != st.remote
	}
	st.mu.Unlock()
	if multi {
		r.multi[st] = struct{}{}
	}
	return nil
}

// unregister undoes register. A stream that never ran (registered from
// its header, then its negotiation failed) gives back to the pool what was
// queued on it: with bidi it may have been chosen to send on before it
// failed, and endStream, which gives back the queue of a stream that ran,
// is not called for it.
func (s *Server) unregister(st *stream) {
	if s.unindex(st) {
		s.giveBackUnrun(st)
	}
}

// unindex removes st from the registered streams and reports whether it
// was registered.
func (s *Server) unindex(st *stream) bool {
	r := &s.run
	r.mu.Lock()
	defer r.mu.Unlock()
	if st.rt == nil || !st.rt.registered {
		return false
	}
	st.rt.registered = false
	delete(r.streams, st)
	if r.perPartner[st.partner]--; r.perPartner[st.partner] <= 0 {
		delete(r.perPartner, st.partner)
	}
	removeIndex(r.byRemote, st.remote, st)
	if st.partner != st.remote {
		removeIndex(r.byPartner, st.partner, st)
	}
	st.mu.Lock()
	for p := range st.send.all() {
		removeIndex(r.bySend, p, st)
	}
	st.mu.Unlock()
	delete(r.multi, st)
	return true
}

// giveBackUnrun ends a stream that never ran for the pool: no stanza is
// queued on it any more, those queued go back to their pairs (which
// reconnect), and no pair keeps it as its stream. A stream that ran is
// left to endStream.
func (s *Server) giveBackUnrun(st *stream) {
	rt := st.rt
	rt.mu.Lock()
	if rt.running {
		rt.mu.Unlock()
		return
	}
	rt.closing = true
	var back []*Stanza
	for _, it := range rt.q {
		if it.stz != nil {
			back = append(back, it.stz)
		}
	}
	clear(rt.q)
	rt.q = nil
	rt.mu.Unlock()
	s.streamLost(st, back, errors.New("the stream failed during its negotiation"))
}

// indexPair records in the Server's indexes that p was authorized on st
// (send: for us to send), when st is registered (register indexes the
// pairs authorized before). The caller holds no lock.
func (s *Server) indexPair(st *stream, p pair, send bool) {
	r := &s.run
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.streams[st]; !ok {
		return
	}
	if send {
		addIndex(r.bySend, p, st)
	}
	if p.remote != st.remote {
		r.multi[st] = struct{}{}
	}
}

// addIndex adds st to m[k] once; s.run.mu is held.
func addIndex[K comparable](m map[K][]*stream, k K, st *stream) {
	l := m[k]
	if slices.Contains(l, st) {
		return
	}
	m[k] = append(l, st)
}

// removeIndex removes st from m[k], and the key once its list is empty;
// s.run.mu is held.
func removeIndex[K comparable](m map[K][]*stream, k K, st *stream) {
	l := m[k]
	i := slices.Index(l, st)
	if i < 0 {
		return
	}
	last := len(l) - 1
	l[i] = l[last]
	l[last] = nil
	if last == 0 {
		delete(m, k)
		return
	}
	m[k] = l[:last]
}

// reserveDial counts a dial to rem's partner when one more stream fits the
// limits, and returns the partner key to release it with; the caller
// decrements r.dials[key] and r.dialsAll when the dial ends.
func (s *Server) reserveDial(rem *policy.Remote) (string, error) {
	gw := s.gateway()
	key := partnerKey(rem)
	r := &s.run
	r.mu.Lock()
	defer r.mu.Unlock()
	if gw.ConnectionLimit >= 0 && len(r.streams)+r.dialsAll >= gw.ConnectionLimit {
		return "", fmt.Errorf("%w: %d streams open (the gateway's ConnectionLimit)", streamerr.ResourceConstraint, len(r.streams))
	}
	if n := r.perPartner[key] + r.dials[key]; rem.ConnectionLimit >= 0 && n >= rem.ConnectionLimit {
		return "", fmt.Errorf("%w: %d streams open with partner %s (its connection limit)", streamerr.ResourceConstraint, n, key)
	}
	r.dials[key]++
	r.dialsAll++
	return key, nil
}

// outboundFor returns an established stream we may send on for (local,
// remote) — outbound, or inbound with bidi — or nil. A stream to another
// domain carries the pair only when it was authorized on it and that
// domain still belongs to the same partner (REFERENCE §5.3 #37). It looks
// only at the streams authorized for the pair (the bySend index).
func (s *Server) outboundFor(local, remote string) *stream {
	s.start()
	p := pair{local: local, remote: remote}
	r := &s.run
	r.mu.Lock()
	var other []*stream
	for _, st := range r.bySend[p] {
		if st.canSend(p) && st.rt.accepting() {
			if st.remote == remote {
				r.mu.Unlock()
				return st
			}
			other = append(other, st)
		}
	}
	r.mu.Unlock()
	if len(other) == 0 {
		return nil
	}
	rem, err := s.remote(remote)
	if err != nil {
		return nil
	}
	for _, st := range other {
		if rem.SamePartner(st.remote) {
			return st
		}
	}
	return nil
}

// accepting reports whether the stream still takes stanzas.
func (rt *runState) accepting() bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return !rt.closing && !rt.failed
}

// Shutdown stops the Server gracefully: it closes the listeners, makes
// Send return ErrServerClosed, waits for queued stanzas to be delivered
// or bounced (streams being opened finish or fail), ends every stream with
// </stream:stream> after its queue is written, and waits for every
// goroutine. When ctx ends first, it calls Close and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.start()
	r := &s.run
	r.mu.Lock()
	first := !r.closed
	r.closed = true
	for l := range r.listeners {
		_ = l.Close()
	}
	if first {
		close(r.shutdown)
		r.stopCancel()
	}
	r.mu.Unlock()
	// Wait for the pool: every pair's queue empty and no dial running.
	// Pairs wake us through poolIdle.
	for {
		if s.poolIdle() {
			break
		}
		select {
		case <-ctx.Done():
			_ = s.Close()
			return ctx.Err()
		case <-s.poolChanged():
		}
	}
	r.mu.Lock()
	for st := range r.streams {
		st.closeGracefully()
	}
	for c := range r.pending {
		_ = c.Close() // still negotiating: nothing of ours to deliver
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	for {
		select {
		case <-done:
			r.cancel()
			return nil
		case <-ctx.Done():
			_ = s.Close()
			<-done
			return ctx.Err()
		case <-s.poolChanged():
			// A stream that ended without a graceful close (XEP-0198:
			// unacknowledged stanzas) requeued and the pool opened a
			// new one: once the pool is idle again, close that one too.
			if s.poolIdle() {
				r.mu.Lock()
				for st := range r.streams {
					st.closeGracefully()
				}
				r.mu.Unlock()
			}
		}
	}
}

// Close stops the Server at once: listeners and connections are closed,
// queued stanzas are bounced (remote-server-timeout) and Close waits for
// the Server's goroutines, which end promptly (a Handler call in progress
// sees its context cancelled and must return).
func (s *Server) Close() error {
	s.start()
	r := &s.run
	r.mu.Lock()
	first := !r.closed
	r.closed = true
	if first {
		close(r.shutdown)
		r.stopCancel()
	}
	for l := range r.listeners {
		_ = l.Close()
	}
	for c := range r.pending {
		_ = c.Close()
	}
	for st := range r.streams {
		_ = st.conn.Close()
	}
	r.mu.Unlock()
	r.cancel()
	s.bounceAll(errors.New("the server closed before the stanza could be delivered"))
	r.wg.Wait()
	return nil
}

// StreamInfo describes one established stream.
type StreamInfo struct {
	Direction Direction // who opened the connection
	Local     string    // our domain in the stream header
	Remote    string    // the peer's domain in the stream header
	// Partner is the main domain of the partner Remote belongs to (Remote
	// itself under open federation).
	Partner    string
	RemoteAddr string     // the peer's network address
	TLSVersion string     // "" without TLS, else e.g. "TLS 1.3"
	Auth       AuthMethod // how the first pair was authenticated
	// Identity is the certificate identity of the peer that matched
	// (certs.Identity.String()), "" when none was verified.
	Identity              string
	Bidi                  bool      // XEP-0288: the stream carries both directions
	SendPairs             []string  // "local->remote" pairs we may send for
	RecvPairs             []string  // "remote->local" pairs the peer may send for
	Since                 time.Time // when the stream was established
	StanzasIn, StanzasOut uint64    // stanzas received and written
}

// Stats is a snapshot of a Server's streams and queues.
type Stats struct {
	Streams []StreamInfo // sorted by Remote, Local, Direction
	Queued  int          // stanzas waiting in the outbound pool
}

// Stats returns a snapshot of the established streams and the number of
// queued stanzas.
func (s *Server) Stats() Stats {
	s.start()
	r := &s.run
	r.mu.Lock()
	sts := make([]*stream, 0, len(r.streams))
	for st := range r.streams {
		sts = append(sts, st)
	}
	pairs := make([]*outPair, 0, len(r.pairs))
	for _, op := range r.pairs {
		pairs = append(pairs, op)
	}
	r.mu.Unlock()
	var out Stats
	for _, st := range sts {
		// A stream registered during negotiation (inbound streams are
		// counted from their header) is not established yet: its
		// negotiation state is still being written.
		st.rt.mu.Lock()
		running := st.rt.running
		st.rt.mu.Unlock()
		if running {
			out.Streams = append(out.Streams, s.streamInfo(st))
		}
	}
	for _, op := range pairs {
		op.mu.Lock()
		out.Queued += len(op.queue)
		op.mu.Unlock()
	}
	sort.Slice(out.Streams, func(i, j int) bool {
		a, b := out.Streams[i], out.Streams[j]
		if a.Remote != b.Remote {
			return a.Remote < b.Remote
		}
		if a.Local != b.Local {
			return a.Local < b.Local
		}
		return a.Direction < b.Direction
	})
	return out
}

func (s *Server) streamInfo(st *stream) StreamInfo {
	info := StreamInfo{
		Direction: st.dir, Local: st.local, Remote: st.remote, Partner: st.partner,
		Bidi: st.bidi, Since: st.created,
	}
	if st.conn != nil && st.conn.RemoteAddr() != nil {
		info.RemoteAddr = st.conn.RemoteAddr().String()
	}
	if st.tls != nil {
		info.TLSVersion = tlsVersionName(st.tls.Version)
	}
	if st.peer != nil {
		info.Identity = st.peer.Matched.String()
	}
	if st.rt != nil {
		st.rt.mu.Lock()
		info.Auth = st.rt.auth
		st.rt.mu.Unlock()
		info.StanzasIn, info.StanzasOut = st.rt.in.Load(), st.rt.out.Load()
	}
	st.mu.Lock()
	for p := range st.send.all() {
		info.SendPairs = append(info.SendPairs, p.local+"->"+p.remote)
	}
	for p := range st.recv.all() {
		info.RecvPairs = append(info.RecvPairs, p.remote+"->"+p.local)
	}
	st.mu.Unlock()
	sort.Strings(info.SendPairs)
	sort.Strings(info.RecvPairs)
	return info
}
