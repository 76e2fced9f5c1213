package federationtest

import (
	"context"
	"encoding/xml"
	"errors"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
	"github.com/xmppfed/xmppfed/translate"
)

// offlineDomain returns a Domain for b.example with user bob that runs its
// handler without a network: what it sends is appended to *sent.
func offlineDomain(sent *[]*s2s.Stanza) *Domain {
	d := &Domain{
		name:  "b.example",
		dir:   new(policy.UserTable),
		pm:    translate.NewPresenceTable(),
		users: make(map[string]*User),
		pings: make(map[string]*pending),
	}
	d.send = func(_ context.Context, st *s2s.Stanza) error {
		*sent = append(*sent, st)
		return nil
	}
	d.User("bob")
	return d
}

func TestRecorderOrderAndClose(t *testing.T) {
	var r recorder[int]
	ctx := t.Context()
	const n = 100
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			r.add(i)
		}
		r.close()
	})
	for i := range n {
		v, err := r.next(ctx)
		if err != nil || v != i {
			t.Fatalf("next = %d, %v; want %d", v, err, i)
		}
	}
	wg.Wait()
	if _, err := r.next(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("next after close and everything read = %v, want ErrClosed", err)
	}
	if got := len(r.all()); got != n {
		t.Errorf("all has %d values, want %d", got, n)
	}
	// A value added after close is still kept and read.
	r.add(n)
	if v, err := r.next(ctx); err != nil || v != n {
		t.Errorf("next after a late add = %d, %v; want %d", v, err, n)
	}
}

func TestRecorderContext(t *testing.T) {
	var r recorder[string]
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := r.next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("next with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestParseError(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		cond      stanza.Condition
		typ       stanza.ErrorType
		text      string
	}{
		{"condition and text", `<message xmlns='jabber:server' type='error' from='a@a.example' to='b@b.example'><body>x</body><error type='wait'><recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>offline</text></error></message>`, stanza.RecipientUnavailable, stanza.Wait, "offline"},
		{"no namespace declared", `<iq type='error' id='1' from='a.example' to='b.example'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`, stanza.ServiceUnavailable, stanza.Cancel, ""},
		{"no error element", `<presence xmlns='jabber:server' type='error' from='a@a.example' to='b@b.example'/>`, stanza.UndefinedCondition, stanza.Cancel, ""},
		{"error element without condition", `<message type='error' from='a@a.example' to='b@b.example'><error type='cancel'/></message>`, stanza.UndefinedCondition, stanza.Cancel, ""},
		{"error nested deeper", `<message type='error' from='a@a.example' to='b@b.example'><x xmlns='urn:x'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></x></message>`, stanza.UndefinedCondition, stanza.Cancel, ""},
		{"truncated", `<message type='error' from='a@a.example' to='b@b.example'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>`, stanza.UndefinedCondition, stanza.Cancel, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := parseError([]byte(tc.raw))
			if e.Condition != tc.cond || e.Type != tc.typ {
				t.Errorf("parseError = %s (%s), want %s (%s)", e.Condition, e.Type, tc.cond, tc.typ)
			}
			if tc.text != "" && e.Text[""] != tc.text {
				t.Errorf("text = %q, want %q", e.Text, tc.text)
			}
		})
	}
}

func TestEncodeIQEscapes(t *testing.T) {
	id := `a'b"<c>&`
	ping := xml.Name{Space: nsPing, Local: "ping"}
	raw, err := encodeIQ("get", id, "a.example", "b.example", ping)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s2s.ParseStanza(raw)
	if err != nil {
		t.Fatalf("ParseStanza(%s): %v", raw, err)
	}
	if st.ID != id || st.Kind != "iq" || st.Type != "get" || st.From.String() != "a.example" || st.To.String() != "b.example" {
		t.Errorf("encoded %s: kind %s type %s id %q from %s to %s", raw, st.Kind, st.Type, st.ID, st.From, st.To)
	}
	if child, n, err := children(st); err != nil || n != 1 || child != ping {
		t.Errorf("children(%s) = %v, %d, %v; want one %v", raw, child, n, err, ping)
	}
}

// FuzzHandle feeds any stanza s2s accepts to a Domain's handler: it never
// panics, records every stanza once, answers only with a stanza.Error or
// (for a ping to the domain) a result, and puts what reaches the user bob
// in his received values or errors unless it is deliberately ignored.
func FuzzHandle(f *testing.F) {
	f.Add([]byte(`<message xmlns='jabber:server' from='alice@a.example/r' to='bob@b.example' type='chat' id='1'><body>hi</body></message>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		raw := append([]byte(nil), data...)
		st, err := s2s.ParseStanza(raw)
		if err != nil {
			return
		}
		var sent []*s2s.Stanza
		d := offlineDomain(&sent)
		bob := d.User("bob")
		// A ping from the domain to a.example, waiting under id p1.
		waiting := &pending{to: jid.MustParse("a.example"), answer: make(chan error, 1)}
		d.pings["p1"] = waiting

		herr := d.handle(t.Context(), st)
		if n := d.raw.len(); n != 1 {
			t.Fatalf("%d stanzas recorded in Raw, want 1", n)
		}
		if herr != nil {
			var se stanza.Error
			if !errors.As(herr, &se) {
				t.Fatalf("handle returned %v (%T), not a stanza.Error", herr, herr)
			}
			if st.Type == "error" {
				t.Fatalf("handle answers an error stanza with %v (RFC 6120 §8.3.1)", herr)
			}
		}
		for _, r := range sent {
			if r.Kind != "iq" || r.Type != "result" || r.ID != st.ID || !r.To.Equal(st.From) {
				t.Fatalf("sent %s in answer to %s", r.Raw(), raw)
			}
		}
		toBob := st.To.Localpart() == "bob"
		recorded := bob.got.len() + bob.errs.len()
		switch {
		case toBob && herr == nil && recorded != 1:
			if _, derr := translate.Decode(st.Raw(), d.pm); !errors.Is(derr, translate.ErrIgnore) || st.Type == "error" {
				t.Fatalf("a stanza to bob, accepted, recorded %d times for him: %s", recorded, raw)
			}
		case !toBob && recorded != 0:
			t.Fatalf("a stanza to %s recorded for bob", st.To)
		case toBob && herr != nil && recorded != 0:
			t.Fatalf("a stanza to bob refused with %v but recorded for him", herr)
		}
		if st.To.Localpart() == "" && st.Type == "error" && st.Kind != "iq" && d.errs.len() != 1 {
			t.Fatalf("an error stanza to the domain not recorded in its errors")
		}
	})
}
