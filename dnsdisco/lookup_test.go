package dnsdisco_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	xmpp  = "_xmpp-server._tcp"
	xmpps = "_xmpps-server._tcp"
)

var ( // test-only fixtures; no package state in the library
	ip4a = netip.MustParseAddr("192.0.2.1")
	ip4b = netip.MustParseAddr("192.0.2.2")
	ip6a = netip.MustParseAddr("2001:db8::1")
)

func newServer(t testing.TB) (*dnsdiscotest.Server, *dnsdisco.Resolver) {
	t.Helper()
	s := dnsdiscotest.NewServer()
	t.Cleanup(s.Close)
	return s, s.Resolver()
}

func lookupErr(t *testing.T, err error, want error) *dnsdisco.LookupError {
	t.Helper()
	var le *dnsdisco.LookupError
	if !errors.As(err, &le) {
		t.Fatalf("error %v (%T) is not a *LookupError", err, err)
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %q does not wrap %q", err, want)
	}
	return le
}

// Rule 1: malformed names are rejected with ErrInvalidName naming the
// input, before any query.
func TestInvalidNamesSendNoQuery(t *testing.T) {
	s, r := newServer(t)
	long := strings.Repeat("a", 63) + "."
	bad := []string{
		"", ".", "..", "a..b", "-lead.example", "trail-.example", "exa mple.org",
		"under_score.example", strings.Repeat("a", 64) + ".example",
		strings.Repeat(long, 4) + "example", "ex@mple.org", "a/b", "\x00.org", "\xaa.example",
	}
	for _, d := range bad {
		_, err := r.LookupServer(context.Background(), d)
		le := lookupErr(t, err, dnsdisco.ErrInvalidName)
		if le.Domain != d {
			t.Errorf("LookupServer(%q): Domain = %q", d, le.Domain)
		}
		if !le.NotFound() || le.Temporary() {
			t.Errorf("LookupServer(%q): NotFound=%v Temporary=%v", d, le.NotFound(), le.Temporary())
		}
		if msg := err.Error(); d != "" && !strings.Contains(msg, d) && !strings.Contains(msg, strconv.Quote(d)) {
			t.Errorf("error %q does not name input %q", err, d)
		}
	}
	if q := s.Queries(); q != 0 {
		t.Fatalf("invalid names caused %d queries", q)
	}
}

// Rule 1: IP literals give one candidate on 5269 without queries.
func TestIPLiteralDomain(t *testing.T) {
	s, r := newServer(t)
	for in, want := range map[string]string{"127.0.0.1": "127.0.0.1", "[::1]": "::1", "::ffff:10.0.0.1": "10.0.0.1"} {
		ts, err := r.LookupServer(context.Background(), in)
		if err != nil {
			t.Fatalf("LookupServer(%q): %v", in, err)
		}
		if len(ts) != 1 || ts[0].Host != want || ts[0].Port != 5269 || len(ts[0].Addrs) != 1 || ts[0].Addrs[0].String() != want {
			t.Fatalf("LookupServer(%q) = %+v", in, ts)
		}
	}
	if q := s.Queries(); q != 0 {
		t.Fatalf("IP literals caused %d queries", q)
	}
}

// Rule 1: IDNA conversion before the query.
func TestIDNAConversion(t *testing.T) {
	s, r := newServer(t)
	s.AddSRV(xmpp, "xn--bcher-kva.example", "xmpp.xn--bcher-kva.example", 5269, 0, 0)
	s.AddHost("xmpp.xn--bcher-kva.example", ip4a)
	for _, d := range []string{"bücher.example", "BÜCHER.Example."} {
		ts, err := r.LookupServer(context.Background(), d)
		if err != nil {
			t.Fatalf("LookupServer(%q): %v", d, err)
		}
		if len(ts) != 1 || ts[0].Host != "xmpp.xn--bcher-kva.example" {
			t.Fatalf("LookupServer(%q) = %+v", d, ts)
		}
	}
	if n := s.QueriesFor("_xmpp-server._tcp.xn--bcher-kva.example", dns.TypeSRV); n != 1 {
		t.Fatalf("A-label SRV queried %d times, want 1 (second lookup cached)", n)
	}
}

func mergeFixture(s *dnsdiscotest.Server) {
	s.AddSRV(xmpps, "example.org", "a.example.org", 5270, 10, 0)
	s.AddSRV(xmpp, "example.org", "b.example.org", 5269, 10, 5)
	s.AddSRV(xmpp, "example.org", "c.example.org", 5269, 10, 10)
	s.AddSRV(xmpp, "example.org", "d.example.org", 5300, 5, 0)
	s.AddSRV(xmpps, "example.org", "e.example.org", 443, 20, 0)
	for _, h := range []string{"a", "b", "c", "d", "e"} {
		s.AddHost(h+".example.org", ip4a)
	}
}

