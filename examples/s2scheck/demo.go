package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
	"github.com/xmppfed/xmppfed/translate"
)

// demo is the self-contained world s2scheck checks when run without a
// domain: a loopback DNS server with a DNSSEC-marked zone, a test CA, and a
// pair of federation Servers: demoDomain, served on a direct TLS and a
// STARTTLS listener, and checkerDomain, the Server the check runs from.
type demo struct {
	Domain  string
	DNSAddr string
	// Checker is the Server that checks Domain.
	Checker *federation.Server

	dns     *dnsdiscotest.Server
	servers []*federation.Server
	wg      sync.WaitGroup
}

const (
	demoDomain    = "demo.example"     // RFC 2606 reserves .example
	demoHost      = "s2s.demo.example" // the SRV target serving it
	demoStale     = "old.demo.example" // a lower-priority target whose name is gone
	checkerDomain = "s2scheck.example" // the domain the check runs from
	checkerHost   = "s2s.s2scheck.example"
)

// startDemo starts the demo world on loopback; step bounds each network
// step of the check. Close stops it.
func startDemo(step time.Duration) (d *demo, err error) {
	ca, err := certs.NewTestCA()
	if err != nil {
		return nil, err
	}
	d = &demo{Domain: demoDomain, dns: dnsdiscotest.NewServer()}
	d.DNSAddr = d.dns.Addr
	defer func() {
		if err != nil {
			d.Close()
		}
	}()

	// The demo domain: SRV records for direct TLS (XEP-0368, first by
	// priority) and STARTTLS, both DNSSEC-secure with DANE-EE TLSA records,
	// and a stale third one.
	target, err := d.start(ca, demoDomain, checkerDomain, step)
	if err != nil {
		return nil, err
	}
	direct, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d.serve(func() error { return target.srv.ServeDirectTLS(direct) })
	directPort := uint16(direct.Addr().(*net.TCPAddr).Port)
	d.dns.AddSRV("_xmpps-server._tcp", demoDomain, demoHost, directPort, 5, 0)
	d.dns.AddSRV("_xmpp-server._tcp", demoDomain, demoHost, target.port, 10, 0)
	d.dns.AddSRV("_xmpp-server._tcp", demoDomain, demoStale, 5269, 20, 0)
	d.dns.AddHost(demoHost, netip.MustParseAddr("127.0.0.1"))
	// demoStale gets no records at all: a forgotten SRV record pointing at
	// a retired host, the commonest broken setup. It shows how a dead
	// candidate is reported while the others still work.
	// DANE-EE (usage 3), SPKI (selector 1), SHA-256 (matching type 1): RFC 7671 §5.1.
	spki := sha256.Sum256(target.cert.Leaf.RawSubjectPublicKeyInfo)
	d.dns.AddTLSA(demoHost, directPort, 3, 1, 1, spki[:])
	d.dns.AddTLSA(demoHost, target.port, 3, 1, 1, spki[:])
	d.dns.SetSecure(demoDomain, true) // as if a validating resolver set the AD bit

	// The checking side, reachable too (dialback, answers).
	checker, err := d.start(ca, checkerDomain, demoDomain, step)
	if err != nil {
		return nil, err
	}
	d.dns.AddSRV("_xmpp-server._tcp", checkerDomain, checkerHost, checker.port, 0, 0)
	d.dns.AddHost(checkerHost, netip.MustParseAddr("127.0.0.1"))
	d.Checker = checker.srv
	return d, nil
}

// started is one demo Server and what was published about it.
type started struct {
	srv  *federation.Server
	cert tls.Certificate
	port uint16 // its STARTTLS listener
}

// start starts a federation Server for domain with a certificate from ca,
// federating with partner, on a STARTTLS listener.
func (d *demo) start(ca *certs.TestCA, domain, partner string, step time.Duration) (started, error) {
	var st started
	cert, err := ca.IssueDomain(domain)
	if err != nil {
		return st, err
	}
	pol, err := policy.New(context.Background(), policy.NewMemStore(&policy.Config{
		Partners: []policy.Partner{{Domain: partner, Type: policy.Federated}},
	}), nil)
	if err != nil {
		return st, err
	}
	srv := &federation.Server{
		Domains:   []string{domain},
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Verify:    certs.VerifyOptions{Roots: ca.Pool()},
		Resolver:  d.dns.Resolver(),
		Policy:    pol,
		Backend:   demoBackend{},
		Limits:    s2s.Limits{DialTimeout: step},
	}
	d.servers = append(d.servers, srv)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return st, err
	}
	d.serve(func() error { return srv.Serve(l) })
	return started{srv: srv, cert: cert, port: uint16(l.Addr().(*net.TCPAddr).Port)}, nil
}

// serve runs a Serve call until the Server closes.
func (d *demo) serve(f func() error) {
	d.wg.Go(func() { _ = f() })
}

// Close shuts the Servers down, waits for their Serve calls and stops the
// DNS server.
func (d *demo) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range d.servers {
		_ = s.Shutdown(ctx)
	}
	d.wg.Wait()
	d.dns.Close()
}

// demoBackend is a host with no users: the demo exchanges only server
// traffic (a ping).
type demoBackend struct{}

var errNoUsers = errors.New("s2scheck demo: no users here")

// The demo domains have no users: every delivery is refused and
// every look-up finds nobody, which is all a connectivity check needs.

// DeliverMessage refuses: no users.
func (demoBackend) DeliverMessage(context.Context, *translate.Message) error {
	return translate.ErrUnknownUser
}

// DeliverPresence refuses: no users.
func (demoBackend) DeliverPresence(context.Context, *translate.Presence) error {
	return translate.ErrUnknownUser
}

// DeliverSubscription refuses: no users.
func (demoBackend) DeliverSubscription(context.Context, *translate.Subscription) error {
	return translate.ErrUnknownUser
}

// CurrentPresence finds nobody.
func (demoBackend) CurrentPresence(context.Context, jid.JID) (*translate.Presence, error) {
	return nil, translate.ErrUnknownUser
}

// State is None for every pair.
func (demoBackend) State(context.Context, jid.JID, jid.JID) (translate.SubState, error) {
	return translate.None, nil
}

// SetState refuses: no users.
func (demoBackend) SetState(context.Context, jid.JID, jid.JID, translate.SubState) error {
	return errNoUsers
}

// Watchers is empty.
func (demoBackend) Watchers(context.Context, jid.JID) ([]jid.JID, error) { return nil, nil }

// Contacts is empty.
func (demoBackend) Contacts(context.Context, string) ([][2]jid.JID, error) { return nil, nil }

// Bounce drops the value: the demo sends nothing of its own.
func (demoBackend) Bounce(context.Context, translate.Stanza, stanza.Error) {}

// LookupUser finds nobody.
func (demoBackend) LookupUser(context.Context, jid.JID) (policy.User, error) {
	return policy.User{}, policy.ErrUnknownUser
}
