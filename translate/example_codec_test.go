package translate_test

import (
	"errors"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/translate"
)

func ExampleDecode() {
	raw := []byte(`<message xmlns='jabber:server' from='juliet@capulet.example/balcony'
	  to='romeo@montague.example' type='chat' id='m1' xml:lang='en'>
	  <body>Wherefore art thou, Romeo?</body>
	  <active xmlns='http://jabber.org/protocol/chatstates'/>
	  <request xmlns='urn:xmpp:receipts'/>
	</message>`)
	v, err := translate.Decode(raw, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	m := v.(*translate.Message)
	fmt.Println(m.From, "->", m.To)
	fmt.Println(m.Type, m.ID, m.Lang, m.ChatState, m.RequestReceipt)
	fmt.Println(m.Body)
	// Output:
	// juliet@capulet.example/balcony -> romeo@montague.example
	// chat m1 en active true
	// Wherefore art thou, Romeo?
}

func ExampleDecode_refused() {
	raw := []byte(`<message from='juliet@capulet.example/balcony' to='romeo@montague.example' type='groupchat' id='g1'><body>Hi all</body></message>`)
	_, err := translate.Decode(raw, nil)
	var se stanza.Error
	if errors.As(err, &se) {
		fmt.Println(se.Type, se.Condition)
		reply, _ := translate.ErrorReply(raw, se)
		fmt.Println(string(reply))
	}
	// Output:
	// cancel service-unavailable
	// <message xmlns="jabber:server" from="romeo@montague.example" to="juliet@capulet.example/balcony" id="g1" type="error"><body>Hi all</body><error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></service-unavailable><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas" xml:lang="en">Group chat messages are not supported: conversations with this server are one-to-one</text></error></message>
}

func ExampleEncode() {
	m := &translate.Message{
		From: jid.MustParse("romeo@montague.example"),
		To:   jid.MustParse("juliet@capulet.example/balcony"),
		ID:   "r1", Type: translate.Chat,
		Body:      "It is the east,\nand Juliet is the sun.",
		ChatState: translate.Active,
		Delay:     time.Date(1597, 7, 1, 22, 0, 0, 0, time.UTC),
	}
	b, err := translate.Encode(m, nil, false)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(b))
	// Output:
	// <message xmlns="jabber:server" from="romeo@montague.example" to="juliet@capulet.example/balcony" id="r1" type="chat"><body>It is the east,
	// and Juliet is the sun.</body><active xmlns="http://jabber.org/protocol/chatstates"></active><delay xmlns="urn:xmpp:delay" stamp="1597-07-01T22:00:00Z"></delay></message>
}

func ExampleEncode_presence() {
	p := &translate.Presence{
		From:         jid.MustParse("romeo@montague.example"),
		To:           jid.MustParse("juliet@capulet.example"),
		Availability: translate.Busy,
		Note:         "Duelling Tybalt",
	}
	// A Public partner: the note stays home, the label goes out.
	public, _ := translate.Encode(p, nil, false)
	fmt.Println(string(public))
	// A Federated partner sees the note.
	federated, _ := translate.Encode(p, nil, true)
	fmt.Println(string(federated))
	// Output:
	// <presence xmlns="jabber:server" from="romeo@montague.example" to="juliet@capulet.example"><show>dnd</show><status>Busy</status></presence>
	// <presence xmlns="jabber:server" from="romeo@montague.example" to="juliet@capulet.example"><show>dnd</show><status>Duelling Tybalt</status></presence>
}

func ExamplePresenceTable() {
	tbl := translate.NewPresenceTable()
	for a := translate.Available; a <= translate.Offline; a++ {
		unavailable, show, status := tbl.ToXMPP(a, "", false)
		back, _ := tbl.FromXMPP(unavailable, show, status)
		fmt.Printf("%-14v unavailable=%-5v show=%-4q status=%-15q -> %v\n", a, unavailable, show, status, back)
	}
	// Output:
	// available      unavailable=false show=""   status=""              -> available
	// idle           unavailable=false show="away" status="Idle"          -> idle
	// busy           unavailable=false show="dnd" status="Busy"          -> busy
	// do-not-disturb unavailable=false show="dnd" status=""              -> do-not-disturb
	// be-right-back  unavailable=false show="away" status="Be right back" -> be-right-back
	// away           unavailable=false show="xa" status=""              -> away
	// offline        unavailable=true  show=""   status=""              -> offline
}

func ExamplePresenceTable_SetToXMPP() {
	tbl := translate.NewPresenceTable()
	// This host has no "extended away": Away goes out as away, labelled.
	if err := tbl.SetToXMPP(translate.Away, translate.ShowAway, "Away"); err != nil {
		fmt.Println(err)
	}
	fmt.Println(tbl.ToXMPP(translate.Away, "", false))
	a, note := tbl.FromXMPP(false, translate.ShowAway, "Away")
	fmt.Printf("%v %q\n", a, note)
	fmt.Println(tbl.Stable())
	// Output:
	// false away Away
	// away ""
	// <nil>
}

func ExampleStanzaError() {
	for _, err := range []error{
		translate.ErrUnknownUser,
		fmt.Errorf("deliver: %w", translate.ErrOffline),
		translate.ErrTooLarge,
		errors.New("disk full"),
	} {
		se := translate.StanzaError(err)
		fmt.Println(se.Type, se.Condition)
	}
	// Output:
	// cancel service-unavailable
	// wait recipient-unavailable
	// modify policy-violation
	// cancel internal-server-error
}

func ExamplePlainText() {
	fmt.Printf("%q\n", translate.PlainText("<p>Two households,<br>both alike in <b>dignity</b></p><p>In fair Verona &amp; more</p>"))
	// Output:
	// "Two households,\nboth alike in dignity\nIn fair Verona & more\n"
}

func ExampleParseAddress() {
	j, err := translate.ParseAddress("Juliet@Capulet.Example/Balcony")
	fmt.Println(j, err)
	_, err = translate.ParseAddress("juliet@@capulet.example")
	fmt.Println(errors.Is(err, translate.ErrMalformedAddress))
	// Output:
	// juliet@capulet.example/Balcony <nil>
	// true
}
