package policy_test

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmppfed/xmppfed/policy"
)

// fields returns the sorted Field values of the *FieldErrors in err.
func fields(err error) []string {
	var out []string
	for _, fe := range policy.FieldErrors(err) {
		out = append(out, fe.Field)
	}
	slices.Sort(out)
	return out
}

func TestPartnerValidate(t *testing.T) {
	long := strings.Repeat("x", 1025)
	for _, tc := range []struct {
		name   string
		pt     policy.Partner
		strict bool
		want   []string // fields in error, sorted; nil: valid
	}{
		{"minimal", policy.Partner{Domain: "fabrikam.com"}, false, nil},
		{"idn and case", policy.Partner{Domain: "Bücher.Example.", AdditionalDomains: []string{"XN--BCHER-KVA.de"}}, false, nil},
		{"no domain", policy.Partner{}, false, []string{"domain"}},
		{"single label", policy.Partner{Domain: "localhost"}, false, []string{"domain"}},
		{"bad domain", policy.Partner{Domain: "a..b"}, false, []string{"domain"}},
		{"bad additional", policy.Partner{Domain: "a.com", AdditionalDomains: []string{"b.com", "b_c.com", "", "A.com", "B.COM"}}, false,
			[]string{"additional_domains[2]", "additional_domains[3]", "additional_domains[4]", "additional_domains[5]"}},
		{"type", policy.Partner{Domain: "a.com", Type: 3}, false, []string{"type"}},
		{"tls", policy.Partner{Domain: "a.com", Settings: policy.Settings{TLS: 3}}, false, []string{"tls"}},
		{"sasl", policy.Partner{Domain: "a.com", Settings: policy.Settings{SASL: 3}}, false, []string{"sasl"}},
		{"row 14", policy.Partner{Domain: "a.com", Settings: policy.Settings{SASL: ns, DisableDialback: true}}, false, []string{"sasl, dialback"}},
		{"row 5 strict", policy.Partner{Domain: "a.com", Settings: policy.Settings{TLS: ns}}, true, []string{"tls, sasl"}},
		{"row 5 lax", policy.Partner{Domain: "a.com", Settings: policy.Settings{TLS: ns}}, false, nil},
		{"connection limit", policy.Partner{Domain: "a.com", ConnectionLimit: -1}, false, []string{"connection_limit"}},
		{"proxy host", policy.Partner{Domain: "a.com", ProxyFQDN: "proxy.a.com"}, false, nil},
		{"proxy host:port", policy.Partner{Domain: "a.com", ProxyFQDN: "proxy.a.com:5270"}, false, nil},
		{"proxy ipv6", policy.Partner{Domain: "a.com", ProxyFQDN: "[2001:db8::1]:5269"}, false, nil},
		{"proxy port 0", policy.Partner{Domain: "a.com", ProxyFQDN: "proxy.a.com:0"}, false, []string{"proxy_fqdn"}},
		{"proxy port big", policy.Partner{Domain: "a.com", ProxyFQDN: "proxy.a.com:65536"}, false, []string{"proxy_fqdn"}},
		{"proxy port name", policy.Partner{Domain: "a.com", ProxyFQDN: "proxy.a.com:xmpp"}, false, []string{"proxy_fqdn"}},
		{"proxy bad host", policy.Partner{Domain: "a.com", ProxyFQDN: "pro xy:5269"}, false, []string{"proxy_fqdn"}},
		{"proxy no host", policy.Partner{Domain: "a.com", ProxyFQDN: ":5269"}, false, []string{"proxy_fqdn"}},
		{"rate NaN", policy.Partner{Domain: "a.com", StanzasPerSecond: math.NaN()}, false, []string{"stanzas_per_second"}},
		{"rate Inf", policy.Partner{Domain: "a.com", StanzasPerSecond: math.Inf(1)}, false, []string{"stanzas_per_second"}},
		{"rate negative", policy.Partner{Domain: "a.com", StanzasPerSecond: -1}, false, nil},
		{"description long", policy.Partner{Domain: "a.com", Description: long}, false, []string{"description"}},
		{"description utf8", policy.Partner{Domain: "a.com", Description: "\xff"}, false, []string{"description"}},
		{"everything", policy.Partner{Domain: "", Type: 9, ConnectionLimit: -3, ProxyFQDN: "a:b:c", Description: long}, false,
			[]string{"connection_limit", "description", "domain", "proxy_fqdn", "type"}},
	} {
		_, err := tc.pt.Validate(tc.strict)
		if got := fields(err); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Validate error fields %q (%v); want %q", tc.name, got, err, tc.want)
		}
		if err != nil && len(policy.FieldErrors(err)) == 0 {
			t.Errorf("%s: %v has no *FieldError", tc.name, err)
		}
	}
}

func TestGatewayValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    policy.Gateway
		want []string
	}{
		{"zero", policy.Gateway{}, nil},
		{"negative means none", policy.Gateway{ConnectionLimit: -1, PartnerConnectionLimit: -1, KeepAliveInterval: -1,
			StreamEstablishmentTimeout: -1, StreamInactivityTimeout: -1, SubscriptionRefreshInterval: -1, StanzasPerSecond: -1}, nil},
		{"sub-second durations", policy.Gateway{KeepAliveInterval: time.Millisecond, StreamEstablishmentTimeout: 999 * time.Millisecond,
			StreamInactivityTimeout: 1, SubscriptionRefreshInterval: time.Microsecond},
			[]string{"keepalive_interval", "stream_establishment_timeout", "stream_inactivity_timeout", "subscription_refresh_interval"}},
		{"one second", policy.Gateway{KeepAliveInterval: time.Second}, nil},
		{"partner above total", policy.Gateway{ConnectionLimit: 10, PartnerConnectionLimit: 11}, []string{"partner_connection_limit"}},
		{"default partner above total", policy.Gateway{ConnectionLimit: 10}, []string{"partner_connection_limit"}},
		{"partner equal total", policy.Gateway{ConnectionLimit: 10, PartnerConnectionLimit: 10}, nil},
		{"total unlimited", policy.Gateway{ConnectionLimit: -1, PartnerConnectionLimit: 5000}, nil},
		{"short secret", policy.Gateway{DialbackSecret: policy.NewSecret([]byte("short"))}, []string{"dialback_secret"}},
		{"16-byte secret", policy.Gateway{DialbackSecret: policy.NewSecret([]byte("0123456789abcdef"))}, nil},
		{"small stanza", policy.Gateway{MaxStanzaBytes: 9999}, []string{"max_stanza_bytes"}},
		{"negative stanza", policy.Gateway{MaxStanzaBytes: -1}, []string{"max_stanza_bytes"}},
		{"10000 stanza", policy.Gateway{MaxStanzaBytes: 10000}, nil},
		{"rate NaN", policy.Gateway{StanzasPerSecond: math.NaN()}, []string{"stanzas_per_second"}},
		{"blocked", policy.Gateway{Blocked: []string{"evil.com", "*.bad.org", "*.", "x", "EVIL.com", "*.*.a.com"}},
			[]string{"blocked[3]", "blocked[4]", "blocked[5]", "blocked[6]"}},
		{"default partner", policy.Gateway{DefaultPartner: policy.Partner{Domain: "ignored", ConnectionLimit: -1,
			Settings: policy.Settings{SASL: ns, DisableDialback: true}}},
			[]string{"default_partner.connection_limit", "default_partner.sasl, dialback"}},
	} {
		err := tc.g.Validate()
		if got := fields(err); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Validate error fields %q (%v); want %q", tc.name, got, err, tc.want)
		}
	}
	// The secret never appears in the error.
	secret := "TOPSECRETxyz"
	err := policy.Gateway{DialbackSecret: policy.NewSecret([]byte(secret))}.Validate()
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("short secret error %v: want an error without the secret", err)
	}
}

func TestAccessPolicyValidate(t *testing.T) {
	for _, tc := range []struct {
		ap       policy.AccessPolicy
		want     []string
		warnings []string
	}{
		{policy.AccessPolicy{Name: "global"}, nil, nil},
		{policy.AccessPolicy{Name: "site:Redmond"}, nil, nil},
		{policy.AccessPolicy{Name: "tag:Sales"}, nil, nil},
		{policy.AccessPolicy{Name: "Sales"}, nil, nil},
		{policy.AccessPolicy{Name: ""}, []string{"name"}, nil},
		{policy.AccessPolicy{Name: "site:"}, []string{"name"}, nil},
		{policy.AccessPolicy{Name: "tag:"}, []string{"name"}, nil},
		{policy.AccessPolicy{Name: "site:a:b"}, []string{"name"}, nil},
		{policy.AccessPolicy{Name: "user:x"}, []string{"name"}, nil},
		{policy.AccessPolicy{Name: "a\nb"}, []string{"name"}, nil},
		{policy.AccessPolicy{Name: "x", Description: strings.Repeat("d", 1025)}, []string{"description"}, nil},
		// REFERENCE §5.6 #62.
		{policy.AccessPolicy{Name: "x", EnableXMPPAccess: true}, nil, []string{"enable_xmpp_access"}},
		{policy.AccessPolicy{Name: "x", EnableXMPPAccess: true, EnableFederationAccess: true}, nil, nil},
		{policy.AccessPolicy{Name: "x", EnableFederationAccess: true}, nil, nil},
	} {
		ws, err := tc.ap.Validate()
		if got := fields(err); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: error fields %q (%v); want %q", tc.ap, got, err, tc.want)
		}
		var wf []string
		for _, w := range ws {
			wf = append(wf, w.Field)
			if w.Code != policy.WarnXMPPWithoutFederation {
				t.Errorf("%+v: warning code %q", tc.ap, w.Code)
			}
		}
		if !slices.Equal(wf, tc.warnings) {
			t.Errorf("%+v: warnings %v; want fields %q", tc.ap, ws, tc.warnings)
		}
	}
}

