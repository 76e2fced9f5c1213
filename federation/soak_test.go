package federation_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/federation/federationtest"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
	"github.com/xmppfed/xmppfed/translate"
)

// TestSoak (issue 9, "Load and soak") runs a host federation.Server
// against N fake remote domains (federationtest, one process, loopback),
// each with a few users. Every remote user and its host contact first
// subscribe to each other (auto-approved: every domain is a Federated
// partner, so notes travel); then, at a bounded rate for a duration, remote
// users send messages and directed presence to the host and host users
// send messages and broadcast presence to their remote watchers; then the
// last stanzas drain and everything closes.
//
// Every tracked stanza carries a unique slot number and its send time in
// its body or note; each side counts what it receives in fixed-size
// tables. The test fails on a stanza lost (neither delivered nor bounced),
// a bounce (none is expected), a duplicate, a stanza delivered to the
// wrong user or altered, a Send refused, a goroutine left after Close,
// and, in runs of a minute or more, RSS growing by more than
// soakRSSBound between the middle and last thirds of the load phase.
// Latencies and rates are reported, never asserted.
//
// The environment sizes it: XMPPFED_SOAK_DOMAINS (20), XMPPFED_SOAK_USERS
// per domain (3), XMPPFED_SOAK_DURATION (2s), XMPPFED_SOAK_RATE operations
// per second (200), XMPPFED_SOAK_DRAIN (60s, the longest wait for the last
// deliveries); XMPPFED_SOAK_OUT names a file for the samples and the
// summary as JSON lines; XMPPFED_SOAK_LOG names a file for the debug log
// of every server (for diagnosis: it is large). The full soak (about 7
// minutes, 7000 descriptors, 350 MiB; with 1000 domains an operation is
// on average 2.45 deliveries, so 2000 operations/s is about 4900
// stanzas/s):
//
//	XMPPFED_SOAK_DOMAINS=1000 XMPPFED_SOAK_DURATION=5m XMPPFED_SOAK_RATE=2000 \
//	XMPPFED_SOAK_OUT=soak.jsonl go test -run 'TestSoak$' -v -timeout 30m ./federation/
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: not in -short")
	}
	ignore := goleak.IgnoreCurrent()
	cfg := soakEnv(t)
	checkDescriptors(t, cfg)
	out := openJSONLines(t, cfg.out)
	defer func() {
		if err := out.close(); err != nil {
			t.Errorf("XMPPFED_SOAK_OUT: %v", err)
		}
	}()
	t.Logf("soak: %d domains x %d users, %d host users, %v at %d operations/s, sampled every %v",
		cfg.domains, cfg.users, cfg.hostUsers, cfg.duration, cfg.rate, cfg.sample)

	s := newSoak(t, cfg, out)
	s.start()
	s.sampler()
	s.setUp()
	s.load()
	s.drainAndClose()
	s.stopSampler()

	goleak.VerifyNone(t, ignore)
	s.report()
}

// hostDomain is the host's domain; soakDomain names remote domain i.
const hostDomain = "host.example"

func soakDomain(i int) string { return fmt.Sprintf("d%04d.soak.example", i) }

// soakAvailability is step i of the availability cycle: every state
// round-trips through the default presence table, Offline included.
func soakAvailability(i uint8) translate.Availability {
	switch i % 4 {
	case 0:
		return translate.Away
	case 1:
		return translate.DoNotDisturb
	case 2:
		return translate.Offline
	}
	return translate.Available
}

// soakOp is one operation of the load: what was sent, to whom, and the
// slots of its expected deliveries (one, or one per watcher).
type soakOp struct {
	base   uint64 // first slot
	n      uint32 // slots (deliveries expected)
	remote int32  // the remote user (-1 for a broadcast)
	host   int32  // the host user
	kind   soakKind
	avail  uint8 // the availability step of a presence
	failed bool  // Send returned an error: nothing expected
}

// soakProblem is a bad event kept for the report (the first few).
type soakProblem struct {
	what string
	n    atomic.Int64
	mu   sync.Mutex
	ex   []string
}

func (p *soakProblem) add(format string, args ...any) {
	if p.n.Add(1) > 5 {
		return
	}
	p.mu.Lock()
	p.ex = append(p.ex, fmt.Sprintf(format, args...))
	p.mu.Unlock()
}

func (p *soakProblem) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%d %s (first: %s)", p.n.Load(), p.what, strings.Join(p.ex, "; "))
}

