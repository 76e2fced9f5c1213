package federation_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/translate"
)

// memBackend is a tiny Backend: users in a map, contact lists in a
// translate.MemRoster, and every delivery written as a line to out.
type memBackend struct {
	translate.MemRoster
	users map[string]bool // bare JIDs
	out   chan string
}

var _ federation.Backend = (*memBackend)(nil)

func newMemBackend(users ...string) *memBackend {
	b := &memBackend{users: make(map[string]bool), out: make(chan string, 100)}
	for _, u := range users {
		b.users[u] = true
	}
	return b
}

// say records a line; it never blocks (Backend methods must not).
func (b *memBackend) say(format string, args ...any) {
	select {
	case b.out <- fmt.Sprintf(format, args...):
	default:
	}
}

func (b *memBackend) DeliverMessage(_ context.Context, m *translate.Message) error {
	if !b.users[m.To.Bare().String()] {
		return translate.ErrUnknownUser // service-unavailable for the sender
	}
	b.say("%s: %q from %s", m.To, m.Body, m.From.Bare())
	return nil
}

func (b *memBackend) DeliverPresence(_ context.Context, p *translate.Presence) error {
	b.say("%s: %s is %s", p.To, p.From, p.Availability)
	return nil
}

func (b *memBackend) DeliverSubscription(_ context.Context, s *translate.Subscription) error {
	b.say("%s: %s from %s (approved automatically: %v)", s.To, s.Action, s.From, s.AutoApproved)
	return nil
}

func (b *memBackend) CurrentPresence(_ context.Context, user jid.JID) (*translate.Presence, error) {
	return &translate.Presence{From: user.Bare(), Availability: translate.Available}, nil
}

func (b *memBackend) LookupUser(_ context.Context, user jid.JID) (policy.User, error) {
	if !b.users[user.Bare().String()] {
		return policy.User{}, policy.ErrUnknownUser
	}
	return policy.User{}, nil
}

func (b *memBackend) Bounce(_ context.Context, v translate.Stanza, reason stanza.Error) {
	if m, ok := v.(*translate.Message); ok {
		b.say("not delivered to %s: %s", m.To, reason.Condition)
	}
}

// exampleNet is a test CA and a loopback DNS server.
type exampleNet struct {
	ca  *certs.TestCA
	dns *dnsdiscotest.Server
}

func newExampleNet() *exampleNet {
	ca, err := certs.NewTestCA()
	if err != nil {
		panic(err)
	}
	return &exampleNet{ca: ca, dns: dnsdiscotest.NewServer()}
}

// start runs a Server for domain, with partner as a Federated partner,
// listening on loopback with its SRV record in the DNS server.
func (n *exampleNet) start(domain, partner string, b *memBackend) *federation.Server {
	pol, err := policy.New(context.Background(), policy.NewMemStore(&policy.Config{
		Partners: []policy.Partner{{Domain: partner, Type: policy.Federated}},
		Policies: []policy.AccessPolicy{{Name: policy.GlobalPolicy, EnableXMPPAccess: true, EnableFederationAccess: true}},
	}), &policy.Options{Directory: b})
	if err != nil {
		panic(err)
	}
	cert, err := n.ca.IssueDomain(domain)
	if err != nil {
		panic(err)
	}
	srv := &federation.Server{
		Domains:   []string{domain},
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Verify:    certs.VerifyOptions{Roots: n.ca.Pool()},
		Resolver:  n.dns.Resolver(),
		Policy:    pol,
		Backend:   b,
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	n.dns.AddSRV("_xmpp-server._tcp", domain, "xmpp."+domain, uint16(l.Addr().(*net.TCPAddr).Port), 0, 0)
	n.dns.AddHost("xmpp."+domain, netip.MustParseAddr("127.0.0.1"))
	go func() { _ = srv.Serve(l) }()
	return srv
}

func shutdown(servers ...*federation.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range servers {
		if err := s.Shutdown(ctx); err != nil {
			_ = s.Close()
		}
	}
}

// Two Servers for two domains in one process: alice at a.example writes
// to bob at b.example.
func ExampleServer() {
	n := newExampleNet()
	defer n.dns.Close()
	hostA, hostB := newMemBackend("alice@a.example"), newMemBackend("bob@b.example")
	a := n.start("a.example", "b.example", hostA)
	b := n.start("b.example", "a.example", hostB)
	defer shutdown(a, b)

	alice, bob := jid.MustParse("alice@a.example"), jid.MustParse("bob@b.example")
	if err := a.Send(context.Background(), &translate.Message{From: alice, To: bob, Body: "hello"}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(<-hostB.out)
	// Output:
	// bob@b.example: "hello" from alice@a.example
}

// Send refuses a domain the policy does not admit, and otherwise returns
// once the stanzas are queued; what happens next reaches the Backends.
func ExampleServer_Send() {
	n := newExampleNet()
	defer n.dns.Close()
	hostA, hostB := newMemBackend("alice@a.example"), newMemBackend("bob@b.example")
	a := n.start("a.example", "b.example", hostA)
	b := n.start("b.example", "a.example", hostB)
	defer shutdown(a, b)
	ctx := context.Background()
	alice, bob := jid.MustParse("alice@a.example"), jid.MustParse("bob@b.example")

	err := a.Send(ctx, &translate.Message{From: alice, To: jid.MustParse("carol@c.example"), Body: "hi"})
	var d *policy.Denial
	if errors.As(err, &d) {
		fmt.Println("refused:", d.Rule)
	}

	// b.example is a Federated partner of a.example: bob's server approves
	// alice's request by itself, and tells bob.
	if err := a.Send(ctx, &translate.Subscription{From: alice, To: bob, Action: translate.Subscribe}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(<-hostB.out)
	fmt.Println(<-hostA.out)
	fmt.Println(<-hostA.out)
	// Output:
	// refused: not_partner
	// bob@b.example: subscribe from alice@a.example (approved automatically: true)
	// alice@a.example: subscribed from bob@b.example (approved automatically: false)
	// alice@a.example: bob@b.example is available
}

// A Backend gets back what could not be delivered, with the reason: here
// b.example is a partner, but DNS knows no server for it.
func ExampleBackend() {
	n := newExampleNet()
	defer n.dns.Close()
	hostA := newMemBackend("alice@a.example")
	a := n.start("a.example", "b.example", hostA)
	defer shutdown(a)

	alice, bob := jid.MustParse("alice@a.example"), jid.MustParse("bob@b.example")
	if err := a.Send(context.Background(), &translate.Message{From: alice, To: bob, Body: "anyone?"}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(<-hostA.out)
	// Output:
	// not delivered to bob@b.example: remote-server-not-found
}
