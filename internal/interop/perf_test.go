//go:build interop

package interop

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/federation/federationtest"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/translate"
)

// Issue 8, scenario 2: messages through real peers, measured in one run.
//
// TestInteropPerf is a test gated on XMPPFED_INTEROP_PERF=1 rather than a
// Benchmark: it needs four paths measured side by side in one process
// with the same peers (a Benchmark's b.N drives one loop), fixed bounded
// counts, and the peers' CPU read from /proc between the paths. The gate
// keeps it out of the interop CI run (`go test -tags interop` runs every
// Test): it adds about a minute and its output is numbers, which no test
// may assert. It fails only when messages go missing or bounce.
//
//	XMPPFED_INTEROP_PERF=1 go test -tags interop -run=TestInteropPerf -count=1 -v ./internal/interop/
//
// XMPPFED_INTEROP_PERF_N (messages per path and round, default 5000),
// XMPPFED_INTEROP_PERF_WINDOW (messages outstanding, default 64),
// XMPPFED_INTEROP_PERF_ROUNDS (default 3), XMPPFED_INTEROP_PERF_LOG
// ("debug" keeps the peers' debug logs the rest of the suite configures;
// by default they log at info during the measurement) and
// XMPPFED_INTEROP_PERF_CPUPROFILE (a file name prefix: the first round of
// each path is CPU-profiled into prefix-a.pprof ... prefix-d.pprof, which
// tells xmppfed's CPU from the Go c2s clients' in this process) change the
// run.

// perfEnv reads a positive integer from the environment, bounded by hi.
func perfEnv(name string, def, hi int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return min(v, hi)
	}
	return def
}

// perfRun is one path's measurement: n numbered messages, at most window
// outstanding, each body "prefix-i-" followed by padding.
type perfRun struct {
	prefix string
	n      int
	window chan struct{}
	sent   []atomic.Int64 // send time of message i, UnixNano
	seen   []atomic.Bool
	got    atomic.Int64
	done   chan struct{}

	mu  sync.Mutex
	lat []time.Duration
}

func newPerfRun(prefix string, n, window int) *perfRun {
	return &perfRun{prefix: prefix + "-", n: n, window: make(chan struct{}, window),
		sent: make([]atomic.Int64, n), seen: make([]atomic.Bool, n), done: make(chan struct{}), lat: make([]time.Duration, 0, n)}
}

// perfPad makes the stanzas about 200 bytes on the wire.
var perfPad = strings.Repeat("lorem ipsum ", 7)

func (r *perfRun) body(i int) string { return r.prefix + strconv.Itoa(i) + "-" + perfPad }

// arrive records a body delivered at its destination; bodies of other
// runs are ignored.
func (r *perfRun) arrive(body string) {
	rest, ok := strings.CutPrefix(body, r.prefix)
	if !ok {
		return
	}
	num, _, _ := strings.Cut(rest, "-")
	i, err := strconv.Atoi(num)
	if err != nil || i < 0 || i >= r.n || r.seen[i].Swap(true) {
		return
	}
	d := time.Duration(time.Now().UnixNano() - r.sent[i].Load())
	r.mu.Lock()
	r.lat = append(r.lat, d)
	r.mu.Unlock()
	<-r.window
	if r.got.Add(1) == int64(r.n) {
		close(r.done)
	}
}

// perfSink routes deliveries to the current run.
type perfSink struct{ cur atomic.Pointer[perfRun] }

func (s *perfSink) arrive(body string) {
	if r := s.cur.Load(); r != nil {
		r.arrive(body)
	}
}

// perfBackend is a host that delivers at once: a message costs a
// look-up and a callback, nothing is recorded.
type perfBackend struct {
	*federationtest.Backend
	sink    *perfSink
	bounced atomic.Int64
}

func (b *perfBackend) DeliverMessage(_ context.Context, m *translate.Message) error {
	b.sink.arrive(m.Body)
	return nil
}

