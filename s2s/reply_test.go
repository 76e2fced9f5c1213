package s2s_test

import (
	"errors"
	"testing"

	"github.com/xmppfed/xmppfed/s2s"
)

// FuzzResultReply: whatever the payload, ResultReply either refuses it
// with ErrInvalidStanza or returns a result that ParseStanza accepts, with
// the request's id and the addresses swapped.
func FuzzResultReply(f *testing.F) {
	f.Add([]byte("<query xmlns='jabber:iq:version'><name>n</name></query>"))
	req, err := s2s.ParseStanza([]byte("<iq xmlns='jabber:server' from='b.example' to='a.example' id='i&amp;1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, err := req.ResultReply(payload)
		if err != nil {
			if !errors.Is(err, s2s.ErrInvalidStanza) {
				t.Fatalf("ResultReply(%q): %v, want ErrInvalidStanza", payload, err)
			}
			return
		}
		again, err := s2s.ParseStanza(r.Raw())
		if err != nil {
			t.Fatalf("reply to payload %q does not parse: %v\n%s", payload, err, r.Raw())
		}
		if again.Type != "result" || again.ID != "i&1" || again.From.String() != "a.example" || again.To.String() != "b.example" {
			t.Fatalf("reply %s", r.Raw())
		}
	})
}
