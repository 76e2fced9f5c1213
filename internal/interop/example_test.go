//go:build interop

package interop_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/xmppfed/xmppfed/internal/interop"
)

// The test zone every peer resolves through the harness DNS server.
func ExampleHosts() {
	for _, h := range interop.Hosts() {
		fmt.Printf("_xmpp-server._tcp.%s SRV 0 0 5269 %s. / A %s\n", h.Domain, h.Domain, h.IP)
	}
	// Output:
	// _xmpp-server._tcp.prosody.test SRV 0 0 5269 prosody.test. / A 127.0.0.2
	// _xmpp-server._tcp.ejabberd.test SRV 0 0 5269 ejabberd.test. / A 127.0.0.3
	// _xmpp-server._tcp.xmppfed.test SRV 0 0 5269 xmppfed.test. / A 127.0.0.4
}

// What our s2s.Server negotiates with the peer in each mode.
func ExampleSettingsFor() {
	for _, m := range []interop.Mode{interop.External, interop.Dialback} {
		s := interop.SettingsFor(m)
		fmt.Printf("%s: TLS %v, SASL %v, dialback %v\n", m, s.TLS, s.SASL, s.Dialback())
	}
	// Output:
	// external: TLS required, SASL required, dialback true
	// dialback: TLS required, SASL not-supported, dialback true
}

// exampleT stands in for the *testing.T of a real test.
var exampleT testing.TB

// A whole interop scenario, as TestInteropProsody runs it: DNS, a real
// Prosody, our server, a real user; a message each way. (Not run: it needs
// root and the packages from .ci/interop-setup.)
func ExampleStartProsody() {
	t := exampleT
	pki := interop.NewPKI(t)
	interop.StartDNS(t, interop.Hosts())
	peer := interop.StartProsody(t, pki, interop.External)
	peer.Register(t, "secret", "alice")
	ours := interop.StartOurs(t, pki, peer.Domain, interop.External)
	alice := interop.Login(t, peer.C2SAddr(), pki.RootCAs(), "alice@prosody.test", "secret")

	ctx := context.Background()
	_ = alice.Send(ctx, "user@xmppfed.test", "hi")
	st, _ := ours.Wait("hi", 30*time.Second)
	fmt.Println(st.From.Bare())
	_ = ours.SendMessage(ctx, "someone@xmppfed.test", "alice@prosody.test", "hello")
	m, _ := alice.Wait("hello", 30*time.Second)
	fmt.Println(m.From)
}
