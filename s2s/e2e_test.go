package s2s_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
	"github.com/xmppfed/xmppfed/internal/clock"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hang bounds every wait of these tests: it is a guard against a hang,
// never a timing assertion.
const hang = 15 * time.Second

// harness is one test CA and one loopback DNS server shared by the nodes
// of a test.
type harness struct {
	t   testing.TB
	ca  *certs.TestCA
	dns *dnsdiscotest.Server
}

func newHarness(t testing.TB) *harness {
	ca, err := certs.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	d := dnsdiscotest.NewServer()
	t.Cleanup(d.Close)
	return &harness{t: t, ca: ca, dns: d}
}

type bounced struct {
	st  *s2s.Stanza
	err stanza.Error
}

// node is one s2s.Server serving one or more domains on loopback.
type node struct {
	srv     *s2s.Server
	domain  string
	addr    string
	got     chan *s2s.Stanza
	bounced chan bounced
	// lostBounces counts bounces that did not fit in bounced.
	lostBounces atomic.Int64
}

type nodeOpt struct {
	domains []string         // extra domains
	set     *policy.Settings // nil: s2s.CommonSettings()
	// edit changes the node's policy configuration (open federation with
	// set for every domain, XMPP access for every user) before use.
	edit      func(*policy.Config)
	cert      *tls.Certificate // nil: issued by the harness CA for the domains
	directTLS bool
	handler   s2s.Handler
	mod       func(*s2s.Server)
}

// settings returns p (the test's settings for a node).
func settings(p policy.Settings) *policy.Settings { return &p }

