package s2s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	streamerr "mellium.im/xmpp/stream"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
	"github.com/xmppfed/xmppfed/internal/wire"
	"github.com/xmppfed/xmppfed/policy"
)

// env is a test world: a CA, a second CA nobody trusts, a loopback DNS
// server and the nodes registered in it.
type env struct {
	t      testing.TB
	ca     *certs.TestCA
	rogue  *certs.TestCA
	dns    *dnsdiscotest.Server
	nodes  []*node
	closed bool
}

func newEnv(t testing.TB) *env {
	tt, _ := t.(*testing.T)
	if tt != nil {
		t.Cleanup(func() { goleak.VerifyNone(tt) }) // runs last
	}
	ca, err := certs.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := certs.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ca: ca, rogue: rogue, dns: dnsdiscotest.NewServer()}
	t.Cleanup(e.close)
	return e
}

func (e *env) close() {
	if e.closed {
		return
	}
	e.closed = true
	for _, n := range e.nodes {
		n.close()
	}
	e.dns.Close()
}

// nodeOpt describes one test server.
type nodeOpt struct {
	domains   []string
	set       *policy.Settings     // for every remote domain; nil: CommonSettings()
	edit      func(*policy.Config) // changes the policy (open federation with set)
	cert      *tls.Certificate     // nil: issued by the trusted CA for domains
	noCert    bool                 // no TLS at all
	secret    []byte
	directTLS bool // publish only a _xmpps-server SRV (XEP-0368)
	noDNS     bool // do not publish SRV records for domains
}

// node is a Server with STARTTLS and direct-TLS listeners and a minimal
// stand-in for the runtime's read loop (dialback piggybacking only).
type node struct {
	srv     *Server
	ln, tln net.Listener
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	results chan acceptResult

	mu      sync.Mutex
	streams []*stream
	conns   []net.Conn
	accepts int
	closed  bool
}

// track remembers c for close; after close it closes c at once.
func (n *node) track(c net.Conn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		_ = c.Close()
		return
	}
	n.conns = append(n.conns, c)
}

type acceptResult struct {
	st  *stream
	err error
}

func (e *env) node(o nodeOpt) *node {
	t := e.t
	set := CommonSettings()
	if o.set != nil {
		set = *o.set
	}
	s := &Server{
		Domains:  o.domains,
		Verify:   certs.VerifyOptions{Roots: e.ca.Pool()},
		Resolver: e.dns.Resolver(),
		Policy: NewPolicy(t, set, func(c *policy.Config) {
			if o.secret != nil {
				c.Gateway.DialbackSecret = policy.NewSecret(o.secret)
			}
			if o.edit != nil {
				o.edit(c)
			}
		}),
	}
	switch {
	case o.noCert:
	case o.cert != nil:
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*o.cert}}
	default:
		c, err := e.ca.IssueDomain(o.domains...)
		if err != nil {
			t.Fatal(err)
		}
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{c}}
	}
	n := &node{srv: s, results: make(chan acceptResult, 64)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	var err error
	if n.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if n.tln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	host := "xmpp." + o.domains[0]
	e.dns.AddHost(host, netip.MustParseAddr("127.0.0.1"))
	if !o.noDNS {
		for _, d := range o.domains {
			if o.directTLS {
				e.dns.AddSRV("_xmpps-server._tcp", d, host, port(n.tln), 0, 0)
			} else {
				e.dns.AddSRV("_xmpp-server._tcp", d, host, port(n.ln), 0, 0)
			}
		}
	}
	n.wg.Add(2)
	go n.acceptLoop(n.ln, false)
	go n.acceptLoop(n.tln, true)
	e.nodes = append(e.nodes, n)
	return n
}

func port(l net.Listener) uint16 { return uint16(l.Addr().(*net.TCPAddr).Port) }

func (n *node) acceptLoop(l net.Listener, direct bool) {
	defer n.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		n.mu.Lock()
		n.accepts++
		n.mu.Unlock()
		n.track(c)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			st, err := n.srv.acceptStream(n.ctx, c, direct)
			if st != nil {
				n.track(st.conn)
			}
			select {
			case n.results <- acceptResult{st, err}:
			default:
			}
			if st != nil {
				n.run(st)
			}
		}()
	}
}

