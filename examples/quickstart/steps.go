package main

import (
	"context"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/translate"
)

// step is one thing the demo shows. run does it and waits for its
// effect; it returns the line printed after "✓ ".
type step struct {
	name string // printed after "✗ " when the step fails
	run  func(ctx context.Context) (string, error)
}

// demo starts the world, runs the steps in order, each within
// opts.timeout, stops at the first failure, shuts everything down and
// returns the exit status.
func demo(ctx context.Context, opts options, out *console) int {
	w, err := startWorld(ctx, opts, out)
	if err != nil {
		out.printf("✗ starting the demo: %v", err)
		return 1
	}
	c, f, s := w.nodes[contoso], w.nodes[fabrikam], w.nodes[stranger]
	out.printf("%s (alice) on %s, %s (bob) on %s, %s (eve) on %s; DNS on %s; certificates from a test CA",
		c.domain, c.ln.Addr(), f.domain, f.ln.Addr(), s.domain, s.ln.Addr(), w.dns.Addr)

	steps := conversation(w)
	passed := 0
	for _, st := range steps {
		sctx, cancel := context.WithTimeout(ctx, opts.timeout)
		line, err := st.run(sctx)
		cancel()
		if err != nil {
			out.printf("✗ %s: %v", st.name, err)
			break
		}
		out.printf("✓ %s", line)
		passed++
	}

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.timeout)
	err = w.shutdown(sctx)
	cancel()
	if passed < len(steps) {
		if err != nil {
			out.printf("  (and shutting down: %v)", err)
		}
		out.printf("FAILED: %d of %d steps passed", passed, len(steps))
		return 1
	}
	if err != nil {
		out.printf("✗ shutting down: %v", err)
		return 1
	}
	out.printf("✓ all three servers shut down cleanly (queues drained, every stream closed)")
	out.printf("PASS: all %d steps happened", len(steps))
	return 0
}

