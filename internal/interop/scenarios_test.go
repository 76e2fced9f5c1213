//go:build interop

package interop

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppfed/xmppfed/federation/federationtest"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
	"github.com/xmppfed/xmppfed/translate"
)

// The clients a scenario can use on a peer.
const (
	clientMellium = "mellium" // MelliumUser, mellium.im/xmpp (Go)
	clientSlixmpp = "slixmpp" // PyClient, Debian's python3-slixmpp
	clientNone    = "none"    // the step is the host's alone
)

// stepTimeout bounds each wait of a scenario step.
const stepTimeout = 30 * time.Second

// TestInteropScenariosProsody runs the scenarios of issue 7 between real
// users on Prosody and the users of a host behind our federation.Server.
func TestInteropScenariosProsody(t *testing.T) {
	requireRoot(t, "prosody")
	// The mellium client drives the long conversation, slixmpp the
	// error cases; TestInteropScenariosEjabberd swaps them.
	runScenarios(t, StartProsody, clientMellium, clientSlixmpp)
}

// TestInteropScenariosEjabberd is TestInteropScenariosProsody with
// ejabberd.
func TestInteropScenariosEjabberd(t *testing.T) {
	requireRoot(t, "ejabberdctl")
	runScenarios(t, StartEjabberd, clientSlixmpp, clientMellium)
}

// world is one peer's scenario state.
type world struct {
	pki  *PKI
	peer *Peer
	fed  *Fed
	// mainKind is the client of the conversation (subscription,
	// presence, messages, restart, auth paths); otherKind that of the
	// error cases.
	mainKind, otherKind string
	main                UserClient // alice, logged in for the first scenarios
}

// login logs local@peer in with the client kind, for the life of t.
func (w *world) login(t testing.TB, kind, local string) UserClient {
	t.Helper()
	user := local + "@" + w.peer.Domain
	if kind == clientSlixmpp {
		return StartPyClient(t, w.peer.C2SAddr(), w.peer.CAFile, user, password)
	}
	return LoginUser(t, w.peer.C2SAddr(), w.pki.ClientRoots(), user, password)
}

// diag is everything useful when a step fails.
func (w *world) diag() string {
	return fmt.Sprintf("%s log (end):\n%s\n%s", w.peer.Kind, w.peer.Log(), w.fed.Diag())
}

// run runs one leaf named scenario/peer/direction and logs its result
// and client in one line, for the closing table.
func (w *world) run(t *testing.T, scenario, direction, client string, f func(t *testing.T)) {
	name := scenario + "/" + w.peer.Kind + "/" + direction
	ok := t.Run(name, func(t *testing.T) {
		t.Helper()
		defer func() {
			if t.Failed() {
				t.Logf("%s", w.diag())
			}
		}()
		f(t)
	})
	res := "PASS"
	if !ok {
		res = "FAIL"
	}
	t.Logf("RESULT %-45s client=%-8s %s", name, client, res)
}

func runScenarios(t *testing.T, start func(testing.TB, *PKI, Mode) *Peer, mainKind, otherKind string) {
	w := &world{pki: NewPKI(t), mainKind: mainKind, otherKind: otherKind}
	StartDNS(t, Hosts())
	w.peer = start(t, w.pki, External)
	w.peer.Register(t, password, "alice", "bob")
	// PublicUnverified: the host approves subscriptions itself and
	// messages need that approval (REFERENCE §4.3).
	w.fed = StartFed(t, w.pki, FedConfig{Peer: w.peer.Domain, Type: policy.PublicUnverified, Settings: SettingsFor(External)})
	w.main = w.login(t, mainKind, "alice")

	w.subscription(t)
	w.presence(t)
	w.messages(t)
	w.authExternal(t)
	w.errorReplies(t)
	w.restart(t)
	w.notPartner(t)
	w.authDialback(t)
	w.authRefused(t)
}

// ann and alice are the two ends of the conversation.
func (w *world) ann() jid.JID   { return HostJID(HostUser) }
func (w *world) alice() jid.JID { return jid.MustParse("alice@" + w.peer.Domain) }