func (b *perfBackend) Bounce(context.Context, translate.Stanza, stanza.Error) { b.bounced.Add(1) }

// cpuTicks is the user+system CPU time, in clock ticks (USER_HZ, 100 on
// Linux), of every process whose command line contains dir: a peer's
// server and its wrappers.
func cpuTicks(dir string) int64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var sum int64
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmd, []byte(dir)) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after "(comm)": state is field 3, utime 14, stime 15.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		sum += u + s
	}
	return sum
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const tick = 10 * time.Millisecond // one USER_HZ clock tick

// perfResult is one path's numbers in one round.
type perfResult struct {
	path                 string
	n                    int
	wall                 time.Duration
	p50, p99             time.Duration
	self, prosody, ejabb time.Duration // CPU during the run
}

func (r perfResult) rate() float64 { return float64(r.n) / r.wall.Seconds() }

// measure sends r.n messages through send, keeping at most the window
// outstanding, and waits (bounded by limit) for all of them to arrive.
func measure(t *testing.T, sink *perfSink, r *perfRun, path string, peers map[string]*Peer, limit time.Duration, send func(ctx context.Context, body string) error) perfResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	sink.cur.Store(r)
	defer sink.cur.Store(nil)
	cpu0, pro0, ej0 := selfCPU(), cpuTicks(peers["prosody"].Dir), cpuTicks(peers["ejabberd"].Dir)
	start := time.Now()
	for i := range r.n {
		select {
		case r.window <- struct{}{}:
		case <-ctx.Done():
			t.Fatalf("%s: window still full after %v at message %d (%d arrived)", path, limit, i, r.got.Load())
		}
		r.sent[i].Store(time.Now().UnixNano())
		if err := send(ctx, r.body(i)); err != nil {
			t.Fatalf("%s: send #%d: %v", path, i, err)
		}
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		t.Fatalf("%s: %d of %d arrived within %v", path, r.got.Load(), r.n, limit)
	}
	res := perfResult{path: path, n: r.n, wall: time.Since(start), self: selfCPU() - cpu0,
		prosody: time.Duration(cpuTicks(peers["prosody"].Dir)-pro0) * tick,
		ejabb:   time.Duration(cpuTicks(peers["ejabberd"].Dir)-ej0) * tick}
	r.mu.Lock()
	slices.Sort(r.lat)
	res.p50, res.p99 = r.lat[len(r.lat)/2], r.lat[len(r.lat)*99/100]
	r.mu.Unlock()
	return res
}

// quietLogs turns the peers' debug logs down to info for the measurement:
// Prosody's configuration is rewritten and Prosody restarted (same mode,
// same data); ejabberd is told at run time.
func quietLogs(t *testing.T, pro, ej *Peer) {
	t.Helper()
	cfg := filepath.Join(pro.Dir, "prosody.cfg.lua")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	quiet := bytes.Replace(data, []byte("log = { debug = "), []byte("log = { info = "), 1)
	if bytes.Equal(quiet, data) {
		t.Fatalf("no debug log line in %s", cfg)
	}
	if err := os.WriteFile(cfg, quiet, 0o644); err != nil {
		t.Fatal(err)
	}
	pro.Restart(t, pro.Mode)
	acct, err := lookupAccount("ejabberd")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run(context.Background(), 60*time.Second, []string{"HOME=" + ej.Dir}, "setpriv",
		"--reuid="+acct.name, "--regid="+acct.name, "--init-groups",
		"ejabberdctl", "--config-dir", ej.Dir, "set_loglevel", "info"); err != nil {
		t.Fatalf("ejabberd set_loglevel: %v\n%s", err, out)
	}
}

