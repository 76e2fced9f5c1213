//go:build interop

package interop

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// UserClient is a real XMPP user logged in over c2s on a peer server. The
// scenarios drive both implementations through it: the mellium client
// (MelliumUser, client.go) and the Python slixmpp client (pyclient.go).
type UserClient interface {
	// JID is the user's bare JID.
	JID() string
	// SendMessage sends a chat message with body to the bare or full JID
	// to and returns the stanza id used (o.ID, or one generated).
	SendMessage(ctx context.Context, to, body string, o MessageOptions) (id string, err error)
	// SendChatState sends a body-less chat message carrying only the
	// XEP-0085 chat state state ("active", "composing", "paused",
	// "inactive", "gone").
	SendChatState(ctx context.Context, to, state string) error
	// SendReceipt sends an XEP-0184 <received id='id'/> to to.
	SendReceipt(ctx context.Context, to, id string) error
	// SendPresence sends presence: broadcast when p.To is empty, directed
	// otherwise.
	SendPresence(ctx context.Context, p Presence) error
	// Subscribe sends presence type='subscribe' to to.
	Subscribe(ctx context.Context, to string) error
	// Approve sends presence type='subscribed' to from.
	Approve(ctx context.Context, from string) error
	// Next returns the next thing received, or an error when ctx ends or
	// the session is gone.
	Next(ctx context.Context) (Event, error)
	// Close logs the user out and releases everything; it may be called
	// more than once.
	Close()
}

// MessageOptions are the optional parts of a sent message.
type MessageOptions struct {
	ID             string // the stanza id; generated when empty
	ChatState      string // an XEP-0085 chat state to send with the body
	RequestReceipt bool   // add an XEP-0184 <request/>
}

// Presence is a presence to send. The zero value is a broadcast
// "available" presence.
type Presence struct {
	To          string // empty for a broadcast
	Show        string // "", "away", "chat", "dnd", "xa"
	Status      string // the status text
	Unavailable bool   // type='unavailable'
}

// Event is one received stanza in plain terms.
type Event struct {
	// Kind is "message", "presence", "subscribe", "subscribed",
	// "unsubscribed", "unsubscribe" or "error" (a message or presence of
	// type='error').
	Kind string
	// From is the sender's JID as received (full or bare).
	From string
	// ID is the stanza id.
	ID string
	// Body is a message's body.
	Body string
	// ChatState is the XEP-0085 chat state element's name, if any.
	ChatState string
	// ReceiptRequest is true when the message carries an XEP-0184
	// <request/>.
	ReceiptRequest bool
	// ReceiptFor is the id of an XEP-0184 <received/>, if any.
	ReceiptFor string
	// Show is a presence's show ("" for plain available).
	Show string
	// Status is a presence's status text.
	Status string
	// Unavailable is true for a presence of type='unavailable'.
	Unavailable bool
	// ErrorCondition is the defined condition of an error stanza, such
	// as "service-unavailable" (Kind "error" only).
	ErrorCondition string
	// ErrorType is the error's type attribute, such as "cancel" (Kind
	// "error" only).
	ErrorType string
}

// String renders the event compactly for failure messages.
func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s from=%q", e.Kind, e.From)
	if e.ID != "" {
		fmt.Fprintf(&b, " id=%q", e.ID)
	}
	if e.Body != "" {
		fmt.Fprintf(&b, " body=%q", e.Body)
	}
	if e.ChatState != "" {
		fmt.Fprintf(&b, " state=%s", e.ChatState)
	}
	if e.ReceiptRequest {
		b.WriteString(" receipt-request")
	}
	if e.ReceiptFor != "" {
		fmt.Fprintf(&b, " received=%q", e.ReceiptFor)
	}
	if e.Kind == "presence" {
		fmt.Fprintf(&b, " show=%q status=%q unavailable=%v", e.Show, e.Status, e.Unavailable)
	}
	if e.Kind == "error" {
		fmt.Fprintf(&b, " error=%s/%s", e.ErrorType, e.ErrorCondition)
	}
	return b.String()
}

// Bare returns the bare JID part of a JID string (no resource).
func Bare(j string) string {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		return j[:i]
	}
	return j
}

// Expect reads events from c until match returns true and returns that
// event. The events skipped are kept for the failure message, which names
// step, the client and everything that did arrive when ctx ends first.
func Expect(t testing.TB, ctx context.Context, c UserClient, step string, match func(Event) bool) Event {
	t.Helper()
	var seen []string
	for {
		e, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("%s: %s: no matching stanza (%v); received instead: [%s]", step, c.JID(), err, strings.Join(seen, "; "))
			return Event{}
		}
		if match(e) {
			return e
		}
		seen = append(seen, e.String())
	}
}
