package s2s_test

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppfed/xmppfed/internal/clock"
	"github.com/xmppfed/xmppfed/internal/wire"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
)

// The tests in this file prove that a hibernating stream (hibernate.go:
// no reader goroutine while nothing arrives) still does everything an
// established stream does: delivers, pings and keeps alive, times out,
// answers and requests XEP-0198 acks, and ends gracefully or at Close.
// Each runs on a fake clock: hibernation is due after s2s.HibernateAfter
// without input on the Server's clock.

// readers counts the stream read loops running in the process.
func readers() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "s2s.(*Server).readLoop(")
}

// needHibernation skips t where streams do not hibernate.
func needHibernation(t *testing.T) {
	t.Helper()
	if !s2s.HibernationSupported {
		t.Skip("streams hibernate on Linux only")
	}
}

// waitFor polls cond (bounded: 5000 tries 1 ms apart) and fails t with
// what when it never holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 5000 {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("never: %s", what)
}

// quiet waits until cond holds, advancing c a second at a time (at most
// 10 times) while it does not, so that a stream woken by a late element
// hibernates again.
func quiet(t *testing.T, c *clock.Fake, cond func() bool) {
	t.Helper()
	for range 10 {
		for range 500 {
			if cond() {
				return
			}
			time.Sleep(time.Millisecond)
		}
		c.Advance(time.Second)
	}
	t.Fatal("streams still have a reader after 10 s without input")
}

