// Package federation is the server a chat host embeds to federate with
// XMPP: one Server wires the other packages together — dnsdisco (finding
// remote servers), certs (certificates), policy (who federates and how),
// s2s (server-to-server streams, RFC 6120) and translate (XMPP stanzas to
// and from the host's values, RFC 6121) — behind Serve, Send, Shutdown
// and Close. The host implements one interface, Backend.
//
// # Wiring
//
//	backend := newMyBackend()         // implements federation.Backend
//	pol, err := policy.New(ctx, store, &policy.Options{Directory: backend})
//	srv := &federation.Server{
//		Domains:   []string{"chat.example.com"},
//		TLSConfig: &tls.Config{GetCertificate: reloader.GetCertificate},
//		Policy:    pol,
//		Backend:   backend,
//		Logger:    logger,
//	}
//	go srv.ListenAndServe("")         // port 5269, ErrServerClosed at the end
//	err = srv.Send(ctx, &translate.Message{From: alice, To: bob, Body: "hi"})
//	...
//	err = srv.Shutdown(ctx)
//
// The policy's Directory (policy.Options.Directory) should be the Backend:
// the policy asks it which local users exist and which access policy
// applies to them. A Policy built with another Directory works, with that
// Directory's answers. Backend and Policy are both required: Serve and
// Send return an error naming Backend when it is nil, and a nil Policy
// admits no remote domain at all.
//
// # A stanza coming in
//
// A remote server opens a stream to us (or answers on ours, XEP-0288);
// s2s authenticates it (SASL EXTERNAL, XEP-0178, or dialback, XEP-0220),
// asks the policy whether the domain may federate (REFERENCE §5.2), checks
// each stanza's addressing against the authenticated domains (RFC 6120
// §4.9.3, §8.1.1.1), paces the partner and checks that the local
// recipient may use XMPP (policy.CheckUser: a user who may not, or does
// not exist, is answered with service-unavailable, RFC 6121 §8.5.2, and
// the stanza goes no further). Then the Server takes it:
//
//   - To one of our domains itself (no localpart): the Server answers
//     without the host, as any XMPP server does — XEP-0199 pings (an empty
//     result), XEP-0030 disco#info (identity server/im and exactly the
//     features enabled: disco#info, disco#items, urn:xmpp:ping, and
//     jabber:iq:version only when Server.Version is set) and disco#items
//     (empty), XEP-0092 software version when Server.Version is set.
//     Other iq requests get service-unavailable (RFC 6120 §8.4); a set, or
//     a disco node, in one of those namespaces gets feature-not-implemented
//     or item-not-found. A message to the domain gets service-unavailable
//     (RFC 6120 §10.5.1 lets a server answer with an error what it does
//     not handle); presence to the domain is logged and dropped (presence
//     is never answered with an error, RFC 6121 §8.5). Results and errors
//     answer our own requests (a SelfTest ping) or are dropped with a Debug
//     log.
//   - To a local user: a type='error' stanza is an answer to something we
//     sent, and goes to Backend.Bounce (below); anything else goes to
//     translate.Translator.InboundFramed (the stanza as s2s read it: no
//     second XML parse), which applies the partner-type gate,
//     the subscription state machine and presence aggregation, and calls
//     the Backend's Host methods (DeliverMessage, DeliverPresence,
//     DeliverSubscription). The stanzas the Translator returns (error
//     replies, subscription answers, presence for probes) are sent back
//     through s2s.
//
// # A value going out
//
// Send takes a *translate.Message, *translate.Presence (broadcast to the
// authorized watchers when To is empty), *translate.Subscription or
// *translate.Probe from a local user. It checks the remote domain against
// the policy first (a refused domain changes no subscription state and is
// never looked up nor dialled, REFERENCE §5.2 #18) and returns the
// *policy.Denial; then the Translator encodes the value (one stanza, or
// one per watcher) and s2s queues each stanza, with the addresses the
// Translator encoded (s2s.TrustedStanza: no parse of its own bytes), for
// its (local, remote) domain pair, opening a stream through DNS SRV (RFC
// 6120 §3.2, XEP-0368) when there is none. Send returns once every stanza is queued. What
// cannot be delivered later — no server found (remote-server-not-found),
// no answer or a failed authentication (remote-server-timeout), a policy
// change, Shutdown — comes back through Backend.Bounce with the stanza
// error that says why, as the value it was encoded from.
//
// # Errors
//
// Errors travel as stanza errors (RFC 6120 §8.3):
//
//   - A Host error for an inbound stanza becomes the reply translate.StanzaError
//     gives: translate.ErrUnknownUser is service-unavailable (RFC 6121
//     §8.5.2.1), translate.ErrOffline recipient-unavailable,
//     translate.ErrTooLarge policy-violation, a stanza.Error is sent as
//     it is, and any other error internal-server-error, its text never
//     leaving the server.
//   - A remote server's error reply to a stanza we sent reaches
//     Backend.Bounce with the remote's error, and the value rebuilt from
//     what the reply carried back (RFC 6120 §8.3.1 lets the reply include
//     the original payload): a message error is a *translate.Message from
//     the local user to the remote address, type Chat, with its id and the
//     body, chat state or receipt when the reply included them; a presence
//     error is a *translate.Presence with what the reply carried (the
//     reply does not say whether a presence update or a subscription
//     stanza failed). An error without a valid <error/> child is reported
//     as undefined-condition. Error stanzas are never answered (RFC 6120
//     §8.3.1).
//
// # Streams and presence
//
// When the last stream with a remote domain closes (lost, timed out, shut
// down), the host is told that its contacts there are Unknown, not
// Offline (translate.Translator.StreamDown, REFERENCE §5.8 #91); when a
// stream with that domain is established again, the Server sends presence
// probes for those contacts (RFC 6121 §4.3, translate.Translator.StreamUp)
// and their answers bring the contacts' presence back. This work runs in
// a goroutine of the Server's own, never on a stream's.
//
// # Shutdown
//
// Shutdown stops accepting, lets the outbound pool deliver or bounce every
// queued stanza (to Backend.Bounce), closes every stream with
// </stream:stream> (RFC 6120 §4.4), tells the host that its remote
// contacts are Unknown, and waits for every goroutine; when its ctx ends
// first it calls Close, which stops at once and bounces what is queued
// (remote-server-timeout). Afterwards Serve, ListenAndServe and Send
// return ErrServerClosed; a Server cannot be restarted. Two Servers never
// share state (REFERENCE §5.9 #99).
//
// # Observation
//
// Server.Metrics (nil: off) counts streams opened and closed by direction
// and authentication method, stanzas in and out per partner, bounces by
// condition, Send's policy refusals by rule, negotiation failures by step,
// and the outbound queue's depth after each Send; package promfed adapts
// it to Prometheus. Stats returns the health snapshot (listeners, streams
// per partner, the connection limit in use, REFERENCE §5.9 #97). Check is
// the operator's diagnostic for one remote domain and SelfTest pings a
// remote domain over the real path stage by stage (#96). Logging goes to
// Server.Logger (nil: silent); message bodies appear only when the
// policy's Gateway.LogBodies is set (#93).
package federation
