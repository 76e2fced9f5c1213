package wire_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"mellium.im/xmpp/stream"

	"github.com/xmppfed/xmppfed/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const hdr = `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='a.example' to='b.example' id='s1' version='1.0' xml:lang='en'>`

func newStream(t testing.TB, body string, lim wire.Limits) *wire.Reader {
	t.Helper()
	r := wire.NewReader(strings.NewReader(hdr+body), lim)
	if _, err := r.ReadHeader(); err != nil {
		t.Fatalf("ReadHeader: %v", err)
	}
	return r
}

func TestReadHeader(t *testing.T) {
	r := wire.NewReader(strings.NewReader(hdr), wire.Limits{})
	h, err := r.ReadHeader()
	if err != nil {
		t.Fatal(err)
	}
	want := wire.Header{From: "a.example", To: "b.example", ID: "s1", Version: "1.0", Lang: "en", XMLNS: wire.NSServer, Dialback: true}
	if h != want {
		t.Errorf("got %+v, want %+v", h, want)
	}
	if _, err := r.ReadHeader(); !errors.Is(err, wire.ErrHeaderRead) {
		t.Errorf("second ReadHeader: %v, want ErrHeaderRead", err)
	}
}

func TestReadHeaderVariants(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"no decl", `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>`},
		{"other prefix, escaped attr", "\n <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns=\"jabber:server\" to='a&amp;b'>"},
		{"bom", "\xef\xbb\xbf<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := wire.NewReader(strings.NewReader(tc.in+"<message/>"), wire.Limits{})
			h, err := r.ReadHeader()
			if err != nil {
				t.Fatal(err)
			}
			if h.XMLNS != wire.NSServer || h.Dialback {
				t.Errorf("header %+v", h)
			}
			if strings.Contains(tc.in, "a&amp;b") && h.To != "a&b" {
				t.Errorf("To = %q, want a&b", h.To)
			}
			e, err := r.Next()
			if err != nil || e.Name != (xml.Name{Space: wire.NSServer, Local: "message"}) {
				t.Fatalf("Next: %v %v", e, err)
			}
		})
	}
}

