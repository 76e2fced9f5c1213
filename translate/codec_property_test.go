package translate_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"pgregory.net/rapid"

	"github.com/xmppfed/xmppfed/translate"
)

// xmlText keeps the runes XML 1.0 allows.
func xmlText(s string) string {
	return strings.Map(func(r rune) rune {
		if r == 0x09 || r == 0x0A || r == 0x0D || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || r >= 0x10000 {
			return r
		}
		return -1
	}, s)
}

// genText draws text XML can carry, rich in what needs escaping.
var genText = rapid.Custom(func(t *rapid.T) string {
	parts := rapid.SliceOfN(rapid.OneOf(
		rapid.SampledFrom([]string{"<", ">", "&", "'", "\"", "\r\n", "\r", "\n", "\t", " ", "]]>", "&amp;", "é", "😀", "\u00a0", "\ufffd"}),
		rapid.Map(rapid.String(), xmlText),
	), 0, 6).Draw(t, "parts")
	return strings.Join(parts, "")
})

// genID draws a stanza id ("" for none).
var genID = rapid.OneOf(rapid.Just(""), rapid.StringMatching(`[A-Za-z0-9+/=_-]{1,20}`), genText)

// genLang draws an xml:lang.
var genLang = rapid.SampledFrom([]string{"", "en", "de-CH", "zh-Hant-TW", "x-klingon"})

var genDomain = rapid.SampledFrom([]string{"capulet.example", "montague.example", "xn--mnchen-3ya.example", "verona.example"})

// genJID draws a normalized JID, with a resource when full.
func genJID(full bool) *rapid.Generator[jid.JID] {
	return rapid.Custom(func(t *rapid.T) jid.JID {
		local := rapid.StringMatching(`[a-z0-9._-]{1,8}`).Draw(t, "local")
		res := ""
		if full {
			res = rapid.StringMatching(`[A-Za-z0-9._ -]{0,2}[A-Za-z0-9]`).Draw(t, "resource")
		}
		j, err := jid.New(local, genDomain.Draw(t, "domain"), res)
		if err != nil {
			t.Fatalf("generator: %v", err)
		}
		return j
	})
}

var genAnyJID = rapid.Custom(func(t *rapid.T) jid.JID { return genJID(rapid.Bool().Draw(t, "full")).Draw(t, "jid") })

// genTime draws a UTC time XEP-0082 can write, or zero.
var genTime = rapid.Custom(func(t *rapid.T) time.Time {
	if rapid.Bool().Draw(t, "zero") {
		return time.Time{}
	}
	sec := rapid.Int64Range(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()).Draw(t, "sec")
	ns := rapid.OneOf(rapid.Just(int64(0)), rapid.Int64Range(0, 999999999)).Draw(t, "ns")
	return time.Unix(sec, ns).UTC()
})

var genMessage = rapid.Custom(func(t *rapid.T) *translate.Message {
	m := &translate.Message{
		From: genAnyJID.Draw(t, "from"), To: genAnyJID.Draw(t, "to"),
		ID:             genID.Draw(t, "id"),
		Type:           translate.MessageType(rapid.IntRange(0, 1).Draw(t, "type")),
		Body:           genText.Draw(t, "body"),
		Lang:           genLang.Draw(t, "lang"),
		Subject:        genText.Draw(t, "subject"),
		Thread:         genText.Draw(t, "thread"),
		ChatState:      translate.ChatState(rapid.IntRange(0, int(translate.Gone)).Draw(t, "state")),
		RequestReceipt: rapid.Bool().Draw(t, "request"),
		ReceiptFor:     genID.Draw(t, "receiptFor"),
		Delay:          genTime.Draw(t, "delay"),
		Replaces:       genID.Draw(t, "replaces"),
	}
	if m.Body == "" && m.ChatState == translate.NoChatState && m.ReceiptFor == "" {
		m.ChatState = translate.Active // something to send
	}
	return m
})

var genPresence = rapid.Custom(func(t *rapid.T) *translate.Presence {
	return &translate.Presence{
		From: genAnyJID.Draw(t, "from"), To: genAnyJID.Draw(t, "to"),
		Availability: translate.Availability(rapid.IntRange(int(translate.Available), int(translate.Offline)).Draw(t, "a")),
		Note:         rapid.OneOf(rapid.Just(""), rapid.SampledFrom([]string{"Busy", "Idle", "Be right back"}), genText).Draw(t, "note"),
		Lang:         genLang.Draw(t, "lang"),
		IdleSince:    genTime.Draw(t, "idle"),
		Priority:     int8(rapid.IntRange(-128, 127).Draw(t, "priority")),
	}
})