// stepCtx is a context bounded by stepTimeout, cancelled when t ends.
func stepCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	t.Cleanup(cancel)
	return ctx
}

// send sends v through our server, failing step if Send refuses it.
func (w *world) send(t testing.TB, ctx context.Context, step string, v translate.Stanza) {
	t.Helper()
	if err := w.fed.Server.Send(ctx, v); err != nil {
		t.Fatalf("%s: federation Send %T: %v", step, v, err)
	}
}

// expectHost reads from next until match, failing step with what came
// instead.
func expectHost[V any](t testing.TB, ctx context.Context, step string, next func(context.Context) (V, error), match func(V) bool) V {
	t.Helper()
	var seen []string
	for {
		v, err := next(ctx)
		if err != nil {
			t.Fatalf("%s: the host got nothing matching (%v); it got instead: [%s]", step, err, strings.Join(seen, "; "))
		}
		if match(v) {
			return v
		}
		seen = append(seen, fmt.Sprintf("%+v", v))
	}
}

// subscription is scenario 1's subscription half: the remote user asks,
// the host user approves, and the host user asks back.
func (w *world) subscription(t *testing.T) {
	w.run(t, "subscription", "remote-to-host", w.mainKind, func(t *testing.T) {
		ctx := stepCtx(t)
		if err := w.main.Subscribe(ctx, w.ann().String()); err != nil {
			t.Fatalf("remote subscribes: %v", err)
		}
		s := expectHost(t, ctx, "host gets the subscribe request", w.fed.Backend.NextSubscription, func(s *translate.Subscription) bool {
			return s.From.Equal(w.alice()) && s.To.Equal(w.ann())
		})
		if s.Action != translate.Subscribe || s.AutoApproved {
			t.Fatalf("host gets the subscribe request: %+v, want Subscribe not auto-approved (PublicUnverified)", s)
		}
		w.send(t, ctx, "host approves", &translate.Subscription{From: w.ann(), To: w.alice(), Action: translate.Subscribed})
		Expect(t, ctx, w.main, "remote gets subscribed", func(e Event) bool {
			return e.Kind == "subscribed" && Bare(e.From) == w.ann().String()
		})
		// Approval makes the host user's presence flow (RFC 6121 §3.1.5).
		Expect(t, ctx, w.main, "remote sees the host user available", func(e Event) bool {
			return e.Kind == "presence" && Bare(e.From) == w.ann().String() && !e.Unavailable && e.Show == ""
		})
	})
	w.run(t, "subscription", "host-to-remote", w.mainKind, func(t *testing.T) {
		ctx := stepCtx(t)
		w.send(t, ctx, "host subscribes", &translate.Subscription{From: w.ann(), To: w.alice(), Action: translate.Subscribe})
		Expect(t, ctx, w.main, "remote gets the subscribe request", func(e Event) bool {
			return e.Kind == "subscribe" && Bare(e.From) == w.ann().String()
		})
		if err := w.main.Approve(ctx, w.ann().String()); err != nil {
			t.Fatalf("remote approves: %v", err)
		}
		expectHost(t, ctx, "host gets subscribed", w.fed.Backend.NextSubscription, func(s *translate.Subscription) bool {
			return s.From.Equal(w.alice()) && s.To.Equal(w.ann()) && s.Action == translate.Subscribed
		})
		expectHost(t, ctx, "host sees the remote user available", w.fed.Backend.NextPresence, func(p *translate.Presence) bool {
			return p.From.Equal(w.alice()) && p.Availability == translate.Available
		})
		st, err := w.fed.Backend.State(ctx, w.ann(), w.alice())
		if err != nil || st != translate.Both {
			t.Fatalf("host roster state of %s/%s: %v (%v), want Both", w.ann(), w.alice(), st, err)
		}
	})
}

