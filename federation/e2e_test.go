package federation_test

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/translate"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hang bounds every wait of these tests: a guard against a hang, never a
// timing assertion.
const hang = 10 * time.Second

// ---- A recording Backend ----

// bounce is one Backend.Bounce call.
type bounce struct {
	v      translate.Stanza
	reason stanza.Error
}

// host is a small recording Backend: known users, a MemRoster, every
// delivery and bounce kept in order.
type host struct {
	translate.MemRoster
	domain string

	mu       sync.Mutex
	users    map[string]*translate.Presence // bare JID -> current presence
	events   []any                          // *translate.Message, *Presence, *Subscription, bounce
	used     []bool
	notify   chan struct{}
	messages atomic.Int64 // messages delivered
	bounces  atomic.Int64 // bounces received
}

func newHost(domain string, users ...string) *host {
	h := &host{domain: domain, users: make(map[string]*translate.Presence), notify: make(chan struct{}, 1)}
	for _, u := range users {
		h.users[u+"@"+domain] = &translate.Presence{Availability: translate.Available}
	}
	return h
}

func (h *host) record(e any) {
	h.mu.Lock()
	h.events = append(h.events, e)
	h.used = append(h.used, false)
	h.mu.Unlock()
	select {
	case h.notify <- struct{}{}:
	default:
	}
}

func (h *host) known(user jid.JID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.users[user.Bare().String()]
	return ok
}

func (h *host) DeliverMessage(_ context.Context, m *translate.Message) error {
	if !h.known(m.To) {
		return translate.ErrUnknownUser
	}
	h.messages.Add(1)
	h.record(m)
	return nil
}

func (h *host) DeliverPresence(_ context.Context, p *translate.Presence) error {
	h.record(p)
	return nil
}

func (h *host) DeliverSubscription(_ context.Context, s *translate.Subscription) error {
	h.record(s)
	return nil
}

func (h *host) CurrentPresence(_ context.Context, user jid.JID) (*translate.Presence, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.users[user.Bare().String()]
	if !ok {
		return nil, translate.ErrUnknownUser
	}
	q := *p
	q.From = user.Bare()
	return &q, nil
}

func (h *host) setPresence(user string, p translate.Presence) {
	h.mu.Lock()
	h.users[user] = &p
	h.mu.Unlock()
}

func (h *host) LookupUser(_ context.Context, user jid.JID) (policy.User, error) {
	if !h.known(user) {
		return policy.User{}, policy.ErrUnknownUser
	}
	return policy.User{}, nil
}

func (h *host) Bounce(_ context.Context, v translate.Stanza, reason stanza.Error) {
	h.bounces.Add(1)
	h.record(bounce{v, reason})
}

// wait returns the first event not yet returned that pred accepts,
// waiting (bounded) for it.
func (h *host) wait(t testing.TB, what string, pred func(any) bool) any {
	t.Helper()
	deadline := time.NewTimer(hang)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		for i, e := range h.events {
			if !h.used[i] && pred(e) {
				h.used[i] = true
				h.mu.Unlock()
				return e
			}
		}
		n := len(h.events)
		h.mu.Unlock()
		select {
		case <-h.notify:
		case <-deadline.C:
			t.Fatalf("%s: no %s within %v (%d events: %s)", h.domain, what, hang, n, h.dump())
			return nil
		}
	}
}

// none reports whether an unreturned event matches pred.
func (h *host) none(pred func(any) bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, e := range h.events {
		if !h.used[i] && pred(e) {
			return false
		}
	}
	return true
}

func (h *host) dump() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, e := range h.events {
		fmt.Fprintf(&b, "%T%+v; ", e, e)
	}
	return b.String()
}

func message(pred func(*translate.Message) bool) func(any) bool {
	return func(e any) bool { m, ok := e.(*translate.Message); return ok && pred(m) }
}

func presence(pred func(*translate.Presence) bool) func(any) bool {
	return func(e any) bool { p, ok := e.(*translate.Presence); return ok && pred(p) }
}

func subscription(pred func(*translate.Subscription) bool) func(any) bool {
	return func(e any) bool { s, ok := e.(*translate.Subscription); return ok && pred(s) }
}

