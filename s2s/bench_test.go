package s2s_test

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
)

// chat200 is a chat message of about 200 bytes.
func chat200(tb testing.TB) *s2s.Stanza {
	body := strings.Repeat("lorem ipsum ", 8)
	st := msg(tb, "alice@a.example/phone", "bob@b.example", body)
	if n := len(st.Raw()); n < 180 || n > 230 {
		tb.Fatalf("stanza is %d bytes", n)
	}
	return st
}

// BenchmarkStreamThroughput measures one established TLS stream, library
// to library: ns and allocations per 200-byte chat message from Send to
// the receiving Handler (both ends' work included).
func BenchmarkStreamThroughput(b *testing.B) {
	h := newHarness(b)
	var n atomic.Int64
	done := make(chan struct{}, 1)
	var want atomic.Int64
	h.node("b.example", nodeOpt{handler: s2s.HandlerFunc(func(context.Context, *s2s.Stanza) error {
		if n.Add(1) == want.Load() {
			done <- struct{}{}
		}
		return nil
	}), edit: unpaced})
	a := h.node("a.example", nodeOpt{mod: func(s *s2s.Server) { s.Limits.QueueSize = 1 << 20 }})
	st := chat200(b)
	ctx := context.Background()
	// Establish the stream first.
	want.Store(1)
	if err := a.srv.Send(ctx, st); err != nil {
		b.Fatal(err)
	}
	<-done
	n.Store(0)
	want.Store(int64(b.N))
	b.SetBytes(int64(len(st.Raw())))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := a.srv.Send(ctx, st); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("only %d of %d delivered", n.Load(), b.N)
	}
	b.StopTimer()
}