// run tracks st and feeds its elements to handleElement until it ends,
// like the runtime's read loop does for non-stanza elements.
func (n *node) run(st *stream) {
	n.mu.Lock()
	n.streams = append(n.streams, st)
	n.mu.Unlock()
	n.track(st.conn)
	var err error
	for range 10000 {
		var el *wire.Element
		el, err = st.r.Next()
		if err != nil {
			break
		}
		var handled bool
		if handled, err = st.handleElement(n.ctx, el); err != nil {
			break
		}
		if !handled {
			err = st.fail("stream", streamerr.UnsupportedStanzaType, "test loop")
			break
		}
	}
	_ = st.w.Close()
	_ = st.conn.Close()
	st.closeNeg(err)
	// acceptStream counted the stream against the limits; the runtime
	// uncounts it when the stream ends, and so does this stand-in.
	n.srv.unregister(st)
	if st.rt != nil {
		st.rt.cancel()
	}
}

// dial opens an outbound stream and runs its loop in the background.
func (n *node) dial(t testing.TB, local, remote string) (*stream, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := n.srv.dialStream(ctx, local, remote)
	if err != nil {
		return nil, err
	}
	n.track(st.conn)
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.run(st) }()
	return st, nil
}

// result returns the next stream accepted (or refused) by n, skipping
// verification connections (which end without authenticating).
func (n *node) result(t testing.TB) acceptResult {
	t.Helper()
	for range 16 {
		select {
		case r := <-n.results:
			if r.err != nil && strings.Contains(r.err.Error(), "before authenticating") {
				continue
			}
			return r
		case <-time.After(20 * time.Second):
			t.Fatal("no accept result")
		}
	}
	t.Fatal("no accept result")
	return acceptResult{}
}

func (n *node) acceptCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.accepts
}

func (n *node) close() {
	_ = n.ln.Close()
	_ = n.tln.Close()
	n.cancel()
	n.mu.Lock()
	n.closed = true
	for _, c := range n.conns {
		_ = c.Close()
	}
	n.mu.Unlock()
	n.wg.Wait()
	_ = n.srv.Close() // ends the policy watcher register started
}

func (e *env) rogueCert(domains ...string) *tls.Certificate {
	c, err := e.rogue.IssueDomain(domains...)
	if err != nil {
		e.t.Fatal(err)
	}
	return &c
}

// --- success paths ---

func TestExternalOverStartTLS(t *testing.T) {
	e := newEnv(t)
	a := e.node(nodeOpt{domains: []string{"a.example"}})
	b := e.node(nodeOpt{domains: []string{"b.example"}})
	var dbg lockedBuffer
	a.srv.DebugWriter = &dbg
	st, err := a.dial(t, "a.example", "b.example")
	if err != nil {
		t.Fatal(err)
	}
	// DebugWriter sees the plaintext of both directions, after TLS too.
	if d := dbg.String(); !strings.Contains(d, "OUT <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>") || !strings.Contains(d, "IN  <success") {
		t.Fatalf("debug output:\n%s", d)
	}
	// b offered STARTTLS, EXTERNAL, dialback and bidi: EXTERNAL wins.
	if st.neg.auth != AuthSASLExternal || st.tls == nil || !st.canSend(pair{"a.example", "b.example"}) {
		t.Fatalf("auth %v tls %v send %v", st.neg.auth, st.tls != nil, st.send)
	}
	if st.tls.Version < tls.VersionTLS12 || st.peer == nil || st.peer.Domain != "b.example" {
		t.Fatalf("tls %x peer %+v", st.tls.Version, st.peer)
	}
	if st.neg.features == nil {
		t.Fatal("post-SASL features not kept")
	}
	r := b.result(t)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !r.st.canRecv(pair{"b.example", "a.example"}) || r.st.neg.auth != AuthSASLExternal || r.st.dir != Inbound {
		t.Fatalf("inbound recv %v auth %v", r.st.recv, r.st.neg.auth)
	}
	if a.acceptCount() != 0 {
		t.Fatal("EXTERNAL must not need a dialback verification connection")
	}
}

func TestExternalOverDirectTLS(t *testing.T) {
	e := newEnv(t)
	a := e.node(nodeOpt{domains: []string{"a.example"}})
	b := e.node(nodeOpt{domains: []string{"b.example"}, directTLS: true})
	st, err := a.dial(t, "a.example", "b.example")
	if err != nil {
		t.Fatal(err)
	}
	if st.tls == nil || st.tls.NegotiatedProtocol != alpnXMPPServer || st.tls.ServerName != "b.example" {
		t.Fatalf("direct TLS state %+v", st.tls)
	}
	if st.neg.auth != AuthSASLExternal {
		t.Fatalf("auth %v", st.neg.auth)
	}
	if r := b.result(t); r.err != nil || r.st.tls == nil {
		t.Fatalf("inbound %+v", r)
	}
}