func TestReadHeaderErrors(t *testing.T) {
	const ss = `xmlns:stream='http://etherx.jabber.org/streams'`
	for _, tc := range []struct {
		name string
		in   string
		cond stream.Error
		lim  wire.Limits
	}{
		{"latin1", `<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream xmlns='jabber:server' ` + ss + `>`, stream.UnsupportedEncoding, wire.Limits{}},
		// XML 1.0 §2.8: version first, required, and 1.0 (found by FuzzHeader).
		{"xml version 0", `<?xml version='0'?><stream:stream xmlns='jabber:server' ` + ss + `>`, stream.NotWellFormed, wire.Limits{}},
		{"xml version 1.1", `<?xml version='1.1'?><stream:stream xmlns='jabber:server' ` + ss + `>`, stream.NotWellFormed, wire.Limits{}},
		{"xml decl without version", `<?xml encoding='UTF-8'?><stream:stream xmlns='jabber:server' ` + ss + `>`, stream.NotWellFormed, wire.Limits{}},
		{"xml decl out of order", `<?xml version='1.0' standalone='yes' encoding='UTF-8'?><stream:stream xmlns='jabber:server' ` + ss + `>`, stream.NotWellFormed, wire.Limits{}},
		{"xml decl unknown attribute", `<?xml version='1.0' foo='bar'?><stream:stream xmlns='jabber:server' ` + ss + `>`, stream.NotWellFormed, wire.Limits{}},
		{"wrong stream ns", `<stream:stream xmlns='jabber:server' xmlns:stream='urn:wrong'>`, stream.InvalidNamespace, wire.Limits{}},
		{"wrong default ns", `<stream:stream xmlns='jabber:client' ` + ss + `>`, stream.InvalidNamespace, wire.Limits{}},
		{"no default ns", `<stream:stream ` + ss + `>`, stream.InvalidNamespace, wire.Limits{}},
		{"wrong local", `<stream:foo xmlns='jabber:server' ` + ss + `>`, stream.InvalidNamespace, wire.Limits{}},
		{"undeclared prefix", `<stream:stream xmlns='jabber:server'>`, stream.NotWellFormed, wire.Limits{}},
		{"undeclared attr prefix", `<stream:stream xmlns='jabber:server' ` + ss + ` foo:bar='1'>`, stream.NotWellFormed, wire.Limits{}},
		{"comment", `<!-- hi --><stream:stream xmlns='jabber:server' ` + ss + `>`, stream.RestrictedXML, wire.Limits{}},
		{"pi", `<?xml version='1.0'?><?foo bar?><stream:stream xmlns='jabber:server' ` + ss + `>`, stream.RestrictedXML, wire.Limits{}},
		{"doctype", `<!DOCTYPE stream [<!ENTITY x "y">]><stream:stream xmlns='jabber:server' ` + ss + `>`, stream.RestrictedXML, wire.Limits{}},
		{"self closing", `<stream:stream xmlns='jabber:server' ` + ss + `/>`, stream.BadFormat, wire.Limits{}},
		{"text first", `hello`, stream.NotWellFormed, wire.Limits{}},
		{"too big", `<stream:stream xmlns='jabber:server' ` + ss + ` from='` + strings.Repeat("a", 300) + `'>`, stream.PolicyViolation, wire.Limits{MaxHeaderBytes: 200}},
		{"bad entity in attr", `<stream:stream xmlns='jabber:server' ` + ss + ` to='&x;'>`, stream.RestrictedXML, wire.Limits{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := wire.NewReader(strings.NewReader(tc.in), tc.lim)
			_, err := r.ReadHeader()
			var se *wire.StreamError
			if !errors.As(err, &se) || !errors.Is(err, tc.cond) {
				t.Fatalf("got %v, want stream error %s", err, tc.cond.Err)
			}
			if se.Cond.Err != tc.cond.Err {
				t.Errorf("Cond = %s, want %s", se.Cond.Err, tc.cond.Err)
			}
		})
	}
}

