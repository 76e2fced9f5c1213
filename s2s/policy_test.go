package s2s_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
)

// Enforcement of package policy over real loopback streams (issue 4,
// "Enforcement, end to end"; REFERENCE §5.2, §5.5, §5.6): one test per
// rule.

// closedFederation is a policy edit: open federation off, the given
// partners (with the common settings) only.
func closedFederation(partners ...policy.Partner) func(*policy.Config) {
	return func(c *policy.Config) {
		c.Gateway.OpenFederation = false
		for _, pt := range partners {
			if pt.Settings == (policy.Settings{}) {
				pt.Settings = s2s.CommonSettings()
			}
			c.Partners = append(c.Partners, pt)
		}
	}
}

// rawHeader opens a connection to n, sends an XML declaration and a
// stream header from domain, then extra (may be ""), and returns
// everything n writes until it closes the connection.
func rawHeader(t *testing.T, n *node, from, extra string) string {
	t.Helper()
	c, err := net.Dial("tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := &rawPeer{t: t, conn: c}
	p.write("<?xml version='1.0'?>" + header(from, n.domain) + extra)
	return p.readAll()
}

// nothingHandled fails if n's Handler got a stanza.
func nothingHandled(t *testing.T, n *node) {
	t.Helper()
	select {
	case st := <-n.got:
		t.Errorf("%s's Handler got %s", n.domain, st.Raw())
	default:
	}
}

// REFERENCE §5.2 #17: a stream from a domain that is not a partner (open
// federation off) gets policy-violation right after its header: no
// features, no TLS, and the stanza sent right behind the header is never
// handled.
func TestPolicyInboundNotPartner(t *testing.T) {
	h := newHarness(t)
	b := h.node("b.example", nodeOpt{edit: closedFederation(policy.Partner{Domain: "a.example"})})
	got := rawHeader(t, b, "evil.example", "<message from='e@evil.example' to='v@b.example' id='m1'><body>x</body></message>")
	if !strings.Contains(got, "<policy-violation ") || !strings.Contains(got, "not a federation partner") ||
		!strings.Contains(got, "</stream:stream>") || strings.Contains(got, "starttls") {
		t.Errorf("got %q, want policy-violation naming the rule before any feature", got)
	}
	nothingHandled(t, b)
	if n := len(b.srv.Stats().Streams); n != 0 {
		t.Errorf("%d streams registered", n)
	}
	// The partner still gets in.
	h.rawPeer("a.example", b)
}

// acceptCounter is a listener that counts connections and closes them.
type acceptCounter struct {
	l net.Listener
	n atomic.Int64
	w sync.WaitGroup
}

func newAcceptCounter(t *testing.T) *acceptCounter {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &acceptCounter{l: l}
	a.w.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			a.n.Add(1)
			_ = c.Close()
		}
	})
	t.Cleanup(func() { _ = l.Close(); a.w.Wait() })
	return a
}

func (a *acceptCounter) port() uint16 { return uint16(a.l.Addr().(*net.TCPAddr).Port) }

// REFERENCE §5.2 #18: a stanza to a domain that is not a partner is
// refused locally with the *policy.Denial (service-unavailable): no DNS
// query, no connection, nothing queued.
func TestPolicySendNotPartner(t *testing.T) {
	h := newHarness(t)
	ac := newAcceptCounter(t)
	h.dns.AddSRV("_xmpp-server._tcp", "c.example", "xmpp.c.example", ac.port(), 0, 0)
	h.dns.AddHost("xmpp.c.example", netip.MustParseAddr("127.0.0.1"))
	a := h.node("a.example", nodeOpt{edit: closedFederation(policy.Partner{Domain: "b.example"})})
	before := h.dns.Queries()
	err := a.srv.Send(context.Background(), msg(t, "u@a.example", "v@c.example", "x"))
	var d *policy.Denial
	if !errors.As(err, &d) || d.Rule != policy.RuleNotPartner || d.Domain != "c.example" {
		t.Fatalf("Send = %v, want a *policy.Denial not_partner for c.example", err)
	}
	if e := d.StanzaError(); e.Condition != stanza.ServiceUnavailable {
		t.Errorf("StanzaError = %v, want service-unavailable", e)
	}
	if q := h.dns.Queries() - before; q != 0 {
		t.Errorf("%d DNS queries for a refused domain", q)
	}
	if pairs, dialing := s2s.PoolState(a.srv); pairs != 0 || dialing != 0 {
		t.Errorf("pool holds %d pairs, %d dialing", pairs, dialing)
	}
	if n := ac.n.Load(); n != 0 {
		t.Errorf("%d connections to the refused domain", n)
	}
	if q := a.srv.Stats().Queued; q != 0 {
		t.Errorf("%d stanzas queued", q)
	}
}