// BenchmarkEstablish measures opening a fresh authenticated stream: a new
// initiating Server (certificate issued once) sends one stanza, which
// needs DNS, TCP, TLS 1.3 and SASL EXTERNAL or dialback, until the
// receiving Handler has it.
func BenchmarkEstablish(b *testing.B) {
	for _, tc := range []struct {
		name string
		set  policy.Settings
	}{
		{"tls13-sasl-external", policy.Settings{}},
		{"tls13-dialback", policy.Settings{SASL: policy.NotSupported}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := newHarness(b)
			got := make(chan struct{}, 1)
			h.node("b.example", nodeOpt{set: settings(tc.set), handler: s2s.HandlerFunc(func(context.Context, *s2s.Stanza) error {
				got <- struct{}{}
				return nil
			}), edit: func(c *policy.Config) {
				unpaced(c)
				c.Gateway.PartnerConnectionLimit = -1
			}})
			cert, err := h.ca.IssueDomain("a.example")
			if err != nil {
				b.Fatal(err)
			}
			// a.example's listener answers the dialback verification.
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			h.dns.AddSRV("_xmpp-server._tcp", "a.example", "127.0.0.1.", uint16(l.Addr().(*net.TCPAddr).Port), 0, 0)
			// The initiating Servers and a.example's Authoritative Server
			// share one policy, hence one dialback secret (XEP-0185).
			pol := s2s.NewPolicy(b, tc.set, nil)
			auth := &s2s.Server{Domains: []string{"a.example"}, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
				Verify: certs.VerifyOptions{Roots: h.ca.Pool()}, Resolver: h.dns.Resolver(), Policy: pol}
			sd := make(chan error, 1)
			go func() { sd <- auth.Serve(l) }()
			defer func() { _ = auth.Close(); <-sd }()
			st := msg(b, "u@a.example", "v@b.example", "x")
			res := h.dns.Resolver()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				a := &s2s.Server{Domains: []string{"a.example"}, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
					Verify: certs.VerifyOptions{Roots: h.ca.Pool()}, Resolver: res, Policy: pol}
				if err := a.Send(context.Background(), st); err != nil {
					b.Fatal(err)
				}
				select {
				case <-got:
				case <-time.After(hang):
					b.Fatal("not delivered")
				}
				b.StopTimer()
				_ = a.Close()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkIdleStreamMemory measures the memory an idle authenticated
// stream costs. conns initiating Servers (one domain each, all a.example)
// each open one TLS 1.3 + SASL EXTERNAL stream to one receiving Server and
// deliver one stanza over it; then nothing moves. Each connection is a
// stream end in two Servers (outbound in its initiator, inbound in the
// receiver), both in this process.
//
// What it counts: after runtime.GC, the growth of HeapInuse+StackInuse
// (heap objects and goroutine stacks the runtime holds for them) from a
// baseline taken after every initiating Server was created and started
// (Server.Stats starts it), so per-Server fixed cost (maps, contexts, the
// receiver's listener) is excluded, to the moment every stream is
// established and idle (hibernating, where streams hibernate: each
// initiating Server then keeps one poller goroutine, counted in
// goroutines/conn because every connection has a Server of its own). It
// includes the connection's TCP sockets, both crypto/tls connections,
// both wire readers and writers, the runtime and negotiation state, the
// outbound pool entry and every goroutine the streams keep. Metrics: B/stream is that growth per stream end (2*conns),
// B/conn per connection, goroutines/conn the goroutines kept per
// connection and stack-B/conn the StackInuse part. Kernel socket buffers
// are not Go memory and are not counted. Run with -benchtime=1x. With
// S2S_HEAPPROFILE=file set it writes a heap profile (after GC) while the
// streams are still open, for go tool pprof.
func BenchmarkIdleStreamMemory(b *testing.B) {
	const conns = 2000
	h := newHarness(b)
	var n atomic.Int64
	all := make(chan struct{})
	recv := h.node("b.example", nodeOpt{handler: s2s.HandlerFunc(func(context.Context, *s2s.Stanza) error {
		if n.Add(1) == conns {
			close(all)
		}
		return nil
	}), edit: func(c *policy.Config) {
		c.Gateway.ConnectionLimit, c.Gateway.PartnerConnectionLimit = 2*conns, 2*conns
	}})
	cert, err := h.ca.IssueDomain("a.example")
	if err != nil {
		b.Fatal(err)
	}
	res := h.dns.Resolver()
	pol := s2s.NewPolicy(b, s2s.CommonSettings(), nil) // shared by the initiating Servers
	st := msg(b, "u@a.example", "v@b.example", "x")
	for range b.N {
		n.Store(0)
		srvs := make([]*s2s.Server, conns)
		for i := range srvs {
			srvs[i] = &s2s.Server{Domains: []string{"a.example"}, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
				Verify: certs.VerifyOptions{Roots: h.ca.Pool()}, Resolver: res, Policy: pol}
			_ = srvs[i].Stats() // starts the Server: its fixed cost is in the baseline
		}
		before, g0 := settledMem()
		for i := range srvs {
			if err := srvs[i].Send(context.Background(), st); err != nil {
				b.Fatal(err)
			}
			if i%50 == 49 {
				time.Sleep(5 * time.Millisecond) // let handshakes drain; not measured
			}
		}
		select {
		case <-all:
		case <-time.After(2 * time.Minute):
			b.Fatalf("only %d of %d streams delivered", n.Load(), conns)
		}
		waitHibernating(recv.srv, srvs, conns)
		after, g1 := settledMem()
		if p := os.Getenv("S2S_HEAPPROFILE"); p != "" {
			writeHeapProfile(b, p)
		}
		used := float64((after.HeapInuse + after.StackInuse) - (before.HeapInuse + before.StackInuse))
		b.ReportMetric(used/(2*conns), "B/stream")
		b.ReportMetric(used/conns, "B/conn")
		b.ReportMetric(float64(after.StackInuse-before.StackInuse)/conns, "stack-B/conn")
		b.ReportMetric(float64(g1-g0)/conns, "goroutines/conn")
		for _, s := range srvs {
			_ = s.Close()
		}
		all = make(chan struct{})
	}
}

// waitHibernating waits (boundedly: twice s2s.HibernateAfter and a little more,
// in 10 ms steps) until both ends of every one of the conns streams
// hibernate, where streams hibernate: an idle stream is measured as it
// stays, not as it is in its first second.
func waitHibernating(recv *s2s.Server, srvs []*s2s.Server, conns int) {
	if !s2s.HibernationSupported {
		return
	}
	for range int(2*s2s.HibernateAfter/(10*time.Millisecond)) + 100 {
		n := s2s.Hibernated(recv)
		for _, s := range srvs {
			n += s2s.Hibernated(s)
		}
		if n >= 2*conns {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settledMem waits (boundedly) for the goroutine count to stop changing,
// then collects garbage and returns the memory statistics and the number of
// goroutines.
func settledMem() (runtime.MemStats, int) {
	last := -1
	for range 50 {
		g := runtime.NumGoroutine()
		if g == last {
			break
		}
		last = g
		time.Sleep(20 * time.Millisecond)
	}
	for range 4 {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m, runtime.NumGoroutine()
}

func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

// unpaced removes the partners' rate limit (the gateway's default is 1000
// stanzas a second per partner), so that benchmarks measure the library.
func unpaced(c *policy.Config) { c.Gateway.StanzasPerSecond = -1 }
