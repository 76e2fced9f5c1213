package federation

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/xmppfed/xmppfed/internal/wire"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
)

// FuzzProbePeer plays a peer that answers Check's stream header with
// arbitrary bytes: the probe must end with features or an error, never
// panic or hang, and judge any features it gets without panicking.
func FuzzProbePeer(f *testing.F) {
	const hdr = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='b.example' id='x1' version='1.0'>"
	for _, s := range []string{
		hdr + "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features><proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
		hdr + "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms><bidi xmlns='urn:xmpp:features:bidi'/></stream:features>",
		hdr + "<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback><sm xmlns='urn:xmpp:sm:3'/></stream:features>",
		hdr + "<stream:features/>",
		hdr + "<message from='b.example' to='a.example'><body>hi</body></message>",
		hdr + "<presence from='b.example' to='a.example'/>",
		hdr + "<iq type='get' id='1' from='b.example' to='a.example'><ping xmlns='urn:xmpp:ping'/></iq>",
		hdr + "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>no</text></stream:error></stream:stream>",
		hdr + "</stream:stream>",
		hdr + "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features><failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
		hdr + "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features><proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><extra/>",
		"<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' id='old'>",
		"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
		hdr + "<!-- comment --><stream:features/>",
		hdr + "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism> EXTERNAL </mechanism><mechanism>PLAIN</mechanism></mechanisms></stream:features>",
		"HTTP/1.1 400 Bad Request\r\n\r\n",
		"",
		hdr + "<stream:features><a><b><c><d/></c></b></a></stream:features>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, peer []byte) {
		ours, theirs := net.Pipe()
		var wg sync.WaitGroup
		wg.Go(func() { _, _ = io.Copy(io.Discard, theirs) })
		wg.Go(func() {
			_, _ = theirs.Write(peer)
			_ = theirs.Close()
		})
		defer func() {
			_ = ours.Close()
			wg.Wait()
		}()
		_ = ours.SetDeadline(time.Now().Add(5 * time.Second))
		p := &prober{c: &checker{srv: &Server{}, local: "a.example", step: time.Second}, domain: "b.example", conn: ours}
		features, h, err := p.header(ours)
		if err != nil {
			if features != nil {
				t.Fatal("features with an error")
			}
			return
		}
		for _, set := range []policy.Settings{{}, {TLS: policy.Optional, SASL: policy.Optional}, {TLS: policy.NotSupported, SASL: policy.NotSupported}} {
			for _, overTLS := range []bool{true, false} {
				d, err := judgeFeatures(features, h, set, overTLS)
				if d == "" {
					t.Fatalf("no description (err %v)", err)
				}
			}
		}
		if features.Child(wire.NSTLS, "starttls") != nil {
			_ = p.startTLS()
		}
	})
}

// FuzzReplyCondition: any stanza the pool accepts yields a condition.
func FuzzReplyCondition(f *testing.F) {
	for _, s := range []string{
		"<iq type='error' id='1' from='b.example' to='a.example'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
		"<iq type='error' id='1' from='b.example' to='a.example'><ping xmlns='urn:xmpp:ping'/><error type='cancel'><feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
		"<iq type='result' id='1' from='b.example' to='a.example'/>",
		"<iq type='error' id='1' from='b.example' to='a.example'/>",
		"<iq type='error' id='1' from='b.example' to='a.example'><error type='wait'><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>x</text></error></iq>",
		"<iq type='error' id='1' from='b.example' to='a.example'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><app xmlns='urn:example'/></error></iq>",
		"<message type='error' from='b@b.example' to='a@a.example'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
		"<message from='b@b.example' to='a@a.example'><body>hi</body></message>",
		"<presence type='error' from='b@b.example' to='a@a.example'><error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>",
		"<presence from='b@b.example' to='a@a.example'/>",
		"<iq type='error' id='1' from='b.example' to='a.example'><error><error><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>xmpp:c.example</gone></error></error></iq>",
		"<iq xmlns='jabber:server' type='error' id='&amp;' from='b.example' to='a.example'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
		"<iq type='error' id='1' from='b.example' to='a.example'><error type='cancel'><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
		"<iq type='error' id='1' from='b.example' to='a.example'><error type='cancel'><made-up xmlns='urn:example'/></error></iq>",
		"<message type='error' from='b.example' to='a.example'><error type='cancel'/><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
		"<presence type='error' from='b.example' to='a.example'><x xmlns='urn:example'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></x></presence>",
		"<iq/>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		st, err := s2s.ParseStanza(raw)
		if err != nil {
			return
		}
		if cond := replyCondition(st); cond == "" {
			t.Fatal("empty condition")
		}
	})
}
