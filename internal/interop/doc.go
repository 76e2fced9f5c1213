// Package interop runs xmppfed's s2s.Server against real XMPP servers:
// Prosody and ejabberd from Debian's packages, installed by
// .ci/interop-setup. Everything but this comment is behind the build tag
// "interop", so a normal build, go vet and staticcheck see an empty package;
// run the suite as root with
//
//	bash .ci/interop-setup
//	go test -tags interop -count=1 -v ./internal/interop/
//
// The harness starts, per test, on loopback addresses of their own:
//
//   - a DNS server on 127.0.0.5:53 (UDP and TCP) authoritative for the
//     "test." zone, answering _xmpp-server._tcp SRV (RFC 2782, RFC 6120
//     §3.2.1) and A records with TTL 0 for prosody.test (127.0.0.2),
//     ejabberd.test (127.0.0.3) and xmppfed.test (127.0.0.4);
//   - Prosody and/or ejabberd with a generated configuration in a temporary
//     directory owned by the server's system user, certificates from a
//     fresh certs.TestCA (DNS-ID and SRV-ID only: ejabberd 23.01 crashes on
//     an XmppAddr in a peer certificate), in one of two modes: "external"
//     (the peer trusts the test CA, so SASL EXTERNAL, XEP-0178, is used both
//     ways) or "dialback" (the peer does not trust our certificate, so
//     Server Dialback, XEP-0220, over TLS is used);
//   - users registered with the servers' own tools and logged in over c2s
//     with two real clients behind one interface, UserClient: MelliumUser
//     (mellium.im/xmpp, Go) and PyClient (Debian's python3-slixmpp);
//   - our side for xmppfed.test on 127.0.0.4:5269 (and, for the XEP-0368
//     tests, direct TLS on 127.0.0.4:5270, with _xmpps-server SRV records):
//     an s2s.Server (StartOurs) for the stream-level tests, or a
//     federation.Server with a federationtest.Backend as the host
//     (StartFed) for the user scenarios.
//
// A third mode, "untrusted", is dialback with the peer's own certificate
// issued by a CA our server does not trust, so that the peer cannot
// authenticate with SASL EXTERNAL in either direction. Peer.Restart stops
// a peer and starts it again with its data kept, in the same or another
// mode.
//
// The tests: TestInteropProsodyEjabberd (the harness alone: Prosody <->
// ejabberd), TestInteropProsody and TestInteropEjabberd (subtests external
// and dialback: a message each way, a stanza error reply, the auth method
// from Stats and from the peer's own log), TestInteropProsodyDirectTLS and
// TestInteropEjabberdDirectTLS (XEP-0368 both ways), TestInteropBurst
// (500 stanzas each way over established streams, none lost, in order),
// TestInteropPyClient (the Python client alone) and the user scenarios of
// issue 7, TestInteropScenariosProsody and TestInteropScenariosEjabberd,
// whose subtests are named scenario/peer/direction:
//
//   - subscription: a remote user subscribes to a host user, who approves
//     (partner type PublicUnverified), and the other way round;
//   - presence: available, away, xa, dnd, offline both ways, mapped as
//     REFERENCE §4.5 says;
//   - messages: XEP-0085 chat states and XEP-0184 receipts both ways;
//   - errors: service-unavailable for a host user who does not exist or
//     has no XMPP access; a bounce for a remote user who does not exist;
//   - restart: the peer restarts mid-conversation; what the host sent
//     meanwhile is delivered or bounced, and messages flow again;
//   - not-partner: a peer missing from the policy reaches nobody;
//   - auth-sasl-external, auth-dialback, auth-sasl-required: each auth
//     path on purpose, and the refusal when SASL is required and the peer
//     cannot do it.
//
// Each scenario leaf logs a line "RESULT scenario/peer/direction client=...
// PASS|FAIL" for the closing table.
//
// Name resolution: the peers must find xmppfed.test (and each other)
// through DNS, not /etc/hosts. Prosody 0.12 resolves through libunbound,
// which ignores /etc/hosts and answers NXDOMAIN for the RFC 6761 name
// "test." by itself, so its configuration forwards to 127.0.0.5@53 with the
// local zone made transparent. ejabberd resolves SRV records with Erlang's
// inet_res (ERL_INETRC names 127.0.0.5) but the SRV target's address with
// glibc getaddrinfo, which reads /etc/resolv.conf: so ejabberd runs under
// unshare(1) in a private mount namespace with its own resolv.conf
// bind-mounted over /etc/resolv.conf, and the machine's file is never
// touched. glibc cannot use a port other than 53, hence the fixed address.
//
// Every server runs in its own process group and PID namespace, which is
// killed when its test ends (and by the kernel if the test binary dies);
// temporary directories are removed. Timeouts bound every wait.
//
// Environment: CI set turns a missing prerequisite (not root, a server not
// installed) from a skip into a failure; XMPPFED_INTEROP_KEEP=1 keeps the
// servers' directories (configs, logs) for inspection;
// XMPPFED_INTEROP_STACKS=1 makes BenchmarkInteropProsodyRoundTrip dump all
// goroutines when a message goes missing.
package interop
