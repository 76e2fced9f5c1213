package s2s

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"io"
	"log/slog"
	"sync"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/internal/clock"
	"github.com/xmppfed/xmppfed/internal/wire"
)

// Handler receives the stanzas that authenticated remote domains send to
// our domains. HandleStanza may be called concurrently for different
// streams, and in order for one stream.
//
// A returned stanza.Error is sent back to the stanza's sender as the error
// reply of RFC 6120 §8.3; any other non-nil error is answered with
// internal-server-error (its text never leaves this server). Error stanzas
// are never answered, whatever the handler returns.
type Handler interface {
	HandleStanza(ctx context.Context, st *Stanza) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, st *Stanza) error

// HandleStanza calls f(ctx, st).
func (f HandlerFunc) HandleStanza(ctx context.Context, st *Stanza) error { return f(ctx, st) }

var _ Handler = HandlerFunc(nil)

// Limits bounds the resources of a Server. Zero fields mean the defaults
// given with each field; a negative duration disables that timer.
type Limits struct {
	MaxStanzaBytes      int           // one stanza; 0: 512 KiB, advertised with XEP-0478
	MaxDepth            int           // element nesting in a stanza; 0: 64
	NegotiationTimeout  time.Duration // TCP connect or accept to authenticated; 0: 60 s
	IdleTimeout         time.Duration // nothing received nor sent; 0: 600 s -> connection-timeout
	KeepAlive           time.Duration // whitespace keepalive after this much send silence (RFC 6120 §4.6.1); 0: 60 s
	PingInterval        time.Duration // XEP-0199 ping after this much receive silence; 0: 300 s
	MaxStreams          int           // concurrent streams in total; 0: 1000
	MaxStreamsPerDomain int           // concurrent streams per remote domain; 0: 20
	QueueSize           int           // stanzas queued per (local, remote) pair while connecting; 0: 10000
	DialTimeout         time.Duration // one TCP connect; 0: 10 s
}

// Default limits.
const (
	DefaultMaxStanzaBytes      = 512 << 10
	DefaultMaxDepth            = 64
	DefaultNegotiationTimeout  = 60 * time.Second
	DefaultIdleTimeout         = 600 * time.Second
	DefaultKeepAlive           = 60 * time.Second
	DefaultPingInterval        = 300 * time.Second
	DefaultMaxStreams          = 1000
	DefaultMaxStreamsPerDomain = 20
	DefaultQueueSize           = 10000
	DefaultDialTimeout         = 10 * time.Second
)

// withDefaults returns l with zero fields set to their defaults.
func (l Limits) withDefaults() Limits {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if l.MaxStanzaBytes <= 0 {
		l.MaxStanzaBytes = DefaultMaxStanzaBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	def(&l.NegotiationTimeout, DefaultNegotiationTimeout)
	def(&l.IdleTimeout, DefaultIdleTimeout)
	def(&l.KeepAlive, DefaultKeepAlive)
	def(&l.PingInterval, DefaultPingInterval)
	def(&l.DialTimeout, DefaultDialTimeout)
	if l.MaxStreams <= 0 {
		l.MaxStreams = DefaultMaxStreams
	}
	if l.MaxStreamsPerDomain <= 0 {
		l.MaxStreamsPerDomain = DefaultMaxStreamsPerDomain
	}
	if l.QueueSize <= 0 {
		l.QueueSize = DefaultQueueSize
	}
	return l
}

// wireLimits are the framer limits derived from l.
func (l Limits) wireLimits() wire.Limits {
	return wire.Limits{MaxStanzaBytes: l.MaxStanzaBytes, MaxDepth: l.MaxDepth}
}

// Server accepts and opens server-to-server streams for a set of local
// domains: it is both the listener for inbound streams and the pool of
// outbound ones. Set the exported fields, then call Serve (and/or
// ServeDirectTLS) and Send; do not change the fields after that. A Server
// must not be copied after first use, and cannot be reused after Shutdown
// or Close.
type Server struct {
	// Domains are the local XMPP domains (any form; compared as A-labels).
	Domains []string
	// TLSConfig supplies our certificates: Certificates, or GetCertificate
	// (for example certs.Reloader.GetCertificate), chosen by SNI for
	// inbound streams and by our domain for the client certificate of
	// outbound ones. It is cloned per stream; TLS 1.2 is the minimum
	// whatever it says (RFC 7590).
	TLSConfig *tls.Config
	// Verify configures peer certificate verification (roots, time).
	Verify certs.VerifyOptions
	// Resolver finds remote servers. Nil means a zero dnsdisco.Resolver.
	Resolver *dnsdisco.Resolver
	// DialbackSecret keys dialback (XEP-0185). Nodes serving the same
	// domains must share it. Nil means a random secret for this Server.
	DialbackSecret []byte
	// Settings returns the negotiation settings for a remote domain (an
	// A-label). An error refuses the domain: inbound streams from it get
	// policy-violation, outbound stanzas to it are bounced. Nil means the
	// zero Settings for every domain.
	Settings func(ctx context.Context, remote string) (Settings, error)
	// Handler receives inbound stanzas. Nil answers each with
	// service-unavailable.
	Handler Handler
	// Bounce receives each stanza Send accepted but could not deliver,
	// with the error to report to its (local) sender. It must not block.
	// Nil logs the loss at Warn level.
	Bounce func(ctx context.Context, st *Stanza, err stanza.Error)
	// Limits bounds resources; the zero value means the defaults.
	Limits Limits
	// Logger receives stream events (negotiated, closed, peer misbehaving).
	// Nil is silent.
	Logger *slog.Logger
	// DebugWriter, if set, receives the raw XML of every stream in both
	// directions. It contains everything, dialback keys and message bodies
	// included: never enable it in production.
	DebugWriter io.Writer

	clock clock.Clock // nil: the real clock; tests set a fake one

	initOnce sync.Once
	resolver *dnsdisco.Resolver
	secret   []byte
	limits   Limits
	domains  map[string]bool
	log      *slog.Logger

	// state of the running server, defined with the code that uses it
	// (serve.go, pool.go).
	run serverState
}

// init resolves defaults once, before first use.
func (s *Server) init() {
	s.initOnce.Do(func() {
		s.limits = s.Limits.withDefaults()
		s.secret = s.DialbackSecret
		if len(s.secret) == 0 {
			s.secret = make([]byte, 32)
			_, _ = rand.Read(s.secret) // crypto/rand.Read never fails (Go 1.24+)
		}
		s.domains = make(map[string]bool, len(s.Domains))
		for _, d := range s.Domains {
			if a, err := certs.NormalizeDomain(d); err == nil {
				s.domains[a] = true
			}
		}
		s.log = s.Logger
		if s.log == nil {
			s.log = slog.New(slog.DiscardHandler)
		}
		if s.clock == nil {
			s.clock = clock.Real{}
		}
		s.resolver = s.Resolver
		if s.resolver == nil {
			s.resolver = new(dnsdisco.Resolver)
		}
	})
}

// isLocal reports whether domain (an A-label) is one of ours.
func (s *Server) isLocal(domain string) bool { return s.domains[domain] }

// settingsFor returns the effective settings for remote, or the error that
// refuses it.
func (s *Server) settingsFor(ctx context.Context, remote string) (Settings, error) {
	if s.Settings == nil {
		return Settings{}.effective(), nil
	}
	set, err := s.Settings(ctx, remote)
	if err != nil {
		return Settings{}, err
	}
	if _, err := set.Validate(); err != nil {
		return Settings{}, err
	}
	return set.effective(), nil
}
