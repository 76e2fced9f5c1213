package policy

import (
	"time"
)

// Partner is an allowed federation partner (Lync's XMPP allowed partner).
// The zero value with only Domain set has Lync's defaults:
// PublicUnverified, TLS and SASL Required, dialback on, keepalive on, the
// gateway's per-partner connection limit and rate.
type Partner struct {
	// Domain is the partner's main domain, the key of the partner. It is
	// stored normalized: IDNA A-label, lower case, no trailing dot.
	Domain string
	// AdditionalDomains are more domains of the same partner, each listed
	// explicitly: a domain never covers its sub-domains.
	AdditionalDomains []string
	// Type is the partner's trust level.
	Type PartnerType
	// Settings are the TLS, SASL and dialback settings (embedded, so
	// p.TLS, p.SASL and p.DisableDialback work).
	Settings
	// ConnectionLimit caps concurrent streams with the partner (all its
	// domains, both directions). Zero means the gateway's
	// PartnerConnectionLimit; a value above it is capped to it.
	ConnectionLimit int
	// DisableKeepAlive turns off keepalive checking and sending for the
	// partner (Lync EnableKeepAlive=false, as for Google Talk); the
	// gateway's StreamInactivityTimeout still applies.
	DisableKeepAlive bool
	// ProxyFQDN, when set, is where outbound streams to any of the
	// partner's domains go instead of the SRV lookup: "host" (port 5269)
	// or "host:port".
	ProxyFQDN string
	// StanzasPerSecond overrides the gateway's per-partner rate for
	// stanzas received from the partner. Zero means the gateway's;
	// negative means unlimited.
	StanzasPerSecond float64
	// Description is a free-text note for administrators.
	Description string
}

// Gateway holds the deployment-wide settings (Lync's XMPP gateway
// configuration, one per deployment). The zero value has Lync's defaults,
// with open federation off.
type Gateway struct {
	// ConnectionLimit caps concurrent streams in total. Zero means 1000;
	// negative means no limit.
	ConnectionLimit int
	// PartnerConnectionLimit caps concurrent streams with one partner.
	// Zero means 20; negative means no limit.
	PartnerConnectionLimit int
	// KeepAliveInterval is the longest a stream with a keepalive partner
	// may receive nothing (whitespace included) before it is closed; we
	// send whitespace keepalives well within it. Zero means 300 s;
	// negative means no keepalive for anyone.
	KeepAliveInterval time.Duration
	// StreamEstablishmentTimeout bounds TCP accept or connect to an
	// authenticated stream. Zero means 60 s; negative means none.
	StreamEstablishmentTimeout time.Duration
	// StreamInactivityTimeout closes a stream with no traffic in either
	// direction (connection-timeout). Zero means 600 s; negative means
	// never.
	StreamInactivityTimeout time.Duration
	// SubscriptionRefreshInterval is the longest a remote watcher's
	// subscription lives without being refreshed. Zero means 8 h;
	// negative means never expire.
	SubscriptionRefreshInterval time.Duration
	// LogBodies allows message bodies in logs (Lync
	// EnableLoggingAllMessageBodies). Off by default.
	LogBodies bool
	// DialbackSecret keys dialback (XEP-0185); every node serving the same
	// domains must share it. When empty, New generates 32 random bytes
	// and saves them to the Store. It never appears in logs or printed
	// values.
	DialbackSecret Secret
	// MaxStanzaBytes is the largest stanza accepted on a stream. Zero
	// means 512 KiB.
	MaxStanzaBytes int
	// StanzasPerSecond is the rate of stanzas accepted from one partner
	// (all its streams together); a faster partner is slowed down, not
	// cut off. Zero means 1000; negative means unlimited. The burst is
	// twice the rate.
	StanzasPerSecond float64
	// OpenFederation admits domains that are not partners, with the
	// settings of DefaultPartner. Off by default: unknown domains are
	// refused.
	OpenFederation bool
	// DefaultPartner gives the settings for domains admitted by open
	// federation (its Domain and AdditionalDomains are ignored).
	DefaultPartner Partner
	// Blocked domains are refused whatever else says otherwise. An entry
	// "example.com" blocks that domain only; "*.example.com" blocks
	// example.com and every domain below it.
	Blocked []string
	// DisableFederation stops all XMPP federation (Lync
	// AllowFederatedUsers=false), whatever the partners and policies say.
	DisableFederation bool
	// DenyUnverifiedSubscriptions answers a subscription request from a
	// PublicUnverified partner's user whom the local user has not
	// authorized with unsubscribed at once, instead of holding it
	// pending for the local user to decide.
	DenyUnverifiedSubscriptions bool
}

// Gateway defaults, from Lync's XMPP gateway configuration where it has
// one.
const (
	DefaultConnectionLimit             = 1000
	DefaultPartnerConnectionLimit      = 20
	DefaultKeepAliveInterval           = 300 * time.Second
	DefaultStreamEstablishmentTimeout  = 60 * time.Second
	DefaultStreamInactivityTimeout     = 600 * time.Second
	DefaultSubscriptionRefreshInterval = 28800 * time.Second
	DefaultMaxStanzaBytes              = 512 << 10
	DefaultStanzasPerSecond            = 1000
)

// AccessPolicy is an external access policy: whether the users it applies
// to may use XMPP federation.
type AccessPolicy struct {
	// Name is "global" (always exists; the fallback), "site:NAME" (applies
	// to every user of that site) or a per-user policy name, which applies
	// to the users the Directory assigns it to ("tag:NAME" is accepted
	// and stored as NAME).
	Name string
	// EnableXMPPAccess lets the users talk to contacts at XMPP partners.
	// Off in the shipped global policy.
	EnableXMPPAccess bool
	// EnableFederationAccess is the SIP-federation flag the XMPP one was
	// tied to in Lync; setting EnableXMPPAccess without it is accepted
	// with a warning.
	EnableFederationAccess bool
	// Description is a free-text note for administrators.
	Description string
}

// GlobalPolicy is the name of the global access policy.
const GlobalPolicy = "global"

// Config is one complete policy: what a Store keeps.
type Config struct {
	Gateway  Gateway   // deployment-wide settings
	Partners []Partner // the allowed partners
	// Policies are the access policies. The global one is implied when
	// missing (with EnableXMPPAccess off).
	Policies []AccessPolicy
}

// Secret is a secret value (the dialback secret). It prints, logs and
// marshals to JSON as "[redacted]"; only Bytes reveals it.
type Secret struct {
	b []byte
}

// NewSecret returns a Secret holding a copy of b.
func NewSecret(b []byte) Secret { return Secret{b: append([]byte(nil), b...)} }

// Bytes returns a copy of the secret.
func (s Secret) Bytes() []byte { return append([]byte(nil), s.b...) }

// Len returns the secret's length in bytes.
func (s Secret) Len() int { return len(s.b) }

// String returns "[redacted]" (or "[empty]").
func (s Secret) String() string {
	if len(s.b) == 0 {
		return "[empty]"
	}
	return "[redacted]"
}

// GoString is String, so %#v does not reveal the secret either.
func (s Secret) GoString() string { return s.String() }

// MarshalJSON returns the String form, never the secret.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }
