//go:build interop

package interop

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// TestInteropPyClient proves the Python client (PyClient, Debian's
// python3-slixmpp) alone, with no federation, on each peer: two users of
// one server subscribe to each other's presence, exchange presence changes,
// a chat state, a message with a receipt request and the receipt, get a
// stanza error for a user who does not exist, and see each other go
// offline.
func TestInteropPyClient(t *testing.T) {
	requireRoot(t, "prosody")
	requireRoot(t, "ejabberdctl")
	requirePython(t)
	t.Run("prosody", func(t *testing.T) { testPyClient(t, StartProsody) })
	t.Run("ejabberd", func(t *testing.T) { testPyClient(t, StartEjabberd) })
}

func testPyClient(t *testing.T, start func(testing.TB, *PKI, Mode) *Peer) {
	pki := NewPKI(t)
	peer := start(t, pki, External)
	peer.Register(t, password, "alice", "bob")
	caFile := WriteCAFile(t, pki)
	var alice, bob UserClient
	aliceP := StartPyClient(t, peer.C2SAddr(), caFile, "alice@"+peer.Domain, password)
	bobP := StartPyClient(t, peer.C2SAddr(), caFile, "bob@"+peer.Domain, password)
	alice, bob = aliceP, bobP
	sc := "pyclient/" + peer.Kind + "/"
	if aliceP.FullJID() == "" || Bare(aliceP.FullJID()) != alice.JID() {
		t.Fatalf("%slogin: bound JID %q, want a full JID of %s", sc, aliceP.FullJID(), alice.JID())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s\n%s\n%s log:\n%s", aliceP.Log(), bobP.Log(), peer.Kind, peer.Log())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	step := func(name string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s%s: %v", sc, name, err)
		}
	}
	from := func(c UserClient, kind string) func(Event) bool {
		return func(e Event) bool { return e.Kind == kind && Bare(e.From) == c.JID() }
	}

	// Subscription (RFC 6121 §3): alice asks, bob approves, and alice then
	// gets bob's current presence.
	step("subscribe", alice.Subscribe(ctx, bob.JID()))
	Expect(t, ctx, bob, sc+"subscribe: bob gets alice's request", from(alice, "subscribe"))
	step("approve", bob.Approve(ctx, alice.JID()))
	Expect(t, ctx, alice, sc+"approve: alice gets subscribed", from(bob, "subscribed"))
	Expect(t, ctx, alice, sc+"approve: alice gets bob's presence", from(bob, "presence"))

	// A presence change with show and status.
	step("presence", bob.SendPresence(ctx, Presence{Show: "away", Status: "at lunch"}))
	e := Expect(t, ctx, alice, sc+"presence: alice sees bob away", func(e Event) bool {
		return from(bob, "presence")(e) && e.Show != ""
	})
	if e.Show != "away" || e.Status != "at lunch" || e.Unavailable {
		t.Fatalf("%spresence: alice got %v, want show away, status \"at lunch\"", sc, e)
	}

	// A chat state, then a message with a chat state and a receipt
	// request, then the receipt.
	step("chat state", alice.SendChatState(ctx, bob.JID(), "composing"))
	e = Expect(t, ctx, bob, sc+"chat state: bob gets composing", from(alice, "message"))
	if e.ChatState != "composing" || e.Body != "" {
		t.Fatalf("%schat state: bob got %v, want a body-less composing", sc, e)
	}
	id, err := alice.SendMessage(ctx, bob.JID(), "hello bob <&>", MessageOptions{ID: "py-1", ChatState: "active", RequestReceipt: true})
	step("message", err)
	if id != "py-1" {
		t.Fatalf("%smessage: SendMessage returned id %q, want py-1", sc, id)
	}
	e = Expect(t, ctx, bob, sc+"message: bob gets the message", from(alice, "message"))
	if e.Body != "hello bob <&>" || e.ID != "py-1" || e.ChatState != "active" || !e.ReceiptRequest {
		t.Fatalf("%smessage: bob got %v, want body \"hello bob <&>\", id py-1, active, receipt request", sc, e)
	}
	step("receipt", bob.SendReceipt(ctx, e.From, e.ID))
	e = Expect(t, ctx, alice, sc+"receipt: alice gets the receipt", from(bob, "message"))
	if e.ReceiptFor != "py-1" {
		t.Fatalf("%sreceipt: alice got %v, want a receipt for py-1", sc, e)
	}
	id, err = bob.SendMessage(ctx, alice.JID(), "hi alice", MessageOptions{})
	step("reply", err)
	if id == "" {
		t.Fatalf("%sreply: SendMessage returned no generated id", sc)
	}
	e = Expect(t, ctx, alice, sc+"reply: alice gets the reply", from(bob, "message"))
	if e.Body != "hi alice" || e.ID != id {
		t.Fatalf("%sreply: alice got %v, want body \"hi alice\" id %q", sc, e, id)
	}

	// A stanza error: both servers answer a chat message to an account
	// they do not have with service-unavailable (RFC 6121 §8.5.2).
	nobody := "nobody@" + peer.Domain
	id, err = alice.SendMessage(ctx, nobody, "anyone?", MessageOptions{})
	step("error", err)
	e = Expect(t, ctx, alice, sc+"error: alice gets an error", func(e Event) bool {
		return e.Kind == "error" && e.ID == id
	})
	if Bare(e.From) != nobody || e.ErrorCondition != "service-unavailable" || e.ErrorType != "cancel" {
		t.Fatalf("%serror: alice got %v, want a cancel/service-unavailable error from %s", sc, e, nobody)
	}

	// bob logs out: alice sees him unavailable.
	bob.Close()
	Expect(t, ctx, alice, sc+"offline: alice sees bob unavailable", func(e Event) bool {
		return from(bob, "presence")(e) && e.Unavailable
	})
	// Next hands out what arrived before the end, then fails.
	for i := 0; ; i++ {
		if _, err := bob.Next(ctx); err != nil {
			break
		}
		if i == 100 {
			t.Fatalf("%soffline: Next on a closed client still returns events", sc)
		}
	}
	if _, err := bob.SendMessage(ctx, alice.JID(), "after close", MessageOptions{}); err == nil {
		t.Fatalf("%soffline: SendMessage on a closed client returned no error", sc)
	}
	if n := aliceP.Dropped() + bobP.Dropped(); n != 0 {
		t.Fatalf("%s: %d stanzas dropped", sc, n)
	}
}

