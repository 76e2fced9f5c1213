package policy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/internal/dnsname"
)

// secretBytes is the size of a generated dialback secret (REFERENCE §5.3
// #35: at least 32 bytes).
const secretBytes = 32

// defaultWatchInterval is Watch's interval when none is given.
const defaultWatchInterval = 5 * time.Second

// ErrNotFound is wrapped by the errors of edits that name a partner,
// domain or access policy that does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is wrapped by the errors of edits that would add a partner,
// domain or list entry that exists already.
var ErrExists = errors.New("already exists")

// snapshot is one compiled, validated configuration. It is never modified
// after compile returns, so readers need no lock.
type snapshot struct {
	cfg      *Config                  // normalized, validated, as stored
	gw       Gateway                  // cfg.Gateway with the defaults filled in
	gen      uint64                   // generation, from 1
	domains  map[string]*Partner      // main and additional domain -> partner (in cfg)
	blocked  map[string]struct{}      // exact entries (and the base of wildcards)
	wildcard map[string]struct{}      // "*.example.com" entries, as "example.com"
	policies map[string]*AccessPolicy // policyKey(name) -> policy
	sites    map[string]*AccessPolicy // lower-case site name -> its policy
	global   *AccessPolicy
}

// compile builds the snapshot of c, which must be normalized and valid;
// c is kept, so the caller must not modify it afterwards.
func compile(c *Config, gen uint64) *snapshot {
	s := &snapshot{
		cfg:      c,
		gw:       c.Gateway.withDefaults(),
		gen:      gen,
		domains:  make(map[string]*Partner),
		blocked:  make(map[string]struct{}),
		wildcard: make(map[string]struct{}),
		policies: make(map[string]*AccessPolicy),
		sites:    make(map[string]*AccessPolicy),
	}
	for i := range c.Partners {
		pt := &c.Partners[i]
		s.domains[pt.Domain] = pt
		for _, d := range pt.AdditionalDomains {
			s.domains[d] = pt
		}
	}
	for _, b := range c.Gateway.Blocked {
		if base, ok := strings.CutPrefix(b, "*."); ok {
			s.wildcard[base] = struct{}{}
			s.blocked[base] = struct{}{}
		} else {
			s.blocked[b] = struct{}{}
		}
	}
	for i := range c.Policies {
		ap := &c.Policies[i]
		s.policies[policyKey(ap.Name)] = ap
		if isSitePolicy(ap.Name) {
			s.sites[strings.ToLower(ap.Name[len("site:"):])] = ap
		}
	}
	if g, ok := s.policies[GlobalPolicy]; ok {
		s.global = g
	} else {
		s.global = &AccessPolicy{Name: GlobalPolicy}
	}
	return s
}

// isBlocked reports whether the normalized domain d is on the block list.
func (s *snapshot) isBlocked(d string) bool {
	if _, ok := s.blocked[d]; ok {
		return true
	}
	if len(s.wildcard) == 0 {
		return false
	}
	for i := 0; i < len(d); i++ {
		if d[i] == '.' {
			if _, ok := s.wildcard[d[i+1:]]; ok {
				return true
			}
		}
	}
	return false
}

// admit returns the partner whose settings apply to the normalized domain
// d and its limiter key, or the Rule refusing it.
func (s *snapshot) admit(d string) (pt *Partner, key string, refused Rule) {
	if s.gw.DisableFederation {
		return nil, "", RuleFederationDisabled
	}
	if s.isBlocked(d) {
		return nil, "", RuleBlocked
	}
	if pt := s.domains[d]; pt != nil {
		// Exact match only: a partner never covers its sub-domains
		// (REFERENCE §5.2 #19).
		return pt, pt.Domain, 0
	}
	if s.gw.OpenFederation {
		return &s.gw.DefaultPartner, d, 0
	}
	return nil, "", RuleNotPartner
}

// rateFor returns the stanza rate for the partner pt: its own when set,
// else the gateway's; negative means unlimited.
func (s *snapshot) rateFor(pt *Partner) float64 {
	if pt.StanzasPerSecond != 0 {
		return pt.StanzasPerSecond
	}
	return s.gw.StanzasPerSecond
}

