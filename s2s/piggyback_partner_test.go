package s2s_test

import (
	"context"
	"testing"

	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
)

// TestPiggybackOtherPartnerDomain: a stanza to another domain of the
// partner of an established stream goes over that stream when the peer's
// certificate also covers it (REFERENCE §5.3 #37, XEP-0344): the pool
// finds the stream through its partner index, not a new connection.
func TestPiggybackOtherPartnerDomain(t *testing.T) {
	h := newHarness(t)
	b := h.node("b.example", nodeOpt{domains: []string{"b2.example"}})
	a := h.node("a.example", nodeOpt{edit: func(c *policy.Config) {
		c.Partners = append(c.Partners, policy.Partner{Domain: "b.example", AdditionalDomains: []string{"b2.example"}, Settings: s2s.CommonSettings()})
	}})
	ctx := context.Background()
	for _, to := range []string{"v@b.example", "v@b2.example"} {
		if err := a.srv.Send(ctx, msg(t, "u@a.example", to, "x")); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, b.got, "message"); got.To.String() != to {
			t.Errorf("delivered to %s, want %s", got.To, to)
		}
	}
	sa := a.srv.Stats().Streams
	if len(sa) != 1 || sa[0].Remote != "b.example" || len(sa[0].SendPairs) != 2 || sa[0].Partner != "b.example" {
		t.Fatalf("a's streams %+v, want one to b.example carrying both pairs", sa)
	}
}
