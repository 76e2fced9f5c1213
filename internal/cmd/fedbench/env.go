package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
	"github.com/xmppfed/xmppfed/translate"
)

// env is one run's world: a test CA and a loopback DNS server.
type env struct {
	ca    *certs.TestCA
	dns   *dnsdiscotest.Server
	res   *dnsdisco.Resolver // shared by every Server of the run
	stops []func()
}

func newEnv() (*env, error) {
	ca, err := certs.NewTestCA()
	if err != nil {
		return nil, err
	}
	e := &env{ca: ca, dns: dnsdiscotest.NewServer()}
	e.res = e.dns.Resolver()
	e.res.Timeout, e.res.Attempts = 2*time.Second, 3
	return e, nil
}

// close stops every server started in e, last first, then the DNS server.
func (e *env) close() {
	for _, f := range slices.Backward(e.stops) {
		f()
	}
	e.stops = nil
	e.dns.Close()
}

// resolver returns the resolver every Server of the run shares: e's DNS
// server, with more patience than dnsdiscotest's (500 ms, one attempt),
// since a lost answer would be a bounce, not a measurement.
func (e *env) resolver() *dnsdisco.Resolver { return e.res }

// warmDNS looks the domains up once, one at a time, so that their SRV and
// address records are in the shared resolver's cache (TTL 300 s).
func (e *env) warmDNS(ctx context.Context, domains []string) error {
	for _, d := range domains {
		if _, err := e.res.LookupServer(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

// newPolicy returns an open-federation policy with set for every remote
// domain, partner type pt, XMPP access for every user, and no rate or
// connection limit (the benchmark measures the library, not its pacing).
func newPolicy(set policy.Settings, pt policy.PartnerType, dir policy.Directory) (*policy.Policy, error) {
	c := &policy.Config{
		Gateway: policy.Gateway{
			OpenFederation:         true,
			DefaultPartner:         policy.Partner{Type: pt, Settings: set},
			StanzasPerSecond:       -1,
			ConnectionLimit:        -1,
			PartnerConnectionLimit: -1,
		},
		Policies: []policy.AccessPolicy{
			{Name: policy.GlobalPolicy, EnableXMPPAccess: true, EnableFederationAccess: true},
		},
	}
	return policy.New(context.Background(), policy.NewMemStore(c), &policy.Options{Directory: dir})
}

// listen opens a loopback listener and publishes it in DNS for domains,
// as _xmpps-server (direct TLS, XEP-0368) or _xmpp-server, with the
// target host "xmpp."+target.
func (e *env) listen(target string, domains []string, direct bool) (net.Listener, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	service := "_xmpp-server._tcp"
	if direct {
		service = "_xmpps-server._tcp"
	}
	for _, d := range domains {
		e.dns.AddSRV(service, d, "xmpp."+target, port, 0, 0)
	}
	e.dns.AddHost("xmpp."+target, netip.MustParseAddr("127.0.0.1"))
	return l, nil
}

// serve runs serve(l) in a goroutine and registers its stop.
func (e *env) serve(l net.Listener, serve func(net.Listener) error, closeSrv func() error) {
	done := make(chan error, 1)
	go func() { done <- serve(l) }()
	e.stops = append(e.stops, func() {
		_ = closeSrv()
		<-done
	})
}

// s2sNode starts an s2s.Server for domains (the first names the DNS
// target) with cert.
func (e *env) s2sNode(domains []string, cert tls.Certificate, set policy.Settings, direct bool, mod func(*s2s.Server)) (*s2s.Server, error) {
	pol, err := newPolicy(set, policy.Federated, nil)
	if err != nil {
		return nil, err
	}
	srv := &s2s.Server{
		Domains:   domains,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Verify:    certs.VerifyOptions{Roots: e.ca.Pool()},
		Resolver:  e.resolver(),
		Policy:    pol,
		Limits:    s2s.Limits{QueueSize: 1 << 20},
	}
	if mod != nil {
		mod(srv)
	}
	l, err := e.listen(domains[0], domains, direct)
	if err != nil {
		return nil, err
	}
	serve := srv.Serve
	if direct {
		serve = srv.ServeDirectTLS
	}
	e.serve(l, serve, srv.Close)
	return srv, nil
}

// fedNode starts a federation.Server for domain with backend b.
func (e *env) fedNode(domain string, b *sink) (*federation.Server, error) {
	pol, err := newPolicy(policy.Settings{SASL: policy.Optional}, policy.Federated, b)
	if err != nil {
		return nil, err
	}
	cert, err := e.ca.IssueDomain(domain)
	if err != nil {
		return nil, err
	}
	srv := &federation.Server{
		Domains:   []string{domain},
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Verify:    certs.VerifyOptions{Roots: e.ca.Pool()},
		Resolver:  e.resolver(),
		Policy:    pol,
		Backend:   b,
		Limits:    s2s.Limits{QueueSize: 1 << 20},
	}
	l, err := e.listen(domain, []string{domain}, false)
	if err != nil {
		return nil, err
	}
	e.serve(l, srv.Serve, srv.Close)
	return srv, nil
}

// wildcard issues a certificate for every domain one label below parent.
func (e *env) wildcard(parent string) (tls.Certificate, error) {
	return e.ca.Issue(certs.Leaf{DNSNames: []string{"*." + parent}})
}

// sink is a federation.Backend that keeps nothing: every user exists and
// is online, no roster, messages go to onMessage.
type sink struct {
	onMessage func(*translate.Message)
	onBounce  func()
	bounces   atomic.Int64
	first     atomic.Pointer[string] // the first bounce's condition
}

func (b *sink) DeliverMessage(_ context.Context, m *translate.Message) error {
	if b.onMessage != nil {
		b.onMessage(m)
	}
	return nil
}

func (b *sink) DeliverPresence(context.Context, *translate.Presence) error { return nil }

func (b *sink) DeliverSubscription(context.Context, *translate.Subscription) error { return nil }

func (b *sink) CurrentPresence(_ context.Context, user jid.JID) (*translate.Presence, error) {
	return &translate.Presence{From: user, Availability: translate.Offline}, nil
}

func (b *sink) State(context.Context, jid.JID, jid.JID) (translate.SubState, error) {
	return translate.None, nil
}

func (b *sink) SetState(context.Context, jid.JID, jid.JID, translate.SubState) error { return nil }

func (b *sink) Watchers(context.Context, jid.JID) ([]jid.JID, error) { return nil, nil }

func (b *sink) Contacts(context.Context, string) ([][2]jid.JID, error) { return nil, nil }

func (b *sink) LookupUser(context.Context, jid.JID) (policy.User, error) { return policy.User{}, nil }

func (b *sink) Bounce(_ context.Context, _ translate.Stanza, reason stanza.Error) {
	b.bounces.Add(1)
	c := reason.Error()
	b.first.CompareAndSwap(nil, &c)
	if b.onBounce != nil {
		b.onBounce()
	}
}

// firstBounce returns the condition of the first bounce ("" when none).
func (b *sink) firstBounce() string {
	if p := b.first.Load(); p != nil {
		return *p
	}
	return ""
}

// chat returns a message stanza of about 200 bytes with id.
func chat(from, to, id string) (*s2s.Stanza, error) {
	body := strings.Repeat("lorem ipsum ", 8)
	return s2s.ParseStanza([]byte(fmt.Sprintf("<message xmlns='jabber:server' from='%s' to='%s' type='chat' id='%s'><body>%s</body></message>", from, to, id, body)))
}

// procStat is a process resource snapshot.
type procStat struct {
	at      time.Time
	mem     runtime.MemStats
	cpu     time.Duration // user + system
	rss     int64         // bytes
	routine int
}

func snapshot() procStat {
	var u procStat
	runtime.ReadMemStats(&u.mem)
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		u.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	u.rss = vmRSS()
	u.routine = runtime.NumGoroutine()
	u.at = time.Now()
	return u
}

// settled waits (at most a second) for the goroutine count to stop
// changing, collects garbage, returns the freed memory to the operating
// system (so that VmRSS deltas compare in-use memory, also after earlier
// runs in the same process) and returns a snapshot.
func settled() procStat {
	last := -1
	for range 50 {
		g := runtime.NumGoroutine()
		if g == last {
			break
		}
		last = g
		time.Sleep(20 * time.Millisecond)
	}
	for range 2 {
		runtime.GC()
	}
	debug.FreeOSMemory()
	return snapshot()
}

// vmRSS returns VmRSS from /proc/self/status in bytes (0 when unknown).
func vmRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// fdMargin is the number of descriptors kept for everything but the
// streams' sockets (listeners, DNS, profiles).
const fdMargin = 256

// fitStreams returns how many loopback connections (two descriptors each,
// both ends being in this process) up to want the process can hold,
// raising RLIMIT_NOFILE (the hard limit too, which needs CAP_SYS_RESOURCE)
// when want does not fit, and a note for the report when it changed the
// limit or had to measure fewer.
func fitStreams(want int) (int, string, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, "", err
	}
	need := uint64(2*want + fdMargin)
	if r.Cur >= need {
		return want, "", nil
	}
	old := r
	r.Cur, r.Max = need, max(r.Max, need)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err == nil {
		return want, fmt.Sprintf("RLIMIT_NOFILE raised from %d (hard %d) to %d with setrlimit", old.Cur, old.Max, need), nil
	}
	// Not allowed above the hard limit: use all of it.
	r = old
	r.Cur = old.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, "", err
	}
	n := int((r.Cur - fdMargin) / 2)
	if n < 1 {
		return 0, "", fmt.Errorf("RLIMIT_NOFILE hard limit %d leaves no room for streams", old.Max)
	}
	return n, fmt.Sprintf("-n %d needs %d descriptors; RLIMIT_NOFILE hard limit is %d and setrlimit above it was refused (no CAP_SYS_RESOURCE): measured with %d connections", want, need, old.Max, n), nil
}

// wait waits for ch or ctx, naming what in the error.
func wait(ctx context.Context, ch <-chan struct{}, what string, progress func() string) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w (%s)", what, ctx.Err(), progress())
	}
}

// addNote appends n to notes unless it is there.
func addNote(notes *[]string, n string) {
	if n != "" && !slices.Contains(*notes, n) {
		*notes = append(*notes, n)
	}
}

var errBounced = errors.New("stanzas bounced")

// writeHeapProfile writes the in-use heap profile (as of the last GC) to
// name.
func writeHeapProfile(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