// Rule 2: both SRV sets merged, priority first, RFC 2782 weighted order
// with weight-0 records at the start of the pool; DirectTLS from xmpps.
func TestMergeOrderDeterministic(t *testing.T) {
	for _, tc := range []struct {
		name string
		rand func(int) int
		want string
	}{
		// x = 0 always takes the first of the pool: weight-0 first.
		{"low", func(int) int { return 0 }, "d a b c e"},
		// x = sum always takes the last non-zero weight: weight-0 last.
		{"high", func(n int) int { return n - 1 }, "d c b a e"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, r := newServer(t)
			mergeFixture(s)
			r.Rand = tc.rand
			ts, err := r.LookupServer(context.Background(), "example.org")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, x := range ts {
				got = append(got, strings.TrimSuffix(x.Host, ".example.org"))
			}
			if strings.Join(got, " ") != tc.want {
				t.Fatalf("order %v, want %s", got, tc.want)
			}
			for _, x := range ts {
				wantTLS := x.Host == "a.example.org" || x.Host == "e.example.org"
				if x.DirectTLS != wantTLS {
					t.Errorf("%s DirectTLS = %v", x.Host, x.DirectTLS)
				}
				if x.Host == "d.example.org" && (x.Port != 5300 || x.Priority != 5) {
					t.Errorf("d: port %d priority %d", x.Port, x.Priority)
				}
				if x.Host == "c.example.org" && x.Weight != 10 {
					t.Errorf("c: weight %d", x.Weight)
				}
				if len(x.Addrs) != 1 || x.Err != nil {
					t.Errorf("%s: addrs %v err %v", x.Host, x.Addrs, x.Err)
				}
			}
		})
	}
}

// Rule 2 and 8: the weighted order is recomputed per call (cache keeps
// records) and follows the RFC 2782 weights. Fixed seed: deterministic.
func TestWeightDistribution(t *testing.T) {
	s, r := newServer(t)
	s.AddSRV(xmpp, "example.org", "zero.example.org", 5269, 1, 0)
	s.AddSRV(xmpp, "example.org", "one.example.org", 5269, 1, 1)
	s.AddSRV(xmpp, "example.org", "three.example.org", 5269, 1, 3)
	s.AddHost("zero.example.org", ip4a)
	s.AddHost("one.example.org", ip4a)
	s.AddHost("three.example.org", ip4a)
	rng := rand.New(rand.NewPCG(1, 2))
	var mu sync.Mutex
	r.Rand = func(n int) int { mu.Lock(); defer mu.Unlock(); return rng.IntN(n) }
	const runs = 1000
	first := map[string]int{}
	for range runs {
		ts, err := r.LookupServer(context.Background(), "example.org")
		if err != nil {
			t.Fatal(err)
		}
		first[ts[0].Host]++
	}
	// x uniform in [0,4]: 0 -> zero, 1 -> one, 2..4 -> three.
	check := func(h string, p float64) {
		got := float64(first[h]) / runs
		if got < p-0.08 || got > p+0.08 {
			t.Errorf("%s first in %.3f of runs, want about %.2f (counts %v)", h, got, p, first)
		}
	}
	check("zero.example.org", 0.2)
	check("one.example.org", 0.2)
	check("three.example.org", 0.6)
	if q := s.Queries(); q > 8 {
		t.Errorf("%d queries for %d cached lookups", q, runs)
	}
}

// Rule 3: "." in one set: that set contributes nothing, the other is used.
func TestDotInOneSet(t *testing.T) {
	s, r := newServer(t)
	s.AddSRV(xmpps, "example.org", ".", 0, 0, 0)
	s.AddSRV(xmpp, "example.org", "xmpp.example.org", 5269, 0, 0)
	s.AddHost("xmpp.example.org", ip4a)
	ts, err := r.LookupServer(context.Background(), "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].Host != "xmpp.example.org" || ts[0].DirectTLS {
		t.Fatalf("targets %+v", ts)
	}
}

// Rule 3: "." in both sets, or in one with the other absent: ErrNoService,
// and no A/AAAA fallback even though the domain has addresses.
func TestDotNoService(t *testing.T) {
	for _, both := range []bool{true, false} {
		s, r := newServer(t)
		s.AddSRV(xmpp, "example.org", ".", 0, 0, 0)
		if both {
			s.AddSRV(xmpps, "example.org", ".", 0, 0, 0)
		}
		s.AddHost("example.org", ip4a)
		ts, err := r.LookupServer(context.Background(), "example.org")
		le := lookupErr(t, err, dnsdisco.ErrNoService)
		if !le.NotFound() || ts != nil {
			t.Fatalf("both=%v: NotFound=%v targets=%v", both, le.NotFound(), ts)
		}
		if n := s.QueriesFor("example.org", dns.TypeA) + s.QueriesFor("example.org", dns.TypeAAAA); n != 0 {
			t.Fatalf("both=%v: %d address queries for the domain despite '.'", both, n)
		}
	}
}

// Rule 4: no SRV at all -> the domain itself on 5269, STARTTLS, AAAA first.
func TestFallbackToTheDomain(t *testing.T) {
	s, r := newServer(t)
	s.AddHost("example.org", ip4a, ip6a)
	ts, err := r.LookupServer(context.Background(), "example.org")
	if err != nil {
		t.Fatal(err)
	}
	want := dnsdisco.Target{Host: "example.org", Port: 5269, Addrs: []netip.Addr{ip6a, ip4a}}
	if len(ts) != 1 || ts[0].Host != want.Host || ts[0].Port != 5269 || ts[0].DirectTLS ||
		ts[0].Priority != 0 || ts[0].Weight != 0 || len(ts[0].Addrs) != 2 ||
		ts[0].Addrs[0] != ip6a || ts[0].Addrs[1] != ip4a {
		t.Fatalf("got %+v, want %+v", ts, want)
	}
}

