package s2s_test

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
	"github.com/xmppfed/xmppfed/internal/clock"
	"github.com/xmppfed/xmppfed/s2s"
)

// gate is a loopback TCP proxy that holds every connection it accepts
// until release forwards the held ones to the peer at to, counting how
// many are held at once.
type gate struct {
	l       net.Listener
	to      string
	mu      sync.Mutex
	held    []net.Conn
	maxHeld int
	all     []net.Conn
	closed  bool
	wg      sync.WaitGroup
	changed chan struct{}
}

func newGate(t *testing.T, to string) *gate {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{l: l, to: to, changed: make(chan struct{}, 1)}
	g.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			g.mu.Lock()
			if g.closed {
				g.mu.Unlock()
				_ = c.Close()
				return
			}
			g.held = append(g.held, c)
			g.all = append(g.all, c)
			g.maxHeld = max(g.maxHeld, len(g.held))
			g.mu.Unlock()
			select {
			case g.changed <- struct{}{}:
			default:
			}
		}
	})
	return g
}

// waitHeld waits (bounded) until n connections are held.
func (g *gate) waitHeld(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(hang)
	for {
		g.mu.Lock()
		h := len(g.held)
		g.mu.Unlock()
		if h >= n {
			return
		}
		select {
		case <-g.changed:
		case <-deadline:
			t.Fatalf("%d connections held, want %d", h, n)
		}
	}
}

// release forwards the held connections to the peer and returns how many.
func (g *gate) release(t *testing.T) int {
	t.Helper()
	g.mu.Lock()
	held := g.held
	g.held = nil
	g.mu.Unlock()
	for _, c := range held {
		up, err := net.Dial("tcp", g.to)
		if err != nil {
			t.Fatal(err)
		}
		g.mu.Lock()
		g.all = append(g.all, up)
		g.mu.Unlock()
		g.wg.Go(func() {
			_, _ = io.Copy(up, c)
			_ = up.Close()
		})
		g.wg.Go(func() {
			_, _ = io.Copy(c, up)
			_ = c.Close()
		})
	}
	return len(held)
}

func (g *gate) close() {
	_ = g.l.Close()
	g.mu.Lock()
	g.closed = true
	for _, c := range g.all {
		_ = c.Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
}

// TestEstablishingBound: with Limits.Establishing 2, stanzas to 7 new
// domains at once never have more than 2 streams being established (a
// proxy holds each connection until the test lets it through); the others
// wait with their stanzas queued, not bounced, and all are delivered.
func TestEstablishingBound(t *testing.T) {
	const bound, domains = 2, 7
	h := newHarness(t)
	// The peer's own records go to a DNS server the host does not use:
	// the host finds every domain at the gate.
	hp := &harness{t: t, ca: h.ca, dns: dnsdiscotest.NewServer()}
	t.Cleanup(hp.dns.Close)
	var extra []string
	for i := range domains - 1 {
		extra = append(extra, "d"+strconv.Itoa(i+1)+".b.example")
	}
	b := hp.node("d0.b.example", nodeOpt{domains: extra})
	a := h.node("a.example", nodeOpt{mod: func(s *s2s.Server) { s.Limits.Establishing = bound }})
	g := newGate(t, b.addr)
	t.Cleanup(g.close)
	port := uint16(g.l.Addr().(*net.TCPAddr).Port)
	h.dns.AddHost("gate.b.example", netip.MustParseAddr("127.0.0.1"))
	all := append([]string{"d0.b.example"}, extra...)
	for _, d := range all {
		h.dns.AddSRV("_xmpp-server._tcp", d, "gate.b.example", port, 0, 0)
	}

	ctx := context.Background()
	for _, d := range all {
		if err := a.srv.Send(ctx, msg(t, "u@a.example", "v@"+d, d)); err != nil {
			t.Fatal(err)
		}
	}
	for released := 0; released < domains; {
		g.waitHeld(t, min(bound, domains-released))
		released += g.release(t)
	}
	got := map[string]bool{}
	for range domains {
		got[recv(t, b.got, "message").To.Domainpart()] = true
	}
	for _, d := range all {
		if !got[d] {
			t.Errorf("nothing delivered to %s", d)
		}
	}
	g.mu.Lock()
	maxHeld := g.maxHeld
	g.mu.Unlock()
	if maxHeld > bound {
		t.Errorf("%d streams were being established at once, want at most %d", maxHeld, bound)
	}
	select {
	case bo := <-a.bounced:
		t.Errorf("bounced while waiting for a slot: %v", bo.err)
	default:
	}
}

// TestEstablishingWaitTimesOut: a pair waiting for an establishment slot
// keeps its stanza queued until the gateway's StreamEstablishmentTimeout,
// which counts the wait: then the stanza is bounced (remote-server-timeout)
// like the one whose establishment holds the slot. Fake clock; the gate
// never lets the first connection through.
func TestEstablishingWaitTimesOut(t *testing.T) {
	h := newHarness(t)
	c := clock.NewFake(time.Unix(1e9, 0))
	a := h.node("a.example", nodeOpt{edit: gatewayOpt(0, 10*time.Second, 0), mod: func(s *s2s.Server) {
		s2s.SetClock(s, c)
		s.Limits.Establishing = 1
	}})
	g := newGate(t, "127.0.0.1:1")
	t.Cleanup(g.close)
	port := uint16(g.l.Addr().(*net.TCPAddr).Port)
	h.dns.AddHost("gate.b.example", netip.MustParseAddr("127.0.0.1"))
	for _, d := range []string{"d0.b.example", "d1.b.example"} {
		h.dns.AddSRV("_xmpp-server._tcp", d, "gate.b.example", port, 0, 0)
	}
	ctx := context.Background()
	for _, d := range []string{"d0.b.example", "d1.b.example"} {
		if err := a.srv.Send(ctx, msg(t, "u@a.example", "v@"+d, d)); err != nil {
			t.Fatal(err)
		}
	}
	g.waitHeld(t, 1)
	waitPending(t, c, 2) // both attempts' establishment timers
	if st := a.srv.Stats(); st.Queued != 2 {
		t.Errorf("%d stanzas queued while one pair holds the slot, want 2", st.Queued)
	}
	select {
	case bo := <-a.bounced:
		t.Fatalf("bounced before the timeout: %v", bo.err)
	default:
	}
	c.Advance(11 * time.Second)
	for range 2 {
		if bo := recv(t, a.bounced, "bounce"); bo.err.Condition != stanza.RemoteServerTimeout {
			t.Errorf("bounced %s with %v, want remote-server-timeout", bo.st.To, bo.err.Condition)
		}
	}
}
