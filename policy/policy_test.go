package policy_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/xmppfed/xmppfed/policy"
)

// newPolicy returns a Policy over a MemStore holding c.
func newPolicy(t *testing.T, c *policy.Config, opts *policy.Options) (*policy.Policy, *policy.MemStore) {
	t.Helper()
	st := policy.NewMemStore(c)
	p, err := policy.New(context.Background(), st, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p, st
}

// apply runs Apply and fails the test on error.
func apply(t *testing.T, p *policy.Policy, edits ...policy.Edit) *policy.Report {
	t.Helper()
	rep, err := p.Apply(context.Background(), policy.ApplyOptions{}, edits...)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return rep
}

// denial returns the *Denial in err, failing the test when there is none
// or its rule is not want.
func denial(t *testing.T, err error, want policy.Rule) *policy.Denial {
	t.Helper()
	var d *policy.Denial
	if !errors.As(err, &d) {
		t.Fatalf("error %v: want a *Denial with %v", err, want)
	}
	if d.Rule != want {
		t.Fatalf("denial %v (rule %v); want rule %v", d, d.Rule, want)
	}
	return d
}

func remote(t *testing.T, p *policy.Policy, domain string) *policy.Remote {
	t.Helper()
	r, err := p.Remote(domain)
	if err != nil {
		t.Fatalf("Remote(%q): %v", domain, err)
	}
	return r
}

// TestDefaults checks REFERENCE §5.1 #1 and #2 through the Policy's own
// answers.
func TestDefaults(t *testing.T) {
	p, _ := newPolicy(t, nil, nil)
	g := p.Gateway()
	if g.ConnectionLimit != 1000 || g.PartnerConnectionLimit != 20 ||
		g.KeepAliveInterval != 300*time.Second || g.StreamEstablishmentTimeout != 60*time.Second ||
		g.StreamInactivityTimeout != 600*time.Second || g.SubscriptionRefreshInterval != 28800*time.Second ||
		g.LogBodies || g.MaxStanzaBytes != 512*1024 || g.StanzasPerSecond != 1000 ||
		g.OpenFederation || g.DisableFederation || g.DenyUnverifiedSubscriptions {
		t.Errorf("Gateway() = %+v; want Lync's defaults", g)
	}
	if p.Generation() != 1 {
		t.Errorf("Generation() = %d; want 1", p.Generation())
	}
	apply(t, p, policy.AddPartner(policy.Partner{Domain: "fabrikam.com"}))
	r := remote(t, p, "fabrikam.com")
	if r.Domain != "fabrikam.com" || r.Partner != "fabrikam.com" || r.Type != policy.PublicUnverified ||
		r.Settings != (policy.Settings{TLS: policy.Required, SASL: policy.Required}) || !r.Settings.Dialback() ||
		r.KeepAlive != 300*time.Second || r.ConnectionLimit != 20 || r.ProxyFQDN != "" || r.Generation != 2 {
		t.Errorf("Remote = %+v; want the defaults", r)
	}
	if r.Limiter == nil || r.Limiter.Limit() != 1000 || r.Limiter.Burst() != 2000 {
		t.Errorf("Limiter = %+v; want 1000/s, burst 2000", r.Limiter)
	}
	// The stored configuration keeps the zero values.
	if c := p.Config(); c.Gateway.ConnectionLimit != 0 || c.Gateway.DialbackSecret.Len() != 32 {
		t.Errorf("Config().Gateway = %+v; want zero limits and a 32-byte secret", c.Gateway)
	}
}

// TestNormalization checks REFERENCE §5.1 #4.
func TestNormalization(t *testing.T) {
	p, st := newPolicy(t, nil, nil)
	apply(t, p, policy.AddPartner(policy.Partner{Domain: "Bücher.Example.", AdditionalDomains: []string{"FABRIKAM.com."}}))
	got := p.Partners("")
	if len(got) != 1 || got[0].Domain != "xn--bcher-kva.example" || !slices.Equal(got[0].AdditionalDomains, []string{"fabrikam.com"}) {
		t.Fatalf("Partners() = %+v; want the normalized domains", got)
	}
	stored, _ := st.Load(context.Background())
	if stored.Partners[0].Domain != "xn--bcher-kva.example" {
		t.Errorf("stored domain %q; want normalized", stored.Partners[0].Domain)
	}
	for _, d := range []string{"BÜCHER.example", "xn--bcher-kva.example.", "Fabrikam.COM"} {
		if r := remote(t, p, d); r.Partner != "xn--bcher-kva.example" {
			t.Errorf("Remote(%q).Partner = %q", d, r.Partner)
		}
	}
	for _, bad := range []string{"", "localhost", "a..b", "-x.com", "x_y.com"} {
		_, err := p.Apply(context.Background(), policy.ApplyOptions{}, policy.AddPartner(policy.Partner{Domain: bad}))
		fes := policy.FieldErrors(err)
		if len(fes) != 1 || !strings.HasSuffix(fes[0].Field, "domain") {
			t.Errorf("AddPartner(%q): %v; want one *FieldError on the domain", bad, err)
		}
	}
	// New normalizes what it loads.
	p2, _ := newPolicy(t, &policy.Config{Partners: []policy.Partner{{Domain: "CONTOSO.com."}},
		Gateway: policy.Gateway{Blocked: []string{"*.EVIL.com."}}}, nil)
	if c := p2.Config(); c.Partners[0].Domain != "contoso.com" || c.Gateway.Blocked[0] != "*.evil.com" {
		t.Errorf("New kept %+v; want normalized", c)
	}
}

// TestExistsNotFound checks REFERENCE §5.1 #5.
func TestExistsNotFound(t *testing.T) {
	ctx := context.Background()
	p, _ := newPolicy(t, nil, nil)
	apply(t, p, policy.AddPartner(policy.Partner{Domain: "fabrikam.com"}))
	for _, tc := range []struct {
		edit policy.Edit
		want error
		name string
	}{
		{policy.AddPartner(policy.Partner{Domain: "FABRIKAM.com"}), policy.ErrExists, "fabrikam.com"},
		{policy.SetPartner(policy.Partner{Domain: "contoso.com"}), policy.ErrNotFound, "contoso.com"},
		{policy.RemovePartner("contoso.com"), policy.ErrNotFound, "contoso.com"},
		{policy.EditDomains("contoso.com", policy.ListEdit{Add: []string{"a.com"}}), policy.ErrNotFound, "contoso.com"},
		{policy.Unblock("evil.com"), policy.ErrNotFound, "evil.com"},
		{policy.RemoveAccessPolicy("Sales"), policy.ErrNotFound, "Sales"},
	} {
		_, err := p.Apply(ctx, policy.ApplyOptions{}, tc.edit)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), `"`+tc.name+`"`) {
			t.Errorf("error %v; want %v naming %q", err, tc.want, tc.name)
		}
	}
	if err := policy.ErrNotFound.Error(); err != "not found" {
		t.Errorf("ErrNotFound = %q", err)
	}
	apply(t, p, policy.SetPartner(policy.Partner{Domain: "Fabrikam.com", Type: policy.Federated}))
	if got := p.Partners(""); len(got) != 1 || got[0].Type != policy.Federated {
		t.Errorf("after SetPartner: %+v", got)
	}
	apply(t, p, policy.RemovePartner("FABRIKAM.COM."))
	if got := p.Partners(""); len(got) != 0 {
		t.Errorf("after RemovePartner: %+v", got)
	}
}

