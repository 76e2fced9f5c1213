package policy_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/xmppfed/xmppfed/policy"
)

// secret32 is a valid 32-byte dialback secret, base64.
var secret32 = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789ABCDEF"))

// fullFile sets every key of the schema to a value other than its default.
var fullFile = `# every key
[gateway]
identity = "global"
connection_limit = 500
partner_connection_limit = 30
keepalive_interval = 120
stream_establishment_timeout = "1m30s"
stream_inactivity_timeout = -1
subscription_refresh_interval = "8h"
log_bodies = true
dialback_secret = "` + secret32 + `"
max_stanza_bytes = 0x10000
stanzas_per_second = 12.5
open_federation = true
disable_federation = true
deny_unverified_subscriptions = true
blocked = ["spam.example", "*.bad.example"]

[gateway.default_partner]
type = "PublicVerified"
tls = "required"
sasl = "not-supported"
dialback = true
keepalive = false
connection_limit = 3
proxy_fqdn = "relay.example.net"
stanzas_per_second = -1
description = "open federation"

[[partner]]
domain = "fabrikam.com"
additional_domains = ["chat.fabrikam.com", "fabrikam.net"]
type = "federated"
tls = "optional"
sasl = "optional"
dialback = true
keepalive = false
connection_limit = 10
proxy_fqdn = "xmpp.fabrikam.com:5270"
stanzas_per_second = 500
description = """multi
line"""

[[partner]]
domain = 'gmail.com'
tls = "not_supported"
sasl = "NotSupported"
type = "public-unverified"

[[partner]]
domain = "contoso.com"
dialback = false

[[policy]]
name = "global"
enable_xmpp_access = false
enable_federation_access = true
description = "shipped"

[[policy]]
name = "site:Redmond"
enable_xmpp_access = true
enable_federation_access = true

[[policy]]
name = "tag:pilot"
enable_xmpp_access = true
enable_federation_access = true
`

func fullConfig() *policy.Config {
	return &policy.Config{
		Gateway: policy.Gateway{
			ConnectionLimit:             500,
			PartnerConnectionLimit:      30,
			KeepAliveInterval:           120 * time.Second,
			StreamEstablishmentTimeout:  90 * time.Second,
			StreamInactivityTimeout:     -time.Second,
			SubscriptionRefreshInterval: 8 * time.Hour,
			LogBodies:                   true,
			DialbackSecret:              policy.NewSecret([]byte("0123456789abcdef0123456789ABCDEF")),
			MaxStanzaBytes:              65536,
			StanzasPerSecond:            12.5,
			OpenFederation:              true,
			DisableFederation:           true,
			DenyUnverifiedSubscriptions: true,
			Blocked:                     []string{"spam.example", "*.bad.example"},
			DefaultPartner: policy.Partner{
				Type:             policy.PublicVerified,
				Settings:         policy.Settings{TLS: policy.Required, SASL: policy.NotSupported},
				DisableKeepAlive: true,
				ConnectionLimit:  3,
				ProxyFQDN:        "relay.example.net",
				StanzasPerSecond: -1,
				Description:      "open federation",
			},
		},
		Partners: []policy.Partner{{
			Domain:            "fabrikam.com",
			AdditionalDomains: []string{"chat.fabrikam.com", "fabrikam.net"},
			Type:              policy.Federated,
			Settings:          policy.Settings{TLS: policy.Optional, SASL: policy.Optional},
			DisableKeepAlive:  true,
			ConnectionLimit:   10,
			ProxyFQDN:         "xmpp.fabrikam.com:5270",
			StanzasPerSecond:  500,
			Description:       "multi\nline",
		}, {
			Domain:   "gmail.com",
			Settings: policy.Settings{TLS: policy.NotSupported, SASL: policy.NotSupported},
		}, {
			Domain:   "contoso.com",
			Settings: policy.Settings{DisableDialback: true},
		}},
		Policies: []policy.AccessPolicy{
			{Name: "global", EnableFederationAccess: true, Description: "shipped"},
			{Name: "site:Redmond", EnableXMPPAccess: true, EnableFederationAccess: true},
			{Name: "tag:pilot", EnableXMPPAccess: true, EnableFederationAccess: true},
		},
	}
}

func TestParseEveryField(t *testing.T) {
	c, err := policy.Parse([]byte(fullFile))
	if err != nil {
		t.Fatal(err)
	}
	if want := fullConfig(); !reflect.DeepEqual(c, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", c, want)
	}
	if !bytes.Equal(c.Gateway.DialbackSecret.Bytes(), []byte("0123456789abcdef0123456789ABCDEF")) {
		t.Errorf("secret not decoded")
	}
}

func TestParseEmptyIsDefaults(t *testing.T) {
	for _, src := range []string{"", "# only a comment\n", "\xef\xbb\xbf\n", "[gateway]\n"} {
		c, err := policy.Parse([]byte(src))
		if err != nil {
			t.Fatalf("Parse(%q): %v", src, err)
		}
		if !reflect.DeepEqual(c, &policy.Config{}) {
			t.Errorf("Parse(%q) = %+v, want the zero Config", src, c)
		}
	}
}

// TestParseAlternativeSyntax: inline tables and dotted keys, which TOML
// allows, give the same Config as the table headers.
func TestParseAlternativeSyntax(t *testing.T) {
	a := `gateway = { connection_limit = 5, partner_connection_limit = 2, blocked = ["x.example"] }
partner = [ { domain = "a.example", tls = "optional", sasl = "not-supported" }, { domain = "b.example" } ]
policy = [ { name = "global", enable_xmpp_access = true, enable_federation_access = true } ]
`
	b := `gateway.connection_limit = 5
gateway.partner_connection_limit = 2
gateway.blocked = ["x.example"]
[[partner]]
domain = "a.example"
tls = "optional"
sasl = "not-supported"
[[partner]]
domain = "b.example"
[[policy]]
name = "global"
enable_xmpp_access = true
enable_federation_access = true
`
	ca, err := policy.Parse([]byte(a))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := policy.Parse([]byte(b))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ca, cb) {
		t.Errorf("inline %+v\ndotted %+v", ca, cb)
	}
	if ca.Gateway.ConnectionLimit != 5 || len(ca.Partners) != 2 || ca.Partners[0].SASL != policy.NotSupported {
		t.Errorf("unexpected %+v", ca)
	}
}

// wantErr is one expected problem: its line, its field and a part of its
// reason.
type wantErr struct {
	line   int
	field  string
	reason string
}

func fileErrors(t *testing.T, err error) []*policy.FieldError {
	t.Helper()
	var fe *policy.FileError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *FileError", err, err)
	}
	return fe.Errors
}

func checkErrors(t *testing.T, src string, want ...wantErr) {
	t.Helper()
	c, err := policy.Parse([]byte(src))
	if err == nil {
		t.Fatalf("Parse succeeded: %+v", c)
	}
	if c != nil {
		t.Errorf("Parse returned a Config with its error")
	}
	got := fileErrors(t, err)
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(got), len(want), err)
	}
	for i, w := range want {
		g := got[i]
		if g.Line != w.line || g.Field != w.field || !strings.Contains(g.Reason, w.reason) {
			t.Errorf("error %d = line %d %q %q, want line %d %q containing %q", i, g.Line, g.Field, g.Reason, w.line, w.field, w.reason)
		}
	}
}

