package federationtest_test

import (
	"errors"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/federation/federationtest"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/translate"
)

// startServer starts a federation.Server for host.example with backend,
// federating with the partners given, on a listener of env; it is closed
// before env (t.Cleanup runs last-registered first).
func startServer(t *testing.T, env *federationtest.Env, backend *federationtest.Backend, partners ...policy.Partner) *federation.Server {
	t.Helper()
	srv := &federation.Server{
		Domains:   []string{"host.example"},
		TLSConfig: env.TLSConfig("host.example"),
		Verify:    env.Verify(),
		Resolver:  env.Resolver(),
		Policy:    env.Policy(backend, partners...),
		Backend:   backend,
	}
	l := env.Listen("host.example")
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; !errors.Is(err, federation.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return srv
}

// A Domain and a federation.Server with the recording Backend: the
// harness drives a host's wiring end to end.
func TestDomainWithServer(t *testing.T) {
	env := federationtest.NewEnv(t)
	backend := new(federationtest.Backend)
	ann := jid.MustParse("ann@host.example")
	backend.AddUser(ann, policy.User{})
	srv := startServer(t, env, backend, policy.Partner{Domain: "remote.example", Type: policy.Federated})
	remote := env.NewDomain("remote.example")
	rick := remote.User("rick")
	ctx := waitCtx(t)

	// A message from the Domain reaches the Backend; the answer comes back.
	if err := rick.SendMessage(ctx, "ann@host.example", "hi ann"); err != nil {
		t.Fatal(err)
	}
	m, err := backend.NextMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Body != "hi ann" || !m.From.Equal(rick.JID()) || !m.To.Equal(ann) {
		t.Errorf("backend got %+v", m)
	}
	if err := srv.Send(ctx, &translate.Message{From: ann, To: m.From, Body: "hi rick", RequestReceipt: true}); err != nil {
		t.Fatal(err)
	}
	reply := rick.Expect(t, ctx, isMessage("hi rick")).(*translate.Message)
	if !reply.From.Bare().Equal(ann) || !reply.RequestReceipt {
		t.Errorf("rick got %+v", reply)
	}

	// The Server answers pings to its domain (XEP-0199).
	if err := remote.Ping(ctx, "host.example"); err != nil {
		t.Errorf("ping host.example: %v", err)
	}

	// Errors the Backend returns reach the remote sender as stanza errors.
	if err := rick.SendMessage(ctx, "nobody@host.example", "anyone?"); err != nil {
		t.Fatal(err)
	}
	if e, err := rick.NextError(ctx); err != nil || e.Err.Condition != stanza.ServiceUnavailable {
		t.Errorf("to an unknown user: %+v, %v; want service-unavailable", e, err)
	}
	backend.SetOffline(ann, true)
	if err := rick.SendMessage(ctx, "ann@host.example", "are you there?"); err != nil {
		t.Fatal(err)
	}
	if e, err := rick.NextError(ctx); err != nil || e.Err.Condition != stanza.RecipientUnavailable {
		t.Errorf("to an offline user: %+v, %v; want recipient-unavailable", e, err)
	}
	backend.SetOffline(ann, false)

	// A subscription from a Federated partner is approved for ann
	// (REFERENCE §5.6 #65): the Backend is told, rick gets subscribed.
	if err := rick.Subscribe(ctx, "ann@host.example"); err != nil {
		t.Fatal(err)
	}
	sub, err := backend.NextSubscription(ctx)
	if err != nil || sub.Action != translate.Subscribe || !sub.AutoApproved || !sub.From.Equal(rick.JID().Bare()) {
		t.Errorf("backend got subscription %+v, %v", sub, err)
	}
	rick.Expect(t, ctx, isSubscription(translate.Subscribed))
	if s, err := backend.State(ctx, ann, rick.JID()); err != nil || !s.ContactSees() {
		t.Errorf("ann's state for rick = %v, %v; want rick to see ann", s, err)
	}
	// ann's presence goes to her watcher rick.
	if err := srv.Send(ctx, &translate.Presence{From: ann, Availability: translate.Busy}); err != nil {
		t.Fatal(err)
	}
	p := rick.Expect(t, ctx, func(v translate.Stanza) bool {
		p, ok := v.(*translate.Presence)
		return ok && p.Availability == translate.Busy
	}).(*translate.Presence)
	if !p.From.Bare().Equal(ann) {
		t.Errorf("presence from %s, want ann", p.From)
	}

	// ann subscribes to rick, rick approves, and his presence reaches the
	// Backend.
	if err := srv.Send(ctx, &translate.Subscription{From: ann, To: rick.JID().Bare(), Action: translate.Subscribe}); err != nil {
		t.Fatal(err)
	}
	rick.Expect(t, ctx, isSubscription(translate.Subscribe))
	if err := rick.Approve(ctx, "ann@host.example"); err != nil {
		t.Fatal(err)
	}
	if sub, err := backend.NextSubscription(ctx); err != nil || sub.Action != translate.Subscribed {
		t.Errorf("backend got %+v, %v; want subscribed", sub, err)
	}
	if err := rick.SendPresence(ctx, "ann@host.example", translate.Away, "back soon"); err != nil {
		t.Fatal(err)
	}
	for {
		pr, err := backend.NextPresence(ctx)
		if err != nil {
			t.Fatalf("no away presence from rick: %v; presences: %+v", err, backend.Presences())
		}
		if pr.Availability == translate.Away {
			if !pr.From.Equal(rick.JID().Bare()) || pr.Note != "back soon" {
				t.Errorf("presence %+v", pr)
			}
			break
		}
	}
}

// What the Server cannot deliver goes back to the Backend.
func TestServerBouncesToBackend(t *testing.T) {
	env := federationtest.NewEnv(t)
	backend := new(federationtest.Backend)
	ann := jid.MustParse("ann@host.example")
	backend.AddUser(ann, policy.User{})
	srv := startServer(t, env, backend,
		policy.Partner{Domain: "remote.example", Type: policy.Federated},
		policy.Partner{Domain: "dead.example", Type: policy.Federated})
	stranger := env.NewDomain("stranger.example").User("sam")
	env.DNS().AddSRV("_xmpp-server._tcp", "dead.example", ".", 0, 0, 0)
	env.DNS().AddSRV("_xmpps-server._tcp", "dead.example", ".", 0, 0, 0)
	ctx := waitCtx(t)

	if err := srv.Send(ctx, &translate.Message{From: ann, To: jid.MustParse("zed@dead.example"), Body: "hello?"}); err != nil {
		t.Fatal(err)
	}
	b, err := backend.NextBounce(ctx)
	if err != nil || b.Reason.Condition != stanza.RemoteServerNotFound || b.Value.(*translate.Message).Body != "hello?" {
		t.Errorf("bounce = %+v, %v; want the message with remote-server-not-found", b, err)
	}

	// Not a partner: refused by Send, and its streams refused.
	err = srv.Send(ctx, &translate.Message{From: ann, To: stranger.JID(), Body: "who are you?"})
	var d *policy.Denial
	if !errors.As(err, &d) {
		t.Errorf("Send to a domain that is not a partner = %v, want a *policy.Denial", err)
	}
	if err := stranger.SendMessage(ctx, "ann@host.example", "let me in"); err != nil {
		t.Fatal(err)
	}
	if e, err := stranger.NextError(ctx); err != nil || !e.Local {
		t.Errorf("stranger's message: %+v, %v; want a bounce by its own pool", e, err)
	}
	if n := len(backend.Messages()); n != 0 {
		t.Errorf("the Backend got %d messages from a refused domain", n)
	}
}
