package s2s_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/internal/clock"
	"github.com/xmppfed/xmppfed/internal/faultnet"
	"github.com/xmppfed/xmppfed/internal/wire"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
)

// The tests in this file inject faults (internal/faultnet) between
// Servers and count stanzas on both sides: every stanza Send accepted is
// delivered to the remote Handler or bounced to its sender, none is lost;
// duplicates are counted and reported. They assert counts, never timings:
// every wait is bounded only to turn a hang into a failure.

// tally counts, by stanza id, what each side saw.
type tally struct {
	mu      sync.Mutex
	got     map[string]int              // id -> times handed to the receiver's Handler
	bounced map[string]stanza.Condition // id -> condition of its bounce (the last one)
	nb      map[string]int              // id -> times bounced
	refused map[string]error            // id -> error Send returned (nothing queued)
	changes atomic.Int64                // any count changed
	order   []string                    // ids in the order handled
}

func newTally() *tally {
	return &tally{got: map[string]int{}, bounced: map[string]stanza.Condition{}, nb: map[string]int{}, refused: map[string]error{}}
}

func (ta *tally) handled(id string) int {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	ta.got[id]++
	ta.order = append(ta.order, id)
	ta.changes.Add(1)
	return len(ta.got)
}

func (ta *tally) bounce(_ context.Context, st *s2s.Stanza, err stanza.Error) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	ta.bounced[st.ID] = err.Condition
	ta.nb[st.ID]++
	ta.changes.Add(1)
}

func (ta *tally) refuse(id string, err error) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	ta.refused[id] = err
	ta.changes.Add(1)
}

// result compares both sides for ids.
type result struct {
	delivered, bounced, refused, lost int
	duplicates                        int // extra deliveries
	both                              int // bounced AND delivered (the sender was told wrong)
	conds                             map[stanza.Condition]int
	lostIDs                           []string
}

func (ta *tally) result(ids []string) result {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	r := result{conds: map[stanza.Condition]int{}}
	for _, id := range ids {
		d, b := ta.got[id], ta.nb[id]
		_, ref := ta.refused[id]
		switch {
		case d > 0:
			r.delivered++
			r.duplicates += d - 1
			if b > 0 {
				r.both++
			}
		case b > 0:
			r.bounced++
			r.conds[ta.bounced[id]]++
		case ref:
			r.refused++
		default:
			r.lost++
			if len(r.lostIDs) < 10 {
				r.lostIDs = append(r.lostIDs, id)
			}
		}
	}
	return r
}

func (r result) String() string {
	return fmt.Sprintf("delivered %d, bounced %d %v, refused by Send %d, lost %d %v, duplicates %d, bounced but delivered %d",
		r.delivered, r.bounced, r.conds, r.refused, r.lost, r.lostIDs, r.duplicates, r.both)
}