// TestDuplicateDomains checks REFERENCE §5.1 #6.
func TestDuplicateDomains(t *testing.T) {
	ctx := context.Background()
	p, _ := newPolicy(t, nil, nil)
	apply(t, p, policy.AddPartner(policy.Partner{Domain: "fabrikam.com", AdditionalDomains: []string{"fabrikam.net"}}),
		policy.AddPartner(policy.Partner{Domain: "contoso.com"}))
	for _, e := range []policy.Edit{
		policy.AddPartner(policy.Partner{Domain: "fabrikam.net"}),
		policy.AddPartner(policy.Partner{Domain: "litware.com", AdditionalDomains: []string{"Fabrikam.com"}}),
		policy.SetPartner(policy.Partner{Domain: "contoso.com", AdditionalDomains: []string{"fabrikam.net"}}),
		policy.EditDomains("contoso.com", policy.ListEdit{Add: []string{"FABRIKAM.NET"}}),
		policy.EditDomains("fabrikam.com", policy.ListEdit{Add: []string{"fabrikam.com"}}),
		policy.EditDomains("fabrikam.com", policy.ListEdit{Add: []string{"fabrikam.net"}}),
	} {
		_, err := p.Apply(ctx, policy.ApplyOptions{}, e)
		if !errors.Is(err, policy.ErrExists) {
			t.Errorf("error %v; want ErrExists", err)
		}
	}
	// An edit written by hand that skips the checks is still caught by
	// validation.
	_, err := p.Apply(ctx, policy.ApplyOptions{}, func(c *policy.Config) error {
		c.Partners = append(c.Partners, policy.Partner{Domain: "litware.com", AdditionalDomains: []string{"contoso.com"}})
		return nil
	})
	if got := fields(err); !slices.Equal(got, []string{"partner[litware.com].additional_domains[1]"}) {
		t.Errorf("hand-written duplicate: %v", err)
	}
}

