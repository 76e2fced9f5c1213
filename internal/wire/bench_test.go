package wire_test

import (
	"bytes"
	"encoding/xml"
	"io"
	"testing"

	"github.com/xmppfed/xmppfed/internal/wire"
)

// stanza200 is a typical s2s chat message of 200 bytes.
const stanza200 = `<message from='juliet@capulet.example/balcony' to='romeo@montague.example' type='chat' id='a1b2c3d4e5f6'><body>Wherefore art thou, Romeo? Deny thy father and refuse thy name..... okay</body></message>`

func stanzas(n int) []byte {
	return bytes.Repeat([]byte(stanza200), n)
}

// repeater serves hdr once, then the same block of stanzas forever.
type repeater struct {
	head  []byte
	block []byte
	off   int
}

func (r *repeater) Read(p []byte) (int, error) {
	if len(r.head) > 0 {
		n := copy(p, r.head)
		r.head = r.head[n:]
		return n, nil
	}
	n := copy(p, r.block[r.off:])
	r.off = (r.off + n) % len(r.block)
	return n, nil
}

func BenchmarkReaderNext(b *testing.B) {
	if len(stanza200) != 200 {
		b.Fatalf("stanza is %d bytes", len(stanza200))
	}
	r := wire.NewReader(&repeater{head: []byte(hdr), block: stanzas(64)}, wire.Limits{})
	if _, err := r.ReadHeader(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(200)
	b.ReportAllocs()
	for b.Loop() {
		e, err := r.Next()
		if err != nil || len(e.Raw) == 0 {
			b.Fatal(err)
		}
	}
}

// BenchmarkReaderRelay is Next plus WriteRawNoFlush: one relayed stanza.
func BenchmarkReaderRelay(b *testing.B) {
	r := wire.NewReader(&repeater{head: []byte(hdr), block: stanzas(64)}, wire.Limits{})
	if _, err := r.ReadHeader(); err != nil {
		b.Fatal(err)
	}
	w := wire.NewWriter(io.Discard)
	b.SetBytes(200)
	b.ReportAllocs()
	for b.Loop() {
		e, err := r.Next()
		if err != nil {
			b.Fatal(err)
		}
		if err := w.WriteRawNoFlush(e.Raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodingXMLBaseline is the reference of the issue: the same
// stanza bytes through a plain encoding/xml Decoder.Token ->
// Encoder.EncodeToken loop, per stanza.
func BenchmarkEncodingXMLBaseline(b *testing.B) {
	src := &repeater{head: []byte(`<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>`), block: stanzas(64)}
	d := xml.NewDecoder(src)
	enc := xml.NewEncoder(io.Discard)
	if _, err := d.Token(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(200)
	b.ReportAllocs()
	for b.Loop() {
		depth := 0
		for {
			tok, err := d.Token()
			if err != nil {
				b.Fatal(err)
			}
			if err := enc.EncodeToken(tok); err != nil {
				b.Fatal(err)
			}
			switch tok.(type) {
			case xml.StartElement:
				depth++
			case xml.EndElement:
				depth--
			}
			if depth == 0 {
				break
			}
		}
		if err := enc.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriterWriteRaw(b *testing.B) {
	w := wire.NewWriter(io.Discard)
	raw := []byte(stanza200)
	b.SetBytes(200)
	b.ReportAllocs()
	for b.Loop() {
		if err := w.WriteRaw(raw); err != nil {
			b.Fatal(err)
		}
	}
}
