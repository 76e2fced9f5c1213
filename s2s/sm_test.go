package s2s_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmppfed/xmppfed/internal/wire"
	"github.com/xmppfed/xmppfed/s2s"
)

// The tests in this file drive our Server's XEP-0198 (Stream Management)
// support on outbound streams against a scripted fake receiving server.

// fakeRecv is a hand-driven receiving server for one domain on loopback:
// it negotiates STARTTLS (required), SASL EXTERNAL and, optionally,
// XEP-0288 bidi and XEP-0198 stream management, then lets the test read
// and write top-level elements.
type fakeRecv struct {
	t      testing.TB
	h      *harness
	domain string
	cert   tls.Certificate
	sm     bool // offer <sm xmlns='urn:xmpp:sm:3'/> after authentication
	conns  chan net.Conn
}

// fakeConn is one negotiated stream of a fakeRecv.
type fakeConn struct {
	t    testing.TB
	conn net.Conn
	r    *wire.Reader
	w    *wire.Writer
}

// newFakeRecv listens on loopback and points the harness DNS at it.
func (h *harness) newFakeRecv(domain string, sm bool) *fakeRecv {
	t := h.t
	cert, err := h.ca.IssueDomain(domain)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRecv{t: t, h: h, domain: domain, cert: cert, sm: sm, conns: make(chan net.Conn, 8)}
	h.dns.AddSRV("_xmpp-server._tcp", domain, "xmpp."+domain, uint16(l.Addr().(*net.TCPAddr).Port), 0, 0)
	h.dns.AddHost("xmpp."+domain, netip.MustParseAddr("127.0.0.1"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			select {
			case f.conns <- c:
			default:
				_ = c.Close() // more connections than the test expects
			}
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
		for {
			select {
			case c := <-f.conns:
				_ = c.Close()
			default:
				return
			}
		}
	})
	return f
}

// accept takes the next connection from our Server and negotiates it as
// the receiving side: header, STARTTLS required, TLS, header, SASL
// EXTERNAL (and bidi), success, header, final features.
func (f *fakeRecv) accept() *fakeConn {
	t := f.t
	t.Helper()
	c := recv(t, f.conns, "connection from our server")
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(hang))
	fc := &fakeConn{t: t, conn: c, r: wire.NewReader(c, wire.Limits{}), w: wire.NewWriter(c)}
	hdr := fc.header()
	if hdr.From != "a.example" || hdr.To != f.domain {
		t.Fatalf("header from %q to %q", hdr.From, hdr.To)
	}
	fc.write("<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>")
	fc.expect("urn:ietf:params:xml:ns:xmpp-tls", "starttls")
	fc.write("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{f.cert}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	fc.conn = tc
	fc.r.Reset(tc)
	fc.w.Reset(tc)
	fc.header()
	fc.write("<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms>" +
		"<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback><bidi xmlns='urn:xmpp:features:bidi'/></stream:features>")
	fc.expect("urn:xmpp:bidi", "bidi")
	fc.expect("urn:ietf:params:xml:ns:xmpp-sasl", "auth")
	fc.write("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
	fc.r.Reset(tc)
	fc.header()
	if f.sm {
		fc.write("<stream:features><sm xmlns='" + wire.NSSM + "'/></stream:features>")
	} else {
		fc.write("<stream:features/>")
	}
	return fc
}

// header reads the initiator's stream header and answers with ours.
func (fc *fakeConn) header() wire.Header {
	fc.t.Helper()
	hdr, err := fc.r.ReadHeader()
	if err != nil {
		fc.t.Fatalf("reading header: %v", err)
	}
	if err := fc.w.WriteHeader(wire.Header{From: hdr.To, To: hdr.From, ID: wire.NewID()}); err != nil {
		fc.t.Fatal(err)
	}
	return hdr
}

func (fc *fakeConn) write(s string) {
	fc.t.Helper()
	if err := fc.w.WriteRaw([]byte(s)); err != nil {
		fc.t.Fatalf("fake write: %v", err)
	}
}

func (fc *fakeConn) next() *wire.Element {
	fc.t.Helper()
	el, err := fc.r.Next()
	if err != nil {
		fc.t.Fatalf("fake read: %v", err)
	}
	return el
}

func (fc *fakeConn) expect(space, local string) *wire.Element {
	fc.t.Helper()
	el := fc.next()
	if el.Name.Space != space || el.Name.Local != local {
		fc.t.Fatalf("got %s, want {%s}%s", el.Raw, space, local)
	}
	return el
}

// bodyOf returns the text of a message's <body/>, or "" for anything else.
func bodyOf(el *wire.Element) string {
	if el.Name.Local != "message" {
		return ""
	}
	kids, err := el.Children()
	if err != nil {
		return ""
	}
	for _, k := range kids {
		if k.Name.Local == "body" {
			return k.Text
		}
	}
	return ""
}

// messages reads until it has n messages and returns their bodies and how
// many <r/> requests came with them. Anything else fails the test.
func (fc *fakeConn) messages(n int) (bodies []string, requests int) {
	fc.t.Helper()
	for len(bodies) < n {
		el := fc.next()
		switch {
		case el.Name.Space == wire.NSSM && el.Name.Local == "r":
			requests++
		case el.Name.Local == "message":
			bodies = append(bodies, bodyOf(el))
		default:
			fc.t.Fatalf("got %s while waiting for %d messages", el.Raw, n)
		}
	}
	return bodies, requests
}

func sendBodies(t testing.TB, a *node, to string, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if err := a.srv.Send(context.Background(), msg(t, "u@a.example", to, b)); err != nil {
			t.Fatal(err)
		}
	}
}

