package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/translate"
)

// host is the chat host of one domain, as small as a host can be: its
// users (a policy.UserTable), their contact lists (a translate.MemRoster),
// their current presence, and everything federation handed to them, kept
// in arrival order so that the demo can wait for what it expects. A real
// host would show the values to its users instead of recording them.
type host struct {
	domain string
	users  policy.UserTable
	translate.MemRoster

	mu      sync.Mutex
	current map[string]translate.Presence // by bare JID
	events  []event
	cursor  map[string]int // by bare JID: the first event expect has not looked at
	changed chan struct{}  // closed, and replaced, when an event is added
}

var _ federation.Backend = (*host)(nil)

// event is one value federation gave the host for a local user: a
// delivered message, presence or subscription, or a bounce of something
// the user sent.
type event struct {
	user   jid.JID // the local user concerned (bare)
	v      translate.Stanza
	bounce *stanza.Error // set for a bounce
}

func newHost(domain string, users ...string) *host {
	h := &host{
		domain:  domain,
		current: make(map[string]translate.Presence),
		cursor:  make(map[string]int),
		changed: make(chan struct{}),
	}
	for _, u := range users {
		h.users.Set(jid.MustParse(u+"@"+domain), policy.User{})
	}
	return h
}

// LookupUser implements policy.Directory.
func (h *host) LookupUser(ctx context.Context, user jid.JID) (policy.User, error) {
	return h.users.LookupUser(ctx, user)
}

// known returns translate.ErrUnknownUser for a user the host does not
// have, so that the sender gets service-unavailable (RFC 6121 §8.5.2).
func (h *host) known(ctx context.Context, user jid.JID) error {
	if _, err := h.users.LookupUser(ctx, user.Bare()); err != nil {
		if errors.Is(err, policy.ErrUnknownUser) {
			return fmt.Errorf("%w: %s", translate.ErrUnknownUser, user.Bare())
		}
		return err
	}
	return nil
}

// DeliverMessage implements translate.Host.
func (h *host) DeliverMessage(ctx context.Context, m *translate.Message) error {
	if err := h.known(ctx, m.To); err != nil {
		return err
	}
	mm := *m
	h.add(event{user: m.To.Bare(), v: &mm})
	return nil
}

// DeliverPresence implements translate.Host.
func (h *host) DeliverPresence(ctx context.Context, p *translate.Presence) error {
	if err := h.known(ctx, p.To); err != nil {
		return err
	}
	pp := *p
	h.add(event{user: p.To.Bare(), v: &pp})
	return nil
}

// DeliverSubscription implements translate.Host.
func (h *host) DeliverSubscription(ctx context.Context, s *translate.Subscription) error {
	if err := h.known(ctx, s.To); err != nil {
		return err
	}
	ss := *s
	h.add(event{user: s.To.Bare(), v: &ss})
	return nil
}

// CurrentPresence implements translate.Host: what the user last set, or
// Offline.
func (h *host) CurrentPresence(ctx context.Context, user jid.JID) (*translate.Presence, error) {
	if err := h.known(ctx, user); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.current[user.Bare().String()]
	if !ok {
		p = translate.Presence{From: user.Bare(), Availability: translate.Offline}
	}
	return &p, nil
}

// Bounce implements federation.Backend: the value goes back to the user
// who sent it.
func (h *host) Bounce(ctx context.Context, v translate.Stanza, reason stanza.Error) {
	r := reason
	h.add(event{user: sender(v).Bare(), v: v, bounce: &r})
}

// setPresence records the user's presence, which federation reads back
// through CurrentPresence to answer probes.
func (h *host) setPresence(p translate.Presence) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.current[p.From.Bare().String()] = p
}

func (h *host) add(e event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e)
	close(h.changed)
	h.changed = make(chan struct{})
}

// expect waits until an event for user matches ok, looking only at the
// events that arrived after the one the previous expect for user
// returned: what is expected in order must arrive in order. It returns
// ctx's error, with what the user did receive, if none comes.
func (h *host) expect(ctx context.Context, user jid.JID, ok func(event) bool) (event, error) {
	key := user.Bare().String()
	for {
		h.mu.Lock()
		for i := h.cursor[key]; i < len(h.events); i++ {
			if e := h.events[i]; e.user.Equal(user.Bare()) && ok(e) {
				h.cursor[key] = i + 1
				h.mu.Unlock()
				return e, nil
			}
		}
		ch := h.changed
		h.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return event{}, fmt.Errorf("%w; %s received: %s", ctx.Err(), user.Bare(), h.seen(user))
		}
	}
}

// received reports whether any event for user matches ok.
func (h *host) received(user jid.JID, ok func(event) bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.events {
		if e.user.Equal(user.Bare()) && ok(e) {
			return true
		}
	}
	return false
}

// seen describes what user has received since the last expect, for a
// failure message.
func (h *host) seen(user jid.JID) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	key := user.Bare().String()
	var parts []string
	for _, e := range h.events[h.cursor[key]:] {
		if e.user.Equal(user.Bare()) {
			parts = append(parts, e.String())
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// String describes the event in one line, without message bodies'
// surroundings: "message from bob@fabrikam.test", "bounce
// (service-unavailable) of message to nobody@fabrikam.test".
func (e event) String() string {
	if e.bounce != nil {
		return fmt.Sprintf("bounce (%s) of %s", e.bounce.Condition, describe(e.v))
	}
	return describe(e.v)
}

// describe names a value in a few words.
func describe(v translate.Stanza) string {
	switch v := v.(type) {
	case *translate.Message:
		switch {
		case v.ReceiptFor != "":
			return fmt.Sprintf("receipt for %q from %s to %s", v.ReceiptFor, v.From, v.To)
		case v.Body == "":
			return fmt.Sprintf("chat state %s from %s to %s", v.ChatState, v.From, v.To)
		}
		return fmt.Sprintf("message %q from %s to %s", v.ID, v.From, v.To)
	case *translate.Presence:
		return fmt.Sprintf("presence %s from %s to %s", v.Availability, v.From, v.To)
	case *translate.Subscription:
		auto := ""
		if v.AutoApproved {
			auto = " (approved automatically)"
		}
		return fmt.Sprintf("%s from %s to %s%s", v.Action, v.From, v.To, auto)
	case *translate.Probe:
		return fmt.Sprintf("probe from %s to %s", v.From, v.To)
	}
	return fmt.Sprintf("%T", v)
}

// sender returns the From of a value.
func sender(v translate.Stanza) jid.JID {
	switch v := v.(type) {
	case *translate.Message:
		return v.From
	case *translate.Presence:
		return v.From
	case *translate.Subscription:
		return v.From
	case *translate.Probe:
		return v.From
	}
	return jid.JID{}
}
