package policy

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/xmppfed/xmppfed/internal/dnsname"
)

// MaxDescriptionBytes is the longest Description of a partner or access
// policy accepted.
const MaxDescriptionBytes = 1024

// MinDialbackSecretBytes is the shortest dialback secret accepted.
const MinDialbackSecretBytes = 16

// MinMaxStanzaBytes is the smallest MaxStanzaBytes accepted: RFC 6120
// §13.12 requires servers to accept stanzas of at least 10000 bytes.
const MinMaxStanzaBytes = 10000

// WarnXMPPWithoutFederation: an access policy enables XMPP access without
// federation access, which the Lync Control Panel did not allow
// (REFERENCE §5.6 #62). The XMPP setting works on its own here.
const WarnXMPPWithoutFederation = "W-XMPP-NOFED"

// FieldErrors returns the *FieldError values in err: err itself, or the
// ones it joins or wraps (errors.Join, as Config.Validate returns them).
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if fe, ok := e.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// problems collects field errors and warnings under a field prefix.
type problems struct {
	errs []error
	ws   []Warning
}

func (ps *problems) fail(field, value, reason string) {
	ps.errs = append(ps.errs, &FieldError{Field: field, Value: value, Reason: reason})
}

// merge adds err's field errors (or err itself) and ws with prefix before
// their fields.
func (ps *problems) merge(prefix string, ws []Warning, err error) {
	for _, w := range ws {
		w.Field = prefix + w.Field
		ps.ws = append(ps.ws, w)
	}
	if err == nil {
		return
	}
	fes := FieldErrors(err)
	if len(fes) == 0 {
		ps.errs = append(ps.errs, err)
		return
	}
	for _, fe := range fes {
		c := *fe
		c.Field = prefix + c.Field
		ps.errs = append(ps.errs, &c)
	}
}

func (ps *problems) result() ([]Warning, error) {
	return ps.ws, errors.Join(ps.errs...)
}

// checkDomain returns why d is not an acceptable partner or block-list
// domain, or "".
func checkDomain(d string) string {
	if d == "" {
		return "required"
	}
	n, err := dnsname.Normalize(d)
	if err != nil {
		var de *dnsname.Error
		if errors.As(err, &de) {
			return "not a valid domain name: " + de.Reason
		}
		return "not a valid domain name"
	}
	if !strings.Contains(n, ".") {
		// REFERENCE §5.1 #4: a syntactically valid FQDN. Single-label
		// names are legal XMPP domains but never reachable federation
		// partners, so they are refused as a likely typo.
		return "must be a fully qualified domain name (at least two labels, such as example.com)"
	}
	return ""
}

// checkText returns why a description is refused, or "".
func checkText(s string) string {
	switch {
	case len(s) > MaxDescriptionBytes:
		return fmt.Sprintf("longer than %d bytes", MaxDescriptionBytes)
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	}
	return ""
}

// Validate checks pt: a valid fully qualified Domain and
// AdditionalDomains (no duplicates, none equal to Domain), the settings
// (Settings.Validate with strict), a non-negative ConnectionLimit, a
// ProxyFQDN of "host" or "host:port", a finite StanzasPerSecond, known
// Type, TLS and SASL values and a Description of at most 1024 bytes of
// UTF-8. It returns every problem as a *FieldError (joined with
// errors.Join when there are several) whose Field is the policy file's key
// relative to the partner ("domain", "additional_domains[2]", "tls" ...),
// and the settings' warnings.
func (pt Partner) Validate(strict bool) ([]Warning, error) {
	var ps problems
	pt.validate(&ps, strict, true)
	return ps.result()
}

// validate adds pt's problems to ps; withDomain false skips Domain and
// AdditionalDomains (for Gateway.DefaultPartner).
func (pt Partner) validate(ps *problems, strict, withDomain bool) {
	if withDomain {
		main := ""
		if why := checkDomain(pt.Domain); why != "" {
			ps.fail("domain", pt.Domain, why)
		} else {
			main, _ = dnsname.Normalize(pt.Domain)
		}
		seen := make(map[string]int, len(pt.AdditionalDomains))
		for i, d := range pt.AdditionalDomains {
			field := "additional_domains[" + strconv.Itoa(i+1) + "]"
			if why := checkDomain(d); why != "" {
				ps.fail(field, d, why)
				continue
			}
			n, _ := dnsname.Normalize(d)
			if n == main {
				ps.fail(field, d, "the same as the partner's main domain")
				continue
			}
			if j, dup := seen[n]; dup {
				ps.fail(field, d, fmt.Sprintf("listed twice (also additional_domains[%d])", j))
				continue
			}
			seen[n] = i + 1
		}
	}
	if pt.Type > Federated {
		ps.fail("type", pt.Type.String(), "unknown partner type (federated, public-verified, public-unverified)")
	}
	ws, err := pt.Settings.Validate(strict)
	ps.merge("", ws, err)
	if pt.ConnectionLimit < 0 {
		ps.fail("connection_limit", strconv.Itoa(pt.ConnectionLimit), "must not be negative (0 means the gateway's partner_connection_limit)")
	}
	if pt.ProxyFQDN != "" {
		if why := checkHostPort(pt.ProxyFQDN); why != "" {
			ps.fail("proxy_fqdn", pt.ProxyFQDN, why)
		}
	}
	if math.IsNaN(pt.StanzasPerSecond) || math.IsInf(pt.StanzasPerSecond, 0) {
		ps.fail("stanzas_per_second", strconv.FormatFloat(pt.StanzasPerSecond, 'g', -1, 64), "must be a finite number (0: the gateway's; negative: unlimited)")
	}
	if why := checkText(pt.Description); why != "" {
		ps.fail("description", "", why)
	}
}