// connectionLimit returns min(partner's limit when set, gateway's
// per-partner limit); negative means none (REFERENCE §5.5 #48).
func (s *snapshot) connectionLimit(pt *Partner) int {
	gl, pl := s.gw.PartnerConnectionLimit, pt.ConnectionLimit
	switch {
	case pl > 0 && gl > 0:
		return min(pl, gl)
	case pl > 0:
		return pl
	case gl > 0:
		return gl
	}
	return -1
}

// partners returns copies of the partners matching pattern, sorted.
func (s *snapshot) partners(pattern string) []Partner {
	pattern = strings.ToLower(pattern)
	var out []Partner
	for i := range s.cfg.Partners {
		if dnsname.Match(pattern, s.cfg.Partners[i].Domain) {
			out = append(out, s.cfg.Partners[i].Clone())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Domain < out[j].Domain })
	return out
}

// resolve returns the access policy for u: per-user, else site, else
// global (REFERENCE §2.3; §5.6 #57, #60).
func (s *snapshot) resolve(u User) *AccessPolicy {
	if u.Policy != "" {
		if ap, ok := s.policies[policyKey(u.Policy)]; ok && !isSitePolicy(ap.Name) && ap.Name != GlobalPolicy {
			return ap
		}
	}
	if u.Site != "" {
		if ap, ok := s.sites[strings.ToLower(u.Site)]; ok {
			return ap
		}
	}
	return s.global
}

// policyKey is the map key of an access policy name: normalized and
// compared case-insensitively.
func policyKey(name string) string { return strings.ToLower(normalizePolicyName(name)) }

func isSitePolicy(name string) bool {
	return len(name) > 5 && strings.EqualFold(name[:5], "site:")
}

// limiterEntry is a partner's shared rate limiter and the generation
// whose rate it has.
type limiterEntry struct {
	gen  atomic.Uint64
	mu   sync.Mutex
	lim  *rate.Limiter
	open bool // for a domain admitted by open federation
}

// burstFor is twice the rate, at least 1.
func burstFor(r float64) int {
	b := 2 * r
	if b < 1 || b != b {
		return 1
	}
	if b > 1<<30 {
		return 1 << 30
	}
	return int(b)
}

