//go:build interop

package interop

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/s2s"
)

// TestInteropProsody federates our s2s.Server with a real Prosody in both
// auth modes, both directions.
func TestInteropProsody(t *testing.T) {
	requireRoot(t, "prosody")
	for _, mode := range []Mode{External, Dialback} {
		t.Run(string(mode), func(t *testing.T) { testPeer(t, StartProsody, mode) })
	}
}

// TestInteropEjabberd federates our s2s.Server with a real ejabberd in both
// auth modes, both directions.
func TestInteropEjabberd(t *testing.T) {
	requireRoot(t, "ejabberdctl")
	for _, mode := range []Mode{External, Dialback} {
		t.Run(string(mode), func(t *testing.T) { testPeer(t, StartEjabberd, mode) })
	}
}

// wantAuth is the method every stream with the peer must have used.
func wantAuth(mode Mode) s2s.AuthMethod {
	if mode == Dialback {
		return s2s.AuthDialback
	}
	return s2s.AuthSASLExternal
}

// testPeer shows, against the peer start starts in mode:
//
//	(a) a real peer user's message to user@xmppfed.test reaches our Handler,
//	    with the addresses the user gave;
//	(b) a message our Server.Send accepts from someone@xmppfed.test reaches
//	    the peer user's c2s session;
//	(c) a stanza error our Handler returns comes back to the peer user as
//	    an error reply (RFC 6120 §8.3);
//	(d) Stats shows an inbound stream carrying peer->xmppfed.test and an
//	    outbound one carrying xmppfed.test->peer, all authenticated with the
//	    method the mode implies, over TLS;
//	(e) the peer's own log shows it authenticated both directions by that
//	    method and not by the other.
func testPeer(t *testing.T, start func(testing.TB, *PKI, Mode) *Peer, mode Mode) {
	pki := NewPKI(t)
	StartDNS(t, Hosts())
	peer := start(t, pki, mode)
	peer.Register(t, password, "alice")
	ours := StartOurs(t, pki, peer.Domain, mode)
	aliceJID := "alice@" + peer.Domain
	alice := Login(t, peer.C2SAddr(), pki.RootCAs(), aliceJID, password)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\n%s log:\n%s\n%s", fmt.Sprintf(format, args...), peer.Kind, peer.Log(), ours.Diag())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// (a) peer -> us.
	inBody := fmt.Sprintf("from-%s-%s", peer.Kind, mode)
	if err := alice.Send(ctx, "user@"+OurDomain, inBody); err != nil {
		fail("send from %s: %v", aliceJID, err)
	}
	st, err := ours.Wait(inBody, 30*time.Second)
	if err != nil {
		fail("%v", err)
	}
	if st.Kind != "message" || st.From.Bare().String() != aliceJID || st.To.String() != "user@"+OurDomain {
		fail("handler got %s from %s to %s, want message from %s to user@%s", st.Kind, st.From, st.To, aliceJID, OurDomain)
	}

	// (b) us -> peer.
	outBody := fmt.Sprintf("to-%s-%s", peer.Kind, mode)
	if err := ours.SendMessage(ctx, "someone@"+OurDomain, aliceJID, outBody); err != nil {
		fail("Send: %v", err)
	}
	m, err := alice.Wait(outBody, 30*time.Second)
	if err != nil {
		fail("%v (bounces: %q)", err, ours.Bounces())
	}
	if got := m.From.String(); got != "someone@"+OurDomain {
		fail("%s got the message from %q, want someone@%s", aliceJID, got, OurDomain)
	}

	// (c) a stanza error our Handler returns reaches the peer user as an
	// RFC 6120 §8.3 error reply: type='error', same id, addresses swapped,
	// original body kept, condition item-not-found.
	errBody := fmt.Sprintf("err-%s-%s", peer.Kind, mode)
	if err := alice.Send(ctx, NoSuchUser+"@"+OurDomain, errBody); err != nil {
		fail("send to %s@%s: %v", NoSuchUser, OurDomain, err)
	}
	em, err := alice.Wait(errBody, 30*time.Second)
	if err != nil {
		fail("error reply: %v", err)
	}
	if em.Type != stanza.ErrorMessage || em.ID != "interop-"+errBody || em.From.String() != NoSuchUser+"@"+OurDomain ||
		em.Err == nil || em.Err.Condition != stanza.ItemNotFound {
		fail("error reply: type %q id %q from %q error %+v; want type error, id interop-%s, from %s@%s, item-not-found",
			em.Type, em.ID, em.From, em.Err, errBody, NoSuchUser, OurDomain)
	}

	// (d) how the streams were authenticated.
	stats := ours.Server.Stats()
	var inOK, outOK bool
	for _, s := range stats.Streams {
		t.Logf("stream %v %s<->%s from %s %s auth=%v identity=%q bidi=%v send=%v recv=%v",
			s.Direction, s.Local, s.Remote, s.RemoteAddr, s.TLSVersion, s.Auth, s.Identity, s.Bidi, s.SendPairs, s.RecvPairs)
		if s.Remote != peer.Domain {
			fail("stream with unexpected remote %q", s.Remote)
		}
		if s.Auth != wantAuth(mode) {
			fail("%v stream with %s authenticated by %v, want %v", s.Direction, s.Remote, s.Auth, wantAuth(mode))
		}
		if s.TLSVersion == "" {
			fail("%v stream with %s without TLS", s.Direction, s.Remote)
		}
		if mode == External && s.Identity == "" {
			fail("%v stream with %s used SASL EXTERNAL but reports no certificate identity", s.Direction, s.Remote)
		}
		inOK = inOK || slices.Contains(s.RecvPairs, peer.Domain+"->"+OurDomain)
		outOK = outOK || slices.Contains(s.SendPairs, OurDomain+"->"+peer.Domain)
	}
	if !inOK || !outOK {
		fail("Stats: inbound pair %s->%s present: %v, outbound pair %s->%s present: %v",
			peer.Domain, OurDomain, inOK, OurDomain, peer.Domain, outOK)
	}
	// (e) the peer agrees: its own log names the same method, both ways.
	if err := peer.CheckAuthLog(OurDomain); err != nil {
		fail("%v", err)
	}
	if b := ours.Bounces(); len(b) > 0 {
		fail("unexpected bounces: %q", b)
	}
}
