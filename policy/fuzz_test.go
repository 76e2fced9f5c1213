package policy_test

import (
	"context"
	"testing"

	"github.com/xmppfed/xmppfed/policy"
)

// FuzzAddPartner feeds arbitrary text to the partner fields a policy file
// or an administrator's tool passes on. It checks that nothing panics and
// that what Apply accepts is consistent: stored normalized, still valid
// when validated again, and admitted by Remote under any of its domains.
func FuzzAddPartner(f *testing.F) {
	for _, s := range [][4]string{
		{"fabrikam.com", "fabrikam.net", "proxy.fabrikam.com:5270", "note"},
		{"Bücher.Example.", "XN--BCHER-KVA.de", "[::1]:5269", ""},
		{"a..b", "", ":0", "\xff"},
		{"localhost", "localhost", "host:99999", ""},
		{"x.com", "X.COM", "", ""},
		{"tag:x", "site:y", "a:b:c", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, domain, additional, proxy, description string) {
		p, err := policy.New(ctx, policy.NewMemStore(&policy.Config{Gateway: policy.Gateway{
			DialbackSecret: policy.NewSecret([]byte("0123456789abcdef"))}}), nil)
		if err != nil {
			t.Fatal(err)
		}
		pt := policy.Partner{Domain: domain, ProxyFQDN: proxy, Description: description}
		if additional != "" {
			pt.AdditionalDomains = []string{additional}
		}
		_, verr := pt.Validate(false)
		_, err = p.Apply(ctx, policy.ApplyOptions{}, policy.AddPartner(pt))
		if err != nil {
			if p.Generation() != 1 || len(p.Partners("")) != 0 {
				t.Fatalf("a refused Apply changed the policy: %v", err)
			}
			if verr == nil && len(policy.FieldErrors(err)) > 0 {
				t.Fatalf("Partner.Validate accepted %+v but Apply refused it: %v", pt, err)
			}
			return
		}
		if verr != nil {
			t.Fatalf("Apply accepted %+v but Partner.Validate refused it: %v", pt, verr)
		}
		if _, err := p.Config().Validate(false); err != nil {
			t.Fatalf("the stored configuration does not validate: %v", err)
		}
		got := p.Partners("")
		if len(got) != 1 {
			t.Fatalf("Partners() = %+v", got)
		}
		for _, d := range append([]string{domain}, pt.AdditionalDomains...) {
			r, err := p.Remote(d)
			if err != nil || r.Partner != got[0].Domain {
				t.Fatalf("Remote(%q) = %+v, %v; want partner %q", d, r, err, got[0].Domain)
			}
		}
	})
}