// TestListEdit checks REFERENCE §5.1 #7: every PSListModifier verb.
func TestListEdit(t *testing.T) {
	ctx := context.Background()
	p, _ := newPolicy(t, &policy.Config{Partners: []policy.Partner{{Domain: "a.com", AdditionalDomains: []string{"b.com", "c.com", "d.com"}}}}, nil)
	domains := func() []string { return p.Partners("a.com")[0].AdditionalDomains }
	for _, tc := range []struct {
		name string
		e    policy.ListEdit
		want []string
	}{
		{"remove one", policy.ListEdit{Remove: []string{"C.com"}}, []string{"b.com", "d.com"}},
		{"add", policy.ListEdit{Add: []string{"E.com", "f.com"}}, []string{"b.com", "d.com", "e.com", "f.com"}},
		{"remove and add", policy.ListEdit{Remove: []string{"b.com"}, Add: []string{"b.net"}}, []string{"d.com", "e.com", "f.com", "b.net"}},
		{"replace", policy.ListEdit{Replace: []string{"x.com", "Y.com"}}, []string{"x.com", "y.com"}},
		{"replace then add", policy.ListEdit{Replace: []string{"z.com"}, Add: []string{"w.com"}}, []string{"z.com", "w.com"}},
		{"clear", policy.ListEdit{Clear: true}, nil},
		{"add to empty", policy.ListEdit{Add: []string{"q.com"}}, []string{"q.com"}},
		{"empty replace clears", policy.ListEdit{Replace: []string{}}, nil},
	} {
		apply(t, p, policy.EditDomains("A.COM", tc.e))
		if got := domains(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q; want %q", tc.name, got, tc.want)
		}
	}
	apply(t, p, policy.EditDomains("a.com", policy.ListEdit{Add: []string{"k.com", "l.com"}}))
	_, err := p.Apply(ctx, policy.ApplyOptions{}, policy.EditDomains("a.com", policy.ListEdit{Remove: []string{"k.com", "missing.com"}}))
	if !errors.Is(err, policy.ErrNotFound) || !strings.Contains(err.Error(), `"missing.com"`) {
		t.Errorf("removing an absent domain: %v; want ErrNotFound naming it", err)
	}
	if got := domains(); !slices.Equal(got, []string{"k.com", "l.com"}) {
		t.Errorf("a failed edit changed the list: %q", got)
	}
}

// failingStore is a MemStore whose Save fails while fail is set.
type failingStore struct {
	*policy.MemStore
	fail bool
}

func (f *failingStore) Save(ctx context.Context, c *policy.Config) error {
	if f.fail {
		return errors.New("disk full")
	}
	return f.MemStore.Save(ctx, c)
}

// TestAtomic checks REFERENCE §5.1 #12: an invalid edit among valid ones
// changes nothing, nor does a Store that fails to save.
func TestAtomic(t *testing.T) {
	ctx := context.Background()
	fs := &failingStore{MemStore: policy.NewMemStore(&policy.Config{Partners: []policy.Partner{{Domain: "a.com"}}})}
	p, err := policy.New(ctx, fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	before, saves, gen := p.Config(), fs.Saves(), p.Generation()
	changed := p.Changed()
	check := func(what string) {
		t.Helper()
		if got := p.Config(); !equalConfig(got, before) {
			t.Errorf("%s: Config changed to %+v", what, got)
		}
		stored, _ := fs.Load(ctx)
		if !equalConfig(stored, before) || fs.Saves() != saves {
			t.Errorf("%s: store changed (%d saves; was %d)", what, fs.Saves(), saves)
		}
		if p.Generation() != gen {
			t.Errorf("%s: generation %d; want %d", what, p.Generation(), gen)
		}
		select {
		case <-changed:
			t.Errorf("%s: Changed closed", what)
		default:
		}
		if _, err := p.Remote("b.com"); err == nil {
			t.Errorf("%s: b.com admitted", what)
		}
	}
	_, err = p.Apply(ctx, policy.ApplyOptions{},
		policy.AddPartner(policy.Partner{Domain: "b.com"}),
		policy.AddPartner(policy.Partner{Domain: "c.com", Settings: policy.Settings{SASL: ns, DisableDialback: true}}),
		policy.Block("d.com"))
	if fes := policy.FieldErrors(err); len(fes) != 1 || fes[0].Field != "partner[c.com].sasl, dialback" {
		t.Errorf("invalid edit: %v", err)
	}
	check("invalid settings")
	_, err = p.Apply(ctx, policy.ApplyOptions{}, policy.AddPartner(policy.Partner{Domain: "b.com"}), policy.RemovePartner("zzz.com"))
	if !errors.Is(err, policy.ErrNotFound) {
		t.Errorf("failing edit: %v", err)
	}
	check("failing edit")
	_, err = p.Apply(ctx, policy.ApplyOptions{}, policy.AddPartner(policy.Partner{Domain: "b.com"}), nil)
	if err == nil {
		t.Error("nil edit accepted")
	}
	check("nil edit")
	fs.fail = true
	_, err = p.Apply(ctx, policy.ApplyOptions{}, policy.AddPartner(policy.Partner{Domain: "b.com"}))
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("failing Save: %v", err)
	}
	check("failing Save")
	fs.fail = false
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Apply(cctx, policy.ApplyOptions{}, policy.AddPartner(policy.Partner{Domain: "b.com"})); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled Apply: %v", err)
	}
	check("canceled context")
}