// TestInteropPyClientBadCA shows that the Python client verifies the
// server's certificate: trusting another CA, it never logs in.
func TestInteropPyClientBadCA(t *testing.T) {
	requireRoot(t, "prosody")
	requirePython(t)
	pki := NewPKI(t)
	peer := StartProsody(t, pki, External)
	peer.Register(t, password, "alice")
	other := &PKI{CA: pki.Other}
	ft := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		StartPyClient(ft, peer.C2SAddr(), WriteCAFile(t, other), "alice@"+peer.Domain, password)
	}()
	select {
	case <-done:
	case <-time.After(2 * pyReadyTimeout):
		t.Fatalf("pyclient/prosody/bad CA: StartPyClient did not return")
	}
	if !ft.failed {
		t.Fatalf("pyclient/prosody/bad CA: the client logged in trusting the wrong CA")
	}
	t.Logf("pyclient/prosody/bad CA: refused as expected: %.300s", ft.msg)
}

// fakeT records a Fatal instead of failing the test, so that a test can
// check that a helper refuses something; everything else goes to TB.
type fakeT struct {
	testing.TB
	failed bool
	msg    string
}

// Fatalf records the message and ends the calling goroutine, as
// testing.T's does.
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// Fatal is Fatalf with Sprint.
func (f *fakeT) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }
