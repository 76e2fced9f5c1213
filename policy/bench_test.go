package policy_test

import (
	"context"
	"fmt"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/xmppfed/xmppfed/policy"
)

// benchPolicy has 1000 partners with two domains each, a block list and
// site and per-user policies.
func benchPolicy(b *testing.B, dir policy.Directory) *policy.Policy {
	b.Helper()
	c := &policy.Config{
		Gateway: policy.Gateway{Blocked: []string{"*.evil.org", "spam.example"}},
		Policies: []policy.AccessPolicy{
			{Name: "global"},
			{Name: "site:redmond", EnableXMPPAccess: true, EnableFederationAccess: true},
			{Name: "xmpp", EnableXMPPAccess: true, EnableFederationAccess: true},
		},
	}
	for i := range 1000 {
		c.Partners = append(c.Partners, policy.Partner{
			Domain:            fmt.Sprintf("partner%d.example", i),
			AdditionalDomains: []string{fmt.Sprintf("chat.partner%d.example", i)},
		})
	}
	p, err := policy.New(context.Background(), policy.NewMemStore(c), &policy.Options{Directory: dir})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func BenchmarkRemote(b *testing.B) {
	p := benchPolicy(b, nil)
	for _, d := range []string{"chat.partner500.example", "Partner7.EXAMPLE.", "a.b.evil.org", "stranger.example"} {
		b.Run(d, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = p.Remote(d)
			}
		})
	}
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := p.Remote("chat.partner500.example"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkCheckUser(b *testing.B) {
	ctx := context.Background()
	users := new(policy.UserTable)
	u := jid.MustParse("alice@example.com/phone")
	users.Set(u, policy.User{Site: "redmond"})
	p := benchPolicy(b, users)
	b.Run("site", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := p.CheckUser(ctx, u); err != nil {
				b.Fatal(err)
			}
		}
	})
	noDir := benchPolicy(b, nil)
	b.Run("no directory", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = noDir.CheckUser(ctx, u)
		}
	})
}

// BenchmarkInbound is the per-message decision on the federation path: a
// partner's user writing to a local user with XMPP access (delivered), and
// the same from an unauthorized PublicUnverified sender (refused).
func BenchmarkInbound(b *testing.B) {
	ctx := context.Background()
	users := new(policy.UserTable)
	to := jid.MustParse("alice@example.com")
	users.Set(to, policy.User{Site: "redmond"})
	p := benchPolicy(b, users)
	deliver := policy.Request{Action: policy.ActMessage, From: jid.MustParse("bob@chat.partner500.example/pc"), To: to, Authorized: true}
	b.Run("deliver", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d, err := p.Inbound(ctx, deliver)
			if err != nil || d.Verdict != policy.Deliver {
				b.Fatal(d, err)
			}
		}
	})
}

// BenchmarkAdmit is the verdict alone, as federation's Send checks every
// outbound stanza's domain.
func BenchmarkAdmit(b *testing.B) {
	p := benchPolicy(b, nil)
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Admit("chat.partner500.example"); err != nil {
			b.Fatal(err)
		}
	}
}