// roundTrip encodes v and decodes the result.
func roundTrip(t *rapid.T, v translate.Stanza, pm translate.PresenceMapper, share bool) translate.Stanza {
	out, err := translate.Encode(v, pm, share)
	if err != nil {
		t.Fatalf("Encode(%#v): %v", v, err)
	}
	got, err := translate.Decode(out, pm)
	if err != nil {
		t.Fatalf("Decode(Encode(%#v)) = %v\n%s", v, err, out)
	}
	return got
}

func TestRoundTripMessage(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := genMessage.Draw(t, "m")
		got, ok := roundTrip(t, m, nil, false).(*translate.Message)
		if !ok {
			t.Fatalf("a message came back as %T", got)
		}
		want := *m
		if want.ID == "" {
			if got.ID == "" {
				t.Fatal("no id was generated")
			}
			want.ID = got.ID
		}
		if !messagesEqual(got, &want) {
			t.Fatalf("round trip\n%#v\ngave\n%#v", &want, got)
		}
	})
}

func TestRoundTripPresence(t *testing.T) {
	tables := map[string]func() *translate.PresenceTable{
		"default": translate.NewPresenceTable,
		"modified": func() *translate.PresenceTable {
			tbl := translate.NewPresenceTable()
			_ = tbl.SetToXMPP(translate.BeRightBack, translate.ShowXA, "Back soon")
			_ = tbl.SetToXMPP(translate.Away, translate.ShowAway, "Away")
			_ = tbl.SetFromXMPP(translate.ShowXA, translate.BeRightBack)
			return tbl
		},
	}
	for name, mk := range tables {
		t.Run(name, func(t *testing.T) {
			tbl := mk()
			if err := tbl.Stable(); err != nil {
				t.Fatal(err)
			}
			rapid.Check(t, func(t *rapid.T) {
				p := genPresence.Draw(t, "p")
				share := rapid.Bool().Draw(t, "share")
				got, ok := roundTrip(t, p, tbl, share).(*translate.Presence)
				if !ok {
					t.Fatalf("a presence came back as %T", got)
				}
				wantIdle := p.IdleSince
				if p.Availability == translate.Offline {
					wantIdle = time.Time{} // no idle on unavailable presence
				}
				if !got.From.Equal(p.From) || !got.To.Equal(p.To) || got.Priority != p.Priority || got.Lang != p.Lang || !got.IdleSince.Equal(wantIdle) {
					t.Fatalf("round trip\n%#v\ngave\n%#v", p, got)
				}
				sent := toXMPP(tbl, p.Availability, p.Note, share)
				if p.Note == "" || !share {
					// A canonical state comes back as it was: stable.
					if got.Availability != p.Availability || got.Note != "" {
						t.Fatalf("%v (note %q, share %v) came back as %v %q", p.Availability, p.Note, share, got.Availability, got.Note)
					}
					if again := toXMPP(tbl, got.Availability, got.Note, share); again != sent {
						t.Fatalf("ToXMPP of the result %+v, of the original %+v", again, sent)
					}
				} else if got.Availability != translate.Offline && got.Note != p.Note {
					// A shared note comes back, unless it is itself a label.
					if a, n := tbl.FromXMPP(false, sent.show, sent.status); n != "" || got.Availability != a {
						t.Fatalf("note %q came back as %v %q", p.Note, got.Availability, got.Note)
					}
				}
				if sent.unavailable != (got.Availability == translate.Offline) {
					t.Fatalf("%v came back as %v", p.Availability, got.Availability)
				}
				// Stable from then on.
				if again := roundTrip(t, got, tbl, share); !stanzasEqual(again, got) {
					t.Fatalf("second round trip\n%#v\ngave\n%#v", got, again)
				}
			})
		})
	}
}

func TestRoundTripSubscriptionAndProbe(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		from, to := genAnyJID.Draw(t, "from"), genAnyJID.Draw(t, "to")
		id := genID.Draw(t, "id")
		var v, want translate.Stanza
		if rapid.Bool().Draw(t, "probe") {
			v = &translate.Probe{From: from, To: to, ID: id}
			want = &translate.Probe{From: from.Bare(), To: to.Bare(), ID: id}
		} else {
			a := translate.SubscriptionAction(rapid.IntRange(int(translate.Subscribe), int(translate.Unsubscribed)).Draw(t, "action"))
			v = &translate.Subscription{From: from, To: to, ID: id, Action: a}
			want = &translate.Subscription{From: from.Bare(), To: to.Bare(), ID: id, Action: a}
		}
		got := roundTrip(t, v, nil, false)
		if id == "" {
			switch g := got.(type) {
			case *translate.Probe:
				want.(*translate.Probe).ID = g.ID
			case *translate.Subscription:
				want.(*translate.Subscription).ID = g.ID
			}
		}
		if !stanzasEqual(got, want) {
			t.Fatalf("round trip of %#v gave %#v, want %#v", v, got, want)
		}
	})
}