func noBounce(t testing.TB, a *node) {
	t.Helper()
	select {
	case bo := <-a.bounced:
		t.Errorf("bounced %s: %v %s", bo.st.Raw(), bo.err.Condition, bo.err.Text[""])
	default:
	}
}

// TestSMEnableAndAcks: on an outbound stream whose peer offers XEP-0198
// our side sends <enable/> before any stanza (XEP-0198 §3), counts the
// stanzas written after it (even before <enabled/> arrives: the peer
// counts from its <enabled/>, which follows our <enable/> on the wire),
// requests acks, and answers the peer's <r/> with the number of stanzas it
// handled since <enabled/> (XEP-0198 §4).
func TestSMEnableAndAcks(t *testing.T) {
	h := newHarness(t)
	a := h.node("a.example", nodeOpt{})
	f := h.newFakeRecv("b.example", true)
	sendBodies(t, a, "v@b.example", "1")
	fc := f.accept()
	fc.expect(wire.NSSM, "enable")
	if got, _ := fc.messages(1); got[0] != "1" {
		t.Fatalf("first message %q", got[0])
	}
	fc.write("<enabled xmlns='" + wire.NSSM + "'/>")
	// Message 1 was written after <enable/>: it is unacknowledged, so our
	// side asks (at the latest once SM is confirmed).
	fc.expect(wire.NSSM, "r")
	fc.write("<a xmlns='" + wire.NSSM + "' h='1'/>")

	// The peer's stanzas over the bidi stream are counted for its <r/>.
	for i := range 3 {
		fc.write("<message xmlns='jabber:server' from='v@b.example' to='u@a.example'><body>in" + strconv.Itoa(i) + "</body></message>")
	}
	fc.write("<r xmlns='" + wire.NSSM + "'/>")
	if el := fc.expect(wire.NSSM, "a"); el.AttrValue("h") != "3" {
		t.Errorf("answer to <r/>: %s, want h='3'", el.Raw)
	}
	for range 3 {
		recv(t, a.got, "inbound message")
	}

	// More stanzas: our side requests an ack and, once all are acked,
	// stops asking (one outstanding <r/> at a time).
	sendBodies(t, a, "v@b.example", "2", "3", "4")
	got, reqs := fc.messages(3)
	if strings.Join(got, ",") != "2,3,4" {
		t.Fatalf("got %v, want 2,3,4", got)
	}
	if reqs == 0 {
		// The request follows the batch that held the last message.
		fc.expect(wire.NSSM, "r")
	}
	fc.write("<a xmlns='" + wire.NSSM + "' h='4'/>")
	// h is cumulative: the peer's h after 5 more inbound stanzas is 8.
	for i := range 5 {
		fc.write("<message xmlns='jabber:server' from='v@b.example' to='u@a.example'><body>x" + strconv.Itoa(i) + "</body></message>")
	}
	fc.write("<r xmlns='" + wire.NSSM + "'/>")
	for {
		el := fc.next()
		if el.Name.Space == wire.NSSM && el.Name.Local == "r" {
			continue // a request sent before our ack arrived
		}
		if el.Name.Space != wire.NSSM || el.Name.Local != "a" || el.AttrValue("h") != "8" {
			t.Fatalf("got %s, want <a h='8'/>", el.Raw)
		}
		break
	}
	noBounce(t, a)
}

