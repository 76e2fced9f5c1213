//go:build interop

package interop

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/internal/deadline"
)

// Message is a chat message with a body, as the clients send and see it.
type Message struct {
	stanza.Message
	Body string `xml:"body"` // the message body
	// Err is the stanza error of a type='error' message (RFC 6120 §8.3).
	Err *stanza.Error `xml:"error"`
}

// Client is a logged-in c2s session of a real user on a peer.
type Client struct {
	JID jid.JID // the full JID the server bound

	sess     *xmpp.Session
	w        *writer
	msgs     chan Message
	served   chan struct{}
	closeMu  sync.Once
	serveErr error
	dropped  atomic.Int64
}

// mellium.im/xmpp v0.22.0 bounds a session operation (negotiation, an
// Encode or Send) by its context with the racy watch package deadline
// describes: a context cancelled after a successful operation (the usual
// deferred cancel) can still set the connection's deadline in the past,
// and a read or write running at that moment fails with "i/o timeout"
// (a TLS connection's writes stay broken for good). The Prosody scenarios
// hit it about one run in fifteen: a login's deferred cancel broke the
// user's next message. So the clients never hand mellium a context that
// can be cancelled; guarded enforces the caller's context itself.

// guarded runs op with a context mellium cannot see cancelled, setting
// the connection's deadline (through setDeadline) in the past if ctx ends
// first, and clearing it after op returns if it did.
func guarded(ctx context.Context, setDeadline func(time.Time) error, op func(context.Context) error) error {
	stop := deadline.Watch(ctx, setDeadline)
	err := op(context.WithoutCancel(ctx))
	if stop() {
		_ = setDeadline(time.Time{})
		if err != nil {
			err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
		}
	}
	return err
}

// writer serialises a session's writes so that one write's context
// deadline never cuts another's.
type writer struct {
	mu   sync.Mutex
	sess *xmpp.Session
}

// encode is Session.Encode bounded by ctx (see guarded).
func (w *writer) encode(ctx context.Context, v any) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return guarded(ctx, w.sess.Conn().SetWriteDeadline, func(ctx context.Context) error {
		return w.sess.Encode(ctx, v)
	})
}

// send is Session.Send bounded by ctx (see guarded).
func (w *writer) send(ctx context.Context, r xml.TokenReader) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return guarded(ctx, w.sess.Conn().SetWriteDeadline, func(ctx context.Context) error {
		return w.sess.Send(ctx, r)
	})
}

// dialSession connects to addr and logs user in over c2s: STARTTLS
// trusting roots (RFC 6120 §5), SASL SCRAM-SHA-1 or PLAIN, a bound
// resource. It fails t on any error.
func dialSession(ctx context.Context, t testing.TB, addr string, roots *x509.CertPool, user, pass string) *xmpp.Session {
	t.Helper()
	j, err := jid.Parse(user)
	if err != nil {
		t.Fatalf("interop: login JID %q: %v", user, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("interop: c2s dial %s for %s: %v", addr, user, err)
	}
	var sess *xmpp.Session
	err = guarded(ctx, conn.SetDeadline, func(ctx context.Context) error {
		var err error
		sess, err = xmpp.NewClientSession(ctx, j, conn,
			xmpp.StartTLS(&tls.Config{ServerName: j.Domain().String(), RootCAs: roots, MinVersion: tls.VersionTLS12}),
			xmpp.SASL("", pass, sasl.ScramSha1, sasl.Plain),
			xmpp.BindResource(),
		)
		return err
	})
	if err != nil {
		conn.Close()
		t.Fatalf("interop: c2s login %s at %s: %v", user, addr, err)
	}
	return sess
}

// Login connects to addr, negotiates STARTTLS (trusting roots, RFC 6120
// §5) and SASL (SCRAM-SHA-1 or PLAIN) as user, binds a resource, sends
// initial presence and starts collecting incoming messages. The session is
// closed when t ends.
func Login(t testing.TB, addr string, roots *x509.CertPool, user, pass string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess := dialSession(ctx, t, addr, roots, user, pass)
	c := &Client{JID: sess.LocalAddr(), sess: sess, w: &writer{sess: sess}, msgs: make(chan Message, 4096), served: make(chan struct{})}
	go c.serve()
	t.Cleanup(c.Close)
	if err := c.w.send(ctx, stanza.Presence{Type: stanza.AvailablePresence}.Wrap(nil)); err != nil {
		t.Fatalf("interop: initial presence of %s: %v", user, err)
	}
	return c
}

func (c *Client) serve() {
	defer close(c.served)
	c.serveErr = c.sess.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		if start.Name.Local != "message" {
			return nil
		}
		var m Message
		// mellium hands the handler the element's tokens after its start
		// element: put it back so the decoder sees a balanced element.
		d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r))
		if err := d.Decode(&m); err != nil {
			return nil
		}
		select {
		case c.msgs <- m:
		default: // never block the session; counted so tests can tell
			c.dropped.Add(1)
		}
		return nil
	}))
}