// The block list wins over a partner entry and over open federation, in
// both directions; "*.example.org" blocks the domain and its
// sub-domains.
func TestPolicyBlockedWins(t *testing.T) {
	h := newHarness(t)
	a := h.node("a.example", nodeOpt{edit: func(c *policy.Config) {
		c.Partners = []policy.Partner{{Domain: "b.example", Settings: s2s.CommonSettings()}}
		c.Gateway.Blocked = []string{"b.example", "*.evil.example"}
	}})
	for _, to := range []string{"b.example", "evil.example", "x.evil.example"} {
		err := a.srv.Send(context.Background(), msg(t, "u@a.example", "v@"+to, "x"))
		var d *policy.Denial
		if !errors.As(err, &d) || d.Rule != policy.RuleBlocked {
			t.Errorf("Send to %s = %v, want blocked", to, err)
		}
	}
	for _, from := range []string{"b.example", "x.evil.example"} {
		if got := rawHeader(t, a, from, ""); !strings.Contains(got, "<policy-violation ") || !strings.Contains(got, "blocked") {
			t.Errorf("stream from %s: %q, want policy-violation (blocked)", from, got)
		}
	}
	// Open federation still admits others.
	h.rawPeer("ok.example", a)
}

// The three peers of the matrix acceptance test: one able to do
// everything, one with TLS but no SASL EXTERNAL, one with plain TCP and
// dialback only.
var matrixPeers = []struct {
	name string
	set  policy.Settings
}{
	{"full", policy.Settings{TLS: policy.Optional, SASL: policy.Optional}},
	{"tls-no-sasl", policy.Settings{TLS: policy.Optional, SASL: policy.NotSupported}},
	{"tcp-dialback", policy.Settings{TLS: policy.NotSupported, SASL: policy.NotSupported}},
}

// TestPolicyMatrixExpectedMethods is the acceptance test "each partner's
// settings decide the methods negotiated, in both directions, matching
// the matrix's expected methods column for all 18 rows": for each row as
// our partner settings, against the three peers, as initiator and as
// receiver, every stream uses a method of Settings.ExpectedMethods(), and
// over the three peers every one of them is reached. The invalid rows
// cannot be configured.
func TestPolicyMatrixExpectedMethods(t *testing.T) {
	h := newHarness(t)
	for i, row := range allSettings() {
		t.Run(fmt.Sprintf("row%02d_%s", i+1, settingsName(row)), func(t *testing.T) {
			t.Parallel()
			if _, err := row.Validate(false); err != nil {
				c := &policy.Config{Partners: []policy.Partner{{Domain: "p.example", Settings: row}}}
				if _, err := policy.New(context.Background(), policy.NewMemStore(c), nil); err == nil {
					t.Fatalf("invalid row %d accepted", i+1)
				}
				if row.ExpectedMethods() != 0 {
					t.Errorf("invalid row %d expects %v", i+1, row.ExpectedMethods())
				}
				return
			}
			for _, initiator := range []bool{true, false} {
				var reached policy.Methods
				for j, peer := range matrixPeers {
					us := h.node(fmt.Sprintf("us%d-%d-%v.example", i, j, initiator), nodeOpt{set: settings(row)})
					them := h.node(fmt.Sprintf("them%d-%d-%v.example", i, j, initiator), nodeOpt{set: settings(peer.set)})
					from, to := us, them
					if !initiator {
						from, to = them, us
					}
					if err := from.srv.Send(context.Background(), msg(t, "u@"+from.domain, "v@"+to.domain, "x")); err != nil {
						t.Fatalf("Send: %v", err)
					}
					select {
					case <-to.got:
						var m policy.Method
						for _, si := range us.srv.Stats().Streams {
							if si.Remote == them.domain {
								m = methodOf(si)
							}
						}
						if !row.ExpectedMethods().Has(m) {
							t.Errorf("initiator=%v, peer %s: method %v is not among the expected %v", initiator, peer.name, m, row.ExpectedMethods())
						}
						reached |= policy.Methods(m)
					case <-from.bounced:
					case <-time.After(hang):
						t.Fatalf("initiator=%v, peer %s: neither delivered nor bounced", initiator, peer.name)
					}
				}
				if reached != row.ExpectedMethods() {
					t.Errorf("initiator=%v: reached %v, want every expected method %v", initiator, reached, row.ExpectedMethods())
				}
			}
		})
	}
}

