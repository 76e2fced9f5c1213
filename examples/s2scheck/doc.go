// Command s2scheck diagnoses whether an XMPP domain can be reached for
// server-to-server federation. It is a thin command line over
// federation.Server.Check.
//
// Usage:
//
//	s2scheck [flags] DOMAIN
//	s2scheck              # no DOMAIN: a self-contained demonstration
//
// For DOMAIN it reports what Check finds, stage by stage: the policy's view
// (s2scheck admits every domain, TLS required, SASL EXTERNAL or dialback);
// the _xmpps-server._tcp and _xmpp-server._tcp SRV records in the order a
// server would try them, whether DNSSEC authenticated them, each target's
// addresses; for every address whether TCP connects, whether TLS completes
// (direct TLS per XEP-0368, or STARTTLS per RFC 6120 §5), which names the
// certificate carries and whether they verify for the domain (RFC 6125, RFC
// 6120 §13.7, DANE where TLSA records are DNSSEC-authenticated), and which
// stream features the server offers after TLS (SASL EXTERNAL, dialback,
// bidi); then an authentication attempt from -from, which needs that
// domain's certificate or dialback to succeed and so usually fails when run
// from a workstation (it is reported, it does not change the exit status).
//
// The exit status is 0 when at least one candidate completed TLS with a
// certificate valid for the domain, 1 when none did (a one-line reason goes
// to standard error), and 2 for bad usage.
//
// Flags:
//
//	-dns host:port   query this nameserver instead of those in /etc/resolv.conf
//	-ca file         trust the CA certificates in this PEM file instead of the system roots
//	-from domain     our domain: the 'from' of the stream headers and of the auth attempt
//	-timeout d       bound for each DNS query, connect and handshake (default 5s)
//	-json            print the report as JSON (the fields of type report)
//
// Run with no DOMAIN it starts, in-process and on loopback only, a DNS server
// with a DNSSEC-marked demo zone (direct TLS and STARTTLS candidates with
// DANE records, and a stale third one), and a pair of federation Servers
// with certificates from a test CA: demo.example, and s2scheck.example,
// which checks it; then prints the full report, authentication included.
// It needs no network and no configuration.
package main
