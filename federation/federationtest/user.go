package federationtest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/xmppfed/xmppfed/s2s"
	"github.com/xmppfed/xmppfed/translate"
)

// User is a scripted user of a Domain: what it sends is encoded with
// translate.Encode and sent through the domain's s2s pool; what arrives
// for it is decoded with translate.Decode and recorded in order. Its
// methods may be called concurrently.
type User struct {
	d    *Domain
	jid  jid.JID // full: local@domain/federationtest
	got  recorder[translate.Stanza]
	errs recorder[StanzaError]
}

// JID returns the user's full JID (local@domain/federationtest), the
// sender of its messages and presence; its bare form (JID().Bare()) is
// the sender of its subscriptions and probes.
func (u *User) JID() jid.JID { return u.jid }

// Send sends v to its To through the domain's s2s pool. A zero From is
// filled in: the user's full JID for a message or presence, its bare JID
// for a subscription or probe (RFC 6121 §3.1.2, §4.3: the server stamps
// the bare JID). A presence's note is sent as is. It returns the error of
// translate.Encode (a *translate.FieldError) or of s2s.Server.Send (a
// *policy.Denial when the domain's policy refuses the remote domain); a
// failure after it returned arrives at NextError. v is not modified.
func (u *User) Send(ctx context.Context, v translate.Stanza) error {
	v = u.stamp(v)
	raw, err := translate.Encode(v, u.d.pm, true)
	if err != nil {
		return err
	}
	st, err := s2s.ParseStanza(raw)
	if err != nil {
		return err
	}
	return u.d.send(ctx, st)
}

// stamp returns a copy of v with a zero From set to the user's address.
func (u *User) stamp(v translate.Stanza) translate.Stanza {
	unset := func(j jid.JID) bool { return j.Equal(jid.JID{}) }
	switch v := v.(type) {
	case *translate.Message:
		if v != nil {
			c := *v
			if unset(c.From) {
				c.From = u.jid
			}
			return &c
		}
	case *translate.Presence:
		if v != nil {
			c := *v
			if unset(c.From) {
				c.From = u.jid
			}
			return &c
		}
	case *translate.Subscription:
		if v != nil {
			c := *v
			if unset(c.From) {
				c.From = u.jid.Bare()
			}
			return &c
		}
	case *translate.Probe:
		if v != nil {
			c := *v
			if unset(c.From) {
				c.From = u.jid.Bare()
			}
			return &c
		}
	}
	return v // nil: Encode says so
}

// SendMessage sends a chat message with body to to (a bare or full JID).
func (u *User) SendMessage(ctx context.Context, to, body string) error {
	j, err := translate.ParseAddress(to)
	if err != nil {
		return err
	}
	return u.Send(ctx, &translate.Message{To: j, Type: translate.Chat, Body: body})
}

// SendPresence sends a directed presence with availability a and note to
// to: available with the <show/> the default presence table gives a, or
// unavailable for translate.Offline (RFC 6121 §4.6). The domain keeps no
// roster: it sends to to only, never to a list of subscribers.
func (u *User) SendPresence(ctx context.Context, to string, a translate.Availability, note string) error {
	j, err := translate.ParseAddress(to)
	if err != nil {
		return err
	}
	return u.Send(ctx, &translate.Presence{To: j, Availability: a, Note: note})
}

// Subscribe asks to see to's presence (RFC 6121 §3.1.1).
func (u *User) Subscribe(ctx context.Context, to string) error {
	return u.subscription(ctx, to, translate.Subscribe)
}

// Approve lets from see the user's presence (RFC 6121 §3.1.5, subscribed).
func (u *User) Approve(ctx context.Context, from string) error {
	return u.subscription(ctx, from, translate.Subscribed)
}

// Deny refuses from's subscription request, or cancels an approval given
// before (RFC 6121 §3.2, unsubscribed).
func (u *User) Deny(ctx context.Context, from string) error {
	return u.subscription(ctx, from, translate.Unsubscribed)
}

// Unsubscribe stops seeing to's presence (RFC 6121 §3.3).
func (u *User) Unsubscribe(ctx context.Context, to string) error {
	return u.subscription(ctx, to, translate.Unsubscribe)
}

func (u *User) subscription(ctx context.Context, to string, a translate.SubscriptionAction) error {
	j, err := translate.ParseAddress(to)
	if err != nil {
		return err
	}
	return u.Send(ctx, &translate.Subscription{To: j.Bare(), Action: a})
}

// Next returns the next stanza that arrived for the user (a
// *translate.Message, *translate.Presence, *translate.Subscription or
// *translate.Probe, as translate.Decode gave it; presence is not
// aggregated), waiting until ctx ends or the domain is closed
// (ErrClosed).
func (u *User) Next(ctx context.Context) (translate.Stanza, error) { return u.got.next(ctx) }

// Expect reads stanzas with Next until one satisfies match and returns
// it; stanzas skipped on the way stay in Received. When ctx ends or the
// domain closes first, it fails the test with t.Fatalf, listing what the
// user received: call it from the test's goroutine.
func (u *User) Expect(t testing.TB, ctx context.Context, match func(translate.Stanza) bool) translate.Stanza {
	t.Helper()
	for {
		v, err := u.Next(ctx)
		if err != nil {
			t.Fatalf("federationtest: %s: no expected stanza: %v; received:\n%s", u.jid.Bare(), err, describe(u.Received()))
			return nil
		}
		if match(v) {
			return v
		}
	}
}

// Received returns every stanza that arrived for the user so far, read by
// Next or not.
func (u *User) Received() []translate.Stanza { return u.got.all() }

// NextError returns the next stanza error about a stanza the user sent:
// an error reply from the remote side or a bounce by the domain's pool,
// waiting until ctx ends or the domain is closed (ErrClosed).
func (u *User) NextError(ctx context.Context) (StanzaError, error) { return u.errs.next(ctx) }

// Errors returns every stanza error the user got so far.
func (u *User) Errors() []StanzaError { return u.errs.all() }

// describe lists stanzas one a line, for failure messages.
func describe(vs []translate.Stanza) string {
	if len(vs) == 0 {
		return "\t(nothing)"
	}
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, "\t%T %+v\n", v, v)
	}
	return b.String()
}
