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
//   - [github.com/xmppfed/xmppfed/translate] maps XMPP messages, presence and
//     subscriptions to a small protocol-neutral model and back (RFC 6121,
//     XEP-0085 chat states, XEP-0184 receipts, XEP-0203 delay, XEP-0308
//     corrections, XEP-0319 idle), with a replaceable presence table, the
//     RFC 6121 subscription state machine, presence aggregation over
//     resources and the partner-type rules; its Translator opens no socket.
//
//   - [github.com/xmppfed/xmppfed/federation] is what a host embeds: one
//     Server that wires all of the above behind Serve, Send, Shutdown and
//     Close, answers pings, disco and version for its domains, reports
//     metrics (adapter: federation/promfed for Prometheus) and offers the
//     operator's diagnostics Check and SelfTest.
//     [github.com/xmppfed/xmppfed/federation/federationtest] gives a
//     downstream project's tests a fake remote XMPP domain with scriptable
//     users, a test CA, a loopback DNS server and a recording Backend.
//
// examples/ holds runnable programs: examples/quickstart (two federating
// domains in one process, the README's first command), examples/chatserver
// (a toy chat server that federates with real XMPP servers),
// examples/s2scheck (the operator's diagnostic over federation.Check) and
// examples/policycheck (checks a policy file). internal/ holds the stream
// framer, the injectable clock, domain-name normalization and the interop
// suite against Prosody and ejabberd.
//
// # A minimal wiring sketch
//
// A host implements federation.Backend (its users, contact lists and
// directory), builds a policy and runs a federation.Server:
//
//	pol, err := policy.New(ctx, &policy.FileStore{Path: "xmpp.toml"},
//		&policy.Options{Directory: backend})
//	go pol.Watch(ctx, 0) // operator edits apply without a restart
//	srv := &federation.Server{
//		Domains:   []string{"chat.example"},
//		TLSConfig: &tls.Config{GetCertificate: reloader.GetCertificate},
//		Policy:    pol,
//		Backend:   backend, // inbound IMs, presence and subscriptions arrive here
//	}
//	go srv.ListenAndServe(":5269")
//	err = srv.Send(ctx, &translate.Message{From: alice, To: bob, Body: "hello"})
//	err = srv.Shutdown(ctx) // delivers or bounces what is queued
package xmppfed