func TestDialbackOverTLS(t *testing.T) {
	e := newEnv(t)
	// a's certificate is from a CA b does not trust: no EXTERNAL, no
	// XEP-0344 shortcut, so b must verify through a's Authoritative Server.
	a := e.node(nodeOpt{domains: []string{"a.example"}, cert: e.rogueCert("a.example")})
	b := e.node(nodeOpt{domains: []string{"b.example"}})
	st, err := a.dial(t, "a.example", "b.example")
	if err != nil {
		t.Fatal(err)
	}
	if st.neg.auth != AuthDialback || st.tls == nil {
		t.Fatalf("auth %v tls %v", st.neg.auth, st.tls != nil)
	}
	r := b.result(t)
	if r.err != nil || !r.st.canRecv(pair{"b.example", "a.example"}) {
		t.Fatalf("inbound %+v", r)
	}
	if a.acceptCount() == 0 {
		t.Fatal("b did not open a verification connection to a")
	}
}

func TestDialbackShortcutXEP0344(t *testing.T) {
	e := newEnv(t)
	// a does not want SASL; its certificate verifies at b, so b answers
	// the db:result at once.
	a := e.node(nodeOpt{domains: []string{"a.example"}, set: &policy.Settings{SASL: policy.NotSupported}})
	b := e.node(nodeOpt{domains: []string{"b.example"}})
	st, err := a.dial(t, "a.example", "b.example")
	if err != nil {
		t.Fatal(err)
	}
	if st.neg.auth != AuthDialback {
		t.Fatalf("auth %v", st.neg.auth)
	}
	if r := b.result(t); r.err != nil {
		t.Fatal(r.err)
	}
	if a.acceptCount() != 0 {
		t.Fatal("the XEP-0344 shortcut should not need a verification connection")
	}
}

func TestDialbackPlainTCP(t *testing.T) {
	e := newEnv(t)
	a := e.node(nodeOpt{domains: []string{"a.example"}, set: &policy.Settings{TLS: policy.NotSupported, SASL: policy.Optional}})
	b := e.node(nodeOpt{domains: []string{"b.example"}, set: &policy.Settings{TLS: policy.Optional, SASL: policy.Optional}})
	st, err := a.dial(t, "a.example", "b.example")
	if err != nil {
		t.Fatal(err)
	}
	if st.neg.auth != AuthDialback || st.tls != nil {
		t.Fatalf("auth %v tls %v", st.neg.auth, st.tls != nil)
	}
	if r := b.result(t); r.err != nil || r.st.tls != nil {
		t.Fatalf("inbound %+v", r)
	}
}

func TestBidi(t *testing.T) {
	e := newEnv(t)
	a := e.node(nodeOpt{domains: []string{"a.example"}})
	b := e.node(nodeOpt{domains: []string{"b.example"}})
	st, err := a.dial(t, "a.example", "b.example")
	if err != nil {
		t.Fatal(err)
	}
	r := b.result(t)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !st.bidi || !r.st.bidi {
		t.Fatalf("bidi out %v in %v", st.bidi, r.st.bidi)
	}
	// Both directions on the one connection.
	if !st.canRecv(pair{"a.example", "b.example"}) || !r.st.canSend(pair{"b.example", "a.example"}) {
		t.Fatalf("out recv %v, in send %v", st.recv, r.st.send)
	}
}

// --- refusals ---

func TestTLSRequiredPeerWithoutTLS(t *testing.T) {
	e := newEnv(t)
	a := e.node(nodeOpt{domains: []string{"a.example"}}) // TLS required by default
	e.node(nodeOpt{domains: []string{"b.example"}, noCert: true, set: &policy.Settings{TLS: policy.NotSupported, SASL: policy.Optional}})
	_, err := a.dial(t, "a.example", "b.example")
	var ne *NegotiationError
	if !errors.As(err, &ne) || ne.Step != "tls" {
		t.Fatalf("err = %v", err)
	}
}

