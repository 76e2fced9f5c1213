package policy

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// Store keeps a Config: in memory (MemStore), in a human-edited file
// (FileStore), or in the host's own database. Methods may be called
// concurrently.
type Store interface {
	// Load returns the stored configuration (nil fields and an empty
	// store mean the defaults). The caller owns the result.
	Load(ctx context.Context) (*Config, error)
	// Save replaces the stored configuration with c, atomically: after
	// an error the stored configuration is unchanged. c has been
	// validated; Save must not keep c (copy what it keeps).
	Save(ctx context.Context, c *Config) error
}

// Watcher is an optional interface of a Store whose data can change
// outside Policy.Apply (a file edited by hand, a database written by
// another node). Changed reports, cheaply, whether the data may differ
// from what the last Load returned.
type Watcher interface {
	Changed(ctx context.Context) (bool, error)
}

// Directory is the host's user directory, through which the policy learns
// which site and per-user policy apply to a local user. Methods may be
// called concurrently, on the hot path: keep them fast.
type Directory interface {
	// LookupUser returns what the policy needs to know about the local
	// user with the bare address user. ErrUnknownUser (wrapped or not)
	// means there is no such user.
	LookupUser(ctx context.Context, user jid.JID) (User, error)
}

// DirectoryFunc adapts a function to Directory.
type DirectoryFunc func(ctx context.Context, user jid.JID) (User, error)

// LookupUser calls f(ctx, user).
func (f DirectoryFunc) LookupUser(ctx context.Context, user jid.JID) (User, error) {
	return f(ctx, user)
}

var _ Directory = DirectoryFunc(nil)

// Granter is an optional interface of a Directory that stores per-user
// policy assignments; Policy.Grant uses it after checking that the policy
// exists.
type Granter interface {
	// SetUserPolicy assigns the per-user policy name to user; "" removes
	// the assignment.
	SetUserPolicy(ctx context.Context, user jid.JID, name string) error
}

// User is what the Directory tells the policy about a local user.
type User struct {
	// Site is the user's site ("" for none); the policy "site:"+Site
	// applies when it exists and no per-user policy does.
	Site string
	// Policy is the per-user policy assigned to the user ("" for none). A
	// name with no such policy falls back to the site or global policy.
	Policy string
	// UnsupportedHome marks a user homed where XMPP federation is not
	// available (Lync's Survivable Branch Appliance): no XMPP access,
	// whatever the policies say.
	UnsupportedHome bool
}

// ErrUnknownUser is returned by a Directory for a user that does not exist.
var ErrUnknownUser = errors.New("policy: unknown user")

// Options configure a Policy. The zero value is usable.
type Options struct {
	// Directory resolves local users' sites and per-user policies. Nil
	// means every user has only the global policy.
	Directory Directory
	// Strict refuses, in addition to the invalid rows of the matrix, the
	// rows the Lync Control Panel refused (TLS NotSupported with SASL
	// not NotSupported).
	Strict bool
	// Logger receives configuration events (reloads, refused changes,
	// warnings). Nil is silent. The dialback secret is never logged.
	Logger *slog.Logger
}

// Policy is the live, validated policy of a deployment: it answers the
// hot-path questions (may this domain federate, with which settings; may
// this user use XMPP) from an in-memory snapshot, and applies changes to
// its Store atomically. Its methods may be called concurrently. Make one
// with New; the zero Policy is not usable.
type Policy struct {
	store  Store
	dir    Directory
	strict bool
	log    *slog.Logger

	snap atomic.Pointer[snapshot] // the current compiled configuration

	mu sync.Mutex // serializes Apply, Reload and the snapshot swap

	chMu    sync.Mutex
	changed chan struct{} // closed at the next swap

	limiters     sync.Map     // partner key -> *limiterEntry
	openLimiters atomic.Int64 // entries in limiters for open federation
}

// New loads the configuration from store, validates it, generates and
// saves a dialback secret when there is none, and returns the Policy. A nil
// opts is the zero Options.
func New(ctx context.Context, store Store, opts *Options) (*Policy, error) {
	return newPolicy(ctx, store, opts)
}

// Config returns a deep copy of the current configuration, as stored
// (defaults not filled in; the secret included, still redacted when
// printed).
func (p *Policy) Config() *Config { return p.snap.Load().cfg.Clone() }

// Gateway returns the current gateway settings with every default filled
// in (zero durations and limits replaced by the defaults; negative ones
// left negative).
func (p *Policy) Gateway() Gateway { return p.snap.Load().gw.clone() }

// Generation counts the configuration changes this Policy has taken in
// (Apply, Reload, Watch); it starts at 1.
func (p *Policy) Generation() uint64 { return p.snap.Load().gen }

