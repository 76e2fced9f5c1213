package s2s

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
	"github.com/xmppfed/xmppfed/internal/wire"
	"github.com/xmppfed/xmppfed/policy"
)

// The negotiators' fuzz targets play arbitrary bytes as the peer of a
// stream being negotiated, over net.Pipe, without TLS (a partner whose
// settings allow plain TCP dialback, so every step but TLS is reachable).
// The peer's bytes end with EOF. Properties: the negotiator returns (no
// hang: the bound is generous and only catches a negotiator that waits
// on input that can never come), never panics, leaves no goroutine, and
// never authenticates what it must not.

// fuzzPlainSettings lets a peer negotiate without TLS: dialback alone.
func fuzzPlainSettings() policy.Settings {
	return policy.Settings{TLS: policy.NotSupported, SASL: policy.NotSupported}
}

// fuzzHeaderIn is a valid initiating stream header, the usual start of the
// inbound target's inputs.
const fuzzHeaderIn = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='peer.example' to='host.example' version='1.0'>"

// fuzzHeaderOut is a valid answering stream header, the usual start of
// the outbound target's inputs.
const fuzzHeaderOut = "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='peer.example' to='host.example' id='s1' version='1.0'>"

// fuzzServer is a Server for host.example with no certificate, an open
// federation policy with fuzzPlainSettings and an empty loopback DNS (every
// lookup fails fast, so no dialback verification can succeed).
func fuzzServer(f *testing.F) *Server {
	dns := dnsdiscotest.NewServer()
	s := &Server{
		Domains:  []string{"host.example"},
		Resolver: dns.Resolver(),
		Policy:   NewPolicy(f, fuzzPlainSettings(), nil),
	}
	f.Cleanup(func() {
		_ = s.Close()
		dns.Close()
		if !f.Failed() {
			goleak.VerifyNone(f)
		}
	})
	return s
}

// playPeer runs negotiate with one end of a pipe while the other end
// writes in and then closes, and everything the negotiator writes is
// read and returned. It fails t when negotiate does not return within a
// generous bound after the input ended.
func playPeer(t *testing.T, in []byte, negotiate func(ctx context.Context, c net.Conn) (*stream, error)) (*stream, []byte, error) {
	ours, theirs := net.Pipe()
	var wg sync.WaitGroup
	var out bytes.Buffer
	wg.Go(func() { _, _ = io.Copy(&out, theirs) })
	wg.Go(func() {
		_, _ = theirs.Write(in)
		// A short pause lets answers to the last element be read before
		// the pipe closes; their loss would only make the test weaker.
		time.Sleep(time.Millisecond)
		_ = theirs.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := negotiate(ctx, ours)
	if ctx.Err() != nil {
		t.Fatalf("negotiation still waiting when the input ended long ago (err %v)", err)
	}
	_ = ours.Close()
	_ = theirs.Close()
	wg.Wait()
	return st, out.Bytes(), err
}

// FuzzAcceptStream plays arbitrary bytes as an initiating server against
// the receiving side's negotiation (header, features, dialback requests
// and verifications, SASL, bidi, stream restarts). Nothing can
// authenticate here: there is no TLS (so no SASL EXTERNAL) and no DNS (so
// no dialback verification), so a stream returned is a bug.
func FuzzAcceptStream(f *testing.F) {
	db := "<db:result from='peer.example' to='host.example'>abc</db:result>"
	for _, seed := range []string{
		"",
		fuzzHeaderIn,
		fuzzHeaderIn + db,
		fuzzHeaderIn + "<db:verify from='peer.example' to='host.example' id='x'>abc</db:verify>",
		fuzzHeaderIn + "<db:result from='other.example' to='host.example'>abc</db:result>",
		fuzzHeaderIn + "<db:result from='peer.example' to='nobody.example'>abc</db:result>",
		fuzzHeaderIn + "<db:result from='peer.example' to='host.example' type='valid'/>",
		fuzzHeaderIn + "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>",
		fuzzHeaderIn + "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
		fuzzHeaderIn + "<bidi xmlns='urn:xmpp:features:bidi'/>",
		fuzzHeaderIn + "<message from='peer.example' to='host.example'><body>hi</body></message>",
		fuzzHeaderIn + "</stream:stream>",
		fuzzHeaderIn + fuzzHeaderIn,
		strings.Replace(fuzzHeaderIn, "from='peer.example'", "from='host.example'", 1),
		strings.Replace(fuzzHeaderIn, "from='peer.example' ", "", 1) + db,
		"<!DOCTYPE x>" + fuzzHeaderIn,
		fuzzHeaderIn + "<?pi x?>",
		fuzzHeaderIn + "<db:result from='peer.example' to='host.example'>" + strings.Repeat("a", 5000) + "</db:result>",
	} {
		f.Add([]byte(seed))
	}
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		st, _, err := playPeer(t, in, func(ctx context.Context, c net.Conn) (*stream, error) {
			return s.acceptStream(ctx, c, false)
		})
		if err == nil {
			s.unregister(st)
			_ = st.conn.Close()
			st.closeNeg(errors.New("fuzz"))
			t.Fatalf("stream from %q accepted without TLS and without a verifiable dialback key", st.remote)
		}
	})
}

