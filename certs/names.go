package certs

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// xmppServerService is the one place the s2s service name lives. An SRV-ID
// for it is "_" + service + "." + domain (RFC 4985 §2, RFC 6120 §13.7.1.2.1).
// Prosody once compared "xmpp-server" with "_xmpp-server" and matched
// nothing; keeping the name and its prefix together avoids that.
const xmppServerService = "xmpp-server"

// srvIDFor returns the SRV-ID that names domain (an A-label) for the
// xmpp-server service.
func srvIDFor(domain string) string {
	return "_" + xmppServerService + "." + domain
}

// NormalizeDomain returns the A-label form of an XMPP domain as used for
// comparison: IDNA2008 Lookup profile (lower-case), one trailing dot removed.
// The error names the bad domain and why it is bad.
func NormalizeDomain(domain string) (string, error) {
	d := strings.TrimSuffix(domain, ".")
	if d == "" {
		return "", fmt.Errorf("certs: invalid domain %q: empty", domain)
	}
	if !utf8.ValidString(d) {
		// idna would silently turn the bad bytes into U+FFFD.
		return "", fmt.Errorf("certs: invalid domain %q: not valid UTF-8", domain)
	}
	a, err := idna.Lookup.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("certs: invalid domain %q: %v", domain, err)
	}
	a = strings.ToLower(a)
	if len(a) > 253 {
		return "", fmt.Errorf("certs: invalid domain %q: longer than 253 octets", domain)
	}
	for label := range strings.SplitSeq(a, ".") {
		if label == "" {
			return "", fmt.Errorf("certs: invalid domain %q: empty label", domain)
		}
		if len(label) > 63 {
			return "", fmt.Errorf("certs: invalid domain %q: label longer than 63 octets", domain)
		}
	}
	return a, nil
}

// presentedDNS lower-cases a presented DNS name and drops one trailing dot.
// Presented DNS-IDs are already A-labels (IA5String); anything non-ASCII
// simply never matches.
func presentedDNS(s string) string {
	return strings.ToLower(strings.TrimSuffix(s, "."))
}

// matchDNSID reports whether the presented DNS-ID matches the reference
// domain ref (already normalised). RFC 9525 §6.3 / RFC 6125 §6.4.3: a
// wildcard is allowed only as the complete left-most label, matches exactly
// one label, and we require at least two labels after it so "*.org"-style
// public-suffix wildcards never match.
func matchDNSID(presented, ref string) bool {
	p := presentedDNS(presented)
	if p == "" || !isIA5([]byte(p)) {
		return false
	}
	rest, wild := strings.CutPrefix(p, "*.")
	if !wild {
		return !strings.Contains(p, "*") && p == ref
	}
	if strings.Contains(rest, "*") || strings.Count(rest, ".") < 1 || strings.Contains(rest, "..") {
		return false
	}
	first, refRest, ok := strings.Cut(ref, ".")
	return ok && first != "" && refRest == rest
}

// matchSRVID reports whether a presented SRV-ID names the xmpp-server
// service for ref. RFC 4985 §2: "_Service.Name"; RFC 6125/9525 allow
// wildcards only in DNS-IDs, so the name part must equal ref exactly.
func matchSRVID(presented, ref string) bool {
	p := presentedDNS(presented)
	return p == srvIDFor(ref)
}

// matchXmppAddr reports whether a presented XmppAddr names exactly the domain
// ref. RFC 6120 §13.7.1.4 puts a JID in the XmppAddr; only a bare domain
// (no localpart, no resourcepart) identifies a server. The value is UTF-8, so
// it is converted to an A-label before comparison.
func matchXmppAddr(presented, ref string) bool {
	if strings.ContainsAny(presented, "@/") {
		return false
	}
	a, err := NormalizeDomain(presented)
	return err == nil && a == ref
}
