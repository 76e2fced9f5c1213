package s2s_test

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
)

// Two Servers federate over loopback: a.example sends a message to
// b.example, found through DNS SRV, authenticated with TLS and SASL
// EXTERNAL using certificates from a test CA.
func Example() {
	ca, err := certs.NewTestCA()
	if err != nil {
		panic(err)
	}
	dns := dnsdiscotest.NewServer()
	defer dns.Close()

	received := make(chan struct{})
	newServer := func(domain, partner string, h s2s.Handler) (*s2s.Server, func()) {
		cert, err := ca.IssueDomain(domain)
		if err != nil {
			panic(err)
		}
		// Each side has the other as its one federation partner (TLS and
		// SASL required, the defaults) and lets every user use XMPP.
		pol, err := policy.New(context.Background(), policy.NewMemStore(&policy.Config{
			Partners: []policy.Partner{{Domain: partner, Type: policy.Federated}},
			Policies: []policy.AccessPolicy{{Name: policy.GlobalPolicy, EnableXMPPAccess: true, EnableFederationAccess: true}},
		}), nil)
		if err != nil {
			panic(err)
		}
		srv := &s2s.Server{
			Domains:   []string{domain},
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
			Verify:    certs.VerifyOptions{Roots: ca.Pool()},
			Resolver:  dns.Resolver(),
			Policy:    pol,
			Handler:   h,
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		dns.AddSRV("_xmpp-server._tcp", domain, "xmpp."+domain, uint16(l.Addr().(*net.TCPAddr).Port), 0, 0)
		dns.AddHost("xmpp."+domain, netip.MustParseAddr("127.0.0.1"))
		done := make(chan error, 1)
		go func() { done <- srv.Serve(l) }()
		return srv, func() {
			_ = srv.Shutdown(context.Background())
			<-done
		}
	}

	a, stopA := newServer("a.example", "b.example", nil)
	defer stopA()
	_, stopB := newServer("b.example", "a.example", s2s.HandlerFunc(func(_ context.Context, st *s2s.Stanza) error {
		var m struct {
			Body string `xml:"body"`
		}
		if err := xml.NewTokenDecoder(st.TokenReader()).Decode(&m); err != nil {
			return err
		}
		fmt.Printf("%s got %q from %s\n", st.To, m.Body, st.From)
		close(received)
		return nil
	}))
	defer stopB()

	st, err := s2s.ParseStanza([]byte(`<message from='alice@a.example/phone' to='bob@b.example' type='chat' id='1'><body>Hello from a!</body></message>`))
	if err != nil {
		panic(err)
	}
	if err := a.Send(context.Background(), st); err != nil {
		panic(err)
	}
	<-received
	info := a.Stats().Streams[0]
	fmt.Println(info.Direction, info.Local, "->", info.Remote, "via", info.Auth, "over", info.TLSVersion)

	// c.example is not a partner: refused locally, nothing is looked up
	// or dialled.
	st, err = s2s.ParseStanza([]byte(`<message from='alice@a.example' to='carol@c.example' id='2'/>`))
	if err != nil {
		panic(err)
	}
	var d *policy.Denial
	if err := a.Send(context.Background(), st); errors.As(err, &d) {
		fmt.Println(d.Rule, d.StanzaError().Condition)
	}
	// Output:
	// bob@b.example got "Hello from a!" from alice@a.example/phone
	// outbound a.example -> b.example via sasl-external over TLS 1.3
	// not_partner service-unavailable
}