// REFERENCE §5.5 #47-48: the per-partner connection limit counts all of a
// partner's domains together, the gateway's limit all streams; the stream
// over either gets resource-constraint right after its header.
func TestPolicyConnectionLimits(t *testing.T) {
	h := newHarness(t)
	b := h.node("b.example", nodeOpt{edit: func(c *policy.Config) {
		c.Gateway.ConnectionLimit, c.Gateway.PartnerConnectionLimit = 2, 2
		c.Partners = []policy.Partner{{Domain: "a.example", AdditionalDomains: []string{"a2.example"}, ConnectionLimit: 1, Settings: s2s.CommonSettings()}}
	}})
	h.rawPeer("a.example", b)
	if got := rawHeader(t, b, "a2.example", ""); !strings.Contains(got, "<resource-constraint ") || !strings.Contains(got, "partner a.example") {
		t.Errorf("second stream of partner a.example: %q, want resource-constraint", got)
	}
	h.rawPeer("other.example", b) // open federation: its own partner
	if got := rawHeader(t, b, "third.example", ""); !strings.Contains(got, "<resource-constraint ") || !strings.Contains(got, "ConnectionLimit") {
		t.Errorf("third stream: %q, want resource-constraint (gateway limit)", got)
	}
	partners := map[string]string{}
	for range 2000 { // the last stream may still be finishing its negotiation
		clear(partners)
		for _, si := range b.srv.Stats().Streams {
			partners[si.Remote] = si.Partner
		}
		if len(partners) == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if len(partners) != 2 || partners["a.example"] != "a.example" || partners["other.example"] != "other.example" {
		t.Errorf("streams' partners %v", partners)
	}
}

// The partner's rate limiter slows a burst down instead of cutting the
// partner off: with one token and a tiny rate, the first stanza is handled,
// the second waits (its reservation makes the shared limiter's tokens
// negative) on an open stream; Close ends the wait at once.
func TestPolicyRateLimit(t *testing.T) {
	h := newHarness(t)
	b := h.node("b.example", nodeOpt{edit: func(c *policy.Config) {
		c.Partners = []policy.Partner{{Domain: "a.example", StanzasPerSecond: 0.001, Settings: s2s.CommonSettings()}}
	}})
	rem, err := b.srv.Policy.Remote("a.example")
	if err != nil || rem.Limiter == nil {
		t.Fatalf("Remote = %+v, %v", rem, err)
	}
	p := h.rawPeer("a.example", b)
	for i := range 3 {
		p.write(fmt.Sprintf("<message from='u@a.example' to='v@b.example' id='r%d'/>", i))
	}
	if got := recv(t, b.got, "first stanza"); got.ID != "r0" {
		t.Errorf("first handled %s", got.ID)
	}
	waited := false
	for range 15000 {
		if rem.Limiter.Tokens() < -0.5 {
			waited = true
			break
		}
		time.Sleep(time.Millisecond)
	}
	if !waited {
		t.Fatalf("the second stanza does not wait on the limiter (tokens %v)", rem.Limiter.Tokens())
	}
	nothingHandled(t, b)
	if n := len(b.srv.Stats().Streams); n != 1 {
		t.Errorf("%d streams while slowed down, want the stream kept", n)
	}
	// Close must not wait for the limiter (goleak checks nothing is left).
	if err := b.srv.Close(); err != nil {
		t.Fatal(err)
	}
	nothingHandled(t, b)
}

// REFERENCE §5.2 #21: with a ProxyFQDN, outbound streams go to the proxy
// (here with an explicit port), the partner's SRV records are never
// queried, and the proxy's certificate may name either the partner's
// domain or the proxy itself.
func TestPolicyProxyFQDN(t *testing.T) {
	for _, certFor := range []string{"b.example", "proxy.example.net"} {
		t.Run("cert-"+certFor, func(t *testing.T) {
			h := newHarness(t)
			cert, err := h.ca.IssueDomain(certFor)
			if err != nil {
				t.Fatal(err)
			}
			b := h.node("b.example", nodeOpt{cert: &cert})
			h.dns.AddHost("proxy.example.net", netip.MustParseAddr("127.0.0.1"))
			port := netip.MustParseAddrPort(b.addr).Port()
			a := h.node("a.example", nodeOpt{edit: closedFederation(policy.Partner{Domain: "b.example", ProxyFQDN: fmt.Sprintf("proxy.example.net:%d", port)})})
			if err := a.srv.Send(context.Background(), msg(t, "u@a.example", "v@b.example", "x")); err != nil {
				t.Fatal(err)
			}
			recv(t, b.got, "message through the proxy")
			for _, name := range []string{"_xmpp-server._tcp.b.example", "_xmpps-server._tcp.b.example"} {
				if n := h.dns.QueriesFor(name, dns.TypeSRV); n != 0 {
					t.Errorf("%d SRV queries for %s", n, name)
				}
			}
			st := a.srv.Stats().Streams
			if len(st) != 1 || st[0].Remote != "b.example" || st[0].RemoteAddr != b.addr || st[0].Auth != s2s.AuthSASLExternal {
				t.Errorf("streams %+v", st)
			}
		})
	}
}

// REFERENCE §5.6 #59: a user without XMPP access receives nothing (the
// remote sender gets service-unavailable, the Handler sees nothing) and
// can send nothing (Send returns the Denial); granting access lets the
// next message through at once. Server traffic (a ping to the domain) is
// not user traffic.
func TestPolicyUserAccess(t *testing.T) {
	h := newHarness(t)
	a := h.node("a.example", nodeOpt{})
	b := h.node("b.example", nodeOpt{edit: func(c *policy.Config) {
		c.Policies = []policy.AccessPolicy{{Name: policy.GlobalPolicy}} // as shipped: no XMPP access
	}})
	ctx := context.Background()
	if err := a.srv.Send(ctx, msg(t, "u@a.example", "v@b.example", "secret body")); err != nil {
		t.Fatal(err)
	}
	reply := recv(t, a.got, "error reply")
	if reply.Type != "error" || reply.From.String() != "v@b.example" || !strings.Contains(string(reply.Raw()), "service-unavailable") {
		t.Errorf("reply %s, want service-unavailable from v@b.example", reply.Raw())
	}
	nothingHandled(t, b)
	err := b.srv.Send(ctx, msg(t, "v@b.example", "u@a.example", "out"))
	var d *policy.Denial
	if !errors.As(err, &d) || d.Rule != policy.RuleNoXMPPAccess {
		t.Errorf("Send from a user without access = %v, want no_xmpp_access", err)
	}
	ping, err := s2s.ParseStanza([]byte("<iq from='a.example' to='b.example' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.srv.Send(ctx, ping); err != nil {
		t.Fatal(err)
	}
	if pong := recv(t, a.got, "pong"); pong.ID != "p1" || pong.Type != "result" {
		t.Errorf("answer to the ping: %s", pong.Raw())
	}
	if _, err := b.srv.Policy.Apply(ctx, policy.ApplyOptions{}, policy.SetAccessPolicy(policy.AccessPolicy{
		Name: policy.GlobalPolicy, EnableXMPPAccess: true, EnableFederationAccess: true})); err != nil {
		t.Fatal(err)
	}
	if err := a.srv.Send(ctx, msg(t, "u@a.example", "v@b.example", "now")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, b.got, "message after the grant"); got.ID != "m1" || got.To.String() != "v@b.example" {
		t.Errorf("got %s", got.Raw())
	}
	if err := b.srv.Send(ctx, msg(t, "v@b.example", "u@a.example", "out")); err != nil {
		t.Errorf("Send after the grant: %v", err)
	}
	if got := recv(t, a.got, "reply after the grant"); got.From.String() != "v@b.example" || got.Type == "error" {
		t.Errorf("got %s", got.Raw())
	}
}

// REFERENCE §5.1 #16 and the issue: removing or blocking a partner closes
// its established streams with policy-violation within one change, and
// the stanzas queued for it are bounced with the refusal's error.
func TestPolicyLiveChange(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit policy.Edit
		rule string
	}{
		{"remove", policy.RemovePartner("a.example"), "not a federation partner"},
		{"block", policy.Block("a.example"), "blocked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			// slow.example's server accepts and never answers: a stanza
			// for it stays queued while the stream is being opened.
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var conns sync.WaitGroup
			held := make(chan net.Conn, 4)
			conns.Go(func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					held <- c
				}
			})
			defer func() {
				_ = l.Close()
				conns.Wait()
				close(held)
				for c := range held {
					_ = c.Close()
				}
			}()
			h.dns.AddSRV("_xmpp-server._tcp", "slow.example", "xmpp.slow.example", uint16(l.Addr().(*net.TCPAddr).Port), 0, 0)
			h.dns.AddHost("xmpp.slow.example", netip.MustParseAddr("127.0.0.1"))
			b := h.node("b.example", nodeOpt{edit: closedFederation(
				policy.Partner{Domain: "a.example"}, policy.Partner{Domain: "slow.example"})})
			p := h.rawPeer("a.example", b)
			p.write("<message from='u@a.example' to='v@b.example' id='live'/>")
			recv(t, b.got, "message before the change")
			ctx := context.Background()
			if err := b.srv.Send(ctx, msg(t, "v@b.example", "w@slow.example", "queued")); err != nil {
				t.Fatal(err)
			}
			edits := []policy.Edit{tc.edit}
			if tc.name == "remove" {
				edits = append(edits, policy.RemovePartner("slow.example"))
			} else {
				edits = append(edits, policy.Block("slow.example"))
			}
			if _, err := b.srv.Policy.Apply(ctx, policy.ApplyOptions{}, edits...); err != nil {
				t.Fatal(err)
			}
			got := p.readAll()
			if !strings.Contains(got, "<policy-violation ") || !strings.Contains(got, tc.rule) {
				t.Errorf("peer got %q, want policy-violation (%s)", got, tc.rule)
			}
			bo := recv(t, b.bounced, "bounce of the queued stanza")
			if bo.err.Condition != stanza.ServiceUnavailable || bo.st.To.String() != "w@slow.example" {
				t.Errorf("bounce %v for %s, want service-unavailable", bo.err, bo.st.To)
			}
			for range 2000 {
				if len(b.srv.Stats().Streams) == 0 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			if st := b.srv.Stats().Streams; len(st) != 0 {
				t.Errorf("streams after the change: %+v", st)
			}
		})
	}
}

