package policy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/policy"
)

var (
	alice = jid.MustParse("alice@example.com")
	bob   = jid.MustParse("bob@example.com")
	carol = jid.MustParse("carol@example.com")
	dave  = jid.MustParse("dave@example.com")
	eve   = jid.MustParse("eve@example.com")
)

// full returns the full JID u/res.
func full(u jid.JID, res string) jid.JID {
	return jid.MustParse(u.String() + "/" + res)
}

// accessPolicies is a configuration where each scope says something
// different, so the effective policy shows which one applied.
func accessPolicies() *policy.Config {
	return &policy.Config{Policies: []policy.AccessPolicy{
		{Name: "global", EnableXMPPAccess: false, Description: "global"},
		{Name: "site:Redmond", EnableXMPPAccess: true, EnableFederationAccess: true, Description: "site"},
		{Name: "tag:NoXMPP", EnableXMPPAccess: false, Description: "user-off"},
		{Name: "XMPP", EnableXMPPAccess: true, EnableFederationAccess: true, Description: "user-on"},
	}}
}

// TestPrecedence checks REFERENCE §5.6 #57: per-user > site > global.
func TestPrecedence(t *testing.T) {
	ctx := context.Background()
	users := new(policy.UserTable)
	p, _ := newPolicy(t, accessPolicies(), &policy.Options{Directory: users})
	for _, tc := range []struct {
		name   string
		u      policy.User
		want   string // the Description of the policy that applies
		access bool
	}{
		{"nothing", policy.User{}, "global", false},
		{"site", policy.User{Site: "Redmond"}, "site", true},
		{"site any case", policy.User{Site: "REDMOND"}, "site", true},
		{"unknown site", policy.User{Site: "Dublin"}, "global", false},
		{"user over site", policy.User{Site: "Redmond", Policy: "NoXMPP"}, "user-off", false},
		{"user over global", policy.User{Policy: "XMPP"}, "user-on", true},
		{"user tag form", policy.User{Policy: "tag:xmpp"}, "user-on", true},
		{"missing user policy, site", policy.User{Site: "Redmond", Policy: "Gone"}, "site", true},
		{"missing user policy, global", policy.User{Policy: "Gone"}, "global", false},
		{"site name as user policy", policy.User{Policy: "site:Redmond"}, "global", false},
		{"unsupported home", policy.User{Policy: "XMPP", UnsupportedHome: true}, "user-on", false},
	} {
		users.Set(alice, tc.u)
		ap, err := p.Access(ctx, alice)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if ap.Description != tc.want || ap.EnableXMPPAccess != tc.access {
			t.Errorf("%s: Access = %+v; want %q with access %v", tc.name, ap, tc.want, tc.access)
		}
		err = p.CheckUser(ctx, full(alice, "phone"))
		switch {
		case tc.u.UnsupportedHome:
			denial(t, err, policy.RuleUnsupportedHome) // #71
		case !tc.access:
			d := denial(t, err, policy.RuleNoXMPPAccess)
			if d.User != "alice@example.com" {
				t.Errorf("%s: denial user %q; want the bare address", tc.name, d.User)
			}
		case err != nil:
			t.Errorf("%s: CheckUser = %v", tc.name, err)
		}
	}
}

// TestShippedGlobalDenies checks REFERENCE §5.6 #58, with and without a
// Directory.
func TestShippedGlobalDenies(t *testing.T) {
	ctx := context.Background()
	p, _ := newPolicy(t, nil, nil)
	ap, err := p.Access(ctx, alice)
	if err != nil || ap.Name != "global" || ap.EnableXMPPAccess {
		t.Errorf("Access = %+v, %v; want the shipped global policy", ap, err)
	}
	denial(t, p.CheckUser(ctx, alice), policy.RuleNoXMPPAccess)
	apply(t, p, policy.SetAccessPolicy(policy.AccessPolicy{Name: "Global", EnableXMPPAccess: true, EnableFederationAccess: true}))
	if err := p.CheckUser(ctx, alice); err != nil {
		t.Errorf("after enabling the global policy: %v", err)
	}
	if got := p.Config().Policies; len(got) != 1 || got[0].Name != "global" {
		t.Errorf("policies %+v; want one named global", got)
	}
}