// presence is scenario 1's presence half: each state of REFERENCE §4.5
// both ways.
func (w *world) presence(t *testing.T) {
	w.run(t, "presence", "host-to-remote", w.mainKind, func(t *testing.T) {
		ctx := stepCtx(t)
		for _, c := range []struct {
			a           translate.Availability
			show        string
			unavailable bool
		}{
			{translate.Away, "xa", false},
			{translate.DoNotDisturb, "dnd", false},
			{translate.Busy, "dnd", false},
			{translate.Offline, "", true},
			{translate.Available, "", false},
		} {
			step := fmt.Sprintf("host user goes %v, remote sees show=%q unavailable=%v", c.a, c.show, c.unavailable)
			w.fed.Backend.SetPresence(w.ann(), translate.Presence{Availability: c.a})
			w.send(t, ctx, step, &translate.Presence{From: w.ann(), Availability: c.a})
			Expect(t, ctx, w.main, step, func(e Event) bool {
				return e.Kind == "presence" && Bare(e.From) == w.ann().String() && e.Show == c.show && e.Unavailable == c.unavailable
			})
		}
	})
	w.run(t, "presence", "remote-to-host", w.mainKind, func(t *testing.T) {
		ctx := stepCtx(t)
		for _, c := range []struct {
			p Presence
			a translate.Availability
		}{
			{Presence{Show: "away"}, translate.Away},
			{Presence{Show: "dnd"}, translate.DoNotDisturb},
			{Presence{Show: "xa"}, translate.Away},
			{Presence{Unavailable: true}, translate.Offline},
			{Presence{}, translate.Available},
		} {
			step := fmt.Sprintf("remote sends show=%q unavailable=%v, host sees %v", c.p.Show, c.p.Unavailable, c.a)
			if err := w.main.SendPresence(ctx, c.p); err != nil {
				t.Fatalf("%s: %v", step, err)
			}
			expectHost(t, ctx, step, w.fed.Backend.NextPresence, func(p *translate.Presence) bool {
				return p.From.Equal(w.alice()) && p.Availability == c.a
			})
		}
	})
}

// messages is scenario 2: chat states, bodies and receipts both ways.
func (w *world) messages(t *testing.T) {
	w.run(t, "messages", "remote-to-host", w.mainKind, func(t *testing.T) {
		ctx := stepCtx(t)
		if err := w.main.SendChatState(ctx, w.ann().String(), "composing"); err != nil {
			t.Fatalf("remote sends composing: %v", err)
		}
		expectHost(t, ctx, "host gets composing", w.fed.Backend.NextMessage, func(m *translate.Message) bool {
			return m.From.Bare().Equal(w.alice()) && m.ChatState == translate.Composing && m.Body == ""
		})
		body := "hello ann from " + w.peer.Kind
		id, err := w.main.SendMessage(ctx, w.ann().String(), body, MessageOptions{ChatState: "active", RequestReceipt: true})
		if err != nil {
			t.Fatalf("remote sends the body: %v", err)
		}
		m := expectHost(t, ctx, "host gets the body", w.fed.Backend.NextMessage, func(m *translate.Message) bool {
			return m.Body == body
		})
		if !m.From.Bare().Equal(w.alice()) || !m.To.Bare().Equal(w.ann()) || m.ID != id || m.ChatState != translate.Active || !m.RequestReceipt {
			t.Fatalf("host gets the body: %+v, want from %s to %s id %q, active, receipt requested", m, w.alice(), w.ann(), id)
		}
		w.send(t, ctx, "host sends the receipt", &translate.Message{From: w.ann(), To: m.From, ReceiptFor: m.ID})
		Expect(t, ctx, w.main, "remote gets the receipt", func(e Event) bool {
			return e.Kind == "message" && Bare(e.From) == w.ann().String() && e.ReceiptFor == id
		})
	})
	w.run(t, "messages", "host-to-remote", w.mainKind, func(t *testing.T) {
		ctx := stepCtx(t)
		w.send(t, ctx, "host sends composing", &translate.Message{From: w.ann(), To: w.alice(), ChatState: translate.Composing})
		Expect(t, ctx, w.main, "remote gets composing", func(e Event) bool {
			return e.Kind == "message" && Bare(e.From) == w.ann().String() && e.ChatState == "composing" && e.Body == ""
		})
		body := "hello alice from " + OurDomain
		w.send(t, ctx, "host sends the body", &translate.Message{From: w.ann(), To: w.alice(), ID: "host-1",
			Body: body, ChatState: translate.Active, RequestReceipt: true})
		e := Expect(t, ctx, w.main, "remote gets the body", func(e Event) bool {
			return e.Kind == "message" && e.Body == body
		})
		if Bare(e.From) != w.ann().String() || e.ID != "host-1" || e.ChatState != "active" || !e.ReceiptRequest {
			t.Fatalf("remote gets the body: %v, want from %s id host-1, active, receipt requested", e, w.ann())
		}
		if err := w.main.SendReceipt(ctx, e.From, e.ID); err != nil {
			t.Fatalf("remote sends the receipt: %v", err)
		}
		expectHost(t, ctx, "host gets the receipt", w.fed.Backend.NextMessage, func(m *translate.Message) bool {
			return m.From.Bare().Equal(w.alice()) && m.ReceiptFor == "host-1"
		})
	})
}

