package wire_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"testing"

	"github.com/xmppfed/xmppfed/internal/wire"
)

// FuzzReader feeds arbitrary bytes after a valid header. The reader must
// never panic, never return an element over the size limit, and every Raw
// must parse on its own (with encoding/xml) to the same name.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		`<message to='b' from='a' type='chat' id='1'><body>hi &amp; &#233;</body></message>`,
		`<db:result from='a' to='b'>key</db:result><db:verify id='x'/>`,
		`<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>`,
		`<iq xmlns:x='urn:x' x:a='1'><x:q><![CDATA[<&>]]></x:q></iq> </stream:stream>`,
		`<message><!-- c --></message>`,
		`<message><body>&foo;</body></message>`,
		"<message>\xff</message>",
		`<a xmlns=''><b xmlns='urn:b'><c/></b></a>`,
	} {
		f.Add([]byte(s))
	}
	const limit = 1024
	f.Fuzz(func(t *testing.T, data []byte) {
		r := wire.NewReader(io.MultiReader(bytes.NewReader([]byte(hdr)), bytes.NewReader(data)), wire.Limits{MaxStanzaBytes: limit, MaxDepth: 8})
		if _, err := r.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		for range len(data) + 1 {
			e, err := r.Next()
			if err != nil {
				var se *wire.StreamError
				if err != wire.ErrStreamEnd && err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &se) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			if n := len(e.Raw); n > limit+200 { // Raw may gain xmlns declarations
				t.Fatalf("element of %d bytes over limit %d", n, limit)
			}
			n, err := wire.ParseNode(e.Raw)
			if err != nil {
				t.Fatalf("Raw %q does not parse alone: %v", e.Raw, err)
			}
			if n.Name != e.Name {
				t.Fatalf("Raw %q parses to %v, reader said %v", e.Raw, n.Name, e.Name)
			}
			if len(n.Attr) != len(e.Attr) {
				t.Fatalf("Raw %q: attrs %v vs %v", e.Raw, n.Attr, e.Attr)
			}
			for i := range n.Attr {
				if n.Attr[i] != e.Attr[i] {
					t.Fatalf("Raw %q: attr %v vs %v", e.Raw, n.Attr[i], e.Attr[i])
				}
			}
		}
	})
}

// FuzzHeader feeds arbitrary bytes as a stream header: no panic, and an
// accepted header is jabber:server in the streams namespace.
func FuzzHeader(f *testing.F) {
	for _, s := range []string{
		hdr,
		`<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>`,
		`<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>`,
		`<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client'>`,
		`<!DOCTYPE x><stream:stream/>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := wire.NewReader(bytes.NewReader(data), wire.Limits{MaxHeaderBytes: 512})
		h, err := r.ReadHeader()
		if err != nil {
			var se *wire.StreamError
			if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &se) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		if h.XMLNS != wire.NSServer {
			t.Fatalf("accepted default namespace %q", h.XMLNS)
		}
		// Whatever the header declared, the stream element is well formed:
		// encoding/xml agrees on its name once closed.
		d := xml.NewDecoder(io.MultiReader(bytes.NewReader(data), bytes.NewReader([]byte("</stream:stream>"))))
		for range len(data) + 1 {
			tok, err := d.Token()
			if err != nil {
				t.Fatalf("encoding/xml rejects accepted header %q: %v", data, err)
			}
			if st, ok := tok.(xml.StartElement); ok {
				if st.Name != (xml.Name{Space: wire.NSStreams, Local: "stream"}) {
					t.Fatalf("encoding/xml sees %v in %q", st.Name, data)
				}
				return
			}
		}
	})
}