func TestParseErrorKinds(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []wantErr
	}{
		{"syntax", "[gateway]\nconnection_limit = = 3\n",
			[]wantErr{{2, "syntax error", "column 20"}}},
		{"syntax after good lines", "[gateway]\nlog_bodies = true\nblocked = [\"a.example\"\n",
			[]wantErr{{3, "syntax error", "column"}}},
		{"unquoted string", "[[partner]]\ndomain = a.example\n",
			[]wantErr{{2, "syntax error", "column 10"}}},
		{"unknown top-level key", "\ngateways = 1\n",
			[]wantErr{{2, "gateways", `unknown key (did you mean "gateway"?)`}}},
		{"unknown gateway key", "[gateway]\n\nkeepalive = 3\n",
			[]wantErr{{3, "gateway.keepalive", "unknown key"}}},
		{"unknown partner key with suggestion", "[[partner]]\ndomain = \"a.example\"\ndialbak = false\n",
			[]wantErr{{3, "partner[a.example].dialbak", `did you mean "dialback"?`}}},
		{"unknown policy key", "[[policy]]\nname = \"global\"\nxmpp = true\n",
			[]wantErr{{3, "policy[global].xmpp", "unknown key"}}},
		{"duplicate key", "[gateway]\nlog_bodies = true\nlog_bodies = false\n",
			[]wantErr{{3, "gateway.log_bodies", "duplicate key (first set on line 2)"}}},
		{"second gateway", "[gateway]\nlog_bodies = true\n\n[gateway]\nopen_federation = true\n",
			[]wantErr{{4, "gateway", "a second [gateway] table (the first is on line 1)"}}},
		{"gateway array", "[[gateway]]\nlog_bodies = true\n",
			[]wantErr{{1, "gateway", "must be a table"}}},
		{"gateway identity", "[gateway]\nidentity = \"site:x\"\n",
			[]wantErr{{2, "gateway.identity", `its identity can only be "global"`}}},
		{"partner not an array", "[partner]\ndomain = \"a.example\"\n",
			[]wantErr{{1, "partner", "write [[partner]]"}}},
		{"table defined twice", "[gateway.default_partner]\ntls = \"optional\"\n[gateway.default_partner]\n",
			[]wantErr{{3, "gateway.default_partner", "defined twice (first on line 1)"}}},
		{"array of tables over a table", "[gateway]\n[[gateway.default_partner]]\n[gateway.default_partner]\n",
			[]wantErr{{2, "gateway.default_partner", "must be a table"}, {3, "gateway.default_partner", "write [[gateway.default_partner]]"}}},
		{"inline table extended", "gateway = { log_bodies = true }\n[gateway.default_partner]\n",
			[]wantErr{{2, "gateway", "inline table"}}},
		{"dotted key into a header table", "[gateway.default_partner]\ntls = \"optional\"\n[gateway]\ndefault_partner.sasl = \"optional\"\n",
			[]wantErr{{4, "gateway.default_partner", "dotted key cannot add to table"}}},
		{"key with a value used as a table", "[gateway]\nblocked = []\n[gateway.blocked]\n",
			[]wantErr{{3, "gateway.blocked", "already has a value (line 2)"}}},
		{"wrong type int", "[gateway]\nconnection_limit = \"10\"\n",
			[]wantErr{{2, "gateway.connection_limit", "must be an integer, not a string"}}},
		{"float for int", "[gateway]\nmax_stanza_bytes = 1e5\n",
			[]wantErr{{2, "gateway.max_stanza_bytes", "must be an integer, not a float"}}},
		{"wrong type bool", "[gateway]\nlog_bodies = \"no\"\n",
			[]wantErr{{2, "gateway.log_bodies", "must be a boolean"}}},
		{"wrong type string", "[[partner]]\ndomain = 5\n",
			[]wantErr{{2, "partner[#1].domain", "must be a string, not an integer"}}},
		{"date", "[[partner]]\ndomain = \"a.example\"\ndescription = 1979-05-27\n",
			[]wantErr{{3, "partner[a.example].description", "not a date-time"}}},
		{"array element type", "[gateway]\nblocked = [\n  \"a.example\",\n  7,\n]\n",
			[]wantErr{{4, "gateway.blocked[2]", "must be a string, not an integer"}}},
		{"list not array", "[[partner]]\ndomain = \"a.example\"\nadditional_domains = \"b.example\"\n",
			[]wantErr{{3, "partner[a.example].additional_domains", "must be an array of strings"}}},
		{"integer out of range", "[gateway]\nconnection_limit = 9223372036854775808\n",
			[]wantErr{{2, "gateway.connection_limit", "out of range"}}},
		{"duration out of range", "[gateway]\nkeepalive_interval = 9999999999999\n",
			[]wantErr{{2, "gateway.keepalive_interval", "duration out of range"}}},
		{"bad duration", "[gateway]\nkeepalive_interval = \"5 minutes\"\n",
			[]wantErr{{2, "gateway.keepalive_interval", "not a duration"}}},
		{"duration wrong type", "[gateway]\nkeepalive_interval = true\n",
			[]wantErr{{2, "gateway.keepalive_interval", "whole seconds"}}},
		{"non-finite rate", "[gateway]\nstanzas_per_second = inf\n",
			[]wantErr{{2, "gateway.stanzas_per_second", "finite"}}},
		{"nan rate", "[[partner]]\ndomain = \"a.example\"\nstanzas_per_second = nan\n",
			[]wantErr{{3, "partner[a.example].stanzas_per_second", "finite"}}},
		{"bad negotiation", "[[partner]]\ndomain = \"a.example\"\ntls = \"requried\"\n",
			[]wantErr{{3, "partner[a.example].tls", "not a negotiation value"}}},
		{"bad partner type", "[[partner]]\ndomain = \"a.example\"\ntype = \"trusted\"\n",
			[]wantErr{{3, "partner[a.example].type", "not a partner type"}}},
		{"bad base64", "[gateway]\ndialback_secret = \"not base64!\"\n",
			[]wantErr{{2, "gateway.dialback_secret", "base64"}}},
		{"default partner domain", "[gateway.default_partner]\ndomain = \"a.example\"\n",
			[]wantErr{{2, "gateway.default_partner.domain", "not allowed in [gateway.default_partner]"}}},
		// Config.Validate's problems, mapped back to lines.
		{"invalid matrix row", "[[partner]]\ndomain = \"a.example\"\n\nsasl = \"not-supported\"\ndialback = false\n",
			[]wantErr{{4, "partner[a.example].sasl, dialback", "no authentication method"}}},
		{"missing domain", "[gateway]\n[[partner]]\ntls = \"optional\"\n",
			[]wantErr{{2, "partner[#1].domain", "required"}}},
		{"bad domain", "[[partner]]\n\ndomain = \"bad..example\"\n",
			[]wantErr{{3, "partner[#1].domain", "not a valid domain"}}},
		{"domain of two partners", "[[partner]]\ndomain = \"a.example\"\n[[partner]]\ndomain = \"b.example\"\nadditional_domains = [\"c.example\", \"A.example\"]\n",
			[]wantErr{{5, "partner[b.example].additional_domains[2]", "also a domain of partner[a.example]"}}},
		{"limits", "[gateway]\nconnection_limit = 10\npartner_connection_limit = 11\n",
			[]wantErr{{3, "gateway.partner_connection_limit", "must not exceed connection_limit"}}},
		{"short secret", "[gateway]\ndialback_secret = \"c2hvcnQ=\"\n",
			[]wantErr{{2, "gateway.dialback_secret", "too short"}}},
		{"bad blocked", "[gateway]\nblocked = [\"ok.example\",\n  \"-bad-.example\"]\n",
			[]wantErr{{3, "gateway.blocked[2]", "not a valid domain"}}},
		{"bad proxy", "[[partner]]\ndomain = \"a.example\"\nproxy_fqdn = \"host:99999\"\n",
			[]wantErr{{3, "partner[a.example].proxy_fqdn", "port"}}},
		{"default partner settings", "[gateway.default_partner]\ntls = \"optional\"\nsasl = \"not-supported\"\ndialback = false\n",
			[]wantErr{{3, "gateway.default_partner.sasl, dialback", "no authentication method"}}},
		{"two policies for a site", "[[policy]]\nname = \"site:x\"\n[[policy]]\nname = \"site:x\"\n",
			[]wantErr{{4, "policy[site:x].name", "a second policy for this site"}}},
		{"policy without name", "[[policy]]\nenable_xmpp_access = true\n",
			[]wantErr{{1, "policy[#1].name", "required"}}},
		// A type error and its consequence in Validate are one problem.
		{"one problem per field", "[[partner]]\ndomain = 1\n",
			[]wantErr{{2, "partner[#1].domain", "must be a string"}}},
		// Validate's indexes follow the file when an element was left out.
		{"indexes after a bad element", "[gateway]\nblocked = [1, \"ok.example\", \"bad..example\"]\n",
			[]wantErr{{2, "gateway.blocked[1]", "must be a string"}, {2, "gateway.blocked[3]", "not a valid domain"}}},
		{"partner indexes after a bad element", "partner = [1, {tls = \"optional\"}]\n",
			[]wantErr{{1, "partner[1]", "must be a table"}, {1, "partner[#2].domain", "required"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkErrors(t, tt.src, tt.want...) })
	}
}