// checkStreams asserts from Stats that both directions with the peer are
// up, over TLS, authenticated by want.
func (w *world) checkStreams(t testing.TB, step string, want s2s.AuthMethod) {
	t.Helper()
	var inOK, outOK bool
	for _, s := range w.fed.Server.Stats().Streams {
		t.Logf("stream %v %s<->%s %s auth=%v identity=%q bidi=%v", s.Direction, s.Local, s.Remote, s.TLSVersion, s.Auth, s.Identity, s.Bidi)
		if s.Remote != w.peer.Domain {
			continue
		}
		if s.Auth != want || s.TLSVersion == "" {
			t.Fatalf("%s: %v stream with %s: auth %v, TLS %q; want %v over TLS", step, s.Direction, s.Remote, s.Auth, s.TLSVersion, want)
		}
		inOK = inOK || slices.Contains(s.RecvPairs, w.peer.Domain+"->"+OurDomain)
		outOK = outOK || slices.Contains(s.SendPairs, OurDomain+"->"+w.peer.Domain)
	}
	if !inOK || !outOK {
		t.Fatalf("%s: Stats: inbound %s->%s established: %v, outbound %s->%s established: %v",
			step, w.peer.Domain, OurDomain, inOK, OurDomain, w.peer.Domain, outOK)
	}
	if err := w.peer.CheckAuthLog(OurDomain); err != nil {
		t.Fatalf("%s: %v", step, err)
	}
}

// authExternal is scenario 6's first path: the streams the conversation
// used were authenticated with SASL EXTERNAL (XEP-0178) both ways.
func (w *world) authExternal(t *testing.T) {
	w.run(t, "auth-sasl-external", "both", w.mainKind, func(t *testing.T) {
		w.checkStreams(t, "streams authenticated with SASL EXTERNAL", s2s.AuthSASLExternal)
	})
}

// errorReplies is scenario 3: messages to a host user who does not exist, or
// may not use XMPP, come back as service-unavailable (RFC 6121 §8.5.2.1);
// and a host message to a remote user who does not exist is bounced.
func (w *world) errorReplies(t *testing.T) {
	for _, c := range []struct{ direction, to string }{
		{"remote-to-host-unknown-user", "nobody@" + OurDomain},
		{"remote-to-host-no-xmpp-access", NoAccessUser + "@" + OurDomain},
	} {
		w.run(t, "errors", c.direction, w.otherKind, func(t *testing.T) {
			ctx := stepCtx(t)
			bob := w.login(t, w.otherKind, "bob")
			before := len(w.fed.Backend.Messages())
			id, err := bob.SendMessage(ctx, c.to, "are you there?", MessageOptions{})
			if err != nil {
				t.Fatalf("remote sends to %s: %v", c.to, err)
			}
			e := Expect(t, ctx, bob, "remote gets the error for "+c.to, func(e Event) bool {
				return e.Kind == "error" && e.ID == id
			})
			if e.ErrorCondition != "service-unavailable" || e.ErrorType != "cancel" || Bare(e.From) != c.to {
				t.Fatalf("remote gets the error for %s: %v, want cancel/service-unavailable from %s", c.to, e, c.to)
			}
			if n := len(w.fed.Backend.Messages()); n != before {
				t.Fatalf("the host got %d messages for %s, want none", n-before, c.to)
			}
		})
	}
	w.run(t, "errors", "host-to-remote-unknown-user", clientNone, func(t *testing.T) {
		ctx := stepCtx(t)
		ghost := jid.MustParse("ghost@" + w.peer.Domain)
		w.send(t, ctx, "host sends to "+ghost.String(), &translate.Message{From: w.ann(), To: ghost, ID: "ghost-1", Body: "anyone?"})
		b := expectHost(t, ctx, "host gets the bounce", w.fed.Backend.NextBounce, func(b federationtest.Bounced) bool {
			m, ok := b.Value.(*translate.Message)
			return ok && m.To.Bare().Equal(ghost)
		})
		t.Logf("%s answers a message to an unknown user with %s/%s", w.peer.Kind, b.Reason.Type, b.Reason.Condition)
		if c := string(b.Reason.Condition); c != "service-unavailable" && c != "item-not-found" {
			t.Fatalf("host gets the bounce: condition %q, want service-unavailable or item-not-found", c)
		}
	})
}

