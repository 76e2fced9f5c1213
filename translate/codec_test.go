package translate_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/translate"
)

// Addresses used by the codec tests.
var (
	remoteFull = jid.MustParse("juliet@capulet.example/balcony")
	remoteBare = jid.MustParse("juliet@capulet.example")
	localBare  = jid.MustParse("romeo@montague.example")
)

// hdr is the start tag of a stanza from juliet's balcony to romeo.
const hdr = `from='juliet@capulet.example/balcony' to='romeo@montague.example'`

// decodeErr asserts that Decode fails with exactly this condition and type,
// and an English text.
func decodeErr(t *testing.T, raw string, cond stanza.Condition, typ stanza.ErrorType) {
	t.Helper()
	v, err := translate.Decode([]byte(raw), nil)
	if v != nil {
		t.Errorf("Decode(%s) = %#v, want nil", raw, v)
	}
	var se stanza.Error
	if !errors.As(err, &se) {
		t.Fatalf("Decode(%s) error = %v (%T), want a stanza.Error", raw, err, err)
	}
	if se.Condition != cond || se.Type != typ {
		t.Errorf("Decode(%s) = %s/%s, want %s/%s (%q)", raw, se.Type, se.Condition, typ, cond, se.Text["en"])
	}
	if se.Text["en"] == "" {
		t.Errorf("Decode(%s): %s has no English text", raw, cond)
	}
}

func TestDecodeMessage(t *testing.T) {
	stamp := time.Date(2002, 9, 10, 23, 8, 25, 0, time.UTC)
	cases := []struct {
		name string
		raw  string
		want *translate.Message
	}{
		{"chat with body",
			`<message xmlns='jabber:server' ` + hdr + ` type='chat' id='m1'><body>Wherefore art thou?</body></message>`,
			&translate.Message{From: remoteFull, To: localBare, ID: "m1", Type: translate.Chat, Body: "Wherefore art thou?"}},
		{"missing type is normal (RFC 6121 §5.2.2)",
			`<message ` + hdr + `><body>hi</body></message>`,
			&translate.Message{From: remoteFull, To: localBare, Type: translate.Normal, Body: "hi"}},
		{"unknown type is normal (RFC 6121 §5.2.2)",
			`<message ` + hdr + ` type='shout'><body>hi</body></message>`,
			&translate.Message{From: remoteFull, To: localBare, Type: translate.Normal, Body: "hi"}},
		{"body whitespace and line breaks kept",
			"<message " + hdr + " type='chat'><body>  two\n\tlines &amp; &lt;tags&gt;\r\n </body></message>",
			&translate.Message{From: remoteFull, To: localBare, Type: translate.Chat, Body: "  two\n\tlines & <tags>\n "}},
		{"escaped carriage return kept",
			"<message " + hdr + " type='chat'><body>a&#xD;\nb</body></message>",
			&translate.Message{From: remoteFull, To: localBare, Type: translate.Chat, Body: "a\r\nb"}},
		{"CDATA body",
			"<message " + hdr + " type='chat'><body><![CDATA[<b>x</b>]]></body></message>",
			&translate.Message{From: remoteFull, To: localBare, Type: translate.Chat, Body: "<b>x</b>"}},
		{"body in the stanza's language among several",
			`<message ` + hdr + ` type='chat' xml:lang='de'><body xml:lang='en'>Hello</body><body>Hallo</body><body xml:lang='fr'>Salut</body></message>`,
			&translate.Message{From: remoteFull, To: localBare, Type: translate.Chat, Body: "Hallo", Lang: "de"}},
		{"body with the stanza's language given again",
			`<message ` + hdr + ` type='chat' xml:lang='fr'><body xml:lang='en'>Hello</body><body xml:lang='FR'>Salut</body></message>`,
			&translate.Message{From: remoteFull, To: localBare, Type: translate.Chat, Body: "Salut", Lang: "FR"}},
		{"only a body in another language",
			`<message ` + hdr + ` type='chat' xml:lang='de'><body xml:lang='en'>Hello</body></message>`,
			&translate.Message{From: remoteFull, To: localBare, Type: translate.Chat, Body: "Hello", Lang: "en"}},
		{"subject and thread",
			`<message ` + hdr + ` type='chat'><subject>Plans</subject><body>hi</body><thread parent='p1'>t-1</thread><thread>t-2</thread></message>`,
			&translate.Message{From: remoteFull, To: localBare, Type: translate.Chat, Body: "hi", Subject: "Plans", Thread: "t-1"}},
		{"chat state alone (XEP-0085)",
			`<message ` + hdr + ` type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
			&translate.Message{From: remoteFull, To: localBare, Type: translate.Chat, ChatState: translate.Composing}},
		{"body with active state",
			`<message ` + hdr + ` type='chat'><body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
			&translate.Message{From: remoteFull, To: localBare, Type: translate.Chat, Body: "hi", ChatState: translate.Active}},
		{"receipt request (XEP-0184)",
			`<message ` + hdr + ` type='chat' id='r1'><body>hi</body><request xmlns='urn:xmpp:receipts'/></message>`,
			&translate.Message{From: remoteFull, To: localBare, ID: "r1", Type: translate.Chat, Body: "hi", RequestReceipt: true}},
		{"receipt alone (XEP-0184)",
			`<message ` + hdr + ` id='r2'><received xmlns='urn:xmpp:receipts' id='r1'/></message>`,
			&translate.Message{From: remoteFull, To: localBare, ID: "r2", Type: translate.Normal, ReceiptFor: "r1"}},
		{"delay (XEP-0203)",
			`<message ` + hdr + ` type='chat'><body>old</body><delay xmlns='urn:xmpp:delay' from='capulet.example' stamp='2002-09-10T23:08:25Z'/></message>`,
			&translate.Message{From: remoteFull, To: localBare, Type: translate.Chat, Body: "old", Delay: stamp}},
		{"delay with offset and fraction, first one kept",
			`<message ` + hdr + ` type='chat'><body>old</body><delay xmlns='urn:xmpp:delay' stamp='2002-09-11T01:08:25.5+02:00'/><delay xmlns='urn:xmpp:delay' stamp='2010-01-01T00:00:00Z'/></message>`,
			&translate.Message{From: remoteFull, To: localBare, Type: translate.Chat, Body: "old", Delay: stamp.Add(500 * time.Millisecond)}},
		{"correction (XEP-0308)",
			`<message ` + hdr + ` type='chat'><body>fixed</body><replace xmlns='urn:xmpp:message-correct:0' id='m0'/></message>`,
			&translate.Message{From: remoteFull, To: localBare, Type: translate.Chat, Body: "fixed", Replaces: "m0"}},
		{"unknown extensions are ignored",
			`<message ` + hdr + ` type='chat'><body>hi</body><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p>hi</p></body></html><markable xmlns='urn:xmpp:chat-markers:0'/></message>`,
			&translate.Message{From: remoteFull, To: localBare, Type: translate.Chat, Body: "hi"}},
		{"MUC private message x without invite is delivered",
			`<message ` + hdr + ` type='chat'><body>psst</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>`,
			&translate.Message{From: remoteFull, To: localBare, Type: translate.Chat, Body: "psst"}},
		{"PRECIS normalization of addresses (RFC 7622)",
			`<message from='Juliet@Capulet.Example/balcony' to='romeo@MONTAGUE.example' type='chat'><body>hi</body></message>`,
			&translate.Message{From: remoteFull, To: localBare, Type: translate.Chat, Body: "hi"}},
		{"to a full JID keeps the resource",
			`<message from='juliet@capulet.example/balcony' to='romeo@montague.example/orchard' type='chat'><body>hi</body></message>`,
			&translate.Message{From: remoteFull, To: jid.MustParse("romeo@montague.example/orchard"), Type: translate.Chat, Body: "hi"}},
		{"nesting exactly 64 deep is read",
			"<message " + hdr + " type='chat'><body>deep</body>" + strings.Repeat("<x xmlns='urn:x'>", 63) + strings.Repeat("</x>", 63) + "</message>",
			&translate.Message{From: remoteFull, To: localBare, Type: translate.Chat, Body: "deep"}},
		{"whitespace around the stanza",
			"\n <message " + hdr + " type='chat'><body>hi</body></message>\n",
			&translate.Message{From: remoteFull, To: localBare, Type: translate.Chat, Body: "hi"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := translate.Decode([]byte(c.raw), nil)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			m, ok := v.(*translate.Message)
			if !ok {
				t.Fatalf("Decode = %T, want *Message", v)
			}
			if !messagesEqual(m, c.want) {
				t.Errorf("Decode =\n%#v\nwant\n%#v", m, c.want)
			}
		})
	}
}