// TestParseCollectsEveryError: the problems of a file come all at once,
// in line order, and at most 100 of them.
func TestParseCollectsEveryError(t *testing.T) {
	src := `[gateway]
connection_limit = "many"
log_bodies = 1
foo = 2

[[partner]]
domain = "a.example"
tls = "sometimes"
sasl = "not-supported"
dialback = false

[[policy]]
name = ""
bar = true
`
	checkErrors(t, src,
		wantErr{2, "gateway.connection_limit", "must be an integer"},
		wantErr{3, "gateway.log_bodies", "must be a boolean"},
		wantErr{4, "gateway.foo", "unknown key"},
		wantErr{8, "partner[a.example].tls", "not a negotiation value"},
		wantErr{9, "partner[a.example].sasl, dialback", "no authentication method"},
		wantErr{13, "policy[#1].name", "required"},
		wantErr{14, "policy[#1].bar", "unknown key"},
	)

	var b strings.Builder
	b.WriteString("[gateway]\n")
	for i := range 150 {
		fmt.Fprintf(&b, "unknown_%d = %d\n", i, i)
	}
	_, err := policy.Parse([]byte(b.String()))
	var fe *policy.FileError
	if !errors.As(err, &fe) {
		t.Fatalf("got %v", err)
	}
	if len(fe.Errors) != 100 || fe.Omitted != 50 {
		t.Errorf("got %d errors and %d omitted, want 100 and 50", len(fe.Errors), fe.Omitted)
	}
	if fe.Errors[99].Line != 101 || fe.Errors[0].Line != 2 {
		t.Errorf("errors not in line order: first line %d, last %d", fe.Errors[0].Line, fe.Errors[99].Line)
	}
	if !strings.HasSuffix(err.Error(), "\nand 50 more problems") {
		t.Errorf("Error() does not say what was left out: ...%s", err.Error()[len(err.Error())-40:])
	}
}