func TestReadHeaderEOF(t *testing.T) {
	r := wire.NewReader(strings.NewReader(""), wire.Limits{})
	if _, err := r.ReadHeader(); err != io.EOF {
		t.Errorf("empty input: %v, want io.EOF", err)
	}
	r = wire.NewReader(strings.NewReader("<stream:stream xmlns='jab"), wire.Limits{})
	if _, err := r.ReadHeader(); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated header: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestNextErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		cond stream.Error
		lim  wire.Limits
	}{
		{"comment", `<message><!-- x --></message>`, stream.RestrictedXML, wire.Limits{}},
		{"comment between", `<!-- x --><message/>`, stream.RestrictedXML, wire.Limits{}},
		{"pi", `<message><?php x?></message>`, stream.RestrictedXML, wire.Limits{}},
		{"xml decl later", `<?xml version='1.0'?>`, stream.RestrictedXML, wire.Limits{}},
		{"doctype", `<!DOCTYPE x><message/>`, stream.RestrictedXML, wire.Limits{}},
		{"directive inside", `<message><!ENTITY x 'y'></message>`, stream.RestrictedXML, wire.Limits{}},
		{"custom entity", `<message><body>&foo;</body></message>`, stream.RestrictedXML, wire.Limits{}},
		{"custom entity in attr", `<message to='&foo;'/>`, stream.RestrictedXML, wire.Limits{}},
		{"bare ampersand", `<message><body>a & b</body></message>`, stream.NotWellFormed, wire.Limits{}},
		{"bad char ref", `<message><body>&#0;</body></message>`, stream.NotWellFormed, wire.Limits{}},
		{"bad hex char ref", `<message><body>&#xD800;</body></message>`, stream.NotWellFormed, wire.Limits{}},
		{"mismatched", `<message><body></message></body>`, stream.NotWellFormed, wire.Limits{}},
		{"bad utf8", "<message><body>\xff\xfe</body></message>", stream.NotWellFormed, wire.Limits{}},
		{"overlong utf8", "<message><body>\xc0\xaf</body></message>", stream.NotWellFormed, wire.Limits{}},
		{"control char", "<message><body>\x01</body></message>", stream.NotWellFormed, wire.Limits{}},
		{"nul in text", "<message><body>a\x00b</body></message>", stream.NotWellFormed, wire.Limits{}},
		{"nul taken for '<'", "<message>\x00/message>", stream.NotWellFormed, wire.Limits{}},
		{"nul in attr", "<message to='a\x00b'/>", stream.NotWellFormed, wire.Limits{}},
		{"lt in attr", `<message to='a<b'/>`, stream.NotWellFormed, wire.Limits{}},
		{"unquoted attr", `<message to=a/>`, stream.NotWellFormed, wire.Limits{}},
		{"duplicate attr", `<message to='a' to='b'/>`, stream.NotWellFormed, wire.Limits{}},
		{"undeclared prefix", `<foo:message/>`, stream.NotWellFormed, wire.Limits{}},
		{"undeclared attr prefix", `<message foo:x='1'/>`, stream.NotWellFormed, wire.Limits{}},
		{"prefix out of scope", `<message><x:a xmlns:x='urn:x'/><x:b/></message>`, stream.NotWellFormed, wire.Limits{}},
		{"undeclare prefix", `<message xmlns:x=''/>`, stream.NotWellFormed, wire.Limits{}},
		{"same expanded attr name", `<message xmlns:p='urn:p' xmlns:q='urn:p' p:a='1' q:a='2'/>`, stream.NotWellFormed, wire.Limits{}},
		{"same expanded attr name in child", `<message><x xmlns:p='urn:p' xmlns:q='urn:&#x70;' p:a='1' q:a='2'/></message>`, stream.NotWellFormed, wire.Limits{}},
		{"same expanded name with xml", `<message xmlns:p='http://www.w3.org/XML/1998/namespace' xml:lang='en' p:lang='de'/>`, stream.NotWellFormed, wire.Limits{}},
		{"xml namespace on another prefix", `<message xmlns:p='http://www.w3.org/XML/1998/namespace'/>`, stream.NotWellFormed, wire.Limits{}},
		{"xml namespace as default", `<message xmlns='http://www.w3.org/XML/1998/namespace'/>`, stream.NotWellFormed, wire.Limits{}},
		{"xmlns namespace declared", `<message xmlns:p='http://www.w3.org/2000/xmlns/'/>`, stream.NotWellFormed, wire.Limits{}},
		{"xmlns namespace as default", `<message xmlns='http://www.w3.org/2000/xmlns/'/>`, stream.NotWellFormed, wire.Limits{}},
		{"cdata end in text", `<message><body>]]></body></message>`, stream.NotWellFormed, wire.Limits{}},
		{"text between", `hello<message/>`, stream.BadFormat, wire.Limits{}},
		{"wrong stream end", `</stream:foo>`, stream.NotWellFormed, wire.Limits{}},
		{"too big", `<message><body>` + strings.Repeat("x", 200) + `</body></message>`, stream.PolicyViolation, wire.Limits{MaxStanzaBytes: 100}},
		{"too deep", `<a><b><c><d/></c></b></a>`, stream.PolicyViolation, wire.Limits{MaxDepth: 3}},
		{"digit name", `<1message/>`, stream.NotWellFormed, wire.Limits{}},
		{"two colons", `<db:a:b/>`, stream.NotWellFormed, wire.Limits{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newStream(t, tc.in, tc.lim)
			e, err := r.Next()
			var se *wire.StreamError
			if !errors.As(err, &se) || se.Cond.Err != tc.cond.Err || !errors.Is(err, tc.cond) {
				t.Fatalf("got %v, %v; want stream error %s", e, err, tc.cond.Err)
			}
			if _, err2 := r.Next(); err2 != err {
				t.Errorf("error not sticky: second Next returned %v", err2)
			}
		})
	}
}

