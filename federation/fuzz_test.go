package federation_test

import (
	"context"
	"errors"
	"testing"

	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/s2s"
)

// FuzzHandle feeds the Server's Handler any stanza s2s would hand it (a
// valid jabber:server stanza from a remote domain to a.example): it never
// panics, answers a request to the domain with a result that parses or a
// defined stanza error, and never answers domain traffic with anything
// but a stanza error.
func FuzzHandle(f *testing.F) {
	for _, seed := range []string{
		"<iq xmlns='jabber:server' from='b.example' to='a.example' id='1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
		"<message xmlns='jabber:server' from='bob@b.example/r' to='alice@a.example' type='chat' id='m1'><body>hi</body></message>",
		"<presence xmlns='jabber:server' from='bob@b.example/r' to='alice@a.example'><show>away</show></presence>",
		"<presence xmlns='jabber:server' from='bob@b.example' to='alice@a.example' type='subscribe'/>",
		"<presence xmlns='jabber:server' from='bob@b.example' to='alice@a.example' type='probe'/>",
	} {
		f.Add([]byte(seed))
	}
	s, _, _ := lonely(f, nil)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, raw []byte) {
		st, err := s2s.ParseStanza(raw)
		if err != nil || st.To.Domainpart() != "a.example" || st.From.Domainpart() == "a.example" || st.From.Domainpart() == "" {
			return // s2s never hands such a stanza to the Handler
		}
		if st.To.Localpart() == "" && st.Kind == "iq" && (st.Type == "get" || st.Type == "set") && st.ID != "" {
			reply, err := federation.DomainAnswer(s, st)
			var se stanza.Error
			switch {
			case err == nil:
				if reply.Type != "result" || reply.ID != st.ID || !reply.To.Equal(st.From) {
					t.Fatalf("reply %s to %s", reply.Raw(), raw)
				}
				if _, perr := s2s.ParseStanza(reply.Raw()); perr != nil {
					t.Fatalf("reply %s does not parse: %v", reply.Raw(), perr)
				}
			case errors.As(err, &se):
				if se.Condition == "" {
					t.Fatalf("error without a condition for %s", raw)
				}
			default:
				t.Fatalf("answer to %s: %v", raw, err)
			}
		}
		err = federation.Handle(s, ctx, st)
		if st.To.Localpart() == "" && err != nil {
			var se stanza.Error
			if !errors.As(err, &se) || se.Condition == "" {
				t.Fatalf("domain stanza %s: %v, want a stanza error or nothing", raw, err)
			}
		}
	})
}