// equalConfig compares two configurations through their exported,
// printable form plus the secret's bytes.
func equalConfig(a, b *policy.Config) bool {
	return fmtConfig(a) == fmtConfig(b) && string(a.Gateway.DialbackSecret.Bytes()) == string(b.Gateway.DialbackSecret.Bytes())
}

// TestDryRun checks REFERENCE §5.1 #13.
func TestDryRun(t *testing.T) {
	ctx := context.Background()
	p, st := newPolicy(t, &policy.Config{Partners: []policy.Partner{{Domain: "a.com"}, {Domain: "old.com"}},
		Policies: []policy.AccessPolicy{{Name: "Sales"}}}, nil)
	before, saves, gen := p.Config(), st.Saves(), p.Generation()
	rep, err := p.Apply(ctx, policy.ApplyOptions{DryRun: true},
		policy.AddPartner(policy.Partner{Domain: "b.com", Settings: policy.Settings{TLS: opt}}),
		policy.SetPartner(policy.Partner{Domain: "a.com", Type: policy.Federated, Settings: policy.Settings{DisableDialback: true}}),
		policy.RemovePartner("old.com"),
		policy.SetAccessPolicy(policy.AccessPolicy{Name: "global", EnableXMPPAccess: true}),
		policy.RemoveAccessPolicy("tag:Sales"),
		policy.Block("evil.com"))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.DryRun || !slices.Equal(rep.Added, []string{"b.com", "policy:global"}) ||
		!slices.Equal(rep.Changed, []string{"a.com", "gateway"}) || !slices.Equal(rep.Removed, []string{"old.com", "policy:Sales"}) {
		t.Errorf("report %+v", rep)
	}
	var codes []string
	for _, w := range rep.Warnings {
		codes = append(codes, w.Field+" "+w.Code)
	}
	slices.Sort(codes)
	want := []string{"partner[b.com].sasl W-SASL-TLS", "policy[global].enable_xmpp_access W-XMPP-NOFED"}
	if !slices.Equal(codes, want) {
		t.Errorf("warnings %q; want %q", codes, want)
	}
	if !equalConfig(p.Config(), before) || st.Saves() != saves || p.Generation() != gen {
		t.Errorf("dry run changed something: gen %d saves %d", p.Generation(), st.Saves())
	}
	if _, err := p.Remote("b.com"); err == nil {
		t.Error("dry run admitted b.com")
	}
	// A dry run of an invalid change fails like the real one.
	if _, err := p.Apply(ctx, policy.ApplyOptions{DryRun: true}, policy.AddPartner(policy.Partner{Domain: "x"})); err == nil {
		t.Error("invalid dry run succeeded")
	}
	// An Apply that changes nothing reports nothing and keeps the generation.
	rep = apply(t, p, policy.SetPartner(policy.Partner{Domain: "a.com"}))
	if len(rep.Added)+len(rep.Changed)+len(rep.Removed) != 0 || p.Generation() != gen || st.Saves() != saves {
		t.Errorf("no-op Apply: %+v, gen %d", rep, p.Generation())
	}
}

// TestPartnersWildcard checks REFERENCE §5.1 #14.
func TestPartnersWildcard(t *testing.T) {
	p, _ := newPolicy(t, &policy.Config{Partners: []policy.Partner{
		{Domain: "b.org"}, {Domain: "a.org"}, {Domain: "example.com"}, {Domain: "org.example.net"},
	}}, nil)
	for _, tc := range []struct {
		pattern string
		want    []string
	}{
		{"", []string{"a.org", "b.org", "example.com", "org.example.net"}},
		{"*", []string{"a.org", "b.org", "example.com", "org.example.net"}},
		{"*.org", []string{"a.org", "b.org"}},
		{"*.ORG", []string{"a.org", "b.org"}},
		{"org.*", []string{"org.example.net"}},
		{"*example*", []string{"example.com", "org.example.net"}},
		{"a.org", []string{"a.org"}},
		{"nothing", nil},
	} {
		var got []string
		for _, pt := range p.Partners(tc.pattern) {
			got = append(got, pt.Domain)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Partners(%q) = %q; want %q", tc.pattern, got, tc.want)
		}
	}
	// The result is a copy.
	got := p.Partners("a.org")
	got[0].AdditionalDomains = append(got[0].AdditionalDomains, "x.org")
	got[0].Domain = "changed"
	if p.Partners("a.org")[0].Domain != "a.org" || len(p.Partners("a.org")[0].AdditionalDomains) != 0 {
		t.Error("Partners returned the live configuration")
	}
}

// TestRemoveAllStopsFederation checks REFERENCE §5.1 #15.
func TestRemoveAllStopsFederation(t *testing.T) {
	p, _ := newPolicy(t, &policy.Config{Partners: []policy.Partner{{Domain: "a.com", AdditionalDomains: []string{"a.net"}}, {Domain: "b.com"}}}, nil)
	remote(t, p, "a.net")
	apply(t, p, policy.RemovePartner("a.com"), policy.RemovePartner("b.com"))
	for _, d := range []string{"a.com", "a.net", "b.com", "c.com"} {
		_, err := p.Remote(d)
		denial(t, err, policy.RuleNotPartner)
	}
}

