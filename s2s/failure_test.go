package s2s_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"strings"
	"testing"

	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
)

// End-to-end failure paths at the Server level: Send, then Bounce (or a
// stream error on the wire), complementing the negotiation-level tests in
// negotiate_test.go and TestInboundStanzaChecks (which covers spoofed
// from, DTD and the other stanza checks).

// expectBounce waits for a's bounce and checks it: the condition, and a
// text that names the remote domain and every one of causes.
func expectBounce(t *testing.T, a *node, cond stanza.Condition, remote string, causes ...string) {
	t.Helper()
	bo := recv(t, a.bounced, "bounce")
	text := bo.err.Text[""]
	t.Logf("bounce %v %v: %s", bo.err.Type, bo.err.Condition, text)
	if bo.err.Condition != cond {
		t.Errorf("bounce condition %v (%q), want %v", bo.err.Condition, text, cond)
	}
	for _, c := range append([]string{remote}, causes...) {
		if !strings.Contains(text, c) {
			t.Errorf("bounce text %q does not say %q", text, c)
		}
	}
}

func nothingDelivered(t *testing.T, b *node) {
	t.Helper()
	select {
	case st := <-b.got:
		t.Errorf("delivered %s", st.Raw())
	default:
	}
}

// TestBounceBadPeerCert: with TLS and SASL required, a peer whose
// certificate we cannot trust (another CA) or that names another domain
// is never sent the stanza (RFC 6120 §13.7.2; RFC 6125 §6); it bounces
// with remote-server-timeout (the peer exists: bounceCondition keeps
// remote-server-not-found for DNS answers) and the text says why.
func TestBounceBadPeerCert(t *testing.T) {
	other, err := certs.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		cert  func(h *harness) (tls.Certificate, error)
		cause string
	}{
		{"untrusted", func(*harness) (tls.Certificate, error) { return other.IssueDomain("b.example") }, "not a trusted authority"},
		{"wrong-name", func(h *harness) (tls.Certificate, error) { return h.ca.IssueDomain("c.example") }, `not valid for "b.example"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			req := &policy.Settings{TLS: policy.Required, SASL: policy.Required}
			a := h.node("a.example", nodeOpt{set: req})
			c, err := tc.cert(h)
			if err != nil {
				t.Fatal(err)
			}
			b := h.node("b.example", nodeOpt{cert: &c, set: req})
			if err := a.srv.Send(context.Background(), msg(t, "u@a.example", "v@b.example", "x")); err != nil {
				t.Fatal(err)
			}
			expectBounce(t, a, stanza.RemoteServerTimeout, "b.example", tc.cause, "tls")
			nothingDelivered(t, b)
		})
	}
}

// TestBounceForgedDialbackKey: the Authoritative Server of a.example (a
// second node, where b's DNS points) answers b's db:verify invalid when
// its dialback secret differs: b refuses the stream (XEP-0220 §2.1.4),
// nothing is delivered and a bounces the stanza saying dialback failed.
// With the same secret (XEP-0185 §3: nodes share it) the same setup
// delivers, which proves the verification really goes to the second node.
func TestBounceForgedDialbackKey(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secret string // a2's; a1's is "secret-one-0123456789"
		forged bool
	}{{"forged", "secret-two-0123456789", true}, {"shared-secret", "secret-one-0123456789", false}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			rogue, err := certs.NewTestCA()
			if err != nil {
				t.Fatal(err)
			}
			rc, err := rogue.IssueDomain("a.example")
			if err != nil {
				t.Fatal(err)
			}
			// a1 cannot use SASL EXTERNAL (b does not trust its
			// certificate): it must dialback.
			a1 := h.node("a.example", nodeOpt{cert: &rc, edit: secretOpt("secret-one-0123456789")})
			a2 := h.node("a2.example", nodeOpt{domains: []string{"a.example"}, cert: &rc, edit: secretOpt(tc.secret)})
			port := netip.MustParseAddrPort(a2.addr).Port()
			b := h.node("b.example", nodeOpt{mod: func(s *s2s.Server) {
				r := &dnsdisco.Resolver{}
				if err := r.SetOverride("a.example", dnsdisco.Override{Host: "127.0.0.1", Port: port}); err != nil {
					t.Fatal(err)
				}
				s.Resolver = r
			}})
			if err := a1.srv.Send(context.Background(), msg(t, "u@a.example", "v@b.example", "x")); err != nil {
				t.Fatal(err)
			}
			if !tc.forged {
				if got := recv(t, b.got, "message"); got.From.String() != "u@a.example" {
					t.Errorf("from %s", got.From)
				}
				return
			}
			expectBounce(t, a1, stanza.RemoteServerTimeout, "b.example", "dialback key invalid")
			nothingDelivered(t, b)
			nothingDelivered(t, a2)
			for _, si := range b.srv.Stats().Streams {
				if si.Direction == s2s.Inbound && len(si.RecvPairs) > 0 {
					t.Errorf("b accepted %+v", si)
				}
			}
		})
	}
}

// TestUnsolicitedDialbackAnswers: on a running stream (a raw peer
// authenticated as evil.example by SASL EXTERNAL), db:verify and db:result
// answers b never asked for authorize nothing (XEP-0220 §2.1.4: only
// keys we asked about): a stanza from the claimed domain is then refused
// with invalid-from and never reaches the Handler.
func TestUnsolicitedDialbackAnswers(t *testing.T) {
	h := newHarness(t)
	b := h.node("b.example", nodeOpt{})
	p := h.rawPeer("evil.example", b)
	p.write("<db:verify from='other.example' to='b.example' id='nope' type='valid'/>")
	p.write("<db:result from='other.example' to='b.example' type='valid'/>")
	p.write("<message from='x@other.example' to='v@b.example'><body>forged</body></message>")
	got := p.readAll()
	if !strings.Contains(got, "<invalid-from ") || !strings.Contains(got, "</stream:stream>") {
		t.Errorf("got %q, want invalid-from", got)
	}
	nothingDelivered(t, b)
}

// TestStanzaTooBigOnTheWire: an oversized stanza ends the stream with
// policy-violation carrying the <stanza-too-big xmlns='urn:xmpp:errors'/>
// application condition (RFC 6120 §4.9.3.14, §4.9.4; XEP-0205), and is not
// delivered.
func TestStanzaTooBigOnTheWire(t *testing.T) {
	h := newHarness(t)
	b := h.node("b.example", nodeOpt{edit: func(c *policy.Config) { c.Gateway.MaxStanzaBytes = 10000 }})
	p := h.rawPeer("evil.example", b)
	p.write("<message from='e@evil.example' to='v@b.example'><body>" + strings.Repeat("x", 20000) + "</body></message>")
	got := p.readAll()
	i := strings.Index(got, "<stream:error>")
	if i < 0 {
		t.Fatalf("no stream error in %q", got)
	}
	e := got[i:]
	if !strings.Contains(e, "<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'") ||
		!strings.Contains(e, "<stanza-too-big xmlns='urn:xmpp:errors'/>") || !strings.Contains(e, "</stream:stream>") {
		t.Errorf("got %q, want policy-violation with stanza-too-big", e)
	}
	nothingDelivered(t, b)
}

// TestStanzaTooBigDuringNegotiation: the same limit applies before
// authentication, with the same stream error and application condition.
func TestStanzaTooBigDuringNegotiation(t *testing.T) {
	h := newHarness(t)
	b := h.node("b.example", nodeOpt{edit: func(c *policy.Config) { c.Gateway.MaxStanzaBytes = 10000 }})
	c, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := &rawPeer{t: t, conn: c}
	p.write("<?xml version='1.0'?>" + header("evil.example", b.domain))
	p.readUntil("</stream:features>")
	p.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>" + strings.Repeat("<x/>", 5000) + "</starttls>")
	got := p.readAll()
	if !strings.Contains(got, "<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'") ||
		!strings.Contains(got, "<stanza-too-big xmlns='urn:xmpp:errors'/>") || !strings.Contains(got, "</stream:stream>") {
		t.Errorf("got %q, want policy-violation with stanza-too-big", got)
	}
}

// secretOpt sets the node's dialback secret (XEP-0185: nodes serving the
// same domains share it through their policies).
func secretOpt(secret string) func(*policy.Config) {
	return func(c *policy.Config) { c.Gateway.DialbackSecret = policy.NewSecret([]byte(secret)) }
}
