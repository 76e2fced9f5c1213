package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"mellium.im/xmpp/stream"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
	"github.com/xmppfed/xmppfed/internal/wire"
)

// demo is the self-contained world s2scheck checks when run without a
// domain: a loopback DNS server with a DNSSEC-marked zone, a test CA, and two
// s2s listeners (direct TLS and STARTTLS) presenting a certificate for the
// demo domain. It answers only as far as TLS: stream negotiation beyond
// STARTTLS is the s2s package's job, not a diagnostic's.
type demo struct {
	Domain   string
	DNSAddr  string
	Resolver *dnsdisco.Resolver
	Roots    *x509.CertPool

	dns   *dnsdiscotest.Server
	lns   []net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

const (
	demoDomain = "demo.example"     // RFC 2606 reserves .example
	demoHost   = "s2s.demo.example" // the SRV target serving it
	demoStale  = "old.demo.example" // a lower-priority target whose name is gone
)

// startDemo starts the demo world on loopback. Close stops it.
func startDemo() (*demo, error) {
	ca, err := certs.NewTestCA()
	if err != nil {
		return nil, err
	}
	cert, err := ca.IssueDomain(demoDomain)
	if err != nil {
		return nil, err
	}
	d := &demo{Domain: demoDomain, Roots: ca.Pool(), conns: make(map[net.Conn]struct{})}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"xmpp-server"},
	}
	direct, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	starttls, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		direct.Close()
		return nil, err
	}
	d.lns = []net.Listener{direct, starttls}

	d.dns = dnsdiscotest.NewServer()
	d.DNSAddr = d.dns.Addr
	directPort := uint16(direct.Addr().(*net.TCPAddr).Port)
	starttlsPort := uint16(starttls.Addr().(*net.TCPAddr).Port)
	d.dns.AddSRV("_xmpps-server._tcp", demoDomain, demoHost, directPort, 5, 0)
	d.dns.AddSRV("_xmpp-server._tcp", demoDomain, demoHost, starttlsPort, 10, 0)
	d.dns.AddSRV("_xmpp-server._tcp", demoDomain, demoStale, 5269, 20, 0)
	d.dns.AddHost(demoHost, netip.MustParseAddr("127.0.0.1"))
	// demoStale gets no records at all: a forgotten SRV record pointing at
	// a retired host, the commonest broken setup. It shows how a dead
	// candidate is reported while the others still work.
	// DANE-EE (usage 3), SPKI (selector 1), SHA-256 (matching type 1): RFC 7671 §5.1.
	spki := sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)
	d.dns.AddTLSA(demoHost, directPort, 3, 1, 1, spki[:])
	d.dns.AddTLSA(demoHost, starttlsPort, 3, 1, 1, spki[:])
	d.dns.SetSecure(demoDomain, true) // as if a validating resolver set the AD bit
	d.Resolver = d.dns.Resolver()

	d.serve(direct, func(c net.Conn) { demoDirectTLS(c, cfg) })
	d.serve(starttls, func(c net.Conn) { demoStartTLS(c, cfg) })
	return d, nil
}

// serve accepts on l until it is closed, handling each connection in its own
// goroutine.
func (d *demo) serve(l net.Listener, handle func(net.Conn)) {
	d.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed by Close
			}
			d.mu.Lock()
			d.conns[c] = struct{}{}
			d.mu.Unlock()
			d.wg.Go(func() {
				defer func() {
					d.mu.Lock()
					delete(d.conns, c)
					d.mu.Unlock()
					c.Close()
				}()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				handle(c)
			})
		}
	})
}

// Close stops the listeners, ends open connections and the DNS server, and
// waits for every goroutine the demo started.
func (d *demo) Close() {
	for _, l := range d.lns {
		l.Close()
	}
	d.mu.Lock()
	for c := range d.conns {
		c.Close()
	}
	d.mu.Unlock()
	d.wg.Wait()
	d.dns.Close()
}

// demoDirectTLS completes a direct TLS handshake (XEP-0368) and waits for the
// client to leave.
func demoDirectTLS(c net.Conn, cfg *tls.Config) {
	tc := tls.Server(c, cfg)
	if err := tc.HandshakeContext(context.Background()); err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, tc)
}

// demoStartTLS answers a stream header with STARTTLS as the only (required)
// feature, proceeds, completes TLS and waits for the client to leave.
func demoStartTLS(c net.Conn, cfg *tls.Config) {
	r := wire.NewReader(c, wire.Limits{MaxStanzaBytes: maxPreTLS})
	w := wire.NewWriter(c)
	h, err := r.ReadHeader()
	if err != nil {
		return
	}
	if err := w.WriteHeader(wire.Header{From: demoDomain, To: h.From, ID: wire.NewID(), Version: "1.0"}); err != nil {
		return
	}
	if err := w.WriteRaw([]byte("<stream:features><starttls xmlns='" + nsTLS + "'><required/></starttls></stream:features>")); err != nil {
		return
	}
	req, err := r.Next()
	if err != nil {
		return
	}
	if req.Name != (xml.Name{Space: nsTLS, Local: "starttls"}) {
		// RFC 6120 §5.3.1: TLS is required here, anything else is a
		// policy violation.
		_ = w.WriteStreamError(stream.PolicyViolation, "STARTTLS is required")
		return
	}
	if err := w.WriteRaw([]byte("<proceed xmlns='" + nsTLS + "'/>")); err != nil {
		return
	}
	tc := tls.Server(c, cfg)
	if err := tc.HandshakeContext(context.Background()); err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, tc)
}