func TestTLSRequiredInbound(t *testing.T) {
	e := newEnv(t)
	a := e.node(nodeOpt{domains: []string{"a.example"}, set: &policy.Settings{TLS: policy.NotSupported, SASL: policy.Optional}})
	e.node(nodeOpt{domains: []string{"b.example"}}) // TLS required
	_, err := a.dial(t, "a.example", "b.example")
	var ne *NegotiationError
	if !errors.As(err, &ne) || ne.Step != "tls" {
		t.Fatalf("err = %v", err)
	}
	// A peer ignoring <required/> gets policy-violation.
	b := e.nodes[1]
	c := rawDial(t, b)
	defer c.close()
	c.header("a.example", "b.example")
	f := c.features()
	if !f.startTLS || !f.startTLSRequired || f.dialback || f.external || f.bidi {
		t.Fatalf("features before TLS = %+v", f)
	}
	c.send(string(dbElement("result", "a.example", "b.example", "", "", "abc", "")))
	c.expectStreamError(streamerr.PolicyViolation)
	if r := b.result(t); !errors.Is(r.err, streamerr.PolicyViolation) {
		t.Fatalf("inbound err = %v", r.err)
	}
}

func TestSASLRequiredUntrustedCert(t *testing.T) {
	e := newEnv(t)
	a := e.node(nodeOpt{domains: []string{"a.example"}, cert: e.rogueCert("a.example"), set: &policy.Settings{SASL: policy.Required}})
	e.node(nodeOpt{domains: []string{"b.example"}})
	_, err := a.dial(t, "a.example", "b.example")
	var ne *NegotiationError
	if !errors.As(err, &ne) || ne.Step != "sasl" {
		t.Fatalf("err = %v", err)
	}
	if a.acceptCount() != 0 {
		t.Fatal("SASL required must not fall back to dialback")
	}
}