// Rule 4: fallback for a domain that does not exist -> ErrNotFound; one
// that exists without addresses -> ErrNoAddress. Targets are returned.
func TestFallbackErrors(t *testing.T) {
	s, r := newServer(t)
	s.AddRR(&dns.TXT{Hdr: dns.RR_Header{Name: "noaddr.example.", Rrtype: dns.TypeTXT, Ttl: 60}, Txt: []string{"x"}})
	ts, err := r.LookupServer(context.Background(), "missing.example")
	le := lookupErr(t, err, dnsdisco.ErrNotFound)
	if !le.NotFound() || len(ts) != 1 || ts[0].Err == nil || ts[0].Addrs != nil {
		t.Fatalf("missing: NotFound=%v targets %+v", le.NotFound(), ts)
	}
	ts, err = r.LookupServer(context.Background(), "noaddr.example")
	le = lookupErr(t, err, dnsdisco.ErrNoAddress)
	if errors.Is(err, dnsdisco.ErrNotFound) || !le.NotFound() || len(ts) != 1 {
		t.Fatalf("noaddr: %v %+v", err, ts)
	}
}

// Rule 5: a target without address stays in the list with Err; no error
// while another target has addresses; all without -> targets + ErrNoAddress.
func TestTargetWithoutAddress(t *testing.T) {
	s, r := newServer(t)
	s.AddSRV(xmpp, "example.org", "dead.example.org", 5269, 0, 0)
	s.AddSRV(xmpp, "example.org", "live.example.org", 5269, 1, 0)
	s.AddHost("live.example.org", ip4b)
	ts, err := r.LookupServer(context.Background(), "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].Host != "dead.example.org" || ts[0].Err == nil || ts[0].Addrs != nil ||
		ts[1].Err != nil || ts[1].Addrs[0] != ip4b {
		t.Fatalf("targets %+v", ts)
	}
	var le *dnsdisco.LookupError
	if !errors.As(ts[0].Err, &le) || le.Name != "dead.example.org" {
		t.Fatalf("target Err %v", ts[0].Err)
	}

	s.AddSRV(xmpp, "other.example", "dead.example.org", 5269, 0, 0)
	ts, err = r.LookupServer(context.Background(), "other.example")
	lookupErr(t, err, dnsdisco.ErrNoAddress)
	if len(ts) != 1 || ts[0].Err == nil {
		t.Fatalf("targets %+v", ts)
	}
}

// Rule 5: CNAME'd SRV target followed (chain inside the answer).
func TestCNAMETarget(t *testing.T) {
	s, r := newServer(t)
	s.AddSRV(xmpp, "example.org", "alias.example.org", 5269, 0, 0)
	s.AddCNAME("alias.example.org", "alias2.example.net")
	s.AddCNAME("alias2.example.net", "real.example.net")
	s.AddHost("real.example.net", ip4a, ip6a)
	ts, err := r.LookupServer(context.Background(), "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if ts[0].Host != "alias.example.org" || len(ts[0].Addrs) != 2 || ts[0].Addrs[0] != ip6a {
		t.Fatalf("targets %+v", ts)
	}
}

// Rule 5: a CNAME loop ends in an error on that target, not a hang.
func TestCNAMELoop(t *testing.T) {
	s, r := newServer(t)
	s.AddSRV(xmpp, "example.org", "loop1.example.org", 5269, 0, 0)
	s.AddCNAME("loop1.example.org", "loop2.example.org")
	s.AddCNAME("loop2.example.org", "loop1.example.org")
	ts, err := r.LookupServer(context.Background(), "example.org")
	if err == nil || len(ts) != 1 || ts[0].Err == nil || !strings.Contains(ts[0].Err.Error(), "CNAME") {
		t.Fatalf("err %v targets %+v", err, ts)
	}
}

// startRaw runs h on a loopback UDP+TCP miekg server for the test.
func startRaw(t *testing.T, h dns.HandlerFunc) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(up) }}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ActivateAndServe() }()
	<-up
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return pc.LocalAddr().String()
}