func bounced(pred func(bounce) bool) func(any) bool {
	return func(e any) bool { b, ok := e.(bounce); return ok && pred(b) }
}

// ---- Metrics ----

// metrics counts every call by name and label.
type metrics struct {
	mu sync.Mutex
	n  map[string]int
}

func (m *metrics) inc(k string) {
	m.mu.Lock()
	if m.n == nil {
		m.n = make(map[string]int)
	}
	m.n[k]++
	m.mu.Unlock()
}

func (m *metrics) get(k string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n[k]
}

func (m *metrics) StreamOpened(direction, auth string) { m.inc("opened " + direction + " " + auth) }
func (m *metrics) StreamClosed(direction, auth string) { m.inc("closed " + direction + " " + auth) }
func (m *metrics) Stanza(direction, partner string)    { m.inc("stanza " + direction + " " + partner) }
func (m *metrics) Bounced(condition string)            { m.inc("bounced " + condition) }
func (m *metrics) Denied(rule string)                  { m.inc("denied " + rule) }
func (m *metrics) NegotiationFailed(step string)       { m.inc("failed " + step) }
func (m *metrics) QueueDepth(n int)                    { m.inc("queue") }

// ---- Two domains on loopback ----

// proxy forwards TCP connections to a listener and can cut them all: a
// stream loss both servers see.
type proxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		_ = p.l.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) accept() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[u] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			_ = dst.Close()
			_ = src.Close()
		}
		p.wg.Go(func() { pipe(u, c) })
		p.wg.Go(func() { pipe(c, u) })
	}
}

// cut closes every connection through the proxy.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *proxy) port() uint16 { return uint16(p.l.Addr().(*net.TCPAddr).Port) }

// node is one federation.Server for one domain with its host.
type node struct {
	srv     *federation.Server
	host    *host
	metrics *metrics
	proxy   *proxy
	domain  string
	serve   chan error
	stopped bool
}

// world is a test CA, a loopback DNS server and the nodes.
type world struct {
	t   testing.TB
	ca  *certs.TestCA
	dns *dnsdiscotest.Server
	// mod, if set, changes each Server before it starts.
	mod func(*federation.Server)
	// directTLS serves the nodes with ServeDirectTLS (XEP-0368).
	directTLS bool
}

func newWorld(t testing.TB) *world {
	ca, err := certs.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	d := dnsdiscotest.NewServer()
	t.Cleanup(d.Close)
	return &world{t: t, ca: ca, dns: d}
}

