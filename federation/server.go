package federation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"sync"

	streamerr "mellium.im/xmpp/stream"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
	"github.com/xmppfed/xmppfed/translate"
)

// ErrServerClosed is returned by Serve, ListenAndServe and Send after
// Shutdown or Close.
var ErrServerClosed = errors.New("federation: server closed")

// errNoBackend is returned by Serve and Send when Server.Backend is nil.
var errNoBackend = errors.New("federation: Server.Backend is nil (required)")

// state is the run-time state of a Server, built at first use.
type state struct {
	once     sync.Once
	s2s      *s2s.Server
	tr       *translate.Translator
	presence translate.PresenceMapper
	log      *slog.Logger
	domains  map[string]bool // Server.Domains as A-labels
	// ctx ends at Close (or at the end of Shutdown): it bounds the work
	// the Server does on its own (stream events, probes).
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool                    // Shutdown or Close called
	listeners map[net.Listener]string // listening addresses (Serve)
	pending   map[string]*pendingIQ   // our iq requests waiting for their answer, by id
	streams   map[string]int          // established streams per remote domain
	down      map[string]bool         // remote domains lost (StreamDown) and not back yet
	jobs      []job                   // presence work for the worker, in order
	working   bool                    // the worker goroutine runs
	workerWG  sync.WaitGroup
}

// job is presence work caused by a stream event, done off the s2s
// goroutine that reported it.
type job struct {
	up     bool // StreamUp (send probes) rather than StreamDown
	domain string
}

// init builds the s2s.Server and the translate.Translator once.
func (s *Server) init() {
	r := &s.run
	r.once.Do(func() {
		r.log = s.Logger
		if r.log == nil {
			r.log = slog.New(slog.DiscardHandler)
		}
		r.presence = s.Presence
		if r.presence == nil {
			r.presence = translate.NewPresenceTable()
		}
		r.domains = make(map[string]bool, len(s.Domains))
		for _, d := range s.Domains {
			if a, err := certs.NormalizeDomain(d); err == nil {
				r.domains[a] = true
			}
		}
		r.ctx, r.cancel = context.WithCancel(context.Background())
		r.listeners = make(map[net.Listener]string)
		r.pending = make(map[string]*pendingIQ)
		r.streams = make(map[string]int)
		r.down = make(map[string]bool)
		gw := s.gateway()
		r.tr = &translate.Translator{
			Presence:        r.presence,
			RefreshInterval: gw.SubscriptionRefreshInterval,
			Logger:          s.Logger,
			LogBodies:       gw.LogBodies,
		}
		if s.Backend != nil {
			r.tr.Host, r.tr.Roster = s.Backend, s.Backend
		}
		if s.Policy != nil {
			r.tr.Gate = s.Policy
		}
		r.s2s = &s2s.Server{
			Domains:     s.Domains,
			TLSConfig:   s.TLSConfig,
			Verify:      s.Verify,
			Resolver:    s.Resolver,
			Policy:      s.Policy,
			Handler:     s2s.HandlerFunc(s.handle),
			Bounce:      s.bounce,
			Limits:      s.Limits,
			Logger:      s.Logger,
			DebugWriter: s.DebugWriter,
			StreamEvent: s.streamEvent,
		}
	})
}

// gateway returns the policy's gateway settings (the defaults without a
// Policy).
func (s *Server) gateway() policy.Gateway {
	if s.Policy == nil {
		return policy.Gateway{
			ConnectionLimit:             policy.DefaultConnectionLimit,
			SubscriptionRefreshInterval: policy.DefaultSubscriptionRefreshInterval,
		}
	}
	return s.Policy.Gateway()
}

// ready initialises the Server and checks the required fields.
func (s *Server) ready() error {
	s.init()
	if s.Backend == nil {
		return errNoBackend
	}
	return nil
}

func (s *Server) isClosed() bool {
	s.run.mu.Lock()
	defer s.run.mu.Unlock()
	return s.run.closed
}

// mapClosed turns s2s.ErrServerClosed into ErrServerClosed.
func mapClosed(err error) error {
	if errors.Is(err, s2s.ErrServerClosed) {
		return ErrServerClosed
	}
	return err
}

// Serve accepts inbound streams on l (STARTTLS style, port 5269) until
// Shutdown or Close (then ErrServerClosed). It returns an error naming the
// field at once when Backend is nil. l is closed when Serve returns.
func (s *Server) Serve(l net.Listener) error { return s.serve(l, false) }

// ServeDirectTLS is Serve for a direct TLS listener (XEP-0368, port 5270).
func (s *Server) ServeDirectTLS(l net.Listener) error { return s.serve(l, true) }

func (s *Server) serve(l net.Listener, directTLS bool) error {
	if l == nil {
		return errors.New("federation: Serve: nil listener")
	}
	if err := s.ready(); err != nil {
		_ = l.Close()
		return err
	}
	r := &s.run
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		_ = l.Close()
		return ErrServerClosed
	}
	r.listeners[l] = l.Addr().String()
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.listeners, l)
		r.mu.Unlock()
	}()
	var err error
	if directTLS {
		err = r.s2s.ServeDirectTLS(l)
	} else {
		err = r.s2s.Serve(l)
	}
	return mapClosed(err)
}

// ListenAndServe listens on addr ("" means ":5269") and calls Serve.
func (s *Server) ListenAndServe(addr string) error {
	if err := s.ready(); err != nil {
		return err
	}
	if s.isClosed() {
		return ErrServerClosed
	}
	if addr == "" {
		addr = ":5269"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("federation: ListenAndServe: %w", err)
	}
	return s.Serve(l)
}