// settle waits until every id is accounted for, or until nothing changed
// for quiet while the sender's pool is idle (what is missing then is
// lost), bounded by limit.
func (ta *tally) settle(t *testing.T, sender *s2s.Server, ids []string, quiet, limit time.Duration) result {
	t.Helper()
	deadline := time.Now().Add(limit)
	last, since := ta.changes.Load(), time.Now()
	for time.Now().Before(deadline) {
		r := ta.result(ids)
		if r.lost == 0 {
			return r
		}
		if c := ta.changes.Load(); c != last {
			last, since = c, time.Now()
		} else if _, dialing := s2s.PoolState(sender); dialing == 0 && sender.Queued() == 0 && time.Since(since) >= quiet {
			return r
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ta.result(ids)
}

// fnode is a Server whose listener injects faults.
type fnode struct {
	srv      *s2s.Server
	l        *faultnet.Listener
	domain   string
	onHandle func(n int) // called with the count of distinct ids handled
}

// faultNode starts a Server for domain (open federation, unpaced) on a
// faultnet listener, with the SRV record pointing at it; handled stanzas
// and bounces go to ta.
func (h *harness) faultNode(domain string, ta *tally, mod func(*s2s.Server), edit func(*policy.Config)) *fnode {
	t := h.t
	cert, err := h.ca.IssueDomain(domain)
	if err != nil {
		t.Fatal(err)
	}
	n := &fnode{domain: domain}
	n.srv = &s2s.Server{
		Domains:   []string{domain},
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Verify:    certs.VerifyOptions{Roots: h.ca.Pool()},
		Resolver:  h.dns.Resolver(),
		Policy: s2s.NewPolicy(t, s2s.CommonSettings(), func(c *policy.Config) {
			unpaced(c)
			if edit != nil {
				edit(c)
			}
		}),
		Handler: s2s.HandlerFunc(func(_ context.Context, st *s2s.Stanza) error {
			k := ta.handled(st.ID)
			if n.onHandle != nil {
				n.onHandle(k)
			}
			return nil
		}),
		Bounce: ta.bounce,
	}
	if mod != nil {
		mod(n.srv)
	}
	nl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.l = faultnet.WrapListener(nl, nil, nil)
	h.dns.AddSRV("_xmpp-server._tcp", domain, "xmpp."+domain, uint16(nl.Addr().(*net.TCPAddr).Port), 0, 0)
	h.dns.AddHost("xmpp."+domain, netip.MustParseAddr("127.0.0.1"))
	done := make(chan error, 1)
	go func() { done <- n.srv.Serve(n.l) }()
	t.Cleanup(func() {
		_ = n.srv.Close()
		if err := <-done; !errors.Is(err, s2s.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return n
}

func idMsg(t testing.TB, from, to, id string) *s2s.Stanza {
	t.Helper()
	st, err := s2s.ParseStanza([]byte("<message xmlns='jabber:server' type='chat' from='" + from + "' to='" + to + "' id='" + id + "'><body>" + id + "</body></message>"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// sendN sends n messages with ids prefix0..prefix(n-1) and returns the
// ids; an error from Send is recorded as a refusal (the sender knows).
func sendN(t *testing.T, srv *s2s.Server, ta *tally, from, to, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		ids[i] = prefix + strconv.Itoa(i)
		if err := srv.Send(context.Background(), idMsg(t, from, to, ids[i])); err != nil {
			ta.refuse(ids[i], err)
		}
	}
	return ids
}

// goroutineBase returns the goroutine count once the servers run (Stats
// starts each Server's own goroutines, such as its policy watcher, which
// Serve starts asynchronously).
func goroutineBase(srvs ...*s2s.Server) int {
	for _, s := range srvs {
		s.Stats()
	}
	return runtime.NumGoroutine()
}

// goroutineDump is every goroutine's stack, for a failure message.
func goroutineDump() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// goroutinesSettle waits (bounded) until at most base goroutines run and
// returns the count.
func goroutinesSettle(base int) int {
	n := runtime.NumGoroutine()
	for range 500 {
		if n = runtime.NumGoroutine(); n <= base {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

// TestFaultRemoteDiesMidFlow: two Servers over loopback TLS; the
// receiving server's connections are killed (TCP reset, both directions)
// while 10 000 stanzas are queued and in flight. Every stanza must be
// delivered after the reconnect or bounced to its sender. Between two
// Servers XEP-0198 is on (the receiving side offers it, the initiating
// side enables it): what was written to the dead connection but not
// acknowledged is sent again on the next stream, and the receiver drops
// what it had handled already (dedupe.go), so nothing is lost and
// nothing is handled twice.
func TestFaultRemoteDiesMidFlow(t *testing.T) {
	h := newHarness(t)
	ta := newTally()
	b := h.faultNode("b.example", ta, nil, nil)
	a := h.faultNode("a.example", ta, nil, nil)
	const n, killAt = 10000, 2000
	var once sync.Once
	b.onHandle = func(k int) {
		if k == killAt {
			once.Do(b.l.KillAll)
		}
	}
	ids := sendN(t, a.srv, ta, "u@a.example/r", "v@b.example", "m", n)
	r := ta.settle(t, a.srv, ids, 2*time.Second, 60*time.Second)
	t.Logf("remote died after %d handled (XEP-0198 on): %s; connections accepted by b: %d", killAt, r, len(b.l.Conns()))
	if r.lost != 0 {
		t.Errorf("lost %d stanzas: written to the dead connection, neither delivered nor bounced", r.lost)
	}
	if r.both != 0 {
		t.Errorf("%d stanzas bounced although delivered", r.both)
	}
	for c := range r.conds {
		if c != stanza.RemoteServerTimeout {
			t.Errorf("bounce condition %v, want remote-server-timeout", c)
		}
	}
}

// TestFaultRemoteDiesMidFlowSM: the same with XEP-0198 on, against a
// scripted receiving server (sm_test.go's fakeRecv) that offers it, acks
// what it read, and dies (TCP reset) after killAt stanzas without
// answering the pending <r/>: our side must resend every unacknowledged
// stanza on the new stream, so nothing is lost. The fake keeps no
// deduplication record: the duplicates it sees are what a receiver must
// drop (TestFaultResendDedupe proves ours does).
func TestFaultRemoteDiesMidFlowSM(t *testing.T) {
	h := newHarness(t)
	ta := newTally()
	a := h.node("a.example", nodeOpt{mod: func(s *s2s.Server) { s.Bounce = ta.bounce }})
	f := h.newFakeRecv("b.example", true)
	const n, killAt = 10000, 2000
	sent := make(chan []string, 1)
	go func() {
		ids := make([]string, n)
		for i := range n {
			ids[i] = "m" + strconv.Itoa(i)
			st, _ := s2s.ParseStanza([]byte("<message xmlns='jabber:server' from='u@a.example' to='v@b.example' id='" + ids[i] + "'/>"))
			if err := a.srv.Send(context.Background(), st); err != nil {
				ta.refuse(ids[i], err)
			}
		}
		sent <- ids
	}()
	// serve reads stanzas, acking each <r/>, until stop says so; it
	// returns how many stanzas it read.
	serve := func(fc *fakeConn, stop func() bool) {
		fc.expect(wire.NSSM, "enable")
		fc.write("<enabled xmlns='" + wire.NSSM + "'/>")
		h := 0
		for !stop() {
			if h%256 == 0 {
				_ = fc.conn.SetDeadline(time.Now().Add(hang)) // a hang guard per batch, not per stream
			}
			el, err := fc.r.Next()
			if err != nil {
				t.Fatalf("fake receiver, %d read on this stream: %v; so far %s", h, err, ta.result(idsOf(n)))
			}
			switch {
			case el.Name.Local == "message":
				ta.handled(el.AttrValue("id"))
				h++
			case el.Name.Space == wire.NSSM && el.Name.Local == "r":
				fc.write("<a xmlns='" + wire.NSSM + "' h='" + strconv.Itoa(h) + "'/>")
			case el.Name.Space == wire.NSSM:
			default:
				t.Fatalf("fake receiver got %s", el.Raw)
			}
		}
	}
	fc := f.accept()
	serve(fc, func() bool { return count(ta) >= killAt })
	// The remote server dies: reset, both directions, the acks for the
	// last stanzas it read never sent.
	if tc, ok := fc.conn.(*tls.Conn); ok {
		if raw, ok := tc.NetConn().(*net.TCPConn); ok {
			_ = raw.SetLinger(0)
		}
	}
	_ = fc.conn.Close()
	ids := recv(t, sent, "all stanzas sent")
	fc2 := f.accept()
	serve(fc2, func() bool { return count(ta) >= n })
	r := ta.result(ids)
	t.Logf("remote died after %d read (XEP-0198 on, receiver without dedupe): %s", killAt, r)
	if r.lost != 0 || r.bounced != 0 {
		t.Errorf("with XEP-0198: %s; want every stanza delivered", r)
	}
}

// idsOf lists the ids m0..m(n-1).
func idsOf(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "m" + strconv.Itoa(i)
	}
	return ids
}

// count is how many distinct ids the receiver handled.
func count(ta *tally) int {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	return len(ta.got)
}

// TestFaultResendDedupe: XEP-0198 resend deduplication through a real
// stream. Our outbound stream to b.example (a scripted peer offering
// XEP-0198 and XEP-0288 bidi) carries the peer's stanzas to us, counted
// for acks. The peer's connection dies after our Handler took its
// stanzas but before our <a/> could reach it (it asks with <r/> and
// resets the connection without reading): on the next stream it resends
// all of them, then new ones. Our Handler must see each id exactly once.
// A stanza without an id is never dropped, and a repeat on the same
// stream is not either (ids are unique per stream only, RFC 6120 §8.1.3).
func TestFaultResendDedupe(t *testing.T) {
	h := newHarness(t)
	ta := newTally()
	a := h.faultNode("a.example", ta, nil, nil)
	f := h.newFakeRecv("b.example", true)
	const n = 50
	in := func(i int) string {
		return "<message xmlns='jabber:server' from='v@b.example/r' to='u@a.example' id='d" + strconv.Itoa(i) + "'><body>x</body></message>"
	}
	noID := "<message xmlns='jabber:server' from='v@b.example/r' to='u@a.example'><body>no id</body></message>"
	open := func(id string) *fakeConn {
		t.Helper()
		if err := a.srv.Send(context.Background(), idMsg(t, "u@a.example", "v@b.example", id)); err != nil {
			t.Fatal(err)
		}
		fc := f.accept()
		fc.expect(wire.NSSM, "enable")
		fc.write("<enabled xmlns='" + wire.NSSM + "'/>")
		return fc
	}
	fc := open("out1")
	for i := range n {
		fc.write(in(i))
	}
	fc.write(noID)
	fc.write(in(0)) // a repeat on the same stream: delivered
	waitCount(t, ta, "d"+strconv.Itoa(n-1), 1)
	waitCount(t, ta, "d0", 2)
	// Ask for the ack and die before it can arrive: reset, both
	// directions.
	fc.write("<r xmlns='" + wire.NSSM + "'/>")
	if tc, ok := fc.conn.(*tls.Conn); ok {
		if raw, ok := tc.NetConn().(*net.TCPConn); ok {
			_ = raw.SetLinger(0)
		}
	}
	_ = fc.conn.Close()
	waitNoStream(t, a.srv, "b.example")
	fc2 := open("out2")
	for i := range n + 1 {
		fc2.write(in(i))
	}
	fc2.write(noID)
	waitCount(t, ta, "d"+strconv.Itoa(n), 1)
	fc2.write("<r xmlns='" + wire.NSSM + "'/>")
	for {
		// Every stanza, dropped ones included, is acknowledged: the
		// peer must not send them a third time.
		el := fc2.next()
		if el.Name.Space == wire.NSSM && el.Name.Local == "a" {
			if got := el.AttrValue("h"); got != strconv.Itoa(n+2) {
				t.Errorf("second stream acknowledged h=%s, want %d", got, n+2)
			}
			break
		}
	}
	ta.mu.Lock()
	defer ta.mu.Unlock()
	for i := range n + 1 {
		want := 1
		if i == 0 {
			want = 2 // repeated on the first stream
		}
		if got := ta.got["d"+strconv.Itoa(i)]; got != want {
			t.Errorf("d%d handled %d times, want %d", i, got, want)
		}
	}
	if got := ta.got[""]; got != 2 {
		t.Errorf("stanzas without an id handled %d times, want 2 (never deduplicated)", got)
	}
	t.Logf("resent stanzas dropped: %d", s2s.ResentDropped(a.srv))
	if got := s2s.ResentDropped(a.srv); got != n {
		t.Errorf("ResentDropped = %d, want %d", got, n)
	}
}

// waitCount waits (bounded) until id was handled want times.
func waitCount(t *testing.T, ta *tally, id string, want int) {
	t.Helper()
	for range 3000 {
		ta.mu.Lock()
		got := ta.got[id]
		ta.mu.Unlock()
		if got >= want {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s not handled %d times", id, want)
}

// TestFaultDNS: SERVFAIL and NXDOMAIN for the remote domain, flapping
// with good answers, and a DNS server that stops answering and comes
// back: each stanza is bounced with the condition that fits
// (remote-server-timeout for a failure that may pass,
// remote-server-not-found for a name that does not exist), within the
// resolver's timeout, no goroutine piles up, and once the fault clears the
// next stanza is delivered.
func TestFaultDNS(t *testing.T) {
	h := newHarness(t)
	ta := newTally()
	// No cache: an NXDOMAIN answer is otherwise remembered for its SOA
	// minimum (RFC 2308), and recovery waits for that, by design.
	noCache := func(s *s2s.Server) { s.Resolver.CacheSize = -1 }
	b := h.faultNode("b.example", ta, nil, nil)
	a := h.faultNode("a.example", ta, noCache, nil)
	base := goroutineBase(a.srv, b.srv)
	srv := "_xmpp-server._tcp.b.example"
	srvs := "_xmpps-server._tcp.b.example"
	type fault struct {
		name  string
		set   func()
		clear func()
		want  stanza.Condition
	}
	faults := []fault{
		{"servfail", func() {
			h.dns.SetRcode(srv, dns.RcodeServerFailure)
			h.dns.SetRcode(srvs, dns.RcodeServerFailure)
		}, func() {
			h.dns.SetRcode(srv, dns.RcodeSuccess)
			h.dns.SetRcode(srvs, dns.RcodeSuccess)
		}, stanza.RemoteServerTimeout},
		{"nxdomain", func() {
			for _, nm := range []string{srv, srvs, "b.example"} {
				h.dns.SetRcode(nm, dns.RcodeNameError)
			}
		}, func() {
			for _, nm := range []string{srv, srvs, "b.example"} {
				h.dns.SetRcode(nm, dns.RcodeSuccess)
			}
		}, stanza.RemoteServerNotFound},
	}
	seq := 0
	for round := range 3 { // flapping: fault, clear, fault, clear ...
		for _, f := range faults {
			// The stream of the last recovery dies, so the next stanza
			// needs DNS again.
			killStreams(t, a.srv, b.l, "b.example")
			f.set()
			seq++
			id := fmt.Sprintf("%s-%d-%d", f.name, round, seq)
			ids := sendN(t, a.srv, ta, "u@a.example", "v@b.example", id+"-", 1)
			r := ta.settle(t, a.srv, ids, time.Second, hang)
			if r.bounced != 1 || r.conds[f.want] != 1 {
				t.Errorf("%s round %d: %s; want one bounce with %s", f.name, round, r, f.want)
			}
			f.clear()
			// Recovery: the next stanza is tried (not bounced from a
			// remembered failure) and delivered.
			ids = sendN(t, a.srv, ta, "u@a.example", "v@b.example", id+"-ok-", 1)
			if r := ta.settle(t, a.srv, ids, time.Second, hang); r.delivered != 1 {
				t.Errorf("%s round %d, fault cleared: %s; want it delivered", f.name, round, r)
			}
		}
	}
	// What is left: the stream of the last recovery (a read loop at
	// each end).
	if got := goroutinesSettle(base + 2); got > base+2 {
		t.Errorf("%d goroutines after the SERVFAIL and NXDOMAIN rounds, %d before (plus one stream): a pile-up:\n%s", got, base, goroutineDump())
	}
	// DNS that stops answering, and comes back, for another Server c:
	// its resolver asks through a relay the test switches off and on.
	relay := newDNSRelay(t, h.dns.Addr)
	c := h.faultNode("c.example", ta, func(s *s2s.Server) {
		s.Resolver.Servers = []string{relay.addr()}
		s.Resolver.Timeout = 50 * time.Millisecond
		s.Resolver.CacheSize = -1
	}, nil)
	base = goroutineBase(a.srv, b.srv, c.srv)
	for round := range 3 {
		relay.drop.Store(true)
		ids := sendN(t, c.srv, ta, "u@c.example", "v@b.example", fmt.Sprintf("silent-%d-", round), 20)
		if r := ta.settle(t, c.srv, ids, time.Second, hang); r.bounced != 20 || r.conds[stanza.RemoteServerTimeout] != 20 {
			t.Errorf("silent DNS, round %d: %s; want 20 bounces with remote-server-timeout", round, r)
		}
		relay.drop.Store(false)
		ids = sendN(t, c.srv, ta, "u@c.example", "v@b.example", fmt.Sprintf("silent-%d-ok-", round), 1)
		if r := ta.settle(t, c.srv, ids, time.Second, hang); r.delivered != 1 {
			t.Errorf("DNS back, round %d: %s; want it delivered", round, r)
		}
		killStreams(t, c.srv, b.l, "b.example")
	}
	relay.close()
	// Every stream was killed and the relay closed: nothing may be
	// left of the attempts.
	if got := goroutinesSettle(base); got > base {
		t.Errorf("%d goroutines after the DNS faults, %d before: a pile-up:\n%s", got, base, goroutineDump())
	}
}

// dnsRelay forwards DNS queries over UDP to a server, or drops them all
// while drop is set: a DNS server that stops answering and comes back.
type dnsRelay struct {
	pc       net.PacketConn
	upstream string
	drop     atomic.Bool
	wg       sync.WaitGroup
}

func newDNSRelay(t *testing.T, upstream string) *dnsRelay {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &dnsRelay{pc: pc, upstream: upstream}
	r.wg.Go(r.serve)
	t.Cleanup(r.close)
	return r
}

func (r *dnsRelay) addr() string { return r.pc.LocalAddr().String() }

// close stops the relay and waits for its goroutines.
func (r *dnsRelay) close() {
	_ = r.pc.Close()
	r.wg.Wait()
}

func (r *dnsRelay) serve() {
	for {
		buf := make([]byte, 1500)
		n, from, err := r.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if r.drop.Load() {
			continue
		}
		r.wg.Go(func() {
			u, err := net.Dial("udp", r.upstream)
			if err != nil {
				return
			}
			defer u.Close()
			_ = u.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := u.Write(buf[:n]); err != nil {
				return
			}
			m, err := u.Read(buf)
			if err != nil {
				return
			}
			_, _ = r.pc.WriteTo(buf[:m], from)
		})
	}
}

// waitNoStream waits (bounded) until srv has no stream with remote.
// killStreams kills every connection l accepted and waits until srv has
// no stream with remote and nothing left to send: with XEP-0198 a killed
// stream's unacknowledged stanzas are sent again on a new stream, which
// is killed in turn, so the next stanza needs DNS and a new connection.
func killStreams(t *testing.T, srv *s2s.Server, l *faultnet.Listener, remote string) {
	t.Helper()
	for range 1500 {
		// Again each time: a connection accepted meanwhile survives the
		// last one. Then let the ends see it and a requeue start.
		l.KillAll()
		time.Sleep(10 * time.Millisecond)
		_, dialing := s2s.PoolState(srv)
		up := false
		for _, si := range srv.Stats().Streams {
			up = up || si.Remote == remote
		}
		if dialing == 0 && srv.Stats().Queued == 0 && !up {
			return
		}
	}
	t.Fatalf("streams with %s keep coming back", remote)
}

func waitNoStream(t *testing.T, srv *s2s.Server, remote string) {
	t.Helper()
	for range 3000 {
		found := false
		for _, si := range srv.Stats().Streams {
			found = found || si.Remote == remote
		}
		if !found {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("a stream with %s is still up", remote)
}

// TestFaultPeerNeverAnswers: the remote accepts TCP and then says
// nothing (its replies vanish and it reads nothing: a half-open
// connection from the start), or stalls the TLS handshake after
// <proceed/>. The attempt ends at the establishment timeout (on the fake
// clock), every stanza is bounced with remote-server-timeout, no
// goroutine is left, and once the fault clears the next stanza is
// delivered.
func TestFaultPeerNeverAnswers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(*faultnet.Conn)
	}{
		{"silent", func(c *faultnet.Conn) {
			c.Set(faultnet.Write, faultnet.Blackhole)
			c.Set(faultnet.Read, faultnet.Blackhole)
		}},
		{"tls-stall", func(c *faultnet.Conn) {
			// Let the plaintext negotiation through (header, features,
			// <proceed/>: a few hundred bytes), then answer nothing:
			// the TLS handshake never finishes.
			c.SetAfter(faultnet.Read, tlsStallAfter, faultnet.Stall)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			ta := newTally()
			fc := clock.NewFake(time.Unix(1e9, 0))
			b := h.faultNode("b.example", ta, nil, nil)
			a := h.faultNode("a.example", ta, func(s *s2s.Server) { s2s.SetClock(s, fc) },
				gatewayOpt(0, 30*time.Second, 0))
			base := goroutineBase(a.srv, b.srv)
			b.l.SetSetup(tc.fault)
			ids := sendN(t, a.srv, ta, "u@a.example", "v@b.example", "s", 100)
			// The attempt is stuck until the establishment timer fires.
			waitPending(t, fc, 1)
			waitAccepted(t, b.l, 1)
			if r := ta.result(ids); r.bounced != 0 || r.delivered != 0 {
				t.Fatalf("before the timeout: %s", r)
			}
			fc.Advance(31 * time.Second)
			r := ta.settle(t, a.srv, ids, time.Second, hang)
			if r.bounced != 100 || r.conds[stanza.RemoteServerTimeout] != 100 {
				t.Errorf("%s; want 100 bounces with remote-server-timeout", r)
			}
			// The stalled peer (b) would notice the closed connection
			// only at its own timeout: end its side, then count what
			// is left of the attempt.
			b.l.SetSetup(nil)
			for _, c := range b.l.Conns() {
				c.Kill()
			}
			if got := goroutinesSettle(base); got > base {
				t.Errorf("%d goroutines after the attempt, %d before:\n%s", got, base, goroutineDump())
			}
			// The fault clears; the next stanza goes through (after the
			// retry wait, on the fake clock).
			fc.Advance(2 * time.Second)
			ids = sendN(t, a.srv, ta, "u@a.example", "v@b.example", "ok", 1)
			for i := 0; ta.result(ids).delivered == 0 && i < 200; i++ {
				fc.Advance(time.Second) // any retry wait
				ta.settle(t, a.srv, ids, 50*time.Millisecond, time.Second)
			}
			if r := ta.result(ids); r.delivered != 1 {
				t.Errorf("fault cleared: %s; want delivered", r)
			}
		})
	}
}

// TestFaultHalfOpenMidStream: an established stream turns half-open (our
// writes vanish, nothing comes back, no reset). The keepalive (on the fake
// clock) ends the stream; the stanzas written into it must then be resent
// or bounced, never lost; once the fault clears they, or the next ones,
// are delivered.
func TestFaultHalfOpenMidStream(t *testing.T) {
	h := newHarness(t)
	ta := newTally()
	fc := clock.NewFake(time.Unix(1e9, 0))
	b := h.faultNode("b.example", ta, nil, nil)
	a := h.faultNode("a.example", ta, func(s *s2s.Server) { s2s.SetClock(s, fc) },
		gatewayOpt(10*time.Second, -1, -1))
	warm := sendN(t, a.srv, ta, "u@a.example", "v@b.example", "warm", 1)
	if r := ta.settle(t, a.srv, warm, time.Second, hang); r.delivered != 1 {
		t.Fatalf("before the fault: %s", r)
	}
	up := a.srv.Stats().Streams
	if len(up) != 1 {
		t.Fatalf("%d streams before the fault, want 1", len(up))
	}
	faulty := b.l.Conns()
	for _, c := range faulty {
		c.Set(faultnet.Write, faultnet.Blackhole)
		c.Set(faultnet.Read, faultnet.Blackhole)
	}
	ids := sendN(t, a.srv, ta, "u@a.example", "v@b.example", "h", 100)
	// Wait for that stream to end. Not for a's stream count to reach
	// zero: the stanzas handed back when it fails open a new stream (on a
	// new, healthy connection) while the old one may still be closing,
	// so the count need not pass through zero.
	halfOpen := func() bool {
		for _, si := range a.srv.Stats().Streams {
			if si.Since.Equal(up[0].Since) {
				return true
			}
		}
		return false
	}
	for i := 0; i < 120 && halfOpen(); i++ {
		fc.Advance(time.Second)
		time.Sleep(time.Millisecond)
	}
	if halfOpen() {
		t.Fatal("the half-open stream is still up after 120 s of keepalive silence")
	}
	for _, c := range faulty {
		c.Kill()
	}
	for i := 0; ta.result(ids).lost > 0 && i < 30; i++ {
		fc.Advance(time.Second) // retry waits
		ta.settle(t, a.srv, ids, 100*time.Millisecond, 2*time.Second)
	}
	r := ta.settle(t, a.srv, ids, time.Second, hang)
	t.Logf("half-open stream (XEP-0198 on): %s", r)
	if r.lost != 0 {
		t.Errorf("lost %d stanzas written into a half-open connection", r.lost)
	}
}

// tlsStallAfter is how many bytes of the initiator's plaintext
// negotiation (stream header and <starttls/>) the receiving side reads
// before the TLS stall: the initiating stream header (~200 bytes with
// its namespaces) and <starttls/> (51 bytes) fit below it; a TLS
// ClientHello does not.
const tlsStallAfter = 300

// waitAccepted waits (bounded) until l accepted n connections.
func waitAccepted(t *testing.T, l *faultnet.Listener, n int) {
	t.Helper()
	for range 3000 {
		if len(l.Conns()) >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("fewer than %d connections accepted", n)
}

// TestFaultByteByByte: every read and write of the receiving server's
// connections moves one byte (negotiation, TLS records, stanzas): every
// stanza is still delivered, once, in order of ids.
func TestFaultByteByByte(t *testing.T) {
	h := newHarness(t)
	ta := newTally()
	b := h.faultNode("b.example", ta, nil, nil)
	a := h.faultNode("a.example", ta, nil, nil)
	b.l.SetSetup(func(c *faultnet.Conn) {
		c.SetChunk(faultnet.Read, 1)
		c.SetChunk(faultnet.Write, 1)
	})
	ids := sendN(t, a.srv, ta, "u@a.example", "v@b.example", "b", 200)
	r := ta.settle(t, a.srv, ids, time.Second, hang)
	if r.delivered != 200 || r.duplicates != 0 {
		t.Fatalf("byte by byte: %s", r)
	}
	ta.mu.Lock()
	defer ta.mu.Unlock()
	for i, id := range ta.order {
		if id != ids[i] {
			t.Fatalf("delivery %d is %s, want %s", i, id, ids[i])
		}
	}
	if c := b.l.Conns(); len(c) != 1 || c[0].Bytes(faultnet.Read) == 0 {
		t.Errorf("%d connections accepted, want 1 carrying everything", len(c))
	}
}

// TestFaultShutdownUnderLoad: Shutdown while thousands of stanzas are
// queued and in flight to a receiver that reads slowly (byte-chunked,
// stalled for part of the run): every stanza is delivered or handed back
// through Bounce.
func TestFaultShutdownUnderLoad(t *testing.T) {
	h := newHarness(t)
	ta := newTally()
	b := h.faultNode("b.example", ta, nil, nil)
	a := h.faultNode("a.example", ta, nil, nil)
	b.l.SetSetup(func(c *faultnet.Conn) { c.SetChunk(faultnet.Read, 512) })
	const n = 5000
	ids := sendN(t, a.srv, ta, "u@a.example", "v@b.example", "q", n)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := a.srv.Shutdown(ctx)
	t.Logf("Shutdown: %v", err)
	if err != nil {
		// The graceful part ran out: Close bounces the rest.
		_ = a.srv.Close()
	}
	r := ta.settle(t, a.srv, ids, 2*time.Second, 60*time.Second)
	t.Logf("shutdown under load: %s", r)
	if r.lost != 0 {
		t.Errorf("lost %d stanzas at Shutdown", r.lost)
	}
	if r.both != 0 {
		t.Errorf("%d stanzas bounced although delivered", r.both)
	}
}
