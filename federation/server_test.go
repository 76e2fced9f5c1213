package federation_test

import (
	"context"
	"encoding/xml"
	"errors"
	"slices"
	"strings"
	"testing"

	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
	"github.com/xmppfed/xmppfed/translate"
)

// lonely returns a Server for a.example whose policy lists b.example
// (Federated), with a loopback DNS server that knows no domain: every
// stanza to b.example is bounced with remote-server-not-found.
func lonely(t testing.TB, v *federation.Version) (*federation.Server, *host, *metrics) {
	t.Helper()
	h := newHost("a.example", "alice")
	c := &policy.Config{
		Partners: []policy.Partner{{Domain: "b.example", Type: policy.Federated}},
		Policies: []policy.AccessPolicy{{Name: policy.GlobalPolicy, EnableXMPPAccess: true, EnableFederationAccess: true}},
	}
	pol, err := policy.New(context.Background(), policy.NewMemStore(c), &policy.Options{Directory: h})
	if err != nil {
		t.Fatal(err)
	}
	d := dnsdiscotest.NewServer()
	m := new(metrics)
	s := &federation.Server{Domains: []string{"a.example"}, Policy: pol, Backend: h, Resolver: d.Resolver(), Version: v, Metrics: m}
	t.Cleanup(func() {
		_ = s.Close()
		d.Close()
	})
	return s, h, m
}

