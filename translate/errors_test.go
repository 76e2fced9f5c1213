package translate_test

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/translate"
)

// replyShape is an error reply as encoding/xml reads it.
type replyShape struct {
	XMLName xml.Name
	From    string    `xml:"from,attr"`
	To      string    `xml:"to,attr"`
	ID      string    `xml:"id,attr"`
	Type    string    `xml:"type,attr"`
	Lang    string    `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	Kids    []xmlElem `xml:",any"`
}

func TestErrorReply(t *testing.T) {
	e := stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented, Text: map[string]string{"en": "No <invites> & such"}}
	cases := []struct {
		name    string
		raw     string
		kind    string
		id      string
		payload []string // local names of the copied children
		lang    string
	}{
		{"message with payload",
			`<message xmlns='jabber:server' from='juliet@capulet.example/balcony' to='romeo@montague.example' type='chat' id='m1' xml:lang='en'><body>join</body><x xmlns='jabber:x:conference' jid='r@muc.example'/></message>`,
			"message", "m1", []string{"body", "x"}, "en"},
		{"presence subscribe",
			`<presence from='juliet@capulet.example' to='romeo@montague.example' type='subscribe' id='s1'/>`,
			"presence", "s1", nil, ""},
		{"iq keeps its request",
			`<iq from='juliet@capulet.example/balcony' to='romeo@montague.example' type='set' id='j1'><jingle xmlns='urn:xmpp:jingle:1' sid='a'/></iq>`,
			"iq", "j1", []string{"jingle"}, ""},
		{"prefixed namespaces kept for the payload",
			`<message xmlns:x='urn:example:x' from='juliet@capulet.example/balcony' to='romeo@montague.example'><x:thing>1</x:thing></message>`,
			"message", "", []string{"thing"}, ""},
		{"an error child is not copied",
			`<message from='juliet@capulet.example/balcony' to='romeo@montague.example'><body>b</body><error type='cancel'/></message>`,
			"message", "", []string{"body"}, ""},
		{"no id",
			`<message from='juliet@capulet.example/balcony' to='romeo@montague.example'><body>hi</body></message>`,
			"message", "", []string{"body"}, ""},
		{"too large: no payload",
			`<message from='juliet@capulet.example/balcony' to='romeo@montague.example' id='big' xml:lang='en'><body>` + strings.Repeat("a", 16<<10) + `</body></message>`,
			"message", "big", nil, ""},
		{"malformed after the start tag: no payload",
			`<message from='juliet@capulet.example/balcony' to='romeo@montague.example' id='bad'><body>hi</message>`,
			"message", "bad", nil, ""},
		{"undeclared prefix: no payload",
			`<message from='juliet@capulet.example/balcony' to='romeo@montague.example' id='p'><body>hi</body><db:x>y</db:x></message>`,
			"message", "p", nil, ""},
		{"undeclared attribute prefix: no payload",
			`<message from='juliet@capulet.example/balcony' to='romeo@montague.example' id='p'><body q:a='1'>hi</body></message>`,
			"message", "p", nil, ""},
		{"too deep: no payload",
			`<message from='juliet@capulet.example/balcony' to='romeo@montague.example' id='deep'>` + strings.Repeat("<a>", 70) + strings.Repeat("</a>", 70) + `</message>`,
			"message", "deep", nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := translate.ErrorReply([]byte(c.raw), e)
			if err != nil {
				t.Fatal(err)
			}
			var r replyShape
			if err := xml.Unmarshal(out, &r); err != nil {
				t.Fatalf("reply %s is not XML: %v", out, err)
			}
			if r.XMLName != (xml.Name{Space: "jabber:server", Local: c.kind}) || r.Type != "error" || r.ID != c.id || r.Lang != c.lang {
				t.Errorf("reply %s: name %v type %q id %q lang %q", out, r.XMLName, r.Type, r.ID, r.Lang)
			}
			orig := parseOut(t, []byte(strings.TrimSuffix(strings.Split(c.raw, ">")[0], "/")+"/>"))
			from, _ := orig.attr("", "from")
			to, _ := orig.attr("", "to")
			if r.From != jid.MustParse(to).String() || r.To != jid.MustParse(from).String() {
				t.Errorf("reply from %q to %q: want them swapped (%q, %q)", r.From, r.To, to, from)
			}
			if len(r.Kids) != len(c.payload)+1 {
				t.Fatalf("reply %s has %d children, want %d", out, len(r.Kids), len(c.payload)+1)
			}
			for i, name := range c.payload {
				if r.Kids[i].XMLName.Local != name {
					t.Errorf("child %d is %v, want %s", i, r.Kids[i].XMLName, name)
				}
			}
			checkErrorElement(t, out, &r.Kids[len(r.Kids)-1], "cancel", "feature-not-implemented", "No <invites> & such")
			// The reply is a stanza Decode reads as an error: never answered.
			if v, err := translate.Decode(out, nil); v != nil || err != translate.ErrIgnore {
				t.Errorf("Decode(reply) = %v, %v; want ErrIgnore", v, err)
			}
		})
	}
	// The prefixed child keeps its namespace.
	out, err := translate.ErrorReply([]byte(cases[3].raw), e)
	if err != nil {
		t.Fatal(err)
	}
	var r replyShape
	if err := xml.Unmarshal(out, &r); err != nil || r.Kids[0].XMLName.Space != "urn:example:x" {
		t.Errorf("prefixed child in %s: %v %v", out, r.Kids, err)
	}
}

// checkErrorElement checks an <error/> element against RFC 6120 §8.3.2.
func checkErrorElement(t *testing.T, out []byte, el *xmlElem, typ, cond, text string) {
	t.Helper()
	if el.XMLName != (xml.Name{Space: "jabber:server", Local: "error"}) {
		t.Fatalf("last child of %s is %v, want the error", out, el.XMLName)
	}
	if v, _ := el.attr("", "type"); v != typ {
		t.Errorf("error type %q, want %q", v, typ)
	}
	const ns = "urn:ietf:params:xml:ns:xmpp-stanzas"
	if len(el.Kids) < 1 || el.Kids[0].XMLName != (xml.Name{Space: ns, Local: cond}) {
		t.Errorf("error children %v, want the condition %s first", el.Kids, cond)
	}
	if text == "" {
		if len(el.Kids) != 1 {
			t.Errorf("error children %v, want the condition alone", el.Kids)
		}
		return
	}
	if len(el.Kids) != 2 || el.Kids[1].XMLName != (xml.Name{Space: ns, Local: "text"}) || el.Kids[1].Text != text {
		t.Fatalf("error children %v, want the condition and the text %q", el.Kids, text)
	}
	if lang, _ := el.Kids[1].attr("http://www.w3.org/XML/1998/namespace", "lang"); lang != "en" {
		t.Errorf("text xml:lang %q, want en", lang)
	}
}

func TestErrorReplyDefaults(t *testing.T) {
	raw := []byte(`<message from='a@b.example/c' to='d@e.example'><body>x</body></message>`)
	out, err := translate.ErrorReply(raw, stanza.Error{Condition: stanza.ServiceUnavailable})
	if err != nil {
		t.Fatal(err)
	}
	var r replyShape
	if err := xml.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	checkErrorElement(t, out, &r.Kids[len(r.Kids)-1], "cancel", "service-unavailable", "")
	out, err = translate.ErrorReply(raw, stanza.Error{Type: stanza.Wait})
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	checkErrorElement(t, out, &r.Kids[len(r.Kids)-1], "wait", "undefined-condition", "")
	// What RFC 6120 does not define is not sent.
	out, err = translate.ErrorReply(raw, stanza.Error{Type: "later", Condition: "no <such> thing"})
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	checkErrorElement(t, out, &r.Kids[len(r.Kids)-1], "cancel", "undefined-condition", "")
}

func TestErrorReplyRefuses(t *testing.T) {
	e := stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	for _, raw := range []string{
		`<message from='a@b.example' to='c@d.example' type='error'><error type='cancel'/></message>`,
		`<presence from='a@b.example' to='c@d.example' type='error'/>`,
		`<iq from='a@b.example' to='c@d.example' type='error' id='1'/>`,
		`<iq from='a@b.example' to='c@d.example' type='result' id='1'/>`,
	} {
		if out, err := translate.ErrorReply([]byte(raw), e); err != translate.ErrIgnore {
			t.Errorf("ErrorReply(%s) = %s, %v; want ErrIgnore", raw, out, err)
		}
	}
	for _, raw := range []string{
		``,
		`not xml`,
		`<?xml version='1.0'?><message from='a@b.example' to='c@d.example'/>`,
		`<stanza from='a@b.example' to='c@d.example'/>`,
		`<message xmlns='jabber:client' from='a@b.example' to='c@d.example'/>`,
		`<message to='c@d.example'/>`,
		`<message from='a@b.example'/>`,
		`<message from='a@@b.example' to='c@d.example'/>`,
		`<message from='a@b.example' to='c@'/>`,
		// An attribute twice is not well-formed (XML 1.0 §3.1): which
		// type, or which from, would the reply be for?
		`<iq type='' type='result' from='a@b.example' to='c@d.example' id='1'/>`,
		`<message from='a@b.example' from='x@y.example' to='c@d.example'/>`,
	} {
		out, err := translate.ErrorReply([]byte(raw), e)
		if err == nil || err == translate.ErrIgnore || out != nil {
			t.Errorf("ErrorReply(%q) = %s, %v; want an error other than ErrIgnore", raw, out, err)
		}
	}
}

func TestStanzaError(t *testing.T) {
	given := stanza.Error{Type: stanza.Auth, Condition: stanza.NotAuthorized, Text: map[string]string{"en": "as given"}}
	cases := []struct {
		name string
		err  error
		typ  stanza.ErrorType
		cond stanza.Condition
	}{
		{"stanza.Error as it is", given, stanza.Auth, stanza.NotAuthorized},
		{"wrapped stanza.Error", fmt.Errorf("host: %w", given), stanza.Auth, stanza.NotAuthorized},
		{"policy denial: no access", &policy.Denial{Rule: policy.RuleNoXMPPAccess, User: "romeo@montague.example"}, stanza.Cancel, stanza.ServiceUnavailable},
		{"policy denial: not authorized", fmt.Errorf("gate: %w", &policy.Denial{Rule: policy.RuleNotAuthorized}), stanza.Auth, stanza.Forbidden},
		{"unknown user", translate.ErrUnknownUser, stanza.Cancel, stanza.ServiceUnavailable},
		{"wrapped unknown user", fmt.Errorf("directory: %w", translate.ErrUnknownUser), stanza.Cancel, stanza.ServiceUnavailable},
		{"offline", translate.ErrOffline, stanza.Wait, stanza.RecipientUnavailable},
		{"too large", fmt.Errorf("%w: 70000 bytes", translate.ErrTooLarge), stanza.Modify, stanza.PolicyViolation},
		{"malformed address", translate.ErrMalformedAddress, stanza.Modify, stanza.JIDMalformed},
		{"deadline", context.DeadlineExceeded, stanza.Wait, stanza.RemoteServerTimeout},
		{"canceled, wrapped", fmt.Errorf("deliver: %w", context.Canceled), stanza.Wait, stanza.RemoteServerTimeout},
		{"anything else", errors.New("database password wrong at 10.0.0.7"), stanza.Cancel, stanza.InternalServerError},
		{"nil", nil, stanza.Cancel, stanza.InternalServerError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := translate.StanzaError(c.err)
			if got.Type != c.typ || got.Condition != c.cond {
				t.Errorf("StanzaError(%v) = %s/%s, want %s/%s", c.err, got.Type, got.Condition, c.typ, c.cond)
			}
			if c.err != nil && got.Text["en"] != "" && strings.Contains(c.err.Error(), got.Text["en"]) && c.cond == stanza.InternalServerError {
				t.Errorf("internal error text %q leaks the error", got.Text["en"])
			}
		})
	}
	if got := translate.StanzaError(given); got.Text["en"] != "as given" {
		t.Errorf("a stanza.Error lost its text: %v", got.Text)
	}
	internal := translate.StanzaError(errors.New("database password wrong at 10.0.0.7"))
	for _, txt := range internal.Text {
		if strings.Contains(txt, "password") || strings.Contains(txt, "10.0.0.7") {
			t.Errorf("internal-server-error text %q leaks the error", txt)
		}
	}
	// The unknown user looks like a user without access (RFC 6121 §8.5.2.1).
	denied := (&policy.Denial{Rule: policy.RuleUnknownUser}).StanzaError()
	unknown := translate.StanzaError(translate.ErrUnknownUser)
	if unknown.Text["en"] != denied.Text["en"] || unknown.Condition != denied.Condition {
		t.Errorf("ErrUnknownUser gives %v, the policy's unknown user %v: a sender could tell them apart", unknown, denied)
	}
}

func TestParseAddress(t *testing.T) {
	good := []struct{ in, want string }{
		{"juliet@capulet.example", "juliet@capulet.example"},
		{"Juliet@Capulet.Example/Balcony", "juliet@capulet.example/Balcony"},
		{"capulet.example", "capulet.example"},
		{"ＪＵＬＩＥＴ@capulet.example", "juliet@capulet.example"},
		{"juliet@capulet.example.", "juliet@capulet.example"}, // RFC 7622 §3.2: one final dot stripped
	}
	for _, c := range good {
		j, err := translate.ParseAddress(c.in)
		if err != nil || j.String() != c.want {
			t.Errorf("ParseAddress(%q) = %q, %v; want %q", c.in, j, err, c.want)
		}
	}
	for _, in := range []string{"", "@capulet.example", "juliet@", "a@b@c", "juliet@capulet.example/", "jul\x00iet@capulet.example", "juliet@capulet..example", "juliet@capulet.example..", "juliet@.capulet.example", "0.."} {
		_, err := translate.ParseAddress(in)
		if !errors.Is(err, translate.ErrMalformedAddress) {
			t.Errorf("ParseAddress(%q) error = %v, want ErrMalformedAddress", in, err)
		}
		if se := translate.StanzaError(err); se.Condition != stanza.JIDMalformed {
			t.Errorf("StanzaError(ParseAddress(%q)) = %v", in, se.Condition)
		}
	}
}

// TestDecodeDuplicateAttribute: Decode refuses an element with an
// attribute twice, at any depth, as not well-formed (bad-request), and
// ErrorReply drops a child that has one from the payload it echoes.
func TestDecodeDuplicateAttribute(t *testing.T) {
	for _, raw := range []string{
		`<iq type='' type='result' from='a@b.example' to='c@d.example' id='1'/>`,
		`<message from='a@b.example' to='c@d.example'><body xml:lang='en' xml:lang='de'>hi</body></message>`,
	} {
		v, err := translate.Decode([]byte(raw), nil)
		var se stanza.Error
		if v != nil || !errors.As(err, &se) || se.Condition != stanza.BadRequest || !strings.Contains(se.Text["en"], "twice") {
			t.Errorf("Decode(%s) = %v, %v; want bad-request naming the attribute", raw, v, err)
		}
	}
	// Beyond 16 attributes the check uses a set: a late duplicate is
	// still found, and 50 000 distinct ones are accepted (in linear time).
	var many strings.Builder
	for i := range 50000 {
		fmt.Fprintf(&many, " a%d=''", i)
	}
	late := `<message from='a@b.example' to='c@d.example'><x xmlns='urn:x'` + many.String() + ` a17=''/></message>`
	if v, err := translate.Decode([]byte(late), nil); v != nil || err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a duplicate after 50 000 attributes: %v, %v", v, err)
	}
	if _, err := translate.Decode([]byte(`<message from='a@b.example' to='c@d.example' type='chat'><body>hi</body><x xmlns='urn:x'`+many.String()+`/></message>`), nil); err != nil && strings.Contains(err.Error(), "twice") {
		t.Errorf("50 000 distinct attributes: %v", err)
	}
	raw := `<message from='a@b.example' to='c@d.example' id='m'><x xmlns='urn:x' a='1' a='2'/></message>`
	out, err := translate.ErrorReply([]byte(raw), stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "urn:x") {
		t.Errorf("ErrorReply echoed a child with an attribute twice: %s", out)
	}
}
