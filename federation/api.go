package federation

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
	"github.com/xmppfed/xmppfed/translate"
)

// SKELETON: signatures fixed by the lead; bodies to be written.

// Backend is what the host implements: its users (delivery of IMs,
// presence and subscription requests, their current presence), its
// contact lists (subscription states), its directory (which users exist,
// their site and policy) and the hand-back of what could not be
// delivered. Methods may be called concurrently.
type Backend interface {
	translate.Host
	translate.Roster
	policy.Directory
	// Bounce hands back an outbound value Send accepted but that could not
	// be delivered, with the stanza error that says why
	// (remote-server-not-found, remote-server-timeout, a remote error
	// reply, service-unavailable when the policy refused it after Send
	// returned). It must not block for long.
	Bounce(ctx context.Context, v translate.Stanza, reason stanza.Error)
}

// Version is what XEP-0092 software version queries to our domains are
// answered with.
type Version struct {
	Name, Version, OS string // the software name, version and operating system reported
}

// Metrics receives counters and gauges; every method must be cheap and
// must not block. Labels are short ASCII words. A nil Metrics is off. See
// package promfed for a Prometheus adapter.
type Metrics interface {
	// StreamOpened and StreamClosed count established streams by
	// direction ("inbound", "outbound") and auth method
	// ("sasl-external", "dialback").
	StreamOpened(direction, auth string)
	StreamClosed(direction, auth string)
	// Stanza counts a stanza received from ("in") or sent to ("out") a
	// partner (its main domain, or the remote domain under open
	// federation).
	Stanza(direction, partner string)
	// Bounced counts a stanza bounced to its sender, by stanza error
	// condition ("remote-server-timeout").
	Bounced(condition string)
	// Denied counts a policy refusal by rule (policy.Rule.String()).
	Denied(rule string)
	// NegotiationFailed counts a stream that failed to establish, by
	// step ("dns", "connect", "tls", "sasl", "dialback", "policy", ...).
	NegotiationFailed(step string)
	// QueueDepth reports the stanzas waiting in the outbound pool.
	QueueDepth(n int)
}

// Server is the federation server a host embeds: it wires dnsdisco,
// certs, policy, s2s and translate behind Serve, Send, Shutdown and
// Close. Set the fields, then call Serve (or ListenAndServe); do not
// change them afterwards. Two Servers never share state.
type Server struct {
	// Domains are the local XMPP domains served.
	Domains []string
	// TLSConfig supplies the certificates of the local domains
	// (Certificates, or GetCertificate such as certs.Reloader's, chosen by
	// SNI). Nil means no TLS: only partners with TLS not required can
	// federate.
	TLSConfig *tls.Config
	// Verify configures peer certificate verification (roots, time).
	Verify certs.VerifyOptions
	// Resolver finds remote servers; nil means a zero dnsdisco.Resolver.
	Resolver *dnsdisco.Resolver
	// Policy decides who federates and how (required: with nil, every
	// remote domain is refused).
	Policy *policy.Policy
	// Backend is the host (required).
	Backend Backend
	// Presence maps availability; nil means translate.NewPresenceTable().
	Presence translate.PresenceMapper
	// Version answers XEP-0092 queries to our domains; nil means they get
	// service-unavailable.
	Version *Version
	// Metrics receives counters; nil is off.
	Metrics Metrics
	// Limits bounds what the policy's gateway settings do not.
	Limits s2s.Limits
	// Logger receives events; nil is silent. Message bodies are logged
	// only when the policy's Gateway.LogBodies is set.
	Logger *slog.Logger
	// DebugWriter, if set, receives the raw XML of every stream; it
	// contains secrets and message bodies: never in production.
	DebugWriter io.Writer

	run state // run-time state (server.go)
}

// Stats is the health snapshot (REFERENCE §5.9 #97).
type Stats struct {
	Listeners []string         // listening addresses
	Streams   []s2s.StreamInfo // established streams
	Queued    int              // stanzas waiting in the outbound pool
	// PerPartner counts established streams per partner.
	PerPartner map[string]int
	// ConnectionLimit is the gateway's total limit in use.
	ConnectionLimit int
}

// Stage is one step of a Check or SelfTest.
type Stage struct {
	Name     string        // "policy", "dns", "tcp", "tls", "certificate", "auth", "ping"...
	Target   string        // what it concerned (an address, a host name), if any
	OK       bool          // passed
	Detail   string        // what was found (TLS version, matched identity, method...)
	Err      error         // why it failed
	Duration time.Duration // how long it took
}

// CheckReport is the operator's diagnostic for one remote domain.
type CheckReport struct {
	Domain string // the remote domain checked
	// Partner is the policy's view of the domain (nil when refused;
	// Refused says why).
	Partner *policy.Remote
	Refused error // the policy's refusal (a *policy.Denial), nil when admitted
	// Targets are the DNS candidates in connection order.
	Targets []dnsdisco.Target
	// Stages are the checks run, in order: policy, dns, then per
	// candidate address tcp, tls, certificate, features, auth.
	Stages []Stage
	// Streams are the established streams with the domain now.
	Streams []s2s.StreamInfo
	// LastFailure is the last failed attempt to reach the domain, if any.
	LastFailure error
	// LastFailureAt is when it happened.
	LastFailureAt time.Time
}

// SelfTestReport is the outcome of SelfTest, stage by stage.
type SelfTestReport struct {
	From, To jid.JID // the ping's sender (local) and target (remote)
	Stages   []Stage // the stages run, in order
}