// REFERENCE §5.3 #37: on a stream from a.example, a dialback request for
// a domain of another partner is refused with a dialback error
// (XEP-0220 §2.4, not-authorized), the pair is not added, and the stream
// goes on for its own domain.
func TestPolicyPiggybackOtherPartner(t *testing.T) {
	h := newHarness(t)
	b := h.node("b.example", nodeOpt{edit: closedFederation(policy.Partner{Domain: "a.example"}, policy.Partner{Domain: "c.example"})})
	p := h.rawPeer("a.example", b)
	p.write("<db:result from='c.example' to='b.example'>0123456789abcdef</db:result>")
	got := p.readUntil("</db:result>")
	if !strings.Contains(got, "type='error'") || !strings.Contains(got, "<not-authorized ") {
		t.Errorf("answer %q, want a dialback error with not-authorized", got)
	}
	p.write("<message from='u@a.example' to='v@b.example' id='own'/>")
	if st := recv(t, b.got, "message from the stream's own domain"); st.ID != "own" {
		t.Errorf("got %s", st.Raw())
	}
	p.write("<message from='u@c.example' to='v@b.example' id='other'/>")
	if got := p.readAll(); !strings.Contains(got, "<invalid-from ") {
		t.Errorf("stanza from the refused domain: %q, want invalid-from", got)
	}
	nothingHandled(t, b)
}

