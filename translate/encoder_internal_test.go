package translate

import (
	"bytes"
	"encoding/xml"
	"testing"

	"mellium.im/xmpp/jid"
)

// xmlEncode writes toks with an xml.Encoder: what the encoder's
// primitives must write byte for byte.
func xmlEncode(t *testing.T, toks ...xml.Token) string {
	t.Helper()
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	for _, tok := range toks {
		if err := e.EncodeToken(tok); err != nil {
			t.Fatalf("EncodeToken(%#v): %v", tok, err)
		}
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// checkEncoderPrimitives compares each encoder primitive with encoding/xml
// on the given strings.
func checkEncoderPrimitives(t *testing.T, from, to jid.JID, id, typ, lang, text, value string) {
	t.Helper()
	a := func(local, value string) xml.Attr { return xml.Attr{Name: xml.Name{Local: local}, Value: value} }
	attrs := []xml.Attr{a("xmlns", nsServer), a("from", from.String()), a("to", to.String())}
	if id != "" {
		attrs = append(attrs, a("id", id))
	}
	if typ != "" {
		attrs = append(attrs, a("type", typ))
	}
	if lang != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Space: nsXML, Local: "lang"}, Value: lang})
	}
	root := xml.StartElement{Name: xml.Name{Local: "message"}, Attr: attrs}
	body := xml.StartElement{Name: xml.Name{Local: "body"}}
	state := xml.StartElement{Name: xml.Name{Space: nsChatStates, Local: "active"}}
	recv := xml.StartElement{Name: xml.Name{Space: nsReceipts, Local: "received"}, Attr: []xml.Attr{a("id", value)}}
	toks := []xml.Token{root, body}
	if text != "" {
		toks = append(toks, xml.CharData(text))
	}
	toks = append(toks, body.End(), state, state.End(), recv, recv.End(), root.End())
	want := xmlEncode(t, toks...)

	w := newEncoder(0)
	w.start("message", from, to, id, typ, lang)
	w.elem("", "body", text)
	w.elem(nsChatStates, "active", "")
	w.elemAttr(nsReceipts, "received", "id", value)
	w.end("message")
	if got := string(w.b); got != want {
		t.Errorf("encoder wrote\n%q\nencoding/xml writes\n%q", got, want)
	}
}

// TestEncoderMatchesEncodingXML holds the appending encoder to the bytes
// encoding/xml writes, on text rich in what needs escaping.
func TestEncoderMatchesEncodingXML(t *testing.T) {
	from, to := jid.MustParse("juliet@capulet.example/balcony"), jid.MustParse("romeo@montague.example")
	odd := jid.MustParse("a@b.example/<&'\"> x")
	for _, s := range []string{"", "plain", "<&>'\"", "\t\r\n", "a\r\nb", "é😀\u00a0", "\ufffd", "\x00\x01\x1f\x7f", "\xff\xfe", "\xed\xa0\x80", "\uFFFE\uFFFF", "]]>"} {
		checkEncoderPrimitives(t, from, to, s, s, s, s, s)
		checkEncoderPrimitives(t, odd, from.Domain(), "1", "chat", "en", s, s)
	}
}

// FuzzEncoder holds the appending encoder to encoding/xml on any strings
// and the JIDs they parse to.
func FuzzEncoder(f *testing.F) {
	f.Add("a@b.example/r", "c.example", "id1", "chat", "en", "hi <there> & 'you'", "x\ty")
	f.Add("a@b.example/\u00e9\t", "x@c.example", "", "", "", "\r\n\x00\xff", "\ufffd")
	f.Fuzz(func(t *testing.T, from, to, id, typ, lang, text, value string) {
		fj, err1 := jid.Parse(from)
		tj, err2 := jid.Parse(to)
		if err1 != nil || err2 != nil {
			fj, tj = jid.MustParse("a@b.example"), jid.MustParse("c.example")
		}
		checkEncoderPrimitives(t, fj, tj, id, typ, lang, text, value)
	})
}
