package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/translate"
)

// maxBacklog bounds what is kept for a user who is not logged in; past
// it, messages are refused with recipient-unavailable (REFERENCE §5.7
// #82).
const maxBacklog = 100

// receiptTimeout bounds the sending of one delivery receipt.
const receiptTimeout = 5 * time.Second

// chat is the chat server's own model, and the federation.Backend: a
// fixed set of users (accounts), each with at most one logged-in session,
// a contact list per user holding RFC 6121 subscription states, the
// presence each user set and the presence of their remote contacts. It
// knows nothing of XMPP beyond the values of package translate.
type chat struct {
	domain string
	log    *slog.Logger
	fed    *federation.Server // set before serving

	accounts map[string]*account // by bare JID; fixed after newChat
	order    []*account          // in -users order

	mu       sync.Mutex
	roster   map[pair]*contact
	sessions map[*session]struct{}
	closed   bool
	wg       sync.WaitGroup // session goroutines
}

var _ federation.Backend = (*chat)(nil)

// account is one local user. Its fields other than jid are guarded by
// chat.mu.
type account struct {
	jid      jid.JID // bare
	sess     *session
	presence translate.Presence
	backlog  []string // lines kept while logged out
	receipts []*translate.Message
}

// pair is a (local user, remote contact) pair of bare JIDs.
type pair struct{ local, remote string }

// contact is one entry of a user's contact list.
type contact struct {
	local, remote jid.JID
	state         translate.SubState
	presence      *translate.Presence // last known; nil: unknown
}

func newChat(domain string, users []string, logger *slog.Logger) (*chat, error) {
	d, err := translate.ParseAddress(domain)
	if err != nil || d.Localpart() != "" || d.Resourcepart() != "" {
		return nil, fmt.Errorf("-domain %q is not a domain", domain)
	}
	c := &chat{
		domain:   d.Domainpart(),
		log:      logger,
		accounts: make(map[string]*account),
		roster:   make(map[pair]*contact),
		sessions: make(map[*session]struct{}),
	}
	for _, u := range users {
		j, err := translate.ParseAddress(u + "@" + c.domain)
		if err != nil || j.Resourcepart() != "" {
			return nil, fmt.Errorf("-users: %q is not a user name", u)
		}
		a := &account{jid: j.Bare(), presence: translate.Presence{From: j.Bare(), Availability: translate.Offline}}
		c.accounts[a.jid.String()] = a
		c.order = append(c.order, a)
	}
	return c, nil
}

// account returns the local account of a JID, or translate.ErrUnknownUser
// (service-unavailable for the remote sender, RFC 6121 §8.5.2).
func (c *chat) account(j jid.JID) (*account, error) {
	if a := c.accounts[j.Bare().String()]; a != nil {
		return a, nil
	}
	return nil, fmt.Errorf("%w: %s", translate.ErrUnknownUser, j.Bare())
}

// ---- policy.Directory ----

// LookupUser implements policy.Directory: every user has the policies of
// the policy file's global policy (no site, no per-user policy).
func (c *chat) LookupUser(_ context.Context, user jid.JID) (policy.User, error) {
	if _, ok := c.accounts[user.Bare().String()]; !ok {
		return policy.User{}, fmt.Errorf("%w: %s", policy.ErrUnknownUser, user.Bare())
	}
	return policy.User{}, nil
}

// ---- translate.Host ----

// DeliverMessage implements translate.Host: the message is shown to the
// user's session, or kept for the next login. A receipt requested
// (XEP-0184) is sent once the line reached the session: that is this
// host's "delivered".
func (c *chat) DeliverMessage(ctx context.Context, m *translate.Message) error {
	a, err := c.account(m.To)
	if err != nil {
		return err
	}
	from := m.From.Bare()
	var line string
	switch {
	case m.ReceiptFor != "":
		line = fmt.Sprintf("* %s received your message %s", from, m.ReceiptFor)
	case m.Body == "":
		switch m.ChatState {
		case translate.Composing:
			line = fmt.Sprintf("* %s is typing", from)
		case translate.Paused:
			line = fmt.Sprintf("* %s stopped typing", from)
		case translate.Gone:
			line = fmt.Sprintf("* %s left the conversation", from)
		default:
			return nil // active, inactive: nothing to show
		}
	default:
		line = fmt.Sprintf("[%s] %s", from, m.Body)
		if !m.Delay.IsZero() {
			line += fmt.Sprintf(" (sent %s)", m.Delay.Format(time.DateTime))
		}
		if m.Replaces != "" {
			line += fmt.Sprintf(" (correcting %s)", m.Replaces)
		}
	}
	var receipt *translate.Message
	if m.RequestReceipt && m.ID != "" && m.Body != "" {
		receipt = &translate.Message{From: a.jid, To: m.From, ReceiptFor: m.ID}
	}
	// Chat states and receipts are worth nothing later: only messages are
	// kept for a user who is not logged in.
	live, err := c.tell(a, line, m.Body != "", receipt)
	if err != nil {
		return err
	}
	if live && receipt != nil {
		c.sendReceipt(ctx, receipt)
	}
	return nil
}