// Changed returns a channel that is closed at the next configuration
// change. Call it again after each change for the next one.
func (p *Policy) Changed() <-chan struct{} {
	p.chMu.Lock()
	defer p.chMu.Unlock()
	return p.changed
}

// Remote returns how to federate with a remote domain (any form; it is
// normalized), or a *Denial saying why not: RuleFederationDisabled,
// RuleBlocked, RuleNotPartner (not a partner's main or additional domain
// and open federation off) or RuleInvalidDomain. It does no I/O.
func (p *Policy) Remote(domain string) (*Remote, error) { return p.remote(p.snap.Load(), domain) }

// Admit reports whether the policy admits a remote domain (any form): nil,
// or the *Denial Remote would return. It is Remote for a caller that
// needs only the verdict (a check on every outbound stanza): it allocates
// nothing for an admitted domain.
func (p *Policy) Admit(domain string) error {
	_, _, _, err := p.snap.Load().partnerOf(domain)
	return err
}

// Remote is the policy for one remote domain at one moment: the partner it
// belongs to and the settings that apply. Values come from the snapshot
// current when it was made; ask again for a newer one.
type Remote struct {
	// Domain is the remote domain, normalized (A-label, lower case).
	Domain string
	// Partner is the main domain of the partner Domain belongs to; "" when
	// Domain was admitted by open federation.
	Partner string
	// Type is the partner's type (DefaultPartner's under open federation).
	Type PartnerType
	// Settings are the partner's negotiation settings, as configured
	// (call Effective for the ones negotiation applies).
	Settings Settings
	// ConnectionLimit is the partner's effective limit on concurrent
	// streams: the partner's, capped by the gateway's
	// PartnerConnectionLimit; negative means no limit.
	ConnectionLimit int
	// KeepAlive is the receive-silence limit for streams with the partner
	// (KeepAliveInterval when keepalive applies); 0 means no keepalive.
	KeepAlive time.Duration
	// ProxyFQDN is where to connect instead of looking up SRV records
	// ("host" or "host:port"); "" means DNS discovery.
	ProxyFQDN string
	// Limiter paces stanzas received from the partner. It is shared by
	// every Remote of the same partner (and kept across configuration
	// changes); nil means unlimited.
	Limiter *rate.Limiter
	// Generation is the configuration generation this Remote was made
	// from.
	Generation uint64

	snap *snapshot // the snapshot this Remote was made from, for SamePartner
}

// SamePartner reports whether domain (any form) belongs to the same
// partner as r: the only domains a dialback-authenticated stream may add
// by piggybacking (REFERENCE §5.3 #37). Under open federation a domain is
// its own partner.
func (r *Remote) SamePartner(domain string) bool { return r.samePartner(domain) }

// Access returns the effective access policy of a local user (bare
// address): the per-user policy the Directory names, else the site's,
// else the global one (REFERENCE §2.3 precedence). A user marked
// UnsupportedHome gets a copy with EnableXMPPAccess off. With no
// Directory every user has the global policy. A user the Directory does
// not know is a *Denial with RuleUnknownUser; other Directory errors are
// returned wrapped.
func (p *Policy) Access(ctx context.Context, user jid.JID) (AccessPolicy, error) {
	ap, _, err := p.access(ctx, p.snap.Load(), user)
	if err != nil {
		return AccessPolicy{}, err
	}
	return *ap, nil
}

// CheckUser returns nil when the local user (any address; its bare form
// is used) may send and receive XMPP traffic now, else a *Denial:
// RuleFederationDisabled, RuleUnknownUser, RuleUnsupportedHome or
// RuleNoXMPPAccess. Directory errors other than ErrUnknownUser are
// returned wrapped (errors.Is and errors.As see them). With no Directory
// every user has the global policy. It does no I/O other than the
// Directory's.
func (p *Policy) CheckUser(ctx context.Context, user jid.JID) error {
	return p.checkUser(ctx, p.snap.Load(), user)
}

// Action is what a remote user asks of a local user, for Inbound.
type Action uint8

// Actions.
const (
	// ActMessage: a message.
	ActMessage Action = iota + 1
	// ActSubscribe: a presence subscription request.
	ActSubscribe
	// ActProbe: a presence probe.
	ActProbe
)

// Request is an inbound request from a remote user to a local user, for
// Inbound.
type Request struct {
	Action Action  // what is asked
	From   jid.JID // the remote user
	To     jid.JID // the local user
	// Authorized reports whether the local user has authorized From (has
	// it as an approved contact: subscription from or both, or an
	// explicit approval). The host knows; translate asks it.
	Authorized bool
}

// Verdict is the outcome of Inbound.
type Verdict uint8