// TestChangesVisible checks REFERENCE §5.1 #16: new settings at once,
// Changed closed, generation up.
func TestChangesVisible(t *testing.T) {
	p, _ := newPolicy(t, nil, nil)
	ch := p.Changed()
	if ch != p.Changed() {
		t.Error("Changed returned a new channel without a change")
	}
	apply(t, p, policy.AddPartner(policy.Partner{Domain: "a.com", Settings: policy.Settings{SASL: opt}}))
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed by Apply")
	}
	if p.Generation() != 2 {
		t.Errorf("generation %d; want 2", p.Generation())
	}
	ch2 := p.Changed()
	select {
	case <-ch2:
		t.Fatal("the next Changed channel is closed already")
	default:
	}
	if r := remote(t, p, "a.com"); r.Settings.SASL != opt || r.Generation != 2 {
		t.Errorf("Remote = %+v", r)
	}
	apply(t, p, policy.SetPartner(policy.Partner{Domain: "a.com", Settings: policy.Settings{TLS: opt, SASL: ns}}))
	<-ch2
	if r := remote(t, p, "a.com"); r.Settings.TLS != opt || r.Settings.SASL != ns || r.Generation != 3 {
		t.Errorf("Remote after change = %+v", r)
	}
}

// TestRemoteRules checks the order of Remote's checks and REFERENCE §5.2
// #19 and #20.
func TestRemoteRules(t *testing.T) {
	c := &policy.Config{
		Gateway: policy.Gateway{Blocked: []string{"blocked.com", "*.evil.org", "fabrikam.net"}},
		Partners: []policy.Partner{{
			Domain: "fabrikam.com", AdditionalDomains: []string{"fabrikam.net", "chat.fabrikam.com", "fabrikam.de"},
			Type: policy.Federated, Settings: policy.Settings{TLS: opt, SASL: opt}, ConnectionLimit: 5,
			DisableKeepAlive: true, ProxyFQDN: "proxy.fabrikam.com:5270", StanzasPerSecond: 10,
		}, {Domain: "evil.org"}},
	}
	p, _ := newPolicy(t, c, nil)
	for _, tc := range []struct {
		domain string
		rule   policy.Rule
	}{
		{"", policy.RuleInvalidDomain},
		{"a..b", policy.RuleInvalidDomain},
		{"x.fabrikam.com", policy.RuleNotPartner}, // #19: a sub-domain is not covered
		{"fabrikam.org", policy.RuleNotPartner},
		{"blocked.com", policy.RuleBlocked},
		{"evil.org", policy.RuleBlocked}, // the block list beats the partner list
		{"a.b.evil.org", policy.RuleBlocked},
		{"fabrikam.net", policy.RuleBlocked},
		{"notevil.org", policy.RuleNotPartner},
	} {
		_, err := p.Remote(tc.domain)
		d := denial(t, err, tc.rule)
		if tc.domain != "" && !strings.Contains(d.Error(), tc.domain) {
			t.Errorf("denial %q does not name %q", d.Error(), tc.domain)
		}
		// Admit gives the same verdict.
		if a := denial(t, p.Admit(tc.domain), tc.rule); *a != *d {
			t.Errorf("Admit(%q) = %+v, Remote's denial %+v", tc.domain, a, d)
		}
	}
	for _, d := range []string{"fabrikam.com", "chat.fabrikam.com", "FABRIKAM.de"} {
		if err := p.Admit(d); err != nil {
			t.Errorf("Admit(%q) = %v", d, err)
		}
	}
	main := remote(t, p, "fabrikam.com")
	for _, d := range []string{"chat.fabrikam.com", "FABRIKAM.de"} {
		// #20: an additional domain has its partner's settings.
		r := remote(t, p, d)
		if r.Partner != "fabrikam.com" || r.Type != policy.Federated || r.Settings != main.Settings ||
			r.ConnectionLimit != 5 || r.KeepAlive != 0 || r.ProxyFQDN != "proxy.fabrikam.com:5270" ||
			r.Limiter != main.Limiter || r.Limiter.Limit() != 10 || r.Limiter.Burst() != 20 {
			t.Errorf("Remote(%q) = %+v; want fabrikam.com's settings", d, r)
		}
		if !r.SamePartner("fabrikam.com") || !main.SamePartner(d) {
			t.Errorf("%q and fabrikam.com are not the same partner", d)
		}
	}
	if main.SamePartner("evil.org") || main.SamePartner("x.fabrikam.com") || main.SamePartner("a..b") {
		t.Error("SamePartner true for another partner's domain")
	}
	// The kill switch comes before everything else (#63).
	apply(t, p, policy.SetGateway(policy.Gateway{DisableFederation: true, Blocked: []string{"blocked.com"}}))
	for _, d := range []string{"fabrikam.com", "blocked.com", "other.com"} {
		_, err := p.Remote(d)
		denial(t, err, policy.RuleFederationDisabled)
	}
	_, err := p.Remote("a..b")
	denial(t, err, policy.RuleInvalidDomain)
}