// Shutdown stops accepting, delivers or bounces (to Backend.Bounce) every
// queued stanza, ends every stream with </stream:stream> and waits for
// every goroutine; when ctx ends first it calls Close and returns ctx's
// error. Closing the streams ends federation with their domains: the
// host is told that its contacts there are Unknown (Host.DeliverPresence)
// before Shutdown returns.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	r := &s.run
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	err := r.s2s.Shutdown(ctx)
	s.stopWorker()
	r.cancel()
	s.failPending()
	return err
}

// Close stops at once, bouncing what is queued (remote-server-timeout, to
// Backend.Bounce), and waits for every goroutine.
func (s *Server) Close() error {
	s.init()
	r := &s.run
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	err := r.s2s.Close()
	s.stopWorker()
	s.failPending()
	return err
}

// Stats returns the health snapshot.
func (s *Server) Stats() Stats {
	s.init()
	r := &s.run
	st := r.s2s.Stats()
	out := Stats{
		Streams:         st.Streams,
		Queued:          st.Queued,
		PerPartner:      make(map[string]int),
		ConnectionLimit: s.gateway().ConnectionLimit,
	}
	for _, si := range st.Streams {
		out.PerPartner[si.Partner]++
	}
	r.mu.Lock()
	for _, a := range r.listeners {
		out.Listeners = append(out.Listeners, a)
	}
	r.mu.Unlock()
	slices.Sort(out.Listeners)
	return out
}

// ---- Stream events ----

// streamEvent is the s2s.Server's StreamEvent hook: metrics, and the
// bookkeeping that tells the Translator when federation with a domain is
// lost (the last stream with it closed) and back (a stream established
// after that). It must not block: the presence work goes to the worker.
func (s *Server) streamEvent(ev s2s.StreamEvent) {
	m := s.Metrics
	switch ev.Type {
	case s2s.StreamEstablished:
		if m != nil {
			m.StreamOpened(ev.Direction.String(), ev.Auth.String())
		}
		s.streamCount(ev.Remote, +1)
	case s2s.StreamClosed:
		if m != nil {
			m.StreamClosed(ev.Direction.String(), ev.Auth.String())
		}
		s.streamCount(ev.Remote, -1)
	case s2s.StreamFailed:
		if m != nil {
			m.NegotiationFailed(failureStep(ev.Err))
		}
	}
}

// failureStep names the step a stream failed at, for metrics.
func failureStep(err error) string {
	var ne *s2s.NegotiationError
	switch {
	case errors.As(err, &ne) && ne.Step != "":
		return ne.Step
	case errors.Is(err, streamerr.ResourceConstraint):
		return "limit"
	case errors.Is(err, s2s.ErrServerClosed):
		return "shutdown"
	}
	return "other"
}

// streamCount counts the established streams with a remote domain and
// queues the StreamDown (RFC 6121 §4.3: presence can no longer be known,
// REFERENCE §5.8 #91) and StreamUp (re-probe) work.
func (s *Server) streamCount(remote string, delta int) {
	if remote == "" {
		return
	}
	r := &s.run
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.streams[remote] + delta
	switch {
	case n <= 0:
		delete(r.streams, remote)
		if delta < 0 {
			r.down[remote] = true
			s.queueJobLocked(job{domain: remote})
		}
	default:
		r.streams[remote] = n
		if delta > 0 && r.down[remote] {
			delete(r.down, remote)
			s.queueJobLocked(job{up: true, domain: remote})
		}
	}
}

// queueJobLocked queues j and starts the worker when it is not running;
// r.mu is held.
func (s *Server) queueJobLocked(j job) {
	r := &s.run
	r.jobs = append(r.jobs, j)
	if r.working {
		return
	}
	r.working = true
	r.workerWG.Add(1)
	go s.worker()
}

// worker does the queued presence work in order, and ends when the queue
// is empty (the next event starts a new one).
func (s *Server) worker() {
	r := &s.run
	defer r.workerWG.Done()
	for {
		r.mu.Lock()
		if len(r.jobs) == 0 {
			r.working = false
			r.mu.Unlock()
			return
		}
		j := r.jobs[0]
		r.jobs[0] = job{}
		r.jobs = r.jobs[1:]
		r.mu.Unlock()
		s.doJob(j)
	}
}

func (s *Server) doJob(j job) {
	r := &s.run
	ctx := r.ctx
	defer s.guard(ctx, "stream event")
	if !j.up {
		if err := r.tr.StreamDown(ctx, j.domain); err != nil {
			r.log.LogAttrs(ctx, slog.LevelWarn, "federation: contacts not marked unknown after stream loss",
				slog.String("domain", j.domain), slog.Any("err", err))
		}
		return
	}
	if s.isClosed() {
		return
	}
	probes, err := r.tr.StreamUp(ctx, j.domain)
	if err != nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "federation: probes after reconnection not built",
			slog.String("domain", j.domain), slog.Any("err", err))
		return
	}
	for _, b := range probes {
		if err := s.sendRaw(ctx, b); err != nil {
			r.log.LogAttrs(ctx, slog.LevelInfo, "federation: probe after reconnection not sent",
				slog.String("domain", j.domain), slog.Any("err", err))
		}
	}
}

// guard recovers a panic in a Backend method called outside a stream's
// Handler (s2s recovers those itself), and logs it with its stack: a
// faulty host method must not take the process down.
func (s *Server) guard(ctx context.Context, what string) {
	if v := recover(); v != nil {
		s.run.log.LogAttrs(ctx, slog.LevelError, "federation: panic in the Backend ("+what+")",
			slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
	}
}

// stopWorker waits for the queued presence work (s2s has stopped: no
// event comes any more).
func (s *Server) stopWorker() {
	s.run.workerWG.Wait()
}
