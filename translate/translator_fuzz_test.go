package translate_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/translate"
)

// FuzzTranslatorInbound feeds any bytes to a Translator with a real
// policy and a roster holding every kind of pair: it must never panic or
// hang, must answer only with well-formed jabber:server stanzas addressed
// from and to someone, must never answer an error stanza, and must not
// grow its bounded maps past their bound.
func FuzzTranslatorInbound(f *testing.F) {
	for _, s := range []string{
		`<message xmlns='jabber:server' from='alice@fed.example/r' to='bob@corp.example' type='chat' id='1'><body>hi</body></message>`,
		`<message xmlns='jabber:server' from='uma@unv.example/r' to='bob@corp.example' type='normal'><body>hi</body></message>`,
		`<presence xmlns='jabber:server' from='alice@fed.example/r' to='bob@corp.example'><show>dnd</show><priority>-3</priority></presence>`,
		`<presence xmlns='jabber:server' from='uma@unv.example' to='bob@corp.example' type='subscribe'/>`,
		`<presence xmlns='jabber:server' from='alice@fed.example' to='bob@corp.example' type='probe'/>`,
	} {
		f.Add([]byte(s))
	}
	ctx := context.Background()
	p, err := policy.New(ctx, policy.NewMemStore(&policy.Config{
		Partners: []policy.Partner{
			{Domain: "fed.example", Type: policy.Federated},
			{Domain: "ver.example", Type: policy.PublicVerified},
			{Domain: "unv.example", Type: policy.PublicUnverified},
		},
		Policies: []policy.AccessPolicy{{Name: "global", EnableXMPPAccess: true, EnableFederationAccess: true}},
	}), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		roster := new(translate.MemRoster)
		states := []translate.SubState{translate.Both, translate.To, translate.From, translate.NonePendingOut}
		for i, remote := range []string{"alice@fed.example", "vera@ver.example", "uma@unv.example", "dave@fed.example"} {
			if err := roster.SetState(ctx, jid.MustParse("bob@corp.example"), jid.MustParse(remote), states[i]); err != nil {
				t.Fatal(err)
			}
		}
		host := new(fakeHost)
		host.setCurrent(jid.MustParse("bob@corp.example"), translate.Busy, "note")
		tr := &translate.Translator{Host: host, Roster: roster, Gate: p, MaxMessageBytes: 4096}
		translate.SetMaxPairs(tr, 2)
		out, err := tr.Inbound(ctx, raw)
		if err != nil {
			if len(out) != 0 {
				t.Fatalf("error %v with output %q", err, out)
			}
			return
		}
		isError := false
		var in struct {
			Type string `xml:"type,attr"`
		}
		if xml.Unmarshal(raw, &in) == nil && in.Type == "error" {
			isError = true
		}
		for _, b := range out {
			var w struct {
				XMLName xml.Name
				From    string `xml:"from,attr"`
				To      string `xml:"to,attr"`
				Type    string `xml:"type,attr"`
			}
			if err := xml.Unmarshal(b, &w); err != nil {
				t.Fatalf("output %q: %v", b, err)
			}
			if w.XMLName.Space != "jabber:server" || w.From == "" || w.To == "" {
				t.Fatalf("output %q: not an addressed jabber:server stanza", b)
			}
			if isError && w.Type == "error" {
				t.Fatalf("error stanza %q answered with an error %q", raw, b)
			}
			// A presence we build carries a show only when available
			// (error replies may echo the input).
			if bytes.Contains(b, []byte("<show")) && w.Type != "" && w.Type != "error" {
				t.Fatalf("%q: a show in a presence of type %q", b, w.Type)
			}
		}
		if convs, refreshed, locks := translate.Sizes(tr); convs > 2 || refreshed > 2 || locks != 0 {
			t.Fatalf("maps %d, %d, locks %d", convs, refreshed, locks)
		}
	})
}