// FuzzNegotiateOut plays arbitrary bytes as a receiving server against
// the initiating side's negotiation (header, features, dialback answers).
// The receiving server decides dialback, so its type='valid' legitimately
// authenticates the pair; what must never happen is a stream that
// authorizes anything but (host.example, peer.example) or that was
// negotiated with another domain.
func FuzzNegotiateOut(f *testing.F) {
	feats := "<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>"
	for _, seed := range []string{
		"",
		fuzzHeaderOut,
		fuzzHeaderOut + feats,
		fuzzHeaderOut + feats + "<db:result from='peer.example' to='host.example' type='valid'/>",
		fuzzHeaderOut + feats + "<db:result from='peer.example' to='host.example' type='invalid'/>",
		fuzzHeaderOut + feats + "<db:result from='evil.example' to='host.example' type='valid'/>",
		fuzzHeaderOut + feats + "<db:result from='peer.example' to='host.example' type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>",
		fuzzHeaderOut + "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>",
		fuzzHeaderOut + "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms></stream:features>",
		fuzzHeaderOut + "<stream:features/>",
		fuzzHeaderOut + "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
		strings.Replace(fuzzHeaderOut, "id='s1' ", "", 1) + feats,
		strings.Replace(fuzzHeaderOut, "version='1.0'", "", 1) + "<db:result from='peer.example' to='host.example' type='valid'/>",
		fuzzHeaderOut + feats + "<db:verify from='peer.example' to='host.example' id='s1' type='valid'/>",
	} {
		f.Add([]byte(seed))
	}
	s := fuzzServer(f)
	set := fuzzPlainSettings()
	f.Fuzz(func(t *testing.T, in []byte) {
		st, _, err := playPeer(t, in, func(ctx context.Context, c net.Conn) (*stream, error) {
			return s.negotiateOut(ctx, c, "host.example", "peer.example", set, false, certs.VerifyOptions{}, nil)
		})
		if err != nil {
			return
		}
		defer func() {
			_ = st.conn.Close()
			st.closeNeg(errors.New("fuzz"))
		}()
		if st.remote != "peer.example" || st.local != "host.example" {
			t.Fatalf("stream negotiated as %s -> %s", st.local, st.remote)
		}
		if !st.canSend(pair{local: "host.example", remote: "peer.example"}) {
			t.Fatal("negotiation succeeded without authorizing its pair")
		}
		for _, p := range []pair{
			{local: "host.example", remote: "evil.example"},
			{local: "other.example", remote: "peer.example"},
			{local: "peer.example", remote: "host.example"},
		} {
			if st.canSend(p) || st.canRecv(p) {
				t.Fatalf("pair %v authorized by negotiating host.example -> peer.example", p)
			}
		}
	})
}