// checkHostPort returns why hp is not "host" or "host:port", or "".
func checkHostPort(hp string) string {
	host, port := hp, ""
	if strings.Contains(hp, ":") {
		h, p, err := net.SplitHostPort(hp)
		if err != nil {
			return "must be host or host:port: " + strings.TrimPrefix(err.Error(), "address "+hp+": ")
		}
		host, port = h, p
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port != strconv.Itoa(n) {
			return fmt.Sprintf("port %q must be a number from 1 to 65535", port)
		}
	}
	if net.ParseIP(host) != nil {
		return ""
	}
	if _, err := dnsname.Normalize(host); err != nil {
		var de *dnsname.Error
		if errors.As(err, &de) {
			return "host " + strconv.Quote(host) + " is not a valid domain name: " + de.Reason
		}
		return "host " + strconv.Quote(host) + " is not a valid domain name"
	}
	return ""
}

// Validate checks g: limits (negative means none), durations (zero: the
// default; negative: none; else at least one second),
// PartnerConnectionLimit not above ConnectionLimit, a DialbackSecret of
// at least 16 bytes when set, MaxStanzaBytes 0 or at least 10000 (RFC 6120
// §13.12), a finite StanzasPerSecond, Blocked entries that are domains or
// "*." and a domain, and DefaultPartner's settings (its domains are
// ignored). Every problem is a *FieldError (joined when there are several)
// whose Field is relative to the gateway ("connection_limit",
// "blocked[2]", "default_partner.tls" ...).
func (g Gateway) Validate() error {
	var ps problems
	g.validate(&ps, false)
	_, err := ps.result()
	return err
}

func (g Gateway) validate(ps *problems, strict bool) {
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"keepalive_interval", g.KeepAliveInterval},
		{"stream_establishment_timeout", g.StreamEstablishmentTimeout},
		{"stream_inactivity_timeout", g.StreamInactivityTimeout},
		{"subscription_refresh_interval", g.SubscriptionRefreshInterval},
	} {
		if d.v > 0 && d.v < time.Second {
			ps.fail(d.field, d.v.String(), "must be at least 1s (0: the default; negative: none)")
		}
	}
	eff := g.withDefaults()
	if eff.ConnectionLimit > 0 && eff.PartnerConnectionLimit > eff.ConnectionLimit {
		reason := fmt.Sprintf("must not exceed connection_limit (%d)", eff.ConnectionLimit)
		if g.PartnerConnectionLimit == 0 {
			reason = fmt.Sprintf("the default (%d) exceeds connection_limit (%d): set partner_connection_limit too", DefaultPartnerConnectionLimit, eff.ConnectionLimit)
		}
		ps.fail("partner_connection_limit", strconv.Itoa(eff.PartnerConnectionLimit), reason)
	}
	if n := g.DialbackSecret.Len(); n > 0 && n < MinDialbackSecretBytes {
		// The value is never shown.
		ps.fail("dialback_secret", "", fmt.Sprintf("%d bytes is too short: at least %d bytes, or empty to have one generated", n, MinDialbackSecretBytes))
	}
	if g.MaxStanzaBytes < 0 || g.MaxStanzaBytes > 0 && g.MaxStanzaBytes < MinMaxStanzaBytes {
		ps.fail("max_stanza_bytes", strconv.Itoa(g.MaxStanzaBytes),
			fmt.Sprintf("must be 0 (the default, %d) or at least %d (RFC 6120 §13.12)", DefaultMaxStanzaBytes, MinMaxStanzaBytes))
	}
	if math.IsNaN(g.StanzasPerSecond) || math.IsInf(g.StanzasPerSecond, 0) {
		ps.fail("stanzas_per_second", strconv.FormatFloat(g.StanzasPerSecond, 'g', -1, 64), "must be a finite number (0: the default; negative: unlimited)")
	}
	seen := make(map[string]int, len(g.Blocked))
	for i, b := range g.Blocked {
		field := "blocked[" + strconv.Itoa(i+1) + "]"
		base, _ := strings.CutPrefix(b, "*.")
		if why := checkDomain(base); why != "" {
			ps.fail(field, b, why+` (a domain, or "*." and a domain)`)
			continue
		}
		n := normalizeBlocked(b)
		if j, dup := seen[n]; dup {
			ps.fail(field, b, fmt.Sprintf("listed twice (also blocked[%d])", j))
			continue
		}
		seen[n] = i + 1
	}
	var dp problems
	g.DefaultPartner.validate(&dp, strict, false)
	if !g.OpenFederation {
		dp.ws = nil // the default partner is not used: no need to warn
	}
	ws, err := dp.result()
	ps.merge("default_partner.", ws, err)
}