// restart is scenario 5: the peer stops in the middle of the
// conversation and starts again with the same configuration and data.
// What the host sent meanwhile is delivered or bounced (none lost), and
// messages flow both ways afterwards.
func (w *world) restart(t *testing.T) {
	w.run(t, "restart", "both", w.mainKind, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*stepTimeout)
		defer cancel()
		w.main.Close()
		w.peer.Stop()
		const n = 3
		sent := map[string]bool{}
		var sendErrs []string
		for i := range n {
			id := fmt.Sprintf("outage-%d", i)
			err := w.fed.Server.Send(ctx, &translate.Message{From: w.ann(), To: w.alice(), ID: id, Body: id})
			if err != nil {
				// Refused at once: reported to the host, not lost.
				sendErrs = append(sendErrs, fmt.Sprintf("%s: %v", id, err))
				continue
			}
			sent[id] = true
		}
		w.peer.Start(t)
		alice := w.login(t, w.mainKind, "alice")

		// Account for every message sent during the outage.
		delivered, bounced := map[string]bool{}, map[string]string{}
		deadline := time.Now().Add(2 * stepTimeout)
		for len(delivered)+len(bounced) < len(sent) && time.Now().Before(deadline) {
			rctx, rcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			if e, err := alice.Next(rctx); err == nil && e.Kind == "message" && sent[e.Body] {
				delivered[e.Body] = true
			}
			rcancel()
			for _, b := range w.fed.Backend.Bounces() {
				if m, ok := b.Value.(*translate.Message); ok && sent[m.ID] {
					bounced[m.ID] = fmt.Sprintf("%s/%s", b.Reason.Type, b.Reason.Condition)
				}
			}
		}
		lost := 0
		for id := range sent {
			if !delivered[id] && bounced[id] == "" {
				lost++
			}
		}
		t.Logf("during the outage: %d sent, %d refused by Send %q, %d delivered after the restart, bounced %v, lost %d",
			n, len(sendErrs), sendErrs, len(delivered), bounced, lost)
		if lost != 0 {
			t.Fatalf("outage accounting: %d of %d messages neither delivered nor bounced within %v", lost, len(sent), 2*stepTimeout)
		}

		// Presence flows again: the peer probes the host user when alice
		// logs in, and broadcasts her presence to him.
		Expect(t, ctx, alice, "remote sees the host user after the restart", func(e Event) bool {
			return e.Kind == "presence" && Bare(e.From) == w.ann().String() && !e.Unavailable
		})
		expectHost(t, ctx, "host sees the remote user available after the restart", w.fed.Backend.NextPresence, func(p *translate.Presence) bool {
			return p.From.Equal(w.alice()) && p.Availability == translate.Available
		})

		// The conversation goes on both ways.
		if _, err := alice.SendMessage(ctx, w.ann().String(), "after-restart-in", MessageOptions{}); err != nil {
			t.Fatalf("remote sends after the restart: %v", err)
		}
		expectHost(t, ctx, "host gets the remote's message after the restart", w.fed.Backend.NextMessage, func(m *translate.Message) bool {
			return m.Body == "after-restart-in"
		})
		w.send(t, ctx, "host sends after the restart", &translate.Message{From: w.ann(), To: w.alice(), ID: "after-1", Body: "after-restart-out"})
		Expect(t, ctx, alice, "remote gets the host's message after the restart", func(e Event) bool {
			return e.Kind == "message" && e.Body == "after-restart-out"
		})
	})
}