// messagesEqual compares two messages (JIDs with Equal, times with Equal).
func messagesEqual(a, b *translate.Message) bool {
	if !a.From.Equal(b.From) || !a.To.Equal(b.To) || !a.Delay.Equal(b.Delay) {
		return false
	}
	x, y := *a, *b
	x.From, x.To, x.Delay = jid.JID{}, jid.JID{}, time.Time{}
	y.From, y.To, y.Delay = jid.JID{}, jid.JID{}, time.Time{}
	return reflect.DeepEqual(x, y)
}

func TestDecodeRefusals(t *testing.T) {
	cases := []struct {
		name string
		raw  string
		cond stanza.Condition
		typ  stanza.ErrorType
	}{
		// Not a stanza.
		{"empty input", ``, stanza.BadRequest, stanza.Modify},
		{"text", `hello`, stanza.BadRequest, stanza.Modify},
		{"not well-formed", `<message ` + hdr + `><body>hi</message>`, stanza.BadRequest, stanza.Modify},
		{"not closed", `<message ` + hdr + `><body>hi</body>`, stanza.BadRequest, stanza.Modify},
		{"two elements", `<message ` + hdr + `/><message ` + hdr + `/>`, stanza.BadRequest, stanza.Modify},
		{"unknown entity", `<message ` + hdr + `><body>&bogus;</body></message>`, stanza.BadRequest, stanza.Modify},
		{"comment (RFC 6120 §11.1)", `<message ` + hdr + `><!-- c --><body>hi</body></message>`, stanza.BadRequest, stanza.Modify},
		{"processing instruction", `<?xml version='1.0'?><message ` + hdr + `><body>hi</body></message>`, stanza.BadRequest, stanza.Modify},
		{"doctype", `<!DOCTYPE message><message ` + hdr + `><body>hi</body></message>`, stanza.BadRequest, stanza.Modify},
		{"too deep", `<message ` + hdr + `>` + strings.Repeat("<x>", 64) + strings.Repeat("</x>", 64) + `</message>`, stanza.BadRequest, stanza.Modify},
		{"other namespace", `<message xmlns='jabber:client' ` + hdr + `><body>hi</body></message>`, stanza.BadRequest, stanza.Modify},
		{"other element", `<stanza ` + hdr + `/>`, stanza.BadRequest, stanza.Modify},
		// Addresses.
		{"no from", `<message to='romeo@montague.example'><body>hi</body></message>`, stanza.BadRequest, stanza.Modify},
		{"no to", `<message from='juliet@capulet.example'><body>hi</body></message>`, stanza.BadRequest, stanza.Modify},
		{"malformed from", `<message from='juliet@@capulet.example' to='romeo@montague.example'><body>hi</body></message>`, stanza.JIDMalformed, stanza.Modify},
		{"malformed to", `<message from='juliet@capulet.example' to='romeo@'><body>hi</body></message>`, stanza.JIDMalformed, stanza.Modify},
		{"empty from", `<message from='' to='romeo@montague.example'><body>hi</body></message>`, stanza.JIDMalformed, stanza.Modify},
		{"bad xml:lang", `<message ` + hdr + ` xml:lang='not a tag'><body>hi</body></message>`, stanza.BadRequest, stanza.Modify},
		// Messages (REFERENCE §5.7 #74, #79, #80).
		{"groupchat", `<message ` + hdr + ` type='groupchat'><body>hi</body></message>`, stanza.ServiceUnavailable, stanza.Cancel},
		{"mediated MUC invitation (XEP-0045)", `<message ` + hdr + `><body>join us</body><x xmlns='http://jabber.org/protocol/muc#user'><invite from='juliet@capulet.example'><reason>Hey</reason></invite></x></message>`, stanza.FeatureNotImplemented, stanza.Cancel},
		{"direct MUC invitation (XEP-0249)", `<message ` + hdr + `><body>join us</body><x xmlns='jabber:x:conference' jid='room@muc.capulet.example'/></message>`, stanza.FeatureNotImplemented, stanza.Cancel},
		{"Jingle Message Initiation", `<message ` + hdr + ` type='chat'><propose xmlns='urn:xmpp:jingle-message:0' id='s1'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose></message>`, stanza.FeatureNotImplemented, stanza.Cancel},
		{"HTTP upload offer (XEP-0066)", `<message ` + hdr + ` type='chat'><body>https://up.example/f.png</body><x xmlns='jabber:x:oob'><url>https://up.example/f.png</url></x></message>`, stanza.FeatureNotImplemented, stanza.Cancel},
		{"nothing to deliver", `<message ` + hdr + ` type='chat'><markable xmlns='urn:xmpp:chat-markers:0'/></message>`, stanza.FeatureNotImplemented, stanza.Cancel},
		{"empty body only", `<message ` + hdr + ` type='chat'><body/></message>`, stanza.FeatureNotImplemented, stanza.Cancel},
		{"receipt request only", `<message ` + hdr + ` type='chat'><request xmlns='urn:xmpp:receipts'/></message>`, stanza.FeatureNotImplemented, stanza.Cancel},
		{"body with an element in it", `<message ` + hdr + `><body>a<b>b</b></body></message>`, stanza.BadRequest, stanza.Modify},
		{"two chat states", `<message ` + hdr + `><active xmlns='http://jabber.org/protocol/chatstates'/><gone xmlns='http://jabber.org/protocol/chatstates'/></message>`, stanza.BadRequest, stanza.Modify},
		{"unknown chat state", `<message ` + hdr + `><typing xmlns='http://jabber.org/protocol/chatstates'/></message>`, stanza.BadRequest, stanza.Modify},
		{"receipt without id", `<message ` + hdr + `><received xmlns='urn:xmpp:receipts'/></message>`, stanza.BadRequest, stanza.Modify},
		{"invalid delay stamp", `<message ` + hdr + `><body>hi</body><delay xmlns='urn:xmpp:delay' stamp='yesterday'/></message>`, stanza.BadRequest, stanza.Modify},
		{"delay stamp after year 9999 in UTC", `<message ` + hdr + `><body>hi</body><delay xmlns='urn:xmpp:delay' stamp='9999-12-31T23:00:00-05:00'/></message>`, stanza.BadRequest, stanza.Modify},
		{"delay stamp before year 0 in UTC", `<message ` + hdr + `><body>hi</body><delay xmlns='urn:xmpp:delay' stamp='0000-01-01T00:00:00+01:00'/></message>`, stanza.BadRequest, stanza.Modify},
		{"delay without stamp", `<message ` + hdr + `><body>hi</body><delay xmlns='urn:xmpp:delay'/></message>`, stanza.BadRequest, stanza.Modify},
		{"correction without id", `<message ` + hdr + `><body>hi</body><replace xmlns='urn:xmpp:message-correct:0'/></message>`, stanza.BadRequest, stanza.Modify},
		{"body language not a tag", `<message ` + hdr + `><body xml:lang='x y'>hi</body></message>`, stanza.BadRequest, stanza.Modify},
		// Presence.
		{"unknown presence type", `<presence ` + hdr + ` type='invisible'/>`, stanza.BadRequest, stanza.Modify},
		{"unknown show", `<presence ` + hdr + `><show>busy</show></presence>`, stanza.BadRequest, stanza.Modify},
		{"empty show", `<presence ` + hdr + `><show/></presence>`, stanza.BadRequest, stanza.Modify},
		{"two shows", `<presence ` + hdr + `><show>away</show><show>xa</show></presence>`, stanza.BadRequest, stanza.Modify},
		{"priority out of range", `<presence ` + hdr + `><priority>128</priority></presence>`, stanza.BadRequest, stanza.Modify},
		{"priority not a number", `<presence ` + hdr + `><priority>high</priority></presence>`, stanza.BadRequest, stanza.Modify},
		{"two priorities", `<presence ` + hdr + `><priority>1</priority><priority>2</priority></presence>`, stanza.BadRequest, stanza.Modify},
		{"invalid idle since", `<presence ` + hdr + `><idle xmlns='urn:xmpp:idle:1' since='2019-13-45T00:00:00Z'/></presence>`, stanza.BadRequest, stanza.Modify},
		// IQ (RFC 6120 §8.2.3, RFC 6121 §8.5).
		{"iq ping to a user", `<iq ` + hdr + ` type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`, stanza.ServiceUnavailable, stanza.Cancel},
		{"iq disco to a user", `<iq ` + hdr + ` type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, stanza.ServiceUnavailable, stanza.Cancel},
		{"Jingle (XEP-0166)", `<iq ` + hdr + ` type='set' id='j1'><jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s1'/></iq>`, stanza.FeatureNotImplemented, stanza.Cancel},
		{"stream initiation file transfer (XEP-0096)", `<iq ` + hdr + ` type='set' id='f1'><si xmlns='http://jabber.org/protocol/si' id='a0' profile='http://jabber.org/protocol/si/profile/file-transfer'/></iq>`, stanza.FeatureNotImplemented, stanza.Cancel},
		{"bytestreams (XEP-0065)", `<iq ` + hdr + ` type='set' id='f2'><query xmlns='http://jabber.org/protocol/bytestreams' sid='s'/></iq>`, stanza.FeatureNotImplemented, stanza.Cancel},
		{"in-band bytestream (XEP-0047)", `<iq ` + hdr + ` type='set' id='f3'><open xmlns='http://jabber.org/protocol/ibb' sid='s' block-size='4096'/></iq>`, stanza.FeatureNotImplemented, stanza.Cancel},
		{"iq out of band (XEP-0066)", `<iq ` + hdr + ` type='set' id='f4'><query xmlns='jabber:iq:oob'><url>https://x.example/f</url></query></iq>`, stanza.FeatureNotImplemented, stanza.Cancel},
		{"iq without type", `<iq ` + hdr + ` id='x'><ping xmlns='urn:xmpp:ping'/></iq>`, stanza.BadRequest, stanza.Modify},
		{"iq without id", `<iq ` + hdr + ` type='get'><ping xmlns='urn:xmpp:ping'/></iq>`, stanza.BadRequest, stanza.Modify},
		{"iq without child", `<iq ` + hdr + ` type='get' id='x'/>`, stanza.BadRequest, stanza.Modify},
		{"iq with two children", `<iq ` + hdr + ` type='get' id='x'><a xmlns='urn:a'/><b xmlns='urn:b'/></iq>`, stanza.BadRequest, stanza.Modify},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { decodeErr(t, c.raw, c.cond, c.typ) })
	}
}