// Verdicts.
const (
	// Deliver: hand the request to the local user (for ActProbe: answer
	// with the local user's presence).
	Deliver Verdict = iota + 1
	// AutoApprove: a subscription approved without the local user's
	// action (Federated, PublicVerified): answer subscribed.
	AutoApprove
	// Hold: keep the subscription request pending for the local user to
	// decide; send nothing back yet, and no presence.
	Hold
	// Deny: refuse (the Decision's Err says how).
	Deny
)

// Decision is Inbound's answer.
type Decision struct {
	Verdict Verdict // the outcome
	// ShareNote reports whether the local user's personal note may go to
	// From (Federated partners only).
	ShareNote bool
	// Err is the *Denial when Verdict is Deny: its StanzaError is the
	// reply (for a refused subscription or probe the reply is
	// type='unsubscribed' instead, with no presence).
	Err error
}

// Inbound decides a remote user's request to a local user from the
// partner-type rules (REFERENCE §4.3, §5.6 #65-70), after the checks of
// Remote (on From's domain) and CheckUser (on To), whose refusals come
// back as a Deny Decision with their *Denial:
//
//   - ActSubscribe: auto-approved from Federated and PublicVerified
//     partners, and from anyone the user has Authorized already (RFC 6121
//     §3.1.3 pre-approval); from other PublicUnverified users it is held
//     for the user to decide, or denied with Gateway.DenyUnverifiedSubscriptions.
//   - ActMessage: delivered from Federated and PublicVerified partners and
//     from Authorized senders; else denied (forbidden).
//   - ActProbe: answered only for an Authorized watcher, whatever the
//     partner type; else denied, and no presence goes out.
//
// ShareNote is set for Federated partners only. The error is for an
// unknown Action and Directory failures, never for refusals.
func (p *Policy) Inbound(ctx context.Context, r Request) (Decision, error) {
	return p.inbound(ctx, r)
}

// Rule names the policy rule behind a Denial (for logs and metrics).
type Rule uint8

// Rules.
const (
	RuleFederationDisabled Rule = iota + 1 // Gateway.DisableFederation
	RuleBlocked                            // the domain is on Gateway.Blocked
	RuleNotPartner                         // not a partner, open federation off
	RuleInvalidDomain                      // not a valid domain name
	RuleUnknownUser                        // no such local user
	RuleNoXMPPAccess                       // the user's effective policy says no
	RuleUnsupportedHome                    // the user's home cannot federate
	RuleNotAuthorized                      // PublicUnverified sender the user has not authorized
	RuleOtherPartner                       // a piggybacked domain of another partner than the stream's
)

// String returns the rule's name in snake case ("not_partner"), fit for a
// metric label.
func (r Rule) String() string { return r.name() }

// Denial is a refusal by policy. Its StanzaError is what the remote or
// local sender is told.
type Denial struct {
	Rule   Rule   // which rule refused
	Domain string // the remote domain concerned, if any
	User   string // the local user concerned, if any (bare JID)
	// Partner is, for RuleOtherPartner, the partner (main domain, or the
	// domain itself under open federation) the stream belongs to.
	Partner string
}

// Error describes the refusal.
func (d *Denial) Error() string { return d.text() }

// StanzaError returns the stanza error for the refused stanza's sender:
// service-unavailable for every rule but RuleNotAuthorized (forbidden) and
// RuleInvalidDomain (jid-malformed); type cancel (auth for forbidden).
func (d *Denial) StanzaError() stanza.Error { return d.stanzaError() }

// Edit is one change to a Config, for Apply: use the constructors below
// (AddPartner, SetPartner, ...) or write your own.
type Edit func(c *Config) error

// ApplyOptions modify Apply.
type ApplyOptions struct {
	// DryRun validates and reports the change without saving it or
	// taking it in (Lync's -WhatIf).
	DryRun bool
}

// Report describes what Apply changed (or would change, for a dry run).
type Report struct {
	DryRun   bool      // the change was only validated, not saved
	Warnings []Warning // from the settings of added or changed partners and policies
	// Added, Changed and Removed list the partners (main domains) and
	// access policies (names prefixed "policy:") concerned, sorted.
	Added, Changed, Removed []string
}

// Apply applies edits, in order, to a copy of the current configuration,
// validates the result as a whole and then, unless opts.DryRun, saves it to
// the Store and takes it in at once: new streams use it immediately, and
// watchers of Changed learn of it. It is atomic: when an edit, the
// validation or the Store fails, nothing changes and the error (a
// *FieldError for invalid values, several joined with errors.Join; see
// FieldErrors) says why. Concurrent Applies are serialized.
//
// The edits work on the configuration the Policy holds, not on a fresh
// Load: a change made to the Store behind the Policy's back and not yet
// taken in by Reload or Watch is overwritten. An Apply that changes
// nothing saves nothing and keeps the generation.
func (p *Policy) Apply(ctx context.Context, opts ApplyOptions, edits ...Edit) (*Report, error) {
	return p.apply(ctx, opts, edits)
}

