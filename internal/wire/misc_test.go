package wire_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"mellium.im/xmpp/stream"

	"github.com/xmppfed/xmppfed/internal/wire"
)

func TestStreamErrorMethods(t *testing.T) {
	_, err := newStream(t, `<message><!-- x --></message>`, wire.Limits{}).Next()
	var se *wire.StreamError
	if !errors.As(err, &se) {
		t.Fatalf("%v is not a *StreamError", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "wire: restricted-xml: ") || !strings.Contains(msg, "comment") {
		t.Errorf("Error() = %q", msg)
	}
	if errors.Unwrap(err) == nil || errors.Unwrap(err) != se.Err {
		t.Errorf("Unwrap = %v", errors.Unwrap(err))
	}
	if !errors.Is(err, stream.Error{}) || errors.Is(err, stream.NotWellFormed) || errors.Is(err, io.EOF) {
		t.Errorf("Is matches the wrong targets")
	}
	if got := (&wire.StreamError{Cond: stream.Conflict}).Error(); got != "wire: conflict" {
		t.Errorf("Error() without Err = %q", got)
	}
}

func TestParseNodeErrors(t *testing.T) {
	for _, in := range []string{"", "<a>", "<a/><b/>", "text<a/>", "<a><!-- c --></a>", "<a></b>"} {
		if n, err := wire.ParseNode([]byte(in)); err == nil {
			t.Errorf("ParseNode(%q) = %+v, want error", in, n)
		}
	}
	e := &wire.Element{Raw: []byte("<a>")}
	if _, err := e.Children(); err == nil {
		t.Error("Children on broken Raw succeeded")
	}
	if _, err := e.Text(); err == nil {
		t.Error("Text on broken Raw succeeded")
	}
	if e.AttrValue("x") != "" {
		t.Error("AttrValue on empty element")
	}
}

func TestWriteErrorVariants(t *testing.T) {
	var buf bytes.Buffer
	w := wire.NewWriter(&buf)
	if err := w.WriteError(io.ErrUnexpectedEOF, ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "<undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>") {
		t.Errorf("got %s", buf.String())
	}
	buf.Reset()
	w.Reset(&buf)
	see := stream.SeeOtherHostError(&net.TCPAddr{IP: net.ParseIP("::1"), Port: 5269})
	if err := w.WriteStreamError(see, ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "<see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>[::1]:5269</see-other-host>") {
		t.Errorf("got %s", buf.String())
	}
	buf.Reset()
	w.Reset(&buf)
	if err := w.WriteStreamError(stream.Error{}, ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "<undefined-condition ") {
		t.Errorf("empty condition: %s", buf.String())
	}
	w.Reset(nil)
	if err := w.Close(); !errors.Is(err, wire.ErrNoTransport) {
		t.Errorf("Close without transport: %v", err)
	}
	if err := w.Flush(); !errors.Is(err, wire.ErrNoTransport) {
		t.Errorf("Flush without transport: %v", err)
	}
	w.Reset(&buf)
	if err := w.WriteWhitespace(); err != nil {
		t.Errorf("after Reset: %v", err)
	}
}

func TestNonASCIINames(t *testing.T) {
	r := newStream(t, `<méssage à='1'><bödy>ü</bödy></méssage>`, wire.Limits{})
	e, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if e.Name != (xml.Name{Space: wire.NSServer, Local: "méssage"}) || e.AttrValue("à") != "1" {
		t.Errorf("got %v %v", e.Name, e.Attr)
	}
	// U+2000 is not a name character.
	r = newStream(t, "<\u2000x/>", wire.Limits{})
	if _, err := r.Next(); !errors.Is(err, stream.NotWellFormed) {
		t.Errorf("got %v, want not-well-formed", err)
	}
}

func TestMiscWellFormedness(t *testing.T) {
	ok := []string{
		`<message  to = "x" ></message >`,
		`<message><body><![CDATA[a]]b]]]></body></message>`,
		"<message to='a\tb\r\nc'/>",
		`<a xmlns='urn:a'><b xmlns=''/></a>`,
		`<a xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:lang='en'/>`,
	}
	for _, in := range ok {
		r := newStream(t, in, wire.Limits{})
		e, err := r.Next()
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if n, err := wire.ParseNode(e.Raw); err != nil || n.Name != e.Name {
			t.Errorf("%s: Raw %s reparses to %v, %v", in, e.Raw, n, err)
		}
	}
	bad := []string{
		`<message to='x'from='y'/>`,
		`<message to 'x'/>`,
		`<message / >`,
		"<message><![CDATA[\x01]]></message>",
		`<message></message x>`,
		`<xmlns:a/>`,
		`<a xmlns:xmlns='urn:x'/>`,
		`<a xmlns:xml='urn:x'/>`,
		`<a:/>`,
		`<a &#38;/>`,
		`<message>&#xZZ;</message>`,
		`<message>&` + strings.Repeat("a", 40) + `;</message>`,
	}
	for _, in := range bad {
		r := newStream(t, in, wire.Limits{})
		var se *wire.StreamError
		if e, err := r.Next(); !errors.As(err, &se) {
			t.Errorf("%s: got %v, %v; want a stream error", in, e, err)
		}
	}
}

func TestLargeStanzaThenSmall(t *testing.T) {
	big := `<message><body>` + strings.Repeat("x", 200<<10) + `</body></message>`
	r := newStream(t, big+`<message/>`, wire.Limits{})
	for i := range 2 {
		if _, err := r.Next(); err != nil {
			t.Fatalf("element %d: %v", i, err)
		}
	}
}
