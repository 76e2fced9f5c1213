// Package xmppfed is the root of a library that lets a Go chat server federate
// with the XMPP world over server-to-server (s2s) streams.
//
// A host application — a chat server with its own users, storage and
// transport — embeds xmppfed to exchange instant messages, presence and
// subscriptions with XMPP servers such as Prosody, ejabberd or Openfire. The
// library owns the XMPP side of federation: DNS discovery, TLS, certificate
// checks, peer authentication (SASL EXTERNAL, Server Dialback), partner and
// user policy, and translation between XMPP stanzas and plain Go values. The
// host owns its users and hands the library plain values.
//
// This package holds no code; it documents the module. The work is done by
// the packages below it.
//
// # Package map
//
//   - [github.com/xmppfed/xmppfed/dnsdisco] finds where a domain's XMPP server
//     lives: _xmpps-server._tcp (XEP-0368 direct TLS) and _xmpp-server._tcp
//     (STARTTLS) SRV records merged in RFC 2782 order, the "." no-service
//     rule, A/AAAA fallback on port 5269, /etc/hosts, a TTL cache with
//     negative caching, the DNSSEC AD bit and TLSA records for DANE.
//     [github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest] runs a loopback DNS
//     server for tests.
//
//   - [github.com/xmppfed/xmppfed/certs] decides whether a certificate chain
//     really belongs to an XMPP domain (RFC 6125/9525 and RFC 6120 §13.7:
//     SRV-ID, XmppAddr, DNS-ID; DANE), serves reloadable certificates chosen
//     by SNI, and issues test certificates from an in-memory test CA.
//
//   - [github.com/xmppfed/xmppfed/s2s] opens, accepts, authenticates and
//     keeps server-to-server streams: STARTTLS and direct TLS, SASL
//     EXTERNAL, Server Dialback with piggybacking, bidi, per-partner
//     negotiation settings from policy, stanza addressing checks, limits,
//     keepalives, and the outbound pool that queues, retries and bounces.
//
//   - [github.com/xmppfed/xmppfed/policy] decides who may federate and how:
//     allowed partners (main and additional domains, partner type, the
//     TLS × SASL × dialback matrix with its validation), gateway settings
//     (connection limits, timers, stanza size, per-partner rate, open
//     federation, block list, dialback secret), and per-user XMPP access
//     (global, site and user policies, resolved through the host's
//     directory). Its Store keeps the configuration in memory, in a
//     human-edited TOML file, or in the host's database; changes are
//     atomic, can be dry-run and apply without a restart. s2s enforces it
//     on every stream.
//
// Later parts of the module add translate (XMPP to the host's model and
// back) and federation (the server a host embeds). examples/ holds
// runnable programs; examples/s2scheck is a diagnostic an operator runs
// against a domain, examples/policycheck checks a policy file. internal/
// holds the stream framer, the injectable clock, domain-name
// normalization and the interop suite against Prosody and ejabberd.
//
// # A minimal wiring sketch
//
// Finding and checking a peer with the packages available today:
//
//	var r dnsdisco.Resolver // zero value: nameservers from /etc/resolv.conf
//	targets, err := r.LookupServer(ctx, "example.org")
//	if err != nil {
//		// *dnsdisco.LookupError: NotFound() -> remote-server-not-found,
//		// Temporary() -> remote-server-timeout
//	}
//	for _, t := range targets {
//		// dial t.Addrs on t.Port, TLS with ServerName "example.org" (SNI is the
//		// domain, never the SRV target), then:
//		res, err := certs.Verify("example.org", conn.ConnectionState().PeerCertificates, certs.VerifyOptions{})
//		_ = res // res.Matched says which identity the certificate matched
//	}
package xmppfed