func TestStanzaTooBigApp(t *testing.T) {
	r := newStream(t, `<message><body>`+strings.Repeat("x", 200)+`</body></message>`, wire.Limits{MaxStanzaBytes: 100})
	_, err := r.Next()
	var se *wire.StreamError
	if !errors.As(err, &se) || se.App != wire.AppStanzaTooBig {
		t.Fatalf("got %#v, want App %s", err, wire.AppStanzaTooBig)
	}
	r = newStream(t, `<a><b><c><d/></c></b></a>`, wire.Limits{MaxDepth: 3})
	if _, err := r.Next(); !errors.As(err, &se) || se.App != "" {
		t.Fatalf("depth error %#v should have no App", err)
	}
}

func TestLimitExact(t *testing.T) {
	el := `<message><body>` + strings.Repeat("x", 50) + `</body></message>`
	r := newStream(t, el+el, wire.Limits{MaxStanzaBytes: len(el)})
	for i := range 2 {
		e, err := r.Next()
		if err != nil {
			t.Fatalf("element %d of exactly the limit: %v", i, err)
		}
		if e.Name.Local != "message" {
			t.Fatalf("got %v", e.Name)
		}
	}
	r = newStream(t, el, wire.Limits{MaxStanzaBytes: len(el) - 1})
	if _, err := r.Next(); !errors.Is(err, stream.PolicyViolation) {
		t.Fatalf("one byte over: %v, want policy-violation", err)
	}
}

// attrs is format (with one %d) repeated n times, numbered from 0.
func attrs(format string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, format, i)
	}
	return b.String()
}

// TestMaxAttrs: MaxAttrs (default 64) bounds one start tag's attributes,
// namespace declarations included, and the declarations in scope at once;
// one more is policy-violation. Declarations leave scope with their
// element.
func TestMaxAttrs(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		ok         bool
	}{
		{"64 attributes", "<x xmlns='urn:x'" + attrs(" a%d=''", 63) + "/>", true},
		{"65 attributes", "<x xmlns='urn:x'" + attrs(" a%d=''", 64) + "/>", false},
		{"65 on a child", "<x><y" + attrs(" a%d=''", 65) + "/></x>", false},
		{"64 declarations in scope", "<x" + attrs(" xmlns:p%d='urn:p'", 32) + "><y" + attrs(" xmlns:q%d='urn:q'", 32) + "/></x>", true},
		{"65 declarations in scope", "<x" + attrs(" xmlns:p%d='urn:p'", 32) + "><y" + attrs(" xmlns:q%d='urn:q'", 33) + "/></x>", false},
		{"declarations leave scope", "<x" + attrs(" xmlns:p%d='urn:p'", 32) + "><y" + attrs(" xmlns:q%d='urn:q'", 32) + "/><z" + attrs(" xmlns:r%d='urn:r'", 32) + "/></x>", true},
	} {
		_, err := newStream(t, tc.body, wire.Limits{}).Next()
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, stream.PolicyViolation) {
			t.Errorf("%s: %v, want policy-violation", tc.name, err)
		}
	}
	// A smaller limit applies to the stream header too.
	r := wire.NewReader(strings.NewReader(hdr), wire.Limits{MaxAttrs: 4})
	if _, err := r.ReadHeader(); !errors.Is(err, stream.PolicyViolation) {
		t.Errorf("a header of 8 attributes under MaxAttrs 4: %v", err)
	}
}

// BenchmarkReaderAttrsWorstCase frames a 500 KiB stanza built to make
// the attribute checks as slow as the limits allow: 62 namespace
// declarations in scope and elements of 62 prefixed attributes that share
// one local name (every pair's namespaces are compared). Before
// MaxAttrs, one element of 50 000 short attributes took 7.7 s.
func BenchmarkReaderAttrsWorstCase(b *testing.B) {
	el := "<y" + attrs(" p%d:a=''", 62) + "/>"
	body := "<message from='a@b' to='c@d'><x" + attrs(" xmlns:p%[1]d='urn:%[1]d'", 62) + ">" +
		strings.Repeat(el, (500<<10)/len(el)) + "</x></message>"
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := newStream(b, body, wire.Limits{}).Next(); err != nil {
			b.Fatal(err)
		}
	}
}

