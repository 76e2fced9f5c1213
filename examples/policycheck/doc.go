// Command policycheck checks an xmppfed policy file and shows what it
// means: every partner with its TLS, SASL and dialback settings and the
// authentication methods a stream with it can end up with (the "expected
// methods" column of the Lync negotiation matrix), the access policies,
// and every warning and error with its line.
//
// Usage:
//
//	policycheck [-strict] [FILE]
//
// With no FILE it checks the commented example policy file embedded in it,
// partners.toml, which shows the common partner configurations: the
// strongest (SASL over TLS only), SASL then TLS dialback, the adaptive
// one, the "Google Talk" TCP dialback partner, additional domains and a
// proxy, partner types, a block list and global, site and per-user access
// policies. Copy it as a starting point.
//
// -strict also refuses what the Lync Control Panel refused: TLS
// not-supported with SASL other than not-supported.
//
// The exit status is 0 when the file is valid (warnings included), 1 when
// it is not, and 2 for bad usage.
package main