// TestOpenFederation checks the default partner.
func TestOpenFederation(t *testing.T) {
	p, _ := newPolicy(t, &policy.Config{
		Gateway: policy.Gateway{OpenFederation: true, Blocked: []string{"*.evil.org"},
			DefaultPartner: policy.Partner{Type: policy.PublicVerified, Settings: policy.Settings{SASL: opt}, StanzasPerSecond: 3}},
		Partners: []policy.Partner{{Domain: "fabrikam.com", Type: policy.Federated}},
	}, nil)
	r := remote(t, p, "Random.Example")
	if r.Domain != "random.example" || r.Partner != "" || r.Type != policy.PublicVerified || r.Settings.SASL != opt ||
		r.ConnectionLimit != 20 || r.Limiter.Limit() != 3 {
		t.Errorf("open federation Remote = %+v", r)
	}
	if !r.SamePartner("RANDOM.example.") || r.SamePartner("other.example") {
		t.Error("under open federation a domain must be its own partner only")
	}
	if other := remote(t, p, "other.example"); other.Limiter == r.Limiter {
		t.Error("two open-federation domains share a limiter")
	}
	if f := remote(t, p, "fabrikam.com"); f.Type != policy.Federated || f.Partner != "fabrikam.com" {
		t.Errorf("a partner under open federation: %+v", f)
	}
	_, err := p.Remote("x.evil.org")
	denial(t, err, policy.RuleBlocked)
}

// TestRemoteLimits checks ConnectionLimit, KeepAlive and the limiter's
// rate from the partner's and gateway's settings.
func TestRemoteLimits(t *testing.T) {
	for _, tc := range []struct {
		name      string
		gw        policy.Gateway
		pt        policy.Partner
		conn      int
		keepAlive time.Duration
		rate      float64 // -1: no limiter
		burst     int
	}{
		{"defaults", policy.Gateway{}, policy.Partner{}, 20, 300 * time.Second, 1000, 2000},
		{"partner below gateway", policy.Gateway{}, policy.Partner{ConnectionLimit: 3}, 3, 300 * time.Second, 1000, 2000},
		{"partner capped", policy.Gateway{PartnerConnectionLimit: 10}, policy.Partner{ConnectionLimit: 30}, 10, 300 * time.Second, 1000, 2000},
		{"gateway unlimited", policy.Gateway{PartnerConnectionLimit: -1}, policy.Partner{ConnectionLimit: 30}, 30, 300 * time.Second, 1000, 2000},
		{"both unlimited", policy.Gateway{PartnerConnectionLimit: -1}, policy.Partner{}, -1, 300 * time.Second, 1000, 2000},
		{"no keepalive anywhere", policy.Gateway{KeepAliveInterval: -1}, policy.Partner{}, 20, 0, 1000, 2000},
		{"keepalive off for partner", policy.Gateway{KeepAliveInterval: 30 * time.Second}, policy.Partner{DisableKeepAlive: true}, 20, 0, 1000, 2000},
		{"keepalive interval", policy.Gateway{KeepAliveInterval: 30 * time.Second}, policy.Partner{}, 20, 30 * time.Second, 1000, 2000},
		{"gateway rate", policy.Gateway{StanzasPerSecond: 50}, policy.Partner{}, 20, 300 * time.Second, 50, 100},
		{"partner rate", policy.Gateway{StanzasPerSecond: 50}, policy.Partner{StanzasPerSecond: 0.25}, 20, 300 * time.Second, 0.25, 1},
		{"gateway unlimited rate", policy.Gateway{StanzasPerSecond: -1}, policy.Partner{}, 20, 300 * time.Second, -1, 0},
		{"partner unlimited rate", policy.Gateway{}, policy.Partner{StanzasPerSecond: -5}, 20, 300 * time.Second, -1, 0},
		{"partner rate under unlimited gateway", policy.Gateway{StanzasPerSecond: -1}, policy.Partner{StanzasPerSecond: 7}, 20, 300 * time.Second, 7, 14},
	} {
		pt := tc.pt
		pt.Domain = "a.com"
		p, _ := newPolicy(t, &policy.Config{Gateway: tc.gw, Partners: []policy.Partner{pt}}, nil)
		r := remote(t, p, "a.com")
		if r.ConnectionLimit != tc.conn || r.KeepAlive != tc.keepAlive {
			t.Errorf("%s: ConnectionLimit %d, KeepAlive %v; want %d, %v", tc.name, r.ConnectionLimit, r.KeepAlive, tc.conn, tc.keepAlive)
		}
		switch {
		case tc.rate < 0 && r.Limiter != nil:
			t.Errorf("%s: limiter %v; want none", tc.name, r.Limiter.Limit())
		case tc.rate >= 0 && (r.Limiter == nil || r.Limiter.Limit() != rate.Limit(tc.rate) || r.Limiter.Burst() != tc.burst):
			t.Errorf("%s: limiter %+v; want %v/s burst %d", tc.name, r.Limiter, tc.rate, tc.burst)
		}
	}
}

