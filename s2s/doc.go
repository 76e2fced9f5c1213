// Package s2s opens, accepts, authenticates and keeps XMPP
// server-to-server streams, and moves stanzas over them without losing
// one silently. Most hosts use it through package federation; use it
// directly to route raw jabber:server stanzas.
//
// A Server is configured through its exported fields (Domains,
// TLSConfig, Verify, Resolver, DialbackSecret, Settings, Handler, Bounce,
// Limits, Logger) and is then both:
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
// Which methods a stream may use comes from Settings, per remote domain:
// TLS and SASL (Required, Optional, NotSupported) and dialback on or off.
// The zero value requires TLS and prefers SASL EXTERNAL, then dialback
// over TLS.
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
// Negotiation is bounded by Limits.NegotiationTimeout; an established
// stream silent in both directions for Limits.IdleTimeout gets the
// connection-timeout stream error. Whitespace keepalives (RFC 6120 §4.6.1)
// go out after Limits.KeepAlive of send silence, and XEP-0199 pings after
// Limits.PingInterval of receive silence on streams we send on (an
// unanswered ping ends the stream with connection-timeout). When the peer
// offers XEP-0198 on an outbound stream, acks are requested and
// unacknowledged stanzas are requeued if the stream is lost. Stanza size
// and depth limits (policy-violation) and restricted XML (RFC 6120 §11.1)
// are enforced by the framer. Limits.MaxStreams and MaxStreamsPerDomain
// cap concurrent streams (resource-constraint).
//
// # Lifecycle and observation
//
// Shutdown stops accepting, delivers or bounces what is queued, closes
// every stream with </stream:stream> in both directions and waits for
// every goroutine; Close does the same at once, bouncing what is queued.
// Each stream's negotiated outcome (direction, peer, addresses, TLS
// version, auth method, matched certificate identity) is logged once to
// Server.Logger; Stats returns a snapshot.
package s2s
