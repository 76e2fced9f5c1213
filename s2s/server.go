package s2s

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/internal/clock"
	"github.com/xmppfed/xmppfed/internal/tlscert"
	"github.com/xmppfed/xmppfed/policy"
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

// Limits bounds the resources of a Server that the policy does not cover
// (the policy's Gateway gives the stream and connection limits and
// timeouts). Zero fields mean the defaults given with each field; a
// negative PingInterval or DialTimeout disables that timer.
type Limits struct {
	MaxDepth int // element nesting in a stanza; 0 (or negative): 64
	// PingInterval caps the receive silence after which an XEP-0199 ping
	// goes out on a stream we send on, with a partner that has keepalive:
	// 0: half the partner's keepalive (Remote.KeepAlive); positive: at
	// most this; negative: no pings.
	PingInterval time.Duration
	QueueSize    int           // stanzas queued per (local, remote) pair while connecting; 0 (or negative): 10000
	DialTimeout  time.Duration // one TCP connect; 0: 10 s
	// Establishing bounds the outbound streams being established at
	// once by the pool (DNS look-ups, TCP connects and negotiation of
	// new streams): a burst of stanzas to many new domains does not
	// overwhelm the resolver or the peers. A pair waiting for its turn
	// keeps its stanzas queued; the wait counts against the gateway's
	// StreamEstablishmentTimeout like the establishment itself, after
	// which the stanzas are bounced (remote-server-timeout). 0: 64
	// (DefaultEstablishing); negative: no bound. Verification
	// connections of Server Dialback are not counted.
	Establishing int
	// Negotiating bounds the inbound connections still negotiating
	// (from the TCP accept until the stream is authenticated or fails).
	// When a new connection would exceed it, the oldest one still
	// negotiating is closed: a flood of connections that never finish
	// (thousands that never send a header, slowloris) costs bounded
	// memory and cannot lock partners out, since each new connection
	// pushes the oldest stale one out rather than being refused. Each
	// waiting connection costs one goroutine and a few KB until the
	// gateway's StreamEstablishmentTimeout cuts it. 0: 2048
	// (DefaultNegotiating); negative: no bound.
	Negotiating int
}

// Default limits.
const (
	DefaultMaxDepth    = 64
	DefaultQueueSize   = 10000
	DefaultDialTimeout = 10 * time.Second
	// DefaultEstablishing is Limits.Establishing's default.
	DefaultEstablishing = 64
	// DefaultNegotiating is Limits.Negotiating's default.
	DefaultNegotiating = 2048
)

// withDefaults returns l with zero fields set to their defaults.
func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.DialTimeout == 0 {
		l.DialTimeout = DefaultDialTimeout
	}
	if l.QueueSize <= 0 {
		l.QueueSize = DefaultQueueSize
	}
	if l.Establishing == 0 {
		l.Establishing = DefaultEstablishing
	}
	if l.Negotiating == 0 {
		l.Negotiating = DefaultNegotiating
	}
	return l
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
	// outbound ones. Inbound streams share one configuration derived from
	// it (derived again when TLSConfig or its Certificates slice is
	// replaced; a GetCertificate source reloads by itself), outbound ones
	// clone it; TLS 1.2 is the minimum whatever it says (RFC 7590).
	TLSConfig *tls.Config
	// Verify configures peer certificate verification (roots, time).
	Verify certs.VerifyOptions
	// Resolver finds remote servers. Nil means a zero dnsdisco.Resolver.
	Resolver *dnsdisco.Resolver
	// Policy decides which remote domains may federate and how (TLS,
	// SASL and dialback settings, connection limits, keepalive, proxy,
	// rate), which local users may use XMPP, and the gateway's limits,
	// timeouts and dialback secret (XEP-0185: nodes serving the same
	// domains share it through their policies). It is consulted for every
	// stream and stanza, so changes apply at once; streams with a domain
	// the policy no longer admits are closed. Nil admits no remote domain
	// at all (the secure default: unknown domains are refused), with the
	// gateway defaults.
	Policy *policy.Policy
	// Handler receives inbound stanzas. Nil answers each with
	// service-unavailable.
	Handler Handler
	// Bounce receives each stanza Send accepted but could not deliver,
	// with the error to report to its (local) sender. It must not block.
	// Nil logs the loss at Warn level.
	Bounce func(ctx context.Context, st *Stanza, err stanza.Error)
	// Limits bounds what the Policy does not; the zero value means the
	// defaults.
	Limits Limits
	// Logger receives stream events (negotiated, closed, peer misbehaving).
	// Nil is silent.
	Logger *slog.Logger
	// DebugWriter, if set, receives the raw XML of every stream in both
	// directions. It contains everything, dialback keys and message bodies
	// included: never enable it in production.
	DebugWriter io.Writer
	// StreamEvent, if set, is called when a stream is established, when
	// an established stream closes and when one fails to open or to be
	// accepted. It is called without locks held, from the stream's
	// goroutine, in order for one stream: it must not block.
	StreamEvent func(ev StreamEvent)

	clock clock.Clock // nil: the real clock; tests set a fake one

	initOnce sync.Once
	resolver *dnsdisco.Resolver
	secret0  []byte // the dialback secret when Policy is nil
	limits   Limits
	domains  map[string]bool
	log      *slog.Logger

	// state of the running server, defined with the code that uses it
	// (serve.go, pool.go).
	run serverState
	// hib parks idle streams without a reader goroutine (hibernate*.go).
	hib hibernation
	// tlsIn is the TLS configuration of inbound connections, shared
	// (inboundTLS).
	tlsIn tlscert.Shared

	dedupe dedupeState // resent stanzas already handled (dedupe.go)
}

