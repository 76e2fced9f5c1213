package dnsdisco

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Limits from RFC 1035 §2.3.4 (presentation form, no trailing dot).
const (
	maxNameLen  = 253
	maxLabelLen = 63
)

// parseIPLiteral reports whether s is an IP address literal, optionally in
// brackets ("[::1]"). Zones are rejected: they make no sense for s2s.
func parseIPLiteral(s string) (netip.Addr, bool) {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// toASCII validates a domain name and converts it to its lower-case A-label
// form without a trailing dot, using the IDNA Lookup profile (RFC 5891 §5,
// UTS #46) as RFC 6120 §3.2.1 requires for the domainpart before the SRV
// query. It returns an error wrapping ErrInvalidName naming the input.
func toASCII(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty name", ErrInvalidName)
	}
	if !utf8.ValidString(name) {
		// idna would map the bad bytes to U+FFFD and encode that: a name
		// nobody wrote, and one ToASCII itself rejects on the way back.
		return "", fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidName, name)
	}
	n := strings.TrimSuffix(name, ".")
	if n == "" {
		return "", fmt.Errorf("%w: %q is the root, not a domain", ErrInvalidName, name)
	}
	if len(n) > 4*maxNameLen {
		// Too long whatever the mapping does; don't spend CPU on it.
		return "", fmt.Errorf("%w: %d bytes exceeds %d", ErrInvalidName, len(n), maxNameLen)
	}
	a, err := idna.Lookup.ToASCII(n)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrInvalidName, name, err)
	}
	a = strings.ToLower(a)
	if err := checkLDH(a); err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrInvalidName, name, err)
	}
	return a, nil
}

// checkLDH checks an A-label name against the host name rules of RFC 1123
// §2.1 and the length limits of RFC 1035 §2.3.4.
func checkLDH(a string) error {
	if a == "" {
		return fmt.Errorf("empty name")
	}
	if len(a) > maxNameLen {
		return fmt.Errorf("name is %d bytes, more than %d", len(a), maxNameLen)
	}
	for label := range strings.SplitSeq(a, ".") {
		switch {
		case label == "":
			return fmt.Errorf("empty label")
		case len(label) > maxLabelLen:
			return fmt.Errorf("label %q is %d bytes, more than %d", label, len(label), maxLabelLen)
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Errorf("label %q starts or ends with a hyphen", label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c >= 'A' && c <= 'Z') {
				return fmt.Errorf("label %q has invalid character %q", label, c)
			}
		}
	}
	return nil
}