// FuzzExternalIn checks SASL EXTERNAL as the receiving server (XEP-0178
// §3) against its definition: success only for mechanism EXTERNAL, when
// it was offered and the peer's certificate verified, with an authzid
// that is empty, "=" or the base64 of the stream's from domain; the
// answer is always exactly one <success/> or one <failure/>.
func FuzzExternalIn(f *testing.F) {
	b64 := base64.StdEncoding.EncodeToString
	for _, seed := range []struct {
		mech, text      string
		offered, cert   bool
		remote, authzid string
	}{
		{"EXTERNAL", "=", true, true, "peer.example", ""},
		{"EXTERNAL", "", true, true, "peer.example", ""},
		{"EXTERNAL", b64([]byte("peer.example")), true, true, "peer.example", ""},
		{"EXTERNAL", b64([]byte("PEER.example")), true, true, "peer.example", ""},
		{"EXTERNAL", b64([]byte("evil.example")), true, true, "peer.example", ""},
		{"EXTERNAL", "not base64!", true, true, "peer.example", ""},
		{"EXTERNAL", "=", false, true, "peer.example", ""},
		{"EXTERNAL", "=", true, false, "peer.example", ""},
		{"PLAIN", "=", true, true, "peer.example", ""},
		{"external", "=", true, true, "peer.example", ""},
		{"EXTERNAL", " =\n", true, true, "peer.example", ""},
	} {
		f.Add(seed.mech, seed.text, seed.offered, seed.cert, seed.remote)
	}
	srv := &Server{}
	srv.init()
	f.Fuzz(func(t *testing.T, mech, text string, offered, cert bool, remote string) {
		var raw strings.Builder
		raw.WriteString("<auth xmlns='" + wire.NSSASL + "' mechanism='")
		if xml.EscapeText(&raw, []byte(mech)) != nil {
			return
		}
		raw.WriteString("'>")
		if xml.EscapeText(&raw, []byte(text)) != nil {
			return
		}
		raw.WriteString("</auth>")
		el, ok := parseElement(raw.String())
		if !ok {
			return // not expressible as XML (e.g. invalid UTF-8 or control characters)
		}
		var out bytes.Buffer
		st := &stream{srv: srv, remote: remote, w: wire.NewWriter(&out)}
		if cert {
			st.peer = &certs.Result{}
		}
		okAuth, err := st.externalIn(el, offered)
		if err != nil {
			t.Fatalf("externalIn: %v", err)
		}
		wrote := out.String()
		success := strings.HasPrefix(wrote, "<success ")
		failure := strings.HasPrefix(wrote, "<failure ")
		if okAuth != success || success == failure || strings.Count(wrote, "<") != map[bool]int{true: 1, false: 3}[success] {
			t.Fatalf("externalIn reported %v and wrote %q", okAuth, wrote)
		}
		if !okAuth {
			return
		}
		// The definition, independently of checkAuthzid.
		el2, _ := parseElement(raw.String())
		got, _ := el2.Text()
		got = strings.TrimSpace(got)
		authzOK := got == "" || got == "="
		if !authzOK {
			dec, err := base64.StdEncoding.DecodeString(got)
			if err == nil {
				d, err := certs.NormalizeDomain(string(dec))
				authzOK = err == nil && d == remote
			}
		}
		if mech != "EXTERNAL" || !offered || !cert || !authzOK {
			t.Fatalf("SASL EXTERNAL succeeded for mechanism %q, offered %v, certificate %v, authzid %q, from %q", mech, offered, cert, got, remote)
		}
	})
}

// parseElement frames one element after a stream header, as the read loop
// would; ok is false when the framer refuses it.
func parseElement(s string) (*wire.Element, bool) {
	r := wire.NewReader(strings.NewReader("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"+s), wire.Limits{})
	if _, err := r.ReadHeader(); err != nil {
		return nil, false
	}
	el, err := r.Next()
	if err != nil {
		return nil, false
	}
	return el, true
}
