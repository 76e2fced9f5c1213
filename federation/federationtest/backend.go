package federationtest

import (
	"context"
	"fmt"
	"sync"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/translate"
)

var _ federation.Backend = (*Backend)(nil)

// Backend is a ready, recording in-memory federation.Backend for tests:
// users added with AddUser, their contact lists in a translate.MemRoster,
// their presence set with SetPresence, and every value delivered to them
// (or bounced back) recorded in order for NextMessage, NextPresence,
// NextSubscription and NextBounce. Deliveries fail as a host's would: to
// an unknown user with translate.ErrUnknownUser, a message to a user
// marked offline with translate.ErrOffline, and with any error set by
// FailNext or FailUser; a failed delivery is not recorded.
//
// The zero value is an empty Backend ready to use; it must not be copied
// after first use. Its methods may be called concurrently.
type Backend struct {
	mu    sync.Mutex
	users map[string]*backendUser // by bare JID
	fail  []error                 // FailNext, oldest first

	roster translate.MemRoster

	messages      recorder[*translate.Message]
	presences     recorder[*translate.Presence]
	subscriptions recorder[*translate.Subscription]
	bounces       recorder[Bounced]
}

type backendUser struct {
	info     policy.User
	offline  bool
	fail     error
	presence *translate.Presence
}

// Bounced is a value the federation.Server handed back to the Backend
// (Backend.Bounce): what could not be delivered, and why.
type Bounced struct {
	Value  translate.Stanza // what Send accepted and could not deliver
	Reason stanza.Error     // why: the stanza error for its sender
}

// AddUser adds (or updates) the local user user (used in its bare form)
// with what the policy's directory says about it. A new user is online,
// with no presence set.
func (b *Backend) AddUser(user jid.JID, info policy.User) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.users == nil {
		b.users = make(map[string]*backendUser)
	}
	k := user.Bare().String()
	if u := b.users[k]; u != nil {
		u.info = info
		return
	}
	b.users[k] = &backendUser{info: info}
}

// RemoveUser removes user: from then on it is unknown. Its contact list
// stays in the roster.
func (b *Backend) RemoveUser(user jid.JID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.users, user.Bare().String())
}

// withUser runs f on user's entry; it panics when there is no such user
// (a mistake in the test's setup).
func (b *Backend) withUser(op string, user jid.JID, f func(*backendUser)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.users[user.Bare().String()]
	if u == nil {
		panic(fmt.Sprintf("federationtest: Backend.%s: no user %s (AddUser first)", op, user.Bare()))
	}
	f(u)
}

// SetOffline marks user offline (DeliverMessage then returns
// translate.ErrOffline, which the remote sender gets as
// recipient-unavailable) or back online. It panics for an unknown user.
func (b *Backend) SetOffline(user jid.JID, offline bool) {
	b.withUser("SetOffline", user, func(u *backendUser) { u.offline = offline })
}

// SetPresence sets user's current presence, which CurrentPresence returns
// (From set to the user's bare JID). It panics for an unknown user.
func (b *Backend) SetPresence(user jid.JID, p translate.Presence) {
	p.From = user.Bare()
	b.withUser("SetPresence", user, func(u *backendUser) { u.presence = &p })
}

// FailUser makes every delivery to user return err until FailUser(user,
// nil). It panics for an unknown user.
func (b *Backend) FailUser(user jid.JID, err error) {
	b.withUser("FailUser", user, func(u *backendUser) { u.fail = err })
}

// FailNext makes the next delivery (DeliverMessage, DeliverPresence or
// DeliverSubscription, to a known user) return err instead of delivering.
// Calls queue: n calls fail the next n deliveries, in order.
func (b *Backend) FailNext(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fail = append(b.fail, err)
}

// deliverable returns why a delivery to user must fail, or nil.
func (b *Backend) deliverable(user jid.JID, message bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.users[user.Bare().String()]
	if u == nil {
		return fmt.Errorf("federationtest: %s: %w", user.Bare(), translate.ErrUnknownUser)
	}
	if len(b.fail) > 0 {
		err := b.fail[0]
		b.fail = b.fail[1:]
		return err
	}
	if u.fail != nil {
		return u.fail
	}
	if message && u.offline {
		return fmt.Errorf("federationtest: %s: %w", user.Bare(), translate.ErrOffline)
	}
	return nil
}

