package s2s_test

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xmppfed/xmppfed/internal/wire"
	"github.com/xmppfed/xmppfed/s2s"
)

// Helpers of the hostile-peer suite (hostile_test.go): a raw peer that
// stops at any step of the negotiation, byte counting on the server's
// side, and the checks every case ends with.

// leakCheck makes t fail if a goroutine started during the test is still
// running once every cleanup registered after it has run (the nodes'
// Close, the DNS server's). Call it first.
func leakCheck(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// inCounter is a Server.DebugWriter that counts the bytes the server read
// from its peers (the "IN  " chunks debugIO writes, one Write each), so a
// test can bound what was read before a cut without a listener wrapper.
type inCounter struct{ n atomic.Int64 }

func (c *inCounter) Write(p []byte) (int, error) {
	if len(p) > 5 && string(p[:4]) == "IN  " {
		c.n.Add(int64(len(p) - 5)) // "IN  " and the trailing newline
	}
	return len(p), nil
}

// countIn sets a byte counter as the node's DebugWriter.
func countIn(c *inCounter) func(*s2s.Server) {
	return func(s *s2s.Server) { s.DebugWriter = c }
}

// dialRaw opens a plain TCP connection to n, closed when t ends.
func dialRaw(t *testing.T, n *node) *rawPeer {
	t.Helper()
	c, err := net.Dial("tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawPeer{t: t, conn: c}
}

// open sends the XML declaration and a stream header from 'from' to n and
// reads through the features.
func (p *rawPeer) open(from, to string) string {
	p.t.Helper()
	p.write("<?xml version='1.0'?>" + header(from, to))
	return p.readUntil("</stream:features>")
}

// tlsUp sends <starttls/>, expects <proceed/> and runs the client
// handshake with cfg (ServerName and roots set by the caller).
func (p *rawPeer) tlsUp(cfg *tls.Config) {
	p.t.Helper()
	p.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if got := p.readUntil("/>"); !strings.Contains(got, "<proceed") {
		p.t.Fatalf("after <starttls/>: %q", got)
	}
	tc := tls.Client(p.conn, cfg)
	_ = tc.SetDeadline(time.Now().Add(hang))
	if err := tc.Handshake(); err != nil {
		p.t.Fatalf("TLS handshake: %v", err)
	}
	_ = tc.SetDeadline(time.Time{})
	p.conn = tc
}

// clientTLS is the raw peer's TLS configuration towards server, with
// cert as its client certificate (nil: none).
func (h *harness) clientTLS(server string, cert *tls.Certificate) *tls.Config {
	cfg := &tls.Config{ServerName: server, RootCAs: h.ca.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// tlsPeer opens a stream from 'from' to n, negotiates STARTTLS with cert
// as the client certificate and restarts the stream; it returns the
// features after TLS, and the peer, not authenticated.
func (h *harness) tlsPeer(t *testing.T, from string, n *node, cert *tls.Certificate) (*rawPeer, string) {
	t.Helper()
	p := dialRaw(t, n)
	p.open(from, n.domain)
	p.tlsUp(h.clientTLS(n.domain, cert))
	p.write(header(from, n.domain))
	return p, p.readUntil("</stream:features>")
}

// authPeer is h.rawPeer (SASL EXTERNAL over STARTTLS, bidi) reporting to t.
func (h *harness) authPeer(t *testing.T, from string, n *node) *rawPeer {
	t.Helper()
	p := h.rawPeer(from, n)
	p.t = t
	return p
}

// authzid is the base64 initial response of SASL EXTERNAL naming id.
func authzid(id string) string { return base64.StdEncoding.EncodeToString([]byte(id)) }

// streamErrorCond returns the defined condition of the first stream error
// in got ("" when there is none).
func streamErrorCond(got string) string {
	i := strings.Index(got, "<stream:error>")
	if i < 0 {
		return ""
	}
	rest := got[i+len("<stream:error>"):]
	j := strings.Index(rest, " xmlns='"+wire.NSStreamErrors+"'")
	if j < 0 || !strings.HasPrefix(rest, "<") {
		return ""
	}
	return rest[1:j]
}

// expectClosedWith checks what a peer read until the server closed the
// connection: exactly the stream error cond (RFC 6120 §4.9.3), then
// </stream:stream> (§4.9.1.1: the stream is closed after a stream error).
func expectClosedWith(t *testing.T, got, cond string) {
	t.Helper()
	if c := streamErrorCond(got); c != cond {
		t.Errorf("stream error %q, want %q; read %.600q", c, cond, got)
		return
	}
	if !strings.HasSuffix(strings.TrimSpace(got), "</stream:stream>") {
		t.Errorf("no </stream:stream> after the stream error: %.600q", got)
	}
}

// readUntilClosed is readAll for a peer that may still be writing:
// reading ends at EOF or a reset.
func (p *rawPeer) readUntilClosed() string {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(hang))
	b := make([]byte, 32<<10)
	for {
		n, err := p.conn.Read(b)
		p.buf = append(p.buf, b[:n]...)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				p.t.Fatalf("connection still open after %v: %.600q", hang, p.buf)
			}
			return string(p.buf)
		}
	}
}

// pump writes chunk to p's connection up to total bytes from its own
// goroutine, until a write fails (the server cut the connection); wait
// returns the bytes written.
func pump(c net.Conn, first string, chunk []byte, total int64) (wait func() int64) {
	var wg sync.WaitGroup
	var n int64
	wg.Go(func() {
		m, err := c.Write([]byte(first))
		n += int64(m)
		for err == nil && n < total {
			m, err = c.Write(chunk)
			n += int64(m)
		}
	})
	return func() int64 { wg.Wait(); return n }
}

// fakeReceiver is a hand-driven receiving server (for cases where the
// Server under test initiates): it accepts connections and runs script on
// each.
type fakeReceiver struct {
	l  net.Listener
	wg sync.WaitGroup
}

func newFakeReceiver(t *testing.T, h *harness, domain string, script func(c net.Conn)) *fakeReceiver {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeReceiver{l: l}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	h.dns.AddSRV("_xmpp-server._tcp", domain, "xmpp."+domain, port, 0, 0)
	h.dns.AddHost("xmpp."+domain, netip.MustParseAddr("127.0.0.1"))
	f.wg.Go(func() {
		for range 64 {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(hang))
				script(c)
			})
		}
	})
	t.Cleanup(func() { _ = l.Close(); f.wg.Wait() })
	return f
}
