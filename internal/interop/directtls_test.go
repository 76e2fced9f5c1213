//go:build interop

package interop

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/xmppfed/xmppfed/s2s"
)

// TestInteropProsodyDirectTLS federates with Prosody over XEP-0368 direct
// TLS both ways (see testDirectTLS).
func TestInteropProsodyDirectTLS(t *testing.T) {
	requireRoot(t, "prosody")
	testDirectTLS(t, StartProsodyDirectTLS)
}

// TestInteropEjabberdDirectTLS federates with ejabberd over XEP-0368 direct
// TLS both ways (see testDirectTLS).
func TestInteropEjabberdDirectTLS(t *testing.T) {
	requireRoot(t, "ejabberdctl")
	testDirectTLS(t, StartEjabberdDirectTLS)
}

// testDirectTLS: the zone publishes _xmpps-server._tcp SRV records (port
// 5270) for both domains, the peer listens for direct TLS there and our
// server with ServeDirectTLS. It shows a message each way, that our
// outbound stream went to the peer's direct TLS port, and that the peer's
// inbound stream arrived on ours; SASL EXTERNAL authenticates both.
func testDirectTLS(t *testing.T, start func(testing.TB, *PKI, Mode, uint16) *Peer) {
	const port = 5270
	hosts := Hosts()
	for i := range hosts {
		hosts[i].DirectTLSPort = port
	}
	pki := NewPKI(t)
	StartDNS(t, hosts)
	peer := start(t, pki, External, port)
	peer.Register(t, password, "alice")
	ours := StartOurs(t, pki, peer.Domain, External)
	ours.ServeDirectTLS(t, "127.0.0.4:5270")
	alice := Login(t, peer.C2SAddr(), pki.RootCAs(), "alice@"+peer.Domain, password)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format, args...)
		t.Fatalf("%s log:\n%s\n%s", peer.Kind, peer.Log(), ours.Diag())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	if err := alice.Send(ctx, "user@"+OurDomain, "direct-in"); err != nil {
		fail("%v", err)
	}
	if _, err := ours.Wait("direct-in", 30*time.Second); err != nil {
		fail("%v", err)
	}
	if err := ours.SendMessage(ctx, "someone@"+OurDomain, "alice@"+peer.Domain, "direct-out"); err != nil {
		fail("%v", err)
	}
	if _, err := alice.Wait("direct-out", 30*time.Second); err != nil {
		fail("%v", err)
	}
	var outDirect bool
	for _, s := range ours.Server.Stats().Streams {
		t.Logf("stream %v %s from %s %s auth=%v", s.Direction, s.Remote, s.RemoteAddr, s.TLSVersion, s.Auth)
		if s.Auth != wantAuth(External) {
			fail("%v stream authenticated by %v", s.Direction, s.Auth)
		}
		outDirect = outDirect || (s.Direction == s2s.Outbound && s.RemoteAddr == peer.IP+":5270")
	}
	if !outDirect {
		fail("no outbound stream to %s's direct TLS port %s:5270", peer.Kind, peer.IP)
	}
	// The inbound stream's local address is only in our log.
	if !strings.Contains(ours.Log.String(), "local_addr=127.0.0.4:5270") {
		fail("no inbound stream on our direct TLS listener 127.0.0.4:5270")
	}
}