func TestFileErrorFormat(t *testing.T) {
	e := &policy.FileError{Path: "/etc/x.toml", Errors: []*policy.FieldError{
		{Field: "gateway.log_bodies", Value: "yes", Reason: "must be a boolean", Line: 3},
		{Field: "partner[#1].domain", Reason: "required", Line: 7},
		{Field: "(config)", Reason: "odd"},
	}}
	want := "/etc/x.toml:3: gateway.log_bodies = \"yes\": must be a boolean\n" +
		"/etc/x.toml:7: partner[#1].domain: required\n" +
		"/etc/x.toml: (config): odd"
	if got := e.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
	e.Path = ""
	if got := e.Error(); !strings.HasPrefix(got, "line 3: gateway.log_bodies") {
		t.Errorf("without a path: %s", got)
	}
	var fe *policy.FieldError
	if !errors.As(e, &fe) || fe.Line != 3 {
		t.Errorf("errors.As does not find the first *FieldError: %v", fe)
	}
}

// TestSecretNeverInErrors: whatever is wrong with the dialback secret,
// the error does not show it.
func TestSecretNeverInErrors(t *testing.T) {
	const marker = "SuperSecretValue"
	short := base64.StdEncoding.EncodeToString([]byte(marker[:8]))
	for _, line := range []string{
		`dialback_secret = "` + marker + `!"`,                                                // not base64
		`dialback_secret = "` + short + `"`,                                                  // too short
		`dialback_secret = ["` + marker + `"]`,                                               // wrong type
		`dialbacksecret = "` + marker + `"`,                                                  // misspelt
		`dialback_secret = "` + secret32 + `"` + "\n" + `dialback_secret = "` + marker + `"`, // twice
	} {
		src := "[gateway]\n" + line + "\n"
		_, err := policy.Parse([]byte(src))
		if err == nil {
			t.Fatalf("%s: no error", line)
		}
		msg := err.Error()
		for _, s := range []string{marker, short, secret32} {
			if strings.Contains(msg, s) {
				t.Errorf("error for %q reveals the secret: %s", line, msg)
			}
		}
		for _, fe := range fileErrors(t, err) {
			if fe.Value != "" {
				t.Errorf("%s: Value %q", fe.Field, fe.Value)
			}
		}
	}
}