// TestPolicyScopes checks REFERENCE §5.6 #60.
func TestPolicyScopes(t *testing.T) {
	ctx := context.Background()
	users := new(policy.UserTable)
	users.Set(alice, policy.User{Site: "Redmond", Policy: "XMPP"})
	users.Set(bob, policy.User{Policy: "XMPP"})
	p, _ := newPolicy(t, accessPolicies(), &policy.Options{Directory: users})

	// Removing "global" resets it to its defaults.
	apply(t, p, policy.SetAccessPolicy(policy.AccessPolicy{Name: "global", EnableXMPPAccess: true, EnableFederationAccess: true}))
	d := denial(t, p.CheckUser(ctx, carol), policy.RuleUnknownUser)
	if d.User != "carol@example.com" {
		t.Errorf("unknown user denial %+v; want it to name carol", d)
	}
	users.Set(carol, policy.User{})
	if err := p.CheckUser(ctx, carol); err != nil {
		t.Errorf("global on: %v", err)
	}
	rep := apply(t, p, policy.RemoveAccessPolicy("global"))
	if len(rep.Removed) != 1 || rep.Removed[0] != "policy:global" {
		t.Errorf("report %+v", rep)
	}
	denial(t, p.CheckUser(ctx, carol), policy.RuleNoXMPPAccess)
	if ap, _ := p.Access(ctx, carol); ap.Name != "global" || ap.EnableXMPPAccess || ap.Description != "" {
		t.Errorf("global after removal: %+v; want the defaults", ap)
	}
	// Removing it again is still a reset, not an error.
	apply(t, p, policy.RemoveAccessPolicy("global"))

	// A site has one policy: setting it again (any case) replaces it.
	apply(t, p, policy.SetAccessPolicy(policy.AccessPolicy{Name: "SITE:redmond", Description: "site2"}))
	n := 0
	for _, ap := range p.Config().Policies {
		if strings.EqualFold(ap.Name, "site:redmond") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d policies for site Redmond; want 1", n)
	}
	// Removing a per-user policy sends its users to their site or global.
	apply(t, p, policy.RemoveAccessPolicy("tag:XMPP"))
	if ap, _ := p.Access(ctx, alice); ap.Description != "site2" {
		t.Errorf("alice after removal: %+v; want the site policy", ap)
	}
	if ap, _ := p.Access(ctx, bob); ap.Name != "global" {
		t.Errorf("bob after removal: %+v; want global", ap)
	}
	if _, err := p.Apply(ctx, policy.ApplyOptions{}, policy.RemoveAccessPolicy("XMPP")); !errors.Is(err, policy.ErrNotFound) {
		t.Errorf("removing it twice: %v", err)
	}
	if _, err := p.Apply(ctx, policy.ApplyOptions{}, policy.SetAccessPolicy(policy.AccessPolicy{})); err == nil {
		t.Error("a policy without a name was accepted")
	}
}

// TestGrant checks REFERENCE §5.6 #61.
func TestGrant(t *testing.T) {
	ctx := context.Background()
	users := new(policy.UserTable)
	users.Set(alice, policy.User{Site: "Redmond"})
	p, _ := newPolicy(t, accessPolicies(), &policy.Options{Directory: users})
	if err := p.Grant(ctx, alice, "Missing"); !errors.Is(err, policy.ErrNotFound) || !strings.Contains(err.Error(), `"Missing"`) {
		t.Errorf("granting a missing policy: %v", err)
	}
	for _, name := range []string{"global", "site:Redmond"} {
		if err := p.Grant(ctx, alice, name); err == nil {
			t.Errorf("granting %q succeeded", name)
		}
	}
	if err := p.Grant(ctx, full(alice, "r"), "tag:noxmpp"); err != nil {
		t.Fatal(err)
	}
	if u, _ := users.LookupUser(ctx, alice); u.Policy != "NoXMPP" {
		t.Errorf("assigned %q; want the policy's stored name", u.Policy)
	}
	denial(t, p.CheckUser(ctx, alice), policy.RuleNoXMPPAccess)
	if err := p.Grant(ctx, alice, ""); err != nil {
		t.Fatal(err)
	}
	if u, _ := users.LookupUser(ctx, alice); u.Policy != "" {
		t.Errorf("after clearing: %q", u.Policy)
	}
	if err := p.CheckUser(ctx, alice); err != nil {
		t.Errorf("back to the site policy: %v", err)
	}
	if err := p.Grant(ctx, eve, "XMPP"); !errors.Is(err, policy.ErrUnknownUser) {
		t.Errorf("granting to an unknown user: %v", err)
	}
	// A Directory that cannot store assignments.
	p2, _ := newPolicy(t, accessPolicies(), &policy.Options{Directory: policy.DirectoryFunc(users.LookupUser)})
	if err := p2.Grant(ctx, alice, "XMPP"); err == nil || !strings.Contains(err.Error(), "Granter") {
		t.Errorf("Grant without a Granter: %v", err)
	}
	p3, _ := newPolicy(t, accessPolicies(), nil)
	if err := p3.Grant(ctx, alice, "XMPP"); err == nil {
		t.Error("Grant without a Directory succeeded")
	}
}

