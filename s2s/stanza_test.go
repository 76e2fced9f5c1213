package s2s_test

import (
	"errors"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/s2s"
)

func TestParseStanza(t *testing.T) {
	good := []struct {
		in             string
		kind, from, to string
		id, typ        string
	}{
		{`<message from='a@x.example/r' to='b@y.example' id='1' type='chat'><body>hi</body></message>`, "message", "a@x.example/r", "b@y.example", "1", "chat"},
		{`<presence xmlns='jabber:server' from='x.example' to='y.example'/>`, "presence", "x.example", "y.example", "", ""},
		{`<iq type='get' id='p' from='x.example' to='y.example'><ping xmlns='urn:xmpp:ping'/></iq>`, "iq", "x.example", "y.example", "p", "get"},
		{`<message from='a@X.Example' to='b@y.example'>` + "\n" + `</message>` + "\n", "message", "a@x.example", "b@y.example", "", ""},
	}
	for _, tc := range good {
		st, err := s2s.ParseStanza([]byte(tc.in))
		if err != nil {
			t.Errorf("ParseStanza(%q): %v", tc.in, err)
			continue
		}
		if st.Kind != tc.kind || st.From.String() != tc.from || st.To.String() != tc.to || st.ID != tc.id || st.Type != tc.typ {
			t.Errorf("ParseStanza(%q) = %s %s %s %s %s, want %s %s %s %s %s", tc.in,
				st.Kind, st.From, st.To, st.ID, st.Type, tc.kind, tc.from, tc.to, tc.id, tc.typ)
		}
		if string(st.Raw()) != tc.in {
			t.Errorf("Raw changed: %q", st.Raw())
		}
	}
	bad := []struct{ in, want string }{
		{``, "EOF"},
		{`<message to='b@y.example'/>`, "no from"},
		{`<message from='a@x.example'/>`, "no to"},
		{`<message from='' to='b@y.example'/>`, "no from"},
		{`<message from='a@x.example' to='@@'/>`, `to "@@"`},
		{`<foo from='a@x.example' to='b@y.example'/>`, "not message, presence or iq"},
		{`<message xmlns='jabber:client' from='a@x.example' to='b@y.example'/>`, "namespace"},
		{`<db:result xmlns:db='jabber:server:dialback' from='x.example' to='y.example'/>`, "namespace"},
		{`<message from='a@x.example' to='b@y.example'>`, "EOF"},
		{`<message from='a@x.example' to='b@y.example'/><message/>`, "after the stanza"},
		{`<?xml version='1.0'?><message from='a@x.example' to='b@y.example'/>`, "restricted"},
		{`<!DOCTYPE x><message from='a@x.example' to='b@y.example'/>`, "restricted"},
		{`<message from='a@x.example' to='b@y.example'><!-- c --></message>`, "restricted"},
		{`<iq from='a@x.example' to='b@y.example' id='1'/>`, "iq type"},
		{`<iq from='a@x.example' to='b@y.example' type='get'/>`, "no id"},
		{`<message from='a@x.example' to='b@y.example'><body>&foo;</body></message>`, "entity"},
		{` <message from='a@x.example' to='b@y.example'/>`, "whitespace"},
	}
	for _, tc := range bad {
		_, err := s2s.ParseStanza([]byte(tc.in))
		if err == nil {
			t.Errorf("ParseStanza(%q): no error", tc.in)
			continue
		}
		if !errors.Is(err, s2s.ErrInvalidStanza) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseStanza(%q) = %v, want ErrInvalidStanza mentioning %q", tc.in, err, tc.want)
		}
	}
}

