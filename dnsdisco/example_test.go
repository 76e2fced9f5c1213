package dnsdisco_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
)

func ExampleResolver_LookupServer() {
	dnsSrv := dnsdiscotest.NewServer()
	defer dnsSrv.Close()
	dnsSrv.AddSRV("_xmpps-server._tcp", "example.org", "tls.example.org", 5270, 5, 0)
	dnsSrv.AddSRV("_xmpp-server._tcp", "example.org", "xmpp.example.org", 5269, 10, 0)
	dnsSrv.AddHost("tls.example.org", netip.MustParseAddr("192.0.2.10"))
	dnsSrv.AddHost("xmpp.example.org", netip.MustParseAddr("2001:db8::5"), netip.MustParseAddr("192.0.2.5"))

	r := dnsSrv.Resolver()
	targets, err := r.LookupServer(context.Background(), "example.org")
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	for _, t := range targets {
		fmt.Printf("%s:%d directTLS=%v priority=%d addrs=%v\n", t.Host, t.Port, t.DirectTLS, t.Priority, t.Addrs)
	}

	// A domain without any record: the caller bounces with
	// remote-server-not-found.
	_, err = r.LookupServer(context.Background(), "nowhere.example")
	var le *dnsdisco.LookupError
	if errors.As(err, &le) {
		fmt.Println(le.NotFound(), errors.Is(err, dnsdisco.ErrNotFound))
	}
	// Output:
	// tls.example.org:5270 directTLS=true priority=5 addrs=[192.0.2.10]
	// xmpp.example.org:5269 directTLS=false priority=10 addrs=[2001:db8::5 192.0.2.5]
	// true true
}

func ExampleResolver_SetOverride() {
	var r dnsdisco.Resolver
	// A partner reached through a fixed address: no DNS query at all.
	if err := r.SetOverride("partner.example", dnsdisco.Override{Host: "127.0.0.1", Port: 15269}); err != nil {
		fmt.Println(err)
		return
	}
	targets, err := r.LookupServer(context.Background(), "partner.example")
	fmt.Println(targets[0].Host, targets[0].Port, targets[0].Addrs, err)
	// Output: 127.0.0.1 15269 [127.0.0.1] <nil>
}

func ExampleResolver_LookupTLSA() {
	dnsSrv := dnsdiscotest.NewServer()
	defer dnsSrv.Close()
	dnsSrv.AddTLSA("xmpp.example.org", 5269, 3, 1, 1, []byte{0xab, 0xcd})
	dnsSrv.SetSecure("example.org", true)

	recs, secure, err := dnsSrv.Resolver().LookupTLSA(context.Background(), "xmpp.example.org", 5269)
	fmt.Printf("%d record(s), secure=%v, err=%v, first=%+v\n", len(recs), secure, err, recs[0])
	// Output: 1 record(s), secure=true, err=<nil>, first={Usage:3 Selector:1 MatchingType:1 Data:[171 205]}
}