// Reload loads the Store again and takes the configuration in when it is
// valid and differs from the current one; an invalid one is refused (the
// current one stays) and returned as the error. A loaded configuration
// without a dialback secret keeps the current secret, so that running
// dialback keys stay valid.
func (p *Policy) Reload(ctx context.Context) error {
	_, err := p.reload(ctx)
	return err
}

// Watch reloads the configuration every interval (zero: 5 s) while the
// Store's data changed (Watcher; a Store without it is reloaded and
// compared every time), until ctx is done, when it returns ctx.Err().
// Reload errors are logged and the current configuration kept. Run it in
// a goroutine of your own.
func (p *Policy) Watch(ctx context.Context, interval time.Duration) error {
	return p.watch(ctx, interval)
}

// Grant assigns the per-user policy name to user through the Directory's
// Granter ("" removes the assignment). It fails when no policy has that
// name, or when the Directory is not a Granter.
func (p *Policy) Grant(ctx context.Context, user jid.JID, name string) error {
	return p.grant(ctx, user, name)
}

// Partners returns the partners whose main domain matches pattern, sorted
// by domain: "" or "*" for all, otherwise a pattern where '*' matches any
// run of characters ("*.org" gives the ones ending in ".org").
func (p *Policy) Partners(pattern string) []Partner { return p.snap.Load().partners(pattern) }

// AddPartner adds a new partner (its domains normalized); it fails with
// an error wrapping ErrExists when the partner exists (REFERENCE §5.1 #5)
// or one of its domains, main or additional, belongs to another partner
// (#6).
func AddPartner(pt Partner) Edit { return addPartner(pt.Clone()) }

// SetPartner replaces the partner with pt.Domain (any form); it fails with
// an error wrapping ErrNotFound when there is none, and ErrExists when one
// of pt's additional domains belongs to another partner.
func SetPartner(pt Partner) Edit { return setPartner(pt.Clone()) }

// RemovePartner removes the partner with main domain domain (any form); it
// fails with an error wrapping ErrNotFound when there is none. Removing
// every partner stops federation, unless OpenFederation is on
// (REFERENCE §5.1 #15).
func RemovePartner(domain string) Edit { return removePartner(domain) }

// ListEdit changes a list of strings the way Lync's PSListModifier does:
// Replace (when non-nil, or Clear) first, then Remove, then Add.
type ListEdit struct {
	// Clear empties the list first (Lync's $null).
	Clear bool
	// Replace, when non-nil, replaces the whole list.
	Replace []string
	// Remove removes entries; each must be on the list.
	Remove []string
	// Add appends entries; none may be on the list already.
	Add []string
}

// EditDomains changes the additional domains of the partner with main
// domain domain (REFERENCE §5.1 #7). Removing an entry leaves the others
// as they are. It fails with an error naming the domain, wrapping
// ErrNotFound for a missing partner or a removed domain that is not on the
// list, and ErrExists for an added domain that is on it already or
// belongs to another partner.
func EditDomains(domain string, e ListEdit) Edit { return editDomains(domain, e.clone()) }

// SetGateway replaces the gateway settings. A zero DialbackSecret keeps
// the current secret.
func SetGateway(g Gateway) Edit { return setGateway(g.clone()) }

// Block adds domains to the block list: "example.com" blocks that
// domain, "*.example.com" it and every domain below it. A domain on the
// list already is left as it is.
func Block(domains ...string) Edit { return block(slices.Clone(domains)) }

// Unblock removes domains from the block list (spelled as they were
// blocked, in any form); it fails with an error wrapping ErrNotFound for
// one that is not on it.
func Unblock(domains ...string) Edit { return unblock(slices.Clone(domains)) }

// SetAccessPolicy creates or replaces the access policy with ap.Name
// (names compare case-insensitively; "tag:NAME" is stored as NAME). The
// global policy always exists, so setting "global" changes it; a site has
// one policy, "site:NAME".
func SetAccessPolicy(ap AccessPolicy) Edit { return setAccessPolicy(ap) }

// RemoveAccessPolicy removes the access policy name: "global" is reset to
// its defaults; removing a per-user policy sends its users back to their
// site's or the global policy (REFERENCE §5.6 #60). It fails with an
// error wrapping ErrNotFound when there is none (never for "global").
func RemoveAccessPolicy(name string) Edit { return removeAccessPolicy(name) }