// roundTrip checks that c survives Marshal and Parse unchanged, and that
// Marshal is canonical.
func roundTrip(t *testing.T, c *policy.Config) {
	t.Helper()
	b, err := policy.Marshal(c)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	got, err := policy.Parse(b)
	if err != nil {
		t.Fatalf("Parse(Marshal(c)): %v\n%s", err, b)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("round trip:\n got %+v\nwant %+v\nfile:\n%s", got, c, b)
	}
	b2, err := policy.Marshal(got)
	if err != nil || !bytes.Equal(b, b2) {
		t.Errorf("Marshal is not canonical: %v\n%s\n---\n%s", err, b, b2)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	t.Run("empty", func(t *testing.T) { roundTrip(t, &policy.Config{}) })
	t.Run("every field", func(t *testing.T) { roundTrip(t, fullConfig()) })
	t.Run("odd values", func(t *testing.T) {
		c := &policy.Config{
			Gateway: policy.Gateway{
				KeepAliveInterval:           1500 * time.Millisecond,
				StreamInactivityTimeout:     -90 * time.Minute,
				SubscriptionRefreshInterval: 24*time.Hour + time.Nanosecond,
				StanzasPerSecond:            1e-3,
				ConnectionLimit:             -1,
				PartnerConnectionLimit:      -1,
			},
			Partners: []policy.Partner{{
				Domain:           "xn--bcher-kva.example",
				Description:      "quote \" backslash \\ tab \t nul \x00 del \x7f é 😀 \u2028",
				StanzasPerSecond: 1e300,
				Settings:         policy.Settings{TLS: policy.NotSupported, SASL: policy.NotSupported},
			}},
			Policies: []policy.AccessPolicy{{Name: "pilot users", Description: "a\r\nb"}},
		}
		roundTrip(t, c)
	})
	t.Run("example file", func(t *testing.T) {
		data, err := os.ReadFile("../examples/policycheck/partners.toml")
		if err != nil {
			t.Fatal(err)
		}
		c, err := policy.Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c)
	})
}

func TestMarshalDefaults(t *testing.T) {
	c := &policy.Config{Partners: []policy.Partner{{Domain: "a.example"}}}
	b, err := policy.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.HasPrefix(s, "# xmppfed policy file") {
		t.Errorf("no header comment:\n%s", s)
	}
	if !strings.Contains(s, "\n[[partner]]\ndomain = \"a.example\"\n") {
		t.Errorf("partner not written canonically:\n%s", s)
	}
	for _, k := range []string{"tls", "sasl", "dialback", "keepalive", "type", "dialback_secret", "default_partner"} {
		if strings.Contains(s, k) {
			t.Errorf("default %s written:\n%s", k, s)
		}
	}
	// Default partner's domains are not written.
	c.Gateway.DefaultPartner = policy.Partner{Domain: "ignored.example", AdditionalDomains: []string{"x.example"}}
	b2, err := policy.Marshal(c)
	if err != nil || !bytes.Equal(b, b2) {
		t.Errorf("DefaultPartner's domains changed the output: %v\n%s", err, b2)
	}
	if _, err := policy.Marshal(nil); err != nil {
		t.Errorf("Marshal(nil): %v", err)
	}
}

func TestMarshalSecret(t *testing.T) {
	c := &policy.Config{Gateway: policy.Gateway{DialbackSecret: policy.NewSecret([]byte("0123456789abcdef0123456789ABCDEF"))}}
	b, err := policy.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\ndialback_secret = \""+secret32+"\"\n") {
		t.Errorf("secret not written in standard base64:\n%s", b)
	}
	// Printing the Config does not reveal it.
	if s := fmt.Sprintf("%v %+v %#v", c, c, c); strings.Contains(s, secret32) || strings.Contains(s, "0123456789abcdef") {
		t.Errorf("printed config reveals the secret: %s", s)
	}
}