// TestKillSwitch checks REFERENCE §5.6 #63.
func TestKillSwitch(t *testing.T) {
	ctx := context.Background()
	c := accessPolicies()
	c.Policies[0].EnableXMPPAccess = true
	c.Policies[0].EnableFederationAccess = true
	c.Partners = []policy.Partner{{Domain: "fabrikam.com", Type: policy.Federated}}
	c.Gateway.DisableFederation = true
	users := new(policy.UserTable)
	users.Set(alice, policy.User{Policy: "XMPP"})
	p, _ := newPolicy(t, c, &policy.Options{Directory: users})
	denial(t, p.CheckUser(ctx, alice), policy.RuleFederationDisabled)
	// Even a user the Directory does not know gets the kill switch, not a
	// lookup.
	denial(t, p.CheckUser(ctx, eve), policy.RuleFederationDisabled)
	_, err := p.Remote("fabrikam.com")
	denial(t, err, policy.RuleFederationDisabled)
	dec, err := p.Inbound(ctx, policy.Request{Action: policy.ActMessage, From: jid.MustParse("x@fabrikam.com"), To: alice})
	if err != nil || dec.Verdict != policy.Deny {
		t.Fatalf("Inbound = %+v, %v; want Deny", dec, err)
	}
	denial(t, dec.Err, policy.RuleFederationDisabled)
	g := p.Gateway()
	g.DisableFederation = false
	apply(t, p, policy.SetGateway(g))
	if err := p.CheckUser(ctx, alice); err != nil {
		t.Errorf("after turning federation on: %v", err)
	}
}

// TestDirectoryErrors checks unknown users and failing directories.
func TestDirectoryErrors(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("directory down")
	dir := policy.DirectoryFunc(func(_ context.Context, u jid.JID) (policy.User, error) {
		switch u.Localpart() {
		case "dave":
			return policy.User{}, boom
		case "eve":
			return policy.User{}, policy.ErrUnknownUser
		}
		if u.Resourcepart() != "" {
			return policy.User{}, errors.New("the Directory got a full JID")
		}
		return policy.User{}, nil
	})
	p, _ := newPolicy(t, nil, &policy.Options{Directory: dir})
	err := p.CheckUser(ctx, dave)
	if !errors.Is(err, boom) {
		t.Errorf("CheckUser with a failing Directory: %v", err)
	}
	var d *policy.Denial
	if errors.As(err, &d) {
		t.Errorf("a Directory failure became a denial: %v", d)
	}
	if _, err := p.Access(ctx, dave); !errors.Is(err, boom) {
		t.Errorf("Access with a failing Directory: %v", err)
	}
	denial(t, p.CheckUser(ctx, full(eve, "r")), policy.RuleUnknownUser)
	_, err = p.Access(ctx, eve)
	denial(t, err, policy.RuleUnknownUser)
	denial(t, p.CheckUser(ctx, full(bob, "laptop")), policy.RuleNoXMPPAccess)
	// Inbound: the domain is checked before the user is looked up; a
	// Directory failure is an error, not a refusal.
	dec, err := p.Inbound(ctx, policy.Request{Action: policy.ActMessage, From: jid.MustParse("x@a.com"), To: dave})
	if err != nil || dec.Verdict != policy.Deny {
		t.Fatalf("Inbound from a non-partner = %+v, %v; want Deny", dec, err)
	}
	denial(t, dec.Err, policy.RuleNotPartner)
	apply(t, p, policy.AddPartner(policy.Partner{Domain: "a.com"}))
	if dec, err := p.Inbound(ctx, policy.Request{Action: policy.ActMessage, From: jid.MustParse("x@a.com"), To: dave}); !errors.Is(err, boom) {
		t.Errorf("Inbound with a failing Directory = %+v, %v; want the Directory's error", dec, err)
	}
}