// Send sends a chat message with body to to.
func (c *Client) Send(ctx context.Context, to, body string) error {
	tj, err := jid.Parse(to)
	if err != nil {
		return fmt.Errorf("interop: recipient %q: %w", to, err)
	}
	return c.w.encode(ctx, Message{
		Message: stanza.Message{To: tj, Type: stanza.ChatMessage, ID: "interop-" + body},
		Body:    body,
	})
}

// Wait returns the first message whose body is body, skipping others, or
// an error after timeout.
func (c *Client) Wait(body string, timeout time.Duration) (Message, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case m := <-c.msgs:
			if m.Body == body {
				return m, nil
			}
		case <-c.served:
			return Message{}, fmt.Errorf("interop: %s: session ended before %q arrived: %v", c.JID, body, c.serveErr)
		case <-deadline.C:
			return Message{}, fmt.Errorf("interop: %s: no message %q within %v", c.JID, body, timeout)
		}
	}
}

// WaitAll waits until a message has arrived for every body in bodies and
// returns the bodies still missing after timeout, and whether the bodies
// that did arrive came in the order given.
func (c *Client) WaitAll(bodies []string, timeout time.Duration) (missing []string, inOrder bool) {
	pos := make(map[string]int, len(bodies))
	for i, b := range bodies {
		pos[b] = i
	}
	seen := make(map[string]bool, len(bodies))
	inOrder, last := true, -1
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for len(seen) < len(bodies) {
		select {
		case m := <-c.msgs:
			if i, ok := pos[m.Body]; ok && !seen[m.Body] {
				seen[m.Body] = true
				inOrder = inOrder && i > last
				last = i
			}
		case <-deadline.C:
			for _, b := range bodies {
				if !seen[b] {
					missing = append(missing, b)
				}
			}
			return missing, inOrder
		case <-c.served:
			for _, b := range bodies {
				if !seen[b] {
					missing = append(missing, b)
				}
			}
			return missing, inOrder
		}
	}
	return nil, inOrder
}

// Dropped is how many messages the client had no room to record.
func (c *Client) Dropped() int64 { return c.dropped.Load() }

// Close ends the session and its connection and waits (bounded) for the
// reader to stop.
func (c *Client) Close() {
	c.closeMu.Do(func() {
		_ = c.sess.Close()
		_ = c.sess.Conn().Close()
		select {
		case <-c.served:
		case <-time.After(10 * time.Second):
		}
	})
}

// Namespaces the MelliumUser speaks beyond RFC 6120/6121.
const (
	nsChatStates = "http://jabber.org/protocol/chatstates" // XEP-0085
	nsReceipts   = "urn:xmpp:receipts"                     // XEP-0184
	nsStanzas    = "urn:ietf:params:xml:ns:xmpp-stanzas"   // RFC 6120 §8.3.3
)

// element is an empty child element whose name is its XMLName.
type element struct {
	XMLName xml.Name
}

// receipt is an XEP-0184 <received/>.
type receipt struct {
	ID string `xml:"id,attr"`
}

// outMessage is a message as the MelliumUser sends it.
type outMessage struct {
	stanza.Message
	Body     string    `xml:"body,omitempty"`
	State    *element  // an XEP-0085 chat state, named by its XMLName
	Request  *struct{} `xml:"urn:xmpp:receipts request"`
	Received *receipt  `xml:"urn:xmpp:receipts received"`
}