// node starts a Server for domain with SRV records pointing at its
// listener.
func (h *harness) node(domain string, o nodeOpt) *node {
	t := h.t
	domains := append([]string{domain}, o.domains...)
	n := &node{domain: domain, got: make(chan *s2s.Stanza, 100), bounced: make(chan bounced, 100)}
	cert := o.cert
	if cert == nil {
		c, err := h.ca.IssueDomain(domains...)
		if err != nil {
			t.Fatal(err)
		}
		cert = &c
	}
	set := s2s.CommonSettings()
	if o.set != nil {
		set = *o.set
	}
	n.srv = &s2s.Server{
		Domains:   domains,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{*cert}},
		Verify:    certs.VerifyOptions{Roots: h.ca.Pool()},
		Resolver:  h.dns.Resolver(),
		Policy:    s2s.NewPolicy(t, set, o.edit),
		Handler: s2s.HandlerFunc(func(_ context.Context, st *s2s.Stanza) error {
			n.got <- st
			return nil
		}),
		// Bounce must not block (Server.Bounce's contract): past the
		// channel's capacity bounces are counted, not waited on, so a
		// failing test can still Close its servers.
		Bounce: func(_ context.Context, st *s2s.Stanza, err stanza.Error) {
			select {
			case n.bounced <- bounced{st, err}:
			default:
				n.lostBounces.Add(1)
			}
		},
	}
	if o.handler != nil {
		n.srv.Handler = o.handler
	}
	if o.mod != nil {
		o.mod(n.srv)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.addr = l.Addr().String()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	service := "_xmpp-server._tcp"
	serve := n.srv.Serve
	if o.directTLS {
		service, serve = "_xmpps-server._tcp", n.srv.ServeDirectTLS
	}
	for _, d := range domains {
		h.dns.AddSRV(service, d, "xmpp."+domain, port, 0, 0)
	}
	h.dns.AddHost("xmpp."+domain, netip.MustParseAddr("127.0.0.1"))
	done := make(chan error, 1)
	go func() { done <- serve(l) }()
	t.Cleanup(func() {
		_ = n.srv.Close()
		if err := <-done; !errors.Is(err, s2s.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return n
}

func msg(t testing.TB, from, to, body string) *s2s.Stanza {
	t.Helper()
	st, err := s2s.ParseStanza([]byte(fmt.Sprintf("<message xmlns='jabber:server' from='%s' to='%s' type='chat' id='m1'><body>%s</body></message>", from, to, body)))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func recv[T any](t testing.TB, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(hang):
		t.Fatalf("no %s within %v", what, hang)
	}
	var zero T
	return zero
}

func TestDeliverReplyAndStats(t *testing.T) {
	h := newHarness(t)
	a := h.node("a.example", nodeOpt{})
	h.node("b.example", nodeOpt{handler: s2s.HandlerFunc(func(_ context.Context, st *s2s.Stanza) error {
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	})})
	ctx := context.Background()
	if err := a.srv.Send(ctx, msg(t, "alice@a.example/r", "bob@b.example", "hello")); err != nil {
		t.Fatal(err)
	}
	// b's handler refuses: the error reply comes back to a's handler.
	reply := recv(t, a.got, "error reply")
	if reply.Type != "error" || reply.From.String() != "bob@b.example" || reply.To.String() != "alice@a.example/r" ||
		!strings.Contains(string(reply.Raw()), "item-not-found") || !strings.Contains(string(reply.Raw()), "<body>hello</body>") {
		t.Errorf("reply = %s", reply.Raw())
	}
	// The writer counts a stanza once its flush returns, which can be
	// after the peer already answered it: Stats is a snapshot, so wait
	// (bounded) for the count.
	var out *s2s.StreamInfo
	for range 2000 {
		stats := a.srv.Stats()
		out = nil
		for i, si := range stats.Streams {
			if si.Direction == s2s.Outbound && si.Remote == "b.example" {
				out = &stats.Streams[i]
			}
		}
		if out != nil && out.StanzasOut == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if out == nil {
		t.Fatalf("no outbound stream in %+v", a.srv.Stats())
	}
	if out.Auth != s2s.AuthSASLExternal || out.TLSVersion != "TLS 1.3" || out.Local != "a.example" ||
		out.StanzasOut != 1 || len(out.SendPairs) != 1 || out.SendPairs[0] != "a.example->b.example" || out.Identity == "" {
		t.Errorf("outbound stream info = %+v", *out)
	}
}

// allSettings lists every combination of the three knobs: TLS and SASL
// (Required, Optional, NotSupported) and dialback (on, off): the 18 rows
// of the matrix (REFERENCE §3.1), in its order.
func allSettings() []policy.Settings {
	var out []policy.Settings
	for _, sa := range []policy.Negotiation{policy.Required, policy.Optional, policy.NotSupported} {
		for _, tl := range []policy.Negotiation{policy.Required, policy.Optional, policy.NotSupported} {
			for _, off := range []bool{false, true} {
				out = append(out, policy.Settings{TLS: tl, SASL: sa, DisableDialback: off})
			}
		}
	}
	return out
}

func settingsName(s policy.Settings) string {
	db := "db"
	if s.DisableDialback {
		db = "nodb"
	}
	return "tls-" + s.TLS.String() + "_sasl-" + s.SASL.String() + "_" + db
}

// expectedOutcome computes, from the initiator's and the receiver's
// settings alone (both with valid certificates), whether a stream can be
// authenticated and how, with the settings negotiation applies
// (Settings.Effective: SASL required acts as optional unless TLS is
// required): SASL EXTERNAL over TLS is preferred, then dialback (over TLS
// when negotiated, over plain TCP only when neither side requires TLS).
// Both settings must be valid (a Policy refuses the others).
func expectedOutcome(in, re policy.Settings) (ok bool, m policy.Method) {
	in, re = in.Effective(), re.Effective()
	useTLS := in.TLS != policy.NotSupported && re.TLS != policy.NotSupported
	if !useTLS && (in.TLS == policy.Required || re.TLS == policy.Required) {
		return false, 0
	}
	if useTLS && in.SASL != policy.NotSupported && re.SASL != policy.NotSupported {
		return true, policy.SASLOverTLS
	}
	if in.SASL == policy.Required || re.SASL == policy.Required {
		return false, 0
	}
	if in.Dialback() && re.Dialback() {
		if useTLS {
			return true, policy.TLSDialback
		}
		return true, policy.TCPDialback
	}
	return false, 0
}

// methodOf names how a stream was authenticated, in the matrix's terms.
func methodOf(si s2s.StreamInfo) policy.Method {
	switch {
	case si.Auth == s2s.AuthSASLExternal:
		return policy.SASLOverTLS
	case si.Auth == s2s.AuthDialback && si.TLSVersion != "":
		return policy.TLSDialback
	case si.Auth == s2s.AuthDialback:
		return policy.TCPDialback
	}
	return 0
}

// TestSettingsMatrix runs every initiator x receiver combination of the
// settings knobs (18 x 18) over loopback with real TLS and DNS and checks
// the outcome against expectedOutcome: the stanza is delivered with the
// expected method (one of both rows' ExpectedMethods), or bounced and
// never delivered. A row the matrix calls invalid cannot be configured:
// the Policy refuses it with an error naming the fields.
func TestSettingsMatrix(t *testing.T) {
	h := newHarness(t)
	sets := allSettings()
	for i, in := range sets {
		for j, re := range sets {
			t.Run(settingsName(in)+"/"+settingsName(re), func(t *testing.T) {
				t.Parallel()
				for _, set := range []policy.Settings{in, re} {
					if _, verr := set.Validate(false); verr != nil {
						c := &policy.Config{Gateway: policy.Gateway{OpenFederation: true, DefaultPartner: policy.Partner{Settings: set}}}
						_, err := policy.New(context.Background(), policy.NewMemStore(c), nil)
						var fe *policy.FieldError
						if !errors.As(err, &fe) || !strings.Contains(fe.Field, "dialback") {
							t.Fatalf("policy.New with invalid %s = %v, want a FieldError naming the fields", settingsName(set), err)
						}
						return
					}
				}
				ok, method := expectedOutcome(in, re)
				a := h.node(fmt.Sprintf("i%d-%d.example", i, j), nodeOpt{set: settings(in)})
				b := h.node(fmt.Sprintf("r%d-%d.example", i, j), nodeOpt{set: settings(re)})
				if err := a.srv.Send(context.Background(), msg(t, "u@"+a.domain, "v@"+b.domain, "x")); err != nil {
					t.Fatalf("Send: %v", err)
				}
				select {
				case got := <-b.got:
					if !ok {
						t.Fatalf("delivered, want failure")
					}
					if got.From.String() != "u@"+a.domain {
						t.Errorf("from = %s", got.From)
					}
					var m policy.Method
					for _, si := range a.srv.Stats().Streams {
						if si.Direction == s2s.Outbound && si.Remote == b.domain {
							m = methodOf(si)
						}
					}
					if m != method {
						t.Errorf("authenticated with %v, want %v", m, method)
					}
					if !in.ExpectedMethods().Has(m) || !re.ExpectedMethods().Has(m) {
						t.Errorf("method %v is not in the expected methods %v (initiator) and %v (receiver)", m, in.ExpectedMethods(), re.ExpectedMethods())
					}
				case bo := <-a.bounced:
					if ok {
						t.Fatalf("bounced (%v: %s), want delivery with %v", bo.err.Condition, bo.err.Text[""], method)
					}
					if bo.err.Condition != stanza.RemoteServerTimeout && bo.err.Condition != stanza.RemoteServerNotFound {
						t.Errorf("bounce condition %v", bo.err.Condition)
					}
				case <-time.After(hang):
					t.Fatalf("neither delivered nor bounced within %v", hang)
				}
			})
		}
	}
}

// rawPeer is a hand-driven initiating server: it authenticates as domain
// with SASL EXTERNAL over STARTTLS (requesting XEP-0288 bidi) and then
// writes whatever the test wants, to prove the receiving side's checks.
type rawPeer struct {
	t    testing.TB
	conn net.Conn
	buf  []byte
}

func (p *rawPeer) write(s string) {
	p.t.Helper()
	if _, err := p.conn.Write([]byte(s)); err != nil {
		p.t.Fatalf("raw write: %v", err)
	}
}

// readUntil reads until the data read so far contains marker and returns
// it (consuming through the marker).
func (p *rawPeer) readUntil(marker string) string {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(hang))
	b := make([]byte, 1)
	for !strings.Contains(string(p.buf), marker) {
		if _, err := p.conn.Read(b); err != nil {
			p.t.Fatalf("raw read waiting for %q: %v (got %q)", marker, err, p.buf)
		}
		p.buf = append(p.buf, b[0])
	}
	out := string(p.buf)
	p.buf = p.buf[:0]
	return out
}

// readAll reads until the connection ends and returns everything.
func (p *rawPeer) readAll() string {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(hang))
	b := make([]byte, 4096)
	for {
		n, err := p.conn.Read(b)
		p.buf = append(p.buf, b[:n]...)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				p.t.Fatalf("connection still open after %v: %q", hang, p.buf)
			}
			return string(p.buf)
		}
	}
}