// update sets the entry's rate for generation gen unless it already has
// that generation's or a newer one's.
func (e *limiterEntry) update(gen uint64, r float64) {
	if e.gen.Load() >= gen {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gen.Load() >= gen {
		return
	}
	if e.lim.Limit() != rate.Limit(r) {
		e.lim.SetLimit(rate.Limit(r))
	}
	if b := burstFor(r); e.lim.Burst() != b {
		e.lim.SetBurst(b)
	}
	e.gen.Store(gen)
}

// maxOpenLimiters bounds the shared limiters kept for domains admitted by
// open federation, where every domain is its own partner: a peer naming
// ever new domains must not grow memory without bound. Beyond it, a
// domain gets a limiter of its own per Remote.
const maxOpenLimiters = 10000

// limiter returns the shared limiter for key with rate r (nil when r is
// negative: unlimited), creating it on first use. open says key is a
// domain admitted by open federation.
func (p *Policy) limiter(s *snapshot, key string, r float64, open bool) *rate.Limiter {
	if r < 0 {
		return nil
	}
	if v, ok := p.limiters.Load(key); ok {
		e := v.(*limiterEntry)
		e.update(s.gen, r)
		return e.lim
	}
	e := &limiterEntry{lim: rate.NewLimiter(rate.Limit(r), burstFor(r)), open: open}
	e.gen.Store(s.gen)
	if open {
		if p.openLimiters.Add(1) > maxOpenLimiters {
			p.openLimiters.Add(-1)
			return e.lim
		}
	}
	v, loaded := p.limiters.LoadOrStore(key, e)
	if loaded && open {
		p.openLimiters.Add(-1)
	}
	e = v.(*limiterEntry)
	e.update(s.gen, r)
	return e.lim
}

// refreshLimiters brings the existing limiters to snapshot s: new rates
// for the partners that remain, and none for the ones that went.
func (p *Policy) refreshLimiters(s *snapshot) {
	p.limiters.Range(func(k, v any) bool {
		key, e := k.(string), v.(*limiterEntry)
		pt, pkey, refused := s.admit(key)
		if refused != 0 || pkey != key || s.rateFor(pt) < 0 || e.open != (s.domains[key] == nil) {
			if _, deleted := p.limiters.LoadAndDelete(key); deleted && e.open {
				p.openLimiters.Add(-1)
			}
			return true
		}
		e.update(s.gen, s.rateFor(pt))
		return true
	})
}

// remote implements Remote against snapshot s.
func (p *Policy) remote(s *snapshot, domain string) (*Remote, error) {
	d, pt, key, err := s.partnerOf(domain)
	if err != nil {
		return nil, err
	}
	r := &Remote{
		Domain:          d,
		Type:            pt.Type,
		Settings:        pt.Settings,
		ConnectionLimit: s.connectionLimit(pt),
		ProxyFQDN:       pt.ProxyFQDN,
		Limiter:         p.limiter(s, key, s.rateFor(pt), s.domains[d] == nil),
		Generation:      s.gen,
		snap:            s,
	}
	if q := s.domains[d]; q != nil {
		r.Partner = q.Domain
	}
	if ka := s.gw.KeepAliveInterval; ka > 0 && !pt.DisableKeepAlive {
		r.KeepAlive = ka
	}
	return r, nil
}

// partnerOf normalizes domain and admits it: the domain's normalized
// form, its partner (the DefaultPartner under open federation) and the
// partner's limiter key, or the Denial that refuses it. Unlike remote it
// allocates nothing for an admitted domain: the per-stanza checks use it.
func (s *snapshot) partnerOf(domain string) (string, *Partner, string, error) {
	d, err := dnsname.Normalize(domain)
	if err != nil {
		return "", nil, "", &Denial{Rule: RuleInvalidDomain, Domain: domain}
	}
	pt, key, refused := s.admit(d)
	if refused != 0 {
		return "", nil, "", &Denial{Rule: refused, Domain: d}
	}
	return d, pt, key, nil
}

// samePartner implements Remote.SamePartner.
func (r *Remote) samePartner(domain string) bool {
	d, err := dnsname.Normalize(domain)
	if err != nil {
		return false
	}
	if r.snap == nil || r.Partner == "" {
		return d == r.Domain
	}
	pt := r.snap.domains[d]
	return pt != nil && pt.Domain == r.Partner
}

// access returns the effective access policy of user and what the
// Directory said about it.
func (p *Policy) access(ctx context.Context, s *snapshot, user jid.JID) (*AccessPolicy, User, error) {
	if p.dir == nil {
		return s.global, User{}, nil
	}
	bare := user.Bare()
	u, err := p.dir.LookupUser(ctx, bare)
	if err != nil {
		if errors.Is(err, ErrUnknownUser) {
			return nil, User{}, &Denial{Rule: RuleUnknownUser, User: bare.String()}
		}
		return nil, User{}, fmt.Errorf("policy: looking up user %q: %w", bare.String(), err)
	}
	ap := s.resolve(u)
	if u.UnsupportedHome {
		// REFERENCE §5.6 #71: treated as EnableXMPPAccess=false.
		c := *ap
		c.EnableXMPPAccess = false
		ap = &c
	}
	return ap, u, nil
}

// checkUser implements CheckUser against snapshot s.
func (p *Policy) checkUser(ctx context.Context, s *snapshot, user jid.JID) error {
	if s.gw.DisableFederation {
		// REFERENCE §5.6 #63: the kill switch beats every policy.
		return &Denial{Rule: RuleFederationDisabled, User: user.Bare().String()}
	}
	ap, u, err := p.access(ctx, s, user)
	if err != nil {
		return err
	}
	switch {
	case u.UnsupportedHome:
		return &Denial{Rule: RuleUnsupportedHome, User: user.Bare().String()}
	case !ap.EnableXMPPAccess:
		return &Denial{Rule: RuleNoXMPPAccess, User: user.Bare().String()}
	}
	return nil
}

// inbound implements Inbound (REFERENCE §4.3; §5.6 #65-70).
func (p *Policy) inbound(ctx context.Context, r Request) (Decision, error) {
	switch r.Action {
	case ActMessage, ActSubscribe, ActProbe:
	default:
		return Decision{}, fmt.Errorf("policy: Inbound: unknown Action %d", r.Action)
	}
	s := p.snap.Load()
	dom, pt, _, err := s.partnerOf(r.From.Domainpart())
	if err != nil {
		return Decision{Verdict: Deny, Err: err}, nil
	}
	if err := p.checkUser(ctx, s, r.To); err != nil {
		var d *Denial
		if errors.As(err, &d) {
			return Decision{Verdict: Deny, Err: d}, nil
		}
		return Decision{}, err
	}
	// Built only when it refuses: a delivered stanza allocates nothing here.
	notAuthorized := func() *Denial {
		return &Denial{Rule: RuleNotAuthorized, Domain: dom, User: r.To.Bare().String()}
	}
	typ := pt.Type
	note := typ.SharesNote()
	switch r.Action {
	case ActMessage:
		// #68, #69: PublicUnverified senders need the user's approval.
		if r.Authorized || typ.MessageWithoutApproval() {
			return Decision{Verdict: Deliver, ShareNote: note}, nil
		}
		return Decision{Verdict: Deny, Err: notAuthorized()}, nil
	case ActSubscribe:
		// #65-67: auto-approved for the trusted types and for a contact
		// the user authorized already (RFC 6121 §3.1.3 pre-approval).
		if r.Authorized || typ.SubscribeWithoutApproval() {
			return Decision{Verdict: AutoApprove, ShareNote: note}, nil
		}
		if s.gw.DenyUnverifiedSubscriptions {
			return Decision{Verdict: Deny, Err: notAuthorized()}, nil
		}
		return Decision{Verdict: Hold}, nil
	default: // ActProbe
		// #70: no presence to a watcher the user has not authorized.
		if r.Authorized {
			return Decision{Verdict: Deliver, ShareNote: note}, nil
		}
		return Decision{Verdict: Deny, Err: notAuthorized()}, nil
	}
}

// name implements Rule.String.
func (r Rule) name() string {
	switch r {
	case RuleFederationDisabled:
		return "federation_disabled"
	case RuleBlocked:
		return "blocked"
	case RuleNotPartner:
		return "not_partner"
	case RuleInvalidDomain:
		return "invalid_domain"
	case RuleUnknownUser:
		return "unknown_user"
	case RuleNoXMPPAccess:
		return "no_xmpp_access"
	case RuleUnsupportedHome:
		return "unsupported_home"
	case RuleNotAuthorized:
		return "not_authorized"
	case RuleOtherPartner:
		return "other_partner"
	}
	return fmt.Sprintf("rule_%d", uint8(r))
}

// text implements Denial.Error.
func (d *Denial) text() string {
	switch d.Rule {
	case RuleFederationDisabled:
		return "policy: XMPP federation is disabled"
	case RuleBlocked:
		return fmt.Sprintf("policy: domain %q is blocked", d.Domain)
	case RuleNotPartner:
		return fmt.Sprintf("policy: domain %q is not a federation partner", d.Domain)
	case RuleInvalidDomain:
		return fmt.Sprintf("policy: %q is not a valid domain name", d.Domain)
	case RuleUnknownUser:
		return fmt.Sprintf("policy: no local user %q", d.User)
	case RuleNoXMPPAccess:
		return fmt.Sprintf("policy: user %q has no XMPP access", d.User)
	case RuleUnsupportedHome:
		return fmt.Sprintf("policy: user %q is homed where XMPP federation is not available", d.User)
	case RuleNotAuthorized:
		return fmt.Sprintf("policy: user %q has not authorized the sender at public-unverified domain %q", d.User, d.Domain)
	case RuleOtherPartner:
		return fmt.Sprintf("policy: domain %q does not belong to partner %q, so it cannot share its stream", d.Domain, d.Partner)
	}
	return "policy: refused (" + d.Rule.String() + ")"
}

// userRefused is the one text for every rule about the local user, so that
// a remote sender cannot tell a missing user from one without access
// (RFC 6121 §8.5: the same error whether or not the account exists).
const userRefused = "The recipient cannot use XMPP federation"

// stanzaError implements Denial.StanzaError.
func (d *Denial) stanzaError() stanza.Error {
	e := stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	var text string
	switch d.Rule {
	case RuleFederationDisabled:
		text = "XMPP federation is disabled"
	case RuleBlocked:
		text = "The domain is blocked by policy"
	case RuleNotPartner:
		text = "The domain is not a federation partner"
	case RuleInvalidDomain:
		// RFC 6120 §8.3.3.8: a malformed address is jid-malformed, modify.
		e.Type, e.Condition = stanza.Modify, stanza.JIDMalformed
		text = "The domain is not a valid domain name"
	case RuleUnknownUser, RuleNoXMPPAccess, RuleUnsupportedHome:
		text = userRefused
	case RuleNotAuthorized:
		// RFC 6120 §8.3.3.6: forbidden is of type auth.
		e.Type, e.Condition = stanza.Auth, stanza.Forbidden
		text = "The recipient has not authorized the sender"
	default:
		text = "Refused by policy"
	}
	e.Text = map[string]string{"en": text}
	return e
}

// newPolicy implements New.
func newPolicy(ctx context.Context, store Store, opts *Options) (*Policy, error) {
	if store == nil {
		return nil, errors.New("policy: New: nil Store")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	c, err := store.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy: loading the configuration: %w", err)
	}
	c = c.Clone()
	if c == nil {
		c = &Config{}
	}
	normalizeConfig(c)
	ws, err := c.Validate(o.Strict)
	if err != nil {
		return nil, err
	}
	p := &Policy{store: store, dir: o.Directory, strict: o.Strict, log: o.Logger, changed: make(chan struct{})}
	p.logWarnings(ctx, ws)
	if c.Gateway.DialbackSecret.Len() == 0 {
		// REFERENCE §5.3 #35: generated once and persisted.
		b := make([]byte, secretBytes)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("policy: generating the dialback secret: %w", err)
		}
		c.Gateway.DialbackSecret = NewSecret(b)
		clear(b)
		if err := store.Save(ctx, c.Clone()); err != nil {
			return nil, fmt.Errorf("policy: saving the generated dialback secret: %w", err)
		}
		p.info(ctx, "policy: generated and saved a dialback secret")
	}
	p.snap.Store(compile(c, 1))
	return p, nil
}

