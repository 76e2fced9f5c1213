// Command s2scheck diagnoses whether an XMPP domain can be reached for
// server-to-server federation.
//
// Usage:
//
//	s2scheck [flags] DOMAIN
//	s2scheck              # no DOMAIN: a self-contained demonstration
//
// For DOMAIN it reports the _xmpps-server._tcp and _xmpp-server._tcp SRV
// records in the order a server would try them, whether DNSSEC authenticated
// them, each target's addresses, and for every address whether TCP connects,
// whether TLS completes (direct TLS per XEP-0368, or STARTTLS per RFC 6120
// §5), which names the certificate carries and whether they verify for the
// domain (RFC 6125, RFC 6120 §13.7, DANE where TLSA records are
// DNSSEC-authenticated).
//
// The exit status is 0 when at least one candidate completed TLS with a
// certificate valid for the domain, 1 when none did (a one-line reason goes
// to standard error), and 2 for bad usage.
//
// Flags:
//
//	-dns host:port   query this nameserver instead of those in /etc/resolv.conf
//	-ca file         trust the CA certificates in this PEM file instead of the system roots
//	-from domain     send this as the 'from' of the STARTTLS stream header
//	-timeout d       bound for each DNS query, connect and handshake (default 5s)
//	-json            print the report as JSON
//
// Run with no DOMAIN it starts, in-process and on loopback only, a DNS server
// with a demo zone and two TLS s2s listeners (direct TLS and STARTTLS) with
// certificates from a test CA, then checks that demo domain and prints the
// full report. It needs no network and no configuration.
package main