// TestConfigValidate checks the prefixes, the cross-entry checks and that
// every problem is reported, not just the first.
func TestConfigValidate(t *testing.T) {
	c := &policy.Config{
		Gateway: policy.Gateway{MaxStanzaBytes: 5, Blocked: []string{"ok.com", "-bad.com"}},
		Partners: []policy.Partner{
			{Domain: "fabrikam.com", AdditionalDomains: []string{"fabrikam.net"}},
			{Domain: "contoso.com", AdditionalDomains: []string{"Fabrikam.NET", "contoso.net"}, ConnectionLimit: -1},
			{Domain: "", Settings: policy.Settings{TLS: 5}},
			{Domain: "FABRIKAM.com."},
			{Domain: "litware.com", Settings: policy.Settings{TLS: opt}},
		},
		Policies: []policy.AccessPolicy{
			{Name: "global"},
			{Name: "site:Redmond"},
			{Name: "site:redmond"},
			{Name: "Sales"},
			{Name: "tag:sales"},
			{Name: "bad:name"},
			{Name: "ok", EnableXMPPAccess: true},
		},
	}
	ws, err := c.Validate(false)
	want := []string{
		"gateway.blocked[2]",
		"gateway.max_stanza_bytes",
		"partner[#3].domain",
		"partner[#3].tls",
		"partner[FABRIKAM.com.].domain",
		"partner[contoso.com].additional_domains[1]",
		"partner[contoso.com].connection_limit",
		"policy[#6].name",
		"policy[site:redmond].name",
		"policy[tag:sales].name",
	}
	if got := fields(err); !slices.Equal(got, want) {
		t.Errorf("fields:\n got %q\nwant %q\n(%v)", got, want, err)
	}
	for _, fe := range policy.FieldErrors(err) {
		if fe.Field == "policy[site:redmond].name" && !strings.Contains(fe.Reason, "site") {
			t.Errorf("second site policy: reason %q does not mention the site", fe.Reason)
		}
		if fe.Field == "partner[contoso.com].additional_domains[1]" && !strings.Contains(fe.Reason, "partner[fabrikam.com]") {
			t.Errorf("duplicate domain: reason %q does not name the other partner", fe.Reason)
		}
	}
	var wf []string
	for _, w := range ws {
		wf = append(wf, w.Field)
	}
	slices.Sort(wf)
	wantW := []string{
		"partner[contoso.com].dialback", "partner[fabrikam.com].dialback",
		"partner[litware.com].sasl", "policy[ok].enable_xmpp_access",
	}
	// partner[FABRIKAM.com.] is also row 1; its domain is valid, so its
	// prefix is its name as given.
	wantW = append(wantW, "partner[FABRIKAM.com.].dialback")
	slices.Sort(wantW)
	if !slices.Equal(wf, wantW) {
		t.Errorf("warnings:\n got %q\nwant %q", wf, wantW)
	}
	if !strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q: want one line per problem", err)
	}

	// Open federation makes the default partner's warnings count.
	c2 := &policy.Config{Gateway: policy.Gateway{OpenFederation: true}}
	ws, err = c2.Validate(false)
	if err != nil || len(ws) != 1 || ws[0].Field != "gateway.default_partner.dialback" {
		t.Errorf("open federation: %v, %v; want one gateway.default_partner.dialback warning", ws, err)
	}
	c2.Gateway.OpenFederation = false
	if ws, err := c2.Validate(false); err != nil || len(ws) != 0 {
		t.Errorf("closed federation: %v, %v; want nothing", ws, err)
	}
	var nilConfig *policy.Config
	if ws, err := nilConfig.Validate(true); err != nil || ws != nil {
		t.Errorf("nil Config: %v, %v", ws, err)
	}
}

func TestFieldErrors(t *testing.T) {
	a := &policy.FieldError{Field: "a", Reason: "r"}
	b := &policy.FieldError{Field: "b", Value: "v", Reason: "r", Line: 3}
	err := errors.Join(a, errors.Join(errors.New("other"), b))
	got := policy.FieldErrors(err)
	if len(got) != 2 || got[0] != a || got[1] != b {
		t.Errorf("FieldErrors = %v", got)
	}
	if policy.FieldErrors(nil) != nil {
		t.Error("FieldErrors(nil) is not nil")
	}
	if s := b.Error(); s != `policy: line 3: b = "v": r` {
		t.Errorf("Error() = %q", s)
	}
	if s := a.Error(); s != `policy: a: r` {
		t.Errorf("Error() = %q", s)
	}
}
