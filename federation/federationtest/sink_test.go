package federationtest_test

import (
	"testing"

	"github.com/xmppfed/xmppfed/federation/federationtest"
	"github.com/xmppfed/xmppfed/translate"
)

// A Domain with a Sink hands what arrives for its users to the callback,
// with the user, and records none of it; error replies to its users are
// still recorded, and the callback may send.
func TestSink(t *testing.T) {
	env := federationtest.NewEnv(t)
	got := make(chan translate.Stanza, 4)
	b := env.NewDomain("b.example", federationtest.Sink(func(u *federationtest.User, v translate.Stanza) {
		if u.JID().Localpart() != "bob" {
			t.Errorf("sink called for %s", u.JID())
		}
		if m, ok := v.(*translate.Message); ok && m.Body == "ping me back" {
			// The callback may send: an answer to a user that does not
			// exist comes back as an error, recorded.
			if err := u.SendMessage(t.Context(), "nobody@a.example", "answer"); err != nil {
				t.Errorf("send from the sink: %v", err)
			}
		}
		got <- v
	}))
	bob := b.User("bob")
	alice := env.NewDomain("a.example").User("alice")
	ctx := waitCtx(t)

	if err := alice.SendMessage(ctx, "bob@b.example", "ping me back"); err != nil {
		t.Fatal(err)
	}
	if err := alice.SendPresence(ctx, "bob@b.example", translate.Away, "out"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"message", "presence"} {
		select {
		case v := <-got:
			switch v := v.(type) {
			case *translate.Message:
				if want != "message" || v.Body != "ping me back" || !v.From.Equal(alice.JID()) {
					t.Errorf("sink got %+v, want the %s", v, want)
				}
			case *translate.Presence:
				if want != "presence" || v.Availability != translate.Away || v.Note != "out" {
					t.Errorf("sink got %+v, want the %s", v, want)
				}
			default:
				t.Errorf("sink got %T%+v", v, v)
			}
		case <-ctx.Done():
			t.Fatalf("no %s at the sink", want)
		}
	}
	e, err := bob.NextError(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind != "message" || e.From.String() != "nobody@a.example" {
		t.Errorf("error = %+v", e)
	}
	if r := bob.Received(); len(r) != 0 {
		t.Errorf("Received = %v, want nothing (sunk)", r)
	}
	for _, st := range b.Raw() {
		if st.Type != "error" {
			t.Errorf("Raw holds %s", st.Raw())
		}
	}
}