func TestWrongNameAndExpiredCert(t *testing.T) {
	for _, tc := range []struct {
		name string
		leaf certs.Leaf
		want any
	}{
		{"wrong-name", certs.Leaf{DNSNames: []string{"c.example"}}, new(*certs.IdentityError)},
		{"expired", certs.Leaf{DNSNames: []string{"b.example"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}, new(*certs.ChainError)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.node(nodeOpt{domains: []string{"a.example"}, set: &policy.Settings{SASL: policy.Required}})
			c, err := e.ca.Issue(tc.leaf)
			if err != nil {
				t.Fatal(err)
			}
			e.node(nodeOpt{domains: []string{"b.example"}, cert: &c})
			_, err = a.dial(t, "a.example", "b.example")
			var ne *NegotiationError
			if !errors.As(err, &ne) || ne.Step != "tls" || !errors.As(err, tc.want) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestDialbackDisabled(t *testing.T) {
	e := newEnv(t)
	a := e.node(nodeOpt{domains: []string{"a.example"}, cert: e.rogueCert("a.example")})
	b := e.node(nodeOpt{domains: []string{"b.example"}, set: &policy.Settings{SASL: policy.Optional, DisableDialback: true}})
	_, err := a.dial(t, "a.example", "b.example")
	var de *DialbackError
	if !errors.As(err, &de) || de.Condition != "not-authorized" {
		t.Fatalf("err = %v", err)
	}
	// No feature advertised, typed error, and the stream survives it.
	c := rawDial(t, b)
	defer c.close()
	c.header("a.example", "b.example")
	c.startTLS(e, "b.example")
	c.header("a.example", "b.example")
	if f := c.features(); f.dialback {
		t.Fatalf("dialback advertised: %+v", f)
	}
	c.send(string(dbElement("result", "a.example", "b.example", "", "", "abc", "")))
	el := c.next()
	fl, _ := readDB(el)
	if !is(el, wire.NSDialback, "result") || fl.typ != "error" || fl.cond != "not-authorized" {
		t.Fatalf("answer %s", el.Raw)
	}
	// Still alive: a db:verify is answered.
	c.send(string(dbElement("verify", "a.example", "b.example", "id1", "", "k", "")))
	if el := c.next(); !is(el, wire.NSDialback, "verify") || el.AttrValue("type") != "invalid" {
		t.Fatalf("answer %s", el.Raw)
	}
}

func TestForgedKeyAndSharedSecret(t *testing.T) {
	for _, tc := range []struct {
		name   string
		shared bool
	}{{"shared-secret-valid", true}, {"different-secret-invalid", false}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			// a1 and a2 both serve a.example; DNS points at a2, so b's
			// verification goes to a2 (XEP-0185 §3: nodes share the secret).
			s1, s2 := []byte("secret-one-0123456789"), []byte("secret-one-0123456789")
			if !tc.shared {
				s2 = []byte("secret-two-0123456789")
			}
			a1 := e.node(nodeOpt{domains: []string{"a.example"}, cert: e.rogueCert("a.example"), secret: s1, noDNS: true})
			a2 := e.node(nodeOpt{domains: []string{"a.example"}, cert: e.rogueCert("a.example"), secret: s2})
			b := e.node(nodeOpt{domains: []string{"b.example"}})
			_ = a2
			st, err := a1.dial(t, "a.example", "b.example")
			if tc.shared {
				if err != nil || st.neg.auth != AuthDialback {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrDialbackInvalid) {
				t.Fatalf("err = %v", err)
			}
			select {
			case r := <-b.results:
				if r.st != nil || r.err == nil {
					t.Fatalf("forged key: inbound result %+v", r)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("no inbound result")
			}
		})
	}
}

func TestUnsolicitedVerifyAnswerIgnored(t *testing.T) {
	e := newEnv(t)
	b := e.node(nodeOpt{domains: []string{"b.example"}, set: &policy.Settings{TLS: policy.Optional, SASL: policy.Optional}})
	c := rawDial(t, b)
	defer c.close()
	c.header("a.example", "b.example")
	c.features()
	// Answers to questions b never asked: neither authorizes anything.
	c.send(string(dbElement("verify", "a.example", "b.example", c.id, "valid", "", "")))
	c.send(string(dbElement("result", "a.example", "b.example", "", "valid", "", "")))
	c.send("<message xmlns='jabber:server' from='x@a.example' to='y@b.example'/>")
	c.expectStreamError(streamerr.NotAuthorized)
	if r := b.result(t); r.st != nil || !errors.Is(r.err, streamerr.NotAuthorized) {
		t.Fatalf("result %+v", r)
	}

	// handleElement on an established stream: a db:result answer for a
	// pair we never asked about is dropped.
	st := &stream{srv: b.srv, dir: Outbound, neg: newNegState()}
	el := parseEl(t, dbElement("result", "a.example", "b.example", "", "valid", "", ""))
	if handled, err := st.handleElement(context.Background(), el); !handled || err != nil {
		t.Fatal(handled, err)
	}
	if st.canSend(pair{"b.example", "a.example"}) {
		t.Fatal("unsolicited valid answer authorized a pair")
	}
	st.closeNeg(nil)
}

func TestInboundHeaderRefusals(t *testing.T) {
	e := newEnv(t)
	b := e.node(nodeOpt{domains: []string{"b.example"}, edit: func(c *policy.Config) {
		c.Gateway.Blocked = []string{"evil.example"}
	}})
	for _, tc := range []struct {
		from, to string
		want     streamerr.Error
	}{
		{"b.example", "b.example", streamerr.InvalidFrom},
		{"a.example", "nobody.example", streamerr.HostUnknown},
		{"evil.example", "b.example", streamerr.PolicyViolation},
	} {
		c := rawDial(t, b)
		c.header(tc.from, tc.to)
		c.expectStreamError(tc.want)
		c.close()
		if r := b.result(t); !errors.Is(r.err, tc.want) {
			t.Fatalf("%s->%s: err = %v", tc.from, tc.to, r.err)
		}
	}
}

func TestOutboundRefusedByPolicy(t *testing.T) {
	e := newEnv(t)
	a := e.node(nodeOpt{domains: []string{"a.example"}, edit: func(c *policy.Config) { c.Gateway.OpenFederation = false }})
	_, err := a.dial(t, "a.example", "b.example")
	var d *policy.Denial
	if !errors.Is(err, ErrRefused) || !errors.As(err, &d) || d.Rule != policy.RuleNotPartner {
		t.Fatalf("err = %v", err)
	}
	if e := bounceError("b.example", err); e.Condition != "service-unavailable" {
		t.Fatalf("bounce error %v", e)
	}
}

func TestPiggyback(t *testing.T) {
	e := newEnv(t)
	// Untrusted certificates: every pair goes through a real db:verify.
	// Piggybacking needs one partner on each side (REFERENCE §5.3 #37).
	partner := func(main, more string) func(*policy.Config) {
		return func(c *policy.Config) {
			c.Partners = []policy.Partner{{Domain: main, AdditionalDomains: []string{more}, Settings: CommonSettings()}}
		}
	}
	a := e.node(nodeOpt{domains: []string{"a.example", "a2.example"}, cert: e.rogueCert("a.example", "a2.example"), edit: partner("b.example", "b2.example")})
	b := e.node(nodeOpt{domains: []string{"b.example", "b2.example"}, edit: partner("a.example", "a2.example")})
	st, err := a.dial(t, "a.example", "b.example")
	if err != nil {
		t.Fatal(err)
	}
	r := b.result(t)
	if r.err != nil {
		t.Fatal(r.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, p := range []pair{{"a2.example", "b2.example"}, {"a.example", "b2.example"}} {
		if err := st.authorizeSend(ctx, p.local, p.remote); err != nil {
			t.Fatalf("%v: %v", p, err)
		}
		if !st.canSend(p) || !r.st.canRecv(pair{p.remote, p.local}) {
			t.Fatalf("%v not authorized on both ends", p)
		}
	}
	// Not one of our domains: refused locally.
	if err := st.authorizeSend(ctx, "zzz.example", "b2.example"); err == nil {
		t.Fatal("foreign local domain accepted")
	}
	// The reverse direction over bidi: b piggybacks on its inbound stream.
	if err := r.st.authorizeSend(ctx, "b2.example", "a2.example"); err != nil {
		t.Fatal(err)
	}
	if !st.canRecv(pair{"a2.example", "b2.example"}) {
		t.Fatal("reverse piggyback not authorized on a's side")
	}
}

func TestDialCancel(t *testing.T) {
	defer goleak.VerifyNone(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err == nil {
			_, _ = io.Copy(io.Discard, c) // silent peer
			c.Close()
		}
	}()
	s := &Server{Domains: []string{"a.example"}}
	s.init()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go cancel()
	_, err = s.negotiateOut(ctx, conn, "a.example", "b.example", CommonSettings(), false, s.Verify, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	<-done
}

func TestBounceCondition(t *testing.T) {
	if bounceCondition(errors.New("x")) != "remote-server-timeout" {
		t.Fatal("generic error")
	}
	if bounceCondition(negErr("a", "b", "policy", ErrRefused)) != "remote-server-not-found" {
		t.Fatal("refused")
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// --- raw peer ---

type rawConn struct {
	t    testing.TB
	conn net.Conn
	r    *wire.Reader
	w    *wire.Writer
	id   string
}

func rawDial(t testing.TB, n *node) *rawConn {
	c, err := net.Dial("tcp", n.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{t: t, conn: c, r: wire.NewReader(c, wire.Limits{}), w: wire.NewWriter(c)}
}

func (c *rawConn) close() { _ = c.conn.Close() }

func (c *rawConn) header(from, to string) {
	c.t.Helper()
	if err := c.w.WriteHeader(wire.Header{From: from, To: to, Version: "1.0", XMLNS: wire.NSServer, Dialback: true}); err != nil {
		c.t.Fatal(err)
	}
	h, err := c.r.ReadHeader()
	if err != nil {
		c.t.Fatal(err)
	}
	c.id = h.ID
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if err := c.w.WriteRaw([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawConn) next() *wire.Element {
	c.t.Helper()
	el, err := c.r.Next()
	if err != nil {
		c.t.Fatal(err)
	}
	return el
}

func (c *rawConn) features() featureSet {
	c.t.Helper()
	f, err := parseFeatures(c.next())
	if err != nil {
		c.t.Fatal(err)
	}
	return f
}

func (c *rawConn) expectStreamError(want streamerr.Error) {
	c.t.Helper()
	for range 8 {
		el := c.next()
		if isStreamError(el) {
			if err := streamErrorOf(el); !errors.Is(err, want) {
				c.t.Fatalf("stream error %v, want %s", err, want.Err)
			}
			return
		}
	}
	c.t.Fatalf("no stream error %s", want.Err)
}

func (c *rawConn) startTLS(e *env, server string) {
	c.t.Helper()
	f := c.features()
	if !f.startTLS {
		c.t.Fatal("no STARTTLS")
	}
	c.send("<starttls xmlns='" + wire.NSTLS + "'/>")
	if el := c.next(); !is(el, wire.NSTLS, "proceed") {
		c.t.Fatalf("got %s", el.Raw)
	}
	pool := x509.NewCertPool()
	pool.AddCert(e.ca.Certificate())
	tc := tls.Client(c.conn, &tls.Config{ServerName: server, RootCAs: pool})
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.conn = tc
	c.r.Reset(tc)
	c.w.Reset(tc)
}

func parseEl(t testing.TB, b []byte) *wire.Element {
	t.Helper()
	r := wire.NewReader(strings.NewReader("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0'>"+string(b)), wire.Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	el, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	return el
}
