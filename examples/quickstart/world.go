package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/policy"
)

// The demo's domains (RFC 6761 reserves .test) and users.
const (
	contoso  = "contoso.test"
	fabrikam = "fabrikam.test"
	stranger = "stranger.test" // a partner of nobody
)

// node is one XMPP domain of the demo: its chat host, its policy and the
// federation.Server that connects them to the others.
type node struct {
	domain string
	host   *host
	pol    *policy.Policy
	srv    *federation.Server
	count  *counters
	ln     net.Listener
	served chan error // Serve's result
}

// world is everything the demo runs: a test CA, a DNS server and the
// nodes, all on loopback.
type world struct {
	ca    *certs.TestCA
	dns   *dnsdiscotest.Server
	nodes map[string]*node
	order []*node
}

// startWorld starts the CA, the DNS server and one node per domain:
// contoso.test (alice) and fabrikam.test (bob) list each other as
// Federated partners; stranger.test (eve) lists contoso.test, which does
// not list it. On error, what was started is stopped.
func startWorld(ctx context.Context, opts options, out *console) (w *world, err error) {
	ca, err := certs.NewTestCA()
	if err != nil {
		return nil, fmt.Errorf("test CA: %w", err)
	}
	w = &world{ca: ca, dns: dnsdiscotest.NewServer(), nodes: make(map[string]*node)}
	defer func() {
		if err != nil {
			w.close()
			w = nil
		}
	}()
	for _, d := range []struct {
		domain, partner, user string
	}{
		{contoso, fabrikam, "alice"},
		{fabrikam, contoso, "bob"},
		{stranger, contoso, "eve"},
	} {
		n, err := w.startNode(ctx, d.domain, d.partner, d.user, opts, out)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.domain, err)
		}
		w.nodes[d.domain] = n
		w.order = append(w.order, n)
	}
	return w, nil
}

// startNode starts the federation.Server of one domain on 127.0.0.1 and
// publishes it in the DNS: _xmpp-server._tcp.DOMAIN SRV xmpp.DOMAIN
// (RFC 6120 §3.2.1) and xmpp.DOMAIN A 127.0.0.1.
func (w *world) startNode(ctx context.Context, domain, partner, user string, opts options, out *console) (*node, error) {
	h := newHost(domain, user)
	cfg := &policy.Config{
		Partners: []policy.Partner{{
			Domain: partner,
			// Federated: the partner's users may subscribe without
			// approval and message anyone, and status notes are shared
			// (REFERENCE §4.3). TLS and SASL EXTERNAL are required,
			// the default.
			Type:        policy.Federated,
			Description: "the demo's other domain",
		}},
		// The shipped global policy gives nobody XMPP access (REFERENCE
		// §5.6 #58): the demo turns it on for everyone.
		Policies: []policy.AccessPolicy{{
			Name:                   policy.GlobalPolicy,
			EnableXMPPAccess:       true,
			EnableFederationAccess: true,
		}},
	}
	if opts.configure != nil {
		opts.configure(domain, cfg)
	}
	// The Policy's Directory is the host: it says which users exist.
	pol, err := policy.New(ctx, policy.NewMemStore(cfg), &policy.Options{Directory: h})
	if err != nil {
		return nil, err
	}
	cert, err := w.ca.IssueDomain(domain)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	target := "xmpp." + domain
	w.dns.AddSRV("_xmpp-server._tcp", domain, target, port, 0, 0)
	w.dns.AddHost(target, netip.MustParseAddr("127.0.0.1"))

	srv := &federation.Server{
		Domains:   []string{domain},
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Verify:    certs.VerifyOptions{Roots: w.ca.Pool()},
		Resolver:  w.dns.Resolver(),
		Policy:    pol,
		Backend:   h,
		Metrics:   newCounters(),
	}
	if opts.verbose {
		srv.DebugWriter = out.xml(domain)
	}
	n := &node{domain: domain, host: h, pol: pol, srv: srv, count: srv.Metrics.(*counters), ln: ln, served: make(chan error, 1)}
	go func() { n.served <- srv.Serve(ln) }()
	return n, nil
}

// shutdown shuts every node down gracefully: what is still queued is
// delivered or bounced to its host, every stream ends with
// </stream:stream>. Each Serve must then return ErrServerClosed.
func (w *world) shutdown(ctx context.Context) error {
	var errs []error
	for _, n := range w.order {
		if err := n.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: Shutdown: %w", n.domain, err))
		}
		if err := <-n.served; !errors.Is(err, federation.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("%s: Serve returned %v, not ErrServerClosed", n.domain, err))
		}
	}
	w.order = nil
	w.dns.Close()
	return errors.Join(errs...)
}

// close stops everything at once (after a failed start).
func (w *world) close() {
	for _, n := range w.order {
		_ = n.srv.Close()
		<-n.served
	}
	w.order = nil
	w.dns.Close()
}