// init resolves defaults once, before first use.
func (s *Server) init() {
	s.initOnce.Do(func() {
		s.limits = s.Limits.withDefaults()
		if s.Policy == nil {
			s.secret0 = make([]byte, 32)
			_, _ = rand.Read(s.secret0) // crypto/rand.Read never fails (Go 1.24+)
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

// gateway returns the current gateway settings, defaults filled in.
func (s *Server) gateway() policy.Gateway {
	if s.Policy == nil {
		return policy.Gateway{
			ConnectionLimit:            policy.DefaultConnectionLimit,
			PartnerConnectionLimit:     policy.DefaultPartnerConnectionLimit,
			KeepAliveInterval:          policy.DefaultKeepAliveInterval,
			StreamEstablishmentTimeout: policy.DefaultStreamEstablishmentTimeout,
			StreamInactivityTimeout:    policy.DefaultStreamInactivityTimeout,
			MaxStanzaBytes:             policy.DefaultMaxStanzaBytes,
		}
	}
	return s.Policy.Gateway()
}

// generation is the Policy's configuration generation (0 without a
// Policy).
func (s *Server) generation() uint64 {
	if s.Policy == nil {
		return 0
	}
	return s.Policy.Generation()
}

// secret returns the current dialback secret (XEP-0185), read anew for
// every key so that a changed secret applies at once.
func (s *Server) secret() []byte {
	if s.Policy == nil {
		return s.secret0
	}
	return s.Policy.Gateway().DialbackSecret.Bytes()
}

// remote returns the policy for a remote domain, or the error (a
// *policy.Denial when the policy refuses it) that refuses it. With a nil
// Policy every domain is refused as not a partner.
func (s *Server) remote(domain string) (*policy.Remote, error) {
	if s.Policy == nil {
		return nil, &policy.Denial{Rule: policy.RuleNotPartner, Domain: domain}
	}
	return s.Policy.Remote(domain)
}

// refused logs a refusal by the policy once, at Info, with its rule (never
// a stanza's content).
func (s *Server) refused(ctx context.Context, what, domain string, err error) {
	attrs := []slog.Attr{slog.String("what", what), slog.String("domain", domain)}
	var d *policy.Denial
	if errors.As(err, &d) {
		attrs = append(attrs, slog.String("rule", d.Rule.String()))
		if d.User != "" {
			attrs = append(attrs, slog.String("user", d.User))
		}
	}
	attrs = append(attrs, slog.Any("err", err))
	s.log.LogAttrs(ctx, slog.LevelInfo, "s2s refused by policy", attrs...)
}

// partnerKey is the key streams are counted under for the per-partner
// connection limit (REFERENCE §5.5 #48): the partner's main domain, or
// the domain itself under open federation.
func partnerKey(rem *policy.Remote) string {
	if rem.Partner != "" {
		return rem.Partner
	}
	return rem.Domain
}