// hibernate advances c a second at a time (at most 30 times, so that no
// keepalive timer is reached) until n of srv's streams hibernate: a
// stream's timer may be armed a little after the test's last action.
func hibernate(t *testing.T, c *clock.Fake, srv *s2s.Server, n int) {
	t.Helper()
	for range 30 {
		c.Advance(time.Second)
		for range 200 {
			if s2s.Hibernated(srv) == n {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	t.Fatalf("%d streams hibernate, want %d", s2s.Hibernated(srv), n)
}

// waitStreams waits until srv has n established streams.
func waitStreams(t *testing.T, srv *s2s.Server, n int) {
	t.Helper()
	waitFor(t, "stream count", func() bool { return len(srv.Stats().Streams) == n })
}

// TestHibernateTwoServers: both ends of an idle stream between two
// Servers hibernate (no reader goroutine left); a stanza wakes the
// receiving end and is delivered, in order, and the end hibernates again;
// then the initiator ends gracefully (Shutdown) or at once (Close) while
// both ends hibernate, and no goroutine is left.
func TestHibernateTwoServers(t *testing.T) {
	needHibernation(t)
	for _, end := range []string{"shutdown", "close"} {
		t.Run(end, func(t *testing.T) {
			leakCheck(t)
			h := newHarness(t)
			c := clock.NewFake(time.Unix(1e9, 0))
			b := h.node("b.example", nodeOpt{mod: fakeClockOpt(c)})
			a := h.node("a.example", nodeOpt{mod: fakeClockOpt(c)})
			ctx := context.Background()
			sendBodies(t, a, "v@b.example", "first")
			recv(t, b.got, "first message")
			hibernate(t, c, a.srv, 1)
			hibernate(t, c, b.srv, 1)
			quiet(t, c, func() bool { return readers() == 0 })

			for i, body := range []string{"second", "third"} {
				sendBodies(t, a, "v@b.example", body)
				if got := recv(t, b.got, body); !strings.Contains(string(got.Raw()), ">"+body+"<") {
					t.Fatalf("message %d: got %s, want %s", i, got.Raw(), body)
				}
			}
			hibernate(t, c, b.srv, 1)
			if n := len(a.srv.Stats().Streams); n != 1 {
				t.Fatalf("%d streams on the initiator, want the one reused", n)
			}

			switch end {
			case "shutdown":
				// RFC 6120 §4.4: our </stream:stream> wakes the peer's
				// end, whose answer wakes ours.
				sctx, cancel := context.WithTimeout(ctx, hang)
				defer cancel()
				if err := a.srv.Shutdown(sctx); err != nil {
					t.Fatalf("Shutdown with hibernating streams: %v", err)
				}
			case "close":
				if err := a.srv.Close(); err != nil {
					t.Fatal(err)
				}
			}
			waitStreams(t, b.srv, 0)
			if n := s2s.Hibernated(b.srv); n != 0 {
				t.Errorf("%d streams still hibernate after the peer ended", n)
			}
			noBounce(t, a)
		})
	}
}

// TestHibernateKeepAlive: a hibernating stream with a keepalive partner
// still writes its whitespace and its XEP-0199 ping; the pong wakes it and
// is consumed; it hibernates again; an unanswered ping ends it with
// connection-timeout while it hibernates (the reader comes back to end
// it).
func TestHibernateKeepAlive(t *testing.T) {
	needHibernation(t)
	leakCheck(t)
	h := newHarness(t)
	c := clock.NewFake(time.Unix(1e9, 0))
	b := h.node("b.example", nodeOpt{edit: gatewayOpt(100*time.Second, -1, -1), mod: fakeClockOpt(c)})
	p := h.rawPeer("evil.example", b)
	hibernate(t, c, b.srv, 1)
	c.Advance(50 * time.Second) // past KeepAlive/2 of silence both ways
	ping := p.readUntil("</iq>")
	if !strings.Contains(ping, "urn:xmpp:ping") {
		t.Fatalf("ping from a hibernating stream: %q", ping)
	}
	i := strings.Index(ping, "id='")
	id := ping[i+4 : i+4+strings.Index(ping[i+4:], "'")]
	p.write("<iq type='result' from='evil.example' to='b.example' id='" + id + "'/>")
	waitFor(t, "the pong consumed", func() bool {
		s := b.srv.Stats().Streams
		return len(s) == 1 && s[0].StanzasIn == 1
	})
	hibernate(t, c, b.srv, 1)
	c.Advance(50 * time.Second) // answered: a second ping
	if got := p.readUntil("</iq>"); !strings.Contains(got, "urn:xmpp:ping") {
		t.Fatalf("second ping: %q", got)
	}
	c.Advance(51 * time.Second) // unanswered
	if got := p.readAll(); !strings.Contains(got, "<connection-timeout ") || !strings.Contains(got, "</stream:stream>") {
		t.Errorf("after an unanswered ping: %q", got)
	}
	waitStreams(t, b.srv, 0)
	if n := s2s.Hibernated(b.srv); n != 0 {
		t.Errorf("%d streams hibernate after the stream ended", n)
	}
}

// TestHibernateInactivity: the gateway's inactivity timeout ends a
// hibernating stream with connection-timeout, and the stream is gone.
func TestHibernateInactivity(t *testing.T) {
	needHibernation(t)
	leakCheck(t)
	h := newHarness(t)
	c := clock.NewFake(time.Unix(1e9, 0))
	b := h.node("b.example", nodeOpt{
		edit: func(cfg *policy.Config) {
			gatewayOpt(60*time.Second, -1, 200*time.Second)(cfg)
			cfg.Gateway.DefaultPartner.DisableKeepAlive = true
		},
		mod: fakeClockOpt(c),
	})
	p := h.rawPeer("evil.example", b)
	hibernate(t, c, b.srv, 1)
	c.Advance(200 * time.Second)
	got := p.readAll()
	if !strings.HasPrefix(got, "<stream:error>") || !strings.Contains(got, "<connection-timeout ") || !strings.Contains(got, "inactivity") {
		t.Errorf("got %q, want the inactivity stream error", got)
	}
	waitStreams(t, b.srv, 0)
}

// TestHibernatePeerCloses: a peer that ends its stream (</stream:stream>,
// then TCP close) while ours hibernates is answered and the stream ends.
func TestHibernatePeerCloses(t *testing.T) {
	needHibernation(t)
	leakCheck(t)
	h := newHarness(t)
	c := clock.NewFake(time.Unix(1e9, 0))
	b := h.node("b.example", nodeOpt{mod: fakeClockOpt(c)})
	p := h.rawPeer("evil.example", b)
	hibernate(t, c, b.srv, 1)
	p.write("</stream:stream>")
	if got := p.readAll(); !strings.Contains(got, "</stream:stream>") || strings.Contains(got, "<stream:error>") {
		t.Errorf("answer to the peer's close: %q", got)
	}
	waitStreams(t, b.srv, 0)
}

// TestHibernateSMAcks: an outbound stream with XEP-0198 answers the
// peer's <r/> and requests acks for what it sends while it hibernates.
func TestHibernateSMAcks(t *testing.T) {
	needHibernation(t)
	leakCheck(t)
	h := newHarness(t)
	c := clock.NewFake(time.Unix(1e9, 0))
	a := h.node("a.example", nodeOpt{mod: fakeClockOpt(c)})
	f := h.newFakeRecv("b.example", true)
	sendBodies(t, a, "v@b.example", "1")
	fc := f.accept()
	fc.expect(wire.NSSM, "enable")
	fc.messages(1)
	fc.write("<enabled xmlns='" + wire.NSSM + "'/>")
	fc.expect(wire.NSSM, "r")
	fc.write("<a xmlns='" + wire.NSSM + "' h='1'/>")
	hibernate(t, c, a.srv, 1)

	// The peer's stanza and <r/> wake our end, which answers.
	fc.write("<message xmlns='jabber:server' from='v@b.example' to='u@a.example'><body>in</body></message><r xmlns='" + wire.NSSM + "'/>")
	if el := fc.expect(wire.NSSM, "a"); el.AttrValue("h") != "1" {
		t.Errorf("answer to <r/>: %s, want h='1'", el.Raw)
	}
	recv(t, a.got, "inbound message")
	hibernate(t, c, a.srv, 1)

	// What we send while hibernating is counted and acknowledged.
	sendBodies(t, a, "v@b.example", "2")
	if got, reqs := fc.messages(1); got[0] != "2" {
		t.Fatalf("got %v", got)
	} else if reqs == 0 {
		fc.expect(wire.NSSM, "r")
	}
	fc.write("<a xmlns='" + wire.NSSM + "' h='2'/>")
	// The ack was read (it woke the stream) and accepted: the stream is
	// still up and hibernates again.
	waitFor(t, "the ack read", func() bool { return s2s.Hibernated(a.srv) == 0 })
	hibernate(t, c, a.srv, 1)
	waitStreams(t, a.srv, 1)
	noBounce(t, a)
}

// TestHibernateManyStreams: streams from one Server to eight others wake
// and hibernate again, round after round, with stanzas sent to all of
// them at once; every stanza is delivered once and, between rounds, no
// reader goroutine is left.
func TestHibernateManyStreams(t *testing.T) {
	needHibernation(t)
	leakCheck(t)
	h := newHarness(t)
	c := clock.NewFake(time.Unix(1e9, 0))
	const peers, rounds = 8, 4
	var recvs []*node
	for i := range peers {
		recvs = append(recvs, h.node("b"+strconv.Itoa(i)+".example", nodeOpt{mod: fakeClockOpt(c)}))
	}
	a := h.node("a.example", nodeOpt{mod: fakeClockOpt(c)})
	for round := range rounds {
		body := "r" + strconv.Itoa(round)
		var wg sync.WaitGroup
		for _, r := range recvs {
			wg.Go(func() {
				if err := a.srv.Send(context.Background(), msg(t, "u@a.example", "v@"+r.domain, body)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for _, r := range recvs {
			if got := recv(t, r.got, body); !strings.Contains(string(got.Raw()), ">"+body+"<") {
				t.Fatalf("%s got %s in round %d", r.domain, got.Raw(), round)
			}
		}
		hibernate(t, c, a.srv, peers)
		for _, r := range recvs {
			hibernate(t, c, r.srv, 1)
		}
		// An XEP-0198 <a/> (the two Servers use stream management) may
		// arrive after its stream hibernated, under load: it wakes the
		// stream, which hibernates again HibernateAfter later.
		quiet(t, c, func() bool { return readers() == 0 })
	}
	for _, r := range recvs {
		select {
		case got := <-r.got:
			t.Errorf("%s got a stanza twice: %s", r.domain, got.Raw())
		default:
		}
	}
	noBounce(t, a)
}