func TestDecodeIgnored(t *testing.T) {
	for _, raw := range []string{
		`<message ` + hdr + ` type='headline'><body>news</body></message>`,
		`<message ` + hdr + ` type='error'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`,
		`<message from='bad@@address' to='romeo@montague.example' type='error'/>`,
		`<presence ` + hdr + ` type='error'/>`,
		`<iq ` + hdr + ` type='result' id='1'/>`,
		`<iq ` + hdr + ` type='error' id='1'/>`,
	} {
		v, err := translate.Decode([]byte(raw), nil)
		if v != nil || err != translate.ErrIgnore {
			t.Errorf("Decode(%s) = %v, %v; want nil, ErrIgnore", raw, v, err)
		}
	}
}

func TestDecodePresence(t *testing.T) {
	since := time.Date(1969, 7, 21, 2, 56, 15, 0, time.UTC)
	cases := []struct {
		name string
		raw  string
		want translate.Stanza
	}{
		{"available", `<presence ` + hdr + `/>`,
			&translate.Presence{From: remoteFull, To: localBare, Availability: translate.Available}},
		{"chat", `<presence ` + hdr + `><show>chat</show></presence>`,
			&translate.Presence{From: remoteFull, To: localBare, Availability: translate.Available}},
		{"away with note and language", `<presence ` + hdr + ` xml:lang='en'><show>away</show><status>At lunch</status><priority>-1</priority></presence>`,
			&translate.Presence{From: remoteFull, To: localBare, Availability: translate.Away, Note: "At lunch", Lang: "en", Priority: -1}},
		{"status in the stanza's language", `<presence ` + hdr + ` xml:lang='de'><status xml:lang='en'>Lunch</status><status>Mittag</status></presence>`,
			&translate.Presence{From: remoteFull, To: localBare, Availability: translate.Available, Note: "Mittag", Lang: "de"}},
		{"xa", `<presence ` + hdr + `><show>xa</show></presence>`,
			&translate.Presence{From: remoteFull, To: localBare, Availability: translate.Away}},
		{"dnd", `<presence ` + hdr + `><show>dnd</show><priority>127</priority></presence>`,
			&translate.Presence{From: remoteFull, To: localBare, Availability: translate.DoNotDisturb, Priority: 127}},
		{"dnd with the Busy label", `<presence ` + hdr + `><show>dnd</show><status>Busy</status></presence>`,
			&translate.Presence{From: remoteFull, To: localBare, Availability: translate.Busy}},
		{"away with the BRB label", `<presence ` + hdr + `><show>away</show><status>Be right back</status></presence>`,
			&translate.Presence{From: remoteFull, To: localBare, Availability: translate.BeRightBack}},
		{"away and idle (XEP-0319)", `<presence ` + hdr + `><show>away</show><status>zzz</status><idle xmlns='urn:xmpp:idle:1' since='1969-07-21T02:56:15Z'/></presence>`,
			&translate.Presence{From: remoteFull, To: localBare, Availability: translate.Idle, Note: "zzz", IdleSince: since}},
		{"xa and idle stays away", `<presence ` + hdr + `><show>xa</show><idle xmlns='urn:xmpp:idle:1' since='1969-07-21T02:56:15Z'/></presence>`,
			&translate.Presence{From: remoteFull, To: localBare, Availability: translate.Away, IdleSince: since}},
		{"unavailable", `<presence ` + hdr + ` type='unavailable'><status>Gone home</status><idle xmlns='urn:xmpp:idle:1' since='1969-07-21T02:56:15Z'/></presence>`,
			&translate.Presence{From: remoteFull, To: localBare, Availability: translate.Offline, Note: "Gone home"}},
		{"subscribe, made bare", `<presence ` + hdr + ` type='subscribe' id='s1'><status>Add me</status></presence>`,
			&translate.Subscription{From: remoteBare, To: localBare, ID: "s1", Action: translate.Subscribe}},
		{"subscribed", `<presence ` + hdr + ` type='subscribed'/>`,
			&translate.Subscription{From: remoteBare, To: localBare, Action: translate.Subscribed}},
		{"unsubscribe", `<presence ` + hdr + ` type='unsubscribe'/>`,
			&translate.Subscription{From: remoteBare, To: localBare, Action: translate.Unsubscribe}},
		{"unsubscribed", `<presence ` + hdr + ` type='unsubscribed'/>`,
			&translate.Subscription{From: remoteBare, To: localBare, Action: translate.Unsubscribed}},
		{"probe", `<presence from='capulet.example' to='romeo@montague.example/x' type='probe' id='p1'/>`,
			&translate.Probe{From: jid.MustParse("capulet.example"), To: localBare, ID: "p1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := translate.Decode([]byte(c.raw), nil)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !stanzasEqual(v, c.want) {
				t.Errorf("Decode =\n%#v\nwant\n%#v", v, c.want)
			}
		})
	}
}