// DeliverPresence implements translate.Host: the contact's presence is
// remembered for 'who' and shown to a logged-in user.
func (c *chat) DeliverPresence(_ context.Context, p *translate.Presence) error {
	a, err := c.account(p.To)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if ct := c.roster[pair{a.jid.String(), p.From.Bare().String()}]; ct != nil {
		pp := *p
		ct.presence = &pp
		if p.Availability == translate.Unknown {
			ct.presence = nil
		}
	}
	c.mu.Unlock()
	_, err = c.tell(a, "* "+p.From.Bare().String()+" is "+presenceText(p), false, nil)
	return err
}

// DeliverSubscription implements translate.Host.
func (c *chat) DeliverSubscription(_ context.Context, s *translate.Subscription) error {
	a, err := c.account(s.To)
	if err != nil {
		return err
	}
	from := s.From.Bare()
	var line string
	switch {
	case s.Action == translate.Subscribe && s.AutoApproved:
		line = fmt.Sprintf("* %s now sees your presence (approved by the server: a trusted partner)", from)
	case s.Action == translate.Subscribe:
		line = fmt.Sprintf("* %s asks to see your presence: type 'approve %s' or 'deny %s'", from, from, from)
	case s.Action == translate.Subscribed:
		line = fmt.Sprintf("* %s approved: you see their presence", from)
	case s.Action == translate.Unsubscribe:
		line = fmt.Sprintf("* %s no longer watches your presence", from)
	case s.Action == translate.Unsubscribed:
		line = fmt.Sprintf("* %s refused or revoked your subscription", from)
	default:
		line = fmt.Sprintf("* %s: %s", from, s.Action)
	}
	_, err = c.tell(a, line, true, nil)
	return err
}

// CurrentPresence implements translate.Host.
func (c *chat) CurrentPresence(_ context.Context, user jid.JID) (*translate.Presence, error) {
	a, err := c.account(user)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := a.presence
	return &p, nil
}

// ---- translate.Roster ----

// State implements translate.Roster.
func (c *chat) State(_ context.Context, local, remote jid.JID) (translate.SubState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ct := c.roster[pair{local.Bare().String(), remote.Bare().String()}]; ct != nil {
		return ct.state, nil
	}
	return translate.None, nil
}

// SetState implements translate.Roster; None removes the contact.
func (c *chat) SetState(_ context.Context, local, remote jid.JID, s translate.SubState) error {
	if _, err := c.account(local); err != nil {
		return err
	}
	k := pair{local.Bare().String(), remote.Bare().String()}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s == translate.None {
		delete(c.roster, k)
		return nil
	}
	ct := c.roster[k]
	if ct == nil {
		ct = &contact{local: local.Bare(), remote: remote.Bare()}
		c.roster[k] = ct
	}
	ct.state = s
	return nil
}

// Watchers implements translate.Roster.
func (c *chat) Watchers(_ context.Context, local jid.JID) ([]jid.JID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []jid.JID
	for _, ct := range c.roster {
		if ct.local.Equal(local.Bare()) && ct.state.ContactSees() {
			out = append(out, ct.remote)
		}
	}
	slices.SortFunc(out, func(a, b jid.JID) int { return cmp.Compare(a.String(), b.String()) })
	return out, nil
}