// soak is the state of one TestSoak run.
type soak struct {
	t      *testing.T
	cfg    soakConfig
	out    *jsonLines
	origin time.Time
	ctx    context.Context // ends when the test ends
	cancel context.CancelFunc

	env       *federationtest.Env
	srv       *federation.Server
	serveDone chan error
	closeOnce sync.Once
	backend   *soakBackend
	logger    *slog.Logger // XMPPFED_SOAK_LOG, or nil
	metrics   soakMetrics
	// atLoad and atClose are the host's metrics when the load starts and
	// when Close starts.
	atLoad, atClose soakStreams

	// Fixed once set up (read concurrently afterwards).
	hostJIDs    []jid.JID // bare, by host user index
	remote      []*federationtest.User
	domains     []*federationtest.Domain
	remoteBare  []jid.JID // bare, by remote user index g
	domainIndex map[string]int
	watchers    []uint32 // per host user: its remote watchers (g % hostUsers == k)

	// The load: ops written by the driver before their Send; nOps
	// publishes them to the receivers.
	ops   []soakOp
	nOps  atomic.Int64
	slots uint64 // the driver's next slot

	sent      atomic.Int64 // slots whose Send succeeded
	delivered atomic.Int64 // distinct slots delivered
	bounced   atomic.Int64 // distinct slots bounced
	delivBits bitset
	bounceBit bitset
	lat       [soakKinds]histogram

	// Subscription set-up, by remote user: the remote user was told its
	// host contact approved it, and the host was told the remote user
	// approved.
	remoteSees, hostSees bitset
	untracked            atomic.Int64 // setup stanzas (initial presence, probes, auto-approved requests)

	// unknownPresence counts Unknown presence at the host before Close: a
	// stream was lost (reported, not a failure: nothing is lost with it).
	unknownPresence soakProblem

	dups, misrouted, altered, bounces, sendErrs, remoteErrs, setupErrs soakProblem

	// Sampling.
	phase   atomic.Pointer[string]
	samples []soakSample // load phase only; guarded by sampMu
	curve   []soakSample // every sample
	sampMu  sync.Mutex
	sampWG  sync.WaitGroup
	sampEnd chan struct{}
	maxOps  int
}

func newSoak(t *testing.T, cfg soakConfig, out *jsonLines) *soak {
	s := &soak{t: t, cfg: cfg, out: out, origin: time.Now(), sampEnd: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	t.Cleanup(s.cancel)
	s.unknownPresence.what = "unknown presences before Close (streams lost)"
	s.dups.what, s.misrouted.what, s.altered.what = "duplicates", "misrouted", "altered"
	s.bounces.what, s.sendErrs.what, s.remoteErrs.what, s.setupErrs.what = "bounces", "refused sends", "remote stanza errors", "setup errors"
	remoteUsers := cfg.domains * cfg.users
	s.watchers = make([]uint32, cfg.hostUsers)
	for g := range remoteUsers {
		s.watchers[g%cfg.hostUsers]++
	}
	maxW := uint64(slices.Max(s.watchers))
	s.maxOps = int(cfg.duration.Seconds()*float64(cfg.rate)) + 1
	s.ops = make([]soakOp, s.maxOps)
	s.delivBits = newBitset(uint64(s.maxOps) * maxW)
	s.bounceBit = newBitset(uint64(s.maxOps) * maxW)
	// Write every element of the tables now, so that their pages are
	// resident from the start: the RSS curve then shows the servers, not
	// the test's tables filling in.
	for i := range s.ops {
		s.ops[i] = soakOp{remote: -1}
	}
	for i := range s.delivBits {
		s.delivBits[i].Store(0)
		s.bounceBit[i].Store(0)
	}
	s.remoteSees, s.hostSees = newBitset(uint64(remoteUsers)), newBitset(uint64(remoteUsers))
	s.setPhase("start")
	return s
}

func (s *soak) setPhase(p string) { s.phase.Store(&p) }

// now is the time since the origin (monotonic).
func (s *soak) now() time.Duration { return time.Since(s.origin) }

// checkDescriptors fails early when the domains cannot all have their
// listener and a stream each way: about 7 descriptors per domain (a
// listener, both ends of two loopback connections, and on Linux the two
// anonymous descriptors of the s2s.Server's poller of hibernated streams),
// plus a margin. 1000 domains measured 7004 at most.
func checkDescriptors(t *testing.T, cfg soakConfig) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		return // not Linux: the run says what fails
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(line, "Max open files") {
			continue
		}
		f := strings.Fields(strings.TrimPrefix(line, "Max open files"))
		if len(f) < 1 {
			return
		}
		soft, err := strconv.Atoi(f[0])
		if err != nil {
			return // unlimited
		}
		need := 7*cfg.domains + 100
		if need > soft {
			t.Fatalf("soak: %d domains need about %d descriptors, RLIMIT_NOFILE is %d: at most %d domains fit",
				cfg.domains, need, soft, (soft-100)/7)
		}
		t.Logf("soak: descriptors: about %d needed, limit %d", need, soft)
		return
	}
}

