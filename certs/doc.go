// Package certs answers one question for XMPP server-to-server links: is this
// certificate really that XMPP domain?
//
// It implements the certificate checks of RFC 6120 §13.7.2 and XEP-0178 with
// the identity rules of RFC 6125 §6 as updated by RFC 9525 and RFC 7590:
//
//   - SRV-ID (RFC 4985 SRVName otherName): only "_xmpp-server.<domain>";
//   - XmppAddr (RFC 6120 §13.7.1.4 id-on-xmppAddr otherName): a bare domain;
//   - DNS-ID (dNSName): exact, or a wildcard that is the whole left-most label;
//   - the subject common name only when VerifyOptions.AllowCommonName is set
//     and the certificate has none of the above.
//
// The SubjectAltName otherNames are parsed by this package, checking the
// type-id OID of each one, because a UTF8String otherName of another type
// (a Microsoft UPN, say) must never be read as an XmppAddr.
//
// Chains are verified with crypto/x509, accepting either the serverAuth or the
// clientAuth extended key usage: a server that initiates an s2s connection
// presents its server certificate, which since 2025 usually lacks clientAuth.
// For the same reason a crypto/tls server must not use
// tls.RequireAndVerifyClientCert; use [VerifyConnection] with
// tls.RequireAnyClientCert instead.
//
// DANE TLSA records (RFC 7671, RFC 7672, RFC 7673) are honoured when the
// caller passes DNSSEC-secure records in [VerifyOptions]: DANE-EE(3) pins the
// leaf with no name or expiry check, DANE-TA(2) pins a trust anchor in the
// presented chain and keeps the name check.
//
// [Reloader] serves certificates to a tls.Config by SNI and picks up renewed
// files without a restart. [TestCA] issues certificates with XMPP identities
// for tests and examples; production code never needs it.
//
// The package makes no network calls and keeps no global state.
package certs
