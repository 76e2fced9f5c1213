package translate

import (
	"strconv"
	"time"

	"mellium.im/xmpp/jid"
)

// Stanza is an internal value: one of *Message, *Presence, *Subscription
// or *Probe. The set is closed.
type Stanza interface {
	isStanza()
}

func (*Message) isStanza()      {}
func (*Presence) isStanza()     {}
func (*Subscription) isStanza() {}
func (*Probe) isStanza()        {}

// MessageType is the XMPP message type kept on an IM: only chat and normal
// messages become IMs (REFERENCE §5.7 #74).
type MessageType uint8

// Message types.
const (
	// Chat is a one-to-one conversation message (the zero value).
	Chat MessageType = iota
	// Normal is a single message outside a conversation.
	Normal
)

// String returns "chat" or "normal".
func (t MessageType) String() string {
	switch t {
	case Chat:
		return "chat"
	case Normal:
		return "normal"
	}
	return "MessageType(" + strconv.Itoa(int(t)) + ")"
}

// ChatState is an XEP-0085 chat state notification.
type ChatState uint8

// Chat states; the zero value means none was sent.
const (
	NoChatState ChatState = iota
	Active
	Composing
	Paused
	Inactive
	Gone
)

// String returns the XEP-0085 element name ("composing") or "" for
// NoChatState.
func (c ChatState) String() string {
	switch c {
	case NoChatState:
		return ""
	case Active:
		return "active"
	case Composing:
		return "composing"
	case Paused:
		return "paused"
	case Inactive:
		return "inactive"
	case Gone:
		return "gone"
	}
	return "ChatState(" + strconv.Itoa(int(c)) + ")"
}

// Message is an instant message, or a chat state or receipt alone (Body
// empty). From and To are full or bare JIDs: a local user's address is
// bare; a remote sender's is the full JID that wrote (replies go there,
// REFERENCE §5.7 #73).
type Message struct {
	From, To jid.JID // sender and recipient
	// ID is the stanza id ("" when none); receipts and corrections refer
	// to it.
	ID   string
	Type MessageType // chat (the zero value) or normal
	// Body is plain UTF-8 text, whitespace and line breaks kept.
	Body string
	// Lang is the body's xml:lang ("" when unspecified), kept both ways.
	Lang string
	// Subject and Thread are optional.
	Subject, Thread string
	// ChatState is the XEP-0085 notification carried, if any.
	ChatState ChatState
	// RequestReceipt asks for an XEP-0184 delivery receipt.
	RequestReceipt bool
	// ReceiptFor, when set, makes this message an XEP-0184 receipt for
	// the message with that id.
	ReceiptFor string
	// Delay is the XEP-0203 original send time; zero for a live message.
	Delay time.Time
	// Replaces, when set, makes this message an XEP-0308 correction of
	// the earlier message with that id; a host may ignore it and show
	// the body as a new message.
	Replaces string
}

// Availability is a presence state in the host's terms (REFERENCE §4.4).
type Availability uint8

// Availability values. The zero value, Unknown, means no state is known
// (no subscription, an error, or the stream to the contact's server is
// down): it is not Offline.
const (
	Unknown Availability = iota
	Available
	Idle // available but idle (Lync Available-Idle)
	Busy
	DoNotDisturb
	BeRightBack
	Away
	Offline
)

// String returns the state's name ("do-not-disturb").
func (a Availability) String() string {
	switch a {
	case Unknown:
		return "unknown"
	case Available:
		return "available"
	case Idle:
		return "idle"
	case Busy:
		return "busy"
	case DoNotDisturb:
		return "do-not-disturb"
	case BeRightBack:
		return "be-right-back"
	case Away:
		return "away"
	case Offline:
		return "offline"
	}
	return "Availability(" + strconv.Itoa(int(a)) + ")"
}

// Presence is a presence update. Going from XMPP to the host, presences
// from several resources of one remote user are aggregated first (RFC
// 6121 §4.4.2... see Translator) and From is the bare JID.
type Presence struct {
	From, To     jid.JID      // sender and recipient
	Availability Availability // the state; Unknown when nothing is known
	// Note is the personal note (XMPP <status/>). Outbound, it is sent
	// only to Federated partners; others get at most a generic label.
	Note string
	// Lang is the note's xml:lang ("" when unspecified).
	Lang string
	// IdleSince is when the user went idle (XEP-0319); zero when not idle.
	IdleSince time.Time
	// Priority is the XMPP resource priority (-128..127).
	Priority int8
}

// SubscriptionAction is a presence subscription request or answer (RFC
// 6121 §3).
type SubscriptionAction uint8

// Subscription actions.
const (
	// Subscribe asks to see the other user's presence.
	Subscribe SubscriptionAction = iota + 1
	// Subscribed approves a Subscribe.
	Subscribed
	// Unsubscribe stops seeing the other user's presence.
	Unsubscribe
	// Unsubscribed denies a Subscribe, or cancels an approval given
	// before.
	Unsubscribed
)

// String returns the XMPP presence type ("subscribe").
func (a SubscriptionAction) String() string {
	switch a {
	case Subscribe:
		return "subscribe"
	case Subscribed:
		return "subscribed"
	case Unsubscribe:
		return "unsubscribe"
	case Unsubscribed:
		return "unsubscribed"
	}
	return "SubscriptionAction(" + strconv.Itoa(int(a)) + ")"
}

// Subscription is a subscription request or answer between a local and a
// remote user (bare JIDs).
type Subscription struct {
	From, To jid.JID            // the requesting or answering user and the other one (bare JIDs)
	ID       string             // the stanza id ("" when none)
	Action   SubscriptionAction // what is asked or answered
	// AutoApproved marks a Subscribe the Translator has already approved
	// for the local user (Federated and PublicVerified partners, REFERENCE
	// §5.6 #65, #66): the host is told, and need not answer. It is never
	// sent on the wire.
	AutoApproved bool
}

// Probe is a presence probe (RFC 6121 §4.3): the From user's server asks
// for the To user's current presence. The Translator answers it; hosts
// never see one.
type Probe struct {
	From, To jid.JID // the asking server's user and the user asked about (bare JIDs)
	ID       string  // the stanza id ("" when none)
}
