package translate_test

import (
	"context"
	"encoding/xml"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/translate"
)

// printHost is a Host that prints what it is given; its users are always
// available.
type printHost struct{}

func (printHost) DeliverMessage(_ context.Context, m *translate.Message) error {
	fmt.Printf("host: message from %v to %v: %q\n", m.From, m.To, m.Body)
	return nil
}

func (printHost) DeliverPresence(_ context.Context, p *translate.Presence) error {
	fmt.Printf("host: %v is %v\n", p.From, p.Availability)
	return nil
}

func (printHost) DeliverSubscription(_ context.Context, s *translate.Subscription) error {
	fmt.Printf("host: %v from %v (auto-approved: %v)\n", s.Action, s.From, s.AutoApproved)
	return nil
}

func (printHost) CurrentPresence(_ context.Context, user jid.JID) (*translate.Presence, error) {
	return &translate.Presence{From: user, Availability: translate.Available, Note: "Working from home"}, nil
}

// describe prints a stanza the Translator returned, as the remote server
// will read it.
func describe(raw []byte) {
	v, err := translate.Decode(raw, nil)
	if err != nil {
		// Decode ignores error stanzas: read the condition with
		// encoding/xml.
		var reply struct {
			To    string `xml:"to,attr"`
			Error struct {
				Conditions []struct{ XMLName xml.Name } `xml:",any"`
			} `xml:"error"`
		}
		if err := xml.Unmarshal(raw, &reply); err != nil || len(reply.Error.Conditions) == 0 {
			fmt.Println("send: unreadable", err)
			return
		}
		fmt.Printf("send: error %s to %s\n", reply.Error.Conditions[0].XMLName.Local, reply.To)
		return
	}
	switch v := v.(type) {
	case *translate.Subscription:
		fmt.Printf("send: %v to %v\n", v.Action, v.To)
	case *translate.Presence:
		fmt.Printf("send: presence %v %q to %v\n", v.Availability, v.Note, v.To)
	default:
		fmt.Printf("send: %T\n", v)
	}
}

// ExampleTranslator shows a Translator between a host and a Federated
// partner: a subscription request is approved by policy, and a message is
// delivered; a message from a domain that is no partner is refused.
func ExampleTranslator() {
	ctx := context.Background()
	gate, err := policy.New(ctx, policy.NewMemStore(&policy.Config{
		Partners: []policy.Partner{{Domain: "partner.example", Type: policy.Federated}},
		Policies: []policy.AccessPolicy{{Name: "global", EnableXMPPAccess: true, EnableFederationAccess: true}},
	}), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	tr := &translate.Translator{Host: printHost{}, Roster: new(translate.MemRoster), Gate: gate}

	// Stanzas as a remote server sends them (s2s.Stanza.Raw).
	for _, raw := range []string{
		`<presence xmlns='jabber:server' from='alice@partner.example' to='bob@corp.example' type='subscribe'/>`,
		`<message xmlns='jabber:server' from='alice@partner.example/phone' to='bob@corp.example' type='chat'><body>Hello Bob</body></message>`,
		`<message xmlns='jabber:server' from='eve@elsewhere.example/x' to='bob@corp.example' type='chat'><body>Hi</body></message>`,
	} {
		out, err := tr.Inbound(ctx, []byte(raw))
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, b := range out {
			describe(b)
		}
	}
	// Output:
	// host: subscribe from alice@partner.example (auto-approved: true)
	// send: subscribed to alice@partner.example
	// send: presence available "Working from home" to alice@partner.example
	// host: message from alice@partner.example/phone to bob@corp.example: "Hello Bob"
	// send: error service-unavailable to eve@elsewhere.example/x
}

// ExampleSubState follows one contact through RFC 6121's states: the user
// asks, the contact approves, then asks back and is approved.
func ExampleSubState() {
	s := translate.None
	s, send := s.Outbound(translate.Subscribe)
	fmt.Println(s, send)
	s, deliver := s.Inbound(translate.Subscribed)
	fmt.Println(s, deliver)
	s, deliver = s.Inbound(translate.Subscribe)
	fmt.Println(s, deliver)
	s, send = s.Outbound(translate.Subscribed)
	fmt.Println(s, send, s.SeesContact(), s.ContactSees())
	_, ok := s.AutoReply(translate.Subscribe)
	fmt.Println("a repeated subscribe is answered by the server:", ok)
	// Output:
	// None + Pending Out true
	// To true
	// To + Pending In true
	// Both true true true
	// a repeated subscribe is answered by the server: true
}