// Rule 5: a resolver that returns a CNAME without data: we chase it.
func TestCNAMEChasedByUs(t *testing.T) {
	var mu sync.Mutex
	asked := map[string]int{}
	addr := startRaw(t, func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		mu.Lock()
		asked[q.Name]++
		mu.Unlock()
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Rrtype: q.Qtype, Ttl: 60}
		switch {
		case q.Name == "example.org." && q.Qtype == dns.TypeA:
			hdr.Rrtype = dns.TypeCNAME
			m.Answer = []dns.RR{&dns.CNAME{Hdr: hdr, Target: "target.example.net."}}
		case q.Name == "target.example.net." && q.Qtype == dns.TypeA:
			m.Answer = []dns.RR{&dns.A{Hdr: hdr, A: net.IPv4(192, 0, 2, 9)},
				// Must be ignored: not on the chain.
				&dns.A{Hdr: dns.RR_Header{Name: "evil.example.", Class: dns.ClassINET, Rrtype: dns.TypeA, Ttl: 60}, A: net.IPv4(6, 6, 6, 6)}}
		case q.Qtype == dns.TypeSRV:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	r := &dnsdisco.Resolver{Servers: []string{addr}, HostsFile: os.DevNull, Timeout: time.Second, Attempts: 1}
	ts, err := r.LookupServer(context.Background(), "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if len(ts[0].Addrs) != 1 || ts[0].Addrs[0] != netip.MustParseAddr("192.0.2.9") {
		t.Fatalf("addrs %v", ts[0].Addrs)
	}
	mu.Lock()
	defer mu.Unlock()
	if asked["target.example.net."] == 0 {
		t.Fatal("CNAME target was not queried")
	}
}

// Rule 7: the query carries EDNS0 1232 with DO and AD set.
func TestQueryFlags(t *testing.T) {
	type flags struct {
		ad, do bool
		size   uint16
	}
	got := make(chan flags, 16)
	addr := startRaw(t, func(w dns.ResponseWriter, req *dns.Msg) {
		f := flags{ad: req.AuthenticatedData}
		if o := req.IsEdns0(); o != nil {
			f.do, f.size = o.Do(), o.UDPSize()
		}
		select {
		case got <- f:
		default:
		}
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeNameError)
		_ = w.WriteMsg(m)
	})
	r := &dnsdisco.Resolver{Servers: []string{addr}, HostsFile: os.DevNull, Timeout: time.Second, Attempts: 1}
	_, _ = r.LookupServer(context.Background(), "example.org")
	f := <-got
	if !f.ad || !f.do || f.size != 1232 {
		t.Fatalf("query flags %+v, want AD, DO, 1232", f)
	}
}

// Rule 7: TC answers are retried over TCP.
func TestTruncatedRetriedOverTCP(t *testing.T) {
	s, r := newServer(t)
	s.AddSRV(xmpp, "example.org", "xmpp.example.org", 5269, 0, 0)
	s.AddHost("xmpp.example.org", ip4a)
	s.SetTruncate("_xmpp-server._tcp.example.org", true)
	ts, err := r.LookupServer(context.Background(), "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].Host != "xmpp.example.org" {
		t.Fatalf("targets %+v", ts)
	}
	if s.TCPQueries() != 1 {
		t.Fatalf("TCP queries %d, want 1", s.TCPQueries())
	}
}

// blackhole is a UDP socket that reads queries and never answers. Each
// received query is signalled on the returned channel (non-blocking).
func blackhole(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{}, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			select {
			case got <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return pc.LocalAddr().String(), got
}

// Rule 6/7: a server that never answers -> ErrTimeout, Temporary, names
// the SRV name and the server; no goroutine leaks (TestMain goleak).
func TestTimeout(t *testing.T) {
	addr, _ := blackhole(t)
	r := &dnsdisco.Resolver{Servers: []string{addr}, HostsFile: os.DevNull, Timeout: 50 * time.Millisecond, Attempts: 2}
	start := time.Now()
	ts, err := r.LookupServer(context.Background(), "example.org")
	t.Logf("returned after %v: %v", time.Since(start), err)
	le := lookupErr(t, err, dnsdisco.ErrTimeout)
	if !le.Temporary() || le.NotFound() || ts != nil || le.Type != "SRV" {
		t.Fatalf("Temporary=%v NotFound=%v targets=%v type=%q", le.Temporary(), le.NotFound(), ts, le.Type)
	}
	if msg := err.Error(); !strings.Contains(msg, "_server._tcp.example.org") && !strings.Contains(msg, "-server._tcp.example.org SRV") || !strings.Contains(msg, addr) {
		t.Fatalf("error %q does not name the query and server", msg)
	}
}

// Rule 7: ctx cancellation interrupts a pending query.
func TestContextCancel(t *testing.T) {
	addr, got := blackhole(t)
	r := &dnsdisco.Resolver{Servers: []string{addr}, HostsFile: os.DevNull, Timeout: time.Hour, Attempts: 3}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-got; cancel() }()
	_, err := r.LookupServer(ctx, "example.org")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	var le *dnsdisco.LookupError
	if !errors.As(err, &le) {
		t.Fatalf("err %T not a *LookupError", err)
	}
}