// outPresence is a presence as the MelliumUser sends it (stanza.Presence
// would write empty to and from attributes, which servers refuse as
// jid-malformed).
type outPresence struct {
	XMLName xml.Name `xml:"jabber:client presence"`
	ID      string   `xml:"id,attr,omitempty"`
	To      string   `xml:"to,attr,omitempty"`
	Type    string   `xml:"type,attr,omitempty"`
	Show    string   `xml:"show,omitempty"`
	Status  string   `xml:"status,omitempty"`
}

// inStanza is a received message or presence, decoded loosely.
type inStanza struct {
	XMLName  xml.Name
	ID       string    `xml:"id,attr"`
	From     string    `xml:"from,attr"`
	Type     string    `xml:"type,attr"`
	Body     string    `xml:"body"`
	Show     string    `xml:"show"`
	Status   string    `xml:"status"`
	Request  *struct{} `xml:"urn:xmpp:receipts request"`
	Received *receipt  `xml:"urn:xmpp:receipts received"`
	Error    *struct {
		Type  string    `xml:"type,attr"`
		Inner []element `xml:",any"`
	} `xml:"error"`
	Other []element `xml:",any"`
}

// event turns a received stanza into an Event.
func (s *inStanza) event() Event {
	e := Event{Kind: s.XMLName.Local, From: s.From, ID: s.ID, Body: s.Body, Show: s.Show, Status: s.Status,
		ReceiptRequest: s.Request != nil}
	if s.Received != nil {
		e.ReceiptFor = s.Received.ID
	}
	for _, o := range s.Other {
		if o.XMLName.Space == nsChatStates {
			e.ChatState = o.XMLName.Local
		}
	}
	switch {
	case s.Type == "error":
		e.Kind = "error"
		if s.Error != nil {
			e.ErrorType = s.Error.Type
			for _, in := range s.Error.Inner {
				if in.XMLName.Space == nsStanzas && in.XMLName.Local != "text" {
					e.ErrorCondition = in.XMLName.Local
					break
				}
			}
		}
	case e.Kind == "presence" && s.Type == "unavailable":
		e.Unavailable = true
	case e.Kind == "presence" && s.Type != "":
		e.Kind = s.Type // subscribe, subscribed, unsubscribe, unsubscribed, probe
	}
	return e
}

// MelliumUser is a UserClient built on mellium.im/xmpp: a c2s session that
// has fetched its roster (so the server treats it as an interested
// resource, RFC 6121 §2.1.6, and delivers subscription requests to it)
// and sent initial presence, recording every message and presence.
type MelliumUser struct {
	jid      jid.JID // the full JID bound
	sess     *xmpp.Session
	w        *writer
	events   chan Event
	served   chan struct{}
	serveErr error
	closeMu  sync.Once
	seq      atomic.Int64
}

var _ UserClient = (*MelliumUser)(nil)

// LoginUser logs user (a bare JID) in at addr like Login, then fetches
// the roster and sends initial presence. The session is closed when t
// ends.
func LoginUser(t testing.TB, addr string, roots *x509.CertPool, user, pass string) *MelliumUser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess := dialSession(ctx, t, addr, roots, user, pass)
	u := &MelliumUser{jid: sess.LocalAddr(), sess: sess, w: &writer{sess: sess}, events: make(chan Event, 4096), served: make(chan struct{})}
	go u.serve()
	t.Cleanup(u.Close)
	// The roster request comes first: the server handles the session's
	// stanzas in order, so it is an interested resource by the time its
	// initial presence goes out.
	rosterGet := struct {
		XMLName xml.Name `xml:"jabber:client iq"`
		ID      string   `xml:"id,attr"`
		Type    string   `xml:"type,attr"`
		Query   struct{} `xml:"jabber:iq:roster query"`
	}{ID: "roster-1", Type: "get"}
	if err := u.w.encode(ctx, rosterGet); err != nil {
		t.Fatalf("interop: roster request of %s: %v", user, err)
	}
	if err := u.SendPresence(ctx, Presence{}); err != nil {
		t.Fatalf("interop: initial presence of %s: %v", user, err)
	}
	return u
}