// seedStanzas are valid stanzas of every kind, for mutation.
var seedStanzas = []string{
	`<message xmlns='jabber:server' from='juliet@capulet.example/balcony' to='romeo@montague.example' type='chat' id='m1' xml:lang='en'><body>Wherefore art thou?</body><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/></message>`,
	`<message from='juliet@capulet.example/balcony' to='romeo@montague.example'><received xmlns='urn:xmpp:receipts' id='m1'/><delay xmlns='urn:xmpp:delay' stamp='2002-09-10T23:08:25Z'/></message>`,
	`<message from='juliet@capulet.example/balcony' to='romeo@montague.example' type='groupchat'><body>all</body></message>`,
	`<message from='juliet@capulet.example/balcony' to='romeo@montague.example'><x xmlns='jabber:x:conference' jid='r@muc.example'/></message>`,
	`<presence from='juliet@capulet.example/balcony' to='romeo@montague.example'><show>away</show><status>Be right back</status><priority>5</priority><idle xmlns='urn:xmpp:idle:1' since='1969-07-21T02:56:15Z'/></presence>`,
	`<presence from='juliet@capulet.example/balcony' to='romeo@montague.example' type='unavailable'/>`,
	`<presence from='juliet@capulet.example' to='romeo@montague.example' type='subscribe' id='s1'/>`,
	`<presence from='capulet.example' to='romeo@montague.example' type='probe'/>`,
	`<iq from='juliet@capulet.example/balcony' to='romeo@montague.example' type='set' id='j1'><jingle xmlns='urn:xmpp:jingle:1'/></iq>`,
	`<iq from='juliet@capulet.example/balcony' to='romeo@montague.example' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`,
}

// checkDecodeAnything is the property of Decode for any input: a value
// that encodes and decodes to itself, ErrIgnore, or a stanza.Error with a
// type, a condition and an English text, which ErrorReply can answer
// when the stanza is addressable.
func checkDecodeAnything(t interface{ Fatalf(string, ...any) }, raw []byte) {
	v, err := translate.Decode(raw, nil)
	switch {
	case err == nil:
		if v == nil {
			t.Fatalf("Decode(%q) = nil, nil", raw)
		}
		out, err := translate.Encode(v, nil, true)
		if err != nil {
			t.Fatalf("Decode(%q) = %#v, which Encode refuses: %v", raw, v, err)
		}
		again, err := translate.Decode(out, nil)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(%q))) = %v\n%s", raw, err, out)
		}
		// Encode gives an id to messages, subscriptions and probes
		// without one.
		switch w := v.(type) {
		case *translate.Message:
			if w.ID == "" {
				w.ID = again.(*translate.Message).ID
			}
		case *translate.Subscription:
			if w.ID == "" {
				w.ID = again.(*translate.Subscription).ID
			}
		case *translate.Probe:
			if w.ID == "" {
				w.ID = again.(*translate.Probe).ID
			}
		}
		if !stanzasEqual(v, again) {
			t.Fatalf("Decode(%q) = %#v, which comes back as %#v\n%s", raw, v, again, out)
		}
	case errors.Is(err, translate.ErrIgnore):
		if v != nil {
			t.Fatalf("Decode(%q) = %#v and ErrIgnore", raw, v)
		}
	default:
		var se stanza.Error
		if !errors.As(err, &se) {
			t.Fatalf("Decode(%q) error %v is a %T, not a stanza.Error", raw, err, err)
		}
		if v != nil || se.Type == "" || se.Condition == "" || se.Text["en"] == "" {
			t.Fatalf("Decode(%q) = %#v, %#v", raw, v, se)
		}
		reply, err := translate.ErrorReply(raw, se)
		if err != nil {
			if errors.Is(err, translate.ErrIgnore) {
				t.Fatalf("ErrorReply refuses to answer %q, which Decode did not ignore", raw)
			}
			return // not addressable
		}
		if rv, rerr := translate.Decode(reply, nil); rv != nil || rerr != translate.ErrIgnore {
			t.Fatalf("the reply %s to %q decodes as %v, %v; want an error stanza", reply, raw, rv, rerr)
		}
	}
}