// DeliverMessage records a copy of m for NextMessage, or fails (see
// Backend).
func (b *Backend) DeliverMessage(_ context.Context, m *translate.Message) error {
	if err := b.deliverable(m.To, true); err != nil {
		return err
	}
	c := *m
	b.messages.add(&c)
	return nil
}

// DeliverPresence records a copy of p for NextPresence, or fails (see
// Backend).
func (b *Backend) DeliverPresence(_ context.Context, p *translate.Presence) error {
	if err := b.deliverable(p.To, false); err != nil {
		return err
	}
	c := *p
	b.presences.add(&c)
	return nil
}

// DeliverSubscription records a copy of s for NextSubscription, or fails
// (see Backend).
func (b *Backend) DeliverSubscription(_ context.Context, s *translate.Subscription) error {
	if err := b.deliverable(s.To, false); err != nil {
		return err
	}
	c := *s
	b.subscriptions.add(&c)
	return nil
}

// CurrentPresence returns a copy of the presence SetPresence gave user, or
// Offline when none was set; translate.ErrUnknownUser for an unknown user.
func (b *Backend) CurrentPresence(_ context.Context, user jid.JID) (*translate.Presence, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.users[user.Bare().String()]
	switch {
	case u == nil:
		return nil, fmt.Errorf("federationtest: %s: %w", user.Bare(), translate.ErrUnknownUser)
	case u.presence == nil:
		return &translate.Presence{From: user.Bare(), Availability: translate.Offline}, nil
	}
	c := *u.presence
	return &c, nil
}

// LookupUser returns what AddUser said about user; for an unknown user an
// error that is both policy.ErrUnknownUser and translate.ErrUnknownUser
// (errors.Is).
func (b *Backend) LookupUser(_ context.Context, user jid.JID) (policy.User, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.users[user.Bare().String()]
	if u == nil {
		return policy.User{}, fmt.Errorf("federationtest: %s: %w (%w)", user.Bare(), policy.ErrUnknownUser, translate.ErrUnknownUser)
	}
	return u.info, nil
}

// State returns the subscription state of the pair (None when unknown).
func (b *Backend) State(ctx context.Context, local, remote jid.JID) (translate.SubState, error) {
	return b.roster.State(ctx, local, remote)
}

// SetState stores the subscription state of the pair; None removes it.
func (b *Backend) SetState(ctx context.Context, local, remote jid.JID, s translate.SubState) error {
	return b.roster.SetState(ctx, local, remote, s)
}

// Watchers returns the remote contacts allowed to see local's presence,
// sorted.
func (b *Backend) Watchers(ctx context.Context, local jid.JID) ([]jid.JID, error) {
	return b.roster.Watchers(ctx, local)
}

// Contacts returns the (local, remote) pairs whose local user sees a
// contact at domain, sorted.
func (b *Backend) Contacts(ctx context.Context, domain string) ([][2]jid.JID, error) {
	return b.roster.Contacts(ctx, domain)
}

// Bounce records v and reason for NextBounce. It never blocks.
func (b *Backend) Bounce(_ context.Context, v translate.Stanza, reason stanza.Error) {
	b.bounces.add(Bounced{Value: v, Reason: reason})
}

// NextMessage returns the next message delivered, waiting until ctx ends.
func (b *Backend) NextMessage(ctx context.Context) (*translate.Message, error) {
	return b.messages.next(ctx)
}

// NextPresence returns the next presence delivered, waiting until ctx
// ends.
func (b *Backend) NextPresence(ctx context.Context) (*translate.Presence, error) {
	return b.presences.next(ctx)
}

// NextSubscription returns the next subscription request or change
// delivered, waiting until ctx ends.
func (b *Backend) NextSubscription(ctx context.Context) (*translate.Subscription, error) {
	return b.subscriptions.next(ctx)
}

// NextBounce returns the next value bounced back, waiting until ctx ends.
func (b *Backend) NextBounce(ctx context.Context) (Bounced, error) { return b.bounces.next(ctx) }

// Messages returns every message delivered so far, read or not.
func (b *Backend) Messages() []*translate.Message { return b.messages.all() }

// Presences returns every presence delivered so far, read or not.
func (b *Backend) Presences() []*translate.Presence { return b.presences.all() }

// Subscriptions returns every subscription delivered so far, read or not.
func (b *Backend) Subscriptions() []*translate.Subscription { return b.subscriptions.all() }

// Bounces returns every value bounced back so far, read or not.
func (b *Backend) Bounces() []Bounced { return b.bounces.all() }