// swap takes c in as the next generation and tells the watchers of
// Changed. p.mu must be held.
func (p *Policy) swap(c *Config) *snapshot {
	s := compile(c, p.snap.Load().gen+1)
	p.snap.Store(s)
	p.refreshLimiters(s)
	p.chMu.Lock()
	close(p.changed)
	p.changed = make(chan struct{})
	p.chMu.Unlock()
	return s
}

// apply implements Apply.
func (p *Policy) apply(ctx context.Context, opts ApplyOptions, edits []Edit) (*Report, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.snap.Load().cfg
	c := old.Clone()
	for i, e := range edits {
		if e == nil {
			return nil, fmt.Errorf("policy: edit %d is nil", i+1)
		}
		if err := e(c); err != nil {
			return nil, err
		}
	}
	normalizeConfig(c)
	ws, err := c.Validate(p.strict)
	if err != nil {
		return nil, err
	}
	rep := diff(old, c, ws)
	rep.DryRun = opts.DryRun
	if opts.DryRun {
		return rep, nil
	}
	if !rep.changed() {
		return rep, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := p.store.Save(ctx, c.Clone()); err != nil {
		return nil, fmt.Errorf("policy: saving the configuration: %w", err)
	}
	s := p.swap(c)
	p.info(ctx, "policy: configuration changed",
		slog.Uint64("generation", s.gen),
		slog.Any("added", rep.Added), slog.Any("changed", rep.Changed), slog.Any("removed", rep.Removed))
	p.logWarnings(ctx, rep.Warnings)
	return rep, nil
}

// changed reports whether the report lists any change.
func (r *Report) changed() bool {
	return len(r.Added)+len(r.Changed)+len(r.Removed) > 0
}

// diff lists what changes from old to c, with the warnings ws that concern
// the added or changed entries.
func diff(old, c *Config, ws []Warning) *Report {
	rep := &Report{}
	prefixes := []string(nil)
	before := make(map[string]*Partner, len(old.Partners))
	for i := range old.Partners {
		before[old.Partners[i].Domain] = &old.Partners[i]
	}
	after := make(map[string]bool, len(c.Partners))
	for i := range c.Partners {
		pt := &c.Partners[i]
		after[pt.Domain] = true
		prev, ok := before[pt.Domain]
		switch {
		case !ok:
			rep.Added = append(rep.Added, pt.Domain)
		case !reflect.DeepEqual(*prev, *pt):
			rep.Changed = append(rep.Changed, pt.Domain)
		default:
			continue
		}
		prefixes = append(prefixes, "partner["+pt.Domain+"].")
	}
	for d := range before {
		if !after[d] {
			rep.Removed = append(rep.Removed, d)
		}
	}
	pBefore := make(map[string]*AccessPolicy, len(old.Policies))
	for i := range old.Policies {
		pBefore[policyKey(old.Policies[i].Name)] = &old.Policies[i]
	}
	pAfter := make(map[string]bool, len(c.Policies))
	for i := range c.Policies {
		ap := &c.Policies[i]
		k := policyKey(ap.Name)
		pAfter[k] = true
		prev, ok := pBefore[k]
		switch {
		case !ok:
			rep.Added = append(rep.Added, "policy:"+ap.Name)
		case *prev != *ap:
			rep.Changed = append(rep.Changed, "policy:"+ap.Name)
		default:
			continue
		}
		prefixes = append(prefixes, "policy["+ap.Name+"].")
	}
	for k, ap := range pBefore {
		if !pAfter[k] {
			rep.Removed = append(rep.Removed, "policy:"+ap.Name)
		}
	}
	if !reflect.DeepEqual(old.Gateway, c.Gateway) {
		rep.Changed = append(rep.Changed, "gateway")
		prefixes = append(prefixes, "gateway.")
	}
	for _, w := range ws {
		for _, pre := range prefixes {
			if strings.HasPrefix(w.Field, pre) {
				rep.Warnings = append(rep.Warnings, w)
				break
			}
		}
	}
	slices.Sort(rep.Added)
	slices.Sort(rep.Changed)
	slices.Sort(rep.Removed)
	return rep
}

// reload implements Reload; it reports whether the configuration changed.
func (p *Policy) reload(ctx context.Context) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, err := p.store.Load(ctx)
	if err != nil {
		return false, fmt.Errorf("policy: loading the configuration: %w", err)
	}
	c = c.Clone()
	if c == nil {
		c = &Config{}
	}
	normalizeConfig(c)
	ws, err := c.Validate(p.strict)
	if err != nil {
		return false, err
	}
	old := p.snap.Load().cfg
	if c.Gateway.DialbackSecret.Len() == 0 {
		// The secret must not change under running streams: keep ours.
		c.Gateway.DialbackSecret = old.Gateway.DialbackSecret
		p.warn(ctx, "policy: the reloaded configuration has no dialback secret; keeping the current one")
	}
	if reflect.DeepEqual(old, c) {
		return false, nil
	}
	rep := diff(old, c, ws)
	s := p.swap(c)
	p.info(ctx, "policy: configuration reloaded",
		slog.Uint64("generation", s.gen),
		slog.Any("added", rep.Added), slog.Any("changed", rep.Changed), slog.Any("removed", rep.Removed))
	p.logWarnings(ctx, rep.Warnings)
	return true, nil
}