// expectNothing fails t if the host got any message, presence or
// subscription (the peer's users' login presences included).
func (w *world) expectNothing(t testing.TB, how string) {
	t.Helper()
	b := w.fed.Backend
	if m, p, s := b.Messages(), b.Presences(), b.Subscriptions(); len(m)+len(p)+len(s) != 0 {
		t.Fatalf("the host got %d messages, %d presences, %d subscriptions %s: %+v %+v %+v", len(m), len(p), len(s), how, m, p, s)
	}
}

// restartFed replaces our server with one for cfg (a fresh Backend).
func (w *world) restartFed(t *testing.T, cfg FedConfig) {
	w.fed.Stop(t)
	w.fed = StartFed(t, w.pki, cfg)
}

// notPartner is scenario 4: with a policy that does not list the peer,
// its users cannot reach the host's and the host cannot send to them.
func (w *world) notPartner(t *testing.T) {
	w.restartFed(t, FedConfig{})
	w.run(t, "not-partner", "remote-to-host", w.mainKind, func(t *testing.T) {
		ctx := stepCtx(t)
		alice := w.login(t, w.mainKind, "alice")
		id, err := alice.SendMessage(ctx, w.ann().String(), "let me in", MessageOptions{})
		if err != nil {
			t.Fatalf("remote sends: %v", err)
		}
		e := Expect(t, ctx, alice, "remote gets an error for its message", func(e Event) bool {
			return e.Kind == "error" && e.ID == id
		})
		t.Logf("%s reports the refused s2s to its user as %s/%s", w.peer.Kind, e.ErrorType, e.ErrorCondition)
		w.expectNothing(t, "from a peer that is not a partner")
	})
	w.run(t, "not-partner", "host-to-remote", clientNone, func(t *testing.T) {
		ctx := stepCtx(t)
		err := w.fed.Server.Send(ctx, &translate.Message{From: w.ann(), To: w.alice(), Body: "not allowed"})
		var d *policy.Denial
		if !errors.As(err, &d) {
			t.Fatalf("host sends to a non-partner: Send returned %v, want a *policy.Denial", err)
		}
		t.Logf("Send refused: %v", d)
	})
}

// authDialback is scenario 6's second path: the peer does not accept our
// certificate (mode Dialback), so dialback (XEP-0220) over TLS
// authenticates the streams, and the conversation works.
func (w *world) authDialback(t *testing.T) {
	w.fed.Stop(t)
	w.peer.Restart(t, Dialback)
	// Federated: messages without prior approval (the Backend is new).
	w.fed = StartFed(t, w.pki, FedConfig{Peer: w.peer.Domain, Type: policy.Federated, Settings: SettingsFor(Dialback)})
	w.run(t, "auth-dialback", "both", w.mainKind, func(t *testing.T) {
		ctx := stepCtx(t)
		alice := w.login(t, w.mainKind, "alice")
		if _, err := alice.SendMessage(ctx, w.ann().String(), "over dialback", MessageOptions{}); err != nil {
			t.Fatalf("remote sends: %v", err)
		}
		expectHost(t, ctx, "host gets the message over dialback", w.fed.Backend.NextMessage, func(m *translate.Message) bool {
			return m.Body == "over dialback"
		})
		w.send(t, ctx, "host sends over dialback", &translate.Message{From: w.ann(), To: w.alice(), ID: "db-1", Body: "dialback back"})
		Expect(t, ctx, alice, "remote gets the host's message over dialback", func(e Event) bool {
			return e.Kind == "message" && e.Body == "dialback back"
		})
		w.checkStreams(t, "streams authenticated with dialback", s2s.AuthDialback)
	})
}