// endless yields hdr, then a prefix, then 'a' forever, counting bytes.
type endless struct {
	prefix []byte
	n      int64
}

func (e *endless) Read(p []byte) (int, error) {
	k := copy(p, e.prefix)
	e.prefix = e.prefix[k:]
	for i := k; i < len(p); i++ {
		p[i] = 'a'
	}
	e.n += int64(len(p))
	return len(p), nil
}

func TestHugeTextNodeNotBuffered(t *testing.T) {
	const limit = 64 << 10
	src := &endless{prefix: []byte(hdr + `<message><body>`)}
	r := wire.NewReader(src, wire.Limits{MaxStanzaBytes: limit})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	_, err := r.Next()
	if !errors.Is(err, stream.PolicyViolation) {
		t.Fatalf("got %v, want policy-violation", err)
	}
	// The reader may read ahead one buffer, never much more than the limit.
	if max := int64(3 * limit); src.n > max {
		t.Errorf("read %d bytes from an endless element, want <= %d", src.n, max)
	}
}

func TestHugeAttributeNotBuffered(t *testing.T) {
	const limit = 16 << 10
	src := &endless{prefix: []byte(hdr + `<message to='`)}
	r := wire.NewReader(src, wire.Limits{MaxStanzaBytes: limit})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, stream.PolicyViolation) {
		t.Fatalf("got %v, want policy-violation", err)
	}
	if src.n > 3*limit+int64(len(hdr)) {
		t.Errorf("read %d bytes", src.n)
	}
}

func TestEntitiesAndCharRefs(t *testing.T) {
	r := newStream(t, `<message to='a&amp;b&#x27;&#65;' id="q&quot;"><body>&lt;&gt;&amp;&apos;&quot;&#233;&#x1F600;<![CDATA[<raw>&]]></body></message>`, wire.Limits{})
	e, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if got := e.AttrValue("to"); got != "a&b'A" {
		t.Errorf("to = %q", got)
	}
	if got := e.AttrValue("id"); got != `q"` {
		t.Errorf("id = %q", got)
	}
	n, err := e.Node()
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Child(wire.NSServer, "body").Text; got != `<>&'"é😀<raw>&` {
		t.Errorf("body = %q", got)
	}
}

