//go:build interop

package interop

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// BenchmarkInteropProsodyRoundTrip measures one message from our
// s2s.Server.Send to a real Prosody user's c2s session, over an
// established SASL EXTERNAL stream, one at a time (latency, not
// throughput). Prosody's Nagle is off (network_settings), so this is not
// its 40 ms delayed-ACK artefact.
func BenchmarkInteropProsodyRoundTrip(b *testing.B) {
	requireRoot(b, "prosody")
	pki := NewPKI(b)
	StartDNS(b, Hosts())
	peer := StartProsody(b, pki, External)
	peer.Register(b, password, "alice")
	ours := StartOurs(b, pki, peer.Domain, External)
	alice := Login(b, peer.C2SAddr(), pki.RootCAs(), "alice@"+peer.Domain, password)
	ctx := context.Background()
	// Warm up: open and authenticate the stream outside the timing.
	if err := ours.SendMessage(ctx, "someone@"+OurDomain, alice.JID.Bare().String(), "warmup"); err != nil {
		b.Fatal(err)
	}
	if _, err := alice.Wait("warmup", 30*time.Second); err != nil {
		b.Fatalf("%v\n%s", err, ours.Diag())
	}
	i := 0
	for b.Loop() {
		body := fmt.Sprintf("m%d", i)
		i++
		if err := ours.SendMessage(ctx, "someone@"+OurDomain, alice.JID.Bare().String(), body); err != nil {
			b.Fatal(err)
		}
		if _, err := alice.Wait(body, 30*time.Second); err != nil {
			if os.Getenv("XMPPFED_INTEROP_STACKS") != "" {
				buf := make([]byte, 1<<20)
				b.Logf("goroutines:\n%s", buf[:runtime.Stack(buf, true)])
			}
			b.Fatalf("%v\nbounces %q\nstats %+v\nprosody log:\n%s\nour log:\n%s", err, ours.Bounces(), ours.Server.Stats(), peer.Log(), tail2(ours.Log.String(), 8000))
		}
	}
}

// BenchmarkZoneServe measures the harness DNS handler answering an SRV
// query (no network).
func BenchmarkZoneServe(b *testing.B) {
	d := newZoneServer(b)
	q := new(dns.Msg)
	q.SetQuestion("_xmpp-server._tcp.xmppfed.test.", dns.TypeSRV)
	w := new(fakeDNSWriter)
	b.ReportAllocs()
	for b.Loop() {
		d.serveDNS(w, q)
	}
}

func tail2(s string, n int) string { return s[max(len(s)-n, 0):] }