func TestDecodeAnyInput(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var raw []byte
		if rapid.Bool().Draw(t, "random") {
			raw = rapid.SliceOfN(rapid.Byte(), 0, 300).Draw(t, "bytes")
		} else {
			raw = []byte(rapid.SampledFrom(seedStanzas).Draw(t, "seed"))
			for i := rapid.IntRange(1, 4).Draw(t, "edits"); i > 0 && len(raw) > 0; i-- {
				at := rapid.IntRange(0, len(raw)-1).Draw(t, "at")
				switch rapid.IntRange(0, 2).Draw(t, "edit") {
				case 0:
					raw = append(raw[:at:at], raw[at+1:]...)
				case 1:
					raw[at] = rapid.SampledFrom([]byte("<>/='\"&;: x\x00\xff")).Draw(t, "b")
				default:
					ins := rapid.SampledFrom([]string{"<x>", "</x>", "&amp;", " type='error'", " xmlns='urn:x'", "<body>é</body>", "\xed\xa0\x80"}).Draw(t, "ins")
					raw = append(raw[:at:at], append([]byte(ins), raw[at:]...)...)
				}
			}
		}
		checkDecodeAnything(t, raw)
	})
}

func FuzzDecode(f *testing.F) {
	for _, s := range seedStanzas {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkDecodeAnything(t, raw) })
}

// FuzzErrorReply: any input and condition: an error, or a reply that
// Decode reads as an error stanza (never answered), from and to swapped.
func FuzzErrorReply(f *testing.F) {
	for _, s := range seedStanzas {
		f.Add([]byte(s), "service-unavailable", "No <way> & \"never\"")
	}
	f.Fuzz(func(t *testing.T, raw []byte, cond, text string) {
		e := stanza.Error{Type: stanza.Cancel, Condition: stanza.Condition(cond), Text: map[string]string{"en": xmlText(text)}}
		reply, err := translate.ErrorReply(raw, e)
		if err != nil {
			return
		}
		if v, err := translate.Decode(reply, nil); v != nil || err != translate.ErrIgnore {
			t.Fatalf("the reply %s to %q decodes as %v, %v; want an error stanza", reply, raw, v, err)
		}
		var r replyShape
		if err := xml.Unmarshal(reply, &r); err != nil || r.Type != "error" || r.XMLName.Space != "jabber:server" || len(r.Kids) == 0 {
			t.Fatalf("the reply %s to %q: %+v, %v", reply, raw, r, err)
		}
		errEl := r.Kids[len(r.Kids)-1]
		if errEl.XMLName.Local != "error" || len(errEl.Kids) == 0 || errEl.Kids[0].XMLName.Space != "urn:ietf:params:xml:ns:xmpp-stanzas" {
			t.Fatalf("the reply %s to %q does not end with a stanza error", reply, raw)
		}
		// The addresses are swapped.
		var from, to string
		d := xml.NewDecoder(bytes.NewReader(raw))
		for {
			tok, err := d.Token()
			if err != nil {
				t.Fatalf("ErrorReply answered %q, which has no start tag: %v", raw, err)
			}
			if start, ok := tok.(xml.StartElement); ok {
				for _, a := range start.Attr {
					switch a.Name {
					case xml.Name{Local: "from"}:
						from = a.Value
					case xml.Name{Local: "to"}:
						to = a.Value
					}
				}
				break
			}
		}
		src, err1 := translate.ParseAddress(from)
		dst, err2 := translate.ParseAddress(to)
		if err1 != nil || err2 != nil || r.From != dst.String() || r.To != src.String() {
			t.Fatalf("the reply %s to %q: from and to not swapped (%v, %v)", reply, raw, err1, err2)
		}
		// The reply itself is never answered.
		if again, err := translate.ErrorReply(reply, e); again != nil || err != translate.ErrIgnore {
			t.Fatalf("ErrorReply answered its own reply %s: %s, %v", reply, again, err)
		}
	})
}

// FuzzPlainText: never panics; text with no markup is kept as it is; the
// result has no more tags than the input had '<'.
func FuzzPlainText(f *testing.F) {
	for _, s := range []string{"plain", "<p>a</p><br>b", "&amp;&lt;&#x263A;", "<script>x</script>y", "<!-- c -->d", "a < b", "<a href='>'>x</a>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := translate.PlainText(s)
		if !strings.ContainsAny(s, "<&") && got != s {
			t.Fatalf("PlainText(%q) = %q: text without markup changed", s, got)
		}
		if strings.Count(got, "<") > strings.Count(s, "<")+strings.Count(s, "&") {
			t.Fatalf("PlainText(%q) = %q has more '<' than the input could give", s, got)
		}
	})
}