func TestKeepaliveAndActivity(t *testing.T) {
	pr, pw := io.Pipe()
	defer pr.Close()
	r := wire.NewReader(pr, wire.Limits{})
	done := make(chan error, 1)
	go func() {
		defer pw.Close()
		for _, s := range []string{hdr, " ", "\n", " \t ", "<message/>", "  ", "</stream:stream>"} {
			if _, err := pw.Write([]byte(s)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	a0 := r.LastActivity()
	if a0 < int64(len(hdr)) {
		t.Fatalf("LastActivity after header = %d, want >= %d", a0, len(hdr))
	}
	e, err := r.Next()
	if err != nil || e.Name.Local != "message" {
		t.Fatalf("Next: %v, %v", e, err)
	}
	if got, want := r.LastActivity(), int64(len(hdr)+1+1+3+len("<message/>")); got != want {
		t.Errorf("LastActivity = %d, want %d (whitespace counted)", got, want)
	}
	if _, err := r.Next(); err != wire.ErrStreamEnd {
		t.Fatalf("got %v, want ErrStreamEnd", err)
	}
	if _, err := r.Next(); err != wire.ErrStreamEnd {
		t.Fatalf("again: got %v, want ErrStreamEnd", err)
	}
	if got, want := r.LastActivity(), int64(len(hdr)+5+len("<message/>")+2+len("</stream:stream>")); got != want {
		t.Errorf("LastActivity = %d, want %d", got, want)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestEOF(t *testing.T) {
	r := newStream(t, "<message/> ", wire.Limits{})
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("clean end: %v, want io.EOF", err)
	}
	r = newStream(t, "<message><bo", wire.Limits{})
	if _, err := r.Next(); err != io.ErrUnexpectedEOF {
		t.Errorf("end inside element: %v, want io.ErrUnexpectedEOF", err)
	}
	r = wire.NewReader(strings.NewReader("<message/>"), wire.Limits{})
	if _, err := r.Next(); err != wire.ErrNoHeader {
		t.Errorf("Next before header: %v, want ErrNoHeader", err)
	}
}

// flaky returns a deadline error once, in the middle of an element.
type flaky struct {
	parts []string
	fail  int
}

func (f *flaky) Read(p []byte) (int, error) {
	if f.fail == 0 {
		f.fail = -1
		return 0, os.ErrDeadlineExceeded
	}
	f.fail--
	if len(f.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, f.parts[0])
	f.parts = f.parts[1:]
	return n, nil
}

func TestTransportErrorResumes(t *testing.T) {
	f := &flaky{parts: []string{hdr, "<message to='x'><bo", "dy>hi</body></message>"}, fail: 2}
	r := wire.NewReader(f, wire.Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want deadline error", err)
	}
	e, err := r.Next()
	if err != nil {
		t.Fatalf("after deadline: %v", err)
	}
	if txt := string(e.Raw); txt != `<message xmlns='jabber:server' to='x'><body>hi</body></message>` {
		t.Errorf("Raw = %s", txt)
	}
}

func TestResetAfterStartTLS(t *testing.T) {
	r := newStream(t, `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`, wire.Limits{})
	e, err := r.Next()
	if err != nil || e.Name != (xml.Name{Space: "urn:ietf:params:xml:ns:xmpp-tls", Local: "starttls"}) {
		t.Fatalf("Next: %v, %v", e, err)
	}
	if r.Buffered() != 0 {
		t.Errorf("Buffered = %d", r.Buffered())
	}
	before := r.LastActivity()
	// New transport, new stream with a different stream prefix and without db:.
	r.Reset(strings.NewReader(`<x:stream xmlns:x='http://etherx.jabber.org/streams' xmlns='jabber:server' id='2'><x:features/></x:stream>`))
	if _, err := r.Next(); err != wire.ErrNoHeader {
		t.Fatalf("Next after Reset: %v, want ErrNoHeader", err)
	}
	h, err := r.ReadHeader()
	if err != nil || h.ID != "2" || h.Dialback {
		t.Fatalf("ReadHeader after Reset: %+v, %v", h, err)
	}
	e, err = r.Next()
	if err != nil || e.Name != (xml.Name{Space: wire.NSStreams, Local: "features"}) {
		t.Fatalf("Next: %v, %v", e, err)
	}
	if _, err := r.Next(); err != wire.ErrStreamEnd {
		t.Fatalf("got %v, want ErrStreamEnd", err)
	}
	if r.LastActivity() <= before {
		t.Errorf("LastActivity went from %d to %d", before, r.LastActivity())
	}
	// The old prefix db: is gone with the old header.
	r.Reset(strings.NewReader(`<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:server'><db:result/>`))
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, stream.NotWellFormed) {
		t.Errorf("db: after Reset to a header without it: %v, want not-well-formed", err)
	}
}

func TestRawSelfContained(t *testing.T) {
	for _, tc := range []struct {
		name, in, raw string
		want          xml.Name
	}{
		{"dialback", `<db:result from='a.example' to='b.example'>key</db:result>`,
			`<db:result xmlns:db='jabber:server:dialback' from='a.example' to='b.example'>key</db:result>`,
			xml.Name{Space: wire.NSDialback, Local: "result"}},
		{"features", `<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>`,
			`<stream:features xmlns:stream='http://etherx.jabber.org/streams'><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>`,
			xml.Name{Space: wire.NSStreams, Local: "features"}},
		{"own ns", `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`,
			`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`,
			xml.Name{Space: "urn:ietf:params:xml:ns:xmpp-tls", Local: "starttls"}},
		{"own default", `<message xmlns='jabber:server' to='x'/>`, `<message xmlns='jabber:server' to='x'/>`,
			xml.Name{Space: wire.NSServer, Local: "message"}},
		{"nested", `<iq type='result' id='1'><query xmlns='jabber:iq:version'><x:y xmlns:x='urn:x' x:z='1'><db:k/></x:y></query></iq>`,
			`<iq xmlns='jabber:server' xmlns:db='jabber:server:dialback' type='result' id='1'><query xmlns='jabber:iq:version'><x:y xmlns:x='urn:x' x:z='1'><db:k/></x:y></query></iq>`,
			xml.Name{Space: wire.NSServer, Local: "iq"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newStream(t, tc.in, wire.Limits{})
			e, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if e.Name != tc.want {
				t.Errorf("Name = %v, want %v", e.Name, tc.want)
			}
			if string(e.Raw) != tc.raw {
				t.Errorf("Raw = %s\nwant  %s", e.Raw, tc.raw)
			}
			// Raw alone parses to the same name.
			n, err := wire.ParseNode(e.Raw)
			if err != nil {
				t.Fatal(err)
			}
			if n.Name != tc.want {
				t.Errorf("Raw parses to %v, want %v", n.Name, tc.want)
			}
		})
	}
}

func TestElementAccessors(t *testing.T) {
	r := newStream(t, `<db:result from='a.example' to='b.example' type='valid' xml:lang='en' xmlns:p='urn:p' p:q='v'> k e y </db:result>`+
		`<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>`, wire.Limits{})
	e, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if e.AttrValue("from") != "a.example" || e.AttrValue("type") != "valid" || e.AttrValue("lang") != "" || e.AttrValue("q") != "" {
		t.Errorf("attrs %v", e.Attr)
	}
	want := []xml.Attr{
		{Name: xml.Name{Local: "from"}, Value: "a.example"},
		{Name: xml.Name{Local: "to"}, Value: "b.example"},
		{Name: xml.Name{Local: "type"}, Value: "valid"},
		{Name: xml.Name{Space: wire.NSXML, Local: "lang"}, Value: "en"},
		{Name: xml.Name{Space: "urn:p", Local: "q"}, Value: "v"},
	}
	if len(e.Attr) != len(want) {
		t.Fatalf("Attr = %v, want %v", e.Attr, want)
	}
	for i := range want {
		if e.Attr[i] != want[i] {
			t.Errorf("Attr[%d] = %v, want %v", i, e.Attr[i], want[i])
		}
	}
	if txt, err := e.Text(); err != nil || txt != " k e y " {
		t.Errorf("Text = %q, %v", txt, err)
	}
	e, err = r.Next()
	if err != nil {
		t.Fatal(err)
	}
	ch, err := e.Children()
	if err != nil || len(ch) != 2 {
		t.Fatalf("Children = %v, %v", ch, err)
	}
	n, _ := e.Node()
	mech := n.Child("urn:ietf:params:xml:ns:xmpp-sasl", "mechanisms").Child("urn:ietf:params:xml:ns:xmpp-sasl", "mechanism")
	if mech == nil || mech.Text != "EXTERNAL" {
		t.Errorf("mechanism = %+v", mech)
	}
	if n.Child("urn:xmpp:features:dialback", "dialback") == nil || n.Child("", "dialback") != nil {
		t.Errorf("Child lookup by namespace is wrong")
	}
	var nilNode *wire.Node
	if nilNode.Child("a", "b") != nil || nilNode.AttrValue("x") != "" {
		t.Errorf("nil Node accessors")
	}
}

func TestManyElementsSmallReads(t *testing.T) {
	var in bytes.Buffer
	in.WriteString(hdr)
	for i := range 200 {
		in.WriteString(`<message to='b' id='` + strings.Repeat("i", i%7) + `'><body>hello &amp; é</body></message>` + strings.Repeat(" ", i%3))
	}
	in.WriteString(`</stream:stream>`)
	r := wire.NewReader(&oneByte{b: in.Bytes()}, wire.Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		e, err := r.Next()
		if err != nil {
			t.Fatalf("element %d: %v", i, err)
		}
		if e.AttrValue("id") != strings.Repeat("i", i%7) {
			t.Fatalf("element %d id %q", i, e.AttrValue("id"))
		}
	}
	if _, err := r.Next(); err != wire.ErrStreamEnd {
		t.Fatalf("got %v", err)
	}
}

type oneByte struct{ b []byte }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(o.b) == 0 {
		return 0, io.EOF
	}
	p[0] = o.b[0]
	o.b = o.b[1:]
	return 1, nil
}

// Namespaces in XML 1.0 §3 and §6.3 refuse only reserved namespaces in the
// wrong place and two attributes with one expanded name; the same local
// name in different namespaces, an unprefixed twin, and the xml prefix
// declared to its own namespace are fine.
func TestNamespaceRulesAccept(t *testing.T) {
	for _, in := range []string{
		`<message xmlns:p='urn:p' xmlns:q='urn:q' p:a='1' q:a='2' a='3'/>`,
		`<message xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:lang='en'/>`,
		`<message xmlns:p='urn:p'><x xmlns:p='urn:other' xmlns:q='urn:p' p:a='1' q:a='2'/></message>`,
	} {
		r := newStream(t, in, wire.Limits{})
		if _, err := r.Next(); err != nil {
			t.Errorf("%s: %v", in, err)
		}
	}
}

// chunked returns parts one Read each (the rest of a part on the next
// Read when p is short), and os.ErrDeadlineExceeded once, at Read number
// fail (from 0).
type chunked struct {
	parts []string
	fail  int
}

func (c *chunked) Read(p []byte) (int, error) {
	c.fail--
	if c.fail == -1 {
		return 0, os.ErrDeadlineExceeded
	}
	if len(c.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.parts[0])
	if c.parts[0] = c.parts[0][n:]; c.parts[0] == "" {
		c.parts = c.parts[1:]
	}
	return n, nil
}

// TestShrink: Shrink between any two calls (after elements, after a
// transport error that cut an element, with and without a buffer pool)
// changes nothing Next returns; with a pool and nothing buffered the
// Reader holds no buffer afterwards.
func TestShrink(t *testing.T) {
	parts := []string{hdr, "<message to='x' id='1' type='chat' xmlns:p='urn:p' p:a='v'><body>one</body></message>",
		"<iq type='get' id='2' to='x'><ping xmlns='urn:xmpp:ping'/></iq><mess", "age to='x'><b", "ody>two</body></message>",
		" <db:result from='a.example' to='b.example'>key</db:result>"}
	read := func(shrink bool, pool *wire.BufferPool) []string {
		f := &chunked{parts: append([]string(nil), parts...), fail: 4}
		r := wire.NewReader(f, wire.Limits{})
		if _, err := r.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		r.SetBufferPool(pool)
		var got []string
		for range 20 {
			if shrink {
				r.Shrink()
			}
			e, err := r.Next()
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				got = append(got, "deadline")
				continue
			case errors.Is(err, io.EOF):
				return got
			case err != nil:
				t.Fatalf("Next: %v", err)
			}
			got = append(got, e.Name.Space+" "+e.Name.Local+" "+string(e.Raw))
		}
		t.Fatal("no end")
		return nil
	}
	want := read(false, nil)
	if len(want) != 5 {
		t.Fatalf("reference read: %q", want)
	}
	for _, pool := range []*wire.BufferPool{nil, new(wire.BufferPool)} {
		if got := read(true, pool); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("with Shrink (pool %v):\n%s\nwant\n%s", pool != nil, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	r := newStream(t, "<message to='x'/>", wire.Limits{})
	r.SetBufferPool(new(wire.BufferPool))
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	r.Shrink()
	if n := r.Buffered(); n != 0 {
		t.Errorf("Buffered after Shrink = %d", n)
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after Shrink at the end: %v, want EOF", err)
	}
}