// TestSMRequeueUnacked: when the peer acknowledges only some stanzas and
// the connection is lost, the unacknowledged ones are sent again, in
// order, on the next stream, and the acknowledged ones are not (XEP-0198
// §4: h is the count of handled stanzas).
func TestSMRequeueUnacked(t *testing.T) {
	h := newHarness(t)
	a := h.node("a.example", nodeOpt{})
	f := h.newFakeRecv("b.example", true)
	sendBodies(t, a, "v@b.example", "1")
	fc := f.accept()
	fc.expect(wire.NSSM, "enable")
	fc.write("<enabled xmlns='" + wire.NSSM + "'/>")
	fc.messages(1)
	fc.expect(wire.NSSM, "r")
	sendBodies(t, a, "v@b.example", "2", "3", "4", "5")
	got, _ := fc.messages(4)
	if strings.Join(got, ",") != "2,3,4,5" {
		t.Fatalf("first stream got %v", got)
	}
	// Acknowledge 1 and 2 only. Our side then asks again for the rest:
	// once that <r/> is read, the ack has been processed.
	fc.write("<a xmlns='" + wire.NSSM + "' h='2'/>")
	for {
		el := fc.next()
		if el.Name.Space == wire.NSSM && el.Name.Local == "r" {
			break
		}
		t.Fatalf("got %s, want <r/>", el.Raw)
	}
	// Lose the connection without closing the stream.
	_ = fc.conn.(*tls.Conn).NetConn().Close()

	fc2 := f.accept()
	fc2.expect(wire.NSSM, "enable")
	fc2.write("<enabled xmlns='" + wire.NSSM + "'/>")
	got, _ = fc2.messages(3)
	if strings.Join(got, ",") != "3,4,5" {
		t.Fatalf("second stream got %v, want 3,4,5 (unacknowledged only, in order)", got)
	}
	fc2.expect(wire.NSSM, "r")
	fc2.write("<a xmlns='" + wire.NSSM + "' h='3'/>")
	sendBodies(t, a, "v@b.example", "6")
	if got, _ := fc2.messages(1); got[0] != "6" {
		t.Fatalf("next message %q", got[0])
	}
	noBounce(t, a)
}

// TestSMAckTooHigh: an <a/> acknowledging more stanzas than were sent is a
// protocol violation (XEP-0198 §4): the stream ends with
// undefined-condition and the stanza is delivered on a new stream.
func TestSMAckTooHigh(t *testing.T) {
	h := newHarness(t)
	a := h.node("a.example", nodeOpt{})
	f := h.newFakeRecv("b.example", true)
	sendBodies(t, a, "v@b.example", "1")
	fc := f.accept()
	fc.expect(wire.NSSM, "enable")
	fc.write("<enabled xmlns='" + wire.NSSM + "'/>")
	fc.messages(1)
	fc.expect(wire.NSSM, "r")
	fc.write("<a xmlns='" + wire.NSSM + "' h='2'/>")
	el, err := fc.r.Next()
	if err != nil || el.Name.Local != "error" || !strings.Contains(string(el.Raw), "undefined-condition") || !strings.Contains(string(el.Raw), "handled-count-too-high") {
		t.Fatalf("got %v %v, want a stream error undefined-condition with handled-count-too-high", el, err)
	}
	if _, err := fc.r.Next(); !errors.Is(err, wire.ErrStreamEnd) {
		t.Fatalf("after the stream error: %v", err)
	}
	_ = fc.conn.Close()
	// Not acknowledged: delivered again on the next stream.
	fc2 := f.accept()
	fc2.expect(wire.NSSM, "enable")
	if got, _ := fc2.messages(1); got[0] != "1" {
		t.Fatalf("second stream got %q", got[0])
	}
}