func TestMarshalErrors(t *testing.T) {
	tests := []struct {
		name  string
		c     *policy.Config
		field string
	}{
		{"invalid UTF-8", &policy.Config{Partners: []policy.Partner{{Domain: "a.example", Description: "\xff"}}}, "partner[a.example].description"},
		{"invalid UTF-8 in a list", &policy.Config{Gateway: policy.Gateway{Blocked: []string{"a.example", "\xfe"}}}, "gateway.blocked[2]"},
		{"NaN", &policy.Config{Gateway: policy.Gateway{StanzasPerSecond: math.NaN()}}, "gateway.stanzas_per_second"},
		{"Inf", &policy.Config{Partners: []policy.Partner{{StanzasPerSecond: math.Inf(1)}}}, "partner[#1].stanzas_per_second"},
		{"unknown enum", &policy.Config{Partners: []policy.Partner{{Domain: "a.example", Settings: policy.Settings{TLS: 7}}}}, "partner[a.example].tls"},
		{"unknown type", &policy.Config{Gateway: policy.Gateway{DefaultPartner: policy.Partner{Type: 9}}}, "gateway.default_partner.type"},
		{"bad policy name", &policy.Config{Policies: []policy.AccessPolicy{{Name: "\xff"}}}, "policy[#1].name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := policy.Marshal(tt.c)
			if err == nil {
				t.Fatalf("no error; wrote\n%s", b)
			}
			fes := policy.FieldErrors(err)
			if len(fes) != 1 || fes[0].Field != tt.field {
				t.Errorf("got %v, want one error on %s", err, tt.field)
			}
		})
	}
}

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.toml")
	src := "[[partner]]\ndomain = \"a.example\"\ntls = \"not-supported\"\nsasl = \"optional\"\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c, ws, err := policy.ParseFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Partners) != 1 || len(ws) != 1 || ws[0].Code != policy.WarnSASLNeedsTLS {
		t.Fatalf("got %+v, warnings %v", c, ws)
	}
	if !strings.HasPrefix(ws[0].Text, "line 4: ") {
		t.Errorf("warning without its line: %q", ws[0].Text)
	}
	// Strict mode refuses the row the Lync Control Panel refused.
	_, _, err = policy.ParseFile(path, true)
	var fe *policy.FileError
	if !errors.As(err, &fe) || fe.Path != path || len(fe.Errors) != 1 || fe.Errors[0].Line != 3 {
		t.Fatalf("strict: got %v", err)
	}
	if want := path + ":3: partner[a.example].tls, sasl = "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("strict: %q does not start with %q", err, want)
	}
	if _, _, err := policy.ParseFile(filepath.Join(dir, "missing.toml"), false); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, bytes.Repeat([]byte("#\n"), policy.MaxFileSize/2+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := policy.ParseFile(big, false); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: %v", err)
	}
}

// TestParseHostileInput: deep nesting, huge keys and values and floods of
// errors give short, bounded errors.
func TestParseHostileInput(t *testing.T) {
	tests := []struct {
		name, src, reason string
	}{
		{"nested arrays", "[gateway]\nblocked = " + strings.Repeat("[", 5000) + strings.Repeat("1,", 100) + strings.Repeat("]", 5000) + "\n", "nested more than 8 levels"},
		{"nested inline tables", "a = " + strings.Repeat("{b=", 5000) + "1" + strings.Repeat("}", 5000) + "\n", "nested more than 8 levels"},
		{"long dotted key", strings.Repeat("a.", 5000) + "b = 1\n", "more than 8 parts"},
		{"long header", "[" + strings.Repeat("a.", 5000) + "b]\n", "more than 8 parts"},
		{"long key", "[gateway]\n" + strings.Repeat("k", 1<<20) + " = 1\n", "unknown key"},
		{"long value", "[[partner]]\ndomain = \"a.example\"\ntls = \"" + strings.Repeat("x", 1<<20) + "\"\n", "not a negotiation value"},
		{"long number", "[gateway]\nconnection_limit = " + strings.Repeat("9", 1<<16) + "\n", "out of range"},
		{"many bad elements", "[gateway]\nblocked = [" + strings.Repeat("1,", 50000) + "]\n", "must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.Parse([]byte(tt.src))
			fes := fileErrors(t, err)
			if len(fes) == 0 || !strings.Contains(fes[0].Reason, tt.reason) {
				t.Fatalf("got %v, want %q", err, tt.reason)
			}
			if n := len(err.Error()); n > 100*300 {
				t.Errorf("error text is %d bytes", n)
			}
			for _, fe := range fes {
				if len(fe.Field) > 200 || len(fe.Value) > 400 {
					t.Errorf("long field or value: %d, %d bytes", len(fe.Field), len(fe.Value))
				}
			}
		})
	}
}

// TestParseDoesNotKeepInput: the Config does not share memory with the
// caller's buffer.
func TestParseDoesNotKeepInput(t *testing.T) {
	buf := []byte("[[partner]]\ndomain = \"a.example\"\ndescription = \"abc\"\n")
	c, err := policy.Parse(buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 'x'
	}
	if c.Partners[0].Domain != "a.example" || c.Partners[0].Description != "abc" {
		t.Errorf("Config changed with the input buffer: %+v", c.Partners[0])
	}
}