// watch implements Watch.
func (p *Policy) watch(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = defaultWatchInterval
	}
	w, _ := p.store.(Watcher)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if w != nil {
			changed, err := w.Changed(ctx)
			if err != nil {
				p.warn(ctx, "policy: checking the store for changes failed", slog.String("error", err.Error()))
				continue
			}
			if !changed {
				continue
			}
		}
		if _, err := p.reload(ctx); err != nil && ctx.Err() == nil {
			p.warn(ctx, "policy: reload refused; keeping the current configuration", slog.String("error", err.Error()))
		}
	}
}

// grant implements Grant.
func (p *Policy) grant(ctx context.Context, user jid.JID, name string) error {
	g, ok := p.dir.(Granter)
	if !ok {
		return errors.New("policy: Grant: the Directory cannot store policy assignments (it is not a Granter)")
	}
	if name != "" {
		n := normalizePolicyName(name)
		s := p.snap.Load()
		if n == GlobalPolicy || isSitePolicy(n) {
			return fmt.Errorf("policy: Grant: %q is not a per-user policy", name)
		}
		ap, ok := s.policies[policyKey(n)]
		if !ok {
			return fmt.Errorf("policy: Grant: access policy %q: %w", name, ErrNotFound)
		}
		name = ap.Name
	}
	if err := g.SetUserPolicy(ctx, user.Bare(), name); err != nil {
		return fmt.Errorf("policy: Grant: %w", err)
	}
	return nil
}

func (p *Policy) info(ctx context.Context, msg string, args ...any) {
	if p.log != nil {
		p.log.InfoContext(ctx, msg, args...)
	}
}

func (p *Policy) warn(ctx context.Context, msg string, args ...any) {
	if p.log != nil {
		p.log.WarnContext(ctx, msg, args...)
	}
}

func (p *Policy) logWarnings(ctx context.Context, ws []Warning) {
	for _, w := range ws {
		p.warn(ctx, "policy: configuration warning",
			slog.String("code", w.Code), slog.String("field", w.Field), slog.String("text", w.Text))
	}
}