// A Server without a Policy admits no remote domain: Send refuses with
// not_partner before any look-up, and inbound streams get
// policy-violation.
func TestPolicyNil(t *testing.T) {
	h := newHarness(t)
	a := h.node("a.example", nodeOpt{mod: func(s *s2s.Server) { s.Policy = nil }})
	before := h.dns.Queries()
	err := a.srv.Send(context.Background(), msg(t, "u@a.example", "v@b.example", "x"))
	var d *policy.Denial
	if !errors.As(err, &d) || d.Rule != policy.RuleNotPartner {
		t.Errorf("Send = %v, want not_partner", err)
	}
	if q := h.dns.Queries() - before; q != 0 {
		t.Errorf("%d DNS queries", q)
	}
	if got := rawHeader(t, a, "b.example", ""); !strings.Contains(got, "<policy-violation ") {
		t.Errorf("inbound stream: %q, want policy-violation", got)
	}
}

// A stream without 'from' names its domain in its first dialback request
// (XEP-0220 §2.1.1): that domain is admitted like a stream header's, so a
// non-partner gets the policy-violation stream error, before any
// verification.
func TestPolicyDialbackWithoutFrom(t *testing.T) {
	h := newHarness(t)
	b := h.node("b.example", nodeOpt{edit: closedFederation(policy.Partner{Domain: "a.example"})})
	before := h.dns.Queries()
	c, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := &rawPeer{t: t, conn: c}
	p.write("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0' to='b.example'>")
	p.readUntil("</stream:features>")
	p.write("<db:result from='evil.example' to='b.example'>0123456789abcdef</db:result>")
	if got := p.readAll(); !strings.Contains(got, "<policy-violation ") || !strings.Contains(got, "not a federation partner") {
		t.Errorf("got %q, want policy-violation", got)
	}
	if q := h.dns.Queries() - before; q != 0 {
		t.Errorf("%d DNS queries: a verification was started", q)
	}
	nothingHandled(t, b)
}
