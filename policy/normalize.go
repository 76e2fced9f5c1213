package policy

import (
	"strings"

	"github.com/xmppfed/xmppfed/internal/dnsname"
)

// normalizeConfig puts c in its stored form, in place: domains as IDNA
// A-labels in lower case without a trailing dot (names that do not
// normalize are left as given, for Validate to report), block-list
// wildcards as "*." plus the normalized domain, "tag:NAME" policy names as
// NAME, and empty lists as nil.
func normalizeConfig(c *Config) {
	for i := range c.Partners {
		normalizePartner(&c.Partners[i])
	}
	normalizePartner(&c.Gateway.DefaultPartner)
	for i, b := range c.Gateway.Blocked {
		c.Gateway.Blocked[i] = normalizeBlocked(b)
	}
	if len(c.Gateway.Blocked) == 0 {
		c.Gateway.Blocked = nil
	}
	if len(c.Partners) == 0 {
		c.Partners = nil
	}
	for i := range c.Policies {
		c.Policies[i].Name = normalizePolicyName(c.Policies[i].Name)
	}
	if len(c.Policies) == 0 {
		c.Policies = nil
	}
}

// normalizePartner normalizes pt's domains in place.
func normalizePartner(pt *Partner) {
	pt.Domain = normalizeDomain(pt.Domain)
	for i, d := range pt.AdditionalDomains {
		pt.AdditionalDomains[i] = normalizeDomain(d)
	}
	if len(pt.AdditionalDomains) == 0 {
		pt.AdditionalDomains = nil
	}
}

// normalizeDomain returns d normalized, or d itself when it is not a
// valid domain name.
func normalizeDomain(d string) string {
	if n, err := dnsname.Normalize(d); err == nil {
		return n
	}
	return d
}

// normalizeBlocked normalizes a block-list entry: a domain or "*." and a
// domain.
func normalizeBlocked(b string) string {
	if base, ok := strings.CutPrefix(b, "*."); ok {
		return "*." + normalizeDomain(base)
	}
	return normalizeDomain(b)
}

// normalizePolicyName returns the stored form of an access policy name:
// "tag:NAME" becomes NAME, "Global" (any case) "global", "SITE:x"
// "site:x"; the rest is kept as given.
func normalizePolicyName(name string) string {
	if len(name) > 4 && strings.EqualFold(name[:4], "tag:") {
		name = name[4:]
	}
	switch {
	case strings.EqualFold(name, GlobalPolicy):
		return GlobalPolicy
	case len(name) > 5 && strings.EqualFold(name[:5], "site:") && name[:5] != "site:":
		return "site:" + name[5:]
	}
	return name
}
