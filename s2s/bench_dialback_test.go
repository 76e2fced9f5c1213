package s2s

import (
	"bytes"
	"testing"

	"github.com/xmppfed/xmppfed/internal/wire"
)

// BenchmarkDialbackKey measures the XEP-0185 dialback key: HMAC-SHA256
// keyed with the hex SHA-256 of the secret, over the receiving and
// originating domains and a stream ID, in hex. The sender computes it once
// per authenticated stream and the Authoritative Server once per
// verification.
func BenchmarkDialbackKey(b *testing.B) {
	secret := []byte("s3cr3t-s3cr3t-s3cr3t-s3cr3t-0123")
	const id = "D60000229F3C2E4B"
	want := dialbackKey(secret, "b.example", "a.example", id)
	if len(want) != 64 {
		b.Fatalf("key %q", want)
	}
	b.ReportAllocs()
	for b.Loop() {
		if k := dialbackKey(secret, "b.example", "a.example", id); !keyEqual(k, want) {
			b.Fatal("key changed")
		}
	}
}

// routing200 is a 200-byte chat message between two servers.
const routing200 = `<message from='juliet@capulet.example/balcony' to='romeo@montague.example' type='chat' id='a1b2c3d4e5f6'><body>Wherefore art thou, Romeo? Deny thy father and refuse thy name..... okay</body></message>`

// BenchmarkParseStanza measures ParseStanza on a 200-byte chat message:
// the routing check a caller's bytes go through before Send (full
// encoding/xml token walk, restricted-XML checks, JID validation of from
// and to).
func BenchmarkParseStanza(b *testing.B) {
	raw := []byte(routing200)
	if len(raw) != 200 {
		b.Fatalf("stanza is %d bytes", len(raw))
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseStanza(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewStanzaFromReader measures the inbound routing check on a
// stream: newStanza on an element the wire.Reader has already framed
// (kind, from and to as JIDs, their domains), which is what handleStanza
// runs per received stanza before the authenticated-pair look-up. The
// framing itself is wire's BenchmarkReaderNext.
func BenchmarkNewStanzaFromReader(b *testing.B) {
	hdr := `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='capulet.example' to='montague.example' version='1.0'>`
	r := wire.NewReader(bytes.NewReader([]byte(hdr+routing200)), wire.Limits{})
	if _, err := r.ReadHeader(); err != nil {
		b.Fatal(err)
	}
	el, err := r.Next()
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		cache *addrCache
	}{{"uncached", nil}, {"cached", new(addrCache)}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				st, err := newStanza(el.Name.Local, el.Attr, el.Raw, bc.cache)
				if err != nil || st.dstDomain != "montague.example" {
					b.Fatal(err)
				}
			}
		})
	}
}