// start creates the Env, the host Server and the remote domains.
func (s *soak) start() {
	t, cfg := s.t, s.cfg
	s.env = federationtest.NewEnv(t)
	if cfg.log != "" {
		f, err := os.Create(cfg.log)
		if err != nil {
			t.Fatalf("XMPPFED_SOAK_LOG: %v", err)
		}
		t.Cleanup(func() { _ = f.Close() }) // after the Env's Close and the host's
		s.logger = slog.New(slog.NewTextHandler(&lockedWriter{w: f}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s.backend = &soakBackend{users: make(map[string]bool), s: s}
	for k := range cfg.hostUsers {
		j := jid.MustParse(fmt.Sprintf("h%d@%s", k, hostDomain))
		s.hostJIDs = append(s.hostJIDs, j)
		s.backend.users[j.String()] = true
	}
	c := &policy.Config{
		// Two streams per domain, and room for a reconnection.
		Gateway: policy.Gateway{ConnectionLimit: max(policy.DefaultConnectionLimit, 4*cfg.domains)},
		Policies: []policy.AccessPolicy{
			{Name: policy.GlobalPolicy, EnableXMPPAccess: true, EnableFederationAccess: true},
		},
	}
	s.domainIndex = make(map[string]int, cfg.domains)
	for i := range cfg.domains {
		c.Partners = append(c.Partners, policy.Partner{Domain: soakDomain(i), Type: policy.Federated})
		s.domainIndex[soakDomain(i)] = i
	}
	// One resolver for every server, more patient than dnsdiscotest's
	// (500 ms, one attempt): with hundreds of domains negotiating at once
	// on a busy machine, the loopback DNS server can answer late, and a
	// lookup that times out bounces the stanzas queued for the domain
	// (remote-server-not-found), which would fail the set-up.
	res := s.env.Resolver()
	res.Timeout, res.Attempts = 2*time.Second, 3
	pol, err := policy.New(context.Background(), policy.NewMemStore(c), &policy.Options{Directory: s.backend})
	if err != nil {
		t.Fatal(err)
	}
	s.srv = &federation.Server{
		Domains:   []string{hostDomain},
		TLSConfig: s.env.TLSConfig(hostDomain),
		Verify:    s.env.Verify(),
		Resolver:  res,
		Policy:    pol,
		Backend:   s.backend,
		Metrics:   &s.metrics,
	}
	if s.logger != nil {
		s.srv.Logger = s.logger.With(slog.String("server", hostDomain))
	}
	l := s.env.Listen(hostDomain)
	s.serveDone = make(chan error, 1)
	go func() { s.serveDone <- s.srv.Serve(l) }()
	t.Cleanup(s.closeHost) // before the Env's Close (registered first)

	began := time.Now()
	for i := range cfg.domains {
		var l *slog.Logger
		if s.logger != nil {
			l = s.logger.With(slog.String("server", soakDomain(i)))
		}
		opts := []federationtest.DomainOption{
			federationtest.Sink(s.remoteStanza),
			federationtest.ConfigureServer(func(srv *s2s.Server) { srv.Resolver, srv.Logger = res, l }),
		}
		d := s.env.NewDomain(soakDomain(i), opts...)
		s.domains = append(s.domains, d)
		for j := range cfg.users {
			u := d.User("u" + strconv.Itoa(j))
			s.remote = append(s.remote, u)
			s.remoteBare = append(s.remoteBare, u.JID().Bare())
		}
	}
	t.Logf("soak: %d domains started in %v", cfg.domains, time.Since(began).Round(time.Millisecond))
}

// closeHost closes the host Server once and checks what Serve returned.
func (s *soak) closeHost() {
	s.closeOnce.Do(func() {
		if err := s.srv.Close(); err != nil {
			s.t.Errorf("Close: %v", err)
		}
		if err := <-s.serveDone; !errors.Is(err, federation.ErrServerClosed) {
			s.t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
}

// remoteIndex returns the remote user index of j, or -1.
func (s *soak) remoteIndex(j jid.JID) int {
	i, ok := s.domainIndex[j.Domainpart()]
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimPrefix(j.Localpart(), "u"))
	if err != nil || n < 0 || n >= s.cfg.users {
		return -1
	}
	return i*s.cfg.users + n
}

// hostIndex returns the host user index of j, or -1.
func (s *soak) hostIndex(j jid.JID) int {
	if j.Domainpart() != hostDomain {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimPrefix(j.Localpart(), "h"))
	if err != nil || n < 0 || n >= s.cfg.hostUsers {
		return -1
	}
	return n
}

// ---- Set-up: subscriptions both ways ----

// setUp subscribes each remote user and its host contact to each other,
// a wave of domains at a time (bounding the streams negotiated at once),
// and waits until both sides were told of the approvals.
func (s *soak) setUp() {
	t, cfg := s.t, s.cfg
	s.setPhase("setup")
	began := time.Now()
	for first := 0; first < cfg.domains; first += cfg.wave {
		last := min(first+cfg.wave, cfg.domains)
		ctx, cancel := context.WithTimeout(s.ctx, cfg.setup)
		for g := first * cfg.users; g < last*cfg.users; g++ {
			h := s.hostJIDs[g%cfg.hostUsers]
			if err := s.remote[g].Subscribe(ctx, h.String()); err != nil {
				cancel()
				t.Fatalf("setup: %s subscribe: %v", s.remoteBare[g], err)
			}
			if err := s.srv.Send(ctx, &translate.Subscription{From: h, To: s.remoteBare[g], Action: translate.Subscribe}); err != nil {
				cancel()
				t.Fatalf("setup: %s subscribe: %v", h, err)
			}
		}
		missing := s.waitSetup(ctx, first*cfg.users, last*cfg.users)
		cancel()
		if missing != "" {
			s.diagnoseSetup(first*cfg.users, last*cfg.users)
			t.Fatalf("setup: domains %d..%d not subscribed: %s; %s", first, last-1, missing, &s.setupErrs)
		}
	}
	t.Logf("soak: %d subscriptions both ways in %v", cfg.domains*cfg.users, time.Since(began).Round(time.Millisecond))
}

// waitSetup waits until every remote user in [from, to) and its contact
// see each other, and returns who does not when ctx ends first.
func (s *soak) waitSetup(ctx context.Context, from, to int) string {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var missing []string
		for g := from; g < to; g++ {
			if !s.remoteSees.has(uint64(g)) {
				missing = append(missing, s.remoteBare[g].String()+" not approved")
			}
			if !s.hostSees.has(uint64(g)) {
				missing = append(missing, s.remoteBare[g].String()+" approval not at the host")
			}
		}
		if len(missing) == 0 {
			return ""
		}
		if n := s.bounces.n.Load(); n > 0 {
			return fmt.Sprintf("%d missing, first %s; the host bounced: %s", len(missing), strings.Join(missing[:min(len(missing), 5)], ", "), &s.bounces)
		}
		for g := from; g < to; g++ {
			if errs := s.remote[g].Errors(); len(errs) > 0 {
				return fmt.Sprintf("%d missing, first %s; %s got %v: %v", len(missing), strings.Join(missing[:min(len(missing), 5)], ", "),
					s.remoteBare[g], errs[0].Err.Condition, errs[0].Err.Text)
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Sprintf("%d missing, first %s", len(missing), strings.Join(missing[:min(len(missing), 5)], ", "))
		}
	}
}

// diagnoseSetup logs, for each remote user in [from, to) whose
// subscription is not complete, what its domain and the host know.
func (s *soak) diagnoseSetup(from, to int) {
	t := s.t
	host := s.srv.Stats()
	for g := from; g < to; g++ {
		if s.remoteSees.has(uint64(g)) && s.hostSees.has(uint64(g)) {
			continue
		}
		r, h := s.remoteBare[g], s.hostJIDs[g%s.cfg.hostUsers]
		st, err := s.backend.State(context.Background(), h, r)
		var errs []string
		for _, e := range s.remote[g].Errors() {
			errs = append(errs, fmt.Sprintf("%s %s to %s: %v %v (local %v)", e.Kind, e.ID, e.From, e.Err.Condition, e.Err.Text, e.Local))
		}
		t.Logf("setup: %s (remote sees %v, host told %v): host state %v %v; errors %v",
			r, s.remoteSees.has(uint64(g)), s.hostSees.has(uint64(g)), st, err, errs)
		d := s.domains[g/s.cfg.users]
		for _, si := range d.Server().Stats().Streams {
			t.Logf("setup:   %s stream %v %s->%s auth %v in %d out %d since %v", d.Name(), si.Direction, si.Local, si.Remote, si.Auth, si.StanzasIn, si.StanzasOut, si.Since.Format(time.StampMicro))
		}
		for _, si := range host.Streams {
			if si.Remote == d.Name() {
				t.Logf("setup:   host stream %v %s->%s auth %v in %d out %d since %v", si.Direction, si.Local, si.Remote, si.Auth, si.StanzasIn, si.StanzasOut, si.Since.Format(time.StampMicro))
			}
		}
		t.Logf("setup:   %s queued %d, raw %d", d.Name(), d.Server().Stats().Queued, len(d.Raw()))
	}
}

// ---- Load ----

// load runs the operations at cfg.rate for cfg.duration, from one
// goroutine, bounded by the preallocated operation count.
func (s *soak) load() {
	cfg := s.cfg
	s.setPhase("load")
	s.atLoad = s.metrics.snapshot()
	rng := rand.New(rand.NewPCG(uint64(cfg.domains), uint64(cfg.rate)))
	availR := make([]uint8, len(s.remote))
	availH := make([]uint8, cfg.hostUsers)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	i := 0
	for i < s.maxOps && s.ctx.Err() == nil {
		el := time.Since(start)
		if el >= cfg.duration {
			break
		}
		due := min(int(el.Seconds()*float64(cfg.rate))+1, s.maxOps)
		for ; i < due; i++ {
			s.operation(i, rng, availR, availH)
		}
		<-tick.C
	}
	s.t.Logf("soak: %d operations in %v, %d deliveries expected", i, time.Since(start).Round(time.Millisecond), s.sent.Load())
}

// operation sends operation i.
func (s *soak) operation(i int, rng *rand.Rand, availR, availH []uint8) {
	cfg := s.cfg
	op := soakOp{base: s.slots, n: 1, remote: -1}
	switch r := rng.IntN(100); {
	case r < 40:
		op.kind = inMessage
	case r < 65:
		op.kind = inPresence
	case r < 95:
		op.kind = outMessage
	default:
		op.kind = outPresence
	}
	if op.kind == outPresence {
		op.host = int32(rng.IntN(cfg.hostUsers))
		op.n = s.watchers[op.host]
		availH[op.host]++
		op.avail = availH[op.host]
	} else {
		g := rng.IntN(len(s.remote))
		op.remote, op.host = int32(g), int32(g%cfg.hostUsers)
		if op.kind == inPresence {
			availR[g]++
			op.avail = availR[g]
		}
	}
	s.slots += uint64(op.n)
	s.ops[i] = op
	s.nOps.Store(int64(i + 1))

	ctx, cancel := context.WithTimeout(s.ctx, hang)
	defer cancel()
	text := mark(op.base, s.now())
	id := "s" + strconv.FormatUint(op.base, 10)
	h := s.hostJIDs[op.host]
	var err error
	switch op.kind {
	case inMessage:
		err = s.remote[op.remote].Send(ctx, &translate.Message{To: h, ID: id, Body: text})
	case inPresence:
		err = s.remote[op.remote].Send(ctx, &translate.Presence{To: h, Availability: soakAvailability(op.avail), Note: text})
	case outMessage:
		err = s.srv.Send(ctx, &translate.Message{From: h, To: s.remoteBare[op.remote], ID: id, Body: text})
	case outPresence:
		err = s.srv.Send(ctx, &translate.Presence{From: h, Availability: soakAvailability(op.avail), Note: text})
	}
	if err != nil {
		s.ops[i].failed = true
		s.sendErrs.add("%v op %d: %v", op.kind, i, err)
		return
	}
	s.sent.Add(int64(op.n))
}

// opOf returns the operation holding slot.
func (s *soak) opOf(slot uint64) (soakOp, bool) {
	n := int(s.nOps.Load())
	i, found := slices.BinarySearchFunc(s.ops[:n], slot, func(o soakOp, slot uint64) int {
		switch {
		case slot < o.base:
			return 1
		case slot >= o.base+uint64(o.n):
			return -1
		}
		return 0
	})
	if !found {
		return soakOp{}, false
	}
	return s.ops[i], true
}

// deliver counts slot delivered, sent at sent.
func (s *soak) deliver(slot uint64, kind soakKind, sent time.Duration) {
	if s.delivBits.set(slot) {
		s.dups.add("%v slot %d", kind, slot)
		return
	}
	s.delivered.Add(1)
	s.lat[kind].add(s.now() - sent)
}

// ---- What arrives ----

// hostMessage is a message delivered to the host's Backend.
func (s *soak) hostMessage(m *translate.Message) {
	slot, sent, ok := parseMark(m.Body)
	if !ok {
		s.misrouted.add("untracked message %s -> %s %q", m.From, m.To, m.Body)
		return
	}
	op, ok := s.opOf(slot)
	if !ok || op.kind != inMessage || slot != op.base || s.remoteIndex(m.From) != int(op.remote) || s.hostIndex(m.To) != int(op.host) {
		s.misrouted.add("message %s -> %s slot %d (op %+v)", m.From, m.To, slot, op)
		return
	}
	if m.ID != "s"+strconv.FormatUint(slot, 10) {
		s.altered.add("message slot %d id %q", slot, m.ID)
	}
	s.deliver(slot, inMessage, sent)
}

// hostPresence is a presence delivered to the host's Backend.
func (s *soak) hostPresence(p *translate.Presence) {
	if p.Availability == translate.Unknown {
		// A stream with p's domain closed: expected at Close only.
		if *s.phase.Load() == "close" {
			s.untracked.Add(1)
		} else {
			s.unknownPresence.add("%s -> %s in phase %s", p.From, p.To, *s.phase.Load())
		}
		return
	}
	slot, sent, ok := parseMark(p.Note)
	if !ok {
		s.untracked.Add(1)
		return
	}
	op, ok := s.opOf(slot)
	if !ok || op.kind != inPresence || slot != op.base || s.remoteIndex(p.From) != int(op.remote) || s.hostIndex(p.To) != int(op.host) {
		s.misrouted.add("presence %s -> %s slot %d (op %+v)", p.From, p.To, slot, op)
		return
	}
	if p.Availability != soakAvailability(op.avail) {
		s.altered.add("presence slot %d is %v, sent %v", slot, p.Availability, soakAvailability(op.avail))
	}
	s.deliver(slot, inPresence, sent)
}

// hostSubscription is a subscription stanza delivered to the host.
func (s *soak) hostSubscription(sub *translate.Subscription) {
	g := s.remoteIndex(sub.From)
	switch {
	case g < 0 || s.hostIndex(sub.To) != g%s.cfg.hostUsers:
		s.setupErrs.add("subscription %v %s -> %s", sub.Action, sub.From, sub.To)
	case sub.Action == translate.Subscribed:
		s.hostSees.set(uint64(g))
	default:
		s.untracked.Add(1) // the auto-approved subscribe
	}
}

// hostBounce is a value the host's Server handed back: counted, and its
// slot marked (for a broadcast presence, the slot of the watcher it was
// for).
func (s *soak) hostBounce(v translate.Stanza, reason stanza.Error) {
	s.bounces.add("%T %v", v, reason.Condition)
	var text string
	var to jid.JID
	switch v := v.(type) {
	case *translate.Message:
		text, to = v.Body, v.To
	case *translate.Presence:
		text, to = v.Note, v.To
	}
	slot, _, ok := parseMark(text)
	if !ok {
		return
	}
	if op, found := s.opOf(slot); found && op.kind == outPresence {
		if g := s.remoteIndex(to); g >= 0 {
			slot += uint64(g / s.cfg.hostUsers)
		}
	}
	if slot < uint64(len(s.bounceBit))*64 && !s.bounceBit.set(slot) {
		s.bounced.Add(1)
	}
}

// remoteStanza is the remote domains' Sink: what arrives for a remote
// user.
func (s *soak) remoteStanza(u *federationtest.User, v translate.Stanza) {
	g := s.remoteIndex(u.JID())
	if g < 0 {
		s.misrouted.add("stanza for unknown remote user %s", u.JID())
		return
	}
	k := g % s.cfg.hostUsers
	switch v := v.(type) {
	case *translate.Subscription:
		if s.hostIndex(v.From) != k {
			s.setupErrs.add("subscription %v %s -> %s", v.Action, v.From, v.To)
			return
		}
		switch v.Action {
		case translate.Subscribe:
			// The scripted remote user approves its host contact.
			ctx, cancel := context.WithTimeout(s.ctx, hang)
			defer cancel()
			if err := u.Approve(ctx, v.From.Bare().String()); err != nil {
				s.setupErrs.add("%s approving %s: %v", u.JID(), v.From, err)
			}
		case translate.Subscribed:
			s.remoteSees.set(uint64(g))
		default:
			s.setupErrs.add("subscription %v %s -> %s", v.Action, v.From, v.To)
		}
	case *translate.Probe:
		s.untracked.Add(1)
	case *translate.Message:
		slot, sent, ok := parseMark(v.Body)
		if !ok {
			s.misrouted.add("untracked message %s -> %s %q", v.From, v.To, v.Body)
			return
		}
		op, ok := s.opOf(slot)
		if !ok || op.kind != outMessage || slot != op.base || int(op.remote) != g || s.hostIndex(v.From) != int(op.host) {
			s.misrouted.add("message %s -> %s slot %d (op %+v)", v.From, v.To, slot, op)
			return
		}
		if v.ID != "s"+strconv.FormatUint(slot, 10) {
			s.altered.add("message slot %d id %q", slot, v.ID)
		}
		s.deliver(slot, outMessage, sent)
	case *translate.Presence:
		base, sent, ok := parseMark(v.Note)
		if !ok {
			s.untracked.Add(1) // the host's presence sent with its approval
			return
		}
		op, ok := s.opOf(base)
		if !ok || op.kind != outPresence || base != op.base || int(op.host) != k || s.hostIndex(v.From) != k {
			s.misrouted.add("presence %s -> %s slot %d (op %+v)", v.From, v.To, base, op)
			return
		}
		if v.Availability != soakAvailability(op.avail) {
			s.altered.add("presence slot %d is %v, sent %v", base, v.Availability, soakAvailability(op.avail))
		}
		s.deliver(base+uint64(g/s.cfg.hostUsers), outPresence, sent)
	}
}

// ---- Drain and close ----

// drainAndClose waits (bounded) until every slot sent is delivered or
// bounced, then closes the host and the Env.
func (s *soak) drainAndClose() {
	t := s.t
	s.setPhase("drain")
	began := time.Now()
	deadline := time.NewTimer(s.cfg.drain)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
wait:
	for s.delivered.Load()+s.bounced.Load() < s.sent.Load() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Logf("soak: drain: %d of %d slots not delivered after %v", s.sent.Load()-s.delivered.Load()-s.bounced.Load(), s.sent.Load(), s.cfg.drain)
			break wait
		}
	}
	t.Logf("soak: drained in %v", time.Since(began).Round(time.Millisecond))
	s.setPhase("close")
	s.atClose = s.metrics.snapshot()
	s.closeHost()
	s.env.Close()
	for _, u := range s.remote {
		for _, e := range u.Errors() {
			s.remoteErrs.add("%s %s id %s from %s: %v (local %v)", e.To, e.Kind, e.ID, e.From, e.Err.Condition, e.Local)
		}
	}
}

// ---- Sampling ----

// sampler records a sample every cfg.sample until stopSampler; it stops
// by itself after a bounded number of samples.
func (s *soak) sampler() {
	limit := int((s.cfg.setup*time.Duration(s.cfg.domains/s.cfg.wave+1)+s.cfg.duration+s.cfg.drain)/s.cfg.sample) + 10
	s.sampWG.Go(func() {
		tick := time.NewTicker(s.cfg.sample)
		defer tick.Stop()
		var lastDelivered int64
		last := time.Now()
		for range limit {
			select {
			case <-tick.C:
			case <-s.sampEnd:
				return
			}
			phase := *s.phase.Load()
			x := takeSample(phase, s.now())
			x.Sent, x.Delivered = s.sent.Load(), s.delivered.Load()
			now := time.Now()
			x.PerSecond = float64(x.Delivered-lastDelivered) / now.Sub(last).Seconds()
			lastDelivered, last = x.Delivered, now
			if phase == "load" || phase == "drain" {
				st := s.srv.Stats()
				x.Queued, x.Streams = st.Queued, len(st.Streams)
			}
			s.out.write(x)
			s.sampMu.Lock()
			s.curve = append(s.curve, x)
			if phase == "load" {
				s.samples = append(s.samples, x)
			}
			s.sampMu.Unlock()
		}
	})
}

func (s *soak) stopSampler() {
	close(s.sampEnd)
	s.sampWG.Wait()
}

// ---- Report ----

// soakSummary is the last JSON line.
type soakSummary struct {
	Summary    bool               `json:"summary"`
	Domains    int                `json:"domains"`
	Users      int                `json:"users_per_domain"`
	HostUsers  int                `json:"host_users"`
	Duration   float64            `json:"duration_s"`
	Rate       int                `json:"operations_per_s"`
	Operations int64              `json:"operations"`
	Sent       int64              `json:"sent"`
	Delivered  int64              `json:"delivered"`
	Bounced    int64              `json:"bounced"`
	Lost       int64              `json:"lost"`
	Duplicates int64              `json:"duplicates"`
	Untracked  int64              `json:"untracked"`
	Unknown    int64              `json:"unknown_presence"`
	Latency    map[string]latency `json:"latency"`
	AtLoad     soakStreams        `json:"host_at_load"`
	AtClose    soakStreams        `json:"host_at_close"`
	Final      soakStreams        `json:"host_final"`
	RSSMiddle  float64            `json:"rss_middle_kib,omitempty"`
	RSSLast    float64            `json:"rss_last_kib,omitempty"`
}

// report checks the counts and logs the curve and latencies.
func (s *soak) report() {
	t, cfg := s.t, s.cfg
	// Lost: slots of operations sent that were neither delivered nor
	// bounced, by kind.
	var lost [soakKinds]int64
	var lostEx []string
	n := int(s.nOps.Load())
	for _, op := range s.ops[:n] {
		if op.failed {
			continue
		}
		for i := range uint64(op.n) {
			slot := op.base + i
			if s.delivBits.has(slot) || s.bounceBit.has(slot) {
				continue
			}
			lost[op.kind]++
			if len(lostEx) < 10 {
				to := "watcher " + strconv.FormatUint(i, 10)
				if op.remote >= 0 {
					to = s.remoteBare[op.remote].String()
				}
				lostEx = append(lostEx, fmt.Sprintf("%v slot %d %s/%s", op.kind, slot, s.hostJIDs[op.host], to))
			}
		}
	}
	var totalLost int64
	for k, l := range lost {
		if l > 0 {
			t.Errorf("soak: %d %v lost (%s)", l, soakKind(k), soakKind(k).direction())
		}
		totalLost += l
	}
	if len(lostEx) > 0 {
		t.Errorf("soak: lost, first: %s", strings.Join(lostEx, "; "))
	}
	for _, p := range []*soakProblem{&s.bounces, &s.dups, &s.misrouted, &s.altered, &s.sendErrs, &s.remoteErrs, &s.setupErrs} {
		if p.n.Load() > 0 {
			t.Errorf("soak: %s", p)
		}
	}

	// The curve.
	s.sampMu.Lock()
	curve, samples := s.curve, s.samples
	s.sampMu.Unlock()
	t.Logf("soak: curve (t, phase, RSS MiB, heap in use MiB, goroutines, descriptors, delivered/s, host streams, queued):")
	maxFDs := 0
	for _, x := range curve {
		t.Logf("  %7.1fs %-5s %7.1f %7.1f %6d %6d %8.0f %5d %5d", x.Elapsed, x.Phase, float64(x.RSSKiB)/1024,
			float64(x.HeapInuse)/(1<<20), x.Goroutines, x.FDs, x.PerSecond, x.Streams, x.Queued)
		maxFDs = max(maxFDs, x.FDs)
	}
	t.Logf("soak: at most %d descriptors open", maxFDs)
	sum := soakSummary{
		Summary: true, Domains: cfg.domains, Users: cfg.users, HostUsers: cfg.hostUsers,
		Duration: cfg.duration.Seconds(), Rate: cfg.rate, Operations: int64(n),
		Sent: s.sent.Load(), Delivered: s.delivered.Load(), Bounced: s.bounced.Load(),
		Lost: totalLost, Duplicates: s.dups.n.Load(), Untracked: s.untracked.Load(), Unknown: s.unknownPresence.n.Load(),
		Latency: make(map[string]latency),
		AtLoad:  s.atLoad, AtClose: s.atClose, Final: s.metrics.snapshot(),
	}
	var dirs [2]histogram
	for k := range soakKinds {
		sum.Latency[k.String()] = s.lat[k].summary()
		dirs[k/2].merge(&s.lat[k])
	}
	sum.Latency["in"], sum.Latency["out"] = dirs[0].summary(), dirs[1].summary()
	for _, k := range []string{"in", "out", "in-message", "in-presence", "out-message", "out-presence"} {
		t.Logf("soak: latency %-12s %v", k, sum.Latency[k])
	}
	t.Logf("soak: %d operations, %d deliveries expected, %d delivered, %d bounced, %d lost, %d duplicates; %d setup and close stanzas",
		n, sum.Sent, sum.Delivered, sum.Bounced, totalLost, sum.Duplicates, sum.Untracked)
	t.Logf("soak: host streams: %d opened and %d closed before the load, %d and %d by Close, %d and %d in all; %d failed to open; %d stanzas in, %d out; %d bounced, %d denied; largest queue %d",
		sum.AtLoad.Opened, sum.AtLoad.Closed, sum.AtClose.Opened, sum.AtClose.Closed, sum.Final.Opened, sum.Final.Closed,
		sum.Final.Failed, sum.Final.StanzasIn, sum.Final.StanzasOut, sum.Final.Bounced, sum.Final.Denied, sum.Final.MaxQueue)
	if sum.Unknown > 0 {
		t.Logf("soak: %s", &s.unknownPresence)
	}

	// RSS: the last third of the load phase against the middle third.
	if middle, last, ok := thirds(samples); ok {
		sum.RSSMiddle, sum.RSSLast = middle, last
		growth := last/middle - 1
		t.Logf("soak: RSS mean, middle third %.1f MiB, last third %.1f MiB (%+.1f%%; bound %.0f%%, asserted from %v)",
			middle/1024, last/1024, 100*growth, 100*cfg.rssBound, cfg.rssAssertAt)
		if cfg.duration >= cfg.rssAssertAt && growth > cfg.rssBound {
			t.Errorf("soak: RSS grew %.1f%% between the middle and last thirds of the load (bound %.0f%%)", 100*growth, 100*cfg.rssBound)
		}
	}
	s.out.write(sum)
}