// stanzasEqual compares two internal values of any kind.
func stanzasEqual(a, b translate.Stanza) bool {
	switch x := a.(type) {
	case *translate.Message:
		y, ok := b.(*translate.Message)
		return ok && messagesEqual(x, y)
	case *translate.Presence:
		y, ok := b.(*translate.Presence)
		if !ok || !x.From.Equal(y.From) || !x.To.Equal(y.To) || !x.IdleSince.Equal(y.IdleSince) {
			return false
		}
		p, q := *x, *y
		p.From, p.To, p.IdleSince = jid.JID{}, jid.JID{}, time.Time{}
		q.From, q.To, q.IdleSince = jid.JID{}, jid.JID{}, time.Time{}
		return reflect.DeepEqual(p, q)
	case *translate.Subscription:
		y, ok := b.(*translate.Subscription)
		return ok && x.From.Equal(y.From) && x.To.Equal(y.To) && x.ID == y.ID && x.Action == y.Action && x.AutoApproved == y.AutoApproved
	case *translate.Probe:
		y, ok := b.(*translate.Probe)
		return ok && x.From.Equal(y.From) && x.To.Equal(y.To) && x.ID == y.ID
	}
	return false
}

// xmlElem is a generic parsed element, for checking Encode's output.
type xmlElem struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Kids    []xmlElem  `xml:",any"`
}

