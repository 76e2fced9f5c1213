package federationtest_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/federation/federationtest"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
	"github.com/xmppfed/xmppfed/translate"
)

// hang bounds every wait of these tests: a guard against a hang, never a
// timing assertion.
const hang = 20 * time.Second

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), hang)
	t.Cleanup(cancel)
	return ctx
}

func isMessage(body string) func(translate.Stanza) bool {
	return func(v translate.Stanza) bool {
		m, ok := v.(*translate.Message)
		return ok && m.Body == body
	}
}

func isSubscription(a translate.SubscriptionAction) func(translate.Stanza) bool {
	return func(v translate.Stanza) bool {
		s, ok := v.(*translate.Subscription)
		return ok && s.Action == a
	}
}

// rawStanza parses a stanza built by the test.
func rawStanza(t *testing.T, format string, args ...any) *s2s.Stanza {
	t.Helper()
	st, err := s2s.ParseStanza(fmt.Appendf(nil, format, args...))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestEnvListenAndCertificates(t *testing.T) {
	env := federationtest.NewEnv(t)
	ctx := waitCtx(t)
	l := env.Listen("host.example")
	targets, err := env.Resolver().LookupServer(ctx, "host.example")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	found := false
	for _, tg := range targets {
		if tg.Port == uint16(port) {
			found = true
		}
	}
	if !found {
		t.Errorf("LookupServer(host.example) = %+v, no target on port %d", targets, port)
	}
	cfg := env.TLSConfig("host.example", "other.example")
	chain := []*x509.Certificate{cfg.Certificates[0].Leaf}
	for _, d := range []string{"host.example", "other.example"} {
		if _, err := certs.Verify(d, chain, env.Verify()); err != nil {
			t.Errorf("the certificate does not verify for %s: %v", d, err)
		}
	}
	if _, err := certs.Verify("third.example", chain, env.Verify()); err == nil {
		t.Errorf("the certificate verifies for third.example")
	}
}

func TestTwoDomainsConverse(t *testing.T) {
	env := federationtest.NewEnv(t)
	a, b := env.NewDomain("a.example"), env.NewDomain("b.example")
	alice, bob := a.User("alice"), b.User("bob")
	ctx := waitCtx(t)

	if err := alice.SendMessage(ctx, "bob@b.example", "hello bob"); err != nil {
		t.Fatal(err)
	}
	m := bob.Expect(t, ctx, isMessage("hello bob")).(*translate.Message)
	if !m.From.Equal(alice.JID()) || !m.To.Equal(jid.MustParse("bob@b.example")) || m.Type != translate.Chat {
		t.Errorf("bob got %+v", m)
	}

	if err := bob.SendPresence(ctx, alice.JID().String(), translate.Away, "at lunch"); err != nil {
		t.Fatal(err)
	}
	p := alice.Expect(t, ctx, func(v translate.Stanza) bool { _, ok := v.(*translate.Presence); return ok }).(*translate.Presence)
	if p.Availability != translate.Away || p.Note != "at lunch" || !p.From.Equal(bob.JID()) {
		t.Errorf("alice got presence %+v", p)
	}

	if err := alice.Subscribe(ctx, "bob@b.example"); err != nil {
		t.Fatal(err)
	}
	sub := bob.Expect(t, ctx, isSubscription(translate.Subscribe)).(*translate.Subscription)
	// RFC 6121 §3.1.2: the request comes from the bare JID.
	if !sub.From.Equal(alice.JID().Bare()) {
		t.Errorf("subscribe from %s, want %s", sub.From, alice.JID().Bare())
	}
	if err := bob.Approve(ctx, "alice@a.example"); err != nil {
		t.Fatal(err)
	}
	alice.Expect(t, ctx, isSubscription(translate.Subscribed))
	if err := bob.Deny(ctx, "alice@a.example"); err != nil {
		t.Fatal(err)
	}
	alice.Expect(t, ctx, isSubscription(translate.Unsubscribed))
	if err := alice.Unsubscribe(ctx, "bob@b.example"); err != nil {
		t.Fatal(err)
	}
	bob.Expect(t, ctx, isSubscription(translate.Unsubscribe))

	// A chat state alone, and a receipt, through Send.
	if err := alice.Send(ctx, &translate.Message{To: bob.JID().Bare(), ChatState: translate.Composing}); err != nil {
		t.Fatal(err)
	}
	cs := bob.Expect(t, ctx, func(v translate.Stanza) bool { m, ok := v.(*translate.Message); return ok && m.ChatState != 0 }).(*translate.Message)
	if cs.ChatState != translate.Composing || cs.Body != "" {
		t.Errorf("chat state message %+v", cs)
	}
	if err := bob.Send(ctx, &translate.Message{To: alice.JID(), ReceiptFor: m.ID}); err != nil {
		t.Fatal(err)
	}
	rc := alice.Expect(t, ctx, func(v translate.Stanza) bool { m, ok := v.(*translate.Message); return ok && m.ReceiptFor != "" }).(*translate.Message)
	if rc.ReceiptFor != m.ID || m.ID == "" {
		t.Errorf("receipt for %q, want %q", rc.ReceiptFor, m.ID)
	}

	// Everything bob got is in Received and in b's raw log, in order.
	got := bob.Received()
	if len(got) != 4 {
		t.Errorf("bob received %d stanzas, want 4: %+v", len(got), got)
	}
	if raw := b.Raw(); len(raw) != len(got) {
		t.Errorf("b recorded %d raw stanzas, bob %d decoded", len(raw), len(got))
	}
	first, err := b.NextRaw(ctx)
	if err != nil || first.Kind != "message" || !first.From.Equal(alice.JID()) {
		t.Errorf("first raw stanza = %v, %v", first, err)
	}
}

func TestUnknownUserGetsServiceUnavailable(t *testing.T) {
	env := federationtest.NewEnv(t)
	a := env.NewDomain("a.example")
	env.NewDomain("b.example")
	alice := a.User("alice")
	ctx := waitCtx(t)
	if err := alice.SendMessage(ctx, "carol@b.example", "anyone?"); err != nil {
		t.Fatal(err)
	}
	e, err := alice.NextError(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// RFC 6121 §8.5.2.1: no such user.
	if e.Err.Condition != stanza.ServiceUnavailable || e.Local || e.Kind != "message" ||
		!e.From.Equal(jid.MustParse("carol@b.example")) || !e.To.Equal(alice.JID()) {
		t.Errorf("error = %+v", e)
	}
}

func TestRefusedByDecode(t *testing.T) {
	env := federationtest.NewEnv(t)
	a, b := env.NewDomain("a.example"), env.NewDomain("b.example")
	alice := a.User("alice")
	b.User("bob")
	ctx := waitCtx(t)
	for _, tc := range []struct {
		name, format string
		cond         stanza.Condition
	}{
		{"groupchat", `<message from='%s' to='bob@b.example' type='groupchat' id='g1'><body>hi</body></message>`, stanza.ServiceUnavailable},
		{"jingle", `<iq from='%s' to='bob@b.example/x' type='set' id='j1'><jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s1'/></iq>`, stanza.FeatureNotImplemented},
		{"iq to a user", `<iq from='%s' to='bob@b.example/x' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>`, stanza.ServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := a.Server().Send(ctx, rawStanza(t, tc.format, alice.JID())); err != nil {
				t.Fatal(err)
			}
			e, err := alice.NextError(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if e.Err.Condition != tc.cond || e.Local {
				t.Errorf("error = %s (local %v), want %s", e.Err.Condition, e.Local, tc.cond)
			}
		})
	}
}

func TestHeadlineRecordedRawOnly(t *testing.T) {
	env := federationtest.NewEnv(t)
	a, b := env.NewDomain("a.example"), env.NewDomain("b.example")
	alice, bob := a.User("alice"), b.User("bob")
	ctx := waitCtx(t)
	if err := a.Server().Send(ctx, rawStanza(t, `<message from='%s' to='bob@b.example' type='headline' id='h1'><body>news</body></message>`, alice.JID())); err != nil {
		t.Fatal(err)
	}
	// A chat message after it: once it arrived, the headline (same
	// stream, in order) was handled.
	if err := alice.SendMessage(ctx, "bob@b.example", "after"); err != nil {
		t.Fatal(err)
	}
	bob.Expect(t, ctx, isMessage("after"))
	if got := bob.Received(); len(got) != 1 {
		t.Errorf("bob received %+v, want only the chat message", got)
	}
	st, err := b.NextRaw(ctx)
	if err != nil || st.Type != "headline" {
		t.Errorf("first raw stanza = %v, %v; want the headline", st, err)
	}
	if errs := alice.Errors(); len(errs) != 0 {
		t.Errorf("a headline was answered: %+v", errs)
	}
}

func TestPing(t *testing.T) {
	env := federationtest.NewEnv(t)
	a, b := env.NewDomain("a.example"), env.NewDomain("b.example", federationtest.DirectTLS())
	ctx := waitCtx(t)
	if err := a.Ping(ctx, "b.example"); err != nil {
		t.Fatalf("ping b.example: %v", err)
	}
	// s2s answers the ping itself (XEP-0199 §4.2); the result reached a.
	st, err := a.NextRaw(ctx)
	if err != nil || st.Kind != "iq" || st.Type != "result" || !st.From.Equal(jid.MustParse("b.example")) {
		t.Errorf("a got %v, %v; want the ping's result", st, err)
	}
	// The other way, over the stream b opens (or the bidi one).
	if err := b.Ping(ctx, "a.example"); err != nil {
		t.Fatalf("ping a.example: %v", err)
	}
	// Another iq to the domain: service-unavailable (RFC 6120 §8.4),
	// recorded in a's errors since no Ping waits for it.
	if err := a.Server().Send(ctx, rawStanza(t, `<iq from='a.example' to='b.example' type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)); err != nil {
		t.Fatal(err)
	}
	e, err := a.NextError(ctx)
	if err != nil || e.Err.Condition != stanza.ServiceUnavailable || e.ID != "d1" {
		t.Errorf("disco#info to b.example: %+v, %v", e, err)
	}
}

func TestPingNoSuchService(t *testing.T) {
	env := federationtest.NewEnv(t)
	a := env.NewDomain("a.example")
	// RFC 6120 §3.2.1: a "." target says the service is not offered.
	env.DNS().AddSRV("_xmpp-server._tcp", "dead.example", ".", 0, 0, 0)
	env.DNS().AddSRV("_xmpps-server._tcp", "dead.example", ".", 0, 0, 0)
	err := a.Ping(waitCtx(t), "dead.example")
	var se stanza.Error
	if !errors.As(err, &se) || se.Condition != stanza.RemoteServerNotFound {
		t.Errorf("ping dead.example = %v, want remote-server-not-found", err)
	}
	// A user's message there bounces to the user.
	alice := a.User("alice")
	ctx := waitCtx(t)
	if err := alice.SendMessage(ctx, "zed@dead.example", "hello?"); err != nil {
		t.Fatal(err)
	}
	e, err := alice.NextError(ctx)
	if err != nil || !e.Local || e.Err.Condition != stanza.RemoteServerNotFound || !e.From.Equal(jid.MustParse("zed@dead.example")) {
		t.Errorf("bounce = %+v, %v", e, err)
	}
}

func TestPartnersRefuseOthers(t *testing.T) {
	env := federationtest.NewEnv(t)
	a, b := env.NewDomain("a.example"), env.NewDomain("b.example")
	c := env.NewDomain("c.example", federationtest.Partners(policy.Partner{Domain: "a.example"}))
	alice, bob, carol := a.User("alice"), b.User("bob"), c.User("carol")
	ctx := waitCtx(t)

	// A partner federates.
	if err := alice.SendMessage(ctx, "carol@c.example", "partner"); err != nil {
		t.Fatal(err)
	}
	carol.Expect(t, ctx, isMessage("partner"))

	// c refuses to send to b: the Denial, nothing queued.
	err := carol.SendMessage(ctx, "bob@b.example", "not a partner")
	var d *policy.Denial
	if !errors.As(err, &d) || d.StanzaError().Condition != stanza.ServiceUnavailable {
		t.Errorf("carol to bob: %v, want a *policy.Denial", err)
	}
	// b's stream is refused by c: bob's message bounces at b, and never
	// reaches c.
	if err := bob.SendMessage(ctx, "carol@c.example", "let me in"); err != nil {
		t.Fatal(err)
	}
	e, err := bob.NextError(ctx)
	if err != nil || !e.Local || e.Err.Condition == "" {
		t.Errorf("bob's bounce = %+v, %v", e, err)
	}
	for _, st := range c.Raw() {
		if st.From.Domainpart() == "b.example" {
			t.Errorf("c received %s from a refused domain", st.Raw())
		}
	}
}

func TestCloseEndsWaits(t *testing.T) {
	env := federationtest.NewEnv(t)
	a, b := env.NewDomain("a.example"), env.NewDomain("b.example")
	alice, bob := a.User("alice"), b.User("bob")
	ctx := waitCtx(t)
	if err := alice.SendMessage(ctx, "bob@b.example", "before close"); err != nil {
		t.Fatal(err)
	}
	bob.Expect(t, ctx, isMessage("before close"))
	if err := alice.SendMessage(ctx, "bob@b.example", "second"); err != nil {
		t.Fatal(err)
	}
	bob.Expect(t, ctx, isMessage("second"))
	b.Close()
	b.Close() // twice is fine
	if _, err := bob.Next(ctx); !errors.Is(err, federationtest.ErrClosed) {
		t.Errorf("Next after Close = %v, want ErrClosed", err)
	}
	if got := bob.Received(); len(got) != 2 {
		t.Errorf("Received after Close has %d stanzas, want 2", len(got))
	}
	if err := b.Ping(ctx, "a.example"); !errors.Is(err, federationtest.ErrClosed) {
		t.Errorf("Ping after Close = %v, want ErrClosed", err)
	}
	late := b.User("late")
	if _, err := late.Next(ctx); !errors.Is(err, federationtest.ErrClosed) {
		t.Errorf("Next of a user made after Close = %v, want ErrClosed", err)
	}
}

func TestSendErrors(t *testing.T) {
	env := federationtest.NewEnv(t)
	alice := env.NewDomain("a.example").User("alice")
	ctx := waitCtx(t)
	if err := alice.SendMessage(ctx, "not a jid@@", "x"); !errors.Is(err, translate.ErrMalformedAddress) {
		t.Errorf("SendMessage to a malformed address = %v, want ErrMalformedAddress", err)
	}
	var fe *translate.FieldError
	if err := alice.Send(ctx, &translate.Message{Body: "no recipient"}); !errors.As(err, &fe) {
		t.Errorf("Send without To = %v, want a *translate.FieldError", err)
	}
	if err := alice.Send(ctx, nil); err == nil {
		t.Errorf("Send(nil) succeeded")
	}
}

// lockedBuffer is an io.Writer safe for the s2s goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestEditPolicyAndConfigureServer(t *testing.T) {
	env := federationtest.NewEnv(t)
	var debug lockedBuffer
	a := env.NewDomain("a.example", federationtest.ConfigureServer(func(s *s2s.Server) { s.DebugWriter = &debug }))
	b := env.NewDomain("b.example", federationtest.EditPolicy(func(c *policy.Config) {
		c.Gateway.Blocked = []string{"a.example"}
	}))
	alice, bob := a.User("alice"), b.User("bob")
	ctx := waitCtx(t)

	// b blocks a: its stream is refused and alice's message bounces at a.
	if err := alice.SendMessage(ctx, "bob@b.example", "blocked?"); err != nil {
		t.Fatal(err)
	}
	if e, err := alice.NextError(ctx); err != nil || !e.Local {
		t.Errorf("alice's message to a blocking domain: %+v, %v; want a bounce by a's pool", e, err)
	}
	// b refuses to send to a: the policy's Denial names the rule.
	err := bob.SendMessage(ctx, "alice@a.example", "no")
	var d *policy.Denial
	if !errors.As(err, &d) || d.Rule != policy.RuleBlocked {
		t.Errorf("bob to a blocked domain: %v, want a *policy.Denial for rule blocked", err)
	}
	// a's DebugWriter, set by ConfigureServer, saw a's stream.
	if !strings.Contains(debug.String(), "b.example") {
		t.Errorf("the DebugWriter set by ConfigureServer saw nothing of the stream to b.example")
	}
}
