// Package policy decides who may federate over XMPP and how: the allowed
// partners and their TLS, SASL and dialback settings, the deployment-wide
// gateway settings, and which local users may use XMPP at all. It is the
// Go form of Lync Server 2013's XMPP allowed partners, XMPP gateway
// configuration and external access policies, enforced on every
// server-to-server stream (package s2s asks it) and every stanza.
//
// Hosts build a Policy with New from a Store and ask it questions on the
// hot path; administrators change it with Apply, or by editing the store
// and letting Reload or Watch take the change in.
//
// # Model
//
// A Config holds three things:
//
//   - Partners: the domains we federate with. A Partner has a main Domain
//     (its key) and AdditionalDomains, a PartnerType (trust level), the
//     negotiation Settings, and limits. A domain never covers its
//     sub-domains: "x.fabrikam.com" must be listed to be admitted
//     (REFERENCE §5.2 #19); an additional domain gets its partner's
//     settings, limits and type (#20). A domain belongs to one partner.
//   - Gateway: the deployment-wide settings (limits, timers, dialback
//     secret, block list, open federation, the federation kill switch).
//   - Policies: access policies. "global" always exists (EnableXMPPAccess
//     off as shipped, so no user federates until an administrator says so);
//     "site:NAME" applies to a site's users; other names are per-user
//     policies assigned through the Directory (Grant). Precedence is
//     per-user, then site, then global (REFERENCE §2.3).
//
// Domains are stored normalized: IDNA A-labels (RFC 5891), lower case, no
// trailing dot. New, Apply and Reload normalize; Validate reports names
// that cannot be normalized, and single-label names, which are legal in
// XMPP but cannot be reached as federation partners, so they are refused
// as "must be a fully qualified domain name".
//
// # Defaults
//
// Every zero value is Lync's default:
//
//	Partner.Type                         PublicUnverified
//	Partner.TLS, Partner.SASL            Required
//	Partner.DisableDialback              false (dialback on)
//	Partner.DisableKeepAlive             false (keepalive on)
//	Partner.ConnectionLimit              0: Gateway.PartnerConnectionLimit
//	Partner.StanzasPerSecond             0: Gateway.StanzasPerSecond
//	Gateway.ConnectionLimit              1000 streams (negative: no limit)
//	Gateway.PartnerConnectionLimit       20 streams (negative: no limit)
//	Gateway.KeepAliveInterval            300 s (negative: no keepalive)
//	Gateway.StreamEstablishmentTimeout   60 s (negative: none)
//	Gateway.StreamInactivityTimeout      600 s (negative: never)
//	Gateway.SubscriptionRefreshInterval  28800 s (8 h; negative: never)
//	Gateway.MaxStanzaBytes               512 KiB (at least 10000, RFC 6120 §13.12)
//	Gateway.StanzasPerSecond             1000 per partner (negative: unlimited)
//	Gateway.LogBodies                    false
//	Gateway.OpenFederation               false: only partners federate
//	Gateway.DialbackSecret               empty: New generates 32 bytes and saves them
//	AccessPolicy "global"                EnableXMPPAccess false
//
// Policy.Gateway returns the gateway settings with these defaults filled
// in; Policy.Config returns the configuration as stored.
//
// # The negotiation matrix
//
// A partner's Settings are a TLS × SASL × dialback triple: the 18 rows of
// REFERENCE §3.1. Settings.Validate refuses the rows that can never
// authenticate (6, 12, 14, 16, 18), and in strict mode (the Lync Control
// Panel's rule, Options.Strict) also rows 5 and 11, where SASL is asked
// for without TLS. It warns W-DB-UNUSED on row 1 (dialback on but never
// used: the default) and W-SASL-TLS on rows 3, 4, 5, 9, 10 and 11.
// Settings.ExpectedMethods gives the "expected methods" column.
//
// SASL EXTERNAL runs only over TLS, so SASL Required can be enforced only
// when TLS is Required too: with TLS Optional or NotSupported a peer can
// always skip TLS, and SASL Required then acts as Optional. This is what
// Settings.Effective returns, what negotiation applies, and why rows 3 and
// 5 expect dialback although SASL says Required.
//
// # Stores, watchers and directories
//
// A Store keeps the Config: MemStore in memory, FileStore in a TOML file
// an administrator edits, or the host's own database. Apply saves through
// it; Reload loads it again. A Store that can change behind the Policy's
// back (a hand-edited file, another node) implements Watcher so that Watch
// polls it cheaply. A Directory tells the Policy a local user's site and
// per-user policy; UserTable is an in-memory one. A Directory that is a
// Granter stores per-user assignments for Grant.
//
// # Hot path
//
// Remote, CheckUser, Access and Inbound read an immutable snapshot of the
// configuration behind an atomic pointer: no lock, no I/O (except the
// Directory, which CheckUser, Access and Inbound call), few allocations.
// Apply, Reload and Watch build a new snapshot and swap it in at once; new
// streams and stanzas see it immediately, and Changed lets the holders of
// long-lived streams re-check them. Each partner has one *rate.Limiter,
// shared by all its Remotes and kept, with its new rate, across changes.
//
// The dialback secret is never logged and prints as "[redacted]" in every
// format (Secret); message bodies are never logged here.
//
// # Wiring
//
//	users := new(policy.UserTable)
//	pol, err := policy.New(ctx, policy.NewMemStore(nil), &policy.Options{
//		Directory: users,
//		Logger:    logger,
//	})
//	...
//	_, err = pol.Apply(ctx, policy.ApplyOptions{},
//		policy.AddPartner(policy.Partner{Domain: "fabrikam.com", Type: policy.Federated}),
//		policy.SetAccessPolicy(policy.AccessPolicy{Name: "global",
//			EnableXMPPAccess: true, EnableFederationAccess: true}))
//	go pol.Watch(ctx, 0)
//
//	// On each stream and stanza:
//	remote, err := pol.Remote(peerDomain) // *Denial when refused
//	err = pol.CheckUser(ctx, localUser)   // *Denial when refused
//	dec, err := pol.Inbound(ctx, policy.Request{Action: policy.ActMessage, From: from, To: to})
package policy