// startPerfFed starts a federation.Server for OurDomain with both peers
// as Federated partners, no rate limit, no debug log, and perfBackend as
// the host (users ann and ben).
func startPerfFed(t *testing.T, pki *PKI, sink *perfSink) (*federation.Server, *perfBackend) {
	t.Helper()
	be := &perfBackend{Backend: new(federationtest.Backend), sink: sink}
	for _, u := range []string{HostUser, HostUser2} {
		be.AddUser(HostJID(u), policy.User{})
		be.SetPresence(HostJID(u), translate.Presence{Availability: translate.Available})
	}
	conf := &policy.Config{
		Policies: []policy.AccessPolicy{{Name: policy.GlobalPolicy, EnableXMPPAccess: true, EnableFederationAccess: true}},
		Partners: []policy.Partner{{Domain: "prosody.test", Type: policy.Federated}, {Domain: "ejabberd.test", Type: policy.Federated}},
	}
	conf.Gateway.StanzasPerSecond = -1 // the default 1000/s per partner would be the bottleneck
	pol, err := policy.New(context.Background(), policy.NewMemStore(conf), &policy.Options{Directory: be})
	if err != nil {
		t.Fatal(err)
	}
	srv := &federation.Server{
		Domains:   []string{OurDomain},
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pki.Leaf(t, OurDomain)}},
		Verify:    certs.VerifyOptions{Roots: pki.RootCAs()},
		Resolver:  &dnsdisco.Resolver{Servers: []string{DNSAddr}},
		Policy:    pol,
		Backend:   be,
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	var l net.Listener
	for range 50 {
		if l, err = net.Listen("tcp", OurAddr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", OurAddr, err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-served:
			if !errors.Is(err, federation.ErrServerClosed) {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Serve did not return")
		}
	})
	return srv, be
}

// startProfile starts a CPU profile into file; the returned function
// closes the file (after pprof.StopCPUProfile).
func startProfile(t *testing.T, file string) func() {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	return func() { _ = f.Close() }
}