// TestSMNotOffered: a peer that does not offer XEP-0198 never gets
// <enable/> nor <r/>: the stanza comes first, and nothing else but the
// stream close follows.
func TestSMNotOffered(t *testing.T) {
	h := newHarness(t)
	a := h.node("a.example", nodeOpt{})
	f := h.newFakeRecv("b.example", false)
	sendBodies(t, a, "v@b.example", "1", "2")
	fc := f.accept()
	if got, _ := fc.messages(2); strings.Join(got, ",") != "1,2" {
		t.Fatalf("got %v", got)
	}
	fc.write("</stream:stream>")
	el, err := fc.r.Next()
	if !errors.Is(err, wire.ErrStreamEnd) {
		t.Fatalf("got %v %v, want only the stream end", el, err)
	}
	noBounce(t, a)
}

// TestSMFailed: a peer that answers <enable/> with <failed/> gets no <r/>
// and no <a/> is accepted from it; stanzas still flow, and a lost stream
// does not send written stanzas again (without XEP-0198 a written stanza
// counts as delivered, as on any stream).
func TestSMFailed(t *testing.T) {
	h := newHarness(t)
	a := h.node("a.example", nodeOpt{})
	f := h.newFakeRecv("b.example", true)
	sendBodies(t, a, "v@b.example", "1")
	fc := f.accept()
	fc.expect(wire.NSSM, "enable")
	fc.write("<failed xmlns='" + wire.NSSM + "'><feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>")
	if got, _ := fc.messages(1); got[0] != "1" {
		t.Fatalf("got %q", got[0])
	}
	sendBodies(t, a, "v@b.example", "2")
	// No <r/> comes in between: messages fails on anything but a message.
	if got, _ := fc.messages(1); got[0] != "2" {
		t.Fatalf("got %q", got[0])
	}
	fc.write("<a xmlns='" + wire.NSSM + "' h='0'/>")
	el, err := fc.r.Next()
	if err != nil || el.Name.Local != "error" || !strings.Contains(string(el.Raw), "unsupported-stanza-type") {
		t.Fatalf("got %v %v, want unsupported-stanza-type", el, err)
	}
	_ = fc.conn.Close()
	// Nothing is pending: the next stream carries only the next stanza.
	sendBodies(t, a, "v@b.example", "3")
	fc2 := f.accept()
	fc2.expect(wire.NSSM, "enable")
	fc2.write("<enabled xmlns='" + wire.NSSM + "'/>")
	if got, _ := fc2.messages(1); got[0] != "3" {
		t.Fatalf("second stream got %q, want 3 only", got[0])
	}
	noBounce(t, a)
}

// smBurst sends n stanzas over one XEP-0198 stream whose peer answers
// every <r/> at once with the count it has read, and fails unless all
// arrive with the stream intact. Benchmarks time it; a test runs it with a
// burst large enough that acks overtake the writer's batches.
func smBurst(tb testing.TB, n int, start, stop func()) {
	h := newHarness(tb)
	// The fake peer reads slower than Send queues: room for all of n.
	a := h.node("a.example", nodeOpt{mod: func(s *s2s.Server) { s.Limits.QueueSize = 1 << 22 }})
	f := h.newFakeRecv("b.example", true)
	sendBodies(tb, a, "v@b.example", "warm-up")
	fc := f.accept()
	fc.expect(wire.NSSM, "enable")
	fc.write("<enabled xmlns='" + wire.NSSM + "'/>")
	fc.messages(1)
	_ = fc.conn.SetDeadline(time.Time{})
	want := n + 1 // the warm-up message counts
	all := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		got := 1
		for {
			el, err := fc.r.Next()
			if err != nil {
				done <- err
				return
			}
			switch {
			case el.Name.Local == "message":
				if got++; got == want {
					close(all)
				}
			case el.Name.Space == wire.NSSM && el.Name.Local == "r":
				if err := fc.w.WriteRaw([]byte("<a xmlns='" + wire.NSSM + "' h='" + strconv.Itoa(got) + "'/>")); err != nil {
					done <- err
					return
				}
			}
		}
	}()
	st := msg(tb, "u@a.example", "v@b.example", "payload")
	start()
	for range n {
		if err := a.srv.Send(context.Background(), st); err != nil {
			tb.Fatal(err)
		}
	}
	select {
	case <-all:
	case err := <-done:
		tb.Fatalf("fake reader: %v", err)
	case <-time.After(hang):
		tb.Fatalf("not all %d stanzas delivered within %v", n, hang)
	}
	stop()
	_ = fc.conn.Close()
	<-done
	noBounce(tb, a)
}