// FuzzParse: Parse never panics or hangs; whatever it accepts, Marshal
// writes and Parse reads back to the same Config; whatever it refuses
// comes with a *FileError whose problems have lines.
func FuzzParse(f *testing.F) {
	f.Add([]byte(fullFile))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := policy.Parse(data)
		if err != nil {
			var fe *policy.FileError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T: %v", err, err)
			}
			if len(fe.Errors) == 0 || len(fe.Errors) > 100 {
				t.Fatalf("%d problems: %v", len(fe.Errors), err)
			}
			for _, e := range fe.Errors {
				if e.Line < 0 || e.Field == "" || e.Reason == "" {
					t.Fatalf("bad problem %+v", e)
				}
			}
			return
		}
		b, err := policy.Marshal(c)
		if err != nil {
			t.Fatalf("Marshal of a parsed Config: %v", err)
		}
		c2, err := policy.Parse(b)
		if err != nil {
			t.Fatalf("Parse(Marshal(c)): %v\n%s", err, b)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip differs:\n%+v\n%+v\n%s", c, c2, b)
		}
	})
}

func ExampleParse() {
	src := []byte(`
[gateway]
connection_limit = 500

[[partner]]
domain = "fabrikam.com"
tls = "required"
sasl = "optional"

[[partner]]
domain = "gmail.com"
tls = "not-supported"
sasl = "not-supported"
keepalive = false
`)
	c, err := policy.Parse(src)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("connection limit:", c.Gateway.ConnectionLimit)
	for _, p := range c.Partners {
		fmt.Printf("%s: %v\n", p.Domain, p.ExpectedMethods())
	}

	_, err = policy.Parse([]byte("[[partner]]\ndomain = \"fabrikam.com\"\ntls = \"requried\"\ndialbak = false\n"))
	fmt.Println(err)
	// Output:
	// connection limit: 500
	// fabrikam.com: SASL over TLS, TLS dialback
	// gmail.com: TCP dialback
	// line 3: partner[fabrikam.com].tls = "requried": not a negotiation value: "required", "optional" or "not-supported"
	// line 4: partner[fabrikam.com].dialbak: unknown key (did you mean "dialback"?)
}

func ExampleMarshal() {
	c := &policy.Config{
		Gateway: policy.Gateway{KeepAliveInterval: 5 * time.Minute, Blocked: []string{"*.spam.example"}},
		Partners: []policy.Partner{{
			Domain:   "fabrikam.com",
			Type:     policy.Federated,
			Settings: policy.Settings{SASL: policy.Optional},
		}},
		Policies: []policy.AccessPolicy{{Name: "global", EnableXMPPAccess: true, EnableFederationAccess: true}},
	}
	b, err := policy.Marshal(c)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Skip the header comment.
	fmt.Print(string(b[bytes.Index(b, []byte("[gateway]")):]))
	// Output:
	// [gateway]
	// keepalive_interval = 300
	// blocked = ["*.spam.example"]
	//
	// [[partner]]
	// domain = "fabrikam.com"
	// type = "federated"
	// sasl = "optional"
	//
	// [[policy]]
	// name = "global"
	// enable_xmpp_access = true
	// enable_federation_access = true
}

func TestParseFS(t *testing.T) {
	fsys := fstest.MapFS{
		"ok.toml":  {Data: []byte("[[partner]]\ndomain = \"a.example\"\ntls = \"optional\"\n")},
		"bad.toml": {Data: []byte("[gateway]\n\nlog_bodies = 1\n")},
	}
	c, ws, err := policy.ParseFS(fsys, "ok.toml", false)
	if err != nil || len(c.Partners) != 1 || len(ws) != 1 || !strings.HasPrefix(ws[0].Text, "line 1: ") {
		t.Errorf("ok.toml: %+v %v %v", c, ws, err)
	}
	_, _, err = policy.ParseFS(fsys, "bad.toml", false)
	if err == nil || !strings.HasPrefix(err.Error(), "bad.toml:3: gateway.log_bodies = \"1\": must be a boolean") {
		t.Errorf("bad.toml: %v", err)
	}
	if _, _, err := policy.ParseFS(fsys, "none.toml", false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("none.toml: %v", err)
	}
}
