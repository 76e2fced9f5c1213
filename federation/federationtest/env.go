package federationtest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
	"github.com/xmppfed/xmppfed/policy"
)

// Env is one test's world: a test CA, a loopback DNS server, and the fake
// remote domains started in it. Everything runs on 127.0.0.1 and nothing
// leaves the machine. Its methods may be called concurrently.
type Env struct {
	ca  *certs.TestCA
	dns *dnsdiscotest.Server

	mu        sync.Mutex
	closed    bool
	hosts     map[string]bool // target host names given an A record
	listeners []net.Listener
	domains   []*Domain
}

// NewEnv creates a test CA and a loopback DNS server. With a non-nil t it
// registers Close with t.Cleanup (so it runs after the cleanups registered
// later, such as a Server's Close); with a nil t (an Example, a main
// program) the caller calls Close. It panics if the CA or the DNS server
// cannot be created.
func NewEnv(t testing.TB) *Env {
	ca, err := certs.NewTestCA()
	if err != nil {
		panic(fmt.Sprintf("federationtest: creating the test CA: %v", err))
	}
	e := &Env{ca: ca, dns: dnsdiscotest.NewServer(), hosts: make(map[string]bool)}
	if t != nil {
		t.Cleanup(e.Close)
	}
	return e
}

// CA returns the test CA that issues every certificate of the Env.
func (e *Env) CA() *certs.TestCA { return e.ca }

// DNS returns the loopback DNS server, for records a test adds itself.
func (e *Env) DNS() *dnsdiscotest.Server { return e.dns }

// Resolver returns a new resolver that asks only the Env's DNS server: set
// it as the Resolver of the server under test.
func (e *Env) Resolver() *dnsdisco.Resolver { return e.dns.Resolver() }

// Verify returns verification options trusting the test CA only: set them
// as the Verify of the server under test.
func (e *Env) Verify() certs.VerifyOptions { return certs.VerifyOptions{Roots: e.ca.Pool()} }

// TLSConfig returns a TLS configuration holding one certificate, issued by
// the test CA, for domains (a DNS-ID, an SRV-ID and an XmppAddr for each,
// RFC 7590): set it as the TLSConfig of the server under test. It panics
// if the certificate cannot be issued.
func (e *Env) TLSConfig(domains ...string) *tls.Config {
	cert, err := e.ca.IssueDomain(domains...)
	if err != nil {
		panic(fmt.Sprintf("federationtest: issuing a certificate for %v: %v", domains, err))
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

// Listen returns a listener on 127.0.0.1 (a random port) and publishes it
// in the Env's DNS as the server of domain: an _xmpp-server._tcp SRV
// record (RFC 6120 §3.2.1) pointing at "xmpp."+domain, which resolves to
// 127.0.0.1. Serve a server for domain on it (STARTTLS style) and the
// Env's Domains find it. Close closes it if the server did not. It panics
// if it cannot listen.
func (e *Env) Listen(domain string) net.Listener {
	return e.listen(domain, "_xmpp-server._tcp")
}

// ListenDirectTLS is Listen for a direct TLS server (XEP-0368): the SRV
// record is _xmpps-server._tcp.
func (e *Env) ListenDirectTLS(domain string) net.Listener {
	return e.listen(domain, "_xmpps-server._tcp")
}

func (e *Env) listen(domain, service string) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("federationtest: listening for %s: %v", domain, err))
	}
	host := "xmpp." + domain
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		_ = l.Close()
		panic("federationtest: Listen on a closed Env")
	}
	e.listeners = append(e.listeners, l)
	addHost := !e.hosts[host]
	e.hosts[host] = true
	e.mu.Unlock()
	if addHost {
		e.dns.AddHost(host, netip.MustParseAddr("127.0.0.1"))
	}
	e.dns.AddSRV(service, domain, host, uint16(l.Addr().(*net.TCPAddr).Port), 0, 0)
	return l
}

// Policy returns a Policy, kept in memory, for the server under test. With
// partners, exactly those domains federate, each with its type and
// settings; with none, open federation admits every domain as a
// PublicUnverified partner with the default settings (TLS and SASL
// EXTERNAL required: every Domain of the Env meets them), whose users'
// messages need the local user's approval (REFERENCE §5.6 #68): list a
// Federated partner for a conversation without subscriptions. Every user
// dir knows may use XMPP federation (the global access policy); a nil dir
// lets every address through. It panics if the configuration is invalid.
func (e *Env) Policy(dir policy.Directory, partners ...policy.Partner) *policy.Policy {
	return newPolicy(dir, partners, nil)
}

// newPolicy builds the Policy of Env.Policy, then applies edit.
func newPolicy(dir policy.Directory, partners []policy.Partner, edit func(*policy.Config)) *policy.Policy {
	c := &policy.Config{
		Gateway: policy.Gateway{OpenFederation: len(partners) == 0},
		Policies: []policy.AccessPolicy{
			{Name: policy.GlobalPolicy, EnableXMPPAccess: true, EnableFederationAccess: true},
		},
	}
	for _, p := range partners {
		c.Partners = append(c.Partners, p.Clone())
	}
	if edit != nil {
		edit(c)
	}
	p, err := policy.New(context.Background(), policy.NewMemStore(c), &policy.Options{Directory: dir})
	if err != nil {
		panic(fmt.Sprintf("federationtest: building the policy: %v", err))
	}
	return p
}

// Close closes every Domain of the Env (in reverse order of creation),
// the listeners Listen returned and the DNS server, and waits for their
// goroutines. It is safe to call more than once.
func (e *Env) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	domains, listeners := e.domains, e.listeners
	e.domains, e.listeners = nil, nil
	e.mu.Unlock()
	for i := len(domains) - 1; i >= 0; i-- {
		domains[i].Close()
	}
	for _, l := range listeners {
		_ = l.Close() // already closed by a server that served it: harmless
	}
	e.dns.Close()
}