func TestErrorReply(t *testing.T) {
	st, err := s2s.ParseStanza([]byte(`<message xmlns:e='urn:example' from='a@x.example/r' to='b@y.example' id='m1' type='chat'><body>a &amp; b</body><e:x/></message>`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.ErrorReply(stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound, Text: map[string]string{"": "gone <now>"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.From.String() != "b@y.example" || r.To.String() != "a@x.example/r" || r.Type != "error" || r.ID != "m1" || r.Kind != "message" {
		t.Errorf("reply header: %s %s %s %s %s", r.Kind, r.From, r.To, r.ID, r.Type)
	}
	// The reply must itself be a valid stanza, keep the payload (with the
	// prefix it needs) and carry the condition and escaped text.
	back, err := s2s.ParseStanza(r.Raw())
	if err != nil {
		t.Fatalf("reply does not parse: %v\n%s", err, r.Raw())
	}
	raw := string(back.Raw())
	for _, want := range []string{`<body>a &amp; b</body>`, `<e:x/>`, `xmlns:e='urn:example'`, `<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>`, `gone &lt;now&gt;`} {
		if !strings.Contains(raw, want) {
			t.Errorf("reply lacks %q:\n%s", want, raw)
		}
	}
	if _, err := r.ErrorReply(stanza.Error{Condition: stanza.BadRequest}); err == nil {
		t.Error("ErrorReply to an error stanza succeeded; it must refuse (RFC 6120 §8.3.1)")
	}
	empty, _ := s2s.ParseStanza([]byte(`<presence from='x.example' to='y.example'/>`))
	r2, err := empty.ErrorReply(stanza.Error{Condition: stanza.RemoteServerNotFound})
	if err != nil {
		t.Fatal(err)
	}
	if want := `<presence xmlns='jabber:server' from='y.example' to='x.example' type='error'><error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`; string(r2.Raw()) != want {
		t.Errorf("got  %s\nwant %s", r2.Raw(), want)
	}
	if _, err := empty.ErrorReply(stanza.Error{}); err == nil {
		t.Error("ErrorReply without a condition succeeded")
	}
}

func TestStanzaTokenReader(t *testing.T) {
	st, err := s2s.ParseStanza([]byte(`<message from='a@x.example' to='b@y.example'><body>x</body></message>`))
	if err != nil {
		t.Fatal(err)
	}
	tr := st.TokenReader()
	n := 0
	for range 10 {
		if _, err := tr.Token(); err != nil {
			break
		}
		n++
	}
	if n != 5 {
		t.Errorf("TokenReader gave %d tokens, want 5", n)
	}
}

func FuzzParseStanza(f *testing.F) {
	for _, s := range []string{
		`<message from='a@x.example' to='b@y.example'><body>hi</body></message>`,
		`<iq type='get' id='1' from='x.example' to='y.example'><ping xmlns='urn:xmpp:ping'/></iq>`,
		`<presence xmlns='jabber:server' from='x.example' to='y.example'/>`,
		`<message from='a@x.example' to='b@y.example'><x:y xmlns:x='u'/></message>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		st, err := s2s.ParseStanza(raw)
		if err != nil {
			if !errors.Is(err, s2s.ErrInvalidStanza) {
				t.Fatalf("error does not wrap ErrInvalidStanza: %v", err)
			}
			return
		}
		if st.From.String() == "" || st.To.String() == "" {
			t.Fatalf("accepted a stanza without addresses: %q", raw)
		}
		r, err := st.ErrorReply(stanza.Error{Condition: stanza.BadRequest, Text: map[string]string{"": "x"}})
		if st.Type == "error" {
			if err == nil {
				t.Fatal("answered an error stanza")
			}
			return
		}
		if err != nil {
			t.Fatalf("ErrorReply: %v", err)
		}
		if _, err := s2s.ParseStanza(r.Raw()); err != nil {
			t.Fatalf("error reply to %q does not parse: %v\n%s", raw, err, r.Raw())
		}
	})
}

// TestTrustedStanza checks that TrustedStanza gives what ParseStanza
// gives for the same bytes, and keeps ParseStanza's address and iq rules.
func TestTrustedStanza(t *testing.T) {
	good := []string{
		`<message xmlns='jabber:server' from='a@x.example/r' to='b@y.example' id='1' type='chat'><body>hi</body></message>`,
		`<presence xmlns='jabber:server' from='x.example' to='y.example'/>`,
		`<iq xmlns='jabber:server' type='get' id='p' from='x.example' to='y.example'><ping xmlns='urn:xmpp:ping'/></iq>`,
	}
	for _, in := range good {
		want, err := s2s.ParseStanza([]byte(in))
		if err != nil {
			t.Fatalf("ParseStanza(%q): %v", in, err)
		}
		got, err := s2s.TrustedStanza(want.Kind, want.From, want.To, want.ID, want.Type, []byte(in))
		if err != nil {
			t.Errorf("TrustedStanza(%q): %v", in, err)
			continue
		}
		if got.Kind != want.Kind || !got.From.Equal(want.From) || !got.To.Equal(want.To) || got.ID != want.ID ||
			got.Type != want.Type || string(got.Raw()) != in {
			t.Errorf("TrustedStanza(%q) = %+v, want %+v", in, got, want)
		}
		if got.SenderDomain() != want.From.Domainpart() || got.RecipientDomain() != want.To.Domainpart() ||
			want.SenderDomain() != got.SenderDomain() || want.RecipientDomain() != got.RecipientDomain() {
			t.Errorf("TrustedStanza(%q) domains %q, %q; ParseStanza's %q, %q", in, got.SenderDomain(), got.RecipientDomain(), want.SenderDomain(), want.RecipientDomain())
		}
		// The reply needs the domains TrustedStanza worked out.
		if want.Type != "error" {
			r, err := got.ErrorReply(stanza.Error{Condition: stanza.ServiceUnavailable})
			if err != nil || !r.To.Equal(want.From) {
				t.Errorf("ErrorReply of TrustedStanza(%q) = %v, %v", in, r, err)
			}
		}
	}
	x, y := jid.MustParse("a@x.example"), jid.MustParse("y.example")
	bad := []struct {
		name, kind, id, typ, raw string
		from, to                 jid.JID
	}{
		{"kind", "stream", "", "", `<stream/>`, x, y},
		{"no from", "message", "", "", `<message/>`, jid.JID{}, y},
		{"no to", "message", "", "", `<message/>`, x, jid.JID{}},
		{"iq type", "iq", "1", "", `<iq/>`, x, y},
		{"iq id", "iq", "", "get", `<iq/>`, x, y},
		{"raw of another kind", "message", "", "", `<presence/>`, x, y},
		{"raw prefix only", "message", "", "", `<messages/>`, x, y},
		{"raw empty", "message", "", "", ``, x, y},
		{"raw unterminated", "message", "", "", `<message`, x, y},
	}
	for _, tc := range bad {
		if st, err := s2s.TrustedStanza(tc.kind, tc.from, tc.to, tc.id, tc.typ, []byte(tc.raw)); !errors.Is(err, s2s.ErrInvalidStanza) {
			t.Errorf("%s: TrustedStanza = %v, %v; want ErrInvalidStanza", tc.name, st, err)
		}
	}
}
