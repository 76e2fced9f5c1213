package s2s_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/internal/clock"
	"github.com/xmppfed/xmppfed/internal/wire"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
)

// TestHostilePeers is the hostile-peer suite (issue 9): each case is a
// script a raw peer plays against a real s2s.Server on loopback (TLS from
// a test CA, DNS from dnsdiscotest), asserting the exact stream (or
// stanza, SASL, dialback) error, that the stream is closed or kept as RFC
// 6120 says, that nothing the peer sent reached the Handler, and (every
// case) that no goroutine is left; the size cases also bound the bytes
// read before the cut. Timers run on a fake clock: no case waits on wall
// time except as a guard against a hang.
func TestHostilePeers(t *testing.T) {
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			leakCheck(t)
			tc.run(t, newHarness(t))
		})
	}
}

type hostileCase struct {
	name string
	run  func(t *testing.T, h *harness)
}

const (
	testSecret  = "hostile-secret-0123456789"
	sizeLimit   = 64 << 10 // MaxStanzaBytes of the size cases
	readSlack   = 160 << 10
	hugeStanza  = 100 << 20
	manyConns   = 2000
	establishTO = 10 * time.Second
)

func hostileCases() []hostileCase {
	return []hostileCase{
		// RFC 6120 §8.1.2.1, §4.9.3.9: a 'from' whose domain was not
		// authenticated on the stream is invalid-from; the stream ends.
		{"spoofed-from-after-auth", closedAfterAuth("<message from='m@other.example' to='v@b.example'><body>spoof</body></message>", "invalid-from")},
		// RFC 6120 §8.1.2.1 and §4.9.3.14 improper-addressing: on a
		// server-to-server stream every stanza carries 'from' and 'to'.
		{"missing-from-after-auth", closedAfterAuth("<message to='v@b.example'><body>who</body></message>", "improper-addressing")},
		// A subdomain is another domain: invalid-from (RFC 6120 §8.1.2.1).
		{"spoofed-from-subdomain", closedAfterAuth("<message from='m@sub.evil.example' to='v@b.example'><body>sub</body></message>", "invalid-from")},
		// RFC 6120 §4.9.3.23: a first-level element in the client
		// namespace is not a stanza of a server-to-server stream.
		{"client-namespace-stanza", closedAfterAuth("<message xmlns='jabber:client' from='e@evil.example' to='v@b.example'><body>c2s</body></message>", "unsupported-stanza-type")},
		// RFC 6120 §4.9.3.10: a stream header in the client namespace, or
		// with another stream namespace, is invalid-namespace.
		{"header-client-namespace", func(t *testing.T, h *harness) {
			b := h.node("b.example", nodeOpt{})
			p := dialRaw(t, b)
			p.write("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' from='evil.example' to='b.example'>")
			expectClosedWith(t, p.readAll(), "invalid-namespace")
		}},
		{"header-stream-namespace", func(t *testing.T, h *harness) {
			b := h.node("b.example", nodeOpt{})
			p := dialRaw(t, b)
			p.write("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='urn:example:not-streams' version='1.0' from='evil.example' to='b.example'>")
			expectClosedWith(t, p.readAll(), "invalid-namespace")
		}},
		// A stream claiming to come from one of our own domains (RFC 6120
		// §4.9.3.9): refused at the header, before any TLS.
		{"from-own-domain-header", func(t *testing.T, h *harness) {
			b := h.node("b.example", nodeOpt{})
			p := dialRaw(t, b)
			p.write("<?xml version='1.0'?>" + header("b.example", "b.example"))
			got := p.readAll()
			expectClosedWith(t, got, "invalid-from")
			if strings.Contains(got, "starttls") {
				t.Errorf("features offered to a stream from our own domain: %q", got)
			}
		}},
		// The same claim inside an authenticated stream's stanza.
		{"from-own-domain-stanza", closedAfterAuth("<message from='admin@b.example' to='v@b.example'><body>me</body></message>", "invalid-from")},
		// RFC 6120 §4.9.3.12: stanzas before authentication are
		// not-authorized, whether TLS was negotiated yet or not (a stanza
		// is not an attempt to skip TLS: it is unauthenticated data).
		{"stanza-before-auth-plain", func(t *testing.T, h *harness) {
			b := h.node("b.example", nodeOpt{})
			p := dialRaw(t, b)
			p.open("evil.example", "b.example")
			p.write("<message from='e@evil.example' to='v@b.example'><body>early</body></message>")
			expectClosedWith(t, p.readAll(), "not-authorized")
			nothingHandled(t, b)
		}},
		{"stanza-before-auth-tls", func(t *testing.T, h *harness) {
			b := h.node("b.example", nodeOpt{})
			p, _ := h.tlsPeer(t, "evil.example", b, nil)
			p.write("<iq type='get' id='i1' from='evil.example' to='b.example'><ping xmlns='urn:xmpp:ping'/></iq>")
			expectClosedWith(t, p.readAll(), "not-authorized")
			nothingHandled(t, b)
		}},
		// XEP-0220 §2.1.4: only answers to requests we made count. A
		// db:result type='valid' (and a db:verify answer) b never asked
		// for authorizes nothing: the stanza after it is still
		// not-authorized.
		{"dialback-result-never-asked", func(t *testing.T, h *harness) {
			b := h.node("b.example", nodeOpt{})
			p, _ := h.tlsPeer(t, "a.example", b, nil)
			p.write("<db:result from='a.example' to='b.example' type='valid'/>")
			p.write("<db:verify from='a.example' to='b.example' id='x' type='valid'/>")
			p.write("<message from='u@a.example' to='v@b.example'><body>in?</body></message>")
			expectClosedWith(t, p.readAll(), "not-authorized")
			nothingHandled(t, b)
		}},
		// The same on an established stream, for a pair never asked
		// about: ignored, and the stanza for that pair is invalid-from.
		{"dialback-result-never-asked-established", func(t *testing.T, h *harness) {
			b := h.node("b.example", nodeOpt{})
			p := h.authPeer(t, "evil.example", b)
			p.write("<db:result from='other.example' to='b.example' type='valid'/>")
			p.write("<message from='m@other.example' to='v@b.example'><body>in?</body></message>")
			expectClosedWith(t, p.readAll(), "invalid-from")
			nothingHandled(t, b)
		}},
		// XEP-0220 §2.1.3 / XEP-0185: a key that is not the Authoritative
		// Server's HMAC for this stream is answered invalid; the pair is
		// not authorized and the stream's stanzas stay not-authorized.
		// The control run (a genuine key) proves the verification really
		// reaches a.example.
		{"dialback-key-forged", func(t *testing.T, h *harness) {
			a, b := dialbackPair(h)
			_ = a
			p, id := dialbackPeer(t, h, b)
			p.write("<db:result from='a.example' to='b.example'>" + s2s.DialbackKey([]byte("not-the-secret-0123456"), "b.example", "a.example", id) + "</db:result>")
			expectDialback(t, p, "invalid")
			p.write("<message from='u@a.example' to='v@b.example'><body>forged</body></message>")
			expectClosedWith(t, p.readAll(), "not-authorized")
			nothingHandled(t, b)
			// Control: the genuine key for a new stream is valid.
			q, id2 := dialbackPeer(t, h, b)
			q.write("<db:result from='a.example' to='b.example'>" + s2s.DialbackKey([]byte(testSecret), "b.example", "a.example", id2) + "</db:result>")
			expectDialback(t, q, "valid")
		}},
		// A key is bound to the stream id (XEP-0185 §3): replaying the
		// key of an earlier, successful stream on a new one is invalid.
		{"dialback-key-replayed", func(t *testing.T, h *harness) {
			_, b := dialbackPair(h)
			p, id := dialbackPeer(t, h, b)
			key := s2s.DialbackKey([]byte(testSecret), "b.example", "a.example", id)
			p.write("<db:result from='a.example' to='b.example'>" + key + "</db:result>")
			expectDialback(t, p, "valid")
			p.write("<message from='u@a.example' to='v@b.example'><body>genuine</body></message>")
			recv(t, b.got, "the genuine stream's stanza")
			q, _ := dialbackPeer(t, h, b)
			q.write("<db:result from='a.example' to='b.example'>" + key + "</db:result>")
			expectDialback(t, q, "invalid")
			q.write("<message from='u@a.example' to='v@b.example'><body>replayed</body></message>")
			expectClosedWith(t, q.readAll(), "not-authorized")
			nothingHandled(t, b)
		}},
		// Two streams open at once: the key of the first, sent on the
		// second, is invalid there.
		{"dialback-key-cross-stream", func(t *testing.T, h *harness) {
			_, b := dialbackPair(h)
			_, id1 := dialbackPeer(t, h, b)
			q, id2 := dialbackPeer(t, h, b)
			if id1 == id2 {
				t.Fatalf("two streams share the id %q", id1)
			}
			q.write("<db:result from='a.example' to='b.example'>" + s2s.DialbackKey([]byte(testSecret), "b.example", "a.example", id1) + "</db:result>")
			expectDialback(t, q, "invalid")
			q.write("<message from='u@a.example' to='v@b.example'><body>cross</body></message>")
			expectClosedWith(t, q.readAll(), "not-authorized")
			nothingHandled(t, b)
		}},
		// A flood of db:verify on an unauthenticated stream: each is
		// answered (constant work, written before the next is read, so
		// a peer that does not read stalls itself), and the stream is cut
		// with policy-violation after a bounded number of elements.
		{"db-verify-flood-negotiating", func(t *testing.T, h *harness) {
			var in inCounter
			b := h.node("b.example", nodeOpt{mod: countIn(&in)})
			p, _ := h.tlsPeer(t, "a.example", b, nil)
			v := []byte("<db:verify from='a.example' to='b.example' id='i' >k</db:verify>")
			wait := pump(p.conn, "", v, int64(len(v))*5000)
			got := p.readUntilClosed()
			wait()
			n := strings.Count(got, "<db:verify ")
			if n == 0 || n > 1024 {
				t.Errorf("%d db:verify answered, want 1..1024", n)
			}
			expectClosedWith(t, got, "policy-violation")
			if r := in.n.Load(); r > int64(len(v))*1100+readSlack {
				t.Errorf("read %d bytes before the cut", r)
			}
		}},
		// On an established stream, db:verify requests are answered one
		// by one and the stream is kept (a peer may reuse a stream for
		// verifications, XEP-0220 §2.4); work per request is constant.
		{"db-verify-flood-established", func(t *testing.T, h *harness) {
			b := h.node("b.example", nodeOpt{})
			p := h.authPeer(t, "evil.example", b)
			const n = 3000
			v := []byte("<db:verify from='evil.example' to='b.example' id='i'>k</db:verify>")
			wait := pump(p.conn, "", v, int64(len(v))*n)
			for i := range n {
				if got := p.readUntil("/>"); !strings.Contains(got, "type='invalid'") {
					t.Fatalf("answer %d: %q", i, got)
				}
			}
			wait()
			p.write("<message from='e@evil.example' to='v@b.example'><body>still here</body></message>")
			recv(t, b.got, "stanza after the flood")
		}},
		// XEP-0178 §3, RFC 6120 §6.4.6: an authzid that is not the
		// stream's 'from' (which the certificate proves) is refused with
		// <invalid-authzid/>; the stream stays open (the peer may fall
		// back to dialback) but nothing is authorized.
		{"sasl-external-foreign-authzid", func(t *testing.T, h *harness) {
			b := h.node("b.example", nodeOpt{})
			cert, err := h.ca.IssueDomain("evil.example")
			if err != nil {
				t.Fatal(err)
			}
			p, f := h.tlsPeer(t, "evil.example", b, &cert)
			if !strings.Contains(f, "EXTERNAL") {
				t.Fatalf("EXTERNAL not offered to a valid certificate: %q", f)
			}
			p.write("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>" + authzid("other.example") + "</auth>")
			if got := p.readUntil("</failure>"); !strings.Contains(got, "<invalid-authzid/>") {
				t.Fatalf("SASL answer %q, want invalid-authzid", got)
			}
			p.write("<message from='m@other.example' to='v@b.example'><body>as other</body></message>")
			expectClosedWith(t, p.readAll(), "not-authorized")
			nothingHandled(t, b)
		}},
		// RFC 6120 §5.3.1, §13.8; RFC 7590: with TLS required, a
		// receiving server that never offers STARTTLS (a man in the
		// middle stripped it) gets no stanza, no dialback key and no SASL:
		// we close the stream and bounce the stanza saying why.
		{"starttls-stripped", func(t *testing.T, h *harness) {
			seen := make(chan string, 1)
			newFakeReceiver(t, h, "mitm.example", func(c net.Conn) {
				r := wire.NewReader(c, wire.Limits{})
				if _, err := r.ReadHeader(); err != nil {
					seen <- "header: " + err.Error()
					return
				}
				_, _ = c.Write([]byte(header("mitm.example", "a.example")[:len(header("mitm.example", "a.example"))-1] + " id='mitm1'>" +
					"<stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>"))
				var rest strings.Builder
				for range 64 {
					el, err := r.Next()
					if err != nil {
						break
					}
					rest.Write(el.Raw)
				}
				select {
				case seen <- rest.String():
				default:
				}
			})
			a := h.node("a.example", nodeOpt{})
			if err := a.srv.Send(context.Background(), msg(t, "u@a.example", "v@mitm.example", "secret")); err != nil {
				t.Fatal(err)
			}
			expectBounce(t, a, stanza.RemoteServerTimeout, "mitm.example", "tls")
			got := recv(t, seen, "what the fake receiver read")
			for _, bad := range []string{"<db:result", "<message", "<auth", "secret"} {
				if strings.Contains(got, bad) {
					t.Errorf("the stripping peer received %q: %q", bad, got)
				}
			}
		}},
		// RFC 6120 §5.4.2.2: STARTTLS when TLS is already up is answered
		// <failure/> and the stream is closed.
		{"starttls-twice", func(t *testing.T, h *harness) {
			b := h.node("b.example", nodeOpt{})
			p, _ := h.tlsPeer(t, "evil.example", b, nil)
			p.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
			got := p.readAll()
			if !strings.HasPrefix(got, "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>") || !strings.HasSuffix(got, "</stream:stream>") {
				t.Errorf("second STARTTLS: %q, want <failure/> then </stream:stream>", got)
			}
			nothingHandled(t, b)
		}},
		// We initiate; the response header claims another domain (RFC
		// 6120 §4.7.1, §4.9.3.9): invalid-from, nothing sent, bounced.
		{"response-header-wrong-from", func(t *testing.T, h *harness) {
			seen := make(chan string, 64)
			newFakeReceiver(t, h, "c.example", func(cn net.Conn) {
				r := wire.NewReader(cn, wire.Limits{})
				if _, err := r.ReadHeader(); err != nil {
					seen <- "header: " + err.Error()
					return
				}
				hdr := header("other.example", "a.example")
				_, _ = cn.Write([]byte(hdr[:len(hdr)-1] + " id='x1'><stream:features/>"))
				b := make([]byte, 4096)
				var got []byte
				for {
					n, err := cn.Read(b)
					got = append(got, b[:n]...)
					if err != nil {
						break
					}
				}
				seen <- string(got)
			})
			a := h.node("a.example", nodeOpt{})
			if err := a.srv.Send(context.Background(), msg(t, "u@a.example", "v@c.example", "secret")); err != nil {
				t.Fatal(err)
			}
			expectBounce(t, a, stanza.RemoteServerTimeout, "c.example")
			got := recv(t, seen, "what the receiving peer read")
			if streamErrorCond(got) != "invalid-from" || strings.Contains(got, "secret") {
				t.Errorf("the receiving peer read %q, want invalid-from and no stanza", got)
			}
		}},
		// RFC 6120 §13.7.2, RFC 6125, XEP-0178: a client certificate
		// for another domain, expired, self-signed or without serverAuth
		// /clientAuth usage does not authenticate: EXTERNAL is neither
		// offered nor accepted, and the peer's stanzas stay
		// not-authorized.
		{"cert-inbound-other-domain", inboundBadCert(certs.Leaf{DNSNames: []string{"other.example"}})},
		{"cert-inbound-expired", inboundBadCert(certs.Leaf{DNSNames: []string{"evil.example"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})},
		{"cert-inbound-self-signed", inboundBadCert(certs.Leaf{DNSNames: []string{"evil.example"}, SelfSigned: true})},
		{"cert-inbound-wrong-key-usage", inboundBadCert(certs.Leaf{DNSNames: []string{"evil.example"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}})},
		// The same certificates on a receiving server we connect to, with
		// TLS and SASL required: the stanza is never sent (bounced).
		{"cert-outbound-other-domain", outboundBadCert(certs.Leaf{DNSNames: []string{"other.example"}})},
		{"cert-outbound-expired", outboundBadCert(certs.Leaf{DNSNames: []string{"b.example"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})},
		{"cert-outbound-self-signed", outboundBadCert(certs.Leaf{DNSNames: []string{"b.example"}, SelfSigned: true})},
		{"cert-outbound-wrong-key-usage", outboundBadCert(certs.Leaf{DNSNames: []string{"b.example"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}})},
		// XEP-0368 §3 (SNI is the target domain) and RFC 6120 §4.9.3.6:
		// a direct TLS connection whose SNI names a domain we do not
		// serve is host-unknown once the header arrives, even when the
		// header's 'to' is ours.
		{"direct-tls-wrong-sni", func(t *testing.T, h *harness) {
			b := h.node("b.example", nodeOpt{directTLS: true})
			c, err := tls.Dial("tcp", b.addr, &tls.Config{ServerName: "other.example", InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, NextProtos: []string{"xmpp-server"}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			p := &rawPeer{t: t, conn: c}
			p.write("<?xml version='1.0'?>" + header("evil.example", "b.example"))
			expectClosedWith(t, p.readAll(), "host-unknown")
			nothingHandled(t, b)
		}},
		// RFC 6120 §11.1: no DTD, entity reference (other than the five
		// predefined), comment or processing instruction: restricted-xml.
		{"restricted-xml-dtd", restrictedXML("<!DOCTYPE message [<!ENTITY x 'y'>]>")},
		{"restricted-xml-entity", restrictedXML("<message from='e@evil.example' to='v@b.example'><body>&xxe;</body></message>")},
		{"restricted-xml-comment", restrictedXML("<message from='e@evil.example' to='v@b.example'><!-- hi --><body>x</body></message>")},
		{"restricted-xml-pi", restrictedXML("<message from='e@evil.example' to='v@b.example'><?evil run?><body>x</body></message>")},
		// Invalid UTF-8: RFC 6120 §4.9.3.22 names "violating the rules of
		// the UTF-8 encoding" as unsupported-encoding; XML 1.0 §4.3.3
		// makes it a fatal (well-formedness) error. Our framer answers
		// not-well-formed (internal/wire reader tests pin that); either
		// way the stream ends and nothing is delivered.
		{"invalid-utf8", closedAfterAuth("<message from='e@evil.example' to='v@b.example'><body>\xc0\xaf\xff</body></message>", "not-well-formed")},
		// RFC 6120 §4.9.3.14, §13.12; XEP-0478: an element over the
		// stanza limit ends the stream with policy-violation and
		// <stanza-too-big/>, cut while reading: what was read is bounded
		// by the limit plus a read buffer, whatever the peer sends.
		{"huge-attribute", oversized("<message from='e@evil.example' to='v@b.example' x='", "a", hugeStanza)},
		// wire.Limits.MaxAttrs (64): an element with more attributes,
		// or more namespace declarations in scope, ends the stream with
		// policy-violation at once; 50 000 short attributes in one
		// element (well inside the stanza limit) cost seconds of CPU
		// before the limit. 1 000 here: the write must fit the socket
		// buffer, since the server cuts the stream before reading it all.
		{"many-attributes", closedAfterAuth("<message from='e@evil.example' to='v@b.example'><x xmlns='urn:x'"+manyAttrs(" a%d=''", 1000)+"/></message>", "policy-violation")},
		{"many-namespace-declarations", closedAfterAuth("<message from='e@evil.example' to='v@b.example'><x"+manyAttrs(" xmlns:p%d='urn:p'", 40)+"><y"+manyAttrs(" xmlns:q%d='urn:q'", 40)+"/></x></message>", "policy-violation")},
		{"huge-text-node", oversized("<message from='e@evil.example' to='v@b.example'><body>", "t", hugeStanza)},
		{"stanza-100MiB", oversized("<message from='e@evil.example' to='v@b.example'>", "<body>0123456789abcdef</body>", hugeStanza)},
		// The stream header itself is bounded (wire.Limits.MaxHeaderBytes,
		// 16 KiB): a header with a huge attribute is cut before it ends,
		// after our header (RFC 6120 §4.9.1.1), with policy-violation.
		{"huge-stream-header", func(t *testing.T, h *harness) {
			var in inCounter
			b := h.node("b.example", nodeOpt{mod: countIn(&in)})
			p := dialRaw(t, b)
			hdr := header("evil.example", "b.example")
			wait := pump(p.conn, "<?xml version='1.0'?>"+hdr[:len(hdr)-1]+" x='", []byte(strings.Repeat("h", 32<<10)), hugeStanza)
			got := p.readUntilClosed()
			sent := wait()
			expectClosedWith(t, got, "policy-violation")
			if r := in.n.Load(); r > readSlack || sent >= hugeStanza {
				t.Errorf("read %d bytes of header (peer wrote %d)", r, sent)
			}
			nothingHandled(t, b)
		}},
		// Nesting beyond Limits.MaxDepth: policy-violation at the first
		// element too deep, not after reading 10 000 levels.
		{"deep-nesting-10000", func(t *testing.T, h *harness) {
			var in inCounter
			b := h.node("b.example", nodeOpt{mod: countIn(&in)})
			p := h.authPeer(t, "evil.example", b)
			before := in.n.Load()
			wait := pump(p.conn, "<message from='e@evil.example' to='v@b.example'>", []byte("<a>"), 3*10000)
			got := p.readUntilClosed()
			wait()
			expectClosedWith(t, got, "policy-violation")
			if r := in.n.Load() - before; r > readSlack {
				t.Errorf("read %d bytes of nesting before the cut", r)
			}
			nothingHandled(t, b)
		}},
		// Slowloris during negotiation: one byte per (fake) second of
		// stream header. The establishment timeout (REFERENCE §5.5 #49)
		// runs from the connection, not from the last byte: the stream
		// is cut with connection-timeout (RFC 6120 §4.9.3.4).
		{"slowloris-negotiation", func(t *testing.T, h *harness) {
			c := clock.NewFake(time.Unix(1e9, 0))
			b := h.node("b.example", nodeOpt{edit: gatewayOpt(0, establishTO, -1), mod: fakeClockOpt(c)})
			p := dialRaw(t, b)
			waitPending(t, c, 1)
			hdr := "<?xml version='1.0'?>" + header("evil.example", "b.example")
			for i := range 2 * int(establishTO/time.Second) {
				if _, err := p.conn.Write([]byte{hdr[i]}); err != nil {
					break
				}
				c.Advance(time.Second)
			}
			expectClosedWith(t, p.readUntilClosed(), "connection-timeout")
			nothingHandled(t, b)
		}},
		// Slowloris as the receiving server: we initiate, the peer
		// trickles its response header. Our establishment timeout (fake
		// clock) cuts the attempt, the peer reads connection-timeout, and
		// the stanza is bounced, never sent.
		{"slowloris-receiving-server", func(t *testing.T, h *harness) {
			c := clock.NewFake(time.Unix(1e9, 0))
			started := make(chan struct{}, 64)
			seen := make(chan string, 64)
			newFakeReceiver(t, h, "slow.example", func(cn net.Conn) {
				r := wire.NewReader(cn, wire.Limits{})
				if _, err := r.ReadHeader(); err != nil {
					seen <- "header: " + err.Error()
					return
				}
				_, _ = cn.Write([]byte("<?xml version='1.0'?><stream:str"))
				started <- struct{}{}
				b := make([]byte, 4096)
				var got []byte
				for {
					n, err := cn.Read(b)
					got = append(got, b[:n]...)
					if err != nil {
						break
					}
				}
				seen <- string(got)
			})
			a := h.node("a.example", nodeOpt{edit: gatewayOpt(0, establishTO, -1), mod: fakeClockOpt(c)})
			if err := a.srv.Send(context.Background(), msg(t, "u@a.example", "v@slow.example", "secret")); err != nil {
				t.Fatal(err)
			}
			recv(t, started, "the attempt to reach the trickling peer")
			c.Advance(establishTO + time.Second)
			expectBounce(t, a, stanza.RemoteServerTimeout, "slow.example")
			got := recv(t, seen, "what the trickling peer read")
			if streamErrorCond(got) != "connection-timeout" || strings.Contains(got, "secret") {
				t.Errorf("the trickling peer read %q, want connection-timeout and no stanza", got)
			}
		}},
		// Slowloris after authentication: a stanza trickled one byte per
		// (fake) second never completes, so it is not traffic: the
		// inactivity timeout (REFERENCE §5.5 #50) cuts the stream.
		{"slowloris-established", func(t *testing.T, h *harness) {
			c := clock.NewFake(time.Unix(1e9, 0))
			b := h.node("b.example", nodeOpt{
				edit: func(cfg *policy.Config) {
					gatewayOpt(60*time.Second, -1, 100*time.Second)(cfg)
					cfg.Gateway.DefaultPartner.DisableKeepAlive = true
				},
				mod: fakeClockOpt(c),
			})
			p := h.authPeer(t, "evil.example", b)
			waitPending(t, c, 1)
			slow := "<message from='e@evil.example' to='v@b.example'><body>" + strings.Repeat("z", 200)
			for i := range 150 {
				if _, err := p.conn.Write([]byte{slow[i]}); err != nil {
					break
				}
				c.Advance(time.Second)
			}
			got := p.readUntilClosed()
			expectClosedWith(t, got, "connection-timeout")
			if !strings.Contains(got, "inactivity") {
				t.Errorf("not the inactivity timeout: %q", got)
			}
			nothingHandled(t, b)
		}},
		// Thousands of connections that never send a header: each is cut
		// by the establishment timeout (fake clock) with
		// connection-timeout after our header (RFC 6120 §4.9.1.1), and the
		// server's goroutines go back to the baseline.
		{"silent-connections-2000", func(t *testing.T, h *harness) {
			c := clock.NewFake(time.Unix(1e9, 0))
			b := h.node("b.example", nodeOpt{edit: gatewayOpt(0, establishTO, -1), mod: fakeClockOpt(c)})
			base := runtime.NumGoroutine()
			var ms0, ms1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms0)
			conns := make([]net.Conn, 0, manyConns)
			t.Cleanup(func() {
				for _, c := range conns {
					_ = c.Close()
				}
			})
			for range manyConns {
				cn, err := net.Dial("tcp", b.addr)
				if err != nil {
					t.Fatalf("dial %d: %v", len(conns), err)
				}
				conns = append(conns, cn)
			}
			waitPending(t, c, manyConns)
			runtime.GC()
			runtime.ReadMemStats(&ms1)
			t.Logf("%d silent connections: %d goroutines over the baseline, heap in use +%d KiB (%d bytes each)", manyConns,
				runtime.NumGoroutine()-base, (int64(ms1.HeapInuse)-int64(ms0.HeapInuse))>>10, (int64(ms1.HeapInuse)-int64(ms0.HeapInuse))/manyConns)
			c.Advance(establishTO + time.Second)
			bad := 0
			for i, cn := range conns {
				p := &rawPeer{t: t, conn: cn}
				if got := p.readUntilClosed(); streamErrorCond(got) != "connection-timeout" {
					if bad++; bad < 4 {
						t.Errorf("connection %d: %q", i, got)
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d connections not cut with connection-timeout", bad, manyConns)
			}
			n := 0
			for deadline := time.Now().Add(hang); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				if n = runtime.NumGoroutine(); n <= base+5 {
					break
				}
			}
			if n > base+5 {
				t.Errorf("%d goroutines, %d before the connections", n, base)
			}
			if s := b.srv.Stats().Streams; len(s) != 0 {
				t.Errorf("streams registered: %+v", s)
			}
		}},
		// Limits.Negotiating: more silent connections than the Server lets
		// negotiate at once. Each new one pushes the oldest out (closed),
		// so the flood costs bounded memory and a partner arriving last
		// still gets in.
		{"silent-connections-over-limit", func(t *testing.T, h *harness) {
			const limit, total = 16, 40
			b := h.node("b.example", nodeOpt{mod: func(s *s2s.Server) { s.Limits.Negotiating = limit }})
			conns := make([]net.Conn, 0, total)
			t.Cleanup(func() {
				for _, c := range conns {
					_ = c.Close()
				}
			})
			for range total {
				cn, err := net.Dial("tcp", b.addr)
				if err != nil {
					t.Fatalf("dial %d: %v", len(conns), err)
				}
				conns = append(conns, cn)
			}
			buf := make([]byte, 1)
			for i, cn := range conns[:total-limit] {
				_ = cn.SetReadDeadline(time.Now().Add(hang))
				if _, err := cn.Read(buf); err == nil || isTimeout(err) {
					t.Fatalf("connection %d (of the oldest %d): read %v, want it closed", i, total-limit, err)
				}
			}
			for i, cn := range conns[total-limit:] {
				// Still open: a short read times out (a closed one
				// would fail at once).
				_ = cn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				if _, err := cn.Read(buf); !isTimeout(err) {
					t.Fatalf("connection %d (of the newest %d): read %v, want it still open", total-limit+i, limit, err)
				}
			}
			p := h.authPeer(t, "a.example", b)
			p.write("<message from='u@a.example' to='v@b.example' id='in'><body>x</body></message>")
			if got := recv(t, b.got, "the partner's stanza after the flood"); got.ID != "in" {
				t.Fatalf("got %q", got.ID)
			}
		}},
		// REFERENCE §5.5 #47: streams over the gateway's ConnectionLimit
		// are refused with resource-constraint right after the header
		// (RFC 6120 §4.9.3.17), before TLS; the ones in keep working.
		{"connection-limit", func(t *testing.T, h *harness) {
			b := h.node("b.example", nodeOpt{edit: func(c *policy.Config) { c.Gateway.ConnectionLimit, c.Gateway.PartnerConnectionLimit = 3, 3 }})
			var in []*rawPeer
			for i := range 3 {
				in = append(in, h.authPeer(t, fmt.Sprintf("d%d.example", i), b))
			}
			for i := range 20 {
				p := dialRaw(t, b)
				p.write("<?xml version='1.0'?>" + header(fmt.Sprintf("x%d.example", i), "b.example"))
				got := p.readAll()
				expectClosedWith(t, got, "resource-constraint")
				if strings.Contains(got, "starttls") {
					t.Fatalf("features offered over the limit: %q", got)
				}
			}
			in[0].write("<message from='u@d0.example' to='v@b.example'><body>ok</body></message>")
			if got := recv(t, b.got, "stanza on an admitted stream"); got.From.String() != "u@d0.example" {
				t.Errorf("from %s", got.From)
			}
		}},
		// A stream header without 'from' (XEP-0220 §2.1.1) names its
		// domain in the first db:result: the stream counts against the
		// limits from then on, before any verification connection, so
		// leaving 'from' out is no way around them.
		{"connection-limit-without-from", func(t *testing.T, h *harness) {
			verif := newAcceptCounter(t)
			h.dns.AddSRV("_xmpp-server._tcp", "evil.example", "xmpp.evil.example", verif.port(), 0, 0)
			h.dns.AddHost("xmpp.evil.example", netip.MustParseAddr("127.0.0.1"))
			b := h.node("b.example", nodeOpt{edit: func(c *policy.Config) { c.Gateway.PartnerConnectionLimit = 1 }})
			h.authPeer(t, "evil.example", b)
			p := dialRaw(t, b)
			p.write("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0' to='b.example'>")
			p.readUntil("</stream:features>")
			p.tlsUp(h.clientTLS("b.example", nil))
			p.write("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0' to='b.example'>")
			p.readUntil("</stream:features>")
			p.write("<db:result from='evil.example' to='b.example'>k</db:result>")
			expectClosedWith(t, p.readAll(), "resource-constraint")
			if n := verif.n.Load(); n != 0 {
				t.Errorf("%d verification connections for a stream over the limit", n)
			}
			nothingHandled(t, b)
		}},
		// RFC 6120 §4.3.3 (restart after TLS/SASL: a new stream between
		// the same parties, §4.7.1-2): a changed 'from' is invalid-from,
		// a changed 'to' host-unknown (the certificate and the admission
		// were for the first one).
		{"restart-changes-from", func(t *testing.T, h *harness) {
			b := h.node("b.example", nodeOpt{domains: []string{"b2.example"}})
			p := dialRaw(t, b)
			p.open("evil.example", "b.example")
			p.tlsUp(h.clientTLS("b.example", nil))
			p.write(header("other.example", "b.example"))
			expectClosedWith(t, p.readAll(), "invalid-from")
			nothingHandled(t, b)
		}},
		{"restart-changes-to", func(t *testing.T, h *harness) {
			b := h.node("b.example", nodeOpt{domains: []string{"b2.example"}})
			p := dialRaw(t, b)
			p.open("evil.example", "b.example")
			p.tlsUp(h.clientTLS("b.example", nil))
			p.write(header("evil.example", "b2.example"))
			expectClosedWith(t, p.readAll(), "host-unknown")
			nothingHandled(t, b)
		}},
		{"restart-after-sasl-drops-from", func(t *testing.T, h *harness) {
			b := h.node("b.example", nodeOpt{})
			cert, err := h.ca.IssueDomain("evil.example")
			if err != nil {
				t.Fatal(err)
			}
			p, _ := h.tlsPeer(t, "evil.example", b, &cert)
			p.write("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
			p.readUntil("success")
			p.readUntil(">")
			p.write("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='b.example'>")
			expectClosedWith(t, p.readAll(), "invalid-from")
			nothingHandled(t, b)
		}},
	}
}

// dialbackPair starts a.example (the Authoritative Server, with the test
// secret) and b.example, which does not trust a's peers' certificates:
// a raw peer claiming a.example must use dialback.
func dialbackPair(h *harness) (a, b *node) {
	a = h.node("a.example", nodeOpt{edit: secretOpt(testSecret)})
	b = h.node("b.example", nodeOpt{})
	return a, b
}

// dialbackPeer opens a stream from a.example to b over STARTTLS without a
// client certificate and returns it with b's stream id after the restart.
func dialbackPeer(t *testing.T, h *harness, b *node) (*rawPeer, string) {
	t.Helper()
	p, f := h.tlsPeer(t, "a.example", b, nil)
	if !strings.Contains(f, "urn:xmpp:features:dialback") {
		t.Fatalf("dialback not offered: %q", f)
	}
	i := strings.Index(f, " id='")
	if i < 0 {
		t.Fatalf("no stream id in %q", f)
	}
	id := f[i+5:]
	return p, id[:strings.IndexByte(id, '\'')]
}

// expectDialback reads b's db:result answer and checks its type.
func expectDialback(t *testing.T, p *rawPeer, typ string) {
	t.Helper()
	got := p.readUntil("/>")
	if !strings.Contains(got, "<db:result") || !strings.Contains(got, "type='"+typ+"'") {
		t.Fatalf("dialback answer %q, want type %s", got, typ)
	}
}

func inboundBadCert(l certs.Leaf) func(t *testing.T, h *harness) {
	return func(t *testing.T, h *harness) {
		b := h.node("b.example", nodeOpt{})
		cert, err := h.ca.Issue(l)
		if err != nil {
			t.Fatal(err)
		}
		p, f := h.tlsPeer(t, "evil.example", b, &cert)
		if strings.Contains(f, "EXTERNAL") {
			t.Errorf("EXTERNAL offered to a bad certificate: %q", f)
		}
		p.write("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
		if got := p.readUntil("</failure>"); !strings.Contains(got, "<not-authorized/>") {
			t.Fatalf("SASL answer %q, want not-authorized", got)
		}
		p.write("<message from='e@evil.example' to='v@b.example'><body>x</body></message>")
		expectClosedWith(t, p.readAll(), "not-authorized")
		nothingHandled(t, b)
	}
}

func outboundBadCert(l certs.Leaf) func(t *testing.T, h *harness) {
	return func(t *testing.T, h *harness) {
		req := &policy.Settings{TLS: policy.Required, SASL: policy.Required}
		a := h.node("a.example", nodeOpt{set: req})
		cert, err := h.ca.Issue(l)
		if err != nil {
			t.Fatal(err)
		}
		b := h.node("b.example", nodeOpt{cert: &cert, set: req})
		if err := a.srv.Send(context.Background(), msg(t, "u@a.example", "v@b.example", "x")); err != nil {
			t.Fatal(err)
		}
		expectBounce(t, a, stanza.RemoteServerTimeout, "b.example", "tls")
		nothingHandled(t, b)
	}
}

// manyAttrs is format (with one %d) repeated n times, numbered from 0.
func manyAttrs(format string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, format, i)
	}
	return b.String()
}

// restrictedXML is a case where an authenticated peer writes xml that
// RFC 6120 §11.1 forbids: restricted-xml.
func restrictedXML(xml string) func(t *testing.T, h *harness) {
	return closedAfterAuth(xml, "restricted-xml")
}

// closedAfterAuth is a case where an authenticated peer (evil.example)
// writes xml and the stream must end with the stream error cond, nothing
// handled.
func closedAfterAuth(xml, cond string) func(t *testing.T, h *harness) {
	return func(t *testing.T, h *harness) {
		b := h.node("b.example", nodeOpt{})
		p := h.authPeer(t, "evil.example", b)
		p.write(xml)
		expectClosedWith(t, p.readAll(), cond)
		nothingHandled(t, b)
	}
}

// oversized streams start, then chunk repeated up to total bytes, on an
// authenticated stream to a node with MaxStanzaBytes sizeLimit.
func oversized(start, chunk string, total int64) func(t *testing.T, h *harness) {
	return func(t *testing.T, h *harness) {
		var in inCounter
		b := h.node("b.example", nodeOpt{mod: countIn(&in), edit: func(c *policy.Config) { c.Gateway.MaxStanzaBytes = sizeLimit }})
		p := h.authPeer(t, "evil.example", b)
		before := in.n.Load()
		var ms0 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		wait := pump(p.conn, start, []byte(strings.Repeat(chunk, max(1, 32<<10/len(chunk)))), total)
		got := p.readUntilClosed()
		sent := wait()
		var ms1 runtime.MemStats
		runtime.ReadMemStats(&ms1)
		expectClosedWith(t, got, "policy-violation")
		if !strings.Contains(got, "<stanza-too-big xmlns='urn:xmpp:errors'/>") {
			t.Errorf("no <stanza-too-big/>: %.400q", got)
		}
		read := in.n.Load() - before
		t.Logf("peer wrote %d bytes, server read %d before the cut (limit %d); allocated %d KiB meanwhile", sent, read, sizeLimit, (ms1.TotalAlloc-ms0.TotalAlloc)>>10)
		if read > sizeLimit+readSlack {
			t.Errorf("server read %d bytes, limit %d", read, sizeLimit)
		}
		if sent >= total {
			t.Errorf("the whole %d bytes were accepted", total)
		}
		if a := ms1.TotalAlloc - ms0.TotalAlloc; a > 32<<20 {
			t.Errorf("%d MiB allocated while refusing the stanza", a>>20)
		}
		nothingHandled(t, b)
	}
}

// isTimeout reports whether err is a deadline's timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
