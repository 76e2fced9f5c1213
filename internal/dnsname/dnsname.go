package dnsname

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// MaxLength is the longest domain name accepted, in octets, without the
// trailing dot (RFC 1035 §2.3.4).
const MaxLength = 253

// MaxLabelLength is the longest label accepted, in octets (RFC 1035 §2.3.4).
const MaxLabelLength = 63

// Error is a domain name that Normalize refused.
type Error struct {
	Domain string // the name as given
	Reason string // why it was refused
}

// Error returns `invalid domain "x": reason`.
func (e *Error) Error() string {
	return fmt.Sprintf("invalid domain %q: %s", e.Domain, e.Reason)
}

// Normalize returns domain's canonical form: IDNA A-labels, lower case,
// without the one trailing dot it may have. It returns an *Error naming
// the reason when domain is empty, not valid UTF-8, refused by IDNA's
// Lookup profile, longer than 253 octets, has an empty label or one longer
// than 63 octets, or has a character other than a letter, digit or hyphen
// (or a label starting or ending with a hyphen) after conversion.
func Normalize(domain string) (string, error) {
	d := strings.TrimSuffix(domain, ".")
	if d == "" {
		return "", &Error{Domain: domain, Reason: "empty"}
	}
	if !utf8.ValidString(d) {
		// idna would quietly turn the bad bytes into U+FFFD.
		return "", &Error{Domain: domain, Reason: "not valid UTF-8"}
	}
	if isLowerLDH(d) {
		// Fast path: already canonical ASCII; only the lengths remain.
		if err := checkLabels(domain, d); err != nil {
			return "", err
		}
		return d, nil
	}
	a, err := idna.Lookup.ToASCII(d)
	if err != nil {
		return "", &Error{Domain: domain, Reason: "not a valid IDNA name: " + err.Error()}
	}
	a = strings.ToLower(a)
	if err := checkLabels(domain, a); err != nil {
		return "", err
	}
	for i := 0; i < len(a); i++ {
		if c := a[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return "", &Error{Domain: domain, Reason: fmt.Sprintf("character %q is not a letter, digit or hyphen", c)}
		}
	}
	return a, nil
}

// isLowerLDH reports whether s has only lower-case letters, digits,
// hyphens and dots, with no label starting "xn--" (which IDNA must check).
func isLowerLDH(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return !strings.HasPrefix(s, "xn--") && !strings.Contains(s, ".xn--")
}

// checkLabels checks the total and label lengths of the A-label form a
// and that no label starts or ends with a hyphen (RFC 1123 §2.1).
func checkLabels(domain, a string) error {
	if len(a) > MaxLength {
		return &Error{Domain: domain, Reason: fmt.Sprintf("longer than %d octets", MaxLength)}
	}
	for label := range strings.SplitSeq(a, ".") {
		switch {
		case label == "":
			return &Error{Domain: domain, Reason: "empty label"}
		case len(label) > MaxLabelLength:
			return &Error{Domain: domain, Reason: fmt.Sprintf("label longer than %d octets", MaxLabelLength)}
		case label[0] == '-' || label[len(label)-1] == '-':
			return &Error{Domain: domain, Reason: fmt.Sprintf("label %q starts or ends with a hyphen", label)}
		}
	}
	return nil
}

// Match reports whether name matches pattern, where '*' in pattern
// matches any run of characters (none included) and everything else
// matches itself, ASCII case-insensitively. "" and "*" match every name.
// Both are compared as given: normalize them first.
func Match(pattern, name string) bool {
	if pattern == "" {
		return true
	}
	// Iterative glob with single-star backtracking: linear in practice,
	// O(len(pattern)*len(name)) at worst, never exponential.
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case p < len(pattern) && lower(pattern[p]) == lower(name[n]):
			p++
			n++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