func (u *MelliumUser) serve() {
	defer close(u.served)
	u.serveErr = u.sess.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		if start.Name.Local != "message" && start.Name.Local != "presence" {
			return nil
		}
		var s inStanza
		d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r))
		if err := d.Decode(&s); err != nil {
			return nil
		}
		select {
		case u.events <- s.event():
		default: // never block the session; a test waiting for it fails
		}
		return nil
	}))
}

// JID implements UserClient.
func (u *MelliumUser) JID() string { return u.jid.Bare().String() }

func (u *MelliumUser) nextID() string { return fmt.Sprintf("m%d", u.seq.Add(1)) }

// SendMessage implements UserClient.
func (u *MelliumUser) SendMessage(ctx context.Context, to, body string, o MessageOptions) (string, error) {
	tj, err := jid.Parse(to)
	if err != nil {
		return "", fmt.Errorf("interop: recipient %q: %w", to, err)
	}
	id := o.ID
	if id == "" {
		id = u.nextID()
	}
	m := outMessage{Message: stanza.Message{To: tj, Type: stanza.ChatMessage, ID: id}, Body: body}
	if o.ChatState != "" {
		m.State = &element{XMLName: xml.Name{Space: nsChatStates, Local: o.ChatState}}
	}
	if o.RequestReceipt {
		m.Request = &struct{}{}
	}
	return id, u.w.encode(ctx, m)
}

// SendChatState implements UserClient.
func (u *MelliumUser) SendChatState(ctx context.Context, to, state string) error {
	tj, err := jid.Parse(to)
	if err != nil {
		return fmt.Errorf("interop: recipient %q: %w", to, err)
	}
	return u.w.encode(ctx, outMessage{
		Message: stanza.Message{To: tj, Type: stanza.ChatMessage, ID: u.nextID()},
		State:   &element{XMLName: xml.Name{Space: nsChatStates, Local: state}},
	})
}

// SendReceipt implements UserClient.
func (u *MelliumUser) SendReceipt(ctx context.Context, to, id string) error {
	tj, err := jid.Parse(to)
	if err != nil {
		return fmt.Errorf("interop: recipient %q: %w", to, err)
	}
	return u.w.encode(ctx, outMessage{
		Message:  stanza.Message{To: tj, Type: stanza.ChatMessage, ID: u.nextID()},
		Received: &receipt{ID: id},
	})
}

// SendPresence implements UserClient.
func (u *MelliumUser) SendPresence(ctx context.Context, p Presence) error {
	out := outPresence{ID: u.nextID(), Show: p.Show, Status: p.Status}
	if p.To != "" {
		tj, err := jid.Parse(p.To)
		if err != nil {
			return fmt.Errorf("interop: recipient %q: %w", p.To, err)
		}
		out.To = tj.String()
	}
	if p.Unavailable {
		out.Type = "unavailable"
	}
	return u.w.encode(ctx, out)
}

func (u *MelliumUser) subscription(ctx context.Context, to, typ string) error {
	tj, err := jid.Parse(to)
	if err != nil {
		return fmt.Errorf("interop: recipient %q: %w", to, err)
	}
	return u.w.encode(ctx, outPresence{To: tj.Bare().String(), Type: typ, ID: u.nextID()})
}

// Subscribe implements UserClient.
func (u *MelliumUser) Subscribe(ctx context.Context, to string) error {
	return u.subscription(ctx, to, "subscribe")
}

// Approve implements UserClient.
func (u *MelliumUser) Approve(ctx context.Context, from string) error {
	return u.subscription(ctx, from, "subscribed")
}

// Next implements UserClient. Events already received are returned even
// after the session ended.
func (u *MelliumUser) Next(ctx context.Context) (Event, error) {
	select {
	case e := <-u.events:
		return e, nil
	default:
	}
	select {
	case e := <-u.events:
		return e, nil
	case <-u.served:
		select {
		case e := <-u.events:
			return e, nil
		default:
		}
		return Event{}, fmt.Errorf("interop: %s: session ended: %v", u.jid, u.serveErr)
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
}

// Close implements UserClient: it ends the session and its connection and
// waits (bounded) for the reader to stop.
func (u *MelliumUser) Close() {
	u.closeMu.Do(func() {
		_ = u.sess.Close()
		_ = u.sess.Conn().Close()
		select {
		case <-u.served:
		case <-time.After(10 * time.Second):
		}
	})
}
