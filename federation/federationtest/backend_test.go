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

// The recording Backend passes the conformance suite it ships.
func TestBackendConformance(t *testing.T) {
	federationtest.TestBackend(t, func(t *testing.T) (federation.Backend, jid.JID) {
		b := new(federationtest.Backend)
		user := jid.MustParse("ann@host.example")
		b.AddUser(user, policy.User{Site: "hq"})
		return b, user
	})
}

func TestBackendDelivery(t *testing.T) {
	b := new(federationtest.Backend)
	ctx := waitCtx(t)
	ann, rick := jid.MustParse("ann@host.example"), jid.MustParse("rick@remote.example/phone")
	b.AddUser(ann, policy.User{Site: "hq", Policy: "XMPP"})

	if u, err := b.LookupUser(ctx, ann); err != nil || u.Site != "hq" || u.Policy != "XMPP" {
		t.Errorf("LookupUser(ann) = %+v, %v", u, err)
	}
	_, err := b.LookupUser(ctx, jid.MustParse("zoe@host.example"))
	if !errors.Is(err, policy.ErrUnknownUser) || !errors.Is(err, translate.ErrUnknownUser) {
		t.Errorf("LookupUser(zoe) = %v, want policy and translate ErrUnknownUser", err)
	}

	m := &translate.Message{From: rick, To: ann, Body: "one"}
	if err := b.DeliverMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	m.Body = "changed after delivery"
	got, err := b.NextMessage(ctx)
	if err != nil || got.Body != "one" {
		t.Errorf("NextMessage = %+v, %v; want the copy delivered", got, err)
	}

	// Offline: messages fail with ErrOffline (recipient-unavailable);
	// presence still arrives.
	b.SetOffline(ann, true)
	if err := b.DeliverMessage(ctx, &translate.Message{From: rick, To: ann, Body: "two"}); !errors.Is(err, translate.ErrOffline) ||
		translate.StanzaError(err).Condition != stanza.RecipientUnavailable {
		t.Errorf("DeliverMessage to an offline user = %v", err)
	}
	if err := b.DeliverPresence(ctx, &translate.Presence{From: rick.Bare(), To: ann, Availability: translate.Busy}); err != nil {
		t.Errorf("DeliverPresence to an offline user = %v", err)
	}
	b.SetOffline(ann, false)

	// FailNext queues; FailUser sticks until cleared.
	errA, errB := errors.New("a"), stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}
	b.FailNext(errA)
	b.FailNext(errB)
	if err := b.DeliverSubscription(ctx, &translate.Subscription{From: rick.Bare(), To: ann, Action: translate.Subscribe}); !errors.Is(err, errA) {
		t.Errorf("first delivery after FailNext = %v, want %v", err, errA)
	}
	if err := b.DeliverMessage(ctx, &translate.Message{From: rick, To: ann, Body: "three"}); !errors.Is(err, errB) {
		t.Errorf("second delivery after FailNext = %v, want %v", err, errB)
	}
	b.FailUser(ann, errA)
	for range 2 {
		if err := b.DeliverPresence(ctx, &translate.Presence{From: rick.Bare(), To: ann}); !errors.Is(err, errA) {
			t.Errorf("delivery after FailUser = %v, want %v", err, errA)
		}
	}
	b.FailUser(ann, nil)
	if err := b.DeliverSubscription(ctx, &translate.Subscription{From: rick.Bare(), To: ann, Action: translate.Subscribe}); err != nil {
		t.Errorf("delivery after FailUser(nil) = %v", err)
	}

	// Unknown users.
	zoe := jid.MustParse("zoe@host.example")
	if err := b.DeliverMessage(ctx, &translate.Message{From: rick, To: zoe}); translate.StanzaError(err).Condition != stanza.ServiceUnavailable {
		t.Errorf("DeliverMessage to an unknown user = %v", err)
	}
	if _, err := b.CurrentPresence(ctx, zoe); !errors.Is(err, translate.ErrUnknownUser) {
		t.Errorf("CurrentPresence of an unknown user = %v", err)
	}

	// What was recorded: only the successful deliveries.
	if n := len(b.Messages()); n != 1 {
		t.Errorf("%d messages recorded, want 1", n)
	}
	if p := b.Presences(); len(p) != 1 || p[0].Availability != translate.Busy {
		t.Errorf("presences recorded = %+v", p)
	}
	if s := b.Subscriptions(); len(s) != 1 {
		t.Errorf("subscriptions recorded = %+v", s)
	}
	if s, err := b.NextSubscription(ctx); err != nil || s.Action != translate.Subscribe {
		t.Errorf("NextSubscription = %+v, %v", s, err)
	}
	if p, err := b.NextPresence(ctx); err != nil || p.Availability != translate.Busy {
		t.Errorf("NextPresence = %+v, %v", p, err)
	}

	// Presence: Offline until set.
	if p, err := b.CurrentPresence(ctx, ann); err != nil || p.Availability != translate.Offline || !p.From.Equal(ann) {
		t.Errorf("CurrentPresence before SetPresence = %+v, %v", p, err)
	}
	b.SetPresence(ann, translate.Presence{Availability: translate.DoNotDisturb, Note: "in a meeting"})
	if p, err := b.CurrentPresence(ctx, ann); err != nil || p.Availability != translate.DoNotDisturb || p.Note != "in a meeting" || !p.From.Equal(ann) {
		t.Errorf("CurrentPresence = %+v, %v", p, err)
	}

	// Bounces.
	b.Bounce(ctx, &translate.Message{From: ann, To: rick, Body: "lost"}, stanza.Error{Condition: stanza.RemoteServerTimeout})
	if bo, err := b.NextBounce(ctx); err != nil || bo.Reason.Condition != stanza.RemoteServerTimeout || bo.Value.(*translate.Message).Body != "lost" {
		t.Errorf("NextBounce = %+v, %v", bo, err)
	}
	if n := len(b.Bounces()); n != 1 {
		t.Errorf("%d bounces recorded, want 1", n)
	}

	// Removed users are unknown again.
	b.RemoveUser(ann)
	if _, err := b.LookupUser(ctx, ann); !errors.Is(err, policy.ErrUnknownUser) {
		t.Errorf("LookupUser after RemoveUser = %v", err)
	}
}

func TestBackendSetupMistakesPanic(t *testing.T) {
	b := new(federationtest.Backend)
	defer func() {
		if recover() == nil {
			t.Errorf("SetOffline of an unknown user did not panic")
		}
	}()
	b.SetOffline(jid.MustParse("nobody@host.example"), true)
}