func header(from, to string) string {
	return "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0' from='" + from + "' to='" + to + "'>"
}

func (h *harness) rawPeer(domain string, to *node) *rawPeer {
	t := h.t
	c, err := net.Dial("tcp", to.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	p := &rawPeer{t: t, conn: c}
	p.write("<?xml version='1.0'?>" + header(domain, to.domain))
	p.readUntil("</stream:features>")
	p.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	p.readUntil("/>")
	cert, err := h.ca.IssueDomain(domain)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, &tls.Config{ServerName: to.domain, RootCAs: h.ca.Pool(), Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	p.conn = tc
	p.write(header(domain, to.domain))
	f := p.readUntil("</stream:features>")
	if !strings.Contains(f, "urn:xmpp:features:bidi") || !strings.Contains(f, "EXTERNAL") {
		t.Fatalf("features after TLS: %s", f)
	}
	p.write("<bidi xmlns='urn:xmpp:bidi'/>")
	p.write("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
	p.readUntil("success")
	p.readUntil(">")
	p.write(header(domain, to.domain))
	p.readUntil("</stream:features>")
	return p
}

// TestInboundStanzaChecks proves the receiving side's enforcement: every
// violation ends the stream with the stream error RFC 6120 names.
func TestInboundStanzaChecks(t *testing.T) {
	h := newHarness(t)
	b := h.node("b.example", nodeOpt{edit: func(c *policy.Config) { c.Gateway.MaxStanzaBytes = 10000 }})
	h.node("a.example", nodeOpt{})
	for _, tc := range []struct{ name, xml, cond string }{
		{"spoofed from", "<message from='mallory@a.example' to='v@b.example'/>", "invalid-from"},
		{"missing to", "<message from='e@evil.example'/>", "improper-addressing"},
		{"bad from", "<message from='@@' to='v@b.example'/>", "improper-addressing"},
		{"to not ours", "<message from='e@evil.example' to='v@c.example'/>", "host-unknown"},
		{"DTD", "<!DOCTYPE x [<!ENTITY a 'b'>]>", "restricted-xml"},
		{"too big", "<message from='e@evil.example' to='v@b.example'><body>" + strings.Repeat("x", 20000) + "</body></message>", "policy-violation"},
		{"unknown element", "<foo xmlns='urn:example:foo'/>", "unsupported-stanza-type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := h.rawPeer("evil.example", b)
			p.t = t
			p.write(tc.xml)
			got := p.readAll()
			if !strings.Contains(got, "<stream:error>") || !strings.Contains(got, "<"+tc.cond+" ") || !strings.Contains(got, "</stream:stream>") {
				t.Errorf("got %q, want stream error %s then </stream:stream>", got, tc.cond)
			}
		})
	}
}

// TestHandlerPanicAndBidiReply: a panicking Handler is recovered and the
// stanza answered internal-server-error, over the peer's own bidi stream;
// the stream survives and the next stanza is handled.
func TestHandlerPanicAndBidiReply(t *testing.T) {
	h := newHarness(t)
	var calls int
	var mu sync.Mutex
	b := h.node("b.example", nodeOpt{handler: s2s.HandlerFunc(func(_ context.Context, st *s2s.Stanza) error {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			panic("boom")
		}
		return errors.New("secret internal detail")
	})})
	p := h.rawPeer("evil.example", b)
	p.write("<message from='e@evil.example' to='v@b.example' id='x1'><body>1</body></message>")
	got := p.readUntil("</message>")
	if !strings.Contains(got, "internal-server-error") || !strings.Contains(got, "id='x1'") || !strings.Contains(got, "type='error'") {
		t.Errorf("reply to panic: %q", got)
	}
	p.write("<message from='e@evil.example' to='v@b.example' id='x2'><body>2</body></message>")
	got = p.readUntil("</message>")
	if !strings.Contains(got, "internal-server-error") || strings.Contains(got, "secret") {
		t.Errorf("reply to error: %q", got)
	}
	// An error stanza is never answered: the next thing we read is the
	// reply to x3, not to the error.
	p.write("<message from='e@evil.example' to='v@b.example' id='e1' type='error'/>")
	p.write("<message from='e@evil.example' to='v@b.example' id='x3'/>")
	got = p.readUntil("</message>")
	if strings.Contains(got, "e1") || !strings.Contains(got, "x3") {
		t.Errorf("after an error stanza: %q", got)
	}
}

// waitPending waits (bounded) until the fake clock has at least n timers.
// waitPending waits until n timers are armed on c. Tests that wait for a
// stream's own timer disable the negotiation timeout, so that timer (still
// armed while negotiation finishes) cannot be counted in its place.
func waitPending(t testing.TB, c *clock.Fake, n int) {
	t.Helper()
	for range 15000 {
		if c.Pending() >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("fewer than %d timers armed", n)
}

func fakeClockOpt(c *clock.Fake) func(*s2s.Server) {
	return func(s *s2s.Server) { s2s.SetClock(s, c) }
}

// gatewayOpt sets the node's gateway timers: keepalive interval,
// establishment and inactivity timeouts (negative: none).
func gatewayOpt(ka, establish, inactive time.Duration) func(*policy.Config) {
	return func(c *policy.Config) {
		c.Gateway.KeepAliveInterval = ka
		c.Gateway.StreamEstablishmentTimeout = establish
		c.Gateway.StreamInactivityTimeout = inactive
	}
}

// TestKeepAlive: with a keepalive partner (REFERENCE §5.5 #51-52) the
// server writes whitespace after KeepAlive/2 of send silence (RFC 6120
// §4.6.1), and ends a stream that received nothing for KeepAlive with
// connection-timeout; anything received (here a stanza) restarts that
// count. Fake clock; pings off to isolate the whitespace.
func TestKeepAlive(t *testing.T) {
	h := newHarness(t)
	c := clock.NewFake(time.Unix(1e9, 0))
	b := h.node("b.example", nodeOpt{edit: gatewayOpt(60*time.Second, -1, 1000*time.Second), mod: func(s *s2s.Server) {
		s2s.SetClock(s, c)
		s.Limits.PingInterval = -1
	}})
	p := h.rawPeer("evil.example", b)
	waitPending(t, c, 1)
	c.Advance(31 * time.Second)
	if got := p.readUntil(" "); strings.TrimSpace(got) != "" {
		t.Errorf("keepalive: got %q, want whitespace", got)
	}
	p.write("<message from='e@evil.example' to='v@b.example' id='k1'/>")
	recv(t, b.got, "message")   // received at 31 s
	c.Advance(31 * time.Second) // 62 s: 31 s of silence; the next whitespace goes out
	p.readUntil(" ")
	c.Advance(30 * time.Second) // 92 s: 61 s without receiving anything
	got := p.readAll()
	if !strings.Contains(got, "<connection-timeout ") || !strings.Contains(got, "keepalive") || !strings.Contains(got, "</stream:stream>") {
		t.Errorf("after keepalive silence: %q", got)
	}
}

// TestKeepAliveOffAndInactivity: with keepalive off for the partner (#53)
// nothing is written and silence is not checked; the gateway's
// StreamInactivityTimeout (#50) still ends the stream with
// connection-timeout. Fake clock.
func TestKeepAliveOffAndInactivity(t *testing.T) {
	h := newHarness(t)
	c := clock.NewFake(time.Unix(1e9, 0))
	b := h.node("b.example", nodeOpt{
		edit: func(cfg *policy.Config) {
			gatewayOpt(60*time.Second, -1, 200*time.Second)(cfg)
			cfg.Gateway.DefaultPartner.DisableKeepAlive = true
		},
		mod: fakeClockOpt(c),
	})
	p := h.rawPeer("evil.example", b)
	waitPending(t, c, 1)
	c.Advance(199 * time.Second) // far past the keepalive interval: no whitespace, no ping, no close
	p.write("<message from='e@evil.example' to='v@b.example' id='k1'/>")
	recv(t, b.got, "message") // still open; the inactivity count starts again at 199 s
	c.Advance(199 * time.Second)
	p.write("<message from='e@evil.example' to='v@b.example' id='k2'/>")
	recv(t, b.got, "message")
	c.Advance(201 * time.Second)
	got := p.readAll()
	if !strings.HasPrefix(got, "<stream:error>") || !strings.Contains(got, "<connection-timeout ") || !strings.Contains(got, "inactivity") {
		t.Errorf("keepalive off: got %q, want the inactivity stream error and nothing before it", got)
	}
}

// TestPing: with a keepalive partner, after KeepAlive/2 of receive
// silence an XEP-0199 ping goes out on a stream we send on; an answered
// ping keeps it, an unanswered one ends it with connection-timeout. Fake
// clock.
func TestPing(t *testing.T) {
	h := newHarness(t)
	c := clock.NewFake(time.Unix(1e9, 0))
	b := h.node("b.example", nodeOpt{edit: gatewayOpt(100*time.Second, -1, -1), mod: fakeClockOpt(c)})
	p := h.rawPeer("evil.example", b)
	waitPending(t, c, 1)
	c.Advance(51 * time.Second)
	ping := p.readUntil("</iq>")
	if !strings.Contains(ping, "urn:xmpp:ping") || !strings.Contains(ping, "to='evil.example'") {
		t.Fatalf("ping: %q", ping)
	}
	i := strings.Index(ping, "id='")
	id := ping[i+4 : i+4+strings.Index(ping[i+4:], "'")]
	p.write("<iq type='result' from='evil.example' to='b.example' id='" + id + "'/>")
	// The pong is consumed by the library, not handed to the Handler.
	for range 100 {
		if b.srv.Stats().Streams[0].StanzasIn == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	c.Advance(51 * time.Second) // answered: a second ping, not an error
	if got := p.readUntil("</iq>"); !strings.Contains(got, "urn:xmpp:ping") {
		t.Fatalf("second ping: %q", got)
	}
	c.Advance(51 * time.Second) // unanswered
	if got := p.readAll(); !strings.Contains(got, "<connection-timeout ") {
		t.Errorf("after unanswered ping: %q", got)
	}
	select {
	case st := <-b.got:
		t.Errorf("handler got %s", st.Raw())
	default:
	}
}

// TestNegotiationTimeout: a peer that connects and says nothing is dropped
// after the gateway's StreamEstablishmentTimeout (#49) on the Server's
// clock.
func TestNegotiationTimeout(t *testing.T) {
	h := newHarness(t)
	c := clock.NewFake(time.Unix(1e9, 0))
	b := h.node("b.example", nodeOpt{edit: gatewayOpt(0, 10*time.Second, 0), mod: fakeClockOpt(c)})
	conn, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitPending(t, c, 1)
	c.Advance(11 * time.Second)
	p := &rawPeer{t: t, conn: conn}
	p.readAll() // returns only once the server closed the connection
}

func TestBounceDNSNoService(t *testing.T) {
	h := newHarness(t)
	a := h.node("a.example", nodeOpt{})
	h.dns.AddSRV("_xmpp-server._tcp", "dead.example", ".", 0, 0, 0)
	h.dns.AddSRV("_xmpps-server._tcp", "dead.example", ".", 0, 0, 0)
	if err := a.srv.Send(context.Background(), msg(t, "u@a.example", "v@dead.example", "x")); err != nil {
		t.Fatal(err)
	}
	bo := recv(t, a.bounced, "bounce")
	if bo.err.Condition != stanza.RemoteServerNotFound || !strings.Contains(bo.err.Text[""], "dead.example") {
		t.Errorf("bounce = %v %q, want remote-server-not-found naming the domain", bo.err.Condition, bo.err.Text[""])
	}
	if bo.st.To.String() != "v@dead.example" {
		t.Errorf("bounced stanza to %s", bo.st.To)
	}
}

func TestBounceDNSTimeout(t *testing.T) {
	h := newHarness(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0") // a DNS server that never answers
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	a := h.node("a.example", nodeOpt{mod: func(s *s2s.Server) {
		s.Resolver = &dnsdisco.Resolver{Servers: []string{pc.LocalAddr().String()}, Timeout: 50 * time.Millisecond, Attempts: 1, HostsFile: h.dns.HostsFile()}
	}})
	if err := a.srv.Send(context.Background(), msg(t, "u@a.example", "v@far.example", "x")); err != nil {
		t.Fatal(err)
	}
	bo := recv(t, a.bounced, "bounce")
	if bo.err.Condition != stanza.RemoteServerTimeout || !strings.Contains(bo.err.Text[""], "far.example") || !strings.Contains(bo.err.Text[""], "timeout") {
		t.Errorf("bounce = %v %q, want remote-server-timeout saying why", bo.err.Condition, bo.err.Text[""])
	}
}

// TestQueueOverflowAndClose: while a stream is being opened to a server
// that never answers, the pair's queue is bounded; Close bounces what is
// queued, except error stanzas.
func TestQueueOverflowAndClose(t *testing.T) {
	h := newHarness(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	}()
	h.dns.AddSRV("_xmpp-server._tcp", "slow.example", "xmpp.slow.example", uint16(l.Addr().(*net.TCPAddr).Port), 0, 0)
	h.dns.AddHost("xmpp.slow.example", netip.MustParseAddr("127.0.0.1"))
	a := h.node("a.example", nodeOpt{mod: func(s *s2s.Server) { s.Limits.QueueSize = 2 }})
	ctx := context.Background()
	errSt, err := s2s.ParseStanza([]byte("<message from='u@a.example' to='v@slow.example' type='error' id='e'/>"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.srv.Send(ctx, msg(t, "u@a.example", "v@slow.example", "1")); err != nil {
		t.Fatal(err)
	}
	if err := a.srv.Send(ctx, errSt); err != nil {
		t.Fatal(err)
	}
	err = a.srv.Send(ctx, msg(t, "u@a.example", "v@slow.example", "3"))
	if se := (stanza.Error{}); !errors.As(err, &se) || se.Condition != stanza.ResourceConstraint {
		t.Fatalf("third Send = %v, want resource-constraint", err)
	}
	if q := a.srv.Stats().Queued; q != 2 {
		t.Errorf("Stats().Queued = %d, want 2", q)
	}
	_ = a.srv.Close()
	bo := recv(t, a.bounced, "bounce")
	if !strings.Contains(string(bo.st.Raw()), "<body>1</body>") {
		t.Errorf("bounced %s", bo.st.Raw())
	}
	select {
	case bo := <-a.bounced:
		t.Errorf("second bounce %s: error stanzas must not be bounced", bo.st.Raw())
	default:
	}
	if err := a.srv.Send(ctx, msg(t, "u@a.example", "v@slow.example", "4")); !errors.Is(err, s2s.ErrServerClosed) {
		t.Errorf("Send after Close = %v", err)
	}
}

func TestSendAddressing(t *testing.T) {
	h := newHarness(t)
	a := h.node("a.example", nodeOpt{})
	ctx := context.Background()
	for _, st := range []*s2s.Stanza{nil, msg(t, "u@x.example", "v@b.example", "x"), msg(t, "u@a.example", "v@a.example", "x")} {
		if err := a.srv.Send(ctx, st); err == nil {
			t.Errorf("Send(%v) succeeded", st)
		}
	}
	// Refused by the policy: the *policy.Denial, service-unavailable.
	refuse := h.node("r.example", nodeOpt{edit: func(c *policy.Config) { c.Gateway.OpenFederation = false }})
	err := refuse.srv.Send(ctx, msg(t, "u@r.example", "v@b.example", "x"))
	var d *policy.Denial
	if !errors.As(err, &d) || d.Rule != policy.RuleNotPartner || d.StanzaError().Condition != stanza.ServiceUnavailable {
		t.Errorf("Send refused by the policy = %v", err)
	}
}

func TestDirectTLS(t *testing.T) {
	h := newHarness(t)
	a := h.node("a.example", nodeOpt{})
	b := h.node("b.example", nodeOpt{directTLS: true})
	if err := a.srv.Send(context.Background(), msg(t, "u@a.example", "v@b.example", "x")); err != nil {
		t.Fatal(err)
	}
	recv(t, b.got, "message")
	st := a.srv.Stats().Streams
	if len(st) != 1 || st[0].TLSVersion != "TLS 1.3" || st[0].Auth != s2s.AuthSASLExternal {
		t.Errorf("streams = %+v", st)
	}
}

// TestPiggybackAndBidi: a second local domain to the same remote shares
// the stream (SASL EXTERNAL when the certificate covers it, dialback
// piggybacking otherwise), and the remote's own stanzas come back over the
// same bidi connection.
func TestPiggybackAndBidi(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  policy.Settings
		auth s2s.AuthMethod
	}{
		{"external", s2s.CommonSettings(), s2s.AuthSASLExternal},
		{"dialback", policy.Settings{SASL: policy.NotSupported}, s2s.AuthDialback},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			a := h.node("a.example", nodeOpt{domains: []string{"a2.example"}, set: settings(tc.set)})
			// At b, a.example and a2.example are one partner: only then
			// may they share a stream (REFERENCE §5.3 #37).
			b := h.node("b.example", nodeOpt{set: settings(tc.set), edit: func(c *policy.Config) {
				c.Partners = append(c.Partners, policy.Partner{Domain: "a.example", AdditionalDomains: []string{"a2.example"}, Settings: tc.set})
			}})
			ctx := context.Background()
			for _, from := range []string{"u@a.example", "u@a2.example"} {
				if err := a.srv.Send(ctx, msg(t, from, "v@b.example", "x")); err != nil {
					t.Fatal(err)
				}
				if got := recv(t, b.got, "message"); got.From.String() != from {
					t.Errorf("from %s, want %s", got.From, from)
				}
			}
			// b answers over the same connection (XEP-0288 bidi).
			if err := b.srv.Send(ctx, msg(t, "v@b.example", "u@a.example", "back")); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, a.got, "message"); got.From.String() != "v@b.example" {
				t.Errorf("from %s", got.From)
			}
			sa, sb := a.srv.Stats().Streams, b.srv.Stats().Streams
			for i := 0; i < 1000 && len(sb) == 1 && sb[0].StanzasOut == 0; i++ {
				// The writer counts a stanza after its flush, which may
				// be after the peer handled it.
				time.Sleep(time.Millisecond)
				sb = b.srv.Stats().Streams
			}
			if len(sa) != 1 || len(sb) != 1 {
				t.Fatalf("streams: a %+v, b %+v; want one connection", sa, sb)
			}
			if !sa[0].Bidi || len(sa[0].SendPairs) != 2 || sa[0].Auth != tc.auth || len(sb[0].SendPairs) < 1 || sb[0].StanzasOut != 1 {
				t.Errorf("a's stream %+v, b's %+v", sa[0], sb[0])
			}
		})
	}
}

// TestShutdownDelivers: Shutdown right after Send still delivers the
// stanza, closes the streams both ways and leaves no goroutine.
func TestShutdownDelivers(t *testing.T) {
	h := newHarness(t)
	a := h.node("a.example", nodeOpt{})
	b := h.node("b.example", nodeOpt{})
	if err := a.srv.Send(context.Background(), msg(t, "u@a.example", "v@b.example", "x")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	recv(t, b.got, "message")
	if n := len(a.srv.Stats().Streams); n != 0 {
		t.Errorf("%d streams after Shutdown", n)
	}
	for range 1000 {
		if len(b.srv.Stats().Streams) == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Errorf("b still has streams: %+v", b.srv.Stats().Streams)
}

func TestMaxStreamsPerDomain(t *testing.T) {
	h := newHarness(t)
	b := h.node("b.example", nodeOpt{edit: func(c *policy.Config) { c.Gateway.PartnerConnectionLimit = 1 }})
	h.rawPeer("evil.example", b)
	// The second stream from the same domain is refused right after its
	// header, before any TLS or authentication work.
	c, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := &rawPeer{t: t, conn: c}
	p.write("<?xml version='1.0'?>" + header("evil.example", b.domain))
	if got := p.readAll(); !strings.Contains(got, "<resource-constraint ") || strings.Contains(got, "starttls") {
		t.Errorf("second stream: %q, want resource-constraint before any feature", got)
	}
	// Another domain still gets in.
	h.rawPeer("other.example", b)
}