// Validate checks ap: Name is "global", "site:NAME", "tag:NAME" or a
// per-user name without ':' (NAME non-empty, no control characters, at
// most 256 bytes), and Description at most 1024 bytes of UTF-8. It warns
// (WarnXMPPWithoutFederation, REFERENCE §5.6 #62) when EnableXMPPAccess is
// on without EnableFederationAccess. Fields are relative to the policy
// ("name", "enable_xmpp_access", "description").
func (ap AccessPolicy) Validate() ([]Warning, error) {
	var ps problems
	if why := checkPolicyName(ap.Name); why != "" {
		ps.fail("name", ap.Name, why)
	}
	if why := checkText(ap.Description); why != "" {
		ps.fail("description", "", why)
	}
	if ap.EnableXMPPAccess && !ap.EnableFederationAccess {
		ps.ws = append(ps.ws, Warning{Code: WarnXMPPWithoutFederation, Field: "enable_xmpp_access",
			Text: "XMPP access is enabled without federation access; the Lync Control Panel required both"})
	}
	return ps.result()
}

// checkPolicyName returns why name is not an access policy name, or "".
func checkPolicyName(name string) string {
	if name == "" {
		return "required"
	}
	if len(name) > 256 {
		return "longer than 256 bytes"
	}
	if !utf8.ValidString(name) {
		return "not valid UTF-8"
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "has a control character"
	}
	n := normalizePolicyName(name)
	if n == GlobalPolicy {
		return ""
	}
	if isSitePolicy(n) || strings.EqualFold(n, "site:") {
		site := n[len("site:"):]
		switch {
		case strings.TrimSpace(site) == "":
			return `"site:" needs a site name`
		case strings.Contains(site, ":"):
			return "a site name has no ':'"
		}
		return ""
	}
	if strings.TrimSpace(n) == "" {
		return `"tag:" needs a policy name`
	}
	if strings.Contains(n, ":") {
		return `must be "global", "site:NAME", "tag:NAME" or a name without ':'`
	}
	return ""
}

// Validate checks the whole configuration: the gateway (fields prefixed
// "gateway."), every partner ("partner[DOMAIN]." with the domain as given,
// or "partner[#N]." with its 1-based position when the domain is empty or
// invalid) and access policy ("policy[NAME]." or "policy[#N]."), and across
// entries: a domain (main or additional) of two partners (REFERENCE §5.1
// #6), two policies with one name, two policies for one site. strict is
// as for Settings.Validate. It returns all problems, joined with
// errors.Join (FieldErrors takes them apart), and all warnings, with
// prefixed fields.
func (c *Config) Validate(strict bool) ([]Warning, error) {
	var ps problems
	if c == nil {
		return nil, nil
	}
	var gp problems
	c.Gateway.validate(&gp, strict)
	ps.merge("gateway.", gp.ws, errors.Join(gp.errs...))

	type claim struct {
		index  int    // partner position
		prefix string // its field prefix
	}
	owners := make(map[string]claim) // normalized domain -> first partner with it
	for i, pt := range c.Partners {
		prefix := "partner[#" + strconv.Itoa(i+1) + "]."
		if checkDomain(pt.Domain) == "" {
			prefix = "partner[" + pt.Domain + "]."
		}
		ws, err := pt.Validate(strict)
		ps.merge(prefix, ws, err)
		take := func(field, d string) {
			n, err := dnsname.Normalize(d)
			if err != nil {
				return // reported by Partner.Validate
			}
			o, dup := owners[n]
			switch {
			case !dup:
				owners[n] = claim{i, prefix}
			case o.index != i:
				// REFERENCE §5.1 #6: one partner per domain.
				ps.fail(prefix+field, d, fmt.Sprintf("domain %q is also a domain of %s", n, strings.TrimSuffix(o.prefix, ".")))
			}
			// o.index == i: listed twice in one partner, reported by
			// Partner.Validate.
		}
		take("domain", pt.Domain)
		for j, d := range pt.AdditionalDomains {
			take("additional_domains["+strconv.Itoa(j+1)+"]", d)
		}
	}

	names := make(map[string]string)
	for i, ap := range c.Policies {
		prefix := "policy[#" + strconv.Itoa(i+1) + "]."
		if checkPolicyName(ap.Name) == "" {
			prefix = "policy[" + ap.Name + "]."
		}
		ws, err := ap.Validate()
		ps.merge(prefix, ws, err)
		if ap.Name == "" {
			continue
		}
		k := policyKey(ap.Name)
		if o, dup := names[k]; dup {
			reason := "a second policy with this name (also " + strings.TrimSuffix(o, ".") + ")"
			if isSitePolicy(normalizePolicyName(ap.Name)) {
				// REFERENCE §2.3: a site can have only one policy.
				reason = "a second policy for this site (also " + strings.TrimSuffix(o, ".") + ")"
			}
			ps.fail(prefix+"name", ap.Name, reason)
			continue
		}
		names[k] = prefix
	}
	return ps.result()
}