// Contacts implements translate.Roster.
func (c *chat) Contacts(_ context.Context, domain string) ([][2]jid.JID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][2]jid.JID
	for _, ct := range c.roster {
		if ct.state.SeesContact() && strings.EqualFold(ct.remote.Domainpart(), strings.TrimSuffix(domain, ".")) {
			out = append(out, [2]jid.JID{ct.local, ct.remote})
		}
	}
	slices.SortFunc(out, func(a, b [2]jid.JID) int {
		return cmp.Or(cmp.Compare(a[0].String(), b[0].String()), cmp.Compare(a[1].String(), b[1].String()))
	})
	return out, nil
}

// contactsOf returns a user's contact list, sorted.
func (c *chat) contactsOf(a *account) []contact {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []contact
	for _, ct := range c.roster {
		if ct.local.Equal(a.jid) {
			out = append(out, *ct)
		}
	}
	slices.SortFunc(out, func(x, y contact) int { return cmp.Compare(x.remote.String(), y.remote.String()) })
	return out
}

// ---- federation.Backend ----

// Bounce implements federation.Backend: the sender is told what could not
// be delivered, and why.
func (c *chat) Bounce(_ context.Context, v translate.Stanza, reason stanza.Error) {
	var from, to jid.JID
	what := "stanza"
	switch v := v.(type) {
	case *translate.Message:
		// An error reply carries the original body only when the remote
		// server copied it (RFC 6120 §8.3.1 allows it): name it by id.
		from, to, what = v.From, v.To, "message"
		if v.ID != "" {
			what += " " + v.ID
		}
	case *translate.Presence:
		from, to, what = v.From, v.To, "presence"
	case *translate.Subscription:
		from, to, what = v.From, v.To, v.Action.String()
	case *translate.Probe:
		from, to, what = v.From, v.To, "probe"
	}
	a, err := c.account(from)
	if err != nil {
		c.log.Warn("bounce for no local user", "from", from.String(), "to", to.String(), "condition", string(reason.Condition))
		return
	}
	line := fmt.Sprintf("! your %s to %s was not delivered: %s", what, to.Bare(), reason.Condition)
	if t := reason.Text[""]; t != "" {
		line += " (" + t + ")"
	}
	if _, err := c.tell(a, line, true, nil); err != nil {
		c.log.Info("bounce not shown: the backlog is full", "user", a.jid.String(), "condition", string(reason.Condition))
	}
}

// ---- Sessions ----

// tell shows a line to the user: at once when logged in (live), else,
// when keep, in the backlog for the next login, with the receipt to send
// then. It returns translate.ErrOffline when the line can be neither
// shown nor kept.
func (c *chat) tell(a *account, line string, keep bool, receipt *translate.Message) (live bool, err error) {
	c.mu.Lock()
	s := a.sess
	if s == nil {
		defer c.mu.Unlock()
		if !keep || len(a.backlog) >= maxBacklog {
			return false, fmt.Errorf("%w: %s is not logged in", translate.ErrOffline, a.jid)
		}
		a.backlog = append(a.backlog, line)
		if receipt != nil {
			a.receipts = append(a.receipts, receipt)
		}
		return false, nil
	}
	c.mu.Unlock()
	if err := s.println(line); err != nil {
		// The connection is gone: the session ends, and the line is
		// kept if it may be.
		c.logout(s)
		return c.tell(a, line, keep, receipt)
	}
	return true, nil
}

// sendReceipt sends an XEP-0184 receipt (§5: to the full JID that sent
// the message, with its id); a failure is logged.
func (c *chat) sendReceipt(ctx context.Context, r *translate.Message) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), receiptTimeout)
	defer cancel()
	if err := c.fed.Send(ctx, r); err != nil {
		c.log.Info("receipt not sent", "from", r.From.String(), "to", r.To.String(), "id", r.ReceiptFor, "err", err)
	}
}

// presenceText describes a presence for a user: "away: lunch".
func presenceText(p *translate.Presence) string {
	s := p.Availability.String()
	if p.Availability == translate.Unknown {
		s = "unknown (no presence known)"
	}
	if p.Note != "" {
		s += ": " + p.Note
	}
	return s
}

// errText describes an error of Send for the user: a policy refusal with
// its rule, else the error.
func errText(err error) string {
	if d, ok := errors.AsType[*policy.Denial](err); ok {
		return fmt.Sprintf("refused by the policy (%s): %v", d.Rule, d)
	}
	return err.Error()
}
