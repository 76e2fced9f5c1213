// Package dnsdisco finds where an XMPP domain's server-to-server service
// lives: the DNS side of RFC 6120 §3.2 and XEP-0368, plus the TLSA lookup
// of DANE for SRV (RFC 6698, RFC 7673).
//
// [Resolver.LookupServer] validates and IDNA-converts the domain, queries
// the _xmpps-server._tcp (direct TLS, XEP-0368) and _xmpp-server._tcp
// (STARTTLS, RFC 6120) SRV records, merges them by priority and RFC 2782
// weighted order, honours the "." target that means "no service", falls
// back to the domain itself on port 5269 only when no SRV record exists at
// all, and resolves every target's AAAA and A records (hosts file first,
// CNAMEs followed). Failed SRV queries are errors, never treated as "no
// SRV", so an attacker who drops packets cannot force the fallback.
//
// Queries carry EDNS0 with the DO and AD bits (RFC 6840 §5.7); the AD bit
// of each answer is reported as [Target.Secure] and [Target.AddrsSecure].
// That bit is only as trustworthy as the path to the validating resolver
// (RFC 6840 §5.8): use a local resolver. Truncated UDP answers are retried
// over TCP. Answers are cached by name and type, respecting TTLs, with
// negative caching from the SOA (RFC 2308).
//
// Errors are [*LookupError] values wrapping one of the sentinels
// ([ErrInvalidName], [ErrNoService], [ErrNotFound], [ErrNoAddress],
// [ErrTimeout], [ErrServerFailure]); [LookupError.NotFound] and
// [LookupError.Temporary] map them to the XMPP conditions
// remote-server-not-found and remote-server-timeout.
//
// This package does not dial or speak XMPP. Tests can use the loopback DNS
// server in package dnsdiscotest, or [Resolver.SetOverride].
package dnsdisco