// TestSMBurst: acks for a large burst can arrive while the batch they
// acknowledge is still being written; they must never be taken for acks of
// stanzas never sent (which once ended the stream with
// handled-count-too-high).
func TestSMBurst(t *testing.T) {
	smBurst(t, 300000, func() {}, func() {})
}

// BenchmarkSMThroughput measures Send to delivery on one XEP-0198 stream
// whose peer acknowledges every <r/> at once.
func BenchmarkSMThroughput(b *testing.B) {
	smBurst(b, b.N, func() { b.ReportAllocs(); b.ResetTimer() }, b.StopTimer)
}

// TestSMInbound: our inbound streams offer XEP-0198 and, once the
// initiating server enables it (after authentication), count the stanzas
// it sends and answer <r/> with that count; a second <enable/> is refused
// with <failed/> and the stream goes on.
func TestSMInbound(t *testing.T) {
	h := newHarness(t)
	b := h.node("b.example", nodeOpt{})
	p := h.rawPeer("a.example", b) // SASL EXTERNAL done, features read
	p.write("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	if got := p.readUntil("/>"); !strings.Contains(got, "<enabled xmlns='urn:xmpp:sm:3'/>") {
		t.Fatalf("answer to <enable/>: %q (want <enabled/> without resumption)", got)
	}
	for i := range 3 {
		p.write(fmt.Sprintf("<message from='u@a.example' to='v@b.example' id='sm%d'><body>x</body></message>", i))
	}
	for i := range 3 {
		select {
		case st := <-b.got:
			if st.ID != fmt.Sprintf("sm%d", i) {
				t.Fatalf("stanza %d: id %q", i, st.ID)
			}
		case <-time.After(hang):
			t.Fatalf("stanza %d not delivered", i)
		}
	}
	p.write("<r xmlns='urn:xmpp:sm:3'/>")
	if got := p.readUntil("/>"); !strings.Contains(got, "<a xmlns='urn:xmpp:sm:3' h='3'/>") {
		t.Fatalf("answer to <r/>: %q, want h='3'", got)
	}
	p.write("<enable xmlns='urn:xmpp:sm:3'/>")
	if got := p.readUntil("</failed>"); !strings.Contains(got, "unexpected-request") {
		t.Fatalf("answer to a second <enable/>: %q", got)
	}
	p.write("<message from='u@a.example' to='v@b.example' id='sm3'><body>x</body></message><r xmlns='urn:xmpp:sm:3'/>")
	if got := p.readUntil("/>"); !strings.Contains(got, "h='4'") {
		t.Fatalf("answer to <r/> after the refused <enable/>: %q, want h='4'", got)
	}
}

// TestSMBetweenServers: two Servers use XEP-0198 with each other (the
// receiving side offers it, the initiating side enables it) and a stream
// closed gracefully leaves nothing to resend: every stanza is delivered
// exactly once and nothing is bounced.
func TestSMBetweenServers(t *testing.T) {
	h := newHarness(t)
	b := h.node("b.example", nodeOpt{})
	a := h.node("a.example", nodeOpt{})
	ctx := context.Background()
	const n = 100
	for i := range n {
		if err := a.srv.Send(ctx, msg(t, "u@a.example", "v@b.example", strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case <-b.got:
		case <-time.After(hang):
			t.Fatalf("%d of %d delivered", i, n)
		}
	}
	// <enabled/> may be read after the deliveries: wait for it, bounded.
	for deadline := time.Now().Add(hang); !s2s.SMEnabled(a.srv, "b.example"); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("XEP-0198 not enabled on a's stream to b")
		}
	}
	sctx, cancel := context.WithTimeout(ctx, hang)
	defer cancel()
	if err := a.srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-b.got:
		t.Fatalf("stanza %s delivered again after the graceful close", st.ID)
	default:
	}
	noBounce(t, a)
}