// conversation returns the steps of the demo, in order.
func conversation(w *world) []step {
	c, f, s := w.nodes[contoso], w.nodes[fabrikam], w.nodes[stranger]
	alice := jid.MustParse("alice@" + contoso)
	bob := jid.MustParse("bob@" + fabrikam)
	eve := jid.MustParse("eve@" + stranger)
	nobody := jid.MustParse("nobody@" + fabrikam)

	// subscribe is one direction of a subscription (RFC 6121 §3.1): the
	// request, then the approval, by the contact's server for a
	// Federated partner (REFERENCE §5.6 #65) or else by the contact.
	var auto bool // whether the last request was approved automatically
	subscribe := func(from, to *node, user, contact jid.JID) step {
		return step{
			name: fmt.Sprintf("%s asks to see %s's presence", user, contact),
			run: func(ctx context.Context) (string, error) {
				err := from.srv.Send(ctx, &translate.Subscription{From: user, To: contact, Action: translate.Subscribe, ID: "sub-" + user.Localpart()})
				if err != nil {
					return "", fmt.Errorf("send: %w", err)
				}
				e, err := to.host.expect(ctx, contact, isSubscription(user, translate.Subscribe))
				if err != nil {
					return "", err
				}
				auto = e.v.(*translate.Subscription).AutoApproved
				return fmt.Sprintf("%s asks to see %s's presence", user.Localpart(), contact.Localpart()), nil
			},
		}
	}
	approve := func(from, to *node, user, contact jid.JID) step {
		return step{
			name: fmt.Sprintf("%s's approval reaches %s", contact, user),
			run: func(ctx context.Context) (string, error) {
				how := fmt.Sprintf("%s approves", contact.Localpart())
				if auto {
					how = fmt.Sprintf("%s approves it for %s (%s is a federated partner)", to.domain, contact.Localpart(), from.domain)
				} else {
					err := to.srv.Send(ctx, &translate.Subscription{From: contact, To: user, Action: translate.Subscribed})
					if err != nil {
						return "", fmt.Errorf("send: %w", err)
					}
				}
				if _, err := from.host.expect(ctx, user, isSubscription(contact, translate.Subscribed)); err != nil {
					return "", err
				}
				st, err := from.host.State(ctx, user, contact)
				if err != nil {
					return "", err
				}
				if !st.SeesContact() {
					return "", fmt.Errorf("%s's roster says %s for %s: %s does not see %s", user, st, contact, user.Localpart(), contact.Localpart())
				}
				return fmt.Sprintf("%s: %s sees %s (roster: %s)", how, user.Localpart(), contact.Localpart(), st), nil
			},
		}
	}

	// presence is a presence change of user (RFC 6121 §4.2), seen by
	// watcher through the other server, mapped to <show/> and back
	// (REFERENCE §4.5).
	presence := func(from, to *node, user, watcher jid.JID, a translate.Availability, note string) step {
		return step{
			name: fmt.Sprintf("%s sees %s %s", watcher, user, a),
			run: func(ctx context.Context) (string, error) {
				p := translate.Presence{From: user, Availability: a, Note: note}
				from.host.setPresence(p)
				if err := from.srv.Send(ctx, &p); err != nil {
					return "", fmt.Errorf("send: %w", err)
				}
				e, err := to.host.expect(ctx, watcher, func(e event) bool {
					got, ok := e.v.(*translate.Presence)
					return ok && e.bounce == nil && got.From.Bare().Equal(user) && got.Availability == a
				})
				if err != nil {
					return "", err
				}
				got := e.v.(*translate.Presence)
				if got.Note != note {
					return "", fmt.Errorf("%s sees %s %s with the note %q, sent %q", watcher, user, a, got.Note, note)
				}
				seen := a.String()
				if note != "" {
					seen += fmt.Sprintf(" (note: '%s')", note)
				}
				return fmt.Sprintf("%s is %s: %s sees %s: %s", user.Localpart(), onTheWire(a, note), watcher.Localpart(), user.Localpart(), seen), nil
			},
		}
	}

	// chat is an IM preceded by an XEP-0085 chat state and carrying an
	// XEP-0184 receipt request; receipt is the recipient's host
	// acknowledging it, as it does once its user has the message.
	var lastID string
	var lastFrom jid.JID
	chat := func(from, to *node, user, contact jid.JID, id, body string) step {
		return step{
			name: fmt.Sprintf("%s -> %s: '%s'", user, contact, body),
			run: func(ctx context.Context) (string, error) {
				typing := &translate.Message{From: user, To: contact, ChatState: translate.Composing}
				if err := from.srv.Send(ctx, typing); err != nil {
					return "", fmt.Errorf("send (composing): %w", err)
				}
				m := &translate.Message{From: user, To: contact, ID: id, Body: body, ChatState: translate.Active, RequestReceipt: true}
				if err := from.srv.Send(ctx, m); err != nil {
					return "", fmt.Errorf("send: %w", err)
				}
				fromUser := func(e event) (*translate.Message, bool) {
					got, ok := e.v.(*translate.Message)
					return got, ok && e.bounce == nil && got.From.Bare().Equal(user)
				}
				if _, err := to.host.expect(ctx, contact, func(e event) bool {
					got, ok := fromUser(e)
					return ok && got.Body == "" && got.ChatState == translate.Composing
				}); err != nil {
					return "", fmt.Errorf("no composing: %w", err)
				}
				e, err := to.host.expect(ctx, contact, func(e event) bool {
					got, ok := fromUser(e)
					return ok && got.ID == id
				})
				if err != nil {
					return "", fmt.Errorf("composing arrived, the message did not: %w", err)
				}
				got := e.v.(*translate.Message)
				if got.Body != body || !got.RequestReceipt || got.ChatState != translate.Active {
					return "", fmt.Errorf("%s got %q (receipt requested %v, chat state %q), sent %q", contact, got.Body, got.RequestReceipt, got.ChatState, body)
				}
				lastID, lastFrom = got.ID, got.From
				return fmt.Sprintf("%s -> %s: '%s' (composing first)", user.Localpart(), contact.Localpart(), body), nil
			},
		}
	}
	receipt := func(from, to *node, user, contact jid.JID, body string) step {
		return step{
			name: fmt.Sprintf("receipt for %s's '%s' back at %s", user, body, user),
			run: func(ctx context.Context) (string, error) {
				// XEP-0184 §5: the receipt goes to the full JID that sent
				// the message, with the message's id.
				r := &translate.Message{From: contact, To: lastFrom, ReceiptFor: lastID}
				if err := to.srv.Send(ctx, r); err != nil {
					return "", fmt.Errorf("send: %w", err)
				}
				if _, err := from.host.expect(ctx, user, func(e event) bool {
					got, ok := e.v.(*translate.Message)
					return ok && e.bounce == nil && got.From.Bare().Equal(contact) && got.ReceiptFor == lastID
				}); err != nil {
					return "", err
				}
				return fmt.Sprintf("receipt for %s's '%s' back at %s", user.Localpart(), body, user.Localpart()), nil
			},
		}
	}

	return []step{
		subscribe(c, f, alice, bob),
		approve(c, f, alice, bob),
		subscribe(f, c, bob, alice),
		approve(f, c, bob, alice),
		presence(f, c, bob, alice, translate.Available, ""),
		presence(f, c, bob, alice, translate.Away, "lunch"),
		presence(f, c, bob, alice, translate.DoNotDisturb, ""),
		presence(f, c, bob, alice, translate.Offline, ""),
		presence(c, f, alice, bob, translate.Available, "at my desk"),
		chat(f, c, bob, alice, "m1", "hi"),
		receipt(f, c, bob, alice, "hi"),
		chat(c, f, alice, bob, "m2", "hello bob, lunch tomorrow?"),
		receipt(c, f, alice, bob, "hello bob, lunch tomorrow?"),
		{
			name: "message to " + nobody.String() + " bounced",
			run: func(ctx context.Context) (string, error) {
				m := &translate.Message{From: alice, To: nobody, ID: "m3", Body: "anyone there?"}
				if err := c.srv.Send(ctx, m); err != nil {
					return "", fmt.Errorf("send: %w", err)
				}
				e, err := c.host.expect(ctx, alice, func(e event) bool {
					got, ok := e.v.(*translate.Message)
					return ok && e.bounce != nil && got.To.Bare().Equal(nobody)
				})
				if err != nil {
					return "", err
				}
				// RFC 6121 §8.5.2: a message to a user that does not
				// exist is answered with service-unavailable.
				if e.bounce.Condition != stanza.ServiceUnavailable {
					return "", fmt.Errorf("bounced with %s, want %s", e.bounce.Condition, stanza.ServiceUnavailable)
				}
				return fmt.Sprintf("message to %s bounced: %s", nobody, e.bounce.Condition), nil
			},
		},
		{
			name: "Send to " + eve.String() + " refused",
			run: func(ctx context.Context) (string, error) {
				m := &translate.Message{From: alice, To: eve, Body: "hello?"}
				err := c.srv.Send(ctx, m)
				var d *policy.Denial
				if !errors.As(err, &d) || d.Rule != policy.RuleNotPartner {
					return "", fmt.Errorf("send returned %v, want a *policy.Denial with rule %s", err, policy.RuleNotPartner)
				}
				if err := c.count.wait(ctx, "denied "+policy.RuleNotPartner.String()); err != nil {
					return "", fmt.Errorf("%s did not count the denial: %w", contoso, err)
				}
				return fmt.Sprintf("alice -> %s refused by Send: %s is not a federation partner (%s, rule %s)",
					eve, stranger, d.StanzaError().Condition, d.Rule), nil
			},
		},
		{
			name: stranger + " refused",
			run: func(ctx context.Context) (string, error) {
				// stranger.test lists contoso.test as a partner, but not
				// the other way round: contoso.test refuses its stream
				// (REFERENCE §5.2 #17), and stranger.test bounces the
				// message to eve.
				m := &translate.Message{From: eve, To: alice, ID: "m4", Body: "let me in"}
				if err := s.srv.Send(ctx, m); err != nil {
					return "", fmt.Errorf("send at %s: %w", stranger, err)
				}
				e, err := s.host.expect(ctx, eve, func(e event) bool {
					got, ok := e.v.(*translate.Message)
					return ok && e.bounce != nil && got.ID == "m4"
				})
				if err != nil {
					return "", err
				}
				if c.host.received(alice, func(e event) bool { return sender(e.v).Bare().Equal(eve) }) {
					return "", fmt.Errorf("%s received something from %s", alice, eve)
				}
				// contoso.test's side: the stream failed at the policy
				// step (REFERENCE §5.2 #17: policy-violation).
				if err := c.count.wait(ctx, "failed policy"); err != nil {
					return "", fmt.Errorf("%s counted no stream refused by its policy: %w", contoso, err)
				}
				return fmt.Sprintf("%s refused: not a federation partner (%s closed its stream with policy-violation; eve's message bounced at %s: %s)",
					stranger, contoso, stranger, e.bounce.Condition), nil
			},
		},
	}
}

// isSubscription matches a subscription stanza of action from a user.
func isSubscription(from jid.JID, action translate.SubscriptionAction) func(event) bool {
	return func(e event) bool {
		got, ok := e.v.(*translate.Subscription)
		return ok && e.bounce == nil && got.From.Bare().Equal(from) && got.Action == action
	}
}

// onTheWire describes availability a the way it is sent: its state, and
// the XMPP presence the default table maps it to (REFERENCE §4.5).
func onTheWire(a translate.Availability, note string) string {
	unavailable, show, _ := translate.NewPresenceTable().ToXMPP(a, note, true)
	switch {
	case unavailable:
		return a.String() + " (type='unavailable')"
	case show == translate.ShowNone:
		return a.String() + " (no <show/>)"
	}
	s := a.String()
	if note != "" {
		s += fmt.Sprintf(" '%s'", note)
	}
	return s + " (<show>" + string(show) + "</show>)"
}