// authRefused is scenario 6's refusal: our policy requires SASL and no
// dialback, the peer (mode Untrusted: dialback only, and a certificate we
// do not trust, so it cannot do SASL EXTERNAL with us either way): the
// host's message is bounced, the remote's never reaches the host.
func (w *world) authRefused(t *testing.T) {
	w.fed.Stop(t)
	w.peer.Restart(t, Untrusted)
	w.fed = StartFed(t, w.pki, FedConfig{Peer: w.peer.Domain, Type: policy.Federated,
		Settings: policy.Settings{TLS: policy.Required, SASL: policy.Required, DisableDialback: true}})
	w.run(t, "auth-sasl-required", "host-to-remote", clientNone, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*stepTimeout)
		defer cancel()
		w.send(t, ctx, "host sends", &translate.Message{From: w.ann(), To: w.alice(), ID: "strict-1", Body: "needs sasl"})
		b := expectHost(t, ctx, "host gets the bounce", w.fed.Backend.NextBounce, func(b federationtest.Bounced) bool {
			m, ok := b.Value.(*translate.Message)
			return ok && m.ID == "strict-1"
		})
		t.Logf("our server bounces with %s/%s", b.Reason.Type, b.Reason.Condition)
	})
	w.run(t, "auth-sasl-required", "remote-to-host", w.mainKind, func(t *testing.T) {
		ctx := stepCtx(t)
		alice := w.login(t, w.mainKind, "alice")
		id, err := alice.SendMessage(ctx, w.ann().String(), "no sasl here", MessageOptions{})
		if err != nil {
			t.Fatalf("remote sends: %v", err)
		}
		// The peer reports the failure to its user, or keeps trying
		// until its own timeout: either way nothing reaches the host.
		wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
		defer wcancel()
		for {
			e, err := alice.Next(wctx)
			if err != nil {
				t.Logf("%s reported nothing to its user within 15 s", w.peer.Kind)
				break
			}
			if e.Kind == "error" && e.ID == id {
				t.Logf("%s reports the failed s2s to its user as %s/%s", w.peer.Kind, e.ErrorType, e.ErrorCondition)
				break
			}
		}
		w.expectNothing(t, "over a stream our policy forbids")
		for _, s := range w.fed.Server.Stats().Streams {
			if s.Remote == w.peer.Domain && slices.Contains(s.RecvPairs, w.peer.Domain+"->"+OurDomain) {
				t.Fatalf("an inbound stream from %s is established (auth %v) though SASL is required and dialback off", s.Remote, s.Auth)
			}
		}
	})
}

// TestInStanzaEvent checks, without any server, how the MelliumUser turns
// received stanzas into Events.
func TestInStanzaEvent(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want Event
	}{
		{`<message xmlns='jabber:client' from='a@x/r' id='1' type='chat'><body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/></message>`,
			Event{Kind: "message", From: "a@x/r", ID: "1", Body: "hi", ChatState: "active", ReceiptRequest: true}},
		{`<message xmlns='jabber:client' from='a@x' id='2'><received xmlns='urn:xmpp:receipts' id='1'/></message>`,
			Event{Kind: "message", From: "a@x", ID: "2", ReceiptFor: "1"}},
		{`<message xmlns='jabber:client' from='a@x' id='3' type='error'><body>b</body><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no</text></error></message>`,
			Event{Kind: "error", From: "a@x", ID: "3", Body: "b", ErrorType: "cancel", ErrorCondition: "service-unavailable"}},
		{`<presence xmlns='jabber:client' from='a@x/r'><show>dnd</show><status>Busy</status></presence>`,
			Event{Kind: "presence", From: "a@x/r", Show: "dnd", Status: "Busy"}},
		{`<presence xmlns='jabber:client' from='a@x/r' type='unavailable'/>`,
			Event{Kind: "presence", From: "a@x/r", Unavailable: true}},
		{`<presence xmlns='jabber:client' from='a@x' type='subscribed'/>`,
			Event{Kind: "subscribed", From: "a@x"}},
	} {
		var s inStanza
		if err := xml.Unmarshal([]byte(c.raw), &s); err != nil {
			t.Fatalf("%s: %v", c.raw, err)
		}
		if got := s.event(); got != c.want {
			t.Errorf("%s:\n got %v\nwant %v", c.raw, got, c.want)
		}
	}
}