// TestLimiterShared checks that a partner's limiter is one object, kept and
// updated across changes, and dropped with the partner.
func TestLimiterShared(t *testing.T) {
	p, _ := newPolicy(t, &policy.Config{Partners: []policy.Partner{{Domain: "a.com", AdditionalDomains: []string{"a.net"}, StanzasPerSecond: 10}}}, nil)
	l1 := remote(t, p, "a.com").Limiter
	if l2 := remote(t, p, "a.net").Limiter; l2 != l1 {
		t.Fatal("the partner's domains have different limiters")
	}
	apply(t, p, policy.SetPartner(policy.Partner{Domain: "a.com", AdditionalDomains: []string{"a.net"}, StanzasPerSecond: 40}))
	// Updated in place at once, before anyone asks Remote again.
	if l1.Limit() != 40 || l1.Burst() != 80 {
		t.Errorf("after the change: %v/s burst %d; want 40, 80", l1.Limit(), l1.Burst())
	}
	if l := remote(t, p, "a.net").Limiter; l != l1 {
		t.Error("the change replaced the limiter")
	}
	apply(t, p, policy.SetGateway(policy.Gateway{StanzasPerSecond: 5}), policy.SetPartner(policy.Partner{Domain: "a.com"}))
	if l1.Limit() != 5 || l1.Burst() != 10 {
		t.Errorf("after the gateway change: %v/s burst %d; want 5, 10", l1.Limit(), l1.Burst())
	}
	apply(t, p, policy.RemovePartner("a.com"))
	apply(t, p, policy.AddPartner(policy.Partner{Domain: "a.com"}))
	if l := remote(t, p, "a.com").Limiter; l == l1 {
		t.Error("a removed partner's limiter came back")
	}
}

// TestReload checks that Reload takes a valid change in and refuses an
// invalid one, keeping the old configuration.
func TestReload(t *testing.T) {
	ctx := context.Background()
	p, st := newPolicy(t, &policy.Config{Partners: []policy.Partner{{Domain: "a.com"}}}, nil)
	secret := p.Config().Gateway.DialbackSecret.Bytes()
	if err := p.Reload(ctx); err != nil || p.Generation() != 1 {
		t.Fatalf("Reload of the same configuration: %v, generation %d", err, p.Generation())
	}
	st.Set(&policy.Config{Partners: []policy.Partner{{Domain: "B.com"}}})
	if err := p.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if p.Generation() != 2 || len(p.Partners("b.com")) != 1 || len(p.Partners("a.com")) != 0 {
		t.Errorf("after Reload: generation %d, partners %+v", p.Generation(), p.Partners(""))
	}
	// The stored config lost the secret: the running one is kept.
	if got := p.Config().Gateway.DialbackSecret.Bytes(); string(got) != string(secret) {
		t.Error("Reload of a configuration without a secret changed the secret")
	}
	st.Set(&policy.Config{Partners: []policy.Partner{{Domain: "c.com", Settings: policy.Settings{SASL: ns, DisableDialback: true}}}})
	err := p.Reload(ctx)
	if fes := policy.FieldErrors(err); len(fes) != 1 || fes[0].Field != "partner[c.com].sasl, dialback" {
		t.Errorf("invalid Reload: %v", err)
	}
	if p.Generation() != 2 || len(p.Partners("b.com")) != 1 {
		t.Errorf("an invalid Reload changed the configuration: %+v", p.Partners(""))
	}
}

// errStore fails to Load.
type errStore struct{ policy.MemStore }

func (*errStore) Load(context.Context) (*policy.Config, error) { return nil, errors.New("unreadable") }

func TestNewErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := policy.New(ctx, nil, nil); err == nil {
		t.Error("New(nil store) succeeded")
	}
	if _, err := policy.New(ctx, &errStore{}, nil); err == nil || !strings.Contains(err.Error(), "unreadable") {
		t.Errorf("New with a failing Load: %v", err)
	}
	st := policy.NewMemStore(&policy.Config{Partners: []policy.Partner{{Domain: "x"}}})
	if _, err := policy.New(ctx, st, nil); len(policy.FieldErrors(err)) != 1 {
		t.Errorf("New with an invalid config: %v", err)
	}
	if st.Saves() != 0 {
		t.Error("New saved an invalid configuration")
	}
	strictCfg := &policy.Config{Partners: []policy.Partner{{Domain: "a.com", Settings: policy.Settings{TLS: ns}}}}
	if _, err := policy.New(ctx, policy.NewMemStore(strictCfg), &policy.Options{Strict: true}); err == nil {
		t.Error("strict New accepted row 5")
	}
	if _, err := policy.New(ctx, policy.NewMemStore(strictCfg), nil); err != nil {
		t.Errorf("lax New refused row 5: %v", err)
	}
	fs := &failingStore{MemStore: policy.NewMemStore(nil), fail: true}
	if _, err := policy.New(ctx, fs, nil); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("New when saving the secret fails: %v", err)
	}
}