// TestDenial checks the rules' names, messages and stanza errors.
func TestDenial(t *testing.T) {
	for _, tc := range []struct {
		d         policy.Denial
		name      string
		typ       stanza.ErrorType
		condition stanza.Condition
	}{
		{policy.Denial{Rule: policy.RuleFederationDisabled}, "federation_disabled", stanza.Cancel, stanza.ServiceUnavailable},
		{policy.Denial{Rule: policy.RuleBlocked, Domain: "evil.com"}, "blocked", stanza.Cancel, stanza.ServiceUnavailable},
		{policy.Denial{Rule: policy.RuleNotPartner, Domain: "x.com"}, "not_partner", stanza.Cancel, stanza.ServiceUnavailable},
		{policy.Denial{Rule: policy.RuleInvalidDomain, Domain: "a..b"}, "invalid_domain", stanza.Modify, stanza.JIDMalformed},
		{policy.Denial{Rule: policy.RuleUnknownUser, User: "u@example.com"}, "unknown_user", stanza.Cancel, stanza.ServiceUnavailable},
		{policy.Denial{Rule: policy.RuleNoXMPPAccess, User: "u@example.com"}, "no_xmpp_access", stanza.Cancel, stanza.ServiceUnavailable},
		{policy.Denial{Rule: policy.RuleUnsupportedHome, User: "u@example.com"}, "unsupported_home", stanza.Cancel, stanza.ServiceUnavailable},
		{policy.Denial{Rule: policy.RuleNotAuthorized, User: "u@example.com", Domain: "x.com"}, "not_authorized", stanza.Auth, stanza.Forbidden},
		{policy.Denial{Rule: policy.RuleOtherPartner, Domain: "y.com", Partner: "x.com"}, "other_partner", stanza.Cancel, stanza.ServiceUnavailable},
		{policy.Denial{Rule: 99}, "rule_99", stanza.Cancel, stanza.ServiceUnavailable},
	} {
		if got := tc.d.Rule.String(); got != tc.name {
			t.Errorf("Rule %d: String %q; want %q", tc.d.Rule, got, tc.name)
		}
		msg := tc.d.Error()
		if !strings.HasPrefix(msg, "policy: ") || tc.d.Domain != "" && !strings.Contains(msg, tc.d.Domain) ||
			tc.d.User != "" && !strings.Contains(msg, tc.d.User) {
			t.Errorf("%v: Error %q does not name the domain and user", tc.name, msg)
		}
		se := tc.d.StanzaError()
		if se.Type != tc.typ || se.Condition != tc.condition || se.Text["en"] == "" {
			t.Errorf("%v: StanzaError %+v; want %s %s with text", tc.name, se, tc.typ, tc.condition)
		}
		// What the remote sender reads names no local user.
		if strings.Contains(se.Text["en"], "u@example.com") {
			t.Errorf("%v: stanza error text %q names the local user", tc.name, se.Text["en"])
		}
	}
	// RFC 6121 §8.5: a remote cannot tell a missing user from one without
	// access.
	unknown := (&policy.Denial{Rule: policy.RuleUnknownUser}).StanzaError()
	noAccess := (&policy.Denial{Rule: policy.RuleNoXMPPAccess}).StanzaError()
	if unknown.Text["en"] != noAccess.Text["en"] || unknown.Condition != noAccess.Condition {
		t.Error("unknown user and no access differ on the wire")
	}
}

func TestUserTable(t *testing.T) {
	ctx := context.Background()
	var ut policy.UserTable
	if _, err := ut.LookupUser(ctx, alice); !errors.Is(err, policy.ErrUnknownUser) {
		t.Errorf("zero table: %v", err)
	}
	ut.Remove(alice) // removing from an empty table is fine
	ut.Set(full(alice, "r1"), policy.User{Site: "S"})
	u, err := ut.LookupUser(ctx, full(alice, "r2"))
	if err != nil || u.Site != "S" {
		t.Errorf("LookupUser = %+v, %v", u, err)
	}
	ut.Remove(alice)
	if _, err := ut.LookupUser(ctx, alice); !errors.Is(err, policy.ErrUnknownUser) {
		t.Errorf("after Remove: %v", err)
	}
}
