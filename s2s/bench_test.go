package s2s_test

import (
	"context"
	"crypto/tls"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppfed/xmppfed/certs"
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
	})})
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
		set  s2s.Settings
	}{
		{"tls13-sasl-external", s2s.Settings{}},
		{"tls13-dialback", s2s.Settings{SASL: s2s.NotSupported}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := newHarness(b)
			got := make(chan struct{}, 1)
			h.node("b.example", nodeOpt{set: tc.set, handler: s2s.HandlerFunc(func(context.Context, *s2s.Stanza) error {
				got <- struct{}{}
				return nil
			}), mod: func(s *s2s.Server) { s.Limits.MaxStreamsPerDomain = 1 << 20 }})
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
			auth := &s2s.Server{Domains: []string{"a.example"}, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
				Verify: certs.VerifyOptions{Roots: h.ca.Pool()}, Resolver: h.dns.Resolver(), DialbackSecret: []byte("shared"), Settings: func(context.Context, string) (s2s.Settings, error) { return tc.set, nil }}
			sd := make(chan error, 1)
			go func() { sd <- auth.Serve(l) }()
			defer func() { _ = auth.Close(); <-sd }()
			st := msg(b, "u@a.example", "v@b.example", "x")
			res := h.dns.Resolver()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				a := &s2s.Server{Domains: []string{"a.example"}, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
					Verify: certs.VerifyOptions{Roots: h.ca.Pool()}, Resolver: res, DialbackSecret: []byte("shared"),
					Settings: func(context.Context, string) (s2s.Settings, error) { return tc.set, nil }}
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

// BenchmarkIdleStreamMemory opens 2000 authenticated streams (2000
// initiating Servers, one receiving Server) and reports heap+stack bytes
// per stream end (each connection is a stream in each Server) and per
// connection. Run with -benchtime=1x.
func BenchmarkIdleStreamMemory(b *testing.B) {
	const conns = 2000
	h := newHarness(b)
	var n atomic.Int64
	all := make(chan struct{})
	h.node("b.example", nodeOpt{handler: s2s.HandlerFunc(func(context.Context, *s2s.Stanza) error {
		if n.Add(1) == conns {
			close(all)
		}
		return nil
	}), mod: func(s *s2s.Server) {
		s.Limits.MaxStreams, s.Limits.MaxStreamsPerDomain = 2*conns, 2*conns
	}})
	cert, err := h.ca.IssueDomain("a.example")
	if err != nil {
		b.Fatal(err)
	}
	res := h.dns.Resolver()
	st := msg(b, "u@a.example", "v@b.example", "x")
	for range b.N {
		n.Store(0)
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		srvs := make([]*s2s.Server, conns)
		for i := range srvs {
			srvs[i] = &s2s.Server{Domains: []string{"a.example"}, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
				Verify: certs.VerifyOptions{Roots: h.ca.Pool()}, Resolver: res}
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
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		used := float64((after.HeapInuse + after.StackInuse) - (before.HeapInuse + before.StackInuse))
		b.ReportMetric(used/(2*conns), "B/stream")
		b.ReportMetric(used/conns, "B/conn")
		for _, s := range srvs {
			_ = s.Close()
		}
		all = make(chan struct{})
	}
}
