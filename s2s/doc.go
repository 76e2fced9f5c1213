// Package s2s opens, accepts, authenticates and keeps XMPP
// server-to-server streams, and moves stanzas over them without losing
// one silently. Most hosts use it through package federation; use it
// directly to route raw jabber:server stanzas.
//
// A Server is configured through its exported fields (Domains,
// TLSConfig, Verify, Resolver, Policy, Handler, Bounce, Limits, Logger)
// and is then both:
//
//   - a listener: Serve (STARTTLS, RFC 6120 §5, usually port 5269) and
//     ServeDirectTLS (XEP-0368, usually port 5270) accept inbound streams,
//     authenticate the peer (SASL EXTERNAL per XEP-0178, or Server
//     Dialback per XEP-0220 with XEP-0185 keys and the XEP-0344 shortcut),
//     check every stanza's addressing against the authenticated domain
//     pairs (RFC 6120 §4.9.3, §8.1.1.1) and hand it to the Handler; a
//     stanza.Error the Handler returns goes back to the sender as the
//     error reply of RFC 6120 §8.3;
//   - a pool: Send queues a stanza for its (local, remote) domain pair.
//     The first stanza to a domain opens a stream through the dnsdisco
//     candidates in order, later ones reuse it or piggyback on a stream to
//     the same remote server; XEP-0288 bidi streams carry both directions.
//     A pair's queue is bounded (Limits.QueueSize). When every candidate
//     fails, the queued stanzas go to Server.Bounce with
//     remote-server-not-found (DNS says there is no such service) or
//     remote-server-timeout (it exists but did not answer) and a text that
//     says why; error stanzas are never bounced.
//
// On outbound streams the receiving server's certificate is checked
// against the remote domain with package certs; when the SRV answer was
// DNSSEC-authenticated the SRV target name is an acceptable identity too
// (XEP-0344), and when the target's addresses were as well, its
// DNSSEC-authenticated TLSA records decide (DANE, RFC 7673).
//
// # Policy
//
// Server.Policy (package policy) decides, on every stream and stanza, who
// may federate and how; a nil Policy admits no remote domain at all.
//
//   - Admission (REFERENCE §5.2): the domain of an inbound stream header
//     (or of the first dialback request of a stream without one) must be
//     admitted by Policy.Remote, else the stream gets the policy-violation
//     stream error, naming the rule, before any feature, TLS, dialback
//     verification or stanza. Send asks Policy.Remote first: a refused
//     domain is never looked up nor dialled, and Send returns the
//     *policy.Denial (errors.As; its StanzaError, service-unavailable, is
//     for the sender). A domain added to a stream by dialback piggybacking
//     must belong to the stream's partner (Remote.SamePartner), else the
//     request gets a dialback error (XEP-0220 §2.4, not-authorized).
//   - Negotiation: the partner's Settings, through Settings.Effective
//     (SASL required acts as optional unless TLS is required), decide
//     STARTTLS, SASL EXTERNAL and dialback in both directions, best first:
//     SASL EXTERNAL over TLS, dialback over TLS, dialback over TCP. The
//     zero Settings (the default) require TLS and SASL EXTERNAL, so a
//     dialback-only peer is refused.
//   - Routing: a partner's ProxyFQDN replaces the SRV lookup (STARTTLS
//     style, port 5269 unless given); the proxy's name is then an
//     acceptable certificate identity besides the partner's domain.
//   - Users (REFERENCE §5.6): an inbound stanza to a local user without
//     XMPP access (Policy.CheckUser) is answered with the Denial's error
//     and never reaches the Handler; Send refuses a stanza from such a
//     user. Stanzas to or from a bare domain (server traffic) are not
//     user traffic.
//   - Rate: each inbound stanza waits on the partner's Remote.Limiter
//     (shared by all its streams) before it is handled: a fast partner is
//     slowed down by TCP backpressure, not cut off.
//   - Live changes (REFERENCE §5.1 #16): at each Policy change, streams
//     with a domain no longer admitted are closed with policy-violation
//     and stanzas queued for such a domain are bounced with the Denial's
//     error; changed settings apply to new streams.
//
// # Retries
//
// A failed attempt bounces the stanzas queued for the pair at once. The
// pool then retries the pair by itself with exponential backoff (1 s
// doubling to 5 min, ±20% jitter) while the pair is in use. A stanza sent
// during that window neither waits for it nor is bounced without trying:
// it starts a new attempt at once when the previous one began at least
// 1 s earlier (else 1 s after it), so a dead domain is dialled at most
// once a second and a domain that came back is reached by the next stanza.
//
// # Timers and limits
//
// The gateway settings (Policy.Gateway, read for each new stream) bound
// streams: StreamEstablishmentTimeout from TCP accept or connect to
// authenticated; StreamInactivityTimeout of silence in both directions
// (connection-timeout); ConnectionLimit streams in total and each
// partner's Remote.ConnectionLimit for all its domains together (the
// stream over a limit gets resource-constraint right after its header);
// MaxStanzaBytes per stanza, advertised with XEP-0478. For a partner with
// keepalive (Remote.KeepAlive), a stream that receives nothing,
// whitespace included, for KeepAlive ends with connection-timeout; we
// send whitespace keepalives (RFC 6120 §4.6.1) after KeepAlive/2 of send
// silence and, on streams we send on, XEP-0199 pings after KeepAlive/2 of
// receive silence (Limits.PingInterval may shorten it), so a live peer
// always answers in time; a partner without keepalive gets none of this.
// Limits covers the rest: element depth, queue size, dial timeout, how
// many outbound streams are being established at once (Establishing) and
// how many inbound connections may negotiate at once (Negotiating: the
// oldest is pushed out by a new one).
// XEP-0198 (acknowledgements, no resumption): inbound streams offer it and
// answer the peer's <r/> with the count of stanzas handled; on outbound
// streams whose peer offers it we enable it, request acks and requeue the
// stanzas not acknowledged when the stream is lost (not when it closed
// gracefully: see Resends). Stanza size
// and depth limits (policy-violation) and restricted XML (RFC 6120 §11.1)
// are enforced by the framer. All timers run on the Server's clock.
//
// # Resends
//
// A sender using XEP-0198 sends again, on a new stream, the stanzas we had
// not acknowledged when its stream was lost; some of them we may have
// handed to the Handler already. The Server therefore keeps, per remote
// domain, a hash of (kind, error or not, from, to, id) of each stanza it
// handled that the peer may resend (those counted for XEP-0198 acks), the
// last 4096 for at most 5 minutes on its clock, and no more than 131 072
// over all domains (about 7 MB: beyond that the oldest keys go first,
// whichever domain holds them, so a busy domain keeps more than a quiet
// one), and drops a stanza whose key it recorded on another stream
// (logged at Debug; it is still acknowledged, so the peer stops resending
// it). Streams of different domains check their stanzas in parallel. A
// stanza without an id is never dropped: nothing tells a resend from a
// new one. Every stanza
// with an id is checked while anything is recorded, whether or not its
// stream uses XEP-0198 and whether or not the old stream ended
// uncleanly: the receiving side often learns of the loss after the
// sender (a half-open stream still looks alive here while the resends
// arrive on the new one). While nothing is recorded the check is one
// atomic load. RFC 6120 §8.1.3 guarantees an id unique only within its
// stream, so a false positive is possible: a distinct stanza with the
// same kind, full from and to addresses and id, arriving on another
// stream of the same domain within 5 minutes of one recorded. It would be
// dropped silently, as a resend is; with the random ids servers and
// clients generate this needs the same sender to reuse an id towards the
// same full address, and a repeat on the same stream (a sender that
// numbers its stanzas per stream) is never dropped. Our inbound streams
// offer XEP-0198 (without resumption) and count what the peer sends once
// it enables it; a stream closed gracefully (the peer's closing tag after
// ours) leaves nothing to resend, since the peer handled everything
// before answering (RFC 6120 §4.4).
//
// # Lifecycle and observation
//
// Shutdown stops accepting, delivers or bounces what is queued, closes
// every stream with </stream:stream> in both directions and waits for
// every goroutine; Close does the same at once, bouncing what is queued.
// Each stream's negotiated outcome (direction, peer and its partner,
// addresses, TLS version, auth method, matched certificate identity) is
// logged once to Server.Logger, and so is each refusal by the policy, at
// Info with its rule (never a stanza's content); Stats returns a
// snapshot, Queued the pool's depth alone. The Server.StreamEvent hook
// hears of every stream established, closed or failed (for metrics, and
// for presence: a host learns that a domain went out of reach), and
// LastFailure returns the last failed attempt to reach a domain.
package s2s
