package translate

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppfed/xmppfed/policy"
)

// SKELETON: signatures fixed by the lead; bodies to be written.

// ---- The codec: XMPP <-> internal values (plain functions) ----

// ErrIgnore is returned by Decode for a stanza that is deliberately not
// translated and not answered (REFERENCE §5.7 #74: headline messages;
// error stanzas, which are never answered).
var ErrIgnore = errors.New("translate: stanza ignored")

// Host errors that map to defined stanza errors (REFERENCE §5.7 #81, #82,
// #77). Hosts may wrap them.
var (
	// ErrUnknownUser: no such local user (service-unavailable, RFC 6121
	// §8.5.2).
	ErrUnknownUser = errors.New("translate: no such user")
	// ErrOffline: the user is offline and the host stores no messages
	// (recipient-unavailable).
	ErrOffline = errors.New("translate: user offline")
	// ErrTooLarge: the message is larger than the host accepts
	// (policy-violation).
	ErrTooLarge = errors.New("translate: message too large")
	// ErrMalformedAddress: an address that is not a valid JID
	// (jid-malformed).
	ErrMalformedAddress = errors.New("translate: malformed address")
)

// ---- Presence mapping (REFERENCE §4.5) ----

// Show is the XMPP <show/> value of an available presence ("" for none).
type Show string

// Show values (RFC 6121 §4.7.2.1).
const (
	ShowNone Show = ""
	ShowChat Show = "chat"
	ShowAway Show = "away"
	ShowXA   Show = "xa"
	ShowDND  Show = "dnd"
)

// PresenceMapper maps availability to XMPP presence and back. Methods may
// be called concurrently.
type PresenceMapper interface {
	// ToXMPP returns the presence to send for a: unavailable for
	// Offline, else available with show, and the status text (the note
	// when shareNote, else a generic label or "").
	ToXMPP(a Availability, note string, shareNote bool) (unavailable bool, show Show, status string)
	// FromXMPP returns the availability and note for a received presence.
	FromXMPP(unavailable bool, show Show, status string) (a Availability, note string)
}

// ---- Subscription states (RFC 6121 §3, Appendix A) ----

// SubState is the subscription state of a (local user, remote contact)
// pair from the local user's side, RFC 6121's nine states. The zero value
// is None.
type SubState uint8

// Subscription states (RFC 6121 Appendix A.1).
const (
	None             SubState = iota // neither sees the other, nothing pending
	NonePendingOut                   // None + Pending Out: we asked to see the contact
	NonePendingIn                    // None + Pending In: the contact asked to see us
	NonePendingOutIn                 // None + Pending Out + Pending In
	To                               // we see the contact
	ToPendingIn                      // To + Pending In
	From                             // the contact sees us
	FromPendingOut                   // From + Pending Out
	Both                             // each sees the other
)

// String, Outbound, Inbound and AutoReply are in substate.go.

// SeesContact reports whether the local user receives the contact's
// presence (To, ToPendingIn, Both).
func (s SubState) SeesContact() bool { return s == To || s == ToPendingIn || s == Both }

// ContactSees reports whether the contact is authorized to receive the
// local user's presence (From, FromPendingOut, Both).
func (s SubState) ContactSees() bool { return s == From || s == FromPendingOut || s == Both }

// ---- What the host implements ----

// Host delivers translated values to the host's users and tells the
// Translator about them. Methods may be called concurrently.
type Host interface {
	// DeliverMessage delivers an IM (or a chat state or receipt alone) to
	// the local user m.To. Its error goes back to the sender as the stanza
	// error StanzaError gives (ErrUnknownUser, ErrOffline, ErrTooLarge, a
	// *policy.Denial, a stanza.Error); it is never dropped.
	DeliverMessage(ctx context.Context, m *Message) error
	// DeliverPresence tells the local user p.To about a contact's
	// aggregated presence (Unknown when it is not known any more).
	DeliverPresence(ctx context.Context, p *Presence) error
	// DeliverSubscription tells the local user s.To about a subscription
	// request (Subscribe: the user answers later with an outbound
	// Subscribed or Unsubscribed) or a change the contact made.
	DeliverSubscription(ctx context.Context, s *Subscription) error
	// CurrentPresence returns the local user's current presence, for
	// answering probes from authorized watchers.
	CurrentPresence(ctx context.Context, user jid.JID) (*Presence, error)
}

// Roster keeps the subscription state of each (local user, remote contact)
// pair: the host's contact list. Methods may be called concurrently.
type Roster interface {
	// State returns the state for the pair (None when unknown).
	State(ctx context.Context, local, remote jid.JID) (SubState, error)
	// SetState stores the state for the pair.
	SetState(ctx context.Context, local, remote jid.JID, s SubState) error
	// Watchers returns the remote contacts authorized to see local's
	// presence (state From, FromPendingOut or Both).
	Watchers(ctx context.Context, local jid.JID) ([]jid.JID, error)
	// Contacts returns the (local, remote) pairs whose local user sees a
	// contact at the remote domain (To, ToPendingIn, Both): the probes to
	// send when a stream to that domain comes back.
	Contacts(ctx context.Context, domain string) ([][2]jid.JID, error)
}

// Gate decides inbound requests by partner type and user access:
// *policy.Policy implements it.
type Gate interface {
	Inbound(ctx context.Context, r policy.Request) (policy.Decision, error)
}

var _ Gate = (*policy.Policy)(nil)

// ---- The Translator ----

// Translator holds the mapping tables and the presence state of remote
// contacts, and runs the rules between the XMPP side and the host: the
// partner-type gate, the subscription state machine, presence aggregation
// over resources, probes, refresh and expiry, and stream loss. It opens no
// socket: inbound stanzas come in as bytes and what must be sent comes out
// as bytes. Set the fields, then use it from any goroutine.
type Translator struct {
	// Host delivers to local users (required).
	Host Host
	// Roster keeps subscription states (required).
	Roster Roster
	// Gate decides by partner type and user access (required; a
	// *policy.Policy).
	Gate Gate
	// Presence maps availability; nil means NewPresenceTable().
	Presence PresenceMapper
	// RefreshInterval is how long a remote watcher's subscription lasts
	// without a refresh (a probe or an available presence from it) before
	// it gets no more presence (REFERENCE §5.5 #54); zero means 8 h, the
	// gateway default; negative means never.
	RefreshInterval time.Duration
	// MaxMessageBytes is the largest inbound message stanza delivered, and
	// outbound message encoded; a larger one is refused with
	// policy-violation, never cut (REFERENCE §5.7 #77). Zero means 64 KiB.
	MaxMessageBytes int
	// Logger receives translation events; nil is silent. Bodies are never
	// logged unless LogBodies.
	Logger    *slog.Logger
	LogBodies bool // allow message bodies in logs (policy Gateway.LogBodies)

	st state // run-time state (translator.go)
}

// Inbound, Outbound, StreamDown and StreamUp are in translator.go.