func TestMemStore(t *testing.T) {
	ctx := context.Background()
	var m policy.MemStore
	c, err := m.Load(ctx)
	if err != nil || c == nil || len(c.Partners) != 0 {
		t.Fatalf("zero MemStore Load = %+v, %v", c, err)
	}
	in := &policy.Config{Partners: []policy.Partner{{Domain: "a.com", AdditionalDomains: []string{"a.net"}}}}
	if err := m.Save(ctx, in); err != nil {
		t.Fatal(err)
	}
	in.Partners[0].AdditionalDomains[0] = "changed"
	out, _ := m.Load(ctx)
	if out.Partners[0].AdditionalDomains[0] != "a.net" {
		t.Error("Save kept the caller's slice")
	}
	out.Partners[0].Domain = "changed"
	again, _ := m.Load(ctx)
	if again.Partners[0].Domain != "a.com" {
		t.Error("Load returned the stored value")
	}
	if ch, _ := m.Changed(ctx); ch {
		t.Error("Changed after Load")
	}
	m.Set(&policy.Config{})
	if ch, _ := m.Changed(ctx); !ch {
		t.Error("not Changed after Set")
	}
	_, _ = m.Load(ctx)
	if ch, _ := m.Changed(ctx); ch {
		t.Error("Changed after Load")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Load(cctx); err == nil {
		t.Error("Load with a canceled context")
	}
	if err := m.Save(cctx, &policy.Config{}); err == nil {
		t.Error("Save with a canceled context")
	}
	if _, err := m.Changed(cctx); err == nil {
		t.Error("Changed with a canceled context")
	}
}

// TestBlockList checks Block and Unblock with exact and wildcard entries.
func TestBlockList(t *testing.T) {
	ctx := context.Background()
	p, _ := newPolicy(t, &policy.Config{Partners: []policy.Partner{{Domain: "evil.org", AdditionalDomains: []string{"x.evil.org"}}, {Domain: "ok.org"}}}, nil)
	apply(t, p, policy.Block("*.Evil.ORG", "ok.org"), policy.Block("ok.org."))
	if got := p.Config().Gateway.Blocked; !slices.Equal(got, []string{"*.evil.org", "ok.org"}) {
		t.Errorf("Blocked = %q", got)
	}
	for _, d := range []string{"evil.org", "x.evil.org", "ok.org"} {
		_, err := p.Remote(d)
		denial(t, err, policy.RuleBlocked)
	}
	apply(t, p, policy.Unblock("*.evil.org", "OK.org"))
	for _, d := range []string{"evil.org", "x.evil.org", "ok.org"} {
		remote(t, p, d)
	}
	if _, err := p.Apply(ctx, policy.ApplyOptions{}, policy.Block("*.")); len(policy.FieldErrors(err)) != 1 {
		t.Errorf("blocking %q: %v", "*.", err)
	}
	if got := (policy.Secret{}).String(); got != "[empty]" {
		t.Errorf("empty Secret prints %q", got)
	}
}

// TestOpenFederationLimiters checks that open-federation limiters are
// shared per domain, bounded in number, and dropped when open federation
// ends.
func TestOpenFederationLimiters(t *testing.T) {
	p, _ := newPolicy(t, &policy.Config{Gateway: policy.Gateway{OpenFederation: true}}, nil)
	first := remote(t, p, "d0.example").Limiter
	if remote(t, p, "D0.example").Limiter != first {
		t.Fatal("one open-federation domain got two limiters")
	}
	// Fill the table: 10000 shared limiters at most.
	for i := 1; i < 10000; i++ {
		remote(t, p, fmt.Sprintf("d%d.example", i))
	}
	over := "d10000.example"
	sameLimiter := func(d string) bool {
		a := remote(t, p, d).Limiter
		return a == remote(t, p, d).Limiter
	}
	if sameLimiter(over) {
		t.Error("a domain beyond the bound got a shared limiter")
	}
	if !sameLimiter("d9999.example") {
		t.Error("a domain within the bound lost its shared limiter")
	}
	// Closing open federation drops them all, freeing the table.
	g := p.Gateway()
	g.OpenFederation = false
	apply(t, p, policy.SetGateway(g))
	g.OpenFederation = true
	apply(t, p, policy.SetGateway(g))
	if remote(t, p, "d0.example").Limiter == first {
		t.Error("a dropped limiter came back")
	}
	if !sameLimiter(over) {
		t.Error("after the table was freed, a new domain got no shared limiter")
	}
	// A domain that becomes a partner gets the partner's limiter.
	apply(t, p, policy.AddPartner(policy.Partner{Domain: "d1.example", StanzasPerSecond: 3}))
	if l := remote(t, p, "d1.example").Limiter; l.Limit() != 3 {
		t.Errorf("partner limiter %v/s; want 3", l.Limit())
	}
}