// TestInteropPerf measures, in one run, messages/s and latency for
// (a) a Prosody user -> a host user through xmppfed, (b) a host user -> a
// Prosody user, (c) a host user -> an ejabberd user, and the baseline
// (d) a Prosody user -> an ejabberd user directly, with each process's
// CPU time, and logs the table and the ratios to the baseline.
func TestInteropPerf(t *testing.T) {
	if os.Getenv("XMPPFED_INTEROP_PERF") != "1" {
		t.Skip("set XMPPFED_INTEROP_PERF=1 to measure (issue 8, scenario 2)")
	}
	requireRoot(t, "prosody")
	requireRoot(t, "ejabberdctl")
	n := perfEnv("XMPPFED_INTEROP_PERF_N", 5000, 100000)
	window := perfEnv("XMPPFED_INTEROP_PERF_WINDOW", 64, 2000)
	rounds := perfEnv("XMPPFED_INTEROP_PERF_ROUNDS", 3, 10)
	const limit = 120 * time.Second // per path and round

	pki := NewPKI(t)
	StartDNS(t, Hosts())
	pro := StartProsody(t, pki, External)
	ej := StartEjabberd(t, pki, External)
	if os.Getenv("XMPPFED_INTEROP_PERF_LOG") != "debug" {
		quietLogs(t, pro, ej)
	}
	pro.Register(t, password, "alice")
	ej.Register(t, password, "bob")
	sink := new(perfSink)
	srv, be := startPerfFed(t, pki, sink)
	alice := Login(t, pro.C2SAddr(), pki.RootCAs(), "alice@prosody.test", password)
	bob := Login(t, ej.C2SAddr(), pki.RootCAs(), "bob@ejabberd.test", password)

	// The clients' messages go to the sink until the test ends.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for _, c := range []*Client{alice, bob} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case m := <-c.msgs:
					sink.arrive(m.Body)
				case <-stop:
					return
				}
			}
		}()
	}
	defer func() { close(stop); readers.Wait() }()

	aliceJ, bobJ := jid.MustParse("alice@prosody.test"), jid.MustParse("bob@ejabberd.test")
	paths := []struct {
		name string
		send func(ctx context.Context, body string) error
	}{
		{"a prosody->xmppfed host", func(ctx context.Context, body string) error {
			return alice.Send(ctx, HostJID(HostUser).String(), body)
		}},
		{"b xmppfed host->prosody", func(ctx context.Context, body string) error {
			return srv.Send(ctx, &translate.Message{From: HostJID(HostUser), To: aliceJ, Body: body})
		}},
		{"c xmppfed host->ejabberd", func(ctx context.Context, body string) error {
			return srv.Send(ctx, &translate.Message{From: HostJID(HostUser2), To: bobJ, Body: body})
		}},
		{"d prosody->ejabberd (baseline)", func(ctx context.Context, body string) error {
			return alice.Send(ctx, bobJ.String(), body)
		}},
	}
	peers := map[string]*Peer{"prosody": pro, "ejabberd": ej}
	// Warm up: every stream established, outside the measurement.
	for i, p := range paths {
		measure(t, sink, newPerfRun(fmt.Sprintf("warm%d", i), 20, 1), p.name, peers, 60*time.Second, p.send)
	}
	res := make(map[string][]perfResult)
	prof := os.Getenv("XMPPFED_INTEROP_PERF_CPUPROFILE")
	for round := range rounds {
		for i, p := range paths {
			if prof != "" && round == 0 {
				stopProfile := startProfile(t, fmt.Sprintf("%s-%c.pprof", prof, p.name[0]))
				defer stopProfile()
			}
			r := measure(t, sink, newPerfRun(fmt.Sprintf("r%dp%d", round, i), n, window), p.name, peers, limit, p.send)
			if prof != "" && round == 0 {
				pprof.StopCPUProfile()
			}
			res[p.name] = append(res[p.name], r)
		}
	}
	if b := be.bounced.Load(); b > 0 {
		t.Errorf("%d messages bounced", b)
	}
	if d := alice.Dropped() + bob.Dropped(); d > 0 {
		t.Errorf("clients dropped %d messages", d)
	}

	// The table: per path, the median round by rate, with min and max.
	var tb strings.Builder
	fmt.Fprintf(&tb, "n=%d per path and round, window=%d, rounds=%d, peer logs %s\n", n, window, rounds, map[bool]string{true: "debug", false: "info"}[os.Getenv("XMPPFED_INTEROP_PERF_LOG") == "debug"])
	fmt.Fprintf(&tb, "%-32s %9s %9s %9s %8s %8s %13s %13s %13s %7s\n", "path", "msg/s", "min", "max", "p50", "p99", "test proc µs", "prosody µs", "ejabberd µs", "ratio")
	median := func(rs []perfResult) perfResult {
		s := slices.Clone(rs)
		slices.SortFunc(s, func(a, b perfResult) int { return cmp.Compare(a.rate(), b.rate()) })
		return s[len(s)/2]
	}
	base := median(res[paths[3].name]).rate()
	for _, p := range paths {
		rs := res[p.name]
		m := median(rs)
		lo, hi := m.rate(), m.rate()
		for _, r := range rs {
			lo, hi = min(lo, r.rate()), max(hi, r.rate())
		}
		per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(m.n) }
		fmt.Fprintf(&tb, "%-32s %9.0f %9.0f %9.0f %8s %8s %13.1f %13.1f %13.1f %7.2f\n", p.name, m.rate(), lo, hi,
			m.p50.Round(10*time.Microsecond), m.p99.Round(10*time.Microsecond), per(m.self), per(m.prosody), per(m.ejabb), m.rate()/base)
	}
	fmt.Fprintf(&tb, "CPU columns: CPU time per message during the median round; test proc is this process (xmppfed, the two Go c2s clients, the DNS server); ratio is msg/s over the baseline's")
	t.Log("\n" + tb.String())
}