func (e *xmlElem) attr(space, local string) (string, bool) {
	for _, a := range e.Attrs {
		if a.Name.Space == space && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

func (e *xmlElem) kid(space, local string) *xmlElem {
	for i := range e.Kids {
		if e.Kids[i].XMLName.Space == space && e.Kids[i].XMLName.Local == local {
			return &e.Kids[i]
		}
	}
	return nil
}

// parseOut parses Encode's output with encoding/xml.
func parseOut(t *testing.T, b []byte) *xmlElem {
	t.Helper()
	var e xmlElem
	if err := xml.Unmarshal(b, &e); err != nil {
		t.Fatalf("output %s is not XML: %v", b, err)
	}
	return &e
}

func TestEncodeMessageFields(t *testing.T) {
	m := &translate.Message{
		From: localBare, To: remoteFull, ID: "m'1", Type: translate.Chat,
		Body: "a < b & \"c\"\n\tline two\r\n", Lang: "en-GB", Subject: "Sub<ject>", Thread: "th-1",
		ChatState: translate.Active, RequestReceipt: true, ReceiptFor: "r&0",
		Delay:    time.Date(2024, 2, 29, 23, 59, 58, 120000000, time.FixedZone("X", 3600)),
		Replaces: "m0",
	}
	out, err := translate.Encode(m, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	e := parseOut(t, out)
	checks := []struct{ what, got, want string }{
		{"element", e.XMLName.Space + " " + e.XMLName.Local, "jabber:server message"},
		{"body", e.kid("jabber:server", "body").Text, m.Body},
		{"subject", e.kid("jabber:server", "subject").Text, m.Subject},
		{"thread", e.kid("jabber:server", "thread").Text, m.Thread},
	}
	for _, a := range []struct{ name, want string }{{"from", "romeo@montague.example"}, {"to", "juliet@capulet.example/balcony"}, {"id", m.ID}, {"type", "chat"}} {
		v, _ := e.attr("", a.name)
		checks = append(checks, struct{ what, got, want string }{a.name, v, a.want})
	}
	lang, _ := e.attr("http://www.w3.org/XML/1998/namespace", "lang")
	checks = append(checks, struct{ what, got, want string }{"xml:lang", lang, "en-GB"})
	if k := e.kid("http://jabber.org/protocol/chatstates", "active"); k == nil {
		t.Error("no <active/> chat state")
	}
	if k := e.kid("urn:xmpp:receipts", "request"); k == nil {
		t.Error("no receipt request")
	}
	if k := e.kid("urn:xmpp:receipts", "received"); k == nil {
		t.Error("no receipt")
	} else {
		v, _ := k.attr("", "id")
		checks = append(checks, struct{ what, got, want string }{"received id", v, "r&0"})
	}
	if k := e.kid("urn:xmpp:delay", "delay"); k == nil {
		t.Error("no delay")
	} else {
		v, _ := k.attr("", "stamp")
		checks = append(checks, struct{ what, got, want string }{"delay stamp", v, "2024-02-29T22:59:58.12Z"})
	}
	if k := e.kid("urn:xmpp:message-correct:0", "replace"); k == nil {
		t.Error("no replace")
	} else {
		v, _ := k.attr("", "id")
		checks = append(checks, struct{ what, got, want string }{"replace id", v, "m0"})
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if len(e.Kids) != 8 {
		t.Errorf("%d children, want 8: %s", len(e.Kids), out)
	}
	// A whole-second delay has no fraction; a normal message says so.
	m.Delay = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	m.Type = translate.Normal
	out, err = translate.Encode(m, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	e = parseOut(t, out)
	if v, _ := e.kid("urn:xmpp:delay", "delay").attr("", "stamp"); v != "2024-01-02T03:04:05Z" {
		t.Errorf("stamp = %q", v)
	}
	if v, _ := e.attr("", "type"); v != "normal" {
		t.Errorf("type = %q, want normal", v)
	}
}

func TestEncodeOmitsEmptyFields(t *testing.T) {
	out, err := translate.Encode(&translate.Message{From: localBare, To: remoteBare, Body: "hi"}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	e := parseOut(t, out)
	if len(e.Kids) != 1 || e.Kids[0].XMLName.Local != "body" {
		t.Errorf("children of %s, want the body alone", out)
	}
	if _, ok := e.attr("http://www.w3.org/XML/1998/namespace", "lang"); ok {
		t.Errorf("xml:lang without Lang: %s", out)
	}
	// A message gets a random id when it has none, a new one each time.
	id1, _ := e.attr("", "id")
	out2, _ := translate.Encode(&translate.Message{From: localBare, To: remoteBare, Body: "hi"}, nil, false)
	id2, _ := parseOut(t, out2).attr("", "id")
	if id1 == "" || id2 == "" || id1 == id2 {
		t.Errorf("ids %q and %q: want two different random ids", id1, id2)
	}
	if !bytes.HasPrefix(out, []byte(`<message xmlns="jabber:server" from="romeo@montague.example" to="juliet@capulet.example" id="`)) {
		t.Errorf("output %s does not start with the canonical start tag", out)
	}
}

func TestEncodePresenceFields(t *testing.T) {
	since := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	cases := []struct {
		name     string
		p        translate.Presence
		share    bool
		typ      string
		show     string
		status   string
		priority string
		idle     string
		lang     string
	}{
		{name: "available", p: translate.Presence{Availability: translate.Available}},
		{name: "available with note shared", p: translate.Presence{Availability: translate.Available, Note: "Working from home", Lang: "en"}, share: true, status: "Working from home", lang: "en"},
		{name: "note not shared", p: translate.Presence{Availability: translate.Available, Note: "Working from home"}},
		{name: "idle", p: translate.Presence{Availability: translate.Idle, IdleSince: since}, show: "away", status: "Idle", idle: "2024-05-06T07:08:09Z"},
		{name: "busy with priority", p: translate.Presence{Availability: translate.Busy, Priority: -5}, show: "dnd", status: "Busy", priority: "-5"},
		{name: "busy, note shared", p: translate.Presence{Availability: translate.Busy, Note: "In a call"}, share: true, show: "dnd", status: "In a call"},
		{name: "do not disturb", p: translate.Presence{Availability: translate.DoNotDisturb}, show: "dnd"},
		{name: "be right back", p: translate.Presence{Availability: translate.BeRightBack}, show: "away", status: "Be right back"},
		{name: "away", p: translate.Presence{Availability: translate.Away, IdleSince: since}, show: "xa", idle: "2024-05-06T07:08:09Z"},
		{name: "offline", p: translate.Presence{Availability: translate.Offline, Note: "Gone", IdleSince: since}, typ: "unavailable"},
		{name: "offline, note shared", p: translate.Presence{Availability: translate.Offline, Note: "Gone"}, share: true, typ: "unavailable", status: "Gone"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.p.From, c.p.To = localBare, remoteBare
			out, err := translate.Encode(&c.p, nil, c.share)
			if err != nil {
				t.Fatal(err)
			}
			e := parseOut(t, out)
			text := func(local string) string {
				if k := e.kid("jabber:server", local); k != nil {
					return k.Text
				}
				return ""
			}
			typ, _ := e.attr("", "type")
			lang, _ := e.attr("http://www.w3.org/XML/1998/namespace", "lang")
			idle := ""
			if k := e.kid("urn:xmpp:idle:1", "idle"); k != nil {
				idle, _ = k.attr("", "since")
			}
			got := [...]string{typ, text("show"), text("status"), text("priority"), idle, lang}
			want := [...]string{c.typ, c.show, c.status, c.priority, c.idle, c.lang}
			if got != want {
				t.Errorf("type, show, status, priority, idle, lang = %q, want %q\n%s", got, want, out)
			}
			if _, ok := e.attr("", "id"); ok {
				t.Errorf("presence got an id: %s", out)
			}
		})
	}
}

func TestEncodeSubscriptionAndProbe(t *testing.T) {
	for _, a := range []translate.SubscriptionAction{translate.Subscribe, translate.Subscribed, translate.Unsubscribe, translate.Unsubscribed} {
		out, err := translate.Encode(&translate.Subscription{From: jid.MustParse("romeo@montague.example/orchard"), To: remoteFull, ID: "s1", Action: a}, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		e := parseOut(t, out)
		from, _ := e.attr("", "from")
		to, _ := e.attr("", "to")
		typ, _ := e.attr("", "type")
		id, _ := e.attr("", "id")
		if e.XMLName.Local != "presence" || from != "romeo@montague.example" || to != "juliet@capulet.example" || typ != a.String() || id != "s1" || len(e.Kids) != 0 {
			t.Errorf("%v: %s", a, out)
		}
	}
	out, err := translate.Encode(&translate.Probe{From: jid.MustParse("romeo@montague.example/orchard"), To: remoteFull}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	e := parseOut(t, out)
	from, _ := e.attr("", "from")
	to, _ := e.attr("", "to")
	typ, _ := e.attr("", "type")
	id, _ := e.attr("", "id")
	if from != "romeo@montague.example" || to != "juliet@capulet.example" || typ != "probe" || id == "" {
		t.Errorf("probe: %s", out)
	}
}

func TestEncodeErrors(t *testing.T) {
	ok := translate.Message{From: localBare, To: remoteBare, Body: "hi"}
	with := func(f func(m *translate.Message)) *translate.Message {
		m := ok
		f(&m)
		return &m
	}
	okP := translate.Presence{From: localBare, To: remoteBare, Availability: translate.Available}
	withP := func(f func(p *translate.Presence)) *translate.Presence {
		p := okP
		f(&p)
		return &p
	}
	cases := []struct {
		v            translate.Stanza
		typ, field   string
		reasonSubstr string
	}{
		{with(func(m *translate.Message) { m.To = jid.JID{} }), "Message", "To", "empty"},
		{with(func(m *translate.Message) { m.From = jid.JID{} }), "Message", "From", "empty"},
		{with(func(m *translate.Message) { m.Body = "" }), "Message", "Body", "nothing to send"},
		{with(func(m *translate.Message) { m.Body = "bell\a" }), "Message", "Body", "XML does not allow"},
		{with(func(m *translate.Message) { m.Body = "nul\x00" }), "Message", "Body", "XML does not allow"},
		{with(func(m *translate.Message) { m.Body = "bad \xff utf-8" }), "Message", "Body", "UTF-8"},
		{with(func(m *translate.Message) { m.Body = "\uFFFE" }), "Message", "Body", "XML does not allow"},
		{with(func(m *translate.Message) { m.Subject = "\x1b[1m" }), "Message", "Subject", "XML does not allow"},
		{with(func(m *translate.Message) { m.Thread = "\x01" }), "Message", "Thread", "XML does not allow"},
		{with(func(m *translate.Message) { m.ID = "\x02" }), "Message", "ID", "XML does not allow"},
		{with(func(m *translate.Message) { m.ReceiptFor = "\x03" }), "Message", "ReceiptFor", "XML does not allow"},
		{with(func(m *translate.Message) { m.Replaces = "\x04" }), "Message", "Replaces", "XML does not allow"},
		{with(func(m *translate.Message) { m.Lang = "en GB" }), "Message", "Lang", "language tag"},
		{with(func(m *translate.Message) { m.Type = 7 }), "Message", "Type", "neither"},
		{with(func(m *translate.Message) { m.ChatState = 9 }), "Message", "ChatState", "out of range"},
		{with(func(m *translate.Message) { m.Delay = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }), "Message", "Delay", "year"},
		{withP(func(p *translate.Presence) { p.Availability = translate.Unknown }), "Presence", "Availability", "unknown"},
		{withP(func(p *translate.Presence) { p.Availability = 42 }), "Presence", "Availability", "out of range"},
		{withP(func(p *translate.Presence) { p.Note = "\x00" }), "Presence", "Note", "XML does not allow"},
		{withP(func(p *translate.Presence) { p.To = jid.JID{} }), "Presence", "To", "empty"},
		{withP(func(p *translate.Presence) { p.Lang = "-" }), "Presence", "Lang", "language tag"},
		{withP(func(p *translate.Presence) { p.IdleSince = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) }), "Presence", "IdleSince", "year"},
		{&translate.Subscription{From: localBare, To: remoteBare}, "Subscription", "Action", "out of range"},
		{&translate.Subscription{From: localBare, Action: translate.Subscribe}, "Subscription", "To", "empty"},
		{&translate.Subscription{From: localBare, To: remoteBare, Action: translate.Subscribe, ID: "\x06"}, "Subscription", "ID", "XML does not allow"},
		{&translate.Probe{From: localBare, To: remoteBare, ID: "\x05"}, "Probe", "ID", "XML does not allow"},
		{&translate.Probe{To: remoteBare}, "Probe", "From", "empty"},
	}
	for _, c := range cases {
		out, err := translate.Encode(c.v, nil, true)
		var fe *translate.FieldError
		if !errors.As(err, &fe) {
			t.Errorf("Encode(%#v) = %s, %v; want a *FieldError", c.v, out, err)
			continue
		}
		if fe.Type != c.typ || fe.Field != c.field || !strings.Contains(fe.Reason, c.reasonSubstr) {
			t.Errorf("Encode(%#v) = %v; want %s.%s: ...%s...", c.v, err, c.typ, c.field, c.reasonSubstr)
		}
		if !strings.HasPrefix(err.Error(), "translate: "+c.typ+"."+c.field+": ") {
			t.Errorf("error text %q does not name the field", err)
		}
	}
	for _, v := range []translate.Stanza{nil, (*translate.Message)(nil), (*translate.Presence)(nil), (*translate.Subscription)(nil), (*translate.Probe)(nil)} {
		if out, err := translate.Encode(v, nil, false); err == nil {
			t.Errorf("Encode(%#v) = %s, want an error", v, out)
		}
	}
}

// oddMapper is a PresenceMapper that gives a show RFC 6121 does not define.
type oddMapper struct{ translate.PresenceTable }

func (oddMapper) ToXMPP(translate.Availability, string, bool) (bool, translate.Show, string) {
	return false, "sleeping", ""
}

func TestEncodeChecksTheMapper(t *testing.T) {
	_, err := translate.Encode(&translate.Presence{From: localBare, To: remoteBare, Availability: translate.Away}, &oddMapper{}, false)
	var fe *translate.FieldError
	if !errors.As(err, &fe) || fe.Field != "Availability" || !strings.Contains(fe.Reason, "sleeping") {
		t.Errorf("Encode with a mapper giving show 'sleeping' = %v", err)
	}
}

func TestPlainText(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain text, kept", "plain text, kept"},
		{"  spaces\n\tand tabs  ", "  spaces\n\tand tabs  "},
		{"line<br>break<br/>and<BR />more", "line\nbreak\nand\nmore"},
		{"<p>one</p><p>two</p>", "one\ntwo\n"},
		{"<div>a</div><ul><li>x</li><li>y</li></ul>", "a\nx\ny\n"},
		{"<h1>Title</h1>text<hr>end", "Title\ntext\nend"},
		{"<b>bold</b> &amp; <i>it&#39;s</i> &lt;3 &eacute;&#x263A;", "bold & it's <3 é☺"},
		{`<a href="x>y" title='a>b'>link</a>`, "link"},
		{"a < b and c > d", "a < b and c > d"},
		{"1 <2", "1 <2"},
		{"<script>alert('x')</script>shown<style>p{}</style>", "shown"},
		{"before<!-- a <b>comment</b> -->after", "beforeafter"},
		{"unterminated <b", "unterminated "},
		{"<!-- unterminated comment", ""},
		{"<?php echo ?>text<!DOCTYPE html>", "text"},
	}
	for _, c := range cases {
		if got := translate.PlainText(c.in); got != c.want {
			t.Errorf("PlainText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