// Rule 6: SERVFAIL on a SRV query is a temporary error, with no fallback.
func TestSRVServFailNoFallback(t *testing.T) {
	s, r := newServer(t)
	s.AddHost("example.org", ip4a)
	s.SetRcode("_xmpps-server._tcp.example.org", dns.RcodeServerFailure)
	ts, err := r.LookupServer(context.Background(), "example.org")
	le := lookupErr(t, err, dnsdisco.ErrServerFailure)
	if !le.Temporary() || ts != nil || le.Name != "_xmpps-server._tcp.example.org" || !strings.Contains(err.Error(), s.Addr) {
		t.Fatalf("err %v Temporary=%v Name=%q targets=%v", err, le.Temporary(), le.Name, ts)
	}
	if n := s.QueriesFor("example.org", dns.TypeA); n != 0 {
		t.Fatalf("fell back to A despite SERVFAIL (%d A queries)", n)
	}
	// Not cached: once the server recovers, the next lookup succeeds.
	s.SetRcode("_xmpps-server._tcp.example.org", dns.RcodeSuccess)
	if _, err := r.LookupServer(context.Background(), "example.org"); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

// Rule 6, refined: when one SRV set fails but the other gives usable
// records, those are the candidates; the A/AAAA fallback is still never
// taken.
func TestSRVServFailOtherSetUsable(t *testing.T) {
	s, r := newServer(t)
	s.AddHost("example.org", ip4a)
	s.AddSRV(xmpp, "example.org", "xmpp.example.org", 5269, 0, 0)
	s.AddHost("xmpp.example.org", ip4a)
	s.SetRcode("_xmpps-server._tcp.example.org", dns.RcodeServerFailure)
	ts, err := r.LookupServer(context.Background(), "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].Host != "xmpp.example.org" || ts[0].DirectTLS {
		t.Fatalf("targets %+v, want the _xmpp-server record only", ts)
	}
	if n := s.QueriesFor("example.org", dns.TypeA); n != 0 {
		t.Fatalf("fell back to the domain's A record (%d queries)", n)
	}
}

// Rule 5: addresses from the hosts file only; no DNS for that host; file
// re-read when its mtime changes.
func TestHostsFileOnlyTarget(t *testing.T) {
	s, r := newServer(t)
	s.AddSRV(xmpp, "example.org", "internal.example.org", 5269, 0, 0)
	if err := os.WriteFile(s.HostsFile(), []byte("# comment\n192.0.2.7 Internal.Example.Org. alias\n2001:db8::7 internal.example.org\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ts, err := r.LookupServer(context.Background(), "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if got := ts[0].Addrs; len(got) != 2 || got[0] != netip.MustParseAddr("2001:db8::7") || got[1] != netip.MustParseAddr("192.0.2.7") || ts[0].AddrsSecure {
		t.Fatalf("addrs %v secure %v", got, ts[0].AddrsSecure)
	}
	if n := s.QueriesFor("internal.example.org", dns.TypeA); n != 0 {
		t.Fatalf("%d A queries for a hosts-file host", n)
	}
	if err := os.WriteFile(s.HostsFile(), []byte("192.0.2.8 internal.example.org\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(s.HostsFile(), later, later); err != nil {
		t.Fatal(err)
	}
	// The file is looked at again only after hostsRecheck (5s) of the
	// resolver's clock: within it the old table still answers.
	ts, err = r.LookupServer(context.Background(), "example.org")
	if err != nil || len(ts[0].Addrs) != 2 {
		t.Fatalf("within the recheck interval: %v %+v", err, ts)
	}
	dnsdisco.SetNow(r, func() time.Time { return later.Add(time.Minute) })
	ts, err = r.LookupServer(context.Background(), "example.org")
	if err != nil || len(ts[0].Addrs) != 1 || ts[0].Addrs[0] != netip.MustParseAddr("192.0.2.8") {
		t.Fatalf("after rewrite: %v %+v", err, ts)
	}
}

// Rule 9: IP-literal override: no query at all; DeleteOverride restores DNS.
func TestOverrideIPLiteral(t *testing.T) {
	s, r := newServer(t)
	if err := r.SetOverride("Example.org.", dnsdisco.Override{Host: "127.0.0.1", Port: 15269}); err != nil {
		t.Fatal(err)
	}
	ts, err := r.LookupServer(context.Background(), "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].Host != "127.0.0.1" || ts[0].Port != 15269 || ts[0].Addrs[0] != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("targets %+v", ts)
	}
	if q := s.Queries(); q != 0 {
		t.Fatalf("%d queries with an IP override", q)
	}
	r.DeleteOverride("example.org")
	_, err = r.LookupServer(context.Background(), "example.org")
	lookupErr(t, err, dnsdisco.ErrNotFound)
	if s.Queries() == 0 {
		t.Fatal("no queries after DeleteOverride")
	}
}

// Rule 9: host-name override: no SRV query, host resolved, default ports.
func TestOverrideProxyFQDN(t *testing.T) {
	s, r := newServer(t)
	s.AddHost("proxy.example.net", ip4a)
	s.AddSRV(xmpp, "partner.example", "ignored.example", 5269, 0, 0)
	if err := r.SetOverride("partner.example",
		dnsdisco.Override{Host: "proxy.example.net", DirectTLS: true},
		dnsdisco.Override{Host: "proxy.example.net"}); err != nil {
		t.Fatal(err)
	}
	ts, err := r.LookupServer(context.Background(), "partner.example")
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].Port != 5270 || !ts[0].DirectTLS || ts[1].Port != 5269 || ts[1].DirectTLS ||
		ts[0].Addrs[0] != ip4a || ts[1].Addrs[0] != ip4a {
		t.Fatalf("targets %+v", ts)
	}
	if n := s.QueriesFor("_xmpp-server._tcp.partner.example", dns.TypeSRV) + s.QueriesFor("_xmpps-server._tcp.partner.example", dns.TypeSRV); n != 0 {
		t.Fatalf("%d SRV queries despite override", n)
	}
}

func TestSetOverrideValidates(t *testing.T) {
	r := &dnsdisco.Resolver{}
	cases := []struct {
		domain string
		o      []dnsdisco.Override
		naming string
	}{
		{"bad..domain", []dnsdisco.Override{{Host: "x.example"}}, "bad..domain"},
		{"ok.example", nil, "at least one"},
		{"ok.example", []dnsdisco.Override{{Host: "-bad.example"}}, "-bad.example"},
		{"ok.example", []dnsdisco.Override{{Host: ""}}, "Host"},
		{"192.0.2.1", []dnsdisco.Override{{Host: "x.example"}}, "IP literal"},
	}
	for _, c := range cases {
		err := r.SetOverride(c.domain, c.o...)
		if !errors.Is(err, dnsdisco.ErrInvalidName) || !strings.Contains(err.Error(), c.naming) {
			t.Errorf("SetOverride(%q, %v) = %v, want ErrInvalidName naming %q", c.domain, c.o, err, c.naming)
		}
	}
}

// Rule 8: cache hit: a second lookup sends no query.
func TestCacheHit(t *testing.T) {
	s, r := newServer(t)
	mergeFixture(s)
	if _, err := r.LookupServer(context.Background(), "example.org"); err != nil {
		t.Fatal(err)
	}
	n := s.Queries()
	if _, err := r.LookupServer(context.Background(), "example.org"); err != nil {
		t.Fatal(err)
	}
	if s.Queries() != n {
		t.Fatalf("queries grew from %d to %d on a cached lookup", n, s.Queries())
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// Rule 8: TTL expiry with a fake clock (records have TTL 300, one has 100).
func TestCacheTTLExpiry(t *testing.T) {
	s, r := newServer(t)
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	dnsdisco.SetNow(r, clk.now)
	s.AddSRV(xmpp, "example.org", "xmpp.example.org", 5269, 0, 0)
	s.AddRR(&dns.A{Hdr: dns.RR_Header{Name: "xmpp.example.org.", Rrtype: dns.TypeA, Ttl: 300}, A: net.IPv4(192, 0, 2, 1)},
		&dns.A{Hdr: dns.RR_Header{Name: "xmpp.example.org.", Rrtype: dns.TypeA, Ttl: 100}, A: net.IPv4(192, 0, 2, 2)})
	lookup := func() {
		t.Helper()
		if _, err := r.LookupServer(context.Background(), "example.org"); err != nil {
			t.Fatal(err)
		}
	}
	lookup()
	clk.add(99 * time.Second)
	lookup()
	if n := s.QueriesFor("xmpp.example.org", dns.TypeA); n != 1 {
		t.Fatalf("A queried %d times before min TTL expiry", n)
	}
	clk.add(2 * time.Second) // 101s: the RRset's min TTL (100) has passed
	lookup()
	if n := s.QueriesFor("xmpp.example.org", dns.TypeA); n != 2 {
		t.Fatalf("A queried %d times after TTL expiry, want 2", n)
	}
	if n := s.QueriesFor("_xmpp-server._tcp.example.org", dns.TypeSRV); n != 1 {
		t.Fatalf("SRV (TTL 300) re-queried early: %d", n)
	}
	clk.add(200 * time.Second)
	lookup()
	if n := s.QueriesFor("_xmpp-server._tcp.example.org", dns.TypeSRV); n != 2 {
		t.Fatalf("SRV queried %d times after 301s", n)
	}
}

// Rule 8: negative answers cached for min(SOA TTL, SOA MINIMUM) = 60s.
func TestNegativeCaching(t *testing.T) {
	s, r := newServer(t)
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	dnsdisco.SetNow(r, clk.now)
	for range 2 {
		_, err := r.LookupServer(context.Background(), "missing.example")
		lookupErr(t, err, dnsdisco.ErrNotFound)
	}
	n := s.Queries()
	if n != 4 { // 2 SRV + AAAA + A
		t.Fatalf("%d queries for two lookups of a missing domain, want 4", n)
	}
	clk.add(59 * time.Second)
	_, _ = r.LookupServer(context.Background(), "missing.example")
	if s.Queries() != n {
		t.Fatal("negative answer not cached for SOA minimum")
	}
	clk.add(2 * time.Second)
	_, _ = r.LookupServer(context.Background(), "missing.example")
	if s.Queries() != 2*n {
		t.Fatalf("queries %d after negative TTL, want %d", s.Queries(), 2*n)
	}
}

// Rule 8: the cache is bounded by CacheSize (LRU), and negative CacheSize
// disables it.
func TestCacheBounded(t *testing.T) {
	s, r := newServer(t)
	r.CacheSize = 3
	for _, d := range []string{"a.example", "b.example", "c.example", "d.example"} {
		_, _ = r.LookupServer(context.Background(), d)
		if n := dnsdisco.CacheLen(r); n > 3 {
			t.Fatalf("cache holds %d entries, CacheSize 3", n)
		}
	}
	if n := dnsdisco.CacheLen(r); n != 3 {
		t.Fatalf("cache holds %d entries, want 3", n)
	}
	r2 := s.Resolver()
	r2.CacheSize = -1
	_, _ = r2.LookupServer(context.Background(), "a.example")
	n := s.Queries()
	_, _ = r2.LookupServer(context.Background(), "a.example")
	if s.Queries() != n+4 || dnsdisco.CacheLen(r2) != 0 {
		t.Fatalf("uncached resolver: queries %d -> %d, cache %d", n, s.Queries(), dnsdisco.CacheLen(r2))
	}
}

// Rule 7: AD bit -> Secure / AddrsSecure.
func TestSecureFlags(t *testing.T) {
	s, r := newServer(t)
	s.AddSRV(xmpp, "signed.example", "xmpp.signed.example", 5269, 0, 0)
	s.AddSRV(xmpp, "signed.example", "xmpp.unsigned.example", 5269, 1, 0)
	s.AddHost("xmpp.signed.example", ip4a)
	s.AddHost("xmpp.unsigned.example", ip4b)
	s.SetSecure("signed.example", true)
	ts, err := r.LookupServer(context.Background(), "signed.example")
	if err != nil {
		t.Fatal(err)
	}
	if !ts[0].Secure || !ts[0].AddrsSecure || !ts[1].Secure || ts[1].AddrsSecure {
		t.Fatalf("secure flags %+v", ts)
	}
	s.AddHost("plain.example", ip4a)
	ts, err = r.LookupServer(context.Background(), "plain.example")
	if err != nil || ts[0].Secure || ts[0].AddrsSecure {
		t.Fatalf("unsigned: %v %+v", err, ts)
	}
	// Fallback is Secure only if both SRV denials were authenticated.
	s.AddHost("fb.signed.example", ip4a)
	ts, err = r.LookupServer(context.Background(), "fb.signed.example")
	if err != nil || !ts[0].Secure || !ts[0].AddrsSecure {
		t.Fatalf("signed fallback: %v %+v", err, ts)
	}
}

// Concurrent lookups (run with -race).
func TestConcurrentLookups(t *testing.T) {
	s, r := newServer(t)
	mergeFixture(s)
	r.CacheSize = 4
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Go(func() {
			for j := range 8 {
				d := "example.org"
				if (i+j)%3 == 0 {
					d = "missing.example"
				}
				ts, err := r.LookupServer(context.Background(), d)
				if d == "example.org" && (err != nil || len(ts) != 5) {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent lookup: %v", err)
	}
}

// Rule 10: TLSA records, AD bit, NODATA/NXDOMAIN not errors, SERVFAIL error.
func TestLookupTLSA(t *testing.T) {
	s, r := newServer(t)
	s.AddTLSA("xmpp.example.org", 5269, 3, 1, 1, []byte{0xde, 0xad, 0xbe, 0xef})
	s.AddTLSA("xmpp.example.org", 5269, 2, 0, 1, []byte{0x01})
	s.SetSecure("example.org", true)
	recs, secure, err := r.LookupTLSA(context.Background(), "XMPP.example.org.", 5269)
	if err != nil || !secure || len(recs) != 2 {
		t.Fatalf("LookupTLSA = %v, %v, %v", recs, secure, err)
	}
	if got := recs[0]; got.Usage != 3 || got.Selector != 1 || got.MatchingType != 1 || string(got.Data) != "\xde\xad\xbe\xef" {
		t.Fatalf("record %+v", got)
	}
	if s.QueriesFor("_5269._tcp.xmpp.example.org", dns.TypeTLSA) != 1 {
		t.Fatal("TLSA not queried at _5269._tcp.xmpp.example.org")
	}
	// NODATA (name exists with other types) and NXDOMAIN: no records, no error.
	s.AddHost("_5270._tcp.xmpp.example.org", ip4a)
	for _, port := range []uint16{5270, 5999} {
		recs, secure, err = r.LookupTLSA(context.Background(), "xmpp.example.org", port)
		if err != nil || recs != nil || !secure {
			t.Fatalf("port %d: %v %v %v", port, recs, secure, err)
		}
	}
	s.SetRcode("_443._tcp.xmpp.example.org", dns.RcodeServerFailure)
	_, _, err = r.LookupTLSA(context.Background(), "xmpp.example.org", 443)
	if le := lookupErr(t, err, dnsdisco.ErrServerFailure); !le.Temporary() || le.Type != "TLSA" {
		t.Fatalf("SERVFAIL: %v", err)
	}
	n := s.Queries()
	for _, h := range []string{"bad..host", "192.0.2.1", ""} {
		_, _, err = r.LookupTLSA(context.Background(), h, 5269)
		lookupErr(t, err, dnsdisco.ErrInvalidName)
	}
	_, _, err = r.LookupTLSA(context.Background(), "ok.example", 0)
	lookupErr(t, err, dnsdisco.ErrInvalidName)
	if s.Queries() != n {
		t.Fatal("invalid TLSA names were queried")
	}
}

func TestBadServersField(t *testing.T) {
	r := &dnsdisco.Resolver{Servers: []string{"127.0.0.1:notaport"}, HostsFile: os.DevNull}
	_, err := r.LookupServer(context.Background(), "example.org")
	if !errors.Is(err, dnsdisco.ErrServerFailure) || !strings.Contains(err.Error(), "127.0.0.1:notaport") {
		t.Fatalf("err %v", err)
	}
	r = &dnsdisco.Resolver{ResolvConf: "/nonexistent/resolv.conf", HostsFile: os.DevNull}
	_, err = r.LookupServer(context.Background(), "example.org")
	if !errors.Is(err, dnsdisco.ErrServerFailure) || !strings.Contains(err.Error(), "/nonexistent/resolv.conf") {
		t.Fatalf("err %v", err)
	}
}

func TestLookupErrorText(t *testing.T) {
	e := &dnsdisco.LookupError{Domain: "example.org", Name: "_xmpp-server._tcp.example.org", Type: "SRV", Err: dnsdisco.ErrTimeout}
	if got, want := e.Error(), "dnsdisco: lookup _xmpp-server._tcp.example.org SRV (for example.org): timeout"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	e = &dnsdisco.LookupError{Domain: "", Err: dnsdisco.ErrInvalidName}
	if got, want := e.Error(), `dnsdisco: lookup "": invalid name`; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

// With Servers nil, the nameservers, timeout and attempts come from the
// ResolvConf file. Nothing listens on 127.83.83.83:53, so each attempt is
// refused at once and the error shows exactly what configuration was used.
func TestServersFromResolvConf(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("# test\nnameserver 127.83.83.83\noptions timeout:1 attempts:3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &dnsdisco.Resolver{ResolvConf: conf, HostsFile: os.DevNull}
	_, err := r.LookupServer(context.Background(), "example.org")
	lookupErr(t, err, dnsdisco.ErrTimeout)
	if msg := err.Error(); !strings.Contains(msg, "127.83.83.83:53 after 3 attempts of 1s") {
		t.Fatalf("error %q does not show resolv.conf's server, attempts and timeout", msg)
	}
	// Explicit fields win over the file.
	r = &dnsdisco.Resolver{ResolvConf: conf, Servers: []string{"127.83.83.84"}, Timeout: 2 * time.Second, Attempts: 1, HostsFile: os.DevNull}
	_, err = r.LookupServer(context.Background(), "example.org")
	if msg := err.Error(); !strings.Contains(msg, "127.83.83.84:53 after 1 attempts of 2s") {
		t.Fatalf("error %q does not show the explicit Servers, Attempts and Timeout", msg)
	}
}

// A domain the operator put in the hosts file stays reachable when no DNS
// server answers at all; a domain not listed there still fails.
func TestHostsFileDomainWithoutDNS(t *testing.T) {
	addr, _ := blackhole(t)
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.7 partner.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &dnsdisco.Resolver{Servers: []string{addr}, HostsFile: hosts, Timeout: 50 * time.Millisecond, Attempts: 1}
	ts, err := r.LookupServer(context.Background(), "partner.example")
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].Host != "partner.example" || ts[0].Port != 5269 || ts[0].DirectTLS ||
		len(ts[0].Addrs) != 1 || ts[0].Addrs[0] != netip.MustParseAddr("127.0.0.7") {
		t.Fatalf("targets %+v", ts)
	}
	_, err = r.LookupServer(context.Background(), "other.example")
	lookupErr(t, err, dnsdisco.ErrTimeout)
}

// LookupHost: a configured server (proxy FQDN) is resolved without any SRV
// query, with its own port or the default one; bad input queries nothing.
func TestLookupHost(t *testing.T) {
	s, r := newServer(t)
	s.AddHost("proxy.example.net", ip4a, ip6a)
	ctx := context.Background()
	for _, tc := range []struct {
		in    string
		def   uint16
		host  string
		port  uint16
		addrs []netip.Addr
	}{
		{"proxy.example.net", 0, "proxy.example.net", 5269, []netip.Addr{ip6a, ip4a}},
		{"Proxy.Example.NET.", 5270, "proxy.example.net", 5270, []netip.Addr{ip6a, ip4a}},
		{"proxy.example.net:15269", 5270, "proxy.example.net", 15269, []netip.Addr{ip6a, ip4a}},
		{"192.0.2.2", 0, "192.0.2.2", 5269, []netip.Addr{ip4b}},
		{"192.0.2.2:7000", 0, "192.0.2.2", 7000, []netip.Addr{ip4b}},
		{"[2001:db8::1]:7001", 0, "2001:db8::1", 7001, []netip.Addr{ip6a}},
		{"2001:db8::1", 0, "2001:db8::1", 5269, []netip.Addr{ip6a}},
	} {
		ts, err := r.LookupHost(ctx, tc.in, tc.def)
		if err != nil {
			t.Fatalf("LookupHost(%q): %v", tc.in, err)
		}
		if len(ts) != 1 || ts[0].Host != tc.host || ts[0].Port != tc.port || ts[0].DirectTLS || ts[0].Secure {
			t.Fatalf("LookupHost(%q) = %+v", tc.in, ts)
		}
		if len(ts[0].Addrs) != len(tc.addrs) {
			t.Fatalf("LookupHost(%q) addrs %v, want %v", tc.in, ts[0].Addrs, tc.addrs)
		}
		for i, a := range tc.addrs {
			if ts[0].Addrs[i] != a {
				t.Fatalf("LookupHost(%q) addrs %v, want %v", tc.in, ts[0].Addrs, tc.addrs)
			}
		}
	}
	for _, name := range []string{"_xmpp-server._tcp.proxy.example.net", "_xmpps-server._tcp.proxy.example.net"} {
		if n := s.QueriesFor(name, dns.TypeSRV); n != 0 {
			t.Fatalf("%d SRV queries for %s", n, name)
		}
	}
	before := s.Queries()
	for _, bad := range []string{"", "bad host", "proxy.example.net:0", "proxy.example.net:http", "proxy.example.net:70000", "a:b:c"} {
		_, err := r.LookupHost(ctx, bad, 0)
		lookupErr(t, err, dnsdisco.ErrInvalidName)
	}
	if n := s.Queries() - before; n != 0 {
		t.Fatalf("%d queries for invalid input", n)
	}
	// Like an override target: a host without address is ErrNoAddress.
	_, err := r.LookupHost(ctx, "missing.example.net", 0)
	lookupErr(t, err, dnsdisco.ErrNoAddress)
}