// node starts a Server for domain whose policy lists each of partners
// with its type, global XMPP access on; SRV records point at a proxy in
// front of its listener.
func (w *world) node(domain string, partners map[string]policy.PartnerType, users ...string) *node {
	t := w.t
	h := newHost(domain, users...)
	c := &policy.Config{
		Policies: []policy.AccessPolicy{{Name: policy.GlobalPolicy, EnableXMPPAccess: true, EnableFederationAccess: true}},
	}
	for d, typ := range partners {
		c.Partners = append(c.Partners, policy.Partner{Domain: d, Type: typ, Settings: policy.Settings{SASL: policy.Optional}})
	}
	pol, err := policy.New(context.Background(), policy.NewMemStore(c), &policy.Options{Directory: h})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := w.ca.IssueDomain(domain)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{host: h, metrics: new(metrics), domain: domain, serve: make(chan error, 1)}
	n.srv = &federation.Server{
		Domains:   []string{domain},
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Verify:    certs.VerifyOptions{Roots: w.ca.Pool()},
		Resolver:  w.dns.Resolver(),
		Policy:    pol,
		Backend:   h,
		Metrics:   n.metrics,
		Version:   &federation.Version{Name: "xmppfed-test", Version: "1.0"},
	}
	if w.mod != nil {
		w.mod(n.srv)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.proxy = newProxy(t, l.Addr().String())
	service, serve := "_xmpp-server._tcp", n.srv.Serve
	if w.directTLS {
		service, serve = "_xmpps-server._tcp", n.srv.ServeDirectTLS
	}
	w.dns.AddSRV(service, domain, "xmpp."+domain, n.proxy.port(), 0, 0)
	w.dns.AddHost("xmpp."+domain, netip.MustParseAddr("127.0.0.1"))
	go func() { n.serve <- serve(l) }()
	t.Cleanup(n.stop)
	return n
}

// stop closes the Server and checks what Serve returned.
func (n *node) stop() {
	if n.stopped {
		return
	}
	n.stopped = true
	_ = n.srv.Close()
	if err := <-n.serve; !errors.Is(err, federation.ErrServerClosed) {
		panic(fmt.Sprintf("Serve returned %v, want ErrServerClosed", err))
	}
}

func mustJID(t testing.TB, s string) jid.JID {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func send(t testing.TB, n *node, v translate.Stanza) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	if err := n.srv.Send(ctx, v); err != nil {
		t.Fatalf("%s: Send(%T%+v): %v", n.domain, v, v, err)
	}
}

// ---- The quickstart's steps ----

// TestConversationFederated walks every step of the quickstart between two
// Federated partners: automatic approval both ways, presence with the
// note, messages with chat states and receipts, an unknown user, a
// refused domain, the domains' own answers, stream loss and re-probe.
func TestConversationFederated(t *testing.T) {
	w := newWorld(t)
	a := w.node("a.example", map[string]policy.PartnerType{"b.example": policy.Federated}, "alice")
	b := w.node("b.example", map[string]policy.PartnerType{"a.example": policy.Federated}, "bob")
	alice, bob := mustJID(t, "alice@a.example"), mustJID(t, "bob@b.example")

	// Subscription, auto-approved at B (REFERENCE §5.6 #65).
	send(t, a, &translate.Subscription{From: alice, To: bob, Action: translate.Subscribe})
	b.host.wait(t, "auto-approved subscribe", subscription(func(s *translate.Subscription) bool {
		return s.Action == translate.Subscribe && s.AutoApproved && s.From.Equal(alice) && s.To.Equal(bob)
	}))
	a.host.wait(t, "subscribed", subscription(func(s *translate.Subscription) bool {
		return s.Action == translate.Subscribed && s.From.Equal(bob) && s.To.Equal(alice)
	}))
	a.host.wait(t, "bob's presence after approval", presence(func(p *translate.Presence) bool {
		return p.From.Equal(bob) && p.Availability == translate.Available
	}))
	// And the other way, so that presence flows both ways.
	send(t, b, &translate.Subscription{From: bob, To: alice, Action: translate.Subscribe})
	a.host.wait(t, "auto-approved subscribe", subscription(func(s *translate.Subscription) bool {
		return s.Action == translate.Subscribe && s.AutoApproved && s.From.Equal(bob)
	}))
	b.host.wait(t, "alice's presence after approval", presence(func(p *translate.Presence) bool {
		return p.From.Equal(alice) && p.Availability == translate.Available
	}))

	// Presence changes, with the note (Federated, REFERENCE §5.8 #89).
	for _, av := range []translate.Availability{translate.Away, translate.DoNotDisturb, translate.Available, translate.Offline} {
		send(t, a, &translate.Presence{From: alice, Availability: av, Note: "note " + av.String()})
		b.host.wait(t, "alice "+av.String(), presence(func(p *translate.Presence) bool {
			if av == translate.Offline {
				return p.From.Equal(alice) && p.Availability == translate.Offline
			}
			return p.From.Equal(alice) && p.Availability == av && p.Note == "note "+av.String()
		}))
	}
	b.host.setPresence("bob@b.example", translate.Presence{Availability: translate.Away, Note: "lunch"})
	send(t, b, &translate.Presence{From: bob, Availability: translate.Away, Note: "lunch"})
	a.host.wait(t, "bob away", presence(func(p *translate.Presence) bool {
		return p.From.Equal(bob) && p.Availability == translate.Away && p.Note == "lunch"
	}))

	// Messages both ways, a chat state and a receipt (XEP-0085, XEP-0184).
	send(t, a, &translate.Message{From: alice, To: bob, ID: "m1", Body: "hello bob", ChatState: translate.Active, RequestReceipt: true})
	got := b.host.wait(t, "alice's message", message(func(m *translate.Message) bool { return m.Body == "hello bob" })).(*translate.Message)
	if got.ChatState != translate.Active || !got.RequestReceipt || got.ID != "m1" || got.From.Bare().String() != "alice@a.example" {
		t.Errorf("B got %+v", got)
	}
	send(t, b, &translate.Message{From: bob, To: got.From, ReceiptFor: got.ID})
	a.host.wait(t, "receipt", message(func(m *translate.Message) bool { return m.ReceiptFor == "m1" && m.From.Bare().Equal(bob) }))
	send(t, b, &translate.Message{From: bob, To: alice, ChatState: translate.Composing})
	a.host.wait(t, "composing", message(func(m *translate.Message) bool { return m.ChatState == translate.Composing && m.Body == "" }))
	send(t, b, &translate.Message{From: bob, To: alice, ID: "m2", Body: "hi alice"})
	a.host.wait(t, "bob's message", message(func(m *translate.Message) bool { return m.Body == "hi alice" && m.ID == "m2" }))

	// A message to an unknown user at B comes back to A's Backend.
	nobody := mustJID(t, "nobody@b.example")
	send(t, a, &translate.Message{From: alice, To: nobody, ID: "m3", Body: "anyone?"})
	bo := a.host.wait(t, "bounce", bounced(func(b bounce) bool { return true })).(bounce)
	if bo.reason.Condition != stanza.ServiceUnavailable {
		t.Errorf("bounce condition = %q, want service-unavailable", bo.reason.Condition)
	}
	if m, ok := bo.v.(*translate.Message); !ok || m.ID != "m3" || !m.To.Bare().Equal(nobody) || !m.From.Bare().Equal(alice) || m.Body != "anyone?" {
		t.Errorf("bounced value = %T%+v", bo.v, bo.v)
	}

	// A domain not on the allow-list is refused at Send.
	err := a.srv.Send(context.Background(), &translate.Message{From: alice, To: mustJID(t, "carol@c.example"), Body: "x"})
	var d *policy.Denial
	if !errors.As(err, &d) || d.Rule != policy.RuleNotPartner || d.Domain != "c.example" {
		t.Errorf("Send to c.example: %v, want a not-partner Denial", err)
	}

	// The domains answer pings, disco and version themselves.
	domainQueries(t, a, "b.example")

	// Stream loss: contacts become Unknown, then are probed again once a
	// stream is back (REFERENCE §5.8 #91).
	a.proxy.cut()
	b.proxy.cut()
	a.host.wait(t, "bob unknown", presence(func(p *translate.Presence) bool {
		return p.From.Equal(bob) && p.Availability == translate.Unknown
	}))
	b.host.wait(t, "alice unknown", presence(func(p *translate.Presence) bool {
		return p.From.Equal(alice) && p.Availability == translate.Unknown
	}))
	send(t, a, &translate.Message{From: alice, To: bob, ID: "m4", Body: "still there?"})
	b.host.wait(t, "message after reconnection", message(func(m *translate.Message) bool { return m.ID == "m4" }))
	a.host.wait(t, "bob's presence after the probe", presence(func(p *translate.Presence) bool {
		return p.From.Equal(bob) && p.Availability == translate.Away && p.Note == "lunch"
	}))

	// Metrics saw the streams, stanzas, bounce and refusal.
	for _, k := range []string{"opened outbound sasl-external", "closed outbound sasl-external", "stanza out b.example", "stanza in b.example", "bounced service-unavailable", "denied not_partner", "queue"} {
		if a.metrics.get(k) == 0 {
			t.Errorf("metrics: no %q", k)
		}
	}
	st := a.srv.Stats()
	if len(st.Listeners) != 1 || st.ConnectionLimit != policy.DefaultConnectionLimit {
		t.Errorf("Stats = %+v", st)
	}
}

// domainQueries checks what the domain remote answers itself.
func domainQueries(t *testing.T, n *node, remote string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	from, to := mustJID(t, n.domain), mustJID(t, remote)
	ask := func(payload string) (typ string, body []byte) {
		t.Helper()
		r, err := federation.SendIQ(n.srv, ctx, from, to, []byte(payload))
		if err != nil {
			t.Fatalf("iq %s: %v", payload, err)
		}
		if !r.From.Equal(to) || !r.To.Equal(from) {
			t.Errorf("reply addressed %s -> %s", r.From, r.To)
		}
		return r.Type, r.Raw()
	}
	if typ, _ := ask("<ping xmlns='urn:xmpp:ping'/>"); typ != "result" {
		t.Errorf("ping: %s", typ)
	}
	typ, raw := ask("<query xmlns='http://jabber.org/protocol/disco#info'/>")
	if typ != "result" {
		t.Fatalf("disco#info: %s", raw)
	}
	var info struct {
		Identity []struct {
			Category string `xml:"category,attr"`
			Type     string `xml:"type,attr"`
		} `xml:"query>identity"`
		Feature []struct {
			Var string `xml:"var,attr"`
		} `xml:"query>feature"`
	}
	if err := xml.Unmarshal(raw, &info); err != nil {
		t.Fatal(err)
	}
	var features []string
	for _, f := range info.Feature {
		features = append(features, f.Var)
	}
	slices.Sort(features)
	want := []string{"http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items", "jabber:iq:version", "urn:xmpp:ping"}
	if !slices.Equal(features, want) || len(info.Identity) != 1 || info.Identity[0].Category != "server" || info.Identity[0].Type != "im" {
		t.Errorf("disco#info = %+v", info)
	}
	if typ, raw := ask("<query xmlns='http://jabber.org/protocol/disco#items'/>"); typ != "result" || !strings.Contains(string(raw), "disco#items") {
		t.Errorf("disco#items: %s", raw)
	}
	if typ, raw := ask("<query xmlns='jabber:iq:version'/>"); typ != "result" || !strings.Contains(string(raw), "<name>xmppfed-test</name>") {
		t.Errorf("version: %s", raw)
	}
	if typ, raw := ask("<query xmlns='jabber:iq:last'/>"); typ != "error" || !strings.Contains(string(raw), "service-unavailable") {
		t.Errorf("unknown namespace: %s", raw)
	}
}

// TestSubscriptionPublicUnverified: a subscription request from a
// PublicUnverified partner is held for the local user, who approves it;
// presence then carries no note (REFERENCE §5.6 #67, §5.8 #89).
func TestSubscriptionPublicUnverified(t *testing.T) {
	w := newWorld(t)
	a := w.node("a.example", map[string]policy.PartnerType{"b.example": policy.PublicUnverified}, "alice")
	b := w.node("b.example", map[string]policy.PartnerType{"a.example": policy.PublicUnverified}, "bob")
	alice, bob := mustJID(t, "alice@a.example"), mustJID(t, "bob@b.example")
	b.host.setPresence("bob@b.example", translate.Presence{Availability: translate.DoNotDisturb, Note: "secret plans"})

	// Before any subscription, alice's server refuses bob's message
	// (REFERENCE §5.6 #68): the refusal reaches bob's host as a bounce.
	send(t, b, &translate.Message{From: bob, To: alice, ID: "early", Body: "hello stranger"})
	bo := b.host.wait(t, "refusal", bounced(func(bounce) bool { return true })).(bounce)
	if m, ok := bo.v.(*translate.Message); !ok || m.ID != "early" || m.Body != "hello stranger" ||
		(bo.reason.Condition != stanza.Forbidden && bo.reason.Condition != stanza.NotAuthorized) {
		t.Errorf("refusal = %T%+v, %v", bo.v, bo.v, bo.reason)
	}
	if !a.host.none(message(func(*translate.Message) bool { return true })) {
		t.Errorf("alice got a message from a stranger: %s", a.host.dump())
	}

	send(t, a, &translate.Subscription{From: alice, To: bob, Action: translate.Subscribe})
	b.host.wait(t, "held subscribe", subscription(func(s *translate.Subscription) bool {
		return s.Action == translate.Subscribe && !s.AutoApproved && s.From.Equal(alice)
	}))
	if !a.host.none(subscription(func(*translate.Subscription) bool { return true })) {
		t.Fatalf("A heard of an answer before bob approved: %s", a.host.dump())
	}
	send(t, b, &translate.Subscription{From: bob, To: alice, Action: translate.Subscribed})
	a.host.wait(t, "subscribed", subscription(func(s *translate.Subscription) bool {
		return s.Action == translate.Subscribed && s.From.Equal(bob)
	}))
	p := a.host.wait(t, "bob's presence", presence(func(p *translate.Presence) bool { return p.From.Equal(bob) })).(*translate.Presence)
	if p.Availability != translate.DoNotDisturb || strings.Contains(p.Note, "secret") {
		t.Errorf("presence = %+v, want do-not-disturb without the note", p)
	}
	// A message from bob to alice is delivered: alice asked to see bob.
	send(t, b, &translate.Message{From: bob, To: alice, ID: "m1", Body: "ok"})
	a.host.wait(t, "bob's message", message(func(m *translate.Message) bool { return m.ID == "m1" }))
}

// TestShutdownInFlight sends 500 messages and shuts down at once: every
// one is delivered at B or bounced to A's Backend, none lost.
func TestShutdownInFlight(t *testing.T) {
	w := newWorld(t)
	a := w.node("a.example", map[string]policy.PartnerType{"b.example": policy.Federated}, "alice")
	b := w.node("b.example", map[string]policy.PartnerType{"a.example": policy.Federated}, "bob")
	alice, bob := mustJID(t, "alice@a.example"), mustJID(t, "bob@b.example")
	const total = 500
	sent := 0
	for i := range total {
		err := a.srv.Send(context.Background(), &translate.Message{From: alice, To: bob, ID: fmt.Sprint("s", i), Body: "burst"})
		if err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		sent++
	}
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := a.srv.Send(context.Background(), &translate.Message{From: alice, To: bob, Body: "late"}); !errors.Is(err, federation.ErrServerClosed) {
		t.Errorf("Send after Shutdown: %v", err)
	}
	// Delivery at B may still be in progress after A's side is done.
	deadline := time.Now().Add(hang)
	for b.host.messages.Load()+a.host.bounces.Load() < int64(sent) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	delivered, bounces := b.host.messages.Load(), a.host.bounces.Load()
	if delivered+bounces != int64(sent) {
		t.Errorf("delivered %d + bounced %d != sent %d: %d lost", delivered, bounces, sent, int64(sent)-delivered-bounces)
	}
	t.Logf("delivered %d, bounced %d", delivered, bounces)
	a.stop()
}

// TestConfigErrors: a Server without a Backend names the field; one
// without a Policy refuses every domain.
func TestConfigErrors(t *testing.T) {
	s := &federation.Server{Domains: []string{"a.example"}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(l); err == nil || !strings.Contains(err.Error(), "Backend") {
		t.Errorf("Serve without Backend: %v", err)
	}
	if err := s.Send(context.Background(), &translate.Message{}); err == nil || !strings.Contains(err.Error(), "Backend") {
		t.Errorf("Send without Backend: %v", err)
	}
	_ = s.Close()

	h := newHost("a.example", "alice")
	s = &federation.Server{Domains: []string{"a.example"}, Backend: h}
	err = s.Send(context.Background(), &translate.Message{From: mustJID(t, "alice@a.example"), To: mustJID(t, "bob@b.example"), Body: "x"})
	var d *policy.Denial
	if !errors.As(err, &d) || d.Domain != "b.example" {
		t.Errorf("Send without Policy: %v, want a Denial", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := s.Send(context.Background(), &translate.Message{From: mustJID(t, "alice@a.example"), To: mustJID(t, "bob@b.example"), Body: "x"}); !errors.Is(err, federation.ErrServerClosed) {
		t.Errorf("Send after Shutdown: %v", err)
	}
}

// logBuffer collects log output from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestNoBodiesInLogs: with LogBodies off (the default), no message body
// appears in any log line at any level, while the metadata does
// (REFERENCE §5.9 #93).
func TestNoBodiesInLogs(t *testing.T) {
	var logs logBuffer
	w := newWorld(t)
	w.mod = func(s *federation.Server) {
		s.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a := w.node("a.example", map[string]policy.PartnerType{"b.example": policy.Federated}, "alice")
	b := w.node("b.example", map[string]policy.PartnerType{"a.example": policy.Federated}, "bob")
	alice, bob := mustJID(t, "alice@a.example"), mustJID(t, "bob@b.example")
	send(t, a, &translate.Message{From: alice, To: bob, ID: "s1", Body: "SECRET-ONE"})
	b.host.wait(t, "message", message(func(m *translate.Message) bool { return m.ID == "s1" }))
	send(t, b, &translate.Message{From: bob, To: alice, ID: "s2", Body: "SECRET-TWO"})
	a.host.wait(t, "message", message(func(m *translate.Message) bool { return m.ID == "s2" }))
	send(t, a, &translate.Message{From: alice, To: mustJID(t, "nobody@b.example"), ID: "s3", Body: "SECRET-THREE"})
	a.host.wait(t, "bounce", bounced(func(b bounce) bool { return true }))
	a.stop()
	b.stop()
	out := logs.String()
	if strings.Contains(out, "SECRET") {
		t.Errorf("a body was logged:\n%s", out)
	}
	if !strings.Contains(out, "alice@a.example") || !strings.Contains(out, "stream established") {
		t.Errorf("metadata missing from the logs:\n%s", out)
	}
}

// panicky is a Backend whose Bounce panics.
type panicky struct{ *host }

func (panicky) Bounce(context.Context, translate.Stanza, stanza.Error) { panic("host bug") }

// TestBackendPanic: a panic in a Backend method called outside a stream
// (Bounce) is recovered and logged with its stack; the Server goes on.
func TestBackendPanic(t *testing.T) {
	var logs logBuffer
	w := newWorld(t)
	w.mod = func(s *federation.Server) {
		s.Backend = panicky{s.Backend.(*host)}
		s.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	}
	a := w.node("a.example", map[string]policy.PartnerType{"b.example": policy.Federated, "c.example": policy.Federated}, "alice")
	b := w.node("b.example", map[string]policy.PartnerType{"a.example": policy.Federated}, "bob")
	alice := mustJID(t, "alice@a.example")
	// c.example has no DNS records: the bounce panics.
	send(t, a, &translate.Message{From: alice, To: mustJID(t, "carol@c.example"), Body: "x"})
	deadline := time.Now().Add(hang)
	for !strings.Contains(logs.String(), "host bug") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if out := logs.String(); !strings.Contains(out, "host bug") || !strings.Contains(out, "goroutine") {
		t.Fatalf("panic not logged with its stack:\n%s", out)
	}
	send(t, a, &translate.Message{From: alice, To: mustJID(t, "bob@b.example"), ID: "after", Body: "still up"})
	b.host.wait(t, "message after the panic", message(func(m *translate.Message) bool { return m.ID == "after" }))
}

// TestDirectTLS: the same conversation over XEP-0368 direct TLS listeners.
func TestDirectTLS(t *testing.T) {
	w := newWorld(t)
	w.directTLS = true
	a := w.node("a.example", map[string]policy.PartnerType{"b.example": policy.Federated}, "alice")
	b := w.node("b.example", map[string]policy.PartnerType{"a.example": policy.Federated}, "bob")
	send(t, a, &translate.Message{From: mustJID(t, "alice@a.example"), To: mustJID(t, "bob@b.example"), ID: "d1", Body: "direct"})
	b.host.wait(t, "message", message(func(m *translate.Message) bool { return m.ID == "d1" }))
	for _, si := range a.srv.Stats().Streams {
		if si.TLSVersion == "" {
			t.Errorf("stream without TLS: %+v", si)
		}
	}
}

// TestListenAndServe: the listener shows in Stats until Close, and
// ListenAndServe then returns ErrServerClosed, as do Serve and Send.
func TestListenAndServe(t *testing.T) {
	s := &federation.Server{Domains: []string{"a.example"}, Backend: newHost("a.example", "alice")}
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe("127.0.0.1:0") }()
	deadline := time.Now().Add(hang)
	for len(s.Stats().Listeners) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if l := s.Stats().Listeners; len(l) != 1 || !strings.HasPrefix(l[0], "127.0.0.1:") {
		t.Errorf("Listeners = %v", l)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, federation.ErrServerClosed) {
		t.Errorf("ListenAndServe = %v", err)
	}
	if l := s.Stats().Listeners; len(l) != 0 {
		t.Errorf("Listeners after Close = %v", l)
	}
	if err := s.ListenAndServe("127.0.0.1:0"); !errors.Is(err, federation.ErrServerClosed) {
		t.Errorf("ListenAndServe after Close = %v", err)
	}
}
