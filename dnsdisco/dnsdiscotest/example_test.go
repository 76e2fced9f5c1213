package dnsdiscotest_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/miekg/dns"

	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
)

// A test publishes the records its code under test should find, then hands
// that code the server's Resolver.
func ExampleNewServer() {
	s := dnsdiscotest.NewServer()
	defer s.Close()
	s.AddSRV("_xmpps-server._tcp", "example.org", "xmpp.example.org", 5270, 0, 0)
	s.AddSRV("_xmpp-server._tcp", "example.org", "xmpp.example.org", 5269, 10, 0)
	s.AddHost("xmpp.example.org", netip.MustParseAddr("127.0.0.1"))
	s.SetSecure("example.org", true) // answers carry the AD bit

	targets, err := s.Resolver().LookupServer(context.Background(), "example.org")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, t := range targets {
		fmt.Println(t.Host, t.Port, t.DirectTLS, t.Addrs, t.Secure)
	}
	// Output:
	// xmpp.example.org 5270 true [127.0.0.1] true
	// xmpp.example.org 5269 false [127.0.0.1] true
}

// A name can be made to fail the way broken DNS does.
func ExampleServer_SetRcode() {
	s := dnsdiscotest.NewServer()
	defer s.Close()
	s.SetRcode("_xmpp-server._tcp.example.net", dns.RcodeServerFailure)

	_, err := s.Resolver().LookupServer(context.Background(), "example.net")
	var le *dnsdisco.LookupError
	if errors.As(err, &le) {
		fmt.Println(le.Name, le.Type, errors.Is(err, dnsdisco.ErrServerFailure), le.Temporary())
	}
	// Output: _xmpp-server._tcp.example.net SRV true true
}