func parse(t testing.TB, raw string) *s2s.Stanza {
	t.Helper()
	st, err := s2s.ParseStanza([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func iq(typ, payload string) string {
	return "<iq xmlns='jabber:server' from='b.example' to='a.example' id='q1' type='" + typ + "'>" + payload + "</iq>"
}

func TestDomainAnswers(t *testing.T) {
	plain, _, _ := lonely(t, nil)
	versioned, _, _ := lonely(t, &federation.Version{Name: "x<&'\"y", Version: "2", OS: "plan9"})
	tests := []struct {
		name    string
		srv     *federation.Server
		raw     string
		cond    stanza.Condition // "" for a result
		payload string           // substring of the result
	}{
		{"ping", plain, iq("get", "<ping xmlns='urn:xmpp:ping'/>"), "", ""},
		{"ping prefixed", plain, iq("get", "<p:ping xmlns:p='urn:xmpp:ping'/>"), "", ""},
		{"ping namespace on the iq", plain, "<iq xmlns='jabber:server' xmlns:p='urn:xmpp:ping' from='b.example' to='a.example' id='q1' type='get'><p:ping/></iq>", "", ""},
		{"ping in jabber:server", plain, iq("get", "<ping/>"), stanza.ServiceUnavailable, ""},
		{"ping set", plain, iq("set", "<ping xmlns='urn:xmpp:ping'/>"), stanza.FeatureNotImplemented, ""},
		{"ping wrong element", plain, iq("get", "<pong xmlns='urn:xmpp:ping'/>"), stanza.ServiceUnavailable, ""},
		{"disco info", plain, iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>"), "", "category='server'"},
		{"disco info node", plain, iq("get", "<query xmlns='http://jabber.org/protocol/disco#info' node='x'/>"), stanza.ItemNotFound, ""},
		{"disco info set", plain, iq("set", "<query xmlns='http://jabber.org/protocol/disco#info'/>"), stanza.FeatureNotImplemented, ""},
		{"disco items", plain, iq("get", "<query xmlns='http://jabber.org/protocol/disco#items'/>"), "", "disco#items"},
		{"version off", plain, iq("get", "<query xmlns='jabber:iq:version'/>"), stanza.ServiceUnavailable, ""},
		{"version", versioned, iq("get", "<query xmlns='jabber:iq:version'/>"), "", "<os>plan9</os>"},
		{"version set", versioned, iq("set", "<query xmlns='jabber:iq:version'/>"), stanza.FeatureNotImplemented, ""},
		{"unknown namespace", plain, iq("get", "<query xmlns='jabber:iq:roster'/>"), stanza.ServiceUnavailable, ""},
		{"no child", plain, iq("get", ""), stanza.BadRequest, ""},
		{"two children", plain, iq("get", "<ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/>"), stanza.BadRequest, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := parse(t, tc.raw)
			reply, err := federation.DomainAnswer(tc.srv, st)
			if tc.cond != "" {
				var se stanza.Error
				if !errors.As(err, &se) || se.Condition != tc.cond {
					t.Fatalf("answer = %v, %v; want %s", reply, err, tc.cond)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if reply.Type != "result" || reply.ID != "q1" || reply.To.String() != "b.example" || reply.From.String() != "a.example" {
				t.Errorf("reply = %+v", reply)
			}
			if !strings.Contains(string(reply.Raw()), tc.payload) {
				t.Errorf("reply %s lacks %q", reply.Raw(), tc.payload)
			}
			if _, err := s2s.ParseStanza(reply.Raw()); err != nil {
				t.Errorf("reply does not parse: %v", err)
			}
		})
	}
	// The version's text is escaped, and disco#info lists the feature
	// only when it is on.
	reply, err := federation.DomainAnswer(versioned, parse(t, iq("get", "<query xmlns='jabber:iq:version'/>")))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Name string `xml:"query>name"`
	}
	if err := xml.Unmarshal(reply.Raw(), &v); err != nil || v.Name != "x<&'\"y" {
		t.Errorf("version name = %q, %v", v.Name, err)
	}
	for srv, want := range map[*federation.Server]bool{plain: false, versioned: true} {
		reply, err := federation.DomainAnswer(srv, parse(t, iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>")))
		if err != nil {
			t.Fatal(err)
		}
		var info struct {
			Feature []struct {
				Var string `xml:"var,attr"`
			} `xml:"query>feature"`
		}
		if err := xml.Unmarshal(reply.Raw(), &info); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range info.Feature {
			got = append(got, f.Var)
		}
		if has := slices.Contains(got, "jabber:iq:version"); has != want || len(got) != 3+map[bool]int{false: 0, true: 1}[want] {
			t.Errorf("features = %v (version on: %v)", got, want)
		}
	}
}

func TestHandleDomainStanzas(t *testing.T) {
	s, h, _ := lonely(t, nil)
	ctx := context.Background()
	tests := []struct {
		raw  string
		cond stanza.Condition // "" when nothing is answered
	}{
		{"<message xmlns='jabber:server' from='x@b.example' to='a.example' type='chat'><body>hi</body></message>", stanza.ServiceUnavailable},
		{"<message xmlns='jabber:server' from='x@b.example' to='a.example'><body>hi</body></message>", stanza.ServiceUnavailable},
		{"<message xmlns='jabber:server' from='x@b.example' to='a.example' type='headline'><body>news</body></message>", ""},
		{"<message xmlns='jabber:server' from='x@b.example' to='a.example' type='error'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>", ""},
		{"<presence xmlns='jabber:server' from='x@b.example' to='a.example'/>", ""},
		{"<presence xmlns='jabber:server' from='x@b.example' to='a.example' type='probe'/>", ""},
		{"<iq xmlns='jabber:server' from='b.example' to='a.example' id='nobody-asked' type='result'/>", ""},
		{"<iq xmlns='jabber:server' from='b.example' to='alice@a.example' id='nobody-asked' type='error'/>", ""},
	}
	for _, tc := range tests {
		err := federation.Handle(s, ctx, parse(t, tc.raw))
		if tc.cond == "" {
			if err != nil {
				t.Errorf("%s: %v, want nothing answered", tc.raw, err)
			}
			continue
		}
		var se stanza.Error
		if !errors.As(err, &se) || se.Condition != tc.cond {
			t.Errorf("%s: %v, want %s", tc.raw, err, tc.cond)
		}
	}
	if !h.none(func(any) bool { return true }) {
		t.Errorf("the host heard of stanzas to the domain: %s", h.dump())
	}
}

// TestUnreachable: a stanza to a domain without servers comes back to the
// Backend with remote-server-not-found, an iq of ours fails, and the
// failure is remembered and counted.
func TestUnreachable(t *testing.T) {
	s, h, m := lonely(t, nil)
	alice, bob := mustJID(t, "alice@a.example"), mustJID(t, "bob@b.example")
	send(t, &node{srv: s, domain: "a.example"}, &translate.Message{From: alice, To: bob, ID: "u1", Body: "hello?"})
	bo := h.wait(t, "bounce", bounced(func(bounce) bool { return true })).(bounce)
	if msg, ok := bo.v.(*translate.Message); !ok || msg.ID != "u1" || msg.Body != "hello?" || bo.reason.Condition != stanza.RemoteServerNotFound {
		t.Errorf("bounce = %T%+v, %v", bo.v, bo.v, bo.reason)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	_, err := federation.SendIQ(s, ctx, mustJID(t, "a.example"), mustJID(t, "b.example"), []byte("<ping xmlns='urn:xmpp:ping'/>"))
	var se stanza.Error
	if !errors.As(err, &se) || se.Condition != stanza.RemoteServerNotFound {
		t.Errorf("SendIQ = %v, want remote-server-not-found", err)
	}
	if err, at := federation.S2S(s).LastFailure("b.example"); err == nil || at.IsZero() {
		t.Errorf("LastFailure = %v, %v", err, at)
	}
	if m.get("failed dns") == 0 || m.get("bounced remote-server-not-found") == 0 {
		t.Errorf("metrics = %v", m.n)
	}
	// A cancelled request ends at once.
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if _, err := federation.SendIQ(s, cctx, mustJID(t, "a.example"), mustJID(t, "b.example"), []byte("<ping xmlns='urn:xmpp:ping'/>")); !errors.Is(err, context.Canceled) {
		t.Errorf("SendIQ with a cancelled ctx = %v", err)
	}
}

// BenchmarkPing measures the Handler's answer to an XEP-0199 ping to our
// domain: parsing the request and building the result stanza.
func BenchmarkPing(b *testing.B) {
	s, _, _ := lonely(b, nil)
	st := parse(b, "<iq xmlns='jabber:server' from='prosody.b.example' to='a.example' id='ping-123' type='get'><ping xmlns='urn:xmpp:ping'/></iq>")
	b.ReportAllocs()
	for b.Loop() {
		reply, err := federation.DomainAnswer(s, st)
		if err != nil || reply.Type != "result" {
			b.Fatal(reply, err)
		}
	}
}
